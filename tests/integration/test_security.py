#!/usr/bin/env python3
"""Security: power levels read from the room's current m.room.power_levels
(users_default; changes take effect at once; the room version 12 creator
rule), allow-lists by user glob and by server glob, the bot never acting on
its own events or on notices, the access token and password never in the
log, in logged errors or URLs, or in any message, a config file readable by
others warned about at start, and no switch that turns TLS verification
off."""

import os
import re
import sqlite3
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks, body, in_reply_to  # noqa: E402


class Security(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.addClassCleanup(cls.hs.stop)
        cls.alice = cls.hs.register("alice")
        cls.bob = cls.hs.register("bob")
        cls.carol = cls.hs.register("carol")
        cls.eve = cls.hs.register("eve")
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={
            "allowed_users": ["@alice:*", "@b?b:localhost", "@carol:localhost"],
            "allowed_servers": ["nowhere.example"], "rate_limit_per_min": 0})
        cls.bot.start()
        cls.addClassCleanup(cls.bot.stop)
        cls.room = cls.alice.create_room(name="Power", invite=[cls.bot.user_id, cls.bob.user_id,
                                                               cls.carol.user_id, cls.eve.user_id])
        for u in (cls.bob, cls.carol, cls.eve):
            u.join(cls.room)
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=20)

    def no_reply(self, user, text, room=None):
        room = room or self.room
        ev = user.send_text(room, text)
        marker = self.alice.send_text(room, "!ping")
        self.alice.wait_reply(room, marker, timeout=20)
        self.bot.wait_idle()
        got = [e for e in self.hs.all_events(room) if in_reply_to(e) == ev]
        self.assertEqual(got, [], f"{user.user_id}: {text!r} was answered")

    # ---- power levels ------------------------------------------------------------

    def test_power_levels_follow_the_room_at_once(self):
        r = self.ask('!challenge new "needs a moderator"', user=self.bob)
        self.assertRegex(body(r), r"power level of at least 50")
        self.assertNotIn("Created", body(r))
        # promoted: the very next command is allowed
        self.alice.set_power_level(self.room, self.bob.user_id, 50)
        r = self.ask('!challenge new "bob is a moderator now"', user=self.bob)
        self.assertIn("Created C-", body(r))
        # demoted again: refused at once
        self.alice.set_power_level(self.room, self.bob.user_id, 0)
        r = self.ask('!challenge new "not any more"', user=self.bob)
        self.assertNotIn("Created", body(r))
        # users_default: everyone not listed is a moderator
        pl = self.alice.state(self.room, "m.room.power_levels")
        pl["users_default"] = 50
        pl["users"].pop(self.carol.user_id, None)
        self.alice.set_state(self.room, "m.room.power_levels", pl)
        r = self.ask('!challenge new "carol by users_default"', user=self.carol)
        self.assertIn("Created C-", body(r))
        r = self.ask('!challenge new "bob is listed at 0"', user=self.bob)
        self.assertNotIn("Created", body(r))
        pl["users_default"] = 0
        self.alice.set_state(self.room, "m.room.power_levels", pl)
        r = self.ask('!challenge new "carol again"', user=self.carol)
        self.assertNotIn("Created", body(r))

    def test_room_version_12_creator_rule(self):
        # v12: the creator has unlimited power without a users entry
        room = self.alice.create_room(name="v12", room_version="12",
                                      invite=[self.bot.user_id, self.bob.user_id],
                                      power_levels={"users_default": 0, "users": {}})
        self.bob.join(room)
        self.alice.wait_membership(room, self.bot.user_id, "join", timeout=20)
        pl = self.alice.state(room, "m.room.power_levels")
        self.assertNotIn(self.alice.user_id, pl.get("users", {}))
        r = self.ask('!challenge new "creator in v12"', room=room)
        self.assertIn("Created C-", body(r))
        r = self.ask('!challenge new "bob in v12"', user=self.bob, room=room)
        self.assertNotIn("Created", body(r))
        # in a v10 room the same power levels leave the creator at 0 ...
        # (created with her at 100, then the same users map as above sent:
        # a creator may lower itself)
        room10 = self.alice.create_room(name="v10", room_version="10",
                                        invite=[self.bot.user_id])
        self.alice.wait_membership(room10, self.bot.user_id, "join", timeout=20)
        pl10 = self.alice.state(room10, "m.room.power_levels")
        pl10["users"] = {self.bot.user_id: pl10["users"].get(self.bot.user_id, 0)}
        pl10["users_default"] = 0
        self.alice.set_state(room10, "m.room.power_levels", pl10)
        self.assertEqual(self.alice.state(room10, "m.room.power_levels")["users"].get(
            self.alice.user_id), None)
        r = self.ask('!challenge new "creator in v10 without an entry"', room=room10)
        self.assertNotIn("Created", body(r))
        self.assertRegex(body(r), "(?i)power|moderator|permission")
        # ... and a users entry is what gives it power there
        room10b = self.alice.create_room(name="v10b", room_version="10",
                                         invite=[self.bot.user_id],
                                         power_levels={"users_default": 0,
                                                       "users": {self.alice.user_id: 100}})
        self.alice.wait_membership(room10b, self.bot.user_id, "join", timeout=20)
        r = self.ask('!challenge new "creator in v10 with 100"', room=room10b)
        self.assertIn("Created C-", body(r))

    # ---- allow-lists and own events --------------------------------------------------

    def test_allow_list_globs(self):
        r = self.ask("!ping", user=self.bob)            # @b?b:localhost
        self.assertTrue(body(r).startswith("pong"))
        self.no_reply(self.eve, "!ping")                 # no glob matches eve
        self.no_reply(self.eve, '!challenge new "eve"')

    def test_never_its_own_events_or_notices(self):
        ev = self.alice.send_text(self.room, "!ping", msgtype="m.notice")
        # the bot's own account on another device, typing a command
        me = self.hs.login("tlbot", "botpass")
        ev2 = me.send_text(self.room, "!ping")
        ev3 = me.send_text(self.room, '!challenge new "by the bot itself"')
        marker = self.alice.send_text(self.room, "!ping")
        self.alice.wait_reply(self.room, marker, timeout=20)
        self.bot.wait_idle()
        for e in (ev, ev2, ev3):
            self.assertEqual([x for x in self.hs.all_events(self.room) if in_reply_to(x) == e], [])

    # ---- secrets -----------------------------------------------------------------------

    def test_secrets_never_in_logs_urls_or_messages(self):
        db = sqlite3.connect(f"file:{self.bot.db_path}?mode=ro", uri=True)
        token = db.execute("SELECT value FROM kv WHERE key = 'access_token'").fetchone()[0]
        db.close()
        # a homeserver that echoes the token (and the password) back in
        # its errors: the bot logs those errors
        bot = self.bot.user_id
        self.hs.fault("status", path="/sync", count=2, status=500, user=bot,
                      error=f"bad request with access_token={token} password=botpass")
        self.hs.fault("status", path="/send/", method="PUT", count=2, status=502, user=bot,
                      error=f"upstream said Bearer {token}")
        self.hs.fault("status", path="/send/", method="PUT", count=1, status=400, user=bot,
                      errcode="M_BAD_JSON", error=f"token {token} rejected")
        self.alice.send_text(self.room, "!ping")    # its answer meets the 400: dropped
        r = self.ask("!ping")
        self.assertTrue(body(r).startswith("pong"))
        self.bot.wait_idle()
        self.hs.clear_faults()
        log = self.bot.log()
        self.assertIn("[redacted]", log)
        self.assertNotIn(token, log)
        self.assertNotIn("botpass", log)
        self.assertNotRegex(log, r"access_token=[^\[]")
        for room in self.alice.joined_rooms():
            for e in self.hs.all_events(room):
                text = str(e.get("content"))
                self.assertNotIn(token, text)
                self.assertNotIn("botpass", text)
        # --check-config and a failed start print no secret either
        r = subprocess.run([mx.Bot.binary(), "--check-config", "-c", self.bot.config_path],
                           capture_output=True, text=True, timeout=20)
        self.assertNotIn("botpass", r.stdout + r.stderr)

    def test_config_readable_by_others_is_warned_about(self):
        d = mx.tmpdir()
        b = mx.Bot(self.hs, d, config_extra={"allowed_users": ["@alice:localhost"]})
        os.chmod(b.config_path, 0o644)
        self.assertTrue(os.stat(b.config_path).st_mode & stat.S_IROTH)
        b.start()
        try:
            b.wait_log(r"readable by other users", timeout=15)
        finally:
            b.stop()
        self.assertNotIn("botpass", b.log())
        # 0600: no warning
        d2 = mx.tmpdir()
        b2 = mx.Bot(self.hs, d2, config_extra={"allowed_users": ["@alice:localhost"]})
        b2.start()
        try:
            b2.wait_log(r"running as", timeout=15)
        finally:
            b2.stop()
        self.assertNotIn("readable by other users", b2.log())

    def test_no_switch_turns_tls_verification_off(self):
        d = mx.tmpdir()
        for key in ("insecure", "tls_verify", "verify_tls", "ssl_verify", "tls_insecure",
                    "skip_tls_verify"):
            path = os.path.join(d, f"{key}.yaml")
            with open(path, "w") as f:
                f.write(f'homeserver: "https://matrix.example.org"\nuser_id: "@bot:example.org"\n'
                        f'access_token: "abcdefgh"\n{key}: false\n')
            os.chmod(path, 0o600)
            r = subprocess.run([mx.Bot.binary(), "--check-config", "-c", path],
                               capture_output=True, text=True, timeout=20)
            self.assertNotEqual(r.returncode, 0, f"{key} accepted")
            self.assertIn(key, r.stderr)
            self.assertNotIn("abcdefgh", r.stderr + r.stdout)
        with open(os.path.join(mx.REPO, "bot", "transport", "http.c")) as f:
            src = f.read()
        self.assertIn("CURLOPT_SSL_VERIFYPEER, 1L", src)
        self.assertNotRegex(src, r"CURLOPT_SSL_VERIFY(PEER|HOST),\s*0")


class ServerGlob(unittest.TestCase):
    def test_allowed_servers_glob(self):
        with mx.Homeserver() as hs:
            alice, eve = hs.register("alice"), hs.register("eve")
            bot = mx.Bot(hs, mx.tmpdir(), config_extra={"allowed_users": [],
                                                        "allowed_servers": ["local*"]})
            bot.start()
            try:
                room = eve.create_room(name="eve's", invite=[bot.user_id, alice.user_id])
                eve.wait_membership(room, bot.user_id, "join", timeout=20)
                ev = eve.send_text(room, "!ping")
                self.assertTrue(body(eve.wait_reply(room, ev, timeout=20)).startswith("pong"))
            finally:
                bot.stop()
            bot2 = mx.Bot(hs, mx.tmpdir(), user_id="@tlbot2:localhost", config_extra={
                "allowed_users": [], "allowed_servers": ["*.example.org"]})
            bot2.start()
            try:
                room = eve.create_room(name="eve's again", invite=[bot2.user_id])
                eve.wait_membership(room, bot2.user_id, "leave", timeout=20)
            finally:
                bot2.stop()
            _ = (re, time)


if __name__ == "__main__":
    fixtures.main(verbosity=2)
