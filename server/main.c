/* main.c - popsyncd: options, startup, signals, graceful shutdown. */
#include "server.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "memtrim.h"
#include "upstream.h"
#include "migrants.h"
#include "natsconn.h"
#include "msg.h"
#include "pullcache.h"
#include "store_migrants.h"

#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

static uv_timer_t g_stop_timer;
static uint64_t g_stop_started;
static uv_signal_t g_sig_hup;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: popsyncd --listen HOST:PORT --data DIR --ca FILE --cert FILE --key FILE [options]\n"
            "\n"
            "options:\n"
            "  --crl FILE              certificate revocation list (PEM); re-read on SIGHUP\n"
            "  --orgunits FILE         org-unit tree (CSV code,parent,name,kind); sent to clients\n"
            "  --map-size MB           initial LMDB map size in MiB (default 1024; grows when full)\n"
            "  --map-max MB            never grow the map past this (default: no cap)\n"
            "  --max-conns N           open connections at most (default 4096)\n"
            "  --max-conns-per-cert N  open connections of one certificate at most (default 64; 0 = no limit)\n"
            "  --max-frame BYTES       largest frame body accepted (default 16777216)\n"
            "  --handshake-timeout MS  TLS handshake + Hello deadline (default 10000)\n"
            "  --idle-timeout MS       idle connection deadline (default 300000)\n"
            "  --max-future MS         how far an edit's time may stay ahead of the server's clock (default 0)\n"
            "  --timezone ZONE         the district's time zone, for dates (default Asia/Shanghai)\n"
            "  --pull-batch N          records per PullBatch at most (default 5000)\n"
            "  --max-push N            changes per Push at most (default 10000)\n"
            "  --partial-budget MB     bytes of unfinished frames, whole server (default 256; 0 = none)\n"
            "  --partial-budget-per-cert MB  the same for one certificate (default 32; 0 = none)\n"
            "  --min-frame-rate BYTES  bytes/s a frame in progress must arrive at (default 1024; 0 = none)\n"
            "  --frame-grace MS        ... measured after this long (default 10000)\n"
            "  --handshake-threads N   threads for TLS handshakes (default: CPUs, at most 16; 0 = on the loop)\n"
            "  --log-level LEVEL       debug|info|warn|error (default info)\n"
            "  --port-file FILE        write the bound port here (with --listen HOST:0)\n"
            PS_CONFIG_USAGE
            "  --help                  this text\n"
            "\n"
            "subcommands: audit verify, counters check, backup, restore, node rebind, status,\n"
            "             rebuild --from-upstream (popsyncd SUBCOMMAND --help)\n");
}

/* glibc's malloc, for a server whose large blocks come and go with each
 * request (docs/performance.md §d): a fixed mmap threshold, so a decoded
 * Push's arena, a decompressed body or a pull batch of more than 256 KB is
 * mapped on its own and unmapped when freed (the default threshold rises
 * to 32 MB after the first such free, and those blocks then stay in the
 * heap, resident, between ingests); and few arenas, since 16 pool threads
 * and the handshake threads would each keep one with its own free memory.
 * MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ in the environment win. */
static void tune_malloc(void)
{
    if (!getenv("MALLOC_MMAP_THRESHOLD_"))
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    if (!getenv("MALLOC_ARENA_MAX"))
        mallopt(M_ARENA_MAX, 4);
}

static void on_stop_timer(uv_timer_t *t)
{
    ps_server_t *srv = t->data;
    int forced = uv_now(srv->loop) - g_stop_started > 10000;
    if (!forced && (srv->committing || srv->queue_head || ps_commit_flush_nodes(srv) || srv->nconns > 0)) {
        ps_conn_close_all(srv);
        return;
    }
    if (forced)
        PS_WARN("main", "shutdown deadline passed; closing %u connections now", srv->nconns);
    for (ps_conn_t *c = srv->conns; c; c = c->next)
        if (!srv->committing)
            ps_stream_close(&c->stream);
    if (srv->committing)
        return; /* a commit is never abandoned: it finishes and is acknowledged or not at all */
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    uv_close((uv_handle_t *)&g_sig_hup, NULL);
    ps_memtrim_stop();
    uv_close((uv_handle_t *)t, NULL);
    ps_hspool_stop(srv);
}

/* Issue 9: the node table (nodes.c) and the metrics endpoint (metrics.c). */
static int ops_start(ps_server_t *srv, char *err, size_t errlen)
{
    int rc = ps_nodes_start(srv);
    if (rc) {
        snprintf(err, errlen, "node table: %s", ps_strerror(rc));
        return rc;
    }
    return ps_metrics_start(srv, err, errlen);
}

static void ops_stop(ps_server_t *srv)
{
    ps_upstream_request_stop(srv->upstream); /* joined after the loop ends */
    ps_migrants_request_stop(srv->migrants);
    ps_metrics_stop(srv);
    ps_nodes_stop(srv);
}

static void on_signal(uv_signal_t *s, int signum)
{
    ps_server_t *srv = s->data;
    if (srv->stopping)
        return;
    PS_INFO("main", "signal %d: finishing in-flight commits and closing", signum);
    srv->stopping = 1;
    ps_listener_stop(srv);
    ops_stop(srv);
    ps_conn_close_all(srv);
    g_stop_started = uv_now(srv->loop);
    uv_timer_init(srv->loop, &g_stop_timer);
    g_stop_timer.data = srv;
    uv_timer_start(&g_stop_timer, on_stop_timer, 20, 50);
}

/* Logs the CRL in force; warns when its nextUpdate is near or past (its
 * revocations still apply, see verify_cb in common/tls.c). */
static void crl_log(ps_server_t *srv, const char *what)
{
    size_t n = 0;
    int64_t next = 0, now = (int64_t)time(NULL);

    if (!ps_tls_conf_crl_info(srv->tls, &n, &next))
        return;
    PS_INFO("main", "%s CRL %s: %zu revoked, next update in %lld h", what, srv->opts.crl_file, n,
            (long long)((next - now) / 3600));
    if (next <= now)
        PS_WARN("main", "CRL %s is past its next update: run `popsync pki crl`, copy it here, send SIGHUP",
                srv->opts.crl_file);
    else if (next - now < 7 * 86400)
        PS_WARN("main", "CRL %s expires within 7 days: run `popsync pki crl` soon", srv->opts.crl_file);
}

/* SIGHUP: re-reads --crl, then closes the connections it now revokes.  A
 * failed reload keeps the CRL in force. */
static void on_sighup(uv_signal_t *s, int signum)
{
    ps_server_t *srv = s->data;
    char err[512];
    int closed, rc;

    (void)signum;
    if (srv->stopping)
        return;
    if (!srv->opts.crl_file) {
        PS_WARN("main", "SIGHUP: no --crl file configured; nothing to reload");
        return;
    }
    /* Handshake threads verify against the CRL: none runs during the swap. */
    ps_hspool_conf_lock(srv);
    rc = ps_tls_conf_reload_crl(srv->tls, srv->opts.crl_file, err, sizeof(err));
    ps_hspool_conf_unlock(srv);
    if (rc != PS_OK) {
        PS_ERROR("main", "SIGHUP: CRL not reloaded, the previous one stays in force: %s", err);
        return;
    }
    crl_log(srv, "SIGHUP: reloaded");
    closed = ps_conn_close_revoked(srv);
    PS_INFO("main", "SIGHUP: closed %d connection%s with a revoked certificate", closed, closed == 1 ? "" : "s");
}

/* Arms SIGHUP (CRL reload); on_stop_timer closes the handle. */
static void hup_start(ps_server_t *srv)
{
    crl_log(srv, "loaded");
    uv_signal_init(srv->loop, &g_sig_hup);
    g_sig_hup.data = srv;
    uv_signal_start(&g_sig_hup, on_sighup, SIGHUP);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || s[0] == '-')
        return PS_EINVAL;
    *out = v;
    return PS_OK;
}

/* The defaults of every tunable: flags and the config file override them. */
static void opts_defaults(ps_server_opts_t *o)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->map_size = (size_t)1024 << 20;
    o->max_conns = 4096;
    o->max_conns_per_cert = 64;
    o->max_frame = 16u << 20;
    o->max_push_changes = 10000;
    o->pull_max_records = 5000;
    o->pull_max_bytes = 4u << 20;
    o->pull_cache = (size_t)16 << 20;
    o->max_output = 8u << 20;
    o->handshake_ms = 10000;
    o->idle_ms = 300000;
    o->max_future_ms = 0;
    /* LMDB keeps the dirty pages of its largest write transaction for the
     * life of the environment (docs/performance.md §d): at 1,000,000
     * persons 2,500 changes left 56 MB resident after 1% edits, 10,000
     * left 135 MB; the price is an fsync of 0.1-0.3 ms per group. */
    o->commit_max_changes = 2500;
    o->push_decode_budget = (size_t)32 << 20;
    o->timezone = PS_TZ_DEFAULT;
    o->partial_budget = (size_t)256 << 20;
    o->partial_budget_per_cert = (size_t)32 << 20;
    o->min_frame_rate = 1024;
    o->frame_grace_ms = 10000;
    o->handshake_threads = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (uint32_t)ncpu;
}

/* One numeric flag into its option.  0, or 2 (told) for a bad number. */
static int number_flag(ps_server_opts_t *o, int opt, const char *arg)
{
    uint64_t v;
    if (parse_u64(arg, &v)) {
        fprintf(stderr, "popsyncd: '%s' is not a non-negative number\n", arg);
        return 2;
    }
    switch (opt) {
    case 'B': o->pull_max_records = v ? (uint32_t)v : 1; break;
    case 'M': o->max_push_changes = v ? (uint32_t)v : 1; break;
    case 'm': o->map_size = (size_t)v << 20; break;
    case 'X': o->map_max = (size_t)v << 20; break;
    case 'n': o->max_conns = (uint32_t)v; break;
    case 'N': o->max_conns_per_cert = (uint32_t)v; break;
    case 'f': o->max_frame = (uint32_t)v; break;
    case 'H': o->handshake_ms = v; break;
    case 'I': o->idle_ms = v; break;
    case 'F': o->max_future_ms = v; break;
    case 'g': o->partial_budget = (size_t)v << 20; break;
    case 'G': o->partial_budget_per_cert = (size_t)v << 20; break;
    case 'R': o->min_frame_rate = (uint32_t)v; break;
    case 'W': o->frame_grace_ms = v; break;
    case 'T': o->handshake_threads = (uint32_t)(v > 16 ? 16 : v); break;
    default: break;
    }
    return 0;
}

/* The command line over the config file.  -1 to go on serving, else the
 * exit code (help, --check-config, or a usage error told on stderr). */
static int parse_args(int argc, char **argv, ps_config_t *cfg, ps_server_opts_t *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},   {"data", required_argument, NULL, 'd'},
        {"ca", required_argument, NULL, 'a'},       {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},      {"crl", required_argument, NULL, 'r'},
        {"map-size", required_argument, NULL, 'm'}, {"max-conns", required_argument, NULL, 'n'},
        {"max-conns-per-cert", required_argument, NULL, 'N'},
        {"max-frame", required_argument, NULL, 'f'}, {"handshake-timeout", required_argument, NULL, 'H'},
        {"idle-timeout", required_argument, NULL, 'I'}, {"max-future", required_argument, NULL, 'F'},
        {"log-level", required_argument, NULL, 'L'}, {"help", no_argument, NULL, 'h'},
        {"port-file", required_argument, NULL, 'P'}, {"orgunits", required_argument, NULL, 'O'},
        {"pull-batch", required_argument, NULL, 'B'}, {"max-push", required_argument, NULL, 'M'},
        {"map-max", required_argument, NULL, 'X'}, {"timezone", required_argument, NULL, 'Z'},
        {"partial-budget", required_argument, NULL, 'g'}, {"partial-budget-per-cert", required_argument, NULL, 'G'},
        {"min-frame-rate", required_argument, NULL, 'R'}, {"frame-grace", required_argument, NULL, 'W'},
        {"handshake-threads", required_argument, NULL, 'T'},
        PS_CONFIG_LONGOPTS,
        {NULL, 0, NULL, 0}};
    int opt, level;

    /* The config file first, so that flags override it. */
    if (ps_config_prepare(cfg, argc, argv, o))
        return 2;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'l': o->listen = optarg; break;
        case 'd': o->data_dir = optarg; break;
        case 'a': o->ca_file = optarg; break;
        case 'c': o->cert_file = optarg; break;
        case 'k': o->key_file = optarg; break;
        case 'r': o->crl_file = optarg; break;
        case 'P': o->port_file = optarg; break;
        case 'O': o->orgunits_file = optarg; break;
        case 'Z': o->timezone = optarg; break;
        case 'X': case 'g': case 'G': case 'R': case 'W': case 'T': case 'B': case 'M':
        case 'm': case 'n': case 'N': case 'f': case 'H': case 'I': case 'F':
            if (number_flag(o, opt, optarg))
                return 2;
            break;
        case 'L':
            if ((level = ps_log_level_from_name(optarg)) < 0) {
                fprintf(stderr, "popsyncd: unknown log level '%s'\n", optarg);
                return 2;
            }
            ps_log_set_level((ps_log_level_t)level);
            break;
        case 'h': usage(stdout); return 0;
        default:
            if (ps_config_is_flag(opt)) {
                if (ps_config_flag(cfg, o, opt, optarg))
                    return 2;
                break;
            }
            usage(stderr);
            return 2;
        }
    }
    if (cfg->check)
        return ps_config_check(cfg, o);
    if (optind < argc || !o->listen || !o->data_dir || !o->ca_file || !o->cert_file || !o->key_file) {
        fprintf(stderr, "popsyncd: --listen, --data, --ca, --cert and --key are required (as flags or in --config)\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

/* The zone, TLS, the org-unit tree and the store, in that order.  PS_OK,
 * or an error told in the log (what was opened is closed by main). */
static int open_parts(ps_server_t *srv)
{
    ps_store_opts_t sopts;
    char err[512];

    /* The zone is read while this process has one thread (tz.h). */
    if (ps_tz_load(&srv->tz, srv->opts.timezone, ps_now_ms(), err, sizeof(err)) != PS_OK) {
        PS_ERROR("main", "timezone: %s", err);
        return PS_EINVAL;
    }
    if (ps_tls_conf_new(&srv->tls, PS_TLS_SERVER, srv->opts.ca_file, srv->opts.cert_file, srv->opts.key_file,
                        srv->opts.crl_file, err, sizeof(err))) {
        PS_ERROR("main", "TLS setup: %s", err);
        return PS_EINVAL;
    }
    if (srv->opts.orgunits_file) {
        if (ps_orgunits_load(srv->opts.orgunits_file, &srv->units, err, sizeof(err))) {
            PS_ERROR("main", "org units %s: %s", srv->opts.orgunits_file, err);
            return PS_EINVAL;
        }
        PS_INFO("main", "org units: %zu from %s", ps_orgunits_count(srv->units), srv->opts.orgunits_file);
    }
    memset(&sopts, 0, sizeof(sopts));
    sopts.units = srv->units;
    sopts.map_size = srv->opts.map_size;
    sopts.map_max = srv->opts.map_max;
    sopts.max_future_ms = srv->opts.max_future_ms;
    sopts.tz = srv->tz;
    sopts.allow_synthetic = srv->opts.allow_synthetic;
    if (ps_store_open(&srv->store, srv->opts.data_dir, &sopts, err, sizeof(err))) {
        PS_ERROR("main", "%s", err);
        return PS_EIO;
    }
    return ps_pullcache_new(&srv->pullcache, srv->opts.pull_cache);
}

/* Issue 19 point 2: the consumer of other districts' migration cases
 * (migrants.c), with the province's org units when configured. */
static int start_migrants(ps_server_t *srv, const ps_upstream_opts_t *uo, char *err, size_t errlen)
{
    const char *f = srv->opts.upstream_province_orgunits;
    int rc;
    if (f && ps_orgunits_load(f, &srv->province, err, errlen) != PS_OK)
        return PS_EINVAL;
    if ((rc = ps_store_set_home(srv->store, uo->district))) {
        snprintf(err, errlen, "cannot record the district's code in the store: %s", ps_strerror(rc));
        return rc;
    }
    if (f)
        PS_INFO("main", "province org units: %zu from %s", ps_orgunits_count(srv->province), f);
    return ps_migrants_start(&srv->migrants, srv->store, uo, srv->province, err, errlen);
}

/* Starts the handshake pool, the listener, the ops endpoints and the
 * upward stream on the loop.  PS_OK, or an error told in the log. */
static int start_services(ps_server_t *srv)
{
    char err[512];
    int rc = ps_hspool_start(srv, err, sizeof(err));
    if (rc == PS_OK)
        rc = ps_listener_start(srv, err, sizeof(err));
    if (rc == PS_OK)
        rc = ops_start(srv, err, sizeof(err));
    if (rc == PS_OK && srv->opts.upstream_urls) {
        ps_upstream_opts_t uo;
        ps_config_upstream_opts(&srv->opts, &uo);
        rc = ps_upstream_start(&srv->upstream, srv->store, &uo, err, sizeof(err));
        if (rc == PS_OK)
            rc = start_migrants(srv, &uo, err, sizeof(err));
    }
    if (rc)
        PS_ERROR("main", "%s", err);
    return rc;
}

/* Runs the loop until SIGTERM or SIGINT has let every commit finish. */
static void serve(ps_server_t *srv)
{
    uv_loop_t *loop = srv->loop;
    uv_signal_init(loop, &srv->sig_term);
    uv_signal_init(loop, &srv->sig_int);
    srv->sig_term.data = srv->sig_int.data = srv;
    uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
    uv_signal_start(&srv->sig_int, on_signal, SIGINT);
    hup_start(srv);
    PS_INFO("main", "popsyncd %s serving on %s, store %s, head %llu", "0.1.0", srv->opts.listen,
            srv->opts.data_dir, (unsigned long long)ps_store_head(srv->store));
    ps_memtrim_start(loop);
    uv_run(loop, UV_RUN_DEFAULT);
    PS_INFO("main", "stopped: %llu commits, %llu changes accepted, %llu rejected, %llu duplicate",
            (unsigned long long)srv->stats.commits, (unsigned long long)srv->stats.changes_accepted,
            (unsigned long long)srv->stats.changes_rejected, (unsigned long long)srv->stats.changes_duplicate);
}

int main(int argc, char **argv)
{
    ps_config_t cfg;
    ps_server_t srv;
    char err[512];
    int rc;
    uv_loop_t loop;

    if (argc > 1 && argv[1][0] != '-')
        return ps_server_subcommand(argc - 1, argv + 1);
    /* A message type without its handler is a build mistake: say so at once. */
    if (ps_sync_check_handlers(err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsyncd: %s\n", err);
        return 1;
    }
    memset(&srv, 0, sizeof(srv));
    opts_defaults(&srv.opts);
    if ((rc = parse_args(argc, argv, &cfg, &srv.opts)) >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    tune_malloc();
    /* Group commits, pulls and long queries share libuv's thread pool: make
     * it wide enough that a few long reports never hold up a commit. */
    if (!getenv("UV_THREADPOOL_SIZE"))
        setenv("UV_THREADPOOL_SIZE", "16", 1);
    if ((rc = open_parts(&srv)) == PS_OK) {
        uv_loop_init(&loop);
        srv.loop = &loop;
        if ((rc = start_services(&srv)) == PS_OK)
            serve(&srv);
        ps_migrants_join(srv.migrants);
        ps_upstream_join(srv.upstream);
        if (srv.upstream)
            ps_natsconn_shutdown(); /* both threads' connections closed */
        uv_loop_close(&loop);
        ps_metrics_free(&srv);
        ps_nodes_free(&srv);
    }
    ps_pullcache_free(srv.pullcache);
    ps_store_close(srv.store);
    ps_tls_conf_free(srv.tls);
    ps_orgunits_free(srv.units);
    ps_orgunits_free(srv.province);
    return rc ? 1 : 0;
}
