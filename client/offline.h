/* offline.h - `report monthly|quality` and `query` from the local cache.
 *
 * Owns: answering a ReportRequest or a Query (proto/wire.proto) from what
 * the cache holds, with the answer the server would give for the same
 * records: the same messages, so client/report.c prints them with the one
 * formatter (docs/queries.md §9).  The monthly report reads the report
 * counters the cache keeps (cache.h "counters"), never the records; the
 * quality report and queries scan the records.  The cache's identity
 * (role, org unit) and org-unit tree decide the scope, with the rules of
 * common/policy.h that the server applies.  What the server alone knows is
 * left out: the monthly close (state, frozen values, corrections).
 * Caller: client/report.c only.
 */
#ifndef PS_OFFLINE_H
#define PS_OFFLINE_H

#include <stddef.h>

#include "cache.h"
#include "wire.pb-c.h"

/**
 * The monthly or quality report (req->report) from the cache, into *out
 * (caller frees with popsync__report_result__free_unpacked).  PS_OK,
 * PS_EINVAL (err says why), PS_EACCES (a viewer's or collector's cache:
 * err says why), PS_ENOMEM or a cache error.
 */
int ps_offline_report(ps_cache_t *c, const Popsync__ReportRequest *req, Popsync__ReportResult **out, char *err,
                      size_t errlen);

/**
 * A query from the cache: on_result gets the answer as the server would
 * give it: the groups in one QueryResult; listed records one per call, in
 * id order, then an empty QueryResult with done set.  max_records caps the
 * records of a --list (0: all).  PS_OK, PS_EINVAL (an unknown field: err
 * says which), PS_EACCES (as for reports), PS_ETOOBIG, PS_ENOMEM or a cache
 * error.
 */
int ps_offline_query(ps_cache_t *c, const Popsync__Query *q, size_t max_records,
                     void (*on_result)(const Popsync__QueryResult *res, void *arg), void *arg, char *err,
                     size_t errlen);

/**
 * The one line that stamps an answer from the cache: "as of the last sync,
 * YYYY-MM-DD HH:MM ZONE" in the district's zone (zh: Chinese), with the
 * local changes not yet sent and, for a cache that is not the district's,
 * the unit its scope covers.
 */
void ps_offline_stamp(ps_cache_t *c, int zh, char *buf, size_t len);

#endif
