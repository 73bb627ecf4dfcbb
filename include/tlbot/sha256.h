/* SHA-256 (FIPS 180-4) and padded standard base64 (RFC 4648 section 4),
 * from OpenSSL's libcrypto, for MSC4391 command description state keys. */
#ifndef TLBOT_SHA256_H
#define TLBOT_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define TLBOT_SHA256_LEN 32
/* base64 of 32 bytes with padding: 44 characters and a NUL */
#define TLBOT_SHA256_B64_LEN 45

void tlbot_sha256(const void *data, size_t len, uint8_t out[TLBOT_SHA256_LEN]);
/* Padded standard base64 of len bytes into out (4 * ceil(len / 3) + 1 bytes). */
void tlbot_base64(const uint8_t *data, size_t len, char *out);
/* base64(sha256(a + b)): the MSC4391 state key of command a for bot b. */
void tlbot_sha256_b64_2(const char *a, const char *b, char out[TLBOT_SHA256_B64_LEN]);

#endif
