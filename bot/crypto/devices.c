/* Device lists: who has which devices (POST /keys/query, signature
 * checked), kept in the store and marked stale by device_lists.changed;
 * the members of encrypted rooms the keys are shared with. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tlbot/log.h"

int
cr_devices_changed(struct tlbot_store *st, const json_t *device_lists)
{
	const json_t *changed = json_object_get(device_lists, "changed");
	const json_t *left = json_object_get(device_lists, "left");
	size_t i;

	for (i = 0; i < json_array_size(changed); i++) {
		const char *u = json_string_value(json_array_get(changed, i));
		sqlite3_stmt *s;

		if (u == NULL)
			continue;
		/* a counter, not a flag: a change that comes while a query for
		 * the user is in flight keeps the user stale (see refresh) */
		s = cr_prep(st, "UPDATE crypto_users SET stale = stale + 1 WHERE user_id = ?");
		if (s)
			cr_bind(s, 1, u);
		if (cr_done(st, s) != 0)
			return -1;
	}
	for (i = 0; i < json_array_size(left); i++) {
		const char *u = json_string_value(json_array_get(left, i));
		sqlite3_stmt *s;

		if (u == NULL)
			continue;
		/* no encrypted room shared any more: forget the devices, so the
		 * next outbound session does not go to them */
		s = cr_prep(st, "DELETE FROM crypto_users WHERE user_id = ?");
		if (s)
			cr_bind(s, 1, u);
		if (cr_done(st, s) != 0)
			return -1;
		s = cr_prep(st, "DELETE FROM crypto_devices WHERE user_id = ?");
		if (s)
			cr_bind(s, 1, u);
		if (cr_done(st, s) != 0)
			return -1;
	}
	return 0;
}

int
cr_device_by_curve(struct tlbot_store *st, const char *user, const char *curve, char **ed,
		   char **device_id)
{
	sqlite3_stmt *s = cr_prep(st, "SELECT ed25519, device_id FROM crypto_devices"
				      " WHERE user_id = ? AND curve25519 = ?");
	int rc;

	*ed = *device_id = NULL;
	if (s == NULL)
		return -1;
	cr_bind(s, 1, user);
	cr_bind(s, 2, curve);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*ed = cr_col(s, 0);
		*device_id = cr_col(s, 1);
		sqlite3_finalize(s);
		if (*ed == NULL || *device_id == NULL) {
			free(*ed);
			free(*device_id);
			*ed = *device_id = NULL;
			return -1;
		}
		return 0;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 1 : -1;
}

/* Store device dev of user from a /keys/query answer (dk): its keys must
 * be self-signed and name the user and device they are listed under; a
 * known device whose ed25519 key changed is refused (spec: a device's keys
 * never change) but kept with its old keys. Devices kept are noted in
 * keep. Returns 0 or -1 (db). */
static int
store_device(struct tlbot_store *st, const char *user, const char *dev, const json_t *dk,
	     json_t *keep)
{
	char kc[300], ke[300], *old_ed = NULL;
	const json_t *keys = json_object_get(dk, "keys");
	const char *cu, *ed, *du, *dd;
	sqlite3_stmt *s;
	int r;

	snprintf(kc, sizeof(kc), "curve25519:%s", dev);
	snprintf(ke, sizeof(ke), "ed25519:%s", dev);
	cu = json_string_value(json_object_get(keys, kc));
	ed = json_string_value(json_object_get(keys, ke));
	du = json_string_value(json_object_get(dk, "user_id"));
	dd = json_string_value(json_object_get(dk, "device_id"));
	if (cu == NULL || ed == NULL || du == NULL || dd == NULL || strcmp(du, user) != 0 ||
	    strcmp(dd, dev) != 0 || !cr_verify_json(dk, user, ke, ed)) {
		log_warnx("encryption: device %s of %s: keys not validly self-signed; ignored", dev,
			  user);
		return 0;
	}
	r = cr_get1(st, &old_ed, "SELECT ed25519 FROM crypto_devices WHERE user_id = ? AND device_id = ?",
		    user, dev, NULL);
	if (r < 0)
		return -1;
	json_object_set_new(keep, dev, json_true());
	if (r == 0 && strcmp(old_ed, ed) != 0) {
		log_warnx("encryption: device %s of %s changed its signing key; the new keys are "
			  "refused",
			  dev, user);
		free(old_ed);
		return 0;
	}
	free(old_ed);
	s = cr_prep(st, "INSERT OR REPLACE INTO crypto_devices(user_id, device_id, curve25519,"
			" ed25519) VALUES (?, ?, ?, ?)");
	if (s) {
		cr_bind(s, 1, user);
		cr_bind(s, 2, dev);
		cr_bind(s, 3, cu);
		cr_bind(s, 4, ed);
	}
	return cr_done(st, s);
}

/* Forget the devices of user not in keep (no longer listed: removed). */
static int
remove_unlisted(struct tlbot_store *st, const char *user, const json_t *keep)
{
	sqlite3_stmt *q = cr_prep(st, "SELECT device_id FROM crypto_devices WHERE user_id = ?"), *s;
	json_t *gone = json_array();
	size_t i;
	int rc = 0;

	if (q == NULL || gone == NULL) {
		sqlite3_finalize(q);
		json_decref(gone);
		return -1;
	}
	cr_bind(q, 1, user);
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(q, 0);

		if (d && json_object_get(keep, d) == NULL)
			json_array_append_new(gone, json_string(d));
	}
	sqlite3_finalize(q);
	for (i = 0; rc == 0 && i < json_array_size(gone); i++) {
		s = cr_prep(st, "DELETE FROM crypto_devices WHERE user_id = ? AND device_id = ?");
		if (s) {
			cr_bind(s, 1, user);
			cr_bind(s, 2, json_string_value(json_array_get(gone, i)));
		}
		rc = cr_done(st, s);
	}
	json_decref(gone);
	return rc;
}

/* Store one user's devices from a /keys/query answer (see store_device);
 * devices no longer listed are forgotten; the user is fresh unless the
 * list changed again since the query was made (gen: the change counter
 * then, -1 when the user was not tracked yet). Returns 0 or -1 (db). */
static int
store_user_devices(struct tlbot_store *st, const char *user, const json_t *devices,
		   json_int_t gen)
{
	const char *dev;
	json_t *dk;
	sqlite3_stmt *s;
	json_t *keep = json_object();

	if (keep == NULL)
		return -1;
	json_object_foreach((json_t *)devices, dev, dk) {
		if (store_device(st, user, dev, dk, keep) != 0) {
			json_decref(keep);
			return -1;
		}
	}
	if (remove_unlisted(st, user, keep) != 0) {
		json_decref(keep);
		return -1;
	}
	json_decref(keep);
	if (gen < 0)
		s = cr_prep(st, "INSERT OR IGNORE INTO crypto_users(user_id, stale) VALUES (?, 0)");
	else
		s = cr_prep(st, "UPDATE crypto_users SET stale = 0 WHERE user_id = ? AND stale = ?");
	if (s) {
		cr_bind(s, 1, user);
		if (gen >= 0)
			sqlite3_bind_int64(s, 2, gen);
	}
	return cr_done(st, s);
}

int
cr_devices_refresh(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
		   const json_t *users)
{
	json_t *body = json_pack("{s:{}}", "device_keys"), *want, *gens = json_object();
	struct tlbot_http_resp r;
	const json_t *answer;
	const char *user;
	json_t *devs;
	char *text = NULL;
	int own_tx = !st->in_tx, rc = -1;
	size_t i;

	if (body == NULL || gens == NULL) {
		json_decref(body);
		json_decref(gens);
		return -1;
	}
	want = json_object_get(body, "device_keys");
	for (i = 0; i < json_array_size(users); i++) {
		const char *u = json_string_value(json_array_get(users, i));
		char *stale = NULL;
		int g;

		if (u == NULL)
			continue;
		g = cr_get1(st, &stale, "SELECT stale FROM crypto_users WHERE user_id = ?", u, NULL,
			    NULL);
		if (g < 0) {
			json_decref(body);
			json_decref(gens);
			return -1;
		}
		if (g == 1 || strcmp(stale, "0") != 0) {
			json_object_set_new(want, u, json_array());
			json_object_set_new(gens, u,
					    json_integer(g == 1 ? -1 : strtoll(stale, NULL, 10)));
		}
		free(stale);
	}
	if (json_object_size(want) == 0) {
		json_decref(body);
		json_decref(gens);
		return 0;
	}
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (text == NULL) {
		json_decref(gens);
		return -1;
	}
	tlbot_http_resp_init(&r);
	if (tlbot_http_request(h, "POST", "/_matrix/client/v3/keys/query", text, strlen(text), NULL,
			       15000, &r) != TLBOT_OK) {
		log_warnx("encryption: /keys/query failed: %s %s (HTTP %ld)", r.errcode, r.error,
			  r.status);
		goto out;
	}
	answer = json_object_get(r.json, "device_keys");
	if (own_tx && tlbot_store_begin(st) != 0)
		goto out;
	json_object_foreach((json_t *)answer, user, devs) {
		const json_t *gj = json_object_get(gens, user);

		if (gj == NULL)
			continue; /* not asked for */
		if (json_is_object(devs) &&
		    store_user_devices(st, user, devs, json_integer_value(gj)) != 0) {
			if (own_tx)
				tlbot_store_rollback(st);
			goto out;
		}
	}
	if (own_tx && tlbot_store_commit(st) != 0) {
		tlbot_store_rollback(st);
		goto out;
	}
	rc = 0;
	(void)c;
out:
	free(text);
	json_decref(gens);
	tlbot_http_resp_release(&r);
	return rc;
}

/* Store the member events of a GET /members answer (chunk) for room_id
 * and note that its list is loaded, in one transaction. 0 or -1. */
static int
store_members(struct tlbot_store *st, const char *room_id, const json_t *chunk)
{
	sqlite3_stmt *s;
	size_t i;

	if (tlbot_store_begin(st) != 0)
		return -1;
	for (i = 0; i < json_array_size(chunk); i++) {
		const json_t *ev = json_array_get(chunk, i);
		const char *skey = json_string_value(json_object_get(ev, "state_key"));
		char *ct = json_dumps(json_object_get(ev, "content"), JSON_COMPACT);
		int bad = skey && ct &&
			  tlbot_store_state_put(st, room_id, "m.room.member", skey,
						json_string_value(json_object_get(ev, "sender")),
						ct) != 0;

		free(ct);
		if (bad) {
			tlbot_store_rollback(st);
			return -1;
		}
	}
	s = cr_prep(st, "INSERT OR IGNORE INTO crypto_members_loaded(room_id) VALUES (?)");
	if (s)
		cr_bind(s, 1, room_id);
	if (cr_done(st, s) != 0 || tlbot_store_commit(st) != 0) {
		tlbot_store_rollback(st);
		return -1;
	}
	return 0;
}

/* The sync filter loads members lazily: fetch the room's whole list once
 * (GET /members); afterwards the timeline's member events keep it
 * current. Outside a transaction. 0 or -1. */
static int
load_members(struct tlbot_store *st, struct tlbot_http *h, const char *room_id)
{
	struct tlbot_http_resp resp;
	char *esc = tlbot_http_escape(room_id), path[1024];
	int rc;

	if (esc == NULL)
		return -1;
	snprintf(path, sizeof(path), "/_matrix/client/v3/rooms/%s/members", esc);
	free(esc);
	tlbot_http_resp_init(&resp);
	if (tlbot_http_request(h, "GET", path, NULL, 0, NULL, 15000, &resp) != TLBOT_OK) {
		log_warnx("encryption: room %s: fetching the members failed: %s %s", room_id,
			  resp.errcode, resp.error);
		tlbot_http_resp_release(&resp);
		return -1;
	}
	rc = store_members(st, room_id, json_object_get(resp.json, "chunk"));
	tlbot_http_resp_release(&resp);
	return rc;
}

json_t *
cr_room_members(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
		const char *room_id)
{
	char *loaded = NULL, *vis = NULL;
	int r = cr_get1(st, &loaded, "SELECT room_id FROM crypto_members_loaded WHERE room_id = ?",
			room_id, NULL, NULL);
	json_t *out;
	sqlite3_stmt *s;
	int with_invited = 1;

	free(loaded);
	if (r < 0 || (r == 1 && load_members(st, h, room_id) != 0))
		return NULL;
	if (tlbot_store_state_get(st, room_id, "m.room.history_visibility", "", &vis) == 0) {
		json_t *j = json_loads(vis, 0, NULL);
		const char *hv = json_string_value(json_object_get(j, "history_visibility"));

		with_invited = !(hv && strcmp(hv, "joined") == 0);
		json_decref(j);
	}
	free(vis);
	s = cr_prep(st, "SELECT state_key FROM room_state WHERE room_id = ? AND type = 'm.room.member'"
			" AND (json_extract(content, '$.membership') = 'join'"
			"  OR (? AND json_extract(content, '$.membership') = 'invite'))"
			" ORDER BY state_key");
	if (s == NULL)
		return NULL;
	cr_bind(s, 1, room_id);
	sqlite3_bind_int(s, 2, with_invited);
	out = json_array();
	while (out && sqlite3_step(s) == SQLITE_ROW)
		json_array_append_new(out, json_string((const char *)sqlite3_column_text(s, 0)));
	sqlite3_finalize(s);
	(void)c;
	return out;
}
