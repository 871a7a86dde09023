/* pinyin.c - see pinyin.h. */
#include "pinyin.h"

#include <string.h>

#include "pinyin_table.h"

/* Family names read otherwise than their customary reading (the first
 * letter differs).  Only these matter to initials. */
static const struct {
    const char *ch;
    char letter;
} g_surnames[] = {
    {"单", 's'}, {"曾", 'z'}, {"解", 'x'}, {"仇", 'q'}, {"朴", 'p'}, {"查", 'z'}, {"区", 'o'},
    {"盖", 'g'}, {"覃", 'q'}, {"员", 'y'}, {"繁", 'p'}, {"召", 's'}, {"种", 'c'}, {"秘", 'b'},
    {"尉", 'y'}, {"乐", 'y'}, {"折", 's'},
};

/* The code point of the UTF-8 character at s and its length in *len, or -1. */
static long next_cp(const unsigned char *s, size_t *len)
{
    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    if ((s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
        *len = 2;
        return (long)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if ((s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        *len = 3;
        return (long)(s[0] & 0x0F) << 12 | (long)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    return -1;
}

static char surname_letter(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(g_surnames) / sizeof(g_surnames[0]); i++)
        if (strlen(g_surnames[i].ch) == len && memcmp(g_surnames[i].ch, s, len) == 0)
            return g_surnames[i].letter;
    return 0;
}

/* The initial of one character (0: none; -1: skip it). */
static int initial(const char *s, size_t len, long cp, int as_surname)
{
    char sl;
    if (cp == ' ' || cp == 0xB7 || cp == 0x30FB) /* space, middle dots */
        return -1;
    if (cp < 0x80)
        return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z' ? (int)(cp | 0x20) : 0;
    if (as_surname && (sl = surname_letter(s, len)))
        return sl;
    return cp >= PS_PINYIN_FIRST && cp <= PS_PINYIN_LAST ? ps_pinyin_table[cp - PS_PINYIN_FIRST] : 0;
}

int ps_pinyin_initials(const char *name, int surname, char *out, size_t outlen)
{
    const unsigned char *s = (const unsigned char *)name;
    size_t n = 0, len;

    if (!outlen)
        return -1;
    for (int first = 1; *s; s += len) {
        long cp = next_cp(s, &len);
        int c = cp < 0 ? 0 : initial((const char *)s, len, cp, surname && first);
        if (c < 0)
            continue;
        if (c == 0 || n + 1 >= outlen)
            return -1;
        out[n++] = (char)c;
        first = 0;
    }
    out[n] = '\0';
    return (int)n;
}
