/* cache_fixture.h - a client cache in a temporary directory for the
 * client's unit tests.
 *
 * Owns: the directory (under $TMPDIR, named after the test), a new cache
 * created in it as an admin's, reopening it, and removing it.  Header only,
 * every function static inline (cmocka's asserts inside): each test program
 * keeps its own directory buffer and hands it to these.  Used by
 * test_client_{cache_seal,pindex,pullhold}.c. */
#ifndef PS_TEST_CACHE_FIXTURE_H
#define PS_TEST_CACHE_FIXTURE_H

#include "cache.h"
#include "err.h"
#include "ids.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes dir (a new temporary directory named after tag) and a new cache in
 * it; the cache, open. */
static inline ps_cache_t *ps_tcache_make(char *dir, size_t dirlen, const char *tag)
{
    ps_cache_meta_t m;
    ps_cache_t *c = NULL;
    char err[256];
    snprintf(dir, dirlen, "%s/ps-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", tag);
    assert_non_null(mkdtemp(dir));
    memset(&m, 0, sizeof(m));
    assert_int_equal(ps_random(m.node, sizeof(m.node)), PS_OK);
    snprintf(m.server, sizeof(m.server), "127.0.0.1:1");
    snprintf(m.role, sizeof(m.role), "admin");
    snprintf(m.name, sizeof(m.name), "clerk one");
    snprintf(m.key_file, sizeof(m.key_file), "%s/test.key", dir);
    assert_int_equal(ps_cache_create_open(&c, dir, &m, err, sizeof(err)), PS_OK);
    return c;
}

/* Opens the cache in dir again. */
static inline ps_cache_t *ps_tcache_open(const char *dir)
{
    ps_cache_t *c = NULL;
    char err[256];
    assert_int_equal(ps_cache_open(&c, dir, err, sizeof(err)), PS_OK);
    return c;
}

/* Removes dir and everything in it. */
static inline void ps_tcache_remove(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

#endif
