#!/usr/bin/python3
"""e2ee_ping: a plain !ping and an encrypted one, side by side, per bot.

One member (alice: tests/lib/e2ee.py, matrix-nio on libolm, which encrypts
her command as Element does and decrypts the reply) sends !ping in a plain
room and in an encrypted room (m.room.encryption, Megolm) to the bot, one
command at a time, plain and encrypted alternating, N times each. A second
member without a device key (the observer) long-polls /sync in both rooms
and stamps when each event reaches it, so that every row has:

  floor   the homeserver's own latency: from just before the command's PUT
          to the command reaching the observer
  reply   from just before the command's PUT to the bot's reply reaching
          the observer
  added   reply minus floor of the same command

Alice's own Megolm encrypt happens before the clock starts; the bot's
decrypt, its Megolm encrypt of the reply and everything it shares are
inside. Each reply counts only once alice has decrypted it (or, in the
plain room, read it) and found a "pong" replying to that very command, so
an encrypted reply nobody can read is "missing", never a figure.

Bots: tlbot (TLBOT_BIN, encryption on) and the reference peer
bench/peers/nio (matrix-nio 0.20 with MX_E2EE=1: nio's own Olm/Megolm),
each on a fresh local test homeserver (mxhs with TCP_NODELAY, as bench.py).

    /usr/bin/python3 bench/e2ee_ping.py [N] [--bot tlbot|nio ...] [--work DIR]

Needs Debian's python3 (python3-matrix-nio, python3-olm); bench.py runs it
as a subprocess. Prints one JSON object on stdout, progress on stderr."""

import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B   # noqa: E402  (also puts tests/lib on sys.path, mxhs with TCP_NODELAY)
import loaded       # noqa: E402
try:
    import e2ee     # tests/lib/e2ee.py: matrix-nio and olm
except ImportError as e:
    # bench/encrypted.py tells this apart from a failure: the rows are skipped
    print(f"e2ee_ping: cannot import matrix-nio/olm ({e})", file=sys.stderr)
    sys.exit(3)

mx = B.mx
WATCH_FILTER = {"presence": {"types": []}, "account_data": {"types": []},
                "room": {"timeline": {"limit": 1000,
                                      "types": ["m.room.message", "m.room.encrypted"]},
                         "state": {"types": []}, "ephemeral": {"types": []},
                         "account_data": {"types": []}}}


def cpu_s(pid):
    """CPU seconds of every thread of pid: the scheduler's nanosecond sum
    (/proc/<pid>/task/*/schedstat), else utime+stime in clock ticks."""
    try:
        total = 0
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        return B.proc_cpu_s(pid)


class Watcher(threading.Thread):
    """The observer's /sync: every message event of its rooms, in order,
    with the time it arrived."""

    def __init__(self, url, user):
        super().__init__(daemon=True)
        self.conn = B.Conn(url, user.token)
        self.user = user
        self.seen = {}     # event_id -> t
        self.rooms = {}    # room_id -> [(t, event)]
        self.cond = threading.Condition()
        self.stop = False

    def prime(self):
        fid = self.conn.req("POST", f"{B.C}/user/{B.q(self.user.user_id)}/filter", WATCH_FILTER)
        self.filter = fid["filter_id"]
        r = self.conn.req("GET", f"{B.C}/sync", query={"filter": '{"room":{"timeline":{"limit":0}}}'})
        self.since = r["next_batch"]

    def run(self):
        while not self.stop:
            try:
                r = self.conn.req("GET", f"{B.C}/sync", query={
                    "since": self.since, "timeout": 500, "filter": self.filter})
            except Exception as e:     # a failed poll is retried
                if self.stop:
                    return
                B.log(f"e2ee: observer sync failed: {e}")
                time.sleep(0.05)
                continue
            t = time.monotonic()
            self.since = r["next_batch"]
            with self.cond:
                for rid, room in r.get("rooms", {}).get("join", {}).items():
                    for ev in room.get("timeline", {}).get("events", []):
                        self.seen.setdefault(ev["event_id"], t)
                        self.rooms.setdefault(rid, []).append((t, ev))
                self.cond.notify_all()

    def events_from(self, room, pos, timeout):
        """Events of room from index pos on, waiting up to timeout for one."""
        with self.cond:
            if len(self.rooms.get(room, [])) <= pos:
                self.cond.wait(timeout)
            return list(self.rooms.get(room, [])[pos:])


class Run:
    """One bot on one fresh homeserver: the rooms, alice, the observer."""

    def __init__(self, botname, work, timeout):
        self.botname, self.work, self.timeout = botname, work, timeout
        self.hs = mx.Homeserver(persist=False)
        self.bot = self.alice = self.watch = None
        self.pos = {}
        self.pending = {}       # room -> [(t, event)] bot events not yet decided
        self.undecryptable = 0
        self.plaintext_in_encrypted = 0
        self.sessions = set()   # Megolm session ids of the bot's encrypted replies

    def start(self):
        hs = self.hs
        if self.botname == "tlbot":
            self.bot = mx.Bot(hs, os.path.join(self.work, "bot-e2ee"), encryption=True,
                              config_extra=B.bot_config({"log_level": "warn"}))
            self.bot.start()
            self.pid = self.bot.proc.pid
        else:
            self.bot = loaded.PeerBot(self.botname, hs, os.path.join(self.work, "peer-nio-e2ee"))
            self.bot.env["MX_E2EE"] = "1"
            self.bot.start()
            self.pid = self.bot.proc.pid
        self.alice = e2ee.Peer(hs, "alice")
        obs = hs.register("observer")
        inv = [self.bot.user_id, obs.user_id]
        self.plain = self.alice.mx.create_room(name="plain", invite=inv)
        self.enc = self.alice.create_room(name="encrypted", invite=inv)
        obs.join(self.plain)
        obs.join(self.enc)
        B.wait_joined(hs, B.Conn(hs.url, self.alice.mx.token), self.bot.user_id,
                      [self.plain, self.enc])
        self.alice.wait_joined(self.enc, self.bot.user_id, timeout=30)
        if self.botname == "tlbot":
            self.bot.wait_idle(timeout=30)
        self.watch = Watcher(hs.url, obs)
        self.watch.prime()
        self.watch.start()

    def stop(self):
        if self.watch:
            self.watch.stop = True
            self.watch.join(2)
        if self.alice:
            try:
                self.alice.close()
            except Exception:   # closing nio's session; nothing left to measure
                pass
        if self.bot:
            self.bot.stop()
        self.hs.stop()

    # ---- one command ---------------------------------------------------------

    def send(self, room):
        """-> (event_id, t0): t0 just before the PUT."""
        if room == self.enc:
            content = self.alice.encrypt(room, {"msgtype": "m.text", "body": "!ping",
                                                "m.mentions": {}})
            t0 = time.monotonic()
            return self.alice.mx.send_event(room, "m.room.encrypted", content), t0
        t0 = time.monotonic()
        return self.alice.mx.send_text(room, "!ping", mentions={}), t0

    def answers(self, rec_content, ev):
        rel = (rec_content.get("m.relates_to") or {}).get("m.in_reply_to") or {}
        return rel.get("event_id") == ev and \
            str(rec_content.get("body", "")).startswith("pong")

    def decide(self, room, t, raw, ev):
        """True: raw is the reply to ev; False: it is not; None: not
        decryptable yet."""
        if room == self.enc and raw.get("type") != "m.room.encrypted":
            self.plaintext_in_encrypted += 1     # a reply members would see in clear
            return False
        if raw.get("type") == "m.room.encrypted":
            dec = self.alice.decrypt_raw(dict(raw, room_id=room))  # /sync leaves room_id out
            if dec is None:
                return None
            content = dict(dec["content"])
            rel = (raw.get("content") or {}).get("m.relates_to")
            if rel and "m.relates_to" not in content:   # the relation in the cleartext
                content["m.relates_to"] = rel
            return self.answers(content, ev)
        return self.answers(raw.get("content") or {}, ev)

    def wait_reply(self, room, ev):
        """-> the time the reply to ev reached the observer, or None."""
        deadline = time.monotonic() + self.timeout
        pend = self.pending.setdefault(room, [])
        while True:
            rem = deadline - time.monotonic()
            if rem <= 0:
                return None
            new = self.watch.events_from(room, self.pos.get(room, 0), min(rem, 0.5))
            self.pos[room] = self.pos.get(room, 0) + len(new)
            pend.extend((t, e) for t, e in new if e.get("sender") == self.bot.user_id)
            found, keep = None, []
            for t, raw in pend:
                d = self.decide(room, t, raw, ev)
                if d is None:
                    if time.monotonic() - t < self.timeout:
                        keep.append((t, raw))
                    else:
                        self.undecryptable += 1
                elif d and found is None:
                    found = t
                    sid = (raw.get("content") or {}).get("session_id")
                    if raw.get("type") == "m.room.encrypted" and sid:
                        self.sessions.add(sid)
            pend[:] = keep
            if found is not None:
                return found
            if keep:     # a reply whose room key alice has not received yet
                self.alice.step(0)

    def measure(self, n):
        first = {}
        for name, room in (("plain", self.plain), ("encrypted", self.enc)):
            ev, t0 = self.send(room)
            t = self.wait_reply(room, ev)
            first[name] = round((t - t0) * 1000, 1) if t is not None else None
        runs = {k: {"floor": [], "reply": [], "added": [], "missing": 0, "cpu_s": 0.0}
                for k in ("plain", "encrypted")}
        for i in range(n):
            for name, room in (("plain", self.plain), ("encrypted", self.enc)):
                r = runs[name]
                c0 = cpu_s(self.pid)
                ev, t0 = self.send(room)
                t = self.wait_reply(room, ev)
                r["cpu_s"] += cpu_s(self.pid) - c0
                ts = self.watch.seen.get(ev)
                if ts is not None:
                    r["floor"].append((ts - t0) * 1000)
                if t is None:
                    r["missing"] += 1
                    continue
                r["reply"].append((t - t0) * 1000)
                if ts is not None:
                    r["added"].append((t - ts) * 1000)
        out = {"bot": self.botname, "first_reply_ms": first,
               "undecryptable": self.undecryptable,
               "plaintext_in_encrypted_room": self.plaintext_in_encrypted,
               "reply_megolm_sessions": len(self.sessions),
               "rss_peak_kb": B.proc_mem_kb(self.pid).get("VmHWM")}
        for name, r in runs.items():
            out[name] = {"commands": n, "missing_replies": r["missing"],
                         "floor_ms": B.summary(r["floor"]), "reply_ms": B.summary(r["reply"]),
                         "added_ms": B.summary(r["added"]),
                         "bot_cpu_ms_per_command": round(r["cpu_s"] * 1000 / max(1, n), 2)}
        extra = {}
        for p in ("p50", "p95", "p99"):
            a, b = out["encrypted"]["reply_ms"].get(p), out["plain"]["reply_ms"].get(p)
            extra[p] = round(a - b, 2) if a is not None and b is not None else None
        out["extra_reply_ms"] = extra
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("count", nargs="?", type=int, default=None)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--bot", action="append", choices=["tlbot", "nio"])
    ap.add_argument("--work", default=None)
    ap.add_argument("--timeout", type=float, default=15.0)
    a = ap.parse_args()
    n = a.count if a.count is not None else a.n
    os.environ.setdefault("TLBOT_BIN", os.path.join(B.REPO, "build", "tlbot"))
    work = a.work or mx.tmpdir("tlbot-e2ee-")
    res = {"n": n, "results": [], "notes": {}}
    for name in a.bot or ["tlbot"]:
        B.log(f"e2ee: {name}: {n} plain and {n} encrypted !ping, one at a time")
        run = Run(name, work, a.timeout)
        try:
            run.start()
            r = run.measure(n)
            res["results"].append(r)
            B.log(f"e2ee: {name}: reply p50 plain {B.fmt(r['plain']['reply_ms'].get('p50'))} "
                  f"ms, encrypted {B.fmt(r['encrypted']['reply_ms'].get('p50'))} ms")
        except Exception as e:  # a peer that breaks is a note; tlbot breaking is an error
            if name == "tlbot":
                raise
            res["notes"][name] = f"failed: {e}"
            B.log(f"e2ee: {name} failed: {e}")
        finally:
            run.stop()
    print(B.json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
