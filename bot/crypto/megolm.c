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

int
cr_megolm_add_inbound(struct tlbot_crypto *c, struct tlbot_store *st, const char *sender,
		      const char *sender_key, const char *sender_ed, const json_t *content)
{
	const char *algo = jstr(content, "algorithm"), *room = jstr(content, "room_id");
	const char *sid = jstr(content, "session_id"), *key = jstr(content, "session_key");
	OlmInboundGroupSession *s;
	char *copy, *pickle, idbuf[128];
	sqlite3_stmt *q;
	size_t n;

	if (algo == NULL || strcmp(algo, MEGOLM_ALGO) != 0 || room == NULL || sid == NULL ||
	    key == NULL) {
		log_warnx("encryption: a room key from %s is not a Megolm key; ignored", sender);
		return 0;
	}
	s = malloc(olm_inbound_group_session_size());
	copy = strdup(key);
	if (s == NULL || copy == NULL) {
		free(s);
		free(copy);
		return -1;
	}
	olm_inbound_group_session(s);
	if (olm_init_inbound_group_session(s, (const uint8_t *)copy, strlen(copy)) == olm_error()) {
		log_warnx("encryption: a room key from %s for room %s is invalid: %s", sender, room,
			  olm_inbound_group_session_last_error(s));
		explicit_bzero(copy, strlen(copy));
		free(copy);
		cr_in_free(s);
		return 0;
	}
	explicit_bzero(copy, strlen(copy));
	free(copy);
	n = olm_inbound_group_session_id(s, (uint8_t *)idbuf, sizeof(idbuf) - 1);
	if (n == olm_error() || (idbuf[n] = '\0', strcmp(idbuf, sid) != 0)) {
		log_warnx("encryption: a room key from %s: the key does not match its session id",
			  sender);
		cr_in_free(s);
		return 0;
	}
	pickle = cr_pickle_in(c, s);
	cr_in_free(s);
	if (pickle == NULL)
		return -1;
	/* the first key for a session wins: a later one (even from someone
	 * else holding the key) cannot change who it belongs to */
	q = cr_prep(st, "INSERT OR IGNORE INTO crypto_megolm_in(room_id, session_id, sender_key,"
			" sender_user, sender_ed25519, pickle) VALUES (?, ?, ?, ?, ?, ?)");
	if (q) {
		cr_bind(q, 1, room);
		cr_bind(q, 2, sid);
		cr_bind(q, 3, sender_key);
		cr_bind(q, 4, sender);
		cr_bind(q, 5, sender_ed);
		cr_bind(q, 6, pickle);
	}
	free(pickle);
	if (cr_done(st, q) != 0)
		return -1;
	log_info("encryption: room %s: received a room key from %s", room, sender);
	return 0;
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

int
tlbot_crypto_decrypt(struct tlbot_crypto *c, struct tlbot_store *st, const char *room_id,
		     const json_t *ev, json_t **plain)
{
	const json_t *content = json_object_get(ev, "content");
	const char *algo = jstr(content, "algorithm"), *ct = jstr(content, "ciphertext");
	const char *sid = jstr(content, "session_id"), *event_id = jstr(ev, "event_id");
	const char *sender = jstr(ev, "sender");
	sqlite3_stmt *q;
	OlmInboundGroupSession *s = NULL;
	char *pickle = NULL, *owner = NULL, *copy = NULL, *text = NULL, *seen = NULL;
	uint32_t idx = 0;
	size_t max, n;
	json_t *pj = NULL;
	int rc = 2, r;

	*plain = NULL;
	if (algo == NULL || strcmp(algo, MEGOLM_ALGO) != 0 || ct == NULL || sid == NULL ||
	    event_id == NULL || sender == NULL)
		return refuse(c, room_id, ev, "not a Megolm event");
	q = cr_prep(st, "SELECT pickle, sender_user FROM crypto_megolm_in"
			" WHERE room_id = ? AND session_id = ?");
	if (q == NULL)
		return -1;
	cr_bind(q, 1, room_id);
	cr_bind(q, 2, sid);
	r = sqlite3_step(q);
	if (r == SQLITE_ROW) {
		pickle = cr_col(q, 0);
		owner = cr_col(q, 1);
	}
	sqlite3_finalize(q);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return -1;
	if (r == SQLITE_DONE) {
		log_info("encryption: room %s event %s from %s: its key has not arrived yet; kept",
			 room_id, event_id, sender);
		return keep_pending(st, room_id, ev, sid, jstr(content, "sender_key")) == 0 ? 1 : -1;
	}
	if (pickle == NULL || owner == NULL)
		goto out_err;
	if (strcmp(owner, sender) != 0) {
		rc = refuse(c, room_id, ev, "the session belongs to another sender");
		goto out;
	}
	s = cr_unpickle_in(c, pickle);
	if (s == NULL)
		goto out_err;
	copy = strdup(ct);
	max = copy ? olm_group_decrypt_max_plaintext_length(s, (uint8_t *)copy, strlen(copy))
		   : olm_error();
	free(copy);
	copy = NULL;
	if (max == olm_error()) {
		rc = refuse(c, room_id, ev, "garbage ciphertext");
		goto out;
	}
	text = malloc(max + 1);
	copy = strdup(ct);
	if (text == NULL || copy == NULL)
		goto out_err;
	n = olm_group_decrypt(s, (uint8_t *)copy, strlen(copy), (uint8_t *)text, max, &idx);
	if (n == olm_error()) {
		rc = refuse(c, room_id, ev, olm_inbound_group_session_last_error(s));
		goto out;
	}
	text[n] = '\0';
	/* replay: the same message index under another event id */
	{
		char num[16];

		snprintf(num, sizeof(num), "%u", idx);
		r = cr_get1(st, &seen,
			    "SELECT event_id FROM crypto_megolm_index WHERE session_id = ? AND idx = ?",
			    sid, num, NULL);
		if (r < 0)
			goto out_err;
		if (r == 0 && strcmp(seen, event_id) != 0) {
			rc = refuse(c, room_id, ev, "replayed Megolm message index");
			goto out;
		}
		if (r == 1) {
			q = cr_prep(st, "INSERT INTO crypto_megolm_index(session_id, idx, event_id)"
					" VALUES (?, ?, ?)");
			if (q) {
				cr_bind(q, 1, sid);
				sqlite3_bind_int64(q, 2, idx);
				cr_bind(q, 3, event_id);
			}
			if (cr_done(st, q) != 0)
				goto out_err;
		}
	}
	pj = json_loads(text, 0, NULL);
	if (!json_is_object(pj) || jstr(pj, "type") == NULL ||
	    !json_is_object(json_object_get(pj, "content"))) {
		rc = refuse(c, room_id, ev, "malformed plaintext");
		goto out;
	}
	if (jstr(pj, "room_id") == NULL || strcmp(jstr(pj, "room_id"), room_id) != 0) {
		rc = refuse(c, room_id, ev, "the plaintext belongs to another room");
		goto out;
	}
	*plain = json_deep_copy(ev);
	if (*plain == NULL)
		goto out_err;
	{
		json_t *pc = json_deep_copy(json_object_get(pj, "content"));
		const json_t *rel = json_object_get(content, "m.relates_to");

		/* relations travel in the clear (the server aggregates them) */
		if (pc && rel && json_object_get(pc, "m.relates_to") == NULL)
			json_object_set(pc, "m.relates_to", (json_t *)rel);
		json_object_set_new(*plain, "type", json_string(jstr(pj, "type")));
		json_object_set_new(*plain, "content", pc ? pc : json_object());
	}
	count(c, &c->decrypted);
	log_debug("encryption: room %s event %s from %s decrypted (%s)", room_id, event_id, sender,
		  jstr(pj, "type"));
	rc = 0;
	goto out;
out_err:
	rc = -1;
out:
	if (text)
		explicit_bzero(text, max + 1); /* all of it: not NUL-terminated when olm refused */
	free(text);
	free(copy);
	free(seen);
	free(pickle);
	free(owner);
	json_decref(pj);
	cr_in_free(s);
	return rc;
}

json_t *
tlbot_crypto_take_ready(struct tlbot_crypto *c, struct tlbot_store *st)
{
	sqlite3_stmt *q = cr_prep(st, "SELECT p.event_id, p.room_id, p.event FROM crypto_pending p"
				      " JOIN crypto_megolm_in m ON m.room_id = p.room_id"
				      " AND m.session_id = p.session_id ORDER BY p.created_ms");
	json_t *rows = json_array(), *out = json_array();
	size_t i;

	if (q == NULL || rows == NULL || out == NULL) {
		sqlite3_finalize(q);
		json_decref(rows);
		json_decref(out);
		return NULL;
	}
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(rows, json_pack("{s:s, s:s, s:s}", "event_id",
						      sqlite3_column_text(q, 0), "room_id",
						      sqlite3_column_text(q, 1), "event",
						      sqlite3_column_text(q, 2)));
	sqlite3_finalize(q);
	for (i = 0; i < json_array_size(rows); i++) {
		const json_t *row = json_array_get(rows, i);
		json_t *ev = json_loads(jstr(row, "event"), 0, NULL), *plain = NULL;
		int r = ev ? tlbot_crypto_decrypt(c, st, jstr(row, "room_id"), ev, &plain) : 2;
		sqlite3_stmt *d;

		json_decref(ev);
		if (r < 0 || r == 1) {
			json_decref(plain);
			json_decref(rows);
			json_decref(out);
			return NULL;
		}
		d = cr_prep(st, "DELETE FROM crypto_pending WHERE event_id = ?");
		if (d)
			cr_bind(d, 1, jstr(row, "event_id"));
		if (cr_done(st, d) != 0) {
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

int
cr_megolm_follow_up(struct tlbot_crypto *c, struct tlbot_store *st)
{
	int64_t now = cr_now_ms();
	sqlite3_stmt *q = cr_prep(st, "SELECT event_id, room_id, session_id, sender, sender_key,"
				      " created_ms, requested FROM crypto_pending"
				      " WHERE notified = 0 AND created_ms < ?");
	json_t *rows = json_array();
	size_t i;

	if (q == NULL || rows == NULL) {
		sqlite3_finalize(q);
		json_decref(rows);
		return -1;
	}
	sqlite3_bind_int64(q, 1, now - KEY_REQUEST_AFTER_MS);
	{
		/* a key that never came after a week will not come: forget the
		 * event (the room was told) */
		sqlite3_stmt *d = cr_prep(st, "DELETE FROM crypto_pending WHERE notified = 1"
					      " AND created_ms < ?");

		if (d)
			sqlite3_bind_int64(d, 1, now - 7LL * 86400 * 1000);
		if (cr_done(st, d) != 0) {
			sqlite3_finalize(q);
			json_decref(rows);
			return -1;
		}
	}
	while (sqlite3_step(q) == SQLITE_ROW)
		json_array_append_new(
			rows, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I, s:i}", "event_id",
					sqlite3_column_text(q, 0), "room_id", sqlite3_column_text(q, 1),
					"session_id", sqlite3_column_text(q, 2), "sender",
					sqlite3_column_text(q, 3), "sender_key",
					sqlite3_column_text(q, 4), "created",
					(json_int_t)sqlite3_column_int64(q, 5), "requested",
					sqlite3_column_int(q, 6)));
	sqlite3_finalize(q);
	for (i = 0; i < json_array_size(rows); i++) {
		const json_t *row = json_array_get(rows, i);
		const char *ev_id = jstr(row, "event_id"), *room = jstr(row, "room_id");
		const char *sender = jstr(row, "sender"), *sid = jstr(row, "session_id");
		char txn[128], seed[2048];
		sqlite3_stmt *u;

		if (!json_integer_value(json_object_get(row, "requested"))) {
			json_t *req = json_pack("{s:s, s:{s:s, s:s, s:s, s:s?}, s:s, s:s}", "action",
						"request", "body", "algorithm", MEGOLM_ALGO, "room_id",
						room, "session_id", sid, "sender_key",
						jstr(row, "sender_key"), "request_id", ev_id,
						"requesting_device_id", c->device_id);
			json_t *msgs = req ? json_object() : NULL;
			int r;

			if (msgs) {
				json_object_set_new(msgs, sender, json_pack("{s:O}", "*", req));
				if (strcmp(sender, c->user_id) != 0)
					json_object_set_new(msgs, c->user_id,
							    json_pack("{s:O}", "*", req));
			}
			snprintf(seed, sizeof(seed), "keyreq.%s", ev_id);
			memcpy(txn, "kr.", 3);
			cr_hash_id(seed, txn + 3, sizeof(txn) - 3);
			r = msgs ? cr_todevice_queue(st, txn, "m.room_key_request", msgs) : -1;
			json_decref(req);
			json_decref(msgs);
			if (r != 0)
				goto fail;
			u = cr_prep(st, "UPDATE crypto_pending SET requested = 1 WHERE event_id = ?");
			if (u)
				cr_bind(u, 1, ev_id);
			if (cr_done(st, u) != 0)
				goto fail;
			log_info("encryption: room %s event %s: asked %s's devices for the missing key",
				 room, ev_id, sender);
		}
		if (json_integer_value(json_object_get(row, "created")) < now - GIVE_UP_AFTER_MS) {
			/* one line per sender and session, however many of their
			 * messages it hides */
			json_t *msg;
			char *text, body[1024];

			snprintf(body, sizeof(body),
				 "I could not decrypt a message from %s: my device (%s) never "
				 "received its key. Please send it again; if it keeps happening, "
				 "make sure your client shares keys with unverified devices or "
				 "verify my device.",
				 sender, c->device_id);
			msg = json_pack("{s:s, s:s, s:{s:[s]}}", "msgtype", "m.notice", "body", body,
					"m.mentions", "user_ids", sender);
			text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
			json_decref(msg);
			snprintf(seed, sizeof(seed), "undecryptable.%s.%s.%s", room, sender, sid);
			memcpy(txn, "ud.", 3);
			cr_hash_id(seed, txn + 3, sizeof(txn) - 3);
			if (text == NULL || tlbot_store_outbox_add(st, txn, "send", room, NULL,
								   "m.room.message", text, NULL,
								   0) != 0) {
				free(text);
				goto fail;
			}
			free(text);
			u = cr_prep(st, "UPDATE crypto_pending SET notified = 1 WHERE event_id = ?");
			if (u)
				cr_bind(u, 1, ev_id);
			if (cr_done(st, u) != 0)
				goto fail;
			log_warnx("encryption: room %s event %s from %s: still no key after %d s; "
				  "told the room",
				  room, ev_id, sender, GIVE_UP_AFTER_MS / 1000);
		}
	}
	json_decref(rows);
	return 0;
fail:
	json_decref(rows);
	return -1;
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
	int64_t rot_ms, rot_msgs, created_ms = 0, msgs = 0;
	const char *why = NULL;
	size_t n;

	*created = 0;
	if (q == NULL)
		return NULL;
	rotation(st, room_id, &rot_ms, &rot_msgs);
	cr_bind(q, 1, room_id);
	if (sqlite3_step(q) == SQLITE_ROW) {
		snprintf(sid, sidlen, "%s", (const char *)sqlite3_column_text(q, 0));
		s = cr_unpickle_out(c, (const char *)sqlite3_column_text(q, 1));
		created_ms = sqlite3_column_int64(q, 2);
		msgs = sqlite3_column_int64(q, 3);
	}
	sqlite3_finalize(q);
	if (s) {
		if (msgs >= rot_msgs)
			why = "message count";
		else if (cr_now_ms() - created_ms >= rot_ms)
			why = "age";
		else {
			q = cr_prep(st, "SELECT user_id, device_id FROM crypto_megolm_shared"
					" WHERE session_id = ?");
			if (q == NULL) {
				cr_out_free(s);
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
		}
		if (why == NULL)
			return s;
		log_info("encryption: room %s: rotating the outbound session (%s)", room_id, why);
		cr_out_free(s);
		s = NULL;
	}
	{
		size_t rl;
		void *rnd;
		char *pickle;

		s = malloc(olm_outbound_group_session_size());
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
		if (cr_done(st, q) != 0) {
			cr_out_free(s);
			return NULL;
		}
		*created = 1;
	}
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

/* Share session sid of room_id with the devices in need: Olm-encrypt
 * m.room_key for each, queue the to-device messages and record the shares
 * in ONE transaction, then send them. 0 or -1. */
static int
share_session(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
	      const char *room_id, const char *sid, const json_t *need, const char *cause)
{
	json_t *otks = claim_keys(st, h, need), *msgs = NULL, *devs, *keys;
	OlmAccount *a = NULL;
	OlmOutboundGroupSession *s = NULL;
	const char *u, *d;
	char key[512], txn[128], seed[2048];
	int rc = -1, ndev = 0, part = 0, total = 0;
	size_t n;

	if (otks == NULL)
		return -1;
	if (tlbot_store_begin(st) != 0) {
		json_decref(otks);
		return -1;
	}
	a = cr_account_load(c, st);
	{
		char *pickle = NULL;

		if (cr_get1(st, &pickle, "SELECT pickle FROM crypto_megolm_out WHERE room_id = ?"
					 " AND session_id = ?",
			    room_id, sid, NULL) == 0)
			s = cr_unpickle_out(c, pickle);
		free(pickle);
	}
	if (a == NULL || s == NULL)
		goto fail;
	n = olm_outbound_group_session_key(s, (uint8_t *)key, sizeof(key) - 1);
	if (n == olm_error())
		goto fail;
	key[n] = '\0';
	msgs = json_object();
	json_object_foreach((json_t *)need, u, devs) {
		json_object_foreach(devs, d, keys) {
			const char *curve = json_string_value(json_array_get(keys, 0));
			const char *ed = json_string_value(json_array_get(keys, 1));
			const char *otk = json_string_value(json_object_get(json_object_get(otks, u), d));
			json_t *payload = json_pack("{s:s, s:{s:s, s:s, s:s, s:s}}", "type",
						    "m.room_key", "content", "algorithm", MEGOLM_ALGO,
						    "room_id", room_id, "session_id", sid,
						    "session_key", key);
			json_t *enc = payload ? cr_olm_encrypt(c, st, a, u, d, curve, ed, otk, payload)
					      : NULL;
			sqlite3_stmt *q;

			json_decref(payload);
			if (enc == NULL) {
				/* no session and no one-time key: the device cannot get
				 * the key now; it is tried again with the next message */
				log_warnx("encryption: room %s: cannot share the room key with %s "
					  "device %s (no one-time key)",
					  room_id, u, d);
				continue;
			}
			if (json_object_get(msgs, u) == NULL)
				json_object_set_new(msgs, u, json_object());
			json_object_set_new(json_object_get(msgs, u), d, enc);
			q = cr_prep(st, "INSERT OR IGNORE INTO crypto_megolm_shared(session_id,"
					" user_id, device_id) VALUES (?, ?, ?)");
			if (q) {
				cr_bind(q, 1, sid);
				cr_bind(q, 2, u);
				cr_bind(q, 3, d);
			}
			if (cr_done(st, q) != 0)
				goto fail;
			total++;
			if (++ndev >= TODEVICE_BATCH) {
				snprintf(seed, sizeof(seed), "roomkey.%s.%s.%d", sid, cause, part++);
				memcpy(txn, "rk.", 3);
				cr_hash_id(seed, txn + 3, sizeof(txn) - 3);
				if (cr_todevice_queue(st, txn, "m.room.encrypted", msgs) != 0)
					goto fail;
				json_object_clear(msgs);
				ndev = 0;
			}
		}
	}
	if (ndev > 0) {
		snprintf(seed, sizeof(seed), "roomkey.%s.%s.%d", sid, cause, part++);
		memcpy(txn, "rk.", 3);
		cr_hash_id(seed, txn + 3, sizeof(txn) - 3);
		if (cr_todevice_queue(st, txn, "m.room.encrypted", msgs) != 0)
			goto fail;
	}
	if (tlbot_store_commit(st) != 0)
		goto fail;
	explicit_bzero(key, sizeof(key));
	json_decref(msgs);
	json_decref(otks);
	cr_account_free(a);
	cr_out_free(s);
	rc = cr_todevice_flush(st, h);
	if (rc == 0)
		log_info("encryption: room %s: room key shared with %d device%s", room_id, total,
			 total == 1 ? "" : "s");
	return rc;
fail:
	explicit_bzero(key, sizeof(key));
	tlbot_store_rollback(st);
	json_decref(msgs);
	json_decref(otks);
	cr_account_free(a);
	cr_out_free(s);
	return -1;
}

int
tlbot_crypto_prepare_send(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
			  struct tlbot_outbox_row *row)
{
	json_t *members = NULL, *rcpt = NULL, *need = NULL, *content = NULL, *plain = NULL;
	json_t *enc = NULL;
	OlmOutboundGroupSession *s = NULL;
	char sid[128], *ptext = NULL, *ct = NULL, *etext = NULL;
	int created, rc = -1;
	size_t n;
	sqlite3_stmt *q;

	if (c == NULL || row->kind == NULL || strcmp(row->kind, "send") != 0 ||
	    row->room_id == NULL)
		return 0;
	if (row->event_type && strcmp(row->event_type, "m.room.encrypted") == 0)
		return 0; /* encrypted before a crash or a failed send: same ciphertext */
	if (!tlbot_crypto_room_encrypted(st, row->room_id))
		return 0;
	members = cr_room_members(c, st, h, row->room_id);
	if (members == NULL || cr_devices_refresh(c, st, h, members) != 0)
		goto out;
	rcpt = recipients(c, st, members);
	if (rcpt == NULL || tlbot_store_begin(st) != 0)
		goto out;
	s = outbound_session(c, st, row->room_id, rcpt, sid, sizeof(sid), &created);
	need = s ? unshared(st, rcpt, sid) : NULL;
	if (need == NULL || tlbot_store_commit(st) != 0) {
		tlbot_store_rollback(st);
		goto out;
	}
	cr_out_free(s);
	s = NULL;
	if (json_object_size(need) > 0 &&
	    share_session(c, st, h, row->room_id, sid, need, row->txn_id) != 0)
		goto out;
	/* keys queued by an earlier attempt go out before the message */
	if (cr_todevice_flush(st, h) != 0)
		goto out;
	/* encrypt and persist in one transaction */
	content = json_loads(row->content ? row->content : "{}", 0, NULL);
	plain = content ? json_pack("{s:s, s:O, s:s}", "type",
				    row->event_type ? row->event_type : "m.room.message", "content",
				    content, "room_id", row->room_id)
			: NULL;
	ptext = plain ? json_dumps(plain, JSON_COMPACT) : NULL;
	if (ptext == NULL || tlbot_store_begin(st) != 0)
		goto out;
	{
		char *pickle = NULL;

		if (cr_get1(st, &pickle, "SELECT pickle FROM crypto_megolm_out WHERE room_id = ?"
					 " AND session_id = ?",
			    row->room_id, sid, NULL) == 0)
			s = cr_unpickle_out(c, pickle);
		free(pickle);
	}
	if (s == NULL) {
		/* rotated by someone else in between: try again */
		tlbot_store_rollback(st);
		goto out;
	}
	n = olm_group_encrypt_message_length(s, strlen(ptext));
	ct = malloc(n + 1);
	if (ct == NULL || olm_group_encrypt(s, (uint8_t *)ptext, strlen(ptext), (uint8_t *)ct, n) ==
				  olm_error()) {
		tlbot_store_rollback(st);
		goto out;
	}
	ct[n] = '\0';
	enc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "algorithm", MEGOLM_ALGO, "sender_key",
			c->curve25519, "ciphertext", ct, "session_id", sid, "device_id",
			c->device_id);
	if (enc && json_object_get(content, "m.relates_to"))
		json_object_set(enc, "m.relates_to", json_object_get(content, "m.relates_to"));
	etext = enc ? json_dumps(enc, JSON_COMPACT) : NULL;
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
		goto out;
	}
	free(row->event_type);
	free(row->content);
	row->event_type = strdup("m.room.encrypted");
	row->content = etext;
	etext = NULL;
	if (row->event_type == NULL || row->content == NULL)
		goto out;
	count(c, &c->encrypted);
	rc = 0;
out:
	if (rc != 0)
		log_warnx("encryption: outbox %s to %s: not ready to send encrypted yet; retrying",
			  row->txn_id, row->room_id);
	if (ptext)
		explicit_bzero(ptext, strlen(ptext));
	free(ptext);
	free(ct);
	free(etext);
	json_decref(enc);
	json_decref(plain);
	json_decref(content);
	json_decref(need);
	json_decref(rcpt);
	json_decref(members);
	cr_out_free(s);
	return rc;
}
