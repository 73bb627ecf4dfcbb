#!/usr/bin/env python3
"""!experiment (!exp) as people in the room see it, through the real binary
and the local homeserver: the lifecycle from hypothesis to learning
(m.notice replies to each command, E-n linked with its title on hover),
refusals that change nothing, the history after edits, the export as a
file uploaded to the media repository (downloaded and parsed back, CSV and
JSON agree with each other and with what was typed), and, on the bot's
test clock, the overdue reminder (room mention and DM) and the weekly room
and cross-team learning digests.  Runs standalone (python3
test_experiment.py) or under CTest."""

import csv
import datetime
import io
import json
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks, ask, body, html  # noqa: E402


def utc(y, mo, d, h=0, mi=0, s=0):
    return int(datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc).timestamp())


# Wed 2026-11-18 11:00 UTC (Europe/London is UTC in winter).
T0 = utc(2026, 11, 18, 11, 0)


class Experiment(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.alice = cls.hs.register("alice")     # room creator: power 100
        cls.bob = cls.hs.register("bob")         # power 0
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0})
        cls.room = cls.alice.create_room(name="Sheffield TA", invite=[cls.bot.user_id,
                                                                      cls.bob.user_id])
        cls.bob.join(cls.room)
        cls.digest = cls.alice.create_room(name="Cross-team learning", invite=[cls.bot.user_id])
        cls.bot.config["digest_room"] = cls.digest
        cls.bot.write_config()
        cls.bot.set_clock(T0)
        cls.bot.start()
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)
        cls.alice.wait_membership(cls.digest, cls.bot.user_id, "join", timeout=15)
        cls.bot.wait_idle(timeout=15)
        r = ask(cls.alice, cls.room, '!challenge new "Temporary accommodation costs"')
        assert "C-1" in body(r), body(r)

    @classmethod
    def tearDownClass(cls):
        cls.bot.stop()
        cls.hs.stop()

    def new(self, title, extra="", user=None):
        r = self.ask(f'!exp new C-1 "{title}" "We believe {title.lower()} will result in fewer'
                     f' missed visits. We will know when misses fall below 10%." {extra}', user)
        self.assertIn("Recorded E-", body(r))
        return int(body(r).split("Recorded E-", 1)[1].split()[0])

    # -- the lifecycle ------------------------------------------------------------

    def test_1_lifecycle(self):
        n = self.new("Text reminders", '--metric "missed visits" --baseline 18 --target 10'
                     ' --unit % --until 2026-11-30')
        r = self.ask(f"!exp start E-{n}")
        self.assertIn("is running since 2026-11-18 until 2026-11-30", body(r))
        r = self.ask(f'!exp note E-{n} "Week one: 40 texts sent,\nreplies in Polish too 👍"',
                     self.bob)
        self.assertEqual(body(r), f"Noted on E-{n}.")
        r = self.ask(f'!exp result E-{n} --value 9 "Missed visits fell to 9%"')
        self.assertIn(f"E-{n} concluded: 9 % (baseline 18, target 10)", body(r))
        r = self.ask(f'!exp decide E-{n} scale "worked in both areas"')
        self.assertIn("decision: scale", body(r))
        r = self.ask(f'!exp learn E-{n} "People answer texts, not letters"', self.bob)
        self.assertIn("Learning recorded", body(r))
        r = self.ask(f"!exp show E-{n}", self.bob)
        b = body(r)
        self.assertEqual(r["content"]["msgtype"], "m.notice")
        self.assertIn("[concluded]", b)
        self.assertIn("We believe text reminders will result in fewer missed visits. We will"
                      " know when misses fall below 10%.", b)
        self.assertIn("Decision: scale — worked in both areas", b)
        self.assertIn("People answer texts, not letters", b)
        self.assertIn("Week one: 40 texts sent,\nreplies in Polish too 👍", b)
        self.assertIn("replies in Polish too 👍", html(r))
        self.assertIn("sent,<br/>replies", html(r))
        # the E-n label links to the message that created it, title on hover
        self.assertIn(f'title="Text reminders">E-{n}</a>', html(r))
        self.assertIn('title="Temporary accommodation costs">C-1</a>', html(r))
        self.assertEqual(r["content"]["m.mentions"], {"user_ids": []})
        r = self.ask("!experiment list")       # the full name works too
        self.assertIn(f"E-{n} [concluded] Text reminders", body(r))

    def test_2_refusals_change_nothing(self):
        n = self.new("Hub leaflets")
        before = body(self.ask(f"!exp history E-{n}"))
        for cmd, want in (
                (f'!exp decide E-{n} stop "too early"', f"E-{n} has no result yet: record it first"),
                (f'!exp result E-{n} --value 3 "x"', f"E-{n} is proposed, not running"),
                (f'!exp edit E-{n} --baseline 12abc', "bad number '12abc' for --baseline"),
                (f'!exp edit E-{n} --until 2026-02-30', "bad date '2026-02-30' for --until"),
                ('!exp new C-9 "x" "We believe a will result in b. We will know when c."',
                 "no challenge C-9 here"),
                ('!exp show E-999', "no experiment E-999 here")):
            r = self.ask(cmd)
            self.assertIn(want, body(r))
            self.assertNotIn("\n", body(r))
        r = self.ask(f"!exp start E-{n}", self.bob)
        self.assertIn("not allowed", body(r))
        self.assertEqual(body(self.ask(f"!exp history E-{n}")), before)
        r = self.ask(f"!exp show E-{n}")
        self.assertIn("[proposed]", body(r))

    def test_3_history_after_edits(self):
        n = self.new("Evening hours", '--metric visits --target 30')
        r = self.ask(f'!exp edit E-{n} --target 45 --title "Evening opening" --owner @bob:localhost')
        self.assertIn("updated (3 changes)", body(r))
        r = self.ask(f"!exp show E-{n}")
        b = body(r)
        self.assertIn("@alice:localhost edited target: 30 → 45", b)
        self.assertIn("edited title: Evening hours → Evening opening", b)
        self.assertIn("edited owner: @alice:localhost → @bob:localhost", b)
        # the new owner may now change it
        r = self.ask(f"!exp start E-{n}", self.bob)
        self.assertIn("is running", body(r))

    # -- export ----------------------------------------------------------------------

    def download(self, ev):
        self.assertEqual(ev["content"]["msgtype"], "m.file")
        return mx.download(self.alice, ev["content"]["url"])

    def export_file(self, fmt):
        mark = self.alice.events(self.room)[-1]["event_id"]
        r = self.ask(f"!exp export --format {fmt}", self.bob)
        self.assertIn("Exported", body(r))
        ev = self.alice.wait_for(self.room, lambda e: e.get("sender") == self.bot.user_id and
                                 e["content"].get("msgtype") == "m.file", timeout=20, after=mark)
        self.assertTrue(ev["content"]["filename"].endswith("." + fmt))
        return ev, self.download(ev)

    def test_4_export_file_round_trip(self):
        # enough long, awkward text that the export is a file, not a message
        titles = []
        for i in range(8):
            t = f'Trial {i}: "quotes", commas, café — 日本語 =SUM(A1) {"x" * 100}'
            titles.append(t)
            n = self.new(t.replace('"', '\\"'), f'--metric "cost, net" --baseline {i}.5')
            self.ask(f'!exp learn E-{n} "learning {i}, with a comma"')
        ev, raw = self.export_file("csv")
        self.assertTrue(ev["content"]["info"]["mimetype"].startswith("text/csv"))
        self.assertEqual(ev["content"]["info"]["size"], len(raw))
        self.assertTrue(raw.startswith(b"\xef\xbb\xbf"))       # UTF-8 BOM for spreadsheets
        self.assertIn(b"\r\n", raw)
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        by_title = {}
        for row in rows:
            title = row["title"][1:] if row["title"].startswith("'") else row["title"]
            by_title[title] = row
        for i, t in enumerate(titles):
            self.assertIn(t, by_title)
            row = by_title[t]
            self.assertEqual(row["metric"], "cost, net")
            self.assertEqual(float(row["baseline"]), i + 0.5)
            self.assertEqual(row["learnings"], f"learning {i}, with a comma")
            self.assertEqual(row["status"], "proposed")
            self.assertEqual(row["owner"], "@alice:localhost")
        _, raw = self.export_file("json")
        data = json.loads(raw.decode("utf-8"))
        self.assertEqual(data["count"], len(rows))
        self.assertEqual(data["room_id"], self.room)
        # the JSON export against what was typed (not only against the CSV,
        # which the same bot wrote)
        by_json = {o["title"]: o for o in data["experiments"]}
        for i, t in enumerate(titles):
            o = by_json[t]
            self.assertEqual((o["metric"], o["baseline"], o["learnings"], o["status"], o["owner"]),
                             ("cost, net", i + 0.5, [f"learning {i}, with a comma"], "proposed",
                              "@alice:localhost"), t)
        for obj, row in zip(data["experiments"], rows):
            for k, v in row.items():
                j = obj[k]
                if k == "learnings":
                    j = "\n".join(j)
                if k == "notes":        # issue 13 item 13: the notes are a CSV column too
                    j = "\n".join(x["text"] for x in j)
                if isinstance(j, float):
                    self.assertEqual(j, float(v), k)
                    continue
                j = "" if j is None else str(j)
                if v.startswith("'") and v[1:] == j:
                    v = v[1:]           # the CSV's formula guard
                self.assertEqual(j, v, k)

    # -- issue 13: what people see ------------------------------------------------------

    def test_6_words_targets_owner_dm_and_csv_file(self):
        n = self.new("Walk-in hours", '--metric visits --target 30 --owner @bob:localhost')
        # the new owner is told by DM (item 16): the bot's outbox holds a
        # message to bob's DM room (encrypted there, so its words are
        # checked in tests/unit/test_experiment.c)
        with sqlite3.connect(self.bot.db_path) as db:
            dms = db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'send' AND user_id = ?"
                             " AND event_type IN ('m.room.message', 'm.room.encrypted')",
                             ("@bob:localhost",)).fetchone()[0]
        self.assertGreaterEqual(dms, 1)
        self.ask(f"!exp start E-{n}", self.bob)
        r = self.ask(f'!exp result E-{n} --value 28 "fewer than hoped"', self.bob)
        self.assertIn("target missed", body(r))                # item 16
        r = self.ask(f"!exp history E-{n}")
        b = body(r)
        # item 11: words, never column names
        self.assertIn("started on ", b)
        self.assertIn("result: 28 (target 30: missed) — fewer than hoped", b)
        for col in ("status:", "start_date", "result_value", "(none) →"):
            self.assertNotIn(col, b)
        # item 13: a CSV is an uploaded file even when small, with the notes
        self.ask(f'!exp note E-{n} "asked at the desk"', self.bob)
        ev, raw = self.export_file("csv")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        row = [x for x in rows if x["id"] == f"E-{n}"][0]
        self.assertEqual(row["notes"], "asked at the desk")
        # the Markdown export's plain body has no backslash escapes
        r = self.ask("!exp export --status concluded --challenge C-1")
        if "Exported" not in body(r):
            self.assertNotIn("\\", body(r))

    # -- the test clock ----------------------------------------------------------------

    def test_5_reminder_and_digests(self):
        n = self.new("Phone triage", "--until 2026-11-19")
        self.ask(f"!exp start E-{n}")
        # a control that keeps being reminded after E-n has its result: its
        # reminder proves the bot ran the reminders of that morning
        ctl = self.new("Control trial", "--until 2026-11-26")
        self.ask(f"!exp start E-{ctl}")
        self.ask(f'!exp learn E-{n} "triage calls are short"', self.bob)
        mark = self.alice.events(self.room)[-1]["event_id"]
        # the morning after the end date: a room mention and a DM
        self.bot.set_clock(utc(2026, 11, 20, 9, 0, 5))
        ev = self.alice.wait_for(self.room, lambda e: e.get("sender") == self.bot.user_id and
                                 "⏰" in body(e), timeout=20, after=mark)
        self.assertIn(f"⏰ @alice:localhost: E-{n} “Phone triage” ended on 2026-11-19 and has no"
                      " result yet.", body(ev))
        self.assertEqual(ev["content"]["m.mentions"], {"user_ids": ["@alice:localhost"]})
        self.assertIn("matrix.to/#/@alice:localhost", html(ev))
        dm = self.alice.wait_for_invite(timeout=20, inviter=self.bot.user_id)
        self.alice.join(dm)
        ev = self.alice.wait_for(dm, lambda e: e.get("sender") == self.bot.user_id and
                                 "Phone triage" in body(e), timeout=20)
        self.assertIn("ended on 2026-11-19", body(ev))
        # Friday 16:00: the room's digest and the cross-team digest
        mark = self.alice.events(self.room)[-1]["event_id"]
        self.bot.set_clock(utc(2026, 11, 20, 16, 0, 5))
        ev = self.alice.wait_for(self.room, lambda e: e.get("sender") == self.bot.user_id and
                                 "Weekly learning digest" in body(e), timeout=20, after=mark)
        b = body(ev)
        self.assertIn("Weekly learning digest — 2026-11-13 to 2026-11-20", b)
        self.assertIn("Concluded\n• E-1 “Text reminders” (C-1) — result 9 % — decision: scale"
                      " (worked in both areas) — learned: People answer texts, not letters", b)
        self.assertIn(f"Overdue (ended without a result)\n• E-{n} “Phone triage” (C-1) —"
                      " running, ended 2026-11-19", b)
        self.assertIn("Started", b)
        ev = self.alice.wait_for(self.digest, lambda e: e.get("sender") == self.bot.user_id and
                                 "Cross-team learning digest" in body(e), timeout=20)
        self.assertIn("People answer texts, not letters", body(ev))
        self.assertIn(f"E-{n} “Phone triage” (C-1) — learned: triage calls are short", body(ev))
        # a second week's reminder, then a result stops them
        mark = self.alice.events(self.room)[-1]["event_id"]
        self.bot.set_clock(utc(2026, 11, 27, 9, 0, 5))
        self.alice.wait_for(self.room, lambda e: e.get("sender") == self.bot.user_id and
                            f"E-{n} “Phone triage” ended" in body(e), timeout=20, after=mark)
        r = self.ask(f'!exp result E-{n} "calls were shorter"')
        self.assertIn("concluded", body(r))
        # a week on: the control is reminded again, E-n no more
        mark = self.alice.events(self.room)[-1]["event_id"]
        self.bot.set_clock(utc(2026, 12, 4, 9, 0, 5))
        self.alice.wait_for(self.room, lambda e: e.get("sender") == self.bot.user_id and
                            f"E-{ctl} “Control trial” ended" in body(e), timeout=20, after=mark)
        self.bot.wait_idle()
        later = self.alice.events(self.room)
        later = later[[e["event_id"] for e in later].index(mark) + 1:]
        self.assertEqual([body(e) for e in later if e.get("sender") == self.bot.user_id and
                          f"E-{n} “Phone triage” ended" in body(e)], [])


if __name__ == "__main__":
    fixtures.main(verbosity=2)
