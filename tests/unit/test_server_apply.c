/* test_server_apply.c - unit tests of the apply path's stages (server/apply.h).
 *
 * Owns: checks of each stage of one pushed change on a temporary LMDB
 * store, without a network: dedupe (a resend answered with the seq and rev
 * it got), authorise (a record that left the sender's scope is kept as a
 * conflict; a unit outside the scope is refused; the other place of a
 * migration may set only its dates), validate (a bad field
 * refused by name, nothing stored), stamp (HLC re-timed by the cache's
 * clock error and clamped to our clock), merge (field merge, conflict kept,
 * an edit to what stands writes nothing) and persist (feed, counters and
 * audit agree with the records: counters equal a recount).
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
#include "orgunit.h"
#include "record_fmt.h"
#include "validate.h"

#define TOWN_A "130203001000"
#define UNIT_A "130203001001"
#define TOWN_B "130203002000"
#define UNIT_B "130203002001"

typedef struct fixture {
    char dir[256];
    ps_orgunits_t *units;
    ps_store_t *st;
} fixture_t;

static const uint8_t NODE_ADMIN[PS_ID_LEN] = {0xa1};
static const uint8_t NODE_A[PS_ID_LEN] = {0xa2};
static const uint8_t NODE_A2[PS_ID_LEN] = {0xa3};
static const uint8_t NODE_B[PS_ID_LEN] = {0xb1};

/* ---- fixtures ------------------------------------------------------------------ */


static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (!fx || ps_tstore_setup("ps_apply", fx->dir, sizeof(fx->dir), &fx->units, 32, &fx->st))
        return -1;
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

/* ---- building pushes --------------------------------------------------------------- */

static ps_peer_t peer(ps_role_t role, const char *unit, const char *name)
{
    return ps_tstore_peer(role, unit, name);
}

/* A person in unit with this id (random when id is NULL; copied to id_out). */
static Popsync__Record *person(const uint8_t *id, const char *unit, const char *name, const char *birth,
                               uint8_t *id_out)
{
    Popsync__Record *r = NULL;
    char err[256] = "", kv[128];
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
    snprintf(kv, sizeof(kv), "name=%s", name);
    assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "sex=female", err, sizeof(err)), PS_OK);
    snprintf(kv, sizeof(kv), "birth_date=%s", birth);
    assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "registration=local", err, sizeof(err)), PS_OK);
    /* A valid ID number for the birth date (a woman: even 17th digit). */
    {
        char idn[19];
        /* The sequence digits come from the record id: an edit keeps its
         * number, two records of one birth date rarely share one. */
        snprintf(idn, sizeof(idn), "130203%.4s%.2s%.2s%02u2", birth, birth + 5, birth + 8,
                 (unsigned)(r->id.data[15] % 100));
        idn[17] = ps_id_check_char(idn);
        idn[18] = '\0';
        snprintf(kv, sizeof(kv), "id_number=%s", idn);
        assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
    }
    return r;
}

/* A job of one change (lcn, record, based on gen; the job owns record). */
typedef struct one_push {
    ps_push_job_t job;
    Popsync__Push push;
    Popsync__Change ch, *chp;
    Popsync__Rev base;
} one_push_t;

static void one_push(one_push_t *p, const ps_peer_t *pr, const uint8_t *node, uint64_t lcn, Popsync__Record *r,
                     uint64_t base_gen)
{
    memset(p, 0, sizeof(*p));
    popsync__push__init(&p->push);
    popsync__change__init(&p->ch);
    popsync__rev__init(&p->base);
    p->ch.lcn = lcn;
    p->ch.record = r;
    if (base_gen) {
        p->base.gen = base_gen;
        p->ch.base_rev = &p->base;
    }
    p->chp = &p->ch;
    p->push.n_changes = 1;
    p->push.changes = &p->chp;
    p->job.peer = *pr;
    memcpy(p->job.node, node, PS_ID_LEN);
    p->job.push = &p->push;
}

static void one_push_free(one_push_t *p)
{
    ps_record_free(p->ch.record);
    ps_push_job_results_free(&p->job);
}

/* Field errors of the results apply1 hands out (a result's own errors are
 * freed with its job): a few slots, reused in turn. */
static struct ps_change_field_error g_errors[8][PS_CHANGE_ERRORS_MAX];
static size_t g_errors_next;

/* Applies one change in its own group commit; its result into *res. */
static void apply1(fixture_t *fx, const ps_peer_t *pr, const uint8_t *node, uint64_t lcn, Popsync__Record *r,
                   uint64_t base_gen, ps_change_result_t *res)
{
    one_push_t p;
    one_push(&p, pr, node, lcn, r, base_gen);
    assert_int_equal(ps_store_apply(fx->st, &p.job), PS_OK);
    assert_int_equal(p.job.refused, 0);
    assert_int_equal(p.job.nresults, 1);
    *res = p.job.results[0];
    /* Only a rejected change carries field errors, in storage of its own. */
    assert_true((res->status == PS_CHANGE_REJECTED) == (res->errors != NULL));
    if (res->errors) {
        struct ps_change_field_error *e = g_errors[g_errors_next++ % 8];
        memcpy(e, res->errors, sizeof(g_errors[0]));
        res->errors = e;
    }
    for (size_t i = 0; getenv("PS_TEST_VERBOSE") && i < res->nerrors; i++)
        fprintf(stderr, "refused: %s: %s\n", res->errors[i].field, res->errors[i].reason);
    one_push_free(&p);
}

static int has_error(const ps_change_result_t *r, const char *field)
{
    for (size_t i = 0; i < r->nerrors; i++)
        if (!strcmp(r->errors[i].field, field))
            return 1;
    return 0;
}

/* ---- dedupe ---------------------------------------------------------------------- */

static void test_dedupe(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    ps_change_result_t first, again;
    ps_apply_txn_t a;
    ps_apply_change_t x;
    one_push_t p;
    ps_change_result_t res;

    apply1(fx, &admin, NODE_ADMIN, 1, person(NULL, UNIT_A, "王秀英", "1990-03-15", NULL), 0, &first);
    assert_int_equal(first.status, PS_CHANGE_ACCEPTED);
    assert_true(first.seq > 0);
    assert_int_equal(first.gen, 1);

    /* The resend (the same change under the same lcn) is told what it got. */
    one_push(&p, &admin, NODE_ADMIN, 1, person(first.id, UNIT_A, "王秀英", "1990-03-15", NULL), 0);
    assert_int_equal(ps_apply_begin(&a, fx->st), PS_OK);
    ps_apply_change_init(&x, &p.job, &p.ch, &res);
    assert_int_equal(ps_apply_dedupe(&a, &x), PS_APPLY_SETTLED);
    assert_int_equal(x.duplicate, 1);
    assert_int_equal(res.status, PS_CHANGE_DUPLICATE);
    ps_apply_change_free(&x);

    /* lcn 0 is no change number: refused by field, never taken for a resend. */
    p.ch.lcn = 0;
    ps_apply_change_init(&x, &p.job, &p.ch, &res);
    assert_int_equal(ps_apply_dedupe(&a, &x), PS_APPLY_SETTLED);
    assert_int_equal(res.status, PS_CHANGE_REJECTED);
    assert_true(has_error(&res, "lcn"));
    ps_change_result_clear(&res);
    ps_apply_change_free(&x);

    /* A new lcn goes on to the next stage. */
    p.ch.lcn = 2;
    ps_apply_change_init(&x, &p.job, &p.ch, &res);
    assert_int_equal(ps_apply_dedupe(&a, &x), PS_APPLY_NEXT);
    ps_apply_change_free(&x);
    ps_apply_abort(&a);
    one_push_free(&p);

    /* Through the whole path: DUPLICATE with the stored seq and rev. */
    apply1(fx, &admin, NODE_ADMIN, 1, person(first.id, UNIT_A, "王秀英", "1990-03-15", NULL), 0, &again);
    assert_int_equal(again.status, PS_CHANGE_DUPLICATE);
    assert_int_equal(again.seq, first.seq);
    assert_int_equal(again.gen, first.gen);
    assert_int_equal(again.hlc, first.hlc);
    assert_int_equal(ps_store_head(fx->st), first.seq);
}

/* The digest remembered with an acceptance is the first 8 bytes of SHA-256
 * of the change as packed (apply.c change_digest): popsyncd computes it
 * with libcrypto now, older ones with mbedTLS, and the answers an older
 * popsyncd left in a store must still compare with a resend. */
static void test_answer_digest(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    ps_change_result_t first;
    uint8_t key[PS_ID_LEN + 9], want[32], *packed;
    MDB_val k = {sizeof(key), key}, v;
    MDB_txn *txn;
    one_push_t p;
    size_t n;

    apply1(fx, &admin, NODE_ADMIN, 7, person(NULL, UNIT_A, "李娜", "1985-11-02", NULL), 0, &first);
    assert_int_equal(first.status, PS_CHANGE_ACCEPTED);
    one_push(&p, &admin, NODE_ADMIN, 7, person(first.id, UNIT_A, "李娜", "1985-11-02", NULL), 0);
    n = protobuf_c_message_get_packed_size(&p.ch.base);
    assert_non_null(packed = malloc(n));
    protobuf_c_message_pack(&p.ch.base, packed);
    assert_int_equal(ps_sha256(packed, n, want), PS_OK); /* mbedTLS, as before */
    free(packed);

    /* The Push's block of answers (apply.c): key node | last lcn | 'B',
     * entries lcn(8) | digest(8) | length(2) | result. */
    memcpy(key, NODE_ADMIN, PS_ID_LEN);
    memset(key + PS_ID_LEN, 0, 8);
    key[PS_ID_LEN + 7] = 7;
    key[PS_ID_LEN + 8] = 'B';
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_get(txn, fx->st->answers, &k, &v), 0);
    assert_true(v.mv_size > 18);
    assert_int_equal(((uint8_t *)v.mv_data)[7], 7);
    assert_memory_equal((uint8_t *)v.mv_data + 8, want, 8);
    mdb_txn_abort(txn);
    one_push_free(&p);
}

/* A job of n changes, lcns first..first+n-1, persons of names[i] (the job
 * owns the records). */
typedef struct many_push {
    ps_push_job_t job;
    Popsync__Push push;
    Popsync__Change ch[4], *chp[4];
} many_push_t;

static void many_push(many_push_t *p, const ps_peer_t *pr, const uint8_t *node, uint64_t first, size_t n,
                      Popsync__Record **recs)
{
    memset(p, 0, sizeof(*p));
    popsync__push__init(&p->push);
    for (size_t i = 0; i < n; i++) {
        popsync__change__init(&p->ch[i]);
        p->ch[i].lcn = first + i;
        p->ch[i].record = recs[i];
        p->chp[i] = &p->ch[i];
    }
    p->push.n_changes = n;
    p->push.changes = p->chp;
    p->job.peer = *pr;
    memcpy(p->job.node, node, PS_ID_LEN);
    p->job.push = &p->push;
}

static void many_push_free(many_push_t *p)
{
    for (size_t i = 0; i < p->push.n_changes; i++)
        ps_record_free(p->ch[i].record);
    ps_push_job_results_free(&p->job);
}

/* The remembered answers, one block per Push: a resend is told what each
 * change got, a different change under an answered lcn is a copy, and the
 * floor still hides what the client has acknowledged (a block straddling
 * it keeps those answers, which must not count). */
static void test_answer_blocks(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    uint8_t ids[3][PS_ID_LEN];
    ps_change_result_t got[3];
    Popsync__Record *r[3];
    many_push_t p;

    r[0] = person(NULL, UNIT_A, "赵敏", "1991-01-01", ids[0]);
    r[1] = person(NULL, UNIT_A, "钱芳", "1992-02-02", ids[1]);
    r[2] = person(NULL, UNIT_A, "孙丽", "1993-03-03", ids[2]);
    many_push(&p, &admin, NODE_A, 1, 3, r);
    assert_int_equal(ps_store_apply(fx->st, &p.job), PS_OK);
    assert_int_equal(p.job.accepted, 3);
    memcpy(got, p.job.results, sizeof(got));
    many_push_free(&p);

    /* The resend of 2 and 3 (the reply was lost): DUPLICATE, as first answered. */
    r[0] = person(ids[1], UNIT_A, "钱芳", "1992-02-02", NULL);
    r[1] = person(ids[2], UNIT_A, "孙丽", "1993-03-03", NULL);
    many_push(&p, &admin, NODE_A, 2, 2, r);
    assert_int_equal(ps_store_apply(fx->st, &p.job), PS_OK);
    assert_int_equal(p.job.refused, 0);
    assert_int_equal(p.job.duplicate, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(p.job.results[i].status, PS_CHANGE_DUPLICATE);
        assert_int_equal(p.job.results[i].seq, got[i + 1].seq);
        assert_int_equal(p.job.results[i].hlc, got[i + 1].hlc);
    }
    many_push_free(&p);

    /* Another change under lcn 3: the cache is a copy; nothing applied. */
    r[0] = person(ids[2], UNIT_A, "孙丽", "1993-03-04", NULL);
    many_push(&p, &admin, NODE_A, 3, 1, r);
    assert_int_equal(ps_store_apply(fx->st, &p.job), PS_OK);
    assert_int_equal(p.job.refused, PS_ESTALE);
    many_push_free(&p);

    /* That Push started at 2: lcn 1 lies below the floor now, though its
     * block (1..3) is kept for 2 and 3; sent again it is a copy's. */
    r[0] = person(ids[0], UNIT_A, "赵敏", "1991-01-01", NULL);
    many_push(&p, &admin, NODE_A, 1, 1, r);
    assert_int_equal(ps_store_apply(fx->st, &p.job), PS_OK);
    assert_int_equal(p.job.refused, PS_ESTALE);
    many_push_free(&p);
}

/* Answers a popsyncd before the blocks left, one entry per change under
 * node | lcn, are still told to a resend, and pruned by the next Push. */
static void test_answer_old_entries(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    uint8_t bkey[PS_ID_LEN + 9], okey[PS_ID_LEN + 8], id[PS_ID_LEN], val[512];
    MDB_val k = {sizeof(bkey), bkey}, v;
    ps_change_result_t first, again;
    MDB_txn *txn;
    size_t len;

    apply1(fx, &admin, NODE_B, 1, person(NULL, UNIT_A, "周洁", "1988-08-08", id), 0, &first);
    assert_int_equal(first.status, PS_CHANGE_ACCEPTED);
    /* Its block becomes an entry of the old form: digest | result. */
    memcpy(bkey, NODE_B, PS_ID_LEN);
    memset(bkey + PS_ID_LEN, 0, 8);
    bkey[PS_ID_LEN + 7] = 1;
    bkey[PS_ID_LEN + 8] = 'B';
    memcpy(okey, bkey, sizeof(okey));
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_get(txn, fx->st->answers, &k, &v), 0);
    len = v.mv_size - 18;
    assert_true(len + 8 <= sizeof(val));
    memcpy(val, (uint8_t *)v.mv_data + 8, 8);
    memcpy(val + 8, (uint8_t *)v.mv_data + 18, len);
    assert_int_equal(mdb_del(txn, fx->st->answers, &k, NULL), 0);
    k.mv_size = sizeof(okey);
    k.mv_data = okey;
    v.mv_size = 8 + len;
    v.mv_data = val;
    assert_int_equal(mdb_put(txn, fx->st->answers, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);

    apply1(fx, &admin, NODE_B, 1, person(id, UNIT_A, "周洁", "1988-08-08", NULL), 0, &again);
    assert_int_equal(again.status, PS_CHANGE_DUPLICATE);
    assert_int_equal(again.seq, first.seq);
    assert_int_equal(again.hlc, first.hlc);

    /* The next Push starts at 2: the old entry goes, as a block would. */
    apply1(fx, &admin, NODE_B, 2, person(NULL, UNIT_A, "吴静", "1987-07-07", NULL), 0, &again);
    assert_int_equal(again.status, PS_CHANGE_ACCEPTED);
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, MDB_RDONLY, &txn), 0);
    k.mv_size = sizeof(okey);
    k.mv_data = okey;
    assert_int_equal(mdb_get(txn, fx->st->answers, &k, &v), MDB_NOTFOUND);
    mdb_txn_abort(txn);
}

/* ---- authorise ---------------------------------------------------------------------- */

static void test_authorise_moved_away(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    ps_peer_t town_a = peer(PS_ROLE_TOWNSHIP, TOWN_A, "town-a");
    ps_change_result_t made, moved, late;
    ps_apply_txn_t a;
    ps_apply_change_t x;
    ps_change_result_t res;
    one_push_t p;
    uint8_t id[PS_ID_LEN];
    uint64_t open_c, total_c;

    apply1(fx, &town_a, NODE_A, 1, person(NULL, UNIT_A, "李娜", "1985-06-01", id), 0, &made);
    assert_int_equal(made.status, PS_CHANGE_ACCEPTED);
    /* The district hands the record over to township B. */
    apply1(fx, &admin, NODE_ADMIN, 1, person(id, UNIT_B, "李娜", "1985-06-01", NULL), 1, &moved);
    assert_int_equal(moved.status, PS_CHANGE_ACCEPTED);
    assert_int_equal(moved.gen, 2);

    /* Township A's edit made before it heard: authorised to be kept, not applied. */
    one_push(&p, &town_a, NODE_A, 2, person(id, UNIT_A, "李娜娜", "1985-06-01", NULL), 1);
    assert_int_equal(ps_apply_begin(&a, fx->st), PS_OK);
    ps_apply_change_init(&x, &p.job, &p.ch, &res);
    assert_int_equal(ps_apply_dedupe(&a, &x), PS_APPLY_NEXT);
    assert_int_equal(ps_apply_authorise(&a, &x), PS_APPLY_NEXT);
    assert_non_null(x.cur);
    assert_int_equal(x.verdict, PS_APPLY_MOVED_AWAY);
    ps_apply_change_free(&x);
    ps_apply_abort(&a);
    one_push_free(&p);

    apply1(fx, &town_a, NODE_A, 2, person(id, UNIT_A, "李娜娜", "1985-06-01", NULL), 1, &late);
    assert_int_equal(late.status, PS_CHANGE_CONFLICT);
    assert_true(late.has_conflict);
    assert_int_equal(ps_store_conflict_count(fx->st, &open_c, &total_c), PS_OK);
    assert_int_equal(open_c, 1);
}

static void test_authorise_unit_refused(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t town_a = peer(PS_ROLE_TOWNSHIP, TOWN_A, "town-a");
    ps_change_result_t res;
    uint64_t live, total;

    /* A township creating a record in another township's unit. */
    apply1(fx, &town_a, NODE_A, 1, person(NULL, UNIT_B, "张伟", "1970-01-20", NULL), 0, &res);
    assert_int_equal(res.status, PS_CHANGE_REJECTED);
    assert_true(has_error(&res, "orgunit"));
    assert_int_equal(ps_store_count(fx->st, &live, &total), PS_OK);
    assert_int_equal(total, 0);
}

static void test_authorise_hidden(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t town_a = peer(PS_ROLE_TOWNSHIP, TOWN_A, "town-a");
    ps_peer_t town_b = peer(PS_ROLE_TOWNSHIP, TOWN_B, "town-b");
    ps_change_result_t made;
    ps_apply_txn_t a;
    ps_apply_change_t x;
    ps_change_result_t res;
    one_push_t p;
    uint8_t id[PS_ID_LEN];

    apply1(fx, &town_a, NODE_A, 1, person(NULL, UNIT_A, "刘洋", "1992-11-30", id), 0, &made);
    /* Township B never held it: the record is judged as absent for B. */
    one_push(&p, &town_b, NODE_B, 1, person(id, UNIT_A, "刘洋", "1992-11-30", NULL), 1);
    assert_int_equal(ps_apply_begin(&a, fx->st), PS_OK);
    ps_apply_change_init(&x, &p.job, &p.ch, &res);
    assert_int_equal(ps_apply_authorise(&a, &x), PS_APPLY_NEXT);
    assert_null(x.cur);
    assert_int_equal(x.hidden, 1);
    assert_int_equal(ps_apply_validate(&a, &x), PS_APPLY_SETTLED);
    assert_int_equal(res.status, PS_CHANGE_REJECTED);
    ps_change_result_clear(&res);
    ps_apply_change_free(&x);
    ps_apply_abort(&a);
    one_push_free(&p);
}

/* A migration of person pid, registered in UNIT_A, with township B as its
 * other place; extra is one more field=value (or NULL). */
static Popsync__Record *migration(const uint8_t *id, const uint8_t *pid, const char *extra, uint8_t *id_out)
{
    Popsync__Record *r = NULL;
    char err[256] = "", kv[128], u[PS_UUID_STR];
    const char *kvs[] = {"direction=outflow", "other_place_code=" UNIT_B, "other_place=文化里社区",
                         "start_date=2025-03-01", "employer=钢城钢铁集团", extra};
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_MIGRATION), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    assert_non_null(r->id.data);
    if (id)
        memcpy(r->id.data, id, PS_ID_LEN);
    else
        assert_int_equal(ps_uuid7(r->id.data), PS_OK);
    r->id.len = PS_ID_LEN;
    if (id_out)
        memcpy(id_out, r->id.data, PS_ID_LEN);
    assert_int_equal(ps_record_set(r, "orgunit", UNIT_A, err, sizeof(err)), PS_OK);
    ps_uuid_format(pid, u);
    snprintf(kv, sizeof(kv), "person_id=%s", u);
    assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
    for (size_t i = 0; i < sizeof(kvs) / sizeof(kvs[0]) && kvs[i]; i++)
        if (ps_record_set_kv(r, kvs[i], err, sizeof(err)) != PS_OK)
            fail_msg("%s: %s", kvs[i], err);
    return r;
}

static void test_authorise_other_place(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    ps_peer_t town_b = peer(PS_ROLE_TOWNSHIP, TOWN_B, "town-b");
    ps_change_result_t res;
    ps_apply_txn_t a;
    ps_apply_change_t x;
    one_push_t p;
    uint8_t pid[PS_ID_LEN], mid[PS_ID_LEN];

    apply1(fx, &admin, NODE_ADMIN, 1, person(NULL, UNIT_A, "吴磊", "1990-07-07", pid), 0, &res);
    assert_int_equal(res.status, PS_CHANGE_ACCEPTED);
    apply1(fx, &admin, NODE_ADMIN, 2, migration(NULL, pid, NULL, mid), 0, &res);
    assert_int_equal(res.status, PS_CHANGE_ACCEPTED);

    /* The other place may not change the employer: refused at authorise, by field. */
    one_push(&p, &town_b, NODE_B, 1, migration(mid, pid, "employer=别的公司", NULL), 1);
    assert_int_equal(ps_apply_begin(&a, fx->st), PS_OK);
    ps_apply_change_init(&x, &p.job, &p.ch, &res);
    assert_int_equal(ps_apply_authorise(&a, &x), PS_APPLY_SETTLED);
    assert_int_equal(res.status, PS_CHANGE_REJECTED);
    assert_true(has_error(&res, "employer"));
    ps_change_result_clear(&res);
    ps_apply_change_free(&x);
    ps_apply_abort(&a);
    one_push_free(&p);

    /* ... but may set the date it received it. */
    apply1(fx, &town_b, NODE_B, 1, migration(mid, pid, "submitted_date=2025-03-05", NULL), 1, &res);
    assert_int_equal(res.status, PS_CHANGE_ACCEPTED);
    assert_int_equal(res.gen, 2);
}

/* ---- validate ---------------------------------------------------------------------- */

static void test_validate_refused_with_field(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    ps_change_result_t res, bad_kind, made;
    uint64_t live, total;
    Popsync__Record *r;
    uint8_t id[PS_ID_LEN];

    apply1(fx, &admin, NODE_ADMIN, 1, person(NULL, UNIT_A, "赵敏", "2031-02-30", NULL), 0, &res);
    assert_int_equal(res.status, PS_CHANGE_REJECTED);
    assert_true(has_error(&res, "birth_date"));
    assert_int_equal(ps_store_count(fx->st, &live, &total), PS_OK);
    assert_int_equal(total, 0);

    /* An existing record's kind cannot change. */
    apply1(fx, &admin, NODE_ADMIN, 2, person(NULL, UNIT_A, "赵敏", "1980-02-28", id), 0, &made);
    assert_int_equal(made.status, PS_CHANGE_ACCEPTED);
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_HOUSEHOLD), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    assert_non_null(r->id.data);
    memcpy(r->id.data, id, PS_ID_LEN);
    r->id.len = PS_ID_LEN;
    r->orgunit = strdup(UNIT_A);
    apply1(fx, &admin, NODE_ADMIN, 3, r, 1, &bad_kind);
    assert_int_equal(bad_kind.status, PS_CHANGE_REJECTED);
    assert_true(has_error(&bad_kind, "kind"));

    /* The refusal is remembered: its resend is answered the same. */
    r = NULL;
    apply1(fx, &admin, NODE_ADMIN, 1, person(NULL, UNIT_A, "赵敏", "2031-02-30", NULL), 0, &res);
    assert_int_equal(res.status, PS_CHANGE_REJECTED);
    assert_true(has_error(&res, "birth_date"));
}

/* ---- stamp -------------------------------------------------------------------------- */

static uint64_t stamp(fixture_t *fx, uint64_t hlc, uint64_t clock_ms, int64_t skew_ms)
{
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    Popsync__Rev rev = POPSYNC__REV__INIT;
    ps_apply_txn_t a;
    ps_apply_change_t x;
    ps_change_result_t res;
    one_push_t p;
    uint64_t out;

    one_push(&p, &admin, NODE_ADMIN, 1, person(NULL, UNIT_A, "周杰", "1979-01-18", NULL), 0);
    rev.hlc = hlc;
    p.ch.record->rev = &rev;
    p.job.clock_ms = clock_ms;
    p.job.clock_skew_ms = skew_ms;
    assert_int_equal(ps_apply_begin(&a, fx->st), PS_OK);
    ps_apply_change_init(&x, &p.job, &p.ch, &res);
    assert_int_equal(ps_apply_stamp(&a, &x), PS_APPLY_NEXT);
    out = x.hlc;
    assert_int_equal(x.mine_rev.hlc, out);
    ps_apply_change_free(&x);
    ps_apply_abort(&a);
    p.ch.record->rev = NULL;
    one_push_free(&p);
    return out;
}

static void test_stamp(void **state)
{
    fixture_t *fx = *state;
    uint64_t now = ps_now_ms(), hour = 3600000, got;

    /* An edit made a minute ago on a right clock keeps its time. */
    got = stamp(fx, (now - 60000) << 16 | 5, now, 0);
    assert_int_equal(got, (now - 60000) << 16 | 5);
    /* A cache an hour fast: its edit is moved back by the error. */
    got = stamp(fx, (now + hour - 60000) << 16, now + hour, (int64_t)hour);
    assert_true(PS_HLC_MS(got) >= now - 60000 - 5000 && PS_HLC_MS(got) <= now - 60000 + 5000);
    /* A time after our clock is never kept: clamped to now. */
    got = stamp(fx, (now + 24 * hour) << 16, 0, 0);
    assert_true(PS_HLC_MS(got) >= now && PS_HLC_MS(got) <= ps_now_ms() + 1000);
    /* No time at all: now. */
    got = stamp(fx, 0, 0, 0);
    assert_true(PS_HLC_MS(got) >= now && PS_HLC_MS(got) <= ps_now_ms() + 1000);
}

/* ---- merge ---------------------------------------------------------------------------- */

static void test_merge_and_conflict(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t town_a = peer(PS_ROLE_TOWNSHIP, TOWN_A, "town-a");
    ps_change_result_t made, e1, e2, e3, same;
    ps_store_msg_t cl;
    uint8_t id[PS_ID_LEN];
    uint64_t head;

    apply1(fx, &town_a, NODE_A, 1, person(NULL, UNIT_A, "陈静", "1988-08-08", id), 0, &made);
    /* Two caches edit the same version: one the name, one the birth date. */
    apply1(fx, &town_a, NODE_A, 2, person(id, UNIT_A, "陈晶", "1988-08-08", NULL), 1, &e1);
    assert_int_equal(e1.status, PS_CHANGE_ACCEPTED);
    assert_int_equal(e1.gen, 2);
    assert_false(e1.has_conflict);
    apply1(fx, &town_a, NODE_A2, 1, person(id, UNIT_A, "陈静", "1988-08-18", NULL), 1, &e2);
    assert_int_equal(e2.status, PS_CHANGE_ACCEPTED);
    assert_int_equal(e2.gen, 3);
    assert_false(e2.has_conflict); /* different fields merge */
    /* A third edit of the name on the old base: both changed it, kept as a conflict. */
    apply1(fx, &town_a, NODE_A2, 2, person(id, UNIT_A, "陈菁", "1988-08-08", NULL), 1, &e3);
    assert_true(e3.has_conflict);
    assert_int_equal(ps_store_conflicts(fx->st, &town_a, NODE_A2, 0, 0, &cl), PS_OK);
    assert_int_equal(((Popsync__ConflictListResult *)cl.msg)->n_conflicts, 1);
    ps_store_msg_free(&cl);

    /* An edit to what stands writes nothing: the stored rev and seq. */
    head = ps_store_head(fx->st);
    {
        ps_store_msg_t q;
        Popsync__Query query = POPSYNC__QUERY__INIT;
        char err[256];
        Popsync__Record *cur;
        query.kind = POPSYNC__KIND__KIND_PERSON;
        query.list = 1;
        assert_int_equal(ps_store_query(fx->st, &town_a, &query, &q, err, sizeof(err)), PS_OK);
        assert_int_equal(((Popsync__QueryResult *)q.msg)->n_records, 1);
        cur = ((Popsync__QueryResult *)q.msg)->records[0];
        apply1(fx, &town_a, NODE_A, 3, person(id, UNIT_A, cur->person->name, cur->person->birth_date, NULL),
               cur->rev->gen, &same);
        assert_int_equal(same.status, PS_CHANGE_ACCEPTED);
        assert_int_equal(same.gen, cur->rev->gen);
        ps_store_msg_free(&q);
    }
    assert_int_equal(ps_store_head(fx->st), head);
}

/* ---- persist ------------------------------------------------------------------------ */

static int count_entry(void *arg, const ps_pull_item_t *it)
{
    size_t *n = arg;
    (void)it;
    (*n)++;
    return 0;
}

static void test_persist_consistent(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    ps_change_result_t res;
    uint8_t ids[6][PS_ID_LEN];
    uint64_t checked, mismatched, entries, lcn = 1;
    ps_pull_end_t end;
    size_t fed = 0;
    char err[256] = "";
    Popsync__Record *del;

    for (int i = 0; i < 6; i++) {
        char birth[16];
        snprintf(birth, sizeof(birth), "1975-05-%02d", i + 1);
        apply1(fx, &admin, NODE_ADMIN, lcn++, person(NULL, i % 2 ? UNIT_A : UNIT_B, "孙丽", birth, ids[i]), 0,
               &res);
        assert_int_equal(res.status, PS_CHANGE_ACCEPTED);
    }
    /* Move one, delete one: counters move by the difference. */
    apply1(fx, &admin, NODE_ADMIN, lcn++, person(ids[0], UNIT_A, "孙丽", "1975-05-01", NULL), 1, &res);
    assert_int_equal(res.status, PS_CHANGE_ACCEPTED);
    del = person(ids[1], UNIT_A, "孙丽", "1975-05-02", NULL);
    del->deleted = 1;
    apply1(fx, &admin, NODE_ADMIN, lcn++, del, 1, &res);
    assert_int_equal(res.status, PS_CHANGE_ACCEPTED);
    assert_int_equal(res.seq, ps_store_head(fx->st));

    assert_int_equal(ps_store_counters_check(fx->st, &checked, &mismatched, err, sizeof(err)), PS_OK);
    assert_true(checked > 0);
    if (mismatched)
        fail_msg("counters differ from a recount: %s", err);
    /* One audit entry per change written, in an unbroken chain. */
    assert_int_equal(ps_store_audit_verify(fx->st, &entries, err, sizeof(err)), PS_OK);
    assert_int_equal(entries, 8);
    /* The feed holds each record once, at its latest change (tombstone included). */
    assert_int_equal(ps_store_pull(fx->st, &admin, 0, 1000, 1 << 20, count_entry, &fed, &end), PS_OK);
    assert_int_equal(fed, 6);
    assert_int_equal(end.cursor, ps_store_head(fx->st));
    assert_int_equal(end.more, 0);
}

/* A second live person with a registered ID number is refused at persist,
 * with nothing written. */
static void test_persist_idnum(void **state)
{
    fixture_t *fx = *state;
    ps_peer_t admin = peer(PS_ROLE_ADMIN, "130203000000", "district");
    ps_change_result_t first, second;
    Popsync__Record *r;
    char err[256] = "", idn[32];
    uint64_t head;

    r = person(NULL, UNIT_A, "郑爽", "1991-09-09", NULL);
    snprintf(idn, sizeof(idn), "%s", r->person->id_number);
    apply1(fx, &admin, NODE_ADMIN, 1, r, 0, &first);
    assert_int_equal(first.status, PS_CHANGE_ACCEPTED);
    head = ps_store_head(fx->st);
    r = person(NULL, UNIT_B, "郑爽", "1991-09-09", NULL);
    assert_int_equal(ps_record_set(r, "id_number", idn, err, sizeof(err)), PS_OK);
    apply1(fx, &admin, NODE_ADMIN, 2, r, 0, &second);
    assert_int_equal(second.status, PS_CHANGE_REJECTED);
    assert_true(has_error(&second, "id_number"));
    /* The reason reaches the clerk whole, what to do included. */
    assert_non_null(strstr(second.errors[0].reason, "correct the ID number"));
    assert_int_equal(ps_store_head(fx->st), head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dedupe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_old_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorise_moved_away, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorise_unit_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorise_hidden, setup, teardown),
        cmocka_unit_test_setup_teardown(test_authorise_other_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validate_refused_with_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_and_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persist_consistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persist_idnum, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
