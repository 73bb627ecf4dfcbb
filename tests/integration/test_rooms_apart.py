#!/usr/bin/env python3
"""Day one, typed as people type it (issue 13, items 1 2 4 6 10 15) and the
MSC4391 command descriptions (issue 12), through the real binary and the
local homeserver.

Rooms apart: room A's challenge and experiment are not there for room B:
every command that takes an id answers B exactly as for an unknown id, and
nothing of A changes; the programme room (digest_room) may read across rooms
but not write.  Then: !remind in 2 hours; a command sent as a reply with the
spec's reply fallback; two commands on two lines; free text without quotes;
!help's first steps and "did you mean"; the command descriptions the bot
publishes where it may send state (and not where it may not); a structured
invocation run like the text command.  Runs standalone or under CTest."""

import base64
import hashlib
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks, ask, ask_ev, body, html, in_reply_to  # noqa: E402

# The bot's clock: Wed 2026-11-18 11:00 UTC (Europe/London is UTC in winter).
T0 = 1794999600
UNSTABLE = "org.matrix.msc4391.command_description"
STABLE = "m.bot.command_description"


def rid(reply, prefix):
    m = re.search(r"\b(%s-\d+)\b" % prefix, body(reply))
    assert m, body(reply)
    return m.group(1)


def state_key(command, bot):
    return base64.b64encode(hashlib.sha256((command + bot).encode()).digest()).decode()


class RoomsApart(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.addClassCleanup(cls.hs.stop)
        cls.alice = cls.hs.register("alice")     # creates room A: power 100 there
        cls.bob = cls.hs.register("bob")         # creates room B: power 100 there
        cls.carol = cls.hs.register("carol")     # the programme lead
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0})
        bot_id = cls.bot.user_id
        cls.prog = cls.carol.create_room(name="Programme board", invite=[bot_id])
        cls.bot.config["digest_room"] = cls.prog
        cls.bot.write_config()
        cls.bot.set_clock(T0)
        cls.bot.start()
        cls.addClassCleanup(cls.bot.stop)
        cls.room = cls.alice.create_room(name="Sheffield TA", invite=[bot_id])
        # room B gives the bot a moderator's power: it may publish descriptions
        cls.room_b = cls.bob.create_room(
            name="Leeds hubs", invite=[bot_id],
            power_levels={"users": {cls.bob.user_id: 100, bot_id: 50}})
        for r, u in ((cls.room, cls.alice), (cls.room_b, cls.bob), (cls.prog, cls.carol)):
            u.wait_membership(r, bot_id, "join", timeout=15)
        cls.bot.wait_idle(timeout=15)
        r = ask(cls.alice, cls.room, "!challenge new Temporary accommodation costs")
        cls.ca = rid(r, "C")
        r = ask(cls.alice, cls.room, f'!exp new {cls.ca} "Text reminders" We believe a text'
                " will result in fewer missed visits. We will know when misses fall below 10%.")
        cls.ea = rid(r, "E")
        r = ask(cls.alice, cls.room, f"!exp note {cls.ea} Mrs K at 14 Elm Road wants a call")
        r = ask(cls.bob, cls.room_b, "!challenge new Family hub hours")
        cls.cb = rid(r, "C")
        r = ask(cls.bob, cls.room_b, f'!exp new {cls.cb} "Evening hours" --believe a'
                " --result-in b --know-when c")
        cls.eb = rid(r, "E")

    # ---------------------------------------------------------- 1 rooms apart

    def test_1_every_id_command_from_another_room(self):
        before_c = body(self.ask(f"!challenge history {self.ca}"))
        before_e = body(self.ask(f"!exp history {self.ea}"))
        ca, ea, eb = self.ca, self.ea, self.eb
        nc, ne = f"no challenge {ca} here", f"no experiment {ea} here"
        cmds = [
            (f"!challenge show {ca}", nc), (f"!challenge history {ca}", nc),
            (f"!challenge assign {ca} @bob:localhost", nc),
            (f"!challenge unassign {ca} @bob:localhost", nc),
            (f"!challenge status {ca} dropped", nc), (f"!challenge edit {ca} --title Mine", nc),
            (f"!exp show {ea}", ne), (f"!exp history {ea}", ne), (f"!exp start {ea}", ne),
            (f"!exp note {ea} hello", ne), (f"!exp result {ea} --value 1 found", ne),
            (f"!exp decide {ea} stop no", ne), (f"!exp learn {ea} something", ne),
            (f"!exp abandon {ea} gone", ne), (f"!exp edit {ea} --title Mine", ne),
            (f'!exp new {ca} "Linked" --believe a --result-in b --know-when c', nc),
            (f"!exp edit {eb} --challenge {ca}", nc), (f"!exp list --challenge {ca}", nc),
            (f"!exp export --challenge {ca}", nc),
        ]
        for cmd, want in cmds:
            with self.subTest(cmd=cmd):
                b = body(self.ask(cmd, user=self.bob, room=self.room_b))
                self.assertEqual(b, want)
                self.assertNotIn("Elm Road", b)
        # the same words as for an id that exists nowhere: nothing leaks
        self.assertEqual(body(self.ask("!exp show E-999", user=self.bob, room=self.room_b)),
                         "no experiment E-999 here")
        self.assertEqual(body(self.ask("!challenge show C-999", user=self.bob, room=self.room_b)),
                         "no challenge C-999 here")
        # and room A's records are as they were
        self.assertEqual(body(self.ask(f"!challenge history {self.ca}")), before_c)
        self.assertEqual(body(self.ask(f"!exp history {self.ea}")), before_e)
        self.assertIn(f"{self.eb}", body(self.ask(f"!exp show {self.eb}", user=self.bob,
                                                  room=self.room_b)))

    def test_1_programme_room_reads_but_does_not_write(self):
        b = body(self.ask(f"!exp show {self.ea}", user=self.carol, room=self.prog))
        self.assertNotIn("here", b.split("\n")[0])
        self.assertIn("Text reminders", b)
        # notes stay with the team (case detail): not in the programme room
        self.assertNotIn("Elm Road", b)
        self.assertIn("shown in the team's room only", b)
        b = body(self.ask(f"!exp history {self.ea}", user=self.carol, room=self.prog))
        self.assertNotIn("Elm Road", b)
        self.assertIn("Elm Road", body(self.ask(f"!exp show {self.ea}")))
        self.assertEqual(body(self.ask(f"!exp note {self.ea} from the programme",
                                       user=self.carol, room=self.prog)),
                         f"no experiment {self.ea} here")

    # ------------------------------------------------------------ 2 durations

    def test_2_remind_in_two_hours(self):
        r = self.ask("!remind me in 2 hours call the council")
        self.assertIn("18 November 2026 at 13:00", body(r))
        r = self.ask("!remind list")
        self.assertIn("call the council", body(r))
        self.assertNotIn("hours call", body(r))
        r = self.ask("!remind me in 2 call")
        self.assertIn("'2' needs a unit", body(r))
        r = self.ask(f"!exp start {self.eb} --until 31/12/2026", user=self.bob, room=self.room_b)
        self.assertNotIn("bad date", body(r))
        r = self.ask(f"!challenge edit {self.ca} --due 2026-13-45")
        self.assertIn("bad date '2026-13-45' for --due: accepted dates: YYYY-MM-DD", body(r))

    # ------------------------------------------------------ 4 reply fallbacks

    def test_4_command_sent_as_a_reply(self):
        orig = self.bob.send_text(self.room_b, "who checks the figures?")
        ev = self.bob.send_text(
            self.room_b, "> <@bob:localhost> who checks the figures?\n\n!ping",
            formatted_body=f'<mx-reply><blockquote><a href="https://matrix.to/#/{self.room_b}/'
                           f'{orig}">In reply to</a> <a href="https://matrix.to/#/@bob:localhost">'
                           "@bob:localhost</a><br>who checks the figures?</blockquote></mx-reply>"
                           "!ping",
            reply_to=orig)
        r = self.bob.wait_reply(self.room_b, ev, timeout=20)
        self.assertEqual(body(r), "pong")

    # ---------------------------------------------------- 6 two lines, two commands

    def test_6_two_commands_on_two_lines(self):
        ev = self.alice.send_text(self.room, "!challenge new First line challenge\n"
                                             "!challenge new Second line challenge")
        rs = self.alice.wait_for_count(self.room, lambda e: in_reply_to(e) == ev, 2, timeout=20)
        self.assertTrue(body(rs[0]).startswith("Created C-"), body(rs[0]))
        self.assertIn("First line challenge", body(rs[0]))
        self.assertNotIn("Second", body(rs[0]))
        self.assertIn("Second line challenge", body(rs[1]))
        b = body(self.ask("!challenge list"))
        self.assertIn("First line challenge", b)
        self.assertIn("Second line challenge", b)

    # -------------------------------------------------- 10 text without quotes

    def test_10_free_text_needs_no_quotes(self):
        r = self.ask(f"!exp note {self.ea} Spoke to the team, they can refer too")
        self.assertNotIn("quote", body(r))
        self.assertIn("Spoke to the team, they can refer too", body(self.ask(f"!exp show {self.ea}")))
        # a title without quotes runs up to the hypothesis sentence
        r = self.ask(f"!exp new {self.ca} Door knocking pilot We believe a knock will result in"
                     " more replies. We will know when replies double.")
        self.assertIn("“Door knocking pilot”", body(r))
        # the quoting hint only where quoting is the problem
        r = self.ask(f"!exp note {self.ea} we tried --value pricing")
        self.assertIn("unknown flag --value", body(r))
        self.assertIn("put the text in quotes", body(r))

    # ------------------------------------------------------------- 15 help

    def test_15_help_first_steps_and_did_you_mean(self):
        b = body(self.ask("!help", user=self.bob, room=self.room_b))
        i, j, k = b.find("1. !team add"), b.find("2. !challenge new"), b.find("3. !standup schedule")
        self.assertTrue(0 < i < j < k, b)
        self.assertLess(k, b.find("All commands"))
        b = body(self.ask("!help experimnet", user=self.bob, room=self.room_b))
        self.assertIn("did you mean !help experiment?", b)
        r = self.ask("!help exp", user=self.bob, room=self.room_b)
        self.assertIn("<p>", html(r))
        self.assertIn("!experiment note E-12 TEXT...", body(r))

    # ---------------------------------------------------------- MSC4391

    def test_msc4391_descriptions_where_allowed(self):
        bot = self.bot.user_id
        key = state_key("challenge new", bot)
        c = None
        for _ in range(100):
            c = self.bob.state(self.room_b, UNSTABLE, key)
            if c:
                break
            self.bot.wait_idle(timeout=5)
        self.assertIsNotNone(c, "no command description in room B")
        self.assertEqual(c["command"], "challenge new")
        keys = [p["key"] for p in c["parameters"]]
        self.assertEqual(keys[0], "title")
        self.assertIn("due", keys)
        self.assertEqual(c["description"]["m.text"][0]["body"],
                         "record a new challenge for this room's team")
        self.assertEqual(self.bob.state(self.room_b, STABLE, key)["command"], "challenge new")
        self.assertEqual(self.bob.state(self.room_b, UNSTABLE, state_key("ping", bot))["command"],
                         "ping")
        # room A gave the bot no power to send state: nothing there, and no error
        self.assertIsNone(self.alice.state(self.room, UNSTABLE, key))
        self.assertNotIn("M_FORBIDDEN", self.bot.log())

    def test_msc4391_z_restart_keeps_them_in_step(self):
        def descs():
            return [e for e in self.hs.all_events(self.room_b)
                    if e["type"] in (UNSTABLE, STABLE) and e["sender"] == self.bot.user_id]
        self.test_msc4391_descriptions_where_allowed()
        n, last = -1, None
        for _ in range(50):                               # until all are out
            self.bot.wait_idle(timeout=15)
            n = len(descs())
            if n == last:
                break
            last = n
            time.sleep(0.2)
        self.assertGreater(n, 40)
        # a restart finds them as the table has them: nothing is sent again
        mark = len(self.bot.log())
        self.bot.restart()
        self.bot.wait_idle(timeout=15)
        self.assertEqual(body(self.ask("!ping", user=self.bob, room=self.room_b)), "pong")
        self.bot.wait_idle(timeout=15)
        self.assertEqual(len(descs()), n)
        # and it knew so: it compared with the room's state, it did not resend
        self.assertNotIn(f"room {self.room_b}: publishing", self.bot.log()[mark:])

    def test_msc4391_structured_invocation(self):
        ev = self.bob.send_event(self.room_b, "m.room.message", {
            "msgtype": "m.text", "body": "/challenge new Structured one",
            "m.mentions": {"user_ids": [self.bot.user_id]},
            "org.matrix.msc4391.command": {"command": "challenge new",
                                           "arguments": {"title": "Structured one",
                                                         "due": "31 Jan"}}})
        r = self.bob.wait_reply(self.room_b, ev, timeout=20)
        self.assertTrue(body(r).startswith("Created C-"), body(r))
        cid = rid(r, "C")
        self.assertIn("Due: 2027-01-31", body(self.ask(f"!challenge show {cid}", user=self.bob,
                                                       room=self.room_b)))
        # the same checks as text: another room's id is not there
        ev = self.bob.send_event(self.room_b, "m.room.message", {
            "msgtype": "m.text", "body": f"/exp show {self.ea}",
            "org.matrix.msc4391.command": {"command": "experiment show",
                                           "arguments": {"id": self.ea}}})
        self.assertEqual(body(self.bob.wait_reply(self.room_b, ev, timeout=20)),
                         f"no experiment {self.ea} here")


if __name__ == "__main__":
    fixtures.main(verbosity=2)
