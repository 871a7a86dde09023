/* test_decode_bounds.c - decoding is bounded (issue 8, item 6).
 *
 * protobuf-c 1.4 keeps every unknown field and can allocate 40-70 times a
 * crafted body's size; every unpack goes through ps_msg_unpack's budget
 * (PS_MSG_BUDGET).  Checks: crafted bodies (repeated empty submessages, a
 * body of unknown fields, nested empty records) are refused with PS_ENOMEM
 * for every message type they inflate; real messages of the same size
 * still unpack; field number 0 is refused (it would not survive a repack);
 * and the schema has no recursion, so nesting depth is bounded by the
 * schema itself.  The per-frame arena the server decodes pushes into
 * (ps_msg_unpack_arena, issue 17 point 2) keeps the same budget and
 * refusals and gives the same message; so does the reused arena the
 * client decodes each PullBatch into (ps_msg_unpack_reuse), whose block
 * kept from a bigger frame never lifts a smaller frame's budget.  The live half is tests/integration/t_decode_bounds.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "frame.h"
#include "msg.h"

#include "wire.pb-c.h"

#define MB (1u << 20)

/* n copies of pat. */
static uint8_t *repeat(const uint8_t *pat, size_t patlen, size_t n, size_t *len)
{
    uint8_t *p = malloc(patlen * n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        memcpy(p + i * patlen, pat, patlen);
    *len = patlen * n;
    return p;
}

static void expect_refused(uint8_t type, const uint8_t *pat, size_t patlen, size_t n)
{
    size_t len;
    uint8_t *body = repeat(pat, patlen, n, &len);
    ProtobufCMessage *m = NULL;
    ps_msg_arena_t *a = NULL;
    int rc = ps_msg_unpack(type, body, len, &m);
    assert_null(m);
    assert_int_equal(rc, PS_ENOMEM);
    assert_int_equal(ps_msg_unpack_arena(type, body, len, &a, &m), PS_ENOMEM);
    assert_null(a);
    assert_null(m);
    free(body);
}

static void test_repeated_empty_submessages(void **state)
{
    static const uint8_t empty[] = {0x0a, 0x00};                 /* field 1, length 0 */
    static const uint8_t nested[] = {0x0a, 0x02, 0x12, 0x00};    /* Change{record: Record{}} */
    (void)state;
    expect_refused(PS_MSG_PUSH, empty, 2, MB / 2);              /* 1 MiB of empty Changes */
    expect_refused(PS_MSG_PUSH, nested, 4, MB / 4);             /* Changes holding empty Records */
    expect_refused(PS_MSG_PUSH_RESULT, empty, 2, MB / 2);
    expect_refused(PS_MSG_PULL_BATCH, empty, 2, MB / 2);
    expect_refused(PS_MSG_CONFLICT_LIST_RESULT, empty, 2, MB / 2);
    expect_refused(PS_MSG_VERIFY_BUCKET_LIST, empty, 2, MB / 2);
    expect_refused(PS_MSG_FETCH_REQUEST, empty, 2, MB / 2);      /* empty ids */
    expect_refused(PS_MSG_QUERY_RESULT, (const uint8_t[]){0x12, 0x00}, 2, MB / 2);
}

static void test_unknown_fields(void **state)
{
    static const uint8_t unk[] = {0xf8, 0x01, 0x00};             /* field 31, varint 0 */
    (void)state;
    /* Every type the server reads or a client reads: a body made only of
     * unknown fields costs far more than 8x its size unbounded. */
    for (unsigned t = 1; t < 256; t++) {
        if (!ps_msg_descriptor((uint8_t)t))
            continue;
        expect_refused((uint8_t)t, unk, 3, MB / 3);
    }
}

static void test_real_messages_fit(void **state)
{
    /* A Push of 2000 realistic changes unpacks within its budget. */
    Popsync__Push p = POPSYNC__PUSH__INIT;
    Popsync__Change *ch = calloc(2000, sizeof(*ch)), **chp = calloc(2000, sizeof(*chp));
    Popsync__Record *rec = calloc(2000, sizeof(*rec));
    Popsync__Person *per = calloc(2000, sizeof(*per));
    uint8_t id[16] = {1, 2, 3};
    ps_buf_t b;
    ProtobufCMessage *m = NULL;
    (void)state;
    for (size_t i = 0; i < 2000; i++) {
        popsync__change__init(&ch[i]);
        popsync__record__init(&rec[i]);
        popsync__person__init(&per[i]);
        per[i].name = "张丽娟";
        per[i].id_number = "110105197905131449";
        per[i].address = "北京市站前街155号锦绣华庭5号楼1单元503室";
        rec[i].id.data = id;
        rec[i].id.len = 16;
        rec[i].kind = POPSYNC__KIND__KIND_PERSON;
        rec[i].orgunit = "110105001000";
        rec[i].body_case = POPSYNC__RECORD__BODY_PERSON;
        rec[i].person = &per[i];
        ch[i].lcn = i + 1;
        ch[i].record = &rec[i];
        chp[i] = &ch[i];
    }
    p.changes = chp;
    p.n_changes = 2000;
    ps_buf_init(&b);
    assert_int_equal(ps_msg_pack_frame(&b, PS_MSG_PUSH, 1, &p.base), PS_OK);
    assert_int_equal(ps_msg_unpack(PS_MSG_PUSH, ps_buf_head(&b) + PS_FRAME_HDR, ps_buf_size(&b) - PS_FRAME_HDR, &m),
                     PS_OK);
    assert_int_equal(((Popsync__Push *)m)->n_changes, 2000);
    {
        /* The arena gives the same message, within the same budget, in
         * one block freed by one call. */
        ps_msg_arena_t *a = NULL;
        ProtobufCMessage *m2 = NULL;
        size_t n = protobuf_c_message_get_packed_size(m), len = ps_buf_size(&b) - PS_FRAME_HDR;
        uint8_t *p1 = malloc(n), *p2 = malloc(n);
        assert_int_equal(ps_msg_unpack_arena(PS_MSG_PUSH, ps_buf_head(&b) + PS_FRAME_HDR, len, &a, &m2), PS_OK);
        assert_true(ps_msg_arena_used(a) > len && ps_msg_arena_used(a) <= PS_MSG_BUDGET(len));
        assert_int_equal(protobuf_c_message_get_packed_size(m2), n);
        protobuf_c_message_pack(m, p1);
        protobuf_c_message_pack(m2, p2);
        assert_memory_equal(p1, p2, n);
        ps_msg_arena_free(a);
        /* Reused twice, the block gives the same message each time. */
        a = NULL;
        for (int i = 0; i < 2; i++) {
            assert_int_equal(ps_msg_unpack_reuse(PS_MSG_PUSH, ps_buf_head(&b) + PS_FRAME_HDR, len, &a, &m2), PS_OK);
            assert_int_equal(protobuf_c_message_get_packed_size(m2), n);
            memset(p2, 0, n);
            protobuf_c_message_pack(m2, p2);
            assert_memory_equal(p1, p2, n);
        }
        ps_msg_arena_free(a);
        free(p1);
        free(p2);
    }
    ps_msg_free(m);
    ps_buf_free(&b);
    free(per);
    free(rec);
    free(chp);
    free(ch);
}

static void test_field_zero_refused(void **state)
{
    /* Field 0 in a two-byte tag: protobuf-c keeps it, but packs it back as a
     * one-byte tag it then refuses (fuzz_msg found it). */
    static const uint8_t ping[] = {0x80, 0x00, 0x7d};
    /* Inside a Record inside a Change inside a Push. */
    static const uint8_t push[] = {0x0a, 0x05, 0x12, 0x03, 0x80, 0x00, 0x01};
    ProtobufCMessage *m = NULL;
    (void)state;
    assert_int_equal(ps_msg_unpack(PS_MSG_PING, ping, sizeof(ping), &m), PS_EPROTO);
    assert_null(m);
    assert_int_equal(ps_msg_unpack(PS_MSG_PUSH, push, sizeof(push), &m), PS_EPROTO);
    assert_null(m);
    {
        ps_msg_arena_t *a = NULL;
        assert_int_equal(ps_msg_unpack_arena(PS_MSG_PUSH, push, sizeof(push), &a, &m), PS_EPROTO);
        assert_null(a);
        assert_int_equal(ps_msg_unpack_arena(PS_MSG_PUSH, push, 3, &a, &m), PS_EPROTO); /* cut */
        assert_null(m);
    }
    /* The same with field 31 is fine (kept as unknown, repacks). */
    assert_int_equal(ps_msg_unpack(PS_MSG_PING, (const uint8_t[]){0xf8, 0x01, 0x7d}, 3, &m), PS_OK);
    ps_msg_free(m);
}

static void test_reuse_keeps_budget(void **state)
{
    static const uint8_t empty[] = {0x0a, 0x00};
    size_t big, small;
    uint8_t *bigbody = repeat(empty, 2, MB, &big), *body = repeat(empty, 2, MB / 2, &small);
    ps_msg_arena_t *a = NULL;
    ProtobufCMessage *m = NULL;
    (void)state;
    /* The refused frame leaves a block of its budget behind... */
    assert_int_equal(ps_msg_unpack_reuse(PS_MSG_PULL_BATCH, bigbody, big, &a, &m), PS_ENOMEM);
    assert_non_null(a);
    assert_null(m);
    /* ...which the smaller frame reuses within its own budget only. */
    assert_int_equal(ps_msg_unpack_reuse(PS_MSG_PULL_BATCH, body, small, &a, &m), PS_ENOMEM);
    assert_null(m);
    assert_true(ps_msg_arena_used(a) <= PS_MSG_BUDGET(small));
    /* A valid small frame still fits after them. */
    assert_int_equal(ps_msg_unpack_reuse(PS_MSG_PULL_BATCH, body, 2, &a, &m), PS_OK);
    assert_int_equal(((Popsync__PullBatch *)m)->n_entries, 1);
    ps_msg_arena_free(a);
    free(bigbody);
    free(body);
}

/* Depth-first walk: a descriptor met again on the current path is a cycle. */
static int has_cycle(const ProtobufCMessageDescriptor *d, const ProtobufCMessageDescriptor **path, int depth)
{
    for (int i = 0; i < depth; i++)
        if (path[i] == d)
            return 1;
    if (depth >= 64)
        return 1;
    path[depth] = d;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (d->fields[i].type == PROTOBUF_C_TYPE_MESSAGE &&
            has_cycle(d->fields[i].descriptor, path, depth + 1))
            return 1;
    return 0;
}

static void test_schema_has_no_recursion(void **state)
{
    const ProtobufCMessageDescriptor *path[65];
    (void)state;
    for (unsigned t = 1; t < 256; t++) {
        const ProtobufCMessageDescriptor *d = ps_msg_descriptor((uint8_t)t);
        if (d && has_cycle(d, path, 0))
            fail_msg("message type %u (%s) can nest itself", t, d->name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repeated_empty_submessages),
        cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_real_messages_fit),
        cmocka_unit_test(test_field_zero_refused),
        cmocka_unit_test(test_reuse_keeps_budget),
        cmocka_unit_test(test_schema_has_no_recursion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
