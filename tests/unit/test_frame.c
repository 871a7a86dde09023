/* test_frame.c - unit tests for common/frame.c and common/msg.c.
 *
 * Owns: the frame header codec (round trips, truncation at every length,
 * the size limit checked before the body arrives, short lengths, flags and
 * reserved passed through, 100,000 random buffers, frames back to back) and
 * the message layer (pack/unpack round trips, garbage bodies, the unpack
 * allocation budget, the hand-encoded PullBatch against protobuf-c's own
 * decoder).
 *
 * Every decode of a partial or random buffer reads from a heap block of
 * exactly the bytes handed over, so a build with PS_SANITIZE=ON turns any
 * read past the end into a failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "frame.h"
#include "msg.h"

#include "records.pb-c.h"
#include "wire.pb-c.h"

/* ---- helpers --------------------------------------------------------------- */

/* xorshift64*: fixed seeds make every run test the same inputs. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(rng_next(s) % n);
}

/* A heap copy of exactly n bytes (at least a 1-byte block for n == 0), so
 * the sanitizer sees any read beyond p[n-1]. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    assert_non_null(q);
    if (n)
        memcpy(q, p, n);
    return q;
}

/* Builds header + body (body bytes i*7+3) into a new heap block. */
static uint8_t *make_frame(uint8_t type, uint8_t flags, uint32_t req, size_t body_len, size_t *total)
{
    uint8_t *f = malloc(PS_FRAME_HDR + body_len);
    assert_non_null(f);
    ps_frame_encode_header(f, type, flags, req, body_len);
    for (size_t i = 0; i < body_len; i++)
        f[PS_FRAME_HDR + i] = (uint8_t)(i * 7 + 3);
    *total = PS_FRAME_HDR + body_len;
    return f;
}

static int is_documented_code(int rc)
{
    return rc == PS_OK || rc == PS_FRAME_NEED_MORE || rc == PS_ETOOBIG || rc == PS_EPROTO;
}

/* ---- frame codec ------------------------------------------------------------ */

/* The header is exactly the bytes docs/protocol.md shows. */
static void test_header_layout(void **state)
{
    uint8_t h[PS_FRAME_HDR];
    static const uint8_t want[PS_FRAME_HDR] = {0x00, 0x01, 0x02, 0x0b, 0x03, 0x00,
                                               0x00, 0x00, 0xde, 0xad, 0xbe, 0xef};
    (void)state;
    assert_int_equal(PS_FRAME_HDR, 12);
    assert_int_equal(PS_FRAME_LEN_REST, 8);
    /* body 0x010203 bytes: length field = body + 8 = 0x0001020b */
    ps_frame_encode_header(h, PS_MSG_PUSH, 0, 0xdeadbeefu, 0x010203);
    assert_memory_equal(h, want, sizeof(want));

    /* An empty Ping with request id 1: 00000008 08 00 0000 00000001. */
    ps_frame_encode_header(h, PS_MSG_PING, 0, 1, 0);
    static const uint8_t ping[PS_FRAME_HDR] = {0, 0, 0, 8, 8, 0, 0, 0, 0, 0, 0, 1};
    assert_memory_equal(h, ping, sizeof(ping));
}

static void test_type_numbers(void **state)
{
    (void)state;
    /* Wire values: never renumber. */
    assert_int_equal(PS_MSG_HELLO, 1);
    assert_int_equal(PS_MSG_WELCOME, 2);
    assert_int_equal(PS_MSG_PUSH, 3);
    assert_int_equal(PS_MSG_PUSH_RESULT, 4);
    assert_int_equal(PS_MSG_PULL, 5);
    assert_int_equal(PS_MSG_PULL_BATCH, 6);
    assert_int_equal(PS_MSG_ERROR, 7);
    assert_int_equal(PS_MSG_PING, 8);
    assert_int_equal(PS_MSG_PONG, 9);
    assert_string_equal(ps_frame_type_name(PS_MSG_HELLO), "Hello");
    assert_string_equal(ps_frame_type_name(PS_MSG_PULL_BATCH), "PullBatch");
    assert_string_equal(ps_frame_type_name(PS_MSG_PONG), "Pong");
    assert_string_equal(ps_frame_type_name(0), "unknown");
    assert_string_equal(ps_frame_type_name(255), "unknown");
}

static void test_round_trip(void **state)
{
    static const uint8_t types[] = {PS_MSG_HELLO, PS_MSG_WELCOME, PS_MSG_PUSH, PS_MSG_PUSH_RESULT, PS_MSG_PULL,
                                    PS_MSG_PULL_BATCH, PS_MSG_ERROR, PS_MSG_PING, PS_MSG_PONG, 0, 200, 255};
    static const uint32_t reqs[] = {0, 1, 0x7f, 0x80, 0x01020304u, 0xfffffffeu, 0xffffffffu};
    static const size_t sizes[] = {0, 1, 2, 127, 65535, 65536, (size_t)1 << 20, (size_t)16 << 20};
    const size_t max_body = (size_t)16 << 20; /* popsyncd's default --max-frame */
    (void)state;

    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t total;
        uint8_t *buf = make_frame(0, 0, 0, sizes[si], &total);
        for (size_t ti = 0; ti < sizeof(types); ti++) {
            for (size_t ri = 0; ri < sizeof(reqs) / sizeof(reqs[0]); ri++) {
                ps_frame_t f;
                size_t used = 0;
                ps_frame_encode_header(buf, types[ti], 0, reqs[ri], sizes[si]);
                assert_int_equal(ps_frame_decode(buf, total, max_body, &f, &used), PS_OK);
                assert_int_equal(used, total);
                assert_int_equal(f.type, types[ti]);
                assert_int_equal(f.flags, 0);
                assert_int_equal(f.reserved, 0);
                assert_int_equal(f.request_id, reqs[ri]);
                assert_int_equal(f.body_len, sizes[si]);
                assert_ptr_equal(f.body, buf + PS_FRAME_HDR);
            }
        }
        /* Body bytes are untouched by re-encoding the header. */
        for (size_t i = 0; i < sizes[si]; i += 4099)
            assert_int_equal(buf[PS_FRAME_HDR + i], (uint8_t)(i * 7 + 3));
        /* Extra bytes after the frame are not consumed. */
        {
            uint8_t *more = malloc(total + 5);
            ps_frame_t f;
            size_t used = 0;
            assert_non_null(more);
            memcpy(more, buf, total);
            memset(more + total, 0xee, 5);
            assert_int_equal(ps_frame_decode(more, total + 5, max_body, &f, &used), PS_OK);
            assert_int_equal(used, total);
            free(more);
        }
        free(buf);
    }
}

/* Every strict prefix of a frame asks for more, and reads only the prefix. */
static void test_truncated(void **state)
{
    static const size_t sizes[] = {0, 1, 300, 70000};
    (void)state;
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        size_t total;
        uint8_t *full = make_frame(PS_MSG_PULL, 0, 42, sizes[si], &total);
        for (size_t len = 0; len < total; len++) {
            ps_frame_t f;
            size_t used = 12345;
            uint8_t *p;
            /* For the big body check every header length and a sample of the rest. */
            if (sizes[si] > 1000 && len > 64 && len + 64 < total && len % 997 != 0)
                continue;
            p = exact_copy(full, len);
            assert_int_equal(ps_frame_decode(p, len, (size_t)1 << 20, &f, &used), PS_FRAME_NEED_MORE);
            assert_int_equal(used, 12345); /* untouched unless PS_OK */
            free(p);
        }
        {
            uint8_t *p = exact_copy(full, total);
            ps_frame_t f;
            size_t used = 0;
            assert_int_equal(ps_frame_decode(p, total, (size_t)1 << 20, &f, &used), PS_OK);
            assert_int_equal(used, total);
            free(p);
        }
        free(full);
    }
}

/* The limit is checked from the length field alone: a frame over it is
 * refused when its first 4 bytes are in, long before its body. */
static void test_oversized(void **state)
{
    const size_t max_body = 1000;
    static const uint32_t lens[] = {8 + 1001, 8 + 65536, 0x7fffffffu, 0xfffffff7u, 0xfffffff8u, 0xffffffffu};
    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint8_t hdr[PS_FRAME_HDR] = {(uint8_t)(lens[i] >> 24), (uint8_t)(lens[i] >> 16), (uint8_t)(lens[i] >> 8),
                                     (uint8_t)lens[i], PS_MSG_PUSH, 0, 0, 0, 0, 0, 0, 9};
        for (size_t len = 0; len <= PS_FRAME_HDR; len++) {
            uint8_t *p = exact_copy(hdr, len);
            ps_frame_t f;
            size_t used = 0;
            int rc = ps_frame_decode(p, len, max_body, &f, &used);
            assert_int_equal(rc, len < 4 ? PS_FRAME_NEED_MORE : PS_ETOOBIG);
            free(p);
        }
    }
    /* Exactly at the limit is fine (needs its body), one over is not. */
    {
        uint8_t at[4] = {0, 0, 0x03, 0xf0};   /* 1008 = 8 + 1000 */
        uint8_t over[4] = {0, 0, 0x03, 0xf1}; /* 1009 = 8 + 1001 */
        ps_frame_t f;
        size_t used;
        assert_int_equal(ps_frame_decode(at, 4, max_body, &f, &used), PS_FRAME_NEED_MORE);
        assert_int_equal(ps_frame_decode(over, 4, max_body, &f, &used), PS_ETOOBIG);
        /* max_body 0: only empty bodies. */
        uint8_t empty[PS_FRAME_HDR] = {0, 0, 0, 8, PS_MSG_PING, 0, 0, 0, 0, 0, 0, 1};
        uint8_t one[4] = {0, 0, 0, 9};
        assert_int_equal(ps_frame_decode(empty, sizeof(empty), 0, &f, &used), PS_OK);
        assert_int_equal(f.body_len, 0);
        assert_int_equal(ps_frame_decode(one, 4, 0, &f, &used), PS_ETOOBIG);
    }
}

/* A length that cannot even hold the rest of the header is malformed. */
static void test_short_length(void **state)
{
    (void)state;
    for (uint32_t l = 0; l < PS_FRAME_LEN_REST; l++) {
        uint8_t hdr[PS_FRAME_HDR] = {0, 0, 0, (uint8_t)l, PS_MSG_HELLO, 0, 0, 0, 0, 0, 0, 1};
        for (size_t len = 0; len <= PS_FRAME_HDR; len++) {
            uint8_t *p = exact_copy(hdr, len);
            ps_frame_t f;
            size_t used = 0;
            assert_int_equal(ps_frame_decode(p, len, 1000, &f, &used), len < 4 ? PS_FRAME_NEED_MORE : PS_EPROTO);
            free(p);
        }
    }
    /* 8 is the smallest valid length: an empty body. */
    {
        uint8_t hdr[PS_FRAME_HDR] = {0, 0, 0, 8, PS_MSG_PING, 0, 0, 0, 0, 0, 0, 1};
        ps_frame_t f;
        size_t used = 0;
        assert_int_equal(ps_frame_decode(hdr, sizeof(hdr), 1000, &f, &used), PS_OK);
        assert_int_equal(used, 12);
        assert_int_equal(f.body_len, 0);
    }
}

/* The codec does not judge type, flags or reserved: the caller does. */
static void test_flags_reserved_passthrough(void **state)
{
    (void)state;
    for (unsigned flags = 0; flags < 256; flags += 17) {
        uint8_t fr[PS_FRAME_HDR + 2] = {0, 0, 0, 10, 0xfe, (uint8_t)flags, 0xab, 0xcd, 0x80, 0, 0, 0x7f, 0x55, 0x66};
        ps_frame_t f;
        size_t used = 0;
        assert_int_equal(ps_frame_decode(fr, sizeof(fr), 100, &f, &used), PS_OK);
        assert_int_equal(used, sizeof(fr));
        assert_int_equal(f.type, 0xfe);
        assert_int_equal(f.flags, flags);
        assert_int_equal(f.reserved, 0xabcd);
        assert_int_equal(f.request_id, 0x8000007fu);
        assert_int_equal(f.body_len, 2);
        assert_int_equal(f.body[0], 0x55);
        assert_int_equal(f.body[1], 0x66);
    }
    /* The encoder sets the flags given and always writes reserved = 0. */
    {
        uint8_t h[PS_FRAME_HDR];
        ps_frame_encode_header(h, PS_MSG_PULL, PS_FRAME_FLAG_ZSTD, 5, 3);
        assert_int_equal(h[5], PS_FRAME_FLAG_ZSTD);
        assert_int_equal(h[6], 0);
        assert_int_equal(h[7], 0);
    }
}

/* 100,000 random buffers: every answer is a documented code, nothing is read
 * out of bounds (ASan), and a decoded frame lies inside the input. */
static void test_garbage(void **state)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    size_t counts[4] = {0, 0, 0, 0};
    uint8_t tmp[80];
    (void)state;
    for (int iter = 0; iter < 100000; iter++) {
        size_t len = rng_below(&seed, 64);
        size_t max_body = rng_below(&seed, 4) == 0 ? 0 : rng_below(&seed, 80);
        ps_frame_t f;
        size_t used = 0;
        uint8_t *p;
        int rc;

        for (size_t i = 0; i < len; i++)
            tmp[i] = (uint8_t)rng_next(&seed);
        /* Half the time make the length plausible, so whole frames occur too. */
        if (len >= 4 && rng_below(&seed, 2) == 0) {
            uint32_t l = rng_below(&seed, (uint32_t)len + 8);
            tmp[0] = 0;
            tmp[1] = 0;
            tmp[2] = (uint8_t)(l >> 8);
            tmp[3] = (uint8_t)l;
        }
        p = exact_copy(tmp, len);
        memset(&f, 0, sizeof(f));
        rc = ps_frame_decode(p, len, max_body, &f, &used);
        assert_true(is_documented_code(rc));
        if (rc == PS_OK) {
            assert_true(used <= len);
            assert_true(used >= PS_FRAME_HDR);
            assert_int_equal(used, PS_FRAME_HDR + f.body_len);
            assert_true(f.body_len <= max_body);
            assert_ptr_equal(f.body, p + PS_FRAME_HDR);
            counts[0]++;
        } else if (rc == PS_FRAME_NEED_MORE) {
            counts[1]++;
        } else if (rc == PS_ETOOBIG) {
            assert_true(len >= 4);
            counts[2]++;
        } else {
            assert_true(len >= 4);
            counts[3]++;
        }
        free(p);
    }
    /* The generator reached every outcome. */
    for (int i = 0; i < 4; i++)
        assert_true(counts[i] > 100);
}

/* Frames back to back in one buffer decode one after the other; a partial
 * second frame asks for more without disturbing the first. */
static void test_back_to_back(void **state)
{
    uint8_t buf[PS_FRAME_HDR * 3 + 5 + 0 + 3];
    size_t off = 0, used = 0;
    ps_frame_t f;
    (void)state;

    ps_frame_encode_header(buf, PS_MSG_PING, 0, 7, 5);
    memcpy(buf + PS_FRAME_HDR, "\x08\x96\x01\x00\x00", 5);
    off = PS_FRAME_HDR + 5;
    ps_frame_encode_header(buf + off, PS_MSG_PULL, 0, 8, 0);
    off += PS_FRAME_HDR;
    ps_frame_encode_header(buf + off, PS_MSG_HELLO, 0, 9, 3);
    memcpy(buf + off + PS_FRAME_HDR, "\x08\x01\x00", 3);
    off += PS_FRAME_HDR + 3;
    assert_int_equal(off, sizeof(buf));

    off = 0;
    assert_int_equal(ps_frame_decode(buf + off, sizeof(buf) - off, 100, &f, &used), PS_OK);
    assert_int_equal(f.type, PS_MSG_PING);
    assert_int_equal(f.request_id, 7);
    assert_int_equal(f.body_len, 5);
    assert_int_equal(used, 17);
    off += used;
    assert_int_equal(ps_frame_decode(buf + off, sizeof(buf) - off, 100, &f, &used), PS_OK);
    assert_int_equal(f.type, PS_MSG_PULL);
    assert_int_equal(f.request_id, 8);
    assert_int_equal(f.body_len, 0);
    assert_int_equal(used, 12);
    off += used;
    /* Third frame one byte short, then whole. */
    assert_int_equal(ps_frame_decode(buf + off, sizeof(buf) - off - 1, 100, &f, &used), PS_FRAME_NEED_MORE);
    assert_int_equal(ps_frame_decode(buf + off, sizeof(buf) - off, 100, &f, &used), PS_OK);
    assert_int_equal(f.type, PS_MSG_HELLO);
    assert_int_equal(f.request_id, 9);
    assert_int_equal(f.body_len, 3);
    off += used;
    assert_int_equal(off, sizeof(buf));
    assert_int_equal(ps_frame_decode(buf + off, 0, 100, &f, &used), PS_FRAME_NEED_MORE);

    /* The same through a ps_buf_t consumed from the front, as conn.c does. */
    {
        ps_buf_t b;
        int n = 0;
        ps_buf_init(&b);
        assert_int_equal(ps_buf_append(&b, buf, sizeof(buf)), PS_OK);
        while (ps_frame_decode(ps_buf_head(&b), ps_buf_size(&b), 100, &f, &used) == PS_OK) {
            n++;
            ps_buf_consume(&b, used);
        }
        assert_int_equal(n, 3);
        assert_int_equal(ps_buf_size(&b), 0);
        ps_buf_free(&b);
    }
}

/* ---- messages ---------------------------------------------------------------- */

static const uint8_t NODE_A[16] = {0x01, 0x92, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f,
                                   0x90, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6, 0x07};
static const uint8_t ID_A[16] = {0x01, 0x90, 0xa1, 0xb2, 0xc3, 0xd4, 0x7e, 0x5f,
                                 0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b};

/* Packs msg into a frame, decodes the header, unpacks the body. */
static ProtobufCMessage *frame_round_trip(uint8_t type, uint32_t req, const ProtobufCMessage *msg)
{
    ps_buf_t b;
    ps_frame_t f;
    size_t used = 0;
    ProtobufCMessage *out = NULL;

    ps_buf_init(&b);
    assert_int_equal(ps_msg_pack_frame(&b, type, req, msg), PS_OK);
    assert_int_equal(ps_buf_size(&b), PS_FRAME_HDR + protobuf_c_message_get_packed_size(msg));
    assert_int_equal(ps_frame_decode(ps_buf_head(&b), ps_buf_size(&b), (size_t)16 << 20, &f, &used), PS_OK);
    assert_int_equal(used, ps_buf_size(&b));
    assert_int_equal(f.type, type);
    assert_int_equal(f.flags, 0);
    assert_int_equal(f.reserved, 0);
    assert_int_equal(f.request_id, req);
    assert_ptr_equal(ps_msg_descriptor(type), msg->descriptor);
    assert_int_equal(ps_msg_unpack(type, f.body, f.body_len, &out), PS_OK);
    assert_non_null(out);
    assert_ptr_equal(out->descriptor, msg->descriptor);
    ps_buf_free(&b);
    return out;
}

static void test_msg_hello_round_trip(void **state)
{
    Popsync__Hello h = POPSYNC__HELLO__INIT;
    Popsync__Hello *g;
    (void)state;
    h.protocol_version = 1;
    h.node.data = (uint8_t *)NODE_A;
    h.node.len = sizeof(NODE_A);
    h.cursor = 0x123456789abcULL;
    h.software = "popsync 0.1.0";
    h.features = 0x5;
    g = (Popsync__Hello *)frame_round_trip(PS_MSG_HELLO, 1, &h.base);
    assert_int_equal(g->protocol_version, 1);
    assert_int_equal(g->node.len, 16);
    assert_memory_equal(g->node.data, NODE_A, 16);
    assert_int_equal(g->cursor, 0x123456789abcULL);
    assert_string_equal(g->software, "popsync 0.1.0");
    assert_int_equal(g->features, 5);
    ps_msg_free(&g->base);

    /* Ping and Pong share the Ping message. */
    {
        Popsync__Ping p = POPSYNC__PING__INIT;
        Popsync__Ping *q;
        p.nonce = 0xfeedfacecafebeefULL;
        q = (Popsync__Ping *)frame_round_trip(PS_MSG_PONG, 77, &p.base);
        assert_int_equal(q->nonce, 0xfeedfacecafebeefULL);
        ps_msg_free(&q->base);
    }
}

static void test_msg_push_round_trip(void **state)
{
    enum { N = 3 };
    Popsync__Push push = POPSYNC__PUSH__INIT;
    Popsync__Change ch[N], *chp[N];
    Popsync__Record rec[N];
    Popsync__Person per[N];
    Popsync__Rev rev[N], base[N];
    uint8_t ids[N][16];
    Popsync__Push *g;
    (void)state;

    for (int i = 0; i < N; i++) {
        popsync__change__init(&ch[i]);
        popsync__record__init(&rec[i]);
        popsync__person__init(&per[i]);
        popsync__rev__init(&rev[i]);
        popsync__rev__init(&base[i]);
        memcpy(ids[i], ID_A, 16);
        ids[i][15] = (uint8_t)i;
        per[i].id_number = "11010519491231002X";
        per[i].name = "张三";
        per[i].sex = POPSYNC__SEX__SEX_FEMALE;
        per[i].birth_date = "1949-12-31";
        rec[i].id.data = ids[i];
        rec[i].id.len = 16;
        rec[i].kind = POPSYNC__KIND__KIND_PERSON;
        rec[i].orgunit = "110105001000";
        rev[i].hlc = ((uint64_t)1700000000000 << 16) | (uint64_t)i;
        rev[i].node.data = (uint8_t *)NODE_A;
        rev[i].node.len = 16;
        rec[i].rev = &rev[i];
        rec[i].deleted = i == 2;
        rec[i].created_ms = 1700000000000;
        rec[i].updated_ms = 1700000000000 + i;
        rec[i].changed_by.data = (uint8_t *)NODE_A;
        rec[i].changed_by.len = 16;
        rec[i].body_case = POPSYNC__RECORD__BODY_PERSON;
        rec[i].person = &per[i];
        base[i].gen = (uint64_t)i;
        ch[i].lcn = 100 + (uint64_t)i;
        ch[i].record = &rec[i];
        ch[i].base_rev = &base[i];
        chp[i] = &ch[i];
    }
    push.n_changes = N;
    push.changes = chp;
    g = (Popsync__Push *)frame_round_trip(PS_MSG_PUSH, 0xffffffffu, &push.base);
    assert_int_equal(g->n_changes, N);
    for (int i = 0; i < N; i++) {
        const Popsync__Change *c = g->changes[i];
        const Popsync__Record *r = c->record;
        assert_int_equal(c->lcn, 100 + (uint64_t)i);
        assert_non_null(c->base_rev);
        assert_int_equal(c->base_rev->gen, (uint64_t)i);
        assert_non_null(r);
        assert_memory_equal(r->id.data, ids[i], 16);
        assert_int_equal(r->kind, POPSYNC__KIND__KIND_PERSON);
        assert_string_equal(r->orgunit, "110105001000");
        assert_int_equal(r->rev->hlc, rev[i].hlc);
        assert_memory_equal(r->rev->node.data, NODE_A, 16);
        assert_int_equal(r->deleted, i == 2);
        assert_int_equal(r->updated_ms, 1700000000000 + i);
        assert_int_equal(r->body_case, POPSYNC__RECORD__BODY_PERSON);
        assert_string_equal(r->person->id_number, "11010519491231002X");
        assert_string_equal(r->person->name, "张三");
        assert_int_equal(r->person->sex, POPSYNC__SEX__SEX_FEMALE);
        assert_string_equal(r->person->birth_date, "1949-12-31");
    }
    ps_msg_free(&g->base);
}

/* Garbage bodies fail cleanly (or decode to something that is freed). */
static void test_msg_garbage(void **state)
{
    uint64_t seed = 12345;
    uint8_t tmp[256];
    ProtobufCMessage *m = NULL;
    int ok = 0, bad = 0;
    (void)state;

    /* Types without a message. */
    assert_int_equal(ps_msg_unpack(0, (const uint8_t *)"", 0, &m), PS_EPROTO);
    assert_int_equal(ps_msg_unpack(200, (const uint8_t *)"\x08\x01", 2, &m), PS_EPROTO);
    assert_null(ps_msg_descriptor(0));
    assert_null(ps_msg_descriptor(255));
    /* Classic malformations: a truncated varint, a length past the end, a
     * wire type that does not match the field, an end-group with no start. */
    {
        static const struct {
            uint8_t type;
            const char *b;
            size_t n;
        } cases[] = {
            {PS_MSG_HELLO, "\x08\xff", 2},         /* varint cut off */
            {PS_MSG_HELLO, "\x12\x10\x01\x02", 4}, /* node: 16 bytes promised, 2 given */
            {PS_MSG_HELLO, "\x0a\x01\x00", 3},     /* protocol_version sent as bytes */
            {PS_MSG_PUSH, "\x0a\x05\x08\x01", 4},  /* Change longer than the body */
            {PS_MSG_PUSH, "\x0c", 1},              /* end group */
            {PS_MSG_PING, "\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 12}, /* 11-byte varint */
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            uint8_t *p = exact_copy((const uint8_t *)cases[i].b, cases[i].n);
            m = NULL;
            assert_int_equal(ps_msg_unpack(cases[i].type, p, cases[i].n, &m), PS_EPROTO);
            free(p);
        }
    }
    /* Random bytes into every message type. */
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t type = (uint8_t)(1 + rng_below(&seed, PS_MSG_PONG));
        size_t len = rng_below(&seed, sizeof(tmp));
        uint8_t *p;
        int rc;
        for (size_t i = 0; i < len; i++)
            tmp[i] = (uint8_t)rng_next(&seed);
        p = exact_copy(tmp, len);
        m = NULL;
        rc = ps_msg_unpack(type, p, len, &m);
        if (rc == PS_OK) {
            assert_non_null(m);
            ps_msg_free(m);
            ok++;
        } else {
            assert_true(rc == PS_EPROTO || rc == PS_ENOMEM);
            bad++;
        }
        free(p);
    }
    assert_true(bad > 0);
    (void)ok;
    ps_msg_free(NULL); /* harmless */
}

/* The unpack budget.  protobuf-c keeps whatever a body declares: an empty
 * `Change changes = 1` element costs two bytes on the wire (0x0a 0x00) but
 * a Popsync__Change struct (48 bytes on LP64) plus a pointer in the changes
 * array, and an unknown field costs a ProtobufCMessageUnknownField plus a
 * copy of its data.  msg.h caps what one unpack may allocate at
 * PS_MSG_BUDGET(len) = 16384 + 8 * len bytes; past it the unpack fails with
 * PS_ENOMEM (and popsyncd closes the connection as malformed). */
static void test_msg_budget(void **state)
{
    const size_t big = (size_t)1 << 20;
    uint8_t *body = malloc(big);
    ProtobufCMessage *m = NULL;
    Popsync__Push *plain;
    (void)state;
    assert_non_null(body);
    assert_int_equal(PS_MSG_BUDGET(0), 16384);
    assert_int_equal(PS_MSG_BUDGET(big), 16384 + 8 * big);

    /* 1 MiB of empty Changes: 524,288 of them. */
    for (size_t i = 0; i < big; i += 2) {
        body[i] = 0x0a;
        body[i + 1] = 0x00;
    }
    assert_int_equal(ps_msg_unpack(PS_MSG_PUSH, body, big, &m), PS_ENOMEM);
    assert_null(m);
    /* The same body is well-formed: with no budget protobuf-c decodes it,
     * using far more than 8 bytes per input byte. */
    plain = popsync__push__unpack(NULL, big, body);
    assert_non_null(plain);
    assert_int_equal(plain->n_changes, big / 2);
    assert_true(plain->n_changes * (sizeof(Popsync__Change) + sizeof(void *)) > PS_MSG_BUDGET(big));
    popsync__push__free_unpacked(plain, NULL);

    /* A few empty Changes fit in the fixed part of the budget. */
    assert_int_equal(ps_msg_unpack(PS_MSG_PUSH, body, 200, &m), PS_OK);
    assert_int_equal(((Popsync__Push *)m)->n_changes, 100);
    ps_msg_free(m);
    m = NULL;

    /* 1 MiB of unknown varint fields (field 15, value 0) in a Hello. */
    for (size_t i = 0; i < big; i += 2) {
        body[i] = (15 << 3) | 0;
        body[i + 1] = 0x00;
    }
    assert_int_equal(ps_msg_unpack(PS_MSG_HELLO, body, big, &m), PS_ENOMEM);
    assert_null(m);
    /* ... and of unknown empty length-delimited fields (field 100) in a Ping. */
    for (size_t i = 0; i + 3 <= big; i += 3) {
        body[i] = 0xa2; /* (100 << 3) | 2 = 0x322, varint a2 06 */
        body[i + 1] = 0x06;
        body[i + 2] = 0x00;
    }
    assert_int_equal(ps_msg_unpack(PS_MSG_PING, body, big - big % 3, &m), PS_ENOMEM);
    assert_null(m);
    free(body);
}

/* A Record packed by protobuf-c, for the PullBatch test. */
static uint8_t *pack_record(int i, size_t name_len, size_t *len)
{
    Popsync__Record r = POPSYNC__RECORD__INIT;
    Popsync__Person p = POPSYNC__PERSON__INIT;
    Popsync__Rev rev = POPSYNC__REV__INIT;
    uint8_t id[16];
    char *name = malloc(name_len + 1);
    uint8_t *out;
    assert_non_null(name);
    memset(name, 'a' + i % 26, name_len);
    name[name_len] = '\0';
    memcpy(id, ID_A, 16);
    id[15] = (uint8_t)i;
    p.name = name;
    p.sex = POPSYNC__SEX__SEX_MALE;
    rev.gen = (uint64_t)i + 1;
    rev.hlc = (uint64_t)i << 20;
    r.id.data = id;
    r.id.len = 16;
    r.kind = POPSYNC__KIND__KIND_PERSON;
    r.orgunit = "110105001000";
    r.rev = &rev;
    r.body_case = POPSYNC__RECORD__BODY_PERSON;
    r.person = &p;
    *len = protobuf_c_message_get_packed_size(&r.base);
    out = malloc(*len);
    assert_non_null(out);
    assert_int_equal(protobuf_c_message_pack(&r.base, out), *len);
    free(name);
    return out;
}

static void check_pull_batch(const uint64_t *seqs, const size_t *name_lens, size_t n, uint64_t cursor, int more,
                             uint64_t head)
{
    ps_buf_t b;
    Popsync__PullBatch *pb;
    ProtobufCMessage *m = NULL;
    size_t expect = 0;

    ps_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        size_t rl, before = ps_buf_size(&b);
        uint8_t *rec = pack_record((int)i, name_lens[i], &rl);
        assert_int_equal(ps_msg_feed_entry_append(&b, seqs[i], rec, rl), PS_OK);
        assert_int_equal(ps_buf_size(&b) - before, ps_msg_feed_entry_size(seqs[i], rl));
        expect += ps_msg_feed_entry_size(seqs[i], rl);
        free(rec);
    }
    assert_int_equal(ps_buf_size(&b), expect);
    assert_int_equal(ps_msg_pull_batch_finish(&b, cursor, more, head), PS_OK);

    pb = popsync__pull_batch__unpack(NULL, ps_buf_size(&b), ps_buf_head(&b));
    assert_non_null(pb);
    assert_int_equal(pb->n_entries, n);
    for (size_t i = 0; i < n; i++) {
        const Popsync__Record *r = pb->entries[i]->record;
        assert_int_equal(pb->entries[i]->seq, seqs[i]);
        assert_non_null(r);
        assert_int_equal(r->id.len, 16);
        assert_int_equal(r->id.data[15], (uint8_t)i);
        assert_int_equal(r->kind, POPSYNC__KIND__KIND_PERSON);
        assert_string_equal(r->orgunit, "110105001000");
        assert_int_equal(r->rev->gen, (uint64_t)i + 1);
        assert_int_equal(r->body_case, POPSYNC__RECORD__BODY_PERSON);
        assert_int_equal(strlen(r->person->name), name_lens[i]);
    }
    assert_int_equal(pb->cursor, cursor);
    assert_int_equal(pb->more, more != 0);
    assert_int_equal(pb->head, head);
    /* Re-encoding with protobuf-c gives the same bytes, except that protobuf-c
     * leaves out zero scalars (cursor 0, head 0) that the hand encoder writes
     * explicitly; proto3 decoders treat both forms alike. */
    if (cursor && head) {
        uint8_t *again = malloc(popsync__pull_batch__get_packed_size(pb));
        assert_non_null(again);
        assert_int_equal(popsync__pull_batch__pack(pb, again), ps_buf_size(&b));
        assert_memory_equal(again, ps_buf_head(&b), ps_buf_size(&b));
        free(again);
    }
    popsync__pull_batch__free_unpacked(pb, NULL);

    /* Inside a frame, through ps_msg_unpack and its budget, as the client reads it. */
    {
        ps_buf_t fr;
        ps_frame_t f;
        size_t used;
        ps_buf_init(&fr);
        assert_int_equal(ps_buf_reserve(&fr, PS_FRAME_HDR), PS_OK);
        ps_frame_encode_header(ps_buf_tail(&fr), PS_MSG_PULL_BATCH, 0, 3, ps_buf_size(&b));
        ps_buf_commit(&fr, PS_FRAME_HDR);
        assert_int_equal(ps_buf_append(&fr, ps_buf_head(&b), ps_buf_size(&b)), PS_OK);
        assert_int_equal(ps_frame_decode(ps_buf_head(&fr), ps_buf_size(&fr), 64u << 20, &f, &used), PS_OK);
        assert_int_equal(ps_msg_unpack(f.type, f.body, f.body_len, &m), PS_OK);
        assert_int_equal(((Popsync__PullBatch *)m)->n_entries, n);
        assert_int_equal(((Popsync__PullBatch *)m)->cursor, cursor);
        ps_msg_free(m);
        ps_buf_free(&fr);
    }
    ps_buf_free(&b);
}

static void test_pull_batch_hand_encoded(void **state)
{
    /* Sequences across varint size boundaries; record sizes giving 1-, 2- and
     * 3-byte length prefixes for both the record and the FeedEntry. */
    static const uint64_t seqs[] = {1, 127, 128, 16383, 16384, (uint64_t)1 << 35, UINT64_MAX - 1};
    static const size_t names[] = {0, 10, 100, 120, 200, 20000, 3};
    (void)state;
    check_pull_batch(seqs, names, 7, (uint64_t)1 << 35, 1, UINT64_MAX);
    check_pull_batch(seqs, names, 1, 5, 0, 9);
    /* Empty batch: nothing visible, cursor moved to head. */
    check_pull_batch(NULL, NULL, 0, 300, 0, 300);
    /* Fresh server: cursor 0, head 0, written explicitly. */
    check_pull_batch(NULL, NULL, 0, 0, 0, 0);
    /* An empty (zero-length) record still makes an entry.  (A non-NULL
     * pointer: msg.c memcpy()s record_len bytes, and memcpy from NULL is
     * undefined even for 0 bytes.) */
    {
        static const uint8_t none[1] = {0};
        ps_buf_t b;
        Popsync__PullBatch *pb;
        ps_buf_init(&b);
        assert_int_equal(ps_msg_feed_entry_append(&b, 42, none, 0), PS_OK);
        assert_int_equal(ps_buf_size(&b), ps_msg_feed_entry_size(42, 0));
        assert_int_equal(ps_msg_pull_batch_finish(&b, 42, 0, 42), PS_OK);
        pb = popsync__pull_batch__unpack(NULL, ps_buf_size(&b), ps_buf_head(&b));
        assert_non_null(pb);
        assert_int_equal(pb->n_entries, 1);
        assert_int_equal(pb->entries[0]->seq, 42);
        assert_non_null(pb->entries[0]->record);
        popsync__pull_batch__free_unpacked(pb, NULL);
        ps_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_type_numbers),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_short_length),
        cmocka_unit_test(test_flags_reserved_passthrough),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_back_to_back),
        cmocka_unit_test(test_msg_hello_round_trip),
        cmocka_unit_test(test_msg_push_round_trip),
        cmocka_unit_test(test_msg_garbage),
        cmocka_unit_test(test_msg_budget),
        cmocka_unit_test(test_pull_batch_hand_encoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
