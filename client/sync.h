/* sync.h - one sync session of the client against popsyncd.
 *
 * Owns: the client side of the protocol (docs/protocol.md): connect, TLS
 * handshake, Hello/Welcome, push the outbox in batches until it is empty,
 * then pull until the server says there is no more.  Each push answer and
 * each pulled batch is applied to the cache in its own transaction, so a
 * session cut at any moment leaves the cache consistent and the next run
 * simply continues.
 */
#ifndef PS_SYNC_H
#define PS_SYNC_H

#include <stdint.h>

#include "cache.h"
#include "wire.pb-c.h"

typedef struct ps_sync_opts {
    int progress;            /**< draw a progress line on stderr */
    uint32_t push_batch;     /**< changes per Push (0: 1000; never above the server's max_batch) */
    uint64_t timeout_ms;     /**< give up when the server is silent this long (0: 60000) */
    int no_sync;             /**< skip push and pull (with list_conflicts) */
    int verify;              /**< after the sync, compare digests and repair what differs */
    int push_only;           /**< stop after the outbox is pushed (benchmarks) */
    int no_compression;      /**< do not offer zstd (also: POPSYNC_NO_COMPRESSION=1) */
    int list_conflicts;      /**< ask for the conflicts in our scope and pass them to on_conflicts */
    int include_resolved;    /**< with list_conflicts */
    /** Receives the ConflictListResult (valid during the call only). */
    void (*on_conflicts)(const Popsync__ConflictListResult *res, void *arg);
    void *arg;
    uint64_t cut_after_frames; /**< tests: drop the connection after this many frames received (0: never) */
    int legacy_clock;        /**< tests: act as a cache before issue 21: no Push.clock_ms, no clock correction */
    /* Queries, reports and the monthly close (issue 6): asked after
     * everything above, usually in a no_sync session, in this order. */
    /** Run this Query.  Group mode: every QueryResult frame of the answer
     *  (the last has done set) goes to on_query.  List mode: each page's
     *  frames go to on_query, and while a page ends with next_after_id the
     *  query is sent again from there, until the last page. */
    const Popsync__Query *query;
    void (*on_query)(const Popsync__QueryResult *res, void *arg);
    /** List mode: stop asking for pages once this many records came (0: all). */
    size_t query_max_records;
    /** Ask for this report; the ReportResult goes to on_report. */
    const Popsync__ReportRequest *report;
    void (*on_report)(const Popsync__ReportResult *res, void *arg);
    /** Send these CloseRequests one after another; each CloseResult goes to on_close_result. */
    Popsync__CloseRequest *const *close_reqs;
    size_t n_close;
    void (*on_close_result)(const Popsync__CloseResult *res, void *arg);
    /** Issue 9, `popsync status --all` (admin): ask for every node's sync
     *  status, last of all; the NodeStatusResult goes to on_node_status. */
    int node_status;
    void (*on_node_status)(const Popsync__NodeStatusResult *res, void *arg);
} ps_sync_opts_t;

typedef struct ps_sync_stats {
    uint64_t accepted, duplicate, rejected; /**< push outcomes */
    uint64_t pulled;                        /**< records received */
    uint64_t cursor, head;                  /**< where we are, where the server is */
    uint64_t conflicts;                     /**< changes kept whole as conflicts */
    uint64_t merged_conflicts;              /**< changes applied that also raised a conflict */
    uint64_t conflicts_lost;                /**< open conflicts in which an edit of this cache lost (Welcome) */
    uint64_t bytes_in, bytes_out;           /**< ciphertext on the wire */
    uint64_t refetched;                     /**< refused records re-read from the server */
    int verified;                           /**< verify ran */
    uint64_t buckets_differed, repaired, dropped; /**< verify: what differed and what was fixed */
    int64_t clock_skew_ms;                  /**< our clock minus the server's at Welcome, when beyond
                                                 PS_CLOCK_TOLERANCE_MS (else 0) */
    int64_t push_clock_skew_ms;             /**< PushResult.clock_skew_ms: the server moved our changes' times */
    uint64_t retimed;                       /**< accepted changes whose time the server moved */
    int welcomed;                           /**< the server's Welcome came: a failure without it means the
                                                 server was not reached (report/query fall back to the cache) */
} ps_sync_stats_t;

/**
 * Runs one sync to completion on a private loop.  Returns PS_OK only when
 * both the push and the pull completed; otherwise an error with a reason in
 * err (the work done so far is kept).
 */
int ps_sync_run(ps_cache_t *cache, const ps_sync_opts_t *opts, ps_sync_stats_t *stats, char *err,
                size_t errlen);

#endif
