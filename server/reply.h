/* reply.h - the server's protocol layer: the store's answers as reply frames.
 *
 * Owns: turning the typed values the store gives (server/store.h: pulled
 * feed entries through a callback, verify digests and items, the reply
 * messages it builds, a push's per-change results) into whole frames of
 * the message table's reply types (common/msgtab.def), and the PullBatch
 * that carries stored records without re-encoding them.  The store never
 * builds a frame; this module never opens a transaction.
 *
 * Callers: the request handlers (server/sync.c) and the group commit
 * (server/commit.c), on worker threads: nothing here touches the loop.
 */
#ifndef PS_REPLY_H
#define PS_REPLY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

/** A PullBatch frame being built in a buffer (pull or fetch). */
typedef struct ps_reply_batch {
    ps_buf_t *out;
    size_t start;   /**< where the frame starts in out */
} ps_reply_batch_t;

/** Starts a PullBatch frame at the end of out. */
int ps_reply_batch_begin(ps_reply_batch_t *b, ps_buf_t *out);
/** A ps_pull_fn (arg: the ps_reply_batch_t): appends one feed entry,
 *  copying the stored record's bytes once, straight into the frame. */
int ps_reply_batch_entry(void *arg, const ps_pull_item_t *it);
/** Ends the frame with the batch's cursor, more and head; on rc != PS_OK
 *  (the read failed) drops the partial frame instead and returns rc. */
int ps_reply_batch_end(ps_reply_batch_t *b, int rc, uint32_t request_id, const ps_pull_end_t *end);

/** Appends one frame of type holding msg (any reply the store built). */
int ps_reply_msg(ps_buf_t *out, uint8_t type, uint32_t request_id, const ProtobufCMessage *msg);
/** QueryResult frames from the store's whole answer: group rows cut into
 *  frames of PS_REPLY_QUERY_ROWS (the last says done), or the one page. */
#define PS_REPLY_QUERY_ROWS 2000
int ps_reply_query(ps_buf_t *out, uint32_t request_id, const ProtobufCMessage *query_result);
/** A VerifyDigests frame. */
int ps_reply_verify_digests(ps_buf_t *out, uint32_t request_id, const ps_verify_digests_t *d);
/** A VerifyBucketList frame. */
int ps_reply_verify_items(ps_buf_t *out, uint32_t request_id, const ps_verify_item_t *items, size_t n);

/** The PushResult frame of an applied job (its results), into job->reply. */
int ps_reply_push(ps_push_job_t *job);
/** The Error frame of a job whose transaction failed (err: why), into
 *  job->reply: nothing was applied; full storage or disk is said so. */
void ps_reply_push_error(ps_push_job_t *job, int err);

#endif
