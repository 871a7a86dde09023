/* main.c - popsync-warehouse: the command line (docs/warehouse.md §3).
 *
 *   run      consume the stream POPSYNC into PostgreSQL until stopped
 *   init     make the schema (run does it too)
 *   report monthly --month YYYY-MM   the province report by district
 *   quality  ID numbers registered more than once, across and within districts
 *   status   where each district's stream stands
 *   verify   every counter recounted from the stored records
 * Settings come from --config FILE ([warehouse] section) and then from the
 * options, which win.  An empty --pg leaves the connection to libpq's
 * environment (PGHOST, PGPORT, PGDATABASE, ...).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "err.h"
#include "log.h"
#include "report.h"
#include "wh.h"

static const char *const USAGE =
    "usage: popsync-warehouse run [--config FILE] [--pg DSN] [--nats URL[,URL...]] [--stream NAME]\n"
    "                             [--durable NAME] [--batch N] [--ack-wait SECONDS] [--drain]\n"
    "                             [--nats-ca FILE --nats-cert FILE --nats-key FILE] [--log-level LEVEL]\n"
    "       popsync-warehouse init [--config FILE] [--pg DSN]\n"
    "       popsync-warehouse report monthly --month YYYY-MM [--lang zh|en] [--format table|csv|json|xlsx]\n"
    "                             [--out FILE.xlsx] [--deadline-urgent DAYS] [--deadline-normal DAYS]\n"
    "                             [--orgunits FILE] [--config FILE] [--pg DSN]\n"
    "       popsync-warehouse quality [--lang zh|en] [--format table|json] [--details] [--config FILE] [--pg DSN]\n"
    "       popsync-warehouse status [--json] [--config FILE] [--pg DSN]\n"
    "       popsync-warehouse verify [--config FILE] [--pg DSN]\n";

typedef struct opts {
    wh_conf_t c;
    const char *config, *month, *lang, *format, *out, *log_level;
    unsigned long urgent, normal;
    int details, json;
    char *owned[16]; /* strings read from the config file */
    size_t nowned;
} opts_t;

static int on_key(void *arg, const char *section, const char *name, const char *value)
{
    opts_t *o = arg;
    char *v;
    if (strcmp(section, "warehouse") != 0)
        return 1;
    if (o->nowned >= 16 || !(v = strdup(value)))
        return 0;
    o->owned[o->nowned++] = v;
    if (!strcmp(name, "pg"))
        o->c.pg = v;
    else if (!strcmp(name, "nats"))
        o->c.nats = v;
    else if (!strcmp(name, "stream"))
        o->c.stream = v;
    else if (!strcmp(name, "durable"))
        o->c.durable = v;
    else if (!strcmp(name, "batch"))
        o->c.batch = atoi(v);
    else if (!strcmp(name, "ack_wait"))
        o->c.ack_wait_s = atoi(v);
    else if (!strcmp(name, "nats_ca"))
        o->c.nats_ca = v;
    else if (!strcmp(name, "nats_cert"))
        o->c.nats_cert = v;
    else if (!strcmp(name, "nats_key"))
        o->c.nats_key = v;
    else if (!strcmp(name, "orgunits"))
        o->c.orgunits = v;
    else if (!strcmp(name, "log_level"))
        o->log_level = v;
    else {
        fprintf(stderr, "popsync-warehouse: %s: unknown key %s in [warehouse]\n", o->config, name);
        return 0;
    }
    return 1;
}

/* The config file first, so that options given on the command line win. */
static int read_config(int argc, char **argv, opts_t *o)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config"))
            o->config = argv[i + 1];
    if (o->config && ini_parse(o->config, on_key, o) != 0) {
        fprintf(stderr, "popsync-warehouse: cannot read %s\n", o->config);
        return -1;
    }
    return 0;
}

static int parse(int argc, char **argv, opts_t *o)
{
    enum { O_CONFIG = 256, O_PG, O_NATS, O_STREAM, O_DURABLE, O_BATCH, O_ACKWAIT, O_DRAIN, O_CA, O_CERT, O_KEY,
           O_LOG, O_MONTH, O_LANG, O_FORMAT, O_OUT, O_URGENT, O_NORMAL, O_ORGUNITS, O_DETAILS, O_JSON };
    static const struct option lo[] = {
        {"config", 1, 0, O_CONFIG},     {"pg", 1, 0, O_PG},           {"nats", 1, 0, O_NATS},
        {"stream", 1, 0, O_STREAM},     {"durable", 1, 0, O_DURABLE}, {"batch", 1, 0, O_BATCH},
        {"ack-wait", 1, 0, O_ACKWAIT},  {"drain", 0, 0, O_DRAIN},     {"nats-ca", 1, 0, O_CA},
        {"nats-cert", 1, 0, O_CERT},    {"nats-key", 1, 0, O_KEY},    {"log-level", 1, 0, O_LOG},
        {"month", 1, 0, O_MONTH},       {"lang", 1, 0, O_LANG},       {"format", 1, 0, O_FORMAT},
        {"out", 1, 0, O_OUT},           {"deadline-urgent", 1, 0, O_URGENT},
        {"deadline-normal", 1, 0, O_NORMAL}, {"orgunits", 1, 0, O_ORGUNITS},
        {"details", 0, 0, O_DETAILS},   {"json", 0, 0, O_JSON},       {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case O_CONFIG: break;
        case O_PG: o->c.pg = optarg; break;
        case O_NATS: o->c.nats = optarg; break;
        case O_STREAM: o->c.stream = optarg; break;
        case O_DURABLE: o->c.durable = optarg; break;
        case O_BATCH: o->c.batch = atoi(optarg); break;
        case O_ACKWAIT: o->c.ack_wait_s = atoi(optarg); break;
        case O_DRAIN: o->c.drain = 1; break;
        case O_CA: o->c.nats_ca = optarg; break;
        case O_CERT: o->c.nats_cert = optarg; break;
        case O_KEY: o->c.nats_key = optarg; break;
        case O_LOG: o->log_level = optarg; break;
        case O_MONTH: o->month = optarg; break;
        case O_LANG: o->lang = optarg; break;
        case O_FORMAT: o->format = optarg; break;
        case O_OUT: o->out = optarg; break;
        case O_URGENT: o->urgent = strtoul(optarg, NULL, 10); break;
        case O_NORMAL: o->normal = strtoul(optarg, NULL, 10); break;
        case O_ORGUNITS: o->c.orgunits = optarg; break;
        case O_DETAILS: o->details = 1; break;
        case O_JSON: o->json = 1; break;
        default: return -1;
        }
    }
    if (o->c.batch < 1 || o->c.batch > 2000 || o->c.ack_wait_s < 1 || o->urgent > 365 || o->normal > 365) {
        fprintf(stderr, "popsync-warehouse: --batch is 1..2000, --ack-wait at least 1, deadlines 0..365\n");
        return -1;
    }
    return 0;
}

static PGconn *connect_pg(const opts_t *o)
{
    PGconn *pg = PQconnectdb(o->c.pg);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "popsync-warehouse: PostgreSQL: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static int cmd_report(const opts_t *o, PGconn *pg, const char *which)
{
    int zh = ps_report_lang_zh(o->lang), fmt = o->format ? ps_report_format_from_name(o->format) : PS_REPORT_TABLE;
    if (o->format && !strcmp(o->format, "xlsx"))
        fmt = PS_REPORT_XLSX;
    if (zh < 0 || fmt < 0) {
        fprintf(stderr, "popsync-warehouse: --lang is zh or en; --format table, csv, json or xlsx\n");
        return 2;
    }
    if (!strcmp(which, "quality"))
        return wh_report_quality(pg, fmt, zh, o->details) ? 1 : 0;
    if (!o->month || !ps_report_month_valid(o->month)) {
        fprintf(stderr, "popsync-warehouse: report monthly needs --month YYYY-MM\n");
        return 2;
    }
    if (fmt == PS_REPORT_XLSX && !o->out) {
        fprintf(stderr, "popsync-warehouse: --format xlsx needs --out FILE.xlsx\n");
        return 2;
    }
    return wh_report_monthly(pg, &o->c, o->month, fmt, zh, o->urgent ? (uint32_t)o->urgent : 15,
                             o->normal ? (uint32_t)o->normal : 30, o->out)
               ? 1
               : 0;
}

static int dispatch(opts_t *o, int argc, char **argv)
{
    const char *cmd = argv[1];
    int shift = 1, rc;
    PGconn *pg;
    char err[512];

    if (!strcmp(cmd, "report")) {
        if (argc < 3 || strcmp(argv[2], "monthly") != 0) {
            fputs(USAGE, stderr);
            return 2;
        }
        shift = 2;
    }
    if (parse(argc - shift, argv + shift, o)) {
        fputs(USAGE, stderr);
        return 2;
    }
    if (o->log_level && ps_log_level_from_name(o->log_level) >= 0)
        ps_log_set_level((ps_log_level_t)ps_log_level_from_name(o->log_level));
    if (!strcmp(cmd, "run")) {
        if (!o->c.nats) {
            fprintf(stderr, "popsync-warehouse run: --nats URL[,URL...] (or nats = in the config) is required\n");
            return 2;
        }
        return wh_consume_run(&o->c) ? 1 : 0;
    }
    if (!(pg = connect_pg(o)))
        return 1;
    if (!strcmp(cmd, "init")) {
        if ((rc = wh_schema_ensure(pg, err, sizeof(err))))
            fprintf(stderr, "popsync-warehouse init: %s", err);
        rc = rc ? 1 : 0;
    } else if (!strcmp(cmd, "report") || !strcmp(cmd, "quality"))
        rc = cmd_report(o, pg, shift == 2 ? "monthly" : "quality");
    else if (!strcmp(cmd, "status"))
        rc = wh_status(pg, o->json) ? 1 : 0;
    else
        rc = wh_verify(pg) ? 1 : 0;
    PQfinish(pg);
    return rc;
}

int main(int argc, char **argv)
{
    static const char *const cmds[] = {"run", "init", "report", "quality", "status", "verify"};
    opts_t o;
    int known = 0, rc;

    memset(&o, 0, sizeof(o));
    o.c.pg = "";
    o.c.stream = "POPSYNC";
    o.c.durable = "popsync-warehouse";
    o.c.batch = 500;
    o.c.ack_wait_s = 30;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        known |= !strcmp(argv[1], cmds[i]);
    if (!known) {
        fprintf(stderr, "popsync-warehouse: unknown command %s\n%s", argv[1], USAGE);
        return 2;
    }
    if (read_config(argc, argv, &o))
        return 2;
    rc = dispatch(&o, argc, argv);
    for (size_t i = 0; i < o.nowned; i++)
        free(o.owned[i]);
    return rc;
}
