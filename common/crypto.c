/* crypto.c - cryptographic primitives outside TLS.
 *
 * Owns: SHA-256 today.  crypto.c is, with tls*.c, the only place that
 * includes mbedTLS headers; later it will also hold the cache's AES-256-GCM
 * and PBKDF2.
 */
#include "crypto.h"
#include "err.h"

#include <mbedtls/sha256.h>

int ps_sha256(const void *p, size_t n, uint8_t out[PS_SHA256_LEN])
{
    /* The one-shot call needs no context, so nothing can be left to free. */
    if (!out || (!p && n > 0))
        return PS_EINVAL;
    if (mbedtls_sha256_ret(p ? p : (const void *)"", n, out, 0) != 0)
        return PS_ECRYPTO;
    return PS_OK;
}
