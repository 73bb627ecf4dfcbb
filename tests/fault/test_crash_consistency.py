#!/usr/bin/env python3
"""Crash consistency: a scripted conversation of at least 500 commands in
four rooms and five command families (challenges, experiments, stand-up
answers, reminders, pings and lists), while a second thread kills the bot
with SIGKILL at random moments (at least 50 times) and starts it again.
The test clock moves forward as the conversation goes, so reminders and
stand-up prompts and summaries fall due between kills.

Afterwards, with no more kills:
  * every command has exactly one reply (none lost, none doubled);
  * every record exists exactly once with the content asked for, read from
    the bot's SQLite database (read-only) and from `!challenge list` and
    `!exp show` as the room sees them;
  * no scheduled job fired twice: one message per reminder, one stand-up
    prompt and one summary per room and day, no bot message repeated.
Prints: commands, kills, lost, duplicated.

TLBOT_CRASH_COMMANDS / TLBOT_CRASH_KILLS change the size (defaults 520 / 50);
TLBOT_CRASH_SEED the random seed."""

import os
import random
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import (Killer, body, bot_messages, count_replies, db_ro, figures, in_reply_to,  # noqa: E402
                      mx, replies_by_command, unprompted, utc)
import fixtures  # noqa: E402

N_COMMANDS = int(os.environ.get("TLBOT_CRASH_COMMANDS", "520"))
MIN_KILLS = int(os.environ.get("TLBOT_CRASH_KILLS", "50"))
SEED = int(os.environ.get("TLBOT_CRASH_SEED", "20261201"))
ROUND = 26                       # commands sent together, then their replies awaited
START = utc(2026, 12, 1, 7, 0)   # Tuesday 1 December 2026, 07:00 Europe/London (= UTC)
STEP = 8 * 60                    # the test clock moves 8 minutes a round
REGIONS = ["Sheffield", "Leeds", "Essex", "Cardiff"]


class CrashConsistency(unittest.TestCase):
    def test_conversation_under_kill_9(self):
        rng = random.Random(SEED)
        hs = mx.Homeserver()
        self.addCleanup(hs.stop)
        alice, bob, carol = hs.register("alice"), hs.register("bob"), hs.register("carol")
        users = {"alice": alice, "bob": bob, "carol": carol}
        bot = mx.Bot(hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0})
        bot.set_clock(START)
        bot.start()
        self.addCleanup(bot.stop)
        rooms = []
        for i in range(4):
            r = alice.create_room(name=f"Team {REGIONS[i]}",
                                  invite=[bot.user_id, bob.user_id, carol.user_id])
            bob.join(r)
            carol.join(r)
            rooms.append(r)
        for r in rooms:
            alice.wait_membership(r, bot.user_id, "join", timeout=20)

        commands = []   # (room, event_id, text, kind, key)
        expect = {"challenges": {}, "experiments": {}, "notes": {}, "learnings": {},
                  "answers": {}, "reminders": {}}

        def ask_now(user, room, text):
            ev = user.send_text(room, text)
            return user.wait_reply(room, ev, timeout=30)

        # stand-ups in the room, every day, at 09:00; summary at 09:45
        for r in rooms:
            self.assertIn("Stand-up set", body(ask_now(alice, r, "!standup schedule 09:00 Europe/London "
                                                                  "mon,tue,wed,thu,fri,sat,sun")))
            ask_now(alice, r, "!standup mode room")
            ask_now(alice, r, "!team add @alice:localhost @bob:localhost @carol:localhost --role data")

        # mostly short gaps (inside a burst of work), sometimes longer; armed below
        killer = Killer(bot, random.Random(SEED + 1), armed=False)
        killer.start()
        self.addCleanup(killer.stop)
        killer.running.set()
        t0 = time.monotonic()

        known_ch = {r: [] for r in rooms}     # room -> [(C-id, title)] (as the bot answered)
        known_exp = {r: [] for r in rooms}    # room -> [E-id]
        ch_state = {}                         # C-id -> expected status
        exp_state = {}                        # E-id -> expected status
        pending = []                          # commands of this round: (room, ev, kind, key)
        clock = START
        seq = 0

        def send(user, room, text, kind, key=None):
            nonlocal seq
            ev = user.send_text(room, text)
            commands.append((room, ev, text, kind, key))
            pending.append((room, ev, kind, key))
            seq += 1

        def round_commands():
            nonlocal seq
            for _ in range(ROUND):
                room = rng.choice(rooms)
                ri = rooms.index(room)
                roll = rng.random()
                n = seq
                if roll < 0.20 or not known_ch[room]:
                    title = f"Challenge {n} for {REGIONS[ri]} <b>&amp; it's"
                    region = rng.choice(REGIONS)
                    expect["challenges"][title] = {"room": room, "region": region}
                    send(alice, room, f'!challenge new "{title}" --region {region}',
                         "ch_new", title)
                elif roll < 0.30:
                    cid, _ = rng.choice(known_ch[room])
                    st = rng.choice(["active", "paused", "active", "open"])
                    ch_state[cid] = st
                    send(alice, room, f"!challenge status C-{cid} {st}", "ch_status", cid)
                elif roll < 0.42:
                    cid, _ = rng.choice(known_ch[room])
                    title = f"Experiment {n} in {REGIONS[ri]}"
                    expect["experiments"][title] = {"room": room, "challenge": cid}
                    send(alice, room, f'!exp new C-{cid} "{title}" "We believe step {n} will '
                                      f'result in change. We will know when it moves."',
                         "exp_new", title)
                elif roll < 0.48 and known_exp[room]:
                    eid = rng.choice(known_exp[room])
                    if exp_state.get(eid) == "proposed":
                        exp_state[eid] = "running"
                        send(alice, room, f"!exp start E-{eid}", "exp_start", eid)
                    else:
                        send(bob, room, "!ping", "ping")
                elif roll < 0.58 and known_exp[room]:
                    eid = rng.choice(known_exp[room])
                    text = f"note {n} on E-{eid}: footfall up"
                    expect["notes"][text] = eid
                    send(rng.choice([bob, carol]), room, f'!exp note E-{eid} "{text}"', "exp_note", text)
                elif roll < 0.63 and known_exp[room]:
                    eid = rng.choice(known_exp[room])
                    text = f"learning {n}: people answer texts"
                    expect["learnings"][text] = eid
                    send(rng.choice([bob, carol]), room, f'!exp learn E-{eid} "{text}"', "exp_learn",
                         text)
                elif roll < 0.75:
                    who = rng.choice(["alice", "bob", "carol"])
                    send(users[who], room, f"!standup y: task {n} t: plan {n} b: none", "answer", who)
                elif roll < 0.83:
                    due = clock + rng.randrange(10, 120) * 60
                    hhmm = time.strftime("%H:%M", time.gmtime(due))
                    text = f"room reminder {n}"
                    expect["reminders"][text] = {"room": room, "due": due - due % 60, "dm": None}
                    send(rng.choice([alice, bob, carol]), room, f'!remind room at {hhmm} "{text}"',
                         "remind", text)
                elif roll < 0.87:
                    who = rng.choice(["alice", "bob"])
                    mins = rng.randrange(10, 120)
                    text = f"dm reminder {n}"
                    expect["reminders"][text] = {"room": room, "due": None, "dm": users[who].user_id}
                    send(users[who], room, f'!remind me in {mins}m "{text}"', "remind", text)
                elif roll < 0.93:
                    send(rng.choice([alice, bob, carol]), room, "!ping", "ping")
                else:
                    send(rng.choice([bob, carol]), room, "!challenge list", "ch_list")

        def settle(timeout):
            """Wait for a reply to every pending command; learn the ids."""
            deadline = time.monotonic() + timeout
            while True:
                lost, _ = count_replies(hs, None, bot.user_id, [(r, e) for r, e, _, _ in pending])
                if not lost:
                    break
                if time.monotonic() > deadline:
                    self.fail(f"{len(lost)} commands of a round unanswered after {timeout}s: "
                              f"{[c[2] for c in commands if (c[0], c[1]) in set(lost)][:5]}\n"
                              f"log tail:\n{bot.log()[-3000:]}")
                time.sleep(0.25)
            replies = {r: replies_by_command(hs, r, bot.user_id) for r in rooms}
            for room, ev, kind, key in pending:
                b = body(replies[room][ev][0])
                if kind == "ch_new":
                    m = re.match(r"Created C-(\d+): ", b)
                    self.assertTrue(m, f"challenge new: {b!r}")
                    cid = int(m.group(1))
                    known_ch[room].append((cid, key))
                    expect["challenges"][key]["id"] = cid
                    ch_state[cid] = "open"
                elif kind == "exp_new":
                    m = re.match(r"Recorded E-(\d+) ", b)
                    self.assertTrue(m, f"exp new: {b!r}")
                    eid = int(m.group(1))
                    known_exp[room].append(eid)
                    expect["experiments"][key]["id"] = eid
                    exp_state[eid] = "proposed"
                elif kind == "remind":
                    m = re.match(r"R-(\d+): I will remind", b)
                    self.assertTrue(m, f"remind: {b!r}")
                    expect["reminders"][key]["id"] = int(m.group(1))
                elif kind == "answer":
                    self.assertIn("stand-up answer is recorded", b)
                    expect["answers"][ev] = {"room": room, "user": users[key].user_id}
                elif kind == "ch_status":
                    self.assertIn(f"C-{key}", b)
                    self.assertNotIn("cannot", b)
                elif kind == "exp_start":
                    self.assertIn("is running", b)
                elif kind == "exp_note":
                    self.assertIn("Noted on", b)
                elif kind == "exp_learn":
                    self.assertIn(f"E-{expect['learnings'][key]}", b)
                elif kind == "ping":
                    self.assertTrue(b.startswith("pong"), b)
            pending.clear()

        while len(commands) < N_COMMANDS:
            round_commands()
            settle(120)
            clock += STEP
            bot.set_clock(clock)
        # keep killing while the last jobs fall due, until enough kills
        end_clock = START + 9 * 3600
        while clock < end_clock or killer.kills < MIN_KILLS:
            clock = min(clock + STEP, end_clock)
            bot.set_clock(clock)
            time.sleep(0.5)
            if time.monotonic() - t0 > 200 and killer.kills >= MIN_KILLS:
                break
        killer.stop()
        kills = killer.kills
        elapsed = time.monotonic() - t0
        bot.set_clock(end_clock)
        bot.wait_idle(timeout=60)
        time.sleep(2.5)             # jobs of the last ticks, their sends
        bot.wait_idle(timeout=60)

        # ---- every command answered exactly once ----
        cmds = [(r, e) for r, e, _, _, _ in commands]
        lost, dup = count_replies(hs, None, bot.user_id, cmds)

        # ---- no job fired twice: no unprompted bot message repeated ----
        job_dups = []
        prompts, summaries = {}, {}
        for r in rooms:
            seen = {}
            for e in unprompted(hs, r, bot.user_id):
                seen[body(e)] = seen.get(body(e), 0) + 1
                if "Stand-up summary" in body(e):
                    summaries[r] = summaries.get(r, 0) + 1
                elif "Yesterday?" in body(e):
                    prompts[r] = prompts.get(r, 0) + 1
            job_dups += [(r, b[:80], n) for b, n in seen.items() if n > 1]
        dm_rooms = {}
        for u in (alice, bob):
            dm_rooms[u.user_id] = u.dm_rooms().get(bot.user_id, [])

        # ---- records, from the database (read-only) ----
        db = db_ro(bot.db_path)
        rec_lost, rec_dup, rec_wrong = [], [], []

        def check_count(what, n, key):
            if n == 0:
                rec_lost.append((what, key))
            elif n > 1:
                rec_dup.append((what, key, n))

        for title, want in expect["challenges"].items():
            rows = db.execute("SELECT id, room_id, region, status FROM challenges WHERE title = ?",
                              (title,)).fetchall()
            check_count("challenge", len(rows), title)
            if len(rows) == 1:
                cid, room, region, status = rows[0]
                if (cid, room, region, status) != (want["id"], want["room"], want["region"],
                                                   ch_state[want["id"]]):
                    rec_wrong.append(("challenge", title, rows[0], want, ch_state[want["id"]]))
        n_ch = db.execute("SELECT count(*) FROM challenges").fetchone()[0]
        if n_ch != len(expect["challenges"]):
            rec_dup.append(("challenges in all", n_ch, len(expect["challenges"])))
        for title, want in expect["experiments"].items():
            rows = db.execute("SELECT id, room_id, challenge_id, status FROM experiments WHERE title = ?",
                              (title,)).fetchall()
            check_count("experiment", len(rows), title)
            if len(rows) == 1 and rows[0] != (want["id"], want["room"], want["challenge"],
                                              exp_state[want["id"]]):
                rec_wrong.append(("experiment", title, rows[0], want, exp_state[want["id"]]))
        n_exp = db.execute("SELECT count(*) FROM experiments").fetchone()[0]
        if n_exp != len(expect["experiments"]):
            rec_dup.append(("experiments in all", n_exp, len(expect["experiments"])))
        for table, what in (("experiment_notes", "notes"), ("experiment_learnings", "learnings")):
            for text, eid in expect[what].items():
                rows = db.execute(f"SELECT experiment_id FROM {table} WHERE text = ?",  # noqa: S608
                                  (text,)).fetchall()
                check_count(what, len(rows), text)
                if len(rows) == 1 and rows[0][0] != eid:
                    rec_wrong.append((what, text, rows[0][0], eid))
        for ev, want in expect["answers"].items():
            rows = db.execute("SELECT room_id, user_id FROM standup_answers WHERE event_id = ?",
                              (ev,)).fetchall()
            check_count("stand-up answer", len(rows), ev)
            if len(rows) == 1 and rows[0] != (want["room"], want["user"]):
                rec_wrong.append(("answer", ev, rows[0], want))
        rem_msgs_lost, rem_msgs_dup = [], []
        dm_events = [e for rs in dm_rooms.values() for r in rs for e in bot_messages(hs, r, bot.user_id)]
        room_events = {r: unprompted(hs, r, bot.user_id) for r in rooms}
        for text, want in expect["reminders"].items():
            rows = db.execute("SELECT id, delivered, missed FROM reminders WHERE text = ?",
                              (text,)).fetchall()
            check_count("reminder", len(rows), text)
            if len(rows) == 1 and (rows[0][0] != want["id"] or rows[0][1:] != (1, 0)):
                rec_wrong.append(("reminder", text, rows[0], want))
            pool = dm_events if want["dm"] else room_events[want["room"]]
            n = sum(1 for e in pool if f"{text} (R-{want['id']})" in body(e))
            if n == 0:
                rem_msgs_lost.append(text)
            elif n > 1:
                rem_msgs_dup.append((text, n))
        job_counts = dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()

        # ---- the same records as the room sees them ----
        listed_dup, listed_lost = [], []
        for r in rooms:
            titles = [t for t, w in expect["challenges"].items() if w["room"] == r]
            text, page = "", 1
            while True:
                b = body(ask_now(bob, r, f"!challenge list --status all --page {page}"))
                text += b + "\n"
                m = re.search(r"page (\d+) of (\d+)", b)
                if not m or int(m.group(1)) >= int(m.group(2)):
                    break
                page += 1
            for t in titles:
                cid = expect["challenges"][t]["id"]
                n = len(re.findall(rf"^• C-{cid} ", text, re.M))
                if n == 0:
                    listed_lost.append(t)
                elif n > 1:
                    listed_dup.append(t)
        shown_bad = []
        for title, want in expect["experiments"].items():
            eid = want["id"]
            b = body(ask_now(alice, want["room"], f"!exp show E-{eid}"))
            if not b.startswith(f"E-{eid} {title}"):
                shown_bad.append((eid, b[:80]))
                continue
            notes = b.split("\nHistory:")[0]     # the notes section, not the history
            for text, e2 in expect["notes"].items():
                if e2 == eid and notes.count(text) != 1:
                    shown_bad.append((eid, text, notes.count(text)))

        figures("crash consistency", commands=len(commands), kills=kills, lost=len(lost),
                duplicated=len(dup), records_lost=len(rec_lost), records_duplicated=len(rec_dup),
                records_wrong=len(rec_wrong), jobs=job_counts, reminders=len(expect["reminders"]),
                reminder_messages_lost=len(rem_msgs_lost), reminder_messages_doubled=len(rem_msgs_dup),
                job_messages_repeated=len(job_dups), standup_prompts=prompts,
                standup_summaries=summaries, dm_rooms={k: len(v) for k, v in dm_rooms.items()},
                seconds=round(elapsed))
        self.assertGreaterEqual(len(commands), N_COMMANDS)
        self.assertGreaterEqual(kills, MIN_KILLS)
        self.assertEqual(lost, [], "commands without a reply")
        self.assertEqual(dup, [], "commands answered more than once")
        self.assertEqual(integrity, "ok")
        self.assertEqual(rec_lost, [], "records missing")
        self.assertEqual(rec_dup, [], "records doubled")
        self.assertEqual(rec_wrong, [], "records with the wrong content")
        self.assertEqual(rem_msgs_lost, [], "reminders never delivered")
        self.assertEqual(rem_msgs_dup, [], "reminders delivered twice")
        self.assertEqual(job_dups, [], "a job's message posted twice")
        for r in rooms:
            self.assertEqual(summaries.get(r, 0), 1, f"stand-up summaries in {r}")
            self.assertLessEqual(prompts.get(r, 0), 1, f"stand-up prompts in {r}")
        for u, rs in dm_rooms.items():
            self.assertLessEqual(len(rs), 1, f"DM rooms the bot opened with {u}: {rs}")
        self.assertEqual(listed_lost, [], "challenges missing from !challenge list")
        self.assertEqual(listed_dup, [], "challenges listed twice")
        self.assertEqual(shown_bad, [], "!exp show disagrees")


if __name__ == "__main__":
    fixtures.main(verbosity=2)
