/* cmd_records.c - add, edit, delete, show and list: records in the local cache.
 *
 * All of these work with no server: changes go to the outbox and travel at
 * the next `popsync sync`.  Each record is validated (common/validate.c)
 * before it is stored, with the same rules the server applies.
 */
#include "cli.h"
#include "late.h"
#include "cache.h"
#include "err.h"
#include "ids.h"
#include "dupcheck.h"
#include "i18n.h"
#include "report.h"
#include "xrules.h"
#include "fields.h"
#include "record_fmt.h"
#include "policy.h"
#include "scope.h"
#include "validate.h"
#include "vctx.h"
#include "vec.h"

#include <csv.h>
#include <jansson.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SETS 128

static int open_cache(ps_cli_t *cli, const char *cmd, ps_cache_t **c)
{
    char err[512];
    int rc = ps_cache_open(c, cli->data_dir, err, sizeof(err));
    if (rc)
        ps_cli_err("%s: %s", cmd, err);
    else /* mother_id=<ID number> and the like name a person of this cache */
        ps_record_set_person_resolver(ps_dup_resolve, *c);
    return rc;
}

/* A --set the record refused, in the clerk's language: in Chinese the
 * field's label and its reason, or for a value that is none of the
 * choices, the choices as `popsync fields --lang zh` gives them. */
static void say_bad_set(const char *cmd, const Popsync__Record *r, const char *set, const char *err)
{
    char name[128], pre[160], t[1024];
    const ps_field_t *f;
    const char *reason = err;

    snprintf(name, sizeof(name), "%.*s", (int)strcspn(set, "="), set);
    if (ps_report_lang_zh(NULL) == 1 && !ps_field_find((int)r->kind, name) && strncmp(err, "unknown field", 13) == 0) {
        size_t n, used = 0;
        const ps_field_t *fs = ps_fields_of((int)r->kind, &n);
        for (size_t i = 0; i < n && used + 1 < sizeof(t); i++)
            used += (size_t)snprintf(t + used, sizeof(t) - used, "%s%s", i ? "、" : "", fs[i].zh);
        ps_cli_err("%s: --set %s: 没有这个字段；可用的字段：%s（详见 popsync fields %s --lang zh）", cmd, name, t,
                   ps_kind_name((int)r->kind));
        return;
    }
    if (ps_report_lang_zh(NULL) != 1 || !(f = ps_field_find((int)r->kind, name))) {
        ps_cli_err("%s: --set %s: %s", cmd, name, err);
        return;
    }
    snprintf(pre, sizeof(pre), "field '%s': ", f->stored ? f->stored : f->name);
    if (strncmp(reason, pre, strlen(pre)) == 0)
        reason += strlen(pre);
    if (strncmp(reason, "invalid value", 13) == 0)
        ps_cli_err("%s: --set %s: 不是可选的值：%s", cmd, f->zh, f->help_zh);
    else
        ps_cli_err("%s: --set %s: %s", cmd, f->zh, ps_i18n_reason(reason, t, sizeof(t)));
}

/* Applies --set and --json edits; reports the first bad one. */
static int apply_edits(const char *cmd, Popsync__Record *r, char **sets, size_t nsets, const char *json)
{
    char err[1024];
    for (size_t i = 0; i < nsets; i++) {
        if (ps_record_set_kv(r, sets[i], err, sizeof(err)) != PS_OK) {
            say_bad_set(cmd, r, sets[i], err);
            return PS_EXIT_INVALID;
        }
    }
    if (json) {
        json_error_t je;
        json_t *obj = json_loads(json, 0, &je);
        int rc;
        if (!obj || !json_is_object(obj)) {
            ps_cli_err("%s: --json: not a JSON object (%s)", cmd, obj ? "wrong type" : je.text);
            json_decref(obj);
            return PS_EXIT_INVALID;
        }
        rc = ps_record_from_json(r, obj, err, sizeof(err));
        json_decref(obj);
        if (rc) {
            ps_cli_err("%s: --json: %s", cmd, err);
            return PS_EXIT_INVALID;
        }
    }
    /* Sex and birth date the ID number already says need not be typed. */
    ps_fields_complete(r);
    return PS_EXIT_OK;
}

static int validate_or_report(const char *cmd, ps_cache_t *c, const Popsync__Record *r,
                              const Popsync__Record *current)
{
    ps_client_vctx_t vc;
    ps_verrs_t v;
    char id[PS_UUID_STR];
    size_t n;
    int zh;
    memset(&v, 0, sizeof(v));
    ps_client_vctx_init(&vc, c);
    vc.ctx.current = current;
    n = ps_validate_record(r, &vc.ctx, &v);
    ps_client_vctx_free(&vc);
    /* Rules between records, once the record is sound on its own. */
    if (n == 0)
        n = ps_xrules_check(c, r, current, &v);
    if (n == 0)
        return PS_EXIT_OK;
    ps_uuid_format(r->id.data, id);
    zh = ps_report_lang_zh(NULL) == 1;
    for (size_t i = 0; i < v.n && i < PS_VERR_MAX; i++) {
        const ps_field_t *f = ps_field_find((int)r->kind, v.e[i].field);
        char raw[256], val[128], t[512];
        const char *reason = zh ? ps_i18n_reason(v.e[i].reason, t, sizeof(t)) : v.e[i].reason;
        val[0] = '\0';
        if (ps_record_get_text(r, v.e[i].field, raw, sizeof(raw)) == PS_OK && *raw)
            ps_field_shown((int)r->kind, v.e[i].field, raw, val, sizeof(val));
        ps_cli_err("%s: record %s: %s: %s%s%s%s", cmd, id, zh && f ? f->zh : v.e[i].field, reason,
                   *val ? (zh ? "（值：" : "; value: ") : "", val, *val && zh ? "）" : "");
    }
    return PS_EXIT_INVALID;
}

/* After a change is stored: a note for each approved month whose counts it
 * changes (client/late.h).  The change stands; the clerk tells the district. */
static void warn_late(const char *cmd, ps_cache_t *c, const Popsync__Record *r, const Popsync__Record *before)
{
    ps_late_t late[8];
    ps_orgunits_t *tree = ps_client_orgunits(c);
    size_t n = ps_late_months(c, tree, r, before, late, 8);
    ps_late_warn(cmd, late, n, ps_report_lang_zh(NULL) == 1);
    ps_orgunits_free(tree);
}

/* Parses the --set/--json options shared by add and edit. */
/* An edit may not give a person another registered person's ID number.  An
 * edit that keeps the number the person already had is not a new
 * registration: two records that share one (stored before the rule) stay
 * editable until merged, as on the server. */
/* The person already registered under the ID number, in the clerk's language. */
static void say_duplicate(const char *cmd, const Popsync__Record *dup)
{
    char why[256];
    int zh = ps_report_lang_zh(NULL) == 1;

    ps_cli_err(zh ? "%s: %s" : "%s: id_number %s", cmd, ps_dup_describe(dup, zh, why, sizeof(why)));
}

static int refuse_duplicate(const char *cmd, ps_cache_t *c, const Popsync__Record *r, const Popsync__Record *before)
{
    Popsync__Record *dup = NULL;

    if (before && !before->deleted && before->body_case == POPSYNC__RECORD__BODY_PERSON &&
        r->body_case == POPSYNC__RECORD__BODY_PERSON && before->person->id_number &&
        r->person->id_number && strcmp(before->person->id_number, r->person->id_number) == 0)
        return PS_EXIT_OK;
    if (ps_dup_person(c, r, &dup) != PS_OK)
        return PS_EXIT_FAIL;
    if (!dup)
        return PS_EXIT_OK;
    say_duplicate(cmd, dup);
    ps_record_free(dup);
    return PS_EXIT_INVALID;
}

/* --set/--json, and --update where update is not NULL (add). */
/* parse_edit_opts's answer to --help (not an exit code). */
#define OPTS_HELP (-1)

/* What only add takes. */
typedef struct add_opts {
    int update;             /* --update: a registered person gets the values */
    const char *child_name; /* add birth --child-name: register the child too */
    const char *child_idn;  /* --child-id-number (optional for a newborn) */
} add_opts_t;

static int parse_edit_opts(int argc, char **argv, char **sets, size_t *nsets, const char **json, add_opts_t *add)
{
    static const struct option lo[] = {{"set", required_argument, NULL, 's'},
                                       {"json", required_argument, NULL, 'j'},
                                       {"update", no_argument, NULL, 'u'},
                                       {"child-name", required_argument, NULL, 'c'},
                                       {"child-id-number", required_argument, NULL, 'i'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    int opt;
    *nsets = 0;
    *json = NULL;
    while ((opt = getopt_long(argc, argv, "s:", lo, NULL)) != -1) {
        switch (opt) {
        case 's':
            if (*nsets == MAX_SETS) {
                ps_cli_err("too many --set options");
                return PS_EXIT_USAGE;
            }
            sets[(*nsets)++] = optarg;
            break;
        case 'j': *json = optarg; break;
        case 'u':
        case 'c':
        case 'i':
            if (!add)
                return PS_EXIT_USAGE;
            if (opt == 'u')
                add->update = 1;
            else if (opt == 'c')
                add->child_name = optarg;
            else
                add->child_idn = optarg;
            break;
        case 'h': return OPTS_HELP;
        default: return PS_EXIT_USAGE;
        }
    }
    return PS_EXIT_OK;
}

static int add_usage(FILE *f)
{
    fprintf(f, "usage: popsync add KIND --set FIELD=VALUE ... | --json '{...}' [--update]\n"
               "       popsync add birth --set mother_id=ID ... --child-name NAME [--child-id-number N]\n"
               "  Adds a record to this cache (offline; `popsync sync` sends it).  FIELD is the\n"
               "  English name or the Chinese label (popsync fields KIND); a person reference\n"
               "  (mother_id, person_id, head_id) may be the person's ID number.  A person whose ID\n"
               "  number is already registered is refused, unless --update: then the values go into\n"
               "  the registered person.  add birth --child-name registers the child as a person too\n"
               "  (same sex and birth date, the mother's household; ID number optional in its first\n"
               "  year) and links it: the birth's id is printed, then 'child: ID'.\n"
               "  example: popsync add person --set 姓名=张三 --set 身份证号=110105199003071234\n"
               "           popsync add birth --set 母亲=110105199003071234 --set 婴儿性别=女 \\\n"
               "               --set 出生日期=2026/11/20 --set 孩次=1 --child-name 张小花\n");
    return f == stdout ? PS_EXIT_OK : PS_EXIT_USAGE;
}

/* The child of birth b as a person of its own: name from --child-name, sex
 * and birth date from the birth, the mother's household and unit; linked
 * from b->child_id.  Validated (and refused like an add) before anything
 * is stored.  *out: the child (caller frees). */
static int make_child(ps_cache_t *c, Popsync__Record *b, const add_opts_t *ao, Popsync__Record **out)
{
    Popsync__Record *ch = NULL, *mother = NULL, *dup = NULL;
    char err[256], sex[16];
    int rc = PS_EXIT_FAIL;

    if (ps_record_new(&ch, POPSYNC__KIND__KIND_PERSON) != PS_OK || !(ch->id.data = malloc(PS_ID_LEN)))
        goto out;
    ch->id.len = PS_ID_LEN;
    ps_record_get_text(b, "child_sex", sex, sizeof(sex));
    if (ps_uuid7(ch->id.data) != PS_OK || ps_record_set(ch, "orgunit", b->orgunit, err, sizeof(err)) ||
        ps_record_set(ch, "sex", sex, err, sizeof(err)) ||
        ps_record_set(ch, "birth_date", b->birth->birth_date, err, sizeof(err)))
        goto invalid;
    if (ps_record_set(ch, "name", ao->child_name, err, sizeof(err)) ||
        (ao->child_idn && ps_record_set(ch, "id_number", ao->child_idn, err, sizeof(err))))
        goto invalid;
    if (b->birth->mother_id.len == PS_ID_LEN && ps_cache_get(c, b->birth->mother_id.data, &mother) == PS_OK &&
        mother->person && mother->person->household_id.len == PS_ID_LEN) {
        char hh[PS_UUID_STR];
        ps_uuid_format(mother->person->household_id.data, hh);
        ps_record_set(ch, "household_id", hh, err, sizeof(err));
    }
    if (ps_dup_person(c, ch, &dup) != PS_OK)
        goto out;
    if (dup) {
        ps_cli_err("add: --child-id-number %s", ps_dup_describe(dup, 0, err, sizeof(err)));
        rc = PS_EXIT_INVALID;
        goto out;
    }
    if ((rc = validate_or_report("add", c, ch, NULL)))
        goto out;
    if (!(b->birth->child_id.data = malloc(PS_ID_LEN)))
        goto out;
    memcpy(b->birth->child_id.data, ch->id.data, PS_ID_LEN);
    b->birth->child_id.len = PS_ID_LEN;
    *out = ch;
    ch = NULL;
    rc = PS_EXIT_OK;
    goto out;
invalid:
    ps_cli_err("add: child: %s", err);
    rc = PS_EXIT_INVALID;
out:
    ps_record_free(ch);
    ps_record_free(mother);
    ps_record_free(dup);
    return rc;
}

/* The record, with the child it registers first, in one transaction. */
static int store_with_child(ps_cache_t *c, Popsync__Record *child, Popsync__Record *r)
{
    Popsync__Record *both[2] = {child, r};

    return child ? ps_cache_put_local_many(c, both, 2) : ps_cache_put_local(c, r);
}

/* `popsync add`: its options, then one call per step (about 95 lines with
 * the duplicate check's --update branch, which needs the record it replaces). */
int ps_cmd_add(ps_cli_t *cli, int argc, char **argv)
{
    char *sets[MAX_SETS];
    size_t nsets;
    const char *json;
    ps_cache_t *c = NULL;
    Popsync__Record *r = NULL, *dup = NULL, *child = NULL;
    char id[PS_UUID_STR];
    add_opts_t ao = {0, NULL, NULL};
    int kind, rc;

    if ((rc = parse_edit_opts(argc, argv, sets, &nsets, &json, &ao)))
        return rc == OPTS_HELP ? add_usage(stdout) : rc;
    if (optind != argc - 1) {
        ps_cli_err("add: give exactly one KIND (person, household, birth, migration, benefit, service_visit)");
        return PS_EXIT_USAGE;
    }
    kind = ps_kind_from_name(argv[optind]);
    if (kind < 0) {
        ps_cli_err("add: unknown kind '%s'", argv[optind]);
        return PS_EXIT_USAGE;
    }
    if (open_cache(cli, "add", &c))
        return PS_EXIT_FAIL;
    rc = PS_EXIT_FAIL;
    if (ps_record_new(&r, kind) != PS_OK)
        goto out;
    r->id.data = malloc(PS_ID_LEN);
    if (!r->id.data)
        goto out;
    r->id.len = PS_ID_LEN;
    if (ps_uuid7(r->id.data) != PS_OK)
        goto out;
    {
        char err[128];
        /* The certificate's unit is the default owner; --set orgunit= overrides. */
        if (ps_record_set(r, "orgunit", ps_cache_meta(c)->orgunit, err, sizeof(err)) != PS_OK)
            goto out;
    }
    if ((rc = apply_edits("add", r, sets, nsets, json)))
        goto out;
    /* One live person per ID number: a second is refused, or with
     * --update the values given go into the one already registered. */
    if (ps_dup_person(c, r, &dup) != PS_OK) {
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (dup && !ao.update) {
        say_duplicate("add", dup);
        rc = PS_EXIT_INVALID;
        goto out;
    }
    if (dup) {
        ps_record_free(r);
        r = dup;
        dup = NULL;
        if (ps_cache_get(c, r->id.data, &dup) != PS_OK || (rc = apply_edits("add", r, sets, nsets, json)))
            goto out;
    }
    if ((rc = validate_or_report("add", c, r, dup)))
        goto out;
    /* After the birth is judged: its child_id names a record not stored yet. */
    if (ao.child_name && (kind != POPSYNC__KIND__KIND_BIRTH || (rc = make_child(c, r, &ao, &child))))
        goto child_fail;
    if (store_with_child(c, child, r) != PS_OK) {
        ps_cli_err("add: cannot store the record");
        rc = PS_EXIT_FAIL;
        goto out;
    }
    warn_late("add", c, r, dup);
    ps_uuid_format(r->id.data, id);
    printf("%s\n", id);
    if (child) {
        ps_uuid_format(child->id.data, id);
        printf("child: %s\n", id);
    }
    rc = PS_EXIT_OK;
    goto out;
child_fail:
    if (kind != POPSYNC__KIND__KIND_BIRTH) {
        ps_cli_err("add: --child-name is for add birth");
        rc = PS_EXIT_USAGE;
    }
out:
    if (r)
        ps_record_free(r);
    if (dup)
        ps_record_free(dup);
    if (child)
        ps_record_free(child);
    ps_cache_close(c);
    return rc;
}

/* Loads the record named by argv's positional ID. */
/* The live person holding an ID number as a clerk types it (full-width
 * digits, a lower-case x), so that a person's record can be named without
 * its record id. */
int ps_cli_person_by_number(struct ps_cache *c, const char *text, uint8_t id[16])
{
    const ps_field_t *f = ps_field_find(POPSYNC__KIND__KIND_PERSON, "id_number");
    const char *why;
    char norm[64];

    if (!f || ps_field_normalize(f, text, norm, sizeof(norm), &why) != 0 || strlen(norm) != 18)
        return PS_ENOTFOUND;
    return ps_dup_resolve(c, norm, id);
}

static int load_by_id(const char *cmd, ps_cache_t *c, const char *idtext, Popsync__Record **r)
{
    uint8_t id[PS_ID_LEN];
    int rc;
    if (ps_uuid_parse(idtext, id) != PS_OK && ps_cli_person_by_number(c, idtext, id) != PS_OK) {
        ps_cli_err("%s: '%s' is neither a record id nor the ID number of a live person in this cache "
                   "(popsync find shows both)",
                   cmd, idtext);
        return PS_EXIT_USAGE;
    }
    rc = ps_cache_get(c, id, r);
    if (rc == PS_ENOTFOUND) {
        ps_cli_err("%s: no record %s in this cache", cmd, idtext);
        ps_cli_refused_hint(c, id, idtext);
        return PS_EXIT_NOTFOUND;
    }
    if (rc) {
        ps_cli_err("%s: %s", cmd, ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    return PS_EXIT_OK;
}

int ps_cmd_edit(ps_cli_t *cli, int argc, char **argv)
{
    char *sets[MAX_SETS];
    size_t nsets;
    const char *json;
    ps_cache_t *c = NULL;
    Popsync__Record *r = NULL;
    int rc, same = 0;

    if ((rc = parse_edit_opts(argc, argv, sets, &nsets, &json, NULL)) == OPTS_HELP) {
        printf("usage: popsync edit ID --set FIELD=VALUE ... | --json '{...}'\n"
               "  changes fields of a record in this cache (offline; `popsync sync` sends it).  FIELD\n"
               "  is the English name or the Chinese label; \"\" clears a field.  A change that leaves\n"
               "  the record as it was writes nothing.\n"
               "  example: popsync edit 0199c1e2-... --set 联系电话=13800000000\n");
        return PS_EXIT_OK;
    }
    if (rc)
        return rc;
    if (optind != argc - 1 || (nsets == 0 && !json)) {
        ps_cli_err("edit: usage: edit ID --set FIELD=VALUE ... | --json '{...}'");
        return PS_EXIT_USAGE;
    }
    if (open_cache(cli, "edit", &c))
        return PS_EXIT_FAIL;
    if ((rc = load_by_id("edit", c, argv[optind], &r)))
        goto out;
    if (r->deleted) {
        ps_cli_err("edit: record %s is deleted", argv[optind]);
        rc = PS_EXIT_NOTFOUND;
        goto out;
    }
    {
        /* Keep the version being edited: validation judges what changed. */
        Popsync__Record *before = NULL;
        if (ps_cache_get(c, r->id.data, &before) != PS_OK) {
            rc = PS_EXIT_FAIL;
            goto out;
        }
        rc = apply_edits("edit", r, sets, nsets, json);
        if (!rc)
            same = ps_record_same_content(before, r);
        if (!rc && !same)
            rc = ps_other_place_refuse(c, "edit", before, r);
        if (!rc && !same)
            rc = refuse_duplicate("edit", c, r, before);
        if (!rc && !same)
            rc = validate_or_report("edit", c, r, before);
        if (!rc && same)
            /* Nothing changes, so nothing is written: no revision, nothing to push. */
            ps_cli_err("edit: record %s already has these values; nothing changed", argv[optind]);
        if (!rc && !same && ps_cache_put_local(c, r) != PS_OK) {
            ps_cli_err("edit: cannot store the record");
            rc = PS_EXIT_FAIL;
        } else if (!rc && !same) {
            warn_late("edit", c, r, before);
        }
        protobuf_c_message_free_unpacked(&before->base, NULL);
    }
out:
    if (r)
        ps_record_free(r);
    ps_cache_close(c);
    return rc;
}

/* ---- delete and restore ----------------------------------------------------
 *
 * A record that other live records refer to (ps_record_refs: a person's
 * births, migrations, benefits and visits, the household she heads; a
 * household's members) is not deleted unless the clerk says what becomes of
 * them: --cascade deletes them too, and everything that would in turn refer
 * to a deleted record, deepest first; --force deletes only the record and
 * leaves them referring to a tombstone (the quality report lists them).
 * Only the records this cache holds are seen (docs/sync.md §7 says what the
 * server does about the others).  `restore` undoes a delete. */

#define DEP_LEVELS 64 /* bound on cascade depth; the schema needs 4 */

typedef struct deps {
    Popsync__Record **recs; /* referring records found, level by level (copies) */
    const char **fields;    /* the field by which each refers to the level above */
    unsigned *level;
    size_t n, cap;
    size_t lo, hi;          /* this scan's targets: the root when lo == hi, else recs[lo..hi) */
    const uint8_t *root;
    int oom;
} deps_t;

static Popsync__Record *copy_record(const Popsync__Record *r)
{
    size_t sz = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *buf = malloc(sz ? sz : 1);
    Popsync__Record *copy;

    if (!buf)
        return NULL;
    protobuf_c_message_pack(&r->base, buf);
    copy = popsync__record__unpack(NULL, sz, buf);
    free(buf);
    return copy;
}

static int dep_known(const deps_t *d, const uint8_t *id)
{
    if (memcmp(id, d->root, PS_ID_LEN) == 0)
        return 1;
    for (size_t i = 0; i < d->n; i++)
        if (memcmp(d->recs[i]->id.data, id, PS_ID_LEN) == 0)
            return 1;
    return 0;
}

static int dep_target(const deps_t *d, const uint8_t *id)
{
    if (d->lo == d->hi)
        return memcmp(id, d->root, PS_ID_LEN) == 0;
    for (size_t i = d->lo; i < d->hi; i++)
        if (memcmp(d->recs[i]->id.data, id, PS_ID_LEN) == 0)
            return 1;
    return 0;
}

static int dep_add(deps_t *d, const Popsync__Record *r, const char *field, unsigned level)
{
    if (d->n == d->cap) {
        size_t ncap = d->cap;
        if (PS_VEC_ROOM(d->recs, d->n, ncap, 16) || PS_VEC_RESIZE(d->fields, ncap) || PS_VEC_RESIZE(d->level, ncap))
            return PS_ENOMEM;
        d->cap = ncap;
    }
    if (!(d->recs[d->n] = copy_record(r)))
        return PS_ENOMEM;
    d->fields[d->n] = field;
    d->level[d->n] = level;
    d->n++;
    return PS_OK;
}

static int dep_scan_one(Popsync__Record *r, void *arg)
{
    deps_t *d = arg;
    ps_ref_t refs[PS_REFS_MAX];
    size_t n;

    if (r->deleted || r->id.len != PS_ID_LEN || dep_known(d, r->id.data))
        return 0;
    n = ps_record_refs(r, refs);
    for (size_t i = 0; i < n; i++) {
        if (!dep_target(d, refs[i].id))
            continue;
        if (dep_add(d, r, refs[i].field, d->lo == d->hi ? 0 : d->level[d->lo] + 1)) {
            d->oom = 1;
            return 1;
        }
        return 0;
    }
    return 0;
}

/* The live records that refer to root (level 0) and, when transitive, the
 * ones that refer to those, and so on. */
static int find_deps(ps_cache_t *c, const uint8_t *root, int transitive, deps_t *d)
{
    int rc;

    memset(d, 0, sizeof(*d));
    d->root = root;
    for (unsigned level = 0; level < DEP_LEVELS; level++) {
        size_t before = d->n;
        if ((rc = ps_cache_foreach(c, dep_scan_one, d)) || d->oom)
            return rc ? rc : PS_ENOMEM;
        if (!transitive || d->n == before)
            break;
        d->lo = before;
        d->hi = d->n;
    }
    return PS_OK;
}

static void deps_free(deps_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        ps_record_free(d->recs[i]);
    free(d->recs);
    free(d->fields);
    free(d->level);
    memset(d, 0, sizeof(*d));
}

/* A short description of a record for the clerk's own terminal: a few
 * fields by kind (a person's name, never an ID number). */
static void describe(const Popsync__Record *r, char *out, size_t len)
{
    static const struct {
        int kind;
        const char *f[3];
    } D[] = {{POPSYNC__KIND__KIND_PERSON, {"name", "birth_date", NULL}},
             {POPSYNC__KIND__KIND_HOUSEHOLD, {"address", NULL, NULL}},
             {POPSYNC__KIND__KIND_BIRTH, {"birth_date", "child_sex", NULL}},
             {POPSYNC__KIND__KIND_MIGRATION, {"direction", "start_date", NULL}},
             {POPSYNC__KIND__KIND_BENEFIT, {"scheme", "period", "status"}},
             {POPSYNC__KIND__KIND_SERVICE_VISIT, {"service", "visit_date", NULL}}};
    size_t off = 0;

    out[0] = '\0';
    for (size_t k = 0; k < sizeof(D) / sizeof(D[0]); k++) {
        if (D[k].kind != (int)r->kind)
            continue;
        for (size_t i = 0; i < 3 && D[k].f[i] && off + 3 < len; i++) {
            char v[160];
            if (ps_record_get_text(r, D[k].f[i], v, sizeof(v)) != PS_OK || !v[0])
                continue;
            for (char *p = v; *p; p++)
                if ((unsigned char)*p < 0x20)
                    *p = ' ';
            off += (size_t)snprintf(out + off, len - off, "%s%s", off ? ", " : "", v);
            if (off >= len)
                break;
        }
    }
}

/* One line per dependent, indented by its depth: in the order found (each
 * under the record it refers to), or, reversed, in the order a cascade
 * deletes them. */
static void print_deps(FILE *f, const deps_t *d, int reversed)
{
    for (size_t j = 0; j < d->n; j++) {
        size_t i = reversed ? d->n - 1 - j : j;
        char id[PS_UUID_STR], desc[256];
        ps_uuid_format(d->recs[i]->id.data, id);
        describe(d->recs[i], desc, sizeof(desc));
        fprintf(f, "  %*s%-13s %s  %s  %s\n", (int)(2 * d->level[i]), "", ps_kind_name((int)d->recs[i]->kind), id,
                d->fields[i], desc);
    }
}

/* --cascade: every dependent, deepest first, then the record: one
 * transaction, so the cache never holds half a cascade. */
static int delete_cascade(ps_cache_t *c, Popsync__Record *r, deps_t *d, const char *idtext)
{
    Popsync__Record **all = malloc((d->n + 1) * sizeof(*all));
    int rc;

    if (!all)
        return PS_EXIT_FAIL;
    for (size_t i = 0; i < d->n; i++) {
        all[i] = d->recs[d->n - 1 - i];
        all[i]->deleted = 1;
    }
    all[d->n] = r;
    r->deleted = 1;
    printf("deleting %zu record(s) that refer to %s first, in this order:\n", d->n, idtext);
    print_deps(stdout, d, 1);
    rc = ps_cache_put_local_many(c, all, d->n + 1);
    free(all);
    if (rc) {
        ps_cli_err("delete: cannot store the change: %s", ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    printf("deleted %s and %zu record(s) that referred to it\n", idtext, d->n);
    return PS_EXIT_OK;
}

static int delete_usage(void)
{
    ps_cli_err("delete: usage: delete ID [--cascade | --force]");
    return PS_EXIT_USAGE;
}

int ps_cmd_delete(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"cascade", no_argument, NULL, 'c'},
                                       {"force", no_argument, NULL, 'f'},
                                       {NULL, 0, NULL, 0}};
    ps_cache_t *c = NULL;
    Popsync__Record *r = NULL;
    deps_t d;
    int opt, rc, cascade = 0, force = 0;

    memset(&d, 0, sizeof(d));
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt == 'c')
            cascade = 1;
        else if (opt == 'f')
            force = 1;
        else
            return delete_usage();
    }
    if (optind != argc - 1 || (cascade && force))
        return delete_usage();
    if (open_cache(cli, "delete", &c))
        return PS_EXIT_FAIL;
    if ((rc = load_by_id("delete", c, argv[optind], &r)) || r->deleted)
        goto out;
    {
        /* The other place of a migration may not delete it (the server's rule). */
        Popsync__Record gone = *r;
        gone.deleted = 1;
        if ((rc = ps_other_place_refuse(c, "delete", r, &gone)))
            goto out;
        /* A spot check only the district may delete (common/policy.c). */
        if (ps_policy_district_drawn((int)r->kind) && (rc = validate_or_report("delete", c, &gone, r)))
            goto out;
    }
    if ((rc = find_deps(c, r->id.data, !force, &d))) {
        ps_cli_err("delete: %s", ps_strerror(rc));
        rc = PS_EXIT_FAIL;
        goto out;
    }
    if (d.n > 0 && cascade) {
        rc = delete_cascade(c, r, &d, argv[optind]);
        goto out;
    }
    if (d.n > 0 && !force) {
        ps_cli_err("delete: %zu record(s) refer to %s; nothing was deleted:", d.n, argv[optind]);
        print_deps(stderr, &d, 0);
        ps_cli_err("delete: give --cascade to delete them too (listed above, deleted first), or --force to "
                   "delete only %s and leave them referring to a deleted record",
                   argv[optind]);
        rc = PS_EXIT_INVALID;
        goto out;
    }
    if (d.n > 0) {
        ps_cli_err("delete: --force: %zu record(s) still refer to %s (the quality report lists them):", d.n,
                   argv[optind]);
        print_deps(stderr, &d, 0);
    }
    r->deleted = 1;
    if (ps_cache_put_local(c, r) != PS_OK) {
        ps_cli_err("delete: cannot store the change");
        rc = PS_EXIT_FAIL;
    } else {
        r->deleted = 0; /* the version that counted */
        warn_late("delete", c, NULL, r);
    }
out:
    deps_free(&d);
    if (r)
        ps_record_free(r);
    ps_cache_close(c);
    return rc;
}

/* After a restore: references of r that name a tombstone this cache holds. */
static void note_deleted_refs(ps_cache_t *c, const Popsync__Record *r, const char *idtext)
{
    ps_ref_t refs[PS_REFS_MAX];
    size_t n = ps_record_refs(r, refs);

    for (size_t i = 0; i < n; i++) {
        Popsync__Record *t = NULL;
        char tid[PS_UUID_STR];
        if (ps_cache_get(c, refs[i].id, &t) != PS_OK)
            continue;
        if (t->deleted) {
            ps_uuid_format(refs[i].id, tid);
            ps_cli_err("restore: note: %s of %s names %s %s, which is deleted; 'popsync restore %s' brings it back",
                       refs[i].field, idtext, ps_kind_name((int)t->kind), tid, tid);
        }
        ps_record_free(t);
    }
}

int ps_cmd_restore(ps_cli_t *cli, int argc, char **argv)
{
    ps_cache_t *c = NULL;
    Popsync__Record *r = NULL, *before = NULL;
    int rc;

    if (argc != 2) {
        ps_cli_err("restore: usage: restore ID");
        return PS_EXIT_USAGE;
    }
    if (open_cache(cli, "restore", &c))
        return PS_EXIT_FAIL;
    if ((rc = load_by_id("restore", c, argv[1], &r)))
        goto out;
    if (!r->deleted) {
        ps_cli_err("restore: record %s is not deleted; nothing to do", argv[1]);
        goto out;
    }
    /* A new revision of the tombstone with deleted = false, judged like an
     * edit of it: its references, unchanged, are not looked up again. */
    if (!(before = copy_record(r))) {
        rc = PS_EXIT_FAIL;
        goto out;
    }
    r->deleted = 0;
    if ((rc = ps_other_place_refuse(c, "restore", before, r)) || (rc = validate_or_report("restore", c, r, before)))
        goto out;
    if (ps_cache_put_local(c, r) != PS_OK) {
        ps_cli_err("restore: cannot store the change");
        rc = PS_EXIT_FAIL;
        goto out;
    }
    warn_late("restore", c, r, NULL);
    note_deleted_refs(c, r, argv[1]);
out:
    if (before)
        ps_record_free(before);
    if (r)
        ps_record_free(r);
    ps_cache_close(c);
    return rc;
}

static int parse_format(const char *s, const char *cmd)
{
    if (strcmp(s, "table") == 0)
        return 0;
    if (strcmp(s, "json") == 0)
        return 1;
    if (strcmp(s, "csv") == 0)
        return 2;
    ps_cli_err("%s: unknown format '%s' (table, json or csv)", cmd, s);
    return -1;
}

int ps_cmd_show(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"format", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
    ps_cache_t *c = NULL;
    Popsync__Record *r = NULL;
    json_t *j;
    int opt, rc, fmt = cli->json ? 1 : 0;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt != 'f' || (fmt = parse_format(optarg, "show")) < 0)
            return PS_EXIT_USAGE;
    }
    if (optind != argc - 1) {
        ps_cli_err("show: usage: show ID [--format json|table]");
        return PS_EXIT_USAGE;
    }
    if (open_cache(cli, "show", &c))
        return PS_EXIT_FAIL;
    if ((rc = load_by_id("show", c, argv[optind], &r)))
        goto out;
    j = ps_record_to_json(r);
    if (fmt == 1) {
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        const char *key;
        json_t *val;
        json_object_foreach(j, key, val) {
            char *txt = json_is_string(val) ? NULL : json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
            printf("%-16s %s\n", key, txt ? txt : json_string_value(val));
            free(txt);
        }
    }
    json_decref(j);
out:
    if (r)
        ps_record_free(r);
    ps_cache_close(c);
    return rc;
}

typedef struct list_ctx {
    int kind;               /* -1: all */
    const char *orgunit;    /* subtree filter or NULL */
    ps_orgunits_t *units;   /* the cache's tree for the subtree rule, or NULL */
    int deleted;            /* include tombstones */
    Popsync__Record **recs; /* kept for table and csv output */
    size_t n, cap;
    json_t *arr;            /* json output */
    int oom;
} list_ctx_t;

static int list_one(Popsync__Record *r, void *arg)
{
    list_ctx_t *l = arg;
    if (l->kind >= 0 && (int)r->kind != l->kind)
        return 0;
    if (r->deleted && !l->deleted)
        return 0;
    if (l->orgunit && !ps_policy_within(l->units, r->orgunit, l->orgunit))
        return 0;
    if (l->arr) {
        json_array_append_new(l->arr, ps_record_to_json(r));
        return 0;
    }
    if (PS_VEC_ROOM(l->recs, l->n, l->cap, 64)) {
        l->oom = 1;
        return 1;
    }
    /* The cache frees r after the callback: keep a copy. */
    {
        size_t sz = protobuf_c_message_get_packed_size(&r->base);
        uint8_t *buf = malloc(sz ? sz : 1);
        Popsync__Record *copy;
        if (!buf) {
            l->oom = 1;
            return 1;
        }
        protobuf_c_message_pack(&r->base, buf);
        copy = popsync__record__unpack(NULL, sz, buf);
        free(buf);
        if (!copy) {
            l->oom = 1;
            return 1;
        }
        l->recs[l->n++] = copy;
    }
    return 0;
}

static void csv_cell(FILE *f, const char *s, int first)
{
    if (!first)
        fputc(',', f);
    csv_fwrite(f, s, strlen(s));
}

/* `popsync list`: one getopt switch and one scan in three output forms
 * (about 90 lines). */
int ps_cmd_list(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"kind", required_argument, NULL, 'k'},
                                       {"orgunit", required_argument, NULL, 'o'},
                                       {"format", required_argument, NULL, 'f'},
                                       {"deleted", no_argument, NULL, 'd'},
                                       {NULL, 0, NULL, 0}};
    list_ctx_t l;
    ps_cache_t *c = NULL;
    const char *cols[64];
    size_t ncols = 0;
    int opt, rc, fmt = cli->json ? 1 : 0;

    memset(&l, 0, sizeof(l));
    l.kind = -1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'k':
            l.kind = ps_kind_from_name(optarg);
            if (l.kind < 0) {
                ps_cli_err("list: unknown kind '%s'", optarg);
                return PS_EXIT_USAGE;
            }
            break;
        case 'o':
            if (!ps_orgunit_valid(optarg)) {
                ps_cli_err("list: --orgunit needs a 12-digit code");
                return PS_EXIT_USAGE;
            }
            l.orgunit = optarg;
            break;
        case 'f':
            if ((fmt = parse_format(optarg, "list")) < 0)
                return PS_EXIT_USAGE;
            break;
        case 'd': l.deleted = 1; break;
        default: return PS_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        ps_cli_err("list: unexpected argument '%s'", argv[optind]);
        return PS_EXIT_USAGE;
    }
    if (open_cache(cli, "list", &c))
        return PS_EXIT_FAIL;
    if (fmt == 1)
        l.arr = json_array();
    l.units = ps_client_orgunits(c);
    rc = ps_cache_foreach(c, list_one, &l);
    if (rc || l.oom) {
        ps_cli_err("list: %s", ps_strerror(rc ? rc : PS_ENOMEM));
        rc = PS_EXIT_FAIL;
        goto out;
    }
    cols[ncols++] = "id";
    if (l.kind < 0)
        cols[ncols++] = "kind";
    cols[ncols++] = "orgunit";
    if (l.kind >= 0)
        ncols += ps_record_field_names(l.kind, cols + ncols, 64 - ncols);
    if (fmt == 1) {
        json_dumpf(l.arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else if (fmt == 2) {
        char cell[4096];
        for (size_t i = 0; i < ncols; i++)
            csv_cell(stdout, cols[i], i == 0);
        fputs("\r\n", stdout);
        for (size_t r = 0; r < l.n; r++) {
            for (size_t i = 0; i < ncols; i++) {
                if (ps_record_get_text(l.recs[r], cols[i], cell, sizeof(cell)) != PS_OK)
                    cell[0] = '\0';
                csv_cell(stdout, cell, i == 0);
            }
            fputs("\r\n", stdout);
        }
    } else {
        ps_record_print_table(stdout, (Popsync__Record *const *)l.recs, l.n, cols, ncols);
    }
    rc = PS_EXIT_OK;
out:
    for (size_t i = 0; i < l.n; i++)
        ps_record_free(l.recs[i]);
    free(l.recs);
    json_decref(l.arr);
    ps_orgunits_free(l.units);
    ps_cache_close(c);
    return rc;
}

/* For `popsync refused edit` (cmd_refused.c): the same option parsing, edits
 * and local validation as `edit`. */
int ps_cli_parse_edit_opts(int argc, char **argv, char **sets, size_t *nsets, const char **json)
{
    int rc = parse_edit_opts(argc, argv, sets, nsets, json, NULL);
    return rc == OPTS_HELP ? PS_EXIT_USAGE : rc;
}

int ps_cli_apply_edits(const char *cmd, Popsync__Record *r, char **sets, size_t nsets, const char *json)
{
    return apply_edits(cmd, r, sets, nsets, json);
}

int ps_cli_validate_or_report(const char *cmd, ps_cache_t *c, const Popsync__Record *r,
                              const Popsync__Record *current)
{
    return validate_or_report(cmd, c, r, current);
}
