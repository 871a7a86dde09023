/* test_server_conflicts.c - unit tests of the open conflicts' tallies
 * (server/store_conflicts.c).
 *
 * Owns: the check that the answers read from the tallies (the open
 * conflicts each node's edits lost, told in Welcome; open and total, for
 * the metrics; the per-node and total counts of the node status) and the
 * list of open conflicts read from conflict_open (for an admin, two
 * townships, two collectors and a viewer, each syncing as a node that
 * lost, kept or took no part) equal a pass over every conflict, after every step of a random run through the
 * apply path: two caches editing one field on one base (a field conflict,
 * either side losing), a delete racing an edit (the edit kept whole),
 * resolutions, a resolution naming another record (resolves nothing) and
 * one of a conflict already resolved.  Then after a clean reopen (no
 * rebuild), in a store without the tallies (a data directory from before
 * them: built on open), after an older popsyncd opened and resolved
 * conflicts behind a clean close (rebuilt on open), and after a tally
 * found damaged by a resolution (rebuilt on the next open).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_fixture.h"
#include "apply.h"
#include "crypto.h"
#include "err.h"
#include "ids.h"
#include "msg.h"
#include "record_fmt.h"
#include "store_int.h"
#include "validate.h"

#define TOWN_A "130203001000"
#define TOWN_B "130203002000"
#define UNIT_A "130203001001"
#define UNIT_B "130203002001"
#define UNIT_C "130203003001"
#define NNODES 5
#define NRECS 12
#define MAXCF 512

typedef struct fixture {
    char dir[256];
    ps_orgunits_t *units;
    ps_store_t *st;
    uint8_t nodes[NNODES][PS_ID_LEN];
    uint64_t lcn[NNODES];
    uint8_t rec[NRECS][PS_ID_LEN];
    uint64_t gen[NRECS];
    uint8_t cf[MAXCF][PS_ID_LEN]; /* conflicts raised, and the record of each */
    size_t cf_rec[MAXCF];
    size_t ncf;
    unsigned names;               /* names handed out: each edit's name is new */
} fixture_t;

static int open_store(fixture_t *fx)
{
    return ps_tstore_open(fx->dir, fx->units, 64, &fx->st);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (!fx || ps_tstore_setup("ps_conflicts", fx->dir, sizeof(fx->dir), &fx->units, 64, &fx->st))
        return -1;
    for (size_t i = 0; i < NNODES; i++)
        fx->nodes[i][0] = (uint8_t)(0xc0 + i);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    ps_tstore_remove(fx->dir, fx->units, fx->st);
    free(fx);
    return 0;
}

/* ---- changes through the apply path ------------------------------------------------- */

static void set(Popsync__Record *r, const char *field, const char *value)
{
    char err[256] = "", kv[160];
    snprintf(kv, sizeof(kv), "%s=%s", field, value);
    assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
}

/* A name no edit used before (two characters of twenty, then a third). */
static void next_name(fixture_t *fx, char *out, size_t cap)
{
    static const char *const ch[] = {"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴",
                                     "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马", "罗"};
    unsigned k = fx->names++;
    snprintf(out, cap, "%s%s%s", ch[k % 20], ch[(k / 20) % 20], ch[(k / 400) % 20]);
}

/* Person i of the run, with a new name, in a unit of three townships
 * drawn at random (an edit may move it); deleted when del. */
static Popsync__Record *person(fixture_t *fx, size_t i, int del)
{
    Popsync__Record *r = NULL;
    char idn[19], name[32];
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_PERSON), PS_OK);
    assert_non_null(r->id.data = malloc(PS_ID_LEN));
    memcpy(r->id.data, fx->rec[i], PS_ID_LEN);
    r->id.len = PS_ID_LEN;
    next_name(fx, name, sizeof(name));
    set(r, "orgunit", (const char *[]){UNIT_A, UNIT_B, UNIT_C}[rand() % 3]);
    set(r, "name", name);
    set(r, "sex", "female");
    set(r, "birth_date", "1986-04-12");
    set(r, "registration", "local");
    /* One ID number per record (its serial): never shared. */
    snprintf(idn, sizeof(idn), "13020319860412%02zu2", i);
    idn[17] = ps_id_check_char(idn);
    idn[18] = '\0';
    set(r, "id_number", idn);
    r->deleted = del != 0;
    return r;
}

/* Node n sends r (owned) based on base_gen, naming conflict resolves (or
 * NULL); the result in *res. */
static void push(fixture_t *fx, size_t n, Popsync__Record *r, uint64_t base_gen, const uint8_t *resolves,
                 ps_change_result_t *res)
{
    ps_peer_t admin = ps_tstore_peer(PS_ROLE_ADMIN, "130203000000", "district");
    ps_push_job_t job;
    Popsync__Push p = POPSYNC__PUSH__INIT;
    Popsync__Change ch = POPSYNC__CHANGE__INIT, *chp = &ch;
    Popsync__Rev base = POPSYNC__REV__INIT;

    memset(&job, 0, sizeof(job));
    ch.lcn = ++fx->lcn[n];
    ch.record = r;
    if (base_gen) {
        base.gen = base_gen;
        ch.base_rev = &base;
    }
    if (resolves) {
        ch.resolves.data = (uint8_t *)resolves;
        ch.resolves.len = PS_ID_LEN;
    }
    p.n_changes = 1;
    p.changes = &chp;
    job.peer = admin;
    memcpy(job.node, fx->nodes[n], PS_ID_LEN);
    job.push = &p;
    assert_int_equal(ps_store_apply(fx->st, &job), PS_OK);
    assert_int_equal(job.nresults, 1);
    *res = job.results[0];
    res->errors = NULL;
    ps_push_job_results_free(&job);
    ps_record_free(r);
}

static void noted(fixture_t *fx, const ps_change_result_t *res, size_t rec)
{
    if (!res->has_conflict)
        return;
    assert_true(fx->ncf < MAXCF);
    memcpy(fx->cf[fx->ncf], res->conflict_id, PS_ID_LEN);
    fx->cf_rec[fx->ncf++] = rec;
}

/* Two nodes edit the name of record i on one base: the later edit wins,
 * the other is kept as a conflict. */
static void clash(fixture_t *fx, size_t i, size_t a, size_t b)
{
    ps_change_result_t ra, rb;
    uint64_t g = fx->gen[i];
    push(fx, a, person(fx, i, 0), g, NULL, &ra);
    assert_int_equal(ra.status, PS_CHANGE_ACCEPTED);
    fx->gen[i] = ra.gen;
    push(fx, b, person(fx, i, 0), g, NULL, &rb);
    assert_true(rb.has_conflict);
    if (rb.status == PS_CHANGE_ACCEPTED)
        fx->gen[i] = rb.gen;
    noted(fx, &rb, i);
}

/* Node a deletes record i while node b edits it: b's edit is kept whole;
 * then a brings the record back. */
static void race(fixture_t *fx, size_t i, size_t a, size_t b)
{
    ps_change_result_t ra, rb, back;
    uint64_t g = fx->gen[i];
    push(fx, a, person(fx, i, 1), g, NULL, &ra);
    assert_int_equal(ra.status, PS_CHANGE_ACCEPTED);
    push(fx, b, person(fx, i, 0), g, NULL, &rb);
    assert_int_equal(rb.status, PS_CHANGE_CONFLICT);
    noted(fx, &rb, i);
    push(fx, a, person(fx, i, 0), ra.gen, NULL, &back);
    assert_int_equal(back.status, PS_CHANGE_ACCEPTED);
    fx->gen[i] = back.gen;
}

/* Node n settles conflict c with an edit of record i (the conflict's own
 * record, or another one: then nothing is resolved). */
static void settle(fixture_t *fx, size_t c, size_t i, size_t n)
{
    ps_change_result_t r;
    push(fx, n, person(fx, i, 0), fx->gen[i], fx->cf[c], &r);
    assert_int_equal(r.status, PS_CHANGE_ACCEPTED);
    fx->gen[i] = r.gen;
}

/* ---- the answers against the pass --------------------------------------------------- */

static void compare(fixture_t *fx)
{
    uint64_t lost, open_s, total_s, open_t, total_t, all_lost = 0;
    uint32_t n;
    ps_node_info_t live[NNODES];
    ps_store_msg_t m;
    Popsync__NodeStatusResult *ns;

    memset(live, 0, sizeof(live));
    for (size_t i = 0; i < NNODES; i++) {
        assert_int_equal(ps__conflicts_scan(fx->st, fx->nodes[i], &lost, &open_s, &total_s), PS_OK);
        assert_int_equal(ps_store_conflicts_lost(fx->st, fx->nodes[i], &n), PS_OK);
        assert_int_equal(n, lost);
        all_lost += lost;
        memcpy(live[i].node, fx->nodes[i], PS_ID_LEN);
        live[i].last_seen_ms = 1000 + i;
        snprintf(live[i].name, sizeof(live[i].name), "district");
        snprintf(live[i].role, sizeof(live[i].role), "admin");
        snprintf(live[i].orgunit, sizeof(live[i].orgunit), "130203000000");
    }
    assert_int_equal(ps_store_conflict_count(fx->st, &open_t, &total_t), PS_OK);
    assert_int_equal(open_t, open_s);
    assert_int_equal(total_t, total_s);
    assert_int_equal(all_lost, open_s); /* every conflict here names the node that lost */
    {
        /* The open set holds the open conflicts, no resolved one. */
        MDB_txn *txn = NULL;
        MDB_stat ms;
        assert_int_equal(mdb_txn_begin(fx->st->env, NULL, MDB_RDONLY, &txn), 0);
        assert_int_equal(mdb_stat(txn, fx->st->conflict_open, &ms), 0);
        mdb_txn_abort(txn);
        assert_int_equal(ms.ms_entries, open_s);
    }
    /* The node status: per node and in all. */
    assert_int_equal(ps_store_node_status(fx->st, live, NNODES, &m), PS_OK);
    ns = (Popsync__NodeStatusResult *)m.msg;
    assert_int_equal(ns->conflicts_open, open_s);
    assert_int_equal(ns->n_nodes, NNODES);
    for (size_t r = 0; r < ns->n_nodes; r++) {
        assert_int_equal(ns->nodes[r]->node.len, PS_ID_LEN);
        assert_int_equal(ps__conflicts_scan(fx->st, ns->nodes[r]->node.data, &lost, &open_s, &total_s), PS_OK);
        assert_int_equal(ns->nodes[r]->conflicts_open, lost);
    }
    ps_store_msg_free(&m);
}

/* Each peer's list of open conflicts (from conflict_open) is its list of
 * all (the pass over every conflict) without the resolved ones; *seen
 * gets how many the first township saw. */
static void compare_lists(fixture_t *fx, size_t *seen)
{
    static const uint8_t OTHER[PS_ID_LEN] = {0xee};
    struct {
        ps_peer_t p;
        const uint8_t *node;
    } who[] = {
        {ps_tstore_peer(PS_ROLE_ADMIN, "130203000000", "district"), OTHER},
        {ps_tstore_peer(PS_ROLE_TOWNSHIP, TOWN_A, "town-a"), fx->nodes[1]},
        {ps_tstore_peer(PS_ROLE_TOWNSHIP, TOWN_B, "town-b"), OTHER},
        {ps_tstore_peer(PS_ROLE_COLLECTOR, UNIT_A, "collector"), fx->nodes[3]},
        {ps_tstore_peer(PS_ROLE_COLLECTOR, UNIT_B, "collector-b"), OTHER},
        {ps_tstore_peer(PS_ROLE_VIEWER, "130203000000", "viewer"), fx->nodes[2]},
    };
    for (size_t w = 0; w < sizeof(who) / sizeof(who[0]); w++) {
        ps_store_msg_t mo, ma;
        Popsync__ConflictListResult *o, *a;
        size_t j = 0;
        assert_int_equal(ps_store_conflicts(fx->st, &who[w].p, who[w].node, 0, 0, &mo), PS_OK);
        assert_int_equal(ps_store_conflicts(fx->st, &who[w].p, who[w].node, 1, 0, &ma), PS_OK);
        o = (Popsync__ConflictListResult *)mo.msg;
        a = (Popsync__ConflictListResult *)ma.msg;
        assert_true(a->n_conflicts < 1000); /* neither list was cut */
        for (size_t i = 0; i < a->n_conflicts; i++) {
            if (a->conflicts[i]->resolved)
                continue;
            assert_true(j < o->n_conflicts);
            assert_memory_equal(o->conflicts[j]->id.data, a->conflicts[i]->id.data, PS_ID_LEN);
            assert_false(o->conflicts[j]->resolved);
            j++;
        }
        assert_int_equal(j, o->n_conflicts);
        if (w == 1 && seen)
            *seen = j;
        ps_store_msg_free(&mo);
        ps_store_msg_free(&ma);
    }
}

/* Records, then steps picked at random, each checked; returns the open count. */
static uint64_t random_run(fixture_t *fx, unsigned seed, int steps)
{
    ps_change_result_t r;
    uint64_t open_c, total;

    srand(seed);
    for (size_t i = 0; i < NRECS; i++) {
        assert_int_equal(ps_uuid7(fx->rec[i]), PS_OK);
        push(fx, 0, person(fx, i, 0), 0, NULL, &r);
        assert_int_equal(r.status, PS_CHANGE_ACCEPTED);
        fx->gen[i] = r.gen;
    }
    compare(fx);
    for (int s = 0; s < steps; s++) {
        int op = rand() % 10;
        size_t i = (size_t)rand() % NRECS, a = (size_t)rand() % NNODES, b = (a + 1 + (size_t)rand() % (NNODES - 1)) % NNODES;
        size_t c = fx->ncf ? (size_t)rand() % fx->ncf : 0;
        if (op < 4 || !fx->ncf)
            clash(fx, i, a, b);
        else if (op < 5)
            race(fx, i, a, b);
        else if (op < 8)
            settle(fx, c, fx->cf_rec[c], a); /* open or already resolved */
        else
            settle(fx, c, (fx->cf_rec[c] + 1) % NRECS, a); /* names another record: resolves nothing */
        compare(fx);
        compare_lists(fx, NULL);
    }
    assert_int_equal(ps_store_conflict_count(fx->st, &open_c, &total), PS_OK);
    assert_int_equal(total, fx->ncf);
    return open_c;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_random_run(void **state)
{
    fixture_t *fx = *state;
    uint64_t open_c = random_run(fx, 1717, 160);
    size_t seen = 0;
    /* The run leaves some open and some resolved, and a township sees some
     * of the open ones but not all, or it checked little. */
    assert_true(open_c > 0 && open_c < fx->ncf);
    compare_lists(fx, &seen);
    assert_true(seen > 0 && seen < open_c);
}

/* A clean close and open keeps the tallies without building them again. */
static void test_reopen(void **state)
{
    fixture_t *fx = *state;
    uint64_t builds;
    random_run(fx, 33, 60);
    builds = ps__conflicts_builds;
    ps_store_close(fx->st);
    assert_int_equal(open_store(fx), 0);
    assert_int_equal(ps__conflicts_builds, builds);
    compare(fx);
    compare_lists(fx, NULL);
}

/* A data directory from before the tallies gets them on open. */
static void test_built_on_open(void **state)
{
    fixture_t *fx = *state;
    MDB_txn *txn = NULL;
    MDB_val k = {15, (void *)"conflict_lost_v"};
    uint64_t builds;

    random_run(fx, 4242, 80);
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_drop(txn, fx->st->conflict_lost, 1), 0); /* as if it never existed */
    assert_int_equal(mdb_del(txn, fx->st->meta, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    builds = ps__conflicts_builds;
    ps_store_close(fx->st);
    assert_int_equal(open_store(fx), 0);
    assert_int_equal(ps__conflicts_builds, builds + 1);
    compare(fx);
    compare_lists(fx, NULL);
    /* And keeps them from then on. */
    clash(fx, 0, 1, 2);
    settle(fx, 0, fx->cf_rec[0], 3);
    compare(fx);
}

/* The value of the first conflict that is open (or resolved), unpacked. */
static Popsync__Conflict *first_conflict(MDB_txn *txn, MDB_dbi dbi, int resolved, MDB_val *key)
{
    MDB_cursor *cur = NULL;
    MDB_val v;
    Popsync__Conflict *cf = NULL;
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    while (mdb_cursor_get(cur, key, &v, MDB_NEXT) == 0) {
        assert_int_equal(ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size,
                                            (ProtobufCMessage **)&cf),
                         PS_OK);
        if ((cf->resolved != 0) == (resolved != 0))
            break;
        ps_msg_free(&cf->base);
        cf = NULL;
    }
    mdb_cursor_close(cur);
    assert_non_null(cf);
    return cf;
}

static void put_conflict(MDB_txn *txn, MDB_dbi dbi, const uint8_t *cid, const Popsync__Conflict *cf)
{
    size_t n = protobuf_c_message_get_packed_size(&cf->base);
    uint8_t *p = malloc(n ? n : 1);
    MDB_val k = {PS_ID_LEN, (void *)cid}, v = {n, p};
    assert_non_null(p);
    protobuf_c_message_pack(&cf->base, p);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    free(p);
}

/* An older popsyncd, after a clean close, opens one conflict (a copy of an
 * open one under a new id) or resolves one (and its change moves the head). */
static void older_writer(fixture_t *fx, int resolve)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi conflicts, meta;
    MDB_val k, hk = {4, (void *)"head"}, v;
    Popsync__Conflict *cf;
    uint8_t cid[PS_ID_LEN], head[8];

    ps_store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_set_mapsize(env, (size_t)64 << 20), 0);
    assert_int_equal(mdb_env_open(env, fx->dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "conflicts", 0, &conflicts), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    cf = first_conflict(txn, conflicts, 0, &k);
    if (resolve) {
        memcpy(cid, k.mv_data, PS_ID_LEN);
        cf->resolved = 1;
        assert_int_equal(mdb_get(txn, meta, &hk, &v), 0);
        be64put(head, be64get(v.mv_data) + 1);
        v.mv_data = head;
        assert_int_equal(mdb_put(txn, meta, &hk, &v, 0), 0);
    } else {
        assert_int_equal(ps_uuid7(cid), PS_OK);
        memcpy(cf->id.data, cid, PS_ID_LEN);
    }
    put_conflict(txn, conflicts, cid, cf);
    ps_msg_free(&cf->base);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_older_writer(void **state)
{
    fixture_t *fx = *state;
    uint64_t builds, open0, open1, total0, total1;

    random_run(fx, 909, 60);
    assert_int_equal(ps_store_conflict_count(fx->st, &open0, &total0), PS_OK);
    assert_true(open0 > 1);
    /* It opens one: one more conflict, the head unmoved. */
    builds = ps__conflicts_builds;
    older_writer(fx, 0);
    assert_int_equal(open_store(fx), 0);
    assert_int_equal(ps__conflicts_builds, builds + 1);
    assert_int_equal(ps_store_conflict_count(fx->st, &open1, &total1), PS_OK);
    assert_int_equal(open1, open0 + 1);
    assert_int_equal(total1, total0 + 1);
    compare(fx);
    compare_lists(fx, NULL);
    /* It resolves one. */
    older_writer(fx, 1);
    assert_int_equal(open_store(fx), 0);
    assert_int_equal(ps__conflicts_builds, builds + 2);
    assert_int_equal(ps_store_conflict_count(fx->st, &open1, &total1), PS_OK);
    assert_int_equal(open1, open0);
    assert_int_equal(total1, total0 + 1);
    compare(fx);
    compare_lists(fx, NULL);
}

/* A damaged tally (a node's row lost) is found when one of its conflicts
 * is resolved: the resolution goes through, the next open rebuilds. */
static void test_damaged_tally(void **state)
{
    fixture_t *fx = *state;
    MDB_txn *txn = NULL;
    MDB_val k;
    Popsync__Conflict *cf;
    uint64_t builds;
    uint8_t cid[PS_ID_LEN];
    size_t c = MAXCF;

    random_run(fx, 5150, 40);
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
    cf = first_conflict(txn, fx->st->conflicts, 0, &k);
    memcpy(cid, k.mv_data, PS_ID_LEN);
    k.mv_size = PS_ID_LEN;
    k.mv_data = cf->lost_node.data;
    assert_int_equal(mdb_del(txn, fx->st->conflict_lost, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    ps_msg_free(&cf->base);
    for (size_t i = 0; i < fx->ncf; i++)
        if (memcmp(fx->cf[i], cid, PS_ID_LEN) == 0)
            c = i;
    assert_true(c < MAXCF);
    settle(fx, c, fx->cf_rec[c], 0);
    builds = ps__conflicts_builds;
    ps_store_close(fx->st);
    assert_int_equal(open_store(fx), 0);
    assert_int_equal(ps__conflicts_builds, builds + 1);
    compare(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_random_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_built_on_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_tally, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
