/* tls.c - one TLS connection driven through memory buffers.
 *
 * Owns: ps_tls_t (an mbedtls_ssl_context plus its two ciphertext buffers),
 * the peer identity read from the verified certificate and the role names.
 * Which roles each side accepts is asked of the access policy (policy.h).  The mbedTLS BIO
 * callbacks only touch cipher_in and cipher_out, so nothing here ever blocks;
 * the caller moves ciphertext to and from the network.  A full handshake
 * uses the conf's verified cache (peek_cached, verify_cb; tls_conf.c).
 */
#include "tls.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "err.h"
#include "ids.h"
#include "policy.h"

struct ps_tls {
    mbedtls_ssl_context ssl;
    ps_tls_conf_t *conf;
    ps_tls_side_t side;
    ps_buf_t in;  /* ciphertext from the network, drained by recv_cb */
    ps_buf_t out; /* ciphertext for the network, filled by send_cb */
    ps_peer_t peer;
    int established;
    int failed;         /* sticky: mbedTLS contexts are unusable after a fatal error */
    const char *reject; /* set by verify_cb when the peer's identity is refused */
    char expected[64];  /* client: the server name asked for, to say so when it differs */
    char seen_name[64]; /* the peer certificate's CN, once verify_cb has read it */
    int ca_skipped;     /* this handshake verifies against the empty trust list (peek_cached) */
    int vc_candidate;   /* verify_cb saw the leaf checked against the CA: cache it on success */
    uint8_t leaf_hash[32];
    char err[256];
};

static const char *const role_names[] = {
    [PS_ROLE_NONE] = "none",         [PS_ROLE_SERVER] = "server",       [PS_ROLE_ADMIN] = "admin",
    [PS_ROLE_TOWNSHIP] = "township", [PS_ROLE_COLLECTOR] = "collector", [PS_ROLE_VIEWER] = "viewer",
};

ps_role_t ps_role_from_name(const char *name)
{
    if (!name)
        return PS_ROLE_NONE;
    for (int r = PS_ROLE_SERVER; r <= PS_ROLE_VIEWER; r++)
        if (strcmp(name, role_names[r]) == 0)
            return (ps_role_t)r;
    return PS_ROLE_NONE;
}

const char *ps_role_name(ps_role_t role)
{
    if ((int)role < PS_ROLE_NONE || role > PS_ROLE_VIEWER)
        return "none";
    return role_names[role];
}

/* Copies an attribute value as a C string.  Refuses control bytes (and NUL)
 * so a crafted certificate cannot smuggle line breaks into logs or a NUL that
 * truncates the name compared elsewhere. */
static int copy_attr(const mbedtls_asn1_buf *val, char *dst, size_t cap)
{
    if (val->len == 0 || val->len >= cap)
        return PS_EINVAL;
    for (size_t i = 0; i < val->len; i++)
        if (val->p[i] < 0x20 || val->p[i] == 0x7f)
            return PS_EINVAL;
    memcpy(dst, val->p, val->len);
    dst[val->len] = '\0';
    return PS_OK;
}

int ps__tls_identity(const mbedtls_x509_crt *crt, ps_peer_t *out)
{
    ps_peer_t p;
    int have_cn = 0, have_ou = 0, have_title = 0;
    char title[sizeof(p.role_name)];
    const mbedtls_x509_name *n;

    memset(&p, 0, sizeof(p));
    /* Each attribute must appear exactly once: with two CNs, mbedTLS's name
     * check and our identity could look at different ones. */
    for (n = &crt->subject; n; n = n->next) {
        if (!n->oid.p)
            continue;
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0) {
            if (have_cn++ || copy_attr(&n->val, p.name, sizeof(p.name)))
                return PS_EINVAL;
        } else if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_ORG_UNIT, &n->oid) == 0) {
            if (have_ou++ || copy_attr(&n->val, p.orgunit, sizeof(p.orgunit)))
                return PS_EINVAL;
        } else if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_TITLE, &n->oid) == 0) {
            if (have_title++ || copy_attr(&n->val, title, sizeof(title)))
                return PS_EINVAL;
        }
    }
    if (!have_cn || !have_ou || !have_title)
        return PS_EINVAL;
    if (strlen(p.orgunit) != 12 || strspn(p.orgunit, "0123456789") != 12)
        return PS_EINVAL;
    p.role = ps_role_from_name(title);
    if (p.role == PS_ROLE_NONE)
        return PS_EINVAL;
    snprintf(p.role_name, sizeof(p.role_name), "%s", ps_role_name(p.role));
    if (crt->serial.len == 0 || crt->serial.len * 2 + 1 > sizeof(p.serial_hex))
        return PS_EINVAL;
    ps_hex(crt->serial.p, crt->serial.len, p.serial_hex);
    *out = p;
    return PS_OK;
}

/* Which roles each side accepts is the access policy's (policy.h). */
static int role_allowed(ps_tls_side_t side, ps_role_t peer)
{
    return ps_policy_tls_role(side == PS_TLS_CLIENT, peer);
}

static int send_cb(void *ctx, const unsigned char *p, size_t len)
{
    ps_tls_t *tls = ctx;
    if (ps_buf_append(&tls->out, p, len) != PS_OK)
        return MBEDTLS_ERR_SSL_ALLOC_FAILED;
    return (int)len;
}

static int recv_cb(void *ctx, unsigned char *p, size_t len)
{
    ps_tls_t *tls = ctx;
    size_t n = ps_buf_size(&tls->in);

    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n > len)
        n = len;
    memcpy(p, ps_buf_head(&tls->in), n);
    ps_buf_consume(&tls->in, n);
    return (int)n;
}

/* Big-endian 24-bit length of TLS handshake structures. */
static size_t be24(const uint8_t *p) { return (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2]; }

/* Called before mbedTLS reads the peer's Certificate message.  When that
 * message is the next record in cipher_in (mbedTLS reads records one at a
 * time, and its own buffer is empty), holds exactly one certificate, and the
 * SHA-256 of that certificate's DER is in the verified cache, this
 * handshake verifies against an empty trust list: mbedTLS then checks
 * everything but the CA's signature (dates, the signature algorithm and key
 * against the profile, the server name, key usages for the suite) and flags
 * the leaf NOT_TRUSTED, which verify_cb clears only for a cached DER.  The
 * peek is a hint: verify_cb looks up the certificate mbedTLS actually
 * parsed, so a message that differs from what was peeked is refused, never
 * accepted.  docs/security.md §2.3a. */
static void peek_cached(ps_tls_t *tls)
{
    const uint8_t *p = ps_buf_head(&tls->in), *m;
    size_t n = ps_buf_size(&tls->in), rlen, clen;
    uint8_t hash[32];

    /* mbedTLS must hold nothing unread: no partial record, and the last
     * message it read filled its record (it frees it lazily). */
    if (tls->ca_skipped || tls->ssl.in_left || tls->ssl.keep_current_message ||
        (tls->ssl.in_msglen && tls->ssl.in_msglen != tls->ssl.in_hslen) || n < 5 + 4 + 3 + 3)
        return;
    /* Record: handshake (22), TLS 1.2, length; message: Certificate (11),
     * length, then the list's length and the first certificate's. */
    if (p[0] != 22 || p[1] != 3 || p[2] != 3)
        return;
    rlen = (size_t)p[3] << 8 | p[4];
    m = p + 5;
    if (n < 5 + rlen || rlen < 4 + 3 + 3 || m[0] != 11 || be24(m + 1) != rlen - 4 || be24(m + 4) != rlen - 7)
        return;
    clen = be24(m + 7);
    if (clen == 0 || clen != rlen - 10)
        return;
    if (mbedtls_sha256_ret(m + 10, clen, hash, 0) != 0 || !ps__tls_conf_vcache_find(tls->conf, hash, 0))
        return;
    mbedtls_ssl_set_hs_ca_chain(&tls->ssl, ps__tls_conf_no_ca(tls->conf), NULL);
    tls->ca_skipped = 1;
}

/* Runs for every certificate of the peer's chain after mbedTLS's own checks
 * (chain, signatures, validity dates, CRL, key usage); only the leaf (depth
 * 0) carries the identity.  Refusing here rather than after the handshake
 * makes mbedTLS send a bad_certificate alert and stops the handshake before
 * any key is confirmed. */
static int verify_cb(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    ps_tls_t *tls = ctx;
    ps_peer_t id;
    const char *want_eku = tls->side == PS_TLS_SERVER ? MBEDTLS_OID_CLIENT_AUTH : MBEDTLS_OID_SERVER_AUTH;
    size_t want_eku_len = tls->side == PS_TLS_SERVER ? MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)
                                                     : MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH);

    /* The CRL is read from the server's own disk, so an overdue nextUpdate
     * means the operator has not re-issued it, not that someone replays an
     * old list: its revocations still apply (mbedTLS checks the serials
     * regardless) and the server warns about it in its log.  Refusing every
     * client instead would stop a whole district over a missed renewal. */
    *flags &= ~(uint32_t)(MBEDTLS_X509_BADCRL_EXPIRED | MBEDTLS_X509_BADCRL_FUTURE);
    /* Revocation is ours (tls_conf.c: the CRL's signature is checked once,
     * when loaded, not on every handshake): same flag, same refusal. */
    if (ps__tls_conf_revoked_crt(tls->conf, crt))
        *flags |= MBEDTLS_X509_BADCERT_REVOKED;
    if (depth != 0)
        return 0;
    /* The verified cache (peek_cached): with the empty trust list, only a
     * leaf whose exact DER completed a full handshake against the CA loses
     * its NOT_TRUSTED flag; every other flag stays. */
    if (mbedtls_sha256_ret(crt->raw.p, crt->raw.len, tls->leaf_hash, 0) != 0) {
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    } else if (tls->ca_skipped) {
        if ((*flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) && crt->next == NULL &&
            ps__tls_conf_vcache_find(tls->conf, tls->leaf_hash, 1))
            *flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_NOT_TRUSTED;
    } else {
        tls->vc_candidate = 1;
    }
    /* mbedTLS accepts a certificate without keyUsage or extendedKeyUsage
     * (absent means "any"); ours always carry both, so require them. */
    if (!(crt->ext_types & MBEDTLS_X509_EXT_KEY_USAGE) ||
        mbedtls_x509_crt_check_key_usage(crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0) {
        tls->reject = "peer certificate lacks the digitalSignature key usage";
        *flags |= MBEDTLS_X509_BADCERT_KEY_USAGE;
    } else if (!(crt->ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE) ||
               mbedtls_x509_crt_check_extended_key_usage(crt, want_eku, want_eku_len) != 0) {
        tls->reject = tls->side == PS_TLS_SERVER ? "peer certificate is not for clientAuth"
                                                 : "peer certificate is not for serverAuth";
        *flags |= MBEDTLS_X509_BADCERT_EXT_KEY_USAGE;
    } else if (ps__tls_identity(crt, &id) != PS_OK) {
        tls->reject = "peer certificate carries no valid popsync identity";
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    } else if (!role_allowed(tls->side, id.role)) {
        tls->reject = tls->side == PS_TLS_CLIENT ? "peer certificate role is not server"
                                                 : "peer certificate role not accepted by server";
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    } else {
        snprintf(tls->seen_name, sizeof(tls->seen_name), "%s", id.name);
    }
    /* The peer's key is used once more, for its signature of this
     * handshake; only for a certificate that passed every check. */
    if (*flags == 0 && ps__tls_conf_peer_key(tls->conf, crt) != 0)
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
    return 0;
}

static int fail(ps_tls_t *tls, const char *what, int mret)
{
    char msg[100];

    tls->failed = 1;
    if (tls->reject) {
        snprintf(tls->err, sizeof(tls->err), "%s: %s", what, tls->reject);
    } else if (mret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        char info[128], *nl;
        uint32_t flags = mbedtls_ssl_get_verify_result(&tls->ssl);
        /* Name the reason an operator acts on first. */
        if (flags & MBEDTLS_X509_BADCERT_REVOKED)
            flags = MBEDTLS_X509_BADCERT_REVOKED;
        else if (flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE))
            flags &= MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE;
        /* The name check is the one an operator fixes by hand: say both names. */
        if (flags == MBEDTLS_X509_BADCERT_CN_MISMATCH && tls->seen_name[0]) {
            snprintf(tls->err, sizeof(tls->err),
                     "%s: the server's certificate is named '%.60s', but '%.60s' was expected (set the expected name "
                     "with popsync config set server_name NAME)",
                     what, tls->seen_name, tls->expected);
            return PS_ETLS;
        }
        /* verify_info writes one line per flag; the first says enough. */
        if (mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags) <= 0)
            snprintf(info, sizeof(info), "flags 0x%08x", (unsigned)flags);
        if ((nl = strchr(info, '\n')))
            *nl = '\0';
        snprintf(tls->err, sizeof(tls->err), "%s: peer certificate refused: %s", what, info);
    } else if (mret < 0) {
        mbedtls_strerror(mret, msg, sizeof(msg));
        snprintf(tls->err, sizeof(tls->err), "%s: %s (-0x%04X)", what, msg, (unsigned)-mret);
    } else {
        snprintf(tls->err, sizeof(tls->err), "%s", what);
    }
    return PS_ETLS;
}

int ps_tls_new(ps_tls_t **out, ps_tls_conf_t *conf, const char *server_name)
{
    ps_tls_t *tls;
    int rc = PS_OK, ret;

    *out = NULL;
    if (!conf)
        return PS_EINVAL;
    /* A client without an expected name would accept any server certificate
     * from our CA, including a stolen one re-labelled; insist on it. */
    if ((ps__tls_conf_side(conf) == PS_TLS_CLIENT) != (server_name != NULL))
        return PS_EINVAL;
    tls = calloc(1, sizeof(*tls));
    if (!tls)
        return PS_ENOMEM;
    tls->conf = conf;
    tls->side = ps__tls_conf_side(conf);
    ps_buf_init(&tls->in);
    ps_buf_init(&tls->out);
    mbedtls_ssl_init(&tls->ssl);
    if ((ret = mbedtls_ssl_setup(&tls->ssl, ps__tls_conf_ssl(conf))) != 0) {
        rc = ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? PS_ENOMEM : PS_ETLS;
        goto out;
    }
    if (server_name)
        snprintf(tls->expected, sizeof(tls->expected), "%s", server_name);
    if (server_name && (ret = mbedtls_ssl_set_hostname(&tls->ssl, server_name)) != 0) {
        rc = ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? PS_ENOMEM : PS_EINVAL;
        goto out;
    }
    mbedtls_ssl_set_verify(&tls->ssl, verify_cb, tls);
    mbedtls_ssl_set_bio(&tls->ssl, tls, send_cb, recv_cb, NULL);
    *out = tls;
    tls = NULL;
out:
    ps_tls_free(tls);
    return rc;
}

void ps_tls_free(ps_tls_t *tls)
{
    if (!tls)
        return;
    mbedtls_ssl_free(&tls->ssl);
    ps_buf_free(&tls->in);
    ps_buf_free(&tls->out);
    free(tls);
}

ps_buf_t *ps_tls_cipher_in(ps_tls_t *tls) { return &tls->in; }

ps_buf_t *ps_tls_cipher_out(ps_tls_t *tls) { return &tls->out; }

int ps_tls_handshake(ps_tls_t *tls)
{
    int ret;

    if (tls->failed)
        return PS_ETLS;
    if (tls->established)
        return PS_OK;
    /* mbedtls_ssl_handshake's loop, with a look at the peer's Certificate
     * message before the step that reads it. */
    ret = 0;
    while (ret == 0 && tls->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        if (tls->ssl.state == (tls->side == PS_TLS_SERVER ? MBEDTLS_SSL_CLIENT_CERTIFICATE
                                                          : MBEDTLS_SSL_SERVER_CERTIFICATE))
            peek_cached(tls);
        ret = mbedtls_ssl_handshake_step(&tls->ssl);
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return PS_EAGAIN;
    if (ret != 0)
        return fail(tls, "handshake", ret);
    /* Read the identity from the session rather than trusting verify_cb ran:
     * a resumed session carries the certificate but skips verification. */
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&tls->ssl);
    if (!crt)
        return fail(tls, "handshake: peer presented no certificate", 0);
    if (ps__tls_identity(crt, &tls->peer) != PS_OK)
        return fail(tls, "handshake: peer certificate carries no valid popsync identity", 0);
    if (!role_allowed(tls->side, tls->peer.role))
        return fail(tls, "handshake: peer certificate role not accepted", 0);
    /* A resumed session skips verification, so the dates and the CRL (which
     * may have been reloaded since the ticket was issued) are checked here
     * again.  For a full handshake this repeats mbedTLS's verdict. */
    if (mbedtls_x509_time_is_past(&crt->valid_to))
        return fail(tls, "handshake: peer certificate refused: The certificate validity has expired", 0);
    if (mbedtls_x509_time_is_future(&crt->valid_from))
        return fail(tls, "handshake: peer certificate refused: The certificate validity starts in the future", 0);
    if (ps_tls_conf_is_revoked(tls->conf, tls->peer.serial_hex))
        return fail(tls, "handshake: peer certificate refused: The certificate has been revoked (is on a CRL)", 0);
    /* A full handshake whose chain mbedTLS verified against the CA, and
     * whose peer then proved it holds the key: remember the certificate. */
    if (tls->vc_candidate)
        ps__tls_conf_vcache_add(tls->conf, tls->leaf_hash);
    /* The peer's key has signed its last message to us (no renegotiation);
     * what verify_cb gave it for that check would only weigh on an idle
     * connection.  The certificate is the session's, ours to change. */
    ps__tls_pk_ossl_shed(&((mbedtls_x509_crt *)crt)->pk);
    tls->established = 1;
    return PS_OK;
}

int ps_tls_established(const ps_tls_t *tls) { return tls->established; }

int ps_tls_read(ps_tls_t *tls, uint8_t *buf, size_t cap, size_t *n)
{
    int ret, rc;

    *n = 0;
    if (cap == 0)
        return PS_EINVAL;
    if (!tls->established) {
        rc = ps_tls_handshake(tls);
        if (rc != PS_OK)
            return rc;
    }
    if (tls->failed)
        return PS_ETLS;
    ret = mbedtls_ssl_read(&tls->ssl, buf, cap);
    if (ret > 0) {
        *n = (size_t)ret;
        return PS_OK;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return PS_EAGAIN;
    /* recv_cb never reports end of stream, so 0 can only mean close_notify. */
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return PS_ECLOSED;
    return fail(tls, "read", ret);
}

int ps_tls_write(ps_tls_t *tls, const uint8_t *p, size_t len)
{
    int ret;

    if (tls->failed)
        return PS_ETLS;
    if (!tls->established)
        return fail(tls, "write before the handshake completed", 0);
    /* mbedtls_ssl_write takes at most one record per call. */
    while (len > 0) {
        ret = mbedtls_ssl_write(&tls->ssl, p, len);
        if (ret <= 0)
            return fail(tls, "write", ret);
        p += ret;
        len -= (size_t)ret;
    }
    return PS_OK;
}

/* Gives the whole pages inside [p + keep, p + len) back to the kernel: they
 * read as zeros the next time they are touched. */
static void drop_pages(unsigned char *p, size_t keep, size_t len)
{
    long psz = sysconf(_SC_PAGESIZE);
    uintptr_t page = psz > 0 ? (uintptr_t)psz : 4096, lo, hi;
    if (!p || len <= keep)
        return;
    lo = ((uintptr_t)p + keep + page - 1) & ~(page - 1);
    hi = ((uintptr_t)p + len) & ~(page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* The bytes kept at the start of each record buffer: mbedTLS keeps the
 * incoming record counter (in_ctr) in the first 8 bytes of in_buf for TLS,
 * then the record header and IV; 256 leaves a wide margin. */
#define PS_TLS_TRIM_KEEP 256

void ps_tls_trim(ps_tls_t *tls)
{
    mbedtls_ssl_context *ssl = &tls->ssl;

    if (ps_buf_size(&tls->in) == 0)
        ps_buf_free(&tls->in);
    if (ps_buf_size(&tls->out) == 0)
        ps_buf_free(&tls->out);
    if (!tls->established || tls->failed)
        return;
    /* Only between records: nothing half-read, undelivered or unsent. */
    if (ssl->state != MBEDTLS_SSL_HANDSHAKE_OVER || ssl->in_left || ssl->in_msglen || ssl->in_offt ||
        ssl->in_hslen || ssl->keep_current_message || ssl->out_left)
        return;
    /* Debian's mbedTLS 2.28 is built without MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH:
     * every context holds two record buffers of ~16.7 KB for its whole life,
     * 33 KB of an idle connection's memory once touched (calloc touches
     * them).  Between records their contents are dead, beyond the counter
     * kept above, so the pages inside them go back to the kernel until the
     * next record.  Only the CONTENT_LEN part is considered: the real
     * buffers are longer. */
    drop_pages(ssl->in_buf, PS_TLS_TRIM_KEEP, MBEDTLS_SSL_IN_CONTENT_LEN);
    drop_pages(ssl->out_buf, PS_TLS_TRIM_KEEP, MBEDTLS_SSL_OUT_CONTENT_LEN);
}

void ps_tls_close_notify(ps_tls_t *tls)
{
    if (tls->established && !tls->failed)
        (void)mbedtls_ssl_close_notify(&tls->ssl);
}

const ps_peer_t *ps_tls_peer(const ps_tls_t *tls) { return &tls->peer; }

const char *ps_tls_last_error(const ps_tls_t *tls) { return tls->err[0] ? tls->err : "no error"; }

const char *ps_tls_version(const ps_tls_t *tls)
{
    return tls->established ? mbedtls_ssl_get_version(&tls->ssl) : "none";
}

const char *ps_tls_ciphersuite(const ps_tls_t *tls)
{
    return tls->established ? mbedtls_ssl_get_ciphersuite(&tls->ssl) : "none";
}

int ps_tls_session_save(const ps_tls_t *tls, ps_buf_t *out)
{
    mbedtls_ssl_session s;
    size_t need = 0;
    int rc = PS_OK, ret;

    if (tls->side != PS_TLS_CLIENT || !tls->established)
        return PS_EINVAL;
    mbedtls_ssl_session_init(&s);
    if (mbedtls_ssl_get_session(&tls->ssl, &s) != 0) {
        rc = PS_ETLS;
        goto out;
    }
    ret = mbedtls_ssl_session_save(&s, NULL, 0, &need);
    if (ret != MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL && ret != 0) {
        rc = PS_ETLS;
        goto out;
    }
    ps_buf_reset(out);
    if ((rc = ps_buf_reserve(out, need)) != PS_OK)
        goto out;
    if (mbedtls_ssl_session_save(&s, ps_buf_tail(out), need, &need) != 0) {
        rc = PS_ETLS;
        goto out;
    }
    ps_buf_commit(out, need);
out:
    mbedtls_ssl_session_free(&s);
    return rc;
}

int ps_tls_session_resume(ps_tls_t *tls, const uint8_t *p, size_t len)
{
    mbedtls_ssl_session s;
    int rc = PS_OK;

    if (tls->side != PS_TLS_CLIENT || tls->established || tls->failed)
        return PS_EINVAL;
    mbedtls_ssl_session_init(&s);
    if (mbedtls_ssl_session_load(&s, p, len) != 0 || mbedtls_ssl_set_session(&tls->ssl, &s) != 0)
        rc = PS_EINVAL;
    mbedtls_ssl_session_free(&s);
    return rc;
}
