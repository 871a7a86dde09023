/* query_rules.h - what a Query means, whoever answers it.
 *
 * Owns: the rules of `popsync query` (docs/queries.md §2): which names a
 * Query may use, whether a record passes its date range and equality
 * filters, and the parts of its group key (unit, township, kind, month, or
 * any field's text form).  The server's store (server/store_query.c)
 * answers a Query online and the client's cache (client/offline.c) offline
 * with these same functions, so the two answers cannot drift.  Pure; any
 * thread.
 */
#ifndef PS_QUERY_RULES_H
#define PS_QUERY_RULES_H

#include <stddef.h>

#include "orgunit.h"
#include "records.pb-c.h"
#include "wire.pb-c.h"

/** Checks the query's names before a scan, so a typo is an error, not an
 *  empty answer.  PS_OK or PS_EINVAL with the reason in err. */
int ps_query_check(const Popsync__Query *q, char *err, size_t errlen);

/** Does r pass the query's date range and equality filters? */
int ps_query_match(const Popsync__Query *q, const Popsync__Record *r);

/** The group part name of r ("unit", "township" by the tree (may be NULL),
 *  "kind", "month" of the date field or else of creation, or a field's
 *  text; "" when r has none) into out. */
void ps_query_group_part(const ps_orgunits_t *tree, const Popsync__Query *q, const Popsync__Record *r,
                         const char *name, char *out, size_t cap);

#endif
