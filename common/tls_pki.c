/* tls_pki.c - the district certificate authority, written with mbedTLS.
 *
 * Owns: making the CA (dir/ca.crt, dir/ca.key) and issuing certificates
 * (dir/NAME.crt, dir/NAME.key) whose subject carries the popsync identity
 * "CN=<name>,OU=<12-digit org unit>,O=popsync,title=<role>" that tls.c reads
 * back.  All keys are ECDSA P-256 signed with SHA-256; key files are created
 * 0600 and certificates and keys are never overwritten.
 *
 * Revocation: dir/revoked.txt (one "serial<TAB>time<TAB>reason<TAB>name"
 * line per revoked certificate) is the record; dir/ca.crl is made from it.
 * mbedTLS 2.28 parses CRLs but cannot write them, so the v2 CRL (RFC 5280
 * 5.1) is encoded here with the ASN.1 writer and signed with the CA key;
 * dir/crl.number keeps its increasing cRLNumber.  These three files are
 * replaced atomically (temporary file, fsync, rename) under a lock on
 * dir/.lock, so a server reloading ca.crl never reads half a file.
 */
#include "tls.h"
#include "vec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include "err.h"
#include "ids.h"

#define PS_CA_DAYS (10 * 365 + 3) /* ten years, leap days included */
#define PS_MAX_DAYS 3650
#define PS_NAME_MAX 63 /* ps_peer_t.name holds 64 bytes */
#define PS_PEM_MAX 4096
#define PS_CRL_DAYS_MAX 365
#define PS_REVOKED_MAX 100000 /* entries in revoked.txt; far beyond a district's devices */

/* Certificates are valid from an hour ago: a device whose clock runs a little
 * behind the CA's must not reject a certificate issued minutes earlier. */
#define PS_BACKDATE_S 3600

static int pki_msg(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int pki_msg(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int pki_mbed(char *err, size_t errlen, const char *what, int mret)
{
    char msg[100];

    mbedtls_strerror(mret, msg, sizeof(msg));
    if (err && errlen)
        snprintf(err, errlen, "%s: %s (-0x%04X)", what, msg, (unsigned)-mret);
    return PS_ECRYPTO;
}

/* mbedTLS RNG callback over getrandom(2): no DRBG state to seed or share. */
static int pki_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    return ps_random(out, len) == PS_OK ? 0 : MBEDTLS_ERR_ENTROPY_SOURCE_FAILED;
}

/* Names become file names and DN values.  '/' and ".." would escape dir; ','
 * '=' '\\' '+' '"' would be parsed as DN syntax by mbedtls_x509_string_to_names;
 * control bytes would break logs. */
static int name_ok(const char *name)
{
    size_t len;

    if (!name || !*name || name[0] == '.' || name[0] == ' ' || name[0] == '-')
        return 0;
    len = strlen(name);
    if (len > PS_NAME_MAX || name[len - 1] == ' ')
        return 0;
    if (strstr(name, ".."))
        return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || strchr("/,=\\+\"<>;#", *p))
            return 0;
    return 1;
}

static int orgunit_ok(const char *ou) { return ou && strlen(ou) == 12 && strspn(ou, "0123456789") == 12; }

static int file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Writes a new file; never replaces one.  O_EXCL also refuses a symlink
 * planted at path.  mode is applied at creation so the key is never briefly
 * readable by others. */
static int write_new_file(const char *path, const void *data, size_t len, mode_t mode, char *err, size_t errlen)
{
    const unsigned char *p = data;
    int fd, rc = PS_OK;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            return pki_msg(err, errlen, PS_EEXIST, "%s already exists; refusing to overwrite it", path);
        return pki_msg(err, errlen, PS_EIO, "cannot create %s", path);
    }
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = pki_msg(err, errlen, PS_EIO, "cannot write %s", path);
            goto out;
        }
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0)
        rc = pki_msg(err, errlen, PS_EIO, "cannot sync %s", path);
out:
    if (close(fd) != 0 && rc == PS_OK)
        rc = pki_msg(err, errlen, PS_EIO, "cannot close %s", path);
    if (rc != PS_OK)
        unlink(path);
    return rc;
}

static int gen_key(mbedtls_pk_context *key, char *err, size_t errlen)
{
    int ret;

    if ((ret = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY))) != 0)
        return pki_mbed(err, errlen, "key setup", ret);
    if ((ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key), pki_rng, NULL)) != 0)
        return pki_mbed(err, errlen, "key generation", ret);
    return PS_OK;
}

/* Writes key as PEM to a new 0600 file, wiping the PEM copy afterwards. */
static int write_key(const char *path, mbedtls_pk_context *key, char *err, size_t errlen)
{
    unsigned char pem[PS_PEM_MAX];
    int rc, ret;

    if ((ret = mbedtls_pk_write_key_pem(key, pem, sizeof(pem))) != 0) {
        rc = pki_mbed(err, errlen, "key encoding", ret);
        goto out;
    }
    rc = write_new_file(path, pem, strlen((char *)pem), 0600, err, errlen);
out:
    mbedtls_platform_zeroize(pem, sizeof(pem));
    return rc;
}

/* "YYYYMMDDhhmmss" in UTC, as mbedtls_x509write_crt_set_validity wants. */
static void fmt_time(time_t t, char out[16])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

static time_t x509_to_time(const mbedtls_x509_time *x)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = x->year - 1900;
    tm.tm_mon = x->mon - 1;
    tm.tm_mday = x->day;
    tm.tm_hour = x->hour;
    tm.tm_min = x->min;
    tm.tm_sec = x->sec;
    return timegm(&tm);
}

/* 16 random bytes with the top bit clear (DER INTEGERs are signed) and a
 * non-zero first byte, so the serial is encoded in exactly 16 bytes. */
static int random_serial(mbedtls_mpi *serial, char *err, size_t errlen)
{
    unsigned char b[16];
    int ret;

    do {
        if (ps_random(b, sizeof(b)) != PS_OK)
            return pki_msg(err, errlen, PS_EIO, "no random bytes for the serial");
        b[0] &= 0x7f;
    } while (b[0] == 0);
    if ((ret = mbedtls_mpi_read_binary(serial, b, sizeof(b))) != 0)
        return pki_mbed(err, errlen, "serial", ret);
    return PS_OK;
}

/* mbedTLS 2.28 has no mbedtls_x509write_crt_set_ext_key_usage, so the
 * extension is encoded here: SEQUENCE { OID... }.  The server gets
 * serverAuth; everyone else clientAuth, and serverAuth too when its
 * `popsync ui` serves browsers (serves: issued with UI addresses). */
static int set_eku(mbedtls_x509write_cert *crt, ps_role_t role, int serves, char *err, size_t errlen)
{
    unsigned char buf[48], *p = buf + sizeof(buf);
    size_t len = 0;
    int ret;

    /* Written back to front: clientAuth ends up first. */
    if (role == PS_ROLE_SERVER || serves) {
        if ((ret = mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH,
                                          MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH))) < 0)
            goto fail;
        len += (size_t)ret;
    }
    if (role != PS_ROLE_SERVER) {
        if ((ret = mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_CLIENT_AUTH,
                                          MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH))) < 0)
            goto fail;
        len += (size_t)ret;
    }
    if ((ret = mbedtls_asn1_write_len(&p, buf, len)) < 0)
        goto fail;
    len += (size_t)ret;
    if ((ret = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0)
        goto fail;
    len += (size_t)ret;
    if ((ret = mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, p, len)) != 0)
        goto fail;
    return PS_OK;
fail:
    return pki_mbed(err, errlen, "extended key usage", ret);
}

/* True when name can be a dNSName: labels of letters, digits and '-',
 * separated by single dots (RFC 1123), 253 characters at most. */
static int dns_name_ok(const char *name)
{
    size_t label = 0, len = strlen(name);

    if (len == 0 || len > 253)
        return 0;
    for (const char *p = name; *p; p++) {
        if (*p == '.') {
            if (label == 0 || p[-1] == '-')
                return 0;
            label = 0;
        } else if (isalnum((unsigned char)*p) || (*p == '-' && label > 0)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && name[len - 1] != '-';
}

/* The address bytes of an IPv4 or IPv6 address in text (4 or 16), else 0. */
static size_t ip_bytes(const char *text, unsigned char out[16])
{
    if (inet_pton(AF_INET, text, out) == 1)
        return 4;
    if (inet_pton(AF_INET6, text, out) == 1)
        return 16;
    return 0;
}

/* subjectAltName, one entry per name: an iPAddress for an IP address, else
 * a dNSName.  The server's (named like a host) for RFC 6125 clients and
 * scanners (testssl); a cache's for the browsers its `popsync ui` serves,
 * which match the address they connect to against it alone.  mbedTLS 2.28
 * cannot write it, so it is encoded here: SEQUENCE { [7] IMPLICIT OCTET
 * STRING | [2] IMPLICIT IA5String ... }. */
static int set_san(mbedtls_x509write_cert *crt, const char *const *names, size_t n, char *err, size_t errlen)
{
    unsigned char buf[2400], *p = buf + sizeof(buf), ip[16];
    size_t len = 0;
    int ret;

    for (size_t i = n; i-- > 0;) {
        size_t iplen = ip_bytes(names[i], ip), one;
        ret = iplen ? mbedtls_asn1_write_raw_buffer(&p, buf, ip, iplen)
                    : mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)names[i], strlen(names[i]));
        if (ret < 0)
            goto fail;
        one = (size_t)ret;
        if ((ret = mbedtls_asn1_write_len(&p, buf, one)) < 0)
            goto fail;
        one += (size_t)ret;
        if ((ret = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONTEXT_SPECIFIC | (iplen ? 7 : 2))) < 0)
            goto fail;
        len += one + (size_t)ret;
    }
    if ((ret = mbedtls_asn1_write_len(&p, buf, len)) < 0)
        goto fail;
    len += (size_t)ret;
    if ((ret = mbedtls_asn1_write_tag(&p, buf, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0)
        goto fail;
    len += (size_t)ret;
    if ((ret = mbedtls_x509write_crt_set_extension(crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, p, len)) != 0)
        goto fail;
    return PS_OK;
fail:
    return pki_mbed(err, errlen, "subject alternative name", ret);
}

/* The addresses a cache's `popsync ui` serves at: 1..PS_PKI_UI_MAX_ADDRS,
 * each an IP address (not the unspecified one) or a host name. */
static int ui_addrs_ok(ps_role_t role, const char *const *addrs, size_t n, char *err, size_t errlen)
{
    unsigned char ip[16];
    static const unsigned char zero[16];
    if (n == 0)
        return PS_OK;
    if (role == PS_ROLE_SERVER)
        return pki_msg(err, errlen, PS_EINVAL, "--ui-address is for a cache's certificate, not the server's");
    if (n > PS_PKI_UI_MAX_ADDRS)
        return pki_msg(err, errlen, PS_EINVAL, "at most %d UI addresses", PS_PKI_UI_MAX_ADDRS);
    for (size_t i = 0; i < n; i++) {
        size_t l = addrs[i] ? ip_bytes(addrs[i], ip) : 0;
        if (!addrs[i] || (l == 0 && !dns_name_ok(addrs[i])))
            return pki_msg(err, errlen, PS_EINVAL, "UI address '%s' is neither an IP address nor a host name",
                           addrs[i] ? addrs[i] : "");
        if (l && memcmp(ip, zero, l) == 0)
            return pki_msg(err, errlen, PS_EINVAL, "UI address '%s': name the one address served on", addrs[i]);
    }
    return PS_OK;
}

/* Rebuilds the CA's subject as a string for set_issuer_name.  Only our own
 * attribute types occur and values were checked by name_ok when the CA was
 * made, so no escaping is needed; anything else is refused. */
static int dn_string(const mbedtls_x509_name *n, char *out, size_t cap)
{
    size_t used = 0;

    out[0] = '\0';
    for (; n; n = n->next) {
        const char *sn;
        int w;
        if (!n->oid.p)
            continue;
        if (mbedtls_oid_get_attr_short_name(&n->oid, &sn) != 0)
            return PS_EINVAL;
        for (size_t i = 0; i < n->val.len; i++)
            if (n->val.p[i] < 0x20 || strchr(",=\\+\"", n->val.p[i]))
                return PS_EINVAL;
        w = snprintf(out + used, cap - used, "%s%s=%.*s", used ? "," : "", sn, (int)n->val.len,
                     (const char *)n->val.p);
        if (w < 0 || (size_t)w >= cap - used)
            return PS_EINVAL;
        used += (size_t)w;
    }
    return used ? PS_OK : PS_EINVAL;
}

/* Signs subject's certificate and writes it as a new PEM file (0644). */
static int cert_without_null_params(const unsigned char *der, size_t der_len, mbedtls_pk_context *issuer_key,
                                    unsigned char *out, size_t cap, unsigned char **res);

static int write_cert(const char *path, mbedtls_x509write_cert *crt, char *err, size_t errlen)
{
    unsigned char der[PS_PEM_MAX], fixed[PS_PEM_MAX], pem[PS_PEM_MAX], *cert;
    size_t pem_len;
    int ret, len;

    if ((len = mbedtls_x509write_crt_der(crt, der, sizeof(der), pki_rng, NULL)) < 0)
        return pki_mbed(err, errlen, "signing the certificate", len);
    cert = der + sizeof(der) - len;
    if ((ret = cert_without_null_params(cert, (size_t)len, crt->issuer_key, fixed, sizeof(fixed), &cert)) < 0)
        return pki_mbed(err, errlen, "signing the certificate again", ret);
    if (ret > 0)
        len = ret;
    if ((ret = mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", cert,
                                        (size_t)len, pem, sizeof(pem), &pem_len)) != 0)
        return pki_mbed(err, errlen, "encoding the certificate as PEM", ret);
    return write_new_file(path, pem, strlen((char *)pem), 0644, err, errlen);
}

/* Settings every certificate shares; the caller adds names, validity and
 * usage. */
static int crt_common(mbedtls_x509write_cert *crt, mbedtls_pk_context *subject_key, mbedtls_pk_context *issuer_key,
                      mbedtls_mpi *serial, char *err, size_t errlen)
{
    int rc, ret;

    mbedtls_x509write_crt_set_version(crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(crt, subject_key);
    mbedtls_x509write_crt_set_issuer_key(crt, issuer_key);
    if ((rc = random_serial(serial, err, errlen)) != PS_OK)
        return rc;
    if ((ret = mbedtls_x509write_crt_set_serial(crt, serial)) != 0)
        return pki_mbed(err, errlen, "serial", ret);
    if ((ret = mbedtls_x509write_crt_set_subject_key_identifier(crt)) != 0)
        return pki_mbed(err, errlen, "subject key identifier", ret);
    if ((ret = mbedtls_x509write_crt_set_authority_key_identifier(crt)) != 0)
        return pki_mbed(err, errlen, "authority key identifier", ret);
    return PS_OK;
}

static int make_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (mkdir(dir, 0700) == 0)
        return PS_OK;
    if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return PS_OK;
    return pki_msg(err, errlen, PS_EIO, "cannot create directory %s", dir);
}

int ps_pki_init_ca(const char *dir, const char *name, char *err, size_t errlen)
{
    char crt_path[4096], key_path[4096], subject[128], nb[16], na[16];
    mbedtls_pk_context key;
    mbedtls_x509write_cert crt;
    mbedtls_mpi serial;
    time_t now = time(NULL);
    int rc, ret;

    mbedtls_pk_init(&key);
    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi_init(&serial);
    if (!dir || !*dir) {
        rc = pki_msg(err, errlen, PS_EINVAL, "no PKI directory given");
        goto out;
    }
    if (!name_ok(name)) {
        rc = pki_msg(err, errlen, PS_EINVAL,
                     "invalid CA name (1-63 characters, none of / , = \\ + \" < > ; # and no '..')");
        goto out;
    }
    if ((size_t)snprintf(crt_path, sizeof(crt_path), "%s/ca.crt", dir) >= sizeof(crt_path) ||
        (size_t)snprintf(key_path, sizeof(key_path), "%s/ca.key", dir) >= sizeof(key_path)) {
        rc = pki_msg(err, errlen, PS_EINVAL, "PKI directory path too long");
        goto out;
    }
    if ((rc = make_dir(dir, err, errlen)) != PS_OK)
        goto out;
    if (file_exists(crt_path) || file_exists(key_path)) {
        rc = pki_msg(err, errlen, PS_EEXIST, "a CA already exists in %s; refusing to overwrite it", dir);
        goto out;
    }
    if ((rc = gen_key(&key, err, errlen)) != PS_OK)
        goto out;
    snprintf(subject, sizeof(subject), "CN=%s,O=popsync", name);
    if ((ret = mbedtls_x509write_crt_set_subject_name(&crt, subject)) != 0 ||
        (ret = mbedtls_x509write_crt_set_issuer_name(&crt, subject)) != 0) {
        rc = pki_mbed(err, errlen, "CA name", ret);
        goto out;
    }
    if ((rc = crt_common(&crt, &key, &key, &serial, err, errlen)) != PS_OK)
        goto out;
    fmt_time(now - PS_BACKDATE_S, nb);
    fmt_time(now + (time_t)PS_CA_DAYS * 86400, na);
    if ((ret = mbedtls_x509write_crt_set_validity(&crt, nb, na)) != 0) {
        rc = pki_mbed(err, errlen, "validity", ret);
        goto out;
    }
    /* pathlen 0: this CA signs end-entity certificates only, never another CA. */
    if ((ret = mbedtls_x509write_crt_set_basic_constraints(&crt, 1, 0)) != 0 ||
        (ret = mbedtls_x509write_crt_set_key_usage(&crt, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN)) !=
            0) {
        rc = pki_mbed(err, errlen, "CA extensions", ret);
        goto out;
    }
    /* Key first: a CA certificate without its key would block init-ca forever. */
    if ((rc = write_key(key_path, &key, err, errlen)) != PS_OK)
        goto out;
    if ((rc = write_cert(crt_path, &crt, err, errlen)) != PS_OK) {
        unlink(key_path);
        goto out;
    }
out:
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&crt);
    mbedtls_pk_free(&key);
    return rc;
}

/* What issuing checks before it touches a file.  PS_OK or PS_EINVAL (told). */
static int issue_args_ok(const char *dir, ps_role_t role, const char *orgunit, const char *name, int days,
                         int shift_days, char *err, size_t errlen)
{
    if (!dir || !*dir)
        return pki_msg(err, errlen, PS_EINVAL, "no PKI directory given");
    if (role == PS_ROLE_NONE || ps_role_from_name(ps_role_name(role)) != role)
        return pki_msg(err, errlen, PS_EINVAL, "unknown role");
    if (!orgunit_ok(orgunit))
        return pki_msg(err, errlen, PS_EINVAL, "org unit must be exactly 12 digits");
    if (!name_ok(name))
        return pki_msg(err, errlen, PS_EINVAL,
                       "invalid name (1-63 characters, none of / , = \\ + \" < > ; # and no '..')");
    if (strcmp(name, "ca") == 0)
        return pki_msg(err, errlen, PS_EINVAL, "the name \"ca\" is reserved for the CA's own files");
    if (days < 1 || days > PS_MAX_DAYS)
        return pki_msg(err, errlen, PS_EINVAL, "days must be between 1 and 3650");
    if (shift_days < -PS_MAX_DAYS || shift_days > PS_MAX_DAYS)
        return pki_msg(err, errlen, PS_EINVAL, "the validity shift must be between -3650 and 3650 days");
    return PS_OK;
}

/* The CA's certificate and key, checked to match and to be valid now;
 * issuer gets its subject.  PS_OK or an error (told). */
static int load_issuing_ca(const char *crt_path, const char *key_path, time_t now, mbedtls_x509_crt *ca,
                   mbedtls_pk_context *ca_key, char *issuer, size_t issuerlen, char *err, size_t errlen)
{
    int ret;
    if ((ret = mbedtls_x509_crt_parse_file(ca, crt_path)) != 0)
        return pki_mbed(err, errlen, "loading the CA certificate", ret);
    if ((ret = mbedtls_pk_parse_keyfile(ca_key, key_path, NULL)) != 0)
        return pki_mbed(err, errlen, "loading the CA key", ret);
    if ((ret = mbedtls_pk_check_pair(&ca->pk, ca_key)) != 0)
        return pki_mbed(err, errlen, "CA key does not match the CA certificate", ret);
    if (dn_string(&ca->subject, issuer, issuerlen) != PS_OK)
        return pki_msg(err, errlen, PS_ECRYPTO, "the CA certificate's subject is not one popsync made");
    if (x509_to_time(&ca->valid_to) <= now)
        return pki_msg(err, errlen, PS_ECRYPTO, "the CA certificate has expired");
    return PS_OK;
}

/* Issues a certificate; shift_days moves the validity window (tests only).
 * About 85 lines: the mbedTLS calls that write one certificate, in order. */
static int issue_impl(const char *dir, ps_role_t role, const char *orgunit, const char *name, int days,
                      int shift_days, const char *const *ui, size_t nui, char *err, size_t errlen)
{
    char ca_crt_path[4096], ca_key_path[4096], crt_path[4096], key_path[4096];
    char subject[160], issuer[160], nb[16], na[16];
    mbedtls_x509_crt ca;
    mbedtls_pk_context ca_key, key;
    mbedtls_x509write_cert crt;
    mbedtls_mpi serial;
    time_t now = time(NULL), not_before, not_after, ca_end;
    int rc = PS_OK, ret;

    mbedtls_x509_crt_init(&ca);
    mbedtls_pk_init(&ca_key);
    mbedtls_pk_init(&key);
    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi_init(&serial);
    if ((rc = issue_args_ok(dir, role, orgunit, name, days, shift_days, err, errlen)) ||
        (rc = ui_addrs_ok(role, ui, nui, err, errlen)))
        goto out;
    if ((size_t)snprintf(ca_crt_path, sizeof(ca_crt_path), "%s/ca.crt", dir) >= sizeof(ca_crt_path) ||
        (size_t)snprintf(ca_key_path, sizeof(ca_key_path), "%s/ca.key", dir) >= sizeof(ca_key_path) ||
        (size_t)snprintf(crt_path, sizeof(crt_path), "%s/%s.crt", dir, name) >= sizeof(crt_path) ||
        (size_t)snprintf(key_path, sizeof(key_path), "%s/%s.key", dir, name) >= sizeof(key_path)) {
        rc = pki_msg(err, errlen, PS_EINVAL, "PKI directory path too long");
        goto out;
    }
    if (file_exists(crt_path) || file_exists(key_path)) {
        rc = pki_msg(err, errlen, PS_EEXIST, "%s already exists; refusing to overwrite it", crt_path);
        goto out;
    }
    if ((rc = load_issuing_ca(ca_crt_path, ca_key_path, now, &ca, &ca_key, issuer, sizeof(issuer), err, errlen)))
        goto out;
    ca_end = x509_to_time(&ca.valid_to);
    /* A certificate cannot usefully outlive its CA: clamp instead of failing
     * so issuing keeps working during the CA's last years. */
    /* The window is exactly days long (counted from the backdated start),
     * so the default 825 days stays within the CA/Browser limit scanners
     * such as testssl check. */
    not_before = now + (time_t)shift_days * 86400 - PS_BACKDATE_S;
    not_after = not_before + (time_t)days * 86400;
    if (not_after > ca_end)
        not_after = ca_end;
    if (not_after <= not_before) {
        rc = pki_msg(err, errlen, PS_EINVAL, "the validity window lies beyond the CA's");
        goto out;
    }

    if ((rc = gen_key(&key, err, errlen)) != PS_OK)
        goto out;
    snprintf(subject, sizeof(subject), "CN=%s,OU=%s,O=popsync,title=%s", name, orgunit, ps_role_name(role));
    if ((ret = mbedtls_x509write_crt_set_subject_name(&crt, subject)) != 0 ||
        (ret = mbedtls_x509write_crt_set_issuer_name(&crt, issuer)) != 0) {
        rc = pki_mbed(err, errlen, "certificate names", ret);
        goto out;
    }
    if ((rc = crt_common(&crt, &key, &ca_key, &serial, err, errlen)) != PS_OK)
        goto out;
    fmt_time(not_before, nb);
    fmt_time(not_after, na);
    if ((ret = mbedtls_x509write_crt_set_validity(&crt, nb, na)) != 0) {
        rc = pki_mbed(err, errlen, "validity", ret);
        goto out;
    }
    if ((ret = mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1)) != 0 ||
        (ret = mbedtls_x509write_crt_set_key_usage(&crt, MBEDTLS_X509_KU_DIGITAL_SIGNATURE)) != 0) {
        rc = pki_mbed(err, errlen, "certificate extensions", ret);
        goto out;
    }
    if ((rc = set_eku(&crt, role, nui > 0, err, errlen)) != PS_OK)
        goto out;
    /* A server named like a host also gets it as a dNSName; other names are
     * matched by the CN alone (mbedTLS falls back to it without a SAN).  A
     * cache that serves browsers gets the addresses they reach it at. */
    if (role == PS_ROLE_SERVER && dns_name_ok(name) && (rc = set_san(&crt, &name, 1, err, errlen)) != PS_OK)
        goto out;
    if (nui && (rc = set_san(&crt, ui, nui, err, errlen)) != PS_OK)
        goto out;
    if ((rc = write_key(key_path, &key, err, errlen)) != PS_OK)
        goto out;
    if ((rc = write_cert(crt_path, &crt, err, errlen)) != PS_OK) {
        unlink(key_path);
        goto out;
    }
out:
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&crt);
    mbedtls_pk_free(&key);
    mbedtls_pk_free(&ca_key);
    mbedtls_x509_crt_free(&ca);
    return rc;
}

int ps_pki_issue(const char *dir, ps_role_t role, const char *orgunit, const char *name, int days, char *err,
                 size_t errlen)
{
    return issue_impl(dir, role, orgunit, name, days, 0, NULL, 0, err, errlen);
}

int ps_pki_issue_shifted(const char *dir, ps_role_t role, const char *orgunit, const char *name, int days,
                         int shift_days, char *err, size_t errlen)
{
    return issue_impl(dir, role, orgunit, name, days, shift_days, NULL, 0, err, errlen);
}

int ps_pki_issue_ui(const char *dir, ps_role_t role, const char *orgunit, const char *name, int days, int shift_days,
                    const char *const *ui_addrs, size_t n, char *err, size_t errlen)
{
    return issue_impl(dir, role, orgunit, name, days, shift_days, ui_addrs, n, err, errlen);
}

/* Does the parsed certificate name host in its subjectAltName? */
static int san_names(const mbedtls_x509_crt *crt, const char *host)
{
    unsigned char ip[16];
    size_t iplen = ip_bytes(host, ip);
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && s->buf.p; s = s->next) {
        if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && iplen && s->buf.len == iplen &&
            memcmp(s->buf.p, ip, iplen) == 0)
            return 1;
        if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 2) && !iplen && s->buf.len == strlen(host) &&
            strncasecmp((const char *)s->buf.p, host, s->buf.len) == 0)
            return 1;
    }
    return 0;
}

int ps_pki_cert_serves(const char *cert_path, const char *host, char *why, size_t whylen)
{
    mbedtls_x509_crt crt;
    int ret, rc = PS_OK;

    mbedtls_x509_crt_init(&crt);
    if ((ret = mbedtls_x509_crt_parse_file(&crt, cert_path)) != 0)
        rc = pki_mbed(why, whylen, "reading the certificate", ret);
    else if (!(crt.ext_types & MBEDTLS_X509_EXT_EXTENDED_KEY_USAGE) ||
             mbedtls_x509_crt_check_extended_key_usage(&crt, MBEDTLS_OID_SERVER_AUTH,
                                                       MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0)
        rc = pki_msg(why, whylen, PS_EINVAL, "it is not for serverAuth (issued without --ui-address)");
    else if (!san_names(&crt, host))
        rc = pki_msg(why, whylen, PS_EINVAL, "its subjectAltName does not name %s", host);
    mbedtls_x509_crt_free(&crt);
    return rc;
}

/* --- revocation ------------------------------------------------------------ */

static const struct {
    int code;
    const char *name;
} crl_reasons[] = {
    {PS_CRL_UNSPECIFIED, "unspecified"},
    {PS_CRL_KEY_COMPROMISE, "keyCompromise"},
    {PS_CRL_SUPERSEDED, "superseded"},
    {PS_CRL_CESSATION, "cessationOfOperation"},
};

int ps_crl_reason_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof(crl_reasons) / sizeof(crl_reasons[0]); i++)
        if (strcmp(name, crl_reasons[i].name) == 0)
            return crl_reasons[i].code;
    return -1;
}

const char *ps_crl_reason_name(int reason)
{
    for (size_t i = 0; i < sizeof(crl_reasons) / sizeof(crl_reasons[0]); i++)
        if (crl_reasons[i].code == reason)
            return crl_reasons[i].name;
    return "unspecified";
}

/* One line of revoked.txt. */
typedef struct rev_entry {
    char serial[41]; /* lower-case hex, no leading "00" */
    time_t when;
    int reason;
    char name[PS_NAME_MAX + 1]; /* "-" when revoked by serial */
} rev_entry_t;

typedef struct rev_list {
    rev_entry_t *v;
    size_t n, cap;
} rev_list_t;

/* Paths of the PKI directory's files. */
typedef struct pki_paths {
    char ca_crt[4096], ca_key[4096], crl[4096], number[4096], revoked[4096], lock[4096], revoked_dir[4096];
} pki_paths_t;

static int pki_paths(const char *dir, pki_paths_t *pp, char *err, size_t errlen)
{
    if (!dir || !*dir)
        return pki_msg(err, errlen, PS_EINVAL, "no PKI directory given");
    if ((size_t)snprintf(pp->ca_crt, sizeof(pp->ca_crt), "%s/ca.crt", dir) >= sizeof(pp->ca_crt) ||
        (size_t)snprintf(pp->ca_key, sizeof(pp->ca_key), "%s/ca.key", dir) >= sizeof(pp->ca_key) ||
        (size_t)snprintf(pp->crl, sizeof(pp->crl), "%s/ca.crl", dir) >= sizeof(pp->crl) ||
        (size_t)snprintf(pp->number, sizeof(pp->number), "%s/crl.number", dir) >= sizeof(pp->number) ||
        (size_t)snprintf(pp->revoked, sizeof(pp->revoked), "%s/revoked.txt", dir) >= sizeof(pp->revoked) ||
        (size_t)snprintf(pp->lock, sizeof(pp->lock), "%s/.lock", dir) >= sizeof(pp->lock) ||
        (size_t)snprintf(pp->revoked_dir, sizeof(pp->revoked_dir), "%s/revoked", dir) >= sizeof(pp->revoked_dir))
        return pki_msg(err, errlen, PS_EINVAL, "PKI directory path too long");
    return PS_OK;
}

/* Normalises a serial given in hex: lower case, no ':' separators, no
 * leading zero bytes.  Returns 0 when it is not 1 to 20 bytes of hex. */
static int serial_hex_norm(const char *in, char out[41])
{
    char tmp[82];
    size_t n = 0;

    for (; *in; in++) {
        if (*in == ':')
            continue;
        if (!isxdigit((unsigned char)*in) || n + 1 >= sizeof(tmp))
            return 0;
        tmp[n++] = (char)tolower((unsigned char)*in);
    }
    tmp[n] = '\0';
    if (n == 0)
        return 0;
    const char *p = tmp;
    if (n % 2) { /* odd: the first byte has one digit */
        memmove(tmp + 1, tmp, n + 1);
        tmp[0] = '0';
        n++;
    }
    while (n > 2 && p[0] == '0' && p[1] == '0') {
        p += 2;
        n -= 2;
    }
    if (n > 40)
        return 0;
    memcpy(out, p, n + 1);
    return 1;
}

static int unhex(const char *hex, unsigned char *out, size_t cap, size_t *len)
{
    size_t n = strlen(hex) / 2;

    if (n == 0 || n > cap)
        return PS_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned int b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1)
            return PS_EINVAL;
        out[i] = (unsigned char)b;
    }
    *len = n;
    return PS_OK;
}

static void fmt_iso(time_t t, char out[21])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int parse_iso(const char *s, time_t *out)
{
    struct tm tm;
    int y, mo, d, h, mi, se;
    char z;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se, &z) != 7 || z != 'Z')
        return PS_EINVAL;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    *out = timegm(&tm);
    return PS_OK;
}

static int rev_push(rev_list_t *l, const rev_entry_t *e)
{
    if (l->n >= PS_REVOKED_MAX)
        return PS_ETOOBIG;
    if (PS_VEC_ROOM(l->v, l->n, l->cap, 16))
        return PS_ENOMEM;
    l->v[l->n++] = *e;
    return PS_OK;
}

static const rev_entry_t *rev_find(const rev_list_t *l, const char *serial)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].serial, serial) == 0)
            return &l->v[i];
    return NULL;
}

/* Reads revoked.txt; a missing file is an empty list. */
static int rev_read(const char *path, rev_list_t *l, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    unsigned long lineno = 0;
    int rc = PS_OK;

    if (!f)
        return errno == ENOENT ? PS_OK : pki_msg(err, errlen, PS_EIO, "cannot read %s", path);
    while (getline(&line, &cap, f) >= 0) {
        rev_entry_t e;
        char *serial, *when, *reason, *name, *save = NULL;

        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        memset(&e, 0, sizeof(e));
        serial = strtok_r(line, "\t", &save);
        when = strtok_r(NULL, "\t", &save);
        reason = strtok_r(NULL, "\t", &save);
        name = strtok_r(NULL, "\t", &save);
        if (!serial || !when || !reason || !name || !serial_hex_norm(serial, e.serial) ||
            parse_iso(when, &e.when) != PS_OK || (e.reason = ps_crl_reason_from_name(reason)) < 0 ||
            strlen(name) > PS_NAME_MAX) {
            rc = pki_msg(err, errlen, PS_EINVAL, "%s line %lu is malformed", path, lineno);
            goto out;
        }
        snprintf(e.name, sizeof(e.name), "%s", name);
        if (rev_find(l, e.serial))
            continue;
        if ((rc = rev_push(l, &e)) != PS_OK) {
            pki_msg(err, errlen, rc, "%s: too many entries", path);
            goto out;
        }
    }
    if (ferror(f))
        rc = pki_msg(err, errlen, PS_EIO, "cannot read %s", path);
out:
    free(line);
    fclose(f);
    return rc;
}

/* Replaces path atomically with data: a new temporary file, fsync, rename,
 * then fsync of the directory so the rename survives a power cut. */
static int replace_file(const char *dir, const char *path, const void *data, size_t len, mode_t mode, char *err,
                        size_t errlen)
{
    char tmp[4096 + 8];
    int rc, dfd;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return pki_msg(err, errlen, PS_EINVAL, "path too long");
    if (unlink(tmp) != 0 && errno != ENOENT) /* left by an interrupted run; we hold the lock */
        return pki_msg(err, errlen, PS_EIO, "cannot remove %s", tmp);
    if ((rc = write_new_file(tmp, data, len, mode, err, errlen)) != PS_OK)
        return rc;
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return pki_msg(err, errlen, PS_EIO, "cannot replace %s", path);
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return PS_OK;
}

static int rev_write(const char *dir, const char *path, const rev_list_t *l, char *err, size_t errlen)
{
    static const char header[] = "# popsync revoked certificates: serial\trevoked (UTC)\treason\tname\n";
    size_t cap = sizeof(header) + l->n * (41 + 21 + 24 + PS_NAME_MAX + 4), used;
    char *buf = malloc(cap), when[21];
    int rc;

    if (!buf)
        return pki_msg(err, errlen, PS_ENOMEM, "out of memory");
    used = (size_t)snprintf(buf, cap, "%s", header);
    for (size_t i = 0; i < l->n; i++) {
        fmt_iso(l->v[i].when, when);
        used += (size_t)snprintf(buf + used, cap - used, "%s\t%s\t%s\t%s\n", l->v[i].serial, when,
                                 ps_crl_reason_name(l->v[i].reason), l->v[i].name);
    }
    rc = replace_file(dir, path, buf, used, 0644, err, errlen);
    free(buf);
    return rc;
}

/* Appends with the mbedTLS writer's conventions: returns the new length or
 * the writer's negative error. */
#define ASN1_ADD(len, call)                                                                                       \
    do {                                                                                                          \
        int r_ = (call);                                                                                          \
        if (r_ < 0)                                                                                               \
            return r_;                                                                                            \
        (len) += (size_t)r_;                                                                                      \
    } while (0)

/* Wraps the len bytes just written before *p in tag. */
static int asn1_wrap(unsigned char **p, unsigned char *start, size_t len, unsigned char tag)
{
    size_t n = 0;
    ASN1_ADD(n, mbedtls_asn1_write_len(p, start, len));
    ASN1_ADD(n, mbedtls_asn1_write_tag(p, start, tag));
    return (int)n;
}

/* Time ::= UTCTime (years 1950-2049) | GeneralizedTime (RFC 5280 4.1.2.5). */
static int asn1_time(unsigned char **p, unsigned char *start, time_t t)
{
    struct tm tm;
    char s[80];

    gmtime_r(&t, &tm);
    if (tm.tm_year + 1900 < 2050) {
        snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", tm.tm_year % 100, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
        return mbedtls_asn1_write_tagged_string(p, start, MBEDTLS_ASN1_UTC_TIME, s, strlen(s));
    }
    strftime(s, sizeof(s), "%Y%m%d%H%M%SZ", &tm);
    return mbedtls_asn1_write_tagged_string(p, start, MBEDTLS_ASN1_GENERALIZED_TIME, s, strlen(s));
}

/* Extension ::= SEQUENCE { extnID, extnValue OCTET STRING }, non-critical;
 * the value's DER is the vlen bytes already written before *p. */
static int asn1_ext(unsigned char **p, unsigned char *start, const char *oid, size_t oid_len, size_t vlen)
{
    size_t len = vlen;
    ASN1_ADD(len, asn1_wrap(p, start, vlen, MBEDTLS_ASN1_OCTET_STRING));
    ASN1_ADD(len, mbedtls_asn1_write_oid(p, start, oid, oid_len));
    ASN1_ADD(len, asn1_wrap(p, start, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)(len - vlen);
}

/* ecdsa-with-SHA256, parameters absent (RFC 5758 3.2). */
static int asn1_sig_alg(unsigned char **p, unsigned char *start)
{
    size_t len = 0;
    ASN1_ADD(len, mbedtls_asn1_write_oid(p, start, MBEDTLS_OID_ECDSA_SHA256, MBEDTLS_OID_SIZE(MBEDTLS_OID_ECDSA_SHA256)));
    ASN1_ADD(len, asn1_wrap(p, start, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

/* CertificateSerialNumber: the same bytes as in the certificate. */
static int asn1_serial(unsigned char **p, unsigned char *start, const char *serial_hex)
{
    unsigned char b[21];
    size_t n, len = 0;

    if (unhex(serial_hex, b + 1, sizeof(b) - 1, &n) != PS_OK)
        return MBEDTLS_ERR_ASN1_INVALID_DATA;
    ASN1_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, b + 1, n));
    if (b[1] & 0x80) /* keep the INTEGER positive */
        ASN1_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, (const unsigned char *)"", 1));
    ASN1_ADD(len, asn1_wrap(p, start, len, MBEDTLS_ASN1_INTEGER));
    return (int)len;
}

/* revokedCertificates entry: SEQUENCE { serial, revocationDate,
 * crlEntryExtensions { reasonCode } }; no reasonCode for "unspecified"
 * (RFC 5280 5.3.1). */
static int asn1_entry(unsigned char **p, unsigned char *start, const rev_entry_t *e, time_t backdate)
{
    size_t len = 0;

    if (e->reason != PS_CRL_UNSPECIFIED) {
        size_t ext = 0;
        ASN1_ADD(ext, mbedtls_asn1_write_enum(p, start, e->reason));
        ASN1_ADD(ext, asn1_ext(p, start, MBEDTLS_OID_ID_CE "\x15", MBEDTLS_OID_SIZE(MBEDTLS_OID_ID_CE "\x15"), ext));
        ASN1_ADD(ext, asn1_wrap(p, start, ext, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
        len += ext;
    }
    ASN1_ADD(len, asn1_time(p, start, e->when - backdate));
    ASN1_ADD(len, asn1_serial(p, start, e->serial));
    ASN1_ADD(len, asn1_wrap(p, start, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

/* The key identifier mbedtls_x509write_crt_set_subject_key_identifier put
 * in the CA certificate: SHA-1 of its public key's BIT STRING content. */
static int ca_key_id(mbedtls_pk_context *ca_pk, unsigned char id[20])
{
    unsigned char buf[256], *p = buf + sizeof(buf);
    int len = mbedtls_pk_write_pubkey(&p, buf, ca_pk);

    if (len < 0)
        return len;
    return mbedtls_sha1_ret(p, (size_t)len, id);
}

/* TBSCertList (RFC 5280 5.1.2), written backwards from *p. */
static int asn1_tbs(unsigned char **p, unsigned char *start, const mbedtls_x509_crt *ca, const unsigned char key_id[20],
                    const rev_list_t *l, long number, time_t this_update, time_t next_update)
{
    size_t len = 0, exts = 0, v;

    /* crlExtensions [0] EXPLICIT: authorityKeyIdentifier, cRLNumber. */
    v = 0;
    ASN1_ADD(v, mbedtls_asn1_write_raw_buffer(p, start, key_id, 20));
    ASN1_ADD(v, asn1_wrap(p, start, v, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0)); /* keyIdentifier [0] */
    ASN1_ADD(v, asn1_wrap(p, start, v, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    ASN1_ADD(exts, asn1_ext(p, start, MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER,
                            MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER), v));
    exts += v;
    v = 0;
    ASN1_ADD(v, mbedtls_asn1_write_int(p, start, (int)number));
    ASN1_ADD(exts, asn1_ext(p, start, MBEDTLS_OID_CRL_NUMBER, MBEDTLS_OID_SIZE(MBEDTLS_OID_CRL_NUMBER), v));
    exts += v;
    ASN1_ADD(exts, asn1_wrap(p, start, exts, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    ASN1_ADD(exts, asn1_wrap(p, start, exts, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0));
    len += exts;
    /* revokedCertificates, absent when empty (RFC 5280 5.1.2.6). */
    if (l->n) {
        size_t list = 0;
        for (size_t i = l->n; i-- > 0;)
            ASN1_ADD(list, asn1_entry(p, start, &l->v[i], PS_BACKDATE_S));
        ASN1_ADD(list, asn1_wrap(p, start, list, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
        len += list;
    }
    ASN1_ADD(len, asn1_time(p, start, next_update));
    ASN1_ADD(len, asn1_time(p, start, this_update));
    ASN1_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, ca->subject_raw.p, ca->subject_raw.len));
    ASN1_ADD(len, asn1_sig_alg(p, start));
    ASN1_ADD(len, mbedtls_asn1_write_int(p, start, 1)); /* v2 */
    ASN1_ADD(len, asn1_wrap(p, start, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

/* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm,
 * signatureValue BIT STRING }: signs tbs and writes it after out_end. */
static int asn1_crl(unsigned char **p, unsigned char *start, const unsigned char *tbs, size_t tbs_len,
                    const unsigned char *sig, size_t sig_len)
{
    size_t len = 0;
    ASN1_ADD(len, mbedtls_asn1_write_bitstring(p, start, sig, sig_len * 8));
    ASN1_ADD(len, asn1_sig_alg(p, start));
    ASN1_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, tbs, tbs_len));
    ASN1_ADD(len, asn1_wrap(p, start, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)len;
}

/* ecdsa-with-SHA256 with NULL parameters, as mbedTLS 2.28 writes it. */
static const unsigned char ALG_WITH_NULL[] = {0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                              0xce, 0x3d, 0x04, 0x03, 0x02, 0x05, 0x00};

/* mbedTLS 2.28 gives a certificate's ecdsa-with-SHA256 AlgorithmIdentifier
 * NULL parameters, which RFC 5758 3.2 forbids and Chromium refuses
 * (ERR_CERT_INVALID), so no browser would take a certificate of ours.
 * Rewrites certificate der with the parameters absent: the TBS's signature
 * field rewritten, the TBS signed again with issuer_key, the whole put
 * together as a CRL is (asn1_crl: the same outer form).  Writes it
 * backwards into out (cap bytes) with *res at its start and returns its
 * length; 0 when der needs no change; a negative mbedTLS error. */
static int cert_without_null_params(const unsigned char *der, size_t der_len, mbedtls_pk_context *issuer_key,
                                    unsigned char *out, size_t cap, unsigned char **res)
{
    unsigned char tbs[PS_PEM_MAX], *tw = tbs + sizeof(tbs), *w = out + cap, hash[32];
    unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE], *p = (unsigned char *)der, *end = p + der_len, *body, *q;
    size_t len, tbs_len = 0, sig_len;
    int ret;

    if ((ret = mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) != 0 ||
        (ret = mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) != 0)
        return ret;
    body = q = p;
    end = p + len; /* the TBS's contents: [0] version, serial, signature, ... */
    if (q < end && *q == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED)) {
        if ((ret = mbedtls_asn1_get_tag(&q, end, &len, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED)))
            return ret;
        q += len;
    }
    if ((ret = mbedtls_asn1_get_tag(&q, end, &len, MBEDTLS_ASN1_INTEGER)) != 0)
        return ret;
    q += len;
    if ((size_t)(end - q) < sizeof(ALG_WITH_NULL) || memcmp(q, ALG_WITH_NULL, sizeof(ALG_WITH_NULL)) != 0)
        return 0;
    ASN1_ADD(tbs_len, mbedtls_asn1_write_raw_buffer(&tw, tbs, q + sizeof(ALG_WITH_NULL),
                                                    (size_t)(end - q) - sizeof(ALG_WITH_NULL)));
    ASN1_ADD(tbs_len, asn1_sig_alg(&tw, tbs));
    ASN1_ADD(tbs_len, mbedtls_asn1_write_raw_buffer(&tw, tbs, body, (size_t)(q - body)));
    ASN1_ADD(tbs_len, asn1_wrap(&tw, tbs, tbs_len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    if ((ret = mbedtls_sha256_ret(tw, tbs_len, hash, 0)) != 0 ||
        (ret = mbedtls_pk_sign(issuer_key, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &sig_len, pki_rng, NULL)) != 0)
        return ret;
    if ((ret = asn1_crl(&w, out, tw, tbs_len, sig, sig_len)) < 0)
        return ret;
    *res = w;
    return ret;
}

/* Encodes, signs and writes dir/ca.crl for list l with this cRLNumber. */
static int write_crl(const char *dir, const pki_paths_t *pp, mbedtls_x509_crt *ca, mbedtls_pk_context *ca_key,
                     const rev_list_t *l, long number, int days, char *err, size_t errlen)
{
    size_t cap = 1024 + ca->subject_raw.len + l->n * 128, pem_len = 0;
    unsigned char *tbs_buf = malloc(cap), *crl_buf = malloc(cap + 256), *pem = NULL, *p;
    unsigned char key_id[20], hash[32], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t sig_len = 0, tbs_len;
    time_t now = time(NULL);
    int rc = PS_OK, ret;

    if (!tbs_buf || !crl_buf) {
        rc = pki_msg(err, errlen, PS_ENOMEM, "out of memory");
        goto out;
    }
    if ((ret = ca_key_id(&ca->pk, key_id)) != 0) {
        rc = pki_mbed(err, errlen, "CA key identifier", ret);
        goto out;
    }
    /* thisUpdate and revocation dates are backdated like certificates, so a
     * server whose clock runs behind the CA's applies the list at once. */
    p = tbs_buf + cap;
    ret = asn1_tbs(&p, tbs_buf, ca, key_id, l, number, now - PS_BACKDATE_S, now + (time_t)days * 86400);
    if (ret < 0) {
        rc = pki_mbed(err, errlen, "encoding the CRL", ret);
        goto out;
    }
    tbs_len = (size_t)ret;
    if ((ret = mbedtls_sha256_ret(p, tbs_len, hash, 0)) != 0 ||
        (ret = mbedtls_pk_sign(ca_key, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &sig_len, pki_rng, NULL)) != 0) {
        rc = pki_mbed(err, errlen, "signing the CRL", ret);
        goto out;
    }
    unsigned char *q = crl_buf + cap + 256;
    ret = asn1_crl(&q, crl_buf, p, tbs_len, sig, sig_len);
    if (ret < 0) {
        rc = pki_mbed(err, errlen, "encoding the CRL", ret);
        goto out;
    }
    /* PEM: base64 plus a line break every 64 characters, plus the armour. */
    size_t pem_cap = (size_t)ret * 4 / 3 + (size_t)ret / 48 + 128;
    if (!(pem = malloc(pem_cap))) {
        rc = pki_msg(err, errlen, PS_ENOMEM, "out of memory");
        goto out;
    }
    if ((ret = mbedtls_pem_write_buffer("-----BEGIN X509 CRL-----\n", "-----END X509 CRL-----\n", q, (size_t)ret,
                                        pem, pem_cap, &pem_len)) != 0) {
        rc = pki_mbed(err, errlen, "encoding the CRL as PEM", ret);
        goto out;
    }
    /* pem_len counts the terminating NUL. */
    rc = replace_file(dir, pp->crl, pem, strlen((char *)pem), 0644, err, errlen);
out:
    free(pem);
    free(crl_buf);
    free(tbs_buf);
    return rc;
}

/* Loads the CA certificate and key and checks they belong together. */
static int load_ca(const pki_paths_t *pp, mbedtls_x509_crt *ca, mbedtls_pk_context *ca_key, char *err, size_t errlen)
{
    int ret;

    if ((ret = mbedtls_x509_crt_parse_file(ca, pp->ca_crt)) != 0)
        return pki_mbed(err, errlen, "loading the CA certificate", ret);
    if ((ret = mbedtls_pk_parse_keyfile(ca_key, pp->ca_key, NULL)) != 0)
        return pki_mbed(err, errlen, "loading the CA key", ret);
    if ((ret = mbedtls_pk_check_pair(&ca->pk, ca_key)) != 0)
        return pki_mbed(err, errlen, "CA key does not match the CA certificate", ret);
    return PS_OK;
}

/* Takes dir/.lock so two `pki` runs cannot lose each other's revocations.
 * Returns the descriptor (close it to unlock) or -1. */
static int pki_lock(const pki_paths_t *pp, char *err, size_t errlen)
{
    int fd = open(pp->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0) {
        pki_msg(err, errlen, PS_EIO, "cannot open %s", pp->lock);
        return -1;
    }
    if (flock(fd, LOCK_EX) != 0) {
        close(fd);
        pki_msg(err, errlen, PS_EIO, "cannot lock %s", pp->lock);
        return -1;
    }
    return fd;
}

/* Reads crl.number (missing: 0) and returns the next one, written back. */
static int next_number(const char *dir, const pki_paths_t *pp, long *out, char *err, size_t errlen)
{
    FILE *f = fopen(pp->number, "re");
    char buf[32];
    long n = 0;
    int len;

    if (f) {
        if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%ld", &n) != 1 || n < 0) {
            fclose(f);
            return pki_msg(err, errlen, PS_EINVAL, "%s is malformed", pp->number);
        }
        fclose(f);
    } else if (errno != ENOENT) {
        return pki_msg(err, errlen, PS_EIO, "cannot read %s", pp->number);
    }
    if (n >= 0x7fffffffL)
        return pki_msg(err, errlen, PS_EINVAL, "%s: CRL numbers exhausted", pp->number);
    n++;
    len = snprintf(buf, sizeof(buf), "%ld\n", n);
    *out = n;
    return replace_file(dir, pp->number, buf, (size_t)len, 0644, err, errlen);
}

/* Moves dir/NAME.crt and .key to dir/revoked/NAME.SERIAL.crt and .key;
 * link+unlink so nothing there is ever overwritten. */
static int retire_files(const char *dir, const pki_paths_t *pp, const char *name, const char *serial, char *err,
                        size_t errlen)
{
    static const char *const ext[] = {"crt", "key"};
    char from[4096], to[4096];

    if (make_dir(pp->revoked_dir, err, errlen) != PS_OK)
        return PS_EIO;
    for (size_t i = 0; i < 2; i++) {
        if ((size_t)snprintf(from, sizeof(from), "%s/%s.%s", dir, name, ext[i]) >= sizeof(from) ||
            (size_t)snprintf(to, sizeof(to), "%s/%s.%s.%s", pp->revoked_dir, name, serial, ext[i]) >= sizeof(to))
            return pki_msg(err, errlen, PS_EINVAL, "path too long");
        if (link(from, to) != 0) {
            if (errno == ENOENT && i == 1)
                continue; /* the key may live only on the device */
            return pki_msg(err, errlen, PS_EIO, "cannot move %s to %s", from, to);
        }
        if (unlink(from) != 0)
            return pki_msg(err, errlen, PS_EIO, "cannot remove %s", from);
    }
    return PS_OK;
}

/* The serial of dir/NAME.crt, which must have been issued by ca. */
static int cert_serial(const char *dir, const char *name, const mbedtls_x509_crt *ca, char serial[41], char *err,
                       size_t errlen)
{
    char path[4096], hex[64];
    mbedtls_x509_crt crt;
    int rc = PS_OK, ret;

    mbedtls_x509_crt_init(&crt);
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.crt", dir, name) >= sizeof(path)) {
        rc = pki_msg(err, errlen, PS_EINVAL, "path too long");
        goto out;
    }
    if (!file_exists(path)) {
        rc = pki_msg(err, errlen, PS_ENOTFOUND, "no certificate %s (already revoked? see revoked.txt)", path);
        goto out;
    }
    if ((ret = mbedtls_x509_crt_parse_file(&crt, path)) != 0) {
        rc = pki_mbed(err, errlen, "loading the certificate", ret);
        goto out;
    }
    if (crt.issuer_raw.len != ca->subject_raw.len ||
        memcmp(crt.issuer_raw.p, ca->subject_raw.p, crt.issuer_raw.len) != 0) {
        rc = pki_msg(err, errlen, PS_EINVAL, "%s was not issued by this CA", path);
        goto out;
    }
    if (crt.serial.len == 0 || crt.serial.len > 20) {
        rc = pki_msg(err, errlen, PS_EINVAL, "%s has an unusable serial", path);
        goto out;
    }
    ps_hex(crt.serial.p, crt.serial.len, hex);
    if (!serial_hex_norm(hex, serial))
        rc = pki_msg(err, errlen, PS_EINVAL, "%s has an unusable serial", path);
out:
    mbedtls_x509_crt_free(&crt);
    return rc;
}

/* The work shared by revoke and crl: under the lock, optionally add one
 * entry, then write revoked.txt, crl.number and ca.crl (about 80 lines,
 * one lock held throughout). */
static int crl_update(const char *dir, const char *name, const char *serial_hex, ps_crl_reason_t reason, int days,
                      char serial_out[41], size_t *count, char *err, size_t errlen)
{
    pki_paths_t *pp = NULL;
    mbedtls_x509_crt ca;
    mbedtls_pk_context ca_key;
    rev_list_t list = {NULL, 0, 0};
    rev_entry_t e;
    long number = 0;
    int rc, lock = -1, adding = name || serial_hex;

    mbedtls_x509_crt_init(&ca);
    mbedtls_pk_init(&ca_key);
    memset(&e, 0, sizeof(e));
    if (!(pp = malloc(sizeof(*pp)))) {
        rc = pki_msg(err, errlen, PS_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = pki_paths(dir, pp, err, errlen)) != PS_OK)
        goto out;
    if (days < 1 || days > PS_CRL_DAYS_MAX) {
        rc = pki_msg(err, errlen, PS_EINVAL, "CRL days must be between 1 and %d", PS_CRL_DAYS_MAX);
        goto out;
    }
    if (adding && ps_crl_reason_from_name(ps_crl_reason_name((int)reason)) != (int)reason) {
        rc = pki_msg(err, errlen, PS_EINVAL, "unknown revocation reason");
        goto out;
    }
    if (name && (!name_ok(name) || strcmp(name, "ca") == 0)) {
        rc = pki_msg(err, errlen, PS_EINVAL, "invalid certificate name");
        goto out;
    }
    if (!name && serial_hex && !serial_hex_norm(serial_hex, e.serial)) {
        rc = pki_msg(err, errlen, PS_EINVAL, "a serial is 1 to 20 bytes in hex");
        goto out;
    }
    if ((rc = load_ca(pp, &ca, &ca_key, err, errlen)) != PS_OK)
        goto out;
    if ((lock = pki_lock(pp, err, errlen)) < 0) {
        rc = PS_EIO;
        goto out;
    }
    if ((rc = rev_read(pp->revoked, &list, err, errlen)) != PS_OK)
        goto out;
    if (adding) {
        const rev_entry_t *old;
        if (name && (rc = cert_serial(dir, name, &ca, e.serial, err, errlen)) != PS_OK)
            goto out;
        if ((old = rev_find(&list, e.serial))) {
            char when[21];
            fmt_iso(old->when, when);
            rc = pki_msg(err, errlen, PS_EEXIST, "serial %s was already revoked on %s", e.serial, when);
            goto out;
        }
        e.when = time(NULL);
        e.reason = (int)reason;
        snprintf(e.name, sizeof(e.name), "%s", name ? name : "-");
        if ((rc = rev_push(&list, &e)) != PS_OK) {
            pki_msg(err, errlen, rc, "too many revoked certificates");
            goto out;
        }
        /* The record first: if writing the CRL fails, `pki crl` rebuilds it. */
        if ((rc = rev_write(dir, pp->revoked, &list, err, errlen)) != PS_OK)
            goto out;
    }
    if ((rc = next_number(dir, pp, &number, err, errlen)) != PS_OK)
        goto out;
    if ((rc = write_crl(dir, pp, &ca, &ca_key, &list, number, days, err, errlen)) != PS_OK)
        goto out;
    if (name && (rc = retire_files(dir, pp, name, e.serial, err, errlen)) != PS_OK)
        goto out;
    if (serial_out)
        snprintf(serial_out, 41, "%s", e.serial);
    if (count)
        *count = list.n;
out:
    if (lock >= 0)
        close(lock);
    free(list.v);
    mbedtls_pk_free(&ca_key);
    mbedtls_x509_crt_free(&ca);
    free(pp);
    return rc;
}

int ps_pki_revoke(const char *dir, const char *name, const char *serial_hex, ps_crl_reason_t reason, int days,
                  char serial_out[41], char *err, size_t errlen)
{
    if (!name && !serial_hex)
        return pki_msg(err, errlen, PS_EINVAL, "revoke needs a name or a serial");
    return crl_update(dir, name, serial_hex, reason, days, serial_out, NULL, err, errlen);
}

int ps_pki_crl(const char *dir, int days, size_t *count, char *err, size_t errlen)
{
    return crl_update(dir, NULL, NULL, PS_CRL_UNSPECIFIED, days, NULL, count, err, errlen);
}

int ps_pki_cert_identity(const char *path, ps_peer_t *out, char *err, size_t errlen)
{
    mbedtls_x509_crt crt;
    int rc = PS_OK;
    mbedtls_x509_crt_init(&crt);
    if (mbedtls_x509_crt_parse_file(&crt, path) != 0) {
        snprintf(err, errlen, "%s: not a readable PEM certificate", path);
        rc = PS_EINVAL;
    } else if (ps__tls_identity(&crt, out) != PS_OK) {
        snprintf(err, errlen, "%s: the subject lacks one CN, one 12-digit OU or a known role", path);
        rc = PS_EINVAL;
    }
    mbedtls_x509_crt_free(&crt);
    return rc;
}
