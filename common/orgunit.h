/* orgunit.h - the district's org-unit tree.
 *
 * Owns: ps_orgunits_t, loaded from a UTF-8 CSV file with a header row
 * `code,parent,name,kind` (12-digit statistical division codes; the root has
 * an empty parent; kind is district, subdistrict (街道), town (镇),
 * enterprise, community (社区) or village (村)).  Decides whether a unit
 * exists and whether one unit lies inside another's subtree.
 *
 * The server's file is authoritative; clients receive its bytes during sync
 * and keep them in their cache, so both sides load the same tree with the
 * same code.  Immutable once loaded: safe to share between threads.
 */
#ifndef PS_ORGUNIT_H
#define PS_ORGUNIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ps_orgunits ps_orgunits_t;

#define PS_ORGUNIT_MAX_DEPTH 8     /**< deepest level a file may have (root = 0) */
#define PS_ORGUNIT_NAME_MAX 64     /**< bytes of UTF-8 in a unit's name */
#define PS_ORGUNIT_FILE_MAX (16u << 20) /**< largest file ps_orgunits_load reads */

typedef struct ps_orgunit {
    char code[13];     /**< 12 digits */
    char parent[13];   /**< "" for the root */
    char *name;        /**< UTF-8 (owned by the tree) */
    char kind[16];
    int depth;         /**< 0 for the root */
    size_t parent_idx; /**< index of the parent, or SIZE_MAX */
} ps_orgunit_t;

/**
 * Parses CSV bytes (BOM allowed, CRLF or LF).  On failure returns PS_EINVAL
 * and writes "line N: reason" to err.  Every problem is a failure: a tree
 * with an unknown parent, a duplicate code, a cycle or two roots is refused
 * whole.  Caller owns *out (ps_orgunits_free).
 */
int ps_orgunits_parse(const uint8_t *csv, size_t len, ps_orgunits_t **out, char *err, size_t errlen);
/** Reads and parses a file. */
int ps_orgunits_load(const char *path, ps_orgunits_t **out, char *err, size_t errlen);
void ps_orgunits_free(ps_orgunits_t *t);

/** The unit with this code, or NULL. */
const ps_orgunit_t *ps_orgunits_find(const ps_orgunits_t *t, const char *code);
/** Number of units and the i-th one (file order). */
size_t ps_orgunits_count(const ps_orgunits_t *t);
const ps_orgunit_t *ps_orgunits_at(const ps_orgunits_t *t, size_t i);
/** The root unit (depth 0); never NULL for a loaded tree. */
const ps_orgunit_t *ps_orgunits_root(const ps_orgunits_t *t);
/** True when kind is one of the six kind names above. */
int ps_orgunit_kind_valid(const char *kind);
/** True when unit is root or a descendant of root (both must exist). */
int ps_orgunits_within(const ps_orgunits_t *t, const char *unit, const char *root);
/** The depth-1 ancestor (township level) of unit, or NULL (root/unknown). */
const ps_orgunit_t *ps_orgunits_township(const ps_orgunits_t *t, const char *unit);
/** The township code of unit, the one rule every report and count uses:
 *  its depth-1 ancestor in the tree when the tree knows it (t may be NULL),
 *  else the code's own township part (PPPPPPTTT000, common/scope.h); a
 *  unit that is not a 12-digit code is copied as it is. */
void ps_orgunits_township_code(const ps_orgunits_t *t, const char *unit, char out[13]);
/** The raw bytes the tree was parsed from (for sending to clients), and a SHA-256 of them. */
const uint8_t *ps_orgunits_bytes(const ps_orgunits_t *t, size_t *len);
const uint8_t *ps_orgunits_digest(const ps_orgunits_t *t); /**< 32 bytes */

#endif
