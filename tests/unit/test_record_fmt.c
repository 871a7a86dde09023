/* test_record_fmt.c - unit tests for common/record_fmt.c.
 *
 * Owns: checks that every field of every kind round-trips through its text
 * and JSON forms, that bad input is refused without touching the record, and
 * that tables line up with CJK text.  Field lists come from the descriptors,
 * so a field added to records.proto is covered with no change here.  Run
 * under PS_SANITIZE=ON to check that everything is freed.
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
#include "record_fmt.h"

#include <jansson.h>

#define UUID_A "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

/* ---- helpers --------------------------------------------------------------- */

static const ProtobufCFieldDescriptor *body_member(int kind)
{
    const ProtobufCMessageDescriptor *rd = &popsync__record__descriptor;
    const char *name = ps_kind_name(kind);

    for (unsigned i = 0; name && i < rd->n_fields; i++)
        if ((rd->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && strcmp(rd->fields[i].name, name) == 0)
            return &rd->fields[i];
    return NULL;
}

static ProtobufCMessage *body_of(Popsync__Record *r)
{
    const ProtobufCFieldDescriptor *bf = body_member((int)r->kind);
    assert_non_null(bf);
    assert_int_equal(r->body_case, bf->id);
    return *(ProtobufCMessage **)(void *)((char *)r + bf->offset);
}

/* Expected text of an enum value, worked out independently of record_fmt:
 * strip the prefix every value name of the enum shares, lower-case the rest. */
static void enum_expected(const ProtobufCEnumDescriptor *ed, const ProtobufCEnumValue *v, char *out, size_t n)
{
    size_t common = strlen(ed->values[0].name), cut = 0;

    for (unsigned i = 1; i < ed->n_values; i++) {
        size_t k = 0;
        while (k < common && ed->values[i].name[k] == ed->values[0].name[k])
            k++;
        common = k;
    }
    for (size_t k = 0; k < common; k++)
        if (ed->values[0].name[k] == '_')
            cut = k + 1;
    snprintf(out, n, "%s", v->name + cut);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
}

/* A valid non-default text value for field f. */
static void sample_text(const ProtobufCFieldDescriptor *f, char *out, size_t n)
{
    const ProtobufCEnumDescriptor *ed;
    size_t len = strlen(f->name);

    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        snprintf(out, n, "测试-%s", f->name);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        ed = f->descriptor;
        enum_expected(ed, &ed->values[ed->n_values - 1], out, n);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        snprintf(out, n, "true");
        break;
    case PROTOBUF_C_TYPE_BYTES:
        if (len > 3 && strcmp(f->name + len - 3, "_id") == 0)
            snprintf(out, n, "%s", UUID_A);
        else
            snprintf(out, n, "00ff10");
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        snprintf(out, n, "1.5");
        break;
    default:
        snprintf(out, n, "42");
        break;
    }
}

/* Text of field f once cleared. */
static const char *cleared_text(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_BYTES:
        return "";
    case PROTOBUF_C_TYPE_BOOL:
        return "false";
    default:
        return "0";
    }
}

static Popsync__Record *new_rec(int kind)
{
    Popsync__Record *r = NULL;
    assert_int_equal(ps_record_new(&r, kind), PS_OK);
    assert_non_null(r);
    return r;
}

static void set_ok(Popsync__Record *r, const char *field, const char *value)
{
    char err[256] = "";
    int rc = ps_record_set(r, field, value, err, sizeof(err));
    if (rc != PS_OK)
        fail_msg("set %s=%s: %d %s", field, value, rc, err);
}

static void expect_text(const Popsync__Record *r, const char *field, const char *want)
{
    char got[512];
    assert_int_equal(ps_record_get_text(r, field, got, sizeof(got)), PS_OK);
    assert_string_equal(got, want);
}

/* Sets every body field of r to its sample value. */
static void fill_all(Popsync__Record *r)
{
    const char *names[64];
    size_t n = ps_record_field_names((int)r->kind, names, 64);
    const ProtobufCMessageDescriptor *d = body_member((int)r->kind)->descriptor;

    assert_true(n > 0 && n <= 64);
    for (size_t i = 0; i < n; i++) {
        char v[128];
        sample_text(protobuf_c_message_descriptor_get_field_by_name(d, names[i]), v, sizeof(v));
        set_ok(r, names[i], v);
    }
}

static uint8_t *pack(const Popsync__Record *r, size_t *len)
{
    uint8_t *p;
    *len = protobuf_c_message_get_packed_size(&r->base);
    p = malloc(*len + 1);
    assert_non_null(p);
    assert_int_equal(protobuf_c_message_pack(&r->base, p), *len);
    return p;
}

static int each_kind(int i)
{
    const ProtobufCEnumDescriptor *ed = &popsync__kind__descriptor;
    return i < (int)ed->n_values ? ed->values[i].value : -1;
}

/* ---- kinds ----------------------------------------------------------------- */

static void test_kinds(void **state)
{
    static const struct {
        const char *name;
        int kind;
    } want[] = {
        {"person", POPSYNC__KIND__KIND_PERSON},       {"household", POPSYNC__KIND__KIND_HOUSEHOLD},
        {"birth", POPSYNC__KIND__KIND_BIRTH},         {"migration", POPSYNC__KIND__KIND_MIGRATION},
        {"benefit", POPSYNC__KIND__KIND_BENEFIT},     {"service_visit", POPSYNC__KIND__KIND_SERVICE_VISIT},
    };
    Popsync__Record *r = NULL;
    int made = 0;
    (void)state;

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(ps_kind_from_name(want[i].name), want[i].kind);
        assert_string_equal(ps_kind_name(want[i].kind), want[i].name);
    }
    assert_int_equal(ps_kind_from_name("nope"), -1);
    assert_int_equal(ps_kind_from_name("unspecified"), -1);
    assert_int_equal(ps_kind_from_name(""), -1);
    assert_int_equal(ps_kind_from_name(NULL), -1);
    assert_null(ps_kind_name(0));
    assert_null(ps_kind_name(99));
    assert_int_equal(ps_record_new(&r, 0), PS_EINVAL);
    assert_null(r);
    assert_int_equal(ps_record_new(&r, 99), PS_EINVAL);

    /* every kind the enum defines, including ones added later */
    for (int i = 0, k; (k = each_kind(i)) >= 0; i++) {
        if (k == 0)
            continue;
        r = new_rec(k);
        assert_int_equal(r->kind, k);
        assert_non_null(body_of(r));
        expect_text(r, "kind", ps_kind_name(k));
        expect_text(r, "id", "");
        expect_text(r, "orgunit", "");
        expect_text(r, "rev", "");
        expect_text(r, "deleted", "false");
        ps_record_free(r);
        made++;
    }
    assert_int_equal(made, 7);
    ps_record_free(NULL);
}

static void test_field_names(void **state)
{
    const char *names[16];
    (void)state;

    assert_int_equal(ps_record_field_names(POPSYNC__KIND__KIND_PERSON, names, 16), 14);
    assert_string_equal(names[0], "id_number");
    assert_string_equal(names[1], "name");
    assert_string_equal(names[9], "address");
    /* the total comes back even when the array is short */
    assert_int_equal(ps_record_field_names(POPSYNC__KIND__KIND_MIGRATION, names, 2), 10);
    assert_string_equal(names[1], "direction");
    assert_int_equal(ps_record_field_names(POPSYNC__KIND__KIND_HOUSEHOLD, NULL, 0), 2);
    assert_int_equal(ps_record_field_names(0, names, 16), 0);
    assert_int_equal(ps_record_field_names(42, names, 16), 0);
}

/* ---- every field of every kind --------------------------------------------- */

static void test_every_field(void **state)
{
    int fields = 0;
    (void)state;

    for (int i = 0, k; (k = each_kind(i)) >= 0; i++) {
        const char *names[64];
        const ProtobufCMessageDescriptor *d;
        Popsync__Record *r, *back;
        size_t n, len;
        uint8_t *packed;

        if (k == 0)
            continue;
        r = new_rec(k);
        d = body_member(k)->descriptor;
        n = ps_record_field_names(k, names, 64);
        assert_int_equal(n, d->n_fields);
        for (size_t j = 0; j < n; j++) {
            const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, names[j]);
            char v[128];
            assert_non_null(f);
            if (j > 0) /* field-number order */
                assert_true(f->id > protobuf_c_message_descriptor_get_field_by_name(d, names[j - 1])->id);
            expect_text(r, names[j], cleared_text(f));
            sample_text(f, v, sizeof(v));
            set_ok(r, names[j], v);
            expect_text(r, names[j], v);
            set_ok(r, names[j], v); /* replacing frees the old value */
            set_ok(r, names[j], "");
            expect_text(r, names[j], cleared_text(f));
            set_ok(r, names[j], v);
            fields++;
        }
        /* what we built is a valid message that survives the wire */
        packed = pack(r, &len);
        back = popsync__record__unpack(NULL, len, packed);
        assert_non_null(back);
        for (size_t j = 0; j < n; j++) {
            char a[256], b[256];
            assert_int_equal(ps_record_get_text(r, names[j], a, sizeof(a)), PS_OK);
            assert_int_equal(ps_record_get_text(back, names[j], b, sizeof(b)), PS_OK);
            assert_string_equal(a, b);
        }
        /* and fields of an unpacked record can be replaced and cleared too */
        fill_all(back);
        for (size_t j = 0; j < n; j++)
            set_ok(back, names[j], "");
        ps_record_free(back);
        free(packed);
        ps_record_free(r);
    }
    assert_true(fields >= 38); /* 10 + 2 + 5 + 10 + 6 + 5 today */
}

/* ---- value kinds ----------------------------------------------------------- */

static void test_enums(void **state)
{
    Popsync__Record *r = new_rec(POPSYNC__KIND__KIND_PERSON);
    Popsync__Record *b = new_rec(POPSYNC__KIND__KIND_BENEFIT);
    char err[256];
    (void)state;

    set_ok(r, "sex", "male");
    assert_int_equal(r->person->sex, POPSYNC__SEX__SEX_MALE);
    expect_text(r, "sex", "male");
    set_ok(r, "sex", "FEMALE");
    assert_int_equal(r->person->sex, POPSYNC__SEX__SEX_FEMALE);
    set_ok(r, "sex", "SEX_MALE");
    assert_int_equal(r->person->sex, POPSYNC__SEX__SEX_MALE);
    set_ok(r, "marital_status", "married");
    assert_int_equal(r->person->marital_status, POPSYNC__MARITAL_STATUS__MARITAL_STATUS_MARRIED);
    expect_text(r, "marital_status", "married");
    set_ok(r, "registration", "migrant");
    expect_text(r, "registration", "migrant");
    set_ok(b, "status", "paid");
    assert_int_equal(b->benefit->status, POPSYNC__BENEFIT_STATUS__BENEFIT_STATUS_PAID);
    expect_text(b, "status", "paid");

    assert_int_equal(ps_record_set(r, "sex", "alien", err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "sex"));
    assert_non_null(strstr(err, "female"));
    assert_int_equal(r->person->sex, POPSYNC__SEX__SEX_MALE);
    /* another enum's value names are not this one's */
    assert_int_equal(ps_record_set(r, "sex", "married", err, sizeof(err)), PS_EINVAL);

    set_ok(r, "sex", "");
    assert_int_equal(r->person->sex, POPSYNC__SEX__SEX_UNSPECIFIED);
    expect_text(r, "sex", "");
    /* a number this build has no name for still round-trips */
    set_ok(r, "sex", "7");
    expect_text(r, "sex", "7");
    ps_record_free(r);
    ps_record_free(b);
}

static void test_bools(void **state)
{
    Popsync__Record *r = new_rec(POPSYNC__KIND__KIND_MIGRATION);
    char err[256];
    (void)state;

    set_ok(r, "urgent", "true");
    assert_true(r->migration->urgent);
    expect_text(r, "urgent", "true");
    set_ok(r, "urgent", "false");
    assert_false(r->migration->urgent);
    set_ok(r, "urgent", "TRUE");
    assert_true(r->migration->urgent);
    /* The field dictionary's forgiving forms (fields.h). */
    set_ok(r, "urgent", "否");
    assert_false(r->migration->urgent);
    set_ok(r, "urgent", "yes");
    assert_true(r->migration->urgent);
    set_ok(r, "urgent", "0");
    assert_false(r->migration->urgent);
    set_ok(r, "urgent", " true ");
    assert_true(r->migration->urgent);
    assert_int_equal(ps_record_set(r, "urgent", "maybe", err, sizeof(err)), PS_EINVAL);
    assert_true(r->migration->urgent);
    set_ok(r, "urgent", "");
    expect_text(r, "urgent", "false");
    ps_record_free(r);
}

static void test_ints(void **state)
{
    static const char *const bad_u32[] = {"4294967296", "-1", "-0", "12a", "1 2", "+1", "0x10", "1e3",
                                          "-", "99999999999999999999999"};
    static const char *const bad_i64[] = {"9223372036854775808", "-9223372036854775809", "1.5", "1e3",
                                          "abc", "--1", "- 5x", "5-"};
    Popsync__Record *b = new_rec(POPSYNC__KIND__KIND_BIRTH);
    Popsync__Record *f = new_rec(POPSYNC__KIND__KIND_BENEFIT);
    char err[256];
    (void)state;

    set_ok(b, "birth_order", "2");
    assert_int_equal(b->birth->birth_order, 2);
    set_ok(b, "birth_order", "4294967295");
    assert_int_equal(b->birth->birth_order, UINT32_MAX);
    expect_text(b, "birth_order", "4294967295");
    set_ok(b, "birth_order", "007");
    expect_text(b, "birth_order", "7");
    for (size_t i = 0; i < sizeof(bad_u32) / sizeof(bad_u32[0]); i++) {
        err[0] = '\0';
        if (ps_record_set(b, "birth_order", bad_u32[i], err, sizeof(err)) != PS_EINVAL)
            fail_msg("uint32 accepted '%s'", bad_u32[i]);
        assert_non_null(strstr(err, "birth_order"));
        assert_int_equal(b->birth->birth_order, 7);
    }

    set_ok(f, "amount_fen", "-500");
    assert_int_equal(f->benefit->amount_fen, -500);
    set_ok(f, "amount_fen", "9223372036854775807");
    assert_true(f->benefit->amount_fen == INT64_MAX);
    set_ok(f, "amount_fen", "-9223372036854775808");
    assert_true(f->benefit->amount_fen == INT64_MIN);
    expect_text(f, "amount_fen", "-9223372036854775808");
    for (size_t i = 0; i < sizeof(bad_i64) / sizeof(bad_i64[0]); i++)
        if (ps_record_set(f, "amount_fen", bad_i64[i], err, sizeof(err)) != PS_EINVAL)
            fail_msg("int64 accepted '%s'", bad_i64[i]);
    assert_true(f->benefit->amount_fen == INT64_MIN);
    set_ok(f, "amount_fen", "");
    assert_int_equal(f->benefit->amount_fen, 0);
    ps_record_free(b);
    ps_record_free(f);
}

static void test_ids(void **state)
{
    Popsync__Record *r = new_rec(POPSYNC__KIND__KIND_PERSON);
    char err[256];
    (void)state;

    set_ok(r, "household_id", UUID_A);
    assert_int_equal(r->person->household_id.len, PS_ID_LEN);
    assert_int_equal(r->person->household_id.data[0], 0x01);
    expect_text(r, "household_id", UUID_A);
    set_ok(r, "household_id", "0190A1B2C3D47E5F8A9B0C1D2E3F4A5B");
    expect_text(r, "household_id", UUID_A);
    assert_int_equal(ps_record_set(r, "household_id", "0190a1b2-c3d4", err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_record_set(r, "household_id", UUID_A "00", err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_record_set(r, "household_id", "zz90a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", err, sizeof(err)),
                     PS_EINVAL);
    expect_text(r, "household_id", UUID_A);
    set_ok(r, "household_id", "");
    assert_int_equal(r->person->household_id.len, 0);
    assert_null(r->person->household_id.data);

    /* envelope ids read as UUIDs, other envelope bytes as hex */
    r->id.data = malloc(PS_ID_LEN);
    assert_non_null(r->id.data);
    r->id.len = PS_ID_LEN;
    assert_int_equal(ps_uuid_parse(UUID_A, r->id.data), PS_OK);
    expect_text(r, "id", UUID_A);
    r->changed_by.data = malloc(2);
    assert_non_null(r->changed_by.data);
    r->changed_by.len = 2;
    r->changed_by.data[0] = 0xab;
    r->changed_by.data[1] = 0x01;
    expect_text(r, "changed_by", "ab01");
    ps_record_free(r);
}

static void test_envelope(void **state)
{
    Popsync__Record *r = new_rec(POPSYNC__KIND__KIND_HOUSEHOLD);
    char err[256], small[4];
    (void)state;

    set_ok(r, "orgunit", "110101001001");
    expect_text(r, "orgunit", "110101001001");
    set_ok(r, "orgunit", "");
    expect_text(r, "orgunit", "");
    set_ok(r, "orgunit", "110101001002");
    assert_int_equal(ps_record_set(r, "id", UUID_A, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "envelope"));
    assert_int_equal(ps_record_set(r, "kind", "person", err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_record_set(r, "deleted", "true", err, sizeof(err)), PS_EINVAL);

    r->rev = malloc(sizeof(*r->rev));
    assert_non_null(r->rev);
    popsync__rev__init(r->rev);
    r->rev->gen = 3;
    r->rev->hlc = 123456789;
    expect_text(r, "rev", "3.123456789");
    r->created_ms = 1700000000000;
    expect_text(r, "created_ms", "1700000000000");
    r->deleted = 1;
    expect_text(r, "deleted", "true");

    assert_int_equal(ps_record_get_text(r, "orgunit", small, sizeof(small)), PS_ETOOBIG);
    assert_string_equal(small, "110");
    assert_int_equal(ps_record_get_text(r, "nope", small, sizeof(small)), PS_EINVAL);
    assert_int_equal(ps_record_get_text(r, "name", small, sizeof(small)), PS_EINVAL);
    assert_int_equal(ps_record_get_text(r, "household", small, sizeof(small)), PS_EINVAL);
    ps_record_free(r);
}

static void test_unknown_fields(void **state)
{
    Popsync__Record *r = new_rec(POPSYNC__KIND__KIND_PERSON);
    char err[256];
    (void)state;

    assert_int_equal(ps_record_set(r, "x", "1", err, sizeof(err)), PS_EINVAL);
    assert_true(strncmp(err, "unknown field 'x' for kind person; fields: orgunit, id_number", 61) == 0);
    /* a field of another kind */
    assert_int_equal(ps_record_set(r, "scheme", "dibao", err, sizeof(err)), PS_EINVAL);
    assert_true(strncmp(err, "unknown field 'scheme' for kind person; fields:", 46) == 0);
    /* the oneof member names are not fields */
    assert_int_equal(ps_record_set(r, "person", "", err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_record_set(r, "x", "1", NULL, 0), PS_EINVAL);

    assert_int_equal(ps_record_set_kv(r, "name=张三", err, sizeof(err)), PS_OK);
    expect_text(r, "name", "张三");
    assert_int_equal(ps_record_set_kv(r, "address=a=b", err, sizeof(err)), PS_OK);
    expect_text(r, "address", "a=b");
    assert_int_equal(ps_record_set_kv(r, "name=", err, sizeof(err)), PS_OK);
    expect_text(r, "name", "");
    assert_int_equal(ps_record_set_kv(r, "name", err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_record_set_kv(r, "=x", err, sizeof(err)), PS_EINVAL);
    assert_int_equal(ps_record_set_kv(r, "nope=1", err, sizeof(err)), PS_EINVAL);
    assert_true(strncmp(err, "unknown field 'nope' for kind person; fields:", 45) == 0);
    ps_record_free(r);
}

static void test_utf8(void **state)
{
    static const char *const bad[] = {
        "\xC0\x80",         /* overlong NUL */
        "\xC1\xBF",         /* overlong */
        "\xE0\x80\xAF",     /* overlong '/' */
        "\xF0\x80\x80\xAF", /* overlong '/' */
        "\xED\xA0\x80",     /* surrogate U+D800 */
        "\xED\xBF\xBF",     /* surrogate U+DFFF */
        "\xF4\x90\x80\x80", /* U+110000 */
        "\xF5\x80\x80\x80", /* lead byte past U+10FFFF */
        "\xFF",
        "\x80",         /* stray continuation */
        "\xE5\xBC",     /* truncated 张 */
        "ab\xE5\xBC",   /* truncated at the end */
        "\xE5\x41\xA0", /* bad continuation */
    };
    static const char *const good[] = {"", "abc", "张三", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF", "\xEF\xBF\xBF",
                                       "Ünïcödé", "\xE2\x82\xAC"};
    Popsync__Record *r = new_rec(POPSYNC__KIND__KIND_PERSON);
    char err[256];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ps_utf8_valid(bad[i], strlen(bad[i])))
            fail_msg("accepted bad UTF-8 #%zu", i);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!ps_utf8_valid(good[i], strlen(good[i])))
            fail_msg("refused good UTF-8 #%zu", i);
    assert_false(ps_utf8_valid("a\0\x80", 3));

    set_ok(r, "name", "张三");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ps_record_set(r, "name", bad[i], err, sizeof(err)), PS_EINVAL);
        assert_non_null(strstr(err, "UTF-8"));
    }
    expect_text(r, "name", "张三");
    assert_int_equal(ps_record_set(r, "orgunit", "\xFF", err, sizeof(err)), PS_EINVAL);
    ps_record_free(r);
}

/* ---- JSON ------------------------------------------------------------------ */

/* A 64-bit value as a reader of popsync's JSON takes it: a decimal string
 * (what popsync writes) or a number (what it still accepts). */
static uint64_t json_u64(const json_t *v)
{
    if (json_is_string(v))
        return strtoull(json_string_value(v), NULL, 10);
    return (uint64_t)json_integer_value(v);
}

/* What a caller of ps_record_from_json does with the keys it ignores. */
static Popsync__Record *record_from_json_like_caller(const json_t *o)
{
    Popsync__Record *r = NULL;
    const json_t *rev = json_object_get(o, "rev");
    char err[256] = "";
    int rc;

    assert_int_equal(ps_record_new(&r, ps_kind_from_name(json_string_value(json_object_get(o, "kind")))), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    assert_non_null(r->id.data);
    r->id.len = PS_ID_LEN;
    assert_int_equal(ps_uuid_parse(json_string_value(json_object_get(o, "id")), r->id.data), PS_OK);
    r->deleted = json_is_true(json_object_get(o, "deleted"));
    r->created_ms = (int64_t)json_u64(json_object_get(o, "created_ms"));
    if (json_is_object(rev)) {
        r->rev = malloc(sizeof(*r->rev));
        assert_non_null(r->rev);
        popsync__rev__init(r->rev);
        r->rev->gen = json_u64(json_object_get(rev, "gen"));
        r->rev->hlc = json_u64(json_object_get(rev, "hlc"));
        r->rev->node.data = malloc(PS_ID_LEN);
        assert_non_null(r->rev->node.data);
        r->rev->node.len = PS_ID_LEN;
        assert_int_equal(ps_uuid_parse(json_string_value(json_object_get(rev, "node")), r->rev->node.data), PS_OK);
    }
    rc = ps_record_from_json(r, o, err, sizeof(err));
    if (rc != PS_OK)
        fail_msg("from_json: %d %s", rc, err);
    return r;
}

static void test_json_roundtrip(void **state)
{
    (void)state;

    for (int i = 0, k; (k = each_kind(i)) >= 0; i++) {
        Popsync__Record *r, *back;
        json_t *o, *o2;
        uint8_t *p1, *p2;
        size_t l1, l2;
        char *dump;

        if (k == 0)
            continue;
        r = new_rec(k);
        fill_all(r);
        set_ok(r, "orgunit", "110101001001");
        r->id.data = malloc(PS_ID_LEN);
        assert_non_null(r->id.data);
        r->id.len = PS_ID_LEN;
        assert_int_equal(ps_uuid7(r->id.data), PS_OK);
        r->deleted = 1;
        r->created_ms = 1700000000123;
        r->rev = malloc(sizeof(*r->rev));
        assert_non_null(r->rev);
        popsync__rev__init(r->rev);
        r->rev->gen = 9;
        r->rev->hlc = (uint64_t)1700000000123 << 16 | 5;
        r->rev->node.data = malloc(PS_ID_LEN);
        assert_non_null(r->rev->node.data);
        r->rev->node.len = PS_ID_LEN;
        assert_int_equal(ps_random(r->rev->node.data, PS_ID_LEN), PS_OK);

        o = ps_record_to_json(r);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "kind")), ps_kind_name(k));
        assert_string_equal(json_string_value(json_object_get(o, "orgunit")), "110101001001");
        assert_true(json_is_true(json_object_get(o, "deleted")));
        assert_string_equal(json_string_value(json_object_get(json_object_get(o, "rev"), "gen")), "9");
        assert_int_equal(strlen(json_string_value(json_object_get(json_object_get(o, "rev"), "node"))), 32);

        /* through text, as a file would carry it */
        dump = json_dumps(o, JSON_COMPACT);
        assert_non_null(dump);
        o2 = json_loads(dump, 0, NULL);
        assert_non_null(o2);
        back = record_from_json_like_caller(o2);
        p1 = pack(r, &l1);
        p2 = pack(back, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(p1, p2, l1);

        free(p1);
        free(p2);
        free(dump);
        json_decref(o);
        json_decref(o2);
        ps_record_free(r);
        ps_record_free(back);
    }
}

static void test_json_shape(void **state)
{
    Popsync__Record *r = new_rec(POPSYNC__KIND__KIND_PERSON);
    Popsync__Record *m = new_rec(POPSYNC__KIND__KIND_MIGRATION);
    Popsync__Record *b = new_rec(POPSYNC__KIND__KIND_BIRTH);
    const char *names[16];
    json_t *o;
    size_t n = ps_record_field_names(POPSYNC__KIND__KIND_PERSON, names, 16);
    (void)state;

    /* unset fields are present, so every object of a kind has one shape */
    o = ps_record_to_json(r);
    assert_non_null(o);
    for (size_t i = 0; i < n; i++)
        assert_non_null(json_object_get(o, names[i]));
    assert_string_equal(json_string_value(json_object_get(o, "id")), "");
    assert_string_equal(json_string_value(json_object_get(o, "name")), "");
    assert_string_equal(json_string_value(json_object_get(o, "sex")), "");
    assert_string_equal(json_string_value(json_object_get(o, "household_id")), "");
    assert_true(json_is_null(json_object_get(o, "rev")));
    assert_true(json_is_false(json_object_get(o, "deleted")));
    json_decref(o);

    set_ok(r, "name", "张三");
    set_ok(r, "sex", "female");
    o = ps_record_to_json(r);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "张三");
    assert_string_equal(json_string_value(json_object_get(o, "sex")), "female");
    json_decref(o);

    set_ok(m, "urgent", "true");
    o = ps_record_to_json(m);
    assert_true(json_is_true(json_object_get(o, "urgent")));
    json_decref(o);
    set_ok(b, "birth_order", "2");
    o = ps_record_to_json(b);
    assert_true(json_is_integer(json_object_get(o, "birth_order")));
    assert_int_equal(json_integer_value(json_object_get(o, "birth_order")), 2);
    json_decref(o);

    /* a string that came off the wire unchecked still makes valid JSON */
    free(r->person->name);
    r->person->name = strdup("a\xFFz");
    assert_non_null(r->person->name);
    o = ps_record_to_json(r);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "a\xEF\xBF\xBDz");
    json_decref(o);

    ps_record_free(r);
    ps_record_free(m);
    ps_record_free(b);
}

/* 64-bit integers are written as decimal strings (protobuf JSON mapping), so
 * that an hlc above 2^53 survives any JSON reader; 32-bit ones stay numbers;
 * reading accepts both. */
static void test_json_int64_as_strings(void **state)
{
    Popsync__Record *r = new_rec(POPSYNC__KIND__KIND_BENEFIT);
    Popsync__Record *b = new_rec(POPSYNC__KIND__KIND_BIRTH);
    const uint64_t hlc = (uint64_t)1765000000123 << 16 | 7; /* about 1.16e17 > 2^53 */
    char err[256];
    json_t *o, *rev, *in;
    (void)state;

    r->created_ms = 1765000000123;
    r->updated_ms = -5;
    r->rev = malloc(sizeof(*r->rev));
    assert_non_null(r->rev);
    popsync__rev__init(r->rev);
    r->rev->gen = UINT64_MAX;
    r->rev->hlc = hlc;
    set_ok(r, "amount_fen", "96000");
    o = ps_record_to_json(r);
    assert_non_null(o);
    rev = json_object_get(o, "rev");
    assert_true(json_is_string(json_object_get(rev, "hlc")));
    assert_string_equal(json_string_value(json_object_get(rev, "hlc")), "115671040008060935");
    assert_string_equal(json_string_value(json_object_get(rev, "gen")), "18446744073709551615");
    assert_string_equal(json_string_value(json_object_get(o, "created_ms")), "1765000000123");
    assert_string_equal(json_string_value(json_object_get(o, "updated_ms")), "-5");
    assert_string_equal(json_string_value(json_object_get(o, "amount_fen")), "96000");
    json_decref(o);
    o = ps_json_u64(hlc);
    assert_string_equal(json_string_value(o), "115671040008060935");
    json_decref(o);
    o = ps_json_i64(INT64_MIN);
    assert_string_equal(json_string_value(o), "-9223372036854775808");
    json_decref(o);

    /* reading: a string and a number both set an int64 field */
    in = json_pack("{s:s}", "amount_fen", "12345");
    assert_int_equal(ps_record_from_json(r, in, err, sizeof(err)), PS_OK);
    assert_int_equal(r->benefit->amount_fen, 12345);
    json_decref(in);
    in = json_pack("{s:I}", "amount_fen", (json_int_t)678);
    assert_int_equal(ps_record_from_json(r, in, err, sizeof(err)), PS_OK);
    assert_int_equal(r->benefit->amount_fen, 678);
    json_decref(in);

    /* 32-bit integers stay numbers */
    set_ok(b, "birth_order", "2");
    o = ps_record_to_json(b);
    assert_true(json_is_integer(json_object_get(o, "birth_order")));
    json_decref(o);

    ps_record_free(r);
    ps_record_free(b);
}

/* Same content ignores who changed a record and when, nothing else. */
static void test_same_content(void **state)
{
    Popsync__Record *a = new_rec(POPSYNC__KIND__KIND_PERSON), *b = new_rec(POPSYNC__KIND__KIND_PERSON);
    Popsync__Rev rev = POPSYNC__REV__INIT;
    static uint8_t node[16] = {1, 2, 3};
    (void)state;

    set_ok(a, "name", "张三");
    set_ok(b, "name", "张三");
    assert_true(ps_record_same_content(a, b));
    rev.gen = 7;
    rev.hlc = 99;
    b->rev = &rev;
    b->created_ms = 5;
    b->updated_ms = 6;
    b->changed_by.data = node;
    b->changed_by.len = 16;
    assert_true(ps_record_same_content(a, b));
    b->rev = NULL;
    b->changed_by.data = NULL;
    b->changed_by.len = 0;
    set_ok(b, "phone", "13800000000");
    assert_false(ps_record_same_content(a, b));
    set_ok(b, "phone", "");
    assert_true(ps_record_same_content(a, b)); /* "" is the unset value */
    b->deleted = 1;
    assert_false(ps_record_same_content(a, b));
    b->deleted = 0;
    set_ok(b, "orgunit", "110101001001");
    assert_false(ps_record_same_content(a, b));
    assert_false(ps_record_same_content(a, NULL));
    ps_record_free(a);
    ps_record_free(b);
}

static void test_json_input(void **state)
{
    Popsync__Record *r = new_rec(POPSYNC__KIND__KIND_BIRTH);
    char err[256];
    json_t *o;
    (void)state;

    o = json_pack("{s:s, s:i, s:s, s:s, s:s, s:b, s:o}", "kind", "person", "birth_order", 3, "child_sex", "male",
                  "place", "北京", "id", "not-checked-here", "deleted", 1, "rev", json_null());
    assert_non_null(o);
    assert_int_equal(ps_record_from_json(r, o, err, sizeof(err)), PS_OK);
    assert_int_equal(r->birth->birth_order, 3);
    assert_int_equal(r->birth->child_sex, POPSYNC__SEX__SEX_MALE);
    assert_string_equal(r->birth->place, "北京");
    assert_int_equal(r->kind, POPSYNC__KIND__KIND_BIRTH); /* the caller's business */
    assert_false(r->deleted);
    json_decref(o);

    /* integers as strings, null clears */
    o = json_pack("{s:s, s:n}", "birth_order", "4", "place");
    assert_int_equal(ps_record_from_json(r, o, err, sizeof(err)), PS_OK);
    assert_int_equal(r->birth->birth_order, 4);
    assert_string_equal(r->birth->place, "");
    json_decref(o);

    o = json_pack("{s:s}", "bogus", "x");
    assert_int_equal(ps_record_from_json(r, o, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "bogus"));
    json_decref(o);
    o = json_pack("{s:i}", "birth_order", -1);
    assert_int_equal(ps_record_from_json(r, o, err, sizeof(err)), PS_EINVAL);
    json_decref(o);
    o = json_pack("{s:f}", "birth_order", 2.5);
    assert_int_equal(ps_record_from_json(r, o, err, sizeof(err)), PS_EINVAL);
    json_decref(o);
    o = json_pack("{s:[]}", "place");
    assert_int_equal(ps_record_from_json(r, o, err, sizeof(err)), PS_EINVAL);
    json_decref(o);
    /* not an object */
    o = json_string("place");
    assert_int_equal(ps_record_from_json(r, o, err, sizeof(err)), PS_EINVAL);
    json_decref(o);
    /* a NUL inside a JSON string would silently cut the value short */
    o = json_pack("{s:s#}", "place", "a\0b", 3);
    assert_non_null(o);
    assert_int_equal(ps_record_from_json(r, o, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "NUL"));
    json_decref(o);
    assert_int_equal(r->birth->birth_order, 4);
    ps_record_free(r);
}

/* ---- width and tables ------------------------------------------------------ */

static void test_width(void **state)
{
    (void)state;
    assert_int_equal(ps_utf8_width("张三"), 4);
    assert_int_equal(ps_utf8_width("欧阳娜娜"), 8);
    assert_int_equal(ps_utf8_width("abc"), 3);
    assert_int_equal(ps_utf8_width(""), 0);
    assert_int_equal(ps_utf8_width("张a"), 3);
    assert_int_equal(ps_utf8_width("é"), 1);
    assert_int_equal(ps_utf8_width("한국"), 4);     /* Hangul syllables */
    assert_int_equal(ps_utf8_width("ＡＢ"), 4);     /* fullwidth forms */
    assert_int_equal(ps_utf8_width("，。"), 4);     /* CJK punctuation */
    assert_int_equal(ps_utf8_width("\xF0\xA0\x80\x80"), 2); /* U+20000, plane 2 */
    assert_int_equal(ps_utf8_width("\xFF" "a"), 2);
}

static char *print_to_string(Popsync__Record *const *recs, size_t n, const char *const *cols, size_t ncols)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    ps_record_print_table(f, recs, n, cols, ncols);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    return buf;
}

static void test_table(void **state)
{
    static const char *const cols[] = {"name", "sex", "phone"};
    Popsync__Record *recs[4];
    char *out, *line, *save = NULL;
    size_t lines = 0;
    (void)state;

    recs[0] = new_rec(POPSYNC__KIND__KIND_PERSON);
    set_ok(recs[0], "name", "张三");
    set_ok(recs[0], "sex", "male");
    set_ok(recs[0], "phone", "13800000000");
    recs[1] = new_rec(POPSYNC__KIND__KIND_PERSON);
    set_ok(recs[1], "name", "Bob");
    set_ok(recs[1], "sex", "female");
    recs[2] = new_rec(POPSYNC__KIND__KIND_PERSON);
    set_ok(recs[2], "name", "欧阳娜娜");
    set_ok(recs[2], "phone", "1");

    out = print_to_string(recs, 3, cols, 3);
    assert_string_equal(out, "name      sex     phone\n"
                             "张三      male    13800000000\n"
                             "Bob       female  \n"
                             "欧阳娜娜          1\n");
    free(out);

    /* a household has no name or sex: its cells are blank; a tab is blanked */
    recs[3] = new_rec(POPSYNC__KIND__KIND_HOUSEHOLD);
    set_ok(recs[1], "name", "B\tb");
    out = print_to_string(recs, 4, cols, 3);
    assert_string_equal(out, "name      sex     phone\n"
                             "张三      male    13800000000\n"
                             "B b       female  \n"
                             "欧阳娜娜          1\n"
                             "                  \n");
    free(out);

    /* default columns: the envelope, then the first record's body fields;
     * every line's second column starts at the same display column */
    set_ok(recs[0], "orgunit", "110101001001");
    out = print_to_string(recs, 3, NULL, 0);
    assert_true(strncmp(out, "id", 2) == 0);
    assert_non_null(strstr(out, "id_number"));
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        /* ids are empty here, so the first column is blank: "kind" or
         * "person" starts after the padding */
        size_t lead = strspn(line + (lines == 0 ? 2 : 0), " ") + (lines == 0 ? 2 : 0);
        assert_int_equal(lead, 4); /* width of "id" + 2 */
        lines++;
    }
    assert_int_equal(lines, 4);
    free(out);

    out = print_to_string(recs, 0, NULL, 0);
    assert_string_equal(out, "id  kind  orgunit\n");
    free(out);

    for (size_t i = 0; i < 4; i++)
        ps_record_free(recs[i]);
}

/* Checks alignment by display width with longer CJK mixes and any column set. */
static void test_table_alignment(void **state)
{
    static const char *const names[] = {"李", "Zhang San", "司马相如", "ＡＢＣ", "x"};
    static const char *const cols[] = {"name", "address", "id_number"};
    Popsync__Record *recs[5];
    char *out, *line, *save = NULL;
    size_t starts[2] = {0, 0}, lines = 0;
    (void)state;

    for (size_t i = 0; i < 5; i++) {
        recs[i] = new_rec(POPSYNC__KIND__KIND_PERSON);
        set_ok(recs[i], "name", names[i]);
        set_ok(recs[i], "address", i % 2 ? "北京市东城区" : "Road 1");
        set_ok(recs[i], "id_number", "11010119900307123X");
    }
    out = print_to_string(recs, 5, cols, 3);
    for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        /* find where the 2nd and 3rd cells start, in display columns */
        const char *p = line;
        size_t col[2];
        for (int c = 0; c < 2; c++) {
            p = strstr(p, "  ");
            assert_non_null(p);
            p += strspn(p, " ");
            {
                char *prefix = strndup(line, (size_t)(p - line));
                assert_non_null(prefix);
                col[c] = ps_utf8_width(prefix);
                free(prefix);
            }
        }
        if (lines == 0) {
            starts[0] = col[0];
            starts[1] = col[1];
        }
        assert_int_equal(col[0], starts[0]);
        assert_int_equal(col[1], starts[1]);
        lines++;
    }
    assert_int_equal(lines, 6);
    assert_int_equal(starts[0], 11);     /* "Zhang San" (9) + 2 */
    assert_int_equal(starts[1], 11 + 14); /* "北京市东城区" (12) + 2 */
    free(out);
    for (size_t i = 0; i < 5; i++)
        ps_record_free(recs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),          cmocka_unit_test(test_field_names),
        cmocka_unit_test(test_every_field),    cmocka_unit_test(test_enums),
        cmocka_unit_test(test_bools),          cmocka_unit_test(test_ints),
        cmocka_unit_test(test_ids),            cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_unknown_fields), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_json_roundtrip), cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_json_input),     cmocka_unit_test(test_json_int64_as_strings), cmocka_unit_test(test_same_content),     cmocka_unit_test(test_width),
        cmocka_unit_test(test_table),          cmocka_unit_test(test_table_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
