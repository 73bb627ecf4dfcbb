#!/usr/bin/env python3
"""/healthz and /metrics of the real binary, read by a real consumer.

The bot runs against the local homeserver with metrics_listen set.  Every
scrape is parsed by Debian's python3-prometheus-client (its text-format
parser must accept every line; the test fails, never skips, when the package
is missing), and each counter is checked to move when its event happens:
commands by family and outcome, sends ok / retried (429 with its wait, 5xx) /
dropped (403), batches and events, scheduled jobs and the scheduler lag, the
outbox gauges, database sizes, the transport and its reconnects.  /healthz
answers 200, then 503 with a one-line reason while the outbox is held up by
a long rate limit and while the homeserver is down, and 200 again after.
Runs standalone (python3 test_metrics.py) or under CTest."""

import calendar
import os
import sys
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Debian's package installs for /usr/bin/python3 only; a python3 found
    # first on PATH (pyenv, venv) does not see it
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        sys.exit("test_metrics: python3-prometheus-client is not installed (bash .ci/deps "
                 "installs it); this test needs a real Prometheus parser")


def utc(y, mo, d, h, mi):
    return calendar.timegm((y, mo, d, h, mi, 0))


def body(ev):
    return ev["content"].get("body", "")


def get(url, timeout=5):
    """-> (status, content-type, text)"""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver()
        cls.addClassCleanup(cls.hs.stop)
        cls.alice = cls.hs.register("alice")
        cls.port = mx.free_port()
        cls.base = f"http://127.0.0.1:{cls.port}"
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={
            "metrics_listen": str(cls.port),        # a bare port: loopback only
            "sync_timeout_ms": 1000, "websocket_ping_s": 3,
            "health_max_sync_age_s": 5, "health_max_outbox_age_s": 5,
            "rate_limit_per_min": 1000, "log_format": "json"})
        cls.bot.set_clock(utc(2026, 11, 18, 10, 0))
        cls.bot.start()
        cls.addClassCleanup(cls.bot.stop)
        cls.room = cls.alice.create_room(name="metrics", invite=[cls.bot.user_id])
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)
        cls.bot.wait_idle(timeout=15)

    # ---- helpers ----------------------------------------------------------

    def scrape(self):
        """-> {(sample name, frozenset(labels)): value}, after checking that the
        parser took every sample line and every family has HELP and TYPE."""
        status, ctype, text = get(self.base + "/metrics")
        self.assertEqual(status, 200, text)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        samples = {}
        families = list(text_string_to_metric_families(text))
        for fam in families:
            self.assertTrue(fam.name.startswith("tlbot_"), fam.name)
            self.assertTrue(fam.documentation, f"{fam.name} has no HELP")
            self.assertIn(fam.type, ("counter", "gauge"), fam.name)
            for s in fam.samples:
                if fam.type == "counter":
                    self.assertTrue(s.name.endswith("_total"), s.name)
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
        self.assertEqual(len(lines), len(samples), "a sample line was not parsed (or doubled)")
        helps = [ln for ln in text.splitlines() if ln.startswith("# HELP ")]
        types = [ln for ln in text.splitlines() if ln.startswith("# TYPE ")]
        self.assertEqual(len(helps), len(families))
        self.assertEqual(len(types), len(families))
        return samples

    @staticmethod
    def val(m, name, **labels):
        return m.get((name, frozenset(labels.items())), 0.0)

    @staticmethod
    def total(m, name, **labels):
        """Sum over the samples of name whose labels include labels."""
        want = set(labels.items())
        return sum(v for (n, ls), v in m.items() if n == name and want <= set(ls))

    def wait_metric(self, pred, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            m = self.scrape()
            if pred(m):
                return m
            if time.monotonic() > deadline:
                self.fail(f"metric condition not met after {timeout}s: "
                          + "\n".join(f"{n}{dict(ls)} {v}" for (n, ls), v in sorted(
                              m.items(), key=lambda kv: kv[0][0]) if "sends" in n
                              or "commands" in n or "rate" in n or "jobs" in n))
            time.sleep(0.2)

    def wait_health(self, code, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            status, _, text = get(self.base + "/healthz")
            if status == code:
                return text
            if time.monotonic() > deadline:
                self.fail(f"/healthz stayed {status} ({text.strip()}), wanted {code}")
            time.sleep(0.2)

    def ask(self, text):
        ev = self.alice.send_text(self.room, text)
        return self.alice.wait_reply(self.room, ev, timeout=20)

    # ---- tests (in name order) ---------------------------------------------------

    def test_1_exposition(self):
        m = self.scrape()
        for name in ("tlbot_build_info", "tlbot_start_time_seconds",
                     "tlbot_sync_last_success_timestamp_seconds", "tlbot_sync_lag_seconds",
                     "tlbot_batches_applied_total", "tlbot_events_applied_total",
                     "tlbot_outbox_depth", "tlbot_outbox_oldest_age_seconds",
                     "tlbot_database_size_bytes", "tlbot_database_wal_size_bytes",
                     "tlbot_rooms", "tlbot_transport_reconnects_total",
                     "tlbot_rate_limited_total", "tlbot_rate_limited_wait_seconds_total"):
            self.assertIn(name, {n for n, _ in m}, name)
        # every family and job kind is there from the start, at zero
        self.assertIn(("tlbot_commands_total",
                       frozenset({"family": "standup", "outcome": "refused"}.items())), m)
        self.assertIn(("tlbot_jobs_total",
                       frozenset({"kind": "remind.deliver", "outcome": "done"}.items())), m)
        # encryption is on by default: the crypto module's tables are counted
        if self.bot.config.get("encryption", "on") == "on":
            self.assertIn(("tlbot_crypto_sessions", frozenset({"kind": "olm"}.items())), m)
            self.assertIn(("tlbot_crypto_sessions", frozenset({"kind": "megolm_inbound"}.items())),
                          m)
            self.assertIn(("tlbot_undecryptable_events", frozenset()), m)
        self.assertGreater(self.val(m, "tlbot_database_size_bytes"), 0)
        self.assertGreaterEqual(self.val(m, "tlbot_rooms"), 1)
        self.assertLess(self.val(m, "tlbot_sync_lag_seconds"), 5)
        want = "websocket" if self.bot.config.get("transport") == "websocket" else "sync"
        self.assertEqual(self.total(m, "tlbot_transport_info", transport=want), 1)
        # only GET, only the two paths
        self.assertEqual(get(self.base + "/nothing")[0], 404)
        req = urllib.request.Request(self.base + "/metrics", data=b"x", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=5)
        self.assertEqual(cm.exception.code, 405)

    def test_2_commands_and_sends(self):
        m0 = self.scrape()
        self.assertEqual(body(self.ask("!ping")), "pong")
        self.ask("!nosuchcommand")
        self.ask("!notify maybe")
        m = self.wait_metric(lambda m: self.val(m, "tlbot_sends_total", result="ok", errcode="")
                             >= self.val(m0, "tlbot_sends_total", result="ok", errcode="") + 3)
        d = lambda name, **kw: self.val(m, name, **kw) - self.val(m0, name, **kw)  # noqa: E731
        self.assertEqual(d("tlbot_commands_total", family="ping", outcome="ok"), 1)
        self.assertEqual(d("tlbot_commands_total", family="unknown", outcome="refused"), 1)
        self.assertEqual(d("tlbot_commands_total", family="notify", outcome="refused"), 1)
        self.assertEqual(d("tlbot_commands_total", family="notify", outcome="ok"), 0)
        self.assertGreaterEqual(d("tlbot_batches_applied_total"), 1)
        self.assertGreaterEqual(d("tlbot_events_applied_total"), 3)

        # a 429 with retry_after_ms: one retry, counted with its wait
        self.hs.fault("status", path="/send/", method="PUT", user=self.bot.user_id, status=429,
                      errcode="M_LIMIT_EXCEEDED", retry_after_ms=700, count=1)
        self.ask("!ping")
        m1 = self.scrape()
        self.assertEqual(self.val(m1, "tlbot_rate_limited_total")
                         - self.val(m, "tlbot_rate_limited_total"), 1)
        self.assertAlmostEqual(self.val(m1, "tlbot_rate_limited_wait_seconds_total")
                               - self.val(m, "tlbot_rate_limited_wait_seconds_total"), 0.7,
                               places=3)
        self.assertEqual(self.val(m1, "tlbot_sends_total", result="retry",
                                  errcode="M_LIMIT_EXCEEDED")
                         - self.val(m, "tlbot_sends_total", result="retry",
                                    errcode="M_LIMIT_EXCEEDED"), 1)
        # a 502: retried too
        self.hs.fault("status", path="/send/", method="PUT", user=self.bot.user_id, status=502, count=1)
        self.ask("!ping")
        m2 = self.scrape()
        self.assertEqual(self.total(m2, "tlbot_sends_total", result="retry")
                         - self.total(m1, "tlbot_sends_total", result="retry"), 1)
        # a 403: dropped for good, by errcode
        self.hs.fault("status", path="/send/", method="PUT", user=self.bot.user_id, status=403, errcode="M_FORBIDDEN",
                      count=1)
        self.alice.send_text(self.room, "!ping")
        self.wait_metric(lambda m: self.val(m, "tlbot_sends_total", result="failed",
                                            errcode="M_FORBIDDEN")
                         - self.val(m2, "tlbot_sends_total", result="failed",
                                    errcode="M_FORBIDDEN") == 1)

    def test_3_jobs(self):
        r = self.ask('!remind room at 16:00 "metrics reminder"')
        self.assertIn("16:00", body(r))
        m0 = self.scrape()
        self.bot.set_clock(utc(2026, 11, 18, 16, 0) + 3)
        self.alice.wait_for(self.room, lambda e: "metrics reminder" in body(e)
                            and e["sender"] == self.bot.user_id, timeout=20)
        m = self.wait_metric(lambda m: self.val(m, "tlbot_jobs_total", kind="remind.deliver",
                                                outcome="done")
                             == self.val(m0, "tlbot_jobs_total", kind="remind.deliver",
                                         outcome="done") + 1)
        self.assertGreaterEqual(self.val(m, "tlbot_scheduler_lag_seconds"), 0)
        self.assertIn(("tlbot_scheduler_lag_seconds", frozenset()), m)

    def test_4_health(self):
        text = self.wait_health(200)
        self.assertTrue(text.startswith("ok: last sync"), text)
        self.assertEqual(text.count("\n"), 1)
        # the outbox held up by a long rate limit: 503, then drained
        self.hs.fault("status", path="/send/", method="PUT", user=self.bot.user_id, status=429,
                      errcode="M_LIMIT_EXCEEDED", retry_after_ms=9000, count=1)
        ev = self.alice.send_text(self.room, "!ping")
        text = self.wait_health(503, timeout=15)
        self.assertIn("outbox not draining", text)
        m = self.scrape()
        self.assertGreaterEqual(self.val(m, "tlbot_outbox_depth"), 1)
        self.assertGreater(self.val(m, "tlbot_outbox_oldest_age_seconds"), 5)
        self.alice.wait_reply(self.room, ev, timeout=20)
        self.wait_health(200)
        # the homeserver gone: stalled, then healthy again once it is back.
        # Behind tlbot-wsgateway the bot's stream ends at the gateway, which
        # stays up and answers keepalives while its upstream is down (and
        # pushes only non-empty updates): there /healthz says the stream is
        # alive, and the gateway is watched on its own.
        if self.bot.config.get("websocket_url"):
            return
        m0 = self.scrape()
        self.hs.stop(graceful=False)
        text = self.wait_health(503, timeout=20)
        self.assertIn("stalled: last sync", text)
        self.hs.start()
        self.wait_health(200, timeout=40)
        if self.bot.config.get("transport") == "websocket":
            m = self.scrape()
            self.assertGreaterEqual(self.val(m, "tlbot_transport_reconnects_total")
                                    - self.val(m0, "tlbot_transport_reconnects_total"), 1)

    def test_5_json_log(self):
        # log_format: json: every line the bot wrote is one JSON object with
        # the six fields, and neither its password nor its token is there
        import json
        token = None
        with open(self.bot.log_path, encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith("==== ")]
        self.assertGreater(len(lines), 10)
        rooms = 0
        for ln in lines:
            o = json.loads(ln)
            self.assertEqual(set(o), {"time", "level", "module", "room", "event", "message"}, ln)
            self.assertRegex(o["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(o["level"], ("error", "warn", "info", "debug", "fatal"))
            rooms += o["room"] == self.room
        self.assertGreater(rooms, 0)
        import sqlite3
        with sqlite3.connect(self.bot.db_path) as db:
            row = db.execute("SELECT value FROM kv WHERE key = 'access_token'").fetchone()
            token = row[0] if row else None
        text = "\n".join(lines)
        self.assertNotIn(self.bot.password, text)
        if token:
            self.assertNotIn(token, text)


if __name__ == "__main__":
    fixtures.main(verbosity=2)
