/* Megolm (m.megolm.v1.aes-sha2): inbound sessions and room event
 * decryption (with the kept-until-the-key-arrives table), outbound
 * sessions shared over Olm and room event encryption for the outbox. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tlbot/log.h"

#define DEFAULT_ROTATION_MS (7LL * 86400 * 1000)
#define DEFAULT_ROTATION_MSGS 100
#define TODEVICE_BATCH 100 /* devices per /sendToDevice request */

static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void
count(struct tlbot_crypto *c, unsigned long long *what)
{
	pthread_mutex_lock(&c->lock);
	(*what)++;
	pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------ inbound */

/* An inbound session from a session key (m.room_key) or, with exported
 * set, from a session export (m.forwarded_room_key), checked to have the
 * id sid. Returns it (new), or NULL with *why set (bad key, logged by the
 * caller) or NULL why (out of memory). */
static OlmInboundGroupSession *
new_inbound(const char *key, int exported, const char *sid, const char **why)
{
	OlmInboundGroupSession *s = malloc(olm_inbound_group_session_size());
	char *copy = strdup(key), idbuf[128];
	size_t n, r;

	*why = NULL;
	if (s == NULL || copy == NULL) {
		free(s);
		free(copy);
		return NULL;
	}
	olm_inbound_group_session(s);
	r = exported ? olm_import_inbound_group_session(s, (const uint8_t *)copy, strlen(copy))
		     : olm_init_inbound_group_session(s, (const uint8_t *)copy, strlen(copy));
	explicit_bzero(copy, strlen(copy));
	free(copy);
	if (r == olm_error()) {
		*why = olm_inbound_group_session_last_error(s);
		cr_in_free(s);
		return NULL;
	}
	n = olm_inbound_group_session_id(s, (uint8_t *)idbuf, sizeof(idbuf) - 1);
	if (n == olm_error() || (idbuf[n] = '\0', strcmp(idbuf, sid) != 0)) {
		*why = "the key does not match its session id";
		cr_in_free(s);
		return NULL;
	}
	return s;
}

/* Store inbound session s (freed here) of room/sid as sender's (device
 * keys sender_key, sender_ed). The first key for a session wins: a later
 * one (even from someone else holding the key) cannot change who it
 * belongs to. chain: the forwarding chain (JSON) or NULL. 0 or -1. */
static int
store_inbound(struct tlbot_crypto *c, struct tlbot_store *st, OlmInboundGroupSession *s,
	      const char *room, const char *sid, const char *sender, const char *sender_key,
	      const char *sender_ed, const char *chain)
{
	char *pickle = cr_pickle_in(c, s);
	sqlite3_stmt *q;

	cr_in_free(s);
	if (pickle == NULL)
		return -1;
	q = cr_prep(st, "INSERT OR IGNORE INTO crypto_megolm_in(room_id, session_id, sender_key,"
			" sender_user, sender_ed25519, pickle, forwarding_chain)"
			" VALUES (?, ?, ?, ?, ?, ?, ?)");
	if (q) {
		cr_bind(q, 1, room);
		cr_bind(q, 2, sid);
		cr_bind(q, 3, sender_key);
		cr_bind(q, 4, sender);
		cr_bind(q, 5, sender_ed);
		cr_bind(q, 6, pickle);
		cr_bind(q, 7, chain);
	}
	free(pickle);
	return cr_done(st, q);
}

int
cr_megolm_add_inbound(struct tlbot_crypto *c, struct tlbot_store *st, const char *sender,
		      const char *sender_key, const char *sender_ed, const json_t *content)
{
	const char *algo = jstr(content, "algorithm"), *room = jstr(content, "room_id");
	const char *sid = jstr(content, "session_id"), *key = jstr(content, "session_key");
	OlmInboundGroupSession *s;
	const char *why;

	if (algo == NULL || strcmp(algo, MEGOLM_ALGO) != 0 || room == NULL || sid == NULL ||
	    key == NULL) {
		log_warnx("encryption: a room key from %s is not a Megolm key; ignored", sender);
		return 0;
	}
	s = new_inbound(key, 0, sid, &why);
	if (s == NULL && why == NULL)
		return -1;
	if (s == NULL) {
		log_warnx("encryption: a room key from %s for room %s is invalid: %s", sender, room,
			  why);
		return 0;
	}
	if (store_inbound(c, st, s, room, sid, sender, sender_key, sender_ed, NULL) != 0)
		return -1;
	log_info("encryption: room %s: received a room key from %s", room, sender);
	return 0;
}

/* Why the forwarded key content from forwarder's device (Olm identity key
 * fwd_curve, signing key fwd_ed) is not taken, or NULL when it is. The bot
 * takes a forwarded key only in answer to a request it sent (a kept event
 * of that room and session whose key it asked for; the event's sender_key,
 * when it named one, must be the forwarded key's), and only from the
 * device that made the session: the forwarder is the kept event's sender,
 * its identity key is the session's sender_key, its signing key the
 * claimed one, and the chain is empty. The spec's other trusted
 * forwarders, the bot's own verified devices, do not exist: the bot runs
 * one device. *db set on a database error. */
static const char *
forward_refused(struct tlbot_store *st, const char *forwarder, const char *fwd_curve,
		const char *fwd_ed, const json_t *content, int *db)
{
	const char *sender_key = jstr(content, "sender_key");
	const char *claimed = jstr(content, "sender_claimed_ed25519_key");
	const json_t *chain = json_object_get(content, "forwarding_curve25519_key_chain");
	sqlite3_stmt *q = cr_prep(st, "SELECT sender, sender_key FROM crypto_pending"
				      " WHERE room_id = ? AND session_id = ? AND requested = 1"
				      " LIMIT 1");
	const char *why = NULL;
	int r;

	*db = 0;
	if (jstr(content, "algorithm") == NULL || strcmp(jstr(content, "algorithm"), MEGOLM_ALGO) ||
	    jstr(content, "room_id") == NULL || jstr(content, "session_id") == NULL ||
	    jstr(content, "session_key") == NULL || sender_key == NULL || claimed == NULL ||
	    !json_is_array(chain)) {
		sqlite3_finalize(q);
		return "not a Megolm key";
	}
	if (q == NULL) {
		*db = 1;
		return "database error";
	}
	cr_bind(q, 1, jstr(content, "room_id"));
	cr_bind(q, 2, jstr(content, "session_id"));
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		const char *asked_sender = (const char *)sqlite3_column_text(q, 0);
		const char *asked_key = (const char *)sqlite3_column_text(q, 1);

		if (asked_key && strcmp(asked_key, sender_key) != 0)
			why = "it is not the session the bot asked for";
		else if (asked_sender == NULL || strcmp(asked_sender, forwarder) != 0 ||
			 strcmp(fwd_curve, sender_key) != 0 || strcmp(fwd_ed, claimed) != 0 ||
			 json_array_size(chain) != 0)
			why = "only the device that made the session may forward it";
	} else if (r == SQLITE_DONE) {
		why = "the bot did not ask for it";
	} else {
		*db = 1;
		why = "database error";
	}
	sqlite3_finalize(q);
	return why;
}

int
cr_megolm_add_forwarded(struct tlbot_crypto *c, struct tlbot_store *st, const char *forwarder,
			const char *fwd_curve, const char *fwd_device, const char *fwd_ed,
			const json_t *content)
{
	const char *room = jstr(content, "room_id"), *sid = jstr(content, "session_id");
	OlmInboundGroupSession *s = NULL;
	json_t *chain = NULL;
	char *chain_text = NULL;
	int db, rc;
	const char *why = forward_refused(st, forwarder, fwd_curve, fwd_ed, content, &db);

	if (db)
		return -1;
	if (why == NULL) {
		s = new_inbound(jstr(content, "session_key"), 1, sid, &why);
		if (s == NULL && why == NULL)
			return -1;
	}
	if (s == NULL) {
		count(c, &c->refused);
		log_warnx("encryption: ignored a forwarded room key from %s device %s for room %s: %s",
			  forwarder, fwd_device, room ? room : "?", why);
		return 0;
	}
	/* the chain as it would be passed on: the forwarder's key appended */
	chain = json_deep_copy(json_object_get(content, "forwarding_curve25519_key_chain"));
	if (chain == NULL || json_array_append_new(chain, json_string(fwd_curve)) != 0 ||
	    (chain_text = json_dumps(chain, JSON_COMPACT)) == NULL) {
		json_decref(chain);
		cr_in_free(s);
		return -1;
	}
	json_decref(chain);
	rc = store_inbound(c, st, s, room, sid, forwarder, jstr(content, "sender_key"),
			   jstr(content, "sender_claimed_ed25519_key"), chain_text);
	free(chain_text);
	if (rc == 0)
		log_info("encryption: room %s: accepted a forwarded room key from %s device %s "
			 "(asked for; forwarded by the device that made the session)",
			 room, forwarder, fwd_device);
	return rc;
}

/* Keep an event whose key has not arrived. 0 or -1. */
static int
keep_pending(struct tlbot_store *st, const char *room_id, const json_t *ev, const char *sid,
	     const char *sender_key)
{
	char *text = json_dumps(ev, JSON_COMPACT);
	sqlite3_stmt *q = text ? cr_prep(st, "INSERT OR IGNORE INTO crypto_pending(event_id, room_id,"
					     " session_id, sender, sender_key, event, created_ms)"
					     " VALUES (?, ?, ?, ?, ?, ?, ?)")
			       : NULL;

	if (q) {
		cr_bind(q, 1, jstr(ev, "event_id"));
		cr_bind(q, 2, room_id);
		cr_bind(q, 3, sid);
		cr_bind(q, 4, jstr(ev, "sender"));
		cr_bind(q, 5, sender_key);
		cr_bind(q, 6, text);
		sqlite3_bind_int64(q, 7, cr_now_ms());
	}
	free(text);
	return cr_done(st, q);
}

static int
refuse(struct tlbot_crypto *c, const char *room_id, const json_t *ev, const char *why)
{
	count(c, &c->refused);
	log_warnx("encryption: room %s event %s from %s refused: %s", room_id,
		  jstr(ev, "event_id") ? jstr(ev, "event_id") : "?",
		  jstr(ev, "sender") ? jstr(ev, "sender") : "?", why);
	return 2;
}

/* The inbound session of (room_id, sid): 0 (new strings in *pickle and
 * *owner, the highest pruned replay index in *pruned_upto), 1 none, -1. */
static int
load_inbound(struct tlbot_store *st, const char *room_id, const char *sid, char **pickle,
	     char **owner, int64_t *pruned_upto)
{
	sqlite3_stmt *q = cr_prep(st, "SELECT pickle, sender_user, pruned_upto FROM crypto_megolm_in"
				      " WHERE room_id = ? AND session_id = ?");
	int r;

	*pickle = *owner = NULL;
	*pruned_upto = -1;
	if (q == NULL)
		return -1;
	cr_bind(q, 1, room_id);
	cr_bind(q, 2, sid);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		*pickle = cr_col(q, 0);
		*owner = cr_col(q, 1);
		*pruned_upto = sqlite3_column_int64(q, 2);
	}
	sqlite3_finalize(q);
	if (r == SQLITE_ROW && (*pickle == NULL || *owner == NULL)) {
		free(*pickle);
		free(*owner);
		*pickle = *owner = NULL;
		return -1;
	}
	return r == SQLITE_ROW ? 0 : r == SQLITE_DONE ? 1 : -1;
}

/* Megolm-decrypt ct with s: a new NUL-terminated plaintext (its buffer
 * size in *cap, for wiping) and its message index, or NULL with *why set
 * (refused) or NULL why (out of memory). */
static char *
group_decrypt(OlmInboundGroupSession *s, const char *ct, uint32_t *idx, size_t *cap,
	      const char **why)
{
	char *copy = strdup(ct), *text;
	size_t max, n;

	*why = NULL;
	max = copy ? olm_group_decrypt_max_plaintext_length(s, (uint8_t *)copy, strlen(copy))
		   : olm_error();
	free(copy);
	if (max == olm_error()) {
		*why = "garbage ciphertext";
		return NULL;
	}
	text = malloc(max + 1);
	copy = strdup(ct);
	n = text && copy ? olm_group_decrypt(s, (uint8_t *)copy, strlen(copy), (uint8_t *)text, max,
					     idx)
			 : olm_error();
	free(copy);
	if (n == olm_error()) {
		if (text) {
			*why = olm_inbound_group_session_last_error(s);
			explicit_bzero(text, max + 1); /* all of it: not NUL-terminated */
		}
		free(text);
		return NULL;
	}
	text[n] = '\0';
	*cap = max + 1;
	return text;
}

/* Replay check of message index idx of session sid: 0 fresh (recorded
 * with the time seen), 1 a replay (the index was seen under another event
 * id, or is at or below what was pruned of the session), -1 db error. */
static int
check_replay(struct tlbot_store *st, const char *sid, uint32_t idx, const char *event_id,
	     int64_t pruned_upto)
{
	char num[16], *seen = NULL;
	sqlite3_stmt *q;
	int r;

	snprintf(num, sizeof(num), "%u", idx);
	r = cr_get1(st, &seen, "SELECT event_id FROM crypto_megolm_index WHERE session_id = ? AND idx = ?",
		    sid, num, NULL);
	if (r == 0) {
		r = strcmp(seen, event_id) != 0;
		free(seen);
		return r;
	}
	if (r < 0)
		return -1;
	if ((int64_t)idx <= pruned_upto)
		return 1;
	q = cr_prep(st, "INSERT INTO crypto_megolm_index(session_id, idx, event_id, seen_ms)"
			" VALUES (?, ?, ?, ?)");
	if (q) {
		cr_bind(q, 1, sid);
		sqlite3_bind_int64(q, 2, idx);
		cr_bind(q, 3, event_id);
		sqlite3_bind_int64(q, 4, cr_now_ms());
	}
	return cr_done(st, q);
}

/* Why the decrypted payload pj cannot stand for an event of room_id, or
 * NULL when it is fine. */
static const char *
bad_plaintext(const json_t *pj, const char *room_id)
{
	if (!json_is_object(pj) || jstr(pj, "type") == NULL ||
	    !json_is_object(json_object_get(pj, "content")))
		return "malformed plaintext";
	if (jstr(pj, "room_id") == NULL || strcmp(jstr(pj, "room_id"), room_id) != 0)
		return "the plaintext belongs to another room";
	return NULL;
}

/* The event ev as its plaintext pj says: type and content replaced, the
 * relation (which travels in the clear so the server can aggregate it)
 * kept from the encrypted content. New reference or NULL. */
static json_t *
plain_event(const json_t *ev, const json_t *content, const json_t *pj)
{
	json_t *plain = json_deep_copy(ev);
	json_t *pc = json_deep_copy(json_object_get(pj, "content"));
	const json_t *rel = json_object_get(content, "m.relates_to");

	if (plain == NULL) {
		json_decref(pc);
		return NULL;
	}
	if (pc && rel && json_object_get(pc, "m.relates_to") == NULL)
		json_object_set(pc, "m.relates_to", (json_t *)rel);
	json_object_set_new(plain, "type", json_string(jstr(pj, "type")));
	json_object_set_new(plain, "content", pc ? pc : json_object());
	return plain;
}

int
tlbot_crypto_decrypt(struct tlbot_crypto *c, struct tlbot_store *st, const char *room_id,
		     const json_t *ev, json_t **plain)
{
	const json_t *content = json_object_get(ev, "content");
	const char *algo = jstr(content, "algorithm"), *ct = jstr(content, "ciphertext");
	const char *sid = jstr(content, "session_id"), *event_id = jstr(ev, "event_id");
	const char *sender = jstr(ev, "sender"), *why = NULL;
	OlmInboundGroupSession *s = NULL;
	char *pickle = NULL, *owner = NULL, *text = NULL;
	int64_t pruned_upto;
	uint32_t idx = 0;
	size_t cap = 0;
	json_t *pj = NULL;
	int rc = -1, r;

	*plain = NULL;
	if (algo == NULL || strcmp(algo, MEGOLM_ALGO) != 0 || ct == NULL || sid == NULL ||
	    event_id == NULL || sender == NULL)
		return refuse(c, room_id, ev, "not a Megolm event");
	r = load_inbound(st, room_id, sid, &pickle, &owner, &pruned_upto);
	if (r < 0)
		return -1;
	if (r == 1) {
		log_info("encryption: room %s event %s from %s: its key has not arrived yet; kept",
			 room_id, event_id, sender);
		return keep_pending(st, room_id, ev, sid, jstr(content, "sender_key")) == 0 ? 1 : -1;
	}
	if (strcmp(owner, sender) != 0) {
		why = "the session belongs to another sender";
		goto out;
	}
	s = cr_unpickle_in(c, pickle);
	text = s ? group_decrypt(s, ct, &idx, &cap, &why) : NULL;
	if (text == NULL)
		goto out; /* refused (why) or out of memory */
	r = check_replay(st, sid, idx, event_id, pruned_upto);
	if (r != 0) {
		why = r > 0 ? "replayed Megolm message index" : NULL;
		goto out;
	}
	pj = json_loads(text, 0, NULL);
	why = bad_plaintext(pj, room_id);
	if (why)
		goto out;
	*plain = plain_event(ev, content, pj);
	if (*plain == NULL)
		goto out;
	count(c, &c->decrypted);
	log_debug("encryption: room %s event %s from %s decrypted (%s)", room_id, event_id, sender,
		  jstr(pj, "type"));
	rc = 0;
out:
	if (why)
		rc = refuse(c, room_id, ev, why);
	if (text)
		explicit_bzero(text, cap);
	free(text);
	free(pickle);
	free(owner);
	json_decref(pj);
	cr_in_free(s);
	return rc;
}

/* Forget replay-table entries seen before before_ms (the table would grow
 * by one row per message for ever): each session remembers the highest
 * index pruned, and indexes up to it stay refused as replays (a Megolm
 * session's indexes only go up, so a genuine message that old is not
 * expected). Inside a transaction. Returns the rows removed, or -1. */
int
cr_megolm_prune_replay(struct tlbot_store *st, int64_t before_ms)
{
	sqlite3_stmt *q = cr_prep(st, "UPDATE crypto_megolm_in SET pruned_upto = MAX(pruned_upto,"
				      " (SELECT MAX(i.idx) FROM crypto_megolm_index i"
				      "  WHERE i.session_id = crypto_megolm_in.session_id"
				      "  AND i.seen_ms < ?1))"
				      " WHERE session_id IN (SELECT session_id FROM crypto_megolm_index"
				      "  WHERE seen_ms < ?1)");

	if (q)
		sqlite3_bind_int64(q, 1, before_ms);
	if (cr_done(st, q) != 0)
		return -1;
	q = cr_prep(st, "DELETE FROM crypto_megolm_index WHERE seen_ms < ?");
	if (q)
		sqlite3_bind_int64(q, 1, before_ms);
	if (cr_done(st, q) != 0)
		return -1;
	return sqlite3_changes(st->db);
}

/* Queue an m.room_key_request for the kept event ev_id: with body, the
 * request ("action": "request"); without, its cancellation. It goes to
 * every device of the sender (spec: requests go to all devices of the user
 * who used the session, not only the one named in the event) and to the
 * bot's own other devices; request_id is the event id, so a cancellation
 * names the request it cancels. The txnId derives from the event, so
 * queueing twice is a no-op. Inside a transaction. 0 or -1. */
static int
queue_key_request(struct tlbot_crypto *c, struct tlbot_store *st, const char *ev_id,
		  const char *sender, const json_t *body)
{
	json_t *req = body ? json_pack("{s:s, s:O, s:s, s:s}", "action", "request", "body", body,
				       "request_id", ev_id, "requesting_device_id", c->device_id)
			   : json_pack("{s:s, s:s, s:s}", "action", "request_cancellation",
				       "request_id", ev_id, "requesting_device_id", c->device_id);
	json_t *msgs = req ? json_object() : NULL;
	char txn[128], seed[2048];
	int r;

	if (msgs) {
		json_object_set_new(msgs, sender, json_pack("{s:O}", "*", req));
		if (strcmp(sender, c->user_id) != 0)
			json_object_set_new(msgs, c->user_id, json_pack("{s:O}", "*", req));
	}
	snprintf(seed, sizeof(seed), "%s.%s", body ? "keyreq" : "keycancel", ev_id);
	memcpy(txn, body ? "kr." : "kc.", 3);
	cr_hash_id(seed, txn + 3, sizeof(txn) - 3);
	r = msgs ? cr_todevice_queue(st, txn, "m.room_key_request", msgs) : -1;
	json_decref(req);
	json_decref(msgs);
	return r;
}

/* The kept events (all columns the callers need) of a query with one
 * integer parameter, as an array of objects: event_id, room_id,
 * session_id, sender, sender_key (may be absent), created, requested,
 * event (only when the query selects it). New reference or NULL. */
static json_t *
pending_rows(struct tlbot_store *st, const char *sql, int64_t param)
{
	sqlite3_stmt *q = cr_prep(st, sql);
	json_t *rows = json_array();

	if (q == NULL || rows == NULL) {
		sqlite3_finalize(q);
		json_decref(rows);
		return NULL;
	}
	if (param >= 0)
		sqlite3_bind_int64(q, 1, param);
	while (sqlite3_step(q) == SQLITE_ROW) {
		json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I, s:i}", "event_id",
					sqlite3_column_text(q, 0), "room_id",
					sqlite3_column_text(q, 1), "session_id",
					sqlite3_column_text(q, 2), "sender", sqlite3_column_text(q, 3),
					"sender_key", sqlite3_column_text(q, 4), "created",
					(json_int_t)sqlite3_column_int64(q, 5), "requested",
					sqlite3_column_int(q, 6));

		if (row && sqlite3_column_count(q) > 7)
			json_object_set_new(row, "event",
					    json_string((const char *)sqlite3_column_text(q, 7)));
		if (row == NULL || json_array_append_new(rows, row) != 0) {
			sqlite3_finalize(q);
			json_decref(rows);
			return NULL;
		}
	}
	sqlite3_finalize(q);
	return rows;
}

#define PENDING_COLS                                                                       \
	"p.event_id, p.room_id, p.session_id, p.sender, p.sender_key, p.created_ms,"        \
	" p.requested"

/* Remove the kept event ev_id; when the bot had asked for its key, cancel
 * that request (spec: a request that is no longer needed is cancelled
 * with action "request_cancellation"). 0 or -1. */
static int
forget_pending(struct tlbot_crypto *c, struct tlbot_store *st, const json_t *row)
{
	const char *ev_id = jstr(row, "event_id");
	sqlite3_stmt *d = cr_prep(st, "DELETE FROM crypto_pending WHERE event_id = ?");

	if (d)
		cr_bind(d, 1, ev_id);
	if (cr_done(st, d) != 0)
		return -1;
	if (!json_integer_value(json_object_get(row, "requested")))
		return 0;
	if (queue_key_request(c, st, ev_id, jstr(row, "sender"), NULL) != 0)
		return -1;
	log_debug("encryption: room %s event %s: key request cancelled", jstr(row, "room_id"),
		  ev_id);
	return 0;
}

json_t *
tlbot_crypto_take_ready(struct tlbot_crypto *c, struct tlbot_store *st)
{
	json_t *rows = pending_rows(st, "SELECT " PENDING_COLS ", p.event FROM crypto_pending p"
					" JOIN crypto_megolm_in m ON m.room_id = p.room_id"
					" AND m.session_id = p.session_id ORDER BY p.created_ms",
				    -1);
	json_t *out = json_array();
	size_t i;

	if (rows == NULL || out == NULL) {
		json_decref(rows);
		json_decref(out);
		return NULL;
	}
	for (i = 0; i < json_array_size(rows); i++) {
		const json_t *row = json_array_get(rows, i);
		json_t *ev = json_loads(jstr(row, "event"), 0, NULL), *plain = NULL;
		int r = ev ? tlbot_crypto_decrypt(c, st, jstr(row, "room_id"), ev, &plain) : 2;

		json_decref(ev);
		if (r < 0 || r == 1 || forget_pending(c, st, row) != 0) {
			json_decref(plain);
			json_decref(rows);
			json_decref(out);
			return NULL;
		}
		if (r == 0) {
			log_info("encryption: room %s event %s: its key arrived; handling it now",
				 jstr(row, "room_id"), jstr(row, "event_id"));
			json_array_append_new(out, json_pack("{s:s, s:o}", "room_id",
							     jstr(row, "room_id"), "event", plain));
		}
	}
	json_decref(rows);
	return out;
}

/* Set a flag column ("requested" or "notified") of the kept event. */
static int
mark_pending(struct tlbot_store *st, const char *ev_id, int notified)
{
	sqlite3_stmt *u = cr_prep(st, notified ? "UPDATE crypto_pending SET notified = 1"
						 " WHERE event_id = ?"
					       : "UPDATE crypto_pending SET requested = 1"
						 " WHERE event_id = ?");

	if (u)
		cr_bind(u, 1, ev_id);
	return cr_done(st, u);
}

/* Ask the sender's devices (and the bot's own) for the missing key. */
static int
request_key(struct tlbot_crypto *c, struct tlbot_store *st, const json_t *row)
{
	const char *ev_id = jstr(row, "event_id"), *room = jstr(row, "room_id");
	json_t *body = json_pack("{s:s, s:s, s:s, s:s?}", "algorithm", MEGOLM_ALGO, "room_id", room,
				 "session_id", jstr(row, "session_id"), "sender_key",
				 jstr(row, "sender_key"));
	int r = body ? queue_key_request(c, st, ev_id, jstr(row, "sender"), body) : -1;

	json_decref(body);
	if (r != 0 || mark_pending(st, ev_id, 0) != 0)
		return -1;
	log_info("encryption: room %s event %s: asked %s's devices for the missing key", room,
		 ev_id, jstr(row, "sender"));
	return 0;
}

/* Say in the room, once per sender and session however many of their
 * messages it hides, that a message could not be decrypted. */
static int
tell_room(struct tlbot_crypto *c, struct tlbot_store *st, const json_t *row)
{
	const char *ev_id = jstr(row, "event_id"), *room = jstr(row, "room_id");
	const char *sender = jstr(row, "sender"), *sid = jstr(row, "session_id");
	char txn[128], seed[2048], body[1024], *text;
	json_t *msg;
	int r;

	snprintf(body, sizeof(body),
		 "I could not decrypt a message from %s: my device (%s) never "
		 "received its key. Please send it again; if it keeps happening, "
		 "make sure your client shares keys with unverified devices or "
		 "verify my device.",
		 sender, c->device_id);
	msg = json_pack("{s:s, s:s, s:{s:[s]}}", "msgtype", "m.notice", "body", body, "m.mentions",
			"user_ids", sender);
	text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	snprintf(seed, sizeof(seed), "undecryptable.%s.%s.%s", room, sender, sid);
	memcpy(txn, "ud.", 3);
	cr_hash_id(seed, txn + 3, sizeof(txn) - 3);
	r = text ? tlbot_store_outbox_add(st, txn, "send", room, NULL, "m.room.message", text, NULL,
					  0)
		 : -1;
	free(text);
	if (r != 0 || mark_pending(st, ev_id, 1) != 0)
		return -1;
	log_warnx("encryption: room %s event %s from %s: still no key after %d s; told the room",
		  room, ev_id, sender, GIVE_UP_AFTER_MS / 1000);
	return 0;
}

/* A key that never came after a week will not come: forget the events
 * (the room was told), cancelling their requests. 0 or -1. */
static int
forget_hopeless(struct tlbot_crypto *c, struct tlbot_store *st, int64_t now)
{
	json_t *rows = pending_rows(st, "SELECT " PENDING_COLS " FROM crypto_pending p"
					" WHERE p.notified = 1 AND p.created_ms < ?",
				    now - PENDING_KEEP_MS);
	size_t i;

	if (rows == NULL)
		return -1;
	for (i = 0; i < json_array_size(rows); i++)
		if (forget_pending(c, st, json_array_get(rows, i)) != 0) {
			json_decref(rows);
			return -1;
		}
	json_decref(rows);
	return 0;
}

int
cr_megolm_follow_up_due(struct tlbot_store *st)
{
	int64_t now = cr_now_ms();
	sqlite3_stmt *q = cr_prep(st, "SELECT 1 FROM crypto_pending WHERE"
				      " (requested = 0 AND created_ms < ?)"
				      " OR (notified = 0 AND created_ms < ?)"
				      " OR (notified = 1 AND created_ms < ?) LIMIT 1");
	int r;

	if (q == NULL)
		return -1;
	sqlite3_bind_int64(q, 1, now - KEY_REQUEST_AFTER_MS);
	sqlite3_bind_int64(q, 2, now - GIVE_UP_AFTER_MS);
	sqlite3_bind_int64(q, 3, now - PENDING_KEEP_MS);
	r = sqlite3_step(q);
	sqlite3_finalize(q);
	return r == SQLITE_ROW ? 1 : r == SQLITE_DONE ? 0 : -1;
}

int
cr_megolm_follow_up(struct tlbot_crypto *c, struct tlbot_store *st)
{
	int64_t now = cr_now_ms();
	json_t *rows;
	size_t i;

	if (forget_hopeless(c, st, now) != 0)
		return -1;
	rows = pending_rows(st, "SELECT " PENDING_COLS " FROM crypto_pending p"
				" WHERE p.notified = 0 AND p.created_ms < ?",
			    now - KEY_REQUEST_AFTER_MS);
	if (rows == NULL)
		return -1;
	for (i = 0; i < json_array_size(rows); i++) {
		const json_t *row = json_array_get(rows, i);

		if ((!json_integer_value(json_object_get(row, "requested")) &&
		     request_key(c, st, row) != 0) ||
		    (json_integer_value(json_object_get(row, "created")) < now - GIVE_UP_AFTER_MS &&
		     tell_room(c, st, row) != 0)) {
			json_decref(rows);
			return -1;
		}
	}
	json_decref(rows);
	return 0;
}

/* ------------------------------------------------------------ outbound */

/* The rotation settings of the room's m.room.encryption. */
static void
rotation(struct tlbot_store *st, const char *room_id, int64_t *ms, int64_t *msgs)
{
	char *text = NULL;
	json_t *j;

	*ms = DEFAULT_ROTATION_MS;
	*msgs = DEFAULT_ROTATION_MSGS;
	if (tlbot_store_state_get(st, room_id, "m.room.encryption", "", &text) != 0)
		return;
	j = json_loads(text, 0, NULL);
	free(text);
	if (json_integer_value(json_object_get(j, "rotation_period_ms")) > 0)
		*ms = json_integer_value(json_object_get(j, "rotation_period_ms"));
	if (json_integer_value(json_object_get(j, "rotation_period_msgs")) > 0)
		*msgs = json_integer_value(json_object_get(j, "rotation_period_msgs"));
	json_decref(j);
}

/* The devices to share with: {"user": {"device": [curve, ed]}} of the
 * members (the bot's own device left out). New reference or NULL. */
static json_t *
recipients(struct tlbot_crypto *c, struct tlbot_store *st, const json_t *members)
{
	json_t *out = json_object();
	size_t i;

	for (i = 0; out && i < json_array_size(members); i++) {
		const char *u = json_string_value(json_array_get(members, i));
		sqlite3_stmt *q = cr_prep(st, "SELECT device_id, curve25519, ed25519 FROM crypto_devices"
					      " WHERE user_id = ?");
		json_t *devs = json_object();

		if (q == NULL || devs == NULL) {
			sqlite3_finalize(q);
			json_decref(devs);
			json_decref(out);
			return NULL;
		}
		cr_bind(q, 1, u);
		while (sqlite3_step(q) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(q, 0);

			if (strcmp(u, c->user_id) == 0 && strcmp(d, c->device_id) == 0)
				continue;
			json_object_set_new(devs, d,
					    json_pack("[s,s]", sqlite3_column_text(q, 1),
						      sqlite3_column_text(q, 2)));
		}
		sqlite3_finalize(q);
		json_object_set_new(out, u, devs);
	}
	return out;
}

/* Why session sid (created at created_ms, msgs messages sent) must be
 * rotated before the next message to the recipients rcpt, or NULL. *db
 * set on a database error. */
static const char *
rotation_reason(struct tlbot_store *st, const char *room_id, const char *sid,
		int64_t created_ms, int64_t msgs, const json_t *rcpt, int *db)
{
	int64_t rot_ms, rot_msgs;
	sqlite3_stmt *q;
	const char *why = NULL;

	*db = 0;
	rotation(st, room_id, &rot_ms, &rot_msgs);
	if (msgs >= rot_msgs)
		return "message count";
	if (cr_now_ms() - created_ms >= rot_ms)
		return "age";
	q = cr_prep(st, "SELECT user_id, device_id FROM crypto_megolm_shared WHERE session_id = ?");
	if (q == NULL) {
		*db = 1;
		return NULL;
	}
	cr_bind(q, 1, sid);
	while (why == NULL && sqlite3_step(q) == SQLITE_ROW) {
		const char *u = (const char *)sqlite3_column_text(q, 0);
		const char *d = (const char *)sqlite3_column_text(q, 1);

		if (json_object_get(json_object_get(rcpt, u), d) == NULL)
			why = "a member left or removed a device";
	}
	sqlite3_finalize(q);
	return why;
}

/* Keep an inbound copy (from index 0) of the bot's new outbound session
 * sid of room_id, so that it can be forwarded on request after rotation
 * (crypto_megolm_own; never used to decrypt). Inside a transaction. 0/-1. */
static int
keep_own(struct tlbot_crypto *c, struct tlbot_store *st, const char *room_id, const char *sid,
	 OlmOutboundGroupSession *out)
{
	OlmInboundGroupSession *in = malloc(olm_inbound_group_session_size());
	char key[512], *pickle = NULL;
	size_t n = olm_outbound_group_session_key(out, (uint8_t *)key, sizeof(key) - 1);
	sqlite3_stmt *q = NULL;

	if (in != NULL)
		olm_inbound_group_session(in);
	if (in != NULL && n != olm_error() &&
	    olm_init_inbound_group_session(in, (const uint8_t *)key, n) != olm_error())
		pickle = cr_pickle_in(c, in);
	explicit_bzero(key, sizeof(key));
	cr_in_free(in);
	if (pickle)
		q = cr_prep(st, "INSERT OR REPLACE INTO crypto_megolm_own(session_id, room_id, pickle)"
				" VALUES (?, ?, ?)");
	if (q) {
		cr_bind(q, 1, sid);
		cr_bind(q, 2, room_id);
		cr_bind(q, 3, pickle);
	}
	free(pickle);
	return cr_done(st, q);
}

/* A new outbound session for room_id, stored (replacing the old one);
 * its id in sid. Inside a transaction. New, or NULL. */
static OlmOutboundGroupSession *
create_outbound(struct tlbot_crypto *c, struct tlbot_store *st, const char *room_id, char *sid,
		size_t sidlen)
{
	OlmOutboundGroupSession *s = malloc(olm_outbound_group_session_size());
	sqlite3_stmt *q;
	size_t rl, n;
	void *rnd;
	char *pickle;

	if (s == NULL)
		return NULL;
	olm_outbound_group_session(s);
	rl = olm_init_outbound_group_session_random_length(s);
	rnd = malloc(rl);
	if (rnd == NULL || cr_random(rnd, rl) != 0 ||
	    olm_init_outbound_group_session(s, rnd, rl) == olm_error()) {
		free(rnd);
		cr_out_free(s);
		return NULL;
	}
	explicit_bzero(rnd, rl);
	free(rnd);
	n = olm_outbound_group_session_id(s, (uint8_t *)sid, sidlen - 1);
	if (n == olm_error()) {
		cr_out_free(s);
		return NULL;
	}
	sid[n] = '\0';
	pickle = cr_pickle_out(c, s);
	q = pickle ? cr_prep(st, "INSERT OR REPLACE INTO crypto_megolm_out(room_id, session_id,"
				 " pickle, created_ms, msg_count) VALUES (?, ?, ?, ?, 0)")
		   : NULL;
	if (q) {
		cr_bind(q, 1, room_id);
		cr_bind(q, 2, sid);
		cr_bind(q, 3, pickle);
		sqlite3_bind_int64(q, 4, cr_now_ms());
	}
	free(pickle);
	if (cr_done(st, q) != 0 || keep_own(c, st, room_id, sid, s) != 0) {
		cr_out_free(s);
		return NULL;
	}
	return s;
}

/* Load the room's outbound session, rotating it when it is too old, has
 * sent too many messages, or was shared with a device that is no longer a
 * recipient (a member left, a device was removed). Inside a transaction.
 * Returns the session (new) and its id in sid, or NULL. */
static OlmOutboundGroupSession *
outbound_session(struct tlbot_crypto *c, struct tlbot_store *st, const char *room_id,
		 const json_t *rcpt, char *sid, size_t sidlen, int *created)
{
	sqlite3_stmt *q = cr_prep(st, "SELECT session_id, pickle, created_ms, msg_count"
				      " FROM crypto_megolm_out WHERE room_id = ?");
	OlmOutboundGroupSession *s = NULL;
	int64_t created_ms = 0, msgs = 0;
	const char *why;
	int db;

	*created = 0;
	if (q == NULL)
		return NULL;
	cr_bind(q, 1, room_id);
	if (sqlite3_step(q) == SQLITE_ROW) {
		snprintf(sid, sidlen, "%s", (const char *)sqlite3_column_text(q, 0));
		s = cr_unpickle_out(c, (const char *)sqlite3_column_text(q, 1));
		created_ms = sqlite3_column_int64(q, 2);
		msgs = sqlite3_column_int64(q, 3);
	}
	sqlite3_finalize(q);
	if (s) {
		why = rotation_reason(st, room_id, sid, created_ms, msgs, rcpt, &db);
		if (db) {
			cr_out_free(s);
			return NULL;
		}
		if (why == NULL)
			return s;
		log_info("encryption: room %s: rotating the outbound session (%s)", room_id, why);
		cr_out_free(s);
	}
	s = create_outbound(c, st, room_id, sid, sidlen);
	*created = s != NULL;
	return s;
}

static int
save_outbound(struct tlbot_crypto *c, struct tlbot_store *st, const char *room_id,
	      OlmOutboundGroupSession *s, int add_msgs)
{
	char *pickle = cr_pickle_out(c, s);
	sqlite3_stmt *q = pickle ? cr_prep(st, "UPDATE crypto_megolm_out SET pickle = ?,"
					       " msg_count = msg_count + ? WHERE room_id = ?")
				 : NULL;

	if (q) {
		cr_bind(q, 1, pickle);
		sqlite3_bind_int(q, 2, add_msgs);
		cr_bind(q, 3, room_id);
	}
	free(pickle);
	return cr_done(st, q);
}

/* Devices of rcpt that have not got session sid yet: {"u": {"d": [c,e]}}. */
static json_t *
unshared(struct tlbot_store *st, const json_t *rcpt, const char *sid)
{
	json_t *out = json_object(), *devs, *keys;
	const char *u, *d;

	json_object_foreach((json_t *)rcpt, u, devs) {
		json_object_foreach(devs, d, keys) {
			char *have = NULL;
			sqlite3_stmt *q = cr_prep(st, "SELECT 1 FROM crypto_megolm_shared WHERE"
						      " session_id = ? AND user_id = ? AND device_id = ?");
			int r;

			if (q == NULL) {
				json_decref(out);
				return NULL;
			}
			cr_bind(q, 1, sid);
			cr_bind(q, 2, u);
			cr_bind(q, 3, d);
			r = sqlite3_step(q);
			sqlite3_finalize(q);
			free(have);
			if (r == SQLITE_DONE) {
				json_t *ud = json_object_get(out, u);

				if (ud == NULL) {
					ud = json_object();
					json_object_set_new(out, u, ud);
				}
				json_object_set(ud, d, keys);
			}
		}
	}
	return out;
}

/* POST /keys/claim for the devices of need that have no Olm session yet:
 * returns {"u": {"d": otk}} with each key's signature checked, or NULL
 * on failure. Outside a transaction. */
static json_t *
claim_keys(struct tlbot_store *st, struct tlbot_http *h, const json_t *need)
{
	json_t *body = json_pack("{s:{}}", "one_time_keys"), *want, *devs, *keys, *out;
	const char *u, *d;
	struct tlbot_http_resp r;
	char *text;

	if (body == NULL)
		return NULL;
	want = json_object_get(body, "one_time_keys");
	json_object_foreach((json_t *)need, u, devs) {
		json_object_foreach(devs, d, keys) {
			int have = cr_olm_have_session(st, json_string_value(json_array_get(keys, 0)));

			if (have < 0) {
				json_decref(body);
				return NULL;
			}
			if (have)
				continue;
			if (json_object_get(want, u) == NULL)
				json_object_set_new(want, u, json_object());
			json_object_set_new(json_object_get(want, u), d,
					    json_string("signed_curve25519"));
		}
	}
	out = json_object();
	if (json_object_size(want) == 0 || out == NULL) {
		json_decref(body);
		return out;
	}
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL) {
		json_decref(out);
		return NULL;
	}
	tlbot_http_resp_init(&r);
	if (tlbot_http_request(h, "POST", "/_matrix/client/v3/keys/claim", text, strlen(text), NULL,
			       15000, &r) != TLBOT_OK) {
		log_warnx("encryption: /keys/claim failed: %s %s (HTTP %ld)", r.errcode, r.error,
			  r.status);
		free(text);
		tlbot_http_resp_release(&r);
		json_decref(out);
		return NULL;
	}
	free(text);
	json_object_foreach(json_object_get(r.json, "one_time_keys"), u, devs) {
		json_object_foreach(devs, d, keys) {
			const char *kid;
			json_t *k;
			const char *ed = json_string_value(
				json_array_get(json_object_get(json_object_get(need, u), d), 1));
			char sk[300];

			snprintf(sk, sizeof(sk), "ed25519:%s", d);
			json_object_foreach(keys, kid, k) {
				if (strncmp(kid, "signed_curve25519:", 18) != 0)
					continue;
				if (!cr_verify_json(k, u, sk, ed)) {
					log_warnx("encryption: the one-time key of %s device %s is not "
						  "signed by the device; skipped",
						  u, d);
					continue;
				}
				if (json_object_get(out, u) == NULL)
					json_object_set_new(out, u, json_object());
				json_object_set(json_object_get(out, u), d, json_object_get(k, "key"));
				break;
			}
		}
	}
	tlbot_http_resp_release(&r);
	return out;
}

/* The stored outbound session sid of room_id (new), or NULL when it is
 * gone (rotated in between) or on error. */
static OlmOutboundGroupSession *
load_outbound(struct tlbot_crypto *c, struct tlbot_store *st, const char *room_id,
	      const char *sid)
{
	OlmOutboundGroupSession *s = NULL;
	char *pickle = NULL;

	if (cr_get1(st, &pickle, "SELECT pickle FROM crypto_megolm_out WHERE room_id = ?"
				 " AND session_id = ?",
		    room_id, sid, NULL) == 0)
		s = cr_unpickle_out(c, pickle);
	free(pickle);
	return s;
}

/* Queue part number part of the m.room_key messages of session sid
 * (txnId from the session, the cause and the part). 0 or -1. */
static int
queue_room_keys(struct tlbot_store *st, const json_t *msgs, const char *sid, const char *cause,
		int part)
{
	char txn[128], seed[2048];

	snprintf(seed, sizeof(seed), "roomkey.%s.%s.%d", sid, cause, part);
	memcpy(txn, "rk.", 3);
	cr_hash_id(seed, txn + 3, sizeof(txn) - 3);
	return cr_todevice_queue(st, txn, "m.room.encrypted", msgs);
}

/* The m.room_key of session sid (key: its session key) Olm-encrypted for
 * user u's device d (keys: [curve, ed]; otk a claimed one-time key or
 * NULL), and the share recorded. Returns the encrypted content (new), or
 * NULL with *db clear when the device cannot get it now (logged), or NULL
 * with *db set on a database error. */
static json_t *
room_key_for(struct tlbot_crypto *c, struct tlbot_store *st, OlmAccount *a, const char *u,
	     const char *d, const json_t *keys, const char *otk, const char *room_id,
	     const char *sid, const char *key, uint32_t idx, int *db)
{
	json_t *payload = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "type", "m.room_key",
				    "content", "algorithm", MEGOLM_ALGO, "room_id", room_id,
				    "session_id", sid, "session_key", key);
	json_t *enc = payload ? cr_olm_encrypt(c, st, a, u, d,
					       json_string_value(json_array_get(keys, 0)),
					       json_string_value(json_array_get(keys, 1)), otk,
					       payload)
			      : NULL;
	sqlite3_stmt *q;

	json_decref(payload);
	*db = 0;
	if (enc == NULL) {
		/* no session and no one-time key: the device cannot get the key
		 * now; it is tried again with the next message */
		log_warnx("encryption: room %s: cannot share the room key with %s device %s "
			  "(no one-time key)",
			  room_id, u, d);
		return NULL;
	}
	q = cr_prep(st, "INSERT OR IGNORE INTO crypto_megolm_shared(session_id, user_id, device_id,"
			" first_index) VALUES (?, ?, ?, ?)");
	if (q) {
		cr_bind(q, 1, sid);
		cr_bind(q, 2, u);
		cr_bind(q, 3, d);
		sqlite3_bind_int64(q, 4, (sqlite3_int64)idx);
	}
	if (cr_done(st, q) != 0) {
		json_decref(enc);
		*db = 1;
		return NULL;
	}
	return enc;
}

/* Inside share_session's transaction: encrypt the room key for every
 * device of need and queue the messages, TODEVICE_BATCH devices per
 * request. Returns the number of devices, or -1. */
static int
queue_shares(struct tlbot_crypto *c, struct tlbot_store *st, OlmAccount *a, const json_t *need,
	     const json_t *otks, const char *room_id, const char *sid, const char *key,
	     uint32_t idx, const char *cause)
{
	json_t *msgs = json_object(), *devs, *keys;
	const char *u, *d;
	int ndev = 0, part = 0, total = 0, db;

	if (msgs == NULL)
		return -1;
	json_object_foreach((json_t *)need, u, devs) {
		json_object_foreach(devs, d, keys) {
			const char *otk = json_string_value(json_object_get(json_object_get(otks, u), d));
			json_t *enc = room_key_for(c, st, a, u, d, keys, otk, room_id, sid, key, idx,
						   &db);

			if (db)
				goto fail;
			if (enc == NULL)
				continue;
			if (json_object_get(msgs, u) == NULL)
				json_object_set_new(msgs, u, json_object());
			json_object_set_new(json_object_get(msgs, u), d, enc);
			total++;
			if (++ndev >= TODEVICE_BATCH) {
				if (queue_room_keys(st, msgs, sid, cause, part++) != 0)
					goto fail;
				json_object_clear(msgs);
				ndev = 0;
			}
		}
	}
	if (ndev > 0 && queue_room_keys(st, msgs, sid, cause, part++) != 0)
		goto fail;
	json_decref(msgs);
	return total;
fail:
	json_decref(msgs);
	return -1;
}

/* Share session sid of room_id with the devices in need: Olm-encrypt
 * m.room_key for each, queue the to-device messages and record the shares
 * in ONE transaction, then send them. 0 or -1. */
static int
share_session(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
	      const char *room_id, const char *sid, const json_t *need, const char *cause)
{
	json_t *otks = claim_keys(st, h, need);
	OlmAccount *a = NULL;
	OlmOutboundGroupSession *s = NULL;
	char key[512];
	int total = -1;
	size_t n;

	if (otks == NULL)
		return -1;
	if (tlbot_store_begin(st) != 0) {
		json_decref(otks);
		return -1;
	}
	a = cr_account_load(c, st);
	s = load_outbound(c, st, room_id, sid);
	n = a && s ? olm_outbound_group_session_key(s, (uint8_t *)key, sizeof(key) - 1)
		   : olm_error();
	if (n != olm_error()) {
		key[n] = '\0';
		total = queue_shares(c, st, a, need, otks, room_id, sid, key,
				     olm_outbound_group_session_message_index(s), cause);
	}
	explicit_bzero(key, sizeof(key));
	json_decref(otks);
	cr_account_free(a);
	cr_out_free(s);
	if (total < 0 || tlbot_store_commit(st) != 0) {
		tlbot_store_rollback(st);
		return -1;
	}
	if (cr_todevice_flush(st, h) != 0)
		return -1;
	log_info("encryption: room %s: room key shared with %d device%s", room_id, total,
		 total == 1 ? "" : "s");
	return 0;
}

/* Before a message to row's room: the current outbound session (rotated
 * as needed; its id in sid) shared with every device of the members, and
 * the queued room keys sent. Blocking, outside a transaction. 0 or -1. */
static int
share_first(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
	    const struct tlbot_outbox_row *row, char *sid, size_t sidlen)
{
	json_t *members = cr_room_members(c, st, h, row->room_id), *rcpt = NULL, *need = NULL;
	OlmOutboundGroupSession *s = NULL;
	int created, rc = -1;

	if (members == NULL || cr_devices_refresh(c, st, h, members) != 0)
		goto out;
	rcpt = recipients(c, st, members);
	if (rcpt == NULL || tlbot_store_begin(st) != 0)
		goto out;
	s = outbound_session(c, st, row->room_id, rcpt, sid, sidlen, &created);
	need = s ? unshared(st, rcpt, sid) : NULL;
	if (need == NULL || tlbot_store_commit(st) != 0) {
		tlbot_store_rollback(st);
		goto out;
	}
	if (json_object_size(need) > 0 &&
	    share_session(c, st, h, row->room_id, sid, need, row->txn_id) != 0)
		goto out;
	/* keys queued by an earlier attempt go out before the message */
	rc = cr_todevice_flush(st, h);
out:
	cr_out_free(s);
	json_decref(need);
	json_decref(rcpt);
	json_decref(members);
	return rc;
}

/* The m.room.encrypted content (new string) of plaintext ptext encrypted
 * with s (session sid), with the relation of content in the clear. */
static char *
megolm_content(struct tlbot_crypto *c, OlmOutboundGroupSession *s, const char *sid,
	       const char *ptext, const json_t *content)
{
	size_t n = olm_group_encrypt_message_length(s, strlen(ptext));
	char *ct = malloc(n + 1), *etext = NULL;
	json_t *enc = NULL;

	if (ct == NULL ||
	    olm_group_encrypt(s, (uint8_t *)ptext, strlen(ptext), (uint8_t *)ct, n) == olm_error()) {
		free(ct);
		return NULL;
	}
	ct[n] = '\0';
	enc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "algorithm", MEGOLM_ALGO, "sender_key",
			c->curve25519, "ciphertext", ct, "session_id", sid, "device_id",
			c->device_id);
	if (enc && json_object_get(content, "m.relates_to"))
		json_object_set(enc, "m.relates_to", json_object_get(content, "m.relates_to"));
	etext = enc ? json_dumps(enc, JSON_COMPACT) : NULL;
	json_decref(enc);
	free(ct);
	return etext;
}

/* Encrypt row's content with session sid and persist the ciphertext in the
 * row together with the advanced session, in one transaction. Returns the
 * encrypted content (new string), or NULL. */
static char *
encrypt_row(struct tlbot_crypto *c, struct tlbot_store *st, const struct tlbot_outbox_row *row,
	    const char *sid)
{
	json_t *content = json_loads(row->content ? row->content : "{}", 0, NULL), *plain;
	OlmOutboundGroupSession *s = NULL;
	char *ptext, *etext = NULL;
	sqlite3_stmt *q;

	plain = content ? json_pack("{s:s, s:O, s:s}", "type",
				    row->event_type ? row->event_type : "m.room.message", "content",
				    content, "room_id", row->room_id)
			: NULL;
	ptext = plain ? json_dumps(plain, JSON_COMPACT) : NULL;
	json_decref(plain);
	if (ptext == NULL || tlbot_store_begin(st) != 0)
		goto out;
	s = load_outbound(c, st, row->room_id, sid); /* NULL: rotated meanwhile, try again */
	etext = s ? megolm_content(c, s, sid, ptext, content) : NULL;
	q = etext ? cr_prep(st, "UPDATE outbox SET event_type = 'm.room.encrypted', content = ?"
				" WHERE id = ?")
		  : NULL;
	if (q) {
		cr_bind(q, 1, etext);
		sqlite3_bind_int64(q, 2, row->id);
	}
	if (cr_done(st, q) != 0 || save_outbound(c, st, row->room_id, s, 1) != 0 ||
	    tlbot_store_commit(st) != 0) {
		tlbot_store_rollback(st);
		free(etext);
		etext = NULL;
	}
out:
	if (ptext)
		explicit_bzero(ptext, strlen(ptext));
	free(ptext);
	json_decref(content);
	cr_out_free(s);
	return etext;
}

int
tlbot_crypto_prepare_send(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
			  struct tlbot_outbox_row *row)
{
	char sid[128], *etext = NULL;
	int rc = -1;

	if (c == NULL || row->kind == NULL || strcmp(row->kind, "send") != 0 ||
	    row->room_id == NULL)
		return 0;
	if (row->event_type && strcmp(row->event_type, "m.room.encrypted") == 0)
		return 0; /* encrypted before a crash or a failed send: same ciphertext */
	if (!tlbot_crypto_room_encrypted(st, row->room_id))
		return 0;
	if (share_first(c, st, h, row, sid, sizeof(sid)) == 0)
		etext = encrypt_row(c, st, row, sid);
	if (etext) {
		free(row->event_type);
		free(row->content);
		row->event_type = strdup("m.room.encrypted");
		row->content = etext;
		if (row->event_type != NULL) {
			count(c, &c->encrypted);
			rc = 0;
		}
	}
	if (rc != 0)
		log_warnx("encryption: outbox %s to %s: not ready to send encrypted yet; retrying",
			  row->txn_id, row->room_id);
	return rc;
}

/* ------------------------------------------- answering key requests */

int
cr_megolm_key_request(struct tlbot_crypto *c, struct tlbot_store *st, const json_t *ev)
{
	const char *sender = jstr(ev, "sender");
	const json_t *content = json_object_get(ev, "content");
	const json_t *body = json_object_get(content, "body");
	const char *action = jstr(content, "action"), *dev = jstr(content, "requesting_device_id");
	const char *rid = jstr(content, "request_id"), *room = jstr(body, "room_id");
	const char *sid = jstr(body, "session_id"), *algo = jstr(body, "algorithm");
	sqlite3_stmt *q;
	char *own = NULL;
	int r;

	if (sender == NULL || action == NULL || dev == NULL || rid == NULL ||
	    strcmp(sender, c->user_id) == 0)
		return 0;
	if (strcmp(action, "request_cancellation") == 0) {
		/* drop the answer if it is still queued */
		q = cr_prep(st, "DELETE FROM crypto_key_requests WHERE user_id = ? AND device_id = ?"
				" AND request_id = ?");
		if (q) {
			cr_bind(q, 1, sender);
			cr_bind(q, 2, dev);
			cr_bind(q, 3, rid);
		}
		return cr_done(st, q);
	}
	if (strcmp(action, "request") != 0 || algo == NULL || strcmp(algo, MEGOLM_ALGO) != 0 ||
	    room == NULL || sid == NULL)
		return 0;
	/* only the bot's own sessions are ever answered: queue nothing else */
	r = cr_get1(st, &own, "SELECT room_id FROM crypto_megolm_own WHERE session_id = ?"
			      " AND room_id = ?",
		    sid, room, NULL);
	free(own);
	if (r != 0)
		return r < 0 ? -1 : 0;
	q = cr_prep(st, "INSERT OR IGNORE INTO crypto_key_requests(user_id, device_id, request_id,"
			" room_id, session_id, created_ms) VALUES (?, ?, ?, ?, ?, ?)");
	if (q) {
		cr_bind(q, 1, sender);
		cr_bind(q, 2, dev);
		cr_bind(q, 3, rid);
		cr_bind(q, 4, room);
		cr_bind(q, 5, sid);
		sqlite3_bind_int64(q, 6, cr_now_ms());
	}
	return cr_done(st, q);
}

struct key_req {
	char *user, *device, *rid, *room, *sid;
	char *curve, *ed;       /* the requesting device's keys */
	int64_t idx;            /* forward from this index */
};

static void
key_req_release(struct key_req *k)
{
	free(k->user);
	free(k->device);
	free(k->rid);
	free(k->room);
	free(k->sid);
	free(k->curve);
	free(k->ed);
	memset(k, 0, sizeof(*k));
}

/* 1 if user is joined to room now (the room state the bot keeps). */
static int
is_joined(struct tlbot_store *st, const char *room, const char *user)
{
	char *content = NULL;
	json_t *m;
	int r = 0;

	if (tlbot_store_state_get(st, room, "m.room.member", user, &content) != 0)
		return 0;
	m = json_loads(content, 0, NULL);
	free(content);
	r = jstr(m, "membership") && strcmp(jstr(m, "membership"), "join") == 0;
	json_decref(m);
	return r;
}

/* The requesting device's keys (as /keys/query gave them, self-signature
 * checked by devices.c) into k: 0, 1 unknown, -1 db error. */
static int
device_keys(struct tlbot_store *st, struct key_req *k)
{
	sqlite3_stmt *q = cr_prep(st, "SELECT curve25519, ed25519 FROM crypto_devices"
				      " WHERE user_id = ? AND device_id = ?");
	int r = 1;

	if (q == NULL)
		return -1;
	cr_bind(q, 1, k->user);
	cr_bind(q, 2, k->device);
	if (sqlite3_step(q) == SQLITE_ROW) {
		k->curve = cr_col(q, 0);
		k->ed = cr_col(q, 1);
		r = k->curve && k->ed ? 0 : -1;
	}
	sqlite3_finalize(q);
	return r;
}

/* The index to forward from: the one the device was given, else the
 * lowest any device of the user was given. 0 (k->idx), 1 never shared
 * with this user, -1 db error. */
static int
share_index(struct tlbot_store *st, struct key_req *k)
{
	static const char *const sql[2] = {
		"SELECT first_index FROM crypto_megolm_shared WHERE session_id = ? AND user_id = ?"
		" AND device_id = ? AND first_index IS NOT NULL",
		"SELECT MIN(first_index) FROM crypto_megolm_shared WHERE session_id = ?"
		" AND user_id = ? AND ? IS NOT NULL AND first_index IS NOT NULL",
	};
	int i, r = 1;

	for (i = 0; i < 2 && r == 1; i++) {
		sqlite3_stmt *q = cr_prep(st, sql[i]);

		if (q == NULL)
			return -1;
		cr_bind(q, 1, k->sid);
		cr_bind(q, 2, k->user);
		cr_bind(q, 3, k->device);
		if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
			k->idx = sqlite3_column_int64(q, 0);
			r = 0;
		}
		sqlite3_finalize(q);
	}
	return r;
}

/* Why the request k may not be answered (the policy in README's
 * encryption section), or NULL; *db set on a database error. A device
 * the bot does not know yet is looked up first (h; outside a tx). */
static const char *
request_refused(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
		struct key_req *k, int *db)
{
	char *own = NULL;
	int r;

	*db = 0;
	r = cr_get1(st, &own, "SELECT room_id FROM crypto_megolm_own WHERE session_id = ?"
			      " AND room_id = ?",
		    k->sid, k->room, NULL);
	free(own);
	if (r != 0) {
		*db = r < 0;
		return "not a session the bot made for that room";
	}
	if (!is_joined(st, k->room, k->user))
		return "the user is not joined to the room";
	r = share_index(st, k);
	if (r != 0) {
		*db = r < 0;
		return "the session was never shared with that user";
	}
	r = device_keys(st, k);
	if (r == 1 && h != NULL) {
		json_t *u = json_pack("[s]", k->user);
		sqlite3_stmt *q = cr_prep(st, "UPDATE crypto_users SET stale = stale + 1"
					      " WHERE user_id = ?");

		if (q)
			cr_bind(q, 1, k->user);
		if (u != NULL && cr_done(st, q) == 0)
			cr_devices_refresh(c, st, h, u);
		json_decref(u);
		r = device_keys(st, k);
	}
	if (r != 0) {
		*db = r < 0;
		return "the device is unknown (or its keys are not self-signed)";
	}
	return NULL;
}

/* The m.forwarded_room_key of k's session from k->idx, Olm-encrypted for
 * k's device (otk: a claimed one-time key or NULL). New, or NULL. */
static json_t *
forwarded_key_for(struct tlbot_crypto *c, struct tlbot_store *st, OlmAccount *a,
		  const struct key_req *k, const char *otk)
{
	char *pickle = NULL, key[1024];
	OlmInboundGroupSession *in = NULL;
	json_t *payload = NULL, *enc = NULL;
	size_t n = olm_error();

	if (cr_get1(st, &pickle, "SELECT pickle FROM crypto_megolm_own WHERE session_id = ?",
		    k->sid, NULL, NULL) == 0)
		in = cr_unpickle_in(c, pickle);
	free(pickle);
	if (in != NULL && k->idx >= 0 && k->idx <= UINT32_MAX)
		n = olm_export_inbound_group_session(in, (uint8_t *)key, sizeof(key) - 1,
						     (uint32_t)k->idx);
	cr_in_free(in);
	if (n == olm_error())
		return NULL;
	key[n] = '\0';
	payload = json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s, s:[]}}", "type",
			    "m.forwarded_room_key", "content", "algorithm", MEGOLM_ALGO, "room_id",
			    k->room, "session_id", k->sid, "session_key", key, "sender_key",
			    c->curve25519, "sender_claimed_ed25519_key", c->ed25519,
			    "forwarding_curve25519_key_chain");
	explicit_bzero(key, sizeof(key));
	if (payload)
		enc = cr_olm_encrypt(c, st, a, k->user, k->device, k->curve, k->ed, otk, payload);
	if (payload) {
		/* the export is in the payload: wipe it before it is freed */
		json_t *ct = json_object_get(payload, "content");
		const char *sk = jstr(ct, "session_key");

		if (sk)
			explicit_bzero((char *)sk, strlen(sk));
	}
	json_decref(payload);
	return enc;
}

/* Drop request k (answered, refused or cancelled). 1 if it was still
 * there, 0 if it was gone (cancelled meanwhile), -1. */
static int
drop_request(struct tlbot_store *st, const struct key_req *k)
{
	sqlite3_stmt *q = cr_prep(st, "DELETE FROM crypto_key_requests WHERE user_id = ?"
				      " AND device_id = ? AND request_id = ?");

	if (q == NULL)
		return -1;
	cr_bind(q, 1, k->user);
	cr_bind(q, 2, k->device);
	cr_bind(q, 3, k->rid);
	if (sqlite3_step(q) != SQLITE_DONE) {
		sqlite3_finalize(q);
		return -1;
	}
	sqlite3_finalize(q);
	return sqlite3_changes(st->db) > 0;
}

/* Queue the answer to k (a one-time key claimed first when there is no
 * Olm session) and drop the request, in one transaction. 0 or -1. */
static int
answer_request(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
	       const struct key_req *k)
{
	json_t *need = NULL, *otks = NULL, *enc = NULL, *msgs = NULL;
	OlmAccount *a = NULL;
	char txn[128], seed[2048];
	int have = cr_olm_have_session(st, k->curve), r = -1, gone;

	if (have < 0)
		return -1;
	if (!have) {
		need = json_pack("{s:{s:[s,s]}}", k->user, k->device, k->curve, k->ed);
		otks = need ? claim_keys(st, h, need) : NULL;
		json_decref(need);
		if (otks == NULL)
			return -1;
	}
	if (tlbot_store_begin(st) != 0) {
		json_decref(otks);
		return -1;
	}
	gone = drop_request(st, k);
	if (gone == 0) {
		r = 0; /* cancelled while the one-time key was claimed */
		goto out;
	}
	a = gone > 0 ? cr_account_load(c, st) : NULL;
	enc = a ? forwarded_key_for(c, st, a, k,
				    json_string_value(json_object_get(json_object_get(otks, k->user),
								      k->device)))
		: NULL;
	if (enc == NULL) {
		log_warnx("encryption: room %s: cannot forward the room key to %s device %s "
			  "(no Olm session, no one-time key)",
			  k->room, k->user, k->device);
		r = gone > 0 ? 0 : -1; /* the request is dropped all the same */
		goto out;
	}
	msgs = json_pack("{s:{s:o}}", k->user, k->device, enc);
	snprintf(seed, sizeof(seed), "fwdkey.%s.%s.%s", k->user, k->device, k->rid);
	memcpy(txn, "fk.", 3);
	cr_hash_id(seed, txn + 3, sizeof(txn) - 3);
	r = msgs ? cr_todevice_queue(st, txn, "m.room.encrypted", msgs) : -1;
	if (r == 0)
		log_info("encryption: room %s: forwarded the bot's room key (from index %lld) to "
			 "%s device %s on request",
			 k->room, (long long)k->idx, k->user, k->device);
out:
	json_decref(msgs);
	json_decref(otks);
	cr_account_free(a);
	if (r != 0 || tlbot_store_commit(st) != 0) {
		tlbot_store_rollback(st);
		return -1;
	}
	return 0;
}

int
cr_megolm_answer_requests(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h)
{
	sqlite3_stmt *q = cr_prep(st, "SELECT user_id, device_id, request_id, room_id, session_id"
				      " FROM crypto_key_requests ORDER BY created_ms LIMIT 1");
	struct key_req k;
	const char *why;
	int db, rc = 0, n;

	for (n = 0; q != NULL && n < 20; n++) {
		memset(&k, 0, sizeof(k));
		if (sqlite3_step(q) != SQLITE_ROW) {
			sqlite3_finalize(q);
			return rc;
		}
		k.user = cr_col(q, 0);
		k.device = cr_col(q, 1);
		k.rid = cr_col(q, 2);
		k.room = cr_col(q, 3);
		k.sid = cr_col(q, 4);
		sqlite3_finalize(q);
		q = NULL;
		if (!k.user || !k.device || !k.rid || !k.room || !k.sid) {
			key_req_release(&k);
			return -1;
		}
		why = request_refused(c, st, h, &k, &db);
		if (db) {
			rc = -1;
		} else if (why) {
			pthread_mutex_lock(&c->lock);
			c->refused++;
			pthread_mutex_unlock(&c->lock);
			log_warnx("encryption: room %s: key request from %s device %s not answered: %s",
				  k.room, k.user, k.device, why);
			rc = drop_request(st, &k) < 0 ? -1 : rc;
		} else if (answer_request(c, st, h, &k) != 0) {
			rc = -1;
		}
		key_req_release(&k);
		if (rc != 0)
			return rc;
		q = cr_prep(st, "SELECT user_id, device_id, request_id, room_id, session_id"
				" FROM crypto_key_requests ORDER BY created_ms LIMIT 1");
	}
	if (q == NULL)
		return -1;
	sqlite3_finalize(q);
	return rc;
}
