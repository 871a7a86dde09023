/* test_server_feed.c - unit tests of the feed's township index and the pull
 * (server/store_feed.c) on a temporary LMDB store.
 *
 * Owns: checks that a township's pull reads only its township's entries
 * and looks up only the records it sends (the store's test counters), that
 * what it gets is what the district's feed filtered by the access policy
 * gives (records of its units, migrations it is the other place of with
 * their migrant summary, the exit of a record handed away), and that the
 * index of a store written before it existed (short feed entries, no
 * index), of a stopped build and of another org-unit tree is built on open.
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
#include "err.h"
#include "ids.h"
#include "msg.h"
#include "orgunit.h"
#include "record_fmt.h"

#define DISTRICT "130203000000"
#define TOWN_A "130203001000"
#define UNIT_A "130203001001"
#define TOWN_B "130203002000"
#define UNIT_B "130203002001"
#define UNIT_B2 "130203002002"

typedef struct fixture {
    char dir[256];
    ps_orgunits_t *units;
    ps_store_t *st;
    uint64_t lcn;
} fixture_t;

static const uint8_t NODE_ADMIN[PS_ID_LEN] = {0xa1};


static int open_store(fixture_t *fx, int with_tree)
{
    return ps_tstore_open(fx->dir, with_tree ? fx->units : NULL, 32, &fx->st);
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (!fx || ps_tstore_setup("ps_feed", fx->dir, sizeof(fx->dir), &fx->units, 32, &fx->st))
        return -1;
    fx->lcn = 1;
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

static ps_peer_t peer(ps_role_t role, const char *unit)
{
    return ps_tstore_peer(role, unit, ps_role_name(role));
}

static Popsync__Record *new_record(int kind, const uint8_t *id, const char *unit, uint8_t *id_out)
{
    Popsync__Record *r = NULL;
    char err[256] = "";
    assert_int_equal(ps_record_new(&r, kind), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    assert_non_null(r->id.data);
    if (id)
        memcpy(r->id.data, id, PS_ID_LEN);
    else
        assert_int_equal(ps_uuid7(r->id.data), PS_OK);
    r->id.len = PS_ID_LEN;
    if (id_out)
        memcpy(id_out, r->id.data, PS_ID_LEN);
    assert_int_equal(ps_record_set(r, "orgunit", unit, err, sizeof(err)), PS_OK);
    return r;
}

static void set_kv(Popsync__Record *r, const char *kv)
{
    char err[256] = "";
    if (ps_record_set_kv(r, kv, err, sizeof(err)) != PS_OK)
        fail_msg("%s: %s", kv, err);
}

/* A person in unit (a valid ID number made from the record id). */
static Popsync__Record *person(const uint8_t *id, const char *unit, int day, uint8_t *id_out)
{
    Popsync__Record *r = new_record(POPSYNC__KIND__KIND_PERSON, id, unit, id_out);
    char kv[64], idn[32];
    set_kv(r, "name=赵敏");
    set_kv(r, "sex=female");
    snprintf(kv, sizeof(kv), "birth_date=1980-04-%02d", day);
    set_kv(r, kv);
    set_kv(r, "registration=local");
    snprintf(idn, sizeof(idn), "130203198004%02d%02u2", day % 100, (unsigned)(r->id.data[15] % 100));
    idn[17] = ps_id_check_char(idn);
    idn[18] = '\0';
    snprintf(kv, sizeof(kv), "id_number=%s", idn);
    set_kv(r, kv);
    return r;
}

/* A migration of person pid registered in UNIT_A, other place UNIT_B. */
static Popsync__Record *migration(const uint8_t *pid, uint8_t *id_out)
{
    Popsync__Record *r = new_record(POPSYNC__KIND__KIND_MIGRATION, NULL, UNIT_A, id_out);
    char kv[96], u[PS_UUID_STR];
    ps_uuid_format(pid, u);
    snprintf(kv, sizeof(kv), "person_id=%s", u);
    set_kv(r, kv);
    set_kv(r, "direction=outflow");
    set_kv(r, "other_place_code=" UNIT_B);
    set_kv(r, "other_place=文化里社区");
    set_kv(r, "start_date=2025-03-01");
    set_kv(r, "employer=钢城钢铁集团");
    return r;
}

/* Applies r as the district (based on gen base) in a group commit of its own. */
static void put(fixture_t *fx, Popsync__Record *r, uint64_t base)
{
    ps_push_job_t job;
    Popsync__Push push = POPSYNC__PUSH__INIT;
    Popsync__Change ch = POPSYNC__CHANGE__INIT, *chp = &ch;
    Popsync__Rev rev = POPSYNC__REV__INIT;
    memset(&job, 0, sizeof(job));
    ch.lcn = fx->lcn++;
    ch.record = r;
    if (base) {
        rev.gen = base;
        ch.base_rev = &rev;
    }
    push.n_changes = 1;
    push.changes = &chp;
    job.peer = peer(PS_ROLE_ADMIN, DISTRICT);
    memcpy(job.node, NODE_ADMIN, PS_ID_LEN);
    job.push = &push;
    assert_int_equal(ps_store_apply(fx->st, &job), PS_OK);
    assert_int_equal(job.nresults, 1);
    if (job.results[0].status != PS_CHANGE_ACCEPTED)
        fail_msg("not accepted: %s %s", job.results[0].nerrors ? job.results[0].errors[0].field : "",
                 job.results[0].nerrors ? job.results[0].errors[0].reason : "");
    ps_push_job_results_free(&job);
    ps_record_free(r);
}

/* What one pull gave: records (id, unit, other, migrant summary) and exits. */
typedef struct got {
    size_t n, gone, migrants;
    uint8_t ids[64][PS_ID_LEN];
    char units[64][13], others[64][13];
} got_t;

static int collect(void *arg, const ps_pull_item_t *it)
{
    got_t *g = arg;
    Popsync__Record *r = NULL;
    if (it->gone_id) {
        g->gone++;
        return 0;
    }
    assert_true(g->n < 64);
    assert_int_equal(ps_msg_unpack_desc(&popsync__record__descriptor, it->record, it->record_len,
                                        (ProtobufCMessage **)&r),
                     PS_OK);
    memcpy(g->ids[g->n], r->id.data, PS_ID_LEN);
    snprintf(g->units[g->n], 13, "%s", r->orgunit);
    snprintf(g->others[g->n], 13, "%s",
             r->body_case == POPSYNC__RECORD__BODY_MIGRATION && r->migration->other_place_code
                 ? r->migration->other_place_code
                 : "");
    g->migrants += it->migrant != NULL;
    g->n++;
    ps_msg_free(&r->base);
    return 0;
}

/* Pulls everything after cursor for p, counting the store's lookups and
 * the feed entries read. */
static void pull(fixture_t *fx, const ps_peer_t *p, uint64_t cursor, got_t *g, uint64_t *lookups,
                 uint64_t *examined)
{
    ps_pull_end_t end;
    uint64_t l0 = ps__pull_lookups, e0 = ps__pull_examined;
    memset(g, 0, sizeof(*g));
    assert_int_equal(ps_store_pull(fx->st, p, cursor, 1000, 1 << 24, collect, g, &end), PS_OK);
    assert_int_equal(end.more, 0);
    assert_int_equal(end.cursor, ps_store_head(fx->st));
    if (lookups)
        *lookups = ps__pull_lookups - l0;
    if (examined)
        *examined = ps__pull_examined - e0;
}

/* The district's feed filtered by the policy: what p may read of it. */
static size_t expected(fixture_t *fx, const ps_peer_t *p, got_t *all)
{
    ps_peer_t admin = peer(PS_ROLE_ADMIN, DISTRICT);
    size_t n = 0;
    pull(fx, &admin, 0, all, NULL, NULL);
    for (size_t i = 0; i < all->n; i++)
        n += ps_policy_may_read(fx->units, p, all->units[i], all->others[i]) != 0;
    return n;
}

/* 3 persons in township A, 5 in township B (two units), a migration of
 * one of A's persons to B's unit. */
static void fill(fixture_t *fx, uint8_t *moved_id)
{
    uint8_t pid[PS_ID_LEN];
    for (int i = 0; i < 3; i++)
        put(fx, person(NULL, UNIT_A, i + 1, i == 0 ? pid : NULL), 0);
    for (int i = 0; i < 5; i++)
        put(fx, person(NULL, i % 2 ? UNIT_B : UNIT_B2, i + 10, i == 0 && moved_id ? moved_id : NULL), 0);
    put(fx, migration(pid, NULL), 0);
}

static void test_township_reads_only_its_entries(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t town_a = peer(PS_ROLE_TOWNSHIP, TOWN_A), town_b = peer(PS_ROLE_TOWNSHIP, TOWN_B);
    ps_peer_t coll_b = peer(PS_ROLE_COLLECTOR, UNIT_B), admin = peer(PS_ROLE_ADMIN, DISTRICT);
    got_t g, all;
    uint64_t lookups, examined;

    fill(fx, NULL);
    /* Township A: its 3 persons and its migration; it reads 4 entries of 9. */
    pull(fx, &town_a, 0, &g, &lookups, &examined);
    assert_int_equal(g.n, expected(fx, &town_a, &all));
    assert_int_equal(g.n, 4);
    assert_int_equal(examined, 4);
    assert_int_equal(lookups, 4);
    assert_int_equal(g.migrants, 0); /* the owner reads the person itself */
    /* Township B: its 5 persons and the migration as its other place, with
     * the migrant's summary; A's persons are never read. */
    pull(fx, &town_b, 0, &g, &lookups, &examined);
    assert_int_equal(g.n, expected(fx, &town_b, &all));
    assert_int_equal(g.n, 6);
    assert_int_equal(examined, 6);
    assert_int_equal(lookups, 6);
    assert_int_equal(g.migrants, 1);
    /* A collector of one of B's units reads B's entries and is sent only
     * what it sees: no lookup for the others. */
    pull(fx, &coll_b, 0, &g, &lookups, &examined);
    assert_int_equal(g.n, expected(fx, &coll_b, &all));
    assert_int_equal(g.n, 3);
    assert_int_equal(examined, 6);
    assert_int_equal(lookups, 3);
    /* The district reads the whole feed, and looks up what it sends. */
    pull(fx, &admin, 0, &g, &lookups, &examined);
    assert_int_equal(g.n, 9);
    assert_int_equal(lookups, 9);
    /* From a cursor: only what follows. */
    pull(fx, &town_b, ps_store_head(fx->st) - 1, &g, &lookups, &examined);
    assert_int_equal(g.n, 1);
    assert_int_equal(examined, 1);
}

/* A record handed from township B to A: B is told it left (one lookup, to
 * see it has not come back), A gets it, and a pull from before the move
 * gives B the exit instead of the record. */
static void test_exit_and_move(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t town_a = peer(PS_ROLE_TOWNSHIP, TOWN_A), town_b = peer(PS_ROLE_TOWNSHIP, TOWN_B);
    uint8_t id[PS_ID_LEN];
    uint64_t before, lookups, examined;
    got_t g;

    fill(fx, id);
    before = ps_store_head(fx->st);
    put(fx, person(id, UNIT_A, 10, NULL), 1);
    pull(fx, &town_b, before, &g, &lookups, &examined);
    assert_int_equal(g.n, 0);
    assert_int_equal(g.gone, 1);
    assert_int_equal(examined, 1);
    assert_int_equal(lookups, 1);
    pull(fx, &town_a, before, &g, &lookups, &examined);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.gone, 0);
    assert_int_equal(lookups, 1);
    /* From 0, B no longer gets the record it handed away. */
    pull(fx, &town_b, 0, &g, NULL, NULL);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.gone, 1);
    /* Back to B: the old exit is not sent to B (the record is there again). */
    put(fx, person(id, UNIT_B2, 10, NULL), 2);
    pull(fx, &town_b, 0, &g, NULL, NULL);
    assert_int_equal(g.n, 6);
    assert_int_equal(g.gone, 0);
}

/* --- stores written before the index ----------------------------------------------- */

static void txn_do(fixture_t *fx, void (*fn)(fixture_t *, MDB_txn *, void *), void *arg)
{
    MDB_txn *txn;
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
    fn(fx, txn, arg);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

/* Rewrites every record entry with seq > *after in the short form of the
 * stores before the index, drops their index entries (all of them when
 * *after is 0, with the index's mark) and, after > 0, leaves the state of
 * a build stopped at after. */
static void make_old(fixture_t *fx, MDB_txn *txn, void *arg)
{
    uint64_t after = *(uint64_t *)arg;
    MDB_cursor *cur;
    MDB_val k, v, mk = {10, "feed_index"}, ak = {13, "feed_index_at"};
    uint8_t ids[64][PS_ID_LEN], keys[64][8], atv[8];
    size_t n = 0;
    assert_int_equal(mdb_cursor_open(txn, fx->st->feed, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
        if (v.mv_size == FEED_REC_LEN && be64get(k.mv_data) > after) {
            memcpy(keys[n], k.mv_data, 8);
            memcpy(ids[n++], v.mv_data, PS_ID_LEN);
        }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < n; i++) {
        MDB_val kk = {8, keys[i]}, vv = {PS_ID_LEN, ids[i]};
        assert_int_equal(mdb_put(txn, fx->st->feed, &kk, &vv, 0), 0);
    }
    assert_int_equal(mdb_cursor_open(txn, fx->st->feed_town, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
        if (be64get((uint8_t *)k.mv_data + 12) > after)
            assert_int_equal(mdb_cursor_del(cur, 0), 0);
    mdb_cursor_close(cur);
    mdb_del(txn, fx->st->meta, &mk, NULL);
    if (after) {
        MDB_val av = {8, atv};
        be64put(atv, after);
        assert_int_equal(mdb_put(txn, fx->st->meta, &ak, &av, 0), 0);
    }
}

static void count_index(fixture_t *fx, MDB_txn *txn, void *arg)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t *n = arg;
    *n = 0;
    assert_int_equal(mdb_cursor_open(txn, fx->st->feed_town, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
        (*n)++;
    mdb_cursor_close(cur);
}

/* Every feed entry in the long form (none left short). */
static void all_long(fixture_t *fx, MDB_txn *txn, void *arg)
{
    MDB_cursor *cur;
    MDB_val k, v;
    (void)arg;
    assert_int_equal(mdb_cursor_open(txn, fx->st->feed, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
        assert_true(v.mv_size == FEED_REC_LEN || v.mv_size == FEED_EXIT_LEN);
    mdb_cursor_close(cur);
}

static void reopen(fixture_t *fx, int with_tree)
{
    ps_store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(open_store(fx, with_tree), 0);
}

static void test_old_store_indexed_on_open(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t town_a = peer(PS_ROLE_TOWNSHIP, TOWN_A), town_b = peer(PS_ROLE_TOWNSHIP, TOWN_B);
    uint8_t id[PS_ID_LEN];
    uint64_t zero = 0, examined;
    size_t before, after;
    got_t ga, gb, g;

    fill(fx, id);
    put(fx, person(id, UNIT_A, 10, NULL), 1); /* an exit entry too */
    pull(fx, &town_a, 0, &ga, NULL, NULL);
    pull(fx, &town_b, 0, &gb, NULL, NULL);
    txn_do(fx, count_index, &before);
    /* A store as an older popsyncd left it: short entries, no index. */
    txn_do(fx, make_old, &zero);
    txn_do(fx, count_index, &after);
    assert_int_equal(after, 0);
    reopen(fx, 1);
    txn_do(fx, count_index, &after);
    assert_int_equal(after, before);
    txn_do(fx, all_long, NULL);
    pull(fx, &town_a, 0, &g, NULL, &examined);
    assert_int_equal(g.n, ga.n);
    assert_memory_equal(g.ids, ga.ids, g.n * PS_ID_LEN);
    assert_int_equal(examined, ga.n);
    pull(fx, &town_b, 0, &g, NULL, NULL);
    assert_int_equal(g.n, gb.n);
    assert_int_equal(g.gone, gb.gone);
    assert_memory_equal(g.ids, gb.ids, g.n * PS_ID_LEN);
}

/* A build stopped midway goes on from where it stopped (what it filed
 * stays filed, what it had not reached is filed now). */
static void test_stopped_build_resumes(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t town_b = peer(PS_ROLE_TOWNSHIP, TOWN_B);
    uint64_t half;
    size_t before, after;
    got_t gb, g;

    fill(fx, NULL);
    pull(fx, &town_b, 0, &gb, NULL, NULL);
    txn_do(fx, count_index, &before);
    half = ps_store_head(fx->st) / 2;
    txn_do(fx, make_old, &half);
    reopen(fx, 1);
    txn_do(fx, count_index, &after);
    assert_int_equal(after, before);
    txn_do(fx, all_long, NULL);
    pull(fx, &town_b, 0, &g, NULL, NULL);
    assert_int_equal(g.n, gb.n);
    assert_memory_equal(g.ids, gb.ids, g.n * PS_ID_LEN);
}

/* Started without the tree, the townships are the codes': the index made
 * with the tree is made again, and a township still reads its own. */
static void test_other_tree_reindexed(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t town_b = peer(PS_ROLE_TOWNSHIP, TOWN_B);
    uint64_t examined;
    got_t gb, g;

    fill(fx, NULL);
    pull(fx, &town_b, 0, &gb, NULL, NULL);
    reopen(fx, 0);
    pull(fx, &town_b, 0, &g, NULL, &examined);
    assert_int_equal(g.n, gb.n);
    assert_int_equal(examined, gb.n);
    reopen(fx, 1);
    pull(fx, &town_b, 0, &g, NULL, &examined);
    assert_int_equal(g.n, gb.n);
    assert_int_equal(examined, gb.n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_township_reads_only_its_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_and_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_store_indexed_on_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_build_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_tree_reindexed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
