/* Cross-signing: the bot's master, self-signing and user-signing keys
 * (libolm PkSigning), uploaded with /keys/device_signing/upload through
 * user-interactive auth (m.login.password), and the bot's own device
 * signed by the self-signing key (/keys/signatures/upload), so clients
 * that only trust cross-signed devices (MSC4153) share their keys with it.
 *
 * The three private seeds are created and stored before anything is
 * uploaded (a crash in between uploads the same keys again), sealed with
 * AES-256-GCM (OpenSSL) under a key derived from the pickle key: libolm has
 * no pickle for PkSigning. */
#include <stdlib.h>
#include <string.h>

#include <olm/pk.h>
#include <openssl/evp.h>

#include "internal.h"
#include "tlbot/log.h"

#define SEED_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16

static const char *const usages[3] = { "master", "self_signing", "user_signing" };

/* The sealing key: SHA-256 over a label and the pickle key. */
static int
seal_key(struct tlbot_crypto *c, unsigned char key[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
		 EVP_DigestUpdate(md, "tlbot cross-signing seeds v1", 28) == 1 &&
		 EVP_DigestUpdate(md, c->pickle_key, c->pickle_key_len) == 1 &&
		 EVP_DigestFinal_ex(md, key, &n) == 1 && n == 32;

	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* Seal the seeds: base64(nonce | ciphertext | tag), new string or NULL. */
static char *
seal(struct tlbot_crypto *c, const unsigned char *plain, int len)
{
	unsigned char key[32], buf[NONCE_LEN + 3 * SEED_LEN + TAG_LEN];
	EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
	char *out = NULL;
	int n = 0, f = 0;

	if (cx && len == 3 * SEED_LEN && seal_key(c, key) == 0 && cr_random(buf, NONCE_LEN) == 0 &&
	    EVP_EncryptInit_ex(cx, EVP_aes_256_gcm(), NULL, key, buf) == 1 &&
	    EVP_EncryptUpdate(cx, buf + NONCE_LEN, &n, plain, len) == 1 &&
	    EVP_EncryptFinal_ex(cx, buf + NONCE_LEN + n, &f) == 1 &&
	    EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + NONCE_LEN + len) == 1) {
		out = malloc(4 * ((sizeof(buf) + 2) / 3) + 1);
		if (out)
			EVP_EncodeBlock((unsigned char *)out, buf, sizeof(buf));
	}
	explicit_bzero(key, sizeof(key));
	EVP_CIPHER_CTX_free(cx);
	return out;
}

/* Open what seal made into plain (3 * SEED_LEN bytes). 0 or -1. */
static int
unseal(struct tlbot_crypto *c, const char *b64, unsigned char *plain)
{
	unsigned char key[32], buf[NONCE_LEN + 3 * SEED_LEN + TAG_LEN + 3];
	EVP_CIPHER_CTX *cx;
	size_t blen = strlen(b64);
	int n = 0, f = 0, rc = -1;

	if (blen != 4 * ((NONCE_LEN + 3 * SEED_LEN + TAG_LEN + 2) / 3) ||
	    EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)blen) < 0)
		return -1;
	cx = EVP_CIPHER_CTX_new();
	if (cx && seal_key(c, key) == 0 &&
	    EVP_DecryptInit_ex(cx, EVP_aes_256_gcm(), NULL, key, buf) == 1 &&
	    EVP_DecryptUpdate(cx, plain, &n, buf + NONCE_LEN, 3 * SEED_LEN) == 1 &&
	    EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
				buf + NONCE_LEN + 3 * SEED_LEN) == 1 &&
	    EVP_DecryptFinal_ex(cx, plain + n, &f) == 1)
		rc = 0;
	explicit_bzero(key, sizeof(key));
	EVP_CIPHER_CTX_free(cx);
	return rc;
}

/* The signing objects of the three seeds, and their public keys. */
struct xkeys {
	OlmPkSigning *k[3];
	char pub[3][64];
};

static void
xkeys_free(struct xkeys *x)
{
	int i;

	for (i = 0; i < 3; i++)
		if (x->k[i]) {
			olm_clear_pk_signing(x->k[i]);
			free(x->k[i]);
			x->k[i] = NULL;
		}
}

static int
xkeys_from(struct xkeys *x, const unsigned char *seeds)
{
	int i;

	memset(x, 0, sizeof(*x));
	for (i = 0; i < 3; i++) {
		size_t pl = olm_pk_signing_public_key_length();

		x->k[i] = malloc(olm_pk_signing_size());
		if (x->k[i] == NULL || pl >= sizeof(x->pub[i]))
			goto fail;
		olm_pk_signing(x->k[i]);
		if (olm_pk_signing_key_from_seed(x->k[i], x->pub[i], pl, seeds + i * SEED_LEN,
						 SEED_LEN) == olm_error())
			goto fail;
		x->pub[i][pl] = '\0';
	}
	return 0;
fail:
	xkeys_free(x);
	return -1;
}

/* Load the keys, creating and storing them on first use. 0 or -1. */
static int
load_keys(struct tlbot_crypto *c, struct tlbot_store *st, struct xkeys *x)
{
	unsigned char seeds[3 * SEED_LEN];
	char *sealed = NULL;
	int r = cr_get1(st, &sealed, "SELECT value FROM kv WHERE key = 'crypto_xsign_seeds'", NULL,
			NULL, NULL);

	if (r < 0)
		return -1;
	if (r == 0) {
		r = unseal(c, sealed, seeds);
		free(sealed);
		if (r != 0) {
			log_error("encryption: cannot open the stored cross-signing keys (another "
				  "pickle key?)");
			return -1;
		}
	} else {
		if (cr_random(seeds, sizeof(seeds)) != 0)
			return -1;
		sealed = seal(c, seeds, sizeof(seeds));
		if (sealed == NULL || tlbot_store_kv_set(st, "crypto_xsign_seeds", sealed) != 0) {
			free(sealed);
			explicit_bzero(seeds, sizeof(seeds));
			return -1;
		}
		free(sealed);
	}
	r = xkeys_from(x, seeds);
	explicit_bzero(seeds, sizeof(seeds));
	return r;
}

/* Sign obj (without signatures/unsigned) with k as key id ed25519:pub. */
static int
pk_sign_json(struct tlbot_crypto *c, OlmPkSigning *k, const char *pub, json_t *obj)
{
	json_t *copy = json_deep_copy(obj), *sigs, *mine;
	char *text, sig[128], kid[128];
	size_t sl = olm_pk_signature_length();

	if (copy == NULL || sl >= sizeof(sig)) {
		json_decref(copy);
		return -1;
	}
	json_object_del(copy, "signatures");
	json_object_del(copy, "unsigned");
	text = tlbot_crypto_canonical_json(copy);
	json_decref(copy);
	if (text == NULL ||
	    olm_pk_sign(k, (const uint8_t *)text, strlen(text), (uint8_t *)sig, sl) == olm_error()) {
		free(text);
		return -1;
	}
	free(text);
	sig[sl] = '\0';
	sigs = json_object_get(obj, "signatures");
	if (!json_is_object(sigs)) {
		sigs = json_object();
		json_object_set_new(obj, "signatures", sigs);
	}
	mine = json_object_get(sigs, c->user_id);
	if (!json_is_object(mine)) {
		mine = json_object();
		json_object_set_new(sigs, c->user_id, mine);
	}
	snprintf(kid, sizeof(kid), "ed25519:%s", pub);
	return json_object_set_new(mine, kid, json_string(sig));
}

static json_t *
key_object(struct tlbot_crypto *c, const struct xkeys *x, int i)
{
	char kid[128];

	snprintf(kid, sizeof(kid), "ed25519:%s", x->pub[i]);
	return json_pack("{s:s, s:[s], s:{s:s}}", "user_id", c->user_id, "usage", usages[i], "keys",
			 kid, x->pub[i]);
}

/* POST /keys/device_signing/upload, answering the 401 with the password.
 * 0 or -1 (logged). */
static int
upload_keys(struct tlbot_crypto *c, struct tlbot_http *h, const struct xkeys *x)
{
	json_t *body = json_object();
	struct tlbot_http_resp r;
	char *text = NULL;
	int i, attempt, rc = -1;

	for (i = 0; body && i < 3; i++) {
		json_t *k = key_object(c, x, i);

		if (k == NULL || (i > 0 && pk_sign_json(c, x->k[0], x->pub[0], k) != 0)) {
			json_decref(k);
			json_decref(body);
			return -1;
		}
		json_object_set_new(body, i == 0 ? "master_key" : i == 1 ? "self_signing_key"
								  : "user_signing_key",
				    k);
	}
	tlbot_http_resp_init(&r);
	for (attempt = 0; body && attempt < 2; attempt++) {
		enum tlbot_err e;

		free(text);
		text = json_dumps(body, JSON_COMPACT);
		if (text == NULL)
			break;
		tlbot_http_resp_release(&r);
		tlbot_http_resp_init(&r);
		e = tlbot_http_request(h, "POST", "/_matrix/client/v3/keys/device_signing/upload", text,
				       strlen(text), NULL, 30000, &r);
		if (e == TLBOT_OK) {
			rc = 0;
			break;
		}
		if (attempt == 0 && r.status == 401 &&
		    json_is_string(json_object_get(r.json, "session"))) {
			/* user-interactive auth: one m.login.password stage */
			json_object_set_new(
				body, "auth",
				json_pack("{s:s, s:{s:s, s:s}, s:s, s:O}", "type", "m.login.password",
					  "identifier", "type", "m.id.user", "user", c->user_id,
					  "password", c->password, "session",
					  json_object_get(r.json, "session")));
			continue;
		}
		log_warnx("encryption: uploading the cross-signing keys failed: %s %s (HTTP %ld)",
			  r.errcode, r.error, r.status);
		break;
	}
	if (text)
		explicit_bzero(text, strlen(text));
	free(text);
	json_decref(body);
	tlbot_http_resp_release(&r);
	return rc;
}

/* Sign the bot's device with the self-signing key. 0 or -1. */
static int
sign_device(struct tlbot_crypto *c, struct tlbot_http *h, const struct xkeys *x)
{
	char kc[300], ke[300], *text;
	json_t *dk, *body;
	struct tlbot_http_resp r;
	int rc = -1;

	snprintf(kc, sizeof(kc), "curve25519:%s", c->device_id);
	snprintf(ke, sizeof(ke), "ed25519:%s", c->device_id);
	dk = json_pack("{s:s, s:s, s:[s,s], s:{s:s, s:s}}", "user_id", c->user_id, "device_id",
		       c->device_id, "algorithms", OLM_ALGO, MEGOLM_ALGO, "keys", kc, c->curve25519,
		       ke, c->ed25519);
	if (dk == NULL || pk_sign_json(c, x->k[1], x->pub[1], dk) != 0) {
		json_decref(dk);
		return -1;
	}
	body = json_pack("{s:{s:o}}", c->user_id, c->device_id, dk);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (text == NULL)
		return -1;
	tlbot_http_resp_init(&r);
	if (tlbot_http_request(h, "POST", "/_matrix/client/v3/keys/signatures/upload", text,
			       strlen(text), NULL, 30000, &r) == TLBOT_OK &&
	    json_object_size(json_object_get(r.json, "failures")) == 0)
		rc = 0;
	else
		log_warnx("encryption: uploading the device's cross-signature failed: %s %s "
			  "(HTTP %ld)",
			  r.errcode, r.error, r.status);
	tlbot_http_resp_release(&r);
	free(text);
	return rc;
}

int
cr_xsign_tick(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h)
{
	char *state = NULL;
	struct xkeys x;
	int r;

	if (c->xsign_done)
		return 0;
	if (c->password == NULL) {
		if (!c->xsign_warned)
			log_warnx("encryption: no password configured (access token only), so the bot "
				  "cannot set up cross-signing (uploading the keys needs the account's "
				  "password): clients that trust only cross-signed devices will not "
				  "share room keys with it; set password or password_file and restart");
		c->xsign_warned = 1;
		c->xsign_done = 1;
		return 0;
	}
	r = cr_get1(st, &state, "SELECT value FROM kv WHERE key = 'crypto_xsign_state'", NULL, NULL,
		    NULL);
	if (r < 0)
		return -1;
	if (r == 0 && strcmp(state, c->device_id) == 0) {
		free(state);
		c->xsign_done = 1;
		return 0;
	}
	free(state);
	/* create and store the keys before anything leaves the machine */
	if (tlbot_store_begin(st) != 0)
		return -1;
	if (load_keys(c, st, &x) != 0) {
		tlbot_store_rollback(st);
		return -1;
	}
	if (tlbot_store_commit(st) != 0) {
		xkeys_free(&x);
		return -1;
	}
	r = -1;
	if (upload_keys(c, h, &x) == 0 && sign_device(c, h, &x) == 0 &&
	    tlbot_store_kv_set(st, "crypto_xsign_state", c->device_id) == 0) {
		log_info("encryption: cross-signing set up (master key %s); device %s signed",
			 x.pub[0], c->device_id);
		c->xsign_done = 1;
		r = 0;
	}
	xkeys_free(&x);
	return r;
}
