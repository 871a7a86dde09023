/* test_server_pullcache.c - unit tests of the kept PullBatch frames
 * (server/pullcache.c) on a temporary LMDB store.
 *
 * Owns: checks that two readers of one scope pulling the same range get
 * the same frame (the second from the cache), that every frame the cache
 * gives is byte for byte what a fresh read gives (after new records, a
 * tombstone, a record handed to another township: each write drops what
 * was kept), that scopes never share a frame, and that a full cache keeps
 * nothing more yet answers right.
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
#include "frame.h"
#include "ids.h"
#include "orgunit.h"
#include "pullcache.h"
#include "record_fmt.h"

#define DISTRICT "130203000000"
#define TOWN_A "130203001000"
#define UNIT_A "130203001001"
#define TOWN_B "130203002000"
#define UNIT_B "130203002001"

typedef struct fixture {
    char dir[256];
    ps_orgunits_t *units;
    ps_store_t *st;
    ps_pullcache_t *pc;
    uint64_t lcn;
} fixture_t;

static const uint8_t NODE_ADMIN[PS_ID_LEN] = {0xa1};


static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (!fx || ps_tstore_setup("ps_pullcache", fx->dir, sizeof(fx->dir), &fx->units, 32, &fx->st))
        return -1;
    if (ps_pullcache_new(&fx->pc, (size_t)1 << 20) != PS_OK)
        return -1;
    fx->lcn = 1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    ps_pullcache_free(fx->pc);
    ps_tstore_remove(fx->dir, fx->units, fx->st);
    free(fx);
    return 0;
}

static ps_peer_t peer(ps_role_t role, const char *unit, const char *name)
{
    return ps_tstore_peer(role, unit, name);
}

/* A person in unit (born on day of April 1980; the ID number from the id). */
static Popsync__Record *person(const uint8_t *id, const char *unit, int day, uint8_t *id_out)
{
    Popsync__Record *r = NULL;
    char err[256] = "", kv[64], idn[32];
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_PERSON), PS_OK);
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
    assert_int_equal(ps_record_set_kv(r, "name=钱芳芳", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "sex=female", err, sizeof(err)), PS_OK);
    snprintf(kv, sizeof(kv), "birth_date=1980-04-%02d", day);
    assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "registration=local", err, sizeof(err)), PS_OK);
    snprintf(idn, sizeof(idn), "130203198004%02d%02u2", day % 100, (unsigned)(r->id.data[15] % 100));
    idn[17] = ps_id_check_char(idn);
    idn[18] = '\0';
    snprintf(kv, sizeof(kv), "id_number=%s", idn);
    assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
    return r;
}

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
    job.peer = peer(PS_ROLE_ADMIN, DISTRICT, "district");
    memcpy(job.node, NODE_ADMIN, PS_ID_LEN);
    job.push = &push;
    assert_int_equal(ps_store_apply(fx->st, &job), PS_OK);
    assert_int_equal(job.nresults, 1);
    assert_int_equal(job.results[0].status, PS_CHANGE_ACCEPTED);
    ps_push_job_results_free(&job);
    ps_record_free(r);
}

/* One Pull's frame (with request id rid) from pc (NULL: a fresh read). */
static void pull(fixture_t *fx, ps_pullcache_t *pc, const ps_peer_t *p, uint64_t cursor, uint32_t max_records,
                 int compress, uint32_t rid, ps_buf_t *out, ps_pull_end_t *end)
{
    ps_buf_init(out);
    assert_int_equal(ps_pull_cached(pc, fx->st, p, cursor, max_records, 1 << 24, NULL, 0, compress, rid, out, end), PS_OK);
    assert_true(ps_buf_size(out) > PS_FRAME_HDR);
}

/* The frame from the cache is the fresh read's, request id included. */
static void same_as_fresh(fixture_t *fx, const ps_peer_t *p, uint64_t cursor, uint32_t max_records, int compress)
{
    ps_buf_t a, b;
    ps_pull_end_t ea, eb;
    pull(fx, fx->pc, p, cursor, max_records, compress, 7, &a, &ea);
    pull(fx, NULL, p, cursor, max_records, compress, 7, &b, &eb);
    assert_int_equal(ps_buf_size(&a), ps_buf_size(&b));
    assert_memory_equal(ps_buf_head(&a), ps_buf_head(&b), ps_buf_size(&a));
    assert_memory_equal(&ea, &eb, sizeof(ea));
    ps_buf_free(&a);
    ps_buf_free(&b);
}

static uint64_t hits(fixture_t *fx)
{
    ps_pullcache_stats_t s;
    ps_pullcache_stats(fx->pc, &s);
    return s.hits;
}

static void fill(fixture_t *fx, int n, uint8_t *first_b)
{
    for (int i = 0; i < n; i++) {
        put(fx, person(NULL, UNIT_A, i + 1, NULL), 0);
        put(fx, person(NULL, UNIT_B, i + 15, i == 0 ? first_b : NULL), 0);
    }
}

/* Two clerks of township A pull the same ranges: the second is given the
 * frames kept for the first, with its own request ids. */
static void test_two_readers_same_bytes(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t a1 = peer(PS_ROLE_TOWNSHIP, TOWN_A, "clerk-1"), a2 = peer(PS_ROLE_TOWNSHIP, TOWN_A, "clerk-2");
    ps_buf_t x, y;
    ps_pull_end_t ex, ey;
    uint64_t cursor = 0, h0;

    fill(fx, 12, NULL);
    for (int batch = 0, more = 1; more; batch++) {
        for (int compress = 0; compress < 2; compress++) {
            h0 = hits(fx);
            pull(fx, fx->pc, &a1, cursor, 5, compress, 100 + (uint32_t)batch, &x, &ex);
            assert_int_equal(hits(fx), h0);
            pull(fx, fx->pc, &a2, cursor, 5, compress, 200 + (uint32_t)batch, &y, &ey);
            assert_int_equal(hits(fx), h0 + 1);
            assert_int_equal(ps_buf_size(&x), ps_buf_size(&y));
            /* Everything but the request id (bytes 8-11 of the header). */
            assert_memory_equal(ps_buf_head(&x), ps_buf_head(&y), 8);
            assert_memory_equal(ps_buf_head(&x) + PS_FRAME_HDR, ps_buf_head(&y) + PS_FRAME_HDR,
                                ps_buf_size(&x) - PS_FRAME_HDR);
            assert_int_equal(ps_buf_head(&y)[11], (uint8_t)(200 + batch));
            assert_memory_equal(&ex, &ey, sizeof(ex));
            ps_buf_free(&x);
            ps_buf_free(&y);
        }
        cursor = ex.cursor;
        more = ex.more;
        assert_true(batch < 10);
    }
    same_as_fresh(fx, &a2, 0, 5, 1);
}

/* Every write drops what was kept: new records, a tombstone, a hand-over
 * to another township.  Each answer equals a fresh read. */
static void test_write_invalidates(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t a = peer(PS_ROLE_TOWNSHIP, TOWN_A, "clerk-a"), b = peer(PS_ROLE_TOWNSHIP, TOWN_B, "clerk-b");
    ps_peer_t admin = peer(PS_ROLE_ADMIN, DISTRICT, "district");
    Popsync__Record *del;
    uint8_t bid[PS_ID_LEN];
    uint64_t h0;

    fill(fx, 4, bid);
    same_as_fresh(fx, &b, 0, 100, 1);
    h0 = hits(fx);
    same_as_fresh(fx, &b, 0, 100, 1);
    assert_int_equal(hits(fx), h0 + 1);
    /* A new record of B. */
    put(fx, person(NULL, UNIT_B, 20, NULL), 0);
    h0 = hits(fx);
    same_as_fresh(fx, &b, 0, 100, 1);
    assert_int_equal(hits(fx), h0);
    /* A tombstone. */
    del = person(bid, UNIT_B, 15, NULL);
    del->deleted = 1;
    put(fx, del, 1);
    same_as_fresh(fx, &b, 0, 100, 1);
    same_as_fresh(fx, &admin, 0, 100, 0);
    assert_int_equal(hits(fx), h0);
    /* Restored and handed to township A: B gets the exit, A the record. */
    put(fx, person(bid, UNIT_A, 15, NULL), 2);
    same_as_fresh(fx, &b, 0, 100, 1);
    same_as_fresh(fx, &a, 0, 100, 1);
    assert_int_equal(hits(fx), h0);
    same_as_fresh(fx, &b, 0, 100, 1);
    assert_int_equal(hits(fx), h0 + 1);
}

/* Townships, a collector, an admin at one cursor and head: never each
 * other's frame. */
static void test_scopes_apart(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t who[] = {peer(PS_ROLE_TOWNSHIP, TOWN_A, "a"), peer(PS_ROLE_TOWNSHIP, TOWN_B, "b"),
                       peer(PS_ROLE_COLLECTOR, UNIT_B, "c"), peer(PS_ROLE_ADMIN, DISTRICT, "d"),
                       peer(PS_ROLE_ADMIN, TOWN_A, "e")};
    fill(fx, 3, NULL);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof(who) / sizeof(who[0]); i++)
            same_as_fresh(fx, &who[i], 0, 100, 1);
    /* The two admins share (an admin reads everything whatever its unit):
     * one hit in the first round, all five in the second. */
    assert_int_equal(hits(fx), 1 + 5);
}

/* A cache too small for a frame keeps nothing and still answers. */
static void test_full_keeps_nothing(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t a = peer(PS_ROLE_TOWNSHIP, TOWN_A, "a");
    ps_pullcache_stats_t s;
    ps_pullcache_free(fx->pc);
    assert_int_equal(ps_pullcache_new(&fx->pc, 64), PS_OK);
    fill(fx, 3, NULL);
    same_as_fresh(fx, &a, 0, 100, 0);
    same_as_fresh(fx, &a, 0, 100, 0);
    ps_pullcache_stats(fx->pc, &s);
    assert_int_equal(s.hits, 0);
    assert_int_equal(s.entries, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_readers_same_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_invalidates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scopes_apart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_keeps_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
