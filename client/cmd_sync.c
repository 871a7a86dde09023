/* cmd_sync.c - the init, sync and status subcommands. */
#include "cli.h"
#include "cache.h"
#include "err.h"
#include "fields.h"
#include "i18n.h"
#include "ids.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "report.h"
#include "link.h"
#include "rq.h"
#include "sync.h"
#include "tls.h"
#include "tz.h"
#include "wire.pb-c.h"
#include "keys.h"
#include "paths.h"

#include <jansson.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* in made absolute for the cache to remember; it must exist. */
static int abs_path(const char *in, char out[PATH_MAX])
{
    char err[PATH_MAX + 64];
    if (access(in, F_OK) != 0) {
        ps_cli_err("cannot find %s", in);
        return PS_ENOTFOUND;
    }
    if (ps_abs_path(in, out, err, sizeof(err))) {
        ps_cli_err("%s", err);
        return PS_EIO;
    }
    return PS_OK;
}

/* The cache's identity (role, unit, name) from its certificate, loaded now
 * so that a wrong file is reported at init, not at the first sync. */
static int init_identity(ps_cache_meta_t *m)
{
    ps_tls_conf_t *conf = NULL;
    char err[512];
    if (ps_tls_conf_new(&conf, PS_TLS_CLIENT, m->ca, m->cert, m->key, NULL, err, sizeof(err))) {
        ps_cli_err("init: %s", err);
        return PS_EXIT_FAIL;
    }
    snprintf(m->role, sizeof(m->role), "%s", ps_tls_conf_self(conf)->role_name);
    snprintf(m->orgunit, sizeof(m->orgunit), "%s", ps_tls_conf_self(conf)->orgunit);
    snprintf(m->name, sizeof(m->name), "%s", ps_tls_conf_self(conf)->name);
    ps_tls_conf_free(conf);
    return PS_EXIT_OK;
}

/* The org-unit file given to init, kept in the new cache. */
static int init_units(ps_cache_t *c, const char *units)
{
    ps_orgunits_t *t = NULL;
    const uint8_t *bytes;
    size_t len;
    char err[512];
    int rc = ps_orgunits_load(units, &t, err, sizeof(err));
    if (rc == PS_OK) {
        bytes = ps_orgunits_bytes(t, &len);
        rc = ps_cache_set_orgunits(c, bytes, len, ps_orgunits_digest(t));
    }
    ps_orgunits_free(t);
    return rc;
}

int ps_cmd_init(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"server", required_argument, NULL, 's'},
                                       {"ca", required_argument, NULL, 'a'},
                                       {"cert", required_argument, NULL, 'c'},
                                       {"key", required_argument, NULL, 'k'},
                                       {"server-name", required_argument, NULL, 'n'},
                                       {"orgunits", required_argument, NULL, 'o'},
                                       {"key-file", required_argument, NULL, 'K'},
                                       {NULL, 0, NULL, 0}};
    ps_cache_meta_t m;
    ps_cache_t *c = NULL;
    const char *server = NULL, *ca = NULL, *cert = NULL, *key = NULL, *sname = "popsyncd", *units = NULL;
    const char *key_file = NULL;
    char err[512];
    int opt, rc, key_file_existed = 0;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 's': server = optarg; break;
        case 'a': ca = optarg; break;
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'n': sname = optarg; break;
        case 'o': units = optarg; break;
        case 'K': key_file = optarg; break;
        default: return PS_EXIT_USAGE;
        }
    }
    if (!server || !ca || !cert || !key || optind < argc) {
        ps_cli_err("init: --server, --ca, --cert and --key are required");
        return PS_EXIT_USAGE;
    }
    memset(&m, 0, sizeof(m));
    snprintf(m.server, sizeof(m.server), "%s", server);
    snprintf(m.server_name, sizeof(m.server_name), "%s", sname);
    if (abs_path(ca, m.ca) || abs_path(cert, m.cert) || abs_path(key, m.key) || init_identity(&m))
        return PS_EXIT_FAIL;
    if (ps_random(m.node, sizeof(m.node))) {
        ps_cli_err("init: no randomness available");
        return PS_EXIT_FAIL;
    }
    if (units) {
        /* Check the file before making the cache, so a bad file leaves nothing behind. */
        ps_orgunits_t *t = NULL;
        if (ps_orgunits_load(units, &t, err, sizeof(err)) != PS_OK) {
            ps_cli_err("init: org units %s: %s", units, err);
            return PS_EXIT_FAIL;
        }
        ps_orgunits_free(t);
    }
    /* The cache is always encrypted: under --key-file (or POPSYNC_KEY_FILE),
     * else a passphrase (POPSYNC_PASSPHRASE or asked twice on the terminal). */
    if (!key_file)
        key_file = ps_keys_env_key_file();
    if (key_file) {
        snprintf(m.key_file, sizeof(m.key_file), "%s", key_file);
        key_file_existed = access(key_file, F_OK) == 0;
    }
    rc = ps_cache_create_open(&c, cli->data_dir, &m, err, sizeof(err));
    if (rc) {
        ps_cli_err("init: %s", err);
        return PS_EXIT_FAIL;
    }
    if (units && (rc = init_units(c, units))) {
        ps_cli_err("init: storing org units: %s", ps_strerror(rc));
        ps_cache_close(c);
        return PS_EXIT_FAIL;
    }
    {
        char hex[33];
        ps_hex(m.node, PS_ID_LEN, hex);
        printf("initialised cache %s: node %s, role %s, org unit %s, server %s\n", cli->data_dir, hex, m.role,
               m.orgunit, m.server);
        if (key_file && !key_file_existed)
            printf("made key file %s: keep a copy apart from the device; without it the cache cannot be read\n",
                   ps_cache_meta(c)->key_file);
    }
    ps_cache_close(c);
    return PS_EXIT_OK;
}

/* Tells the clerk the device's clock is wrong (skew_ms = device minus
 * server); retimed: changes of this sync whose time the server moved. */
static void clock_warning(int64_t skew_ms, uint64_t retimed)
{
    uint64_t a = (uint64_t)(skew_ms < 0 ? -skew_ms : skew_ms) / 1000;
    char d[64];
    if (!skew_ms)
        return;
    if (a >= 2 * 86400)
        snprintf(d, sizeof(d), "%llu days", (unsigned long long)(a / 86400));
    else if (a >= 3600)
        snprintf(d, sizeof(d), "%llu h %llu min", (unsigned long long)(a / 3600), (unsigned long long)(a % 3600 / 60));
    else if (a >= 60)
        snprintf(d, sizeof(d), "%llu min %llu s", (unsigned long long)(a / 60), (unsigned long long)(a % 60));
    else
        snprintf(d, sizeof(d), "%llu s", (unsigned long long)a);
    ps_cli_err("warning: this computer's clock is %s %s the server's; set its date, time and time zone right. "
               "Until then popsync times edits by the server's clock%s",
               d, skew_ms > 0 ? "ahead of" : "behind",
               retimed ? ", and the server re-timed the changes this sync sent" : "");
}

/* Counts the open conflicts the server lists after the sync, so that
 * `popsync status` gives the number `popsync conflicts list` shows. */
static void count_conflicts(const Popsync__ConflictListResult *res, void *arg)
{
    uint64_t *n = arg;
    *n = 0;
    for (size_t i = 0; i < res->n_conflicts; i++)
        if (!res->conflicts[i]->resolved)
            (*n)++;
}

/* A sync that did not complete: what failed and what to do, never a
 * summary of zeros that reads like success. */
static void print_failure(ps_cache_t *c, const char *err)
{
    uint64_t pending = 0;
    ps_cache_outbox_count(c, &pending);
    if (ps_report_lang_zh(NULL) == 1) {
        ps_cli_err("同步失败：%s", err);
        ps_cli_err("  没有丢失任何内容：%llu 条修改仍在本机缓存中，下次同步时发送；失败前已收到的内容已保存",
                   (unsigned long long)pending);
        ps_cli_err("  怎么办：检查网络，并确认区县服务器 %s 正在运行（地址和名称见 'popsync config show'），"
                   "然后再运行 'popsync sync'",
                   ps_cache_meta(c)->server);
        return;
    }
    ps_cli_err("sync failed: %s", err);
    ps_cli_err("  nothing is lost: %llu change(s) wait in this cache and are sent by the next sync; what was "
               "received before the failure is kept",
               (unsigned long long)pending);
    ps_cli_err("  what to do: check the network and that the server %s is running (the address and names: "
               "'popsync config show'), then run 'popsync sync' again",
               ps_cache_meta(c)->server);
}

static int sync_cmd(ps_cli_t *cli, int argc, char **argv);

int ps_cmd_sync(ps_cli_t *cli, int argc, char **argv)
{
    int lock = ps_cli_sync_lock(cli->data_dir, "sync"), rc;

    if (lock < 0)
        return PS_EXIT_FAIL;
    rc = sync_cmd(cli, argc, argv);
    close(lock);
    return rc;
}

/* The --json summary of a sync: one line, also when it failed. */
static void print_json(const ps_sync_stats_t *st, int rc, const char *err)
{
    json_t *j = json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:I,s:I}", "ok", rc == PS_OK, "conflicts",
                          (json_int_t)(st->conflicts + st->merged_conflicts), "conflicts_lost",
                          (json_int_t)st->conflicts_lost, "accepted",
                          (json_int_t)st->accepted, "duplicate", (json_int_t)st->duplicate, "rejected",
                          (json_int_t)st->rejected, "pulled", (json_int_t)st->pulled, "cursor",
                          ps_json_u64(st->cursor), "head", ps_json_u64(st->head), "bytes_in",
                          (json_int_t)st->bytes_in, "bytes_out", (json_int_t)st->bytes_out);
    if (rc)
        json_object_set_new(j, "error", json_string(err));
    json_object_set_new(j, "clock_skew_ms", ps_json_i64(st->clock_skew_ms));
    json_object_set_new(j, "retimed", json_integer((json_int_t)st->retimed));
    json_object_set_new(j, "max_in_flight", json_integer((json_int_t)st->max_in_flight));
    json_dumpf(j, stdout, JSON_COMPACT);
    fputc('\n', stdout);
    json_decref(j);
}

static int sync_cmd(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"quiet", no_argument, NULL, 'q'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"batch", required_argument, NULL, 'b'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {NULL, 0, NULL, 0}};
    ps_cache_t *c = NULL;
    ps_sync_stats_t st;
    char err[512];
    uint32_t batch = 0;
    uint64_t timeout_ms = 0;
    int opt, rc, quiet = 0, zh = ps_report_lang_zh(NULL) == 1;
    uint64_t nconf = 0;

    while ((opt = getopt_long(argc, argv, "q", lo, NULL)) != -1) {
        switch (opt) {
        case 'q': quiet = 1; break;
        case 'j': cli->json = 1; break;
        case 'b': batch = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 't': timeout_ms = strtoull(optarg, NULL, 10); break;
        default: return PS_EXIT_USAGE;
        }
    }
    if ((rc = ps_cache_open(&c, cli->data_dir, err, sizeof(err)))) {
        ps_cli_err("sync: %s", err);
        return PS_EXIT_FAIL;
    }
    rc = ps_sync_with_conflicts(c, batch, !quiet && !cli->json && isatty(2) ? PS_SYNC_PROGRESS : 0, timeout_ms, &st,
                                count_conflicts, &nconf, err, sizeof(err));
    if (rc == PS_OK)
        ps_cache_set_conflicts_open(c, nconf);
    if (cli->json) {
        print_json(&st, rc, err);
    } else if (!quiet && rc == PS_OK) {
        printf("pushed %llu (%llu duplicate, %llu rejected, %llu conflicts), pulled %llu, cursor %llu\n",
               (unsigned long long)st.accepted, (unsigned long long)st.duplicate, (unsigned long long)st.rejected,
               (unsigned long long)(st.conflicts + st.merged_conflicts), (unsigned long long)st.pulled,
               (unsigned long long)st.cursor);
    }
    if ((st.conflicts || st.merged_conflicts) && !cli->json)
        ps_cli_err(zh ? "sync: %llu 条修改与他人的修改冲突，已作为冲突保留；请用 'popsync conflicts list' 查看"
                      : "sync: %llu change(s) clashed with other edits and were kept as conflicts; see 'popsync conflicts list'",
                   (unsigned long long)(st.conflicts + st.merged_conflicts));
    if (st.conflicts_lost && !cli->json)
        ps_cli_err(zh ? "sync: 有 %llu 处未解决的冲突中本机的修改未被采用；请用 'popsync conflicts list' 查看"
                        "（--keep mine 可恢复本机的修改）"
                      : "sync: %llu open conflict(s) where an edit made in this cache lost to another; look at them with "
                        "'popsync conflicts list' (--keep mine puts yours back)",
                   (unsigned long long)st.conflicts_lost);
    if (st.rejected && !cli->json)
        ps_cli_err(zh ? "sync: %llu 条修改被服务器退回，已完整保留在本机缓存中；请用 'popsync refused edit ID' 改正"
                        "（见 'popsync refused list'）"
                      : "sync: %llu change(s) were refused by the server and are kept in this cache; correct them "
                        "with 'popsync refused edit ID' (see 'popsync refused list')",
                   (unsigned long long)st.rejected);
    if (rc == PS_OK && !st.rejected && !cli->json) {
        /* Refusals from earlier syncs stay until corrected or discarded. */
        uint64_t kept = 0;
        if (ps_cache_refused_count(c, &kept) == PS_OK && kept)
            ps_cli_err(zh ? "sync: 以前同步时被退回的 %llu 条修改仍在等待改正；见 'popsync refused list'"
                          : "sync: %llu refused change(s) kept from earlier syncs; see 'popsync refused list'",
                       (unsigned long long)kept);
    }
    if (!cli->json)
        clock_warning(st.clock_skew_ms ? st.clock_skew_ms : st.push_clock_skew_ms, st.retimed);
    if (rc && !cli->json)
        print_failure(c, err);
    ps_cache_close(c);
    if (rc)
        return PS_EXIT_SYNC;
    /* Completed, but not everything pushed was taken as sent. */
    if (st.rejected || st.conflicts || st.merged_conflicts)
        return PS_EXIT_REFUSED;
    return PS_EXIT_OK;
}

typedef struct rejected_out {
    json_t *arr; /* not NULL: append each entry here */
    int zh;      /* text lines in Chinese */
} rejected_out_t;

static int print_rejected(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg)
{
    const rejected_out_t *o = arg;
    json_t *arr = o->arr;
    char id[PS_UUID_STR] = "";
    if (ch->record && ch->record->id.len == PS_ID_LEN)
        ps_uuid_format(ch->record->id.data, id);
    if (arr) {
        json_t *errs = json_array();
        for (size_t i = 0; i < res->n_errors; i++)
            json_array_append_new(errs, json_pack("{s:s,s:s}", "field", res->errors[i]->field, "reason",
                                                  res->errors[i]->reason));
        json_array_append_new(arr, json_pack("{s:s,s:o,s:s,s:o}", "id", id, "lcn", ps_json_u64(ch->lcn), "status",
                                             res->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT
                                                 ? "conflict"
                                                 : "rejected",
                                             "errors", errs));
        return 0;
    }
    if (res->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT) {
        char cid[PS_UUID_STR] = "";
        if (res->conflict_id.len == PS_ID_LEN)
            ps_uuid_format(res->conflict_id.data, cid);
        printf(o->zh ? "  记录 %s 的修改已作为冲突 %s 保留（见 'popsync conflicts list'）\n"
                     : "  kept as conflict %s: record %s (see 'popsync conflicts list')\n",
               o->zh ? id : cid, o->zh ? cid : id);
        return 0;
    }
    for (size_t i = 0; i < res->n_errors; i++) {
        const Popsync__FieldError *e = res->errors[i];
        const ps_field_t *f = o->zh && ch->record ? ps_field_find((int)ch->record->kind, e->field) : NULL;
        char why[512];
        if (o->zh)
            printf("  被退回 %s：%s（%s）：%s\n", id, f ? f->zh : e->field, e->field,
                   ps_i18n_reason(e->reason, why, sizeof(why)));
        else
            printf("  rejected %s: %s: %s\n", id, e->field, e->reason);
    }
    return 0;
}

static void fmt_time_zh(uint64_t ms, char *out, size_t n, int zh)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms == 0) {
        snprintf(out, n, "%s", zh ? "从未" : "never");
        return;
    }
    localtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

static void fmt_time(uint64_t ms, char *out, size_t n)
{
    fmt_time_zh(ms, out, n, 0);
}

/* --- status --all (issue 9): every node that has synced, from the server --- */

/* s padded to width display columns (CJK counts 2), on the left (right 0)
 * or the right (right 1), then sep. */
static void cell(const char *s, size_t width, int right, const char *sep)
{
    size_t w = ps_utf8_width(s);
    int pad = (int)(w < width ? width - w : 0);
    if (right)
        printf("%*s%s%s", pad, "", s, sep);
    else
        printf("%s%*s%s", s, pad, "", sep);
}

/* status --all's table header: the English one as it always was. */
static void node_header(int zh)
{
    if (!zh) {
        printf("%-32s  %-16s %-9s %-12s  %-19s  %10s  %9s\n", "node", "name", "role", "org unit", "last seen",
               "behind", "conflicts");
        return;
    }
    cell("节点", 32, 0, "  ");
    cell("名称", 16, 0, " ");
    cell("角色", 9, 0, " ");
    cell("单位", 12, 0, "  ");
    cell("上次联系", 19, 0, "  ");
    cell("落后条数", 10, 1, "  ");
    cell("冲突", 9, 1, "\n");
}

static void print_node_status(const Popsync__NodeStatusResult *r, void *arg)
{
    ps_cli_t *cli = arg;
    char hex[33], when[64];
    int zh = ps_report_lang_zh(NULL) == 1;
    if (cli->json) {
        json_t *arr = json_array(), *j;
        for (size_t i = 0; i < r->n_nodes; i++) {
            const Popsync__NodeStatus *ns = r->nodes[i];
            hex[0] = '\0';
            if (ns->node.len == PS_ID_LEN)
                ps_hex(ns->node.data, PS_ID_LEN, hex);
            json_array_append_new(
                arr, json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:I,s:o,s:I,s:b}", "node", hex, "name", ns->name, "role",
                               ns->role, "orgunit", ns->orgunit, "last_seen_ms", ps_json_u64(ns->last_seen_ms),
                               "cursor", ps_json_u64(ns->cursor), "behind", (json_int_t)ns->behind, "high_water",
                               ps_json_u64(ns->high_water), "conflicts_open", (json_int_t)ns->conflicts_open,
                               "seen_since_start", ns->connected));
        }
        j = json_pack("{s:o,s:I,s:o,s:o}", "head", ps_json_u64(r->head), "conflicts_open",
                      (json_int_t)r->conflicts_open, "generated_ms", ps_json_u64(r->generated_ms), "nodes", arr);
        if (r->upstream)
            json_object_set_new(j, "upstream",
                                json_pack("{s:o,s:o,s:o,s:b}", "published_seq", ps_json_u64(r->upstream_published),
                                          "lag_records", ps_json_u64(r->upstream_lag_records), "lag_seconds",
                                          ps_json_u64(r->upstream_lag_seconds), "connected",
                                          r->upstream_connected));
        json_dumpf(j, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(j);
        return;
    }
    printf(zh ? "服务器最新位置 %llu；%llu 处未解决的冲突；%zu 台设备同步过\n"
              : "server head %llu; %llu open conflict(s); %zu node(s) have synced\n",
           (unsigned long long)r->head, (unsigned long long)r->conflicts_open, r->n_nodes);
    if (r->upstream)
        printf(zh ? "上报：已发布到序号 %llu；滞后 %llu 条记录，最早的已等待 %llu 秒%s\n"
                  : "upstream: published up to seq %llu; lag %llu records, oldest waiting %llu s%s\n",
               (unsigned long long)r->upstream_published, (unsigned long long)r->upstream_lag_records,
               (unsigned long long)r->upstream_lag_seconds,
               r->upstream_connected ? "" : (zh ? "（未连接 NATS）" : " (NATS not connected)"));
    node_header(zh);
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Popsync__NodeStatus *ns = r->nodes[i];
        hex[0] = '\0';
        if (ns->node.len == PS_ID_LEN)
            ps_hex(ns->node.data, PS_ID_LEN, hex);
        fmt_time_zh(ns->last_seen_ms, when, sizeof(when), zh);
        printf("%-32s  %-16s %-9s %-12s  %-19s  %10llu  %9llu\n", hex, ns->name, ns->role, ns->orgunit, when,
               (unsigned long long)ns->behind, (unsigned long long)ns->conflicts_open);
    }
}

static int ask_node_status(ps_link_t *l, void *cli)
{
    return ps_rq_node_status(l->s, print_node_status, cli);
}

static int status_all(ps_cli_t *cli, ps_cache_t *c)
{
    char err[512];
    int rc = ps_link_once(c, ask_node_status, cli, NULL, err, sizeof(err));
    ps_cache_close(c);
    if (rc) {
        ps_cli_err("status --all: %s", err);
        return PS_EXIT_SYNC;
    }
    return PS_EXIT_OK;
}

#define NKINDS 8 /* Kind values 0..7 (records.proto) */

/* "3 person, 1 household" (or "none"; zh: "无"): the changes waiting, by kind. */
static void pending_text(const uint64_t *by, char *out, size_t n, int zh)
{
    size_t off = 0;
    out[0] = '\0';
    for (int k = 0; k < NKINDS && off < n; k++)
        if (by[k])
            off += (size_t)snprintf(out + off, n - off, "%s%llu %s", off ? ", " : "", (unsigned long long)by[k],
                                    ps_kind_name(k) ? ps_kind_name(k) : "?");
    if (!out[0])
        snprintf(out, n, "%s", zh ? "无" : "none");
}

static json_t *pending_json(const uint64_t *by)
{
    json_t *o = json_object();
    for (int k = 0; k < NKINDS; k++)
        if (by[k])
            json_object_set_new(o, ps_kind_name(k) ? ps_kind_name(k) : "unspecified", json_integer((json_int_t)by[k]));
    return o;
}

/* The same in Chinese, for a clerk whose language is Chinese. */
static void print_sync_state_zh(const ps_cache_meta_t *m)
{
    char when[64];
    fmt_time_zh(m->last_sync_ms, when, sizeof(when), 1);
    printf("上次同步：%s%s\n", when, m->last_sync_ms ? "（已完成）" : "");
    fmt_time_zh(m->last_attempt_ms, when, sizeof(when), 1);
    if (m->last_attempt_ms && m->last_error[0])
        printf("上次尝试：%s 失败：%s\n  （服务器可以连上后请再运行 'popsync sync'）\n", when, m->last_error);
    else if (m->last_attempt_ms)
        printf("上次尝试：%s 已完成\n", when);
    else
        printf("上次尝试：从未\n");
    if (m->conflicts_known)
        printf("冲突：%llu 处未解决（上次同步时服务器列出的数目；见 'popsync conflicts list'）\n",
               (unsigned long long)m->conflicts_open);
    else
        printf("冲突：尚不知道（请运行 'popsync sync'）\n");
}

/* `popsync status` (text) in Chinese; the English form is in ps_cmd_status. */
static void print_status_zh(ps_cli_t *cli, ps_cache_t *c, const ps_cache_counts_t *n, const char *hex,
                            const char *ptext)
{
    const ps_cache_meta_t *m = ps_cache_meta(c);
    rejected_out_t ro = {NULL, 1};
    printf("缓存：    %s\n本机节点：%s\n身份：    %s（%s，单位 %s）\n服务器：  %s\n", cli->data_dir, hex, m->name,
           m->role, m->orgunit, m->server);
    printf("记录：    %llu 条（另有 %llu 条已删除）\n待上传：  %llu 条修改（%s）\n"
           "被退回：  %llu 条修改被服务器退回或作为冲突整条保留（见 'popsync refused list'）\n",
           (unsigned long long)n->records, (unsigned long long)n->deleted, (unsigned long long)n->outbox, ptext,
           (unsigned long long)n->rejected);
    print_sync_state_zh(m);
    printf("同步位置：%llu\n时区：    %s（本区的时区，用于日期）\n", (unsigned long long)m->cursor,
           *m->timezone ? m->timezone : PS_TZ_DEFAULT);
    if (n->rejected) {
        ps_cache_foreach_rejected(c, print_rejected, &ro);
        printf("请用 'popsync refused edit ID' 改正，或用 'popsync refused discard ID' 放弃\n");
    }
}

/* Last sync, last attempt and its error, conflicts (text). */
static void print_sync_state(const ps_cache_meta_t *m)
{
    char when[64];
    fmt_time(m->last_sync_ms, when, sizeof(when));
    printf("last sync: %s%s\n", when, m->last_sync_ms ? " (completed)" : "");
    fmt_time(m->last_attempt_ms, when, sizeof(when));
    if (m->last_attempt_ms && m->last_error[0])
        printf("last attempt: %s FAILED: %s\n  (run 'popsync sync' again once the server is reachable)\n", when,
               m->last_error);
    else if (m->last_attempt_ms)
        printf("last attempt: %s completed\n", when);
    else
        printf("last attempt: never\n");
    if (m->conflicts_known)
        printf("conflicts: %llu open, as the server listed them at the last sync (see 'popsync conflicts list')\n",
               (unsigned long long)m->conflicts_open);
    else
        printf("conflicts: not known yet (run 'popsync sync')\n");
}

int ps_cmd_status(ps_cli_t *cli, int argc, char **argv)
{
    uint64_t by_kind[NKINDS];
    char ptext[256];
    ps_cache_t *c = NULL;
    ps_cache_counts_t n;
    const ps_cache_meta_t *m;
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {"all", no_argument, NULL, 'a'},
                                       {NULL, 0, NULL, 0}};
    char err[512], when[64], hex[33];
    int rc, opt, all = 0, zh = ps_report_lang_zh(NULL) == 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt == 'a')
            all = 1;
        else if (opt == 'j')
            cli->json = 1;
        else
            return PS_EXIT_USAGE;
    }
    if ((rc = ps_cache_open(&c, cli->data_dir, err, sizeof(err)))) {
        ps_cli_err("status: %s", err);
        return PS_EXIT_FAIL;
    }
    if (all)
        return status_all(cli, c);
    if ((rc = ps_cache_counts(c, &n))) {
        ps_cli_err("status: %s", ps_strerror(rc));
        ps_cache_close(c);
        return PS_EXIT_FAIL;
    }
    m = ps_cache_meta(c);
    ps_hex(m->node, PS_ID_LEN, hex);
    fmt_time(m->last_sync_ms, when, sizeof(when));
    ps_cache_outbox_kinds(c, by_kind, NKINDS);
    pending_text(by_kind, ptext, sizeof(ptext), zh);
    if (cli->json) {
        json_t *rej = json_array();
        rejected_out_t ro = {rej, 0};
        json_t *j;
        ps_cache_foreach_rejected(c, print_rejected, &ro);
        j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:o,s:o,s:o}", "node", hex, "timezone",
                      *m->timezone ? m->timezone : PS_TZ_DEFAULT, "role", m->role, "orgunit",
                      m->orgunit, "name", m->name, "server", m->server, "records", (json_int_t)n.records, "deleted",
                      (json_int_t)n.deleted, "pending", (json_int_t)n.outbox, "rejected_count",
                      (json_int_t)n.rejected, "cursor", ps_json_u64(m->cursor), "last_sync_ms",
                      ps_json_u64(m->last_sync_ms), "rejected", rej);
        /* The same number under the name the CLI uses (popsync refused list). */
        json_object_set_new(j, "refused_count", json_integer((json_int_t)n.rejected));
        json_object_set_new(j, "clock_skew_ms", ps_json_i64(m->clock_skew_ms));
        json_object_set_new(j, "pending_by_kind", pending_json(by_kind));
        json_object_set_new(j, "last_attempt_ms", ps_json_u64(m->last_attempt_ms));
        json_object_set_new(j, "last_error", m->last_error[0] ? json_string(m->last_error) : json_null());
        json_object_set_new(j, "conflicts_open",
                            m->conflicts_known ? json_integer((json_int_t)m->conflicts_open) : json_null());
        json_dumpf(j, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(j);
    } else if (zh) {
        print_status_zh(cli, c, &n, hex, ptext);
        clock_warning(m->clock_skew_ms, 0);
    } else {
        rejected_out_t ro = {NULL, 0};
        printf("cache:    %s\nnode:     %s\nidentity: %s (%s, org unit %s)\nserver:   %s\n", cli->data_dir, hex,
               m->name, m->role, m->orgunit, m->server);
        printf("records:  %llu (+%llu deleted)\npending:  %llu change(s) to push (%s)\n"
               "refused:  %llu change(s) the server refused or kept whole as a conflict (see 'popsync refused list')\n",
               (unsigned long long)n.records, (unsigned long long)n.deleted, (unsigned long long)n.outbox, ptext,
               (unsigned long long)n.rejected);
        print_sync_state(m);
        printf("cursor:   %llu\ntime zone: %s (the district's, for dates)\n", (unsigned long long)m->cursor,
               *m->timezone ? m->timezone : PS_TZ_DEFAULT);
        if (n.rejected) {
            ps_cache_foreach_rejected(c, print_rejected, &ro);
            printf("correct with 'popsync refused edit ID', or drop with 'popsync refused discard ID'\n");
        }
        clock_warning(m->clock_skew_ms, 0);
    }
    ps_cache_close(c);
    return PS_EXIT_OK;
}
