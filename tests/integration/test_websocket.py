#!/usr/bin/env python3
"""The WebSocket transport against the local test homeserver (mxhs serves the
stream through wsstream.py): commands and replies over the socket, keepalive,
connections dropped mid-stream and during a send, a slow-consumer close, a
homeserver restart (replies exactly once throughout), `auto` falling back to
/sync within 2 s when the handshake is refused and re-probing later, SIGTERM
within 2 s, and the token in the query string never logged."""

import calendar
import collections
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402

SEND = "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"


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


def log_time(bot, match):
    """Seconds (epoch) of the log line holding a wait_log match."""
    text = bot.log()
    line = text[text.rfind("\n", 0, match.start()) + 1:]
    stamp, frac = line[:19], line[19:23]           # 2026-11-28T12:13:07 .836
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")) + float("0" + frac)


def rest_sends(hs, user):
    return hs.stats()["by_user"].get(user, {}).get(SEND, 0)


class WebSocket(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.alice = cls.hs.register("alice")
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={
            "transport": "websocket", "rate_limit_per_min": 1000},
            env_extra={"TLBOT_WS_PING_S": "4"})
        cls.bot.start()
        cls.room = cls.alice.create_room(name="ws", invite=[cls.bot.user_id])
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)
        cls.bot.wait_log(r"transport: websocket", timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.bot.stop()
        cls.hs.stop()

    def setUp(self):
        self.hs.clear_faults()
        if not self.bot.alive():
            self.bot.start()

    def ping_once(self, timeout=15):
        """!ping -> exactly one reply (checked after a settling pause)."""
        cmd = self.alice.send_text(self.room, "!ping")
        reply = self.alice.wait_reply(self.room, cmd, timeout=timeout)
        mx.assert_reply(reply, cmd)
        time.sleep(0.5)
        got = replies_by_command(self.hs, self.room, self.bot.user_id)[cmd]
        self.assertEqual(len(got), 1, f"{len(got)} replies to {cmd}")
        return cmd

    def test_ping_round_trip_over_the_socket(self):
        self.bot.wait_idle()
        ws_before = self.hs.request_count("WS", "send")
        rest_before = rest_sends(self.hs, self.bot.user_id)
        self.ping_once()
        self.assertEqual(self.hs.request_count("WS", "send"), ws_before + 1)
        self.assertEqual(rest_sends(self.hs, self.bot.user_id), rest_before,
                         "the reply went over REST although the socket was up")

    def test_keepalive_ping_method_and_dead_connection(self):
        # idle: the draft's ping method is used (every TLBOT_WS_PING_S / 3)
        n = self.hs.request_count("WS", "ping")
        deadline = time.monotonic() + 6
        while self.hs.request_count("WS", "ping") == n:
            self.assertLess(time.monotonic(), deadline, "no ping within 6 s of silence")
            time.sleep(0.2)
        # the server goes silent: detected within TLBOT_WS_PING_S (4 s) + slack
        mark = self.bot.log_mark()
        connects = self.hs.request_count("WS", "connect")
        t0 = time.monotonic()
        self.hs.fault("delay", method="WS", path="^/_ws/silence$", delay_ms=30000)
        self.bot.wait_log(r"connection is dead", timeout=8, since=mark)
        self.assertLess(time.monotonic() - t0, 6.5)
        deadline = time.monotonic() + 10
        while self.hs.request_count("WS", "connect") == connects:
            self.assertLess(time.monotonic(), deadline, "no reconnect")
            time.sleep(0.1)
        self.ping_once()

    def test_drop_mid_stream(self):
        self.bot.wait_idle()
        mark = self.bot.log_mark()
        self.hs.fault("drop", method="WS", path="^/_ws/update$")
        self.ping_once()
        self.bot.wait_log(r"connection to .* lost", since=mark)

    def test_drop_during_send_after_it_ran(self):
        self.bot.wait_idle()
        mark = self.bot.log_mark()
        rest_before = rest_sends(self.hs, self.bot.user_id)
        self.hs.fault("drop", method="WS", path="^/_ws/send/", execute=True)
        self.ping_once()
        self.bot.wait_log(r"went down during the send; sending over REST", since=mark)
        # the REST resend carried the same txnId: de-duplicated, one event
        self.assertEqual(rest_sends(self.hs, self.bot.user_id), rest_before + 1)

    def test_drop_during_send_before_it_ran(self):
        self.bot.wait_idle()
        self.hs.fault("drop", method="WS", path="^/_ws/send/")
        self.ping_once()

    def test_send_error_with_retry_after(self):
        self.bot.wait_idle()
        mark = self.bot.log_mark()
        self.hs.fault("status", method="WS", path="^/_ws/send/", status=429, retry_after_ms=700)
        t0 = time.monotonic()
        self.ping_once()
        self.assertGreaterEqual(time.monotonic() - t0, 0.6, "retry_after_ms not honoured")
        self.bot.wait_log(r"M_LIMIT_EXCEEDED.*retrying in 700 ms", since=mark)

    def test_slow_consumer_close(self):
        self.bot.wait_idle()
        mark = self.bot.log_mark()
        self.hs.fault("status", method="WS", path="^/_ws/update$")
        self.ping_once()
        self.bot.wait_log(r"connection to .* lost", since=mark)

    def test_many_commands_while_dropping(self):
        self.bot.wait_idle()
        self.hs.fault("drop", method="WS", path="^/_ws/(update|send/)", probability=0.3,
                      count=6)
        cmds = [self.alice.send_text(self.room, "!ping") for _ in range(12)]
        for c in cmds:
            self.alice.wait_reply(self.room, c, timeout=40)
        time.sleep(1)
        replies = replies_by_command(self.hs, self.room, self.bot.user_id)
        for c in cmds:
            self.assertEqual(len(replies[c]), 1, f"{len(replies[c])} replies to {c}")

    def test_large_update_in_fragments(self):
        self.bot.wait_idle()
        self.bot.stop()
        self.alice.send_text(self.room, "x" * 60000)          # > several 16 KiB frames
        cmd = self.alice.send_text(self.room, "!ping")
        self.bot.start()
        self.alice.wait_reply(self.room, cmd, timeout=15)
        time.sleep(0.5)
        self.assertEqual(len(replies_by_command(self.hs, self.room, self.bot.user_id)[cmd]), 1)

    def test_homeserver_restart(self):
        self.bot.wait_idle()
        mark = self.bot.log_mark()
        self.hs.restart()                    # SIGKILL, same port and state
        self.bot.wait_log(r"connection to .* lost", since=mark, timeout=10)
        cmd = self.ping_once(timeout=40)
        self.assertTrue(cmd)

    def test_sigterm_within_2_s(self):
        self.bot.wait_idle()
        t0 = time.monotonic()
        rc = self.bot.stop(timeout=10)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 2.0)
        self.bot.start()
        self.bot.wait_log(r"transport: websocket", since=0)
        self.ping_once()


class FirstUpdate(unittest.TestCase):
    def test_fresh_start_applies_rooms_in_chunks(self):
        # a fresh start's first update goes through the chunked first-sync
        # path /sync uses (never one JSON tree of every room): every room
        # is known after it, history is not answered, new commands are
        import sqlite3
        with mx.Homeserver() as hs:
            alice = hs.register("alice")
            bot = mx.Bot(hs, mx.tmpdir(), config_extra={"transport": "websocket",
                                                        "rate_limit_per_min": 0})
            bot.start()
            try:
                rooms = [alice.create_room(name=f"first {i}", invite=[bot.user_id])
                         for i in range(3)]
                for r in rooms:
                    alice.wait_membership(r, bot.user_id, "join", timeout=15)
                    fixtures.ask(alice, r, "!ping")
                bot.stop()
                db = sqlite3.connect(bot.db_path, timeout=10)
                db.execute("DELETE FROM kv WHERE key = 'next_batch'")
                db.commit()
                db.close()
                old = alice.send_text(rooms[0], "!ping")
                mark = bot.log_mark()
                bot.start()
                bot.wait_log(r"websocket: first update \(\d+ bytes\) -> \S+, applied a chunk "
                             r"of rooms at a time", since=mark, timeout=15)
                for r in rooms:
                    cmd = alice.send_text(r, "!ping")
                    mx.assert_reply(alice.wait_reply(r, cmd, timeout=15), cmd)
                time.sleep(0.5)
                self.assertEqual(replies_by_command(hs, rooms[0], bot.user_id)[old], [])
                self.assertNotRegex(bot.log()[mark:], r"first_sync_partial|could not apply")
            finally:
                bot.stop()


class Auto(unittest.TestCase):
    def test_fallback_within_2_s_and_reprobe(self):
        with mx.Homeserver() as hs:
            alice = hs.register("alice")
            refuse = hs.fault("status", path="/_matrix/client/unstable/stream", status=404,
                              errcode="M_UNRECOGNIZED", count=None)
            bot = mx.Bot(hs, mx.tmpdir(), config_extra={
                "transport": "auto", "sync_timeout_ms": 1000},
                env_extra={"TLBOT_WS_REPROBE_S": "3"})
            bot.start()
            try:
                m1 = bot.wait_log(r"websocket: transport auto", timeout=10)
                m2 = bot.wait_log(r"transport: sync \(the WebSocket handshake .* refused")
                took = log_time(bot, m2) - log_time(bot, m1)
                self.assertLess(took, 2.0, f"fallback took {took:.3f} s")
                room = alice.create_room(name="auto", invite=[bot.user_id])
                alice.wait_membership(room, bot.user_id, "join", timeout=15)
                cmd = alice.send_text(room, "!ping")
                alice.wait_reply(room, cmd)
                self.assertEqual(hs.request_count("WS", "send"), 0)
                # re-probe: still refused -> stays on sync, logged once
                time.sleep(4)
                self.assertEqual(bot.log().count("transport: sync"), 1)
                # the stream becomes available: the next re-probe switches
                hs.api("DELETE", f"/_test/faults/{refuse}")
                bot.wait_log(r"transport: websocket", timeout=15)
                cmd = alice.send_text(room, "!ping")
                alice.wait_reply(room, cmd)
                self.assertEqual(hs.request_count("WS", "send"), 1)
                time.sleep(0.5)
                self.assertEqual(len(replies_by_command(hs, room, bot.user_id)[cmd]), 1)
            finally:
                bot.stop()

    def test_token_in_query_is_not_logged(self):
        with mx.Homeserver() as hs:
            alice = hs.register("alice")
            bot = mx.Bot(hs, mx.tmpdir(), config_extra={"transport": "websocket"},
                         env_extra={"TLBOT_WS_TOKEN_IN_QUERY": "1"})
            bot.start()
            try:
                bot.wait_log(r"transport: websocket", timeout=10)
                room = alice.create_room(name="q", invite=[bot.user_id])
                alice.wait_membership(room, bot.user_id, "join", timeout=15)
                cmd = alice.send_text(room, "!ping")
                alice.wait_reply(room, cmd)
            finally:
                bot.stop()
            import sqlite3
            db = sqlite3.connect(bot.db_path)
            token = db.execute("SELECT value FROM kv WHERE key='access_token'").fetchone()
            db.close()
            if token:
                self.assertNotIn(token[0], bot.log())
                self.assertNotIn("access_token=" + token[0][:8], bot.log())


if __name__ == "__main__":
    fixtures.main(verbosity=2)
