/* scope.h - org unit codes and the subtree rule used for access.
 *
 * Owns: the 12-digit statistical division code format and "is unit A inside
 * the subtree of unit B".  Until the org-unit file (docs/data-model.md) is
 * loaded, a unit's subtree is decided by its code: the trailing groups of
 * zeros mark its level (district PPPPPP000000, township PPPPPPTTT000,
 * village/community PPPPPPTTTVVV).
 */
#ifndef PS_SCOPE_H
#define PS_SCOPE_H

/** True when s is exactly 12 ASCII digits. */
int ps_orgunit_valid(const char *s);
/** True when unit lies in the subtree rooted at root (including root). */
int ps_orgunit_within(const char *unit, const char *root);
/** Copies the township (PPPPPPTTT000) of a unit into out (13 bytes). */
void ps_orgunit_township(const char *unit, char out[13]);

#endif
