/* scope.h - org unit codes.
 *
 * Owns: the 12-digit statistical division code format and the township
 * part of a code.  Whether one unit lies in another's subtree is the access
 * policy's subtree rule (policy.h: ps_policy_within), which uses the tree
 * when there is one and these codes' levels when there is none.
 */
#ifndef PS_SCOPE_H
#define PS_SCOPE_H

/** True when s is exactly 12 ASCII digits. */
int ps_orgunit_valid(const char *s);
/** Copies the township (PPPPPPTTT000) of a unit into out (13 bytes). */
void ps_orgunit_township(const char *unit, char out[13]);

#endif
