/* query_rules.c - see query_rules.h. */
#include "query_rules.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "record_fmt.h"

/* Is name a field of kinds like probe? */
static int known(const Popsync__Record *probe, const char *name)
{
    char tmp[8];
    return name && ps_record_get_text(probe, name, tmp, sizeof(tmp)) != PS_EINVAL;
}

static int group_name_known(const Popsync__Record *probe, const char *g)
{
    return !strcmp(g, "unit") || !strcmp(g, "township") || !strcmp(g, "month") || !strcmp(g, "kind") ||
           known(probe, g);
}

int ps_query_check(const Popsync__Query *q, char *err, size_t errlen)
{
    Popsync__Record *probe = NULL;
    int rc = PS_EINVAL;

    if (ps_record_new(&probe, q->kind) != PS_OK) {
        snprintf(err, errlen, "Query.kind is required");
        return PS_EINVAL;
    }
    if (q->date_field && *q->date_field && !known(probe, q->date_field)) {
        snprintf(err, errlen, "unknown date field '%s'", q->date_field);
        goto out;
    }
    for (size_t i = 0; i < q->n_filters; i++)
        if (!known(probe, q->filters[i]->field)) {
            snprintf(err, errlen, "unknown filter field '%s'", q->filters[i]->field ? q->filters[i]->field : "");
            goto out;
        }
    for (size_t i = 0; i < q->n_group_by; i++)
        if (!group_name_known(probe, q->group_by[i])) {
            snprintf(err, errlen, "unknown group '%s'", q->group_by[i]);
            goto out;
        }
    if (q->sum_field && *q->sum_field && !known(probe, q->sum_field)) {
        snprintf(err, errlen, "unknown sum field '%s'", q->sum_field);
        goto out;
    }
    rc = PS_OK;
out:
    ps_record_free(probe);
    return rc;
}

int ps_query_match(const Popsync__Query *q, const Popsync__Record *r)
{
    int ok = 1;
    if (q->date_field && *q->date_field) {
        char d[32];
        if (ps_record_get_text(r, q->date_field, d, sizeof(d)) != PS_OK || !*d)
            ok = !(q->date_from && *q->date_from) && !(q->date_to && *q->date_to);
        else
            ok = (!q->date_from || !*q->date_from || strcmp(d, q->date_from) >= 0) &&
                 (!q->date_to || !*q->date_to || strcmp(d, q->date_to) <= 0);
    }
    for (size_t i = 0; ok && i < q->n_filters; i++) {
        char val[1024];
        const char *f = q->filters[i]->field, *want = q->filters[i]->value ? q->filters[i]->value : "";
        if (!strcmp(f, "orgunit"))
            ok = !strcmp(r->orgunit ? r->orgunit : "", want);
        else
            ok = ps_record_get_text(r, f, val, sizeof(val)) == PS_OK && !strcmp(val, want);
    }
    return ok;
}

/* YYYY-MM of the query's date field, or of the record's creation (UTC). */
static void month_of(const Popsync__Query *q, const Popsync__Record *r, char *out, size_t cap)
{
    char d[32] = "";
    if (q->date_field && *q->date_field) {
        if (ps_record_get_text(r, q->date_field, d, sizeof(d)) != PS_OK)
            d[0] = '\0';
    } else if (r->created_ms > 0) {
        time_t t = (time_t)(r->created_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(d, sizeof(d), "%Y-%m", &tm);
    }
    snprintf(out, cap, "%.7s", d);
}

void ps_query_group_part(const ps_orgunits_t *tree, const Popsync__Query *q, const Popsync__Record *r,
                         const char *name, char *out, size_t cap)
{
    const char *unit = r->orgunit ? r->orgunit : "";
    if (!strcmp(name, "unit")) {
        snprintf(out, cap, "%s", unit);
    } else if (!strcmp(name, "township")) {
        char t[13];
        ps_orgunits_township_code(tree, unit, t);
        snprintf(out, cap, "%s", t);
    } else if (!strcmp(name, "kind")) {
        snprintf(out, cap, "%s", ps_kind_name(r->kind) ? ps_kind_name(r->kind) : "");
    } else if (!strcmp(name, "month")) {
        month_of(q, r, out, cap);
    } else if (ps_record_get_text(r, name, out, cap) != PS_OK) {
        out[0] = '\0';
    }
}
