/* upstream_cmd.c - offline subcommands of the upward stream (issue 19):
 *   popsyncd status --data DIR
 *   popsyncd rebuild --from-upstream --data DIR (--config FILE | --urls URLS --district CODE)
 *                    [--advance-head N]
 *
 * Owns: what status prints and the rebuild procedure (docs/upstream.md
 * "Rebuild").  These open the store directly, like admin_cmd.c's.
 */
#include "server.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "store_upstream.h"
#include "store_migrants.h"
#include "upstream.h"
#include "natsconn.h"

#include <mbedtls/base64.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REBUILD_BATCH 2000
#define FOREIGN_BATCH 256

static int open_store(const char *dir, ps_store_t **st)
{
    ps_store_opts_t so;
    char err[512];
    memset(&so, 0, sizeof(so));
    so.map_size = (size_t)1024 << 20;
    if (ps_store_open(st, dir, &so, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsyncd: %s\n", err);
        return 1;
    }
    return 0;
}

/* popsyncd status --data DIR: the feed head and the upstream lag. */
int ps_upstream_cmd_status(int argc, char **argv)
{
    static const struct option lo[] = {{"data", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    const char *dir = NULL;
    ps_store_t *st = NULL;
    uint64_t live = 0, total = 0, mark = 0, behind = 0, oldest = 0, now = ps_now_ms();
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt != 'd')
            return 2;
        dir = optarg;
    }
    if (!dir || optind != argc) {
        fprintf(stderr, "usage: popsyncd status --data DIR\n");
        return 2;
    }
    if ((rc = open_store(dir, &st)))
        return rc;
    if ((rc = ps_store_count(st, &live, &total)) || (rc = ps_store_upstream_mark(st, &mark)) ||
        (rc = ps_store_feed_behind(st, mark, &behind, &oldest))) {
        fprintf(stderr, "popsyncd: status: %s\n", ps_strerror(rc));
        ps_store_close(st);
        return 1;
    }
    printf("feed head:          %llu\n", (unsigned long long)ps_store_head(st));
    printf("records:            %llu (%llu live)\n", (unsigned long long)total, (unsigned long long)live);
    printf("upstream published: up to seq %llu\n", (unsigned long long)mark);
    printf("upstream lag:       %llu records", (unsigned long long)behind);
    if (behind && oldest && now > oldest)
        printf(", oldest waiting %llu s", (unsigned long long)((now - oldest) / 1000));
    printf("\n");
    ps_store_close(st);
    return 0;
}

/* --- rebuild --------------------------------------------------------------------- */

typedef struct rebuild_ctx {
    ps_store_t *st;
    const char *district;
    ps_rebuild_item_t items[REBUILD_BATCH];
    natsMsg *held[REBUILD_BATCH];
    char *lineage[REBUILD_BATCH]; /* each item's Popsync-Lineage, or NULL */
    size_t n, bad, records, exits;
    uint8_t *nodes;       /* the latest node marks seen, and the head they belong to */
    size_t nodes_len;
    uint64_t nodes_head;
    int shared;           /* a migration shared with another district was seen */
    int rc;
} rebuild_ctx_t;

static int flush(rebuild_ctx_t *x)
{
    int rc = x->n ? ps_store_rebuild_put(x->st, x->items, x->n, &x->bad) : PS_OK;
    for (size_t i = 0; i < x->n; i++) {
        natsMsg_Destroy(x->held[i]);
        free(x->lineage[i]);
        x->lineage[i] = NULL;
    }
    x->n = 0;
    return rc;
}

static int header_u64(natsMsg *m, const char *key, uint64_t *v)
{
    const char *s = NULL;
    char *end;
    if (natsMsgHeader_Get(m, key, &s) != NATS_OK || !s || !*s)
        return PS_EINVAL;
    *v = strtoull(s, &end, 10);
    return *end ? PS_EINVAL : PS_OK;
}

static int on_msg(natsMsg *m, uint64_t stream_seq, void *arg)
{
    rebuild_ctx_t *x = arg;
    const char *kind = NULL, *district = NULL, *lineage = NULL;
    uint64_t seq;
    natsMsg *keep = NULL;
    (void)stream_seq;

    if (ps_upstream_is_copy(natsMsg_GetSubject(m)))
        return PS_OK; /* a copy of one of our migration messages for another district (§7) */
    if (natsMsgHeader_Get(m, "Popsync-District", &district) != NATS_OK || !district ||
        strcmp(district, x->district) != 0 || natsMsgHeader_Get(m, "Popsync-Kind", &kind) != NATS_OK || !kind ||
        header_u64(m, "Popsync-Seq", &seq) != PS_OK) {
        x->bad++;
        return PS_OK;
    }
    if (strcmp(kind, "_nodes") == 0) {
        /* Only the latest marks count: they are consistent with every entry up to their head. */
        if (seq >= x->nodes_head) {
            size_t len = (size_t)natsMsg_GetDataLength(m);
            uint8_t *p = malloc(len ? len : 1);
            if (!p)
                return PS_ENOMEM;
            memcpy(p, natsMsg_GetData(m), len);
            free(x->nodes);
            x->nodes = p;
            x->nodes_len = len;
            x->nodes_head = seq;
        }
        return PS_OK;
    }
    /* The scan destroys m after this call: keep our own copy until the batch is written. */
    if (natsMsg_Create(&keep, natsMsg_GetSubject(m), NULL, natsMsg_GetData(m), natsMsg_GetDataLength(m)) != NATS_OK)
        return PS_ENOMEM;
    x->held[x->n] = keep;
    x->items[x->n].seq = seq;
    x->items[x->n].exit = strcmp(kind, "_exit") == 0;
    x->items[x->n].data = (const uint8_t *)natsMsg_GetData(keep);
    x->items[x->n].len = (size_t)natsMsg_GetDataLength(keep);
    x->items[x->n].lineage = NULL;
    if (strcmp(kind, "migration") == 0 && natsMsgHeader_Get(m, "Popsync-Lineage", &lineage) == NATS_OK && lineage &&
        *lineage) {
        /* The second pass restores `foreign` from the lineages (docs/upstream.md §6). */
        if (!(x->lineage[x->n] = strdup(lineage))) {
            natsMsg_Destroy(keep);
            return PS_ENOMEM;
        }
        x->items[x->n].lineage = x->lineage[x->n];
    }
    if (strcmp(kind, "migration") == 0) {
        const char *unit = NULL, *other = NULL;
        if ((natsMsgHeader_Get(m, "Popsync-Unit", &unit) == NATS_OK && unit &&
             !ps_foreign_in_district(unit, x->district)) ||
            (natsMsgHeader_Get(m, "Popsync-Other", &other) == NATS_OK && other && *other &&
             !ps_foreign_in_district(other, x->district)))
            x->shared = 1;
    }
    if (x->items[x->n].exit)
        x->exits++;
    else
        x->records++;
    if (++x->n == REBUILD_BATCH)
        return flush(x);
    return PS_OK;
}

/* The second pass: other districts' migrations, for `foreign` (what they
 * sent us of the shared cases we hold: summaries, merged versions). */
typedef struct foreign_ctx {
    ps_store_t *st;
    const char *district;
    ps_foreign_item_t items[FOREIGN_BATCH];
    uint8_t *data[FOREIGN_BATCH];
    uint8_t summary[FOREIGN_BATCH][PS_MIGRANT_SUMMARY_BYTES];
    size_t n, kept;
} foreign_ctx_t;

static int foreign_flush(foreign_ctx_t *f)
{
    int rc = f->n ? ps_store_rebuild_foreign(f->st, f->items, f->n, &f->kept) : PS_OK;
    for (size_t i = 0; i < f->n; i++) {
        free(f->data[i]);
        f->data[i] = NULL;
    }
    f->n = 0;
    return rc;
}

static int on_foreign(natsMsg *m, uint64_t stream_seq, void *arg)
{
    foreign_ctx_t *f = arg;
    ps_foreign_item_t *it = &f->items[f->n];
    const char *district = NULL, *sum = NULL;
    size_t len = (size_t)natsMsg_GetDataLength(m), olen = 0;
    (void)stream_seq;

    if (natsMsgHeader_Get(m, "Popsync-District", &district) != NATS_OK || !district || strlen(district) != 12 ||
        strcmp(district, f->district) == 0)
        return PS_OK; /* ours: written by the first pass */
    if (!ps_upstream_sent_by(natsMsg_GetSubject(m), district))
        return PS_OK; /* not its sender's subject: not believed, as by the consumer */
    memset(it, 0, sizeof(*it));
    if (!(f->data[f->n] = malloc(len ? len : 1)))
        return PS_ENOMEM;
    memcpy(f->data[f->n], natsMsg_GetData(m), len);
    it->data = f->data[f->n];
    it->len = len;
    snprintf(it->district, sizeof(it->district), "%s", district);
    if (natsMsgHeader_Get(m, "Popsync-Migrant", &sum) == NATS_OK && sum && *sum &&
        mbedtls_base64_decode(f->summary[f->n], sizeof(f->summary[f->n]), &olen, (const unsigned char *)sum,
                              strlen(sum)) == 0 && olen) {
        it->summary = f->summary[f->n];
        it->summary_len = olen;
    }
    if (++f->n == FOREIGN_BATCH)
        return foreign_flush(f);
    return PS_OK;
}

/* Restores `foreign` (docs/upstream.md §6): reads every district's
 * migrations (also with migrants = addressed: cases sent before their
 * senders made copies are only there); the store keeps what our published
 * lineages name. */
static int rebuild_foreign(jsCtx *js, ps_store_t *st, const char *district, int shared, size_t *kept, char *err,
                           size_t errlen)
{
    foreign_ctx_t *f;
    uint64_t count = 0;
    int rc = PS_OK;

    *kept = 0;
    if (shared) {
        if (!(f = calloc(1, sizeof(*f))))
            return PS_ENOMEM;
        f->st = st;
        f->district = district;
        rc = ps_upstream_scan(js, "popsync.*.migration", on_foreign, f, &count, err, errlen);
        if (rc == PS_OK)
            rc = foreign_flush(f);
        else
            foreign_flush(f);
        *kept = f->kept;
        free(f);
    }
    /* The lineages were the first pass's notes for this pass only. */
    return rc ? rc : ps_store_rebuild_foreign_end(st);
}

static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;
    if (!d)
        return errno == ENOENT;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = 0;
    closedir(d);
    return empty;
}

static int rebuild_usage(void)
{
    fprintf(stderr, "usage: popsyncd rebuild --from-upstream --data DIR (--config FILE | --urls URLS --district CODE)\n"
                    "                        [--advance-head N]\n"
                    "  makes store DIR (new, or an empty directory) from this district's records in the\n"
                    "  JetStream stream (latest revision of each, tombstones, node marks); the feed head\n"
                    "  then moves on by N (default 1000000000), as after a restore\n");
    return 2;
}

/* The rebuild, step by step as docs/upstream.md "Rebuild" tells it: kept
 * in one function (about 95 lines) so the procedure reads in order. */
int ps_upstream_cmd_rebuild(int argc, char **argv)
{
    static const struct option lo[] = {{"from-upstream", no_argument, NULL, 'u'}, {"data", required_argument, NULL, 'd'},
                                       {"config", required_argument, NULL, 'c'}, {"urls", required_argument, NULL, 'U'},
                                       {"district", required_argument, NULL, 'D'},
                                       {"advance-head", required_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
    ps_server_opts_t so;
    ps_config_t cfg;
    ps_upstream_opts_t uo;
    rebuild_ctx_t *x = NULL;
    ps_natsconn_t conn = {0}; /* closed at out: whether opened or not */
    jsCtx *js = NULL;
    char err[512] = "", filter[64], *end;
    uint64_t count = 0, advance = 1000000000ull, head;
    size_t kept = 0;
    int opt, from = 0, rc = 1;

    memset(&so, 0, sizeof(so));
    if (ps_config_prepare(&cfg, argc, argv, &so))
        return 2;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'u': from = 1; break;
        case 'd': so.data_dir = optarg; break;
        case 'c': break; /* read by ps_config_prepare */
        case 'U': so.upstream_urls = optarg; break;
        case 'D': so.upstream_district = optarg; break;
        case 'a':
            advance = strtoull(optarg, &end, 10);
            if (*end || optarg[0] == '-' || !*optarg)
                return rebuild_usage();
            break;
        default: return rebuild_usage();
        }
    }
    if (!from || !so.data_dir || optind != argc)
        return rebuild_usage();
    ps_config_upstream_opts(&so, &uo);
    if (ps_upstream_check(&uo, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsyncd: rebuild: %s (--urls, --district or --config)\n", err);
        return 2;
    }
    if (!dir_is_empty(so.data_dir)) {
        fprintf(stderr, "popsyncd: rebuild: %s is not empty: rebuild only into a new or empty directory\n",
                so.data_dir);
        return 1;
    }
    if (!(x = calloc(1, sizeof(*x))))
        return 1;
    x->district = uo.district;
    if (open_store(so.data_dir, &x->st) || ps_store_set_home(x->st, uo.district) != PS_OK)
        goto out;
    ps_natsconn_init(&conn, "rebuild", &uo, NULL, 0);
    if (ps_natsconn_open(&conn, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsyncd: rebuild: %s\n", *err ? err : "NATS is not connected");
        goto out;
    }
    js = conn.js;
    snprintf(filter, sizeof(filter), "popsync.%s.>", uo.district);
    if ((x->rc = ps_upstream_scan(js, filter, on_msg, x, &count, err, sizeof(err))) == PS_OK)
        x->rc = flush(x);
    else
        flush(x);
    if (x->rc) {
        fprintf(stderr, "popsyncd: rebuild: %s\n", *err ? err : ps_strerror(x->rc));
        goto out;
    }
    if (x->nodes && (x->rc = ps_store_rebuild_nodes(x->st, x->nodes, x->nodes_len))) {
        fprintf(stderr, "popsyncd: rebuild: node marks: %s\n", ps_strerror(x->rc));
        goto out;
    }
    if ((x->rc = rebuild_foreign(js, x->st, uo.district, x->shared, &kept, err, sizeof(err)))) {
        fprintf(stderr, "popsyncd: rebuild: other districts' versions of shared cases: %s\n",
                *err ? err : ps_strerror(x->rc));
        goto out;
    }
    if ((x->rc = ps_store_rebuild_advance(x->st, advance, &head))) {
        fprintf(stderr, "popsyncd: rebuild: advancing the head: %s\n", ps_strerror(x->rc));
        goto out;
    }
    printf("rebuilt %s from stream %s: %llu messages, %zu record changes, %zu scope exits, %zu skipped;\n"
           "%zu versions of other districts for shared cases; node marks as of seq %llu%s; feed head %llu\n",
           so.data_dir, PS_UPSTREAM_STREAM, (unsigned long long)count, x->records, x->exits, x->bad, kept,
           (unsigned long long)x->nodes_head, x->nodes ? "" : " (none published: every cache resends its outbox)",
           (unsigned long long)head);
    rc = 0;
out:
    ps_natsconn_close(&conn);
    if (x) {
        if (x->st)
            ps_store_close(x->st);
        free(x->nodes);
        for (size_t i = 0; i < REBUILD_BATCH; i++)
            free(x->lineage[i]);
        free(x);
    }
    ps_natsconn_shutdown();
    return rc;
}
