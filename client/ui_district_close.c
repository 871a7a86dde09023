/* ui_district_close.c - the monthly close, the quality report and the node
 * status for the district's pages (ui_district.h).  Each asks the server
 * in one no-sync session, as `popsync report submit|approve|return|status`,
 * `popsync report quality` and `popsync status --all` do: the close lives
 * on the server, and who may do what is the server's decision
 * (docs/queries.md §1); the page only hides the buttons a role may not use. */
#include "ui_district.h"

#include "err.h"
#include "ids.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "report.h"
#include "wire.pb-c.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NOTE_MAX 500

static ProtobufCMessage *copy_msg(const ProtobufCMessage *m)
{
    size_t sz = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(sz ? sz : 1);
    ProtobufCMessage *out;
    if (!buf)
        return NULL;
    protobuf_c_message_pack(m, buf);
    out = protobuf_c_message_unpack(m->descriptor, NULL, sz, buf);
    free(buf);
    return out;
}

/* ---- the monthly close --------------------------------------------------------- */

typedef struct close_acc {
    ps_ui_req_t *rq;
    json_t *rows;
} close_acc_t;

static void on_close(const Popsync__CloseResult *r, void *arg)
{
    close_acc_t *a = arg;
    char name[128];
    ps_ui_district_unit_name(a->rq, r->orgunit, name, sizeof(name));
    json_array_append_new(a->rows, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s}", "month", r->month, "orgunit",
                                             r->orgunit, "name", name, "state", r->state, "at_ms",
                                             (json_int_t)r->at_ms, "by", r->by, "note", r->note));
}

typedef struct close_ask {
    Popsync__CloseRequest *const *reqs;
    size_t n;
    close_acc_t *acc;
} close_ask_t;

static int ask_close(ps_link_t *l, void *arg)
{
    close_ask_t *a = arg;
    return ps_rq_close_each(l->s, a->reqs, a->n, on_close, a->acc);
}

/* Sends the requests and replies {role, month, rows: [...]}. */
static int run_close(ps_ui_req_t *rq, const char *month, Popsync__CloseRequest *reqs, size_t n)
{
    Popsync__CloseRequest **rp = calloc(n ? n : 1, sizeof(*rp));
    close_acc_t acc = {rq, json_array()};
    const ps_cache_meta_t *m = ps_cache_meta(ps_ui_cache(rq));
    close_ask_t a;
    if (!rp) {
        json_decref(acc.rows);
        return ps_ui_reply_error(rq, 500, "out of memory", "内存不足");
    }
    for (size_t i = 0; i < n; i++)
        rp[i] = &reqs[i];
    a.reqs = rp;
    a.n = n;
    a.acc = &acc;
    if (ps_ui_district_session(rq, ask_close, &a) != 0) {
        free(rp);
        json_decref(acc.rows);
        return 0;
    }
    free(rp);
    return ps_ui_reply_json(rq, 200, json_pack("{s:s, s:s, s:s, s:o}", "role", m->role, "orgunit", m->orgunit,
                                               "month", month, "rows", acc.rows));
}

/* GET /api/district/close?month=YYYY-MM: the close state of every township
 * the cache may see (an administrator or viewer: all; a township: its own). */
int ps_ui_district_close_get(ps_ui_req_t *rq)
{
    const char *month = ps_ui_arg(rq, "month");
    const ps_cache_meta_t *m = ps_cache_meta(ps_ui_cache(rq));
    char (*codes)[16] = NULL;
    Popsync__CloseRequest *reqs;
    size_t n;
    int rc;
    if (!month || !ps_report_month_valid(month))
        return ps_ui_reply_error(rq, 400, "month must be YYYY-MM", "月份格式应为 YYYY-MM");
    if (strcmp(m->role, "admin") == 0 || strcmp(m->role, "viewer") == 0) {
        n = ps_ui_district_townships(rq, &codes);
    } else {
        codes = calloc(1, sizeof(*codes));
        n = codes ? 1 : 0;
        if (codes)
            ps_ui_district_township_of(rq, m->orgunit, codes[0]);
    }
    reqs = calloc(n ? n : 1, sizeof(*reqs));
    if (!reqs || (n && !codes)) {
        free(codes);
        free(reqs);
        return ps_ui_reply_error(rq, 500, "out of memory", "内存不足");
    }
    for (size_t i = 0; i < n; i++) {
        popsync__close_request__init(&reqs[i]);
        reqs[i].month = (char *)month;
        reqs[i].orgunit = codes[i];
        reqs[i].action = (char *)"status";
        reqs[i].note = (char *)"";
    }
    rc = run_close(rq, month, reqs, n);
    free(reqs);
    free(codes);
    return rc;
}

/* POST /api/district/close {month, orgunit, action: submit|approve|return,
 * note}: one step of the close; a return needs a note (the township sees
 * it).  The answer is the township's new state. */
int ps_ui_district_close_post(ps_ui_req_t *rq)
{
    json_t *b = ps_ui_body_json(rq);
    const char *month = b ? json_string_value(json_object_get(b, "month")) : NULL;
    const char *unit = b ? json_string_value(json_object_get(b, "orgunit")) : NULL;
    const char *action = b ? json_string_value(json_object_get(b, "action")) : NULL;
    const char *note = b ? json_string_value(json_object_get(b, "note")) : NULL;
    Popsync__CloseRequest req = POPSYNC__CLOSE_REQUEST__INIT;
    if (!month || !ps_report_month_valid(month) || !unit || strlen(unit) != 12)
        return ps_ui_reply_error(rq, 400, "month (YYYY-MM) and orgunit (12 digits) are required",
                                 "需要月份（YYYY-MM）和单位代码（12 位）");
    if (!action || (strcmp(action, "submit") != 0 && strcmp(action, "approve") != 0 && strcmp(action, "return") != 0))
        return ps_ui_reply_error(rq, 400, "action must be submit, approve or return", "操作应为上报、批准或退回");
    if (!note)
        note = "";
    if (strcmp(action, "return") == 0 && !*note)
        return ps_ui_reply_error(rq, 400, "a return needs a note for the township: what to fix",
                                 "退回时请填写说明，告诉镇街需要更正什么");
    if (strlen(note) > NOTE_MAX)
        return ps_ui_reply_error(rq, 400, "the note is too long (500 bytes at most)", "说明太长（最多 500 字节）");
    req.month = (char *)month;
    req.orgunit = (char *)unit;
    req.action = (char *)action;
    req.note = (char *)note;
    return run_close(rq, month, &req, 1);
}

/* ---- the quality report ---------------------------------------------------------- */

static void on_report(const Popsync__ReportResult *res, void *arg)
{
    Popsync__ReportResult **out = arg;
    if (!*out)
        *out = (Popsync__ReportResult *)copy_msg(&res->base);
}

static json_t *quality_json(ps_ui_req_t *rq, const Popsync__ReportResult *res, uint32_t offset)
{
    json_t *issues = json_array(), *counts = json_object();
    for (size_t i = 0; i < res->n_issues; i++) {
        const Popsync__QualityIssue *qi = res->issues[i];
        char id[PS_UUID_STR] = "", name[128], town[16] = "";
        if (qi->record_id.len == PS_ID_LEN)
            ps_uuid_format(qi->record_id.data, id);
        ps_ui_district_unit_name(rq, qi->orgunit, name, sizeof(name));
        ps_ui_district_township_of(rq, qi->orgunit, town);
        json_array_append_new(issues, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "check", qi->check,
                                                "record_id", id, "kind", ps_kind_name((int)qi->kind), "orgunit",
                                                qi->orgunit, "orgunit_name", name, "township", town, "detail",
                                                qi->detail));
    }
    for (size_t i = 0; i < res->n_issue_counts; i++)
        json_object_set_new(counts, res->issue_counts[i]->name, json_integer((json_int_t)res->issue_counts[i]->value));
    /* A server from before paging sends every issue and no total. */
    return json_pack("{s:o, s:o, s:I, s:I, s:I}", "issues", issues, "counts", counts, "total",
                     (json_int_t)(res->total_issues ? res->total_issues : res->n_issues), "offset",
                     (json_int_t)(res->total_issues ? offset : 0), "generated_ms", (json_int_t)res->generated_ms);
}

typedef struct report_ask {
    const Popsync__ReportRequest *rq;
    Popsync__ReportResult **res;
} report_ask_t;

static int ask_report(ps_link_t *l, void *arg)
{
    report_ask_t *a = arg;
    return ps_rq_report(l->s, a->rq, on_report, a->res);
}

/* A non-negative number argument, at most max; 0 when absent or not one. */
static uint32_t arg_u32(ps_ui_req_t *rq, const char *name, uint32_t max)
{
    const char *v = ps_ui_arg(rq, name);
    char *end = NULL;
    unsigned long n;
    if (!v || !*v)
        return 0;
    n = strtoul(v, &end, 10);
    if (*end || v[0] == '-')
        return 0;
    return n > max ? max : (uint32_t)n;
}

/* GET /api/district/quality[?offset=N&limit=M&check=C]: a page of the
 * issues in the report's order (unit, check, record), each with its record
 * id (the page links it to the record's page), unit and township; `total`
 * issues of the check asked for and `counts` per check.  No limit: every
 * issue (the dashboard's overdue count asks for check=feedback_overdue).
 * The server answers each page from its column projection (well under
 * 200 ms at 200,000 persons, docs/performance.md §l), so nothing is kept
 * here: every page is current. */
int ps_ui_district_quality(ps_ui_req_t *rq)
{
    Popsync__ReportRequest q = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__ReportResult *res = NULL;
    const char *check = ps_ui_arg(rq, "check");
    report_ask_t a = {&q, &res};
    json_t *j;
    q.report = (char *)"quality";
    q.month = (char *)"";
    q.orgunit = (char *)"";
    q.offset = arg_u32(rq, "offset", UINT32_MAX);
    q.limit = arg_u32(rq, "limit", 10000);
    q.check = (char *)(check ? check : "");
    if (ps_ui_district_session(rq, ask_report, &a) != 0)
        return 0;
    if (!res)
        return ps_ui_reply_error(rq, 500, "out of memory", "内存不足");
    j = quality_json(rq, res, q.offset);
    popsync__report_result__free_unpacked(res, NULL);
    return ps_ui_reply_json(rq, 200, j);
}

/* ---- status --all ------------------------------------------------------------------ */

static void on_nodes(const Popsync__NodeStatusResult *r, void *arg)
{
    json_t **out = arg;
    json_t *arr = json_array();
    char hex[2 * PS_ID_LEN + 1];
    for (size_t i = 0; i < r->n_nodes; i++) {
        const Popsync__NodeStatus *ns = r->nodes[i];
        hex[0] = '\0';
        if (ns->node.len == PS_ID_LEN)
            ps_hex(ns->node.data, PS_ID_LEN, hex);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b}", "node", hex, "name",
                                             ns->name, "role", ns->role, "orgunit", ns->orgunit, "last_seen_ms",
                                             (json_int_t)ns->last_seen_ms, "behind", (json_int_t)ns->behind,
                                             "conflicts_open", (json_int_t)ns->conflicts_open, "connected",
                                             ns->connected));
    }
    json_decref(*out);
    *out = json_pack("{s:I, s:I, s:I, s:o}", "head", (json_int_t)r->head, "conflicts_open",
                     (json_int_t)r->conflicts_open, "generated_ms", (json_int_t)r->generated_ms, "nodes", arr);
}

static int ask_nodes(ps_link_t *l, void *arg)
{
    return ps_rq_node_status(l->s, on_nodes, arg);
}

/* GET /api/district/nodes: `popsync status --all` (the server refuses
 * anyone but the administrator). */
int ps_ui_district_nodes(ps_ui_req_t *rq)
{
    json_t *out = NULL;
    if (ps_ui_district_session(rq, ask_nodes, &out) != 0) {
        json_decref(out);
        return 0;
    }
    if (!out)
        return ps_ui_reply_error(rq, 500, "no answer", "服务器没有回答");
    return ps_ui_reply_json(rq, 200, out);
}
