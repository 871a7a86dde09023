/* sync.c - one sync session of the client against popsyncd. */
#include "sync.h"
#include "crypto.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "stream.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PS_PROTOCOL_VERSION 1

typedef enum {
    ST_CONNECTING = 0,
    ST_HELLO,     /* Hello sent, waiting for Welcome */
    ST_ORGUNITS,  /* OrgUnitsRequest sent, waiting for OrgUnits */
    ST_PUSHING,   /* Push sent, waiting for PushResult */
    ST_PULLING,   /* Pull sent, waiting for PullBatch */
    ST_DONE
} sess_state_t;

typedef struct session {
    uv_loop_t loop;
    ps_stream_t stream;
    ps_tls_conf_t *conf;
    ps_cache_t *cache;
    const ps_sync_opts_t *opts;
    ps_sync_stats_t *stats;
    sess_state_t state;
    uint32_t next_req;
    uint32_t waiting_req;       /* request id of the outstanding request */
    Popsync__Push *inflight;    /* the Push awaiting its result */
    uint64_t outbox_total;      /* for the progress line */
    int rc;
    char *err;
    size_t errlen;
    int closed;
} session_t;

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

static void progress(session_t *s, const char *phase)
{
    if (!s->opts->progress)
        return;
    if (strcmp(phase, "push") == 0)
        fprintf(stderr, "\rpush: %llu/%llu sent   ",
                (unsigned long long)(s->stats->accepted + s->stats->duplicate + s->stats->rejected),
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
    rc = ps_msg_pack_frame(&b, type, s->waiting_req, m);
    if (rc == PS_OK)
        rc = ps_stream_write(&s->stream, ps_buf_head(&b), ps_buf_size(&b));
    ps_buf_free(&b);
    return rc;
}

static void send_pull(session_t *s)
{
    Popsync__Pull p = POPSYNC__PULL__INIT;
    p.cursor = ps_cache_meta(s->cache)->cursor;
    s->state = ST_PULLING;
    if (send_msg(s, PS_MSG_PULL, &p.base))
        sess_fail(s, PS_EIO, "cannot send Pull");
}

/* Sends the next outbox batch, or moves on to pulling when it is empty. */
static void next_push(session_t *s)
{
    Popsync__Push *p = NULL;
    uint32_t n = s->opts->push_batch ? s->opts->push_batch : 1000;
    int rc = ps_cache_outbox_batch(s->cache, n, 4u << 20, &p);
    if (rc) {
        sess_fail(s, rc, "reading the outbox: %s", ps_strerror(rc));
        return;
    }
    if (p->n_changes == 0) {
        ps_cache_push_free(p);
        if (s->opts->progress && s->outbox_total)
            fputc('\n', stderr);
        send_pull(s);
        return;
    }
    s->inflight = p;
    s->state = ST_PUSHING;
    if (send_msg(s, PS_MSG_PUSH, &p->base))
        sess_fail(s, PS_EIO, "cannot send Push");
}

static void on_welcome(session_t *s, Popsync__Welcome *w)
{
    ps_cache_counts_t n;
    s->stats->head = w->head;
    if (w->protocol_version != PS_PROTOCOL_VERSION) {
        sess_fail(s, PS_EPROTO, "server speaks protocol %u, we speak %u", w->protocol_version, PS_PROTOCOL_VERSION);
        return;
    }
    if (ps_cache_counts(s->cache, &n) == PS_OK)
        s->outbox_total = n.outbox;
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
            if (send_msg(s, PS_MSG_ORGUNITS_REQUEST, &req.base))
                sess_fail(s, PS_EIO, "cannot send OrgUnitsRequest");
            return;
        }
    }
    next_push(s);
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
    next_push(s);
}

static void on_push_result(session_t *s, Popsync__PushResult *r)
{
    int rc = ps_cache_outbox_ack(s->cache, s->inflight, r);
    if (rc) {
        sess_fail(s, rc, "recording the push result: %s", ps_strerror(rc));
        return;
    }
    for (size_t i = 0; i < r->n_results; i++) {
        switch (r->results[i]->status) {
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED: s->stats->accepted++; break;
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE: s->stats->duplicate++; break;
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_REJECTED: s->stats->rejected++; break;
        default: break;
        }
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
    if (s->opts->progress)
        fputc('\n', stderr);
    s->state = ST_DONE;
    ps_cache_set_last_sync(s->cache, ps_now_ms());
    ps_stream_shutdown(&s->stream);
}

static void handle_frame(session_t *s, const ps_frame_t *f)
{
    ProtobufCMessage *m = NULL;
    int rc;
    if (f->flags != 0 || f->reserved != 0) {
        sess_fail(s, PS_EPROTO, "server sent a frame with unknown flags");
        return;
    }
    rc = ps_msg_unpack(f->type, f->body, f->body_len, &m);
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
    } else if (s->state == ST_HELLO && f->type == PS_MSG_WELCOME) {
        on_welcome(s, (Popsync__Welcome *)m);
    } else if (s->state == ST_ORGUNITS && f->type == PS_MSG_ORGUNITS) {
        on_orgunits(s, (Popsync__OrgUnits *)m);
    } else if (s->state == ST_PUSHING && f->type == PS_MSG_PUSH_RESULT) {
        on_push_result(s, (Popsync__PushResult *)m);
    } else if (s->state == ST_PULLING && f->type == PS_MSG_PULL_BATCH) {
        on_pull_batch(s, (Popsync__PullBatch *)m);
    } else {
        sess_fail(s, PS_EPROTO, "unexpected %s from server", ps_frame_type_name(f->type));
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
        handle_frame(s, &f);
        if (s->closed)
            return;
        ps_buf_consume(in, used);
        ps_stream_touch(st);
    }
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
    h.protocol_version = PS_PROTOCOL_VERSION;
    h.node.data = (uint8_t *)m->node;
    h.node.len = PS_ID_LEN;
    h.cursor = m->cursor;
    h.software = "popsync 0.1.0";
    s->state = ST_HELLO;
    if (send_msg(s, PS_MSG_HELLO, &h.base))
        sess_fail(s, PS_EIO, "cannot send Hello");
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

int ps_sync_run(ps_cache_t *cache, const ps_sync_opts_t *opts, ps_sync_stats_t *stats, char *err, size_t errlen)
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
    uv_loop_init(&s.loop);
    ps_stream_init(&s.stream, &s.loop, tls, &sess_cbs, &s);
    ps_stream_set_timeouts(&s.stream, opts->timeout_ms ? opts->timeout_ms : 60000,
                           opts->timeout_ms ? opts->timeout_ms : 60000);
    if (ps_stream_connect(&s.stream, (struct sockaddr *)&ss) != PS_OK)
        sess_fail(&s, PS_EIO, "cannot connect to %s", m->server);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    if (s.inflight)
        ps_cache_push_free(s.inflight);
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
