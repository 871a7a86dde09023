/* buf.h - growable byte buffer.
 *
 * Owns: ps_buf_t, the one buffer type passed between layers.  Data lives in
 * [data + off, data + len); consumed bytes are dropped lazily so a parser can
 * consume from the front without moving memory on every frame.
 */
#ifndef PS_BUF_H
#define PS_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct ps_buf {
    uint8_t *data; /**< allocation (owned) */
    size_t off;    /**< first unconsumed byte */
    size_t len;    /**< end of valid bytes */
    size_t cap;    /**< allocated size */
} ps_buf_t;

/** Initialises an empty buffer (no allocation). */
void ps_buf_init(ps_buf_t *b);
/** Frees the allocation and leaves the buffer empty. */
void ps_buf_free(ps_buf_t *b);
/** Number of unconsumed bytes. */
static inline size_t ps_buf_size(const ps_buf_t *b) { return b->len - b->off; }
/** Pointer to the first unconsumed byte. */
/* An empty buffer may have no storage yet: no arithmetic on a null pointer. */
static inline uint8_t *ps_buf_head(const ps_buf_t *b) { return b->data ? b->data + b->off : NULL; }
/** Ensures room for n more bytes at the tail; returns PS_OK or PS_ENOMEM. */
int ps_buf_reserve(ps_buf_t *b, size_t n);
/** Pointer to the free space at the tail (valid after ps_buf_reserve). */
static inline uint8_t *ps_buf_tail(const ps_buf_t *b) { return b->data ? b->data + b->len : NULL; }
/** Marks n bytes written at the tail as valid. */
static inline void ps_buf_commit(ps_buf_t *b, size_t n) { b->len += n; }
/** Appends n bytes; returns PS_OK or PS_ENOMEM. */
int ps_buf_append(ps_buf_t *b, const void *p, size_t n);
/** Drops n bytes from the front. */
void ps_buf_consume(ps_buf_t *b, size_t n);
/** Empties the buffer, keeping its allocation. */
void ps_buf_reset(ps_buf_t *b);
/** Moves unconsumed bytes to the front of the allocation. */
void ps_buf_compact(ps_buf_t *b);

#endif
