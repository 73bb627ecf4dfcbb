/* SHA-256 and padded standard base64 through OpenSSL's libcrypto (linked
 * for the encryption module anyway): no hand-written hash. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "tlbot/sha256.h"

void
tlbot_sha256(const void *data, size_t len, uint8_t out[TLBOT_SHA256_LEN])
{
	SHA256(data, len, out);
}

void
tlbot_base64(const uint8_t *data, size_t len, char *out)
{
	/* EVP_EncodeBlock writes 4 * ceil(len / 3) characters and a NUL, with
	 * padding and no line breaks (RFC 4648 section 4) */
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

void
tlbot_sha256_b64_2(const char *a, const char *b, char out[TLBOT_SHA256_B64_LEN])
{
	uint8_t d[TLBOT_SHA256_LEN];
	unsigned int n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	memset(d, 0, sizeof(d));
	if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(c, a, strlen(a)) != 1 || EVP_DigestUpdate(c, b, strlen(b)) != 1 ||
	    EVP_DigestFinal_ex(c, d, &n) != 1)
		abort(); /* only out of memory: the digest itself cannot fail */
	EVP_MD_CTX_free(c);
	tlbot_base64(d, sizeof(d), out);
}
