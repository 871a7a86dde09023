/* store_upstream.h - what the upstream stream (issue 19) needs from the store.
 *
 * Owns: the meta key "upstream_published" (the last feed seq JetStream
 * acknowledged), the read of the feed in order for the publisher, the dump
 * of the `nodes` database published as node marks, and the writes of
 * `popsyncd rebuild --from-upstream` (records, versions, feed, counters,
 * nodes and head of an empty store, from the stream).  docs/upstream.md.
 *
 * Callers: server/upstream.c (its own thread) and the rebuild subcommand.
 * Synchronous, like store.h: never call these on the loop thread.  The
 * read functions use their own read transaction; the write functions take
 * LMDB's single writer lock like a group commit does.
 */
#ifndef PS_STORE_UPSTREAM_H
#define PS_STORE_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

/** Districts a shared case's version is addressed to, at most. */
#define PS_FEED_MAX_TO 4

/** One feed entry as the publisher sees it. */
typedef struct ps_feed_item {
    uint64_t seq;
    int exit;              /**< a scope exit: packed is id(16)|0x01|unit(12), no record */
    int kind;              /**< Popsync__Kind (0 for an exit) */
    int deleted;           /**< tombstone */
    char unit[13];         /**< the record's org unit (for an exit: the unit it left) */
    char other[13];        /**< a migration's other place, or "" */
    uint64_t hlc_ms;       /**< when the change was accepted (its HLC's milliseconds) */
    const uint8_t *packed; /**< the stored packed Record (or the exit value); valid during the callback */
    size_t len;
    /* A live or deleted migration with an other place (docs/upstream.md §7): */
    uint8_t id[16];        /**< the record's id */
    char lineage[2048];    /**< the revisions its version contains (Popsync-Lineage) */
    uint8_t migrant[1024]; /**< its packed MigrantSummary (Popsync-Migrant) ... */
    size_t migrant_len;    /**< ... 0: none (the person is not here) */
    char to[PS_FEED_MAX_TO][13]; /**< the districts it is addressed to (docs/upstream.md §7), ours included */
    size_t nto;
} ps_feed_item_t;

typedef int (*ps_feed_fn)(const ps_feed_item_t *it, void *arg);

/** The last seq published upstream and acknowledged (0: none). */
int ps_store_upstream_mark(ps_store_t *st, uint64_t *seq);
/** Durably records that every feed entry up to seq is in the stream. */
int ps_store_upstream_set_mark(ps_store_t *st, uint64_t seq);

/**
 * In one read transaction: calls fn for each feed entry with seq > after,
 * in order, at most max.  *head gets that snapshot's head; nodes (if not
 * NULL) gets the dump of the `nodes` database of the same snapshot (see
 * ps_store_nodes_dump).  A non-zero return of fn stops the walk and is
 * returned.
 */
int ps_store_feed_read(ps_store_t *st, uint64_t after, size_t max, ps_feed_fn fn, void *arg, uint64_t *head,
                       ps_buf_t *nodes);

/** Feed entries with seq > after and the accept time of the first of them
 *  (0 when none): the upstream lag.  A scan: call it seconds apart. */
int ps_store_feed_behind(ps_store_t *st, uint64_t after, uint64_t *entries, uint64_t *oldest_ms);

/* --- rebuild (`popsyncd rebuild --from-upstream`) ---------------------------- */

/** One stream message for the rebuild: a record or exit at its feed seq. */
typedef struct ps_rebuild_item {
    uint64_t seq;
    int exit;
    const uint8_t *data;
    size_t len;
    const char *lineage; /**< its Popsync-Lineage header, or NULL (docs/upstream.md §6) */
} ps_rebuild_item_t;

/**
 * Writes items into the store in one durable transaction: a record replaces
 * the stored one only when its seq is higher (a resend never goes back),
 * with its versions entry, feed entry (the old one dropped, as a commit
 * does) and counters; an exit entry is written at its seq; a migration's
 * lineage is kept for ps_store_rebuild_foreign (store_migrants.h).  The head and the
 * upstream mark become the highest seq seen.  Bad payloads are counted in
 * *bad and skipped.
 */
int ps_store_rebuild_put(ps_store_t *st, const ps_rebuild_item_t *items, size_t n, size_t *bad);
/** Moves the head on by advance (as `popsyncd restore` does) and the
 *  upstream mark to it: nothing lies between.  *head gets the new head. */
int ps_store_rebuild_advance(ps_store_t *st, uint64_t advance, uint64_t *head);
/** Replaces the `nodes` database with a dump made by ps_store_feed_read. */
int ps_store_rebuild_nodes(ps_store_t *st, const uint8_t *dump, size_t len);

#endif
