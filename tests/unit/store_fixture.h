/* store_fixture.h - a store on a temporary LMDB for the server's unit tests.
 *
 * Owns: the temporary directory (under $TMPDIR), the demo district's
 * org-unit tree (demo/orgunits.csv) and the store opened on them, and a
 * peer as the access policy sees one.  Header only, every function static
 * inline: each test program includes it and keeps its own fixture struct
 * (its dir, units, st and whatever else that test needs), handing these
 * functions those fields.  Used by test_server_{apply,persist,cols,feed,
 * pullcache}.c. */
#ifndef PS_TEST_STORE_FIXTURE_H
#define PS_TEST_STORE_FIXTURE_H

#include "err.h"
#include "orgunit.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Opens the store in dir on units (NULL: without a tree), a map of map_mb MiB. */
static inline int ps_tstore_open(const char *dir, ps_orgunits_t *units, size_t map_mb, ps_store_t **st)
{
    char err[256] = "";
    ps_store_opts_t o;

    memset(&o, 0, sizeof(o));
    o.map_size = map_mb << 20;
    o.units = units;
    if (ps_store_open(st, dir, &o, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "cannot open the store: %s\n", err);
        return -1;
    }
    return 0;
}

/* A fresh directory in dir (dirlen bytes) named after tag, and the demo
 * district's tree in *units (read from the source tree: tests run from the
 * build directory). */
static inline int ps_tstore_make(const char *tag, char *dir, size_t dirlen, ps_orgunits_t **units)
{
    const char *tmp = getenv("TMPDIR"), *f = __FILE__, *at = strstr(f, "tests/unit/");
    char path[4096], err[256] = "";

    snprintf(dir, dirlen, "%s/%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%.*sdemo/orgunits.csv", at ? (int)(at - f) : 0, f);
    if (ps_orgunits_load(path, units, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, err);
        return -1;
    }
    return 0;
}

/* ps_tstore_make, then the store opened on the tree. */
static inline int ps_tstore_setup(const char *tag, char *dir, size_t dirlen, ps_orgunits_t **units, size_t map_mb,
                                  ps_store_t **st)
{
    if (ps_tstore_make(tag, dir, dirlen, units))
        return -1;
    return ps_tstore_open(dir, *units, map_mb, st);
}

/* Closes st (may be NULL), frees units, removes dir with its LMDB files. */
static inline void ps_tstore_remove(const char *dir, ps_orgunits_t *units, ps_store_t *st)
{
    char p[512];

    if (st)
        ps_store_close(st);
    ps_orgunits_free(units);
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

/* A peer of role at unit, named name, serial 01. */
static inline ps_peer_t ps_tstore_peer(ps_role_t role, const char *unit, const char *name)
{
    ps_peer_t p;

    memset(&p, 0, sizeof(p));
    p.role = role;
    snprintf(p.role_name, sizeof(p.role_name), "%s", ps_role_name(role));
    snprintf(p.orgunit, sizeof(p.orgunit), "%s", unit);
    snprintf(p.name, sizeof(p.name), "%s", name);
    snprintf(p.serial_hex, sizeof(p.serial_hex), "01");
    return p;
}

#endif
