/* cmd_dups.c - `popsync duplicates` and `popsync merge`: finding and
 * joining two registrations of one person, offline, in this cache.
 *
 * duplicates: candidate pairs of live persons, by one scan of the cache:
 * the same ID number, or the same name and birth date (whose numbers are
 * not the same).  merge: KEEP takes OTHER's values where its own are empty
 * (or all of OTHER's with --prefer other), every record that refers to
 * OTHER (ps_record_refs: births, migrations, benefits, visits, households)
 * is changed to refer to KEEP, and OTHER is deleted: ordinary edits in one
 * local transaction, pushed and audited like any others.
 */
#include "cache.h"
#include "cache_pindex.h"
#include "cli.h"
#include "dupcheck.h"
#include "err.h"
#include "ids.h"
#include "record_fmt.h"
#include "validate.h"
#include "vec.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUPS_MAX_PAIRS 10000
#define PERSON_FIELDS_MAX 64

/* ---- duplicates ------------------------------------------------------------ */

typedef struct pent {
    uint8_t id[PS_ID_LEN];
    char idn[19];
    char *nd; /* "name|birth_date", or NULL when either is empty */
} pent_t;

typedef struct pscan {
    pent_t *v;
    size_t n, cap;
    int oom;
} pscan_t;

static int scan_person(Popsync__Record *r, void *arg)
{
    pscan_t *s = arg;
    const Popsync__Person *p = r->person;
    pent_t *e;

    if (r->deleted || r->body_case != POPSYNC__RECORD__BODY_PERSON || !p || r->id.len != PS_ID_LEN)
        return 0;
    if (PS_VEC_ROOM(s->v, s->n, s->cap, 256)) {
        s->oom = 1;
        return 1;
    }
    e = &s->v[s->n];
    memset(e, 0, sizeof(*e));
    memcpy(e->id, r->id.data, PS_ID_LEN);
    if (p->id_number && strlen(p->id_number) == 18)
        memcpy(e->idn, p->id_number, 19);
    if (p->name && *p->name && p->birth_date && *p->birth_date) {
        char name[256]; /* "张　三" from an older version is 张三's pair */
        size_t len;
        ps_pindex_name(p->name, name, sizeof(name));
        len = strlen(name) + strlen(p->birth_date) + 2;
        if (!(e->nd = malloc(len))) {
            s->oom = 1;
            return 1;
        }
        snprintf(e->nd, len, "%s|%s", name, p->birth_date);
    }
    s->n++;
    return 0;
}

static int cmp_idn(const void *a, const void *b)
{
    return strcmp(((const pent_t *)a)->idn, ((const pent_t *)b)->idn);
}

static int cmp_nd(const void *a, const void *b)
{
    const pent_t *x = a, *y = b;
    if (!x->nd || !y->nd)
        return (x->nd != NULL) - (y->nd != NULL);
    return strcmp(x->nd, y->nd);
}

/* The person fields whose text differs between a and b, as a JSON object
 * field -> [a's, b's]. */
static json_t *fields_differ(const Popsync__Record *a, const Popsync__Record *b)
{
    const char *names[PERSON_FIELDS_MAX];
    size_t n = ps_record_field_names(POPSYNC__KIND__KIND_PERSON, names, PERSON_FIELDS_MAX);
    json_t *o = json_object();
    char va[512], vb[512];

    if (n > PERSON_FIELDS_MAX)
        n = PERSON_FIELDS_MAX;
    if (strcmp(a->orgunit, b->orgunit) != 0)
        json_object_set_new(o, "orgunit", json_pack("[ss]", a->orgunit, b->orgunit));
    for (size_t i = 0; i < n; i++) {
        if (ps_record_get_text(a, names[i], va, sizeof(va)) || ps_record_get_text(b, names[i], vb, sizeof(vb)) ||
            strcmp(va, vb) == 0)
            continue;
        json_object_set_new(o, names[i], json_pack("[ss]", va, vb));
    }
    return o;
}

static json_t *pair_side(const Popsync__Record *r)
{
    char id[PS_UUID_STR];
    ps_uuid_format(r->id.data, id);
    return json_pack("{ssssssssss}", "id", id, "orgunit", r->orgunit, "name", r->person->name, "id_number",
                     r->person->id_number, "birth_date", r->person->birth_date);
}

/* Appends the pair (x, y) found by reason to arr. */
static int add_pair(ps_cache_t *c, json_t *arr, const pent_t *x, const pent_t *y, const char *reason)
{
    Popsync__Record *a = NULL, *b = NULL;
    int rc;

    if (json_array_size(arr) >= DUPS_MAX_PAIRS)
        return PS_OK;
    if ((rc = ps_cache_get(c, x->id, &a)) == PS_OK && (rc = ps_cache_get(c, y->id, &b)) == PS_OK)
        json_array_append_new(arr, json_pack("{s:s, s:o, s:o, s:o}", "reason", reason, "a", pair_side(a), "b", pair_side(b),
                                             "differ", fields_differ(a, b)));
    ps_record_free(a);
    ps_record_free(b);
    return rc;
}

/* Every pair within each run of entries equal by cmp (keyed non-empty);
 * same_idn_too: also pairs whose ID numbers are equal. */
static int pairs_in_runs(ps_cache_t *c, json_t *arr, pscan_t *s, int by_idn)
{
    int rc = PS_OK;

    qsort(s->v, s->n, sizeof(*s->v), by_idn ? cmp_idn : cmp_nd);
    for (size_t i = 0; rc == PS_OK && i < s->n; i++) {
        if (by_idn ? !s->v[i].idn[0] : !s->v[i].nd)
            continue;
        for (size_t j = i + 1; rc == PS_OK && j < s->n; j++) {
            if ((by_idn ? cmp_idn : cmp_nd)(&s->v[i], &s->v[j]) != 0)
                break;
            if (!by_idn && s->v[i].idn[0] && strcmp(s->v[i].idn, s->v[j].idn) == 0)
                continue; /* already listed by ID number */
            rc = add_pair(c, arr, &s->v[i], &s->v[j], by_idn ? "id_number" : "name_birth_date");
        }
    }
    return rc;
}

static void print_pairs(json_t *arr)
{
    size_t i;
    json_t *p;

    json_array_foreach(arr, i, p) {
        json_t *a = json_object_get(p, "a"), *b = json_object_get(p, "b"), *d = json_object_get(p, "differ");
        const char *k;
        json_t *v;
        printf("%s: %s (%s, %s)  %s (%s, %s)\n", json_string_value(json_object_get(p, "reason")),
               json_string_value(json_object_get(a, "id")), json_string_value(json_object_get(a, "orgunit")),
               json_string_value(json_object_get(a, "name")), json_string_value(json_object_get(b, "id")),
               json_string_value(json_object_get(b, "orgunit")), json_string_value(json_object_get(b, "name")));
        json_object_foreach(d, k, v)
            printf("    %-16s %s | %s\n", k, json_string_value(json_array_get(v, 0)),
                   json_string_value(json_array_get(v, 1)));
    }
    printf("%zu candidate pair(s); join one with: popsync merge KEEP_ID OTHER_ID\n", json_array_size(arr));
}

static int dups_usage(FILE *f)
{
    fprintf(f, "usage: popsync duplicates [--json]\n"
               "  lists pairs of live persons in this cache (offline) that may be one person:\n"
               "  the same ID number, or the same name and birth date; with both record ids,\n"
               "  units and the fields that differ.  Join a pair with popsync merge.\n"
               "  example: popsync duplicates --json\n");
    return f == stdout ? PS_EXIT_OK : PS_EXIT_USAGE;
}

int ps_cmd_duplicates(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt, json = cli->json, rc;
    ps_cache_t *c = NULL;
    pscan_t s;
    json_t *arr = NULL;
    char err[512];

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt == 'j')
            json = 1;
        else
            return dups_usage(opt == 'h' ? stdout : stderr);
    }
    if (optind != argc)
        return dups_usage(stderr);
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("duplicates: %s", err);
        return PS_EXIT_FAIL;
    }
    memset(&s, 0, sizeof(s));
    rc = ps_cache_foreach(c, scan_person, &s);
    if (rc == PS_OK && s.oom)
        rc = PS_ENOMEM;
    if (rc == PS_OK && !(arr = json_array()))
        rc = PS_ENOMEM;
    if (rc == PS_OK)
        rc = pairs_in_runs(c, arr, &s, 1);
    if (rc == PS_OK)
        rc = pairs_in_runs(c, arr, &s, 0);
    if (rc) {
        ps_cli_err("duplicates: %s", ps_strerror(rc));
    } else if (json) {
        json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else {
        print_pairs(arr);
    }
    json_decref(arr);
    for (size_t i = 0; i < s.n; i++)
        free(s.v[i].nd);
    free(s.v);
    ps_cache_close(c);
    return rc ? PS_EXIT_FAIL : PS_EXIT_OK;
}

/* ---- merge ----------------------------------------------------------------- */

typedef struct referrers {
    const uint8_t *other;
    uint8_t (*ids)[PS_ID_LEN];
    size_t n, cap;
    int oom;
} referrers_t;

static int scan_refs(Popsync__Record *r, void *arg)
{
    referrers_t *f = arg;
    ps_ref_t refs[PS_REFS_MAX];
    size_t n;

    if (r->deleted || r->id.len != PS_ID_LEN)
        return 0;
    n = ps_record_refs(r, refs);
    for (size_t i = 0; i < n; i++) {
        if (memcmp(refs[i].id, f->other, PS_ID_LEN) != 0)
            continue;
        if (PS_VEC_ROOM(f->ids, f->n, f->cap, 16)) {
            f->oom = 1;
            return 1;
        }
        memcpy(f->ids[f->n++], r->id.data, PS_ID_LEN);
        break;
    }
    return 0;
}

/* KEEP takes OTHER's value of each person field that OTHER has and KEEP
 * lacks (prefer_other: that OTHER has); prints each one taken. */
static int fill_fields(Popsync__Record *keep, const Popsync__Record *other, int prefer_other)
{
    const char *names[PERSON_FIELDS_MAX];
    size_t n = ps_record_field_names(POPSYNC__KIND__KIND_PERSON, names, PERSON_FIELDS_MAX);
    char vk[512], vo[512], err[256];

    if (n > PERSON_FIELDS_MAX)
        n = PERSON_FIELDS_MAX;
    for (size_t i = 0; i < n; i++) {
        if (ps_record_get_text(keep, names[i], vk, sizeof(vk)) || ps_record_get_text(other, names[i], vo, sizeof(vo)))
            continue;
        if (!*vo || strcmp(vk, vo) == 0 || (*vk && !prefer_other))
            continue;
        if (ps_record_set(keep, names[i], vo, err, sizeof(err)) != PS_OK) {
            ps_cli_err("merge: %s: %s", names[i], err);
            return PS_EXIT_INVALID;
        }
        printf("%s: %s\n", names[i], *vk ? "taken from the other record" : "filled from the other record");
    }
    return PS_EXIT_OK;
}

/* Each referring record now names keep where it named other. */
static int move_refs(ps_cache_t *c, const referrers_t *f, const Popsync__Record *keep, Popsync__Record **out)
{
    char kid[PS_UUID_STR], rid[PS_UUID_STR], err[256];

    ps_uuid_format(keep->id.data, kid);
    for (size_t i = 0; i < f->n; i++) {
        Popsync__Record *r = NULL;
        ps_ref_t refs[PS_REFS_MAX];
        size_t n;
        if (ps_cache_get(c, f->ids[i], &r) != PS_OK) {
            ps_cli_err("merge: cannot read a referring record");
            return PS_EXIT_FAIL;
        }
        out[i] = r;
        n = ps_record_refs(r, refs);
        ps_uuid_format(r->id.data, rid);
        for (size_t j = 0; j < n; j++) {
            const char *field = refs[j].field;
            if (memcmp(refs[j].id, f->other, PS_ID_LEN) != 0)
                continue;
            if (ps_record_set(r, field, kid, err, sizeof(err)) != PS_OK) {
                ps_cli_err("merge: %s %s: %s: %s", ps_kind_name(r->kind), rid, field, err);
                return PS_EXIT_INVALID;
            }
            printf("moved %s %s (%s)\n", ps_kind_name(r->kind), rid, field);
            n = ps_record_refs(r, refs); /* refs point into r, which changed */
        }
    }
    return PS_EXIT_OK;
}

static int merge_usage(FILE *f)
{
    fprintf(f, "usage: popsync merge KEEP_ID OTHER_ID [--prefer keep|other] [--force]\n"
               "  joins two records of one person: KEEP takes OTHER's values where its own are\n"
               "  empty (--prefer other: wherever OTHER has one), every birth, migration, benefit,\n"
               "  service visit and household that refers to OTHER is changed to refer to KEEP,\n"
               "  and OTHER is deleted; all in one step, synced like any edit.  Two different\n"
               "  ID numbers are refused unless --force.\n"
               "  example: popsync merge 01890a5d-ac96-7c4a-9f12-3a1b2c3d4e5f 01890a5e-0b12-7d34-8e56-7f8091a2b3c4\n");
    return f == stdout ? PS_EXIT_OK : PS_EXIT_USAGE;
}

static int load_person(ps_cache_t *c, const char *text, Popsync__Record **r)
{
    uint8_t id[PS_ID_LEN];

    if (ps_uuid_parse(text, id) != PS_OK) {
        ps_cli_err("merge: '%s' is not a record id", text);
        return PS_EXIT_USAGE;
    }
    if (ps_cache_get(c, id, r) != PS_OK) {
        ps_cli_err("merge: no record %s in this cache", text);
        return PS_EXIT_NOTFOUND;
    }
    if ((*r)->deleted || (*r)->body_case != POPSYNC__RECORD__BODY_PERSON) {
        ps_cli_err("merge: record %s is not a live person; only two live persons can be merged", text);
        return PS_EXIT_INVALID;
    }
    return PS_EXIT_OK;
}

/* The checks before anything changes. */
static int merge_allowed(const Popsync__Record *keep, const Popsync__Record *other, int force)
{
    const char *a = keep->person->id_number, *b = other->person->id_number;

    if (memcmp(keep->id.data, other->id.data, PS_ID_LEN) == 0) {
        ps_cli_err("merge: KEEP_ID and OTHER_ID are the same record");
        return PS_EXIT_USAGE;
    }
    if (a && *a && b && *b && strcmp(a, b) != 0 && !force) {
        ps_cli_err("merge: the two records have different ID numbers (%.6s…%s and %.6s…%s): they may be two "
                   "people; check them, and give --force to merge anyway",
                   a, strlen(a) > 4 ? a + strlen(a) - 4 : "", b, strlen(b) > 4 ? b + strlen(b) - 4 : "");
        return PS_EXIT_INVALID;
    }
    return PS_EXIT_OK;
}

static int parse_merge_opts(int argc, char **argv, int *prefer_other, int *force)
{
    static const struct option lo[] = {{"prefer", required_argument, NULL, 'p'},
                                       {"force", no_argument, NULL, 'f'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    int opt;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt == 'p' && (strcmp(optarg, "other") == 0 || strcmp(optarg, "keep") == 0))
            *prefer_other = strcmp(optarg, "other") == 0;
        else if (opt == 'f')
            *force = 1;
        else
            return merge_usage(opt == 'h' ? stdout : stderr) == PS_EXIT_OK ? -1 : PS_EXIT_USAGE;
    }
    return optind == argc - 2 ? PS_EXIT_OK : merge_usage(stderr);
}

int ps_cmd_merge(ps_cli_t *cli, int argc, char **argv)
{
    int prefer_other = 0, force = 0, rc;
    ps_cache_t *c = NULL;
    Popsync__Record *keep = NULL, *other = NULL, *before = NULL, **batch = NULL;
    referrers_t f;
    size_t nb = 0;
    char err[512];

    memset(&f, 0, sizeof(f));
    if ((rc = parse_merge_opts(argc, argv, &prefer_other, &force)))
        return rc < 0 ? PS_EXIT_OK : rc;
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("merge: %s", err);
        return PS_EXIT_FAIL;
    }
    if ((rc = load_person(c, argv[optind], &keep)) || (rc = load_person(c, argv[optind + 1], &other)) ||
        (rc = merge_allowed(keep, other, force)))
        goto out;
    f.other = other->id.data;
    if (ps_cache_foreach(c, scan_refs, &f) || f.oom || !(batch = calloc(f.n + 2, sizeof(*batch)))) {
        rc = PS_EXIT_FAIL;
        goto out;
    }
    /* Referring records first, then OTHER's tombstone, then KEEP: the
     * server takes them in this order, so KEEP may take OTHER's ID number. */
    nb = f.n;
    if ((rc = move_refs(c, &f, keep, batch)))
        goto out;
    if (ps_cache_get(c, keep->id.data, &before) != PS_OK || (rc = fill_fields(keep, other, prefer_other))) {
        rc = rc ? rc : PS_EXIT_FAIL;
        goto out;
    }
    if ((rc = ps_cli_validate_or_report("merge", c, keep, before)))
        goto out;
    for (size_t i = 0; i < f.n; i++) {
        Popsync__Record *was = NULL;
        if (ps_cache_get(c, batch[i]->id.data, &was) != PS_OK) {
            rc = PS_EXIT_FAIL;
            goto out;
        }
        rc = ps_cli_validate_or_report("merge", c, batch[i], was);
        ps_record_free(was);
        if (rc)
            goto out;
    }
    other->deleted = 1;
    batch[nb++] = other;
    batch[nb++] = keep;
    if (ps_cache_put_local_many(c, batch, nb) != PS_OK) {
        ps_cli_err("merge: cannot store the changes; nothing was changed");
        rc = PS_EXIT_FAIL;
        goto out;
    }
    printf("deleted %s; %zu record(s) moved to %s; push with popsync sync\n", argv[optind + 1], f.n, argv[optind]);
out:
    for (size_t i = 0; batch && i < f.n; i++)
        ps_record_free(batch[i]);
    free(batch);
    free(f.ids);
    ps_record_free(before);
    ps_record_free(keep);
    ps_record_free(other);
    ps_cache_close(c);
    return rc;
}
