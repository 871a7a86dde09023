/* testhooks.c - see testhooks.h. */
#include "testhooks.h"
#include "err.h"

#include <errno.h>
#include <stdlib.h>

#ifdef PS_TEST_HOOKS
static const char *hook(const char *name)
{
    const char *s = getenv(name);
    return s && *s ? s : NULL;
}

int ps_test_hook_u64(const char *name, uint64_t *out)
{
    const char *s = hook(name);
    char *end;
    unsigned long long v;
    if (!s)
        return 0;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || *s == '-')
        return PS_EINVAL;
    *out = v;
    return 1;
}

int ps_test_hook_i64(const char *name, int64_t *out)
{
    const char *s = hook(name);
    char *end;
    long long v;
    if (!s)
        return 0;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return PS_EINVAL;
    *out = v;
    return 1;
}
#else
int ps_test_hook_u64(const char *name, uint64_t *out)
{
    (void)name;
    (void)out;
    return 0;
}

int ps_test_hook_i64(const char *name, int64_t *out)
{
    (void)name;
    (void)out;
    return 0;
}
#endif
