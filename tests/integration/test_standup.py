#!/usr/bin/env python3
"""Stand-ups as the team sees them, through the local homeserver and the real
bot, time driven by the bot's test clock: a full day (prompt by DM, answers by
DM reply, by command and by an edit, the reminder, the summary with blockers,
the challenge lead mentioned and the since-last-stand-up section), a restart
between prompt and summary, a stand-up missed while the bot was down, skip
dates and away people, a redacted answer, and two people in different zones
across both Europe/London daylight-saving changes."""

import calendar
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks, body  # noqa: E402


def utc(y, mo, d, h, mi):
    return calendar.timegm((y, mo, d, h, mi, 0))


def summaries(hs, room):
    """The summaries the bot posted (not replies quoting them)."""
    return [e for e in hs.all_events(room) if body(e).startswith("Stand-up summary")
            and "m.relates_to" not in e.get("content", {})]


class Standup(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.hs.start()
        cls.alice = cls.hs.register("alice")
        cls.bob = cls.hs.register("bob")
        # the test users read the bot's DM prompts in clear: no E2EE here
        # (the bot makes its DM rooms encrypted when encryption is on)
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0,
                                                             "encryption": "off"})
        # Wednesday 18 November 2026, 08:00 GMT
        cls.bot.set_clock(utc(2026, 11, 18, 8, 0))
        cls.bot.start()
        cls.room = cls.alice.create_room(name="Leeds family hubs",
                                         invite=[cls.bot.user_id, "@bob:localhost"])
        cls.bob.join(cls.room)
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)
        cls.dm = {}

    @classmethod
    def tearDownClass(cls):
        cls.bot.stop()
        cls.hs.stop()

    def clock(self, t):
        self.bot.set_clock(t)

    def test_a_full_day(self):
        a, b = self.alice, self.bob
        _, r = self.ask_ev("!team add @alice:localhost --role data")
        _, r = self.ask_ev("!team add @bob:localhost --role policy")
        _, r = self.ask_ev('!challenge new "Family hub footfall" --lead @alice:localhost')
        self.assertIn("C-1", body(r))
        _, r = self.ask_ev("!standup schedule 09:30 Europe/London mon-fri")
        self.assertIn("Next stand-up: Wednesday 18 November 2026", body(r))
        _, r = self.ask_ev("!standup show")
        self.assertIn("summary at 10:15", body(r))
        # something happens to the challenge before the stand-up
        self.clock(utc(2026, 11, 18, 9, 0))
        _, r = self.ask_ev("!challenge status C-1 active")

        # 09:30: both asked by DM
        self.clock(utc(2026, 11, 18, 9, 30))
        dma, dmb = self.dm_room(a), self.dm_room(b)
        pa = a.wait_for(dma, lambda e: "Yesterday?" in body(e), timeout=20)
        self.assertIn("Stand-up for Leeds family hubs", body(pa))
        b.wait_for(dmb, lambda e: "Yesterday?" in body(e), timeout=20)

        # alice answers by replying to the prompt in the DM
        self.clock(utc(2026, 11, 18, 9, 35))
        ev = a.send_text(dma, "y: counted visitors for C-1\nt: talk to the council\nb: none",
                         reply_to=pa["event_id"])
        r = a.wait_reply(dma, ev, timeout=20)
        self.assertIn("your stand-up answer is recorded", body(r))

        # a restart between prompt and summary
        self.bot.stop()
        self.bot.start()

        # 10:00: bob has not answered: the reminder
        self.clock(utc(2026, 11, 18, 10, 0))
        b.wait_for(dmb, lambda e: "no answer from you yet" in body(e), timeout=20)
        # bob answers by command in the room, then edits the answer
        self.clock(utc(2026, 11, 18, 10, 5))
        cmd, r = self.ask_ev("!standup y: read the survey t: draft questions b: waiting on data",
                          user=b)
        self.assertIn("recorded for Wednesday 18 November 2026", body(r))
        b.edit(self.room, cmd, "!standup y: read the survey t: draft questions "
                               "b: waiting on the footfall data from the council")
        # the bot handles a room's events in order: once this is answered,
        # the edit has been applied (an edit gets no reply of its own)
        _, r = self.ask_ev("!standup summary")
        self.assertIn("waiting on the footfall data from the council", body(r))

        # 10:15: the summary in the room
        self.clock(utc(2026, 11, 18, 10, 15))
        s = a.wait_for(self.room, lambda e: "Stand-up summary" in body(e), timeout=20)
        text = body(s)
        self.assertLess(text.index("Blockers"), text.index("Answers"))
        self.assertLess(text.index("Answers"), text.index("Since the last stand-up"))
        self.assertIn("waiting on the footfall data from the council", text)
        self.assertNotIn("waiting on data\n", text)
        self.assertIn("(lead of C-1)", text)
        self.assertIn("@alice:localhost", s["content"]["m.mentions"]["user_ids"])
        self.assertIn("counted visitors for C-1", text)
        self.assertIn("status open → active", text)
        self.assertIn("matrix.to", s["content"]["formatted_body"])
        # exactly one summary, also after a restart and more ticks
        self.bot.restart()
        self.clock(utc(2026, 11, 18, 10, 20))
        self.bot.wait_idle()
        time.sleep(1.5)
        self.assertEqual(len(summaries(self.hs, self.room)), 1)
        _, r = self.ask_ev("!standup history")
        self.assertIn("Wednesday 18 November 2026", body(r))

    def test_b_missed_while_down(self):
        # down over Thursday's stand-up, back at 13:00: more than the grace
        # period late: recorded as missed, nothing posted, Friday planned
        self.bot.stop()
        self.clock(utc(2026, 11, 19, 13, 0))
        mark = self.bot.log_mark()
        self.bot.start()
        self.bot.wait_log(r"standup\.summary.*missed", timeout=20, since=mark)
        self.bot.wait_idle()
        _, r = self.ask_ev("!standup history")
        self.assertIn("Thursday 19 November 2026", body(r))
        self.assertIn("Not posted", body(r))
        _, r = self.ask_ev("!standup show")
        self.assertIn("Next stand-up: Friday 20 November 2026", body(r))
        self.assertEqual(len(summaries(self.hs, self.room)), 1)

    def test_c_skip_and_away(self):
        # Friday is skipped; bob is away on Monday: only alice is asked
        _, r = self.ask_ev("!standup skip 2026-11-20")
        self.assertIn("Next stand-up: Monday 23 November 2026", body(r))
        _, r = self.ask_ev("!standup away @bob:localhost --until 2026-11-23")
        self.assertIn("is away", body(r))
        dmb = self.dm_room(self.bob)
        before = len([e for e in self.bob.events(dmb) if "Yesterday?" in body(e)])
        self.clock(utc(2026, 11, 23, 9, 30))
        dma = self.dm_room(self.alice)
        self.alice.wait_for(dma, lambda e: "Monday 23 November 2026" in body(e), timeout=20)
        # alice answers, then deletes (redacts) her answer: it is withdrawn
        cmd, r = self.ask_ev("!standup y: a t: b b: secret blocker")
        self.alice.redact(self.room, cmd)
        _, r = self.ask_ev("!standup summary")
        self.assertNotIn("secret blocker", body(r))
        self.clock(utc(2026, 11, 23, 10, 15))
        s = self.alice.wait_for(self.room, lambda e: "Monday 23 November 2026" in body(e)
                                and "Stand-up summary" in body(e), timeout=20)
        self.assertIn("Away: @bob:localhost (until 2026-11-23)", body(s))
        self.assertIn("Not answered: @alice:localhost", body(s))
        self.assertNotIn("secret blocker", body(s))
        after = len([e for e in self.bob.events(dmb) if "Yesterday?" in body(e)])
        self.assertEqual(before, after)

    def test_d_zones_across_dst(self):
        # bob works from Paris; after the clocks go forward (29 March 2027 is
        # the first Monday in summer time) 09:30 is 07:30 UTC in Paris and
        # 08:30 UTC in London
        _, r = self.ask_ev("!me tz Europe/Paris", user=self.bob)
        self.assertIn("Europe/Paris", body(r))
        self.bot.stop()
        self.clock(utc(2027, 3, 26, 12, 0))
        self.bot.start()
        self.bot.wait_idle()
        _, r = self.ask_ev("!standup show")
        self.assertIn("Next stand-up: Monday 29 March 2027", body(r))
        dma, dmb = self.dm_room(self.alice), self.dm_room(self.bob)
        self.clock(utc(2027, 3, 29, 7, 30))
        self.bob.wait_for(dmb, lambda e: "Monday 29 March 2027" in body(e), timeout=20)
        self.bot.wait_idle()
        time.sleep(1.2)
        self.assertFalse([e for e in self.alice.events(dma) if "Monday 29 March 2027" in body(e)])
        self.clock(utc(2027, 3, 29, 8, 30))
        self.alice.wait_for(dma, lambda e: "Monday 29 March 2027" in body(e), timeout=20)
        self.clock(utc(2027, 3, 29, 9, 15))
        self.alice.wait_for(self.room, lambda e: body(e).startswith("Stand-up summary — Monday 29"),
                            timeout=20)

    def test_e_october_change(self):
        # clocks go back on Sunday 31 October 2027: Monday 1 November's 09:30
        # is 09:30 UTC in London and 08:30 UTC in Paris
        self.bot.stop()
        self.clock(utc(2027, 10, 29, 12, 0))
        self.bot.start()
        self.bot.wait_idle()
        _, r = self.ask_ev("!standup show")
        self.assertIn("Next stand-up: Monday 1 November 2027", body(r))
        dma, dmb = self.dm_room(self.alice), self.dm_room(self.bob)
        self.clock(utc(2027, 11, 1, 8, 30))
        self.bob.wait_for(dmb, lambda e: "Monday 1 November 2027" in body(e), timeout=20)
        self.bot.wait_idle()
        time.sleep(1.2)
        self.assertFalse([e for e in self.alice.events(dma) if "Monday 1 November 2027" in body(e)])
        self.clock(utc(2027, 11, 1, 9, 30))
        self.alice.wait_for(dma, lambda e: "Monday 1 November 2027" in body(e), timeout=20)


if __name__ == "__main__":
    fixtures.main(verbosity=2)
