/* popsync_bench.c - popsync-bench: a real popsyncd and real clients on loopback.
 *
 * usage: popsync-bench [--quick] [--persons N] [--townships T] [--idle N]
 *                      [--handshakes N] [--popsyncd PATH] [--keep DIR] [--storm N]
 *
 * Starts popsyncd (a child process, fresh store, durable commits) and
 * measures, with real caches, TLS sessions and the real protocol:
 *   a. ingest: T township caches push N generated persons (with their
 *      households, births, ... as the generator makes them) concurrently
 *   b. cold pull: a new township cache pulls its scope; an admin pulls all
 *   c. incremental sync of 1% changed records across the T townships
 *   d. K idle connected clients, then one pull each: server RSS per connection
 *   e. full and resumed mutual-TLS handshakes per second
 *   f. bytes on the wire per record (as negotiated)
 *   g. the monthly report and a filtered count over all persons
 * or, with --storm N, only:
 *   h. N simultaneous mutual-TLS connections (Hello each) while an
 *      established client pings every 10 ms: the slowest Welcome, the loop
 *      thread's CPU and the pings' delay, with the handshakes on the loop
 *      (--handshake-threads 0) and on the handshake threads
 * and prints a table and one JSON object.  Beside the rates it reports the
 * CPU each side used per record (a, b, c) and per handshake (e): the bench
 * process's getrusage (all its threads are clients) and popsyncd's CPU clock,
 * deltas over each phase; and popsyncd's RssAnon peak, sampled every 50 ms.
 * Nothing here asserts a speed: --quick runs it all small, as a smoke test in
 * ctest (bench/check_quick.sh checks the JSON's keys).
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include "cache.h"
#include "cli.h"
#include "err.h"
#include "frame.h"
#include "ids.h"
#include "msg.h"
#include "record_fmt.h"
#include "stream.h"
#include "sync.h"
#include "tls.h"
#include "trace.h"

#include "wire.pb-c.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DISTRICT "130203000000"

static char g_dir[PATH_MAX], g_pki[PATH_MAX + 8], g_server[64];
static pid_t g_server_pid;
static const char *g_hs_threads; /* --handshake-threads for popsyncd (storm), or NULL */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "popsync-bench: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    if (g_server_pid > 0)
        kill(g_server_pid, SIGKILL);
    exit(1);
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        /* RssAnon: the server's own memory, without LMDB's mapped file pages. */
        if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* ---- CPU time of each side, and the server's peak memory (issue 17) ---------
 *
 * CPU seconds are what a shared machine disturbs least: the neighbours
 * stretch wall time, not the work per record.  Client: getrusage of this
 * process (every thread of it is a client; the main thread only waits
 * during a phase), less what the memory sampler below used.  Server:
 * popsyncd's CPU clock (clock_getcpuclockid: nanoseconds, every thread,
 * including threads already gone), or /proc/PID/stat's utime + stime
 * (clock ticks) where that clock cannot be read. */

typedef struct cpu_mark {
    double client_s, server_s;
} cpu_mark_t;

static struct {
    pthread_t th;
    volatile int stop, running;
    volatile long peak_kb;       /* highest RssAnon seen since the start */
    volatile long phase_peak_kb; /* ... since the last phase_peak reset */
    volatile double cpu_s;       /* the sampler thread's own CPU */
} g_mem;

static double tv_s(struct timeval t)
{
    return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

static double client_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return tv_s(ru.ru_utime) + tv_s(ru.ru_stime) - g_mem.cpu_s;
}

static double server_cpu_s(void)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    clockid_t cid;
    struct timespec ts;
    FILE *f;
    if (clock_getcpuclockid(g_server_pid, &cid) == 0 && clock_gettime(cid, &ts) == 0)
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)g_server_pid);
    if (!(f = fopen(path, "r")))
        return 0;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    /* Fields after the ")" of the command: utime, stime are the 14th, 15th. */
    if (!(p = strrchr(buf, ')')) || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static cpu_mark_t cpu_now(void)
{
    cpu_mark_t m;
    m.client_s = client_cpu_s();
    m.server_s = server_cpu_s();
    return m;
}

/* CPU since m, per side. */
static cpu_mark_t cpu_since(cpu_mark_t m)
{
    cpu_mark_t n = cpu_now();
    n.client_s -= m.client_s;
    n.server_s -= m.server_s;
    return n;
}

static long rss_kb(pid_t pid);

/* Samples popsyncd's RssAnon every 50 ms: the peak is what the district's
 * server must have, the figure at the end only what it kept. */
static void *mem_thread(void *arg)
{
    (void)arg;
    while (!g_mem.stop) {
        struct rusage ru;
        long kb = rss_kb(g_server_pid);
        if (kb > g_mem.peak_kb)
            g_mem.peak_kb = kb;
        if (kb > g_mem.phase_peak_kb)
            g_mem.phase_peak_kb = kb;
        if (getrusage(RUSAGE_THREAD, &ru) == 0)
            g_mem.cpu_s = tv_s(ru.ru_utime) + tv_s(ru.ru_stime);
        usleep(50000);
    }
    return NULL;
}

static void mem_start(void)
{
    g_mem.stop = 0;
    g_mem.peak_kb = g_mem.phase_peak_kb = 0;
    if (pthread_create(&g_mem.th, NULL, mem_thread, NULL) == 0)
        g_mem.running = 1;
}

static void mem_stop(void)
{
    if (!g_mem.running)
        return;
    g_mem.stop = 1;
    pthread_join(g_mem.th, NULL);
    g_mem.running = 0;
}

/* The peak since the last call, and a new phase from now. */
static long mem_phase_peak(void)
{
    long kb = g_mem.phase_peak_kb, now = rss_kb(g_server_pid);
    g_mem.phase_peak_kb = now;
    return kb > now ? kb : now;
}

/* One row of the CPU table: each side's CPU per unit, in 1/scale s. */
static void cpu_row(const char *what, cpu_mark_t c, uint64_t n, double scale)
{
    double k = n ? scale / (double)n : 0;
    printf("%-46s %10.2f %10.2f %10.2f\n", what, c.server_s * k, c.client_s * k, (c.server_s + c.client_s) * k);
}

/* Microseconds per unit, or 0 when nothing was done. */
static double us_per(double s, uint64_t n)
{
    return n ? s * 1e6 / (double)n : 0;
}

static void township_code(int i, char out[13])
{
    snprintf(out, 13, "130203%03d000", i + 1);
}

static void start_server(const char *popsyncd)
{
    char port_file[PATH_MAX + 16], data[PATH_MAX + 16], ca[PATH_MAX + 32], cert[PATH_MAX + 32], key[PATH_MAX + 32];
    char log[PATH_MAX + 16];
    FILE *f;
    snprintf(port_file, sizeof(port_file), "%s/port", g_dir);
    unlink(port_file);
    snprintf(data, sizeof(data), "%s/server", g_dir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", g_pki);
    snprintf(cert, sizeof(cert), "%s/popsyncd.crt", g_pki);
    snprintf(key, sizeof(key), "%s/popsyncd.key", g_pki);
    snprintf(log, sizeof(log), "%s/server.log", g_dir);
    g_server_pid = fork();
    if (g_server_pid == 0) {
        int fd;
        if ((fd = fileno(fopen(log, "w"))) >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        char *av[] = {"popsyncd", "--allow-synthetic", "--listen", "127.0.0.1:0", "--port-file", port_file, "--data", data, "--ca", ca,
                      "--cert", cert, "--key", key, "--log-level", "warn", "--map-size", "2048", "--max-conns", "20000",
                      "--max-conns-per-cert", "0", "--idle-timeout", "600000", "--handshake-timeout", "60000",
                      g_hs_threads ? "--handshake-threads" : NULL, (char *)g_hs_threads, NULL};
        execv(popsyncd, av);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        int port = 0;
        if ((f = fopen(port_file, "r"))) {
            if (fscanf(f, "%d", &port) == 1 && port > 0) {
                fclose(f);
                snprintf(g_server, sizeof(g_server), "127.0.0.1:%d", port);
                return;
            }
            fclose(f);
        }
        usleep(50000);
    }
    die("popsyncd did not start; see", log);
}

static void make_cache(const char *dir, const char *cert_name, const char *role, const char *unit)
{
    ps_cache_meta_t m;
    char err[512] = "path too long";
    if (ps_cache_meta_for_pki(&m, g_server, g_pki, cert_name, role, unit) ||
        ps_cache_create(dir, &m, err, sizeof(err)))
        die("cache", err);
}

/* ---- concurrent syncs ------------------------------------------------------ */

typedef struct syncjob {
    char dir[PATH_MAX];
    uint32_t batch;  /* changes per Push (0: the default) */
    unsigned flags;  /* PS_SYNC_* */
    ps_sync_stats_t stats;
    int rc;
    char err[512];
} syncjob_t;

static void *sync_thread(void *arg)
{
    syncjob_t *j = arg;
    ps_cache_t *c = NULL;
    PS_TRACE("client", "opening the cache");
    if (ps_cache_open(&c, j->dir, j->err, sizeof(j->err))) {
        j->rc = PS_EIO;
        return NULL;
    }
    j->rc = ps_sync_run(c, j->batch, j->flags, 0, NULL, &j->stats, j->err, sizeof(j->err));
    PS_TRACE("client", "closing the cache");
    ps_cache_close(c);
    PS_TRACE("client", "cache closed");
    return NULL;
}

/* Runs the jobs at once; returns the wall time. */
static double run_syncs(syncjob_t *jobs, int n)
{
    pthread_t *t = calloc((size_t)n, sizeof(*t));
    double t0 = now_s();
    for (int i = 0; i < n; i++)
        pthread_create(&t[i], NULL, sync_thread, &jobs[i]);
    for (int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
    for (int i = 0; i < n; i++)
        if (jobs[i].rc)
            die("sync failed", jobs[i].err);
    return now_s() - t0;
}

/* ---- raw connections: idle clients, handshakes, requests ---------------------- */

typedef struct rconn rconn_t;
typedef struct rpool {
    uv_loop_t loop;
    ps_tls_conf_t *conf;
    struct sockaddr_in addr;
    int welcomed, done, closed, failed;
    ps_buf_t session;        /* a saved TLS session for resumption */
    int resume;
    int handshake_only;
    /* request/response for g. */
    uint8_t want_type;
    int replies;
} rpool_t;

struct rconn {
    ps_stream_t s;
    rpool_t *pool;
    int state;               /* 0 connecting, 1 hello sent, 2 idle, 3 request sent, 4 done */
    uint32_t req;
    uint64_t head;           /* the server's head when it welcomed us */
};

static void rc_send(rconn_t *c, uint8_t type, const ProtobufCMessage *m)
{
    ps_buf_t b;
    ps_buf_init(&b);
    ps_msg_pack_frame(&b, type, ++c->req, m);
    ps_stream_write(&c->s, ps_buf_head(&b), ps_buf_size(&b));
    ps_buf_free(&b);
}

static void rc_on_handshake(ps_stream_t *s, int status)
{
    rconn_t *c = s->data;
    Popsync__Hello h = POPSYNC__HELLO__INIT;
    uint8_t node[16];
    if (status) {
        c->pool->failed++;
        return;
    }
    if (c->pool->handshake_only) {
        if (c->pool->session.len == 0)
            ps_tls_session_save(s->tls, &c->pool->session);
        c->pool->done++;
        ps_stream_close(s);
        return;
    }
    ps_random(node, sizeof(node));
    h.protocol_version = PS_PROTOCOL_VERSION;
    h.node.data = node;
    h.node.len = 16;
    c->state = 1;
    rc_send(c, PS_MSG_HELLO, &h.base);
}

static void rc_on_read(ps_stream_t *s)
{
    rconn_t *c = s->data;
    ps_buf_t *in = &s->plain_in;
    for (;;) {
        ps_frame_t f;
        size_t used;
        if (ps_frame_decode(ps_buf_head(in), ps_buf_size(in), 64u << 20, &f, &used) != PS_OK)
            return;
        if (f.type == PS_MSG_WELCOME && c->state == 1) {
            ProtobufCMessage *m = NULL;
            if (ps_msg_unpack(f.type, f.body, f.body_len, &m) == PS_OK) {
                c->head = ((Popsync__Welcome *)m)->head;
                ps_msg_free(m);
            }
            c->state = 2;
            c->pool->welcomed++;
        } else if (c->state == 3 && f.type == c->pool->want_type) {
            int last = 1;
            if (f.type == PS_MSG_QUERY_RESULT) {
                ProtobufCMessage *m = NULL;
                if (ps_msg_unpack(f.type, f.body, f.body_len, &m) == PS_OK) {
                    last = ((Popsync__QueryResult *)m)->done;
                    ps_msg_free(m);
                }
            }
            if (last) {
                c->state = 4;
                c->pool->done++;
            }
        } else if (f.type == PS_MSG_ERROR) {
            c->pool->failed++;
            c->state = 4;
        }
        ps_buf_consume(in, used);
    }
}

static void rc_on_error(ps_stream_t *s, int err)
{
    rconn_t *c = s->data;
    (void)err;
    if (c->state != 4 && !c->pool->handshake_only)
        c->pool->failed++;
    ps_stream_close(s);
}

static void rc_on_close(ps_stream_t *s)
{
    rconn_t *c = s->data;
    c->pool->closed++;
}

static const ps_stream_cbs_t rc_cbs = {rc_on_handshake, rc_on_read, rc_on_error, NULL, rc_on_close};

static void rc_open(rpool_t *p, rconn_t *c)
{
    ps_tls_t *tls = NULL;
    memset(c, 0, sizeof(*c));
    c->pool = p;
    if (ps_tls_new(&tls, p->conf, "popsyncd"))
        die("tls", NULL);
    if (p->resume && p->session.len)
        ps_tls_session_resume(tls, ps_buf_head(&p->session), ps_buf_size(&p->session));
    ps_stream_init(&c->s, &p->loop, tls, &rc_cbs, c);
    ps_stream_set_timeouts(&c->s, 60000, 0);
    ps_stream_connect(&c->s, (struct sockaddr *)&p->addr);
}

static void run_until(rpool_t *p, int *counter, int target)
{
    double t0 = now_s();
    while (*counter + p->failed < target && now_s() - t0 < 300)
        uv_run(&p->loop, UV_RUN_ONCE);
}

static void pool_init(rpool_t *p, const char *cert)
{
    char ca[PATH_MAX + 16], crt[PATH_MAX + 32], key[PATH_MAX + 32], err[512];
    int port = atoi(strchr(g_server, ':') + 1);
    memset(p, 0, sizeof(*p));
    uv_loop_init(&p->loop);
    snprintf(ca, sizeof(ca), "%s/ca.crt", g_pki);
    snprintf(crt, sizeof(crt), "%s/%s.crt", g_pki, cert);
    snprintf(key, sizeof(key), "%s/%s.key", g_pki, cert);
    if (ps_tls_conf_new(&p->conf, PS_TLS_CLIENT, ca, crt, key, NULL, err, sizeof(err)))
        die("tls conf", err);
    uv_ip4_addr("127.0.0.1", port, &p->addr);
    ps_buf_init(&p->session);
}

static void pool_free(rpool_t *p, rconn_t *conns, int n)
{
    for (int i = 0; i < n; i++)
        if (!conns[i].s._closing)
            ps_stream_close(&conns[i].s);
    run_until(p, &p->closed, n);
    uv_run(&p->loop, UV_RUN_NOWAIT);
    uv_loop_close(&p->loop);
    ps_tls_conf_free(p->conf);
    ps_buf_free(&p->session);
}

/* e. Handshakes per second, with at most 8 in flight; *cpu: the CPU of
 * each side over them. */
static double handshakes(int n, int resume, cpu_mark_t *cpu)
{
    cpu_mark_t m;
    rpool_t p;
    rconn_t *c = calloc((size_t)n + 1, sizeof(*c));
    double t0, dt;
    int started = 0;
    pool_init(&p, "town-0");
    p.handshake_only = 1;
    /* One full handshake first, to hold a ticket for the resumed run. */
    rc_open(&p, &c[n]);
    run_until(&p, &p.done, 1);
    run_until(&p, &p.closed, 1);
    p.done = p.closed = 0;
    p.resume = resume;
    m = cpu_now();
    t0 = now_s();
    while (p.done + p.failed < n && now_s() - t0 < 120) {
        while (started < n && started - (p.done + p.failed) < 8)
            rc_open(&p, &c[started++]);
        uv_run(&p.loop, UV_RUN_ONCE);
    }
    dt = now_s() - t0;
    *cpu = cpu_since(m);
    run_until(&p, &p.closed, started);
    if (p.failed)
        die("handshakes failed", NULL);
    uv_run(&p.loop, UV_RUN_NOWAIT);
    uv_loop_close(&p.loop);
    ps_tls_conf_free(p.conf);
    ps_buf_free(&p.session);
    free(c);
    return n / dt;
}

/* g. Median time of a request's whole answer on one connection, in ms. */
static double request_ms(const char *cert, uint8_t type, uint8_t reply, const ProtobufCMessage *m, int reps)
{
    rpool_t p;
    rconn_t c;
    double best[64], t;
    pool_init(&p, cert);
    rc_open(&p, &c);
    run_until(&p, &p.welcomed, 1);
    if (p.failed)
        die("request connection failed", NULL);
    p.want_type = reply;
    if (reps > 64)
        reps = 64;
    for (int i = 0; i < reps; i++) {
        p.done = 0;
        c.state = 3;
        t = now_s();
        rc_send(&c, type, m);
        run_until(&p, &p.done, 1);
        if (p.failed)
            die("request failed", ps_frame_type_name(type));
        best[i] = (now_s() - t) * 1000.0;
    }
    pool_free(&p, &c, 1);
    for (int i = 0; i < reps; i++)
        for (int k = i + 1; k < reps; k++)
            if (best[k] < best[i]) {
                double x = best[i];
                best[i] = best[k];
                best[k] = x;
            }
    return best[reps / 2];
}

/* ---- h. reconnect storm (issue 15) ------------------------------------------ */

/* An established client pinging every 10 ms on its own thread and loop:
 * the worst and 99th-percentile round trip while the storm runs. */
typedef struct pinger {
    pthread_t th;
    volatile int stop, ready;
    double rtt[20000];
    int n;
} pinger_t;

static void *ping_thread(void *arg)
{
    pinger_t *pg = arg;
    Popsync__Ping ping = POPSYNC__PING__INIT;
    rpool_t p;
    rconn_t c;
    pool_init(&p, "admin");
    rc_open(&p, &c);
    run_until(&p, &p.welcomed, 1);
    if (p.failed)
        die("pinger connection failed", NULL);
    p.want_type = PS_MSG_PONG;
    pg->ready = 1;
    while (!pg->stop && pg->n < (int)(sizeof(pg->rtt) / sizeof(pg->rtt[0]))) {
        double t = now_s();
        p.done = 0;
        c.state = 3;
        ping.nonce = (uint64_t)pg->n;
        rc_send(&c, PS_MSG_PING, &ping.base);
        run_until(&p, &p.done, 1);
        if (p.failed)
            die("ping failed", NULL);
        pg->rtt[pg->n++] = (now_s() - t) * 1000.0;
        usleep(10000);
    }
    pool_free(&p, &c, 1);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* CPU seconds of popsyncd's main (loop) thread so far. */
static double loop_cpu_s(void)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)g_server_pid, (int)g_server_pid);
    if (!(f = fopen(path, "r")))
        return 0;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    /* Fields after the ")" of the command: state is 3rd; utime, stime are 14th, 15th. */
    if (!(p = strrchr(buf, ')')) || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct storm_result {
    int welcomed, errors;
    double slowest_s, loop_cpu_s, ping_max_ms, ping_p99_ms, ping_p50_ms;
    int pings;
} storm_result_t;

/* N mutual-TLS connections opened at once, each sending Hello, while the
 * pinger runs; popsyncd started with threads handshake threads. */
static storm_result_t storm(const char *popsyncd, int n, const char *threads)
{
    storm_result_t r;
    pinger_t *pg = calloc(1, sizeof(*pg));
    rconn_t *c = calloc((size_t)n, sizeof(*c));
    rpool_t p;
    double t0, cpu0;

    memset(&r, 0, sizeof(r));
    g_hs_threads = threads;
    start_server(popsyncd);
    pthread_create(&pg->th, NULL, ping_thread, pg);
    while (!pg->ready)
        usleep(10000);
    usleep(300000); /* a few quiet pings first */
    pool_init(&p, "town-0");
    cpu0 = loop_cpu_s();
    t0 = now_s();
    for (int i = 0; i < n; i++)
        rc_open(&p, &c[i]);
    run_until(&p, &p.welcomed, n);
    r.slowest_s = now_s() - t0;
    r.loop_cpu_s = loop_cpu_s() - cpu0;
    r.welcomed = p.welcomed;
    r.errors = p.failed;
    usleep(200000);
    pg->stop = 1;
    pthread_join(pg->th, NULL);
    pool_free(&p, c, n);
    kill(g_server_pid, SIGTERM);
    waitpid(g_server_pid, NULL, 0);
    qsort(pg->rtt, (size_t)pg->n, sizeof(double), cmp_double);
    r.pings = pg->n;
    if (pg->n) {
        r.ping_max_ms = pg->rtt[pg->n - 1];
        r.ping_p99_ms = pg->rtt[(pg->n * 99) / 100];
        r.ping_p50_ms = pg->rtt[pg->n / 2];
    }
    free(pg);
    free(c);
    return r;
}

static void storm_print(const char *what, const storm_result_t *r, int n)
{
    printf("%-34s %6d %6d %6d %9.2f %9.2f %9.1f %9.1f %9.1f %6d\n", what, n, r->welcomed, r->errors, r->slowest_s,
           r->loop_cpu_s, r->ping_p50_ms, r->ping_p99_ms, r->ping_max_ms, r->pings);
}

/* --storm N: the handshakes on the loop (--handshake-threads 0, as before
 * issue 15) and on the handshake threads (the default). */
static int storm_mode(const char *popsyncd, int n)
{
    storm_result_t on_loop, threads;
    on_loop = storm(popsyncd, n, "0");
    threads = storm(popsyncd, n, NULL);
    printf("\n%-34s %6s %6s %6s %9s %9s %9s %9s %9s %6s\n", "h. reconnect storm", "conns", "welc", "errors",
           "slowest_s", "loop_cpu", "ping_p50", "ping_p99", "ping_max", "pings");
    storm_print("handshakes on the loop thread", &on_loop, n);
    storm_print("handshakes on handshake threads", &threads, n);
    printf("{\"storm_conns\":%d,\"on_loop\":{\"welcomed\":%d,\"slowest_s\":%.2f,\"loop_cpu_s\":%.2f,"
           "\"ping_p99_ms\":%.1f,\"ping_max_ms\":%.1f},\"threads\":{\"welcomed\":%d,\"slowest_s\":%.2f,"
           "\"loop_cpu_s\":%.2f,\"ping_p99_ms\":%.1f,\"ping_max_ms\":%.1f}}\n",
           n, on_loop.welcomed, on_loop.slowest_s, on_loop.loop_cpu_s, on_loop.ping_p99_ms, on_loop.ping_max_ms,
           threads.welcomed, threads.slowest_s, threads.loop_cpu_s, threads.ping_p99_ms, threads.ping_max_ms);
    return on_loop.welcomed == n && threads.welcomed == n ? 0 : 1;
}

/* ---- counting and editing caches -------------------------------------------- */

typedef struct pickctx {
    Popsync__Record **recs;
    size_t n, every, seen, cap;
} pickctx_t;

static int pick_cb(Popsync__Record *r, void *arg)
{
    pickctx_t *p = arg;
    if (r->deleted || r->kind != POPSYNC__KIND__KIND_PERSON || p->seen++ % p->every != 0 || p->n == p->cap)
        return 0;
    {
        size_t sz = protobuf_c_message_get_packed_size(&r->base);
        uint8_t *b = malloc(sz ? sz : 1);
        protobuf_c_message_pack(&r->base, b);
        p->recs[p->n++] = popsync__record__unpack(NULL, sz, b);
        free(b);
    }
    return 0;
}

/* Edits one person in a hundred (their phone) in a cache; returns how many. */
static size_t edit_one_percent(const char *dir)
{
    ps_cache_t *c = NULL;
    ps_cache_counts_t n;
    pickctx_t p;
    char err[512];
    if (ps_cache_open(&c, dir, err, sizeof(err)))
        die("cache", err);
    ps_cache_counts(c, &n);
    memset(&p, 0, sizeof(p));
    p.every = 100;
    p.cap = n.records / 100 + 1;
    p.recs = calloc(p.cap, sizeof(*p.recs));
    ps_cache_foreach(c, pick_cb, &p);
    for (size_t i = 0; i < p.n; i++)
        if (ps_record_set(p.recs[i], "phone", "13900000000", err, sizeof(err)))
            die("editing", err);
    if (p.n && ps_cache_put_local_many(c, p.recs, p.n))
        die("editing", NULL);
    for (size_t i = 0; i < p.n; i++)
        protobuf_c_message_free_unpacked(&p.recs[i]->base, NULL);
    free(p.recs);
    ps_cache_close(c);
    return p.n;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"quick", no_argument, NULL, 'q'},      {"persons", required_argument, NULL, 'n'},
                                       {"townships", required_argument, NULL, 't'}, {"idle", required_argument, NULL, 'i'},
                                       {"handshakes", required_argument, NULL, 'h'}, {"popsyncd", required_argument, NULL, 'p'},
                                       {"keep", required_argument, NULL, 'k'},      {"storm", required_argument, NULL, 's'},
                                       {NULL, 0, NULL, 0}};
    long persons = 1000000, idle = 1000, nhs = 2000;
    int towns = 8, opt, quick = 0, nstorm = 0;
    char popsyncd[PATH_MAX] = "", err[512];
    const char *keep = NULL;
    syncjob_t *jobs;
    double t_ingest, t_cold_town, t_cold_admin, t_incr, hs_full, hs_resumed, ms_report, ms_count;
    uint64_t ingested = 0, cold_town = 0, cold_admin = 0, wire_in = 0, wire_plain = 0, incr_changes = 0;
    long rss_base, rss_idle, peak_ingest, peak_pull, peak_idle;
    cpu_mark_t m, cpu_ingest, cpu_town, cpu_admin, cpu_incr, cpu_hs_full, cpu_hs_resumed;
    struct rlimit rl;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'q': quick = 1; break;
        case 'n': persons = atol(optarg); break;
        case 't': towns = atoi(optarg); break;
        case 'i': idle = atol(optarg); break;
        case 'h': nhs = atol(optarg); break;
        case 'p': snprintf(popsyncd, sizeof(popsyncd), "%s", optarg); break;
        case 'k': keep = optarg; break;
        case 's': nstorm = atoi(optarg); break;
        default: return 2;
        }
    }
    if (quick) {
        persons = persons == 1000000 ? 2000 : persons;
        idle = idle == 1000 ? 20 : idle;
        nhs = nhs == 2000 ? 40 : nhs;
        towns = towns == 8 ? 2 : towns;
    }
    if (towns < 1 || towns > 9 || persons < towns)
        die("--townships must be 1..9 and --persons at least that", NULL);
    if (!*popsyncd) {
        /* Next to this binary's build directory: build/bench/popsync-bench -> build/popsyncd. */
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
            self[n] = '\0';
            *strrchr(self, '/') = '\0';
            snprintf(popsyncd, sizeof(popsyncd), "%s/../popsyncd", self);
        }
    }
    /* Both sides need a descriptor per idle connection. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    setenv("POPSYNC_PASSPHRASE", getenv("POPSYNC_PASSPHRASE") ? getenv("POPSYNC_PASSPHRASE") : "popsync-bench-passphrase", 0);
    setenv("POPSYNC_KDF_ITERATIONS", getenv("POPSYNC_KDF_ITERATIONS") ? getenv("POPSYNC_KDF_ITERATIONS") : "1000", 0);
    signal(SIGPIPE, SIG_IGN);
    if (keep)
        snprintf(g_dir, sizeof(g_dir), "%s", keep), mkdir(g_dir, 0700);
    else {
        snprintf(g_dir, sizeof(g_dir), "%s/popsync-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(g_dir))
            die("mkdtemp", strerror(errno));
    }
    snprintf(g_pki, sizeof(g_pki), "%s/pki", g_dir);
    fprintf(stderr, "popsync-bench: %ld persons, %d townships, %ld idle clients, in %s\n", persons, towns, idle, g_dir);

    if (ps_pki_init_ca(g_pki, "bench CA", err, sizeof(err)) ||
        ps_pki_issue(g_pki, PS_ROLE_SERVER, DISTRICT, "popsyncd", 30, err, sizeof(err)) ||
        ps_pki_issue(g_pki, PS_ROLE_ADMIN, DISTRICT, "admin", 30, err, sizeof(err)))
        die("pki", err);
    for (int i = 0; i < towns; i++) {
        char code[13], name[32];
        township_code(i, code);
        snprintf(name, sizeof(name), "town-%d", i);
        if (ps_pki_issue(g_pki, PS_ROLE_TOWNSHIP, code, name, 30, err, sizeof(err)))
            die("pki", err);
    }
    if (nstorm > 0) {
        int rc = storm_mode(popsyncd, nstorm);
        if (!keep) {
            char cmd[PATH_MAX + 16];
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
            if (system(cmd) != 0)
                fprintf(stderr, "popsync-bench: could not remove %s\n", g_dir);
        }
        return rc;
    }
    start_server(popsyncd);
    mem_start();

    /* Data entry (not timed): each township's share, offline. */
    jobs = calloc((size_t)towns + 1, sizeof(*jobs));
    for (int i = 0; i < towns; i++) {
        char code[13], name[32], n[32], seed[16];
        ps_cli_t cli;
        char *gargv[] = {"generate", "--persons", n, "--seed", seed, NULL};
        township_code(i, code);
        snprintf(name, sizeof(name), "town-%d", i);
        snprintf(jobs[i].dir, sizeof(jobs[i].dir), "%s/%s", g_dir, name);
        make_cache(jobs[i].dir, name, "township", code);
        snprintf(n, sizeof(n), "%ld", persons / towns);
        snprintf(seed, sizeof(seed), "%d", i + 1);
        cli.data_dir = jobs[i].dir;
        cli.json = 0;
        optind = 0;
        if (ps_cmd_generate(&cli, 5, gargv) != 0)
            die("generate", NULL);
    }

    /* a. Ingest: every township pushes at once; durable group commits. */
    for (int i = 0; i < towns; i++) {
        jobs[i].flags = PS_SYNC_PUSH_ONLY;
        jobs[i].batch = 5000;
    }
    (void)mem_phase_peak();
    m = cpu_now();
    t_ingest = run_syncs(jobs, towns);
    cpu_ingest = cpu_since(m);
    peak_ingest = mem_phase_peak();
    for (int i = 0; i < towns; i++)
        ingested += jobs[i].stats.accepted;

    /* b. Cold pull: a new township cache, and an admin pulling everything. */
    {
        syncjob_t j;
        memset(&j, 0, sizeof(j));
        snprintf(j.dir, sizeof(j.dir), "%s/cold-town", g_dir);
        make_cache(j.dir, "town-0", "township", "130203001000");
        m = cpu_now();
        t_cold_town = run_syncs(&j, 1);
        cpu_town = cpu_since(m);
        cold_town = j.stats.pulled;
        memset(&j, 0, sizeof(j));
        snprintf(j.dir, sizeof(j.dir), "%s/admin", g_dir);
        make_cache(j.dir, "admin", "admin", DISTRICT);
        m = cpu_now();
        t_cold_admin = run_syncs(&j, 1);
        cpu_admin = cpu_since(m);
        cold_admin = j.stats.pulled;
        wire_in = j.stats.bytes_in;
        /* f. The same pull without compression, for the wire comparison. */
        memset(&j, 0, sizeof(j));
        snprintf(j.dir, sizeof(j.dir), "%s/admin-plain", g_dir);
        make_cache(j.dir, "admin", "admin", DISTRICT);
        j.flags = PS_SYNC_NO_COMPRESSION;
        run_syncs(&j, 1);
        wire_plain = j.stats.bytes_in;
        peak_pull = mem_phase_peak();
    }

    /* c. Incremental: bring every township up to date (not timed), change 1%, sync all at once. */
    for (int i = 0; i < towns; i++) {
        jobs[i].flags = 0;
        jobs[i].batch = 0;
    }
    run_syncs(jobs, towns);
    for (int i = 0; i < towns; i++)
        incr_changes += edit_one_percent(jobs[i].dir);
    m = cpu_now();
    PS_TRACE("bench", "c. incremental: start");
    t_incr = run_syncs(jobs, towns);
    PS_TRACE("bench", "c. incremental: end");
    cpu_incr = cpu_since(m);

    /* d. Idle clients: connect, Hello, stay; then one pull each. */
    {
        rpool_t p;
        rconn_t *c = calloc((size_t)idle, sizeof(*c));
        /* popsyncd hands freed heap back every half minute (malloc_trim):
         * let it do so once after the syncs above, so that the difference
         * below is the connections', not a trim's. */
        if (!quick)
            sleep(31);
        rss_base = rss_kb(g_server_pid);
        pool_init(&p, "town-0");
        /* In waves of 100, so the listen backlog never overflows and no
         * connection misses its handshake deadline waiting for a SYN retry. */
        for (long i = 0; i < idle; i++) {
            rc_open(&p, &c[i]);
            if (i % 100 == 99)
                run_until(&p, &p.welcomed, (int)i + 1);
        }
        run_until(&p, &p.welcomed, (int)idle);
        if (p.failed)
            die("idle clients could not all connect", NULL);
        /* Idle means quiet: popsyncd trims a connection after a second
         * without traffic (its sweep runs once a second), then its heap
         * once the connections went quiet (at most every 2 s: memtrim.c). */
        usleep(4000000);
        rss_idle = rss_kb(g_server_pid);
        p.want_type = PS_MSG_PULL_BATCH;
        for (long i = 0; i < idle; i++) {
            Popsync__Pull pl = POPSYNC__PULL__INIT;
            pl.cursor = c[i].head; /* at the head: an empty batch */
            c[i].state = 3;
            rc_send(&c[i], PS_MSG_PULL, &pl.base);
        }
        run_until(&p, &p.done, (int)idle);
        peak_idle = mem_phase_peak();
        pool_free(&p, c, (int)idle);
        free(c);
    }

    /* e. Handshakes. */
    hs_full = handshakes((int)nhs, 0, &cpu_hs_full);
    hs_resumed = handshakes((int)nhs, 1, &cpu_hs_resumed);

    /* g. Reports over everything. */
    {
        Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
        Popsync__Query q = POPSYNC__QUERY__INIT;
        Popsync__QueryFilter f = POPSYNC__QUERY_FILTER__INIT, *fp = &f;
        char *group[] = {"township"};
        time_t t = time(NULL);
        struct tm tm;
        char month[8];
        localtime_r(&t, &tm);
        tm.tm_mon -= 1;
        mktime(&tm);
        strftime(month, sizeof(month), "%Y-%m", &tm);
        rq.report = "monthly";
        rq.month = month;
        ms_report = request_ms("admin", PS_MSG_REPORT_REQUEST, PS_MSG_REPORT_RESULT, &rq.base, quick ? 5 : 21);
        q.kind = POPSYNC__KIND__KIND_PERSON;
        f.field = "sex";
        f.value = "female";
        q.n_filters = 1;
        q.filters = &fp;
        q.n_group_by = 1;
        q.group_by = group;
        ms_count = request_ms("admin", PS_MSG_QUERY, PS_MSG_QUERY_RESULT, &q.base, quick ? 3 : 5);
    }

    mem_stop();
    kill(g_server_pid, SIGTERM);
    waitpid(g_server_pid, NULL, 0);

    printf("\n%-46s %14s\n", "measure", "result");
    printf("%-46s %14.0f\n", "a. ingest, records/s (durable)", ingested / t_ingest);
    printf("%-46s %14llu\n", "   records ingested", (unsigned long long)ingested);
    printf("%-46s %14.0f\n", "b. cold pull, township, records/s", cold_town / t_cold_town);
    printf("%-46s %14.0f\n", "   cold pull, admin (all), records/s", cold_admin / t_cold_admin);
    printf("%-46s %14.1f\n", "c. incremental 1% sync, ms (wall)", t_incr * 1000);
    printf("%-46s %14llu\n", "   changed records", (unsigned long long)incr_changes);
    printf("%-46s %14.1f\n", "d. server memory (RssAnon) with idle clients, MB", rss_idle / 1024.0);
    printf("%-46s %14.1f\n", "   per idle connection, KB", idle ? (double)(rss_idle - rss_base) / (double)idle : 0);
    printf("%-46s %14.0f\n", "e. full handshakes/s", hs_full);
    printf("%-46s %14.0f\n", "   resumed handshakes/s", hs_resumed);
    printf("%-46s %14.1f\n", "f. wire bytes per record, zstd (admin pull)", cold_admin ? (double)wire_in / (double)cold_admin : 0);
    printf("%-46s %14.1f\n", "   wire bytes per record, uncompressed", cold_admin ? (double)wire_plain / (double)cold_admin : 0);
    printf("%-46s %14.1f\n", "   compressed / uncompressed, %", wire_plain ? 100.0 * (double)wire_in / (double)wire_plain : 0);
    printf("%-46s %14.2f\n", "g. monthly report, ms", ms_report);
    printf("%-46s %14.2f\n", "   filtered count (persons by sex), ms", ms_count);
    printf("\n%-46s %10s %10s %10s\n", "CPU per record, microseconds", "server", "client", "both");
    cpu_row("a. ingest, per record accepted", cpu_ingest, ingested, 1e6);
    cpu_row("b. cold pull, township, per record", cpu_town, cold_town, 1e6);
    cpu_row("   cold pull, admin, per record", cpu_admin, cold_admin, 1e6);
    cpu_row("c. incremental 1% sync, per change", cpu_incr, incr_changes, 1e6);
    cpu_row("e. full handshake, ms each", cpu_hs_full, (uint64_t)nhs, 1e3);
    cpu_row("   resumed handshake, each", cpu_hs_resumed, (uint64_t)nhs, 1e6);
    printf("%-46s %10.0f\n", "   full handshakes/s popsyncd alone could take",
           cpu_hs_full.server_s > 0 ? (double)sysconf(_SC_NPROCESSORS_ONLN) * (double)nhs / cpu_hs_full.server_s : 0);
    printf("%-46s %10.1f\n", "popsyncd RssAnon peak, MB: ingest", peak_ingest / 1024.0);
    printf("%-46s %10.1f\n", "   cold pulls", peak_pull / 1024.0);
    printf("%-46s %10.1f\n", "   idle clients and their pulls", peak_idle / 1024.0);
    printf("%-46s %10.1f\n", "   whole run", g_mem.peak_kb / 1024.0);
    printf("{\"persons\":%ld,\"townships\":%d,\"ingest_records_per_s\":%.0f,\"records_ingested\":%llu,"
           "\"cold_pull_township_per_s\":%.0f,\"cold_pull_admin_per_s\":%.0f,\"incremental_ms\":%.1f,"
           "\"incremental_changes\":%llu,\"idle_clients\":%ld,\"server_rss_idle_mb\":%.1f,\"rss_per_conn_kb\":%.1f,"
           "\"handshakes_full_per_s\":%.0f,\"handshakes_resumed_per_s\":%.0f,\"wire_bytes_per_record\":%.1f,"
           "\"wire_bytes_per_record_uncompressed\":%.1f,"
           "\"monthly_report_ms\":%.2f,\"filtered_count_ms\":%.2f,",
           persons, towns, ingested / t_ingest, (unsigned long long)ingested, cold_town / t_cold_town,
           cold_admin / t_cold_admin, t_incr * 1000, (unsigned long long)incr_changes, idle, rss_idle / 1024.0,
           idle ? (double)(rss_idle - rss_base) / (double)idle : 0, hs_full, hs_resumed,
           cold_admin ? (double)wire_in / (double)cold_admin : 0,
           cold_admin ? (double)wire_plain / (double)cold_admin : 0, ms_report, ms_count);
    /* Issue 17: CPU per record of each side; both together unless the name
     * says server or client. */
    printf("\"ingest_cpu_us_per_record\":%.3f,\"ingest_server_cpu_us_per_record\":%.3f,"
           "\"ingest_client_cpu_us_per_record\":%.3f,",
           us_per(cpu_ingest.server_s + cpu_ingest.client_s, ingested), us_per(cpu_ingest.server_s, ingested),
           us_per(cpu_ingest.client_s, ingested));
    printf("\"cold_pull_admin_cpu_us_per_record\":%.3f,\"cold_pull_admin_server_cpu_us_per_record\":%.3f,"
           "\"cold_pull_admin_client_cpu_us_per_record\":%.3f,",
           us_per(cpu_admin.server_s + cpu_admin.client_s, cold_admin), us_per(cpu_admin.server_s, cold_admin),
           us_per(cpu_admin.client_s, cold_admin));
    printf("\"cold_pull_township_cpu_us_per_record\":%.3f,\"cold_pull_township_server_cpu_us_per_record\":%.3f,"
           "\"cold_pull_township_client_cpu_us_per_record\":%.3f,",
           us_per(cpu_town.server_s + cpu_town.client_s, cold_town), us_per(cpu_town.server_s, cold_town),
           us_per(cpu_town.client_s, cold_town));
    printf("\"incremental_server_cpu_ms\":%.1f,\"incremental_client_cpu_ms\":%.1f,",
           cpu_incr.server_s * 1e3, cpu_incr.client_s * 1e3);
    /* What popsyncd alone could accept on this machine's cores, were the
     * clients elsewhere: the measured rate has both sides on the same cores. */
    printf("\"handshakes_full_server_capacity_per_s\":%.0f,",
           cpu_hs_full.server_s > 0 ? (double)sysconf(_SC_NPROCESSORS_ONLN) * (double)nhs / cpu_hs_full.server_s : 0);
    printf("\"handshake_full_server_cpu_us\":%.0f,\"handshake_full_client_cpu_us\":%.0f,"
           "\"handshake_resumed_server_cpu_us\":%.1f,\"handshake_resumed_client_cpu_us\":%.1f,",
           us_per(cpu_hs_full.server_s, (uint64_t)nhs), us_per(cpu_hs_full.client_s, (uint64_t)nhs),
           us_per(cpu_hs_resumed.server_s, (uint64_t)nhs), us_per(cpu_hs_resumed.client_s, (uint64_t)nhs));
    printf("\"server_rss_anon_peak_mb\":%.1f,\"server_rss_anon_peak_ingest_mb\":%.1f,"
           "\"server_rss_anon_peak_pull_mb\":%.1f,\"server_rss_anon_peak_idle_mb\":%.1f}\n",
           g_mem.peak_kb / 1024.0, peak_ingest / 1024.0, peak_pull / 1024.0, peak_idle / 1024.0);
    if (!keep) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "popsync-bench: could not remove %s\n", g_dir);
    }
    free(jobs);
    return 0;
}
