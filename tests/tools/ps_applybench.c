/* ps_applybench.c - ingest's CPU per record, stage by stage, in one process
 * (issue 17; docs/performance.md §a1).
 *
 * usage: ps_applybench [PERSONS [GROUP [EDITS]]]  (PERSONS default 12500:
 *                                          one township of the 100,000-person
 *                                          benchmark; GROUP: pushes per
 *                                          group commit, default 8; EDITS:
 *                                          rounds of edits after the ingest,
 *                                          default 0)
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
 * With EDITS, each round then edits one person in a hundred (the phone, as
 * popsync-bench's phase c does), pushes and applies those edits the same
 * way, and the edit rounds are reported apart (issue 17 §c2: the server's
 * work per edit of an existing record).
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
#include "record_fmt.h"
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

/* CPU seconds of one round: the outbox pushed, applied and acked. */
typedef struct round {
    double read, frame, decode, apply, ack;
    size_t n, npush, accepted;
} round_t;

static void report(const char *what, const round_t *r)
{
    double n = r->n ? (double)r->n : 1;
    printf("%s: %zu changes in %zu pushes, %zu accepted; CPU us per change:\n", what, r->n, r->npush, r->accepted);
    printf("client read %.3f  frame %.3f  ack %.3f  | server decode %.3f  apply %.3f  | client %.3f server %.3f\n",
           r->read * 1e6 / n, r->frame * 1e6 / n, r->ack * 1e6 / n, r->decode * 1e6 / n, r->apply * 1e6 / n,
           (r->read + r->frame + r->ack) * 1e6 / n, (r->decode + r->apply) * 1e6 / n);
}

static void run_round(ps_cache_t *c, ps_store_t *st, ps_peer_t peer, int group, round_t *r)
{
    double t_read = 0, t_frame = 0, t_decode = 0, t_apply = 0, t_ack = 0, t0;
    size_t n = 0, npush = 0, cap = 64, accepted = 0;
    push_t *pushes = calloc(cap, sizeof(*pushes));
    uint64_t after = 0;

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
    r->read = t_read;
    r->frame = t_frame;
    r->decode = t_decode;
    r->apply = t_apply;
    r->ack = t_ack;
    r->n = n;
    r->npush = npush;
    r->accepted = accepted;
    free(pushes);
}

/* Edits one person in a hundred (their phone), as popsync-bench's phase c
 * does: edits of existing records spread over the store. */
typedef struct pick {
    Popsync__Record **recs;
    size_t n, seen, cap;
} pick_t;

static int pick_cb(Popsync__Record *r, void *arg)
{
    pick_t *p = arg;
    size_t sz;
    uint8_t *b;
    if (r->deleted || r->kind != POPSYNC__KIND__KIND_PERSON || p->seen++ % 100 != 0 || p->n == p->cap)
        return 0;
    sz = protobuf_c_message_get_packed_size(&r->base);
    if (!(b = malloc(sz ? sz : 1)))
        die("malloc", NULL);
    protobuf_c_message_pack(&r->base, b);
    p->recs[p->n++] = popsync__record__unpack(NULL, sz, b);
    free(b);
    return 0;
}

static size_t edit_one_percent(ps_cache_t *c, int round)
{
    ps_cache_counts_t cn;
    pick_t p;
    char err[512], phone[16];
    snprintf(phone, sizeof(phone), "139000000%02d", round % 100);
    ps_cache_counts(c, &cn);
    memset(&p, 0, sizeof(p));
    p.cap = cn.records / 100 + 1;
    p.recs = calloc(p.cap, sizeof(*p.recs));
    ps_cache_foreach(c, pick_cb, &p);
    for (size_t i = 0; i < p.n; i++)
        if (ps_record_set(p.recs[i], "phone", phone, err, sizeof(err)))
            die("editing", err);
    if (p.n && ps_cache_put_local_many(c, p.recs, p.n))
        die("editing", NULL);
    for (size_t i = 0; i < p.n; i++)
        protobuf_c_message_free_unpacked(&p.recs[i]->base, NULL);
    free(p.recs);
    return p.n;
}

int main(int argc, char **argv)
{
    const char *persons = argc > 1 ? argv[1] : "12500";
    int group = argc > 2 ? atoi(argv[2]) : 8;
    int edits = argc > 3 ? atoi(argv[3]) : 0;
    char *gargv[] = {"generate", "--persons", (char *)persons, "--seed", "1", NULL};
    char cmd[300], err[512];
    round_t ingest, edit;
    ps_orgunits_t *units = NULL;
    ps_peer_t peer = admin();
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

    memset(&edit, 0, sizeof(edit));
    run_round(c, st, peer, group, &ingest);
    report("ingest", &ingest);
    for (int i = 0; i < edits; i++) {
        round_t er;
        edit_one_percent(c, i);
        run_round(c, st, peer, group, &er);
        edit.apply += er.apply;
        edit.decode += er.decode;
        edit.read += er.read;
        edit.frame += er.frame;
        edit.ack += er.ack;
        edit.n += er.n;
        edit.npush += er.npush;
        edit.accepted += er.accepted;
    }
    if (edits)
        report("edits (1% of the persons' phones, per round)", &edit);
    ps_store_close(st);
    ps_orgunits_free(units);
    ps_cache_close(c);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
    if (system(cmd) != 0)
        fprintf(stderr, "ps_applybench: could not remove %s\n", g_root);
    return ingest.accepted == ingest.n && edit.accepted == edit.n ? 0 : 1;
}
