/* Shared inside bot/crypto/ only: the object, pickling, signing and small
 * SQLite helpers. Nothing outside bot/crypto/ includes this. */
#ifndef TLBOT_CRYPTO_INTERNAL_H
#define TLBOT_CRYPTO_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <olm/inbound_group_session.h>
#include <olm/olm.h>
#include <olm/outbound_group_session.h>
#include <sqlite3.h>

#include "tlbot/crypto.h"

#define OLM_ALGO "m.olm.v1.curve25519-aes-sha2"
#define MEGOLM_ALGO "m.megolm.v1.aes-sha2"
#define KEY_REQUEST_AFTER_MS 5000      /* ask the sender's devices for a missing key */
#define GIVE_UP_AFTER_MS 60000         /* then say so in the room, once */
#define PENDING_KEEP_MS (7LL * 86400 * 1000) /* then forget the event */
#define REPLAY_KEEP_MS (30LL * 86400 * 1000) /* replay-table entries kept this long */

struct tlbot_crypto {
	pthread_mutex_t lock;          /* the counters and flags below */
	char *user_id, *device_id;
	char curve25519[64], ed25519[64];
	unsigned char *pickle_key;
	size_t pickle_key_len;
	int keys_uploaded;             /* device keys accepted by the server */
	int64_t last_tick_ms;
	int64_t last_prune_ms;         /* the replay table, once an hour */
	int64_t retry_at_ms;           /* after a failed upload: back off */
	int failures;                  /* consecutive failed uploads */
	const char *password;          /* for UIA (cross-signing), borrowed from cfg */
	int xsign_done, xsign_warned;
	unsigned long long decrypted, refused, encrypted;
};

/* ---- crypto.c ---- */
int64_t cr_now_ms(void);
int cr_random(void *buf, size_t len);
/* Load the account from the store (new object: cr_account_free), or NULL. */
OlmAccount *cr_account_load(struct tlbot_crypto *c, struct tlbot_store *st);
int cr_account_save(struct tlbot_crypto *c, struct tlbot_store *st, OlmAccount *a);
void cr_account_free(OlmAccount *a);
/* Pickle helpers: a new NUL-terminated pickle string or NULL. */
char *cr_pickle_olm(struct tlbot_crypto *c, OlmSession *s);
OlmSession *cr_unpickle_olm(struct tlbot_crypto *c, const char *pickle);
void cr_olm_free(OlmSession *s);
char *cr_pickle_in(struct tlbot_crypto *c, OlmInboundGroupSession *s);
OlmInboundGroupSession *cr_unpickle_in(struct tlbot_crypto *c, const char *pickle);
void cr_in_free(OlmInboundGroupSession *s);
char *cr_pickle_out(struct tlbot_crypto *c, OlmOutboundGroupSession *s);
OlmOutboundGroupSession *cr_unpickle_out(struct tlbot_crypto *c, const char *pickle);
void cr_out_free(OlmOutboundGroupSession *s);
/* Add the account's signature to obj (signatures.{user}.{ed25519:dev}). */
int cr_sign_json(struct tlbot_crypto *c, OlmAccount *a, json_t *obj);
/* 1 if obj carries a valid ed25519 signature by user's key_id (e.g.
 * "ed25519:DEVICE") made with the public key ed25519, else 0. */
int cr_verify_json(const json_t *obj, const char *user, const char *key_id, const char *ed25519);
/* Unpadded base64 SHA-256 of data with '+' '/' made URL-safe, into out. */
void cr_hash_id(const char *data, char *out, size_t outlen);

/* SQLite: prepare on st->db (NULL logged), bind text (NULL binds NULL). */
sqlite3_stmt *cr_prep(struct tlbot_store *st, const char *sql);
void cr_bind(sqlite3_stmt *s, int i, const char *v);
/* Step a statement that returns no rows and finalize it: 0 or -1 (logged). */
int cr_done(struct tlbot_store *st, sqlite3_stmt *s);
/* A new copy of column i or NULL. */
char *cr_col(sqlite3_stmt *s, int i);
/* One text value from a query with up to 3 text parameters: 0 (new string
 * in *out), 1 no row, -1 error. */
int cr_get1(struct tlbot_store *st, char **out, const char *sql, const char *a, const char *b,
	    const char *c3);

/* ---- devices.c ---- */
/* Make sure the device lists of users (array of ids) are known and fresh
 * (POST /keys/query for stale ones). Outside a transaction. 0 or -1. */
int cr_devices_refresh(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
		       const json_t *users);
/* device_lists.changed/left from a batch (inside its transaction). */
int cr_devices_changed(struct tlbot_store *st, const json_t *device_lists);
/* The ed25519 key of user's device whose curve25519 key is curve: 0 (new
 * string in *ed, *device_id), 1 unknown, -1 error. */
int cr_device_by_curve(struct tlbot_store *st, const char *user, const char *curve, char **ed,
		       char **device_id);
/* The joined (and, with history visibility other than "joined", invited)
 * members of room_id: fetch the member list once per room (GET /members),
 * afterwards the timeline keeps it. New array, or NULL. Outside a tx. */
json_t *cr_room_members(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
			const char *room_id);

/* ---- olm.c ---- */
/* Decrypt and handle one to-device event (inside the batch tx). 0 or -1 (db). */
int cr_olm_handle_to_device(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
			    const json_t *ev);
/* Encrypt payload (borrowed; sender/recipient/keys fields are added) for
 * one device with an existing or new outbound Olm session (otk: a claimed
 * one-time key or NULL). Returns the m.room.encrypted content (new ref) or
 * NULL. Inside a transaction (saves the session). */
json_t *cr_olm_encrypt(struct tlbot_crypto *c, struct tlbot_store *st, OlmAccount *a,
		       const char *user, const char *device, const char *curve, const char *ed,
		       const char *otk, const json_t *payload);
/* 1 if an Olm session with curve25519 key curve exists, 0 if not, -1. */
int cr_olm_have_session(struct tlbot_store *st, const char *curve);
/* Queue a to-device message (its body as /sendToDevice wants it) under
 * txn_id; queued twice is a no-op. Inside a transaction. 0 or -1. */
int cr_todevice_queue(struct tlbot_store *st, const char *txn_id, const char *type,
		      const json_t *messages);
/* Send the queued to-device messages (h NULL: kept queued). Outside a
 * transaction. 0 or -1. */
int cr_todevice_flush(struct tlbot_store *st, struct tlbot_http *h);

/* ---- xsign.c ---- */
/* Set up cross-signing once (keys created and stored, uploaded with UIA,
 * the device signed). Outside a transaction. 0 (done or nothing to do) or
 * -1 (retry later). */
int cr_xsign_tick(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h);

/* ---- megolm.c ---- */
/* Store an inbound Megolm session from an m.room_key (inside the tx). */
int cr_megolm_add_inbound(struct tlbot_crypto *c, struct tlbot_store *st, const char *sender,
			  const char *sender_key, const char *sender_ed, const json_t *content);
/* Store an inbound Megolm session from an m.forwarded_room_key that
 * forwarder's device (fwd_curve, fwd_device, fwd_ed: from the Olm checks)
 * sent, if the bot asked for it and the device may forward it; otherwise
 * log and ignore it (inside the tx). 0 (taken or ignored) or -1 (db). */
int cr_megolm_add_forwarded(struct tlbot_crypto *c, struct tlbot_store *st, const char *forwarder,
			    const char *fwd_curve, const char *fwd_device, const char *fwd_ed,
			    const json_t *content);
/* Key requests and the one line in the room for events kept too long
 * (inside a transaction). 0 or -1. */
int cr_megolm_follow_up(struct tlbot_crypto *c, struct tlbot_store *st);
/* 1 if cr_megolm_follow_up has something to do now, 0 if not, -1 (db).
 * A read, so the worker's tick opens a write transaction only when due. */
int cr_megolm_follow_up_due(struct tlbot_store *st);
/* Forget replay-table entries seen before before_ms; their indexes stay
 * refused (per session, up to the highest pruned). Inside a transaction.
 * The number of entries removed, or -1. */
int cr_megolm_prune_replay(struct tlbot_store *st, int64_t before_ms);

/* An m.room_key_request (plain to-device event ev) for one of the bot's
 * own sessions: queue it (action "request") or drop the queued answer
 * ("request_cancellation"); anything else is ignored. Inside the batch tx.
 * 0 or -1 (db). */
int cr_megolm_key_request(struct tlbot_crypto *c, struct tlbot_store *st, const json_t *ev);
/* Answer the queued key requests that pass the policy (README,
 * encryption): queue an Olm-encrypted m.forwarded_room_key for each, each
 * in its own transaction; refused ones are dropped (logged). Outside a
 * transaction (may claim one-time keys and query devices). 0 or -1. */
int cr_megolm_answer_requests(struct tlbot_crypto *c, struct tlbot_store *st,
			      struct tlbot_http *h);

#endif
