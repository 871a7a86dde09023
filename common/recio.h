/* recio.h - record files: CSV and JSON readers and writers.
 *
 * Owns: the file forms of records that `popsync import` reads and
 * `popsync export` writes.  No cache and no CLI here, so the unit tests
 * drive it directly.  Field text comes from record_fmt (the same names and
 * text forms as `--set`); CSV is parsed by libcsv and JSON by jansson.
 *
 * CSV: a header row naming the columns (`id`, `orgunit` and the body field
 * names of the kind, any order, any subset), then one record per row.
 * UTF-8 with or without a BOM; CRLF, LF or CR line ends; quoted fields may
 * hold commas, doubled quotes and line breaks (a CRLF inside a quoted field,
 * as Excel writes it, is read as LF); blank lines and rows of empty cells
 * are skipped, and so are up to 5 title rows above the header (at most two
 * filled cells, none naming a column); the CSV syntax of the whole file is
 * checked before the first row is handed over.  A
 * row's line is the physical line it starts on (1-based, line breaks inside
 * quoted fields counted).
 *
 * JSON: one array of objects (as `popsync list --format json` prints), or
 * JSON Lines (one object per line).  A row's line is the element's 1-based
 * index in an array, or its line number in JSON Lines.  Keys are
 * `orgunit` and the body field names; `id` (a UUID) is kept; `kind` must
 * name the kind being read when given; `rev`, `deleted`, `created_ms`,
 * `updated_ms` and `changed_by` are accepted and ignored, because they
 * belong to the cache that stores the record.
 *
 * Readers stream: each row's record is built, handed to the callback and
 * forgotten, so memory does not grow with the number of rows (the file's
 * bytes are in memory).  Error reasons never quote a cell's value: they may
 * be names or ID numbers.
 */
#ifndef PS_RECIO_H
#define PS_RECIO_H

#include <stddef.h>
#include <stdio.h>

#include "records.pb-c.h"
#include "validate.h"

#define PS_RECIO_CSV 1
#define PS_RECIO_JSON 2
#define PS_RECIO_XLSX 3 /**< Excel workbook: one sheet read as CSV (xlsx.h) */

/** Writer flag: start a CSV file with a UTF-8 byte order mark (some
 *  spreadsheet programs need it to read UTF-8). */
#define PS_RECIO_BOM 0x1u
/** Writer flag: CSV header as Chinese labels and enum, scheme, service and
 *  yes/no values in Chinese (fields.h); the readers take both forms back. */
#define PS_RECIO_ZH 0x2u
/** The id column's Chinese header. */
#define PS_RECIO_ID_ZH "记录ID"
/** Columns of a rejected-rows file (client/rejects.h) that the CSV reader
 *  reads past, so a fixed file imports as it is. */
#define PS_RECIO_LINE_EN "line"
#define PS_RECIO_LINE_ZH "行号"
#define PS_RECIO_REASON_EN "reason"
#define PS_RECIO_REASON_ZH "错误原因"
/** 1 when name is one of those columns. */
int ps_recio_note_column(const char *name);
/** Writes one CSV cell (RFC 4180, quoted only when it must be), preceded by
 *  a comma unless first. */
void ps_recio_csv_cell(FILE *f, const char *s, int first);

/** Field name used in errors about a whole row and about the whole file. */
#define PS_RECIO_ROW_FIELD "(row)"
#define PS_RECIO_FILE_FIELD "(file)"

/** One row as a reader hands it over. */
typedef struct ps_recio_row {
    unsigned long line;   /**< see the header comment; for a file error, where it was found */
    Popsync__Record *rec; /**< the record when errs.n == 0, else NULL; the callback owns it */
    ps_verrs_t errs;      /**< why the row (or the file) could not be read */
    int file_error;       /**< 1: errs are about the whole file and reading stops */
    unsigned long titles; /**< CSV: rows above the header skipped as the sheet's title */
    /* The row as read, for a file of rejected rows; borrowed, valid only
     * during the callback.  CSV rows with as many cells as the header: */
    const char *const *cells;  /**< the cells, NUL-terminated */
    const char *const *header; /**< the header's cells as read */
    size_t ncells;             /**< cells (and header) count; 0 when not given */
    const struct json_t *json; /**< JSON: the element */
    const char *const *cols;   /**< CSV: the field each of the ncells columns sets (internal:
                                    ask ps_recio_row_has) */
} ps_recio_row_t;

/**
 * 1 when the row's file has a column (CSV, XLSX) or its element a key (JSON)
 * for field: "orgunit" or a body field name as ps_record_field_names gives
 * it (a yuan column counts for the _fen field it sets).  An import that
 * updates a record sets only these (docs/data-model.md §8.3); 1 when the
 * row does not say (no header or element).
 */
int ps_recio_row_has(const ps_recio_row_t *row, int kind, const char *field);

/**
 * Called once per data row, or once with file_error set.  Returns 0 to go
 * on; any other value stops the reader, which returns it (use a PS_E code).
 */
typedef int (*ps_recio_row_fn)(ps_recio_row_t *row, void *arg);

/** PS_RECIO_CSV or PS_RECIO_JSON from "csv", "json" or "jsonl"; -1 when unknown. */
int ps_recio_format_from_name(const char *name);
/** The format a file name's extension (.csv, .json, .jsonl, .xlsx; .txt and .tsv, Excel's text
 *  saves, are read as CSV; any case) implies; -1 when none. */
int ps_recio_format_from_path(const char *path);

/**
 * Reads a whole file into *data (NUL-terminated, caller frees) and its
 * length into *len.  PS_OK, PS_ENOTFOUND, PS_EIO or PS_ENOMEM.
 */
int ps_recio_load_file(const char *path, char **data, size_t *len);

/**
 * Reads records of kind from CSV or JSON bytes, calling fn per row.
 * Returns PS_OK when the whole input was read (bad rows included: they went
 * to fn), PS_EINVAL when a file error stopped it (unknown or duplicate
 * columns, malformed CSV or JSON syntax; reported to fn first: for CSV
 * before any row, for a JSON array after the elements before it),
 * PS_ENOMEM, or what fn returned to stop it.
 */
int ps_recio_read_csv(const char *data, size_t len, int kind, ps_recio_row_fn fn, void *arg);
int ps_recio_read_json(const char *data, size_t len, int kind, ps_recio_row_fn fn, void *arg);
/** An .xlsx workbook's sheet (sh->want, or the first with a header row;
 *  sh says which was read: xlsx.h ps_xlsx_sheets_t) as ps_recio_read_csv.
 *  A sheet that is not there is a file error naming the sheets. */
struct ps_xlsx_sheets;
int ps_recio_read_xlsx(const char *data, size_t len, int kind, struct ps_xlsx_sheets *sh, ps_recio_row_fn fn,
                       void *arg);
/** Any of the above by format (an .xlsx: its first sheet with a header row). */
int ps_recio_read(int format, const char *data, size_t len, int kind, ps_recio_row_fn fn, void *arg);

/**
 * Streaming writer.  CSV: header `id,orgunit,<body fields of kind>`, CRLF
 * line ends (RFC 4180), a field quoted only when it must be.  JSON: an array
 * of objects in the layout of json_dumpf(JSON_INDENT(2)|JSON_PRESERVE_ORDER),
 * ending with a newline; each object is ps_record_to_json without the
 * cache's bookkeeping (deleted, rev, created_ms, updated_ms, changed_by),
 * so that export -> import -> export gives the same bytes.
 */
typedef struct ps_recio_writer {
    FILE *f;
    int format;
    int kind;
    unsigned flags;
    size_t n;            /**< records written */
    const char **names;  /**< CSV: body field names of kind */
    size_t nnames;
    char *cell;          /**< CSV: scratch for one cell's text */
    size_t cellcap;
    struct ps_xlsx *x;   /**< XLSX: the workbook being made */
    unsigned row;        /**< XLSX: the next row */
    int failed;          /**< XLSX: a cell could not be written */
} ps_recio_writer_t;

/** Writes the start (CSV: BOM if asked, header).  PS_OK, PS_EINVAL or PS_EIO. */
int ps_recio_writer_begin(ps_recio_writer_t *w, FILE *f, int format, int kind, unsigned flags);
/** As ps_recio_writer_begin for an .xlsx workbook at path (same columns as
 *  CSV, every cell text): written, mode 0600, by ps_recio_writer_end. */
int ps_recio_writer_begin_xlsx(ps_recio_writer_t *w, const char *path, int kind, unsigned flags);
/** Writes one record (of the writer's kind).  PS_OK, PS_EINVAL, PS_EIO or PS_ENOMEM. */
int ps_recio_writer_put(ps_recio_writer_t *w, const Popsync__Record *r);
/** Writes the end and releases the writer's memory (always, even on error).
 *  Does not close f.  PS_OK or PS_EIO (any write error since begin). */
int ps_recio_writer_end(ps_recio_writer_t *w);

#endif
