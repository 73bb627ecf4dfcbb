"""mx -- test-client library for tlbot's integration tests (standard library only).

    import sys; sys.path.insert(0, "tests/lib"); import mx

    with mx.Homeserver() as hs:
        alice = hs.register("alice")
        bot = mx.Bot(hs, mx.tmpdir())
        bot.start()
        room = alice.create_room(name="team", invite=[bot.user_id])
        bot.wait_log(r"joined")                  # or alice.wait_for(...)
        cmd = alice.send_text(room, "!help")
        reply = alice.wait_reply(room, cmd)      # an m.notice replying to cmd
        bot.stop()

Pieces:
  Homeserver  runs tests/homeserver/mxhs.py as a subprocess; restart keeps state;
              fault injection and request statistics (the /_test/ API).
  User        a Matrix client for one device: rooms, messages, sync-based waiting.
  Bot         runs the real bot binary (TLBOT_BIN, default build/tlbot) with a
              generated config, log file and test clock file.
  helpers     free_port, tmpdir, assert_reply, MatrixError, WaitTimeout, predicates.
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
MXHS = os.path.join(REPO, "tests", "homeserver", "mxhs.py")
CLIENT = "/_matrix/client/v3"

__all__ = ["MatrixError", "WaitTimeout", "Homeserver", "User", "Bot", "free_port",
           "tmpdir", "assert_reply", "request", "q", "download", "is_notice", "reply_to",
           "from_sender", "body_contains"]


# --------------------------------------------------------------------------
# Errors and HTTP
# --------------------------------------------------------------------------

class MatrixError(Exception):
    """A non-2xx answer.  .status (int), .errcode (str or None), .body (dict or
    raw text when the body was not JSON)."""

    def __init__(self, status, errcode, body):
        self.status, self.errcode, self.body = status, errcode, body
        msg = body.get("error") if isinstance(body, dict) else str(body)[:200]
        super().__init__(f"HTTP {status} {errcode}: {msg}")


class WaitTimeout(AssertionError):
    """A wait_* helper ran out of time (an AssertionError, so unittest reports
    it as a test failure, not an error)."""


def q(s):
    """Percent-encode one path segment (room ids, event ids, user ids...)."""
    return urllib.parse.quote(s, safe="")


def request(method, url, body=None, token=None, timeout=30, headers=None, raw=False):
    """One HTTP request.  body: dict (sent as JSON) or bytes.  Returns the
    decoded JSON (or bytes when raw=True).  Raises MatrixError on non-2xx and
    lets connection errors (URLError, ConnectionError...) through."""
    h = dict(headers or {})
    data = None
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = resp.read()
    except urllib.error.HTTPError as e:
        payload = e.read()
        try:
            obj = json.loads(payload.decode())
        except ValueError:
            obj = payload.decode(errors="replace")
        errcode = obj.get("errcode") if isinstance(obj, dict) else None
        raise MatrixError(e.code, errcode, obj) from None
    if raw:
        return payload
    return json.loads(payload.decode()) if payload else {}


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def download(user, mxc):
    """The bytes of an mxc:// URI: authenticated media (v1, spec v1.11), or
    /_matrix/media/v3 on servers that do not know v1 (404/405
    M_UNRECOGNIZED)."""
    server, media = mxc[len("mxc://"):].split("/", 1)
    try:
        return user.api("GET", f"/_matrix/client/v1/media/download/{server}/{media}", raw=True)
    except MatrixError as e:
        if e.errcode != "M_UNRECOGNIZED":
            raise
    return user.api("GET", f"/_matrix/media/v3/download/{server}/{media}", raw=True)


def free_port():
    """A TCP port that was free a moment ago (bind to 0 and release)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_TMPDIRS = []


def _cleanup_tmpdirs():
    if os.environ.get("TLBOT_KEEP_TMP"):
        for d in _TMPDIRS:
            sys.stderr.write(f"mx: kept {d}\n")
        return
    for d in _TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup_tmpdirs)


def tmpdir(prefix="tlbot-test-"):
    """A fresh temporary directory, removed at interpreter exit unless the
    environment has TLBOT_KEEP_TMP=1 (then its path is printed)."""
    d = tempfile.mkdtemp(prefix=prefix)
    _TMPDIRS.append(d)
    return d


def _rel(ev):
    c = ev.get("content")
    rel = c.get("m.relates_to") if isinstance(c, dict) else None
    return rel if isinstance(rel, dict) else {}


def is_notice(ev):
    return ev.get("type") == "m.room.message" and \
        (ev.get("content") or {}).get("msgtype") == "m.notice"


def reply_to(event_id):
    """Predicate: the event is a reply (m.in_reply_to) to event_id."""
    def pred(ev):
        irt = _rel(ev).get("m.in_reply_to")
        return isinstance(irt, dict) and irt.get("event_id") == event_id
    return pred


def from_sender(user_id):
    return lambda ev: ev.get("sender") == user_id


def body_contains(text):
    return lambda ev: text in ((ev.get("content") or {}).get("body") or "")


def assert_reply(event, to_event_id, msgtype="m.notice"):
    """Assert that `event` is a message of `msgtype` (default m.notice) whose
    m.relates_to.m.in_reply_to.event_id is `to_event_id`.  Returns event."""
    content = event.get("content") or {}
    if event.get("type") != "m.room.message":
        raise AssertionError(f"not an m.room.message: {event!r}")
    if content.get("msgtype") != msgtype:
        raise AssertionError(f"msgtype is {content.get('msgtype')!r}, expected {msgtype!r}: "
                             f"{content!r}")
    got = (_rel(event).get("m.in_reply_to") or {}).get("event_id")
    if got != to_event_id:
        raise AssertionError(f"in_reply_to is {got!r}, expected {to_event_id!r}: {content!r}")
    return event


def _describe(events, n=8):
    lines = []
    for e in events[-n:]:
        c = e.get("content") or {}
        lines.append(f"  {e.get('sender')} {e.get('type')} {c.get('msgtype', '')} "
                     f"{(c.get('body') or c.get('membership') or '')!r:.120}")
    return "\n".join(lines) or "  (no events)"


# --------------------------------------------------------------------------
# Homeserver
# --------------------------------------------------------------------------

class Homeserver:
    """Runs mxhs.py in a subprocess.

    Homeserver(state_file=None, server_name="localhost", port=0, persist=True,
               verbose=False)
      persist=True and no state_file: a state file in a temp dir is used, so
      restart() keeps everything.  persist=False: purely in memory.
    """

    def __init__(self, state_file=None, server_name="localhost", port=0, persist=True,
                 verbose=False, compat=None):
        self.server_name = server_name
        # mxhs COMPAT switches (tests/homeserver/mxhs.py), kept across restarts
        self.compat_switches = dict(compat or {})
        self.port = port
        self.verbose = verbose
        if state_file is None and persist:
            state_file = os.path.join(tmpdir("mxhs-"), "state.json")
        self.state_file = state_file
        self.proc = None
        self.url = None
        self.start()

    # ---- process ------------------------------------------------------------

    def start(self):
        if self.proc and self.proc.poll() is None:
            return
        cmd = [sys.executable, MXHS, "--host", "127.0.0.1", "--port", str(self.port),
               "--server-name", self.server_name]
        if self.state_file:
            cmd += ["--state", self.state_file]
        if self.verbose:
            cmd += ["--verbose"]
        for k, v in self.compat_switches.items():
            cmd += ["--compat", f"{k}={json.dumps(v)}"]
        deadline = time.monotonic() + 10
        while True:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                         text=True)
            line = self.proc.stdout.readline()
            if line.startswith("LISTENING "):
                break
            self.proc.wait()
            self.proc.stdout.close()
            # restart on a fixed port: it may take a moment to become free
            if time.monotonic() > deadline:
                raise RuntimeError(f"mxhs did not start: {line!r}")
            time.sleep(0.1)
        self.url = line.split(None, 1)[1].strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        # keep draining stdout so the child never blocks on a full pipe
        self._drain = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self._drain.start()

    def stop(self, graceful=True):
        """Stop the homeserver (SIGTERM, or SIGKILL when graceful=False)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout and not self.proc.stdout.closed:
            self._drain.join(5)
            self.proc.stdout.close()

    def restart(self, graceful=False):
        """Kill (SIGKILL by default) and start again on the same port with the
        same state file.  Faults and statistics are not kept."""
        self.stop(graceful=graceful)
        self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- raw API ----------------------------------------------------------------

    def api(self, method, path, body=None, token=None, query=None, timeout=30, raw=False,
            headers=None):
        """Request `path` (absolute, e.g. "/_matrix/client/v3/login")."""
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(
                {k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                 for k, v in query.items() if v is not None})
        return request(method, url, body=body, token=token, timeout=timeout, raw=raw,
                       headers=headers)

    # ---- users --------------------------------------------------------------------

    def register(self, localpart, password="pw", device_id=None):
        """Register through the User-Interactive Auth dance (401, then
        m.login.dummy with the session).  -> User"""
        body = {"username": localpart, "password": password}
        if device_id:
            body["device_id"] = device_id
        try:
            self.api("POST", CLIENT + "/register", body)
            raise RuntimeError("register without auth unexpectedly succeeded")
        except MatrixError as e:
            if e.status != 401:
                raise
            session = e.body.get("session")
        body["auth"] = {"type": "m.login.dummy", "session": session}
        r = self.api("POST", CLIENT + "/register", body)
        return User(self, r["user_id"], r["access_token"], r["device_id"])

    def ensure_user(self, localpart, password="pw"):
        """Register the user unless it exists (no login).  -> user_id"""
        try:
            self.api("POST", CLIENT + "/register", {
                "username": localpart, "password": password, "inhibit_login": True,
                "auth": {"type": "m.login.dummy"}})
        except MatrixError as e:
            if e.errcode != "M_USER_IN_USE":
                raise
        return f"@{localpart}:{self.server_name}"

    def login(self, localpart, password="pw", device_id=None):
        """A new session (or a new token for device_id).  -> User"""
        body = {"type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password}
        if device_id:
            body["device_id"] = device_id
        r = self.api("POST", CLIENT + "/login", body)
        return User(self, r["user_id"], r["access_token"], r["device_id"])

    # ---- test control ---------------------------------------------------------------

    def fault(self, kind="status", path=".*", method=None, count=1, user=None, **kw):
        """Inject a fault; returns its id.  kind: "status" (answer `status`
        [429], with errcode/error/retry_after_ms/retry_after_header/body, without
        executing), "drop" (close without an answer; execute=True runs the
        request first; a pending /sync long-poll is dropped too), "delay"
        (delay_ms, then normal), "truncate" (run it, send half the body).
        path: regex searched in the request path; method: None = any;
        count: how many requests it hits (None = unlimited); user: only requests
        of this user id; probability: 0..1."""
        spec = dict(kw, kind=kind, path=path, method=method, count=count, user=user)
        return self.api("POST", "/_test/faults", spec)["id"]

    def compat(self, **switches):
        """Set mxhs COMPAT switches now (and for later restarts); -> all of them."""
        self.compat_switches.update(switches)
        return self.api("POST", "/_test/compat", switches)

    def clear_faults(self):
        self.api("DELETE", "/_test/faults")

    def faults(self):
        return self.api("GET", "/_test/faults")["faults"]

    def stats(self):
        """{"requests": {"PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}": n},
        "by_user": {user_id: {...}}, "faults_fired": {id: n}, "faults_fired_by_kind":
        {...}, "head": "s<pos>", "syncing": {user_id: [per pending long-poll, the position
        it is caught up to (nothing new for the user up to it)]}}"""
        return self.api("GET", "/_test/stats")

    def reset_stats(self):
        self.api("DELETE", "/_test/stats")

    def request_count(self, method, template, user=None):
        """Count of requests for one endpoint template (optionally one user)."""
        st = self.stats()
        d = st["by_user"].get(user, {}) if user else st["requests"]
        return d.get(f"{method} {template}", 0)

    def all_events(self, room_id):
        """Every event of a room, oldest first, regardless of membership."""
        return self.api("GET", f"/_test/rooms/{q(room_id)}/events")["events"]


# --------------------------------------------------------------------------
# User
# --------------------------------------------------------------------------

class User:
    """One logged-in device.  Keeps its own sync position for wait_for."""

    def __init__(self, hs, user_id, token, device_id):
        self.hs, self.user_id, self.token, self.device_id = hs, user_id, token, device_id
        self._since = None
        self._events = {}          # room_id -> [event] (chronological, seen so far)
        self._ids = {}             # room_id -> set(event_id)
        self._invites = {}         # room_id -> invite_state events
        self._txn = 0

    def __repr__(self):
        return f"<User {self.user_id} {self.device_id}>"

    # ---- HTTP ------------------------------------------------------------------

    def api(self, method, path, body=None, query=None, timeout=30, raw=False, headers=None):
        """Authenticated request; `path` relative to /_matrix/client/v3 unless
        it starts with /_matrix."""
        if not path.startswith("/_matrix"):
            path = CLIENT + path
        return self.hs.api(method, path, body=body, token=self.token, query=query,
                           timeout=timeout, raw=raw, headers=headers)

    def new_txn_id(self):
        self._txn += 1
        return f"mxpy{int(time.time() * 1000)}.{self._txn}"

    # ---- account ---------------------------------------------------------------

    def whoami(self):
        return self.api("GET", "/account/whoami")

    def logout(self):
        self.api("POST", "/logout", {})

    def set_displayname(self, name):
        self.api("PUT", f"/profile/{q(self.user_id)}/displayname", {"displayname": name})

    def account_data(self, type, room=None):
        """Content of an account data event, or None."""
        p = f"/user/{q(self.user_id)}" + (f"/rooms/{q(room)}" if room else "") + \
            f"/account_data/{q(type)}"
        try:
            return self.api("GET", p)
        except MatrixError as e:
            if e.status == 404:
                return None
            raise

    def set_account_data(self, type, content, room=None):
        p = f"/user/{q(self.user_id)}" + (f"/rooms/{q(room)}" if room else "") + \
            f"/account_data/{q(type)}"
        self.api("PUT", p, content)

    # ---- rooms ------------------------------------------------------------------

    def create_room(self, name=None, invite=(), room_version=None, power_levels=None,
                    is_direct=False, preset=None, topic=None, **extra):
        """-> room_id.  power_levels: power_level_content_override (dict).
        extra: any other createRoom body keys (initial_state, creation_content...)."""
        body = dict(extra)
        body["invite"] = list(invite)
        if name is not None:
            body["name"] = name
        if topic is not None:
            body["topic"] = topic
        if room_version is not None:
            body["room_version"] = str(room_version)
        if power_levels is not None:
            body["power_level_content_override"] = power_levels
        if is_direct:
            body["is_direct"] = True
            body.setdefault("preset", "trusted_private_chat")
        if preset is not None:
            body["preset"] = preset
        return self.api("POST", "/createRoom", body)["room_id"]

    def invite(self, room, user_id):
        self.api("POST", f"/rooms/{q(room)}/invite", {"user_id": user_id})

    def join(self, room):
        """Join by room id or alias; -> room_id."""
        return self.api("POST", f"/join/{q(room)}", {})["room_id"]

    def leave(self, room):
        self.api("POST", f"/rooms/{q(room)}/leave", {})

    def kick(self, room, user_id, reason=None):
        body = {"user_id": user_id}
        if reason:
            body["reason"] = reason
        self.api("POST", f"/rooms/{q(room)}/kick", body)

    def state(self, room, type, state_key=""):
        """Content of a state event, or None."""
        try:
            return self.api("GET", f"/rooms/{q(room)}/state/{q(type)}/{q(state_key)}")
        except MatrixError as e:
            if e.status == 404:
                return None
            raise

    def set_state(self, room, type, content, state_key=""):
        return self.api("PUT", f"/rooms/{q(room)}/state/{q(type)}/{q(state_key)}",
                        content)["event_id"]

    def set_power_level(self, room, user_id, level):
        pl = self.state(room, "m.room.power_levels") or {}
        pl.setdefault("users", {})[user_id] = level
        return self.set_state(room, "m.room.power_levels", pl)

    def joined_members(self, room):
        """Sorted list of joined user ids."""
        return sorted(self.api("GET", f"/rooms/{q(room)}/joined_members")["joined"])

    def joined_rooms(self):
        return self.api("GET", "/joined_rooms")["joined_rooms"]

    def dm_rooms(self):
        """{other_user_id: [room_id, ...]}: this user's m.direct account data,
        plus rooms it was invited to with is_direct (keyed by the inviter)."""
        out = {k: list(v) for k, v in (self.account_data("m.direct") or {}).items()}
        self._poll(0)
        for room, evs in self._invites.items():
            for e in evs:
                if e.get("type") == "m.room.member" and e.get("state_key") == self.user_id \
                        and (e.get("content") or {}).get("is_direct"):
                    lst = out.setdefault(e["sender"], [])
                    if room not in lst:
                        lst.append(room)
        return out

    # ---- sending --------------------------------------------------------------------

    def send_event(self, room, type, content, txn_id=None):
        """-> event_id.  A given txn_id is reused as is (idempotent retries)."""
        txn_id = txn_id or self.new_txn_id()
        return self.api("PUT", f"/rooms/{q(room)}/send/{q(type)}/{q(txn_id)}",
                        content)["event_id"]

    def send_text(self, room, body, formatted_body=None, thread_root=None, reply_to=None,
                  mentions=None, msgtype="m.text", txn_id=None):
        """-> event_id.  thread_root: send in that thread (rel_type m.thread,
        is_falling_back true unless reply_to is given, m.in_reply_to reply_to
        or the root).  reply_to alone: a plain reply.  mentions: None = no
        m.mentions key; a list of user ids; or a full m.mentions dict."""
        content = {"msgtype": msgtype, "body": body}
        if formatted_body is not None:
            content["format"] = "org.matrix.custom.html"
            content["formatted_body"] = formatted_body
        if thread_root:
            content["m.relates_to"] = {
                "rel_type": "m.thread", "event_id": thread_root,
                "is_falling_back": reply_to is None,
                "m.in_reply_to": {"event_id": reply_to or thread_root}}
        elif reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        if mentions is not None:
            content["m.mentions"] = mentions if isinstance(mentions, dict) else \
                {"user_ids": list(mentions)}
        return self.send_event(room, "m.room.message", content, txn_id=txn_id)

    def edit(self, room, event_id, new_body, msgtype="m.text"):
        """An m.replace edit of event_id.  -> the edit's event_id"""
        return self.send_event(room, "m.room.message", {
            "msgtype": msgtype, "body": "* " + new_body,
            "m.new_content": {"msgtype": msgtype, "body": new_body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id}})

    def redact(self, room, event_id, reason=None, txn_id=None):
        body = {} if reason is None else {"reason": reason}
        txn_id = txn_id or self.new_txn_id()
        return self.api("PUT", f"/rooms/{q(room)}/redact/{q(event_id)}/{q(txn_id)}",
                        body)["event_id"]

    # ---- reading ---------------------------------------------------------------------

    def sync(self, since=None, timeout=0, filter=None, full_state=False):
        """Raw /sync (does not move the position wait_for uses).  filter: id
        or dict."""
        query = {"since": since, "timeout": int(timeout),
                 "filter": filter, "full_state": "true" if full_state else None}
        return self.api("GET", "/sync", query=query, timeout=timeout / 1000 + 30)

    def messages(self, room, dir="b", limit=10, from_=None, to=None, filter=None):
        """Raw /messages response {chunk, start, end?}."""
        return self.api("GET", f"/rooms/{q(room)}/messages", query={
            "dir": dir, "limit": limit, "from": from_, "to": to, "filter": filter})

    def event(self, room, event_id):
        return self.api("GET", f"/rooms/{q(room)}/event/{q(event_id)}")

    def room_events(self, room, from_=None, to=None):
        """Every visible event of the room, oldest first (paginates /messages
        backwards from `from_`, default the newest, down to `to`)."""
        out, tok = [], from_
        while True:
            r = self.messages(room, "b", 100, from_=tok, to=to)
            out.extend(r["chunk"])
            if "end" not in r:
                break
            tok = r["end"]
        out.reverse()
        return out

    # ---- waiting (incremental sync) ------------------------------------------------

    _SYNC_FILTER = {"room": {"timeline": {"limit": 100}}}

    def _add(self, room, evs):
        lst = self._events.setdefault(room, [])
        ids = self._ids.setdefault(room, set())
        for e in evs:
            if e["event_id"] not in ids:
                ids.add(e["event_id"])
                e.setdefault("room_id", room)
                lst.append(e)

    def _start(self):
        """First sync: our position (no timeline; history is read per room
        with /messages when a room is first followed) and pending invites."""
        if self._since is None:
            r = self.sync(filter={"room": {"timeline": {"limit": 0}}})
            for room, data in r.get("rooms", {}).get("invite", {}).items():
                self._invites[room] = data.get("invite_state", {}).get("events", [])
            self._since = r["next_batch"]

    def _track(self, room):
        """Start following a room: its history up to our sync position."""
        self._start()
        if room not in self._events:
            self._events[room] = []
            self._ids[room] = set()
            try:
                self._add(room, self.room_events(room, from_=self._since))
            except MatrixError as e:
                if e.status != 403:      # not (yet) a member: nothing to read
                    raise

    def _poll(self, timeout_ms):
        if self._since is None:
            return self._start()
        old = self._since
        r = self.sync(since=old, timeout=timeout_ms, filter=self._SYNC_FILTER)
        for section in ("join", "leave"):
            for room, data in r.get("rooms", {}).get(section, {}).items():
                if room not in self._events:
                    continue            # followed lazily on first use
                tl = data.get("timeline", {})
                if tl.get("limited"):
                    # fill the gap between our position and this timeline
                    self._add(room, self.room_events(room, from_=tl.get("prev_batch"), to=old))
                self._add(room, tl.get("events", []))
        for room, data in r.get("rooms", {}).get("invite", {}).items():
            self._invites[room] = data.get("invite_state", {}).get("events", [])
        for section in ("join", "leave"):
            for room in r.get("rooms", {}).get(section, {}):
                self._invites.pop(room, None)
        self._since = r["next_batch"]
        return r

    def events(self, room):
        """The events of `room` seen so far (after catching up), oldest first."""
        self._track(room)
        self._poll(0)
        return list(self._events[room])

    def wait_for(self, room, predicate, timeout=10, after=None):
        """Wait for (or find already) an event of `room` matching predicate(ev).
        after: only events after this event id.  -> the event."""
        return self.wait_for_count(room, predicate, 1, timeout, after)[0]

    def wait_for_count(self, room, predicate, n, timeout=10, after=None):
        """Wait until at least n events of the room match; -> the first n."""
        self._track(room)
        deadline = time.monotonic() + timeout
        while True:
            evs = self._events[room]
            if after is not None:
                ids = [e["event_id"] for e in evs]
                evs = evs[ids.index(after) + 1:] if after in ids else []
            found = [e for e in evs if predicate(e)]
            if len(found) >= n:
                return found[:n]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"{self.user_id}: {len(found)}/{n} matching events in "
                                  f"{room} after {timeout}s; last events:\n"
                                  f"{_describe(self._events[room])}")
            self._poll(int(min(remaining, 5) * 1000))

    def wait_reply(self, room, event_id, timeout=10, msgtype="m.notice"):
        """Wait for a reply to event_id and check it with assert_reply."""
        ev = self.wait_for(room, reply_to(event_id), timeout)
        return assert_reply(ev, event_id, msgtype)

    def wait_for_invite(self, timeout=10, inviter=None):
        """Wait for a pending invite (optionally from `inviter`).  -> room_id"""
        deadline = time.monotonic() + timeout
        while True:
            for room, evs in self._invites.items():
                for e in evs:
                    if e.get("type") == "m.room.member" and e.get("state_key") == self.user_id \
                            and (inviter is None or e.get("sender") == inviter):
                        return room
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"{self.user_id}: no invite after {timeout}s")
            self._poll(int(min(remaining, 5) * 1000))

    def wait_membership(self, room, user_id, membership="join", timeout=10):
        """Wait until user_id's membership in room is `membership`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                c = self.state(room, "m.room.member", user_id)
            except MatrixError:
                c = None
            if c and c.get("membership") == membership:
                return
            if time.monotonic() > deadline:
                raise WaitTimeout(f"{user_id} membership in {room} is "
                                  f"{c and c.get('membership')!r}, not {membership!r}")
            time.sleep(0.05)


# --------------------------------------------------------------------------
# Bot
# --------------------------------------------------------------------------

def _yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v), ensure_ascii=False)   # a valid YAML double-quoted scalar


def _yaml_lines(obj, indent=0):
    pad = "  " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{k}:")
                lines += _yaml_lines(v, indent + 1)
            elif isinstance(v, (list, tuple)) and v:
                lines.append(f"{pad}{k}:")
                lines += _yaml_lines(list(v), indent + 1)
            elif isinstance(v, dict):
                lines.append(f"{pad}{k}: {{}}")
            elif isinstance(v, (list, tuple)):
                lines.append(f"{pad}{k}: []")
            else:
                lines.append(f"{pad}{k}: {_yaml_scalar(v)}")
    else:
        for v in obj:
            if isinstance(v, dict) and v:
                sub = _yaml_lines(v, indent + 1)
                lines.append(f"{pad}- " + sub[0].lstrip())
                lines += sub[1:]
            elif isinstance(v, (list, tuple)) and v:
                lines.append(f"{pad}-")
                lines += _yaml_lines(list(v), indent + 1)
            elif isinstance(v, dict):
                lines.append(f"{pad}- {{}}")
            elif isinstance(v, (list, tuple)):
                lines.append(f"{pad}- []")
            else:
                lines.append(f"{pad}- {_yaml_scalar(v)}")
    return lines


def to_yaml(obj):
    """Block-style YAML for dicts/lists/scalars (strings always double-quoted)."""
    return "\n".join(_yaml_lines(obj)) + "\n"


class Bot:
    """The real bot binary, configured against a Homeserver.

    Bot(hs, workdir, user_id="@tlbot:localhost", password="botpass",
        config_extra={}, env_extra={}, encryption=False)
    config_extra is merged over the defaults (a None value removes a key).
    encryption: the bot's own default is on (it creates its DM rooms
    encrypted, as clients do); the suites whose members are plain clients
    (User) cannot read encrypted DMs, so it is off unless a suite with E2EE
    peers (tests/lib/e2ee.py) asks for it.
    Files in workdir: tlbot.yaml (config), tlbot.db (database), tlbot.log
    (stdout+stderr, appended across restarts), clock (test clock, see set_clock).
    """

    def __init__(self, hs, workdir, user_id="@tlbot:localhost", password="botpass",
                 config_extra=None, env_extra=None, encryption=False):
        self.hs, self.workdir = hs, os.path.abspath(workdir)
        self.user_id, self.password = user_id, password
        os.makedirs(self.workdir, exist_ok=True)
        self.config_path = os.path.join(self.workdir, "tlbot.yaml")
        self.db_path = os.path.join(self.workdir, "tlbot.db")
        self.log_path = os.path.join(self.workdir, "tlbot.log")
        self.clock_path = os.path.join(self.workdir, "clock")
        self.env_extra = dict(env_extra or {})
        self.proc = None
        localpart = user_id[1:].split(":", 1)[0]
        hs.ensure_user(localpart, password)
        self.config = {
            "homeserver": hs.url, "user_id": user_id, "password": password,
            "database": self.db_path, "allowed_users": ["@*:localhost"], "admins": [],
            "log_level": "debug",
            # the transport under test: run any suite per transport with
            # TLBOT_TEST_TRANSPORT=websocket (or auto); config_extra wins
            "transport": os.environ.get("TLBOT_TEST_TRANSPORT") or "sync",
            "encryption": bool(encryption)}
        for k, v in (config_extra or {}).items():
            if v is None:
                self.config.pop(k, None)     # None removes a default key
            else:
                self.config[k] = v
        self.write_config()

    @staticmethod
    def binary():
        b = os.environ.get("TLBOT_BIN") or "build/tlbot"
        if not os.path.isabs(b) and not os.path.exists(b):
            b = os.path.join(REPO, b)
        return os.path.abspath(b)

    def write_config(self):
        """(Re)write tlbot.yaml from self.config (e.g. after hs.restart() or a
        config change; takes effect at the next start)."""
        self.config["homeserver"] = self.hs.url
        # 0600: it holds the password (the bot warns about readable secrets)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(to_yaml(self.config))
        os.chmod(self.config_path, 0o600)

    def start(self):
        if self.alive():
            return
        env = dict(os.environ)
        env["TLBOT_TEST_CLOCK_FILE"] = self.clock_path
        env.update({k: str(v) for k, v in self.env_extra.items()})
        binary = self.binary()
        if not os.path.exists(binary):
            raise FileNotFoundError(f"bot binary not found: {binary} (set TLBOT_BIN)")
        with open(self.log_path, "ab") as log:
            log.write(f"==== mx.Bot start {time.strftime('%H:%M:%S')} ====\n".encode())
            log.flush()
            self.proc = subprocess.Popen([binary, "-c", self.config_path], cwd=self.workdir,
                                         env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)

    def stop(self, timeout=10):
        """SIGTERM, wait (SIGKILL after `timeout` s).  -> exit code (None if it
        was not running)."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self):
        """SIGKILL (a crash).  -> exit code"""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode if self.proc else None

    def restart(self):
        self.stop()
        self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # ---- log -------------------------------------------------------------------

    def log(self):
        try:
            with open(self.log_path, "r", encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """Current log length, for wait_log(..., since=mark)."""
        return len(self.log())

    def wait_log(self, regex, timeout=10, since=0):
        """Wait for `regex` to appear in the log (from offset `since`).
        -> the re.Match."""
        pat = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            m = pat.search(text, since)
            if m:
                return m
            if time.monotonic() > deadline:
                raise WaitTimeout(f"{regex!r} not in bot log after {timeout}s "
                                  f"(alive={self.alive()}); log tail:\n{text[-3000:]}")
            time.sleep(0.05)

    def wait_idle(self, timeout=10):
        """Wait until the bot has caught up: it has a /sync long-poll pending
        at the homeserver whose `since` is at or after the stream head as it
        was when this was called."""
        head = int(self.hs.stats()["head"][1:])
        deadline = time.monotonic() + timeout
        while True:
            st = self.hs.stats()
            if any(int(t[1:]) >= head for t in st["syncing"].get(self.user_id, [])):
                return
            if not self.alive():
                raise WaitTimeout(f"bot exited ({self.proc.returncode}); log tail:\n"
                                  f"{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise WaitTimeout(f"bot not idle after {timeout}s; log tail:\n"
                                  f"{self.log()[-3000:]}")
            time.sleep(0.05)

    # ---- test clock ---------------------------------------------------------------

    def set_clock(self, epoch_seconds):
        """Set the bot's wall clock (the bot reads TLBOT_TEST_CLOCK_FILE)."""
        tmp = self.clock_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(int(epoch_seconds)))
        os.replace(tmp, self.clock_path)

    def clear_clock(self):
        try:
            os.remove(self.clock_path)
        except FileNotFoundError:
            pass
