/* publish_site.c - the files of the public statistics site (publish_site.h). */
#define _GNU_SOURCE /* asprintf */
#include "publish_site.h"

#include "err.h"
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the columns ----------------------------------------------------------- */

#define PC_COUNT 0
#define PC_RATE 1 /* f / (f2 [+ f3]) * scale */
#define PC_YUAN 2 /* the amount paid, shown with the count f */

typedef struct pcol {
    int kind, f, f2, f3;
    double scale;
    int pct;
    const char *key, *zh, *en;
} pcol_t;

#define NOF -1
static const pcol_t COLS[] = {
    {PC_COUNT, PF_PERSONS, NOF, NOF, 0, 0, "persons_total", "登记人口", "Registered persons"},
    {PC_COUNT, PF_NEW, NOF, NOF, 0, 0, "persons_new", "本月新登记", "New registrations"},
    {PC_COUNT, PF_BOYS, NOF, NOF, 0, 0, "births_male", "男", "Boys"},
    {PC_COUNT, PF_GIRLS, NOF, NOF, 0, 0, "births_female", "女", "Girls"},
    {PC_COUNT, PF_BIRTHS_NA, NOF, NOF, 0, 0, "births_sex_not_recorded", "性别未登记", "Sex not recorded"},
    {PC_COUNT, PF_BIRTHS, NOF, NOF, 0, 0, "births_total", "出生合计", "Births"},
    {PC_RATE, PF_BOYS, PF_GIRLS, NOF, 100.0, 0, "sex_ratio_at_birth", "出生性别比", "Sex ratio at birth"},
    {PC_COUNT, PF_IN, NOF, NOF, 0, 0, "inflow", "流入", "Inflow"},
    {PC_COUNT, PF_OUT, NOF, NOF, 0, 0, "outflow", "流出", "Outflow"},
    {PC_COUNT, PF_MIG_NA, NOF, NOF, 0, 0, "migrations_direction_not_recorded", "流向未登记",
     "Direction not recorded"},
    {PC_COUNT, PF_MIG, NOF, NOF, 0, 0, "migrations", "流动合计", "Migrations"},
    {PC_COUNT, PF_SUB, NOF, NOF, 0, 0, "submitted", "已通报", "Submitted"},
    {PC_RATE, PF_SUB, PF_MIG, NOF, 100.0, 1, "submission_rate_pct", "通报率", "Submission rate"},
    {PC_COUNT, PF_FB, NOF, NOF, 0, 0, "feedback", "已反馈", "Feedback received"},
    {PC_RATE, PF_FB, PF_SUB, NOF, 100.0, 1, "feedback_rate_pct", "反馈率", "Feedback rate"},
    {PC_COUNT, PF_BEN, NOF, NOF, 0, 0, "benefits_paid", "奖扶发放人次", "Benefit payments"},
    {PC_YUAN, PF_BEN, NOF, NOF, 0, 0, "benefits_paid_yuan", "发放金额(元)", "Amount paid (yuan)"},
    {PC_COUNT, PF_V_PRE, NOF, NOF, 0, 0, "visits_prepregnancy_check", "免费孕前优生健康检查",
     "Pre-pregnancy health check"},
    {PC_COUNT, PF_V_REPRO, NOF, NOF, 0, 0, "visits_reproductive_check", "生殖健康检查", "Reproductive health check"},
    {PC_COUNT, PF_V_FOLLOW, NOF, NOF, 0, 0, "visits_followup", "随访服务", "Follow-up visits"},
    {PC_COUNT, PF_V_CONTRA, NOF, NOF, 0, 0, "visits_contraceptive_supplies", "避孕药具发放", "Contraceptive supplies"},
    {PC_COUNT, PF_V_CONSULT, NOF, NOF, 0, 0, "visits_consultation", "咨询服务", "Consultations"},
    {PC_COUNT, PF_V_NA, NOF, NOF, 0, 0, "visits_service_not_recorded", "项目未登记", "Service not recorded"},
    {PC_COUNT, PF_V_TOTAL, NOF, NOF, 0, 0, "visits_total", "服务合计", "Service visits"},
    {PC_RATE, PF_V_FOLLOW, PF_V_PRE, PF_V_REPRO, 100.0, 1, "followup_rate_pct", "随访率", "Follow-up rate"},
};
#define NCOLS (sizeof(COLS) / sizeof(COLS[0]))

/* The sections of the page: a heading and a range of COLS. */
static const struct {
    size_t first, last; /* COLS[first..last] */
    const char *id, *zh, *en;
} SECTIONS[] = {
    {0, 1, "persons", "登记人口", "Registered population"},
    {2, 6, "births", "出生", "Births"},
    {7, 14, "migration", "流动人口", "Migrants"},
    {15, 16, "benefits", "奖励扶助", "Family-planning benefits"},
    {17, 24, "services", "计划生育服务", "Family-planning services"},
};
#define NSECTIONS (sizeof(SECTIONS) / sizeof(SECTIONS[0]))

/* The trend's indicators (district totals by month).  Not registered
 * persons: the report gives that stock as of now for a month not yet
 * approved, so a trend of it would be flat, not history. */
static const int TREND_F[] = {PF_BIRTHS, PF_IN, PF_OUT, PF_BEN, PF_V_TOTAL};
#define NTREND (sizeof(TREND_F) / sizeof(TREND_F[0]))

static const pcol_t *col_of(int f)
{
    for (size_t i = 0; i < NCOLS; i++)
        if (COLS[i].kind == PC_COUNT && COLS[i].f == f)
            return &COLS[i];
    return &COLS[0];
}

/* Is the column part of this month's tables? (a *_NA column only when used) */
static int col_used(const ps_pub_t *p, const pcol_t *c)
{
    if (c->kind != PC_COUNT)
        return 1;
    return (c->f != PF_BIRTHS_NA || p->has_na[0]) && (c->f != PF_MIG_NA || p->has_na[1]) &&
           (c->f != PF_V_NA || p->has_na[2]);
}

/* A rate is shown only when its numerator and denominator(s) are. */
static int rate_value(const ps_pub_t *p, size_t r, const pcol_t *c, double *out)
{
    const int64_t *v = p->rows[r].v;
    int64_t den = v[c->f2] + (c->f3 != NOF ? v[c->f3] : 0);
    if (!ps_pub_shown(p, r, c->f) || !ps_pub_shown(p, r, c->f2) || (c->f3 != NOF && !ps_pub_shown(p, r, c->f3)))
        return 0;
    return ps_report_rate(v[c->f], den, c->scale, out);
}

/* The cell's text for CSV: the number, "<5", "x", or "" (a hidden or
 * undefined rate).  For HTML, *cls says "sup" or "sup2" when suppressed. */
static const char *cell_text(const ps_pub_t *p, size_t r, const pcol_t *c, char *buf, size_t len, const char **cls)
{
    double x;
    *cls = "";
    if (c->kind == PC_COUNT) {
        uint8_t st = p->sdc.state[p->rows[r].cell[c->f]];
        *cls = st == PS_SDC_PRIMARY ? "sup" : st == PS_SDC_SECONDARY ? "sup2" : "";
        return ps_pub_cell_text(p, r, c->f, buf, len);
    }
    if (c->kind == PC_YUAN)
        return ps_pub_shown(p, r, c->f) ? ps_report_yuan_text(p->rows[r].amount_fen, buf, len) : "";
    if (!rate_value(p, r, c, &x))
        return "";
    snprintf(buf, len, "%.1f", x);
    return buf;
}

/* ---- files ----------------------------------------------------------------- */

/* Writes len bytes to dir/name (mode 0644) through a temporary name. */
static int write_file(const char *dir, const char *name, const void *data, size_t len, char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    const char *b = data;
    int fd, rc = PS_OK;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return PS_EIO;
    }
    while (len > 0) {
        ssize_t n = write(fd, b, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = PS_EIO;
            break;
        }
        b += n;
        len -= (size_t)n;
    }
    /* Public aggregate numbers: readable by the web server, whatever the umask. */
    if (rc != PS_OK || fchmod(fd, 0644) != 0 || fsync(fd) != 0)
        rc = PS_EIO;
    if (close(fd) != 0 || rc != PS_OK || rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return PS_EIO;
    }
    return PS_OK;
}

/* Writes what the memstream f collected; closes it. */
static int write_stream(FILE *f, char **buf, size_t *len, const char *dir, const char *name, char *err, size_t errlen)
{
    int rc;
    if (fclose(f) != 0 || !*buf) {
        snprintf(err, errlen, "out of memory writing %s", name);
        free(*buf);
        return PS_ENOMEM;
    }
    rc = write_file(dir, name, *buf, *len, err, errlen);
    free(*buf);
    *buf = NULL;
    return rc;
}

static int copy_chartjs(const char *dir, char *err, size_t errlen)
{
    FILE *f = fopen(PS_CHARTJS_PATH, "rb");
    char *data = NULL;
    long n;
    int rc = PS_EIO;
    if (!f) {
        snprintf(err, errlen, "cannot read %s (install the Debian package libjs-chart.js): %s", PS_CHARTJS_PATH,
                 strerror(errno));
        return PS_EIO;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (data = malloc((size_t)n)) && fread(data, 1, (size_t)n, f) == (size_t)n)
        rc = write_file(dir, "chart.min.js", data, (size_t)n, err, errlen);
    else
        snprintf(err, errlen, "cannot read %s", PS_CHARTJS_PATH);
    free(data);
    fclose(f);
    return rc;
}

/* ---- CSV ------------------------------------------------------------------- */

static void csv_cell(FILE *f, const char *s, int first)
{
    fputs(first ? "\"" : ",\"", f);
    for (; *s; s++)
        fputs(*s == '"' ? "\"\"" : (char[]){*s, 0}, f);
    fputc('"', f);
}

/* indicators.csv: one line per township and the total; UTF-8 with a BOM so
 * that spreadsheet programs open the Chinese names right. */
static void indicators_csv(FILE *f, const ps_pub_t *p, int zh)
{
    char buf[64];
    const char *cls;
    fputs("\xEF\xBB\xBF", f);
    csv_cell(f, "month", 1);
    csv_cell(f, "orgunit", 0);
    csv_cell(f, "name", 0);
    for (size_t i = 0; i < NCOLS; i++)
        if (col_used(p, &COLS[i]))
            csv_cell(f, COLS[i].key, 0);
    fputs("\r\n", f);
    for (size_t r = 0; r < p->nrows; r++) {
        int total = r + 1 == p->nrows;
        csv_cell(f, p->month, 1);
        csv_cell(f, p->rows[r].code, 0);
        csv_cell(f, total ? (zh ? "合计" : "Total") : p->rows[r].name, 0);
        for (size_t i = 0; i < NCOLS; i++)
            if (col_used(p, &COLS[i]))
                csv_cell(f, cell_text(p, r, &COLS[i], buf, sizeof(buf), &cls), 0);
        fputs("\r\n", f);
    }
}

static const char *trend_text(const ps_pub_trend_t *tr, int i, int f, char *buf, size_t len)
{
    if (!tr->shown[i][f])
        return tr->v[i][f] < 5 ? "<5" : "x";
    snprintf(buf, len, "%lld", (long long)tr->v[i][f]);
    return buf;
}

static void trend_csv(FILE *f, const ps_pub_trend_t *tr)
{
    char buf[32];
    fputs("\xEF\xBB\xBF", f);
    csv_cell(f, "month", 1);
    for (size_t k = 0; k < NTREND; k++)
        csv_cell(f, col_of(TREND_F[k])->key, 0);
    fputs("\r\n", f);
    for (int i = 0; i < tr->n; i++) {
        csv_cell(f, tr->month[i], 1);
        for (size_t k = 0; k < NTREND; k++)
            csv_cell(f, trend_text(tr, i, TREND_F[k], buf, sizeof(buf)), 0);
        fputs("\r\n", f);
    }
}

/* ---- data.js: the published numbers for the charts --------------------------- */

/* The published values of field f per township (null when suppressed). */
static json_t *series(const ps_pub_t *p, int f, int zh)
{
    json_t *d = json_array();
    const pcol_t *c = col_of(f);
    for (size_t r = 0; r + 1 < p->nrows; r++)
        json_array_append_new(d, ps_pub_shown(p, r, f) ? json_integer(p->rows[r].v[f]) : json_null());
    return json_pack("{s:s, s:s, s:o}", "key", c->key, "label", zh ? c->zh : c->en, "data", d);
}

static json_t *bar_chart(const ps_pub_t *p, const char *id, const char *title, const int *fs, size_t n, int zh)
{
    json_t *s = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(s, series(p, fs[i], zh));
    return json_pack("{s:s, s:s, s:o}", "id", id, "title", title, "series", s);
}

static json_t *trend_json(const ps_pub_trend_t *tr, int zh)
{
    json_t *months = json_array(), *s = json_array();
    for (int i = 0; i < tr->n; i++)
        json_array_append_new(months, json_string(tr->month[i]));
    for (size_t k = 0; k < NTREND; k++) {
        json_t *d = json_array();
        for (int i = 0; i < tr->n; i++)
            json_array_append_new(d, tr->shown[i][TREND_F[k]] ? json_integer(tr->v[i][TREND_F[k]]) : json_null());
        json_array_append_new(s, json_pack("{s:s, s:s, s:o}", "key", col_of(TREND_F[k])->key, "label",
                                           zh ? col_of(TREND_F[k])->zh : col_of(TREND_F[k])->en, "data", d));
    }
    return json_pack("{s:o, s:o}", "months", months, "series", s);
}

static char *data_js(const ps_pub_t *p, const ps_pub_trend_t *tr, int zh)
{
    static const int births[] = {PF_BOYS, PF_GIRLS}, mig[] = {PF_IN, PF_OUT}, persons[] = {PF_PERSONS},
                     vis[] = {PF_V_PRE, PF_V_REPRO, PF_V_FOLLOW, PF_V_CONTRA, PF_V_CONSULT};
    json_t *names = json_array(), *charts = json_array(), *root;
    char *js, *out = NULL;
    for (size_t r = 0; r + 1 < p->nrows; r++)
        json_array_append_new(names, json_string(p->rows[r].name));
    json_array_append_new(charts, bar_chart(p, "persons", zh ? "登记人口（按镇街）" : "Registered persons by township",
                                            persons, 1, zh));
    json_array_append_new(charts, bar_chart(p, "births", zh ? "出生（按镇街、性别）" : "Births by township and sex",
                                            births, 2, zh));
    json_array_append_new(charts, bar_chart(p, "migration", zh ? "流动人口（按镇街）" : "Migrants by township",
                                            mig, 2, zh));
    json_array_append_new(charts, bar_chart(p, "services", zh ? "计划生育服务（按镇街）" : "Services by township",
                                            vis, 5, zh));
    root = json_pack("{s:s, s:s, s:o, s:o, s:o, s:s}", "lang", zh ? "zh" : "en", "month", p->month, "townships",
                     names, "charts", charts, "trend", trend_json(tr, zh), "suppressed",
                     zh ? "少于5人或为保护而隐藏，未绘出" : "fewer than 5 or hidden for protection: not drawn");
    js = root ? json_dumps(root, JSON_INDENT(1) | JSON_ENSURE_ASCII) : NULL;
    json_decref(root);
    if (js && asprintf(&out, "window.PS_PUBLIC = %s;\n", js) < 0)
        out = NULL;
    free(js);
    return out;
}

/* ---- index.html ------------------------------------------------------------ */

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

static const char RULE_ZH[] =
    "为保护个人隐私，本站只公布汇总数字，不含任何个人记录。人数少于 5 人（含 0 人）的格子显示为“&lt;5”。"
    "为防止从合计数反推出被隐藏的数字，凡某一行、某一列（或某个数与其合计）中只有一个格子被隐藏时，"
    "另隐藏其中最小的一个格子，显示为“×”；并反复检查，直到任何被隐藏的数字都无法由公布的数字推算出来。"
    "比率（出生性别比、通报率、反馈率、随访率）只在其分子和分母都公布时显示；发放金额只在发放人次公布时显示。"
    "图表中不绘出被隐藏的数字。";
static const char RULE_EN[] =
    "To protect privacy this site publishes aggregate counts only, never individual records. Every cell "
    "counting fewer than 5 people (zero included) is shown as &ldquo;&lt;5&rdquo;. So that no hidden number can "
    "be worked out from the totals, whenever a row, a column (or a count and its total) has exactly one hidden "
    "cell, its smallest other cell is hidden too and shown as &ldquo;&times;&rdquo;; this is checked again and "
    "again until no hidden number follows from the published ones. Rates (sex ratio at birth, submission, "
    "feedback and follow-up rates) are shown only when their numerator and denominator are published; amounts "
    "paid only when the number of payments is. The charts leave hidden numbers out.";

static void html_table(FILE *f, const ps_pub_t *p, size_t s, int zh)
{
    char buf[64];
    const char *cls;
    fputs("<table>\n<thead><tr><th>", f);
    fputs(zh ? "镇街" : "Township", f);
    fputs("</th>", f);
    for (size_t i = SECTIONS[s].first; i <= SECTIONS[s].last; i++)
        if (col_used(p, &COLS[i]))
            fprintf(f, "<th>%s</th>", zh ? COLS[i].zh : COLS[i].en);
    fputs("</tr></thead>\n<tbody>\n", f);
    for (size_t r = 0; r < p->nrows; r++) {
        int total = r + 1 == p->nrows;
        fprintf(f, "<tr%s><th>", total ? " class=\"total\"" : "");
        html_text(f, total ? (zh ? "全区合计" : "District total") : p->rows[r].name);
        fputs("</th>", f);
        for (size_t i = SECTIONS[s].first; i <= SECTIONS[s].last; i++) {
            const char *t;
            if (!col_used(p, &COLS[i]))
                continue;
            t = cell_text(p, r, &COLS[i], buf, sizeof(buf), &cls);
            if (*cls)
                fprintf(f, "<td class=\"%s\" title=\"%s\">%s</td>", cls,
                        strcmp(cls, "sup") == 0 ? (zh ? "少于5人" : "fewer than 5")
                                                : (zh ? "为防止反推而隐藏" : "hidden so others cannot be worked out"),
                        strcmp(cls, "sup") == 0 ? "&lt;5" : "&times;");
            else
                fprintf(f, "<td>%s</td>", *t ? t : "—");
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody>\n</table>\n", f);
}

static void html_trend(FILE *f, const ps_pub_trend_t *tr, int zh)
{
    char buf[32];
    fprintf(f, "<section id=\"trend\">\n<h2>%s</h2>\n", zh ? "近 12 个月趋势（全区合计）" : "The last 12 months (district)");
    fputs("<div class=\"chart\"><canvas id=\"chart-trend\"></canvas></div>\n<table>\n<thead><tr>", f);
    fprintf(f, "<th>%s</th>", zh ? "月份" : "Month");
    for (size_t k = 0; k < NTREND; k++)
        fprintf(f, "<th>%s</th>", zh ? col_of(TREND_F[k])->zh : col_of(TREND_F[k])->en);
    fputs("</tr></thead>\n<tbody>\n", f);
    for (int i = 0; i < tr->n; i++) {
        fprintf(f, "<tr><th>%s</th>", tr->month[i]);
        for (size_t k = 0; k < NTREND; k++) {
            const char *t = trend_text(tr, i, TREND_F[k], buf, sizeof(buf));
            if (tr->shown[i][TREND_F[k]])
                fprintf(f, "<td>%s</td>", t);
            else
                fprintf(f, "<td class=\"%s\">%s</td>", *t == '<' ? "sup" : "sup2", *t == '<' ? "&lt;5" : "&times;");
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody>\n</table>\n</section>\n", f);
}

/* The state of the month's close, in words for the public. */
static void html_status(FILE *f, const ps_pub_t *p, int zh)
{
    size_t nt = p->nrows - 1, approved = 0;
    for (size_t r = 0; r < nt; r++)
        approved += strcmp(p->rows[r].close_state, "approved") == 0;
    fputs("<p class=\"status\">", f);
    if (approved == nt)
        fputs(zh ? "各镇街本月数据均已审核批准。" : "Every township's figures for the month have been approved.", f);
    else
        fprintf(f,
                zh ? "初步数据：%zu 个镇街中 %zu 个已审核批准，数字还可能更正。"
                   : "Provisional: %2$zu of %1$zu townships approved; the figures may still be corrected.",
                nt, approved);
    fputs("</p>\n", f);
}

static void index_html(FILE *f, const ps_pub_site_t *s, const ps_pub_t *p, const ps_pub_trend_t *tr)
{
    int zh = s->zh;
    char when[32];
    struct tm tm;
    localtime_r(&s->generated, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n", zh ? "zh-CN" : "en");
    fputs("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", f);
    html_text(f, s->district);
    fprintf(f, " %s %s</title>\n<link rel=\"stylesheet\" href=\"site.css\">\n</head>\n<body>\n<header>\n<h1>",
            zh ? "人口和计划生育统计" : "population statistics", p->month);
    html_text(f, s->district);
    fprintf(f, " %s</h1>\n<p class=\"month\">%s %s</p>\n", zh ? "人口和计划生育统计月报" : "population statistics",
            zh ? "统计月份：" : "Month:", p->month);
    html_status(f, p, zh);
    fprintf(f, "</header>\n<section id=\"rule\">\n<h2>%s</h2>\n<p>%s</p>\n</section>\n",
            zh ? "小数保护规则" : "How small numbers are protected", zh ? RULE_ZH : RULE_EN);
    for (size_t k = 0; k < NSECTIONS; k++) {
        fprintf(f, "<section id=\"%s\">\n<h2>%s</h2>\n", SECTIONS[k].id, zh ? SECTIONS[k].zh : SECTIONS[k].en);
        if (k != 3)
            fprintf(f, "<div class=\"chart\"><canvas id=\"chart-%s\"></canvas></div>\n", SECTIONS[k].id);
        html_table(f, p, k, zh);
        fputs("</section>\n", f);
    }
    html_trend(f, tr, zh);
    fprintf(f,
            "<footer>\n<p>%s <a href=\"indicators.csv\">indicators.csv</a> · <a href=\"trend.csv\">trend.csv</a></p>\n"
            "<p>%s %s. %s</p>\n</footer>\n",
            zh ? "下载数据：" : "Download:", zh ? "生成时间" : "Generated", when,
            zh ? "图表由 Chart.js（MIT 许可）绘制。" : "Charts drawn with Chart.js (MIT licence).");
    fputs("<script src=\"chart.min.js\"></script>\n<script src=\"data.js\"></script>\n"
          "<script src=\"site.js\"></script>\n</body>\n</html>\n",
          f);
}

static const char SITE_CSS[] =
    "body{font-family:\"Noto Sans CJK SC\",\"Microsoft YaHei\",sans-serif;margin:0 auto;max-width:1100px;"
    "padding:1em;color:#222}\n"
    "h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:2px solid #c33;padding-bottom:.2em}\n"
    "table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}\n"
    "th,td{border:1px solid #bbb;padding:.25em .6em}td{text-align:right}thead th{background:#f3f3f3}\n"
    "tr.total{font-weight:bold;background:#fafafa}td.sup,td.sup2{color:#888;text-align:center}\n"
    ".chart{position:relative;height:320px;margin:.5em 0}#rule p{background:#fff8e1;padding:.6em;line-height:1.6}\n"
    ".status{color:#555}footer{margin-top:2em;color:#666;font-size:.9em}\n"
    "@media print{.chart{display:none}}\n";

/* Draws the charts from data.js with Chart.js; hidden numbers are null
 * (no bar, no point). */
static const char SITE_JS[] =
    "(function () {\n"
    "  'use strict';\n"
    "  var d = window.PS_PUBLIC, colors = ['#3367d6', '#d64550', '#2e9d5b', '#f0a030', '#7e57c2', '#555555'];\n"
    "  if (!d || !window.Chart) { return; }\n"
    "  function sets(series) {\n"
    "    return series.map(function (s, i) {\n"
    "      return { label: s.label, data: s.data, backgroundColor: colors[i % colors.length],\n"
    "               borderColor: colors[i % colors.length], spanGaps: false };\n"
    "    });\n"
    "  }\n"
    "  d.charts.forEach(function (c) {\n"
    "    var el = document.getElementById('chart-' + c.id);\n"
    "    if (!el) { return; }\n"
    "    new Chart(el, { type: 'bar', data: { labels: d.townships, datasets: sets(c.series) },\n"
    "      options: { animation: false, maintainAspectRatio: false,\n"
    "        plugins: { title: { display: true, text: c.title }, subtitle: { display: true, text: d.suppressed } } } });\n"
    "  });\n"
    "  var t = document.getElementById('chart-trend');\n"
    "  if (t) {\n"
    "    new Chart(t, { type: 'line', data: { labels: d.trend.months, datasets: sets(d.trend.series) },\n"
    "      options: { animation: false, maintainAspectRatio: false } });\n"
    "  }\n"
    "})();\n";

int ps_pub_site_write(const ps_pub_site_t *s, const ps_pub_t *p, const ps_pub_trend_t *tr, char *err, size_t errlen)
{
    char *buf = NULL, *js;
    size_t len = 0;
    FILE *f;
    int rc;
    if (mkdir(s->dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot make %s: %s", s->dir, strerror(errno));
        return PS_EIO;
    }
    if ((rc = copy_chartjs(s->dir, err, errlen)) != PS_OK)
        return rc;
    if ((rc = write_file(s->dir, "site.css", SITE_CSS, sizeof(SITE_CSS) - 1, err, errlen)) != PS_OK ||
        (rc = write_file(s->dir, "site.js", SITE_JS, sizeof(SITE_JS) - 1, err, errlen)) != PS_OK)
        return rc;
    if (!(js = data_js(p, tr, s->zh))) {
        snprintf(err, errlen, "out of memory");
        return PS_ENOMEM;
    }
    rc = write_file(s->dir, "data.js", js, strlen(js), err, errlen);
    free(js);
    if (rc != PS_OK)
        return rc;
    if (!(f = open_memstream(&buf, &len)))
        return PS_ENOMEM;
    indicators_csv(f, p, s->zh);
    if ((rc = write_stream(f, &buf, &len, s->dir, "indicators.csv", err, errlen)) != PS_OK)
        return rc;
    if (!(f = open_memstream(&buf, &len)))
        return PS_ENOMEM;
    trend_csv(f, tr);
    if ((rc = write_stream(f, &buf, &len, s->dir, "trend.csv", err, errlen)) != PS_OK)
        return rc;
    if (!(f = open_memstream(&buf, &len)))
        return PS_ENOMEM;
    index_html(f, s, p, tr);
    return write_stream(f, &buf, &len, s->dir, "index.html", err, errlen);
}
