/* late.c - see late.h. */
#include "late.h"

#include <string.h>

#include "cli.h"
#include "counters.h"
#include "scope.h"

#define LATE_CONTRIB (2 * PS_CONTRIB_MAX)

/* Whether contribution x of one version is matched exactly by one of the
 * other's (then it changes no count). */
static int matched(const ps_contrib_t *x, const ps_contrib_t *other, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (other[i].month == x->month && other[i].value == x->value && strcmp(other[i].unit, x->unit) == 0 &&
            strcmp(other[i].metric, x->metric) == 0)
            return 1;
    return 0;
}

static size_t add_once(ps_late_t *out, size_t n, size_t max, uint32_t month, const char *town)
{
    for (size_t i = 0; i < n; i++)
        if (out[i].month == month && strcmp(out[i].township, town) == 0)
            return n;
    if (n == max)
        return n;
    out[n].month = month;
    memcpy(out[n].township, town, 13);
    return n + 1;
}

/* The changed contributions of side a (not matched in b) that fall into an
 * approved month, added to out. */
static size_t scan(ps_cache_t *c, const ps_orgunits_t *tree, const ps_contrib_t *a, size_t na, const ps_contrib_t *b,
                   size_t nb, ps_late_t *out, size_t n, size_t max)
{
    for (size_t i = 0; i < na; i++) {
        char town[13];
        if (a[i].month == 0 || matched(&a[i], b, nb)) /* month 0: stocks, never frozen */
            continue;
        ps_orgunits_township_code(tree, a[i].unit, town);
        if (ps_cache_month_approved(c, a[i].month, town))
            n = add_once(out, n, max, a[i].month, town);
    }
    return n;
}

size_t ps_late_months(ps_cache_t *c, const ps_orgunits_t *tree, const Popsync__Record *r,
                      const Popsync__Record *current, ps_late_t *out, size_t max)
{
    ps_contrib_t now[PS_CONTRIB_MAX], was[PS_CONTRIB_MAX];
    size_t nn = r ? ps_counters_contrib(r, now, PS_CONTRIB_MAX) : 0;
    size_t nw = current ? ps_counters_contrib(current, was, PS_CONTRIB_MAX) : 0;
    size_t n = scan(c, tree, now, nn, was, nw, out, 0, max);
    return scan(c, tree, was, nw, now, nn, out, n, max);
}

void ps_late_warn(const char *cmd, const ps_late_t *late, size_t n, int zh)
{
    for (size_t i = 0; i < n; i++) {
        unsigned y = late[i].month / 100, m = late[i].month % 100;
        if (zh)
            ps_cli_err("%s: 注意：%u年%u月（单位 %s）的月报已经批准；这条记录会作为该月报表的更正显示，请告知区里",
                       cmd, y, m, late[i].township);
        else
            ps_cli_err("%s: note: %04u-%02u is already approved for township %s: this entry shows as a correction "
                       "of that month's report; tell the district office",
                       cmd, y, m, late[i].township);
    }
}
