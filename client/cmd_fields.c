/* cmd_fields.c - `popsync fields` and `popsync template`: the field
 * dictionary (common/fields.h) shown to a clerk, and an import template
 * made from it.  Neither needs a cache. */
#include "cli.h"
#include "fields.h"
#include "recio.h"
#include "record_fmt.h"
#include "report.h"
#include "validate.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int fields_usage(const char *cmd, FILE *f)
{
    if (strcmp(cmd, "fields") == 0)
        fprintf(f, "usage: popsync fields KIND [--lang zh|en] [--json]\n"
                   "  lists the fields of a kind: English name, Chinese label, type, whether it is\n"
                   "  required, and what to enter.  --set, CSV headers and JSON keys accept either\n"
                   "  name; enum values accept English or Chinese (sex=女).\n"
                   "  example: popsync fields person --lang zh\n");
    else
        fprintf(f, "usage: popsync template KIND [--lang zh|en] --out FILE.csv\n"
                   "  writes an empty import file for KIND: the header row (Chinese labels with\n"
                   "  --lang zh) with a byte-order mark, ready to fill in with Excel.\n"
                   "  example: popsync template person --lang zh --out 人员导入模板.csv\n");
    return f == stdout ? PS_EXIT_OK : PS_EXIT_USAGE;
}

/* Parses KIND [--lang] [--out] [--json]; *kind < 0 on a usage error. */
static int parse(int argc, char **argv, int *kind, int *zh, const char **out, int *json)
{
    static const struct option lo[] = {{"lang", required_argument, NULL, 'L'},
                                       {"out", required_argument, NULL, 'o'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *lang = NULL;
    int opt;

    *kind = -1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'L': lang = optarg; break;
        case 'o': *out = optarg; break;
        case 'j': *json = 1; break;
        case 'h': return 1;
        default: return -1;
        }
    }
    if (optind + 1 != argc) {
        ps_cli_err("%s: give one KIND (person, household, birth, migration, benefit, service_visit)", argv[0]);
        return -1;
    }
    if ((*kind = ps_kind_from_name(argv[optind])) < 0) {
        ps_cli_err("%s: unknown kind '%s' (person, household, birth, migration, benefit, service_visit)", argv[0],
                   argv[optind]);
        return -1;
    }
    if ((*zh = ps_report_lang_zh(lang)) < 0) {
        ps_cli_err("%s: --lang must be zh or en", argv[0]);
        return -1;
    }
    return 0;
}

/* The allowed values of a choice field, in the chosen language. */
static void choices(const ps_field_t *f, int zh, char *out, size_t outlen)
{
    static const char *const enums[][5] = {
        {"sex", "male", "female", NULL},
        {"child_sex", "male", "female", NULL},
        {"registration", "local", "migrant", NULL},
        {"marital_status", "single", "married", "divorced", "widowed"},
        {"direction", "inflow", "outflow", NULL},
        {"status", "eligible", "approved", "paid", NULL},
    };
    size_t used = 0;
    const char *code;

    out[0] = '\0';
    for (size_t i = 0;; i++) {
        const char *v = NULL;
        if (f->type == PS_FT_LIST) {
            v = code = strcmp(f->name, "scheme") == 0 ? ps_scheme_at(i) : ps_service_at(i);
        } else {
            for (size_t k = 0; k < sizeof(enums) / sizeof(enums[0]); k++)
                if (strcmp(enums[k][0], f->name) == 0 && i + 1 < 5)
                    v = enums[k][i + 1];
        }
        if (!v)
            break;
        if (zh && ps_field_value_zh(f, v))
            v = ps_field_value_zh(f, v);
        used += (size_t)snprintf(out + used, used < outlen ? outlen - used : 0, "%s%s", i ? (zh ? "、" : ", ") : "",
                                 v);
        if (used >= outlen)
            break;
    }
}

/* Prints s padded to width display columns (CJK characters take two). */
static void cell(const char *s, size_t width)
{
    size_t w = ps_utf8_width(s);
    printf("%s%*s  ", s, (int)(w < width ? width - w : 0), "");
}

static int print_fields(int kind, int zh, int json)
{
    size_t n;
    const ps_field_t *fs = ps_fields_of(kind, &n);
    json_t *arr = json ? json_array() : NULL;
    char vals[512];

    if (!json) {
        cell(zh ? "字段" : "field", 16);
        cell(zh ? "中文名" : "label", 12);
        cell(zh ? "类型" : "type", zh ? 8 : 13);
        cell(zh ? "必填" : "required", 8);
        printf("%s\n", zh ? "说明" : "what to enter");
    }
    for (size_t i = 0; i < n; i++) {
        const ps_field_t *f = &fs[i];
        choices(f, zh, vals, sizeof(vals));
        if (json) {
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b, s:s, s:s}", "name", f->name, "label_zh", f->zh,
                                                 "type", ps_ftype_name(f->type, 0), "required", f->required, "help",
                                                 zh ? f->help_zh : f->help_en, "values", vals));
            continue;
        }
        cell(f->name, 16);
        cell(f->zh, 12);
        cell(ps_ftype_name(f->type, zh), zh ? 8 : 13);
        cell(f->required ? (zh ? "是" : "yes") : (zh ? "否" : "no"), 8);
        printf("%s%s%s\n", zh ? f->help_zh : f->help_en, *vals ? (zh ? "；可选：" : "; one of: ") : "", vals);
    }
    if (json) {
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(arr);
    }
    return PS_EXIT_OK;
}

int ps_cmd_fields(ps_cli_t *cli, int argc, char **argv)
{
    int kind, zh = 0, json = cli ? cli->json : 0, rc;
    const char *out = NULL;

    rc = parse(argc, argv, &kind, &zh, &out, &json);
    if (rc)
        return fields_usage("fields", rc > 0 ? stdout : stderr);
    return print_fields(kind, zh, json);
}

int ps_cmd_template(ps_cli_t *cli, int argc, char **argv)
{
    ps_recio_writer_t w;
    int kind, zh = 0, json = 0, rc;
    const char *out = NULL;
    FILE *f;

    (void)cli;
    rc = parse(argc, argv, &kind, &zh, &out, &json);
    if (rc || !out)
        return fields_usage("template", rc > 0 ? stdout : stderr);
    f = fopen(out, "wb");
    if (!f) {
        ps_cli_err("template: cannot create %s", out);
        return PS_EXIT_FAIL;
    }
    rc = ps_recio_writer_begin(&w, f, PS_RECIO_CSV, kind, PS_RECIO_BOM | (zh ? PS_RECIO_ZH : 0));
    rc = ps_recio_writer_end(&w) || rc;
    if (fclose(f) != 0 || rc) {
        ps_cli_err("template: cannot write %s", out);
        return PS_EXIT_FAIL;
    }
    printf(zh ? "已写入 %s：填好后用 popsync import %s --kind %s 导入\n"
              : "wrote %s: fill it in, then popsync import %s --kind %s\n",
           out, out, ps_kind_name(kind));
    return PS_EXIT_OK;
}
