/* counters.h - what each record adds to the report counters.
 *
 * Owns: the rule that turns one record version into counter increments
 * (month, unit, indicator, amount), and the deadline rule that reads the
 * delay buckets back.  Pure: the server's store and the client's cache
 * (client/cache_counters.c) apply the increments of the old version
 * negatively and of the new version positively in the same write
 * transaction, so the counters always equal a full recount
 * (docs/queries.md defines each indicator).  Callers: server/store*.c,
 * client/cache*.c, client/offline.c.
 *
 * Months are YYYYMM numbers; month 0 holds stocks (persons_total).
 * Migration delays are kept as day buckets (sub_u_07: an urgent case
 * submitted 7 days after its start; fb_n_61: feedback 61 or more days after
 * submission, normal case), so a report may apply any deadline.
 */
#ifndef PS_COUNTERS_H
#define PS_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "records.pb-c.h"

#define PS_CONTRIB_MAX 12
#define PS_DELAY_BUCKETS 62 /* 0..60 days, 61 = later */

typedef struct ps_contrib {
    uint32_t month;
    char unit[13];
    char metric[32];
    int64_t value;
} ps_contrib_t;

/** The indicators of the monthly report, in the report's order
 *  (docs/queries.md §3.2): the district's store, the client's offline
 *  report and the province warehouse all use this one list. */
#define PS_INDICATORS 20
extern const char *const ps_indicators[PS_INDICATORS];
/** The index of an indicator name in ps_indicators, or -1. */
int ps_indicator_index(const char *name);

/** Fills out with the record's contributions; returns how many (0 for tombstones). */
size_t ps_counters_contrib(const Popsync__Record *r, ps_contrib_t *out, size_t max);

/**
 * Which on-time indicator a delay-bucket counter (sub_u_07, fb_n_61, ...)
 * adds to under deadlines of dl_urgent / dl_normal days: 1 for
 * submitted_on_time, 2 for feedback_on_time, 0 for none (too late), -1 when
 * metric is not a delay bucket.  Bucket 61 means "later than 60 days": on
 * time only for a deadline above 60.
 */
int ps_counters_on_time(const char *metric, uint32_t dl_urgent, uint32_t dl_normal);

/** Days from date a to date b (YYYY-MM-DD), or INT32_MIN if either is not a date. */
int32_t ps_days_between(const char *a, const char *b);
/** YYYYMM of a YYYY-MM-DD date or YYYY-MM month, or 0. */
uint32_t ps_month_of(const char *date);

#endif
