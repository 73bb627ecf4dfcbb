#!/usr/bin/env python3
"""Hostile and broken input, as an attacker in a public room would send it.
Each gets a one-line answer (or is ignored where answering would be abuse)
and changes nothing it should not: a 64 KB body, invalid UTF-8 and control
characters, HTML and Markdown injection (escaped in formatted_body), SQL
metacharacters, numbers and dates out of range, C-99999999999999999999,
unknown flags, flags without values, unbalanced quotes, users outside the
allow-list, rooms the bot was not invited to by an allowed user, events with
missing or wrongly typed fields, and a flood of 1,000 commands from one user
(one polite warning, no reply storm)."""

import json
import os
import re
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks, ask, body, html, in_reply_to  # noqa: E402


def replies(hs, room, bot_user, event_id):
    return [e for e in hs.all_events(room) if e.get("sender") == bot_user and
            in_reply_to(e) == event_id]


class Hostile(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.addClassCleanup(cls.hs.stop)
        cls.alice = cls.hs.register("alice")
        cls.bob = cls.hs.register("bob")
        cls.eve = cls.hs.register("eve")
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={
            "allowed_users": ["@alice:localhost", "@bob:localhost"], "rate_limit_per_min": 0})
        cls.bot.start()
        cls.addClassCleanup(cls.bot.stop)
        cls.room = cls.alice.create_room(name="Public-ish", invite=[cls.bot.user_id, cls.bob.user_id,
                                                                    cls.eve.user_id])
        cls.bob.join(cls.room)
        cls.eve.join(cls.room)
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=20)
        r = ask(cls.alice, cls.room, '!challenge new "Baseline challenge" --region Leeds')
        assert "Created C-1" in body(r), body(r)

    def snapshot(self):
        """What hostile input must not change: every user table's rows (not the
        bookkeeping: handled events, the outbox, room state, command outcomes)."""
        db = sqlite3.connect(f"file:{self.bot.db_path}?mode=ro", uri=True, timeout=10)
        out = {}
        for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            if t in ("kv", "handled_events", "outbox", "rooms", "room_state", "counters",
                     "sqlite_sequence", "dm_rooms", "command_outcomes"):
                continue
            out[t] = sorted(map(repr, db.execute(f'SELECT * FROM "{t}"').fetchall()))
        db.close()
        return out

    def refused(self, text, expect, user=None):
        """Send text; one reply of one line saying what expect (a regex,
        case-insensitive) says; nothing changed.  -> reply body."""
        self.assertTrue(expect, "say what the refusal must say")
        before = self.snapshot()
        r = self.ask(text, user)
        b = body(r)
        self.assertNotIn("\n", b.strip(), f"not one line: {b!r}")
        self.assertLess(len(b), 600, b)
        self.assertRegex(b, "(?i)" + expect)
        self.assertNotRegex(b, r"^(Created|Recorded|Updated|Added|Scheduled) ", b)
        self.bot.wait_idle()
        self.assertEqual(self.snapshot(), before, f"{text[:80]!r} changed the database")
        return b

    def still_alive(self):
        r = self.ask("!ping")
        self.assertTrue(body(r).startswith("pong"))

    # ---- sizes ------------------------------------------------------------------

    def test_64k_body(self):
        big = "x" * (60 * 1024)
        b = self.refused(f'!challenge new "{big}"', expect="long|too|at most|limit")
        self.assertNotIn(big[:200], b)
        # 64 KB of garbage that is not a command: ignored
        ev = self.alice.send_text(self.room, "y" * (60 * 1024))
        self.still_alive()
        self.assertEqual(replies(self.hs, self.room, self.bot.user_id, ev), [])
        # a huge help argument is echoed back at most in part
        b = self.refused("!help " + "z" * (60 * 1024), expect="too long")
        self.assertLess(len(b), 600)

    # ---- encodings and control characters ----------------------------------------

    def raw_send(self, user, raw_json):
        txn = user.new_txn_id()
        return user.api("PUT", f"/rooms/{mx.q(self.room)}/send/m.room.message/{txn}",
                        body=raw_json.encode("utf-8", "surrogatepass"),
                        headers={"Content-Type": "application/json"})["event_id"]

    def test_control_characters_and_bad_utf8(self):
        # (raw JSON, what the one reply says).  The body is cut at a NUL (the
        # bot reads C strings): "!ping\0 extra" is a !ping.
        for raw, expect in (
                ('{"msgtype":"m.text","body":"!challenge new \\"a\\u0000b\\""}',
                 "unbalanced quote|control character"),
                ('{"msgtype":"m.text","body":"!challenge new \\"bell\\u0007\\u001b[31mred\\""}',
                 "control character U\\+0007"),
                ('{"msgtype":"m.text","body":"!challenge new \\"half \\ud800 surrogate\\""}',
                 "^Created C-"),
                ('{"msgtype":"m.text","body":"!ping\\u0000 extra"}', "^pong$"),
                ('{"msgtype":"m.text","body":"!challenge show C-1\\u202e\\u0000"}',
                 "(bad|not a) challenge id")):
            before = self.snapshot()
            # a lone surrogate: Synapse answers 500 (mxhs's strict default);
            # servers that pass it on exist, so the bot must cope with it
            lenient = "\\ud800" in raw
            if lenient:
                self.hs.compat(lone_surrogates="accept")
            try:
                ev = self.raw_send(self.alice, raw)
            finally:
                if lenient:
                    self.hs.compat(lone_surrogates="refuse")
            self.still_alive()      # one such message must not wedge the sync loop
            self.bot.wait_idle()
            rs = replies(self.hs, self.room, self.bot.user_id, ev)
            self.assertEqual(len(rs), 1, raw)
            self.assertRegex(body(rs[0]), expect, raw)
            self.assertNotIn("\u0000", body(rs[0]))
            self.assertNotIn("\u001b", body(rs[0]))
            self.assertNotIn("\n", body(rs[0]).strip())
            if "Created C-" in body(rs[0]):
                # taken, with the bad code point replaced: no control
                # characters or surrogates stored
                db = sqlite3.connect(f"file:{self.bot.db_path}?mode=ro", uri=True)
                title = db.execute("SELECT title FROM challenges ORDER BY id DESC").fetchone()[0]
                db.close()
                self.assertNotRegex(title, "[\x00-\x1f\ud800-\udfff]")
                self.assertIn("\ufffd", title)
            else:
                self.assertEqual(self.snapshot(), before, raw)
        # (invalid UTF-8 in the request body never reaches a bot: every
        # server refuses it, 400 M_NOT_JSON; tests/homeserver/test_mxhs.py)

    # ---- injection ------------------------------------------------------------------

    def test_html_and_markdown_injection_escaped(self):
        title = ('<script>alert(1)</script><img src=x onerror=alert(2)> **bold** '
                 '[click](javascript:alert(3)) <a href="https://evil.example">x</a> &amp;')
        r = self.ask(f"!challenge new \"{title}\"")
        self.assertIn("Created C-", body(r))
        cid = body(r).split("Created ", 1)[1].split(":", 1)[0]
        for ev in (r, self.ask(f"!challenge show {cid}"), self.ask("!challenge list")):
            h = html(ev)
            for bad in ("<script", "<img", "<a href=\"https://evil", "javascript:alert(3)\"",
                        "onerror=alert(2)>"):
                if bad == "onerror=alert(2)>":
                    self.assertNotIn("<img src=x onerror", h)
                else:
                    self.assertNotIn(bad, h, f"unescaped {bad!r} in {h[:300]!r}")
            self.assertIn("&lt;script&gt;", h)
            self.assertNotIn("<strong>bold</strong>", h)   # Markdown is not rendered
        r = self.ask('!team set --name "<b onmouseover=alert(1)>Team</b>"')
        self.assertNotIn("<b onmouseover", html(r))
        r = self.ask(f'!exp new {cid} "<i>exp</i>" "We believe <script>x</script> will result in y. '
                     'We will know when z."')
        self.assertNotIn("<script>", html(r))
        self.assertNotIn("<i>exp</i>", html(r))

    def test_sql_metacharacters(self):
        title = "Robert'); DROP TABLE challenges;-- ' OR '1'='1 -- %_"
        r = self.ask(f'!challenge new "{title}"')
        self.assertIn("Created C-", body(r))
        cid = int(body(r).split("Created C-", 1)[1].split(":", 1)[0])
        db = sqlite3.connect(f"file:{self.bot.db_path}?mode=ro", uri=True)
        got = db.execute("SELECT title FROM challenges WHERE id = ?", (cid,)).fetchone()
        n = db.execute("SELECT count(*) FROM challenges").fetchone()[0]
        db.close()
        self.assertEqual(got[0], title)
        self.assertGreaterEqual(n, 2)
        self.refused("!challenge show C-1' OR '1'='1", expect="unbalanced quote")
        # a region nobody has: an empty list, the text shown as typed
        self.refused("!challenge list --region \"' OR 1=1 --\"",
                     expect="^No open/active/paused challenges .* region ' OR 1=1 --")
        self.refused("!exp show E-1; DELETE FROM experiments",
                     expect="unexpected argument 'DELETE'|bad experiment id 'E-1;'")
        self.refused('!remind cancel R-1 OR 1=1', expect="usage: !remind cancel")

    # ---- numbers, dates, ids ---------------------------------------------------------

    def test_numbers_dates_and_ids_out_of_range(self):
        # the reply names what was wrong (the value as typed) and refuses it
        def about(value, *words):
            v = re.escape(value)
            w = "|".join(words or (r"bad", r"unknown", r"not a", r"out of range", r"invalid"))
            return f"(?:{w}).*{v}|{v}.*(?:{w})"
        for text, expect in (
                ("!challenge show C-99999999999999999999", about("C-99999999999999999999")),
                ("!challenge show C-0", about("C-0")),
                ("!challenge show C--1", about("C--1")),
                ("!challenge show C-184467440737095516160", about("C-184467440737095516160")),
                ("!exp show E-99999999999999999999", about("E-99999999999999999999")),
                # (the id is clamped in the answer: R-9223372036854775807)
                ("!remind cancel R-99999999999999999999", "no pending reminder|out of range"),
                ('!challenge new "x" --due 2026-02-30', about("2026-02-30")),
                ('!challenge new "x" --due 99999-01-01', about("99999-01-01")),
                ('!challenge new "x" --due +999999999999w', about("+999999999999w")),
                ('!challenge new "x" --due -5d', about("-5d")),
                ("!challenge list --page 99999999999999999999", about("99999999999999999999")),
                ("!challenge list --page -1", about("-1")),
                ("!challenge list --page 0", about("0")),
                ("!challenge status C-1 sideways", about("sideways")),
                ('!remind me in 99999999999h "x"', "bad duration"),
                ('!remind me in -5m "x"', "bad duration"),
                ('!remind me at 25:61 "x"', "bad time"),
                ('!remind me on 2026-13-45 "x"', about("2026-13-45")),
                ("!standup schedule 24:00 Europe/London", about("24:00")),
                ("!standup schedule 09:00 Mars/Olympus_Mons", about("Mars/Olympus_Mons")),
                ("!standup schedule 09:00 ../../../../etc/passwd", about("../../../../etc/passwd")),
                ("!standup reminder 99999999999999999999", about("99999999999999999999")),
                ("!standup history --days 99999999999", about("99999999999")),
                ("!exp digest mon 99:99", about("99:99")),
                ('!exp new C-1 "t" "We believe a will result in b. We will know when c." '
                 "--baseline 1e999 --target nan", about("1e999"))):
            with self.subTest(text=text):
                self.refused(text, expect)

    def test_parser_abuse(self):
        for text, expect in (('!challenge new "x" --colour blue', "colour|unknown|flag"),
                             ('!challenge new "x" --due', "due|value"),
                             ('!challenge new "x" --region', "region|value"),
                             ('!challenge new "unbalanced', "quote"),
                             ("!challenge new 'unbalanced", "quote"),
                             ('!challenge new "x" --due --region Leeds', "--due needs a value"),
                             ("!challenge new", "missing title"),
                             ('!challenge new "" ', "missing title"),
                             ("!challenge " + "new " * 500, "too many arguments"),
                             ("!" + "a" * 5000, "unknown command"),
                             ("!challenge assign C-1 " + "@x:localhost " * 300,
                              "too many arguments"),
                             ("!help --" + "-" * 100, "unknown flag")):
            with self.subTest(text=text[:60]):
                self.refused(text, expect=expect)

    # ---- who may speak -------------------------------------------------------------------

    def test_outsider_ignored(self):
        before = self.snapshot()
        evs = [self.eve.send_text(self.room, t) for t in
               ("!ping", '!challenge new "eve was here"', "!challenge status C-1 dropped",
                "!help")]
        marker = self.alice.send_text(self.room, "!ping")
        self.alice.wait_reply(self.room, marker, timeout=20)
        self.bot.wait_idle()
        for ev in evs:
            self.assertEqual(replies(self.hs, self.room, self.bot.user_id, ev), [])
        self.assertEqual(self.snapshot(), before)

    def test_room_not_invited_by_an_allowed_user(self):
        before = self.snapshot()
        room = self.eve.create_room(name="eve's trap", invite=[self.bot.user_id, self.alice.user_id])
        self.eve.wait_membership(room, self.bot.user_id, "leave", timeout=20)
        # alice is allowed, but the bot is not in the room: nothing happens
        self.alice.join(room)
        ev = self.alice.send_text(room, "!challenge new \"in eve's room\"")
        marker = self.alice.send_text(self.room, "!ping")
        self.alice.wait_reply(self.room, marker, timeout=20)
        self.bot.wait_idle()
        self.assertEqual(replies(self.hs, room, self.bot.user_id, ev), [])
        self.assertEqual(self.snapshot(), before)
        self.assertIn("declining (not allowed)", self.bot.log())

    # ---- malformed events -----------------------------------------------------------------

    def test_missing_and_wrongly_typed_fields(self):
        before = self.snapshot()
        # (content, answered): a message whose body and msgtype are valid is a
        # command whatever else is wrong with it (answered once, "pong");
        # without a usable body or msgtype, or as an edit of an event the bot
        # never saw, it is not (no answer)
        ignored = [
            {"msgtype": "m.text"},                                  # no body
            {"msgtype": "m.text", "body": 12345},
            {"msgtype": "m.text", "body": ["!ping"]},
            {"msgtype": "m.text", "body": {"x": "!ping"}},
            {"msgtype": "m.text", "body": None},
            {"msgtype": 7, "body": "!ping"},
            {"body": "!ping"},                                      # no msgtype
        ]
        answered = [
            {"msgtype": "m.text", "body": "!ping", "m.relates_to": "not an object"},
            {"msgtype": "m.text", "body": "!ping", "m.relates_to": {"rel_type": 5, "event_id": []}},
            {"msgtype": "m.text", "body": "!ping", "m.relates_to": {"m.in_reply_to": "x"}},
            {"msgtype": "m.text", "body": "!ping", "m.relates_to": {"rel_type": "m.thread"}},
            {"msgtype": "m.text", "body": "!ping", "m.mentions": ["@alice:localhost"]},
            {"msgtype": "m.text", "body": "!ping", "m.mentions": {"user_ids": "@alice:localhost"}},
            {"msgtype": "m.text", "body": "!ping", "m.mentions": {"user_ids": [1, None, {}]}},
            {"msgtype": "m.text", "body": "!ping", "format": "org.matrix.custom.html",
             "formatted_body": 42},
        ]
        ignored += [
            {"msgtype": "m.text", "body": "* !ping", "m.new_content": "nope",
             "m.relates_to": {"rel_type": "m.replace", "event_id": "$nope"}},
            {"msgtype": "m.text", "body": "* !ping", "m.new_content": {"body": 3},
             "m.relates_to": {"rel_type": "m.replace", "event_id": 9}},
            {"msgtype": "m.text", "body": "!standup y: a", "m.relates_to": {
                "rel_type": "m.replace", "event_id": "$does-not-exist:localhost"},
             "m.new_content": {"msgtype": "m.text", "body": "!standup y: b"}},
        ]
        # their own room: the test client's own helpers trip over such events
        room = self.alice.create_room(name="malformed", invite=[self.bot.user_id])
        self.alice.wait_membership(room, self.bot.user_id, "join", timeout=20)
        # edits of unknown events: Synapse refuses them from its own users,
        # but nothing checks events that arrive over federation
        self.hs.compat(relation_unknown_target="accept")
        self.addCleanup(self.hs.compat, relation_unknown_target="refuse")
        silent = [self.alice.send_event(room, "m.room.message", c) for c in ignored]
        loud = [self.alice.send_event(room, "m.room.message", c) for c in answered]
        silent.append(self.alice.send_event(room, "m.room.redaction", {"redacts": 5}))
        silent.append(self.alice.send_event(room, "m.room.message", {}))
        silent.append(self.alice.send_event(room, "org.example.weird", {"body": "!ping"}))
        self.alice.set_state(room, "m.room.power_levels.fake", {"users": "x"})
        # the last one answered, in this room: every event above was applied
        marker = self.alice.send_text(room, "!ping")
        self.alice.wait_reply(room, marker, timeout=20)
        self.bot.wait_idle()
        for c, ev in zip(answered, loud):
            rs = replies(self.hs, room, self.bot.user_id, ev)
            self.assertEqual([body(r) for r in rs], ["pong"], c)
        for c, ev in zip(ignored + ["redaction", "empty", "custom type"], silent):
            self.assertEqual(replies(self.hs, room, self.bot.user_id, ev), [], c)
        self.assertEqual(self.snapshot(), before)
        self.assertTrue(self.bot.alive())


class Flood(unittest.TestCase):
    def test_1000_commands_from_one_user(self):
        hs = mx.Homeserver()
        self.addCleanup(hs.stop)
        alice, mallory = hs.register("alice"), hs.register("mallory")
        bot = mx.Bot(hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 20})
        bot.start()
        self.addCleanup(bot.stop)
        room = alice.create_room(name="flood", invite=[bot.user_id, mallory.user_id])
        mallory.join(room)
        alice.wait_membership(room, bot.user_id, "join", timeout=20)
        t0 = time.monotonic()
        evs = [mallory.send_text(room, "!ping" if i % 3 else '!challenge new "spam"')
               for i in range(1000)]
        elapsed = time.monotonic() - t0
        # someone else is still served at once
        ev = alice.send_text(room, "!ping")
        alice.wait_reply(room, ev, timeout=30)
        bot.wait_idle(timeout=60)
        time.sleep(1)
        ids = set(evs)
        answered = [e for e in hs.all_events(room) if e.get("sender") == bot.user_id and
                    in_reply_to(e) in ids]
        warnings = [e for e in answered if "faster than I take them" in body(e)]
        allowed = 20 + int(elapsed * 20 / 60) + 2
        print(f"\n[flood] 1000 commands in {elapsed:.1f} s: {len(answered)} replies "
              f"({len(warnings)} warning), at most {allowed} allowed", file=sys.stderr)
        self.assertEqual(len(warnings), 1)
        self.assertLessEqual(len(answered), allowed)
        self.assertGreaterEqual(len(answered), 20)
        self.assertNotIn("\n", body(warnings[0]))
        db = sqlite3.connect(f"file:{bot.db_path}?mode=ro", uri=True)
        n = db.execute("SELECT count(*) FROM challenges").fetchone()[0]
        db.close()
        self.assertLessEqual(n, allowed)
        _ = json


if __name__ == "__main__":
    fixtures.main(verbosity=2)
