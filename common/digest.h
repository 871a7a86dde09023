/* digest.h - the verify digests both sides compute over a scope.
 *
 * Owns: which bucket a record id falls in, and the hash of one record's
 * (id, revision, deleted) state.  A bucket's digest is the sum (mod 2^64) of
 * its records' hashes, so it does not depend on the order records are seen
 * in, and the client and server can compare 256 buckets at once, then list
 * only the buckets that differ (docs/protocol.md, "Verify").
 */
#ifndef PS_DIGEST_H
#define PS_DIGEST_H

#include <stdint.h>

#define PS_VERIFY_BUCKETS 256u

/** The bucket (0..255) of a 16-byte record id. */
uint32_t ps_verify_bucket(const uint8_t id[16]);
/** The hash of one record's state. */
uint64_t ps_verify_item_hash(const uint8_t id[16], uint64_t gen, uint64_t hlc, int deleted);

#endif
