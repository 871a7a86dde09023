/* panels.h - what the reports add from the local cache: spot-check
 * accuracy (cmd_spotcheck.c) and benefits entitled / paid / owed and
 * payment flags (cmd_benefits.c).  The server's report counts records; these
 * figures need the district's scheme table and the spot checks' results,
 * which the administrator's cache holds whole, so they are computed there,
 * from the cache as of its last sync (docs/benefits.md §4).
 * Called by report.c after the server's (or the offline) report.
 */
#ifndef PS_PANELS_H
#define PS_PANELS_H

#include <stdio.h>

#include "cache.h"
#include "orgunit.h"

/** Spot-check accuracy of month (YYYY-MM; NULL: all) under root (NULL: all),
 *  per township with its Wilson interval, and the fields found wrong.
 *  Prints nothing when there are no spot checks. */
int ps_spot_panel(ps_cache_t *c, const ps_orgunits_t *tree, const char *month, const char *root, int zh, FILE *f);

/** Benefits of month (YYYY-MM): per township entitled, paid and owed for
 *  the month's periods, and owed from earlier periods.  With quality: the
 *  payments flagged (double, not entitled, more than entitled) instead. */
int ps_benefit_panel(ps_cache_t *c, const ps_orgunits_t *tree, const char *month, const char *root, int zh,
                     int quality, FILE *f);

#endif
