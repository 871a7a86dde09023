/* test_client_vctx.c - unit tests for client/vctx.c.
 *
 * Owns: checks of the client's validation context on a real (temporary,
 * encrypted) cache: references found in the current batch with the right
 * kind, in the cache, or nowhere; ids noted and forgotten; a batch of
 * 20,000 ids (the hash set grows); the cache's identity as the access
 * policy's peer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache.h"
#include "err.h"
#include "ids.h"
#include "record_fmt.h"
#include "vctx.h"

#define PERSON POPSYNC__KIND__KIND_PERSON
#define BIRTH POPSYNC__KIND__KIND_BIRTH

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    setenv("POPSYNC_PASSPHRASE", "popsync-test-passphrase", 1);
    setenv("POPSYNC_KDF_ITERATIONS", "1000", 1);
    unsetenv("POPSYNC_KEY_FILE");
    snprintf(g_dir, sizeof(g_dir), "/tmp/ps-vctx-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static ps_cache_t *make_cache(const char *sub, const char *role, const char *unit)
{
    ps_cache_meta_t m;
    ps_cache_t *c = NULL;
    char dir[128], err[256];
    snprintf(dir, sizeof(dir), "%s/%s", g_dir, sub);
    assert_int_equal(ps_cache_meta_for_pki(&m, "127.0.0.1:1", "/nonexistent", "t", role, unit), PS_OK);
    assert_int_equal(ps_cache_create_open(&c, dir, &m, err, sizeof(err)), PS_OK);
    return c;
}

static void test_batch_and_cache_refs(void **state)
{
    ps_cache_t *c = make_cache("t1", "township", "110105001000");
    ps_client_vctx_t v;
    Popsync__Record *r = NULL;
    uint8_t id[PS_ID_LEN], stored[PS_ID_LEN];
    char err[128];
    (void)state;

    /* A person in the cache. */
    assert_int_equal(ps_record_new(&r, PERSON), PS_OK);
    assert_int_equal(ps_record_set(r, "orgunit", "110105001000", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "name", "Li", err, sizeof(err)), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    r->id.len = PS_ID_LEN;
    assert_int_equal(ps_uuid7(r->id.data), PS_OK);
    memcpy(stored, r->id.data, PS_ID_LEN);
    assert_int_equal(ps_cache_put_local(c, r), PS_OK);
    ps_record_free(r);

    assert_int_equal(ps_client_vctx_init(&v, c), PS_OK);
    assert_ptr_equal(v.ctx.peer, &v.peer);
    assert_string_equal(v.peer.orgunit, "110105001000");
    assert_true(v.ctx.ref_exists(v.ctx.ref_arg, stored, PERSON));
    assert_false(v.ctx.ref_exists(v.ctx.ref_arg, stored, BIRTH));
    assert_true(v.ctx.ref_exists(v.ctx.ref_arg, stored, 0));

    /* Ids of this batch: found with their own kind only, until forgotten. */
    assert_int_equal(ps_uuid7(id), PS_OK);
    assert_false(ps_client_vctx_noted(&v, id));
    assert_false(v.ctx.ref_exists(v.ctx.ref_arg, id, BIRTH));
    assert_int_equal(ps_client_vctx_note(&v, id, BIRTH), PS_OK);
    assert_true(ps_client_vctx_noted(&v, id));
    assert_true(v.ctx.ref_exists(v.ctx.ref_arg, id, BIRTH));
    assert_false(v.ctx.ref_exists(v.ctx.ref_arg, id, PERSON));
    ps_client_vctx_forget(&v);
    assert_false(ps_client_vctx_noted(&v, id));
    assert_true(v.ctx.ref_exists(v.ctx.ref_arg, stored, PERSON)); /* the cache stays */
    ps_client_vctx_free(&v);
    ps_cache_close(c);
}

static void test_large_batch(void **state)
{
    ps_cache_t *c = make_cache("t2", "township", "110105001000");
    ps_client_vctx_t v;
    enum { N = 20000 };
    uint8_t(*ids)[PS_ID_LEN] = malloc(N * PS_ID_LEN);
    uint8_t other[PS_ID_LEN];
    (void)state;
    assert_non_null(ids);
    assert_int_equal(ps_client_vctx_init(&v, c), PS_OK);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(ps_uuid7(ids[i]), PS_OK);
        assert_int_equal(ps_client_vctx_note(&v, ids[i], PERSON), PS_OK);
    }
    assert_int_equal(v.nbatch, N);
    assert_true(v.capbatch >= 2 * N);
    for (size_t i = 0; i < N; i++)
        assert_true(ps_client_vctx_noted(&v, ids[i]));
    /* Noting an id again keeps one entry. */
    assert_int_equal(ps_client_vctx_note(&v, ids[7], PERSON), PS_OK);
    assert_int_equal(v.nbatch, N);
    assert_int_equal(ps_uuid7(other), PS_OK);
    assert_false(ps_client_vctx_noted(&v, other));
    ps_client_vctx_free(&v);
    ps_cache_close(c);
    free(ids);
}

static void test_admin_peer(void **state)
{
    ps_cache_t *c = make_cache("a", "admin", "110105000000");
    ps_client_vctx_t v;
    (void)state;
    assert_int_equal(ps_client_vctx_init(&v, c), PS_OK);
    assert_ptr_equal(v.ctx.peer, &v.peer);
    assert_string_equal(v.peer.role_name, "admin");
    ps_client_vctx_free(&v);
    ps_cache_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_and_cache_refs),
        cmocka_unit_test(test_large_batch),
        cmocka_unit_test(test_admin_peer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
