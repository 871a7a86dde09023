/* sync.c - push then pull: one sync of the cache over a link.
 *
 * Requests (docs/protocol.md §7), up to the window in flight at once:
 *   Push -> PushResult, repeated          until the outbox is empty
 *   Pull -> PullBatch, repeated           until the server has no more
 *   [FetchRequest -> PullBatch]           re-read records the server refused
 *                                         or merged (client/fetch.c)
 * Every answer is applied to the cache in the order the requests were
 * sent, a PushResult in its own transaction; PullBatches whose successors
 * have already begun to arrive share one (ps_cache_apply_pull_held, at
 * most 8), committed before anything else is done.  The pull starts once
 * every Push is answered (it must see them, and it follows their results).  Hello,
 * Welcome and the org-unit tree are the link's (client/link.c); matching
 * answers to requests is the session's (client/session.c).
 */
#include "sync.h"
#include "err.h"
#include "fetch.h"
#include "frame.h"
#include "ids.h"
#include "msgtab.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pulls in flight at most, and the feed sequences one PullBatch is guessed
 * to span until one came (then the last one's span): no more Pulls are sent
 * ahead than the gap between our cursor and the server's head could fill,
 * so a small sync sends one. */
#define PULL_WINDOW_MAX 4u
#define PULL_GUESS 5000u

typedef struct sync_run sync_run_t;

/* A Push in flight: sent, its answer not yet applied. */
typedef struct push_fl {
    struct push_fl *next;
    sync_run_t *r;
    Popsync__Push *p;
    size_t bytes;
} push_fl_t;

struct sync_run {
    ps_link_t *l;
    ps_cache_t *cache;
    ps_sync_stats_t *st;
    unsigned flags;
    uint32_t want_batch;        /* our push_batch */
    uint32_t push_max;          /* changes per Push, from our wish and Welcome */
    size_t push_max_bytes;      /* bytes per Push, from Welcome.max_frame */
    uint32_t window;            /* requests in flight at most (Welcome.window; 1 from an older server) */
    size_t window_bytes;        /* their frame bytes at most (Welcome.window_bytes) */
    push_fl_t *fl_head, *fl_tail; /* pushes in flight, oldest first */
    uint32_t nfl;
    size_t fl_bytes;
    uint64_t last_lcn;          /* the newest change sent */
    uint32_t pull_window;       /* pulls in flight at most */
    uint32_t pull_max_bytes;    /* Pull.max_bytes when pipelining */
    uint32_t npull;             /* pulls in flight */
    int pulls_sent;             /* a Pull went out: the next ones follow it */
    int pull_more;              /* the latest PullBatch said more (or none came yet) */
    uint64_t pull_span;         /* feed sequences the latest PullBatch with more spanned */
    unsigned outstanding;       /* our requests whose callback is still to come */
    int depth;                  /* our callbacks on the stack */
    int finished;               /* done was called */
    uint64_t outbox_total;
    int progress_open;          /* a progress line is on the terminal, not yet ended */
    ps_idlist_t refetch;        /* ids the server refused, kept as conflicts or merged */
    ps_sync_done_fn done;
    void *arg;
    ps_sync_progress_fn progress_fn; /* the caller's progress display, or NULL */
    void *progress_arg;
    uint64_t start_cursor;
};

/* Ends the progress line, so what is printed next starts a line of its own. */
static void progress_end(sync_run_t *r)
{
    if (r->progress_open)
        fputc('\n', stderr);
    r->progress_open = 0;
}

/* Tells the caller's progress function where the sync is. */
static void progress_tell(sync_run_t *r)
{
    const ps_sync_stats_t *st = r->st;
    ps_sync_progress_t p;
    if (!r->progress_fn)
        return;
    p.pushed = st->accepted + st->duplicate + st->rejected + st->conflicts;
    p.push_total = r->outbox_total > p.pushed ? r->outbox_total : p.pushed;
    p.pulled = st->cursor > r->start_cursor ? st->cursor - r->start_cursor : 0;
    p.pull_total = st->head > r->start_cursor ? st->head - r->start_cursor : 0;
    if (p.pull_total < p.pulled)
        p.pull_total = p.pulled;
    r->progress_fn(&p, r->progress_arg);
}

static void progress(sync_run_t *r, const char *phase)
{
    const ps_sync_stats_t *st = r->st;
    progress_tell(r);
    if (!(r->flags & PS_SYNC_PROGRESS))
        return;
    r->progress_open = 1;
    if (strcmp(phase, "push") == 0)
        fprintf(stderr, "\rpush: %llu/%llu sent   ",
                (unsigned long long)(st->accepted + st->duplicate + st->rejected + st->conflicts),
                (unsigned long long)r->outbox_total);
    else
        fprintf(stderr, "\rpull: %llu records, at %llu of %llu   ", (unsigned long long)st->pulled,
                (unsigned long long)st->cursor, (unsigned long long)st->head);
}

static void run_free(sync_run_t *r)
{
    push_fl_t *e, *next;
    for (e = r->fl_head; e; e = next) {
        next = e->next;
        ps_cache_push_free(e->p);
        free(e);
    }
    ps_idlist_free(&r->refetch);
    free(r);
}

/* The run is freed once it is finished, none of its callbacks is still to
 * come (a failed session calls each of them once) and none is running. */
static void maybe_free(sync_run_t *r)
{
    if (r->finished && !r->outstanding && !r->depth)
        run_free(r);
}

/* The end of the sync, well or not, once: a cut sync leaves its line open. */
static void sync_end(sync_run_t *r, int status)
{
    if (r->finished)
        return;
    r->finished = 1;
    /* Batches applied before a failure are kept, as if each had its own
     * transaction (a failed commit leaves the cursor before them). */
    ps_cache_pull_commit(r->cache);
    PS_TRACE("client", "sync end (%d)", status);
    progress_end(r);
    if (r->done)
        r->done(r->l, status, r->arg);
    maybe_free(r);
}

/* A step failed: the session fails (its first failure's text is kept) and
 * so does the sync. */
static int sync_fail(sync_run_t *r, int rc, const char *what)
{
    ps_session_fail(r->l->s, rc, "%s: %s", what, ps_strerror(rc));
    sync_end(r, ps_session_status(r->l->s));
    return rc;
}

static void note_in_flight(sync_run_t *r)
{
    uint32_t n = r->nfl + r->npull;
    if (n > r->st->max_in_flight)
        r->st->max_in_flight = n;
}

static int on_push_result(ps_session_t *s, int status, ProtobufCMessage **m, void *arg);
static int on_pull_batch(ps_session_t *s, int status, ProtobufCMessage **m, void *arg);
static void refetch_done(ps_link_t *l, int status, uint64_t got, uint64_t asked, void *arg);

static int send_pull(sync_run_t *r)
{
    Popsync__Pull p = POPSYNC__PULL__INIT;
    int64_t id;
    /* Pipelined, the next Pull goes on from where the one before it ends,
     * which only the server knows yet; one at a time, from our cursor. */
    if (r->pulls_sent && r->window > 1)
        p.follow = 1;
    else
        p.cursor = ps_cache_meta(r->cache)->cursor;
    if (r->window > 1)
        p.max_bytes = r->pull_max_bytes;
    /* Our pushes' answers are in the cache (the pull starts after the last
     * ack): the versions stored exactly as we sent them need not come back
     * (docs/protocol.md §9.1). */
    p.skip_own = 1;
    PS_TRACE("client", "Pull out");
    r->outstanding++;
    id = ps_session_request(r->l->s, PS_MSG_PULL, &p.base, 0, on_pull_batch, r);
    if (id < 0) {
        r->outstanding--;
        return sync_fail(r, (int)id, "cannot send Pull");
    }
    r->npull++;
    r->pulls_sent = 1;
    note_in_flight(r);
    return PS_OK;
}

/* Pulls while the server has more and the window has room; at the end,
 * the re-read of refused records. */
static int fill_pull(sync_run_t *r)
{
    const ps_sync_stats_t *st = r->st;
    uint64_t gap = st->head > st->cursor ? st->head - st->cursor : 0;
    uint64_t ahead = 1 + gap / (r->pull_span ? r->pull_span : PULL_GUESS);
    int rc;
    while (r->pull_more && r->npull < r->pull_window && r->npull < ahead)
        if ((rc = send_pull(r)))
            return rc;
    if (r->npull)
        return PS_OK;
    if ((rc = ps_cache_pull_commit(r->cache)))
        return sync_fail(r, rc, "applying pulled records");
    PS_TRACE("client", "pull done; re-read of %zu refused", r->refetch.n);
    if ((rc = ps_fetch_start(r->l, &r->refetch, refetch_done, r)))
        return sync_fail(r, rc, "re-reading refused records");
    return PS_OK;
}

static int send_push(sync_run_t *r, Popsync__Push *p)
{
    push_fl_t *e = calloc(1, sizeof(*e));
    int64_t id;
    if (!e) {
        ps_cache_push_free(p);
        return sync_fail(r, PS_ENOMEM, "sending a push");
    }
    e->r = r;
    e->p = p;
    /* The clock the outbox was stamped with: the server measures our
     * clock's error from it and moves the changes' times by it. */
    if (!r->l->legacy_clock)
        p->clock_ms = ps_cache_clock_ms(r->cache);
    /* The answers of the pushes still in flight are not in the cache yet:
     * the server must remember them for a resend (docs/protocol.md §8.1). */
    if (r->fl_head)
        p->ack_floor = r->fl_head->p->changes[0]->lcn;
    e->bytes = popsync__push__get_packed_size(p) + PS_FRAME_HDR;
    r->last_lcn = p->changes[p->n_changes - 1]->lcn;
    if (r->fl_tail)
        r->fl_tail->next = e;
    else
        r->fl_head = e;
    r->fl_tail = e;
    r->nfl++;
    r->fl_bytes += e->bytes;
    PS_TRACE("client", "Push out (%zu changes)", p->n_changes);
    r->outstanding++;
    id = ps_session_request(r->l->s, PS_MSG_PUSH, &p->base, 0, on_push_result, e);
    if (id < 0) {
        r->outstanding--;
        return sync_fail(r, (int)id, "cannot send Push");
    }
    note_in_flight(r);
    return PS_OK;
}

/* Pushes from the outbox while the window has room; once everything is
 * sent and answered, the pull (or the end, PS_SYNC_PUSH_ONLY). */
static int fill_push(sync_run_t *r)
{
    while (r->nfl < r->window && (r->nfl == 0 || r->fl_bytes < r->window_bytes)) {
        Popsync__Push *p = NULL;
        int rc = ps_cache_outbox_batch_after(r->cache, r->last_lcn, r->push_max, r->push_max_bytes, &p);
        if (rc)
            return sync_fail(r, rc, "reading the outbox");
        if (p->n_changes == 0) {
            ps_cache_push_free(p);
            break;
        }
        if ((rc = send_push(r, p)))
            return rc;
    }
    if (r->nfl)
        return PS_OK;
    progress_end(r);
    if (r->flags & PS_SYNC_PUSH_ONLY) {
        sync_end(r, PS_OK);
        return PS_OK;
    }
    return fill_pull(r);
}

/* The link is ready: the Welcome's limits, then the first Pushes. */
static void begin(ps_session_t *s, int status, void *arg)
{
    sync_run_t *r = arg;
    const Popsync__Welcome *w = ps_session_welcome(s);
    uint32_t wbytes = 0;
    if (status) {
        sync_end(r, status);
        return;
    }
    r->st->welcomed = 1;
    PS_TRACE("client", "ready (head %llu)", (unsigned long long)w->head);
    r->st->head = w->head;
    r->st->conflicts_lost = w->conflicts_lost;
    if (r->l->clock_skew_ms > PS_CLOCK_TOLERANCE_MS || r->l->clock_skew_ms < -PS_CLOCK_TOLERANCE_MS)
        r->st->clock_skew_ms = r->l->clock_skew_ms;
    r->push_max = w->max_batch && w->max_batch < r->want_batch ? w->max_batch : r->want_batch;
    /* Leave room for the envelope of each change within the frame limit. */
    r->push_max_bytes = 4u << 20;
    if (w->max_frame && w->max_frame / 2 < r->push_max_bytes)
        r->push_max_bytes = w->max_frame / 2;
    r->window = ps_session_window(s, &wbytes);
    r->window_bytes = wbytes;
    r->pull_window = r->window < PULL_WINDOW_MAX ? r->window : PULL_WINDOW_MAX;
    r->pull_max_bytes = wbytes / r->pull_window;
    r->pull_more = 1;
    /* A cheap count: ps_cache_counts would open every sealed record. */
    ps_cache_outbox_count(r->cache, &r->outbox_total);
    progress_tell(r);
    r->depth++;
    fill_push(r);
    r->depth--;
    maybe_free(r);
}

/* Was this accepted change merged with others (not applied on its base)? */
static int merged_result(const Popsync__Push *sent, const Popsync__ChangeResult *cr, size_t pos)
{
    if (pos < sent->n_changes && sent->changes[pos]->lcn == cr->lcn) {
        const Popsync__Change *ch = sent->changes[pos];
        return !cr->rev || cr->rev->gen != (ch->base_rev ? ch->base_rev->gen : 0) + 1;
    }
    for (size_t i = 0; i < sent->n_changes; i++) {
        const Popsync__Change *ch = sent->changes[i];
        if (ch->lcn == cr->lcn)
            return !cr->rev || cr->rev->gen != (ch->base_rev ? ch->base_rev->gen : 0) + 1;
    }
    return 0;
}

/* Counts one change's outcome; 1 when its record must be read back
 * after the pull (the local copy shows what was refused, or lacks what a
 * merge added). */
static int count_result(sync_run_t *r, const Popsync__Push *sent, const Popsync__PushResult *res,
                        const Popsync__ChangeResult *cr, size_t i)
{
    ps_sync_stats_t *st = r->st;
    switch (cr->status) {
    case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED:
        st->accepted++;
        if (res->clock_skew_ms)
            st->retimed++;
        if (cr->conflict_id.len)
            st->merged_conflicts++;
        break;
    case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE: st->duplicate++; break;
    case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_REJECTED: st->rejected++; break;
    case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT: st->conflicts++; break;
    default: break;
    }
    return cr->id.len == 16 && (cr->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_REJECTED ||
                                cr->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT ||
                                ((cr->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED ||
                                  (cr->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE && cr->rev)) &&
                                 merged_result(sent, cr, i)));
}

/* The answer to the oldest Push in flight, applied durably before the
 * next one's: the outbox moves on only in the order changes were sent. */
static int push_answered(sync_run_t *r, push_fl_t *e, const Popsync__PushResult *res)
{
    int rc;
    if (e != r->fl_head)
        return sync_fail(r, PS_EPROTO, "the server answered pushes out of order");
    PS_TRACE("client", "PushResult in");
    if ((rc = ps_cache_outbox_ack(r->cache, e->p, res)))
        return sync_fail(r, rc, "recording the push result");
    PS_TRACE("client", "PushResult recorded");
    if (res->clock_skew_ms)
        r->st->push_clock_skew_ms = res->clock_skew_ms;
    for (size_t i = 0; i < res->n_results; i++)
        if (count_result(r, e->p, res, res->results[i], i))
            ps_idlist_add(&r->refetch, res->results[i]->id.data);
    r->fl_head = e->next;
    if (!r->fl_head)
        r->fl_tail = NULL;
    r->nfl--;
    r->fl_bytes -= e->bytes;
    ps_cache_push_free(e->p);
    free(e);
    progress(r, "push");
    return fill_push(r);
}

static int on_push_result(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    push_fl_t *e = arg;
    sync_run_t *r = e->r;
    int rc = status;
    (void)s;
    r->outstanding--;
    r->depth++;
    if (status)
        sync_end(r, status);
    else if (!r->finished)
        rc = push_answered(r, e, (Popsync__PushResult *)*m);
    r->depth--;
    maybe_free(r);
    return rc;
}

static void refetch_done(ps_link_t *l, int status, uint64_t got, uint64_t asked, void *arg)
{
    sync_run_t *r = arg;
    (void)l;
    (void)asked;
    r->st->refetched += got;
    sync_end(r, status);
}

static int pull_answered(sync_run_t *r, ps_session_t *s, const Popsync__PullBatch *b)
{
    const uint8_t *body = NULL;
    size_t len = 0;
    int rc, hold;
    ps_session_body(s, &body, &len); /* none: every record is packed again */
    PS_TRACE("client", "PullBatch in (%zu entries, more %d)", b->n_entries, (int)b->more);
    /* The next batch, already asked for, has begun to arrive: this one
     * waits for it in the same transaction (one commit for both). */
    hold = b->more && r->npull > 0 && ps_session_input_waiting(s);
    if ((rc = ps_cache_apply_pull_held(r->cache, b, body, len, hold)))
        return sync_fail(r, rc, "applying pulled records");
    PS_TRACE("client", "PullBatch applied");
    r->st->pulled += b->n_entries;
    if (b->more && b->cursor > r->st->cursor)
        r->pull_span = b->cursor - r->st->cursor;
    r->st->cursor = b->cursor;
    r->st->head = b->head;
    r->pull_more = b->more;
    progress(r, "pull");
    return fill_pull(r);
}

static int on_pull_batch(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    sync_run_t *r = arg;
    int rc = status;
    r->outstanding--;
    r->depth++;
    if (status) {
        sync_end(r, status);
    } else if (!r->finished) {
        r->npull--;
        rc = pull_answered(r, s, (Popsync__PullBatch *)*m);
    }
    r->depth--;
    maybe_free(r);
    return rc;
}

static int add_refused(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg)
{
    (void)res;
    if (ch->record && ch->record->id.len == 16)
        ps_idlist_add(arg, ch->record->id.data);
    return 0;
}

/* ps_sync_start with a progress function (may be NULL). */
static int sync_start(ps_link_t *l, uint32_t push_batch, unsigned flags, ps_sync_stats_t *stats, ps_sync_done_fn done,
                      void *arg, ps_sync_progress_fn progress_fn, void *progress_arg)
{
    sync_run_t *r = calloc(1, sizeof(*r));
    int rc;
    memset(stats, 0, sizeof(*stats));
    if (!r)
        return PS_ENOMEM;
    r->l = l;
    r->cache = l->cache;
    r->st = stats;
    r->flags = flags;
    r->want_batch = push_batch ? push_batch : 1000;
    r->done = done;
    r->arg = arg;
    r->progress_fn = progress_fn;
    r->progress_arg = progress_arg;
    stats->cursor = r->start_cursor = ps_cache_meta(l->cache)->cursor;
    /* Records the server refused are re-read after the pull.  Refusals are
     * kept in the cache, so one recorded by a sync that was cut before its
     * re-read is still settled by this one. */
    ps_cache_foreach_rejected(l->cache, add_refused, &r->refetch);
    if ((rc = ps_session_when_ready(l->s, begin, r)))
        run_free(r);
    return rc;
}

int ps_sync_start(ps_link_t *l, uint32_t push_batch, unsigned flags, ps_sync_stats_t *stats, ps_sync_done_fn done,
                  void *arg)
{
    return sync_start(l, push_batch, flags, stats, done, arg, NULL, NULL);
}

static void mark_done(ps_link_t *l, int status, void *arg)
{
    (void)l;
    *(int *)arg = status == PS_OK ? 1 : -1;
}

/* ps_sync_on with a progress function (may be NULL). */
static int sync_on(ps_link_t *l, uint32_t push_batch, unsigned flags, ps_sync_stats_t *stats,
                   ps_sync_progress_fn progress_fn, void *progress_arg)
{
    int done = 0;
    int rc = sync_start(l, push_batch, flags, stats, mark_done, &done, progress_fn, progress_arg);
    if (rc == PS_OK)
        rc = ps_link_run(l);
    if (rc == PS_OK && done != 1)
        rc = PS_ECLOSED;
    return rc;
}

int ps_sync_on(ps_link_t *l, uint32_t push_batch, unsigned flags, ps_sync_stats_t *stats)
{
    return sync_on(l, push_batch, flags, stats, NULL, NULL);
}

void ps_sync_record(ps_cache_t *c, int rc, const char *err)
{
    /* A cold pull leaves the person index's entries to one ordered build
     * (cache.h): done here, so `popsync find` is quick right after; when
     * it fails, the next lookup builds it. */
    ps_cache_pindex_finish(c);
    /* `popsync status` tells when a sync was last tried and why it failed;
     * a completed one is recorded in the same transaction (one fsync). */
    ps_cache_set_sync_attempt(c, ps_now_ms(), rc ? (err && *err ? err : ps_strerror(rc)) : NULL);
}

int ps_sync_run(ps_cache_t *c, uint32_t push_batch, unsigned flags, uint64_t timeout_ms, const ps_link_test_t *test,
                ps_sync_stats_t *stats, char *err, size_t errlen)
{
    ps_link_t *l;
    int rc;
    memset(stats, 0, sizeof(*stats));
    PS_TRACE("client", "sync start");
    rc = ps_link_open(&l, NULL, c, timeout_ms, (flags & PS_SYNC_NO_COMPRESSION) ? PS_LINK_NO_COMPRESSION : 0, test,
                      err, errlen);
    PS_TRACE("client", "connecting");
    if (rc == PS_OK) {
        rc = ps_sync_on(l, push_batch, flags, stats);
        PS_TRACE("client", "closing");
        rc = ps_link_close(l, rc, err, errlen, &stats->bytes_in, &stats->bytes_out);
        PS_TRACE("client", "closed");
    }
    ps_sync_record(c, rc, err);
    PS_TRACE("client", "sync recorded");
    return rc;
}

int ps_sync_with_conflicts(ps_cache_t *c, uint32_t push_batch, unsigned flags, uint64_t timeout_ms,
                           ps_sync_stats_t *stats, ps_conflicts_fn fn, void *arg, char *err, size_t errlen)
{
    return ps_sync_with_progress(c, push_batch, flags, timeout_ms, stats, fn, arg, NULL, NULL, err, errlen);
}

int ps_sync_with_progress(ps_cache_t *c, uint32_t push_batch, unsigned flags, uint64_t timeout_ms,
                          ps_sync_stats_t *stats, ps_conflicts_fn fn, void *arg, ps_sync_progress_fn progress_fn,
                          void *progress_arg, char *err, size_t errlen)
{
    ps_link_t *l;
    int rc;
    memset(stats, 0, sizeof(*stats));
    PS_TRACE("client", "sync start");
    rc = ps_link_open(&l, NULL, c, timeout_ms, (flags & PS_SYNC_NO_COMPRESSION) ? PS_LINK_NO_COMPRESSION : 0, NULL,
                      err, errlen);
    PS_TRACE("client", "connecting");
    if (rc == PS_OK) {
        rc = sync_on(l, push_batch, flags, stats, progress_fn, progress_arg);
        if (rc == PS_OK && fn && (rc = ps_rq_conflicts(l->s, 0, fn, arg)) == PS_OK)
            rc = ps_link_run(l);
        PS_TRACE("client", "closing");
        rc = ps_link_close(l, rc, err, errlen, &stats->bytes_in, &stats->bytes_out);
        PS_TRACE("client", "closed");
    }
    ps_sync_record(c, rc, err);
    PS_TRACE("client", "sync recorded");
    return rc;
}
