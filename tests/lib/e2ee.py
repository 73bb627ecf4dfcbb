"""e2ee -- an end-to-end encrypting room member for tlbot's tests.

A Peer is a real E2EE Matrix client: matrix-nio's AsyncClient (Debian
python3-matrix-nio) on libolm (python3-olm), logged in to the local test
homeserver, driven step by step from ordinary synchronous unittest code next
to mx.py:

    import mx, e2ee
    with mx.Homeserver() as hs:
        bot = mx.Bot(hs, mx.tmpdir(), encryption=True); bot.start()
        alice = e2ee.Peer(hs, "alice")
        room = alice.create_room(invite=[bot.user_id])      # encrypted
        alice.wait_joined(room, bot.user_id)
        cmd = alice.send_text(room, "!ping")                 # Megolm, as Element sends
        reply = alice.wait_reply(room, cmd, sender=bot.user_id)
        reply["content"]["body"], reply["session_id"]        # decrypted by nio

nio does the cryptography (Olm sessions, Megolm sessions, key sharing, key
queries and claims); the Peer adds what the tests need around it: messages
shaped as Element sends them (the relation in the cleartext, as the spec's
"m.relates_to and encryption" rule says), replies with their Megolm session
id, retrying events whose key came late, trusting or ignoring devices, and
hand-made Olm messages for the hostile cases (olm_to_device).

nio and olm are installed for Debian's /usr/bin/python3; when this module is
imported by another interpreter it adds /usr/lib/python3/dist-packages at the
END of sys.path.  A missing nio raises ImportError: the suites fail, they do
not skip.
"""

import asyncio
import json
import logging
import os
import sys
import time
import uuid
import warnings

# aiohttp (under nio) warns about sessions it closes late; noise in test output
warnings.filterwarnings("ignore", category=ResourceWarning)

DIST = "/usr/lib/python3/dist-packages"
try:
    import nio
except ImportError:
    if os.path.isdir(DIST) and DIST not in sys.path:
        sys.path.append(DIST)
    import nio                                   # noqa: F811  (ImportError: fail)
import olm                                       # noqa: E402
from nio.store import SqliteMemoryStore          # noqa: E402

import mx                                        # noqa: E402

__all__ = ["Peer", "MEGOLM", "OLM", "ed25519_ok", "canonical"]

MEGOLM = "m.megolm.v1.aes-sha2"
OLM = "m.olm.v1.curve25519-aes-sha2"

# nio 0.20 builds every client path under the legacy /_matrix/client/r0
# prefix; mxhs serves the current v3 paths only (as the spec defines them
# since v1.1): make nio use v3.
_d = list(nio.Api._build_path.__defaults__)
_d[-1] = "/_matrix/client/v3"
nio.Api._build_path.__defaults__ = tuple(_d)

# nio logs through logbook/logging; keep test output quiet
logging.getLogger("nio").setLevel(logging.ERROR)


def canonical(obj):
    """Canonical JSON (spec Appendices) of obj without signatures/unsigned."""
    return json.dumps({k: v for k, v in obj.items() if k not in ("signatures", "unsigned")},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def ed25519_ok(obj, user_id, key_id, public_key):
    """Does obj carry a valid Ed25519 signature by (user_id, key_id), checked
    with libolm's ed25519 verify against public_key (unpadded base64)?"""
    sig = ((obj.get("signatures") or {}).get(user_id) or {}).get(key_id)
    if not sig:
        return False
    try:
        olm.ed25519_verify(public_key, canonical(obj), sig)
        return True
    except olm.OlmVerifyError:
        return False


class Peer:
    """One device of one user, as an E2EE client.

    Peer(hs, localpart, password="pw", device_id=None, trust="ignore")
      trust: what to do with unverified devices when sharing our room keys:
      "ignore" (share with them, as Element does by default) or "verified"
      (only verified devices get our keys; verify with trust_device()).
    """

    def __init__(self, hs, localpart, password="pw", device_id=None, trust="ignore"):
        hs.ensure_user(localpart, password)
        self.hs = hs
        self.user_id = f"@{localpart}:localhost"
        self.trust = trust
        self.loop = asyncio.new_event_loop()
        cfg = nio.AsyncClientConfig(store=SqliteMemoryStore, encryption_enabled=True,
                                    store_sync_tokens=False, max_timeouts=3,
                                    request_timeout=30)
        self.client = nio.AsyncClient(hs.url, self.user_id, device_id=device_id,
                                      store_path="", config=cfg)
        r = self.run(self.client.login(password, device_name=f"e2ee peer {localpart}"))
        if not isinstance(r, nio.LoginResponse):
            raise RuntimeError(f"nio login failed: {r}")
        self.device_id = self.client.device_id
        # plain (unencrypted) API access with the same token and device
        self.mx = mx.User(hs, self.user_id, self.client.access_token, self.device_id)
        self.timeline = {}      # room -> [record]   (see _record)
        self.undecrypted = {}   # room -> {event_id: MegolmEvent}
        self.to_device = []     # decrypted/plain to-device events nio handed us
        self.sent = {}          # event_id -> {"session_id", "content"} of what we sent
        # key material seen, for "never in the bot's log" checks: the
        # session_key of every m.room_key we received and of our own sessions
        self.key_material = set()
        machine = self.client.olm
        orig = machine._handle_room_key_event

        def capture(sender, sender_key, payload):
            k = (payload.get("content") or {}).get("session_key")
            if isinstance(k, str):
                self.key_material.add(k)
            return orig(sender, sender_key, payload)
        machine._handle_room_key_event = capture
        self.step(0)            # first sync; device and one-time keys uploaded

    # ---- plumbing ----------------------------------------------------------

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self):
        try:
            self.run(self.client.close())
        finally:
            self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def curve25519(self):
        return self.client.olm.account.identity_keys["curve25519"]

    @property
    def ed25519(self):
        return self.client.olm.account.identity_keys["ed25519"]

    async def _housekeeping(self):
        c = self.client
        if c.should_upload_keys:
            await c.keys_upload()
        if c.should_query_keys:
            await c.keys_query()
        if c.should_claim_keys:
            await c.keys_claim(c.get_users_for_key_claiming())
        await c.send_to_device_messages()

    def step(self, timeout_ms=200):
        """One /sync (long-poll up to timeout_ms) plus what nio's sync loop
        does between syncs (key upload / query / claim, to-device sends).
        Decrypts what it can, and retries events whose key was missing."""
        async def go():
            r = await self.client.sync(timeout=timeout_ms or None, sync_filter={
                "room": {"timeline": {"limit": 200}}}, full_state=None)
            if not isinstance(r, nio.SyncResponse):
                raise RuntimeError(f"nio sync failed: {r}")
            await self._housekeeping()
            return r
        r = self.run(go())
        for ev in r.to_device_events:
            self.to_device.append(ev)
        for room_id, info in r.rooms.join.items():
            for ev in info.timeline.events:
                self._record(room_id, ev)
        self._retry_undecrypted()
        return r

    def _record(self, room_id, ev):
        tl = self.timeline.setdefault(room_id, [])
        src = ev.source or {}
        eid = src.get("event_id") or getattr(ev, "event_id", None)
        if isinstance(ev, nio.MegolmEvent):
            self.undecrypted.setdefault(room_id, {})[eid] = ev
            rec = {"event_id": eid, "sender": ev.sender, "type": "m.room.encrypted",
                   "content": src.get("content") or {}, "encrypted": True,
                   "decrypted": False, "session_id": ev.session_id, "verified": False}
        else:
            rec = {"event_id": eid, "sender": src.get("sender"), "type": src.get("type"),
                   "content": src.get("content") or {}, "encrypted": bool(getattr(ev, "decrypted", False)),
                   "decrypted": bool(getattr(ev, "decrypted", False)),
                   "session_id": getattr(ev, "session_id", None),
                   "verified": bool(getattr(ev, "verified", False))}
            if "state_key" in src:
                rec["state_key"] = src["state_key"]
        for i, old in enumerate(tl):
            if old["event_id"] == eid:
                tl[i] = rec
                return rec
        tl.append(rec)
        return rec

    def _retry_undecrypted(self):
        for room_id, evs in self.undecrypted.items():
            for eid, ev in list(evs.items()):
                try:
                    dec = self.client.decrypt_event(ev)
                except (nio.EncryptionError, nio.LocalProtocolError):
                    continue
                if isinstance(dec, nio.Event) and getattr(dec, "decrypted", False):
                    del evs[eid]
                    self._record(room_id, dec)

    # ---- rooms ---------------------------------------------------------------

    def create_room(self, name="e2ee", invite=(), encrypted=True, is_direct=False,
                    encryption=None, **extra):
        """A room (encrypted by default, m.room.encryption in initial_state as
        Element creates them; encryption: more of its content, e.g.
        rotation_period_msgs).  -> room_id"""
        initial = list(extra.pop("initial_state", []))
        if encrypted:
            initial.append({"type": "m.room.encryption", "state_key": "",
                            "content": dict({"algorithm": MEGOLM}, **(encryption or {}))})
        room = self.mx.create_room(name=name, invite=invite, is_direct=is_direct,
                                   initial_state=initial, **extra)
        self.step(0)
        return room

    def join(self, room):
        self.mx.join(room)
        self.step(0)

    def leave(self, room):
        self.mx.leave(room)
        self.step(0)

    def invite(self, room, user_id):
        self.mx.invite(room, user_id)
        self.step(0)

    def wait_joined(self, room, user_id, timeout=15):
        """Until user_id is joined (as nio sees the room)."""
        def ok():
            r = self.client.rooms.get(room)
            # nio's room.users holds invited users too
            return r is not None and user_id in r.users and user_id not in r.invited_users
        self.wait(ok, timeout, f"{user_id} joined {room}")

    def wait_invite(self, timeout=15, inviter=None):
        """Until we are invited somewhere; -> room_id (also joins nothing)."""
        seen = {}

        def ok():
            for rid, r in self.client.invited_rooms.items():
                if inviter is None or r.inviter == inviter:
                    seen["room"] = rid
                    return True
            return False
        self.wait(ok, timeout, "an invite")
        return seen["room"]

    # ---- sending ---------------------------------------------------------------

    async def _ensure_shared(self, room):
        c = self.client
        r = c.rooms[room]
        if not r.members_synced:
            await c.joined_members(room)
        if c.should_query_keys:
            await c.keys_query()
        if c.olm.should_share_group_session(room):
            await c.share_group_session(room, ignore_unverified_devices=(self.trust == "ignore"))

    def encrypt(self, room, content, event_type="m.room.message"):
        """Megolm-encrypt (sharing our session first if needed) as Element
        does: m.relates_to goes to the cleartext only (the encrypted payload's
        one would be ignored).  -> m.room.encrypted content"""
        content = dict(content)
        rel = content.pop("m.relates_to", None)
        self.run(self._ensure_shared(room))
        _, enc = self.client.encrypt(room, event_type, content)
        enc.pop("m.relates_to", None)
        if rel is not None:
            enc["m.relates_to"] = rel
        return enc

    def send_encrypted(self, room, content, event_type="m.room.message", txn_id=None):
        """Encrypt content and send it.  -> event_id"""
        enc = self.encrypt(room, content, event_type)
        out = self.client.olm.outbound_group_sessions.get(room)
        if out is not None:
            self.key_material.add(out.session_key)
        eid = self.mx.send_event(room, "m.room.encrypted", enc, txn_id=txn_id)
        self.sent[eid] = {"session_id": enc["session_id"], "content": enc}
        return eid

    def send_text(self, room, body, reply_to=None, msgtype="m.text", mentions=None):
        """An m.room.message as Element sends it (m.mentions, a reply's
        m.in_reply_to in the cleartext), Megolm-encrypted.  -> event_id"""
        content = {"msgtype": msgtype, "body": body,
                   "m.mentions": {"user_ids": list(mentions)} if mentions else {}}
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        return self.send_encrypted(room, content)

    def edit(self, room, event_id, new_body, msgtype="m.text"):
        """An encrypted m.replace edit as Element sends it: the relation in
        the cleartext, m.new_content inside.  -> the edit's event_id"""
        return self.send_encrypted(room, {
            "msgtype": msgtype, "body": "* " + new_body, "m.mentions": {},
            "m.new_content": {"msgtype": msgtype, "body": new_body, "m.mentions": {}},
            "m.relates_to": {"rel_type": "m.replace", "event_id": event_id}})

    def send_raw(self, room, event_type, content, txn_id=None):
        """Send content as is (no encryption): for hand-made bad events."""
        return self.mx.send_event(room, event_type, content, txn_id=txn_id)

    def outbound_session_id(self, room):
        s = self.client.olm.outbound_group_sessions.get(room)
        return s.id if s else None

    def rotate(self, room):
        """Throw our outbound Megolm session away (the next send makes one)."""
        self.client.olm.outbound_group_sessions.pop(room, None)

    # ---- devices and trust ---------------------------------------------------------

    def devices(self, user_id):
        """{device_id: OlmDevice} nio knows for user_id."""
        return {d.id: d for d in self.client.device_store.active_user_devices(user_id)}

    def refresh_devices(self, *user_ids):
        """Force a /keys/query for these users now."""
        for u in user_ids:
            self.client.olm.users_for_key_query.add(u)
        self.run(self.client.keys_query())

    def trust_device(self, user_id, device_id):
        self.refresh_devices(user_id)
        dev = self.client.device_store[user_id][device_id]
        self.client.verify_device(dev)

    def keys_query(self, *user_ids):
        """Raw /keys/query answer for user_ids (all their devices)."""
        return self.mx.api("POST", "/keys/query", {"device_keys": {u: [] for u in user_ids}})

    # ---- waiting ---------------------------------------------------------------------

    def wait(self, pred, timeout=15, what="condition"):
        deadline = time.monotonic() + timeout
        while True:
            if pred():
                return
            if time.monotonic() > deadline:
                raise mx.WaitTimeout(f"{self.user_id}: no {what} after {timeout}s; "
                                     f"recent: {self._describe()}")
            self.step(300)

    def _describe(self, n=6):
        out = []
        for room, tl in self.timeline.items():
            for r in tl[-n:]:
                out.append((r["sender"], r["type"], r["decrypted"],
                            (r["content"].get("body") or "")[:60]))
        return out[-n:]

    def events(self, room):
        return list(self.timeline.get(room, []))

    def find(self, room, pred):
        return [r for r in self.timeline.get(room, []) if pred(r)]

    @staticmethod
    def reply_target(rec):
        rel = rec["content"].get("m.relates_to") or {}
        return (rel.get("m.in_reply_to") or {}).get("event_id")

    def wait_event(self, room, pred, timeout=15, what="event"):
        got = []

        def ok():
            got[:] = self.find(room, pred)
            return bool(got)
        self.wait(ok, timeout, what)
        return got[0]

    def wait_reply(self, room, event_id, sender=None, timeout=15, decrypted=True):
        """The first message replying to event_id (m.in_reply_to, from the
        cleartext relation or the decrypted content), decrypted by nio.
        -> record {"event_id", "sender", "type", "content" (decrypted),
        "encrypted", "decrypted", "session_id", "verified"}"""
        def pred(r):
            if sender and r["sender"] != sender:
                return False
            if r["type"] != "m.room.message" and not (not decrypted and r["encrypted"]):
                return False
            return self.reply_target(r) == event_id or self._raw_reply_target(room, r) == event_id
        rec = self.wait_event(room, pred, timeout, f"reply to {event_id}")
        if decrypted and not (rec["encrypted"] and rec["decrypted"]):
            raise AssertionError(f"reply {rec['event_id']} was not an encrypted event "
                                 f"we decrypted: {rec}")
        return rec

    def _raw_reply_target(self, room, rec):
        if not rec["encrypted"]:
            return None
        raw = self.raw_event(room, rec["event_id"])
        rel = (raw.get("content") or {}).get("m.relates_to") or {}
        return (rel.get("m.in_reply_to") or {}).get("event_id")

    def decrypt_raw(self, raw):
        """Decrypt a raw m.room.encrypted room event (e.g. from
        hs.all_events) with our keys.  -> the decrypted record, or None."""
        ev = nio.MegolmEvent.from_dict(raw)
        if not isinstance(ev, nio.MegolmEvent):
            return None
        try:
            dec = self.client.decrypt_event(ev)
        except (nio.EncryptionError, nio.LocalProtocolError):
            return None
        if not (isinstance(dec, nio.Event) and getattr(dec, "decrypted", False)):
            return None
        src = dec.source
        return {"event_id": raw.get("event_id"), "sender": raw.get("sender"),
                "type": src.get("type"), "content": src.get("content") or {},
                "encrypted": True, "decrypted": True, "session_id": ev.session_id,
                "verified": bool(getattr(dec, "verified", False))}

    def raw_event(self, room, event_id):
        """The event as the server has it (ciphertext), via /rooms/.../event."""
        return self.mx.event(room, event_id)

    def messages_from(self, room, sender):
        return [r for r in self.timeline.get(room, []) if r["sender"] == sender
                and r["type"] in ("m.room.message", "m.room.encrypted")]

    # ---- hand-made Olm (hostile cases) ----------------------------------------------

    def claim_otk(self, user_id, device_id):
        r = self.mx.api("POST", "/keys/claim",
                        {"one_time_keys": {user_id: {device_id: "signed_curve25519"}}})
        keys = r["one_time_keys"].get(user_id, {}).get(device_id, {})
        if not keys:
            raise AssertionError(f"no one-time key for {user_id} {device_id}")
        (_, k), = keys.items()
        return k["key"] if isinstance(k, dict) else k

    def device_keys_of(self, user_id, device_id):
        q = self.keys_query(user_id)
        dk = q["device_keys"][user_id][device_id]
        return dk["keys"][f"curve25519:{device_id}"], dk["keys"][f"ed25519:{device_id}"]

    def olm_to_device(self, user_id, device_id, payload_type, content, *, sender=None,
                      recipient=None, recipient_ed25519=None, keys_ed25519=None,
                      ciphertext_for=None, garbage=False, txn_id=None, send=True):
        """Send an Olm-encrypted to-device m.room.encrypted to one device over a
        fresh outbound Olm session (a pre-key message), with the payload's
        fields overridable to lie: sender / recipient / recipient_keys.ed25519
        / keys.ed25519; ciphertext_for puts the ciphertext under another
        curve25519 key than the recipient's; garbage sends random base64.
        send=False: only build it.  -> (the payload, the sendToDevice body)"""
        curve, ed = self.device_keys_of(user_id, device_id)
        otk = self.claim_otk(user_id, device_id)
        acct = self.client.olm.account
        session = olm.OutboundSession(acct, curve, otk)
        payload = {"sender": sender or self.user_id, "sender_device": self.device_id,
                   "keys": {"ed25519": keys_ed25519 or self.ed25519},
                   "recipient": recipient or user_id,
                   "recipient_keys": {"ed25519": recipient_ed25519 or ed},
                   "type": payload_type, "content": content}
        msg = session.encrypt(json.dumps(payload, separators=(",", ":")))
        body = msg.ciphertext
        if garbage:
            body = "QUJD" + uuid.uuid4().hex + "xyz"
        enc = {"algorithm": OLM, "sender_key": self.curve25519,
               "ciphertext": {ciphertext_for or curve: {"type": msg.message_type, "body": body}}}
        body = {"messages": {user_id: {device_id: enc}}}
        if send:
            self.send_to_device("m.room.encrypted", body, txn_id)
        return payload, body

    def send_to_device(self, event_type, body, txn_id=None):
        self.mx.api("PUT", f"/sendToDevice/{event_type}/{txn_id or uuid.uuid4().hex}", body)

    def room_key_content(self, room):
        """An m.room_key content for a brand-new Megolm outbound session in
        room (not shared with anyone).  -> (content, session)"""
        s = olm.OutboundGroupSession()
        return {"algorithm": MEGOLM, "room_id": room, "session_id": s.id,
                "session_key": s.session_key}, s

    def megolm_event(self, room, session, content, event_type="m.room.message"):
        """m.room.encrypted content encrypting content with our own
        olm.OutboundGroupSession `session` (for hand-made cases)."""
        plaintext = json.dumps({"type": event_type, "content": content, "room_id": room},
                               separators=(",", ":"))
        return {"algorithm": MEGOLM, "sender_key": self.curve25519,
                "ciphertext": session.encrypt(plaintext), "session_id": session.id,
                "device_id": self.device_id}
