#!/usr/bin/python3
"""Crash consistency in an encrypted room: 100 Megolm-encrypted commands
(pings and challenge records) from a real E2EE client (tests/lib/e2ee.py,
matrix-nio), while a second thread kills the bot with SIGKILL at random
moments and starts it again.  Olm and Megolm sessions, to-device messages
and the outbox must survive every kill together.

Afterwards, with no more kills:
  * every command has exactly one reply (none lost, none doubled);
  * every message the bot sent in the room is an m.room.encrypted event the
    member decrypts (no reply left that members cannot read); a member who
    joins mid-run reads every later one, a member who leaves mid-run none;
  * every challenge exists once (`!challenge list`, decrypted).
Prints: commands, kills, lost, duplicated, undecryptable, leaked, unreadable.

TLBOT_E2EE_CRASH_COMMANDS / TLBOT_E2EE_CRASH_SEED change the size / seed."""

import os
import random
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import Killer, figures, mx  # noqa: E402
import fixtures  # noqa: E402
import e2ee  # noqa: E402

N_COMMANDS = int(os.environ.get("TLBOT_E2EE_CRASH_COMMANDS", "100"))
SEED = int(os.environ.get("TLBOT_E2EE_CRASH_SEED", "20261201"))
ROUND = 10                       # commands sent together, then their replies awaited
MIN_KILLS = 10


class E2EECrash(unittest.TestCase):
    def test_encrypted_commands_under_kill_9(self):
        rng = random.Random(SEED)
        hs = mx.Homeserver()
        self.addCleanup(hs.stop)
        bot = mx.Bot(hs, mx.tmpdir(), encryption=True, config_extra={"rate_limit_per_min": 0})
        bot.start()
        self.addCleanup(bot.stop)
        alice = e2ee.Peer(hs, "alice")
        self.addCleanup(alice.close)
        room = alice.create_room(name="Encrypted crash team", invite=[bot.user_id])
        alice.wait_joined(room, bot.user_id, timeout=30)
        bot.wait_idle(timeout=30)
        # carol is in the room and leaves mid-run (the bot rotates under the
        # kills); bob joins mid-run (the bot shares with his device under them)
        carol = e2ee.Peer(hs, "carol")
        self.addCleanup(carol.close)
        bob = e2ee.Peer(hs, "bob")
        self.addCleanup(bob.close)
        alice.invite(room, carol.user_id)
        carol.step(0)
        carol.join(room)
        alice.wait_joined(room, carol.user_id)
        first = alice.send_text(room, "!ping")
        alice.wait_reply(room, first, sender=bot.user_id, timeout=30)
        carol.wait_reply(room, first, sender=bot.user_id, timeout=30)
        rounds = 0

        killer = Killer(bot, random.Random(SEED + 1), short=(0.1, 0.8), long=(0.8, 2),
                        down=(0.05, 0.4))
        killer.start()
        self.addCleanup(killer.stop)
        cmds = []                   # (event id, kind, title)
        titles = []
        t0 = time.monotonic()
        while len(cmds) < N_COMMANDS:
            batch = []
            kills0 = killer.kills
            for _ in range(min(ROUND, N_COMMANDS - len(cmds))):
                time.sleep(rng.uniform(0, 0.15))    # spread over time: kills land mid-round
                if rng.random() < 0.4:
                    title = f"Crash record {len(titles) + 1}"
                    titles.append(title)
                    batch.append((alice.send_text(room, f'!challenge new "{title}"'), "ch", title))
                else:
                    batch.append((alice.send_text(room, "!ping"), "ping", None))
                if rng.random() < 0.3:
                    alice.rotate(room)          # sometimes a new session of ours, too
            cmds += batch
            want = {e for e, _, _ in batch}
            deadline = time.monotonic() + 90
            while want and time.monotonic() < deadline:
                alice.step(300)
                for r in alice.events(room):
                    if r["sender"] == bot.user_id:
                        want.discard(alice.reply_target(r))
                        if r["encrypted"] and not r["decrypted"]:
                            want.discard(alice._raw_reply_target(room, r))
            # every round spans at least one kill
            deadline = time.monotonic() + 5
            while killer.kills == kills0 and time.monotonic() < deadline:
                alice.step(100)
            # membership changes between rounds, once this round is answered
            # (a reply the bot encrypted before it saw a leave is not a leak)
            rounds += 1
            if rounds == 4:
                carol.leave(room)
            if rounds == 6:
                alice.invite(room, bob.user_id)
                bob.step(0)
                bob.join(room)
        killer.stop()
        elapsed = time.monotonic() - t0

        # quiet now: let the bot finish, then judge from the homeserver's record
        bot.wait_idle(timeout=60)
        time.sleep(2)
        bot.wait_idle(timeout=60)
        raw = [e for e in hs.all_events(room) if e.get("sender") == bot.user_id and
               e.get("type") in ("m.room.message", "m.room.encrypted")]
        plain = [e for e in raw if e["type"] != "m.room.encrypted"]
        alice.step(0)
        decrypted, undecryptable = {}, []
        for e in raw:
            if e["type"] != "m.room.encrypted":
                continue
            d = alice.decrypt_raw(e)
            if d is None:
                undecryptable.append(e["event_id"])
            else:
                decrypted[e["event_id"]] = (e, d)
        # after carol left, nothing the bot sent is readable by her device; after
        # bob joined, everything is readable by his
        def pos_of(membership_user, membership):
            evs = hs.all_events(room)
            for i, e in enumerate(evs):
                if e.get("type") == "m.room.member" and e.get("state_key") == membership_user \
                        and e["content"].get("membership") == membership:
                    return i, evs
            raise AssertionError(f"no {membership} of {membership_user}")
        i_left, evs = pos_of(carol.user_id, "leave")
        i_joined, _ = pos_of(bob.user_id, "join")
        after = lambda i: [e for e in evs[i + 1:] if e.get("sender") == bot.user_id  # noqa: E731
                           and e.get("type") == "m.room.encrypted"]
        carol.step(0)
        bob.step(0)
        leaked = []
        for e in after(i_left):
            d = carol.decrypt_raw(e)
            if d is not None:       # which session, answering what (for the failure message)
                rel = (e.get("content") or {}).get("m.relates_to") or {}
                leaked.append((e["event_id"], d["session_id"],
                               (rel.get("m.in_reply_to") or {}).get("event_id"),
                               (d["content"].get("body") or "")[:40]))
        unreadable_bob = [e["event_id"] for e in after(i_joined) if bob.decrypt_raw(e) is None]
        per_cmd = {}
        for eid, (e, d) in decrypted.items():
            rel = (e.get("content") or {}).get("m.relates_to") or d["content"].get("m.relates_to") or {}
            target = (rel.get("m.in_reply_to") or {}).get("event_id")
            if target:
                per_cmd.setdefault(target, []).append(eid)
        lost = [c for c, _, _ in cmds if not per_cmd.get(c)]
        dup = [c for c, _, _ in cmds if len(per_cmd.get(c, [])) > 1]
        figures("e2ee crash", commands=len(cmds), kills=killer.kills, lost=len(lost),
                duplicated=len(dup), undecryptable=len(undecryptable),
                leaked_to_leaver=len(leaked), unreadable_for_joiner=len(unreadable_bob),
                seconds=round(elapsed, 1))
        self.assertGreaterEqual(killer.kills, MIN_KILLS)
        self.assertEqual(plain, [], "the bot sent unencrypted messages to an encrypted room")
        self.assertEqual(undecryptable, [], "replies the member cannot decrypt")
        self.assertEqual(lost, [], "commands never answered")
        self.assertEqual(dup, [], "commands answered twice")
        self.assertEqual(leaked, [], "replies readable by a member who had left")
        self.assertEqual(unreadable_bob, [], "replies the member who joined cannot read")
        # each challenge recorded once
        listing, page = "", 1
        while True:
            cmd = alice.send_text(room, f"!challenge list --status all --page {page}")
            b = alice.wait_reply(room, cmd, sender=bot.user_id, timeout=30)["content"]["body"]
            listing += b + "\n"
            m = re.search(r"page (\d+) of (\d+)", b)
            if not m or int(m.group(1)) >= int(m.group(2)):
                break
            page += 1
        for t in titles:
            self.assertEqual(len(re.findall(re.escape(t) + r"\b", listing)), 1,
                             f"{t!r} in:\n{listing}")


if __name__ == "__main__":
    fixtures.main(verbosity=2)
