#!/usr/bin/env python3
"""What the health and metrics listener costs (a benchmark: it prints
figures and never fails on a time).

    python3 bench/metrics_cost.py [--commands 10000] [--rounds 2]

Runs the real bot (TLBOT_BIN, default build/tlbot) against the local test
homeserver with metrics_listen set, sends N `!ping` commands from 4 senders
and waits until the bot has answered them all (tlbot_commands_total), once
with nobody scraping and once with /metrics scraped every second; prints
the bot's CPU time (utime + stime from /proc) per 10,000 commands for each,
a fresh homeserver and bot for each run, the order alternating (off, on,
on, off). Then times 2,000 sequential GET /healthz and GET /metrics on a
kept-alive connection (median, p99)."""

import argparse
import http.client
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
import mx  # noqa: E402

sys.path.insert(0, HERE)
from bench import Conn, proc_cpu_s, q  # noqa: E402

mx.MXHS = os.path.join(HERE, "mxhs_nodelay.py")


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def run_commands(hs, senders, room, n, port, scrape):
    stop = threading.Event()
    scrapes = [0]

    def scraper():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.wait(1.0):
            c.request("GET", "/metrics")
            c.getresponse().read()
            scrapes[0] += 1
        c.close()

    before = metric(port, "tlbot_commands_total")
    t = threading.Thread(target=scraper) if scrape else None
    if t:
        t.start()
    per = n // len(senders)

    def send(si):
        conn = Conn(hs.url, senders[si].token)
        for i in range(per):
            txn = f"b{si}-{time.monotonic_ns()}-{i}"
            conn.req("PUT", f"/_matrix/client/v3/rooms/{q(room)}/send/m.room.message/{txn}",
                     {"msgtype": "m.text", "body": "!ping"})
        conn.close()

    return before, per * len(senders), t, stop, scrapes, send


def measure(n, scrape, timings=False):
    """One fresh homeserver and bot: n commands; -> CPU s per 10k commands."""
    with mx.Homeserver() as hs:
        users = [hs.register(f"u{i}") for i in range(4)]
        port = mx.free_port()
        bot = mx.Bot(hs, mx.tmpdir(), config_extra={
            "metrics_listen": str(port), "rate_limit_per_min": 0, "log_level": "warn"})
        bot.start()
        try:
            room = users[0].create_room(name="bench", invite=[bot.user_id] +
                                        [u.user_id for u in users[1:]])
            for u in users[1:]:
                u.join(room)
            users[0].wait_membership(room, bot.user_id, "join", timeout=20)
            bot.wait_idle(timeout=20)
            before, n, t, stop, scrapes, send = run_commands(hs, users, room, n, port, scrape)
            cpu0, t0 = proc_cpu_s(bot.proc.pid), time.monotonic()
            ths = [threading.Thread(target=send, args=(i,)) for i in range(len(users))]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
            deadline = time.monotonic() + 1200
            while metric(port, "tlbot_commands_total") < before + n:
                if time.monotonic() > deadline:
                    raise SystemExit("the bot did not answer every command")
                time.sleep(0.2)
            while metric(port, "tlbot_outbox_depth") > 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            cpu, wall = proc_cpu_s(bot.proc.pid) - cpu0, time.monotonic() - t0
            stop.set()
            if t:
                t.join()
            per10k = cpu * 10000 / n
            print(f"scrape={'1/s' if scrape else 'off'}: {n} commands in {wall:.1f} s, bot CPU "
                  f"{cpu:.2f} s = {per10k:.2f} s per 10k commands ({scrapes[0]} scrapes)",
                  flush=True)
            if timings:
                for path in ("/healthz", "/metrics"):
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    times = []
                    cpu0 = proc_cpu_s(bot.proc.pid)
                    for _ in range(2000):
                        t0 = time.perf_counter()
                        c.request("GET", path)
                        body = c.getresponse().read()
                        times.append((time.perf_counter() - t0) * 1000)
                    cpu = proc_cpu_s(bot.proc.pid) - cpu0
                    c.close()
                    times.sort()
                    print(f"GET {path}: median {statistics.median(times):.3f} ms, p99 "
                          f"{times[int(len(times) * 0.99)]:.3f} ms, max {times[-1]:.3f} ms over "
                          f"2000 (body {len(body)} bytes; bot CPU {cpu * 1000 / 2000:.3f} ms "
                          "each)", flush=True)
            return per10k
        finally:
            bot.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--commands", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    results = {False: [], True: []}
    # a fresh homeserver and bot for each run (a growing database would
    # favour whichever ran first), the order alternating: off on on off
    order = []
    for r in range(args.rounds):
        order += [False, True] if r % 2 == 0 else [True, False]
    for i, scrape in enumerate(order):
        results[scrape].append(measure(args.commands, scrape, timings=i == len(order) - 1))
    for scrape in (False, True):
        v = results[scrape]
        print(f"CPU per 10k commands, scraping {'every second' if scrape else 'off'}: median "
              f"{statistics.median(v):.2f} s (runs: " + ", ".join(f"{x:.2f}" for x in v) + ")")


if __name__ == "__main__":
    main()
