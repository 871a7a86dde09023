/* test_client_report.c - unit tests for the arithmetic of client/report.c.
 *
 * Owns: checks of the monthly report's numbers computed on the client from
 * the server's counts (docs/queries.md): the sex ratio at birth, the
 * submission, feedback, on-time and follow-up rates (with their two-count
 * denominator), undefined rates on a zero denominator, amounts in yuan
 * (negative and large), rate text, month and format parsing, the label
 * language from the environment.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "report.h"
#include "wire.pb-c.h"

#define MAXV 8
/* cmocka's float assertion works in float: compare doubles here. */
#define assert_near(a, b) assert_true(fabs((a) - (b)) < 1e-9)

typedef struct row {
    Popsync__ReportRow r;
    Popsync__ReportValue v[MAXV];
    Popsync__ReportValue *pv[MAXV];
} row_t;

static void row_init(row_t *w)
{
    popsync__report_row__init(&w->r);
    w->r.values = w->pv;
}

static void row_set(row_t *w, const char *name, int64_t value)
{
    size_t i = w->r.n_values++;
    assert_true(i < MAXV);
    popsync__report_value__init(&w->v[i]);
    w->v[i].name = (char *)name;
    w->v[i].value = value;
    w->pv[i] = &w->v[i];
}

static void test_sex_ratio(void **state)
{
    row_t w;
    double v = -1;
    (void)state;
    row_init(&w);
    row_set(&w, "births_male", 118);
    row_set(&w, "births_female", 100);
    assert_true(ps_report_row_rate(&w.r, "sex_ratio_at_birth", &v));
    assert_near(v, 118.0);
    /* No girls: undefined, *out untouched. */
    w.v[1].value = 0;
    v = -1;
    assert_false(ps_report_row_rate(&w.r, "sex_ratio_at_birth", &v));
    assert_near(v, -1.0);
}

static void test_migration_rates(void **state)
{
    row_t w;
    double v;
    (void)state;
    row_init(&w);
    row_set(&w, "migrations", 8);
    row_set(&w, "submitted", 6);
    row_set(&w, "submitted_on_time", 3);
    row_set(&w, "feedback", 4);
    row_set(&w, "feedback_on_time", 1);
    assert_true(ps_report_row_rate(&w.r, "submission_rate_pct", &v));
    assert_near(v, 75.0);
    assert_true(ps_report_row_rate(&w.r, "feedback_rate_pct", &v));
    assert_near(v, 400.0 / 6.0);
    assert_true(ps_report_row_rate(&w.r, "submitted_on_time_pct", &v));
    assert_near(v, 50.0);
    assert_true(ps_report_row_rate(&w.r, "feedback_on_time_pct", &v));
    assert_near(v, 25.0);
    assert_false(ps_report_row_rate(&w.r, "no_such_rate", &v));
}

static void test_followup_two_denominators(void **state)
{
    row_t w;
    double v;
    (void)state;
    row_init(&w);
    row_set(&w, "visits_followup", 3);
    assert_false(ps_report_row_rate(&w.r, "followup_rate_pct", &v)); /* no checks at all */
    row_set(&w, "visits_prepregnancy_check", 4);
    row_set(&w, "visits_reproductive_check", 2);
    assert_true(ps_report_row_rate(&w.r, "followup_rate_pct", &v));
    assert_near(v, 50.0); /* 3 / (4 + 2) */
}

static void test_rate_text(void **state)
{
    char buf[32];
    double v;
    (void)state;
    assert_string_equal(ps_report_rate_text(7, 8, 100.0, 1, buf, sizeof(buf)), "87.5%");
    assert_string_equal(ps_report_rate_text(2, 3, 100.0, 0, buf, sizeof(buf)), "66.7");
    assert_string_equal(ps_report_rate_text(5, 0, 100.0, 1, buf, sizeof(buf)), "\xe2\x80\x94");
    assert_string_equal(ps_report_rate_text(5, -1, 100.0, 1, buf, sizeof(buf)), "\xe2\x80\x94");
    assert_false(ps_report_rate(1, 0, 1.0, &v));
    assert_true(ps_report_rate(0, 5, 100.0, &v));
    assert_near(v, 0.0);
}

static void test_yuan(void **state)
{
    char buf[32];
    (void)state;
    assert_string_equal(ps_report_yuan_text(123450, buf, sizeof(buf)), "1234.50");
    assert_string_equal(ps_report_yuan_text(5, buf, sizeof(buf)), "0.05");
    assert_string_equal(ps_report_yuan_text(-5, buf, sizeof(buf)), "-0.05");
    assert_string_equal(ps_report_yuan_text(0, buf, sizeof(buf)), "0.00");
    assert_string_equal(ps_report_yuan_text(INT64_MIN, buf, sizeof(buf)), "-92233720368547758.08");
    assert_string_equal(ps_report_yuan_text(INT64_MAX, buf, sizeof(buf)), "92233720368547758.07");
}

static void test_month_and_format(void **state)
{
    (void)state;
    assert_true(ps_report_month_valid("2024-01"));
    assert_true(ps_report_month_valid("2024-12"));
    assert_false(ps_report_month_valid("2024-00"));
    assert_false(ps_report_month_valid("2024-13"));
    assert_false(ps_report_month_valid("2024-1"));
    assert_false(ps_report_month_valid("2024/01"));
    assert_false(ps_report_month_valid(NULL));
    assert_int_equal(ps_report_format_from_name("table"), PS_REPORT_TABLE);
    assert_int_equal(ps_report_format_from_name("csv"), PS_REPORT_CSV);
    assert_int_equal(ps_report_format_from_name("json"), PS_REPORT_JSON);
    assert_int_equal(ps_report_format_from_name("xml"), -1);
}

static void test_lang(void **state)
{
    (void)state;
    assert_int_equal(ps_report_lang_zh("zh"), 1);
    assert_int_equal(ps_report_lang_zh("en"), 0);
    assert_int_equal(ps_report_lang_zh("fr"), -1);
    setenv("LC_ALL", "zh_CN.UTF-8", 1);
    assert_int_equal(ps_report_lang_zh(NULL), 1);
    setenv("LC_ALL", "", 1); /* empty: LANG decides */
    setenv("LANG", "zh_TW.UTF-8", 1);
    assert_int_equal(ps_report_lang_zh(NULL), 1);
    setenv("LANG", "C.UTF-8", 1);
    assert_int_equal(ps_report_lang_zh(NULL), 0);
    unsetenv("LC_ALL");
    unsetenv("LANG");
    assert_int_equal(ps_report_lang_zh(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sex_ratio), cmocka_unit_test(test_migration_rates),
        cmocka_unit_test(test_followup_two_denominators), cmocka_unit_test(test_rate_text),
        cmocka_unit_test(test_yuan), cmocka_unit_test(test_month_and_format),
        cmocka_unit_test(test_lang),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
