/* A tiny E2EE peer on libolm for the crypto unit test, the decrypt fuzz
 * target and bench_crypto: one Olm account, an Olm session to the bot and
 * a Megolm outbound session, producing to-device events and
 * m.room.encrypted room events exactly as the spec shapes them. Header
 * only; everything static. Aborts on libolm errors (test code). */
#ifndef TLBOT_TEST_OLM_PEER_H
#define TLBOT_TEST_OLM_PEER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <olm/olm.h>
#include <olm/outbound_group_session.h>
#include <openssl/rand.h>

struct olm_peer {
	const char *user, *device;
	OlmAccount *acct;
	OlmSession *olm;                   /* to the bot, or NULL */
	OlmOutboundGroupSession *megolm;
	char curve[64], ed[64], sid[128];
};

static void *
peer_rand(size_t n)
{
	unsigned char *p = malloc(n ? n : 1);

	if (p == NULL || (n && RAND_bytes(p, (int)n) != 1))
		abort();
	return p;
}

static void
peer_init(struct olm_peer *p, const char *user, const char *device)
{
	size_t n;
	void *r;
	char keys[512];
	json_t *j;

	memset(p, 0, sizeof(*p));
	p->user = user;
	p->device = device;
	p->acct = olm_account(malloc(olm_account_size()));
	n = olm_create_account_random_length(p->acct);
	r = peer_rand(n);
	if (olm_create_account(p->acct, r, n) == olm_error())
		abort();
	free(r);
	n = olm_account_identity_keys(p->acct, keys, sizeof(keys) - 1);
	keys[n] = '\0';
	j = json_loads(keys, 0, NULL);
	snprintf(p->curve, sizeof(p->curve), "%s", json_string_value(json_object_get(j, "curve25519")));
	snprintf(p->ed, sizeof(p->ed), "%s", json_string_value(json_object_get(j, "ed25519")));
	json_decref(j);
	p->megolm = olm_outbound_group_session(malloc(olm_outbound_group_session_size()));
	n = olm_init_outbound_group_session_random_length(p->megolm);
	r = peer_rand(n);
	if (olm_init_outbound_group_session(p->megolm, r, n) == olm_error())
		abort();
	free(r);
	n = olm_outbound_group_session_id(p->megolm, (uint8_t *)p->sid, sizeof(p->sid) - 1);
	p->sid[n] = '\0';
}

static void
peer_free(struct olm_peer *p)
{
	if (p->olm) {
		olm_clear_session(p->olm);
		free(p->olm);
	}
	olm_clear_outbound_group_session(p->megolm);
	free(p->megolm);
	olm_clear_account(p->acct);
	free(p->acct);
}

/* Start the Olm session to the bot with one of its one-time keys. */
static void
peer_connect(struct olm_peer *p, const char *bot_curve, const char *bot_otk)
{
	size_t n;
	void *r;

	p->olm = olm_session(malloc(olm_session_size()));
	n = olm_create_outbound_session_random_length(p->olm);
	r = peer_rand(n);
	if (olm_create_outbound_session(p->olm, p->acct, bot_curve, strlen(bot_curve), bot_otk,
					strlen(bot_otk), r, n) == olm_error())
		abort();
	free(r);
}

/* A to-device m.room.encrypted event carrying payload_type/content to the
 * bot; the payload fields may be overridden (NULL: the right value). New. */
static json_t *
peer_to_device(struct olm_peer *p, const char *bot_user, const char *bot_curve,
	       const char *bot_ed, const char *payload_type, json_t *content /* stolen */,
	       const char *sender_override, const char *recipient_ed_override)
{
	json_t *pl = json_pack("{s:s, s:o, s:s, s:s, s:s, s:{s:s}, s:{s:s}}", "type", payload_type,
			       "content", content, "sender", p->user, "sender_device", p->device,
			       "recipient", bot_user, "recipient_keys", "ed25519",
			       recipient_ed_override ? recipient_ed_override : bot_ed, "keys",
			       "ed25519", p->ed);
	char *text = json_dumps(pl, JSON_COMPACT), *out;
	size_t type = olm_encrypt_message_type(p->olm), rl = olm_encrypt_random_length(p->olm), n;
	void *r = peer_rand(rl);
	json_t *ev;

	n = olm_encrypt_message_length(p->olm, strlen(text));
	out = malloc(n + 1);
	if (olm_encrypt(p->olm, text, strlen(text), r, rl, out, n) == olm_error())
		abort();
	out[n] = '\0';
	ev = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:{s:i, s:s}}}}", "type", "m.room.encrypted",
		       "sender", sender_override ? sender_override : p->user, "content", "algorithm",
		       "m.olm.v1.curve25519-aes-sha2", "sender_key", p->curve, "ciphertext", bot_curve,
		       "type", (int)type, "body", out);
	free(r);
	free(out);
	free(text);
	json_decref(pl);
	return ev;
}

/* The m.room_key content for the peer's Megolm session in room. New. */
static json_t *
peer_room_key(struct olm_peer *p, const char *room)
{
	char key[512];
	size_t n = olm_outbound_group_session_key(p->megolm, (uint8_t *)key, sizeof(key) - 1);

	key[n] = '\0';
	return json_pack("{s:s, s:s, s:s, s:s}", "algorithm", "m.megolm.v1.aes-sha2", "room_id", room,
			 "session_id", p->sid, "session_key", key);
}

/* An m.room.encrypted timeline event with body as an m.text message. New. */
static json_t *
peer_room_event(struct olm_peer *p, const char *room, const char *event_id, const char *body)
{
	json_t *pl = json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "m.room.message", "content",
			       "msgtype", "m.text", "body", body, "room_id", room);
	char *text = json_dumps(pl, JSON_COMPACT), *ct;
	size_t n = olm_group_encrypt_message_length(p->megolm, strlen(text));
	json_t *ev;

	ct = malloc(n + 1);
	if (olm_group_encrypt(p->megolm, (uint8_t *)text, strlen(text), (uint8_t *)ct, n) ==
	    olm_error())
		abort();
	ct[n] = '\0';
	ev = json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:s, s:s, s:s, s:s}}", "type",
		       "m.room.encrypted", "event_id", event_id, "sender", p->user,
		       "origin_server_ts", (json_int_t)1795000000000LL, "content", "algorithm",
		       "m.megolm.v1.aes-sha2", "sender_key", p->curve, "ciphertext", ct,
		       "session_id", p->sid, "device_id", p->device);
	free(ct);
	free(text);
	json_decref(pl);
	return ev;
}

#endif
