/* rejects.c - error lines and the rejected-rows file of an import (see
 * rejects.h). */
#include "rejects.h"

#include "cli.h"
#include "err.h"
#include "fields.h"
#include "i18n.h"
#include "record_fmt.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ps_rejects {
    const char *file; /* the imported file (borrowed) */
    int kind, format, zh, write_file;
    char *path;       /* FILE.rejected.csv / .jsonl */
    FILE *f;          /* open once the first row is written */
    unsigned long written;
    int failed;       /* a write failed: stop writing, report at the end */
    json_t *collect;  /* not NULL: errors go here instead of stderr (the web interface) */
};

void ps_rejects_collect(ps_rejects_t *rj, json_t *arr)
{
    rj->collect = arr;
}

int ps_rejects_begin(ps_rejects_t **out, const char *file, int kind, int format, int zh, int write_file)
{
    ps_rejects_t *rj = calloc(1, sizeof(*rj));
    size_t n = strlen(file) + sizeof(".rejected.jsonl");

    if (!rj || !(rj->path = malloc(n))) {
        free(rj);
        return PS_ENOMEM;
    }
    snprintf(rj->path, n, "%s.rejected.%s", file, format == PS_RECIO_JSON ? "jsonl" : "csv");
    rj->file = file;
    rj->kind = kind;
    rj->format = format;
    rj->zh = zh;
    rj->write_file = write_file;
    /* An old file would describe another run's rows. */
    if (write_file && unlink(rj->path) != 0 && errno != ENOENT)
        rj->failed = 1;
    *out = rj;
    return PS_OK;
}

/* The cell of row that feeds field name, or NULL. */
static const char *cell_of(const ps_rejects_t *rj, const ps_recio_row_t *row, const char *name)
{
    for (size_t i = 0; row && i < row->ncells; i++) {
        const ps_field_t *f = ps_field_find(rj->kind, row->header[i]);
        if (strcmp(row->header[i], name) == 0 || (f && strcmp(f->name, name) == 0))
            return row->cells[i];
    }
    return NULL;
}

/* The value of field name as read, shown masked into buf; "" when none. */
static const char *value_of(const ps_rejects_t *rj, const ps_recio_row_t *row, const Popsync__Record *rec,
                            const char *name, char *buf, size_t buflen)
{
    char raw[512];
    const char *v = NULL;

    buf[0] = '\0';
    if (rec && ps_record_get_text(rec, name, raw, sizeof(raw)) == PS_OK && *raw)
        v = raw;
    else
        v = cell_of(rj, row, name);
    if (!v || !*v)
        return buf;
    if (!ps_utf8_valid(v, strlen(v)))
        snprintf(buf, buflen, "%s", rj->zh ? "（不是有效的 UTF-8）" : "(not valid UTF-8)");
    else
        ps_field_shown(rj->kind, name, v, buf, buflen);
    return buf;
}

/* One stderr line per error, and the joined reasons into why. */
static void say(ps_rejects_t *rj, const ps_recio_row_t *row, const Popsync__Record *rec, unsigned long line,
                const ps_verrs_t *errs, char *why, size_t whylen)
{
    size_t used = 0;

    why[0] = '\0';
    for (size_t i = 0; i < errs->n && i < PS_VERR_MAX; i++) {
        const ps_field_error_t *e = &errs->e[i];
        const ps_field_t *f = ps_field_find(rj->kind, e->field);
        char val[128], zh[512];
        const char *reason = rj->zh ? ps_i18n_reason(e->reason, zh, sizeof(zh)) : e->reason;
        const char *label = !rj->zh ? e->field
                            : f ? f->zh
                            : strcmp(e->field, PS_RECIO_FILE_FIELD) == 0 ? "文件"
                            : strcmp(e->field, PS_RECIO_ROW_FIELD) == 0 ? "整行"
                                                                        : e->field;

        value_of(rj, row, rec, e->field, val, sizeof(val));
        if (rj->collect)
            json_array_append_new(rj->collect, json_pack("{s:I,s:s,s:s,s:s,s:s}", "line", (json_int_t)line, "field",
                                                         e->field, "label", label, "reason", reason, "value", val));
        else if (rj->zh)
            ps_cli_err("导入: %s:第 %lu 行: %s: %s%s%s%s", rj->file, line, label, reason, *val ? "（读到：" : "", val,
                       *val ? "）" : "");
        else
            ps_cli_err("import: %s:%lu: %s: %s%s%s", rj->file, line, e->field, reason, *val ? "; value as read: " : "",
                       val);
        used += (size_t)snprintf(why + used, used < whylen ? whylen - used : 0, "%s%s: %s", i ? "; " : "", label,
                                 reason);
        if (used >= whylen)
            used = whylen - 1;
    }
    if (errs->n > PS_VERR_MAX && !rj->collect)
        ps_cli_err(rj->zh ? "导入: %s:第 %lu 行: 另有 %zu 处错误未显示" : "import: %s:%lu: (row): %zu more errors not shown",
                   rj->file, line, errs->n - PS_VERR_MAX);
}

/* Creates the file (mode 0600: it holds personal data) with its header. */
static int open_file(ps_rejects_t *rj, const ps_recio_row_t *row)
{
    int fd = open(rj->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0 || fchmod(fd, 0600) != 0 || !(rj->f = fdopen(fd, "wb"))) {
        if (fd >= 0)
            close(fd);
        return PS_EIO;
    }
    if (rj->format == PS_RECIO_JSON)
        return PS_OK;
    fputs("\xEF\xBB\xBF", rj->f);
    for (size_t i = 0; row && i < row->ncells; i++)
        ps_recio_csv_cell(rj->f, row->header[i], i == 0);
    ps_recio_csv_cell(rj->f, rj->zh ? PS_RECIO_LINE_ZH : PS_RECIO_LINE_EN, !row || row->ncells == 0);
    ps_recio_csv_cell(rj->f, rj->zh ? PS_RECIO_REASON_ZH : PS_RECIO_REASON_EN, 0);
    fputs("\r\n", rj->f);
    return ferror(rj->f) ? PS_EIO : PS_OK;
}

static int put_row(ps_rejects_t *rj, const ps_recio_row_t *row, unsigned long line, const char *why)
{
    char num[24];

    if (!rj->f && open_file(rj, row) != PS_OK)
        return PS_EIO;
    snprintf(num, sizeof(num), "%lu", line);
    if (rj->format == PS_RECIO_JSON) {
        json_t *o = json_pack("{s:I, s:s, s:O?}", "line", (json_int_t)line, "reason", why, "record",
                              row ? (json_t *)row->json : NULL);
        if (!o || json_dumpf(o, rj->f, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0)
            rj->failed = 1;
        json_decref(o);
        fputc('\n', rj->f);
    } else {
        /* A row whose cells could not be kept (wrong count) keeps its line. */
        for (size_t i = 0; row && i < row->ncells; i++)
            ps_recio_csv_cell(rj->f, row->cells[i], i == 0);
        ps_recio_csv_cell(rj->f, num, !row || row->ncells == 0);
        ps_recio_csv_cell(rj->f, why, 0);
        fputs("\r\n", rj->f);
    }
    rj->written++;
    return ferror(rj->f) ? PS_EIO : PS_OK;
}

int ps_rejects_add(ps_rejects_t *rj, const ps_recio_row_t *row, const Popsync__Record *rec, unsigned long line,
                   const ps_verrs_t *errs)
{
    char why[1024];

    say(rj, row, rec, line, errs, why, sizeof(why));
    /* A refused file is no row to correct: the file itself is fixed and
     * imported again (a rejected-rows file of its reason alone would be
     * taken for the rows to import, and every row would be lost). */
    if (row && row->file_error)
        return rj->failed ? PS_EIO : PS_OK;
    if (!rj->write_file || rj->failed)
        return rj->failed ? PS_EIO : PS_OK;
    if (put_row(rj, row, line, why) != PS_OK)
        rj->failed = 1;
    return rj->failed ? PS_EIO : PS_OK;
}

int ps_rejects_finish(ps_rejects_t *rj)
{
    int bad = rj->failed;

    if (rj->f) {
        bad |= fflush(rj->f) != 0 || fsync(fileno(rj->f)) != 0;
        bad |= fclose(rj->f) != 0;
        rj->f = NULL;
    }
    return bad ? PS_EIO : PS_OK;
}

unsigned long ps_rejects_written(const ps_rejects_t *rj)
{
    return rj->written;
}

const char *ps_rejects_path(const ps_rejects_t *rj)
{
    return rj->path;
}

void ps_rejects_free(ps_rejects_t *rj)
{
    if (!rj)
        return;
    if (rj->f)
        fclose(rj->f);
    free(rj->path);
    free(rj);
}
