/* strtab.h - a small string-keyed hash table: a count, a sum and an owned
 * pointer per key.
 *
 * Owns: the table the query engine groups by and the quality checks count
 * ID numbers and names in, on the server (server/store_query.c) and in the
 * client's offline answers (client/offline.c).  Open addressing, doubled
 * when half full.  Not thread-safe; one owner at a time.
 */
#ifndef PS_STRTAB_H
#define PS_STRTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct ps_strent {
    char *key;      /**< owned copy */
    uint64_t count;
    int64_t sum;
    void *aux;      /**< owned by the table: freed by ps_strtab_free */
} ps_strent_t;

typedef struct ps_strtab {
    ps_strent_t *v;
    size_t cap, n;
} ps_strtab_t;

/** The entry of key, made (zeroed) when new; NULL when out of memory. */
ps_strent_t *ps_strtab_get(ps_strtab_t *t, const char *key);
/** The entry of key, or NULL. */
ps_strent_t *ps_strtab_find(const ps_strtab_t *t, const char *key);
/** Frees the keys, the aux pointers and the table; t is empty after. */
void ps_strtab_free(ps_strtab_t *t);

#endif
