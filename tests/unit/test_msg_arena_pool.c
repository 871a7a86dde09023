/* test_msg_arena_pool.c - the pool of Push arenas (common/msg.c, issue 17).
 *
 * ps_msg_unpack_arena takes its block from a bounded pool and
 * ps_msg_arena_free gives it back, so a Push's pages are faulted in once,
 * not per frame.  Checks: a returned block is reused by the next decode
 * that fits it; the pool never keeps more than PS_MSG_POOL_BLOCKS blocks or
 * PS_MSG_POOL_BYTES resident; a block over PS_MSG_POOL_BLOCK_MAX is freed,
 * not kept; a decode into a reused block gives exactly its own message
 * (nothing of the previous one shows through) within its own budget; the
 * client's reused arenas (ps_msg_unpack_reuse) never enter the pool.
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

/* A packed Push body of n person changes; rich: with names and addresses
 * (fields a lean push leaves out). */
static uint8_t *push_body(size_t n, int rich, size_t *len)
{
    static uint8_t id[16] = {1, 2, 3};
    Popsync__Push p = POPSYNC__PUSH__INIT;
    Popsync__Change *ch = calloc(n, sizeof(*ch)), **chp = calloc(n, sizeof(*chp));
    Popsync__Record *rec = calloc(n, sizeof(*rec));
    Popsync__Person *per = calloc(n, sizeof(*per));
    uint8_t *body;
    assert_true(ch && chp && rec && per);
    for (size_t i = 0; i < n; i++) {
        popsync__change__init(&ch[i]);
        popsync__record__init(&rec[i]);
        popsync__person__init(&per[i]);
        if (rich) {
            per[i].name = "张丽娟";
            per[i].address = "北京市站前街155号锦绣华庭5号楼1单元503室";
        }
        per[i].id_number = "110105197905131449";
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
    p.n_changes = n;
    *len = protobuf_c_message_get_packed_size(&p.base);
    body = malloc(*len);
    assert_non_null(body);
    protobuf_c_message_pack(&p.base, body);
    free(per);
    free(rec);
    free(chp);
    free(ch);
    return body;
}

/* Decodes body into a pooled arena and checks it packs back to body. */
static ps_msg_arena_t *decode_same(const uint8_t *body, size_t len)
{
    ps_msg_arena_t *a = NULL;
    ProtobufCMessage *m = NULL;
    uint8_t *back;
    assert_int_equal(ps_msg_unpack_arena(PS_MSG_PUSH, body, len, &a, &m), PS_OK);
    assert_int_equal(protobuf_c_message_get_packed_size(m), len);
    back = malloc(len);
    assert_non_null(back);
    protobuf_c_message_pack(m, back);
    assert_memory_equal(back, body, len);
    free(back);
    assert_true(ps_msg_arena_used(a) <= PS_MSG_BUDGET(len));
    return a;
}

static void test_returned_block_reused(void **state)
{
    size_t blen, slen, n, bytes;
    uint8_t *big = push_body(400, 1, &blen), *small = push_body(100, 0, &slen);
    ps_msg_arena_t *a, *b;
    (void)state;
    ps_msg_arena_pool_drain();
    a = decode_same(big, blen);
    ps_msg_arena_free(a);
    ps_msg_arena_pool_stats(&n, &bytes);
    assert_int_equal(n, 1);
    assert_true(bytes > 0 && bytes <= PS_MSG_POOL_BYTES);
    /* The smaller, leaner push lands in the same block and is exactly
     * itself: no name or address of the previous push shows through. */
    b = decode_same(small, slen);
    assert_ptr_equal(b, a);
    ps_msg_arena_pool_stats(&n, &bytes);
    assert_int_equal(n, 0);
    assert_int_equal(bytes, 0);
    ps_msg_arena_free(b);
    /* And the big one again, after the small one. */
    a = decode_same(big, blen);
    assert_ptr_equal(a, b);
    ps_msg_arena_free(a);
    ps_msg_arena_pool_drain();
    free(big);
    free(small);
}

static void test_reused_block_keeps_budget(void **state)
{
    size_t blen, n, bytes;
    uint8_t *big = push_body(400, 1, &blen);
    ps_msg_arena_t *a;
    ProtobufCMessage *m = NULL;
    /* 4000 empty changes in 8000 bytes: over the budget of their own size. */
    static const uint8_t empty_change[2] = {0x0a, 0x00};
    uint8_t bomb[8000];
    (void)state;
    for (size_t i = 0; i < sizeof(bomb); i += 2)
        memcpy(bomb + i, empty_change, 2);
    ps_msg_arena_pool_drain();
    ps_msg_arena_free(decode_same(big, blen));
    /* The kept block is far larger than the bomb's budget; the bomb is
     * still refused, and its block goes back to the pool. */
    assert_int_equal(ps_msg_unpack_arena(PS_MSG_PUSH, bomb, sizeof(bomb), &a, &m), PS_ENOMEM);
    assert_null(a);
    assert_null(m);
    ps_msg_arena_pool_stats(&n, &bytes);
    assert_int_equal(n, 1);
    ps_msg_arena_pool_drain();
    free(big);
}

static void test_pool_bounded(void **state)
{
    enum { N = PS_MSG_POOL_BLOCKS + 8 };
    size_t len, n, bytes;
    uint8_t *body = push_body(50, 1, &len);
    ps_msg_arena_t *a[N];
    (void)state;
    ps_msg_arena_pool_drain();
    for (size_t i = 0; i < N; i++)
        a[i] = decode_same(body, len);
    for (size_t i = 0; i < N; i++)
        ps_msg_arena_free(a[i]);
    ps_msg_arena_pool_stats(&n, &bytes);
    assert_int_equal(n, PS_MSG_POOL_BLOCKS);
    assert_true(bytes <= PS_MSG_POOL_BYTES);
    ps_msg_arena_pool_drain();
    ps_msg_arena_pool_stats(&n, &bytes);
    assert_int_equal(n, 0);
    assert_int_equal(bytes, 0);
    free(body);
}

static void test_pool_bytes_bounded(void **state)
{
    /* Blocks of about 1.2 MB touched each: the byte bound, not the count,
     * stops the pool. */
    enum { N = 12 };
    size_t len, n, bytes;
    uint8_t *body = push_body(4000, 1, &len);
    ps_msg_arena_t *a[N];
    (void)state;
    ps_msg_arena_pool_drain();
    for (size_t i = 0; i < N; i++)
        a[i] = decode_same(body, len);
    assert_true(N * ps_msg_arena_used(a[0]) > PS_MSG_POOL_BYTES);
    for (size_t i = 0; i < N; i++)
        ps_msg_arena_free(a[i]);
    ps_msg_arena_pool_stats(&n, &bytes);
    assert_true(n > 0 && n < N);
    assert_true(bytes <= PS_MSG_POOL_BYTES);
    ps_msg_arena_pool_drain();
    free(body);
}

static void test_too_large_block_freed(void **state)
{
    /* A body whose budget is over PS_MSG_POOL_BLOCK_MAX: decoded, then
     * freed, never kept. */
    size_t len, n, bytes;
    uint8_t *body = push_body(40000, 1, &len);
    ps_msg_arena_t *a;
    (void)state;
    assert_true(PS_MSG_BUDGET(len) > PS_MSG_POOL_BLOCK_MAX);
    ps_msg_arena_pool_drain();
    a = decode_same(body, len);
    ps_msg_arena_free(a);
    ps_msg_arena_pool_stats(&n, &bytes);
    assert_int_equal(n, 0);
    assert_int_equal(bytes, 0);
    free(body);
}

static void test_reuse_arenas_not_pooled(void **state)
{
    size_t len, n, bytes;
    uint8_t *body = push_body(50, 1, &len);
    ps_msg_arena_t *a = NULL;
    ProtobufCMessage *m = NULL;
    (void)state;
    ps_msg_arena_pool_drain();
    assert_int_equal(ps_msg_unpack_reuse(PS_MSG_PUSH, body, len, &a, &m), PS_OK);
    ps_msg_arena_free(a);
    ps_msg_arena_pool_stats(&n, &bytes);
    assert_int_equal(n, 0);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_returned_block_reused),
        cmocka_unit_test(test_reused_block_keeps_budget),
        cmocka_unit_test(test_pool_bounded),
        cmocka_unit_test(test_pool_bytes_bounded),
        cmocka_unit_test(test_too_large_block_freed),
        cmocka_unit_test(test_reuse_arenas_not_pooled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
