/* migrants.h - the consumer of migration cases from other districts
 * (issue 19 point 2, docs/upstream.md §7).
 *
 * Owns: the consumer thread: a durable JetStream pull consumer
 * "popsync-migrants-<district>" on popsync.*.migration (every district's
 * migrations), or with [upstream] migrants = addressed
 * "popsync-migrants-to-<district>" on popsync.*._to.<district> (the copies
 * addressed to us), which keeps the messages of other districts that
 * concern us and come on their sender's own subjects (a case sent to one of our
 * units, an answer to one of our cases, a later version of a case we
 * hold), writes them through store_migrants.h in one durable transaction
 * per batch and acknowledges them only after that commit.  A kill at any
 * moment leaves them unacknowledged: JetStream delivers them again and the
 * store finds the revisions it has (nothing lost, nothing doubled).
 *
 * Threads: ps_migrants_start/request_stop/join/stats from the loop thread
 * (join once the loop has ended); the rest on the consumer thread.
 */
#ifndef PS_MIGRANTS_H
#define PS_MIGRANTS_H

#include <stdint.h>

#include "orgunit.h"
#include "store.h"
#include "upstream.h"

typedef struct ps_migrants_stats {
    uint64_t received;   /**< messages of other districts' migrations read */
    uint64_t stored;     /**< versions written (stored as they came or merged) */
    uint64_t merged;     /**< of which merges of concurrent edits */
    uint64_t dropped;    /**< revisions we had (echoes, redeliveries) or older */
    uint64_t refused;    /**< versions the sender may not make, or bad */
    uint64_t failures;   /**< batches not written (retried) or connection trouble */
    int connected;       /**< the consumer is subscribed */
} ps_migrants_stats_t;

typedef struct ps_migrants ps_migrants_t;

/** Starts the consumer thread (o: the [upstream] options; province: the
 *  province's org-unit tree or NULL; both outlive the thread). */
int ps_migrants_start(ps_migrants_t **out, ps_store_t *st, const ps_upstream_opts_t *o,
                      const ps_orgunits_t *province, char *err, size_t errlen);
void ps_migrants_request_stop(ps_migrants_t *m);
/** Waits for the thread (bounded by the fetch wait, 1 s) and frees m. */
void ps_migrants_join(ps_migrants_t *m);
void ps_migrants_stats(ps_migrants_t *m, ps_migrants_stats_t *out);

#endif
