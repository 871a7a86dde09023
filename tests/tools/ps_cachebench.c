/* ps_cachebench.c - the client cache's own CPU per record, old format
 * against new (issue 17 point 2; docs/performance.md "Encode and seal once").
 *
 * usage: ps_cachebench [PERSONS [ONLY]]  (PERSONS default 12500: one township
 *                                        of the 100,000-person benchmark;
 *                                        ONLY "pull-new": that run alone, to
 *                                        profile it)
 *
 * Generates PERSONS persons with their households, births, ... (the
 * generator of `popsync generate`) into a scratch cache, then measures in
 * this thread's CPU time (CLOCK_THREAD_CPUTIME_ID: what a loaded machine
 * disturbs least):
 *   pull  a cold pull's cache work: each PullBatch of 1,000 records decoded
 *         (as the session does) and applied (ps_cache_apply_pull_raw with
 *         the batch's bytes; for the old format ps_cache_apply_pull),
 *         then the person index's bulk build the sync does at its end
 *   ack   a push's answer: ps_cache_outbox_ack of 1,000 accepted changes
 *   seal  the ChaCha20-Poly1305 / AES-256-GCM seal+open of one value
 * once with the cache writing the old format (POPSYNC_TEST_CACHE_FORMAT=1:
 * AES-256-GCM, packed again, sealed again at the ack) and once as built,
 * and prints microseconds per record for each.  Needs a test build (the
 * hook).  Nothing here is checked: it measures.
 */
#include "cache.h"
#include "cli.h"
#include "crypto.h"
#include "err.h"
#include "ids.h"
#include "msg.h"
#include "msgtab.h"
#include "record_fmt.h"
#include "wire.pb-c.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1000

static char g_root[256];

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "ps_cachebench: %s: %s\n", what, err ? err : "failed");
    exit(1);
}

static ps_cache_t *new_cache(const char *name)
{
    ps_cache_meta_t m;
    ps_cache_t *c = NULL;
    char dir[300], err[512];
    snprintf(dir, sizeof(dir), "%s/%s", g_root, name);
    memset(&m, 0, sizeof(m));
    if (ps_random(m.node, sizeof(m.node)))
        die("random", NULL);
    snprintf(m.server, sizeof(m.server), "127.0.0.1:1");
    snprintf(m.role, sizeof(m.role), "township");
    snprintf(m.orgunit, sizeof(m.orgunit), "130203001000");
    snprintf(m.key_file, sizeof(m.key_file), "%s/%s.key", g_root, name);
    if (ps_cache_create_open(&c, dir, &m, err, sizeof(err)))
        die("cache", err);
    return c;
}

typedef struct recs {
    Popsync__Record **v;
    size_t n, cap;
} recs_t;

static int collect(Popsync__Record *r, void *arg)
{
    recs_t *rs = arg;
    size_t n = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *p = malloc(n);
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? rs->cap * 2 : 1024;
        rs->v = realloc(rs->v, rs->cap * sizeof(*rs->v));
    }
    protobuf_c_message_pack(&r->base, p);
    rs->v[rs->n++] = popsync__record__unpack(NULL, n, p); /* a copy the walk does not free */
    free(p);
    return 0;
}

/* The generated records, each given a server revision, as packed
 * PullBatches of BATCH entries. */
static uint8_t **make_batches(recs_t *rs, size_t **lens, size_t *nb)
{
    static uint8_t node[PS_ID_LEN] = {0x5e};
    uint8_t **out;
    *nb = (rs->n + BATCH - 1) / BATCH;
    out = calloc(*nb, sizeof(*out));
    *lens = calloc(*nb, sizeof(**lens));
    for (size_t b = 0; b < *nb; b++) {
        Popsync__PullBatch pb = POPSYNC__PULL_BATCH__INIT;
        Popsync__FeedEntry *fe = calloc(BATCH, sizeof(*fe)), **fp = calloc(BATCH, sizeof(*fp));
        Popsync__Rev *rev = calloc(BATCH, sizeof(*rev));
        size_t k = 0;
        for (size_t i = b * BATCH; i < rs->n && k < BATCH; i++, k++) {
            popsync__feed_entry__init(&fe[k]);
            popsync__rev__init(&rev[k]);
            rev[k].gen = 1;
            rev[k].hlc = ((uint64_t)1765000000000 << 16) + i;
            rev[k].node.data = node;
            rev[k].node.len = PS_ID_LEN;
            rs->v[i]->rev = &rev[k];
            fe[k].seq = i + 1;
            fe[k].record = rs->v[i];
            fp[k] = &fe[k];
        }
        pb.entries = fp;
        pb.n_entries = k;
        pb.cursor = b * BATCH + k;
        (*lens)[b] = protobuf_c_message_get_packed_size(&pb.base);
        out[b] = malloc((*lens)[b]);
        protobuf_c_message_pack(&pb.base, out[b]);
        for (size_t i = b * BATCH; i < b * BATCH + k; i++)
            rs->v[i]->rev = NULL;
        free(rev);
        free(fe);
        free(fp);
    }
    return out;
}

static double bench_pull(const char *name, int old, uint8_t **batches, const size_t *lens, size_t nb, size_t n)
{
    ps_cache_t *c;
    double t0, t;
    if (old)
        setenv("POPSYNC_TEST_CACHE_FORMAT", "1", 1);
    c = new_cache(name);
    unsetenv("POPSYNC_TEST_CACHE_FORMAT");
    t0 = cpu_s();
    for (size_t b = 0; b < nb; b++) {
        ProtobufCMessage *m = NULL;
        int rc;
        if (ps_msg_unpack(PS_MSG_PULL_BATCH, batches[b], lens[b], &m))
            die("unpack", NULL);
        rc = old ? ps_cache_apply_pull(c, (Popsync__PullBatch *)m)
                 : ps_cache_apply_pull_raw(c, (Popsync__PullBatch *)m, batches[b], lens[b]);
        if (rc)
            die("apply", ps_strerror(rc));
        ps_msg_free(m);
    }
    /* What the sync does at its end: a cold pull's person index is built
     * then (docs/data-model.md §7.9). */
    if (ps_cache_pindex_finish(c))
        die("person index", NULL);
    t = cpu_s() - t0;
    ps_cache_close(c);
    return t * 1e6 / (double)n;
}

/* The generated records put as local edits (not timed), then every push's
 * answer: ACCEPTED, gen 1. */
static double bench_ack(const char *name, int old, recs_t *rs)
{
    static uint8_t node[PS_ID_LEN] = {0x5e};
    ps_cache_t *c;
    double spent = 0;
    size_t done = 0;
    if (old)
        setenv("POPSYNC_TEST_CACHE_FORMAT", "1", 1);
    c = new_cache(name);
    unsetenv("POPSYNC_TEST_CACHE_FORMAT");
    for (size_t i = 0; i < rs->n; i += BATCH)
        if (ps_cache_put_local_many(c, rs->v + i, rs->n - i < BATCH ? rs->n - i : BATCH))
            die("put", NULL);
    for (;;) {
        Popsync__Push *p = NULL;
        Popsync__PushResult res = POPSYNC__PUSH_RESULT__INIT;
        Popsync__ChangeResult *cr, **crp;
        Popsync__Rev *rev;
        double t0;
        if (ps_cache_outbox_batch(c, BATCH, (size_t)1 << 30, &p) || p->n_changes == 0) {
            ps_cache_push_free(p);
            break;
        }
        cr = calloc(p->n_changes, sizeof(*cr));
        crp = calloc(p->n_changes, sizeof(*crp));
        rev = calloc(p->n_changes, sizeof(*rev));
        for (size_t i = 0; i < p->n_changes; i++) {
            popsync__change_result__init(&cr[i]);
            popsync__rev__init(&rev[i]);
            rev[i].gen = 1;
            rev[i].hlc = p->changes[i]->record->rev->hlc;
            rev[i].node.data = node;
            rev[i].node.len = PS_ID_LEN;
            cr[i].lcn = p->changes[i]->lcn;
            cr[i].status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED;
            cr[i].rev = &rev[i];
            crp[i] = &cr[i];
        }
        res.results = crp;
        res.n_results = p->n_changes;
        t0 = cpu_s();
        if (ps_cache_outbox_ack(c, p, &res))
            die("ack", NULL);
        spent += cpu_s() - t0;
        done += p->n_changes;
        ps_cache_push_free(p);
        free(cr);
        free(crp);
        free(rev);
    }
    ps_cache_close(c);
    return spent * 1e6 / (double)(done ? done : 1);
}

/* Nanoseconds per seal+open of n bytes under alg, best of 15 slices. */
static double bench_aead(ps_aead_alg_t alg, size_t n)
{
    uint8_t key[32] = {1}, nonce[12] = {0}, aad[24] = "records0123456789abcdef", *p = calloc(1, n),
            *s = malloc(n + 16), *b = malloc(n);
    double best = 1e12;
    ps_aead_t *a = NULL;
    if (ps_aead_new_alg(&a, alg, key))
        die("aead", NULL);
    for (int round = 0; round < 15; round++) {
        double t0 = cpu_s(), dt;
        long cnt = 0;
        do {
            for (int i = 0; i < 64; i++, cnt++) {
                nonce[0] = (uint8_t)cnt;
                if (ps_aead_ctx_seal(a, nonce, aad, 23, p, n, s) || ps_aead_ctx_open(a, nonce, aad, 23, s, n + 16, b))
                    die("aead", NULL);
            }
        } while ((dt = cpu_s() - t0) < 0.05);
        if (dt / (double)cnt * 1e9 < best)
            best = dt / (double)cnt * 1e9;
    }
    ps_aead_free(a);
    free(p);
    free(s);
    free(b);
    return best;
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {230, 450, 1000, 16384};
    const char *persons = argc > 1 ? argv[1] : "12500";
    char *gargv[] = {"generate", "--persons", (char *)persons, "--seed", "1", NULL};
    char cmd[300];
    recs_t rs = {NULL, 0, 0};
    uint8_t **batches;
    size_t *lens, nb, bytes = 0;
    ps_cli_t cli;
    ps_cache_t *gen;

    setenv("POPSYNC_KDF_ITERATIONS", "1000", 0);
    snprintf(g_root, sizeof(g_root), "%s/ps-cachebench-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_root))
        die("mkdtemp", NULL);
    gen = new_cache("gen");
    ps_cache_close(gen);
    memset(&cli, 0, sizeof(cli));
    snprintf(cmd, sizeof(cmd), "%s/gen", g_root);
    cli.data_dir = cmd;
    optind = 0;
    if (ps_cmd_generate(&cli, 5, gargv) != 0)
        die("generate", NULL);
    {
        char err[512];
        if (ps_cache_open(&gen, cmd, err, sizeof(err)) || ps_cache_foreach(gen, collect, &rs))
            die("read", err);
        ps_cache_close(gen);
    }
    batches = make_batches(&rs, &lens, &nb);
    for (size_t b = 0; b < nb; b++)
        bytes += lens[b];
    printf("%zu records, %.0f bytes each as sent (plain)\n", rs.n, (double)bytes / (double)rs.n);
    if (argc > 2 && strcmp(argv[2], "pull-new") == 0) {
        printf("pull, cache work per record, new format: %.2f us\n", bench_pull("only", 0, batches, lens, nb, rs.n));
        return 0;
    }
    for (int round = 0; round < 3; round++) {
        char a[32], b[32];
        snprintf(a, sizeof(a), "pull-old-%d", round);
        snprintf(b, sizeof(b), "pull-new-%d", round);
        printf("pull, cache work per record: old format %.2f us, new %.2f us\n",
               bench_pull(a, 1, batches, lens, nb, rs.n), bench_pull(b, 0, batches, lens, nb, rs.n));
    }
    for (int round = 0; round < 3; round++) {
        char a[32], b[32];
        snprintf(a, sizeof(a), "ack-old-%d", round);
        snprintf(b, sizeof(b), "ack-new-%d", round);
        printf("ack, per change: old format %.2f us, new %.2f us\n", bench_ack(a, 1, &rs), bench_ack(b, 0, &rs));
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        double g = bench_aead(PS_AEAD_AES256_GCM, sizes[i]), c = bench_aead(PS_AEAD_CHACHA20_POLY1305, sizes[i]);
        printf("seal+open %5zu bytes: AES-256-GCM %.0f ns, ChaCha20-Poly1305 %.0f ns (%.2fx)\n", sizes[i], g, c,
               g / c);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        fprintf(stderr, "ps_cachebench: could not remove %s\n", g_root);
    return 0;
}
