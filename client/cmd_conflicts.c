/* cmd_conflicts.c - the verify and conflicts subcommands.
 *
 * verify: a normal sync, then a digest comparison of everything this cache
 * holds against the server's view of our scope; differing buckets are
 * listed and only the records that differ are fetched or dropped.
 *
 * conflicts list: what the server kept when two edits clashed (online).
 * conflicts resolve ID --keep mine|theirs|kept|lost|FILE: makes a change
 * that settles the conflict and pushes it; it then syncs to everyone like
 * any change.  "kept" keeps the record as it is now (the winning values);
 * "lost" puts back the losing side's values for the fields in conflict (for
 * a delete or scope conflict, the losing version whole); FILE is a JSON
 * object of field values to set.  "mine" and "theirs" are relative to this
 * cache: mine is the side its own edit is on (the conflict's lost_node or
 * kept_node is this cache's node), theirs the other side.  See docs/sync.md.
 */
#include "cli.h"
#include "cache.h"
#include "err.h"
#include "fields.h"
#include "i18n.h"
#include "ids.h"
#include "policy.h"
#include "record_fmt.h"
#include "report.h"
#include "link.h"
#include "rq.h"
#include "sync.h"
#include "verify.h"
#include "validate.h"
#include "vctx.h"
#include "wire.pb-c.h"

#include <jansson.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int verify_cmd(ps_cli_t *cli, int argc, char **argv);

/* verify syncs first: one sync of a cache at a time (cli_util.c). */
int ps_cmd_verify(ps_cli_t *cli, int argc, char **argv)
{
    int lock = ps_cli_sync_lock(cli->data_dir, "verify"), rc;

    if (lock < 0)
        return PS_EXIT_FAIL;
    rc = verify_cmd(cli, argc, argv);
    close(lock);
    return rc;
}

/* A sync, then the comparison, on one link; recorded as a sync attempt. */
static int run_verify(ps_cache_t *c, ps_verify_stats_t *vst, char *err, size_t errlen)
{
    ps_sync_stats_t st;
    ps_link_t *l;
    int rc;
    memset(vst, 0, sizeof(*vst));
    rc = ps_link_open(&l, NULL, c, 0, 0, NULL, err, errlen);
    if (rc == PS_OK) {
        rc = ps_sync_on(l, 0, 0, &st);
        if (rc == PS_OK && (rc = ps_verify_start(l, vst, NULL, NULL)) == PS_OK)
            rc = ps_link_run(l);
        rc = ps_link_close(l, rc, err, errlen, NULL, NULL);
    }
    ps_sync_record(c, rc, err);
    return rc;
}

static int verify_cmd(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    ps_cache_t *c = NULL;
    ps_verify_stats_t st;
    char err[512];
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt != 'j')
            return PS_EXIT_USAGE;
        cli->json = 1;
    }
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("verify: %s", err);
        return PS_EXIT_FAIL;
    }
    rc = run_verify(c, &st, err, sizeof(err));
    ps_cache_close(c);
    if (rc) {
        ps_cli_err("verify: %s", err);
        return PS_EXIT_SYNC;
    }
    if (cli->json) {
        printf("{\"in_sync\":%s,\"buckets_differed\":%llu,\"fetched\":%llu,\"dropped\":%llu}\n",
               st.buckets_differed ? "false" : "true", (unsigned long long)st.buckets_differed,
               (unsigned long long)st.repaired, (unsigned long long)st.dropped);
    } else if (st.buckets_differed == 0) {
        printf("in sync\n");
    } else {
        printf("repaired: %llu record(s) fetched, %llu dropped (%llu of 256 buckets differed)\n",
               (unsigned long long)st.repaired, (unsigned long long)st.dropped,
               (unsigned long long)st.buckets_differed);
    }
    return PS_EXIT_OK;
}

typedef struct list_ctx {
    int json;
    json_t *arr;
    size_t n;
    const uint8_t *node;          /* this cache's node: which side is ours */
    const uint8_t *want;          /* resolve: the conflict sought */
    Popsync__Conflict *found;     /* resolve: a copy of it (owned) */
    int header;                   /* the table's header was printed */
    int zh;                       /* the text table in Chinese */
    uint64_t open;                /* unresolved conflicts listed */
} list_ctx_t;

static void print_conflict(const Popsync__Conflict *cf, const uint8_t *node, int zh);

/* s then spaces up to width display columns (CJK counts 2), then sep. */
static void cell(const char *s, size_t width, const char *sep)
{
    size_t w = ps_utf8_width(s);
    printf("%s%*s%s", s, (int)(w < width ? width - w : 0), "", sep);
}

/* Which side of cf holds this cache's own edit: "lost", "kept" or NULL. */
static const char *my_side(const Popsync__Conflict *cf, const uint8_t *node)
{
    if (node && cf->lost_node.len == 16 && memcmp(cf->lost_node.data, node, 16) == 0)
        return "lost";
    if (node && cf->kept_node.len == 16 && memcmp(cf->kept_node.data, node, 16) == 0)
        return "kept";
    return NULL;
}

static json_t *node_json(const ProtobufCBinaryData *b)
{
    char hex[33];
    if (b->len != 16)
        return json_null();
    ps_hex(b->data, 16, hex);
    return json_string(hex);
}

static json_t *conflict_json(const Popsync__Conflict *cf, const uint8_t *node)
{
    const char *side = my_side(cf, node);
    char cid[PS_UUID_STR] = "", rid[PS_UUID_STR] = "";
    json_t *o, *fields = json_array();
    if (cf->id.len == 16)
        ps_uuid_format(cf->id.data, cid);
    if (cf->record_id.len == 16)
        ps_uuid_format(cf->record_id.data, rid);
    for (size_t i = 0; i < cf->n_fields; i++)
        json_array_append_new(fields, json_string(cf->fields[i]));
    o = json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:b}", "id", cid, "record_id", rid, "kind",
                  ps_kind_name(cf->kind) ? ps_kind_name(cf->kind) : "", "orgunit", cf->orgunit ? cf->orgunit : "",
                  "fields", fields, "reason", cf->reason ? cf->reason : "", "created_ms", ps_json_u64(cf->created_ms),
                  "resolved", cf->resolved);
    json_object_set_new(o, "kept", cf->kept ? ps_record_to_json(cf->kept) : json_null());
    json_object_set_new(o, "lost", cf->lost ? ps_record_to_json(cf->lost) : json_null());
    json_object_set_new(o, "lost_node", node_json(&cf->lost_node));
    json_object_set_new(o, "kept_node", node_json(&cf->kept_node));
    json_object_set_new(o, "mine", side ? json_string(side) : json_null());
    return o;
}

static void on_conflicts(const Popsync__ConflictListResult *res, void *arg)
{
    list_ctx_t *l = arg;
    l->n = res->n_conflicts;
    for (size_t i = 0; i < res->n_conflicts; i++) {
        const Popsync__Conflict *cf = res->conflicts[i];
        if (!cf->resolved)
            l->open++;
        if (l->want) {
            if (cf->id.len == 16 && memcmp(cf->id.data, l->want, 16) == 0) {
                /* Copy out: the message dies with this callback. */
                size_t sz = protobuf_c_message_get_packed_size(&cf->base);
                uint8_t *buf = malloc(sz ? sz : 1);
                if (buf) {
                    protobuf_c_message_pack(&cf->base, buf);
                    l->found = popsync__conflict__unpack(NULL, sz, buf);
                    free(buf);
                }
            }
            continue;
        }
        if (l->json) {
            json_array_append_new(l->arr, conflict_json(cf, l->node));
        } else {
            if (!l->header++) {
                cell(l->zh ? "冲突" : "CONFLICT", 36, "  ");
                cell(l->zh ? "记录" : "RECORD", 36, "  ");
                cell(l->zh ? "类别" : "KIND", 13, " ");
                cell(l->zh ? "单位" : "UNIT", 9, "  ");
                cell(l->zh ? "发生时间" : "RAISED", 16, "  ");
                printf("%s\n", l->zh ? "状态" : "STATE");
            }
            print_conflict(cf, l->node, l->zh);
        }
    }
}

/* One field's value in a version, as the CLI shows it. */
static void side_text(const Popsync__Record *r, const char *field, char *out, size_t n, int zh)
{
    if (!r)
        snprintf(out, n, "%s", zh ? "（无）" : "(none)");
    else if (strcmp(field, "deleted") == 0)
        snprintf(out, n, "%s", r->deleted ? (zh ? "已删除" : "deleted") : (zh ? "存在" : "present"));
    else if (strcmp(field, "*") == 0)
        snprintf(out, n, "%s", r->deleted ? (zh ? "（已删除）" : "(deleted)") : (zh ? "（整条记录）" : "(the whole record)"));
    else if (ps_record_get_text(r, field, out, n) != PS_OK || !out[0])
        snprintf(out, n, "%s", zh ? "（空）" : "(empty)");
}

/* A conflict's line, then each field in conflict with both values side by
 * side: the version the record has now and the one that lost. */
static void print_conflict(const Popsync__Conflict *cf, const uint8_t *node, int zh)
{
    const char *side = my_side(cf, node);
    char cid[PS_UUID_STR] = "", rid[PS_UUID_STR] = "", when[32] = "";
    time_t t = (time_t)(cf->created_ms / 1000);
    struct tm tm;
    if (cf->id.len == 16)
        ps_uuid_format(cf->id.data, cid);
    if (cf->record_id.len == 16)
        ps_uuid_format(cf->record_id.data, rid);
    localtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
    printf("%-36s  %-36s  %-13s %-9s  %-16s  %s\n", cid, rid, ps_kind_name(cf->kind) ? ps_kind_name(cf->kind) : "?",
           cf->orgunit ? cf->orgunit : "", when,
           cf->resolved ? (zh ? "已解决" : "resolved") : (zh ? "未解决" : "open"));
    printf("    ");
    cell(zh ? "字段" : "FIELD", 16, "  ");
    cell(zh ? "保留的（记录现在的值）" : "KEPT (the record now)", 30, "  ");
    printf("%s\n", zh ? "未采用的（另一处修改）" : "LOST (the other edit)");
    for (size_t k = 0; k < cf->n_fields; k++) {
        const ps_field_t *f = zh ? ps_field_find((int)cf->kind, cf->fields[k]) : NULL;
        char kept[512], lost[512];
        side_text(cf->kept, cf->fields[k], kept, sizeof(kept), zh);
        side_text(cf->lost, cf->fields[k], lost, sizeof(lost), zh);
        printf("    ");
        cell(f ? f->zh : cf->fields[k], 16, "  ");
        cell(kept, 30, "  ");
        printf("%s\n", lost);
    }
    if (cf->reason && cf->reason[0]) {
        char why[512];
        printf(zh ? "    原因：%s\n" : "    why: %s\n", zh ? ps_i18n_reason(cf->reason, why, sizeof(why)) : cf->reason);
    }
    if (side && zh)
        printf("    %s\n", !strcmp(side, "lost") ? "本机的修改未被采用：--keep mine 可恢复本机的修改"
                                                  : "本机的修改被采用：修改未被采用的那台电脑会得到通知");
    else if (side)
        printf("    %s\n", !strcmp(side, "lost") ? "your edit lost: --keep mine puts it back"
                                                  : "your edit was kept: the cache whose edit lost is told");
}

typedef struct ask_conflicts {
    list_ctx_t *l;
    int include_resolved;
} ask_conflicts_t;

static int ask_conflicts(ps_link_t *link, void *arg)
{
    ask_conflicts_t *a = arg;
    return ps_rq_conflicts(link->s, a->include_resolved, on_conflicts, a->l);
}

static int fetch_conflicts(ps_cli_t *cli, ps_cache_t *c, list_ctx_t *l, int include_resolved, const char *cmd)
{
    ask_conflicts_t a = {l, include_resolved};
    char err[512];
    int rc;
    (void)cli;
    rc = ps_link_once(c, ask_conflicts, &a, NULL, err, sizeof(err));
    if (rc)
        ps_cli_err("%s: %s", cmd, err);
    return rc;
}

/* Builds the resolving version of the record: keep is "kept", "lost" or a
 * FILE of field values. */
static int build_resolution(const Popsync__Conflict *cf, const char *keep, Popsync__Record *r, char *err, size_t errlen)
{
    int whole = 0;
    if (strcmp(keep, "kept") == 0)
        return PS_OK;
    if (strcmp(keep, "lost") == 0) {
        if (!cf->lost) {
            snprintf(err, errlen, "the conflict holds no losing version");
            return PS_EINVAL;
        }
        for (size_t i = 0; i < cf->n_fields; i++)
            if (!strcmp(cf->fields[i], "*") || !strcmp(cf->fields[i], "deleted"))
                whole = 1;
        if (whole) {
            /* Take the losing version's fields and its deleted flag. */
            const char *names[64];
            size_t n = ps_record_field_names(r->kind, names, 64);
            r->deleted = cf->lost->deleted;
            for (size_t i = 0; i < n && i < 64; i++) {
                char val[4096];
                if (ps_record_get_text(cf->lost, names[i], val, sizeof(val)) == PS_OK &&
                    ps_record_set(r, names[i], val, err, errlen) != PS_OK)
                    return PS_EINVAL;
            }
            return ps_record_set(r, "orgunit", cf->lost->orgunit, err, errlen);
        }
        for (size_t i = 0; i < cf->n_fields; i++) {
            char val[4096];
            if (ps_record_get_text(cf->lost, cf->fields[i], val, sizeof(val)) != PS_OK)
                continue;
            if (ps_record_set(r, cf->fields[i], val, err, errlen) != PS_OK)
                return PS_EINVAL;
        }
        return PS_OK;
    }
    {
        json_error_t je;
        json_t *obj = json_load_file(keep, 0, &je);
        int rc;
        if (!obj || !json_is_object(obj)) {
            snprintf(err, errlen, "%s: not a JSON object of field values (%s)", keep, obj ? "wrong type" : je.text);
            json_decref(obj);
            return PS_EINVAL;
        }
        rc = ps_record_from_json(r, obj, err, errlen);
        json_decref(obj);
        return rc;
    }
}

/* Turns --keep mine|theirs into the side of the conflict (kept or lost)
 * relative to this cache: mine is the side its own edit is on.  *keep
 * becomes NULL when nothing is to be sent: "mine" by the cache whose edit
 * the record kept (its value stands; the losing cache is still told).
 * Also refuses, before anything is sent, a resolution this cache may not
 * write: the record may have left its scope since its edit. */
static int pick_side(ps_cache_t *c, const Popsync__Conflict *cf, const char *idtext, const char **keep)
{
    const ps_cache_meta_t *m = ps_cache_meta(c);
    const char *side = my_side(cf, m->node), *k = *keep;
    const Popsync__Record *kept = cf->kept;
    ps_orgunits_t *tree;
    ps_peer_t me;
    int may;

    if (!strcmp(k, "mine") || !strcmp(k, "theirs")) {
        if (!side && !strcmp(k, "mine")) {
            ps_cli_err("conflicts resolve: this cache made neither edit of conflict %s, so it has no 'mine'; use "
                       "--keep kept (the record as it stands) or --keep lost (the values that lost)",
                       idtext);
            return PS_EXIT_USAGE;
        }
        /* A third party's "theirs" is the record as the others left it. */
        k = !side ? "kept" : !strcmp(k, "mine") ? side : !strcmp(side, "lost") ? "kept" : "lost";
        if (!strcmp(*keep, "mine") && !strcmp(side, "kept")) {
            *keep = NULL;
            return PS_EXIT_OK;
        }
    }
    ps_policy_peer(&me, m->role, m->orgunit);
    tree = ps_client_orgunits(c);
    may = ps_policy_may_write(tree, &me, kept->orgunit,
                              kept->body_case == POPSYNC__RECORD__BODY_MIGRATION && kept->migration
                                  ? kept->migration->other_place_code
                                  : NULL,
                              kept->orgunit) == PS_WRITE_OWNER;
    ps_orgunits_free(tree);
    if (!may) {
        ps_cli_err("conflicts resolve: the record is now in unit %s, outside this cache's scope; a clerk of that "
                   "unit or the district can settle conflict %s",
                   kept->orgunit ? kept->orgunit : "", idtext);
        return PS_EXIT_FAIL;
    }
    *keep = k;
    return PS_EXIT_OK;
}

/* Validates the resolving version r of conflict cf, stores it and sends it
 * with a sync.  PS_EXIT_* */
static int store_and_send(ps_cache_t *c, const Popsync__Conflict *cf, Popsync__Record *r, const uint8_t *cid)
{
    ps_client_vctx_t vc;
    ps_verrs_t v;
    ps_sync_stats_t st;
    char err[512];

    memset(&v, 0, sizeof(v));
    ps_client_vctx_init(&vc, c);
    vc.ctx.current = cf->kept;
    ps_validate_record(r, &vc.ctx, &v);
    ps_client_vctx_free(&vc);
    if (v.n) {
        for (size_t i = 0; i < v.n && i < PS_VERR_MAX; i++)
            ps_cli_err("conflicts resolve: %s: %s", v.e[i].field, v.e[i].reason);
        return PS_EXIT_INVALID;
    }
    if (ps_cache_put_resolution(c, r, cid) != PS_OK) {
        ps_cli_err("conflicts resolve: cannot store the change");
        return PS_EXIT_FAIL;
    }
    if (ps_sync_run(c, 0, 0, 0, NULL, &st, err, sizeof(err)) != PS_OK) {
        ps_cli_err("conflicts resolve: stored locally; it will be sent at the next sync (%s)", err);
        return PS_EXIT_SYNC;
    }
    if (st.rejected || st.conflicts) {
        ps_cli_err("conflicts resolve: the server did not accept the resolution; see 'popsync status'");
        return PS_EXIT_FAIL;
    }
    return PS_EXIT_OK;
}

static int resolve(ps_cli_t *cli, ps_cache_t *c, const char *idtext, const char *keep)
{
    const char *asked = keep;
    uint8_t cid[16];
    list_ctx_t l;
    Popsync__Record *r = NULL;
    char err[512];
    int rc = PS_EXIT_FAIL;

    if (ps_uuid_parse(idtext, cid) != PS_OK) {
        ps_cli_err("conflicts resolve: '%s' is not a conflict id", idtext);
        return PS_EXIT_USAGE;
    }
    memset(&l, 0, sizeof(l));
    l.want = cid;
    l.node = ps_cache_meta(c)->node;
    if (fetch_conflicts(cli, c, &l, 0, "conflicts resolve"))
        return PS_EXIT_SYNC;
    if (!l.found) {
        ps_cli_err("conflicts resolve: no open conflict %s in your scope", idtext);
        return PS_EXIT_NOTFOUND;
    }
    if (!l.found->kept || l.found->record_id.len != 16) {
        ps_cli_err("conflicts resolve: the conflict holds no record");
        goto out;
    }
    if ((rc = pick_side(c, l.found, idtext, &keep)) != PS_EXIT_OK)
        goto out;
    rc = PS_EXIT_FAIL;
    if (!keep) {
        printf("conflict %s: your edit is the one the record kept, and it stays; the conflict stays open until the "
               "cache whose edit lost (or an administrator) settles it\n",
               idtext);
        rc = PS_EXIT_OK;
        goto out;
    }
    /* Base the resolution on our copy when we have one, else on the version
     * the conflict kept: either way the server merges it as any edit. */
    if (ps_cache_get(c, l.found->record_id.data, &r) != PS_OK) {
        size_t sz = protobuf_c_message_get_packed_size(&l.found->kept->base);
        uint8_t *buf = malloc(sz ? sz : 1);
        if (!buf)
            goto out;
        protobuf_c_message_pack(&l.found->kept->base, buf);
        r = popsync__record__unpack(NULL, sz, buf);
        free(buf);
        if (!r)
            goto out;
    }
    if (build_resolution(l.found, keep, r, err, sizeof(err)) != PS_OK) {
        ps_cli_err("conflicts resolve: %s", err);
        rc = PS_EXIT_INVALID;
        goto out;
    }
    if ((rc = store_and_send(c, l.found, r, cid)) == PS_EXIT_OK)
        printf("resolved %s (kept %s)\n", idtext, asked);
out:
    if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
    if (l.found)
        popsync__conflict__free_unpacked(l.found, NULL);
    return rc;
}

int ps_cmd_conflicts(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
                                       {"all", no_argument, NULL, 'a'},
                                       {"keep", required_argument, NULL, 'k'},
                                       {NULL, 0, NULL, 0}};
    ps_cache_t *c = NULL;
    const char *keep = NULL, *sub;
    char err[512];
    int opt, rc, all = 0;

    if (argc < 2) {
        ps_cli_err("conflicts: usage: conflicts list [--all] [--json] | conflicts resolve ID --keep mine|theirs|kept|lost|FILE");
        return PS_EXIT_USAGE;
    }
    sub = argv[1];
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'j': cli->json = 1; break;
        case 'a': all = 1; break;
        case 'k': keep = optarg; break;
        default: return PS_EXIT_USAGE;
        }
    }
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("conflicts: %s", err);
        return PS_EXIT_FAIL;
    }
    if (strcmp(sub, "list") == 0 && optind == argc) {
        list_ctx_t l;
        memset(&l, 0, sizeof(l));
        l.json = cli->json;
        l.zh = ps_report_lang_zh(NULL) == 1;
        l.node = ps_cache_meta(c)->node;
        if (l.json)
            l.arr = json_array();
        rc = fetch_conflicts(cli, c, &l, all, "conflicts list") ? PS_EXIT_SYNC : PS_EXIT_OK;
        if (rc == PS_EXIT_OK) /* the count `popsync status` shows */
            ps_cache_set_conflicts_open(c, l.open);
        if (rc == PS_EXIT_OK && l.json) {
            json_dumpf(l.arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            fputc('\n', stdout);
        } else if (rc == PS_EXIT_OK && l.n == 0) {
            printf(l.zh ? "没有%s冲突\n" : "no %sconflicts\n", all ? "" : (l.zh ? "未解决的" : "open "));
        }
        json_decref(l.arr);
    } else if (strcmp(sub, "resolve") == 0 && optind == argc - 1 && keep) {
        rc = resolve(cli, c, argv[optind], keep);
    } else {
        ps_cli_err("conflicts: usage: conflicts list [--all] [--json] | conflicts resolve ID --keep mine|theirs|kept|lost|FILE");
        rc = PS_EXIT_USAGE;
    }
    ps_cache_close(c);
    return rc;
}
