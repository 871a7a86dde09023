/* pullspan.h - where each record lies in a packed PullBatch.
 *
 * Owns: a walk over the protobuf wire form of a PullBatch that finds, for
 * each FeedEntry in order, the bytes of its Record, so the cache can seal
 * the record as the server sent it instead of packing it again
 * (client/cache.c), and by the fuzz_msg harness that checks it against the
 * decoder.  Reads, never allocates.
 */
#ifndef PS_PULLSPAN_H
#define PS_PULLSPAN_H

#include <stddef.h>
#include <stdint.h>

/** A record's bytes inside the packed batch (p NULL: none, or not usable). */
typedef struct ps_span {
    const uint8_t *p;
    size_t n;
} ps_span_t;

/**
 * Fills spans[0..n_entries) with the Record bytes of each FeedEntry of the
 * packed PullBatch body[0..len).  PS_OK when the batch holds exactly
 * n_entries entries (an entry without a record, or with its record given
 * in more than one piece, which a decoder merges, gets p NULL); PS_EPROTO
 * when the walk fails or the count differs: the caller then packs every
 * record itself.
 */
int ps_pull_record_spans(const uint8_t *body, size_t len, size_t n_entries, ps_span_t *spans);

#endif
