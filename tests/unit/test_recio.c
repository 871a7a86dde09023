/* test_recio.c - unit tests for common/recio.c.
 *
 * Owns: checks of the CSV and JSON record readers and writers: the CSV forms
 * spreadsheets produce (BOM, CRLF, quoted commas, doubled quotes, line
 * breaks inside cells, Chinese text, empty cells), physical line numbers of
 * rows after multi-line cells, per-row and per-file errors, a 100,000-row
 * file, JSON arrays and JSON Lines, and writer -> reader -> writer giving
 * the same bytes.  Run under PS_SANITIZE=ON to check that everything is freed.
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
#include "ids.h"
#include "recio.h"
#include "record_fmt.h"

#include <jansson.h>

#define PERSON POPSYNC__KIND__KIND_PERSON
#define BIRTH POPSYNC__KIND__KIND_BIRTH

/* ---- a callback that keeps what it is given -------------------------------- */

typedef struct got_row {
    unsigned long line;
    Popsync__Record *rec;
    ps_verrs_t errs;
    int file_error;
    unsigned long titles;
} got_row_t;

typedef struct got {
    got_row_t *rows;
    size_t n, cap;
    size_t nfile; /* file errors among rows */
} got_t;

static int keep(ps_recio_row_t *row, void *arg)
{
    got_t *g = arg;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->rows = realloc(g->rows, g->cap * sizeof(*g->rows));
        assert_non_null(g->rows);
    }
    /* A row carries a record or errors, never both. */
    assert_true((row->rec != NULL) != (row->errs.n > 0));
    g->rows[g->n].line = row->line;
    g->rows[g->n].rec = row->rec;
    g->rows[g->n].errs = row->errs;
    g->rows[g->n].file_error = row->file_error;
    g->rows[g->n].titles = row->titles;
    g->nfile += row->file_error != 0;
    g->n++;
    return 0;
}

static void got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        ps_record_free(g->rows[i].rec);
    free(g->rows);
    memset(g, 0, sizeof(*g));
}

static int read_csv(const char *text, int kind, got_t *g)
{
    memset(g, 0, sizeof(*g));
    return ps_recio_read_csv(text, strlen(text), kind, keep, g);
}

static int read_json(const char *text, int kind, got_t *g)
{
    memset(g, 0, sizeof(*g));
    return ps_recio_read_json(text, strlen(text), kind, keep, g);
}

/* Asserts that field of row i reads as want. */
static void assert_field(const got_t *g, size_t i, const char *field, const char *want)
{
    char buf[1024];
    assert_true(i < g->n);
    assert_non_null(g->rows[i].rec);
    assert_int_equal(ps_record_get_text(g->rows[i].rec, field, buf, sizeof(buf)), PS_OK);
    assert_string_equal(buf, want);
}

/* Asserts that row i is an error row naming field (and, if given, a reason
 * containing want_reason). */
static void assert_row_error(const got_t *g, size_t i, unsigned long line, const char *field,
                             const char *want_reason)
{
    assert_true(i < g->n);
    assert_int_equal(g->rows[i].line, line);
    assert_null(g->rows[i].rec);
    assert_true(g->rows[i].errs.n >= 1);
    assert_string_equal(g->rows[i].errs.e[0].field, field);
    if (want_reason)
        assert_non_null(strstr(g->rows[i].errs.e[0].reason, want_reason));
}

/* ---- CSV reader ------------------------------------------------------------ */

static void test_csv_spreadsheet_forms(void **state)
{
    /* BOM, CRLF, a quoted comma, doubled quotes, a cell spanning three
     * physical lines (CRLF then LF inside), Chinese text, empty cells, a
     * blank line, and no line break at the end. */
    const char *csv = "\xEF\xBB\xBFname,address,phone\r\n"           /* 1 */
                      "张三,\"北京市, 朝阳区\",\r\n"                  /* 2 */
                      "李四,\"他说\"\"你好\"\"\",13800000000\r\n"     /* 3 */
                      "王五,\"第一行\r\n第二行\n第三行\",\r\n"        /* 4-6 */
                      "赵六,,\r\n"                                    /* 7 */
                      "\r\n"                                          /* 8: blank */
                      "  钱七  , \"  padded  \" ,9";                  /* 9 */
    got_t g;
    (void)state;

    assert_int_equal(read_csv(csv, PERSON, &g), PS_OK);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.nfile, 0);
    assert_int_equal(g.rows[0].line, 2);
    assert_field(&g, 0, "name", "张三");
    assert_field(&g, 0, "address", "北京市, 朝阳区");
    assert_field(&g, 0, "phone", "");
    assert_int_equal(g.rows[1].line, 3);
    assert_field(&g, 1, "address", "他说\"你好\"");
    assert_field(&g, 1, "phone", "13800000000");
    assert_int_equal(g.rows[2].line, 4);
    /* A CRLF inside a quoted cell is read as LF (the form a record keeps). */
    assert_field(&g, 2, "address", "第一行\n第二行\n第三行");
    assert_int_equal(g.rows[3].line, 7);
    assert_field(&g, 3, "name", "赵六");
    assert_field(&g, 3, "address", "");
    assert_int_equal(g.rows[4].line, 9);
    /* Spaces around an unquoted cell are trimmed; inside quotes they stay. */
    assert_field(&g, 4, "name", "钱七");
    assert_field(&g, 4, "address", "  padded  ");
    /* No id column: the reader leaves ids to its caller. */
    assert_int_equal(g.rows[0].rec->id.len, 0);
    got_free(&g);
}

static void test_csv_line_ends(void **state)
{
    static const char *const forms[] = {
        "name,phone\n甲,1\n乙,2\n",       /* LF, trailing newline */
        "name,phone\n甲,1\n乙,2",         /* LF, none */
        "name,phone\r\n甲,1\r\n乙,2\r\n", /* CRLF */
        "name,phone\r甲,1\r乙,2\r",       /* old Mac CR */
        "name,phone\n\n\n甲,1\n  \n乙,2\n\n",
        "name,phone\r\n\"甲\",\"1\"\r\n\"乙\",\"2\"",  /* ends inside a quoted cell's close */
    };
    static const unsigned long lines[][2] = {{2, 3}, {2, 3}, {2, 3}, {2, 3}, {4, 6}, {2, 3}};
    (void)state;

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        got_t g;
        assert_int_equal(read_csv(forms[i], PERSON, &g), PS_OK);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.rows[0].line, lines[i][0]);
        assert_int_equal(g.rows[1].line, lines[i][1]);
        assert_field(&g, 0, "name", "甲");
        assert_field(&g, 1, "phone", "2");
        got_free(&g);
    }
}

static int has_error_on(const ps_verrs_t *v, const char *field)
{
    for (size_t i = 0; i < v->n && i < PS_VERR_MAX; i++)
        if (strcmp(v->e[i].field, field) == 0)
            return 1;
    return 0;
}

/* Excel writes a line break inside a cell as CRLF within quotes: it must read
 * as LF so that the record passes validation (a CR is a control character). */
static void test_csv_crlf_inside_quoted_field(void **state)
{
    const char *csv = "name,id_number,sex,birth_date,address\r\n"
                      "张三,110105199003070011,male,1990-03-07,\"北京市朝阳区\r\n三号楼\r\n\r\n二单元\"\r\n"
                      "李四,110105199003070027,female,1990-03-07,\"lone\rCR\"\r\n";
    got_t g;
    ps_verrs_t v;
    (void)state;

    assert_int_equal(read_csv(csv, PERSON, &g), PS_OK);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.rows[0].line, 2);
    assert_field(&g, 0, "address", "北京市朝阳区\n三号楼\n\n二单元");
    memset(&v, 0, sizeof(v));
    ps_validate_record(g.rows[0].rec, NULL, &v);
    for (size_t i = 0; i < v.n && i < PS_VERR_MAX; i++)
        assert_string_not_equal(v.e[i].field, "address");
    /* Only CRLF pairs are joined: a lone CR stays, and validation names it. */
    assert_int_equal(g.rows[1].line, 6);
    assert_field(&g, 1, "address", "lone\rCR");
    memset(&v, 0, sizeof(v));
    ps_validate_record(g.rows[1].rec, NULL, &v);
    assert_true(has_error_on(&v, "address"));
    got_free(&g);
}

static void test_csv_ids_and_orgunit(void **state)
{
    const char *csv = "id,orgunit,name\n"
                      "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b,110105001001,甲\n"
                      ",,乙\n"
                      "not-a-uuid,110105001001,丙\n";
    got_t g;
    (void)state;

    assert_int_equal(read_csv(csv, PERSON, &g), PS_OK);
    assert_int_equal(g.n, 3);
    assert_field(&g, 0, "id", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    assert_field(&g, 0, "orgunit", "110105001001");
    assert_int_equal(g.rows[1].rec->id.len, 0);
    assert_field(&g, 1, "orgunit", "");
    assert_row_error(&g, 2, 4, "id", "UUID");
    got_free(&g);
}

static void test_csv_row_errors(void **state)
{
    /* Bad rows are reported at their line; the rows after them still come. */
    const char *csv = "name,sex,phone\n"
                      "甲,male,1\n"
                      "乙,female\n"                  /* 3: too few cells: the last is empty */
                      "丙,male,1,extra\n"            /* 4: too many */
                      "丁,unknown-sex,1\n"           /* 5: bad enum */
                      "戊,\"male\nfemale\",1\n"      /* 6-7: bad enum over two lines */
                      "\xE5\xBC\xA0\xFF\xFE,male,1\n" /* 8: bad UTF-8 */
                      "己,female,2\n";               /* 9 */
    got_t g;
    (void)state;

    assert_int_equal(read_csv(csv, PERSON, &g), PS_OK);
    assert_int_equal(g.n, 7);
    assert_int_equal(g.rows[0].line, 2);
    assert_non_null(g.rows[0].rec);
    assert_field(&g, 1, "sex", "female");
    assert_field(&g, 1, "phone", "");
    assert_row_error(&g, 2, 4, PS_RECIO_ROW_FIELD, "4 cells");
    assert_row_error(&g, 3, 5, "sex", "expected one of");
    /* Reasons never echo the value: it could be a name or an ID number. */
    assert_null(strstr(g.rows[3].errs.e[0].reason, "unknown-sex"));
    assert_row_error(&g, 4, 6, "sex", NULL);
    assert_row_error(&g, 5, 8, "name", "UTF-8");
    assert_int_equal(g.rows[6].line, 9);
    assert_field(&g, 6, "name", "己");
    got_free(&g);
}

static void test_csv_errors_never_echo_values(void **state)
{
    const char *csv = "birth_order,birth_date,mother_id\n"
                      "secretvalue,1990-01-01,\n"
                      "1,1990-01-01,secret-mother-id\n";
    got_t g;
    (void)state;

    assert_int_equal(read_csv(csv, BIRTH, &g), PS_OK);
    assert_int_equal(g.n, 2);
    assert_row_error(&g, 0, 2, "birth_order", "not a valid");
    assert_null(strstr(g.rows[0].errs.e[0].reason, "secret"));
    assert_row_error(&g, 1, 3, "mother_id", NULL);
    assert_null(strstr(g.rows[1].errs.e[0].reason, "secret"));
    got_free(&g);
}

static void test_csv_several_errors_in_a_row(void **state)
{
    const char *csv = "sex,marital_status,registration\nx,y,z\n";
    got_t g;
    (void)state;

    assert_int_equal(read_csv(csv, PERSON, &g), PS_OK);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.rows[0].errs.n, 3);
    assert_string_equal(g.rows[0].errs.e[0].field, "sex");
    assert_string_equal(g.rows[0].errs.e[1].field, "marital_status");
    assert_string_equal(g.rows[0].errs.e[2].field, "registration");
    got_free(&g);
}

static void test_csv_unknown_columns(void **state)
{
    /* Reported once, for the whole file, before any row. */
    const char *csv = "name,colour,phone,name,weight\n甲,red,1,甲,50\n乙,blue,2,乙,60\n";
    got_t g;
    (void)state;

    assert_int_equal(read_csv(csv, PERSON, &g), PS_EINVAL);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.nfile, 1);
    assert_int_equal(g.rows[0].line, 1);
    assert_null(g.rows[0].rec);
    assert_int_equal(g.rows[0].errs.n, 3);
    assert_string_equal(g.rows[0].errs.e[0].field, "colour");
    assert_non_null(strstr(g.rows[0].errs.e[0].reason, "unknown column"));
    assert_string_equal(g.rows[0].errs.e[1].field, "name");
    assert_non_null(strstr(g.rows[0].errs.e[1].reason, "more than once"));
    assert_string_equal(g.rows[0].errs.e[2].field, "weight");
    got_free(&g);

    /* A field of another kind is unknown too. */
    assert_int_equal(read_csv("name,mother_id\n", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.rows[0].errs.e[0].field, "mother_id");
    got_free(&g);
}

/* A sheet as a clerk's Excel saves it: a merged title cell and a line of
 * who filled it in above the header, rows of empty cells between and below
 * the records (full-width spaces count as empty). */
static void test_csv_titles_and_empty_rows(void **state)
{
    const char *csv = "某某镇人口登记表,,,\r\n"
                      ",填报单位：某某镇,,填报日期：2026年1月5日\r\n"
                      ",,,\r\n"
                      "姓名,联系电话,住址,民族\r\n"
                      "甲,13800000001,幸福路1号,汉族\r\n"
                      ",,\xE3\x80\x80,\r\n"
                      "乙,13800000002,幸福路2号,汉族\r\n"
                      ",,,\r\n,,,\r\n";
    got_t g;
    (void)state;

    assert_int_equal(read_csv(csv, PERSON, &g), PS_OK);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.rows[0].line, 5);
    assert_int_equal(g.rows[1].line, 7);
    assert_string_equal(g.rows[0].rec->person->name, "甲");
    assert_string_equal(g.rows[1].rec->person->phone, "13800000002");
    assert_int_equal(g.rows[0].titles, 2);
    got_free(&g);

    /* Three unknown names are a header with typos, not a title. */
    assert_int_equal(read_csv("nmae,phnoe,adress\n甲,1,x\n", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.n, 1);
    assert_true(g.rows[0].file_error);
    assert_int_equal(g.rows[0].line, 1);
    got_free(&g);

    /* Two misspelt names skipped as a title: the records below are not
     * taken for a header (their cells would be quoted as column names). */
    assert_int_equal(read_csv("nmae,phnoe\n甲,1\n乙,2\n丙,3\n丁,4\n戊,5\n己,6\n庚,7\n", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.n, 1);
    assert_true(g.rows[0].file_error);
    assert_int_equal(g.rows[0].line, 6);
    assert_string_equal(g.rows[0].errs.e[0].field, PS_RECIO_FILE_FIELD);
    assert_non_null(strstr(g.rows[0].errs.e[0].reason, "no header row"));
    got_free(&g);

    /* Titles and no header: said so, at the end. */
    assert_int_equal(read_csv("某某镇人口登记表,,\n\n", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.nfile, 1);
    assert_non_null(strstr(g.rows[0].errs.e[0].reason, "no header row"));
    got_free(&g);
}

/* A workbook row leaves out the empty cells after its last value; empty
 * cells past the header's last column are nothing. */
static void test_csv_short_and_long_rows(void **state)
{
    got_t g;
    (void)state;

    assert_int_equal(read_csv("name,phone,address\n甲\n乙,2,x,,\xE3\x80\x80,\n丙,3,y,,z\n", PERSON, &g), PS_OK);
    assert_int_equal(g.n, 3);
    assert_field(&g, 0, "name", "甲");
    assert_field(&g, 0, "address", "");
    assert_field(&g, 1, "address", "x");
    assert_row_error(&g, 2, 4, PS_RECIO_ROW_FIELD, "5 cells, the header has 3");
    got_free(&g);
}

/* Cells separated by tabs (Excel's "Unicode text", cells copied out of a
 * sheet) or semicolons: told from the first lines; a comma inside a cell
 * of a tab-separated file is text. */
static void test_csv_other_separators(void **state)
{
    got_t g;
    (void)state;

    assert_int_equal(read_csv("name\tphone\taddress\n甲\t\t成都, 草堂\n乙\t2\tx\n", PERSON, &g), PS_OK);
    assert_int_equal(g.n, 2);
    assert_field(&g, 0, "phone", "");
    assert_field(&g, 0, "address", "成都, 草堂");
    assert_field(&g, 1, "phone", "2");
    got_free(&g);
    assert_int_equal(read_csv("name;phone\n甲;1\n", PERSON, &g), PS_OK);
    assert_int_equal(g.n, 1);
    assert_field(&g, 0, "phone", "1");
    got_free(&g);
    /* A comma file whose addresses hold semicolons stays a comma file. */
    assert_int_equal(read_csv("name,address\n甲,a;b\n", PERSON, &g), PS_OK);
    assert_field(&g, 0, "address", "a;b");
    got_free(&g);
}

/* ="0123": Excel's formula for text, as systems write ID numbers for
 * Excel; read as the text.  Inside a quoted cell it is text as it is. */
static void test_csv_excel_text_cells(void **state)
{
    got_t g;
    (void)state;

    assert_int_equal(read_csv("name,id_number,address\n甲,=\"110105199003071239\",\"a,=\"\"b\"\"\"\n"
                              "=\"乙\",=\"11010519900307123X\",x\n",
                              PERSON, &g),
                     PS_OK);
    assert_int_equal(g.n, 2);
    assert_field(&g, 0, "id_number", "110105199003071239");
    assert_field(&g, 0, "address", "a,=\"b\"");
    assert_field(&g, 1, "name", "乙");
    assert_field(&g, 1, "id_number", "11010519900307123X");
    got_free(&g);
}

static void test_csv_file_errors(void **state)
{
    got_t g;
    (void)state;

    /* Text after a closing quote: found before any row is handed over, so
     * no row above it is stored while those below it are dropped. */
    assert_int_equal(read_csv("name,phone\n甲,1\n\"乙\"x,2\n丙,3\n", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.n, 1);
    assert_true(g.rows[0].file_error);
    assert_int_equal(g.rows[0].line, 3);
    assert_string_equal(g.rows[0].errs.e[0].field, PS_RECIO_FILE_FIELD);
    got_free(&g);

    /* A quoted cell never closed: reported at the row it started on. */
    assert_int_equal(read_csv("name,address\n甲,\"open\n\nstill open\n", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.n, 1);
    assert_true(g.rows[0].file_error);
    assert_int_equal(g.rows[0].line, 2);
    got_free(&g);

    /* Nothing at all, or only a BOM: no header. */
    assert_int_equal(read_csv("", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.nfile, 1);
    got_free(&g);
    assert_int_equal(read_csv("\xEF\xBB\xBF\r\n", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.nfile, 1);
    got_free(&g);

    /* A header alone is an empty file, not an error. */
    assert_int_equal(read_csv("name,phone\r\n", PERSON, &g), PS_OK);
    assert_int_equal(g.n, 0);
    got_free(&g);

    /* An unknown kind is the caller's mistake. */
    assert_int_equal(read_csv("name\n", 99, &g), PS_EINVAL);
    assert_int_equal(g.n, 0);
    got_free(&g);
}

static int stop_at_second(ps_recio_row_t *row, void *arg)
{
    int *n = arg;
    ps_record_free(row->rec);
    return ++*n == 2 ? PS_EIO : 0;
}

static void test_callback_stops_reader(void **state)
{
    const char *csv = "name\n甲\n乙\n丙\n";
    const char *jl = "{\"name\":\"甲\"}\n{\"name\":\"乙\"}\n{\"name\":\"丙\"}\n";
    int n = 0;
    (void)state;

    assert_int_equal(ps_recio_read_csv(csv, strlen(csv), PERSON, stop_at_second, &n), PS_EIO);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(ps_recio_read_json(jl, strlen(jl), PERSON, stop_at_second, &n), PS_EIO);
    assert_int_equal(n, 2);
}

/* Checks rows of the big file as they come, without keeping them. */
typedef struct big {
    unsigned long n, next_line;
    int bad;
} big_t;

static int check_big(ps_recio_row_t *row, void *arg)
{
    big_t *b = arg;
    char name[64], want[64];

    if (!row->rec || row->line != b->next_line)
        b->bad++;
    if (row->rec) {
        snprintf(want, sizeof(want), "姓名%lu", b->n);
        if (ps_record_get_text(row->rec, "name", name, sizeof(name)) != PS_OK || strcmp(name, want) != 0)
            b->bad++;
    }
    /* Every 1000th row's address spans two lines. */
    b->next_line += b->n % 1000 == 0 ? 2 : 1;
    b->n++;
    ps_record_free(row->rec);
    return 0;
}

static void test_csv_100k_rows(void **state)
{
    const unsigned long rows = 100000;
    size_t cap = rows * 160 + 256, len = 0;
    char *csv = malloc(cap);
    big_t b = {0, 2, 0};
    (void)state;

    assert_non_null(csv);
    len += (size_t)snprintf(csv + len, cap - len, "\xEF\xBB\xBFname,id_number,sex,birth_date,phone,address\r\n");
    for (unsigned long i = 0; i < rows; i++) {
        len += (size_t)snprintf(csv + len, cap - len,
                                i % 1000 == 0 ? "姓名%lu,11010519900307%04lu,%s,1990-03-07,138%08lu,\"北京, 第%lu号\r\n二楼\"\r\n"
                                              : "姓名%lu,11010519900307%04lu,%s,1990-03-07,138%08lu,北京第%lu号\r\n",
                                i, i % 10000, i % 2 ? "male" : "female", i, i);
        assert_true(len < cap);
    }
    assert_int_equal(ps_recio_read_csv(csv, len, PERSON, check_big, &b), PS_OK);
    assert_int_equal(b.n, rows);
    assert_int_equal(b.bad, 0);
    free(csv);
}

/* ---- JSON reader ----------------------------------------------------------- */

static void test_json_array(void **state)
{
    /* As `popsync list --format json` prints it, envelope and all. */
    const char *js = "\xEF\xBB\xBF[\n"
                     "  {\"id\": \"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\", \"kind\": \"person\",\n"
                     "   \"orgunit\": \"110105001001\", \"name\": \"张三\", \"sex\": \"male\",\n"
                     "   \"deleted\": false, \"rev\": {\"gen\": 3, \"hlc\": 1, \"node\": \"00\"},\n"
                     "   \"created_ms\": 1, \"updated_ms\": 2, \"changed_by\": \"ab\"},\n"
                     "  {\"name\": \"李四\", \"colour\": \"red\", \"sex\": \"x\"},\n"
                     "  {\"kind\": \"household\", \"name\": \"王五\"},\n"
                     "  42,\n"
                     "  {\"name\": null, \"address\": \"a\\nb, \\\"c\\\"\", \"id\": null}\n"
                     "]\n";
    got_t g;
    (void)state;

    assert_int_equal(read_json(js, PERSON, &g), PS_OK);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.nfile, 0);
    assert_int_equal(g.rows[0].line, 1);
    assert_field(&g, 0, "id", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    assert_field(&g, 0, "name", "张三");
    assert_field(&g, 0, "orgunit", "110105001001");
    /* The cache's bookkeeping is not taken from the file. */
    assert_null(g.rows[0].rec->rev);
    assert_int_equal(g.rows[0].rec->created_ms, 0);
    /* Every bad key of an element is reported, by element index. */
    assert_row_error(&g, 1, 2, "colour", "unknown field");
    assert_int_equal(g.rows[1].errs.n, 2);
    assert_string_equal(g.rows[1].errs.e[1].field, "sex");
    assert_row_error(&g, 2, 3, "kind", NULL);
    assert_row_error(&g, 3, 4, PS_RECIO_ROW_FIELD, "not a JSON object");
    assert_int_equal(g.rows[4].line, 5);
    assert_field(&g, 4, "address", "a\nb, \"c\"");
    assert_int_equal(g.rows[4].rec->id.len, 0);
    got_free(&g);

    assert_int_equal(read_json(" [ ] \n", PERSON, &g), PS_OK);
    assert_int_equal(g.n, 0);
    got_free(&g);
}

static void test_json_array_malformed(void **state)
{
    got_t g;
    (void)state;

    /* Element 2 is broken: element 1 came, then the file error, by index. */
    assert_int_equal(read_json("[{\"name\":\"甲\"},\n{\"name\": \"乙\" \"sex\": 1}]", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.n, 2);
    assert_non_null(g.rows[0].rec);
    assert_true(g.rows[1].file_error);
    assert_int_equal(g.rows[1].line, 2);
    assert_non_null(strstr(g.rows[1].errs.e[0].reason, "line 2"));
    /* jansson quotes the text near an error; the reason must not. */
    assert_null(strstr(g.rows[1].errs.e[0].reason, "乙"));
    got_free(&g);

    assert_int_equal(read_json("[{\"name\":\"甲\"} {\"name\":\"乙\"}]", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.n, 2);
    assert_true(g.rows[1].file_error);
    got_free(&g);

    assert_int_equal(read_json("[{\"name\":\"甲\"}] extra", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.nfile, 1);
    got_free(&g);

    assert_int_equal(read_json("[{\"name\":\"甲\",\"name\":\"乙\"}]", PERSON, &g), PS_EINVAL);
    assert_int_equal(g.nfile, 1);
    got_free(&g);
}

static void test_json_lines(void **state)
{
    const char *jl = "{\"name\": \"甲\", \"phone\": \"1\"}\r\n"  /* 1 */
                     "\n"                                     /* 2: blank */
                     "{\"name\": \"乙\", \"sex\": \"nope\"}\n" /* 3 */
                     "{\"name\": \"丙\"\n"                    /* 4: broken */
                     "[1, 2]\n"                               /* 5 */
                     "   \n"                                  /* 6: blank */
                     "{\"name\": \"丁\", \"birth_date\": \"2001-02-03\"}"; /* 7 */
    got_t g;
    (void)state;

    assert_int_equal(read_json(jl, PERSON, &g), PS_OK);
    assert_int_equal(g.n, 5);
    assert_int_equal(g.rows[0].line, 1);
    assert_field(&g, 0, "phone", "1");
    assert_row_error(&g, 1, 3, "sex", NULL);
    assert_row_error(&g, 2, 4, PS_RECIO_ROW_FIELD, "not valid JSON");
    assert_null(strstr(g.rows[2].errs.e[0].reason, "丙"));
    assert_row_error(&g, 3, 5, PS_RECIO_ROW_FIELD, "not a JSON object");
    assert_int_equal(g.rows[4].line, 7);
    assert_field(&g, 4, "birth_date", "2001-02-03");
    got_free(&g);
}

/* ---- writers --------------------------------------------------------------- */

/* Persons whose text fields hold everything CSV and JSON must escape. */
static void tricky_records(Popsync__Record **recs, size_t n)
{
    static const char *const values[] = {
        "张三",
        "a,b",
        "say \"hi\"",
        "\"",
        "line1\nline2",
        /* A CRLF inside a cell reads back as LF (test_csv_crlf_inside_quoted_field),
         * so only lone CRs are here: they must come back as they went. */
        "line1\rline2\r",
        " leading and trailing ",
        "\ttab",
        "",
        "逗号，全角“引号”",
        "emoji 😀 and ,\"\n all",
        "back\\slash",
    };
    const size_t nv = sizeof(values) / sizeof(values[0]);
    char err[256], uuid[PS_UUID_STR];

    for (size_t i = 0; i < n; i++) {
        uint8_t id[PS_ID_LEN];
        assert_int_equal(ps_record_new(&recs[i], PERSON), PS_OK);
        memset(id, 0, sizeof(id));
        id[15] = (uint8_t)(i + 1);
        ps_uuid_format(id, uuid);
        recs[i]->id.data = malloc(PS_ID_LEN);
        assert_non_null(recs[i]->id.data);
        memcpy(recs[i]->id.data, id, PS_ID_LEN);
        recs[i]->id.len = PS_ID_LEN;
        assert_int_equal(ps_record_set(recs[i], "orgunit", "110105001001", err, sizeof(err)), PS_OK);
        assert_int_equal(ps_record_set(recs[i], "name", values[i % nv], err, sizeof(err)), PS_OK);
        assert_int_equal(ps_record_set(recs[i], "address", values[(i + 3) % nv], err, sizeof(err)), PS_OK);
        assert_int_equal(ps_record_set(recs[i], "ethnicity", values[(i + 7) % nv], err, sizeof(err)), PS_OK);
        assert_int_equal(ps_record_set(recs[i], "sex", i % 2 ? "male" : "female", err, sizeof(err)), PS_OK);
        assert_int_equal(ps_record_set(recs[i], "household_id", i % 3 ? uuid : "", err, sizeof(err)), PS_OK);
        /* Cache bookkeeping, which an export leaves out. */
        recs[i]->created_ms = 1234567;
        recs[i]->updated_ms = 7654321;
    }
}

static char *write_all(int format, unsigned flags, Popsync__Record *const *recs, size_t n, size_t *len)
{
    ps_recio_writer_t w;
    char *buf = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);

    assert_non_null(f);
    assert_int_equal(ps_recio_writer_begin(&w, f, format, PERSON, flags), PS_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ps_recio_writer_put(&w, recs[i]), PS_OK);
    assert_int_equal(ps_recio_writer_end(&w), PS_OK);
    assert_int_equal(fclose(f), 0);
    *len = blen;
    return buf;
}

static void roundtrip(int format, unsigned flags)
{
    enum { N = 30 };
    Popsync__Record *recs[N];
    got_t g;
    size_t len1, len2;
    char *out1, *out2;

    tricky_records(recs, N);
    out1 = write_all(format, flags, recs, N, &len1);
    memset(&g, 0, sizeof(g));
    assert_int_equal(ps_recio_read(format, out1, len1, PERSON, keep, &g), PS_OK);
    assert_int_equal(g.n, N);
    for (size_t i = 0; i < N; i++) {
        assert_non_null(g.rows[i].rec);
        /* Same ids and fields as the originals. */
        assert_memory_equal(g.rows[i].rec->id.data, recs[i]->id.data, PS_ID_LEN);
        recs[i] = (ps_record_free(recs[i]), g.rows[i].rec);
        g.rows[i].rec = NULL;
    }
    got_free(&g);
    out2 = write_all(format, flags, recs, N, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(out1, out2, len1);
    for (size_t i = 0; i < N; i++)
        ps_record_free(recs[i]);
    free(out1);
    free(out2);
}

static void test_csv_roundtrip(void **state)
{
    (void)state;
    roundtrip(PS_RECIO_CSV, 0);
    roundtrip(PS_RECIO_CSV, PS_RECIO_BOM);
}

static void test_json_roundtrip(void **state)
{
    (void)state;
    roundtrip(PS_RECIO_JSON, 0);
}

static void test_csv_writer_layout(void **state)
{
    Popsync__Record *recs[2];
    size_t len;
    char *out;
    const char *names[64];
    size_t nn = ps_record_field_names(PERSON, names, 64);
    char head[1024] = "id,orgunit";
    (void)state;

    for (size_t i = 0; i < nn; i++) {
        strcat(head, ",");
        strcat(head, names[i]);
    }
    strcat(head, "\r\n");
    tricky_records(recs, 2);
    out = write_all(PS_RECIO_CSV, 0, recs, 2, &len);
    /* Header, CRLF line ends, quotes only where needed, no BOM. */
    assert_memory_equal(out, head, strlen(head));
    assert_non_null(strstr(out, "\r\n00000000-0000-0000-0000-000000000001,110105001001,,张三,female,,"));
    assert_non_null(strstr(out, ",\"\ttab\","));  /* libcsv would trim it unquoted */
    assert_non_null(strstr(out, ",\"a,b\","));
    assert_int_equal(out[len - 2], '\r');
    assert_int_equal(out[len - 1], '\n');
    free(out);
    out = write_all(PS_RECIO_CSV, PS_RECIO_BOM, recs, 2, &len);
    assert_memory_equal(out, "\xEF\xBB\xBFid,", 6);
    free(out);
    for (size_t i = 0; i < 2; i++)
        ps_record_free(recs[i]);
}

static void test_json_writer_layout(void **state)
{
    Popsync__Record *recs[2];
    json_t *arr, *fromjansson;
    json_error_t je;
    size_t len;
    char *out, *want;
    (void)state;

    tricky_records(recs, 2);
    out = write_all(PS_RECIO_JSON, 0, recs, 2, &len);
    /* The same bytes jansson gives for the whole array, without the
     * cache's keys. */
    arr = json_loadb(out, len, 0, &je);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 2);
    assert_null(json_object_get(json_array_get(arr, 0), "created_ms"));
    assert_null(json_object_get(json_array_get(arr, 0), "rev"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "kind")), "person");
    fromjansson = json_array();
    for (size_t i = 0; i < 2; i++) {
        json_t *o = ps_record_to_json(recs[i]);
        json_object_del(o, "deleted");
        json_object_del(o, "rev");
        json_object_del(o, "created_ms");
        json_object_del(o, "updated_ms");
        json_object_del(o, "changed_by");
        json_object_del(o, "synthetic");
        json_array_append_new(fromjansson, o);
    }
    want = json_dumps(fromjansson, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    assert_int_equal(len, strlen(want) + 1);
    assert_memory_equal(out, want, strlen(want));
    assert_int_equal(out[len - 1], '\n');
    free(want);
    free(out);
    json_decref(arr);
    json_decref(fromjansson);

    out = write_all(PS_RECIO_JSON, 0, recs, 0, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(out, "[]\n", 3);
    free(out);
    for (size_t i = 0; i < 2; i++)
        ps_record_free(recs[i]);
}

static void test_formats(void **state)
{
    (void)state;
    assert_int_equal(ps_recio_format_from_path("a/b.csv"), PS_RECIO_CSV);
    assert_int_equal(ps_recio_format_from_path("B.CSV"), PS_RECIO_CSV);
    assert_int_equal(ps_recio_format_from_path("x.json"), PS_RECIO_JSON);
    assert_int_equal(ps_recio_format_from_path("x.jsonl"), PS_RECIO_JSON);
    assert_int_equal(ps_recio_format_from_path("x.txt"), PS_RECIO_CSV); /* Excel's text saves */
    assert_int_equal(ps_recio_format_from_path("x.doc"), -1);
    assert_int_equal(ps_recio_format_from_path("dir.csv/file"), -1);
    assert_int_equal(ps_recio_format_from_path("noext"), -1);
    assert_int_equal(ps_recio_format_from_name("csv"), PS_RECIO_CSV);
    assert_int_equal(ps_recio_format_from_name("json"), PS_RECIO_JSON);
    assert_int_equal(ps_recio_format_from_name("xml"), -1);
}

static void test_load_file(void **state)
{
    char path[] = "/tmp/test_recio.XXXXXX", *data;
    size_t len;
    int fd = mkstemp(path);
    FILE *f;
    (void)state;

    assert_true(fd >= 0);
    f = fdopen(fd, "wb");
    assert_non_null(f);
    for (int i = 0; i < 100000; i++)
        fputs("0123456789", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(ps_recio_load_file(path, &data, &len), PS_OK);
    assert_int_equal(len, 1000000);
    assert_int_equal(data[len], '\0');
    assert_memory_equal(data + 999990, "0123456789", 10);
    free(data);
    remove(path);
    assert_int_equal(ps_recio_load_file(path, &data, &len), PS_ENOTFOUND);
    assert_null(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_spreadsheet_forms),
        cmocka_unit_test(test_csv_line_ends),
        cmocka_unit_test(test_csv_crlf_inside_quoted_field),
        cmocka_unit_test(test_csv_ids_and_orgunit),
        cmocka_unit_test(test_csv_row_errors),
        cmocka_unit_test(test_csv_errors_never_echo_values),
        cmocka_unit_test(test_csv_several_errors_in_a_row),
        cmocka_unit_test(test_csv_unknown_columns),
        cmocka_unit_test(test_csv_titles_and_empty_rows),
        cmocka_unit_test(test_csv_short_and_long_rows),
        cmocka_unit_test(test_csv_other_separators),
        cmocka_unit_test(test_csv_excel_text_cells),
        cmocka_unit_test(test_csv_file_errors),
        cmocka_unit_test(test_callback_stops_reader),
        cmocka_unit_test(test_csv_100k_rows),
        cmocka_unit_test(test_json_array),
        cmocka_unit_test(test_json_array_malformed),
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_csv_roundtrip),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_csv_writer_layout),
        cmocka_unit_test(test_json_writer_layout),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
