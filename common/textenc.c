/* textenc.c - UTF-8 or GB18030, and UTF-8 from either (see textenc.h). */
#include "textenc.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "record_fmt.h"

int ps_textenc_from_name(const char *name)
{
    if (!name)
        return -1;
    if (strcasecmp(name, "utf-8") == 0 || strcasecmp(name, "utf8") == 0)
        return PS_TEXTENC_UTF8;
    if (strcasecmp(name, "gb18030") == 0 || strcasecmp(name, "gbk") == 0 || strcasecmp(name, "gb2312") == 0 ||
        strcasecmp(name, "cp936") == 0)
        return PS_TEXTENC_GB18030;
    return -1;
}

const char *ps_textenc_name(ps_textenc_t enc)
{
    return enc == PS_TEXTENC_GB18030 ? "GB18030 (GBK)" : enc == PS_TEXTENC_UTF16 ? "UTF-16 (Unicode text)" : "UTF-8";
}

/* Code points a Chinese office's file holds: ASCII, Latin-1 punctuation
 * and symbols (·, ×, °), general punctuation, CJK and its punctuation,
 * full-width forms.  What GBK bytes read as UTF-8 become instead is
 * U+0100..U+07FF (Latin Extended, IPA, Hebrew, Arabic: 钱志强 -> Ǯ־ǿ) and
 * odd corners above. */
static int implausible(uint32_t cp)
{
    if (cp < 0x100)
        return cp >= 0xC0 && cp != 0xD7 && cp != 0xF7; /* Latin-1 letters are rare; × ÷ are not */
    if (cp < 0x2000)
        return 1;
    return (cp >= 0xA000 && cp < 0xAC00) || (cp >= 0xD800 && cp < 0xF900);
}

/* Counts implausible code points of valid UTF-8 s[0..n). */
static size_t count_implausible(const unsigned char *s, size_t n)
{
    size_t i = 0, bad = 0;

    while (i < n) {
        uint32_t cp;
        size_t k;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        k = s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : 2;
        cp = s[i] & (0xFFu >> (k + 1));
        for (size_t j = 1; j < k && i + j < n; j++)
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        bad += (size_t)implausible(cp);
        i += k;
    }
    return bad;
}

/* enc -> UTF-8 with iconv.  PS_OK, PS_EINVAL (*bad_at set) or PS_ENOMEM. */
static int from_enc(const char *enc, const char *data, size_t len, char **out, size_t *outlen, size_t *bad_at)
{
    iconv_t cd = iconv_open("UTF-8", enc);
    size_t cap = len * 2 + 16, inleft = len, outleft;
    char *in = (char *)data, *buf, *o;
    int rc = PS_OK;

    if (cd == (iconv_t)-1)
        return PS_EINVAL;
    buf = malloc(cap);
    if (!buf) {
        iconv_close(cd);
        return PS_ENOMEM;
    }
    o = buf;
    outleft = cap - 1;
    /* 2 bytes of GB18030 or UTF-16 give at most 3 of UTF-8, 4 give 4: cap
     * is enough. */
    if (iconv(cd, &in, &inleft, &o, &outleft) == (size_t)-1) {
        *bad_at = (size_t)(in - data);
        rc = PS_EINVAL;
        free(buf);
        buf = NULL;
    }
    iconv_close(cd);
    if (rc)
        return rc;
    *o = '\0';
    *out = buf;
    *outlen = (size_t)(o - buf);
    return PS_OK;
}

static int from_gb18030(const char *data, size_t len, char **out, size_t *outlen, size_t *bad_at)
{
    return from_enc("GB18030", data, len, out, outlen, bad_at);
}

static int copy_utf8(const char *data, size_t len, char **out, size_t *outlen)
{
    char *buf = malloc(len + 1);
    if (!buf)
        return PS_ENOMEM;
    memcpy(buf, data, len);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return PS_OK;
}

int ps_textenc_to_utf8(const char *data, size_t len, int force, char **out, size_t *outlen, ps_textenc_t *used,
                       char *why, size_t whylen)
{
    size_t bad_at = 0, odd;
    char *gb = NULL;
    size_t gblen = 0;
    int rc;

    /* Excel's "Unicode text": UTF-16 with its BOM, which iconv reads. */
    if (len >= 2 && (memcmp(data, "\xFF\xFE", 2) == 0 || memcmp(data, "\xFE\xFF", 2) == 0)) {
        rc = from_enc("UTF-16", data, len, out, outlen, &bad_at);
        if (rc == PS_EINVAL)
            snprintf(why, whylen, "not valid UTF-16 (Unicode text) at byte %zu: save the sheet again as CSV", bad_at);
        if (rc == PS_OK)
            *used = PS_TEXTENC_UTF16;
        return rc;
    }
    /* A BOM says UTF-8.  UTF-8 (said or forced) is passed on as it is: a
     * cell with a bad byte is that row's error, not the file's. */
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
        data += 3;
        len -= 3;
        if (!force)
            force = PS_TEXTENC_UTF8;
    }
    *used = PS_TEXTENC_UTF8;
    if (force == PS_TEXTENC_UTF8)
        return copy_utf8(data, len, out, outlen);
    if (force == PS_TEXTENC_GB18030) {
        rc = from_gb18030(data, len, out, outlen, &bad_at);
        if (rc == PS_EINVAL)
            snprintf(why, whylen, "not valid GB18030/GBK at byte %zu", bad_at);
        if (rc == PS_OK)
            *used = PS_TEXTENC_GB18030;
        return rc;
    }
    if (ps_utf8_valid(data, len)) {
        odd = count_implausible((const unsigned char *)data, len);
        if (odd == 0 || from_gb18030(data, len, &gb, &gblen, &bad_at) != PS_OK)
            return copy_utf8(data, len, out, outlen);
        free(gb);
        snprintf(why, whylen,
                 "the file is valid UTF-8 but reads as %zu unlikely characters (such as Ǯ or ־); it is probably "
                 "GB18030/GBK text that happens to be valid UTF-8: give --encoding gbk, or --encoding utf-8 "
                 "if it really is UTF-8 (文件可能是 GBK 编码：请加 --encoding gbk)",
                 odd);
        return PS_EINVAL;
    }
    rc = from_gb18030(data, len, out, outlen, &bad_at);
    if (rc == PS_OK) {
        *used = PS_TEXTENC_GB18030;
        return PS_OK;
    }
    if (rc != PS_EINVAL)
        return rc;
    /* Neither: mostly UTF-8 with some bad cells, most likely; the rows with
     * them are refused one by one. */
    return copy_utf8(data, len, out, outlen);
}
