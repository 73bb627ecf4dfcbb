#!/usr/bin/env python3
"""Day one in a real team's room (issue 13), typed as people type it,
checked as the others in the room see it: the welcome when the bot joins;
a stand-up without a roster asks the room's joined members (also those who
never spoke, not the other bot); a plain reply to the prompt posted in the
room is an answer; a part of an answer replaces only that part; "none now -
..." is no blocker and a blocker goes to the named challenge's current lead
only; moving the time later on a day that had its stand-up says it next
runs tomorrow; off said once, leave listed, zone hints; edits of commands;
unknown people; the programme room."""

import calendar
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks, body, html, in_reply_to  # noqa: E402


def utc(y, mo, d, h, mi):
    return calendar.timegm((y, mo, d, h, mi, 0))


def from_bot(ev):
    return ev.get("sender") == "@tlbot:localhost"


class DayOne(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.hs.start()
        cls.alice = cls.hs.register("alice")
        cls.bob = cls.hs.register("bob")
        cls.erin = cls.hs.register("erin")
        cls.erin.set_displayname("Erin Hughes")
        cls.cibot = cls.hs.register("ci-bot")
        cls.frank = cls.hs.register("frank")   # in no room with the bot
        # the programme room exists before the bot is configured with it
        cls.prog = cls.alice.create_room(name="Programme board")
        # the test users read the bot's DMs in clear: no E2EE here (its own
        # suites cover it)
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0,
                                                             "digest_room": cls.prog,
                                                             "encryption": "off"})
        # Wednesday 18 November 2026, 08:00 GMT
        cls.bot.set_clock(utc(2026, 11, 18, 8, 0))
        cls.bot.start()
        cls.room = cls.alice.create_room(
            name="Leeds family hubs",
            invite=["@bob:localhost", "@erin:localhost", "@ci-bot:localhost"])
        for u in (cls.bob, cls.erin, cls.cibot):
            u.join(cls.room)
        # the bot comes last, as it does when a team adds it to its room
        cls.alice.invite(cls.room, cls.bot.user_id)
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)
        cls.alice.invite(cls.prog, cls.bot.user_id)
        cls.alice.wait_membership(cls.prog, cls.bot.user_id, "join", timeout=15)
        cls.dm = {}

    @classmethod
    def tearDownClass(cls):
        cls.bot.stop()
        cls.hs.stop()

    # here ask gives (the command's id, the reply)
    ask = Asks.ask_ev

    def clock(self, t):
        self.bot.set_clock(t)

    def test_a_welcome_once(self):
        w = self.alice.wait_for(self.room, lambda e: from_bot(e) and "Start with" in body(e),
                                timeout=20)
        text = body(w)
        self.assertLess(text.index("!team add"), text.index("!challenge new"))
        self.assertLess(text.index("!challenge new"), text.index("!standup schedule"))
        self.assertIn("<ol>", html(w))
        self.assertIn("<code>!team add", html(w))
        self.bot.restart()
        self.bot.wait_idle()
        self.ask("!standup show")
        welcomes = [e for e in self.alice.events(self.room)
                    if from_bot(e) and "Start with" in body(e)]
        self.assertEqual(len(welcomes), 1)

    def test_b_standup_day(self):
        a, b, e = self.alice, self.bob, self.erin
        # the ci bot talks in notices, as bots do
        self.cibot.send_text(self.room, "build passed", msgtype="m.notice")
        # bob turns DMs off: asked in the room
        self.ask("!notify off", user=b)
        _, r = self.ask('!challenge new "Family hub footfall" --lead @erin:localhost')
        self.assertIn("C-1", body(r))
        _, r = self.ask('!challenge new "Waiting lists" --lead @alice:localhost')
        self.assertIn("C-2", body(r))
        _, r = self.ask("!challenge unassign C-1 @erin:localhost")
        _, r = self.ask("!standup schedule 09:30 Europe/London mon-fri")
        self.assertIn("Next stand-up: Wednesday 18 November 2026 (today)", body(r))
        # no roster: the room's members are asked, erin too although she
        # never spoke; not the bots
        _, r = self.ask("!standup show")
        shown = body(r) + html(r)
        self.assertIn("the room's members", body(r))
        for uid in ("@alice:localhost", "@bob:localhost", "@erin:localhost"):
            self.assertIn(uid, shown)
        self.assertNotIn("ci-bot", shown)

        self.clock(utc(2026, 11, 18, 9, 30))
        dme = self.dm_room(e)
        pe = e.wait_for(dme, lambda ev: "Yesterday?" in body(ev), timeout=20)
        self.assertIn("Stand-up for Leeds family hubs", body(pe))
        dma = self.dm_room(a)
        pa = a.wait_for(dma, lambda ev: "Yesterday?" in body(ev), timeout=20)
        # bob (DMs off) is asked in the room; he replies with plain lines
        pr = b.wait_for(self.room, lambda ev: from_bot(ev) and "Answer with" in body(ev)
                        and "@bob:localhost" in html(ev), timeout=20)
        self.clock(utc(2026, 11, 18, 9, 40))
        ev = b.send_text(self.room, "read the survey\ndraft the questions\nwaiting on C-1 data",
                         reply_to=pr["event_id"])
        r = b.wait_reply(self.room, ev, timeout=20)
        self.assertIn("your stand-up answer is recorded", body(r))

        # alice answers in full by DM, then sends only the blockers part
        ev = a.send_text(dma, "y: counted visitors\nt: call the council\nb: contract unsigned",
                         reply_to=pa["event_id"])
        a.wait_reply(dma, ev, timeout=20)
        _, r = self.ask("!standup b: none now – signed this morning ✅")
        self.assertIn("updated", body(r))
        self.assertIn("counted visitors", body(r))
        self.assertIn("call the council", body(r))
        self.assertIn("none now – signed this morning", body(r))

        self.clock(utc(2026, 11, 18, 10, 15))
        s = a.wait_for(self.room, lambda ev: body(ev).startswith("Stand-up summary"), timeout=20)
        text = body(s)
        blockers = text[text.index("Blockers"):text.index("Answers")]
        self.assertIn("waiting on C-1 data", blockers)
        self.assertNotIn("signed this morning", blockers)
        self.assertNotIn("contract unsigned", text)
        # C-1's lead was unassigned: nobody is routed, not C-2's lead
        self.assertNotIn("lead of", blockers)
        self.assertNotIn("@alice:localhost", s["content"]["m.mentions"]["user_ids"])
        self.assertNotIn("@erin:localhost", s["content"]["m.mentions"]["user_ids"])
        self.assertIn("call the council", text)

        # later that day: a later time starts with tomorrow, and says so
        self.clock(utc(2026, 11, 18, 10, 30))
        _, r = self.ask("!standup schedule 14:00")
        self.assertIn("Next stand-up: Thursday 19 November 2026", body(r))
        self.assertIn("already run", body(r))
        self.clock(utc(2026, 11, 18, 14, 50))
        self.bot.wait_idle()
        time.sleep(1.5)
        n = [ev for ev in self.hs.all_events(self.room)
             if body(ev).startswith("Stand-up summary — Wednesday")
             and "m.relates_to" not in ev["content"]]
        self.assertEqual(len(n), 1)

    def test_c_settings_said_once(self):
        _, r = self.ask("!standup away @bob:localhost --from 2026-12-01 --until 2026-12-04")
        _, r = self.ask("!standup show")
        self.assertIn("Leave:", body(r))
        self.assertIn("2026-12-01 to 2026-12-04", body(r))
        _, r = self.ask("!standup off")
        self.assertEqual(body(r).lower().count("paused") + body(r).lower().count(" off"), 1)
        _, r = self.ask("!standup on")
        self.assertIn("Stand-ups on", body(r))
        _, r = self.ask("!me tz GMT", user=self.erin)
        self.assertIn("summer time", body(r))
        self.assertIn("Europe/London", body(r))
        _, r = self.ask("!me tz london", user=self.erin)
        self.assertIn("did you mean Europe/London", body(r))


    def test_d_edits_of_commands(self):
        a = self.alice
        # a refused command, edited: the edit runs and is answered
        cmd, r = self.ask('!chalenge new "Bus pass renewals"')
        self.assertIn("did you mean", body(r))
        a.edit(self.room, cmd, '!challenge new "Bus pass renewals"')
        got = a.wait_for_count(self.room, lambda ev: from_bot(ev) and in_reply_to(ev) == cmd,
                               2, timeout=20)
        self.assertRegex(body(got[1]), r"C-\d+")
        self.assertIn("Bus pass renewals", body(got[1]))
        # edited again after it ran: said once that edits are not re-run
        a.edit(self.room, cmd, '!challenge new "Bus pass renewals in Leeds"')
        got = a.wait_for_count(self.room, lambda ev: from_bot(ev) and in_reply_to(ev) == cmd,
                               3, timeout=20)
        self.assertIn("do not run edits", body(got[2]))
        self.assertIn("!challenge edit", body(got[2]))
        a.edit(self.room, cmd, '!challenge new "Bus pass renewals, Leeds"')
        _, r = self.ask("!challenge list")
        self.assertIn("Bus pass renewals", body(r))
        self.assertNotIn("in Leeds", body(r))
        self.assertNotIn("renewals, Leeds", body(r))
        replies = [ev for ev in a.events(self.room) if from_bot(ev) and in_reply_to(ev) == cmd]
        self.assertEqual(len(replies), 3)


    def test_e_unknown_people(self):
        a = self.alice

        def replies(cmd, n):
            return a.wait_for_count(self.room, lambda ev: from_bot(ev) and in_reply_to(ev) == cmd,
                                    n, timeout=20)

        # nobody: checked with the homeserver, then refused; no DM room made
        cmd = a.send_text(self.room, "!team add @nobody:localhost --role data")
        first, second = replies(cmd, 2)
        self.assertIn("not in this room", body(first))
        self.assertIn("there is no user @nobody:localhost", body(second))
        _, r = self.ask('!challenge new "Nobody\'s challenge"')
        ref = [w for w in body(r).replace(":", " ").split() if w.startswith("C-")][0]
        _, r = self.ask(f"!challenge assign {ref} @nobody:localhost")
        self.assertIn("there is no user @nobody:localhost", body(r))
        _, r = self.ask("!team list")
        self.assertNotIn("nobody", body(r) + html(r))
        # people by localpart, @localpart and display name
        _, r = self.ask("!team add erin --role data")
        self.assertIn("Added", body(r))
        # written by her display name, as clients show her (item 19)
        self.assertIn("Added Erin Hughes", body(r))
        self.assertIn('<a href="https://matrix.to/#/@erin:localhost">Erin Hughes</a>', html(r))
        _, r = self.ask(f"!challenge assign {ref} Erin Hughes")
        self.assertIn("Assigned", body(r))
        self.assertIn("@erin:localhost", body(r) + html(r))
        _, r = self.ask(f"!challenge assign {ref} @bob")
        self.assertIn("@bob:localhost", body(r) + html(r))
        # a user of the homeserver outside the room: accepted once it says so
        cmd = a.send_text(self.room, "!team add @frank:localhost --role ops")
        first, second = replies(cmd, 2)
        self.assertIn("asking their homeserver", body(first))
        self.assertIn("Added", body(second))
        self.assertIn("@frank:localhost", body(second) + html(second))
        self.assertNotRegex(self.bot.log(), r"DM room .* with @nobody")

    def test_f_programme_view(self):
        _, r = self.ask('!exp new C-1 "Text reminders" "We believe a text the day before will'
                        ' result in fewer missed visits. We will know when missed visits fall."')
        ref = [w for w in body(r).replace(":", " ").split() if w.startswith("E-")][0]
        self.ask(f'!exp note {ref} "confidential case detail about a family"')
        self.ask(f'!exp learn {ref} "people answer texts, not letters"')
        # a team room does not see across rooms
        for cmd in ("!exp list --all-rooms", "!exp search texts", "!challenge list --all-rooms"):
            _, r = self.ask(cmd)
            self.assertIn("programme room only", body(r), cmd)
        # the programme room does, read only, never notes
        _, r = self.ask("!exp list --all-rooms", room=self.prog)
        self.assertIn("Text reminders", body(r))
        self.assertIn("Leeds family hubs", body(r))
        _, r = self.ask("!exp search answer letters", room=self.prog)
        self.assertIn("Text reminders", body(r))
        _, r = self.ask("!exp search confidential", room=self.prog)
        self.assertIn("No experiment", body(r))
        self.assertNotIn("Text reminders", body(r))
        _, r = self.ask("!challenge list --all-rooms", room=self.prog)
        self.assertIn("Family hub footfall", body(r))
        _, r = self.ask("!exp digest mon 09:00", room=self.prog)
        self.assertIn("Mondays at 09:00", body(r))
        _, r = self.ask("!exp digest", room=self.prog)
        self.assertIn("Mondays at 09:00", body(r))
        _, r = self.ask("!exp digest")
        self.assertNotIn("Mondays", body(r))

    def test_g_html_as_clients_render_it(self):
        """Every message the bot sent in these rooms keeps to the HTML subset
        the spec recommends for org.matrix.custom.html, without the stray
        line breaks that open gaps around lists, and with commands in
        <code>."""
        allowed = {"font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a",
                   "ul", "ol", "sup", "sub", "li", "b", "i", "u", "strong", "em", "strike",
                   "code", "hr", "br", "div", "table", "thead", "tbody", "tr", "th", "td",
                   "caption", "pre", "span", "img", "details", "summary"}
        seen = 0
        for room in (self.room, self.prog):
            for ev in self.hs.all_events(room):
                if not from_bot(ev) or ev.get("type") != "m.room.message":
                    continue
                h = html(ev)
                if not h:
                    continue
                seen += 1
                tags = set(t.lower() for t in re.findall(r"</?([A-Za-z0-9]+)", h))
                self.assertLessEqual(tags, allowed, h[:300])
                for bad in ("</ul><br/>", "</ol><br/>", "</li><br/><li>", "<br/></li>",
                            "</ul><ul>", "<br/><ul>", "<br/><ol>"):
                    self.assertNotIn(bad, h, h[:400])
                self.assertFalse(h.endswith("<br/>"), h[-200:])
        self.assertGreater(seen, 20)
        _, r = self.ask("!standup show")
        self.assertIn("<code>!standup holidays england-and-wales|scotland|northern-ireland"
                      "</code>", html(r))
        self.assertNotIn("`", body(r))
        _, r = self.ask("!me tz london", user=self.erin)
        self.assertIn("<code>!me tz Europe/London</code>", html(r))

if __name__ == "__main__":
    fixtures.main(verbosity=2)
