/* sync.h - push then pull: one sync of the cache over a link.
 *
 * Owns: the sync requests of the protocol (docs/protocol.md, docs/sync.md):
 * Push -> PushResult until the outbox is empty, Pull -> PullBatch until the
 * server has no more, then a re-read (client/fetch.c) of the records the
 * server refused, kept as conflicts or merged.  Each push answer and each
 * pulled or fetched batch is applied to the cache in its own transaction,
 * so a sync cut at any moment leaves the cache consistent and the next run
 * simply continues.  Pipelined (docs/sync.md §8a): up to the window agreed
 * in Welcome, several Pushes (each the outbox's changes after the previous
 * one's) and several Pulls (each going on where the one before it ends)
 * are in flight at once; their answers come in the order sent and are
 * applied in that order, so the outbox and the cursor move on only over
 * answers applied durably, as with one request at a time (the window of a
 * server older than pipelining).
 *
 * Callers: `popsync sync` (cmd_sync.c), `conflicts resolve` and `verify`
 * (cmd_conflicts.c), `popsync ui` (ui_town_sync.c), the benchmark and
 * tests/tools/ps_simsync.c; later upward sync, which may hold a link on its
 * own loop.
 */
#ifndef PS_SYNC_H
#define PS_SYNC_H

#include <stdint.h>

#include "cache.h"
#include "link.h"
#include "rq.h"

typedef struct ps_sync_stats {
    uint64_t accepted, duplicate, rejected; /**< push outcomes */
    uint64_t pulled;                        /**< records received */
    uint64_t cursor, head;                  /**< where we are, where the server is */
    uint64_t conflicts;                     /**< changes kept whole as conflicts */
    uint64_t merged_conflicts;              /**< changes applied that also raised a conflict */
    uint64_t conflicts_lost;                /**< open conflicts in which an edit of this cache lost (Welcome) */
    uint64_t bytes_in, bytes_out;           /**< ciphertext on the wire (filled by the caller at close) */
    uint64_t refetched;                     /**< refused records re-read from the server */
    int64_t clock_skew_ms;                  /**< our clock minus the server's at Welcome, when beyond
                                                 PS_CLOCK_TOLERANCE_MS (else 0) */
    int64_t push_clock_skew_ms;             /**< PushResult.clock_skew_ms: the server moved our changes' times */
    uint64_t retimed;                       /**< accepted changes whose time the server moved */
    uint32_t max_in_flight;                 /**< most sync requests (Push, Pull) in flight at once */
    int welcomed;                           /**< the server's Welcome came: a failure without it means the
                                                 server was not reached (report/query fall back to the cache) */
} ps_sync_stats_t;

#define PS_SYNC_PROGRESS 0x1u       /**< draw a progress line on stderr */
#define PS_SYNC_PUSH_ONLY 0x2u      /**< stop after the outbox is pushed (benchmarks) */
#define PS_SYNC_NO_COMPRESSION 0x4u /**< ps_sync_run: do not offer zstd */

/** Where a sync is, for a progress display: told at the start and after
 *  every Push answered and PullBatch applied. */
typedef struct ps_sync_progress {
    uint64_t pushed, push_total; /**< changes answered; the outbox at the start */
    uint64_t pulled, pull_total; /**< feed positions read since the start; the server's head (as last told)
                                      minus the cursor at the start */
} ps_sync_progress_t;
typedef void (*ps_sync_progress_fn)(const ps_sync_progress_t *p, void *arg);

/** The end of an asynchronous sync: PS_OK or the session's failure. */
typedef void (*ps_sync_done_fn)(ps_link_t *l, int status, void *arg);

/**
 * Starts a sync on l (once the link is ready): push_batch changes per Push
 * at most (0: 1000; never above the server's max_batch).  stats is zeroed
 * now and filled as the sync goes; done (may be NULL) runs once at the end.
 * PS_OK, or an error when it cannot start (done is then not called).
 */
int ps_sync_start(ps_link_t *l, uint32_t push_batch, unsigned flags, ps_sync_stats_t *stats, ps_sync_done_fn done,
                  void *arg);

/** Blocking: ps_sync_start and run the link until the sync is done. */
int ps_sync_on(ps_link_t *l, uint32_t push_batch, unsigned flags, ps_sync_stats_t *stats);

/** After a sync (rc, its failure's text err): records when it was tried
 *  and why it failed for `popsync status`, and when it completed. */
void ps_sync_record(ps_cache_t *c, int rc, const char *err);

/**
 * The blocking one-shot: a link, a sync, the close, ps_sync_record.
 * timeout_ms as ps_link_open; test NULL outside the test suite.  Returns
 * PS_OK only when both the push and the pull completed; otherwise an error
 * with a reason in err (the work done so far is kept).
 */
int ps_sync_run(ps_cache_t *c, uint32_t push_batch, unsigned flags, uint64_t timeout_ms, const ps_link_test_t *test,
                ps_sync_stats_t *stats, char *err, size_t errlen);

/**
 * `popsync sync` and the sync of `popsync ui`, blocking: push, pull, then
 * the open conflicts in our scope (to fn, may be NULL: for the count
 * `popsync status` shows), on one link; ps_sync_record.  As ps_sync_run.
 */
int ps_sync_with_conflicts(ps_cache_t *c, uint32_t push_batch, unsigned flags, uint64_t timeout_ms,
                           ps_sync_stats_t *stats, ps_conflicts_fn fn, void *arg, char *err, size_t errlen);

/** ps_sync_with_conflicts, telling progress_fn (may be NULL) after every step
 *  (the sync button of `popsync ui` shows it as a percentage). */
int ps_sync_with_progress(ps_cache_t *c, uint32_t push_batch, unsigned flags, uint64_t timeout_ms,
                          ps_sync_stats_t *stats, ps_conflicts_fn fn, void *arg, ps_sync_progress_fn progress_fn,
                          void *progress_arg, char *err, size_t errlen);

#endif
