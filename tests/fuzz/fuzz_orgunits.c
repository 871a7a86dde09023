/* fuzz_orgunits.c - libFuzzer target: the org-unit file parser.
 *
 * The input is an org-unit CSV file (popsyncd --orgunits, popsync init
 * --orgunits, and the bytes a client receives in OrgUnits).  A tree that
 * parses is walked with every lookup the server and client use; a refused
 * one must say why.
 */
#include "err.h"
#include "orgunit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ps_orgunits_t *t = NULL;
    char err[256];
    size_t n, blen = 0;
    const ps_orgunit_t *root;

    err[0] = 0;
    if (ps_orgunits_parse(data, size, &t, err, sizeof(err)) != PS_OK) {
        if (t || !memchr(err, 0, sizeof(err)) || err[0] == 0)
            abort();
        return 0;
    }
    root = ps_orgunits_root(t);
    if (!root || root->depth != 0)
        abort();
    n = ps_orgunits_count(t);
    for (size_t i = 0; i < n; i++) {
        const ps_orgunit_t *u = ps_orgunits_at(t, i), *tw;
        if (!u || ps_orgunits_find(t, u->code) != u)
            abort();
        if (u->depth < 0 || u->depth > PS_ORGUNIT_MAX_DEPTH || !ps_orgunit_kind_valid(u->kind))
            abort();
        if (!ps_orgunits_within(t, u->code, root->code) || !ps_orgunits_within(t, u->code, u->code))
            abort();
        if (u->depth > 0 && (u->parent_idx >= n || ps_orgunits_at(t, u->parent_idx)->depth != u->depth - 1))
            abort();
        tw = ps_orgunits_township(t, u->code);
        if (u->depth == 0 ? tw != NULL : (!tw || tw->depth != 1 || !ps_orgunits_within(t, u->code, tw->code)))
            abort();
        if (i + 1 < n)
            (void)ps_orgunits_within(t, u->code, ps_orgunits_at(t, i + 1)->code);
    }
    (void)ps_orgunits_find(t, "000000000000");
    (void)ps_orgunits_within(t, "nonexistent", root->code);
    if (ps_orgunits_bytes(t, &blen) == NULL || blen != size || !ps_orgunits_digest(t))
        abort();
    ps_orgunits_free(t);
    return 0;
}
