/* digest.c - verify digests. */
#include "digest.h"

#include <string.h>

/* splitmix64's finaliser: a cheap, well-mixed 64-bit permutation. */
static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Little-endian load, whatever this machine's byte order: both sides of
 * a verify must compute the same digests. */
static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t id_hash(const uint8_t id[16])
{
    uint64_t a = le64(id), b = le64(id + 8);
    return mix(a ^ mix(b + 0x9e3779b97f4a7c15ull));
}

uint32_t ps_verify_bucket(const uint8_t id[16])
{
    return (uint32_t)(id_hash(id) >> 56);
}

uint64_t ps_verify_item_hash(const uint8_t id[16], uint64_t gen, uint64_t hlc, int deleted)
{
    uint64_t h = id_hash(id);
    h = mix(h ^ gen);
    h = mix(h ^ hlc);
    return mix(h ^ (deleted ? 1u : 0u));
}
