/* ids.c - UUIDv7, node ids, HLC. */
#include "ids.h"
#include "testhooks.h"
#include "err.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

int ps_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return PS_EIO;
        }
        p += r;
        n -= (size_t)r;
    }
    return PS_OK;
}

/* POPSYNC_CLOCK_OFFSET_MS shifts this process's wall clock: tests use it
 * to play a field device whose clock is wrong (docs/sync.md).  A test hook:
 * read only by test builds (testhooks.h). */
static int64_t clock_offset(void)
{
    static int64_t offset;
    static int loaded;
    if (!loaded) {
        if (ps_test_hook_i64("POPSYNC_CLOCK_OFFSET_MS", &offset) != 1)
            offset = 0;
        loaded = 1;
    }
    return offset;
}

uint64_t ps_now_ms(void)
{
    struct timespec ts;
    int64_t ms;
    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + clock_offset();
    return ms > 0 ? (uint64_t)ms : 0;
}

int ps_uuid7(uint8_t id[PS_ID_LEN])
{
    uint64_t ms = ps_now_ms();
    int rc = ps_random(id + 6, 10);
    if (rc)
        return rc;
    for (int i = 0; i < 6; i++)
        id[i] = (uint8_t)(ms >> (40 - 8 * i));
    id[6] = (uint8_t)(0x70 | (id[6] & 0x0f)); /* version 7 */
    id[8] = (uint8_t)(0x80 | (id[8] & 0x3f)); /* variant 10 */
    return PS_OK;
}

size_t ps_id_hash(const uint8_t id[PS_ID_LEN])
{
    uint64_t a, b, h;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    h = a * 0x9e3779b97f4a7c15ull ^ b;
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    return (size_t)h;
}

void ps_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void ps_uuid_format(const uint8_t id[PS_ID_LEN], char out[PS_UUID_STR])
{
    char hex[33];
    ps_hex(id, PS_ID_LEN, hex);
    snprintf(out, PS_UUID_STR, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

int ps_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ps_unhex(const char *hex, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = ps_hexval((unsigned char)hex[2 * i]), lo = hi < 0 ? -1 : ps_hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return PS_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return PS_OK;
}

int ps_uuid_parse(const char *s, uint8_t id[PS_ID_LEN])
{
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '-')
            continue;
        if (n == PS_ID_LEN)
            return PS_EINVAL;
        hi = ps_hexval((unsigned char)p[0]);
        lo = p[1] ? ps_hexval((unsigned char)p[1]) : -1;
        if (hi < 0 || lo < 0)
            return PS_EINVAL;
        id[n++] = (uint8_t)(hi << 4 | lo);
        p++;
    }
    return n == PS_ID_LEN ? PS_OK : PS_EINVAL;
}

uint64_t ps_hlc_at(ps_hlc_t *c, uint64_t phys_ms)
{
    uint64_t phys = phys_ms << 16;
    c->last = phys > c->last ? phys : c->last + 1;
    return c->last;
}

uint64_t ps_hlc_now(ps_hlc_t *c)
{
    return ps_hlc_at(c, ps_now_ms());
}

void ps_hlc_observe(ps_hlc_t *c, uint64_t remote)
{
    if (remote > c->last)
        c->last = remote;
}
