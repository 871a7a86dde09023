/* crypto.h - hashing (and later the cache's encryption) behind a small API.
 *
 * Owns: the cryptographic primitives popsync uses outside TLS, so that the
 * rest of the code never includes mbedTLS headers.  Today: SHA-256.
 */
#ifndef PS_CRYPTO_H
#define PS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define PS_SHA256_LEN 32

/** SHA-256 of p[0..n) into out.  PS_OK or PS_ECRYPTO. */
int ps_sha256(const void *p, size_t n, uint8_t out[PS_SHA256_LEN]);

#endif
