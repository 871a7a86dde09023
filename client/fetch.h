/* fetch.h - re-read records from the server by id.
 *
 * Owns: FetchRequest -> PullBatch in chunks of at most PS_FETCH_MAX ids,
 * one chunk in flight at a time, each answer applied to the cache in its
 * own transaction (ps_cache_apply_fetch: what the server no longer shows
 * us is dropped), so a cut leaves the cache consistent; and ps_idlist_t,
 * the list of 16-byte ids it takes.
 *
 * Callers: sync.c (records the server refused or merged, after the pull)
 * and verify.c (records whose revision differs).
 */
#ifndef PS_FETCH_H
#define PS_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "link.h"

#define PS_FETCH_MAX 5000

/** A growable list of 16-byte ids. */
typedef struct ps_idlist {
    uint8_t *ids;
    size_t n, cap;
} ps_idlist_t;

int ps_idlist_add(ps_idlist_t *l, const uint8_t *id);
void ps_idlist_free(ps_idlist_t *l);

/** The end of a fetch: status PS_OK or the session's failure; got records
 *  came back for asked ids (the rest were dropped from the cache). */
typedef void (*ps_fetch_done_fn)(ps_link_t *l, int status, uint64_t got, uint64_t asked, void *arg);

/**
 * Fetches every id of ids (taken over, and emptied: the caller's list is
 * left empty) on l; done runs once at the end (at once when there is
 * nothing to fetch).  PS_OK, or an error when the first request cannot be
 * made (done is then not called).
 */
int ps_fetch_start(ps_link_t *l, ps_idlist_t *ids, ps_fetch_done_fn done, void *arg);

#endif
