/* pinyin_table.h - the generated table of pinyin initials (pinyin.c only).
 *
 * The table is written at build time by scripts/gen_pinyin.py from the
 * Unicode Character Database's Unihan kMandarin readings, installed by
 * Debian's unicode-data package: one ASCII letter per code point of CJK
 * Extension A and the Unified Ideographs, 0 where Unihan has no reading.
 */
#ifndef PS_PINYIN_TABLE_H
#define PS_PINYIN_TABLE_H

#define PS_PINYIN_FIRST 0x3400
#define PS_PINYIN_LAST 0x9FFF

extern const char ps_pinyin_table[PS_PINYIN_LAST - PS_PINYIN_FIRST + 1];

#endif
