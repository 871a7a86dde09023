/* memtrim.c - freed heap given back to the kernel (docs/performance.md §d).
 *
 * glibc keeps freed memory for reuse, and free() hands back only the top
 * of a heap.  The holes a burst leaves between blocks that stay (a TLS
 * handshake's temporaries, freed on the handshake threads between the
 * connection's own structures; the buffers a quiet connection gives back)
 * stay resident until malloc_trim walks the free lists.  At 1,000 idle
 * clients just connected that was about 15 KB per connection, as much as
 * the connections themselves.  So popsyncd trims every half minute, and
 * also soon after connections go quiet, but never twice within
 * PS_MEMTRIM_GAP_MS: a server with clients coming and going all the time
 * trims at a bounded rate.
 *
 * A trim runs on a libuv worker: it takes each malloc arena's lock in turn
 * and gives back whole free pages, milliseconds for a heap of a few hundred
 * MB, during which the loop thread's own mallocs may wait on its arena.
 * The kept Push arenas go too (ps_msg_arena_pool_drain): a quiet server
 * needs none, a busy one maps a few blocks again.
 *
 * Threads: ps_memtrim_* on the loop thread; trim_work on a worker.
 */
#include "memtrim.h"
#include "msg.h"

#include <malloc.h>

static struct {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_work_t work;
    int started;    /* the timer is initialised and not closed */
    int running;    /* trim_work queued or running */
    int soon;       /* connections went quiet since the last trim began */
    int reason;     /* of the running trim */
    uint64_t last;  /* uv_now when the last trim began */
    uint64_t count[2];
} g;

static void on_timer(uv_timer_t *t);

static void trim_work(uv_work_t *w)
{
    (void)w;
    ps_msg_arena_pool_drain();
    malloc_trim(0);
}

static void trim_done(uv_work_t *w, int status)
{
    (void)w;
    g.running = 0;
    if (status == 0)
        g.count[g.reason]++;
}

/* Fires for the half-minute trim or for a quiet one brought forward; either
 * way the next periodic one is a whole period after this. */
static void on_timer(uv_timer_t *t)
{
    if (g.running) {
        uv_timer_start(t, on_timer, 100, 0); /* the worker is still at the last one */
        return;
    }
    g.reason = g.soon ? PS_MEMTRIM_QUIET : PS_MEMTRIM_PERIODIC;
    g.soon = 0;
    g.last = uv_now(g.loop);
    g.running = 1;
    if (uv_queue_work(g.loop, &g.work, trim_work, trim_done) != 0)
        g.running = 0;
    uv_timer_start(t, on_timer, PS_MEMTRIM_PERIOD_MS, 0);
}

void ps_memtrim_start(uv_loop_t *loop)
{
    g.loop = loop;
    g.last = uv_now(loop);
    uv_timer_init(loop, &g.timer);
    uv_timer_start(&g.timer, on_timer, PS_MEMTRIM_PERIOD_MS, 0);
    uv_unref((uv_handle_t *)&g.timer); /* never keeps the loop alive on shutdown */
    g.started = 1;
}

void ps_memtrim_soon(void)
{
    uint64_t now, due;

    if (!g.started || g.soon)
        return;
    g.soon = 1;
    now = uv_now(g.loop);
    due = g.last + PS_MEMTRIM_GAP_MS > now ? g.last + PS_MEMTRIM_GAP_MS - now : 0;
    if (due < uv_timer_get_due_in(&g.timer))
        uv_timer_start(&g.timer, on_timer, due, 0);
}

void ps_memtrim_stop(void)
{
    if (!g.started)
        return;
    g.started = 0;
    uv_close((uv_handle_t *)&g.timer, NULL);
}

uint64_t ps_memtrim_count(ps_memtrim_reason_t reason)
{
    return reason == PS_MEMTRIM_QUIET ? g.count[1] : g.count[0];
}
