/* test_client_cache_counters.c - the report counters a client cache keeps.
 *
 * Owns: checks of client/cache_counters.c (the change table and the stored
 * month format: merge, zero counters left out, a damaged value refused; a
 * key added again adds to its entry instead of growing the table) and
 * of their upkeep by the cache (client/cache.c) on a temporary cache: local
 * adds, edits that move a record to another month, deletes, pulled records
 * and records that left the scope all keep every counter equal to a
 * recount (ps_cache_counters_check), across a reopen.
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

#include "cache.h"
#include "cache_counters.h"
#include "crypto.h"
#include "err.h"
#include "ids.h"
#include "record_fmt.h"
#include "wire.pb-c.h"

#define UNIT "110105001001"
#define UNIT2 "110105002001"

/* ---- the pure part ----------------------------------------------------------- */

typedef struct seen {
    char lines[16][80];
    size_t n;
} seen_t;

static int collect(const char *unit, const char *metric, int64_t value, void *arg)
{
    seen_t *s = arg;
    if (s->n < 16)
        snprintf(s->lines[s->n++], 80, "%s %s %lld", unit, metric, (long long)value);
    return 0;
}

static void test_merge(void **state)
{
    ps_ctab_t t = {0};
    ps_buf_t a, b;
    seen_t s;
    (void)state;
    ps_buf_init(&a);
    ps_buf_init(&b);
    assert_int_equal(ps_ctab_add(&t, 202603, UNIT2, "births_total", 2), PS_OK);
    assert_int_equal(ps_ctab_add(&t, 202603, UNIT, "births_total", 1), PS_OK);
    assert_int_equal(ps_ctab_add(&t, 202603, UNIT, "births_male", 1), PS_OK);
    assert_int_equal(ps_ctab_add(&t, 202603, UNIT, "births_total", 1), PS_OK);
    assert_int_equal(ps_ctab_add(&t, 202603, UNIT, "inflow", 0), PS_OK);
    ps_ctab_compact(&t);
    assert_int_equal(t.n, 3); /* equal keys merged, the zero change dropped */
    assert_int_equal(ps_cblob_merge(NULL, 0, t.v, t.n, &a), PS_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(ps_cblob_foreach(ps_buf_head(&a), ps_buf_size(&a), collect, &s), PS_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.lines[0], UNIT " births_male 1");
    assert_string_equal(s.lines[1], UNIT " births_total 2");
    assert_string_equal(s.lines[2], UNIT2 " births_total 2");

    /* Taking everything back leaves an empty month. */
    ps_ctab_clear(&t);
    assert_int_equal(ps_ctab_add(&t, 202603, UNIT, "births_total", -2), PS_OK);
    assert_int_equal(ps_ctab_add(&t, 202603, UNIT, "births_male", -1), PS_OK);
    assert_int_equal(ps_ctab_add(&t, 202603, UNIT, "visits_total", 5), PS_OK);
    ps_ctab_compact(&t);
    assert_int_equal(ps_cblob_merge(ps_buf_head(&a), ps_buf_size(&a), t.v, t.n, &b), PS_OK);
    memset(&s, 0, sizeof(s));
    assert_int_equal(ps_cblob_foreach(ps_buf_head(&b), ps_buf_size(&b), collect, &s), PS_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.lines[0], UNIT " visits_total 5");
    assert_string_equal(s.lines[1], UNIT2 " births_total 2");

    /* A cut value is refused, never read past its end. */
    assert_int_equal(ps_cblob_foreach(ps_buf_head(&b), ps_buf_size(&b) - 3, collect, &s), PS_EINVAL);
    ps_ctab_free(&t);
    ps_buf_free(&a);
    ps_buf_free(&b);
}

/* ---- upkeep by the cache --------------------------------------------------------- */

static char g_dir[64];

static ps_cache_t *make_cache(void)
{
    ps_cache_meta_t m;
    ps_cache_t *c = NULL;
    char err[256];
    snprintf(g_dir, sizeof(g_dir), "/tmp/ps_ccount_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    memset(&m, 0, sizeof(m));
    assert_int_equal(ps_random(m.node, sizeof(m.node)), PS_OK);
    snprintf(m.server, sizeof(m.server), "127.0.0.1:1");
    snprintf(m.role, sizeof(m.role), "admin");
    snprintf(m.key_file, sizeof(m.key_file), "%s/test.key", g_dir);
    assert_int_equal(ps_cache_create_open(&c, g_dir, &m, err, sizeof(err)), PS_OK);
    return c;
}

static Popsync__Record *birth(const char *unit, const char *date, const char *sex)
{
    Popsync__Record *r = NULL;
    char err[256];
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_BIRTH), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    r->id.len = PS_ID_LEN;
    assert_int_equal(ps_uuid7(r->id.data), PS_OK);
    assert_int_equal(ps_record_set(r, "orgunit", unit, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "birth_date", date, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "child_sex", sex, err, sizeof(err)), PS_OK);
    return r;
}

typedef struct want {
    const char *unit, *metric;
    int64_t value;
} want_t;

static int find_value(const char *unit, const char *metric, int64_t value, void *arg)
{
    want_t *w = arg;
    if (!strcmp(unit, w->unit) && !strcmp(metric, w->metric))
        w->value = value;
    return 0;
}

static int64_t counter(ps_cache_t *c, uint32_t month, const char *unit, const char *metric)
{
    want_t w = {unit, metric, 0};
    assert_int_equal(ps_cache_counters_month(c, month, find_value, &w), PS_OK);
    return w.value;
}

/* A batch adds each record's contributions: a key met again adds to its
 * entry (the table holds distinct keys: what counters_flush sorts), and
 * compacting gives the sums a naive table would. */
static void test_table_folds_keys(void **state)
{
    ps_ctab_t t = {0};
    int64_t want[300] = {0};
    char unit[13], metric[32];
    (void)state;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ps_ctab_add(&t, 202601, "110105001000", "births", 1), PS_OK);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.v[0].value, 1000);
    ps_ctab_clear(&t);
    for (int i = 0; i < 20000; i++) {
        int k = (i * 7919) % 300, v = i % 3 - 1;
        snprintf(unit, sizeof(unit), "1101050%05d", k % 17);
        snprintf(metric, sizeof(metric), "m%d", k / 17);
        assert_int_equal(ps_ctab_add(&t, (uint32_t)(202601 + k % 5), unit, metric, v), PS_OK);
        want[k] += v;
    }
    assert_true(t.n <= 300);
    ps_ctab_compact(&t);
    for (int k = 0, found = 0; k < 300; k++, found = 0) {
        snprintf(unit, sizeof(unit), "1101050%05d", k % 17);
        snprintf(metric, sizeof(metric), "m%d", k / 17);
        for (size_t j = 0; j < t.n; j++)
            if (t.v[j].month == (uint32_t)(202601 + k % 5) && !strcmp(t.v[j].unit, unit) &&
                !strcmp(t.v[j].metric, metric)) {
                assert_int_equal(t.v[j].value, want[k]);
                found = 1;
            }
        assert_int_equal(found, want[k] != 0);
    }
    /* Added to after compacting, the table still finds its keys. */
    assert_int_equal(ps_ctab_add(&t, 202601, "110105000000", "m0", 5), PS_OK);
    assert_int_equal(ps_ctab_add(&t, 202601, "110105000000", "m0", 5), PS_OK);
    for (size_t j = 0, hits = 0; j < t.n; j++)
        if (t.v[j].month == 202601 && !strcmp(t.v[j].unit, "110105000000") && !strcmp(t.v[j].metric, "m0"))
            assert_int_equal(++hits, 1);
    ps_ctab_free(&t);
}

static void assert_recount(ps_cache_t *c)
{
    uint64_t checked = 0, bad = 1;
    char err[256] = "";
    assert_int_equal(ps_cache_counters_check(c, &checked, &bad, err, sizeof(err)), PS_OK);
    if (bad)
        fail_msg("%s", err);
    assert_true(checked > 0);
}

static void test_cache_upkeep(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__Record *b[3];
    Popsync__PullBatch pb = POPSYNC__PULL_BATCH__INIT;
    Popsync__FeedEntry fe[2] = {POPSYNC__FEED_ENTRY__INIT, POPSYNC__FEED_ENTRY__INIT}, *fp[2] = {&fe[0], &fe[1]};
    char err[256];
    (void)state;

    b[0] = birth(UNIT, "2026-03-02", "male");
    b[1] = birth(UNIT, "2026-03-09", "female");
    b[2] = birth(UNIT2, "2026-03-20", "female");
    assert_int_equal(ps_cache_put_local_many(c, b, 3), PS_OK);
    assert_int_equal(counter(c, 202603, UNIT, "births_total"), 2);
    assert_int_equal(counter(c, 202603, UNIT, "births_male"), 1);
    assert_int_equal(counter(c, 202603, UNIT2, "births_female"), 1);
    assert_recount(c);

    /* An edit that moves a birth to April: March loses it, April gains it. */
    assert_int_equal(ps_record_set(b[0], "birth_date", "2026-04-01", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_cache_put_local(c, b[0]), PS_OK);
    assert_int_equal(counter(c, 202603, UNIT, "births_total"), 1);
    assert_int_equal(counter(c, 202603, UNIT, "births_male"), 0);
    assert_int_equal(counter(c, 202604, UNIT, "births_male"), 1);
    assert_recount(c);

    /* A delete (a tombstone) takes its contributions away. */
    b[1]->deleted = 1;
    assert_int_equal(ps_cache_put_local(c, b[1]), PS_OK);
    assert_int_equal(counter(c, 202603, UNIT, "births_total"), 0);
    assert_recount(c);

    /* Pulled: a new record counts; a record that left the scope does not. */
    {
        Popsync__Record *n = birth(UNIT2, "2026-03-28", "male");
        fe[0].record = n;
        fe[1].gone = 1;
        fe[1].id = b[2]->id;
        pb.n_entries = 2;
        pb.entries = fp;
        pb.cursor = 7;
        assert_int_equal(ps_cache_apply_pull(c, &pb), PS_OK);
        ps_record_free(n);
    }
    assert_int_equal(counter(c, 202603, UNIT2, "births_male"), 1);
    assert_int_equal(counter(c, 202603, UNIT2, "births_female"), 0);
    assert_int_equal(counter(c, 202603, UNIT2, "births_total"), 1);
    assert_recount(c);

    /* Kept across a reopen. */
    ps_cache_close(c);
    assert_int_equal(ps_cache_open(&c, g_dir, err, sizeof(err)), PS_OK);
    assert_int_equal(counter(c, 202604, UNIT, "births_total"), 1);
    assert_recount(c);
    ps_cache_close(c);
    for (int i = 0; i < 3; i++)
        ps_record_free(b[i]);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
        assert_int_equal(system(cmd), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_merge), cmocka_unit_test(test_table_folds_keys),
                                        cmocka_unit_test(test_cache_upkeep)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
