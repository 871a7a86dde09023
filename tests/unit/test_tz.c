/* test_tz.c - unit tests for common/tz.c: the district's calendar day.
 *
 * Owns: checks that a zone of the tz database loads with its offset, that
 * the date in the zone turns at the zone's midnight, not UTC's, that bad or
 * unknown names are refused (glibc would silently take them for UTC),
 * that loading a zone leaves the process's TZ as it was, and that
 * ps_tz_get keeps the zones it loaded and loads none after ps_tz_freeze.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "tz.h"

/* 2026-12-06 16:30:00 UTC = 2026-12-07 00:30 in Beijing. */
#define T_1630_UTC 1796574600000ull

static void test_shanghai(void **state)
{
    ps_tz_t tz;
    char err[256];
    (void)state;
    assert_int_equal(ps_tz_load(&tz, "Asia/Shanghai", T_1630_UTC, err, sizeof(err)), PS_OK);
    assert_string_equal(tz.name, "Asia/Shanghai");
    assert_int_equal(tz.offset_s, 8 * 3600);
    assert_int_equal(ps_tz_date(&tz, T_1630_UTC), 20261207u);
    assert_int_equal(ps_tz_date(&tz, T_1630_UTC - 31 * 60 * 1000), 20261206u); /* 23:59 in Beijing */
    assert_int_equal(ps_tz_date(NULL, T_1630_UTC), 20261206u);                  /* UTC */
}

static void test_west_of_utc(void **state)
{
    ps_tz_t tz;
    char err[256];
    (void)state;
    /* 1 July: summer time in New York, UTC-4. */
    assert_int_equal(ps_tz_load(&tz, "America/New_York", 1782900000000ull, err, sizeof(err)), PS_OK);
    assert_int_equal(tz.offset_s, -4 * 3600);
    assert_int_equal(ps_tz_date(&tz, 1782900000000ull), 20260701u); /* 2026-07-01 10:00 UTC */
}

static void test_bad_names(void **state)
{
    static const char *const bad[] = {"", "Mars/Olympus_Mons", "../etc/passwd", "/usr/share/zoneinfo/UTC",
                                      "Asia/Shang hai", "Asia/Shanghai;x"};
    ps_tz_t tz;
    char err[256];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (ps_tz_load(&tz, bad[i], T_1630_UTC, err, sizeof(err)) != PS_EINVAL || !err[0])
            fail_msg("'%s' was taken for a time zone", bad[i]);
    }
    assert_int_equal(ps_tz_valid(NULL, err, sizeof(err)), PS_EINVAL);
}

static void test_tz_env_restored(void **state)
{
    ps_tz_t tz;
    char err[256];
    (void)state;
    setenv("TZ", "Europe/Berlin", 1);
    assert_int_equal(ps_tz_load(&tz, "Asia/Shanghai", T_1630_UTC, err, sizeof(err)), PS_OK);
    assert_string_equal(getenv("TZ"), "Europe/Berlin");
    unsetenv("TZ");
    assert_int_equal(ps_tz_load(&tz, "UTC", T_1630_UTC, err, sizeof(err)), PS_OK);
    assert_null(getenv("TZ"));
    assert_int_equal(tz.offset_s, 0);
}

/* Kept zones are answered from any thread; after the freeze an unknown
 * one is not loaded (no TZ change with threads running) but answered with
 * the first zone kept, and says to restart.  Last: the freeze is for good. */
static void test_get_and_freeze(void **state)
{
    ps_tz_t tz, again;
    char err[256];
    (void)state;
    assert_int_equal(ps_tz_get(&tz, "Asia/Shanghai", err, sizeof(err)), PS_OK);
    assert_string_equal(tz.name, "Asia/Shanghai");
    assert_int_equal(tz.offset_s, 8 * 3600);
    assert_int_equal(ps_tz_get(&again, "Asia/Shanghai", err, sizeof(err)), PS_OK);
    assert_memory_equal(&tz, &again, sizeof(tz));
    assert_int_equal(ps_tz_get(&tz, "Nowhere/Atlantis", err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_tz_get(&tz, "Asia/Tokyo", err, sizeof(err)), PS_OK);
    ps_tz_freeze();
    err[0] = '\0';
    assert_int_equal(ps_tz_get(&tz, "Europe/Paris", err, sizeof(err)), PS_ENOTFOUND);
    assert_string_equal(tz.name, "Asia/Shanghai"); /* the first zone kept */
    assert_non_null(strstr(err, "restart"));
    assert_int_equal(ps_tz_get(&tz, "Asia/Tokyo", err, sizeof(err)), PS_OK);
    assert_int_equal(tz.offset_s, 9 * 3600);
    assert_int_equal(ps_tz_get(&tz, "Europe/Paris", err, sizeof(err)), PS_ENOTFOUND); /* still not loaded */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shanghai),
        cmocka_unit_test(test_west_of_utc),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_tz_env_restored),
        cmocka_unit_test(test_get_and_freeze), /* last: the freeze stays */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
