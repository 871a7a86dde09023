/* test_orgunit.c - unit tests for common/orgunit.c (and ps_sha256).
 *
 * Owns: checks that the demo org-unit file loads into the tree DESIGN §3
 * describes, that lookups, subtrees and townships are right, that BOM, CRLF,
 * quoting and blank lines are handled, that every kind of malformed file is
 * refused with the physical line number of the bad row, and that the digest
 * is the SHA-256 of the exact bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "err.h"
#include "orgunit.h"
#include "record_fmt.h"

#define ROOT "130203000000"
#define HDR "code,parent,name,kind\n"

/* The source tree's root, from this file's own path. */
static void src_path(const char *rel, char *out, size_t n)
{
    const char *f = __FILE__, *at = strstr(f, "tests/unit/");
    int k = at ? (int)(at - f) : 0;
    snprintf(out, n, "%.*s%s", k, f, rel);
}

static ps_orgunits_t *load_demo(void)
{
    char path[4096], err[256] = "";
    ps_orgunits_t *t = NULL;
    src_path("demo/orgunits.csv", path, sizeof(path));
    if (ps_orgunits_load(path, &t, err, sizeof(err)) != PS_OK)
        fail_msg("cannot load %s: %s", path, err);
    return t;
}

static ps_orgunits_t *parse_ok(const char *csv)
{
    char err[256] = "";
    ps_orgunits_t *t = NULL;
    if (ps_orgunits_parse((const uint8_t *)csv, strlen(csv), &t, err, sizeof(err)) != PS_OK)
        fail_msg("refused: %s", err);
    return t;
}

/* ---- the demo file ----------------------------------------------------------- */

static void test_demo_shape(void **state)
{
    ps_orgunits_t *t = load_demo();
    const ps_orgunit_t *root = ps_orgunits_root(t);
    size_t n = ps_orgunits_count(t), towns = 0, nsub = 0, ntown = 0, nent = 0;
    (void)state;

    assert_int_equal(n, 50);
    assert_non_null(root);
    assert_string_equal(root->code, ROOT);
    assert_string_equal(root->parent, "");
    assert_string_equal(root->kind, "district");
    assert_int_equal(root->depth, 0);
    assert_int_equal(root->parent_idx, SIZE_MAX);

    for (size_t i = 0; i < n; i++) {
        const ps_orgunit_t *u = ps_orgunits_at(t, i);
        assert_non_null(u);
        assert_true(ps_utf8_valid(u->name, strlen(u->name)));
        assert_true(strlen(u->name) > 0);
        assert_ptr_equal(ps_orgunits_find(t, u->code), u);
        if (u->depth != 1)
            continue;
        towns++;
        /* Township codes: the district's 6 digits + 3 + 000. */
        assert_memory_equal(u->code, ROOT, 6);
        assert_string_equal(u->code + 9, "000");
        assert_ptr_equal(ps_orgunits_at(t, u->parent_idx), root);
        nsub += strcmp(u->kind, "subdistrict") == 0;
        ntown += strcmp(u->kind, "town") == 0;
        nent += strcmp(u->kind, "enterprise") == 0;

        size_t kids = 0;
        for (size_t j = 0; j < n; j++) {
            const ps_orgunit_t *c = ps_orgunits_at(t, j);
            if (strcmp(c->parent, u->code) != 0)
                continue;
            kids++;
            assert_int_equal(c->depth, 2);
            assert_memory_equal(c->code, u->code, 9);
            assert_string_equal(c->kind, strcmp(u->kind, "town") == 0 ? "village" : "community");
            assert_ptr_equal(ps_orgunits_township(t, c->code), u);
        }
        assert_in_range(kids, 3, 6);
    }
    assert_int_equal(towns, 9);
    assert_int_equal(nsub, 5);
    assert_int_equal(ntown, 3);
    assert_int_equal(nent, 1);
    ps_orgunits_free(t);
}

static void test_lookups(void **state)
{
    ps_orgunits_t *t = load_demo();
    const ps_orgunit_t *u;
    (void)state;

    u = ps_orgunits_find(t, "130203100201");
    assert_non_null(u);
    assert_string_equal(u->name, "韩城村");
    assert_string_equal(u->kind, "village");
    assert_null(ps_orgunits_find(t, "130203100299"));
    assert_null(ps_orgunits_find(t, "13020310020"));
    assert_null(ps_orgunits_find(t, "1302031002011"));
    assert_null(ps_orgunits_find(t, ""));
    assert_null(ps_orgunits_find(t, NULL));
    assert_null(ps_orgunits_at(t, ps_orgunits_count(t)));
    assert_string_equal(ps_orgunits_at(t, 0)->code, ROOT); /* file order */

    /* within: itself, ancestors, not siblings or descendants, unknowns never. */
    assert_true(ps_orgunits_within(t, "130203100201", "130203100201"));
    assert_true(ps_orgunits_within(t, "130203100201", "130203100000"));
    assert_true(ps_orgunits_within(t, "130203100201", ROOT));
    assert_true(ps_orgunits_within(t, "130203400002", "130203400000"));
    assert_true(ps_orgunits_within(t, ROOT, ROOT));
    assert_false(ps_orgunits_within(t, "130203100201", "130203101000"));
    assert_false(ps_orgunits_within(t, "130203100201", "130203100202"));
    assert_false(ps_orgunits_within(t, "130203100000", "130203100201"));
    assert_false(ps_orgunits_within(t, ROOT, "130203100000"));
    assert_false(ps_orgunits_within(t, "130203100299", "130203100000"));
    assert_false(ps_orgunits_within(t, "130203100201", "130203999000"));

    /* township: the depth-1 ancestor, itself for a township, none for the root. */
    assert_string_equal(ps_orgunits_township(t, "130203004006")->code, "130203004000");
    assert_string_equal(ps_orgunits_township(t, "130203004000")->code, "130203004000");
    assert_string_equal(ps_orgunits_township(t, "130203400001")->name, "钢城钢铁集团生活服务公司");
    assert_null(ps_orgunits_township(t, ROOT));
    assert_null(ps_orgunits_township(t, "130203004099"));

    assert_true(ps_orgunit_kind_valid("enterprise"));
    assert_false(ps_orgunit_kind_valid("Village"));
    assert_false(ps_orgunit_kind_valid(NULL));
    ps_orgunits_free(t);
}

/* ---- accepted variants ---------------------------------------------------------- */

static const char small_lf[] = HDR "130203000000,,钢城区,district\n"
                                   "130203001000,130203000000,建设路街道,subdistrict\n"
                                   "130203001001,130203001000,\"光明里社区\",community\n";
static const char small_bom_crlf[] = "\xef\xbb\xbf"
                                     "code,parent,name,kind\r\n"
                                     "130203000000,,钢城区,district\r\n"
                                     "130203001000,130203000000,建设路街道,subdistrict\r\n"
                                     "130203001001,130203001000,\"光明里社区\",community"; /* no final newline */

static void same_tree(const ps_orgunits_t *a, const ps_orgunits_t *b)
{
    assert_int_equal(ps_orgunits_count(a), ps_orgunits_count(b));
    for (size_t i = 0; i < ps_orgunits_count(a); i++) {
        const ps_orgunit_t *x = ps_orgunits_at(a, i), *y = ps_orgunits_at(b, i);
        assert_string_equal(x->code, y->code);
        assert_string_equal(x->parent, y->parent);
        assert_string_equal(x->name, y->name);
        assert_string_equal(x->kind, y->kind);
        assert_int_equal(x->depth, y->depth);
        assert_int_equal(x->parent_idx, y->parent_idx);
    }
}

static void test_bom_crlf(void **state)
{
    ps_orgunits_t *a = parse_ok(small_lf), *b = parse_ok(small_bom_crlf);
    size_t len;
    const uint8_t *raw;
    (void)state;

    same_tree(a, b);
    assert_int_equal(ps_orgunits_count(a), 3);
    assert_string_equal(ps_orgunits_at(b, 2)->name, "光明里社区");
    /* The bytes are kept as given, BOM and all, so the digests differ. */
    raw = ps_orgunits_bytes(b, &len);
    assert_int_equal(len, sizeof(small_bom_crlf) - 1);
    assert_memory_equal(raw, small_bom_crlf, len);
    assert_memory_not_equal(ps_orgunits_digest(a), ps_orgunits_digest(b), 32);
    ps_orgunits_free(a);
    ps_orgunits_free(b);
}

static void test_quoting_and_blank_lines(void **state)
{
    static const char csv[] = HDR "\n"
                                  "130203000000,,\"钢城区\",district\n"
                                  "\n"
                                  "\"130203001000\",130203000000,\"建设路\"\"一\"\"街道, 东\",subdistrict\n"
                                  "\n";
    ps_orgunits_t *t = parse_ok(csv);
    (void)state;
    assert_int_equal(ps_orgunits_count(t), 2);
    assert_string_equal(ps_orgunits_at(t, 1)->name, "建设路\"一\"街道, 东");
    assert_int_equal(ps_orgunits_at(t, 1)->depth, 1);
    ps_orgunits_free(t);
}

/* ---- refused files ----------------------------------------------------------------- */

static void test_malformed(void **state)
{
    static const struct {
        const char *name, *csv, *want;
    } bad[] = {
        {"unknown parent",
         HDR "130203000000,,钢城区,district\n130203001000,130203000000,甲街道,subdistrict\n"
             "130203002001,130203002000,乙社区,community\n",
         "line 4: parent 130203002000 of unit 130203002001 does not exist"},
        {"duplicate code",
         HDR "130203000000,,钢城区,district\n130203001000,130203000000,甲街道,subdistrict\n"
             "130203001001,130203001000,乙社区,community\n130203001000,130203000000,丙街道,subdistrict\n",
         "line 5: duplicate code 130203001000"},
        {"two roots", HDR "130203000000,,钢城区,district\n130204000000,,铁城区,district\n",
         "line 3: second root unit 130204000000"},
        {"no root (cycle only)",
         HDR "130203001000,130203002000,甲街道,subdistrict\n130203002000,130203001000,乙街道,subdistrict\n",
         "line 2: no root unit"},
        {"cycle",
         HDR "130203000000,,钢城区,district\n130203001000,130203000000,甲街道,subdistrict\n"
             "130203002001,130203003001,乙社区,community\n130203003001,130203002001,丙社区,community\n",
         "line 4: unit 130203002001 is in a cycle of parents"},
        {"longer cycle",
         HDR "130203000000,,钢城区,district\n130203001001,130203001003,甲,community\n"
             "130203001002,130203001001,乙,community\n130203001003,130203001002,丙,community\n",
         "line 3: unit 130203001001 is in a cycle"},
        {"own parent", HDR "130203000000,,钢城区,district\n130203001000,130203001000,甲街道,subdistrict\n",
         "line 3: unit 130203001000 is its own parent"},
        {"short code", HDR "130203000000,,钢城区,district\n13020300100,130203000000,甲街道,subdistrict\n",
         "line 3: code must be 12 digits"},
        {"letters in code", HDR "130203000000,,钢城区,district\n13020300100A,130203000000,甲街道,subdistrict\n",
         "line 3: code must be 12 digits"},
        {"bad parent code", HDR "130203000000,,钢城区,district\n130203001000,1302030,甲街道,subdistrict\n",
         "line 3: parent must be empty"},
        {"header missing a column", "code,parent,name\n130203000000,,钢城区\n", "line 1: header must be"},
        {"header in capitals", "Code,Parent,Name,Kind\n130203000000,,钢城区,district\n", "line 1: header must be"},
        {"header reordered", "code,parent,kind,name\n130203000000,,district,钢城区\n", "line 1: header must be"},
        {"no header", "130203000000,,钢城区,district\n", "line 1: header must be"},
        {"empty file", "", "line 1: missing the header row"},
        {"header only", HDR, "line 2: the file has no org units"},
        {"bad UTF-8", HDR "130203000000,,钢城区,district\n130203001000,130203000000,甲\xe8\xa1,subdistrict\n",
         "line 3: name is not valid UTF-8"},
        {"overlong UTF-8", HDR "130203000000,,\xc0\xae,district\n", "line 2: name is not valid UTF-8"},
        {"long name",
         HDR "130203000000,,钢城区,district\n130203001000,130203000000,"
             "一二三四五六七八九十一二三四五六七八九十一二,subdistrict\n",
         "line 3: name is longer than 64 bytes"},
        {"empty name", HDR "130203000000,,,district\n", "line 2: name is empty"},
        {"bad kind", HDR "130203000000,,钢城区,county\n", "line 2: kind must be one of"},
        {"too few fields", HDR "130203000000,,钢城区,district\n130203001000,130203000000,甲街道\n",
         "line 3: expected 4 fields (code,parent,name,kind), found 3"},
        {"too many fields", HDR "130203000000,,钢城区,district,extra\n", "line 2: expected 4 fields"},
        {"stray quote", HDR "130203000000,,钢城区,district\n130203001000,130203000000,甲\"街道,subdistrict\n",
         "line 3: malformed CSV"},
        {"unterminated quote", HDR "130203000000,,钢城区,district\n130203001000,130203000000,\"甲街道,subdistrict\n",
         "line 3: malformed CSV"},
        {"newline inside a quoted name",
         HDR "130203000000,,钢城区,district\n130203001000,130203000000,\"甲\n街道\",subdistrict\n",
         "line 3: name contains control characters"},
        {"error after a multi-line field and blank lines",
         HDR "\"130203\n000000\",,钢城区,district\n\n130203001000,130203000000,甲街道,subdistrict\n"
             "130203001001,130203009000,乙社区,community\n",
         "line 2: code must be 12 digits"},
        {"blank lines keep physical line numbers",
         HDR "\n130203000000,,钢城区,district\n\n\n130203001000,130203000001,甲街道,subdistrict\n",
         "line 6: parent 130203000001"},
        {"CRLF line numbers",
         "code,parent,name,kind\r\n130203000000,,钢城区,district\r\n130203001000,,甲街道,subdistrict\r\n",
         "line 3: second root"},
        {"BOM then bad header", "\xef\xbb\xbf" "code,parent,name,type\n", "line 1: header must be"},
        {"BOM inside the header", "\xef\xbb\xbf\xef\xbb\xbf" HDR "130203000000,,钢城区,district\n",
         "line 1: header must be"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        ps_orgunits_t *t = (ps_orgunits_t *)(uintptr_t)1;
        int rc = ps_orgunits_parse((const uint8_t *)bad[i].csv, strlen(bad[i].csv), &t, err, sizeof(err));
        if (rc != PS_EINVAL || strncmp(err, bad[i].want, strlen(bad[i].want)) != 0)
            fail_msg("%s: rc %d, err \"%s\", want \"%s\"", bad[i].name, rc, err, bad[i].want);
        assert_null(t);
    }
}

/* A chain deeper than PS_ORGUNIT_MAX_DEPTH is refused; exactly that deep is fine. */
static void test_depth_limit(void **state)
{
    char csv[4096], err[256];
    size_t off;
    ps_orgunits_t *t = NULL;
    (void)state;

    /* Each level's parent is the one before it. */
    off = (size_t)snprintf(csv, sizeof(csv), HDR "100000000000,,根,district\n");
    for (int d = 1; d <= PS_ORGUNIT_MAX_DEPTH + 1; d++) {
        char parent[13];
        if (d == 1)
            snprintf(parent, sizeof(parent), "100000000000");
        else
            snprintf(parent, sizeof(parent), "1000000000%02d", d - 1);
        off += (size_t)snprintf(csv + off, sizeof(csv) - off, "1000000000%02d,%s,层%d,community\n", d, parent, d);
        if (d == PS_ORGUNIT_MAX_DEPTH) {
            assert_int_equal(ps_orgunits_parse((const uint8_t *)csv, off, &t, err, sizeof(err)), PS_OK);
            assert_int_equal(ps_orgunits_find(t, "100000000008")->depth, PS_ORGUNIT_MAX_DEPTH);
            assert_true(ps_orgunits_within(t, "100000000008", "100000000000"));
            assert_true(ps_orgunits_within(t, "100000000008", "100000000003"));
            assert_false(ps_orgunits_within(t, "100000000003", "100000000008"));
            assert_string_equal(ps_orgunits_township(t, "100000000008")->code, "100000000001");
            ps_orgunits_free(t);
        }
    }
    assert_int_equal(ps_orgunits_parse((const uint8_t *)csv, off, &t, err, sizeof(err)), PS_EINVAL);
    assert_string_equal(err, "line 11: unit 100000000009 is more than 8 levels below the root");
}

/* ---- bytes, digest, files ------------------------------------------------------------ */

static void test_digest(void **state)
{
    static const uint8_t abc_sha256[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                           0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                           0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t d[32];
    ps_orgunits_t *a = load_demo(), *b;
    const uint8_t *raw;
    size_t len;
    char err[128];
    (void)state;

    assert_int_equal(ps_sha256("abc", 3, d), PS_OK);
    assert_memory_equal(d, abc_sha256, 32);

    /* Parsing the file's bytes again gives the same tree and digest, which is
     * the SHA-256 of exactly those bytes. */
    raw = ps_orgunits_bytes(a, &len);
    assert_true(len > 0);
    assert_int_equal(ps_orgunits_parse(raw, len, &b, err, sizeof(err)), PS_OK);
    same_tree(a, b);
    assert_memory_equal(ps_orgunits_digest(a), ps_orgunits_digest(b), 32);
    assert_int_equal(ps_sha256(raw, len, d), PS_OK);
    assert_memory_equal(ps_orgunits_digest(a), d, 32);
    ps_orgunits_free(b);

    /* One more byte (a blank line at the end): the same tree, another digest. */
    {
        uint8_t *copy = malloc(len + 1);
        assert_non_null(copy);
        memcpy(copy, raw, len);
        copy[len] = '\n';
        assert_int_equal(ps_orgunits_parse(copy, len + 1, &b, err, sizeof(err)), PS_OK);
        same_tree(a, b);
        assert_memory_not_equal(ps_orgunits_digest(a), ps_orgunits_digest(b), 32);
        ps_orgunits_free(b);
        free(copy);
    }
    ps_orgunits_free(a);
}

static void test_load_errors(void **state)
{
    ps_orgunits_t *t = (ps_orgunits_t *)(uintptr_t)1;
    char err[256] = "";
    (void)state;

    assert_int_equal(ps_orgunits_load("/nonexistent/orgunits.csv", &t, err, sizeof(err)), PS_ENOTFOUND);
    assert_null(t);
    assert_non_null(strstr(err, "/nonexistent/orgunits.csv"));
    assert_int_equal(ps_orgunits_load("/", &t, err, sizeof(err)), PS_EIO);
    assert_null(t);
}

/* Lookups stay correct on a larger tree (index, not a scan). */
static void test_large_tree(void **state)
{
    size_t cap = 64 + 200 * 60 * 64, off;
    char *csv = malloc(cap), err[128], code[13];
    ps_orgunits_t *t = NULL;
    (void)state;

    assert_non_null(csv);
    off = (size_t)snprintf(csv, cap, HDR "130203000000,,钢城区,district\n");
    for (int s = 1; s <= 200; s++) {
        off += (size_t)snprintf(csv + off, cap - off, "130203%03d000,130203000000,第%d街道,subdistrict\n", s, s);
        for (int v = 1; v <= 50; v++)
            off += (size_t)snprintf(csv + off, cap - off, "130203%03d%03d,130203%03d000,第%d社区,community\n", s,
                                    v, s, v);
    }
    assert_int_equal(ps_orgunits_parse((const uint8_t *)csv, off, &t, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_orgunits_count(t), 1 + 200 * 51);
    for (int s = 1; s <= 200; s++)
        for (int v = 0; v <= 50; v++) {
            snprintf(code, sizeof(code), "130203%03d%03d", s, v);
            assert_non_null(ps_orgunits_find(t, code));
            assert_true(ps_orgunits_within(t, code, "130203000000"));
        }
    assert_null(ps_orgunits_find(t, "130203201000"));
    ps_orgunits_free(t);
    free(csv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_shape),   cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_bom_crlf),     cmocka_unit_test(test_quoting_and_blank_lines),
        cmocka_unit_test(test_malformed),    cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_digest),       cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_large_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
