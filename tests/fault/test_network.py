#!/usr/bin/env python3
"""Network trouble between the bot and its homeserver: the homeserver
killed and restarted mid-run; connections dropped during a send (before and
after the homeserver executed it) and during a /sync long-poll; 429 storms
with retry_after_ms; 5xx storms; answers delayed past the bot's client
timeout; a /sync body cut in half; a limited timeline (gap) whose filling
itself fails at first.  In each: nothing lost, nothing doubled, and the bot
recovers within its backoff cap (60 s) of the trouble ending.

Faults are injected into the Client-Server HTTP API (the homeserver's
/_test/faults), so this runs the /sync transport; the WebSocket transport
has its own tests (tests/integration/test_websocket.py).
Prints per scenario: commands, faults fired, lost, duplicated, recovery."""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import body, count_replies, figures, mx  # noqa: E402
import fixtures  # noqa: E402

BACKOFF_CAP_S = 60
SYNC_TIMEOUT_MS = 2000          # the bot's client timeout for /sync is this + 20 s
SEND_CLIENT_TIMEOUT_S = 30      # bot/transport/matrix.c SHORT_TIMEOUT_MS


class Network(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.addClassCleanup(cls.hs.stop)
        cls.alice = cls.hs.register("alice")
        cls.bob = cls.hs.register("bob")
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={
            "rate_limit_per_min": 0, "transport": "sync", "sync_timeout_ms": SYNC_TIMEOUT_MS,
            "timeline_limit": 10})
        cls.bot.start()
        cls.addClassCleanup(cls.bot.stop)
        cls.room = cls.alice.create_room(name="Network trouble", invite=[cls.bot.user_id,
                                                                         cls.bob.user_id])
        cls.bob.join(cls.room)
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=20)
        cls.all_cmds = []

    @classmethod
    def tearDownClass(cls):
        lost, dup = count_replies(cls.hs, None, cls.bot.user_id, [(cls.room, e) for e in cls.all_cmds])
        figures("network total", commands=len(cls.all_cmds), lost=len(lost), duplicated=len(dup))

    def setUp(self):
        self.hs.clear_faults()
        self.hs.reset_stats()
        self.assertTrue(self.bot.alive(), self.bot.log()[-2000:])
        self.bot.wait_idle(timeout=30)
        self.mark = self.bot.log_mark()

    # ---- helpers ----------------------------------------------------------------

    def commands(self, n, text="!ping"):
        evs = []
        for i in range(n):
            user = self.alice if i % 2 == 0 else self.bob
            evs.append(user.send_text(self.room, text))
        self.all_cmds.extend(evs)
        return evs

    def settle(self, evs, timeout):
        """Wait until every command has a reply; -> seconds waited."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            lost, _ = count_replies(self.hs, None, self.bot.user_id, [(self.room, e) for e in evs])
            if not lost:
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                if os.environ.get("TLBOT_FAULT_DEBUG"):
                    import subprocess
                    print(self.hs.stats(), file=sys.stderr)
                    subprocess.run(["bash", "-c", f"ss -tnp | grep -e {self.bot.proc.pid} -e {self.hs.port}; ps aux | grep mxhs"])
                self.fail(f"{len(lost)} of {len(evs)} commands unanswered after {timeout} s; "
                          f"log tail:\n{self.bot.log()[-3000:]}")
            time.sleep(0.1)

    def exactly_once(self, name, evs, recovery, **extra):
        self.bot.wait_idle(timeout=60)
        time.sleep(0.5)
        lost, dup = count_replies(self.hs, None, self.bot.user_id, [(self.room, e) for e in evs])
        fired = self.hs.stats().get("faults_fired_by_kind", {})
        figures(f"network: {name}", commands=len(evs), faults_fired=fired, lost=len(lost),
                duplicated=len(dup), recovery_s=round(recovery, 1), **extra)
        self.assertEqual(lost, [])
        self.assertEqual(dup, [])
        self.assertLess(recovery, BACKOFF_CAP_S + 5)

    def log_since(self):
        return self.bot.log()[self.mark:]

    # ---- scenarios -------------------------------------------------------------

    def test_homeserver_restarted_mid_run(self):
        evs = self.commands(4)
        self.hs.restart()           # SIGKILL: state file kept, connections gone
        evs += self.commands(4)
        time.sleep(0.3)
        self.hs.restart()
        t_up = time.monotonic()
        evs += self.commands(4)
        recovery = self.settle(evs, 90)
        self.exactly_once("homeserver restarted twice", evs, time.monotonic() - t_up,
                          first_reply_wait=round(recovery, 1))

    def test_dropped_during_send(self):
        bot = self.bot.user_id
        # executed, then the answer lost: the resend must be a duplicate txnId
        self.hs.fault("drop", path="/send/", method="PUT", count=4, execute=True, user=bot)
        # dropped before the homeserver did anything
        self.hs.fault("drop", path="/send/", method="PUT", count=3, user=bot)
        evs = self.commands(6)
        recovery = self.settle(evs, 90)
        self.exactly_once("connection dropped during a send", evs, recovery)
        self.assertGreaterEqual(self.hs.stats()["faults_fired_by_kind"].get("drop", 0), 7)

    def test_dropped_during_long_poll(self):
        bot = self.bot.user_id
        # a pending long-poll is interrupted by the fault, then the next polls;
        # execute=True: the batch was computed, the answer lost
        self.hs.fault("drop", path="/sync", count=2, user=bot)
        self.hs.fault("drop", path="/sync", count=2, execute=True, user=bot)
        evs = self.commands(5)
        recovery = self.settle(evs, 90)
        self.exactly_once("connection dropped during a long-poll", evs, recovery)

    def test_429_storms(self):
        bot = self.bot.user_id
        self.hs.fault("status", path="/send/", method="PUT", count=12, status=429,
                      errcode="M_LIMIT_EXCEEDED", retry_after_ms=300, user=bot)
        self.hs.fault("status", path="/sync", count=6, status=429, errcode="M_LIMIT_EXCEEDED",
                      retry_after_ms=250, user=bot)
        self.hs.fault("status", path="/send/", method="PUT", count=4, status=429,
                      errcode="M_LIMIT_EXCEEDED", retry_after_ms=400, retry_after_header=True,
                      user=bot)
        evs = self.commands(6)
        recovery = self.settle(evs, 90)
        log = self.log_since()
        self.exactly_once("429 storms (send and sync)", evs, recovery)
        self.assertRegex(log, r"retrying in 3\d\d ms")     # retry_after_ms honoured
        self.assertRegex(log, r"sync: .*retrying in 2\d\d ms")

    def test_5xx_storms(self):
        bot = self.bot.user_id
        # one of each in a row: the backoff doubles from 250 ms (send) and
        # 500 ms (sync); more in a row only makes the test longer
        for status in (500, 502, 503):
            self.hs.fault("status", path="/send/", method="PUT", count=1, status=status, user=bot)
            self.hs.fault("status", path="/sync", count=1, status=status, user=bot)
        self.hs.fault("status", path="/send/", method="PUT", count=1, status=504, user=bot,
                      body="<html>Gateway Timeout</html>", content_type="text/html")
        evs = self.commands(6)
        t0 = time.monotonic()
        recovery = self.settle(evs, 120)
        self.exactly_once("5xx storms (send and sync)", evs, recovery)
        # no longer than the waits add up to (equal jitter never exceeds the
        # doubled delay): send 0.25 + 0.5 + 1 + 2 s, sync 0.5 + 1 + 2 s, one
        # after the other at worst, plus 2 s to answer
        self.assertLess(time.monotonic() - t0, 3.75 + 3.5 + 2)

    def test_answers_delayed_past_client_timeout(self):
        bot = self.bot.user_id
        sync_client_timeout = SYNC_TIMEOUT_MS / 1000 + 20
        # the homeserver answers the next poll and the next send only after
        # the bot gave up on them (the send is still executed, late)
        self.hs.fault("delay", path="/sync", count=1, delay_ms=int((sync_client_timeout + 2) * 1000),
                      user=bot)
        self.hs.fault("delay", path="/send/", method="PUT", count=1,
                      delay_ms=(SEND_CLIENT_TIMEOUT_S + 2) * 1000, user=bot)
        time.sleep(0.2)
        evs = self.commands(3)
        t0 = time.monotonic()
        recovery = self.settle(evs, 120)
        # the late answers land, and the bot's retries of the same txnId
        # must not have made a second message
        time.sleep(max(0.0, SEND_CLIENT_TIMEOUT_S + 3 - (time.monotonic() - t0)))
        log = self.log_since()
        self.exactly_once("answers delayed past the client timeout", evs, recovery)
        self.assertRegex(log, r"(?i)timeout|timed out")

    def test_sync_body_cut_in_half(self):
        bot = self.bot.user_id
        self.hs.fault("truncate", path="/sync", count=3, user=bot)
        evs = self.commands(4)
        recovery = self.settle(evs, 90)
        self.exactly_once("/sync body cut in half", evs, recovery)

    def test_limited_timeline_gap(self):
        bot = self.bot.user_id
        # hold the bot's next poll for 3 s while 35 commands arrive: more
        # than its timeline_limit (10), so the batch is `limited`; the first
        # two /messages calls that fill the gap fail
        self.hs.fault("delay", path="/sync", count=1, delay_ms=3000, user=bot)
        self.hs.fault("status", path="/messages", count=2, status=502, user=bot)
        first = self.commands(1)
        time.sleep(0.3)
        evs = first + self.commands(35)
        recovery = self.settle(evs, 90)
        log = self.log_since()
        self.exactly_once("limited timeline with a failing gap fill", evs, recovery)
        self.assertIn("limited timeline: filled a gap", log)

    def test_everything_at_once(self):
        bot = self.bot.user_id
        self.hs.fault("drop", path="/send/", method="PUT", count=3, execute=True, user=bot,
                      probability=0.5)
        self.hs.fault("status", path=".*", count=6, status=503, user=bot, probability=0.3)
        self.hs.fault("status", path=".*", count=6, status=429, retry_after_ms=200, user=bot,
                      probability=0.3)
        self.hs.fault("truncate", path="/sync", count=2, user=bot, probability=0.5)
        evs = self.commands(10)
        self.hs.restart()
        evs += self.commands(10)
        recovery = self.settle(evs, 120)
        self.exactly_once("mixed faults and a homeserver restart", evs, recovery)

    def test_z_figures_consistent(self):
        # runs last: the whole run, every command, exactly once
        self.bot.wait_idle(timeout=30)
        lost, dup = count_replies(self.hs, None, self.bot.user_id,
                                  [(self.room, e) for e in self.all_cmds])
        self.assertEqual((lost, dup), ([], []))
        # and the bot never got stuck on a bad batch for good
        self.assertNotRegex(self.bot.log(), r"fatal|Assertion")
        self.assertTrue(re.search(r"sync: recovered after \d+ failed attempts", self.bot.log()))
        _ = body


if __name__ == "__main__":
    fixtures.main(verbosity=2)
