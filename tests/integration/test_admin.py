#!/usr/bin/env python3
"""!admin through the real binary and the local homeserver: status, rooms,
leave, an online backup (a file beside the database that passes SQLite's
integrity check), and data protection: export-user sends a JSON file by
direct message with everything held about a person (team, challenge,
experiment, stand-up answer, reminder, history, core tables); forget asks
for a confirmation, then deletes their answers and reminders and replaces
their id by "former member N" everywhere else, and says what it changed;
retention_days deletes old answers and reminders at start. Non-admins are
refused. Runs standalone (python3 test_admin.py) or under CTest."""

import calendar
import glob
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

BOB = "@bob:localhost"


def utc(y, mo, d, h, mi):
    return calendar.timegm((y, mo, d, h, mi, 0))


def body(ev):
    return ev["content"].get("body", "")


class Admin(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.addClassCleanup(cls.hs.stop)
        cls.alice = cls.hs.register("alice")     # the admin
        cls.bob = cls.hs.register("bob")         # the data subject
        cls.carol = cls.hs.register("carol")     # neither
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={
            "admins": ["@alice:localhost"], "rate_limit_per_min": 1000})
        cls.bot.set_clock(utc(2026, 11, 18, 8, 0))
        cls.bot.start()
        cls.addClassCleanup(cls.bot.stop)
        cls.room = cls.alice.create_room(name="Leeds family hubs", invite=[
            cls.bot.user_id, BOB, cls.carol.user_id])
        cls.bob.join(cls.room)
        cls.carol.join(cls.room)
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)
        cls.other = cls.alice.create_room(name="Spare room", invite=[cls.bot.user_id])
        cls.alice.wait_membership(cls.other, cls.bot.user_id, "join", timeout=15)
        # alice's own (unencrypted) DM with the bot, where the export goes;
        # a DM the bot creates itself is encrypted, which this client does
        # not read (tests/integration/test_e2ee* cover that)
        cls.dm = cls.alice.create_room(invite=[cls.bot.user_id], is_direct=True,
                                       preset="private_chat")
        cls.alice.wait_membership(cls.dm, cls.bot.user_id, "join", timeout=15)
        cls.bot.wait_idle(timeout=15)

    def ask(self, text, user=None, room=None):
        user, room = user or self.alice, room or self.room
        ev = user.send_text(room, text)
        return user.wait_reply(room, ev, timeout=20)

    def download(self, ev):
        m = re.fullmatch(r"mxc://([^/]+)/(.+)", ev["content"]["url"])
        return self.hs.api("GET", f"/_matrix/client/v1/media/download/{m.group(1)}/{m.group(2)}",
                           token=self.alice.token, raw=True)

    def test_1_refused_for_others(self):
        r = self.ask("!admin status", user=self.carol)
        self.assertIn("not allowed", body(r))
        self.assertIn("tlbot admin", body(r))
        r = self.ask(f"!admin export-user {BOB}", user=self.bob)
        self.assertIn("not allowed", body(r))

    def test_2_status_rooms_leave_backup(self):
        r = self.ask("!admin status")
        text = body(r)
        for want in ("version: 0.", "uptime: ", "transport: ", "rooms joined: 3",
                     "outbox: ", "last sync: ", "database: ",
                     # plain test clients read the admin DM: encryption off here
                     "encryption: off (encrypted rooms are not read)"):
            self.assertIn(want, text)
        r = self.ask("!admin rooms")
        self.assertIn(self.room, body(r))
        self.assertIn("Leeds family hubs", body(r))
        self.assertIn("Spare room  join", body(r))
        r = self.ask("!admin leave !nosuch:localhost")
        self.assertIn("I am not in !nosuch:localhost", body(r))
        r = self.ask(f"!admin leave {self.other}")
        self.assertIn(f"Leaving {self.other}", body(r))
        self.alice.wait_membership(self.other, self.bot.user_id, "leave", timeout=15)
        self.assertIn("rooms joined: 2", body(self.ask("!admin status")))
        r = self.ask("!admin backup")
        m = re.search(r"to (\S+\.backup-\d{8}-\d{6}): .*integrity check ok\.", body(r))
        self.assertTrue(m, body(r))
        path = m.group(1)
        self.assertEqual(os.path.dirname(path), os.path.dirname(self.bot.db_path))
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with sqlite3.connect(path) as db:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            self.assertEqual(db.execute(
                "SELECT membership FROM rooms WHERE room_id = ?", (self.room,)).fetchone()[0],
                "join")

    def test_3_export_and_forget(self):
        # what bob leaves behind in a month of work
        self.ask(f"!team add {BOB} --role policy")
        self.ask(f'!challenge new "Hub footfall" --lead {BOB}')
        r = self.ask('!exp new C-1 "Text reminders" "We believe texts will result in fewer '
                     'missed visits. We will know when misses fall below 10%." '
                     f'--owner {BOB}')
        self.assertIn("Recorded E-1", body(r))
        self.ask("!standup schedule 09:30 Europe/London mon-fri")
        r = self.ask("!standup y: read the survey t: call the council b: none", user=self.bob)
        self.assertIn("recorded", body(r))
        r = self.ask('!remind me tomorrow 09:00 "chase the footfall data"', user=self.bob)
        self.assertIn("R-1", body(r))

        # export: a JSON file in alice's DM
        r = self.ask(f"!admin export-user {BOB}")
        self.assertRegex(body(r), r"Export of @bob:localhost: \d+ records, \d+ bytes, sent as "
                                  r"tlbot-export-bob-2026-11-18\.json to you by direct message")
        dm = self.dm
        f = self.alice.wait_for(dm, lambda e: e["content"].get("msgtype") == "m.file",
                                timeout=20)
        self.assertEqual(f["content"]["info"]["mimetype"], "application/json")
        doc = json.loads(self.download(f))
        self.assertEqual(doc["subject"], BOB)
        data = doc["data"]
        self.assertEqual(data["team.membership"][0]["role"], "policy")
        self.assertEqual(data["challenge.challenges"][0]["lead"], BOB)
        self.assertEqual(data["experiment.experiments"][0]["owner"], BOB)
        self.assertIn("call the council", data["standup.answers"][0]["today"])
        self.assertEqual(data["remind.reminders"][0]["text"], "chase the footfall data")
        self.assertTrue(any(BOB in json.dumps(h) for h in data["challenge.history"]))
        self.assertTrue(data["core.room_membership"])
        self.assertEqual(doc["records"], sum(len(v) for v in data.values()))
        # asked in the DM itself, the file comes there too
        r = self.ask(f"!admin export-user {BOB}", room=dm)
        self.assertIn("sent as tlbot-export-bob-2026-11-18.json here", body(r))

        # forget: first what it would do, nothing changed yet
        r = self.ask(f"!admin forget {BOB}")
        text = body(r)
        self.assertIn("Forgetting @bob:localhost would change", text)
        self.assertIn("stand-up answers deleted: 1", text)
        self.assertIn("reminders deleted: 1", text)
        self.assertIn("challenges naming them pseudonymised: 1", text)
        code = re.search(r"confirm ([0-9a-f]{6})", text).group(1)
        with sqlite3.connect(self.bot.db_path) as db:
            self.assertEqual(db.execute("SELECT COUNT(*) FROM standup_answers WHERE user_id = ?",
                                        (BOB,)).fetchone()[0], 1)
        r = self.ask(f"!admin forget {BOB} confirm 000000")
        self.assertIn("no such confirmation", body(r))
        r = self.ask(f"!admin forget {BOB} confirm {code}", user=self.carol)
        self.assertIn("not allowed", body(r))
        r = self.ask(f"!admin forget {BOB} confirm {code}")
        text = body(r)
        self.assertIn('Forgot @bob:localhost', text)
        pseudo = re.search(r'now shown as "(former member \d+)"', text).group(1)
        self.assertIn("reminders deleted: 1", text)
        # the records still read as a whole, with the pseudonym
        r = self.ask("!challenge show C-1")
        self.assertIn(pseudo, body(r))
        self.assertNotIn(BOB, body(r))
        r = self.ask("!team list")
        self.assertIn(pseudo, body(r))
        # and the database holds no trace of the id in the family tables
        with sqlite3.connect(self.bot.db_path) as db:
            for table in ("standup_answers", "reminders", "team_members", "challenges",
                          "challenge_assignees", "history", "experiments",
                          "me_prefs", "user_prefs"):
                rows = db.execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608
                self.assertNotIn(BOB, json.dumps(rows), table)
            self.assertEqual(db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'pending'"
                                        " AND key LIKE 'remind.%'").fetchone()[0], 0)
        # the code is used up, and a second forget finds nothing left
        r = self.ask(f"!admin forget {BOB} confirm {code}")
        self.assertIn("no such confirmation", body(r))
        r = self.ask(f"!admin export-user {BOB}", room=dm)
        self.assertRegex(body(r), r"Export of @bob:localhost: \d+ records")

    def test_4_retention(self):
        self.ask("!standup y: a t: b b: none", user=self.carol)
        self.ask('!remind me at 09:00 "old news"', user=self.carol)
        with sqlite3.connect(self.bot.db_path) as db:
            n_answers = db.execute("SELECT COUNT(*) FROM standup_answers").fetchone()[0]
        self.assertGreaterEqual(n_answers, 1)
        self.bot.stop()
        self.bot.config["retention_days"] = 30
        self.bot.write_config()
        # 60 days on: everything from today is past the 30 days
        self.bot.set_clock(int(time.time()) + 60 * 86400)
        mark = self.bot.log_mark()
        self.bot.start()
        m = self.bot.wait_log(r"retention: deleted (\d+) records older than 30 days \(([^)]*)\)",
                              timeout=20, since=mark)
        self.assertIn("stand-up answers", m.group(2))
        with sqlite3.connect(self.bot.db_path) as db:
            self.assertEqual(db.execute("SELECT COUNT(*) FROM standup_answers").fetchone()[0], 0)
        self.assertTrue(glob.glob(self.bot.db_path + ".backup-*"))


if __name__ == "__main__":
    fixtures.main(verbosity=2)
