/* frame.h - the popsync frame header codec (docs/protocol.md, "Frames").
 *
 * Owns: encoding and decoding of the 12-byte frame header.  Pure: no I/O, no
 * allocation.  A decoded frame's body points into the caller's buffer.
 *
 *   u32 length      big-endian: bytes after this field (8 + body length)
 *   u8  type        message type (PS_MSG_*)
 *   u8  flags       bit 0: body is zstd-compressed; other bits must be 0
 *   u16 reserved    0
 *   u32 request_id  big-endian, echoed in the reply
 *   ... body
 */
#ifndef PS_FRAME_H
#define PS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define PS_FRAME_HDR 12u          /**< full header size */
#define PS_FRAME_LEN_REST 8u      /**< header bytes counted by the length field */
#define PS_FRAME_FLAG_ZSTD 0x01u  /**< body is zstd-compressed */
#define PS_FRAME_FLAGS_KNOWN 0x01u

/** Message types.  Values are part of the wire format. */
enum ps_msg_type {
    PS_MSG_HELLO = 1,
    PS_MSG_WELCOME = 2,
    PS_MSG_PUSH = 3,
    PS_MSG_PUSH_RESULT = 4,
    PS_MSG_PULL = 5,
    PS_MSG_PULL_BATCH = 6,
    PS_MSG_ERROR = 7,
    PS_MSG_PING = 8,
    PS_MSG_PONG = 9,
    PS_MSG_ORGUNITS_REQUEST = 10,
    PS_MSG_ORGUNITS = 11,
    PS_MSG_CONFLICT_LIST = 12,
    PS_MSG_CONFLICT_LIST_RESULT = 13,
    PS_MSG_VERIFY_REQUEST = 14,
    PS_MSG_VERIFY_DIGESTS = 15,
    PS_MSG_VERIFY_BUCKET_REQUEST = 16,
    PS_MSG_VERIFY_BUCKET_LIST = 17,
    PS_MSG_FETCH_REQUEST = 18,
    PS_MSG_QUERY = 19,
    PS_MSG_QUERY_RESULT = 20,
    PS_MSG_REPORT_REQUEST = 21,
    PS_MSG_REPORT_RESULT = 22,
    PS_MSG_CLOSE_REQUEST = 23,
    PS_MSG_CLOSE_RESULT = 24,
    PS_MSG_NODE_STATUS_REQUEST = 25,
    PS_MSG_NODE_STATUS_RESULT = 26,
    PS_MSG_MAX_KNOWN = 26
};

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

/** Returns a static name for a message type ("Hello"), or "unknown". */
const char *ps_frame_type_name(uint8_t type);

#endif
