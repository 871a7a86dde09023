/* test_client_spotcheck.c - the statistics of spot checks (client/spotcheck.c)
 * and the rule that only the district draws them (common/policy.c applied
 * by common/validate.c, on the server as in a cache).
 *
 * Expected values are computed by hand from the formulas of
 * docs/benefits.md §1 (and checked against published tables: z = 1.959964
 * for 95%, the Wilson interval of 9 of 13 is [0.4237, 0.8732]).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "policy.h"
#include "record_fmt.h"
#include "spotcheck.h"
#include "validate.h"

static void test_z(void **state)
{
    (void)state;
    assert_true(ps_spot_z(0.95) > 1.959963 && ps_spot_z(0.95) < 1.959965);
    assert_true(ps_spot_z(0.90) > 1.644853 && ps_spot_z(0.90) < 1.644855);
    assert_true(ps_spot_z(0.99) > 2.575829 && ps_spot_z(0.99) < 2.575830);
    assert_true(ps_spot_z(1.0) == 0.0 && ps_spot_z(0.0) == 0.0);
}

static void test_sample_size(void **state)
{
    (void)state;
    /* n0 = 1.959964^2 * 0.25 / 0.05^2 = 384.15 */
    assert_int_equal(ps_spot_sample_size(1000000, 0.05, 0.95), 384); /* 384.15 / (1 + 383.15 / 1e6) = 384.0 */
    /* N = 1000: 384.15 / (1 + 383.15 / 1000) = 277.7 -> 278 */
    assert_int_equal(ps_spot_sample_size(1000, 0.05, 0.95), 278);
    /* N = 40, margin 0.2, 90%: n0 = 16.91; 16.91 / (1 + 15.91 / 40) = 12.1 -> 13 */
    assert_int_equal(ps_spot_sample_size(40, 0.2, 0.9), 13);
    assert_int_equal(ps_spot_sample_size(5, 0.05, 0.95), 5); /* never more than N */
    assert_int_equal(ps_spot_sample_size(0, 0.05, 0.95), 0);
    assert_int_equal(ps_spot_sample_size(100, 0.0, 0.95), 0);
}

static void test_wilson(void **state)
{
    double lo, hi;
    (void)state;
    ps_spot_wilson(9, 13, ps_spot_z(0.95), &lo, &hi);
    assert_true(lo > 0.4236 && lo < 0.4238);
    assert_true(hi > 0.8731 && hi < 0.8733);
    ps_spot_wilson(13, 13, ps_spot_z(0.95), &lo, &hi); /* all correct: the upper end is 1 */
    assert_true(hi > 0.99999 && lo > 0.7718 && lo < 0.7720);
    ps_spot_wilson(0, 0, 1.96, &lo, &hi);
    assert_true(lo == 0.0 && hi == 1.0);
}

/* The same seed draws the same persons whatever the frame's order; another
 * seed other persons; a township code is part of the key. */
static void test_draw(void **state)
{
    uint8_t seed[16] = {1}, seed2[16] = {2}, ids[100][16], shuffled[100][16], a[10][16], b[10][16], c[10][16];
    uint8_t d1[32], d2[32];
    (void)state;

    for (int i = 0; i < 100; i++) {
        memset(ids[i], 0, 16);
        ids[i][0] = (uint8_t)i;
        ids[i][15] = (uint8_t)(i * 7);
        memcpy(shuffled[99 - i], ids[i], 16);
    }
    assert_int_equal(ps_spot_draw(seed, "110105001000", ids, 100, 10, a, d1), 10);
    assert_int_equal(ps_spot_draw(seed, "110105001000", shuffled, 100, 10, b, d2), 10);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_equal(d1, d2, 32);
    assert_int_equal(ps_spot_draw(seed2, "110105001000", ids, 100, 10, c, d2), 10);
    assert_memory_not_equal(a, c, sizeof(a));
    assert_int_equal(ps_spot_draw(seed, "110105002000", ids, 100, 10, c, d2), 10);
    assert_memory_not_equal(a, c, sizeof(a));
    /* Keys rise along the sample. */
    for (int i = 1; i < 10; i++)
        assert_true(ps_spot_key(seed, "110105001000", a[i - 1]) <= ps_spot_key(seed, "110105001000", a[i]));
    assert_int_equal(ps_spot_draw(seed, "110105001000", ids, 3, 10, c, d2), 3); /* n capped at N */
}

static Popsync__Record *check_record(void)
{
    Popsync__Record *r = NULL;
    char err[256];
    static const char *const kv[] = {
        "orgunit=110105001001", "person_id=0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4bbb", "month=2026-10",
        "draw_id=0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4ccc", "seed=00112233445566778899aabbccddeeff",
        "method=sha256-rank/v1 size=5", "frame_size=40", "sample_size=5", "township=110105001000",
        "frame_digest=0000000000000000000000000000000000000000000000000000000000000000", "drawn_ms=1790000000000"};
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_SPOTCHECK), PS_OK);
    r->id.data = calloc(1, 16);
    r->id.len = 16;
    r->id.data[6] = 0x70;
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        if (ps_record_set_kv(r, kv[i], err, sizeof(err)) != PS_OK)
            fail_msg("%s: %s", kv[i], err);
    return r;
}

static int has_error(const ps_verrs_t *v, const char *field)
{
    for (size_t i = 0; i < v->n && i < PS_VERR_MAX; i++)
        if (strcmp(v->e[i].field, field) == 0)
            return 1;
    return 0;
}

static void test_only_the_district_draws(void **state)
{
    ps_peer_t town, admin;
    ps_validate_ctx_t ctx;
    ps_verrs_t v;
    Popsync__Record *cur = check_record(), *r = check_record();
    char err[256];
    (void)state;

    ps_policy_peer(&town, "township", "110105001000");
    ps_policy_peer(&admin, "admin", "110105000000");
    memset(&ctx, 0, sizeof(ctx));
    ctx.today = 20261206;
    /* a new one: the admin yes, the township no */
    ctx.peer = &admin;
    memset(&v, 0, sizeof(v));
    assert_int_equal(ps_validate_record(r, &ctx, &v), 0);
    ctx.peer = &town;
    memset(&v, 0, sizeof(v));
    assert_true(ps_validate_record(r, &ctx, &v) > 0 && has_error(&v, "kind"));
    /* the township fills in the result */
    ctx.current = cur;
    assert_int_equal(ps_record_set_kv(r, "result=differs", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "checked_date=2026-11-02", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "differs=address,name", err, sizeof(err)), PS_OK);
    memset(&v, 0, sizeof(v));
    assert_int_equal(ps_validate_record(r, &ctx, &v), 0);
    /* ... but not the draw, nor delete it */
    assert_int_equal(ps_record_set_kv(r, "person_id=0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4ddd", err, sizeof(err)), PS_OK);
    memset(&v, 0, sizeof(v));
    assert_true(ps_validate_record(r, &ctx, &v) > 0 && has_error(&v, "person_id"));
    ps_record_free(r);
    r = check_record();
    r->deleted = 1;
    memset(&v, 0, sizeof(v));
    assert_true(ps_validate_record(r, &ctx, &v) > 0 && has_error(&v, "deleted"));
    ctx.peer = &admin;
    memset(&v, 0, sizeof(v));
    assert_int_equal(ps_validate_record(r, &ctx, &v), 0);
    /* a result needs its date; differs names person fields */
    r->deleted = 0;
    assert_int_equal(ps_record_set_kv(r, "result=differs", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set_kv(r, "differs=colour", err, sizeof(err)), PS_OK);
    memset(&v, 0, sizeof(v));
    ps_validate_record(r, &ctx, &v);
    assert_true(has_error(&v, "checked_date") && has_error(&v, "differs"));
    assert_true(ps_policy_result_field(POPSYNC__KIND__KIND_SPOTCHECK, "note"));
    assert_false(ps_policy_result_field(POPSYNC__KIND__KIND_SPOTCHECK, "seed"));
    assert_false(ps_policy_may_create_kind(PS_ROLE_TOWNSHIP, POPSYNC__KIND__KIND_SPOTCHECK));
    assert_true(ps_policy_may_create_kind(PS_ROLE_TOWNSHIP, POPSYNC__KIND__KIND_PERSON));
    ps_record_free(r);
    ps_record_free(cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_z),    cmocka_unit_test(test_sample_size),
        cmocka_unit_test(test_wilson), cmocka_unit_test(test_draw),
        cmocka_unit_test(test_only_the_district_draws),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
