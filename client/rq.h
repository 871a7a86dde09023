/* rq.h - the one-answer requests: conflicts, reports, the monthly close,
 * node status.
 *
 * Owns: ConflictList -> ConflictListResult (`popsync conflicts`, and the
 * count `popsync sync` keeps for `popsync status`), ReportRequest ->
 * ReportResult (`popsync report monthly|quality`), CloseRequest ->
 * CloseResult (`popsync report submit|approve|return|status`: one request
 * per township, one after another) and
 * NodeStatusRequest -> NodeStatusResult (`popsync status --all`) and
 * HistoryRequest -> HistoryResult (`popsync history`, the record page).  Each
 * answer goes to the caller's function, valid during the call only; what
 * it means and how it is printed is the caller's.  A query (several frames,
 * pages) is rq_query.h's.
 *
 * Callers: cmd_sync.c, cmd_conflicts.c, report.c, history.c, tests/tools/ps_simsync.c.
 */
#ifndef PS_RQ_H
#define PS_RQ_H

#include "session.h"

typedef void (*ps_conflicts_fn)(const Popsync__ConflictListResult *res, void *arg);
typedef void (*ps_report_fn)(const Popsync__ReportResult *res, void *arg);
typedef void (*ps_close_fn)(const Popsync__CloseResult *res, void *arg);
typedef void (*ps_nodes_fn)(const Popsync__NodeStatusResult *res, void *arg);
typedef void (*ps_history_fn)(const Popsync__HistoryResult *res, void *arg);

/** Each: makes the request on s; PS_OK or an error when it cannot be made. */
int ps_rq_conflicts(ps_session_t *s, int include_resolved, ps_conflicts_fn fn, void *arg);
int ps_rq_report(ps_session_t *s, const Popsync__ReportRequest *rq, ps_report_fn fn, void *arg);
int ps_rq_close(ps_session_t *s, const Popsync__CloseRequest *rq, ps_close_fn fn, void *arg);
int ps_rq_node_status(ps_session_t *s, ps_nodes_fn fn, void *arg);
/** The versions of record id (16 bytes), at most max of the latest (0: the server's 100). */
int ps_rq_history(ps_session_t *s, const uint8_t *id, uint32_t max, ps_history_fn fn, void *arg);
/** The CloseRequests reqs[0..n) one after another (the next goes out once
 *  an answer came: the close of one township may depend on the one
 *  before); each answer to fn.  reqs must outlive the answers. */
int ps_rq_close_each(ps_session_t *s, Popsync__CloseRequest *const *reqs, size_t n, ps_close_fn fn, void *arg);

#endif
