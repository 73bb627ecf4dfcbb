#!/usr/bin/python3
"""The bot's device is cross-signed, as clients that only trust cross-signed
devices (MSC4153) need, checked by a real E2EE peer (tests/lib/e2ee.py) with
libolm's Ed25519 verify on what /keys/query gives it:

  * master -> self-signing -> the bot's device (and the device's own
    signature), the user-signing key visible to the bot only;
  * the keys survive a restart (a master key that changed would make every
    client warn about the bot);
  * the upload went through user-interactive auth (the local homeserver asks
    for it, as servers before spec v1.11 and on any key change do), and also
    works against a server that skips it for the first upload (MSC3967);
  * with an access-token-only configuration (no password for UIA) the bot
    says once in the log what to do, and still runs.

Run with Debian's python3: /usr/bin/python3 tests/integration/test_e2ee_cross_signing.py"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx    # noqa: E402
import fixtures  # noqa: E402
import e2ee  # noqa: E402

UPLOAD = "POST /_matrix/client/v3/keys/device_signing/upload"


def cross_signing(peer, bot_user):
    """-> (device id, device keys, master, self-signing, the /keys/query answer)"""
    q = peer.keys_query(bot_user)
    devs = q["device_keys"].get(bot_user, {})
    assert len(devs) <= 1, devs
    dev_id, dev = next(iter(devs.items())) if devs else (None, None)   # None: not uploaded yet
    return dev_id, dev, q["master_keys"].get(bot_user), q["self_signing_keys"].get(bot_user), q


class CrossSigning(unittest.TestCase):
    def start(self, hs, **extra):
        bot = mx.Bot(hs, mx.tmpdir(), encryption=True, config_extra=dict({"rate_limit_per_min": 0}, **extra))
        bot.start()
        self.addCleanup(bot.stop)
        return bot

    def peer_with_bot(self, hs, bot):
        alice = e2ee.Peer(hs, "alice")
        self.addCleanup(alice.close)
        room = alice.create_room(invite=[bot.user_id])
        alice.wait_joined(room, bot.user_id, timeout=20)
        return alice, room

    def wait_master(self, alice, bot, timeout=20):
        def ok():
            dev_id, dev, master, ssk, _ = cross_signing(alice, bot.user_id)
            # the whole chain is there: device keys, master, SSK, the device signed
            return dev is not None and master is not None and ssk is not None and any(
                k != f"ed25519:{dev_id}" for k in dev.get("signatures", {}).get(bot.user_id, {}))
        alice.wait(ok, timeout, "the bot's cross-signing keys and device signature")

    def assert_chain(self, alice, bot_user):
        dev_id, dev, master, ssk, q = cross_signing(alice, bot_user)
        self.assertIsNotNone(master, "no master key")
        self.assertIsNotNone(ssk, "no self-signing key")
        self.assertEqual(master["usage"], ["master"])
        self.assertIn("self_signing", ssk["usage"])
        (mkid, mpub), = master["keys"].items()
        (skid, spub), = ssk["keys"].items()
        self.assertEqual((mkid, skid), (f"ed25519:{mpub}", f"ed25519:{spub}"))
        ed = dev["keys"][f"ed25519:{dev_id}"]
        self.assertTrue(e2ee.ed25519_ok(dev, bot_user, f"ed25519:{dev_id}", ed),
                        "device keys not self-signed")
        self.assertTrue(e2ee.ed25519_ok(ssk, bot_user, mkid, mpub), "master does not sign SSK")
        self.assertTrue(e2ee.ed25519_ok(dev, bot_user, skid, spub), "SSK does not sign the device")
        forged = dict(dev, keys=dict(dev["keys"], **{f"curve25519:{dev_id}": "A" * 43}))
        self.assertFalse(e2ee.ed25519_ok(forged, bot_user, skid, spub))
        self.assertEqual(q["user_signing_keys"], {}, "another user sees the bot's USK")
        return master, ssk

    def test_chain_uia_and_restart(self):
        hs = mx.Homeserver()
        self.addCleanup(hs.stop)
        bot = self.start(hs)
        alice, room = self.peer_with_bot(hs, bot)
        self.wait_master(alice, bot)
        master, ssk = self.assert_chain(alice, bot.user_id)
        # through UIA: the homeserver answered 401 first, then accepted
        self.assertGreaterEqual(hs.request_count("POST", UPLOAD.split(" ", 1)[1], bot.user_id), 2)
        # the bot sees its own user-signing key
        botuser = hs.login("tlbot", "botpass")
        usk = botuser.api("POST", "/keys/query", {"device_keys": {bot.user_id: []}})
        (mkid, mpub), = master["keys"].items()
        self.assertTrue(e2ee.ed25519_ok(usk["user_signing_keys"][bot.user_id], bot.user_id,
                                        mkid, mpub), "master does not sign USK")
        # restarted (and killed): the same keys, no new upload
        n = hs.request_count("POST", UPLOAD.split(" ", 1)[1], bot.user_id)
        bot.kill()
        bot.start()
        cmd = alice.send_text(room, "!ping")
        alice.wait_reply(room, cmd, sender=bot.user_id, timeout=20)
        again = self.assert_chain(alice, bot.user_id)
        self.assertEqual(again, (master, ssk), "the cross-signing keys changed over a restart")
        self.assertEqual(hs.request_count("POST", UPLOAD.split(" ", 1)[1], bot.user_id), n)

    def test_server_without_uia_for_the_first_upload(self):
        hs = mx.Homeserver()
        self.addCleanup(hs.stop)
        hs.api("POST", "/_test/e2ee", {"uia_exempt_first_upload": True})
        bot = self.start(hs)
        alice, _ = self.peer_with_bot(hs, bot)
        self.wait_master(alice, bot)
        self.assert_chain(alice, bot.user_id)

    def test_token_only_says_what_to_do(self):
        hs = mx.Homeserver()
        self.addCleanup(hs.stop)
        hs.ensure_user("tlbot", "botpass")
        tok = hs.login("tlbot", "botpass", device_id="TOKENDEV")
        bot = self.start(hs, password=None, access_token=tok.token, device_id="TOKENDEV")
        alice, room = self.peer_with_bot(hs, bot)
        cmd = alice.send_text(room, "!ping")
        alice.wait_reply(room, cmd, sender=bot.user_id, timeout=20)   # still works, encrypted
        bot.wait_idle(timeout=15)
        lines = [ln for ln in bot.log().splitlines() if re.search(r"(?i)cross-?signing", ln)]
        self.assertEqual(len(lines), 1, lines)
        self.assertIsNotNone(cross_signing(alice, bot.user_id)[1])   # device keys, yes
        self.assertIsNone(cross_signing(alice, bot.user_id)[2])      # cross-signing, no
        self.assertEqual(hs.request_count("POST", UPLOAD.split(" ", 1)[1], bot.user_id), 0)


if __name__ == "__main__":
    fixtures.main(verbosity=2)
