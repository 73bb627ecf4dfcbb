#!/usr/bin/env python3
"""tlbot-wsgateway in front of the local test homeserver: the bot runs over
bot -> gateway -> mxhs (!ping answered, the reply a REST PUT at the
homeserver with the request id as txnId), the draft's ping method, a token
the homeserver refuses is refused at the handshake (and `auto` then falls
back to /sync), a gateway restart under the bot (replies exactly once), a
slow consumer disconnected while other connections carry on, and SIGTERM."""

import base64
import collections
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402

STREAM = "/_matrix/client/unstable/stream"
SEND = "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"


def gateway_binary():
    b = os.environ.get("TLBOT_WSGATEWAY_BIN")
    if not b:
        b = os.path.join(os.path.dirname(mx.Bot.binary()), "tlbot-wsgateway")
    return b


class Gateway:
    """Runs tlbot-wsgateway against hs on a fixed port (restart keeps it)."""

    def __init__(self, hs, *args):
        self.hs, self.args = hs, list(args)
        self.port = mx.free_port()
        self.log_path = os.path.join(mx.tmpdir("gw-"), "gateway.log")
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}"

    def start(self):
        deadline = time.monotonic() + 10
        while True:
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [gateway_binary(), "--upstream", self.hs.url, "--listen",
                     f"127.0.0.1:{self.port}", "--log-level", "debug"] + self.args,
                    stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True)
            line = self.proc.stdout.readline()
            if line.startswith("LISTENING"):
                return
            self.proc.wait()
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start: {self.log()[-2000:]}")
            time.sleep(0.2)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
        return self.proc.returncode

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_log(self, regex, timeout=10):
        import re
        deadline = time.monotonic() + timeout
        while not re.search(regex, self.log()):
            if time.monotonic() > deadline:
                raise mx.WaitTimeout(f"{regex!r} not in gateway log:\n{self.log()[-3000:]}")
            time.sleep(0.05)


class RawWS:
    """A minimal WebSocket client (RFC 6455) for probing the gateway."""

    def __init__(self, port, token, since=None, rcvbuf=None):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        qs = "?" + urllib.parse.urlencode({"since": since}) if since else ""
        self.sock.sendall((f"GET {STREAM}{qs} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: m.json\r\n"
                           f"Authorization: Bearer {token}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        first = head.split(b"\r\n", 1)[0].decode(errors="replace")
        self.status = int(first.split()[1]) if first.startswith("HTTP/") else 0

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else \
            struct.pack("!BBH", 0x81, 0x80 | 126, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError()
            buf += chunk
        return buf

    def recv(self):
        """-> ("text", obj) or ("close", code); EOFError when the socket closed."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            op = b0 & 0x0F
            if op == 0x8:
                return "close", struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            if op in (0x9, 0xA):
                continue
            parts.append(payload)
            if b0 & 0x80:
                return "text", json.loads(b"".join(parts))

    def recv_answer(self, rid):
        while True:
            kind, obj = self.recv()
            if kind == "close":
                raise EOFError(f"closed {obj}")
            if obj.get("id") == rid:
                return obj

    def close(self):
        self.sock.close()


def replies_by_command(hs, room, bot_user):
    out = collections.defaultdict(list)
    for ev in hs.all_events(room):
        if ev.get("sender") != bot_user or ev.get("type") != "m.room.message":
            continue
        target = ev.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {}) \
            .get("event_id")
        if target:
            out[target].append(ev)
    return out


class ThroughGateway(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # without Synapse's sync response cache: with it, test_7's 40
        # connections start from an initial sync cached by an earlier test's
        # connection, and the catch-up past it (test_5's large events) is more
        # than the 64 KB buffer, a slow consumer by design
        cls.hs = mx.Homeserver(persist=False, compat={"sync_cache_s": 0})
        cls.alice = cls.hs.register("alice")
        cls.gw = Gateway(cls.hs, "--max-buffer-kb", "64")
        cls.bot = mx.Bot(cls.hs, mx.tmpdir(), config_extra={
            "transport": "websocket", "websocket_url": cls.gw.url, "rate_limit_per_min": 1000})
        cls.bot.start()
        cls.room = cls.alice.create_room(name="gw", invite=[cls.bot.user_id])
        cls.alice.wait_membership(cls.room, cls.bot.user_id, "join", timeout=15)
        # the welcome the bot posts on joining is a send of its own: wait for
        # it, or test_1's count of sends can take it for a second reply
        cls.alice.wait_for(cls.room, lambda e: e.get("sender") == cls.bot.user_id
                           and "Start with" in e.get("content", {}).get("body", ""),
                           timeout=30)
        cls.bot.wait_log(r"transport: websocket \(ws://127\.0\.0\.1:%d" % cls.gw.port)

    @classmethod
    def tearDownClass(cls):
        cls.bot.stop()
        cls.gw.stop()
        cls.hs.stop()

    def ping_once(self, timeout=15):
        cmd = self.alice.send_text(self.room, "!ping")
        mx.assert_reply(self.alice.wait_reply(self.room, cmd, timeout=timeout), cmd)
        time.sleep(0.5)
        n = len(replies_by_command(self.hs, self.room, self.bot.user_id)[cmd])
        self.assertEqual(n, 1, f"{n} replies")
        return cmd

    def test_1_ping_through_the_gateway(self):
        before = self.hs.stats()["by_user"].get(self.bot.user_id, {}).get(SEND, 0)
        cmd = self.ping_once()
        # the gateway turned the socket request into the REST PUT, txnId = request id
        self.assertEqual(self.hs.stats()["by_user"][self.bot.user_id][SEND], before + 1)
        self.assertEqual(self.hs.request_count("WS", "send"), 0, "bypassed the gateway")
        self.assertIn(cmd, self.bot.log())

    def test_2_ping_method_and_state(self):
        ws = RawWS(self.gw.port, self.alice.token)
        self.assertEqual(ws.status, 101)
        kind, first = ws.recv()                       # the initial batch, at once
        self.assertEqual(kind, "text")
        self.assertIn("next_batch", first)
        ws.send({"id": "p1", "method": "ping"})
        self.assertEqual(ws.recv_answer("p1"), {"id": "p1", "result": {}})
        ws.send({"id": "s1", "method": "state", "params": {
            "room_id": self.room, "event_type": "m.room.name", "state_key": ""}})
        self.assertEqual(ws.recv_answer("s1")["result"], {"name": "gw"})
        ws.send({"id": "s2", "method": "state", "params": {
            "room_id": self.room, "event_type": "m.room.nothing", "state_key": ""}})
        err = ws.recv_answer("s2")["error"]
        self.assertEqual((err["errcode"], err["status"]), ("M_NOT_FOUND", 404))
        ws.close()

    def test_3_bad_token_refused_at_the_handshake(self):
        ws = RawWS(self.gw.port, "not-a-token")
        self.assertNotEqual(ws.status, 101)
        ws.close()
    def test_3b_auto_falls_back_when_the_gateway_refuses_then_reprobes(self):
        with mx.Homeserver(persist=False) as hs2:
            alice2 = hs2.register("alice")
            gw2 = Gateway(hs2, "--max-connections", "1")
            hog = RawWS(gw2.port, alice2.token)          # takes the only slot
            self.assertEqual(hog.status, 101)
            bot = mx.Bot(hs2, mx.tmpdir(), config_extra={
                "transport": "auto", "websocket_url": gw2.url, "sync_timeout_ms": 1000},
                env_extra={"TLBOT_WS_REPROBE_S": "2"})
            try:
                bot.start()
                bot.wait_log(r"transport: sync \(the WebSocket handshake", timeout=10)
                room = alice2.create_room(name="fallback", invite=[bot.user_id])
                alice2.wait_membership(room, bot.user_id, "join", timeout=15)
                cmd = alice2.send_text(room, "!ping")
                alice2.wait_reply(room, cmd)
                hog.close()
                bot.wait_log(r"transport: websocket", timeout=15)
                cmd = alice2.send_text(room, "!ping")
                alice2.wait_reply(room, cmd)
                time.sleep(0.5)
                self.assertEqual(len(replies_by_command(hs2, room, bot.user_id)[cmd]), 1)
            finally:
                bot.stop()
                gw2.stop()

    def test_4_gateway_restart_replies_exactly_once(self):
        self.bot.wait_idle()
        mark = self.bot.log_mark()
        self.gw.stop(signal.SIGKILL)
        cmd = self.alice.send_text(self.room, "!ping")
        time.sleep(1)
        self.gw.start()
        self.alice.wait_reply(self.room, cmd, timeout=40)
        self.bot.wait_log(r"connection to .* lost", since=mark)
        time.sleep(0.5)
        self.assertEqual(len(replies_by_command(self.hs, self.room, self.bot.user_id)[cmd]), 1)
        self.ping_once()

    def test_5_slow_consumer_is_disconnected(self):
        slow = RawWS(self.gw.port, self.alice.token, rcvbuf=4096)
        self.assertEqual(slow.status, 101)
        time.sleep(0.3)
        big = "y" * 50000
        deadline = time.monotonic() + 60
        while "slow consumer" not in self.gw.log():
            self.assertLess(time.monotonic(), deadline, "slow consumer never disconnected:\n" +
                            self.gw.log()[-2000:])
            for _ in range(5):
                self.alice.send_text(self.room, big)
            time.sleep(0.1)
        # the connection is closed: reading drains what was buffered, then EOF/close
        slow.sock.settimeout(10)
        with self.assertRaises((EOFError, ConnectionError, OSError)):
            while True:
                kind, _ = slow.recv()
                if kind == "close":
                    raise EOFError()
        slow.close()
        # the bot's own connection was not affected
        self.bot.wait_idle(timeout=30)
        self.ping_once(timeout=30)

    def test_6_sigterm(self):
        ws = RawWS(self.gw.port, self.alice.token)
        self.assertEqual(ws.status, 101)
        t0 = time.monotonic()
        self.assertEqual(self.gw.stop(), 0)
        self.assertLess(time.monotonic() - t0, 2.5)
        self.assertIn("stopped cleanly", self.gw.log())
        ws.close()
        self.gw.start()
        self.bot.wait_log(r"transport: websocket", timeout=30)
        self.ping_once(timeout=40)

    def test_7_many_connections(self):
        socks = [RawWS(self.gw.port, self.alice.token) for _ in range(40)]
        try:
            for ws in socks:
                self.assertEqual(ws.status, 101)
                self.assertEqual(ws.recv()[0], "text")        # initial batch
            ev = self.alice.send_text(self.room, "to everyone")
            for ws in socks:
                while True:
                    kind, obj = ws.recv()
                    self.assertEqual(kind, "text")
                    tl = obj.get("rooms", {}).get("join", {}).get(self.room, {}) \
                        .get("timeline", {}).get("events", [])
                    if any(e.get("event_id") == ev for e in tl):
                        break
        finally:
            for ws in socks:
                ws.close()
        self.ping_once()


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class Tls(unittest.TestCase):
    def test_wss_verified_with_ca_file(self):
        d = mx.tmpdir()
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True,
                       capture_output=True)
        with mx.Homeserver(persist=False) as hs:
            alice = hs.register("alice")
            gw = Gateway(hs, "--tls-cert", cert, "--tls-key", key)
            url = f"wss://localhost:{gw.port}"
            try:
                # without the CA the certificate is refused
                bot = mx.Bot(hs, mx.tmpdir(), config_extra={"transport": "websocket",
                                                            "websocket_url": url})
                bot.start()
                try:
                    bot.wait_log(r"cannot connect to wss://.*set ca_file", timeout=10)
                finally:
                    bot.stop()
                bot = mx.Bot(hs, mx.tmpdir(), config_extra={
                    "transport": "websocket", "websocket_url": url, "ca_file": cert})
                bot.start()
                try:
                    bot.wait_log(r"transport: websocket \(wss://", timeout=10)
                    room = alice.create_room(name="tls", invite=[bot.user_id])
                    alice.wait_membership(room, bot.user_id, "join", timeout=15)
                    cmd = alice.send_text(room, "!ping")
                    alice.wait_reply(room, cmd)
                finally:
                    bot.stop()
            finally:
                gw.stop()


if __name__ == "__main__":
    fixtures.main(verbosity=2)
