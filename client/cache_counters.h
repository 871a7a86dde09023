/* cache_counters.h - part of the cache (cache.c; its unit test): the
 * report counters a cache keeps.
 *
 * Owns: the in-memory table of counter changes a write transaction
 * gathers (common/counters.c says what each record version adds), and the
 * format of one month's counters as the cache stores them:
 *   "counters"  key: month (4, BE; 0 holds stocks such as persons_total)
 *               value (sealed by cache.c): entries sorted by unit, then
 *               metric, each  unit (12) | metric length (1) | metric |
 *               value (8, BE, two's complement); zero counters are left out.
 * One sealed value per month rather than one per counter, so the file shows
 * neither which units nor which indicators had activity.
 *
 * cache.c adds the old version of every record it writes negatively and
 * the new one positively (ps_ctab_record) and merges the table into the
 * stored months (ps_cblob_merge) in the same write transaction, so the
 * counters always equal a recount of what the cache holds.  Pure: no LMDB,
 * no keys.
 */
#ifndef PS_CACHE_COUNTERS_H
#define PS_CACHE_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "records.pb-c.h"

#define PS_COUNTERS_VERSION 1

typedef struct ps_cdelta {
    uint32_t month;
    char unit[13];
    char metric[32];
    int64_t value;
} ps_cdelta_t;

/** Counter changes, in the order first added until ps_ctab_compact sorts
 *  them; a change to a key already in the table adds to its entry (found
 *  by a hash of the key in slot[], nslot a power of two or 0), so a batch
 *  of a thousand records sorts its distinct counters only.  Zero-initialise. */
typedef struct ps_ctab {
    ps_cdelta_t *v;
    size_t n, cap;
    uint32_t *slot; /* index + 1 into v, 0: empty */
    size_t nslot;
} ps_ctab_t;

/** Adds sign (+1 or -1) times r's contributions.  PS_OK or PS_ENOMEM. */
int ps_ctab_record(ps_ctab_t *t, const Popsync__Record *r, int sign);
/** Adds one change.  PS_OK or PS_ENOMEM. */
int ps_ctab_add(ps_ctab_t *t, uint32_t month, const char *unit, const char *metric, int64_t value);
/** Sorts by month, unit, metric; merges equal keys; drops zero changes. */
void ps_ctab_compact(ps_ctab_t *t);
/** Empties the table (keeps its memory). */
void ps_ctab_clear(ps_ctab_t *t);
void ps_ctab_free(ps_ctab_t *t);

/**
 * One stored month (blob, len; len 0 for none) with the compacted changes
 * d[0..nd) of that month applied, into out (reset first; empty when every
 * counter is zero).  PS_OK, PS_EINVAL (a damaged blob) or PS_ENOMEM.
 */
int ps_cblob_merge(const uint8_t *blob, size_t len, const ps_cdelta_t *d, size_t nd, ps_buf_t *out);

/** Calls fn for every counter of a stored month; stops at a non-zero
 *  return (which it returns).  PS_EINVAL for a damaged blob. */
int ps_cblob_foreach(const uint8_t *blob, size_t len,
                     int (*fn)(const char *unit, const char *metric, int64_t value, void *arg), void *arg);

#endif
