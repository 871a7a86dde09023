/* test_server_persist.c - what the apply path writes per change, and the
 * audit chain under both of its rules (server/store_versions.h,
 * server/audit_chain.h).
 *
 * Owns: checks on a temporary LMDB store, without a network, that
 *   - `versions` holds only superseded versions (the live one is in
 *     `records`), and every reader still finds every version: a merge on an
 *     old base, ps__version_get, ps__versions_each (also with an old data
 *     directory's copy of the live version);
 *   - a new record costs one put each in records, feed, audit (and answers,
 *     idnum), none in versions, and audit_head is written once per write
 *     transaction (mdb_put is wrapped: -Wl,--wrap=mdb_put, tests/CMakeLists.txt);
 *   - `audit verify` detects an altered, a removed and a reordered entry in
 *     a chain written now (one hash per transaction) and in one written by
 *     the old rule (one hash per entry, as before session 4) that goes on
 *     in the new one.
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
#include "audit_chain.h"
#include "crypto.h"
#include "err.h"
#include "ids.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "store_versions.h"

#define UNIT_A "130203001001"
#define TOWN_A "130203001000"

typedef struct fixture {
    char dir[256];
    ps_orgunits_t *units;
    ps_store_t *st;
} fixture_t;

static const uint8_t NODE_ADMIN[PS_ID_LEN] = {0xa1};
static const uint8_t NODE_A[PS_ID_LEN] = {0xa2};

/* ---- counting puts ------------------------------------------------------------- */

int __real_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags);

static struct {
    int on;
    MDB_dbi dbi[64];
    size_t n[64];
    size_t audit_head; /* meta puts of "audit_head" */
} g_puts;

int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags);
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags)
{
    if (g_puts.on && dbi < 64) {
        g_puts.n[dbi]++;
        if (key->mv_size == 10 && memcmp(key->mv_data, "audit_head", 10) == 0)
            g_puts.audit_head++;
    }
    return __real_mdb_put(txn, dbi, key, data, flags);
}

static void puts_start(void)
{
    memset(&g_puts, 0, sizeof(g_puts));
    g_puts.on = 1;
}

/* ---- fixtures ------------------------------------------------------------------ */


static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (!fx || ps_tstore_setup("ps_persist", fx->dir, sizeof(fx->dir), &fx->units, 32, &fx->st))
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    g_puts.on = 0;
    ps_tstore_remove(fx->dir, fx->units, fx->st);
    free(fx);
    return 0;
}

/* ---- building pushes --------------------------------------------------------------- */

static ps_peer_t admin_peer(void)
{
    return ps_tstore_peer(PS_ROLE_ADMIN, "130203000000", "district");
}

/* The ID number's sequence of a record id: the same for every version of
 * one record, different between records. */
static unsigned number_of(const uint8_t *id)
{
    static uint8_t ids[400][PS_ID_LEN];
    static unsigned n;
    for (unsigned i = 0; i < n; i++)
        if (!memcmp(ids[i], id, PS_ID_LEN))
            return i;
    assert_true(n < 400);
    memcpy(ids[n], id, PS_ID_LEN);
    return n++;
}

/* A person in UNIT_A with this id (random when id is NULL; copied to
 * id_out), named name, with phone (or none). */
static Popsync__Record *person(const uint8_t *id, const char *name, const char *phone, uint8_t *id_out)
{
    Popsync__Record *r = NULL;
    char err[256] = "", kv[128], idn[19];
    unsigned k;
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
    assert_int_equal(ps_record_set(r, "orgunit", UNIT_A, err, sizeof(err)), PS_OK);
    snprintf(kv, sizeof(kv), "name=%s", name);
    assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "sex=female", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "birth_date=1980-04-04", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "registration=local", err, sizeof(err)), PS_OK);
    if (phone) {
        snprintf(kv, sizeof(kv), "phone=%s", phone);
        assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
    }
    /* A valid ID number (a woman: even 17th digit), one per record id. */
    k = number_of(r->id.data);
    snprintf(idn, sizeof(idn), "13020319800404%02u%u", k % 100, 2 * (k / 100 % 5));
    idn[17] = ps_id_check_char(idn);
    idn[18] = '\0';
    snprintf(kv, sizeof(kv), "id_number=%s", idn);
    assert_int_equal(ps_record_set_kv(r, kv, err, sizeof(err)), PS_OK);
    return r;
}

/* A push of n changes from node, lcns from lcn, in one group commit; each
 * change's record and base generation given; results into res[]. */
static void apply_n(fixture_t *fx, const uint8_t *node, uint64_t lcn, Popsync__Record **recs, const uint64_t *base,
                    size_t n, ps_change_result_t *res)
{
    ps_push_job_t job;
    Popsync__Push push = POPSYNC__PUSH__INIT;
    Popsync__Change *ch = calloc(n, sizeof(*ch)), **chp = calloc(n, sizeof(*chp));
    Popsync__Rev *rev = calloc(n, sizeof(*rev));
    assert_non_null(ch);
    assert_non_null(chp);
    assert_non_null(rev);
    for (size_t i = 0; i < n; i++) {
        popsync__change__init(&ch[i]);
        popsync__rev__init(&rev[i]);
        ch[i].lcn = lcn + i;
        ch[i].record = recs[i];
        if (base[i]) {
            rev[i].gen = base[i];
            ch[i].base_rev = &rev[i];
        }
        chp[i] = &ch[i];
    }
    push.n_changes = n;
    push.changes = chp;
    memset(&job, 0, sizeof(job));
    job.peer = admin_peer();
    memcpy(job.node, node, PS_ID_LEN);
    job.push = &push;
    assert_int_equal(ps_store_apply(fx->st, &job), PS_OK);
    assert_int_equal(job.nresults, n);
    for (size_t i = 0; i < n; i++) {
        res[i] = job.results[i];
        ps_record_free(recs[i]);
    }
    ps_push_job_results_free(&job);
    free(ch);
    free(chp);
    free(rev);
}

static void apply1(fixture_t *fx, const uint8_t *node, uint64_t lcn, Popsync__Record *r, uint64_t base,
                   ps_change_result_t *res)
{
    apply_n(fx, node, lcn, &r, &base, 1, res);
}

/* ---- versions ------------------------------------------------------------------ */

static size_t db_entries(fixture_t *fx, MDB_dbi dbi)
{
    MDB_txn *txn;
    MDB_stat s;
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_stat(txn, dbi, &s), 0);
    mdb_txn_abort(txn);
    return s.ms_entries;
}

typedef struct seen {
    uint64_t gens[16];
    int live[16];
    char names[16][32];
    size_t n;
} seen_t;

static int seen_one(uint64_t gen, const uint8_t *rec, size_t len, int live, void *arg)
{
    seen_t *s = arg;
    Popsync__Record *r = popsync__record__unpack(NULL, len, rec);
    assert_non_null(r);
    assert_true(s->n < 16);
    assert_int_equal(r->rev->gen, gen);
    s->gens[s->n] = gen;
    s->live[s->n] = live;
    snprintf(s->names[s->n], sizeof(s->names[0]), "%s", r->person->name);
    s->n++;
    popsync__record__free_unpacked(r, NULL);
    return 0;
}

static void versions_of(fixture_t *fx, const uint8_t *id, seen_t *s)
{
    MDB_txn *txn;
    memset(s, 0, sizeof(*s));
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(ps__versions_each(txn, fx->st, id, seen_one, s), PS_OK);
    mdb_txn_abort(txn);
}

/* The name version gen of id has, as ps__version_get finds it ("" when none). */
static void version_name(fixture_t *fx, const uint8_t *id, uint64_t gen, char *out, size_t n)
{
    MDB_txn *txn;
    MDB_val v;
    out[0] = '\0';
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(ps__version_get(txn, fx->st, id, gen, &v), PS_OK);
    if (v.mv_data) {
        Popsync__Record *r = popsync__record__unpack(NULL, v.mv_size, v.mv_data);
        assert_non_null(r);
        snprintf(out, n, "%s", r->person->name);
        popsync__record__free_unpacked(r, NULL);
    }
    mdb_txn_abort(txn);
}

static void test_versions_superseded_only(void **state)
{
    fixture_t *fx = *state;
    ps_change_result_t res;
    uint8_t id[PS_ID_LEN];
    char name[32];
    seen_t s;

    apply1(fx, NODE_ADMIN, 1, person(NULL, "林一", NULL, id), 0, &res);
    assert_int_equal(res.status, PS_CHANGE_ACCEPTED);
    /* The live version is in records only. */
    assert_int_equal(db_entries(fx, fx->st->versions), 0);
    apply1(fx, NODE_ADMIN, 2, person(id, "林二", NULL, NULL), 1, &res);
    assert_int_equal(res.gen, 2);
    assert_int_equal(db_entries(fx, fx->st->versions), 1);
    apply1(fx, NODE_ADMIN, 3, person(id, "林三", NULL, NULL), 2, &res);
    assert_int_equal(res.gen, 3);
    assert_int_equal(db_entries(fx, fx->st->versions), 2);

    /* Every version is still found, each once, the live one last. */
    versions_of(fx, id, &s);
    assert_int_equal(s.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(s.gens[i], i + 1);
    assert_string_equal(s.names[0], "林一");
    assert_string_equal(s.names[2], "林三");
    assert_false(s.live[1]);
    assert_true(s.live[2]);
    version_name(fx, id, 1, name, sizeof(name));
    assert_string_equal(name, "林一");
    version_name(fx, id, 3, name, sizeof(name));
    assert_string_equal(name, "林三");
    version_name(fx, id, 4, name, sizeof(name));
    assert_string_equal(name, "");

    /* A merge on the first version finds its base among the superseded
     * ones: another cache's phone edit on gen 1 joins the name of gen 3. */
    apply1(fx, NODE_A, 1, person(id, "林一", "13912345678", NULL), 1, &res);
    assert_int_equal(res.status, PS_CHANGE_ACCEPTED);
    assert_int_equal(res.gen, 4);
    assert_false(res.has_conflict);
    versions_of(fx, id, &s);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.names[3], "林三");
    assert_int_equal(db_entries(fx, fx->st->versions), 3);
}

/* A data directory written before session 4 also holds the live version in
 * `versions`: it is given once, and replacing it still works. */
static void test_versions_old_layout(void **state)
{
    fixture_t *fx = *state;
    ps_change_result_t res;
    uint8_t id[PS_ID_LEN], key[PS_ID_LEN + 8];
    MDB_txn *txn;
    MDB_val k = {PS_ID_LEN, id}, v, vk = {sizeof(key), key};
    seen_t s;

    apply1(fx, NODE_ADMIN, 1, person(NULL, "周一", NULL, id), 0, &res);
    apply1(fx, NODE_ADMIN, 2, person(id, "周二", NULL, NULL), 1, &res);
    /* As the old writer did: the live version copied into versions. */
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_get(txn, fx->st->records, &k, &v), 0);
    memcpy(key, id, PS_ID_LEN);
    ps_be64put(key + PS_ID_LEN, 2);
    v.mv_data = (uint8_t *)v.mv_data + REC_HDR;
    v.mv_size -= REC_HDR;
    assert_int_equal(__real_mdb_put(txn, fx->st->versions, &vk, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    assert_int_equal(db_entries(fx, fx->st->versions), 2);

    versions_of(fx, id, &s);
    assert_int_equal(s.n, 2);
    assert_true(s.live[1]);
    apply1(fx, NODE_ADMIN, 3, person(id, "周三", NULL, NULL), 2, &res);
    assert_int_equal(res.gen, 3);
    versions_of(fx, id, &s);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.names[1], "周二");
    assert_string_equal(s.names[2], "周三");
}

/* What one push of new records, then one of their edits, writes. */
static void test_puts_per_record(void **state)
{
    fixture_t *fx = *state;
    enum { N = 20 };
    Popsync__Record *recs[N];
    uint64_t base[N];
    ps_change_result_t res[N];
    uint8_t ids[N][PS_ID_LEN];
    char name[32];

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "何%d", i);
        recs[i] = person(NULL, name, NULL, ids[i]);
        base[i] = 0;
    }
    puts_start();
    apply_n(fx, NODE_ADMIN, 1, recs, base, N, res);
    g_puts.on = 0;
    for (int i = 0; i < N; i++)
        assert_int_equal(res[i].status, PS_CHANGE_ACCEPTED);
    assert_int_equal(g_puts.n[fx->st->records], N);
    assert_int_equal(g_puts.n[fx->st->feed], N);
    assert_int_equal(g_puts.n[fx->st->audit], N);
    assert_int_equal(g_puts.n[fx->st->versions], 0); /* the live version is in records only */
    assert_int_equal(g_puts.audit_head, 1);          /* once per write transaction */
    assert_int_equal(g_puts.n[fx->st->meta], 2);     /* the feed head and the audit head */

    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "何%d改", i);
        recs[i] = person(ids[i], name, NULL, NULL);
        base[i] = 1;
    }
    puts_start();
    apply_n(fx, NODE_ADMIN, N + 1, recs, base, N, res);
    g_puts.on = 0;
    for (int i = 0; i < N; i++)
        assert_int_equal(res[i].gen, 2);
    assert_int_equal(g_puts.n[fx->st->records], N);
    assert_int_equal(g_puts.n[fx->st->versions], N); /* each superseded version, once */
    assert_int_equal(g_puts.n[fx->st->audit], N);
    assert_int_equal(g_puts.audit_head, 1);
}

/* ---- the audit chain --------------------------------------------------------------- */

/* Three write transactions of 4, 3 and 2 new records. */
static void three_batches(fixture_t *fx, uint64_t *lcn)
{
    static const size_t sizes[] = {4, 3, 2};
    for (size_t b = 0; b < 3; b++) {
        Popsync__Record *recs[4];
        uint64_t base[4] = {0};
        ps_change_result_t res[4];
        char name[32];
        for (size_t i = 0; i < sizes[b]; i++) {
            snprintf(name, sizeof(name), "吴%zu%zu", b, i);
            recs[i] = person(NULL, name, NULL, NULL);
        }
        apply_n(fx, NODE_ADMIN, *lcn, recs, base, sizes[b], res);
        *lcn += sizes[b];
    }
}

static uint64_t verify_ok(fixture_t *fx)
{
    uint64_t n = 0;
    char err[512] = "";
    if (ps_store_audit_verify(fx->st, &n, err, sizeof(err)) != PS_OK)
        fail_msg("audit verify: %s", err);
    return n;
}

/* Verify must fail, saying want. */
static void verify_broken(fixture_t *fx, const char *want)
{
    uint64_t n = 0;
    char err[512] = "";
    assert_int_equal(ps_store_audit_verify(fx->st, &n, err, sizeof(err)), PS_EPROTO);
    if (!strstr(err, want))
        fail_msg("expected \"%s\" in: %s", want, err);
}

/* Saves entry n's value in saved (to put back) and applies one damage. */
enum damage { ALTER, REMOVE, PUT_BACK };

static void poke(fixture_t *fx, uint64_t n, enum damage d, ps_buf_t *saved)
{
    uint8_t key[8];
    MDB_val k = {8, key}, v;
    MDB_txn *txn;
    ps_be64put(key, n);
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
    if (d == PUT_BACK) {
        v.mv_size = ps_buf_size(saved);
        v.mv_data = ps_buf_head(saved);
        assert_int_equal(__real_mdb_put(txn, fx->st->audit, &k, &v, 0), 0);
    } else {
        assert_int_equal(mdb_get(txn, fx->st->audit, &k, &v), 0);
        ps_buf_reset(saved);
        assert_int_equal(ps_buf_append(saved, v.mv_data, v.mv_size), PS_OK);
        if (d == REMOVE) {
            assert_int_equal(mdb_del(txn, fx->st->audit, &k, NULL), 0);
        } else {
            /* The certificate's name, one letter changed: still a valid entry. */
            Popsync__AuditEntry *e = popsync__audit_entry__unpack(NULL, v.mv_size, v.mv_data);
            uint8_t buf[1024];
            assert_non_null(e);
            e->cert_name[0] ^= 0x01;
            v.mv_size = popsync__audit_entry__pack(e, buf);
            v.mv_data = buf;
            assert_int_equal(__real_mdb_put(txn, fx->st->audit, &k, &v, 0), 0);
            popsync__audit_entry__free_unpacked(e, NULL);
        }
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
}

/* Exchanges entries a and b and renumbers them to fit their new places
 * (the numbering alone then looks right), or puts them back (undo). */
static void reorder(fixture_t *fx, uint64_t a, uint64_t b)
{
    uint8_t ka[8], kb[8], bufa[1024], bufb[1024];
    MDB_val k1 = {8, ka}, k2 = {8, kb}, v;
    Popsync__AuditEntry *ea, *eb;
    MDB_txn *txn;
    size_t la, lb;
    ps_be64put(ka, a);
    ps_be64put(kb, b);
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_get(txn, fx->st->audit, &k1, &v), 0);
    assert_non_null(ea = popsync__audit_entry__unpack(NULL, v.mv_size, v.mv_data));
    assert_int_equal(mdb_get(txn, fx->st->audit, &k2, &v), 0);
    assert_non_null(eb = popsync__audit_entry__unpack(NULL, v.mv_size, v.mv_data));
    ea->n = b;
    eb->n = a;
    la = popsync__audit_entry__pack(ea, bufa);
    lb = popsync__audit_entry__pack(eb, bufb);
    v.mv_size = lb;
    v.mv_data = bufb;
    assert_int_equal(__real_mdb_put(txn, fx->st->audit, &k1, &v, 0), 0);
    v.mv_size = la;
    v.mv_data = bufa;
    assert_int_equal(__real_mdb_put(txn, fx->st->audit, &k2, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    popsync__audit_entry__free_unpacked(ea, NULL);
    popsync__audit_entry__free_unpacked(eb, NULL);
}

/* The damages every chain must show: first in the middle
 * (entry mid and mid + 1: altered, removed, exchanged and renumbered),
 * then the newest (last: altered, removed). */
static void damage_all(fixture_t *fx, uint64_t mid, const char *mid_says, const char *swap_says, uint64_t last)
{
    ps_buf_t saved;
    ps_buf_init(&saved);
    poke(fx, mid, ALTER, &saved);
    verify_broken(fx, mid_says);
    poke(fx, mid, PUT_BACK, &saved);
    verify_ok(fx);

    poke(fx, mid, REMOVE, &saved);
    verify_broken(fx, "missing");
    poke(fx, mid, PUT_BACK, &saved);
    verify_ok(fx);

    reorder(fx, mid, mid + 1);
    verify_broken(fx, swap_says);
    reorder(fx, mid, mid + 1); /* back */
    verify_ok(fx);

    poke(fx, last, ALTER, &saved);
    verify_broken(fx, "with another hash");
    poke(fx, last, PUT_BACK, &saved);
    poke(fx, last, REMOVE, &saved);
    verify_broken(fx, "head names entry");
    poke(fx, last, PUT_BACK, &saved);
    assert_int_equal(verify_ok(fx), last);
    ps_buf_free(&saved);
}

static void test_audit_chain_new(void **state)
{
    fixture_t *fx = *state;
    uint64_t lcn = 1;
    three_batches(fx, &lcn);
    assert_int_equal(verify_ok(fx), 9);
    /* Entries 5..7 are the second transaction: 6 and 7 carry no link. */
    damage_all(fx, 6, "entries 5 to 7 (one write transaction) do not match the hash entry 8 carries",
               "entries 5 to 7 (one write transaction) do not match the hash entry 8 carries", 9);
    /* Dropping a transaction's first entry's link (a batch joined to the one
     * before) is an alteration too. */
    {
        ps_buf_t saved;
        uint8_t key[8], buf[1024];
        MDB_val k = {8, key}, v;
        MDB_txn *txn;
        Popsync__AuditEntry *e;
        ps_buf_init(&saved);
        ps_be64put(key, 5);
        assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
        assert_int_equal(mdb_get(txn, fx->st->audit, &k, &v), 0);
        assert_int_equal(ps_buf_append(&saved, v.mv_data, v.mv_size), PS_OK);
        assert_non_null(e = popsync__audit_entry__unpack(NULL, v.mv_size, v.mv_data));
        assert_int_equal(e->prev_hash.len, 32);
        e->prev_hash.len = 0;
        v.mv_size = popsync__audit_entry__pack(e, buf);
        v.mv_data = buf;
        assert_int_equal(__real_mdb_put(txn, fx->st->audit, &k, &v, 0), 0);
        assert_int_equal(mdb_txn_commit(txn), 0);
        popsync__audit_entry__free_unpacked(e, NULL);
        verify_broken(fx, "entries 1 to 7 (one write transaction) do not match the hash entry 8 carries");
        poke(fx, 5, PUT_BACK, &saved);
        verify_ok(fx);
        ps_buf_free(&saved);
    }
}

/* The writer of a log before session 4: every entry carries the SHA-256 of
 * the one before, and the head is rewritten for each. */
static void old_append(fixture_t *fx, MDB_txn *txn, uint64_t n, uint8_t prev[32])
{
    Popsync__AuditEntry e = POPSYNC__AUDIT_ENTRY__INIT;
    uint8_t key[8], buf[1024], head[40], rid[PS_ID_LEN];
    MDB_val k = {8, key}, v, hk = {10, "audit_head"};
    size_t len;
    assert_int_equal(ps_uuid7(rid), PS_OK);
    e.n = n;
    e.time_ms = 1700000000000ULL + n;
    e.cert_name = "district";
    e.cert_role = "admin";
    e.cert_orgunit = "130203000000";
    e.cert_serial = "01";
    e.record_id.data = rid;
    e.record_id.len = PS_ID_LEN;
    e.kind = POPSYNC__KIND__KIND_PERSON;
    e.gen = 1;
    e.seq = n;
    e.action = "create";
    e.orgunit = UNIT_A;
    e.prev_hash.data = prev;
    e.prev_hash.len = 32;
    len = popsync__audit_entry__pack(&e, buf);
    ps_be64put(key, n);
    v.mv_size = len;
    v.mv_data = buf;
    assert_int_equal(__real_mdb_put(txn, fx->st->audit, &k, &v, MDB_APPEND), 0);
    assert_int_equal(ps_sha256(buf, len, prev), PS_OK);
    ps_be64put(head, n);
    memcpy(head + 8, prev, 32);
    v.mv_size = sizeof(head);
    v.mv_data = head;
    assert_int_equal(__real_mdb_put(txn, fx->st->meta, &hk, &v, 0), 0);
}

static void test_audit_chain_old_then_new(void **state)
{
    fixture_t *fx = *state;
    uint8_t prev[32] = {0};
    uint64_t lcn = 1;
    MDB_txn *txn;

    /* Six entries by the old rule, as an old data directory has them. */
    assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
    for (uint64_t n = 1; n <= 6; n++)
        old_append(fx, txn, n, prev);
    assert_int_equal(mdb_txn_commit(txn), 0);
    assert_int_equal(verify_ok(fx), 6);
    /* In the old part: entry 3 altered is told by entry 4. */
    damage_all(fx, 3, "entry 4 does not follow from entry 3", "entry 3 does not follow from entry 2", 6);

    /* The server goes on in the new rule: 6 old + 9 new entries verify. */
    three_batches(fx, &lcn);
    assert_int_equal(verify_ok(fx), 15);
    damage_all(fx, 3, "entry 4 does not follow from entry 3", "entry 3 does not follow from entry 2", 15);
    /* The first new entry names the old chain's last hash. */
    damage_all(fx, 12, "entries 11 to 13 (one write transaction) do not match the hash entry 14 carries",
               "entries 11 to 13 (one write transaction) do not match the hash entry 14 carries", 15);
    /* An old entry cannot follow new ones, nor a new entry claim the old rule. */
    {
        ps_buf_t saved;
        uint8_t key[8], buf[1024];
        MDB_val k = {8, key}, v;
        Popsync__AuditEntry *e;
        ps_buf_init(&saved);
        ps_be64put(key, 12);
        assert_int_equal(mdb_txn_begin(fx->st->env, NULL, 0, &txn), 0);
        assert_int_equal(mdb_get(txn, fx->st->audit, &k, &v), 0);
        assert_int_equal(ps_buf_append(&saved, v.mv_data, v.mv_size), PS_OK);
        assert_non_null(e = popsync__audit_entry__unpack(NULL, v.mv_size, v.mv_data));
        e->chain = 0;
        v.mv_size = popsync__audit_entry__pack(e, buf);
        v.mv_data = buf;
        assert_int_equal(__real_mdb_put(txn, fx->st->audit, &k, &v, 0), 0);
        assert_int_equal(mdb_txn_commit(txn), 0);
        popsync__audit_entry__free_unpacked(e, NULL);
        verify_broken(fx, "entry 12 is chained the old way after entries chained the new way");
        poke(fx, 12, PUT_BACK, &saved);
        assert_int_equal(verify_ok(fx), 15);
        ps_buf_free(&saved);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_versions_superseded_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_versions_old_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_puts_per_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_chain_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_chain_old_then_new, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
