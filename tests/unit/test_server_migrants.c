/* test_server_migrants.c - unit tests for server/store_migrants.c on two
 * temporary LMDB stores, district A (110105) and district B (110108)
 * (issue 19 point 2, docs/upstream.md §7): a case A sends to B's unit is
 * stored at its revision and a second delivery is SAME; a case for nobody
 * of B's, or sent by a district that does not own it, is IGNORED; B's
 * feedback (a descendant of A's version) is stored in A as it came, and
 * any other change from B is REFUSED naming the field; concurrent edits in
 * A and B are merged by each into byte-identical versions with one
 * revision, and each then drops the other's copy (no echo); every foreign
 * write has its audit entry (the sending district, action foreign_*) in
 * the chain, which `popsyncd audit verify` still finds intact; a shared
 * case's feed entry names the districts its copies are addressed to: its
 * unit's, its other place's and every earlier other place's.
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

#include "err.h"
#include "ids.h"
#include "orgunit.h"
#include "records.pb-c.h"
#include "store.h"
#include "store_migrants.h"
#include "store_upstream.h"
#include "tls.h"
#include "wire.pb-c.h"

#define DA "110105000000"
#define DB "110108000000"
#define UA "110105001000"
#define UB "110108001000"
#define T0 ((uint64_t)1700000000000 << 16)

static char g_dir[2][256];
static ps_orgunits_t *g_units[2];
static ps_store_t *g_st[2];

static int setup(void **state)
{
    static const char *csv[2] = {"code,parent,name,kind\n" DA ",,A,district\n" UA "," DA ",a,subdistrict\n",
                                 "code,parent,name,kind\n" DB ",,B,district\n" UB "," DB ",b,subdistrict\n"};
    char err[256];
    (void)state;
    for (int i = 0; i < 2; i++) {
        ps_store_opts_t so;
        snprintf(g_dir[i], sizeof(g_dir[i]), "%s/ps-migrants-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        assert_non_null(mkdtemp(g_dir[i]));
        assert_int_equal(ps_orgunits_parse((const uint8_t *)csv[i], strlen(csv[i]), &g_units[i], err, sizeof(err)),
                         PS_OK);
        memset(&so, 0, sizeof(so));
        so.map_size = (size_t)64 << 20;
        so.units = g_units[i];
        assert_int_equal(ps_store_open(&g_st[i], g_dir[i], &so, err, sizeof(err)), PS_OK);
    }
    return 0;
}

static int teardown(void **state)
{
    char cmd[600];
    (void)state;
    for (int i = 0; i < 2; i++) {
        ps_store_close(g_st[i]);
        ps_orgunits_free(g_units[i]);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", g_dir[0], g_dir[1]);
    return system(cmd) == 0 ? 0 : -1;
}

static uint8_t g_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static uint8_t g_person[16] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
static uint8_t g_node_a[16] = {0xa};
static uint8_t g_node_b[16] = {0xb};

typedef struct mig {
    uint64_t gen, hlc;
    const uint8_t *node;
    const char *unit, *other, *employer, *submitted, *feedback;
} mig_t;

/* A packed migration (case g_id) as described. */
static size_t migration(uint8_t *out, const mig_t *d)
{
    Popsync__Record r = POPSYNC__RECORD__INIT;
    Popsync__Rev rev = POPSYNC__REV__INIT;
    Popsync__Migration m = POPSYNC__MIGRATION__INIT;
    r.id.data = g_id;
    r.id.len = 16;
    r.kind = POPSYNC__KIND__KIND_MIGRATION;
    r.orgunit = (char *)d->unit;
    rev.gen = d->gen;
    rev.hlc = d->hlc;
    rev.node.data = (uint8_t *)d->node;
    rev.node.len = 16;
    r.rev = &rev;
    m.person_id.data = g_person;
    m.person_id.len = 16;
    m.direction = POPSYNC__DIRECTION__DIRECTION_OUTFLOW;
    m.other_place_code = (char *)d->other;
    m.start_date = "2024-03-01";
    m.employer = (char *)(d->employer ? d->employer : "");
    m.submitted_date = (char *)(d->submitted ? d->submitted : "");
    m.feedback_date = (char *)(d->feedback ? d->feedback : "");
    r.body_case = POPSYNC__RECORD__BODY_MIGRATION;
    r.migration = &m;
    return popsync__record__pack(&r, out);
}

static ps_foreign_outcome_t apply1(int st, const char *from, const uint8_t *data, size_t len, const char *lineage,
                                   char *why)
{
    ps_foreign_item_t it;
    memset(&it, 0, sizeof(it));
    it.data = data;
    it.len = len;
    snprintf(it.district, sizeof(it.district), "%s", from);
    it.lineage = lineage;
    assert_int_equal(ps_store_foreign_apply(g_st[st], st == 0 ? DA : DB, &it, 1), PS_OK);
    if (why)
        snprintf(why, 320, "%s", it.why);
    return it.outcome;
}

/* A district's own version of the case, written as its apply path would. */
static void own(int st, uint64_t seq, const uint8_t *data, size_t len)
{
    ps_rebuild_item_t it = {seq, 0, data, len, NULL};
    size_t bad = 0;
    assert_int_equal(ps_store_rebuild_put(g_st[st], &it, 1, &bad), PS_OK);
    assert_int_equal(bad, 0);
}

typedef struct got {
    uint8_t rec[4096];
    size_t len;
} got_t;

static int find_case(const ps_feed_item_t *it, void *arg)
{
    got_t *g = arg;
    if (!it->exit && it->len <= sizeof(g->rec) && it->kind == POPSYNC__KIND__KIND_MIGRATION) {
        memcpy(g->rec, it->packed, it->len);
        g->len = it->len;
    }
    return 0;
}

/* The stored case of store st, packed. */
static void stored(int st, got_t *g)
{
    uint64_t head = 0;
    g->len = 0;
    assert_int_equal(ps_store_feed_read(g_st[st], 0, 1000, find_case, g, &head, NULL), PS_OK);
    assert_true(g->len > 0);
}

static void lineage_of(const mig_t *d, char *out, size_t n)
{
    char node[33];
    ps_hex(d->node, 16, node);
    snprintf(out, n, "%llx.%llx.%s", (unsigned long long)d->gen, (unsigned long long)d->hlc, node);
}

static void test_case_reaches_other_district(void **state)
{
    uint8_t v1[512], v3[512];
    mig_t d1 = {1, T0, g_node_a, UA, UB, "x", NULL, NULL};
    mig_t d3 = {1, T0, g_node_a, UA, "110108002000", "x", NULL, NULL};
    size_t n1 = migration(v1, &d1), n3;
    char why[320];
    (void)state;
    own(0, 1, v1, n1);
    assert_int_equal(apply1(1, DA, v1, n1, NULL, why), PS_FOREIGN_STORED);
    assert_int_equal(apply1(1, DA, v1, n1, NULL, why), PS_FOREIGN_SAME);
    /* Our own district's copy (a republication) is no one else's business. */
    assert_int_equal(apply1(0, DB, v1, n1, NULL, why), PS_FOREIGN_SAME);
    /* Sent by a district that does not own its unit: not taken. */
    assert_int_equal(apply1(1, "110109000000", v1, n1, NULL, why), PS_FOREIGN_IGNORED);
    /* Another case, for a unit of B that B does not have: not taken either. */
    g_id[0] = 0x77;
    n3 = migration(v3, &d3);
    g_id[0] = 1;
    assert_int_equal(apply1(1, DA, v3, n3, NULL, why), PS_FOREIGN_IGNORED);
}

static void test_feedback_and_refusal(void **state)
{
    uint8_t v1[512], v2[512], bad[512];
    mig_t d1 = {1, T0, g_node_a, UA, UB, "x", NULL, NULL};
    mig_t d2 = {2, T0 + (5 << 16), g_node_b, UA, UB, "x", "2024-03-05", "2024-03-06"};
    mig_t db = {2, T0 + (5 << 16), g_node_b, UA, UB, "other employer", NULL, NULL};
    char lin[200], why[320];
    size_t n1 = migration(v1, &d1), n2 = migration(v2, &d2), nb = migration(bad, &db);
    got_t g;
    (void)state;
    own(0, 1, v1, n1);
    lineage_of(&d1, lin, sizeof(lin));
    /* B's answer may not change the employer: refused, naming the field. */
    assert_int_equal(apply1(0, DB, bad, nb, lin, why), PS_FOREIGN_REFUSED);
    assert_non_null(strstr(why, "employer"));
    /* Its dates descend from A's version: stored as they came. */
    assert_int_equal(apply1(0, DB, v2, n2, lin, why), PS_FOREIGN_STORED);
    stored(0, &g);
    assert_int_equal(g.len, n2);
    assert_memory_equal(g.rec, v2, n2);
    /* The older version again (a redelivery): OLDER, nothing changes. */
    assert_int_equal(apply1(0, DB, v1, n1, NULL, why), PS_FOREIGN_OLDER);
}

static void test_concurrent_edits_converge(void **state)
{
    uint8_t v1[512], va[512], vb[512];
    mig_t d1 = {1, T0, g_node_a, UA, UB, "x", NULL, NULL};
    mig_t da = {2, T0 + (3 << 16), g_node_a, UA, UB, "new employer", NULL, NULL};
    mig_t dbb = {2, T0 + (4 << 16), g_node_b, UA, UB, "x", "2024-03-05", "2024-03-06"};
    size_t n1 = migration(v1, &d1), na = migration(va, &da), nb = migration(vb, &dbb);
    char lin[200], why[320];
    got_t ga, gb;
    Popsync__Record *r;
    (void)state;
    own(0, 1, v1, n1);
    assert_int_equal(apply1(1, DA, v1, n1, NULL, why), PS_FOREIGN_STORED);
    own(0, 2, va, na); /* A's township edits the employer ... */
    own(1, 2, vb, nb); /* ... while B's gives its dates */
    lineage_of(&d1, lin, sizeof(lin));
    assert_int_equal(apply1(0, DB, vb, nb, lin, why), PS_FOREIGN_MERGED);
    assert_int_equal(apply1(1, DA, va, na, lin, why), PS_FOREIGN_MERGED);
    stored(0, &ga);
    stored(1, &gb);
    assert_int_equal(ga.len, gb.len);
    assert_memory_equal(ga.rec, gb.rec, ga.len);
    r = popsync__record__unpack(NULL, ga.len, ga.rec);
    assert_non_null(r);
    assert_string_equal(r->migration->employer, "new employer");
    assert_string_equal(r->migration->feedback_date, "2024-03-06");
    assert_int_equal(r->rev->gen, 3);
    assert_true(r->rev->hlc == dbb.hlc);
    popsync__record__free_unpacked(r, NULL);
    /* Each republishes the merge: the other has it already. */
    assert_int_equal(apply1(1, DA, ga.rec, ga.len, NULL, why), PS_FOREIGN_SAME);
    assert_int_equal(apply1(0, DB, gb.rec, gb.len, NULL, why), PS_FOREIGN_SAME);
}

/* The audit log of store st verifies and holds `want` entries. */
static void audit_intact(int st, uint64_t want)
{
    uint64_t entries = 0;
    char err[512] = "";
    assert_int_equal(ps_store_audit_verify(g_st[st], &entries, err, sizeof(err)), PS_OK);
    assert_int_equal(entries, want);
}

/* The audit action of version gen of the case in store st, as a district
 * admin's history shows it; asserts it names district from. */
static void audited_as(int st, uint64_t gen, const char *from, const char *action)
{
    ps_peer_t admin;
    ps_store_msg_t out;
    ProtobufCBinaryData id = {16, g_id};
    const Popsync__HistoryResult *h;
    int found = 0;
    memset(&admin, 0, sizeof(admin));
    memset(&out, 0, sizeof(out));
    admin.role = PS_ROLE_ADMIN;
    snprintf(admin.role_name, sizeof(admin.role_name), "admin");
    snprintf(admin.orgunit, sizeof(admin.orgunit), "%s", st == 0 ? DA : DB);
    assert_int_equal(ps_store_history(g_st[st], &admin, &id, 0, &out), PS_OK);
    h = (const Popsync__HistoryResult *)out.msg;
    assert_non_null(h);
    for (size_t i = 0; i < h->n_versions; i++) {
        const Popsync__HistoryVersion *v = h->versions[i];
        if (v->gen != gen)
            continue;
        found = 1;
        assert_true(v->audited);
        assert_string_equal(v->action, action);
        assert_string_equal(v->cert_role, "district");
        assert_string_equal(v->cert_orgunit, from);
    }
    assert_true(found);
    ps_store_msg_free(&out);
}

/* Every version another district's message writes is in the audit chain,
 * in the same transaction; a dropped copy writes nothing. */
static void test_foreign_writes_audited(void **state)
{
    uint8_t v1[512], va[512], vb[512];
    mig_t d1 = {1, T0, g_node_a, UA, UB, "x", NULL, NULL};
    mig_t da = {2, T0 + (3 << 16), g_node_a, UA, UB, "new employer", NULL, NULL};
    mig_t dbb = {2, T0 + (4 << 16), g_node_b, UA, UB, "x", "2024-03-05", "2024-03-06"};
    size_t n1 = migration(v1, &d1), na = migration(va, &da), nb = migration(vb, &dbb);
    char lin[512], l2[200], l3[200], why[320];
    got_t ga;
    (void)state;
    own(0, 1, v1, n1);
    audit_intact(1, 0);
    assert_int_equal(apply1(1, DA, v1, n1, NULL, why), PS_FOREIGN_STORED);
    audit_intact(1, 1);
    audited_as(1, 1, DA, "foreign_create");
    assert_int_equal(apply1(1, DA, v1, n1, NULL, why), PS_FOREIGN_SAME);
    audit_intact(1, 1);
    /* Concurrent edits: A's merge of B's dates is B's doing, audited so. */
    own(0, 2, va, na);
    own(1, 2, vb, nb);
    lineage_of(&d1, lin, sizeof(lin));
    assert_int_equal(apply1(0, DB, vb, nb, lin, why), PS_FOREIGN_MERGED);
    audit_intact(0, 1);
    audited_as(0, 3, DB, "foreign_merge");
    /* B takes A's merge as a descendant of its own version. */
    stored(0, &ga);
    lineage_of(&dbb, l2, sizeof(l2));
    lineage_of(&da, l3, sizeof(l3));
    snprintf(lin, sizeof(lin), "%s,%s", l2, l3);
    assert_int_equal(apply1(1, DA, ga.rec, ga.len, lin, why), PS_FOREIGN_STORED);
    audit_intact(1, 2);
    audited_as(1, 3, DA, "foreign_update");
}

typedef struct addressed {
    char to[PS_FEED_MAX_TO][13];
    size_t nto, entries;
} addressed_t;

static int find_to(const ps_feed_item_t *it, void *arg)
{
    addressed_t *a = arg;
    if (!it->exit && it->kind == POPSYNC__KIND__KIND_MIGRATION) {
        memcpy(a->to, it->to, sizeof(a->to));
        a->nto = it->nto;
        a->entries++;
    }
    return 0;
}

/* docs/upstream.md §7 "Addressed copies": moved from B to district C, the
 * case still goes to B (which holds it and must hear it moved away). */
static void test_addressees(void **state)
{
    uint8_t v1[512], v2[512], v3[512];
    mig_t d1 = {1, T0, g_node_a, UA, UA, "x", NULL, NULL};
    mig_t d2 = {2, T0 + (1 << 16), g_node_a, UA, UB, "x", NULL, NULL};
    mig_t d3 = {3, T0 + (2 << 16), g_node_a, UA, "110106001000", "x", NULL, NULL};
    size_t n1 = migration(v1, &d1), n2 = migration(v2, &d2), n3 = migration(v3, &d3);
    addressed_t a;
    uint64_t head = 0;
    (void)state;
    /* Within A: addressed to A only (the publisher sends no copy). */
    own(0, 1, v1, n1);
    memset(&a, 0, sizeof(a));
    assert_int_equal(ps_store_feed_read(g_st[0], 0, 1000, find_to, &a, &head, NULL), PS_OK);
    assert_int_equal(a.entries, 1);
    assert_int_equal(a.nto, 1);
    assert_string_equal(a.to[0], DA);
    /* Its other place in B: A and B. */
    own(0, 2, v2, n2);
    memset(&a, 0, sizeof(a));
    assert_int_equal(ps_store_feed_read(g_st[0], 0, 1000, find_to, &a, &head, NULL), PS_OK);
    assert_int_equal(a.nto, 2);
    assert_string_equal(a.to[0], DA);
    assert_string_equal(a.to[1], DB);
    /* Moved on to C: A, C, and B, an earlier other place. */
    own(0, 3, v3, n3);
    memset(&a, 0, sizeof(a));
    assert_int_equal(ps_store_feed_read(g_st[0], 0, 1000, find_to, &a, &head, NULL), PS_OK);
    assert_int_equal(a.entries, 1);
    assert_int_equal(a.nto, 3);
    assert_string_equal(a.to[0], DA);
    assert_string_equal(a.to[1], "110106000000");
    assert_string_equal(a.to[2], DB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_case_reaches_other_district, setup, teardown),
        cmocka_unit_test_setup_teardown(test_feedback_and_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_edits_converge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_writes_audited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addressees, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
