#!/usr/bin/env python3
"""The bot against the homeserver behaviours of real servers that the other
suites meet only on their kind side (mxhs COMPAT switches, see
tests/homeserver/mxhs.py): a stored access token revoked (a password
re-login on the same device) on servers that scope txnIds to the device
and to the access token, without posting anything twice; a reply refused
for good (413 too large, 400 for a thread root the server does not know)
still answered in the room; a /sync position the server refuses (400)
given up for a fresh start instead of retried for ever; the bot kicked,
banned, invited to a DM (is_direct) and in a room outside allowed_rooms;
.well-known discovery; a room v11 redaction (content.redacts only).  Runs standalone
or under CTest."""

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks, body, in_reply_to  # noqa: E402

SEND = "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"


def kv(bot, key, value=None, delete=False):
    db = sqlite3.connect(bot.db_path, timeout=10)
    try:
        if delete:
            db.execute("DELETE FROM kv WHERE key = ?", (key,))
        elif value is not None:
            db.execute("UPDATE kv SET value = ? WHERE key = ?", (value, key))
        db.commit()
        row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


def replies(hs, room, bot_user, event_id):
    return [e for e in hs.all_events(room) if e.get("sender") == bot_user and
            in_reply_to(e) == event_id]


def is_file(bot_user):
    return lambda e: (e.get("sender") == bot_user and e.get("type") == "m.room.message" and
                      e.get("content", {}).get("msgtype") == "m.file")


class Relogin(unittest.TestCase):
    """A reply whose PUT reached the server but whose answer was lost, then
    the token revoked while the bot was down: the bot logs in again with
    the same device and must not post that reply a second time."""

    def run_scope(self, scope, export=False):
        hs = mx.Homeserver(compat={"txn_scope": scope})
        self.addCleanup(hs.stop)
        alice = hs.register("alice")
        bot = mx.Bot(hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0,
                                                    "transport": "sync"})
        bot.start()
        self.addCleanup(bot.stop)
        room = alice.create_room(name="relogin", invite=[bot.user_id])
        alice.wait_membership(room, bot.user_id, "join", timeout=20)
        fixtures.ask(alice, room, "!ping")
        device = kv(bot, "device_id")
        # the reply is posted, its answer lost; every retry then fails (with
        # export: the file after the reply, its message the command's
        # second, txnId ".1")
        which = r"/send/m\.room\.message/[^/?]*\.1(\?|$)" if export else "/send/"
        if export:
            fixtures.ask(alice, room, '!challenge new "Relogin"')
            fixtures.ask(alice, room, '!exp new C-1 "Pilot" "We believe texting will result in '
                                      'fewer missed visits. We will know when misses fall '
                                      'below 10%."')
        hs.fault("drop", path=which, method="PUT", count=1, execute=True, user=bot.user_id)
        hs.fault("status", path=which, method="PUT", count=None, status=503,
                 user=bot.user_id)
        cmd = alice.send_text(room, "!exp export --format csv" if export else "!ping")
        alice.wait_for(room, mx.reply_to(cmd), timeout=20)          # posted once
        if export:
            alice.wait_for(room, is_file(bot.user_id), timeout=20)
        bot.wait_log(r"outbox .* failed .*HTTP 503", timeout=20)
        bot.kill()
        # the operator (or the server) revokes the stored token
        mx.request("POST", hs.url + "/_matrix/client/v3/logout", {},
                   token=kv(bot, "access_token"))
        hs.clear_faults()
        mark = bot.log_mark()
        bot.start()
        bot.wait_log(r"revoked \(M_UNKNOWN_TOKEN\); logging in again with the same device",
                     since=mark, timeout=20)
        self.assertEqual(kv(bot, "device_id"), device)
        # answered after the re-login: everything before it was sent
        fixtures.ask(alice, room, "!ping")
        bot.wait_idle()
        self.assertEqual(len(replies(hs, room, bot.user_id, cmd)), 1,
                         f"txn_scope {scope}: the reply was posted again")
        if export:
            files = [e for e in hs.all_events(room) if is_file(bot.user_id)(e)]
            self.assertEqual(len(files), 1, f"txn_scope {scope}: the file was posted again")
        self.assertIsNone(kv(bot, "outbox_verify"))

    def test_txn_scope_device(self):
        self.run_scope("device")

    def test_txn_scope_token(self):
        self.run_scope("token")

    def test_txn_scope_token_file(self):
        self.run_scope("token", export=True)


class Refusals(Asks, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.addClassCleanup(cls.hs.stop)
        cls.alice = cls.hs.register("alice")
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0})
        cls.bot.start()
        cls.addClassCleanup(cls.bot.stop)
        cls.room = cls.alice.create_room(name="refusals", invite=[cls.bot.user_id])
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=20)

    def test_too_large_reply_answered_in_one_line(self):
        # a homeserver with a small event limit refuses the help text: 413
        self.hs.compat(max_event_bytes=1500)
        self.addCleanup(self.hs.compat, max_event_bytes=65536)
        mark = self.bot.log_mark()
        r = self.ask("!help")
        self.assertRegex(body(r), "too large for the homeserver")
        self.assertNotIn("\n", body(r))
        self.bot.wait_log(r"refused this answer in .* for good \(M_TOO_LARGE .*HTTP 413\): "
                          r"sending a one-line notice", since=mark)

    def test_thread_root_unknown_to_the_server(self):
        # the command came in a thread whose root this server never saw (as
        # over federation); Synapse refuses the bot's thread reply: 400
        self.bot.stop()
        self.hs.compat(relation_unknown_target="accept")
        cmd = self.alice.send_text(self.room, "!ping", thread_root="$ghost-root:localhost")
        self.hs.compat(relation_unknown_target="refuse")
        mark = self.bot.log_mark()
        self.bot.start()
        r = self.alice.wait_reply(self.room, cmd, timeout=20)
        self.assertEqual(body(r), "pong")
        self.assertNotIn("rel_type", r["content"]["m.relates_to"])
        self.bot.wait_log(r"refused this answer .* \(M_UNKNOWN .*HTTP 400\): sending it without "
                          r"its relation", since=mark)
        self.bot.wait_idle()
        self.assertEqual(len(replies(self.hs, self.room, self.bot.user_id, cmd)), 1)


class ServerErrors(unittest.TestCase):
    """A send the homeserver answers with 500 every time (a bug on its side
    about that event) is marked failed after send_give_up and does not
    hold back other rooms meanwhile; 503 (down or restarting) is retried
    past that bound until it ends."""

    def test_permanent_500_given_up_503_retried(self):
        hs = mx.Homeserver()
        self.addCleanup(hs.stop)
        alice = hs.register("alice")
        bot = mx.Bot(hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0,
                                                    "transport": "sync", "send_give_up": "3s"})
        bot.start()
        self.addCleanup(bot.stop)
        bad = alice.create_room(name="bad", invite=[bot.user_id])
        good = alice.create_room(name="good", invite=[bot.user_id])
        alice.wait_membership(bad, bot.user_id, "join", timeout=20)
        alice.wait_membership(good, bot.user_id, "join", timeout=20)
        fixtures.ask(alice, bad, "!ping")
        fixtures.ask(alice, good, "!ping")
        bot.wait_idle()
        in_bad = re.escape(bad.split(":")[0][1:])
        hs.fault("status", path=f"{in_bad}.*/send/", method="PUT", count=None, status=500,
                 errcode="M_UNKNOWN", error="Internal server error", user=bot.user_id)
        mark = bot.log_mark()
        cmd = alice.send_text(bad, "!ping")
        bot.wait_log(r"outbox .* failed .*HTTP 500", since=mark, timeout=20)
        # other rooms are answered meanwhile, not after the bad row's backoff
        for _ in range(3):
            t0 = time.monotonic()
            fixtures.ask(alice, good, "!ping")
            self.assertLess(time.monotonic() - t0, 5)
        bot.wait_log(r"outbox \S+: send to " + re.escape(bad) + r" failed for good: the "
                     r"homeserver answered HTTP 500 M_UNKNOWN \d+ times in \d+ s; marked failed",
                     since=mark, timeout=30)
        txn = re.search(r"outbox (\S+): send to \S+ failed for good: the homeserver",
                        bot.log()[mark:]).group(1)
        self.assertEqual(db_value(bot, "SELECT state FROM outbox WHERE txn_id = ?", txn), "failed")
        self.assertEqual(replies(hs, bad, bot.user_id, cmd), [])
        self.assertEqual(db_value(bot, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"), 0)
        # a homeserver down for longer than send_give_up: nothing is dropped
        hs.clear_faults()
        hs.fault("status", path=f"{in_bad}.*/send/", method="PUT", count=None, status=503,
                 user=bot.user_id)
        mark = bot.log_mark()
        cmd = alice.send_text(bad, "!ping")
        bot.wait_log(r"outbox .* failed .*HTTP 503", since=mark, timeout=20)
        time.sleep(5)
        hs.clear_faults()
        alice.wait_for(bad, mx.reply_to(cmd), timeout=90)
        self.assertNotIn("failed for good", bot.log()[mark:])


class BadSince(Asks, unittest.TestCase):
    # over the suite's transport: /sync, the WebSocket (the handshake is
    # refused with 400) and the gateway (its upstream /sync is: an error
    # message, then the close); the same policy in each (tlbot_sync_refused)
    def test_refused_position_starts_afresh(self):
        self.hs = mx.Homeserver()
        self.addCleanup(self.hs.stop)
        self.alice = self.hs.register("alice")
        self.bot = mx.Bot(self.hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0})
        self.bot.start()
        self.addCleanup(self.bot.stop)
        self.room = self.alice.create_room(name="since", invite=[self.bot.user_id])
        self.alice.wait_membership(self.room, self.bot.user_id, "join", timeout=20)
        self.ask("!ping")
        self.bot.stop()
        # a position the server does not know (its database restored, say)
        self.assertIsNotNone(kv(self.bot, "next_batch", "s-restored-elsewhere"))
        missed = self.alice.send_text(self.room, "!ping")
        mark = self.bot.log_mark()
        self.hs.reset_stats()
        self.bot.start()
        self.bot.wait_log(r"does not know our position; starting afresh", since=mark,
                          timeout=30)
        # what is sent before the fresh start has its position is history
        # too (over the WebSocket the fresh connection takes a moment)
        deadline = time.monotonic() + 20
        while kv(self.bot, "next_batch") in (None, "s-restored-elsewhere") and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        r = self.ask("!ping")
        self.assertEqual(body(r), "pong")
        self.bot.wait_idle()
        # at most the first refusal and the one with a new filter
        refused = self.bot.log()[mark:].count("(HTTP 400)")
        self.assertLessEqual(refused, 2, self.bot.log()[mark:])
        # what came while the position was lost is history, as at a first start
        self.assertEqual(replies(self.hs, self.room, self.bot.user_id, missed), [])


def db_value(bot, sql, *args):
    db = sqlite3.connect(f"file:{bot.db_path}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute(sql, args).fetchone()
        return row[0] if row else None
    finally:
        db.close()


class Membership(Asks, unittest.TestCase):
    """Kicked, banned, invited to a DM, and rooms outside allowed_rooms."""

    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.addClassCleanup(cls.hs.stop)
        cls.alice = cls.hs.register("alice")
        cls.bob = cls.hs.register("bob")
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0})
        cls.bot.start()
        cls.addClassCleanup(cls.bot.stop)
        cls.room = cls.alice.create_room(name="home", invite=[cls.bot.user_id])
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=20)

    def joined_room(self, name):
        room = self.alice.create_room(name=name, invite=[self.bot.user_id])
        self.alice.wait_membership(room, self.bot.user_id, "join", timeout=20)
        self.assertEqual(body(self.ask("!ping", room=room)), "pong")
        return room

    def membership(self, room):
        return db_value(self.bot, "SELECT membership FROM rooms WHERE room_id = ?", room)

    def test_kicked_then_invited_again(self):
        room = self.joined_room("kick")
        self.alice.kick(room, self.bot.user_id, reason="testing")
        # the next command answered elsewhere: the kick was applied before it
        self.assertEqual(body(self.ask("!ping")), "pong")
        self.bot.wait_idle()
        self.assertEqual(self.membership(room), "leave")
        self.assertTrue(self.bot.alive())
        # invited again by an allowed user: back, and answering
        self.alice.invite(room, self.bot.user_id)
        self.alice.wait_membership(room, self.bot.user_id, "join", timeout=20)
        self.assertEqual(body(self.ask("!ping", room=room)), "pong")

    def test_banned_then_unbanned(self):
        room = self.joined_room("ban")
        self.alice.api("POST", f"/rooms/{mx.q(room)}/ban", {"user_id": self.bot.user_id,
                                                            "reason": "testing"})
        self.assertEqual(body(self.ask("!ping")), "pong")
        self.bot.wait_idle()
        self.assertEqual(self.membership(room), "leave")
        self.alice.api("POST", f"/rooms/{mx.q(room)}/unban", {"user_id": self.bot.user_id})
        self.alice.invite(room, self.bot.user_id)
        self.alice.wait_membership(room, self.bot.user_id, "join", timeout=20)
        self.assertEqual(body(self.ask("!ping", room=room)), "pong")

    def test_invite_with_is_direct_is_the_dm_room(self):
        dm = self.bob.create_room(invite=[self.bot.user_id], is_direct=True)
        self.bob.wait_membership(dm, self.bot.user_id, "join", timeout=20)
        self.assertEqual(db_value(self.bot, "SELECT room_id FROM dm_rooms WHERE user_id = ?",
                                  self.bob.user_id), dm)
        self.assertEqual(body(self.ask("!ping", user=self.bob, room=dm)), "pong")

    def test_rooms_outside_allowed_rooms_are_left(self):
        room = self.joined_room("not allowed later")
        self.bot.stop()
        self.bot.config["allowed_rooms"] = [self.room]
        self.bot.write_config()
        self.addCleanup(self.restore_rooms)
        self.bot.start()
        cmd = self.alice.send_text(room, "!ping")
        self.alice.wait_membership(room, self.bot.user_id, "leave", timeout=20)
        self.assertEqual(body(self.ask("!ping")), "pong")      # the allowed one still works
        self.assertIn(f"room {room}: not in allowed_rooms: leaving", self.bot.log())
        self.assertEqual(replies(self.hs, room, self.bot.user_id, cmd), [])
        # and an invite to another room is declined
        other = self.alice.create_room(name="other", invite=[self.bot.user_id])
        self.alice.wait_membership(other, self.bot.user_id, "leave", timeout=20)

    def restore_rooms(self):
        self.bot.stop()
        self.bot.config.pop("allowed_rooms", None)
        self.bot.write_config()
        mark = self.bot.log_mark()
        self.bot.start()
        self.bot.wait_log(r"running as", timeout=20, since=mark)


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class WellKnown(unittest.TestCase):
    """homeserver: a server name, found through
    https://NAME/.well-known/matrix/client (spec "Server Discovery"), over
    TLS verified with ca_file: a base_url that works is used; with one that
    is not a URL the bot says why and goes no further."""

    def serve_wellknown(self, payload):
        import http.server
        import ssl
        d = mx.tmpdir()
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True,
                       capture_output=True)
        seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                data = json.dumps(payload).encode()
                code = 200 if self.path == "/.well-known/matrix/client" else 404
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.addCleanup(srv.server_close)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.shutdown)
        return srv.server_address[1], cert, seen

    def test_discovered_base_url_is_used(self):
        hs = mx.Homeserver(persist=False)
        self.addCleanup(hs.stop)
        alice = hs.register("alice")
        port, cert, seen = self.serve_wellknown({"m.homeserver": {"base_url": hs.url}})
        bot = mx.Bot(hs, mx.tmpdir(), config_extra={"ca_file": cert, "transport": "sync"})
        bot.config["homeserver"] = f"localhost:{port}"
        bot.write_config = lambda: None           # keep the server name in the config
        with open(bot.config_path, "w") as f:
            f.write(mx.to_yaml(bot.config))
        os.chmod(bot.config_path, 0o600)
        bot.start()
        self.addCleanup(bot.stop)
        bot.wait_log(r"discovered homeserver %s for localhost:%d" % (re.escape(hs.url), port),
                     timeout=20)
        self.assertEqual(seen[:1], ["/.well-known/matrix/client"])
        room = alice.create_room(name="discovered", invite=[bot.user_id])
        alice.wait_membership(room, bot.user_id, "join", timeout=20)
        self.assertEqual(body(fixtures.ask(alice, room, "!ping")), "pong")

    def test_bad_base_url_stops_with_the_reason(self):
        hs = mx.Homeserver(persist=False)
        self.addCleanup(hs.stop)
        port, cert, _ = self.serve_wellknown({"m.homeserver": {"base_url": "not a url"}})
        bot = mx.Bot(hs, mx.tmpdir(), config_extra={"ca_file": cert, "transport": "sync"})
        bot.config["homeserver"] = f"localhost:{port}"
        bot.write_config = lambda: None
        with open(bot.config_path, "w") as f:
            f.write(mx.to_yaml(bot.config))
        os.chmod(bot.config_path, 0o600)
        bot.start()
        self.addCleanup(bot.stop)
        bot.wait_log(r"no valid m\.homeserver\.base_url", timeout=20)
        # (spec FAIL_ERROR: not used; a daemon says why and tries again, as
        # the operator may mend the server's file)
        bot.wait_log(r"cannot resolve homeserver localhost:%d yet; retrying" % port, timeout=20)
        self.assertTrue(bot.alive())
        self.assertEqual(hs.request_count("POST", "/_matrix/client/v3/login"), 0)


class V11Redaction(Asks, unittest.TestCase):
    """Room v11 moves `redacts` into the redaction's content (MSC2174); a
    server that follows the spec alone (mxhs redacts_where "spec") sends it
    nowhere else.  A stand-up answer redacted so is withdrawn."""

    def test_content_redacts_withdraws_the_answer(self):
        self.hs = mx.Homeserver()
        self.addCleanup(self.hs.stop)
        self.alice = self.hs.register("alice")
        self.bot = mx.Bot(self.hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0})
        self.bot.set_clock(1795423800)          # Monday 23 November 2026, 08:50 GMT
        self.bot.start()
        self.addCleanup(self.bot.stop)
        self.room = self.alice.create_room(name="v11", room_version="11",
                                           invite=[self.bot.user_id])
        self.alice.wait_membership(self.room, self.bot.user_id, "join", timeout=20)
        self.assertIn("Next stand-up", body(self.ask("!standup schedule 09:00 Europe/London "
                                                     "mon-fri")))
        self.bot.set_clock(1795424460)          # 09:01: the stand-up is open
        cmd, r = self.ask_ev("!standup y: a t: b b: secret blocker")
        self.assertIn("secret blocker", body(self.ask("!standup summary")))
        red = self.alice.redact(self.room, cmd)
        ev = self.alice.event(self.room, red)
        self.assertNotIn("redacts", ev)                     # content only
        self.assertEqual(ev["content"]["redacts"], cmd)
        self.assertNotIn("secret blocker", body(self.ask("!standup summary")))


class EditWhileDown(unittest.TestCase):
    """A command edited while the bot was down, reaching the bot through the
    gap fill (/messages): servers before MSC3925 (spec <= v1.6, older
    Synapse) serve the original with the edit's content and the edit
    bundled; current ones serve it as sent.  On both the command runs once,
    and its edit is answered at most once."""

    def run_mode(self, mode):
        # (no sync cache: the long-poll the stopped bot left behind would be
        # answered with the command alone and that answer served to the new
        # bot, as Synapse does, and the command would not be in the gap)
        hs = mx.Homeserver(compat={"edits_in_messages": mode, "sync_cache_s": 0})
        self.addCleanup(hs.stop)
        alice = hs.register("alice")
        bot = mx.Bot(hs, mx.tmpdir(), config_extra={"rate_limit_per_min": 0, "transport": "sync",
                                                    "timeline_limit": 3})
        bot.start()
        self.addCleanup(bot.stop)
        room = alice.create_room(name="edits " + mode, invite=[bot.user_id])
        alice.wait_membership(room, bot.user_id, "join", timeout=20)
        fixtures.ask(alice, room, "!ping")
        bot.stop()
        cmd = alice.send_text(room, "!ping")
        alice.edit(room, cmd, "!help ping")
        for i in range(6):                     # the command only in the gap
            alice.send_text(room, f"chatter {i}")
        mark = bot.log_mark()
        bot.start()
        last = fixtures.ask(alice, room, "!ping")
        self.assertEqual(body(last), "pong")
        bot.wait_idle()
        bot.wait_log(r"limited timeline: filled a gap", since=mark)   # through /messages
        if mode == "replace":
            served = alice.event(room, cmd)
            self.assertEqual(served["content"]["body"], "!help ping")   # as such servers do
        return [body(e) for e in replies(hs, room, bot.user_id, cmd)]

    def test_edits_as_sent(self):
        # the command as sent, once, and one note for its edit (two causes:
        # either may be posted first)
        got = sorted(self.run_mode("original"))
        self.assertEqual(len(got), 2, got)
        self.assertRegex(got[0], "do not run edits")
        self.assertEqual(got[1], "pong")

    def test_edits_replaced_by_older_servers(self):
        # the text as sent is not to be had from such a server: the command
        # runs once, as it now reads, and its edit is not answered again as
        # "an edit of a command that already ran" (it was: the edited text
        # ran, then a note said edits are not run)
        got = self.run_mode("replace")
        self.assertEqual(len(got), 1, got)
        self.assertTrue(got[0].startswith("ping — check that the bot is alive"), got)


if __name__ == "__main__":
    fixtures.main(verbosity=2)
