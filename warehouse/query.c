/* query.c - what the province asks the warehouse: the monthly report by
 * district (from the counters, so it answers in milliseconds whatever the
 * number of records), ID numbers registered more than once, and where each
 * district's stream stands.
 *
 * The monthly report is the district's report one level up: the same
 * indicators, computed from the same counters by the same rule as
 * server/store_query.c (delay buckets turned into "on time" with the
 * deadlines asked for), printed by the client's own formatting
 * (ps_report_monthly_out), with one row per district instead of per township.
 */
#include "wh_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "counters.h"
#include "err.h"
#include "fields.h"
#include "orgunit.h"
#include "report.h"
#include "wire.pb-c.h"


typedef struct drow {
    char code[WH_DISTRICT_MAX];
    int64_t v[PS_INDICATORS];
} drow_t;

static drow_t *row_for(drow_t **rows, size_t *n, const char *code)
{
    drow_t *p;
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*rows)[i].code, code))
            return &(*rows)[i];
    if (!(p = realloc(*rows, (*n + 1) * sizeof(*p))))
        return NULL;
    *rows = p;
    memset(&p[*n], 0, sizeof(*p));
    snprintf(p[*n].code, sizeof(p[*n].code), "%s", code);
    return &p[(*n)++];
}

/* One counter into its row, as the district's add_month does. */
static void add_metric(drow_t *row, const char *metric, int64_t val, uint32_t dl_u, uint32_t dl_n)
{
    int idx;
    if (!strncmp(metric, "sub_", 4) || !strncmp(metric, "fb_", 3)) {
        const char *p = strchr(metric, '_') + 1;
        long days = strtol(p + 2, NULL, 10);
        uint32_t dl = p[0] == 'u' ? dl_u : dl_n;
        /* Bucket 61 means "later than 60 days": on time only for deadlines above 60. */
        if (days <= (long)dl && !(days == PS_DELAY_BUCKETS - 1 && dl < PS_DELAY_BUCKETS))
            row->v[ps_indicator_index(metric[0] == 's' ? "submitted_on_time" : "feedback_on_time")] += val;
        return;
    }
    if ((idx = ps_indicator_index(metric)) >= 0)
        row->v[idx] += val;
}

static int load_rows(PGconn *pg, uint32_t month, uint32_t dl_u, uint32_t dl_n, drow_t **rows, size_t *nrows)
{
    char m[16];
    const char *pv[1] = {m};
    PGresult *r;
    int rc = PS_OK;

    /* Every district the warehouse has heard from gets a row. */
    r = PQexec(pg, "SELECT district FROM wh_position ORDER BY district");
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "popsync-warehouse: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
        PQclear(r);
        return PS_EDB;
    }
    for (int i = 0; i < PQntuples(r) && !rc; i++)
        if (!row_for(rows, nrows, PQgetvalue(r, i, 0)))
            rc = PS_ENOMEM;
    PQclear(r);
    snprintf(m, sizeof(m), "%u", month);
    r = PQexecParams(pg,
                     "SELECT district, metric, sum(value) FROM wh_counter WHERE month = $1::integer OR month = 0"
                     " GROUP BY district, metric",
                     1, NULL, pv, NULL, NULL, 0);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "popsync-warehouse: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
        PQclear(r);
        return PS_EDB;
    }
    for (int i = 0; i < PQntuples(r) && !rc; i++) {
        drow_t *row = row_for(rows, nrows, PQgetvalue(r, i, 0));
        if (!row)
            rc = PS_ENOMEM;
        else
            add_metric(row, PQgetvalue(r, i, 1), strtoll(PQgetvalue(r, i, 2), NULL, 10), dl_u, dl_n);
    }
    PQclear(r);
    return rc;
}

static int cmp_drow(const void *a, const void *b)
{
    return strcmp(((const drow_t *)a)->code, ((const drow_t *)b)->code);
}

int wh_report_monthly(PGconn *pg, const wh_conf_t *c, const char *month, int fmt, int zh, uint32_t dl_u,
                      uint32_t dl_n, const char *out)
{
    Popsync__ReportResult res = POPSYNC__REPORT_RESULT__INIT;
    Popsync__ReportRow *rr = NULL, **rp = NULL;
    Popsync__ReportValue *vals = NULL, **vp = NULL;
    ps_orgunits_t *tree = NULL;
    drow_t *rows = NULL, total;
    size_t nrows = 0;
    char err[256];
    struct timespec ts;
    int rc;

    if (c->orgunits && ps_orgunits_load(c->orgunits, &tree, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsync-warehouse: %s: %s\n", c->orgunits, err);
        return PS_EINVAL;
    }
    if ((rc = load_rows(pg, ps_month_of(month), dl_u, dl_n, &rows, &nrows)))
        goto out;
    if (nrows)
        qsort(rows, nrows, sizeof(*rows), cmp_drow);
    memset(&total, 0, sizeof(total));
    rr = calloc(nrows + 1, sizeof(*rr));
    rp = calloc(nrows + 1, sizeof(*rp));
    vals = calloc((nrows + 1) * PS_INDICATORS, sizeof(*vals));
    vp = calloc((nrows + 1) * PS_INDICATORS, sizeof(*vp));
    if (!rr || !rp || !vals || !vp) {
        rc = PS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i <= nrows; i++) {
        drow_t *d = i < nrows ? &rows[i] : &total;
        const ps_orgunit_t *u = i < nrows && tree ? ps_orgunits_find(tree, d->code) : NULL;
        popsync__report_row__init(&rr[i]);
        rr[i].orgunit = i < nrows ? d->code : "";
        rr[i].name = u ? u->name : "";
        rr[i].close_state = "";
        for (size_t j = 0; j < PS_INDICATORS; j++) {
            popsync__report_value__init(&vals[i * PS_INDICATORS + j]);
            vals[i * PS_INDICATORS + j].name = (char *)ps_indicators[j];
            vals[i * PS_INDICATORS + j].value = d->v[j];
            vp[i * PS_INDICATORS + j] = &vals[i * PS_INDICATORS + j];
            if (i < nrows)
                total.v[j] += d->v[j];
        }
        rr[i].n_values = PS_INDICATORS;
        rr[i].values = vp + i * PS_INDICATORS;
        rp[i] = &rr[i];
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    res.report = "monthly";
    res.month = (char *)month;
    res.n_rows = nrows + 1;
    res.rows = rp;
    res.generated_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    res.deadline_urgent_days = dl_u;
    res.deadline_normal_days = dl_n;
    if ((rc = ps_report_monthly_out(&res, tree, fmt, zh, out)))
        fprintf(stderr, "popsync-warehouse: cannot write %s\n", out ? out : "the report");
    else if (fmt == PS_REPORT_XLSX)
        printf(zh ? "已写入 %s\n" : "wrote %s\n", out);
out:
    free(rr);
    free(rp);
    free(vals);
    free(vp);
    free(rows);
    ps_orgunits_free(tree);
    return rc;
}

/* ---- quality: one ID number, several registrations ---------------------------------- */

int wh_report_quality(PGconn *pg, int fmt, int zh, int details)
{
    PGresult *r = PQexec(pg, "SELECT id_number, count(*), count(DISTINCT district),"
                             " string_agg(district || ':' || id::text, ',' ORDER BY district, id)"
                             " FROM person WHERE NOT deleted AND id_number IS NOT NULL"
                             " GROUP BY id_number HAVING count(*) > 1"
                             " ORDER BY count(DISTINCT district) DESC, id_number");
    json_t *arr = NULL;
    int n, across = 0;

    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "popsync-warehouse: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
        PQclear(r);
        return PS_EDB;
    }
    n = PQntuples(r);
    for (int i = 0; i < n; i++)
        across += atoi(PQgetvalue(r, i, 2)) > 1;
    if (fmt == PS_REPORT_JSON)
        arr = json_array();
    else if (zh)
        printf("身份证号重复登记：%d 个号码登记在两个及以上的区，%d 个号码在同一个区内登记两次及以上\n\n", across,
               n - across);
    else
        printf("ID numbers registered more than once: %d in two or more districts, %d more than once within one "
               "district\n\n",
               across, n - across);
    if (fmt != PS_REPORT_JSON && n)
        printf("%-20s  %s  %s  %s\n", zh ? "身份证号" : "ID number", zh ? "登记数" : "Records",
               zh ? "区数" : "Districts", zh ? "区" : "Where");
    for (int i = 0; i < n; i++) {
        char shown[64], *list = strdup(PQgetvalue(r, i, 3)), *save = NULL, *tok, where[512] = "", prev[64] = "";
        size_t off = 0;
        json_t *recs = json_array();
        ps_field_shown(POPSYNC__KIND__KIND_PERSON, "id_number", PQgetvalue(r, i, 0), shown, sizeof(shown));
        for (tok = list ? strtok_r(list, ",", &save) : NULL; tok; tok = strtok_r(NULL, ",", &save)) {
            char *colon = strchr(tok, ':');
            *colon = '\0';
            /* The districts once each, in order (the list is sorted by district). */
            if (strcmp(prev, tok) != 0 && off < sizeof(where))
                off += (size_t)snprintf(where + off, sizeof(where) - off, "%s%s", off ? " " : "", tok);
            snprintf(prev, sizeof(prev), "%s", tok);
            json_array_append_new(recs, json_pack("{s:s,s:s}", "district", tok, "record_id", colon + 1));
            if (details && fmt != PS_REPORT_JSON)
                printf("    %s %s\n", tok, colon + 1);
        }
        if (fmt == PS_REPORT_JSON)
            json_array_append_new(arr, json_pack("{s:s,s:i,s:i,s:o}", "id_number", shown,
                                                 "records", atoi(PQgetvalue(r, i, 1)), "districts",
                                                 atoi(PQgetvalue(r, i, 2)), "registrations", recs));
        else {
            json_decref(recs);
            printf("%-20s  %7s  %9s  %s\n", shown, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), where);
        }
        free(list);
    }
    if (arr) {
        json_t *o = json_pack("{s:s,s:i,s:i,s:o}", "report", "quality", "across_districts", across,
                              "within_one_district", n - across, "duplicate_id_numbers", arr);
        char *s = json_dumps(o, JSON_INDENT(2));
        puts(s ? s : "{}");
        free(s);
        json_decref(o);
    }
    PQclear(r);
    return PS_OK;
}

/* ---- status ---------------------------------------------------------------------------- */

int wh_status(PGconn *pg, int json)
{
    PGresult *r = PQexec(pg, "SELECT p.district, p.last_seq, p.messages, p.last_stream_seq,"
                             " to_char(p.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                             /* From the counters: a count(*) of 30 million rows is not a status. */
                             " (SELECT coalesce(sum(value), 0) FROM wh_counter c WHERE c.district = p.district"
                             " AND c.month = 0 AND c.metric = 'persons_total')"
                             " FROM wh_position p ORDER BY p.district");
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "popsync-warehouse: %s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
        PQclear(r);
        return PS_EDB;
    }
    if (!json)
        printf("%-14s  %12s  %12s  %12s  %10s  %s\n", "District", "Feed seq", "Rows changed", "Stream seq",
               "Persons", "Last applied (UTC)");
    for (int i = 0; i < PQntuples(r); i++) {
        if (json)
            printf("{\"district\":\"%s\",\"last_seq\":\"%s\",\"messages\":\"%s\",\"last_stream_seq\":\"%s\","
                   "\"persons\":\"%s\",\"updated_at\":\"%s\"}\n",
                   PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                   PQgetvalue(r, i, 5), PQgetvalue(r, i, 4));
        else
            printf("%-14s  %12s  %12s  %12s  %10s  %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 5), PQgetvalue(r, i, 4));
    }
    PQclear(r);
    return PS_OK;
}
