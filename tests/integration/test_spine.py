#!/usr/bin/env python3
"""The spine, as a person in the room sees it: invite -> join, !ping, !help,
unknown commands, threads, allow-lists, restarts and crashes (kill -9)
answered exactly once, 429 and 5xx storms, limited timelines, shutdown."""

import collections
import os
import random
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks  # noqa: E402


def replies_by_command(hs, room, bot_user):
    """{command event id: [reply events]} for every bot reply in room."""
    out = collections.defaultdict(list)
    for ev in hs.all_events(room):
        if ev.get("sender") != bot_user or ev.get("type") != "m.room.message":
            continue
        rel = ev.get("content", {}).get("m.relates_to", {})
        target = rel.get("m.in_reply_to", {}).get("event_id")
        if target:
            out[target].append(ev)
    return out


class Spine(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.hs.start()
        cls.addClassCleanup(cls.hs.stop)
        cls.alice = cls.hs.register("alice")
        cls.bob = cls.hs.register("bob")
        cls.eve = cls.hs.register("eve")
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={
            "allowed_users": ["@alice:localhost", "@bob:localhost"],
            "rate_limit_per_min": 0})
        cls.bot.start()
        cls.addClassCleanup(cls.bot.stop)
        cls.room = cls.alice.create_room(name="Sheffield TA", invite=[cls.bot.user_id, "@bob:localhost"])
        cls.bob.join(cls.room)
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)

    def setUp(self):
        self.hs.clear_faults()
        if not self.bot.alive():
            self.bot.start()

    def test_ping(self):
        ev, r = self.ask_ev("!ping")
        self.assertEqual(r["content"]["body"], "pong")
        self.assertEqual(r["content"]["msgtype"], "m.notice")
        self.assertIn("m.mentions", r["content"])
        self.assertEqual(r["content"]["format"], "org.matrix.custom.html")
        # exactly one reply, even after the bot has had time to misbehave
        self.bot.wait_idle()
        self.assertEqual(len(replies_by_command(self.hs, self.room, self.bot.user_id)[ev]), 1)

    def test_slash_prefix_and_case(self):
        _, r = self.ask_ev("/PING")
        self.assertEqual(r["content"]["body"], "pong")

    def test_help(self):
        _, r = self.ask_ev("!help")
        body = r["content"]["body"]
        self.assertIn("!ping", body)
        self.assertIn("!help", body)
        self.assertIn("<ul>", r["content"]["formatted_body"])
        _, r = self.ask_ev("!help ping")
        self.assertIn("Usage: !ping", r["content"]["body"])
        _, r = self.ask_ev("!help nosuch")
        self.assertIn("no command named 'nosuch'", r["content"]["body"])

    def test_unknown_command_suggests(self):
        _, r = self.ask_ev("!pign")
        self.assertIn("unknown command !pign", r["content"]["body"])
        self.assertIn("did you mean !ping", r["content"]["body"])
        _, r = self.ask_ev("!zzzzzzzz")
        self.assertIn("!help lists all commands", r["content"]["body"])

    def test_parse_error_is_one_line(self):
        _, r = self.ask_ev('!help "unbalanced')
        self.assertIn("unbalanced quote", r["content"]["body"])
        self.assertNotIn("\n", r["content"]["body"])
        _, r = self.ask_ev("!ping extra")
        self.assertIn("unexpected argument 'extra'", r["content"]["body"])

    def test_thread_reply_stays_in_thread(self):
        root = self.alice.send_text(self.room, "stand-up thread")
        ev = self.alice.send_text(self.room, "!ping", thread_root=root)
        r = self.alice.wait_reply(self.room, ev, timeout=20)
        rel = r["content"]["m.relates_to"]
        self.assertEqual(rel["rel_type"], "m.thread")
        self.assertEqual(rel["event_id"], root)
        self.assertTrue(rel["is_falling_back"])
        self.assertEqual(rel["m.in_reply_to"]["event_id"], ev)

    def test_html_escaped(self):
        _, r = self.ask_ev("!help <b>x</b>")
        self.assertNotIn("<b>x</b>", r["content"]["formatted_body"])
        self.assertIn("&lt;b&gt;", r["content"]["formatted_body"])

    def test_ignores_outsiders_notices_and_plain_text(self):
        # eve is not in the allow-list; let her into the room so she can speak
        self.alice.invite(self.room, self.eve.user_id)
        self.eve.join(self.room)
        ev_eve = self.eve.send_text(self.room, "!ping")
        ev_notice = self.alice.send_text(self.room, "!ping", msgtype="m.notice")
        ev_text = self.alice.send_text(self.room, "ping without a prefix")
        ev_sync = self.alice.send_text(self.room, "!ping")  # a marker processed after the others
        self.alice.wait_reply(self.room, ev_sync, timeout=20)
        replies = replies_by_command(self.hs, self.room, self.bot.user_id)
        for ev in (ev_eve, ev_notice, ev_text):
            self.assertNotIn(ev, replies)

    def test_invite_from_outsider_declined(self):
        room = self.eve.create_room(name="eve's", invite=[self.bot.user_id])
        self.eve.wait_membership(room, self.bot.user_id, "leave", timeout=15)

    def test_restart_between_command_and_reply(self):
        self.bot.stop()
        ev = self.alice.send_text(self.room, "!ping")
        self.bot.start()
        r = self.alice.wait_reply(self.room, ev, timeout=20)
        self.assertEqual(r["content"]["body"], "pong")
        self.bot.wait_idle()
        self.assertEqual(len(replies_by_command(self.hs, self.room, self.bot.user_id)[ev]), 1)

    def test_burst_larger_than_timeline_limit_while_down(self):
        # the bot asks for at most timeline_limit (default 50) events per room;
        # 70 commands while it is down make the next sync `limited`
        self.bot.stop()
        evs = [self.bob.send_text(self.room, "!ping") for _ in range(70)]
        self.bot.start()
        self.alice.wait_reply(self.room, evs[-1], timeout=30)
        self.bot.wait_idle()
        replies = replies_by_command(self.hs, self.room, self.bot.user_id)
        missing = [e for e in evs if len(replies[e]) != 1]
        self.assertEqual(missing, [], f"{len(missing)} of {len(evs)} not answered exactly once")
        self.assertIn("limited timeline: filled a gap", self.bot.log())

    def test_send_429_and_5xx_storms(self):
        self.hs.fault("status", path="/send/", method="PUT", count=6, status=429,
                      errcode="M_LIMIT_EXCEEDED", retry_after_ms=150, user=self.bot.user_id)
        self.hs.fault("status", path="/send/", method="PUT", count=6, status=502, user=self.bot.user_id)
        self.hs.fault("drop", path="/send/", method="PUT", count=3, execute=True, user=self.bot.user_id)
        evs = [self.alice.send_text(self.room, "!ping") for _ in range(5)]
        for ev in evs:
            self.alice.wait_reply(self.room, ev, timeout=60)
        self.bot.wait_idle()
        replies = replies_by_command(self.hs, self.room, self.bot.user_id)
        self.assertEqual([len(replies[e]) for e in evs], [1] * 5)
        self.assertRegex(self.bot.log(), r"retrying in 1[45]\d ms")  # honoured retry_after_ms

    def test_sync_storms(self):
        self.hs.fault("status", path="/sync", count=4, status=500, user=self.bot.user_id)
        self.hs.fault("status", path="/sync", count=2, status=429, errcode="M_LIMIT_EXCEEDED",
                      retry_after_ms=200, user=self.bot.user_id)
        self.hs.fault("truncate", path="/sync", count=2, user=self.bot.user_id)
        ev = self.alice.send_text(self.room, "!ping")
        self.alice.wait_reply(self.room, ev, timeout=60)

    def test_sigterm_during_long_poll_is_quick(self):
        self.bot.wait_idle()
        t0 = time.monotonic()
        code = self.bot.stop(timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual(code, 0)
        self.assertLess(elapsed, 2.0)
        self.assertIn("stopped cleanly", self.bot.log())
        self.bot.start()

    def test_secrets_never_logged(self):
        _, _ = self.ask_ev("!ping")
        log = self.bot.log()
        token = self.hs.login("tlbot", "botpass").token  # a fresh token proves nothing; use the db
        del token
        import sqlite3
        db = sqlite3.connect(self.bot.db_path)
        stored = db.execute("SELECT value FROM kv WHERE key='access_token'").fetchone()[0]
        db.close()
        self.assertNotIn(stored, log)
        self.assertNotIn("botpass", log)

    def test_kill_9_at_random_moments(self):
        rng = random.Random(1234)
        evs, kills = [], 0
        for i in range(100):
            evs.append(self.alice.send_text(self.room, "!ping") if i % 2 else
                       self.bob.send_text(self.room, "!ping"))
            if rng.random() < 0.12:
                time.sleep(rng.random() * 0.2)
                self.bot.kill()
                kills += 1
                self.bot.start()
        self.assertGreaterEqual(kills, 5)
        self.alice.wait_reply(self.room, evs[-1], timeout=60)
        deadline = time.monotonic() + 60
        while True:
            replies = replies_by_command(self.hs, self.room, self.bot.user_id)
            lost = [e for e in evs if len(replies[e]) == 0]
            if not lost or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        doubled = [e for e in evs if len(replies[e]) > 1]
        print(f"\nkill -9: {len(evs)} commands, {kills} kills, {len(lost)} lost, "
              f"{len(doubled)} duplicated", file=sys.stderr)
        self.assertEqual(lost, [])
        self.assertEqual(doubled, [])


class FirstStart(unittest.TestCase):
    def test_history_before_join_not_answered_and_devices_reused(self):
        with mx.Homeserver() as hs:
            alice = hs.register("alice")
            bot = mx.Bot(hs, mx.tmpdir())
            room = alice.create_room(name="old room", invite=[bot.user_id])
            old = alice.send_text(room, "!ping")
            bot.start()
            alice.wait_membership(room, bot.user_id, "join", timeout=15)
            new = alice.send_text(room, "!ping")
            alice.wait_reply(room, new, timeout=20)
            replies = replies_by_command(hs, room, bot.user_id)
            self.assertNotIn(old, replies)
            bot.stop()
            bot.start()
            again = alice.send_text(room, "!ping")
            alice.wait_reply(room, again, timeout=20)
            bot.stop()
            self.assertEqual(bot.log().count("logged in as"), 1, "one password login, then the stored token")


class Startup(unittest.TestCase):
    def run_bot(self, *args, env=None, timeout=20):
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run([mx.Bot.binary(), *args], capture_output=True, text=True,
                              timeout=timeout, env=e)

    def test_version_and_help(self):
        r = self.run_bot("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^tlbot \d+\.\d+\.\d+")
        r = self.run_bot("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--check-config", r.stdout)

    def test_check_config_reports_lines(self):
        d = mx.tmpdir()
        path = os.path.join(d, "bad.yaml")
        with open(path, "w") as f:
            f.write("homeserver: http://127.0.0.1:1\nuser_id: \"@bot:localhost\"\n"
                    "password: pw\nfavourite_colour: blue\ntransport: carrier-pigeon\n")
        os.chmod(path, 0o600)
        r = self.run_bot("--check-config", "-c", path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{path}:4:", r.stderr)
        self.assertIn("favourite_colour", r.stderr)
        self.assertIn(f"{path}:5:", r.stderr)

    def test_environment_alone(self):
        r = self.run_bot("--check-config", env={
            "TLBOT_HOMESERVER": "http://127.0.0.1:1", "TLBOT_USER_ID": "@bot:localhost",
            "TLBOT_ACCESS_TOKEN": "secret-token-value"})
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unknown_token_stops_with_advice(self):
        with mx.Homeserver() as hs:
            hs.ensure_user("tlbot", "botpass")
            bot = mx.Bot(hs, mx.tmpdir(), config_extra={"password": None,
                                                         "access_token": "not-a-real-token-123"})
            bot.start()
            deadline = time.monotonic() + 15
            while bot.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertFalse(bot.alive())
            self.assertNotEqual(bot.proc.returncode, 0)
            log = bot.log()
            self.assertIn("M_UNKNOWN_TOKEN", log)
            self.assertIn("access_token", log)
            self.assertNotIn("not-a-real-token-123", log)


if __name__ == "__main__":
    fixtures.main(verbosity=2)
