/* frame.h - the popsync frame header codec (docs/protocol.md, "Frames").
 *
 * Owns: encoding and decoding of the 12-byte frame header.  Pure: no I/O, no
 * allocation.  A decoded frame's body points into the caller's buffer.
 *
 *   u32 length      big-endian: bytes after this field (8 + body length)
 *   u8  type        message type (PS_MSG_*, common/msgtab.def)
 *   u8  flags       bit 0: body is zstd-compressed; other bits must be 0
 *   u16 reserved    0
 *   u32 request_id  big-endian, echoed in the reply
 *   ... body
 */
#ifndef PS_FRAME_H
#define PS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "msgtab.h" /* the message types (PS_MSG_*) and ps_frame_type_name */

#define PS_FRAME_HDR 12u          /**< full header size */
#define PS_FRAME_LEN_REST 8u      /**< header bytes counted by the length field */
#define PS_FRAME_FLAG_ZSTD 0x01u  /**< body is zstd-compressed */
#define PS_FRAME_FLAGS_KNOWN 0x01u

/** The protocol version a Hello offers and a Welcome answers (docs/protocol.md). */
#define PS_PROTOCOL_VERSION 1u

/** A decoded frame; body borrows from the input buffer. */
typedef struct ps_frame {
    uint8_t type;
    uint8_t flags;
    uint16_t reserved;
    uint32_t request_id;
    const uint8_t *body; /**< borrowed: valid while the input buffer is */
    size_t body_len;
} ps_frame_t;

/** Decode results besides PS_OK (0): */
#define PS_FRAME_NEED_MORE 1 /**< not enough bytes yet */

/**
 * Decodes one frame from p[0..len).  Returns PS_OK with *out filled and
 * *consumed set to the frame's total size; PS_FRAME_NEED_MORE when more bytes
 * are needed (checked against max_body first, so an oversized length is
 * rejected as soon as its 4 bytes arrive); PS_ETOOBIG when the declared body
 * exceeds max_body; PS_EPROTO when the length is shorter than a header.
 * Type, flags and reserved are returned as received: the caller decides.
 */
int ps_frame_decode(const uint8_t *p, size_t len, size_t max_body, ps_frame_t *out, size_t *consumed);

/** Writes a 12-byte header for a body of body_len bytes into hdr. */
void ps_frame_encode_header(uint8_t hdr[PS_FRAME_HDR], uint8_t type, uint8_t flags, uint32_t request_id,
                            size_t body_len);

#endif
