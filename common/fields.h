/* fields.h - the field dictionary: what each field of each kind is called,
 * what it holds, and how what a clerk types becomes its stored form.
 *
 * Owns: for every settable field of every record kind its English name, its
 * Chinese label, its type (date, ID number, enum, reference, ...), whether
 * it is required, a help text in both languages, the Chinese names of enum
 * values, and input normalisation: full-width digits and letters, the date
 * shapes Excel and people write, amounts in yuan, a lower-case x in an ID
 * number, an ID number Excel turned into a number.  record_fmt.c asks it for
 * every name and value it reads (so --set, CSV headers and JSON keys accept
 * the Chinese label too); the CLI asks it for `fields`, `template` and
 * Chinese headers; validation stays in validate.c.
 *
 * Pure functions over static tables; any thread may call them.
 */
#ifndef PS_FIELDS_H
#define PS_FIELDS_H

#include <stddef.h>

#include "records.pb-c.h"

/** Room a caller gives ps_field_normalize. */
#define PS_FIELD_NORM_MAX 256

typedef enum ps_ftype {
    PS_FT_TEXT,    /**< free text (name, address): kept as typed, but a name loses spaces at
                        its ends and between Chinese characters (ps_field_text_fold) */
    PS_FT_CODE,    /**< ASCII code (org unit, phone): full-width folded, spaces removed */
    PS_FT_DATE,    /**< YYYY-MM-DD; other common shapes accepted on input */
    PS_FT_PERIOD,  /**< YYYY-MM or YYYY */
    PS_FT_IDNUM,   /**< 18-character national ID number */
    PS_FT_ENUM,    /**< protobuf enum; English value or Chinese label */
    PS_FT_LIST,    /**< code from a fixed list (scheme, service); code or Chinese label */
    PS_FT_REF,     /**< record id (UUID) of another record */
    PS_FT_INT,     /**< whole number */
    PS_FT_FEN,     /**< money in fen (1/100 yuan) */
    PS_FT_YUAN,    /**< money in yuan with up to 2 decimals, stored into a _fen field */
    PS_FT_BOOL,    /**< true/false, 是/否 */
} ps_ftype_t;

typedef struct ps_field {
    const char *name;    /**< English name as in the CLI, CSV and JSON ("birth_date") */
    const char *zh;      /**< Chinese label ("出生日期") */
    ps_ftype_t type;
    int required;        /**< 1 when validation requires it */
    const char *help_zh; /**< one line: what to enter */
    const char *help_en;
    const char *stored;  /**< for PS_FT_YUAN: the field it sets ("amount_fen"); else NULL */
} ps_field_t;

/** The fields of kind in display order ("orgunit" first); *n gets the count.
 *  NULL and *n = 0 for an unknown kind. */
const ps_field_t *ps_fields_of(int kind, size_t *n);

/** The field of kind called name: its English name, its Chinese label, or
 *  the label with an ASCII/full-width "(…)" unit suffix ("金额(元)"), also
 *  with spaces or line breaks inside ("姓　名", a header spaced out to line
 *  up).  NULL when none matches. */
const ps_field_t *ps_field_find(int kind, const char *name);

/**
 * Normalises what was typed for field f into the text form record_fmt
 * parses.  Returns 0 with a NUL-terminated string in out (outlen should be
 * at least PS_FIELD_NORM_MAX), 1 when the input is to be used as it is, or
 * -1 with a reason in why (no value quoted) when the input cannot be a
 * value of the field at all (for example an ID number in scientific
 * notation).  Input it does not recognise is passed through unchanged, so
 * validation gives its own reason.
 */
int ps_field_normalize(const ps_field_t *f, const char *in, char *out, size_t outlen, const char **why);

/**
 * Free text as stored: without ASCII or ideographic (U+3000) spaces at its
 * ends; with name set, also without the spaces between two non-ASCII
 * characters ("张　三" -> "张三", "John Smith" kept), and with a dot typed
 * between two of them ("阿依古丽.买买提", "•", "・", "．") as the middle
 * dot "·" (U+00B7) the names of minority peoples take.  The person index
 * files and looks up names in this form, so a name stored with spaces by
 * an older version is still found.  0, or -1 when out is too small.
 */
int ps_field_text_fold(const char *in, int name, char *out, size_t outlen);

/** Chinese label of an enum value's text form for field f ("female" -> "女"),
 *  of a scheme or service code, or of a boolean; NULL when there is none. */
const char *ps_field_value_zh(const ps_field_t *f, const char *text);

/** Fills sex and birth_date of a person from its ID number when they are
 *  empty and the ID number is well formed (contradictions are validation's
 *  to report).  Other kinds are left alone. */
void ps_fields_complete(Popsync__Record *r);

/**
 * value (as read for field name of kind) as an error message may show it:
 * an ID number as its first 6 and last 4 characters (110105********002X),
 * a name, phone or address as its first character and "**", anything
 * longer than 40 bytes cut with "…"; other values (dates, codes, choices,
 * numbers, record ids) whole.  Writes into out; returns out.
 */
const char *ps_field_shown(int kind, const char *name, const char *value, char *out, size_t outlen);

/** The type's name for `popsync fields` ("date", "ID number", ...). */
const char *ps_ftype_name(ps_ftype_t t, int zh);

#endif
