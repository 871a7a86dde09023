/* cmd_io.c - import and export: records between files and the local cache.
 *
 * Owns: the `import` and `export` subcommands.  File formats are recio's;
 * this file adds what needs the cache: ids and default org unit, updates of
 * records the cache already holds, validation against the cache's view,
 * batched writes to the outbox, and exports of the live records.
 *
 * An import is not all-or-nothing: each good row lands and each bad row is
 * reported (`FILE:LINE: FIELD: REASON`) and skipped, so a clerk can fix the
 * bad rows and import just those again.  Good rows go to the outbox in
 * batches, one transaction each, so a crash mid-import leaves whole batches.
 */
#include "cli.h"
#include "late.h"
#include "cache.h"
#include "err.h"
#include "orgunit.h"
#include "policy.h"
#include "ids.h"
#include "recio.h"
#include "crypto.h"
#include "dupcheck.h"
#include "xrules.h"
#include "rejects.h"
#include "textenc.h"
#include "fields.h"
#include "record_fmt.h"
#include "report.h"
#include "scope.h"
#include "validate.h"
#include "vctx.h"

#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rows per outbox transaction: big enough to amortise the commit's fsync,
 * small enough that a batch's records stay a few megabytes. */
#define IMPORT_BATCH 2000

/* ---- ID numbers seen in this import ----------------------------------------- */

/* Open-addressing set of 16-byte keys: the hashed ID numbers of the rows
 * this import accepted.  (The record ids it accepted live in the
 * validation context, vctx.h, where later rows' references find them.) */
typedef struct idset {
    uint8_t (*keys)[PS_ID_LEN];
    unsigned char *used;
    size_t cap, n; /* cap is a power of two */
} idset_t;

static int idset_has(const idset_t *s, const uint8_t id[PS_ID_LEN])
{
    if (s->cap == 0)
        return 0;
    for (size_t i = ps_id_hash(id) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->used[i])
            return 0;
        if (memcmp(s->keys[i], id, PS_ID_LEN) == 0)
            return 1;
    }
}

static void idset_insert(idset_t *s, const uint8_t id[PS_ID_LEN])
{
    size_t i = ps_id_hash(id) & (s->cap - 1);
    while (s->used[i])
        i = (i + 1) & (s->cap - 1);
    memcpy(s->keys[i], id, PS_ID_LEN);
    s->used[i] = 1;
    s->n++;
}

static int idset_add(idset_t *s, const uint8_t id[PS_ID_LEN])
{
    if (2 * (s->n + 1) > s->cap) {
        idset_t big = {NULL, NULL, s->cap ? s->cap * 2 : 1024, 0};
        big.keys = malloc(big.cap * PS_ID_LEN);
        big.used = calloc(big.cap, 1);
        if (!big.keys || !big.used) {
            free(big.keys);
            free(big.used);
            return PS_ENOMEM;
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->used[i])
                idset_insert(&big, s->keys[i]);
        free(s->keys);
        free(s->used);
        *s = big;
    }
    idset_insert(s, id);
    return PS_OK;
}

static void idset_free(idset_t *s)
{
    free(s->keys);
    free(s->used);
    memset(s, 0, sizeof(*s));
}

/* ---- import ---------------------------------------------------------------- */

typedef struct import_st {
    ps_cache_t *c;
    const char *file;
    int kind;
    int dry_run;
    const char *orgunit; /* the cache's unit: owner of rows that name none */
    ps_client_vctx_t vc; /* the cache's tree, scope and identity, as add and the server use
                            them, and the ids this import accepted (vctx.h) */
    Popsync__Record *batch[IMPORT_BATCH];
    size_t nbatch;
    unsigned long rows, imported, rejected, unchanged, titles;
    int file_refused; /* the reader refused the file itself */
    int fail; /* a cache or memory error: stop, exit PS_EXIT_FAIL */
    ps_rejects_t *rj; /* stderr lines and the rejected-rows file */
    int update;       /* --update: a row for a registered person merges into it */
    idset_t idnums;   /* SHA-256 (first 16 bytes) of the ID numbers of accepted rows */
    idset_t rows_seen; /* content digests (first 16 bytes) of the accepted rows as read */
    idset_t held;     /* content digests of the cache's live records of the kind (not persons) */
    int held_built;
    unsigned long repeats; /* rows equal to a record held or an earlier row: not added again */
    Popsync__Record *current; /* the stored version a merged row replaces */
    ps_late_t late[PS_IMPORT_LATE_MAX]; /* approved months the accepted rows change (late.h) */
    size_t nlate;
    unsigned long late_rows;
} import_st_t;

/* An accepted row that changes the counts of an approved month: counted,
 * and the months kept for one note at the end (late.h). */
static void late_of(import_st_t *st, const Popsync__Record *r)
{
    ps_late_t l[8];
    size_t n = ps_late_months(st->c, st->vc.units, r, st->current, l, 8);
    if (n > 0)
        st->late_rows++;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < st->nlate && (st->late[j].month != l[i].month || strcmp(st->late[j].township, l[i].township)))
            j++;
        if (j == st->nlate && st->nlate < PS_IMPORT_LATE_MAX)
            st->late[st->nlate++] = l[i];
    }
}

/* A refused row: told on stderr and kept in the rejected-rows file. */
static void report(import_st_t *st, const ps_recio_row_t *row, const Popsync__Record *rec, const ps_verrs_t *v)
{
    if (ps_rejects_add(st->rj, row, rec, row->line, v) != PS_OK && !st->fail)
        st->fail = PS_EIO;
}

static int flush_batch(import_st_t *st)
{
    int rc = PS_OK;

    if (st->nbatch > 0 && !st->dry_run)
        rc = ps_cache_put_local_many(st->c, st->batch, st->nbatch);
    if (rc == PS_OK)
        st->imported += st->nbatch;
    for (size_t i = 0; i < st->nbatch; i++)
        ps_record_free(st->batch[i]);
    st->nbatch = 0;
    return rc;
}

/* Gives r its id: the file's (an update when the cache has that record, so
 * the change is based on the revision the cache holds) or a new one.  For
 * an update, *old is the cache's version (caller frees). */
static int assign_id(import_st_t *st, Popsync__Record *r, ps_verrs_t *v, Popsync__Record **oldp)
{
    Popsync__Record *old = NULL;
    int rc;

    if (r->id.len != PS_ID_LEN) {
        r->id.data = malloc(PS_ID_LEN);
        if (!r->id.data)
            return PS_ENOMEM;
        r->id.len = PS_ID_LEN;
        return ps_uuid7(r->id.data);
    }
    if (ps_client_vctx_noted(&st->vc, r->id.data)) {
        ps_verrs_add(v, "id", "appears on an earlier row of this file");
        return PS_OK;
    }
    rc = ps_cache_get(st->c, r->id.data, &old);
    if (rc == PS_ENOTFOUND)
        return PS_OK;
    if (rc)
        return rc;
    if ((int)old->kind != st->kind)
        ps_verrs_add(v, "id", "belongs to a record of another kind");
    else if (old->deleted)
        ps_verrs_add(v, "id", "belongs to a deleted record");
    else {
        r->rev = old->rev;
        old->rev = NULL;
        r->created_ms = old->created_ms;
        r->synthetic = old->synthetic; /* test data stays marked through an update */
        *oldp = old;
        return PS_OK;
    }
    ps_record_free(old);
    return PS_OK;
}

/* An update of a record the cache holds sets only what the file has: a
 * field with no column (CSV, XLSX) or key (JSON) keeps the cache's value,
 * so a file of id and phone changes phones and nothing else.  A present but
 * empty cell still clears its field (r read it as empty).  PS_OK or
 * PS_ENOMEM. */
static int keep_absent(const ps_recio_row_t *row, Popsync__Record *r, const Popsync__Record *old)
{
    const char *names[64];
    size_t n = ps_record_field_names((int)r->kind, names, 64);
    char text[1024], err[256];
    int rc;

    for (size_t i = 0; i < n && i < 64; i++) {
        if (ps_recio_row_has(row, (int)r->kind, names[i]) ||
            ps_record_get_text(old, names[i], text, sizeof(text)) != PS_OK || !*text)
            continue;
        if ((rc = ps_record_set(r, names[i], text, err, sizeof(err))) == PS_ENOMEM)
            return rc;
    }
    if (!ps_recio_row_has(row, (int)r->kind, "orgunit") && old->orgunit && *old->orgunit &&
        (rc = ps_record_set(r, "orgunit", old->orgunit, err, sizeof(err))))
        return rc == PS_ENOMEM ? rc : PS_OK;
    return PS_OK;
}

/* Copies every field r has a value for onto into (the --update merge). */
static int merge_into(Popsync__Record *into, const Popsync__Record *r)
{
    const char *names[64];
    size_t n = ps_record_field_names((int)r->kind, names, 64);
    char text[1024], err[256];
    int rc;

    for (size_t i = 0; i < n && i < 64; i++)
        if (ps_record_get_text(r, names[i], text, sizeof(text)) == PS_OK && *text &&
            (rc = ps_record_set(into, names[i], text, err, sizeof(err))))
            return rc;
    /* Only a unit the row named (the default is filled in later). */
    if (r->orgunit && *r->orgunit)
        return ps_record_set(into, "orgunit", r->orgunit, err, sizeof(err));
    return PS_OK;
}

/* One live person per ID number: a row for a person already registered
 * (in the cache, or on an earlier row) is refused, or with --update merged
 * into the registered one, which *r then becomes (vctx.current set to its
 * stored version for validation).  PS_OK or a cache error. */
static int dedupe(import_st_t *st, Popsync__Record **r, ps_verrs_t *v, int *held)
{
    Popsync__Record *dup = NULL;
    uint8_t h[PS_SHA256_LEN], before[PS_SHA256_LEN], after[PS_SHA256_LEN];
    char why[256];
    int rc;

    *held = 0;
    if ((*r)->body_case != POPSYNC__RECORD__BODY_PERSON || !(*r)->person->id_number ||
        !*(*r)->person->id_number)
        return PS_OK;
    /* The file's own rows: the ID numbers seen, by hash. */
    if ((rc = ps_sha256((*r)->person->id_number, strlen((*r)->person->id_number), h)))
        return rc;
    if (idset_has(&st->idnums, h)) {
        ps_verrs_add(v, "id_number", "this ID number appears on an earlier row of this file");
        return PS_OK;
    }
    if ((rc = ps_dup_person(st->c, *r, &dup)) || !dup)
        return rc ? rc : idset_add(&st->idnums, h);
    /* A row that adds nothing to the person registered (the same file
     * imported again) is that person, not a second one. */
    if (!st->update) {
        ps_dup_describe(dup, 0, why, sizeof(why));
        if (ps_record_content_digest(dup, before) == PS_OK && merge_into(dup, *r) == PS_OK &&
            ps_record_content_digest(dup, after) == PS_OK && memcmp(before, after, sizeof(before)) == 0)
            *held = 1;
        else
            ps_verrs_add(v, "id_number", "%s", why);
        ps_record_free(dup);
        return PS_OK;
    }
    rc = merge_into(dup, *r);
    if (rc == PS_OK)
        rc = ps_cache_get(st->c, dup->id.data, &st->current);
    if (rc) {
        ps_record_free(dup);
        return rc == PS_EINVAL ? PS_OK : rc;
    }
    ps_record_free(*r);
    *r = dup;
    return idset_add(&st->idnums, h);
}

static int held_add(Popsync__Record *r, void *arg)
{
    uint8_t d[PS_SHA256_LEN];
    idset_t *held = arg;

    if (r->deleted)
        return 0;
    return ps_record_content_digest(r, d) || idset_add(held, d) ? 1 : 0;
}

/* Is r (a new row, completed) equal to a live record of the kind the cache
 * holds?  Then it is the same entry again: a file imported twice, or once
 * more after an import was stopped (Ctrl-C, a full disk) part way.  The
 * cache's records are read once, at the first such row.  PS_OK or an
 * error. */
static int held_already(import_st_t *st, const Popsync__Record *r, int *held)
{
    uint8_t d[PS_SHA256_LEN];
    int rc;

    *held = 0;
    if (!st->held_built) {
        st->held_built = 1;
        if (ps_cache_foreach_kind(st->c, st->kind, held_add, &st->held) != PS_OK)
            return PS_ENOMEM;
    }
    if ((rc = ps_record_content_digest(r, d)))
        return rc;
    *held = idset_has(&st->held, d);
    return *held ? PS_OK : idset_add(&st->held, d);
}

/* A row the import does not add again: counted as unchanged and said once
 * at the end. */
static int repeat_row(import_st_t *st, Popsync__Record *r)
{
    st->unchanged++;
    st->repeats++;
    ps_record_free(r);
    return 0;
}

static int import_row(ps_recio_row_t *row, void *arg)
{
    import_st_t *st = arg;
    Popsync__Record *r = row->rec, *old = NULL;
    ps_verrs_t v;
    uint8_t dig[PS_SHA256_LEN];
    int rc, same, fresh, held = 0;

    row->rec = NULL;
    if (row->file_error) {
        st->file_refused = 1;
        report(st, row, NULL, &row->errs);
        return 0; /* the reader stops on its own */
    }
    st->rows++;
    st->titles = row->titles;
    if (row->errs.n > 0) {
        report(st, row, NULL, &row->errs);
        st->rejected++;
        return 0;
    }
    memset(&v, 0, sizeof(v));
    /* A row without an id that repeats an earlier row of the file cell for
     * cell (a row copied twice in Excel) is one entry, not two. */
    fresh = r->id.len != PS_ID_LEN;
    if (fresh) {
        if ((rc = ps_record_content_digest(r, dig)))
            goto fail;
        if (idset_has(&st->rows_seen, dig))
            return repeat_row(st, r);
    }
    if ((rc = assign_id(st, r, &v, &old)))
        goto fail;
    if (v.n == 0 && old && (rc = keep_absent(row, r, old)))
        goto fail;
    if (v.n == 0) {
        ps_fields_complete(r);
        if ((rc = dedupe(st, &r, &v, &held)))
            goto fail;
        if (held)
            return repeat_row(st, r);
    }
    if (v.n == 0 && (!r->orgunit || !*r->orgunit)) {
        char err[128];
        if ((rc = ps_record_set(r, "orgunit", st->orgunit, err, sizeof(err))))
            goto fail;
    }
    if (v.n == 0 && fresh && st->kind != POPSYNC__KIND__KIND_PERSON) {
        if ((rc = held_already(st, r, &held)))
            goto fail;
        if (held)
            return repeat_row(st, r);
    }
    /* A row equal to the record the cache holds (the one its id names, or
     * the registered person it merges into) changes nothing: it is counted,
     * not written (re-importing an export touches only the rows that were
     * edited; importing a file twice with --update adds nothing). */
    same = v.n == 0 && (old || st->current) && ps_record_same_content(old ? old : st->current, r);
    ps_record_free(old);
    old = NULL;
    if (same) {
        ps_record_free(st->current);
        st->current = NULL;
        st->unchanged++;
        rc = ps_client_vctx_note(&st->vc, r->id.data, st->kind);
        ps_record_free(r);
        if (rc)
            goto failed;
        return 0;
    }
    st->vc.ctx.current = st->current;
    if (v.n == 0)
        ps_validate_record(r, &st->vc.ctx, &v);
    if (v.n == 0)
        ps_xrules_check(st->c, r, st->current, &v);
    if (v.n == 0)
        late_of(st, r);
    st->vc.ctx.current = NULL;
    ps_record_free(st->current);
    st->current = NULL;
    if (v.n > 0) {
        report(st, row, r, &v);
        st->rejected++;
        ps_record_free(r);
        return 0;
    }
    if ((rc = ps_client_vctx_note(&st->vc, r->id.data, st->kind)) || (fresh && (rc = idset_add(&st->rows_seen, dig))))
        goto fail;
    st->batch[st->nbatch++] = r;
    if (st->nbatch == IMPORT_BATCH && (rc = flush_batch(st)))
        goto failed;
    return 0;
fail:
    ps_record_free(r);
    ps_record_free(old);
failed:
    st->fail = rc;
    return rc;
}

/* The file as UTF-8: detected (or forced) UTF-8 or GB18030, and said when
 * it was not UTF-8.  PS_EXIT_OK or PS_EXIT_FAIL (told). */
static int load_text(const char *file, int encoding, int zh, char **data, size_t *len)
{
    char *raw = NULL, why[512];
    size_t rawlen = 0;
    ps_textenc_t used;
    int rc = ps_recio_load_file(file, &raw, &rawlen);

    if (rc) {
        ps_cli_err("import: %s: %s", file, ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    rc = ps_textenc_to_utf8(raw, rawlen, encoding, data, len, &used, why, sizeof(why));
    free(raw);
    if (rc) {
        ps_cli_err("import: %s: %s", file, rc == PS_EINVAL ? why : ps_strerror(rc));
        return rc == PS_EINVAL ? PS_EXIT_INVALID : PS_EXIT_FAIL;
    }
    if (used != PS_TEXTENC_UTF8)
        printf(zh ? "%s：已按 %s 编码读取\n" : "read %s as %s text\n", file, ps_textenc_name(used));
    return PS_EXIT_OK;
}

/* Which sheet of a workbook was read, when it has more than one: the sheets
 * passed over (no header row), and later ones that have a header too (their
 * rows were not imported). */
static void sheet_note(const ps_xlsx_sheets_t *sh, int zh)
{
    if (sh->count <= 1)
        return;
    printf(zh ? "读取的是工作表“%s”（第 %d 张，共 %d 张）\n" : "read sheet \"%s\" (%d of %d)\n", sh->read, sh->index,
           sh->count);
    if (sh->no_header)
        printf(zh ? "工作簿中没有一张工作表有写明各列名称的表头行，所以读的是第一张\n"
                  : "no sheet of the workbook has a header row naming the columns, so the first was read\n");
    if (sh->skipped[0])
        printf(zh ? "跳过了没有表头行的工作表：%s\n" : "skipped the sheets without a header row: %s\n", sh->skipped);
    if (sh->others[0])
        printf(zh ? "以下工作表也有表头行，但未导入：%s；请用 --sheet 名称 逐一导入\n"
                  : "these sheets have a header row too and were not imported: %s; import each with --sheet NAME\n",
               sh->others);
}

static int import_usage(void)
{
    ps_cli_err("import: usage: import FILE --kind KIND [--format csv|json|xlsx] [--dry-run]\n"
               "              [--encoding utf-8|gbk] [--lang zh|en] [--update] [--sheet NAME|N]\n"
               "  Adds (or, for rows with the id of a record the cache holds, updates) records from a\n"
               "  CSV or JSON file.  Columns may be the English names or the Chinese labels\n"
               "  (popsync fields KIND; popsync template KIND makes an empty file).  UTF-8 (with or\n"
               "  without BOM) or GB18030/GBK is detected; --encoding forces one.  Bad rows are told\n"
               "  by line and field and written to FILE.rejected.csv with a reason column: fix them\n"
               "  there and import that file.  --dry-run checks everything and writes nothing.\n"
               "  A person whose ID number is already registered is refused, unless --update: then\n"
               "  the row's values go into the registered person (importing a file twice adds nothing).\n"
               "  An .xlsx: the first sheet with a header row is read (a sheet of instructions before it\n"
               "  is skipped, and the import says which sheet it read); --sheet NAME or N (from 1) picks one.\n"
               "  example: popsync import 人员.csv --kind person --dry-run");
    return PS_EXIT_USAGE;
}

/* `popsync import`: one getopt switch, then load, import and summary (about
 * 90 lines; the import itself is ps_import_data). */
int ps_cmd_import(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"kind", required_argument, NULL, 'k'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"dry-run", no_argument, NULL, 'n'},
                                       {"encoding", required_argument, NULL, 'e'},
                                       {"update", no_argument, NULL, 'u'},
                                       {"lang", required_argument, NULL, 'L'},
                                       {"sheet", required_argument, NULL, 's'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *lang = NULL, *sheet = NULL;
    int encoding = 0, zh, update = 0;
    const char *file;
    char *data = NULL, err[512];
    size_t len;
    int opt, rc, kind = -1, format = -1, dry_run = 0;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'k':
            if ((kind = ps_kind_from_name(optarg)) < 0) {
                ps_cli_err("import: unknown kind '%s'", optarg);
                return PS_EXIT_USAGE;
            }
            break;
        case 'f':
            if ((format = ps_recio_format_from_name(optarg)) < 0) {
                ps_cli_err("import: unknown format '%s' (csv, json or xlsx)", optarg);
                return PS_EXIT_USAGE;
            }
            break;
        case 'n': dry_run = 1; break;
        case 'e':
            if ((encoding = ps_textenc_from_name(optarg)) < 0) {
                ps_cli_err("import: unknown encoding '%s' (utf-8 or gbk)", optarg);
                return PS_EXIT_USAGE;
            }
            break;
        case 'L': lang = optarg; break;
        case 'u': update = 1; break;
        case 's': sheet = optarg; break;
        case 'h': import_usage(); return PS_EXIT_OK;
        default: return import_usage();
        }
    }
    if (optind != argc - 1 || kind < 0)
        return import_usage();
    file = argv[optind];
    if (format < 0 && (format = ps_recio_format_from_path(file)) < 0) {
        ps_cli_err("import: cannot tell the format of %s from its name: give --format csv, json or xlsx", file);
        return PS_EXIT_USAGE;
    }
    if ((zh = ps_report_lang_zh(lang)) < 0) {
        ps_cli_err("import: --lang must be zh or en");
        return PS_EXIT_USAGE;
    }
    if (sheet && format != PS_RECIO_XLSX) {
        ps_cli_err(zh ? "import: --sheet 只用于 Excel 工作簿（.xlsx）：%s 不是工作簿"
                      : "import: --sheet is for an Excel workbook (.xlsx): %s is not one",
                   file);
        return PS_EXIT_USAGE;
    }
    /* A workbook is a zip archive: its text is UTF-8 by definition. */
    if (format == PS_RECIO_XLSX && (rc = ps_recio_load_file(file, &data, &len))) {
        ps_cli_err("import: %s: %s", file, ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    if (format != PS_RECIO_XLSX && (rc = load_text(file, encoding, zh, &data, &len)))
        return rc;
    {
        ps_cache_t *c = NULL;
        ps_import_opts_t o = {kind, format, dry_run, update, zh, !dry_run, NULL, sheet};
        ps_import_result_t res;
        if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
            ps_cli_err("import: %s", err);
            free(data);
            return PS_EXIT_FAIL;
        }
        rc = ps_import_data(c, file, data, len, &o, &res);
        ps_cache_close(c);
        free(data);
        if (rc == PS_EXIT_FAIL)
            return rc;
        if (format == PS_RECIO_XLSX)
            sheet_note(&res.sheets, zh);
        if (res.titles > 0)
            printf(zh ? "表头之上的 %lu 行是表格标题，已跳过（不是记录）\n"
                      : "skipped %lu title row(s) above the header (not records)\n",
                   res.titles);
        if (zh)
            printf("共 %lu 行，%s %lu 行（%lu 行无变化，%lu 行被拒绝）\n", res.rows, dry_run ? "将导入" : "已导入",
                   res.imported, res.unchanged, res.rejected);
        else
            printf("%s %lu of %lu rows (%lu unchanged, %lu rejected)\n", dry_run ? "would import" : "imported",
                   res.imported, res.rows, res.unchanged, res.rejected);
        if (res.repeats > 0)
            printf(zh ? "其中 %lu 行与已有的记录（或本文件前面的某行）完全相同，未重复添加\n"
                      : "%lu of these rows are the same as a record already held (or an earlier row): not added "
                        "again\n",
                   res.repeats);
        if (res.file_refused && res.rows == 0)
            printf(zh ? "%s 未导入任何一行：请按上面的提示改正该文件后重新导入\n"
                      : "nothing was imported from %s: correct the file as said above and import it again\n",
                   file);
        else if (res.file_refused)
            printf(zh ? "读到上面的错误处就停止了：其后的行未读入；请改正 %s 后用 --update 重新导入\n"
                      : "reading stopped at the error above: the rows after it were not read; correct %s and "
                        "import it again with --update\n",
                   file);
        if (res.late_rows > 0) {
            ps_cli_err(zh ? "import: 其中 %lu 行属于已批准的月份：" : "import: %lu of these rows fall into approved months:",
                       res.late_rows);
            ps_late_warn("import", res.late, res.nlate, zh);
        }
        if (res.rejects_written > 0)
            printf(zh ? "被拒绝的 %lu 行已写入 %s：改正后导入该文件即可\n"
                      : "the %lu rejected rows are in %s: fix them there and import that file\n",
                   res.rejects_written, res.rejects_path);
        return rc;
    }
}

int ps_import_data(ps_cache_t *c, const char *file, const char *data, size_t len, const ps_import_opts_t *o,
                   ps_import_result_t *res)
{
    import_st_t *st = calloc(1, sizeof(*st));
    int rc;

    memset(res, 0, sizeof(*res));
    if (!st) {
        ps_cli_err("import: %s", ps_strerror(PS_ENOMEM));
        return PS_EXIT_FAIL;
    }
    st->c = c;
    /* A person column may hold the person's ID number (in the cache, not
     * yet on an earlier row of the same file: those are not stored yet). */
    ps_record_set_person_resolver(ps_dup_resolve, st->c);
    st->file = file;
    st->kind = o->kind;
    st->dry_run = o->dry_run;
    st->update = o->update;
    /* Rows of a workbook are read as CSV, and refused ones kept as CSV. */
    if (ps_rejects_begin(&st->rj, file, o->kind, o->format == PS_RECIO_XLSX ? PS_RECIO_CSV : o->format, o->zh,
                         o->write_rejects) != PS_OK) {
        ps_cli_err("import: %s", ps_strerror(PS_ENOMEM));
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (o->errors)
        ps_rejects_collect(st->rj, o->errors);
    st->orgunit = ps_cache_meta(st->c)->orgunit;
    /* The same scope the server will apply, so rows it would refuse are
     * reported now with their line numbers rather than after a sync. */
    ps_client_vctx_init(&st->vc, st->c);

    res->sheets.want = o->sheet;
    if (o->format == PS_RECIO_XLSX)
        rc = ps_recio_read_xlsx(data, len, o->kind, &res->sheets, import_row, st);
    else
        rc = ps_recio_read(o->format, data, len, o->kind, import_row, st);
    if (rc == PS_ENOMEM && !st->fail)
        st->fail = rc;
    if (!st->fail)
        st->fail = flush_batch(st);
    if (ps_rejects_finish(st->rj) != PS_OK && !st->fail) {
        ps_cli_err("import: cannot write %s", ps_rejects_path(st->rj));
        st->fail = PS_EIO;
    }
    res->rows = st->rows;
    res->imported = st->imported;
    res->unchanged = st->unchanged;
    res->rejected = st->rejected;
    res->rejects_written = ps_rejects_written(st->rj);
    res->file_refused = st->file_refused;
    res->repeats = st->repeats;
    res->titles = st->titles;
    res->late_rows = st->late_rows;
    res->nlate = st->nlate;
    memcpy(res->late, st->late, sizeof(res->late));
    snprintf(res->rejects_path, sizeof(res->rejects_path), "%s", ps_rejects_path(st->rj));
    if (st->fail) {
        ps_cli_err("import: %s: %s; %lu rows were stored before it", file, ps_strerror(st->fail), st->imported);
        /* Nothing typed is lost: the file is whole, and importing it again
         * adds only the rows not stored yet (import_row's repeats). */
        if (st->fail == PS_ENOSPC)
            ps_cli_err(o->zh ? "import: 磁盘已满：前 %lu 行已保存；请腾出磁盘空间后重新导入同一文件，已保存的行会被识别，不会重复添加"
                             : "import: the disk is full: the first %lu rows are stored; free space on the disk, then "
                               "import the same file again: the rows already stored are recognised and not added twice",
                       st->imported);
        else if (st->fail == PS_EFULL)
            ps_cli_err(o->zh ? "import: 本机缓存已满：前 %lu 行已保存；请联系区县信息部门，之后重新导入同一文件，已保存的行不会重复添加"
                             : "import: the cache is full: the first %lu rows are stored; ask the district's IT office, then "
                               "import the same file again: the rows already stored are not added twice",
                       st->imported);
        rc = PS_EXIT_FAIL;
        goto out;
    }
    rc = (rc == PS_EINVAL || st->rejected > 0) ? PS_EXIT_INVALID : PS_EXIT_OK;
out:
    for (size_t i = 0; i < st->nbatch; i++)
        ps_record_free(st->batch[i]);
    idset_free(&st->idnums);
    idset_free(&st->rows_seen);
    idset_free(&st->held);
    ps_rejects_free(st->rj);
    ps_record_set_person_resolver(NULL, NULL);
    ps_client_vctx_free(&st->vc);
    free(st);
    return rc;
}

/* ---- export ---------------------------------------------------------------- */

typedef struct export_st {
    ps_recio_writer_t w;
    int kind;
    const char *orgunit; /* subtree filter or NULL */
    ps_orgunits_t *units; /* the cache's tree for the subtree rule, or NULL */
    int rc;
} export_st_t;

static int export_one(Popsync__Record *r, void *arg)
{
    export_st_t *st = arg;

    if ((int)r->kind != st->kind || r->deleted || (st->orgunit && !ps_policy_within(st->units, r->orgunit, st->orgunit)))
        return 0;
    st->rc = ps_recio_writer_put(&st->w, r);
    return st->rc != PS_OK;
}

/* An export holds personal data: its file is its owner's alone, whatever
 * the umask, even when it replaces an older file of the same name. */
static FILE *create_private(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f;

    if (fd < 0)
        return NULL;
    if (fchmod(fd, 0600) != 0 || !(f = fdopen(fd, "wb"))) {
        close(fd);
        return NULL;
    }
    return f;
}

static int export_usage(void)
{
    ps_cli_err("export: usage: export --kind KIND --format csv|json|xlsx [--out FILE] [--orgunit CODE]\n"
               "              [--lang zh|en] [--no-bom] [--pending]\n"
               "  CSV starts with a byte-order mark (Chinese Excel needs it; --no-bom for scripts).\n"
               "  --pending: only records with changes not yet synced (to move them to a new cache).\n"
               "  --out files are created readable by their owner only (mode 0600).\n"
               "  Excel turns 18-digit ID numbers into numbers when it opens a CSV: export .xlsx instead\n"
               "  (every cell is text there), or use Data > From Text and set the column to Text (文本).\n"
               "  example: popsync export --kind person --format csv --lang zh --out persons.csv");
    return PS_EXIT_USAGE;
}

/* What `popsync export` was asked. */
typedef struct export_args {
    const char *out, *lang;
    int format, bom, zh, pending;
} export_args_t;

/* The options of export into st (kind, unit) and a.  -1 to go on, else
 * the exit code (told). */
static int export_parse(int argc, char **argv, export_st_t *st, export_args_t *a)
{
    static const struct option lo[] = {{"kind", required_argument, NULL, 'k'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"out", required_argument, NULL, 'o'},
                                       {"orgunit", required_argument, NULL, 'u'},
                                       {"bom", no_argument, NULL, 'b'},
                                       {"no-bom", no_argument, NULL, 'B'},
                                       {"lang", required_argument, NULL, 'L'},
                                       {"help", no_argument, NULL, 'h'},
                                       {"pending", no_argument, NULL, 'p'},
                                       {NULL, 0, NULL, 0}};
    int opt;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'k':
            if ((st->kind = ps_kind_from_name(optarg)) < 0) {
                ps_cli_err("export: unknown kind '%s'", optarg);
                return PS_EXIT_USAGE;
            }
            break;
        case 'f':
            if ((a->format = ps_recio_format_from_name(optarg)) < 0) {
                ps_cli_err("export: unknown format '%s' (csv, json or xlsx)", optarg);
                return PS_EXIT_USAGE;
            }
            break;
        case 'o': a->out = optarg; break;
        case 'u':
            if (!ps_orgunit_valid(optarg)) {
                ps_cli_err("export: --orgunit needs a 12-digit code");
                return PS_EXIT_USAGE;
            }
            st->orgunit = optarg;
            break;
        case 'b': a->bom = 1; break;
        case 'B': a->bom = 0; break;
        case 'L': a->lang = optarg; break;
        case 'h': export_usage(); return PS_EXIT_OK;
        case 'p': a->pending = 1; break; /* only unsent changes: to move them to a new cache */
        default: return export_usage();
        }
    }
    if (optind != argc || st->kind < 0)
        return export_usage();
    if ((a->zh = ps_report_lang_zh(a->lang)) < 0) {
        ps_cli_err("export: --lang must be zh or en");
        return PS_EXIT_USAGE;
    }
    if (a->format < 0 && a->out)
        a->format = ps_recio_format_from_path(a->out);
    if (a->format < 0)
        return export_usage();
    if (a->format != PS_RECIO_CSV)
        a->bom = 0;
    return -1;
}

/* `popsync export` (about 80 lines): the file is written aside and renamed
 * on success, with one cleanup path. */
int ps_cmd_export(ps_cli_t *cli, int argc, char **argv)
{
    export_st_t st;
    export_args_t a = {NULL, NULL, -1, 1, 0, 0};
    ps_cache_t *c = NULL;
    FILE *f = stdout;
    const char *out;
    char *tmp = NULL, err[512];
    int rc, format, bom, zh, pending;

    memset(&st, 0, sizeof(st));
    st.kind = -1;
    if ((rc = export_parse(argc, argv, &st, &a)) >= 0)
        return rc;
    out = a.out;
    format = a.format;
    bom = a.bom;
    zh = a.zh;
    pending = a.pending;
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("export: %s", err);
        return PS_EXIT_FAIL;
    }
    st.units = ps_client_orgunits(c);
    rc = PS_EXIT_FAIL;
    if (format == PS_RECIO_XLSX && !out) {
        ps_cli_err("export: an .xlsx export needs --out FILE.xlsx");
        rc = PS_EXIT_USAGE;
        goto out;
    }
    if (out) {
        /* Readers of FILE never see half an export: write aside, then rename. */
        size_t n = strlen(out) + 5;
        tmp = malloc(n);
        if (!tmp)
            goto out;
        snprintf(tmp, n, "%s.tmp", out);
        /* An .xlsx is created by its library when it is complete. */
        f = NULL;
        if (format != PS_RECIO_XLSX && !(f = create_private(tmp))) {
            ps_cli_err("export: cannot create %s", tmp);
            goto out;
        }
    }
    if (format == PS_RECIO_XLSX)
        st.rc = ps_recio_writer_begin_xlsx(&st.w, tmp, st.kind, zh ? PS_RECIO_ZH : 0);
    else
        st.rc = ps_recio_writer_begin(&st.w, f, format, st.kind, (bom ? PS_RECIO_BOM : 0) | (zh ? PS_RECIO_ZH : 0));
    if (st.rc == PS_OK) {
        int frc = pending ? ps_cache_foreach_pending(c, export_one, &st) : ps_cache_foreach(c, export_one, &st);
        if (st.rc == PS_OK)
            st.rc = frc;
    }
    if (ps_recio_writer_end(&st.w) != PS_OK && st.rc == PS_OK)
        st.rc = PS_EIO;
    if (st.rc) {
        ps_cli_err("export: %s", ps_strerror(st.rc));
        goto out;
    }
    if (out) {
        int bad = f && fsync(fileno(f)) != 0;
        bad |= f && fclose(f) != 0;
        f = NULL;
        if (bad || rename(tmp, out) != 0) {
            ps_cli_err("export: cannot write %s", out);
            goto out;
        }
        free(tmp);
        tmp = NULL;
    }
    rc = PS_EXIT_OK;
out:
    if (out && f)
        fclose(f);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    ps_orgunits_free(st.units);
    ps_cache_close(c);
    return rc;
}
