/* xlsx.h - Excel workbooks in and out, so a clerk never converts files.
 *
 * Owns: writing a one-sheet .xlsx of text cells (libxlsxwriter; every cell
 * has the Text format "@", so Excel keeps an 18-digit ID number as typed)
 * and reading one sheet of an .xlsx (libzip + libxml2) as CSV text for
 * the CSV reader of recio.c.  Used by recio.c (export/import of records) and
 * the report exports.  No other module includes the libraries' headers.
 */
#ifndef PS_XLSX_H
#define PS_XLSX_H

#include <stddef.h>

typedef struct ps_xlsx ps_xlsx_t;

/** Starts a workbook at path with one sheet called sheet.  Nothing is
 *  written to path before ps_xlsx_close.  PS_OK, PS_ENOMEM or PS_EIO. */
int ps_xlsx_open(ps_xlsx_t **out, const char *path, const char *sheet);
/** Sets cell (row, col), both from 0, to text.  PS_OK or PS_EIO. */
int ps_xlsx_cell(ps_xlsx_t *x, unsigned row, unsigned col, const char *text);
/** Writes the file, readable by its owner only (mode 0600: it holds
 *  personal data), and frees x.  PS_OK or PS_EIO. */
int ps_xlsx_close(ps_xlsx_t *x);

/** Which sheet of a workbook to read, and which one was read. */
#define PS_XLSX_NAME 128
#define PS_XLSX_LIST 1024
typedef struct ps_xlsx_sheets {
    const char *want;            /**< in: a sheet's name, or its number from 1 (a name wins); NULL:
                                      the first sheet that has a header row */
    char read[PS_XLSX_NAME];     /**< out: the name of the sheet read */
    int index, count;            /**< out: its number from 1; the workbook's sheets */
    int no_header;               /**< out: no sheet has a header row: the first one was read */
    char skipped[PS_XLSX_LIST];  /**< out: sheets before it passed over, no header row ("a", "b") */
    char others[PS_XLSX_LIST];   /**< out: sheets after it that have a header row too, not read */
} ps_xlsx_sheets_t;

/**
 * One worksheet of the .xlsx in data[0..len) as CSV text (header row
 * first, CRLF, RFC 4180 quoting; *csv NUL-terminated, caller frees).  Cells
 * are read as Excel shows them: shared and inline strings as they are;
 * numbers as their shortest decimal form, except that a whole number of 16
 * or more digits (an ID number Excel took for a number and rounded) is
 * written in Excel's scientific form, so the field dictionary explains it,
 * and a number in a column whose header date_col() says is a date (returns
 * 1) is taken as an Excel date serial (days since 1899-12-30) and written
 * YYYY-MM-DD.  date_col() returns 2 for a column that is no date and 0 for
 * a name that is no column: rows above the header with at most two filled
 * cells none of which is a column (a sheet's title) are not taken for the
 * header (up to 5; they are still written, for the CSV reader to skip).
 * With date_col NULL the first row is the header.
 * The sheet: sh NULL, the first one; else sh->want, or (want NULL) the first
 * in the workbook's order whose header row (after its title rows) has more
 * cells naming a column than not (a sheet of instructions, 填表说明, has
 * none), or the first when none has; sh says which.  The sheets are those
 * xl/workbook.xml lists, found through its relationships (a workbook without
 * them: xl/worksheets/sheetN.xml for the Nth).
 * PS_OK, PS_EINVAL (err says why: not an xlsx, no sheet, no sheet called
 * sh->want (with the names), bad XML) or PS_ENOMEM.
 */
int ps_xlsx_to_csv(const void *data, size_t len, int (*date_col)(void *arg, const char *header), void *arg,
                   ps_xlsx_sheets_t *sh, char **csv, size_t *csvlen, char *err, size_t errlen);

/** 1 when data starts like a zip archive (an .xlsx). */
int ps_xlsx_sniff(const void *data, size_t len);

#endif
