/* log.c - logging to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static ps_log_level_t g_level = PS_LOG_INFO;

void ps_log_set_level(ps_log_level_t level)
{
    g_level = level;
}

int ps_log_level_from_name(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void ps_log(ps_log_level_t level, const char *component, const char *fmt, ...)
{
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[1024];
    size_t n = 0;
    va_list ap;
    const char *t;

    if (level < g_level || level >= PS_LOG_OFF)
        return;
    t = getenv("PS_LOG_TIME");
    if (t && *t == '1') {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ ", ts.tv_nsec / 1000000);
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, "%s %s: ", tags[level], component);
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
    }
    /* One write per line so lines from several processes never interleave. */
    fprintf(stderr, "%s\n", line);
}
