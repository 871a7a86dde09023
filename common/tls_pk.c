/* tls_pk.c - ECDSA for mbedTLS's handshakes computed by OpenSSL's libcrypto.
 *
 * Owns: ps_ossl_ec_info, an mbedTLS 2.28 public-key type (pk_internal.h's
 * mbedtls_pk_info_t, the same hook its RSA_ALT keys use) that answers as an
 * MBEDTLS_PK_ECDSA key and signs and verifies with OpenSSL.  mbedTLS 2.28's
 * ECDSA on P-256 costs ~1 ms per verification and ~0.4 ms per signature
 * here; OpenSSL's (constant-time P-256, the CPU's wide multiplier) is about
 * 20 times faster (docs/performance.md §e).  The TLS protocol, its
 * transcript and its checks stay mbedTLS's: only the two ECDSA operations
 * move.  Called by tls_conf.c (our key, the CA's keys) and tls.c's verify
 * callback (the peer's key, for its handshake signature).
 *
 * The context starts with the mbedtls_ecp_keypair, so mbedtls_pk_ec() and
 * everything in mbedTLS that reads a key's curve or point keep working.
 * Threads: a converted key is only read; OpenSSL's EVP_PKEY may be used by
 * several threads at once (each operation has its own EVP_PKEY_CTX).
 */
#include "tls.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/pk_internal.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/version.h>

/* OpenSSL 3 marks EC_KEY deprecated; it is the direct way from a raw point
 * and scalar to a key, and the EVP_PKEY made from it is what signs. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#error "tls_pk.c uses mbedTLS 2.28's pk_internal.h: port it to the PSA driver interface of mbedTLS 3"
#endif

typedef struct ossl_ec {
    mbedtls_ecp_keypair kp; /* first: mbedtls_pk_ec() casts the context */
    EVP_PKEY *pkey;
} ossl_ec_t;

static size_t oe_bitlen(const void *ctx) { return ((const ossl_ec_t *)ctx)->kp.grp.pbits; }

/* As mbedTLS's own ECDSA type: ECDSA only. */
static int oe_can_do(mbedtls_pk_type_t type) { return type == MBEDTLS_PK_ECDSA; }

static int oe_verify(void *ctx, mbedtls_md_type_t md_alg, const unsigned char *hash, size_t hash_len,
                     const unsigned char *sig, size_t sig_len)
{
    ossl_ec_t *o = ctx;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(o->pkey, NULL);
    int ok;

    (void)md_alg; /* the hash is given; ECDSA uses its bytes (as mbedTLS's ecdsa_verify_wrap) */
    /* EVP_PKEY_verify takes the DER signature only if it is canonical
     * and nothing follows it, as mbedtls_ecdsa_read_signature. */
    ok = pc && EVP_PKEY_verify_init(pc) == 1 && EVP_PKEY_verify(pc, sig, sig_len, hash, hash_len) == 1;
    EVP_PKEY_CTX_free(pc);
    if (!ok)
        ERR_clear_error(); /* a peer's bad signature leaves nothing in this thread's queue */
    return ok ? 0 : MBEDTLS_ERR_ECP_VERIFY_FAILED;
}

/* mbedTLS 2.28 gives no size with the signature buffer; its callers size it
 * MBEDTLS_PK_SIGNATURE_MAX_SIZE, at least MBEDTLS_ECDSA_MAX_LEN. */
static int oe_sign(void *ctx, mbedtls_md_type_t md_alg, const unsigned char *hash, size_t hash_len,
                   unsigned char *sig, size_t *sig_len, int (*f_rng)(void *, unsigned char *, size_t), void *p_rng)
{
    ossl_ec_t *o = ctx;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(o->pkey, NULL);
    size_t len = MBEDTLS_ECDSA_MAX_LEN;
    int ok;

    (void)md_alg;
    (void)f_rng; /* OpenSSL draws the nonce from its own DRBG */
    (void)p_rng;
    ok = pc && EVP_PKEY_sign_init(pc) == 1 && EVP_PKEY_sign(pc, sig, &len, hash, hash_len) == 1;
    EVP_PKEY_CTX_free(pc);
    if (!ok) {
        ERR_clear_error();
        return MBEDTLS_ERR_ECP_HW_ACCEL_FAILED;
    }
    *sig_len = len;
    return 0;
}

static int oe_check_pair(const void *pub, const void *prv)
{
    return mbedtls_ecp_check_pub_priv(&((const ossl_ec_t *)pub)->kp, &((const ossl_ec_t *)prv)->kp);
}

static void *oe_alloc(void)
{
    ossl_ec_t *o = calloc(1, sizeof(*o));
    if (o)
        mbedtls_ecp_keypair_init(&o->kp);
    return o;
}

static void oe_free(void *ctx)
{
    ossl_ec_t *o = ctx;
    if (!o)
        return;
    EVP_PKEY_free(o->pkey);
    mbedtls_ecp_keypair_free(&o->kp);
    free(o);
}

static const mbedtls_pk_info_t ps_ossl_ec_info = {
    .type = MBEDTLS_PK_ECDSA,
    .name = "ECDSA (OpenSSL)",
    .get_bitlen = oe_bitlen,
    .can_do = oe_can_do,
    .verify_func = oe_verify,
    .sign_func = oe_sign,
    .check_pair_func = oe_check_pair,
    .ctx_alloc_func = oe_alloc,
    .ctx_free_func = oe_free,
};

/* The OpenSSL key of kp (its private scalar too when it has one). */
static EVP_PKEY *to_evp(const mbedtls_ecp_keypair *kp)
{
    unsigned char pt[MBEDTLS_ECP_MAX_PT_LEN], d[MBEDTLS_ECP_MAX_BYTES];
    size_t ptlen = 0, dlen = 0;
    int nid = kp->grp.id == MBEDTLS_ECP_DP_SECP256R1   ? NID_X9_62_prime256v1
              : kp->grp.id == MBEDTLS_ECP_DP_SECP384R1 ? NID_secp384r1
                                                       : NID_undef;
    EC_KEY *k = NULL;
    BIGNUM *bn = NULL;
    EVP_PKEY *pkey = NULL;
    int ok = 0;

    /* No OpenSSL cleanup handler at exit: when this code initialised
     * OpenSSL first, its exit handler crashed (a NULL stack in
     * OPENSSL_sk_pop_free) in a popsyncd that had published upstream over
     * TLS and closed libnats (nats_Close, server/natsconn.c; t_upstream_tls
     * under ASan).  The process is exiting: the OS takes the memory back. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
    if (nid == NID_undef || mbedtls_ecp_point_write_binary(&kp->grp, &kp->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &ptlen, pt,
                                                            sizeof(pt)) != 0)
        return NULL;
    if (!(k = EC_KEY_new_by_curve_name(nid)) || EC_KEY_oct2key(k, pt, ptlen, NULL) != 1)
        goto out;
    if (mbedtls_mpi_cmp_int(&kp->d, 0) != 0) {
        dlen = mbedtls_mpi_size(&kp->d);
        if (dlen > sizeof(d) || mbedtls_mpi_write_binary(&kp->d, d, dlen) != 0 || !(bn = BN_bin2bn(d, (int)dlen, NULL)) ||
            EC_KEY_set_private_key(k, bn) != 1)
            goto out;
    }
    if (!(pkey = EVP_PKEY_new()) || EVP_PKEY_set1_EC_KEY(pkey, k) != 1)
        goto out;
    /* OpenSSL 3 exports a key made this way to its provider on first use;
     * do it now, before handshake threads share the key. */
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(pkey, NULL);
    ok = pc && EVP_PKEY_verify_init(pc) == 1;
    EVP_PKEY_CTX_free(pc);
out:
    mbedtls_platform_zeroize(d, sizeof(d));
    BN_clear_free(bn);
    EC_KEY_free(k);
    if (!ok) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    return pkey;
}

int ps__tls_pk_ossl(struct mbedtls_pk_context *pk)
{
    mbedtls_pk_context np;
    ossl_ec_t *o;
    int ret;

    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY && mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECDSA)
        return MBEDTLS_ERR_PK_TYPE_MISMATCH;
    mbedtls_pk_init(&np);
    if ((ret = mbedtls_pk_setup(&np, &ps_ossl_ec_info)) != 0)
        goto out;
    o = np.pk_ctx;
    if ((ret = mbedtls_ecdsa_from_keypair(&o->kp, mbedtls_pk_ec(*pk))) != 0)
        goto out;
    if (!(o->pkey = to_evp(&o->kp))) {
        ret = MBEDTLS_ERR_PK_FEATURE_UNAVAILABLE;
        goto out;
    }
    mbedtls_pk_free(pk);
    *pk = np;
    mbedtls_pk_init(&np);
out:
    mbedtls_pk_free(&np);
    return ret;
}

void ps__tls_pk_ossl_shed(struct mbedtls_pk_context *pk)
{
    if (pk->pk_info != &ps_ossl_ec_info || !pk->pk_ctx)
        return;
    ossl_ec_t *o = pk->pk_ctx;
    EVP_PKEY_free(o->pkey);
    o->pkey = NULL; /* oe_verify and oe_sign then fail: EVP_PKEY_CTX_new(NULL) */
}
