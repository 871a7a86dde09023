/* xrules.h - rules between records that the cache can check offline.
 *
 * Owns: what validate.c cannot judge from one record: a birth's mother is
 * a woman of plausible age (12 to 60 at the birth), one benefit per person,
 * scheme and period, and a first-birth subsidy is paid to a woman.  The
 * server does not re-check them (it may not see both records in one
 * sender's view); the cache checks what it holds, through its person index.
 * Called by cmd_records.c (add, edit, refused edit) and cmd_io.c (import).
 */
#ifndef PS_XRULES_H
#define PS_XRULES_H

#include "cache.h"
#include "validate.h"

/**
 * Appends to v the rules r breaks.  current is the version r replaces (NULL
 * for a new record): an edit is judged only on the rules its changes touch.
 * Returns the number of errors added.
 */
size_t ps_xrules_check(ps_cache_t *c, const Popsync__Record *r, const Popsync__Record *current, ps_verrs_t *v);

#endif
