/* cmd_benefits.c - placeholder until the benefit evaluator lands. */
#include "cli.h"
#include "err.h"
#include "panels.h"

int ps_cmd_benefits(ps_cli_t *cli, int argc, char **argv)
{
    (void)cli;
    (void)argc;
    (void)argv;
    ps_cli_err("benefits: not yet available");
    return PS_EXIT_FAIL;
}

int ps_benefit_panel(ps_cache_t *c, const ps_orgunits_t *tree, const char *month, const char *root, int zh,
                     int quality, FILE *f)
{
    (void)c, (void)tree, (void)month, (void)root, (void)zh, (void)quality, (void)f;
    return PS_OK;
}
