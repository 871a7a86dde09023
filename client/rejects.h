/* rejects.h - what `popsync import` tells the clerk about rows it refused.
 *
 * Owns: one error line per refused field on stderr (line, field, the value
 * as read with ID numbers and names masked, the reason, in the clerk's
 * language) and the rejected-rows file: for a CSV import FILE.rejected.csv,
 * the refused rows as they were read plus 行号/line and 错误原因/reason
 * columns (import skips those two, so the fixed file imports as it is); for
 * a JSON import FILE.rejected.jsonl, one {"line","reason","record"} object
 * per refused element.  Called by cmd_io.c only (the web interface's
 * import goes through cmd_io.c's ps_import_file).
 */
#ifndef PS_REJECTS_H
#define PS_REJECTS_H

#include "recio.h"

typedef struct ps_rejects ps_rejects_t;

/**
 * Starts reporting the import of file (kind, format, Chinese when zh).
 * With write_file the refused rows go to the rejected-rows file (created
 * with mode 0600 on the first refused row; an old one is removed at once so
 * it never describes another run).  PS_OK or PS_ENOMEM.
 */
int ps_rejects_begin(ps_rejects_t **out, const char *file, int kind, int format, int zh, int write_file);

/**
 * Reports one refused row: errs, with values taken from rec (when the row
 * was read into a record) or else from the row's cells.  row may be NULL
 * (nothing to copy into the file but the line and reason).  PS_OK or
 * PS_EIO (the rejected-rows file could not be written).
 */
int ps_rejects_add(ps_rejects_t *rj, const ps_recio_row_t *row, const Popsync__Record *rec, unsigned long line,
                   const ps_verrs_t *errs);

/** The error lines go into arr ({line, field, label, reason, value} each,
 *  values masked as on stderr) instead of stderr.  arr is borrowed. */
struct json_t;
void ps_rejects_collect(ps_rejects_t *rj, struct json_t *arr);
/** Finishes the file (fsync, close).  PS_OK or PS_EIO. */
int ps_rejects_finish(ps_rejects_t *rj);
/** Rows written to the rejected-rows file so far. */
unsigned long ps_rejects_written(const ps_rejects_t *rj);
/** The rejected-rows file's name (whether or not written). */
const char *ps_rejects_path(const ps_rejects_t *rj);
/** Frees rj (closing the file if still open); NULL is fine. */
void ps_rejects_free(ps_rejects_t *rj);

#endif
