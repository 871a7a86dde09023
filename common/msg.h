/* msg.h - protobuf-c messages inside frames.
 *
 * Owns: packing a message into a whole frame, and unpacking a frame body
 * under an allocation budget.  Which message a frame type carries is the
 * message table's (common/msgtab.def).
 *
 * Why a budget: protobuf-c 1.4 keeps every unknown field and can allocate
 * 40-70 times a crafted body's size.  Every unpack here draws from an
 * allocator capped at PS_MSG_BUDGET(len); past it the unpack fails with
 * PS_ENOMEM and the connection is closed as malformed.
 */
#ifndef PS_MSG_H
#define PS_MSG_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "buf.h"

/** Bytes an unpack of a len-byte body may allocate. */
#define PS_MSG_BUDGET(len) ((size_t)16384 + (size_t)(len) * 8)

/** The descriptor of the message carried by frames of this type (the
 * message table's row), or NULL for a type the table does not know. */
const ProtobufCMessageDescriptor *ps_msg_descriptor(uint8_t type);

/**
 * Appends a whole frame (header + packed message) to out.  The message must
 * be of the type's descriptor.  Returns PS_OK or PS_ENOMEM.
 */
int ps_msg_pack_frame(ps_buf_t *out, uint8_t type, uint32_t request_id, const ProtobufCMessage *msg);

/**
 * Unpacks a frame body of the given type.  On PS_OK the caller owns *out and
 * frees it with ps_msg_free.  PS_EPROTO for an unknown type or malformed
 * body, PS_ENOMEM when the budget is exceeded.
 */
int ps_msg_unpack(uint8_t type, const uint8_t *body, size_t len, ProtobufCMessage **out);
/** Same, for any descriptor (records stored on disk use this too). */
int ps_msg_unpack_desc(const ProtobufCMessageDescriptor *d, const uint8_t *body, size_t len,
                       ProtobufCMessage **out);
/** Frees a message from ps_msg_unpack*. */
void ps_msg_free(ProtobufCMessage *msg);

/**
 * A per-frame arena: one block of PS_MSG_BUDGET(len) bytes that an unpack
 * takes every piece of the message from, and that is freed in one call.
 * The server decodes each Push this way, off the loop thread (server/
 * commit.c): no malloc/free per field, none at all on the loop.
 */
typedef struct ps_msg_arena ps_msg_arena_t;
/**
 * ps_msg_unpack into a new arena: on PS_OK *out lies in *arena, which the
 * caller frees with ps_msg_arena_free (never ps_msg_free).  The same
 * budget and refusals as ps_msg_unpack (PS_EPROTO, PS_ENOMEM).
 */
int ps_msg_unpack_arena(uint8_t type, const uint8_t *body, size_t len, ps_msg_arena_t **arena,
                        ProtobufCMessage **out);
/* Its block comes from, and ps_msg_arena_free returns it to, a bounded
 * pool (below): the pages of a block are faulted in once, not per frame. */
/**
 * ps_msg_unpack into *arena, reused: a block kept from the previous call
 * (or a new one when it is too small or *arena is NULL) is emptied, so the
 * message before it is gone.  The same budget and refusals as
 * ps_msg_unpack; on failure *out is NULL and *arena stays the caller's to
 * free with ps_msg_arena_free.  The client's session decodes each
 * PullBatch this way: no malloc per field, no new block per frame.
 */
int ps_msg_unpack_reuse(uint8_t type, const uint8_t *body, size_t len, ps_msg_arena_t **arena,
                        ProtobufCMessage **out);
/**
 * The blocks of ps_msg_unpack_arena are kept when freed, for the next
 * decode (any thread; common/msg.c, docs/performance.md §n): at most
 * PS_MSG_POOL_BLOCKS of them, holding at most PS_MSG_POOL_BYTES resident
 * (the bytes unpacks touched), none over PS_MSG_POOL_BLOCK_MAX bytes.
 */
#define PS_MSG_POOL_BLOCKS 16
#define PS_MSG_POOL_BYTES ((size_t)8 << 20)
#define PS_MSG_POOL_BLOCK_MAX ((size_t)16 << 20)
/** Blocks kept now and their resident bytes (tests, metrics). */
void ps_msg_arena_pool_stats(size_t *blocks, size_t *bytes);
/** Frees every kept block (tests; a process may call it before exit). */
void ps_msg_arena_pool_drain(void);
/** Bytes the unpack took from the arena (tests). */
size_t ps_msg_arena_used(const ps_msg_arena_t *a);
/** Frees the message in the arena, and the arena (a ps_msg_unpack_arena
 * block goes back to the pool).  NULL is allowed.  Any thread. */
void ps_msg_arena_free(ps_msg_arena_t *a);

/* --- compression (docs/protocol.md, "Compression") --- */

#define PS_FEATURE_ZSTD 0x01u        /**< Hello/Welcome feature bit: zstd frame bodies */
#define PS_ZSTD_MIN_BODY 512u        /**< smaller bodies are never compressed */

/**
 * Compresses the body of the whole frame at out[start..] in place when it is
 * at least PS_ZSTD_MIN_BODY bytes and compression makes it smaller; sets
 * flag bit 0 and fixes the length.  Frames after start are left alone, so
 * call it once per frame.  Returns PS_OK (also when left as is) or PS_ENOMEM.
 */
int ps_frame_compress(ps_buf_t *out, size_t start);
/** Frees this thread's compression contexts (threads that end call it). */
void ps_msg_thread_cleanup(void);
/** Compresses every whole frame in out[start..]. */
int ps_frames_compress(ps_buf_t *out, size_t start);
/**
 * The plain body of a frame: its own bytes, or, when flag bit 0 is set,
 * the zstd frame decompressed into scratch (at most max bytes, checked from
 * the zstd header before anything is allocated).  PS_EPROTO for a corrupt or
 * oversized body.
 */
int ps_frame_plain_body(const uint8_t *body, size_t len, int compressed, size_t max, ps_buf_t *scratch,
                        const uint8_t **plain, size_t *plain_len);

/* --- hand-encoded PullBatch, so stored records are sent without re-encoding --- */

/**
 * Appends one `FeedEntry entries = 1` element, holding seq and an already
 * packed Record, to a PullBatch body under construction in out.
 */
int ps_msg_feed_entry_append(ps_buf_t *out, uint64_t seq, const uint8_t *record, size_t record_len);
/** The same with `MigrantSummary migrant = 5` (already packed, mig_len
 *  bytes; none when mig_len is 0). */
int ps_msg_feed_entry_append_migrant(ps_buf_t *out, uint64_t seq, const uint8_t *record, size_t record_len,
                                     const uint8_t *mig, size_t mig_len);
/** Appends a `gone` FeedEntry: the record with this id left the reader's scope. */
int ps_msg_feed_gone_append(ps_buf_t *out, uint64_t seq, const uint8_t id[16]);
/** Appends the trailing PullBatch scalar fields (cursor, more, head). */
int ps_msg_pull_batch_finish(ps_buf_t *out, uint64_t cursor, int more, uint64_t head);
/** Size of one encoded feed entry, for byte budgets. */
size_t ps_msg_feed_entry_size(uint64_t seq, size_t record_len);

#endif
