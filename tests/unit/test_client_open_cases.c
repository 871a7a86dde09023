/* test_client_open_cases.c - the cache's index of open migration cases.
 *
 * Owns: checks that ps_cache_foreach_open_case (client/cache.c, the person
 * index's O term in client/cache_pindex.c) visits exactly the live
 * migrations without a feedback date: a closed case is never read, a case
 * whose feedback date is set later leaves the index, one whose feedback
 * date is cleared comes back, a deleted one leaves it, and all of it holds
 * across a reopen.  This is what keeps the migrations page of `popsync ui`
 * and `popsync migrations` from opening every migration ever registered.
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
#include "crypto.h"
#include "err.h"
#include "ids.h"
#include "record_fmt.h"
#include "wire.pb-c.h"

#define UNIT "110105001001"
#define OTHER "110105002001"

static char g_dir[64];

static ps_cache_t *make_cache(void)
{
    ps_cache_meta_t m;
    ps_cache_t *c = NULL;
    char err[256];
    snprintf(g_dir, sizeof(g_dir), "/tmp/ps_opencase_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    memset(&m, 0, sizeof(m));
    assert_int_equal(ps_random(m.node, sizeof(m.node)), PS_OK);
    snprintf(m.server, sizeof(m.server), "127.0.0.1:1");
    snprintf(m.role, sizeof(m.role), "admin");
    snprintf(m.key_file, sizeof(m.key_file), "%s/test.key", g_dir);
    assert_int_equal(ps_cache_create_open(&c, g_dir, &m, err, sizeof(err)), PS_OK);
    return c;
}

static Popsync__Record *migration(const char *start, const char *feedback)
{
    Popsync__Record *r = NULL;
    char err[256];
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_MIGRATION), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    r->id.len = PS_ID_LEN;
    assert_int_equal(ps_uuid7(r->id.data), PS_OK);
    assert_int_equal(ps_record_set(r, "orgunit", UNIT, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "other_place_code", OTHER, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "start_date", start, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "submitted_date", start, err, sizeof(err)), PS_OK);
    if (feedback)
        assert_int_equal(ps_record_set(r, "feedback_date", feedback, err, sizeof(err)), PS_OK);
    return r;
}

typedef struct seen {
    uint8_t ids[8][PS_ID_LEN];
    size_t n, all;
} seen_t;

static int note(Popsync__Record *r, void *arg)
{
    seen_t *s = arg;
    s->all++; /* every record the walk opened, open or not */
    if (s->n < 8)
        memcpy(s->ids[s->n++], r->id.data, PS_ID_LEN);
    return 0;
}

/* The walk opened exactly the records of want (n of them). */
static void assert_open(ps_cache_t *c, Popsync__Record **want, size_t n)
{
    seen_t s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(ps_cache_foreach_open_case(c, note, &s), PS_OK);
    assert_int_equal(s.all, n);
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < s.n && memcmp(s.ids[j], want[i]->id.data, PS_ID_LEN) != 0; j++)
            ;
        assert_true(j < s.n);
    }
}

static void test_open_cases(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__Record *m[4], *want[3];
    char err[256];
    (void)state;

    m[0] = migration("2026-03-02", NULL);
    m[1] = migration("2026-03-05", "2026-03-20"); /* closed */
    m[2] = migration("2026-03-09", NULL);
    m[3] = migration("2026-02-01", "2026-02-10"); /* closed */
    assert_int_equal(ps_cache_put_local_many(c, m, 4), PS_OK);
    want[0] = m[0];
    want[1] = m[2];
    assert_open(c, want, 2);

    /* The feedback comes back: the case closes and leaves the index. */
    assert_int_equal(ps_record_set(m[0], "feedback_date", "2026-03-25", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_cache_put_local(c, m[0]), PS_OK);
    want[0] = m[2];
    assert_open(c, want, 1);

    /* A feedback date entered by mistake and cleared: open again. */
    assert_int_equal(ps_record_set(m[1], "feedback_date", "", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_cache_put_local(c, m[1]), PS_OK);
    want[1] = m[1];
    assert_open(c, want, 2);

    /* A deleted case is not open. */
    m[2]->deleted = 1;
    assert_int_equal(ps_cache_put_local(c, m[2]), PS_OK);
    want[0] = m[1];
    assert_open(c, want, 1);

    /* Kept across a reopen. */
    ps_cache_close(c);
    assert_int_equal(ps_cache_open(&c, g_dir, err, sizeof(err)), PS_OK);
    assert_open(c, want, 1);
    ps_cache_close(c);
    for (int i = 0; i < 4; i++)
        ps_record_free(m[i]);
    {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
        assert_int_equal(system(cmd), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_open_cases)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
