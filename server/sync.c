/* sync.c - the server's dispatcher and its request handlers.
 *
 * Owns: ps_sync_dispatch, which reads the message table (common/msgtab.def)
 * for every frame: is the type a client -> server one, must Hello come first,
 * and where it runs (on the loop, on the read pool, or in the group commit),
 * and asks the access policy (common/policy.h) whether the peer's role may
 * send it; and g_handlers, one row per request type
 * with the code that answers it.  Adding a request is a row in msgtab.def
 * and a row here.  Work that touches the store goes to the libuv thread
 * pool or the group commit.  Such requests are taken in while the
 * connection's window (agreed in Hello/Welcome) has room and run one at a
 * time, in the order they came (docs/protocol.md §7.1).
 */
#include "server.h"
#include "err.h"
#include "log.h"
#include "msg.h"
#include "msgtab.h"
#include "policy.h"
#include "reply.h"
#include "upstream.h"
#include "pullcache.h"
#include "vec.h"
#include "trace.h"

#include "wire.pb-c.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct read_job read_job_t;

/* The handler of one request type (a client -> server row of the message
 * table).  The dispatcher has checked the type, Hello first, the body and
 * the role before any of these run.
 *   loop  on the event loop.  LOOP rows: answers, m is freed after it.
 *         COMMIT rows: hands m to the group commit (kept on PS_OK).  POOL
 *         rows: checks the request and fills the job j, which owns m
 *         (NULL: nothing to check).  Returns PS_OK or a code after
 *         reporting it to the peer.
 *   work  POOL rows, on a worker thread: fills j->reply or sets j->rc.
 *   done  POOL rows, optional, on the loop after work succeeded: sends the
 *         answer (default: j->reply as built). */
typedef struct handler {
    int (*loop)(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m, read_job_t *j);
    void (*work)(read_job_t *j);
    void (*done)(read_job_t *j);
} handler_t;

/* A job for the read pool: one request of a POOL row. */
struct read_job {
    uv_work_t req;
    ps_conn_t *c;
    const handler_t *h;
    uint8_t type;
    uint32_t request_id;
    uint64_t cursor;
    uint32_t max_records, max_bytes;
    uint64_t hw;
    uint32_t conflicts_lost; /* Hello: open conflicts this node's edits lost */
    char **approved;         /* Hello: approved months of the peer's townships (owned) */
    size_t napproved;
    uint64_t new_cursor;     /* Pull: the batch's cursor (nodes.c) */
    int follow;              /* Pull.follow: the cursor is the previous Pull's, known when it starts */
    int skip_own;            /* Pull.skip_own: leave out the versions the peer holds (c->own) */
    uint64_t *skip;          /* Pull: those seqs past the cursor, ascending, copied when it starts (owned) */
    size_t nskip;
    ps_peer_t peer;
    uint8_t node[PS_ID_LEN];
    ProtobufCMessage *msg;   /* the request (owned) */
    ps_node_info_t *live;    /* NodeStatusRequest: a copy of the node table (owned) */
    size_t nlive;
    ps_buf_t reply;
    int rc;
    int compress;            /* compress the reply frames (agreed in Hello) */
    char err[400];           /* why a query, report or Hello could not run (no personal data) */
};

/* --- work on the read pool: one function per POOL row ------------------- */

/* YYYYMM 36 months before this one (UTC: a day's difference at a month's
 * edge only widens the window). */
static uint32_t approved_since(void)
{
    time_t now = time(NULL);
    struct tm tm;
    int months;
    gmtime_r(&now, &tm);
    months = (tm.tm_year + 1900) * 12 + tm.tm_mon - 36;
    return (uint32_t)(months / 12 * 100 + months % 12 + 1);
}

static void work_hello(read_job_t *j)
{
    j->rc = ps_store_node_hello(j->c->srv->store, j->node, &j->peer, &j->hw, j->err, sizeof(j->err));
    if (j->rc == PS_OK)
        j->rc = ps_store_conflicts_lost(j->c->srv->store, j->node, &j->conflicts_lost);
    if (j->rc == PS_OK)
        j->rc = ps_store_approved_months(j->c->srv->store, &j->peer, approved_since(), &j->approved, &j->napproved);
}

static void work_pull(read_job_t *j)
{
    ps_pull_end_t end;
    /* The batch is read, or taken from those kept (pullcache.h). */
    j->rc = ps_pull_cached(j->c->srv->pullcache, j->c->srv->store, &j->peer, j->cursor, j->max_records, j->max_bytes,
                           j->skip, j->nskip, j->compress, j->request_id, &j->reply, &end);
    if (j->rc == PS_OK)
        j->new_cursor = end.cursor; /* the node's cursor once it applies the batch */
}

/* Packs the message the store built (one frame, or QueryResult frames). */
static void reply_store_msg(read_job_t *j, uint8_t type, ps_store_msg_t *m)
{
    if (j->rc == PS_OK)
        j->rc = type == PS_MSG_QUERY_RESULT ? ps_reply_query(&j->reply, j->request_id, m->msg)
                                            : ps_reply_msg(&j->reply, type, j->request_id, m->msg);
    ps_store_msg_free(m);
}

static void work_conflicts(read_job_t *j)
{
    Popsync__ConflictList *cl = (Popsync__ConflictList *)j->msg;
    ps_store_msg_t m;
    j->rc = ps_store_conflicts(j->c->srv->store, &j->peer, j->node, cl->include_resolved, cl->max, &m);
    reply_store_msg(j, PS_MSG_CONFLICT_LIST_RESULT, &m);
}

static void work_verify(read_job_t *j)
{
    ps_verify_digests_t *d = malloc(sizeof(*d)); /* 3 KiB: off the worker's stack */
    if (!d) {
        j->rc = PS_ENOMEM;
        return;
    }
    j->rc = ps_store_verify_digests(j->c->srv->store, &j->peer, d);
    if (j->rc == PS_OK)
        j->rc = ps_reply_verify_digests(&j->reply, j->request_id, d);
    free(d);
}

static void work_verify_buckets(read_job_t *j)
{
    Popsync__VerifyBucketRequest *vb = (Popsync__VerifyBucketRequest *)j->msg;
    ps_verify_item_t *items = NULL;
    size_t n = 0;
    j->rc = ps_store_verify_buckets(j->c->srv->store, &j->peer, vb->buckets, vb->n_buckets, &items, &n);
    if (j->rc == PS_OK)
        j->rc = ps_reply_verify_items(&j->reply, j->request_id, items, n);
    free(items);
}

static void work_fetch(read_job_t *j)
{
    Popsync__FetchRequest *fr = (Popsync__FetchRequest *)j->msg;
    ps_reply_batch_t b;
    ps_pull_end_t end;
    if ((j->rc = ps_reply_batch_begin(&b, &j->reply)))
        return;
    j->rc = ps_store_fetch(j->c->srv->store, &j->peer, fr->ids, fr->n_ids, ps_reply_batch_entry, &b, &end);
    j->rc = ps_reply_batch_end(&b, j->rc, j->request_id, &end);
}

static void work_query(read_job_t *j)
{
    ps_store_msg_t m;
    j->rc = ps_store_query(j->c->srv->store, &j->peer, (Popsync__Query *)j->msg, &m, j->err, sizeof(j->err));
    reply_store_msg(j, PS_MSG_QUERY_RESULT, &m);
}

static void work_report(read_job_t *j)
{
    ps_store_t *st = j->c->srv->store;
    Popsync__ReportRequest *rq = (Popsync__ReportRequest *)j->msg;
    ps_store_msg_t m;
    memset(&m, 0, sizeof(m));
    if (rq->report && !strcmp(rq->report, "monthly"))
        j->rc = ps_store_report_monthly(st, &j->peer, rq, &m, j->err, sizeof(j->err));
    else if (rq->report && !strcmp(rq->report, "quality"))
        j->rc = ps_store_report_quality(st, &j->peer, rq, &m, j->err, sizeof(j->err));
    else {
        snprintf(j->err, sizeof(j->err), "unknown report '%s' (monthly or quality)", rq->report ? rq->report : "");
        j->rc = PS_EINVAL;
    }
    reply_store_msg(j, PS_MSG_REPORT_RESULT, &m);
}

static void work_close(read_job_t *j)
{
    ps_store_msg_t m;
    j->rc = ps_store_close_month(j->c->srv->store, &j->peer, (Popsync__CloseRequest *)j->msg, &m, j->err,
                                 sizeof(j->err));
    reply_store_msg(j, PS_MSG_CLOSE_RESULT, &m);
}

/* Issue 19: the upward stream's lag with the node table (its counters
 * are atomics, readable from this worker). */
static void node_status_upstream(ps_server_t *srv, Popsync__NodeStatusResult *r)
{
    ps_upstream_stats_t u;
    uint64_t now = ps_now_ms();
    if (!srv->upstream)
        return;
    ps_upstream_stats(srv->upstream, &u);
    r->upstream = 1;
    r->upstream_published = u.published_seq;
    r->upstream_lag_records = u.behind;
    r->upstream_lag_seconds = u.oldest_ms && now > u.oldest_ms ? (now - u.oldest_ms) / 1000 : 0;
    r->upstream_connected = u.connected != 0;
}

static void work_node_status(read_job_t *j)
{
    ps_store_msg_t m;
    j->rc = ps_store_node_status(j->c->srv->store, j->live, j->nlive, &m);
    if (j->rc == PS_OK)
        node_status_upstream(j->c->srv, (Popsync__NodeStatusResult *)m.msg);
    reply_store_msg(j, PS_MSG_NODE_STATUS_RESULT, &m);
}

static void work_history(read_job_t *j)
{
    Popsync__HistoryRequest *hr = (Popsync__HistoryRequest *)j->msg;
    ps_store_msg_t m;
    j->rc = ps_store_history(j->c->srv->store, &j->peer, &hr->id, hr->max, &m);
    reply_store_msg(j, PS_MSG_HISTORY_RESULT, &m);
}

static void read_work(uv_work_t *req)
{
    read_job_t *j = req->data;
    j->h->work(j);
    /* Compression happens here, off the loop thread. */
    if (j->rc == PS_OK && j->compress)
        j->rc = ps_frames_compress(&j->reply, 0);
}

/* The window in force: what the Hello asked within our bounds; a Hello
 * without one (an older client) gets one request at a time. */
static void agree_window(ps_conn_t *c)
{
    c->window = c->want_window == 0 ? 1 : c->want_window < PS_WINDOW_MAX ? c->want_window : PS_WINDOW_MAX;
    c->window_bytes = c->want_window_bytes && c->want_window_bytes < PS_WINDOW_BYTES_MAX ? c->want_window_bytes
                                                                                         : PS_WINDOW_BYTES_MAX;
}

static void send_welcome(read_job_t *j)
{
    ps_conn_t *c = j->c;
    ps_server_t *srv = c->srv;
    Popsync__Welcome w = POPSYNC__WELCOME__INIT;
    ps_buf_t b;

    /* Only a welcomed node is "seen": a refused Hello must not put its
     * certificate in the node table of the node id it tried. */
    ps_nodes_seen(srv, c->node, &c->peer, j->cursor);
    w.protocol_version = PS_PROTOCOL_VERSION;
    w.server_node.data = (uint8_t *)ps_store_server_node(srv->store);
    w.server_node.len = PS_ID_LEN;
    w.head = ps_store_head(srv->store);
    w.role = c->peer.role_name;
    w.orgunit = c->peer.orgunit;
    w.max_frame = srv->opts.max_frame;
    w.max_batch = srv->opts.max_push_changes;
    w.features = c->features;
    w.node_high_water = j->hw;
    w.conflicts_lost = j->conflicts_lost;
    w.server_hlc = ps_now_ms() << 16;
    w.timezone = srv->tz.name;
    w.synthetic_allowed = srv->opts.allow_synthetic != 0;
    w.approved_months = j->approved;
    w.n_approved_months = j->napproved;
    agree_window(c);
    w.window = c->window;
    w.window_bytes = c->window_bytes;
    if (srv->units) {
        w.orgunits_digest.data = (uint8_t *)ps_orgunits_digest(srv->units);
        w.orgunits_digest.len = 32;
    }
    ps_buf_init(&b);
    if (ps_msg_pack_frame(&b, PS_MSG_WELCOME, j->request_id, &w.base) == PS_OK)
        ps_conn_send(c, &b);
    ps_buf_free(&b);
    c->state = PS_CONN_READY;
    ps_stream_set_timeouts(&c->stream, srv->opts.handshake_ms, srv->opts.idle_ms);
}

static void pull_done(read_job_t *j)
{
    ps_nodes_pulled(j->c->srv, j->c->node, j->new_cursor); /* status --all, pull lag */
    ps_conn_send(j->c, &j->reply);
}

/* --- versions the peer holds (Pull.skip_own, docs/protocol.md §9.1) ------
 *
 * A Push's answer gives its sender the rev of each change stored exactly as
 * sent (apply.c own_copy); with it the sender's copy is the stored version,
 * so sending it back in the pull that follows on the same connection is
 * waste: for an incremental sync it was most of the pull.  The seqs are
 * kept only while the connection lives: a sync cut before its pull gets
 * them on the next connection, as any client does. */

#define PS_OWN_MAX 16384u /* 128 KB per connection at most; beyond, the versions are sent */

void ps_sync_own_add(ps_conn_t *c, const uint64_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (c->nown && seqs[i] <= c->own[c->nown - 1])
            continue; /* never out of order: commits run one at a time */
        if (c->nown >= PS_OWN_MAX)
            return;
        if (PS_VEC_ROOM(c->own, c->nown, c->capown, 64))
            return;
        c->own[c->nown++] = seqs[i];
    }
}

/* A Pull ended at cursor: the seqs up to it are behind every later one. */
static void own_passed(ps_conn_t *c, uint64_t cursor)
{
    size_t i = 0;
    if (!c->nown)
        return;
    while (i < c->nown && c->own[i] <= cursor)
        i++;
    memmove(c->own, c->own + i, (c->nown - i) * sizeof(*c->own));
    c->nown -= i;
    if (c->nown == 0) {
        free(c->own);
        c->own = NULL;
        c->capown = 0;
    }
}

/* When a Pull with skip_own starts (every Push before it has committed):
 * the seqs past its cursor.  None when out of memory: they are sent. */
static void own_for_pull(ps_conn_t *c, read_job_t *j)
{
    size_t i = 0;
    while (i < c->nown && c->own[i] <= j->cursor)
        i++;
    if (i == c->nown || !(j->skip = malloc((c->nown - i) * sizeof(*j->skip))))
        return;
    j->nskip = c->nown - i;
    memcpy(j->skip, c->own + i, j->nskip * sizeof(*j->skip));
}

static void read_job_free(read_job_t *j)
{
    ps_buf_free(&j->reply);
    ps_msg_free(j->msg);
    free(j->skip);
    free(j->live);
    ps_store_approved_free(j->approved, j->napproved);
    free(j);
}

static void read_after(uv_work_t *req, int status)
{
    read_job_t *j = req->data;
    ps_conn_t *c = j->c;
    if (j->type == PS_MSG_PULL) {
        /* Where the next Pull with follow starts; none after a failure. */
        c->pull_next_ok = !status && !j->rc;
        c->pull_next = j->new_cursor;
        if (c->pull_next_ok)
            own_passed(c, j->new_cursor);
    }
    PS_TRACE("server", "conn %llu: %s answered", (unsigned long long)c->id, ps_frame_type_name(j->type));
    if (c->state != PS_CONN_CLOSING) {
        if (status || j->rc) {
            ps_conn_error(c, j->request_id, j->rc ? j->rc : PS_EIO, j->type == PS_MSG_HELLO, "%s failed: %s",
                          ps_frame_type_name(j->type), j->err[0] ? j->err : ps_strerror(j->rc ? j->rc : PS_EIO));
        } else if (j->h->done) {
            j->h->done(j);
        } else {
            ps_conn_send(c, &j->reply);
        }
    }
    read_job_free(j);
    ps_conn_job_done(c);
}

/* --- the connection's requests in flight (docs/protocol.md §7.1) ---------
 *
 * POOL and COMMIT requests are taken in while the window has room and run
 * one at a time, in the order they came: so a connection's pushes commit
 * in the order sent, its answers go out in request order, and a request
 * sees every Push sent before it.  What the window gains is the round trip
 * and the client's own work: the next request is already parsed, decoded
 * and waiting when the one before it is answered. */

typedef struct ps_queued {
    struct ps_queued *next;
    read_job_t *read;        /* a POOL request, or */
    ps_push_job_t *push;     /* a Push for the group commit */
    size_t bytes;            /* its frame */
} queued_t;

int ps_sync_full(const ps_conn_t *c)
{
    uint32_t w = c->window ? c->window : 1;
    return c->busy >= w || (c->busy && c->window_bytes && c->busy_bytes >= c->window_bytes);
}

/* Every push job is a ps_push_frame_t (on_push): freed now, or when its
 * decode returns. */
static void push_job_free(ps_push_job_t *job)
{
    ps_commit_release((ps_push_frame_t *)(void *)job);
}

static int start_read(ps_conn_t *c, read_job_t *j)
{
    int rc = PS_EIO;
    if (c->state == PS_CONN_CLOSING) {
        rc = PS_ECLOSED; /* nobody to answer: a read has no effect to finish */
        goto drop;
    }
    if (j->follow) {
        if (!c->pull_next_ok) {
            rc = PS_EINVAL;
            ps_conn_error(c, j->request_id, rc, 0, "Pull.follow without an earlier successful Pull on this connection");
            goto drop;
        }
        j->cursor = c->pull_next;
        ps_nodes_seen(c->srv, c->node, &c->peer, j->cursor);
    }
    if (j->skip_own)
        own_for_pull(c, j);
    if (uv_queue_work(c->srv->loop, &j->req, read_work, read_after) != 0) {
        ps_conn_error(c, j->request_id, rc, 0, "%s: cannot schedule the work", ps_frame_type_name(j->type));
        goto drop;
    }
    return PS_OK;
drop:
    read_job_free(j);
    return rc;
}

static int start_push(ps_conn_t *c, ps_push_job_t *job)
{
    /* Pushes commit in the order sent: none after one that was not. */
    if (c->push_failed) {
        if (c->state != PS_CONN_CLOSING)
            ps_conn_error(c, job->request_id, PS_EIO, 0,
                          "Push not applied: an earlier Push on this connection was not committed; send its "
                          "changes again");
        push_job_free(job);
        return PS_EIO;
    }
    return ps_commit_enqueue(c->srv, (ps_push_frame_t *)(void *)job);
}

/* Starts the oldest waiting request when none runs.  One that cannot start
 * was answered with an Error; the next one is tried. */
static void start_next(ps_conn_t *c)
{
    while (!c->running && c->q_head) {
        queued_t *q = c->q_head;
        int rc;
        c->q_head = q->next;
        if (!c->q_head)
            c->q_tail = NULL;
        c->running = 1;
        c->running_bytes = q->bytes;
        rc = q->read ? start_read(c, q->read) : start_push(c, q->push);
        free(q);
        if (rc) {
            /* Never ran: no job_done will come.  The caller holds c (open,
             * or a finishing job's reference), so this is never the last. */
            c->running = 0;
            c->busy--;
            c->busy_bytes -= c->running_bytes;
            c->refs--;
        }
    }
}

/* Takes a request in: it holds c until it is answered. */
static int take_in(ps_conn_t *c, const ps_frame_t *f, read_job_t *rj, ps_push_job_t *pj)
{
    queued_t *q = calloc(1, sizeof(*q));
    if (!q)
        return PS_ENOMEM;
    q->read = rj;
    q->push = pj;
    q->bytes = (size_t)f->body_len + PS_FRAME_HDR;
    if (c->q_tail)
        c->q_tail->next = q;
    else
        c->q_head = q;
    c->q_tail = q;
    c->busy++;
    c->busy_bytes += q->bytes;
    c->refs++;
    if (c->busy > c->srv->stats.max_in_flight)
        c->srv->stats.max_in_flight = c->busy;
    start_next(c);
    return PS_OK;
}

void ps_sync_job_finished(ps_conn_t *c)
{
    c->running = 0;
    c->busy--;
    c->busy_bytes -= c->running_bytes;
    c->running_bytes = 0;
    start_next(c);
}

/* Runs a POOL request: the job owns m from here on. */
static int queue_read(ps_conn_t *c, const ps_frame_t *f, const handler_t *h, ProtobufCMessage *m)
{
    read_job_t *j = calloc(1, sizeof(*j));
    int rc;
    if (!j) {
        ps_msg_free(m);
        ps_conn_error(c, f->request_id, PS_ENOMEM, 0, "out of memory");
        return PS_ENOMEM;
    }
    j->c = c;
    j->h = h;
    j->type = f->type;
    j->request_id = f->request_id;
    j->peer = c->peer;
    memcpy(j->node, c->node, PS_ID_LEN); /* conflicts: the peer's own edits */
    j->msg = m;
    j->req.data = j;
    j->compress = (c->features & PS_FEATURE_ZSTD) != 0;
    ps_buf_init(&j->reply);
    rc = h->loop ? h->loop(c, f, m, j) : PS_OK;
    if (rc == PS_OK && (rc = take_in(c, f, j, NULL)))
        ps_conn_error(c, j->request_id, rc, 0, "out of memory");
    if (rc) {
        ps_msg_free(j->msg);
        free(j->live);
        free(j);
        return rc;
    }
    return PS_OK;
}

/* --- handlers on the loop: one per request type ------------------------- */

static int on_hello(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m, read_job_t *j)
{
    Popsync__Hello *h = (Popsync__Hello *)m;
    if (c->state != PS_CONN_HELLO) {
        ps_conn_error(c, f->request_id, PS_EPROTO, 0, "Hello already received");
        return PS_EPROTO;
    }
    if (h->protocol_version != PS_PROTOCOL_VERSION) {
        ps_conn_error(c, f->request_id, PS_EPROTO, 1, "protocol version %u not supported (server speaks %u)",
                      h->protocol_version, PS_PROTOCOL_VERSION);
        return PS_EPROTO;
    }
    if (h->node.len != PS_ID_LEN) {
        ps_conn_error(c, f->request_id, PS_EPROTO, 1, "Hello.node must be 16 bytes");
        return PS_EPROTO;
    }
    {
        /* The policy admits the certificate before anything is read for
         * it: a unit the tree does not know has no scope to decide. */
        char why[256];
        if (ps_policy_admit(c->srv->units, &c->peer, why, sizeof(why))) {
            ps_conn_error(c, f->request_id, PS_EACCES, 1, "%s", why);
            return PS_EACCES;
        }
    }
    memcpy(c->node, h->node.data, PS_ID_LEN);
    /* The features both sides support; today only zstd bodies. */
    c->features = h->features & PS_FEATURE_ZSTD;
    c->want_window = h->window;
    c->want_window_bytes = h->window_bytes;
    j->cursor = h->cursor;
    j->peer = c->peer;
    memcpy(j->node, c->node, PS_ID_LEN);
    {
        char hex[33];
        ps_hex(c->node, PS_ID_LEN, hex);
        PS_INFO("conn", "#%llu hello: node %s cursor %llu", (unsigned long long)c->id, hex,
                (unsigned long long)h->cursor);
    }
    return PS_OK;
}

static int on_pull(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m, read_job_t *j)
{
    ps_server_t *srv = c->srv;
    Popsync__Pull *p = (Popsync__Pull *)m;
    /* follow: the previous Pull's cursor, known when this one starts. */
    j->follow = p->follow;
    j->skip_own = p->skip_own;
    /* A cursor past head was never given out by this store (restores
     * advance head, docs/protocol.md §9); answering it would echo it back,
     * and 2^64-1 would wrap to the whole scope. */
    if (!p->follow && p->cursor > ps_store_head(srv->store)) {
        ps_conn_error(c, f->request_id, PS_EINVAL, 0,
                      "Pull.cursor %llu is beyond the server's head %llu: this cache's sync position did not come "
                      "from this server; make a new cache with 'popsync init'",
                      (unsigned long long)p->cursor, (unsigned long long)ps_store_head(srv->store));
        return PS_EINVAL;
    }
    j->cursor = p->cursor;
    if (!p->follow)
        ps_nodes_seen(srv, c->node, &c->peer, p->cursor);
    j->max_records = p->max_records && p->max_records < srv->opts.pull_max_records ? p->max_records
                                                                                    : srv->opts.pull_max_records;
    j->max_bytes = p->max_bytes && p->max_bytes < srv->opts.pull_max_bytes ? p->max_bytes
                                                                            : srv->opts.pull_max_bytes;
    return PS_OK;
}

/* A Push is not decoded here: its body is copied as it came and its decode
 * starts on a pool thread (into one arena, commit.c) while the request
 * ahead of it runs; ps_sync_push_admit checks it once decoded. */
static int on_push(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m, read_job_t *unused)
{
    ps_push_frame_t *pf = calloc(1, sizeof(*pf));
    ps_push_job_t *job;
    (void)m;
    (void)unused;
    if (!pf || ps_buf_append(&pf->body, f->body, f->body_len)) {
        free(pf);
        ps_conn_error(c, f->request_id, PS_ENOMEM, 0, "out of memory");
        return PS_ENOMEM;
    }
    pf->zstd = (f->flags & PS_FRAME_FLAG_ZSTD) != 0;
    pf->max_body = c->srv->opts.max_frame;
    pf->arrived_ms = ps_now_ms();
    job = &pf->job;
    memcpy(job->node, c->node, PS_ID_LEN);
    job->peer = c->peer;
    job->request_id = f->request_id;
    job->compress = (c->features & PS_FEATURE_ZSTD) != 0;
    job->owner = c;
    ps_buf_init(&job->reply);
    ps_commit_decode(c->srv, pf);
    if (take_in(c, f, NULL, job)) {
        ps_commit_release(pf);
        ps_conn_error(c, f->request_id, PS_ENOMEM, 0, "out of memory");
        return PS_ENOMEM;
    }
    return PS_OK;
}

int ps_sync_push_admit(ps_conn_t *c, ps_push_frame_t *pf)
{
    ps_push_job_t *job = &pf->job;
    const Popsync__Push *p = job->push;
    if (p->n_changes > c->srv->opts.max_push_changes) {
        if (c->state != PS_CONN_CLOSING)
            ps_conn_error(c, job->request_id, PS_ETOOBIG, 0, "Push has %zu changes; the limit is %u", p->n_changes,
                          c->srv->opts.max_push_changes);
        return PS_ETOOBIG;
    }
    /* The cache's clock error, measured as the Push arrived (the apply may
     * wait for a group commit): its changes' times are moved by it. */
    job->clock_ms = p->clock_ms;
    if (p->clock_ms)
        job->clock_skew_ms = (int64_t)p->clock_ms - (int64_t)pf->arrived_ms;
    if (job->clock_skew_ms > PS_CLOCK_TOLERANCE_MS || job->clock_skew_ms < -PS_CLOCK_TOLERANCE_MS)
        PS_INFO("conn", "#%llu push: the cache's clock is %+lld s off ours; its changes are re-timed",
                (unsigned long long)c->id, (long long)(job->clock_skew_ms / 1000));
    if (p->n_changes)
        PS_DEBUG("conn", "#%llu push: %zu changes, lcn %llu to %llu", (unsigned long long)c->id, p->n_changes,
                 (unsigned long long)p->changes[0]->lcn, (unsigned long long)p->changes[p->n_changes - 1]->lcn);
    return PS_OK;
}

static int on_fetch(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m, read_job_t *j)
{
    (void)j;
    if (((Popsync__FetchRequest *)m)->n_ids > 10000) {
        ps_conn_error(c, f->request_id, PS_ETOOBIG, 0, "FetchRequest names more than 10000 records");
        return PS_ETOOBIG;
    }
    return PS_OK;
}

static int on_query(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m, read_job_t *j)
{
    (void)j;
    if (((Popsync__Query *)m)->list && !ps_policy_may(c->peer.role, PS_ACT_QUERY_LIST)) {
        ps_conn_error(c, f->request_id, PS_EACCES, 0, "role %s may not list records, only count them",
                      c->peer.role_name);
        return PS_EACCES;
    }
    return PS_OK;
}

static int on_node_status(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m, read_job_t *j)
{
    (void)m;
    /* The worker reads the store and a copy of the table, never the table. */
    if (ps_nodes_copy(c->srv, &j->live, &j->nlive) != PS_OK) {
        ps_conn_error(c, f->request_id, PS_ENOMEM, 0, "out of memory");
        return PS_ENOMEM;
    }
    return PS_OK;
}

static int on_orgunits(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m, read_job_t *j)
{
    Popsync__OrgUnits o = POPSYNC__ORG_UNITS__INIT;
    ps_buf_t b;
    int rc;
    (void)m;
    (void)j;
    if (!c->srv->units) {
        ps_conn_error(c, f->request_id, PS_ENOTFOUND, 0, "this server has no org-unit file");
        return PS_ENOTFOUND;
    }
    o.csv.data = (uint8_t *)ps_orgunits_bytes(c->srv->units, &o.csv.len);
    o.digest.data = (uint8_t *)ps_orgunits_digest(c->srv->units);
    o.digest.len = 32;
    ps_buf_init(&b);
    rc = ps_msg_pack_frame(&b, PS_MSG_ORGUNITS, f->request_id, &o.base);
    if (rc == PS_OK)
        rc = ps_conn_send(c, &b);
    ps_buf_free(&b);
    return rc;
}

static int on_ping(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m, read_job_t *j)
{
    Popsync__Ping pong = POPSYNC__PING__INIT;
    ps_buf_t b;
    int rc;
    (void)j;
    pong.nonce = ((Popsync__Ping *)m)->nonce;
    ps_buf_init(&b);
    rc = ps_msg_pack_frame(&b, PS_MSG_PONG, f->request_id, &pong.base);
    if (rc == PS_OK)
        rc = ps_conn_send(c, &b);
    ps_buf_free(&b);
    return rc;
}

/* One row per client -> server type of the message table; where each runs
 * (and so which members it has) is the table's run column, checked against
 * this array by ps_sync_check_handlers when the server starts. */
static const handler_t g_handlers[PS_MSG_MAX_KNOWN + 1] = {
    [PS_MSG_HELLO] = {on_hello, work_hello, send_welcome},
    [PS_MSG_PUSH] = {on_push, NULL, NULL},
    [PS_MSG_PULL] = {on_pull, work_pull, pull_done},
    [PS_MSG_PING] = {on_ping, NULL, NULL},
    [PS_MSG_ORGUNITS_REQUEST] = {on_orgunits, NULL, NULL},
    [PS_MSG_CONFLICT_LIST] = {NULL, work_conflicts, NULL},
    [PS_MSG_VERIFY_REQUEST] = {NULL, work_verify, NULL},
    [PS_MSG_VERIFY_BUCKET_REQUEST] = {NULL, work_verify_buckets, NULL},
    [PS_MSG_FETCH_REQUEST] = {on_fetch, work_fetch, NULL},
    [PS_MSG_QUERY] = {on_query, work_query, NULL},
    [PS_MSG_REPORT_REQUEST] = {NULL, work_report, NULL},
    [PS_MSG_CLOSE_REQUEST] = {NULL, work_close, NULL},
    [PS_MSG_NODE_STATUS_REQUEST] = {on_node_status, work_node_status, NULL},
    [PS_MSG_HISTORY_REQUEST] = {NULL, work_history, NULL},
};

int ps_sync_check_handlers(char *err, size_t errlen)
{
    size_t n;
    const ps_msg_info_t *t = ps_msg_table(&n);
    for (size_t i = 0; i < n; i++) {
        const handler_t *h = &g_handlers[t[i].type];
        int ok = t[i].run == PS_MSG_RUN_POOL ? h->work != NULL
                 : t[i].run == PS_MSG_RUN_NONE ? !h->loop && !h->work && !h->done
                                                 : h->loop && !h->work && !h->done;
        if (!ok) {
            snprintf(err, errlen, "message %s: its handler in server/sync.c does not match the message table",
                     t[i].name);
            return PS_EINVAL;
        }
    }
    return PS_OK;
}

/* The plain body of f, unpacked as its type's message.  Reports failures. */
static int unpack_body(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage **m)
{
    const uint8_t *body;
    size_t len;
    int rc = ps_frame_plain_body(f->body, f->body_len, (f->flags & PS_FRAME_FLAG_ZSTD) != 0,
                                 c->srv->opts.max_frame, &c->zin, &body, &len);
    if (rc == PS_OK)
        rc = ps_msg_unpack(f->type, body, len, m);
    if (rc)
        ps_conn_error(c, f->request_id, rc, 1, "malformed %s body (%s)", ps_frame_type_name(f->type),
                      ps_strerror(rc));
    return rc;
}

int ps_sync_dispatch(ps_conn_t *c, const ps_frame_t *f)
{
    const ps_msg_info_t *mi = ps_msg_info(f->type);
    const handler_t *h;
    ProtobufCMessage *m = NULL;
    int rc;

    /* Before Hello every refusal is fatal: nothing is agreed yet, not even
     * compression, so a compressed Hello is as wrong as a Push. */
    int before_hello = c->state == PS_CONN_HELLO;
    /* Request id 0 is the server's own (errors about the frame layer or the
     * connection), so a reply to a request with id 0 could not be told apart. */
    if (f->request_id == 0) {
        ps_conn_error(c, 0, PS_EPROTO, before_hello, "request_id 0 is reserved for the server; number requests from 1");
        return PS_EPROTO;
    }
    if (f->reserved != 0 || (f->flags & ~PS_FRAME_FLAGS_KNOWN)) {
        ps_conn_error(c, f->request_id, PS_EPROTO, before_hello, "unknown frame flags 0x%02x or reserved bits set",
                      f->flags);
        return PS_EPROTO;
    }
    if ((f->flags & PS_FRAME_FLAG_ZSTD) && !(c->features & PS_FEATURE_ZSTD)) {
        ps_conn_error(c, f->request_id, PS_EPROTO, before_hello,
                      "compressed frame but compression was not agreed in Hello");
        return PS_EPROTO;
    }
    if (!mi || mi->dir != PS_MSG_DIR_C2S) {
        ps_conn_error(c, f->request_id, PS_EPROTO, before_hello, "unknown or unexpected message type %u", f->type);
        return PS_EPROTO;
    }
    if (c->state == PS_CONN_HELLO && mi->needs_hello) {
        ps_conn_error(c, f->request_id, PS_EPROTO, 1, "%s before Hello", mi->name);
        return PS_EPROTO;
    }
    PS_TRACE("server", "conn %llu: %s in (%zu bytes)", (unsigned long long)c->id, mi->name, (size_t)f->body_len);
    /* A Push is decoded off the loop, into an arena (on_push, commit.c). */
    if (mi->type != PS_MSG_PUSH && (rc = unpack_body(c, f, &m)))
        return rc;
    /* May this role send this type at all: the access policy decides; what
     * the message may touch is decided (by the same policy) where it runs. */
    if (!ps_policy_may_send(c->peer.role, mi->type)) {
        char roles[64];
        ps_msg_roles_text(mi->type, roles, sizeof(roles));
        ps_conn_error(c, f->request_id, PS_EACCES, 0, "role %s may not send %s (only %s)", c->peer.role_name,
                      mi->name, roles);
        ps_msg_free(m);
        return PS_EACCES;
    }
    h = &g_handlers[mi->type];
    switch (mi->run) {
    case PS_MSG_RUN_POOL: return queue_read(c, f, h, m); /* the job owns m */
    case PS_MSG_RUN_COMMIT:
        rc = h->loop(c, f, m, NULL);
        if (rc == PS_OK)
            return PS_OK; /* the commit job owns m */
        break;
    default: rc = h->loop(c, f, m, NULL); break;
    }
    ps_msg_free(m);
    return rc;
}
