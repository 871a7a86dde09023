/* ui_district.c - the district module of `popsync ui` (ui_district.h):
 * its routes and navigation, the dashboard's and the monthly report's
 * data, and Chart.js served from Debian's copy. */
#include "ui_district.h"

#include "err.h"
#include "offline.h"
#include "orgunit.h"
#include "publish_site.h"
#include "report.h"
#include "ui_reach.h"
#include "wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TREND_MONTHS 12
/* The months before the one asked for come from the cache's counters
 * (cheap), kept this long in memory. */
#define MEMO_MS (60 * 1000)
#define MEMO_MAX 36

static const char *const RATE_KEYS[] = {"sex_ratio_at_birth",    "submission_rate_pct",  "feedback_rate_pct",
                                        "submitted_on_time_pct", "feedback_on_time_pct", "followup_rate_pct"};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- helpers shared with ui_district_close.c ---------------------------------- */

/* {error, held, since_ms, retry_ms}: a page that needs the server's answer
 * and has none, saying whether the server is remembered as silent. */
static void reply_down(ps_ui_req_t *rq, unsigned status, const char *en, const char *zh, int held)
{
    json_t *o = json_pack("{s:s}", "error", ps_ui_zh(rq) ? zh : en);
    ps_ui_reply_json(rq, status, ps_ui_reach_json(rq, o, held));
}

/* These answers live on the server only: nothing in the cache to show. */
static void reply_late(ps_ui_req_t *rq, int held)
{
    char note[256], en[400], zh[400];
    if (held) {
        ps_ui_reach_note(rq, note, sizeof(note));
        snprintf(en, sizeof(en), "%s: this page needs its answer; press Try again or come back later", note);
        snprintf(zh, sizeof(zh), "%s：本页内容要由服务器提供，请点“再试”或稍后再试", note);
    } else {
        unsigned s = (unsigned)(ps_ui_server_wait_ms(rq) / 1000u);
        snprintf(en, sizeof(en), "The district server did not answer within %u s: this page needs its answer; "
                 "try again later", s);
        snprintf(zh, sizeof(zh), "区县服务器未在 %u 秒内答复：本页内容要由服务器提供，请稍后再试", s);
    }
    reply_down(rq, 504, en, zh, held);
}

int ps_ui_district_session(ps_ui_req_t *rq, ps_link_ask_fn ask, void *arg)
{
    char err[512], zh[600];
    int welcomed = 0, rc;

    if (ps_ui_reach_held(rq)) {
        reply_late(rq, 1);
        return -1;
    }
    rc = ps_link_once_within(ps_ui_cache(rq), ps_ui_server_wait_ms(rq), ask, arg, &welcomed, err, sizeof(err));
    ps_ui_reach_outcome(rq, rc, welcomed);
    if (rc == PS_OK)
        return 0;
    if (rc == PS_ETIMEDOUT) {
        reply_late(rq, 0);
        return -1;
    }
    snprintf(zh, sizeof(zh), "%s%s", rc == PS_EREJECTED ? "服务器拒绝：" : "无法连接服务器：", err);
    /* 409: the server said no (the page shows why); 502: not reached */
    if (rc == PS_EREJECTED)
        ps_ui_reply_error(rq, 409, err, zh);
    else
        reply_down(rq, 502, err, zh, 0);
    return -1;
}

static ps_orgunits_t *tree_of(ps_ui_req_t *rq)
{
    uint8_t *csv = NULL, digest[32];
    size_t len = 0;
    ps_orgunits_t *t = NULL;
    char err[256];
    if (ps_cache_get_orgunits(ps_ui_cache(rq), &csv, &len, digest) == PS_OK)
        if (ps_orgunits_parse(csv, len, &t, err, sizeof(err)) != PS_OK)
            t = NULL;
    free(csv);
    return t;
}

size_t ps_ui_district_townships(ps_ui_req_t *rq, char (**codes)[16])
{
    ps_orgunits_t *t = tree_of(rq);
    size_t n = 0;
    *codes = NULL;
    if (!t)
        return 0;
    *codes = calloc(ps_orgunits_count(t) + 1, sizeof(**codes));
    for (size_t i = 0; *codes && i < ps_orgunits_count(t); i++)
        if (ps_orgunits_at(t, i)->depth == 1)
            snprintf((*codes)[n++], 16, "%s", ps_orgunits_at(t, i)->code);
    ps_orgunits_free(t);
    return n;
}

void ps_ui_district_township_of(ps_ui_req_t *rq, const char *unit, char out[16])
{
    ps_orgunits_t *t = tree_of(rq);
    const ps_orgunit_t *u = t && unit && *unit ? ps_orgunits_find(t, unit) : NULL;
    const ps_orgunit_t *town = u && u->depth == 1 ? u : u ? ps_orgunits_township(t, unit) : NULL;
    snprintf(out, 16, "%s", town ? town->code : "");
    ps_orgunits_free(t);
}

void ps_ui_district_unit_name(ps_ui_req_t *rq, const char *code, char *out, size_t len)
{
    ps_orgunits_t *t = tree_of(rq);
    const ps_orgunit_t *u = t && code && *code ? ps_orgunits_find(t, code) : NULL;
    snprintf(out, len, "%s", u ? u->name : "");
    ps_orgunits_free(t);
}

/* ---- the monthly reports ------------------------------------------------------- */

typedef struct memo {
    char month[8];
    int64_t at_ms;
    Popsync__ReportResult *res;
} memo_t;

/* Handlers run one at a time on the server's thread (ui.h): no lock. */
static memo_t memo[MEMO_MAX];

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

static void on_report(const Popsync__ReportResult *res, void *arg)
{
    Popsync__ReportResult **out = arg;
    if (!*out)
        *out = (Popsync__ReportResult *)copy_msg(&res->base);
}

/* The report of month from the cache's own counters (client/offline.c:
 * what the cache holds, no close state), or NULL. */
static Popsync__ReportResult *local_report(ps_ui_req_t *rq, const char *month)
{
    Popsync__ReportRequest q = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__ReportResult *res = NULL;
    char err[256];
    q.report = (char *)"monthly";
    q.month = (char *)month;
    q.orgunit = (char *)"";
    if (ps_offline_report(ps_ui_cache(rq), &q, &res, err, sizeof(err)) != PS_OK)
        return NULL;
    return res;
}

typedef struct month_ask {
    const Popsync__ReportRequest *rq;
    Popsync__ReportResult **res;
} month_ask_t;

static int ask_month(ps_link_t *l, void *arg)
{
    month_ask_t *a = arg;
    return ps_rq_report(l->s, a->rq, on_report, a->res);
}

/* How the month's report was had: *offline set when from the cache's
 * counters because the server was not reached, late too when it did not
 * answer within the page's wait, held when it was not asked because it
 * did not answer lately (ui_reach.h). */
typedef struct got {
    int offline, late, held;
} got_t;

/* The month's report from the server into *res, unless the server is held
 * as silent; got says why there is none.  -1 after replying with the
 * server's refusal. */
static int ask_fresh(ps_ui_req_t *rq, const char *month, Popsync__ReportResult **res, got_t *got)
{
    Popsync__ReportRequest q = POPSYNC__REPORT_REQUEST__INIT;
    month_ask_t a = {&q, res};
    char err[512];
    int welcomed = 0, rc;

    if (ps_ui_reach_held(rq)) {
        got->offline = got->held = 1;
        return 0;
    }
    q.report = (char *)"monthly";
    q.month = (char *)month;
    q.orgunit = (char *)"";
    rc = ps_link_once_within(ps_ui_cache(rq), ps_ui_server_wait_ms(rq), ask_month, &a, &welcomed, err, sizeof(err));
    ps_ui_reach_outcome(rq, rc, welcomed);
    if (rc == PS_EREJECTED) {
        char zh[600];
        snprintf(zh, sizeof(zh), "服务器拒绝：%s", err);
        ps_ui_reply_error(rq, 409, err, zh);
        return -1;
    }
    if (rc != PS_OK) {
        if (*res)
            popsync__report_result__free_unpacked(*res, NULL);
        *res = NULL;
        got->offline = 1;
        got->late = rc == PS_ETIMEDOUT;
    }
    return 0;
}

/* The monthly report of month in the cache's scope.  fresh: from the
 * server, as `popsync report monthly` gets it (its counters, the close
 * states and an approved month's frozen values), falling back to the
 * cache's counters when the server cannot be reached, does not answer
 * within the page's wait or did not answer lately (got).  Otherwise from
 * the cache's counters (no session: one sealed value per month), kept in
 * memo.  NULL after replying with the error. */
static const Popsync__ReportResult *month_report(ps_ui_req_t *rq, const char *month, int fresh, got_t *got)
{
    Popsync__ReportResult *res = NULL;
    memo_t *slot = &memo[0];
    for (size_t i = 0; i < MEMO_MAX; i++) {
        if (strcmp(memo[i].month, month) == 0) {
            if (!fresh && memo[i].res && now_ms() - memo[i].at_ms < MEMO_MS)
                return memo[i].res;
            slot = &memo[i];
            break;
        }
        if (memo[i].at_ms < slot->at_ms)
            slot = &memo[i];
    }
    if (fresh && ask_fresh(rq, month, &res, got) != 0)
        return NULL;
    if (!res && !(res = local_report(rq, month))) {
        ps_ui_reply_error(rq, 502, "cannot reach the server, and the cache has no report counters",
                          "无法连接服务器，本机缓存也没有统计数");
        return NULL;
    }
    if (slot->res)
        popsync__report_result__free_unpacked(slot->res, NULL);
    snprintf(slot->month, sizeof(slot->month), "%s", month);
    slot->at_ms = now_ms();
    slot->res = res;
    return res;
}

static json_t *row_json(const Popsync__ReportRow *r)
{
    json_t *v = json_object(), *rates = json_object();
    for (size_t i = 0; i < r->n_values; i++)
        json_object_set_new(v, r->values[i]->name, json_integer(r->values[i]->value));
    for (size_t i = 0; i < sizeof(RATE_KEYS) / sizeof(RATE_KEYS[0]); i++) {
        double x;
        json_object_set_new(rates, RATE_KEYS[i], ps_report_row_rate(r, RATE_KEYS[i], &x) ? json_real(x) : json_null());
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:o}", "code", r->orgunit ? r->orgunit : "", "name",
                     r->name ? r->name : "", "close_state", r->close_state ? r->close_state : "", "v", v, "r",
                     rates);
}

static json_t *report_json(const Popsync__ReportResult *res)
{
    json_t *rows = json_array(), *total = json_null();
    for (size_t i = 0; i < res->n_rows; i++) {
        const Popsync__ReportRow *r = res->rows[i];
        if (r->orgunit && *r->orgunit)
            json_array_append_new(rows, row_json(r));
        else {
            json_decref(total);
            total = row_json(r);
        }
    }
    return json_pack("{s:s, s:o, s:o, s:I, s:i, s:i}", "month", res->month ? res->month : "", "rows", rows, "total",
                     total, "generated_ms", (json_int_t)res->generated_ms, "deadline_urgent_days",
                     (int)res->deadline_urgent_days, "deadline_normal_days", (int)res->deadline_normal_days);
}

/* The month asked for (?month=YYYY-MM), else this month (UTC); NULL after
 * replying 400. */
static const char *month_arg(ps_ui_req_t *rq, char buf[8])
{
    const char *m = ps_ui_arg(rq, "month");
    if (m && *m) {
        if (!ps_report_month_valid(m)) {
            ps_ui_reply_error(rq, 400, "month must be YYYY-MM", "月份格式应为 YYYY-MM");
            return NULL;
        }
        return m;
    }
    {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, 8, "%Y-%m", &tm);
    }
    return buf;
}

static void month_back(const char *month, int n, char out[8])
{
    int y = atoi(month), m = atoi(month + 5) - n;
    while (m < 1) {
        m += 12;
        y--;
    }
    snprintf(out, 8, "%04u-%02u", (unsigned)y % 10000u, (unsigned)m % 100u);
}

/* A report had from the cache because the server was late or is held as
 * silent says so: {late, held, note: "The district server did not answer
 * within N s" or "... has not answered since HH:MM:SS; ...", since_ms,
 * retry_ms (ui_reach.h)}. */
static json_t *late_note(ps_ui_req_t *rq, const got_t *got, json_t *o)
{
    char note[256] = "";
    if (got->held)
        ps_ui_reach_note(rq, note, sizeof(note));
    else if (got->late)
        ps_ui_server_late(rq, note, sizeof(note));
    json_object_set_new(o, "late", json_boolean(got->late));
    json_object_set_new(o, "note", json_string(note));
    return ps_ui_reach_json(rq, o, got->held);
}

/* GET /api/district/dashboard?month=YYYY-MM: the month's report
 * (every township, the total, rates, close states) and the 11 months
 * before it, oldest first, for the trends and the drill-down. */
static int h_dashboard(ps_ui_req_t *rq)
{
    char mbuf[8], mk[8];
    const char *month = month_arg(rq, mbuf);
    json_t *months = json_array(), *data = json_array();
    int64_t t0 = now_ms();
    got_t got = {0, 0, 0};
    char stamp[256];
    if (!month) {
        json_decref(months);
        json_decref(data);
        return 0;
    }
    for (int i = TREND_MONTHS - 1; i >= 0; i--) {
        const Popsync__ReportResult *res;
        month_back(month, i, mk);
        res = month_report(rq, mk, i == 0, &got);
        if (!res) {
            json_decref(months);
            json_decref(data);
            return 0;
        }
        json_array_append_new(months, json_string(mk));
        json_array_append_new(data, report_json(res));
    }
    ps_offline_stamp(ps_ui_cache(rq), ps_ui_zh(rq), stamp, sizeof(stamp));
    return ps_ui_reply_json(rq, 200,
                            late_note(rq, &got,
                                      json_pack("{s:s, s:o, s:o, s:b, s:s, s:I}", "month", month, "months", months,
                                                "data", data, "offline", got.offline, "stamp", stamp, "took_ms",
                                                (json_int_t)(now_ms() - t0))));
}

/* GET /api/district/report?month=YYYY-MM: the monthly report (always asked
 * again: the printed report is the current one). */
static int h_report(ps_ui_req_t *rq)
{
    char mbuf[8], district[128] = "";
    const char *month = month_arg(rq, mbuf);
    const Popsync__ReportResult *res;
    json_t *o;
    ps_orgunits_t *t;
    got_t got = {0, 0, 0};
    char stamp[256];
    if (!month || !(res = month_report(rq, month, 1, &got)))
        return 0;
    if ((t = tree_of(rq))) {
        snprintf(district, sizeof(district), "%s", ps_orgunits_root(t)->name);
        ps_orgunits_free(t);
    }
    {
        /* a township's report is handed in by the township */
        const ps_cache_meta_t *m = ps_cache_meta(ps_ui_cache(rq));
        char own[16];
        if (strcmp(m->role, "admin") != 0 && strcmp(m->role, "viewer") != 0) {
            ps_ui_district_township_of(rq, m->orgunit, own);
            if (*own)
                ps_ui_district_unit_name(rq, own, district, sizeof(district));
        }
    }
    o = report_json(res);
    json_object_set_new(o, "district", json_string(district));
    json_object_set_new(o, "offline", json_boolean(got.offline));
    ps_offline_stamp(ps_ui_cache(rq), ps_ui_zh(rq), stamp, sizeof(stamp));
    json_object_set_new(o, "stamp", json_string(got.offline ? stamp : ""));
    return ps_ui_reply_json(rq, 200, late_note(rq, &got, o));
}

/* Chart.js from Debian's libjs-chart.js: nothing from the internet. */
static int h_chartjs(ps_ui_req_t *rq)
{
    FILE *f = fopen(PS_CHARTJS_PATH, "rb");
    char *data = NULL;
    long n = 0;
    int rc;
    if (!f)
        return ps_ui_reply_error(rq, 404, "Chart.js is not installed (Debian package libjs-chart.js)",
                                 "未安装 Chart.js（Debian 软件包 libjs-chart.js）");
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0 ||
        !(data = malloc((size_t)n)) || fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        fclose(f);
        return ps_ui_reply_error(rq, 500, "cannot read Chart.js", "无法读取 Chart.js");
    }
    fclose(f);
    rc = ps_ui_reply_data(rq, 200, "text/javascript; charset=utf-8", data, (size_t)n);
    free(data);
    return rc;
}

static const ps_ui_route_t district_routes[] = {
    {"GET", "/api/district/dashboard", 0, 1, h_dashboard},
    {"GET", "/api/district/report", 0, 1, h_report},
    {"GET", "/api/district/quality", 0, 1, ps_ui_district_quality},
    {"GET", "/api/district/close", 0, 1, ps_ui_district_close_get},
    {"POST", "/api/district/close", 0, 1, ps_ui_district_close_post},
    {"GET", "/api/district/nodes", 0, 1, ps_ui_district_nodes},
    {"GET", "/vendor/chart.js/chart.min.js", 0, 0, h_chartjs},
};

static const ps_ui_nav_t district_nav[] = {
    {"/district.html", "统计看板", "Dashboard", "admin,viewer"},
    {"/district_report.html", "统计月报", "Monthly report", "admin,viewer,township"},
    {"/district_quality.html", "数据质量", "Data quality", "admin,viewer,township"},
    {"/district_close.html", "月结", "Monthly close", "admin,viewer,township"},
    {"/district_nodes.html", "节点状态", "Nodes", "admin"},
};

const ps_ui_module_t ps_ui_district_module = {"district", district_routes,
                                              sizeof(district_routes) / sizeof(district_routes[0]), district_nav,
                                              sizeof(district_nav) / sizeof(district_nav[0])};
