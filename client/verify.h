/* verify.h - compare the cache with the server and repair what differs.
 *
 * Owns: `popsync verify`'s requests: VerifyRequest -> VerifyDigests (a
 * digest and a count per bucket of record ids), VerifyBucketRequest ->
 * VerifyBucketList for the buckets that differ, then a fetch
 * (client/fetch.c) of the records whose revision differs or that the
 * server does not show us (dropped from the cache).  Runs after a sync on
 * the same link.
 *
 * Callers: `popsync verify` (cmd_conflicts.c) and tests/tools/ps_simsync.c.
 */
#ifndef PS_VERIFY_H
#define PS_VERIFY_H

#include <stdint.h>

#include "link.h"

typedef struct ps_verify_stats {
    uint64_t buckets_differed; /**< of PS_VERIFY_BUCKETS */
    uint64_t repaired;         /**< records fetched */
    uint64_t dropped;          /**< records the server no longer shows us */
} ps_verify_stats_t;

typedef void (*ps_verify_done_fn)(ps_link_t *l, int status, void *arg);

/** Starts a verify on l; stats is zeroed now; done (may be NULL) runs once
 *  at the end.  PS_OK or an error when it cannot start. */
int ps_verify_start(ps_link_t *l, ps_verify_stats_t *stats, ps_verify_done_fn done, void *arg);

#endif
