/* test_client_pullhold.c - pulled batches that share one cache transaction
 * (ps_cache_apply_pull_held, client/sync.c; docs/sync.md "Pull
 * durability").
 *
 * Owns: checks that a sync given several PullBatches in one read commits
 * them in fewer transactions than batches (the cache's pull_commits), with
 * the cursor, records, report counters and the person index's bulk build
 * as one batch at a time gives; that a cut connection keeps the batches
 * applied before it; that held batches are neither durable nor visible
 * before their commit (a process killed holding them leaves the cursor
 * where it was); that the bounds end a held transaction; and that any
 * other cache operation commits them first, and that a failure of that
 * commit stops the pull before a later cursor is stored.  The sync is driven through
 * the session's injected transport, as test_client_session.c does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache_fixture.h"

#include "cache.h"
#include "crypto.h"
#include "err.h"
#include "frame.h"
#include "ids.h"
#include "link.h"
#include "msg.h"
#include "record_fmt.h"
#include "session.h"
#include "sync.h"
#include "wire.pb-c.h"

#define UNIT "110105001001"
#define PER_BATCH 70 /* above cache.c's PINDEX_BULK_MIN: a cold pull's bulk build */

static char g_dir[256];
static uint64_t g_seq;

static ps_cache_t *make_cache(void)
{
    ps_cache_t *c = ps_tcache_make(g_dir, sizeof(g_dir), "pullhold");
    g_seq = 0;
    return c;
}

static ps_cache_t *open_again(void)
{
    return ps_tcache_open(g_dir);
}

static void remove_cache(void)
{
    ps_tcache_remove(g_dir);
}

/* A batch of n fresh person records ("name<k>"), the next n feed
 * sequences; more as given.  batch_free frees it. */
static Popsync__PullBatch *batch_new(size_t n, int more)
{
    Popsync__PullBatch *b = calloc(1, sizeof(*b));
    char err[256], name[64];
    assert_non_null(b);
    popsync__pull_batch__init(b);
    b->entries = calloc(n ? n : 1, sizeof(*b->entries));
    assert_non_null(b->entries);
    for (size_t i = 0; i < n; i++) {
        Popsync__FeedEntry *fe = calloc(1, sizeof(*fe));
        Popsync__Record *r = NULL;
        assert_non_null(fe);
        popsync__feed_entry__init(fe);
        assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_PERSON), PS_OK);
        r->id.data = malloc(PS_ID_LEN);
        r->id.len = PS_ID_LEN;
        assert_int_equal(ps_uuid7(r->id.data), PS_OK);
        assert_int_equal(ps_record_set(r, "orgunit", UNIT, err, sizeof(err)), PS_OK);
        snprintf(name, sizeof(name), "Person Q%llu", (unsigned long long)(g_seq + 1));
        free(r->person->name == protobuf_c_empty_string ? NULL : r->person->name);
        r->person->name = strdup(name);
        fe->seq = ++g_seq;
        fe->record = r;
        b->entries[i] = fe;
    }
    b->n_entries = n;
    b->cursor = g_seq;
    b->head = 1000000;
    b->more = more;
    return b;
}

static void batch_free(Popsync__PullBatch *b)
{
    protobuf_c_message_free_unpacked(&b->base, NULL);
}

static uint64_t commits(ps_cache_t *c)
{
    ps_cache_ops_t ops;
    ps_cache_op_counts(c, &ops);
    return ops.pull_commits;
}

static uint64_t records(ps_cache_t *c)
{
    ps_cache_counts_t n;
    assert_int_equal(ps_cache_counts(c, &n), PS_OK);
    return n.records;
}

static void counters_agree(ps_cache_t *c)
{
    uint64_t checked = 0, bad = 1;
    char err[256];
    assert_int_equal(ps_cache_counters_check(c, &checked, &bad, err, sizeof(err)), PS_OK);
    assert_true(checked > 0);
    assert_int_equal(bad, 0);
}

/* --- a sync over the injected transport: the test is the server --- */

typedef struct fake {
    ps_buf_t out;
} fake_t;

static int f_write(void *io, const uint8_t *p, size_t len)
{
    return ps_buf_append(&((fake_t *)io)->out, p, len);
}
static void f_shutdown(void *io) { (void)io; }
static void f_close(void *io) { (void)io; }
static const ps_session_io_t fake_io = {f_write, f_shutdown, f_close, NULL};

typedef struct run {
    fake_t f;
    ps_link_t l;
    ps_sync_stats_t st;
    int done, status;
    uint32_t pulls[64]; /* request ids of the Pulls sent, not yet answered */
    size_t npulls;
} run_t;

static void on_done(ps_link_t *l, int status, void *arg)
{
    run_t *r = arg;
    (void)l;
    r->done++;
    r->status = status;
}

/* Reads what the client sent: Pull ids are kept, in order. */
static void take_sent(run_t *r, uint32_t *hello)
{
    ps_frame_t fr;
    size_t used;
    while (ps_frame_decode(ps_buf_head(&r->f.out), ps_buf_size(&r->f.out), 1u << 20, &fr, &used) == PS_OK) {
        if (fr.type == PS_MSG_HELLO && hello)
            *hello = fr.request_id;
        if (fr.type == PS_MSG_PULL) {
            assert_true(r->npulls < 64);
            r->pulls[r->npulls++] = fr.request_id;
        }
        ps_buf_consume(&r->f.out, used);
    }
}

static uint32_t next_pull(run_t *r)
{
    uint32_t id;
    take_sent(r, NULL);
    assert_true(r->npulls > 0);
    id = r->pulls[0];
    memmove(r->pulls, r->pulls + 1, (r->npulls - 1) * sizeof(r->pulls[0]));
    r->npulls--;
    return id;
}

static void run_start(run_t *r, ps_cache_t *c)
{
    ps_session_cfg_t cfg;
    Popsync__Welcome w = POPSYNC__WELCOME__INIT;
    ps_buf_t in;
    uint32_t hello = 0;
    memset(r, 0, sizeof(*r));
    ps_buf_init(&r->f.out);
    memset(&cfg, 0, sizeof(cfg));
    cfg.server = "fake:1";
    cfg.no_compression = 1;
    cfg.window = 8;
    assert_int_equal(ps_session_new(&r->l.s, &cfg, &fake_io, &r->f), PS_OK);
    r->l.cache = c;
    assert_int_equal(ps_sync_start(&r->l, 0, 0, &r->st, on_done, r), PS_OK);
    ps_session_start(r->l.s);
    take_sent(r, &hello);
    w.protocol_version = PS_PROTOCOL_VERSION;
    w.window = 8;
    w.window_bytes = 8u << 20;
    w.head = 1000000;
    ps_buf_init(&in);
    assert_int_equal(ps_msg_pack_frame(&in, PS_MSG_WELCOME, hello, &w.base), PS_OK);
    ps_session_input(r->l.s, &in);
    ps_buf_free(&in);
    take_sent(r, NULL);
    assert_true(r->npulls >= 3); /* pipelined: several Pulls out at once */
}

/* n batches answering the next n Pulls, all in one read of the session;
 * partial: bytes of a further frame's start appended (0: none). */
static void feed_batches(run_t *r, Popsync__PullBatch **b, size_t n, size_t partial)
{
    ps_buf_t in;
    ps_buf_init(&in);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ps_msg_pack_frame(&in, PS_MSG_PULL_BATCH, next_pull(r), &b[i]->base), PS_OK);
    if (partial) {
        ps_buf_t more;
        ps_buf_init(&more);
        assert_int_equal(ps_msg_pack_frame(&more, PS_MSG_PULL_BATCH, 1, &b[0]->base), PS_OK);
        assert_true(partial < ps_buf_size(&more));
        assert_int_equal(ps_buf_append(&in, ps_buf_head(&more), partial), PS_OK);
        ps_buf_free(&more);
    }
    ps_session_input(r->l.s, &in);
    ps_buf_free(&in);
}

/* The last batch (more = 0) and empty answers to the other Pulls. */
static void feed_end(run_t *r)
{
    Popsync__PullBatch *last = batch_new(PER_BATCH, 0);
    feed_batches(r, &last, 1, 0);
    batch_free(last);
    take_sent(r, NULL);
    while (r->npulls && !r->done) {
        Popsync__PullBatch *e = batch_new(0, 0);
        e->cursor = g_seq;
        feed_batches(r, &e, 1, 0);
        batch_free(e);
        take_sent(r, NULL);
    }
}

static void run_close(run_t *r)
{
    ps_session_close(r->l.s, NULL, NULL);
    ps_buf_free(&r->f.out);
}

/* Three batches in one read: one transaction for them; the last one's
 * cursor, every record, the counters and the bulk-built index as a pull
 * of one batch per transaction leaves them. */
static void test_batches_together(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__PullBatch *b[3];
    Popsync__Record **found = NULL;
    size_t nfound = 0;
    run_t r;
    (void)state;
    run_start(&r, c);
    for (size_t i = 0; i < 3; i++)
        b[i] = batch_new(PER_BATCH, 1);
    feed_batches(&r, b, 3, 0);
    assert_int_equal(r.done, 0);
    assert_int_equal(r.st.pulled, 3 * PER_BATCH);
    assert_int_equal(commits(c), 1);            /* one per batch without the hold: 3 */
    assert_int_equal(ps_cache_pull_held(c), 0); /* the last of the read committed them */
    assert_int_equal(ps_cache_meta(c)->cursor, 3 * PER_BATCH);
    feed_end(&r);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.status, PS_OK);
    run_close(&r);
    for (size_t i = 0; i < 3; i++)
        batch_free(b[i]);
    assert_int_equal(ps_cache_meta(c)->cursor, 4 * PER_BATCH);
    assert_int_equal(ps_cache_pindex_finish(c), PS_OK);
    assert_int_equal(records(c), 4 * PER_BATCH);
    counters_agree(c);
    assert_int_equal(ps_cache_find(c, "Person Q5", 50, &found, &nfound), PS_OK);
    assert_int_equal(nfound, 1);
    protobuf_c_message_free_unpacked(&found[0]->base, NULL);
    free(found);
    ps_cache_close(c);
    c = open_again();
    assert_int_equal(ps_cache_meta(c)->cursor, 4 * PER_BATCH);
    ps_cache_close(c);
    remove_cache();
}

/* Two batches and the start of a third, then the connection is cut: the
 * two are held, and the cut commits them (as when each had its own). */
static void test_cut_keeps_applied(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__PullBatch *b[2];
    run_t r;
    (void)state;
    run_start(&r, c);
    b[0] = batch_new(PER_BATCH, 1);
    b[1] = batch_new(PER_BATCH, 1);
    feed_batches(&r, b, 2, 5);
    assert_int_equal(ps_cache_pull_held(c), 2);
    assert_int_equal(commits(c), 0);
    assert_int_equal(ps_cache_meta(c)->cursor, 0); /* not durable yet */
    ps_session_io_failed(r.l.s, PS_ECLOSED, "cut");
    assert_int_equal(r.done, 1);
    assert_int_not_equal(r.status, PS_OK);
    assert_int_equal(ps_cache_pull_held(c), 0);
    assert_int_equal(commits(c), 1);
    assert_int_equal(ps_cache_meta(c)->cursor, 2 * PER_BATCH);
    run_close(&r);
    batch_free(b[0]);
    batch_free(b[1]);
    ps_cache_close(c);
    c = open_again();
    assert_int_equal(ps_cache_meta(c)->cursor, 2 * PER_BATCH);
    assert_int_equal(records(c), 2 * PER_BATCH);
    ps_cache_close(c);
    remove_cache();
}

/* A process killed while it holds batches: nothing of them is stored and
 * the cursor is where the last commit left it, so the server sends them
 * again; a pull after it applies them as usual. */
static void test_killed_while_held(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__PullBatch *first = batch_new(PER_BATCH, 1);
    Popsync__PullBatch *held[2];
    pid_t pid;
    int wst;
    (void)state;
    assert_int_equal(ps_cache_apply_pull_held(c, first, NULL, 0, 0), PS_OK);
    held[0] = batch_new(PER_BATCH, 1);
    held[1] = batch_new(PER_BATCH, 1);
    ps_cache_close(c);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ps_cache_t *cc = open_again();
        int ok = ps_cache_apply_pull_held(cc, held[0], NULL, 0, 1) == PS_OK &&
                 ps_cache_apply_pull_held(cc, held[1], NULL, 0, 1) == PS_OK && ps_cache_pull_held(cc) == 2;
        _exit(ok ? 0 : 1); /* as kill -9: no commit, no close */
    }
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    c = open_again();
    assert_int_equal(ps_cache_meta(c)->cursor, PER_BATCH);
    assert_int_equal(records(c), PER_BATCH);
    assert_int_equal(ps_cache_apply_pull_held(c, held[0], NULL, 0, 1), PS_OK);
    assert_int_equal(ps_cache_apply_pull_held(c, held[1], NULL, 0, 0), PS_OK);
    assert_int_equal(commits(c), 1);
    assert_int_equal(ps_cache_meta(c)->cursor, 3 * PER_BATCH);
    assert_int_equal(ps_cache_pindex_finish(c), PS_OK);
    assert_int_equal(records(c), 3 * PER_BATCH);
    counters_agree(c);
    batch_free(first);
    batch_free(held[0]);
    batch_free(held[1]);
    ps_cache_close(c);
    remove_cache();
}

/* The batch bound commits the held transaction; any other operation of
 * the cache commits what is held before it runs. */
static void test_bounds_and_other_ops(void **state)
{
    ps_cache_t *c = make_cache();
    uint64_t n = 0;
    (void)state;
    for (unsigned i = 0; i < PS_PULL_HOLD_BATCHES + 1; i++) {
        Popsync__PullBatch *b = batch_new(3, 1);
        assert_int_equal(ps_cache_apply_pull_held(c, b, NULL, 0, 1), PS_OK);
        batch_free(b);
    }
    assert_int_equal(commits(c), 1);
    assert_int_equal(ps_cache_pull_held(c), 1);
    assert_int_equal(ps_cache_meta(c)->cursor, 3 * PS_PULL_HOLD_BATCHES);
    assert_int_equal(ps_cache_outbox_count(c, &n), PS_OK); /* a read commits first */
    assert_int_equal(ps_cache_pull_held(c), 0);
    assert_int_equal(commits(c), 2);
    assert_int_equal(ps_cache_meta(c)->cursor, 3 * (PS_PULL_HOLD_BATCHES + 1));
    {
        Popsync__PullBatch *b = batch_new(3, 1);
        assert_int_equal(ps_cache_apply_pull_held(c, b, NULL, 0, 1), PS_OK);
        batch_free(b);
    }
    assert_int_equal(ps_cache_set_sync_attempt(c, 1, NULL), PS_OK); /* so does a write */
    assert_int_equal(commits(c), 3);
    assert_int_equal(records(c), 3 * (PS_PULL_HOLD_BATCHES + 2));
    ps_cache_close(c);
    c = open_again();
    assert_int_equal(ps_cache_meta(c)->cursor, 3 * (PS_PULL_HOLD_BATCHES + 2));
    ps_cache_close(c);
    remove_cache();
}

/* A held group whose commit fails inside another operation (a disk
 * error; the test hook fails it): that operation goes on, the next pulled
 * batch is refused with the error instead of committing a cursor past the
 * lost group, and the group applies again when the server resends it. */
static void test_failed_commit_stops_pull(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__PullBatch *lost = batch_new(3, 1), *next = batch_new(3, 1);
    uint64_t n = 0;
    (void)state;
    assert_int_equal(ps_cache_apply_pull_held(c, lost, NULL, 0, 1), PS_OK);
    assert_int_equal(ps_cache_pull_held(c), 1);
    setenv("POPSYNC_TEST_PULL_COMMIT_FAIL", "1", 1);
    assert_int_equal(ps_cache_outbox_count(c, &n), PS_OK); /* its commit fails behind it */
    unsetenv("POPSYNC_TEST_PULL_COMMIT_FAIL");
    assert_int_equal(ps_cache_pull_held(c), 0);
    assert_int_equal(ps_cache_meta(c)->cursor, 0);
    assert_int_equal(ps_cache_apply_pull_held(c, next, NULL, 0, 0), PS_EIO);
    assert_int_equal(ps_cache_meta(c)->cursor, 0); /* not moved past the lost group */
    assert_int_equal(records(c), 0);
    assert_int_equal(ps_cache_pull_commit(c), PS_OK); /* told once */
    assert_int_equal(ps_cache_apply_pull_held(c, lost, NULL, 0, 1), PS_OK);
    assert_int_equal(ps_cache_apply_pull_held(c, next, NULL, 0, 0), PS_OK);
    assert_int_equal(ps_cache_meta(c)->cursor, 6);
    assert_int_equal(records(c), 6);
    batch_free(lost);
    batch_free(next);
    ps_cache_close(c);
    c = open_again();
    assert_int_equal(ps_cache_meta(c)->cursor, 6);
    assert_int_equal(records(c), 6);
    ps_cache_close(c);
    remove_cache();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_together),
        cmocka_unit_test(test_cut_keeps_applied),
        cmocka_unit_test(test_killed_while_held),
        cmocka_unit_test(test_bounds_and_other_ops),
        cmocka_unit_test(test_failed_commit_stops_pull),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
