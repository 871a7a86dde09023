/* test_tls.c - the PKI and the TLS engine, end to end in memory.
 *
 * Makes a CA and certificates in a temporary directory, then wires a server
 * and a client ps_tls_t together by moving cipher_out of one into cipher_in
 * of the other, and checks the policy: who is accepted, what is negotiated,
 * and that data survives the trip.  Also revocation: the CRL `pki revoke`
 * writes is parsed back with mbedTLS, a server reloads it, and a revoked
 * certificate is refused on a full and on a resumed handshake.
 */
#define _GNU_SOURCE /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

#include "err.h"
#include "ids.h"
#include "tls.h"

#define SERVER_NAME "popsync-server"
#define OU_DISTRICT "100000000001"
#define OU_TOWNSHIP "123456789012"

typedef struct fixture {
    char dir[64];       /* temp root */
    char pki[96];       /* our CA */
    char other[96];     /* an unrelated CA */
    ps_tls_conf_t *server;     /* server cert from our CA */
    ps_tls_conf_t *township;   /* township client */
    ps_tls_conf_t *admin;      /* admin client */
    ps_tls_conf_t *stranger;   /* client whose cert comes from the other CA */
    ps_tls_conf_t *evil;       /* server side presenting a township cert */
    ps_tls_conf_t *forged;     /* server side: township role, serverAuth EKU */
} fixture_t;

static void path_in(char *out, size_t cap, const char *dir, const char *file)
{
    assert_true((size_t)snprintf(out, cap, "%s/%s", dir, file) < cap);
}

static ps_tls_conf_t *make_conf(ps_tls_side_t side, const char *ca_dir, const char *cert_dir, const char *name)
{
    char ca[256], crt[256], key[256], file[128], err[256] = "";
    ps_tls_conf_t *c = NULL;

    path_in(ca, sizeof(ca), ca_dir, "ca.crt");
    snprintf(file, sizeof(file), "%s.crt", name);
    path_in(crt, sizeof(crt), cert_dir, file);
    snprintf(file, sizeof(file), "%s.key", name);
    path_in(key, sizeof(key), cert_dir, file);
    int rc = ps_tls_conf_new(&c, side, ca, crt, key, NULL, err, sizeof(err));
    if (rc != PS_OK)
        fail_msg("ps_tls_conf_new(%s): %d %s", name, rc, err);
    return c;
}

static void issue(const char *dir, ps_role_t role, const char *ou, const char *name)
{
    char err[256] = "";
    int rc = ps_pki_issue(dir, role, ou, name, 825, err, sizeof(err));
    if (rc != PS_OK)
        fail_msg("ps_pki_issue(%s): %d %s", name, rc, err);
}

static int test_rng(void *ctx, unsigned char *out, size_t len)
{
    (void)ctx;
    return ps_random(out, len) == PS_OK ? 0 : -1;
}

static void forge_eku(const char *pki, const char *name, const char *subject, int with_eku);

/* ps_pki_issue ties the EKU to the role, so a township certificate fit for a
 * server cannot be made with it.  This signs one with our CA directly, to
 * show the client's role check stands on its own.  forge_eku can also leave
 * the extendedKeyUsage extension out. */
static void forge(const char *pki, const char *name, const char *subject)
{
    forge_eku(pki, name, subject, 1);
}

static void forge_eku(const char *pki, const char *name, const char *subject, int with_eku)
{
    char path[256], file[128];
    unsigned char pem[4096], eku[32], *p = eku + sizeof(eku);
    mbedtls_x509_crt ca;
    mbedtls_pk_context ca_key, key;
    mbedtls_x509write_cert w;
    mbedtls_mpi serial;
    size_t len = 0;
    FILE *fp;

    mbedtls_x509_crt_init(&ca);
    mbedtls_pk_init(&ca_key);
    mbedtls_pk_init(&key);
    mbedtls_x509write_crt_init(&w);
    mbedtls_mpi_init(&serial);
    path_in(path, sizeof(path), pki, "ca.crt");
    assert_int_equal(mbedtls_x509_crt_parse_file(&ca, path), 0);
    path_in(path, sizeof(path), pki, "ca.key");
    assert_int_equal(mbedtls_pk_parse_keyfile(&ca_key, path, NULL), 0);
    assert_int_equal(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
    assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), test_rng, NULL), 0);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, &key);
    mbedtls_x509write_crt_set_issuer_key(&w, &ca_key);
    assert_int_equal(mbedtls_x509write_crt_set_subject_name(&w, subject), 0);
    assert_int_equal(mbedtls_x509write_crt_set_issuer_name(&w, "CN=popsync district CA,O=popsync"), 0);
    assert_int_equal(mbedtls_mpi_lset(&serial, with_eku ? 4242 : 4343), 0);
    assert_int_equal(mbedtls_x509write_crt_set_serial(&w, &serial), 0);
    assert_int_equal(mbedtls_x509write_crt_set_validity(&w, "20200101000000", "20991231235959"), 0);
    assert_int_equal(mbedtls_x509write_crt_set_basic_constraints(&w, 0, -1), 0);
    assert_int_equal(mbedtls_x509write_crt_set_key_usage(&w, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
    len += (size_t)mbedtls_asn1_write_oid(&p, eku, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH));
    len += (size_t)mbedtls_asn1_write_len(&p, eku, len);
    len += (size_t)mbedtls_asn1_write_tag(&p, eku, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE);
    if (with_eku)
        assert_int_equal(mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                             MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, p,
                                                             len),
                         0);
    assert_int_equal(mbedtls_x509write_crt_pem(&w, pem, sizeof(pem), test_rng, NULL), 0);
    snprintf(file, sizeof(file), "%s.crt", name);
    path_in(path, sizeof(path), pki, file);
    assert_non_null(fp = fopen(path, "wx"));
    fputs((char *)pem, fp);
    fclose(fp);
    assert_int_equal(mbedtls_pk_write_key_pem(&key, pem, sizeof(pem)), 0);
    snprintf(file, sizeof(file), "%s.key", name);
    path_in(path, sizeof(path), pki, file);
    assert_non_null(fp = fopen(path, "wx"));
    fputs((char *)pem, fp);
    fclose(fp);
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&w);
    mbedtls_pk_free(&key);
    mbedtls_pk_free(&ca_key);
    mbedtls_x509_crt_free(&ca);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256] = "";

    assert_non_null(f);
    strcpy(f->dir, "/tmp/ps-test-tls-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    path_in(f->pki, sizeof(f->pki), f->dir, "pki");
    path_in(f->other, sizeof(f->other), f->dir, "other");

    if (ps_pki_init_ca(f->pki, "popsync district CA", err, sizeof(err)) != PS_OK)
        fail_msg("init_ca: %s", err);
    issue(f->pki, PS_ROLE_SERVER, OU_DISTRICT, SERVER_NAME);
    issue(f->pki, PS_ROLE_TOWNSHIP, OU_TOWNSHIP, "township-a");
    issue(f->pki, PS_ROLE_ADMIN, OU_DISTRICT, "admin one");
    if (ps_pki_init_ca(f->other, "some other CA", err, sizeof(err)) != PS_OK)
        fail_msg("init_ca other: %s", err);
    issue(f->other, PS_ROLE_TOWNSHIP, OU_TOWNSHIP, "stranger");

    f->server = make_conf(PS_TLS_SERVER, f->pki, f->pki, SERVER_NAME);
    f->township = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "township-a");
    f->admin = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "admin one");
    /* The stranger trusts our CA, so only the server's check can stop it. */
    f->stranger = make_conf(PS_TLS_CLIENT, f->pki, f->other, "stranger");
    f->evil = make_conf(PS_TLS_SERVER, f->pki, f->pki, "township-a");
    forge(f->pki, "forged", "CN=" SERVER_NAME ",OU=" OU_TOWNSHIP ",O=popsync,title=township");
    f->forged = make_conf(PS_TLS_SERVER, f->pki, f->pki, "forged");
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ps_tls_conf_free(f->server);
    ps_tls_conf_free(f->township);
    ps_tls_conf_free(f->admin);
    ps_tls_conf_free(f->stranger);
    ps_tls_conf_free(f->evil);
    ps_tls_conf_free(f->forged);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Moves up to chunk bytes (0: all) of ciphertext from one side to the other. */
static size_t move(ps_tls_t *from, ps_tls_t *to, size_t chunk)
{
    ps_buf_t *o = ps_tls_cipher_out(from), *i = ps_tls_cipher_in(to);
    size_t n = ps_buf_size(o);

    if (chunk && n > chunk)
        n = chunk;
    if (n) {
        assert_int_equal(ps_buf_append(i, ps_buf_head(o), n), PS_OK);
        ps_buf_consume(o, n);
    }
    return n;
}

/* Runs both handshakes until neither can progress; returns bytes moved. */
static size_t run_handshake(ps_tls_t *c, ps_tls_t *s, size_t chunk, int *rc_c, int *rc_s)
{
    size_t total = 0, moved;

    for (int round = 0; round < 10000; round++) {
        *rc_c = ps_tls_handshake(c);
        moved = move(c, s, chunk);
        *rc_s = ps_tls_handshake(s);
        moved += move(s, c, chunk);
        total += moved;
        if (*rc_c != PS_EAGAIN && *rc_s != PS_EAGAIN && moved == 0)
            break;
        if (moved == 0 && ps_buf_size(ps_tls_cipher_in(c)) == 0 && ps_buf_size(ps_tls_cipher_in(s)) == 0 &&
            (*rc_c == PS_ETLS || *rc_s == PS_ETLS))
            break;
    }
    return total;
}

static void read_all(ps_tls_t *t, uint8_t *buf, size_t want)
{
    size_t got = 0, n;
    while (got < want) {
        int rc = ps_tls_read(t, buf + got, want - got, &n);
        assert_int_equal(rc, PS_OK);
        assert_true(n > 0);
        got += n;
    }
    assert_int_equal(ps_tls_read(t, buf, 1, &n), PS_EAGAIN);
}

static void pair(fixture_t *f, ps_tls_conf_t *client_conf, ps_tls_conf_t *server_conf, const char *name,
                 ps_tls_t **c, ps_tls_t **s)
{
    (void)f;
    assert_int_equal(ps_tls_new(c, client_conf, name), PS_OK);
    assert_int_equal(ps_tls_new(s, server_conf, NULL), PS_OK);
}

static void check_suite(ps_tls_t *t)
{
    const char *suite = ps_tls_ciphersuite(t);
    assert_string_equal(ps_tls_version(t), "TLSv1.2");
    if (strcmp(suite, "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256") != 0 &&
        strcmp(suite, "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384") != 0 &&
        strcmp(suite, "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256") != 0)
        fail_msg("unexpected suite %s", suite);
}

static void test_roles(void **state)
{
    (void)state;
    assert_int_equal(ps_role_from_name("township"), PS_ROLE_TOWNSHIP);
    assert_int_equal(ps_role_from_name("server"), PS_ROLE_SERVER);
    assert_int_equal(ps_role_from_name("root"), PS_ROLE_NONE);
    assert_int_equal(ps_role_from_name(NULL), PS_ROLE_NONE);
    assert_string_equal(ps_role_name(PS_ROLE_VIEWER), "viewer");
    assert_string_equal(ps_role_name((ps_role_t)99), "none");
}

static void test_handshake_and_data(void **state)
{
    fixture_t *f = *state;
    ps_tls_t *c, *s;
    int rc_c, rc_s;
    uint8_t small[64];
    size_t n;

    pair(f, f->township, f->server, SERVER_NAME, &c, &s);
    assert_int_equal(ps_tls_write(c, (const uint8_t *)"x", 1), PS_ETLS); /* not yet */
    ps_tls_free(c);
    assert_int_equal(ps_tls_new(&c, f->township, SERVER_NAME), PS_OK);

    run_handshake(c, s, 0, &rc_c, &rc_s);
    assert_int_equal(rc_c, PS_OK);
    assert_int_equal(rc_s, PS_OK);
    assert_true(ps_tls_established(c) && ps_tls_established(s));

    const ps_peer_t *sp = ps_tls_peer(s); /* the server's view of the client */
    assert_int_equal(sp->role, PS_ROLE_TOWNSHIP);
    assert_string_equal(sp->role_name, "township");
    assert_string_equal(sp->orgunit, OU_TOWNSHIP);
    assert_string_equal(sp->name, "township-a");
    assert_string_equal(sp->serial_hex, ps_tls_conf_self(f->township)->serial_hex);

    const ps_peer_t *cp = ps_tls_peer(c);
    assert_int_equal(cp->role, PS_ROLE_SERVER);
    assert_string_equal(cp->orgunit, OU_DISTRICT);
    assert_string_equal(cp->name, SERVER_NAME);
    assert_string_equal(cp->serial_hex, ps_tls_conf_self(f->server)->serial_hex);

    check_suite(c);
    check_suite(s);
    assert_string_equal(ps_tls_ciphersuite(c), ps_tls_ciphersuite(s));
    print_message("negotiated %s %s\n", ps_tls_version(c), ps_tls_ciphersuite(c));

    /* Nothing buffered yet. */
    assert_int_equal(ps_tls_read(s, small, sizeof(small), &n), PS_EAGAIN);

    assert_int_equal(ps_tls_write(c, (const uint8_t *)"hello server", 12), PS_OK);
    move(c, s, 0);
    read_all(s, small, 12);
    assert_memory_equal(small, "hello server", 12);

    assert_int_equal(ps_tls_write(s, (const uint8_t *)"hello client", 12), PS_OK);
    move(s, c, 0);
    read_all(c, small, 12);
    assert_memory_equal(small, "hello client", 12);

    /* 100 KB spans several records both ways, fed in odd-sized pieces. */
    size_t big = 100 * 1024;
    uint8_t *src = malloc(big), *dst = malloc(big);
    assert_non_null(src);
    assert_non_null(dst);
    assert_int_equal(ps_random(src, big), PS_OK);
    assert_int_equal(ps_tls_write(c, src, big), PS_OK);
    while (move(c, s, 1000)) {
    }
    read_all(s, dst, big);
    assert_memory_equal(src, dst, big);

    memset(dst, 0, big);
    assert_int_equal(ps_tls_write(s, src, big), PS_OK);
    move(s, c, 0);
    read_all(c, dst, big);
    assert_memory_equal(src, dst, big);
    free(src);
    free(dst);

    ps_tls_close_notify(c);
    move(c, s, 0);
    assert_int_equal(ps_tls_read(s, small, sizeof(small), &n), PS_ECLOSED);

    ps_tls_free(c);
    ps_tls_free(s);
}

static long rss_anon_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *fp = fopen("/proc/self/status", "r");
    if (!fp)
        return -1;
    while (fgets(line, sizeof(line), fp))
        if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
            break;
    fclose(fp);
    return kb;
}

/* Sends len random bytes from a to b and checks them on arrival. */
static void exchange(ps_tls_t *a, ps_tls_t *b, size_t len)
{
    uint8_t *src = malloc(len), *dst = malloc(len);
    assert_non_null(src);
    assert_non_null(dst);
    assert_int_equal(ps_random(src, len), PS_OK);
    assert_int_equal(ps_tls_write(a, src, len), PS_OK);
    move(a, b, 0);
    read_all(b, dst, len);
    assert_memory_equal(src, dst, len);
    free(src);
    free(dst);
}

/* ps_tls_trim (issue 17, memory per idle connection): the pages of
 * mbedTLS's record buffers go back to the kernel, and the connection goes
 * on as before, also when a record was half received at the time. */
static void test_trim(void **state)
{
    enum { N = 32 };
    fixture_t *f = *state;
    ps_tls_t *c[N], *s[N];
    int rc_c, rc_s;
    long before, after;
    uint8_t buf[64];
    size_t n, half;

    for (int i = 0; i < N; i++) {
        pair(f, f->township, f->server, SERVER_NAME, &c[i], &s[i]);
        run_handshake(c[i], s[i], 0, &rc_c, &rc_s);
        assert_int_equal(rc_c, PS_OK);
        assert_int_equal(rc_s, PS_OK);
        /* Full records both ways: every page of both buffers touched. */
        exchange(c[i], s[i], 16384);
        exchange(s[i], c[i], 16384);
    }
    before = rss_anon_kb();
    for (int i = 0; i < N; i++) {
        ps_tls_trim(c[i]);
        ps_tls_trim(s[i]);
    }
    after = rss_anon_kb();
    print_message("RssAnon %ld -> %ld kB for %d connections\n", before, after, 2 * N);
    /* At least 3 whole pages in each 16 KB buffer, 2 buffers per side:
     * count only 2 pages each, for any page layout. */
    assert_true(before - after >= 2 * N * 2 * 8);
    for (int i = 0; i < N; i++) {
        exchange(c[i], s[i], 40000);
        exchange(s[i], c[i], 40000);
    }

    /* Half a record in the engine: trim leaves it alone. */
    assert_int_equal(ps_tls_write(c[0], (const uint8_t *)"half and half", 13), PS_OK);
    half = ps_buf_size(ps_tls_cipher_out(c[0])) / 2;
    move(c[0], s[0], half);
    assert_int_equal(ps_tls_read(s[0], buf, sizeof(buf), &n), PS_EAGAIN);
    ps_tls_trim(s[0]);
    move(c[0], s[0], 0);
    read_all(s[0], buf, 13);
    assert_memory_equal(buf, "half and half", 13);
    /* Before the handshake: nothing to give back, nothing broken. */
    {
        ps_tls_t *c2, *s2;
        pair(f, f->township, f->server, SERVER_NAME, &c2, &s2);
        ps_tls_trim(c2);
        run_handshake(c2, s2, 0, &rc_c, &rc_s);
        assert_int_equal(rc_c, PS_OK);
        assert_int_equal(rc_s, PS_OK);
        exchange(c2, s2, 100);
        ps_tls_free(c2);
        ps_tls_free(s2);
    }
    for (int i = 0; i < N; i++) {
        ps_tls_free(c[i]);
        ps_tls_free(s[i]);
    }
}

/* The key exchange is X25519 (issue 17: cheaper than P-256 on mbedTLS 2.28,
 * whose P-256 builds a table on each handshake's fresh group).  The
 * ServerKeyExchange travels in clear: handshake type 12, 3 length bytes,
 * then curve_type 3 (named_curve) and the curve, 0x001d for X25519. */
static void test_key_exchange_curve(void **state)
{
    fixture_t *f = *state;
    ps_tls_t *c, *s;
    const uint8_t *p;
    size_t n, i;
    int found = 0, rc_c, rc_s;

    pair(f, f->township, f->server, SERVER_NAME, &c, &s);
    assert_int_equal(ps_tls_handshake(c), PS_EAGAIN); /* ClientHello */
    move(c, s, 0);
    assert_int_equal(ps_tls_handshake(s), PS_EAGAIN); /* ServerHello ... ServerHelloDone */
    p = ps_buf_head(ps_tls_cipher_out(s));
    n = ps_buf_size(ps_tls_cipher_out(s));
    for (i = 5; i + 7 <= n && !found; i++)
        if (p[i] == 12 && p[i + 4] == 3 && p[i + 5] == 0x00 && p[i + 6] == 0x1d)
            found = 1;
    assert_true(found);
    move(s, c, 0);
    run_handshake(c, s, 0, &rc_c, &rc_s);
    assert_int_equal(rc_c, PS_OK);
    assert_int_equal(rc_s, PS_OK);
    ps_tls_free(c);
    ps_tls_free(s);
}

static void test_admin_trickle(void **state)
{
    fixture_t *f = *state;
    ps_tls_t *c, *s;
    int rc_c, rc_s;

    /* Three bytes at a time: every record boundary lands mid-buffer. */
    pair(f, f->admin, f->server, SERVER_NAME, &c, &s);
    run_handshake(c, s, 3, &rc_c, &rc_s);
    assert_int_equal(rc_c, PS_OK);
    assert_int_equal(rc_s, PS_OK);
    assert_int_equal(ps_tls_peer(s)->role, PS_ROLE_ADMIN);
    assert_string_equal(ps_tls_peer(s)->name, "admin one");
    assert_string_equal(ps_tls_peer(s)->orgunit, OU_DISTRICT);
    ps_tls_free(c);
    ps_tls_free(s);
}

static void test_other_ca_refused(void **state)
{
    fixture_t *f = *state;
    ps_tls_t *c, *s;
    int rc_c, rc_s;

    pair(f, f->stranger, f->server, SERVER_NAME, &c, &s);
    run_handshake(c, s, 0, &rc_c, &rc_s);
    assert_int_equal(rc_s, PS_ETLS);
    assert_int_equal(rc_c, PS_ETLS); /* the server's alert reached it */
    assert_non_null(strstr(ps_tls_last_error(s), "peer certificate refused"));
    assert_false(ps_tls_established(s));
    ps_tls_free(c);
    ps_tls_free(s);
}

static void test_server_role_refused(void **state)
{
    fixture_t *f = *state;
    ps_tls_t *c, *s;
    int rc_c, rc_s;

    /* A township certificate made by `pki issue` carries clientAuth only, so
     * mbedTLS will not even offer it as a server certificate. */
    pair(f, f->admin, f->evil, "township-a", &c, &s);
    run_handshake(c, s, 0, &rc_c, &rc_s);
    assert_int_equal(rc_c, PS_ETLS);
    assert_int_equal(rc_s, PS_ETLS);
    assert_false(ps_tls_established(c));
    ps_tls_free(c);
    ps_tls_free(s);

    /* This one chains to our CA, has serverAuth and the CN we ask for; only
     * its role gives it away. */
    pair(f, f->admin, f->forged, SERVER_NAME, &c, &s);
    run_handshake(c, s, 0, &rc_c, &rc_s);
    assert_int_equal(rc_c, PS_ETLS);
    assert_int_equal(rc_s, PS_ETLS);
    if (!strstr(ps_tls_last_error(c), "role is not server"))
        fail_msg("client error: %s", ps_tls_last_error(c));
    ps_tls_free(c);
    ps_tls_free(s);
}

static void test_wrong_server_name(void **state)
{
    fixture_t *f = *state;
    ps_tls_t *c, *s;
    int rc_c, rc_s;

    pair(f, f->township, f->server, "other-server", &c, &s);
    run_handshake(c, s, 0, &rc_c, &rc_s);
    assert_int_equal(rc_c, PS_ETLS);
    assert_int_not_equal(rc_s, PS_OK);
    /* Both names, and how to fix it. */
    if (!strstr(ps_tls_last_error(c), "but 'other-server' was expected") ||
        !strstr(ps_tls_last_error(c), "config set server_name"))
        fail_msg("client error: %s", ps_tls_last_error(c));
    ps_tls_free(c);
    ps_tls_free(s);

    /* A client must always say which server it expects. */
    assert_int_equal(ps_tls_new(&c, f->township, NULL), PS_EINVAL);
    assert_null(c);
}

static void test_resume(void **state)
{
    fixture_t *f = *state;
    ps_tls_t *c, *s;
    ps_buf_t sess;
    int rc_c, rc_s;
    size_t full, resumed;

    ps_buf_init(&sess);
    pair(f, f->township, f->server, SERVER_NAME, &c, &s);
    full = run_handshake(c, s, 0, &rc_c, &rc_s);
    assert_int_equal(rc_c, PS_OK);
    assert_int_equal(rc_s, PS_OK);
    assert_int_equal(ps_tls_session_save(c, &sess), PS_OK);
    assert_true(ps_buf_size(&sess) > 0);
    assert_int_equal(ps_tls_session_save(s, &sess), PS_EINVAL); /* client only */
    ps_tls_free(c);
    ps_tls_free(s);

    pair(f, f->township, f->server, SERVER_NAME, &c, &s);
    assert_int_equal(ps_tls_session_resume(c, ps_buf_head(&sess), ps_buf_size(&sess)), PS_OK);
    resumed = run_handshake(c, s, 0, &rc_c, &rc_s);
    assert_int_equal(rc_c, PS_OK);
    assert_int_equal(rc_s, PS_OK);
    /* No certificates cross the wire when the ticket is accepted. */
    assert_true(resumed * 2 < full);
    assert_string_equal(ps_tls_peer(s)->name, "township-a");
    assert_int_equal(ps_tls_peer(s)->role, PS_ROLE_TOWNSHIP);
    assert_int_equal(ps_tls_peer(c)->role, PS_ROLE_SERVER);
    ps_tls_free(c);
    ps_tls_free(s);

    assert_int_equal(ps_tls_new(&c, f->township, SERVER_NAME), PS_OK);
    assert_int_equal(ps_tls_session_resume(c, (const uint8_t *)"junk", 4), PS_EINVAL);
    ps_tls_free(c);
    ps_buf_free(&sess);
}

static void test_files(void **state)
{
    fixture_t *f = *state;
    char path[256];
    struct stat st;

    path_in(path, sizeof(path), f->pki, "ca.key");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    path_in(path, sizeof(path), f->pki, "township-a.key");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    path_in(path, sizeof(path), f->pki, "admin one.key");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* 16-byte serials, positive without a padding byte. */
    const char *serial = ps_tls_conf_self(f->township)->serial_hex;
    assert_int_equal(strlen(serial), 32);
    assert_true(serial[0] >= '0' && serial[0] <= '7');
    assert_string_not_equal(serial, ps_tls_conf_self(f->admin)->serial_hex);
    assert_int_equal(strlen(ps_tls_conf_self(f->server)->serial_hex), 32);

    /* The server's name is also a subjectAltName dNSName; people's names
     * (with spaces) are not DNS names and stay in the CN only. */
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    path_in(path, sizeof(path), f->pki, SERVER_NAME ".crt");
    assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path), 0);
    assert_true(crt.ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME);
    assert_int_equal(crt.subject_alt_names.buf.len, strlen(SERVER_NAME));
    assert_memory_equal(crt.subject_alt_names.buf.p, SERVER_NAME, strlen(SERVER_NAME));
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_init(&crt);
    path_in(path, sizeof(path), f->pki, "township-a.crt");
    assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path), 0);
    assert_false(crt.ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME);
    mbedtls_x509_crt_free(&crt);
}

static void test_refusals(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";

    assert_int_equal(ps_pki_issue(f->pki, PS_ROLE_TOWNSHIP, OU_TOWNSHIP, "township-a", 825, err, sizeof(err)),
                     PS_EEXIST);
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(ps_pki_init_ca(f->pki, "again", err, sizeof(err)), PS_EEXIST);
    assert_non_null(strstr(err, "already exists"));

    const char *bad[] = {"a/b", "..", "x..y", "a,b", "a=b", "", "ca"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ps_pki_issue(f->pki, PS_ROLE_VIEWER, OU_TOWNSHIP, bad[i], 825, err, sizeof(err)),
                         PS_EINVAL);
    assert_int_equal(ps_pki_issue(f->pki, PS_ROLE_VIEWER, "12345", "v", 825, err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_pki_issue(f->pki, PS_ROLE_VIEWER, "12345678901a", "v", 825, err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_pki_issue(f->pki, PS_ROLE_NONE, OU_TOWNSHIP, "v", 825, err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_pki_issue(f->pki, PS_ROLE_VIEWER, OU_TOWNSHIP, "v", 0, err, sizeof(err)), PS_EINVAL);

    /* A conf whose key belongs to another certificate is refused up front. */
    char ca[256], crt[256], key[256];
    ps_tls_conf_t *c = NULL;
    path_in(ca, sizeof(ca), f->pki, "ca.crt");
    path_in(crt, sizeof(crt), f->pki, "township-a.crt");
    path_in(key, sizeof(key), f->pki, "admin one.key");
    assert_int_equal(ps_tls_conf_new(&c, PS_TLS_CLIENT, ca, crt, key, NULL, err, sizeof(err)), PS_ETLS);
    assert_null(c);
    assert_non_null(strstr(err, "does not match"));
    path_in(key, sizeof(key), f->pki, "missing.key");
    assert_int_equal(ps_tls_conf_new(&c, PS_TLS_CLIENT, ca, crt, key, NULL, err, sizeof(err)), PS_ETLS);
    assert_non_null(strstr(err, "-0x"));
}

/* Runs a full handshake between fresh connections of these confs; returns
 * the server's result and copies its error text. */
static int shake(ps_tls_conf_t *client_conf, ps_tls_conf_t *server_conf, const uint8_t *sess, size_t sess_len,
                 ps_buf_t *save, char *err, size_t errlen)
{
    ps_tls_t *c, *s;
    int rc_c, rc_s;

    assert_int_equal(ps_tls_new(&c, client_conf, SERVER_NAME), PS_OK);
    assert_int_equal(ps_tls_new(&s, server_conf, NULL), PS_OK);
    if (sess)
        assert_int_equal(ps_tls_session_resume(c, sess, sess_len), PS_OK);
    run_handshake(c, s, 0, &rc_c, &rc_s);
    snprintf(err, errlen, "%s", ps_tls_last_error(s));
    if (save && rc_c == PS_OK)
        assert_int_equal(ps_tls_session_save(c, save), PS_OK);
    ps_tls_free(c);
    ps_tls_free(s);
    return rc_s;
}

static ps_tls_conf_t *server_with_crl(fixture_t *f, const char *crl)
{
    char ca[256], crt[256], key[256], err[256] = "";
    ps_tls_conf_t *c = NULL;

    path_in(ca, sizeof(ca), f->pki, "ca.crt");
    path_in(crt, sizeof(crt), f->pki, SERVER_NAME ".crt");
    path_in(key, sizeof(key), f->pki, SERVER_NAME ".key");
    if (ps_tls_conf_new(&c, PS_TLS_SERVER, ca, crt, key, crl, err, sizeof(err)) != PS_OK)
        fail_msg("server conf with CRL: %s", err);
    return c;
}

static long read_number(const char *pki)
{
    char path[256];
    long n = -1;
    FILE *fp;

    path_in(path, sizeof(path), pki, "crl.number");
    assert_non_null(fp = fopen(path, "r"));
    assert_int_equal(fscanf(fp, "%ld", &n), 1);
    fclose(fp);
    return n;
}

static void test_revocation(void **state)
{
    fixture_t *f = *state;
    char crl_path[256], ca_path[256], err[256] = "", serial[41] = "", serial2[41] = "";
    ps_tls_conf_t *srv, *victim, *bystander;
    mbedtls_x509_crl crl;
    mbedtls_x509_crt ca;
    ps_buf_t sess;
    size_t count = 99;
    int64_t next = 0;
    long number;

    ps_buf_init(&sess);
    issue(f->pki, PS_ROLE_COLLECTOR, OU_TOWNSHIP, "victim");
    issue(f->pki, PS_ROLE_COLLECTOR, OU_TOWNSHIP, "bystander");
    victim = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "victim");
    bystander = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "bystander");
    path_in(crl_path, sizeof(crl_path), f->pki, "ca.crl");
    path_in(ca_path, sizeof(ca_path), f->pki, "ca.crt");

    /* An empty CRL first: everyone is served, and a ticket is kept. */
    assert_int_equal(ps_pki_crl(f->pki, 30, &count, err, sizeof(err)), PS_OK);
    assert_int_equal(count, 0);
    number = read_number(f->pki);
    srv = server_with_crl(f, crl_path);
    assert_int_equal(ps_tls_conf_crl_info(srv, &count, &next), 1);
    assert_int_equal(count, 0);
    assert_true(next > (int64_t)time(NULL) + 29 * 86400);
    assert_int_equal(shake(victim, srv, NULL, 0, &sess, err, sizeof(err)), PS_OK);
    assert_false(ps_tls_conf_is_revoked(srv, ps_tls_conf_self(victim)->serial_hex));

    /* Revoke by name: the files move away and the name can be issued again. */
    assert_int_equal(ps_pki_revoke(f->pki, "victim", NULL, PS_CRL_KEY_COMPROMISE, 30, serial, err, sizeof(err)),
                     PS_OK);
    assert_string_equal(serial, ps_tls_conf_self(victim)->serial_hex);
    assert_int_equal(read_number(f->pki), number + 1);
    assert_int_equal(ps_pki_revoke(f->pki, "victim", NULL, PS_CRL_SUPERSEDED, 30, NULL, err, sizeof(err)),
                     PS_ENOTFOUND);
    assert_int_equal(ps_pki_revoke(f->pki, NULL, serial, PS_CRL_SUPERSEDED, 30, NULL, err, sizeof(err)), PS_EEXIST);
    assert_non_null(strstr(err, "already revoked"));
    assert_int_equal(ps_pki_revoke(f->pki, "ca", NULL, PS_CRL_SUPERSEDED, 30, NULL, err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_pki_revoke(f->pki, NULL, "xyz", PS_CRL_SUPERSEDED, 30, NULL, err, sizeof(err)), PS_EINVAL);
    issue(f->pki, PS_ROLE_COLLECTOR, OU_TOWNSHIP, "victim");
    /* By serial too (a certificate whose file is lost), with ':' separators. */
    assert_int_equal(ps_pki_revoke(f->pki, NULL, "7f:00:00:01", PS_CRL_CESSATION, 30, serial2, err, sizeof(err)),
                     PS_OK);
    assert_string_equal(serial2, "7f000001");

    /* mbedTLS reads back what we wrote: v2, our CA as issuer, both serials,
     * a valid signature (mbedtls_x509_crt_verify checks it below). */
    mbedtls_x509_crl_init(&crl);
    mbedtls_x509_crt_init(&ca);
    assert_int_equal(mbedtls_x509_crl_parse_file(&crl, crl_path), 0);
    assert_int_equal(mbedtls_x509_crt_parse_file(&ca, ca_path), 0);
    assert_int_equal(crl.version, 2);
    assert_int_equal(crl.issuer_raw.len, ca.subject_raw.len);
    assert_memory_equal(crl.issuer_raw.p, ca.subject_raw.p, ca.subject_raw.len);
    assert_int_equal(crl.sig_md, MBEDTLS_MD_SHA256);
    assert_int_equal(crl.sig_pk, MBEDTLS_PK_ECDSA);
    assert_true(crl.crl_ext.len > 0);
    assert_false(mbedtls_x509_time_is_past(&crl.next_update));
    assert_false(mbedtls_x509_time_is_future(&crl.this_update));
    size_t entries = 0;
    for (const mbedtls_x509_crl_entry *e = &crl.entry; e && e->serial.len; e = e->next) {
        char hex[41];
        assert_true(e->serial.len <= 20);
        ps_hex(e->serial.p, e->serial.len, hex);
        if (entries == 0) {
            assert_string_equal(hex, serial);
            assert_true(e->entry_ext.len > 0); /* keyCompromise reasonCode */
        } else {
            assert_string_equal(hex, serial2);
        }
        assert_false(mbedtls_x509_time_is_future(&e->revocation_date));
        entries++;
    }
    assert_int_equal(entries, 2);
    mbedtls_x509_crl_free(&crl);
    mbedtls_x509_crt_free(&ca);

    /* Until the reload the server still serves the victim... */
    assert_int_equal(shake(victim, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_tls_conf_reload_crl(srv, crl_path, err, sizeof(err)), PS_OK);
    assert_true(ps_tls_conf_is_revoked(srv, serial));
    assert_true(ps_tls_conf_is_revoked(srv, "007F000001"));
    assert_false(ps_tls_conf_is_revoked(srv, ps_tls_conf_self(bystander)->serial_hex));
    assert_int_equal(ps_tls_conf_crl_info(srv, &count, NULL), 1);
    assert_int_equal(count, 2);
    /* ...and after it refuses it, naming the reason, on a full handshake and
     * on one resuming a session made before the revocation. */
    assert_int_equal(shake(victim, srv, NULL, 0, NULL, err, sizeof(err)), PS_ETLS);
    if (!strstr(err, "revoked"))
        fail_msg("server error: %s", err);
    assert_int_equal(shake(victim, srv, ps_buf_head(&sess), ps_buf_size(&sess), NULL, err, sizeof(err)), PS_ETLS);
    if (!strstr(err, "revoked"))
        fail_msg("server error on resumption: %s", err);
    assert_int_equal(shake(bystander, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    /* The refusal comes from the certificate's verification (the client
     * hears the alert; it never completes), yet mbedTLS is not given the
     * CRL: its signature was checked once, when loaded, and is not checked
     * again on every full handshake (issue 17: +29% of the server's CPU). */
    assert_null(ps__tls_conf_mbedtls_crl(srv));
    {
        ps_tls_t *c, *s;
        int rc_c, rc_s;
        pair(f, victim, srv, SERVER_NAME, &c, &s);
        run_handshake(c, s, 0, &rc_c, &rc_s);
        assert_int_equal(rc_s, PS_ETLS);
        assert_int_equal(rc_c, PS_ETLS);
        ps_tls_free(c);
        ps_tls_free(s);
    }

    /* A broken file or another CA's CRL leaves the CRL in force alone. */
    char bad[256], other_crl[256];
    FILE *fp;
    path_in(bad, sizeof(bad), f->dir, "bad.crl");
    assert_non_null(fp = fopen(bad, "w"));
    fputs("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", fp);
    fclose(fp);
    assert_int_not_equal(ps_tls_conf_reload_crl(srv, bad, err, sizeof(err)), PS_OK);
    assert_int_not_equal(ps_tls_conf_reload_crl(srv, "/nonexistent/ca.crl", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_pki_crl(f->other, 30, NULL, err, sizeof(err)), PS_OK);
    path_in(other_crl, sizeof(other_crl), f->other, "ca.crl");
    assert_int_equal(ps_tls_conf_reload_crl(srv, other_crl, err, sizeof(err)), PS_ETLS);
    assert_non_null(strstr(err, "not signed by the configured CA"));
    assert_true(ps_tls_conf_is_revoked(srv, serial));
    assert_int_equal(shake(victim, srv, NULL, 0, NULL, err, sizeof(err)), PS_ETLS);

    /* `pki crl` re-issues with a new number and the same list. */
    number = read_number(f->pki);
    assert_int_equal(ps_pki_crl(f->pki, 7, &count, err, sizeof(err)), PS_OK);
    assert_int_equal(count, 2);
    assert_int_equal(read_number(f->pki), number + 1);
    assert_int_equal(ps_tls_conf_reload_crl(srv, crl_path, err, sizeof(err)), PS_OK);
    assert_true(ps_tls_conf_is_revoked(srv, serial));
    assert_int_equal(ps_pki_crl(f->pki, 0, NULL, err, sizeof(err)), PS_EINVAL);

    /* The re-issued "victim" has a new serial and is served. */
    ps_tls_conf_t *again = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "victim");
    assert_string_not_equal(ps_tls_conf_self(again)->serial_hex, serial);
    assert_int_equal(shake(again, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);

    ps_tls_conf_free(again);
    ps_tls_conf_free(srv);
    ps_tls_conf_free(victim);
    ps_tls_conf_free(bystander);
    ps_buf_free(&sess);
}

static void test_validity(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    ps_tls_conf_t *c;

    /* Valid from two days ahead, and expired nine days ago. */
    assert_int_equal(ps_pki_issue_shifted(f->pki, PS_ROLE_VIEWER, OU_TOWNSHIP, "future", 30, 2, err, sizeof(err)),
                     PS_OK);
    assert_int_equal(ps_pki_issue_shifted(f->pki, PS_ROLE_VIEWER, OU_TOWNSHIP, "expired", 1, -10, err, sizeof(err)),
                     PS_OK);
    assert_int_equal(ps_pki_issue_shifted(f->pki, PS_ROLE_VIEWER, OU_TOWNSHIP, "x", 1, 4000, err, sizeof(err)),
                     PS_EINVAL);
    c = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "future");
    assert_int_equal(shake(c, f->server, NULL, 0, NULL, err, sizeof(err)), PS_ETLS);
    if (!strstr(err, "future"))
        fail_msg("server error: %s", err);
    ps_tls_conf_free(c);
    c = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "expired");
    assert_int_equal(shake(c, f->server, NULL, 0, NULL, err, sizeof(err)), PS_ETLS);
    if (!strstr(err, "expired"))
        fail_msg("server error: %s", err);
    ps_tls_conf_free(c);
}

static void test_key_usage(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    ps_tls_conf_t *c;

    /* A client presenting a serverAuth-only certificate. */
    c = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "forged");
    assert_int_equal(shake(c, f->server, NULL, 0, NULL, err, sizeof(err)), PS_ETLS);
    if (!strstr(err, "clientAuth") && !strstr(err, "key usage"))
        fail_msg("server error: %s", err);
    ps_tls_conf_free(c);
    /* A client certificate with no extendedKeyUsage at all: mbedTLS alone
     * would take it as "any purpose"; we do not. */
    forge_eku(f->pki, "no-eku", "CN=no-eku,OU=" OU_TOWNSHIP ",O=popsync,title=township", 0);
    c = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "no-eku");
    assert_int_equal(shake(c, f->server, NULL, 0, NULL, err, sizeof(err)), PS_ETLS);
    if (!strstr(err, "clientAuth"))
        fail_msg("server error: %s", err);
    ps_tls_conf_free(c);
}

/* SHA-256 of the DER of dir/NAME.crt: the verified cache's key. */
static void cert_hash(const char *dir, const char *name, uint8_t out[32])
{
    char path[256], file[128];
    mbedtls_x509_crt crt;

    snprintf(file, sizeof(file), "%s.crt", name);
    path_in(path, sizeof(path), dir, file);
    mbedtls_x509_crt_init(&crt);
    assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path), 0);
    assert_int_equal(mbedtls_sha256_ret(crt.raw.p, crt.raw.len, out, 0), 0);
    mbedtls_x509_crt_free(&crt);
}

static void vstats(ps_tls_conf_t *c, size_t want_entries, uint64_t want_hits)
{
    size_t n = 99;
    uint64_t hits = 99;
    ps_tls_conf_vcache_stats(c, &n, &hits);
    if (n != want_entries || hits != want_hits)
        fail_msg("verified cache: %zu entries, %llu hits; expected %zu, %llu", n, (unsigned long long)hits,
                 want_entries, (unsigned long long)want_hits);
}

/* The verified cache (docs/security.md §3): a peer certificate whose exact
 * DER completed a full handshake skips only the CA's signature check the
 * next time; everything else is checked as before. */
static void test_verified_cache(void **state)
{
    fixture_t *f = *state;
    char err[256] = "", crl_path[256];
    ps_tls_conf_t *srv, *cli, *twin, *c;
    uint8_t h_cached[32], h_lapsed[32];

    issue(f->pki, PS_ROLE_COLLECTOR, OU_TOWNSHIP, "cached");
    assert_int_equal(ps_pki_crl(f->pki, 30, NULL, err, sizeof(err)), PS_OK);
    path_in(crl_path, sizeof(crl_path), f->pki, "ca.crl");
    srv = server_with_crl(f, crl_path);
    cli = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "cached");
    cert_hash(f->pki, "cached", h_cached);

    /* First handshake: verified against the CA, remembered by both sides. */
    vstats(srv, 0, 0);
    assert_int_equal(shake(cli, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    vstats(srv, 1, 0);
    vstats(cli, 1, 0);
    /* Second: each side skips the CA's signature on the other's certificate. */
    assert_int_equal(shake(cli, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    vstats(srv, 1, 1);
    vstats(cli, 1, 1);
    assert_true(ps__tls_conf_vcache_find(srv, h_cached, 0));

    /* The same subject from another CA: different bytes, checked against
     * our CA, refused. */
    issue(f->other, PS_ROLE_COLLECTOR, OU_TOWNSHIP, "cached");
    twin = make_conf(PS_TLS_CLIENT, f->pki, f->other, "cached");
    assert_string_equal(ps_tls_conf_self(twin)->name, ps_tls_conf_self(cli)->name);
    assert_int_equal(shake(twin, srv, NULL, 0, NULL, err, sizeof(err)), PS_ETLS);
    vstats(srv, 1, 1);
    ps_tls_conf_free(twin);

    /* Dates are checked on a cached certificate: one that was valid when
     * cached and has expired since (its hash put in by hand) is refused. */
    assert_int_equal(ps_pki_issue_shifted(f->pki, PS_ROLE_VIEWER, OU_TOWNSHIP, "lapsed", 1, -10, err, sizeof(err)),
                     PS_OK);
    cert_hash(f->pki, "lapsed", h_lapsed);
    ps__tls_conf_vcache_add(srv, h_lapsed);
    c = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "lapsed");
    assert_int_equal(shake(c, srv, NULL, 0, NULL, err, sizeof(err)), PS_ETLS);
    if (!strstr(err, "expired"))
        fail_msg("server error: %s", err);
    vstats(srv, 2, 2); /* it was found in the cache, and refused all the same */
    ps_tls_conf_free(c);

    /* So is the CRL: a reload empties the cache, and a revoked certificate
     * still in it (put back by hand) is refused. */
    assert_int_equal(ps_pki_revoke(f->pki, "cached", NULL, PS_CRL_KEY_COMPROMISE, 30, NULL, err, sizeof(err)),
                     PS_OK);
    assert_int_equal(ps_tls_conf_reload_crl(srv, crl_path, err, sizeof(err)), PS_OK);
    vstats(srv, 0, 2);
    ps__tls_conf_vcache_add(srv, h_cached);
    assert_int_equal(shake(cli, srv, NULL, 0, NULL, err, sizeof(err)), PS_ETLS);
    if (!strstr(err, "revoked"))
        fail_msg("server error: %s", err);
    vstats(srv, 1, 3);
    ps_tls_conf_free(cli);

    /* Bounded: with room for two, the least recently used goes first. */
    assert_int_equal(ps_tls_conf_set_vcache(srv, 2), PS_OK);
    ps_tls_conf_t *a = f->township, *b = f->admin;
    c = make_conf(PS_TLS_CLIENT, f->pki, f->pki, "victim");
    assert_int_equal(shake(a, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    assert_int_equal(shake(b, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    assert_int_equal(shake(c, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK); /* a goes */
    vstats(srv, 2, 3);
    assert_int_equal(shake(b, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    vstats(srv, 2, 4);
    assert_int_equal(shake(a, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK); /* c goes */
    vstats(srv, 2, 4);
    assert_int_equal(shake(c, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    vstats(srv, 2, 4);
    ps_tls_conf_free(c);

    /* Off: every handshake checks the CA's signature. */
    assert_int_equal(ps_tls_conf_set_vcache(srv, 0), PS_OK);
    assert_int_equal(shake(a, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    assert_int_equal(shake(a, srv, NULL, 0, NULL, err, sizeof(err)), PS_OK);
    vstats(srv, 0, 4);
    ps_tls_conf_free(srv);
}

/* tls_pk.c: keys whose ECDSA OpenSSL computes agree with mbedTLS's in both
 * directions and refuse what mbedTLS refuses. */
static void test_ossl_keys(void **state)
{
    fixture_t *f = *state;
    char path[256];
    mbedtls_pk_context key, okey, other;
    mbedtls_x509_crt crt, ocrt;
    unsigned char hash[32], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE + 1], sig2[MBEDTLS_PK_SIGNATURE_MAX_SIZE + 1];
    size_t slen = 0, slen2 = 0;

    mbedtls_pk_init(&key);
    mbedtls_pk_init(&okey);
    mbedtls_pk_init(&other);
    mbedtls_x509_crt_init(&crt);
    mbedtls_x509_crt_init(&ocrt);
    path_in(path, sizeof(path), f->pki, "township-a.key");
    assert_int_equal(mbedtls_pk_parse_keyfile(&key, path, NULL), 0);
    assert_int_equal(mbedtls_pk_parse_keyfile(&okey, path, NULL), 0);
    path_in(path, sizeof(path), f->pki, SERVER_NAME ".key");
    assert_int_equal(mbedtls_pk_parse_keyfile(&other, path, NULL), 0);
    path_in(path, sizeof(path), f->pki, "township-a.crt");
    assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path), 0);
    assert_int_equal(mbedtls_x509_crt_parse_file(&ocrt, path), 0);
    assert_int_equal(ps__tls_pk_ossl(&okey), 0);
    assert_int_equal(ps__tls_pk_ossl(&ocrt.pk), 0);
    assert_string_equal(mbedtls_pk_get_name(&okey), "ECDSA (OpenSSL)");
    assert_int_equal(mbedtls_pk_get_type(&ocrt.pk), MBEDTLS_PK_ECDSA);
    assert_true(mbedtls_pk_can_do(&ocrt.pk, MBEDTLS_PK_ECDSA));
    assert_int_equal(mbedtls_pk_get_bitlen(&ocrt.pk), 256);
    /* mbedTLS reads the curve and the point through mbedtls_pk_ec. */
    assert_int_equal(mbedtls_pk_ec(ocrt.pk)->grp.id, MBEDTLS_ECP_DP_SECP256R1);
    assert_int_equal(mbedtls_ecp_point_cmp(&mbedtls_pk_ec(ocrt.pk)->Q, &mbedtls_pk_ec(crt.pk)->Q), 0);
    assert_int_equal(mbedtls_pk_check_pair(&ocrt.pk, &okey), 0);
    assert_int_not_equal(mbedtls_pk_check_pair(&ocrt.pk, &other), 0);
    assert_int_equal(ps_random(hash, sizeof(hash)), PS_OK);

    /* OpenSSL signs, mbedTLS verifies; mbedTLS signs, OpenSSL verifies. */
    assert_int_equal(mbedtls_pk_sign(&okey, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &slen, test_rng, NULL), 0);
    assert_int_equal(mbedtls_pk_verify(&crt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, slen), 0);
    assert_int_equal(mbedtls_pk_sign(&key, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, &slen2, test_rng, NULL), 0);
    assert_int_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, slen2), 0);
    assert_int_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, slen), 0);

    /* Refused: another hash, a changed byte, a byte more or less, another
     * key's signature. */
    hash[5] ^= 1;
    assert_int_not_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, slen2), 0);
    hash[5] ^= 1;
    sig2[slen2 - 3] ^= 0x40;
    assert_int_not_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, slen2), 0);
    sig2[slen2 - 3] ^= 0x40;
    sig2[slen2] = 0;
    assert_int_not_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, slen2 + 1), 0);
    assert_int_not_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, slen2 - 1), 0);
    assert_int_not_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, 0), 0);
    assert_int_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, slen2), 0);
    assert_int_equal(mbedtls_pk_sign(&other, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, &slen2, test_rng, NULL), 0);
    assert_int_not_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig2, slen2), 0);
    /* Shed (a peer's key once its handshake is over): it verifies nothing. */
    ps__tls_pk_ossl_shed(&ocrt.pk);
    assert_int_not_equal(mbedtls_pk_verify(&ocrt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, slen), 0);
    ps__tls_pk_ossl_shed(&crt.pk); /* not ours: untouched */
    assert_int_equal(mbedtls_pk_verify(&crt.pk, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, slen), 0);
    /* Not an EC key: left alone. */
    assert_int_not_equal(ps__tls_pk_ossl(&(mbedtls_pk_context){0}), 0);

    mbedtls_x509_crt_free(&ocrt);
    mbedtls_x509_crt_free(&crt);
    mbedtls_pk_free(&other);
    mbedtls_pk_free(&okey);
    mbedtls_pk_free(&key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_handshake_and_data),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_key_exchange_curve),
        cmocka_unit_test(test_admin_trickle),
        cmocka_unit_test(test_other_ca_refused),
        cmocka_unit_test(test_server_role_refused),
        cmocka_unit_test(test_wrong_server_name),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_revocation),
        cmocka_unit_test(test_validity),
        cmocka_unit_test(test_key_usage),
        cmocka_unit_test(test_verified_cache),
        cmocka_unit_test(test_ossl_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
