/* tz.c - the district's time zone (see tz.h). */
#include "tz.h"
#include "err.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int ps_tz_valid(const char *name, char *err, size_t errlen)
{
    const char *dir = getenv("TZDIR");
    char path[512], magic[4];
    FILE *f;
    size_t n;
    if (!name || !*name || strlen(name) >= sizeof(((ps_tz_t *)0)->name) || name[0] == '/' || strstr(name, "..") ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-") != strlen(name)) {
        snprintf(err, errlen, "'%s' is not a time zone name (like Asia/Shanghai)", name ? name : "");
        return PS_EINVAL;
    }
    /* glibc takes an unknown zone for UTC without a word: look first. */
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    f = fopen(path, "rb");
    n = f ? fread(magic, 1, 4, f) : 0;
    if (f)
        fclose(f);
    if (n != 4 || memcmp(magic, "TZif", 4) != 0) {
        snprintf(err, errlen, "time zone '%s' is not in the tz database (%s; install tzdata)", name, path);
        return PS_EINVAL;
    }
    return PS_OK;
}

int ps_tz_load(ps_tz_t *tz, const char *name, uint64_t now_ms, char *err, size_t errlen)
{
    char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    int rc;
    if ((rc = ps_tz_valid(name, err, errlen))) {
        free(old);
        return rc;
    }
    setenv("TZ", name, 1);
    tzset();
    memset(&tm, 0, sizeof(tm));
    rc = localtime_r(&t, &tm) ? PS_OK : PS_EINVAL;
    if (old)
        setenv("TZ", old, 1);
    else
        unsetenv("TZ");
    tzset();
    free(old);
    if (rc) {
        snprintf(err, errlen, "cannot read time zone '%s'", name);
        return rc;
    }
    snprintf(tz->name, sizeof(tz->name), "%s", name);
    tz->offset_s = (int32_t)tm.tm_gmtoff;
    return PS_OK;
}

/* The zones ps_tz_get has loaded: a process needs one or two. */
#define TZ_KEPT 4
static pthread_mutex_t g_tz_mu = PTHREAD_MUTEX_INITIALIZER;
static ps_tz_t g_tz_kept[TZ_KEPT];
static int g_tz_n, g_tz_frozen;

static const ps_tz_t *kept(const char *name)
{
    for (int i = 0; i < g_tz_n; i++)
        if (strcmp(g_tz_kept[i].name, name) == 0)
            return &g_tz_kept[i];
    return NULL;
}

int ps_tz_get(ps_tz_t *tz, const char *name, char *err, size_t errlen)
{
    const ps_tz_t *k;
    int rc = PS_OK;

    pthread_mutex_lock(&g_tz_mu);
    if ((k = kept(name ? name : ""))) {
        *tz = *k;
    } else if (g_tz_frozen) {
        if (g_tz_n)
            *tz = g_tz_kept[0];
        else
            memset(tz, 0, sizeof(*tz));
        snprintf(err, errlen, "time zone '%s' was not loaded when this program started; restart it",
                 name ? name : "");
        rc = PS_ENOTFOUND;
    } else if ((rc = ps_tz_load(tz, name, (uint64_t)time(NULL) * 1000, err, errlen)) == PS_OK && g_tz_n < TZ_KEPT) {
        g_tz_kept[g_tz_n++] = *tz;
    }
    pthread_mutex_unlock(&g_tz_mu);
    return rc;
}

void ps_tz_freeze(void)
{
    pthread_mutex_lock(&g_tz_mu);
    g_tz_frozen = 1;
    pthread_mutex_unlock(&g_tz_mu);
}

uint32_t ps_tz_date(const ps_tz_t *tz, uint64_t now_ms)
{
    time_t t = (time_t)(now_ms / 1000) + (tz ? tz->offset_s : 0);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return 0;
    return (uint32_t)(tm.tm_year + 1900) * 10000 + (uint32_t)(tm.tm_mon + 1) * 100 + (uint32_t)tm.tm_mday;
}
