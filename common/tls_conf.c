/* tls_conf.c - the hardened mbedTLS configuration shared by one side.
 *
 * Owns: ps_tls_conf_t, i.e. the CA chain, optional CRL, this side's own
 * certificate and key, its entropy source and CTR-DRBG, the server's session
 * ticket key, and the mbedtls_ssl_config that every ps_tls_t of that side
 * points at.  The policy lives here in one place (docs/security.md): TLS 1.2
 * only, three ECDHE-ECDSA AEAD suites, P-256 certificates, X25519 (then
 * P-256) for key exchange, no renegotiation, no compression, extended master
 * secret, certificates required both ways.
 *
 * CRL: two slots; a reload parses and checks the new list in the spare slot
 * and only then makes it the one in force, so a bad file never replaces a
 * good list.  The list is not handed to mbedTLS: it would check the CRL's
 * signature again on every full handshake (one more ECDSA verify, +29% of
 * the server's handshake CPU).  The signature and issuer are checked once,
 * here, when the file is loaded, and tls.c's verify callback looks the peer's
 * serial up (ps__tls_conf_revoked_crt) inside ps_tls_handshake, under the
 * handshake pool's conf_lock (server/hspool.c) that a reload takes for
 * writing, so no handshake can see a CRL freed under it.
 *
 * Verified cache: the SHA-256 of peer certificates that completed a full
 * handshake verified against the CA (LRU, PS_TLS_VCACHE_DEFAULT entries),
 * emptied when the CRL is reloaded; see tls.c and docs/security.md §2.3a.
 *
 * Threading: a conf and its connections belong to one thread, except on the
 * server, whose handshake threads (server/hspool.c) share the conf: its
 * keys are only read once made (pk_fast), the DRBG has mbedTLS's own
 * mutex (MBEDTLS_THREADING_C) and the verified cache has vc_mu.
 */
#include "tls.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "err.h"
#include "ids.h"

/* CRIME: compressed TLS records leak secrets; this build must not offer it. */
#if defined(MBEDTLS_ZLIB_SUPPORT)
#error "popsync refuses TLS compression: build mbedTLS without MBEDTLS_ZLIB_SUPPORT"
#endif
#if !defined(MBEDTLS_SSL_EXTENDED_MASTER_SECRET) || !defined(MBEDTLS_X509_CRL_PARSE_C) ||                       \
    !defined(MBEDTLS_X509_CHECK_EXTENDED_KEY_USAGE) || !defined(MBEDTLS_HAVE_TIME_DATE)
#error "popsync needs mbedTLS with extended master secret, CRLs, EKU checks and certificate dates"
#endif

/* Tickets let a client that dropped off a flaky link reconnect without a full
 * handshake; a day bounds how long a stolen ticket key is useful. */
#define PS_TICKET_LIFETIME_S 86400

struct ps_tls_conf {
    ps_tls_side_t side;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_x509_crl crl[2]; /* the one in force is crl[crl_cur] when have_crl */
    int crl_cur;
    int have_crl;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_ticket_context ticket;
    mbedtls_ssl_config ssl;
    ps_peer_t self;
    mbedtls_x509_crt no_ca; /* stays empty: ps__tls_conf_no_ca */
    const mbedtls_ecp_group *p256; /* a CA's P-256 group, with its table (pk_with_table) */
    pthread_mutex_t vc_mu;
    struct vc_entry {
        uint8_t hash[32];
        uint64_t used; /* vc_tick when last found or added */
    } *vc;
    size_t vc_cap, vc_len;
    uint64_t vc_tick, vc_hits;
};

/* Only forward-secret AEAD suites with ECDSA authentication: our PKI makes
 * P-256 keys only, so RSA suites would be dead weight and attack surface. */
static const int ps_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

/* mbedTLS uses this list both for ECDHE and for the curves it accepts in
 * certificates, so secp256r1 must stay in it.  The server picks the first
 * of its list that the client offers.  X25519 first: in mbedTLS 2.28 a
 * P-256 key exchange on the fresh group of each handshake first builds the
 * generator's comb table (~0.8 ms under load), X25519's ladder needs none;
 * measured on the TLS stack, 5% less CPU per full handshake each side
 * (docs/performance.md §e). */
static const mbedtls_ecp_group_id ps_curves[] = {
#if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED)
    MBEDTLS_ECP_DP_CURVE25519,
#endif
    MBEDTLS_ECP_DP_SECP256R1,
    MBEDTLS_ECP_DP_NONE,
};

static const int ps_sig_hashes[] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_NONE};

/* Certificate checks: SHA-2 signatures by ECDSA keys on NIST curves.  The
 * default profile would also accept RSA chains that our PKI never makes. */
static const mbedtls_x509_crt_profile ps_cert_profile = {
    MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA256) | MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA384) |
        MBEDTLS_X509_ID_FLAG(MBEDTLS_MD_SHA512),
    MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECDSA) | MBEDTLS_X509_ID_FLAG(MBEDTLS_PK_ECKEY),
    MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP256R1) | MBEDTLS_X509_ID_FLAG(MBEDTLS_ECP_DP_SECP384R1),
    2048,
};

static int conf_fail(char *err, size_t errlen, const char *what, const char *file, int mret)
{
    char msg[100];

    if (!err || errlen == 0)
        return PS_ETLS;
    mbedtls_strerror(mret, msg, sizeof(msg));
    if (file)
        snprintf(err, errlen, "%s %s: %s (-0x%04X)", what, file, msg, (unsigned)-mret);
    else
        snprintf(err, errlen, "%s: %s (-0x%04X)", what, msg, (unsigned)-mret);
    return PS_ETLS;
}

static void conf_msg(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* The CRL must come from our CA: right issuer, valid signature with a hash
 * the profile allows.  mbedTLS would silently skip a CRL of another issuer
 * (revoking nobody) and fail every handshake on a bad signature; both are
 * caught here, when the file is loaded, instead. */
static int crl_check(const mbedtls_x509_crt *ca, const mbedtls_x509_crl *crl, char *err, size_t errlen,
                     const char *file)
{
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];

    for (; crl && crl->version != 0; crl = crl->next) {
        const mbedtls_md_info_t *md = mbedtls_md_info_from_type(crl->sig_md);
        const mbedtls_x509_crt *issuer;
        int ok = 0;

        if (!md || !(ps_cert_profile.allowed_mds & MBEDTLS_X509_ID_FLAG(crl->sig_md))) {
            if (err && errlen)
                snprintf(err, errlen, "tls: CRL %s: signature hash not allowed", file);
            return PS_ETLS;
        }
        if (mbedtls_md(md, crl->tbs.p, crl->tbs.len, hash) != 0)
            return conf_fail(err, errlen, "tls: hashing CRL", file, MBEDTLS_ERR_X509_FATAL_ERROR);
        for (issuer = ca; issuer && issuer->version != 0; issuer = issuer->next) {
            if (issuer->subject_raw.len != crl->issuer_raw.len ||
                memcmp(issuer->subject_raw.p, crl->issuer_raw.p, crl->issuer_raw.len) != 0)
                continue;
            if (mbedtls_pk_verify_ext(crl->sig_pk, crl->sig_opts, (mbedtls_pk_context *)&issuer->pk, crl->sig_md,
                                      hash, mbedtls_md_get_size(md), crl->sig.p, crl->sig.len) == 0) {
                ok = 1;
                break;
            }
        }
        if (!ok) {
            if (err && errlen)
                snprintf(err, errlen, "tls: CRL %s is not signed by the configured CA", file);
            return PS_ETLS;
        }
    }
    return PS_OK;
}

/* Parses file into crl[slot] (freed first) and checks it. */
static int crl_load(ps_tls_conf_t *c, int slot, const char *file, char *err, size_t errlen)
{
    int ret;

    mbedtls_x509_crl_free(&c->crl[slot]);
    mbedtls_x509_crl_init(&c->crl[slot]);
    if ((ret = mbedtls_x509_crl_parse_file(&c->crl[slot], file)) != 0)
        return conf_fail(err, errlen, "tls: loading CRL", file, ret);
    return crl_check(&c->ca, &c->crl[slot], err, errlen, file);
}

/* mbedTLS 2.28 multiplies a point by the comb method and keeps the table of
 * the generator's multiples in the group (grp->T) once it has built it: a
 * third of a signature's cost, and of a verification's.  A key parsed from a
 * certificate or a file is an MBEDTLS_PK_ECKEY, whose sign and verify copy
 * the group afresh for every operation (eckey_sign_wrap, eckey_verify_wrap),
 * so that table was built anew for every signature and every verification
 * of every handshake.  The same key as an MBEDTLS_PK_ECDSA context works on
 * its own group.  The table is built here once, before any handshake thread
 * runs, and only read afterwards (ecp_mul_comb writes grp->T only when it is
 * NULL), so threads can share it.  pk_with_table gives pk that form, with a
 * copy of warm's table when warm is of the same curve and has one, else
 * building it (drbg: the blinding of that first multiplication).  A key that
 * is not an ECKEY, or of a Montgomery curve (no table), is left as it is. */
static int pk_with_table(mbedtls_pk_context *pk, const mbedtls_ecp_group *warm, mbedtls_ctr_drbg_context *drbg)
{
    mbedtls_pk_context np;
    mbedtls_ecp_keypair *kp;
    mbedtls_ecp_point r;
    mbedtls_mpi two;
    int ret;

    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY ||
        mbedtls_ecp_get_type(&mbedtls_pk_ec(*pk)->grp) != MBEDTLS_ECP_TYPE_SHORT_WEIERSTRASS)
        return 0;
    mbedtls_pk_init(&np);
    mbedtls_ecp_point_init(&r);
    mbedtls_mpi_init(&two);
    if ((ret = mbedtls_pk_setup(&np, mbedtls_pk_info_from_type(MBEDTLS_PK_ECDSA))) != 0)
        goto out;
    kp = mbedtls_pk_ec(np);
    if ((ret = mbedtls_ecdsa_from_keypair(kp, mbedtls_pk_ec(*pk))) != 0)
        goto out;
    if (warm && warm->id == kp->grp.id && warm->T && warm->T_size) {
        if (!(kp->grp.T = calloc(warm->T_size, sizeof(*kp->grp.T)))) {
            ret = MBEDTLS_ERR_ECP_ALLOC_FAILED;
            goto out;
        }
        for (size_t i = 0; i < warm->T_size; i++)
            mbedtls_ecp_point_init(&kp->grp.T[i]);
        kp->grp.T_size = warm->T_size; /* from here mbedtls_ecp_group_free frees it */
        for (size_t i = 0; i < warm->T_size; i++)
            if ((ret = mbedtls_ecp_copy(&kp->grp.T[i], &warm->T[i])) != 0)
                goto out;
    } else if ((ret = mbedtls_mpi_lset(&two, 2)) != 0 ||
               (ret = mbedtls_ecp_mul(&kp->grp, &r, &two, &kp->grp.G, mbedtls_ctr_drbg_random, drbg)) != 0) {
        goto out;
    }
    mbedtls_pk_free(pk);
    *pk = np;
    mbedtls_pk_init(&np);
out:
    mbedtls_mpi_free(&two);
    mbedtls_ecp_point_free(&r);
    mbedtls_pk_free(&np);
    return ret;
}

/* Our key, the CA's and the peer's sign or verify with OpenSSL
 * (tls_pk.c, ~20 times faster than mbedTLS 2.28 here); failing that, with
 * the generator's table kept (pk_with_table). */
static int pk_fast(mbedtls_pk_context *pk, const mbedtls_ecp_group *warm, mbedtls_ctr_drbg_context *drbg)
{
    if (ps__tls_pk_ossl(pk) == 0)
        return 0;
    return pk_with_table(pk, warm, drbg);
}

int ps__tls_conf_peer_key(ps_tls_conf_t *c, mbedtls_x509_crt *crt)
{
    /* P-256 only (our PKI's curve, whose table the CA group holds): the
     * curve check mbedTLS makes after verification asks for an ECKEY and
     * passes over an ECDSA key, and P-256 is always in our curve list. */
    if (mbedtls_pk_get_type(&crt->pk) != MBEDTLS_PK_ECKEY ||
        mbedtls_pk_ec(crt->pk)->grp.id != MBEDTLS_ECP_DP_SECP256R1)
        return 0;
    if (ps__tls_pk_ossl(&crt->pk) == 0)
        return 0;
    return c->p256 ? pk_with_table(&crt->pk, c->p256, NULL) : 0;
}

/* The CA, the CRL, our certificate and its key, checked to belong together
 * and to carry a popsync identity.  PS_OK or an error (told). */
static int load_files(ps_tls_conf_t *c, const char *ca_file, const char *cert_file, const char *key_file,
                      const char *crl_file, char *err, size_t errlen)
{
    int rc, ret;

    if ((ret = mbedtls_x509_crt_parse_file(&c->ca, ca_file)) != 0)
        return conf_fail(err, errlen, "tls: loading CA", ca_file, ret);
    if (crl_file) {
        if ((rc = crl_load(c, 0, crl_file, err, errlen)) != PS_OK)
            return rc;
        c->have_crl = 1;
    }
    if ((ret = mbedtls_x509_crt_parse_file(&c->cert, cert_file)) != 0)
        return conf_fail(err, errlen, "tls: loading certificate", cert_file, ret);
    if ((ret = mbedtls_pk_parse_keyfile(&c->key, key_file, NULL)) != 0)
        return conf_fail(err, errlen, "tls: loading key", key_file, ret);
    /* Catch a mismatched pair now, not as a signature failure the peer
     * reports with a useless alert. */
    if ((ret = mbedtls_pk_check_pair(&c->cert.pk, &c->key)) != 0)
        return conf_fail(err, errlen, "tls: key does not match certificate", cert_file, ret);
    if (ps__tls_identity(&c->cert, &c->self) != PS_OK) {
        conf_msg(err, errlen, "tls: own certificate carries no popsync identity (CN, OU, title)");
        return PS_EINVAL;
    }
    if ((ret = pk_fast(&c->key, NULL, &c->drbg)) != 0)
        return conf_fail(err, errlen, "tls: preparing key", key_file, ret);
    for (mbedtls_x509_crt *ca = &c->ca; ca && ca->version != 0; ca = ca->next) {
        if ((ret = pk_fast(&ca->pk, c->p256, &c->drbg)) != 0)
            return conf_fail(err, errlen, "tls: preparing CA key", ca_file, ret);
        /* A table for the peer keys' fallback (only if OpenSSL failed). */
        if (!c->p256 && mbedtls_pk_get_type(&ca->pk) == MBEDTLS_PK_ECDSA &&
            mbedtls_pk_ec(ca->pk)->grp.id == MBEDTLS_ECP_DP_SECP256R1 && mbedtls_pk_ec(ca->pk)->grp.T)
            c->p256 = &mbedtls_pk_ec(ca->pk)->grp;
    }
    return PS_OK;
}

/* The SSL configuration: TLS 1.2 only, our suites, curves and hashes,
 * verified peers, tickets on the server.  PS_OK or an error (told). */
static int setup_ssl(ps_tls_conf_t *c, ps_tls_side_t side, char *err, size_t errlen)
{
    int ret;

    if ((ret = mbedtls_ssl_config_defaults(&c->ssl,
                                           side == PS_TLS_SERVER ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                           MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
        return conf_fail(err, errlen, "tls: config defaults", NULL, ret);
    mbedtls_ssl_conf_min_version(&c->ssl, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_max_version(&c->ssl, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_ciphersuites(&c->ssl, ps_suites);
    mbedtls_ssl_conf_curves(&c->ssl, ps_curves);
    mbedtls_ssl_conf_sig_hashes(&c->ssl, ps_sig_hashes);
    mbedtls_ssl_conf_cert_profile(&c->ssl, &ps_cert_profile);
    mbedtls_ssl_conf_renegotiation(&c->ssl, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
    /* Refuse peers that do not support secure renegotiation signalling
     * (RFC 5746) at all, even though we never renegotiate. */
    mbedtls_ssl_conf_legacy_renegotiation(&c->ssl, MBEDTLS_SSL_LEGACY_BREAK_HANDSHAKE);
    /* RFC 7627: binds the master secret to the whole handshake (triple
     * handshake attack).  Encrypt-then-MAC only matters to CBC suites, which
     * we never negotiate; it stays on in case the list ever grows. */
    mbedtls_ssl_conf_extended_master_secret(&c->ssl, MBEDTLS_SSL_EXTENDED_MS_ENABLED);
#if defined(MBEDTLS_SSL_ENCRYPT_THEN_MAC)
    mbedtls_ssl_conf_encrypt_then_mac(&c->ssl, MBEDTLS_SSL_ETM_ENABLED);
#endif
    mbedtls_ssl_conf_authmode(&c->ssl, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_rng(&c->ssl, mbedtls_ctr_drbg_random, &c->drbg);
    /* No CRL for mbedTLS: see the top of this file. */
    mbedtls_ssl_conf_ca_chain(&c->ssl, &c->ca, NULL);
    if ((ret = mbedtls_ssl_conf_own_cert(&c->ssl, &c->cert, &c->key)) != 0)
        return conf_fail(err, errlen, "tls: own certificate", NULL, ret);
    if (side == PS_TLS_SERVER) {
        if ((ret = mbedtls_ssl_ticket_setup(&c->ticket, mbedtls_ctr_drbg_random, &c->drbg,
                                            MBEDTLS_CIPHER_AES_256_GCM, PS_TICKET_LIFETIME_S)) != 0)
            return conf_fail(err, errlen, "tls: session ticket key", NULL, ret);
        mbedtls_ssl_conf_session_tickets_cb(&c->ssl, mbedtls_ssl_ticket_write, mbedtls_ssl_ticket_parse,
                                            &c->ticket);
    } else {
        mbedtls_ssl_conf_session_tickets(&c->ssl, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
    }
    return PS_OK;
}

int ps_tls_conf_new(ps_tls_conf_t **out, ps_tls_side_t side, const char *ca_file, const char *cert_file,
                    const char *key_file, const char *crl_file, char *err, size_t errlen)
{
    static const char pers[] = "popsync tls conf";
    ps_tls_conf_t *c;
    int rc = PS_OK, ret;

    *out = NULL;
    if ((side != PS_TLS_SERVER && side != PS_TLS_CLIENT) || !ca_file || !cert_file || !key_file) {
        conf_msg(err, errlen, "tls: missing CA, certificate or key file");
        return PS_EINVAL;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        conf_msg(err, errlen, "tls: out of memory");
        return PS_ENOMEM;
    }
    c->side = side;
    /* Initialise everything first so the single cleanup path can free any
     * prefix of the setup below. */
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crl_init(&c->crl[0]);
    mbedtls_x509_crl_init(&c->crl[1]);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_pk_init(&c->key);
    mbedtls_ssl_ticket_init(&c->ticket);
    mbedtls_ssl_config_init(&c->ssl);
    mbedtls_x509_crt_init(&c->no_ca);
    pthread_mutex_init(&c->vc_mu, NULL);

    if ((rc = ps_tls_conf_set_vcache(c, PS_TLS_VCACHE_DEFAULT)) != PS_OK) {
        conf_msg(err, errlen, "tls: out of memory");
        goto out;
    }
    if ((ret = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy, (const unsigned char *)pers,
                                     sizeof(pers) - 1)) != 0) {
        rc = conf_fail(err, errlen, "tls: seeding the DRBG", NULL, ret);
        goto out;
    }
    if ((rc = load_files(c, ca_file, cert_file, key_file, crl_file, err, errlen)) ||
        (rc = setup_ssl(c, side, err, errlen)))
        goto out;
    *out = c;
    c = NULL;
out:
    ps_tls_conf_free(c);
    return rc;
}

void ps_tls_conf_free(ps_tls_conf_t *c)
{
    if (!c)
        return;
    mbedtls_ssl_config_free(&c->ssl);
    mbedtls_ssl_ticket_free(&c->ticket);
    mbedtls_pk_free(&c->key);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_x509_crl_free(&c->crl[0]);
    mbedtls_x509_crl_free(&c->crl[1]);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    mbedtls_x509_crt_free(&c->no_ca);
    pthread_mutex_destroy(&c->vc_mu);
    free(c->vc);
    free(c);
}

int ps_tls_conf_set_vcache(ps_tls_conf_t *c, size_t entries)
{
    struct vc_entry *vc = NULL;

    if (entries && !(vc = calloc(entries, sizeof(*vc))))
        return PS_ENOMEM;
    pthread_mutex_lock(&c->vc_mu);
    free(c->vc);
    c->vc = vc;
    c->vc_cap = entries;
    c->vc_len = 0;
    pthread_mutex_unlock(&c->vc_mu);
    return PS_OK;
}

void ps_tls_conf_vcache_stats(ps_tls_conf_t *c, size_t *entries, uint64_t *hits)
{
    pthread_mutex_lock(&c->vc_mu);
    if (entries)
        *entries = c->vc_len;
    if (hits)
        *hits = c->vc_hits;
    pthread_mutex_unlock(&c->vc_mu);
}

struct mbedtls_x509_crt *ps__tls_conf_no_ca(ps_tls_conf_t *c) { return &c->no_ca; }

/* A linear scan: a district has hundreds of devices, and 1,024 entries of
 * 40 bytes are scanned in about a microsecond, next to the ~1 ms signature
 * check a hit saves. */
static struct vc_entry *vc_lookup(ps_tls_conf_t *c, const uint8_t hash[32])
{
    for (size_t i = 0; i < c->vc_len; i++)
        if (memcmp(c->vc[i].hash, hash, 32) == 0)
            return &c->vc[i];
    return NULL;
}

int ps__tls_conf_vcache_find(ps_tls_conf_t *c, const uint8_t hash[32], int hit)
{
    struct vc_entry *e;

    pthread_mutex_lock(&c->vc_mu);
    if ((e = vc_lookup(c, hash))) {
        e->used = ++c->vc_tick;
        if (hit)
            c->vc_hits++;
    }
    pthread_mutex_unlock(&c->vc_mu);
    return e != NULL;
}

void ps__tls_conf_vcache_add(ps_tls_conf_t *c, const uint8_t hash[32])
{
    struct vc_entry *e;

    pthread_mutex_lock(&c->vc_mu);
    if (c->vc_cap == 0) {
        pthread_mutex_unlock(&c->vc_mu);
        return;
    }
    if (!(e = vc_lookup(c, hash))) {
        if (c->vc_len < c->vc_cap) {
            e = &c->vc[c->vc_len++];
        } else {
            e = &c->vc[0];
            for (size_t i = 1; i < c->vc_len; i++)
                if (c->vc[i].used < e->used)
                    e = &c->vc[i];
        }
        memcpy(e->hash, hash, 32);
    }
    e->used = ++c->vc_tick;
    pthread_mutex_unlock(&c->vc_mu);
}

const ps_peer_t *ps_tls_conf_self(const ps_tls_conf_t *c) { return &c->self; }

const struct mbedtls_ssl_config *ps__tls_conf_ssl(const ps_tls_conf_t *c) { return &c->ssl; }

ps_tls_side_t ps__tls_conf_side(const ps_tls_conf_t *c) { return c->side; }

int ps_tls_conf_reload_crl(ps_tls_conf_t *c, const char *file, char *err, size_t errlen)
{
    int spare, rc;

    if (!c || !file) {
        conf_msg(err, errlen, "tls: no CRL file configured");
        return PS_EINVAL;
    }
    spare = c->have_crl ? 1 - c->crl_cur : c->crl_cur;
    rc = crl_load(c, spare, file, err, errlen);
    if (rc != PS_OK) {
        mbedtls_x509_crl_free(&c->crl[spare]);
        mbedtls_x509_crl_init(&c->crl[spare]);
        return rc;
    }
    if (c->have_crl) {
        mbedtls_x509_crl_free(&c->crl[c->crl_cur]);
        mbedtls_x509_crl_init(&c->crl[c->crl_cur]);
    }
    c->crl_cur = spare;
    c->have_crl = 1;
    /* The CRL is checked on every handshake, cached or not; emptying the
     * cache as well makes every peer go through the CA's check again. */
    pthread_mutex_lock(&c->vc_mu);
    c->vc_len = 0;
    pthread_mutex_unlock(&c->vc_mu);
    return PS_OK;
}

/* Hex of a DER INTEGER's content without leading zero bytes, so "00ab" and
 * "ab" compare equal.  Returns 0 when it does not fit. */
static int serial_norm(const unsigned char *p, size_t len, char out[41])
{
    while (len > 1 && p[0] == 0) {
        p++;
        len--;
    }
    if (len == 0 || len > 20)
        return 0;
    ps_hex(p, len, out);
    return 1;
}

int ps_tls_conf_is_revoked(const ps_tls_conf_t *c, const char *serial_hex)
{
    char want[41], have[41];
    size_t n;

    if (!c || !c->have_crl || !serial_hex)
        return 0;
    /* Same normalisation as serial_norm, on the hex text. */
    while (serial_hex[0] == '0' && serial_hex[1] == '0' && serial_hex[2])
        serial_hex += 2;
    n = strlen(serial_hex);
    if (n == 0 || n >= sizeof(want))
        return 0;
    memcpy(want, serial_hex, n + 1);
    for (const mbedtls_x509_crl *crl = &c->crl[c->crl_cur]; crl && crl->version != 0; crl = crl->next)
        for (const mbedtls_x509_crl_entry *e = &crl->entry; e && e->serial.len; e = e->next)
            if (serial_norm(e->serial.p, e->serial.len, have) && strcasecmp(have, want) == 0)
                return 1;
    return 0;
}

int ps__tls_conf_revoked_crt(const ps_tls_conf_t *c, const mbedtls_x509_crt *crt)
{
    char have[41], want[41];

    if (!c || !c->have_crl || !serial_norm(crt->serial.p, crt->serial.len, want))
        return 0;
    /* The CA itself is trusted, not revoked by its own list. */
    for (const mbedtls_x509_crt *ca = &c->ca; ca && ca->version != 0; ca = ca->next)
        if (ca->raw.len == crt->raw.len && memcmp(ca->raw.p, crt->raw.p, crt->raw.len) == 0)
            return 0;
    for (const mbedtls_x509_crl *crl = &c->crl[c->crl_cur]; crl && crl->version != 0; crl = crl->next) {
        /* Only the issuer's list speaks for its certificates (as mbedTLS's
         * own check); every list loaded is our CA's (crl_check). */
        if (crl->issuer_raw.len != crt->issuer_raw.len ||
            memcmp(crl->issuer_raw.p, crt->issuer_raw.p, crt->issuer_raw.len) != 0)
            continue;
        for (const mbedtls_x509_crl_entry *e = &crl->entry; e && e->serial.len; e = e->next)
            if (serial_norm(e->serial.p, e->serial.len, have) && strcmp(have, want) == 0)
                return 1;
    }
    return 0;
}

const mbedtls_x509_crl *ps__tls_conf_mbedtls_crl(const ps_tls_conf_t *c)
{
    return ps__tls_conf_ssl(c)->ca_crl;
}

int ps_tls_conf_crl_info(const ps_tls_conf_t *c, size_t *nrevoked, int64_t *next_update)
{
    const mbedtls_x509_crl *crl;
    size_t n = 0;
    int64_t next = 0;

    if (nrevoked)
        *nrevoked = 0;
    if (next_update)
        *next_update = 0;
    if (!c || !c->have_crl)
        return 0;
    for (crl = &c->crl[c->crl_cur]; crl && crl->version != 0; crl = crl->next) {
        const mbedtls_x509_time *t = &crl->next_update;
        for (const mbedtls_x509_crl_entry *e = &crl->entry; e && e->serial.len; e = e->next)
            n++;
        if (t->year) {
            struct tm tm;
            memset(&tm, 0, sizeof(tm));
            tm.tm_year = t->year - 1900;
            tm.tm_mon = t->mon - 1;
            tm.tm_mday = t->day;
            tm.tm_hour = t->hour;
            tm.tm_min = t->min;
            tm.tm_sec = t->sec;
            int64_t v = (int64_t)timegm(&tm);
            if (next == 0 || v < next)
                next = v;
        }
    }
    if (nrevoked)
        *nrevoked = n;
    if (next_update)
        *next_update = next;
    return 1;
}
