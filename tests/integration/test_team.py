#!/usr/bin/env python3
"""!team as people in the room see it, through the real binary and the local
homeserver: naming the team and its lead, adding people with a role and a
tour of duty (also from an Element-style pill), the roster as a table,
removing people, refusals (no power, missing role, bad dates) that change
nothing, assigning a challenge to the whole roster, and the end-of-tour
flag sent to the team's lead by direct message when the bot's test clock
reaches it.  Runs standalone (python3 test_team.py) or under CTest."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks, body, html, team_room  # noqa: E402

T0 = 1794999600          # Wed 2026-11-18 11:00 UTC (Europe/London is UTC in winter)
DAY = 86400


class Team(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # alice made the room (power 100); bob, sam and kim have power 0
        team_room(cls, "Essex family hubs", ("bob", "sam", "kim"), clock=T0)

    def test_add_list_remove(self):
        r = self.ask("!team add @sam:localhost --role data --from 2026-09-01 --until 2027-03-31")
        self.assertEqual(body(r), "Added @sam:localhost to the team as data, from 2026-09-01, "
                                  "until 2027-03-31.")
        self.assertEqual(r["content"]["msgtype"], "m.notice")
        self.assertIn('<a href="https://matrix.to/#/@sam:localhost">', html(r))
        # Element pill: display name in the body, the id in m.mentions
        self.kim.set_displayname("Kim Lee")
        r = self.ask("!team add Kim Lee --role frontline",
                     formatted_body='!team add <a href="https://matrix.to/#/@kim:localhost">Kim Lee</a>'
                                    ' --role frontline',
                     mentions=["@kim:localhost"])
        # a member with a display name is written by it (issue 13 item 19)
        self.assertEqual(body(r), "Added Kim Lee to the team as frontline.")
        self.assertIn('<a href="https://matrix.to/#/@kim:localhost">Kim Lee</a>', html(r))
        r = self.ask("!team list", user=self.bob)
        self.assertIn("• @sam:localhost — data, from 2026-09-01, until 2027-03-31", body(r))
        self.assertIn("• Kim Lee — frontline", body(r))
        self.assertIn("<table><thead><tr><th>Member</th>", html(r))
        r = self.ask("!team remove @kim:localhost")
        self.assertEqual(body(r), "Removed Kim Lee from the team.")
        r = self.ask("!team remove @kim:localhost")
        self.assertIn("@kim:localhost is not on this team", body(r))
        self.assertNotIn("@kim:localhost", body(self.ask("!team list", user=self.bob)))

    def test_refusals_change_nothing(self):
        r = self.ask("!team add @eve:localhost --role data", user=self.bob)
        self.assertIn("not allowed: !team add needs a power level of at least 50", body(r))
        r = self.ask("!team add @eve:localhost")
        self.assertIn("missing --role", body(r))
        r = self.ask("!team add @eve:localhost --role data --until someday")
        self.assertIn("bad date 'someday' for --until: accepted dates", body(r))
        r = self.ask("!team add @eve:localhost --role data --from 2027-02-01 --until 2027-01-01")
        self.assertIn("is before --from", body(r))
        r = self.ask("!team set --name Mine", user=self.bob)
        self.assertIn("not allowed", body(r))
        r = self.ask("!team frobnicate")
        self.assertIn("unknown subcommand !team frobnicate", body(r))
        r = self.ask("!team list", user=self.bob)
        self.assertNotIn("@eve:localhost", body(r))
        self.assertNotIn("Mine", body(r))

    def test_assign_whole_team(self):
        self.ask("!team add @sam:localhost @bob:localhost --role policy")
        r = self.ask('!challenge new "Family hubs in Basildon"')
        cid = body(r).split(":", 1)[0].split()[-1]
        r = self.ask(f"!challenge assign {cid} --team")
        self.assertIn(f"Assigned {cid} Family hubs in Basildon to", body(r))
        ids = set(r["content"]["m.mentions"]["user_ids"])
        self.assertTrue({"@sam:localhost", "@bob:localhost"} <= ids, ids)

    def test_zz_tour_flag_to_lead(self):
        # last: the clock only moves forward
        r = self.ask('!team set --name "Essex family hubs" --region Essex --lead @alice:localhost')
        self.assertIn("Team updated: name Essex family hubs; region Essex; lead @alice:localhost",
                      body(r))
        r = self.ask("!team add @kim:localhost --role policy --until +10d")
        self.assertIn("until 2026-11-28", body(r))
        self.bot.wait_idle()
        self.bot.set_clock(T0 + DAY - 2 * 3600)       # Thu 2026-11-19 09:00
        botc = self.hs.login(self.bot.user_id[1:].split(":")[0], self.bot.password)
        deadline = time.monotonic() + 20
        while not (botc.account_data("m.direct") or {}).get(self.alice.user_id):
            if time.monotonic() > deadline:
                self.fail("the bot made no DM room with the lead")
            time.sleep(0.1)
        dm = botc.account_data("m.direct")[self.alice.user_id][-1]
        self.alice.join(dm)
        ev = self.alice.wait_for(dm, mx.body_contains("Heads-up"), timeout=20)
        self.assertEqual(ev["sender"], self.bot.user_id)
        self.assertIn("the tour of duty of Kim Lee (policy) with Essex family hubs ends on "
                      "2026-11-28, in 9 days", body(ev))


if __name__ == "__main__":
    fixtures.main(verbosity=2)
