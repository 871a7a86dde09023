/* main.c - popsync: global options and subcommand dispatch. */
#include "cli.h"
#include "log.h"
#include "pki_cmd.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Global options, then the command table (about 80 lines). */
int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(ps_cli_t *, int, char **);
    } cmds[] = {{"init", ps_cmd_init},     {"sync", ps_cmd_sync}, {"status", ps_cmd_status},
                {"add", ps_cmd_add},       {"edit", ps_cmd_edit}, {"delete", ps_cmd_delete},
                {"restore", ps_cmd_restore},
                {"show", ps_cmd_show},     {"history", ps_cmd_history}, {"list", ps_cmd_list}, {"generate", ps_cmd_generate},
                {"import", ps_cmd_import}, {"export", ps_cmd_export},
                {"stats", ps_cmd_stats}, {"verify", ps_cmd_verify}, {"conflicts", ps_cmd_conflicts},
                {"query", ps_cmd_query},   {"report", ps_cmd_report}, {"refused", ps_cmd_refused},
                {"find", ps_cmd_find},     {"config", ps_cmd_config},
                {"migrations", ps_cmd_migrations}, {"duplicates", ps_cmd_duplicates},
                {"merge", ps_cmd_merge}, {"ui", ps_cmd_ui}, {"publish", ps_cmd_publish},
                {"spotcheck", ps_cmd_spotcheck}, {"benefits", ps_cmd_benefits}};
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
            ps_cli_usage(stdout);
            return PS_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("popsync 0.1.0\n");
            return PS_EXIT_OK;
        } else {
            ps_cli_err("unknown option '%s'", argv[i]);
            ps_cli_usage(stderr);
            return PS_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        ps_cli_usage(stderr);
        return PS_EXIT_USAGE;
    }
    /* COMMAND [SUB] ... --help: from the one help table (help.c). */
    for (int k = i + 1; k < argc; k++) {
        if (strcmp(argv[k], "--help") != 0 && strcmp(argv[k], "-h") != 0)
            continue;
        if (ps_cli_help(argv[i], i + 1 < argc && argv[i + 1][0] != '-' ? argv[i + 1] : NULL, stdout))
            return PS_EXIT_OK;
        break;
    }
    if (strcmp(argv[i], "pki") == 0)
        return ps_cli_pki(argc - i, argv + i);
    if (strcmp(argv[i], "fields") == 0)
        return ps_cmd_fields(&cli, argc - i, argv + i);
    if (strcmp(argv[i], "template") == 0)
        return ps_cmd_template(&cli, argc - i, argv + i);
    if (strcmp(argv[i], "help") == 0) {
        ps_cli_usage(stdout);
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
    ps_cli_usage(stderr);
    return PS_EXIT_USAGE;
}
