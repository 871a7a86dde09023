/* ui_town_io.c - the import page and the migrations page of `popsync ui`
 * (ui_town.h).
 *
 * An import is `popsync import` (cmd_io.c ps_import_data) on the file the
 * browser sends as the request body: first a preview (a dry run: every
 * refused row with its line, field and reason, nothing stored), then the
 * import itself.  The rejected rows (as `popsync import` writes them, with
 * line and reason columns, ready to fix and import again) are kept in a
 * private directory inside the cache directory until the next import or
 * until `popsync ui` stops, and downloaded from there.  The migrations page
 * is `popsync migrations --json` (cmd_migrations.c ps_migrations_json).
 */
#include "ui_town.h"

#include "cli.h"
#include "dupcheck.h"
#include "err.h"
#include "recio.h"
#include "record_fmt.h"
#include "textenc.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRORS_SHOWN 500 /* error lines a preview lists (all are in the rejected rows) */

typedef struct import_dir {
    char dir[PATH_MAX];   /* DATA/ui-import.XXXXXX, mode 0700 */
    char rejects[PATH_MAX]; /* the last import's rejected rows, or "" */
    char name[128];       /* the name to download them as */
} import_dir_t;

static void import_dir_free(void *p)
{
    import_dir_t *d = p;

    if (*d->rejects)
        unlink(d->rejects);
    rmdir(d->dir);
    free(d);
}

static import_dir_t *import_dir(ps_ui_t *ui)
{
    import_dir_t *d = ps_ui_state(ui, PS_UI_SLOT_IMPORT);

    if (d)
        return d;
    if (!(d = calloc(1, sizeof(*d))))
        return NULL;
    snprintf(d->dir, sizeof(d->dir), "%s/ui-import.XXXXXX", ps_ui_data_dir(ui));
    if (!mkdtemp(d->dir)) {
        free(d);
        return NULL;
    }
    ps_ui_set_state(ui, PS_UI_SLOT_IMPORT, d, import_dir_free);
    return d;
}

/* The uploaded file's name, reduced to a safe base name with its extension. */
static void safe_name(const char *in, char *out, size_t outlen)
{
    size_t o = 0;

    for (const char *s = in ? in : "import.csv"; *s && o + 1 < outlen; s++)
        out[o++] = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
                           *s == '-' || *s == '_'
                       ? *s
                       : '_';
    out[o] = '\0';
    if (!o || out[0] == '.')
        snprintf(out, outlen, "import.csv");
}

/* Which sheet of a workbook with more than one was read (as `popsync
 * import` says it), or null: the page shows it, so rows of a later sheet
 * are not taken for imported. */
static json_t *sheet_json(const ps_xlsx_sheets_t *sh)
{
    if (sh->count <= 1)
        return json_null();
    return json_pack("{s:s,s:i,s:i,s:b,s:s,s:s}", "read", sh->read, "index", sh->index, "count", sh->count,
                     "no_header", sh->no_header, "skipped", sh->skipped, "others", sh->others);
}

/* POST /api/import?kind=K&name=FILE&mode=preview|import, the file as body. */
static int h_import(ps_ui_req_t *rq)
{
    const char *kn = ps_ui_arg(rq, "kind"), *mode = ps_ui_arg(rq, "mode");
    int kind = kn ? ps_kind_from_name(kn) : -1, preview = !mode || strcmp(mode, "import") != 0, rc, format;
    import_dir_t *d = import_dir(ps_ui_server(rq));
    char name[128], file[PATH_MAX + 160], why[512], *text = NULL;
    const uint8_t *body;
    size_t len, tlen = 0;
    ps_textenc_t used;
    ps_import_result_t res;
    json_t *errs;

    body = ps_ui_body(rq, &len);
    safe_name(ps_ui_arg(rq, "name"), name, sizeof(name));
    if (kind < 0 || !len)
        return ps_ui_reply_error(rq, 400, "choose the kind and a file", "请选择记录类型和文件");
    if (!d)
        return ps_ui_reply_error(rq, 500, "cannot make the import directory", "无法建立导入目录");
    if ((format = ps_recio_format_from_path(name)) < 0)
        return ps_ui_reply_error(rq, 400, "a .csv, .xlsx or .json file, please", "请选择 .csv、.xlsx 或 .json 文件");
    if (format != PS_RECIO_XLSX &&
        (rc = ps_textenc_to_utf8((const char *)body, len, 0, &text, &tlen, &used, why, sizeof(why))) != PS_OK)
        return ps_ui_reply_error(rq, 400, rc == PS_EINVAL ? why : ps_strerror(rc), NULL);
    if (*d->rejects)
        unlink(d->rejects);
    d->rejects[0] = '\0';
    snprintf(file, sizeof(file), "%s/%s", d->dir, name);
    errs = json_array();
    {
        ps_import_opts_t o = {kind, format, preview, 0, ps_ui_zh(rq), 1, errs, NULL};
        rc = ps_import_data(ps_ui_cache(rq), file, text ? text : (const char *)body, text ? tlen : len, &o, &res);
    }
    free(text);
    ps_record_set_person_resolver(ps_dup_resolve, ps_ui_cache(rq)); /* import unset it */
    /* Written beside the name it was given: in the private directory. */
    if (res.rejects_written) {
        snprintf(d->rejects, sizeof(d->rejects), "%s", res.rejects_path);
        snprintf(d->name, sizeof(d->name), "%.100s.rejected.%s", name, format == PS_RECIO_JSON ? "jsonl" : "csv");
    }
    while (json_array_size(errs) > ERRORS_SHOWN)
        json_array_remove(errs, ERRORS_SHOWN);
    if (rc == PS_EXIT_FAIL) {
        json_decref(errs);
        return ps_ui_reply_error(rq, 500, "the import failed; the rows before the failure were stored",
                                 "导入失败；失败前的行已保存");
    }
    return ps_ui_reply_json(rq, 200, json_pack("{s:b,s:I,s:I,s:I,s:I,s:o,s:b,s:o}", "preview", preview, "rows",
                                               (json_int_t)res.rows, "imported", (json_int_t)res.imported,
                                               "unchanged", (json_int_t)res.unchanged, "rejected",
                                               (json_int_t)res.rejected, "errors", errs, "rejects", *d->rejects != 0,
                                               "sheet", sheet_json(&res.sheets)));
}

/* GET /api/import/rejects: the last import's rejected rows, to fix and import. */
static int h_rejects(ps_ui_req_t *rq)
{
    import_dir_t *d = ps_ui_state(ps_ui_server(rq), PS_UI_SLOT_IMPORT);
    FILE *f = d && *d->rejects ? fopen(d->rejects, "rb") : NULL;
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    int rc;

    if (!f)
        return ps_ui_reply_error(rq, 404, "no rejected rows", "没有被拒绝的行");
    if (fstat(fileno(f), &st) == 0 && (buf = malloc((size_t)st.st_size + 1)))
        n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    if (!buf)
        return ps_ui_reply_error(rq, 500, "cannot read the rejected rows", NULL);
    rc = ps_ui_reply_download(rq, "text/csv; charset=utf-8", d->name, buf, n);
    free(buf);
    return rc;
}

/* GET /api/migrations?await=submission|feedback: open cases and deadlines. */
static int h_migrations(ps_ui_req_t *rq)
{
    const char *a = ps_ui_arg(rq, "await");
    json_t *arr = NULL;
    int rc = ps_migrations_json(ps_ui_cache(rq), a && !strcmp(a, "submission") ? 1 : a && !strcmp(a, "feedback") ? 2 : 0,
                                &arr);

    if (rc != PS_OK)
        return ps_ui_reply_error(rq, 500, ps_strerror(rc), NULL);
    return ps_ui_reply_json(rq, 200, json_pack("{s:o}", "cases", arr));
}

static const ps_ui_route_t io_routes[] = {
    {"POST", "/api/import", 0, 1, h_import},
    {"GET", "/api/import/rejects", 0, 0, h_rejects},
    {"GET", "/api/migrations", 0, 1, h_migrations},
};

static const ps_ui_nav_t io_nav[] = {
    {"/migrations.html", "流动人口事项", "Migration cases", NULL},
    {"/import.html", "导入", "Import", NULL},
};

const ps_ui_module_t ps_ui_town_io_module = {"town-io", io_routes, sizeof(io_routes) / sizeof(io_routes[0]), io_nav,
                                             sizeof(io_nav) / sizeof(io_nav[0])};
