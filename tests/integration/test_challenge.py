#!/usr/bin/env python3
"""!challenge as people in the room see it, through the real binary and the
local homeserver: replies are m.notice replies to the command; creating,
showing, listing; refusals (no power, bad arguments, unknown ids) that
change nothing; assignment mentions the assignee (m.mentions + pill, also
from an Element-style pill whose body is a display name) and DMs them in a
room the bot marks in its m.direct; !notify off stops the DM; the history
after several edits; a due-date reminder fired by advancing the bot's test
clock.  Runs standalone (python3 test_challenge.py) or under CTest."""

import os
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks, body, html, team_room  # noqa: E402

# The bot's clock: Wed 2026-11-18 11:00 UTC (Europe/London is UTC in winter).
T0 = 1794999600
DAY = 86400


class Challenge(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # alice made the room (power 100); bob, sam and kim have power 0
        team_room(cls, "Sheffield TA", ("bob", "sam", "kim"), clock=T0)

    def new(self, title, extra=""):
        r = self.ask(f'!challenge new "{title}" {extra}')
        b = body(r)
        self.assertTrue(b.startswith("Created C-"), b)
        return b.split(":", 1)[0].split()[-1]          # "C-3"

    def db_one(self, sql):
        db = sqlite3.connect(f"file:{self.bot.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return db.execute(sql).fetchone()[0]
        finally:
            db.close()

    def pending_rows(self):
        return self.db_one("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")

    def bot_token(self):
        return self.db_one("SELECT value FROM kv WHERE key = 'access_token'")

    def dm_room_of(self, user):
        """The DM room the bot uses with user: from the bot's m.direct, joined
        by user.  Logs in as the bot (another device) to read its account data."""
        botc = self.hs.login(self.bot.user_id[1:].split(":")[0], self.bot.password)
        deadline = time.monotonic() + 20
        while True:
            direct = botc.account_data("m.direct") or {}
            rooms = direct.get(user.user_id) or []
            if rooms:
                break
            if time.monotonic() > deadline:
                self.fail(f"no m.direct entry for {user.user_id}: {direct}")
            time.sleep(0.1)
        room = rooms[-1]
        if room not in user.joined_rooms():
            user.join(room)
        return room

    # ------------------------------------------------------------------ tests

    def test_new_show_list(self):
        cid = self.new("Cut the cost of <temporary> accommodation",
                       "--region Sheffield --due 2026-12-10 --desc \"Two wards & a pilot\"")
        r = self.ask(f"!challenge show {cid.lower()}", user=self.bob)
        self.assertEqual(r["content"]["msgtype"], "m.notice")
        self.assertIn("Status: open", body(r))
        self.assertIn("Due: 2026-12-10 (in 22 days)", body(r))
        self.assertIn("Region: Sheffield", body(r))
        self.assertIn("Description: Two wards & a pilot", body(r))
        self.assertIn("&lt;temporary&gt;", html(r))
        self.assertNotIn("<temporary>", html(r))
        self.assertEqual(r["content"]["m.mentions"], {"user_ids": []})
        r = self.ask("!challenge list", user=self.bob)
        self.assertIn(f"• {cid} Cut the cost of <temporary> accommodation — open", body(r))
        self.assertIn("<table>", html(r))

    def test_lead_edits_and_table_cells(self):
        # issue 13 items 16 and 19, as bob (power 0) sees them
        cid = self.new("Bob's pilot", f"--lead {self.bob.user_id}")
        r = self.ask(f'!challenge edit {cid} --desc "run from the hub"', user=self.bob)
        self.assertNotIn("not allowed", body(r))
        r = self.ask(f"!challenge show {cid}", user=self.bob)
        self.assertIn("run from the hub", body(r))
        other = self.new("Not bob's")
        r = self.ask(f'!challenge edit {other} --desc "mine now"', user=self.bob)
        self.assertIn("not allowed", body(r))
        r = self.ask("!challenge list --status all", user=self.bob)
        self.assertNotRegex(html(r), r"<td>\d+</td></tr>")     # names, not a count
        self.assertIn("<td>—</td>", html(r))                     # no lead: a dash
        r = self.ask("!challenge list --status dropped", user=self.bob)
        self.assertIn("No dropped challenges in this room", body(r))
        self.assertNotIn("Create one", body(r))

    def test_refusals_change_nothing(self):
        r = self.ask('!challenge new "Bob wants this"', user=self.bob)
        self.assertIn("not allowed: !challenge new needs a power level of at least 50", body(r))
        r = self.ask('!challenge new "x" --due someday')
        self.assertIn("bad date 'someday' for --due", body(r))
        self.assertIn("accepted dates: YYYY-MM-DD (2027-01-31), 31/01/2027, 31 Jan", body(r))
        r = self.ask("!challenge show C-99999")
        self.assertIn("no challenge C-99999", body(r))
        r = self.ask("!challenge show C-99999999999999999999")
        self.assertIn("bad challenge id 'C-99999999999999999999'", body(r))
        r = self.ask("!challenge assign")
        self.assertIn("missing C-12", body(r))
        r = self.ask("!challenge list --status all --all-rooms", user=self.bob)
        self.assertNotIn("Bob wants this", body(r))
        self.assertNotIn(" x — ", body(r))

    def test_assign_mentions_and_dm(self):
        cid = self.new("Family hubs", "--due +20d")
        r = self.ask(f"!challenge assign {cid} @sam:localhost --lead @sam:localhost")
        self.assertIn(f"Assigned {cid} Family hubs to @sam:localhost.", body(r))
        self.assertEqual(r["content"]["m.mentions"], {"user_ids": ["@sam:localhost"]})
        self.assertIn('<a href="https://matrix.to/#/@sam:localhost">', html(r))
        dm = self.dm_room_of(self.sam)
        ev = self.sam.wait_for(dm, mx.body_contains(f"assigned you to {cid} Family hubs"), timeout=20)
        self.assertEqual(ev["sender"], self.bot.user_id)
        self.assertIn("in Sheffield TA as its lead", body(ev))   # the room's name, linked
        self.assertIn("!notify off", body(ev))
        # an Element pill: the body has the display name, m.mentions the id
        self.kim.set_displayname("Kim Lee")
        r = self.ask(f"!challenge assign {cid} Kim Lee",
                     formatted_body=f'!challenge assign {cid} '
                                    '<a href="https://matrix.to/#/@kim:localhost">Kim Lee</a>',
                     mentions=["@kim:localhost"])
        # a member with a display name is written by it (issue 13 item 19)
        self.assertIn(f"Assigned {cid} Family hubs to Kim Lee.", body(r))
        r = self.ask(f"!challenge show {cid}", user=self.bob)
        self.assertIn("Assigned: @sam:localhost, Kim Lee", body(r))
        self.assertIn("Lead: @sam:localhost", body(r))

    def test_notify_off_stops_dm(self):
        r = self.ask("!notify off", user=self.kim)
        self.assertIn("Direct messages are off", body(r))
        cid = self.new("Quiet one")
        r = self.ask(f"!challenge assign {cid} @kim:localhost")
        self.assertEqual(r["content"]["m.mentions"], {"user_ids": ["@kim:localhost"]})
        # no DM. Once the bot has nothing left to send (no pending outbox row:
        # the command and what it caused, a profile lookup included, are
        # done), none was posted in any room the bot is in, not only the one
        # its best-effort m.direct names.
        self.bot.wait_idle()
        deadline = time.monotonic() + 20
        while self.pending_rows() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.pending_rows(), 0)
        for room in mx.request("GET", self.hs.url + "/_matrix/client/v3/joined_rooms",
                               token=self.bot_token())["joined_rooms"]:
            for ev in self.hs.all_events(room):
                self.assertNotIn(f"assigned you to {cid}", body(ev), room)
        r = self.ask("!notify on", user=self.kim)
        self.assertIn("Direct messages are on", body(r))

    def test_history_after_edits(self):
        cid = self.new("Digital inclusion", "--due 2026-12-20")
        self.assertIn("Updated", body(self.ask(f'!challenge edit {cid} --title "Digital inclusion in Essex"')))
        self.assertIn("reminders moved", body(self.ask(f"!challenge edit {cid} --due 2027-01-15")))
        self.assertIn("is now active", body(self.ask(f"!challenge status {cid} active")))
        r = self.ask(f'!challenge status {cid} done --note "Library drop-ins worked"')
        self.assertIn("is now done (was active). Outcome: Library drop-ins worked", body(r))
        r = self.ask(f"!challenge status {cid} done")
        self.assertIn(f"{cid} is already done", body(r))
        r = self.ask(f"!challenge history {cid}", user=self.bob)
        lines = [ln for ln in body(r).splitlines() if ln.startswith("• ")]
        self.assertEqual(len(lines), 6, body(r))
        self.assertIn("@alice:localhost created it", lines[0])
        self.assertIn("changed title from Digital inclusion to Digital inclusion in Essex", lines[1])
        self.assertIn("changed due from 2026-12-20 to 2027-01-15", lines[2])
        self.assertIn("changed status from open to active", lines[3])
        self.assertIn("changed status from active to done", lines[4])
        self.assertIn("noted the outcome: Library drop-ins worked", lines[5])
        self.assertIn("<ul><li>", html(r))

    def test_zz_due_reminder_by_clock(self):
        # last (the clock only moves forward): due Wed 2026-11-25, reminded
        # at 09:00 on Sun 2026-11-22
        cid = self.new("Temporary accommodation costs", "--due 2026-11-25")
        self.ask(f"!challenge assign {cid} @bob:localhost")
        dm = self.dm_room_of(self.bob)
        self.bot.wait_idle()
        mark = self.alice.events(self.room)[-1]["event_id"]
        self.bot.set_clock(T0 + 4 * DAY - 2 * 3600)       # 2026-11-22 09:00 UTC
        ev = self.alice.wait_for(self.room, lambda e: e.get("sender") == self.bot.user_id and
                                 f"Reminder: {cid}" in body(e), timeout=20, after=mark)
        self.assertIn(f"Reminder: {cid} Temporary accommodation costs is due in 3 days (2026-11-25)",
                      body(ev))
        self.assertEqual(ev["content"]["msgtype"], "m.notice")
        self.assertEqual(ev["content"]["m.mentions"], {"user_ids": ["@bob:localhost"]})
        self.assertNotIn("m.relates_to", ev["content"])
        dmev = self.bob.wait_for(dm, mx.body_contains(f"{cid} Temporary accommodation costs is due in 3 days"),
                                 timeout=20)
        self.assertEqual(dmev["sender"], self.bot.user_id)
        # fired once: nothing more for this challenge on later ticks
        time.sleep(2)
        self.bot.wait_idle()
        hits = [e for e in self.hs.all_events(self.room)
                if e.get("sender") == self.bot.user_id and f"Reminder: {cid}" in body(e)]
        self.assertEqual(len(hits), 1)


if __name__ == "__main__":
    fixtures.main(verbosity=2)
