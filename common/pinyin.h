/* pinyin.h - the pinyin initials of a Chinese name (张三 -> "zs").
 *
 * Owns: a name's initials from the customary Mandarin reading of each
 * character (Unihan kMandarin, built into a table: common/pinyin_table.h),
 * and, for a family name whose reading as a name differs (单 is shan, 曾
 * zeng, 解 xie), a second spelling with that reading.  Used by the client's
 * person index (client/cache_pindex.c) so that `popsync find zs` finds
 * 张三, as phone contact lists do.  Pure; any thread.
 */
#ifndef PS_PINYIN_H
#define PS_PINYIN_H

#include <stddef.h>

/**
 * Writes the lower-case initials of name into out (ASCII letters are kept,
 * lower-cased; spaces and the middle dot of names like 阿依古丽·买买提 are
 * skipped).  surname: 1 to read the first character as a family name (its
 * surname reading where it has one), 0 for its customary reading.  Returns
 * how many initials, or -1 when a character has no reading (not Chinese, a
 * rare character outside the table) or out is too small.
 */
int ps_pinyin_initials(const char *name, int surname, char *out, size_t outlen);

#endif
