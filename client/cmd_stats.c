/* cmd_stats.c - the stats subcommand: what this cache holds, per township.
 *
 * Counts live records by kind for each township (the depth-1 units of the
 * org-unit tree, or the 9-digit code prefix without a tree), plus births by
 * sex.  It reads only the local cache, so it works offline and shows
 * exactly what this device holds.
 */
#include "cli.h"
#include "cache.h"
#include "err.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "scope.h"
#include "vec.h"

#include <jansson.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NKIND 7

typedef struct row {
    char code[13];
    char name[96];
    uint64_t n[NKIND];   /* by Kind value */
    uint64_t boys, girls;
} row_t;

typedef struct stats_ctx {
    ps_orgunits_t *units;
    row_t *rows;
    size_t nrows, cap;
    int oom;
} stats_ctx_t;

static row_t *row_for(stats_ctx_t *s, const char *unit)
{
    char code[13];
    const char *name = NULL;
    const ps_orgunit_t *t = s->units ? ps_orgunits_township(s->units, unit) : NULL;
    if (t) {
        memcpy(code, t->code, 13);
        name = t->name;
    } else {
        ps_orgunit_township(unit, code);
    }
    for (size_t i = 0; i < s->nrows; i++)
        if (strcmp(s->rows[i].code, code) == 0)
            return &s->rows[i];
    if (PS_VEC_ROOM(s->rows, s->nrows, s->cap, 16))
        return NULL;
    memset(&s->rows[s->nrows], 0, sizeof(row_t));
    memcpy(s->rows[s->nrows].code, code, 13);
    snprintf(s->rows[s->nrows].name, sizeof(s->rows[s->nrows].name), "%s", name ? name : code);
    return &s->rows[s->nrows++];
}

static int count_one(Popsync__Record *r, void *arg)
{
    stats_ctx_t *s = arg;
    row_t *row;
    if (r->deleted || r->kind <= 0 || r->kind >= NKIND)
        return 0;
    row = row_for(s, r->orgunit);
    if (!row) {
        s->oom = 1;
        return 1;
    }
    row->n[r->kind]++;
    if (r->body_case == POPSYNC__RECORD__BODY_BIRTH) {
        if (r->birth->child_sex == POPSYNC__SEX__SEX_MALE)
            row->boys++;
        else if (r->birth->child_sex == POPSYNC__SEX__SEX_FEMALE)
            row->girls++;
    }
    return 0;
}

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const row_t *)a)->code, ((const row_t *)b)->code);
}

static void pad(const char *s, size_t width)
{
    size_t w = ps_utf8_width(s);
    fputs(s, stdout);
    for (; w < width; w++)
        fputc(' ', stdout);
}

/* --check-counters: the report counters the cache keeps against a recount
 * of its records (what `popsyncd counters check` is for the server). */
static int check_counters(ps_cache_t *c)
{
    uint64_t checked = 0, bad = 0;
    char err[256] = "";
    int rc = ps_cache_counters_check(c, &checked, &bad, err, sizeof(err));
    if (rc) {
        ps_cli_err("stats: checking the report counters: %s", ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    if (bad) {
        printf("report counters WRONG: %llu differ from a recount (first: %s)\n", (unsigned long long)bad, err);
        return PS_EXIT_FAIL;
    }
    printf("report counters match a recount: %llu counters checked\n", (unsigned long long)checked);
    return PS_EXIT_OK;
}

/* `popsync stats`: its options, then one figure a line (about 90 lines,
 * each a short read of the cache; splitting them would only add calls). */
int ps_cmd_stats(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
                                       {"check-counters", no_argument, NULL, 'C'},
                                       {NULL, 0, NULL, 0}};
    static const char *heads[NKIND] = {"", "persons", "households", "births", "migrations", "benefits", "visits"};
    stats_ctx_t s;
    row_t total;
    ps_cache_t *c = NULL;
    uint8_t *csv = NULL, digest[32];
    size_t len, namew = 8;
    char err[512];
    int opt, rc, check = 0;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt == 'C')
            check = 1;
        else if (opt == 'j')
            cli->json = 1;
        else
            return PS_EXIT_USAGE;
    }
    memset(&s, 0, sizeof(s));
    memset(&total, 0, sizeof(total));
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("stats: %s", err);
        return PS_EXIT_FAIL;
    }
    if (check) {
        rc = check_counters(c);
        ps_cache_close(c);
        return rc;
    }
    if (ps_cache_get_orgunits(c, &csv, &len, digest) == PS_OK) {
        if (ps_orgunits_parse(csv, len, &s.units, err, sizeof(err)) != PS_OK)
            s.units = NULL;
        free(csv);
    }
    rc = ps_cache_foreach(c, count_one, &s);
    if (rc || s.oom) {
        ps_cli_err("stats: %s", ps_strerror(rc ? rc : PS_ENOMEM));
        rc = PS_EXIT_FAIL;
        goto out;
    }
    qsort(s.rows, s.nrows, sizeof(*s.rows), cmp_row);
    for (size_t i = 0; i < s.nrows; i++) {
        for (int k = 1; k < NKIND; k++)
            total.n[k] += s.rows[i].n[k];
        total.boys += s.rows[i].boys;
        total.girls += s.rows[i].girls;
        if (ps_utf8_width(s.rows[i].name) > namew)
            namew = ps_utf8_width(s.rows[i].name);
    }
    if (cli->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i <= s.nrows; i++) {
            row_t *r = i < s.nrows ? &s.rows[i] : &total;
            json_t *o = json_pack("{s:s,s:s}", "code", i < s.nrows ? r->code : "", "name",
                                  i < s.nrows ? r->name : "total");
            for (int k = 1; k < NKIND; k++)
                json_object_set_new(o, heads[k], json_integer((json_int_t)r->n[k]));
            json_object_set_new(o, "births_boys", json_integer((json_int_t)r->boys));
            json_object_set_new(o, "births_girls", json_integer((json_int_t)r->girls));
            json_array_append_new(arr, o);
        }
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(arr);
    } else {
        pad("township", namew + 2);
        for (int k = 1; k < NKIND; k++)
            printf("%11s", heads[k]);
        printf("  %9s\n", "boys:girls");
        for (size_t i = 0; i <= s.nrows; i++) {
            row_t *r = i < s.nrows ? &s.rows[i] : &total;
            char ratio[32];
            pad(i < s.nrows ? r->name : "total", namew + 2);
            for (int k = 1; k < NKIND; k++)
                printf("%11llu", (unsigned long long)r->n[k]);
            snprintf(ratio, sizeof(ratio), "%llu:%llu", (unsigned long long)r->boys, (unsigned long long)r->girls);
            printf("  %9s\n", ratio);
        }
    }
    rc = PS_EXIT_OK;
out:
    free(s.rows);
    ps_orgunits_free(s.units);
    ps_cache_close(c);
    return rc;
}
