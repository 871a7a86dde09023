/* test_server_upstream.c - unit tests for server/store_upstream.c on a
 * temporary LMDB store (issue 19): the published mark survives a reopen;
 * the feed is read in order from after the mark, at most max at a time;
 * the lag counts what lies after the mark; a rebuild keeps the newest
 * version of a record when an older one arrives again (a resend), moves its
 * feed entry and its counters, and writes scope exits at their seqs.  The
 * [upstream] migrants setting and the subjects of addressed copies
 * (docs/upstream.md §7).
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
#include "records.pb-c.h"
#include "store.h"
#include "store_upstream.h"
#include "upstream.h"

static char g_dir[256];

static ps_store_t *open_store(void)
{
    ps_store_opts_t so;
    ps_store_t *st = NULL;
    char err[256];
    memset(&so, 0, sizeof(so));
    so.map_size = (size_t)64 << 20;
    assert_int_equal(ps_store_open(&st, g_dir, &so, err, sizeof(err)), PS_OK);
    return st;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "%s/ps-upstream-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A packed person record with this id byte, generation and unit. */
static size_t person(uint8_t *out, uint8_t idb, uint64_t gen, const char *unit, const char *name)
{
    Popsync__Record r = POPSYNC__RECORD__INIT;
    Popsync__Rev rev = POPSYNC__REV__INIT;
    Popsync__Person p = POPSYNC__PERSON__INIT;
    static uint8_t id[16];
    memset(id, 0, sizeof(id));
    id[15] = idb;
    r.id.data = id;
    r.id.len = 16;
    r.kind = POPSYNC__KIND__KIND_PERSON;
    r.orgunit = (char *)unit;
    rev.gen = gen;
    rev.hlc = (uint64_t)1700000000000 << 16;
    r.rev = &rev;
    p.name = (char *)name;
    p.birth_date = "1990-01-01";
    p.sex = POPSYNC__SEX__SEX_FEMALE;
    r.body_case = POPSYNC__RECORD__BODY_PERSON;
    r.person = &p;
    return popsync__record__pack(&r, out);
}

typedef struct seen {
    uint64_t seq[16];
    int exit[16];
    size_t n;
} seen_t;

static int collect(const ps_feed_item_t *it, void *arg)
{
    seen_t *s = arg;
    s->seq[s->n] = it->seq;
    s->exit[s->n] = it->exit;
    s->n++;
    return 0;
}

static void test_mark_survives_reopen(void **state)
{
    ps_store_t *st = open_store();
    uint64_t m = 1;
    (void)state;
    assert_int_equal(ps_store_upstream_mark(st, &m), PS_OK);
    assert_int_equal(m, 0);
    assert_int_equal(ps_store_upstream_set_mark(st, 42), PS_OK);
    ps_store_close(st);
    st = open_store();
    assert_int_equal(ps_store_upstream_mark(st, &m), PS_OK);
    assert_int_equal(m, 42);
    ps_store_close(st);
}

static void test_rebuild_and_feed_read(void **state)
{
    ps_store_t *st = open_store();
    uint8_t a1[256], a2[256], b1[256], ex[29];
    ps_rebuild_item_t items[4];
    seen_t s;
    size_t bad = 0;
    uint64_t head = 0, n = 0, oldest = 0, live = 0, total = 0;
    (void)state;

    memset(ex, 0, sizeof(ex));
    ex[15] = 1;
    ex[16] = 0x01;
    memcpy(ex + 17, "110105002000", 12);
    items[0] = (ps_rebuild_item_t){3, 0, a1, person(a1, 1, 1, "110105001000", "a"), NULL};
    items[1] = (ps_rebuild_item_t){5, 0, b1, person(b1, 2, 1, "110105001000", "b"), NULL};
    items[2] = (ps_rebuild_item_t){6, 1, ex, sizeof(ex), NULL};
    items[3] = (ps_rebuild_item_t){7, 0, a2, person(a2, 1, 2, "110105001000", "a2"), NULL};
    assert_int_equal(ps_store_rebuild_put(st, items, 4, &bad), PS_OK);
    assert_int_equal(bad, 0);
    assert_int_equal(ps_store_head(st), 7);
    /* A resend of a's first version: the newer one stays. */
    assert_int_equal(ps_store_rebuild_put(st, items, 1, &bad), PS_OK);
    assert_int_equal(ps_store_count(st, &live, &total), PS_OK);
    assert_int_equal(total, 2);

    memset(&s, 0, sizeof(s));
    assert_int_equal(ps_store_feed_read(st, 0, 16, collect, &s, &head, NULL), PS_OK);
    assert_int_equal(head, 7);
    /* seq 3 moved to 7 with a's second version; the exit keeps its seq. */
    assert_int_equal(s.n, 3);
    assert_int_equal(s.seq[0], 5);
    assert_int_equal(s.seq[1], 6);
    assert_int_equal(s.exit[1], 1);
    assert_int_equal(s.seq[2], 7);

    memset(&s, 0, sizeof(s));
    assert_int_equal(ps_store_feed_read(st, 5, 1, collect, &s, &head, NULL), PS_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.seq[0], 6);

    assert_int_equal(ps_store_feed_behind(st, 5, &n, &oldest), PS_OK);
    assert_int_equal(n, 2);
    assert_true(oldest > 0);
    assert_int_equal(ps_store_feed_behind(st, 7, &n, &oldest), PS_OK);
    assert_int_equal(n, 0);

    assert_int_equal(ps_store_rebuild_advance(st, 1000, &head), PS_OK);
    assert_int_equal(head, 1007);
    assert_int_equal(ps_store_upstream_mark(st, &n), PS_OK);
    assert_int_equal(n, 1007);
    ps_store_close(st);
}

static void test_bad_payload_counted(void **state)
{
    ps_store_t *st = open_store();
    uint8_t junk[5] = {0xff, 0xff, 0xff, 0xff, 0xff};
    ps_rebuild_item_t it = {1, 0, junk, sizeof(junk), NULL};
    size_t bad = 0;
    (void)state;
    assert_int_equal(ps_store_rebuild_put(st, &it, 1, &bad), PS_OK);
    assert_int_equal(bad, 1);
    ps_store_close(st);
}

static void test_migrants_setting_and_subjects(void **state)
{
    ps_upstream_opts_t o;
    char err[256];
    (void)state;
    memset(&o, 0, sizeof(o));
    o.urls = "nats://127.0.0.1:4222";
    o.district = "110105000000";
    assert_int_equal(ps_upstream_check(&o, err, sizeof(err)), PS_OK);
    assert_false(ps_upstream_addressed(&o));
    o.migrants = "all";
    assert_int_equal(ps_upstream_check(&o, err, sizeof(err)), PS_OK);
    assert_false(ps_upstream_addressed(&o));
    o.migrants = "addressed";
    assert_int_equal(ps_upstream_check(&o, err, sizeof(err)), PS_OK);
    assert_true(ps_upstream_addressed(&o));
    o.migrants = "mine";
    assert_int_equal(ps_upstream_check(&o, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "migrants must be all or addressed"));
    /* Copies go to PPPPPP000000: a district code of another form would never get them. */
    o.migrants = "addressed";
    o.district = "110105001000";
    assert_int_equal(ps_upstream_check(&o, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "000000"));
    o.district = "110105000000";
    o.inbox_prefix = "_INBOX_110105000000";
    assert_int_equal(ps_upstream_check(&o, err, sizeof(err)), PS_OK);
    o.inbox_prefix = "_INBOX.110105";
    assert_int_equal(ps_upstream_check(&o, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "inbox_prefix"));
    o.inbox_prefix = "";
    assert_int_equal(ps_upstream_check(&o, err, sizeof(err)), PS_EINVAL);
    o.inbox_prefix = "_INBOX_*";
    assert_int_equal(ps_upstream_check(&o, err, sizeof(err)), PS_EINVAL);

    assert_true(ps_upstream_is_copy("popsync.110105000000._to.110108000000"));
    assert_false(ps_upstream_is_copy("popsync.110105000000.migration"));
    assert_false(ps_upstream_is_copy("popsync.110105000000._nodes"));
    assert_false(ps_upstream_is_copy("other.110105000000._to.110108000000"));
    assert_false(ps_upstream_is_copy(NULL));

    assert_true(ps_upstream_sent_by("popsync.110105000000.migration", "110105000000"));
    assert_true(ps_upstream_sent_by("popsync.110105000000._to.110108000000", "110105000000"));
    assert_false(ps_upstream_sent_by("popsync.110106000000._to.110108000000", "110105000000"));
    assert_false(ps_upstream_sent_by("popsync.1101050000001.migration", "110105000000"));
    assert_false(ps_upstream_sent_by("popsync.110105000000", "110105000000"));
    assert_false(ps_upstream_sent_by(NULL, "110105000000"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mark_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_and_feed_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_payload_counted, setup, teardown),
        cmocka_unit_test(test_migrants_setting_and_subjects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
