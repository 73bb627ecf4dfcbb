#!/usr/bin/env python3
"""tlbot benchmarks: latency against the homeserver's own floor, cost, memory,
start-up, batch throughput and store scale.  Run through bench/run (which
builds what is missing); see bench/README.md for what each figure means.

Every figure is printed and written to <out>/results.json.  Nothing here
fails on a time: the exit status is non-zero only when a benchmark could not
run at all (the bot did not start, a helper program crashed...).
Traffic stays on 127.0.0.1; every loop is bounded by a count or a deadline.
"""

import argparse
import http.client
import json
import os
import platform
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
import mx  # noqa: E402

# mxhs with TCP_NODELAY (see mxhs_nodelay.py); the server code is unchanged
mx.MXHS = os.path.join(HERE, "mxhs_nodelay.py")

C = "/_matrix/client/v3"
OBS_FILTER = {"presence": {"types": []}, "account_data": {"types": []},
              "room": {"timeline": {"limit": 1000, "types": ["m.room.message"]},
                       "state": {"types": []}, "ephemeral": {"types": []},
                       "account_data": {"types": []}}}


def log(msg):
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def pct(values, p):
    """Nearest-rank percentile of a list (None when empty)."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def summary(values):
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95),
            "p99": pct(values, 99), "max": max(values), "mean": statistics.fmean(values)}


# --------------------------------------------------------------------------
# A small keep-alive client (one connection per thread, TCP_NODELAY)
# --------------------------------------------------------------------------

class Conn:
    def __init__(self, url, token=None):
        u = urllib.parse.urlparse(url)
        self.host, self.port, self.token = u.hostname, u.port, token
        self.c = None

    def _connect(self):
        self.c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.c.connect()
        self.c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def req(self, method, path, body=None, query=None):
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        for attempt in range(3):
            try:
                if self.c is None:
                    self._connect()
                self.c.request(method, path, body=data, headers=h)
                r = self.c.getresponse()
                payload = r.read()
                break
            except (http.client.HTTPException, OSError):
                if self.c:
                    self.c.close()
                self.c = None
                if attempt == 2:
                    raise
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {r.status} {payload[:200]!r}")
        return json.loads(payload) if payload else {}

    def close(self):
        if self.c:
            self.c.close()


def q(s):
    return urllib.parse.quote(s, safe="")


# --------------------------------------------------------------------------
# /proc figures of a process
# --------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime + stime


def proc_mem_kb(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
    return out


# --------------------------------------------------------------------------
# Bench set-up helpers
# --------------------------------------------------------------------------

def bot_config(extra=None):
    cfg = {"rate_limit_per_min": 100000, "log_level": "info", "admins": [],
           "allowed_users": ["@*:localhost"]}
    cfg.update(extra or {})
    return cfg


def wait_joined(hs, user_conn, bot_user, rooms, timeout=60):
    """Wait until bot_user is joined to every room."""
    deadline = time.monotonic() + timeout
    left = set(rooms)
    while left:
        for r in list(left):
            try:
                c = user_conn.req("GET", f"{C}/rooms/{q(r)}/state/m.room.member/{q(bot_user)}")
            except RuntimeError:
                c = {}
            if c.get("membership") == "join":
                left.discard(r)
        if not left:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"bot not joined to {len(left)} rooms after {timeout}s")
        time.sleep(0.05)


def registered(table_src, name):
    return re.search(r"&tlbot_cmd_" + name + r"\b", table_src) is not None


def command_table():
    try:
        with open(os.path.join(REPO, "commands", "table.c")) as f:
            return f.read()
    except OSError:
        return ""


# --------------------------------------------------------------------------
# 1. Latency (floor, closed loop, open loop) and cost
# --------------------------------------------------------------------------

class Observer(threading.Thread):
    """A user in every bench room, long-polling /sync: records when each
    message (by event id) and each reply (by the event it replies to) became
    visible to another user."""

    def __init__(self, url, user):
        super().__init__(daemon=True)
        self.conn = Conn(url, user.token)
        self.user = user
        self.seen = {}          # event_id -> t (monotonic)
        self.replies = {}       # replied-to event_id -> t
        self.cond = threading.Condition()
        self.stop = False
        self.since = None
        self.syncs = 0

    def prime(self):
        fid = self.conn.req("POST", f"{C}/user/{q(self.user.user_id)}/filter", OBS_FILTER)
        self.filter = fid["filter_id"]
        r = self.conn.req("GET", f"{C}/sync", query={"filter": json.dumps(
            {"room": {"timeline": {"limit": 0}}})})
        self.since = r["next_batch"]

    def run(self):
        while not self.stop:
            try:
                r = self.conn.req("GET", f"{C}/sync", query={
                    "since": self.since, "timeout": 500, "filter": self.filter})
            except Exception as e:     # keep observing; a failed poll is retried
                log(f"observer: sync failed: {e}")
                time.sleep(0.05)
                continue
            t = time.monotonic()
            self.syncs += 1
            self.since = r["next_batch"]
            got = False
            for room in r.get("rooms", {}).get("join", {}).values():
                for ev in room.get("timeline", {}).get("events", []):
                    self.seen.setdefault(ev["event_id"], t)
                    c = ev.get("content") or {}
                    irt = ((c.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id")
                    if irt and c.get("msgtype") == "m.notice":
                        self.replies.setdefault(irt, t)
                    got = True
            if got:
                with self.cond:
                    self.cond.notify_all()

    def wait_reply(self, event_id, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while event_id not in self.replies:
                rem = deadline - time.monotonic()
                if rem <= 0:
                    return False
                self.cond.wait(rem)
        return True

    def wait_seen(self, event_id, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while event_id not in self.seen:
                rem = deadline - time.monotonic()
                if rem <= 0:
                    return False
                self.cond.wait(rem)
        return True


class LatencyBench:
    def __init__(self, args, out, transport="sync"):
        self.args, self.out, self.transport = args, out, transport
        self.nsenders = 4
        self.nrooms = 4

    def setup(self):
        a = self.args
        self.hs = mx.Homeserver(persist=False)
        url = self.hs.url
        self.senders = [self.hs.register(f"sender{i}") for i in range(self.nsenders)]
        self.obs_user = self.hs.register("observer")
        self.bot = mx.Bot(self.hs, os.path.join(a.work, f"bot-latency-{self.transport}"),
                          config_extra=bot_config({"admins": [s.user_id for s in self.senders],
                                                   "transport": self.transport}))
        self.bot.start()
        # the transport in use, as the bot logs it
        m = self.bot.wait_log(r"transport: (\w+)|starting /sync|sync: starting", timeout=15)
        self.transport_used = m.group(1) or "sync"
        if self.transport_used != self.transport:
            raise RuntimeError(f"asked for transport {self.transport}, the bot uses "
                               f"{self.transport_used}")
        self.rooms = []
        for i in range(self.nrooms):
            r = self.senders[0].create_room(
                name=f"bench {i}", invite=[s.user_id for s in self.senders[1:]] +
                [self.obs_user.user_id, self.bot.user_id],
                power_levels={"users_default": 50})
            for s in self.senders[1:] + [self.obs_user]:
                s.join(r)
            self.rooms.append(r)
        wait_joined(self.hs, Conn(url, self.senders[0].token), self.bot.user_id, self.rooms)
        self.bot.wait_idle(timeout=30)
        self.obs = Observer(url, self.obs_user)
        self.obs.prime()
        self.obs.start()
        self.sconns = [Conn(url, s.token) for s in self.senders]
        self.txn = 0
        self.txn_lock = threading.Lock()
        self.pid = self.bot.proc.pid
        # the store-writing command: !exp note on an experiment made here
        table = command_table()
        self.write_cmd = None
        if registered(table, "experiment") and registered(table, "challenge"):
            c = self.send_wait(0, self.rooms[0], '!challenge new "Bench challenge"')
            ok = c and "C-" in c
            for i, room in enumerate(self.rooms):
                r = self.send_wait(0, room, '!exp new C-1 "Bench experiment %d" "We believe a '
                                   'benchmark will result in figures. We will know when they '
                                   'print."' % i)
                ok = ok and r and "E-" in r
                m = re.search(r"E-(\d+)", r or "")
                if m:
                    setattr(self, f"exp_{i}", m.group(0))
            if ok:
                self.write_cmd = "exp note"
            else:
                log("latency: could not create a challenge and experiments; "
                    f"replies: {c!r} {r!r}")
        if self.write_cmd is None and registered(table, "notify"):
            self.write_cmd = "notify"
        log(f"latency: store-writing command: {self.write_cmd or '(none available)'}")

    def command_text(self, kind, room_index, n):
        if kind == "ping":
            return "!ping"
        if self.write_cmd == "exp note":
            return f'!exp note {getattr(self, "exp_%d" % room_index)} "bench note {n}: the ' \
                   f'pilot looks fine so far"'
        return "!notify on" if n % 2 else "!notify off"

    def put(self, si, room, body):
        with self.txn_lock:
            self.txn += 1
            txn = f"b{self.txn}.{time.time_ns()}"
        t0 = time.monotonic()
        r = self.sconns[si].req("PUT", f"{C}/rooms/{q(room)}/send/m.room.message/{txn}",
                                {"msgtype": "m.text", "body": body})
        return r["event_id"], t0

    def send_wait(self, si, room, body, timeout=10):
        """Send and wait for the bot's reply; -> the reply's body or None."""
        ev, _ = self.put(si, room, body)
        if not self.obs.wait_reply(ev, timeout):
            return None
        # fetch the reply body (a setup helper: not timed)
        for e in reversed(self.senders[si].api("GET", f"/rooms/{q(room)}/messages",
                                              query={"dir": "b", "limit": 20})["chunk"]):
            c = e.get("content") or {}
            if ((c.get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id") == ev:
                return c.get("body")
        return ""

    def collect(self, sent, drain_s=10):
        """sent: [(event_id, t0)] -> latency lists (ms)."""
        deadline = time.monotonic() + drain_s
        for ev, _ in sent:
            self.obs.wait_reply(ev, max(0.0, deadline - time.monotonic()))
        floor, reply, added, missing = [], [], [], 0
        for ev, t0 in sent:
            ts = self.obs.seen.get(ev)
            tr = self.obs.replies.get(ev)
            if ts is not None:
                floor.append((ts - t0) * 1000)
            if tr is None:
                missing += 1
                continue
            reply.append((tr - t0) * 1000)
            if ts is not None:
                added.append((tr - ts) * 1000)
        return floor, reply, added, missing

    def closed_loop(self, kind, per_sender):
        """Each sender: command, wait for its reply, next (all senders at once)."""
        sent, lock = [], threading.Lock()

        def worker(si):
            for n in range(per_sender):
                room_i = (si + n) % self.nrooms
                ev, t0 = self.put(si, self.rooms[room_i], self.command_text(kind, room_i, n))
                with lock:
                    sent.append((ev, t0))
                self.obs.wait_reply(ev, 10)

        ths = [threading.Thread(target=worker, args=(i,)) for i in range(self.nsenders)]
        t = time.monotonic()
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        return sent, time.monotonic() - t, 0.0

    def open_loop(self, kind, rate, duration):
        """Commands at `rate` per second in total, spread evenly over the
        senders, whatever the replies do.  -> (sent, seconds, max lag)."""
        sent, lock = [], threading.Lock()
        period = self.nsenders / float(rate)
        per_sender = int(rate * duration / self.nsenders)
        start = time.monotonic() + 0.2
        lags = []

        def worker(si):
            my_lag = 0.0
            for n in range(per_sender):
                due = start + n * period + si * period / self.nsenders
                d = due - time.monotonic()
                if d > 0:
                    time.sleep(d)
                else:
                    my_lag = max(my_lag, -d)
                room_i = (si + n) % self.nrooms
                ev, t0 = self.put(si, self.rooms[room_i], self.command_text(kind, room_i, n))
                with lock:
                    sent.append((ev, t0))
            lags.append(my_lag)

        ths = [threading.Thread(target=worker, args=(i,)) for i in range(self.nsenders)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        return sent, time.monotonic() - start, max(lags) * 1000 if lags else 0.0

    def run_mode(self, kind, mode, rate=None, duration=None, per_sender=None):
        cpu0 = proc_cpu_s(self.pid)
        if mode == "closed":
            sent, secs, lag = self.closed_loop(kind, per_sender)
        else:
            sent, secs, lag = self.open_loop(kind, rate, duration)
        floor, reply, added, missing = self.collect(sent)
        cpu = proc_cpu_s(self.pid) - cpu0
        res = {"command": kind, "mode": mode, "rate": rate, "commands": len(sent),
               "added_minus_floor_p50_ms": (summary(added).get("p50") or 0) -
               (summary(floor).get("p50") or 0),
               "seconds": round(secs, 2), "achieved_rate": round(len(sent) / secs, 1) if secs else None,
               "missing_replies": missing, "max_schedule_lag_ms": round(lag, 2),
               "floor_ms": summary(floor), "reply_ms": summary(reply),
               "added_ms": summary(added), "bot_cpu_s": round(cpu, 3)}
        log(f"latency: {kind:5s} {mode:6s} {str(rate or ''):>4s}: {len(sent)} commands, "
            f"reply p50 {res['reply_ms'].get('p50', 0):.2f} p99 {res['reply_ms'].get('p99', 0):.2f} ms, "
            f"floor p50 {res['floor_ms'].get('p50', 0):.2f} ms, added p50 "
            f"{res['added_ms'].get('p50', 0):.2f} p99 {res['added_ms'].get('p99', 0):.2f} ms, "
            f"missing {missing}")
        return res

    def cost(self, n):
        """n commands as fast as the senders can put them (no waiting for
        replies), then every reply: the bot's CPU and peak RSS for them."""
        kinds = ["ping", "write"] if self.write_cmd else ["ping"]
        cpu0 = proc_cpu_s(self.pid)
        t = time.monotonic()
        sent, lock = [], threading.Lock()
        per = n // self.nsenders

        def worker(si):
            for k in range(per):
                room_i = (si + k) % self.nrooms
                kind = kinds[k % len(kinds)]
                ev, t0 = self.put(si, self.rooms[room_i], self.command_text(kind, room_i, k))
                with lock:
                    sent.append((ev, t0))

        ths = [threading.Thread(target=worker, args=(i,)) for i in range(self.nsenders)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        floor, reply, added, missing = self.collect(sent, drain_s=60)
        secs = time.monotonic() - t
        cpu = proc_cpu_s(self.pid) - cpu0
        mem = proc_mem_kb(self.pid)
        res = {"commands": len(sent), "kinds": kinds, "seconds": round(secs, 2),
               "rate": round(len(sent) / secs, 1), "missing_replies": missing,
               "bot_cpu_s": round(cpu, 3),
               "cpu_s_per_10k_commands": round(cpu * 10000.0 / max(1, len(sent)), 3),
               "rss_kb_after": mem.get("VmRSS"), "rss_peak_kb": mem.get("VmHWM"),
               "reply_ms": summary(reply), "added_ms": summary(added)}
        log(f"cost: {len(sent)} commands in {secs:.1f} s: bot CPU {cpu:.2f} s, "
            f"{res['cpu_s_per_10k_commands']} s per 10k; peak RSS {mem.get('VmHWM')} kB")
        return res

    def run(self):
        a = self.args
        self.setup()
        runs = []
        main = self.transport == "sync"
        kinds = ["ping"] + (["write"] if self.write_cmd and (main or not a.quick) else [])
        mem0 = proc_mem_kb(self.pid)
        for kind in kinds:
            runs.append(self.run_mode(kind, "closed", per_sender=a.closed_n))
            for rate in (20, 100):
                runs.append(self.run_mode(kind, "open", rate=rate,
                                          duration=a.open_s_20 if rate == 20 else a.open_s_100))
        cost = self.cost(a.cost_n) if main else None
        self.obs.stop = True
        self.obs.join(5)
        self.bot.stop()
        self.hs.stop()
        head = next(r for r in runs if r["command"] == "ping" and r["rate"] == 100)
        self.out["latency" if main else f"latency_{self.transport}"] = {
            "transport": self.transport, "senders": self.nsenders, "rooms": self.nrooms,
            "write_command": self.write_cmd, "runs": runs, "rss_kb_before": mem0}
        if not main:
            p = self.transport
            self.out["keys"].update({
                f"{p}_floor_p50_ms": head["floor_ms"]["p50"],
                f"{p}_reply_p50_ms": head["reply_ms"]["p50"],
                f"{p}_reply_p99_ms": head["reply_ms"]["p99"],
                f"{p}_added_p50_ms": head["added_ms"]["p50"],
                f"{p}_added_p99_ms": head["added_ms"]["p99"]})
            return
        self.out["cost"] = cost
        self.out["keys"].update({
            "floor_p50_ms": head["floor_ms"]["p50"],
            "reply_p50_ms": head["reply_ms"]["p50"],
            "reply_p99_ms": head["reply_ms"]["p99"],
            "added_p50_ms": head["added_ms"]["p50"],
            "added_p99_ms": head["added_ms"]["p99"],
            # the bot's own share, roughly: added minus one more homeserver hop
            "added_minus_floor_p50_ms": head["added_minus_floor_p50_ms"],
            "cpu_s_per_10k_commands": cost["cpu_s_per_10k_commands"],
            "rss_peak_kb_10k_commands": cost["rss_peak_kb"],
        })


def websocket_bench(args, out):
    """The same latency runs over the WebSocket transport (mxhs serves the
    stream), when this build has it."""
    LatencyBench(args, out, transport="websocket").run()


# --------------------------------------------------------------------------
# 2. Idle RSS in 1 / 100 / 5000 joined rooms
# --------------------------------------------------------------------------

def bulk_rooms(url, token, n, invite, threads=1):
    """Create n rooms as the user of `token` (so that user is joined at
    once: one request per room), over kept-alive connections."""
    rooms, lock = [], threading.Lock()
    counter = iter(range(n))

    def worker():
        c = Conn(url, token)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            r = c.req("POST", f"{C}/createRoom", {"name": f"team {i}", "invite": invite,
                                                 "preset": "private_chat"})
            with lock:
                rooms.append(r["room_id"])
        c.close()

    ths = [threading.Thread(target=worker) for _ in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    return rooms


def rss_bench(args, out):
    res = {}
    hs = mx.Homeserver(persist=False)
    try:
        alice = hs.register("alice")
        # make every room before any bot runs: a stopped bot's /sync stays
        # pending at mxhs for up to 30 s and each createRoom wakes it to scan
        # every room, which made the 5,000 rooms 6x slower to create
        made = {}
        # full: each room also has alice invited (a member event in its
        # state and timeline); quick/smoke: the bot alone, faster to make
        invite = [] if args.quick else [alice.user_id]
        for n in args.room_counts:
            local = f"bot{n}"
            hs.ensure_user(local, "botpass")
            setup = hs.login(local, "botpass")
            t = time.monotonic()
            bulk_rooms(hs.url, setup.token, n, invite)
            made[n] = time.monotonic() - t
        for n in args.room_counts:
            local = f"bot{n}"
            bot = mx.Bot(hs, os.path.join(args.work, f"bot-rooms-{n}"),
                         user_id=f"@{local}:localhost", config_extra=bot_config())
            t = time.monotonic()
            bot.start()
            bot.wait_idle(timeout=300)
            ready = time.monotonic() - t
            time.sleep(args.settle_s)
            m1 = proc_mem_kb(bot.proc.pid)
            # a restart: the same rooms from the stored position
            bot.stop()
            bot.start()
            bot.wait_idle(timeout=300)
            time.sleep(args.settle_s)
            m2 = proc_mem_kb(bot.proc.pid)
            bot.stop()
            res[str(n)] = {"rooms": n, "members": "bot" + (" + 1 invited" if invite else ""),
                           "create_rooms_s": round(made[n], 1),
                           "first_sync_to_idle_s": round(ready, 2),
                           "rss_idle_kb": m1.get("VmRSS"), "rss_peak_kb": m1.get("VmHWM"),
                           "rss_anon_idle_kb": m1.get("RssAnon"),
                           "rss_file_idle_kb": m1.get("RssFile"),
                           "restart_rss_idle_kb": m2.get("VmRSS"),
                           "restart_rss_peak_kb": m2.get("VmHWM")}
            log(f"rss: {n} rooms (made in {made[n]:.1f} s): idle {m1.get('VmRSS')} kB (anon "
                f"{m1.get('RssAnon')}, file {m1.get('RssFile')}), peak "
                f"{m1.get('VmHWM')} kB; after a restart idle {m2.get('VmRSS')} kB, peak "
                f"{m2.get('VmHWM')} kB")
    finally:
        hs.stop()
    out["rss"] = res
    for n in (1, 100, 5000):
        if str(n) in res:
            out["keys"][f"rss_peak_kb_{n}_rooms"] = res[str(n)]["rss_peak_kb"]
            out["keys"][f"rss_idle_kb_{n}_rooms"] = res[str(n)]["rss_idle_kb"]


# --------------------------------------------------------------------------
# 3. Start-up: process start to first /sync request and first completed sync
# --------------------------------------------------------------------------

def time_startup(hs, bot, user_id, poll):
    """Start bot; -> (ms to its first /sync request, ms to its first long-poll
    pending = first sync done and applied)."""
    key = f"GET {C}/sync"

    def sync_count():
        st = poll.req("GET", "/_test/stats")
        return st["by_user"].get(user_id, {}).get(key, 0), st["syncing"].get(user_id, [])

    n0, _ = sync_count()
    t0 = time.monotonic()
    bot.start()
    first_req = done = None
    deadline = t0 + 30
    while time.monotonic() < deadline:
        n, waiting = sync_count()
        now = time.monotonic()
        if first_req is None and n > n0:
            first_req = (now - t0) * 1000
        if waiting:
            done = (now - t0) * 1000
            if first_req is None:
                first_req = done
            break
        if not bot.alive():
            raise RuntimeError("bot exited during start-up:\n" + bot.log()[-2000:])
    return first_req, done


def inflate_db(path, target_mb):
    """Grow a bot database to target_mb with plausible history: sent outbox
    rows (the bot's past replies) and, where the tables exist, experiment
    notes. Only rows the bot keeps forever are added."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    text = ("Noted on E-1: the pilot in the north team halved the nights in B&B; we will "
            "keep the text reminders and try the phone call next week. ") * 4
    content = json.dumps({"msgtype": "m.notice", "body": text, "format": "org.matrix.custom.html",
                          "formatted_body": "<p>" + text + "</p>", "m.mentions": {}})
    i = 0
    while os.path.getsize(path) + (os.path.getsize(path + "-wal")
                                   if os.path.exists(path + "-wal") else 0) < target_mb * 1e6:
        rows = [(f"bench.fill.{i + k}", "send", "!fill:localhost", "m.room.message", content,
                 "done", 1, f"$fill{i + k}", 1700000000 + i + k, 1700000000 + i + k)
                for k in range(5000)]
        db.executemany("INSERT INTO outbox(txn_id, kind, room_id, event_type, content, state,"
                       " attempts, event_id, created_at, done_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                       rows)
        db.commit()
        i += 5000
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return os.path.getsize(path)


def startup_bench(args, out):
    hs = mx.Homeserver(persist=False)
    res = {}
    try:
        alice = hs.register("alice")
        poll = Conn(hs.url)
        reps = args.startup_reps
        empty_req, empty_done = [], []
        for i in range(reps):
            local = f"start{i}"
            hs.ensure_user(local, "botpass")
            setup = hs.login(local, "botpass")
            bulk_rooms(hs.url, setup.token, 10, [alice.user_id], threads=1)
            bot = mx.Bot(hs, os.path.join(args.work, f"bot-start-{i}"),
                         user_id=f"@{local}:localhost", config_extra=bot_config())
            r, d = time_startup(hs, bot, bot.user_id, poll)
            empty_req.append(r)
            empty_done.append(d)
            bot.stop()
        # the last one: fill its database to 100 MB and start it again
        size = inflate_db(bot.db_path, args.db_mb)
        big_req, big_done = [], []
        room = bulk_rooms(hs.url, hs.login(f"start{reps - 1}", "botpass").token, 1,
                          [alice.user_id], threads=1)[0]
        alice.join(room)
        for i in range(reps):
            alice.send_text(room, f"while you were away {i}")   # the first sync has news
            r, d = time_startup(hs, bot, bot.user_id, poll)
            big_req.append(r)
            big_done.append(d)
            bot.stop()
        res = {"reps": reps, "rooms": 10,
               "empty_db": {"first_sync_request_ms": summary(empty_req),
                            "first_sync_done_ms": summary(empty_done)},
               "db_bytes": size,
               "big_db": {"first_sync_request_ms": summary(big_req),
                          "first_sync_done_ms": summary(big_done)}}
        log(f"startup: empty database: first /sync request {pct(empty_req, 50):.1f} ms, first "
            f"sync done {pct(empty_done, 50):.1f} ms (median of {reps})")
        log(f"startup: {size / 1e6:.0f} MB database: first /sync request {pct(big_req, 50):.1f} "
            f"ms, first sync done {pct(big_done, 50):.1f} ms")
    finally:
        hs.stop()
    out["startup"] = res
    out["keys"]["startup_ms"] = max(pct(empty_done, 50), pct(big_done, 50))
    out["keys"]["startup_first_request_ms"] = max(pct(empty_req, 50), pct(big_req, 50))


# --------------------------------------------------------------------------
# 4-5. C programs: batch path, store scale
# --------------------------------------------------------------------------

def run_c(prog, argv, timeout):
    if not os.path.exists(prog):
        raise RuntimeError(f"{prog} is missing (bench/run builds it)")
    p = subprocess.run([prog] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    for line in p.stderr.splitlines():
        log(line)
    if p.returncode != 0:
        raise RuntimeError(f"{os.path.basename(prog)} exited {p.returncode}")
    return json.loads(p.stdout)


def batch_bench(args, out):
    argv = ["--dir", args.work] + (["--quick"] if args.quick else [])
    table = command_table()
    if registered(table, "experiment") and registered(table, "challenge"):
        argv += ["--setup-cmd", '!challenge new "Bench challenge"',
                 "--setup-cmd", '!exp new C-1 "Bench" "We believe X will result in Y. We will '
                 'know when Z."',
                 "--cmd", "!ping", "--cmd", '!exp note E-1 "batch note %d"']
    r = run_c(os.path.join(args.build, "bench", "bench_batch"), argv, 600)
    out["batch"] = r
    out["keys"]["batch_mb_per_s"] = r["batch_mb_per_s"]
    out["keys"]["batch_events_per_s"] = r["batch_events_per_s"]
    out["keys"]["one_command_batch_p50_ms"] = r["one_command"]["p50_ms"]


def store_bench(args, out):
    prog = os.path.join(args.build, "bench", "bench_store")
    argv = ["--dir", args.work] + (["--quick"] if args.quick else [])
    r = run_c(prog, argv, 900)
    out["store"] = r
    out["keys"]["list_query_ms_100k"] = r.get("list_query_ms_100k")


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

TARGETS = {
    "added_p50_ms": ("<=", 1.0), "added_p99_ms": ("<=", 5.0),
    "rss_peak_kb_100_rooms": ("<=", 10 * 1024), "rss_peak_kb_5000_rooms": ("<=", 64 * 1024),
    "batch_mb_per_s": (">=", 100.0), "batch_events_per_s": (">=", 50000.0),
    "startup_first_request_ms": ("<=", 100.0), "list_query_ms_100k": ("<=", 10.0),
    "dm_burst_last_prompt_s": ("<=", 15.0), "dm_burst_command_reply_s": ("<=", 1.0),
    "rss_peak_kb_5000_rooms_first_sync": ("<=", 48 * 1024),
}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def table(out):
    lines = []
    k = out["keys"]
    lines.append(f"tlbot benchmarks ({out['mode']}), {out['host']['cpus']} CPUs, "
                 f"{out['host']['platform']}, load average {out['host']['loadavg_start'][0]} at "
                 f"the start, {out['host'].get('loadavg_end', ['?'])[0]} at the end")
    lines.append("")
    w = max([34] + [len(key) for key in k])
    lines.append(f"{'key':{w}s} {'value':>12s}   target")
    for key in sorted(k):
        tgt = TARGETS.get(key)
        note = ""
        if tgt and k[key] is not None:
            ok = k[key] <= tgt[1] if tgt[0] == "<=" else k[key] >= tgt[1]
            note = f"{tgt[0]} {fmt(tgt[1])}  {'met' if ok else 'MISSED'}"
        lines.append(f"{key:{w}s} {fmt(k[key]):>12s}   {note}")
    for lat in [out.get("latency"), out.get("latency_websocket")]:
        if not lat:
            continue
        lines.append("")
        lines.append(f"latency over {lat.get('transport', 'sync')} (ms; {lat['senders']} senders in "
                     f"{lat['rooms']} rooms; floor = the command seen by another user, added = "
                     "reply seen minus command seen)")
        lines.append(f"{'command':8s}{'mode':8s}{'rate':>6s}{'n':>6s}{'miss':>5s}"
                     f"{'floor50':>9s}{'floor99':>9s}{'reply50':>9s}{'reply95':>9s}"
                     f"{'reply99':>9s}{'replymax':>9s}{'add50':>8s}{'add95':>8s}{'add99':>8s}"
                     f"{'addmax':>8s}{'cpu_s':>7s}")
        for r in lat["runs"]:
            f, rp, ad = r["floor_ms"], r["reply_ms"], r["added_ms"]
            lines.append(f"{r['command']:8s}{r['mode']:8s}{str(r['rate'] or '-'):>6s}"
                         f"{r['commands']:>6d}{r['missing_replies']:>5d}"
                         f"{fmt(f.get('p50')):>9s}{fmt(f.get('p99')):>9s}"
                         f"{fmt(rp.get('p50')):>9s}{fmt(rp.get('p95')):>9s}"
                         f"{fmt(rp.get('p99')):>9s}{fmt(rp.get('max')):>9s}"
                         f"{fmt(ad.get('p50')):>8s}{fmt(ad.get('p95')):>8s}"
                         f"{fmt(ad.get('p99')):>8s}{fmt(ad.get('max')):>8s}"
                         f"{r['bot_cpu_s']:>7.2f}")
        lines.append(f"write command: {lat['write_command']}")
    c = out.get("cost")
    if c:
        lines.append("")
        lines.append(f"cost: {c['commands']} commands ({'+'.join(c['kinds'])}) at "
                     f"{c['rate']}/s: bot CPU {c['bot_cpu_s']} s = {c['cpu_s_per_10k_commands']} "
                     f"s per 10k; RSS {c['rss_kb_after']} kB, peak {c['rss_peak_kb']} kB")
    rs = out.get("rss")
    if rs:
        lines.append("")
        lines.append(f"{'rooms':>6s}{'idle kB':>10s}{'anon kB':>10s}{'file kB':>10s}"
                     f"{'peak kB':>10s}{'restart idle':>14s}{'restart peak':>14s}{'to idle s':>11s}")
        for n, r in rs.items():
            lines.append(f"{n:>6s}{r['rss_idle_kb']:>10d}{r['rss_anon_idle_kb']:>10d}"
                         f"{r['rss_file_idle_kb']:>10d}{r['rss_peak_kb']:>10d}"
                         f"{r['restart_rss_idle_kb']:>14d}{r['restart_rss_peak_kb']:>14d}"
                         f"{r['first_sync_to_idle_s']:>11.2f}")
    s = out.get("startup")
    if s:
        lines.append("")
        e, b = s["empty_db"], s["big_db"]
        lines.append(f"start-up (median of {s['reps']}, ms): empty db: first /sync request "
                     f"{fmt(e['first_sync_request_ms']['p50'])}, first sync done "
                     f"{fmt(e['first_sync_done_ms']['p50'])}; {s['db_bytes'] / 1e6:.0f} MB db: "
                     f"{fmt(b['first_sync_request_ms']['p50'])}, "
                     f"{fmt(b['first_sync_done_ms']['p50'])}")
    b = out.get("batch")
    if b:
        lines.append("")
        lines.append(f"{'batch':18s}{'MB':>7s}{'events':>8s}{'cmds':>6s}{'parse ms':>10s}"
                     f"{'apply ms':>10s}{'MB/s':>8s}{'events/s':>10s}")
        for name in ("batch_1mb", "batch_10mb", "batch_10k_events"):
            r = b[name]
            lines.append(f"{name:18s}{r['bytes'] / 1e6:>7.2f}{r['events']:>8d}{r['commands']:>6d}"
                         f"{r['parse_ms']:>10.1f}{r['apply_commit_ms']:>10.1f}"
                         f"{r['mb_per_s']:>8.1f}{r['events_per_s']:>10.0f}")
        o = b["one_command"]
        lines.append(f"one-command batch ({o['command']}): p50 {o['p50_ms']:.3f} ms, p99 "
                     f"{o['p99_ms']:.3f} ms, max {o['max_ms']:.3f} ms")
    st = out.get("store")
    if st:
        lines.append("")
        lines.append(f"store scale ({st.get('experiments')} experiments, {st.get('challenges')} "
                     f"challenges; ms per command incl. its transaction):")
        for q_ in st.get("queries", []):
            lines.append(f"  {q_['command']:44s} p50 {fmt(q_.get('p50_ms')):>8s}  max "
                         f"{fmt(q_.get('max_ms')):>8s}  {q_.get('note', '')}")
        for p in st.get("pending", []):
            lines.append(f"  pending: {p}")
    import loaded  # bench/loaded.py: the loaded homeserver, the peers, the DM burst
    loaded.loaded_table(out, lines)
    import encrypted  # bench/encrypted.py: bench_crypto, plain vs encrypted !ping
    encrypted.e2ee_table(out, lines)
    dm = out.get("dm_burst")
    if dm:
        lines.append("")
        lines.append(f"DM burst: {dm['prompts']} prompts due at once in {dm['rooms']} rooms "
                     f"(send {dm['send_ms']} ms, {dm['workers']} workers): the last sent after "
                     f"{fmt(dm['last_prompt_s'])} s; a command typed then answered in "
                     f"{fmt(dm['command_reply_s'])} s")
    for e in out.get("errors", []):
        lines.append(f"ERROR: {e}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--only",
                    default="latency,websocket,rss,startup,batch,store,loaded,dmburst,e2ee")
    a = ap.parse_args()
    if a.smoke:
        a.quick = True
    mode = "smoke" if a.smoke else "quick" if a.quick else "full"
    if a.smoke:
        a.closed_n, a.open_s_20, a.open_s_100, a.cost_n = 5, 1, 1, 200
        a.room_counts, a.settle_s, a.startup_reps, a.db_mb = [1, 100], 0.3, 1, 5
        a.loaded_closed_n, a.loaded_open_s, a.loaded_rooms, a.loaded_drain_s = 2, 1, [10], 20
        a.dm_rooms = 20
        a.e2ee_n = 5
    elif a.quick:
        a.closed_n, a.open_s_20, a.open_s_100, a.cost_n = 15, 2, 3, 1000
        a.room_counts, a.settle_s, a.startup_reps, a.db_mb = [1, 100, 5000], 0.5, 3, 100
        a.loaded_closed_n, a.loaded_open_s, a.loaded_rooms, a.loaded_drain_s = 10, 3, [1, 10], 40
        a.dm_rooms = 200
        a.e2ee_n = 50
    else:
        a.closed_n, a.open_s_20, a.open_s_100, a.cost_n = 100, 15, 20, 10000
        a.room_counts, a.settle_s, a.startup_reps, a.db_mb = [1, 100, 5000], 2.0, 5, 100
        a.loaded_closed_n, a.loaded_open_s, a.loaded_rooms, a.loaded_drain_s = 25, 10, [1, 10], 90
        a.dm_rooms = 200
        a.e2ee_n = 200
    os.environ.setdefault("TLBOT_BIN", os.path.join(a.build, "tlbot"))
    a.work = mx.tmpdir("tlbot-bench-")
    os.makedirs(a.out, exist_ok=True)
    out = {"mode": mode, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "loadavg_start": [round(x, 2) for x in os.getloadavg()]},
           "bot": os.environ["TLBOT_BIN"], "keys": {}, "errors": []}
    try:
        out["git"] = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    steps = [("batch", batch_bench), ("store", store_bench), ("startup", startup_bench),
             ("rss", rss_bench), ("latency", lambda x, o: LatencyBench(x, o).run()),
             ("websocket", websocket_bench)]
    import loaded  # bench/loaded.py
    steps += [("loaded", loaded.loaded_bench), ("dmburst", loaded.dm_burst_bench)]
    import encrypted  # bench/encrypted.py
    steps += [("e2ee", encrypted.e2ee_bench)]
    only = set(a.only.split(","))
    t = time.monotonic()
    for name, fn in steps:
        if name not in only:
            continue
        log(f"== {name}")
        try:
            fn(a, out)
        except Exception as e:      # report it, go on with the others
            import traceback
            traceback.print_exc()
            out["errors"].append(f"{name}: {e}")
    out["seconds"] = round(time.monotonic() - t, 1)
    out["host"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    for key in ("floor_p50_ms", "reply_p50_ms", "reply_p99_ms", "added_p50_ms", "added_p99_ms",
                "cpu_s_per_10k_commands", "rss_peak_kb_100_rooms", "rss_peak_kb_5000_rooms",
                "batch_mb_per_s", "batch_events_per_s", "startup_ms", "list_query_ms_100k",
                "e2ee_decrypt_us_p50", "e2ee_encrypt_us_p50", "e2ee_ping_extra_p50_ms",
                "e2ee_store_bytes_per_1000_megolm_sessions"):
        out["keys"].setdefault(key, None)
    # round the headline figures
    for key, v in out["keys"].items():
        if isinstance(v, float):
            out["keys"][key] = round(v, 3)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    text = table(out)
    with open(os.path.join(a.out, "results.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    print(f"\n({mode} run in {out['seconds']} s; {os.path.join(a.out, 'results.json')})")
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
