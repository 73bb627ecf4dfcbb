#!/usr/bin/env python3
"""Many rooms and many sends in flight at kill -9.

The homeserver is slow (its load model: 30 ms a send, 3 workers), so the
bot's concurrent sends (send_concurrency 8, send_per_room 3) are in flight,
queued at the homeserver, when it is killed with SIGKILL, again and again.
Meanwhile 16 rooms get !ping commands, and each room gets three causes'
worth of ordered messages (outbox rows as a job writes them: txnId
tlbot.j.<job>.<n>, five per cause, committed in one transaction) so that
order within a cause can be checked.

Afterwards, with no more kills:
  * every command has exactly one reply (none lost, none doubled);
  * every ordered message exists exactly once, and each cause's messages
    are in their order in the room.
Prints: commands, messages, kills, lost, duplicated."""

import json
import os
import random
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import body, bot_messages, count_replies, figures, mx  # noqa: E402
import fixtures  # noqa: E402

ROOMS = 16
CAUSES = 3          # per room
PER_CAUSE = 5
ROUNDS = 6          # a kill in each
PINGS = 16          # per round
SEED = int(os.environ.get("TLBOT_INFLIGHT_SEED", "20261201"))


class InFlight(unittest.TestCase):
    def test_kill_9_with_sends_in_flight(self):
        rng = random.Random(SEED)
        hs = mx.Homeserver()
        self.addCleanup(hs.stop)
        alice = hs.register("alice")
        bot = mx.Bot(hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0,
                                                   "send_concurrency": 8, "send_per_room": 3})
        bot.start()
        self.addCleanup(bot.stop)
        rooms = [alice.create_room(name=f"inflight {i}", invite=[bot.user_id])
                 for i in range(ROOMS)]
        for r in rooms:
            alice.wait_membership(r, bot.user_id, "join", timeout=30)
        hs.api("POST", "/_test/load", {"send_ms": 30, "sync_ms": 2, "workers": 3})
        self.addCleanup(hs.api, "POST", "/_test/load", {"send_ms": 0, "sync_ms": 0})

        commands, ordered, kills, job = [], [], 0, 900000
        for rnd in range(ROUNDS):
            # ordered messages: CAUSES causes per room, PER_CAUSE each
            db = sqlite3.connect(bot.db_path, timeout=30)
            with db:
                for ri, r in enumerate(rooms):
                    for c in range(CAUSES):
                        job += 1
                        for n in range(PER_CAUSE):
                            text = f"ordered r{rnd} j{job} n{n}"
                            content = json.dumps({"msgtype": "m.notice", "body": text})
                            db.execute("INSERT INTO outbox(txn_id, kind, room_id, event_type,"
                                       " content) VALUES (?, 'send', ?, 'm.room.message', ?)",
                                       (f"tlbot.j.{job}.{n}", r, content))
                            ordered.append((r, job, n, text))
            db.close()
            for _ in range(PINGS):
                r = rng.choice(rooms)
                commands.append((r, alice.send_text(r, "!ping")))
            # kill while sends are queued at the homeserver
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                info = hs.api("GET", "/_test/load")
                if info["busy"] >= 3 and info["queued"] >= 1:
                    break
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.1))
            bot.kill()
            kills += 1
            time.sleep(rng.uniform(0, 0.3))
            bot.start()

        # all delivered, nothing twice
        total = len(ordered)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            sent = sum(1 for r in rooms for e in bot_messages(hs, r, bot.user_id)
                       if body(e).startswith("ordered "))
            lost, _ = count_replies(hs, rooms, bot.user_id, commands)
            if sent >= total and not lost:
                break
            time.sleep(0.5)
        lost, dup = count_replies(hs, rooms, bot.user_id, commands)
        seen, order_errors = {}, []
        for r in rooms:
            last = {}
            for e in bot_messages(hs, r, bot.user_id):
                b = body(e)
                if not b.startswith("ordered "):
                    continue
                seen[b] = seen.get(b, 0) + 1
                _, _, j, n = b.split()
                j, n = int(j[1:]), int(n[1:])
                if last.get(j, -1) >= n:
                    order_errors.append(b)
                last[j] = max(last.get(j, -1), n)
        missing = [t for _, _, _, t in ordered if seen.get(t, 0) == 0]
        doubled = [t for t, k in seen.items() if k > 1]
        figures("inflight", commands=len(commands), messages=total, kills=kills,
                lost=len(lost) + len(missing), duplicated=len(dup) + len(doubled))
        self.assertEqual((lost, dup), ([], []), "replies lost or doubled")
        self.assertEqual(missing, [], "ordered messages lost")
        self.assertEqual(doubled, [], "ordered messages doubled")
        self.assertEqual(order_errors, [], "a cause's messages out of order")


if __name__ == "__main__":
    fixtures.main(verbosity=1)
