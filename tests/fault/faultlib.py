"""Helpers shared by the fault tests (tests/fault/test_*.py): who answered
what, read from the homeserver's own record of every room event."""

import calendar
import collections
import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402,F401
from fixtures import body, in_reply_to  # noqa: E402,F401


class Killer(threading.Thread):
    """Kills the bot (SIGKILL) at random moments and starts it again: after
    a gap drawn from rng, mostly short (uniform over short), one time in
    five long (over long); one kill in five leaves the bot down for a moment
    (over down) before the start.  Kills only while .running is set (set
    from the start unless armed is False).  stop() ends it with the bot
    running."""

    def __init__(self, bot, rng, short=(0.2, 1.5), long=(1.5, 4), down=(0.05, 0.5), armed=True):
        super().__init__(daemon=True)
        self.bot, self.rng = bot, rng
        self.short, self.long, self.down = short, long, down
        self.kills = 0
        self.running = threading.Event()
        if armed:
            self.running.set()
        self.stopped = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.stopped.is_set():
            gap = self.rng.uniform(*self.short) if self.rng.random() < 0.8 else self.rng.uniform(*self.long)
            if self.stopped.wait(gap):
                break
            if not self.running.is_set():
                continue
            with self.lock:
                self.bot.kill()
                self.kills += 1
                if self.rng.random() < 0.2:
                    time.sleep(self.rng.uniform(*self.down))   # down for a moment
                self.bot.start()

    def stop(self):
        self.stopped.set()
        self.join(10)
        with self.lock:
            if not self.bot.alive():
                self.bot.start()


def utc(y, mo, d, h, mi, s=0):
    return calendar.timegm((y, mo, d, h, mi, s))


def bot_messages(hs, room, bot_user):
    """Every m.room.message the bot sent in room, oldest first."""
    return [e for e in hs.all_events(room)
            if e.get("sender") == bot_user and e.get("type") == "m.room.message"]


def replies_by_command(hs, room, bot_user):
    """{command event id: [reply events]} for every bot reply in room."""
    out = collections.defaultdict(list)
    for ev in bot_messages(hs, room, bot_user):
        target = in_reply_to(ev)
        if target:
            out[target].append(ev)
    return out


def unprompted(hs, room, bot_user):
    """The bot's messages in room that answer no command (jobs: reminders,
    stand-up prompts and summaries...)."""
    return [e for e in bot_messages(hs, room, bot_user) if not in_reply_to(e)]


def count_replies(hs, rooms, bot_user, cmds):
    """cmds: [(room, event_id)] -> (lost, duplicated) lists of (room, event_id)."""
    per_room = {r: replies_by_command(hs, r, bot_user) for r in set(r for r, _ in cmds)}
    lost = [(r, e) for r, e in cmds if len(per_room[r].get(e, [])) == 0]
    dup = [(r, e) for r, e in cmds if len(per_room[r].get(e, [])) > 1]
    return lost, dup


def wait_all_replied(hs, bot_user, cmds, timeout, poll=0.3):
    """Wait until every (room, event_id) in cmds has at least one reply.
    -> the lost list (empty on success)."""
    deadline = time.monotonic() + timeout
    while True:
        lost, _ = count_replies(hs, None, bot_user, cmds)
        if not lost or time.monotonic() > deadline:
            return lost
        time.sleep(poll)


def db_ro(path, immutable=False):
    """The bot's database, read-only (the bot may be running).  immutable:
    on a read-only filesystem, where not even the -shm file can be made."""
    return sqlite3.connect(f"file:{path}?mode=ro{'&immutable=1' if immutable else ''}", uri=True,
                           timeout=10)


def figures(name, **kw):
    """Print one line of figures for the CI log."""
    parts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in kw.items())
    print(f"\n[{name}] {parts}", file=sys.stderr, flush=True)
