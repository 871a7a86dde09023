/* ids.h - record ids, node ids and the hybrid logical clock.
 *
 * Owns: UUIDv7 generation (time-ordered, so inserts append in LMDB key order),
 * random node ids, hex/UUID text forms, and the HLC used in revisions.
 */
#ifndef PS_IDS_H
#define PS_IDS_H

#include <stddef.h>
#include <stdint.h>

#define PS_ID_LEN 16
#define PS_UUID_STR 37 /**< "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" + NUL */

/** Fills buf with n cryptographically random bytes (getrandom). PS_OK or PS_EIO. */
int ps_random(void *buf, size_t n);
/** Makes a UUIDv7 from the current time and random bits. */
int ps_uuid7(uint8_t id[PS_ID_LEN]);
/** Formats 16 bytes as a UUID string. */
void ps_uuid_format(const uint8_t id[PS_ID_LEN], char out[PS_UUID_STR]);
/** Parses a UUID string (with or without dashes); PS_OK or PS_EINVAL. */
int ps_uuid_parse(const char *s, uint8_t id[PS_ID_LEN]);
/** A hash of 16 id bytes for hash tables (both halves mixed: UUIDv7 ids
 *  share their leading time bits). */
size_t ps_id_hash(const uint8_t id[PS_ID_LEN]);
/** Lower-case hex of n bytes into out (2n+1 bytes). */
void ps_hex(const uint8_t *p, size_t n, char *out);
/** The value of one hex digit (either case), or -1. */
int ps_hexval(int c);
/** Decodes the 2n hex digits at hex into n bytes at out; PS_EINVAL on a
 *  character that is not a hex digit (out may then be partly written). */
int ps_unhex(const char *hex, size_t n, uint8_t *out);

/** Milliseconds since the epoch, from the wall clock. */
uint64_t ps_now_ms(void);

/**
 * Hybrid logical clock: value = physical_ms << 16 | logical.  Survives clocks
 * that jump backwards: it never goes below the highest value seen.
 */
typedef struct ps_hlc {
    uint64_t last; /**< highest timestamp issued or observed */
} ps_hlc_t;

#define PS_HLC_MS(v) ((v) >> 16)

/**
 * How far a cache's clock may differ from the server's before the server
 * re-times the cache's edits by the difference and tells the cache its clock
 * is wrong, and before the cache times its own edits by the server's clock
 * (docs/sync.md §2).  Part of the protocol: both sides use the same value.
 */
#define PS_CLOCK_TOLERANCE_MS 2000

/** A timestamp for a local event, greater than every earlier one. */
uint64_t ps_hlc_now(ps_hlc_t *c);
/** ps_hlc_now with the physical time given (ms since the epoch). */
uint64_t ps_hlc_at(ps_hlc_t *c, uint64_t phys_ms);
/** Merges a timestamp received from elsewhere into the clock. */
void ps_hlc_observe(ps_hlc_t *c, uint64_t remote);

#endif
