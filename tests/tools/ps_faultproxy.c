/* ps_faultproxy.c - a fault-injecting TCP proxy for network fault tests.
 *
 * usage: ps_faultproxy --to PORT [--delay MS] [--cut-prob PCT] [--cut-max BYTES]
 *                      [--stall-prob PCT] [--stall MS] [--stall-max BYTES]
 *                      [--seed N] [--max-seconds S] [--port-file FILE]
 *
 * Listens on 127.0.0.1 (a port the kernel picks), prints the port on
 * stdout, and forwards every connection to 127.0.0.1:PORT; loopback only,
 * by construction.  Faults, decided per connection from the seed:
 *   --delay MS      each chunk is held a random 0..MS ms (order kept)
 *   --cut-prob PCT  PCT% of connections are cut: in one direction, chosen at
 *                   random, at a random byte offset in [0, --cut-max] (default
 *                   262144); the bytes before it are delivered, then both
 *                   sides are closed
 *   --stall-prob PCT  PCT% of connections stall: at a random offset in
 *                   [0, --stall-max] of one direction, forwarding (and reading)
 *                   in that direction stops for --stall MS (default 3000)
 * Bounded: exits after --max-seconds (default 600), and on SIGTERM/SIGINT,
 * printing its counts to stderr ("faultproxy: N connections, ...").
 */
#include <uv.h>

#include <arpa/inet.h>
#include <signal.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUEUE_LIMIT (1u << 20) /* stop reading a side with this much queued */

typedef struct chunk {
    struct chunk *next;
    uint64_t due;
    size_t len;
    char data[];
} chunk_t;

typedef struct pconn pconn_t;

typedef struct side {
    pconn_t *pc;
    uv_tcp_t *src, *dst;
    chunk_t *head, *tail;
    size_t queued;         /* bytes in chunks not yet written */
    unsigned writing;      /* writes in flight */
    uint64_t fwd;          /* bytes taken from src */
    uint64_t cut_at;       /* UINT64_MAX: never */
    uint64_t stall_at;     /* UINT64_MAX: never */
    uint64_t last_due;
    int reading, eof, cut, stalled, shut;
    uv_timer_t flush, unstall;
} side_t;

struct pconn {
    uv_tcp_t a, b;         /* a: the client side, b: the upstream */
    uv_connect_t creq;
    side_t up, down;       /* up: a -> b, down: b -> a */
    int connected, closing, open_handles;
};

typedef struct wreq {
    uv_write_t req;
    side_t *s;
    chunk_t *c;
} wreq_t;

static uv_loop_t *g_loop;
static uv_tcp_t g_listener;
static int g_to_port;
static uint64_t g_delay, g_cut_prob, g_cut_max = 262144, g_stall_prob, g_stall_ms = 3000, g_stall_max = 262144;
static uint64_t g_rng = 1;
static unsigned long long g_conns, g_cuts, g_stalls, g_bytes_up, g_bytes_down;

static uint64_t rnd(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n]. */
static uint64_t rnd_upto(uint64_t n)
{
    return n == UINT64_MAX ? rnd() : rnd() % (n + 1);
}

static void print_stats(void)
{
    fprintf(stderr, "faultproxy: %llu connections, %llu cut, %llu stalled, %llu bytes up, %llu bytes down\n",
            g_conns, g_cuts, g_stalls, g_bytes_up, g_bytes_down);
}

static void pc_handle_closed(pconn_t *pc)
{
    if (--pc->open_handles > 0)
        return;
    for (side_t *s = &pc->up; s; s = s == &pc->up ? &pc->down : NULL) {
        while (s->head) {
            chunk_t *c = s->head;
            s->head = c->next;
            free(c);
        }
    }
    free(pc);
}

static void on_tcp_closed(uv_handle_t *h)
{
    pc_handle_closed(h->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    pc_handle_closed(((side_t *)h->data)->pc);
}

static void pc_close(pconn_t *pc)
{
    if (pc->closing)
        return;
    pc->closing = 1;
    uv_close((uv_handle_t *)&pc->a, on_tcp_closed);
    uv_close((uv_handle_t *)&pc->b, on_tcp_closed);
    uv_close((uv_handle_t *)&pc->up.flush, on_timer_closed);
    uv_close((uv_handle_t *)&pc->down.flush, on_timer_closed);
    uv_close((uv_handle_t *)&pc->up.unstall, on_timer_closed);
    uv_close((uv_handle_t *)&pc->down.unstall, on_timer_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(65536);
    buf->len = buf->base ? 65536 : 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Reads from a side's source exactly when it should. */
static void side_update_reading(side_t *s)
{
    int want = s->pc->connected && !s->pc->closing && !s->eof && !s->cut && !s->stalled && s->queued < QUEUE_LIMIT;
    if (want && !s->reading) {
        if (uv_read_start((uv_stream_t *)s->src, on_alloc, on_read) == 0)
            s->reading = 1;
    } else if (!want && s->reading) {
        uv_read_stop((uv_stream_t *)s->src);
        s->reading = 0;
    }
}

static void side_flush(side_t *s);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

/* After the last byte of a side went out: a cut closes everything; an EOF
 * is passed on as a shutdown, and when both sides ended the pair closes. */
static void side_check_done(side_t *s)
{
    pconn_t *pc = s->pc;
    if (pc->closing || s->head || s->writing)
        return;
    if (s->cut) {
        pc_close(pc);
        return;
    }
    if (s->eof && !s->shut) {
        uv_shutdown_t *req = malloc(sizeof(*req));
        s->shut = 1;
        if (!req || uv_shutdown(req, (uv_stream_t *)s->dst, on_shutdown) != 0) {
            free(req);
            pc_close(pc);
            return;
        }
    }
    if (pc->up.shut && pc->down.shut)
        pc_close(pc);
}

static void on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    side_t *s = w->s;
    s->writing--;
    s->queued -= w->c->len;
    free(w->c);
    free(w);
    if (s->pc->closing)
        return;
    if (status) {
        pc_close(s->pc);
        return;
    }
    side_update_reading(s);
    side_check_done(s);
}

static void on_flush_timer(uv_timer_t *t)
{
    side_flush(t->data);
}

/* Writes every chunk that is due; arms the timer for the next one. */
static void side_flush(side_t *s)
{
    uint64_t now = uv_now(g_loop);
    if (s->pc->closing)
        return;
    while (s->head && s->head->due <= now) {
        chunk_t *c = s->head;
        wreq_t *w = malloc(sizeof(*w));
        uv_buf_t b = uv_buf_init(c->data, (unsigned)c->len);
        s->head = c->next;
        if (!s->head)
            s->tail = NULL;
        if (!w) {
            free(c);
            pc_close(s->pc);
            return;
        }
        w->s = s;
        w->c = c;
        s->writing++;
        if (uv_write(&w->req, (uv_stream_t *)s->dst, &b, 1, on_write) != 0) {
            s->writing--;
            free(c);
            free(w);
            pc_close(s->pc);
            return;
        }
    }
    if (s->head)
        uv_timer_start(&s->flush, on_flush_timer, s->head->due - now, 0);
    side_check_done(s);
}

static void on_unstall(uv_timer_t *t)
{
    side_t *s = t->data;
    s->stalled = 0;
    side_update_reading(s);
}

static void side_queue(side_t *s, const char *p, size_t n)
{
    uint64_t now = uv_now(g_loop), due;
    chunk_t *c;
    if (n == 0)
        return;
    c = malloc(sizeof(*c) + n);
    if (!c) {
        pc_close(s->pc);
        return;
    }
    memcpy(c->data, p, n);
    c->len = n;
    c->next = NULL;
    due = now + (g_delay ? rnd_upto(g_delay) : 0);
    if (due < s->last_due)
        due = s->last_due; /* keep the order */
    s->last_due = due;
    c->due = due;
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    s->queued += n;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    pconn_t *pc = st->data;
    side_t *s = (uv_tcp_t *)st == &pc->a ? &pc->up : &pc->down;
    if (nread < 0) {
        free(buf->base);
        if (nread == UV_EOF) {
            s->eof = 1;
            side_update_reading(s);
            side_check_done(s);
        } else {
            pc_close(pc);
        }
        return;
    }
    if (pc->closing || nread == 0) {
        free(buf->base);
        return;
    }
    {
        size_t n = (size_t)nread, take = n;
        const char *p = buf->base;
        if (s == &pc->up)
            g_bytes_up += n;
        else
            g_bytes_down += n;
        /* Stall: forward up to the stall offset now, the rest after S ms. */
        if (s->stall_at != UINT64_MAX && s->fwd + take > s->stall_at) {
            size_t before = (size_t)(s->stall_at - s->fwd);
            uint64_t now = uv_now(g_loop);
            if (s->cut_at != UINT64_MAX && s->fwd + before > s->cut_at)
                before = (size_t)(s->cut_at - s->fwd);
            side_queue(s, p, before);
            s->fwd += before;
            p += before;
            take -= before;
            s->stall_at = UINT64_MAX;
            s->stalled = 1;
            g_stalls++;
            if (s->last_due < now + g_stall_ms)
                s->last_due = now + g_stall_ms;
            uv_timer_start(&s->unstall, on_unstall, g_stall_ms, 0);
        }
        if (s->cut_at != UINT64_MAX && s->fwd + take >= s->cut_at) {
            take = (size_t)(s->cut_at - s->fwd);
            s->cut = 1;
            g_cuts++;
        }
        side_queue(s, p, take);
        s->fwd += take;
    }
    free(buf->base);
    if (pc->closing)
        return;
    if (s->cut) {
        /* Nothing more in either direction. */
        pc->up.cut = pc->down.cut = 1;
        side_update_reading(&pc->up);
        side_update_reading(&pc->down);
    } else {
        side_update_reading(s);
    }
    side_flush(s);
}

static void side_init(side_t *s, pconn_t *pc, uv_tcp_t *src, uv_tcp_t *dst)
{
    s->pc = pc;
    s->src = src;
    s->dst = dst;
    s->cut_at = UINT64_MAX;
    s->stall_at = UINT64_MAX;
    uv_timer_init(g_loop, &s->flush);
    uv_timer_init(g_loop, &s->unstall);
    s->flush.data = s;
    s->unstall.data = s;
}

static void on_upstream(uv_connect_t *req, int status)
{
    pconn_t *pc = req->data;
    if (pc->closing)
        return;
    if (status) {
        pc_close(pc);
        return;
    }
    pc->connected = 1;
    side_update_reading(&pc->up);
    side_update_reading(&pc->down);
}

static void on_conn(uv_stream_t *server, int status)
{
    pconn_t *pc;
    struct sockaddr_in addr;
    if (status)
        return;
    pc = calloc(1, sizeof(*pc));
    if (!pc)
        return;
    uv_tcp_init(g_loop, &pc->a);
    uv_tcp_init(g_loop, &pc->b);
    pc->a.data = pc->b.data = pc;
    side_init(&pc->up, pc, &pc->a, &pc->b);
    side_init(&pc->down, pc, &pc->b, &pc->a);
    pc->open_handles = 6;
    if (uv_accept(server, (uv_stream_t *)&pc->a) != 0) {
        pc_close(pc);
        return;
    }
    g_conns++;
    if (g_cut_prob && rnd() % 100 < g_cut_prob) {
        side_t *s = rnd() & 1 ? &pc->up : &pc->down;
        s->cut_at = rnd_upto(g_cut_max);
    }
    if (g_stall_prob && rnd() % 100 < g_stall_prob) {
        side_t *s = rnd() & 1 ? &pc->up : &pc->down;
        s->stall_at = rnd_upto(g_stall_max);
    }
    uv_ip4_addr("127.0.0.1", g_to_port, &addr);
    pc->creq.data = pc;
    if (uv_tcp_connect(&pc->creq, &pc->b, (const struct sockaddr *)&addr, on_upstream) != 0)
        pc_close(pc);
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "faultproxy: --max-seconds reached\n");
    print_stats();
    exit(0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    print_stats();
    exit(0);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!s || !*s || *s == '-')
        return -1;
    v = strtoull(s, &end, 10);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int blen = (int)sizeof(bound), port;
    uint64_t to = 0, max_seconds = 600, seed = 1;
    const char *port_file = NULL;
    uv_timer_t deadline;
    uv_signal_t sigterm, sigint;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t x = 0;
        if (!strcmp(a, "--port-file") && v) {
            port_file = v;
            i++;
            continue;
        }
        if (parse_u64(v, &x) != 0) {
            fprintf(stderr, "usage: ps_faultproxy --to PORT [--delay MS] [--cut-prob PCT] [--cut-max BYTES]\n"
                            "       [--stall-prob PCT] [--stall MS] [--stall-max BYTES] [--seed N]\n"
                            "       [--max-seconds S] [--port-file FILE]\n");
            return 2;
        }
        i++;
        if (!strcmp(a, "--to")) to = x;
        else if (!strcmp(a, "--delay")) g_delay = x;
        else if (!strcmp(a, "--cut-prob")) g_cut_prob = x;
        else if (!strcmp(a, "--cut-max")) g_cut_max = x;
        else if (!strcmp(a, "--stall-prob")) g_stall_prob = x;
        else if (!strcmp(a, "--stall")) g_stall_ms = x;
        else if (!strcmp(a, "--stall-max")) g_stall_max = x;
        else if (!strcmp(a, "--seed")) seed = x;
        else if (!strcmp(a, "--max-seconds")) max_seconds = x;
        else {
            fprintf(stderr, "ps_faultproxy: unknown option %s\n", a);
            return 2;
        }
    }
    if (to == 0 || to > 65535 || g_cut_prob > 100 || g_stall_prob > 100) {
        fprintf(stderr, "ps_faultproxy: --to PORT is required; probabilities are 0..100\n");
        return 2;
    }
    g_to_port = (int)to;
    g_rng = seed;
    signal(SIGPIPE, SIG_IGN); /* a peer that went away is an error return, not death */
    g_loop = uv_default_loop();
    uv_tcp_init(g_loop, &g_listener);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (uv_tcp_bind(&g_listener, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&g_listener, 128, on_conn) != 0 ||
        uv_tcp_getsockname(&g_listener, (struct sockaddr *)&bound, &blen) != 0) {
        fprintf(stderr, "ps_faultproxy: cannot listen on 127.0.0.1\n");
        return 1;
    }
    port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (port_file) {
        char tmp[4096];
        FILE *f;
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0) {
            fprintf(stderr, "ps_faultproxy: cannot write %s\n", port_file);
            return 1;
        }
    }
    printf("%d\n", port);
    fflush(stdout);
    uv_timer_init(g_loop, &deadline);
    uv_timer_start(&deadline, on_deadline, max_seconds * 1000, 0);
    uv_signal_init(g_loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(g_loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(g_loop, UV_RUN_DEFAULT);
    return 0;
}
