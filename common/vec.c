/* vec.c - see vec.h. */
#include "vec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* The pointer is read and written with memcpy: pp points at a T *, which
 * has void *'s representation on every platform we build for. */
int ps_vec_resize_(void *pp, size_t count, size_t elem)
{
    void *old, *p;

    if (elem && count > SIZE_MAX / elem)
        return PS_ENOMEM;
    memcpy(&old, pp, sizeof(old));
    if (!(p = realloc(old, count * elem > 0 ? count * elem : 1)))
        return PS_ENOMEM;
    memcpy(pp, &p, sizeof(p));
    return PS_OK;
}

int ps_vec_room_(void *pp, size_t *cap, size_t n, size_t elem, size_t first)
{
    size_t ncap = *cap ? *cap : (first ? first : 1);
    int rc;

    while (ncap <= n) {
        if (ncap > SIZE_MAX / 2)
            return PS_ENOMEM;
        ncap *= 2;
    }
    if ((rc = ps_vec_resize_(pp, ncap, elem)))
        return rc;
    *cap = ncap;
    return PS_OK;
}
