/* ui_town.c - the township pages' requests (ui.h): search, the field
 * dictionary, records (one, a page of a list, add and edit with the CLI's
 * validation), the person page's linked records, and each record's state.
 * Sync, conflicts and refused changes are in ui_town_sync.c; imports and
 * migrations in ui_town_io.c.  This file owns the module's route table. */
#include "ui_town.h"

#include "cli.h"
#include "dupcheck.h"
#include "err.h"
#include "fields.h"
#include "history.h"
#include "i18n.h"
#include "ids.h"
#include "record_fmt.h"
#include "ui_reach.h"
#include "validate.h"
#include "vctx.h"
#include "wire.pb-c.h"
#include "xrules.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define FIND_MAX 200
#define PAGE_MAX 200
/* A list page reads at most this many records before it answers with a
 * cursor to continue from: a filter that matches little stays fast. */
#define SCAN_MAX 4000

/* --- ids and small helpers ---------------------------------------------------- */

static int id_arg(const char *s, uint8_t id[PS_ID_LEN])
{
    return s && ps_uuid_parse(s, id) == PS_OK ? 0 : -1;
}

static json_t *uuid_json(const uint8_t *id)
{
    char t[PS_UUID_STR];

    ps_uuid_format(id, t);
    return json_string(t);
}

/* The name of the person (or the address of the household) id refers to. */
static void ref_label(ps_cache_t *c, const uint8_t *id, char *out, size_t outlen)
{
    Popsync__Record *r = NULL;

    out[0] = '\0';
    if (ps_cache_get(c, id, &r) != PS_OK)
        return;
    if (r->body_case == POPSYNC__RECORD__BODY_PERSON && r->person->name)
        snprintf(out, outlen, "%s", r->person->name);
    else if (r->body_case == POPSYNC__RECORD__BODY_HOUSEHOLD && r->household->address)
        snprintf(out, outlen, "%s", r->household->address);
    ps_record_free(r);
}

/* --- a record as the pages show it ---------------------------------------------- */

static int refused_has(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg)
{
    struct {
        const uint8_t *id;
        json_t *reasons;
        int n;
    } *q = arg;

    if (!ch->record || ch->record->id.len != PS_ID_LEN || memcmp(ch->record->id.data, q->id, PS_ID_LEN) != 0)
        return 0;
    q->n++;
    for (size_t i = 0; q->reasons && i < res->n_errors; i++)
        json_array_append_new(q->reasons, json_pack("{s:s,s:s}", "field", res->errors[i]->field ? res->errors[i]->field : "",
                                                    "reason", res->errors[i]->reason ? res->errors[i]->reason : ""));
    if (q->reasons && res->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT)
        json_array_append_new(q->reasons, json_pack("{s:s,s:s}", "field", "", "reason",
                                                    "the server kept this change whole as a conflict"));
    return 0;
}

json_t *ps_ui_record_state(ps_ui_req_t *rq, const uint8_t *id, const Popsync__Record *r)
{
    ps_cache_t *c = ps_ui_cache(rq);
    struct {
        const uint8_t *id;
        json_t *reasons;
        int n;
    } q = {id, json_array(), 0};
    uint64_t pending = 0;
    char cid[PS_UUID_STR];
    json_t *o;

    ps_cache_foreach_rejected(c, refused_has, &q);
    ps_cache_pending_of(c, id, &pending);
    if (q.n) {
        json_t *tr = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(q.reasons, i, e) {
            char t[512];
            const char *en = json_string_value(json_object_get(e, "reason"));
            json_array_append_new(tr, json_pack("{s:O,s:s}", "field", json_object_get(e, "field"), "reason",
                                                ps_ui_zh(rq) ? ps_i18n_reason(en, t, sizeof(t)) : en));
        }
        json_decref(q.reasons);
        return json_pack("{s:s,s:o,s:I}", "state", "refused", "reasons", tr, "pending", (json_int_t)pending);
    }
    json_decref(q.reasons);
    if (ps_ui_sync_conflict_of(ps_ui_server(rq), id, cid))
        return json_pack("{s:s,s:s}", "state", "conflict", "conflict_id", cid);
    o = json_pack("{s:s,s:I}", "state", pending || !r || !r->rev ? "pending" : "synced", "pending", (json_int_t)pending);
    return o;
}

json_t *ps_ui_record_json(ps_ui_req_t *rq, const Popsync__Record *r)
{
    json_t *o = ps_record_to_json(r);
    json_t *labels = json_object();
    size_t nf;
    const ps_field_t *f = ps_fields_of((int)r->kind, &nf);

    if (!o)
        return json_null();
    for (size_t i = 0; rq && i < nf; i++) {
        char v[PS_FIELD_NORM_MAX];
        const char *zh;
        if (ps_record_get_text(r, f[i].name, v, sizeof(v)) != PS_OK || !*v)
            continue;
        if (f[i].type == PS_FT_REF) {
            uint8_t rid[PS_ID_LEN];
            char name[128];
            if (ps_uuid_parse(v, rid) == PS_OK) {
                ref_label(ps_ui_cache(rq), rid, name, sizeof(name));
                if (*name)
                    json_object_set_new(labels, f[i].name, json_string(name));
            }
        } else if (ps_ui_zh(rq) && (zh = ps_field_value_zh(&f[i], v))) {
            json_object_set_new(labels, f[i].name, json_string(zh));
        }
    }
    json_object_set_new(o, "kind", json_string(ps_kind_name((int)r->kind)));
    json_object_set_new(o, "labels", labels);
    return o;
}

/* --- search ------------------------------------------------------------------------ */

/* GET /api/find?q=TEXT&limit=N: persons by the person index (as `popsync find`). */
static int h_find(ps_ui_req_t *rq)
{
    const char *q = ps_ui_arg(rq, "q"), *ls = ps_ui_arg(rq, "limit");
    long limit = ls ? strtol(ls, NULL, 10) : 50;
    Popsync__Record **recs = NULL;
    size_t n = 0;
    json_t *arr;
    int rc;

    if (!q || !*q)
        return ps_ui_reply_json(rq, 200, json_pack("{s:[]}", "results"));
    if (limit < 1 || limit > FIND_MAX)
        limit = 50;
    if ((rc = ps_cache_find(ps_ui_cache(rq), q, (size_t)limit, &recs, &n)) != PS_OK)
        return ps_ui_reply_error(rq, 500, ps_strerror(rc), NULL);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, ps_ui_record_json(rq, recs[i]));
        protobuf_c_message_free_unpacked(&recs[i]->base, NULL);
    }
    free(recs);
    return ps_ui_reply_json(rq, 200, json_pack("{s:o}", "results", arr));
}

/* --- the field dictionary ------------------------------------------------------------- */

/* The protobuf field of kind's body called name (for an enum's values). */
static const ProtobufCFieldDescriptor *body_field(int kind, const char *name)
{
    const char *kn = ps_kind_name(kind);
    const ProtobufCFieldDescriptor *bf = kn ? protobuf_c_message_descriptor_get_field_by_name(&popsync__record__descriptor, kn) : NULL;

    if (!bf || bf->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    return protobuf_c_message_descriptor_get_field_by_name(bf->descriptor, name);
}

/* An enum's choices: the value names less their common prefix, lower case
 * (what record_fmt reads), with the Chinese labels. */
static json_t *enum_options(ps_ui_req_t *rq, int kind, const ps_field_t *f)
{
    const ProtobufCFieldDescriptor *fd = body_field(kind, f->name);
    const ProtobufCEnumDescriptor *ed = fd && fd->type == PROTOBUF_C_TYPE_ENUM ? fd->descriptor : NULL;
    json_t *arr = json_array();
    size_t pre;

    if (!ed || ed->n_values < 2)
        return arr;
    pre = strlen(ed->values[0].name);
    for (unsigned i = 1; i < ed->n_values; i++) {
        size_t k = 0;
        while (k < pre && ed->values[i].name[k] == ed->values[0].name[k])
            k++;
        pre = k;
    }
    while (pre && ed->values[0].name[pre - 1] != '_')
        pre--;
    for (unsigned i = 0; i < ed->n_values; i++) {
        char v[64];
        size_t j;
        const char *zh;
        if (ed->values[i].value == 0)
            continue;
        for (j = 0; ed->values[i].name[pre + j] && j + 1 < sizeof(v); j++)
            v[j] = (char)tolower((unsigned char)ed->values[i].name[pre + j]);
        v[j] = '\0';
        zh = ps_field_value_zh(f, v);
        json_array_append_new(arr, json_pack("{s:s,s:s}", "value", v, "label", ps_ui_zh(rq) && zh ? zh : v));
    }
    return arr;
}

static json_t *field_options(ps_ui_req_t *rq, int kind, const ps_field_t *f)
{
    json_t *arr;

    if (f->type == PS_FT_ENUM)
        return enum_options(rq, kind, f);
    arr = json_array();
    if (f->type == PS_FT_BOOL) {
        json_array_append_new(arr, json_pack("{s:s,s:s}", "value", "true", "label", ps_ui_zh(rq) ? "是" : "yes"));
        json_array_append_new(arr, json_pack("{s:s,s:s}", "value", "false", "label", ps_ui_zh(rq) ? "否" : "no"));
    } else if (f->type == PS_FT_LIST) {
        int scheme = strcmp(f->name, "scheme") == 0;
        const char *code;
        for (size_t i = 0; (code = scheme ? ps_scheme_at(i) : ps_service_at(i)); i++)
            json_array_append_new(arr, json_pack("{s:s,s:s}", "value", code, "label",
                                                 scheme ? ps_scheme_label(code, ps_ui_zh(rq))
                                                        : ps_service_label(code, ps_ui_zh(rq))));
    }
    return arr;
}

static const char *ftype_input(ps_ftype_t t)
{
    switch (t) {
    case PS_FT_DATE: return "date";
    case PS_FT_PERIOD: return "period";
    case PS_FT_IDNUM: return "idnum";
    case PS_FT_ENUM: case PS_FT_LIST: case PS_FT_BOOL: return "select";
    case PS_FT_REF: return "ref";
    case PS_FT_INT: case PS_FT_FEN: return "number";
    case PS_FT_YUAN: return "money";
    default: return "text";
    }
}

/* GET /api/fields?kind=KIND: the form of a kind, from the field dictionary. */
static int h_fields(ps_ui_req_t *rq)
{
    const char *kn = ps_ui_arg(rq, "kind");
    int kind = kn ? ps_kind_from_name(kn) : -1;
    size_t n;
    const ps_field_t *f = kind >= 0 ? ps_fields_of(kind, &n) : NULL;
    json_t *arr;

    if (!f)
        return ps_ui_reply_error(rq, 400, "unknown kind", "未知的记录类型");
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:s,s:o}", "name", f[i].name, "label", ps_ui_zh(rq) ? f[i].zh : f[i].name,
                              "input", ftype_input(f[i].type), "required", f[i].required, "help",
                              ps_ui_zh(rq) ? f[i].help_zh : f[i].help_en, "options", field_options(rq, kind, &f[i]));
        if (f[i].stored)
            json_object_set_new(o, "stored", json_string(f[i].stored));
        if (f[i].type == PS_FT_REF)
            json_object_set_new(o, "ref_kind", json_string(strcmp(f[i].name, "household_id") == 0 ? "household" : "person"));
        json_array_append_new(arr, o);
    }
    return ps_ui_reply_json(rq, 200, json_pack("{s:s,s:o}", "kind", ps_kind_name(kind), "fields", arr));
}

/* --- one record, and the person page ----------------------------------------------------- */

/* History as the cache knows it: made, last changed (when, by which device),
 * the server's revision, and the changes waiting or refused. */
static json_t *history_json(ps_ui_req_t *rq, const Popsync__Record *r)
{
    const uint8_t *me = ps_cache_meta(ps_ui_cache(rq))->node;
    char node[33] = "";
    int mine = r->changed_by.len == 16 && memcmp(r->changed_by.data, me, 16) == 0;

    if (r->changed_by.len == 16)
        ps_hex(r->changed_by.data, 16, node);
    return json_pack("{s:o,s:o,s:o,s:s,s:b}", "created_ms", ps_json_i64(r->created_ms), "updated_ms",
                     ps_json_i64(r->updated_ms), "gen", r->rev ? ps_json_u64(r->rev->gen) : json_null(), "changed_by",
                     node, "by_this_device", mine);
}

/* GET /api/record/ID: the record, its state, history and (a person) its
 * linked records. */
static int h_record(ps_ui_req_t *rq)
{
    uint8_t id[PS_ID_LEN];
    Popsync__Record *r = NULL;
    json_t *o;
    int rc;

    if (id_arg(ps_ui_rest(rq), id))
        return ps_ui_reply_error(rq, 400, "not a record id", "不是记录 ID");
    if ((rc = ps_cache_get(ps_ui_cache(rq), id, &r)) == PS_ENOTFOUND) {
        /* A refused new record exists only in the refused list. */
        json_t *st = ps_ui_record_state(rq, id, NULL);
        if (strcmp(json_string_value(json_object_get(st, "state")), "refused") == 0)
            return ps_ui_reply_json(rq, 200, json_pack("{s:n,s:o}", "record", "state", st));
        json_decref(st);
        return ps_ui_reply_error(rq, 404, "no such record in this cache", "本机缓存中没有这条记录");
    }
    if (rc)
        return ps_ui_reply_error(rq, 500, ps_strerror(rc), NULL);
    o = json_pack("{s:o,s:o,s:o}", "record", ps_ui_record_json(rq, r), "state", ps_ui_record_state(rq, id, r),
                  "history", history_json(rq, r));
    json_object_set_new(o, "linked", ps_ui_linked_json(rq, r));
    ps_record_free(r);
    return ps_ui_reply_json(rq, 200, o);
}

/* GET /api/history/ID: the record's versions with who and when, asked of
 * the server (history.h) within the page's wait: {offline: false, history};
 * when the server cannot be reached {offline: true, error}, when it did not
 * answer in time {offline: true, late: true, error: the plain sentence},
 * when it did not answer lately {offline: true, held: true, error: since
 * when} without asking it (ui_reach.h); the page then keeps what the cache
 * holds (GET /api/record's history).  Each answer says held and, while the
 * server is remembered as silent, since_ms and retry_ms. */
static int h_history(ps_ui_req_t *rq)
{
    uint8_t id[PS_ID_LEN];
    json_t *h = NULL, *o;
    char err[512], zh[600];
    int reached = 0, rc;

    if (id_arg(ps_ui_rest(rq), id))
        return ps_ui_reply_error(rq, 400, "not a record id", "不是记录 ID");
    if (ps_ui_reach_held(rq)) {
        ps_ui_reach_note(rq, zh, sizeof(zh));
        o = json_pack("{s:b,s:b,s:s}", "offline", 1, "late", 0, "error", zh);
        return ps_ui_reply_json(rq, 200, ps_ui_reach_json(rq, o, 1));
    }
    rc = ps_history_ask(ps_ui_cache(rq), id, ps_ui_server_wait_ms(rq), &h, &reached, err, sizeof(err));
    ps_ui_reach_outcome(rq, rc, reached);
    if (rc == PS_OK) {
        o = json_pack("{s:b,s:o}", "offline", 0, "history", h);
    } else if (rc == PS_ETIMEDOUT) {
        ps_ui_server_late(rq, zh, sizeof(zh));
        o = json_pack("{s:b,s:b,s:s}", "offline", 1, "late", 1, "error", zh);
    } else {
        snprintf(zh, sizeof(zh), "%s%s", reached ? "服务器拒绝：" : "无法连接服务器：", err);
        o = json_pack("{s:b,s:s}", "offline", !reached, "error", ps_ui_zh(rq) ? zh : err);
    }
    return ps_ui_reply_json(rq, 200, ps_ui_reach_json(rq, o, 0));
}

/* --- lists, paged and filtered ---------------------------------------------------------- */

typedef struct list_ctx {
    ps_ui_req_t *rq;
    int kind;           /* -1: any */
    const char *q;      /* substring of any value, or NULL */
    int deleted;
    size_t limit, scanned;
    json_t *rows;
    uint8_t last[PS_ID_LEN];
    int more;
} list_ctx_t;

/* Does any value of r (as text) contain q? */
static int value_matches(const Popsync__Record *r, const char *q)
{
    size_t nf;
    const ps_field_t *f = ps_fields_of((int)r->kind, &nf);

    for (size_t i = 0; i < nf; i++) {
        char v[PS_FIELD_NORM_MAX];
        if (f[i].type != PS_FT_REF && ps_record_get_text(r, f[i].name, v, sizeof(v)) == PS_OK && strstr(v, q))
            return 1;
    }
    return 0;
}

static int list_one(Popsync__Record *r, void *arg)
{
    list_ctx_t *l = arg;
    json_t *o;

    memcpy(l->last, r->id.data, PS_ID_LEN);
    if (++l->scanned > SCAN_MAX)
        return l->more = 1;
    if ((l->kind >= 0 && (int)r->kind != l->kind) || (!l->deleted && r->deleted))
        return 0;
    if (l->q && *l->q && !value_matches(r, l->q))
        return 0;
    o = ps_ui_record_json(l->rq, r);
    json_object_set_new(o, "state", ps_ui_record_state(l->rq, r->id.data, r));
    json_array_append_new(l->rows, o);
    if (json_array_size(l->rows) >= l->limit)
        return l->more = 1;
    return 0;
}

/* GET /api/list?kind=&q=&after=ID&limit=N&pending=1: a page of records in
 * id order from after; "next" continues (null at the end). */
static int h_list(ps_ui_req_t *rq)
{
    const char *kn = ps_ui_arg(rq, "kind"), *after = ps_ui_arg(rq, "after"), *ls = ps_ui_arg(rq, "limit");
    const char *pend = ps_ui_arg(rq, "pending");
    list_ctx_t l;
    uint8_t from[PS_ID_LEN];
    long limit = ls ? strtol(ls, NULL, 10) : 50;
    int rc;

    memset(&l, 0, sizeof(l));
    l.rq = rq;
    l.kind = kn && *kn ? ps_kind_from_name(kn) : -1;
    l.q = ps_ui_arg(rq, "q");
    l.limit = limit < 1 || limit > PAGE_MAX ? 50 : (size_t)limit;
    l.rows = json_array();
    if (after && *after && id_arg(after, from)) {
        json_decref(l.rows);
        return ps_ui_reply_error(rq, 400, "bad cursor", "分页参数错误");
    }
    if (pend && strcmp(pend, "1") == 0)
        rc = ps_cache_foreach_pending(ps_ui_cache(rq), list_one, &l);
    else
        rc = ps_cache_foreach_after(ps_ui_cache(rq), after && *after ? from : NULL, list_one, &l);
    if (rc) {
        json_decref(l.rows);
        return ps_ui_reply_error(rq, 500, ps_strerror(rc), NULL);
    }
    return ps_ui_reply_json(rq, 200, json_pack("{s:o,s:o,s:I}", "rows", l.rows, "next",
                                               l.more && !pend ? uuid_json(l.last) : json_null(), "scanned",
                                               (json_int_t)l.scanned));
}

/* --- add and edit ------------------------------------------------------------------------ */

static void add_error(ps_ui_req_t *rq, json_t *errs, const Popsync__Record *r, const char *field, const char *en)
{
    char t[512], raw[256], shown[128] = "", pre[160];

    if (r && ps_record_get_text(r, field, raw, sizeof(raw)) == PS_OK && *raw)
        ps_field_shown((int)r->kind, field, raw, shown, sizeof(shown));
    /* record_fmt's "field 'person_id': REASON": the field is beside it. */
    snprintf(pre, sizeof(pre), "field '%s': ", field);
    if (strncmp(en, pre, strlen(pre)) == 0)
        en += strlen(pre);
    json_array_append_new(errs, json_pack("{s:s,s:s,s:s}", "field", field, "reason",
                                          ps_ui_zh(rq) ? ps_i18n_reason(en, t, sizeof(t)) : en, "value", shown));
}

/* The values typed, field by field: every bad one is reported (not only
 * the first), next to its field. */
static void apply_values(ps_ui_req_t *rq, Popsync__Record *r, json_t *values, int is_new, json_t *errs)
{
    const char *k;
    json_t *v;

    /* A person field may hold the person's ID number, as in `popsync add`
     * (the resolver is set per request: ui.c's dispatch). */
    json_object_foreach(values, k, v) {
        char err[256];
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (!s || (is_new && !*s))
            continue;
        if (ps_record_set(r, k, s, err, sizeof(err)) != PS_OK)
            add_error(rq, errs, NULL, k, err);
    }
    ps_fields_complete(r);
}

/* Validation as the CLI's add and edit do it (vctx.c, validate.c, xrules.c). */
static void validate(ps_ui_req_t *rq, const Popsync__Record *r, const Popsync__Record *current, json_t *errs)
{
    ps_cache_t *c = ps_ui_cache(rq);
    ps_client_vctx_t vc;
    ps_verrs_t v;
    Popsync__Record *dup = NULL;
    size_t n;

    memset(&v, 0, sizeof(v));
    ps_client_vctx_init(&vc, c);
    vc.ctx.current = current;
    n = ps_validate_record(r, &vc.ctx, &v);
    ps_client_vctx_free(&vc);
    if (n == 0)
        n = ps_xrules_check(c, r, current, &v);
    for (size_t i = 0; i < v.n && i < PS_VERR_MAX; i++)
        add_error(rq, errs, r, v.e[i].field, v.e[i].reason);
    /* One live person per ID number; an edit keeping its own number is no
     * new registration (as the CLI's edit). */
    if (r->body_case == POPSYNC__RECORD__BODY_PERSON &&
        !(current && current->body_case == POPSYNC__RECORD__BODY_PERSON && current->person->id_number &&
          r->person->id_number && strcmp(current->person->id_number, r->person->id_number) == 0) &&
        ps_dup_person(c, r, &dup) == PS_OK && dup) {
        char why[256];
        json_array_append_new(errs, json_pack("{s:s,s:s,s:s}", "field", "id_number", "reason",
                                              ps_dup_describe(dup, ps_ui_zh(rq), why, sizeof(why)), "value", ""));
        ps_record_free(dup);
    }
}

typedef struct other_refusal {
    ps_ui_req_t *rq;
    json_t *errs;
    const char *owner;
} other_refusal_t;

/* One change the other place may not make, next to its field: the
 * server's wording (as the CLI prints it) and what to do. */
static void other_refused(const char *field, const char *reason, void *arg)
{
    other_refusal_t *o = arg;
    char t[512], zh[512];

    if (ps_ui_zh(o->rq))
        snprintf(t, sizeof(t), "%s（登记地：%s）", ps_i18n_reason(reason, zh, sizeof(zh)), o->owner);
    else
        snprintf(t, sizeof(t), "%s: this place is the migration's other place; ask the registering township "
                 "(orgunit %s) to change it", reason, o->owner);
    json_array_append_new(o->errs, json_pack("{s:s,s:s,s:s}", "field", field, "reason", t, "value", ""));
}

/* The other place of a migration may set only its submitted and feedback
 * dates: refused here, offline, by the CLI's own check
 * (cmd_migrations.c ps_other_place_check), not first at sync. */
void ps_ui_other_place_errors(ps_ui_req_t *rq, const Popsync__Record *r, const Popsync__Record *current, json_t *errs)
{
    other_refusal_t o = {rq, errs, current && current->orgunit ? current->orgunit : "?"};

    if (current)
        ps_other_place_check(ps_ui_cache(rq), current, r, other_refused, &o);
}

/* A new record of kind, owned by this cache's unit. */
static int new_record(ps_ui_req_t *rq, int kind, Popsync__Record **out)
{
    Popsync__Record *r = NULL;
    char err[128];

    if (ps_record_new(&r, kind) != PS_OK || !(r->id.data = malloc(PS_ID_LEN)))
        goto fail;
    r->id.len = PS_ID_LEN;
    if (ps_uuid7(r->id.data) != PS_OK ||
        ps_record_set(r, "orgunit", ps_cache_meta(ps_ui_cache(rq))->orgunit, err, sizeof(err)) != PS_OK)
        goto fail;
    *out = r;
    return PS_OK;
fail:
    ps_record_free(r);
    return PS_ENOMEM;
}

/* POST /api/record/save {kind, id?, values{field: text}, check?}: adds or
 * edits; {errors: [{field, reason, value}]} when anything is wrong (nothing
 * stored), else {id}.  check: validate only (the form as it is typed). */
static int h_save(ps_ui_req_t *rq)
{
    json_t *b = ps_ui_body_json(rq), *values, *errs;
    const char *kn = b ? json_string_value(json_object_get(b, "kind")) : NULL;
    const char *idt = b ? json_string_value(json_object_get(b, "id")) : NULL;
    int check = b && json_is_true(json_object_get(b, "check"));
    Popsync__Record *r = NULL, *current = NULL;
    uint8_t id[PS_ID_LEN];
    int kind = kn ? ps_kind_from_name(kn) : -1, rc;

    values = b ? json_object_get(b, "values") : NULL;
    if (kind < 0 || !json_is_object(values))
        return ps_ui_reply_error(rq, 400, "give kind and values", "缺少记录类型或字段值");
    if (idt && *idt) {
        if (id_arg(idt, id) || ps_cache_get(ps_ui_cache(rq), id, &current) != PS_OK)
            return ps_ui_reply_error(rq, 404, "no such record in this cache", "本机缓存中没有这条记录");
        if ((int)current->kind != kind || current->deleted) {
            ps_record_free(current);
            return ps_ui_reply_error(rq, 400, "not a live record of that kind", "不是这一类型的有效记录");
        }
        {
            size_t sz = protobuf_c_message_get_packed_size(&current->base);
            uint8_t *buf = malloc(sz ? sz : 1);
            if (buf) {
                protobuf_c_message_pack(&current->base, buf);
                r = popsync__record__unpack(NULL, sz, buf);
                free(buf);
            }
        }
    } else if (new_record(rq, kind, &r) != PS_OK) {
        r = NULL;
    }
    if (!r) {
        ps_record_free(current);
        return ps_ui_reply_error(rq, 500, "out of memory", NULL);
    }
    errs = json_array();
    apply_values(rq, r, values, current == NULL, errs);
    if (json_array_size(errs) == 0)
        ps_ui_other_place_errors(rq, r, current, errs);
    if (json_array_size(errs) == 0)
        validate(rq, r, current, errs);
    if (json_array_size(errs) || check) {
        rc = ps_ui_reply_json(rq, 200, json_pack("{s:o,s:o}", "errors", errs, "id", uuid_json(r->id.data)));
    } else if ((rc = ps_cache_put_local(ps_ui_cache(rq), r)) != PS_OK) {
        json_decref(errs);
        rc = ps_ui_reply_error(rq, 500, ps_strerror(rc), "无法保存记录");
    } else {
        json_decref(errs);
        rc = ps_ui_reply_json(rq, 200, json_pack("{s:o,s:[]}", "id", uuid_json(r->id.data), "errors"));
    }
    ps_record_free(r);
    ps_record_free(current);
    return rc;
}

/* GET /api/dupcheck?id_number=X&self=ID: as the ID number is typed: is it
 * well formed, and is it someone else's already? */
static int h_dupcheck(ps_ui_req_t *rq)
{
    const char *idn = ps_ui_arg(rq, "id_number"), *self = ps_ui_arg(rq, "self");
    Popsync__Record *r = NULL, *dup = NULL;
    char err[256], why[256], t[256];
    const char *bad;
    json_t *o;

    if (!idn || !*idn)
        return ps_ui_reply_json(rq, 200, json_object());
    if (new_record(rq, POPSYNC__KIND__KIND_PERSON, &r) != PS_OK)
        return ps_ui_reply_error(rq, 500, "out of memory", NULL);
    if (self && *self)
        ps_uuid_parse(self, r->id.data);
    if (ps_record_set(r, "id_number", idn, err, sizeof(err)) != PS_OK) {
        ps_record_free(r);
        return ps_ui_reply_json(rq, 200, json_pack("{s:s}", "invalid", ps_ui_zh(rq) ? ps_i18n_reason(err, t, sizeof(t)) : err));
    }
    bad = strlen(r->person->id_number) == 18 ? ps_validate_id_number(r->person->id_number) : NULL;
    o = json_object();
    if (bad)
        json_object_set_new(o, "invalid", json_string(ps_ui_zh(rq) ? ps_i18n_reason(bad, t, sizeof(t)) : bad));
    else if (ps_dup_person(ps_ui_cache(rq), r, &dup) == PS_OK && dup) {
        json_object_set_new(o, "duplicate", json_string(ps_dup_describe(dup, ps_ui_zh(rq), why, sizeof(why))));
        json_object_set_new(o, "duplicate_id", uuid_json(dup->id.data));
        json_object_set_new(o, "duplicate_name", json_string(dup->person->name ? dup->person->name : ""));
        ps_record_free(dup);
    }
    ps_record_free(r);
    return ps_ui_reply_json(rq, 200, o);
}

static const ps_ui_route_t town_routes[] = {
    {"GET", "/api/find", 0, 1, h_find},
    {"GET", "/api/fields", 0, 0, h_fields},
    {"GET", "/api/record/", 1, 1, h_record},
    {"GET", "/api/history/", 1, 1, h_history},
    {"GET", "/api/list", 0, 1, h_list},
    {"GET", "/api/dupcheck", 0, 1, h_dupcheck},
    {"POST", "/api/record/save", 0, 1, h_save},
};

static const ps_ui_nav_t town_nav[] = {
    {"/index.html", "查找", "Search", NULL},
    {"/records.html", "记录", "Records", NULL},
    {"/edit.html?kind=person", "新增人员", "New person", NULL},
};

const ps_ui_module_t ps_ui_town_module = {"town", town_routes, sizeof(town_routes) / sizeof(town_routes[0]),
                                          town_nav, sizeof(town_nav) / sizeof(town_nav[0])};
