/* store_migrants.h - the store side of migrants between districts
 * (issue 19 point 2, docs/upstream.md §7).
 *
 * Owns: the `foreign` database (the migrant summaries other districts sent
 * with their cases, and the foreign versions merged into ours), the
 * lineage of a shared case (which revisions its current version contains)
 * and the write of a version received from another district: stored as the
 * exact revision it carries (gen, hlc, node unchanged) when it descends
 * from ours, merged field by field (server/merge.c, in an order both
 * districts share, so both reach the same version and revision) when the
 * two districts edited it concurrently, dropped when we have it already
 * (no echo), refused when the sender may not make that change
 * (common/policy.h ps_policy_district_may_set) or the record is bad
 * (common/validate.h, with the foreign-case rule).
 *
 * Callers: server/migrants.c (the consumer thread) and the unit tests.
 * Synchronous: one durable write transaction per call, taking the head
 * inside it (the group commit does the same), never on the loop thread.
 */
#ifndef PS_STORE_MIGRANTS_H
#define PS_STORE_MIGRANTS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/** Bytes of a packed MigrantSummary at most (store_int.h PS_MIGRANT_SUMMARY_MAX). */
#define PS_MIGRANT_SUMMARY_BYTES 1024

/** Bytes of a Popsync-Lineage header at most (about 30 revisions). */
#define PS_LINEAGE_TEXT_MAX 2048

/** What became of one received version. */
typedef enum ps_foreign_outcome {
    PS_FOREIGN_IGNORED = 0, /**< not a case we share with its sender */
    PS_FOREIGN_STORED,      /**< stored as it came (new, or a descendant of ours) */
    PS_FOREIGN_MERGED,      /**< concurrent with ours: merged into a new version */
    PS_FOREIGN_SAME,        /**< we hold that revision already (our own echo, a redelivery) */
    PS_FOREIGN_OLDER,       /**< ours contains it already */
    PS_FOREIGN_REFUSED      /**< the sender may not make this change, or the record is bad (why) */
} ps_foreign_outcome_t;

/** One version of a migration received from another district. */
typedef struct ps_foreign_item {
    const uint8_t *data;     /**< the packed Record (the message payload) */
    size_t len;
    char district[13];       /**< the sending district (Popsync-District) */
    const uint8_t *summary;  /**< a packed MigrantSummary (Popsync-Migrant), or NULL */
    size_t summary_len;
    const char *lineage;     /**< Popsync-Lineage text, or NULL */
    ps_foreign_outcome_t outcome; /**< out */
    uint64_t seq;            /**< out: our feed seq when written */
    char why[320];           /**< out: a refusal's reason (codes and field names only) */
} ps_foreign_item_t;

/**
 * Applies items in one durable write transaction (docs/upstream.md §7):
 * home is this district's code.  Every item gets its outcome; the return
 * is PS_OK or a database error (nothing written: the caller acks nothing
 * and tries again).
 */
int ps_store_foreign_apply(ps_store_t *st, const char *home, ps_foreign_item_t *items, size_t n);

/**
 * Records this district's code in the store (meta home_district), once
 * [upstream] names it: the counters then leave out another district's cases
 * held here, even in offline tools that have no org-unit tree
 * (store_int.h counts_here).  A store whose counters hold such cases
 * already (none before this key existed) keeps them: recount with
 * `popsyncd counters check`.
 */
int ps_store_set_home(ps_store_t *st, const char *district);

/**
 * The rebuild's second pass (`popsyncd rebuild --from-upstream`,
 * docs/upstream.md §6): items are other districts' migration messages, in
 * stream order, after this district's own messages are written.  For a
 * case we hold whose published lineage (kept by the first pass) contains
 * the item's revision, the summary it carries becomes the case's 'S' and,
 * unless the revision is one of our own versions, the item is kept as a
 * merged foreign version ('V'): `foreign` as the original district had it.
 * No feed, head, counters or audit change.  *kept counts items used.  One
 * durable transaction per call.
 */
int ps_store_rebuild_foreign(ps_store_t *st, const ps_foreign_item_t *items, size_t n, size_t *kept);
/** Ends the second pass: drops the lineages the first pass kept. */
int ps_store_rebuild_foreign_end(ps_store_t *st);

/** 1 when the store holds a record with this id, 0 when not, or an error. */
int ps_store_has_record(ps_store_t *st, const uint8_t id[16]);

/** Is code inside district (the 12-digit code's prefix rule, common/scope.h)? */
int ps_foreign_in_district(const char *code, const char *district);
/** The district of a unit code by the prefix rule (PPPPPP000000), in out;
 *  0 when code is not a 12-digit code. */
int ps_foreign_district_of(const char *code, char out[13]);

#endif
