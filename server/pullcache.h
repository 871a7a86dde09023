/* pullcache.h - PullBatch frames kept for the next reader of the same range.
 *
 * Owns: a bounded cache of whole PullBatch frame bodies (compressed when
 * the reader agreed to zstd), keyed by what decides the batch's bytes: the
 * reader's scope (an admin, or a township/collector's org unit: the access
 * policy reads nothing else of the certificate), the cursor, the batch
 * limits, compression and the store's head.  The store's pull is a
 * function of its snapshot, and every write that can change a pull moves
 * the head (store_feed.c reads the head in the pull's transaction), so an
 * entry made at head H is exactly what a fresh read at H gives; when the
 * head moves, every entry is dropped.  Only the request id differs from
 * one reader to the next: it is in the frame header, written per reply.
 *
 * Thread-safe (one mutex): called by the read pool's pull jobs
 * (server/sync.c work_pull).  Never on the loop thread.
 */
#ifndef PS_PULLCACHE_H
#define PS_PULLCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"
#include "tls.h"

typedef struct ps_pullcache ps_pullcache_t;

/** A cache holding at most max_bytes of frame bodies (0: *out = NULL, a
 *  server without the cache). */
int ps_pullcache_new(ps_pullcache_t **out, size_t max_bytes);
void ps_pullcache_free(ps_pullcache_t *pc);

/** What the cache has done since it was made (metrics, tests). */
typedef struct ps_pullcache_stats {
    uint64_t hits, misses, bytes, entries;
} ps_pullcache_stats_t;
void ps_pullcache_stats(ps_pullcache_t *pc, ps_pullcache_stats_t *out);

/**
 * Appends to out the PullBatch frame answering a Pull of peer from cursor
 * (limits max_records, max_bytes; zstd body when compress), from the
 * cache when it holds one made at the current head, else read from st
 * (and, for an admin, township or collector, kept).  *end gets the batch's
 * cursor, more and head.  pc may be NULL (no cache).  The record versions
 * whose seq is one of skip[0..nskip) (ascending: the peer holds them,
 * Pull.skip_own) are left out; such a batch is neither taken from the
 * cache nor kept.
 */
int ps_pull_cached(ps_pullcache_t *pc, ps_store_t *st, const ps_peer_t *peer, uint64_t cursor, uint32_t max_records,
                   uint32_t max_bytes, const uint64_t *skip, size_t nskip, int compress, uint32_t request_id,
                   ps_buf_t *out, ps_pull_end_t *end);

#endif
