/* sync.c - one sync session of the client against popsyncd.
 *
 * Phases, each a request and its answer (docs/protocol.md, "Session"):
 *   Hello -> Welcome                      identity, cursor, limits, clock
 *   [OrgUnitsRequest -> OrgUnits]         when the server's tree changed
 *   Push -> PushResult, repeated          until the outbox is empty
 *   Pull -> PullBatch, repeated           until the server has no more
 *   [FetchRequest -> PullBatch]           re-read records the server refused
 *   [VerifyRequest -> VerifyDigests,
 *    VerifyBucketRequest -> VerifyBucketList,
 *    FetchRequest -> PullBatch]           `popsync verify`: repair what differs
 *   [ConflictList -> ConflictListResult]  `popsync conflicts list`
 *   [Query -> QueryResult..., repeated]   `popsync query` (list mode: one
 *                                         Query per page, from next_after_id)
 *   [ReportRequest -> ReportResult]       `popsync report monthly|quality`
 *   [CloseRequest -> CloseResult, ...]    `popsync report submit|approve|...`
 *   [NodeStatusRequest -> NodeStatusResult] `popsync status --all` (admin)
 * Every answer is applied to the cache in its own transaction.  Which reply
 * answers which request, and which types a server may send at all, is the
 * message table's (common/msgtab.def); the state says what to do with it.
 */
#include "sync.h"
#include "crypto.h"
#include "digest.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "stream.h"
#include "wire.pb-c.h"
#include "testhooks.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FETCH_MAX 5000

typedef enum {
    ST_CONNECTING = 0,
    ST_HELLO,
    ST_ORGUNITS,
    ST_PUSHING,
    ST_PULLING,
    ST_REFETCH,
    ST_VERIFY_DIGESTS,
    ST_VERIFY_BUCKETS,
    ST_VERIFY_FETCH,
    ST_CONFLICTS,
    ST_QUERY,
    ST_REPORT,
    ST_CLOSE,
    ST_NODE_STATUS,
    ST_DONE
} sess_state_t;

/* A growable list of 16-byte ids. */
typedef struct idlist {
    uint8_t *ids;
    size_t n, cap;
} idlist_t;

typedef struct session {
    uv_loop_t loop;
    ps_stream_t stream;
    ps_tls_conf_t *conf;
    ps_cache_t *cache;
    const ps_sync_opts_t *opts;
    ps_sync_stats_t *stats;
    sess_state_t state;
    uint32_t next_req;
    uint32_t waiting_req;
    uint8_t waiting_type;       /* the request in flight (its reply: the message table) */
    Popsync__Push *inflight;
    uint64_t outbox_total;
    int progress_open;          /* a progress line is on the terminal, not yet ended */
    uint32_t push_max;          /* changes per Push, from our option and Welcome */
    size_t push_max_bytes;      /* bytes per Push, from Welcome.max_frame */
    idlist_t refetch;           /* ids the server refused or kept as conflicts */
    idlist_t fetching;          /* ids of the FetchRequest in flight */
    size_t fetch_pos;           /* next index of `pending_fetch` to request */
    idlist_t pending_fetch;     /* verify: ids to fetch or drop */
    uint8_t verify_want[256];   /* buckets that differed and were listed */
    int zstd;                   /* compression agreed in Welcome */
    uint64_t server_hlc;        /* Welcome.server_hlc (0: no Welcome yet) */
    int64_t clock_skew_ms;      /* our device's clock minus the server's, at Welcome */
    ps_buf_t zin;               /* a decompressed body */
    uint64_t frames;
    uint8_t query_after[16];    /* list query: the next page starts after this id */
    size_t query_after_len;
    size_t query_records;       /* list query: records received so far */
    size_t close_pos;           /* next CloseRequest to send */
    int rc;
    char *err;
    size_t errlen;
    int closed;
} session_t;

static int idlist_add(idlist_t *l, const uint8_t *id)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        uint8_t *p = realloc(l->ids, ncap * 16);
        if (!p)
            return PS_ENOMEM;
        l->ids = p;
        l->cap = ncap;
    }
    memcpy(l->ids + l->n * 16, id, 16);
    l->n++;
    return PS_OK;
}

static void sess_fail(session_t *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void sess_fail(session_t *s, int rc, const char *fmt, ...)
{
    va_list ap;
    if (s->rc == PS_OK) {
        s->rc = rc;
        va_start(ap, fmt);
        vsnprintf(s->err, s->errlen, fmt, ap);
        va_end(ap);
    }
    ps_stream_close(&s->stream);
}

/* Ends the progress line, so what is printed next starts a line of its own. */
static void progress_end(session_t *s)
{
    if (s->progress_open)
        fputc('\n', stderr);
    s->progress_open = 0;
}

static void progress(session_t *s, const char *phase)
{
    if (!s->opts->progress)
        return;
    s->progress_open = 1;
    if (strcmp(phase, "push") == 0)
        fprintf(stderr, "\rpush: %llu/%llu sent   ",
                (unsigned long long)(s->stats->accepted + s->stats->duplicate + s->stats->rejected +
                                     s->stats->conflicts),
                (unsigned long long)s->outbox_total);
    else
        fprintf(stderr, "\rpull: %llu records, at %llu of %llu   ", (unsigned long long)s->stats->pulled,
                (unsigned long long)s->stats->cursor, (unsigned long long)s->stats->head);
}

static int send_msg(session_t *s, uint8_t type, const ProtobufCMessage *m)
{
    ps_buf_t b;
    int rc;
    ps_buf_init(&b);
    s->waiting_req = ++s->next_req;
    s->waiting_type = type;
    rc = ps_msg_pack_frame(&b, type, s->waiting_req, m);
    if (rc == PS_OK && s->zstd)
        rc = ps_frame_compress(&b, 0);
    if (rc == PS_OK)
        rc = ps_stream_write(&s->stream, ps_buf_head(&b), ps_buf_size(&b));
    ps_buf_free(&b);
    if (rc)
        sess_fail(s, PS_EIO, "cannot send %s", ps_frame_type_name(type));
    return rc;
}

static void finish(session_t *s)
{
    progress_end(s);
    s->state = ST_DONE;
    if (!s->opts->no_sync)
        ps_cache_set_last_sync(s->cache, ps_now_ms());
    if (s->server_hlc && !s->opts->legacy_clock) {
        /* Time our edits by the server's clock from now on, but only once
         * every change stamped with the old clock has been pushed: the
         * server corrects those by the clock_ms of their Push. */
        uint64_t pending = 1;
        ps_cache_outbox_count(s->cache, &pending);
        ps_cache_clock_seen(s->cache, s->clock_skew_ms, pending == 0, s->server_hlc);
    }
    ps_stream_shutdown(&s->stream);
}

static void start_verify(session_t *s);
static void start_conflicts(session_t *s);
static void after_conflicts(session_t *s);

/* What comes after the pull (and any refetch). */
static void after_sync(session_t *s)
{
    if (s->opts->verify)
        start_verify(s);
    else if (s->opts->list_conflicts)
        start_conflicts(s);
    else
        after_conflicts(s);
}

/* Requests the next chunk of l from l's position; returns 0 when done. */
static int send_fetch(session_t *s, idlist_t *l, size_t *pos)
{
    Popsync__FetchRequest fr = POPSYNC__FETCH_REQUEST__INIT;
    ProtobufCBinaryData *ids;
    size_t n = l->n - *pos < FETCH_MAX ? l->n - *pos : FETCH_MAX;
    if (n == 0)
        return 0;
    ids = calloc(n, sizeof(*ids));
    if (!ids) {
        sess_fail(s, PS_ENOMEM, "out of memory");
        return 1;
    }
    s->fetching.n = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i].data = l->ids + (*pos + i) * 16;
        ids[i].len = 16;
        idlist_add(&s->fetching, ids[i].data);
    }
    *pos += n;
    fr.n_ids = n;
    fr.ids = ids;
    send_msg(s, PS_MSG_FETCH_REQUEST, &fr.base);
    free(ids);
    return 1;
}

static void send_pull(session_t *s)
{
    Popsync__Pull p = POPSYNC__PULL__INIT;
    p.cursor = ps_cache_meta(s->cache)->cursor;
    s->state = ST_PULLING;
    send_msg(s, PS_MSG_PULL, &p.base);
}

static void next_push(session_t *s)
{
    Popsync__Push *p = NULL;
    int rc = ps_cache_outbox_batch(s->cache, s->push_max, s->push_max_bytes, &p);
    if (rc) {
        sess_fail(s, rc, "reading the outbox: %s", ps_strerror(rc));
        return;
    }
    if (p->n_changes == 0) {
        ps_cache_push_free(p);
        progress_end(s);
        if (s->opts->push_only) {
            finish(s);
            return;
        }
        send_pull(s);
        return;
    }
    /* The clock the outbox was stamped with: the server measures our
     * clock's error from it and moves the changes' times by it. */
    if (!s->opts->legacy_clock)
        p->clock_ms = ps_cache_clock_ms(s->cache);
    s->inflight = p;
    s->state = ST_PUSHING;
    send_msg(s, PS_MSG_PUSH, &p->base);
}

static void after_welcome(session_t *s)
{
    if (s->opts->no_sync) {
        after_sync(s);
        return;
    }
    next_push(s);
}

static void on_welcome(session_t *s, Popsync__Welcome *w)
{
    const ps_cache_meta_t *m = ps_cache_meta(s->cache);
    uint32_t want = s->opts->push_batch ? s->opts->push_batch : 1000;

    s->stats->welcomed = 1;
    s->stats->head = w->head;
    s->stats->conflicts_lost = w->conflicts_lost;
    s->zstd = (w->features & PS_FEATURE_ZSTD) != 0;
    if (w->protocol_version != PS_PROTOCOL_VERSION) {
        sess_fail(s, PS_EPROTO, "server speaks protocol %u, we speak %u", w->protocol_version, PS_PROTOCOL_VERSION);
        return;
    }
    /* The server has applied local change numbers this cache never made:
     * it is a restored backup or a copy of another device's cache.  Its new
     * changes would be taken for old resends, so refuse to go on. */
    if (m->next_lcn == 0 || w->node_high_water >= m->next_lcn) {
        sess_fail(s, PS_ESTALE,
                  "the server has seen newer changes from this cache's node (%llu > %llu): this cache was restored "
                  "or copied. Save its unsent changes with 'popsync export --pending', make a new cache with "
                  "'popsync init' and import them there",
                  (unsigned long long)w->node_high_water, (unsigned long long)(m->next_lcn ? m->next_lcn - 1 : 0));
        return;
    }
    if (w->server_hlc) {
        ps_cache_observe_hlc(s->cache, w->server_hlc);
        s->server_hlc = w->server_hlc;
        s->clock_skew_ms = (int64_t)ps_cache_device_ms(s->cache) - (int64_t)PS_HLC_MS(w->server_hlc);
        if (s->clock_skew_ms > PS_CLOCK_TOLERANCE_MS || s->clock_skew_ms < -PS_CLOCK_TOLERANCE_MS)
            s->stats->clock_skew_ms = s->clock_skew_ms;
    }
    /* Dates entered here are judged by the district's calendar. */
    if (w->timezone && *w->timezone && strlen(w->timezone) < sizeof(m->timezone) &&
        strcmp(w->timezone, m->timezone) != 0)
        ps_cache_set_timezone(s->cache, w->timezone);
    /* A late entry into one of these months warns the clerk (client/late.c). */
    ps_cache_set_approved_months(s->cache, w->approved_months, w->n_approved_months);
    if ((w->synthetic_allowed ? PS_SYNTHETIC_ALLOWED : PS_SYNTHETIC_REFUSED) != m->synthetic_policy)
        ps_cache_set_synthetic_policy(s->cache, w->synthetic_allowed ? PS_SYNTHETIC_ALLOWED : PS_SYNTHETIC_REFUSED);
    s->push_max = w->max_batch && w->max_batch < want ? w->max_batch : want;
    /* Leave room for the envelope of each change within the frame limit. */
    s->push_max_bytes = 4u << 20;
    if (w->max_frame && w->max_frame / 2 < s->push_max_bytes)
        s->push_max_bytes = w->max_frame / 2;
    /* A cheap count: ps_cache_counts would open every sealed record. */
    ps_cache_outbox_count(s->cache, &s->outbox_total);
    if (w->orgunits_digest.len == 32) {
        uint8_t *csv = NULL, have[32];
        size_t len;
        int same = ps_cache_get_orgunits(s->cache, &csv, &len, have) == PS_OK &&
                   memcmp(have, w->orgunits_digest.data, 32) == 0;
        free(csv);
        if (!same) {
            /* The server's tree is authoritative: fetch it before pushing,
             * so local validation agrees with the server's from now on. */
            Popsync__OrgUnitsRequest req = POPSYNC__ORG_UNITS_REQUEST__INIT;
            s->state = ST_ORGUNITS;
            send_msg(s, PS_MSG_ORGUNITS_REQUEST, &req.base);
            return;
        }
    }
    after_welcome(s);
}

static void on_orgunits(session_t *s, Popsync__OrgUnits *o)
{
    uint8_t digest[32];
    int rc;
    if (o->digest.len != 32 || ps_sha256(o->csv.data, o->csv.len, digest) != PS_OK ||
        memcmp(digest, o->digest.data, 32) != 0) {
        sess_fail(s, PS_EPROTO, "org-unit file from server does not match its digest");
        return;
    }
    if ((rc = ps_cache_set_orgunits(s->cache, o->csv.data, o->csv.len, digest))) {
        sess_fail(s, rc, "storing the org-unit file: %s", ps_strerror(rc));
        return;
    }
    after_welcome(s);
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

static void on_push_result(session_t *s, Popsync__PushResult *r)
{
    int rc = ps_cache_outbox_ack(s->cache, s->inflight, r);
    if (rc) {
        sess_fail(s, rc, "recording the push result: %s", ps_strerror(rc));
        return;
    }
    if (r->clock_skew_ms)
        s->stats->push_clock_skew_ms = r->clock_skew_ms;
    for (size_t i = 0; i < r->n_results; i++) {
        Popsync__ChangeResult *cr = r->results[i];
        switch (cr->status) {
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED:
            s->stats->accepted++;
            if (r->clock_skew_ms)
                s->stats->retimed++;
            if (cr->conflict_id.len)
                s->stats->merged_conflicts++;
            break;
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE: s->stats->duplicate++; break;
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_REJECTED: s->stats->rejected++; break;
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT: s->stats->conflicts++; break;
        default: break;
        }
        /* The local copy shows what was refused, or lacks what a merge
         * added: read the server's version back after the pull. */
        if (cr->id.len == 16 && (cr->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_REJECTED ||
                                 cr->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT ||
                                 ((cr->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED ||
                                   (cr->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE && cr->rev)) &&
                                  merged_result(s->inflight, cr, i))))
            idlist_add(&s->refetch, cr->id.data);
    }
    ps_cache_push_free(s->inflight);
    s->inflight = NULL;
    progress(s, "push");
    next_push(s);
}

static void on_pull_batch(session_t *s, Popsync__PullBatch *b)
{
    int rc = ps_cache_apply_pull(s->cache, b);
    if (rc) {
        sess_fail(s, rc, "applying pulled records: %s", ps_strerror(rc));
        return;
    }
    s->stats->pulled += b->n_entries;
    s->stats->cursor = b->cursor;
    s->stats->head = b->head;
    progress(s, "pull");
    if (b->more) {
        send_pull(s);
        return;
    }
    s->fetch_pos = 0;
    s->state = ST_REFETCH;
    if (!send_fetch(s, &s->refetch, &s->fetch_pos))
        after_sync(s);
}

/* A fetched batch, in the refetch or the verify phase. */
static void on_fetch_batch(session_t *s, Popsync__PullBatch *b)
{
    idlist_t *l = s->state == ST_REFETCH ? &s->refetch : &s->pending_fetch;
    int rc = ps_cache_apply_fetch(s->cache, b, s->fetching.ids, s->fetching.n);
    if (rc) {
        sess_fail(s, rc, "applying fetched records: %s", ps_strerror(rc));
        return;
    }
    if (s->state == ST_REFETCH)
        s->stats->refetched += b->n_entries;
    else {
        s->stats->repaired += b->n_entries;
        s->stats->dropped += s->fetching.n - b->n_entries;
    }
    if (send_fetch(s, l, &s->fetch_pos))
        return;
    if (s->state == ST_REFETCH)
        after_sync(s);
    else if (s->opts->list_conflicts)
        start_conflicts(s);
    else
        after_conflicts(s);
}

static void start_verify(session_t *s)
{
    Popsync__VerifyRequest vr = POPSYNC__VERIFY_REQUEST__INIT;
    s->stats->verified = 1;
    s->state = ST_VERIFY_DIGESTS;
    send_msg(s, PS_MSG_VERIFY_REQUEST, &vr.base);
}

static void on_verify_digests(session_t *s, Popsync__VerifyDigests *d)
{
    uint64_t mine[PS_VERIFY_BUCKETS];
    uint32_t counts[PS_VERIFY_BUCKETS], diff[PS_VERIFY_BUCKETS];
    Popsync__VerifyBucketRequest req = POPSYNC__VERIFY_BUCKET_REQUEST__INIT;
    size_t nd = 0;
    int rc;

    if (d->n_digests != PS_VERIFY_BUCKETS || d->n_counts != PS_VERIFY_BUCKETS) {
        sess_fail(s, PS_EPROTO, "server sent %zu verify buckets, expected %u", d->n_digests, PS_VERIFY_BUCKETS);
        return;
    }
    if ((rc = ps_cache_verify_digests(s->cache, mine, counts))) {
        sess_fail(s, rc, "reading the cache: %s", ps_strerror(rc));
        return;
    }
    memset(s->verify_want, 0, sizeof(s->verify_want));
    for (uint32_t b = 0; b < PS_VERIFY_BUCKETS; b++)
        if (mine[b] != d->digests[b] || counts[b] != d->counts[b]) {
            diff[nd++] = b;
            s->verify_want[b] = 1;
        }
    s->stats->buckets_differed = nd;
    if (nd == 0) {
        if (s->opts->list_conflicts)
            start_conflicts(s);
        else
            after_conflicts(s);
        return;
    }
    req.n_buckets = nd;
    req.buckets = diff;
    s->state = ST_VERIFY_BUCKETS;
    send_msg(s, PS_MSG_VERIFY_BUCKET_REQUEST, &req.base);
}

typedef struct vcmp {
    Popsync__VerifyBucketList *server;
    uint8_t *seen;       /* per server item: the local cache holds it, same revision */
    session_t *s;
    int rc;
} vcmp_t;

static int cmp_item(const void *a, const void *b)
{
    const Popsync__VerifyItem *x = *(Popsync__VerifyItem *const *)a, *y = *(Popsync__VerifyItem *const *)b;
    return memcmp(x->id.data, y->id.data, 16);
}

static int local_item(const uint8_t *id, uint64_t gen, uint64_t hlc, int deleted, void *arg)
{
    vcmp_t *v = arg;
    Popsync__VerifyItem key, *kp = &key, **hit;
    key.id.data = (uint8_t *)id;
    key.id.len = 16;
    hit = bsearch(&kp, v->server->items, v->server->n_items, sizeof(*v->server->items), cmp_item);
    if (!hit) {
        /* We hold a record the server does not show us: drop it. */
        v->rc = idlist_add(&v->s->pending_fetch, id);
        return v->rc;
    }
    if ((*hit)->gen == gen && (*hit)->hlc == hlc && (*hit)->deleted == (deleted != 0))
        v->seen[hit - v->server->items] = 1;
    return 0;
}

static void on_verify_buckets(session_t *s, Popsync__VerifyBucketList *l)
{
    uint8_t want[PS_VERIFY_BUCKETS];
    vcmp_t v;
    int rc;

    for (size_t i = 0; i < l->n_items; i++)
        if (l->items[i]->id.len != 16) {
            sess_fail(s, PS_EPROTO, "malformed VerifyBucketList");
            return;
        }
    memcpy(want, s->verify_want, sizeof(want));
    for (size_t i = 0; i < l->n_items; i++)
        if (!want[ps_verify_bucket(l->items[i]->id.data)]) {
            sess_fail(s, PS_EPROTO, "VerifyBucketList holds a record of a bucket we did not ask for");
            return;
        }
    qsort(l->items, l->n_items, sizeof(*l->items), cmp_item);
    memset(&v, 0, sizeof(v));
    v.server = l;
    v.s = s;
    v.seen = calloc(l->n_items ? l->n_items : 1, 1);
    if (!v.seen) {
        sess_fail(s, PS_ENOMEM, "out of memory");
        return;
    }
    s->pending_fetch.n = 0;
    rc = ps_cache_verify_items(s->cache, want, local_item, &v);
    for (size_t i = 0; rc == PS_OK && v.rc == PS_OK && i < l->n_items; i++)
        if (!v.seen[i])
            v.rc = idlist_add(&s->pending_fetch, l->items[i]->id.data);
    free(v.seen);
    if (rc || v.rc) {
        sess_fail(s, rc ? rc : v.rc, "comparing with the server: %s", ps_strerror(rc ? rc : v.rc));
        return;
    }
    s->fetch_pos = 0;
    s->state = ST_VERIFY_FETCH;
    if (!send_fetch(s, &s->pending_fetch, &s->fetch_pos)) {
        if (s->opts->list_conflicts)
            start_conflicts(s);
        else
            after_conflicts(s);
    }
}

static void start_conflicts(session_t *s)
{
    Popsync__ConflictList cl = POPSYNC__CONFLICT_LIST__INIT;
    cl.include_resolved = s->opts->include_resolved != 0;
    s->state = ST_CONFLICTS;
    send_msg(s, PS_MSG_CONFLICT_LIST, &cl.base);
}

/* --- queries, reports and the monthly close (issue 6) --- */

static void send_query(session_t *s)
{
    Popsync__Query q = *s->opts->query; /* shallow: only after_id differs */
    q.after_id.data = s->query_after_len ? s->query_after : NULL;
    q.after_id.len = s->query_after_len;
    s->state = ST_QUERY;
    send_msg(s, PS_MSG_QUERY, &q.base);
}

static void send_close(session_t *s)
{
    s->state = ST_CLOSE;
    send_msg(s, PS_MSG_CLOSE_REQUEST, &s->opts->close_reqs[s->close_pos++]->base);
}

/* What comes after the conflicts list: the query, the report, the close
 * requests, each when asked for, then the end of the session. */
static void after_conflicts(session_t *s)
{
    if (s->state < ST_QUERY && s->opts->query) {
        s->query_after_len = 0;
        send_query(s);
    } else if (s->state < ST_REPORT && s->opts->report) {
        s->state = ST_REPORT;
        send_msg(s, PS_MSG_REPORT_REQUEST, &s->opts->report->base);
    } else if (s->close_pos < s->opts->n_close) {
        send_close(s);
    } else if (s->state < ST_NODE_STATUS && s->opts->node_status) {
        Popsync__NodeStatusRequest nr = POPSYNC__NODE_STATUS_REQUEST__INIT;
        s->state = ST_NODE_STATUS;
        send_msg(s, PS_MSG_NODE_STATUS_REQUEST, &nr.base);
    } else {
        finish(s);
    }
}

static void on_query_result(session_t *s, const Popsync__QueryResult *r)
{
    if (s->opts->on_query)
        s->opts->on_query(r, s->opts->arg);
    s->query_records += r->n_records;
    if (!r->done)
        return; /* more frames of this answer follow */
    if (s->opts->query->list && r->next_after_id.len &&
        (!s->opts->query_max_records || s->query_records < s->opts->query_max_records)) {
        if (r->next_after_id.len > sizeof(s->query_after) ||
            (r->next_after_id.len == s->query_after_len &&
             memcmp(r->next_after_id.data, s->query_after, s->query_after_len) == 0)) {
            sess_fail(s, PS_EPROTO, "server sent a bad next page position");
            return;
        }
        memcpy(s->query_after, r->next_after_id.data, r->next_after_id.len);
        s->query_after_len = r->next_after_id.len;
        send_query(s);
        return;
    }
    after_conflicts(s);
}

/* The answer to the request in flight (its type checked against the
 * message table by handle_frame); the state says which request that was. */
static void on_reply(session_t *s, ProtobufCMessage *m)
{
    switch (s->state) {
    case ST_HELLO: on_welcome(s, (Popsync__Welcome *)m); break;
    case ST_ORGUNITS: on_orgunits(s, (Popsync__OrgUnits *)m); break;
    case ST_PUSHING: on_push_result(s, (Popsync__PushResult *)m); break;
    case ST_PULLING: on_pull_batch(s, (Popsync__PullBatch *)m); break;
    case ST_REFETCH:
    case ST_VERIFY_FETCH: on_fetch_batch(s, (Popsync__PullBatch *)m); break;
    case ST_VERIFY_DIGESTS: on_verify_digests(s, (Popsync__VerifyDigests *)m); break;
    case ST_VERIFY_BUCKETS: on_verify_buckets(s, (Popsync__VerifyBucketList *)m); break;
    case ST_QUERY: on_query_result(s, (Popsync__QueryResult *)m); break;
    case ST_CONFLICTS:
        if (s->opts->on_conflicts)
            s->opts->on_conflicts((Popsync__ConflictListResult *)m, s->opts->arg);
        after_conflicts(s);
        break;
    case ST_REPORT:
        if (s->opts->on_report)
            s->opts->on_report((Popsync__ReportResult *)m, s->opts->arg);
        after_conflicts(s);
        break;
    case ST_NODE_STATUS:
        if (s->opts->on_node_status)
            s->opts->on_node_status((Popsync__NodeStatusResult *)m, s->opts->arg);
        after_conflicts(s);
        break;
    case ST_CLOSE:
        if (s->opts->on_close_result)
            s->opts->on_close_result((Popsync__CloseResult *)m, s->opts->arg);
        after_conflicts(s);
        break;
    default: sess_fail(s, PS_EPROTO, "unexpected %s from server", m->descriptor->short_name); break;
    }
}

static void handle_frame(session_t *s, const ps_frame_t *f)
{
    const ps_msg_info_t *mi = ps_msg_info(f->type);
    ProtobufCMessage *m = NULL;
    int rc;
    if ((f->flags & ~PS_FRAME_FLAG_ZSTD) || f->reserved != 0 || ((f->flags & PS_FRAME_FLAG_ZSTD) && !s->zstd)) {
        sess_fail(s, PS_EPROTO, "server sent a frame with unknown flags");
        return;
    }
    if (!mi || mi->dir != PS_MSG_DIR_S2C) {
        sess_fail(s, PS_EPROTO, "unexpected %s from server", ps_frame_type_name(f->type));
        return;
    }
    {
        const uint8_t *body;
        size_t len;
        rc = ps_frame_plain_body(f->body, f->body_len, (f->flags & PS_FRAME_FLAG_ZSTD) != 0, 64u << 20, &s->zin,
                                 &body, &len);
        if (rc == PS_OK)
            rc = ps_msg_unpack(f->type, body, len, &m);
    }
    if (rc) {
        sess_fail(s, PS_EPROTO, "malformed %s from server", ps_frame_type_name(f->type));
        return;
    }
    if (f->type == PS_MSG_ERROR) {
        Popsync__Error *e = (Popsync__Error *)m;
        sess_fail(s, PS_EREJECTED, "server: %s", e->message);
    } else if (f->type == PS_MSG_PONG) {
        /* keep-alive answer: nothing to do */
    } else if (f->request_id != s->waiting_req) {
        sess_fail(s, PS_EPROTO, "server answered request %u, expected %u", f->request_id, s->waiting_req);
    } else if (!ps_msg_info(s->waiting_type) || f->type != ps_msg_info(s->waiting_type)->reply) {
        sess_fail(s, PS_EPROTO, "unexpected %s from server (waiting for the answer to %s)",
                  ps_frame_type_name(f->type), ps_frame_type_name(s->waiting_type));
    } else {
        on_reply(s, m);
    }
    ps_msg_free(m);
}

static void on_read(ps_stream_t *st)
{
    session_t *s = st->data;
    ps_buf_t *in = &st->plain_in;
    while (s->rc == PS_OK && s->state != ST_DONE) {
        ps_frame_t f;
        size_t used;
        /* Pull batches are bounded by the server; allow generous frames. */
        int rc = ps_frame_decode(ps_buf_head(in), ps_buf_size(in), 64u << 20, &f, &used);
        if (rc == PS_FRAME_NEED_MORE)
            return;
        if (rc) {
            sess_fail(s, PS_EPROTO, "bad frame from server");
            return;
        }
        if (s->opts->cut_after_frames && ++s->frames > s->opts->cut_after_frames) {
            sess_fail(s, PS_ECLOSED, "connection cut by the test hook");
            return;
        }
        handle_frame(s, &f);
        if (s->closed)
            return;
        ps_buf_consume(in, used);
        ps_stream_touch(st);
    }
}

/* POPSYNC_NO_COMPRESSION=1: the test hook that makes a Hello offer no
 * compression (testhooks.h: test builds only). */
static int no_compression_hook(void)
{
    uint64_t v = 0;
    return ps_test_hook_u64("POPSYNC_NO_COMPRESSION", &v) == 1 && v == 1;
}

static void on_handshake(ps_stream_t *st, int status)
{
    session_t *s = st->data;
    Popsync__Hello h = POPSYNC__HELLO__INIT;
    const ps_cache_meta_t *m = ps_cache_meta(s->cache);
    if (status) {
        sess_fail(s, PS_ETLS, "TLS handshake with %s failed: %s", m->server, ps_tls_last_error(st->tls));
        return;
    }
    {
        ps_buf_t sess;
        ps_buf_init(&sess);
        if (ps_tls_session_save(st->tls, &sess) == PS_OK && ps_buf_size(&sess))
            ps_cache_set_tls_session(s->cache, ps_buf_head(&sess), ps_buf_size(&sess));
        if (ps_buf_size(&sess))
            ps_zeroize(ps_buf_head(&sess), ps_buf_size(&sess));
        ps_buf_free(&sess);
    }
    h.protocol_version = PS_PROTOCOL_VERSION;
    h.node.data = (uint8_t *)m->node;
    h.node.len = PS_ID_LEN;
    h.cursor = m->cursor;
    h.software = "popsync 0.1.0";
    if (!s->opts->no_compression && !no_compression_hook())
        h.features = PS_FEATURE_ZSTD;
    s->state = ST_HELLO;
    send_msg(s, PS_MSG_HELLO, &h.base);
}

static void on_error(ps_stream_t *st, int err)
{
    session_t *s = st->data;
    if (s->state == ST_DONE && err == PS_ECLOSED) {
        ps_stream_close(st);
        return;
    }
    if (err == PS_ETIMEDOUT)
        sess_fail(s, err, "server %s did not answer in time", ps_cache_meta(s->cache)->server);
    else if (err == PS_ETLS)
        sess_fail(s, err, "TLS with %s failed: %s", ps_cache_meta(s->cache)->server, ps_tls_last_error(st->tls));
    else if (s->state == ST_CONNECTING)
        sess_fail(s, err, "cannot connect to %s", ps_cache_meta(s->cache)->server);
    else
        sess_fail(s, err, "connection to %s lost: %s", ps_cache_meta(s->cache)->server, ps_strerror(err));
}

static void on_close(ps_stream_t *st)
{
    session_t *s = st->data;
    s->closed = 1;
}

static const ps_stream_cbs_t sess_cbs = {on_handshake, on_read, on_error, NULL, on_close};

static int resolve(const char *hostport, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    const char *colon;
    struct addrinfo hints, *res = NULL;
    int gai;
    size_t hl;
    if (hostport[0] == '[') {
        const char *rb = strchr(hostport, ']');
        if (!rb || rb[1] != ':')
            goto bad;
        hl = (size_t)(rb - hostport - 1);
        if (hl >= sizeof(host))
            goto bad;
        memcpy(host, hostport + 1, hl);
        colon = rb + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (!colon)
            goto bad;
        hl = (size_t)(colon - hostport);
        if (hl >= sizeof(host))
            goto bad;
        memcpy(host, hostport, hl);
    }
    host[hl] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    gai = getaddrinfo(host, colon + 1, &hints, &res);
    if (gai || !res) {
        snprintf(err, errlen, "cannot resolve %s: %s", hostport, gai_strerror(gai));
        return PS_EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return PS_OK;
bad:
    snprintf(err, errlen, "bad server address '%s' (want HOST:PORT)", hostport);
    return PS_EINVAL;
}

static int add_refused(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg)
{
    (void)res;
    if (ch->record && ch->record->id.len == 16)
        idlist_add(arg, ch->record->id.data);
    return 0;
}

static int sync_run(ps_cache_t *cache, const ps_sync_opts_t *opts, ps_sync_stats_t *stats, char *err, size_t errlen)
{
    session_t s;
    const ps_cache_meta_t *m = ps_cache_meta(cache);
    struct sockaddr_storage ss;
    ps_tls_t *tls = NULL;
    int rc;

    memset(&s, 0, sizeof(s));
    memset(stats, 0, sizeof(*stats));
    s.cache = cache;
    s.opts = opts;
    s.stats = stats;
    s.err = err;
    s.errlen = errlen;
    stats->cursor = m->cursor;
    if ((rc = resolve(m->server, &ss, err, errlen)))
        return rc;
    rc = ps_tls_conf_new(&s.conf, PS_TLS_CLIENT, m->ca, m->cert, m->key, NULL, err, errlen);
    if (rc)
        return rc;
    if ((rc = ps_tls_new(&tls, s.conf, m->server_name))) {
        snprintf(err, errlen, "TLS setup failed: %s", ps_strerror(rc));
        ps_tls_conf_free(s.conf);
        return rc;
    }
    {
        /* Resume the last session when the server still honours its
         * ticket: a reconnecting device skips the full handshake. */
        ps_buf_t sess;
        ps_buf_init(&sess);
        if (ps_cache_get_tls_session(cache, &sess) == PS_OK && ps_buf_size(&sess))
            ps_tls_session_resume(tls, ps_buf_head(&sess), ps_buf_size(&sess));
        if (ps_buf_size(&sess))
            ps_zeroize(ps_buf_head(&sess), ps_buf_size(&sess));
        ps_buf_free(&sess);
    }
    /* Records the server refused are re-read after the pull.  Refusals are
     * kept in the cache, so one recorded by a sync that was cut before its
     * re-read is still settled by this one. */
    ps_cache_foreach_rejected(cache, add_refused, &s.refetch);
    uv_loop_init(&s.loop);
    ps_stream_init(&s.stream, &s.loop, tls, &sess_cbs, &s);
    ps_stream_set_timeouts(&s.stream, opts->timeout_ms ? opts->timeout_ms : 60000,
                           opts->timeout_ms ? opts->timeout_ms : 60000);
    if (ps_stream_connect(&s.stream, (struct sockaddr *)&ss) != PS_OK)
        sess_fail(&s, PS_EIO, "cannot connect to %s", m->server);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    progress_end(&s); /* a cut sync leaves its line open */
    if (s.inflight)
        ps_cache_push_free(s.inflight);
    free(s.refetch.ids);
    free(s.fetching.ids);
    free(s.pending_fetch.ids);
    ps_buf_free(&s.zin);
    ps_msg_thread_cleanup();
    stats->bytes_in = s.stream.bytes_in;
    stats->bytes_out = s.stream.bytes_out;
    uv_loop_close(&s.loop);
    ps_tls_conf_free(s.conf);
    if (s.rc == PS_OK && s.state != ST_DONE) {
        snprintf(err, errlen, "connection to %s closed before the sync completed", m->server);
        return PS_ECLOSED;
    }
    return s.rc;
}

int ps_sync_run(ps_cache_t *cache, const ps_sync_opts_t *opts, ps_sync_stats_t *stats, char *err, size_t errlen)
{
    int rc = sync_run(cache, opts, stats, err, errlen);
    /* `popsync status` tells when a sync was last tried and why it failed. */
    if (!opts->no_sync)
        ps_cache_set_sync_attempt(cache, ps_now_ms(), rc ? err : NULL);
    return rc;
}
