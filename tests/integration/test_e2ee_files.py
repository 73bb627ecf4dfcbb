#!/usr/bin/python3
"""Files in an encrypted room: the experiment export is uploaded encrypted
(the spec's EncryptedFile: AES-256-CTR, SHA-256 of the ciphertext, a JWK) and
posted as an encrypted m.file; a real E2EE member (tests/lib/e2ee.py,
matrix-nio) downloads it, checks the hash and decrypts it with nio's
decrypt_attachment; the homeserver never holds the plaintext.

Run with Debian's python3: /usr/bin/python3 tests/integration/test_e2ee_files.py"""

import base64
import hashlib
import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx    # noqa: E402
import fixtures  # noqa: E402
import e2ee  # noqa: E402
from nio.crypto.attachments import decrypt_attachment  # noqa: E402

MARK = "zq" + uuid.uuid4().hex[:12]


def unb64(s):
    return base64.b64decode(s + "=" * (-len(s) % 4))


class EncryptedFiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), encryption=True, config_extra={"rate_limit_per_min": 0})
        cls.bot.start()
        cls.alice = e2ee.Peer(cls.hs, "alice")
        cls.room = cls.alice.create_room(name="Encrypted exports", invite=[cls.bot.user_id])
        cls.alice.wait_joined(cls.room, cls.bot.user_id, timeout=20)
        cls.bot.wait_idle(timeout=20)

    @classmethod
    def tearDownClass(cls):
        cls.bot.stop()
        cls.alice.close()
        cls.hs.stop()

    def ask(self, text):
        cmd = self.alice.send_text(self.room, text)
        return self.alice.wait_reply(self.room, cmd, sender=self.bot.user_id, timeout=20)

    def test_export_is_an_encrypted_file(self):
        self.assertIn("C-1", self.ask(f'!challenge new "Exports {MARK}"')["content"]["body"])
        r = self.ask(f'!exp new C-1 "Pilot {MARK}" "We believe texting will result in fewer '
                     f'missed visits. We will know when misses fall below 10%."')
        self.assertIn("Recorded E-", r["content"]["body"])
        r = self.ask("!exp export --format csv")
        self.assertIn("Exported", r["content"]["body"])
        ev = self.alice.wait_event(
            self.room, lambda x: x["sender"] == self.bot.user_id and x["decrypted"] and
            x["content"].get("msgtype") == "m.file", timeout=20, what="the m.file")
        raw = self.alice.raw_event(self.room, ev["event_id"])
        self.assertEqual(raw["type"], "m.room.encrypted")       # the event itself, too
        c = ev["content"]
        self.assertNotIn("url", c, "an unencrypted url next to the EncryptedFile")
        f = c["file"]
        self.assertEqual(f["v"], "v2")
        self.assertTrue(f["url"].startswith("mxc://"))
        jwk = f["key"]
        self.assertEqual((jwk["kty"], jwk["alg"], jwk["ext"]), ("oct", "A256CTR", True))
        self.assertTrue({"encrypt", "decrypt"} <= set(jwk["key_ops"]))
        self.assertEqual(len(unb64(jwk["k"].replace("-", "+").replace("_", "/"))), 32)
        iv = unb64(f["iv"])
        self.assertEqual(len(iv), 16)
        self.assertEqual(iv[8:], b"\0" * 8, "the counter half of the IV starts at 0")
        ciphertext = mx.download(self.alice.mx, f["url"])
        self.assertEqual(hashlib.sha256(ciphertext).digest(), unb64(f["hashes"]["sha256"]))
        self.assertNotIn(MARK.encode(), ciphertext, "the server holds the plaintext")
        plain = decrypt_attachment(ciphertext, jwk["k"], f["hashes"]["sha256"], f["iv"])
        text = plain.decode("utf-8-sig")
        self.assertIn(f"Pilot {MARK}", text)
        self.assertEqual(c["info"]["size"], len(plain))
        self.assertTrue(c["info"]["mimetype"].startswith("text/csv"))
        # a tampered download fails the hash check
        with self.assertRaises(e2ee.nio.EncryptionError):
            decrypt_attachment(ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]), jwk["k"],
                               f["hashes"]["sha256"], f["iv"])


if __name__ == "__main__":
    fixtures.main(verbosity=2)
