/* bot/crypto: canonical JSON and signatures, the pickled identity and its
 * key, and the receive path against a libolm peer (olm_peer.h): room keys
 * over Olm with the spec's checks, Megolm decryption, replay refusal,
 * events kept until their key arrives, and Olm encryption back; key
 * requests, their cancellation and forwarded keys; the replay table's
 * pruning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../bot/crypto/internal.h"
#include "olm_peer.h"
#include "crypto_fixture.h"
#include "tap.h"
#include "tlbot/log.h"

#include <openssl/evp.h>

#define BOT "@tlbot:test"
#define ROOM "!r:test"

static char dbpath[256];
static struct tlbot_config cfg;

static void
cleanup_files(void)
{
	char p[300];

	unlink(dbpath);
	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s.pickle-key", dbpath);
	unlink(p);
}

static struct tlbot_crypto *
fresh(struct tlbot_store *st)
{
	snprintf(dbpath, sizeof(dbpath), "/tmp/tlbot-test-crypto-%d.db", (int)getpid());
	cleanup_files();
	tlbot_log_set_level(TLBOT_LOG_ERROR);
	tlbot_config_init(&cfg);
	free(cfg.database);
	cfg.database = strdup(dbpath);
	if (tlbot_store_open(st, dbpath, tlbot_command_schemas()) != 0)
		return NULL;
	return tlbot_crypto_new(&cfg, st, NULL, BOT, "BOTDEV");
}

static void
done(struct tlbot_crypto *c, struct tlbot_store *st)
{
	tlbot_crypto_free(c);
	tlbot_store_close(st);
	tlbot_config_release(&cfg);
	cleanup_files();
}

static long long
one_int(struct tlbot_store *st, const char *sql)
{
	sqlite3_stmt *s;
	long long v = -1;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

static int
decrypt(struct tlbot_crypto *c, struct tlbot_store *st, const json_t *ev, json_t **plain)
{
	int rc;

	tlbot_store_begin(st);
	rc = tlbot_crypto_decrypt(c, st, ROOM, ev, plain);
	tlbot_store_commit(st);
	return rc;
}

TEST(canonical_json)
{
	json_t *j = json_loads("{\"b\":1,\"a\":{\"d\":\"\xc3\xa9\",\"c\":[1,2]},\"e\":\"/\"}", 0, NULL);
	char *t = tlbot_crypto_canonical_json(j);

	CHECK_STR(t, "{\"a\":{\"c\":[1,2],\"d\":\"\xc3\xa9\"},\"b\":1,\"e\":\"/\"}");
	free(t);
	json_decref(j);
}

TEST(identity_and_pickle_key)
{
	struct tlbot_store st;
	struct tlbot_crypto *c = fresh(&st);
	char curve[64], path[300];
	struct stat sb;

	CHECK_OR_RETURN(c != NULL);
	snprintf(curve, sizeof(curve), "%s", tlbot_crypto_curve25519(c));
	CHECK(strlen(curve) == 43);
	CHECK(strlen(tlbot_crypto_ed25519(c)) == 43);
	/* the key was generated beside the database, readable by us only */
	snprintf(path, sizeof(path), "%s.pickle-key", dbpath);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	/* the database holds the account only pickled: no key in the clear */
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_account WHERE pickle LIKE '%'"
			   " || ed25519 || '%'") == 0);
	tlbot_crypto_free(c);
	/* the same key opens it again: the same identity */
	c = tlbot_crypto_new(&cfg, &st, NULL, BOT, "BOTDEV");
	CHECK_OR_RETURN(c != NULL);
	CHECK_STR(tlbot_crypto_curve25519(c), curve);
	tlbot_crypto_free(c);
	/* another key cannot: refused, not replaced */
	cfg.pickle_key = strdup("not the key");
	c = tlbot_crypto_new(&cfg, &st, NULL, BOT, "BOTDEV");
	CHECK(c == NULL);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_account") == 1);
	done(NULL, &st);
}

TEST(sign_and_verify)
{
	struct tlbot_store st;
	struct tlbot_crypto *c = fresh(&st);
	OlmAccount *a;
	json_t *obj;

	CHECK_OR_RETURN(c != NULL);
	a = cr_account_load(c, &st);
	obj = json_pack("{s:s, s:{s:s}, s:{s:i}}", "user_id", BOT, "keys", "k", "v", "unsigned", "x",
			1);
	CHECK(cr_sign_json(c, a, obj) == 0);
	CHECK(cr_verify_json(obj, BOT, "ed25519:BOTDEV", tlbot_crypto_ed25519(c)) == 1);
	/* unsigned is outside the signature; anything else is not */
	json_object_set_new(json_object_get(obj, "unsigned"), "y", json_integer(2));
	CHECK(cr_verify_json(obj, BOT, "ed25519:BOTDEV", tlbot_crypto_ed25519(c)) == 1);
	json_object_set_new(obj, "user_id", json_string("@mallory:test"));
	CHECK(cr_verify_json(obj, BOT, "ed25519:BOTDEV", tlbot_crypto_ed25519(c)) == 0);
	json_decref(obj);
	cr_account_free(a);
	done(c, &st);
}

TEST(receive_room_key_and_decrypt)
{
	struct tlbot_store st;
	struct tlbot_crypto *c = fresh(&st);
	struct olm_peer p;
	json_t *ev, *plain = NULL, *key;

	CHECK_OR_RETURN(c != NULL);
	peer_init(&p, "@alice:test", "ALICEDEV");
	cf_connect(c, &st, &p);
	key = peer_room_key(&p, ROOM); /* from index 0, as a client shares it */
	/* a message whose key comes later is kept */
	ev = peer_room_event(&p, ROOM, "$early", "!ping early");
	CHECK(decrypt(c, &st, ev, &plain) == 1);
	json_decref(ev);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_pending") == 1);
	/* the key arrives over Olm (a pre-key message: new inbound session) */
	CHECK(cf_apply_to_device(c, &st, json_pack("[o]", peer_to_device(&p, BOT,
			tlbot_crypto_curve25519(c), tlbot_crypto_ed25519(c), "m.room_key",
			key, NULL, NULL))) == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_in") == 1);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_olm_sessions") == 1);
	{
		json_t *ready;

		tlbot_store_begin(&st);
		ready = tlbot_crypto_take_ready(c, &st);
		tlbot_store_commit(&st);
		CHECK(json_array_size(ready) == 1);
		const json_t *first = json_object_get(json_array_get(ready, 0), "event");

		CHECK_STR(json_string_value(json_object_get(json_object_get(first, "content"), "body")),
			  "!ping early");
		json_decref(ready);
		CHECK(one_int(&st, "SELECT count(*) FROM crypto_pending") == 0);
	}
	/* a message now: decrypted and shaped as the plaintext event */
	ev = peer_room_event(&p, ROOM, "$one", "!ping");
	CHECK(decrypt(c, &st, ev, &plain) == 0);
	CHECK_STR(json_string_value(json_object_get(plain, "type")), "m.room.message");
	CHECK_STR(json_string_value(json_object_get(json_object_get(plain, "content"), "body")), "!ping");
	CHECK_STR(json_string_value(json_object_get(plain, "event_id")), "$one");
	json_decref(plain);
	plain = NULL;
	/* the same event again (a redelivery) is fine ... */
	CHECK(decrypt(c, &st, ev, &plain) == 0);
	json_decref(plain);
	plain = NULL;
	/* ... the same index under another event id is a replay */
	json_object_set_new(ev, "event_id", json_string("$replayed"));
	CHECK(decrypt(c, &st, ev, &plain) == 2);
	CHECK(plain == NULL);
	/* another sender cannot use alice's session */
	json_object_set_new(ev, "event_id", json_string("$mallory"));
	json_object_set_new(ev, "sender", json_string("@mallory:test"));
	CHECK(decrypt(c, &st, ev, &plain) == 2);
	json_decref(ev);
	/* garbage ciphertext */
	ev = peer_room_event(&p, ROOM, "$garbage", "x");
	json_object_set_new(json_object_get(ev, "content"), "ciphertext", json_string("AAAA!!"));
	CHECK(decrypt(c, &st, ev, &plain) == 2);
	json_decref(ev);
	/* a message encrypted for another room */
	ev = peer_room_event(&p, "!other:test", "$elsewhere", "x");
	CHECK(decrypt(c, &st, ev, &plain) == 2);
	json_decref(ev);
	peer_free(&p);
	done(c, &st);
}

TEST(olm_checks_refuse)
{
	struct tlbot_store st;
	struct tlbot_crypto *c = fresh(&st);
	struct olm_peer p, q;
	char otk[64];

	CHECK_OR_RETURN(c != NULL);
	peer_init(&p, "@alice:test", "ALICEDEV");
	peer_init(&q, "@mallory:test", "MALDEV");
	cf_know_device(&st, &p);
	cf_know_device(&st, &q);
	cf_bot_otk(c, &st, otk, sizeof(otk));
	peer_connect(&p, tlbot_crypto_curve25519(c), otk);
	/* addressed to another device key */
	CHECK(cf_apply_to_device(c, &st, json_pack("[o]", peer_to_device(&p, BOT,
			tlbot_crypto_curve25519(c), tlbot_crypto_ed25519(c), "m.room_key",
			peer_room_key(&p, ROOM), NULL, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))) == 0);
	/* the event claims another sender than the payload */
	CHECK(cf_apply_to_device(c, &st, json_pack("[o]", peer_to_device(&p, BOT,
			tlbot_crypto_curve25519(c), tlbot_crypto_ed25519(c), "m.room_key",
			peer_room_key(&p, ROOM), "@mallory:test", NULL))) == 0);
	/* garbage: not for our key at all */
	CHECK(cf_apply_to_device(c, &st, json_pack("[{s:s, s:s, s:{s:s, s:s, s:{}}}]", "type",
			"m.room.encrypted", "sender", "@alice:test", "content", "algorithm", OLM_ALGO,
			"sender_key", p.curve, "ciphertext")) == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_in") == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_olm_sessions") == 0);
	{
		unsigned long long d, r, e;

		tlbot_crypto_stats(c, &d, &r, &e);
		CHECK(r == 3);
	}
	/* and then the right one still works */
	CHECK(cf_give_room_key(c, &st, &p, ROOM, BOT) == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_in") == 1);
	peer_free(&p);
	peer_free(&q);
	done(c, &st);
}

TEST(olm_encrypt_back)
{
	struct tlbot_store st;
	struct tlbot_crypto *c = fresh(&st);
	struct olm_peer p;
	char plain[4096];
	OlmAccount *a;
	json_t *payload, *enc;
	const json_t *m;
	size_t n;

	CHECK_OR_RETURN(c != NULL);
	peer_init(&p, "@alice:test", "ALICEDEV");
	cf_connect(c, &st, &p);
	cf_apply_to_device(c, &st, json_pack("[o]", peer_to_device(&p, BOT, tlbot_crypto_curve25519(c),
			tlbot_crypto_ed25519(c), "m.dummy", json_object(), NULL, NULL)));
	/* the bot answers over the session the peer started */
	a = cr_account_load(c, &st);
	payload = json_pack("{s:s, s:{}}", "type", "m.dummy", "content");
	tlbot_store_begin(&st);
	enc = cr_olm_encrypt(c, &st, a, p.user, p.device, p.curve, p.ed, NULL, payload);
	tlbot_store_commit(&st);
	CHECK_OR_RETURN(enc != NULL);
	m = json_object_get(json_object_get(enc, "ciphertext"), p.curve);
	CHECK(json_integer_value(json_object_get(m, "type")) == 1);
	{
		char *body = strdup(json_string_value(json_object_get(m, "body")));
		json_t *j;

		n = olm_decrypt(p.olm, 1, body, strlen(body), plain, sizeof(plain) - 1);
		free(body);
		CHECK_OR_RETURN(n != olm_error());
		plain[n] = '\0';
		j = json_loads(plain, 0, NULL);
		CHECK_STR(json_string_value(json_object_get(j, "recipient")), "@alice:test");
		CHECK_STR(json_string_value(json_object_get(json_object_get(j, "recipient_keys"),
							    "ed25519")), p.ed);
		CHECK_STR(json_string_value(json_object_get(json_object_get(j, "keys"), "ed25519")), tlbot_crypto_ed25519(c));
		CHECK_STR(json_string_value(json_object_get(j, "sender")), BOT);
		json_decref(j);
	}
	json_decref(enc);
	json_decref(payload);
	cr_account_free(a);
	peer_free(&p);
	done(c, &st);
}


/* Unpadded (URL-safe or not) base64 into out; returns the byte count. */
static int
unb64(const char *in, unsigned char *out)
{
	char buf[256];
	size_t n = strlen(in), i;
	int len;

	if (n + 4 >= sizeof(buf))
		return -1;
	for (i = 0; i < n; i++)
		buf[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (i % 4)
		buf[i++] = '=';
	buf[i] = '\0';
	len = EVP_DecodeBlock(out, (unsigned char *)buf, (int)i);
	return len - (int)(i - n);
}

TEST(encrypted_attachment)
{
	const char plain[] = "experiment,owner\nE-1,@alice:test\n";
	unsigned char *ct = NULL, key[64], iv[64], hash[64], got[64], back[sizeof(plain)];
	json_t *file = NULL;
	EVP_CIPHER_CTX *cx;
	unsigned int hl = 0;
	int n = 0;

	CHECK_OR_RETURN(tlbot_crypto_encrypt_attachment(plain, sizeof(plain) - 1, &ct, &file) == 0);
	CHECK_STR(json_string_value(json_object_get(file, "v")), "v2");
	CHECK_STR(json_string_value(json_object_get(json_object_get(file, "key"), "alg")), "A256CTR");
	CHECK_STR(json_string_value(json_object_get(json_object_get(file, "key"), "kty")), "oct");
	CHECK(json_is_true(json_object_get(json_object_get(file, "key"), "ext")));
	CHECK(memcmp(ct, plain, sizeof(plain) - 1) != 0);
	CHECK(unb64(json_string_value(json_object_get(json_object_get(file, "key"), "k")), key) == 32);
	CHECK(unb64(json_string_value(json_object_get(file, "iv")), iv) == 16);
	/* the counter half of the IV starts at zero (spec) */
	CHECK(memcmp(iv + 8, "\0\0\0\0\0\0\0\0", 8) == 0);
	CHECK(unb64(json_string_value(json_object_get(json_object_get(file, "hashes"), "sha256")),
		    hash) == 32);
	EVP_Digest(ct, sizeof(plain) - 1, got, &hl, EVP_sha256(), NULL);
	CHECK(hl == 32 && memcmp(got, hash, 32) == 0);
	cx = EVP_CIPHER_CTX_new();
	EVP_DecryptInit_ex(cx, EVP_aes_256_ctr(), NULL, key, iv);
	EVP_DecryptUpdate(cx, back, &n, ct, (int)sizeof(plain) - 1);
	EVP_CIPHER_CTX_free(cx);
	CHECK(n == (int)sizeof(plain) - 1 && memcmp(back, plain, sizeof(plain) - 1) == 0);
	free(ct);
	json_decref(file);
}

/* The send path in a room where only the bot's own device is a member (so
 * no key has to travel): the ciphertext is persisted in the outbox row with
 * the advanced session; preparing the same row again changes nothing; the
 * session rotates after rotation_period_msgs. */
static void
prepare(struct tlbot_crypto *c, struct tlbot_store *st, const char *txn, char *sid, size_t sidlen,
	char **content_out)
{
	struct tlbot_outbox_row row;
	json_t *j;
	sqlite3_stmt *s;

	tlbot_store_outbox_add(st, txn, "send", ROOM, NULL, "m.room.message",
			       "{\"msgtype\":\"m.notice\",\"body\":\"pong\"}", NULL, 0);
	sqlite3_prepare_v2(st->db, "SELECT id FROM outbox WHERE txn_id = ?", -1, &s, NULL);
	sqlite3_bind_text(s, 1, txn, -1, SQLITE_STATIC);
	sqlite3_step(s);
	memset(&row, 0, sizeof(row));
	CHECK(tlbot_store_outbox_get(st, sqlite3_column_int64(s, 0), &row) == 0);
	sqlite3_finalize(s);
	CHECK(tlbot_crypto_prepare_send(c, st, NULL, &row) == 0);
	CHECK_STR(row.event_type, "m.room.encrypted");
	j = json_loads(row.content, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(j, "algorithm")), "m.megolm.v1.aes-sha2");
	CHECK(json_object_get(j, "body") == NULL);
	snprintf(sid, sidlen, "%s", json_string_value(json_object_get(j, "session_id")));
	json_decref(j);
	*content_out = strdup(row.content);
	tlbot_store_outbox_row_release(&row);
}

TEST(send_path_persisted_and_rotated)
{
	struct tlbot_store st;
	struct tlbot_crypto *c = fresh(&st);
	char sid1[128], sid2[128], sid3[128], *c1, *c2, *c3, *again;
	struct tlbot_outbox_row row;

	CHECK_OR_RETURN(c != NULL);
	tlbot_store_state_put(&st, ROOM, "m.room.encryption", "", BOT,
			      "{\"algorithm\":\"m.megolm.v1.aes-sha2\",\"rotation_period_msgs\":2}");
	tlbot_store_state_put(&st, ROOM, "m.room.member", BOT, BOT, "{\"membership\":\"join\"}");
	tlbot_store_exec(&st, "INSERT INTO crypto_members_loaded VALUES ('" ROOM "');"
			      "INSERT INTO crypto_users VALUES ('" BOT "', 0);");
	prepare(c, &st, "t.1", sid1, sizeof(sid1), &c1);
	prepare(c, &st, "t.2", sid2, sizeof(sid2), &c2);
	prepare(c, &st, "t.3", sid3, sizeof(sid3), &c3);
	CHECK_STR(sid1, sid2);
	CHECK(strcmp(sid2, sid3) != 0); /* rotated after 2 messages */
	CHECK(strcmp(c1, c2) != 0);
	/* the stored row is what goes out, and a second preparation (a resend
	 * after a crash) leaves it as it is */
	memset(&row, 0, sizeof(row));
	CHECK(tlbot_store_outbox_get(&st, 1, &row) == 0);
	CHECK_STR(row.content, c1);
	CHECK(tlbot_crypto_prepare_send(c, &st, NULL, &row) == 0);
	again = strdup(row.content);
	CHECK_STR(again, c1);
	tlbot_store_outbox_row_release(&row);
	CHECK(one_int(&st, "SELECT msg_count FROM crypto_megolm_out") == 1);
	/* an unencrypted room is left alone */
	tlbot_store_outbox_add(&st, "t.plain", "send", "!plain:test", NULL, "m.room.message",
			       "{\"body\":\"x\"}", NULL, 0);
	memset(&row, 0, sizeof(row));
	CHECK(tlbot_store_outbox_get(&st, 4, &row) == 0);
	CHECK(tlbot_crypto_prepare_send(c, &st, NULL, &row) == 0);
	CHECK_STR(row.event_type, "m.room.message");
	tlbot_store_outbox_row_release(&row);
	free(c1);
	free(c2);
	free(c3);
	free(again);
	done(c, &st);
}

/* An m.forwarded_room_key content for the peer's Megolm session (a session
 * export from its current index), with a forwarding chain of chain0 (or
 * empty). */
static json_t *
forwarded_key(struct olm_peer *p, const char *room, const char *chain0)
{
	char key[512], exp[1024];
	size_t n = olm_outbound_group_session_key(p->megolm, (uint8_t *)key, sizeof(key) - 1);
	OlmInboundGroupSession *in = malloc(olm_inbound_group_session_size());
	uint32_t first;

	olm_inbound_group_session(in);
	if (olm_init_inbound_group_session(in, (uint8_t *)key, n) == olm_error())
		abort();
	first = olm_inbound_group_session_first_known_index(in);
	n = olm_export_inbound_group_session(in, (uint8_t *)exp, sizeof(exp) - 1, first);
	if (n == olm_error())
		abort();
	exp[n] = '\0';
	olm_clear_inbound_group_session(in);
	free(in);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[s*]}", "algorithm",
			 "m.megolm.v1.aes-sha2", "room_id", room, "sender_key", p->curve,
			 "session_id", p->sid, "session_key", exp, "sender_claimed_ed25519_key",
			 p->ed, "forwarding_curve25519_key_chain", chain0);
}

/* Send the forwarded key content fk (borrowed) from the peer. */
static int
send_forward(struct tlbot_crypto *c, struct tlbot_store *st, struct olm_peer *p, const json_t *fk)
{
	return cf_apply_to_device(c, st, json_pack("[o]", peer_to_device(p, BOT,
			tlbot_crypto_curve25519(c), tlbot_crypto_ed25519(c), "m.forwarded_room_key",
			json_deep_copy(fk), NULL, NULL)));
}

static int
follow_up(struct tlbot_crypto *c, struct tlbot_store *st)
{
	int rc;

	tlbot_store_begin(st);
	rc = cr_megolm_follow_up(c, st);
	tlbot_store_commit(st);
	return rc;
}

TEST(key_request_forward_and_cancel)
{
	struct tlbot_store st;
	struct tlbot_crypto *c = fresh(&st);
	struct olm_peer p;
	unsigned long long dec, ref0, ref, enc;
	json_t *ev, *plain = NULL, *ready, *fk, *fk_via;

	CHECK_OR_RETURN(c != NULL);
	peer_init(&p, "@alice:test", "ALICEDEV");
	cf_connect(c, &st, &p);
	tlbot_crypto_stats(c, &dec, &ref0, &enc);
	fk = forwarded_key(&p, ROOM, NULL); /* from index 0 */
	fk_via = forwarded_key(&p, ROOM, "c2VlbWluZ2x5IGFub3RoZXIgZGV2aWNlJ3Mga2V5");
	/* a forwarded key the bot did not ask for is refused */
	CHECK(send_forward(c, &st, &p, fk) == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_in") == 0);
	ev = peer_room_event(&p, ROOM, "$k", "!ping");
	CHECK(decrypt(c, &st, ev, &plain) == 1);
	json_decref(ev);
	/* nothing due at once; kept for 5 s: a key request, to the sender's
	 * devices and the bot's own */
	CHECK(cr_megolm_follow_up_due(&st) == 0);
	CHECK(send_forward(c, &st, &p, fk) == 0); /* not asked yet */
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_in") == 0);
	sqlite3_exec(st.db, "UPDATE crypto_pending SET created_ms = created_ms - 6000", 0, 0, 0);
	CHECK(cr_megolm_follow_up_due(&st) == 1);
	CHECK(follow_up(c, &st) == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_todevice WHERE type = 'm.room_key_request'"
			   " AND body LIKE '%\"action\":\"request\"%' AND body LIKE '%@alice:test%'"
			   " AND body LIKE '%" BOT "%' AND body LIKE '%\"request_id\":\"$k\"%'") == 1);
	CHECK(one_int(&st, "SELECT requested FROM crypto_pending") == 1);
	CHECK(follow_up(c, &st) == 0); /* asked once */
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_todevice") == 1);
	CHECK(cr_megolm_follow_up_due(&st) == 0);
	/* after 60 s: one line in the room */
	sqlite3_exec(st.db, "UPDATE crypto_pending SET created_ms = created_ms - 60000", 0, 0, 0);
	CHECK(cr_megolm_follow_up_due(&st) == 1);
	CHECK(follow_up(c, &st) == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM outbox WHERE room_id = '" ROOM "'") == 1);
	CHECK(one_int(&st, "SELECT notified FROM crypto_pending") == 1);
	CHECK(cr_megolm_follow_up_due(&st) == 0);
	/* asked for, but forwarded through another device: refused */
	CHECK(send_forward(c, &st, &p, fk_via) == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_in") == 0);
	tlbot_crypto_stats(c, &dec, &ref, &enc);
	CHECK(ref == ref0 + 3);
	/* from the device that made the session: taken, chain recorded */
	CHECK(send_forward(c, &st, &p, fk) == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_in") == 1);
	{
		char *chain = NULL;

		CHECK(cr_get1(&st, &chain, "SELECT forwarding_chain FROM crypto_megolm_in", NULL,
			      NULL, NULL) == 0);
		CHECK(chain && strstr(chain, p.curve) != NULL && chain[0] == '[');
		free(chain);
	}
	/* the kept event is handled; the request is cancelled */
	tlbot_store_begin(&st);
	ready = tlbot_crypto_take_ready(c, &st);
	tlbot_store_commit(&st);
	CHECK(json_array_size(ready) == 1);
	json_decref(ready);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_pending") == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_todevice WHERE type = 'm.room_key_request'"
			   " AND body LIKE '%\"action\":\"request_cancellation\"%'"
			   " AND body LIKE '%\"request_id\":\"$k\"%'") == 1);
	json_decref(fk);
	json_decref(fk_via);
	peer_free(&p);
	done(c, &st);
}

TEST(replay_table_pruned)
{
	struct tlbot_store st;
	struct tlbot_crypto *c = fresh(&st);
	struct olm_peer p;
	json_t *one, *two, *three, *plain = NULL;

	CHECK_OR_RETURN(c != NULL);
	peer_init(&p, "@alice:test", "ALICEDEV");
	cf_connect(c, &st, &p);
	CHECK(cf_give_room_key(c, &st, &p, ROOM, BOT) == 0);
	one = peer_room_event(&p, ROOM, "$one", "a");
	two = peer_room_event(&p, ROOM, "$two", "b");
	CHECK(decrypt(c, &st, one, &plain) == 0);
	json_decref(plain);
	CHECK(decrypt(c, &st, two, &plain) == 0);
	json_decref(plain);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_index") == 2);
	/* nothing is old yet */
	tlbot_store_begin(&st);
	CHECK(cr_megolm_prune_replay(&st, cr_now_ms() - REPLAY_KEEP_MS) == 0);
	tlbot_store_commit(&st);
	/* $one was seen 31 days ago: pruned, and its index stays refused */
	sqlite3_exec(st.db, "UPDATE crypto_megolm_index SET seen_ms = seen_ms - 31 * 86400000"
			    " WHERE event_id = '$one'", 0, 0, 0);
	tlbot_store_begin(&st);
	CHECK(cr_megolm_prune_replay(&st, cr_now_ms() - REPLAY_KEEP_MS) == 1);
	tlbot_store_commit(&st);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_index") == 1);
	CHECK(one_int(&st, "SELECT pruned_upto FROM crypto_megolm_in") == 0);
	json_object_set_new(one, "event_id", json_string("$one-again"));
	CHECK(decrypt(c, &st, one, &plain) == 2);
	CHECK(plain == NULL);
	/* what is kept works as before: redelivery fine, replay refused */
	CHECK(decrypt(c, &st, two, &plain) == 0);
	json_decref(plain);
	json_object_set_new(two, "event_id", json_string("$two-again"));
	CHECK(decrypt(c, &st, two, &plain) == 2);
	/* and new messages of the session still decrypt */
	three = peer_room_event(&p, ROOM, "$three", "c");
	CHECK(decrypt(c, &st, three, &plain) == 0);
	json_decref(plain);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_index") == 2);
	json_decref(one);
	json_decref(two);
	json_decref(three);
	peer_free(&p);
	done(c, &st);
}

/* A plain m.room_key_request to-device event (stolen by the caller). */
static json_t *
key_req(const char *user, const char *dev, const char *rid, const char *action, const char *sid)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:{s:s, s:s, s:s}}}", "type",
			 "m.room_key_request", "sender", user, "content", "action", action,
			 "requesting_device_id", dev, "request_id", rid, "body", "algorithm",
			 "m.megolm.v1.aes-sha2", "room_id", ROOM, "session_id", sid);
}

/* Answer the queued requests as the worker's tick does. */
static int
answer(struct tlbot_crypto *c, struct tlbot_store *st)
{
	return cr_megolm_answer_requests(c, st, NULL);
}

/* The forwarded key queued for peer p (decrypted with its Olm session):
 * the first known index of the session it carries (and, in *sid_out, the
 * session id), or -1 if none is queued. The row is removed. */
static long long
take_forward(struct tlbot_store *st, struct olm_peer *p, char *sid_out, size_t sidlen,
	     const char *ciphertext_to_check)
{
	sqlite3_stmt *s;
	json_t *body = NULL, *m, *j = NULL;
	char plain[8192], *ct;
	long long first = -1;
	size_t n;
	OlmInboundGroupSession *in;

	sqlite3_prepare_v2(st->db, "SELECT id, body FROM crypto_todevice WHERE txn_id LIKE 'fk.%'"
				   " ORDER BY id LIMIT 1", -1, &s, NULL);
	if (sqlite3_step(s) == SQLITE_ROW)
		body = json_loads((const char *)sqlite3_column_text(s, 1), 0, NULL);
	sqlite3_finalize(s);
	if (body == NULL)
		return -1;
	tlbot_store_exec(st, "DELETE FROM crypto_todevice WHERE txn_id LIKE 'fk.%'");
	m = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(body,
		"messages"), p->user), p->device), "ciphertext"), p->curve);
	ct = strdup(json_string_value(json_object_get(m, "body")) ? json_string_value(json_object_get(m, "body")) : "");
	n = olm_decrypt(p->olm, (size_t)json_integer_value(json_object_get(m, "type")), ct,
			strlen(ct), plain, sizeof(plain) - 1);
	free(ct);
	json_decref(body);
	if (n == olm_error())
		return -1;
	plain[n] = '\0';
	j = json_loads(plain, 0, NULL);
	CHECK_STR(json_string_value(json_object_get(j, "type")), "m.forwarded_room_key");
	m = json_object_get(j, "content");
	CHECK(json_array_size(json_object_get(m, "forwarding_curve25519_key_chain")) == 0);
	snprintf(sid_out, sidlen, "%s", json_string_value(json_object_get(m, "session_id")));
	in = malloc(olm_inbound_group_session_size());
	olm_inbound_group_session(in);
	ct = strdup(json_string_value(json_object_get(m, "session_key")));
	if (olm_import_inbound_group_session(in, (uint8_t *)ct, strlen(ct)) != olm_error()) {
		first = olm_inbound_group_session_first_known_index(in);
		if (ciphertext_to_check) {
			char *copy = strdup(ciphertext_to_check);
			uint8_t out[4096];
			uint32_t idx;

			CHECK(olm_group_decrypt(in, (uint8_t *)copy, strlen(copy), out, sizeof(out),
						&idx) != olm_error());
			free(copy);
		}
	}
	free(ct);
	olm_clear_inbound_group_session(in);
	free(in);
	json_decref(j);
	return first;
}

static long long
queued_requests(struct tlbot_store *st)
{
	return one_int(st, "SELECT count(*) FROM crypto_key_requests");
}

TEST(key_requests_answered_by_policy)
{
	struct tlbot_store st;
	struct tlbot_crypto *c = fresh(&st);
	struct olm_peer p, p2, bob;
	char sid[128], sid2[128], sid3[128], got[128], *c1, *c2, *c3;
	json_t *j;

	CHECK_OR_RETURN(c != NULL);
	peer_init(&p, "@alice:test", "ALICEDEV");
	peer_init(&p2, "@alice:test", "ALICE2");
	peer_init(&bob, "@bob:test", "BOBDEV");
	tlbot_store_state_put(&st, ROOM, "m.room.encryption", "", BOT,
			      "{\"algorithm\":\"m.megolm.v1.aes-sha2\"}");
	tlbot_store_state_put(&st, ROOM, "m.room.member", BOT, BOT, "{\"membership\":\"join\"}");
	tlbot_store_state_put(&st, ROOM, "m.room.member", p.user, p.user, "{\"membership\":\"join\"}");
	tlbot_store_exec(&st, "INSERT INTO crypto_members_loaded VALUES ('" ROOM "');"
			      "INSERT INTO crypto_users VALUES ('" BOT "', 0);"
			      "INSERT INTO crypto_users VALUES ('@alice:test', 0);"
			      "INSERT INTO crypto_users VALUES ('@bob:test', 0);");
	cf_connect(c, &st, &p);
	cf_connect(c, &st, &bob);
	cf_apply_to_device(c, &st, json_pack("[o,o]", peer_to_device(&p, BOT, tlbot_crypto_curve25519(c),
			tlbot_crypto_ed25519(c), "m.dummy", json_object(), NULL, NULL),
			peer_to_device(&bob, BOT, tlbot_crypto_curve25519(c),
			tlbot_crypto_ed25519(c), "m.dummy", json_object(), NULL, NULL)));
	/* the bot's session, shared with alice's device from index 0 */
	prepare(c, &st, "t.1", sid, sizeof(sid), &c1);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_megolm_own") == 1);
	CHECK(one_int(&st, "SELECT first_index FROM crypto_megolm_shared WHERE device_id = 'ALICEDEV'") == 0);
	tlbot_store_exec(&st, "DELETE FROM crypto_todevice");
	j = json_loads(c1, 0, NULL);

	/* alice's device asks: answered from index 0, and the export decrypts */
	CHECK(cf_apply_to_device(c, &st, json_pack("[o]", key_req(p.user, p.device, "r1", "request", sid))) == 0);
	CHECK(queued_requests(&st) == 1);
	CHECK(answer(c, &st) == 0);
	CHECK(queued_requests(&st) == 0);
	CHECK(take_forward(&st, &p, got, sizeof(got),
			   json_string_value(json_object_get(j, "ciphertext"))) == 0);
	CHECK_STR(got, sid);
	json_decref(j);

	/* a session the bot did not make (or another room's) is not even queued */
	CHECK(cf_apply_to_device(c, &st, json_pack("[o]", key_req(p.user, p.device, "r2", "request",
								"NOTOURS"))) == 0);
	CHECK(queued_requests(&st) == 0);

	/* a request cancelled before the answer: nothing sent */
	CHECK(cf_apply_to_device(c, &st, json_pack("[o,o]", key_req(p.user, p.device, "r3", "request", sid),
			key_req(p.user, p.device, "r3", "request_cancellation", sid))) == 0);
	CHECK(queued_requests(&st) == 0);
	CHECK(answer(c, &st) == 0);
	CHECK(take_forward(&st, &p, got, sizeof(got), NULL) == -1);

	/* bob is not in the room (and was never given the session): refused */
	CHECK(cf_apply_to_device(c, &st, json_pack("[o]", key_req(bob.user, bob.device, "r4", "request", sid))) == 0);
	CHECK(queued_requests(&st) == 1);
	CHECK(answer(c, &st) == 0);
	CHECK(queued_requests(&st) == 0);
	CHECK(take_forward(&st, &bob, got, sizeof(got), NULL) == -1);
	/* joined but never given the session: refused too */
	tlbot_store_state_put(&st, ROOM, "m.room.member", bob.user, bob.user, "{\"membership\":\"join\"}");
	cf_apply_to_device(c, &st, json_pack("[o]", key_req(bob.user, bob.device, "r5", "request", sid)));
	CHECK(answer(c, &st) == 0);
	CHECK(take_forward(&st, &bob, got, sizeof(got), NULL) == -1);
	tlbot_store_state_put(&st, ROOM, "m.room.member", bob.user, bob.user, "{\"membership\":\"leave\"}");

	/* a device the bot does not know (no /keys/query answer): refused */
	cf_apply_to_device(c, &st, json_pack("[o]", key_req(p.user, "NOSUCH", "r6", "request", sid)));
	CHECK(answer(c, &st) == 0);
	CHECK(queued_requests(&st) == 0);
	CHECK(one_int(&st, "SELECT count(*) FROM crypto_todevice WHERE txn_id LIKE 'fk.%'") == 0);

	/* a second message (index 1); then alice's second device appears and
	 * is given the session with the third (index 2) */
	prepare(c, &st, "t.2", sid2, sizeof(sid2), &c2);
	CHECK_STR(sid2, sid);
	cf_connect(c, &st, &p2);
	cf_apply_to_device(c, &st, json_pack("[o]", peer_to_device(&p2, BOT, tlbot_crypto_curve25519(c),
			tlbot_crypto_ed25519(c), "m.dummy", json_object(), NULL, NULL)));
	prepare(c, &st, "t.3", sid3, sizeof(sid3), &c3);
	CHECK_STR(sid3, sid);
	CHECK(one_int(&st, "SELECT first_index FROM crypto_megolm_shared WHERE device_id = 'ALICE2'") == 2);
	tlbot_store_exec(&st, "DELETE FROM crypto_todevice");
	/* it gets the session from the index it was given, not earlier */
	cf_apply_to_device(c, &st, json_pack("[o]", key_req(p2.user, p2.device, "r7", "request", sid)));
	CHECK(answer(c, &st) == 0);
	CHECK(take_forward(&st, &p2, got, sizeof(got), NULL) == 2);

	/* once alice has left, she gets nothing */
	tlbot_store_state_put(&st, ROOM, "m.room.member", p.user, p.user, "{\"membership\":\"leave\"}");
	cf_apply_to_device(c, &st, json_pack("[o]", key_req(p.user, p.device, "r8", "request", sid)));
	CHECK(answer(c, &st) == 0);
	CHECK(take_forward(&st, &p, got, sizeof(got), NULL) == -1);
	CHECK(queued_requests(&st) == 0);

	free(c1);
	free(c2);
	free(c3);
	peer_free(&p);
	peer_free(&p2);
	peer_free(&bob);
	done(c, &st);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(canonical_json),
	TEST_ENTRY(identity_and_pickle_key),
	TEST_ENTRY(sign_and_verify),
	TEST_ENTRY(receive_room_key_and_decrypt),
	TEST_ENTRY(olm_checks_refuse),
	TEST_ENTRY(olm_encrypt_back),
	TEST_ENTRY(encrypted_attachment),
	TEST_ENTRY(send_path_persisted_and_rotated),
	TEST_ENTRY(key_request_forward_and_cancel),
	TEST_ENTRY(replay_table_pruned),
	TEST_ENTRY(key_requests_answered_by_policy),
	TEST_END,
};

TAP_MAIN(tests)
