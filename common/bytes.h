/* bytes.h - big-endian integers in byte strings.
 *
 * Owns: the 64-bit big-endian form used for LMDB keys and values (so keys
 * sort numerically) by the server's store and the client's cache.  Any
 * module may include it.  Pure.
 */
#ifndef PS_BYTES_H
#define PS_BYTES_H

#include <stdint.h>

static inline void ps_be64put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static inline uint64_t ps_be64get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

#endif
