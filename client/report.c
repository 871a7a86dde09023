/* report.c - `popsync query` and `popsync report` (issue 6).
 *
 * Every command here opens the cache, runs one no-sync session against the
 * server (sync.c: Hello/Welcome, then the Query pages, the ReportRequest or
 * the CloseRequests) and prints what came back.  Nothing is printed until
 * the whole answer is in, so a refused or cut request leaves no partial
 * table behind.  A server Error (a refused role, an unknown field) exits 1
 * with the server's message; an unreachable server exits 3.
 *
 * The server sends raw counts only; rates and yuan amounts are computed
 * here (docs/queries.md gives every definition).  Nothing here is logged:
 * records printed by `query --list` go to stdout because the user asked
 * for them.
 */
#include "report.h"
#include "panels.h"
#include "cache.h"
#include "cli.h"
#include "err.h"
#include "fields.h"
#include "i18n.h"
#include "ids.h"
#include "offline.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "scope.h"
#include "policy.h"
#include "link.h"
#include "rq.h"
#include "rq_query.h"
#include "validate.h"
#include "wire.pb-c.h"
#include "xlsx.h"
#include "vec.h"

#include <csv.h>
#include <jansson.h>

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WHERE 32
#define MAX_GROUP 8
#define JSON_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))

/* ---- pure helpers (report.h) ------------------------------------------- */

int ps_report_format_from_name(const char *name)
{
    if (strcmp(name, "table") == 0)
        return PS_REPORT_TABLE;
    if (strcmp(name, "csv") == 0)
        return PS_REPORT_CSV;
    if (strcmp(name, "json") == 0)
        return PS_REPORT_JSON;
    return -1;
}

int ps_report_lang_zh(const char *lang)
{
    const char *v;
    if (lang)
        return strcmp(lang, "zh") == 0 ? 1 : strcmp(lang, "en") == 0 ? 0 : -1;
    v = getenv("LC_ALL");
    if (!v || !*v)
        v = getenv("LANG");
    return v && strncmp(v, "zh", 2) == 0;
}

int ps_report_rate(int64_t num, int64_t den, double scale, double *out)
{
    if (den <= 0)
        return 0;
    *out = (double)num / (double)den * scale;
    return 1;
}

const char *ps_report_rate_text(int64_t num, int64_t den, double scale, int pct, char *buf, size_t len)
{
    double r;
    if (!ps_report_rate(num, den, scale, &r))
        snprintf(buf, len, "\xe2\x80\x94"); /* an em dash */
    else
        snprintf(buf, len, "%.1f%s", r, pct ? "%" : "");
    return buf;
}

const char *ps_report_yuan_text(int64_t fen, char *buf, size_t len)
{
    uint64_t a = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    snprintf(buf, len, "%s%llu.%02llu", fen < 0 ? "-" : "", (unsigned long long)(a / 100),
             (unsigned long long)(a % 100));
    return buf;
}

int ps_report_month_valid(const char *s)
{
    if (!s || strlen(s) != 7 || s[4] != '-')
        return 0;
    for (int i = 0; i < 7; i++)
        if (i != 4 && (s[i] < '0' || s[i] > '9'))
            return 0;
    return (s[5] == '0' && s[6] >= '1') || (s[5] == '1' && s[6] <= '2');
}

/* ---- indicators ---------------------------------------------------------- */

/* The counts of the monthly report, in the order they are printed. */
typedef struct ind_def {
    const char *key, *zh, *en;
} ind_def_t;

static const ind_def_t INDICATORS[] = {
    {"persons_total", "登记人口", "Registered persons"},
    {"persons_new", "新登记", "New registrations"},
    {"births_male", "出生(男)", "Births, boys"},
    {"births_female", "出生(女)", "Births, girls"},
    {"births_total", "出生合计", "Births"},
    {"inflow", "流入登记", "Inflow"},
    {"outflow", "流出登记", "Outflow"},
    {"migrations", "流动登记合计", "Migrations"},
    {"submitted", "已通报", "Submitted"},
    {"submitted_on_time", "及时通报", "Submitted on time"},
    {"feedback", "已反馈", "Feedback received"},
    {"feedback_on_time", "及时反馈", "Feedback on time"},
    {"benefits_paid", "奖扶发放人次", "Benefits paid"},
    {"benefits_paid_fen", "发放金额(分)", "Amount paid (fen)"},
    {"visits_prepregnancy_check", NULL, NULL},
    {"visits_reproductive_check", NULL, NULL},
    {"visits_followup", NULL, NULL},
    {"visits_contraceptive_supplies", NULL, NULL},
    {"visits_consultation", NULL, NULL},
    {"visits_total", "服务合计", "Service visits"},
};
#define NIND (sizeof(INDICATORS) / sizeof(INDICATORS[0]))

/* Rates computed from the counts: num / (den + den2) * scale. */
typedef struct rate_def {
    const char *key, *num, *den, *den2;
    double scale;
    int pct;
    const char *zh, *en;
} rate_def_t;

static const rate_def_t RATES[] = {
    {"sex_ratio_at_birth", "births_male", "births_female", NULL, 100.0, 0, "出生性别比", "Sex ratio"},
    {"submission_rate_pct", "submitted", "migrations", NULL, 100.0, 1, "通报率", "Submitted"},
    {"feedback_rate_pct", "feedback", "submitted", NULL, 100.0, 1, "反馈率", "Feedback"},
    {"submitted_on_time_pct", "submitted_on_time", "submitted", NULL, 100.0, 1, "及时通报率", "Subm. on time"},
    {"feedback_on_time_pct", "feedback_on_time", "feedback", NULL, 100.0, 1, "及时反馈率", "Fb. on time"},
    {"followup_rate_pct", "visits_followup", "visits_prepregnancy_check", "visits_reproductive_check", 100.0, 1,
     "随访率", "Follow-up rate"},
};
#define NRATES (sizeof(RATES) / sizeof(RATES[0]))

static const char *ind_label(const char *key, int zh)
{
    for (size_t i = 0; i < NIND; i++) {
        if (strcmp(INDICATORS[i].key, key) != 0)
            continue;
        if (INDICATORS[i].zh)
            return zh ? INDICATORS[i].zh : INDICATORS[i].en;
        return ps_service_label(key + strlen("visits_"), zh);
    }
    return key;
}

static int64_t row_value(const Popsync__ReportRow *r, const char *name)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < r->n_values; i++)
        if (r->values[i]->name && strcmp(r->values[i]->name, name) == 0)
            return r->values[i]->value;
    return 0;
}

static const char *rate_text(const Popsync__ReportRow *r, const rate_def_t *d, char *buf, size_t len)
{
    return ps_report_rate_text(row_value(r, d->num), row_value(r, d->den) + row_value(r, d->den2), d->scale, d->pct,
                               buf, len);
}

/* An indicator's value in JSON: amounts of money (names ending in "_fen")
 * are 64-bit strings like every amount popsync writes; counts are numbers. */
static json_t *value_json(const char *name, int64_t v)
{
    size_t n = name ? strlen(name) : 0;
    if (n >= 4 && strcmp(name + n - 4, "_fen") == 0)
        return ps_json_i64(v);
    return json_integer((json_int_t)v);
}

static json_t *rate_json(const Popsync__ReportRow *r, const rate_def_t *d)
{
    double v;
    if (!ps_report_rate(row_value(r, d->num), row_value(r, d->den) + row_value(r, d->den2), d->scale, &v))
        return json_null();
    return json_real(v);
}

int ps_report_row_rate(const Popsync__ReportRow *row, const char *key, double *out)
{
    for (size_t i = 0; i < NRATES; i++)
        if (strcmp(RATES[i].key, key) == 0)
            return ps_report_rate(row_value(row, RATES[i].num),
                                  row_value(row, RATES[i].den) + row_value(row, RATES[i].den2), RATES[i].scale, out);
    return 0;
}

static const char *state_label(const char *state, int zh)
{
    if (!state || !*state)
        return zh ? "未上报" : "open";
    if (strcmp(state, "submitted") == 0)
        return zh ? "已上报" : "submitted";
    if (strcmp(state, "approved") == 0)
        return zh ? "已批准" : "approved";
    if (strcmp(state, "returned") == 0)
        return zh ? "已退回" : "returned";
    return state;
}

/* The quality checks, in the order they are printed. */
static const ind_def_t CHECKS[] = {
    {"duplicate_id_number", "身份证号重复登记", "ID number registered more than once"},
    {"possible_duplicate", "姓名和出生日期相同，可能重复登记", "Same name and birth date: possible duplicate"},
    {"invalid_id_number", "身份证号无效", "Invalid ID number"},
    {"impossible_date", "日期不合理", "Impossible date"},
    {"missing_mother", "出生记录的母亲不存在", "Birth whose mother is missing"},
    {"dangling_reference", "引用的记录不存在或已删除", "Reference to a missing or deleted record"},
    {"feedback_overdue", "流动人口信息超期未反馈", "Migration feedback overdue"},
};
#define NCHECKS (sizeof(CHECKS) / sizeof(CHECKS[0]))

/* ---- text tables ----------------------------------------------------------- */

/* Cells row-major; widths by display width (CJK counts 2). */
typedef struct tbl {
    char **cells;
    size_t ncols, n, cap;
    size_t left;  /* columns 0..left-1 are left-aligned, the rest right-aligned */
    int oom;
} tbl_t;

static void tbl_init(tbl_t *t, size_t ncols, size_t left)
{
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    t->left = left;
}

static void tbl_add(tbl_t *t, const char *s)
{
    char *c;
    if (t->oom)
        return;
    if (PS_VEC_ROOM(t->cells, t->n, t->cap, 64)) {
        t->oom = 1;
        return;
    }
    c = strdup(s ? s : "");
    if (!c) {
        t->oom = 1;
        return;
    }
    for (char *p = c; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    t->cells[t->n++] = c;
}

static void tbl_addf(tbl_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tbl_addf(tbl_t *t, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    tbl_add(t, buf);
}

static void pad(FILE *f, size_t n)
{
    while (n--)
        fputc(' ', f);
}

/* The widest cell of each column; NULL on ENOMEM (caller frees). */
static size_t *tbl_widths(const tbl_t *t)
{
    size_t rows = t->ncols ? t->n / t->ncols : 0;
    size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof(*w));
    if (!w)
        return NULL;
    for (size_t i = 0; i < rows * t->ncols; i++) {
        size_t cw = ps_utf8_width(t->cells[i]);
        if (cw > w[i % t->ncols])
            w[i % t->ncols] = cw;
    }
    return w;
}

/* Prints the columns cols[0..ncols) of t. */
static void tbl_print_cols(const tbl_t *t, const size_t *w, const size_t *cols, size_t ncols, FILE *f,
                           const char *indent)
{
    size_t rows = t->ncols ? t->n / t->ncols : 0;
    for (size_t r = 0; r < rows; r++) {
        fputs(indent, f);
        for (size_t k = 0; k < ncols; k++) {
            size_t c = cols[k];
            const char *cell = t->cells[r * t->ncols + c];
            size_t gap = w[c] - ps_utf8_width(cell);
            if (c >= t->left)
                pad(f, gap);
            fputs(cell, f);
            if (k + 1 < ncols)
                pad(f, (c < t->left ? gap : 0) + 2);
        }
        fputc('\n', f);
    }
}

static void tbl_print(const tbl_t *t, FILE *f, const char *indent)
{
    size_t *w = tbl_widths(t), *cols = calloc(t->ncols ? t->ncols : 1, sizeof(*cols));
    if (w && cols) {
        for (size_t c = 0; c < t->ncols; c++)
            cols[c] = c;
        tbl_print_cols(t, w, cols, t->ncols, f, indent);
    }
    free(w);
    free(cols);
}

/* Prints t in panels no wider than maxw display columns (a terminal of 100
 * columns holds a report): each panel repeats the nkey key columns (code,
 * unit) and takes as many of the others, in order, as fit. */
#define PS_REPORT_WIDTH 100
static void tbl_print_fit(const tbl_t *t, FILE *f, size_t nkey, size_t maxw)
{
    size_t *w = tbl_widths(t), *cols = calloc(t->ncols ? t->ncols : 1, sizeof(*cols));
    size_t keyw = 0, c = nkey;
    int first = 1;

    if (!w || !cols)
        goto out;
    for (size_t k = 0; k < nkey && k < t->ncols; k++) {
        cols[k] = k;
        keyw += w[k] + 2;
    }
    while (c < t->ncols) {
        size_t n = nkey, width = keyw;
        /* At least one column per panel, however wide. */
        while (c < t->ncols && (n == nkey || width + w[c] <= maxw)) {
            width += w[c] + 2;
            cols[n++] = c++;
        }
        if (!first)
            fputc('\n', f);
        first = 0;
        tbl_print_cols(t, w, cols, n, f, "");
    }
out:
    free(w);
    free(cols);
}

static void tbl_free(tbl_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

static void csv_cell(FILE *f, const char *s, int first)
{
    if (!first)
        fputc(',', f);
    csv_fwrite(f, s ? s : "", strlen(s ? s : ""));
}

static void csv_end(FILE *f)
{
    fputs("\r\n", f);
}

/* ---- common plumbing -------------------------------------------------------- */

/* A deep copy of a message that dies with its callback. */
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

static int open_cache(ps_cli_t *cli, const char *cmd, ps_cache_t **c)
{
    char err[512];
    if (ps_cache_open(c, cli->data_dir, err, sizeof(err)) != PS_OK) {
        ps_cli_err("%s: %s", cmd, err);
        return PS_EXIT_FAIL;
    }
    return PS_EXIT_OK;
}

/* Asks on a link of its own (no push, no pull); maps failures to exit codes.
 * With fallback: when the server was not reached (no Welcome), says so in
 * one line and sets *fallback: the caller answers from the cache. */
static int run_session(ps_cache_t *c, ps_link_ask_fn ask, void *arg, const char *cmd, int *fallback)
{
    char err[512];
    int welcomed = 0;
    int rc = ps_link_once(c, ask, arg, &welcomed, err, sizeof(err));
    if (rc == PS_OK)
        return PS_EXIT_OK;
    if (fallback && !welcomed) {
        ps_cli_err("%s: the server cannot be reached (%s): answering from the local cache", cmd, err);
        *fallback = 1;
        return PS_EXIT_OK;
    }
    ps_cli_err("%s: %s", cmd, err);
    return rc == PS_EREJECTED ? PS_EXIT_FAIL : PS_EXIT_SYNC;
}

/* The cache's org-unit tree, or NULL when it has none. */
static ps_orgunits_t *load_tree(ps_cache_t *c)
{
    uint8_t *csv = NULL, digest[32];
    size_t len = 0;
    ps_orgunits_t *t = NULL;
    char err[256];
    if (ps_cache_get_orgunits(c, &csv, &len, digest) == PS_OK)
        if (ps_orgunits_parse(csv, len, &t, err, sizeof(err)) != PS_OK)
            t = NULL;
    free(csv);
    return t;
}

static const char *unit_name(const ps_orgunits_t *t, const char *code)
{
    const ps_orgunit_t *u = t && code && *code ? ps_orgunits_find(t, code) : NULL;
    return u ? u->name : "";
}

static int parse_lang(const char *cmd, const char *lang, int *zh)
{
    *zh = ps_report_lang_zh(lang);
    if (*zh < 0) {
        ps_cli_err("%s: --lang must be zh or en", cmd);
        return PS_EXIT_USAGE;
    }
    return PS_EXIT_OK;
}

static int parse_format(const char *cmd, const char *name, int *fmt)
{
    *fmt = ps_report_format_from_name(name);
    if (*fmt < 0) {
        ps_cli_err("%s: --format must be table, csv or json", cmd);
        return PS_EXIT_USAGE;
    }
    return PS_EXIT_OK;
}

static int parse_uint(const char *cmd, const char *opt, const char *s, unsigned long max, uint32_t *out)
{
    char *end;
    unsigned long v;
    if (!s || !*s || *s == '-' || *s == '+')
        goto bad;
    v = strtoul(s, &end, 10);
    if (*end || v < 1 || v > max)
        goto bad;
    *out = (uint32_t)v;
    return PS_EXIT_OK;
bad:
    ps_cli_err("%s: %s needs a whole number from 1 to %lu", cmd, opt, max);
    return PS_EXIT_USAGE;
}

/* Stamps an answer from the cache (offline.h): the first line of a table;
 * on stderr for CSV, JSON and xlsx, whose output stays machine-readable. */
static void print_stamp(ps_cache_t *c, int fmt, int zh)
{
    char stamp[512];
    ps_offline_stamp(c, zh, stamp, sizeof(stamp));
    if (fmt == PS_REPORT_TABLE)
        printf("(%s)\n", stamp);
    else
        fprintf(stderr, "popsync: %s\n", stamp);
}

static void print_json(json_t *j)
{
    json_dumpf(j, stdout, JSON_FLAGS);
    fputc('\n', stdout);
}

/* ---- popsync query --------------------------------------------------------- */

typedef struct qrow {
    char **key;
    uint64_t count;
    int64_t sum;
} qrow_t;

typedef struct query_ctx {
    qrow_t *rows;
    size_t nrows, cap;
    Popsync__Record **recs;
    size_t nrecs, rcap;
    size_t max_recs;        /* --limit: keep at most this many (0: all) */
    size_t nkey;            /* keys per row (our group_by) */
    uint64_t scanned, matched;
    int oom;
    const Popsync__Query *q; /* what is asked */
} query_ctx_t;

static void on_query(const Popsync__QueryResult *res, void *arg)
{
    query_ctx_t *q = arg;
    q->scanned += res->scanned;
    if (res->matched > q->matched)
        q->matched = res->matched;
    for (size_t i = 0; i < res->n_rows && !q->oom; i++) {
        const Popsync__QueryRow *in = res->rows[i];
        qrow_t *out;
        if (PS_VEC_ROOM(q->rows, q->nrows, q->cap, 64)) {
            q->oom = 1;
            return;
        }
        out = &q->rows[q->nrows];
        out->key = calloc(q->nkey ? q->nkey : 1, sizeof(char *));
        if (!out->key) {
            q->oom = 1;
            return;
        }
        for (size_t k = 0; k < q->nkey; k++)
            if (!(out->key[k] = strdup(k < in->n_key && in->key[k] ? in->key[k] : "")))
                q->oom = 1;
        out->count = in->count;
        out->sum = in->sum;
        q->nrows++;
    }
    for (size_t i = 0; i < res->n_records && !q->oom && (!q->max_recs || q->nrecs < q->max_recs); i++) {
        Popsync__Record *copy;
        if (PS_VEC_ROOM(q->recs, q->nrecs, q->rcap, 256)) {
            q->oom = 1;
            return;
        }
        copy = (Popsync__Record *)copy_msg(&res->records[i]->base);
        if (!copy) {
            q->oom = 1;
            return;
        }
        q->recs[q->nrecs++] = copy;
    }
}

static int ask_query(ps_link_t *l, void *arg)
{
    query_ctx_t *qc = arg;
    return ps_rq_query(l->s, qc->q, qc->max_recs, on_query, qc);
}

static int is_unit_key(const char *g)
{
    return strcmp(g, "unit") == 0 || strcmp(g, "township") == 0 || strcmp(g, "orgunit") == 0;
}

static void print_groups(const query_ctx_t *q, char **group, int sum, int fmt, const ps_orgunits_t *tree, int zh)
{
    if (fmt == PS_REPORT_JSON) {
        json_t *arr = json_array();
        for (size_t r = 0; r < q->nrows; r++) {
            json_t *o = json_object();
            for (size_t k = 0; k < q->nkey; k++)
                json_object_set_new(o, group[k], json_string(q->rows[r].key[k]));
            json_object_set_new(o, "count", json_integer((json_int_t)q->rows[r].count));
            if (sum)
                json_object_set_new(o, "sum", ps_json_i64(q->rows[r].sum));
            json_array_append_new(arr, o);
        }
        print_json(arr);
        json_decref(arr);
    } else if (fmt == PS_REPORT_CSV) {
        for (size_t k = 0; k < q->nkey; k++)
            csv_cell(stdout, group[k], k == 0);
        csv_cell(stdout, "count", q->nkey == 0);
        if (sum)
            csv_cell(stdout, "sum", 0);
        csv_end(stdout);
        for (size_t r = 0; r < q->nrows; r++) {
            char n[32];
            for (size_t k = 0; k < q->nkey; k++)
                csv_cell(stdout, q->rows[r].key[k], k == 0);
            snprintf(n, sizeof(n), "%llu", (unsigned long long)q->rows[r].count);
            csv_cell(stdout, n, q->nkey == 0);
            if (sum) {
                snprintf(n, sizeof(n), "%lld", (long long)q->rows[r].sum);
                csv_cell(stdout, n, 0);
            }
            csv_end(stdout);
        }
    } else {
        /* Unit keys get their name from the tree in the next column. */
        size_t ncols = q->nkey + 1 + (sum ? 1 : 0), left = 0;
        uint64_t total = 0;
        int64_t tsum = 0;
        tbl_t t;
        for (size_t k = 0; k < q->nkey; k++)
            ncols += tree && is_unit_key(group[k]) ? 1 : 0;
        left = ncols - 1 - (sum ? 1 : 0);
        tbl_init(&t, ncols, left);
        for (size_t k = 0; k < q->nkey; k++) {
            tbl_add(&t, group[k]);
            if (tree && is_unit_key(group[k]))
                tbl_add(&t, zh ? "名称" : "name");
        }
        tbl_add(&t, zh ? "数量" : "count");
        if (sum)
            tbl_add(&t, zh ? "合计值" : "sum");
        for (size_t r = 0; r < q->nrows; r++) {
            for (size_t k = 0; k < q->nkey; k++) {
                tbl_add(&t, q->rows[r].key[k]);
                if (tree && is_unit_key(group[k]))
                    tbl_add(&t, unit_name(tree, q->rows[r].key[k]));
            }
            tbl_addf(&t, "%llu", (unsigned long long)q->rows[r].count);
            if (sum)
                tbl_addf(&t, "%lld", (long long)q->rows[r].sum);
            total += q->rows[r].count;
            tsum += q->rows[r].sum;
        }
        if (q->nkey > 0) {
            for (size_t c = 0; c < left; c++)
                tbl_add(&t, c == 0 ? (zh ? "合计" : "total") : "");
            tbl_addf(&t, "%llu", (unsigned long long)total);
            if (sum)
                tbl_addf(&t, "%lld", (long long)tsum);
        }
        tbl_print(&t, stdout, "");
        tbl_free(&t);
    }
}

static void print_records(const query_ctx_t *q, int kind, int fmt)
{
    const char *cols[64];
    size_t ncols = 0;
    cols[ncols++] = "id";
    cols[ncols++] = "orgunit";
    ncols += ps_record_field_names(kind, cols + ncols, 64 - ncols);
    if (ncols > 64)
        ncols = 64;
    if (fmt == PS_REPORT_JSON) {
        json_t *arr = json_array();
        for (size_t i = 0; i < q->nrecs; i++)
            json_array_append_new(arr, ps_record_to_json(q->recs[i]));
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(arr);
    } else if (fmt == PS_REPORT_CSV) {
        char cell[4096];
        for (size_t i = 0; i < ncols; i++)
            csv_cell(stdout, cols[i], i == 0);
        csv_end(stdout);
        for (size_t r = 0; r < q->nrecs; r++) {
            for (size_t i = 0; i < ncols; i++) {
                if (ps_record_get_text(q->recs[r], cols[i], cell, sizeof(cell)) != PS_OK)
                    cell[0] = '\0';
                csv_cell(stdout, cell, i == 0);
            }
            csv_end(stdout);
        }
    } else {
        ps_record_print_table(stdout, (Popsync__Record *const *)q->recs, q->nrecs, cols, ncols);
    }
}

/* The query from the cache (--local, or the server not reached). */
static int query_local(ps_cache_t *c, const Popsync__Query *q, uint32_t limit, query_ctx_t *qc)
{
    char err[512];
    int rc = ps_offline_query(c, q, limit, on_query, qc, err, sizeof(err));
    if (rc == PS_OK)
        return PS_EXIT_OK;
    ps_cli_err("query: %s", rc == PS_EINVAL || rc == PS_ETOOBIG || rc == PS_EACCES ? err : ps_strerror(rc));
    return rc == PS_EINVAL ? PS_EXIT_USAGE : PS_EXIT_FAIL;
}

static const char QUERY_USAGE[] =
    "query --kind KIND [--orgunit CODE] [--date-field F [--from D] [--to D]] [--where FIELD=VALUE]...\n"
    "       [--group-by a,b,...] [--sum FIELD] [--list [--limit N] [--page-size N]] [--deleted]\n"
    "       [--format table|csv|json] [--local]";

/* What `popsync query` was asked (its options, parsed). */
typedef struct query_args {
    Popsync__Query q;
    Popsync__QueryFilter filt[MAX_WHERE], *fp[MAX_WHERE];
    char *wbuf[MAX_WHERE], *group[MAX_GROUP], *gbuf; /* owned: --where copies, the --group-by copy */
    size_t nwhere, ngroup;
    const char *lang;
    int fmt, zh, limit_given, local;
    uint32_t limit, page_size; /* rows printed at most (0: all); records per page asked */
} query_args_t;

static int query_where(query_args_t *a, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        ps_cli_err("query: --where needs FIELD=VALUE");
        return PS_EXIT_USAGE;
    }
    if (a->nwhere == MAX_WHERE) {
        ps_cli_err("query: at most %d --where", MAX_WHERE);
        return PS_EXIT_USAGE;
    }
    if (!(a->wbuf[a->nwhere] = strdup(arg)))
        return PS_EXIT_FAIL;
    popsync__query_filter__init(&a->filt[a->nwhere]);
    a->wbuf[a->nwhere][eq - arg] = '\0';
    a->filt[a->nwhere].field = a->wbuf[a->nwhere];
    a->filt[a->nwhere].value = a->wbuf[a->nwhere] + (eq - arg) + 1;
    a->fp[a->nwhere] = &a->filt[a->nwhere];
    a->nwhere++;
    return PS_EXIT_OK;
}

static int query_group(query_args_t *a, const char *arg)
{
    char *save = NULL;
    free(a->gbuf);
    a->ngroup = 0;
    if (!(a->gbuf = strdup(arg)))
        return PS_EXIT_FAIL;
    for (char *tok = strtok_r(a->gbuf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (a->ngroup == MAX_GROUP) {
            ps_cli_err("query: at most %d --group-by entries", MAX_GROUP);
            return PS_EXIT_USAGE;
        }
        a->group[a->ngroup++] = tok;
    }
    return PS_EXIT_OK;
}

/* One option of query.  PS_EXIT_OK or the exit code (told). */
static int query_opt(query_args_t *a, int opt, const char *arg)
{
    int k;
    switch (opt) {
    case 'k':
        if ((k = ps_kind_from_name(arg)) <= 0) {
            ps_cli_err("query: unknown kind '%s'", arg);
            return PS_EXIT_USAGE;
        }
        a->q.kind = (Popsync__Kind)k;
        return PS_EXIT_OK;
    case 'o':
        if (!ps_orgunit_valid(arg)) {
            ps_cli_err("query: --orgunit needs a 12-digit code");
            return PS_EXIT_USAGE;
        }
        a->q.orgunit = (char *)arg;
        return PS_EXIT_OK;
    case 'D': a->q.date_field = (char *)arg; return PS_EXIT_OK;
    case 'F':
    case 'T':
        if (ps_validate_date(arg)) {
            ps_cli_err("query: --%s needs a date YYYY-MM-DD", opt == 'F' ? "from" : "to");
            return PS_EXIT_USAGE;
        }
        *(opt == 'F' ? &a->q.date_from : &a->q.date_to) = (char *)arg;
        return PS_EXIT_OK;
    case 'w': return query_where(a, arg);
    case 'g': return query_group(a, arg);
    case 's': a->q.sum_field = (char *)arg; return PS_EXIT_OK;
    case 'l': a->q.list = 1; return PS_EXIT_OK;
    case 'n':
        a->limit_given = 1;
        return parse_uint("query", "--limit", arg, UINT32_MAX, &a->limit) ? PS_EXIT_USAGE : PS_EXIT_OK;
    case 'P':
        a->limit_given = 1;
        return parse_uint("query", "--page-size", arg, 10000, &a->page_size) ? PS_EXIT_USAGE : PS_EXIT_OK;
    case 'f': return parse_format("query", arg, &a->fmt) ? PS_EXIT_USAGE : PS_EXIT_OK;
    case 'L': a->lang = arg; return PS_EXIT_OK;
    case 'd': a->q.include_deleted = 1; return PS_EXIT_OK;
    case 'W': a->local = 1; return PS_EXIT_OK;
    default: ps_cli_err("query: usage: %s", QUERY_USAGE); return PS_EXIT_USAGE;
    }
}

/* The options that only make sense together.  PS_EXIT_OK or PS_EXIT_USAGE (told). */
static int query_check(query_args_t *a)
{
    const Popsync__Query *q = &a->q;
    if (q->kind == POPSYNC__KIND__KIND_UNSPECIFIED)
        ps_cli_err("query: --kind is required; usage: %s", QUERY_USAGE);
    else if ((*q->date_from || *q->date_to) && !*q->date_field)
        ps_cli_err("query: --from and --to need --date-field");
    else if (q->list && (a->ngroup || *q->sum_field))
        ps_cli_err("query: --list does not go with --group-by or --sum");
    else if (a->limit_given && !q->list)
        ps_cli_err("query: --limit and --page-size go with --list");
    else if (parse_lang("query", a->lang, &a->zh) == 0)
        return PS_EXIT_OK;
    return PS_EXIT_USAGE;
}

static int query_parse(query_args_t *a, int argc, char **argv)
{
    static const struct option lo[] = {{"kind", required_argument, NULL, 'k'},
                                       {"orgunit", required_argument, NULL, 'o'},
                                       {"date-field", required_argument, NULL, 'D'},
                                       {"from", required_argument, NULL, 'F'},
                                       {"to", required_argument, NULL, 'T'},
                                       {"where", required_argument, NULL, 'w'},
                                       {"group-by", required_argument, NULL, 'g'},
                                       {"sum", required_argument, NULL, 's'},
                                       {"list", no_argument, NULL, 'l'},
                                       {"limit", required_argument, NULL, 'n'},
                                       {"page-size", required_argument, NULL, 'P'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"lang", required_argument, NULL, 'L'},
                                       {"deleted", no_argument, NULL, 'd'},
                                       {"local", no_argument, NULL, 'W'},
                                       {NULL, 0, NULL, 0}};
    int opt, rc;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1)
        if ((rc = query_opt(a, opt, optarg)) != PS_EXIT_OK)
            return rc;
    if (optind != argc) {
        ps_cli_err("query: unexpected argument '%s'", argv[optind]);
        return PS_EXIT_USAGE;
    }
    if ((rc = query_check(a)) != PS_EXIT_OK)
        return rc;
    /* --limit caps what is printed; pages are never larger than needed. */
    a->q.limit = a->page_size ? a->page_size : a->limit && a->limit < 1000 ? a->limit : 0;
    a->q.n_filters = a->nwhere;
    a->q.filters = a->nwhere ? a->fp : NULL;
    a->q.n_group_by = a->ngroup;
    a->q.group_by = a->ngroup ? a->group : NULL;
    return PS_EXIT_OK;
}

static void query_free(query_args_t *a, query_ctx_t *qc)
{
    for (size_t i = 0; i < qc->nrows; i++) {
        for (size_t k = 0; k < qc->nkey; k++)
            free(qc->rows[i].key[k]);
        free(qc->rows[i].key);
    }
    free(qc->rows);
    for (size_t i = 0; i < qc->nrecs; i++)
        ps_record_free(qc->recs[i]);
    free(qc->recs);
    for (size_t i = 0; i < a->nwhere; i++)
        free(a->wbuf[i]);
    free(a->gbuf);
}

/* Asks the server (or the cache, with --local or when the server cannot be
 * reached) and prints the answer. */
static int query_run(ps_cli_t *cli, query_args_t *a, query_ctx_t *qc)
{
    ps_cache_t *c = NULL;
    ps_orgunits_t *tree = NULL;
    int rc = PS_EXIT_FAIL;

    qc->max_recs = a->limit;
    qc->nkey = a->ngroup;
    qc->q = &a->q;
    if (open_cache(cli, "query", &c))
        return PS_EXIT_FAIL;
    if (!a->local && (rc = run_session(c, ask_query, qc, "query", &a->local)) != PS_EXIT_OK)
        goto out;
    if (a->local && (rc = query_local(c, &a->q, a->limit, qc)) != PS_EXIT_OK)
        goto out;
    if (qc->oom) {
        ps_cli_err("query: out of memory");
        rc = PS_EXIT_FAIL;
        goto out;
    }
    tree = load_tree(c);
    if (a->local)
        print_stamp(c, a->fmt, a->zh);
    if (a->q.list)
        print_records(qc, (int)a->q.kind, a->fmt);
    else
        print_groups(qc, a->group, *a->q.sum_field != '\0', a->fmt, tree, a->zh);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ps_cli_err("query: cannot write the output");
        rc = PS_EXIT_FAIL;
    }
out:
    ps_orgunits_free(tree);
    ps_cache_close(c);
    return rc;
}

int ps_cmd_query(ps_cli_t *cli, int argc, char **argv)
{
    query_args_t a;
    query_ctx_t qc;
    int rc;

    memset(&a, 0, sizeof(a));
    memset(&qc, 0, sizeof(qc));
    popsync__query__init(&a.q);
    a.q.kind = POPSYNC__KIND__KIND_UNSPECIFIED;
    a.fmt = cli->json ? PS_REPORT_JSON : PS_REPORT_TABLE;
    if ((rc = query_parse(&a, argc, argv)) == PS_EXIT_OK)
        rc = query_run(cli, &a, &qc);
    query_free(&a, &qc);
    return rc;
}

/* ---- popsync report monthly / quality -------------------------------------- */

static void on_report(const Popsync__ReportResult *res, void *arg)
{
    Popsync__ReportResult **out = arg;
    if (!*out)
        *out = (Popsync__ReportResult *)copy_msg(&res->base);
}

typedef struct report_ask {
    const Popsync__ReportRequest *rq;
    Popsync__ReportResult **res;
} report_ask_t;

static int ask_report(ps_link_t *l, void *arg)
{
    report_ask_t *ra = arg;
    return ps_rq_report(l->s, ra->rq, on_report, ra->res);
}

static const char *row_name(const Popsync__ReportRow *r, const ps_orgunits_t *tree, int zh)
{
    if (!r->orgunit || !*r->orgunit)
        return zh ? "合计" : "Total";
    if (r->name && *r->name)
        return r->name;
    return unit_name(tree, r->orgunit);
}

/* The monthly report as a table of panels that fit 100 columns.  Kept
 * whole (about 90 lines): the layout of the official table reads in one place. */
static void monthly_table(const Popsync__ReportResult *res, const ps_orgunits_t *tree, int zh)
{
    static const char *const p1[] = {"persons_total", "persons_new", "births_male", "births_female", "births_total"};
    static const char *const p1b[] = {"inflow", "outflow"};
    static const char *const p2[] = {"visits_prepregnancy_check", "visits_reproductive_check", "visits_followup",
                                     "visits_contraceptive_supplies", "visits_consultation", "visits_total"};
    static const char *const h1zh[] = {"登记人口", "新登记", "出生(男)", "出生(女)", "出生合计"};
    static const char *const h1en[] = {"Persons", "New", "Boys", "Girls", "Births"};
    int any_state = 0, any_corr = 0;
    char buf[64];
    tbl_t t;

    for (size_t i = 0; i < res->n_rows; i++) {
        any_state |= res->rows[i]->close_state && *res->rows[i]->close_state;
        any_corr |= res->rows[i]->n_corrections > 0;
    }
    if (zh)
        printf("统计月报 %s（通报与反馈期限：紧急 %u 天，一般 %u 天）\n\n", res->month, res->deadline_urgent_days,
               res->deadline_normal_days);
    else
        printf("Monthly report %s (deadlines for submission and feedback: urgent %u days, others %u days)\n\n",
               res->month, res->deadline_urgent_days, res->deadline_normal_days);

    /* Panel 1: persons, births, migrants and the two-place exchange. */
    tbl_init(&t, 2 + 5 + 1 + 2 + 4, 2);
    tbl_add(&t, zh ? "代码" : "Code");
    tbl_add(&t, zh ? "单位" : "Unit");
    for (size_t k = 0; k < 5; k++)
        tbl_add(&t, zh ? h1zh[k] : h1en[k]);
    tbl_add(&t, zh ? RATES[0].zh : RATES[0].en);
    tbl_add(&t, zh ? "流入" : "Inflow");
    tbl_add(&t, zh ? "流出" : "Outflow");
    for (size_t k = 1; k <= 4; k++)
        tbl_add(&t, zh ? RATES[k].zh : RATES[k].en);
    for (size_t i = 0; i < res->n_rows; i++) {
        const Popsync__ReportRow *r = res->rows[i];
        tbl_add(&t, r->orgunit);
        tbl_add(&t, row_name(r, tree, zh));
        for (size_t k = 0; k < 5; k++)
            tbl_addf(&t, "%lld", (long long)row_value(r, p1[k]));
        tbl_add(&t, rate_text(r, &RATES[0], buf, sizeof(buf)));
        for (size_t k = 0; k < 2; k++)
            tbl_addf(&t, "%lld", (long long)row_value(r, p1b[k]));
        for (size_t k = 1; k <= 4; k++)
            tbl_add(&t, rate_text(r, &RATES[k], buf, sizeof(buf)));
    }
    tbl_print_fit(&t, stdout, 2, PS_REPORT_WIDTH);
    tbl_free(&t);
    fputc('\n', stdout);

    /* Panel 2: benefits and services, and the close state. */
    tbl_init(&t, 2 + 2 + 6 + 1 + (any_state ? 1 : 0), 2);
    tbl_add(&t, zh ? "代码" : "Code");
    tbl_add(&t, zh ? "单位" : "Unit");
    tbl_add(&t, zh ? "奖扶发放人次" : "Benefits paid");
    tbl_add(&t, zh ? "发放金额(元)" : "Amount (yuan)");
    for (size_t k = 0; k < 6; k++)
        tbl_add(&t, ind_label(p2[k], zh));
    tbl_add(&t, zh ? RATES[5].zh : RATES[5].en);
    if (any_state)
        tbl_add(&t, zh ? "月结状态" : "Close state");
    for (size_t i = 0; i < res->n_rows; i++) {
        const Popsync__ReportRow *r = res->rows[i];
        tbl_add(&t, r->orgunit);
        tbl_add(&t, row_name(r, tree, zh));
        tbl_addf(&t, "%lld", (long long)row_value(r, "benefits_paid"));
        tbl_add(&t, ps_report_yuan_text(row_value(r, "benefits_paid_fen"), buf, sizeof(buf)));
        for (size_t k = 0; k < 6; k++)
            tbl_addf(&t, "%lld", (long long)row_value(r, p2[k]));
        tbl_add(&t, rate_text(r, &RATES[5], buf, sizeof(buf)));
        if (any_state)
            tbl_add(&t, r->orgunit && *r->orgunit ? state_label(r->close_state, zh) : "");
    }
    tbl_print_fit(&t, stdout, 2, PS_REPORT_WIDTH);
    tbl_free(&t);

    if (any_corr) {
        printf("\n%s\n", zh ? "批准后的更正（当前值减去已批准的冻结值）：" :
                              "Corrections since approval (current value minus the approved, frozen value):");
        for (size_t i = 0; i < res->n_rows; i++) {
            const Popsync__ReportRow *r = res->rows[i];
            if (!r->n_corrections)
                continue;
            if (r->orgunit && *r->orgunit)
                printf("  %s %s%s\n", r->orgunit, row_name(r, tree, zh), zh ? "：" : ":");
            else
                printf("  %s%s\n", row_name(r, tree, zh), zh ? "：" : ":");
            /* One per line: a terminal of 100 columns holds them all. */
            for (size_t k = 0; k < r->n_corrections; k++)
                printf("    %s %+lld\n", ind_label(r->corrections[k]->name, zh), (long long)r->corrections[k]->value);
        }
    }
}

static json_t *monthly_row_json(const Popsync__ReportRow *r, const ps_orgunits_t *tree)
{
    json_t *o = json_object(), *corr = json_object();
    char buf[64];
    json_object_set_new(o, "orgunit", json_string(r->orgunit ? r->orgunit : ""));
    json_object_set_new(o, "name", json_string(r->orgunit && *r->orgunit ? row_name(r, tree, 0) : "Total"));
    json_object_set_new(o, "close_state", json_string(r->close_state ? r->close_state : ""));
    for (size_t k = 0; k < NIND; k++)
        json_object_set_new(o, INDICATORS[k].key, value_json(INDICATORS[k].key, row_value(r, INDICATORS[k].key)));
    for (size_t k = 0; k < NRATES; k++)
        json_object_set_new(o, RATES[k].key, rate_json(r, &RATES[k]));
    json_object_set_new(o, "benefits_paid_yuan",
                        json_string(ps_report_yuan_text(row_value(r, "benefits_paid_fen"), buf, sizeof(buf))));
    for (size_t k = 0; k < r->n_corrections; k++)
        json_object_set_new(corr, r->corrections[k]->name,
                            value_json(r->corrections[k]->name, r->corrections[k]->value));
    json_object_set_new(o, "corrections", corr);
    return o;
}

static void monthly_json(const Popsync__ReportResult *res, const ps_orgunits_t *tree)
{
    json_t *o = json_object(), *rows = json_array();
    json_object_set_new(o, "report", json_string("monthly"));
    json_object_set_new(o, "month", json_string(res->month ? res->month : ""));
    json_object_set_new(o, "deadline_urgent_days", json_integer(res->deadline_urgent_days));
    json_object_set_new(o, "deadline_normal_days", json_integer(res->deadline_normal_days));
    json_object_set_new(o, "generated_ms", ps_json_u64(res->generated_ms));
    for (size_t i = 0; i < res->n_rows; i++)
        json_array_append_new(rows, monthly_row_json(res->rows[i], tree));
    json_object_set_new(o, "rows", rows);
    print_json(o);
    json_decref(o);
}

static void monthly_csv(const Popsync__ReportResult *res, const ps_orgunits_t *tree)
{
    char buf[64];
    csv_cell(stdout, "month", 1);
    csv_cell(stdout, "orgunit", 0);
    csv_cell(stdout, "name", 0);
    csv_cell(stdout, "close_state", 0);
    for (size_t k = 0; k < NIND; k++)
        csv_cell(stdout, INDICATORS[k].key, 0);
    for (size_t k = 0; k < NRATES; k++)
        csv_cell(stdout, RATES[k].key, 0);
    csv_cell(stdout, "benefits_paid_yuan", 0);
    csv_cell(stdout, "corrections", 0);
    csv_end(stdout);
    for (size_t i = 0; i < res->n_rows; i++) {
        const Popsync__ReportRow *r = res->rows[i];
        char corr[1024] = "";
        size_t off = 0;
        double v;
        csv_cell(stdout, res->month, 1);
        csv_cell(stdout, r->orgunit, 0);
        csv_cell(stdout, r->orgunit && *r->orgunit ? row_name(r, tree, 0) : "Total", 0);
        csv_cell(stdout, r->close_state, 0);
        for (size_t k = 0; k < NIND; k++) {
            snprintf(buf, sizeof(buf), "%lld", (long long)row_value(r, INDICATORS[k].key));
            csv_cell(stdout, buf, 0);
        }
        for (size_t k = 0; k < NRATES; k++) {
            const rate_def_t *d = &RATES[k];
            buf[0] = '\0';
            if (ps_report_rate(row_value(r, d->num), row_value(r, d->den) + row_value(r, d->den2), d->scale, &v))
                snprintf(buf, sizeof(buf), "%.4f", v);
            csv_cell(stdout, buf, 0);
        }
        csv_cell(stdout, ps_report_yuan_text(row_value(r, "benefits_paid_fen"), buf, sizeof(buf)), 0);
        for (size_t k = 0; k < r->n_corrections && off < sizeof(corr); k++)
            off += (size_t)snprintf(corr + off, sizeof(corr) - off, "%s%s=%+lld", k ? ";" : "",
                                    r->corrections[k]->name, (long long)r->corrections[k]->value);
        csv_cell(stdout, corr, 0);
        csv_end(stdout);
    }
}

/* The monthly report as a workbook: the columns of the CSV form, headed
 * with the labels of the report's language.  PS_OK or PS_EIO/PS_ENOMEM. */
static int monthly_xlsx(const Popsync__ReportResult *res, const ps_orgunits_t *tree, int zh, const char *path)
{
    ps_xlsx_t *x = NULL;
    unsigned col = 0;
    char buf[64];
    double v;
    int rc = ps_xlsx_open(&x, path, zh ? "统计月报" : "monthly");

    if (rc == PS_OK && !(rc = ps_xlsx_cell(x, 0, col++, zh ? "月份" : "month")) &&
        !(rc = ps_xlsx_cell(x, 0, col++, zh ? "单位代码" : "orgunit")) &&
        !(rc = ps_xlsx_cell(x, 0, col++, zh ? "单位" : "name")))
        rc = ps_xlsx_cell(x, 0, col++, zh ? "月结状态" : "close_state");
    for (size_t k = 0; rc == PS_OK && k < NIND; k++)
        rc = ps_xlsx_cell(x, 0, col++, zh ? ind_label(INDICATORS[k].key, 1) : INDICATORS[k].key);
    for (size_t k = 0; rc == PS_OK && k < NRATES; k++)
        rc = ps_xlsx_cell(x, 0, col++, zh ? RATES[k].zh : RATES[k].key);
    if (rc == PS_OK)
        rc = ps_xlsx_cell(x, 0, col, zh ? "发放金额(元)" : "benefits_paid_yuan");
    for (size_t i = 0; rc == PS_OK && i < res->n_rows; i++) {
        const Popsync__ReportRow *r = res->rows[i];
        unsigned row = (unsigned)i + 1;
        col = 0;
        if (!(rc = ps_xlsx_cell(x, row, col++, res->month ? res->month : "")) &&
            !(rc = ps_xlsx_cell(x, row, col++, r->orgunit ? r->orgunit : "")) &&
            !(rc = ps_xlsx_cell(x, row, col++, row_name(r, tree, zh))))
            rc = ps_xlsx_cell(x, row, col++, r->orgunit && *r->orgunit ? state_label(r->close_state, zh) : "");
        for (size_t k = 0; rc == PS_OK && k < NIND; k++) {
            snprintf(buf, sizeof(buf), "%lld", (long long)row_value(r, INDICATORS[k].key));
            rc = ps_xlsx_cell(x, row, col++, buf);
        }
        for (size_t k = 0; rc == PS_OK && k < NRATES; k++) {
            const rate_def_t *d = &RATES[k];
            buf[0] = '\0';
            if (ps_report_rate(row_value(r, d->num), row_value(r, d->den) + row_value(r, d->den2), d->scale, &v))
                snprintf(buf, sizeof(buf), "%.1f", v);
            rc = ps_xlsx_cell(x, row, col++, buf);
        }
        if (rc == PS_OK)
            rc = ps_xlsx_cell(x, row, col, ps_report_yuan_text(row_value(r, "benefits_paid_fen"), buf, sizeof(buf)));
    }
    if (x) {
        int crc = ps_xlsx_close(x);
        rc = rc ? rc : crc;
    }
    return rc;
}

static const char *check_label(const char *check, int zh)
{
    for (size_t i = 0; i < NCHECKS; i++)
        if (strcmp(CHECKS[i].key, check) == 0)
            return zh ? CHECKS[i].zh : CHECKS[i].en;
    return check;
}

static const char *kind_text(Popsync__Kind k)
{
    const char *n = ps_kind_name((int)k);
    return n ? n : "";
}

/* A kind's name as a clerk reads it. */
static const char *kind_label_name(const char *name, int zh)
{
    static const char *const ZH[][2] = {{"person", "人员"},         {"household", "户"},
                                        {"birth", "出生登记"},      {"migration", "流动人口"},
                                        {"benefit", "奖励扶助"},    {"service_visit", "服务随访"}};
    for (size_t i = 0; zh && i < sizeof(ZH) / sizeof(ZH[0]); i++)
        if (strcmp(ZH[i][0], name) == 0)
            return ZH[i][1];
    return name;
}

/* The server's detail of an issue (English, server/store_query.c) in the
 * report's language: the known shapes are rebuilt in Chinese, field names
 * become their labels and validation reasons go through i18n. */
static const char *detail_text(const Popsync__QualityIssue *q, int zh, char *buf, size_t len)
{
    const char *d = q->detail ? q->detail : "", *colon = strstr(d, ": ");
    char f[64], when[16], kname[32], reason[512];
    const ps_field_t *df;
    unsigned dl;
    size_t n, m;
    int days;

    if (!zh)
        return d;
    if (sscanf(d, "submitted %15[^,], no feedback after %d days (deadline %u)", when, &days, &dl) == 3) {
        snprintf(buf, len, "%s 已通报，%d 天未反馈（期限 %u 天）", when, days, dl);
        return buf;
    }
    if (sscanf(d, "id_number also held by %zu record(s) in this township, %zu in others", &n, &m) == 2) {
        snprintf(buf, len, "该身份证号在本镇街另有 %zu 条、其他镇街另有 %zu 条登记", n, m);
        return buf;
    }
    if (sscanf(d, "same name and birth date as %zu", &n) == 1) {
        snprintf(buf, len, "另有 %zu 条记录的姓名和出生日期与之相同", n);
        return buf;
    }
    if (sscanf(d, "id_number also registered in %zu", &n) == 1) {
        snprintf(buf, len, "该身份证号在其他镇街另有 %zu 条登记", n);
        return buf;
    }
    if (!colon || (size_t)(colon - d) >= sizeof(f))
        return d;
    memcpy(f, d, (size_t)(colon - d));
    f[colon - d] = '\0';
    df = ps_field_find((int)q->kind, f);
    if (sscanf(colon + 2, "no live %31s record", kname) == 1)
        snprintf(buf, len, "%s：没有有效的%s记录", df ? df->zh : f, kind_label_name(kname, 1));
    else
        snprintf(buf, len, "%s：%s", df ? df->zh : f, ps_i18n_reason(colon + 2, reason, sizeof(reason)));
    return buf;
}

/* Issues counted by check and township (the summary a district reads). */
typedef struct qsum {
    const char *check;
    char town[13];
    size_t n;
} qsum_t;

static void own_township(const ps_orgunits_t *tree, const char *unit, char out[13]);

static int qsum_cmp(const void *a, const void *b)
{
    return strcmp(((const qsum_t *)a)->town, ((const qsum_t *)b)->town);
}

/* The (check, township) counts of the check order[c] into s (room for
 * n_issues), sorted by township code; their number. */
static size_t quality_summary(const Popsync__ReportResult *res, const ps_orgunits_t *tree, const char *check,
                              qsum_t *s)
{
    size_t ns = 0;
    for (size_t i = 0; i < res->n_issues; i++) {
        const Popsync__QualityIssue *q = res->issues[i];
        char town[13];
        size_t j = 0;
        if (strcmp(q->check ? q->check : "", check) != 0)
            continue;
        own_township(tree, q->orgunit ? q->orgunit : "", town);
        while (j < ns && strcmp(s[j].town, town) != 0)
            j++;
        if (j == ns) {
            s[ns].check = check;
            memcpy(s[ns].town, town, sizeof(town));
            s[ns++].n = 0;
        }
        s[j].n++;
    }
    qsort(s, ns, sizeof(*s), qsum_cmp);
    return ns;
}

static const char *check_heading(const char *check, int zh, char *buf, size_t len)
{
    const char *l = check_label(check, zh);
    if (zh || strcmp(l, check) == 0)
        return l;
    snprintf(buf, len, "%s (%s)", l, check);
    return buf;
}

/* Prints text from display column indent, broken so that no line is wider
 * than PS_REPORT_WIDTH. */
static void print_wrapped(const char *text, size_t indent)
{
    size_t col = indent;
    pad(stdout, indent);
    for (const char *p = text; *p;) {
        size_t l = 1, w;
        char ch[5] = "";
        while (l < 4 && ((unsigned char)p[l] & 0xc0) == 0x80)
            l++;
        memcpy(ch, p, l);
        w = ps_utf8_width(ch);
        if (col + w > PS_REPORT_WIDTH) {
            fputc('\n', stdout);
            pad(stdout, indent);
            col = indent;
        }
        fwrite(p, 1, l, stdout);
        col += w;
        p += l;
    }
    fputc('\n', stdout);
}

/* One issue as two lines: its record, then what is wrong. */
static void issue_lines(const Popsync__QualityIssue *q, const ps_orgunits_t *tree, int zh)
{
    char id[PS_UUID_STR] = "", buf[768];
    if (q->record_id.len == 16)
        ps_uuid_format(q->record_id.data, id);
    printf("    %s  %s  %s  %s\n", id, kind_label_name(kind_text(q->kind), zh), q->orgunit ? q->orgunit : "",
           unit_name(tree, q->orgunit));
    print_wrapped(detail_text(q, zh, buf, sizeof(buf)), 6);
}

static void quality_table(const Popsync__ReportResult *res, const ps_orgunits_t *tree, const char **order,
                          size_t norder, qsum_t *s, int zh, int details)
{
    char buf[160];

    printf("%s\n", zh ? "数据质量报告（按检查项和镇街汇总）" : "Data quality report (by check and township)");
    for (size_t c = 0; c < norder; c++) {
        size_t n = 0, ns = quality_summary(res, tree, order[c], s);
        tbl_t t;
        for (size_t k = 0; k < ns; k++)
            n += s[k].n;
        printf("\n%s%s%zu\n", check_heading(order[c], zh, buf, sizeof(buf)), zh ? "：" : ": ", n);
        if (!n)
            continue;
        tbl_init(&t, 3, 2);
        for (size_t k = 0; k < ns; k++) {
            tbl_add(&t, s[k].town);
            tbl_add(&t, unit_name(tree, s[k].town));
            tbl_addf(&t, "%zu", s[k].n);
        }
        tbl_print(&t, stdout, "  ");
        tbl_free(&t);
        if (!details)
            continue;
        printf("  %s\n", zh ? "明细：" : "Records:");
        for (size_t i = 0; i < res->n_issues; i++)
            if (strcmp(res->issues[i]->check ? res->issues[i]->check : "", order[c]) == 0)
                issue_lines(res->issues[i], tree, zh);
    }
    if (res->n_issues == 0)
        printf("\n%s\n", zh ? "未发现问题。" : "No issues found.");
    else if (!details)
        printf("\n%s\n", zh ? "加 --details 列出每条记录。" : "Give --details for the records.");
}

static void quality_json(const Popsync__ReportResult *res, const ps_orgunits_t *tree, const char **order,
                         size_t norder, qsum_t *s, int zh)
{
    json_t *o = json_object(), *counts = json_object(), *arr = json_array(), *sum = json_array();
    char buf[768];

    json_object_set_new(o, "report", json_string("quality"));
    json_object_set_new(o, "generated_ms", ps_json_u64(res->generated_ms));
    for (size_t c = 0; c < norder; c++) {
        size_t n = 0, ns = quality_summary(res, tree, order[c], s);
        for (size_t k = 0; k < ns; k++)
            json_array_append_new(sum, json_pack("{s:s,s:s,s:s,s:s,s:I}", "check", order[c], "check_label",
                                                 check_label(order[c], zh), "township", s[k].town,
                                                 "township_name", unit_name(tree, s[k].town), "count",
                                                 (json_int_t)s[k].n));
        for (size_t i = 0; i < res->n_issues; i++) {
            const Popsync__QualityIssue *q = res->issues[i];
            char id[PS_UUID_STR] = "";
            if (strcmp(q->check ? q->check : "", order[c]) != 0)
                continue;
            n++;
            if (q->record_id.len == 16)
                ps_uuid_format(q->record_id.data, id);
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "check", order[c], "record_id", id,
                                                 "kind", kind_text(q->kind), "orgunit", q->orgunit ? q->orgunit : "",
                                                 "orgunit_name", unit_name(tree, q->orgunit), "detail",
                                                 detail_text(q, 0, buf, sizeof(buf))));
        }
        json_object_set_new(counts, order[c], json_integer((json_int_t)n));
    }
    json_object_set_new(o, "counts", counts);
    json_object_set_new(o, "summary", sum);
    json_object_set_new(o, "issues", arr);
    print_json(o);
    json_decref(o);
}

static void quality_csv(const Popsync__ReportResult *res, const ps_orgunits_t *tree, const char **order,
                        size_t norder)
{
    const char *head[] = {"check", "record_id", "kind", "orgunit", "orgunit_name", "detail"};
    char buf[768];
    for (size_t k = 0; k < 6; k++)
        csv_cell(stdout, head[k], k == 0);
    csv_end(stdout);
    for (size_t c = 0; c < norder; c++)
        for (size_t i = 0; i < res->n_issues; i++) {
            const Popsync__QualityIssue *q = res->issues[i];
            char id[PS_UUID_STR] = "";
            if (strcmp(q->check ? q->check : "", order[c]) != 0)
                continue;
            if (q->record_id.len == 16)
                ps_uuid_format(q->record_id.data, id);
            csv_cell(stdout, order[c], 1);
            csv_cell(stdout, id, 0);
            csv_cell(stdout, kind_text(q->kind), 0);
            csv_cell(stdout, q->orgunit, 0);
            csv_cell(stdout, unit_name(tree, q->orgunit), 0);
            csv_cell(stdout, detail_text(q, 0, buf, sizeof(buf)), 0);
            csv_end(stdout);
        }
}

/* The workbook: the summary (check, township, count), then with --details
 * a blank row and one row per issue.  PS_OK or PS_EIO/PS_ENOMEM. */
static int quality_xlsx(const Popsync__ReportResult *res, const ps_orgunits_t *tree, const char **order,
                        size_t norder, qsum_t *s, int zh, int details, const char *path)
{
    static const char *const h1[][2] = {{"check", "检查项"}, {"check_label", "检查项名称"},
                                        {"township", "镇街代码"}, {"township_name", "镇街"}, {"count", "问题数"}};
    static const char *const h2[][2] = {{"check", "检查项"}, {"record_id", "记录ID"}, {"kind", "类别"},
                                        {"orgunit", "单位代码"}, {"orgunit_name", "单位名称"}, {"detail", "说明"}};
    ps_xlsx_t *x = NULL;
    unsigned row = 0;
    char buf[768];
    int rc = ps_xlsx_open(&x, path, zh ? "数据质量" : "quality");

    for (unsigned k = 0; rc == PS_OK && k < 5; k++)
        rc = ps_xlsx_cell(x, row, k, h1[k][zh ? 1 : 0]);
    for (size_t c = 0; rc == PS_OK && c < norder; c++) {
        size_t ns = quality_summary(res, tree, order[c], s);
        for (size_t k = 0; rc == PS_OK && k < ns; k++) {
            snprintf(buf, sizeof(buf), "%zu", s[k].n);
            row++;
            if ((rc = ps_xlsx_cell(x, row, 0, order[c])) || (rc = ps_xlsx_cell(x, row, 1, check_label(order[c], zh))) ||
                (rc = ps_xlsx_cell(x, row, 2, s[k].town)) ||
                (rc = ps_xlsx_cell(x, row, 3, unit_name(tree, s[k].town))))
                break;
            rc = ps_xlsx_cell(x, row, 4, buf);
        }
    }
    row++;
    for (unsigned k = 0; rc == PS_OK && details && k < 6; k++)
        rc = ps_xlsx_cell(x, row + 1, k, h2[k][zh ? 1 : 0]);
    row++;
    for (size_t c = 0; rc == PS_OK && details && c < norder; c++)
        for (size_t i = 0; rc == PS_OK && i < res->n_issues; i++) {
            const Popsync__QualityIssue *q = res->issues[i];
            char id[PS_UUID_STR] = "";
            if (strcmp(q->check ? q->check : "", order[c]) != 0)
                continue;
            if (q->record_id.len == 16)
                ps_uuid_format(q->record_id.data, id);
            row++;
            if ((rc = ps_xlsx_cell(x, row, 0, order[c])) || (rc = ps_xlsx_cell(x, row, 1, id)) ||
                (rc = ps_xlsx_cell(x, row, 2, kind_label_name(kind_text(q->kind), zh))) ||
                (rc = ps_xlsx_cell(x, row, 3, q->orgunit ? q->orgunit : "")) ||
                (rc = ps_xlsx_cell(x, row, 4, unit_name(tree, q->orgunit))))
                break;
            rc = ps_xlsx_cell(x, row, 5, detail_text(q, zh, buf, sizeof(buf)));
        }
    if (x) {
        int crc = ps_xlsx_close(x);
        rc = rc ? rc : crc;
    }
    return rc;
}

static int quality_out(const Popsync__ReportResult *res, const ps_orgunits_t *tree, int fmt, int zh, int details,
                       const char *out)
{
    /* The known checks first in their order, then any others in arrival order. */
    const char **order = calloc(NCHECKS + res->n_issues + 1, sizeof(*order));
    qsum_t *s = calloc(res->n_issues + 1, sizeof(*s));
    size_t norder = 0;
    int rc = PS_OK;

    if (!order || !s) {
        free(order);
        free(s);
        return PS_ENOMEM;
    }
    for (size_t i = 0; i < NCHECKS; i++)
        order[norder++] = CHECKS[i].key;
    for (size_t i = 0; i < res->n_issues; i++) {
        const char *ck = res->issues[i]->check ? res->issues[i]->check : "";
        size_t j = 0;
        while (j < norder && strcmp(order[j], ck) != 0)
            j++;
        if (j == norder)
            order[norder++] = ck;
    }
    if (fmt == PS_REPORT_JSON)
        quality_json(res, tree, order, norder, s, zh);
    else if (fmt == PS_REPORT_CSV)
        quality_csv(res, tree, order, norder);
    else if (fmt == PS_REPORT_XLSX)
        rc = quality_xlsx(res, tree, order, norder, s, zh, details, out);
    else
        quality_table(res, tree, order, norder, s, zh, details);
    free(order);
    free(s);
    return rc;
}

/* ---- popsync report submit / approve / return / status ------------------- */

typedef struct close_ctx {
    Popsync__CloseResult **res;
    size_t n, cap;
    int oom;
    Popsync__CloseRequest *const *reqs; /* what is asked, one request each */
    size_t nreqs;
} close_ctx_t;

static void on_close_result(const Popsync__CloseResult *res, void *arg)
{
    close_ctx_t *cc = arg;
    Popsync__CloseResult *copy;
    if (cc->oom)
        return;
    if (PS_VEC_ROOM(cc->res, cc->n, cc->cap, 16)) {
        cc->oom = 1;
        return;
    }
    if (!(copy = (Popsync__CloseResult *)copy_msg(&res->base))) {
        cc->oom = 1;
        return;
    }
    cc->res[cc->n++] = copy;
}

static int ask_close(ps_link_t *l, void *arg)
{
    close_ctx_t *cc = arg;
    return ps_rq_close_each(l->s, cc->reqs, cc->nreqs, on_close_result, cc);
}

static void close_out(const close_ctx_t *cc, const ps_orgunits_t *tree, int fmt, int zh)
{
    if (fmt == PS_REPORT_JSON) {
        json_t *arr = json_array();
        for (size_t i = 0; i < cc->n; i++) {
            const Popsync__CloseResult *r = cc->res[i];
            json_t *frozen = json_object();
            for (size_t k = 0; k < r->n_frozen; k++)
                json_object_set_new(frozen, r->frozen[k]->name, value_json(r->frozen[k]->name, r->frozen[k]->value));
            json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:o}", "month", r->month ? r->month : "",
                                                 "orgunit", r->orgunit ? r->orgunit : "", "name",
                                                 unit_name(tree, r->orgunit), "state", r->state ? r->state : "",
                                                 "at_ms", ps_json_u64(r->at_ms), "by", r->by ? r->by : "", "note",
                                                 r->note ? r->note : "", "frozen", frozen));
        }
        print_json(arr);
        json_decref(arr);
        return;
    }
    if (fmt == PS_REPORT_CSV) {
        const char *head[] = {"month", "orgunit", "name", "state", "at_ms", "by", "note"};
        for (size_t k = 0; k < 7; k++)
            csv_cell(stdout, head[k], k == 0);
        csv_end(stdout);
        for (size_t i = 0; i < cc->n; i++) {
            const Popsync__CloseResult *r = cc->res[i];
            char at[32];
            snprintf(at, sizeof(at), "%llu", (unsigned long long)r->at_ms);
            csv_cell(stdout, r->month, 1);
            csv_cell(stdout, r->orgunit, 0);
            csv_cell(stdout, unit_name(tree, r->orgunit), 0);
            csv_cell(stdout, r->state, 0);
            csv_cell(stdout, at, 0);
            csv_cell(stdout, r->by, 0);
            csv_cell(stdout, r->note, 0);
            csv_end(stdout);
        }
        return;
    }
    {
        tbl_t t;
        tbl_init(&t, 7, 7);
        tbl_add(&t, zh ? "月份" : "Month");
        tbl_add(&t, zh ? "单位代码" : "Unit");
        tbl_add(&t, zh ? "单位名称" : "Unit name");
        tbl_add(&t, zh ? "状态" : "State");
        tbl_add(&t, zh ? "操作人" : "By");
        tbl_add(&t, zh ? "时间" : "At");
        tbl_add(&t, zh ? "说明" : "Note");
        for (size_t i = 0; i < cc->n; i++) {
            const Popsync__CloseResult *r = cc->res[i];
            char when[32] = "";
            if (r->at_ms) {
                time_t tt = (time_t)(r->at_ms / 1000);
                struct tm tm;
                localtime_r(&tt, &tm);
                strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
            }
            tbl_add(&t, r->month);
            tbl_add(&t, r->orgunit);
            tbl_add(&t, unit_name(tree, r->orgunit));
            tbl_add(&t, state_label(r->state, zh));
            tbl_add(&t, r->by);
            tbl_add(&t, when);
            tbl_add(&t, r->note);
        }
        tbl_print(&t, stdout, "");
        tbl_free(&t);
    }
}

/* The township a unit code belongs to (the unit itself at township level). */
static void own_township(const ps_orgunits_t *tree, const char *unit, char out[13])
{
    const ps_orgunit_t *u = tree ? ps_orgunits_find(tree, unit) : NULL;
    if (u && u->depth == 1) {
        snprintf(out, 13, "%s", u->code);
        return;
    }
    if (u && u->depth > 1) {
        const ps_orgunit_t *tw = ps_orgunits_township(tree, unit);
        if (tw) {
            snprintf(out, 13, "%s", tw->code);
            return;
        }
    }
    ps_orgunit_township(unit, out);
}

static const char REPORT_USAGE[] =
    "report monthly --month YYYY-MM [--orgunit CODE] [--lang zh|en] [--format table|csv|json|xlsx]\n"
    "                [--out FILE.xlsx] [--deadline-urgent DAYS] [--deadline-normal DAYS] [--local]\n"
    "       report quality [--orgunit CODE] [--lang zh|en] [--format table|csv|json|xlsx]\n"
    "                [--out FILE.xlsx] [--details] [--local]\n"
    "       report submit --month YYYY-MM [--orgunit CODE]\n"
    "       report approve --month YYYY-MM --orgunit CODE [--note TEXT]\n"
    "       report return --month YYYY-MM --orgunit CODE --note TEXT\n"
    "       report status --month YYYY-MM [--orgunit CODE]";

int ps_report_monthly_out(const Popsync__ReportResult *res, const ps_orgunits_t *tree, int fmt, int zh,
                          const char *xlsx_path)
{
    if (fmt == PS_REPORT_XLSX)
        return monthly_xlsx(res, tree, zh, xlsx_path);
    if (fmt == PS_REPORT_JSON)
        monthly_json(res, tree);
    else if (fmt == PS_REPORT_CSV)
        monthly_csv(res, tree);
    else
        monthly_table(res, tree, zh);
    return PS_OK;
}

/* The monthly and quality reports. */
/* What the reports add from this cache: spot-check accuracy, and benefits
 * entitled / paid / owed (monthly) or the payments flagged (quality). */
static void local_panels(ps_cache_t *c, const ps_orgunits_t *tree, const char *sub, const char *month,
                         const char *orgunit, int zh)
{
    int quality = strcmp(sub, "quality") == 0;

    ps_spot_panel(c, tree, quality ? NULL : month, orgunit, zh, stdout);
    ps_benefit_panel(c, tree, month, orgunit, zh, quality, stdout);
}

static int run_report(ps_cli_t *cli, const char *sub, const char *month, const char *orgunit, int fmt, int zh,
                      uint32_t urgent, uint32_t normal, int details, const char *out, int local)
{
    Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__ReportResult *res = NULL;
    ps_cache_t *c = NULL;
    ps_orgunits_t *tree = NULL;
    report_ask_t ra;
    char cmd[32];
    int rc = PS_EXIT_FAIL, wrc = PS_OK;

    snprintf(cmd, sizeof(cmd), "report %s", sub);
    rq.report = (char *)sub;
    rq.month = (char *)(month ? month : "");
    rq.orgunit = (char *)(orgunit ? orgunit : "");
    rq.deadline_urgent_days = urgent;
    rq.deadline_normal_days = normal;
    if (open_cache(cli, cmd, &c))
        goto out;
    ra.rq = &rq;
    ra.res = &res;
    if (!local && (rc = run_session(c, ask_report, &ra, cmd, &local)) != PS_EXIT_OK)
        goto out;
    if (local) {
        char err[512];
        int orc = ps_offline_report(c, &rq, &res, err, sizeof(err));
        if (orc) {
            ps_cli_err("%s: %s", cmd, orc == PS_EINVAL || orc == PS_EACCES ? err : ps_strerror(orc));
            rc = PS_EXIT_FAIL;
            goto out;
        }
        rc = PS_EXIT_OK;
    }
    if (!res) {
        ps_cli_err("%s: out of memory", cmd);
        rc = PS_EXIT_FAIL;
        goto out;
    }
    tree = load_tree(c);
    if (local)
        print_stamp(c, fmt, zh);
    if (strcmp(sub, "quality") == 0)
        wrc = quality_out(res, tree, fmt, zh, details, out);
    else
        wrc = ps_report_monthly_out(res, tree, fmt, zh, out);
    if (fmt == PS_REPORT_TABLE)
        local_panels(c, tree, sub, month, orgunit, zh);
    if (wrc) {
        ps_cli_err("%s: cannot write %s: %s", cmd, out ? out : "the output", ps_strerror(wrc));
        rc = PS_EXIT_FAIL;
    } else if (fmt == PS_REPORT_XLSX)
        printf(zh ? "已写入 %s\n" : "wrote %s\n", out);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ps_cli_err("%s: cannot write the output", cmd);
        rc = PS_EXIT_FAIL;
    }
out:
    if (res)
        popsync__report_result__free_unpacked(res, NULL);
    ps_orgunits_free(tree);
    if (c)
        ps_cache_close(c);
    return rc;
}

/* submit, approve, return and status of the monthly close (about 85
 * lines: the request, the session, and the answer in three forms). */
static int run_close(ps_cli_t *cli, const char *sub, const char *month, const char *orgunit, const char *note,
                     int fmt, int zh)
{
    Popsync__CloseRequest *reqs = NULL, **rp = NULL;
    char (*codes)[13] = NULL;
    size_t n = 0;
    close_ctx_t cc;
    ps_cache_t *c = NULL;
    ps_orgunits_t *tree = NULL;
    const ps_cache_meta_t *m;
    char cmd[32];
    int rc = PS_EXIT_FAIL;

    memset(&cc, 0, sizeof(cc));
    snprintf(cmd, sizeof(cmd), "report %s", sub);
    if (open_cache(cli, cmd, &c))
        goto out;
    m = ps_cache_meta(c);
    tree = load_tree(c);
    /* Which townships: the one given; else (status) every township whose
     * state the policy shows; else a township's own. */
    {
        size_t cap = tree ? ps_orgunits_count(tree) + 1 : 1;
        codes = calloc(cap, sizeof(*codes));
        reqs = calloc(cap, sizeof(*reqs));
        rp = calloc(cap, sizeof(*rp));
        if (!codes || !reqs || !rp)
            goto out;
        if (orgunit) {
            snprintf(codes[n++], 13, "%s", orgunit);
        } else if (strcmp(sub, "status") == 0 && tree) {
            /* Every township whose state the policy shows this cache. */
            ps_peer_t me;
            ps_policy_peer(&me, m->role, m->orgunit);
            for (size_t i = 0; i < ps_orgunits_count(tree); i++) {
                const ps_orgunit_t *u = ps_orgunits_at(tree, i);
                if (u->depth == 1 && ps_policy_may_close(tree, &me, PS_ACT_CLOSE_STATUS, u->code))
                    snprintf(codes[n++], 13, "%s", u->code);
            }
        } else if (strcmp(m->role, "admin") != 0 && strcmp(m->role, "viewer") != 0) {
            own_township(tree, m->orgunit, codes[n++]);
        } else if (strcmp(sub, "status") == 0) {
            codes[n++][0] = '\0'; /* no tree yet: let the server decide */
        } else {
            ps_cli_err("%s: --orgunit CODE is required for your role", cmd);
            rc = PS_EXIT_USAGE;
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        popsync__close_request__init(&reqs[i]);
        reqs[i].month = (char *)month;
        reqs[i].orgunit = codes[i];
        reqs[i].action = (char *)sub;
        reqs[i].note = (char *)(note ? note : "");
        rp[i] = &reqs[i];
    }
    cc.reqs = rp;
    cc.nreqs = n;
    if ((rc = run_session(c, ask_close, &cc, cmd, NULL)) != PS_EXIT_OK)
        goto out;
    if (cc.oom) {
        ps_cli_err("%s: out of memory", cmd);
        rc = PS_EXIT_FAIL;
        goto out;
    }
    ps_orgunits_free(tree);
    tree = load_tree(c); /* the session may have brought a newer tree */
    close_out(&cc, tree, fmt, zh);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ps_cli_err("%s: cannot write the output", cmd);
        rc = PS_EXIT_FAIL;
    }
out:
    for (size_t i = 0; i < cc.n; i++)
        popsync__close_result__free_unpacked(cc.res[i], NULL);
    free(cc.res);
    free(codes);
    free(reqs);
    free(rp);
    ps_orgunits_free(tree);
    if (c)
        ps_cache_close(c);
    return rc;
}

/* What `popsync report SUB` was asked. */
typedef struct report_args {
    const char *sub, *month, *orgunit, *lang, *note, *out;
    int zh, fmt, monthly, quality, closing, details, local;
    uint32_t urgent, normal;
} report_args_t;

/* One option of report.  PS_EXIT_OK or PS_EXIT_USAGE (told). */
static int report_opt(report_args_t *a, int opt, const char *arg)
{
    switch (opt) {
    case 'm':
        if (!ps_report_month_valid(arg)) {
            ps_cli_err("report: --month needs YYYY-MM");
            return PS_EXIT_USAGE;
        }
        a->month = arg;
        return PS_EXIT_OK;
    case 'o':
        if (!ps_orgunit_valid(arg)) {
            ps_cli_err("report: --orgunit needs a 12-digit code");
            return PS_EXIT_USAGE;
        }
        a->orgunit = arg;
        return PS_EXIT_OK;
    case 'L': a->lang = arg; return PS_EXIT_OK;
    case 'f':
        if (strcmp(arg, "xlsx") == 0)
            a->fmt = PS_REPORT_XLSX;
        else if (parse_format("report", arg, &a->fmt))
            return PS_EXIT_USAGE;
        return PS_EXIT_OK;
    case 'O': a->out = arg; return PS_EXIT_OK;
    case 'D': a->details = 1; return PS_EXIT_OK;
    case 'W': a->local = 1; return PS_EXIT_OK;
    case 'u': return parse_uint("report", "--deadline-urgent", arg, 365, &a->urgent) ? PS_EXIT_USAGE : PS_EXIT_OK;
    case 'n': return parse_uint("report", "--deadline-normal", arg, 365, &a->normal) ? PS_EXIT_USAGE : PS_EXIT_OK;
    case 'N': a->note = arg; return PS_EXIT_OK;
    default: ps_cli_err("report: usage: %s", REPORT_USAGE); return PS_EXIT_USAGE;
    }
}

/* The options that go only with some reports: the reason for the first one
 * that does not fit, or NULL. */
static const char *report_misfit(const report_args_t *a)
{
    const char *sub = a->sub;
    int approve = strcmp(sub, "approve") == 0, ret = strcmp(sub, "return") == 0, submit = strcmp(sub, "submit") == 0;
    if ((a->monthly || a->closing) && !a->month)
        return "--month YYYY-MM is required";
    if (a->quality && a->month)
        return "--month does not apply (the check covers every record in scope)";
    if (!a->monthly && !a->quality && (a->urgent || a->normal))
        return "deadlines apply to the monthly and quality reports";
    if ((approve || ret) && !a->orgunit)
        return "--orgunit CODE is required";
    if (ret && (!a->note || !*a->note))
        return "--note TEXT is required (say what to fix)";
    if (a->note && !approve && !ret && !submit)
        return "--note goes with submit, approve and return";
    if ((a->fmt == PS_REPORT_XLSX) != (a->out != NULL) || (a->fmt == PS_REPORT_XLSX && a->closing))
        return "--format xlsx goes with --out FILE.xlsx, for the monthly and quality reports";
    if (a->details && !a->quality)
        return "--details goes with report quality";
    if (a->local && a->closing)
        return "the monthly close is the server's: --local goes with report monthly and quality";
    return NULL;
}

int ps_cmd_report(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"month", required_argument, NULL, 'm'},
                                       {"orgunit", required_argument, NULL, 'o'},
                                       {"lang", required_argument, NULL, 'L'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"deadline-urgent", required_argument, NULL, 'u'},
                                       {"deadline-normal", required_argument, NULL, 'n'},
                                       {"note", required_argument, NULL, 'N'},
                                       {"out", required_argument, NULL, 'O'},
                                       {"details", no_argument, NULL, 'D'},
                                       {"local", no_argument, NULL, 'W'},
                                       {NULL, 0, NULL, 0}};
    report_args_t a;
    const char *why;
    int opt;

    memset(&a, 0, sizeof(a));
    a.fmt = cli->json ? PS_REPORT_JSON : PS_REPORT_TABLE;
    if (argc < 2) {
        ps_cli_err("report: usage: %s", REPORT_USAGE);
        return PS_EXIT_USAGE;
    }
    a.sub = argv[1];
    a.monthly = strcmp(a.sub, "monthly") == 0;
    a.quality = strcmp(a.sub, "quality") == 0;
    a.closing = strcmp(a.sub, "submit") == 0 || strcmp(a.sub, "approve") == 0 || strcmp(a.sub, "return") == 0 ||
                strcmp(a.sub, "status") == 0;
    if (!a.monthly && !a.quality && !a.closing) {
        ps_cli_err("report: unknown report '%s'; usage: %s", a.sub, REPORT_USAGE);
        return PS_EXIT_USAGE;
    }
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1)
        if (report_opt(&a, opt, optarg) != PS_EXIT_OK)
            return PS_EXIT_USAGE;
    if (optind != argc) {
        ps_cli_err("report: unexpected argument '%s'", argv[optind]);
        return PS_EXIT_USAGE;
    }
    if (parse_lang("report", a.lang, &a.zh))
        return PS_EXIT_USAGE;
    if ((why = report_misfit(&a))) {
        ps_cli_err("report %s: %s", a.sub, why);
        return PS_EXIT_USAGE;
    }
    if (a.closing)
        return run_close(cli, a.sub, a.month, a.orgunit, a.note, a.fmt, a.zh);
    return run_report(cli, a.sub, a.month, a.orgunit, a.fmt, a.zh, a.urgent, a.normal, a.details, a.out, a.local);
}
