/* pullspan.c - where each record lies in a packed PullBatch (pullspan.h). */
#include "pullspan.h"
#include "err.h"

/* PullBatch.entries and FeedEntry.record (proto/wire.proto). */
#define BATCH_ENTRIES 1
#define ENTRY_RECORD 2

/* Reads a varint at *p (< end) into *v.  0, or -1 when cut or too long. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Reads one field's key at *p; a length-delimited field's bytes go to
 * *body and *blen, any other field is skipped (*body NULL).  0 or -1. */
static int field(const uint8_t **p, const uint8_t *end, uint64_t *num, const uint8_t **body, size_t *blen)
{
    uint64_t key, v;
    *body = NULL;
    *blen = 0;
    if (varint(p, end, &key))
        return -1;
    *num = key >> 3;
    switch (key & 7) {
    case 0: return varint(p, end, &v);
    case 1: v = 8; break;
    case 5: v = 4; break;
    case 2:
        if (varint(p, end, &v))
            return -1;
        break;
    default: return -1; /* groups: not in popsync's messages */
    }
    if (v > (uint64_t)(end - *p))
        return -1;
    if ((key & 7) == 2) {
        *body = *p;
        *blen = (size_t)v;
    }
    *p += v;
    return 0;
}

/* The record of one FeedEntry's bytes. */
static int entry_record(const uint8_t *p, const uint8_t *end, ps_span_t *out)
{
    int seen = 0;
    out->p = NULL;
    out->n = 0;
    while (p < end) {
        uint64_t num;
        const uint8_t *b;
        size_t n;
        if (field(&p, end, &num, &b, &n))
            return -1;
        if (num == ENTRY_RECORD && b) {
            out->p = b;
            out->n = n;
            seen++;
        }
    }
    if (seen > 1)
        out->p = NULL; /* a decoder merges the pieces: let the caller pack it */
    return 0;
}

int ps_pull_record_spans(const uint8_t *body, size_t len, size_t n_entries, ps_span_t *spans)
{
    const uint8_t *p = body, *end = body + len;
    size_t i = 0;
    if (!body && len)
        return PS_EINVAL;
    while (p < end) {
        uint64_t num;
        const uint8_t *b;
        size_t n;
        if (field(&p, end, &num, &b, &n))
            return PS_EPROTO;
        if (num != BATCH_ENTRIES || !b)
            continue;
        if (i == n_entries || entry_record(b, b + n, &spans[i]))
            return PS_EPROTO;
        i++;
    }
    return i == n_entries ? PS_OK : PS_EPROTO;
}
