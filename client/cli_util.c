/* cli_util.c - helpers shared by the subcommands (in the client library,
 * so the benchmark and test drivers can run subcommands in-process). */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>

void ps_cli_err(const char *fmt, ...)
{
    va_list ap;
    fputs("popsync: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
