/* ps_conflictbench.c - the open conflicts' questions, a pass over every
 * conflict against the tallies (docs/performance.md §p).
 *
 * usage: ps_conflictbench [CONFLICTS [NODES]]   (default 20000 conflicts,
 *                                                lost by 200 nodes)
 *
 * Writes CONFLICTS conflicts into a new store (the demo district's tree),
 * as the apply path keeps them: the kept and the lost version of a person
 * whole, in a unit of one of eight townships in turn, a lost node drawn
 * from NODES, one in four resolved; each with its tallies moved in the
 * same transaction (ps__conflicts_tally), 1,000 per transaction.  Then it measures, in this thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID: what a loaded machine disturbs least):
 *   write         the put of each conflict, and the tally's share of it
 *   build         the tallies built from the conflicts when the store opens
 *                 without them (a data directory from before them)
 *   Hello         the open conflicts one node's edits lost: the pass every
 *                 Hello made before (ps__conflicts_scan), and the lookup
 *                 (ps_store_conflicts_lost)
 *   metrics       open and total conflicts: the pass, and the lookup
 *                 (ps_store_conflict_count)
 *   list          the open conflicts a peer may see (ConflictList, which
 *                 every `popsync sync` sends): the pass over every
 *                 conflict as ps_store_conflicts made it before (old_list
 *                 below), and ps_store_conflicts from conflict_open; for a
 *                 collector (its node's conflicts: 1 in NODES) and a
 *                 township (1 in 8, at most 1,000 listed)
 * and checks that both give the same answers.  Run from the build
 * directory (it reads demo/orgunits.csv from the source tree).
 */
#include "store_int.h"

#include "crypto.h"
#include "err.h"
#include "ids.h"
#include "msg.h"
#include "orgunit.h"
#include "record_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PER_TXN 1000

static const char *const UNITS[8] = {"130203001001", "130203002001", "130203003001", "130203004001",
                                     "130203005001", "130203100201", "130203101201", "130203102201"};

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "ps_conflictbench: %s: %s\n", what, err ? err : "failed");
    exit(1);
}

static ps_store_t *open_store(const char *dir, ps_orgunits_t *units, double *took)
{
    char err[512] = "";
    ps_store_opts_t o;
    ps_store_t *st = NULL;
    double t0 = cpu_s();
    memset(&o, 0, sizeof(o));
    o.map_size = (size_t)2048 << 20;
    o.units = units;
    if (ps_store_open(&st, dir, &o, err, sizeof(err)) != PS_OK)
        die("store", err);
    if (took)
        *took = cpu_s() - t0;
    return st;
}

static void set(Popsync__Record *r, const char *kv)
{
    char err[256] = "";
    if (ps_record_set_kv(r, kv, err, sizeof(err)) != PS_OK)
        die(kv, err);
}

/* A person as a district keeps one (the size of a real conflict's halves). */
static Popsync__Record *person(const uint8_t *id, const char *name, const char *unit)
{
    Popsync__Record *r = NULL;
    char kv[96], idn[19];
    if (ps_record_new(&r, POPSYNC__KIND__KIND_PERSON) || !(r->id.data = malloc(PS_ID_LEN)))
        die("record", NULL);
    memcpy(r->id.data, id, PS_ID_LEN);
    r->id.len = PS_ID_LEN;
    snprintf(kv, sizeof(kv), "name=%s", name);
    set(r, kv);
    snprintf(kv, sizeof(kv), "orgunit=%s", unit);
    set(r, kv);
    set(r, "sex=female");
    set(r, "birth_date=1986-04-12");
    set(r, "registration=local");
    set(r, "phone=13800138000");
    set(r, "address=河北省唐山市路北区建设路12号3单元401");
    snprintf(idn, sizeof(idn), "13020319860412%03u", (unsigned)(id[15] % 500) * 2);
    idn[17] = ps_id_check_char(idn);
    idn[18] = '\0';
    snprintf(kv, sizeof(kv), "id_number=%s", idn);
    set(r, kv);
    return r;
}

/* Writes n conflicts (lost by nodes[i % nn]); *put, *tally: CPU seconds. */
static void write_conflicts(ps_store_t *st, size_t n, uint8_t (*nodes)[PS_ID_LEN], size_t nn, double *put,
                            double *tally)
{
    uint8_t rid[PS_ID_LEN], cid[PS_ID_LEN], *buf = NULL;
    size_t cap = 0;
    MDB_txn *txn = NULL;
    const char *fields[] = {"name"};

    *put = *tally = 0;
    for (size_t i = 0; i < n; i++) {
        Popsync__Conflict cf = POPSYNC__CONFLICT__INIT;
        Popsync__Record *kept, *lost;
        MDB_val k = {PS_ID_LEN, cid}, v;
        size_t len;
        double t0, t1;

        if (ps_uuid7(rid) || ps_uuid7(cid))
            die("uuid", NULL);
        kept = person(rid, "王秀英", UNITS[i % 8]);
        lost = person(rid, "王秀瑛", UNITS[i % 8]);
        cf.id.data = cid;
        cf.id.len = PS_ID_LEN;
        cf.record_id = kept->id;
        cf.kind = kept->kind;
        cf.orgunit = kept->orgunit;
        cf.n_fields = 1;
        cf.fields = (char **)fields;
        cf.kept = kept;
        cf.lost = lost;
        cf.created_ms = ps_now_ms();
        cf.reason = (char *)"the same field was changed on both sides";
        cf.lost_node.data = nodes[i % nn];
        cf.lost_node.len = PS_ID_LEN;
        cf.resolved = i % 4 == 3;
        len = protobuf_c_message_get_packed_size(&cf.base);
        if (len > cap && !(buf = realloc(buf, cap = len * 2)))
            die("memory", NULL);
        protobuf_c_message_pack(&cf.base, buf);
        t0 = cpu_s();
        if (!txn && mdb_txn_begin(st->env, NULL, 0, &txn))
            die("txn", NULL);
        v.mv_size = len;
        v.mv_data = buf;
        if (mdb_put(txn, st->conflicts, &k, &v, 0))
            die("put", NULL);
        t1 = cpu_s();
        if (!cf.resolved && ps__conflicts_tally(txn, st, cid, &cf, +1))
            die("tally", NULL);
        *tally += cpu_s() - t1;
        if ((i + 1) % PER_TXN == 0 || i + 1 == n) {
            if (mdb_txn_commit(txn))
                die("commit", NULL);
            txn = NULL;
        }
        *put += cpu_s() - t0;
        ps_record_free(kept);
        ps_record_free(lost);
    }
    free(buf);
}

/* The list of open conflicts the peer may see as ps_store_conflicts made
 * it before conflict_open: every conflict unpacked, in id order, at most
 * 1,000.  *n: how many. */
static void old_list(ps_store_t *st, const ps_peer_t *peer, const uint8_t *node, uint8_t (*ids)[PS_ID_LEN],
                     size_t *n)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    *n = 0;
    if (mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn) || mdb_cursor_open(txn, st->conflicts, &cur))
        die("old list", NULL);
    while (*n < 1000 && mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
        Popsync__Conflict *cf = NULL;
        ps_conflict_view_t cv;
        if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cf))
            continue;
        cv.unit = cf->orgunit;
        cv.kept_unit = cf->kept ? cf->kept->orgunit : NULL;
        cv.lost_unit = cf->lost ? cf->lost->orgunit : NULL;
        cv.lost_node = cf->lost_node.len == PS_ID_LEN ? cf->lost_node.data : NULL;
        cv.kept_node = cf->kept_node.len == PS_ID_LEN ? cf->kept_node.data : NULL;
        if (!cf->resolved && ps_policy_may_see_conflict(st->opts.units, peer, node, &cv))
            memcpy(ids[(*n)++], k.mv_data, PS_ID_LEN);
        ps_msg_free(&cf->base);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
}

static ps_peer_t peer(ps_role_t role, const char *unit)
{
    ps_peer_t p;
    memset(&p, 0, sizeof(p));
    p.role = role;
    snprintf(p.role_name, sizeof(p.role_name), "%s", ps_role_name(role));
    snprintf(p.orgunit, sizeof(p.orgunit), "%s", unit);
    snprintf(p.name, sizeof(p.name), "bench");
    return p;
}

/* CPU per list both ways for peer; *listed: how many; 1 when both listed
 * the same conflicts. */
static int time_lists(ps_store_t *st, const ps_peer_t *p, const uint8_t *node, double *old_s, double *new_s,
                      size_t *listed)
{
    static uint8_t ids[1000][PS_ID_LEN];
    ps_store_msg_t m;
    Popsync__ConflictListResult *res;
    int rounds = 5, same;
    double t0 = cpu_s();
    for (int r = 0; r < rounds; r++)
        old_list(st, p, node, ids, listed);
    *old_s = (cpu_s() - t0) / rounds;
    t0 = cpu_s();
    for (int r = 0; r < rounds; r++) {
        if (ps_store_conflicts(st, p, node, 0, 0, &m))
            die("list", NULL);
        if (r + 1 < rounds)
            ps_store_msg_free(&m);
    }
    *new_s = (cpu_s() - t0) / rounds;
    res = (Popsync__ConflictListResult *)m.msg;
    same = res->n_conflicts == *listed;
    for (size_t i = 0; same && i < res->n_conflicts; i++)
        same = memcmp(res->conflicts[i]->id.data, ids[i], PS_ID_LEN) == 0;
    ps_store_msg_free(&m);
    return same;
}

/* Takes the tallies away, as in a data directory from before them. */
static void forget_tallies(ps_store_t *st)
{
    MDB_txn *txn = NULL;
    MDB_val k = {15, (void *)"conflict_lost_v"};
    if (mdb_txn_begin(st->env, NULL, 0, &txn) || mdb_drop(txn, st->conflict_lost, 1) ||
        mdb_drop(txn, st->conflict_open, 1) || mdb_del(txn, st->meta, &k, NULL) || mdb_txn_commit(txn))
        die("forget", NULL);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000, nn = argc > 2 ? strtoull(argv[2], NULL, 10) : 200;
    const char *f = __FILE__, *at = strstr(f, "tests/tools/"), *tmp = getenv("TMPDIR");
    char path[4096], dir[300], err[512] = "";
    ps_orgunits_t *units = NULL;
    ps_store_t *st;
    uint8_t(*nodes)[PS_ID_LEN];
    double put, tally, build, t0, scan_s, look_s, scan_m, look_m, lo_c, ln_c, lo_t, ln_t;
    size_t listed_c, listed_t;
    ps_peer_t collector = peer(PS_ROLE_COLLECTOR, "130203001001"), town = peer(PS_ROLE_TOWNSHIP, "130203002000");
    uint64_t lost = 0, open_s = 0, total_s = 0, open_t = 0, total_t = 0, builds;
    uint32_t lost_t = 0;
    int rounds_scan = 5, rounds_look = 20000, same = 1;

    if (n == 0 || nn == 0 || !(nodes = calloc(nn, PS_ID_LEN)))
        die("usage", "ps_conflictbench [CONFLICTS [NODES]]");
    for (size_t i = 0; i < nn; i++)
        if (ps_uuid7(nodes[i]))
            die("uuid", NULL);
    snprintf(path, sizeof(path), "%.*sdemo/orgunits.csv", at ? (int)(at - f) : 0, f);
    if (ps_orgunits_load(path, &units, err, sizeof(err)) != PS_OK)
        die(path, err);
    snprintf(dir, sizeof(dir), "%s/ps_conflictbench_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        die("mkdtemp", dir);

    st = open_store(dir, units, NULL);
    write_conflicts(st, n, nodes, nn, &put, &tally);
    forget_tallies(st);
    ps_store_close(st);
    builds = ps__conflicts_builds;
    st = open_store(dir, units, &build);
    if (ps__conflicts_builds != builds + 1)
        die("build", "the tallies were not built on open");

    t0 = cpu_s();
    for (int r = 0; r < rounds_scan; r++)
        if (ps__conflicts_scan(st, nodes[(size_t)r % nn], &lost, &open_s, &total_s))
            die("scan", NULL);
    scan_s = (cpu_s() - t0) / rounds_scan;
    scan_m = scan_s; /* the metrics' pass was the same pass */
    t0 = cpu_s();
    for (int r = 0; r < rounds_look; r++)
        if (ps_store_conflicts_lost(st, nodes[(size_t)r % nn], &lost_t))
            die("lookup", NULL);
    look_s = (cpu_s() - t0) / rounds_look;
    t0 = cpu_s();
    for (int r = 0; r < rounds_look; r++)
        if (ps_store_conflict_count(st, &open_t, &total_t))
            die("count", NULL);
    look_m = (cpu_s() - t0) / rounds_look;
    for (size_t i = 0; i < nn; i++) {
        if (ps__conflicts_scan(st, nodes[i], &lost, &open_s, &total_s) ||
            ps_store_conflicts_lost(st, nodes[i], &lost_t) || ps_store_conflict_count(st, &open_t, &total_t))
            die("compare", NULL);
        same &= lost == lost_t && open_s == open_t && total_s == total_t;
    }
    same &= time_lists(st, &collector, nodes[0], &lo_c, &ln_c, &listed_c);
    same &= time_lists(st, &town, nodes[0], &lo_t, &ln_t, &listed_t);

    printf("%zu conflicts (%llu open), lost by %zu nodes; CPU per operation:\n", n, (unsigned long long)open_t, nn);
    printf("  write a conflict      %8.2f us, of which its tally %.2f us\n", put / (double)n * 1e6,
           tally / (double)n * 1e6);
    printf("  build on open         %8.1f ms (the whole open: %.2f us per conflict)\n", build * 1e3,
           build / (double)n * 1e6);
    printf("  Hello's lost count    pass %10.1f us   lookup %6.2f us\n", scan_s * 1e6, look_s * 1e6);
    printf("  metrics open/total    pass %10.1f us   lookup %6.2f us\n", scan_m * 1e6, look_m * 1e6);
    printf("  list, collector (%4zu) pass %10.1f us   set    %8.1f us\n", listed_c, lo_c * 1e6, ln_c * 1e6);
    printf("  list, township  (%4zu) pass %10.1f us   set    %8.1f us\n", listed_t, lo_t * 1e6, ln_t * 1e6);
    printf("  same answers for every node and both lists: %s\n", same ? "yes" : "NO");

    ps_store_close(st);
    ps_orgunits_free(units);
    free(nodes);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
    return same ? 0 : 1;
}
