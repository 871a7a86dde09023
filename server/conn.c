/* conn.c - one client connection: state machine, frame parsing, limits.
 *
 * States: HANDSHAKE -> HELLO -> READY -> CLOSING.  Frames are parsed from
 * the stream's plaintext buffer one at a time and taken in while the
 * connection's window has room (sync.c runs them one at a time, in order);
 * once it is full the rest wait in the buffer, and reading stops once the
 * buffer or the queued output passes its limit, so a client that floods us
 * or never reads its replies costs a bounded amount of memory.
 */
#include "server.h"
#include "err.h"
#include "log.h"
#include "memtrim.h"
#include "trace.h"
#include "msg.h"

#include "wire.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void conn_parse(ps_conn_t *c);

/* Connections over max_conns that still get an Error frame after their
 * handshake; each costs a handshake and a slot for at most the handshake
 * timeout. */
#define PS_REFUSE_TOLD 64u

/* --- budget of unfinished frames (issue 15) ----------------------------------
 *
 * A connection's input buffer holds the frame being received (and, while a
 * request is served, the next ones).  Its capacity is charged to the whole
 * server and to the peer's certificate; past either budget the connection
 * holding the most is closed with an Error.  A frame in progress must also
 * arrive at min_frame_rate after frame_grace_ms (slowloris). */

struct ps_cert_acct {
    char serial[sizeof(((ps_peer_t *)0)->serial_hex)];
    size_t partial;
    uint32_t refs;
    ps_cert_acct_t *next;
};

static ps_cert_acct_t *cert_acct_get(ps_server_t *srv, const char *serial)
{
    ps_cert_acct_t *a;
    for (a = srv->certs; a; a = a->next)
        if (strcmp(a->serial, serial) == 0)
            break;
    if (!a) {
        a = calloc(1, sizeof(*a));
        if (!a)
            return NULL;
        snprintf(a->serial, sizeof(a->serial), "%s", serial);
        a->next = srv->certs;
        srv->certs = a;
    }
    a->refs++;
    return a;
}

static void cert_acct_put(ps_server_t *srv, ps_cert_acct_t *a)
{
    if (!a || --a->refs > 0)
        return;
    for (ps_cert_acct_t **p = &srv->certs; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    free(a);
}

/* Charges what c holds now: the input buffer's capacity while it holds
 * bytes.  An empty buffer that grew large is given back. */
static void conn_charge(ps_conn_t *c)
{
    ps_buf_t *in = &c->stream.plain_in;
    size_t now;

    if (ps_buf_size(in) == 0 && in->cap > 65536) {
        ps_buf_free(in);
        (void)ps_buf_reserve(in, 16384); /* as drain_tls would: never a NULL head */
    }
    now = ps_buf_size(in) ? in->cap : 0;
    c->srv->partial_total = c->srv->partial_total - c->partial + now;
    if (c->cert)
        c->cert->partial = c->cert->partial - c->partial + now;
    c->partial = now;
}

/* Stops charging c: it is closing and reads no more. */
static void conn_release(ps_conn_t *c)
{
    ps_buf_reset(&c->stream.plain_in);
    conn_charge(c);
    c->frame_start_ms = 0;
}

/* The open connection (of cert, or any when NULL) holding the most. */
static ps_conn_t *largest(ps_server_t *srv, const ps_cert_acct_t *cert)
{
    ps_conn_t *best = NULL;
    for (ps_conn_t *o = srv->conns; o; o = o->next) {
        if (o->state == PS_CONN_CLOSING || (cert && o->cert != cert))
            continue;
        if (!best || o->partial > best->partial)
            best = o;
    }
    return best;
}

/* Closes the largest holders until both budgets hold again; at most every
 * connection once, so the loop is bounded. */
static void enforce_budgets(ps_server_t *srv, ps_cert_acct_t *cert)
{
    for (uint32_t n = 0; n <= srv->nconns; n++) {
        int per_cert = cert && srv->opts.partial_budget_per_cert && cert->partial > srv->opts.partial_budget_per_cert;
        int total = srv->opts.partial_budget && srv->partial_total > srv->opts.partial_budget;
        ps_conn_t *v;
        if (!per_cert && !total)
            return;
        v = largest(srv, per_cert ? cert : NULL);
        if (!v || v->partial == 0)
            return;
        srv->stats.budget_closes++;
        ps_conn_error(v, 0, PS_ENOMEM, 1,
                      "unfinished frames over the %s budget of %zu MiB; this connection held the most (%zu KiB): "
                      "send smaller requests or retry later",
                      per_cert ? "certificate's" : "server's",
                      (per_cert ? srv->opts.partial_budget_per_cert : srv->opts.partial_budget) >> 20,
                      v->partial >> 10);
        conn_release(v);
    }
}

/* Once a second: frames in progress that arrive too slowly.  Paused
 * connections and those with a full window are not reading, so their
 * clock restarts. */
static void on_sweep(uv_timer_t *t)
{
    ps_server_t *srv = t->data;
    uint64_t now = uv_now(srv->loop);
    unsigned quiet = 0;

    for (ps_conn_t *c = srv->conns; c; c = c->next) {
        size_t got;
        uint64_t ms;
        /* A connection with nothing in progress gives its buffers back
         * after a second without traffic (43 -> ~12 KB per idle client). */
        if ((c->state == PS_CONN_HELLO || c->state == PS_CONN_READY) && !c->busy && !c->frame_start_ms) {
            int trim = ps_stream_trim_quiet(&c->stream);
            /* ... and the last compressed request's plain body (a Push's
             * is MBs), dead once it was unpacked. */
            if (trim != PS_STREAM_MOVING)
                ps_buf_free(&c->zin);
            quiet += trim == PS_STREAM_TRIMMED_NOW;
        }
        if ((c->state != PS_CONN_HELLO && c->state != PS_CONN_READY) || !c->frame_start_ms ||
            !srv->opts.min_frame_rate)
            continue;
        if (ps_sync_full(c) || ps_stream_paused(&c->stream)) {
            c->frame_start_ms = now;
            c->frame_base = ps_buf_size(&c->stream.plain_in);
            continue;
        }
        ms = now - c->frame_start_ms;
        if (ms < srv->opts.frame_grace_ms)
            continue;
        got = ps_buf_size(&c->stream.plain_in);
        got = got > c->frame_base ? got - c->frame_base : 0;
        if ((uint64_t)got * 1000 / ms >= srv->opts.min_frame_rate)
            continue;
        srv->stats.slow_closes++;
        ps_conn_error(c, 0, PS_ETIMEDOUT, 1,
                      "frame arriving at %llu bytes/s for %llu s, below the minimum of %u bytes/s",
                      (unsigned long long)((uint64_t)got * 1000 / ms), (unsigned long long)(ms / 1000),
                      srv->opts.min_frame_rate);
        conn_release(c);
    }
    /* What they gave back, and what their handshakes left between the
     * blocks that stay, is resident until the heap is trimmed (memtrim.c). */
    if (quiet)
        ps_memtrim_soon();
}

void ps_conn_sweep_start(ps_server_t *srv)
{
    uv_timer_init(srv->loop, &srv->sweep);
    srv->sweep.data = srv;
    /* Always: it also trims idle connections (with no minimum rate the
     * slow-frame check below never closes anything). */
    uv_timer_start(&srv->sweep, on_sweep, 1000, 1000);
    uv_unref((uv_handle_t *)&srv->sweep);
}

void ps_conn_sweep_stop(ps_server_t *srv)
{
    if (!uv_is_closing((uv_handle_t *)&srv->sweep))
        uv_close((uv_handle_t *)&srv->sweep, NULL);
}

static void conn_unref(ps_conn_t *c)
{
    if (--c->refs > 0)
        return;
    ps_buf_free(&c->zin);
    free(c->own);
    free(c);
}

static void on_close(ps_stream_t *s)
{
    ps_conn_t *c = s->data;
    ps_server_t *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    srv->partial_total -= c->partial;
    if (c->cert)
        c->cert->partial -= c->partial;
    c->partial = 0;
    cert_acct_put(srv, c->cert);
    c->cert = NULL;
    PS_DEBUG("conn", "#%llu closed", (unsigned long long)c->id);
    conn_unref(c);
}

static void conn_close(ps_conn_t *c)
{
    c->state = PS_CONN_CLOSING;
    ps_stream_close(&c->stream);
}

/* How many open, authenticated connections carry the certificate serial of
 * c (c included).  Bounded by the connection list, itself bounded by
 * --max-conns. */
static uint32_t conns_of_cert(const ps_conn_t *c)
{
    uint32_t n = 0;
    for (const ps_conn_t *o = c->srv->conns; o; o = o->next) {
        if (o->state != PS_CONN_HELLO && o->state != PS_CONN_READY)
            continue;
        if (strcmp(o->peer.serial_hex, c->peer.serial_hex) == 0)
            n++;
    }
    return n;
}

static void on_handshake(ps_stream_t *s, int status)
{
    ps_conn_t *c = s->data;
    if (status) {
        c->srv->stats.handshake_failures++;
        PS_WARN("conn", "#%llu handshake refused: %s", (unsigned long long)c->id,
                ps_tls_last_error(s->tls));
        return; /* on_error follows and closes */
    }
    c->srv->stats.handshakes++;
    PS_TRACE("server", "conn %llu: TLS established", (unsigned long long)c->id);
    c->peer = *ps_tls_peer(s->tls);
    c->cert = cert_acct_get(c->srv, c->peer.serial_hex);
    if (c->refuse) {
        c->state = PS_CONN_HELLO;
        ps_conn_error(c, 0, PS_ETOOBIG, 1, "server busy: %u connections open (limit %u); try again in a minute",
                      c->srv->nconns, c->srv->opts.max_conns);
        return;
    }
    c->state = PS_CONN_HELLO;
    /* The handshake deadline covers Hello too: a peer that completes TLS and
     * then says nothing must not hold a connection slot for the idle time. */
    ps_stream_set_timeouts(s, c->srv->opts.handshake_ms, c->srv->opts.handshake_ms);
    ps_stream_touch(s);
    PS_INFO("conn", "#%llu authenticated: %s role=%s orgunit=%s", (unsigned long long)c->id, c->peer.name,
            c->peer.role_name, c->peer.orgunit);
    /* One stolen or misbehaving certificate must not take every slot. */
    if (c->srv->opts.max_conns_per_cert && conns_of_cert(c) > c->srv->opts.max_conns_per_cert) {
        c->srv->stats.refused_conns++;
        ps_conn_error(c, 0, PS_ETOOBIG, 1, "too many connections for this certificate (limit %u)",
                      c->srv->opts.max_conns_per_cert);
    }
}

static void on_error(ps_stream_t *s, int err)
{
    ps_conn_t *c = s->data;
    if (err != PS_ECLOSED)
        PS_INFO("conn", "#%llu closing: %s", (unsigned long long)c->id, ps_strerror(err));
    conn_close(c);
}

static void on_read(ps_stream_t *s)
{
    conn_parse(s->data);
}

static void on_drain(ps_stream_t *s)
{
    ps_conn_t *c = s->data;
    if (c->state == PS_CONN_CLOSING)
        return;
    /* Output was the limit: take requests again. */
    if (!ps_sync_full(c))
        ps_stream_resume(&c->stream);
    conn_parse(c);
}

static const ps_stream_cbs_t conn_cbs = {on_handshake, on_read, on_error, on_drain, on_close};

void ps_conn_accept(ps_server_t *srv)
{
    ps_conn_t *c;
    ps_tls_t *tls = NULL;

    c = calloc(1, sizeof(*c));
    if (!c || ps_tls_new(&tls, srv->tls, NULL) != PS_OK) {
        free(c);
        /* Accept and drop so the kernel backlog does not fill with it. */
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t) {
            uv_tcp_init(srv->loop, t);
            if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)t) == 0)
                uv_close((uv_handle_t *)t, (uv_close_cb)free);
            else
                uv_close((uv_handle_t *)t, (uv_close_cb)free);
        }
        return;
    }
    c->srv = srv;
    c->refs = 1;
    c->id = ++srv->next_conn_id;
    ps_stream_init(&c->stream, srv->loop, tls, &conn_cbs, c);
    ps_hspool_attach(srv, &c->stream);
    ps_stream_set_timeouts(&c->stream, srv->opts.handshake_ms, srv->opts.idle_ms);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    if (ps_stream_accept(&c->stream, (uv_stream_t *)&srv->listener) != PS_OK) {
        conn_close(c);
        return;
    }
    if (srv->nconns > srv->opts.max_conns || srv->stopping) {
        srv->stats.refused_conns++;
        PS_WARN("conn", "#%llu refused: %u connections open (limit %u)", (unsigned long long)c->id,
                srv->nconns - 1, srv->opts.max_conns);
        /* A few more are let through the handshake (off the loop) to be
         * told why in an Error frame; past those the close is bare. */
        if (!srv->stopping && srv->nconns <= srv->opts.max_conns + PS_REFUSE_TOLD) {
            c->refuse = 1;
            return;
        }
        conn_close(c);
        return;
    }
    srv->stats.accepted_conns++;
}

int ps_conn_send(ps_conn_t *c, const ps_buf_t *frame)
{
    if (c->state == PS_CONN_CLOSING)
        return PS_ECLOSED;
    return ps_stream_write(&c->stream, ps_buf_head(frame), ps_buf_size(frame));
}

void ps_conn_error(ps_conn_t *c, uint32_t request_id, int code, int fatal, const char *fmt, ...)
{
    Popsync__Error e = POPSYNC__ERROR__INIT;
    char msg[512]; /* room for both identities of a refused node id */
    ps_buf_t b;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    PS_WARN("conn", "#%llu %s: %s", (unsigned long long)c->id, fatal ? "fatal error" : "error", msg);
    e.code = (uint32_t)(code < 0 ? -code : code);
    e.message = msg;
    e.fatal = fatal != 0;
    ps_buf_init(&b);
    if (ps_msg_pack_frame(&b, PS_MSG_ERROR, request_id, &e.base) == PS_OK)
        ps_conn_send(c, &b);
    ps_buf_free(&b);
    if (fatal && c->state != PS_CONN_CLOSING) {
        c->state = PS_CONN_CLOSING;
        ps_stream_pause(&c->stream);
        ps_stream_shutdown(&c->stream);
    }
}

void ps_conn_job_done(ps_conn_t *c)
{
    ps_sync_job_finished(c);
    if (c->srv->stopping && c->state != PS_CONN_CLOSING) {
        /* Shutting down: once the last reply is queued, let the client go. */
        if (!c->busy) {
            c->state = PS_CONN_CLOSING;
            ps_stream_shutdown(&c->stream);
        }
    } else if (c->state != PS_CONN_CLOSING) {
        ps_stream_touch(&c->stream);
        conn_parse(c);
    }
    conn_unref(c);
}

/* After parsing: charge what is left to the budgets and (re)start the
 * rate clock of the frame now in progress. */
static void conn_after_parse(ps_conn_t *c, int consumed)
{
    ps_buf_t *in = &c->stream.plain_in;

    if (c->state != PS_CONN_HELLO && c->state != PS_CONN_READY)
        return;
    if (ps_buf_size(in) == 0) {
        c->frame_start_ms = 0;
    } else if (!c->frame_start_ms || consumed) {
        c->frame_start_ms = uv_now(c->srv->loop);
        c->frame_base = consumed ? 0 : ps_buf_size(in);
    }
    conn_charge(c);
    enforce_budgets(c->srv, c->cert);
}

static void conn_parse(ps_conn_t *c)
{
    ps_server_t *srv = c->srv;
    ps_buf_t *in = &c->stream.plain_in;
    int consumed = 0;

    while (c->state == PS_CONN_HELLO || c->state == PS_CONN_READY) {
        ps_frame_t f;
        size_t used = 0;
        int rc;

        /* Shutting down: what is in flight finishes, nothing new starts. */
        if (ps_sync_full(c) || srv->stopping)
            break;
        /* A client that does not read its replies gets no new ones. */
        if (ps_stream_pending(&c->stream) > srv->opts.max_output) {
            ps_stream_pause(&c->stream);
            conn_after_parse(c, consumed);
            return;
        }
        rc = ps_frame_decode(ps_buf_head(in), ps_buf_size(in), srv->opts.max_frame, &f, &used);
        if (rc == PS_FRAME_NEED_MORE)
            break;
        if (rc == PS_ETOOBIG) {
            ps_conn_error(c, 0, PS_ETOOBIG, 1, "frame larger than the limit of %u bytes", srv->opts.max_frame);
            return;
        }
        if (rc) {
            ps_conn_error(c, 0, PS_EPROTO, 1, "malformed frame header");
            return;
        }
        rc = ps_sync_dispatch(c, &f);
        ps_buf_consume(in, used);
        consumed = 1;
        if (rc == PS_OK)
            ps_stream_touch(&c->stream);
    }
    conn_after_parse(c, consumed);
    if (c->state == PS_CONN_CLOSING)
        return;
    /* While the window is full, buffer at most one more frame's worth. */
    if (ps_sync_full(c) && ps_buf_size(in) > (size_t)srv->opts.max_frame + PS_FRAME_HDR)
        ps_stream_pause(&c->stream);
    else if (!ps_sync_full(c) && ps_stream_pending(&c->stream) <= srv->opts.max_output)
        ps_stream_resume(&c->stream);
}

void ps_conn_close_all(ps_server_t *srv)
{
    for (ps_conn_t *c = srv->conns; c; c = c->next) {
        if (c->state == PS_CONN_CLOSING)
            continue;
        /* Connections with requests in flight close after the last answer. */
        if (c->busy)
            continue;
        c->state = PS_CONN_CLOSING;
        ps_stream_shutdown(&c->stream);
    }
}

int ps_conn_close_revoked(ps_server_t *srv)
{
    int closed = 0;

    /* Connections still in the handshake have no verified peer yet: their
     * handshake checks the new CRL when it completes (ps_tls_handshake). */
    for (ps_conn_t *c = srv->conns; c; c = c->next) {
        if (c->state != PS_CONN_HELLO && c->state != PS_CONN_READY)
            continue;
        if (!ps_tls_conf_is_revoked(srv->tls, c->peer.serial_hex))
            continue;
        PS_WARN("conn", "#%llu certificate of %s revoked; closing", (unsigned long long)c->id, c->peer.name);
        /* Fatal: an Error frame tells the client why, then the stream shuts
         * down.  A commit in flight still finishes (it was accepted before
         * the revocation) but its reply is not sent. */
        ps_conn_error(c, 0, PS_EACCES, 1, "certificate revoked");
        closed++;
    }
    return closed;
}
