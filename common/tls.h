/* tls.h - the TLS engine: mbedTLS driven through memory buffers.
 *
 * Owns: ps_tls_conf_t (CA, own certificate and key, CRL, the hardened
 * mbedtls_ssl_config shared by all connections of one side) and ps_tls_t (one
 * TLS connection).  Knows nothing of sockets or libuv: the caller moves
 * ciphertext between the network and cipher_in/cipher_out, and the engine
 * never blocks.  Only tls*.c include mbedTLS headers; tls_pk.c has the
 * handshake's ECDSA computed by OpenSSL's libcrypto.
 *
 * Policy (docs/security.md): TLS 1.2 only; ECDHE-ECDSA with AES-GCM or
 * ChaCha20-Poly1305 only; renegotiation off; both sides present a certificate
 * that must chain to the configured CA, be within its validity dates, carry
 * digitalSignature and the EKU of its side (clientAuth / serverAuth), and
 * not be on the CRL; the client checks the server's name.
 *
 * Identity: certificates made by `popsync pki` carry the holder's name in the
 * subject CN, its org unit code in OU and its role in the title attribute.
 */
#ifndef PS_TLS_H
#define PS_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum ps_tls_side { PS_TLS_SERVER = 0, PS_TLS_CLIENT = 1 } ps_tls_side_t;

/** Roles carried in certificates. */
typedef enum ps_role {
    PS_ROLE_NONE = 0,
    PS_ROLE_SERVER,
    PS_ROLE_ADMIN,
    PS_ROLE_TOWNSHIP,
    PS_ROLE_COLLECTOR,
    PS_ROLE_VIEWER
} ps_role_t;

/** Who the peer is, read from its verified certificate. */
typedef struct ps_peer {
    ps_role_t role;
    char role_name[16];  /**< "admin", ... */
    char orgunit[16];    /**< 12-digit org unit code */
    char name[64];       /**< certificate CN */
    char serial_hex[40]; /**< certificate serial, hex */
} ps_peer_t;

typedef struct ps_tls_conf ps_tls_conf_t;
typedef struct ps_tls ps_tls_t;

/** Parses a role name ("township"); returns PS_ROLE_NONE when unknown. */
ps_role_t ps_role_from_name(const char *name);
/** Returns the name of a role, or "none". */
const char *ps_role_name(ps_role_t role);

/**
 * Makes a configuration for one side from PEM files.  crl_file may be NULL.
 * On failure returns a negative PS_E* code and writes a reason to err.
 * The caller owns *out and frees it with ps_tls_conf_free after every
 * ps_tls_t made from it is freed.
 */
int ps_tls_conf_new(ps_tls_conf_t **out, ps_tls_side_t side, const char *ca_file, const char *cert_file,
                    const char *key_file, const char *crl_file, char *err, size_t errlen);
void ps_tls_conf_free(ps_tls_conf_t *conf);
/** The identity in this side's own certificate. */
const ps_peer_t *ps_tls_conf_self(const ps_tls_conf_t *conf);

/** Entries of the verified-certificate cache of a new configuration. */
#define PS_TLS_VCACHE_DEFAULT 1024
/**
 * Sizes the cache of peer certificates already verified against the CA
 * (docs/security.md §2.3a): a full handshake with a peer whose certificate has
 * exactly the DER bytes of one that completed a full handshake before skips
 * only the CA's signature check; dates, CRL, key usages, identity and role
 * are checked as always.  0 turns it off.  Empties it.  Call before any
 * connection is made from conf.  PS_OK or PS_ENOMEM.
 */
int ps_tls_conf_set_vcache(ps_tls_conf_t *conf, size_t entries);
/** How many certificates the cache holds and how many handshakes skipped
 *  the CA's signature check thanks to it. */
void ps_tls_conf_vcache_stats(ps_tls_conf_t *conf, size_t *entries, uint64_t *hits);

/**
 * Re-reads the CRL from file (a PEM "X509 CRL" signed by the configured CA)
 * and makes it the one every later handshake checks.  Handshakes already
 * past certificate verification keep their result.  On failure the CRL in
 * force stays and a reason is written to err.  Loop thread only.
 */
int ps_tls_conf_reload_crl(ps_tls_conf_t *conf, const char *file, char *err, size_t errlen);
/** True when the CRL in force lists this serial (hex, any case). */
int ps_tls_conf_is_revoked(const ps_tls_conf_t *conf, const char *serial_hex);
/**
 * Describes the CRL in force: how many serials it revokes and its
 * nextUpdate (Unix seconds).  Returns 0 when no CRL is loaded, else 1.
 */
int ps_tls_conf_crl_info(const ps_tls_conf_t *conf, size_t *nrevoked, int64_t *next_update);

/**
 * Makes a connection.  server_name (client side only) is the name the
 * server's certificate must carry; NULL on the server side.  Caller owns *out.
 */
int ps_tls_new(ps_tls_t **out, ps_tls_conf_t *conf, const char *server_name);
void ps_tls_free(ps_tls_t *tls);

/** Ciphertext received from the network goes here (reserve, write, commit). */
ps_buf_t *ps_tls_cipher_in(ps_tls_t *tls);
/** Ciphertext to send to the network; the caller consumes what it takes. */
ps_buf_t *ps_tls_cipher_out(ps_tls_t *tls);

/**
 * Advances the handshake with what is in cipher_in.  Returns PS_OK when it
 * is complete (the peer is verified), PS_EAGAIN when more input is needed
 * (cipher_out may hold bytes to send), PS_ETLS on failure (see
 * ps_tls_last_error; cipher_out may hold an alert to send).
 */
int ps_tls_handshake(ps_tls_t *tls);
/** True once the handshake has completed. */
int ps_tls_established(const ps_tls_t *tls);

/**
 * Decrypts up to cap bytes of application data.  Returns PS_OK with *n > 0,
 * PS_EAGAIN when no whole record is buffered, PS_ECLOSED on close_notify,
 * PS_ETLS on failure.
 */
int ps_tls_read(ps_tls_t *tls, uint8_t *buf, size_t cap, size_t *n);
/** Encrypts all len bytes into cipher_out.  Returns PS_OK or PS_ETLS. */
int ps_tls_write(ps_tls_t *tls, const uint8_t *p, size_t len);
/**
 * An idle connection's memory: frees the ciphertext buffers when empty and,
 * between records of an established connection, gives the pages of
 * mbedTLS's two 16 KB record buffers back to the kernel (they are faulted in
 * again, zeroed, by the next record).  Costs a system call and a few page
 * faults later: call it for connections quiet for a while, not per record.
 */
void ps_tls_trim(ps_tls_t *tls);
/** Queues a close_notify alert into cipher_out. */
void ps_tls_close_notify(ps_tls_t *tls);
/** The verified peer identity; valid after the handshake completed. */
const ps_peer_t *ps_tls_peer(const ps_tls_t *tls);
/** A short reason for the last failure (no personal data). */
const char *ps_tls_last_error(const ps_tls_t *tls);
/** Negotiated protocol ("TLSv1.2") once established, else "none". */
const char *ps_tls_version(const ps_tls_t *tls);
/** Negotiated ciphersuite (mbedTLS name) once established, else "none". */
const char *ps_tls_ciphersuite(const ps_tls_t *tls);

/**
 * Client side: serialises the established session (the server's ticket and
 * the master secret) into out so a later connection to the same server can
 * resume it.  The bytes are secret: keep them in memory only.
 */
int ps_tls_session_save(const ps_tls_t *tls, ps_buf_t *out);
/**
 * Client side: offers a session saved by ps_tls_session_save; call before the
 * first ps_tls_handshake, only for a connection to the same server name.  If
 * the server declines, a full handshake happens.  PS_OK or PS_EINVAL.
 */
int ps_tls_session_resume(ps_tls_t *tls, const uint8_t *p, size_t len);

/* --- PKI: certificate authority and certificates (tls_pki.c) --- */

/**
 * Makes an ECDSA P-256 CA in dir: dir/ca.crt and dir/ca.key (0600).  Refuses
 * to overwrite an existing CA.  name is the CA's CN.
 */
int ps_pki_init_ca(const char *dir, const char *name, char *err, size_t errlen);
/**
 * Issues a certificate signed by the CA in dir for a holder with this role,
 * org unit (12 digits) and name: dir/NAME.crt and dir/NAME.key (0600).
 * Serials are 16 random bytes; the validity is days long, starting an hour
 * ago (clock skew), and never outlasts the CA.
 */
int ps_pki_issue(const char *dir, ps_role_t role, const char *orgunit, const char *name, int days, char *err,
                 size_t errlen);
/**
 * ps_pki_issue with the validity window moved by shift_days (negative: into
 * the past).  For tests of expired and not-yet-valid certificates only.
 */
int ps_pki_issue_shifted(const char *dir, ps_role_t role, const char *orgunit, const char *name, int days,
                         int shift_days, char *err, size_t errlen);

/** At most this many addresses in one certificate for `popsync ui`. */
#define PS_PKI_UI_MAX_ADDRS 8
/**
 * ps_pki_issue_shifted for a cache whose `popsync ui --listen` serves
 * browsers on other computers: the certificate is for serverAuth as well as
 * clientAuth, with a subjectAltName naming each of ui_addrs (1 to
 * PS_PKI_UI_MAX_ADDRS IP addresses or host names, the addresses the
 * browsers connect to).  Not for role server.  It still passes popsyncd's
 * checks as the cache's own identity; a popsync client still accepts only
 * role server as its server.
 */
int ps_pki_issue_ui(const char *dir, ps_role_t role, const char *orgunit, const char *name, int days, int shift_days,
                    const char *const *ui_addrs, size_t n, char *err, size_t errlen);
/**
 * Will a browser accept the certificate in cert_path (PEM) from a server at
 * host (an IP address or host name), once it trusts the CA?  PS_OK when it
 * is for serverAuth and its subjectAltName names host; else an error with
 * the reason in why (`popsync ui` warns with it).
 */
int ps_pki_cert_serves(const char *cert_path, const char *host, char *why, size_t whylen);

/** CRL reason codes (RFC 5280 CRLReason) that `pki revoke` offers. */
typedef enum ps_crl_reason {
    PS_CRL_UNSPECIFIED = 0,
    PS_CRL_KEY_COMPROMISE = 1,
    PS_CRL_SUPERSEDED = 4,
    PS_CRL_CESSATION = 5
} ps_crl_reason_t;

/** Parses "keyCompromise", ...; returns -1 when unknown. */
int ps_crl_reason_from_name(const char *name);
/** The RFC 5280 name of a reason, or "unspecified". */
const char *ps_crl_reason_name(int reason);

/**
 * Revokes a certificate of the CA in dir: by name (dir/NAME.crt, whose
 * serial is read; the certificate and key are then moved to dir/revoked/ so
 * the name can be issued again) or, when name is NULL, by serial_hex.  The
 * serial is added to dir/revoked.txt and a new CRL is written to dir/ca.crl
 * (v2, signed by the CA, nextUpdate in days).  serial_out (may be NULL)
 * receives the serial in lower-case hex.  PS_EEXIST when already revoked.
 */
int ps_pki_revoke(const char *dir, const char *name, const char *serial_hex, ps_crl_reason_t reason, int days,
                  char serial_out[41], char *err, size_t errlen);
/**
 * Re-issues dir/ca.crl from dir/revoked.txt with a new number and a
 * nextUpdate days from now.  *count (may be NULL) receives how many serials
 * it lists.
 */
int ps_pki_crl(const char *dir, int days, size_t *count, char *err, size_t errlen);
/** Reads the identity (CN, role, org unit, serial) of the certificate in
 *  PEM file path, without checking its chain (offline admin commands). */
int ps_pki_cert_identity(const char *path, ps_peer_t *out, char *err, size_t errlen);

/* --- Internal to tls*.c: mbedTLS types stay opaque to everyone else --- */

struct mbedtls_ssl_config;
struct mbedtls_x509_crt;
/** The shared mbedTLS configuration of conf. */
const struct mbedtls_ssl_config *ps__tls_conf_ssl(const ps_tls_conf_t *conf);
/** Which side conf was made for. */
ps_tls_side_t ps__tls_conf_side(const ps_tls_conf_t *conf);
/** Reads role, OU, CN and serial from crt; PS_OK or PS_EINVAL when malformed. */
int ps__tls_identity(const struct mbedtls_x509_crt *crt, ps_peer_t *out);
/** 1 when crt (not one of the trusted CAs) is on the CRL in force. */
int ps__tls_conf_revoked_crt(const ps_tls_conf_t *conf, const struct mbedtls_x509_crt *crt);
struct mbedtls_x509_crl;
/** The CRL handed to mbedTLS itself (NULL: popsync checks serials; tests). */
const struct mbedtls_x509_crl *ps__tls_conf_mbedtls_crl(const ps_tls_conf_t *conf);
/** Gives a verified peer certificate's key its fastest form for the
 *  check of its handshake signature (tls_conf.c).  0 or an mbedTLS error. */
int ps__tls_conf_peer_key(ps_tls_conf_t *conf, struct mbedtls_x509_crt *crt);
struct mbedtls_pk_context;
/** Turns an EC key (P-256, P-384) into one whose ECDSA signatures and
 *  verifications OpenSSL computes (tls_pk.c).  0 or an mbedTLS error, pk
 *  unchanged then. */
int ps__tls_pk_ossl(struct mbedtls_pk_context *pk);
/** Frees the OpenSSL key of a key made by ps__tls_pk_ossl (it can then
 *  neither sign nor verify): a peer's, once its handshake is over, so that
 *  an idle connection does not hold it.  Other keys are left alone. */
void ps__tls_pk_ossl_shed(struct mbedtls_pk_context *pk);
/** An empty trust list: a handshake whose peer certificate is in the
 *  verified cache is verified against it (tls.c, docs/security.md §2.3a). */
struct mbedtls_x509_crt *ps__tls_conf_no_ca(ps_tls_conf_t *conf);
/** 1 when the SHA-256 of a certificate's DER is in the verified cache (and
 *  marks it used; hit: count it as a skipped CA signature), else 0. */
int ps__tls_conf_vcache_find(ps_tls_conf_t *conf, const uint8_t hash[32], int hit);
/** Adds the SHA-256 of a certificate that completed a full handshake,
 *  verified against the CA; the least recently used entry makes room. */
void ps__tls_conf_vcache_add(ps_tls_conf_t *conf, const uint8_t hash[32]);

#endif
