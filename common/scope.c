/* scope.c - org unit codes and subtrees. */
#include "scope.h"

#include <string.h>

int ps_orgunit_valid(const char *s)
{
    size_t i;
    if (!s)
        return 0;
    for (i = 0; i < 12; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return s[12] == '\0';
}

/* Length of the significant prefix: 6 for a district, 9 for a township, 12
 * for a village.  Codes ending in zeros at other places count as their
 * nearest coarser level, which is what the division code standard means. */
static size_t level_prefix(const char *code)
{
    if (strcmp(code + 6, "000000") == 0)
        return 6;
    if (strcmp(code + 9, "000") == 0)
        return 9;
    return 12;
}

int ps_orgunit_within(const char *unit, const char *root)
{
    if (!ps_orgunit_valid(unit) || !ps_orgunit_valid(root))
        return 0;
    return strncmp(unit, root, level_prefix(root)) == 0;
}

void ps_orgunit_township(const char *unit, char out[13])
{
    memcpy(out, unit, 9);
    memcpy(out + 9, "000", 4);
}
