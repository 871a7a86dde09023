/* session.c - one connection of the client to popsyncd, and its requests.
 *
 * The core (ps_session_new .. ps_session_input) speaks frames to any
 * transport; ps_session_connect puts it on a TLS stream (common/stream.c).
 * A request waits in the table from the moment it is made until its answer
 * is complete or the session fails; requests made before the Welcome wait
 * there unsent and go out in order once the session is ready.
 */
#include "session.h"
#include "crypto.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "msgtab.h"
#include "stream.h"
#include "testhooks.h"
#include "trace.h"
#include "vec.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pull batches are bounded by the server; allow generous frames. */
#define MAX_BODY (64u << 20)

typedef enum {
    SS_CONNECTING = 0, /* transport not up yet */
    SS_HELLO,          /* Hello sent, no Welcome yet */
    SS_WELCOMED,       /* on_welcome asked to wait (PS_SESSION_MORE) */
    SS_READY,          /* requests go out as they are made */
    SS_DONE,           /* closed by its owner */
    SS_FAILED
} sstate_t;

typedef struct pending {
    uint32_t id;
    uint8_t type;     /* the request; its reply is the message table's */
    int sent;
    int busy;         /* its callback is running: a failure does not call it again */
    ps_buf_t frame;   /* the packed frame while unsent */
    ps_reply_fn cb;
    void *arg;
} pending_t;

typedef struct waiter {
    ps_ready_fn fn;
    void *arg;
} waiter_t;

struct ps_session {
    ps_session_cfg_t cfg;
    char server[256];
    sstate_t state;
    int rc;
    char err[512];
    const ps_session_io_t *io;
    void *io_arg;
    uint32_t next_id;
    pending_t *req;             /* the table of outstanding requests, in order made */
    size_t n, cap;
    waiter_t *waiters;          /* ps_session_when_ready */
    size_t nwait;
    Popsync__Welcome *welcome;
    int zstd;                   /* compression agreed in Welcome */
    ps_buf_t zin;               /* a decompressed body */
    ps_msg_arena_t *arena;      /* the latest PullBatch, decoded (ps_msg_unpack_reuse) */
    size_t in_after;            /* bytes received after the frame being handled */
    const uint8_t *body;        /* the plain body of the answer being delivered (ps_session_body) */
    size_t body_len;
    uint64_t frames, cut_after; /* test hook POPSYNC_TEST_CUT_AFTER_FRAMES */
    /* TLS transport (ps_session_connect) */
    uv_loop_t own_loop;
    uv_loop_t *loop;            /* NULL: not a TLS session */
    int own;                    /* own_loop is in use */
    ps_stream_t stream;
    ps_tls_conf_t *conf;
    ps_session_tls_t tls;
    int stream_open;            /* until the stream's on_close */
    int free_on_close;
};

/* --- the table --- */

static pending_t *find(ps_session_t *s, uint32_t id, int sent_only)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->req[i].id == id && (!sent_only || s->req[i].sent))
            return &s->req[i];
    return NULL;
}

static void remove_req(ps_session_t *s, uint32_t id)
{
    pending_t *p = find(s, id, 0);
    size_t i;
    if (!p)
        return;
    i = (size_t)(p - s->req);
    ps_buf_free(&p->frame);
    memmove(&s->req[i], &s->req[i + 1], (s->n - i - 1) * sizeof(*s->req));
    s->n--;
}

/* Every outstanding request fails once: each leaves the table before its
 * callback runs, so a callback that makes requests cannot be called again.
 * A request whose callback is running (it failed the session) only leaves. */
static void fail_all(ps_session_t *s, int rc)
{
    while (s->n) {
        pending_t p = s->req[0];
        memmove(&s->req[0], &s->req[1], (s->n - 1) * sizeof(*s->req));
        s->n--;
        ps_buf_free(&p.frame);
        if (!p.busy)
            p.cb(s, rc, NULL, p.arg);
    }
    while (s->nwait) {
        waiter_t w = s->waiters[--s->nwait];
        w.fn(s, rc, w.arg);
    }
}

void ps_session_fail(ps_session_t *s, int rc, const char *fmt, ...)
{
    va_list ap;
    if (s->state == SS_FAILED || s->state == SS_DONE)
        return;
    s->rc = rc ? rc : PS_EIO;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    s->state = SS_FAILED;
    s->io->close(s->io_arg);
    fail_all(s, s->rc);
}

static int send_frame(ps_session_t *s, pending_t *p)
{
    int rc = PS_OK;
    if (s->zstd)
        rc = ps_frame_compress(&p->frame, 0);
    if (rc == PS_OK)
        rc = s->io->write(s->io_arg, ps_buf_head(&p->frame), ps_buf_size(&p->frame));
    ps_buf_free(&p->frame);
    p->sent = 1;
    if (rc)
        ps_session_fail(s, PS_EIO, "cannot send %s", ps_frame_type_name(p->type));
    return rc;
}

int64_t ps_session_request(ps_session_t *s, uint8_t type, const ProtobufCMessage *m, unsigned flags,
                           ps_reply_fn cb, void *arg)
{
    pending_t *p;
    uint32_t id;
    if (s->state == SS_FAILED || s->state == SS_DONE)
        return s->rc ? s->rc : PS_ECLOSED;
    if (PS_VEC_ROOM(s->req, s->n, s->cap, 8))
        return PS_ENOMEM;
    id = ++s->next_id;
    p = &s->req[s->n];
    memset(p, 0, sizeof(*p));
    ps_buf_init(&p->frame);
    if (ps_msg_pack_frame(&p->frame, type, id, m) != PS_OK) {
        ps_buf_free(&p->frame);
        return PS_ENOMEM;
    }
    p->id = id;
    p->type = type;
    p->cb = cb;
    p->arg = arg;
    s->n++;
    if (s->state == SS_READY || ((flags & PS_REQ_EARLY) && s->state != SS_CONNECTING) || type == PS_MSG_HELLO) {
        p->busy = 1; /* a failure to send is this call's error, not a callback */
        if (send_frame(s, p))
            return s->rc;
        p->busy = 0;
    }
    return id;
}

size_t ps_session_outstanding(const ps_session_t *s)
{
    return s->n;
}

/* --- ps_session_call: one frame kept for the caller --- */

static int keep_reply(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    ProtobufCMessage **out = arg;
    (void)s;
    if (status == PS_OK) {
        *out = *m;
        *m = NULL;
    }
    return PS_OK;
}

int ps_session_call(ps_session_t *s, uint8_t type, const ProtobufCMessage *m, ProtobufCMessage **reply)
{
    int64_t id;
    *reply = NULL;
    id = ps_session_request(s, type, m, 0, keep_reply, reply);
    return id < 0 ? (int)id : PS_OK;
}

/* --- ready --- */

void ps_session_ready(ps_session_t *s)
{
    if (s->state != SS_HELLO && s->state != SS_WELCOMED)
        return;
    s->state = SS_READY;
    for (size_t i = 0; i < s->n && s->state == SS_READY; i++)
        if (!s->req[i].sent && send_frame(s, &s->req[i]))
            return;
    while (s->nwait && s->state == SS_READY) {
        waiter_t w = s->waiters[0];
        memmove(&s->waiters[0], &s->waiters[1], (s->nwait - 1) * sizeof(*s->waiters));
        s->nwait--;
        w.fn(s, PS_OK, w.arg);
    }
}

int ps_session_when_ready(ps_session_t *s, ps_ready_fn fn, void *arg)
{
    waiter_t *nw;
    if (s->state == SS_FAILED || s->state == SS_DONE)
        return s->rc ? s->rc : PS_ECLOSED;
    if (s->state == SS_READY) {
        fn(s, PS_OK, arg);
        return PS_OK;
    }
    nw = realloc(s->waiters, (s->nwait + 1) * sizeof(*nw));
    if (!nw)
        return PS_ENOMEM;
    s->waiters = nw;
    s->waiters[s->nwait].fn = fn;
    s->waiters[s->nwait].arg = arg;
    s->nwait++;
    return PS_OK;
}

static int on_welcome(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    Popsync__Welcome *w;
    int rc = PS_OK;
    (void)arg;
    if (status)
        return status;
    w = (Popsync__Welcome *)*m;
    *m = NULL;
    PS_TRACE("client", "Welcome in");
    s->welcome = w;
    s->zstd = (w->features & PS_FEATURE_ZSTD) != 0;
    if (w->protocol_version != PS_PROTOCOL_VERSION) {
        ps_session_fail(s, PS_EPROTO, "server speaks protocol %u, we speak %u", w->protocol_version,
                        PS_PROTOCOL_VERSION);
        return PS_EPROTO;
    }
    if (s->cfg.on_welcome)
        rc = s->cfg.on_welcome(s, w, s->cfg.arg);
    if (rc == PS_SESSION_MORE) {
        if (s->state == SS_HELLO)
            s->state = SS_WELCOMED;
        return PS_OK;
    }
    if (rc == PS_OK)
        ps_session_ready(s);
    return rc;
}

/* POPSYNC_NO_COMPRESSION=1: the test hook that makes a Hello offer no
 * compression (testhooks.h: test builds only). */
static int no_compression_hook(void)
{
    uint64_t v = 0;
    return ps_test_hook_u64("POPSYNC_NO_COMPRESSION", &v) == 1 && v == 1;
}

void ps_session_start(ps_session_t *s)
{
    Popsync__Hello h = POPSYNC__HELLO__INIT;
    int64_t id;
    if (s->state != SS_CONNECTING)
        return;
    s->state = SS_HELLO;
    h.protocol_version = PS_PROTOCOL_VERSION;
    h.node.data = s->cfg.node;
    h.node.len = sizeof(s->cfg.node);
    h.cursor = s->cfg.cursor;
    h.software = "popsync 0.1.0";
    if (!s->cfg.no_compression && !no_compression_hook())
        h.features = PS_FEATURE_ZSTD;
    h.window = s->cfg.window ? s->cfg.window : PS_SESSION_WINDOW;
    h.window_bytes = s->cfg.window_bytes ? s->cfg.window_bytes : PS_SESSION_WINDOW_BYTES;
    /* Hello goes first: requests made before it wait behind it. */
    id = ps_session_request(s, PS_MSG_HELLO, &h.base, PS_REQ_EARLY, on_welcome, NULL);
    if (id > 0 && s->n > 1) {
        pending_t hello = s->req[s->n - 1];
        memmove(&s->req[1], &s->req[0], (s->n - 1) * sizeof(*s->req));
        s->req[0] = hello;
    }
    if (id < 0 && s->state != SS_FAILED)
        ps_session_fail(s, (int)id, "cannot send Hello");
}

/* --- frames from the server --- */

/* The answer to a sent request: its callback, then out of the table when
 * the answer is complete. */
static void deliver(ps_session_t *s, pending_t *p, ProtobufCMessage **m)
{
    uint32_t id = p->id;
    int rc;
    p->busy = 1;
    rc = p->cb(s, PS_OK, m, p->arg);
    if (s->state == SS_FAILED || s->state == SS_DONE)
        return; /* fail_all already took it */
    if (rc == PS_SESSION_MORE) {
        if ((p = find(s, id, 1)))
            p->busy = 0;
        return;
    }
    remove_req(s, id);
    if (rc < 0)
        ps_session_fail(s, rc, "%s", ps_strerror(rc));
}

static void handle_frame(ps_session_t *s, const ps_frame_t *f)
{
    const ps_msg_info_t *mi = ps_msg_info(f->type);
    ProtobufCMessage *m = NULL;
    const uint8_t *body;
    size_t len;
    pending_t *p;
    int rc, in_arena;
    if ((f->flags & ~PS_FRAME_FLAG_ZSTD) || f->reserved != 0 || ((f->flags & PS_FRAME_FLAG_ZSTD) && !s->zstd)) {
        ps_session_fail(s, PS_EPROTO, "server sent a frame with unknown flags");
        return;
    }
    if (!mi || mi->dir != PS_MSG_DIR_S2C) {
        ps_session_fail(s, PS_EPROTO, "unexpected %s from server", ps_frame_type_name(f->type));
        return;
    }
    rc = ps_frame_plain_body(f->body, f->body_len, (f->flags & PS_FRAME_FLAG_ZSTD) != 0, MAX_BODY, &s->zin, &body,
                             &len);
    p = find(s, f->request_id, 1);
    /* A PullBatch (a thousand records, ~20 pieces each) goes into the
     * session's arena, unless the waiter keeps the message past its call
     * (keep_reply). */
    in_arena = f->type == PS_MSG_PULL_BATCH && p && p->cb != keep_reply;
    if (rc == PS_OK)
        rc = in_arena ? ps_msg_unpack_reuse(f->type, body, len, &s->arena, &m) : ps_msg_unpack(f->type, body, len, &m);
    if (rc) {
        ps_session_fail(s, PS_EPROTO, "malformed %s from server", ps_frame_type_name(f->type));
        return;
    }
    if (f->type == PS_MSG_ERROR)
        ps_session_fail(s, PS_EREJECTED, "server: %s", ((Popsync__Error *)m)->message);
    else if (f->type == PS_MSG_PONG)
        ; /* keep-alive answer: nothing to do */
    else if (!p)
        ps_session_fail(s, PS_EPROTO, "server answered request %u, which is not outstanding", f->request_id);
    else if (f->type != ps_msg_info(p->type)->reply)
        ps_session_fail(s, PS_EPROTO, "unexpected %s from server (waiting for the answer to %s)",
                        ps_frame_type_name(f->type), ps_frame_type_name(p->type));
    else {
        s->body = body;
        s->body_len = len;
        deliver(s, p, &m);
        s->body = NULL;
        s->body_len = 0;
    }
    if (!in_arena)
        ps_msg_free(m);
}

size_t ps_session_input_waiting(const ps_session_t *s)
{
    return s->in_after;
}

int ps_session_body(const ps_session_t *s, const uint8_t **body, size_t *len)
{
    *body = s->body;
    *len = s->body_len;
    return s->body ? PS_OK : PS_ENOTFOUND;
}

void ps_session_input(ps_session_t *s, ps_buf_t *in)
{
    while (s->state != SS_FAILED && s->state != SS_DONE) {
        ps_frame_t f;
        size_t used;
        int rc = ps_frame_decode(ps_buf_head(in), ps_buf_size(in), MAX_BODY, &f, &used);
        if (rc == PS_FRAME_NEED_MORE)
            break;
        if (rc) {
            ps_session_fail(s, PS_EPROTO, "bad frame from server");
            break;
        }
        if (s->cut_after && ++s->frames > s->cut_after) {
            ps_session_fail(s, PS_ECLOSED, "connection cut by the test hook");
            break;
        }
        s->in_after = ps_buf_size(in) - used;
        handle_frame(s, &f);
        s->in_after = 0;
        if (s->state == SS_FAILED)
            break;
        ps_buf_consume(in, used);
        if (s->io->touch)
            s->io->touch(s->io_arg);
    }
}

void ps_session_io_failed(ps_session_t *s, int err, const char *text)
{
    ps_session_fail(s, err, "%s", text);
}

/* --- the session's object --- */

int ps_session_new(ps_session_t **out, const ps_session_cfg_t *cfg, const ps_session_io_t *io, void *io_arg)
{
    ps_session_t *s = calloc(1, sizeof(*s));
    uint64_t cut = 0, win = 0;
    if (!s)
        return PS_ENOMEM;
    s->cfg = *cfg;
    snprintf(s->server, sizeof(s->server), "%s", cfg->server ? cfg->server : "");
    s->cfg.server = s->server;
    s->io = io;
    s->io_arg = io_arg;
    ps_buf_init(&s->zin);
    /* Test hook (test builds only): cut the connection after N frames, to
     * prove a sync can be interrupted anywhere and simply run again. */
    if (ps_test_hook_u64("POPSYNC_TEST_CUT_AFTER_FRAMES", &cut) == 1)
        s->cut_after = cut;
    /* Test hook (test builds only): the window to ask for; 1 is how a
     * client before pipelining talks. */
    if (!s->cfg.window && ps_test_hook_u64("POPSYNC_TEST_WINDOW", &win) == 1 && win >= 1 && win <= UINT32_MAX)
        s->cfg.window = (uint32_t)win;
    *out = s;
    return PS_OK;
}

static void session_free(ps_session_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        ps_buf_free(&s->req[i].frame);
    free(s->req);
    free(s->waiters);
    if (s->welcome)
        ps_msg_free(&s->welcome->base);
    ps_buf_free(&s->zin);
    ps_msg_arena_free(s->arena);
    if (s->conf)
        ps_tls_conf_free(s->conf);
    free(s);
}

void ps_session_test_cut(ps_session_t *s, uint64_t frames)
{
    s->cut_after = frames;
}

const Popsync__Welcome *ps_session_welcome(const ps_session_t *s)
{
    return s->welcome;
}

uint32_t ps_session_window(const ps_session_t *s, uint32_t *bytes)
{
    uint32_t want = s->cfg.window ? s->cfg.window : PS_SESSION_WINDOW;
    uint32_t want_bytes = s->cfg.window_bytes ? s->cfg.window_bytes : PS_SESSION_WINDOW_BYTES;
    uint32_t w = s->welcome && s->welcome->window ? s->welcome->window : 1;
    uint32_t wb = s->welcome && s->welcome->window_bytes ? s->welcome->window_bytes : want_bytes;
    if (bytes)
        *bytes = wb < want_bytes ? wb : want_bytes;
    return w < want ? w : want;
}

int ps_session_status(const ps_session_t *s)
{
    return s->rc;
}

const char *ps_session_error(const ps_session_t *s)
{
    return s->err;
}

const char *ps_session_server(const ps_session_t *s)
{
    return s->server;
}

/* Run until the work is done (ready, nothing outstanding) or failed. */
int ps_session_run(ps_session_t *s)
{
    while (s->state != SS_FAILED && s->state != SS_DONE && (s->state != SS_READY || s->n || s->nwait)) {
        if (!s->loop || !s->stream_open)
            break;
        uv_run(s->loop, UV_RUN_ONCE);
    }
    if (s->state != SS_FAILED && (s->state != SS_READY || s->n))
        ps_session_fail(s, PS_ECLOSED, "connection to %s closed before the sync completed", s->server);
    return s->rc;
}

void ps_session_close(ps_session_t *s, uint64_t *bytes_in, uint64_t *bytes_out)
{
    int ok = s->state != SS_FAILED;
    if (ok) {
        s->state = SS_DONE;
        s->io->shutdown(s->io_arg);
        fail_all(s, PS_ECLOSED); /* nobody waits on a closed session */
    }
    if (!s->loop) {
        if (bytes_in)
            *bytes_in = 0;
        if (bytes_out)
            *bytes_out = 0;
        session_free(s);
        return;
    }
    if (s->own) {
        uv_run(s->loop, UV_RUN_DEFAULT); /* until the stream is closed */
        ps_msg_thread_cleanup();
    }
    if (bytes_in)
        *bytes_in = s->stream.bytes_in;
    if (bytes_out)
        *bytes_out = s->stream.bytes_out;
    if (s->own) {
        uv_loop_close(&s->own_loop);
        session_free(s);
    } else if (s->stream_open) {
        s->free_on_close = 1;
    } else {
        session_free(s);
    }
}

/* --- TLS transport: common/stream.c --- */

static int tls_write(void *io, const uint8_t *p, size_t len)
{
    ps_session_t *s = io;
    return ps_stream_write(&s->stream, p, len);
}

static void tls_shutdown(void *io)
{
    ps_session_t *s = io;
    ps_stream_shutdown(&s->stream);
}

static void tls_close(void *io)
{
    ps_session_t *s = io;
    ps_stream_close(&s->stream);
}

static void tls_touch(void *io)
{
    ps_session_t *s = io;
    ps_stream_touch(&s->stream);
}

static const ps_session_io_t tls_io = {tls_write, tls_shutdown, tls_close, tls_touch};

static void st_handshake(ps_stream_t *st, int status)
{
    ps_session_t *s = st->data;
    PS_TRACE("client", "TLS established (%d)", status);
    if (status) {
        ps_session_fail(s, PS_ETLS, "TLS handshake with %s failed: %s", s->server, ps_tls_last_error(st->tls));
        return;
    }
    /* Hello first: the ticket's durable write (an fsync) then overlaps the
     * server's answer instead of delaying the question. */
    ps_session_start(s);
    if (s->tls.save && s->state != SS_FAILED) {
        ps_buf_t sess;
        ps_buf_init(&sess);
        if (ps_tls_session_save(st->tls, &sess) == PS_OK && ps_buf_size(&sess))
            s->tls.save(ps_buf_head(&sess), ps_buf_size(&sess), s->tls.save_arg);
        if (ps_buf_size(&sess))
            ps_zeroize(ps_buf_head(&sess), ps_buf_size(&sess));
        ps_buf_free(&sess);
        PS_TRACE("client", "TLS session saved");
    }
}

static void st_read(ps_stream_t *st)
{
    ps_session_input(st->data, &st->plain_in);
}

static void st_error(ps_stream_t *st, int err)
{
    ps_session_t *s = st->data;
    if (s->state == SS_DONE || s->state == SS_FAILED) {
        ps_stream_close(st);
        return;
    }
    if (err == PS_ETIMEDOUT)
        ps_session_fail(s, err, "server %s did not answer in time", s->server);
    else if (err == PS_ETLS)
        ps_session_fail(s, err, "TLS with %s failed: %s", s->server, ps_tls_last_error(st->tls));
    else if (s->state == SS_CONNECTING)
        ps_session_fail(s, err, "cannot connect to %s", s->server);
    else
        ps_session_fail(s, err, "connection to %s lost: %s", s->server, ps_strerror(err));
}

static void st_close(ps_stream_t *st)
{
    ps_session_t *s = st->data;
    s->stream_open = 0;
    if (s->free_on_close)
        session_free(s);
}

static const ps_stream_cbs_t stream_cbs = {st_handshake, st_read, st_error, NULL, st_close};

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

/* A TLS engine for cfg's server, resuming the saved session when the
 * server still honours its ticket (a reconnecting device skips the full
 * handshake). */
static int tls_engine(ps_session_t *s, const ps_session_tls_t *tls, ps_tls_t **out, char *err, size_t errlen)
{
    int rc = ps_tls_conf_new(&s->conf, PS_TLS_CLIENT, tls->ca, tls->cert, tls->key, NULL, err, errlen);
    if (rc)
        return rc;
    if ((rc = ps_tls_new(out, s->conf, tls->server_name))) {
        snprintf(err, errlen, "TLS setup failed: %s", ps_strerror(rc));
        return rc;
    }
    if (tls->resume && tls->resume_len)
        ps_tls_session_resume(*out, tls->resume, tls->resume_len);
    return PS_OK;
}

int ps_session_connect(ps_session_t **out, uv_loop_t *loop, const ps_session_cfg_t *cfg,
                       const ps_session_tls_t *tls, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    ps_session_t *s = NULL;
    ps_tls_t *engine = NULL;
    uint64_t t = cfg->timeout_ms ? cfg->timeout_ms : 60000;
    int rc;

    if ((rc = resolve(cfg->server, &ss, err, errlen)))
        return rc;
    if ((rc = ps_session_new(&s, cfg, &tls_io, NULL))) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    s->io_arg = s;
    s->tls = *tls;
    s->tls.resume = NULL;
    if ((rc = tls_engine(s, tls, &engine, err, errlen))) {
        session_free(s);
        return rc;
    }
    if (!loop) {
        uv_loop_init(&s->own_loop);
        loop = &s->own_loop;
        s->own = 1;
    }
    s->loop = loop;
    ps_stream_init(&s->stream, loop, engine, &stream_cbs, s);
    s->stream_open = 1;
    ps_stream_set_timeouts(&s->stream, t, t);
    if (ps_stream_connect(&s->stream, (struct sockaddr *)&ss) != PS_OK)
        ps_session_fail(s, PS_EIO, "cannot connect to %s", s->server);
    *out = s;
    return PS_OK;
}
