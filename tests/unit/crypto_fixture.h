/* The bot side of the crypto test set-up, shared by the crypto unit test,
 * bench_crypto and fuzz_decrypt: a published one-time key of the bot, the
 * peer's device as /keys/query would have told the bot, an Olm session
 * from the peer, and to-device batches applied as the router applies
 * them. Header only; everything static inline, so a file that uses part of
 * it builds. Include after bot/crypto/internal.h and olm_peer.h. */
#ifndef TLBOT_TEST_CRYPTO_FIXTURE_H
#define TLBOT_TEST_CRYPTO_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

/* One published one-time key of the bot (as /keys/claim would give it). */
static inline void
cf_bot_otk(struct tlbot_crypto *c, struct tlbot_store *st, char *out, size_t outlen)
{
	OlmAccount *a = cr_account_load(c, st);
	size_t n = olm_account_generate_one_time_keys_random_length(a, 1);
	void *r = peer_rand(n);
	char buf[512];
	json_t *j, *v;
	const char *id;

	olm_account_generate_one_time_keys(a, 1, r, n);
	free(r);
	n = olm_account_one_time_keys(a, buf, sizeof(buf) - 1);
	buf[n] = '\0';
	j = json_loads(buf, 0, NULL);
	json_object_foreach(json_object_get(j, "curve25519"), id, v)
		snprintf(out, outlen, "%s", json_string_value(v));
	json_decref(j);
	olm_account_mark_keys_as_published(a);
	tlbot_store_begin(st);
	cr_account_save(c, st, a);
	tlbot_store_commit(st);
	cr_account_free(a);
}

/* What /keys/query would have told the bot about the peer's device. */
static inline void
cf_know_device(struct tlbot_store *st, const struct olm_peer *p)
{
	sqlite3_stmt *s;

	sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO crypto_devices(user_id, device_id,"
				   " curve25519, ed25519) VALUES (?, ?, ?, ?)",
			   -1, &s, NULL);
	sqlite3_bind_text(s, 1, p->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, p->device, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, p->curve, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, p->ed, -1, SQLITE_STATIC);
	sqlite3_step(s);
	sqlite3_finalize(s);
}

/* The peer's device known to the bot and an Olm session from the peer to
 * the bot (over one of the bot's one-time keys). */
static inline void
cf_connect(struct tlbot_crypto *c, struct tlbot_store *st, struct olm_peer *p)
{
	char otk[64];

	cf_know_device(st, p);
	cf_bot_otk(c, st, otk, sizeof(otk));
	peer_connect(p, tlbot_crypto_curve25519(c), otk);
}

/* Apply one batch holding to-device events (stolen) in a transaction, as
 * the router does. Returns what tlbot_crypto_apply_batch returns. */
static inline int
cf_apply_to_device(struct tlbot_crypto *c, struct tlbot_store *st, json_t *events)
{
	json_t *batch = json_pack("{s:{s:o}}", "to_device", "events", events);
	int rc;

	tlbot_store_begin(st);
	rc = tlbot_crypto_apply_batch(c, st, NULL, batch);
	tlbot_store_commit(st);
	json_decref(batch);
	return rc;
}

/* The peer sends the bot the m.room_key of its Megolm session in room
 * (over Olm). Returns what tlbot_crypto_apply_batch returns. */
static inline int
cf_give_room_key(struct tlbot_crypto *c, struct tlbot_store *st, struct olm_peer *p,
		 const char *room, const char *bot_user)
{
	return cf_apply_to_device(c, st, json_pack("[o]", peer_to_device(p, bot_user,
			tlbot_crypto_curve25519(c), tlbot_crypto_ed25519(c), "m.room_key",
			peer_room_key(p, room), NULL, NULL)));
}

#endif
