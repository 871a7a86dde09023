/* cmd_history.c - `popsync history ID`: a record's versions, who made each
 * and when, from the server (history.h).  Offline it says so and prints
 * what the cache knows, the latest version only (exit 3). */
#include "cli.h"

#include "cache.h"
#include "err.h"
#include "history.h"
#include "ids.h"
#include "record_fmt.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void fmt_ms(uint64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!ms) {
        snprintf(out, n, "-");
        return;
    }
    localtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

/* "town1 (township 110105001000), device 0190ab12" or "this device". */
static void who_text(json_t *v, char *out, size_t n)
{
    const char *node = json_string_value(json_object_get(v, "node"));
    char dev[40];
    if (json_is_true(json_object_get(v, "this_device")))
        snprintf(dev, sizeof(dev), "this device");
    else
        snprintf(dev, sizeof(dev), "device %.8s", node ? node : "?");
    if (json_is_true(json_object_get(v, "audited")))
        snprintf(out, n, "%s (%s %s), %s", json_string_value(json_object_get(v, "cert_name")),
                 json_string_value(json_object_get(v, "cert_role")),
                 json_string_value(json_object_get(v, "cert_orgunit")), dev);
    else
        snprintf(out, n, "%s", dev);
}

static void print_history(const char *idtext, json_t *h)
{
    json_t *vs = json_object_get(h, "versions"), *v;
    size_t i;
    printf("history of %s: %zu version(s)", idtext, json_array_size(vs));
    if (json_integer_value(json_object_get(h, "earlier")))
        printf(", %lld earlier not shown", (long long)json_integer_value(json_object_get(h, "earlier")));
    if (json_integer_value(json_object_get(h, "hidden")))
        printf(", %lld made outside this cache's scope not shown",
               (long long)json_integer_value(json_object_get(h, "hidden")));
    printf("\n%-4s  %-19s  %-8s  %-50s  %s\n", "gen", "when (server)", "action", "by", "changed");
    json_array_foreach(vs, i, v) {
        json_t *ch = json_object_get(v, "changed"), *f;
        char when[32], who[200], changed[400] = "";
        size_t off = 0, k;
        uint64_t ms = json_is_true(json_object_get(v, "audited"))
                          ? (uint64_t)json_integer_value(json_object_get(v, "time_ms"))
                          : (uint64_t)json_integer_value(json_object_get(v, "hlc_ms"));
        fmt_ms(ms, when, sizeof(when));
        who_text(v, who, sizeof(who));
        json_array_foreach(ch, k, f) {
            if (off < sizeof(changed))
                off += (size_t)snprintf(changed + off, sizeof(changed) - off, "%s%s", k ? "," : "",
                                        json_string_value(f));
        }
        printf("%-4lld  %-19s  %-8s  %-50s  %s\n", (long long)json_integer_value(json_object_get(v, "gen")), when,
               json_is_true(json_object_get(v, "audited")) ? json_string_value(json_object_get(v, "action")) : "?",
               who, json_is_null(ch) ? "?" : changed);
    }
}

/* Offline: what the cache holds of the record (its latest version). */
static void print_cached(ps_cache_t *c, const uint8_t *id)
{
    Popsync__Record *r = NULL;
    char created[32], updated[32];
    int mine;
    if (ps_cache_get(c, id, &r) != PS_OK) {
        fprintf(stderr, "history: this cache does not hold the record either\n");
        return;
    }
    mine = r->changed_by.len == 16 && memcmp(r->changed_by.data, ps_cache_meta(c)->node, 16) == 0;
    fmt_ms((uint64_t)r->created_ms, created, sizeof(created));
    fmt_ms((uint64_t)r->updated_ms, updated, sizeof(updated));
    fprintf(stderr,
            "history: this cache holds the latest version only: created %s, last changed %s by %s, server "
            "revision %s%llu\n",
            created, updated, mine ? "this device" : "another device", r->rev ? "" : "(not yet synced) ",
            (unsigned long long)(r->rev ? r->rev->gen : 0));
    ps_record_free(r);
}

int ps_cmd_history(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    ps_cache_t *c = NULL;
    json_t *h = NULL;
    uint8_t id[PS_ID_LEN];
    char err[512];
    int opt, json = cli->json, reached = 0, rc;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt != 'j')
            return PS_EXIT_USAGE;
        json = 1;
    }
    if (optind != argc - 1) {
        ps_cli_err("history: usage: history ID [--json]");
        return PS_EXIT_USAGE;
    }
    if ((rc = ps_cache_open(&c, cli->data_dir, err, sizeof(err)))) {
        ps_cli_err("history: %s", err);
        return PS_EXIT_FAIL;
    }
    if (ps_uuid_parse(argv[optind], id) != PS_OK && ps_cli_person_by_number(c, argv[optind], id) != PS_OK) {
        ps_cli_err("history: '%s' is neither a record id nor the ID number of a live person in this cache",
                   argv[optind]);
        rc = PS_EXIT_USAGE;
    } else if (ps_history_ask(c, id, 0, &h, &reached, err, sizeof(err)) != PS_OK) {
        ps_cli_err("history: %s: %s", reached ? "the server refused" : "cannot reach the server", err);
        if (!reached)
            print_cached(c, id);
        rc = reached ? PS_EXIT_FAIL : PS_EXIT_SYNC;
    } else if (json_array_size(json_object_get(h, "versions")) == 0) {
        ps_cli_err("history: the server has no record %s in this cache's scope", argv[optind]);
        rc = PS_EXIT_NOTFOUND;
    } else if (json) {
        json_dumpf(h, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        rc = PS_EXIT_OK;
    } else {
        print_history(argv[optind], h);
        rc = PS_EXIT_OK;
    }
    json_decref(h);
    ps_cache_close(c);
    return rc;
}
