/* test_server_merge.c - unit tests for server/merge.c.
 *
 * Owns: checks of the three-way merge without a store or a socket: edits
 * to different fields combine, the same field changed on both sides is a
 * conflict decided by mine_wins, "unset" equals "empty", a new record (no
 * base), the org-unit envelope, and the deletion races (an edit to a
 * deleted record is kept whole; a delete of an edited record stands).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "merge.h"

/* A person record with its body in *p (both on the caller's stack). */
static void person(Popsync__Record *r, Popsync__Person *p, const char *unit, const char *name, const char *phone,
                   const char *address)
{
    popsync__record__init(r);
    popsync__person__init(p);
    r->kind = POPSYNC__KIND__KIND_PERSON;
    r->orgunit = (char *)unit;
    r->body_case = POPSYNC__RECORD__BODY_PERSON;
    r->person = p;
    p->name = (char *)name;
    p->phone = (char *)phone;
    p->address = (char *)address;
    p->sex = POPSYNC__SEX__SEX_FEMALE;
}

static int has_field(const ps_merge_t *m, const char *name)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (strcmp(m->fields[i], name) == 0)
            return 1;
    return 0;
}

static void test_disjoint_edits_combine(void **state)
{
    Popsync__Record b, t, m;
    Popsync__Person pb, pt, pm;
    ps_merge_t out;
    (void)state;
    person(&b, &pb, "110105001000", "Li", "111", "Old street");
    person(&t, &pt, "110105001000", "Li", "222", "Old street"); /* theirs: phone */
    person(&m, &pm, "110105001000", "Li", "111", "New street"); /* mine: address */
    assert_int_equal(ps_merge(&b, &t, &m, 0, &out), PS_OK);
    assert_int_equal(out.outcome, PS_MERGE_APPLY);
    assert_int_equal(out.nfields, 0);
    assert_null(out.reason);
    assert_string_equal(out.merged.person->phone, "222");
    assert_string_equal(out.merged.person->address, "New street");
    assert_int_equal(out.mine_changed, 1);
    assert_string_equal(out.changed[0], "address");
    ps_merge_free(&out);
}

static void test_same_field_conflict(void **state)
{
    Popsync__Record b, t, m;
    Popsync__Person pb, pt, pm;
    ps_merge_t out;
    (void)state;
    person(&b, &pb, "110105001000", "Li", "111", "A");
    person(&t, &pt, "110105001000", "Li", "222", "A");
    person(&m, &pm, "110105001000", "Li", "333", "A");
    /* theirs wins: the value stays, the conflict is reported */
    assert_int_equal(ps_merge(&b, &t, &m, 0, &out), PS_OK);
    assert_int_equal(out.nfields, 1);
    assert_true(has_field(&out, "phone"));
    assert_false(out.mine_won);
    assert_string_equal(out.merged.person->phone, "222");
    assert_string_equal(out.reason, "the same field was changed on both sides");
    ps_merge_free(&out);
    /* mine wins: mine's value */
    assert_int_equal(ps_merge(&b, &t, &m, 1, &out), PS_OK);
    assert_true(out.mine_won);
    assert_string_equal(out.merged.person->phone, "333");
    ps_merge_free(&out);
    /* both made the same change: no conflict */
    pm.phone = "222";
    assert_int_equal(ps_merge(&b, &t, &m, 0, &out), PS_OK);
    assert_int_equal(out.nfields, 0);
    assert_string_equal(out.merged.person->phone, "222");
    ps_merge_free(&out);
}

static void test_unset_equals_empty(void **state)
{
    Popsync__Record b, t, m;
    Popsync__Person pb, pt, pm;
    ps_merge_t out;
    const char *names[PS_MERGE_MAX_FIELDS];
    (void)state;
    person(&b, &pb, "110105001000", "Li", NULL, "A");
    person(&t, &pt, "110105001000", "Li", "", "A");
    assert_int_equal(ps_merge_diff(&b, &t, names, PS_MERGE_MAX_FIELDS), 0);
    person(&m, &pm, "110105001000", "Wang", NULL, "A");
    assert_int_equal(ps_merge(&b, &t, &m, 0, &out), PS_OK);
    assert_int_equal(out.nfields, 0);
    assert_string_equal(out.merged.person->name, "Wang");
    ps_merge_free(&out);
}

static void test_orgunit_envelope(void **state)
{
    Popsync__Record b, t, m;
    Popsync__Person pb, pt, pm;
    ps_merge_t out;
    (void)state;
    person(&b, &pb, "110105001000", "Li", "1", "A");
    person(&t, &pt, "110105001000", "Li", "1", "A");
    person(&m, &pm, "110105002000", "Li", "1", "A"); /* mine moves the record */
    assert_int_equal(ps_merge(&b, &t, &m, 0, &out), PS_OK);
    assert_string_equal(out.merged.orgunit, "110105002000");
    ps_merge_free(&out);
    t.orgunit = "110105003000"; /* both move it, to different units */
    assert_int_equal(ps_merge(&b, &t, &m, 0, &out), PS_OK);
    assert_true(has_field(&out, "orgunit"));
    assert_string_equal(out.merged.orgunit, "110105003000");
    ps_merge_free(&out);
}

static void test_new_record_no_base(void **state)
{
    Popsync__Record t, m;
    Popsync__Person pt, pm;
    ps_merge_t out;
    (void)state;
    person(&t, &pt, "110105001000", "Li", "1", "A");
    person(&m, &pm, "110105001000", "Li", "2", "A");
    assert_int_equal(ps_merge(NULL, &t, &m, 1, &out), PS_OK);
    assert_true(has_field(&out, "phone"));
    assert_string_equal(out.merged.person->phone, "2");
    ps_merge_free(&out);
}

static void test_edit_of_deleted_kept_whole(void **state)
{
    Popsync__Record b, t, m;
    Popsync__Person pb, pt, pm;
    ps_merge_t out;
    (void)state;
    person(&b, &pb, "110105001000", "Li", "1", "A");
    person(&t, &pt, "110105001000", "Li", "1", "A");
    person(&m, &pm, "110105001000", "Li", "9", "A");
    t.deleted = 1;
    assert_int_equal(ps_merge(&b, &t, &m, 1, &out), PS_OK);
    assert_int_equal(out.outcome, PS_MERGE_KEEP_WHOLE);
    assert_true(has_field(&out, "deleted"));
    assert_false(out.mine_won);
    assert_string_equal(out.reason, "edited a record that was deleted meanwhile");
    ps_merge_free(&out);
}

static void test_delete_of_edited_stands(void **state)
{
    Popsync__Record b, t, m;
    Popsync__Person pb, pt, pm;
    ps_merge_t out;
    (void)state;
    person(&b, &pb, "110105001000", "Li", "1", "A");
    person(&t, &pt, "110105001000", "Li", "5", "A"); /* theirs edited */
    person(&m, &pm, "110105001000", "Li", "1", "A");
    m.deleted = 1; /* mine deletes */
    assert_int_equal(ps_merge(&b, &t, &m, 0, &out), PS_OK);
    assert_int_equal(out.outcome, PS_MERGE_APPLY);
    assert_true(out.merged.deleted);
    assert_true(has_field(&out, "deleted"));
    assert_string_equal(out.reason, "deleted a record that was edited meanwhile");
    ps_merge_free(&out);
    /* a delete of an untouched record: no conflict at all */
    pt.phone = "1";
    assert_int_equal(ps_merge(&b, &t, &m, 0, &out), PS_OK);
    assert_true(out.merged.deleted);
    assert_int_equal(out.nfields, 0);
    ps_merge_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disjoint_edits_combine),    cmocka_unit_test(test_same_field_conflict),
        cmocka_unit_test(test_unset_equals_empty),        cmocka_unit_test(test_orgunit_envelope),
        cmocka_unit_test(test_new_record_no_base),        cmocka_unit_test(test_edit_of_deleted_kept_whole),
        cmocka_unit_test(test_delete_of_edited_stands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
