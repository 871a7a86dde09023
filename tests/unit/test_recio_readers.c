/* test_recio_readers.c - more unit tests for the readers of common/recio.c.
 *
 * Owns: the reader cases test_recio.c leaves out: the JSON keys a record
 * file may carry and the reader ignores or checks (kind, the cache's
 * bookkeeping, empty and null ids), elements that are not objects,
 * duplicate keys, empty inputs and whitespace-only files, JSON Lines with
 * blank lines and a BOM, data after an array, a missing comma, rows with
 * too many cells, a header-only and an empty CSV, and the argument checks of the
 * readers (unknown kind, unknown format).
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
#include "recio.h"
#include "record_fmt.h"

#define PERSON POPSYNC__KIND__KIND_PERSON

typedef struct got {
    size_t rows, records, file_errors;
    unsigned long last_line;
    char first_field[64], first_reason[256];
} got_t;

static int keep(ps_recio_row_t *row, void *arg)
{
    got_t *g = arg;
    g->rows++;
    g->last_line = row->line;
    if (row->file_error)
        g->file_errors++;
    if (row->rec) {
        g->records++;
        ps_record_free(row->rec);
    } else if (row->errs.n > 0 && !g->first_field[0]) {
        snprintf(g->first_field, sizeof(g->first_field), "%s", row->errs.e[0].field);
        snprintf(g->first_reason, sizeof(g->first_reason), "%s", row->errs.e[0].reason);
    }
    return 0;
}

static int read_json(const char *s, got_t *g)
{
    memset(g, 0, sizeof(*g));
    return ps_recio_read_json(s, strlen(s), PERSON, keep, g);
}

static int read_csv(const char *s, got_t *g)
{
    memset(g, 0, sizeof(*g));
    return ps_recio_read_csv(s, strlen(s), PERSON, keep, g);
}

static void test_json_ignored_and_checked_keys(void **state)
{
    got_t g;
    (void)state;
    /* The cache's bookkeeping is accepted and ignored; kind may name the kind. */
    assert_int_equal(read_json("[{\"kind\":\"person\",\"name\":\"Li\",\"rev\":{\"gen\":3},\"deleted\":false,"
                               "\"created_ms\":1,\"updated_ms\":2,\"changed_by\":\"x\",\"id\":null}]",
                               &g),
                     PS_OK);
    assert_int_equal(g.records, 1);
    /* Another kind is refused for that row only. */
    assert_int_equal(read_json("[{\"kind\":\"birth\",\"name\":\"Li\"},{\"name\":\"Wang\"}]", &g), PS_OK);
    assert_int_equal(g.rows, 2);
    assert_int_equal(g.records, 1);
    assert_string_equal(g.first_field, "kind");
    /* A non-string kind, an id that is not a UUID, an unknown key. */
    assert_int_equal(read_json("{\"kind\":7}\n{\"id\":\"nope\"}\n{\"favourite_colour\":\"red\"}\n", &g), PS_OK);
    assert_int_equal(g.rows, 3);
    assert_int_equal(g.records, 0);
    assert_string_equal(g.first_field, "kind");
}

static void test_json_elements_not_objects(void **state)
{
    got_t g;
    (void)state;
    assert_int_equal(read_json("[1, \"two\", null, {\"name\":\"Li\"}]", &g), PS_OK);
    assert_int_equal(g.rows, 4);
    assert_int_equal(g.records, 1);
    assert_string_equal(g.first_field, PS_RECIO_ROW_FIELD);
    assert_string_equal(g.first_reason, "not a JSON object");
}

static void test_json_duplicate_keys(void **state)
{
    got_t g;
    (void)state;
    /* An array element with a duplicate key is malformed: a file error. */
    assert_int_equal(read_json("[{\"name\":\"Li\",\"name\":\"Wang\"}]", &g), PS_EINVAL);
    assert_int_equal(g.file_errors, 1);
    /* In JSON Lines it costs that line only. */
    assert_int_equal(read_json("{\"name\":\"Li\",\"name\":\"Wang\"}\n{\"name\":\"Zhao\"}\n", &g), PS_OK);
    assert_int_equal(g.rows, 2);
    assert_int_equal(g.records, 1);
}

static void test_json_empty_inputs(void **state)
{
    got_t g;
    (void)state;
    assert_int_equal(read_json("", &g), PS_OK);
    assert_int_equal(g.rows, 0);
    assert_int_equal(read_json("  \n\t\n", &g), PS_OK);
    assert_int_equal(g.rows, 0);
    assert_int_equal(read_json("[ ]\n", &g), PS_OK);
    assert_int_equal(g.rows, 0);
    assert_int_equal(read_json("\xef\xbb\xbf[]", &g), PS_OK); /* a BOM */
    assert_int_equal(g.rows, 0);
}

static void test_json_lines_blank_lines_and_bom(void **state)
{
    got_t g;
    (void)state;
    assert_int_equal(read_json("\xef\xbb\xbf{\"name\":\"Li\"}\n\n   \n{\"name\":\"Wang\"}", &g), PS_OK);
    assert_int_equal(g.records, 2);
    assert_int_equal(g.last_line, 4); /* blank lines still count */
    assert_int_equal(read_json("{\"name\":\"Li\"}\n{not json}\n", &g), PS_OK);
    assert_int_equal(g.records, 1);
    assert_string_equal(g.first_field, PS_RECIO_ROW_FIELD);
    assert_non_null(strstr(g.first_reason, "not valid JSON"));
}

static void test_json_array_tail_errors(void **state)
{
    got_t g;
    (void)state;
    assert_int_equal(read_json("[{\"name\":\"Li\"}] [1]", &g), PS_EINVAL);
    assert_int_equal(g.records, 1);
    assert_int_equal(g.file_errors, 1);
    assert_non_null(strstr(g.first_reason, "data after the array"));
    assert_int_equal(read_json("[{\"name\":\"Li\"} {\"name\":\"Wang\"}]", &g), PS_EINVAL);
    assert_non_null(strstr(g.first_reason, "',' or ']' expected"));
    assert_int_equal(read_json("[{\"name\":\"Li\"},", &g), PS_EINVAL);
    assert_int_equal(g.file_errors, 1);
}

static void test_csv_shapes(void **state)
{
    got_t g;
    (void)state;
    assert_int_equal(read_csv("name,phone\r\n", &g), PS_OK); /* header only */
    assert_int_equal(g.rows, 0);
    assert_int_equal(read_csv("name\nLi,extra\nWang\n", &g), PS_OK);
    assert_int_equal(g.rows, 2);
    assert_int_equal(g.records, 1);
    assert_string_equal(g.first_field, PS_RECIO_ROW_FIELD);
    assert_non_null(strstr(g.first_reason, "has 2 cells, the header has 1"));
    assert_int_equal(read_csv("name,,phone\nLi,,1\n", &g), PS_EINVAL); /* a column without a name */
    assert_int_equal(g.file_errors, 1);
    /* An empty CSV has no header: a file error, not "0 rows". */
    assert_int_equal(read_csv("", &g), PS_EINVAL);
    assert_int_equal(g.file_errors, 1);
    assert_int_equal(g.records, 0);
}

static void test_reader_arguments(void **state)
{
    got_t g;
    (void)state;
    memset(&g, 0, sizeof(g));
    assert_int_equal(ps_recio_read_json("[]", 2, 99, keep, &g), PS_EINVAL);
    assert_int_equal(ps_recio_read_json("[]", 2, PERSON, NULL, &g), PS_EINVAL);
    assert_int_equal(ps_recio_read(42, "[]", 2, PERSON, keep, &g), PS_EINVAL);
    assert_int_equal(ps_recio_read(PS_RECIO_JSON, "[{\"name\":\"Li\"}]", 15, PERSON, keep, &g), PS_OK);
    assert_int_equal(g.records, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_ignored_and_checked_keys), cmocka_unit_test(test_json_elements_not_objects),
        cmocka_unit_test(test_json_duplicate_keys),           cmocka_unit_test(test_json_empty_inputs),
        cmocka_unit_test(test_json_lines_blank_lines_and_bom), cmocka_unit_test(test_json_array_tail_errors),
        cmocka_unit_test(test_csv_shapes),                    cmocka_unit_test(test_reader_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
