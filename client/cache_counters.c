/* cache_counters.c - the report counters a cache keeps (see cache_counters.h). */
#include "cache_counters.h"

#include "bytes.h"
#include "counters.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

/* Above this many changes the table is compacted as it grows, so building
 * the counters of a large cache needs memory for its distinct counters, not
 * for every record's contributions. */
#define COMPACT_AT 65536

static int cmp_key(const ps_cdelta_t *a, const ps_cdelta_t *b)
{
    int c;
    if (a->month != b->month)
        return a->month < b->month ? -1 : 1;
    if ((c = strcmp(a->unit, b->unit)))
        return c;
    return strcmp(a->metric, b->metric);
}

static uint32_t key_hash(uint32_t month, const char *unit, const char *metric)
{
    uint32_t h = 2166136261u ^ month;
    h *= 16777619u;
    for (const char *p = unit; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ 0xff) * 16777619u; /* unit and metric apart */
    for (const char *p = metric; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

/* The slot of v[i]'s key: its own, or the empty one it would take. */
static uint32_t *slot_of(const ps_ctab_t *t, const ps_cdelta_t *d)
{
    size_t mask = t->nslot - 1, i = key_hash(d->month, d->unit, d->metric) & mask;
    while (t->slot[i] && cmp_key(&t->v[t->slot[i] - 1], d) != 0)
        i = (i + 1) & mask;
    return &t->slot[i];
}

/* Rebuilds the slots for v[0..n), with room for cap entries at half load. */
static int reindex(ps_ctab_t *t)
{
    size_t want = 64;
    while (want < t->cap * 2)
        want *= 2;
    if (want != t->nslot) {
        uint32_t *s = realloc(t->slot, want * sizeof(*s));
        if (!s)
            return PS_ENOMEM;
        t->slot = s;
        t->nslot = want;
    }
    memset(t->slot, 0, t->nslot * sizeof(*t->slot));
    for (size_t i = 0; i < t->n; i++)
        *slot_of(t, &t->v[i]) = (uint32_t)(i + 1);
    return PS_OK;
}

int ps_ctab_add(ps_ctab_t *t, uint32_t month, const char *unit, const char *metric, int64_t value)
{
    ps_cdelta_t key, *d;
    uint32_t *s;
    memset(&key, 0, sizeof(key));
    key.month = month;
    strncpy(key.unit, unit, sizeof(key.unit) - 1);
    strncpy(key.metric, metric, sizeof(key.metric) - 1);
    if (t->nslot && *(s = slot_of(t, &key))) {
        t->v[*s - 1].value += value;
        return PS_OK;
    }
    if (t->n == t->cap) {
        size_t ncap;
        if (t->n >= COMPACT_AT) {
            ps_ctab_compact(t);
            if (t->n < t->cap / 2)
                goto room;
        }
        ncap = t->cap ? t->cap * 2 : 64;
        d = realloc(t->v, ncap * sizeof(*d));
        if (!d)
            return PS_ENOMEM;
        t->v = d;
        t->cap = ncap;
    }
room:
    if (t->nslot < t->cap * 2) {
        int rc = reindex(t);
        if (rc)
            return rc;
    }
    key.value = value;
    t->v[t->n++] = key;
    *slot_of(t, &key) = (uint32_t)t->n;
    return PS_OK;
}

int ps_ctab_record(ps_ctab_t *t, const Popsync__Record *r, int sign)
{
    ps_contrib_t cs[PS_CONTRIB_MAX];
    size_t n = r ? ps_counters_contrib(r, cs, PS_CONTRIB_MAX) : 0;
    int rc = PS_OK;
    for (size_t i = 0; rc == PS_OK && i < n; i++)
        rc = ps_ctab_add(t, cs[i].month, cs[i].unit, cs[i].metric, sign * cs[i].value);
    return rc;
}

static int cmp_delta(const void *a, const void *b)
{
    return cmp_key(a, b);
}

void ps_ctab_compact(ps_ctab_t *t)
{
    size_t out = 0;
    if (t->n == 0)
        return;
    qsort(t->v, t->n, sizeof(*t->v), cmp_delta);
    for (size_t i = 0; i < t->n; i++) {
        if (out > 0 && cmp_key(&t->v[out - 1], &t->v[i]) == 0) {
            t->v[out - 1].value += t->v[i].value;
            continue;
        }
        if (out > 0 && t->v[out - 1].value == 0)
            out--;
        t->v[out++] = t->v[i];
    }
    if (out > 0 && t->v[out - 1].value == 0)
        out--;
    t->n = out;
    /* Entries moved: the slots are rebuilt (they exist once cap does). */
    if (t->nslot)
        (void)reindex(t); /* same cap, same nslot: no allocation, cannot fail */
}

void ps_ctab_clear(ps_ctab_t *t)
{
    t->n = 0;
    if (t->nslot)
        memset(t->slot, 0, t->nslot * sizeof(*t->slot));
}

void ps_ctab_free(ps_ctab_t *t)
{
    free(t->v);
    free(t->slot);
    memset(t, 0, sizeof(*t));
}

/* ---- one stored month ------------------------------------------------------ */

typedef struct centry {
    char unit[13];
    char metric[32];
    int64_t value;
} centry_t;

/* Reads the entry at *off; PS_EINVAL when the blob is damaged. */
static int entry_read(const uint8_t *b, size_t len, size_t *off, centry_t *e)
{
    size_t ml;
    if (len - *off < 13)
        return PS_EINVAL;
    memcpy(e->unit, b + *off, 12);
    e->unit[12] = '\0';
    ml = b[*off + 12];
    if (ml == 0 || ml >= sizeof(e->metric) || len - *off - 13 < ml + 8)
        return PS_EINVAL;
    memcpy(e->metric, b + *off + 13, ml);
    e->metric[ml] = '\0';
    e->value = (int64_t)ps_be64get(b + *off + 13 + ml);
    *off += 13 + ml + 8;
    return PS_OK;
}

static int entry_write(ps_buf_t *out, const char *unit, const char *metric, int64_t value)
{
    size_t ml = strlen(metric), ul = strlen(unit);
    uint8_t *p;
    int rc;
    if (value == 0)
        return PS_OK;
    if (ml == 0 || ml > 31)
        return PS_EINVAL;
    if ((rc = ps_buf_reserve(out, 13 + ml + 8)))
        return rc;
    p = ps_buf_tail(out);
    memset(p, 0, 12);
    memcpy(p, unit, ul > 12 ? 12 : ul);
    p[12] = (uint8_t)ml;
    memcpy(p + 13, metric, ml);
    ps_be64put(p + 13 + ml, (uint64_t)value);
    ps_buf_commit(out, 13 + ml + 8);
    return PS_OK;
}

static int cmp_entry(const centry_t *e, const ps_cdelta_t *d)
{
    int c = strcmp(e->unit, d->unit);
    return c ? c : strcmp(e->metric, d->metric);
}

int ps_cblob_merge(const uint8_t *blob, size_t len, const ps_cdelta_t *d, size_t nd, ps_buf_t *out)
{
    size_t off = 0, j = 0;
    centry_t e;
    int have = 0, rc = PS_OK;

    ps_buf_reset(out);
    /* A merge of two sorted lists: the stored entries and the changes. */
    while (rc == PS_OK) {
        int c;
        if (!have && off < len) {
            if ((rc = entry_read(blob, len, &off, &e)))
                break;
            have = 1;
        }
        if (!have && j >= nd)
            break;
        c = !have ? 1 : j >= nd ? -1 : cmp_entry(&e, &d[j]);
        if (c < 0) {
            rc = entry_write(out, e.unit, e.metric, e.value);
            have = 0;
        } else if (c > 0) {
            rc = entry_write(out, d[j].unit, d[j].metric, d[j].value);
            j++;
        } else {
            rc = entry_write(out, e.unit, e.metric, e.value + d[j].value);
            have = 0;
            j++;
        }
    }
    return rc;
}

int ps_cblob_foreach(const uint8_t *blob, size_t len,
                     int (*fn)(const char *unit, const char *metric, int64_t value, void *arg), void *arg)
{
    size_t off = 0;
    while (off < len) {
        centry_t e;
        int rc;
        if ((rc = entry_read(blob, len, &off, &e)))
            return rc;
        if ((rc = fn(e.unit, e.metric, e.value, arg)))
            return rc;
    }
    return PS_OK;
}
