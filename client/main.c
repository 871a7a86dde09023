/* main.c - popsync: global options and subcommand dispatch. */
#include "cli.h"
#include "log.h"
#include "pki_cmd.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: popsync [--data DIR] [--json] [--log-level LEVEL] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  init --server HOST:PORT --ca FILE --cert FILE --key FILE [--server-name NAME]\n"
            "       [--orgunits FILE] [--key-file FILE]\n"
            "                          make a local cache for this device\n"
            "  add KIND --set FIELD=VALUE ... | --json '{...}'\n"
            "                          add a record offline; prints its id.  FIELD is the English\n"
            "                          name or the Chinese label (姓名=张三 性别=女 出生日期=1990/3/7)\n"
            "  config show | config set server|server_name|ca|cert|key VALUE\n"
            "                          how this cache reaches its server (fix an init mistake\n"
            "                          without losing unsent changes)\n"
            "  find TEXT [--limit N]   find persons offline by ID number (whole or last 4/6),\n"
            "                          name (or its first 1-2 characters), or \"name birth-date\"\n"
            "  fields KIND [--lang zh|en] [--json]\n"
            "                          the fields of a kind, their Chinese labels and values\n"
            "  template KIND [--lang zh|en] --out FILE.csv\n"
            "                          an empty import file with the header row\n"
            "  edit ID --set FIELD=VALUE ... | --json '{...}'\n"
            "  delete ID [--cascade | --force]\n"
            "                          mark a record deleted (syncs as a tombstone); refused while other\n"
            "                          records refer to it, unless --cascade (delete them too) or --force\n"
            "  restore ID              undo a delete (a new revision, synced like any edit)\n"
            "  show ID [--format json|table]\n"
            "  list [--kind KIND] [--orgunit CODE] [--format table|json|csv] [--deleted]\n"
            "  sync [--quiet]          push local changes, then pull everyone else's\n"
            "  status                  pending changes, refused changes, cursor, last sync\n"
            "  status --all [--json]   (admin, online) every node that has synced: last seen, how far\n"
            "                          behind, its certificate, open conflicts\n"
            "  stats [--json]          records held, per township and kind\n"
            "  verify [--json]         sync, then compare digests with the server and repair differences\n"
            "  refused list [--json]   changes the server refused (kept whole, with its reasons)\n"
            "  refused show ID [--json]\n"
            "  refused edit ID [--set FIELD=VALUE ...] [--json '{...}']\n"
            "                          correct a refused change; it is pushed by the next sync\n"
            "  refused discard ID      drop a refused change for good\n"
            "  conflicts list [--all] [--json]\n"
            "  conflicts resolve ID --keep mine|theirs|FILE\n"
            "  import FILE --kind KIND [--format csv|json]\n"
            "                          add records from a CSV or JSON file; bad rows are reported\n"
            "  export --kind KIND --format csv|json [--out FILE] [--lang zh|en] [--no-bom]\n"
            "        [--pending]       only records with changes not yet synced\n"
            "  generate --persons N [--seed S] [--orgunit CODE] [--orgunits FILE] [--stats]\n"
            "                          add a realistic synthetic district: N persons with their\n"
            "                          households, births, migrations, benefits and visits\n"
            "  query --kind KIND [--orgunit CODE] [--date-field F --from D --to D]\n"
            "        [--where FIELD=VALUE]... [--group-by a,b,...] [--sum FIELD]\n"
            "        [--list [--limit N]] [--deleted] [--format table|csv|json]\n"
            "                          count, sum or list records on the server (online)\n"
            "  report monthly --month YYYY-MM [--orgunit CODE] [--lang zh|en] [--format table|csv|json]\n"
            "        [--deadline-urgent DAYS] [--deadline-normal DAYS]\n"
            "  report quality [--orgunit CODE] [--lang zh|en] [--format table|csv|json]\n"
            "  report submit|status --month YYYY-MM [--orgunit CODE]\n"
            "  report approve --month YYYY-MM --orgunit CODE [--note TEXT]\n"
            "  report return --month YYYY-MM --orgunit CODE --note TEXT\n"
            "                          monthly close: a township submits, the district approves or returns\n"
            "  pki init-ca --dir PKI [--name NAME]\n"
            "  pki issue --dir PKI --role ROLE --orgunit CODE --name NAME [--days N]\n"
            "\n"
            "KIND is person, household, birth, migration, benefit or service_visit.\n"
            "--data defaults to $POPSYNC_DATA.  Exit codes: 0 ok, 1 failed, 2 usage,\n"
            "3 sync incomplete, 4 invalid record, 5 not found, 6 sync completed but the\n"
            "server refused some changes or kept them as conflicts (counts printed).\n");
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(ps_cli_t *, int, char **);
    } cmds[] = {{"init", ps_cmd_init},     {"sync", ps_cmd_sync}, {"status", ps_cmd_status},
                {"add", ps_cmd_add},       {"edit", ps_cmd_edit}, {"delete", ps_cmd_delete},
                {"restore", ps_cmd_restore},
                {"show", ps_cmd_show},     {"list", ps_cmd_list}, {"generate", ps_cmd_generate},
                {"import", ps_cmd_import}, {"export", ps_cmd_export},
                {"stats", ps_cmd_stats}, {"verify", ps_cmd_verify}, {"conflicts", ps_cmd_conflicts},
                {"query", ps_cmd_query},   {"report", ps_cmd_report}, {"refused", ps_cmd_refused},
                {"find", ps_cmd_find},     {"config", ps_cmd_config}};
    ps_cli_t cli = {getenv("POPSYNC_DATA"), 0};
    int i = 1;

    signal(SIGPIPE, SIG_IGN);
    ps_log_set_level(PS_LOG_WARN);
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            cli.data_dir = argv[++i];
        } else if (strncmp(argv[i], "--data=", 7) == 0) {
            cli.data_dir = argv[i] + 7;
        } else if (strcmp(argv[i], "--json") == 0) {
            cli.json = 1;
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            int lv = ps_log_level_from_name(argv[++i]);
            if (lv < 0) {
                ps_cli_err("unknown log level '%s'", argv[i]);
                return PS_EXIT_USAGE;
            }
            ps_log_set_level((ps_log_level_t)lv);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return PS_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("popsync 0.1.0\n");
            return PS_EXIT_OK;
        } else {
            ps_cli_err("unknown option '%s'", argv[i]);
            usage(stderr);
            return PS_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return PS_EXIT_USAGE;
    }
    if (strcmp(argv[i], "pki") == 0)
        return ps_cli_pki(argc - i, argv + i);
    if (strcmp(argv[i], "fields") == 0)
        return ps_cmd_fields(&cli, argc - i, argv + i);
    if (strcmp(argv[i], "template") == 0)
        return ps_cmd_template(&cli, argc - i, argv + i);
    if (strcmp(argv[i], "help") == 0) {
        usage(stdout);
        return PS_EXIT_OK;
    }
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
        if (strcmp(argv[i], cmds[k].name) != 0)
            continue;
        if (!cli.data_dir) {
            ps_cli_err("%s: no cache directory: give --data DIR or set POPSYNC_DATA", argv[i]);
            return PS_EXIT_USAGE;
        }
        return cmds[k].fn(&cli, argc - i, argv + i);
    }
    ps_cli_err("unknown command '%s'", argv[i]);
    usage(stderr);
    return PS_EXIT_USAGE;
}
