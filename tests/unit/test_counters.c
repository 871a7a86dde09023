/* test_counters.c - unit tests for common/counters.c.
 *
 * Owns: checks of what each record kind adds to the report counters
 * (month, unit, metric, amount), the delay buckets of migrations, and the
 * date arithmetic (ps_days_between across months, leap years and the
 * epoch; ps_month_of), without a store.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counters.h"

#define UNIT "110105001000"

static const ps_contrib_t *find(const ps_contrib_t *c, size_t n, const char *metric)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].metric, metric) == 0)
            return &c[i];
    return NULL;
}

static void rec(Popsync__Record *r, Popsync__Record__BodyCase body)
{
    popsync__record__init(r);
    r->orgunit = UNIT;
    r->body_case = body;
}

static void test_days_between(void **state)
{
    (void)state;
    assert_int_equal(ps_days_between("2024-01-31", "2024-02-01"), 1);
    assert_int_equal(ps_days_between("2024-02-28", "2024-03-01"), 2); /* leap year */
    assert_int_equal(ps_days_between("2023-02-28", "2023-03-01"), 1);
    assert_int_equal(ps_days_between("2000-02-28", "2000-03-01"), 2); /* 400-year rule */
    assert_int_equal(ps_days_between("1900-02-28", "1900-03-01"), 1); /* 100-year rule */
    assert_int_equal(ps_days_between("1970-01-01", "2000-01-01"), 10957);
    assert_int_equal(ps_days_between("1969-12-31", "1970-01-01"), 1);
    assert_int_equal(ps_days_between("2024-03-10", "2024-03-01"), -9);
    assert_int_equal(ps_days_between("2024-03", "2024-03-01"), INT32_MIN);
    assert_int_equal(ps_days_between(NULL, "2024-03-01"), INT32_MIN);
}

static void test_month_of(void **state)
{
    (void)state;
    assert_int_equal(ps_month_of("2024-03-15"), 202403);
    assert_int_equal(ps_month_of("2024-12"), 202412);
    assert_int_equal(ps_month_of("2024-13-01"), 0);
    assert_int_equal(ps_month_of("2024"), 0);
    assert_int_equal(ps_month_of(NULL), 0);
}

static void test_person(void **state)
{
    Popsync__Record r;
    Popsync__Person p = POPSYNC__PERSON__INIT;
    ps_contrib_t c[PS_CONTRIB_MAX];
    size_t n;
    (void)state;
    rec(&r, POPSYNC__RECORD__BODY_PERSON);
    r.person = &p;
    r.created_ms = 1709251200000; /* 2024-03-01T00:00:00Z */
    n = ps_counters_contrib(&r, c, PS_CONTRIB_MAX);
    assert_int_equal(n, 2);
    assert_int_equal(find(c, n, "persons_total")->month, 0); /* a stock */
    assert_int_equal(find(c, n, "persons_new")->month, 202403);
    assert_string_equal(c[0].unit, UNIT);
    r.deleted = 1; /* tombstones count nothing */
    assert_int_equal(ps_counters_contrib(&r, c, PS_CONTRIB_MAX), 0);
}

static void test_birth(void **state)
{
    Popsync__Record r;
    Popsync__Birth b = POPSYNC__BIRTH__INIT;
    ps_contrib_t c[PS_CONTRIB_MAX];
    size_t n;
    (void)state;
    rec(&r, POPSYNC__RECORD__BODY_BIRTH);
    r.birth = &b;
    b.birth_date = "2024-05-20";
    b.child_sex = POPSYNC__SEX__SEX_MALE;
    n = ps_counters_contrib(&r, c, PS_CONTRIB_MAX);
    assert_int_equal(n, 2);
    assert_non_null(find(c, n, "births_male"));
    assert_int_equal(find(c, n, "births_total")->month, 202405);
    b.child_sex = POPSYNC__SEX__SEX_UNSPECIFIED; /* counted in the total only */
    n = ps_counters_contrib(&r, c, PS_CONTRIB_MAX);
    assert_int_equal(n, 1);
    b.birth_date = "not a date";
    assert_int_equal(ps_counters_contrib(&r, c, PS_CONTRIB_MAX), 0);
}

static void test_migration_buckets(void **state)
{
    Popsync__Record r;
    Popsync__Migration g = POPSYNC__MIGRATION__INIT;
    ps_contrib_t c[PS_CONTRIB_MAX];
    size_t n;
    (void)state;
    rec(&r, POPSYNC__RECORD__BODY_MIGRATION);
    r.migration = &g;
    g.direction = POPSYNC__DIRECTION__DIRECTION_INFLOW;
    g.start_date = "2024-01-25";
    g.urgent = 1;
    n = ps_counters_contrib(&r, c, PS_CONTRIB_MAX);
    assert_int_equal(n, 2); /* inflow, migrations */
    g.submitted_date = "2024-02-01"; /* 7 days later */
    g.feedback_date = "2024-06-01";  /* 121 days later: the last bucket */
    n = ps_counters_contrib(&r, c, PS_CONTRIB_MAX);
    assert_int_equal(n, 6);
    assert_non_null(find(c, n, "sub_u_07"));
    assert_non_null(find(c, n, "fb_u_61"));
    assert_int_equal(find(c, n, "feedback")->month, 202401); /* the month of the start */
    g.urgent = 0;
    g.feedback_date = "2024-01-01"; /* before submission: bucket 0 */
    n = ps_counters_contrib(&r, c, PS_CONTRIB_MAX);
    assert_non_null(find(c, n, "fb_n_00"));
}

static void test_benefit_and_visit(void **state)
{
    Popsync__Record r;
    Popsync__Benefit b = POPSYNC__BENEFIT__INIT;
    Popsync__ServiceVisit v = POPSYNC__SERVICE_VISIT__INIT;
    ps_contrib_t c[PS_CONTRIB_MAX];
    size_t n;
    (void)state;
    rec(&r, POPSYNC__RECORD__BODY_BENEFIT);
    r.benefit = &b;
    b.amount_fen = 120050;
    b.paid_date = "2024-07-02";
    b.status = POPSYNC__BENEFIT_STATUS__BENEFIT_STATUS_APPROVED; /* not paid: nothing */
    assert_int_equal(ps_counters_contrib(&r, c, PS_CONTRIB_MAX), 0);
    b.status = POPSYNC__BENEFIT_STATUS__BENEFIT_STATUS_PAID;
    n = ps_counters_contrib(&r, c, PS_CONTRIB_MAX);
    assert_int_equal(n, 2);
    assert_int_equal(find(c, n, "benefits_paid_fen")->value, 120050);
    assert_int_equal(find(c, n, "benefits_paid")->month, 202407);

    rec(&r, POPSYNC__RECORD__BODY_SERVICE_VISIT);
    r.service_visit = &v;
    v.visit_date = "2024-08-09";
    assert_int_equal(ps_counters_contrib(&r, c, PS_CONTRIB_MAX), 0); /* no service */
    v.service = "followup";
    n = ps_counters_contrib(&r, c, PS_CONTRIB_MAX);
    assert_int_equal(n, 2);
    assert_non_null(find(c, n, "visits_followup"));
    assert_non_null(find(c, n, "visits_total"));
    /* max bounds what is written */
    assert_int_equal(ps_counters_contrib(&r, c, 1), 1);
}

/* The deadline rule: buckets up to the deadline are on time; bucket 61
 * ("later") only under a deadline above 60 days. */
static void test_on_time(void **state)
{
    (void)state;
    assert_int_equal(ps_counters_on_time("sub_u_15", 15, 30), 1);
    assert_int_equal(ps_counters_on_time("sub_u_16", 15, 30), 0);
    assert_int_equal(ps_counters_on_time("sub_n_16", 15, 30), 1);
    assert_int_equal(ps_counters_on_time("fb_n_30", 15, 30), 2);
    assert_int_equal(ps_counters_on_time("fb_n_31", 15, 30), 0);
    assert_int_equal(ps_counters_on_time("fb_u_61", 15, 60), 0);
    assert_int_equal(ps_counters_on_time("fb_u_61", 15, 90), 0);
    assert_int_equal(ps_counters_on_time("fb_n_61", 15, 90), 2);
    assert_int_equal(ps_counters_on_time("submitted", 15, 30), -1);
    assert_int_equal(ps_counters_on_time("births_total", 15, 30), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_between), cmocka_unit_test(test_on_time), cmocka_unit_test(test_month_of),
        cmocka_unit_test(test_person),       cmocka_unit_test(test_birth),
        cmocka_unit_test(test_migration_buckets), cmocka_unit_test(test_benefit_and_visit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
