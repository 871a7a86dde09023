/* crypto.h - hashing, key derivation and authenticated encryption behind a
 * small API.
 *
 * Owns: the cryptographic primitives popsync uses outside TLS, so that the
 * rest of the code never includes mbedTLS headers: SHA-256, PBKDF2-SHA256
 * (turning a passphrase into a key), AES-256-GCM and ChaCha20-Poly1305
 * (RFC 8439; the client cache's encryption at rest, client/cache.c: new
 * values are sealed with ChaCha20-Poly1305, older ones with AES-256-GCM
 * still open).  Every function returns PS_OK or a
 * negative PS_E* code; PS_ECRYPTO means a primitive failed or, for the open
 * functions, that the data, its tag, the nonce, the AAD or the key was
 * wrong: nothing is learned about the plaintext then, and out is zeroed.
 */
#ifndef PS_CRYPTO_H
#define PS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define PS_SHA256_LEN 32

#define PS_AEAD_KEY_LEN 32   /**< AES-256 or ChaCha20's 256-bit key */
#define PS_AEAD_NONCE_LEN 12 /**< GCM's 96-bit IV or RFC 8439's nonce; never reuse one under a key */
#define PS_AEAD_TAG_LEN 16   /**< full 128-bit GCM or Poly1305 tag */

/** The AEAD algorithms a context can hold. */
typedef enum ps_aead_alg {
    PS_AEAD_AES256_GCM = 1,
    PS_AEAD_CHACHA20_POLY1305 = 2,
} ps_aead_alg_t;

/** PBKDF2-SHA256 iterations for new caches (OWASP 2023 recommendation). */
#define PS_KDF_DEFAULT_ITERATIONS 600000u
/** The least iteration count accepted (also for the POPSYNC_KDF_ITERATIONS test knob). */
#define PS_KDF_MIN_ITERATIONS 1000u
/** The most: bounds the work a damaged or hostile setting can cause. */
#define PS_KDF_MAX_ITERATIONS 100000000u

/** SHA-256 of p[0..n) into out.  PS_OK or PS_ECRYPTO. */
int ps_sha256(const void *p, size_t n, uint8_t out[PS_SHA256_LEN]);

/** HMAC-SHA256 (RFC 2104) of p[0..n) under key into out.  PS_OK,
 *  PS_EINVAL or PS_ECRYPTO. */
int ps_hmac_sha256(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[PS_SHA256_LEN]);

/**
 * HMAC-SHA256 under one key for many messages: the key's inner and outer
 * pads are hashed once (ps_hmac_key_new), so each short message costs two
 * SHA-256 blocks instead of four and no allocation (the cache's person
 * index hashes up to 15 terms per record).  Same output as ps_hmac_sha256.
 */
typedef struct ps_hmac_key ps_hmac_key_t;
/** PS_OK, PS_EINVAL, PS_ENOMEM or PS_ECRYPTO; free with ps_hmac_key_free. */
int ps_hmac_key_new(ps_hmac_key_t **out, const uint8_t *key, size_t keylen);
/** The HMAC of p[0..n) into out.  PS_OK, PS_EINVAL or PS_ECRYPTO. */
int ps_hmac_key_mac(const ps_hmac_key_t *k, const void *p, size_t n, uint8_t out[PS_SHA256_LEN]);
/** Wipes and frees (NULL allowed). */
void ps_hmac_key_free(ps_hmac_key_t *k);

/**
 * PBKDF2 with HMAC-SHA256 (RFC 8018): outlen bytes from pass and salt after
 * iterations rounds (at least 1).  PS_OK, PS_EINVAL or PS_ECRYPTO.
 */
int ps_kdf_pbkdf2_sha256(const void *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
                         uint32_t iterations, uint8_t *out, size_t outlen);

/**
 * One-shot AES-256-GCM encryption: out receives n bytes of ciphertext then
 * the 16-byte tag (n + PS_AEAD_TAG_LEN bytes).  aad is authenticated, not
 * encrypted.  Draw each nonce with ps_random (ids.h) or never reuse it.
 */
int ps_aead_seal(const uint8_t key[PS_AEAD_KEY_LEN], const uint8_t nonce[PS_AEAD_NONCE_LEN], const void *aad,
                 size_t aadlen, const void *plain, size_t n, uint8_t *out);
/**
 * One-shot AES-256-GCM decryption of sealed[0..n), which is ciphertext then
 * tag (n >= PS_AEAD_TAG_LEN): out receives n - PS_AEAD_TAG_LEN bytes.
 * PS_ECRYPTO when authentication fails (out is zeroed then).
 */
int ps_aead_open(const uint8_t key[PS_AEAD_KEY_LEN], const uint8_t nonce[PS_AEAD_NONCE_LEN], const void *aad,
                 size_t aadlen, const uint8_t *sealed, size_t n, uint8_t *out);

/**
 * A key ready for use: the expanded AES key schedule and GCM tables are
 * made once (ps_aead_new) and reused for every value, which matters when
 * the cache seals each record.  Not safe for concurrent use from threads.
 */
typedef struct ps_aead ps_aead_t;

/** Makes an AES-256-GCM context for key (copied; the caller may zero its copy).  Free with ps_aead_free. */
int ps_aead_new(ps_aead_t **out, const uint8_t key[PS_AEAD_KEY_LEN]);
/** Like ps_aead_new, for algorithm alg (PS_EINVAL for another value). */
int ps_aead_new_alg(ps_aead_t **out, ps_aead_alg_t alg, const uint8_t key[PS_AEAD_KEY_LEN]);
/** The algorithm a context was made for. */
ps_aead_alg_t ps_aead_alg(const ps_aead_t *a);
/** Wipes the key material and frees the context.  NULL is allowed. */
void ps_aead_free(ps_aead_t *a);
/** ps_aead_seal with a prepared context (of either algorithm). */
int ps_aead_ctx_seal(ps_aead_t *a, const uint8_t nonce[PS_AEAD_NONCE_LEN], const void *aad, size_t aadlen,
                     const void *plain, size_t n, uint8_t *out);
/** ps_aead_open with a prepared context. */
int ps_aead_ctx_open(ps_aead_t *a, const uint8_t nonce[PS_AEAD_NONCE_LEN], const void *aad, size_t aadlen,
                     const uint8_t *sealed, size_t n, uint8_t *out);

/** Overwrites n bytes at p with zeros in a way the compiler cannot drop (keys, passphrases). */
void ps_zeroize(void *p, size_t n);

#endif
