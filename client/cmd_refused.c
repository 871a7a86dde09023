/* cmd_refused.c - `popsync refused list|show|edit|discard`.
 *
 * Owns: the clerk's view of the changes the server refused (REJECTED) or
 * kept whole as a conflict (CONFLICT).  The cache keeps each whole, with the
 * server's reasons, in its refused list (cache.h, "rejected"); nothing but
 * `discard` removes one, and `edit` moves it back into the outbox as a new
 * local change.  The record view (`list`, `show`) keeps showing the server's
 * version meanwhile.  See docs/sync.md, "Refused changes".
 */
#include "cli.h"
#include "cache.h"
#include "err.h"
#include "fields.h"
#include "i18n.h"
#include "ids.h"
#include "record_fmt.h"
#include "report.h"
#include "wire.pb-c.h"

#include <jansson.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REJ POPSYNC__CHANGE_STATUS__CHANGE_STATUS_REJECTED
#define CONFL POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT

/* What the refused change would have done: made, changed or deleted a record. */
static const char *change_kind(const Popsync__Change *ch)
{
    if (ch->record && ch->record->deleted)
        return "delete";
    return ch->base_rev && ch->base_rev->gen ? "edit" : "new";
}

/* The same, as the clerk reads it (the JSON keeps the codes above). */
static const char *change_kind_text(const Popsync__Change *ch, int zh)
{
    const char *k = change_kind(ch);
    if (!zh)
        return k;
    return !strcmp(k, "delete") ? "删除" : !strcmp(k, "edit") ? "修改" : "新增";
}

/* One refused entry as JSON: id, lcn (a string: 64 bits), kind, change,
 * status, conflict_id, errors [{field, reason}], record (whole). */
static json_t *entry_json(const Popsync__ChangeResult *res, const Popsync__Change *ch)
{
    char id[PS_UUID_STR] = "", cid[PS_UUID_STR] = "", lcn[24];
    json_t *errs = json_array(), *j;
    if (ch->record->id.len == PS_ID_LEN)
        ps_uuid_format(ch->record->id.data, id);
    if (res->conflict_id.len == PS_ID_LEN)
        ps_uuid_format(res->conflict_id.data, cid);
    snprintf(lcn, sizeof(lcn), "%llu", (unsigned long long)ch->lcn);
    for (size_t i = 0; i < res->n_errors; i++)
        json_array_append_new(errs, json_pack("{s:s,s:s}", "field", res->errors[i]->field, "reason",
                                              res->errors[i]->reason));
    j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o}", "id", id, "lcn", lcn, "kind", ps_kind_name((int)ch->record->kind),
                  "change", change_kind(ch), "status", res->status == CONFL ? "conflict" : "rejected", "errors", errs,
                  "record", ps_record_to_json(ch->record));
    if (j && *cid)
        json_object_set_new(j, "conflict_id", json_string(cid));
    return j;
}

/* One line per reason (or the conflict) for the text listing. */
static void entry_text(const Popsync__ChangeResult *res, const Popsync__Change *ch, int zh)
{
    const char *kind = ps_kind_name((int)ch->record->kind), *what = change_kind_text(ch, zh);
    char id[PS_UUID_STR] = "";
    if (ch->record->id.len == PS_ID_LEN)
        ps_uuid_format(ch->record->id.data, id);
    if (res->status == CONFL) {
        char cid[PS_UUID_STR] = "";
        if (res->conflict_id.len == PS_ID_LEN)
            ps_uuid_format(res->conflict_id.data, cid);
        printf(zh ? "%s  %-13s %s  已作为冲突 %s 保留（见 'popsync conflicts list'）\n"
                  : "%s  %-13s %-6s kept as conflict %s (see 'popsync conflicts list')\n",
               id, kind, what, cid);
        return;
    }
    if (res->n_errors == 0)
        printf(zh ? "%s  %-13s %s  被服务器退回\n" : "%s  %-13s %-6s rejected\n", id, kind, what);
    for (size_t i = 0; i < res->n_errors; i++) {
        const Popsync__FieldError *e = res->errors[i];
        const ps_field_t *f = zh ? ps_field_find((int)ch->record->kind, e->field) : NULL;
        char why[512];
        if (zh)
            printf("%s  %-13s %s  %s（%s）：%s\n", id, kind, what, f ? f->zh : e->field, e->field,
                   ps_i18n_reason(e->reason, why, sizeof(why)));
        else
            printf("%s  %-13s %-6s %s: %s\n", id, kind, what, e->field, e->reason);
    }
}

typedef struct walk {
    const uint8_t *want;          /* only this record's entries (NULL: all) */
    int json;
    int zh;                       /* text lines in Chinese */
    json_t *arr;
    size_t n;
    int status;                   /* edit: status of the latest entry */
    Popsync__Record *latest;      /* edit: copy of the latest entry's record (owned) */
    Popsync__Rev base;            /* edit: its base revision */
    uint8_t base_node[16];
    uint8_t resolves[16];
    int has_resolves;
    int oom;
} walk_t;

/* A deep copy of r that the caller frees with ps_record_free. */
static Popsync__Record *record_copy(const Popsync__Record *r)
{
    size_t n = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *buf = malloc(n ? n : 1);
    Popsync__Record *out;
    if (!buf)
        return NULL;
    protobuf_c_message_pack(&r->base, buf);
    out = popsync__record__unpack(NULL, n, buf);
    free(buf);
    return out;
}

static int walk_one(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg)
{
    walk_t *w = arg;
    if (!ch->record || ch->record->id.len != PS_ID_LEN)
        return 0;
    if (w->want && memcmp(w->want, ch->record->id.data, PS_ID_LEN) != 0)
        return 0;
    w->n++;
    if (w->arr) {
        json_t *j = entry_json(res, ch);
        if (!j || json_array_append_new(w->arr, j))
            w->oom = 1;
    } else if (!w->want || !w->json) {
        if (w->want) {
            /* show: the reasons, then the record as the clerk entered it. */
            json_t *j = ps_record_to_json(ch->record);
            const char *key;
            json_t *val;
            if (w->n > 1)
                putchar('\n');
            entry_text(res, ch, w->zh);
            json_object_foreach(j, key, val) {
                char *txt = json_is_string(val) ? NULL : json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
                printf("  %-16s %s\n", key, txt ? txt : json_string_value(val));
                free(txt);
            }
            json_decref(j);
        } else {
            entry_text(res, ch, w->zh);
        }
    }
    /* Entries come oldest first: the last one holds the clerk's latest version. */
    if (w->latest)
        ps_record_free(w->latest);
    w->latest = record_copy(ch->record);
    if (!w->latest)
        w->oom = 1;
    w->status = res->status;
    memset(&w->base, 0, sizeof(w->base));
    popsync__rev__init(&w->base);
    if (ch->base_rev) {
        w->base.gen = ch->base_rev->gen;
        w->base.hlc = ch->base_rev->hlc;
        if (ch->base_rev->node.len == 16) {
            memcpy(w->base_node, ch->base_rev->node.data, 16);
            w->base.node.data = w->base_node;
            w->base.node.len = 16;
        }
    }
    w->has_resolves = ch->resolves.len == 16;
    if (w->has_resolves)
        memcpy(w->resolves, ch->resolves.data, 16);
    return 0;
}

static int walk(ps_cache_t *c, walk_t *w)
{
    int rc = ps_cache_foreach_rejected(c, walk_one, w);
    if (rc == PS_OK && w->oom)
        rc = PS_ENOMEM;
    return rc;
}

static int refused_list(ps_cli_t *cli, ps_cache_t *c)
{
    walk_t w;
    int rc;
    memset(&w, 0, sizeof(w));
    w.json = cli->json;
    w.zh = ps_report_lang_zh(NULL) == 1;
    if (cli->json)
        w.arr = json_array();
    rc = walk(c, &w);
    if (rc == PS_OK && cli->json) {
        json_dumpf(w.arr, stdout, JSON_COMPACT);
        fputc('\n', stdout);
    } else if (rc == PS_OK && w.n == 0) {
        printf(w.zh ? "没有被退回的修改\n" : "no refused changes\n");
    } else if (rc == PS_OK) {
        printf(w.zh ? "共 %zu 条被退回的修改：用 'popsync refused edit ID --set 字段=值' 改正，"
                      "或用 'popsync refused discard ID' 放弃\n"
                    : "%zu refused change(s): correct one with 'popsync refused edit ID --set FIELD=VALUE', "
                      "or drop it with 'popsync refused discard ID'\n",
               w.n);
    }
    json_decref(w.arr);
    if (w.latest)
        ps_record_free(w.latest);
    if (rc) {
        ps_cli_err("refused list: %s", ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    return PS_EXIT_OK;
}

static int parse_id(const char *cmd, const char *text, uint8_t id[PS_ID_LEN])
{
    if (ps_uuid_parse(text, id) != PS_OK) {
        ps_cli_err("refused %s: '%s' is not a record id", cmd, text);
        return PS_EXIT_USAGE;
    }
    return PS_EXIT_OK;
}

static int refused_show(ps_cli_t *cli, ps_cache_t *c, const char *idtext)
{
    uint8_t id[PS_ID_LEN];
    walk_t w;
    int rc;
    if ((rc = parse_id("show", idtext, id)))
        return rc;
    memset(&w, 0, sizeof(w));
    w.want = id;
    if (cli->json)
        w.arr = json_array();
    rc = walk(c, &w);
    if (rc == PS_OK && w.n && cli->json) {
        json_dumpf(w.arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    }
    json_decref(w.arr);
    if (w.latest)
        ps_record_free(w.latest);
    if (rc) {
        ps_cli_err("refused show: %s", ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    if (w.n == 0) {
        ps_cli_err("refused show: no refused change of record %s", idtext);
        return PS_EXIT_NOTFOUND;
    }
    return PS_EXIT_OK;
}

/* The refused version, corrected, goes back into the outbox on its
 * original base, so the server merges it with what others did meanwhile. */
static int refused_edit(ps_cache_t *c, const char *idtext, char **sets, size_t nsets, const char *json)
{
    uint8_t id[PS_ID_LEN];
    Popsync__Record *current = NULL;
    walk_t w;
    size_t n = 0;
    int rc;
    if ((rc = parse_id("edit", idtext, id)))
        return rc;
    memset(&w, 0, sizeof(w));
    w.want = id;
    w.json = 1; /* collect, print nothing */
    if ((rc = walk(c, &w))) {
        ps_cli_err("refused edit: %s", ps_strerror(rc));
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (!w.latest) {
        ps_cli_err("refused edit: no refused change of record %s", idtext);
        rc = PS_EXIT_NOTFOUND;
        goto out;
    }
    if (w.status == CONFL) {
        ps_cli_err("refused edit: the server kept this change whole as a conflict: settle it with 'popsync "
                   "conflicts resolve' (see 'popsync conflicts list'), then 'popsync refused discard %s'",
                   idtext);
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if ((rc = ps_cli_apply_edits("refused edit", w.latest, sets, nsets, json)))
        goto out;
    /* Judged against the server's version this cache holds, like an edit. */
    if (ps_cache_get(c, id, &current) != PS_OK)
        current = NULL;
    if ((rc = ps_cli_validate_or_report("refused edit", c, w.latest, current)))
        goto out;
    {
        Popsync__Rev *sent = w.latest->rev; /* the refused change's own stamp */
        w.latest->rev = w.base.gen ? &w.base : NULL;
        rc = ps_cache_refused_resubmit(c, w.latest, w.has_resolves ? w.resolves : NULL, &n);
        w.latest->rev = sent;
    }
    if (rc == PS_EEXIST) {
        ps_cli_err("refused edit: record %s has newer changes waiting to be pushed: run 'popsync sync' first",
                   idtext);
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (rc) {
        ps_cli_err("refused edit: cannot store the change: %s", ps_strerror(rc));
        rc = PS_EXIT_FAIL;
        goto out;
    }
    printf("record %s corrected: it goes to the server with the next 'popsync sync'\n", idtext);
    rc = PS_EXIT_OK;
out:
    if (current)
        protobuf_c_message_free_unpacked(&current->base, NULL);
    if (w.latest)
        ps_record_free(w.latest);
    return rc;
}

static int refused_discard(ps_cache_t *c, const char *idtext)
{
    uint8_t id[PS_ID_LEN];
    size_t n = 0;
    int rc;
    if ((rc = parse_id("discard", idtext, id)))
        return rc;
    rc = ps_cache_refused_discard(c, id, &n);
    if (rc == PS_ENOTFOUND) {
        ps_cli_err("refused discard: no refused change of record %s", idtext);
        return PS_EXIT_NOTFOUND;
    }
    if (rc) {
        ps_cli_err("refused discard: %s", ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    printf("discarded %zu refused change(s) of record %s\n", n, idtext);
    return PS_EXIT_OK;
}

static int count_one(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg)
{
    walk_t *w = arg;
    (void)res;
    if (ch->record && ch->record->id.len == PS_ID_LEN && memcmp(ch->record->id.data, w->want, PS_ID_LEN) == 0)
        w->n++;
    return 0;
}

void ps_cli_refused_hint(ps_cache_t *c, const uint8_t *id, const char *idtext)
{
    walk_t w;
    memset(&w, 0, sizeof(w));
    w.want = id;
    if (ps_cache_foreach_rejected(c, count_one, &w) == PS_OK && w.n)
        ps_cli_err("the server refused %zu change(s) of record %s; they are kept: see 'popsync refused show %s'",
                   w.n, idtext, idtext);
}

static int usage_err(void)
{
    ps_cli_err("refused: usage: refused list [--json] | show ID [--json] | "
               "edit ID [--set FIELD=VALUE ...] [--json '{...}'] | discard ID");
    return PS_EXIT_USAGE;
}

int ps_cmd_refused(ps_cli_t *cli, int argc, char **argv)
{
    char err[512];
    ps_cache_t *c = NULL;
    const char *sub = argc > 1 ? argv[1] : NULL;
    char *sets[PS_CLI_MAX_SETS];
    size_t nsets = 0;
    const char *json = NULL;
    int rc, edit = sub && strcmp(sub, "edit") == 0;

    if (!sub)
        return usage_err();
    argc--;
    argv++;
    if (edit) {
        if ((rc = ps_cli_parse_edit_opts(argc, argv, sets, &nsets, &json)))
            return rc;
    } else {
        static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
        int opt;
        while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
            if (opt != 'j')
                return PS_EXIT_USAGE;
            cli->json = 1;
        }
    }
    if (strcmp(sub, "list") == 0 ? optind != argc
        : (edit || !strcmp(sub, "show") || !strcmp(sub, "discard")) ? optind != argc - 1
                                                                      : 1)
        return usage_err();
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("refused: %s", err);
        return PS_EXIT_FAIL;
    }
    if (strcmp(sub, "list") == 0)
        rc = refused_list(cli, c);
    else if (strcmp(sub, "show") == 0)
        rc = refused_show(cli, c, argv[optind]);
    else if (edit)
        rc = refused_edit(c, argv[optind], sets, nsets, json);
    else
        rc = refused_discard(c, argv[optind]);
    ps_cache_close(c);
    return rc;
}
