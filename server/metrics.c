/* metrics.c - the Prometheus text endpoint (--metrics HOST:PORT).
 *
 * Owns: a second TCP listener on the server's loop and a minimal HTTP/1.0
 * responder: GET /metrics answers in the Prometheus text format (0.0.4),
 * any other path 404, anything else 400/405; one request per connection.
 * It binds a loopback address only, unless metrics_allow_remote is set.
 *
 * Threads: everything runs on the loop thread except the refresh job: the
 * values that need the store (map size and use, open conflicts: LMDB
 * reads) are read by uv_queue_work at most every REFRESH_MS, and a scrape
 * that finds them stale waits for the refresh.  Counters come from
 * srv->stats (conn.c, commit.c), lag from the node table (nodes.c).
 */
#include "server.h"
#include "upstream.h"
#include "migrants.h"
#include "pullcache.h"
#include "err.h"
#include "log.h"
#include "memtrim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#define REFRESH_MS 10000
#define CLIENT_TIMEOUT_MS 10000
#define MAX_CLIENTS 64
#define REQ_MAX 4096

typedef struct mclient {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    ps_metrics_t *m;
    char in[REQ_MAX];
    size_t nin;
    int waiting;          /* a /metrics request waits for the refresh */
    int open_handles;     /* freed when both handles have closed */
    int closing;
    ps_buf_t out;
    struct mclient *prev, *next;
} mclient_t;

struct ps_metrics {
    ps_server_t *srv;
    uv_tcp_t listener;
    int listening;
    mclient_t *clients;
    size_t nclients;
    int stopped;
    /* values read off the loop */
    uv_work_t req;
    int refreshing, have;
    uint64_t refreshed_ms;
    uint64_t map_bytes, used_bytes, conflicts_open;
    int rc_env, rc_conflicts;
};

int ps_addr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, &in6addr_loopback, sizeof(struct in6_addr)) == 0;
    return 0;
}

static int appendf(ps_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int appendf(ps_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    char tmp[512];
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return PS_EINVAL;
    return ps_buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void metric(ps_buf_t *b, const char *name, const char *type, const char *help, uint64_t v)
{
    appendf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, (unsigned long long)v);
}

/* A label value: backslash, quote and newline escaped. */
static void label_value(char *out, size_t n, const char *in)
{
    size_t k = 0;
    for (; *in && k + 3 < n; in++) {
        if (*in == '\\' || *in == '"') {
            out[k++] = '\\';
            out[k++] = *in;
        } else if (*in == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *in;
        }
    }
    out[k] = '\0';
}

typedef struct lag_ctx {
    ps_buf_t *b;
    uint64_t head;
} lag_ctx_t;

static void lag_line(const ps_node_info_t *n, void *arg)
{
    lag_ctx_t *x = arg;
    char hex[33], unit[40], role[40];
    ps_hex(n->node, PS_ID_LEN, hex);
    label_value(unit, sizeof(unit), n->orgunit);
    label_value(role, sizeof(role), n->role);
    appendf(x->b, "popsync_pull_lag{node=\"%s\",orgunit=\"%s\",role=\"%s\"} %llu\n", hex, unit, role,
            (unsigned long long)(x->head > n->cursor ? x->head - n->cursor : 0));
}

/* Issue 19 point 2: cases from other districts (docs/upstream.md §7). */
static void migrants_lines(ps_server_t *srv, ps_buf_t *b)
{
    ps_migrants_stats_t m;
    ps_migrants_stats(srv->migrants, &m);
    metric(b, "popsync_migrants_received_total", "counter",
           "Migration versions of other districts read from the stream.", m.received);
    metric(b, "popsync_migrants_stored_total", "counter",
           "Versions of shared cases written here (as received, or merged).", m.stored);
    metric(b, "popsync_migrants_merged_total", "counter", "Of which merges of concurrent edits.", m.merged);
    metric(b, "popsync_migrants_dropped_total", "counter",
           "Versions we had already (our own echoes, redeliveries) or older.", m.dropped);
    metric(b, "popsync_migrants_refused_total", "counter",
           "Versions the sending district may not make, or bad records (logged).", m.refused);
    metric(b, "popsync_migrants_failures_total", "counter", "Batches not written or fetches failed (retried).",
           m.failures);
    metric(b, "popsync_migrants_connected", "gauge", "1 while the durable consumer is bound.",
           (uint64_t)m.connected);
}

/* Issue 19: the upward stream's lag (docs/upstream.md "Lag"). */
static void upstream_lines(ps_server_t *srv, ps_buf_t *b)
{
    ps_upstream_stats_t u;
    uint64_t now = ps_now_ms();
    ps_upstream_stats(srv->upstream, &u);
    metric(b, "popsync_upstream_published_seq", "gauge", "Feed entries up to this seq are in the JetStream stream.",
           u.published_seq);
    metric(b, "popsync_upstream_lag_records", "gauge",
           "Feed entries not yet acknowledged by JetStream (refreshed every 2 s).", u.behind);
    metric(b, "popsync_upstream_lag_seconds", "gauge", "Age of the oldest entry not yet acknowledged (0: none).",
           u.oldest_ms && now > u.oldest_ms ? (now - u.oldest_ms) / 1000 : 0);
    metric(b, "popsync_upstream_published_total", "counter", "Feed entries acknowledged by JetStream since start.",
           u.published_total);
    metric(b, "popsync_upstream_failures_total", "counter",
           "Publish rounds without every ack (NATS down or refusing); they are retried.", u.failures);
    metric(b, "popsync_upstream_connected", "gauge", "1 while the NATS connection is up.", (uint64_t)u.connected);
    migrants_lines(srv, b);
}

static void render(ps_metrics_t *m, ps_buf_t *b)
{
    static const double bounds[PS_COMMIT_BUCKETS] = PS_COMMIT_BUCKET_BOUNDS;
    ps_server_t *srv = m->srv;
    const ps_server_stats_t *st = &srv->stats;
    lag_ctx_t lag = {b, ps_store_head(srv->store)};
    uint64_t cum = 0;

    metric(b, "popsync_connections", "gauge", "Open client connections.", srv->nconns);
    metric(b, "popsync_connections_accepted_total", "counter", "Connections accepted.", st->accepted_conns);
    metric(b, "popsync_connections_refused_total", "counter", "Connections refused over a limit.",
           st->refused_conns);
    metric(b, "popsync_connections_budget_closed_total", "counter",
           "Connections closed for holding the most input over the unfinished-frame budget.", st->budget_closes);
    metric(b, "popsync_connections_slow_closed_total", "counter",
           "Connections closed for a frame arriving below the minimum rate.", st->slow_closes);
    metric(b, "popsync_handshake_steps_pending", "gauge",
           "TLS handshake steps queued for or running on the handshake threads.", ps_hspool_pending(srv));
    metric(b, "popsync_handshakes_total", "counter", "TLS handshakes completed.", st->handshakes);
    metric(b, "popsync_handshake_failures_total", "counter", "TLS handshakes refused or failed.",
           st->handshake_failures);
    metric(b, "popsync_requests_in_flight_max", "gauge",
           "Most requests one connection had in flight at once since the server started (its window).",
           st->max_in_flight);
    appendf(b, "# HELP popsync_heap_trims_total Freed heap given back to the kernel, every half minute or soon after connections went quiet.\n"
               "# TYPE popsync_heap_trims_total counter\n"
               "popsync_heap_trims_total{reason=\"periodic\"} %llu\n"
               "popsync_heap_trims_total{reason=\"quiet\"} %llu\n",
            (unsigned long long)ps_memtrim_count(PS_MEMTRIM_PERIODIC),
            (unsigned long long)ps_memtrim_count(PS_MEMTRIM_QUIET));
    metric(b, "popsync_pushes_total", "counter", "Pushes committed and answered.", st->pushes);
    metric(b, "popsync_push_decodes_pool_total", "counter",
           "Pushes decoded on a pool thread into one arena each (off the loop).", st->push_decodes_pool);
    metric(b, "popsync_push_arena_bytes_total", "counter", "Bytes the decoded pushes took from their arenas.",
           st->push_arena_bytes);
    metric(b, "popsync_push_decodes_deferred_total", "counter",
           "Pushes kept compressed until decoded ones were freed (limits push_decode_mb).",
           st->push_decodes_deferred);
    metric(b, "popsync_push_decoded_bytes", "gauge", "Bytes of decoded Pushes held now (limits push_decode_mb).",
           srv->decoded_bytes);
    metric(b, "popsync_push_decoded_bytes_max", "gauge", "Most bytes of decoded Pushes held at once since start.",
           st->decoded_bytes_max);
    metric(b, "popsync_changes_accepted_total", "counter", "Changes applied.", st->changes_accepted);
    metric(b, "popsync_changes_rejected_total", "counter", "Changes refused by validation or scope.",
           st->changes_rejected);
    metric(b, "popsync_changes_duplicate_total", "counter", "Changes already applied (resends).",
           st->changes_duplicate);
    metric(b, "popsync_changes_conflicts_total", "counter", "Changes kept whole as conflicts.",
           st->changes_conflicts);
    metric(b, "popsync_commits_total", "counter", "Group commits.", st->commits);
    appendf(b, "# HELP popsync_commit_failures_total Group commits that failed: nothing applied, clients told why.\n"
               "# TYPE popsync_commit_failures_total counter\n"
               "popsync_commit_failures_total{reason=\"map_cap\"} %llu\n"
               "popsync_commit_failures_total{reason=\"disk_full\"} %llu\n"
               "popsync_commit_failures_total{reason=\"other\"} %llu\n",
            (unsigned long long)st->commit_fail_map_cap, (unsigned long long)st->commit_fail_disk_full,
            (unsigned long long)st->commit_fail_other);
    appendf(b, "# HELP popsync_commit_seconds Group commit latency, from queueing to durable completion.\n"
               "# TYPE popsync_commit_seconds histogram\n");
    for (size_t i = 0; i <= PS_COMMIT_BUCKETS; i++) {
        cum += st->commit_buckets[i];
        if (i < PS_COMMIT_BUCKETS)
            appendf(b, "popsync_commit_seconds_bucket{le=\"%g\"} %llu\n", bounds[i], (unsigned long long)cum);
        else
            appendf(b, "popsync_commit_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    appendf(b, "popsync_commit_seconds_sum %.6f\npopsync_commit_seconds_count %llu\n", st->commit_seconds_sum,
            (unsigned long long)st->commit_count);
    metric(b, "popsync_commit_queue_changes", "gauge", "Changes waiting for the next group commit.",
           srv->queued_changes);
    metric(b, "popsync_feed_head", "gauge", "Highest change-feed sequence committed.", lag.head);
    appendf(b, "# HELP popsync_pull_lag Feed head minus the node's last known cursor (nodes seen since start).\n"
               "# TYPE popsync_pull_lag gauge\n");
    ps_nodes_foreach(srv, lag_line, &lag);
    if (m->have && m->rc_env == PS_OK) {
        metric(b, "popsync_lmdb_map_bytes", "gauge", "LMDB map size.", m->map_bytes);
        metric(b, "popsync_lmdb_used_bytes", "gauge", "LMDB bytes in use (up to the last page).", m->used_bytes);
    }
    if (m->have && m->rc_conflicts == PS_OK)
        metric(b, "popsync_conflicts_open", "gauge", "Unresolved conflicts (refreshed at most every 10 s).",
               m->conflicts_open);
    if (srv->pullcache) {
        ps_pullcache_stats_t pcs;
        ps_pullcache_stats(srv->pullcache, &pcs);
        metric(b, "popsync_pull_cache_hits_total", "counter", "Pull batches answered from those kept.", pcs.hits);
        metric(b, "popsync_pull_cache_misses_total", "counter", "Pull batches read from the store.", pcs.misses);
        metric(b, "popsync_pull_cache_bytes", "gauge", "Bytes of pull batches kept (limits pull_cache_mb).",
               pcs.bytes);
    }
    if (srv->upstream)
        upstream_lines(srv, b);
}

/* --- connections -------------------------------------------------------------- */

static void client_closed(uv_handle_t *h)
{
    mclient_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    ps_buf_free(&c->out);
    free(c);
}

static void client_close(mclient_t *c)
{
    ps_metrics_t *m = c->m;
    if (c->closing)
        return;
    c->closing = 1;
    if (c->prev)
        c->prev->next = c->next;
    else
        m->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    m->nclients--;
    uv_close((uv_handle_t *)&c->tcp, client_closed);
    uv_close((uv_handle_t *)&c->timer, client_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    client_close(w->data);
}

static void respond(mclient_t *c, const char *status_line, const ps_buf_t *body)
{
    uv_buf_t ub;
    ps_buf_reset(&c->out);
    appendf(&c->out,
            "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            status_line, ps_buf_size(body));
    if (ps_buf_append(&c->out, ps_buf_head(body), ps_buf_size(body)) != PS_OK) {
        client_close(c);
        return;
    }
    ub = uv_buf_init((char *)ps_buf_head(&c->out), (unsigned int)ps_buf_size(&c->out));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, on_written) != 0)
        client_close(c);
}

static void respond_text(mclient_t *c, const char *status_line, const char *text)
{
    ps_buf_t b;
    ps_buf_init(&b);
    ps_buf_append(&b, text, strlen(text));
    respond(c, status_line, &b);
    ps_buf_free(&b);
}

static void respond_metrics(mclient_t *c)
{
    ps_buf_t b;
    ps_buf_init(&b);
    render(c->m, &b);
    respond(c, "200 OK", &b);
    ps_buf_free(&b);
}

static void refresh_work(uv_work_t *req)
{
    ps_metrics_t *m = req->data;
    uint64_t total = 0;
    m->rc_env = ps_store_env_info(m->srv->store, &m->map_bytes, &m->used_bytes);
    m->rc_conflicts = ps_store_conflict_count(m->srv->store, &m->conflicts_open, &total);
}

static void refresh_after(uv_work_t *req, int status)
{
    ps_metrics_t *m = req->data;
    mclient_t *c, *next;
    m->refreshing = 0;
    m->have = status == 0;
    m->refreshed_ms = uv_now(m->srv->loop);
    if (m->stopped)
        return;
    for (c = m->clients; c; c = next) {
        next = c->next;
        if (c->waiting) {
            c->waiting = 0;
            respond_metrics(c);
        }
    }
}

static void want_metrics(mclient_t *c)
{
    ps_metrics_t *m = c->m;
    if (m->have && uv_now(m->srv->loop) - m->refreshed_ms < REFRESH_MS) {
        respond_metrics(c);
        return;
    }
    c->waiting = 1;
    if (m->refreshing)
        return;
    m->req.data = m;
    m->refreshing = 1;
    if (uv_queue_work(m->srv->loop, &m->req, refresh_work, refresh_after) != 0) {
        m->refreshing = 0;
        c->waiting = 0;
        respond_metrics(c); /* without the store's values */
    }
}

/* A whole request head is in: answer it. */
static void handle_request(mclient_t *c)
{
    char method[16], path[256];
    c->in[c->nin] = '\0';
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (sscanf(c->in, "%15s %255s", method, path) != 2) {
        respond_text(c, "400 Bad Request", "bad request\n");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        respond_text(c, "405 Method Not Allowed", "only GET\n");
        return;
    }
    if (strcmp(path, "/metrics") != 0 && strncmp(path, "/metrics?", 9) != 0) {
        respond_text(c, "404 Not Found", "not found; try /metrics\n");
        return;
    }
    want_metrics(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mclient_t *c = h->data;
    (void)suggested;
    buf->base = c->in + c->nin;
    buf->len = sizeof(c->in) - 1 - c->nin;
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    mclient_t *c = s->data;
    (void)buf;
    if (n < 0) {
        client_close(c);
        return;
    }
    c->nin += (size_t)n;
    c->in[c->nin] = '\0';
    if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n")) {
        handle_request(c);
        return;
    }
    if (c->nin >= sizeof(c->in) - 1) {
        uv_read_stop(s);
        respond_text(c, "400 Bad Request", "request too large\n");
    }
}

static void on_client_timeout(uv_timer_t *t)
{
    client_close(t->data);
}

static void on_metrics_conn(uv_stream_t *l, int status)
{
    ps_metrics_t *m = l->data;
    mclient_t *c;
    if (status < 0 || m->stopped)
        return;
    if (!(c = calloc(1, sizeof(*c))))
        return;
    c->m = m;
    ps_buf_init(&c->out);
    uv_tcp_init(m->srv->loop, &c->tcp);
    uv_timer_init(m->srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = m->clients;
    if (m->clients)
        m->clients->prev = c;
    m->clients = c;
    m->nclients++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || m->nclients > MAX_CLIENTS) {
        client_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_client_timeout, CLIENT_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_client_read) != 0)
        client_close(c);
}

int ps_metrics_start(ps_server_t *srv, char *err, size_t errlen)
{
    struct sockaddr_storage ss, bound;
    ps_metrics_t *m;
    char host[64] = "?";
    int r, len = sizeof(bound), port = 0;

    if (!srv->opts.metrics_listen || !*srv->opts.metrics_listen)
        return PS_OK;
    if (ps_listen_addr_parse(srv->opts.metrics_listen, &ss) != PS_OK) {
        snprintf(err, errlen, "bad metrics address '%s' (want HOST:PORT)", srv->opts.metrics_listen);
        return PS_EINVAL;
    }
    if (!ps_addr_is_loopback(&ss) && !srv->opts.metrics_allow_remote) {
        snprintf(err, errlen,
                 "metrics address %s is not a loopback address; set allow_remote = true in [metrics] to expose it",
                 srv->opts.metrics_listen);
        return PS_EINVAL;
    }
    if (!(m = calloc(1, sizeof(*m))))
        return PS_ENOMEM;
    m->srv = srv;
    srv->metrics = m;
    uv_tcp_init(srv->loop, &m->listener);
    m->listener.data = m;
    m->listening = 1;
    if ((r = uv_tcp_bind(&m->listener, (struct sockaddr *)&ss, 0)) ||
        (r = uv_listen((uv_stream_t *)&m->listener, 64, on_metrics_conn))) {
        snprintf(err, errlen, "cannot listen for metrics on %s: %s", srv->opts.metrics_listen, uv_strerror(r));
        return PS_EIO;
    }
    uv_tcp_getsockname(&m->listener, (struct sockaddr *)&bound, &len);
    if (bound.ss_family == AF_INET) {
        uv_ip4_name((struct sockaddr_in *)&bound, host, sizeof(host));
        port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    } else if (bound.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&bound, host, sizeof(host));
        port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    }
    PS_INFO("metrics", "serving /metrics on %s:%d%s", host, port, ps_addr_is_loopback(&bound) ? "" : " (remote allowed)");
    return PS_OK;
}

void ps_metrics_stop(ps_server_t *srv)
{
    ps_metrics_t *m = srv->metrics;
    if (!m || m->stopped)
        return;
    m->stopped = 1;
    if (m->listening && !uv_is_closing((uv_handle_t *)&m->listener))
        uv_close((uv_handle_t *)&m->listener, NULL);
    while (m->clients)
        client_close(m->clients);
}

void ps_metrics_free(ps_server_t *srv)
{
    free(srv->metrics);
    srv->metrics = NULL;
}
