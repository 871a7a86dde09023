/* test_query_rules.c - what a Query means (common/query_rules.h), the one
 * set of rules the server and the offline cache answer with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "err.h"
#include "query_rules.h"
#include "record_fmt.h"

static Popsync__Record *person(const char *unit, const char *sex, const char *birth)
{
    Popsync__Record *r = NULL;
    char err[128];
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_PERSON), PS_OK);
    assert_int_equal(ps_record_set(r, "orgunit", unit, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "sex", sex, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "birth_date", birth, err, sizeof(err)), PS_OK);
    r->created_ms = 1764547200000; /* 2025-12-01 UTC */
    return r;
}

static void names_checked(void **state)
{
    Popsync__Query q = POPSYNC__QUERY__INIT;
    Popsync__QueryFilter f = POPSYNC__QUERY_FILTER__INIT, *fp = &f;
    char *groups[] = {"township", "sex"}, *bad[] = {"shoe_size"};
    char err[128];
    (void)state;
    assert_int_equal(ps_query_check(&q, err, sizeof(err)), PS_EINVAL); /* no kind */
    q.kind = POPSYNC__KIND__KIND_PERSON;
    q.group_by = groups;
    q.n_group_by = 2;
    assert_int_equal(ps_query_check(&q, err, sizeof(err)), PS_OK);
    q.group_by = bad;
    q.n_group_by = 1;
    assert_int_equal(ps_query_check(&q, err, sizeof(err)), PS_EINVAL);
    assert_string_equal(err, "unknown group 'shoe_size'");
    q.n_group_by = 0;
    f.field = "shoe_size";
    q.filters = &fp;
    q.n_filters = 1;
    assert_int_equal(ps_query_check(&q, err, sizeof(err)), PS_EINVAL);
    q.n_filters = 0;
    q.date_field = "birth_date";
    assert_int_equal(ps_query_check(&q, err, sizeof(err)), PS_OK);
}

static void filters_and_dates(void **state)
{
    Popsync__Query q = POPSYNC__QUERY__INIT;
    Popsync__QueryFilter f = POPSYNC__QUERY_FILTER__INIT, *fp = &f;
    Popsync__Record *r = person("130203001001", "female", "1990-05-15");
    (void)state;
    q.kind = POPSYNC__KIND__KIND_PERSON;
    assert_true(ps_query_match(&q, r));
    q.date_field = "birth_date";
    q.date_from = "1990-01-01";
    q.date_to = "1990-12-31";
    assert_true(ps_query_match(&q, r));
    q.date_from = "1990-05-16";
    assert_false(ps_query_match(&q, r));
    q.date_from = "";
    f.field = "sex";
    f.value = "female";
    q.filters = &fp;
    q.n_filters = 1;
    assert_true(ps_query_match(&q, r));
    f.value = "male";
    assert_false(ps_query_match(&q, r));
    f.field = "orgunit";
    f.value = "130203001001";
    assert_true(ps_query_match(&q, r));
    ps_record_free(r);
}

static void group_parts(void **state)
{
    Popsync__Query q = POPSYNC__QUERY__INIT;
    Popsync__Record *r = person("130203001001", "female", "1990-05-15");
    char out[64];
    (void)state;
    q.kind = POPSYNC__KIND__KIND_PERSON;
    ps_query_group_part(NULL, &q, r, "unit", out, sizeof(out));
    assert_string_equal(out, "130203001001");
    ps_query_group_part(NULL, &q, r, "township", out, sizeof(out)); /* no tree: the code's township part */
    assert_string_equal(out, "130203001000");
    ps_query_group_part(NULL, &q, r, "kind", out, sizeof(out));
    assert_string_equal(out, "person");
    ps_query_group_part(NULL, &q, r, "month", out, sizeof(out)); /* no date field: creation */
    assert_string_equal(out, "2025-12");
    q.date_field = "birth_date";
    ps_query_group_part(NULL, &q, r, "month", out, sizeof(out));
    assert_string_equal(out, "1990-05");
    ps_query_group_part(NULL, &q, r, "sex", out, sizeof(out));
    assert_string_equal(out, "female");
    ps_record_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_checked),
        cmocka_unit_test(filters_and_dates),
        cmocka_unit_test(group_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
