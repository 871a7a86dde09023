/* ceilings.c - popsync-ceilings: what this machine can do at best, measured
 * by small programs, so every popsync-bench figure stands next to its limit.
 *
 * usage: popsync-ceilings [--quick] [--dir DIR]
 *
 *   a. LMDB durable batched puts/s: 16-byte keys, 300-byte values, 1,000
 *      puts per durable transaction, fresh environment in DIR (default
 *      $TMPDIR or /tmp): ordered keys (plain put and MDB_APPEND) and
 *      random keys
 *   b. AES-256-GCM, AES-128-GCM and ChaCha20-Poly1305 MB/s through mbedTLS
 *      at 16 KB (one TLS record) and 300 bytes (one cache record)
 *   c. SHA-256 MB/s at 200-byte inputs (one audit entry)
 *   d. ECDSA P-256 sign and verify/s, ECDHE P-256 and X25519 key
 *      generation and shared secret/s, and what a full mutual-TLS 1.2
 *      handshake (ECDHE-ECDSA) costs from them
 *   e. protobuf-c encode and decode of a typical person record
 *   f. fsync latency: 4 KB write + fdatasync, median of 200
 *
 * Each measurement prints a line; the last line is one JSON object with
 * every figure.  The default run takes about a minute, --quick a few
 * seconds (figures then are rough).  Single-threaded throughout: the
 * figures are per core.  b-e are pure CPU work and timed in the thread's
 * CPU time (ops per CPU second: a loaded machine stretches the wall clock,
 * much less this); a and f are timed on the wall clock (they wait on the
 * disk).
 */
#include "err.h"
#include "ids.h"
#include "record_fmt.h"

#include "records.pb-c.h"

#include <lmdb.h>
#include <mbedtls/chachapoly.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdh.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/gcm.h>
#include <mbedtls/sha256.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int g_quick;
static char g_json[8192];
static size_t g_jlen;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "popsync-ceilings: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* Appends "name":value to the JSON object. */
static void jnum(const char *name, double v, int decimals)
{
    g_jlen += (size_t)snprintf(g_json + g_jlen, sizeof(g_json) - g_jlen, "%s\"%s\":%.*f", g_jlen ? "," : "", name,
                               decimals, v);
}

static void line(const char *what, double v, const char *unit, int decimals)
{
    printf("%-58s %14.*f %s\n", what, decimals, v, unit);
    fflush(stdout);
}

/* CPU seconds of the calling thread: the loops timed by RATE are pure CPU
 * work, and a neighbour taking the CPU stretches wall time, not this. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs stmt in three slices of secs/3 of CPU time each; returns the best
 * slice's ops per CPU second, so that a loaded machine (where the wall
 * clock runs on while others have the CPU) does not lower a ceiling. */
#define RATE(secs, stmt)                                                                                             \
    ({                                                                                                               \
        double best_ = 0;                                                                                            \
        for (int r_ = 0; r_ < 3; r_++) {                                                                             \
            double t0_ = cpu_s(), dt_;                                                                               \
            long n_ = 0;                                                                                             \
            do {                                                                                                     \
                stmt;                                                                                                \
                n_++;                                                                                                \
            } while ((dt_ = cpu_s() - t0_) < (secs) / 3);                                                            \
            if ((double)n_ / dt_ > best_)                                                                            \
                best_ = (double)n_ / dt_;                                                                            \
        }                                                                                                            \
        best_;                                                                                                       \
    })

/* Seconds each timed loop runs for. */
static double budget(double full)
{
    return g_quick ? full / 8 : full;
}

/* splitmix64 */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill(uint8_t *p, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t x = rnd(s);
        memcpy(p + i, &x, n - i < 8 ? n - i : 8);
    }
}

/* ---- a. LMDB ---------------------------------------------------------------- */

enum { KEY_ORDERED, KEY_APPEND, KEY_RANDOM };

/* Durable puts/s into a fresh environment under dir. */
static double lmdb_puts(const char *dir, int mode, long max_puts, double max_secs, long *done, double *env_mb)
{
    char path[PATH_MAX], cmd[PATH_MAX + 16];
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    uint8_t key[16], val[300];
    uint64_t s = 42 + (uint64_t)mode, ms = 1767225600000ull;
    long n = 0;
    double t0, dt;
    int rc;
    struct stat st;

    snprintf(path, sizeof(path), "%s/ceilings-lmdb.XXXXXX", dir);
    if (!mkdtemp(path))
        die("mkdtemp", strerror(errno));
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)4 << 30)) ||
        (rc = mdb_env_open(env, path, MDB_NOTLS, 0600)))
        die("lmdb", mdb_strerror(rc));
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
        (rc = mdb_txn_commit(txn)))
        die("lmdb", mdb_strerror(rc));
    t0 = now_s();
    while (n < max_puts && now_s() - t0 < max_secs) {
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn)))
            die("lmdb", mdb_strerror(rc));
        for (int i = 0; i < 1000; i++, n++) {
            MDB_val k = {sizeof(key), key}, v = {sizeof(val), val};
            if (mode == KEY_RANDOM) {
                fill(key, sizeof(key), &s);
            } else {
                /* UUIDv7-shaped: 48-bit ms, then a counter, so keys ascend. */
                uint64_t hi = ((ms + (uint64_t)n / 64) << 16) | 0x7000u, lo = (uint64_t)n;
                for (int b = 0; b < 8; b++) {
                    key[b] = (uint8_t)(hi >> (56 - 8 * b));
                    key[8 + b] = (uint8_t)(lo >> (56 - 8 * b));
                }
            }
            fill(val, 64, &s); /* vary the value a little; the rest is as last time */
            if ((rc = mdb_put(txn, dbi, &k, &v, mode == KEY_APPEND ? MDB_APPEND : 0)))
                die("lmdb put", mdb_strerror(rc));
        }
        if ((rc = mdb_txn_commit(txn))) /* durable: LMDB fsyncs the data and then the meta page */
            die("lmdb commit", mdb_strerror(rc));
    }
    dt = now_s() - t0;
    snprintf(cmd, sizeof(cmd), "%s/data.mdb", path);
    *env_mb = stat(cmd, &st) == 0 ? (double)st.st_blocks * 512 / 1048576.0 : 0;
    mdb_env_close(env);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "popsync-ceilings: could not remove %s\n", path);
    *done = n;
    return (double)n / dt;
}

static void bench_lmdb(const char *dir)
{
    static const struct {
        int mode;
        const char *name, *json;
    } m[] = {{KEY_ORDERED, "ordered keys", "lmdb_ordered_puts_per_s"},
             {KEY_APPEND, "ordered keys, MDB_APPEND", "lmdb_append_puts_per_s"},
             {KEY_RANDOM, "random keys", "lmdb_random_puts_per_s"}};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        long n;
        double mb, r = lmdb_puts(dir, m[i].mode, g_quick ? 50000 : 500000, g_quick ? 1.0 : 6.0, &n, &mb);
        char what[128];
        snprintf(what, sizeof(what), "a. LMDB durable puts/s, %s (%ld puts, %.0f MB)", m[i].name, n, mb);
        line(what, r, "puts/s", 0);
        jnum(m[i].json, r, 0);
    }
}

/* ---- b. AEAD ---------------------------------------------------------------- */

/* MB/s sealing buffers of size n (one seal per buffer, fresh nonce each). */
static double aead_rate(int chacha, int keybits, size_t n, double secs, double *per_s)
{
    uint8_t key[32], iv[12] = {0}, tag[16], *in = malloc(n), *out = malloc(n);
    uint64_t s = 7, count = 0;
    mbedtls_gcm_context gcm;
    mbedtls_chachapoly_context cp;
    double t0, dt;
    fill(key, sizeof(key), &s);
    fill(in, n, &s);
    mbedtls_gcm_init(&gcm);
    mbedtls_chachapoly_init(&cp);
    if (chacha ? mbedtls_chachapoly_setkey(&cp, key) : mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, (unsigned)keybits))
        die("aead setkey", NULL);
    *per_s = 0;
    for (int round = 0; round < 3; round++) { /* best of three slices */
        uint64_t n0 = count;
        t0 = cpu_s();
        do {
            for (int i = 0; i < 16; i++, count++) {
                int rc;
                memcpy(iv, &count, sizeof(count));
                rc = chacha ? mbedtls_chachapoly_encrypt_and_tag(&cp, n, iv, NULL, 0, in, out, tag)
                            : mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, n, iv, sizeof(iv), NULL, 0, in,
                                                        out, sizeof(tag), tag);
                if (rc)
                    die("aead seal", NULL);
            }
        } while ((dt = cpu_s() - t0) < secs / 3);
        if ((double)(count - n0) / dt > *per_s)
            *per_s = (double)(count - n0) / dt;
    }
    mbedtls_gcm_free(&gcm);
    mbedtls_chachapoly_free(&cp);
    free(in);
    free(out);
    return *per_s * (double)n / 1048576.0;
}

static void bench_aead(void)
{
    static const struct {
        int chacha, bits;
        const char *name, *json;
    } c[] = {{0, 256, "AES-256-GCM", "aes256gcm"}, {0, 128, "AES-128-GCM", "aes128gcm"},
             {1, 256, "ChaCha20-Poly1305", "chacha20poly1305"}};
    static const size_t sizes[] = {16384, 300};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        for (size_t k = 0; k < 2; k++) {
            double per_s, mb = aead_rate(c[i].chacha, c[i].bits, sizes[k], budget(1.5), &per_s);
            char what[128], j[64];
            snprintf(what, sizeof(what), "b. %s seal at %zu bytes (%.0f seals/s)", c[i].name, sizes[k], per_s);
            line(what, mb, "MB/s", 0);
            snprintf(j, sizeof(j), "%s_%zu_mb_per_s", c[i].json, sizes[k]);
            jnum(j, mb, 0);
            if (sizes[k] == 300) {
                snprintf(j, sizeof(j), "%s_300_seals_per_s", c[i].json);
                jnum(j, per_s, 0);
            }
        }
}

/* ---- c. SHA-256 ------------------------------------------------------------- */

static void bench_sha256(void)
{
    uint8_t in[200], out[32];
    uint64_t s = 3;
    double per_s;
    char what[128];
    fill(in, sizeof(in), &s);
    per_s = RATE(budget(1.5), if (mbedtls_sha256_ret(in, sizeof(in), out, 0)) die("sha256", NULL); in[0] = out[0]);
    snprintf(what, sizeof(what), "c. SHA-256 at 200 bytes (%.0f hashes/s)", per_s);
    line(what, per_s * 200 / 1048576.0, "MB/s", 0);
    jnum("sha256_200_mb_per_s", per_s * 200 / 1048576.0, 0);
    jnum("sha256_200_hashes_per_s", per_s, 0);
}

/* ---- d. public-key operations of a handshake --------------------------------- */

static mbedtls_entropy_context g_entropy;
static mbedtls_ctr_drbg_context g_drbg;

static void bench_pk(void)
{
    mbedtls_ecdsa_context key;
    uint8_t hash[32], sig[MBEDTLS_ECDSA_MAX_LEN];
    size_t slen = 0;
    double sign, verify, p256_gen = 1, p256_shared = 1, x_gen = 1, x_shared = 1;
    uint64_t s = 9;

    fill(hash, sizeof(hash), &s);
    mbedtls_ecdsa_init(&key);
    if (mbedtls_ecdsa_genkey(&key, MBEDTLS_ECP_DP_SECP256R1, mbedtls_ctr_drbg_random, &g_drbg))
        die("ecdsa genkey", NULL);
    /* As the TLS stack does it: deterministic ECDSA (RFC 6979) with blinding. */
    sign = RATE(budget(2.0), if (mbedtls_ecdsa_write_signature(&key, MBEDTLS_MD_SHA256, hash, sizeof(hash), sig, &slen,
                                                                mbedtls_ctr_drbg_random, &g_drbg)) die("ecdsa sign", NULL);
                hash[0]++);
    hash[0]--;
    verify = RATE(budget(2.0),
                  if (mbedtls_ecdsa_read_signature(&key, hash, sizeof(hash), sig, slen)) die("ecdsa verify", NULL));
    mbedtls_ecdsa_free(&key);

    {
        static const mbedtls_ecp_group_id ids[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519};
        for (int c = 0; c < 2; c++) {
            mbedtls_ecp_group grp;
            mbedtls_mpi d1, d2, z;
            mbedtls_ecp_point q1, q2;
            double g, sh;
            mbedtls_ecp_group_init(&grp);
            mbedtls_mpi_init(&d1), mbedtls_mpi_init(&d2), mbedtls_mpi_init(&z);
            mbedtls_ecp_point_init(&q1), mbedtls_ecp_point_init(&q2);
            if (mbedtls_ecp_group_load(&grp, ids[c]) ||
                mbedtls_ecdh_gen_public(&grp, &d2, &q2, mbedtls_ctr_drbg_random, &g_drbg))
                die("ecdh", NULL);
            g = RATE(budget(2.0), if (mbedtls_ecdh_gen_public(&grp, &d1, &q1, mbedtls_ctr_drbg_random, &g_drbg))
                                      die("ecdh gen", NULL));
            sh = RATE(budget(2.0), if (mbedtls_ecdh_compute_shared(&grp, &z, &q2, &d1, mbedtls_ctr_drbg_random, &g_drbg))
                                       die("ecdh shared", NULL));
            if (c == 0)
                p256_gen = g, p256_shared = sh;
            else
                x_gen = g, x_shared = sh;
            mbedtls_mpi_free(&d1), mbedtls_mpi_free(&d2), mbedtls_mpi_free(&z);
            mbedtls_ecp_point_free(&q1), mbedtls_ecp_point_free(&q2);
            mbedtls_ecp_group_free(&grp);
        }
    }
    line("d. ECDSA P-256 sign/s", sign, "ops/s", 0);
    line("   ECDSA P-256 verify/s", verify, "ops/s", 0);
    line("   ECDHE P-256 key generation/s", p256_gen, "ops/s", 0);
    line("   ECDHE P-256 shared secret/s", p256_shared, "ops/s", 0);
    line("   ECDHE X25519 key generation/s", x_gen, "ops/s", 0);
    line("   ECDHE X25519 shared secret/s", x_shared, "ops/s", 0);
    jnum("ecdsa_p256_sign_per_s", sign, 0);
    jnum("ecdsa_p256_verify_per_s", verify, 0);
    jnum("ecdhe_p256_keygen_per_s", p256_gen, 0);
    jnum("ecdhe_p256_shared_per_s", p256_shared, 0);
    jnum("ecdhe_x25519_keygen_per_s", x_gen, 0);
    jnum("ecdhe_x25519_shared_per_s", x_shared, 0);
    {
        /* A full mutual TLS 1.2 ECDHE-ECDSA handshake, per side:
         *   server: sign ServerKeyExchange, verify the client's certificate
         *           (CA signature) and its CertificateVerify, ECDHE keygen
         *           and shared secret;
         *   client: verify the server's certificate and its
         *           ServerKeyExchange, sign CertificateVerify, ECDHE keygen
         *           and shared secret.
         * Each side: 1 sign + 2 verify + 1 keygen + 1 shared secret. */
        double side_p256 = 1e3 / sign + 2e3 / verify + 1e3 / p256_gen + 1e3 / p256_shared;
        double side_x = 1e3 / sign + 2e3 / verify + 1e3 / x_gen + 1e3 / x_shared;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        line("   full handshake public-key cost per side (P-256 ECDHE), ms", side_p256, "ms", 2);
        line("   full handshake public-key cost per side (X25519 ECDHE), ms", side_x, "ms", 2);
        line("   full handshakes/s ceiling, both sides on this machine, P-256", (double)cores * 1e3 / (2 * side_p256),
             "/s", 0);
        line("   full handshakes/s ceiling, both sides on this machine, X25519", (double)cores * 1e3 / (2 * side_x), "/s",
             0);
        jnum("handshake_side_ms_p256", side_p256, 3);
        jnum("handshake_side_ms_x25519", side_x, 3);
        jnum("handshakes_full_ceiling_per_s_p256", (double)cores * 1e3 / (2 * side_p256), 0);
        jnum("handshakes_full_ceiling_per_s_x25519", (double)cores * 1e3 / (2 * side_x), 0);
    }
}

/* ---- e. protobuf-c ---------------------------------------------------------- */

/* A person as the generator makes one, as stored after sync (rev and
 * changed_by set). */
static Popsync__Record *typical_person(void)
{
    static const char *const f[][2] = {
        {"orgunit", "130203001001"},
        {"id_number", "13020319850314231X"},
        {"name", "王建国"},
        {"sex", "male"},
        {"birth_date", "1985-03-14"},
        {"ethnicity", "汉族"},
        {"registration", "local"},
        {"marital_status", "married"},
        {"household_id", "019b7a3c-5d10-7e2a-9c4b-1f2e3d4c5b6a"},
        {"phone", "13912345678"},
        {"address", "路北区新城街道建设路128号幸福家园12号楼3单元1502室"},
    };
    static uint8_t id[16], node[16];
    static Popsync__Rev rev = POPSYNC__REV__INIT;
    Popsync__Record *r = NULL;
    char err[256];
    if (ps_record_new(&r, POPSYNC__KIND__KIND_PERSON))
        die("record", NULL);
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (ps_record_set(r, f[i][0], f[i][1], err, sizeof(err)))
            die("record", err);
    ps_uuid7(id);
    ps_random(node, sizeof(node));
    rev.gen = 1;
    rev.hlc = ps_now_ms() << 16;
    rev.node.data = node;
    rev.node.len = 16;
    r->id.data = malloc(16);
    memcpy(r->id.data, id, 16);
    r->id.len = 16;
    r->created_ms = r->updated_ms = (int64_t)ps_now_ms();
    r->changed_by.data = malloc(16);
    memcpy(r->changed_by.data, node, 16);
    r->changed_by.len = 16;
    r->rev = malloc(sizeof(rev));
    *r->rev = rev;
    r->rev->node.data = malloc(16);
    memcpy(r->rev->node.data, node, 16);
    return r;
}

static void bench_protobuf(void)
{
    Popsync__Record *r = typical_person();
    size_t sz = popsync__record__get_packed_size(r);
    uint8_t *buf = malloc(sz);
    double enc, dec, enc_size;
    enc_size = RATE(budget(1.5), buf[0] = (uint8_t)popsync__record__get_packed_size(r));
    enc = RATE(budget(1.5), {
        size_t n = popsync__record__get_packed_size(r);
        if (popsync__record__pack(r, buf) != n)
            die("pack", NULL);
    });
    popsync__record__pack(r, buf);
    dec = RATE(budget(1.5), {
        Popsync__Record *u = popsync__record__unpack(NULL, sz, buf);
        if (!u)
            die("unpack", NULL);
        popsync__record__free_unpacked(u, NULL);
    });
    {
        char what[128];
        snprintf(what, sizeof(what), "e. protobuf-c encode (size + pack), %zu-byte person", sz);
        line(what, enc, "records/s", 0);
        line("   protobuf-c decode (unpack + free)", dec, "records/s", 0);
        line("   protobuf-c get_packed_size alone", enc_size, "records/s", 0);
    }
    jnum("person_record_bytes", (double)sz, 0);
    jnum("protobuf_encode_per_s", enc, 0);
    jnum("protobuf_decode_per_s", dec, 0);
    ps_record_free(r);
    free(buf);
}

/* ---- f. fsync latency ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_fsync(const char *dir)
{
    char path[PATH_MAX];
    uint8_t page[4096];
    double lat[2][200];
    int n = g_quick ? 50 : 200, fd;
    uint64_t s = 5;
    fill(page, sizeof(page), &s);
    snprintf(path, sizeof(path), "%s/ceilings-fsync.XXXXXX", dir);
    if ((fd = mkstemp(path)) < 0)
        die("mkstemp", strerror(errno));
    for (int mode = 0; mode < 2; mode++) /* 0: overwrite one block in place, 1: append */
        for (int i = 0; i < n; i++) {
            double t0 = now_s();
            off_t off = mode ? (off_t)(i + 1) * 4096 : 0;
            if (pwrite(fd, page, sizeof(page), off) != (ssize_t)sizeof(page) || fdatasync(fd))
                die("write/fdatasync", strerror(errno));
            lat[mode][i] = (now_s() - t0) * 1e3;
        }
    close(fd);
    unlink(path);
    qsort(lat[0], (size_t)n, sizeof(double), cmp_double);
    qsort(lat[1], (size_t)n, sizeof(double), cmp_double);
    {
        char what[128];
        snprintf(what, sizeof(what), "f. 4 KB write + fdatasync in place, median of %d (p99 %.3f)", n,
                 lat[0][n * 99 / 100]);
        line(what, lat[0][n / 2], "ms", 3);
        snprintf(what, sizeof(what), "   4 KB append + fdatasync, median of %d (p99 %.3f)", n, lat[1][n * 99 / 100]);
        line(what, lat[1][n / 2], "ms", 3);
    }
    jnum("fsync_4k_median_ms", lat[0][n / 2], 3);
    jnum("fsync_4k_p99_ms", lat[0][n * 99 / 100], 3);
    jnum("fsync_4k_append_median_ms", lat[1][n / 2], 3);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"quick", no_argument, NULL, 'q'}, {"dir", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    const char *dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    int opt;
    double t0 = now_s();
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'q': g_quick = 1; break;
        case 'd': dir = optarg; break;
        default: fprintf(stderr, "usage: popsync-ceilings [--quick] [--dir DIR]\n"); return 2;
        }
    }
    mbedtls_entropy_init(&g_entropy);
    mbedtls_ctr_drbg_init(&g_drbg);
    if (mbedtls_ctr_drbg_seed(&g_drbg, mbedtls_entropy_func, &g_entropy, (const uint8_t *)"ceilings", 8))
        die("drbg", NULL);
    printf("popsync-ceilings: %s, single-threaded, %ld cores, stores in %s\n", g_quick ? "quick" : "full",
           sysconf(_SC_NPROCESSORS_ONLN), dir);
    jnum("quick", g_quick, 0);
    jnum("cores", (double)sysconf(_SC_NPROCESSORS_ONLN), 0);
    bench_fsync(dir);
    bench_lmdb(dir);
    bench_aead();
    bench_sha256();
    bench_pk();
    bench_protobuf();
    jnum("seconds", now_s() - t0, 1);
    printf("{%s}\n", g_json);
    mbedtls_ctr_drbg_free(&g_drbg);
    mbedtls_entropy_free(&g_entropy);
    return 0;
}
