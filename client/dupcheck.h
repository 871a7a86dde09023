/* dupcheck.h - no person registered twice in a cache.
 *
 * Owns: the rule that a person's ID number names one live person record:
 * `add` and `import` refuse a second one (exit 4) with the existing
 * record's id and unit, unless --update merges the new values into it.
 * Also the person a reference typed as an ID number names.  Uses the
 * cache's person index (ps_cache_find).  Called by cmd_records.c and
 * cmd_io.c.
 */
#ifndef PS_DUPCHECK_H
#define PS_DUPCHECK_H

#include "cache.h"

/**
 * The live person other than r itself (by id) that has r's ID number, into
 * *found (caller frees with ps_record_free), or NULL.  r not a person, or
 * without an ID number: NULL.  PS_OK or a cache error.
 */
int ps_dup_person(ps_cache_t *c, const Popsync__Record *r, Popsync__Record **found);

/** A ps_person_resolver_fn over a cache (arg: the ps_cache_t): the live
 *  person with exactly this ID number. */
int ps_dup_resolve(void *cache, const char *id_number, uint8_t id[16]);

/** "is already registered: record UUID in unit CODE" into buf. */
const char *ps_dup_describe(const Popsync__Record *found, int zh, char *buf, size_t buflen);

#endif
