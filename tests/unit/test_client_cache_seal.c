/* test_client_cache_seal.c - how the client cache keeps a record: sealed
 * once, its revision beside it (issue 17 point 2).
 *
 * Owns: checks of client/pullspan.c (each entry's record found in a packed
 * PullBatch, and refused when the walk does not fit) and of the records
 * values of client/cache.c on a temporary cache: a pulled record given as
 * received is sealed without being packed again and reads back equal with
 * its revision; a push's answer gives the local copy its revision without
 * one open, seal or pack (the operation counters); a cache written in the
 * old format (AES-256-GCM, the revision inside: POPSYNC_TEST_CACHE_FORMAT=1
 * writes it as the old code did) opens, reads and takes writes, each value
 * written again becoming the new format, as the raw LMDB values show.
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

#include "cache_fixture.h"
#include <lmdb.h>

#include "cache.h"
#include "err.h"
#include "ids.h"
#include "pullspan.h"
#include "record_fmt.h"
#include "wire.pb-c.h"

#define UNIT "110105001001"

static char g_dir[256];

static ps_cache_t *make_cache(void)
{
    return ps_tcache_make(g_dir, sizeof(g_dir), "seal");
}

static ps_cache_t *open_again(void)
{
    return ps_tcache_open(g_dir);
}

static ps_cache_t *reopen(ps_cache_t *c)
{
    ps_cache_close(c);
    return open_again();
}

static void remove_cache(void)
{
    ps_tcache_remove(g_dir);
}

static Popsync__Record *birth(const char *date)
{
    Popsync__Record *r = NULL;
    char err[256];
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_BIRTH), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    r->id.len = PS_ID_LEN;
    assert_int_equal(ps_uuid7(r->id.data), PS_OK);
    assert_int_equal(ps_record_set(r, "orgunit", UNIT, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "birth_date", date, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "child_sex", "female", err, sizeof(err)), PS_OK);
    return r;
}

/* A server revision for r (malloc'd, freed with r). */
static void give_rev(Popsync__Record *r, uint64_t gen, uint8_t node_byte)
{
    if (!r->rev) {
        r->rev = malloc(sizeof(*r->rev));
        popsync__rev__init(r->rev);
        r->rev->node.data = malloc(PS_ID_LEN);
        r->rev->node.len = PS_ID_LEN;
    }
    r->rev->gen = gen;
    r->rev->hlc = (uint64_t)1765000000000 << 16 | gen;
    memset(r->rev->node.data, node_byte, PS_ID_LEN);
}

/* A packed PullBatch of recs (NULL: a gone entry) into a new buffer. */
static uint8_t *pack_batch(Popsync__Record **recs, size_t n, size_t *len)
{
    Popsync__PullBatch pb = POPSYNC__PULL_BATCH__INIT;
    Popsync__FeedEntry fe[8], *fp[8];
    uint8_t *buf, gone_id[PS_ID_LEN] = {7};
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        popsync__feed_entry__init(&fe[i]);
        fe[i].seq = i + 1;
        fe[i].record = recs[i];
        if (!recs[i]) {
            fe[i].gone = 1;
            fe[i].id.data = gone_id;
            fe[i].id.len = PS_ID_LEN;
        }
        fp[i] = &fe[i];
    }
    pb.entries = fp;
    pb.n_entries = n;
    pb.cursor = n;
    *len = protobuf_c_message_get_packed_size(&pb.base);
    buf = malloc(*len);
    protobuf_c_message_pack(&pb.base, buf);
    return buf;
}

static void assert_same_packed(const Popsync__Record *a, const Popsync__Record *b)
{
    size_t na = protobuf_c_message_get_packed_size(&a->base), nb = protobuf_c_message_get_packed_size(&b->base);
    uint8_t *pa = malloc(na), *pb = malloc(nb);
    protobuf_c_message_pack(&a->base, pa);
    protobuf_c_message_pack(&b->base, pb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na);
    free(pa);
    free(pb);
}

/* The first byte of every value of db (at most max), read with LMDB
 * directly while the cache is closed; the count. */
static size_t value_formats(const char *db, uint8_t *fmt, size_t max)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, g_dir, MDB_RDONLY | MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0 && n < max)
        fmt[n++] = v.mv_size ? ((const uint8_t *)v.mv_data)[0] : 0xff;
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

static size_t count_format(const char *db, uint8_t want)
{
    uint8_t fmt[64];
    size_t n = value_formats(db, fmt, sizeof(fmt)), hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += fmt[i] == want;
    return hits;
}

/* ---- pullspan ------------------------------------------------------------------ */

static void test_spans(void **state)
{
    Popsync__Record *recs[3] = {birth("2026-03-01"), NULL, birth("2026-03-02")};
    ps_span_t sp[3];
    size_t len;
    uint8_t *body;
    (void)state;
    give_rev(recs[0], 2, 0xaa);
    body = pack_batch(recs, 3, &len);
    assert_int_equal(ps_pull_record_spans(body, len, 3, sp), PS_OK);
    for (size_t i = 0; i < 3; i += 2) {
        size_t n = protobuf_c_message_get_packed_size(&recs[i]->base);
        uint8_t *p = malloc(n);
        protobuf_c_message_pack(&recs[i]->base, p);
        assert_int_equal(sp[i].n, n);
        assert_memory_equal(sp[i].p, p, n);
        free(p);
    }
    assert_null(sp[1].p); /* the gone entry */
    /* A count that differs, a cut batch and a bad key are refused. */
    assert_int_equal(ps_pull_record_spans(body, len, 2, sp), PS_EPROTO);
    assert_int_equal(ps_pull_record_spans(body, len, 4, sp), PS_EPROTO);
    assert_int_equal(ps_pull_record_spans(body, len - 1, 3, sp), PS_EPROTO);
    body[0] = 0x0b; /* field 1, wire type 3 (a group) */
    assert_int_equal(ps_pull_record_spans(body, len, 3, sp), PS_EPROTO);
    free(body);
    {
        /* An entry whose record comes in two pieces (a decoder merges
         * them): no span, so the cache packs the merged record itself. */
        static const uint8_t two[] = {0x0a, 0x08, 0x12, 0x02, 0x08, 0x01, 0x12, 0x02, 0x10, 0x01};
        assert_int_equal(ps_pull_record_spans(two, sizeof(two), 1, sp), PS_OK);
        assert_null(sp[0].p);
    }
    ps_record_free(recs[0]);
    ps_record_free(recs[2]);
}

/* ---- the cache ----------------------------------------------------------------- */

static void test_pull_sealed_as_received(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__Record *recs[2] = {birth("2026-03-01"), birth("2026-03-05")}, *got = NULL;
    Popsync__PullBatch *pb;
    ps_cache_ops_t a, b;
    size_t len;
    uint8_t *body;
    (void)state;
    give_rev(recs[0], 3, 0x51);
    give_rev(recs[1], 1, 0x52);
    body = pack_batch(recs, 2, &len);
    pb = popsync__pull_batch__unpack(NULL, len, body);
    assert_non_null(pb);

    ps_cache_op_counts(c, &a);
    assert_int_equal(ps_cache_apply_pull_raw(c, pb, body, len), PS_OK);
    ps_cache_op_counts(c, &b);
    assert_int_equal(b.packs, a.packs); /* sealed as received */
    assert_true(b.seals >= a.seals + 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ps_cache_get(c, recs[i]->id.data, &got), PS_OK);
        assert_same_packed(got, recs[i]);
        ps_record_free(got);
    }
    /* Without the bytes each record is packed again. */
    ps_cache_op_counts(c, &a);
    assert_int_equal(ps_cache_apply_pull(c, pb), PS_OK);
    ps_cache_op_counts(c, &b);
    assert_int_equal(b.packs, a.packs + 2);

    /* Reopened: the same records, every value in the new format. */
    c = reopen(c);
    assert_int_equal(ps_cache_get(c, recs[1]->id.data, &got), PS_OK);
    assert_same_packed(got, recs[1]);
    ps_record_free(got);
    ps_cache_close(c);
    assert_int_equal(count_format("records", 0x10), 2);
    assert_int_equal(count_format("counters", 0x02), 1);
    assert_int_equal(count_format("records", 0x01) + count_format("counters", 0x01), 0);
    popsync__pull_batch__free_unpacked(pb, NULL);
    free(body);
    ps_record_free(recs[0]);
    ps_record_free(recs[1]);
    remove_cache();
}

/* Answers every change of p as ACCEPTED with revision gen 1 from the
 * server's node (0x5e...). */
static void ack_all(ps_cache_t *c, const Popsync__Push *p)
{
    Popsync__PushResult res = POPSYNC__PUSH_RESULT__INIT;
    Popsync__ChangeResult cr[8], *crp[8];
    Popsync__Rev rev[8];
    uint8_t node[PS_ID_LEN];
    memset(node, 0x5e, sizeof(node));
    assert_true(p->n_changes <= 8);
    for (size_t i = 0; i < p->n_changes; i++) {
        popsync__change_result__init(&cr[i]);
        popsync__rev__init(&rev[i]);
        rev[i].gen = (p->changes[i]->base_rev ? p->changes[i]->base_rev->gen : 0) + 1;
        rev[i].hlc = p->changes[i]->record->rev->hlc;
        rev[i].node.data = node;
        rev[i].node.len = PS_ID_LEN;
        cr[i].lcn = p->changes[i]->lcn;
        cr[i].status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED;
        cr[i].rev = &rev[i];
        cr[i].id = p->changes[i]->record->id;
        crp[i] = &cr[i];
    }
    res.results = crp;
    res.n_results = p->n_changes;
    assert_int_equal(ps_cache_outbox_ack(c, p, &res), PS_OK);
}

/* Pushes the whole outbox and acknowledges it; *ops gets what the ack did. */
static void push_and_ack(ps_cache_t *c, ps_cache_ops_t *ops)
{
    Popsync__Push *p = NULL;
    ps_cache_ops_t a, b;
    assert_int_equal(ps_cache_outbox_batch(c, 8, 1 << 20, &p), PS_OK);
    assert_true(p->n_changes > 0);
    ps_cache_op_counts(c, &a);
    ack_all(c, p);
    ps_cache_op_counts(c, &b);
    ops->seals = b.seals - a.seals;
    ops->opens = b.opens - a.opens;
    ops->packs = b.packs - a.packs;
    ps_cache_push_free(p);
}

static void assert_rev(ps_cache_t *c, const Popsync__Record *r, uint64_t gen)
{
    Popsync__Record *got = NULL;
    assert_int_equal(ps_cache_get(c, r->id.data, &got), PS_OK);
    if (gen == 0) {
        assert_null(got->rev);
    } else {
        uint8_t node[PS_ID_LEN];
        memset(node, 0x5e, sizeof(node));
        assert_non_null(got->rev);
        assert_int_equal(got->rev->gen, gen);
        assert_int_equal(got->rev->node.len, PS_ID_LEN);
        assert_memory_equal(got->rev->node.data, node, PS_ID_LEN);
    }
    assert_true(ps_record_same_content(got, r));
    ps_record_free(got);
}

/* Reads *r back from the cache, moves its birth date and stores the edit;
 * *r becomes the edited copy. */
static void edit(ps_cache_t *c, Popsync__Record **r, const char *date)
{
    Popsync__Record *got = NULL;
    char err[256];
    assert_int_equal(ps_cache_get(c, (*r)->id.data, &got), PS_OK);
    assert_int_equal(ps_record_set(got, "birth_date", date, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_cache_put_local(c, got), PS_OK);
    ps_record_free(*r);
    *r = got;
}

static void test_ack_writes_revision_only(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__Record *r[2] = {birth("2026-03-01"), birth("2026-03-09")};
    Popsync__Push *p = NULL;
    ps_cache_ops_t ops;
    (void)state;
    assert_int_equal(ps_cache_put_local_many(c, r, 2), PS_OK);
    assert_rev(c, r[0], 0);
    push_and_ack(c, &ops);
    /* The ack gave both copies their revision without opening, sealing or
     * packing either (the old code sealed each again). */
    assert_int_equal(ops.seals, 0);
    assert_int_equal(ops.opens, 0);
    assert_int_equal(ops.packs, 0);
    assert_rev(c, r[0], 1);
    assert_rev(c, r[1], 1);

    /* The next edit (made on the copy read back, as the CLI does) is based
     * on the revision the ack gave. */
    edit(c, &r[0], "2026-03-02");
    assert_int_equal(ps_cache_outbox_batch(c, 8, 1 << 20, &p), PS_OK);
    assert_int_equal(p->n_changes, 1);
    assert_non_null(p->changes[0]->base_rev);
    assert_int_equal(p->changes[0]->base_rev->gen, 1);
    ps_cache_push_free(p);
    push_and_ack(c, &ops);
    assert_int_equal(ops.seals + ops.opens + ops.packs, 0);
    c = reopen(c);
    assert_rev(c, r[0], 2);
    assert_rev(c, r[1], 1);
    ps_cache_close(c);
    ps_record_free(r[0]);
    ps_record_free(r[1]);
    remove_cache();
}

/* A cache of the old format: written as the old code wrote it, then read,
 * written and read again by the new. */
static void test_old_format_cache(void **state)
{
    ps_cache_t *c;
    Popsync__Record *r[3] = {birth("2026-03-01"), birth("2026-03-09"), birth("2026-03-12")}, *pulled = birth("2026-03-20");
    Popsync__Record *got = NULL, *one[1];
    Popsync__PullBatch *pb;
    ps_cache_ops_t ops;
    uint64_t checked, bad;
    size_t len;
    uint8_t *body;
    char err[256];
    (void)state;

    /* The old format: AES-256-GCM, revisions inside the sealed records. */
    setenv("POPSYNC_TEST_CACHE_FORMAT", "1", 1);
    c = make_cache();
    unsetenv("POPSYNC_TEST_CACHE_FORMAT");
    one[0] = r[0];
    assert_int_equal(ps_cache_put_local_many(c, one, 1), PS_OK);
    push_and_ack(c, &ops);
    assert_int_equal(ops.seals, 1); /* the old way: sealed again for its revision */
    assert_int_equal(ps_cache_put_local_many(c, r + 1, 2), PS_OK);
    give_rev(pulled, 4, 0x5e);
    body = pack_batch(&pulled, 1, &len);
    pb = popsync__pull_batch__unpack(NULL, len, body);
    assert_int_equal(ps_cache_apply_pull_raw(c, pb, body, len), PS_OK);
    ps_cache_close(c);
    assert_int_equal(count_format("records", 0x01), 4);
    assert_int_equal(count_format("outbox", 0x01), 2);
    assert_int_equal(count_format("meta", 0x02) + count_format("records", 0x10), 0);

    /* Opened by the new code: every record reads as written. */
    c = open_again();
    assert_string_equal(ps_cache_meta(c)->name, "clerk one");
    assert_rev(c, r[0], 1);
    assert_rev(c, r[1], 0);
    assert_int_equal(ps_cache_get(c, pulled->id.data, &got), PS_OK);
    assert_same_packed(got, pulled);
    ps_record_free(got);
    assert_int_equal(ps_cache_counters_check(c, &checked, &bad, err, sizeof(err)), PS_OK);
    assert_int_equal(bad, 0);

    /* Written: the old outbox entries push and settle; an edit and a
     * pulled update are stored in the new format. */
    push_and_ack(c, &ops);
    assert_rev(c, r[1], 1);
    assert_rev(c, r[2], 1);
    edit(c, &r[0], "2026-03-03");
    give_rev(pulled, 5, 0x5e);
    popsync__pull_batch__free_unpacked(pb, NULL);
    free(body);
    body = pack_batch(&pulled, 1, &len);
    pb = popsync__pull_batch__unpack(NULL, len, body);
    assert_int_equal(ps_cache_apply_pull_raw(c, pb, body, len), PS_OK);
    push_and_ack(c, &ops);
    assert_int_equal(ops.seals + ops.opens + ops.packs, 0); /* r[0] is format 2 now */
    c = reopen(c);
    assert_rev(c, r[0], 2);
    assert_rev(c, r[1], 1);
    assert_int_equal(ps_cache_get(c, pulled->id.data, &got), PS_OK);
    assert_same_packed(got, pulled);
    ps_record_free(got);
    assert_int_equal(ps_cache_counters_check(c, &checked, &bad, err, sizeof(err)), PS_OK);
    assert_int_equal(bad, 0);
    ps_cache_close(c);
    assert_int_equal(count_format("records", 0x10), 4);
    assert_int_equal(count_format("records", 0x01), 0);

    popsync__pull_batch__free_unpacked(pb, NULL);
    free(body);
    for (int i = 0; i < 3; i++)
        ps_record_free(r[i]);
    ps_record_free(pulled);
    remove_cache();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_spans), cmocka_unit_test(test_pull_sealed_as_received),
                                       cmocka_unit_test(test_ack_writes_revision_only),
                                       cmocka_unit_test(test_old_format_cache)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
