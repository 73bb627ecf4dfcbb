/* Encrypted attachments (the spec's EncryptedFile, v2): AES-256-CTR with a
 * fresh key and a 64-bit random IV prefix (counter half zero), SHA-256 of
 * the ciphertext, the key as a JWK; all through OpenSSL EVP. A file sent to
 * an encrypted room is uploaded encrypted and its outbox row becomes a
 * "send" row with the m.file content, which tlbot_crypto_prepare_send then
 * Megolm-encrypts like any other message. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "internal.h"
#include "tlbot/log.h"
#include "tlbot/matrix.h"

/* Unpadded base64 (url: the URL-safe alphabet) of n bytes into out. */
static void
b64(const unsigned char *in, int n, char *out, int url)
{
	int len = EVP_EncodeBlock((unsigned char *)out, in, n), i;

	while (len > 0 && out[len - 1] == '=')
		out[--len] = '\0';
	for (i = 0; url && i < len; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
}

int
tlbot_crypto_encrypt_attachment(const void *data, size_t len, unsigned char **out, json_t **file)
{
	unsigned char key[32], iv[16], hash[32];
	char k64[64], iv64[32], h64[64];
	EVP_CIPHER_CTX *cx;
	unsigned int hl = 0;
	int n = 0, f = 0, rc = -1;

	*out = NULL;
	*file = NULL;
	if (len > (size_t)1 << 30)
		return -1;
	memset(iv, 0, sizeof(iv));
	if (cr_random(key, sizeof(key)) != 0 || cr_random(iv, 8) != 0)
		return -1;
	*out = malloc(len ? len : 1);
	cx = EVP_CIPHER_CTX_new();
	if (*out && cx && EVP_EncryptInit_ex(cx, EVP_aes_256_ctr(), NULL, key, iv) == 1 &&
	    EVP_EncryptUpdate(cx, *out, &n, data, (int)len) == 1 &&
	    EVP_EncryptFinal_ex(cx, *out + n, &f) == 1 && (size_t)(n + f) == len &&
	    EVP_Digest(*out, len, hash, &hl, EVP_sha256(), NULL) == 1 && hl == 32) {
		b64(key, sizeof(key), k64, 1);
		b64(iv, sizeof(iv), iv64, 0);
		b64(hash, sizeof(hash), h64, 0);
		*file = json_pack("{s:{s:s, s:[s,s], s:s, s:s, s:b}, s:s, s:{s:s}, s:s}", "key", "kty",
				  "oct", "key_ops", "encrypt", "decrypt", "alg", "A256CTR", "k", k64,
				  "ext", 1, "iv", iv64, "hashes", "sha256", h64, "v", "v2");
		rc = *file ? 0 : -1;
	}
	explicit_bzero(key, sizeof(key));
	explicit_bzero(k64, sizeof(k64));
	EVP_CIPHER_CTX_free(cx);
	if (rc != 0) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

int
tlbot_crypto_prepare_file(struct tlbot_crypto *c, struct tlbot_store *st, struct tlbot_http *h,
			  struct tlbot_outbox_row *row)
{
	json_t *meta, *file = NULL, *content = NULL;
	const char *filename, *mimetype, *caption;
	unsigned char *ct = NULL;
	char *uri = NULL, *text = NULL;
	struct tlbot_http_resp r;
	sqlite3_stmt *q;
	int rc = -1;

	if (c == NULL || row->kind == NULL || strcmp(row->kind, "file") != 0 ||
	    row->room_id == NULL || !tlbot_crypto_room_encrypted(st, row->room_id))
		return 0;
	meta = json_loads(row->content ? row->content : "{}", 0, NULL);
	filename = json_string_value(json_object_get(meta, "filename"));
	mimetype = json_string_value(json_object_get(meta, "mimetype"));
	caption = json_string_value(json_object_get(meta, "caption"));
	if (filename == NULL || mimetype == NULL) {
		json_decref(meta);
		return -1;
	}
	tlbot_http_resp_init(&r);
	if (tlbot_crypto_encrypt_attachment(row->blob, (size_t)row->bloblen, &ct, &file) != 0)
		goto out;
	/* the server sees an opaque blob: no real type, no real name */
	if (tlbot_mx_upload(h, ct, (size_t)row->bloblen, "application/octet-stream", "encrypted",
			    &uri, &r) != TLBOT_OK) {
		log_warnx("encryption: outbox %s: uploading the encrypted file failed: %s %s",
			  row->txn_id, r.errcode, r.error);
		goto out;
	}
	json_object_set_new(file, "url", json_string(uri));
	content = json_pack("{s:s, s:s, s:s, s:O, s:{s:s, s:i}, s:{s:[]}}", "msgtype", "m.file",
			    "body", caption && *caption ? caption : filename, "filename", filename,
			    "file", file, "info", "mimetype", mimetype, "size", row->bloblen,
			    "m.mentions", "user_ids");
	text = content ? json_dumps(content, JSON_COMPACT) : NULL;
	/* the row becomes an ordinary message: prepare_send encrypts it next */
	q = text ? cr_prep(st, "UPDATE outbox SET kind = 'send', event_type = 'm.room.message',"
			       " content = ?, blob = NULL WHERE id = ? AND kind = 'file'")
		 : NULL;
	if (q) {
		cr_bind(q, 1, text);
		sqlite3_bind_int64(q, 2, row->id);
	}
	if (cr_done(st, q) != 0)
		goto out;
	free(row->kind);
	free(row->event_type);
	free(row->content);
	row->kind = strdup("send");
	row->event_type = strdup("m.room.message");
	row->content = text;
	text = NULL;
	rc = row->kind && row->event_type ? 0 : -1;
out:
	tlbot_http_resp_release(&r);
	free(ct);
	free(uri);
	free(text);
	json_decref(content);
	json_decref(file);
	json_decref(meta);
	return rc;
}
