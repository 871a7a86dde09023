/* late.h - a late entry into a month the district has approved.
 *
 * Owns: finding the approved months an added, edited, deleted or imported
 * record changes the counts of, and the warning the clerk gets.  Once the
 * district approves a township's month, its report is frozen and a later
 * change to its counts shows as a correction (docs/queries.md §5); the
 * change is still taken (a late birth must be registered), but the clerk
 * should know and tell the district.  The months come from the list the
 * server sent at the last sync (Welcome.approved_months, kept by the cache);
 * the counts from the report's own rule (common/counters.h).
 * Called by cmd_records.c (add, edit, delete, restore) and cmd_io.c (import).
 */
#ifndef PS_LATE_H
#define PS_LATE_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "orgunit.h"

typedef struct ps_late {
    uint32_t month;     /**< YYYYMM */
    char township[13];  /**< 12-digit code */
} ps_late_t;

/**
 * The approved months whose counts change when current (NULL: none) becomes
 * r (NULL: deleted): months where the report's contributions of the two
 * versions differ.  tree (may be NULL) finds each unit's township.  At most
 * max into out, each once; returns how many.
 */
size_t ps_late_months(ps_cache_t *c, const ps_orgunits_t *tree, const Popsync__Record *r,
                      const Popsync__Record *current, ps_late_t *out, size_t max);

/** One warning line on stderr per month, in Chinese when zh, prefixed with cmd. */
void ps_late_warn(const char *cmd, const ps_late_t *late, size_t n, int zh);

#endif
