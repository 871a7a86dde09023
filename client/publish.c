/* publish.c - the tables of the public site and the `popsync publish`
 * command (publish.h; the site's files are written by publish_site.c). */
#include "publish.h"

#include "cache.h"
#include "cli.h"
#include "err.h"
#include "orgunit.h"
#include "publish_site.h"
#include "report.h"
#include "link.h"
#include "rq.h"
#include "wire.pb-c.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PUB_THRESHOLD 5
#define PUB_TREND_MONTHS 12

/* ---- the tables ------------------------------------------------------------ */

static int64_t res_value(const Popsync__ReportRow *r, const char *name)
{
    for (size_t i = 0; i < r->n_values; i++)
        if (strcmp(r->values[i]->name, name) == 0)
            return r->values[i]->value;
    return 0;
}

static void row_from_report(ps_pub_row_t *o, const Popsync__ReportRow *r)
{
    static const struct {
        int f;
        const char *name;
    } direct[] = {{PF_PERSONS, "persons_total"},
                  {PF_NEW, "persons_new"},
                  {PF_BOYS, "births_male"},
                  {PF_GIRLS, "births_female"},
                  {PF_BIRTHS, "births_total"},
                  {PF_IN, "inflow"},
                  {PF_OUT, "outflow"},
                  {PF_MIG, "migrations"},
                  {PF_SUB, "submitted"},
                  {PF_FB, "feedback"},
                  {PF_BEN, "benefits_paid"},
                  {PF_V_PRE, "visits_prepregnancy_check"},
                  {PF_V_REPRO, "visits_reproductive_check"},
                  {PF_V_FOLLOW, "visits_followup"},
                  {PF_V_CONTRA, "visits_contraceptive_supplies"},
                  {PF_V_CONSULT, "visits_consultation"},
                  {PF_V_TOTAL, "visits_total"}};
    int64_t *v = o->v;
    for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++)
        v[direct[i].f] = res_value(r, direct[i].name);
    v[PF_BIRTHS_NA] = v[PF_BIRTHS] - v[PF_BOYS] - v[PF_GIRLS];
    v[PF_MIG_NA] = v[PF_MIG] - v[PF_IN] - v[PF_OUT];
    v[PF_NOSUB] = v[PF_MIG] - v[PF_SUB];
    v[PF_NOFB] = v[PF_SUB] - v[PF_FB];
    v[PF_V_NA] = v[PF_V_TOTAL] - v[PF_V_PRE] - v[PF_V_REPRO] - v[PF_V_FOLLOW] - v[PF_V_CONTRA] - v[PF_V_CONSULT];
    o->amount_fen = res_value(r, "benefits_paid_fen");
    snprintf(o->code, sizeof(o->code), "%s", r->orgunit ? r->orgunit : "");
    snprintf(o->name, sizeof(o->name), "%s", r->name ? r->name : "");
    snprintf(o->close_state, sizeof(o->close_state), "%s", r->close_state ? r->close_state : "");
}

/* The lines of one row: the parts of each total within the row. */
static int row_lines(ps_pub_t *p, const ps_pub_row_t *r)
{
    const size_t *c = r->cell;
    size_t births[3] = {c[PF_BOYS], c[PF_GIRLS], c[PF_BIRTHS_NA]};
    size_t mig[3] = {c[PF_IN], c[PF_OUT], c[PF_MIG_NA]};
    size_t sub[2] = {c[PF_SUB], c[PF_NOSUB]};
    size_t fb[2] = {c[PF_FB], c[PF_NOFB]};
    size_t vis[6] = {c[PF_V_PRE], c[PF_V_REPRO], c[PF_V_FOLLOW], c[PF_V_CONTRA], c[PF_V_CONSULT], c[PF_V_NA]};
    int rc;
    if ((rc = ps_sdc_line(&p->sdc, c[PF_BIRTHS], births, p->has_na[0] ? 3 : 2)) != PS_OK ||
        (rc = ps_sdc_line(&p->sdc, c[PF_MIG], mig, p->has_na[1] ? 3 : 2)) != PS_OK ||
        (rc = ps_sdc_line(&p->sdc, c[PF_MIG], sub, 2)) != PS_OK ||
        (rc = ps_sdc_line(&p->sdc, c[PF_SUB], fb, 2)) != PS_OK)
        return rc;
    return ps_sdc_line(&p->sdc, c[PF_V_TOTAL], vis, p->has_na[2] ? 6 : 5);
}

/* Is field f part of the published tables? (an unused *_NA is not) */
static int field_used(const ps_pub_t *p, int f)
{
    return (f != PF_BIRTHS_NA || p->has_na[0]) && (f != PF_MIG_NA || p->has_na[1]) && (f != PF_V_NA || p->has_na[2]);
}

/* The cells and lines of the whole month: each row's own lines, and for
 * every field the district total as the sum of the townships. */
static int build_cells(ps_pub_t *p)
{
    size_t nt = p->nrows - 1, *parts = malloc((nt ? nt : 1) * sizeof(size_t));
    int rc = PS_OK;
    if (!parts)
        return PS_ENOMEM;
    for (size_t r = 0; r < p->nrows && rc == PS_OK; r++)
        for (int f = 0; f < PF_COUNT && rc == PS_OK; f++)
            rc = ps_sdc_cell(&p->sdc, p->rows[r].v[f], &p->rows[r].cell[f]);
    for (size_t r = 0; r < p->nrows && rc == PS_OK; r++)
        rc = row_lines(p, &p->rows[r]);
    for (int f = 0; f < PF_COUNT && rc == PS_OK && nt > 0; f++) {
        if (!field_used(p, f))
            continue;
        for (size_t t = 0; t < nt; t++)
            parts[t] = p->rows[t].cell[f];
        rc = ps_sdc_line(&p->sdc, p->rows[nt].cell[f], parts, nt);
    }
    free(parts);
    return rc;
}

int ps_pub_build(ps_pub_t *p, const Popsync__ReportResult *res)
{
    size_t nt = 0;
    ps_pub_row_t *tot;
    memset(p, 0, sizeof(*p));
    ps_sdc_init(&p->sdc);
    snprintf(p->month, sizeof(p->month), "%s", res->month ? res->month : "");
    for (size_t i = 0; i < res->n_rows; i++)
        nt += res->rows[i]->orgunit && *res->rows[i]->orgunit;
    if (nt == 0)
        return PS_EINVAL;
    if (!(p->rows = calloc(nt + 1, sizeof(*p->rows))))
        return PS_ENOMEM;
    for (size_t i = 0; i < res->n_rows; i++)
        if (res->rows[i]->orgunit && *res->rows[i]->orgunit)
            row_from_report(&p->rows[p->nrows++], res->rows[i]);
    tot = &p->rows[p->nrows++];
    for (size_t t = 0; t < nt; t++) {
        for (int f = 0; f < PF_COUNT; f++)
            tot->v[f] += p->rows[t].v[f];
        tot->amount_fen += p->rows[t].amount_fen;
        p->has_na[0] |= p->rows[t].v[PF_BIRTHS_NA] != 0;
        p->has_na[1] |= p->rows[t].v[PF_MIG_NA] != 0;
        p->has_na[2] |= p->rows[t].v[PF_V_NA] != 0;
    }
    if (build_cells(p) != PS_OK || ps_sdc_run(&p->sdc, PUB_THRESHOLD) != PS_OK)
        return PS_ENOMEM;
    return PS_OK;
}

void ps_pub_free(ps_pub_t *p)
{
    free(p->rows);
    ps_sdc_free(&p->sdc);
    memset(p, 0, sizeof(*p));
}

int ps_pub_shown(const ps_pub_t *p, size_t r, int f)
{
    return p->sdc.state[p->rows[r].cell[f]] == PS_SDC_SHOWN;
}

const char *ps_pub_cell_text(const ps_pub_t *p, size_t r, int f, char *buf, size_t len)
{
    uint8_t st = p->sdc.state[p->rows[r].cell[f]];
    if (st == PS_SDC_PRIMARY)
        return "<5";
    if (st == PS_SDC_SECONDARY)
        return "x";
    snprintf(buf, len, "%lld", (long long)p->rows[r].v[f]);
    return buf;
}

/* ---- the command ----------------------------------------------------------- */

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

/* The monthly report of the whole district for month, as `popsync report
 * monthly` asks for it.  PS_EXIT_* */
typedef struct month_ask {
    const Popsync__ReportRequest *rq;
    Popsync__ReportResult **out;
} month_ask_t;

static int ask_month(ps_link_t *l, void *arg)
{
    month_ask_t *a = arg;
    return ps_rq_report(l->s, a->rq, on_report, a->out);
}

static int fetch_month(ps_cache_t *c, const char *month, Popsync__ReportResult **out)
{
    Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
    month_ask_t a = {&rq, out};
    char err[512];
    int rc;
    rq.report = (char *)"monthly";
    rq.month = (char *)month;
    rq.orgunit = (char *)"";
    rc = ps_link_once(c, ask_month, &a, NULL, err, sizeof(err));
    if (rc != PS_OK) {
        ps_cli_err("publish: %s", err);
        return rc == PS_EREJECTED ? PS_EXIT_FAIL : PS_EXIT_SYNC;
    }
    if (!*out) {
        ps_cli_err("publish: out of memory");
        return PS_EXIT_FAIL;
    }
    return PS_EXIT_OK;
}

/* The month n months before month ("2026-01" - 1 = "2025-12"). */
static void month_back(const char *month, int n, char out[8])
{
    int y = atoi(month), m = atoi(month + 5) - n;
    while (m < 1) {
        m += 12;
        y--;
    }
    snprintf(out, 8, "%04u-%02u", (unsigned)y % 10000u, (unsigned)m % 100u);
}

/* The district totals of the trend months (oldest first); the last is the
 * month itself. */
static int fetch_trend(ps_cache_t *c, const char *month, ps_pub_trend_t *tr)
{
    for (int i = 0; i < PUB_TREND_MONTHS - 1; i++) {
        Popsync__ReportResult *res = NULL;
        ps_pub_t p;
        int rc;
        month_back(month, PUB_TREND_MONTHS - 1 - i, tr->month[i]);
        if ((rc = fetch_month(c, tr->month[i], &res)) != PS_EXIT_OK)
            return rc;
        rc = ps_pub_build(&p, res);
        popsync__report_result__free_unpacked(res, NULL);
        if (rc != PS_OK) {
            ps_pub_free(&p);
            ps_cli_err("publish: %s: %s", tr->month[i], ps_strerror(rc));
            return PS_EXIT_FAIL;
        }
        for (int f = 0; f < PF_COUNT; f++) {
            tr->v[i][f] = p.rows[p.nrows - 1].v[f];
            tr->shown[i][f] = tr->v[i][f] >= PUB_THRESHOLD;
        }
        ps_pub_free(&p);
    }
    tr->n = PUB_TREND_MONTHS;
    return PS_EXIT_OK;
}

static const char PUBLISH_USAGE[] = "publish --month YYYY-MM --out DIR [--lang zh|en]";

static int parse_args(int argc, char **argv, const char **month, const char **out, int *zh)
{
    static const struct option lo[] = {{"month", required_argument, NULL, 'm'},
                                       {"out", required_argument, NULL, 'o'},
                                       {"lang", required_argument, NULL, 'L'},
                                       {NULL, 0, NULL, 0}};
    int ch;
    *zh = 1; /* Chinese unless asked: the public site is for the district's public */
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch == 'm')
            *month = optarg;
        else if (ch == 'o')
            *out = optarg;
        else if (ch == 'L' && (strcmp(optarg, "zh") == 0 || strcmp(optarg, "en") == 0))
            *zh = strcmp(optarg, "zh") == 0;
        else {
            ps_cli_err("publish: bad option or value '%s'; usage: popsync %s", argv[optind - 1], PUBLISH_USAGE);
            return PS_EXIT_USAGE;
        }
    }
    if (optind < argc || !*month || !*out || !ps_report_month_valid(*month)) {
        ps_cli_err("publish: usage: popsync %s (month as YYYY-MM)", PUBLISH_USAGE);
        return PS_EXIT_USAGE;
    }
    return PS_EXIT_OK;
}

/* The district's own name from the cache's tree. */
static void district_name(ps_cache_t *c, char *out, size_t len)
{
    uint8_t *csv = NULL, digest[32];
    size_t n = 0;
    ps_orgunits_t *t = NULL;
    char err[256];
    out[0] = '\0';
    if (ps_cache_get_orgunits(c, &csv, &n, digest) == PS_OK && ps_orgunits_parse(csv, n, &t, err, sizeof(err)) == PS_OK)
        snprintf(out, len, "%s", ps_orgunits_root(t)->name);
    ps_orgunits_free(t);
    free(csv);
}

int ps_cmd_publish(ps_cli_t *cli, int argc, char **argv)
{
    const char *month = NULL, *out = NULL;
    Popsync__ReportResult *res = NULL;
    ps_pub_trend_t trend;
    ps_pub_t p;
    ps_cache_t *c = NULL;
    ps_pub_site_t site;
    char err[512];
    int zh, rc, built = 0;

    if ((rc = parse_args(argc, argv, &month, &out, &zh)) != PS_EXIT_OK)
        return rc;
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err)) != PS_OK) {
        ps_cli_err("publish: %s", err);
        return PS_EXIT_FAIL;
    }
    rc = PS_EXIT_FAIL;
    /* Only the district's data makes the district's site: a township's
     * (or a viewer's) cache would publish part of it as if it were all. */
    if (strcmp(ps_cache_meta(c)->role, "admin") != 0) {
        ps_cli_err("publish: needs the district administrator's cache (this one is role %s for %s): "
                   "the public site shows the whole district",
                   ps_cache_meta(c)->role, ps_cache_meta(c)->orgunit);
        goto done;
    }
    memset(&trend, 0, sizeof(trend));
    if ((rc = fetch_month(c, month, &res)) != PS_EXIT_OK)
        goto done;
    rc = PS_EXIT_FAIL;
    built = 1;
    if (ps_pub_build(&p, res) != PS_OK) {
        ps_cli_err("publish: the report for %s has no township rows", month);
        goto done;
    }
    if ((rc = fetch_trend(c, month, &trend)) != PS_EXIT_OK)
        goto done;
    /* The month itself: the cells as the township table publishes them. */
    snprintf(trend.month[PUB_TREND_MONTHS - 1], 8, "%s", month);
    for (int f = 0; f < PF_COUNT; f++) {
        trend.v[PUB_TREND_MONTHS - 1][f] = p.rows[p.nrows - 1].v[f];
        trend.shown[PUB_TREND_MONTHS - 1][f] = ps_pub_shown(&p, p.nrows - 1, f);
    }
    memset(&site, 0, sizeof(site));
    site.zh = zh;
    site.dir = out;
    site.generated = time(NULL);
    district_name(c, site.district, sizeof(site.district));
    if (ps_pub_site_write(&site, &p, &trend, err, sizeof(err)) != PS_OK) {
        ps_cli_err("publish: %s", err);
        rc = PS_EXIT_FAIL;
        goto done;
    }
    {
        size_t shown = 0, hidden = 0;
        for (size_t r = 0; r < p.nrows; r++)
            for (int f = 0; f < PF_COUNT; f++)
                if (field_used(&p, f) && f != PF_NOSUB && f != PF_NOFB)
                    {
                    if (ps_pub_shown(&p, r, f))
                        shown++;
                    else
                        hidden++;
                }
        if (zh)
            printf("已写入 %s（%zu 个格子中 %zu 个按小数保护规则隐藏）\n", out, shown + hidden, hidden);
        else
            printf("wrote %s (%zu of %zu cells suppressed)\n", out, hidden, shown + hidden);
    }
    rc = PS_EXIT_OK;
done:
    if (built)
        ps_pub_free(&p);
    if (res)
        popsync__report_result__free_unpacked(res, NULL);
    ps_cache_close(c);
    return rc;
}
