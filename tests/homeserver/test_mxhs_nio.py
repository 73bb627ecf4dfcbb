#!/usr/bin/python3
"""mxhs against a real E2EE client: two matrix-nio devices (tests/lib/e2ee.py)
talk Olm and Megolm through the local test homeserver, so its key, claim,
query, to-device and device-list endpoints are known to work for a client that
is not ours before the bot's tests rely on them.
Run: /usr/bin/python3 tests/homeserver/test_mxhs_nio.py"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx    # noqa: E402
import fixtures  # noqa: E402
import e2ee  # noqa: E402


class TestNioPeers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()

    @classmethod
    def tearDownClass(cls):
        cls.hs.stop()

    def test_megolm_between_two_nio_clients(self):
        alice = e2ee.Peer(self.hs, "alice")
        bob = e2ee.Peer(self.hs, "bob")
        room = alice.create_room(invite=[bob.user_id])
        bob.step(0)
        bob.join(room)
        alice.wait_joined(room, bob.user_id)
        e1 = alice.send_text(room, "hello bob")
        got = bob.wait_event(room, lambda r: r["event_id"] == e1 and r["decrypted"])
        self.assertEqual(got["content"]["body"], "hello bob")
        self.assertEqual(got["session_id"], alice.sent[e1]["session_id"])
        raw = bob.raw_event(room, e1)
        self.assertEqual(raw["type"], "m.room.encrypted")
        self.assertNotIn("hello", str(raw))
        # a reply, Element-shaped: the relation in the cleartext only
        r1 = bob.send_text(room, "hi alice", reply_to=e1)
        rep = alice.wait_reply(room, e1, sender=bob.user_id)
        self.assertEqual(rep["event_id"], r1)
        self.assertEqual(bob.raw_event(room, r1)["content"]["m.relates_to"],
                         {"m.in_reply_to": {"event_id": e1}})
        # a second device of bob gets the keys of alice's next session
        bob2 = e2ee.Peer(self.hs, "bob", device_id="BOB2")
        alice.step(0)
        alice.refresh_devices(bob.user_id)
        self.assertIn("BOB2", alice.devices(bob.user_id))
        alice.rotate(room)
        e2 = alice.send_text(room, "to both devices")
        self.assertNotEqual(alice.sent[e2]["session_id"], alice.sent[e1]["session_id"])
        for p in (bob, bob2):
            got = p.wait_event(room, lambda r: r["event_id"] == e2 and r["decrypted"])
            self.assertEqual(got["content"]["body"], "to both devices")
        # the key held back by the homeserver arrives later: decrypted then
        alice.rotate(room)
        self.hs.api("POST", "/_test/to_device/hold", {"user": bob.user_id,
                                                      "type": "m.room.encrypted"})
        e3 = alice.send_text(room, "late key")
        bob.step(0)
        rec = bob.find(room, lambda r: r["event_id"] == e3)
        self.assertTrue(rec and not rec[0]["decrypted"])
        self.hs.api("POST", "/_test/to_device/release", {})
        got = bob.wait_event(room, lambda r: r["event_id"] == e3 and r["decrypted"])
        self.assertEqual(got["content"]["body"], "late key")
        for p in (alice, bob, bob2):
            p.close()


if __name__ == "__main__":
    fixtures.main(verbosity=1)
