"""wsstream -- the Matrix WebSockets API draft ("websockets.rst") for mxhs.

mxhs.py hands a GET /_matrix/client/unstable/stream request that asks for an
upgrade to serve(handler, app, query, mx) (mx: the mxhs module object, so
its routes, MxError and Request are the ones the server runs).

Protocol (RFC 6455 framing, standard library only):
  handshake  GET ...stream?since=&filter=[&access_token=], subprotocol m.json,
             token in `Authorization: Bearer` or the access_token parameter;
             401/400 as plain HTTP when refused (the client falls back).
  updates    server -> client: a /sync response body, sent when non-empty
             (the first one at once when there is no `since`); messages
             larger than FRAGMENT bytes are sent in several frames.
  requests   client -> server: {"id", "method", "params"} (also "param"):
             ping; send {room_id, event_type, content} (exactly the REST PUT
             .../send/{type}/{id}: same permission checks, same txnId map,
             so a REST retry with the same id is de-duplicated); state
             {room_id, event_type, state_key[, content]} (GET, or PUT with
             content). Answer {"id", "result"} or {"id", "error": {errcode,
             error[, retry_after_ms], status}}.

Faults, through mxhs's fault list (hs.fault(...) with method="WS"):
  path "/_ws/update"         before an update: "drop" closes the TCP
                             connection (drop mid-stream); "status" sends a
                             close frame 1008 "slow consumer" (what a gateway
                             does to a slow client) and closes.
  path "/_ws/send/<txnId>"   a send request (faults on the REST PUT .../send/...
                             path apply too, so a suite's REST faults hit
                             the send over either transport): "drop" closes
                             without running it,
                             "drop" + execute=True runs it then closes without
                             answering; "status" answers an error (errcode,
                             retry_after_ms); "delay" waits delay_ms first.
  path "/_ws/silence"        "delay": the server goes silent for delay_ms (no
                             updates, no pongs, no answers): a dead connection.
The handshake itself is refused with an ordinary fault on the stream path,
e.g. hs.fault("status", path="/unstable/stream", status=404, count=None).
Stats: every request is counted as "WS <method>" (e.g. hs.request_count("WS",
"send")), every connection as "WS connect".
"""

import base64
import hashlib
import json
import socket
import struct
import threading
import time
import urllib.parse

STREAM_PATH = "/_matrix/client/unstable/stream"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FRAGMENT = 16 * 1024          # split larger messages into frames of this size
MAX_MESSAGE = 1024 * 1024     # largest client message accepted
POLL_S = 0.25                 # how often the stream loop looks at faults/closing

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def wants_upgrade(method, path, headers):
    return (method == "GET" and path == STREAM_PATH and
            "websocket" in (headers.get("Upgrade") or "").lower())


class Closed(Exception):
    pass


class Conn:
    def __init__(self, handler, app, mx, user_id, device_id, token):
        self.h, self.app, self.mx = handler, app, mx
        self.sock = handler.connection
        self.rfile = handler.rfile
        self.user_id, self.device_id, self.token = user_id, device_id, token
        self.wlock = threading.Lock()
        self.closed = False
        self.silent_until = 0.0

    # ---- framing --------------------------------------------------------------

    def _frame(self, opcode, payload, fin=True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", b0, n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, 126, n)
        else:
            head = struct.pack("!BBQ", b0, 127, n)
        return head + payload

    def send_raw(self, data):
        with self.wlock:
            if self.closed:
                raise Closed()
            try:
                self.sock.sendall(data)
            except OSError:
                self.close()
                raise Closed()

    def send_text(self, text):
        data = text.encode("utf-8")
        if len(data) <= FRAGMENT:
            return self.send_raw(self._frame(OP_TEXT, data))
        parts = [data[i:i + FRAGMENT] for i in range(0, len(data), FRAGMENT)]
        out = b"".join(self._frame(OP_TEXT if i == 0 else OP_CONT, p, i == len(parts) - 1)
                       for i, p in enumerate(parts))
        self.send_raw(out)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def close(self, code=None, reason=""):
        """Close: with a close frame when code is given, else drop the TCP
        connection."""
        with self.app.cond:
            already = self.closed
            self.closed = True
            self.app.cond.notify_all()
        if already:
            return
        if code is not None:
            try:
                self.sock.sendall(self._frame(OP_CLOSE, struct.pack("!H", code) +
                                              reason.encode()[:120]))
            except OSError:
                pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _read(self, n):
        data = self.rfile.read(n)
        if data is None or len(data) < n:
            raise Closed()
        return data

    def read_message(self):
        """-> text of the next data message; control frames handled here."""
        parts, total = [], 0
        while True:
            b0, b1 = self._read(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            if not b1 & 0x80:
                self.close(1002, "client frames must be masked")
                raise Closed()
            mask = self._read(4)
            if n > MAX_MESSAGE:
                self.close(1009, "message too big")
                raise Closed()
            raw = self._read(n)
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(raw))
            if opcode == OP_CLOSE:
                self.close(1000, "bye")
                raise Closed()
            if opcode == OP_PING:
                if not self.silent():
                    self.send_raw(self._frame(OP_PONG, payload))
                continue
            if opcode == OP_PONG:
                continue
            total += n
            if total > MAX_MESSAGE:
                self.close(1009, "message too big")
                raise Closed()
            parts.append(payload)
            if fin:
                return b"".join(parts).decode("utf-8", errors="replace")

    def silent(self):
        return time.monotonic() < self.silent_until

    # ---- requests -------------------------------------------------------------

    def _error(self, rid, status, errcode, error, **extra):
        err = {"errcode": errcode, "error": error, "status": status}
        err.update(extra)
        return {"id": rid, "error": err}

    def _rest(self, method, path, body):
        """Run the REST route for path as this connection's user."""
        mx = self.mx
        r, params, _ = mx.match_route(method, path)
        if r is None:
            raise mx.MxError(404, "M_UNRECOGNIZED", "Unrecognized request")
        req = mx.Request(method, path, {}, {}, json.dumps(body).encode() if body is not None
                         else b"", params or {})
        req.route = r
        req.user_id, req.device_id, req.token = self.user_id, self.device_id, self.token
        return r.fn(self.app, req)

    def handle(self, text):
        mx, app = self.mx, self.app
        try:
            msg = json.loads(text)
        except ValueError:
            return self.send_json({"error": {"errcode": "M_NOT_JSON", "error": "not JSON"}})
        if not isinstance(msg, dict):
            return self.send_json({"error": {"errcode": "M_BAD_JSON", "error": "not an object"}})
        rid, method = msg.get("id"), msg.get("method")
        params = msg.get("params", msg.get("param")) or {}
        app.count_request("WS", str(method), self.user_id)
        if method == "ping":
            return self.send_json({"id": rid, "result": {}})
        if not isinstance(rid, str) or not rid or not isinstance(params, dict):
            return self.send_json(self._error(rid, 400, "M_BAD_JSON",
                                              "id (string) and params (object) required"))
        q = lambda s: urllib.parse.quote(str(s), safe="")
        if method == "send":
            room, etype = params.get("room_id"), params.get("event_type")
            path = f"{mx.C}/rooms/{q(room)}/send/{q(etype)}/{q(rid)}"
            # WS faults first, then the REST ones for the same send: a test's
            # fault on PUT .../send/ hits the request whichever transport
            # carries it ("truncate" = executed, answer lost)
            fault = app.take_fault("WS", "/_ws/send/" + rid, self.user_id) or \
                app.take_fault("PUT", path, self.user_id)
            if fault and fault["kind"] == "truncate":
                fault = dict(fault, kind="drop", execute=True)
            if fault and fault["kind"] == "delay":
                time.sleep(fault["delay_ms"] / 1000.0)
            if fault and fault["kind"] == "drop" and not fault["execute"]:
                return self.close()
            if fault and fault["kind"] == "status":
                st = fault["status"]
                default = {429: "M_LIMIT_EXCEEDED", 403: "M_FORBIDDEN"}.get(st, "M_UNKNOWN")
                extra = {}
                if fault.get("retry_after_ms") is not None:
                    extra["retry_after_ms"] = int(fault["retry_after_ms"])
                return self.send_json(self._error(rid, st, fault.get("errcode") or default,
                                                  fault.get("error") or "Injected fault",
                                                  **extra))
            content = params.get("content")
            if not isinstance(room, str) or not isinstance(etype, str) or \
                    not isinstance(content, dict):
                return self.send_json(self._error(rid, 400, "M_MISSING_PARAM",
                                                  "room_id, event_type and content required"))
            try:
                status, result = self._rest("PUT", path, content)
            except mx.MxError as e:
                status, result = e.status, e.body()
            if fault and fault["kind"] == "drop":       # executed, answer lost
                return self.close()
        elif method == "state":
            room, etype = params.get("room_id"), params.get("event_type")
            key = params.get("state_key", "")
            if not isinstance(room, str) or not isinstance(etype, str):
                return self.send_json(self._error(rid, 400, "M_MISSING_PARAM",
                                                  "room_id and event_type required"))
            path = f"{mx.C}/rooms/{q(room)}/state/{q(etype)}/{q(key)}"
            try:
                if "content" in params:
                    status, result = self._rest("PUT", path, params["content"])
                else:
                    status, result = self._rest("GET", path, None)
            except mx.MxError as e:
                status, result = e.status, e.body()
        else:
            return self.send_json(self._error(rid, 400, "M_UNRECOGNIZED",
                                              f"unknown method {method!r}"))
        if status >= 400:
            err = dict(result)
            err["status"] = status
            return self.send_json({"id": rid, "error": err})
        return self.send_json({"id": rid, "result": result})

    def reader(self):
        try:
            while not self.closed:
                text = self.read_message()
                while self.silent() and not self.closed:
                    time.sleep(0.05)           # a dead peer answers nothing
                self.handle(text)
        except (Closed, OSError, ValueError):
            pass
        finally:
            self.close()

    # ---- the stream -----------------------------------------------------------

    def stream(self, since, filt):
        app = self.app
        first = True
        while not self.closed:
            f = app.take_fault("WS", "/_ws/silence", self.user_id, kinds=("delay",))
            if f:
                self.silent_until = time.monotonic() + f["delay_ms"] / 1000.0
            if self.silent():
                time.sleep(0.05)
                continue
            with app.cond:
                resp, empty = app.build_sync(self.user_id, self.device_id, since, filt, False)
                if empty and not (first and since is None):
                    waiting = app.syncing.setdefault(self.user_id, [])
                    caught = app.parse_tok(resp["next_batch"])    # see h_sync
                    waiting.append(caught)
                    try:
                        app.cond.wait(POLL_S)
                    finally:
                        waiting.remove(caught)
                    continue
            first = False
            f = app.take_fault("WS", "/_ws/update", self.user_id, kinds=("drop", "status"))
            if f and f["kind"] == "drop":
                return self.close()
            if f:
                return self.close(1008, "slow consumer")
            self.send_json(resp)
            since = app.parse_tok(resp["next_batch"])


def serve(handler, app, query, mx):
    """Serve one stream connection on handler's socket until it closes."""
    handler.close_connection = True
    headers = handler.headers

    def refuse(status, errcode, error):
        handler.send_json(status, {"errcode": errcode, "error": error})

    tok = app.token_from(headers, query)
    with app.lock:
        t = app.s["tokens"].get(tok) if tok else None
    if not tok:
        return refuse(401, "M_MISSING_TOKEN", "Missing access token.")
    if not t:
        return refuse(401, "M_UNKNOWN_TOKEN", "Unrecognised access token.")
    key = headers.get("Sec-WebSocket-Key")
    if not key or headers.get("Sec-WebSocket-Version") != "13" or \
            "upgrade" not in (headers.get("Connection") or "").lower():
        return refuse(400, "M_UNRECOGNIZED", "Bad WebSocket handshake.")
    offered = [p.strip() for p in (headers.get("Sec-WebSocket-Protocol") or "").split(",")
               if p.strip()]
    if offered and "m.json" not in offered:
        return refuse(400, "M_UNRECOGNIZED", "Only the m.json subprotocol is supported.")
    user_id, device_id = t["user_id"], t["device_id"]
    try:
        with app.lock:
            since = app.parse_tok(query["since"], "since") if query.get("since") else None
            filt = app.load_filter(user_id, query.get("filter"))
    except mx.MxError as e:
        return handler.send_json(e.status, e.body())
    app.count_request("WS", "connect", user_id)

    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    if offered:
        handler.send_header("Sec-WebSocket-Protocol", "m.json")
    handler.end_headers()
    handler.wfile.flush()

    try:        # one frame per update/answer: no Nagle/delayed-ACK stalls
        handler.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    conn = Conn(handler, app, mx, user_id, device_id, tok)
    rd = threading.Thread(target=conn.reader, daemon=True)
    rd.start()
    try:
        conn.stream(since, filt)
    except (Closed, OSError):
        pass
    finally:
        conn.close()
    rd.join(2)
