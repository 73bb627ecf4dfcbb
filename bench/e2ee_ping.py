#!/usr/bin/python3
"""e2ee_ping: the extra latency of an encrypted !ping over a plain one.

The real bot (TLBOT_BIN, default build/tlbot) on the local test homeserver;
one member sends !ping in a plain room (tests/lib/mx.py client) and in an
encrypted room (tests/lib/e2ee.py: matrix-nio on libolm, which encrypts the
command and decrypts the reply), N times each, one at a time; the time from
sending to the reply being seen, in ms. The encrypted figure includes the
bot's Megolm decrypt and encrypt and nio's own work on both sides.

    /usr/bin/python3 bench/e2ee_ping.py [N]      (Debian's python3: nio, olm)

Prints one JSON object."""

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
import mx    # noqa: E402
import e2ee  # noqa: E402


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    hs = mx.Homeserver()
    bot = mx.Bot(hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0, "encryption": "on", "log_level": os.environ.get("E2EE_PING_LOG", "warn")})
    bot.start()
    alice = e2ee.Peer(hs, "alice")
    plain = alice.mx.create_room(name="plain", invite=[bot.user_id])
    enc = alice.create_room(name="encrypted", invite=[bot.user_id])
    alice.wait_joined(enc, bot.user_id, timeout=30)
    bot.wait_idle(timeout=30)
    alice.wait_reply(enc, alice.send_text(enc, "!ping"), sender=bot.user_id, timeout=30)
    out = {}
    t_plain, t_enc = [], []
    for _ in range(n):
        t0 = time.monotonic()
        cmd = alice.mx.send_text(plain, "!ping")
        alice.mx.wait_reply(plain, cmd, timeout=30)
        t_plain.append((time.monotonic() - t0) * 1000)
        t0 = time.monotonic()
        cmd = alice.send_text(enc, "!ping")
        alice.wait_reply(enc, cmd, sender=bot.user_id, timeout=30)
        t_enc.append((time.monotonic() - t0) * 1000)
    for name, v in (("plain_ms", t_plain), ("encrypted_ms", t_enc)):
        out[name] = {"n": len(v), "p50": round(statistics.median(v), 1),
                     "mean": round(statistics.mean(v), 1), "max": round(max(v), 1)}
    out["extra_p50_ms"] = round(out["encrypted_ms"]["p50"] - out["plain_ms"]["p50"], 1)
    print(json.dumps(out, indent=2))
    alice.close()
    bot.stop()
    hs.stop()


if __name__ == "__main__":
    main()
