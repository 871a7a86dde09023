/* textenc.h - which encoding a clerk's file is in, and UTF-8 from it.
 *
 * Owns: telling UTF-8 (with or without BOM) from GB18030/GBK, the encodings
 * Chinese Excel and WPS save "CSV" in, by validity and plausibility, and the
 * conversion to UTF-8 with glibc's iconv.  Used by `popsync import` before
 * the CSV/JSON readers (which take UTF-8 only).  Pure functions; any thread.
 */
#ifndef PS_TEXTENC_H
#define PS_TEXTENC_H

#include <stddef.h>

typedef enum ps_textenc {
    PS_TEXTENC_UTF8 = 1,
    PS_TEXTENC_GB18030 = 2, /**< GB18030, a superset of GBK and GB2312 */
    PS_TEXTENC_UTF16 = 3,   /**< UTF-16 with a BOM: Excel's "Unicode text" (Unicode 文本) */
} ps_textenc_t;

/** PS_TEXTENC_* from "utf-8", "utf8", "gbk", "gb2312", "gb18030" (any
 *  case); -1 when unknown. */
int ps_textenc_from_name(const char *name);
/** "UTF-8", "GB18030 (GBK)" or "UTF-16 (Unicode text)". */
const char *ps_textenc_name(ps_textenc_t enc);

/**
 * Converts data[0..len) to UTF-8.  force is 0 to detect, else the
 * encoding to read it as.  On success *out is a NUL-terminated UTF-8 copy
 * without a BOM (caller frees), *outlen its length and *used the encoding
 * read.  A BOM, or force UTF-8, means UTF-8, passed on as it is (bad bytes
 * are the readers' per-row errors); a UTF-16 BOM (FF FE or FE FF) means
 * UTF-16, converted (Excel's "Unicode text" save; its cells are separated
 * by tabs, which the CSV reader tells).  Detection: valid UTF-8 is UTF-8 unless
 * it reads as characters nobody types in a Chinese office while the same
 * bytes are valid GB18030 (then PS_EINVAL, why saying to give --encoding);
 * otherwise valid GB18030 is GB18030, and anything else is passed on as
 * UTF-8.  PS_OK, PS_EINVAL (why set) or PS_ENOMEM.
 */
int ps_textenc_to_utf8(const char *data, size_t len, int force, char **out, size_t *outlen, ps_textenc_t *used,
                       char *why, size_t whylen);

#endif
