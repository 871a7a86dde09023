/* store_bench.c - popsync-store-bench: counts and the quality report on a
 * server data directory, in process (docs/performance.md §l).
 *
 * usage: popsync-store-bench DATA_DIR [ORGUNITS_CSV] [REPS]
 *
 * Opens the store as popsyncd does (building the column projection when
 * the directory has none, timed), then answers, as the district's
 * administrator, REPS times each (default 5): persons by sex per township
 * (the filtered count of popsync-bench: sex=female grouped by township,
 * and grouped by township and sex), births by month and sex in a year, and
 * the quality report (whole and its first page of 200), from the column
 * projection and by the scans they replace.  Prints the median wall time
 * and the median CPU time of the answering thread (the figure a loaded
 * machine disturbs least) in milliseconds, and checks that both ways give
 * the same numbers (PS_STORE_BENCH_NO_SCAN=1 skips the scans).  Nothing
 * is written to the records.
 */
#include "err.h"
#include "orgunit.h"
#include "store.h"
#include "store_cols.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef int (*ask_fn)(ps_store_t *st, const ps_peer_t *peer, const void *rq, ps_store_msg_t *out, char *err,
                      size_t errlen);

static int ask_query(ps_store_t *st, const ps_peer_t *peer, const void *rq, ps_store_msg_t *out, char *err, size_t n)
{
    return ps_store_query(st, peer, rq, out, err, n);
}

static int ask_scan(ps_store_t *st, const ps_peer_t *peer, const void *rq, ps_store_msg_t *out, char *err, size_t n)
{
    return ps__store_query_scan(st, peer, rq, out, err, n);
}

static int ask_quality(ps_store_t *st, const ps_peer_t *peer, const void *rq, ps_store_msg_t *out, char *err, size_t n)
{
    return ps_store_report_quality(st, peer, rq, out, err, n);
}

static int ask_quality_scan(ps_store_t *st, const ps_peer_t *peer, const void *rq, ps_store_msg_t *out, char *err,
                            size_t n)
{
    return ps__store_quality_scan(st, peer, rq, out, err, n);
}

/* A digest of an answer, to compare the two ways. */
static unsigned long long summary(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    unsigned long long h = 1469598103934665603ull;
    const Popsync__ReportResult *r = (const Popsync__ReportResult *)m;
    if (!b)
        return 0;
    if (m->descriptor == &popsync__report_result__descriptor) {
        /* generated_ms differs between runs: digest the issues only. */
        for (size_t i = 0; i < r->n_issues; i++) {
            n = protobuf_c_message_get_packed_size(&r->issues[i]->base);
            free(b);
            if (!(b = malloc(n ? n : 1)))
                return 0;
            protobuf_c_message_pack(&r->issues[i]->base, b);
            for (size_t j = 0; j < n; j++)
                h = (h ^ b[j]) * 1099511628211ull;
        }
        free(b);
        return h ^ r->total_issues;
    }
    protobuf_c_message_pack(m, b);
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    free(b);
    return h;
}

static unsigned long long run(ps_store_t *st, const ps_peer_t *peer, const char *what, ask_fn fn, const void *rq,
                              int reps)
{
    double wall[64], cpu[64];
    unsigned long long h = 0;
    for (int i = 0; i < reps; i++) {
        ps_store_msg_t m;
        char err[256] = "";
        double w = clock_ms(CLOCK_MONOTONIC), c = clock_ms(CLOCK_THREAD_CPUTIME_ID);
        if (fn(st, peer, rq, &m, err, sizeof(err)) != PS_OK) {
            fprintf(stderr, "popsync-store-bench: %s: %s\n", what, err);
            exit(1);
        }
        wall[i] = clock_ms(CLOCK_MONOTONIC) - w;
        cpu[i] = clock_ms(CLOCK_THREAD_CPUTIME_ID) - c;
        h = summary(m.msg);
        ps_store_msg_free(&m);
    }
    qsort(wall, (size_t)reps, sizeof(double), cmp_d);
    qsort(cpu, (size_t)reps, sizeof(double), cmp_d);
    printf("%-58s %10.2f %10.2f\n", what, wall[reps / 2], cpu[reps / 2]);
    return h;
}

static void both(ps_store_t *st, const ps_peer_t *peer, const char *what, ask_fn fast, ask_fn slow, const void *rq,
                 int reps)
{
    char a[128], b[128];
    snprintf(a, sizeof(a), "%s, projection", what);
    snprintf(b, sizeof(b), "%s, scan", what);
    if (getenv("PS_STORE_BENCH_NO_SCAN")) {
        run(st, peer, a, fast, rq, reps);
        return;
    }
    if (run(st, peer, a, fast, rq, reps) != run(st, peer, b, slow, rq, reps < 3 ? reps : 3)) {
        fprintf(stderr, "popsync-store-bench: %s: the two answers differ\n", what);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    ps_store_opts_t o;
    ps_store_t *st = NULL;
    ps_orgunits_t *units = NULL;
    ps_peer_t admin;
    char err[256] = "";
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    double t;

    if (argc < 2) {
        fprintf(stderr, "usage: popsync-store-bench DATA_DIR [ORGUNITS_CSV] [REPS]\n");
        return 2;
    }
    if (reps < 1 || reps > 64)
        reps = 5;
    if (argc > 2 && ps_orgunits_load(argv[2], &units, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsync-store-bench: %s: %s\n", argv[2], err);
        return 1;
    }
    memset(&o, 0, sizeof(o));
    o.map_size = (size_t)64 << 30;
    o.units = units;
    t = clock_ms(CLOCK_MONOTONIC);
    if (ps_store_open(&st, argv[1], &o, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsync-store-bench: %s\n", err);
        return 1;
    }
    printf("%-58s %10.0f\n", "open (builds the projection when missing), ms", clock_ms(CLOCK_MONOTONIC) - t);
    memset(&admin, 0, sizeof(admin));
    admin.role = PS_ROLE_ADMIN;
    snprintf(admin.role_name, sizeof(admin.role_name), "admin");
    snprintf(admin.orgunit, sizeof(admin.orgunit), "130203000000"); /* the district */
    printf("%-58s %10s %10s\n", "median of the answers, ms", "wall", "CPU");
    {
        Popsync__Query q = POPSYNC__QUERY__INIT;
        Popsync__QueryFilter f = POPSYNC__QUERY_FILTER__INIT, *fp = &f;
        char *g1[] = {"township"}, *g2[] = {"township", "sex"}, *g3[] = {"month", "child_sex"};
        q.kind = POPSYNC__KIND__KIND_PERSON;
        f.field = "sex";
        f.value = "female";
        q.n_filters = 1;
        q.filters = &fp;
        q.n_group_by = 1;
        q.group_by = g1;
        both(st, &admin, "persons, sex=female, by township", ask_query, ask_scan, &q, reps);
        q.n_filters = 0;
        q.n_group_by = 2;
        q.group_by = g2;
        both(st, &admin, "persons by township and sex", ask_query, ask_scan, &q, reps);
        q.kind = POPSYNC__KIND__KIND_BIRTH;
        q.date_field = "birth_date";
        q.date_from = "2025-01-01";
        q.date_to = "2025-12-31";
        q.group_by = g3;
        both(st, &admin, "births of 2025 by month and child_sex", ask_query, ask_scan, &q, reps);
    }
    {
        Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
        rq.report = "quality";
        both(st, &admin, "quality report, every issue", ask_quality, ask_quality_scan, &rq, reps);
        rq.limit = 200;
        run(st, &admin, "quality report, a page of 200, projection", ask_quality, &rq, reps);
    }
    ps_store_close(st);
    ps_orgunits_free(units);
    return 0;
}
