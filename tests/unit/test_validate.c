/* test_validate.c - unit tests for common/validate.c.
 *
 * Owns: tables of valid and invalid national ID numbers and dates, one valid
 * record of every kind, and for each rule a record that breaks it and must
 * be reported on the right field; also that a record with many faults
 * reports them all and that no reason quotes a value.  "Today" always comes
 * from the context, so the results do not depend on the machine's clock.
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
#include "orgunit.h"
#include "record_fmt.h"
#include "policy.h"
#include "validate.h"

#define TODAY 20261129u

#define UNIT_VILLAGE "130203100201"   /* 韩城村, under 韩城镇 */
#define UNIT_TOWN "130203100000"      /* 韩城镇 */
#define UNIT_OTHER_TOWN "130203001000" /* 建设路街道 */
#define UNIT_COMMUNITY "130203001002" /* 光明里社区, under 建设路街道 */

#define PERSON_A "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01"
#define HOUSEHOLD_A "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a02"
#define MISSING_ID "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a99"

/* ---- fixtures -------------------------------------------------------------- */

static ps_orgunits_t *g_units;

/* The source tree's root, from this file's own path. */
static void src_path(const char *rel, char *out, size_t n)
{
    const char *f = __FILE__, *at = strstr(f, "tests/unit/");
    int k = at ? (int)(at - f) : 0;
    snprintf(out, n, "%.*s%s", k, f, rel);
}

static int setup(void **state)
{
    char path[4096], err[256] = "";
    (void)state;
    src_path("demo/orgunits.csv", path, sizeof(path));
    if (ps_orgunits_load(path, &g_units, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ps_orgunits_free(g_units);
    g_units = NULL;
    return 0;
}

/* Known records: PERSON_A is a person, HOUSEHOLD_A a household. */
static int g_ref_calls, g_last_ref_kind;

static int ref_exists(void *arg, const uint8_t id[16], int kind)
{
    uint8_t p[16], h[16];
    (void)arg;
    g_ref_calls++;
    g_last_ref_kind = kind;
    assert_int_equal(ps_uuid_parse(PERSON_A, p), PS_OK);
    assert_int_equal(ps_uuid_parse(HOUSEHOLD_A, h), PS_OK);
    if (kind == POPSYNC__KIND__KIND_PERSON)
        return memcmp(id, p, 16) == 0;
    if (kind == POPSYNC__KIND__KIND_HOUSEHOLD)
        return memcmp(id, h, 16) == 0;
    return 0;
}

/* A township-role sender of unit (one at a time: a static peer). */
static const ps_peer_t *township(const char *unit)
{
    static ps_peer_t p;
    ps_policy_peer(&p, "township", unit);
    return &p;
}

static ps_validate_ctx_t full_ctx(void)
{
    ps_validate_ctx_t c;
    memset(&c, 0, sizeof(c));
    c.units = g_units;
    c.today = TODAY;
    c.ref_exists = ref_exists;
    return c;
}

/* ---- record builders -------------------------------------------------------- */

/* A record of kind with a fixed id, orgunit and "field=value" settings
 * (NULL-terminated), each of which must be accepted by record_fmt. */
static Popsync__Record *build(int kind, const char *orgunit, ...)
{
    Popsync__Record *r = NULL;
    char err[256] = "";
    const char *kv;
    va_list ap;

    assert_int_equal(ps_record_new(&r, kind), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    assert_non_null(r->id.data);
    assert_int_equal(ps_uuid_parse("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4aaa", r->id.data), PS_OK);
    r->id.len = PS_ID_LEN;
    if (orgunit)
        assert_int_equal(ps_record_set(r, "orgunit", orgunit, err, sizeof(err)), PS_OK);
    va_start(ap, orgunit);
    while ((kv = va_arg(ap, const char *)) != NULL) {
        if (ps_record_set_kv(r, kv, err, sizeof(err)) != PS_OK)
            fail_msg("set %s: %s", kv, err);
    }
    va_end(ap);
    return r;
}

static Popsync__Record *good_person(void)
{
    return build(POPSYNC__KIND__KIND_PERSON, UNIT_VILLAGE, "id_number=13020319900315118X", "name=王秀英",
                 "sex=female", "birth_date=1990-03-15", "ethnicity=汉族", "registration=local",
                 "marital_status=married", "household_id=" HOUSEHOLD_A, "phone=+86 138-0000-0000",
                 "address=河北省唐山市钢城区韩城镇韩城村12号", NULL);
}

/* Replaces a string field with bytes record_fmt would refuse. */
static void set_raw(char **dst, const char *v)
{
    if (*dst && *dst != protobuf_c_empty_string)
        free(*dst);
    *dst = strdup(v);
    assert_non_null(*dst);
}

/* ---- result helpers ----------------------------------------------------------- */

static size_t run(const Popsync__Record *r, const ps_validate_ctx_t *ctx, ps_verrs_t *v)
{
    memset(v, 0, sizeof(*v));
    return ps_validate_record(r, ctx, v);
}

static void dump(const ps_verrs_t *v)
{
    for (size_t i = 0; i < v->n && i < PS_VERR_MAX; i++)
        fprintf(stderr, "  %s: %s\n", v->e[i].field, v->e[i].reason);
}

static int has_err(const ps_verrs_t *v, const char *field, const char *reason_part)
{
    for (size_t i = 0; i < v->n && i < PS_VERR_MAX; i++)
        if (strcmp(v->e[i].field, field) == 0 && (!reason_part || strstr(v->e[i].reason, reason_part)))
            return 1;
    return 0;
}

/* Exactly one error, on field, whose reason contains reason_part. */
static void expect_one(const Popsync__Record *r, const ps_validate_ctx_t *ctx, const char *field,
                       const char *reason_part)
{
    ps_verrs_t v;
    size_t n = run(r, ctx, &v);
    if (n != 1 || !has_err(&v, field, reason_part)) {
        dump(&v);
        fail_msg("expected one error on %s (%s), got %zu", field, reason_part, n);
    }
}

static void expect_valid(const Popsync__Record *r, const ps_validate_ctx_t *ctx)
{
    ps_verrs_t v;
    if (run(r, ctx, &v) != 0) {
        dump(&v);
        fail_msg("expected a valid record");
    }
}

/* ---- ID numbers and dates ------------------------------------------------------ */

static void test_id_valid(void **state)
{
    /* Check characters computed independently (ISO 7064 MOD 11-2). */
    static const char *const ok[] = {
        "110105199003071239", "130203198506120049", "130203200002290319", "130203194910012551",
        "130203197808153327", "11010519491231002X", "13020319900315118X", "13020319900315169X",
        "440304198808080016", "130203202611291236", /* born today */
        "130203202611301238",                       /* born tomorrow: the day of grace */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *why = ps_validate_id_number_at(ok[i], TODAY);
        if (why)
            fail_msg("%s: %s", ok[i], why);
        assert_int_equal(ps_id_check_char(ok[i]), ok[i][17]);
    }
    /* The clock's date: far past and far future do not depend on today. */
    assert_null(ps_validate_id_number("110105199003071239"));
    assert_non_null(ps_validate_id_number("29990101123456789X"));
}

static void test_id_invalid(void **state)
{
    static const struct {
        const char *idn, *reason;
    } bad[] = {
        {"110105199003071238", "check character does not match"},
        {"11010519491231002Y", "upper-case X"},
        {"11010519491231002x", "upper-case X"},
        {"110105199003071230", "check character does not match"},
        {"11010519900307123X", "check character does not match"},
        {"11010519900307123", "18 characters"},
        {"1101051990030712399", "18 characters"},
        {"", "18 characters"},
        {"11010519900307A239", "first 17 characters must be digits"},
        {"１10105199003071239", "18 characters"}, /* full-width digit: more bytes */
        {"130203199902301233", "does not exist"},     /* 1999-02-30, correct check digit */
        {"130203190002291237", "does not exist"},     /* 1900 was not a leap year */
        {"130203199913011236", "does not exist"},
        {"130203188912311239", "before 1890"},
        {"130203202701011234", "in the future"},
        {"130203202612011232", "in the future"},      /* the day after tomorrow: past the day of grace */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = ps_validate_id_number_at(bad[i].idn, TODAY);
        if (!why || !strstr(why, bad[i].reason))
            fail_msg("%s: got %s, want %s", bad[i].idn, why ? why : "valid", bad[i].reason);
    }
    assert_non_null(ps_validate_id_number_at(NULL, TODAY));
    assert_int_equal(ps_id_check_char("1101051990030712"), 0);
    assert_int_equal(ps_id_check_char("1101051990030712a"), 0);
}

static void test_dates(void **state)
{
    static const char *const ok[] = {"2024-02-29", "2000-02-29", "1890-01-01", "2023-12-31", "2024-04-30",
                                     "9999-12-31"};
    static const struct {
        const char *s, *reason;
    } bad[] = {
        {"2023-02-29", "day does not exist"}, {"1900-02-29", "day does not exist"},
        {"2024-13-01", "month"},              {"2024-00-10", "month"},
        {"2024-04-31", "day does not exist"}, {"2024-01-00", "day does not exist"},
        {"2024-01-32", "day does not exist"}, {"1889-12-31", "1890"},
        {"2024-1-01", "YYYY-MM-DD"},          {"2024/01/01", "YYYY-MM-DD"},
        {"20240101", "YYYY-MM-DD"},           {"2024-01-01x", "YYYY-MM-DD"},
        {" 2024-01-01", "YYYY-MM-DD"},        {"", "YYYY-MM-DD"},
        {"２024-01-01", "YYYY-MM-DD"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (ps_validate_date(ok[i]))
            fail_msg("%s: %s", ok[i], ps_validate_date(ok[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = ps_validate_date(bad[i].s);
        if (!why || !strstr(why, bad[i].reason))
            fail_msg("%s: got %s, want %s", bad[i].s, why ? why : "valid", bad[i].reason);
    }
    assert_non_null(ps_validate_date(NULL));
}

/* Date fields in records: impossible dates and the leap day. */
static void test_record_dates(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    static const char *const bad[] = {"2023-02-29", "2024-13-01", "2024-04-31"};
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        char kv[64];
        Popsync__Record *r;
        snprintf(kv, sizeof(kv), "visit_date=%s", bad[i]);
        r = build(POPSYNC__KIND__KIND_SERVICE_VISIT, UNIT_VILLAGE, "person_id=" PERSON_A, "service=followup", kv,
                  NULL);
        expect_one(r, &c, "visit_date", NULL);
        ps_record_free(r);
    }
    {
        Popsync__Record *r = build(POPSYNC__KIND__KIND_SERVICE_VISIT, UNIT_VILLAGE, "person_id=" PERSON_A,
                                   "service=followup", "visit_date=2024-02-29", NULL);
        expect_valid(r, &c);
        c.today = 20240227; /* two days ahead: in the future */
        expect_one(r, &c, "visit_date", "in the future");
        c.today = 20240228; /* one day ahead: the day of grace (a zone ahead of the judge's) */
        expect_valid(r, &c);
        c.today = 20240229;
        expect_valid(r, &c);
        ps_record_free(r);
        /* The day of grace crosses month and year ends. */
        r = build(POPSYNC__KIND__KIND_SERVICE_VISIT, UNIT_VILLAGE, "person_id=" PERSON_A, "service=followup",
                  "visit_date=2025-01-01", NULL);
        c.today = 20241231;
        expect_valid(r, &c);
        c.today = 20241230;
        expect_one(r, &c, "visit_date", "in the future");
        ps_record_free(r);
        r = build(POPSYNC__KIND__KIND_SERVICE_VISIT, UNIT_VILLAGE, "person_id=" PERSON_A, "service=followup",
                  "visit_date=2024-03-01", NULL);
        c.today = 20240229;
        expect_valid(r, &c);
        c.today = 20240228;
        expect_one(r, &c, "visit_date", "in the future");
        ps_record_free(r);
    }
}

/* ---- every kind, valid --------------------------------------------------------- */

static void test_valid_records(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *recs[7];
    (void)state;

    recs[0] = good_person();
    recs[1] = build(POPSYNC__KIND__KIND_HOUSEHOLD, UNIT_VILLAGE, "head_id=" PERSON_A, "address=韩城村12号", NULL);
    recs[2] = build(POPSYNC__KIND__KIND_BIRTH, UNIT_COMMUNITY, "mother_id=" PERSON_A, "child_sex=male",
                    "birth_date=2024-02-29", "birth_order=1", "place=唐山市妇幼保健院", NULL);
    recs[3] = build(POPSYNC__KIND__KIND_MIGRATION, UNIT_COMMUNITY, "person_id=" PERSON_A, "direction=inflow",
                    "other_place_code=410102001001", "other_place=河南省郑州市中原区", "start_date=2025-03-01",
                    "end_date=2027-03-01", "employer=钢城钢铁集团", "urgent=true", "submitted_date=2025-03-05",
                    "feedback_date=2025-03-20", NULL);
    recs[4] = build(POPSYNC__KIND__KIND_BENEFIT, UNIT_VILLAGE, "person_id=" PERSON_A, "scheme=rural_reward",
                    "period=2025", "amount_fen=96000", "status=paid", "paid_date=2025-06-30", NULL);
    recs[5] = build(POPSYNC__KIND__KIND_BENEFIT, UNIT_VILLAGE, "person_id=" PERSON_A, "scheme=only_child_reward",
                    "period=2025-07", "amount_fen=0", "status=eligible", NULL);
    recs[6] = build(POPSYNC__KIND__KIND_SERVICE_VISIT, UNIT_VILLAGE, "person_id=" PERSON_A,
                    "service=prepregnancy_check", "visit_date=2025-11-02", "provider=韩城镇卫生院",
                    "outcome=未见异常\n建议三个月后复查", NULL);
    ps_validate_ctx_t bare;
    memset(&bare, 0, sizeof(bare));
    bare.today = TODAY; /* no tree, no scope, no lookups: format checks only */
    for (size_t i = 0; i < 7; i++) {
        expect_valid(recs[i], &c);
        expect_valid(recs[i], &bare);
        ps_record_free(recs[i]);
    }
}

/* ---- person ------------------------------------------------------------------------ */

static void test_person_rules(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r;
    char err[128];
    (void)state;

    r = good_person();
    assert_int_equal(ps_record_set(r, "birth_date", "1990-03-16", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "birth_date", "does not match the birth date in id_number");
    ps_record_free(r);

    r = good_person();
    assert_int_equal(ps_record_set(r, "sex", "male", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "sex", "does not match");
    ps_record_free(r);

    /* A man's number with a male record is fine. */
    r = good_person();
    assert_int_equal(ps_record_set(r, "id_number", "13020319900315169X", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "sex", "male", err, sizeof(err)), PS_OK);
    expect_valid(r, &c);
    ps_record_free(r);

    /* Born in the future: the ID and the date both say so. */
    r = good_person();
    assert_int_equal(ps_record_set(r, "id_number", "130203202701011234", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "birth_date", "2027-01-01", err, sizeof(err)), PS_OK);
    {
        ps_verrs_t v;
        run(r, &c, &v);
        assert_true(has_err(&v, "id_number", "in the future"));
        assert_true(has_err(&v, "birth_date", "in the future"));
    }
    ps_record_free(r);

    r = good_person();
    assert_int_equal(ps_record_set(r, "id_number", "130203199003151185", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "id_number", "check character does not match");
    ps_record_free(r);

    r = good_person();
    assert_int_equal(ps_record_set(r, "id_number", "", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "id_number", "is required");
    ps_record_free(r);

    /* A newborn may wait for its number during its first year. */
    {
        char d[16];
        unsigned t = TODAY;
        r = good_person();
        assert_int_equal(ps_record_set(r, "id_number", "", err, sizeof(err)), PS_OK);
        snprintf(d, sizeof(d), "%04u-%02u-%02u", t / 10000 - 1, t / 100 % 100, t % 100 == 29 ? 28 : t % 100);
        assert_int_equal(ps_record_set(r, "birth_date", d, err, sizeof(err)), PS_OK);
        expect_one(r, &c, "id_number", "first year");
        snprintf(d, sizeof(d), "%04u-%02u-01", t / 10000, t / 100 % 100);
        assert_int_equal(ps_record_set(r, "birth_date", d, err, sizeof(err)), PS_OK);
        expect_valid(r, &c);
        ps_record_free(r);
    }

    r = good_person();
    set_raw(&r->person->id_number, "13020319900315118x");
    expect_one(r, &c, "id_number", "upper-case X");
    ps_record_free(r);

    r = good_person();
    assert_int_equal(ps_record_set(r, "phone", "13x00000000", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "phone", NULL);
    assert_int_equal(ps_record_set(r, "phone", "1234", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "phone", NULL);
    assert_int_equal(ps_record_set(r, "phone", "0315-2345678", err, sizeof(err)), PS_OK);
    expect_valid(r, &c);
    ps_record_free(r);

    r = good_person();
    assert_int_equal(ps_record_set(r, "name", "", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "sex", "", err, sizeof(err)), PS_OK);
    {
        ps_verrs_t v;
        assert_int_equal(run(r, &c, &v), 2);
        assert_true(has_err(&v, "name", "is required"));
        assert_true(has_err(&v, "sex", "is required"));
    }
    ps_record_free(r);

    /* Sex and birth date left for a wrong ID number to fill: the clerk is
     * told to correct the number, not that they are required. */
    r = good_person();
    assert_int_equal(ps_record_set(r, "sex", "", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "birth_date", "", err, sizeof(err)), PS_OK);
    assert_int_equal(ps_record_set(r, "id_number", "110105196001011234", err, sizeof(err)), PS_OK);
    {
        ps_verrs_t v;
        assert_int_equal(run(r, &c, &v), 3);
        assert_true(has_err(&v, "sex", "correct id_number first"));
        assert_true(has_err(&v, "birth_date", "correct id_number first"));
        assert_true(has_err(&v, "id_number", "check character"));
    }
    ps_record_free(r);
}

static void test_text_rules(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r;
    char buf[400];
    (void)state;

    /* 21 CJK characters = 63 bytes fit; 22 = 66 do not. */
    buf[0] = '\0';
    for (int i = 0; i < 21; i++)
        strcat(buf, "张");
    r = good_person();
    set_raw(&r->person->name, buf);
    expect_valid(r, &c);
    strcat(buf, "张");
    set_raw(&r->person->name, buf);
    expect_one(r, &c, "name", "at most 64 bytes");
    ps_record_free(r);

    /* Bad UTF-8: truncated sequence, overlong encoding, surrogate. */
    static const char *const bad_utf8[] = {"王\xe7\xa7", "\xc0\xaf", "\xed\xa0\x80", "\xff"};
    for (size_t i = 0; i < 4; i++) {
        r = good_person();
        set_raw(&r->person->name, bad_utf8[i]);
        expect_one(r, &c, "name", "not valid UTF-8");
        ps_record_free(r);
    }

    r = good_person();
    set_raw(&r->person->name, "王\n秀英");
    expect_one(r, &c, "name", "control characters");
    set_raw(&r->person->name, "王\t秀英");
    expect_one(r, &c, "name", "control characters");
    set_raw(&r->person->name, "王\xc2\x85秀英"); /* U+0085, a C1 control */
    expect_one(r, &c, "name", "control characters");
    set_raw(&r->person->name, "王秀英");
    set_raw(&r->person->address, "韩城村\n12号"); /* line breaks allowed in addresses */
    expect_valid(r, &c);
    set_raw(&r->person->address, "韩城村\r\n12号");
    expect_one(r, &c, "address", "control characters");
    memset(buf, 'a', 257);
    buf[257] = '\0';
    set_raw(&r->person->address, buf);
    expect_one(r, &c, "address", "at most 256 bytes");
    buf[256] = '\0';
    set_raw(&r->person->address, buf);
    expect_valid(r, &c);
    memset(buf, 'a', 33);
    buf[33] = '\0';
    set_raw(&r->person->ethnicity, buf);
    expect_one(r, &c, "ethnicity", "at most 32 bytes");
    ps_record_free(r);

    r = build(POPSYNC__KIND__KIND_SERVICE_VISIT, UNIT_VILLAGE, "person_id=" PERSON_A, "service=followup",
              "visit_date=2025-01-01", NULL);
    memset(buf, 'b', 129);
    buf[129] = '\0';
    set_raw(&r->service_visit->provider, buf);
    expect_one(r, &c, "provider", "at most 128 bytes");
    ps_record_free(r);
}

static void test_enums(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = good_person();
    (void)state;

    r->person->sex = (Popsync__Sex)3;
    expect_one(r, &c, "sex", "not a known value");
    r->person->sex = POPSYNC__SEX__SEX_FEMALE;
    r->person->marital_status = (Popsync__MaritalStatus)9;
    expect_one(r, &c, "marital_status", "not a known value");
    r->person->marital_status = (Popsync__MaritalStatus)0; /* unspecified is allowed */
    r->person->registration = (Popsync__Registration)-1;
    expect_one(r, &c, "registration", "not a known value");
    ps_record_free(r);

    r = build(POPSYNC__KIND__KIND_BENEFIT, UNIT_VILLAGE, "person_id=" PERSON_A, "scheme=special_support",
              "period=2025-01", "amount_fen=59000", "status=approved", NULL);
    expect_valid(r, &c);
    r->benefit->status = (Popsync__BenefitStatus)4;
    expect_one(r, &c, "status", "not a known value");
    ps_record_free(r);
}

/* ---- org units and scope --------------------------------------------------------- */

static void test_orgunit_rules(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = good_person();
    char err[128];
    (void)state;

    /* A well-formed code that is not in the tree. */
    assert_int_equal(ps_record_set(r, "orgunit", "130203100299", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "orgunit", "not a known org unit");
    expect_valid(r, NULL); /* no tree: format only */
    set_raw(&r->orgunit, "13020310020");
    expect_one(r, &c, "orgunit", "12-digit");
    set_raw(&r->orgunit, "");
    expect_one(r, &c, "orgunit", "is required");

    /* Scope with the tree: a village of 韩城镇 is inside 韩城镇 and the district, not 建设路街道. */
    set_raw(&r->orgunit, UNIT_VILLAGE);
    c.peer = township(UNIT_TOWN);
    expect_valid(r, &c);
    c.peer = township("130203000000");
    expect_valid(r, &c);
    c.peer = township(UNIT_VILLAGE);
    expect_valid(r, &c);
    c.peer = township(UNIT_OTHER_TOWN);
    expect_one(r, &c, "orgunit", "outside the sender's scope");
    c.peer = township(UNIT_COMMUNITY);
    expect_one(r, &c, "orgunit", "outside the sender's scope");

    /* Scope without a tree: the code prefix rule. */
    c.units = NULL;
    c.peer = township(UNIT_TOWN);
    expect_valid(r, &c);
    c.peer = township(UNIT_OTHER_TOWN);
    expect_one(r, &c, "orgunit", "outside the sender's scope");
    c.peer = township("130204000000");
    expect_one(r, &c, "orgunit", "outside the sender's scope");
    ps_record_free(r);
}

/* When the tree and the code prefixes disagree, the tree decides. */
static void test_scope_tree_decides(void **state)
{
    static const char csv[] = "code,parent,name,kind\n"
                              "130203000000,,钢城区,district\n"
                              "130203001000,130203000000,甲街道,subdistrict\n"
                              "130203002000,130203000000,乙街道,subdistrict\n"
                              "130203002001,130203001000,划转社区,community\n";
    ps_orgunits_t *t = NULL;
    char err[128];
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = good_person();
    (void)state;

    assert_int_equal(ps_orgunits_parse((const uint8_t *)csv, sizeof(csv) - 1, &t, err, sizeof(err)), PS_OK);
    c.units = t;
    set_raw(&r->orgunit, "130203002001");
    c.peer = township("130203001000");
    expect_valid(r, &c);
    c.peer = township("130203002000");
    expect_one(r, &c, "orgunit", "outside");
    ps_record_free(r);
    ps_orgunits_free(t);
}

/* ---- references ------------------------------------------------------------------- */

static void test_references(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r;
    char err[128];
    (void)state;

    r = good_person();
    assert_int_equal(ps_record_set(r, "household_id", MISSING_ID, err, sizeof(err)), PS_OK);
    g_ref_calls = 0;
    expect_one(r, &c, "household_id", "refers to a household that does not exist");
    assert_int_equal(g_ref_calls, 1);
    assert_int_equal(g_last_ref_kind, POPSYNC__KIND__KIND_HOUSEHOLD);
    /* A person id in the household field is the wrong kind. */
    assert_int_equal(ps_record_set(r, "household_id", PERSON_A, err, sizeof(err)), PS_OK);
    expect_one(r, &c, "household_id", "does not exist");
    expect_valid(r, NULL); /* no lookup: form only */
    ps_record_free(r);

    r = build(POPSYNC__KIND__KIND_BIRTH, UNIT_VILLAGE, "mother_id=" MISSING_ID, "child_sex=female",
              "birth_date=2025-05-05", "birth_order=2", NULL);
    expect_one(r, &c, "mother_id", "refers to a person that does not exist");
    ps_record_free(r);

    r = build(POPSYNC__KIND__KIND_BIRTH, UNIT_VILLAGE, "child_sex=female", "birth_date=2025-05-05",
              "birth_order=2", NULL);
    expect_one(r, &c, "mother_id", "is required");
    r->birth->mother_id.data = malloc(4);
    assert_non_null(r->birth->mother_id.data);
    memset(r->birth->mother_id.data, 1, 4);
    r->birth->mother_id.len = 4;
    expect_one(r, &c, "mother_id", "16-byte");
    ps_record_free(r);

    r = build(POPSYNC__KIND__KIND_HOUSEHOLD, UNIT_VILLAGE, "head_id=" MISSING_ID, NULL);
    expect_one(r, &c, "head_id", "does not exist");
    ps_record_free(r);

    static const int kinds[] = {POPSYNC__KIND__KIND_MIGRATION, POPSYNC__KIND__KIND_BENEFIT,
                                POPSYNC__KIND__KIND_SERVICE_VISIT};
    for (size_t i = 0; i < 3; i++) {
        ps_verrs_t v;
        r = build(kinds[i], UNIT_VILLAGE, "person_id=" MISSING_ID, NULL);
        run(r, &c, &v);
        assert_true(has_err(&v, "person_id", "refers to a person that does not exist"));
        ps_record_free(r);
    }
}

/* ---- the other kinds ------------------------------------------------------------ */

static void test_birth_rules(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = build(POPSYNC__KIND__KIND_BIRTH, UNIT_VILLAGE, "mother_id=" PERSON_A,
                               "child_sex=female", "birth_date=2025-05-05", "birth_order=0", NULL);
    char err[128];
    (void)state;
    expect_one(r, &c, "birth_order", "1 to 20");
    assert_int_equal(ps_record_set(r, "birth_order", "21", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "birth_order", "1 to 20");
    assert_int_equal(ps_record_set(r, "birth_order", "20", err, sizeof(err)), PS_OK);
    expect_valid(r, &c);
    assert_int_equal(ps_record_set(r, "birth_date", "2026-11-30", err, sizeof(err)), PS_OK);
    expect_valid(r, &c); /* tomorrow: the day of grace */
    assert_int_equal(ps_record_set(r, "birth_date", "2026-12-01", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "birth_date", "in the future");
    assert_int_equal(ps_record_set(r, "birth_date", "", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "birth_date", "is required");
    ps_record_free(r);
}

static Popsync__Record *migration(const char *other, const char *start, const char *end, const char *sub,
                                  const char *fb)
{
    char kv[4][64];
    snprintf(kv[0], sizeof(kv[0]), "start_date=%s", start);
    snprintf(kv[1], sizeof(kv[1]), "end_date=%s", end);
    snprintf(kv[2], sizeof(kv[2]), "submitted_date=%s", sub);
    snprintf(kv[3], sizeof(kv[3]), "feedback_date=%s", fb);
    Popsync__Record *r = build(POPSYNC__KIND__KIND_MIGRATION, UNIT_COMMUNITY, "person_id=" PERSON_A,
                               "direction=outflow", kv[0], kv[1], kv[2], kv[3], NULL);
    set_raw(&r->migration->other_place_code, other);
    return r;
}

/* The foreign-case rule (docs/upstream.md §7): another district's case
 * held here as its other place keeps its owner's unit and person. */
static void test_foreign_case_rule(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = migration(UNIT_COMMUNITY, "2025-01-10", "", "2025-01-12", "2025-01-13"), *cur;
    char err[128];
    (void)state;
    set_raw(&r->orgunit, "110105001000"); /* a unit of another district */
    assert_int_equal(ps_record_set(r, "person_id", MISSING_ID, err, sizeof(err)), PS_OK);
    /* From a peer, as a new record: an unknown unit and a missing person. */
    {
        ps_verrs_t v;
        memset(&v, 0, sizeof(v));
        assert_false(ps_validate_foreign_case(r, &c));
        ps_validate_record(r, &c, &v);
        assert_true(has_err(&v, "orgunit", "is not a known org unit"));
        assert_true(has_err(&v, "person_id", "refers to a person that does not exist"));
    }
    /* From the stream: both taken as they are, the rest checked. */
    c.from_upstream = 1;
    assert_true(ps_validate_foreign_case(r, &c));
    expect_valid(r, &c);
    assert_int_equal(ps_record_set(r, "feedback_date", "2025-01-11", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "feedback_date", "before submitted_date");
    assert_int_equal(ps_record_set(r, "feedback_date", "2025-01-13", err, sizeof(err)), PS_OK);
    /* An edit here that keeps the owner's unit: the same. */
    c.from_upstream = 0;
    cur = migration(UNIT_COMMUNITY, "2025-01-10", "", "", "");
    set_raw(&cur->orgunit, "110105001000");
    c.current = cur;
    expect_valid(r, &c);
    /* Without the tree there is no telling: the unit is checked for form. */
    c.units = NULL;
    assert_false(ps_validate_foreign_case(r, &c));
    /* An other place not ours: not a foreign case of ours. */
    c.units = g_units;
    c.from_upstream = 1;
    set_raw(&r->migration->other_place_code, "110105002000");
    assert_false(ps_validate_foreign_case(r, &c));
    ps_record_free(cur);
    ps_record_free(r);
}

static void test_migration_rules(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    static const struct {
        const char *other, *start, *end, *sub, *fb, *field, *reason;
    } t[] = {
        {"", "2025-01-10", "", "", "", NULL, NULL},
        {"320506000000", "2025-01-10", "", "2025-01-12", "", NULL, NULL},
        {"320506000000", "2025-01-10", "2025-01-10", "2025-01-10", "2025-01-10", NULL, NULL},
        {"320506000000", "2025-01-10", "2025-01-12", "2025-01-15", "2025-01-14", "feedback_date",
         "before submitted_date"},
        {"320506000000", "2025-01-10", "", "", "2025-01-14", "feedback_date", "requires submitted_date"},
        {"320506000000", "2025-01-10", "2025-01-09", "", "", "end_date", "before start_date"},
        {"320506000000", "2025-01-10", "", "2025-01-09", "", "submitted_date", "before start_date"},
        {"320506000000", "2025-01-10", "2027-01-01", "", "", NULL, NULL}, /* a planned end */
        {"320506000000", "2025-01-10", "", "2026-12-01", "", "submitted_date", "in the future"},
        {"320506000000", "", "", "", "", "start_date", "is required"},
        {UNIT_COMMUNITY, "2025-01-10", "", "", "", "other_place_code", "must differ"},
        {"32050600000", "2025-01-10", "", "", "", "other_place_code", "12-digit"},
        {"999999999999", "2025-01-10", "", "", "", NULL, NULL}, /* outside the district: form only */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        Popsync__Record *r = migration(t[i].other, t[i].start, t[i].end, t[i].sub, t[i].fb);
        if (t[i].field)
            expect_one(r, &c, t[i].field, t[i].reason);
        else
            expect_valid(r, &c);
        ps_record_free(r);
    }
    {
        Popsync__Record *r = migration("", "2025-01-10", "", "", "");
        r->migration->direction = POPSYNC__DIRECTION__DIRECTION_UNSPECIFIED;
        expect_one(r, &c, "direction", "is required");
        ps_record_free(r);
    }
}

static void test_benefit_rules(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = build(POPSYNC__KIND__KIND_BENEFIT, UNIT_VILLAGE, "person_id=" PERSON_A,
                               "scheme=first_birth_subsidy", "period=2025-03", "amount_fen=300000", "status=paid",
                               "paid_date=2025-04-01", NULL);
    char err[128];
    (void)state;
    expect_valid(r, &c);
    assert_int_equal(ps_record_set(r, "amount_fen", "-1", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "amount_fen", "must not be negative");
    /* Each scheme's bound (10,000 yuan for a first-birth subsidy). */
    assert_int_equal(ps_record_set(r, "amount_fen", "99999999", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "amount_fen", "at most 1000000 fen (10000 yuan) for scheme first_birth_subsidy");
    assert_int_equal(ps_record_set(r, "amount_fen", "1000000", err, sizeof(err)), PS_OK);
    expect_valid(r, &c);
    assert_int_equal(ps_record_set(r, "scheme", "rural_reward", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "amount_fen", "for scheme rural_reward");
    assert_int_equal(ps_record_set(r, "amount_fen", "96000", err, sizeof(err)), PS_OK);
    expect_valid(r, &c);
    assert_int_equal(ps_record_set(r, "scheme", "first_birth_subsidy", err, sizeof(err)), PS_OK);

    assert_int_equal(ps_record_set(r, "paid_date", "", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "paid_date", "is required");
    assert_int_equal(ps_record_set(r, "paid_date", "2027-01-01", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "paid_date", "in the future");
    assert_int_equal(ps_record_set(r, "status", "approved", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "paid_date", "must be empty unless status is paid");
    assert_int_equal(ps_record_set(r, "paid_date", "", err, sizeof(err)), PS_OK);
    expect_valid(r, &c);
    assert_int_equal(ps_record_set(r, "status", "", err, sizeof(err)), PS_OK);
    expect_one(r, &c, "status", "is required");
    assert_int_equal(ps_record_set(r, "status", "eligible", err, sizeof(err)), PS_OK);

    static const struct {
        const char *period, *reason;
    } periods[] = {{"2025", NULL},        {"2025-12", NULL},          {"2025-13", "month"}, {"2025-00", "month"},
                   {"1889", "1890"},      {"25-01", "YYYY or YYYY-MM"}, {"2025-1", "YYYY or YYYY-MM"},
                   {"2025/01", "YYYY or YYYY-MM"}, {"2025-01-01", "YYYY or YYYY-MM"}, {"", "is required"}};
    for (size_t i = 0; i < sizeof(periods) / sizeof(periods[0]); i++) {
        set_raw(&r->benefit->period, periods[i].period);
        if (periods[i].reason)
            expect_one(r, &c, "period", periods[i].reason);
        else
            expect_valid(r, &c);
    }
    set_raw(&r->benefit->period, "2025");
    set_raw(&r->benefit->scheme, "rural_rewards");
    expect_one(r, &c, "scheme",
               "must be one of rural_reward, special_support, only_child_reward, first_birth_subsidy or give_up_birth_reward");
    set_raw(&r->benefit->scheme, "");
    expect_one(r, &c, "scheme", "is required");
    ps_record_free(r);
}

static void test_service_rules(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = build(POPSYNC__KIND__KIND_SERVICE_VISIT, UNIT_VILLAGE, "person_id=" PERSON_A,
                               "service=consultation", "visit_date=2025-01-01", NULL);
    (void)state;
    for (size_t i = 0; ps_service_at(i); i++) {
        set_raw(&r->service_visit->service, ps_service_at(i));
        expect_valid(r, &c);
    }
    set_raw(&r->service_visit->service, "Followup");
    expect_one(r, &c, "service", "must be one of");
    set_raw(&r->service_visit->service, "followup");
    set_raw(&r->service_visit->visit_date, "");
    expect_one(r, &c, "visit_date", "is required");
    ps_record_free(r);
}

static void test_labels(void **state)
{
    (void)state;
    assert_string_equal(ps_scheme_label("rural_reward", 1), "农村部分计划生育家庭奖励扶助");
    assert_string_equal(ps_scheme_label("special_support", 1), "计划生育家庭特别扶助");
    assert_string_equal(ps_scheme_label("only_child_reward", 1), "独生子女父母奖励");
    assert_string_equal(ps_scheme_label("first_birth_subsidy", 1), "首次分娩补助");
    assert_non_null(ps_scheme_label("first_birth_subsidy", 0));
    assert_null(ps_scheme_label("bonus", 1));
    assert_null(ps_scheme_label(NULL, 0));
    assert_non_null(ps_scheme_at(4));
    assert_null(ps_scheme_at(5));
    assert_non_null(ps_service_label("prepregnancy_check", 1));
    assert_null(ps_service_label("", 1));
    size_t n = 0;
    while (ps_service_at(n))
        n++;
    assert_int_equal(n, 5);
}

/* ---- envelope, tombstones, many errors, privacy ------------------------------------ */

static void test_envelope(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = good_person();
    (void)state;

    r->id.len = 8;
    expect_one(r, &c, "id", "16-byte");
    r->id.len = PS_ID_LEN;
    r->kind = POPSYNC__KIND__KIND_BIRTH;
    expect_one(r, &c, "kind", "does not match");
    r->kind = (Popsync__Kind)42;
    expect_one(r, &c, "kind", NULL);
    r->kind = POPSYNC__KIND__KIND_PERSON;

    /* Tombstones: the body is no longer checked, the envelope is. */
    set_raw(&r->person->name, "\xff");
    r->person->sex = (Popsync__Sex)9;
    r->deleted = 1;
    expect_valid(r, &c);
    c.peer = township(UNIT_OTHER_TOWN);
    expect_one(r, &c, "orgunit", "outside");
    ps_record_free(r);
}

static void test_many_errors(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = good_person();
    ps_verrs_t v;
    size_t n;
    (void)state;

    set_raw(&r->orgunit, "130203999999");          /* 1 unknown unit */
    set_raw(&r->person->id_number, "1302031990");  /* 2 */
    set_raw(&r->person->name, "\xe7\x8e");         /* 3 */
    r->person->sex = (Popsync__Sex)5;              /* 4 */
    set_raw(&r->person->birth_date, "1990-02-30"); /* 5 */
    set_raw(&r->person->ethnicity, "\x01");        /* 6 */
    r->person->registration = (Popsync__Registration)7; /* 7 */
    r->person->marital_status = (Popsync__MaritalStatus)8; /* 8 */
    set_raw(&r->person->phone, "call me");         /* 9 */
    set_raw(&r->person->address, "\xc0\x80");      /* 10 */
    n = run(r, &c, &v);
    assert_int_equal(n, 10);
    assert_int_equal(v.n, 10);
    /* id_number after birth_date: whether it may be empty depends on it. */
    static const char *const first[PS_VERR_MAX] = {"orgunit", "name", "sex", "birth_date",
                                                   "id_number", "ethnicity", "registration", "marital_status"};
    for (size_t i = 0; i < PS_VERR_MAX; i++)
        assert_string_equal(v.e[i].field, first[i]);

    /* Errors append to what the caller already holds; the count is this record's. */
    n = ps_validate_record(r, &c, &v);
    assert_int_equal(n, 10);
    assert_int_equal(v.n, 20);
    ps_record_free(r);
}

/* No reason ever quotes a value: values are personal data. */
static void test_reasons_hide_values(void **state)
{
    ps_validate_ctx_t c = full_ctx();
    Popsync__Record *r = good_person();
    ps_verrs_t v;
    (void)state;

    set_raw(&r->person->id_number, "130203199003151185");
    set_raw(&r->person->name, "王秀英\x01");
    set_raw(&r->person->birth_date, "1990-03-16");
    set_raw(&r->person->phone, "138x0000000");
    run(r, &c, &v);
    assert_true(v.n >= 3);
    for (size_t i = 0; i < v.n && i < PS_VERR_MAX; i++) {
        assert_null(strstr(v.e[i].reason, "1302031990"));
        assert_null(strstr(v.e[i].reason, "王秀英"));
        assert_null(strstr(v.e[i].reason, "1990-03-16"));
        assert_null(strstr(v.e[i].reason, "138x"));
    }
    ps_record_free(r);
}

/* ps_record_refs: the one list of reference fields delete and the quality
 * report read; each kind's reference, with the kind it must name. */
static void test_record_refs(void **state)
{
    static const struct {
        int kind;
        const char *set, *field;
        int target;
    } cases[] = {
        {POPSYNC__KIND__KIND_PERSON, "household_id=" HOUSEHOLD_A, "household_id", POPSYNC__KIND__KIND_HOUSEHOLD},
        {POPSYNC__KIND__KIND_HOUSEHOLD, "head_id=" PERSON_A, "head_id", POPSYNC__KIND__KIND_PERSON},
        {POPSYNC__KIND__KIND_BIRTH, "mother_id=" PERSON_A, "mother_id", POPSYNC__KIND__KIND_PERSON},
        {POPSYNC__KIND__KIND_MIGRATION, "person_id=" PERSON_A, "person_id", POPSYNC__KIND__KIND_PERSON},
        {POPSYNC__KIND__KIND_BENEFIT, "person_id=" PERSON_A, "person_id", POPSYNC__KIND__KIND_PERSON},
        {POPSYNC__KIND__KIND_SERVICE_VISIT, "person_id=" PERSON_A, "person_id", POPSYNC__KIND__KIND_PERSON},
    };
    ps_ref_t refs[PS_REFS_MAX];
    uint8_t want[PS_ID_LEN];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        Popsync__Record *r = build(cases[i].kind, UNIT_VILLAGE, NULL);
        /* No reference set: none reported. */
        assert_int_equal(ps_record_refs(r, refs), 0);
        ps_record_free(r);
        r = build(cases[i].kind, UNIT_VILLAGE, cases[i].set, NULL);
        assert_int_equal(ps_record_refs(r, refs), 1);
        assert_string_equal(refs[0].field, cases[i].field);
        assert_int_equal(refs[0].kind, cases[i].target);
        assert_int_equal(ps_uuid_parse(strchr(cases[i].set, '=') + 1, want), PS_OK);
        assert_memory_equal(refs[0].id, want, PS_ID_LEN);
        ps_record_free(r);
    }
    assert_int_equal(ps_record_refs(NULL, refs), 0);
    /* A birth names its mother and, once registered, its child. */
    {
        Popsync__Record *b = build(POPSYNC__KIND__KIND_BIRTH, UNIT_VILLAGE, "mother_id=" PERSON_A,
                                   "child_id=" MISSING_ID, NULL);
        assert_int_equal(ps_record_refs(b, refs), 2);
        assert_string_equal(refs[0].field, "mother_id");
        assert_string_equal(refs[1].field, "child_id");
        assert_int_equal(refs[1].kind, POPSYNC__KIND__KIND_PERSON);
        ps_record_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_valid),          cmocka_unit_test(test_id_invalid),
        cmocka_unit_test(test_dates),             cmocka_unit_test(test_record_dates),
        cmocka_unit_test(test_valid_records),     cmocka_unit_test(test_person_rules),
        cmocka_unit_test(test_text_rules),        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_orgunit_rules),     cmocka_unit_test(test_scope_tree_decides),
        cmocka_unit_test(test_references),        cmocka_unit_test(test_birth_rules),
        cmocka_unit_test(test_migration_rules), cmocka_unit_test(test_foreign_case_rule),   cmocka_unit_test(test_benefit_rules),
        cmocka_unit_test(test_service_rules),     cmocka_unit_test(test_labels),
        cmocka_unit_test(test_envelope),          cmocka_unit_test(test_many_errors),
        cmocka_unit_test(test_reasons_hide_values), cmocka_unit_test(test_record_refs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
