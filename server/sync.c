/* sync.c - message handlers: Hello, Push, Pull, Ping.
 *
 * Every handler checks the connection's state and the certificate's role
 * before it does anything.  Work that touches the store goes to the libuv
 * thread pool; the connection stays busy until the reply is queued.
 */
#include "server.h"
#include "err.h"
#include "log.h"
#include "msg.h"
#include "policy.h"

#include "wire.pb-c.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* A read-side job for the thread pool (Hello bookkeeping, Pull). */
typedef struct read_job {
    uv_work_t req;
    ps_conn_t *c;
    uint8_t type;
    uint32_t request_id;
    uint64_t cursor;
    uint32_t max_records, max_bytes;
    uint64_t hw;
    uint64_t new_cursor;     /* Pull: the batch's cursor, 0 if unknown (nodes.c) */
    ps_peer_t peer;
    uint8_t node[PS_ID_LEN];
    ProtobufCMessage *msg;   /* the request, for requests with lists (owned) */
    ps_buf_t reply;
    int rc;
    int compress;            /* compress the reply frames (agreed in Hello) */
    char err[256];           /* why a query or report could not run (no personal data) */
} read_job_t;

static void read_work(uv_work_t *req)
{
    read_job_t *j = req->data;
    ps_store_t *st = j->c->srv->store;
    switch (j->type) {
    case PS_MSG_HELLO: j->rc = ps_store_node_hello(st, j->node, j->cursor, &j->hw); break;
    case PS_MSG_PULL:
        j->rc = ps_store_pull(st, &j->peer, j->cursor, j->max_records, j->max_bytes, j->request_id, &j->reply);
        if (j->rc == PS_OK) /* before compression: the node's cursor once it applies the batch */
            ps_nodes_batch_cursor(&j->reply, &j->new_cursor);
        break;
    case PS_MSG_CONFLICT_LIST: {
        Popsync__ConflictList *cl = (Popsync__ConflictList *)j->msg;
        j->rc = ps_store_conflicts(st, &j->peer, j->node, cl->include_resolved, cl->max, j->request_id, &j->reply);
        break;
    }
    case PS_MSG_VERIFY_REQUEST: j->rc = ps_store_verify_digests(st, &j->peer, j->request_id, &j->reply); break;
    case PS_MSG_VERIFY_BUCKET_REQUEST: {
        Popsync__VerifyBucketRequest *vb = (Popsync__VerifyBucketRequest *)j->msg;
        j->rc = ps_store_verify_buckets(st, &j->peer, vb->buckets, vb->n_buckets, j->request_id, &j->reply);
        break;
    }
    case PS_MSG_FETCH_REQUEST: {
        Popsync__FetchRequest *fr = (Popsync__FetchRequest *)j->msg;
        j->rc = ps_store_fetch(st, &j->peer, fr->ids, fr->n_ids, j->request_id, &j->reply);
        break;
    }
    case PS_MSG_QUERY:
        j->rc = ps_store_query(st, &j->peer, (Popsync__Query *)j->msg, j->request_id, &j->reply, j->err,
                               sizeof(j->err));
        break;
    case PS_MSG_REPORT_REQUEST: {
        Popsync__ReportRequest *rq = (Popsync__ReportRequest *)j->msg;
        if (rq->report && !strcmp(rq->report, "monthly"))
            j->rc = ps_store_report_monthly(st, &j->peer, rq, j->request_id, &j->reply, j->err, sizeof(j->err));
        else if (rq->report && !strcmp(rq->report, "quality"))
            j->rc = ps_store_report_quality(st, &j->peer, rq, j->request_id, &j->reply, j->err, sizeof(j->err));
        else {
            snprintf(j->err, sizeof(j->err), "unknown report '%s' (monthly or quality)", rq->report ? rq->report : "");
            j->rc = PS_EINVAL;
        }
        break;
    }
    case PS_MSG_CLOSE_REQUEST:
        j->rc = ps_store_close_month(st, &j->peer, (Popsync__CloseRequest *)j->msg, j->request_id, &j->reply, j->err,
                                     sizeof(j->err));
        break;
    default: j->rc = PS_EPROTO; break;
    }
    /* Compression happens here, off the loop thread. */
    if (j->rc == PS_OK && j->compress)
        j->rc = ps_frames_compress(&j->reply, 0);
}

static void send_welcome(read_job_t *j)
{
    ps_conn_t *c = j->c;
    ps_server_t *srv = c->srv;
    Popsync__Welcome w = POPSYNC__WELCOME__INIT;
    ps_buf_t b;

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
    w.server_hlc = ps_now_ms() << 16;
    w.timezone = srv->tz.name;
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

static void read_after(uv_work_t *req, int status)
{
    read_job_t *j = req->data;
    ps_conn_t *c = j->c;
    if (c->state != PS_CONN_CLOSING) {
        if (status || j->rc) {
            ps_conn_error(c, j->request_id, j->rc ? j->rc : PS_EIO, j->type == PS_MSG_HELLO, "%s failed: %s",
                          ps_frame_type_name(j->type), j->err[0] ? j->err : ps_strerror(j->rc ? j->rc : PS_EIO));
        } else if (j->type == PS_MSG_HELLO) {
            send_welcome(j);
        } else {
            if (j->type == PS_MSG_PULL)
                ps_nodes_pulled(c->srv, c->node, j->new_cursor); /* status --all, pull lag */
            ps_conn_send(c, &j->reply);
        }
    }
    ps_buf_free(&j->reply);
    ps_msg_free(j->msg);
    ps_conn_job_done(c);
    free(j);
}

static int queue_read(ps_conn_t *c, read_job_t *j)
{
    j->c = c;
    j->req.data = j;
    j->compress = (c->features & PS_FEATURE_ZSTD) != 0;
    ps_buf_init(&j->reply);
    c->busy = 1;
    c->refs++;
    if (uv_queue_work(c->srv->loop, &j->req, read_work, read_after) != 0) {
        c->busy = 0;
        c->refs--;
        ps_conn_error(c, j->request_id, PS_EIO, 0, "%s: cannot schedule the work", ps_frame_type_name(j->type));
        ps_msg_free(j->msg);
        free(j);
        return PS_EIO;
    }
    return PS_OK;
}

static int on_hello(ps_conn_t *c, const ps_frame_t *f, Popsync__Hello *h)
{
    read_job_t *j;
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
    ps_nodes_seen(c->srv, c->node, &c->peer, h->cursor);
    j = calloc(1, sizeof(*j));
    if (!j) {
        ps_conn_error(c, f->request_id, PS_ENOMEM, 0, "out of memory");
        return PS_ENOMEM;
    }
    j->type = PS_MSG_HELLO;
    j->request_id = f->request_id;
    j->cursor = h->cursor;
    memcpy(j->node, c->node, PS_ID_LEN);
    {
        char hex[33];
        ps_hex(c->node, PS_ID_LEN, hex);
        PS_INFO("conn", "#%llu hello: node %s cursor %llu", (unsigned long long)c->id, hex,
                (unsigned long long)h->cursor);
    }
    return queue_read(c, j);
}

static int on_pull(ps_conn_t *c, const ps_frame_t *f, Popsync__Pull *p)
{
    ps_server_t *srv = c->srv;
    read_job_t *j;
    if (!ps_policy_may(c->peer.role, PS_ACT_PULL)) {
        ps_conn_error(c, f->request_id, PS_EACCES, 0, "role %s may not pull records", c->peer.role_name);
        return PS_EACCES;
    }
    /* A cursor past head was never given out by this store (restores
     * advance head, docs/protocol.md §9); answering it would echo it back,
     * and 2^64-1 would wrap to the whole scope. */
    if (p->cursor > ps_store_head(srv->store)) {
        ps_conn_error(c, f->request_id, PS_EINVAL, 0,
                      "Pull.cursor %llu is beyond the server's head %llu: this cache's sync position did not come "
                      "from this server; make a new cache with 'popsync init'",
                      (unsigned long long)p->cursor, (unsigned long long)ps_store_head(srv->store));
        return PS_EINVAL;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        ps_conn_error(c, f->request_id, PS_ENOMEM, 0, "out of memory");
        return PS_ENOMEM;
    }
    j->type = PS_MSG_PULL;
    j->request_id = f->request_id;
    j->cursor = p->cursor;
    ps_nodes_seen(srv, c->node, &c->peer, p->cursor);
    j->peer = c->peer;
    j->max_records = p->max_records && p->max_records < srv->opts.pull_max_records ? p->max_records
                                                                                    : srv->opts.pull_max_records;
    j->max_bytes = p->max_bytes && p->max_bytes < srv->opts.pull_max_bytes ? p->max_bytes
                                                                            : srv->opts.pull_max_bytes;
    return queue_read(c, j);
}

static int on_push(ps_conn_t *c, const ps_frame_t *f, Popsync__Push *p)
{
    ps_push_job_t *job;
    if (!ps_policy_may(c->peer.role, PS_ACT_PUSH)) {
        ps_conn_error(c, f->request_id, PS_EACCES, 0, "role %s may not push records", c->peer.role_name);
        return PS_EACCES;
    }
    if (p->n_changes > c->srv->opts.max_push_changes) {
        ps_conn_error(c, f->request_id, PS_ETOOBIG, 0, "Push has %zu changes; the limit is %u", p->n_changes,
                      c->srv->opts.max_push_changes);
        return PS_ETOOBIG;
    }
    job = calloc(1, sizeof(*job));
    if (!job) {
        ps_conn_error(c, f->request_id, PS_ENOMEM, 0, "out of memory");
        return PS_ENOMEM;
    }
    memcpy(job->node, c->node, PS_ID_LEN);
    job->peer = c->peer;
    job->push = p;
    job->request_id = f->request_id;
    job->compress = (c->features & PS_FEATURE_ZSTD) != 0;
    /* The cache's clock error, measured as the Push arrives (the apply may
     * wait for a group commit): its changes' times are moved by it. */
    job->clock_ms = p->clock_ms;
    if (p->clock_ms)
        job->clock_skew_ms = (int64_t)p->clock_ms - (int64_t)ps_now_ms();
    if (job->clock_skew_ms > PS_CLOCK_TOLERANCE_MS || job->clock_skew_ms < -PS_CLOCK_TOLERANCE_MS)
        PS_INFO("conn", "#%llu push: the cache's clock is %+lld s off ours; its changes are re-timed",
                (unsigned long long)c->id, (long long)(job->clock_skew_ms / 1000));
    job->owner = c;
    ps_buf_init(&job->reply);
    c->busy = 1;
    c->refs++;
    ps_commit_enqueue(c->srv, job);
    return PS_OK;
}

/* Requests answered from the store by a read job that keeps the request
 * message.  Returns PS_OK when the job owns m. */
static int on_read_request(ps_conn_t *c, const ps_frame_t *f, ProtobufCMessage *m)
{
    read_job_t *j;
    /* The policy decides by role here; what each may see of the store is
     * decided by the store, which asks the same policy. */
    if (!ps_policy_may_send(c->peer.role, f->type)) {
        ps_conn_error(c, f->request_id, PS_EACCES, 0, "role %s may not send %s", c->peer.role_name,
                      ps_frame_type_name(f->type));
        return PS_EACCES;
    }
    if (f->type == PS_MSG_QUERY && ((Popsync__Query *)m)->list && !ps_policy_may(c->peer.role, PS_ACT_QUERY_LIST)) {
        ps_conn_error(c, f->request_id, PS_EACCES, 0, "role %s may not list records, only count them",
                      c->peer.role_name);
        return PS_EACCES;
    }
    if (f->type == PS_MSG_FETCH_REQUEST && ((Popsync__FetchRequest *)m)->n_ids > 10000) {
        ps_conn_error(c, f->request_id, PS_ETOOBIG, 0, "FetchRequest names more than 10000 records");
        return PS_ETOOBIG;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        ps_conn_error(c, f->request_id, PS_ENOMEM, 0, "out of memory");
        return PS_ENOMEM;
    }
    j->type = f->type;
    j->request_id = f->request_id;
    j->peer = c->peer;
    memcpy(j->node, c->node, PS_ID_LEN); /* conflicts: the peer's own edits */
    j->msg = m;
    return queue_read(c, j);
}

static int on_orgunits(ps_conn_t *c, const ps_frame_t *f)
{
    Popsync__OrgUnits o = POPSYNC__ORG_UNITS__INIT;
    ps_buf_t b;
    int rc;
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

static int on_ping(ps_conn_t *c, const ps_frame_t *f, Popsync__Ping *p)
{
    Popsync__Ping pong = POPSYNC__PING__INIT;
    ps_buf_t b;
    int rc;
    pong.nonce = p->nonce;
    ps_buf_init(&b);
    rc = ps_msg_pack_frame(&b, PS_MSG_PONG, f->request_id, &pong.base);
    if (rc == PS_OK)
        rc = ps_conn_send(c, &b);
    ps_buf_free(&b);
    return rc;
}

int ps_sync_dispatch(ps_conn_t *c, const ps_frame_t *f)
{
    ProtobufCMessage *m = NULL;
    int rc;

    if (f->reserved != 0 || (f->flags & ~PS_FRAME_FLAGS_KNOWN)) {
        ps_conn_error(c, f->request_id, PS_EPROTO, 0, "unknown frame flags 0x%02x or reserved bits set", f->flags);
        return PS_EPROTO;
    }
    if ((f->flags & PS_FRAME_FLAG_ZSTD) && !(c->features & PS_FEATURE_ZSTD)) {
        ps_conn_error(c, f->request_id, PS_EPROTO, 0, "compressed frame but compression was not agreed in Hello");
        return PS_EPROTO;
    }
    switch (f->type) {
    case PS_MSG_HELLO:
    case PS_MSG_PUSH:
    case PS_MSG_PULL:
    case PS_MSG_PING:
    case PS_MSG_ORGUNITS_REQUEST:
    case PS_MSG_CONFLICT_LIST:
    case PS_MSG_VERIFY_REQUEST:
    case PS_MSG_VERIFY_BUCKET_REQUEST:
    case PS_MSG_FETCH_REQUEST:
    case PS_MSG_QUERY:
    case PS_MSG_REPORT_REQUEST:
    case PS_MSG_CLOSE_REQUEST:
    case PS_MSG_NODE_STATUS_REQUEST:
        break;
    default:
        ps_conn_error(c, f->request_id, PS_EPROTO, 0, "unknown or unexpected message type %u", f->type);
        return PS_EPROTO;
    }
    if (c->state == PS_CONN_HELLO && f->type != PS_MSG_HELLO) {
        ps_conn_error(c, f->request_id, PS_EPROTO, 1, "%s before Hello", ps_frame_type_name(f->type));
        return PS_EPROTO;
    }
    {
        const uint8_t *body;
        size_t len;
        rc = ps_frame_plain_body(f->body, f->body_len, (f->flags & PS_FRAME_FLAG_ZSTD) != 0, c->srv->opts.max_frame,
                                 &c->zin, &body, &len);
        if (rc == PS_OK)
            rc = ps_msg_unpack(f->type, body, len, &m);
    }
    if (rc) {
        ps_conn_error(c, f->request_id, rc, 1, "malformed %s body (%s)", ps_frame_type_name(f->type),
                      ps_strerror(rc));
        return rc;
    }
    switch (f->type) {
    case PS_MSG_HELLO: rc = on_hello(c, f, (Popsync__Hello *)m); break;
    case PS_MSG_PULL: rc = on_pull(c, f, (Popsync__Pull *)m); break;
    case PS_MSG_PING: rc = on_ping(c, f, (Popsync__Ping *)m); break;
    case PS_MSG_ORGUNITS_REQUEST: rc = on_orgunits(c, f); break;
    case PS_MSG_NODE_STATUS_REQUEST: rc = ps_nodes_status_request(c, f); break; /* nodes.c */
    case PS_MSG_PUSH:
        rc = on_push(c, f, (Popsync__Push *)m);
        if (rc == PS_OK)
            return PS_OK; /* the job owns the message now */
        break;
    case PS_MSG_CONFLICT_LIST:
    case PS_MSG_VERIFY_REQUEST:
    case PS_MSG_VERIFY_BUCKET_REQUEST:
    case PS_MSG_FETCH_REQUEST:
    case PS_MSG_QUERY:
    case PS_MSG_REPORT_REQUEST:
    case PS_MSG_CLOSE_REQUEST:
        rc = on_read_request(c, f, m);
        if (rc == PS_OK)
            return PS_OK; /* the job owns the message now */
        break;
    default: break;
    }
    ps_msg_free(m);
    return rc;
}
