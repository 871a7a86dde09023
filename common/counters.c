/* counters.c - what each record adds to the report counters. */
#include "counters.h"
#include "dates.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const ps_indicators[PS_INDICATORS] = {
    "persons_total", "persons_new", "births_male", "births_female", "births_total", "inflow", "outflow",
    "migrations", "submitted", "submitted_on_time", "feedback", "feedback_on_time", "benefits_paid",
    "benefits_paid_fen", "visits_prepregnancy_check", "visits_reproductive_check", "visits_followup",
    "visits_contraceptive_supplies", "visits_consultation", "visits_total"};

int ps_indicator_index(const char *name)
{
    for (size_t i = 0; i < PS_INDICATORS; i++)
        if (!strcmp(ps_indicators[i], name))
            return (int)i;
    return -1;
}

uint32_t ps_month_of(const char *d)
{
    unsigned y, m;
    if (!d || strlen(d) < 7 || sscanf(d, "%4u-%2u", &y, &m) != 2 || m < 1 || m > 12)
        return 0;
    return y * 100 + m;
}

int32_t ps_days_between(const char *a, const char *b)
{
    int ya, yb;
    unsigned ma, da, mb, db;
    if (!a || !b || sscanf(a, "%4d-%2u-%2u", &ya, &ma, &da) != 3 || sscanf(b, "%4d-%2u-%2u", &yb, &mb, &db) != 3)
        return INT32_MIN;
    return ps_days_from_civil(yb, (int)mb, (int)db) - ps_days_from_civil(ya, (int)ma, (int)da);
}

static void add(ps_contrib_t *out, size_t *n, size_t max, uint32_t month, const char *unit, const char *metric,
                int64_t value)
{
    if (*n >= max)
        return;
    out[*n].month = month;
    snprintf(out[*n].unit, sizeof(out[*n].unit), "%s", unit);
    snprintf(out[*n].metric, sizeof(out[*n].metric), "%s", metric);
    out[*n].value = value;
    (*n)++;
}

static int bucket(int32_t days)
{
    if (days < 0)
        return 0;
    return days > PS_DELAY_BUCKETS - 1 ? PS_DELAY_BUCKETS - 1 : days;
}

size_t ps_counters_contrib(const Popsync__Record *r, ps_contrib_t *out, size_t max)
{
    size_t n = 0;
    const char *u = r->orgunit;
    char name[32];

    if (r->deleted || !u)
        return 0;
    switch (r->body_case) {
    case POPSYNC__RECORD__BODY_PERSON: {
        time_t t = (time_t)(r->created_ms / 1000);
        struct tm tm;
        add(out, &n, max, 0, u, "persons_total", 1);
        if (r->created_ms > 0 && gmtime_r(&t, &tm))
            add(out, &n, max, (uint32_t)((tm.tm_year + 1900) * 100 + tm.tm_mon + 1), u, "persons_new", 1);
        break;
    }
    case POPSYNC__RECORD__BODY_BIRTH: {
        uint32_t m = ps_month_of(r->birth->birth_date);
        if (!m)
            break;
        if (r->birth->child_sex == POPSYNC__SEX__SEX_MALE)
            add(out, &n, max, m, u, "births_male", 1);
        else if (r->birth->child_sex == POPSYNC__SEX__SEX_FEMALE)
            add(out, &n, max, m, u, "births_female", 1);
        add(out, &n, max, m, u, "births_total", 1);
        break;
    }
    case POPSYNC__RECORD__BODY_MIGRATION: {
        const Popsync__Migration *g = r->migration;
        uint32_t m = ps_month_of(g->start_date);
        char uc = g->urgent ? 'u' : 'n';
        if (!m)
            break;
        if (g->direction == POPSYNC__DIRECTION__DIRECTION_INFLOW)
            add(out, &n, max, m, u, "inflow", 1);
        else if (g->direction == POPSYNC__DIRECTION__DIRECTION_OUTFLOW)
            add(out, &n, max, m, u, "outflow", 1);
        add(out, &n, max, m, u, "migrations", 1);
        if (g->submitted_date && *g->submitted_date) {
            add(out, &n, max, m, u, "submitted", 1);
            snprintf(name, sizeof(name), "sub_%c_%02d", uc, bucket(ps_days_between(g->start_date, g->submitted_date)));
            add(out, &n, max, m, u, name, 1);
            if (g->feedback_date && *g->feedback_date) {
                add(out, &n, max, m, u, "feedback", 1);
                snprintf(name, sizeof(name), "fb_%c_%02d", uc,
                         bucket(ps_days_between(g->submitted_date, g->feedback_date)));
                add(out, &n, max, m, u, name, 1);
            }
        }
        break;
    }
    case POPSYNC__RECORD__BODY_BENEFIT: {
        const Popsync__Benefit *b = r->benefit;
        uint32_t m = ps_month_of(b->paid_date);
        if (b->status != POPSYNC__BENEFIT_STATUS__BENEFIT_STATUS_PAID || !m)
            break;
        add(out, &n, max, m, u, "benefits_paid", 1);
        add(out, &n, max, m, u, "benefits_paid_fen", b->amount_fen);
        break;
    }
    case POPSYNC__RECORD__BODY_SERVICE_VISIT: {
        const Popsync__ServiceVisit *s = r->service_visit;
        uint32_t m = ps_month_of(s->visit_date);
        if (!m || !s->service || !*s->service)
            break;
        snprintf(name, sizeof(name), "visits_%s", s->service);
        add(out, &n, max, m, u, name, 1);
        add(out, &n, max, m, u, "visits_total", 1);
        break;
    }
    default: break;
    }
    return n;
}

int ps_counters_on_time(const char *metric, uint32_t dl_urgent, uint32_t dl_normal)
{
    int sub = strncmp(metric, "sub_", 4) == 0, fb = strncmp(metric, "fb_", 3) == 0;
    const char *p;
    long days;
    uint32_t dl;

    if (!sub && !fb)
        return -1;
    p = metric + (sub ? 4 : 3);
    if ((p[0] != 'u' && p[0] != 'n') || p[1] != '_')
        return -1;
    days = strtol(p + 2, NULL, 10);
    dl = p[0] == 'u' ? dl_urgent : dl_normal;
    if (days <= (long)dl && !(days == PS_DELAY_BUCKETS - 1 && dl < PS_DELAY_BUCKETS))
        return sub ? 1 : 2;
    return 0;
}
