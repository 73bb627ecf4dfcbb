#!/usr/bin/env python3
"""Command -> reply latency of the bot per transport on loopback (a quick
measurement, not a test; the proper benchmark belongs in bench/).

    python3 tests/tools/ws_latency.py [N]     (build/tlbot and build/tlbot-wsgateway)

For each of sync, websocket (mxhs serves the stream) and websocket through
tlbot-wsgateway: N sequential !ping commands from a user; prints the
server-side latency (reply origin_server_ts - command origin_server_ts, ms)
and the client-observed round trip (send -> reply seen in a /sync long-poll)."""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def run(kind, n):
    with mx.Homeserver(persist=False) as hs:
        alice = hs.register("alice")
        gw = None
        extra = {"transport": "sync" if kind == "sync" else "websocket", "log_level": "info",
                 "rate_limit_per_min": 100000}
        if kind == "gateway":
            port = mx.free_port()
            binary = os.path.join(os.path.dirname(mx.Bot.binary()), "tlbot-wsgateway")
            gw = subprocess.Popen([binary, "--upstream", hs.url, "--listen",
                                   f"127.0.0.1:{port}", "--log-level", "warn"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            gw.stdout.readline()
            extra["websocket_url"] = f"ws://127.0.0.1:{port}"
        bot = mx.Bot(hs, mx.tmpdir(), config_extra=extra)
        bot.start()
        try:
            room = alice.create_room(name="lat", invite=[bot.user_id])
            alice.wait_membership(room, bot.user_id, "join", timeout=15)
            server, client = [], []
            for i in range(n + 5):
                t0 = time.monotonic()
                cmd = alice.send_text(room, "!ping")
                rep = alice.wait_reply(room, cmd, timeout=20)
                t1 = time.monotonic()
                if i < 5:
                    continue                   # warm-up
                cev = alice.event(room, cmd)
                server.append(rep["origin_server_ts"] - cev["origin_server_ts"])
                client.append((t1 - t0) * 1000)
            return server, client
        finally:
            bot.stop()
            if gw:
                gw.terminate()
                gw.wait()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    print(f"{n} sequential !ping per transport, loopback; ms")
    print(f"{'transport':<22}{'server p50':>11}{'p90':>7}{'mean':>8}"
          f"{'client p50':>12}{'p90':>7}{'mean':>8}")
    for kind in ("sync", "websocket", "gateway"):
        s, c = run(kind, n)
        label = {"gateway": "websocket via gateway"}.get(kind, kind)
        print(f"{label:<22}{pct(s, 50):>11.1f}{pct(s, 90):>7.1f}{statistics.mean(s):>8.1f}"
              f"{pct(c, 50):>12.1f}{pct(c, 90):>7.1f}{statistics.mean(c):>8.1f}")


if __name__ == "__main__":
    main()
