/* cmd_find.c - `popsync find`: a person by what people know, offline,
 * from the cache's person index (client/cache_pindex.h). */
#include "cache.h"
#include "cli.h"
#include "err.h"
#include "fields.h"
#include "ids.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "report.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIND_DEFAULT_LIMIT 50
#define FIND_MAX_LIMIT 10000

static int find_usage(FILE *f)
{
    fprintf(f, "usage: popsync find TEXT [--limit N] [--lang zh|en] [--json]\n"
               "  finds persons in this cache (offline) by what people know:\n"
               "    a whole ID number (full-width digits and a lower-case x are fine),\n"
               "    its last 4 or 6 characters, a name or its first one or two characters,\n"
               "    or a name and a birth date (\"王芳 1990/3/7\").\n"
               "  example: popsync find 张三    popsync find 0021    popsync find \"王芳 1990-03-07\"\n");
    return f == stdout ? PS_EXIT_OK : PS_EXIT_USAGE;
}

/* The unit's name beside its code, from the cache's org-unit tree. */
static const char *unit_name(const ps_orgunits_t *t, const char *code)
{
    const ps_orgunit_t *u = t ? ps_orgunits_find(t, code) : NULL;
    return u ? u->name : "";
}

static void print_json(Popsync__Record **recs, size_t n, const ps_orgunits_t *units)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n; i++) {
        json_t *o = ps_record_to_json(recs[i]);
        if (o) {
            json_object_set_new(o, "orgunit_name", json_string(unit_name(units, recs[i]->orgunit)));
            json_array_append_new(arr, o);
        }
    }
    json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(arr);
}

static void cell(const char *s, size_t width)
{
    size_t w = ps_utf8_width(s);
    printf("%s%*s  ", s, (int)(w < width ? width - w : 0), "");
}

static void print_table(Popsync__Record **recs, size_t n, const ps_orgunits_t *units, int zh)
{
    const ps_field_t *sexf = ps_field_find(POPSYNC__KIND__KIND_PERSON, "sex");

    cell(zh ? "姓名" : "name", 10);
    cell(zh ? "性别" : "sex", 6);
    cell(zh ? "出生日期" : "born", 10);
    cell(zh ? "身份证号" : "ID number", 18);
    cell(zh ? "单位" : "unit", 24);
    printf("%s\n", zh ? "记录 ID" : "record id");
    for (size_t i = 0; i < n; i++) {
        const Popsync__Person *p = recs[i]->person;
        char sex[16], unit[160], id[PS_UUID_STR];
        const char *zs;
        ps_record_get_text(recs[i], "sex", sex, sizeof(sex));
        zs = zh ? ps_field_value_zh(sexf, sex) : NULL;
        snprintf(unit, sizeof(unit), "%s %s", recs[i]->orgunit, unit_name(units, recs[i]->orgunit));
        ps_uuid_format(recs[i]->id.data, id);
        cell(p->name, 10);
        cell(zs ? zs : sex, 6);
        cell(p->birth_date, 10);
        cell(p->id_number, 18);
        cell(unit, 24);
        printf("%s\n", id);
    }
}

static ps_orgunits_t *cache_units(ps_cache_t *c)
{
    uint8_t *csv = NULL, digest[32];
    size_t len = 0;
    ps_orgunits_t *t = NULL;
    char err[256];

    if (ps_cache_get_orgunits(c, &csv, &len, digest) == PS_OK)
        ps_orgunits_parse(csv, len, &t, err, sizeof(err));
    free(csv);
    return t;
}

int ps_cmd_find(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"limit", required_argument, NULL, 'l'},
                                       {"lang", required_argument, NULL, 'L'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *lang = NULL;
    long limit = FIND_DEFAULT_LIMIT;
    int opt, json = cli->json, zh, rc;
    ps_cache_t *c = NULL;
    ps_orgunits_t *units;
    Popsync__Record **recs = NULL;
    size_t n = 0;
    char err[512], *end;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'l':
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 1 || limit > FIND_MAX_LIMIT) {
                ps_cli_err("find: --limit must be 1 to %d", FIND_MAX_LIMIT);
                return PS_EXIT_USAGE;
            }
            break;
        case 'L': lang = optarg; break;
        case 'j': json = 1; break;
        case 'h': return find_usage(stdout);
        default: return find_usage(stderr);
        }
    }
    if (optind != argc - 1 || !*argv[optind])
        return find_usage(stderr);
    if ((zh = ps_report_lang_zh(lang)) < 0) {
        ps_cli_err("find: --lang must be zh or en");
        return PS_EXIT_USAGE;
    }
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("find: %s", err);
        return PS_EXIT_FAIL;
    }
    rc = ps_cache_find(c, argv[optind], (size_t)limit, &recs, &n);
    units = rc ? NULL : cache_units(c);
    if (rc)
        ps_cli_err("find: %s", ps_strerror(rc));
    else if (json)
        print_json(recs, n, units);
    else if (n == 0)
        fprintf(stderr, zh ? "没有找到\n" : "no person found\n");
    else
        print_table(recs, n, units, zh);
    for (size_t i = 0; i < n; i++)
        protobuf_c_message_free_unpacked(&recs[i]->base, NULL);
    free(recs);
    ps_orgunits_free(units);
    ps_cache_close(c);
    if (rc)
        return PS_EXIT_FAIL;
    return n ? PS_EXIT_OK : PS_EXIT_NOTFOUND;
}
