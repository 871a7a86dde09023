/* stream.c - a TLS connection over a libuv TCP handle. */
#include "stream.h"
#include "err.h"

#include <string.h>

#define READ_CHUNK 65536

static void flush(ps_stream_t *s);
static void start_reading(ps_stream_t *s);
static void linger(ps_stream_t *s);

static void fail(ps_stream_t *s, int err)
{
    /* Report once: later errors from the same dying connection are noise. */
    if (s->_failed || s->_closing)
        return;
    s->_failed = 1;
    if (s->cbs->on_error)
        s->cbs->on_error(s, err);
}

static void on_timer(uv_timer_t *t)
{
    ps_stream_t *s = t->data;
    if (s->_lingering) {
        ps_stream_close(s);
        return;
    }
    fail(s, PS_ETIMEDOUT);
}

static void arm_timer(ps_stream_t *s)
{
    uint64_t ms = s->_established ? s->_idle_ms : s->_handshake_ms;
    if (s->_closing || s->_lingering)
        return;
    if (ms)
        uv_timer_start(&s->_timer, on_timer, ms, 0);
    else
        uv_timer_stop(&s->_timer);
}

int ps_stream_init(ps_stream_t *s, uv_loop_t *loop, ps_tls_t *tls, const ps_stream_cbs_t *cbs, void *data)
{
    memset(s, 0, sizeof(*s));
    s->tls = tls;
    s->cbs = cbs;
    s->data = data;
    ps_buf_init(&s->plain_in);
    ps_buf_init(&s->_inflight);
    if (uv_tcp_init(loop, &s->tcp) != 0)
        return PS_EIO;
    s->tcp.data = s;
    s->_handles++;
    uv_timer_init(loop, &s->_timer);
    s->_timer.data = s;
    s->_handles++;
    return PS_OK;
}

void ps_stream_set_timeouts(ps_stream_t *s, uint64_t handshake_ms, uint64_t idle_ms)
{
    s->_handshake_ms = handshake_ms;
    s->_idle_ms = idle_ms;
}

void ps_stream_touch(ps_stream_t *s)
{
    arm_timer(s);
}

size_t ps_stream_pending(const ps_stream_t *s)
{
    return ps_buf_size(&s->_inflight) + ps_buf_size(ps_tls_cipher_out(s->tls));
}

static void on_write(uv_write_t *req, int status)
{
    ps_stream_t *s = req->data;
    s->bytes_out += ps_buf_size(&s->_inflight);
    ps_buf_reset(&s->_inflight);
    if (status < 0) {
        fail(s, PS_EIO);
        return;
    }
    if (s->_closing || s->_hs_busy)
        return; /* the engine is off the loop; ps_stream_handshake_done flushes */
    flush(s);
    if (ps_stream_pending(s) == 0) {
        if (s->_close_after_write) {
            linger(s);
            return;
        }
        if (s->cbs->on_drain)
            s->cbs->on_drain(s);
    }
}

static void flush(ps_stream_t *s)
{
    ps_buf_t *out = ps_tls_cipher_out(s->tls);
    ps_buf_t tmp;
    uv_buf_t b;

    if (s->_closing || s->_hs_busy || ps_buf_size(&s->_inflight) > 0 || ps_buf_size(out) == 0)
        return;
    /* Swap buffers instead of copying: the engine keeps filling the empty one
     * while libuv owns this one until on_write. */
    tmp = s->_inflight;
    s->_inflight = *out;
    *out = tmp;
    b = uv_buf_init((char *)ps_buf_head(&s->_inflight), (unsigned)ps_buf_size(&s->_inflight));
    s->_wreq.data = s;
    if (uv_write(&s->_wreq, (uv_stream_t *)&s->tcp, &b, 1, on_write) != 0) {
        ps_buf_reset(&s->_inflight);
        fail(s, PS_EIO);
    }
}

int ps_stream_write(ps_stream_t *s, const uint8_t *p, size_t len)
{
    int rc;
    if (s->_closing || s->_failed || s->_lingering)
        return PS_ECLOSED;
    rc = ps_tls_write(s->tls, p, len);
    if (rc)
        return rc;
    flush(s);
    return PS_OK;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    ps_stream_t *s = h->data;
    ps_buf_t *in = ps_tls_cipher_in(s->tls);
    (void)suggested;
    if (s->_lingering)
        ps_buf_reset(in); /* input is dropped: keep one chunk */
    /* Read straight into the engine's input: no copy between socket and TLS. */
    if (ps_buf_reserve(in, READ_CHUNK) != 0) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init((char *)ps_buf_tail(in), READ_CHUNK);
}

/* Decrypts everything buffered; returns PS_OK, or an error already reported. */
static int drain_tls(ps_stream_t *s)
{
    size_t before = ps_buf_size(&s->plain_in);
    for (;;) {
        size_t n = 0;
        int rc = ps_buf_reserve(&s->plain_in, 16384);
        if (rc) {
            fail(s, rc);
            return rc;
        }
        rc = ps_tls_read(s->tls, ps_buf_tail(&s->plain_in), 16384, &n);
        if (rc == PS_EAGAIN)
            break;
        if (rc) {
            /* The peer's close_notify (TCP end of stream comes via read_cb):
             * answer with ours (RFC 5246 §7.2.1), written before the owner
             * closes the handle. */
            if (rc == PS_ECLOSED)
                ps_tls_close_notify(s->tls);
            /* Deliver what came before the close or failure first: a peer's
             * last Error frame often arrives together with its close_notify. */
            flush(s);
            if (ps_buf_size(&s->plain_in) > before && s->cbs->on_read)
                s->cbs->on_read(s);
            fail(s, rc);
            return rc;
        }
        ps_buf_commit(&s->plain_in, n);
    }
    flush(s);
    if (ps_buf_size(&s->plain_in) > before && s->cbs->on_read)
        s->cbs->on_read(s);
    return PS_OK;
}

/* A handshake step returned rc: send what it produced, report. */
static void handshake_result(ps_stream_t *s, int rc)
{
    flush(s);
    if (rc == PS_EAGAIN)
        return;
    if (rc) {
        /* Let the alert go out, then report: the owner closes. */
        if (s->cbs->on_handshake)
            s->cbs->on_handshake(s, rc);
        fail(s, rc);
        return;
    }
    s->_established = 1;
    arm_timer(s);
    if (s->cbs->on_handshake)
        s->cbs->on_handshake(s, PS_OK);
    if (s->_closing || s->_failed)
        return;
    drain_tls(s);
}

/* Hands the step to the owner's threads; reading stops meanwhile because
 * the socket reads straight into the engine.  1 when handed off. */
static int offload(ps_stream_t *s)
{
    if (!s->_offload)
        return 0;
    if (s->_reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->_reading = 0;
    }
    s->_hs_busy = 1;
    if (s->_offload(s, s->_offload_arg) == PS_OK)
        return 1;
    s->_hs_busy = 0;
    start_reading(s);
    return 0;
}

void ps_stream_set_offload(ps_stream_t *s, ps_stream_offload_fn fn, void *arg)
{
    s->_offload = fn;
    s->_offload_arg = arg;
}

static void finish_close(ps_stream_t *s);

void ps_stream_handshake_done(ps_stream_t *s, int rc)
{
    s->_hs_busy = 0;
    if (s->_closing) {
        if (s->_handles == 0)
            finish_close(s); /* closed while the step ran: free now */
        return;
    }
    start_reading(s);
    handshake_result(s, rc);
}

static void process_input(ps_stream_t *s)
{
    if (s->_established) {
        drain_tls(s);
        return;
    }
    if (s->_hs_busy || offload(s))
        return;
    handshake_result(s, ps_tls_handshake(s->tls));
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    ps_stream_t *s = st->data;
    (void)b;
    if (nread == 0 || s->_closing)
        return;
    if (s->_lingering) {
        if (nread < 0)
            ps_stream_close(s); /* the peer closed too (or reset): done */
        return;
    }
    if (nread < 0) {
        fail(s, nread == UV_EOF ? PS_ECLOSED : PS_EIO);
        return;
    }
    s->bytes_in += (uint64_t)nread;
    ps_buf_commit(ps_tls_cipher_in(s->tls), (size_t)nread);
    process_input(s);
}

static void start_reading(ps_stream_t *s)
{
    if (s->_reading || s->_paused || s->_closing)
        return;
    if (uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb) == 0)
        s->_reading = 1;
    else
        fail(s, PS_EIO);
}

void ps_stream_pause(ps_stream_t *s)
{
    s->_paused = 1;
    if (s->_reading && !s->_closing) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->_reading = 0;
    }
}

void ps_stream_resume(ps_stream_t *s)
{
    if (!s->_paused)
        return;
    s->_paused = 0;
    start_reading(s);
    /* Records may have arrived while paused and still sit in the engine. */
    if (!s->_closing && !s->_failed && !s->_lingering && s->_established)
        drain_tls(s);
}

int ps_stream_paused(const ps_stream_t *s)
{
    return s->_paused;
}

int ps_stream_accept(ps_stream_t *s, uv_stream_t *server)
{
    if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0)
        return PS_EIO;
    uv_tcp_nodelay(&s->tcp, 1);
    arm_timer(s);
    start_reading(s);
    return PS_OK;
}

static void on_connect(uv_connect_t *req, int status)
{
    ps_stream_t *s = req->data;
    if (s->_closing)
        return;
    if (status < 0) {
        fail(s, PS_EIO);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    start_reading(s);
    /* The client speaks first: produce the ClientHello now. */
    process_input(s);
}

int ps_stream_connect(ps_stream_t *s, const struct sockaddr *addr)
{
    s->_creq.data = s;
    if (uv_tcp_connect(&s->_creq, &s->tcp, addr, on_connect) != 0)
        return PS_EIO;
    arm_timer(s);
    return PS_OK;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* a failed FIN ends in a read error or the linger timer */
}

/* Everything is written: send FIN, then drop input until the peer closes
 * or the linger time runs out. */
static void linger(ps_stream_t *s)
{
    if (s->_closing || s->_lingering)
        return;
    s->_lingering = 1;
    uv_timer_start(&s->_timer, on_timer, PS_STREAM_LINGER_MS, 0);
    if (uv_shutdown(&s->_sreq, (uv_stream_t *)&s->tcp, on_shutdown) != 0) {
        ps_stream_close(s);
        return;
    }
    if (!s->_reading && uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, read_cb) == 0)
        s->_reading = 1;
}

void ps_stream_shutdown(ps_stream_t *s)
{
    if (s->_closing || s->_lingering)
        return;
    if (s->_hs_busy || !s->_established) {
        ps_stream_close(s); /* nothing to say before the handshake is done */
        return;
    }
    if (s->_established && !s->_failed) {
        ps_tls_close_notify(s->tls);
        flush(s);
    }
    if (s->_failed)
        ps_stream_close(s);
    else if (ps_stream_pending(s) == 0)
        linger(s);
    else
        s->_close_after_write = 1;
}

void ps_stream_trim(ps_stream_t *s)
{
    /* Not while the engine is on a handshake thread, nor once closing. */
    if (s->_closing || s->_hs_busy || !s->_established)
        return;
    if (ps_buf_size(&s->plain_in) == 0)
        ps_buf_free(&s->plain_in);
    /* Empty means no uv_write holds it (on_write empties it). */
    if (ps_buf_size(&s->_inflight) == 0)
        ps_buf_free(&s->_inflight);
    ps_tls_trim(s->tls);
}

int ps_stream_trim_quiet(ps_stream_t *s)
{
    uint64_t mark = s->bytes_in + s->bytes_out;
    if (mark != s->_quiet_mark) {
        s->_quiet_mark = mark;
        s->_trimmed = 0;
        return PS_STREAM_MOVING;
    }
    if (s->_trimmed)
        return PS_STREAM_TRIMMED;
    if (ps_stream_pending(s) != 0)
        return PS_STREAM_MOVING;
    ps_stream_trim(s);
    s->_trimmed = 1;
    return PS_STREAM_TRIMMED_NOW;
}

static void on_handle_closed(uv_handle_t *h)
{
    ps_stream_t *s = h->data;
    if (--s->_handles > 0 || s->_hs_busy)
        return; /* a handshake step still holds the engine: it finishes the close */
    finish_close(s);
}

static void finish_close(ps_stream_t *s)
{
    ps_tls_free(s->tls);
    s->tls = NULL;
    ps_buf_free(&s->plain_in);
    ps_buf_free(&s->_inflight);
    if (s->cbs->on_close)
        s->cbs->on_close(s);
}

void ps_stream_close(ps_stream_t *s)
{
    if (s->_closing)
        return;
    s->_closing = 1;
    uv_timer_stop(&s->_timer);
    uv_close((uv_handle_t *)&s->_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
}
