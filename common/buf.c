/* buf.c - growable byte buffer. */
#include "buf.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

void ps_buf_init(ps_buf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void ps_buf_free(ps_buf_t *b)
{
    free(b->data);
    ps_buf_init(b);
}

void ps_buf_compact(ps_buf_t *b)
{
    if (b->off == 0)
        return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

int ps_buf_reserve(ps_buf_t *b, size_t n)
{
    size_t need, ncap;
    uint8_t *p;

    if (b->cap - b->len >= n)
        return PS_OK;
    /* Reclaim consumed space first: cheaper than growing when a reader keeps up. */
    if (b->off > 0 && b->cap - (b->len - b->off) >= n) {
        ps_buf_compact(b);
        return PS_OK;
    }
    ps_buf_compact(b);
    need = b->len + n;
    if (need < n)
        return PS_ENOMEM;
    ncap = b->cap ? b->cap : 256;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return PS_ENOMEM;
        ncap *= 2;
    }
    p = realloc(b->data, ncap);
    if (!p)
        return PS_ENOMEM;
    b->data = p;
    b->cap = ncap;
    return PS_OK;
}

int ps_buf_append(ps_buf_t *b, const void *p, size_t n)
{
    int rc = ps_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return PS_OK;
}

void ps_buf_consume(ps_buf_t *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len)
        b->off = b->len = 0;
}

void ps_buf_reset(ps_buf_t *b)
{
    b->off = b->len = 0;
}
