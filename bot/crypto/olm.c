/* Olm (m.olm.v1.curve25519-aes-sha2): to-device messages in and out, and
 * the queue of to-device messages the worker sends. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tlbot/log.h"

static const char *
jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Save (insert or update) an Olm session under its id. 0 or -1. */
static int
save_session(struct tlbot_crypto *c, struct tlbot_store *st, OlmSession *s, const char *curve)
{
	size_t n = olm_session_id_length(s);
	char *id = malloc(n + 1), *pickle = cr_pickle_olm(c, s);
	sqlite3_stmt *q = NULL;

	if (id && pickle && olm_session_id(s, id, n) != olm_error()) {
		id[n] = '\0';
		q = cr_prep(st, "INSERT OR REPLACE INTO crypto_olm_sessions(session_id, sender_key,"
				" pickle, last_used_ms) VALUES (?, ?, ?, ?)");
		if (q) {
			cr_bind(q, 1, id);
			cr_bind(q, 2, curve);
			cr_bind(q, 3, pickle);
			sqlite3_bind_int64(q, 4, cr_now_ms());
		}
	}
	free(id);
	free(pickle);
	return cr_done(st, q);
}

/* Decrypt body (message type type) with session s: a new NUL-terminated
 * plaintext, or NULL. libolm consumes its input, so each call gets a copy. */
static char *
session_decrypt(OlmSession *s, int type, const char *body)
{
	char *copy = strdup(body), *plain;
	size_t max, n;

	max = copy ? olm_decrypt_max_plaintext_length(s, (size_t)type, copy, strlen(copy))
		   : olm_error();
	free(copy);
	if (max == olm_error())
		return NULL;
	plain = malloc(max + 1);
	copy = strdup(body);
	n = plain && copy ? olm_decrypt(s, (size_t)type, copy, strlen(copy), plain, max)
			  : olm_error();
	free(copy);
	if (n == olm_error()) {
		free(plain);
		return NULL;
	}
	plain[n] = '\0';
	return plain;
}

/* 1 if the pre-key message body was made for session s. */
static int
prekey_matches(OlmSession *s, const char *sender_key, const char *body)
{
	char *copy = strdup(body);
	int r = copy && olm_matches_inbound_session_from(s, sender_key, strlen(sender_key), copy,
							 strlen(copy)) == 1;

	free(copy);
	return r;
}

/* Decrypt with one of the known sessions with sender_key (the most
 * recently used first): the plaintext (new) and, in *out, the session. */
static char *
known_sessions_decrypt(struct tlbot_crypto *c, struct tlbot_store *st, const char *sender_key,
		       int type, const char *body, OlmSession **out)
{
	sqlite3_stmt *q = cr_prep(st, "SELECT pickle FROM crypto_olm_sessions WHERE sender_key = ?"
				      " ORDER BY last_used_ms DESC LIMIT 50");
	char *plain = NULL;
	OlmSession *s = NULL;

	*out = NULL;
	if (q == NULL)
		return NULL;
	cr_bind(q, 1, sender_key);
	while (plain == NULL && sqlite3_step(q) == SQLITE_ROW) {
		s = cr_unpickle_olm(c, (const char *)sqlite3_column_text(q, 0));
		if (s == NULL)
			continue;
		if (type != 0 || prekey_matches(s, sender_key, body))
			plain = session_decrypt(s, type, body);
		if (plain == NULL) {
			cr_olm_free(s);
			s = NULL;
		}
	}
	sqlite3_finalize(q);
	*out = s;
	return plain;
}

/* Decrypt body (type 0 pre-key or 1) from sender_key with a known session,
 * or a new inbound one from a pre-key message. On success the plaintext
 * (new, NUL-terminated) and the session (to save once the payload checks
 * pass; *account_changed set when the account changed) are returned. */
static char *
olm_decrypt_body(struct tlbot_crypto *c, struct tlbot_store *st, OlmAccount *a,
		 const char *sender_key, int type, const char *body, OlmSession **out,
		 int *account_changed)
{
	char *plain = known_sessions_decrypt(c, st, sender_key, type, body, out), *copy;
	OlmSession *s;

	*account_changed = 0;
	if (plain != NULL || type != 0)
		return plain;
	/* a new session from a pre-key message: uses one of our one-time (or
	 * the fallback) keys, which the account then forgets */
	copy = strdup(body);
	s = malloc(olm_session_size());
	if (s == NULL || copy == NULL) {
		free(s);
		free(copy);
		return NULL;
	}
	olm_session(s);
	if (olm_create_inbound_session_from(s, a, sender_key, strlen(sender_key), copy,
					    strlen(copy)) == olm_error()) {
		log_debug("encryption: no inbound Olm session from the pre-key message: %s",
			  olm_session_last_error(s));
		free(copy);
		cr_olm_free(s);
		return NULL;
	}
	free(copy);
	olm_remove_one_time_keys(a, s); /* fails harmlessly for the fallback key */
	plain = session_decrypt(s, 0, body);
	if (plain == NULL) {
		cr_olm_free(s);
		return NULL;
	}
	*account_changed = 1;
	*out = s;
	return plain;
}

static void
refused(struct tlbot_crypto *c, const char *sender, const char *why)
{
	pthread_mutex_lock(&c->lock);
	c->refused++;
	pthread_mutex_unlock(&c->lock);
	log_warnx("encryption: refused a to-device message from %s: %s", sender ? sender : "?", why);
}

/* The spec's checks of a decrypted Olm payload: it names the event's
 * sender, the bot as recipient with the bot's keys, and a sender signing
 * key. Returns why it is refused, or NULL. */
static const char *
payload_refused(const struct tlbot_crypto *c, const json_t *payload, const char *sender)
{
	const char *rk = jstr(json_object_get(payload, "recipient_keys"), "ed25519");

	if (!json_is_object(payload) || jstr(payload, "type") == NULL ||
	    !json_is_object(json_object_get(payload, "content")))
		return "malformed payload";
	if (jstr(payload, "sender") == NULL || strcmp(jstr(payload, "sender"), sender) != 0)
		return "the payload's sender is not the event's sender";
	if (jstr(payload, "recipient") == NULL || strcmp(jstr(payload, "recipient"), c->user_id) != 0)
		return "addressed to another user";
	if (rk == NULL || strcmp(rk, c->ed25519) != 0)
		return "addressed to another device key";
	if (jstr(json_object_get(payload, "keys"), "ed25519") == NULL)
		return "no sender signing key";
	return NULL;
}

/* The sender's device with identity key sender_key: 0 (new strings in
 * *ed, *dev_id), 1 not one of the sender's devices, -1 db error. A device
 * the bot has not seen yet is looked up with the server first (h). */
static int
sender_device(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
	      const char *sender, const char *sender_key, char **ed, char **dev_id)
{
	int r = cr_device_by_curve(st, sender, sender_key, ed, dev_id);
	json_t *u;
	sqlite3_stmt *q;

	if (r != 1 || h == NULL)
		return r;
	u = json_pack("[s]", sender);
	q = cr_prep(st, "UPDATE crypto_users SET stale = stale + 1 WHERE user_id = ?");
	if (q)
		cr_bind(q, 1, sender);
	if (u == NULL || cr_done(st, q) != 0) {
		json_decref(u);
		return -1;
	}
	cr_devices_refresh(c, st, h, u);
	json_decref(u);
	return cr_device_by_curve(st, sender, sender_key, ed, dev_id);
}

/* Act on an accepted payload (room keys; the rest is ignored). 0 or -1. */
static int
handle_payload(struct tlbot_crypto *c, struct tlbot_store *st, const char *sender,
	       const char *sender_key, const char *dev_id, const char *dev_ed, const json_t *payload)
{
	const char *ptype = jstr(payload, "type");
	const json_t *content = json_object_get(payload, "content");

	if (strcmp(ptype, "m.room_key") == 0)
		return cr_megolm_add_inbound(c, st, sender, sender_key, dev_ed, content);
	if (strcmp(ptype, "m.forwarded_room_key") == 0)
		return cr_megolm_add_forwarded(c, st, sender, sender_key, dev_id, dev_ed, content);
	log_debug("encryption: encrypted to-device %s from %s ignored", ptype, sender);
	return 0;
}

/* Why a to-device event is not an Olm message the bot can read, or NULL
 * (then *body and *type are its ciphertext for the bot). */
static const char *
envelope_refused(const struct tlbot_crypto *c, const json_t *content, const char **body,
		 int *type)
{
	const char *algo = jstr(content, "algorithm");
	const json_t *mine = json_object_get(json_object_get(content, "ciphertext"), c->curve25519);
	const json_t *tj = json_object_get(mine, "type");

	*body = jstr(mine, "body");
	*type = (int)json_integer_value(tj);
	if (algo == NULL || strcmp(algo, OLM_ALGO) != 0 || jstr(content, "sender_key") == NULL)
		return "not an Olm message";
	if (*body == NULL || !json_is_integer(tj) || (*type != 0 && *type != 1))
		return "no ciphertext for this device";
	return NULL;
}

int
cr_olm_handle_to_device(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
			const json_t *ev)
{
	const char *type = jstr(ev, "type"), *sender = jstr(ev, "sender");
	const json_t *content = json_object_get(ev, "content");
	const char *sender_key = jstr(content, "sender_key"), *body, *why;
	OlmAccount *a = NULL;
	OlmSession *s = NULL;
	json_t *payload = NULL;
	char *plain = NULL, *dev_ed = NULL, *dev_id = NULL;
	int account_changed = 0, rc = 0, r, btype;

	if (type != NULL && sender != NULL && strcmp(type, "m.room_key_request") == 0)
		return cr_megolm_key_request(c, st, ev);
	if (type == NULL || sender == NULL || strcmp(type, "m.room.encrypted") != 0) {
		if (type)
			log_debug("encryption: to-device %s from %s ignored", type,
				  sender ? sender : "?");
		return 0;
	}
	why = envelope_refused(c, content, &body, &btype);
	if (why) {
		refused(c, sender, why);
		return 0;
	}
	a = cr_account_load(c, st);
	if (a == NULL)
		return -1;
	plain = olm_decrypt_body(c, st, a, sender_key, btype, body, &s, &account_changed);
	if (plain == NULL) {
		why = "cannot decrypt it (no matching session, or garbage)";
		goto out;
	}
	payload = json_loads(plain, 0, NULL);
	explicit_bzero(plain, strlen(plain));
	why = payload_refused(c, payload, sender);
	if (why)
		goto out;
	r = sender_device(c, st, h, sender, sender_key, &dev_ed, &dev_id);
	if (r != 0) {
		rc = r < 0 ? -1 : 0;
		why = r < 0 ? NULL : "the sending device is not one of the sender's devices";
		goto out;
	}
	if (strcmp(dev_ed, jstr(json_object_get(payload, "keys"), "ed25519")) != 0) {
		why = "the claimed signing key is not the sending device's";
		goto out;
	}
	/* accepted: keep the session (and the account, without the used key) */
	if (save_session(c, st, s, sender_key) != 0 ||
	    (account_changed && cr_account_save(c, st, a) != 0))
		rc = -1;
	else
		rc = handle_payload(c, st, sender, sender_key, dev_id, dev_ed, payload);
out:
	if (why)
		refused(c, sender, why);
	free(plain);
	free(dev_ed);
	free(dev_id);
	json_decref(payload);
	cr_olm_free(s);
	cr_account_free(a);
	return rc;
}

int
cr_olm_have_session(struct tlbot_store *st, const char *curve)
{
	char *id = NULL;
	int r = cr_get1(st, &id, "SELECT session_id FROM crypto_olm_sessions WHERE sender_key = ?",
			curve, NULL, NULL);

	free(id);
	return r == 0 ? 1 : r == 1 ? 0 : -1;
}

json_t *
cr_olm_encrypt(struct tlbot_crypto *c, struct tlbot_store *st, OlmAccount *a, const char *user,
	       const char *device, const char *curve, const char *ed, const char *otk,
	       const json_t *payload)
{
	char *pickle = NULL, *text = NULL, *out = NULL;
	OlmSession *s = NULL;
	json_t *full = NULL, *res = NULL;
	void *rnd = NULL;
	size_t rl, type, n;
	int r = cr_get1(st, &pickle,
			"SELECT pickle FROM crypto_olm_sessions WHERE sender_key = ?"
			" ORDER BY last_used_ms DESC LIMIT 1",
			curve, NULL, NULL);

	if (r < 0)
		return NULL;
	if (r == 0) {
		s = cr_unpickle_olm(c, pickle);
		free(pickle);
	} else if (otk) {
		s = malloc(olm_session_size());
		if (s == NULL)
			return NULL;
		olm_session(s);
		rl = olm_create_outbound_session_random_length(s);
		rnd = malloc(rl);
		if (rnd == NULL || cr_random(rnd, rl) != 0 ||
		    olm_create_outbound_session(s, a, curve, strlen(curve), otk, strlen(otk), rnd,
						rl) == olm_error()) {
			log_warnx("encryption: cannot start an Olm session with %s device %s", user,
				  device);
			free(rnd);
			cr_olm_free(s);
			return NULL;
		}
		free(rnd);
		rnd = NULL;
	}
	if (s == NULL)
		return NULL;
	full = json_deep_copy(payload);
	if (full == NULL ||
	    json_object_set_new(full, "sender", json_string(c->user_id)) != 0 ||
	    json_object_set_new(full, "sender_device", json_string(c->device_id)) != 0 ||
	    json_object_set_new(full, "recipient", json_string(user)) != 0 ||
	    json_object_set_new(full, "recipient_keys", json_pack("{s:s}", "ed25519", ed)) != 0 ||
	    json_object_set_new(full, "keys", json_pack("{s:s}", "ed25519", c->ed25519)) != 0)
		goto out;
	text = json_dumps(full, JSON_COMPACT);
	if (text == NULL)
		goto out;
	type = olm_encrypt_message_type(s);
	rl = olm_encrypt_random_length(s);
	rnd = malloc(rl ? rl : 1);
	n = olm_encrypt_message_length(s, strlen(text));
	out = malloc(n + 1);
	if (rnd == NULL || out == NULL || cr_random(rnd, rl) != 0 ||
	    olm_encrypt(s, text, strlen(text), rnd, rl, out, n) == olm_error())
		goto out;
	out[n] = '\0';
	if (save_session(c, st, s, curve) != 0)
		goto out;
	res = json_pack("{s:s, s:s, s:{s:{s:i, s:s}}}", "algorithm", OLM_ALGO, "sender_key",
			c->curve25519, "ciphertext", curve, "type", (int)type, "body", out);
out:
	if (text)
		explicit_bzero(text, strlen(text));
	free(text);
	free(out);
	free(rnd);
	json_decref(full);
	cr_olm_free(s);
	return res;
}

int
cr_todevice_queue(struct tlbot_store *st, const char *txn_id, const char *type,
		  const json_t *messages)
{
	json_t *body = json_pack("{s:O}", "messages", messages);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	sqlite3_stmt *s = text ? cr_prep(st, "INSERT OR IGNORE INTO crypto_todevice(txn_id, type, body)"
					     " VALUES (?, ?, ?)")
			       : NULL;

	json_decref(body);
	if (s) {
		cr_bind(s, 1, txn_id);
		cr_bind(s, 2, type);
		cr_bind(s, 3, text);
	}
	free(text);
	return cr_done(st, s);
}

int
cr_todevice_flush(struct tlbot_store *st, struct tlbot_http *h)
{
	if (h == NULL)
		return 0; /* no connection (unit tests): the rows stay queued */
	for (;;) {
		sqlite3_stmt *s = cr_prep(st, "SELECT id, txn_id, type, body FROM crypto_todevice"
					      " ORDER BY id LIMIT 1");
		struct tlbot_http_resp r;
		char *txn, *type, *body, *et, *ex, path[1024];
		int64_t id;
		enum tlbot_err e;

		if (s == NULL)
			return -1;
		if (sqlite3_step(s) != SQLITE_ROW) {
			sqlite3_finalize(s);
			return 0;
		}
		id = sqlite3_column_int64(s, 0);
		txn = cr_col(s, 1);
		type = cr_col(s, 2);
		body = cr_col(s, 3);
		sqlite3_finalize(s);
		et = type ? tlbot_http_escape(type) : NULL;
		ex = txn ? tlbot_http_escape(txn) : NULL;
		tlbot_http_resp_init(&r);
		e = TLBOT_ERR_NOMEM;
		if (et && ex && body) {
			snprintf(path, sizeof(path), "/_matrix/client/v3/sendToDevice/%s/%s", et, ex);
			e = tlbot_http_request(h, "PUT", path, body, strlen(body), NULL, 30000, &r);
		}
		free(et);
		free(ex);
		free(body);
		if (e != TLBOT_OK && tlbot_http_retryable(e, &r)) {
			log_warnx("encryption: sending to-device %s %s failed: %s %s; retrying", type,
				  txn, r.errcode, r.error);
			free(txn);
			free(type);
			tlbot_http_resp_release(&r);
			return -1;
		}
		if (e != TLBOT_OK)
			log_error("encryption: to-device %s %s refused for good: %s %s; dropped", type,
				  txn, r.errcode, r.error);
		else
			log_debug("encryption: to-device %s %s sent", type, txn);
		free(txn);
		free(type);
		tlbot_http_resp_release(&r);
		s = cr_prep(st, "DELETE FROM crypto_todevice WHERE id = ?");
		if (s)
			sqlite3_bind_int64(s, 1, id);
		if (cr_done(st, s) != 0)
			return -1;
	}
}
