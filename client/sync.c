/* sync.c - push then pull: one sync of the cache over a link.
 *
 * Requests, one in flight at a time (docs/protocol.md, "Session"):
 *   Push -> PushResult, repeated          until the outbox is empty
 *   Pull -> PullBatch, repeated           until the server has no more
 *   [FetchRequest -> PullBatch]           re-read records the server refused
 *                                         or merged (client/fetch.c)
 * Every answer is applied to the cache in its own transaction.  Hello,
 * Welcome and the org-unit tree are the link's (client/link.c); matching
 * answers to requests is the session's (client/session.c).
 */
#include "sync.h"
#include "err.h"
#include "fetch.h"
#include "ids.h"
#include "msgtab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sync_run {
    ps_link_t *l;
    ps_cache_t *cache;
    ps_sync_stats_t *st;
    unsigned flags;
    uint32_t want_batch;        /* our push_batch */
    uint32_t push_max;          /* changes per Push, from our wish and Welcome */
    size_t push_max_bytes;      /* bytes per Push, from Welcome.max_frame */
    Popsync__Push *inflight;
    uint64_t outbox_total;
    int progress_open;          /* a progress line is on the terminal, not yet ended */
    ps_idlist_t refetch;        /* ids the server refused, kept as conflicts or merged */
    ps_sync_done_fn done;
    void *arg;
} sync_run_t;

/* Ends the progress line, so what is printed next starts a line of its own. */
static void progress_end(sync_run_t *r)
{
    if (r->progress_open)
        fputc('\n', stderr);
    r->progress_open = 0;
}

static void progress(sync_run_t *r, const char *phase)
{
    const ps_sync_stats_t *st = r->st;
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

/* The end of the sync, well or not: a cut sync leaves its line open. */
static void sync_end(sync_run_t *r, int status)
{
    ps_sync_done_fn done = r->done;
    ps_link_t *l = r->l;
    void *arg = r->arg;
    progress_end(r);
    if (r->inflight)
        ps_cache_push_free(r->inflight);
    ps_idlist_free(&r->refetch);
    free(r);
    if (done)
        done(l, status, arg);
}

/* A step failed: the session fails (its first failure's text is kept) and
 * so does the sync. */
static int sync_fail(sync_run_t *r, int rc, const char *what)
{
    ps_session_fail(r->l->s, rc, "%s: %s", what, ps_strerror(rc));
    sync_end(r, ps_session_status(r->l->s));
    return rc;
}

static int on_push_result(ps_session_t *s, int status, ProtobufCMessage **m, void *arg);
static int on_pull_batch(ps_session_t *s, int status, ProtobufCMessage **m, void *arg);

static int send_pull(sync_run_t *r)
{
    Popsync__Pull p = POPSYNC__PULL__INIT;
    int64_t id;
    p.cursor = ps_cache_meta(r->cache)->cursor;
    id = ps_session_request(r->l->s, PS_MSG_PULL, &p.base, 0, on_pull_batch, r);
    return id < 0 ? sync_fail(r, (int)id, "cannot send Pull") : PS_OK;
}

/* The next Push from the outbox, or the pull when it is empty. */
static int next_push(sync_run_t *r)
{
    Popsync__Push *p = NULL;
    int64_t id;
    int rc = ps_cache_outbox_batch(r->cache, r->push_max, r->push_max_bytes, &p);
    if (rc)
        return sync_fail(r, rc, "reading the outbox");
    if (p->n_changes == 0) {
        ps_cache_push_free(p);
        progress_end(r);
        if (r->flags & PS_SYNC_PUSH_ONLY) {
            sync_end(r, PS_OK);
            return PS_OK;
        }
        return send_pull(r);
    }
    /* The clock the outbox was stamped with: the server measures our
     * clock's error from it and moves the changes' times by it. */
    if (!r->l->legacy_clock)
        p->clock_ms = ps_cache_clock_ms(r->cache);
    r->inflight = p;
    id = ps_session_request(r->l->s, PS_MSG_PUSH, &p->base, 0, on_push_result, r);
    return id < 0 ? sync_fail(r, (int)id, "cannot send Push") : PS_OK;
}

/* The link is ready: the Welcome's limits, then the first Push. */
static void begin(ps_session_t *s, int status, void *arg)
{
    sync_run_t *r = arg;
    const Popsync__Welcome *w = ps_session_welcome(s);
    if (status) {
        sync_end(r, status);
        return;
    }
    r->st->welcomed = 1;
    r->st->head = w->head;
    r->st->conflicts_lost = w->conflicts_lost;
    if (r->l->clock_skew_ms > PS_CLOCK_TOLERANCE_MS || r->l->clock_skew_ms < -PS_CLOCK_TOLERANCE_MS)
        r->st->clock_skew_ms = r->l->clock_skew_ms;
    r->push_max = w->max_batch && w->max_batch < r->want_batch ? w->max_batch : r->want_batch;
    /* Leave room for the envelope of each change within the frame limit. */
    r->push_max_bytes = 4u << 20;
    if (w->max_frame && w->max_frame / 2 < r->push_max_bytes)
        r->push_max_bytes = w->max_frame / 2;
    /* A cheap count: ps_cache_counts would open every sealed record. */
    ps_cache_outbox_count(r->cache, &r->outbox_total);
    next_push(r);
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
static int count_result(sync_run_t *r, const Popsync__PushResult *res, const Popsync__ChangeResult *cr, size_t i)
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
                                 merged_result(r->inflight, cr, i)));
}

static int on_push_result(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    sync_run_t *r = arg;
    Popsync__PushResult *res;
    int rc;
    (void)s;
    if (status) {
        sync_end(r, status);
        return status;
    }
    res = (Popsync__PushResult *)*m;
    if ((rc = ps_cache_outbox_ack(r->cache, r->inflight, res)))
        return sync_fail(r, rc, "recording the push result");
    if (res->clock_skew_ms)
        r->st->push_clock_skew_ms = res->clock_skew_ms;
    for (size_t i = 0; i < res->n_results; i++)
        if (count_result(r, res, res->results[i], i))
            ps_idlist_add(&r->refetch, res->results[i]->id.data);
    ps_cache_push_free(r->inflight);
    r->inflight = NULL;
    progress(r, "push");
    return next_push(r);
}

static void refetch_done(ps_link_t *l, int status, uint64_t got, uint64_t asked, void *arg)
{
    sync_run_t *r = arg;
    (void)l;
    (void)asked;
    r->st->refetched += got;
    sync_end(r, status);
}

static int on_pull_batch(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    sync_run_t *r = arg;
    Popsync__PullBatch *b;
    int rc;
    (void)s;
    if (status) {
        sync_end(r, status);
        return status;
    }
    b = (Popsync__PullBatch *)*m;
    if ((rc = ps_cache_apply_pull(r->cache, b)))
        return sync_fail(r, rc, "applying pulled records");
    r->st->pulled += b->n_entries;
    r->st->cursor = b->cursor;
    r->st->head = b->head;
    progress(r, "pull");
    if (b->more)
        return send_pull(r);
    if ((rc = ps_fetch_start(r->l, &r->refetch, refetch_done, r)))
        return sync_fail(r, rc, "re-reading refused records");
    return PS_OK;
}

static int add_refused(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg)
{
    (void)res;
    if (ch->record && ch->record->id.len == 16)
        ps_idlist_add(arg, ch->record->id.data);
    return 0;
}

int ps_sync_start(ps_link_t *l, uint32_t push_batch, unsigned flags, ps_sync_stats_t *stats, ps_sync_done_fn done,
                  void *arg)
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
    stats->cursor = ps_cache_meta(l->cache)->cursor;
    /* Records the server refused are re-read after the pull.  Refusals are
     * kept in the cache, so one recorded by a sync that was cut before its
     * re-read is still settled by this one. */
    ps_cache_foreach_rejected(l->cache, add_refused, &r->refetch);
    if ((rc = ps_session_when_ready(l->s, begin, r))) {
        ps_idlist_free(&r->refetch);
        free(r);
    }
    return rc;
}

static void mark_done(ps_link_t *l, int status, void *arg)
{
    (void)l;
    *(int *)arg = status == PS_OK ? 1 : -1;
}

int ps_sync_on(ps_link_t *l, uint32_t push_batch, unsigned flags, ps_sync_stats_t *stats)
{
    int done = 0;
    int rc = ps_sync_start(l, push_batch, flags, stats, mark_done, &done);
    if (rc == PS_OK)
        rc = ps_link_run(l);
    if (rc == PS_OK && done != 1)
        rc = PS_ECLOSED;
    return rc;
}

void ps_sync_record(ps_cache_t *c, int rc, const char *err)
{
    uint64_t now = ps_now_ms();
    if (rc == PS_OK)
        ps_cache_set_last_sync(c, now);
    /* `popsync status` tells when a sync was last tried and why it failed. */
    ps_cache_set_sync_attempt(c, now, rc ? err : NULL);
}

int ps_sync_run(ps_cache_t *c, uint32_t push_batch, unsigned flags, uint64_t timeout_ms, const ps_link_test_t *test,
                ps_sync_stats_t *stats, char *err, size_t errlen)
{
    ps_link_t *l;
    int rc;
    memset(stats, 0, sizeof(*stats));
    rc = ps_link_open(&l, NULL, c, timeout_ms, (flags & PS_SYNC_NO_COMPRESSION) ? PS_LINK_NO_COMPRESSION : 0, test,
                      err, errlen);
    if (rc == PS_OK) {
        rc = ps_sync_on(l, push_batch, flags, stats);
        rc = ps_link_close(l, rc, err, errlen, &stats->bytes_in, &stats->bytes_out);
    }
    ps_sync_record(c, rc, err);
    return rc;
}

int ps_sync_with_conflicts(ps_cache_t *c, uint32_t push_batch, unsigned flags, uint64_t timeout_ms,
                           ps_sync_stats_t *stats, ps_conflicts_fn fn, void *arg, char *err, size_t errlen)
{
    ps_link_t *l;
    int rc;
    memset(stats, 0, sizeof(*stats));
    rc = ps_link_open(&l, NULL, c, timeout_ms, (flags & PS_SYNC_NO_COMPRESSION) ? PS_LINK_NO_COMPRESSION : 0, NULL,
                      err, errlen);
    if (rc == PS_OK) {
        rc = ps_sync_on(l, push_batch, flags, stats);
        if (rc == PS_OK && fn && (rc = ps_rq_conflicts(l->s, 0, fn, arg)) == PS_OK)
            rc = ps_link_run(l);
        rc = ps_link_close(l, rc, err, errlen, &stats->bytes_in, &stats->bytes_out);
    }
    ps_sync_record(c, rc, err);
    return rc;
}
