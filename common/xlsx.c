/* xlsx.c - .xlsx out (libxlsxwriter) and in (libzip + libxml2); see xlsx.h. */
#include "xlsx.h"
#include "vec.h"

#include "err.h"
#include "recio.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xlsxwriter.h>
#include <zip.h>

#define XLSX_MAX_PART (256u << 20) /* the largest part (sheet XML) read: bounds a hostile file */
#define XLSX_MAX_COLS 512

/* ---- writing ---------------------------------------------------------------- */

struct ps_xlsx {
    lxw_workbook *wb;
    lxw_worksheet *ws;
    lxw_format *text;
    int failed;
};

int ps_xlsx_open(ps_xlsx_t **out, const char *path, const char *sheet)
{
    lxw_workbook_options opts = {.constant_memory = LXW_TRUE, .tmpdir = NULL};
    ps_xlsx_t *x = calloc(1, sizeof(*x));

    if (!x)
        return PS_ENOMEM;
    x->wb = workbook_new_opt(path, &opts);
    x->ws = x->wb ? workbook_add_worksheet(x->wb, sheet) : NULL;
    x->text = x->wb ? workbook_add_format(x->wb) : NULL;
    if (!x->ws || !x->text) {
        if (x->wb)
            workbook_close(x->wb);
        free(x);
        return PS_EIO;
    }
    /* "@": Text.  Excel then shows and keeps 110105199003071234 as typed. */
    format_set_num_format(x->text, "@");
    worksheet_set_column(x->ws, 0, XLSX_MAX_COLS - 1, 16, x->text);
    *out = x;
    return PS_OK;
}

int ps_xlsx_cell(ps_xlsx_t *x, unsigned row, unsigned col, const char *text)
{
    if (x->failed || col >= XLSX_MAX_COLS)
        return PS_EIO;
    if (*text && worksheet_write_string(x->ws, row, (lxw_col_t)col, text, x->text) != LXW_NO_ERROR)
        x->failed = 1;
    return x->failed ? PS_EIO : PS_OK;
}

int ps_xlsx_close(ps_xlsx_t *x)
{
    mode_t old = umask(077); /* the file is created by workbook_close */
    int bad = workbook_close(x->wb) != LXW_NO_ERROR || x->failed;

    umask(old);
    free(x);
    return bad ? PS_EIO : PS_OK;
}

/* ---- reading ---------------------------------------------------------------- */

int ps_xlsx_sniff(const void *data, size_t len)
{
    return len >= 4 && memcmp(data, "PK\x03\x04", 4) == 0;
}

/* A whole part of the archive, NUL-terminated; NULL when absent. */
static char *read_part(zip_t *z, const char *name, size_t *len)
{
    zip_stat_t st;
    zip_file_t *f;
    char *buf;

    if (zip_stat(z, name, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) || st.size > XLSX_MAX_PART)
        return NULL;
    if (!(buf = malloc((size_t)st.size + 1)) || !(f = zip_fopen(z, name, 0))) {
        free(buf);
        return NULL;
    }
    if (zip_fread(f, buf, st.size) != (zip_int64_t)st.size) {
        zip_fclose(f);
        free(buf);
        return NULL;
    }
    zip_fclose(f);
    buf[st.size] = '\0';
    *len = (size_t)st.size;
    return buf;
}

static xmlDocPtr parse_part(zip_t *z, const char *name)
{
    size_t len = 0;
    char *xml = read_part(z, name, &len);
    xmlDocPtr doc = xml ? xmlReadMemory(xml, (int)len, name, NULL, XML_PARSE_NONET | XML_PARSE_NOBLANKS) : NULL;

    free(xml);
    return doc;
}

static int is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

/* Appends the text of every <t> under n, leaving out phonetic runs <rPh>. */
static void text_of(const xmlNode *n, FILE *out)
{
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (is(c, "rPh"))
            continue;
        if (is(c, "t")) {
            xmlChar *s = xmlNodeGetContent(c);
            if (s)
                fputs((const char *)s, out);
            xmlFree(s);
        } else if (c->type == XML_ELEMENT_NODE) {
            text_of(c, out);
        }
    }
}

typedef struct {
    char **s;
    size_t n, cap;
} strs_t;

static void strs_free(strs_t *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->s[i]);
    free(v->s);
}

static int strs_push(strs_t *v, char *s)
{
    if (PS_VEC_ROOM(v->s, v->n, v->cap, 64)) {
        free(s);
        return PS_ENOMEM;
    }
    v->s[v->n++] = s;
    return PS_OK;
}

/* The text of n (see text_of) as a new string. */
static char *node_text(const xmlNode *n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    text_of(n, f);
    fclose(f);
    return buf;
}

static int shared_strings(zip_t *z, strs_t *out)
{
    xmlDocPtr doc = parse_part(z, "xl/sharedStrings.xml");
    int rc = PS_OK;

    if (!doc)
        return PS_OK; /* a workbook with no strings has no such part */
    for (xmlNode *si = xmlDocGetRootElement(doc)->children; si && rc == PS_OK; si = si->next) {
        char *s;
        if (!is(si, "si"))
            continue;
        rc = (s = node_text(si)) ? strs_push(out, s) : PS_ENOMEM;
    }
    xmlFreeDoc(doc);
    return rc;
}

/* "BC12" -> column 54 (from 0); -1 when there are no letters. */
static int col_of(const char *ref)
{
    int c = 0, any = 0;

    for (; *ref >= 'A' && *ref <= 'Z'; ref++, any = 1)
        c = c * 26 + (*ref - 'A' + 1);
    return any ? c - 1 : -1;
}

/* An Excel date serial (1900 system) as YYYY-MM-DD. */
static void serial_date(double v, char *out, size_t outlen)
{
    /* Days from 1970-01-01 to the serial's day; 25569 is 1970-01-01. */
    long z = (long)floor(v) - 25569 + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;

    snprintf(out, outlen, "%04ld-%02ld-%02ld", y + (m <= 2), m, d);
}

/* A number cell's text (see ps_xlsx_to_csv). */
static void number_text(const char *v, int is_date, char *out, size_t outlen)
{
    char *end;
    double d = strtod(v, &end);

    if (*end || !isfinite(d)) {
        snprintf(out, outlen, "%s", v);
    } else if (is_date && d >= 1 && d < 2958466) {
        serial_date(d, out, outlen);
    } else if (d == floor(d) && fabs(d) >= 1e15) {
        snprintf(out, outlen, "%.5E", d); /* what Excel shows: 1.10105E+17 */
    } else if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(out, outlen, "%.0f", d);
    } else {
        snprintf(out, outlen, "%.15g", d);
    }
}

typedef struct {
    const strs_t *shared;
    int (*date_col)(void *, const char *);
    void *arg;
    char *header[XLSX_MAX_COLS]; /* the header row's cells */
    int header_row;              /* 1 while the header row (or a title above it) is read */
    int ncols;                   /* cells of the first row */
    int titles;                  /* rows above the header skipped as its title (title_row) */
    char text[65536];            /* one cell's text */
} sheet_ctx_t;

/* The text of one <c> cell into out. */
static void cell_text(const sheet_ctx_t *sc, const xmlNode *c, int col, char *out, size_t outlen)
{
    xmlChar *t = xmlGetProp(c, (const xmlChar *)"t");
    char *v = NULL;

    out[0] = '\0';
    for (const xmlNode *k = c->children; k; k = k->next) {
        if (is(k, "v"))
            v = (char *)xmlNodeGetContent(k);
        else if (is(k, "is") && !v)
            v = node_text(k);
    }
    if (!v)
        goto done;
    if (t && strcmp((char *)t, "s") == 0) {
        unsigned long i = strtoul(v, NULL, 10);
        snprintf(out, outlen, "%s", i < sc->shared->n ? sc->shared->s[i] : "");
    } else if (t && strcmp((char *)t, "b") == 0) {
        snprintf(out, outlen, "%s", strcmp(v, "1") == 0 ? "true" : "false");
    } else if (t && (strcmp((char *)t, "str") == 0 || strcmp((char *)t, "inlineStr") == 0 ||
                     strcmp((char *)t, "e") == 0)) {
        snprintf(out, outlen, "%s", v);
    } else {
        int is_date = !sc->header_row && sc->date_col && col < XLSX_MAX_COLS && sc->header[col] &&
                      sc->date_col(sc->arg, sc->header[col]) == 1;
        number_text(v, is_date, out, outlen);
    }
done:
    if (v)
        xmlFree(v); /* node_text's malloc and libxml's xmlMalloc are both free() here */
    xmlFree(t);
}

/* One <row> as a CSV line. */
static void put_row(sheet_ctx_t *sc, const xmlNode *row, FILE *out)
{
    char *text = sc->text;
    int next = 0;

    for (const xmlNode *c = row->children; c; c = c->next) {
        xmlChar *r;
        int col;
        if (!is(c, "c"))
            continue;
        r = xmlGetProp(c, (const xmlChar *)"r");
        col = r ? col_of((const char *)r) : next;
        xmlFree(r);
        if (col < next || col >= XLSX_MAX_COLS)
            continue;
        for (; next < col; next++)
            ps_recio_csv_cell(out, "", next == 0);
        cell_text(sc, c, col, text, sizeof(sc->text));
        if (sc->header_row && !sc->header[col])
            sc->header[col] = strdup(text);
        ps_recio_csv_cell(out, text, col == 0);
        next = col + 1;
    }
    /* Excel (and libxlsxwriter) leave out a row's empty cells at its end:
     * the row still has the header's columns. */
    if (sc->header_row)
        sc->ncols = next;
    else
        for (; next > 0 && next < sc->ncols; next++)
            ps_recio_csv_cell(out, "", 0);
    fputs("\r\n", out);
}

/* Was the row just read as the header a title above it (the CSV reader's
 * rule, recio.h: at most two filled cells, none naming a column; at most 5
 * such rows)?  Then it is forgotten and the next row may be the header, so
 * a date column is known by the real header's name.  Only when date_col
 * tells column names apart (returns non-zero for any column). */
static int title_row(sheet_ctx_t *sc)
{
    int filled = 0, named = 0;

    if (!sc->date_col || sc->titles >= 5)
        return 0;
    for (int i = 0; i < XLSX_MAX_COLS && i < sc->ncols; i++) {
        if (!sc->header[i] || !sc->header[i][0])
            continue;
        filled++;
        named |= sc->date_col(sc->arg, sc->header[i]) != 0;
    }
    if (filled > 2 || named)
        return 0;
    for (int i = 0; i < XLSX_MAX_COLS; i++) {
        free(sc->header[i]);
        sc->header[i] = NULL;
    }
    sc->titles++;
    return 1;
}

/* The first worksheet's part name, for a workbook that does not list its
 * sheets. */
static int first_sheet(zip_t *z, char *name, size_t namelen)
{
    zip_int64_t n = zip_get_num_entries(z, 0);

    if (zip_name_locate(z, "xl/worksheets/sheet1.xml", 0) >= 0) {
        snprintf(name, namelen, "xl/worksheets/sheet1.xml");
        return 0;
    }
    for (zip_int64_t i = 0; i < n; i++) {
        const char *e = zip_get_name(z, (zip_uint64_t)i, 0);
        if (e && strncmp(e, "xl/worksheets/sheet", 19) == 0 && strstr(e, ".xml")) {
            snprintf(name, namelen, "%s", e);
            return 0;
        }
    }
    return -1;
}

static int sheet_csv(zip_t *z, sheet_ctx_t *sc, const char *part, FILE *out, char *err, size_t errlen)
{
    xmlDocPtr doc;
    xmlNode *root;

    if (!(doc = parse_part(z, part))) {
        snprintf(err, errlen, "no readable worksheet in the workbook");
        return PS_EINVAL;
    }
    root = xmlDocGetRootElement(doc);
    for (xmlNode *sd = root ? root->children : NULL; sd; sd = sd->next) {
        if (!is(sd, "sheetData"))
            continue;
        sc->header_row = 1;
        for (xmlNode *row = sd->children; row; row = row->next) {
            if (!is(row, "row"))
                continue;
            put_row(sc, row, out);
            if (sc->header_row && title_row(sc))
                continue;
            sc->header_row = 0;
        }
    }
    xmlFreeDoc(doc);
    return PS_OK;
}

/* ---- which sheet ------------------------------------------------------------ */

#define XLSX_MAX_SHEETS 64 /* sheets considered: bounds a hostile file */

typedef struct {
    char name[PS_XLSX_NAME];
    char part[256];
} sheet_t;

/* The part relationship id of xl/workbook.xml points at. */
static int rel_target(xmlDocPtr rels, const char *id, char *part, size_t partlen)
{
    xmlNode *root = rels ? xmlDocGetRootElement(rels) : NULL;

    for (xmlNode *r = root ? root->children : NULL; r; r = r->next) {
        xmlChar *rid, *target;
        int hit;
        if (!is(r, "Relationship"))
            continue;
        rid = xmlGetProp(r, (const xmlChar *)"Id");
        hit = rid && strcmp((const char *)rid, id) == 0;
        xmlFree(rid);
        if (!hit || !(target = xmlGetProp(r, (const xmlChar *)"Target")))
            continue;
        /* Relative to xl/, or absolute in the package. */
        snprintf(part, partlen, "%s%s", target[0] == '/' ? "" : "xl/", (const char *)target + (target[0] == '/'));
        xmlFree(target);
        return 0;
    }
    return -1;
}

/* The workbook's sheets in its order (the tabs Excel shows); 0 when none. */
static int list_sheets(zip_t *z, sheet_t *sheets, int max)
{
    xmlDocPtr wb = parse_part(z, "xl/workbook.xml"), rels = parse_part(z, "xl/_rels/workbook.xml.rels");
    xmlNode *root = wb ? xmlDocGetRootElement(wb) : NULL;
    int n = 0;

    for (xmlNode *ss = root ? root->children : NULL; ss; ss = ss->next) {
        for (xmlNode *s = is(ss, "sheets") ? ss->children : NULL; s && n < max; s = s->next) {
            xmlChar *name, *rid;
            if (!is(s, "sheet"))
                continue;
            name = xmlGetProp(s, (const xmlChar *)"name");
            rid = xmlGetProp(s, (const xmlChar *)"id"); /* r:id */
            snprintf(sheets[n].name, sizeof(sheets[n].name), "%s", name ? (const char *)name : "");
            if (!rid || rel_target(rels, (const char *)rid, sheets[n].part, sizeof(sheets[n].part)) != 0)
                snprintf(sheets[n].part, sizeof(sheets[n].part), "xl/worksheets/sheet%d.xml", n + 1);
            xmlFree(name);
            xmlFree(rid);
            n++;
        }
    }
    xmlFreeDoc(wb);
    xmlFreeDoc(rels);
    if (n == 0 && first_sheet(z, sheets[0].part, sizeof(sheets[0].part)) == 0) {
        snprintf(sheets[0].name, sizeof(sheets[0].name), "1");
        n = 1;
    } else if (n > 0 && zip_name_locate(z, sheets[0].part, 0) < 0) {
        first_sheet(z, sheets[0].part, sizeof(sheets[0].part));
    }
    return n;
}

/* The sheet called want, or numbered want from 1; -1 when none. */
static int find_sheet(const sheet_t *sheets, int n, const char *want)
{
    char *end;
    long num;

    for (int i = 0; i < n; i++)
        if (strcmp(sheets[i].name, want) == 0)
            return i;
    num = strtol(want, &end, 10);
    return *want && !*end && num >= 1 && num <= n ? (int)num - 1 : -1;
}

/* Appends "name" to a list of at most size bytes (a name that does not fit
 * is left out: the list says so with "..."). */
static void add_name(char *list, size_t size, const char *name)
{
    size_t used = strlen(list);

    if (used + strlen(name) + 8 < size)
        snprintf(list + used, size - used, "%s\"%s\"", used ? ", " : "", name);
    else if (used + 5 < size && (used < 3 || strcmp(list + used - 3, "...") != 0))
        snprintf(list + used, size - used, ", ...");
}

static void sc_reset(sheet_ctx_t *sc)
{
    for (int i = 0; i < XLSX_MAX_COLS; i++) {
        free(sc->header[i]);
        sc->header[i] = NULL;
    }
    sc->header_row = 0;
    sc->ncols = 0;
    sc->titles = 0;
}

/* Did the sheet just read have a header row: more of its cells name a
 * column than not?  (An instructions sheet's table of column names and
 * their meaning, 姓名 | 户口簿上的姓名, has not.) */
static int header_named(const sheet_ctx_t *sc)
{
    int filled = 0, named = 0;

    if (!sc->date_col || sc->header_row)
        return 0;
    for (int i = 0; i < XLSX_MAX_COLS && i < sc->ncols; i++) {
        if (!sc->header[i] || !sc->header[i][0])
            continue;
        filled++;
        named += sc->date_col(sc->arg, sc->header[i]) != 0;
    }
    return named * 2 > filled;
}

/* One sheet as a new CSV text; *has_header from header_named. */
static int sheet_text(zip_t *z, sheet_ctx_t *sc, const char *part, char **csv, size_t *csvlen, int *has_header,
                      char *err, size_t errlen)
{
    FILE *out = open_memstream(csv, csvlen);
    int rc;

    *has_header = 0;
    if (!out)
        return PS_ENOMEM;
    sc_reset(sc);
    rc = sheet_csv(z, sc, part, out, err, errlen);
    if (fclose(out) != 0 && !rc)
        rc = PS_ENOMEM;
    if (rc) {
        free(*csv);
        *csv = NULL;
    } else {
        *has_header = header_named(sc);
    }
    return rc;
}

/* The first sheet with a header row into *csv (sh->skipped the ones
 * before it); -1 when none has, *csv then NULL. */
static int first_with_header(zip_t *z, sheet_ctx_t *sc, const sheet_t *sheets, int n, ps_xlsx_sheets_t *sh,
                             char **csv, size_t *csvlen, int *pick)
{
    char why[128];
    int has;

    for (int i = 0; i < n; i++) {
        int rc = sheet_text(z, sc, sheets[i].part, csv, csvlen, &has, why, sizeof(why));
        if (rc == PS_ENOMEM)
            return rc;
        if (has) {
            *pick = i;
            return PS_OK;
        }
        free(*csv);
        *csv = NULL;
        add_name(sh->skipped, sizeof(sh->skipped), sheets[i].name);
    }
    *pick = -1;
    return PS_OK;
}

/* The later sheets that have a header row too into sh->others: rows the
 * clerk may expect imported, which were not. */
static int other_headers(zip_t *z, sheet_ctx_t *sc, const sheet_t *sheets, int n, int pick, ps_xlsx_sheets_t *sh)
{
    char why[128];

    for (int i = pick + 1; i < n; i++) {
        char *csv = NULL;
        size_t len = 0;
        int has, rc = sheet_text(z, sc, sheets[i].part, &csv, &len, &has, why, sizeof(why));
        free(csv);
        if (rc == PS_ENOMEM)
            return rc;
        if (has)
            add_name(sh->others, sizeof(sh->others), sheets[i].name);
    }
    return PS_OK;
}

/* The sheet ps_xlsx_to_csv reads, as CSV text into *csv. */
static int pick_sheet(zip_t *z, sheet_ctx_t *sc, ps_xlsx_sheets_t *sh, char **csv, size_t *csvlen, char *err,
                      size_t errlen)
{
    sheet_t *sheets = calloc(XLSX_MAX_SHEETS, sizeof(*sheets));
    char names[160] = "";
    int n, pick = 0, has, rc = PS_OK;

    if (!sheets)
        return PS_ENOMEM;
    if ((n = list_sheets(z, sheets, XLSX_MAX_SHEETS)) == 0) {
        snprintf(err, errlen, "no readable worksheet in the workbook");
        rc = PS_EINVAL;
    } else if (sh && sh->want && (pick = find_sheet(sheets, n, sh->want)) < 0) {
        for (int i = 0; i < n; i++)
            add_name(names, sizeof(names), sheets[i].name);
        snprintf(err, errlen, "no sheet \"%.*s\" in this workbook: give --sheet one of %s", PS_XLSX_NAME, sh->want,
                 names);
        rc = PS_EINVAL;
    } else if (sh && !sh->want && (rc = first_with_header(z, sc, sheets, n, sh, csv, csvlen, &pick)) == PS_OK &&
               pick < 0) {
        sh->no_header = 1;
        sh->skipped[0] = '\0';
        pick = 0;
    }
    if (rc == PS_OK && !*csv)
        rc = sheet_text(z, sc, sheets[pick].part, csv, csvlen, &has, err, errlen);
    if (rc == PS_OK && sh) {
        snprintf(sh->read, sizeof(sh->read), "%s", sheets[pick].name);
        sh->index = pick + 1;
        sh->count = n;
        if (!sh->want && !sh->no_header) {
            char *keep = *csv;
            *csv = NULL;
            rc = other_headers(z, sc, sheets, n, pick, sh);
            *csv = keep;
        }
    }
    free(sheets);
    return rc;
}

int ps_xlsx_to_csv(const void *data, size_t len, int (*date_col)(void *arg, const char *header), void *arg,
                   ps_xlsx_sheets_t *sh, char **csv, size_t *csvlen, char *err, size_t errlen)
{
    zip_error_t zerr;
    zip_source_t *src;
    zip_t *z = NULL;
    strs_t shared = {NULL, 0, 0};
    sheet_ctx_t *sc = calloc(1, sizeof(*sc));
    int rc;

    if (!sc)
        return PS_ENOMEM;
    *csv = NULL;
    *csvlen = 0;
    zip_error_init(&zerr);
    if (!(src = zip_source_buffer_create(data, len, 0, &zerr)) || !(z = zip_open_from_source(src, ZIP_RDONLY, &zerr))) {
        if (src)
            zip_source_free(src);
        snprintf(err, errlen, "not an .xlsx workbook (%s)", zip_error_strerror(&zerr));
        zip_error_fini(&zerr);
        free(sc);
        return PS_EINVAL;
    }
    zip_error_fini(&zerr);
    sc->shared = &shared;
    sc->date_col = date_col;
    sc->arg = arg;
    if ((rc = shared_strings(z, &shared)) == PS_OK)
        rc = pick_sheet(z, sc, sh, csv, csvlen, err, errlen);
    if (rc) {
        free(*csv);
        *csv = NULL;
    }
    sc_reset(sc);
    free(sc);
    strs_free(&shared);
    zip_discard(z);
    return rc;
}
