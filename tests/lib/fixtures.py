"""fixtures -- what every integration and fault test needs, defined once.

    import mx
    from fixtures import body, html, in_reply_to, ask, ask_ev, Asks, team_room

    class Team(Asks, unittest.TestCase):     # uses cls.alice and cls.room
        @classmethod
        def setUpClass(cls):                   # hs, alice, bob, bot, a room
            team_room(cls, "Leeds family hubs", ("bob",), clock=T0)

        def test_x(self):
            r = self.ask("!ping")                  # the bot's reply event
            ev, r = self.ask_ev("!ping")           # the command's id and the reply
            dm = self.dm_room(self.bob)            # bob's DM room with the bot

Event accessors never raise on odd events (no content, content not a dict):
the hostile tests feed the bot exactly those.
"""

import fnmatch
import os
import re
import sys
import unittest

__all__ = ["body", "html", "msgtype", "in_reply_to", "ask", "ask_ev", "Asks", "team_room",
           "main"]

ASK_TIMEOUT = 20


def _content(ev):
    c = ev.get("content") if isinstance(ev, dict) else None
    return c if isinstance(c, dict) else {}


def body(ev):
    """The event's plain-text body ("" when there is none)."""
    b = _content(ev).get("body")
    return b if isinstance(b, str) else ""


def html(ev):
    """The event's formatted_body ("" when there is none)."""
    b = _content(ev).get("formatted_body")
    return b if isinstance(b, str) else ""


def msgtype(ev):
    return _content(ev).get("msgtype")


def in_reply_to(ev):
    """The event id ev replies to (m.in_reply_to), or None."""
    rel = _content(ev).get("m.relates_to")
    irt = rel.get("m.in_reply_to") if isinstance(rel, dict) else None
    return irt.get("event_id") if isinstance(irt, dict) else None


def ask_ev(user, room, text, timeout=ASK_TIMEOUT, **send_kw):
    """user sends text to room; returns (command event id, the bot's reply),
    the reply being an m.notice whose m.in_reply_to is the command.  Raises
    mx.WaitTimeout when no reply comes within timeout seconds."""
    ev = user.send_text(room, text, **send_kw)
    return ev, user.wait_reply(room, ev, timeout=timeout)


def ask(user, room, text, timeout=ASK_TIMEOUT, **send_kw):
    """As ask_ev, returning only the bot's reply."""
    return ask_ev(user, room, text, timeout=timeout, **send_kw)[1]


class Asks:
    """Mixin for a TestCase whose class has .alice (the default asker) and
    .room (the default room), as set up in setUpClass."""

    def ask(self, text, user=None, room=None, timeout=ASK_TIMEOUT, **send_kw):
        return ask(user or self.alice, room or self.room, text, timeout=timeout, **send_kw)

    def ask_ev(self, text, user=None, room=None, timeout=ASK_TIMEOUT, **send_kw):
        return ask_ev(user or self.alice, room or self.room, text, timeout=timeout, **send_kw)

    def dm_room(self, user):
        """user's DM room with the bot, joining the bot's invite the first
        time (kept in the class's .dm)."""
        dm = type(self).__dict__.get("dm")
        if dm is None:
            dm = {}
            type(self).dm = dm
        if user.user_id not in dm:
            room = user.wait_for_invite(timeout=20, inviter=self.bot.user_id)
            user.join(room)
            dm[user.user_id] = room
        return dm[user.user_id]


def team_room(cls, name, users=(), config=None, clock=None, env=None, hs=None, wait_idle=True):
    """The set-up most suites share, on the test class cls: a test homeserver
    (cls.hs, or hs), alice (the room's creator, power 100) and each localpart
    of users as cls.<localpart>, the bot (cls.bot) with config_extra config
    (default: rate_limit_per_min 1000) and env_extra env, its clock set to
    clock (epoch seconds) when given, and a room named name (cls.room) that
    alice made and invited the bot and the users to; the users have joined,
    the bot has joined and, unless wait_idle is False, caught up.  Stopping
    is registered as class clean-ups."""
    import mx
    cls.hs = hs or mx.Homeserver()
    cls.addClassCleanup(cls.hs.stop)
    cls.alice = cls.hs.register("alice")
    members = [cls.hs.register(u) for u in users]
    for u, m in zip(users, members):
        setattr(cls, u.replace("-", "_"), m)
    cls.bot = mx.Bot(cls.hs, mx.tmpdir(),
                     config_extra=config if config is not None else {"rate_limit_per_min": 1000},
                     env_extra=env)
    if clock is not None:
        cls.bot.set_clock(clock)
    cls.bot.start()
    cls.addClassCleanup(cls.bot.stop)
    cls.room = cls.alice.create_room(name=name, invite=[cls.bot.user_id] + [m.user_id for m in members])
    for m in members:
        m.join(cls.room)
    cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)
    if wait_idle:
        cls.bot.wait_idle(timeout=15)


# --------------------------------------------------------------------------
# Running a test script: skips CTest can see
# --------------------------------------------------------------------------

SKIP_EXIT = 77          # SKIP_RETURN_CODE in tests/CMakeLists.txt


def _skip_allowed(test_id):
    """TLBOT_ALLOWED_SKIPS unset: every skip is allowed (a developer's
    machine).  Set (CI): a comma-separated list of fnmatch patterns over
    '<script>.<Class>.<test>' ids; a skip not matching one is a failure."""
    allowed = os.environ.get("TLBOT_ALLOWED_SKIPS")
    if allowed is None:
        return True
    return any(fnmatch.fnmatchcase(test_id, p.strip()) for p in allowed.split(",") if p.strip())


def _test_id(test, script):
    tid = test.id()
    # a skip raised in setUpClass comes as "setUpClass (__main__.Class)"
    tid = tid.replace("__main__", script)
    m = re.match(r"^(\w+) \((.*)\)$", tid)
    return f"{m.group(2)}.{m.group(1)}" if m else tid


def main(verbosity=2):
    """unittest.main() for the test scripts: exit 1 on a failure or error,
    77 when a test was skipped (CTest reports the entry as Skipped, not
    Passed), 0 when everything ran and passed.  A skip that
    TLBOT_ALLOWED_SKIPS does not allow counts as a failure."""
    script = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    prog = unittest.main(verbosity=verbosity, exit=False)
    r = prog.result
    refused = [(t, why) for t, why in r.skipped if not _skip_allowed(_test_id(t, script))]
    for t, why in refused:
        sys.stderr.write(f"FAIL: {_test_id(t, script)} was skipped ({why}) and "
                         "TLBOT_ALLOWED_SKIPS does not allow it\n")
    if not r.wasSuccessful() or refused:
        sys.exit(1)
    if r.skipped:
        sys.stderr.write(f"SKIPPED: {len(r.skipped)} of {r.testsRun} test(s); exit {SKIP_EXIT}\n")
        sys.exit(SKIP_EXIT)
    sys.exit(0)
