/* cmd_io.c - import and export (being written). */
#include "cli.h"

int ps_cmd_import(ps_cli_t *cli, int argc, char **argv)
{
    (void)cli; (void)argc; (void)argv;
    ps_cli_err("import: not built yet");
    return PS_EXIT_FAIL;
}

int ps_cmd_export(ps_cli_t *cli, int argc, char **argv)
{
    (void)cli; (void)argc; (void)argv;
    ps_cli_err("export: not built yet");
    return PS_EXIT_FAIL;
}
