#!/usr/bin/env python3
"""!remind through the local homeserver and the real bot, time driven by the
test clock: each time form (in, at, tomorrow, on DATE at HH:MM), delivery by
DM and in the room, the requester's own zone, list and cancel, a reminder
surviving a restart and one missed while the bot was down."""

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


class Remind(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.hs.start()
        cls.alice = cls.hs.register("alice")
        cls.bob = cls.hs.register("bob")
        # reminders by DM are read in clear by the test users: no E2EE here
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0,
                                                             "encryption": "off"})
        cls.bot.set_clock(utc(2026, 11, 18, 10, 0))  # Wednesday, GMT
        cls.bot.start()
        cls.room = cls.alice.create_room(name="Hull TA", invite=[cls.bot.user_id, "@bob:localhost"])
        cls.bob.join(cls.room)
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)
        cls.dm = {}

    @classmethod
    def tearDownClass(cls):
        cls.bot.stop()
        cls.hs.stop()

    def test_forms_delivery_cancel(self):
        a, b = self.alice, self.bob
        _, r = self.ask_ev('!remind me in 2h "call the council"')
        self.assertIn("R-1: I will remind you on Wednesday 18 November 2026 at 12:00 "
                      "Europe/London by direct message", body(r))
        _, r = self.ask_ev('!remind room at 16:00 "retro in five minutes"')
        self.assertIn("at 16:00 Europe/London", body(r))
        _, r = self.ask_ev('!remind @bob:localhost tomorrow 09:00 "send the survey"')
        self.assertIn("Thursday 19 November 2026 at 09:00", body(r))
        _, r = self.ask_ev('!remind me on 2026-12-01 at 10:30 "review the pilot"')
        self.assertIn("Tuesday 1 December 2026 at 10:30", body(r))
        # bob works in Paris: his 11:00 is 10:00 UTC
        self.ask_ev("!me tz Europe/Paris", user=b)
        _, r = self.ask_ev('!remind me at 11:30 "paris time"', user=b)
        self.assertIn("11:30 Europe/Paris", body(r))
        _, r = self.ask_ev("!remind me in a while x")
        self.assertIn("bad duration", body(r))
        _, r = self.ask_ev("!remind list")
        for n in ("R-1", "R-2", "R-3", "R-4"):
            self.assertIn(n, body(r))
        _, r = self.ask_ev("!remind cancel R-4")
        self.assertEqual(body(r), "Cancelled R-4.")
        _, r = self.ask_ev("!remind cancel R-1", user=b)
        self.assertIn("not allowed", body(r))

        # 10:30 UTC: bob's Paris reminder, by DM
        self.bot.set_clock(utc(2026, 11, 18, 10, 30))
        dmb = self.dm_room(b)
        b.wait_for(dmb, lambda e: "paris time" in body(e), timeout=20)
        # a restart before the next one: it still comes, once
        self.bot.restart()
        self.bot.set_clock(utc(2026, 11, 18, 12, 0))
        dma = self.dm_room(a)
        a.wait_for(dma, lambda e: "call the council" in body(e), timeout=20)
        self.bot.set_clock(utc(2026, 11, 18, 16, 0))
        ev = a.wait_for(self.room, lambda e: e["sender"] == self.bot.user_id
                        and body(e).startswith("Reminder"), timeout=20)
        self.assertIn("retro in five minutes", body(ev))
        self.assertEqual(ev["content"]["msgtype"], "m.notice")
        self.bot.set_clock(utc(2026, 11, 19, 9, 0))
        ev = b.wait_for(dmb, lambda e: "send the survey" in body(e), timeout=20)
        self.assertIn("from @alice:localhost", body(ev))
        self.bot.wait_idle()
        time.sleep(1.2)
        self.assertEqual(len([e for e in a.events(dma) if "call the council" in body(e)]), 1)

        # missed while down: more than the grace period late, not delivered
        _, r = self.ask_ev('!remind me in 1h "too late"')
        self.bot.stop()
        self.bot.set_clock(utc(2026, 11, 19, 13, 30))
        mark = self.bot.log_mark()
        self.bot.start()
        self.bot.wait_log(r"remind\.deliver.*missed", timeout=20, since=mark)
        # the cancelled one never comes either
        self.bot.set_clock(utc(2026, 12, 1, 10, 31))
        self.bot.wait_idle()
        time.sleep(1.2)
        texts = [body(e) for e in a.events(dma)]
        self.assertFalse([t for t in texts if "too late" in t or "review the pilot" in t])
        _, r = self.ask_ev("!remind list")
        self.assertIn("No pending reminders", body(r))


if __name__ == "__main__":
    fixtures.main(verbosity=2)
