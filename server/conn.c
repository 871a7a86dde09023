/* conn.c - one client connection: state machine, frame parsing, limits.
 *
 * States: HANDSHAKE -> HELLO -> READY -> CLOSING.  Frames are parsed from
 * the stream's plaintext buffer one at a time; while a request is served off
 * the loop (busy) the rest wait in the buffer, and reading stops once the
 * buffer or the queued output passes its limit, so a client that floods us
 * or never reads its replies costs a bounded amount of memory.
 */
#include "server.h"
#include "err.h"
#include "log.h"
#include "msg.h"

#include "wire.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void conn_parse(ps_conn_t *c);

static void conn_unref(ps_conn_t *c)
{
    if (--c->refs > 0)
        return;
    ps_buf_free(&c->zin);
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
    c->peer = *ps_tls_peer(s->tls);
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
    if (!c->busy)
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
    char msg[256];
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
    c->busy = 0;
    if (c->srv->stopping && c->state != PS_CONN_CLOSING) {
        /* Shutting down: the reply is queued, now let the client go. */
        c->state = PS_CONN_CLOSING;
        ps_stream_shutdown(&c->stream);
    } else if (c->state != PS_CONN_CLOSING) {
        ps_stream_touch(&c->stream);
        conn_parse(c);
    }
    conn_unref(c);
}

static void conn_parse(ps_conn_t *c)
{
    ps_server_t *srv = c->srv;
    ps_buf_t *in = &c->stream.plain_in;

    while (c->state == PS_CONN_HELLO || c->state == PS_CONN_READY) {
        ps_frame_t f;
        size_t used = 0;
        int rc;

        if (c->busy)
            break;
        /* A client that does not read its replies gets no new ones. */
        if (ps_stream_pending(&c->stream) > srv->opts.max_output) {
            ps_stream_pause(&c->stream);
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
        if (rc == PS_OK)
            ps_stream_touch(&c->stream);
    }
    if (c->state == PS_CONN_CLOSING)
        return;
    /* While a request is being served, buffer at most one more frame's worth. */
    if (c->busy && ps_buf_size(in) > (size_t)srv->opts.max_frame + PS_FRAME_HDR)
        ps_stream_pause(&c->stream);
    else if (!c->busy && ps_stream_pending(&c->stream) <= srv->opts.max_output)
        ps_stream_resume(&c->stream);
}

void ps_conn_close_all(ps_server_t *srv)
{
    for (ps_conn_t *c = srv->conns; c; c = c->next) {
        if (c->state == PS_CONN_CLOSING)
            continue;
        /* Connections with a commit in flight close when it answers. */
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
