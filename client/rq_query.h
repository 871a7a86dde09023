/* rq_query.h - a query asked of the server (`popsync query`).
 *
 * Owns: Query -> QueryResult.  An answer is several QueryResult frames
 * with one request id, the last with done set; in list mode a page that
 * ends with next_after_id is asked again from there, one page at a time,
 * until the last page or max_records records came.
 *
 * Callers: `popsync query` (client/report.c) on a link it opens.
 */
#ifndef PS_RQ_QUERY_H
#define PS_RQ_QUERY_H

#include <stddef.h>

#include "session.h"

/** Each QueryResult frame of the answer (valid during the call only). */
typedef void (*ps_query_frame_fn)(const Popsync__QueryResult *res, void *arg);

/**
 * Asks q on s (copied: only after_id changes from page to page); every
 * frame goes to fn.  max_records (list mode): stop asking for pages once
 * this many records came (0: all).  PS_OK or an error when the request
 * cannot be made.
 */
int ps_rq_query(ps_session_t *s, const Popsync__Query *q, size_t max_records, ps_query_frame_fn fn, void *arg);

#endif
