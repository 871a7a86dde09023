/* recio.c - record files: CSV (libcsv) and JSON (jansson) readers and writers.
 *
 * Owns: turning file bytes into records row by row with per-row errors, and
 * records into CSV or JSON that reads back to the same records.  Field text
 * forms are record_fmt's; this file only knows the file layouts (see
 * recio.h).
 */
#include "recio.h"
#include "xlsx.h"
#include "fields.h"
#include "err.h"
#include "ids.h"
#include "record_fmt.h"

#include <csv.h>
#include <jansson.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Envelope keys of a JSON record that belong to the cache that stored it;
 * an import makes its own, so they are read and dropped.  (synthetic: only
 * `popsync generate` marks records; an import is never synthetic.) */
static const char *const cache_keys[] = {"deleted", "rev", "created_ms", "updated_ms", "changed_by", "synthetic"};

#define MAX_CELL_TEXT (64u << 20) /* a cell larger than this is not a record field */

static int is_cache_key(const char *k)
{
    for (size_t i = 0; i < sizeof(cache_keys) / sizeof(cache_keys[0]); i++)
        if (strcmp(k, cache_keys[i]) == 0)
            return 1;
    return 0;
}

/* The static name of a settable column for kind ("orgunit" or a body field
 * with a text form), or NULL. */
static const char *settable_name(int kind, const char *name)
{
    const char *names[64];
    size_t n = ps_record_field_names(kind, names, 64);
    const ps_field_t *df = ps_field_find(kind, name);

    /* The dictionary's English name: record_fmt maps it (and "amount" in
     * yuan) to the stored field. */
    if (df)
        return df->name;
    if (strcmp(name, "orgunit") == 0)
        return "orgunit";
    for (size_t i = 0; i < n && i < 64; i++)
        if (strcmp(names[i], name) == 0)
            return names[i];
    return NULL;
}

/* Does the column or key called name (a settable name, or NULL) set field? */
static int column_sets(int kind, const char *name, const char *field)
{
    const ps_field_t *df;

    if (!name)
        return 0;
    if (strcmp(name, field) == 0)
        return 1;
    df = ps_field_find(kind, name);
    return df && df->stored && strcmp(df->stored, field) == 0;
}

int ps_recio_row_has(const ps_recio_row_t *row, int kind, const char *field)
{
    const char *key;
    json_t *val;

    if (row->json && json_is_object(row->json)) {
        json_object_foreach ((json_t *)row->json, key, val)
            if (column_sets(kind, settable_name(kind, key), field))
                return 1;
        return 0;
    }
    if (row->cols && row->ncells > 0) {
        for (size_t i = 0; i < row->ncells; i++)
            if (column_sets(kind, row->cols[i], field))
                return 1;
        return 0;
    }
    return 1;
}

/* record_fmt's messages quote the offending value, which may be a name or an
 * ID number: reduce one to a reason without it.  "field 'sex': invalid value
 * 'x' (expected ...)" -> "invalid value (expected ...)"; "field 'n': 'abc'
 * is not a valid ..." -> "value is not a valid ...". */
static void clean_reason(char *out, size_t outlen, const char *msg, const char *field, const char *value)
{
    size_t flen = strlen(field), vlen = strlen(value);
    char *s = NULL, *pat = NULL, *q;
    const char *p = msg;

    if (strncmp(p, "field '", 7) == 0 && strncmp(p + 7, field, flen) == 0 && strncmp(p + 7 + flen, "': ", 3) == 0)
        p += 7 + flen + 3;
    /* Room for "value" replacing a quoted value shorter than it ('' is 2
     * bytes, 'x' 3): the text may grow by up to 3 bytes. */
    s = malloc(strlen(p) + 4);
    if (s)
        memcpy(s, p, strlen(p) + 1);
    pat = malloc(vlen + 3);
    if (!s || !pat) {
        snprintf(out, outlen, "invalid value");
        goto out;
    }
    if (vlen > 0) {
        pat[0] = '\'';
        memcpy(pat + 1, value, vlen);
        memcpy(pat + 1 + vlen, "'", 2);
        q = strstr(s, pat);
        if (q) {
            if (q - s >= 6 && strncmp(q - 6, "value ", 6) == 0)
                memmove(q - 1, q + vlen + 2, strlen(q + vlen + 2) + 1);
            else {
                memmove(q + 5, q + vlen + 2, strlen(q + vlen + 2) + 1);
                memcpy(q, "value", 5);
            }
        }
    }
    /* Whatever the message looked like, it must not carry the value.  Very
     * short values are no one's name and would match ordinary words. */
    if (vlen >= 3 && strstr(s, value))
        snprintf(out, outlen, "invalid value");
    else
        snprintf(out, outlen, "%s", s);
out:
    free(s);
    free(pat);
}

/* jansson's messages end in "near '<token>'", a piece of the input. */
static void json_reason(char *out, size_t outlen, const char *text)
{
    const char *near = strstr(text, " near ");
    int n = near ? (int)(near - text) : (int)strlen(text);
    snprintf(out, outlen, "%.*s", n, text);
}

/* Sets r's id from text; PS_OK, PS_EINVAL or PS_ENOMEM. */
static int set_id(Popsync__Record *r, const char *text)
{
    uint8_t id[PS_ID_LEN];

    if (ps_uuid_parse(text, id) != PS_OK)
        return PS_EINVAL;
    free(r->id.data);
    r->id.data = malloc(PS_ID_LEN);
    if (!r->id.data) {
        r->id.len = 0;
        return PS_ENOMEM;
    }
    memcpy(r->id.data, id, PS_ID_LEN);
    r->id.len = PS_ID_LEN;
    return PS_OK;
}

/* Hands a finished row to the callback; a row with errors loses its record. */
static int deliver(ps_recio_row_t *row, ps_recio_row_fn fn, void *arg)
{
    if (row->errs.n > 0 && row->rec) {
        ps_record_free(row->rec);
        row->rec = NULL;
    }
    return fn(row, arg);
}

/* ---- format names and files ------------------------------------------------ */

int ps_recio_format_from_name(const char *name)
{
    if (!name)
        return -1;
    if (strcasecmp(name, "csv") == 0)
        return PS_RECIO_CSV;
    if (strcasecmp(name, "json") == 0 || strcasecmp(name, "jsonl") == 0)
        return PS_RECIO_JSON;
    if (strcasecmp(name, "xlsx") == 0)
        return PS_RECIO_XLSX;
    return -1;
}

int ps_recio_format_from_path(const char *path)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    const char *slash = path ? strrchr(path, '/') : NULL;

    if (!dot || (slash && slash > dot))
        return -1;
    /* Excel saves "Unicode text" and "text (tab-separated)" as .txt. */
    if (strcasecmp(dot + 1, "txt") == 0 || strcasecmp(dot + 1, "tsv") == 0)
        return PS_RECIO_CSV;
    return ps_recio_format_from_name(dot + 1);
}

int ps_recio_load_file(const char *path, char **data, size_t *len)
{
    FILE *f;
    char *buf = NULL, *nb;
    size_t n = 0, cap = 0, got;
    int rc = PS_OK;

    *data = NULL;
    *len = 0;
    f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? PS_ENOTFOUND : PS_EIO;
    /* Read in growing blocks rather than trusting a size: pipes have none. */
    for (;;) {
        if (cap - n < 2) {
            size_t ncap = cap ? cap * 2 : (size_t)1 << 16;
            if (cap > SIZE_MAX / 2) {
                rc = PS_ETOOBIG;
                goto out;
            }
            nb = realloc(buf, ncap);
            if (!nb) {
                rc = PS_ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        rc = PS_EIO;
        goto out;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

static size_t skip_bom(const char *data, size_t len)
{
    return len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

/* ---- CSV reader ------------------------------------------------------------ */

typedef struct csv_rd {
    int kind;
    ps_recio_row_fn fn;
    void *arg;
    /* cells of the row being parsed: NUL-terminated, at offs[i] in buf */
    char *buf;
    size_t blen, bcap;
    size_t *offs, *lens;
    size_t nf, capf;
    /* header: column i sets field cols[i] (static strings; "id" for the id) */
    const char **cols;
    size_t ncols;
    char **hdr;              /* the header's cells as read, for rejected-row files */
    const char **cellp;      /* the current row's cells (pointers into buf), ncols of them */
    int have_header;
    unsigned long titles;    /* rows above the header skipped as a sheet's title */
    unsigned long row_start; /* physical line the current row began on */
    int expect_start;        /* the next non-blank line begins a row */
    char *err;               /* scratch for record_fmt messages */
    size_t errcap;
    int rc;                  /* non-zero: stop, and return this */
} csv_rd_t;

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    size_t ncap = *cap ? *cap : 16;
    void *np;

    if (need <= *cap)
        return PS_OK;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return PS_ENOMEM;
        ncap *= 2;
    }
    np = realloc(*p, ncap * elem);
    if (!np)
        return PS_ENOMEM;
    *p = np;
    *cap = ncap;
    return PS_OK;
}

/* Copies a cell, turning each CRLF into LF: spreadsheets (Excel) write a
 * line break inside a quoted cell as CRLF (RFC 4180 allows it), but a record
 * stores line breaks as LF and validation refuses a CR as a control
 * character.  A lone CR is copied as it is.  Returns the copied length. */
static size_t copy_cell(char *dst, const char *src, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r' && i + 1 < len && src[i + 1] == '\n')
            continue;
        dst[n++] = src[i];
    }
    return n;
}

static void csv_field_cb(void *s, size_t len, void *data)
{
    csv_rd_t *st = data;
    size_t capl = st->capf;

    if (st->rc)
        return;
    /* offs and lens grow together; capf is the capacity of both. */
    if (grow((void **)&st->lens, &capl, st->nf + 1, sizeof(size_t)) ||
        grow((void **)&st->offs, &st->capf, st->nf + 1, sizeof(size_t)) ||
        grow((void **)&st->buf, &st->bcap, st->blen + len + 1, 1)) {
        st->rc = PS_ENOMEM;
        return;
    }
    len = copy_cell(st->buf + st->blen, s, len);
    st->buf[st->blen + len] = '\0';
    st->offs[st->nf] = st->blen;
    st->lens[st->nf] = len;
    st->nf++;
    st->blen += len + 1;
}

static const char *cell(const csv_rd_t *st, size_t i)
{
    return st->buf + st->offs[i];
}

static int cell_has_nul(const csv_rd_t *st, size_t i)
{
    return strlen(cell(st, i)) != st->lens[i];
}

/* An unknown column, with the columns the kind has. */
static void unknown_column(ps_verrs_t *errs, int kind, const char *name)
{
    char list[sizeof(errs->e[0].reason)];
    size_t n, used = 0;
    const ps_field_t *fs = ps_fields_of(kind, &n);

    list[0] = '\0';
    for (size_t i = 0; i < n && used + 1 < sizeof(list); i++) {
        int k = snprintf(list + used, sizeof(list) - used, "%s%s", i ? "," : "", fs[i].name);
        if (k < 0)
            break;
        used += (size_t)k;
    }
    ps_verrs_add(errs, name, "unknown column for kind %s; columns: %s", ps_kind_name(kind),
                 list);
}

/* The columns a rejected-rows file adds: read past, never stored. */
static const char SKIP_COLUMN[] = "";

int ps_recio_note_column(const char *name)
{
    return strcmp(name, PS_RECIO_LINE_EN) == 0 || strcmp(name, PS_RECIO_LINE_ZH) == 0 ||
           strcmp(name, PS_RECIO_REASON_EN) == 0 || strcmp(name, PS_RECIO_REASON_ZH) == 0;
}

/* Is cell i empty once ASCII and ideographic (U+3000) spaces are ignored? */
static int cell_blank(const csv_rd_t *st, size_t i)
{
    const char *s = cell(st, i), *e = s + st->lens[i];

    while (s < e) {
        if (*s == ' ' || *s == '\t')
            s++;
        else if (e - s >= 3 && memcmp(s, "\xE3\x80\x80", 3) == 0)
            s += 3;
        else
            return 0;
    }
    return 1;
}

/* A row whose cells are all blank: what Excel writes for the formatted but
 * empty rows below a table (",,,,").  Skipped like a blank line. */
static int row_blank(const csv_rd_t *st)
{
    for (size_t i = 0; i < st->nf; i++)
        if (!cell_blank(st, i))
            return 0;
    return 1;
}

/* Does any cell of the current row name a column of the kind? */
static int names_a_column(const csv_rd_t *st)
{
    for (size_t i = 0; i < st->nf; i++) {
        const char *name = cell(st, i);
        if (!cell_has_nul(st, i) && ps_utf8_valid(name, st->lens[i]) &&
            (strcmp(name, "id") == 0 || strcmp(name, PS_RECIO_ID_ZH) == 0 || ps_recio_note_column(name) ||
             settable_name(st->kind, name)))
            return 1;
    }
    return 0;
}

/* A sheet's title above its header ("某某镇人口登记表" in a merged cell,
 * "填报单位：…  填报日期：…"): at most two filled cells, none of them a
 * column name.  A row of three or more unknown names is a header with
 * typos, and is reported as one. */
#define MAX_TITLE_ROWS 5
static int title_row(const csv_rd_t *st)
{
    size_t filled = 0;

    for (size_t i = 0; i < st->nf; i++)
        filled += !cell_blank(st, i);
    return st->titles < MAX_TITLE_ROWS && filled <= 2 && !names_a_column(st);
}

static void csv_header(csv_rd_t *st)
{
    ps_recio_row_t row;
    int rc;

    memset(&row, 0, sizeof(row));
    row.line = st->row_start;
    row.file_error = 1;
    st->cols = calloc(st->nf, sizeof(*st->cols));
    if (!st->cols) {
        st->rc = PS_ENOMEM;
        return;
    }
    st->ncols = st->nf;
    st->hdr = calloc(st->nf, sizeof(*st->hdr));
    st->cellp = calloc(st->nf, sizeof(*st->cellp));
    if (!st->hdr || !st->cellp) {
        st->rc = PS_ENOMEM;
        return;
    }
    for (size_t i = 0; i < st->nf; i++) {
        const char *name = cell(st, i);
        if (!(st->hdr[i] = strdup(name))) {
            st->rc = PS_ENOMEM;
            return;
        }
        if (cell_has_nul(st, i) || !ps_utf8_valid(name, st->lens[i])) {
            ps_verrs_add(&row.errs, PS_RECIO_FILE_FIELD, "a column name is not valid UTF-8: column %zu", i + 1);
            continue;
        }
        if (!*name) {
            ps_verrs_add(&row.errs, PS_RECIO_FILE_FIELD, "a column has no name (an empty header cell): column %zu", i + 1);
            continue;
        }
        if (ps_recio_note_column(name)) {
            st->cols[i] = SKIP_COLUMN;
            continue;
        }
        st->cols[i] = strcmp(name, "id") == 0 || strcmp(name, PS_RECIO_ID_ZH) == 0 ? "id"
                                                                              : settable_name(st->kind, name);
        if (!st->cols[i]) {
            unknown_column(&row.errs, st->kind, name);
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (st->cols[j] == st->cols[i])
                ps_verrs_add(&row.errs, name, "column appears more than once");
    }
    st->have_header = 1;
    if (row.errs.n == 0)
        return;
    rc = st->fn(&row, st->arg);
    st->rc = rc ? rc : PS_EINVAL;
}

/* Sets one cell on r, adding its error to errs.  PS_OK or PS_ENOMEM. */
static int csv_cell_set(csv_rd_t *st, size_t i, Popsync__Record *r, ps_verrs_t *errs)
{
    const char *col = st->cols[i], *val = cell(st, i);
    int rc;

    if (st->lens[i] == 0 || col == SKIP_COLUMN)
        return PS_OK;
    if (cell_has_nul(st, i)) {
        ps_verrs_add(errs, col, "value contains a NUL character");
        return PS_OK;
    }
    if (strcmp(col, "id") == 0) {
        rc = set_id(r, val);
        if (rc == PS_EINVAL)
            ps_verrs_add(errs, "id", "not a valid record id (UUID)");
        return rc == PS_ENOMEM ? rc : PS_OK;
    }
    if (grow((void **)&st->err, &st->errcap, st->lens[i] + 512, 1))
        return PS_ENOMEM;
    rc = ps_record_set(r, col, val, st->err, st->errcap);
    if (rc == PS_EINVAL) {
        char reason[sizeof(errs->e[0].reason)];
        clean_reason(reason, sizeof(reason), st->err, col, val);
        ps_verrs_add(errs, col, "%s", reason);
        rc = PS_OK;
    }
    return rc;
}

static void csv_data_row(csv_rd_t *st)
{
    ps_recio_row_t row;
    int rc;

    memset(&row, 0, sizeof(row));
    row.line = st->row_start;
    row.titles = st->titles;
    /* A row short of cells at its end has those cells empty (a workbook
     * leaves out the empty cells after a row's last value, and a CSV typed
     * by hand may too); empty cells past the header's last column (stray
     * formatting) are nothing.  A value past it is the row's error. */
    while (st->nf < st->ncols && !st->rc)
        csv_field_cb(NULL, 0, st);
    if (st->rc)
        return;
    while (st->nf > st->ncols && cell_blank(st, st->nf - 1))
        st->nf--;
    if (st->nf != st->ncols) {
        ps_verrs_add(&row.errs, PS_RECIO_ROW_FIELD, "has %zu cells, the header has %zu", st->nf, st->ncols);
    } else {
        for (size_t i = 0; i < st->nf; i++)
            st->cellp[i] = cell(st, i);
        row.cells = st->cellp;
        row.header = (const char *const *)st->hdr;
        row.ncells = st->nf;
        row.cols = st->cols;
        if ((rc = ps_record_new(&row.rec, st->kind))) {
            st->rc = rc;
            return;
        }
        for (size_t i = 0; i < st->nf; i++) {
            if ((rc = csv_cell_set(st, i, row.rec, &row.errs))) {
                ps_record_free(row.rec);
                st->rc = rc;
                return;
            }
        }
    }
    st->rc = deliver(&row, st->fn, st->arg);
}

#define NO_HEADER "no header row naming the columns (姓名,身份证号,...): popsync template KIND makes one"
static int csv_file_error(csv_rd_t *st, unsigned long line, const char *reason);

static void csv_row_cb(int c, void *data)
{
    csv_rd_t *st = data;

    (void)c;
    if (!st->rc && !row_blank(st)) {
        if (!st->have_header && title_row(st))
            st->titles++;
        else if (!st->have_header && st->titles > 0 && !names_a_column(st))
            /* Rows were skipped as titles and this one names no column
             * either: a header with typos up there, and this is likely a
             * record, whose cells must not be quoted as column names. */
            st->rc = csv_file_error(st, st->row_start, NO_HEADER);
        else if (!st->have_header)
            csv_header(st);
        else
            csv_data_row(st);
    }
    st->nf = 0;
    st->blen = 0;
    st->expect_start = 1;
}

/* A line libcsv skips whole: only spaces, tabs and its line break. */
static int blank_line(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return 0;
    return 1;
}

/* Length of the physical line at p: up to and including LF, CRLF or a lone CR. */
static size_t line_len(const char *p, size_t n, int *ended)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            *ended = 1;
            return i + 1;
        }
        if (p[i] == '\r') {
            *ended = 1;
            return i + 1 < n && p[i + 1] == '\n' ? i + 2 : i + 1;
        }
    }
    *ended = 0;
    return n;
}

static int csv_file_error(csv_rd_t *st, unsigned long line, const char *reason)
{
    ps_recio_row_t row;
    int rc;

    memset(&row, 0, sizeof(row));
    row.line = line;
    row.file_error = 1;
    ps_verrs_add(&row.errs, PS_RECIO_FILE_FIELD, "%s", reason);
    rc = st->fn(&row, st->arg);
    return rc ? rc : PS_EINVAL;
}

/* The cell separator: a comma, unless the first lines hold more tabs
 * (Excel's "Unicode text" save, text copied out of a sheet) or semicolons
 * (a "CSV" saved where the decimal mark is a comma) than commas. */
static unsigned char delimiter(const char *data, size_t len, size_t pos)
{
    size_t commas = 0, tabs = 0, semis = 0;
    int lines = 0;

    for (; pos < len && lines < 6; pos++) {
        char c = data[pos];
        commas += c == ',';
        tabs += c == '\t';
        semis += c == ';';
        lines += c == '\n';
    }
    if (tabs > commas && tabs >= semis)
        return '\t';
    return semis > commas ? ';' : ',';
}

/* Row ends and syntax errors of the pre-pass (check_syntax). */
typedef struct csv_chk {
    int expect_start;
    unsigned long row_start;
} csv_chk_t;

static void chk_row_cb(int c, void *data)
{
    (void)c;
    ((csv_chk_t *)data)->expect_start = 1;
}

/* The whole file's CSV syntax, before any row is handed over: a malformed
 * line halfway down must not leave the rows above it stored and those
 * below it in neither the cache nor the rejected-rows file (the clerk,
 * told to fix that file, would lose them).  PS_OK, PS_EINVAL with *line
 * set and *why the reason, or PS_ENOMEM. */
static int check_syntax(const char *data, size_t len, size_t pos, unsigned char delim, unsigned long *line,
                        const char **why)
{
    struct csv_parser parser;
    csv_chk_t ck = {1, 1};
    unsigned long l = 1;
    int rc = PS_OK;

    if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI) != 0)
        return PS_ENOMEM;
    csv_set_delim(&parser, delim);
    while (pos < len && rc == PS_OK) {
        int ended;
        size_t n = line_len(data + pos, len - pos, &ended);
        if (ck.expect_start && !blank_line(data + pos, n)) {
            ck.row_start = l;
            ck.expect_start = 0;
        }
        if (csv_parse(&parser, data + pos, n, NULL, chk_row_cb, &ck) != n) {
            rc = csv_error(&parser) == CSV_EPARSE ? PS_EINVAL : PS_ENOMEM;
            *line = l;
            *why = "malformed CSV: a quote inside an unquoted field, or text after a closing quote";
        }
        pos += n;
        if (ended)
            l++;
    }
    if (rc == PS_OK && csv_fini(&parser, NULL, chk_row_cb, &ck) != 0) {
        rc = csv_error(&parser) == CSV_EPARSE ? PS_EINVAL : PS_ENOMEM;
        *line = ck.row_start;
        *why = "malformed CSV: a quoted field is not closed";
    }
    csv_free(&parser);
    return rc;
}

/* Cells written ="0123" (Excel's formula for text: systems that export
 * for Excel write ID numbers so, to keep them from becoming numbers): the
 * text they stand for is the quoted cell "0123", which a strict CSV reader
 * otherwise refuses as a quote inside an unquoted cell.  A copy of the
 * text without the '=' of each such cell outside quotes (caller frees), or
 * NULL when there is none (or no memory: read as it is). */
static char *excel_text_cells(const char *data, size_t len, size_t pos, unsigned char delim, size_t *outlen)
{
    size_t n = 0, o = 0;
    int in_q = 0, pass;
    char *out = NULL;

    for (pass = 0; pass < 2; pass++) {
        in_q = 0;
        for (size_t i = 0; i < len; i++) {
            char c = data[i];
            int start = i >= pos && !in_q && c == '=' && i + 1 < len && data[i + 1] == '"' &&
                        (i == pos || (unsigned char)data[i - 1] == delim || data[i - 1] == '\n' || data[i - 1] == '\r');
            if (c == '"' && i >= pos)
                in_q = !in_q;
            if (pass == 0)
                n += (size_t)start;
            else if (!start)
                out[o++] = c;
        }
        if (pass == 0 && (n == 0 || !(out = malloc(len - n + 1))))
            return NULL;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

static int read_csv_delim(const char *data, size_t len, size_t pos, unsigned char delim, int kind, ps_recio_row_fn fn,
                          void *arg);

int ps_recio_read_csv(const char *data, size_t len, int kind, ps_recio_row_fn fn, void *arg)
{
    size_t pos = skip_bom(data, len);
    unsigned char delim;
    char *copy;
    size_t clen = 0;
    int rc;

    if (!ps_kind_name(kind) || !fn)
        return PS_EINVAL;
    delim = delimiter(data, len, pos);
    copy = excel_text_cells(data, len, pos, delim, &clen);
    rc = copy ? read_csv_delim(copy, clen, pos, delim, kind, fn, arg)
              : read_csv_delim(data, len, pos, delim, kind, fn, arg);
    free(copy);
    return rc;
}

static int read_csv_delim(const char *data, size_t len, size_t pos, unsigned char delim, int kind, ps_recio_row_fn fn,
                          void *arg)
{
    struct csv_parser parser;
    csv_rd_t st;
    unsigned long line = 1;
    int rc;

    memset(&st, 0, sizeof(st));
    st.kind = kind;
    st.fn = fn;
    st.arg = arg;
    st.expect_start = 1;
    {
        const char *why = NULL;
        rc = check_syntax(data, len, pos, delim, &line, &why);
        if (rc == PS_EINVAL)
            return csv_file_error(&st, line, why);
        if (rc)
            return rc;
        line = 1;
    }
    if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0)
        return PS_ENOMEM;
    csv_set_delim(&parser, delim);
    /* libcsv reports no positions, so it is fed one physical line at a
     * time: a row always ends at the end of some line, and the first
     * non-blank line after a row's end is where the next one starts. */
    while (pos < len && !st.rc) {
        int ended;
        size_t n = line_len(data + pos, len - pos, &ended);
        if (st.expect_start && !blank_line(data + pos, n)) {
            st.row_start = line;
            st.expect_start = 0;
        }
        if (csv_parse(&parser, data + pos, n, csv_field_cb, csv_row_cb, &st) != n && !st.rc) {
            if (csv_error(&parser) == CSV_EPARSE)
                st.rc = csv_file_error(&st, line, "malformed CSV: a quote inside an unquoted field, "
                                                  "or text after a closing quote");
            else
                st.rc = PS_ENOMEM;
        }
        pos += n;
        if (ended)
            line++;
    }
    if (!st.rc && csv_fini(&parser, csv_field_cb, csv_row_cb, &st) != 0 && !st.rc)
        st.rc = csv_error(&parser) == CSV_EPARSE
                    ? csv_file_error(&st, st.row_start, "malformed CSV: a quoted field is not closed")
                    : PS_ENOMEM;
    if (!st.rc && !st.have_header)
        st.rc = csv_file_error(&st, line, NO_HEADER);
    rc = st.rc;
    csv_free(&parser);
    free(st.buf);
    free(st.offs);
    free(st.lens);
    free(st.cols);
    for (size_t i = 0; st.hdr && i < st.ncols; i++)
        free(st.hdr[i]);
    free(st.hdr);
    free(st.cellp);
    free(st.err);
    return rc;
}

/* ---- JSON reader ----------------------------------------------------------- */

/* The text form record_fmt saw for a JSON value, to strip it from messages. */
static void json_value_text(const json_t *v, char *out, size_t outlen)
{
    out[0] = '\0';
    if (json_is_string(v))
        snprintf(out, outlen, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, outlen, "%.17g", json_real_value(v));
}

/* Sets one key of an element on r, adding its error to errs.  PS_OK or PS_ENOMEM. */
static int json_key_set(int kind, Popsync__Record *r, const char *key, json_t *v, ps_verrs_t *errs)
{
    json_t *one = NULL;
    char *err = NULL, *vtext = NULL;
    size_t vlen;
    int rc = PS_OK;

    if (strcmp(key, "id") == 0) {
        if (json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
            return PS_OK;
        rc = json_is_string(v) ? set_id(r, json_string_value(v)) : PS_EINVAL;
        if (rc == PS_EINVAL)
            ps_verrs_add(errs, "id", "not a valid record id (UUID)");
        return rc == PS_ENOMEM ? rc : PS_OK;
    }
    if (strcmp(key, "kind") == 0) {
        const char *k = json_is_string(v) ? json_string_value(v) : NULL;
        if (!json_is_null(v) && !(k && (!*k || strcmp(k, ps_kind_name(kind)) == 0)))
            ps_verrs_add(errs, "kind", "not the kind being read (%s)", ps_kind_name(kind));
        return PS_OK;
    }
    if (is_cache_key(key))
        return PS_OK;
    if (!settable_name(kind, key)) {
        ps_verrs_add(errs, key, "unknown field for kind %s", ps_kind_name(kind));
        return PS_OK;
    }
    /* One key at a time, so every bad key of the element is reported. */
    vlen = json_is_string(v) ? json_string_length(v) : 0;
    one = json_object();
    err = malloc(vlen + 512);
    vtext = malloc(vlen + 64);
    if (!one || !err || !vtext || json_object_set(one, key, v)) {
        rc = PS_ENOMEM;
        goto out;
    }
    rc = ps_record_from_json(r, one, err, vlen + 512);
    if (rc == PS_EINVAL) {
        char reason[sizeof(errs->e[0].reason)];
        json_value_text(v, vtext, vlen + 64);
        clean_reason(reason, sizeof(reason), err, key, vtext);
        ps_verrs_add(errs, key, "%s", reason);
        rc = PS_OK;
    }
out:
    json_decref(one);
    free(err);
    free(vtext);
    return rc;
}

/* Builds and delivers the row for one element or line. */
static int json_row(int kind, json_t *v, unsigned long line, ps_recio_row_fn fn, void *arg)
{
    ps_recio_row_t row;
    const char *key;
    json_t *val;
    int rc;

    memset(&row, 0, sizeof(row));
    row.line = line;
    row.json = v;
    if (!json_is_object(v)) {
        ps_verrs_add(&row.errs, PS_RECIO_ROW_FIELD, "not a JSON object");
        return deliver(&row, fn, arg);
    }
    if ((rc = ps_record_new(&row.rec, kind)))
        return rc;
    json_object_foreach (v, key, val) {
        if ((rc = json_key_set(kind, row.rec, key, val, &row.errs))) {
            ps_record_free(row.rec);
            return rc;
        }
    }
    return deliver(&row, fn, arg);
}

static int json_file_error(unsigned long line, ps_recio_row_fn fn, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int json_file_error(unsigned long line, ps_recio_row_fn fn, void *arg, const char *fmt, ...)
{
    ps_recio_row_t row;
    char reason[sizeof(row.errs.e[0].reason)];
    va_list ap;
    int rc;

    memset(&row, 0, sizeof(row));
    row.line = line;
    row.file_error = 1;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    ps_verrs_add(&row.errs, PS_RECIO_FILE_FIELD, "%s", reason);
    rc = fn(&row, arg);
    return rc ? rc : PS_EINVAL;
}

static size_t skip_ws(const char *data, size_t len, size_t pos)
{
    while (pos < len && (data[pos] == ' ' || data[pos] == '\t' || data[pos] == '\r' || data[pos] == '\n'))
        pos++;
    return pos;
}

static unsigned long line_at(const char *data, size_t pos)
{
    unsigned long line = 1;
    for (size_t i = 0; i < pos; i++)
        line += data[i] == '\n';
    return line;
}

/* An array is read one element at a time: jansson parses each element and
 * says how many bytes it took (JSON_DISABLE_EOF_CHECK), so the array as a
 * whole is never in memory as JSON values. */
static int read_json_array(const char *data, size_t len, size_t pos, int kind, ps_recio_row_fn fn, void *arg)
{
    unsigned long idx = 0;
    int rc;

    pos = skip_ws(data, len, pos + 1);
    if (pos < len && data[pos] == ']')
        goto end;
    for (;;) {
        json_error_t je;
        json_t *v;
        char reason[128];

        idx++;
        v = json_loadb(data + pos, len - pos, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        if (!v) {
            json_reason(reason, sizeof(reason), je.text);
            return json_file_error(idx, fn, arg, "malformed JSON at line %lu of the file: %s",
                                   line_at(data, pos) + (unsigned long)(je.line > 0 ? je.line - 1 : 0), reason);
        }
        pos += (size_t)je.position;
        rc = json_row(kind, v, idx, fn, arg);
        json_decref(v);
        if (rc)
            return rc;
        pos = skip_ws(data, len, pos);
        if (pos < len && data[pos] == ',') {
            pos = skip_ws(data, len, pos + 1);
            continue;
        }
        if (pos < len && data[pos] == ']')
            break;
        return json_file_error(idx, fn, arg, "malformed JSON at line %lu of the file: ',' or ']' expected",
                               line_at(data, pos));
    }
end:
    pos = skip_ws(data, len, pos + 1);
    if (pos < len)
        return json_file_error(idx, fn, arg, "malformed JSON at line %lu of the file: data after the array",
                               line_at(data, pos));
    return PS_OK;
}

static int read_json_lines(const char *data, size_t len, size_t pos, int kind, ps_recio_row_fn fn, void *arg)
{
    unsigned long line = 1;
    int rc;

    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;
        if (!blank_line(data + pos, n)) {
            json_error_t je;
            json_t *v = json_loadb(data + pos, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
            if (v) {
                rc = json_row(kind, v, line, fn, arg);
                json_decref(v);
            } else {
                ps_recio_row_t row;
                char reason[128];
                memset(&row, 0, sizeof(row));
                row.line = line;
                json_reason(reason, sizeof(reason), je.text);
                ps_verrs_add(&row.errs, PS_RECIO_ROW_FIELD, "not valid JSON: %s", reason);
                rc = deliver(&row, fn, arg);
            }
            if (rc)
                return rc;
        }
        pos += n + (nl ? 1 : 0);
        line++;
    }
    return PS_OK;
}

int ps_recio_read_json(const char *data, size_t len, int kind, ps_recio_row_fn fn, void *arg)
{
    size_t pos;

    if (!ps_kind_name(kind) || !fn)
        return PS_EINVAL;
    pos = skip_ws(data, len, skip_bom(data, len));
    if (pos < len && data[pos] == '[')
        return read_json_array(data, len, pos, kind, fn, arg);
    return read_json_lines(data, len, skip_bom(data, len), kind, fn, arg);
}

/* The column called header of the kind at arg: 1 a date field, 2 another
 * column, 0 none (ps_xlsx_to_csv). */
static int date_column(void *arg, const char *header)
{
    int kind = *(const int *)arg;
    const ps_field_t *f = ps_field_find(kind, header);

    if (f && f->type == PS_FT_DATE)
        return 1;
    return f || settable_name(kind, header) || strcmp(header, "id") == 0 || strcmp(header, PS_RECIO_ID_ZH) == 0 ||
                   ps_recio_note_column(header)
               ? 2
               : 0;
}

/* The workbook's sheet (sh, see ps_xlsx_to_csv) through the CSV reader:
 * one path for both. */
int ps_recio_read_xlsx(const char *data, size_t len, int kind, ps_xlsx_sheets_t *sh, ps_recio_row_fn fn, void *arg)
{
    char *csv = NULL, why[256];
    size_t n = 0;
    int rc = ps_xlsx_to_csv(data, len, date_column, &kind, sh, &csv, &n, why, sizeof(why));

    if (rc == PS_EINVAL) {
        ps_recio_row_t row;
        memset(&row, 0, sizeof(row));
        row.line = 1;
        row.file_error = 1;
        ps_verrs_add(&row.errs, PS_RECIO_FILE_FIELD, "%s", why);
        rc = fn(&row, arg);
        return rc ? rc : PS_EINVAL;
    }
    if (rc == PS_OK)
        rc = ps_recio_read_csv(csv, n, kind, fn, arg);
    free(csv);
    return rc;
}

int ps_recio_read(int format, const char *data, size_t len, int kind, ps_recio_row_fn fn, void *arg)
{
    if (format == PS_RECIO_CSV)
        return ps_recio_read_csv(data, len, kind, fn, arg);
    if (format == PS_RECIO_JSON)
        return ps_recio_read_json(data, len, kind, fn, arg);
    if (format == PS_RECIO_XLSX) {
        ps_xlsx_sheets_t sh;
        memset(&sh, 0, sizeof(sh));
        return ps_recio_read_xlsx(data, len, kind, &sh, fn, arg);
    }
    return PS_EINVAL;
}

/* ---- writers --------------------------------------------------------------- */

/* libcsv trims spaces and tabs around unquoted fields, so those must be
 * quoted too for a value to read back as itself. */
static int csv_needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')
        return 1;
    return strpbrk(s, ",\"\r\n") != NULL;
}

void ps_recio_csv_cell(FILE *f, const char *s, int first)
{
    size_t n = strlen(s);

    if (!first)
        fputc(',', f);
    if (csv_needs_quotes(s, n))
        csv_fwrite(f, s, n);
    else
        fwrite(s, 1, n, f);
}

/* One cell of a CSV or XLSX table row (col from 0). */
static void put_cell(ps_recio_writer_t *w, size_t col, const char *text)
{
    if (w->format != PS_RECIO_XLSX)
        ps_recio_csv_cell(w->f, text, col == 0);
    else if (ps_xlsx_cell(w->x, w->row, (unsigned)col, text) != PS_OK)
        w->failed = 1;
}

static void end_row(ps_recio_writer_t *w)
{
    if (w->format == PS_RECIO_XLSX)
        w->row++;
    else
        fputs("\r\n", w->f);
}

/* The table's header: id, orgunit and the body fields (Chinese labels with
 * PS_RECIO_ZH). */
static int put_header(ps_recio_writer_t *w)
{
    w->nnames = ps_record_field_names(w->kind, NULL, 0);
    w->names = calloc(w->nnames ? w->nnames : 1, sizeof(*w->names));
    w->cellcap = 4096;
    w->cell = malloc(w->cellcap);
    if (!w->names || !w->cell)
        return PS_ENOMEM;
    ps_record_field_names(w->kind, w->names, w->nnames);
    if (w->format == PS_RECIO_CSV && (w->flags & PS_RECIO_BOM))
        fputs("\xEF\xBB\xBF", w->f);
    put_cell(w, 0, w->flags & PS_RECIO_ZH ? PS_RECIO_ID_ZH : "id");
    for (size_t i = 0; i < w->nnames + 1; i++) {
        const char *name = i == 0 ? "orgunit" : w->names[i - 1];
        const ps_field_t *df = w->flags & PS_RECIO_ZH ? ps_field_find(w->kind, name) : NULL;
        put_cell(w, i + 1, df ? df->zh : name);
    }
    end_row(w);
    return w->failed || (w->f && ferror(w->f)) ? PS_EIO : PS_OK;
}

int ps_recio_writer_begin(ps_recio_writer_t *w, FILE *f, int format, int kind, unsigned flags)
{
    memset(w, 0, sizeof(*w));
    if (!ps_kind_name(kind) || (format != PS_RECIO_CSV && format != PS_RECIO_JSON))
        return PS_EINVAL;
    w->f = f;
    w->format = format;
    w->kind = kind;
    w->flags = flags;
    if (format == PS_RECIO_JSON) {
        fputc('[', f);
        return ferror(f) ? PS_EIO : PS_OK;
    }
    return put_header(w);
}

int ps_recio_writer_begin_xlsx(ps_recio_writer_t *w, const char *path, int kind, unsigned flags)
{
    int rc;

    memset(w, 0, sizeof(*w));
    if (!ps_kind_name(kind))
        return PS_EINVAL;
    w->format = PS_RECIO_XLSX;
    w->kind = kind;
    w->flags = flags;
    if ((rc = ps_xlsx_open(&w->x, path, ps_kind_name(kind))))
        return rc;
    return put_header(w);
}

/* The text of one field into w->cell, growing it as needed. */
static int cell_text(ps_recio_writer_t *w, const Popsync__Record *r, const char *field)
{
    int rc;

    while ((rc = ps_record_get_text(r, field, w->cell, w->cellcap)) == PS_ETOOBIG) {
        char *nc;
        if (w->cellcap >= MAX_CELL_TEXT)
            return PS_ETOOBIG;
        nc = realloc(w->cell, w->cellcap * 2);
        if (!nc)
            return PS_ENOMEM;
        w->cell = nc;
        w->cellcap *= 2;
    }
    return rc;
}

/* One record as a row of the CSV or XLSX table. */
static int put_row(ps_recio_writer_t *w, const Popsync__Record *r)
{
    int rc;

    for (size_t i = 0; i < w->nnames + 2; i++) {
        const char *field = i == 0 ? "id" : i == 1 ? "orgunit" : w->names[i - 2];
        const char *zh = NULL;
        if ((rc = cell_text(w, r, field)))
            return rc;
        if (w->flags & PS_RECIO_ZH)
            zh = ps_field_value_zh(ps_field_find(w->kind, field), w->cell);
        put_cell(w, i, zh ? zh : w->cell);
    }
    end_row(w);
    return w->failed ? PS_EIO : PS_OK;
}

/* Writes the object indented by one level, as an element of the array. */
static int put_json(ps_recio_writer_t *w, const Popsync__Record *r)
{
    json_t *o = ps_record_to_json(r);
    char *s = NULL;
    int rc = PS_ENOMEM;

    if (!o)
        goto out;
    for (size_t i = 0; i < sizeof(cache_keys) / sizeof(cache_keys[0]); i++)
        json_object_del(o, cache_keys[i]);
    s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s)
        goto out;
    fputs(w->n ? ",\n  " : "\n  ", w->f);
    for (const char *p = s; *p; p++) {
        fputc(*p, w->f);
        if (*p == '\n')
            fputs("  ", w->f);
    }
    rc = PS_OK;
out:
    free(s);
    json_decref(o);
    return rc;
}

int ps_recio_writer_put(ps_recio_writer_t *w, const Popsync__Record *r)
{
    int rc;

    if (!r || (int)r->kind != w->kind)
        return PS_EINVAL;
    rc = w->format == PS_RECIO_JSON ? put_json(w, r) : put_row(w, r);
    if (rc)
        return rc;
    w->n++;
    return w->f && ferror(w->f) ? PS_EIO : PS_OK;
}

int ps_recio_writer_end(ps_recio_writer_t *w)
{
    int rc = PS_OK;

    if (w->f && w->format == PS_RECIO_JSON)
        fputs(w->n ? "\n]\n" : "]\n", w->f);
    if (w->f && (fflush(w->f) != 0 || ferror(w->f)))
        rc = PS_EIO;
    if (w->x && ps_xlsx_close(w->x) != PS_OK)
        rc = PS_EIO;
    w->x = NULL;
    free(w->names);
    free(w->cell);
    w->names = NULL;
    w->cell = NULL;
    return rc;
}
