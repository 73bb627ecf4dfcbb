/* The device identity: pickle key, Olm account, signed device keys,
 * one-time and fallback keys; the crypto tables; shared helpers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "internal.h"
#include "tlbot/log.h"

#define PICKLE_KEY_MAX 1024
#define TICK_MS 1000
#define PRUNE_EVERY_MS (3600LL * 1000)
#define OTK_TARGET 50 /* half of what libolm keeps (100), as the spec suggests */

static const char *const crypto_migrations[] = {
	/* 1 */
	"CREATE TABLE crypto_account (id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  pickle TEXT NOT NULL, curve25519 TEXT NOT NULL, ed25519 TEXT NOT NULL);"
	"CREATE TABLE crypto_olm_sessions (session_id TEXT PRIMARY KEY,"
	"  sender_key TEXT NOT NULL, pickle TEXT NOT NULL, last_used_ms INTEGER NOT NULL);"
	"CREATE INDEX crypto_olm_by_key ON crypto_olm_sessions(sender_key, last_used_ms);"
	"CREATE TABLE crypto_megolm_in (room_id TEXT NOT NULL, session_id TEXT NOT NULL,"
	"  sender_key TEXT NOT NULL, sender_user TEXT NOT NULL, sender_ed25519 TEXT,"
	"  pickle TEXT NOT NULL, PRIMARY KEY (room_id, session_id));"
	"CREATE TABLE crypto_megolm_index (session_id TEXT NOT NULL, idx INTEGER NOT NULL,"
	"  event_id TEXT NOT NULL, PRIMARY KEY (session_id, idx));"
	"CREATE TABLE crypto_megolm_out (room_id TEXT PRIMARY KEY, session_id TEXT NOT NULL,"
	"  pickle TEXT NOT NULL, created_ms INTEGER NOT NULL, msg_count INTEGER NOT NULL);"
	"CREATE TABLE crypto_megolm_shared (session_id TEXT NOT NULL, user_id TEXT NOT NULL,"
	"  device_id TEXT NOT NULL, PRIMARY KEY (session_id, user_id, device_id));"
	"CREATE TABLE crypto_users (user_id TEXT PRIMARY KEY, stale INTEGER NOT NULL);"
	"CREATE TABLE crypto_devices (user_id TEXT NOT NULL, device_id TEXT NOT NULL,"
	"  curve25519 TEXT NOT NULL, ed25519 TEXT NOT NULL, PRIMARY KEY (user_id, device_id));"
	"CREATE INDEX crypto_devices_curve ON crypto_devices(curve25519);"
	"CREATE TABLE crypto_todevice (id INTEGER PRIMARY KEY, txn_id TEXT NOT NULL UNIQUE,"
	"  type TEXT NOT NULL, body TEXT NOT NULL);"
	"CREATE TABLE crypto_pending (event_id TEXT PRIMARY KEY, room_id TEXT NOT NULL,"
	"  session_id TEXT NOT NULL, sender TEXT NOT NULL, sender_key TEXT,"
	"  event TEXT NOT NULL, created_ms INTEGER NOT NULL,"
	"  requested INTEGER NOT NULL DEFAULT 0, notified INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX crypto_pending_session ON crypto_pending(room_id, session_id);"
	"CREATE TABLE crypto_members_loaded (room_id TEXT PRIMARY KEY);",
	/* 2: the replay table is pruned by age (seen_ms; rows from before
	 * have 0 and go at the first pruning), and what was pruned of a
	 * session stays refused (pruned_upto: highest pruned index, -1 none);
	 * forwarded keys record their forwarding chain (JSON array of
	 * curve25519 keys; NULL for a key that came as m.room_key) */
	"ALTER TABLE crypto_megolm_index ADD COLUMN seen_ms INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX crypto_megolm_index_seen ON crypto_megolm_index(seen_ms);"
	"ALTER TABLE crypto_megolm_in ADD COLUMN pruned_upto INTEGER NOT NULL DEFAULT -1;"
	"ALTER TABLE crypto_megolm_in ADD COLUMN forwarding_chain TEXT;",
	/* 3: answering other devices' key requests: the index each share
	 * was made from (NULL for shares from before), an inbound copy of
	 * each outbound session the bot makes (from index 0, to forward it),
	 * and the requests waiting for an answer */
	"ALTER TABLE crypto_megolm_shared ADD COLUMN first_index INTEGER;"
	"CREATE TABLE crypto_megolm_own (session_id TEXT PRIMARY KEY, room_id TEXT NOT NULL,"
	"  pickle TEXT NOT NULL);"
	"CREATE TABLE crypto_key_requests (user_id TEXT NOT NULL, device_id TEXT NOT NULL,"
	"  request_id TEXT NOT NULL, room_id TEXT NOT NULL, session_id TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL, PRIMARY KEY (user_id, device_id, request_id));",
	NULL
};

const struct tlbot_schema tlbot_crypto_schema = { "crypto", crypto_migrations };

/* ------------------------------------------------------------ helpers */

int64_t
cr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
cr_random(void *buf, size_t len)
{
	if (len == 0)
		return 0;
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

sqlite3_stmt *
cr_prep(struct tlbot_store *st, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		log_error("crypto store: %s", sqlite3_errmsg(st->db));
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

void
cr_bind(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

int
cr_done(struct tlbot_store *st, sqlite3_stmt *s)
{
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_error("crypto store: %s", sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

char *
cr_col(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? strdup((const char *)t) : NULL;
}

int
cr_get1(struct tlbot_store *st, char **out, const char *sql, const char *a, const char *b,
	const char *c3)
{
	sqlite3_stmt *s = cr_prep(st, sql);
	int rc, n;

	*out = NULL;
	if (s == NULL)
		return -1;
	n = sqlite3_bind_parameter_count(s);
	if (n >= 1)
		cr_bind(s, 1, a);
	if (n >= 2)
		cr_bind(s, 2, b);
	if (n >= 3)
		cr_bind(s, 3, c3);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = cr_col(s, 0);
		sqlite3_finalize(s);
		return *out ? 0 : -1;
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE)
		return 1;
	log_error("crypto store: %s", sqlite3_errmsg(st->db));
	return -1;
}

char *
tlbot_crypto_canonical_json(const json_t *v)
{
	/* jansson writes UTF-8 as is (no JSON_ENSURE_ASCII), sorts keys by
	 * byte value, which for UTF-8 is code point order, and prints
	 * integers without exponent or fraction */
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

void
cr_hash_id(const char *data, char *out, size_t outlen)
{
	OlmUtility *u = malloc(olm_utility_size());
	char h[64];
	size_t n, i;

	out[0] = '\0';
	if (u == NULL)
		return;
	olm_utility(u);
	n = olm_sha256(u, data, strlen(data), h, sizeof(h) - 1);
	olm_clear_utility(u);
	free(u);
	if (n == olm_error() || n >= outlen)
		return;
	for (i = 0; i < n; i++)
		out[i] = h[i] == '+' ? '-' : h[i] == '/' ? '_' : h[i];
	out[n] = '\0';
}

int
cr_sign_json(struct tlbot_crypto *c, OlmAccount *a, json_t *obj)
{
	json_t *copy = json_deep_copy(obj), *sigs, *mine;
	char *text, sig[128], key_id[300];
	size_t n;

	if (copy == NULL)
		return -1;
	json_object_del(copy, "signatures");
	json_object_del(copy, "unsigned");
	text = tlbot_crypto_canonical_json(copy);
	json_decref(copy);
	if (text == NULL)
		return -1;
	n = olm_account_sign(a, text, strlen(text), sig, sizeof(sig) - 1);
	free(text);
	if (n == olm_error())
		return -1;
	sig[n] = '\0';
	sigs = json_object_get(obj, "signatures");
	if (!json_is_object(sigs)) {
		sigs = json_object();
		if (json_object_set_new(obj, "signatures", sigs) != 0)
			return -1;
	}
	mine = json_object_get(sigs, c->user_id);
	if (!json_is_object(mine)) {
		mine = json_object();
		if (json_object_set_new(sigs, c->user_id, mine) != 0)
			return -1;
	}
	snprintf(key_id, sizeof(key_id), "ed25519:%s", c->device_id);
	return json_object_set_new(mine, key_id, json_string(sig));
}

int
cr_verify_json(const json_t *obj, const char *user, const char *key_id, const char *ed25519)
{
	const char *sig = json_string_value(
		json_object_get(json_object_get(json_object_get(obj, "signatures"), user), key_id));
	json_t *copy;
	char *text, *sigcopy;
	OlmUtility *u;
	size_t rc;

	if (sig == NULL || ed25519 == NULL || !json_is_object(obj))
		return 0;
	copy = json_deep_copy(obj);
	if (copy == NULL)
		return 0;
	json_object_del(copy, "signatures");
	json_object_del(copy, "unsigned");
	text = tlbot_crypto_canonical_json(copy);
	json_decref(copy);
	sigcopy = strdup(sig);
	u = malloc(olm_utility_size());
	if (text == NULL || sigcopy == NULL || u == NULL) {
		free(text);
		free(sigcopy);
		free(u);
		return 0;
	}
	olm_utility(u);
	rc = olm_ed25519_verify(u, ed25519, strlen(ed25519), text, strlen(text), sigcopy,
				strlen(sigcopy));
	olm_clear_utility(u);
	free(u);
	free(text);
	free(sigcopy);
	return rc != olm_error();
}

/* Pickling: each object type has the same four calls. */
#define PICKLER(name, T, size_fn, init_fn, len_fn, pickle_fn, unpickle_fn, clear_fn)               \
	char *cr_pickle_##name(struct tlbot_crypto *c, T *s)                                      \
	{                                                                                          \
		size_t n = len_fn(s);                                                              \
		char *buf = malloc(n + 1);                                                         \
		if (buf == NULL)                                                                   \
			return NULL;                                                               \
		if (pickle_fn(s, c->pickle_key, c->pickle_key_len, buf, n) == olm_error()) {       \
			free(buf);                                                                 \
			return NULL;                                                               \
		}                                                                                  \
		buf[n] = '\0';                                                                     \
		return buf;                                                                        \
	}                                                                                          \
	T *cr_unpickle_##name(struct tlbot_crypto *c, const char *pickle)                         \
	{                                                                                          \
		void *mem = malloc(size_fn());                                                     \
		char *copy = pickle ? strdup(pickle) : NULL;                                       \
		T *s;                                                                              \
		if (mem == NULL || copy == NULL) {                                                 \
			free(mem);                                                                 \
			free(copy);                                                                \
			return NULL;                                                               \
		}                                                                                  \
		s = init_fn(mem);                                                                  \
		if (unpickle_fn(s, c->pickle_key, c->pickle_key_len, copy, strlen(copy)) ==        \
		    olm_error()) {                                                                 \
			clear_fn(s);                                                               \
			free(mem);                                                                 \
			free(copy);                                                                \
			return NULL;                                                               \
		}                                                                                  \
		free(copy);                                                                        \
		return s;                                                                          \
	}

PICKLER(olm, OlmSession, olm_session_size, olm_session, olm_pickle_session_length,
	olm_pickle_session, olm_unpickle_session, olm_clear_session)
PICKLER(in, OlmInboundGroupSession, olm_inbound_group_session_size, olm_inbound_group_session,
	olm_pickle_inbound_group_session_length, olm_pickle_inbound_group_session,
	olm_unpickle_inbound_group_session, olm_clear_inbound_group_session)
PICKLER(out, OlmOutboundGroupSession, olm_outbound_group_session_size,
	olm_outbound_group_session, olm_pickle_outbound_group_session_length,
	olm_pickle_outbound_group_session, olm_unpickle_outbound_group_session,
	olm_clear_outbound_group_session)
PICKLER(acct, OlmAccount, olm_account_size, olm_account, olm_pickle_account_length,
	olm_pickle_account, olm_unpickle_account, olm_clear_account)

void
cr_olm_free(OlmSession *s)
{
	if (s) {
		olm_clear_session(s);
		free(s);
	}
}

void
cr_in_free(OlmInboundGroupSession *s)
{
	if (s) {
		olm_clear_inbound_group_session(s);
		free(s);
	}
}

void
cr_out_free(OlmOutboundGroupSession *s)
{
	if (s) {
		olm_clear_outbound_group_session(s);
		free(s);
	}
}

void
cr_account_free(OlmAccount *a)
{
	if (a) {
		olm_clear_account(a);
		free(a);
	}
}

OlmAccount *
cr_account_load(struct tlbot_crypto *c, struct tlbot_store *st)
{
	char *pickle = NULL;
	OlmAccount *a;

	if (cr_get1(st, &pickle, "SELECT pickle FROM crypto_account WHERE id = 1", NULL, NULL,
		    NULL) != 0)
		return NULL;
	a = cr_unpickle_acct(c, pickle);
	free(pickle);
	return a;
}

int
cr_account_save(struct tlbot_crypto *c, struct tlbot_store *st, OlmAccount *a)
{
	char *pickle = cr_pickle_acct(c, a);
	sqlite3_stmt *s;

	if (pickle == NULL)
		return -1;
	s = cr_prep(st, "INSERT INTO crypto_account(id, pickle, curve25519, ed25519)"
			" VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET pickle = excluded.pickle");
	if (s) {
		cr_bind(s, 1, pickle);
		cr_bind(s, 2, c->curve25519);
		cr_bind(s, 3, c->ed25519);
	}
	free(pickle);
	return cr_done(st, s);
}

/* ------------------------------------------------------------ pickle key */

/* Read the key from a file (trailing whitespace dropped). 0 or -1. */
static int
read_key_file(struct tlbot_crypto *c, const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[PICKLE_KEY_MAX + 2];
	size_t n;

	if (f == NULL) {
		log_error("cannot read pickle_key_file %s: %s", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	if (n == 0 || n > PICKLE_KEY_MAX) {
		log_error("pickle_key_file %s: %s", path,
			  n == 0 ? "empty" : "longer than 1024 bytes");
		return -1;
	}
	c->pickle_key = malloc(n);
	if (c->pickle_key == NULL)
		return -1;
	memcpy(c->pickle_key, buf, n);
	c->pickle_key_len = n;
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* The pickle key: configured value, configured file, or the file beside
 * the database (generated on first start). 0 or -1 (logged). */
static int
load_pickle_key(struct tlbot_crypto *c, const struct tlbot_config *cfg)
{
	char path[4200];
	struct stat sb;

	if (cfg->pickle_key && cfg->pickle_key[0]) {
		c->pickle_key_len = strlen(cfg->pickle_key);
		c->pickle_key = malloc(c->pickle_key_len);
		if (c->pickle_key == NULL)
			return -1;
		memcpy(c->pickle_key, cfg->pickle_key, c->pickle_key_len);
		return 0;
	}
	if (cfg->pickle_key_file)
		return read_key_file(c, cfg->pickle_key_file);
	if ((size_t)snprintf(path, sizeof(path), "%s.pickle-key", cfg->database) >= sizeof(path))
		return -1;
	if (stat(path, &sb) != 0) {
		unsigned char raw[32];
		char b64[64];
		int fd, n;

		if (cr_random(raw, sizeof(raw)) != 0)
			return -1;
		n = EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
		explicit_bzero(raw, sizeof(raw));
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0) {
			log_error("cannot create the pickle key file %s: %s", path, strerror(errno));
			return -1;
		}
		b64[n++] = '\n';
		if (write(fd, b64, (size_t)n) != n || fsync(fd) != 0) {
			log_error("cannot write the pickle key file %s: %s", path, strerror(errno));
			close(fd);
			unlink(path);
			return -1;
		}
		close(fd);
		explicit_bzero(b64, sizeof(b64));
		log_info("encryption: generated the key that protects the encryption keys in the "
			 "database into %s (mode 0600); keep it with the database, or set "
			 "pickle_key_file / TLBOT_PICKLE_KEY (see README, Encryption)",
			 path);
	}
	return read_key_file(c, path);
}

/* ------------------------------------------------------------ account */

static int
read_identity(struct tlbot_crypto *c, OlmAccount *a)
{
	size_t n = olm_account_identity_keys_length(a);
	char *buf = malloc(n + 1);
	json_t *j;
	const char *cu, *ed;
	int rc = -1;

	if (buf == NULL)
		return -1;
	if (olm_account_identity_keys(a, buf, n) == olm_error()) {
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	j = json_loads(buf, 0, NULL);
	free(buf);
	cu = json_string_value(json_object_get(j, "curve25519"));
	ed = json_string_value(json_object_get(j, "ed25519"));
	if (cu && ed && strlen(cu) < sizeof(c->curve25519) && strlen(ed) < sizeof(c->ed25519)) {
		snprintf(c->curve25519, sizeof(c->curve25519), "%s", cu);
		snprintf(c->ed25519, sizeof(c->ed25519), "%s", ed);
		rc = 0;
	}
	json_decref(j);
	return rc;
}

/* Load the account, or create and store it on first start. 0 or -1. */
static int
setup_account(struct tlbot_crypto *c, struct tlbot_store *st)
{
	OlmAccount *a = NULL;
	char *have = NULL, *dev = NULL;
	int r = cr_get1(st, &have, "SELECT pickle FROM crypto_account WHERE id = 1", NULL, NULL, NULL);
	void *rnd = NULL;
	size_t rl;

	free(have);
	if (r < 0)
		return -1;
	if (r == 0) {
		a = cr_account_load(c, st);
		if (a == NULL) {
			log_error("encryption: cannot unpickle the Olm account: the pickle key is not "
				  "the one it was stored with (pickle_key_file / TLBOT_PICKLE_KEY)");
			return -1;
		}
		r = read_identity(c, a);
		cr_account_free(a);
		/* the device the keys belong to: a new login gets a new device
		 * and the keys must start afresh */
		if (r == 0 && cr_get1(st, &dev, "SELECT value FROM kv WHERE key = 'crypto_device'",
				      NULL, NULL, NULL) == 0 &&
		    strcmp(dev, c->device_id) != 0) {
			log_warnx("encryption: the device changed (%s -> %s): creating new keys", dev,
				  c->device_id);
			free(dev);
			if (tlbot_store_exec(st, "DELETE FROM crypto_account;"
						 "DELETE FROM crypto_olm_sessions;"
						 "DELETE FROM crypto_megolm_out;"
						 "DELETE FROM crypto_megolm_shared;"
						 "DELETE FROM crypto_megolm_own;"
						 "DELETE FROM crypto_key_requests;"
						 "DELETE FROM crypto_todevice;") != 0)
				return -1;
			return setup_account(c, st);
		}
		free(dev);
		return r;
	}
	a = malloc(olm_account_size());
	if (a == NULL)
		return -1;
	olm_account(a);
	rl = olm_create_account_random_length(a);
	rnd = malloc(rl);
	if (rnd == NULL || cr_random(rnd, rl) != 0 ||
	    olm_create_account(a, rnd, rl) == olm_error() || read_identity(c, a) != 0) {
		free(rnd);
		cr_account_free(a);
		return -1;
	}
	explicit_bzero(rnd, rl);
	free(rnd);
	r = -1;
	if (tlbot_store_begin(st) == 0) {
		if (cr_account_save(c, st, a) == 0 &&
		    tlbot_store_kv_set(st, "crypto_device", c->device_id) == 0 &&
		    tlbot_store_commit(st) == 0)
			r = 0;
		else
			tlbot_store_rollback(st);
	}
	cr_account_free(a);
	if (r == 0)
		log_info("encryption: created the Olm account of device %s (curve25519 %s)",
			 c->device_id, c->curve25519);
	return r;
}

/* Upload the signed device keys. 0 or -1. */
static int
upload_device_keys(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h)
{
	OlmAccount *a = cr_account_load(c, st);
	struct tlbot_http_resp r;
	json_t *dk, *body = NULL;
	char kc[300], ke[300], *text = NULL;
	int rc = -1;

	if (a == NULL)
		return -1;
	snprintf(kc, sizeof(kc), "curve25519:%s", c->device_id);
	snprintf(ke, sizeof(ke), "ed25519:%s", c->device_id);
	dk = json_pack("{s:s, s:s, s:[s,s], s:{s:s, s:s}}", "user_id", c->user_id, "device_id",
		       c->device_id, "algorithms", OLM_ALGO, MEGOLM_ALGO, "keys", kc, c->curve25519,
		       ke, c->ed25519);
	if (dk && cr_sign_json(c, a, dk) == 0)
		body = json_pack("{s:O}", "device_keys", dk);
	json_decref(dk);
	cr_account_free(a);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (text == NULL)
		return -1;
	tlbot_http_resp_init(&r);
	if (tlbot_http_request(h, "POST", "/_matrix/client/v3/keys/upload", text, strlen(text), NULL,
			       30000, &r) == TLBOT_OK) {
		c->keys_uploaded = 1;
		rc = 0;
		log_info("encryption: device keys of %s uploaded", c->device_id);
	} else if (c->failures == 0) {
		log_warnx("encryption: uploading the device keys failed: %s %s (HTTP %ld); retrying",
			  r.errcode, r.error, r.status);
	} else {
		log_debug("encryption: uploading the device keys failed again: %s %s (HTTP %ld)",
			  r.errcode, r.error, r.status);
	}
	tlbot_http_resp_release(&r);
	free(text);
	return rc;
}

/* Number of entries of olm_account_one_time_keys-like JSON's curve25519. */
static json_t *
unpublished(OlmAccount *a, int fallback)
{
	size_t n = fallback ? olm_account_unpublished_fallback_key_length(a)
			    : olm_account_one_time_keys_length(a);
	char *buf = malloc(n + 1);
	json_t *j;

	if (buf == NULL)
		return NULL;
	if ((fallback ? olm_account_unpublished_fallback_key(a, buf, n)
		      : olm_account_one_time_keys(a, buf, n)) == olm_error()) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	j = json_loads(buf, 0, NULL);
	free(buf);
	return j;
}

/* Generate n one-time keys (n > 0) or, with n == 0, a fallback key into
 * the account. 0 or -1. */
static int
generate_keys(OlmAccount *a, size_t n)
{
	size_t rl = n ? olm_account_generate_one_time_keys_random_length(a, n)
		      : olm_account_generate_fallback_key_random_length(a);
	void *rnd = malloc(rl ? rl : 1);
	int rc = -1;

	if (rnd != NULL && cr_random(rnd, rl) == 0 &&
	    (n ? olm_account_generate_one_time_keys(a, n, rnd, rl)
	       : olm_account_generate_fallback_key(a, rnd, rl)) != olm_error())
		rc = 0;
	if (rnd)
		explicit_bzero(rnd, rl ? rl : 1);
	free(rnd);
	return rc;
}

/* First transaction of the top-up: generate what is missing (unless keys
 * generated earlier are still unpublished) and save the account. Returns
 * 0 with the account in *out (caller frees), 1 when there is nothing to
 * do, -1 on failure. */
static int
prepare_keys(struct tlbot_crypto *c, struct tlbot_store *st, long have, int need_fb,
	     OlmAccount **out)
{
	OlmAccount *a;
	json_t *otk, *fb;
	size_t target, n_otk, n_fb;
	int rc = -1;

	*out = NULL;
	if (tlbot_store_begin(st) != 0)
		return -1;
	a = cr_account_load(c, st);
	if (a == NULL) {
		tlbot_store_rollback(st);
		return -1;
	}
	target = olm_account_max_number_of_one_time_keys(a) / 2;
	if (target > OTK_TARGET)
		target = OTK_TARGET;
	otk = unpublished(a, 0);
	fb = unpublished(a, 1);
	n_otk = json_object_size(json_object_get(otk, "curve25519"));
	n_fb = json_object_size(json_object_get(fb, "curve25519"));
	json_decref(otk);
	json_decref(fb);
	if (n_otk == 0 && n_fb == 0 && (size_t)have >= target && !need_fb)
		rc = 1;
	else if ((n_otk == 0 && (size_t)have < target &&
		  generate_keys(a, target - (size_t)have) != 0) ||
		 (n_fb == 0 && need_fb && generate_keys(a, 0) != 0))
		rc = -1;
	else if (cr_account_save(c, st, a) == 0 && tlbot_store_commit(st) == 0)
		rc = 0;
	if (rc != 0) {
		tlbot_store_rollback(st);
		cr_account_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

/* Sign each unpublished key of kind (0 one-time, 1 fallback) of the
 * account into obj as "signed_curve25519:<id>". 0 or -1. */
static int
sign_unpublished(struct tlbot_crypto *c, OlmAccount *a, int fallback, json_t *obj)
{
	json_t *keys = unpublished(a, fallback), *v;
	const char *id;
	int rc = keys ? 0 : -1;

	json_object_foreach(json_object_get(keys, "curve25519"), id, v) {
		char kid[128];
		json_t *k = fallback ? json_pack("{s:O, s:b}", "key", v, "fallback", 1)
				     : json_pack("{s:O}", "key", v);

		snprintf(kid, sizeof(kid), "signed_curve25519:%s", id);
		if (k == NULL || cr_sign_json(c, a, k) != 0 || json_object_set_new(obj, kid, k) != 0) {
			rc = -1;
			break;
		}
	}
	json_decref(keys);
	return rc;
}

/* Second transaction, after the upload: mark the keys published and
 * remember the server's count. 0 or -1. */
static int
mark_published(struct tlbot_crypto *c, struct tlbot_store *st, const json_t *answer,
	       const json_t *body)
{
	json_int_t cnt = json_integer_value(
		json_object_get(json_object_get(answer, "one_time_key_counts"), "signed_curve25519"));
	char num[32];
	OlmAccount *a;
	int rc = -1;

	if (tlbot_store_begin(st) != 0)
		return -1;
	snprintf(num, sizeof(num), "%lld", (long long)cnt);
	a = cr_account_load(c, st);
	if (a && olm_account_mark_keys_as_published(a) != olm_error() &&
	    cr_account_save(c, st, a) == 0 && tlbot_store_kv_set(st, "crypto_otk_count", num) == 0 &&
	    tlbot_store_kv_set(st, "crypto_fallback", "unused") == 0 &&
	    tlbot_store_commit(st) == 0) {
		rc = 0;
		log_debug("encryption: %zu one-time keys and %zu fallback keys uploaded "
			  "(server has %lld)",
			  json_object_size(json_object_get(body, "one_time_keys")),
			  json_object_size(json_object_get(body, "fallback_keys")), (long long)cnt);
	} else {
		tlbot_store_rollback(st);
	}
	cr_account_free(a);
	return rc;
}

/* Generate what is missing (in one transaction), upload every unpublished
 * key, then mark them published (second transaction). A crash in between
 * leaves them unpublished: the next tick uploads the same keys again. */
static int
top_up_keys(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h)
{
	char *count_s = NULL, *fb_s = NULL, *text = NULL;
	long have;
	int need_fb, rc;
	OlmAccount *a;
	json_t *body;
	struct tlbot_http_resp r;

	if (cr_get1(st, &count_s, "SELECT value FROM kv WHERE key = 'crypto_otk_count'", NULL, NULL,
		    NULL) < 0 ||
	    cr_get1(st, &fb_s, "SELECT value FROM kv WHERE key = 'crypto_fallback'", NULL, NULL,
		    NULL) < 0) {
		free(count_s);
		return -1;
	}
	have = count_s ? strtol(count_s, NULL, 10) : 0;
	need_fb = fb_s == NULL || strcmp(fb_s, "unused") != 0;
	free(count_s);
	free(fb_s);
	if (have >= OTK_TARGET && !need_fb)
		return 0; /* the common case: no write transaction each second */
	rc = prepare_keys(c, st, have, need_fb, &a);
	if (rc != 0)
		return rc > 0 ? 0 : -1;
	body = json_pack("{s:{}, s:{}}", "one_time_keys", "fallback_keys");
	if (body == NULL || sign_unpublished(c, a, 0, json_object_get(body, "one_time_keys")) != 0 ||
	    sign_unpublished(c, a, 1, json_object_get(body, "fallback_keys")) != 0 ||
	    (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		json_decref(body);
		cr_account_free(a);
		return -1;
	}
	cr_account_free(a);
	rc = -1;
	tlbot_http_resp_init(&r);
	if (tlbot_http_request(h, "POST", "/_matrix/client/v3/keys/upload", text, strlen(text), NULL,
			       30000, &r) == TLBOT_OK)
		rc = mark_published(c, st, r.json, body);
	else if (c->failures == 0)
		log_warnx("encryption: uploading one-time keys failed: %s %s (HTTP %ld); retrying",
			  r.errcode, r.error, r.status);
	tlbot_http_resp_release(&r);
	free(text);
	json_decref(body);
	return rc;
}

/* ------------------------------------------------------------ interface */

struct tlbot_crypto *
tlbot_crypto_new(const struct tlbot_config *cfg, struct tlbot_store *st, struct tlbot_http *h,
		 const char *user_id, const char *device_id)
{
	struct tlbot_crypto *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	c->user_id = strdup(user_id);
	c->device_id = strdup(device_id ? device_id : "");
	if (c->user_id == NULL || c->device_id == NULL || device_id == NULL || !device_id[0]) {
		log_error("encryption: the bot has no device id (needed for encryption)");
		goto fail;
	}
	c->password = cfg->password;
	if (load_pickle_key(c, cfg) != 0 || setup_account(c, st) != 0)
		goto fail;
	if (h)
		upload_device_keys(c, st, h);
	if (h && c->keys_uploaded)
		top_up_keys(c, st, h);
	return c;
fail:
	tlbot_crypto_free(c);
	return NULL;
}

void
tlbot_crypto_free(struct tlbot_crypto *c)
{
	if (c == NULL)
		return;
	if (c->pickle_key) {
		explicit_bzero(c->pickle_key, c->pickle_key_len);
		free(c->pickle_key);
	}
	free(c->user_id);
	free(c->device_id);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const char *
tlbot_crypto_curve25519(const struct tlbot_crypto *c)
{
	return c->curve25519;
}

const char *
tlbot_crypto_ed25519(const struct tlbot_crypto *c)
{
	return c->ed25519;
}

void
tlbot_crypto_stats(const struct tlbot_crypto *c, unsigned long long *decrypted,
		   unsigned long long *refused, unsigned long long *encrypted)
{
	pthread_mutex_lock((pthread_mutex_t *)&c->lock);
	*decrypted = c->decrypted;
	*refused = c->refused;
	*encrypted = c->encrypted;
	pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
}

int
tlbot_crypto_room_encrypted(struct tlbot_store *st, const char *room_id)
{
	char *content = NULL;
	int r = tlbot_store_state_get(st, room_id, "m.room.encryption", "", &content);

	free(content);
	return r == 0;
}

int
tlbot_crypto_apply_batch(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
			 const json_t *batch)
{
	const json_t *events = json_object_get(json_object_get(batch, "to_device"), "events");
	const json_t *counts = json_object_get(batch, "device_one_time_keys_count");
	const json_t *fb = json_object_get(batch, "device_unused_fallback_key_types");
	size_t i;

	if (cr_devices_changed(st, json_object_get(batch, "device_lists")) != 0)
		return -1;
	if (json_is_object(counts)) {
		char num[32];

		snprintf(num, sizeof(num), "%lld",
			 (long long)json_integer_value(json_object_get(counts, "signed_curve25519")));
		if (tlbot_store_kv_set(st, "crypto_otk_count", num) != 0)
			return -1;
	}
	if (json_is_array(fb)) {
		int unused = 0;

		for (i = 0; i < json_array_size(fb); i++) {
			const char *t = json_string_value(json_array_get(fb, i));

			if (t && strcmp(t, "signed_curve25519") == 0)
				unused = 1;
		}
		if (tlbot_store_kv_set(st, "crypto_fallback", unused ? "unused" : "used") != 0)
			return -1;
	}
	for (i = 0; i < json_array_size(events); i++)
		if (cr_olm_handle_to_device(c, st, h, json_array_get(events, i)) != 0)
			return -1;
	return 0;
}

/* The replay table keeps REPLAY_KEEP_MS of message indexes. */
static void
prune_tick(struct tlbot_store *st, int64_t now)
{
	int n;

	if (tlbot_store_begin(st) != 0)
		return;
	n = cr_megolm_prune_replay(st, now - REPLAY_KEEP_MS);
	if (n < 0 || tlbot_store_commit(st) != 0) {
		tlbot_store_rollback(st);
		log_warnx("encryption: pruning the replay table failed; retrying in an hour");
	} else if (n > 0) {
		log_info("encryption: housekeeping: forgot %d replay-table entries older than %lld "
			 "days",
			 n, (long long)(REPLAY_KEEP_MS / 86400000));
	}
}

/* Key requests and the room notice for events kept without their key, on
 * the worker's clock (each tick) rather than after sync batches, so a
 * quiet room gets them on time too. Its own transaction, opened only when
 * something is due. */
static void
follow_up_tick(struct tlbot_crypto *c, struct tlbot_store *st)
{
	if (cr_megolm_follow_up_due(st) != 1 || tlbot_store_begin(st) != 0)
		return;
	if (cr_megolm_follow_up(c, st) != 0 || tlbot_store_commit(st) != 0) {
		tlbot_store_rollback(st);
		log_warnx("encryption: following up undecryptable events failed; retrying");
	}
}

/* Other devices' key requests for the bot's sessions, queued by the
 * batch: answered (or refused) on the worker's clock. */
static void
answer_tick(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h)
{
	char *any = NULL;

	if (cr_get1(st, &any, "SELECT request_id FROM crypto_key_requests LIMIT 1", NULL, NULL,
		    NULL) != 0)
		return;
	free(any);
	if (cr_megolm_answer_requests(c, st, h) != 0)
		log_warnx("encryption: answering key requests failed; retrying");
}

void
tlbot_crypto_tick(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h)
{
	int64_t now = cr_now_ms();

	if (now - c->last_tick_ms < TICK_MS)
		return;
	c->last_tick_ms = now;
	if (now >= c->retry_at_ms) {
		if ((!c->keys_uploaded && upload_device_keys(c, st, h) != 0) ||
		    top_up_keys(c, st, h) != 0 || cr_xsign_tick(c, st, h) != 0) {
			/* a homeserver without the keys API, or in trouble: do not
			 * ask every second */
			c->retry_at_ms = now + tlbot_backoff_ms(c->failures++, 2000, 600000);
		} else {
			c->failures = 0;
		}
	}
	follow_up_tick(c, st);
	answer_tick(c, st, h);
	if (now - c->last_prune_ms >= PRUNE_EVERY_MS) {
		c->last_prune_ms = now;
		prune_tick(st, now);
	}
	cr_todevice_flush(st, h);
}
