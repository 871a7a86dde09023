/* msg.c - protobuf-c messages inside frames, with a bounded allocator. */
#include "msg.h"
#include "err.h"
#include "frame.h"
#include "msgtab.h"

#include "wire.pb-c.h"

#include <pthread.h>
#include <stdlib.h>

#include <zstd.h>
#include <string.h>

const ProtobufCMessageDescriptor *ps_msg_descriptor(uint8_t type)
{
    const ps_msg_info_t *mi = ps_msg_info(type);
    return mi ? mi->desc : NULL;
}

int ps_msg_pack_frame(ps_buf_t *out, uint8_t type, uint32_t request_id, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    int rc = ps_buf_reserve(out, PS_FRAME_HDR + n);
    if (rc)
        return rc;
    ps_frame_encode_header(ps_buf_tail(out), type, 0, request_id, n);
    protobuf_c_message_pack(msg, ps_buf_tail(out) + PS_FRAME_HDR);
    ps_buf_commit(out, PS_FRAME_HDR + n);
    return PS_OK;
}

/* Every block carries its size in front so frees give budget back; the
 * header is 16 bytes to keep max_align_t alignment. */
typedef struct budget {
    size_t left;
    int exhausted; /* an allocation was refused: report PS_ENOMEM, not PS_EPROTO */
} budget_t;

static void *budget_alloc(void *data, size_t size)
{
    budget_t *b = data;
    size_t *p;
    if (size > b->left || size > SIZE_MAX - 16) {
        b->exhausted = 1;
        return NULL;
    }
    p = malloc(size + 16);
    if (!p)
        return NULL;
    b->left -= size;
    p[0] = size;
    return (uint8_t *)p + 16;
}

static void budget_free(void *data, void *ptr)
{
    budget_t *b = data;
    size_t *p;
    if (!ptr)
        return;
    p = (size_t *)(void *)((uint8_t *)ptr - 16);
    if (b)
        b->left += p[0];
    free(p);
}

/* Frees after the unpack returns cannot use the budget (it lived on the
 * stack), so a static allocator with no data frees the same blocks. */
static ProtobufCAllocator g_free_alloc = {budget_alloc, budget_free, NULL};

/* protobuf-c 1.4 accepts field number 0 when its tag is written in more
 * than one byte ("80 00") and keeps it as an unknown field, but packs it back
 * as "00", which it then refuses.  A Record carrying one would be stored and
 * sent to every reader as bytes none of them can unpack (found by
 * tests/fuzz/fuzz_msg; corpus crash-field-zero-*).  Field 0 is not valid
 * protobuf: refuse it anywhere in the message.  The schema has no recursion
 * (tests/unit/test_decode_bounds.c checks), so the depth is bounded. */
static int has_field_zero(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;

    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return 1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
            ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (arr[k] && has_field_zero(arr[k]))
                    return 1;
        } else {
            const ProtobufCMessage *sub;
            /* Members of a oneof share storage: only the set one is a message of its type. */
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
                continue;
            sub = *(const ProtobufCMessage *const *)(const void *)(base + f->offset);
            if (sub && has_field_zero(sub))
                return 1;
        }
    }
    return 0;
}

int ps_msg_unpack_desc(const ProtobufCMessageDescriptor *d, const uint8_t *body, size_t len,
                       ProtobufCMessage **out)
{
    budget_t b = {PS_MSG_BUDGET(len), 0};
    ProtobufCAllocator a = {budget_alloc, budget_free, &b};
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &a, len, body);
    if (!m)
        return b.exhausted ? PS_ENOMEM : PS_EPROTO;
    if (has_field_zero(m)) {
        protobuf_c_message_free_unpacked(m, &g_free_alloc);
        return PS_EPROTO;
    }
    *out = m;
    return PS_OK;
}

/* ---- the per-frame arena -------------------------------------------------- */

/* One block: this header, then the bump-allocated space.  Frees do
 * nothing; ps_msg_arena_free gives the whole block back at once. */
struct ps_msg_arena {
    size_t size;      /* bytes after the header */
    size_t cap, used; /* this unpack's budget (<= size) and what it took */
    size_t touched;   /* most bytes any unpack took: the block's resident part */
    int exhausted;
    int pooled;       /* from ps_msg_unpack_arena: goes back to the pool */
    ProtobufCMessage *msg;
    ps_msg_arena_t *next; /* in the pool */
};

#define ARENA_HDR ((sizeof(ps_msg_arena_t) + 15) & ~(size_t)15)

static void *arena_alloc(void *data, size_t size)
{
    ps_msg_arena_t *a = data;
    size_t n = (size + 15) & ~(size_t)15; /* max_align_t alignment for every piece */
    void *p;
    if (n < size || n > a->cap - a->used) {
        a->exhausted = 1;
        return NULL;
    }
    p = (uint8_t *)a + ARENA_HDR + a->used;
    a->used += n;
    return p;
}

static void arena_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr;
}

/* Unpacks into arena a (emptied first); *out is NULL on failure. */
static int unpack_in(ps_msg_arena_t *a, const ProtobufCMessageDescriptor *d, const uint8_t *body, size_t len,
                     ProtobufCMessage **out)
{
    ProtobufCAllocator al = {arena_alloc, arena_free, a};
    a->used = 0;
    a->exhausted = 0;
    a->msg = protobuf_c_message_unpack(d, &al, len, body);
    if (a->used > a->touched)
        a->touched = a->used;
    if (!a->msg || has_field_zero(a->msg)) {
        int rc = !a->msg && a->exhausted ? PS_ENOMEM : PS_EPROTO;
        a->msg = NULL;
        *out = NULL;
        return rc;
    }
    *out = a->msg;
    return PS_OK;
}

/* A block for a budget of cap bytes: the budget is the block, what an
 * unpack of the piecewise kind may allocate in all (untouched pages of a
 * large block cost nothing). */
static ps_msg_arena_t *arena_new(size_t cap)
{
    ps_msg_arena_t *a = malloc(ARENA_HDR + cap);
    if (a) {
        a->size = a->cap = cap;
        a->touched = 0;
        a->pooled = 0;
        a->next = NULL;
    }
    return a;
}

/* ---- the pool of Push arenas ---------------------------------------------
 *
 * A Push's block (16 KB + 8x the body, mapped on its own past glibc's mmap
 * threshold) used to be mapped, faulted in page by page and unmapped for
 * every frame.  Freed blocks are kept here instead, for the next decode, on
 * whichever thread (the server frees them on a pool thread after a group
 * commit, or on the loop).  Bounded: at most PS_MSG_POOL_BLOCKS blocks whose
 * touched bytes (what stays resident) add up to at most PS_MSG_POOL_BYTES;
 * a block over PS_MSG_POOL_BLOCK_MAX is never kept.  The decode budget is
 * each frame's own whatever the block it lands in (a->cap), so the server's
 * decoded-push accounting (arena_used) does not change. */

static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static ps_msg_arena_t *g_pool; /* ascending size */
static size_t g_pool_n, g_pool_bytes;

/* What a kept block holds resident: its header and the pages an unpack touched. */
static size_t resident(const ps_msg_arena_t *a)
{
    return (ARENA_HDR + a->touched + 4095) & ~(size_t)4095;
}

/* The smallest kept block of at least cap bytes, taken out; NULL if none. */
static ps_msg_arena_t *pool_take(size_t cap)
{
    ps_msg_arena_t **pp, *a = NULL;
    pthread_mutex_lock(&g_pool_mu);
    for (pp = &g_pool; *pp; pp = &(*pp)->next)
        if ((*pp)->size >= cap) {
            a = *pp;
            *pp = a->next;
            g_pool_n--;
            g_pool_bytes -= resident(a);
            break;
        }
    pthread_mutex_unlock(&g_pool_mu);
    return a;
}

/* Keeps a, making room by dropping smaller kept blocks; frees what goes. */
static void pool_give(ps_msg_arena_t *a)
{
    ps_msg_arena_t *drop = NULL, **pp, *d;
    size_t r = resident(a);
    if (a->size > PS_MSG_POOL_BLOCK_MAX || r > PS_MSG_POOL_BYTES) {
        free(a);
        return;
    }
    a->msg = NULL;
    pthread_mutex_lock(&g_pool_mu);
    while (g_pool && g_pool->size <= a->size &&
           (g_pool_n >= PS_MSG_POOL_BLOCKS || g_pool_bytes + r > PS_MSG_POOL_BYTES)) {
        d = g_pool;
        g_pool = d->next;
        g_pool_n--;
        g_pool_bytes -= resident(d);
        d->next = drop;
        drop = d;
    }
    if (g_pool_n < PS_MSG_POOL_BLOCKS && g_pool_bytes + r <= PS_MSG_POOL_BYTES) {
        for (pp = &g_pool; *pp && (*pp)->size < a->size; pp = &(*pp)->next)
            ;
        a->next = *pp;
        *pp = a;
        g_pool_n++;
        g_pool_bytes += r;
        a = NULL;
    }
    pthread_mutex_unlock(&g_pool_mu);
    free(a);
    while ((d = drop)) {
        drop = d->next;
        free(d);
    }
}

void ps_msg_arena_pool_stats(size_t *blocks, size_t *bytes)
{
    pthread_mutex_lock(&g_pool_mu);
    *blocks = g_pool_n;
    *bytes = g_pool_bytes;
    pthread_mutex_unlock(&g_pool_mu);
}

void ps_msg_arena_pool_drain(void)
{
    ps_msg_arena_t *a;
    pthread_mutex_lock(&g_pool_mu);
    a = g_pool;
    g_pool = NULL;
    g_pool_n = g_pool_bytes = 0;
    pthread_mutex_unlock(&g_pool_mu);
    while (a) {
        ps_msg_arena_t *next = a->next;
        free(a);
        a = next;
    }
}

/* A Push block for a budget of cap bytes: a kept one, or a new one rounded
 * up to 64 KB so that later frames of about the same size fit it too
 * (pages no unpack touches cost nothing). */
static ps_msg_arena_t *pool_get(size_t cap)
{
    ps_msg_arena_t *a = pool_take(cap);
    size_t size = (cap + 65535) & ~(size_t)65535;
    if (!a && size >= cap && (a = arena_new(size)))
        a->pooled = 1;
    if (a)
        a->cap = cap; /* the budget stays the frame's own */
    return a;
}

int ps_msg_unpack_arena(uint8_t type, const uint8_t *body, size_t len, ps_msg_arena_t **arena,
                        ProtobufCMessage **out)
{
    const ProtobufCMessageDescriptor *d = ps_msg_descriptor(type);
    ps_msg_arena_t *a;
    int rc;

    *arena = NULL;
    *out = NULL;
    if (!d)
        return PS_EPROTO;
    if (!(a = pool_get(PS_MSG_BUDGET(len))))
        return PS_ENOMEM;
    if ((rc = unpack_in(a, d, body, len, out))) {
        pool_give(a);
        return rc;
    }
    *arena = a;
    return PS_OK;
}

int ps_msg_unpack_reuse(uint8_t type, const uint8_t *body, size_t len, ps_msg_arena_t **arena,
                        ProtobufCMessage **out)
{
    const ProtobufCMessageDescriptor *d = ps_msg_descriptor(type);
    size_t cap = PS_MSG_BUDGET(len);

    *out = NULL;
    if (!d)
        return PS_EPROTO;
    if (*arena && (*arena)->size < cap) {
        free(*arena);
        *arena = NULL;
    }
    if (!*arena && !(*arena = arena_new(cap)))
        return PS_ENOMEM;
    /* The budget stays the frame's own, whatever the block's size. */
    (*arena)->cap = cap;
    return unpack_in(*arena, d, body, len, out);
}

size_t ps_msg_arena_used(const ps_msg_arena_t *a)
{
    return a ? a->used : 0;
}

void ps_msg_arena_free(ps_msg_arena_t *a)
{
    if (a && a->pooled)
        pool_give(a);
    else
        free(a);
}

int ps_msg_unpack(uint8_t type, const uint8_t *body, size_t len, ProtobufCMessage **out)
{
    const ProtobufCMessageDescriptor *d = ps_msg_descriptor(type);
    if (!d)
        return PS_EPROTO;
    return ps_msg_unpack_desc(d, body, len, out);
}

void ps_msg_free(ProtobufCMessage *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, &g_free_alloc);
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

size_t ps_msg_feed_entry_size(uint64_t seq, size_t record_len)
{
    /* FeedEntry { 1: seq varint, 2: record bytes } inside field 1 of PullBatch. */
    size_t inner = 1 + varint_size(seq) + 1 + varint_size(record_len) + record_len;
    return 1 + varint_size(inner) + inner;
}

int ps_msg_feed_entry_append(ps_buf_t *out, uint64_t seq, const uint8_t *record, size_t record_len)
{
    return ps_msg_feed_entry_append_migrant(out, seq, record, record_len, NULL, 0);
}

int ps_msg_feed_entry_append_migrant(ps_buf_t *out, uint64_t seq, const uint8_t *record, size_t record_len,
                                     const uint8_t *mig, size_t mig_len)
{
    size_t inner = 1 + varint_size(seq) + 1 + varint_size(record_len) + record_len +
                   (mig_len ? 1 + varint_size(mig_len) + mig_len : 0);
    size_t total = 1 + varint_size(inner) + inner;
    uint8_t *p;
    int rc = ps_buf_reserve(out, total);
    if (rc)
        return rc;
    p = ps_buf_tail(out);
    *p++ = (1 << 3) | 2; /* PullBatch.entries, length-delimited */
    p = varint_put(p, inner);
    *p++ = (1 << 3) | 0; /* FeedEntry.seq, varint */
    p = varint_put(p, seq);
    *p++ = (2 << 3) | 2; /* FeedEntry.record, length-delimited */
    p = varint_put(p, record_len);
    if (record_len)
        memcpy(p, record, record_len);
    p += record_len;
    if (mig_len) {
        *p++ = (5 << 3) | 2; /* FeedEntry.migrant, length-delimited */
        p = varint_put(p, mig_len);
        memcpy(p, mig, mig_len);
    }
    ps_buf_commit(out, total);
    return PS_OK;
}

int ps_msg_feed_gone_append(ps_buf_t *out, uint64_t seq, const uint8_t id[16])
{
    /* FeedEntry { 1: seq, 3: gone = true, 4: id } */
    size_t inner = 1 + varint_size(seq) + 2 + 2 + 16;
    uint8_t tmp[48], *p = tmp;
    *p++ = (1 << 3) | 2;
    p = varint_put(p, inner);
    *p++ = (1 << 3) | 0;
    p = varint_put(p, seq);
    *p++ = (3 << 3) | 0;
    *p++ = 1;
    *p++ = (4 << 3) | 2;
    *p++ = 16;
    memcpy(p, id, 16);
    p += 16;
    return ps_buf_append(out, tmp, (size_t)(p - tmp));
}

int ps_msg_pull_batch_finish(ps_buf_t *out, uint64_t cursor, int more, uint64_t head)
{
    uint8_t tmp[32], *p = tmp;
    *p++ = (2 << 3) | 0;
    p = varint_put(p, cursor);
    if (more) {
        *p++ = (3 << 3) | 0;
        *p++ = 1;
    }
    *p++ = (4 << 3) | 0;
    p = varint_put(p, head);
    return ps_buf_append(out, tmp, (size_t)(p - tmp));
}

/* Contexts are made per call: a frame worth compressing is large enough
 * that this costs little, and no context outlives its thread (libuv's
 * workers never exit, so a kept one would look leaked to valgrind). */
void ps_msg_thread_cleanup(void)
{
}

int ps_frame_compress(ps_buf_t *out, size_t start)
{
    uint8_t *f = ps_buf_head(out) + start;
    size_t body_len, bound, clen;
    uint8_t *tmp;
    uint32_t req;
    if (ps_buf_size(out) - start < PS_FRAME_HDR)
        return PS_OK;
    body_len = ((size_t)f[0] << 24 | (size_t)f[1] << 16 | (size_t)f[2] << 8 | f[3]) - PS_FRAME_LEN_REST;
    if (body_len < PS_ZSTD_MIN_BODY || (f[5] & PS_FRAME_FLAG_ZSTD))
        return PS_OK;
    bound = ZSTD_compressBound(body_len);
    tmp = malloc(bound);
    if (!tmp)
        return PS_ENOMEM;
    /* Level 1: the link is fast, the CPU is the budget. */
    clen = ZSTD_compress(tmp, bound, f + PS_FRAME_HDR, body_len, 1);
    if (!ZSTD_isError(clen) && clen < body_len) {
        req = (uint32_t)f[8] << 24 | (uint32_t)f[9] << 16 | (uint32_t)f[10] << 8 | f[11];
        ps_frame_encode_header(f, f[4], (uint8_t)(f[5] | PS_FRAME_FLAG_ZSTD), req, clen);
        memcpy(f + PS_FRAME_HDR, tmp, clen);
        /* Move any frames that followed up to the new end. */
        memmove(f + PS_FRAME_HDR + clen, f + PS_FRAME_HDR + body_len,
                ps_buf_size(out) - start - PS_FRAME_HDR - body_len);
        out->len -= body_len - clen;
    }
    free(tmp);
    return PS_OK;
}

int ps_frames_compress(ps_buf_t *out, size_t start)
{
    while (ps_buf_size(out) - start >= PS_FRAME_HDR) {
        const uint8_t *f = ps_buf_head(out) + start;
        size_t flen = (size_t)f[0] << 24 | (size_t)f[1] << 16 | (size_t)f[2] << 8 | f[3];
        int rc = ps_frame_compress(out, start);
        if (rc)
            return rc;
        f = ps_buf_head(out) + start;
        flen = (size_t)f[0] << 24 | (size_t)f[1] << 16 | (size_t)f[2] << 8 | f[3];
        start += 4 + flen;
    }
    return PS_OK;
}

int ps_frame_plain_body(const uint8_t *body, size_t len, int compressed, size_t max, ps_buf_t *scratch,
                        const uint8_t **plain, size_t *plain_len)
{
    unsigned long long size;
    size_t n;
    int rc;
    if (!compressed) {
        *plain = body;
        *plain_len = len;
        return PS_OK;
    }
    size = ZSTD_getFrameContentSize(body, len);
    /* The sender must state the size, and it must fit the frame limit:
     * nothing is allocated for a body we would refuse anyway. */
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR || size > max)
        return PS_EPROTO;
    ps_buf_reset(scratch);
    if ((rc = ps_buf_reserve(scratch, (size_t)size ? (size_t)size : 1)))
        return rc;
    n = ZSTD_decompress(ps_buf_tail(scratch), (size_t)size, body, len);
    if (ZSTD_isError(n) || n != size)
        return PS_EPROTO;
    ps_buf_commit(scratch, n);
    *plain = ps_buf_head(scratch);
    *plain_len = n;
    return PS_OK;
}
