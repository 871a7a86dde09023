/* cmd_benefits.c - `popsync benefits schemes|due|arrears|batch|pay` and the
 * benefit panels of the reports.
 *
 * Everything is computed offline from this cache (the administrator's holds
 * the whole district; a township's its own) with the scheme table
 * (benefits.h).  A payment batch is an .xlsx of what is owed, one row per
 * entitlement; `pay` records its approved rows as paid benefit records
 * linked to their entitlement (person, scheme, period) and to the batch, in
 * one local transaction, or records nothing.  docs/benefits.md.
 */
#include "benefits.h"
#include "cache.h"
#include "cli.h"
#include "err.h"
#include "fields.h"
#include "ids.h"
#include "panels.h"
#include "record_fmt.h"
#include "recio.h"
#include "report.h"
#include "validate.h"
#include "vctx.h"
#include "xlsx.h"
#include "vec.h"

#include <csv.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* strcmp for qsort over arrays of fixed-size strings. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

#define BATCH_MAX_ROWS 100000
#define NCOLS 10

typedef struct bopts {
    const char *period, *orgunit, *schemes, *out, *batch, *paid_date, *lang, *as_of;
    unsigned since;
    int all, json, strict, arrears, zh;
} bopts_t;

static const char USAGE[] =
    "usage: popsync benefits schemes [--schemes FILE] [--json]\n"
    "       popsync benefits due --period YYYY-MM|YYYY [--orgunit CODE] [--all] [--json] [--lang zh|en]\n"
    "       popsync benefits arrears [--since YYYY] [--as-of YYYY-MM-DD] [--orgunit CODE] [--json]\n"
    "       popsync benefits batch (--period P | --arrears [--since YYYY] [--as-of D]) --out FILE.xlsx [--orgunit CODE]\n"
    "       popsync benefits pay --batch FILE.xlsx [--paid-date YYYY-MM-DD] [--strict]\n"
    "  every subcommand takes --schemes FILE (default $POPSYNC_SCHEMES, else the shipped table)\n";

static int parse_opts(int argc, char **argv, bopts_t *o)
{
    static const struct option lo[] = {
        {"period", required_argument, NULL, 'p'},  {"orgunit", required_argument, NULL, 'o'},
        {"schemes", required_argument, NULL, 's'}, {"out", required_argument, NULL, 'O'},
        {"batch", required_argument, NULL, 'b'},   {"paid-date", required_argument, NULL, 'd'},
        {"lang", required_argument, NULL, 'l'},    {"as-of", required_argument, NULL, 'a'},
        {"since", required_argument, NULL, 'S'},   {"all", no_argument, NULL, 'A'},
        {"json", no_argument, NULL, 'j'},          {"strict", no_argument, NULL, 't'},
        {"arrears", no_argument, NULL, 'r'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt;
    char *end;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'p': o->period = optarg; break;
        case 'o': o->orgunit = optarg; break;
        case 's': o->schemes = optarg; break;
        case 'O': o->out = optarg; break;
        case 'b': o->batch = optarg; break;
        case 'd': o->paid_date = optarg; break;
        case 'l': o->lang = optarg; break;
        case 'a': o->as_of = optarg; break;
        case 'S':
            o->since = (unsigned)strtoul(optarg, &end, 10);
            if (*end || o->since < 1890 || o->since > 2999) {
                ps_cli_err("benefits: --since must be a year, e.g. 2022");
                return PS_EXIT_USAGE;
            }
            break;
        case 'A': o->all = 1; break;
        case 'j': o->json = 1; break;
        case 't': o->strict = 1; break;
        case 'r': o->arrears = 1; break;
        case 'h': fputs(USAGE, stdout); return -1;
        default: fputs(USAGE, stderr); return PS_EXIT_USAGE;
        }
    }
    o->zh = ps_report_lang_zh(o->lang) == 1;
    return PS_EXIT_OK;
}

static uint32_t parse_day(const char *s)
{
    unsigned y, m, d;
    char tail;
    return s && strlen(s) == 10 && sscanf(s, "%4u-%2u-%2u%c", &y, &m, &d, &tail) == 3 && m >= 1 && m <= 12 &&
                   d >= 1 && d <= 31
               ? y * 10000 + m * 100 + d
               : 0;
}

static void yuan(int64_t fen, char *out, size_t len)
{
    snprintf(out, len, "%s%lld.%02lld", fen < 0 ? "-" : "", (long long)(fen < 0 ? -fen : fen) / 100,
             (long long)(fen < 0 ? -fen : fen) % 100);
}

static int64_t owed(const ps_entitlement_t *e)
{
    return e->amount_fen > e->paid_fen ? e->amount_fen - e->paid_fen : 0;
}

/* ---- opening what every subcommand needs ------------------------------------------ */

typedef struct env {
    ps_cache_t *c;
    ps_orgunits_t *tree;
    ps_schemes_t *s;
} env_t;

static int env_open(ps_cli_t *cli, const char *cmd, const bopts_t *o, env_t *e, int need_cache)
{
    char err[512];

    memset(e, 0, sizeof(*e));
    if (ps_schemes_load(o->schemes, &e->s, err, sizeof(err))) {
        ps_cli_err("%s: scheme table: %s", cmd, err);
        return PS_EXIT_USAGE;
    }
    if (!need_cache)
        return PS_EXIT_OK;
    if (ps_cache_open(&e->c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("%s: %s", cmd, err);
        return PS_EXIT_FAIL;
    }
    e->tree = ps_client_orgunits(e->c);
    return PS_EXIT_OK;
}

static void env_close(env_t *e)
{
    ps_schemes_free(e->s);
    ps_orgunits_free(e->tree);
    if (e->c)
        ps_cache_close(e->c);
}

static void person_text(ps_cache_t *c, const uint8_t id[16], char *name, size_t nlen, char *idn, size_t ilen)
{
    Popsync__Record *p = NULL;
    name[0] = idn[0] = '\0';
    if (ps_cache_get(c, id, &p) == PS_OK && p->person) {
        snprintf(name, nlen, "%s", p->person->name ? p->person->name : "");
        snprintf(idn, ilen, "%s", p->person->id_number ? p->person->id_number : "");
    }
    ps_record_free(p);
}

static json_t *ent_json(const ps_entitlement_t *e)
{
    char pid[PS_UUID_STR], fid[PS_UUID_STR];
    json_t *j = json_object();
    ps_uuid_format(e->person, pid);
    ps_uuid_format(e->family, fid);
    json_object_set_new(j, "person_id", json_string(pid));
    json_object_set_new(j, "family_id", json_string(fid));
    json_object_set_new(j, "township", json_string(e->township));
    json_object_set_new(j, "scheme", json_string(e->scheme));
    json_object_set_new(j, "period", json_string(e->period));
    json_object_set_new(j, "entitled_fen", json_integer(e->amount_fen));
    json_object_set_new(j, "paid_fen", json_integer(e->paid_fen));
    json_object_set_new(j, "owed_fen", json_integer(owed(e)));
    json_object_set_new(j, "payments", json_integer(e->npaid));
    return j;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2));
    if (s)
        puts(s);
    free(s);
    json_decref(j);
}

static void row_header(int zh)
{
    printf("%-12s %-10s %-18s %-22s %-7s %10s %10s %10s\n", zh ? "乡镇" : "township", zh ? "姓名" : "name",
           zh ? "身份证号" : "id_number", zh ? "项目" : "scheme", zh ? "所属期" : "period", zh ? "应发" : "entitled",
           zh ? "已发" : "paid", zh ? "欠发" : "owed");
}

static void row_print(ps_cache_t *c, const ps_entitlement_t *e, int zh)
{
    char name[128], idn[32], a[32], p[32], w[32];
    const char *label = ps_scheme_label(e->scheme, zh);
    person_text(c, e->person, name, sizeof(name), idn, sizeof(idn));
    yuan(e->amount_fen, a, sizeof(a));
    yuan(e->paid_fen, p, sizeof(p));
    yuan(owed(e), w, sizeof(w));
    printf("%-12s %-10s %-18s %-22s %-7s %10s %10s %10s\n", e->township, name, idn, zh && label ? label : e->scheme,
           e->period, a, p, w);
}

/* ---- schemes, due, arrears ------------------------------------------------------------ */

static int cmd_schemes(ps_cli_t *cli, const bopts_t *o)
{
    env_t e;
    int rc = env_open(cli, "benefits schemes", o, &e, 0);
    if (rc == PS_EXIT_OK)
        fputs(ps_schemes_text(e.s), stdout);
    env_close(&e);
    return rc;
}

static int cmd_due(ps_cli_t *cli, const bopts_t *o)
{
    env_t e;
    ps_entitlements_t ents;
    uint32_t first, last;
    json_t *arr = NULL;
    int rc;

    memset(&ents, 0, sizeof(ents));
    if (!o->period || ps_period_bounds(o->period, &first, &last)) {
        ps_cli_err("benefits due: --period must be YYYY-MM or YYYY, e.g. 2026-10");
        return PS_EXIT_USAGE;
    }
    if ((rc = env_open(cli, "benefits due", o, &e, 1)))
        goto out;
    if (ps_benefits_compute(e.c, e.s, e.tree, o->orgunit, first, last, &ents)) {
        ps_cli_err("benefits due: cannot read the cache");
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (o->json)
        arr = json_array();
    else
        row_header(o->zh);
    for (size_t i = 0; i < ents.n; i++) {
        const ps_entitlement_t *x = &ents.v[i];
        if (!x->amount_fen || (!o->all && !owed(x)))
            continue;
        if (arr)
            json_array_append_new(arr, ent_json(x));
        else
            row_print(e.c, x, o->zh);
    }
    if (arr)
        print_json(arr);
out:
    ps_entitlements_free(&ents);
    env_close(&e);
    return rc;
}

/* Periods ending from since-01-01 to the day before as_of. */
static int arrears_range(const bopts_t *o, ps_cache_t *c, uint32_t *from, uint32_t *to)
{
    uint32_t asof = o->as_of ? parse_day(o->as_of) : ps_client_today(c);
    if (!asof) {
        ps_cli_err("benefits: --as-of must be YYYY-MM-DD");
        return PS_EXIT_USAGE;
    }
    *from = (o->since ? o->since : asof / 10000 - 5) * 10000 + 101;
    *to = asof - 1; /* compared as numbers, so day 0 of a month is fine */
    return PS_EXIT_OK;
}

static int cmp_family(const void *a, const void *b)
{
    const ps_entitlement_t *x = a, *y = b;
    int c = strcmp(x->township, y->township);
    if (!c)
        c = memcmp(x->family, y->family, 16);
    if (!c)
        c = memcmp(x->person, y->person, 16);
    if (!c)
        c = strcmp(x->scheme, y->scheme);
    return c ? c : strcmp(x->period, y->period);
}

static int cmd_arrears(ps_cli_t *cli, const bopts_t *o)
{
    env_t e;
    ps_entitlements_t ents;
    uint32_t from, to;
    json_t *arr = NULL, *fam = NULL, *items = NULL;
    uint8_t last_family[16];
    int64_t ftotal = 0, total = 0;
    int rc;

    memset(&ents, 0, sizeof(ents));
    if ((rc = env_open(cli, "benefits arrears", o, &e, 1)) || (rc = arrears_range(o, e.c, &from, &to)))
        goto out;
    if (ps_benefits_compute(e.c, e.s, e.tree, o->orgunit, from, to, &ents)) {
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (ents.n)
        qsort(ents.v, ents.n, sizeof(*ents.v), cmp_family);
    if (o->json)
        arr = json_array();
    for (size_t i = 0; i < ents.n; i++) {
        const ps_entitlement_t *x = &ents.v[i];
        char name[128], idn[32];
        if (!owed(x))
            continue;
        if (!items || memcmp(x->family, last_family, 16) != 0) {
            memcpy(last_family, x->family, 16);
            if (fam)
                json_object_set_new(fam, "owed_fen", json_integer(ftotal));
            ftotal = 0;
            person_text(e.c, x->family, name, sizeof(name), idn, sizeof(idn));
            if (arr) {
                char fid[PS_UUID_STR];
                ps_uuid_format(x->family, fid);
                fam = json_object();
                items = json_array();
                json_object_set_new(fam, "family_id", json_string(fid));
                json_object_set_new(fam, "township", json_string(x->township));
                json_object_set_new(fam, "items", items);
                json_array_append_new(arr, fam);
            } else {
                items = (json_t *)1; /* a family heading was printed */
                printf(o->zh ? "\n家庭（母亲 %s %s，乡镇 %s）\n" : "\nfamily of %s %s (township %s)\n", name, idn,
                       x->township);
                row_header(o->zh);
            }
        }
        ftotal += owed(x);
        total += owed(x);
        if (arr)
            json_array_append_new(items, ent_json(x));
        else
            row_print(e.c, x, o->zh);
    }
    if (fam)
        json_object_set_new(fam, "owed_fen", json_integer(ftotal));
    if (arr) {
        print_json(arr);
    } else {
        char w[32];
        yuan(total, w, sizeof(w));
        printf(o->zh ? "\n欠发合计 %s 元\n" : "\narrears in all: %s yuan\n", w);
    }
out:
    ps_entitlements_free(&ents);
    env_close(&e);
    return rc;
}

/* ---- the payment batch ------------------------------------------------------------------ */

/* Column headers: the Chinese label a clerk reads, the key pay reads back. */
static const char *const COLS[NCOLS] = {"批次(batch)",    "乡镇(township)",      "领取人记录(person_id)",
                                        "姓名(name)",     "身份证号(id_number)", "项目(scheme)",
                                        "项目名称(scheme_name)", "所属期(period)", "金额(元)(amount)",
                                        "批准(approved)"};

static int cmd_batch(ps_cli_t *cli, const bopts_t *o)
{
    env_t e;
    ps_entitlements_t ents;
    ps_xlsx_t *x = NULL;
    uint32_t from, to;
    uint8_t bid[16];
    char batch[PS_UUID_STR];
    unsigned row = 1;
    int64_t total = 0;
    int rc;

    memset(&ents, 0, sizeof(ents));
    if (!o->out || (!o->period == !o->arrears)) {
        ps_cli_err("benefits batch: give --period P or --arrears, and --out FILE.xlsx");
        return PS_EXIT_USAGE;
    }
    if (o->period && ps_period_bounds(o->period, &from, &to)) {
        ps_cli_err("benefits batch: --period must be YYYY-MM or YYYY");
        return PS_EXIT_USAGE;
    }
    if ((rc = env_open(cli, "benefits batch", o, &e, 1)) || (o->arrears && (rc = arrears_range(o, e.c, &from, &to))))
        goto out;
    if (ps_benefits_compute(e.c, e.s, e.tree, o->orgunit, from, to, &ents) || ps_uuid7(bid) ||
        ps_xlsx_open(&x, o->out, "batch")) {
        rc = PS_EXIT_FAIL;
        goto out;
    }
    ps_uuid_format(bid, batch);
    if (ents.n)
        qsort(ents.v, ents.n, sizeof(*ents.v), cmp_family);
    for (unsigned k = 0; k < NCOLS; k++)
        ps_xlsx_cell(x, 0, k, COLS[k]);
    for (size_t i = 0; i < ents.n; i++) {
        const ps_entitlement_t *en = &ents.v[i];
        char pid[PS_UUID_STR], name[128], idn[32], amount[32];
        const char *cells[NCOLS];
        if (!owed(en))
            continue;
        ps_uuid_format(en->person, pid);
        person_text(e.c, en->person, name, sizeof(name), idn, sizeof(idn));
        yuan(owed(en), amount, sizeof(amount));
        cells[0] = batch, cells[1] = en->township, cells[2] = pid, cells[3] = name, cells[4] = idn;
        cells[5] = en->scheme, cells[6] = ps_scheme_label(en->scheme, 1), cells[7] = en->period;
        cells[8] = amount, cells[9] = "是";
        for (unsigned k = 0; k < NCOLS; k++)
            ps_xlsx_cell(x, row, k, cells[k] ? cells[k] : "");
        row++;
        total += owed(en);
    }
    if (ps_xlsx_close(x)) {
        x = NULL;
        ps_cli_err("benefits batch: cannot write %s", o->out);
        rc = PS_EXIT_FAIL;
        goto out;
    }
    x = NULL;
    {
        char w[32];
        yuan(total, w, sizeof(w));
        printf("batch %s: %u payments, %s yuan, written to %s; approve (批准 是/否) and record with popsync benefits "
               "pay --batch %s\n",
               batch, row - 1, w, o->out, o->out);
    }
out:
    if (x)
        ps_xlsx_close(x);
    ps_entitlements_free(&ents);
    env_close(&e);
    return rc;
}

/* ---- reading a batch back --------------------------------------------------------------- */

typedef struct brow {
    char *cell[NCOLS];
} brow_t;

typedef struct bread {
    brow_t *rows;
    size_t n, cap;
    int map[32]; /* file column -> COLS index, -1 */
    size_t col;
    int header, oom;
    brow_t cur;
} bread_t;

static void on_cell(void *s, size_t len, void *arg)
{
    bread_t *b = arg;
    size_t c = b->col++;
    if (b->header) {
        for (int k = 0; c < 32 && k < NCOLS; k++)
            if (len == strlen(COLS[k]) && memcmp(s, COLS[k], len) == 0)
                b->map[c] = k;
        return;
    }
    if (c < 32 && b->map[c] >= 0) {
        char *t = malloc(len + 1);
        if (!t) {
            b->oom = 1;
            return;
        }
        memcpy(t, s, len);
        t[len] = '\0';
        free(b->cur.cell[b->map[c]]);
        b->cur.cell[b->map[c]] = t;
    }
}

static void on_row(int ch, void *arg)
{
    bread_t *b = arg;
    (void)ch;
    b->col = 0;
    if (b->header) {
        b->header = 0;
        return;
    }
    if (b->n >= BATCH_MAX_ROWS || PS_VEC_ROOM(b->rows, b->n, b->cap, 64)) {
        b->oom = 1;
        return;
    }
    b->rows[b->n++] = b->cur;
    memset(&b->cur, 0, sizeof(b->cur));
}

static void bread_free(bread_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        for (int k = 0; k < NCOLS; k++)
            free(b->rows[i].cell[k]);
    for (int k = 0; k < NCOLS; k++)
        free(b->cur.cell[k]);
    free(b->rows);
}

static int read_batch(const char *path, bread_t *b)
{
    char *data = NULL, *csvt = NULL, err[256];
    size_t len = 0, clen = 0;
    struct csv_parser p;
    int rc = PS_EXIT_FAIL;

    memset(b, 0, sizeof(*b));
    for (int k = 0; k < 32; k++)
        b->map[k] = -1;
    b->header = 1;
    if (ps_recio_load_file(path, &data, &len) != PS_OK) {
        ps_cli_err("benefits pay: cannot read %s", path);
        return PS_EXIT_FAIL;
    }
    if (ps_xlsx_to_csv(data, len, NULL, NULL, NULL, &csvt, &clen, err, sizeof(err)) != PS_OK) {
        ps_cli_err("benefits pay: %s: %s", path, err);
        free(data);
        return PS_EXIT_USAGE;
    }
    if (csv_init(&p, CSV_APPEND_NULL) == 0) {
        if (csv_parse(&p, csvt, clen, on_cell, on_row, b) == clen && csv_fini(&p, on_cell, on_row, b) == 0 && !b->oom)
            rc = PS_EXIT_OK;
        csv_free(&p);
    }
    free(data);
    free(csvt);
    for (int k = 0; rc == PS_EXIT_OK && k < NCOLS; k++) {
        int found = 0;
        for (int c = 0; c < 32; c++)
            found |= b->map[c] == k;
        if (!found && k != 3 && k != 4 && k != 6) {
            ps_cli_err("benefits pay: %s has no column %s: use a batch written by popsync benefits batch", path,
                       COLS[k]);
            rc = PS_EXIT_USAGE;
        }
    }
    return rc;
}

/* ---- pay ------------------------------------------------------------------------------------ */

typedef struct payctx {
    env_t e;
    ps_entitlements_t ents;
    const bopts_t *o;
    Popsync__Record **recs, **before;
    size_t n;
    int refused, flagged;
} payctx_t;

static const char *cell(const brow_t *r, int k)
{
    return r->cell[k] ? r->cell[k] : "";
}

static int amount_fen(const char *text, int64_t *out)
{
    const ps_field_t *f = ps_field_find(POPSYNC__KIND__KIND_BENEFIT, "amount");
    char norm[PS_FIELD_NORM_MAX];
    const char *why;
    if (!f || ps_field_normalize(f, text, norm, sizeof(norm), &why) != 0)
        return -1;
    *out = strtoll(norm, NULL, 10);
    return *out > 0 ? 0 : -1;
}

/* The record a row pays: the person's unpaid benefit of that scheme and
 * period when there is one (it becomes paid), else a new one. */
static int row_record(payctx_t *x, const uint8_t pid[16], const char *scheme, const char *period, size_t line,
                      Popsync__Record **rec, Popsync__Record **before)
{
    ProtobufCBinaryData id = {16, (uint8_t *)pid};
    Popsync__Record **found = NULL, *p = NULL;
    size_t nf = 0;
    char err[128];
    int rc = 0;

    *rec = *before = NULL;
    if (ps_cache_find_payments(x->e.c, &id, scheme, period, 2, &found, &nf) == PS_OK && nf > 0) {
        if (found[0]->benefit->status == POPSYNC__BENEFIT_STATUS__BENEFIT_STATUS_PAID) {
            ps_cli_err("benefits pay: row %zu: already paid (record of %s %s): a double payment; nothing was "
                       "recorded for it",
                       line, scheme, period);
            rc = 1;
        } else if (ps_cache_get(x->e.c, found[0]->id.data, before) == PS_OK) {
            *rec = found[0];
            found[0] = NULL;
        }
    }
    for (size_t i = 0; i < nf; i++)
        ps_record_free(found[i]);
    free(found);
    if (rc || *rec)
        return rc;
    if (ps_cache_get(x->e.c, pid, &p) != PS_OK || p->deleted || ps_record_new(rec, POPSYNC__KIND__KIND_BENEFIT) ||
        !((*rec)->id.data = malloc(16)) || ps_uuid7((*rec)->id.data) ||
        ps_record_set(*rec, "orgunit", p->orgunit, err, sizeof(err))) {
        ps_cli_err("benefits pay: row %zu: the person is not in this cache (sync first)", line);
        ps_record_free(p);
        return 1;
    }
    (*rec)->id.len = 16;
    ps_record_free(p);
    return 0;
}

static int pay_row(payctx_t *x, const brow_t *r, size_t line, const char *paid_date)
{
    uint8_t pid[16];
    int64_t fen;
    const ps_entitlement_t *en;
    Popsync__Record *rec = NULL, *before = NULL;
    char err[256], fentext[32];
    const char *scheme = cell(r, 5), *period = cell(r, 7), *why = NULL;

    if (strcmp(cell(r, 9), "否") == 0 || strcasecmp(cell(r, 9), "no") == 0)
        return 0; /* not approved */
    if (ps_uuid_parse(cell(r, 2), pid) || amount_fen(cell(r, 8), &fen)) {
        ps_cli_err("benefits pay: row %zu: the person record id or the amount is not readable", line);
        return 1;
    }
    for (size_t i = 0; i < x->n; i++)
        if (memcmp(x->recs[i]->benefit->person_id.data, pid, 16) == 0 && !strcmp(x->recs[i]->benefit->scheme, scheme) &&
            !strcmp(x->recs[i]->benefit->period, period)) {
            ps_cli_err("benefits pay: row %zu: the same person, scheme and period as an earlier row: a double payment",
                       line);
            return 1;
        }
    en = ps_entitlement_find(&x->ents, pid, scheme, period);
    if (!en || !en->amount_fen)
        why = "not entitled under the scheme table";
    else if (fen > owed(en))
        why = "more than is owed";
    if (why) {
        ps_cli_err("benefits pay: row %zu (%s %s): %s%s", line, scheme, period, why,
                   x->o->strict ? "; refused (--strict)" : "; recorded, and flagged in the quality report");
        x->flagged++;
        if (x->o->strict)
            return 1;
    }
    if (row_record(x, pid, scheme, period, line, &rec, &before))
        return 1;
    snprintf(fentext, sizeof(fentext), "%lld", (long long)fen);
    if (ps_record_set(rec, "person_id", cell(r, 2), err, sizeof(err)) ||
        ps_record_set(rec, "scheme", scheme, err, sizeof(err)) || ps_record_set(rec, "period", period, err, sizeof(err)) ||
        ps_record_set(rec, "amount_fen", fentext, err, sizeof(err)) ||
        ps_record_set(rec, "status", "paid", err, sizeof(err)) ||
        ps_record_set(rec, "paid_date", paid_date, err, sizeof(err)) ||
        ps_record_set(rec, "batch", cell(r, 0), err, sizeof(err)) ||
        ps_cli_validate_or_report("benefits pay", x->e.c, rec, before)) {
        ps_cli_err("benefits pay: row %zu: not recorded", line);
        ps_record_free(rec);
        ps_record_free(before);
        return 1;
    }
    x->recs[x->n] = rec;
    x->before[x->n++] = before;
    return 0;
}

/* The periods a batch covers, to compute their entitlements once. */
static void batch_range(const bread_t *b, uint32_t *from, uint32_t *to)
{
    *from = 30000000;
    *to = 0;
    for (size_t i = 0; i < b->n; i++) {
        uint32_t f, l;
        if (ps_period_bounds(cell(&b->rows[i], 7), &f, &l))
            continue;
        if (f < *from)
            *from = f;
        if (l > *to)
            *to = l;
    }
}

static int cmd_pay(ps_cli_t *cli, const bopts_t *o)
{
    payctx_t x;
    bread_t b;
    uint32_t from, to;
    char date[16];
    int rc;

    memset(&x, 0, sizeof(x));
    x.o = o;
    if (!o->batch) {
        ps_cli_err("benefits pay: --batch FILE.xlsx is required");
        return PS_EXIT_USAGE;
    }
    if ((rc = read_batch(o->batch, &b)))
        goto out;
    if ((rc = env_open(cli, "benefits pay", o, &x.e, 1)))
        goto out;
    if (o->paid_date && !parse_day(o->paid_date)) {
        ps_cli_err("benefits pay: --paid-date must be YYYY-MM-DD");
        rc = PS_EXIT_USAGE;
        goto out;
    }
    {
        uint32_t t = ps_client_today(x.e.c);
        snprintf(date, sizeof(date), "%s", o->paid_date ? o->paid_date : "");
        if (!o->paid_date)
            snprintf(date, sizeof(date), "%04u-%02u-%02u", t / 10000, t / 100 % 100, t % 100);
    }
    batch_range(&b, &from, &to);
    if (ps_benefits_compute(x.e.c, x.e.s, x.e.tree, NULL, from, to, &x.ents) ||
        !(x.recs = calloc(b.n + 1, sizeof(*x.recs))) || !(x.before = calloc(b.n + 1, sizeof(*x.before)))) {
        rc = PS_EXIT_FAIL;
        goto out;
    }
    for (size_t i = 0; i < b.n; i++)
        x.refused += pay_row(&x, &b.rows[i], i + 2, date);
    if (x.refused) {
        ps_cli_err("benefits pay: %d row(s) refused; nothing was recorded: fix the batch (or set 批准 to 否 for "
                   "those rows) and run it again",
                   x.refused);
        rc = PS_EXIT_INVALID;
        goto out;
    }
    if (x.n && ps_cache_put_local_many(x.e.c, x.recs, x.n) != PS_OK) {
        ps_cli_err("benefits pay: cannot store the payments; nothing was recorded");
        rc = PS_EXIT_FAIL;
        goto out;
    }
    printf("recorded %zu payment(s) of %s paid on %s (%d flagged); push with popsync sync\n", x.n, o->batch, date,
           x.flagged);
out:
    for (size_t i = 0; i < x.n; i++) {
        ps_record_free(x.recs[i]);
        ps_record_free(x.before[i]);
    }
    free(x.recs);
    free(x.before);
    ps_entitlements_free(&x.ents);
    env_close(&x.e);
    bread_free(&b);
    return rc;
}

/* ---- the report panels ---------------------------------------------------------------------- */

typedef struct tsum {
    char town[13];
    int64_t v[7]; /* month entitled, paid, owed; year to date entitled, paid, owed; earlier owed */
} tsum_t;

static tsum_t *tsum_of(tsum_t *t, size_t *n, size_t max, const char *town)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(t[i].town, town) == 0)
            return &t[i];
    if (*n == max)
        return NULL;
    memset(&t[*n], 0, sizeof(t[*n]));
    snprintf(t[*n].town, sizeof(t[*n].town), "%s", town);
    return &t[(*n)++];
}

static void add_sums(tsum_t *t, size_t *n, size_t max, const ps_entitlements_t *e, int col)
{
    for (size_t i = 0; i < e->n; i++) {
        tsum_t *s = tsum_of(t, n, max, e->v[i].township);
        if (!s)
            continue;
        if (col == 6) {
            s->v[6] += owed(&e->v[i]);
            continue;
        }
        s->v[col] += e->v[i].amount_fen;
        s->v[col + 1] += e->v[i].paid_fen < e->v[i].amount_fen ? e->v[i].paid_fen : e->v[i].amount_fen;
        s->v[col + 2] += owed(&e->v[i]);
    }
}

static int monthly_panel(ps_cache_t *c, const ps_schemes_t *s, const ps_orgunits_t *tree, const char *month,
                         const char *root, int zh, FILE *f)
{
    ps_entitlements_t e[3];
    uint32_t first, last, y;
    tsum_t t[64];
    size_t n = 0;
    int rc;

    if (!month || ps_period_bounds(month, &first, &last))
        return PS_OK;
    y = first / 10000;
    memset(e, 0, sizeof(e));
    if ((rc = ps_benefits_compute(c, s, tree, root, first, last, &e[0])) ||
        (rc = ps_benefits_compute(c, s, tree, root, y * 10000 + 101, last, &e[1])) ||
        (rc = ps_benefits_compute(c, s, tree, root, (y - 5) * 10000 + 101, (y - 1) * 10000 + 1231, &e[2])))
        goto out;
    add_sums(t, &n, 64, &e[0], 0);
    add_sums(t, &n, 64, &e[1], 3);
    add_sums(t, &n, 64, &e[2], 6);
    if (!n)
        goto out;
    if (n)
        qsort(t, n, sizeof(*t), cmp_str);
    fprintf(f, zh ? "\n奖励扶助（元；本月 / 本年累计 / 往年欠发，按本机缓存）\n"
                  : "\nBenefits (yuan; this month / year to date / owed from the 5 years before, from this cache)\n");
    fprintf(f, "  %-12s %10s %10s %10s %11s %11s %11s %11s\n", zh ? "乡镇" : "township", zh ? "本月应发" : "entitled",
            zh ? "本月已发" : "paid", zh ? "本月欠发" : "owed", zh ? "累计应发" : "ytd entitled", zh ? "累计已发" : "ytd paid",
            zh ? "累计欠发" : "ytd owed", zh ? "往年欠发" : "earlier owed");
    for (size_t i = 0; i < n; i++) {
        char v[7][32];
        for (int k = 0; k < 7; k++)
            yuan(t[i].v[k], v[k], sizeof(v[k]));
        fprintf(f, "  %-12s %10s %10s %10s %11s %11s %11s %11s\n", t[i].town, v[0], v[1], v[2], v[3], v[4], v[5],
                v[6]);
    }
out:
    for (int k = 0; k < 3; k++)
        ps_entitlements_free(&e[k]);
    return rc;
}

typedef struct prange {
    uint32_t from, to;
} prange_t;

static int scan_paid(Popsync__Record *r, void *arg)
{
    prange_t *p = arg;
    uint32_t f, l;
    if (!r->deleted && r->body_case == POPSYNC__RECORD__BODY_BENEFIT && r->benefit &&
        r->benefit->status == POPSYNC__BENEFIT_STATUS__BENEFIT_STATUS_PAID &&
        ps_period_bounds(r->benefit->period, &f, &l) == 0) {
        if (!p->from || f < p->from)
            p->from = f;
        if (l > p->to)
            p->to = l;
    }
    return 0;
}

/* The first and last day of the periods paid for; to = 0 when none. */
static int paid_range(ps_cache_t *c, uint32_t *from, uint32_t *to)
{
    prange_t p = {0, 0};
    int rc = ps_cache_foreach(c, scan_paid, &p);
    *from = p.from;
    *to = p.to;
    return rc;
}

/* Payments flagged: paid twice, paid without entitlement, paid more. */
static int quality_panel(ps_cache_t *c, const ps_schemes_t *s, const ps_orgunits_t *tree, const char *root, int zh,
                         FILE *f)
{
    ps_entitlements_t e;
    uint32_t from, to;
    int rc, shown = 0;

    /* Only the periods payments were made for need evaluating. */
    if ((rc = paid_range(c, &from, &to)) || !to)
        return rc;
    if ((rc = ps_benefits_compute(c, s, tree, root, from, to, &e)))
        return rc;
    for (size_t i = 0; i < e.n; i++) {
        const ps_entitlement_t *x = &e.v[i];
        const char *what = x->npaid >= 2            ? (zh ? "重复发放" : "double_payment")
                           : x->npaid && !x->amount_fen ? (zh ? "不符合条件仍发放" : "paid_not_entitled")
                           : x->paid_fen > x->amount_fen ? (zh ? "超额发放" : "overpaid")
                                                         : NULL;
        char pid[PS_UUID_STR], p[32];
        if (!what)
            continue;
        if (!shown++)
            fprintf(f, zh ? "\n奖励扶助发放问题（按本机缓存与项目表）\n"
                          : "\nBenefit payments flagged (from this cache and the scheme table)\n");
        ps_uuid_format(x->person, pid);
        yuan(x->paid_fen, p, sizeof(p));
        /* the person's record id on a line of its own: within 100 columns */
        fprintf(f, "  %s %s %s %s %s %s\n    %s %s\n", what, x->township,
                zh && ps_scheme_label(x->scheme, 1) ? ps_scheme_label(x->scheme, 1) : x->scheme, x->period,
                zh ? "已发" : "paid", p, zh ? "领取人" : "person", pid);
    }
    if (!shown)
        fprintf(f, zh ? "\n奖励扶助发放问题：无\n" : "\nBenefit payments flagged: none\n");
    ps_entitlements_free(&e);
    return PS_OK;
}

int ps_benefit_panel(ps_cache_t *c, const ps_orgunits_t *tree, const char *month, const char *root, int zh,
                     int quality, FILE *f)
{
    ps_schemes_t *s = NULL;
    char err[256];
    int rc;

    if (ps_schemes_load(NULL, &s, err, sizeof(err))) {
        fprintf(f, "\nbenefits: scheme table: %s\n", err);
        return PS_EINVAL;
    }
    rc = quality ? quality_panel(c, s, tree, root, zh, f) : monthly_panel(c, s, tree, month, root, zh, f);
    ps_schemes_free(s);
    return rc;
}

int ps_cmd_benefits(ps_cli_t *cli, int argc, char **argv)
{
    bopts_t o;
    const char *sub = argc > 1 ? argv[1] : "";
    int rc;

    memset(&o, 0, sizeof(o));
    if (argc < 2 || argv[1][0] == '-') {
        fputs(USAGE, stderr);
        return PS_EXIT_USAGE;
    }
    optind = 1;
    if ((rc = parse_opts(argc - 1, argv + 1, &o)))
        return rc < 0 ? PS_EXIT_OK : rc;
    o.json |= cli->json;
    if (optind != argc - 1) {
        fputs(USAGE, stderr);
        return PS_EXIT_USAGE;
    }
    if (strcmp(sub, "schemes") == 0)
        return cmd_schemes(cli, &o);
    if (strcmp(sub, "due") == 0)
        return cmd_due(cli, &o);
    if (strcmp(sub, "arrears") == 0)
        return cmd_arrears(cli, &o);
    if (strcmp(sub, "batch") == 0)
        return cmd_batch(cli, &o);
    if (strcmp(sub, "pay") == 0)
        return cmd_pay(cli, &o);
    fputs(USAGE, stderr);
    return PS_EXIT_USAGE;
}
