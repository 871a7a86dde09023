/* strtab.c - see strtab.h. */
#include "strtab.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: short keys, no adversary the table must withstand (its keys come
 * from one store's own records). */
static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int grow(ps_strtab_t *t)
{
    ps_strtab_t nt = {NULL, t->cap ? t->cap * 2 : 256, 0};
    if (!(nt.v = calloc(nt.cap, sizeof(*nt.v))))
        return -1;
    for (size_t j = 0; j < t->cap; j++)
        if (t->v[j].key) {
            size_t h = str_hash(t->v[j].key) & (nt.cap - 1);
            while (nt.v[h].key)
                h = (h + 1) & (nt.cap - 1);
            nt.v[h] = t->v[j];
            nt.n++;
        }
    free(t->v);
    *t = nt;
    return 0;
}

ps_strent_t *ps_strtab_get(ps_strtab_t *t, const char *key)
{
    size_t i;
    if (t->n * 2 >= t->cap && grow(t))
        return NULL;
    i = str_hash(key) & (t->cap - 1);
    while (t->v[i].key && strcmp(t->v[i].key, key) != 0)
        i = (i + 1) & (t->cap - 1);
    if (!t->v[i].key) {
        if (!(t->v[i].key = strdup(key)))
            return NULL;
        t->n++;
    }
    return &t->v[i];
}

ps_strent_t *ps_strtab_find(const ps_strtab_t *t, const char *key)
{
    size_t i;
    if (!t->cap)
        return NULL;
    i = str_hash(key) & (t->cap - 1);
    while (t->v[i].key && strcmp(t->v[i].key, key) != 0)
        i = (i + 1) & (t->cap - 1);
    return t->v[i].key ? &t->v[i] : NULL;
}

void ps_strtab_free(ps_strtab_t *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        free(t->v[i].key);
        free(t->v[i].aux);
    }
    free(t->v);
    memset(t, 0, sizeof(*t));
}
