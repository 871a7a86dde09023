/* crypto.c - cryptographic primitives outside TLS.
 *
 * Owns: SHA-256, PBKDF2-SHA256, AES-256-GCM and ChaCha20-Poly1305 over mbedTLS,
 * and the pre-keyed HMAC-SHA256 (ps_hmac_key) over OpenSSL's libcrypto.
 * crypto.c is, with tls*.c, the only place that includes mbedTLS headers.
 */
#include "crypto.h"
#include "err.h"

#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>
#include <mbedtls/md.h>
#include <mbedtls/pkcs5.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha256.h>
/* OpenSSL 3 marks the SHA256_CTX functions deprecated; ps_hmac_key uses
 * them on purpose (see struct ps_hmac_key). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <stdlib.h>
#include <string.h>

struct ps_aead {
    ps_aead_alg_t alg;
    union {
        mbedtls_gcm_context gcm;        /* holds the expanded key: wiped by mbedtls_gcm_free */
        mbedtls_chachapoly_context cp;  /* holds the key: wiped by mbedtls_chachapoly_free */
    } u;
};

int ps_sha256(const void *p, size_t n, uint8_t out[PS_SHA256_LEN])
{
    /* The one-shot call needs no context, so nothing can be left to free. */
    if (!out || (!p && n > 0))
        return PS_EINVAL;
    if (mbedtls_sha256_ret(p ? p : (const void *)"", n, out, 0) != 0)
        return PS_ECRYPTO;
    return PS_OK;
}

int ps_hmac_sha256(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[PS_SHA256_LEN])
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);

    if (!key || !out || (!p && n > 0) || !md)
        return PS_EINVAL;
    if (mbedtls_md_hmac(md, key, keylen, p ? p : (const void *)"", n, out) != 0)
        return PS_ECRYPTO;
    return PS_OK;
}

/* The pads' states as OpenSSL's SHA256_CTX: its SHA-256 uses the CPU's SHA
 * extensions (4x mbedTLS 2.28's here: 0.13 against 0.56 us per HMAC of a
 * short term, docs/performance.md section o).  The low-level context is the
 * one form whose state a plain struct copy duplicates, without allocation,
 * on the caller's stack (so a const key serves threads at once); EVP's
 * EVP_MD_CTX_copy_ex allocates in OpenSSL 3.0 and costs 1.5x. */
struct ps_hmac_key {
    SHA256_CTX inner, outer; /* after the ipad / opad block */
};

int ps_hmac_key_new(ps_hmac_key_t **out, const uint8_t *key, size_t keylen)
{
    uint8_t k[64], ipad[64], opad[64];
    ps_hmac_key_t *h;
    int rc = PS_OK;

    if (!out || (!key && keylen))
        return PS_EINVAL;
    *out = NULL;
    memset(k, 0, sizeof(k));
    if (keylen > sizeof(k)) {
        if (ps_sha256(key, keylen, k) != PS_OK) /* RFC 2104: a long key is hashed first */
            return PS_ECRYPTO;
    } else if (keylen) {
        memcpy(k, key, keylen);
    }
    if (!(h = calloc(1, sizeof(*h))))
        return PS_ENOMEM;
    for (size_t i = 0; i < sizeof(k); i++) {
        ipad[i] = (uint8_t)(k[i] ^ 0x36);
        opad[i] = (uint8_t)(k[i] ^ 0x5c);
    }
    if (SHA256_Init(&h->inner) != 1 || SHA256_Update(&h->inner, ipad, sizeof(ipad)) != 1 ||
        SHA256_Init(&h->outer) != 1 || SHA256_Update(&h->outer, opad, sizeof(opad)) != 1)
        rc = PS_ECRYPTO;
    ps_zeroize(k, sizeof(k));
    ps_zeroize(ipad, sizeof(ipad));
    ps_zeroize(opad, sizeof(opad));
    if (rc) {
        ps_hmac_key_free(h);
        return rc;
    }
    *out = h;
    return PS_OK;
}

int ps_hmac_key_mac(const ps_hmac_key_t *k, const void *p, size_t n, uint8_t out[PS_SHA256_LEN])
{
    SHA256_CTX t;
    uint8_t ih[PS_SHA256_LEN];
    int rc = PS_OK;

    if (!k || !out || (!p && n))
        return PS_EINVAL;
    t = k->inner;
    if (SHA256_Update(&t, p ? p : (const void *)"", n) != 1 || SHA256_Final(ih, &t) != 1)
        rc = PS_ECRYPTO;
    t = k->outer;
    if (rc == PS_OK && (SHA256_Update(&t, ih, sizeof(ih)) != 1 || SHA256_Final(out, &t) != 1))
        rc = PS_ECRYPTO;
    ps_zeroize(&t, sizeof(t)); /* a state one block past the key's pad */
    ps_zeroize(ih, sizeof(ih));
    return rc;
}

void ps_hmac_key_free(ps_hmac_key_t *k)
{
    if (!k)
        return;
    ps_zeroize(k, sizeof(*k));
    free(k);
}

void ps_zeroize(void *p, size_t n)
{
    if (p && n)
        mbedtls_platform_zeroize(p, n);
}

int ps_kdf_pbkdf2_sha256(const void *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
                         uint32_t iterations, uint8_t *out, size_t outlen)
{
    const mbedtls_md_info_t *md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    mbedtls_md_context_t ctx;
    int rc = PS_OK;

    if (!out || outlen == 0 || outlen > UINT32_MAX || iterations == 0 || (!pass && passlen) || (!salt && saltlen))
        return PS_EINVAL;
    if (!md)
        return PS_ECRYPTO;
    mbedtls_md_init(&ctx);
    if (mbedtls_md_setup(&ctx, md, 1) != 0 ||
        mbedtls_pkcs5_pbkdf2_hmac(&ctx, pass ? pass : (const void *)"", passlen, salt ? salt : (const uint8_t *)"",
                                  saltlen, iterations, (uint32_t)outlen, out) != 0) {
        ps_zeroize(out, outlen);
        rc = PS_ECRYPTO;
    }
    mbedtls_md_free(&ctx); /* zeroes the HMAC state, which holds the password's pads */
    return rc;
}

int ps_aead_new_alg(ps_aead_t **out, ps_aead_alg_t alg, const uint8_t key[PS_AEAD_KEY_LEN])
{
    ps_aead_t *a;
    int mrc;
    if (!out)
        return PS_EINVAL;
    *out = NULL;
    if (!key || (alg != PS_AEAD_AES256_GCM && alg != PS_AEAD_CHACHA20_POLY1305))
        return PS_EINVAL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return PS_ENOMEM;
    a->alg = alg;
    if (alg == PS_AEAD_AES256_GCM) {
        mbedtls_gcm_init(&a->u.gcm);
        mrc = mbedtls_gcm_setkey(&a->u.gcm, MBEDTLS_CIPHER_ID_AES, key, PS_AEAD_KEY_LEN * 8);
    } else {
        mbedtls_chachapoly_init(&a->u.cp);
        mrc = mbedtls_chachapoly_setkey(&a->u.cp, key);
    }
    if (mrc != 0) {
        ps_aead_free(a);
        return PS_ECRYPTO;
    }
    *out = a;
    return PS_OK;
}

int ps_aead_new(ps_aead_t **out, const uint8_t key[PS_AEAD_KEY_LEN])
{
    return ps_aead_new_alg(out, PS_AEAD_AES256_GCM, key);
}

ps_aead_alg_t ps_aead_alg(const ps_aead_t *a)
{
    return a->alg;
}

void ps_aead_free(ps_aead_t *a)
{
    if (!a)
        return;
    if (a->alg == PS_AEAD_AES256_GCM)
        mbedtls_gcm_free(&a->u.gcm);
    else
        mbedtls_chachapoly_free(&a->u.cp);
    ps_zeroize(a, sizeof(*a));
    free(a);
}

int ps_aead_ctx_seal(ps_aead_t *a, const uint8_t nonce[PS_AEAD_NONCE_LEN], const void *aad, size_t aadlen,
                     const void *plain, size_t n, uint8_t *out)
{
    int mrc;
    if (!a || !nonce || !out || (!aad && aadlen) || (!plain && n))
        return PS_EINVAL;
    if (a->alg == PS_AEAD_AES256_GCM)
        mrc = mbedtls_gcm_crypt_and_tag(&a->u.gcm, MBEDTLS_GCM_ENCRYPT, n, nonce, PS_AEAD_NONCE_LEN, aad, aadlen,
                                        plain, out, PS_AEAD_TAG_LEN, out + n);
    else
        mrc = mbedtls_chachapoly_encrypt_and_tag(&a->u.cp, n, nonce, aad, aadlen, plain, out, out + n);
    return mrc ? PS_ECRYPTO : PS_OK;
}

int ps_aead_ctx_open(ps_aead_t *a, const uint8_t nonce[PS_AEAD_NONCE_LEN], const void *aad, size_t aadlen,
                     const uint8_t *sealed, size_t n, uint8_t *out)
{
    size_t len;
    int mrc;
    if (!a || !nonce || !sealed || (!aad && aadlen) || n < PS_AEAD_TAG_LEN || (!out && n > PS_AEAD_TAG_LEN))
        return PS_EINVAL;
    len = n - PS_AEAD_TAG_LEN;
    /* mbedTLS checks the tag in constant time (both algorithms). */
    if (a->alg == PS_AEAD_AES256_GCM)
        mrc = mbedtls_gcm_auth_decrypt(&a->u.gcm, len, nonce, PS_AEAD_NONCE_LEN, aad, aadlen, sealed + len,
                                       PS_AEAD_TAG_LEN, sealed, out);
    else
        mrc = mbedtls_chachapoly_auth_decrypt(&a->u.cp, len, nonce, aad, aadlen, sealed + len, sealed, out);
    if (mrc != 0) {
        ps_zeroize(out, len);
        return PS_ECRYPTO;
    }
    return PS_OK;
}

int ps_aead_seal(const uint8_t key[PS_AEAD_KEY_LEN], const uint8_t nonce[PS_AEAD_NONCE_LEN], const void *aad,
                 size_t aadlen, const void *plain, size_t n, uint8_t *out)
{
    ps_aead_t *a = NULL;
    int rc = ps_aead_new(&a, key);
    if (rc == PS_OK)
        rc = ps_aead_ctx_seal(a, nonce, aad, aadlen, plain, n, out);
    ps_aead_free(a);
    return rc;
}

int ps_aead_open(const uint8_t key[PS_AEAD_KEY_LEN], const uint8_t nonce[PS_AEAD_NONCE_LEN], const void *aad,
                 size_t aadlen, const uint8_t *sealed, size_t n, uint8_t *out)
{
    ps_aead_t *a = NULL;
    int rc = ps_aead_new(&a, key);
    if (rc == PS_OK)
        rc = ps_aead_ctx_open(a, nonce, aad, aadlen, sealed, n, out);
    ps_aead_free(a);
    return rc;
}
