/* link.c - a session of this cache with its server (link.h). */
#include "link.h"
#include "crypto.h"
#include "err.h"
#include "ids.h"
#include "msg.h"
#include "msgtab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void save_tls(const uint8_t *p, size_t len, void *arg)
{
    ps_cache_set_tls_session(arg, p, len);
}

/* The server's tree is authoritative: it is stored before any other
 * request goes out, so local validation agrees with the server's. */
static int on_orgunits(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    ps_link_t *l = arg;
    Popsync__OrgUnits *o;
    uint8_t digest[32];
    int rc;
    if (status)
        return status;
    o = (Popsync__OrgUnits *)*m;
    if (o->digest.len != 32 || ps_sha256(o->csv.data, o->csv.len, digest) != PS_OK ||
        memcmp(digest, o->digest.data, 32) != 0) {
        ps_session_fail(s, PS_EPROTO, "org-unit file from server does not match its digest");
        return PS_EPROTO;
    }
    if ((rc = ps_cache_set_orgunits(l->cache, o->csv.data, o->csv.len, digest))) {
        ps_session_fail(s, rc, "storing the org-unit file: %s", ps_strerror(rc));
        return rc;
    }
    ps_session_ready(s);
    return PS_OK;
}

/* The server's clock: observed now, adopted when the link closes. */
static void welcome_clock(ps_link_t *l, const Popsync__Welcome *w)
{
    if (!w->server_hlc)
        return;
    ps_cache_observe_hlc(l->cache, w->server_hlc);
    l->server_hlc = w->server_hlc;
    l->clock_skew_ms = (int64_t)ps_cache_device_ms(l->cache) - (int64_t)PS_HLC_MS(w->server_hlc);
}

/* Returns 1 when the server's tree differs from the cache's. */
static int tree_changed(ps_link_t *l, const Popsync__Welcome *w)
{
    uint8_t *csv = NULL, have[32];
    size_t len;
    int same;
    if (w->orgunits_digest.len != 32)
        return 0;
    same = ps_cache_get_orgunits(l->cache, &csv, &len, have) == PS_OK &&
           memcmp(have, w->orgunits_digest.data, 32) == 0;
    free(csv);
    return !same;
}

static int on_welcome(ps_session_t *s, const Popsync__Welcome *w, void *arg)
{
    ps_link_t *l = arg;
    const ps_cache_meta_t *m = ps_cache_meta(l->cache);
    int synth = w->synthetic_allowed ? PS_SYNTHETIC_ALLOWED : PS_SYNTHETIC_REFUSED;

    /* The server has applied local change numbers this cache never made:
     * it is a restored backup or a copy of another device's cache.  Its new
     * changes would be taken for old resends, so refuse to go on. */
    if (m->next_lcn == 0 || w->node_high_water >= m->next_lcn) {
        ps_session_fail(s, PS_ESTALE,
                        "the server has seen newer changes from this cache's node (%llu > %llu): this cache was "
                        "restored or copied. Save its unsent changes with 'popsync export --pending', make a new "
                        "cache with 'popsync init' and import them there",
                        (unsigned long long)w->node_high_water,
                        (unsigned long long)(m->next_lcn ? m->next_lcn - 1 : 0));
        return PS_ESTALE;
    }
    welcome_clock(l, w);
    /* Dates entered here are judged by the district's calendar. */
    if (w->timezone && *w->timezone && strlen(w->timezone) < sizeof(m->timezone) &&
        strcmp(w->timezone, m->timezone) != 0)
        ps_cache_set_timezone(l->cache, w->timezone);
    /* A late entry into one of these months warns the clerk (client/late.c). */
    ps_cache_set_approved_months(l->cache, w->approved_months, w->n_approved_months);
    if (synth != m->synthetic_policy)
        ps_cache_set_synthetic_policy(l->cache, synth);
    if (tree_changed(l, w)) {
        Popsync__OrgUnitsRequest req = POPSYNC__ORG_UNITS_REQUEST__INIT;
        int64_t id = ps_session_request(s, PS_MSG_ORGUNITS_REQUEST, &req.base, PS_REQ_EARLY, on_orgunits, l);
        return id < 0 ? (int)id : PS_SESSION_MORE;
    }
    return PS_OK;
}

int ps_link_open(ps_link_t **out, uv_loop_t *loop, ps_cache_t *cache, uint64_t timeout_ms, unsigned flags,
                 const ps_link_test_t *test, char *err, size_t errlen)
{
    const ps_cache_meta_t *m = ps_cache_meta(cache);
    ps_session_cfg_t cfg;
    ps_session_tls_t tls;
    ps_link_t *l = calloc(1, sizeof(*l));
    ps_buf_t resume;
    int rc;

    if (!l) {
        snprintf(err, errlen, "out of memory");
        return PS_ENOMEM;
    }
    l->cache = cache;
    l->legacy_clock = test && test->legacy_clock;
    memset(&cfg, 0, sizeof(cfg));
    cfg.server = m->server;
    memcpy(cfg.node, m->node, sizeof(cfg.node));
    cfg.cursor = m->cursor;
    cfg.no_compression = (flags & PS_LINK_NO_COMPRESSION) != 0;
    cfg.timeout_ms = timeout_ms;
    cfg.on_welcome = on_welcome;
    cfg.arg = l;
    memset(&tls, 0, sizeof(tls));
    tls.server_name = m->server_name;
    tls.ca = m->ca;
    tls.cert = m->cert;
    tls.key = m->key;
    tls.save = save_tls;
    tls.save_arg = cache;
    /* Resume the last TLS session when the server still honours its
     * ticket: a reconnecting device skips the full handshake. */
    ps_buf_init(&resume);
    if (ps_cache_get_tls_session(cache, &resume) == PS_OK && ps_buf_size(&resume)) {
        tls.resume = ps_buf_head(&resume);
        tls.resume_len = ps_buf_size(&resume);
    }
    rc = ps_session_connect(&l->s, loop, &cfg, &tls, err, errlen);
    if (ps_buf_size(&resume))
        ps_zeroize(ps_buf_head(&resume), ps_buf_size(&resume));
    ps_buf_free(&resume);
    if (rc) {
        free(l);
        return rc;
    }
    if (test && test->cut_after_frames)
        ps_session_test_cut(l->s, test->cut_after_frames);
    *out = l;
    return PS_OK;
}

int ps_link_run(ps_link_t *l)
{
    return ps_session_run(l->s);
}

int ps_link_close(ps_link_t *l, int rc, char *err, size_t errlen, uint64_t *bytes_in, uint64_t *bytes_out)
{
    if (rc == PS_OK)
        rc = ps_session_status(l->s);
    if (rc == PS_OK && l->server_hlc && !l->legacy_clock) {
        /* Time our edits by the server's clock from now on, but only once
         * every change stamped with the old clock has been pushed: the
         * server corrects those by the clock_ms of their Push. */
        uint64_t pending = 1;
        ps_cache_outbox_count(l->cache, &pending);
        ps_cache_clock_seen(l->cache, l->clock_skew_ms, pending == 0, l->server_hlc);
    }
    if (rc && ps_session_status(l->s))
        snprintf(err, errlen, "%s", ps_session_error(l->s));
    else if (rc)
        snprintf(err, errlen, "%s", ps_strerror(rc));
    ps_session_close(l->s, bytes_in, bytes_out);
    free(l);
    return rc;
}

/* Asks and runs an open link until answered or failed. */
static int once_run(ps_link_t *l, ps_link_ask_fn ask, void *arg, int *welcomed)
{
    int rc = ask(l, arg);
    if (rc == PS_OK)
        rc = ps_link_run(l);
    if (welcomed)
        *welcomed = ps_session_welcome(l->s) != NULL;
    return rc;
}

int ps_link_once(ps_cache_t *cache, ps_link_ask_fn ask, void *arg, int *welcomed, char *err, size_t errlen)
{
    ps_link_t *l;
    int rc = ps_link_open(&l, NULL, cache, 0, 0, NULL, err, errlen);
    if (welcomed)
        *welcomed = 0;
    if (rc)
        return rc;
    rc = once_run(l, ask, arg, welcomed);
    return ps_link_close(l, rc, err, errlen, NULL, NULL);
}

typedef struct deadline {
    ps_link_t *l;
    uint64_t ms;
} deadline_t;

/* The deadline passed with the exchange unfinished: fail it (a session
 * that ended already keeps its own outcome). */
static void on_deadline(uv_timer_t *t)
{
    deadline_t *d = t->data;
    unsigned s = (unsigned)((d->ms + 999) / 1000);
    if (ps_session_welcome(d->l->s) && ps_session_outstanding(d->l->s) == 0)
        return; /* answered in the same turn of the loop */
    ps_session_fail(d->l->s, PS_ETIMEDOUT, "server %s did not answer within %u s", ps_session_server(d->l->s), s);
}

/* The session's stream and the deadline's timer share a loop of this
 * call's own, so the timer runs whatever the session waits for. */
int ps_link_once_within(ps_cache_t *cache, uint64_t deadline_ms, ps_link_ask_fn ask, void *arg, int *welcomed,
                        char *err, size_t errlen)
{
    uv_loop_t loop;
    uv_timer_t timer;
    deadline_t d = {NULL, deadline_ms};
    int rc;

    if (!deadline_ms)
        return ps_link_once(cache, ask, arg, welcomed, err, errlen);
    if (welcomed)
        *welcomed = 0;
    if (uv_loop_init(&loop) != 0) {
        snprintf(err, errlen, "cannot start an event loop");
        return PS_EIO;
    }
    uv_timer_init(&loop, &timer);
    timer.data = &d;
    rc = ps_link_open(&d.l, &loop, cache, deadline_ms, 0, NULL, err, errlen);
    if (rc == PS_OK) {
        uv_timer_start(&timer, on_deadline, deadline_ms, 0);
        rc = once_run(d.l, ask, arg, welcomed);
        uv_timer_stop(&timer);
        rc = ps_link_close(d.l, rc, err, errlen, NULL, NULL);
    }
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT); /* until the connection and the timer are closed */
    ps_msg_thread_cleanup();
    uv_loop_close(&loop);
    return rc;
}
