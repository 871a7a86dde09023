/* commit.c - group commit.
 *
 * Pushes from all connections wait in one queue.  When no transaction is
 * running, everything waiting (up to commit_max_changes: job_weight) goes to a worker
 * thread as one LMDB write transaction with a durable commit; replies are
 * sent only after it returns.  While it runs, new pushes queue up for the
 * next one, so under load each fsync acknowledges many clients' changes.
 *
 * A Push is decoded on a pool thread into one arena (ps_msg_unpack_arena)
 * from the moment it arrives (ps_commit_decode), while the connection's
 * request ahead of it runs; it joins the queue when its turn comes
 * (ps_commit_enqueue, server/sync.c start_push), and a group commit takes
 * only decoded, admitted pushes from the head of the queue, so each
 * connection's pushes commit in the order they came.  The arena is freed
 * in one call, on the worker, once the reply is built.
 *
 * Decoded Pushes are several times their frames (~800 bytes a change
 * against ~60 compressed), and with 8 Pushes in flight per connection they
 * were popsyncd's largest holder of memory during an ingest.  So the
 * decoded Pushes held across all connections are bounded by
 * opts.push_decode_budget: a frame over it waits as it came, compressed,
 * until decoded ones are freed; those whose turn has come go first, and
 * the head of the commit queue is decoded whatever the budget, so a group
 * commit always has something to take and the budget never stops the
 * queue (docs/performance.md §d).
 *
 * The node table (nodes.c) is written by the same single writer between
 * group commits, in a small transaction of its own every few seconds
 * (ps_commit_flush_nodes), and the latency of each group commit goes to
 * the popsync_commit_seconds histogram.
 */
#include "server.h"
#include "err.h"
#include "log.h"
#include "msg.h"
#include "reply.h"
#include "trace.h"

#include "wire.pb-c.h"

#include <stdlib.h>
#include <zstd.h>

/* A change to an existing record weighs this many new records in a group
 * commit's budget (job_weight). */
#define PS_COMMIT_EDIT_WEIGHT 5

static void kick(ps_server_t *srv);
static void pump(ps_server_t *srv);

static ps_push_frame_t *frame_of(ps_push_job_t *j)
{
    return (ps_push_frame_t *)(void *)j; /* the job is the frame's first member */
}

/* May a group commit take it: decoded and admitted. */
static int ready(ps_push_job_t *j)
{
    return frame_of(j)->admitted;
}

/* Frees a push's message (its arena) and the frame; its budget goes to
 * frames waiting to decode. */
static void frame_free(ps_push_frame_t *f)
{
    ps_server_t *srv = f->srv;
    if (srv)
        srv->decoded_bytes -= f->charged;
    free(f->job.own_seqs);
    ps_msg_arena_free(f->arena);
    ps_buf_free(&f->body);
    ps_buf_free(&f->job.reply);
    ps_push_job_results_free(&f->job);
    free(f);
    if (srv)
        pump(srv);
}

/* Time from queueing a group commit to its durable completion. */
static void observe_commit(ps_server_stats_t *st)
{
    static const double bounds[PS_COMMIT_BUCKETS] = PS_COMMIT_BUCKET_BOUNDS;
    double secs = (double)(uv_hrtime() - st->commit_start_ns) / 1e9;
    size_t b = 0;
    while (b < PS_COMMIT_BUCKETS && secs > bounds[b])
        b++;
    st->commit_buckets[b]++;
    st->commit_count++;
    st->commit_seconds_sum += secs;
}

/* The seqs of the job's versions its sender holds already (own_copy), in
 * the order applied, which is ascending: its connection's Pull with
 * skip_own leaves them out (sync.c).  None when out of memory: then they
 * are sent, as to any client. */
static void collect_own(ps_push_job_t *j)
{
    size_t n = 0;
    for (size_t i = 0; i < j->nresults; i++)
        n += j->results[i].own_copy && j->results[i].status == PS_CHANGE_ACCEPTED;
    if (n == 0 || !(j->own_seqs = malloc(n * sizeof(*j->own_seqs))))
        return;
    for (size_t i = 0; i < j->nresults; i++)
        if (j->results[i].own_copy && j->results[i].status == PS_CHANGE_ACCEPTED)
            j->own_seqs[j->nown++] = j->results[i].seq;
}

static void commit_work(uv_work_t *req)
{
    ps_server_t *srv = req->data;
    PS_TRACE("server", "group commit: apply");
    ps_store_apply(srv->store, srv->commit_batch);
    PS_TRACE("server", "group commit: durable");
    /* The replies are built, and compressed for clients that asked, here,
     * off the loop thread. */
    for (ps_push_job_t *j = srv->commit_batch; j; j = j->next) {
        if (j->refused)
            continue; /* answered by an Error on the loop */
        if (j->status)
            ps_reply_push_error(j, j->status);
        else if (ps_reply_push(j) != PS_OK)
            ps_reply_push_error(j, PS_ENOMEM);
        else
            collect_own(j);
        ps_push_job_results_free(j);
        if (j->compress)
            ps_frames_compress(&j->reply, 0);
        /* The changes are applied and answered: the message goes, here,
         * in one free. */
        ps_msg_arena_free(frame_of(j)->arena);
        frame_of(j)->arena = NULL;
        j->push = NULL;
    }
}

static void commit_after(uv_work_t *req, int status)
{
    ps_server_t *srv = req->data;
    ps_push_job_t *j = srv->commit_batch, *next;
    (void)status;
    srv->commit_batch = NULL;
    srv->stats.commits++;
    observe_commit(&srv->stats);
    if (j && j->status == PS_EFULL)
        srv->stats.commit_fail_map_cap++;
    else if (j && j->status == PS_ENOSPC)
        srv->stats.commit_fail_disk_full++;
    else if (j && j->status)
        srv->stats.commit_fail_other++;
    for (; j; j = next) {
        ps_conn_t *c = j->owner;
        next = j->next;
        srv->stats.pushes++;
        srv->stats.changes_conflicts += j->conflicted;
        srv->stats.changes_accepted += j->accepted;
        srv->stats.changes_rejected += j->rejected;
        srv->stats.changes_duplicate += j->duplicate;
        if (j->refused) {
            /* Wrong certificate for the node id, or a copied cache: refused
             * whole before anything was applied; the connection ends. */
            PS_WARN("commit", "#%llu push refused: %s", (unsigned long long)c->id, j->why);
            if (c->state != PS_CONN_CLOSING)
                ps_conn_error(c, j->request_id, j->refused, 1, "%s", j->why);
        } else if (c->state != PS_CONN_CLOSING) {
            PS_TRACE("server", "conn %llu: PushResult out", (unsigned long long)c->id);
            if (!j->status)
                ps_sync_own_add(c, j->own_seqs, j->nown);
            ps_conn_send(c, &j->reply);
        }
        PS_DEBUG("commit", "#%llu push: %zu accepted, %zu duplicate, %zu rejected", (unsigned long long)c->id,
                 j->accepted, j->duplicate, j->rejected);
        /* The connection's later pushes must not commit after this one did
         * not (server/sync.c start_push): they would jump its changes. */
        if (j->status || j->refused)
            c->push_failed = 1;
        frame_free(frame_of(j));
        ps_conn_job_done(c);
    }
    /* Answering a job may start its connection's next Push (pipelining):
     * still "committing" until every answer is out, so those Pushes wait
     * and go together in the next group rather than one in a group of its
     * own. */
    srv->committing = 0;
    kick(srv);
}

/* What a decoded Push weighs against commit_max_changes, in fifths of an
 * edit: a change to a record the cache had (it names a base revision)
 * weighs a whole one, a new record a fifth.  LMDB keeps the dirty pages of
 * the largest write transaction (docs/performance.md §d), and an edit
 * dirties about seven pages of its own in as many B-trees, while a new
 * record's keys (UUIDv7, feed seqs) land on the pages the one before it
 * dirtied; longer groups of new records cost little memory and much less
 * CPU per record (fewer commits rewriting the same pages; at 1,000,000
 * persons: docs/performance.md, "Issue 17 at 1,000,000 persons, session 5"). */
static size_t job_weight(const ps_push_job_t *j)
{
    size_t w = 0;
    for (size_t i = 0; i < j->push->n_changes; i++) {
        const Popsync__Change *ch = j->push->changes[i];
        w += ch->base_rev && ch->base_rev->gen ? PS_COMMIT_EDIT_WEIGHT : 1;
    }
    return w;
}

static void kick(ps_server_t *srv)
{
    ps_push_job_t *head, *tail;
    size_t n = 0, w, budget = (size_t)srv->opts.commit_max_changes * PS_COMMIT_EDIT_WEIGHT, wnext;
    if (srv->committing || !srv->queue_head || !ready(srv->queue_head))
        return;
    /* Take whole decoded jobs up to the weight budget (always at least one). */
    head = tail = srv->queue_head;
    n = head->push->n_changes;
    w = job_weight(head);
    while (tail->next && ready(tail->next) && w + (wnext = job_weight(tail->next)) <= budget) {
        tail = tail->next;
        n += tail->push->n_changes;
        w += wnext;
    }
    srv->queue_head = tail->next;
    if (!srv->queue_head)
        srv->queue_tail = NULL;
    tail->next = NULL;
    srv->queued_changes -= n;
    PS_DEBUG("commit", "group commit of %zu changes, weight %zu of %zu", n, w, budget);
    srv->commit_batch = head;
    srv->committing = 1;
    pump(srv); /* the new head decodes while this group commits */
    srv->commit_req.data = srv;
    srv->stats.commit_start_ns = uv_hrtime();
    PS_TRACE("server", "group commit: %zu changes queued", n);
    if (uv_queue_work(srv->loop, &srv->commit_req, commit_work, commit_after) != 0) {
        /* Cannot happen with a live loop; fail the batch rather than hang it. */
        PS_ERROR("commit", "cannot queue commit work");
        for (ps_push_job_t *j = head; j; j = j->next) {
            j->status = PS_EIO;
            ps_reply_push_error(j, PS_EIO);
        }
        commit_after(&srv->commit_req, -1);
    }
}

/* Pool thread: the body, decompressed if it came so, into one arena. */
static void decode_work(uv_work_t *req)
{
    ps_push_frame_t *f = req->data;
    ps_buf_t zin;
    const uint8_t *body;
    size_t len;
    ProtobufCMessage *m = NULL;

    ps_buf_init(&zin);
    f->decode_rc = ps_frame_plain_body(ps_buf_head(&f->body), ps_buf_size(&f->body), f->zstd, f->max_body, &zin,
                                       &body, &len);
    if (f->decode_rc == PS_OK)
        f->decode_rc = ps_msg_unpack_arena(PS_MSG_PUSH, body, len, &f->arena, &m);
    f->job.push = (Popsync__Push *)m;
    f->arena_used = ps_msg_arena_used(f->arena);
    ps_buf_free(&zin);
    ps_buf_free(&f->body);
}

/* A decoded push, its turn come: refused (answered) or counted in. */
static int admit(ps_server_t *srv, ps_push_frame_t *f)
{
    ps_conn_t *c = f->job.owner;
    int rc = f->decode_rc;
    if (rc) {
        if (c->state != PS_CONN_CLOSING)
            ps_conn_error(c, f->job.request_id, rc, 1, "malformed %s body (%s)", ps_frame_type_name(PS_MSG_PUSH),
                          ps_strerror(rc));
        return rc;
    }
    if ((rc = ps_sync_push_admit(c, f)))
        return rc;
    f->admitted = 1;
    srv->queued_changes += f->job.push->n_changes;
    srv->stats.push_decodes_pool += !f->on_loop;
    srv->stats.push_arena_bytes += f->arena_used;
    return PS_OK;
}

/* Takes f out of the queue (refused before any commit took it). */
static void unqueue(ps_server_t *srv, ps_push_job_t *job)
{
    ps_push_job_t **pp = &srv->queue_head, *prev = NULL;
    while (*pp && *pp != job) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = job->next;
    if (srv->queue_tail == job)
        srv->queue_tail = prev;
}

/* Loop: the decode is back.  A push already queued is admitted now. */
static void decode_after(uv_work_t *req, int status)
{
    ps_push_frame_t *f = req->data;
    ps_server_t *srv = f->srv;
    ps_conn_t *c;

    f->decoded = 1;
    srv->decodes_running--;
    /* What it holds now, rather than the guess it started with. */
    srv->decoded_bytes = srv->decoded_bytes - f->charged + f->arena_used;
    f->charged = f->arena_used;
    if (srv->decoded_bytes > srv->stats.decoded_bytes_max)
        srv->stats.decoded_bytes_max = srv->decoded_bytes;
    if (status)
        f->decode_rc = PS_EIO;
    if (f->orphan) {
        frame_free(f); /* its request was dropped meanwhile */
        return;
    }
    if (!f->queued) {
        pump(srv); /* its guess was more than it took */
        return;    /* ps_commit_enqueue admits it when its turn comes */
    }
    c = f->job.owner;
    if (admit(srv, f)) {
        unqueue(srv, &f->job);
        frame_free(f);
        ps_conn_job_done(c);
    }
    pump(srv);
    kick(srv);
}

/* --- the decode budget --------------------------------------------------- */

/* What f's decode will hold until its arena is measured: the arena (~3.4
 * times the plain body for a Push of person records, 4 assumed) and the
 * decompressed body while it runs. */
static size_t decode_guess(const ps_push_frame_t *f)
{
    size_t len = ps_buf_size(&f->body), plain = len;
    if (f->zstd) {
        unsigned long long n = ZSTD_getFrameContentSize(ps_buf_head(&f->body), len);
        /* A size it does not state, or one over the limit, fails the decode
         * at once (ps_frame_plain_body): it holds nothing. */
        plain = n == ZSTD_CONTENTSIZE_UNKNOWN || n == ZSTD_CONTENTSIZE_ERROR || n > f->max_body ? 0 : (size_t)n;
    }
    return 5 * plain;
}

static int fits(const ps_server_t *srv, const ps_push_frame_t *f)
{
    size_t budget = srv->opts.push_decode_budget;
    return budget == 0 || srv->decoded_bytes + decode_guess(f) <= budget;
}

static void wait_remove(ps_server_t *srv, ps_push_frame_t *f)
{
    ps_push_frame_t **pp = &srv->decode_wait_head, *prev = NULL;
    while (*pp && *pp != f) {
        prev = *pp;
        pp = &(*pp)->wait_next;
    }
    if (!*pp)
        return;
    *pp = f->wait_next;
    if (srv->decode_wait_tail == f)
        srv->decode_wait_tail = prev;
    f->wait_next = NULL;
}

/* Starts f's decode on a pool thread, charging its guess to the budget. */
static void start_decode(ps_server_t *srv, ps_push_frame_t *f)
{
    if (f->waited)
        wait_remove(srv, f);
    f->started = 1;
    f->charged = decode_guess(f);
    srv->decoded_bytes += f->charged;
    srv->decodes_running++;
    if (uv_queue_work(srv->loop, &f->req, decode_work, decode_after) != 0) {
        /* Cannot happen with a live loop: decode here rather than drop it. */
        f->on_loop = 1;
        decode_work(&f->req);
        decode_after(&f->req, 0);
    }
}

/* Starts the decodes the budget has room for: the commit queue's head
 * always; then, in the order they came, first pushes whose turn has come,
 * then the rest. */
static void pump(ps_server_t *srv)
{
    if (srv->pumping) {
        srv->pump_again = 1; /* a decode that ran on the loop freed a frame */
        return;
    }
    srv->pumping = 1;
    do {
        srv->pump_again = 0;
        if (srv->queue_head && !frame_of(srv->queue_head)->started)
            start_decode(srv, frame_of(srv->queue_head));
        for (int turn_come = 1; turn_come >= 0 && !srv->pump_again; turn_come--) {
            ps_push_frame_t *f = srv->decode_wait_head, *next;
            for (; f && !srv->pump_again; f = next) {
                next = f->wait_next;
                if (f->queued != turn_come)
                    continue;
                if (!fits(srv, f))
                    break;
                start_decode(srv, f);
            }
        }
    } while (srv->pump_again);
    srv->pumping = 0;
}

void ps_commit_decode(ps_server_t *srv, ps_push_frame_t *f)
{
    f->srv = srv;
    f->req.data = f;
    if (!srv->decode_wait_head && fits(srv, f)) {
        start_decode(srv, f);
        return;
    }
    /* Kept as it came, compressed, until decoded Pushes are freed. */
    f->waited = 1;
    srv->stats.push_decodes_deferred++;
    if (srv->decode_wait_tail)
        srv->decode_wait_tail->wait_next = f;
    else
        srv->decode_wait_head = f;
    srv->decode_wait_tail = f;
}

void ps_commit_release(ps_push_frame_t *f)
{
    if (!f->started) {
        wait_remove(f->srv, f);
        frame_free(f);
    } else if (f->decoded) {
        frame_free(f);
    } else {
        f->orphan = 1;
    }
}

int ps_commit_enqueue(ps_server_t *srv, ps_push_frame_t *f)
{
    ps_push_job_t *job = &f->job;
    int rc;
    if (f->decoded && (rc = admit(srv, f))) {
        frame_free(f);
        return rc;
    }
    job->next = NULL;
    if (srv->queue_tail)
        srv->queue_tail->next = job;
    else
        srv->queue_head = job;
    srv->queue_tail = job;
    f->queued = 1;
    pump(srv);
    kick(srv);
    return PS_OK;
}

/* --- the node table's writes ---------------------------------------------- */

typedef struct node_flush {
    uv_work_t req;
    ps_server_t *srv;
    ps_node_info_t *v;
    size_t n;
    int rc;
} node_flush_t;

static void nodes_work(uv_work_t *req)
{
    node_flush_t *nf = req->data;
    nf->rc = ps_store_nodes_put(nf->srv->store, nf->v, nf->n);
}

static void nodes_after(uv_work_t *req, int status)
{
    node_flush_t *nf = req->data;
    ps_server_t *srv = nf->srv;
    srv->committing = 0;
    if (status || nf->rc) {
        PS_WARN("commit", "node table not written (%s); will retry", ps_strerror(nf->rc ? nf->rc : PS_EIO));
        ps_nodes_redirty(srv, nf->v, nf->n);
    }
    free(nf->v);
    free(nf);
    kick(srv);
}

int ps_commit_flush_nodes(ps_server_t *srv)
{
    node_flush_t *nf;
    if (srv->committing)
        return 1;
    if (srv->queue_head) {
        kick(srv);
        return 1;
    }
    if (!(nf = calloc(1, sizeof(*nf))))
        return 0;
    nf->srv = srv;
    nf->n = ps_nodes_take_dirty(srv, &nf->v);
    if (nf->n == 0) {
        free(nf);
        return 0;
    }
    nf->req.data = nf;
    srv->committing = 1;
    if (uv_queue_work(srv->loop, &nf->req, nodes_work, nodes_after) != 0) {
        srv->committing = 0;
        ps_nodes_redirty(srv, nf->v, nf->n);
        free(nf->v);
        free(nf);
        return 0;
    }
    return 1;
}
