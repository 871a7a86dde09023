/* ps_applybench.c - ingest's CPU per record, stage by stage, in one process
 * (issue 17; docs/performance.md §a1).
 *
 * usage: ps_applybench [PERSONS [GROUP]]  (PERSONS default 12500: one
 *                                          township of the 100,000-person
 *                                          benchmark; GROUP: pushes per
 *                                          group commit, default 8)
 *
 * Generates PERSONS persons with their households, births, ... (the
 * generator of `popsync generate`) into a scratch cache, then pushes its
 * whole outbox, 5,000 changes per Push as popsync-bench's townships do,
 * into a new server store (the demo district's tree, synthetic records
 * allowed, as the district administrator), and measures in this thread's
 * CPU time (CLOCK_THREAD_CPUTIME_ID: what a loaded machine disturbs least):
 *   client read    ps_cache_outbox_batch_after (open and unpack the changes)
 *   client frame   the Push packed into its frame and zstd-compressed
 *   server decode  the frame's body decompressed and unpacked into an arena
 *   server apply   ps_store_apply, GROUP pushes per durable transaction
 *   client ack     ps_cache_outbox_ack of the answers
 * What it leaves out: TLS, the event loops, the threads' hand-offs.  Run
 * from the build directory (it reads demo/orgunits.csv from the source
 * tree).  Nothing here is checked: it measures.
 */
#include "apply.h"
#include "cache.h"
#include "cli.h"
#include "crypto.h"
#include "err.h"
#include "frame.h"
#include "msg.h"
#include "msgtab.h"
#include "orgunit.h"
#include "store.h"
#include "wire.pb-c.h"

#include <getopt.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PUSH_MAX 5000

static char g_root[256];

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "ps_applybench: %s: %s\n", what, err ? err : "failed");
    exit(1);
}

/* One Push on its way: the client's message, the frame, the server's job. */
typedef struct push {
    Popsync__Push *p;
    ps_buf_t frame;
    ps_msg_arena_t *arena;
    ps_push_job_t job;
} push_t;

static ps_store_t *open_store(ps_orgunits_t **units)
{
    const char *f = __FILE__, *at = strstr(f, "tests/tools/");
    char path[4096], dir[300], err[512] = "";
    ps_store_opts_t o;
    ps_store_t *st = NULL;
    snprintf(path, sizeof(path), "%.*sdemo/orgunits.csv", at ? (int)(at - f) : 0, f);
    if (ps_orgunits_load(path, units, err, sizeof(err)) != PS_OK)
        die(path, err);
    snprintf(dir, sizeof(dir), "%s/store", g_root);
    if (mkdir(dir, 0700))
        die("mkdir", dir);
    memset(&o, 0, sizeof(o));
    o.map_size = (size_t)2048 << 20;
    o.units = *units;
    o.allow_synthetic = 1;
    if (ps_store_open(&st, dir, &o, err, sizeof(err)) != PS_OK)
        die("store", err);
    return st;
}

static ps_peer_t admin(void)
{
    ps_peer_t p;
    memset(&p, 0, sizeof(p));
    p.role = PS_ROLE_ADMIN;
    snprintf(p.role_name, sizeof(p.role_name), "%s", ps_role_name(PS_ROLE_ADMIN));
    snprintf(p.orgunit, sizeof(p.orgunit), "130203000000");
    snprintf(p.name, sizeof(p.name), "admin");
    snprintf(p.serial_hex, sizeof(p.serial_hex), "01");
    return p;
}

/* The PushResult of a job's results (pointing into them). */
static void ack(ps_cache_t *c, push_t *x)
{
    size_t n = x->job.nresults;
    Popsync__PushResult res = POPSYNC__PUSH_RESULT__INIT;
    Popsync__ChangeResult *cr = calloc(n ? n : 1, sizeof(*cr)), **crp = calloc(n ? n : 1, sizeof(*crp));
    Popsync__Rev *rev = calloc(n ? n : 1, sizeof(*rev));
    Popsync__FieldError fe[PS_CHANGE_ERRORS_MAX], *fep[PS_CHANGE_ERRORS_MAX];
    for (size_t i = 0; i < n; i++) {
        ps_change_result_msg(&x->job.results[i], &cr[i], &rev[i], fe, fep);
        cr[i].n_errors = 0; /* fe is reused: the errors are not the ack's concern here */
        crp[i] = &cr[i];
    }
    res.results = crp;
    res.n_results = n;
    if (ps_cache_outbox_ack(c, x->p, &res))
        die("ack", NULL);
    free(cr);
    free(crp);
    free(rev);
}

int main(int argc, char **argv)
{
    const char *persons = argc > 1 ? argv[1] : "12500";
    int group = argc > 2 ? atoi(argv[2]) : 8;
    char *gargv[] = {"generate", "--persons", (char *)persons, "--seed", "1", NULL};
    char cmd[300], err[512];
    double t_read = 0, t_frame = 0, t_decode = 0, t_apply = 0, t_ack = 0, t0;
    size_t n = 0, npush = 0, cap = 64, accepted = 0;
    push_t *pushes = calloc(cap, sizeof(*pushes));
    ps_orgunits_t *units = NULL;
    ps_peer_t peer = admin();
    uint64_t after = 0;
    ps_store_t *st;
    ps_cli_t cli;
    ps_cache_t *c;

    if (group < 1)
        group = 1;
    setenv("POPSYNC_KDF_ITERATIONS", "1000", 0);
    setenv("POPSYNC_PASSPHRASE", "ps-applybench", 0);
    snprintf(g_root, sizeof(g_root), "%s/ps-applybench-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_root))
        die("mkdtemp", NULL);
    {
        ps_cache_meta_t m;
        memset(&m, 0, sizeof(m));
        if (ps_random(m.node, sizeof(m.node)))
            die("random", NULL);
        snprintf(m.server, sizeof(m.server), "127.0.0.1:1");
        snprintf(m.role, sizeof(m.role), "admin");
        snprintf(m.orgunit, sizeof(m.orgunit), "130203000000");
        snprintf(m.key_file, sizeof(m.key_file), "%s/gen.key", g_root);
        snprintf(cmd, sizeof(cmd), "%s/gen", g_root);
        if (ps_cache_create_open(&c, cmd, &m, err, sizeof(err)))
            die("cache", err);
        ps_cache_close(c);
    }
    memset(&cli, 0, sizeof(cli));
    cli.data_dir = cmd;
    optind = 0;
    if (ps_cmd_generate(&cli, 5, gargv) != 0)
        die("generate", NULL);
    if (ps_cache_open(&c, cmd, err, sizeof(err)))
        die("open", err);
    st = open_store(&units);

    /* Client: the outbox as Pushes, each packed into its frame. */
    for (;;) {
        push_t *x;
        if (npush == cap && !(pushes = realloc(pushes, (cap *= 2) * sizeof(*pushes))))
            die("realloc", NULL);
        x = &pushes[npush];
        memset(x, 0, sizeof(*x));
        t0 = cpu_s();
        if (ps_cache_outbox_batch_after(c, after, PUSH_MAX, (size_t)4 << 20, &x->p))
            die("outbox", NULL);
        t_read += cpu_s() - t0;
        if (x->p->n_changes == 0) {
            ps_cache_push_free(x->p);
            break;
        }
        after = x->p->changes[x->p->n_changes - 1]->lcn;
        n += x->p->n_changes;
        t0 = cpu_s();
        ps_buf_init(&x->frame);
        if (ps_msg_pack_frame(&x->frame, PS_MSG_PUSH, (uint32_t)npush + 1, &x->p->base) ||
            ps_frame_compress(&x->frame, 0))
            die("frame", NULL);
        t_frame += cpu_s() - t0;
        npush++;
    }
    /* Server: decode each frame, apply GROUP pushes per transaction. */
    for (size_t i = 0; i < npush; i++) {
        push_t *x = &pushes[i];
        const uint8_t *f = ps_buf_head(&x->frame), *body;
        ps_buf_t zin;
        ProtobufCMessage *m = NULL;
        size_t len;
        ps_buf_init(&zin);
        t0 = cpu_s();
        if (ps_frame_plain_body(f + PS_FRAME_HDR, ps_buf_size(&x->frame) - PS_FRAME_HDR,
                                (f[5] & PS_FRAME_FLAG_ZSTD) != 0, (size_t)64 << 20, &zin, &body, &len) ||
            ps_msg_unpack_arena(PS_MSG_PUSH, body, len, &x->arena, &m))
            die("decode", NULL);
        t_decode += cpu_s() - t0;
        ps_buf_free(&zin);
        x->job.push = (Popsync__Push *)m;
        x->job.peer = peer;
        memcpy(x->job.node, ps_cache_meta(c)->node, PS_ID_LEN);
    }
    for (size_t i = 0; i < npush; i += (size_t)group) {
        size_t end = i + (size_t)group < npush ? i + (size_t)group : npush;
        for (size_t j = i; j + 1 < end; j++)
            pushes[j].job.next = &pushes[j + 1].job;
        t0 = cpu_s();
        if (ps_store_apply(st, &pushes[i].job))
            die("apply", NULL);
        t_apply += cpu_s() - t0;
        for (size_t j = i; j < end; j++)
            accepted += pushes[j].job.accepted;
    }
    /* Client: the answers. */
    for (size_t i = 0; i < npush; i++) {
        t0 = cpu_s();
        ack(c, &pushes[i]);
        t_ack += cpu_s() - t0;
        ps_push_job_results_free(&pushes[i].job);
        ps_msg_arena_free(pushes[i].arena);
        ps_cache_push_free(pushes[i].p);
        ps_buf_free(&pushes[i].frame);
    }
    printf("%zu changes in %zu pushes, %zu accepted; CPU us per change:\n", n, npush, accepted);
    printf("client read %.3f  frame %.3f  ack %.3f  | server decode %.3f  apply %.3f  | client %.3f server %.3f\n",
           t_read * 1e6 / (double)n, t_frame * 1e6 / (double)n, t_ack * 1e6 / (double)n,
           t_decode * 1e6 / (double)n, t_apply * 1e6 / (double)n, (t_read + t_frame + t_ack) * 1e6 / (double)n,
           (t_decode + t_apply) * 1e6 / (double)n);
    ps_store_close(st);
    ps_orgunits_free(units);
    ps_cache_close(c);
    free(pushes);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        fprintf(stderr, "ps_applybench: could not remove %s\n", g_root);
    return accepted == n ? 0 : 1;
}
