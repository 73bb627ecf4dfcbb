#!/usr/bin/env python3
"""mxhs -- a small, in-memory Matrix homeserver for tlbot's integration tests.

It is a test *peer*: it speaks the Matrix Client-Server API (v3 paths) as the
spec describes it, and where the spec leaves a choice it mirrors Synapse
(timeline limit 10 per room per sync without a filter, `limited` + `prev_batch`
when more events arrived, transaction ids scoped to (device, request path)...).
It is not a federating server: one server name, local users only.

Standard library only.  Run:

    python3 tests/homeserver/mxhs.py [--host 127.0.0.1] [--port 0]
            [--server-name localhost] [--state FILE] [--verbose]
            [--send-ms MS] [--sync-ms MS] [--load-workers N]   (class Load)

After binding it prints exactly one line `LISTENING http://HOST:PORT`.
With --state, all persistent state (users, devices, tokens, rooms, events,
transaction-id maps, stream positions, filters, account data, media) is
loaded at start and saved before any mutating request is answered, so a test
can kill the process (even SIGKILL) and start it again on the same port:
FILE is a snapshot rewritten atomically (tmp + rename), FILE.journal an
append-only log of events / txn ids / media (see App.load).

Besides the Matrix API there is a test control API under /_test/ (no auth):
fault injection (status / drop / delay / truncate), request statistics, and a
view of the pending long-polls.  See `App.test_api` for the exact shapes.

Stream model: every event and every account-data change takes the next
position of one global stream.  All pagination tokens are `s<pos>` and denote
the point just *after* position <pos>: sync's `next_batch` is the head,
a timeline's `prev_batch` is the point just before its first event, and
/messages accepts any of them (so `prev_batch` + `to=<since>` fills a gap of a
limited sync exactly).
"""

import argparse
import base64
import bisect
import hashlib
import json
import math
import os
import random
import re
import secrets
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SPEC_VERSIONS = ["v1.%d" % i for i in range(1, 13)]
ROOM_VERSIONS = ["9", "10", "11", "12"]
DEFAULT_ROOM_VERSION = "10"
DEFAULT_TIMELINE_LIMIT = 10          # Synapse's default without a filter
DEFAULT_MESSAGES_LIMIT = 10          # spec default for /messages
MAX_UPLOAD = 50 * 1024 * 1024
# User ID localpart grammar (historical grammar is wider; new users use this)
LOCALPART_RE = re.compile(r"^[a-z0-9._=\-/+]+$")
# Stripped state types given with invites (Synapse's default room_prejoin_state)
PREJOIN_TYPES = ["m.room.create", "m.room.join_rules", "m.room.name",
                 "m.room.canonical_alias", "m.room.avatar",
                 "m.room.encryption", "m.room.topic"]
INFINITE_PL = math.inf               # room v12 creators

# Where real servers differ from each other or from the spec, a switch picks
# the behaviour; the default is the strict side (what the bot must survive).
# Set at start (--compat key=value, repeatable; mx.Homeserver(compat={...}))
# or live (POST /_test/compat {key: value}).  Each has a test in
# tests/homeserver/test_mxhs.py naming the server behaviour it models.
COMPAT = {
    # "device": txnIds scoped to the device (spec v1.7+, MSC3970); "token":
    # to the access token (spec <= v1.6, Synapse 1.67): a new login of the
    # same device gets a fresh txnId space
    "txn_scope": "device",
    # events over this many bytes (canonical JSON, as sent) -> 413 M_TOO_LARGE
    # (spec "Size limits": 65536); 0: no limit
    "max_event_bytes": 65536,
    # Synapse's sync response cache (caches.sync_response_cache_duration, 2
    # min): a repeated /sync with the same since, filter, timeout and
    # full_state gets the earlier answer, unless that answer was empty
    # (next_batch == since, Synapse #8518); 0: off
    "sync_cache_s": 120,
    # "replace": /messages and /event serve an edited event with the latest
    # edit's content and unsigned.m-relations.m.replace (Synapse before
    # MSC3925, spec <= v1.6); "original": content as sent (spec v1.7+)
    "edits_in_messages": "original",
    # "refuse": a relation (m.thread, m.replace, m.annotation...) to an event
    # the server does not know -> 400 M_UNKNOWN, and a thread rooted at an
    # event that is itself a relation -> 400 (Synapse
    # EventCreationHandler._validate_event_relation); "accept": as events
    # that arrive over federation, which nobody checks so
    "relation_unknown_target": "refuse",
    # "refuse": a lone UTF-16 surrogate in a JSON string -> 500 M_UNKNOWN
    # (Synapse: the database refuses it); "accept"
    "lone_surrogates": "refuse",
    # "succeed": an invite to a user id nobody has succeeds (Synapse: a
    # phantom invite, the membership event is created); "refuse": 404
    "invite_unknown_users": "succeed",
    # errcode for a join to a room id the server does not know (Synapse:
    # 404 M_UNKNOWN "No known servers")
    "unknown_room_errcode": "M_UNKNOWN",
    # the first timeline of a newly joined room says limited: true (Synapse
    # sets it for newly joined rooms whatever the count)
    "limited_on_join": True,
    # empty top-level /sync sections are omitted (Synapse encode_response),
    # so a client must not expect "rooms", "account_data"... to be present
    "omit_empty_sync_keys": True,
    # the room version of createRoom without one (Synapse 1.67: "9";
    # Synapse 1.76+: "10")
    "default_room_version": "9",
    # "spec": a redaction says what it redacts where its room version puts
    # it, top-level "redacts" before v11, content.redacts from v11 (room
    # versions spec, MSC2174); "both": in both places in every version
    # (Synapse copies them for older clients)
    "redacts_where": "spec",
    # False: /_matrix/client/v1/media/download is unknown (404
    # M_UNRECOGNIZED), as on servers before spec v1.11 (MSC3916)
    "media_v1": True,
}


def now_ms():
    return int(time.time() * 1000)


def b64u(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class MxError(Exception):
    """An error answered as the spec's standard error JSON."""

    def __init__(self, status, errcode, error, **extra):
        super().__init__(f"{status} {errcode}: {error}")
        self.status, self.errcode, self.error, self.extra = status, errcode, error, extra

    def body(self):
        d = {"errcode": self.errcode, "error": self.error}
        d.update(self.extra)
        return d


class Interrupted(Exception):
    """Raised inside a long-poll when a fault added meanwhile hits it."""

    def __init__(self, fault):
        super().__init__("interrupted by fault")
        self.fault = fault


class Raw:
    """A non-JSON response body (media downloads)."""

    def __init__(self, data, content_type, headers=None):
        self.data, self.content_type, self.headers = data, content_type, headers or {}


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------

ROUTES = []
C = "/_matrix/client/v3"


class Route:
    def __init__(self, method, template, fn, auth):
        self.method, self.template, self.fn, self.auth = method, template, fn, auth
        # "{name}" matches one non-empty segment, "{name*}" may be empty.
        pat = ""
        for part in re.split(r"(\{[A-Za-z]+\*?\})", template):
            if part.startswith("{"):
                name = part.strip("{}*")
                pat += f"(?P<{name}>[^/]*)" if part.endswith("*}") else f"(?P<{name}>[^/]+)"
            else:
                pat += re.escape(part)
        self.regex = re.compile("^" + pat + "$")


def route(method, template, auth=True):
    def deco(fn):
        ROUTES.append(Route(method, template, fn, auth))
        return fn
    return deco


def match_route(method, path):
    """-> (route, params) or (None, None) with allowed methods for a 405."""
    allowed = []
    for r in ROUTES:
        m = r.regex.match(path)
        if m:
            if r.method == method:
                return r, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}, None
            allowed.append(r.method)
    return None, None, allowed


class Request:
    """What a route handler sees."""
    app = None              # the App (one per process; set by App())

    def __init__(self, method, path, query, headers, body, params):
        self.method, self.path, self.query = method, path, query
        self.headers, self.body, self.params = headers, body, params
        self.user_id = self.device_id = self.token = None
        self.route = None
        self.interrupt_check = lambda: None

    def q(self, name, default=None):
        return self.query.get(name, default)

    def json(self):
        """The body as a JSON object. An empty body reads as {}."""
        if not self.body.strip():
            return {}
        try:
            obj = json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise MxError(400, "M_NOT_JSON", "Content not JSON.")
        if not isinstance(obj, dict):
            raise MxError(400, "M_BAD_JSON", "Content must be a JSON object.")
        return obj


# --------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------

def _pattern_match(pat, value):
    if "*" in pat:
        return re.fullmatch(".*".join(re.escape(p) for p in pat.split("*")), value or "") is not None
    return pat == value


def event_filter_ok(f, ev):
    """Spec EventFilter / RoomEventFilter semantics (not_* wins)."""
    if not f:
        return True
    t = ev.get("type")
    if any(_pattern_match(p, t) for p in f.get("not_types", [])):
        return False
    if "types" in f and not any(_pattern_match(p, t) for p in f["types"]):
        return False
    s = ev.get("sender")
    if s in f.get("not_senders", []):
        return False
    if "senders" in f and s not in f["senders"]:
        return False
    if "contains_url" in f:
        has = isinstance(ev.get("content", {}).get("url"), str)
        if has != bool(f["contains_url"]):
            return False
    return True


def room_filter_ok(f, room_id):
    if not f:
        return True
    if room_id in f.get("not_rooms", []):
        return False
    if "rooms" in f and room_id not in f["rooms"]:
        return False
    return True


def apply_event_fields(ev, fields):
    """Filter `event_fields`: keep only the listed (dotted) paths."""
    if not fields:
        return ev
    out = {}
    for path in fields:
        parts = [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", path)]
        src, dst = ev, out
        for i, p in enumerate(parts):
            if not isinstance(src, dict) or p not in src:
                break
            if i == len(parts) - 1:
                dst[p] = src[p]
            else:
                src = src[p]
                dst = dst.setdefault(p, {})
    return out


# --------------------------------------------------------------------------
# Redaction algorithm (content keys kept), per room version
# --------------------------------------------------------------------------

def redact_content(etype, content, version):
    v = int(version)
    keep = {
        "m.room.member": ["membership", "join_authorised_via_users_server"],
        "m.room.join_rules": ["join_rule", "allow"],
        "m.room.power_levels": ["ban", "events", "events_default", "kick", "redact",
                                "state_default", "users", "users_default"]
        + (["invite"] if v >= 11 else []),
        "m.room.history_visibility": ["history_visibility"],
        "m.room.create": None if v >= 11 else ["creator"],   # None: keep all
        "m.room.redaction": ["redacts"] if v >= 11 else [],
    }
    if etype not in keep:
        return {}
    k = keep[etype]
    if k is None:
        return dict(content)
    out = {key: content[key] for key in k if key in content}
    if etype == "m.room.member" and v >= 11:
        signed = content.get("third_party_invite", {}).get("signed") if isinstance(
            content.get("third_party_invite"), dict) else None
        if signed is not None:
            out["third_party_invite"] = {"signed": signed}
    return out


# --------------------------------------------------------------------------
# The application: all state + logic, guarded by one lock
# --------------------------------------------------------------------------

class App:
    def __init__(self, server_name, state_file=None, verbose=False):
        self.server_name = server_name
        self.state_file = state_file
        self.verbose = verbose
        self.base_url = None
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        # Non-persistent test machinery
        self.faults = []            # list of dicts, see add_fault
        self.fault_seq = 0
        self.stats = {"requests": {}, "by_user": {}, "faults_fired": {},
                      "faults_fired_by_kind": {}}
        self.syncing = {}           # user_id -> list of since positions waiting
        self.compat = dict(COMPAT)  # see COMPAT
        Request.app = self
        self.sync_cache = {}        # request key -> (monotonic time, response)
        self.uia_sessions = set()
        self.e2ee_test = e2ee_test_defaults()      # E2EE test switches
        self.s = {"format": 2, "server_name": server_name, "pos": 0, "seq": 0,
                  "users": {}, "tokens": {}, "filters": {}, "rooms": {},
                  "events": {}, "txns": {}, "aliases": {}, "media": {}}
        self.s["e2ee"] = e2ee_empty()       # keys, to-device (see E2EE)
        self._dirty = set()         # (section, key) of journalled sections
        self._journal = None
        if state_file:
            self.load()

    # ---- persistence ------------------------------------------------------
    #
    # Two files.  FILE holds the small state (users, devices, tokens, filters,
    # account data, aliases, counters) and is rewritten atomically (tmp +
    # rename) at every commit.  FILE.journal holds what grows with every
    # message (events, the transaction-id map, media) as an append-only log of
    # JSON lines [section, key, value] (last one wins; a torn last line from a
    # kill is ignored); rewriting those in full at every send would make long
    # tests quadratic.  Rooms (timelines, current state) are rebuilt from the
    # events at load.  The journal is written before the snapshot, and the
    # stream position is the max of both, so a kill between the two is safe.

    JOURNALLED = ("events", "txns", "media")

    def mark(self, section, key):
        self._dirty.add((section, key))

    def load(self):
        jpath = self.state_file + ".journal"
        if os.path.exists(self.state_file):
            with open(self.state_file, "r", encoding="utf-8") as f:
                snap = json.load(f)
            if snap.get("server_name") != self.server_name:
                raise SystemExit(f"state file is for server {snap.get('server_name')!r}")
            self.s.update(snap)
        if os.path.exists(jpath):
            with open(jpath, "r", encoding="utf-8") as f:
                for line in f:
                    try:
                        sec, key, val = json.loads(line)
                    except ValueError:
                        break               # torn tail
                    if val is None:
                        self.s[sec].pop(key, None)
                    else:
                        self.s[sec][key] = val
        # Rebuild rooms from their events, in stream order.
        rooms = {}
        for e in sorted(self.s["events"].values(), key=lambda e: e["_pos"]):
            if e["type"] == "m.room.create" and e.get("state_key") == "":
                c = e["content"]
                creators = [e["sender"]]
                if int(c.get("room_version", "1")) >= 12:
                    creators += [u for u in c.get("additional_creators", []) if u != e["sender"]]
                rooms[e["room_id"]] = {"room_id": e["room_id"], "creators": creators,
                                       "version": c.get("room_version", "1"),
                                       "state": {}, "events": []}
            room = rooms.get(e["room_id"])
            if room is None:
                continue
            room["events"].append(e["event_id"])
            if "state_key" in e:
                room["state"].setdefault(e["type"], {})[e["state_key"]] = e["event_id"]
            self.s["pos"] = max(self.s["pos"], e["_pos"])
        self.s["rooms"] = rooms
        # Compact the journal, then append to it from now on.
        tmp = jpath + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for sec in self.JOURNALLED:
                for k, v in self.s[sec].items():
                    f.write(json.dumps([sec, k, v], separators=(",", ":")) + "\n")
        os.replace(tmp, jpath)
        self._journal = open(jpath, "a", encoding="utf-8")
        self.save_snapshot()

    def save_snapshot(self):
        snap = {k: v for k, v in self.s.items() if k not in self.JOURNALLED + ("rooms",)}
        tmp = f"{self.state_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(snap, f, separators=(",", ":"))
        os.replace(tmp, self.state_file)

    def commit(self):
        """Call (under the lock) after every mutation: persist + wake syncs."""
        if self.state_file:
            if self._dirty:
                # one write() for the whole commit
                self._journal.write("".join(
                    json.dumps([sec, k, self.s[sec].get(k)], separators=(",", ":")) + "\n"
                    for sec, k in sorted(self._dirty)))
                self._journal.flush()
                self._dirty.clear()
            self.save_snapshot()
        self.cond.notify_all()

    def next_seq(self):
        self.s["seq"] += 1
        return self.s["seq"]

    def next_pos(self):
        self.s["pos"] += 1
        return self.s["pos"]

    # ---- ids and tokens ---------------------------------------------------

    def uid(self, localpart):
        return f"@{localpart}:{self.server_name}"

    def tok(self, pos):
        return f"s{pos}"

    def parse_tok(self, t, what="token"):
        m = re.fullmatch(r"s(\d+)", t or "")
        if not m:
            raise MxError(400, "M_INVALID_PARAM", f"Invalid {what}: {t!r}")
        return min(int(m.group(1)), self.s["pos"])

    # ---- auth ---------------------------------------------------------------

    def token_from(self, headers, query):
        h = headers.get("Authorization")
        if h:
            m = re.fullmatch(r"Bearer\s+(\S+)", h.strip())
            if m:
                return m.group(1)
            return ""
        return query.get("access_token")

    def authenticate(self, req):
        tok = self.token_from(req.headers, req.query)
        if not tok:
            raise MxError(401, "M_MISSING_TOKEN", "Missing access token.")
        with self.lock:
            t = self.s["tokens"].get(tok)
            if not t:
                raise MxError(401, "M_UNKNOWN_TOKEN", "Unrecognised access token.",
                              soft_logout=False)
        req.user_id, req.device_id, req.token = t["user_id"], t["device_id"], tok

    def user_for_token(self, headers, query):
        tok = self.token_from(headers, query)
        with self.lock:
            t = self.s["tokens"].get(tok) if tok else None
        return t["user_id"] if t else None

    def new_login(self, user_id, device_id=None, display_name=None):
        """Create (or reuse) a device and issue a fresh token for it.  A reused
        device keeps its id (and so its transaction-id scope); its previous
        tokens are invalidated (the spec allows this on login)."""
        u = self.s["users"][user_id]
        if device_id is None:
            device_id = "".join(random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(10))
        if device_id in u["devices"]:
            for tk in [k for k, v in self.s["tokens"].items()
                       if v["user_id"] == user_id and v["device_id"] == device_id]:
                del self.s["tokens"][tk]
        else:
            u["devices"][device_id] = {"display_name": display_name}
        token = "mxhs_" + secrets.token_urlsafe(24)
        self.s["tokens"][token] = {"user_id": user_id, "device_id": device_id}
        return token, device_id

    # ---- rooms: lookups -------------------------------------------------------

    def room(self, room_id):
        return self.s["rooms"].get(room_id)

    def ev(self, event_id):
        return self.s["events"].get(event_id)

    def state_ev(self, room, etype, key=""):
        eid = room["state"].get(etype, {}).get(key)
        return self.s["events"][eid] if eid else None

    def membership(self, room, user_id):
        e = self.state_ev(room, "m.room.member", user_id)
        return e["content"].get("membership") if e else None

    def member_ev(self, room, user_id):
        return self.state_ev(room, "m.room.member", user_id)

    def pl_content(self, room):
        e = self.state_ev(room, "m.room.power_levels")
        return e["content"] if e else None

    def is_v12(self, room):
        return int(room["version"]) >= 12

    def user_pl(self, room, user_id):
        if self.is_v12(room) and user_id in room["creators"]:
            return INFINITE_PL
        pl = self.pl_content(room)
        if pl is None:
            return 100 if user_id in room["creators"] else 0
        return pl.get("users", {}).get(user_id, pl.get("users_default", 0))

    def required_pl(self, room, etype, is_state):
        pl = self.pl_content(room)
        if pl is None:
            return 0
        if etype in pl.get("events", {}):
            return pl["events"][etype]
        return pl.get("state_default", 50) if is_state else pl.get("events_default", 0)

    def action_pl(self, room, action):
        pl = self.pl_content(room) or {}
        return pl.get(action, 0 if action == "invite" else 50)

    def room_for_member(self, room_id, user_id, need="join"):
        """The room, or 403 if the user is not joined (Synapse answers 403 for
        rooms it does not know as well)."""
        room = self.room(room_id)
        if not room or self.membership(room, user_id) != need:
            raise MxError(403, "M_FORBIDDEN", f"User {user_id} not in room {room_id}")
        return room

    def visible_bound(self, room, user_id):
        """Highest stream position of this room the user may read: head when
        joined; the leave/ban when they were joined before (history_visibility
        `shared` semantics).  Raises 403 otherwise."""
        m = self.membership(room, user_id)
        if m == "join":
            return self.s["pos"]
        if m in ("leave", "ban"):
            e = self.member_ev(room, user_id)
            # Were they ever joined?  Walk back through the member event chain.
            p = e
            while p is not None:
                if p["content"].get("membership") == "join":
                    return e["_pos"]
                p = self.ev(p["_replaces"]) if p.get("_replaces") else None
        raise MxError(403, "M_FORBIDDEN", f"User {user_id} not in room {room['room_id']}")

    def room_events(self, room, lo=0, hi=None):
        """Events of the room with lo < pos <= hi, oldest first."""
        hi = self.s["pos"] if hi is None else hi
        evs, key = room["events"], (lambda eid: self.s["events"][eid]["_pos"])
        # room["events"] is in stream order: bisect instead of scanning
        i = bisect.bisect_right(evs, lo, key=key)
        j = bisect.bisect_right(evs, hi, key=key)
        return [self.s["events"][eid] for eid in evs[i:j]]

    def state_at(self, room, before_pos):
        """Room state as of just before stream position `before_pos`:
        {(type, key): event}."""
        st = {}
        for eid in room["events"]:
            e = self.s["events"][eid]
            if e["_pos"] >= before_pos:
                break
            if "state_key" in e:
                st[(e["type"], e["state_key"])] = e
        return st

    # ---- rooms: mutations -------------------------------------------------------

    def new_event_id(self):
        return "$" + b64u(secrets.token_bytes(32))

    def append(self, room, sender, etype, content, state_key=None, txn=None,
               redacts=None, event_id=None):
        """Append an event to the room's timeline (and state).  No checks."""
        e = {"event_id": event_id or self.new_event_id(), "room_id": room["room_id"],
             "sender": sender, "type": etype, "content": content,
             "origin_server_ts": now_ms(), "_pos": self.next_pos()}
        if state_key is not None:
            e["state_key"] = state_key
            prev = room["state"].get(etype, {}).get(state_key)
            if prev:
                e["_replaces"] = prev
            room["state"].setdefault(etype, {})[state_key] = e["event_id"]
        if redacts is not None:
            e["redacts"] = redacts
        if txn is not None:
            e["_txn"] = txn       # [user_id, device_id, txn_id]
        self.s["events"][e["event_id"]] = e
        self.mark("events", e["event_id"])
        room["events"].append(e["event_id"])
        return e

    def member_content(self, user_id, membership, **extra):
        c = {"membership": membership}
        u = self.s["users"].get(user_id)
        if membership in ("join", "invite") and u:
            if u.get("displayname") is not None:
                c["displayname"] = u["displayname"]
            if u.get("avatar_url") is not None:
                c["avatar_url"] = u["avatar_url"]
        c.update({k: v for k, v in extra.items() if v is not None})
        return c

    def check_pl_change(self, room, sender, old, new):
        """Auth rules for m.room.power_levels (simplified to what matters)."""
        for k, v in new.items():
            if k in ("ban", "events_default", "invite", "kick", "redact",
                     "state_default", "users_default"):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise MxError(400, "M_BAD_JSON", f"power level {k} must be an integer")
        for k in ("users", "events", "notifications"):
            if k in new and not isinstance(new[k], dict):
                raise MxError(400, "M_BAD_JSON", f"{k} must be an object")
        for sub in ("users", "events"):
            for k, v in new.get(sub, {}).items():
                if not isinstance(v, int) or isinstance(v, bool):
                    raise MxError(400, "M_BAD_JSON", f"power level {sub}.{k} must be an integer")
        if self.is_v12(room):
            bad = [u for u in new.get("users", {}) if u in room["creators"]]
            if bad:
                raise MxError(403, "M_FORBIDDEN",
                              f"room creators cannot be listed in power levels: {bad}")
        mine = self.user_pl(room, sender)
        defaults = {"ban": 50, "kick": 50, "redact": 50, "invite": 0,
                    "state_default": 50, "events_default": 0, "users_default": 0}
        for k, d in defaults.items():
            o, n = old.get(k, d), new.get(k, d)
            if o != n and (o > mine or n > mine):
                raise MxError(403, "M_FORBIDDEN", f"cannot change {k} beyond your own level")
        oe, ne = old.get("events", {}), new.get("events", {})
        for k in set(oe) | set(ne):
            o, n = oe.get(k), ne.get(k)
            if o != n and ((o is not None and o > mine) or (n is not None and n > mine)):
                raise MxError(403, "M_FORBIDDEN", f"cannot change events.{k} beyond your own level")
        ou, nu = old.get("users", {}), new.get("users", {})
        for k in set(ou) | set(nu):
            o, n = ou.get(k), nu.get(k)
            if o == n:
                continue
            if o is not None and k != sender and o >= mine:
                raise MxError(403, "M_FORBIDDEN", f"cannot change the level of {k}")
            if (o is not None and o > mine) or (n is not None and n > mine):
                raise MxError(403, "M_FORBIDDEN", "cannot raise a level above your own")

    def send_state(self, room, sender, etype, key, content, txn=None):
        """Checked state event (not membership)."""
        if etype == "m.room.create":
            raise MxError(403, "M_FORBIDDEN", "m.room.create cannot be sent again")
        have = self.user_pl(room, sender)
        need = self.required_pl(room, etype, True)
        if have < need:
            raise MxError(403, "M_FORBIDDEN",
                          f"You don't have permission to post that to the room. "
                          f"user_level ({have}) < send_level ({need})")
        if key.startswith("@") and key != sender:
            raise MxError(403, "M_FORBIDDEN", "state_key is a user ID other than the sender")
        if etype == "m.room.power_levels":
            self.check_pl_change(room, sender, self.pl_content(room) or {}, content)
        if etype == "m.room.canonical_alias" and content.get("alias"):
            if self.s["aliases"].get(content["alias"]) != room["room_id"]:
                raise MxError(400, "M_BAD_ALIAS", "alias does not point to this room")
        return self.append(room, sender, etype, content, state_key=key, txn=txn)

    def do_membership(self, room_id, sender, target, membership, reason=None, extra=None):
        """Invite / join / leave / kick / ban / unban with the auth rules.
        Returns the new member event or None when nothing changed."""
        room = self.room(room_id)
        if room is None:
            if membership == "join":
                raise MxError(404, self.compat["unknown_room_errcode"], "No known servers")
            raise MxError(404 if membership == "leave" else 403,
                          "M_NOT_FOUND" if membership == "leave" else "M_FORBIDDEN",
                          f"Unknown room {room_id}")
        smem = self.membership(room, sender)
        tmem = self.membership(room, target)
        extra = dict(extra or {})
        if membership == "invite":
            if smem != "join":
                raise MxError(403, "M_FORBIDDEN", f"{sender} not in room")
            if target not in self.s["users"] and self.compat["invite_unknown_users"] != "succeed":
                raise MxError(404, "M_NOT_FOUND", f"Unknown user {target}")
            if tmem == "join":
                raise MxError(403, "M_FORBIDDEN", f"{target} is already in the room.")
            if tmem == "ban":
                raise MxError(403, "M_FORBIDDEN", f"{target} is banned from the room")
            if self.user_pl(room, sender) < self.action_pl(room, "invite"):
                raise MxError(403, "M_FORBIDDEN", "You don't have permission to invite users")
            content = self.member_content(target, "invite", reason=reason, **extra)
            return self.append(room, sender, "m.room.member", content, state_key=target)
        if membership == "join":
            if tmem == "join":
                return None
            if tmem == "ban":
                raise MxError(403, "M_FORBIDDEN", "You are banned from this room")
            jr = self.state_ev(room, "m.room.join_rules")
            rule = jr["content"].get("join_rule") if jr else "invite"
            if tmem != "invite" and rule != "public":
                raise MxError(403, "M_FORBIDDEN", "You are not invited to this room.")
            content = self.member_content(target, "join", reason=reason)
            return self.append(room, target, "m.room.member", content, state_key=target)
        if membership == "leave" and sender == target:
            if tmem in ("leave",):
                return None
            if tmem not in ("join", "invite", "knock"):
                raise MxError(403, "M_FORBIDDEN", f"{sender} is not in the room")
            content = self.member_content(target, "leave", reason=reason)
            return self.append(room, target, "m.room.member", content, state_key=target)
        if membership in ("leave", "ban"):  # kick / ban / unban
            if smem != "join":
                raise MxError(403, "M_FORBIDDEN", f"{sender} not in room")
            mine, theirs = self.user_pl(room, sender), self.user_pl(room, target)
            if membership == "ban" or tmem == "ban":
                if mine < self.action_pl(room, "ban"):
                    raise MxError(403, "M_FORBIDDEN", "You don't have permission to ban")
            else:
                if tmem not in ("join", "invite", "knock"):
                    raise MxError(403, "M_FORBIDDEN", f"{target} is not in the room")
                if mine < self.action_pl(room, "kick"):
                    raise MxError(403, "M_FORBIDDEN", "You don't have permission to kick")
            if membership == "ban" or tmem != "ban":
                if mine <= theirs:
                    raise MxError(403, "M_FORBIDDEN", "Your power level is not above the target's")
            content = self.member_content(target, membership, reason=reason)
            return self.append(room, sender, "m.room.member", content, state_key=target)
        raise MxError(400, "M_BAD_JSON", f"unsupported membership {membership!r}")

    def redact(self, room, sender, target_id, reason, txn):
        """Create an m.room.redaction event and apply it."""
        have = self.user_pl(room, sender)
        need = self.required_pl(room, "m.room.redaction", False)
        if have < need:
            raise MxError(403, "M_FORBIDDEN", "You don't have permission to redact")
        target = self.ev(target_id)
        if target and target["room_id"] == room["room_id"] and target["sender"] != sender:
            if have < self.action_pl(room, "redact"):
                raise MxError(403, "M_FORBIDDEN", "You don't have permission to redact "
                                                  "other users' events")
        both = self.compat["redacts_where"] == "both"
        v11 = int(room["version"]) >= 11
        content = {"redacts": target_id} if v11 or both else {}
        if reason is not None:
            content["reason"] = reason
        e = self.append(room, sender, "m.room.redaction", content, txn=txn,
                        redacts=target_id if both or not v11 else None)
        if target and target["room_id"] == room["room_id"] and "_redacted_because" not in target:
            target["content"] = redact_content(target["type"], target["content"], room["version"])
            target["_redacted_because"] = e["event_id"]
            self.mark("events", target_id)
        return e

    # ---- serialisation -------------------------------------------------------

    def client_event(self, e, user_id=None, device_id=None, room_id=True, depth=0):
        """ClientEvent (or ClientEventWithoutRoomID) for a requester."""
        out = {k: e[k] for k in ("event_id", "type", "sender", "origin_server_ts",
                                 "content", "state_key", "redacts") if k in e}
        if room_id:
            out["room_id"] = e["room_id"]
        unsigned = {"age": max(0, now_ms() - e["origin_server_ts"])}
        txn = e.get("_txn")
        # Spec: transaction_id only if the client being given the event is the
        # one (device) which sent it.
        # With COMPAT txn_scope "token" (Synapse 1.67), only to the access
        # token that sent it: a re-login of the device replaced that token.
        if txn and txn[0] == user_id and txn[1] == device_id and (
                self.compat["txn_scope"] != "token" or len(txn) < 4 or txn[3] in self.s["tokens"]):
            unsigned["transaction_id"] = txn[2]
        if e.get("_replaces"):
            prev = self.ev(e["_replaces"])
            if prev:
                unsigned["prev_content"] = prev["content"]
                unsigned["replaces_state"] = prev["event_id"]
        if e.get("_redacted_because") and depth == 0:
            r = self.ev(e["_redacted_because"])
            if r:
                unsigned["redacted_because"] = self.client_event(r, user_id, device_id,
                                                                 room_id, depth + 1)
        out["unsigned"] = unsigned
        return out

    def latest_edits(self, room):
        """{original event id: its latest valid edit} (same sender, m.replace)."""
        out = {}
        for e in self.room_events(room):
            rel = e["content"].get("m.relates_to")
            if isinstance(rel, dict) and rel.get("rel_type") == "m.replace" and \
                    isinstance(e["content"].get("m.new_content"), dict):
                orig = self.ev(rel.get("event_id")) if isinstance(rel.get("event_id"), str) else None
                if orig and orig["sender"] == e["sender"] and orig["room_id"] == e["room_id"]:
                    out[orig["event_id"]] = e
        return out

    def served_edited(self, out, edits):
        """COMPAT edits_in_messages "replace": the event as older Synapse
        served it, with the latest edit's content and the edit bundled."""
        edit = edits.get(out["event_id"])
        if edit is None or self.compat["edits_in_messages"] != "replace":
            return out
        content = dict(edit["content"]["m.new_content"])
        if "m.relates_to" in out["content"]:
            content["m.relates_to"] = out["content"]["m.relates_to"]
        out["content"] = content
        out["unsigned"].setdefault("m.relations", {})["m.replace"] = {
            "event_id": edit["event_id"], "origin_server_ts": edit["origin_server_ts"],
            "sender": edit["sender"]}
        return out

    def stripped(self, e):
        return {"type": e["type"], "state_key": e["state_key"],
                "content": e["content"], "sender": e["sender"]}

    # ---- sync ------------------------------------------------------------------

    def load_filter(self, user_id, f):
        if f is None or f == "":
            return {}
        if f.lstrip().startswith("{"):
            try:
                obj = json.loads(f)
            except ValueError:
                raise MxError(400, "M_NOT_JSON", "filter is not valid JSON")
            if not isinstance(obj, dict):
                raise MxError(400, "M_BAD_JSON", "filter must be an object")
            return obj
        obj = self.s["filters"].get(user_id, {}).get(f)
        if obj is None:
            raise MxError(400, "M_INVALID_PARAM", f"No such filter {f!r}")
        return obj

    def build_sync(self, user_id, device_id, since, filt, full_state):
        """One /sync answer (under the lock).  -> (response, is_empty)."""
        head = self.s["pos"]
        rf = filt.get("room", {}) or {}
        tf = rf.get("timeline", {}) or {}
        sf = rf.get("state", {}) or {}
        limit = tf.get("limit", DEFAULT_TIMELINE_LIMIT)
        if not isinstance(limit, int) or limit < 0:
            limit = DEFAULT_TIMELINE_LIMIT
        lazy = bool(sf.get("lazy_load_members"))
        fields = filt.get("event_fields")
        include_leave = bool(rf.get("include_leave"))
        u = self.s["users"][user_id]

        def ser(e):
            return apply_event_fields(self.client_event(e, user_id, device_id, room_id=False), fields)

        def timeline_for(room, lo, hi):
            evs = [e for e in self.room_events(room, lo, hi) if event_filter_ok(tf, e)
                   and room_filter_ok(tf, room["room_id"])]
            limited = len(evs) > limit
            evs = evs[max(0, len(evs) - limit):] if limit else []
            prev = self.tok(evs[0]["_pos"] - 1) if evs else self.tok(hi)
            return evs, limited, prev

        def state_for(room, initial, lo, tstart, timeline):
            """initial: full state at start of timeline; else the state keys
            changed in the gap (lo, tstart)."""
            st = self.state_at(room, tstart)
            if not initial:
                changed = set()
                for e in self.room_events(room, lo, tstart - 1):
                    if "state_key" in e:
                        changed.add((e["type"], e["state_key"]))
                st = {k: v for k, v in st.items() if k in changed}
            if lazy:
                senders = {e["sender"] for e in timeline}
                if initial:
                    senders.add(user_id)
                keep = {}
                for k, v in st.items():
                    if k[0] != "m.room.member":
                        keep[k] = v
                    elif k[1] in senders or not initial:
                        # incremental: membership changes in the gap MUST be sent
                        keep[k] = v
                st = keep
            evs = [v for v in st.values() if event_filter_ok(sf, v)
                   and room_filter_ok(sf, room["room_id"])]
            evs.sort(key=lambda e: e["_pos"])
            return evs

        def room_account_data(room_id, initial):
            af = rf.get("account_data", {}) or {}
            out = []
            for t, v in u["room_account_data"].get(room_id, {}).items():
                if (initial or v["pos"] > since) and event_filter_ok(af, {"type": t}) \
                        and room_filter_ok(af, room_id):
                    out.append({"type": t, "content": v["content"]})
            return out

        join, invite, leave = {}, {}, {}
        for room_id, room in self.s["rooms"].items():
            if not room_filter_ok(rf, room_id):
                continue
            me = self.member_ev(room, user_id)
            if me is None:
                continue
            mem = me["content"].get("membership")
            if since is not None and not full_state and room["events"] and \
                    self.s["events"][room["events"][-1]]["_pos"] <= since and \
                    not any(v["pos"] > since for v in
                            u["room_account_data"].get(room_id, {}).values()):
                continue        # fast path: nothing new in this room
            if mem == "join":
                prev = self.ev(me["_replaces"]) if me.get("_replaces") else None
                newly = since is not None and me["_pos"] > since and (
                    prev is None or prev["content"].get("membership") != "join")
                initial = since is None or newly or full_state
                lo = 0 if (since is None or newly) else since
                tl, limited, prev_batch = timeline_for(room, lo, head)
                if newly and self.compat["limited_on_join"]:
                    limited = True
                tstart = tl[0]["_pos"] if tl else head + 1
                st = state_for(room, initial, lo, tstart, tl)
                ad = room_account_data(room_id, since is None or newly)
                if not (initial or tl or st or ad or limited):
                    continue
                members = [m for m in room["state"].get("m.room.member", {})]
                joined = [m for m in members if self.membership(room, m) == "join"]
                invited = [m for m in members if self.membership(room, m) == "invite"]
                heroes = sorted((m for m in joined + invited if m != user_id),
                                key=lambda m: self.member_ev(room, m)["_pos"])[:5]
                join[room_id] = {
                    "timeline": {"events": [ser(e) for e in tl], "limited": limited,
                                 "prev_batch": prev_batch},
                    "state": {"events": [ser(e) for e in st]},
                    "account_data": {"events": ad},
                    "ephemeral": {"events": []},
                    "unread_notifications": {"highlight_count": 0, "notification_count": 0},
                    "summary": {"m.heroes": heroes, "m.joined_member_count": len(joined),
                                "m.invited_member_count": len(invited)},
                }
            elif mem == "invite":
                if since is None or me["_pos"] > since:
                    ist = []
                    for t in PREJOIN_TYPES:
                        e = self.state_ev(room, t)
                        if e:
                            ist.append(self.stripped(e))
                    inviter = self.member_ev(room, me["sender"])
                    if inviter and inviter["event_id"] != me["event_id"]:
                        ist.append(self.stripped(inviter))
                    ist.append(self.stripped(me))
                    invite[room_id] = {"invite_state": {"events": ist}}
            elif mem in ("leave", "ban"):
                if (since is not None and me["_pos"] > since) or (since is None and include_leave):
                    lo = since or 0
                    tl, limited, prev_batch = timeline_for(room, lo, me["_pos"])
                    tstart = tl[0]["_pos"] if tl else me["_pos"] + 1
                    st = state_for(room, since is None, lo, tstart, tl)
                    leave[room_id] = {
                        "timeline": {"events": [ser(e) for e in tl], "limited": limited,
                                     "prev_batch": prev_batch},
                        "state": {"events": [ser(e) for e in st]},
                        "account_data": {"events": room_account_data(room_id, since is None)},
                    }
        gaf = filt.get("account_data", {}) or {}
        gad = [{"type": t, "content": v["content"]} for t, v in u["account_data"].items()
               if (since is None or v["pos"] > since) and event_filter_ok(gaf, {"type": t})]
        resp = {
            "next_batch": self.tok(head),
            "rooms": {"join": join, "invite": invite, "leave": leave, "knock": {}},
            "account_data": {"events": gad},
            "presence": {"events": []},
            "to_device": {"events": []},
            "device_lists": {"changed": [], "left": []},
            "device_one_time_keys_count": {},
        }
        empty = not (join or invite or leave or gad)
        if E2EE(self).sync(user_id, device_id, since, resp):
            empty = False
        if self.compat["omit_empty_sync_keys"]:
            def hollow(v):
                return v in ([], {}) or (isinstance(v, dict) and all(map(hollow, v.values())))
            for k in list(resp["rooms"]):
                if not resp["rooms"][k]:
                    del resp["rooms"][k]
            # (Synapse always sends the one-time key counts: #10456, MSC2732)
            for k in list(resp):
                if k not in ("next_batch", "device_one_time_keys_count",
                             "device_unused_fallback_key_types") and hollow(resp[k]):
                    del resp[k]
        return resp, empty

    # ---- faults ----------------------------------------------------------------

    def add_fault(self, spec):
        kind = spec.get("kind", "status")
        if kind not in ("status", "drop", "delay", "truncate"):
            raise MxError(400, "M_INVALID_PARAM", f"unknown fault kind {kind!r}")
        try:
            re.compile(spec.get("path") or ".*")
        except re.error as ex:
            raise MxError(400, "M_INVALID_PARAM", f"bad path regex: {ex}")
        with self.lock:
            self.fault_seq += 1
            f = {"id": str(self.fault_seq), "kind": kind,
                 "method": spec.get("method"), "path": spec.get("path") or ".*",
                 "user": spec.get("user"),
                 "status": int(spec.get("status", 429 if kind == "status" else 200)),
                 "errcode": spec.get("errcode"), "error": spec.get("error"),
                 "retry_after_ms": spec.get("retry_after_ms"),
                 "retry_after_header": bool(spec.get("retry_after_header", False)),
                 "delay_ms": int(spec.get("delay_ms", 0) or 0),
                 "count": spec.get("count", 1),
                 "probability": spec.get("probability"),
                 "execute": bool(spec.get("execute", False)),
                 "body": spec.get("body"), "content_type": spec.get("content_type"),
                 "fired": 0}
            self.faults.append(f)
            # wake long-polls: a drop/status fault may hit a pending /sync
            self.cond.notify_all()
            return f

    def take_fault(self, method, path, user_id, kinds=None):
        """Find and consume the first matching fault, or None."""
        with self.lock:
            for f in self.faults:
                if f["count"] is not None and f["count"] <= 0:
                    continue
                if kinds and f["kind"] not in kinds:
                    continue
                if f["method"] and f["method"].upper() != method:
                    continue
                if f["user"] and f["user"] != user_id:
                    continue
                if not re.search(f["path"], path):
                    continue
                if f["probability"] is not None and random.random() >= float(f["probability"]):
                    continue
                if f["count"] is not None:
                    f["count"] -= 1
                f["fired"] += 1
                st = self.stats
                st["faults_fired"][f["id"]] = st["faults_fired"].get(f["id"], 0) + 1
                st["faults_fired_by_kind"][f["kind"]] = st["faults_fired_by_kind"].get(f["kind"], 0) + 1
                return dict(f)
        return None

    # ---- the test control API ----------------------------------------------------

    def test_api(self, method, path, body):
        """/_test/... (no auth):
        GET    /_test/compat         -> the switches (COMPAT)
        POST   /_test/compat         {switch: value...} -> the switches
        POST   /_test/faults         add a fault -> {"id"}
        GET    /_test/faults         -> {"faults": [...with remaining count, fired]}
        DELETE /_test/faults         clear all;  DELETE /_test/faults/{id} one
        GET    /_test/stats          -> {"requests": {"METHOD template": n}, "by_user":
                                         {user: {...}}, "faults_fired": {id: n},
                                         "faults_fired_by_kind": {...}, "head": "s<pos>",
                                         "syncing": {user: ["s<pos>", ...]}}: per pending
                                         long-poll, the position it is caught up to
        DELETE /_test/stats          reset counters
        GET    /_test/rooms/{roomId}/events   every event of a room, oldest first
        """
        def obj():
            try:
                o = json.loads(body.decode() or "{}")
            except ValueError:
                raise MxError(400, "M_NOT_JSON", "Content not JSON.")
            if not isinstance(o, dict):
                raise MxError(400, "M_BAD_JSON", "Content must be a JSON object.")
            return o
        with self.lock:
            r = e2ee_test_api(self, method, path, obj)
            if r is not None:
                return r
            if path == "/_test/compat":
                if method == "POST":
                    self.set_compat(obj())
                if method in ("GET", "POST"):
                    return 200, dict(self.compat)
            if path == "/_test/faults":
                if method == "POST":
                    return 200, {"id": self.add_fault(obj())["id"]}
                if method == "GET":
                    return 200, {"faults": [dict(f) for f in self.faults]}
                if method == "DELETE":
                    self.faults.clear()
                    return 200, {}
            m = re.fullmatch(r"/_test/faults/([^/]+)", path)
            if m and method == "DELETE":
                self.faults = [f for f in self.faults if f["id"] != m.group(1)]
                return 200, {}
            if path == "/_test/stats":
                if method == "GET":
                    out = json.loads(json.dumps(self.stats))
                    out["head"] = self.tok(self.s["pos"])
                    out["syncing"] = {u: [self.tok(p) for p in ps]
                                      for u, ps in self.syncing.items() if ps}
                    return 200, out
                if method == "DELETE":
                    self.stats = {"requests": {}, "by_user": {}, "faults_fired": {},
                                  "faults_fired_by_kind": {}}
                    return 200, {}
            m = re.fullmatch(r"/_test/rooms/([^/]+)/events", path)
            if m and method == "GET":
                room = self.room(urllib.parse.unquote(m.group(1)))
                if not room:
                    raise MxError(404, "M_NOT_FOUND", "no such room")
                return 200, {"events": [self.client_event(e) for e in self.room_events(room)]}
        raise MxError(404, "M_UNRECOGNIZED", "Unrecognized test request")

    def set_compat(self, changes):
        for k, v in changes.items():
            if k not in COMPAT:
                raise MxError(400, "M_INVALID_PARAM", f"unknown compat switch {k!r}")
            if type(v) is not type(COMPAT[k]):
                raise MxError(400, "M_INVALID_PARAM", f"{k}: expected {type(COMPAT[k]).__name__}")
            self.compat[k] = v
        self.sync_cache.clear()

    def count_request(self, method, template, user_id):
        key = f"{method} {template}"
        with self.lock:
            r = self.stats["requests"]
            r[key] = r.get(key, 0) + 1
            if user_id:
                b = self.stats["by_user"].setdefault(user_id, {})
                b[key] = b.get(key, 0) + 1


# --------------------------------------------------------------------------
# Endpoints: discovery, registration, login
# --------------------------------------------------------------------------

@route("GET", "/_matrix/client/versions", auth=False)
def h_versions(app, req):
    return 200, {"versions": SPEC_VERSIONS, "unstable_features": {}}


@route("GET", "/.well-known/matrix/client", auth=False)
def h_wellknown(app, req):
    return 200, {"m.homeserver": {"base_url": app.base_url}}


@route("GET", C + "/capabilities")
def h_capabilities(app, req):
    return 200, {"capabilities": {
        "m.room_versions": {"default": app.compat["default_room_version"],
                            "available": {v: "stable" for v in ROOM_VERSIONS}},
        "m.change_password": {"enabled": False},
        "m.set_displayname": {"enabled": True},
        "m.set_avatar_url": {"enabled": True},
        "m.3pid_changes": {"enabled": False}}}


def check_username(app, username):
    if not LOCALPART_RE.match(username or ""):
        raise MxError(400, "M_INVALID_USERNAME",
                      "User ID can only contain characters a-z, 0-9, or '=_-./+'")
    if username.startswith("_"):
        raise MxError(400, "M_INVALID_USERNAME", "User ID may not begin with _")
    if len(app.uid(username)) > 255:
        raise MxError(400, "M_INVALID_USERNAME", "User ID is too long")
    if app.uid(username) in app.s["users"]:
        raise MxError(400, "M_USER_IN_USE", "User ID already taken.")


@route("GET", C + "/register/available", auth=False)
def h_register_available(app, req):
    with app.lock:
        check_username(app, req.q("username"))
    return 200, {"available": True}


@route("POST", C + "/register", auth=False)
def h_register(app, req):
    body = req.json()
    if req.q("kind", "user") != "user":
        raise MxError(403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is disabled")
    with app.lock:
        username = body.get("username")
        if username is not None:
            if not isinstance(username, str):
                raise MxError(400, "M_BAD_JSON", "username must be a string")
            # Like Synapse: validate the username before the UIA dance.
            check_username(app, username)
        auth = body.get("auth")
        flows = {"flows": [{"stages": ["m.login.dummy"]}], "params": {}}
        if not auth:
            session = secrets.token_urlsafe(16)
            app.uia_sessions.add(session)
            return 401, dict(flows, session=session)
        if not isinstance(auth, dict) or auth.get("type") != "m.login.dummy":
            session = auth.get("session") if isinstance(auth, dict) else None
            return 401, dict(flows, session=session or secrets.token_urlsafe(16),
                             errcode="M_UNRECOGNIZED", error="Unknown auth type")
        app.uia_sessions.discard(auth.get("session"))
        if username is None:
            n = 1
            while app.uid(str(n)) in app.s["users"]:
                n += 1
            username = str(n)
        password = body.get("password")
        if password is not None and not isinstance(password, str):
            raise MxError(400, "M_BAD_JSON", "password must be a string")
        user_id = app.uid(username)
        app.s["users"][user_id] = {"password": password, "displayname": username,
                                   "avatar_url": None, "devices": {}, "account_data": {},
                                   "room_account_data": {}}
        out = {"user_id": user_id, "home_server": app.server_name}
        if not body.get("inhibit_login"):
            token, dev = app.new_login(user_id, body.get("device_id"),
                                       body.get("initial_device_display_name"))
            out.update(access_token=token, device_id=dev)
        app.commit()
        return 200, out


@route("GET", C + "/login", auth=False)
def h_login_flows(app, req):
    return 200, {"flows": [{"type": "m.login.password"}]}


@route("POST", C + "/login", auth=False)
def h_login(app, req):
    body = req.json()
    if body.get("type") != "m.login.password":
        raise MxError(400, "M_UNKNOWN", "Unknown login type")
    ident = body.get("identifier")
    if isinstance(ident, dict):
        if ident.get("type") != "m.id.user":
            raise MxError(400, "M_UNKNOWN", "Unknown identifier type")
        user = ident.get("user")
    else:
        user = body.get("user")
    if not isinstance(user, str) or not isinstance(body.get("password"), str):
        raise MxError(400, "M_MISSING_PARAM", "user and password are required")
    user_id = user if user.startswith("@") else app.uid(user)
    with app.lock:
        u = app.s["users"].get(user_id)
        if not u or u["password"] is None or u["password"] != body["password"]:
            raise MxError(403, "M_FORBIDDEN", "Invalid username or password")
        dev = body.get("device_id")
        if dev is not None and (not isinstance(dev, str) or not dev):
            raise MxError(400, "M_INVALID_PARAM", "device_id must be a non-empty string")
        token, dev = app.new_login(user_id, dev, body.get("initial_device_display_name"))
        app.commit()
        return 200, {"user_id": user_id, "access_token": token, "device_id": dev,
                     "home_server": app.server_name,
                     "well_known": {"m.homeserver": {"base_url": app.base_url}}}


@route("POST", C + "/logout")
def h_logout(app, req):
    with app.lock:
        # Spec: the token is invalidated and its device deleted.
        for tk in [k for k, v in app.s["tokens"].items()
                   if v["user_id"] == req.user_id and v["device_id"] == req.device_id]:
            del app.s["tokens"][tk]
        app.s["users"][req.user_id]["devices"].pop(req.device_id, None)
        E2EE(app).device_gone(req.user_id, req.device_id)
        app.commit()
    return 200, {}


@route("POST", C + "/logout/all")
def h_logout_all(app, req):
    with app.lock:
        for tk in [k for k, v in app.s["tokens"].items() if v["user_id"] == req.user_id]:
            del app.s["tokens"][tk]
        for dev in list(app.s["users"][req.user_id]["devices"]):
            E2EE(app).device_gone(req.user_id, dev)
        app.s["users"][req.user_id]["devices"] = {}
        app.commit()
    return 200, {}


@route("GET", C + "/account/whoami")
def h_whoami(app, req):
    return 200, {"user_id": req.user_id, "device_id": req.device_id, "is_guest": False}


@route("GET", C + "/devices")
def h_devices(app, req):
    with app.lock:
        devs = app.s["users"][req.user_id]["devices"]
        return 200, {"devices": [{"device_id": d, "display_name": v.get("display_name")}
                                 for d, v in devs.items()]}


# --------------------------------------------------------------------------
# Profile, account data, filters
# --------------------------------------------------------------------------

@route("GET", C + "/profile/{userId}", auth=False)
def h_profile(app, req):
    with app.lock:
        u = app.s["users"].get(req.params["userId"])
        if not u:
            raise MxError(404, "M_NOT_FOUND", "Profile was not found")
        out = {}
        if u.get("displayname") is not None:
            out["displayname"] = u["displayname"]
        if u.get("avatar_url") is not None:
            out["avatar_url"] = u["avatar_url"]
        return 200, out


def _profile_field(app, req, field):
    with app.lock:
        u = app.s["users"].get(req.params["userId"])
        if not u:
            raise MxError(404, "M_NOT_FOUND", "Profile was not found")
        if u.get(field) is None:
            raise MxError(404, "M_NOT_FOUND", f"No {field} set")
        return 200, {field: u[field]}


def _set_profile_field(app, req, field):
    if req.params["userId"] != req.user_id:
        raise MxError(403, "M_FORBIDDEN", "Cannot set another user's profile")
    body = req.json()
    val = body.get(field)
    if val is not None and not isinstance(val, str):
        raise MxError(400, "M_BAD_JSON", f"{field} must be a string")
    with app.lock:
        app.s["users"][req.user_id][field] = val
        # Like Synapse: propagate into every joined room's member event.
        for room in app.s["rooms"].values():
            if app.membership(room, req.user_id) == "join":
                app.append(room, req.user_id, "m.room.member",
                           app.member_content(req.user_id, "join"), state_key=req.user_id)
        app.commit()
    return 200, {}


@route("GET", C + "/profile/{userId}/displayname", auth=False)
def h_get_displayname(app, req):
    return _profile_field(app, req, "displayname")


@route("PUT", C + "/profile/{userId}/displayname")
def h_set_displayname(app, req):
    return _set_profile_field(app, req, "displayname")


@route("GET", C + "/profile/{userId}/avatar_url", auth=False)
def h_get_avatar(app, req):
    return _profile_field(app, req, "avatar_url")


@route("PUT", C + "/profile/{userId}/avatar_url")
def h_set_avatar(app, req):
    return _set_profile_field(app, req, "avatar_url")


def _account_data_slot(app, req, room):
    if req.params["userId"] != req.user_id:
        raise MxError(403, "M_FORBIDDEN", "Cannot access another user's account data")
    u = app.s["users"][req.user_id]
    if room:
        rid = req.params["roomId"]
        if rid not in app.s["rooms"]:
            raise MxError(404, "M_NOT_FOUND", "Unknown room")
        return u["room_account_data"].setdefault(rid, {})
    return u["account_data"]


@route("GET", C + "/user/{userId}/account_data/{type}")
def h_get_account_data(app, req):
    with app.lock:
        v = _account_data_slot(app, req, False).get(req.params["type"])
        if v is None:
            raise MxError(404, "M_NOT_FOUND", "Account data not found")
        return 200, v["content"]


@route("PUT", C + "/user/{userId}/account_data/{type}")
def h_put_account_data(app, req):
    body = req.json()
    with app.lock:
        _account_data_slot(app, req, False)[req.params["type"]] = {
            "content": body, "pos": app.next_pos()}
        app.commit()
    return 200, {}


@route("GET", C + "/user/{userId}/rooms/{roomId}/account_data/{type}")
def h_get_room_account_data(app, req):
    with app.lock:
        v = _account_data_slot(app, req, True).get(req.params["type"])
        if v is None:
            raise MxError(404, "M_NOT_FOUND", "Account data not found")
        return 200, v["content"]


@route("PUT", C + "/user/{userId}/rooms/{roomId}/account_data/{type}")
def h_put_room_account_data(app, req):
    body = req.json()
    with app.lock:
        _account_data_slot(app, req, True)[req.params["type"]] = {
            "content": body, "pos": app.next_pos()}
        app.commit()
    return 200, {}


@route("POST", C + "/user/{userId}/filter")
def h_post_filter(app, req):
    if req.params["userId"] != req.user_id:
        raise MxError(403, "M_FORBIDDEN", "Cannot create filters for other users")
    body = req.json()
    with app.lock:
        fid = str(app.next_seq())
        app.s["filters"].setdefault(req.user_id, {})[fid] = body
        app.commit()
    return 200, {"filter_id": fid}


@route("GET", C + "/user/{userId}/filter/{filterId}")
def h_get_filter(app, req):
    if req.params["userId"] != req.user_id:
        raise MxError(403, "M_FORBIDDEN", "Cannot read other users' filters")
    with app.lock:
        f = app.s["filters"].get(req.user_id, {}).get(req.params["filterId"])
    if f is None:
        raise MxError(404, "M_NOT_FOUND", "No such filter")
    return 200, f


@route("GET", C + "/pushrules/")
def h_pushrules(app, req):
    return 200, {"global": {"content": [], "override": [], "room": [], "sender": [],
                            "underride": []}}


# --------------------------------------------------------------------------
# Rooms: creation and membership
# --------------------------------------------------------------------------

@route("POST", C + "/createRoom")
def h_create_room(app, req):
    body = req.json()
    creator = req.user_id
    version = str(body.get("room_version", app.compat["default_room_version"]))
    if version not in ROOM_VERSIONS:
        raise MxError(400, "M_UNSUPPORTED_ROOM_VERSION", f"Unsupported room version {version}")
    v = int(version)
    preset = body.get("preset") or ("public_chat" if body.get("visibility") == "public"
                                    else "private_chat")
    if preset not in ("private_chat", "public_chat", "trusted_private_chat"):
        raise MxError(400, "M_INVALID_PARAM", f"Unknown preset {preset}")
    invite = body.get("invite", [])
    if not isinstance(invite, list) or not all(isinstance(i, str) for i in invite):
        raise MxError(400, "M_BAD_JSON", "invite must be a list of user IDs")
    initial_state = body.get("initial_state", [])
    if not isinstance(initial_state, list):
        raise MxError(400, "M_BAD_JSON", "initial_state must be a list")
    creation = dict(body.get("creation_content") or {})
    pl_override = body.get("power_level_content_override") or {}
    if not isinstance(pl_override, dict) or not isinstance(creation, dict):
        raise MxError(400, "M_BAD_JSON", "creation_content / power_level_content_override "
                                         "must be objects")
    with app.lock:
        for i in invite:
            if i not in app.s["users"]:
                raise MxError(404, "M_NOT_FOUND", f"Unknown user {i}")
        alias = None
        if body.get("room_alias_name"):
            alias = f"#{body['room_alias_name']}:{app.server_name}"
            if alias in app.s["aliases"]:
                raise MxError(400, "M_ROOM_IN_USE", "Room alias already taken")
        creators = [creator]
        creation.pop("creator", None)
        creation["room_version"] = version
        if v >= 12:
            extra = list(creation.get("additional_creators", []))
            if preset == "trusted_private_chat":
                extra += [i for i in invite if i not in extra]
            if extra:
                creation["additional_creators"] = extra
            creators += [c for c in extra if c != creator]
        elif v <= 10:
            creation["creator"] = creator     # v11 removed `creator`
        # Power levels (Synapse defaults; `invite` 0 for the private presets)
        users = {} if v >= 12 else {creator: 100}
        if preset == "trusted_private_chat" and v < 12:
            for i in invite:
                users[i] = 100
        pl = {"users": users, "users_default": 0,
              "events": {"m.room.name": 50, "m.room.power_levels": 100,
                         "m.room.history_visibility": 100, "m.room.canonical_alias": 50,
                         "m.room.avatar": 50, "m.room.tombstone": 150 if v >= 12 else 100,
                         "m.room.server_acl": 100, "m.room.encryption": 100},
              "events_default": 0, "state_default": 50, "ban": 50, "kick": 50,
              "redact": 50, "invite": 50 if preset == "public_chat" else 0,
              "notifications": {"room": 50}}
        pl.update(pl_override)
        if v >= 12 and any(c in pl.get("users", {}) for c in creators):
            raise MxError(400, "M_INVALID_ROOM_STATE",
                          "room creators cannot be listed in power levels (room v12)")
        # Planned state after the power levels, in the spec's order.
        planned = []
        if alias:
            planned.append(("m.room.canonical_alias", "", {"alias": alias}))
        planned.append(("m.room.join_rules", "",
                        {"join_rule": "public" if preset == "public_chat" else "invite"}))
        planned.append(("m.room.history_visibility", "", {"history_visibility": "shared"}))
        planned.append(("m.room.guest_access", "",
                        {"guest_access": "forbidden" if preset == "public_chat" else "can_join"}))
        for st in initial_state:
            if not isinstance(st, dict) or not isinstance(st.get("type"), str) \
                    or not isinstance(st.get("content"), dict):
                raise MxError(400, "M_BAD_JSON", "bad initial_state entry")
            if st["type"] in ("m.room.create", "m.room.member"):
                raise MxError(400, "M_INVALID_ROOM_STATE", f"{st['type']} not allowed in initial_state")
            planned.append((st["type"], st.get("state_key", ""), st["content"]))
        if body.get("name") is not None:
            planned.append(("m.room.name", "", {"name": body["name"]}))
        if body.get("topic") is not None:
            planned.append(("m.room.topic", "", {"topic": body["topic"], "m.topic": [
                {"body": body["topic"], "mimetype": "text/plain"}]}))
        # Check the creator may send all of it with the final power levels.
        mine = INFINITE_PL if v >= 12 else pl.get("users", {}).get(creator, pl.get("users_default", 0))
        for etype, _, _ in planned:
            need = pl.get("events", {}).get(etype, pl.get("state_default", 50))
            if mine < need:
                raise MxError(400, "M_INVALID_ROOM_STATE",
                              f"creator's power level is too low to send {etype}")
        # Create it.
        if v >= 12:
            h = b64u(hashlib.sha256(secrets.token_bytes(32)).digest())
            room_id, create_id = "!" + h, "$" + h
        else:
            room_id = "!" + "".join(random.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
                                    for _ in range(18)) + ":" + app.server_name
            create_id = None
        room = {"room_id": room_id, "version": version, "creators": creators,
                "state": {}, "events": []}
        app.s["rooms"][room_id] = room
        app.append(room, creator, "m.room.create", creation, state_key="", event_id=create_id)
        app.append(room, creator, "m.room.member", app.member_content(creator, "join"),
                   state_key=creator)
        app.append(room, creator, "m.room.power_levels", pl, state_key="")
        if alias:
            app.s["aliases"][alias] = room_id
        for etype, key, content in planned:
            app.append(room, creator, etype, content, state_key=key)
        for i in invite:
            if i == creator:
                continue
            extra = {"is_direct": True} if body.get("is_direct") else {}
            app.append(room, creator, "m.room.member",
                       app.member_content(i, "invite", **extra), state_key=i)
        app.commit()
        return 200, {"room_id": room_id}


@route("POST", C + "/rooms/{roomId}/invite")
def h_invite(app, req):
    body = req.json()
    if not isinstance(body.get("user_id"), str):
        raise MxError(400, "M_MISSING_PARAM", "user_id is required")
    # `is_direct` is not in the spec'd body; honoured for convenience.
    extra = {"is_direct": True} if body.get("is_direct") else {}
    with app.lock:
        app.do_membership(req.params["roomId"], req.user_id, body["user_id"], "invite",
                          reason=body.get("reason"), extra=extra)
        app.commit()
    return 200, {}


def _join(app, req, room_id_or_alias):
    req.json()
    with app.lock:
        rid = room_id_or_alias
        if rid.startswith("#"):
            rid = app.s["aliases"].get(rid)
            if not rid:
                raise MxError(404, "M_NOT_FOUND", "Room alias not found")
        app.do_membership(rid, req.user_id, req.user_id, "join")
        app.commit()
    return 200, {"room_id": rid}


@route("POST", C + "/rooms/{roomId}/join")
def h_join_room(app, req):
    return _join(app, req, req.params["roomId"])


@route("POST", C + "/join/{roomIdOrAlias}")
def h_join(app, req):
    return _join(app, req, req.params["roomIdOrAlias"])


@route("POST", C + "/rooms/{roomId}/leave")
def h_leave(app, req):
    body = req.json()
    with app.lock:
        app.do_membership(req.params["roomId"], req.user_id, req.user_id, "leave",
                          reason=body.get("reason"))
        app.commit()
    return 200, {}


@route("POST", C + "/rooms/{roomId}/forget")
def h_forget(app, req):
    return 200, {}


def _kickban(app, req, membership, unban=False):
    body = req.json()
    if not isinstance(body.get("user_id"), str):
        raise MxError(400, "M_MISSING_PARAM", "user_id is required")
    with app.lock:
        room = app.room(req.params["roomId"])
        if unban and room is not None and app.membership(room, body["user_id"]) != "ban":
            raise MxError(403, "M_FORBIDDEN", "User is not banned")
        app.do_membership(req.params["roomId"], req.user_id, body["user_id"], membership,
                          reason=body.get("reason"))
        app.commit()
    return 200, {}


@route("POST", C + "/rooms/{roomId}/kick")
def h_kick(app, req):
    return _kickban(app, req, "leave")


@route("POST", C + "/rooms/{roomId}/ban")
def h_ban(app, req):
    return _kickban(app, req, "ban")


@route("POST", C + "/rooms/{roomId}/unban")
def h_unban(app, req):
    return _kickban(app, req, "leave", unban=True)


@route("GET", C + "/joined_rooms")
def h_joined_rooms(app, req):
    with app.lock:
        return 200, {"joined_rooms": [rid for rid, r in app.s["rooms"].items()
                                      if app.membership(r, req.user_id) == "join"]}


@route("GET", C + "/directory/room/{roomAlias}", auth=False)
def h_get_alias(app, req):
    with app.lock:
        rid = app.s["aliases"].get(req.params["roomAlias"])
    if not rid:
        raise MxError(404, "M_NOT_FOUND", "Room alias not found")
    return 200, {"room_id": rid, "servers": [app.server_name]}


@route("PUT", C + "/directory/room/{roomAlias}")
def h_put_alias(app, req):
    body = req.json()
    with app.lock:
        alias = req.params["roomAlias"]
        if not alias.endswith(":" + app.server_name):
            raise MxError(400, "M_INVALID_PARAM", "alias on another server")
        if alias in app.s["aliases"]:
            raise MxError(409, "M_UNKNOWN", "Room alias already exists")
        app.room_for_member(body.get("room_id", ""), req.user_id)
        app.s["aliases"][alias] = body["room_id"]
        app.commit()
    return 200, {}


@route("DELETE", C + "/directory/room/{roomAlias}")
def h_del_alias(app, req):
    with app.lock:
        if app.s["aliases"].pop(req.params["roomAlias"], None) is None:
            raise MxError(404, "M_NOT_FOUND", "Room alias not found")
        app.commit()
    return 200, {}


# --------------------------------------------------------------------------
# Rooms: sending, state, redaction  (transaction ids: (device, path) scope)
# --------------------------------------------------------------------------

def txn_key(req):
    # Spec: a retransmission is the same transaction id on the same path from
    # the same device (v1.7+; the access token before: COMPAT txn_scope).
    # The path is normalised (template + decoded params).
    scope = req.token if req.app.compat["txn_scope"] == "token" else req.device_id
    return "|".join([req.user_id, scope, req.route.template,
                     json.dumps(req.params, sort_keys=True)])


# Bytes a PDU adds around its content over federation (event id, room id,
# sender, type, timestamps, depth, prev/auth events, hashes, signatures):
# with it, the 65,536-byte limit leaves ~64,880 bytes of content, as
# measured on Synapse.
PDU_OVERHEAD = 580


def check_new_event(app, room, sender, etype, content, state_key=None):
    """What real servers refuse in an event a client sends (COMPAT)."""
    try:
        raw = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        if app.compat["lone_surrogates"] == "refuse":
            # Synapse: the database cannot store it; the client sees a 500
            raise MxError(500, "M_UNKNOWN", "Internal server error")
        raw = json.dumps(content, separators=(",", ":")).encode()
    limit = app.compat["max_event_bytes"]
    size = len(raw) + len(room["room_id"]) + len(sender) + len(etype) + \
        len(state_key or "") + PDU_OVERHEAD
    if limit and size > limit:
        raise MxError(413, "M_TOO_LARGE", "event too large")
    rel = content.get("m.relates_to")
    if app.compat["relation_unknown_target"] == "refuse" and isinstance(rel, dict) and \
            isinstance(rel.get("rel_type"), str) and isinstance(rel.get("event_id"), str):
        parent = app.ev(rel["event_id"])
        if parent is None:
            # Synapse EventCreationHandler._validate_event_relation
            raise MxError(400, "M_UNKNOWN", "Can't send relation to unknown event")
        if parent["room_id"] != room["room_id"]:
            raise MxError(400, "M_UNKNOWN", "Relations must be in the same room")
        prel = parent["content"].get("m.relates_to")
        if rel["rel_type"] == "m.thread" and isinstance(prel, dict) and prel.get("rel_type"):
            raise MxError(400, "M_UNKNOWN", "Cannot start threads from an event with a relation")


@route("PUT", C + "/rooms/{roomId}/send/{eventType}/{txnId}")
def h_send(app, req):
    body = req.json()
    with app.lock:
        key = txn_key(req)
        if key in app.s["txns"]:
            return 200, app.s["txns"][key]
        room = app.room_for_member(req.params["roomId"], req.user_id)
        etype = req.params["eventType"]
        have = app.user_pl(room, req.user_id)
        need = app.required_pl(room, etype, False)
        if have < need:
            raise MxError(403, "M_FORBIDDEN",
                          f"You don't have permission to post that to the room. "
                          f"user_level ({have}) < send_level ({need})")
        check_new_event(app, room, req.user_id, etype, body)
        txn = [req.user_id, req.device_id, req.params["txnId"], req.token]
        if etype == "m.room.redaction" and isinstance(body.get("redacts"), str):
            e = app.redact(room, req.user_id, body["redacts"], body.get("reason"), txn)
        else:
            e = app.append(room, req.user_id, etype, body, txn=txn)
        app.s["txns"][key] = {"event_id": e["event_id"]}
        app.mark("txns", key)
        app.commit()
        return 200, {"event_id": e["event_id"]}


@route("PUT", C + "/rooms/{roomId}/redact/{eventId}/{txnId}")
def h_redact(app, req):
    body = req.json()
    with app.lock:
        key = txn_key(req)
        if key in app.s["txns"]:
            return 200, app.s["txns"][key]
        room = app.room_for_member(req.params["roomId"], req.user_id)
        e = app.redact(room, req.user_id, req.params["eventId"], body.get("reason"),
                       [req.user_id, req.device_id, req.params["txnId"]])
        app.s["txns"][key] = {"event_id": e["event_id"]}
        app.mark("txns", key)
        app.commit()
        return 200, {"event_id": e["event_id"]}


def _put_state(app, req, key):
    body = req.json()
    etype = req.params["eventType"]
    with app.lock:
        room = app.room_for_member(req.params["roomId"], req.user_id)
        check_new_event(app, room, req.user_id, etype, body, key)
        if etype == "m.room.member":
            # Route membership changes through the membership rules.
            mem = body.get("membership")
            if mem == "join" and key == req.user_id and app.membership(room, key) == "join":
                e = app.append(room, req.user_id, etype, body, state_key=key)
            else:
                e = app.do_membership(room["room_id"], req.user_id, key, mem,
                                      reason=body.get("reason"))
                if e is None:
                    e = app.member_ev(room, key)
        else:
            e = app.send_state(room, req.user_id, etype, key, body)
        app.commit()
        return 200, {"event_id": e["event_id"]}


@route("PUT", C + "/rooms/{roomId}/state/{eventType}/{stateKey*}")
def h_put_state(app, req):
    return _put_state(app, req, req.params["stateKey"])


@route("PUT", C + "/rooms/{roomId}/state/{eventType}")
def h_put_state_nokey(app, req):
    return _put_state(app, req, "")


def _get_state(app, req, key):
    with app.lock:
        room = app.room(req.params["roomId"])
        if room is None:
            raise MxError(403, "M_FORBIDDEN", "not in room")
        bound = app.visible_bound(room, req.user_id)
        st = app.state_at(room, bound + 1)
        e = st.get((req.params["eventType"], key))
        if e is None:
            raise MxError(404, "M_NOT_FOUND", "Event not found.")
        if req.q("format") == "event":
            return 200, app.client_event(e, req.user_id, req.device_id)
        return 200, e["content"]


@route("GET", C + "/rooms/{roomId}/state/{eventType}/{stateKey*}")
def h_get_state(app, req):
    return _get_state(app, req, req.params["stateKey"])


@route("GET", C + "/rooms/{roomId}/state/{eventType}")
def h_get_state_nokey(app, req):
    return _get_state(app, req, "")


@route("GET", C + "/rooms/{roomId}/state")
def h_get_all_state(app, req):
    with app.lock:
        room = app.room(req.params["roomId"])
        if room is None:
            raise MxError(403, "M_FORBIDDEN", "not in room")
        bound = app.visible_bound(room, req.user_id)
        st = sorted(app.state_at(room, bound + 1).values(), key=lambda e: e["_pos"])
        return 200, [app.client_event(e, req.user_id, req.device_id) for e in st]


@route("GET", C + "/rooms/{roomId}/members")
def h_members(app, req):
    with app.lock:
        room = app.room(req.params["roomId"])
        if room is None:
            raise MxError(403, "M_FORBIDDEN", "not in room")
        bound = app.visible_bound(room, req.user_id)
        if req.q("at"):
            bound = min(bound, app.parse_tok(req.q("at"), "at"))
        st = app.state_at(room, bound + 1)
        out = []
        for (t, _), e in sorted(st.items(), key=lambda kv: kv[1]["_pos"]):
            if t != "m.room.member":
                continue
            m = e["content"].get("membership")
            if req.q("membership") and m != req.q("membership"):
                continue
            if req.q("not_membership") and m == req.q("not_membership"):
                continue
            out.append(app.client_event(e, req.user_id, req.device_id))
        return 200, {"chunk": out}


@route("GET", C + "/rooms/{roomId}/joined_members")
def h_joined_members(app, req):
    with app.lock:
        room = app.room_for_member(req.params["roomId"], req.user_id)
        out = {}
        for uid, eid in room["state"].get("m.room.member", {}).items():
            c = app.ev(eid)["content"]
            if c.get("membership") == "join":
                out[uid] = {"display_name": c.get("displayname"),
                            "avatar_url": c.get("avatar_url")}
        return 200, {"joined": out}


@route("GET", C + "/rooms/{roomId}/event/{eventId}")
def h_get_event(app, req):
    with app.lock:
        room = app.room(req.params["roomId"])
        if room is None:
            raise MxError(404, "M_NOT_FOUND", "Event not found.")
        bound = app.visible_bound(room, req.user_id)
        e = app.ev(req.params["eventId"])
        if not e or e["room_id"] != room["room_id"] or e["_pos"] > bound:
            raise MxError(404, "M_NOT_FOUND", "Event not found.")
        edits = app.latest_edits(room) if app.compat["edits_in_messages"] == "replace" else {}
        return 200, app.served_edited(app.client_event(e, req.user_id, req.device_id), edits)


@route("GET", C + "/rooms/{roomId}/messages")
def h_messages(app, req):
    d = req.q("dir")
    if d not in ("b", "f"):
        raise MxError(400, "M_INVALID_PARAM" if d else "M_MISSING_PARAM",
                      "dir must be 'b' or 'f'")
    try:
        limit = int(req.q("limit", DEFAULT_MESSAGES_LIMIT))
    except ValueError:
        raise MxError(400, "M_INVALID_PARAM", "limit must be an integer")
    limit = max(0, min(limit, 1000))
    filt = {}
    if req.q("filter"):
        try:
            filt = json.loads(req.q("filter"))
        except ValueError:
            raise MxError(400, "M_NOT_JSON", "filter is not JSON")
        if not isinstance(filt, dict):
            raise MxError(400, "M_BAD_JSON", "filter must be an object")
    with app.lock:
        room = app.room(req.params["roomId"])
        if room is None:
            raise MxError(403, "M_FORBIDDEN", "not in room")
        bound = app.visible_bound(room, req.user_id)
        frm = req.q("from")
        to = req.q("to")
        to_pos = app.parse_tok(to, "to") if to else None
        if d == "b":
            start = app.parse_tok(frm, "from") if frm else app.s["pos"]
            hi = min(start, bound)
            lo = to_pos if to_pos is not None else 0
            cands = list(reversed(app.room_events(room, lo, hi)))
        else:
            start = app.parse_tok(frm, "from") if frm else 0
            hi = min(to_pos, bound) if to_pos is not None else bound
            cands = app.room_events(room, start, hi)
        chunk, last = [], None
        for i, e in enumerate(cands):
            if len(chunk) >= limit:
                break
            last = i
            if event_filter_ok(filt, e):
                chunk.append(e)
        edits = app.latest_edits(room) if app.compat["edits_in_messages"] == "replace" else {}
        out = {"start": app.tok(start),
               "chunk": [app.served_edited(app.client_event(e, req.user_id, req.device_id), edits)
                         for e in chunk]}
        # `end` only when more events remain in this direction (within `to`).
        if last is not None and last + 1 < len(cands):
            p = cands[last]["_pos"]
            out["end"] = app.tok(p - 1 if d == "b" else p)
        elif last is None and limit == 0 and cands:
            out["end"] = app.tok(start)
        if filt.get("lazy_load_members"):
            senders = {e["sender"] for e in chunk}
            st = app.state_at(room, bound + 1)
            out["state"] = [app.client_event(st[("m.room.member", s)], req.user_id, req.device_id)
                            for s in sorted(senders) if ("m.room.member", s) in st]
        return 200, out


def _relations(app, req):
    with app.lock:
        room = app.room(req.params["roomId"])
        if room is None:
            raise MxError(403, "M_FORBIDDEN", "not in room")
        bound = app.visible_bound(room, req.user_id)
        out = []
        for e in app.room_events(room, 0, bound):
            rel = e["content"].get("m.relates_to")
            if not isinstance(rel, dict) or rel.get("event_id") != req.params["eventId"]:
                continue
            if req.params.get("relType") and rel.get("rel_type") != req.params["relType"]:
                continue
            if req.params.get("eventType") and e["type"] != req.params["eventType"]:
                continue
            out.append(e)
        if req.q("dir", "b") == "b":
            out.reverse()
        limit = int(req.q("limit", 50))
        return 200, {"chunk": [app.client_event(e, req.user_id, req.device_id)
                               for e in out[:limit]]}


R1 = "/_matrix/client/v1/rooms/{roomId}/relations/{eventId}"
route("GET", R1)(_relations)
route("GET", R1 + "/{relType}")(_relations)
route("GET", R1 + "/{relType}/{eventType}")(_relations)


def _noop_in_room(app, req):
    req.json()
    with app.lock:
        app.room_for_member(req.params["roomId"], req.user_id)
    return 200, {}


route("PUT", C + "/rooms/{roomId}/typing/{userId}")(_noop_in_room)
route("POST", C + "/rooms/{roomId}/receipt/{receiptType}/{eventId}")(_noop_in_room)
route("POST", C + "/rooms/{roomId}/read_markers")(_noop_in_room)


@route("PUT", C + "/presence/{userId}/status")
def h_presence(app, req):
    req.json()
    return 200, {}


# --------------------------------------------------------------------------
# Sync
# --------------------------------------------------------------------------

@route("GET", C + "/sync")
def h_sync(app, req):
    try:
        timeout = max(0, int(req.q("timeout", 0)))
    except ValueError:
        raise MxError(400, "M_INVALID_PARAM", "timeout must be an integer")
    full_state = req.q("full_state") == "true"
    # COMPAT sync_cache_s: Synapse's response cache
    ttl = app.compat["sync_cache_s"]
    key = (req.user_id, req.device_id, req.q("since"), req.q("filter"), full_state, timeout)
    with app.lock:
        hit = app.sync_cache.get(key) if ttl else None
        if hit and time.monotonic() - hit[0] < ttl:
            return 200, hit[1]
    status, resp = _sync(app, req, timeout, full_state)
    if ttl and resp.get("next_batch") != req.q("since"):
        with app.lock:
            now = time.monotonic()
            for k in [k for k, v in app.sync_cache.items() if now - v[0] >= ttl]:
                del app.sync_cache[k]
            app.sync_cache[key] = (now, resp)
    return status, resp


def _sync(app, req, timeout, full_state):
    deadline = time.monotonic() + timeout / 1000.0
    with app.cond:
        since = app.parse_tok(req.q("since"), "since") if req.q("since") else None
        filt = app.load_filter(req.user_id, req.q("filter"))
        while True:
            resp, empty = app.build_sync(req.user_id, req.device_id, since, filt, full_state)
            if not empty or since is None or full_state:
                return 200, resp
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return 200, resp
            f = req.interrupt_check()
            if f:
                raise Interrupted(f)
            waiting = app.syncing.setdefault(req.user_id, [])
            # nothing for this user up to the head: caught up to it (what
            # /_test/stats "syncing" reports), even when the head moved for
            # others only (their to-device messages, key changes, rooms)
            caught = app.parse_tok(resp["next_batch"])
            waiting.append(caught)
            try:
                app.cond.wait(remaining)
            finally:
                waiting.remove(caught)


# --------------------------------------------------------------------------
# Media
# --------------------------------------------------------------------------

def _store_media(app, req, media_id):
    if len(req.body) > MAX_UPLOAD:
        raise MxError(413, "M_TOO_LARGE", "Upload is too large")
    ctype = req.headers.get("Content-Type") or "application/octet-stream"
    app.s["media"][media_id] = {"content_type": ctype, "filename": req.q("filename"),
                                "owner": req.user_id,
                                "data": base64.b64encode(req.body).decode()}
    app.mark("media", media_id)


@route("POST", "/_matrix/media/v3/upload")
def h_upload(app, req):
    with app.lock:
        mid = secrets.token_urlsafe(18)
        _store_media(app, req, mid)
        app.commit()
    return 200, {"content_uri": f"mxc://{app.server_name}/{mid}"}


@route("POST", "/_matrix/media/v1/create")
def h_media_create(app, req):
    with app.lock:
        mid = secrets.token_urlsafe(18)
        app.s["media"][mid] = {"pending": True, "owner": req.user_id}
        app.mark("media", mid)
        app.commit()
    return 200, {"content_uri": f"mxc://{app.server_name}/{mid}",
                 "unused_expires_at": now_ms() + 24 * 3600 * 1000}


@route("PUT", "/_matrix/media/v3/upload/{serverName}/{mediaId}")
def h_upload_to(app, req):
    with app.lock:
        m = app.s["media"].get(req.params["mediaId"])
        if req.params["serverName"] != app.server_name or m is None:
            raise MxError(404, "M_NOT_FOUND", "Unknown media id")
        if m.get("owner") != req.user_id:
            raise MxError(403, "M_FORBIDDEN", "Not your media id")
        if not m.get("pending"):
            raise MxError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded")
        _store_media(app, req, req.params["mediaId"])
        app.commit()
    return 200, {}


def _download(app, req):
    if req.path.startswith("/_matrix/client/v1/") and not app.compat["media_v1"]:
        raise MxError(404, "M_UNRECOGNIZED", "Unrecognized request")
    with app.lock:
        m = app.s["media"].get(req.params["mediaId"])
        if req.params["serverName"] != app.server_name or not m or m.get("pending"):
            raise MxError(404, "M_NOT_FOUND", "Not found")
        name = req.params.get("fileName") or m.get("filename")
        headers = {}
        if name:
            headers["Content-Disposition"] = "attachment; filename*=utf-8''" + \
                urllib.parse.quote(name)
        return Raw(base64.b64decode(m["data"]), m["content_type"], headers)


for _t, _auth in (("/_matrix/client/v1/media/download/{serverName}/{mediaId}", True),
                  ("/_matrix/media/v3/download/{serverName}/{mediaId}", False)):
    route("GET", _t, auth=_auth)(_download)
    route("GET", _t + "/{fileName}", auth=_auth)(_download)


@route("GET", "/_matrix/client/v1/media/config")
def h_media_config(app, req):
    if not app.compat["media_v1"]:
        raise MxError(404, "M_UNRECOGNIZED", "Unrecognized request")
    return 200, {"m.upload.size": MAX_UPLOAD}


@route("GET", "/_matrix/media/v3/config")
def h_media_config_legacy(app, req):
    return 200, {"m.upload.size": MAX_UPLOAD}


# --------------------------------------------------------------------------
# End-to-end encryption: key management, send-to-device, cross-signing
# (Client-Server API "End-to-End Encryption", "Send-to-Device messaging",
# "Cross-signing").  All of it lives in app.s["e2ee"] (persisted with the
# snapshot):
#   devkeys   {user: {device: DeviceKeys as uploaded}}
#   otks      {user: {device: {"<alg>:<id>": key}}}   (upload order, oldest first)
#   fallback  {user: {device: {alg: {"id", "key", "used"}}}}
#   xsign     {user: {"master"|"self_signing"|"user_signing": CrossSigningKey}}
#   sigs      {target user: {key id: {signer user: {signer key id: sig}}}}
#             signatures from /keys/signatures/upload
#   changes   [[pos, user], ...] device or cross-signing key changes, in
#             stream order (device_lists.changed, /keys/changes)
#   todev     {user: {device: [{"pos", "sent_in", "held", "ev"}]}}
# To-device messages take a position of the global stream; a message is
# delivered in every /sync of its device until a /sync whose `since` is at or
# after the next_batch of the first response that carried it (spec: "When
# the client calls /sync again with the next_batch token from the first
# response, the server should infer that any send-to-device messages in that
# response have been delivered successfully, and delete them").
# --------------------------------------------------------------------------

TO_DEVICE_LIMIT = 100               # spec: "100 messages is recommended"
TO_DEVICE_MAX_BYTES = 65536         # one EDU; spec: 413 M_TOO_LARGE above it


def e2ee_empty():
    return {"devkeys": {}, "otks": {}, "fallback": {}, "xsign": {}, "sigs": {},
            "changes": [], "todev": {}}


def e2ee_test_defaults():
    # uia_exempt_first_upload: spec v1.11 (MSC3967) lets a server skip UIA for
    # the first cross-signing upload (and an identical re-upload); default off
    # so that a client's UIA path (spec v1.1-v1.10, and replacing keys) is
    # exercised.  holds: to-device messages kept back (never delivered) until
    # released: [{"id", "user", "type", "sender"}].
    return {"uia_exempt_first_upload": False, "holds": [], "hold_seq": 0}


# ---- Ed25519 (RFC 8032), for checking cross-signing signatures ------------
# Pure Python, verification (and signing, for mxhs's own tests); slow but a
# few signatures per test are nothing.

_ED_P = 2 ** 255 - 19
_ED_L = 2 ** 252 + 27742317777372353535851937790883648493
_ED_D = -121665 * pow(121666, _ED_P - 2, _ED_P) % _ED_P
_ED_I = pow(2, (_ED_P - 1) // 4, _ED_P)


def _ed_add(P, Q):
    x1, y1, z1, t1 = P
    x2, y2, z2, t2 = Q
    p = _ED_P
    a = (y1 - x1) * (y2 - x2) % p
    b = (y1 + x1) * (y2 + x2) % p
    c = t1 * 2 * _ED_D * t2 % p
    d = z1 * 2 * z2 % p
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % p, g * h % p, f * g % p, e * h % p)


def _ed_mul(s, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = _ed_add(Q, P)
        P = _ed_add(P, P)
        s >>= 1
    return Q


def _ed_recover_x(y, sign):
    p = _ED_P
    if y >= p:
        return None
    x2 = (y * y - 1) * pow(_ED_D * y * y + 1, p - 2, p) % p
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (p + 3) // 8, p)
    if (x * x - x2) % p != 0:
        x = x * _ED_I % p
    if (x * x - x2) % p != 0:
        return None
    if x & 1 != sign:
        x = p - x
    return x


def _ed_decode(b):
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _ed_recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % _ED_P)


def _ed_encode(P):
    x, y, z, _ = P
    zi = pow(z, _ED_P - 2, _ED_P)
    x, y = x * zi % _ED_P, y * zi % _ED_P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


_ED_GY = 4 * pow(5, _ED_P - 2, _ED_P) % _ED_P
_ED_G = (_ed_recover_x(_ED_GY, 0), _ED_GY, 1, _ed_recover_x(_ED_GY, 0) * _ED_GY % _ED_P)


def _ed_h(m):
    return int.from_bytes(hashlib.sha512(m).digest(), "little")


def ed25519_verify(public, msg, sig):
    """public, sig: raw bytes; msg: bytes.  -> bool"""
    if len(public) != 32 or len(sig) != 64:
        return False
    A = _ed_decode(public)
    R = _ed_decode(sig[:32])
    s = int.from_bytes(sig[32:], "little")
    if A is None or R is None or s >= _ED_L:
        return False
    h = _ed_h(sig[:32] + public + msg) % _ED_L
    sB = _ed_mul(s, _ED_G)
    hA = _ed_add(R, _ed_mul(h, A))
    # projective equality
    return (sB[0] * hA[2] - hA[0] * sB[2]) % _ED_P == 0 and \
        (sB[1] * hA[2] - hA[1] * sB[2]) % _ED_P == 0


def ed25519_public(seed):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    return _ed_encode(_ed_mul(a, _ED_G))


def ed25519_sign(seed, msg):
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    A = _ed_encode(_ed_mul(a, _ED_G))
    r = _ed_h(h[32:] + msg) % _ED_L
    R = _ed_encode(_ed_mul(r, _ED_G))
    s = (r + _ed_h(R + A + msg) % _ED_L * a) % _ED_L
    return R + s.to_bytes(32, "little")


def unb64(s):
    """Unpadded (or padded) standard base64 -> bytes, or None."""
    if not isinstance(s, str):
        return None
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except ValueError:
        return None


def canonical_json(obj):
    """Appendices "Canonical JSON": sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def signed_bytes(obj):
    """Appendices "Signing JSON": the object without signatures / unsigned."""
    return canonical_json({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")})


def check_signature(obj, user_id, key_id, public_b64):
    """Does obj carry a valid signature by (user_id, key_id) made with the
    ed25519 public key public_b64?"""
    sig = ((obj.get("signatures") or {}).get(user_id) or {}).get(key_id)
    pub, raw = unb64(public_b64), unb64(sig)
    if pub is None or raw is None:
        return False
    return ed25519_verify(pub, signed_bytes(obj), raw)


def _xsign_pub(key):
    """The ed25519 public key (unpadded base64) of a CrossSigningKey."""
    (kid, val), = key["keys"].items()
    return val


class E2EE:
    """The state-changing and state-reading steps (call under app.lock)."""

    def __init__(self, app):
        self.app = app
        self.e = app.s["e2ee"]

    # ---- device list changes --------------------------------------------
    def key_changed(self, user_id):
        self.e["changes"].append([self.app.next_pos(), user_id])

    def shares(self, a, b, encrypted_only, at=None):
        """Do a and b share a room (both joined)?  at: stream position
        (state as of it) or None for now."""
        return b in self.partners(a, encrypted_only, at)

    def partners(self, user_id, encrypted_only, at=None, rooms_changed=None):
        """Users sharing a (encrypted) room with user_id, both joined, now or at
        stream position `at`.  Includes user_id itself when it is in such a
        room."""
        app = self.app
        out = set()
        for room in app.s["rooms"].values():
            if at is None or (rooms_changed is not None and room["room_id"] not in rooms_changed):
                st = None
            else:
                st = app.state_at(room, at + 1)
            if st is None:
                if encrypted_only and not room["state"].get("m.room.encryption", {}).get(""):
                    continue
                if app.membership(room, user_id) != "join":
                    continue
                for m in room["state"].get("m.room.member", {}):
                    if app.membership(room, m) == "join":
                        out.add(m)
            else:
                if encrypted_only and ("m.room.encryption", "") not in st:
                    continue
                me = st.get(("m.room.member", user_id))
                if not me or me["content"].get("membership") != "join":
                    continue
                for (t, k), ev in st.items():
                    if t == "m.room.member" and ev["content"].get("membership") == "join":
                        out.add(k)
        return out

    def device_lists(self, user_id, lo, hi):
        """(changed, left) for a sync (or /keys/changes) from lo to hi."""
        app = self.app
        ch = self.e["changes"]
        i = bisect.bisect_right(ch, lo, key=lambda c: c[0])
        j = bisect.bisect_right(ch, hi, key=lambda c: c[0])
        who = {c[1] for c in ch[i:j]}
        # Rooms whose membership or encryption changed in (lo, hi]: only
        # those need their state at `lo`.
        rooms_changed = set()
        for room in app.s["rooms"].values():
            for e in app.room_events(room, lo, hi):
                if e["type"] in ("m.room.member", "m.room.encryption") and "state_key" in e:
                    rooms_changed.add(room["room_id"])
                    break
        changed = set()
        if who:
            now_any = self.partners(user_id, False)
            changed = {u for u in who if u in now_any or u == user_id}
        left = set()
        if rooms_changed:
            then_enc = self.partners(user_id, True, at=lo, rooms_changed=rooms_changed)
            now_enc = self.partners(user_id, True)
            changed |= now_enc - then_enc - {user_id}
            left = then_enc - now_enc - {user_id}
        return sorted(changed), sorted(left - changed)

    # ---- one-time / fallback keys ---------------------------------------
    def otk_counts(self, user_id, device_id):
        counts = {"signed_curve25519": 0}
        for kid in self.e["otks"].get(user_id, {}).get(device_id, {}):
            alg = kid.split(":", 1)[0]
            counts[alg] = counts.get(alg, 0) + 1
        return counts

    def unused_fallback(self, user_id, device_id):
        fb = self.e["fallback"].get(user_id, {}).get(device_id, {})
        return sorted(alg for alg, v in fb.items() if not v["used"])

    def device_gone(self, user_id, device_id):
        had = device_id in self.e["devkeys"].get(user_id, {})
        for sec in ("devkeys", "otks", "fallback", "todev"):
            self.e[sec].get(user_id, {}).pop(device_id, None)
        self.e["sigs"].get(user_id, {}).pop(device_id, None)
        if had:
            self.key_changed(user_id)

    # ---- to-device -------------------------------------------------------
    def held(self, user_id, msg):
        for h in self.app.e2ee_test["holds"]:
            if h.get("user") not in (None, user_id):
                continue
            if h.get("type") not in (None, msg["ev"]["type"]):
                continue
            if h.get("sender") not in (None, msg["ev"]["sender"]):
                continue
            return True
        return False

    def enqueue(self, user_id, device_id, ev):
        q = self.e["todev"].setdefault(user_id, {}).setdefault(device_id, [])
        msg = {"pos": self.app.next_pos(), "sent_in": None, "held": False, "ev": ev}
        msg["held"] = self.held(user_id, msg)
        q.append(msg)

    def release(self):
        n = 0
        for devs in self.e["todev"].values():
            for q in devs.values():
                for m in q:
                    if m["held"]:
                        m["held"] = False
                        m["pos"] = self.app.next_pos()
                        n += 1
        for devs in self.e["todev"].values():
            for q in devs.values():
                q.sort(key=lambda m: m["pos"])
        return n

    def to_device_for_sync(self, user_id, device_id, since, head):
        """Drop what `since` acknowledges, then the pending messages (oldest
        first, at most TO_DEVICE_LIMIT).  -> (events, state changed)"""
        q = self.e["todev"].get(user_id, {}).get(device_id)
        if not q:
            return [], False
        changed = False
        if since is not None:
            keep = [m for m in q if m["sent_in"] is None or m["sent_in"] > since]
            if len(keep) != len(q):
                q[:] = keep
                changed = True
        out = []
        for m in q:
            if m["held"]:
                continue
            if len(out) >= TO_DEVICE_LIMIT:
                break
            if m["sent_in"] is None:
                m["sent_in"] = head
                changed = True
            out.append(m["ev"])
        return out, changed

    def sync(self, user_id, device_id, since, resp):
        """Fill the E2EE parts of a /sync answer; -> True when they carry
        something a long-poll must return for."""
        app = self.app
        head = app.s["pos"]
        events, changed = self.to_device_for_sync(user_id, device_id, since, head)
        if changed and app.state_file:
            app.save_snapshot()
        resp["to_device"] = {"events": events}
        if since is not None:
            ch, left = self.device_lists(user_id, since, head)
        else:
            ch, left = [], []        # spec: device_lists only on incremental syncs
        resp["device_lists"] = {"changed": ch, "left": left}
        resp["device_one_time_keys_count"] = self.otk_counts(user_id, device_id)
        resp["device_unused_fallback_key_types"] = self.unused_fallback(user_id, device_id)
        return bool(events or ch or left)

    # ---- /keys/query ------------------------------------------------------
    def with_sigs(self, obj, target, key_id, visible):
        """obj plus the uploaded signatures on (target, key_id) that pass
        visible(signer_user)."""
        extra = self.e["sigs"].get(target, {}).get(key_id, {})
        if not extra:
            return obj
        obj = json.loads(json.dumps(obj))
        sigs = obj.setdefault("signatures", {})
        for signer, by in extra.items():
            if visible(signer):
                sigs.setdefault(signer, {}).update(by)
        return obj


def _e2ee(app):
    return E2EE(app)


def _obj(body, name, required=False):
    v = body.get(name)
    if v is None:
        if required:
            raise MxError(400, "M_MISSING_PARAM", f"{name} is required")
        return {}
    if not isinstance(v, dict):
        raise MxError(400, "M_BAD_JSON", f"{name} must be an object")
    return v


@route("POST", C + "/keys/upload")
def h_keys_upload(app, req):
    body = req.json()
    dk = body.get("device_keys")
    otks = _obj(body, "one_time_keys")
    fbs = _obj(body, "fallback_keys")
    uid, dev = req.user_id, req.device_id
    if dk is not None:
        if not isinstance(dk, dict):
            raise MxError(400, "M_BAD_JSON", "device_keys must be an object")
        for f in ("user_id", "device_id", "algorithms", "keys", "signatures"):
            if f not in dk:
                raise MxError(400, "M_MISSING_PARAM", f"device_keys.{f} is required")
        # spec DeviceKeys: "Must match the user ID / device ID used when logging in."
        if dk["user_id"] != uid or dk["device_id"] != dev:
            raise MxError(400, "M_INVALID_PARAM",
                          "device_keys.user_id / device_id must match the access token")
        if not isinstance(dk["keys"], dict) or not isinstance(dk["algorithms"], list):
            raise MxError(400, "M_BAD_JSON", "device_keys.keys / algorithms malformed")
    for what, keys in (("one_time_keys", otks), ("fallback_keys", fbs)):
        for kid, k in keys.items():
            if ":" not in kid or not (isinstance(k, str) or isinstance(k, dict)):
                raise MxError(400, "M_BAD_JSON", f"{what}: bad key {kid!r}")
    with app.lock:
        e = app.s["e2ee"]
        x = _e2ee(app)
        mine = e["otks"].setdefault(uid, {}).setdefault(dev, {})
        for kid, k in otks.items():
            if kid in mine and mine[kid] != k:
                raise MxError(400, "M_INVALID_PARAM",
                              f"One time key {kid} already exists with other content")
        if dk is not None:
            old = e["devkeys"].setdefault(uid, {}).get(dev)
            if old != dk:
                e["devkeys"][uid][dev] = dk
                e["sigs"].get(uid, {}).pop(dev, None)
                x.key_changed(uid)
        for kid, k in otks.items():
            mine[kid] = k
        fb = e["fallback"].setdefault(uid, {}).setdefault(dev, {})
        for kid, k in fbs.items():
            alg = kid.split(":", 1)[0]
            cur = fb.get(alg)
            if cur and cur["id"] == kid and cur["key"] == k:
                continue                 # same key again: keeps its used flag
            fb[alg] = {"id": kid, "key": k, "used": False}   # one per algorithm
        app.commit()
        return 200, {"one_time_key_counts": x.otk_counts(uid, dev)}


@route("POST", C + "/keys/query")
def h_keys_query(app, req):
    body = req.json()
    want = _obj(body, "device_keys", required=True)
    me = req.user_id
    out = {"device_keys": {}, "failures": {}, "master_keys": {}, "self_signing_keys": {},
           "user_signing_keys": {}}
    with app.lock:
        e = app.s["e2ee"]
        x = _e2ee(app)
        for user, devs in want.items():
            if not isinstance(devs, list):
                raise MxError(400, "M_BAD_JSON", "device_keys values must be lists")
            if user not in app.s["users"]:
                continue                 # unknown: missing from the result
            have = e["devkeys"].get(user, {})
            names = app.s["users"][user]["devices"]
            res = {}
            for d, k in have.items():
                if devs and d not in devs:
                    continue
                k = x.with_sigs(k, user, d, lambda s, user=user: s == user)
                k = dict(k)
                k["unsigned"] = dict(k.get("unsigned") or {})
                dn = (names.get(d) or {}).get("display_name")
                if dn is not None:
                    k["unsigned"]["device_display_name"] = dn
                res[d] = k
            out["device_keys"][user] = res
            xs = e["xsign"].get(user, {})
            if "master" in xs:
                pub = _xsign_pub(xs["master"])
                # visible: the owner's own signatures (its devices), and the
                # requester's own (its user-signing key); not third parties'
                out["master_keys"][user] = x.with_sigs(
                    xs["master"], user, pub, lambda s, user=user: s in (user, me))
            if "self_signing" in xs:
                out["self_signing_keys"][user] = xs["self_signing"]
            if user == me and "user_signing" in xs:
                out["user_signing_keys"][user] = xs["user_signing"]
    return 200, out


@route("POST", C + "/keys/claim")
def h_keys_claim(app, req):
    body = req.json()
    want = _obj(body, "one_time_keys", required=True)
    out = {"one_time_keys": {}, "failures": {}}
    with app.lock:
        e = app.s["e2ee"]
        for user, devs in want.items():
            if not isinstance(devs, dict):
                raise MxError(400, "M_BAD_JSON", "one_time_keys values must be objects")
            for dev, alg in devs.items():
                if not isinstance(alg, str):
                    raise MxError(400, "M_BAD_JSON", "algorithm must be a string")
                pool = e["otks"].get(user, {}).get(dev, {})
                kid = next((k for k in pool if k.split(":", 1)[0] == alg), None)
                if kid is not None:
                    key = pool.pop(kid)          # spec: each one-time key claimed once
                else:
                    fb = e["fallback"].get(user, {}).get(dev, {}).get(alg)
                    if not fb:
                        continue                 # nothing to give: device left out
                    kid, key = fb["id"], fb["key"]
                    fb["used"] = True            # reported via device_unused_fallback_key_types
                out["one_time_keys"].setdefault(user, {}).setdefault(dev, {})[kid] = key
        app.commit()
    return 200, out


@route("GET", C + "/keys/changes")
def h_keys_changes(app, req):
    if not req.q("from"):
        raise MxError(400, "M_MISSING_PARAM", "from is required")
    with app.lock:
        lo = app.parse_tok(req.q("from"), "from")
        hi = app.parse_tok(req.q("to"), "to") if req.q("to") else app.s["pos"]
        changed, left = _e2ee(app).device_lists(req.user_id, lo, max(lo, hi))
    return 200, {"changed": changed, "left": left}


@route("PUT", C + "/sendToDevice/{eventType}/{txnId}")
def h_send_to_device(app, req):
    body = req.json()
    messages = _obj(body, "messages", required=True)
    for user, devs in messages.items():
        if not isinstance(devs, dict) or not all(isinstance(c, dict) for c in devs.values()):
            raise MxError(400, "M_BAD_JSON", "messages: {user: {device: content}}")
        for c in devs.values():
            if len(canonical_json(c)) > TO_DEVICE_MAX_BYTES:
                raise MxError(413, "M_TOO_LARGE",
                              f"device message to {user} too large to fit in a single EDU")
    with app.lock:
        key = txn_key(req)               # (device, path) scope, like /send
        if key in app.s["txns"]:
            return 200, {}
        x = _e2ee(app)
        etype = req.params["eventType"]
        for user, devs in messages.items():
            u = app.s["users"].get(user)
            if u is None:
                continue
            for dev, content in devs.items():
                targets = list(u["devices"]) if dev == "*" else [dev]
                for d in targets:
                    if d in u["devices"]:
                        x.enqueue(user, d, {"sender": req.user_id, "type": etype,
                                            "content": content})
        app.s["txns"][key] = {}
        app.mark("txns", key)
        app.commit()
    return 200, {}


def _check_xsign_key(app, uid, key, usage):
    if not isinstance(key, dict):
        raise MxError(400, "M_BAD_JSON", f"{usage} key must be an object")
    if key.get("user_id") != uid:
        raise MxError(400, "M_INVALID_PARAM", f"{usage} key: user_id must be {uid}")
    if not isinstance(key.get("usage"), list) or usage not in key["usage"]:
        raise MxError(400, "M_INVALID_PARAM", f"{usage} key: usage must contain {usage!r}")
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise MxError(400, "M_INVALID_PARAM", f"{usage} key: keys must have exactly one entry")
    (kid, val), = keys.items()
    if kid != "ed25519:" + str(val) or unb64(val) is None or len(unb64(val)) != 32:
        raise MxError(400, "M_INVALID_PARAM", f"{usage} key: keys must be ed25519:<public key>")
    if val in app.s["users"][uid]["devices"]:
        raise MxError(403, "M_FORBIDDEN", "Key ID in use")   # spec: same as a device ID
    return val


@route("POST", C + "/keys/device_signing/upload")
def h_device_signing_upload(app, req):
    body = req.json()
    uid = req.user_id
    with app.lock:
        e = app.s["e2ee"]
        cur = e["xsign"].get(uid, {})
        new = {}
        for field, usage in (("master_key", "master"), ("self_signing_key", "self_signing"),
                             ("user_signing_key", "user_signing")):
            if body.get(field) is not None:
                _check_xsign_key(app, uid, body[field], usage)
                new[usage] = body[field]
        master = new.get("master") or cur.get("master")
        if master is None:
            raise MxError(400, "M_MISSING_PARAM", "No master key available")
        mpub = _xsign_pub(master)
        for usage in ("self_signing", "user_signing"):
            if usage in new and not check_signature(new[usage], uid, "ed25519:" + mpub, mpub):
                raise MxError(400, "M_INVALID_SIGNATURE",
                              f"{usage} key is not signed by the master key")
        # User-interactive authentication (spec "User-Interactive Authentication
        # API"): m.login.password with the account's password.
        same = all(cur.get(k) == v for k, v in new.items())
        exempt = app.e2ee_test["uia_exempt_first_upload"] and ("master" not in cur or same)
        if not exempt:
            refused = _uia_password(app, req, body.get("auth"))
            if refused:
                return refused
        if not same or not cur:
            e["xsign"].setdefault(uid, {}).update(new)
            _e2ee(app).key_changed(uid)
        app.commit()
    return 200, {}


def _uia_password(app, req, auth):
    """None when auth completes m.login.password for the requester, else the
    401 answer (flows, params, session; errcode when an attempt failed)."""
    flows = {"flows": [{"stages": ["m.login.password"]}], "params": {}}
    if not isinstance(auth, dict) or not auth.get("type"):
        session = secrets.token_urlsafe(16)
        app.uia_sessions.add(session)
        return 401, dict(flows, session=session)
    session = auth.get("session") or secrets.token_urlsafe(16)
    if auth.get("type") != "m.login.password":
        return 401, dict(flows, session=session, errcode="M_UNRECOGNIZED",
                         error="Unknown auth type")
    ident = auth.get("identifier")
    user = ident.get("user") if isinstance(ident, dict) else auth.get("user")
    if isinstance(user, str) and not user.startswith("@"):
        user = app.uid(user)
    u = app.s["users"].get(req.user_id)
    if user != req.user_id or not u or u["password"] is None or \
            auth.get("password") != u["password"]:
        return 401, dict(flows, session=session, errcode="M_FORBIDDEN",
                         error="Invalid username or password")
    app.uia_sessions.discard(session)
    return None


@route("POST", C + "/keys/signatures/upload")
def h_signatures_upload(app, req):
    body = req.json()
    me = req.user_id
    failures = {}

    def fail(user, kid, errcode, error):
        failures.setdefault(user, {})[kid] = {"errcode": errcode, "error": error}

    with app.lock:
        e = app.s["e2ee"]
        x = _e2ee(app)
        mine = e["xsign"].get(me, {})
        touched = set()
        for user, objs in body.items():
            if not isinstance(objs, dict):
                raise MxError(400, "M_BAD_JSON", "body: {user: {key id: signed object}}")
            for kid, obj in objs.items():
                if not isinstance(obj, dict):
                    fail(user, kid, "M_BAD_JSON", "not an object")
                    continue
                # what is being signed, and which signing keys may sign it
                xs = e["xsign"].get(user, {})
                target = None
                signers = {}             # signer key id -> public key
                if kid in e["devkeys"].get(user, {}) and user == me:
                    target = e["devkeys"][user][kid]
                    if "self_signing" in mine:
                        p = _xsign_pub(mine["self_signing"])
                        signers["ed25519:" + p] = p
                elif "master" in xs and kid == _xsign_pub(xs["master"]):
                    target = xs["master"]
                    if user == me:       # own master key, signed by own devices
                        for d, dk in e["devkeys"].get(me, {}).items():
                            p = dk.get("keys", {}).get("ed25519:" + d)
                            if p:
                                signers["ed25519:" + d] = p
                    elif "user_signing" in mine:   # another user's, by my USK
                        p = _xsign_pub(mine["user_signing"])
                        signers["ed25519:" + p] = p
                if target is None:
                    fail(user, kid, "M_NOT_FOUND", "Unknown key")
                    continue
                if signed_bytes(obj) != signed_bytes(target):
                    fail(user, kid, "M_INVALID_PARAM", "Signed object does not match the key")
                    continue
                given = (obj.get("signatures") or {}).get(me) or {}
                good = {}
                for skid, sig in given.items():
                    if skid not in signers:
                        continue          # an existing signature passed through
                    if not check_signature(obj, me, skid, signers[skid]):
                        fail(user, kid, "M_INVALID_SIGNATURE", "Invalid signature")
                        good = None
                        break
                    good[skid] = sig
                if good is None:
                    continue
                if not good:
                    fail(user, kid, "M_INVALID_SIGNATURE", "No signature by a usable key")
                    continue
                e["sigs"].setdefault(user, {}).setdefault(kid, {}).setdefault(me, {}).update(good)
                touched.add(user if user == me else me)
        for u in sorted(touched):
            x.key_changed(u)
        app.commit()
    return 200, {"failures": failures}


def e2ee_test_api(app, method, path, obj):
    """/_test/e2ee and /_test/to_device (under app.lock); None if not ours.
    POST   /_test/e2ee                   {"uia_exempt_first_upload": bool} -> settings
    GET    /_test/e2ee                   settings
    POST   /_test/to_device/hold         {"user"?, "type"?, "sender"?} -> {"id"}: to-device
                                          messages matching (all given fields) are kept
                                          back from /sync until released
    POST   /_test/to_device/release      -> {"released": n}; drops every hold
    GET    /_test/to_device              -> {"pending": {user: {device: [{"type",
                                          "sender", "held", "delivered"}]}}}
    """
    t = app.e2ee_test
    if path == "/_test/e2ee":
        if method == "POST":
            o = obj()
            if "uia_exempt_first_upload" in o:
                t["uia_exempt_first_upload"] = bool(o["uia_exempt_first_upload"])
        if method in ("GET", "POST"):
            return 200, {"uia_exempt_first_upload": t["uia_exempt_first_upload"]}
    if path == "/_test/to_device/hold" and method == "POST":
        o = obj()
        t["hold_seq"] += 1
        t["holds"].append({"id": str(t["hold_seq"]), "user": o.get("user"),
                           "type": o.get("type"), "sender": o.get("sender")})
        return 200, {"id": str(t["hold_seq"])}
    if path == "/_test/to_device/release" and method == "POST":
        t["holds"] = []
        n = _e2ee(app).release()
        app.commit()
        return 200, {"released": n}
    if path == "/_test/to_device" and method == "GET":
        out = {}
        for user, devs in app.s["e2ee"]["todev"].items():
            for dev, q in devs.items():
                if q:
                    out.setdefault(user, {})[dev] = [
                        {"type": m["ev"]["type"], "sender": m["ev"]["sender"],
                         "held": m["held"], "delivered": m["sent_in"] is not None} for m in q]
        return 200, {"pending": out}
    return None


# --------------------------------------------------------------------------
# HTTP layer
# --------------------------------------------------------------------------

class Load:
    """The load model (--send-ms, --sync-ms, --load-workers; POST /_test/load
    at run time): a request that writes an event (send, state, createRoom,
    join, leave, invite, upload) costs send_ms of service time, a /sync
    answer sync_ms (after it has waited for events, before it goes out), and
    at most `workers` requests are in service at a time; the others queue in
    arrival order (FIFO). So capacity is workers / service time, and above it
    queues build up as on a saturated homeserver. 0 ms: no model (default)."""
    SEND_TEMPLATES = ("/send/", "/state/", "/createRoom", "/join", "/leave", "/invite",
                      "/upload")

    def __init__(self, send_ms=0, sync_ms=0, workers=4):
        self.lock = threading.Lock()
        self.queue = []            # waiting threading.Event, oldest first
        self.busy = 0
        self.set(send_ms, sync_ms, workers)
        self.served = 0
        self.max_queue = 0

    def set(self, send_ms, sync_ms, workers):
        self.send_ms, self.sync_ms = max(0, float(send_ms)), max(0, float(sync_ms))
        self.workers = max(1, int(workers))

    def cost_ms(self, method, template, is_sync):
        if is_sync:
            return self.sync_ms
        if method in ("PUT", "POST") and any(t in template for t in self.SEND_TEMPLATES):
            return self.send_ms
        return 0

    def serve(self, ms):
        """Take a worker (FIFO), hold it for ms, give it back."""
        if ms <= 0:
            return
        ev = None
        with self.lock:
            if self.busy < self.workers and not self.queue:
                self.busy += 1
            else:
                ev = threading.Event()
                self.queue.append(ev)
                self.max_queue = max(self.max_queue, len(self.queue))
        if ev is not None:
            ev.wait()              # the releasing thread handed its worker to us
        try:
            time.sleep(ms / 1000.0)
        finally:
            with self.lock:
                self.served += 1
                if self.queue:
                    self.queue.pop(0).set()
                else:
                    self.busy -= 1

    def info(self):
        with self.lock:
            return {"send_ms": self.send_ms, "sync_ms": self.sync_ms, "workers": self.workers,
                    "busy": self.busy, "queued": len(self.queue), "max_queue": self.max_queue,
                    "served": self.served}


def load_model(app):
    """The App's Load (set by main; an App made elsewhere gets one, off)."""
    lm = getattr(app, "load_model", None)
    if lm is None:
        lm = app.load_model = Load()
    return lm


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mxhs/1.0"
    # headers and body go out in separate writes: without TCP_NODELAY, Nagle
    # and the client's delayed ACK add ~40 ms to every kept-alive request
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if self.server.app.verbose:
            sys.stderr.write("mxhs: " + (fmt % args) + "\n")

    def do_GET(self):
        self.dispatch("GET")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_POST(self):
        self.dispatch("POST")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_OPTIONS(self):
        self.dispatch("OPTIONS")

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = b""
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(n)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send_bytes(self, status, data, ctype="application/json", headers=None, truncate=False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data[:len(data) // 2] if truncate else data)
        self.wfile.flush()
        if truncate:
            self.drop()

    def send_json(self, status, obj, headers=None, truncate=False):
        self.send_bytes(status, json.dumps(obj).encode(), "application/json", headers, truncate)

    def drop(self):
        """Close the connection without (the rest of) a response."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send_fault_status(self, f):
        status = f["status"]
        if f.get("body") is not None:
            body = f["body"].encode()
            ctype = f.get("content_type") or "text/html"
        else:
            default = {429: "M_LIMIT_EXCEEDED", 401: "M_UNKNOWN_TOKEN", 403: "M_FORBIDDEN",
                       404: "M_NOT_FOUND"}.get(status, "M_UNKNOWN")
            obj = {"errcode": f.get("errcode") or default,
                   "error": f.get("error") or f"Injected fault {f['id']}"}
            if f.get("retry_after_ms") is not None:
                obj["retry_after_ms"] = int(f["retry_after_ms"])
            body, ctype = json.dumps(obj).encode(), "application/json"
        headers = {}
        if f.get("retry_after_header"):
            secs = math.ceil((f.get("retry_after_ms") or 1000) / 1000.0)
            headers["Retry-After"] = str(max(0, secs))
        self.send_bytes(status, body, ctype, headers)

    def dispatch(self, method):
        app = self.server.app
        try:
            self._dispatch(app, method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _dispatch(self, app, method):
        raw_path, _, qs = self.path.partition("?")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(qs, keep_blank_values=True).items()}
        body = self.read_body()
        if raw_path == "/_test/load":      # the load model (class Load)
            if method == "POST":
                o = json.loads(body.decode() or "{}")
                load_model(app).set(o.get("send_ms", 0), o.get("sync_ms", 0),
                                    o.get("workers", 4))
            return self.send_json(200, load_model(app).info())
        if raw_path.startswith("/_test/"):
            try:
                status, obj = app.test_api(method, raw_path, body)
            except MxError as e:
                status, obj = e.status, e.body()
            return self.send_json(status, obj)

        r, params, allowed = match_route(method, raw_path)
        user_id = app.user_for_token(self.headers, query)
        app.count_request(method, r.template if r else "<unrecognized>", user_id)

        fault = app.take_fault(method, raw_path, user_id)
        if fault:
            if fault["kind"] == "status":
                if fault["delay_ms"]:
                    time.sleep(fault["delay_ms"] / 1000.0)
                return self.send_fault_status(fault)
            if fault["kind"] in ("delay", "drop") and fault["delay_ms"]:
                time.sleep(fault["delay_ms"] / 1000.0)
            if fault["kind"] == "drop" and not fault["execute"]:
                return self.drop()

        # ---- WebSocket stream hook (tests/homeserver/wsstream.py, ws transport) ----
        import wsstream
        if wsstream.wants_upgrade(method, raw_path, self.headers):
            return wsstream.serve(self, app, query, sys.modules[__name__])
        # ---- end of the WebSocket stream hook ----

        req = Request(method, raw_path, query, self.headers, body, params or {})
        req.route = r
        # A fault added while this request long-polls may still hit it.
        req.interrupt_check = lambda: app.take_fault(method, raw_path, user_id,
                                                     kinds=("drop", "status"))
        try:
            if r is None:
                if allowed:
                    raise MxError(405, "M_UNRECOGNIZED", "Unrecognized request")
                raise MxError(404, "M_UNRECOGNIZED", "Unrecognized request")
            if r.auth:
                app.authenticate(req)
            is_sync = r.fn is h_sync
            cost = load_model(app).cost_ms(method, r.template, is_sync)
            if not is_sync:
                load_model(app).serve(cost)  # the event is written after its service time
            result = r.fn(app, req)
            if is_sync:
                load_model(app).serve(cost)  # the answer is built after the wait
        except Interrupted as it:
            if it.fault["kind"] == "status":
                return self.send_fault_status(it.fault)
            return self.drop()
        except MxError as e:
            result = (e.status, e.body())
        except Exception as e:  # a bug here should be visible, not a hang
            import traceback
            traceback.print_exc()
            result = (500, {"errcode": "M_UNKNOWN", "error": f"internal error: {e!r}"})

        if fault and fault["kind"] == "drop":      # executed, answer lost
            return self.drop()
        truncate = bool(fault and fault["kind"] == "truncate")
        if isinstance(result, Raw):
            return self.send_bytes(200, result.data, result.content_type, result.headers,
                                   truncate)
        status, obj = result
        return self.send_json(status, obj, truncate=truncate)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # a client killed mid-request (the fault tests' kill -9) is not an
        # error of ours: no traceback for it
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Tiny Matrix homeserver for tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-name", default="localhost")
    ap.add_argument("--state", default=None, help="persist state to this JSON file")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    ap.add_argument("--send-ms", type=float, default=0, help="load model: service time of a send")
    ap.add_argument("--sync-ms", type=float, default=0, help="load model: service time of a /sync")
    ap.add_argument("--load-workers", type=int, default=4, help="load model: requests in service at once")
    ap.add_argument("--compat", action="append", default=[], metavar="KEY=JSON",
                    help="set a COMPAT switch (value as JSON, or a bare string)")
    a = ap.parse_args(argv)
    app = App(a.server_name, a.state, a.verbose)
    app.load_model = Load(a.send_ms, a.sync_ms, a.load_workers)
    for kv in a.compat:
        k, _, v = kv.partition("=")
        try:
            v = json.loads(v)
        except ValueError:
            pass
        app.set_compat({k: v})
    srv = Server((a.host, a.port), Handler)
    srv.app = app
    host, port = srv.server_address[:2]
    app.base_url = f"http://{host}:{port}"

    def on_term(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print(f"LISTENING {app.base_url}", flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
