/* End-to-end encryption (Olm to-device, Megolm rooms) behind one small
 * interface: the rest of tlbot sees only these functions, so another
 * implementation (e.g. a vodozemac binding) can replace bot/crypto/
 * without touching anything else.
 *
 * State: every key and session lives in the store, pickled (encrypted)
 * with the pickle key, and is loaded, changed and saved inside the
 * caller's SQLite transaction. Nothing mutable is cached in memory, so the
 * receive thread and the worker (each with its own store connection) are
 * serialised by SQLite's write lock, and a kill -9 at any moment rolls a
 * key change back together with everything else of its transaction.
 * Functions that take a store but not an open transaction say so. */
#ifndef TLBOT_CRYPTO_H
#define TLBOT_CRYPTO_H

#include <jansson.h>
#include <stddef.h>

#include "tlbot/command.h"
#include "tlbot/config.h"
#include "tlbot/http.h"
#include "tlbot/store.h"

struct tlbot_crypto;

/* The crypto tables (a store schema component, migrated by the store). */
extern const struct tlbot_schema tlbot_crypto_schema;

/* Load the pickle key (pickle_key, TLBOT_PICKLE_KEY, pickle_key_file, or a
 * key generated into <database>.pickle-key with mode 0600), load or create
 * the Olm account and upload the signed device keys (a failed upload is
 * retried by tlbot_crypto_tick). st must not be in a transaction. Returns
 * a new object (tlbot_crypto_free), or NULL after logging why. */
struct tlbot_crypto *tlbot_crypto_new(const struct tlbot_config *cfg, struct tlbot_store *st,
				      struct tlbot_http *h, const char *user_id,
				      const char *device_id);
void tlbot_crypto_free(struct tlbot_crypto *c);

/* The bot's identity keys (borrowed, unpadded base64). */
const char *tlbot_crypto_curve25519(const struct tlbot_crypto *c);
const char *tlbot_crypto_ed25519(const struct tlbot_crypto *c);

/* Receive side, inside the batch transaction: to-device events (Olm
 * decryption, room keys, forwarded keys the bot asked for), device_lists
 * and one-time key counts. h may be used to fetch the device keys of a
 * sender the bot does not know yet. Returns 0, or -1 on a database error
 * (batch not kept). */
int tlbot_crypto_apply_batch(struct tlbot_crypto *c, struct tlbot_store *st,
			     struct tlbot_http *h, const json_t *batch);

/* Decrypt one m.room.encrypted timeline event of room_id (borrowed).
 * Returns 0 with *plain set to the decrypted event (new reference: the
 * original with the plaintext type and content), 1 when its key has not
 * arrived (the event is kept and comes back from tlbot_crypto_take_ready),
 * 2 when it is refused (bad, replayed or forged; logged once), -1 on a
 * database error. Inside the batch transaction. */
int tlbot_crypto_decrypt(struct tlbot_crypto *c, struct tlbot_store *st, const char *room_id,
			 const json_t *ev, json_t **plain);

/* Kept events whose key has arrived since, decrypted: a new array of
 * {"room_id", "event"} (oldest first; removed from the store), or NULL on a
 * database error. Inside the batch transaction. */
json_t *tlbot_crypto_take_ready(struct tlbot_crypto *c, struct tlbot_store *st);

/* Make an outbox row of kind "send" ready to go out. In an encrypted room
 * this shares the room's outbound Megolm session with every device of the
 * members (querying stale device lists, claiming one-time keys, sending
 * m.room_key over Olm with /sendToDevice), encrypts the content, and
 * persists event type m.room.encrypted and the ciphertext in the row
 * together with the advanced session in ONE transaction, so a resend after
 * a crash sends the same ciphertext and no Megolm index is used twice.
 * Rows already encrypted, rows to unencrypted rooms and other kinds are
 * left as they are. Blocking; st must not be in a transaction. Returns 0
 * (row ready; row->event_type/content updated), or -1 to retry later
 * (logged; resp, when given, holds the failed HTTP answer). */
int tlbot_crypto_prepare_send(struct tlbot_crypto *c, struct tlbot_store *st,
			      struct tlbot_http *h, struct tlbot_outbox_row *row);

/* A "file" row (content: filename, mimetype, caption; data in the blob) to
 * an encrypted room: encrypt the data as an EncryptedFile (AES-256-CTR,
 * SHA-256, JWK), upload the ciphertext, and rewrite the row into a "send"
 * row with the m.file content (persisted; tlbot_crypto_prepare_send then
 * encrypts it like any message). Other rows are left alone. Blocking;
 * outside a transaction. Returns 0 (row->kind may now be "send") or -1
 * (retry later, logged). */
int tlbot_crypto_prepare_file(struct tlbot_crypto *c, struct tlbot_store *st,
			      struct tlbot_http *h, struct tlbot_outbox_row *row);
/* The EncryptedFile of len bytes of data: *out the ciphertext (len bytes,
 * caller frees), *file the JSON object without "url" (new reference).
 * 0 or -1. */
int tlbot_crypto_encrypt_attachment(const void *data, size_t len, unsigned char **out,
				    json_t **file);

/* Worker upkeep, called often (does its work at most once a second):
 * device keys not yet uploaded, one-time and fallback keys below target,
 * the follow-up of undecryptable events (a key request after 5 s, its
 * cancellation when the key came, one line in the room after 60 s), the
 * hourly pruning of the replay table, and pending to-device messages (key
 * shares, key requests). st must not be in a transaction. */
void tlbot_crypto_tick(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h);

/* 1 if room_id has m.room.encryption state in the store, else 0. */
int tlbot_crypto_room_encrypted(struct tlbot_store *st, const char *room_id);

/* Figures: messages decrypted, refused, encrypted. */
void tlbot_crypto_stats(const struct tlbot_crypto *c, unsigned long long *decrypted,
			unsigned long long *refused, unsigned long long *encrypted);

/* Canonical JSON (spec appendix: sorted keys, no spaces, UTF-8): a new
 * string (caller frees) or NULL. */
char *tlbot_crypto_canonical_json(const json_t *v);

#endif
