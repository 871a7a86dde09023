/* tls_pki.c - the district certificate authority, written with mbedTLS.
 *
 * Owns: making the CA (dir/ca.crt, dir/ca.key) and issuing certificates
 * (dir/NAME.crt, dir/NAME.key) whose subject carries the popsync identity
 * "CN=<name>,OU=<12-digit org unit>,O=popsync,title=<role>" that tls.c reads
 * back.  All keys are ECDSA P-256 signed with SHA-256; key files are created
 * 0600 and nothing is ever overwritten.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "err.h"
#include "ids.h"

#define PS_CA_DAYS (10 * 365 + 3) /* ten years, leap days included */
#define PS_MAX_DAYS 3650
#define PS_NAME_MAX 63 /* ps_peer_t.name holds 64 bytes */
#define PS_PEM_MAX 4096

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
 * extension is encoded here: SEQUENCE { OID }. */
static int set_eku(mbedtls_x509write_cert *crt, ps_role_t role, char *err, size_t errlen)
{
    unsigned char buf[32], *p = buf + sizeof(buf);
    const char *oid = role == PS_ROLE_SERVER ? MBEDTLS_OID_SERVER_AUTH : MBEDTLS_OID_CLIENT_AUTH;
    size_t oid_len = role == PS_ROLE_SERVER ? MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)
                                            : MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH);
    size_t len = 0;
    int ret;

    if ((ret = mbedtls_asn1_write_oid(&p, buf, oid, oid_len)) < 0)
        goto fail;
    len += (size_t)ret;
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
static int write_cert(const char *path, mbedtls_x509write_cert *crt, char *err, size_t errlen)
{
    unsigned char pem[PS_PEM_MAX];
    int ret;

    if ((ret = mbedtls_x509write_crt_pem(crt, pem, sizeof(pem), pki_rng, NULL)) != 0)
        return pki_mbed(err, errlen, "signing the certificate", ret);
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

int ps_pki_issue(const char *dir, ps_role_t role, const char *orgunit, const char *name, int days, char *err,
                 size_t errlen)
{
    char ca_crt_path[4096], ca_key_path[4096], crt_path[4096], key_path[4096];
    char subject[160], issuer[160], nb[16], na[16];
    mbedtls_x509_crt ca;
    mbedtls_pk_context ca_key, key;
    mbedtls_x509write_cert crt;
    mbedtls_mpi serial;
    time_t now = time(NULL), not_after, ca_end;
    int rc = PS_OK, ret;

    mbedtls_x509_crt_init(&ca);
    mbedtls_pk_init(&ca_key);
    mbedtls_pk_init(&key);
    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi_init(&serial);
    if (!dir || !*dir) {
        rc = pki_msg(err, errlen, PS_EINVAL, "no PKI directory given");
        goto out;
    }
    if (role == PS_ROLE_NONE || ps_role_from_name(ps_role_name(role)) != role) {
        rc = pki_msg(err, errlen, PS_EINVAL, "unknown role");
        goto out;
    }
    if (!orgunit_ok(orgunit)) {
        rc = pki_msg(err, errlen, PS_EINVAL, "org unit must be exactly 12 digits");
        goto out;
    }
    if (!name_ok(name)) {
        rc = pki_msg(err, errlen, PS_EINVAL,
                     "invalid name (1-63 characters, none of / , = \\ + \" < > ; # and no '..')");
        goto out;
    }
    if (strcmp(name, "ca") == 0) {
        rc = pki_msg(err, errlen, PS_EINVAL, "the name \"ca\" is reserved for the CA's own files");
        goto out;
    }
    if (days < 1 || days > PS_MAX_DAYS) {
        rc = pki_msg(err, errlen, PS_EINVAL, "days must be between 1 and 3650");
        goto out;
    }
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
    if ((ret = mbedtls_x509_crt_parse_file(&ca, ca_crt_path)) != 0) {
        rc = pki_mbed(err, errlen, "loading the CA certificate", ret);
        goto out;
    }
    if ((ret = mbedtls_pk_parse_keyfile(&ca_key, ca_key_path, NULL)) != 0) {
        rc = pki_mbed(err, errlen, "loading the CA key", ret);
        goto out;
    }
    if ((ret = mbedtls_pk_check_pair(&ca.pk, &ca_key)) != 0) {
        rc = pki_mbed(err, errlen, "CA key does not match the CA certificate", ret);
        goto out;
    }
    if (dn_string(&ca.subject, issuer, sizeof(issuer)) != PS_OK) {
        rc = pki_msg(err, errlen, PS_ECRYPTO, "the CA certificate's subject is not one popsync made");
        goto out;
    }
    ca_end = x509_to_time(&ca.valid_to);
    if (ca_end <= now) {
        rc = pki_msg(err, errlen, PS_ECRYPTO, "the CA certificate has expired");
        goto out;
    }
    /* A certificate cannot usefully outlive its CA: clamp instead of failing
     * so issuing keeps working during the CA's last years. */
    not_after = now + (time_t)days * 86400;
    if (not_after > ca_end)
        not_after = ca_end;

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
    fmt_time(now - PS_BACKDATE_S, nb);
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
    if ((rc = set_eku(&crt, role, err, errlen)) != PS_OK)
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
