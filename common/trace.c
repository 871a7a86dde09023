/* trace.c - PS_TRACE_SYNC step timestamps (trace.h). */
#define _GNU_SOURCE
#include "trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int g_on = -1; /* -1: not read yet; a benign race, every reader agrees */

int ps_trace_on(void)
{
    if (g_on < 0) {
        const char *v = getenv("PS_TRACE_SYNC");
        g_on = v && *v && strcmp(v, "0") != 0;
    }
    return g_on;
}

void ps_trace(const char *side, const char *fmt, ...)
{
    struct timespec ts, cpu;
    char line[256];
    va_list ap;
    int n;
    clock_gettime(CLOCK_REALTIME, &ts);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    n = snprintf(line, sizeof(line), "trace %.3f t%ld cpu %.3f %s: ", (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6,
                 (long)syscall(SYS_gettid), (double)cpu.tv_sec * 1e3 + (double)cpu.tv_nsec / 1e6, side);
    if (n < 0 || (size_t)n >= sizeof(line))
        return;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line: lines of concurrent threads do not interleave. */
    n = (int)strlen(line);
    if ((size_t)n < sizeof(line) - 1)
        line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
