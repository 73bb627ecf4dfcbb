#!/usr/bin/env python3
"""Disk trouble: the bot's database on a small tmpfs that fills up while the
bot runs, and on a filesystem that is read-only when the bot starts (a
tmpfs cannot be remounted read-only while the bot holds files open for
writing).  In both: the bot stops taking commands with a clear log line,
the database stays intact (PRAGMA integrity_check), and once space (or
write access) returns every command sent meanwhile is answered exactly
once.  Needs root (mount -t tmpfs); skipped with a message otherwise.
Prints: commands, lost, duplicated, recovery time."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import body, count_replies, db_ro, figures, mx  # noqa: E402
import fixtures  # noqa: E402
from fixtures import Asks  # noqa: E402


def mount_tmpfs(path, size):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tlbot-test", path],
                       capture_output=True, text=True)
    return r.returncode == 0, (r.stderr or r.stdout).strip()


def remount(path, mode):
    r = subprocess.run(["mount", "-o", f"remount,{mode}", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"remount {mode} {path}: {r.stderr.strip()}")


def fill(path):
    """Fill the filesystem of path to the last byte; -> the filler's path."""
    filler = os.path.join(path, "filler")
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


class Disk(Asks, unittest.TestCase):
    def setUp(self):
        self.mnt = mx.tmpdir("tlbot-disk-")
        if os.geteuid() != 0:
            self.skipTest("test_disk needs root to mount a tmpfs; skipped")
        ok, err = mount_tmpfs(self.mnt, "3m")
        if not ok:
            self.skipTest(f"cannot mount a tmpfs here ({err}); skipped")
        self.addCleanup(self.unmount)
        self.hs = mx.Homeserver()
        self.addCleanup(self.hs.stop)
        self.alice = self.hs.register("alice")
        workdir = mx.tmpdir()
        self.bot = mx.Bot(self.hs, workdir, config_extra={
            "database": os.path.join(self.mnt, "tlbot.db"), "rate_limit_per_min": 0})
        self.bot.db_path = self.bot.config["database"]
        self.addCleanup(self.bot.stop)

    def unmount(self):
        if self.bot.alive():
            self.bot.stop()
        subprocess.run(["mount", "-o", "remount,rw", self.mnt], capture_output=True)
        subprocess.run(["umount", self.mnt], capture_output=True)

    def join(self):
        self.bot.start()
        self.room = self.alice.create_room(name="disk", invite=[self.bot.user_id])
        self.alice.wait_membership(self.room, self.bot.user_id, "join", timeout=20)

    def integrity(self, immutable=False):
        db = db_ro(self.bot.db_path, immutable)
        try:
            return db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()

    def wait_answered(self, evs, timeout):
        t0 = time.monotonic()
        while True:
            lost, _ = count_replies(self.hs, None, self.bot.user_id, [(self.room, e) for e in evs])
            if not lost:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                self.fail(f"{len(lost)} of {len(evs)} unanswered after {timeout} s; log tail:\n"
                          f"{self.bot.log()[-3000:]}")
            time.sleep(0.2)

    def test_full_filesystem(self):
        self.join()
        for i in range(3):
            self.assertIn("Created C-", body(self.ask(f'!challenge new "before the disk filled {i}"')))
        self.bot.wait_idle()
        mark = self.bot.log_mark()
        filler = fill(self.mnt)
        st = os.statvfs(self.mnt)
        self.assertLess(st.f_bavail * st.f_frsize, 8192)
        evs = [self.alice.send_text(self.room, f'!challenge new "while full {i}" --desc "{"x" * 3000}"')
               for i in range(8)]
        evs.append(self.alice.send_text(self.room, "!ping"))
        m = self.bot.wait_log(r"(?i)(database or disk is full|no space|disk is full)", timeout=30,
                              since=mark)
        line = self.bot.log()[m.start():].split("\n", 1)[0]
        time.sleep(3)
        answered_while_full = len(evs) - len(count_replies(self.hs, None, self.bot.user_id,
                                                           [(self.room, e) for e in evs])[0])
        self.assertTrue(self.bot.alive(), "the bot died on a full disk")
        self.assertEqual(self.integrity(), "ok")
        os.remove(filler)
        recovery = self.wait_answered(evs, 90)
        self.bot.wait_idle()
        time.sleep(0.5)
        lost, dup = count_replies(self.hs, None, self.bot.user_id, [(self.room, e) for e in evs])
        db = db_ro(self.bot.db_path)
        titles = [t for (t,) in db.execute("SELECT title FROM challenges ORDER BY id")]
        db.close()
        self.assertEqual(self.integrity(), "ok")
        figures("disk: full filesystem", commands=len(evs), answered_while_full=answered_while_full,
                lost=len(lost), duplicated=len(dup), recovery_s=round(recovery, 1),
                log_line=repr(line[:160]))
        self.assertEqual((lost, dup), ([], []))
        for i in range(8):
            self.assertEqual(titles.count(f"while full {i}"), 1, titles)
        self.assertEqual(len(titles), 11)
        self.assertLess(recovery, 65)

    def test_read_only_filesystem_at_start(self):
        self.join()
        self.assertIn("Created C-1", body(self.ask('!challenge new "before read-only"')))
        self.bot.wait_idle()
        self.bot.stop()
        remount(self.mnt, "ro")
        mark = self.bot.log_mark()
        evs = [self.alice.send_text(self.room, f'!challenge new "while read-only {i}"') for i in range(3)]
        self.bot.start()
        m = self.bot.wait_log(r"(?i)(read-only|readonly|cannot open the database|attempt to write)",
                              timeout=30, since=mark)
        line = self.bot.log()[m.start():].split("\n", 1)[0]
        time.sleep(2)
        lost, _ = count_replies(self.hs, None, self.bot.user_id, [(self.room, e) for e in evs])
        self.assertEqual(len(lost), len(evs), "answered on a read-only database?")
        self.assertEqual(self.integrity(immutable=True), "ok")
        self.bot.stop()
        remount(self.mnt, "rw")
        self.bot.start()
        recovery = self.wait_answered(evs, 60)
        self.bot.wait_idle()
        time.sleep(0.5)
        lost, dup = count_replies(self.hs, None, self.bot.user_id, [(self.room, e) for e in evs])
        db = db_ro(self.bot.db_path)
        titles = [t for (t,) in db.execute("SELECT title FROM challenges ORDER BY id")]
        db.close()
        figures("disk: read-only filesystem", commands=len(evs), lost=len(lost), duplicated=len(dup),
                recovery_s=round(recovery, 1), log_line=repr(line[:160]))
        self.assertEqual((lost, dup), ([], []))
        self.assertEqual(titles, ["before read-only"] + [f"while read-only {i}" for i in range(3)])
        self.assertEqual(self.integrity(), "ok")


if __name__ == "__main__":
    fixtures.main(verbosity=2)
