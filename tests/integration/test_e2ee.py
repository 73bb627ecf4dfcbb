#!/usr/bin/python3
"""End-to-end encrypted rooms as people using Element see them: the room
members are real E2EE clients (matrix-nio on libolm, tests/lib/e2ee.py), the
bot is the real binary, the homeserver the local one.

  * !ping, !exp new and a stand-up answer by encrypted DM reply: the bot
    reads them, every reply is Megolm-encrypted and the peer decrypts it;
  * a member who joins later reads new replies; after a member leaves the
    next reply uses a new Megolm session (session id); a second device of a
    member receives the keys;
  * the room key arrives after the message (held back by the homeserver):
    the command is still answered, once; when it does not come, the bot
    asks alice's devices for it (m.room_key_request), after ~5 s even in
    a quiet room; the device that made the session may answer with
    m.forwarded_room_key (taken, the request then cancelled), another user
    may not;
  * an encrypted edit of a refused command runs; the room's
    rotation_period_msgs is honoured;
  * bad input -- garbage ciphertext, a replayed Megolm index, an Olm message
    for another recipient key or claiming another sender or signing key --
    is refused and logged once, and the rest of the same sync batch is
    handled; a forwarded room key from another user is ignored;
  * the bot's log (info) holds neither the plaintext nor key material.

Run with Debian's python3 (matrix-nio, python3-olm): /usr/bin/python3
tests/integration/test_e2ee.py (CTest does).  Cross-signing:
test_e2ee_cross_signing.py."""

import calendar
import json
import os
import re
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx    # noqa: E402
import fixtures  # noqa: E402
import e2ee  # noqa: E402

BOT_DEVICE_WAIT = 20
MARK = "zq" + uuid.uuid4().hex[:12]          # in every plaintext we send: must not be logged


def utc(y, mo, d, h, mi):
    return calendar.timegm((y, mo, d, h, mi, 0))


T0 = utc(2026, 11, 18, 8, 0)                 # Wednesday 18 November 2026, 08:00 GMT


class E2EE(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        # log at info: the level at which plaintext must never appear
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), encryption=True, config_extra={"rate_limit_per_min": 0,
                                                             "log_level": "info"})
        cls.bot.set_clock(T0)
        cls.bot.start()
        cls.alice = e2ee.Peer(cls.hs, "alice")
        cls.peers = [cls.alice]
        cls.room = cls.alice.create_room(name="Encrypted team", invite=[cls.bot.user_id])
        cls.alice.wait_joined(cls.room, cls.bot.user_id, timeout=BOT_DEVICE_WAIT)
        cls.bot.wait_idle(timeout=BOT_DEVICE_WAIT)

    @classmethod
    def tearDownClass(cls):
        cls.bot.stop()
        for p in cls.peers:
            p.close()
        cls.hs.stop()

    def setUp(self):
        self.hs.clear_faults()
        self.hs.api("POST", "/_test/to_device/release", {})
        if not self.bot.alive():
            self.bot.start()

    def peer(self, localpart, **kw):
        p = e2ee.Peer(self.hs, localpart, **kw)
        self.peers.append(p)
        return p

    # ---- helpers ------------------------------------------------------------------

    def ask(self, text, peer=None, room=None, timeout=20):
        """peer sends text (encrypted) to room; -> (command id, decrypted reply)"""
        peer, room = peer or self.alice, room or self.room
        cmd = peer.send_text(room, text)
        rep = peer.wait_reply(room, cmd, sender=self.bot.user_id, timeout=timeout)
        self.assertEqual(rep["type"], "m.room.message")
        self.assertTrue(rep["encrypted"] and rep["decrypted"], rep)
        self.assertEqual(peer.raw_event(room, rep["event_id"])["type"], "m.room.encrypted")
        return cmd, rep

    def replies(self, cmd, peer=None, room=None):
        """Every bot event replying to cmd, as peer sees them (after catching up)."""
        peer, room = peer or self.alice, room or self.room
        self.bot.wait_idle(timeout=15)
        peer.step(0)
        return [r for r in peer.events(room) if r["sender"] == self.bot.user_id and
                (peer.reply_target(r) == cmd or peer._raw_reply_target(room, r) == cmd)]

    def assert_no_reply(self, cmd, wait=2.0, peer=None, room=None):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            (peer or self.alice).step(200)
        self.assertEqual(self.replies(cmd, peer, room), [], f"{cmd} was answered")

    def one_batch(self, send):
        """Run send() while the bot's next /sync is held at the homeserver, so
        that everything send() sends reaches the bot in one sync batch."""
        self.bot.wait_idle(timeout=15)
        fid = self.hs.fault(kind="delay", path=r"/sync$", method="GET",
                            user=self.bot.user_id, delay_ms=1500, count=1)
        # wake the bot's pending long-poll with a to-device message it ignores
        self.alice.mx.api("PUT", f"/sendToDevice/org.example.e2ee.wake/{uuid.uuid4().hex}",
                          {"messages": {self.bot.user_id: {"*": {}}}})
        deadline = time.monotonic() + 10
        while not any(f["id"] == fid and f["fired"] for f in self.hs.faults()):
            self.assertLess(time.monotonic(), deadline, "the bot did not sync again")
            time.sleep(0.02)
        t0 = time.monotonic()
        out = send()
        self.assertLess(time.monotonic() - t0, 1.2, "send() too slow for one batch")
        return out

    def log_lines(self, since, pattern):
        return [ln for ln in self.bot.log()[since:].splitlines() if re.search(pattern, ln)]

    def bot_device(self):
        q = self.alice.keys_query(self.bot.user_id)
        devs = q["device_keys"].get(self.bot.user_id, {})
        self.assertEqual(len(devs), 1, devs)
        (dev_id, dev), = devs.items()
        return dev_id, dev, q

    # ---- the commands ---------------------------------------------------------------

    def test_a_ping(self):
        cmd, rep = self.ask("!ping")
        self.assertEqual(rep["content"]["body"], "pong")
        self.assertEqual(rep["content"]["msgtype"], "m.notice")
        self.assertTrue(rep["session_id"])
        self.assertEqual(len(self.replies(cmd)), 1)

    def test_b_exp_new(self):
        _, rep = self.ask(f'!challenge new "Encrypted pilots {MARK}"')
        self.assertIn("C-1", rep["content"]["body"])
        _, rep = self.ask(f'!exp new C-1 "Secret pilot {MARK}" "We believe texting {MARK} will '
                          f'result in fewer missed visits. We will know when misses fall below 10%."')
        self.assertIn("Recorded E-", rep["content"]["body"])

    def test_c_standup_by_encrypted_dm_reply(self):
        self.ask("!team add @alice:localhost --role data")
        _, rep = self.ask("!standup schedule 09:30 Europe/London mon-fri")
        self.assertIn("Next stand-up: Wednesday 18 November 2026", rep["content"]["body"])
        self.bot.set_clock(utc(2026, 11, 18, 9, 30))
        dm = self.alice.wait_invite(timeout=30, inviter=self.bot.user_id)
        self.alice.join(dm)
        # the DM the bot created is encrypted, as clients create them
        self.assertEqual(self.alice.mx.state(dm, "m.room.encryption")["algorithm"], e2ee.MEGOLM)
        prompt = self.alice.wait_event(
            dm, lambda r: r["sender"] == self.bot.user_id and r["decrypted"] and
            "Yesterday?" in (r["content"].get("body") or ""), timeout=30, what="stand-up prompt")
        cmd = self.alice.send_text(dm, f"y: counted visitors {MARK}\nt: talk to the council\n"
                                       "b: none", reply_to=prompt["event_id"])
        rep = self.alice.wait_reply(dm, cmd, sender=self.bot.user_id, timeout=20)
        self.assertIn("your stand-up answer is recorded", rep["content"]["body"])
        self.assertEqual(len(self.replies(cmd, room=dm)), 1)

    # ---- members and devices -----------------------------------------------------------

    def test_d_member_joins_later(self):
        bob = self.peer("bob")
        self.alice.invite(self.room, bob.user_id)
        bob.step(0)
        bob.join(self.room)
        self.alice.wait_joined(self.room, bob.user_id)
        self.bot.wait_idle(timeout=15)
        cmd, _ = self.ask("!ping")
        rep = bob.wait_reply(self.room, cmd, sender=self.bot.user_id, timeout=20)
        self.assertEqual(rep["content"]["body"], "pong")

    def test_da_invited_member_reads_later(self):
        # history visibility "shared" (the default): an invited member's
        # devices get the keys, so what the bot says while they are invited
        # is readable once they join
        dave = self.peer("dave")
        self.alice.invite(self.room, dave.user_id)
        dave.step(0)
        self.bot.wait_idle(timeout=15)
        cmd, r = self.ask("!ping")
        dave.join(self.room)
        dave.step(0)
        got = dave.decrypt_raw(self.alice.raw_event(self.room, r["event_id"]))
        self.assertIsNotNone(got, "a reply sent while dave was invited is not readable by him")
        self.assertEqual(got["content"]["body"], "pong")

    def test_e_member_leaves_new_session(self):
        carol = self.peer("carol")
        self.alice.invite(self.room, carol.user_id)
        carol.step(0)
        carol.join(self.room)
        self.alice.wait_joined(self.room, carol.user_id)
        self.bot.wait_idle(timeout=15)
        cmd1, r1 = self.ask("!ping")
        got = carol.wait_reply(self.room, cmd1, sender=self.bot.user_id, timeout=20)
        self.assertEqual(got["session_id"], r1["session_id"])
        carol.leave(self.room)
        self.bot.wait_idle(timeout=15)
        cmd2, r2 = self.ask("!ping")
        self.assertNotEqual(r2["session_id"], r1["session_id"],
                            "the bot kept its Megolm session after a member left")
        # and carol's device was not given the new session
        carol.step(0)
        self.assertIsNone(carol.decrypt_raw(self.alice.raw_event(self.room, r2["event_id"]) |
                                            {"room_id": self.room}))

    def test_f_second_device_gets_keys(self):
        alice2 = self.peer("alice", device_id="ALICE2")
        alice2.step(0)
        self.bot.wait_idle(timeout=15)
        cmd, r = self.ask("!ping")
        rep = alice2.wait_reply(self.room, cmd, sender=self.bot.user_id, timeout=20)
        self.assertEqual(rep["content"]["body"], "pong")
        self.assertEqual(rep["session_id"], r["session_id"])

    def test_g_key_after_the_message(self):
        mark = self.bot.log_mark()
        self.hs.api("POST", "/_test/to_device/hold", {"user": self.bot.user_id,
                                                      "sender": self.alice.user_id,
                                                      "type": "m.room.encrypted"})
        self.alice.rotate(self.room)                 # a new session: a new key to send
        cmd = self.alice.send_text(self.room, "!ping")
        self.bot.wait_log(re.escape(cmd) + r".*key has not arrived", timeout=15, since=mark)
        self.assert_no_reply(cmd, wait=1.0)
        self.assertEqual(self.hs.api("POST", "/_test/to_device/release", {})["released"] >= 1, True)
        rep = self.alice.wait_reply(self.room, cmd, sender=self.bot.user_id, timeout=20)
        self.assertEqual(rep["content"]["body"], "pong")
        time.sleep(1)
        self.assertEqual(len(self.replies(cmd)), 1)

    def test_ga_key_request_then_key(self):
        # the key does not come: the bot asks the sender's devices for it
        # (m.room_key_request), and answers once when it does come
        dev_id, _, _ = self.bot_device()
        self.hs.api("POST", "/_test/to_device/hold", {"user": self.bot.user_id,
                                                      "sender": self.alice.user_id,
                                                      "type": "m.room.encrypted"})
        self.alice.rotate(self.room)
        cmd = self.alice.send_text(self.room, "!ping")
        sid = self.alice.sent[cmd]["session_id"]
        # the bot follows pending events up after each sync batch: keep the
        # homeserver busy (a to-device message it ignores, every second) as
        # a live server is, rather than waiting for its long-poll timeout
        last = [0.0]

        def asked():
            if time.monotonic() - last[0] > 1:
                last[0] = time.monotonic()
                self.alice.send_to_device("org.example.e2ee.wake",
                                          {"messages": {self.bot.user_id: {"*": {}}}})
            return any(isinstance(ev, e2ee.nio.RoomKeyRequest) and ev.sender == self.bot.user_id
                       and ev.session_id == sid for ev in self.alice.to_device)
        self.alice.wait(asked, 20, "m.room_key_request")
        req = [ev for ev in self.alice.to_device if isinstance(ev, e2ee.nio.RoomKeyRequest) and
               ev.session_id == sid][0]
        self.assertEqual((req.room_id, req.algorithm, req.requesting_device_id),
                         (self.room, e2ee.MEGOLM, dev_id))
        self.assert_no_reply(cmd, wait=0.5)
        self.hs.api("POST", "/_test/to_device/release", {})
        self.alice.wait_reply(self.room, cmd, sender=self.bot.user_id, timeout=20)
        time.sleep(1)
        self.assertEqual(len(self.replies(cmd)), 1)

    def test_gd_quiet_room_key_request_forwarded_key_and_cancellation(self):
        # no sync traffic at all: the bot asks for a missing key on its own
        # clock (~5 s), not at its next long-poll timeout. A forwarded key
        # from another user is refused; the device that made the session
        # answers with m.forwarded_room_key (a session export): the bot
        # takes it (it asked), handles the message once and cancels its
        # request (action request_cancellation, same request_id)
        dev_id, _, _ = self.bot_device()
        bob = self.peer("bob")
        session = e2ee.olm.OutboundGroupSession()
        inbound = e2ee.olm.InboundGroupSession(session.session_key)     # from index 0
        content = self.alice.megolm_event(self.room, session,
                                          {"msgtype": "m.text", "body": "!ping", "m.mentions": {}})
        self.bot.wait_idle(timeout=15)
        mark = self.bot.log_mark()
        t0 = time.monotonic()
        cmd = self.alice.send_raw(self.room, "m.room.encrypted", content)

        def requests(kind):
            return [ev for ev in self.alice.to_device if isinstance(ev, kind) and
                    ev.sender == self.bot.user_id]
        self.alice.wait(lambda: any(ev.session_id == session.id
                                    for ev in requests(e2ee.nio.RoomKeyRequest)),
                        15, "m.room_key_request")
        waited = time.monotonic() - t0
        print(f"\n  key request {waited:.1f} s after the event (quiet room)", file=sys.stderr)
        self.assertGreaterEqual(waited, 4.5)        # KEY_REQUEST_AFTER_MS
        self.assertLess(waited, 9.0)
        req = [ev for ev in requests(e2ee.nio.RoomKeyRequest) if ev.session_id == session.id][0]
        self.assertEqual((req.room_id, req.requesting_device_id), (self.room, dev_id))
        fwd = {"algorithm": e2ee.MEGOLM, "room_id": self.room, "sender_key": self.alice.curve25519,
               "session_id": session.id, "session_key": inbound.export_session(0),
               "sender_claimed_ed25519_key": self.alice.ed25519,
               "forwarding_curve25519_key_chain": []}
        # bob has the key (say) and forwards it: not the session's device
        bob_fwd = dict(fwd, forwarding_curve25519_key_chain=[self.alice.curve25519])
        bob.olm_to_device(self.bot.user_id, dev_id, "m.forwarded_room_key", bob_fwd)
        self.bot.wait_log(r"forwarded room key from " + re.escape(bob.user_id) +
                          r".*only the device that made the session", timeout=15, since=mark)
        self.assert_no_reply(cmd, wait=1.0)
        self.alice.olm_to_device(self.bot.user_id, dev_id, "m.forwarded_room_key", fwd)
        rep = self.alice.wait_reply(self.room, cmd, sender=self.bot.user_id, timeout=20)
        self.assertEqual(rep["content"]["body"], "pong")
        self.alice.wait(lambda: any(ev.request_id == req.request_id for ev in
                                    requests(e2ee.nio.RoomKeyRequestCancellation)),
                        10, "request_cancellation")
        time.sleep(1)
        self.assertEqual(len(self.replies(cmd)), 1)
        self.assertEqual(len(self.log_lines(mark, r"accepted a forwarded room key from " +
                                            re.escape(self.alice.user_id))), 1)

    def test_gb_edit_of_an_encrypted_command(self):
        # an encrypted edit (relation in the cleartext, m.new_content inside)
        # of a refused command runs, as for plaintext
        cmd, r = self.ask('!chalenge new "Edited pilots"')
        self.assertIn("did you mean", r["content"]["body"])
        self.alice.edit(self.room, cmd, '!challenge new "Edited pilots"')
        self.alice.wait(lambda: len(self.replies(cmd)) >= 2, 20, "the edited command's reply")
        got = self.replies(cmd)
        self.assertEqual(len(got), 2)
        self.assertRegex(got[1]["content"]["body"], r"C-\d+")
        self.assertTrue(got[1]["decrypted"])

    def test_gc_rotation_period_msgs(self):
        # the room's m.room.encryption rotation_period_msgs is honoured
        room = self.alice.create_room(name="rotating", invite=[self.bot.user_id],
                                      encryption={"rotation_period_msgs": 2})
        self.alice.wait_joined(room, self.bot.user_id, timeout=20)
        self.bot.wait_idle(timeout=15)
        sessions = []
        for _ in range(5):
            _, r = self.ask("!ping", room=room)
            sessions.append(r["session_id"])
        bot_msgs = [x for x in self.alice.events(room) if x["sender"] == self.bot.user_id
                    and x["decrypted"]]
        per = {}
        for x in bot_msgs:
            per.setdefault(x["session_id"], 0)
            per[x["session_id"]] += 1
        self.assertGreaterEqual(len(set(sessions)), 2, sessions)
        self.assertLessEqual(max(per.values()), 2, per)

    # ---- hostile input ----------------------------------------------------------------------

    def test_i_garbage_ciphertext(self):
        mark = self.bot.log_mark()

        bad = self.alice.encrypt(self.room, {"msgtype": "m.text", "body": "!ping", "m.mentions": {}})
        bad["ciphertext"] = "AwgAEhA" + uuid.uuid4().hex + "garbage+/garbage"
        good = self.alice.encrypt(self.room, {"msgtype": "m.text", "body": "!ping", "m.mentions": {}})

        def send():
            return (self.alice.send_raw(self.room, "m.room.encrypted", bad),
                    self.alice.send_raw(self.room, "m.room.encrypted", good))
        bad, good = self.one_batch(send)
        self.alice.wait_reply(self.room, good, sender=self.bot.user_id, timeout=20)
        self.assert_no_reply(bad, wait=0.5)
        self.assertEqual(len(self.log_lines(mark, re.escape(bad) + r".*refused")), 1,
                         self.bot.log()[mark:][-3000:])

    def test_j_replayed_megolm_index(self):
        cmd, _ = self.ask("!ping")
        mark = self.bot.log_mark()

        good = self.alice.encrypt(self.room, {"msgtype": "m.text", "body": "!ping", "m.mentions": {}})

        def send():
            return (self.alice.send_raw(self.room, "m.room.encrypted",
                                        self.alice.sent[cmd]["content"]),
                    self.alice.send_raw(self.room, "m.room.encrypted", good))
        again, good = self.one_batch(send)
        self.alice.wait_reply(self.room, good, sender=self.bot.user_id, timeout=20)
        self.assert_no_reply(again, wait=0.5)
        self.assertEqual(len(self.replies(cmd)), 1)
        self.assertEqual(len(self.log_lines(mark, re.escape(again) + r".*refused")), 1,
                         self.bot.log()[mark:][-3000:])

    def hostile_olm(self, **lie):
        """An m.room_key for a fresh session over an Olm message that lies
        (lie: e2ee.Peer.olm_to_device overrides), then a command encrypted
        with that session and a good command, all in one batch: the Olm
        message is refused and logged once, the lying session's command is
        not answered, the good one is."""
        dev_id, _, _ = self.bot_device()
        mark = self.bot.log_mark()
        key, session = self.alice.room_key_content(self.room)

        _, olm_body = self.alice.olm_to_device(self.bot.user_id, dev_id, "m.room_key", key,
                                               send=False, **lie)
        sneaky = self.alice.megolm_event(self.room, session,
                                         {"msgtype": "m.text", "body": "!ping", "m.mentions": {}})
        good = self.alice.encrypt(self.room, {"msgtype": "m.text", "body": "!ping", "m.mentions": {}})

        def send():
            self.alice.send_to_device("m.room.encrypted", olm_body)
            return (self.alice.send_raw(self.room, "m.room.encrypted", sneaky),
                    self.alice.send_raw(self.room, "m.room.encrypted", good))
        sneaky, good = self.one_batch(send)
        self.alice.wait_reply(self.room, good, sender=self.bot.user_id, timeout=20)
        self.assert_no_reply(sneaky, wait=1.0)
        refused = self.log_lines(mark, r"refused a to-device message from " +
                                 re.escape(self.alice.user_id))
        self.assertEqual(len(refused), 1, self.bot.log()[mark:][-3000:])
        self.assertNotIn(key["session_key"], self.bot.log())

    def test_k_olm_for_another_recipient_key(self):
        # the ciphertext is for a curve25519 key that is not the bot's
        other = e2ee.olm.Account().identity_keys["curve25519"]
        self.hostile_olm(ciphertext_for=other)

    def test_l_olm_wrong_recipient_ed25519(self):
        other = e2ee.olm.Account().identity_keys["ed25519"]
        self.hostile_olm(recipient_ed25519=other)

    def test_m_olm_claiming_another_sender(self):
        self.hostile_olm(sender="@mallory:localhost")

    def test_n_olm_claiming_another_signing_key(self):
        other = e2ee.olm.Account().identity_keys["ed25519"]
        self.hostile_olm(keys_ed25519=other)

    def test_o_olm_garbage(self):
        self.hostile_olm(garbage=True)

    def test_p_forwarded_key_from_another_user(self):
        # m.forwarded_room_key is accepted only from the bot's own verified
        # devices: one from alice is ignored (logged once), its session
        # unusable, the batch goes on
        dev_id, _, _ = self.bot_device()
        mark = self.bot.log_mark()
        session = e2ee.olm.OutboundGroupSession()
        inbound = e2ee.olm.InboundGroupSession(session.session_key)
        fwd = {"algorithm": e2ee.MEGOLM, "room_id": self.room, "sender_key": self.alice.curve25519,
               "session_id": session.id, "session_key": inbound.export_session(0),
               "sender_claimed_ed25519_key": self.alice.ed25519,
               "forwarding_curve25519_key_chain": []}
        _, olm_body = self.alice.olm_to_device(self.bot.user_id, dev_id, "m.forwarded_room_key",
                                               fwd, send=False)
        sneaky = self.alice.megolm_event(self.room, session,
                                         {"msgtype": "m.text", "body": "!ping", "m.mentions": {}})
        good = self.alice.encrypt(self.room, {"msgtype": "m.text", "body": "!ping", "m.mentions": {}})

        def send():
            self.alice.send_to_device("m.room.encrypted", olm_body)
            return (self.alice.send_raw(self.room, "m.room.encrypted", sneaky),
                    self.alice.send_raw(self.room, "m.room.encrypted", good))
        sneaky_id, good_id = self.one_batch(send)
        self.alice.wait_reply(self.room, good_id, sender=self.bot.user_id, timeout=20)
        self.assert_no_reply(sneaky_id, wait=1.0)
        self.assertEqual(len(self.log_lines(mark, r"forwarded room key from " +
                                            re.escape(self.alice.user_id))), 1,
                         self.bot.log()[mark:][-3000:])

    def capture_forwards(self, peer):
        """Record every m.forwarded_room_key payload peer's nio decrypts (nio
        itself accepts forwards only from its own user's verified devices)."""
        got = []
        machine = peer.client.olm
        orig = machine._handle_forwarded_room_key_event

        def capture(sender, sender_key, payload):
            got.append((sender, sender_key, payload))
            return orig(sender, sender_key, payload)
        machine._handle_forwarded_room_key_event = capture
        return got

    def request_key(self, peer, raw, request_id):
        """peer asks the bot (nio's own key-request builder) for raw's key."""
        ev = e2ee.nio.MegolmEvent.from_dict(raw)
        msg = ev.as_key_request(self.bot.user_id, peer.client.device_id, request_id)
        peer.run(peer.client.to_device(msg, tx_id=uuid.uuid4().hex))

    def test_q_key_request_from_a_new_device_and_from_outside(self):
        # a bot reply alice's first device can read; alice logs in on a new
        # device afterwards, which asks the bot for that session's key
        cmd, r = self.ask("!ping")
        raw = self.alice.raw_event(self.room, r["event_id"]) | {"room_id": self.room}
        alice3 = self.peer("alice", device_id="ALICE3")
        got = self.capture_forwards(alice3)
        alice3.step(0)
        self.assertIsNone(alice3.decrypt_raw(raw), "the new device could read it already")
        mark = self.bot.log_mark()
        t0 = time.monotonic()
        self.request_key(alice3, raw, "rq-" + uuid.uuid4().hex)
        alice3.wait(lambda: bool(got), timeout=15, what="forwarded key")
        print(f"\nforwarded key after {time.monotonic() - t0:.1f} s", file=sys.stderr)
        sender, sender_key, payload = got[0]
        dev_id, dev, _ = self.bot_device()
        self.assertEqual(sender, self.bot.user_id)
        self.assertEqual(sender_key, dev["keys"][f"curve25519:{dev_id}"])
        c = payload["content"]
        self.assertEqual((c["room_id"], c["session_id"], c["algorithm"]),
                         (self.room, r["session_id"], e2ee.MEGOLM))
        self.assertEqual(c["sender_key"], dev["keys"][f"curve25519:{dev_id}"])
        self.assertEqual(c["sender_claimed_ed25519_key"], dev["keys"][f"ed25519:{dev_id}"])
        self.assertEqual(c["forwarding_curve25519_key_chain"], [])
        # the export decrypts the reply (from the index alice was given)
        sess = e2ee.olm.InboundGroupSession.import_session(c["session_key"])
        plain, _ = sess.decrypt(raw["content"]["ciphertext"])
        self.assertEqual(json.loads(plain)["content"]["body"], "pong")
        # and once nio holds it, the new device reads the reply
        imported = e2ee.nio.crypto.Olm._import_group_session(
            c["session_key"], c["sender_claimed_ed25519_key"], c["sender_key"], self.room, [])
        alice3.client.olm.inbound_group_store.add(imported)
        self.assertEqual(alice3.decrypt_raw(raw)["content"]["body"], "pong")
        self.assertEqual(len(self.log_lines(mark, r"forwarded the bot's room key .* " +
                                            re.escape(self.alice.user_id) + " device ALICE3")), 1)

        # someone not in the room asks: nothing is sent, one line says why
        erin = self.peer("erin")
        egot = self.capture_forwards(erin)
        erin.step(0)
        mark = self.bot.log_mark()
        self.request_key(erin, raw, "rq-" + uuid.uuid4().hex)
        self.bot.wait_log(r"key request from " + re.escape(erin.user_id) +
                          r" .*not answered: the user is not joined", timeout=15, since=mark)
        for _ in range(5):
            erin.step(200)
        self.assertEqual(egot, [])

    def test_qa_key_request_cancelled_before_the_answer(self):
        # a request and its cancellation in one batch: no answer
        cmd, r = self.ask("!ping")
        raw = self.alice.raw_event(self.room, r["event_id"]) | {"room_id": self.room}
        alice4 = self.peer("alice", device_id="ALICE4")
        got = self.capture_forwards(alice4)
        alice4.step(0)
        ev = e2ee.nio.MegolmEvent.from_dict(raw)
        msg = ev.as_key_request(self.bot.user_id, "ALICE4", "rq-cancelled")

        def send():
            alice4.run(alice4.client.to_device(msg, tx_id=uuid.uuid4().hex))
            cancel = {"action": "request_cancellation", "requesting_device_id": "ALICE4",
                      "request_id": "rq-cancelled"}
            alice4.send_to_device("m.room_key_request",
                                  {"messages": {self.bot.user_id: {"*": cancel}}})
        mark = self.bot.log_mark()
        self.one_batch(send)
        self.bot.wait_idle(timeout=15)
        for _ in range(10):
            alice4.step(200)
        self.assertEqual(got, [])
        self.assertEqual(self.log_lines(mark, r"forwarded the bot's room key"), [])
        # the bot was listening: a new request from the same device is answered
        alice4.run(alice4.client.to_device(
            ev.as_key_request(self.bot.user_id, "ALICE4", "rq-again"), tx_id=uuid.uuid4().hex))
        alice4.wait(lambda: bool(got), timeout=15, what="forwarded key")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0][2]["content"]["session_id"], r["session_id"])

    # ---- the log --------------------------------------------------------------------------

    def test_z_log_has_no_plaintext_or_keys(self):
        self.ask(f"!ping {MARK}")
        log = self.bot.log()
        self.assertIn("encryption", log)                        # it did log the work
        self.assertNotIn(MARK, log, "plaintext of an encrypted event in the log (info)")
        secrets = set()
        for p in self.peers:
            secrets |= p.key_material
        self.assertTrue(secrets)
        for k in secrets:
            self.assertNotIn(k, log, "a Megolm session key in the log")
            self.assertNotIn(k[:32], log, "part of a Megolm session key in the log")
        with open(self.bot.db_path + ".pickle-key", encoding="utf-8") as f:
            pk = f.read().strip()
        self.assertGreaterEqual(len(pk), 16)
        self.assertNotIn(pk, log, "the pickle key in the log")


if __name__ == "__main__":
    fixtures.main(verbosity=2)
