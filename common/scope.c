/* scope.c - org unit codes. */
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

void ps_orgunit_township(const char *unit, char out[13])
{
    memcpy(out, unit, 9);
    memcpy(out + 9, "000", 4);
}
