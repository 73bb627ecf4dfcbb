#!/usr/bin/env python3
"""Checks the test homeserver (mxhs.py) against the Client-Server spec
behaviours the bot's tests rely on.  Run: python3 tests/homeserver/test_mxhs.py"""

import http.client
import json
import os
import sys
import threading
import time
import unittest
import urllib.error

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import mx  # noqa: E402
import fixtures  # noqa: E402

C = "/_matrix/client/v3"
SEND = "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"
NETWORK_ERRORS = (ConnectionError, http.client.HTTPException, urllib.error.URLError, OSError)


def msgs(events):
    return [e for e in events if e["type"] == "m.room.message"]


def bodies(events):
    return [e["content"].get("body") for e in msgs(events)]


class Base(unittest.TestCase):
    hs = None
    n = 0

    # the spec behaviours below, without Synapse's sync response cache (a
    # repeated identical /sync would get a stale answer: TestCompat)
    compat = {"sync_cache_s": 0}

    @classmethod
    def setUpClass(cls):
        cls.hs = mx.Homeserver(compat=cls.compat)

    @classmethod
    def tearDownClass(cls):
        cls.hs.stop()

    def setUp(self):
        self.hs.clear_faults()

    def user(self, prefix="u"):
        Base.n += 1
        return self.hs.register(f"{prefix}{Base.n}")

    def pair(self):
        """alice and bob joined to a fresh room."""
        a, b = self.user("alice"), self.user("bob")
        room = a.create_room(name="r", invite=[b.user_id])
        b.join(room)
        return a, b, room

    def assertMxError(self, status, errcode, fn, *args, **kw):
        with self.assertRaises(mx.MatrixError) as cm:
            fn(*args, **kw)
        self.assertEqual((cm.exception.status, cm.exception.errcode), (status, errcode),
                         cm.exception.body)
        return cm.exception


class TestAccounts(Base):
    def test_versions_and_wellknown(self):
        v = self.hs.api("GET", "/_matrix/client/versions")
        self.assertIn("v1.1", v["versions"])
        self.assertIn("v1.12", v["versions"])
        wk = self.hs.api("GET", "/.well-known/matrix/client")
        self.assertEqual(wk["m.homeserver"]["base_url"], self.hs.url)

    def test_register_uia(self):
        body = {"username": "uia1", "password": "pw"}
        e = self.assertMxError(401, None, self.hs.api, "POST", C + "/register", body)
        self.assertEqual(e.body["flows"], [{"stages": ["m.login.dummy"]}])
        self.assertIn("session", e.body)
        self.assertEqual(e.body["params"], {})
        body["auth"] = {"type": "m.login.dummy", "session": e.body["session"]}
        r = self.hs.api("POST", C + "/register", body)
        self.assertEqual(r["user_id"], "@uia1:localhost")
        self.assertTrue(r["access_token"] and r["device_id"])
        # duplicate: refused before UIA, as Synapse does
        self.assertMxError(400, "M_USER_IN_USE", self.hs.api, "POST", C + "/register",
                           {"username": "uia1", "password": "pw"})
        self.assertMxError(400, "M_INVALID_USERNAME", self.hs.api, "POST", C + "/register",
                           {"username": "Bad Name", "password": "pw"})
        self.assertMxError(400, "M_USER_IN_USE", self.hs.api, "GET",
                           C + "/register/available", query={"username": "uia1"})
        self.assertEqual(self.hs.api("GET", C + "/register/available",
                                     query={"username": "uia-free"}), {"available": True})
        # inhibit_login: no token
        r = self.hs.api("POST", C + "/register", {"username": "uia2", "password": "pw",
                        "inhibit_login": True, "auth": {"type": "m.login.dummy"}})
        self.assertNotIn("access_token", r)

    def test_login_and_device_reuse(self):
        u = self.user()
        local = u.user_id[1:].split(":")[0]
        self.assertEqual(self.hs.api("GET", C + "/login")["flows"], [{"type": "m.login.password"}])
        d1 = self.hs.login(local, device_id="DEV1")
        self.assertEqual(d1.device_id, "DEV1")
        d1b = self.hs.login(u.user_id, device_id="DEV1")     # full user id works too
        self.assertEqual(d1b.device_id, "DEV1")
        self.assertNotEqual(d1.token, d1b.token)
        # the old token of the reused device is replaced
        self.assertMxError(401, "M_UNKNOWN_TOKEN", d1.whoami)
        self.assertEqual(d1b.whoami(), {"user_id": u.user_id, "device_id": "DEV1",
                                        "is_guest": False})
        # legacy `user` field
        r = self.hs.api("POST", C + "/login", {"type": "m.login.password", "user": local,
                                               "password": "pw"})
        self.assertEqual(r["user_id"], u.user_id)
        self.assertNotEqual(r["device_id"], "DEV1")
        self.assertMxError(403, "M_FORBIDDEN", self.hs.login, local, "wrong")
        self.assertMxError(403, "M_FORBIDDEN", self.hs.login, "nosuchuser", "pw")

    def test_auth_errors_and_query_token(self):
        u = self.user()
        self.assertMxError(401, "M_MISSING_TOKEN", self.hs.api, "GET", C + "/account/whoami")
        e = self.assertMxError(401, "M_UNKNOWN_TOKEN", self.hs.api, "GET",
                               C + "/account/whoami", token="nope")
        self.assertIs(e.body["soft_logout"], False)
        r = self.hs.api("GET", C + "/account/whoami", query={"access_token": u.token})
        self.assertEqual(r["user_id"], u.user_id)
        u.logout()
        self.assertMxError(401, "M_UNKNOWN_TOKEN", u.whoami)

    def test_unrecognized_and_bad_json(self):
        u = self.user()
        self.assertMxError(404, "M_UNRECOGNIZED", u.api, "GET", "/no/such/endpoint")
        self.assertMxError(405, "M_UNRECOGNIZED", u.api, "DELETE", "/account/whoami")
        self.assertMxError(400, "M_NOT_JSON", u.api, "POST", "/createRoom", b"{nope")
        self.assertMxError(400, "M_BAD_JSON", u.api, "POST", "/createRoom", b"[1]")

    def test_account_data_and_filters(self):
        u = self.user()
        s0 = u.sync()["next_batch"]
        u.set_account_data("m.direct", {"@x:localhost": ["!r:localhost"]})
        self.assertEqual(u.account_data("m.direct"), {"@x:localhost": ["!r:localhost"]})
        self.assertIsNone(u.account_data("org.example.none"))
        r = u.sync(since=s0)
        self.assertEqual([e["type"] for e in r["account_data"]["events"]], ["m.direct"])
        # nothing new: the empty section is left out (COMPAT omit_empty_sync_keys)
        self.assertNotIn("account_data", u.sync(since=r["next_batch"]))
        fid = u.api("POST", f"/user/{mx.q(u.user_id)}/filter",
                    {"room": {"timeline": {"limit": 2}}})["filter_id"]
        self.assertEqual(u.api("GET", f"/user/{mx.q(u.user_id)}/filter/{fid}"),
                         {"room": {"timeline": {"limit": 2}}})
        room = u.create_room()
        for i in range(4):
            u.send_text(room, f"m{i}")
        tl = u.sync(filter=fid)["rooms"]["join"][room]["timeline"]
        self.assertEqual(bodies(tl["events"]), ["m2", "m3"])

    def test_profile(self):
        u = self.user()
        room = u.create_room()
        u.set_displayname("Alice A")
        self.assertEqual(u.api("GET", f"/profile/{mx.q(u.user_id)}")["displayname"], "Alice A")
        self.assertEqual(u.state(room, "m.room.member", u.user_id)["displayname"], "Alice A")
        self.assertMxError(404, "M_NOT_FOUND", u.api, "GET", "/profile/@ghost:localhost")

    def test_media(self):
        u = self.user()
        r = u.api("POST", "/_matrix/media/v3/upload", b"hello media",
                  query={"filename": "a.txt"}, headers={"Content-Type": "text/plain"})
        uri = r["content_uri"]
        self.assertTrue(uri.startswith("mxc://localhost/"))
        mid = uri.rsplit("/", 1)[1]
        data = u.api("GET", f"/_matrix/client/v1/media/download/localhost/{mid}", raw=True)
        self.assertEqual(data, b"hello media")
        self.assertEqual(self.hs.api("GET", f"/_matrix/media/v3/download/localhost/{mid}/x.txt",
                                     raw=True), b"hello media")
        self.assertMxError(401, "M_MISSING_TOKEN", self.hs.api, "GET",
                           f"/_matrix/client/v1/media/download/localhost/{mid}")
        self.assertEqual(u.api("GET", "/_matrix/client/v1/media/config")["m.upload.size"],
                         50 * 1024 * 1024)


class TestRooms(Base):
    def test_create_room_state(self):
        a = self.user()
        room = a.create_room(name="Team", topic="T")
        st = {(e["type"], e["state_key"]): e for e in a.api("GET", f"/rooms/{mx.q(room)}/state")}
        # COMPAT default_room_version: Synapse 1.67's default
        self.assertEqual(st[("m.room.create", "")]["content"]["room_version"], "9")
        self.assertEqual(st[("m.room.create", "")]["content"]["creator"], a.user_id)
        pl = st[("m.room.power_levels", "")]["content"]
        self.assertEqual(pl["users"], {a.user_id: 100})
        self.assertEqual((pl["users_default"], pl["events_default"], pl["state_default"],
                          pl["ban"], pl["kick"], pl["redact"], pl["invite"]),
                         (0, 0, 50, 50, 50, 50, 0))
        self.assertEqual(st[("m.room.join_rules", "")]["content"]["join_rule"], "invite")
        self.assertEqual(st[("m.room.name", "")]["content"]["name"], "Team")
        self.assertEqual(st[("m.room.topic", "")]["content"]["topic"], "T")
        self.assertEqual(a.state(room, "m.room.history_visibility")["history_visibility"], "shared")
        self.assertIsNone(a.state(room, "m.room.avatar"))
        # creation order per spec: create, creator join, power levels, ...
        types = [e["type"] for e in a.room_events(room)]
        self.assertEqual(types[:3], ["m.room.create", "m.room.member", "m.room.power_levels"])
        self.assertMxError(400, "M_UNSUPPORTED_ROOM_VERSION", a.create_room, room_version="99")

    def test_room_v12_creator(self):
        a, b = self.user(), self.user()
        room = a.create_room(room_version="12", invite=[b.user_id])
        self.assertNotIn(":", room)                      # v12 room ids have no server
        create = a.state(room, "m.room.create", "")
        self.assertEqual(create["room_version"], "12")
        self.assertNotIn("creator", create)
        create_ev = a.api("GET", f"/rooms/{mx.q(room)}/state/m.room.create/",
                          query={"format": "event"})
        self.assertEqual(create_ev["event_id"][1:], room[1:])   # room id = create event hash
        pl = a.state(room, "m.room.power_levels")
        self.assertNotIn(a.user_id, pl["users"])
        self.assertEqual(pl["events"]["m.room.tombstone"], 150)
        # infinite power: may set anything, but may not be listed
        a.set_state(room, "m.room.name", {"name": "v12"})
        self.assertMxError(403, "M_FORBIDDEN", a.set_power_level, room, a.user_id, 100)
        a.set_power_level(room, b.user_id, 50)
        self.assertMxError(400, "M_INVALID_ROOM_STATE", a.create_room, room_version="12",
                           power_levels={"users": {a.user_id: 100}})
        # v11: no creator key, creator listed in power levels
        r11 = a.create_room(room_version="11")
        self.assertNotIn("creator", a.state(r11, "m.room.create"))
        self.assertEqual(a.state(r11, "m.room.power_levels")["users"], {a.user_id: 100})

    def test_invite_join_leave(self):
        a, b, c = self.user(), self.user(), self.user()
        room = a.create_room(name="Inv")
        self.assertMxError(403, "M_FORBIDDEN", c.join, room)   # not invited
        s0 = b.sync()["next_batch"]
        a.invite(room, b.user_id)
        r = b.sync(since=s0)
        inv = r["rooms"]["invite"][room]["invite_state"]["events"]
        me = [e for e in inv if e["type"] == "m.room.member" and e["state_key"] == b.user_id]
        self.assertEqual(me[0]["sender"], a.user_id)
        self.assertEqual(me[0]["content"]["membership"], "invite")
        types = {e["type"] for e in inv}
        self.assertTrue({"m.room.create", "m.room.name", "m.room.join_rules"} <= types)
        self.assertTrue(all(set(e) == {"type", "state_key", "content", "sender"} for e in inv))
        self.assertEqual(b.join(room), room)
        r = b.sync(since=r["next_batch"])
        self.assertIn(room, r["rooms"]["join"])
        self.assertEqual(a.joined_members(room), sorted([a.user_id, b.user_id]))
        b.leave(room)
        r = b.sync(since=r["next_batch"])
        self.assertIn(room, r["rooms"]["leave"])
        self.assertEqual(r["rooms"]["leave"][room]["timeline"]["events"][-1]["content"]
                         ["membership"], "leave")
        self.assertMxError(403, "M_FORBIDDEN", b.send_text, room, "gone")
        # rejecting an invite is a leave
        a.invite(room, c.user_id)
        c.leave(room)
        self.assertEqual(a.state(room, "m.room.member", c.user_id)["membership"], "leave")
        # public rooms can be joined without an invite
        pub = a.create_room(preset="public_chat")
        c.join(pub)
        # kick needs power
        self.assertMxError(403, "M_FORBIDDEN", c.kick, pub, a.user_id)
        a.kick(pub, c.user_id, "bye")
        self.assertEqual(a.state(pub, "m.room.member", c.user_id)["membership"], "leave")

    def test_power_levels_enforced(self):
        a, b, room = self.pair()
        self.assertMxError(403, "M_FORBIDDEN", b.set_state, room, "m.room.name", {"name": "x"})
        a.set_state(room, "m.room.power_levels", dict(a.state(room, "m.room.power_levels"),
                                                      events_default=10))
        self.assertMxError(403, "M_FORBIDDEN", b.send_text, room, "muted")
        a.set_power_level(room, b.user_id, 10)
        b.send_text(room, "unmuted")
        # cannot raise someone above yourself
        self.assertMxError(403, "M_FORBIDDEN", b.set_power_level, room, b.user_id, 100)

    def test_redaction(self):
        a, b, room = self.pair()
        eid = b.send_text(room, "secret")
        r1 = b.redact(room, eid, txn_id="red1")
        self.assertEqual(b.redact(room, eid, txn_id="red1"), r1)   # idempotent
        ev = a.event(room, eid)
        self.assertEqual(ev["content"], {})
        self.assertEqual(ev["unsigned"]["redacted_because"]["event_id"], r1)
        red = a.event(room, r1)
        self.assertEqual(red["redacts"], eid)           # room v9: top-level only
        self.assertNotIn("redacts", red["content"])
        other = a.send_text(room, "mine")
        self.assertMxError(403, "M_FORBIDDEN", b.redact, room, other)
        self.assertEqual(len([e for e in a.room_events(room) if e["type"] == "m.room.redaction"]), 1)


class TestSendAndSync(Base):
    def test_txn_idempotency_per_device(self):
        a, b, room = self.pair()
        local = a.user_id[1:].split(":")[0]
        a2 = self.hs.login(local)                       # second device, same user
        e1 = a.send_text(room, "once", txn_id="t1")
        self.assertEqual(a.send_text(room, "once", txn_id="t1"), e1)
        e2 = a2.send_text(room, "once", txn_id="t1")    # other device: a new event
        self.assertNotEqual(e1, e2)
        # same txn id on another path (another room) is another request
        other = a.create_room()
        self.assertNotEqual(a.send_text(other, "once", txn_id="t1"), e1)
        self.assertEqual(bodies(a.room_events(room)).count("once"), 2)
        # unsigned.transaction_id only for the sending device
        evs = {e["event_id"]: e for e in a.room_events(room)}
        self.assertEqual(evs[e1]["unsigned"].get("transaction_id"), "t1")
        self.assertNotIn("transaction_id", evs[e2]["unsigned"])
        tl = b.sync()["rooms"]["join"][room]["timeline"]["events"]
        self.assertTrue(all("transaction_id" not in e["unsigned"] for e in tl))
        tl = a2.sync()["rooms"]["join"][room]["timeline"]["events"]
        by = {e["event_id"]: e for e in tl}
        self.assertEqual(by[e2]["unsigned"]["transaction_id"], "t1")
        self.assertNotIn("transaction_id", by[e1]["unsigned"])
        self.assertTrue(all("room_id" not in e for e in tl))   # ClientEventWithoutRoomID

    def test_sync_since(self):
        a, b, room = self.pair()
        r0 = b.sync()
        self.assertIn(room, r0["rooms"]["join"])
        self.assertTrue(r0["next_batch"])
        eid = a.send_text(room, "new")
        r1 = b.sync(since=r0["next_batch"])
        self.assertEqual([e["event_id"] for e in r1["rooms"]["join"][room]["timeline"]["events"]],
                         [eid])
        self.assertFalse(r1["rooms"]["join"][room]["timeline"]["limited"])
        r2 = b.sync(since=r1["next_batch"])
        self.assertNotIn("rooms", r2)           # empty sections are left out
        self.assertEqual(r2["next_batch"], r1["next_batch"])

    def test_long_poll_wakeup(self):
        a, b, room = self.pair()
        since = b.sync()["next_batch"]
        threading.Timer(0.3, lambda: a.send_text(room, "wake")).start()
        t0 = time.monotonic()
        r = b.sync(since=since, timeout=5000)
        dt = time.monotonic() - t0
        self.assertLess(dt, 2.0)
        self.assertGreaterEqual(dt, 0.25)
        self.assertEqual(bodies(r["rooms"]["join"][room]["timeline"]["events"]), ["wake"])
        t0 = time.monotonic()
        r = b.sync(since=r["next_batch"], timeout=300)      # nothing: waits the timeout
        self.assertGreaterEqual(time.monotonic() - t0, 0.28)
        self.assertNotIn("rooms", r)

    def test_limited_timeline_and_gap_fill(self):
        a, b, room = self.pair()
        since = b.sync()["next_batch"]
        sent = [a.send_text(room, f"m{i}") for i in range(25)]
        r = b.sync(since=since)
        tl = r["rooms"]["join"][room]["timeline"]
        self.assertTrue(tl["limited"])
        self.assertEqual([e["event_id"] for e in tl["events"]], sent[-10:])   # Synapse: 10
        gap = b.messages(room, dir="b", limit=100, from_=tl["prev_batch"], to=since)
        self.assertNotIn("end", gap)
        self.assertEqual([e["event_id"] for e in reversed(gap["chunk"])], sent[:15])
        # paging in small steps gives the same
        got, tok = [], tl["prev_batch"]
        while tok:
            page = b.messages(room, dir="b", limit=4, from_=tok, to=since)
            got += page["chunk"]
            tok = page.get("end")
        self.assertEqual([e["event_id"] for e in reversed(got)], sent[:15])
        # forwards from since
        fwd = b.messages(room, dir="f", limit=100, from_=since)
        self.assertEqual([e["event_id"] for e in fwd["chunk"]], sent)
        self.assertNotIn("end", fwd)
        # initial sync: last 10, limited, state before them
        r0 = b.sync()["rooms"]["join"][room]
        self.assertTrue(r0["timeline"]["limited"])
        self.assertEqual(len(r0["timeline"]["events"]), 10)
        self.assertIn("m.room.create", {e["type"] for e in r0["state"]["events"]})
        # back-pagination from the very start has no `end`
        first = b.messages(room, dir="f", limit=3)
        self.assertEqual(first["chunk"][0]["type"], "m.room.create")
        self.assertIn("end", first)
        self.assertNotIn("end", b.messages(room, dir="b", limit=1000))
        self.assertMxError(400, "M_MISSING_PARAM", b.api, "GET", f"/rooms/{mx.q(room)}/messages")

    def test_sync_filters(self):
        a, b, room = self.pair()
        other = a.create_room(invite=[b.user_id])
        b.join(other)
        since = b.sync()["next_batch"]
        a.send_text(room, "text")
        a.send_event(room, "org.example.custom", {"x": 1})
        a.send_text(other, "elsewhere")
        f = {"room": {"timeline": {"types": ["m.room.message"]}, "rooms": [room]}}
        r = b.sync(since=since, filter=json.dumps(f))
        self.assertEqual(list(r["rooms"]["join"]), [room])
        self.assertEqual([e["type"] for e in r["rooms"]["join"][room]["timeline"]["events"]],
                         ["m.room.message"])
        f = {"room": {"timeline": {"not_types": ["m.room.*"]}}}
        r = b.sync(since=since, filter=json.dumps(f))
        self.assertEqual([e["type"] for e in r["rooms"]["join"][room]["timeline"]["events"]],
                         ["org.example.custom"])
        # lazy-loading members: only timeline senders' member events in state
        c = self.user()
        a.invite(room, c.user_id)
        c.join(room)
        a.send_text(room, "from a")
        r = b.sync(filter={"room": {"timeline": {"limit": 1},
                                    "state": {"lazy_load_members": True}}})
        members = {e["state_key"] for e in r["rooms"]["join"][room]["state"]["events"]
                   if e["type"] == "m.room.member"}
        self.assertEqual(members, {a.user_id, b.user_id})

    def test_newly_joined_room_gets_state(self):
        a, b = self.user(), self.user()
        room = a.create_room(name="Hist")
        a.send_text(room, "before")
        since = b.sync()["next_batch"]
        a.invite(room, b.user_id)
        b.join(room)
        j = b.sync(since=since)["rooms"]["join"][room]
        self.assertIn(("m.room.name", ""), {(e["type"], e.get("state_key")) for e in
                                            j["state"]["events"] + j["timeline"]["events"]})
        self.assertIn("before", bodies(j["timeline"]["events"]))


class TestFaults(Base):
    def count_sends(self, room, a):
        return len(msgs(a.room_events(room)))

    def test_status_fault_does_not_execute(self):
        a, b, room = self.pair()
        n = self.count_sends(room, a)
        self.hs.fault(kind="status", method="PUT", path=r"/send/", status=429,
                      retry_after_ms=1500, retry_after_header=True)
        with self.assertRaises(mx.MatrixError) as cm:
            a.send_text(room, "limited", txn_id="f1")
        e = cm.exception
        self.assertEqual((e.status, e.errcode, e.body["retry_after_ms"]),
                         (429, "M_LIMIT_EXCEEDED", 1500))
        self.assertEqual(self.count_sends(room, a), n)            # not created
        eid = a.send_text(room, "limited", txn_id="f1")           # fault used up
        self.assertEqual(self.count_sends(room, a), n + 1)
        self.assertTrue(eid)
        # the Retry-After header (seconds, rounded up)
        self.hs.fault(kind="status", path="whoami", status=429, retry_after_ms=1500,
                      retry_after_header=True)
        conn = http.client.HTTPConnection("127.0.0.1", self.hs.port, timeout=5)
        conn.request("GET", C + "/account/whoami", headers={"Authorization": "Bearer " + a.token})
        resp = conn.getresponse()
        self.assertEqual((resp.status, resp.getheader("Retry-After")), (429, "2"))
        resp.read()
        conn.close()
        # 5xx with a non-JSON body (a proxy)
        self.hs.fault(kind="status", path="whoami", status=502, body="<html>bad gateway</html>")
        e = self.assertMxError(502, None, a.whoami)
        self.assertIn("bad gateway", e.body)
        st = self.hs.stats()
        self.assertGreaterEqual(st["faults_fired_by_kind"]["status"], 3)
        self.assertGreaterEqual(st["requests"][SEND], 2)
        self.assertGreaterEqual(st["by_user"][a.user_id][SEND], 2)

    def test_fault_scoping(self):
        a, b, room = self.pair()
        self.hs.fault(kind="status", path=r"/send/", status=500, user=b.user_id, count=2)
        a.send_text(room, "a unaffected")
        self.assertMxError(500, "M_UNKNOWN", b.send_text, room, "x")
        self.assertMxError(500, "M_UNKNOWN", b.send_text, room, "x")
        b.send_text(room, "third works")
        self.assertEqual(self.hs.faults()[0]["count"], 0)
        self.hs.fault(kind="status", path=r"/send/", status=503, count=None)   # unlimited
        for _ in range(3):
            self.assertMxError(503, "M_UNKNOWN", a.send_text, room, "x")
        self.hs.clear_faults()
        a.send_text(room, "cleared")

    def test_drop(self):
        a, b, room = self.pair()
        n = self.count_sends(room, a)
        self.hs.fault(kind="drop", method="PUT", path=r"/send/")
        with self.assertRaises(NETWORK_ERRORS):
            a.send_text(room, "dropped", txn_id="d1")
        self.assertEqual(self.count_sends(room, a), n)
        # executed, answer lost: the retry with the same txn id is de-duplicated
        self.hs.fault(kind="drop", method="PUT", path=r"/send/", execute=True)
        with self.assertRaises(NETWORK_ERRORS):
            a.send_text(room, "lost answer", txn_id="d2")
        self.assertEqual(self.count_sends(room, a), n + 1)
        eid = a.send_text(room, "lost answer", txn_id="d2")
        self.assertEqual(self.count_sends(room, a), n + 1)
        self.assertEqual(msgs(a.room_events(room))[-1]["event_id"], eid)

    def test_drop_mid_long_poll(self):
        a, b, room = self.pair()
        since = b.sync()["next_batch"]
        out = {}

        def poll():
            try:
                out["r"] = b.sync(since=since, timeout=5000)
            except NETWORK_ERRORS as e:
                out["e"] = e
        t = threading.Thread(target=poll)
        t0 = time.monotonic()
        t.start()
        deadline = time.monotonic() + 3
        while b.user_id not in self.hs.stats()["syncing"] and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertIn(b.user_id, self.hs.stats()["syncing"])
        self.hs.fault(kind="drop", path=r"/sync$")
        t.join(5)
        self.assertIn("e", out)
        self.assertLess(time.monotonic() - t0, 3)

    def test_delay(self):
        a = self.user()
        self.hs.fault(kind="delay", path="whoami", delay_ms=400)
        t0 = time.monotonic()
        self.assertEqual(a.whoami()["user_id"], a.user_id)
        self.assertGreaterEqual(time.monotonic() - t0, 0.38)

    def test_truncate(self):
        a, b, room = self.pair()
        n = self.count_sends(room, a)
        self.hs.fault(kind="truncate", method="PUT", path=r"/send/")
        conn = http.client.HTTPConnection("127.0.0.1", self.hs.port, timeout=5)
        conn.request("PUT", f"{C}/rooms/{mx.q(room)}/send/m.room.message/tr1",
                     body=json.dumps({"msgtype": "m.text", "body": "trunc"}),
                     headers={"Authorization": "Bearer " + a.token,
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        with self.assertRaises(http.client.IncompleteRead):
            resp.read()
        conn.close()
        self.assertEqual(self.count_sends(room, a), n + 1)          # it did happen
        eid = a.send_text(room, "trunc", txn_id="tr1")
        self.assertEqual(self.count_sends(room, a), n + 1)
        self.assertEqual(msgs(a.room_events(room))[-1]["event_id"], eid)

    def test_probability(self):
        a = self.user()
        self.hs.fault(kind="status", path="whoami", status=500, probability=0.0, count=None)
        for _ in range(5):
            a.whoami()
        self.hs.clear_faults()


class TestCompat(Base):
    """The COMPAT switches (mxhs.py): each test names the real server
    behaviour it models; the default is the strict side."""
    compat = {}

    def setUp(self):
        super().setUp()
        self.addCleanup(self.hs.api, "POST", "/_test/compat", dict(self.defaults))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.defaults = cls.hs.api("GET", "/_test/compat")

    def test_defaults_are_the_strict_side(self):
        d = self.defaults
        self.assertEqual((d["txn_scope"], d["max_event_bytes"], d["sync_cache_s"],
                          d["relation_unknown_target"], d["lone_surrogates"],
                          d["invite_unknown_users"], d["default_room_version"]),
                         ("device", 65536, 120, "refuse", "refuse", "succeed", "9"))
        self.assertMxError(400, "M_INVALID_PARAM", self.hs.compat, no_such_switch=1)
        self.assertMxError(400, "M_INVALID_PARAM", self.hs.compat, max_event_bytes="big")

    def test_txn_scope_device_or_token(self):
        """Spec v1.7+ (MSC3970, "Transaction identifiers"): scoped to the
        device, so a new login of the same device sees the old txnIds.
        Spec <= v1.6 and Synapse 1.67 (measured): scoped to the access token,
        so the same txnId from a new token of that device posts again."""
        a, b, room = self.pair()
        local = a.user_id[1:].split(":")[0]
        d1 = self.hs.login(local, device_id="TXDEV")
        e1 = d1.send_text(room, "scoped", txn_id="tx1")
        d2 = self.hs.login(local, device_id="TXDEV")        # re-login, same device
        self.assertEqual(d2.send_text(room, "scoped", txn_id="tx1"), e1)
        self.hs.compat(txn_scope="token")
        d3 = self.hs.login(local, device_id="TXDEV")
        e3 = d3.send_text(room, "scoped", txn_id="tx1")
        self.assertNotEqual(e3, e1)
        self.assertEqual(d3.send_text(room, "scoped", txn_id="tx1"), e3)   # same token: same
        self.assertEqual(bodies(a.room_events(room)).count("scoped"), 2)
        # the sending token is told its transaction id; per token, a new
        # login of the device is not told those of the old one
        self.assertEqual(d3.event(room, e3)["unsigned"].get("transaction_id"), "tx1")
        self.assertNotIn("transaction_id", d3.event(room, e1)["unsigned"])
        self.hs.compat(txn_scope="device")
        self.assertEqual(d3.event(room, e1)["unsigned"].get("transaction_id"), "tx1")

    def test_event_size_limit(self):
        """Spec "Size limits" (C-S API, room events): an event over 65,536
        bytes as a PDU is refused, Synapse 413 M_TOO_LARGE (measured:
        ~64,886 content bytes with a thread relation)."""
        a, b, room = self.pair()
        fits = a.send_event(room, "m.room.message", {"msgtype": "m.text",
                                                      "body": "x" * 64800})
        self.assertTrue(fits)
        self.assertMxError(413, "M_TOO_LARGE", a.send_event, room, "m.room.message",
                           {"msgtype": "m.text", "body": "x" * 65000})
        self.assertMxError(413, "M_TOO_LARGE", a.set_state, room, "org.example.big",
                           {"v": "y" * 66000})
        self.hs.compat(max_event_bytes=0)
        self.assertTrue(a.send_event(room, "m.room.message", {"msgtype": "m.text",
                                                              "body": "x" * 70000}))

    def test_sync_response_cache(self):
        """Synapse caches /sync answers (caches.sync_response_cache_duration,
        default 2 min): the same since + filter + timeout + full_state again
        gets the earlier answer, events sent meanwhile missing, unless that
        answer was empty (next_batch == since, matrix-org/synapse#8518)."""
        a, b, room = self.pair()
        s0 = b.sync()["next_batch"]
        a.send_text(room, "first")
        r1 = b.sync(since=s0)
        a.send_text(room, "second")
        r1b = b.sync(since=s0)                         # repeated: from the cache
        self.assertEqual(r1b, r1)
        self.assertEqual(bodies(r1b["rooms"]["join"][room]["timeline"]["events"]), ["first"])
        self.assertEqual(bodies(b.sync(since=s0, timeout=1)["rooms"]["join"][room]["timeline"]
                                ["events"]), ["first", "second"])   # another timeout: fresh
        # an empty answer is not cached
        head = b.sync(since=r1["next_batch"], timeout=1)["next_batch"]
        self.assertNotIn("rooms", b.sync(since=head))
        a.send_text(room, "third")
        self.assertEqual(bodies(b.sync(since=head)["rooms"]["join"][room]["timeline"]["events"]),
                         ["third"])
        self.hs.compat(sync_cache_s=0)
        self.assertEqual(bodies(b.sync(since=s0)["rooms"]["join"][room]["timeline"]["events"]),
                         ["first", "second", "third"])

    def test_edits_in_messages(self):
        """Synapse before MSC3925 (spec <= v1.6, "Event replacements"):
        /messages and /event serve an edited event with the latest edit's
        content and unsigned.m.relations.m.replace; spec v1.7+: as sent."""
        a, b, room = self.pair()
        orig = a.send_text(room, "!ping")
        a.edit(room, orig, "!help")
        last = a.edit(room, orig, "!help ping")
        by = {e["event_id"]: e for e in b.room_events(room)}
        self.assertEqual(by[orig]["content"]["body"], "!ping")
        self.assertNotIn("m.relations", by[orig]["unsigned"])
        self.hs.compat(edits_in_messages="replace")
        by = {e["event_id"]: e for e in b.room_events(room)}
        self.assertEqual(by[orig]["content"], {"msgtype": "m.text", "body": "!help ping"})
        self.assertEqual(by[orig]["unsigned"]["m.relations"]["m.replace"]["event_id"], last)
        self.assertEqual(b.event(room, orig)["content"]["body"], "!help ping")
        self.assertEqual(by[last]["content"]["body"], "* !help ping")      # the edit itself
        # someone else's "edit" is not an edit
        b.edit(room, orig, "!bob was here")
        self.assertEqual(b.event(room, orig)["content"]["body"], "!help ping")

    def test_relation_to_unknown_event(self):
        """Synapse EventCreationHandler._validate_event_relation: a relation
        (thread, edit, annotation) to an event the server does not know is
        400 M_UNKNOWN; a thread rooted at a relation too.  A reply
        (m.in_reply_to) is not a relation.  Over federation nothing checks
        this ("accept")."""
        a, b, room = self.pair()
        self.assertMxError(400, "M_UNKNOWN", a.send_text, room, "x", thread_root="$nope:localhost")
        self.assertMxError(400, "M_UNKNOWN", a.edit, room, "$nope:localhost", "y")
        self.assertTrue(a.send_text(room, "reply", reply_to="$nope:localhost"))
        root = a.send_text(room, "root")
        inner = a.send_text(room, "in thread", thread_root=root)
        self.assertMxError(400, "M_UNKNOWN", a.send_text, room, "x", thread_root=inner)
        other = a.create_room()
        self.assertMxError(400, "M_UNKNOWN", a.send_text, other, "x", thread_root=root)
        self.hs.compat(relation_unknown_target="accept")
        self.assertTrue(a.send_text(room, "x", thread_root="$nope:localhost"))

    def test_lone_surrogates(self):
        """Synapse stores event JSON in the database, which refuses a lone
        UTF-16 surrogate ("\\ud800"): the client sees 500 M_UNKNOWN."""
        a, b, room = self.pair()
        raw = b'{"msgtype":"m.text","body":"half \\ud800 surrogate"}'
        path = f"/rooms/{mx.q(room)}/send/m.room.message/"
        self.assertMxError(500, "M_UNKNOWN", a.api, "PUT", path + "s1", raw)
        self.hs.compat(lone_surrogates="accept")
        eid = a.api("PUT", path + "s2", raw)["event_id"]
        self.assertEqual(a.event(room, eid)["content"]["body"], "half \ud800 surrogate")

    def test_invalid_utf8_refused(self):
        """Every server refuses a request body that is not UTF-8 JSON (RFC
        8259; Synapse 400 M_NOT_JSON): such a message never reaches a bot."""
        a, b, room = self.pair()
        self.assertMxError(400, "M_NOT_JSON", a.api, "PUT",
                           f"/rooms/{mx.q(room)}/send/m.room.message/u1",
                           b'{"msgtype":"m.text","body":"\xff\xfe\xc3\x28"}')

    def test_phantom_invite(self):
        """Synapse: an invite to a local user id nobody registered succeeds
        (the invite event is created); a bot cannot learn a typo from it."""
        a, b, room = self.pair()
        a.invite(room, "@nobody-here:localhost")
        self.assertEqual(a.state(room, "m.room.member", "@nobody-here:localhost")["membership"],
                         "invite")
        self.hs.compat(invite_unknown_users="refuse")
        self.assertMxError(404, "M_NOT_FOUND", a.invite, room, "@nobody-else:localhost")

    def test_unknown_room_errcode(self):
        """Synapse: joining a room id it does not know is 404 M_UNKNOWN ("No
        known servers"), not M_NOT_FOUND."""
        u = self.user()
        self.assertMxError(404, "M_UNKNOWN", u.join, "!nosuch:localhost")
        self.hs.compat(unknown_room_errcode="M_NOT_FOUND")
        self.assertMxError(404, "M_NOT_FOUND", u.join, "!nosuch:localhost")

    def test_limited_on_join(self):
        """Synapse: the first timeline of a room newly joined in an
        incremental sync says limited: true, however few events it has."""
        a, b = self.user("alice"), self.user("bob")
        since = b.sync()["next_batch"]
        room = a.create_room(invite=[b.user_id])
        b.join(room)
        tl = b.sync(since=since)["rooms"]["join"][room]["timeline"]
        self.assertLess(len(tl["events"]), 10)
        self.assertTrue(tl["limited"])
        self.assertTrue(tl["prev_batch"])
        self.hs.compat(limited_on_join=False)
        room2 = a.create_room(invite=[b.user_id])
        b.join(room2)
        self.assertFalse(b.sync(since=since)["rooms"]["join"][room2]["timeline"]["limited"])

    def test_empty_sync_keys_omitted(self):
        """Synapse SyncRestServlet.encode_response leaves out empty
        sections: a quiet incremental sync is {"next_batch": ...} alone, but
        for the one-time key counts, always sent (synapse#10456)."""
        u = self.user()
        since = u.sync()["next_batch"]
        self.assertEqual(set(u.sync(since=since)) - {"device_one_time_keys_count",
                                                      "device_unused_fallback_key_types"},
                         {"next_batch"})
        self.hs.compat(omit_empty_sync_keys=False)
        r = u.sync(since=since, timeout=1)
        self.assertEqual(r["rooms"]["join"], {})
        self.assertEqual(r["account_data"], {"events": []})

    def test_default_room_version(self):
        """Synapse 1.67 creates rooms of version 9 by default (10 from 1.76):
        the bot meets both, and string power levels only before v10."""
        u = self.user()
        self.assertEqual(u.api("GET", "/capabilities")["capabilities"]["m.room_versions"]
                         ["default"], "9")
        room = u.create_room()
        self.assertEqual(u.state(room, "m.room.create")["room_version"], "9")
        self.hs.compat(default_room_version="10")
        self.assertEqual(u.state(u.create_room(), "m.room.create")["room_version"], "10")

    def test_redacts_where_the_room_version_says(self):
        """Room v11 (spec "Room version 11", MSC2174) moves `redacts` into
        the content; before it is top-level.  Synapse serves both in every
        version ("both"); a server that follows the spec alone does not."""
        a, b = self.user("alice"), self.user("bob")
        for version, top, inside in (("10", True, False), ("11", False, True)):
            room = a.create_room(room_version=version, invite=[b.user_id])
            b.join(room)
            red = a.event(room, a.redact(room, a.send_text(room, "x")))
            self.assertEqual(("redacts" in red, "redacts" in red["content"]), (top, inside),
                             version)
        self.hs.compat(redacts_where="both")
        red = a.event(room, a.redact(room, a.send_text(room, "y")))
        self.assertEqual((red["redacts"], red["content"]["redacts"]), (red["redacts"],) * 2)

    def test_media_v1_unknown_to_older_servers(self):
        """Authenticated media (/_matrix/client/v1/media, spec v1.11, MSC3916)
        is unknown to older servers (404 M_UNRECOGNIZED): clients fall back
        to /_matrix/media/v3."""
        u = self.user()
        mid = u.api("POST", "/_matrix/media/v3/upload", b"old media",
                    headers={"Content-Type": "text/plain"})["content_uri"].rsplit("/", 1)[1]
        self.hs.compat(media_v1=False)
        self.assertMxError(404, "M_UNRECOGNIZED", u.api, "GET",
                           f"/_matrix/client/v1/media/download/localhost/{mid}")
        self.assertMxError(404, "M_UNRECOGNIZED", u.api, "GET", "/_matrix/client/v1/media/config")
        self.assertEqual(mx.download(u, f"mxc://localhost/{mid}"), b"old media")


class TestPersistence(unittest.TestCase):
    def test_restart_keeps_state(self):
        hs = mx.Homeserver()
        try:
            a = hs.register("alice")
            b = hs.register("bob")
            room = a.create_room(name="P", invite=[b.user_id])
            b.join(room)
            e1 = a.send_text(room, "before", txn_id="p1")
            since = b.sync()["next_batch"]
            port = hs.port
            hs.restart()                      # SIGKILL + start, same port
            self.assertEqual(hs.port, port)
            self.assertEqual(a.whoami()["device_id"], a.device_id)   # tokens survive
            self.assertEqual(a.send_text(room, "before", txn_id="p1"), e1)  # txn map too
            e2 = a.send_text(room, "after")
            r = b.sync(since=since)
            self.assertEqual([e["event_id"] for e in
                              r["rooms"]["join"][room]["timeline"]["events"]], [e2])
            self.assertEqual(b.joined_members(room), sorted([a.user_id, b.user_id]))
            # redactions, v12 creators and account data survive too; a torn
            # last journal line (killed mid-write) is ignored
            red = a.redact(room, e2)
            r12 = a.create_room(room_version="12")
            b.set_account_data("org.example.k", {"v": 1})
            since = b.sync()["next_batch"]
            hs.stop(graceful=False)
            with open(hs.state_file + ".journal", "a") as f:
                f.write('["events","$torn",{"event_i')
            hs.start()
            self.assertEqual(a.event(room, e2)["unsigned"]["redacted_because"]["event_id"], red)
            self.assertEqual(a.event(room, e2)["content"], {})
            a.set_state(r12, "m.room.name", {"name": "still infinite"})
            self.assertEqual(b.account_data("org.example.k"), {"v": 1})
            e3 = a.send_text(room, "after torn")
            r = b.sync(since=since)
            self.assertEqual([e["event_id"] for e in
                              r["rooms"]["join"][room]["timeline"]["events"]], [e3])
            hs.stop()                          # SIGTERM is a clean exit
            self.assertEqual(hs.proc.returncode, 0)
        finally:
            hs.stop()


class TestLibrary(Base):
    def test_wait_for_and_helpers(self):
        a, b, room = self.pair()
        root = a.send_text(room, "root")
        threading.Timer(0.2, lambda: b.send_text(room, "reply", msgtype="m.notice",
                                                 reply_to=root)).start()
        ev = a.wait_reply(room, root, timeout=5)
        self.assertEqual(ev["content"]["body"], "reply")
        th = b.send_text(room, "in thread", thread_root=root, mentions=[a.user_id])
        ev = a.wait_for(room, lambda e: e["event_id"] == th)
        rel = ev["content"]["m.relates_to"]
        self.assertEqual((rel["rel_type"], rel["event_id"], rel["is_falling_back"]),
                         ("m.thread", root, True))
        self.assertEqual(ev["content"]["m.mentions"], {"user_ids": [a.user_id]})
        ed = b.edit(room, th, "edited")
        ev = a.wait_for(room, lambda e: e["event_id"] == ed)
        self.assertEqual(ev["content"]["m.new_content"]["body"], "edited")
        # a burst larger than the sync limit is seen completely (gap filled)
        for i in range(120):
            b.send_text(room, f"burst {i}")
        got = a.wait_for_count(room, mx.body_contains("burst"), 120, timeout=10)
        self.assertEqual([e["content"]["body"] for e in got], [f"burst {i}" for i in range(120)])
        self.assertRaises(mx.WaitTimeout, a.wait_for, room, mx.body_contains("never"), 0.3)
        self.assertEqual(len(a.events(room)), len(a.room_events(room)))

    def test_yaml(self):
        y = mx.to_yaml({"a": "x\"y", "l": [], "n": [1, "two"], "d": {"k": True}})
        self.assertEqual(y, 'a: "x\\"y"\nl: []\nn:\n  - 1\n  - "two"\nd:\n  k: true\n')


# --------------------------------------------------------------------------
# End-to-end encryption (Client-Server API: "End-to-End Encryption",
# "Send-to-Device messaging", "Cross-signing")
# --------------------------------------------------------------------------

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mxhs  # noqa: E402  (its Ed25519 signs the test keys)


def b64(raw):
    return mxhs.base64.b64encode(raw).decode().rstrip("=")


def sign(obj, user_id, key_id, seed):
    """obj with a signature (Appendices "Signing JSON") by key_id added."""
    sig = b64(mxhs.ed25519_sign(seed, mxhs.signed_bytes(obj)))
    obj.setdefault("signatures", {}).setdefault(user_id, {})[key_id] = sig
    return obj


class Dev:
    """A device's keys: an Ed25519 signing seed and a (fake) curve25519 key."""

    def __init__(self, user):
        self.user = user
        self.seed = os.urandom(32)
        self.ed = b64(mxhs.ed25519_public(self.seed))
        self.n = 0

    def device_keys(self):
        u, d = self.user.user_id, self.user.device_id
        return sign({"user_id": u, "device_id": d,
                     "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
                     "keys": {f"curve25519:{d}": b64(os.urandom(32)), f"ed25519:{d}": self.ed}},
                    u, f"ed25519:{d}", self.seed)

    def otk(self, fallback=False):
        self.n += 1
        k = {"key": b64(os.urandom(32))}
        if fallback:
            k["fallback"] = True
        return f"signed_curve25519:AAAA{self.n:02d}", sign(
            k, self.user.user_id, f"ed25519:{self.user.device_id}", self.seed)


def xkey(user_id, usage, seed, master_seed=None):
    pub = b64(mxhs.ed25519_public(seed))
    k = {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{pub}": pub}}
    if master_seed:
        mpub = b64(mxhs.ed25519_public(master_seed))
        sign(k, user_id, f"ed25519:{mpub}", master_seed)
    return pub, k


class TestE2EE(Base):
    def upload(self, user, **body):
        return user.api("POST", "/keys/upload", body)

    def test_ed25519_agrees_with_libolm(self):
        # the signature checks below rely on mxhs's own Ed25519: check it
        # against libolm's (python3-olm) both ways
        sys.path.append("/usr/lib/python3/dist-packages")
        import olm
        acct = olm.Account()
        sig = acct.sign(b'{"a":1}')
        pub = mxhs.unb64(acct.identity_keys["ed25519"])
        self.assertTrue(mxhs.ed25519_verify(pub, b'{"a":1}', mxhs.unb64(sig)))
        self.assertFalse(mxhs.ed25519_verify(pub, b'{"a":2}', mxhs.unb64(sig)))
        seed = os.urandom(32)
        olm.ed25519_verify(b64(mxhs.ed25519_public(seed)), "m",
                           b64(mxhs.ed25519_sign(seed, b"m")))   # raises if bad

    def test_upload_query_claim(self):
        # spec: POST /keys/upload, /keys/query, /keys/claim; "One-time and fallback keys"
        a, b, room = self.pair()
        da = Dev(a)
        dk = da.device_keys()
        r = self.upload(a, device_keys=dk)
        self.assertEqual(r, {"one_time_key_counts": {"signed_curve25519": 0}})
        wrong = da.device_keys()
        wrong["device_id"] = "OTHER"             # "Must match the device ID used when logging in"
        self.assertMxError(400, "M_INVALID_PARAM", self.upload, a, device_keys=wrong)
        k1, v1 = da.otk()
        k2, v2 = da.otk()
        r = self.upload(a, one_time_keys={k1: v1, k2: v2})
        self.assertEqual(r["one_time_key_counts"], {"signed_curve25519": 2})
        self.upload(a, one_time_keys={k1: v1})   # the same key again: no change
        self.assertMxError(400, "M_INVALID_PARAM", self.upload, a,
                           one_time_keys={k1: da.otk()[1]})   # same id, other key
        q = b.api("POST", "/keys/query", {"device_keys": {a.user_id: [], "@nobody:localhost": []}})
        got = dict(q["device_keys"][a.user_id][a.device_id])
        self.assertIsInstance(got.pop("unsigned"), dict)    # "with the addition of unsigned"
        self.assertEqual(got, dk)                           # "the same as uploaded"
        self.assertTrue(mxhs.check_signature(got, a.user_id, f"ed25519:{a.device_id}", da.ed))
        self.assertNotIn("@nobody:localhost", q["device_keys"])   # unknown: left out
        self.assertEqual(q["failures"], {})
        self.assertEqual(b.api("POST", "/keys/query",
                               {"device_keys": {a.user_id: ["NOPE"]}})["device_keys"],
                         {a.user_id: {}})
        self.assertMxError(400, "M_MISSING_PARAM", b.api, "POST", "/keys/query", {})
        # claim: oldest one-time key first, each given out once
        claim = {"one_time_keys": {a.user_id: {a.device_id: "signed_curve25519"}}}
        self.assertEqual(b.api("POST", "/keys/claim", claim)["one_time_keys"],
                         {a.user_id: {a.device_id: {k1: v1}}})
        self.assertEqual(b.api("POST", "/keys/claim", claim)["one_time_keys"],
                         {a.user_id: {a.device_id: {k2: v2}}})
        # none left, no fallback key: the device is missing from the result
        self.assertEqual(b.api("POST", "/keys/claim", claim)["one_time_keys"], {})
        s = a.sync()
        self.assertEqual(s["device_one_time_keys_count"], {"signed_curve25519": 0})
        self.assertEqual(s["device_unused_fallback_key_types"], [])
        # fallback key: given when one-time keys are exhausted, not consumed,
        # and reported used through /sync
        kf, vf = da.otk(fallback=True)
        self.upload(a, fallback_keys={kf: vf})
        self.assertEqual(a.sync()["device_unused_fallback_key_types"], ["signed_curve25519"])
        for _ in range(2):
            self.assertEqual(b.api("POST", "/keys/claim", claim)["one_time_keys"],
                             {a.user_id: {a.device_id: {kf: vf}}})
        self.assertEqual(a.sync()["device_unused_fallback_key_types"], [])
        self.upload(a, fallback_keys={kf: vf})   # the same key again stays used
        self.assertEqual(a.sync()["device_unused_fallback_key_types"], [])
        kf2, vf2 = da.otk(fallback=True)
        self.upload(a, fallback_keys={kf2: vf2})  # one per algorithm: replaces
        self.assertEqual(a.sync()["device_unused_fallback_key_types"], ["signed_curve25519"])
        k3, v3 = da.otk()
        self.upload(a, one_time_keys={k3: v3})    # one-time keys go before the fallback
        self.assertEqual(b.api("POST", "/keys/claim", claim)["one_time_keys"],
                         {a.user_id: {a.device_id: {k3: v3}}})
        self.assertEqual(b.api("POST", "/keys/claim", claim)["one_time_keys"],
                         {a.user_id: {a.device_id: {kf2: vf2}}})

    def test_send_to_device(self):
        # spec: "Send-to-Device messaging" (server behaviour) and
        # PUT /sendToDevice/{eventType}/{txnId}
        a, b, room = self.pair()
        b2 = self.hs.login(b.user_id[1:].split(":")[0])     # second device of b
        s0 = b.sync()["next_batch"]
        s0b = b2.sync()["next_batch"]
        put = lambda u, txn, msgs, t="org.example.ping": u.api(   # noqa: E731
            "PUT", f"/sendToDevice/{t}/{txn}", {"messages": msgs})
        self.assertEqual(put(a, "t1", {b.user_id: {b.device_id: {"n": 1}}}), {})
        put(a, "t1", {b.user_id: {b.device_id: {"n": 1}}})   # retransmission: no copy
        r1 = b.sync(since=s0)
        self.assertEqual(r1["to_device"]["events"],
                         [{"sender": a.user_id, "type": "org.example.ping", "content": {"n": 1}}])
        self.assertEqual(b2.sync(since=s0b).get("to_device", {}).get("events", []), [])  # empty: omitted   # other device
        # not acknowledged yet (same since again): delivered again
        self.assertEqual(len(b.sync(since=s0)["to_device"]["events"]), 1)
        r2 = b.sync(since=r1["next_batch"])       # acknowledged: gone
        self.assertEqual(r2.get("to_device", {}).get("events", []), [])  # empty: omitted
        # "*": every device of the user; the same txn id from another device
        # is another transaction
        a2 = self.hs.login(a.user_id[1:].split(":")[0])
        put(a2, "t1", {b.user_id: {"*": {"n": 2}}})
        self.assertEqual([e["content"] for e in b.sync(since=r2["next_batch"])["to_device"]["events"]],
                         [{"n": 2}])
        self.assertEqual([e["content"] for e in b2.sync(since=s0b)["to_device"]["events"]],
                         [{"n": 2}])
        # order of arrival; a waiting long-poll wakes up for a to-device message
        since = b.sync(since=r2["next_batch"])["next_batch"]
        b.sync(since=since)
        threading.Timer(0.3, lambda: put(a, "t2", {b.user_id: {b.device_id: {"n": 3}}})).start()
        t0 = time.monotonic()
        r = b.sync(since=since, timeout=5000)
        self.assertLess(time.monotonic() - t0, 4)
        self.assertEqual([e["content"] for e in r["to_device"]["events"]], [{"n": 3}])
        put(a, "t3", {b.user_id: {b.device_id: {"n": 4}}})
        put(a, "t4", {b.user_id: {b.device_id: {"n": 5}}})
        self.assertEqual([e["content"] for e in b.sync(since=r["next_batch"])["to_device"]["events"]],
                         [{"n": 4}, {"n": 5}])
        # too large for one EDU
        self.assertMxError(413, "M_TOO_LARGE", put, a, "big",
                           {b.user_id: {b.device_id: {"x": "y" * 70000}}})
        self.assertMxError(400, "M_MISSING_PARAM", a.api, "PUT",
                           "/sendToDevice/org.example.ping/t9", {})

    def test_stats_syncing_is_caught_up_position(self):
        # /_test/stats "syncing": a pending long-poll that found nothing for
        # its user up to the head counts as caught up to it, even when the
        # head moved for others only (to-device for another user here)
        a, b, room = self.pair()
        c = self.user("carol")
        since = b.sync()["next_batch"]
        t = threading.Thread(target=lambda: b.sync(since=since, timeout=3000))
        t.start()
        time.sleep(0.3)
        a.api("PUT", "/sendToDevice/org.example.n/other",
              {"messages": {c.user_id: {c.device_id: {"x": 1}}}})
        deadline = time.monotonic() + 2
        head = self.hs.stats()["head"]
        while self.hs.stats()["syncing"].get(b.user_id) != [head] and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.hs.stats()["syncing"].get(b.user_id), [head])
        self.assertNotEqual(head, since)
        t.join()

    def test_to_device_limit_and_hold(self):
        # spec: "the server should limit the number sent in each /sync
        # response. 100 messages is recommended"; the hold switch is mxhs's
        a, b, room = self.pair()
        since = b.sync()["next_batch"]
        a.api("PUT", "/sendToDevice/org.example.n/many",
              {"messages": {b.user_id: {b.device_id: {"i": 0}}}})
        for i in range(1, 120):
            a.api("PUT", f"/sendToDevice/org.example.n/m{i}",
                  {"messages": {b.user_id: {b.device_id: {"i": i}}}})
        r = b.sync(since=since)
        self.assertEqual([e["content"]["i"] for e in r["to_device"]["events"]], list(range(100)))
        r = b.sync(since=r["next_batch"])
        self.assertEqual([e["content"]["i"] for e in r["to_device"]["events"]],
                         list(range(100, 120)))
        since = b.sync(since=r["next_batch"])["next_batch"]
        # held back until released, then delivered once
        self.hs.api("POST", "/_test/to_device/hold", {"user": b.user_id, "type": "m.room.encrypted"})
        a.api("PUT", "/sendToDevice/m.room.encrypted/h1",
              {"messages": {b.user_id: {b.device_id: {"k": 1}}}})
        a.api("PUT", "/sendToDevice/org.example.n/h2",
              {"messages": {b.user_id: {b.device_id: {"k": 2}}}})
        r = b.sync(since=since)
        self.assertEqual([e["content"] for e in r["to_device"]["events"]], [{"k": 2}])
        pend = self.hs.api("GET", "/_test/to_device")["pending"][b.user_id][b.device_id]
        self.assertIn({"type": "m.room.encrypted", "sender": a.user_id, "held": True,
                       "delivered": False}, pend)
        self.assertEqual(self.hs.api("POST", "/_test/to_device/release", {}), {"released": 1})
        r = b.sync(since=r["next_batch"])
        self.assertEqual([e["content"] for e in r["to_device"]["events"]], [{"k": 1}])
        self.assertEqual(b.sync(since=r["next_batch"]).get("to_device", {}).get("events", []), [])  # empty: omitted

    def test_device_lists(self):
        # spec: "Extensions to /sync" (device_lists: changed / left),
        # "Tracking the device list for a user", GET /keys/changes
        a, b, room = self.pair()
        c = self.user("carol")
        s0 = b.sync()["next_batch"]
        self.assertNotIn("device_lists", b.sync())        # initial: nothing, omitted
        self.upload(a, device_keys=Dev(a).device_keys())
        self.upload(c, device_keys=Dev(c).device_keys())     # shares no room with b
        r = b.sync(since=s0)
        self.assertEqual(r["device_lists"], {"changed": [a.user_id], "left": []})
        self.assertEqual(b.api("GET", "/keys/changes", query={"from": s0, "to": r["next_batch"]}),
                         {"changed": [a.user_id], "left": []})
        self.assertMxError(400, "M_MISSING_PARAM", b.api, "GET", "/keys/changes")
        s1 = r["next_batch"]
        self.assertNotIn("device_lists", b.sync(since=s1))   # empty: omitted
        # a waiting long-poll returns for a device list change
        threading.Timer(0.3, lambda: self.upload(a, device_keys=Dev(a).device_keys())).start()
        t0 = time.monotonic()
        r = b.sync(since=s1, timeout=5000)
        self.assertLess(time.monotonic() - t0, 4)
        self.assertEqual(r["device_lists"]["changed"], [a.user_id])
        s2 = r["next_batch"]
        # an encrypted room: c now shares one with b (changed), then not (left)
        enc = b.create_room(name="enc", invite=[c.user_id], initial_state=[
            {"type": "m.room.encryption", "state_key": "",
             "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        c.join(enc)
        r = b.sync(since=s2)
        self.assertEqual(r["device_lists"], {"changed": [c.user_id], "left": []})
        c.leave(enc)
        r2 = b.sync(since=r["next_batch"])
        self.assertEqual(r2["device_lists"], {"changed": [], "left": [c.user_id]})
        self.assertEqual(b.api("GET", "/keys/changes", query={"from": r["next_batch"]}),
                         {"changed": [], "left": [c.user_id]})
        # removing a device with keys (logout) is a change too
        s3 = r2["next_batch"]
        a.logout()
        self.assertEqual(b.sync(since=s3)["device_lists"]["changed"], [a.user_id])

    def test_cross_signing(self):
        # spec: "Cross-signing", POST /keys/device_signing/upload (with
        # "User-Interactive Authentication API"), POST /keys/signatures/upload
        a, b, room = self.pair()
        c = self.user("carol")
        da = Dev(a)
        self.upload(a, device_keys=da.device_keys())
        ms, ss, us = os.urandom(32), os.urandom(32), os.urandom(32)
        mpub, master = xkey(a.user_id, "master", ms)
        spub, ssk = xkey(a.user_id, "self_signing", ss, ms)
        upub, usk = xkey(a.user_id, "user_signing", us, ms)
        body = {"master_key": master, "self_signing_key": ssk, "user_signing_key": usk}
        e = self.assertMxError(401, None, a.api, "POST", "/keys/device_signing/upload", body)
        self.assertEqual(e.body["flows"], [{"stages": ["m.login.password"]}])
        self.assertIn("session", e.body)
        auth = {"type": "m.login.password", "session": e.body["session"],
                "identifier": {"type": "m.id.user", "user": a.user_id}, "password": "nope"}
        e = self.assertMxError(401, "M_FORBIDDEN", a.api, "POST", "/keys/device_signing/upload",
                               dict(body, auth=auth))
        self.assertEqual(e.body["flows"], [{"stages": ["m.login.password"]}])
        # the self-signing key must be signed by the master key
        bad = dict(body, self_signing_key=xkey(a.user_id, "self_signing", ss, us)[1],
                   auth=dict(auth, password="pw"))
        self.assertMxError(400, "M_INVALID_SIGNATURE", a.api, "POST",
                           "/keys/device_signing/upload", bad)
        self.assertMxError(400, "M_MISSING_PARAM", b.api, "POST", "/keys/device_signing/upload",
                           {"self_signing_key": xkey(b.user_id, "self_signing", ss, ms)[1]})
        s0 = b.sync()["next_batch"]
        a.api("POST", "/keys/device_signing/upload", dict(body, auth=dict(auth, password="pw")))
        self.assertEqual(b.sync(since=s0)["device_lists"]["changed"], [a.user_id])
        q = b.api("POST", "/keys/query", {"device_keys": {a.user_id: []}})
        self.assertEqual(q["master_keys"][a.user_id], master)
        self.assertEqual(q["self_signing_keys"][a.user_id], ssk)
        self.assertEqual(q["user_signing_keys"], {})          # only for its owner
        self.assertEqual(a.api("POST", "/keys/query", {"device_keys": {a.user_id: []}})
                         ["user_signing_keys"][a.user_id], usk)
        # the self-signing key signs the device
        q = b.api("POST", "/keys/query", {"device_keys": {a.user_id: []}})
        dk = q["device_keys"][a.user_id][a.device_id]
        dk.pop("unsigned")
        signed = sign(json.loads(json.dumps(dk)), a.user_id, f"ed25519:{spub}", ss)
        forged = sign(json.loads(json.dumps(dk)), a.user_id, f"ed25519:{spub}", us)
        r = a.api("POST", "/keys/signatures/upload", {a.user_id: {a.device_id: forged}})
        self.assertEqual(r["failures"][a.user_id][a.device_id]["errcode"], "M_INVALID_SIGNATURE")
        s1 = b.sync()["next_batch"]
        r = a.api("POST", "/keys/signatures/upload", {a.user_id: {a.device_id: signed}})
        self.assertEqual(r["failures"], {})
        self.assertEqual(b.sync(since=s1)["device_lists"]["changed"], [a.user_id])
        got = b.api("POST", "/keys/query", {"device_keys": {a.user_id: []}})
        dev = got["device_keys"][a.user_id][a.device_id]
        self.assertTrue(mxhs.check_signature(dev, a.user_id, f"ed25519:{spub}", spub))
        self.assertTrue(mxhs.check_signature(dev, a.user_id, f"ed25519:{a.device_id}", da.ed))
        mk = got["master_keys"][a.user_id]
        self.assertTrue(mxhs.check_signature(got["self_signing_keys"][a.user_id], a.user_id,
                                             f"ed25519:{mpub}", mpub))
        self.assertEqual(mk["keys"], {f"ed25519:{mpub}": mpub})
        # b signs a's master key with b's user-signing key: b sees it, c not
        bms, bus = os.urandom(32), os.urandom(32)
        bm = xkey(b.user_id, "master", bms)[1]
        bupub, bu = xkey(b.user_id, "user_signing", bus, bms)
        self.hs.api("POST", "/_test/e2ee", {"uia_exempt_first_upload": True})
        try:   # spec v1.11: no UIA for the first upload (MSC3967), when switched on
            b.api("POST", "/keys/device_signing/upload", {"master_key": bm, "user_signing_key": bu})
        finally:
            self.hs.api("POST", "/_test/e2ee", {"uia_exempt_first_upload": False})
        sm = sign(json.loads(json.dumps(master)), b.user_id, f"ed25519:{bupub}", bus)
        self.assertEqual(b.api("POST", "/keys/signatures/upload", {a.user_id: {mpub: sm}})
                         ["failures"], {})
        seen_b = b.api("POST", "/keys/query", {"device_keys": {a.user_id: []}})["master_keys"]
        seen_c = c.api("POST", "/keys/query", {"device_keys": {a.user_id: []}})["master_keys"]
        self.assertIn(b.user_id, seen_b[a.user_id]["signatures"])
        self.assertNotIn(b.user_id, seen_c[a.user_id].get("signatures", {}))
        # replacing the keys always needs UIA
        body2 = {"master_key": xkey(b.user_id, "master", os.urandom(32))[1]}
        self.assertMxError(401, None, b.api, "POST", "/keys/device_signing/upload", body2)
        # spec: 403 when "the public key of one of the keys is the same as
        # one of the user's device IDs"
        cs = os.urandom(32)
        cpub, cmaster = xkey(c.user_id, "master", cs)
        self.hs.login(c.user_id[1:].split(":")[0], device_id=cpub)
        self.assertMxError(403, "M_FORBIDDEN", c.api, "POST", "/keys/device_signing/upload",
                           {"master_key": cmaster, "auth": dict(auth, password="pw",
                            identifier={"type": "m.id.user", "user": c.user_id})})

    def test_encrypted_room_events(self):
        # spec: m.room.encryption state, m.room.encrypted events are ordinary
        # events to the server
        a, b, room = self.pair()
        a.set_state(room, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2",
                                                "rotation_period_msgs": 100})
        self.assertEqual(b.state(room, "m.room.encryption")["algorithm"], "m.megolm.v1.aes-sha2")
        since = b.sync()["next_batch"]
        content = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn...",
                   "session_id": "sess", "sender_key": "k", "device_id": a.device_id}
        eid = a.send_event(room, "m.room.encrypted", content)
        tl = b.sync(since=since)["rooms"]["join"][room]["timeline"]["events"]
        self.assertEqual([(e["event_id"], e["type"], e["content"]) for e in tl],
                         [(eid, "m.room.encrypted", content)])


class TestE2EEPersistence(unittest.TestCase):
    def test_keys_and_pending_to_device_survive_restart(self):
        hs = mx.Homeserver()
        try:
            a, b = hs.register("alice"), hs.register("bob")
            da = Dev(a)
            k, v = da.otk()
            a.api("POST", "/keys/upload", {"device_keys": da.device_keys(),
                                           "one_time_keys": {k: v}})
            since = b.sync()["next_batch"]
            a.api("PUT", "/sendToDevice/org.example.x/p1",
                  {"messages": {b.user_id: {b.device_id: {"p": 1}}}})
            hs.restart()
            a.api("PUT", "/sendToDevice/org.example.x/p1",     # txn id remembered
                  {"messages": {b.user_id: {b.device_id: {"p": 1}}}})
            r = b.sync(since=since)
            self.assertEqual([e["content"] for e in r["to_device"]["events"]], [{"p": 1}])
            hs.restart()
            self.assertEqual(b.sync(since=r["next_batch"]).get("to_device", {}).get("events", []), [])  # empty: omitted
            self.assertEqual(b.api("POST", "/keys/claim", {"one_time_keys": {
                a.user_id: {a.device_id: "signed_curve25519"}}})["one_time_keys"],
                {a.user_id: {a.device_id: {k: v}}})
            self.assertIn(a.device_id, b.api("POST", "/keys/query", {
                "device_keys": {a.user_id: []}})["device_keys"][a.user_id])
        finally:
            hs.stop()
class TestLoadModel(Base):
    """--send-ms / --sync-ms / --load-workers (POST /_test/load): a bounded
    number of workers with a service time each, so queues build up."""

    def tearDown(self):
        self.hs.api("POST", "/_test/load", {"send_ms": 0, "sync_ms": 0, "workers": 4})

    def burst(self, a, room, n):
        t0 = time.monotonic()
        ths = [threading.Thread(target=a.send_text, args=(room, f"load {i}")) for i in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        return time.monotonic() - t0

    def test_sends_queue_behind_bounded_workers(self):
        a, b, room = self.pair()
        info = self.hs.api("POST", "/_test/load", {"send_ms": 100, "sync_ms": 0, "workers": 2})
        self.assertEqual((info["send_ms"], info["workers"], info["busy"]), (100, 2, 0))
        # 6 sends, 2 at a time, 100 ms each: three rounds
        took = self.burst(a, room, 6)
        self.assertGreaterEqual(took, 0.29)
        info = self.hs.api("GET", "/_test/load")
        self.assertEqual((info["busy"], info["queued"]), (0, 0))
        self.assertGreaterEqual(info["max_queue"], 3)
        self.assertGreaterEqual(info["served"], 6)
        # 6 workers: one round
        self.hs.api("POST", "/_test/load", {"send_ms": 100, "workers": 6})
        self.assertLess(self.burst(a, room, 6), 0.29)
        # reads cost nothing; a /sync answer costs sync_ms
        self.hs.api("POST", "/_test/load", {"send_ms": 0, "sync_ms": 150, "workers": 1})
        t0 = time.monotonic()
        b.api("GET", C + "/sync", query={"timeout": "0"})
        self.assertGreaterEqual(time.monotonic() - t0, 0.14)
        t0 = time.monotonic()
        b.api("GET", C + "/account/whoami")
        self.assertLess(time.monotonic() - t0, 0.14)
        got = b.wait_for_count(room, mx.body_contains("load "), 12, timeout=10)
        self.assertEqual(len(got), 12)


if __name__ == "__main__":
    fixtures.main(verbosity=1)
