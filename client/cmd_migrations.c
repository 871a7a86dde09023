/* cmd_migrations.c - the two places of a migration, as the client sees them
 * (issue 16 point 5).
 *
 * Owns: `popsync migrations` (this place's open cases with their deadlines,
 * offline) and ps_other_place_refuse, the offline form of the server's rule
 * that the other place of a migration may set only submitted_date and
 * feedback_date and never deletes or restores it (same policy function,
 * same wording).  Called by main.c and by cmd_records.c (edit, delete,
 * restore).  Deadlines follow the monthly report (docs/queries.md §3.2).
 */
#include "cli.h"
#include "cache.h"
#include "dates.h"
#include "err.h"
#include "fields.h"
#include "ids.h"
#include "orgunit.h"
#include "policy.h"
#include "record_fmt.h"
#include "report.h"
#include "scope.h"
#include "vctx.h"

#include "wire.pb-c.h"

#include <jansson.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEADLINE_URGENT 15 /* days, as the monthly report (docs/queries.md) */
#define DEADLINE_NORMAL 30

/* The cache's identity for the access policy. */
static void cache_peer(ps_cache_t *c, ps_peer_t *peer)
{
    const ps_cache_meta_t *m = ps_cache_meta(c);
    ps_policy_peer(peer, m->role, m->orgunit);
}

static const char *other_code(const Popsync__Record *r)
{
    if (r->body_case != POPSYNC__RECORD__BODY_MIGRATION || !r->migration->other_place_code ||
        !ps_orgunit_valid(r->migration->other_place_code))
        return NULL;
    return r->migration->other_place_code;
}

#define OTHER_MAY_SET "the other place may set only submitted_date and feedback_date"
#define OTHER_NO_DELETE "the other place may not delete or restore the record"

int ps_other_place_check(ps_cache_t *c, const Popsync__Record *before, const Popsync__Record *after,
                         void (*fn)(const char *field, const char *reason, void *arg), void *arg)
{
    ps_orgunits_t *tree;
    ps_peer_t peer;
    ps_write_t w;
    const char *names[64];
    size_t n;
    int bad = 0;

    if (!before || before->body_case != POPSYNC__RECORD__BODY_MIGRATION)
        return 0;
    tree = ps_client_orgunits(c);
    cache_peer(c, &peer);
    w = ps_policy_may_write(tree, &peer, before->orgunit, other_code(before), after->orgunit);
    ps_orgunits_free(tree);
    if (w != PS_WRITE_OTHER_PLACE)
        return 0;
    n = ps_record_field_names(before->kind, names, 64);
    for (size_t i = 0; i < n && i < 64; i++) {
        char a[512], b[512];
        if (ps_record_get_text(before, names[i], a, sizeof(a)) != PS_OK)
            a[0] = '\0';
        if (ps_record_get_text(after, names[i], b, sizeof(b)) != PS_OK)
            b[0] = '\0';
        if (strcmp(a, b) != 0 && !ps_policy_other_place_may_set(names[i])) {
            fn(names[i], OTHER_MAY_SET, arg);
            bad++;
        }
    }
    if (strcmp(before->orgunit ? before->orgunit : "", after->orgunit ? after->orgunit : "") != 0) {
        fn("orgunit", OTHER_MAY_SET, arg);
        bad++;
    }
    if (before->deleted != after->deleted && !ps_policy_other_place_may_set("deleted")) {
        fn("deleted", OTHER_NO_DELETE, arg);
        bad++;
    }
    return bad;
}

typedef struct refuse_print {
    const char *cmd;
    char id[PS_UUID_STR];
} refuse_print_t;

static void print_refusal(const char *field, const char *reason, void *arg)
{
    const refuse_print_t *p = arg;
    ps_cli_err("%s: record %s: %s: %s", p->cmd, p->id, field, reason);
}

int ps_other_place_refuse(ps_cache_t *c, const char *cmd, const Popsync__Record *before, const Popsync__Record *after)
{
    refuse_print_t p;

    if (!before)
        return PS_EXIT_OK;
    p.cmd = cmd;
    ps_uuid_format(before->id.data, p.id);
    if (ps_other_place_check(c, before, after, print_refusal, &p) == 0)
        return PS_EXIT_OK;
    ps_cli_err("%s: this township is the migration's other place (the server would refuse this change); ask the "
               "registering township (orgunit %s) to change it",
               cmd, before->orgunit ? before->orgunit : "?");
    return PS_EXIT_INVALID;
}

/* ---- popsync migrations -------------------------------------------------- */

enum { AWAIT_ANY, AWAIT_SUBMISSION, AWAIT_FEEDBACK };

typedef struct mig_ctx {
    ps_cache_t *c;
    ps_orgunits_t *tree;
    ps_peer_t peer;
    int await, zh, json;
    uint32_t urgent_days, normal_days;
    int32_t today;    /* days since 1970 in the district */
    json_t *arr;
    size_t n;
} mig_ctx_t;

/* YYYY-MM-DD to days since 1970; 0 with *ok = 0 when empty or malformed. */
static int32_t day_of(const char *s, int *ok)
{
    int y, m, d;
    *ok = s && sscanf(s, "%4d-%2d-%2d", &y, &m, &d) == 3 && m >= 1 && m <= 12 && d >= 1 && d <= 31;
    return *ok ? ps_days_from_civil(y, m, d) : 0;
}

static void day_text(int32_t z, char *out, size_t n)
{
    int y, m, d;
    ps_civil_from_days(z, &y, &m, &d);
    snprintf(out, n, "%04d-%02d-%02d", y, m, d);
}

/* The migrant as the case shows it: name, sex, birth date and the ID
 * number masked, from the person record this cache holds or, at the other
 * place, from the summary the server sent with the case. */
typedef struct migrant {
    char name[128], sex[16], birth_date[16], id_masked[32];
    char unit_name[128]; /* another district's case: its unit's name (docs/upstream.md §7) */
    int known;
} migrant_t;

static void migrant_of(ps_cache_t *c, const Popsync__Record *r, migrant_t *out)
{
    Popsync__Record *p = NULL;
    char idn[64];
    memset(out, 0, sizeof(*out));
    if (r->migration->person_id.len == PS_ID_LEN && ps_cache_get(c, r->migration->person_id.data, &p) == PS_OK) {
        if (!p->deleted) {
            ps_record_get_text(p, "name", out->name, sizeof(out->name));
            ps_record_get_text(p, "sex", out->sex, sizeof(out->sex));
            ps_record_get_text(p, "birth_date", out->birth_date, sizeof(out->birth_date));
            if (ps_record_get_text(p, "id_number", idn, sizeof(idn)) == PS_OK && *idn)
                ps_field_shown(POPSYNC__KIND__KIND_PERSON, "id_number", idn, out->id_masked, sizeof(out->id_masked));
            out->known = 1;
        }
        protobuf_c_message_free_unpacked(&p->base, NULL);
        return;
    }
    {
        Popsync__MigrantSummary *s = NULL;
        if (ps_cache_get_migrant(c, r->id.data, &s) != PS_OK || !s)
            return;
        snprintf(out->name, sizeof(out->name), "%s", s->name ? s->name : "");
        snprintf(out->sex, sizeof(out->sex), "%s",
                 s->sex == POPSYNC__SEX__SEX_MALE ? "male" : s->sex == POPSYNC__SEX__SEX_FEMALE ? "female" : "");
        snprintf(out->birth_date, sizeof(out->birth_date), "%s", s->birth_date ? s->birth_date : "");
        snprintf(out->id_masked, sizeof(out->id_masked), "%s", s->id_number_masked ? s->id_number_masked : "");
        snprintf(out->unit_name, sizeof(out->unit_name), "%s", s->unit_name ? s->unit_name : "");
        out->known = 1;
        protobuf_c_message_free_unpacked(&s->base, NULL);
    }
}

static const char *unit_name(const ps_orgunits_t *tree, const char *code)
{
    const ps_orgunit_t *u = tree && code ? ps_orgunits_find(tree, code) : NULL;
    return u && u->name ? u->name : "";
}

/* One case of `popsync migrations`: which of the two duties it awaits,
 * its deadline and the masked migrant, in one pass (about 90 lines). */
static int one_case(Popsync__Record *r, void *arg)
{
    mig_ctx_t *x = arg;
    const Popsync__Migration *mg;
    ps_write_t w;
    int ours, ok, urgent, submitted, await;
    int32_t from, deadline;
    const char *dir, *other_unit, *who, *other_name;
    char dl[16];
    migrant_t mi;
    char id[PS_UUID_STR];

    if (r->deleted || r->body_case != POPSYNC__RECORD__BODY_MIGRATION)
        return 0;
    mg = r->migration;
    if (mg->feedback_date && *mg->feedback_date)
        return 0; /* closed: the feedback came back */
    w = ps_policy_may_write(x->tree, &x->peer, r->orgunit, other_code(r), r->orgunit);
    if (w == PS_WRITE_NO)
        return 0;
    ours = w == PS_WRITE_OWNER;
    submitted = mg->submitted_date && *mg->submitted_date;
    await = submitted ? AWAIT_FEEDBACK : AWAIT_SUBMISSION;
    if (x->await != AWAIT_ANY && x->await != await)
        return 0;
    urgent = mg->urgent;
    from = day_of(submitted ? mg->submitted_date : mg->start_date, &ok);
    deadline = from + (int32_t)(urgent ? x->urgent_days : x->normal_days);
    if (ok)
        day_text(deadline, dl, sizeof(dl));
    else
        snprintf(dl, sizeof(dl), "?");
    /* Seen from the other place, an inflow registered there is an outflow here. */
    if (mg->direction == POPSYNC__DIRECTION__DIRECTION_INFLOW)
        dir = ours ? "inflow" : "outflow";
    else if (mg->direction == POPSYNC__DIRECTION__DIRECTION_OUTFLOW)
        dir = ours ? "outflow" : "inflow";
    else
        dir = "";
    other_unit = ours ? (mg->other_place_code ? mg->other_place_code : "") : r->orgunit;
    /* Who must act: the registering township submits, the other place answers. */
    who = (await == AWAIT_SUBMISSION) == ours ? "this place" : "the other place";
    migrant_of(x->c, r, &mi);
    other_name = unit_name(x->tree, other_unit);
    if (!*other_name && !ours)
        other_name = mi.unit_name; /* another district's unit: named by its district */
    ps_uuid_format(r->id.data, id);
    x->n++;
    if (x->json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:s,s:s,s:s}", "id", id, "side",
                              ours ? "registered here" : "other place", "direction", dir, "other_place_code",
                              other_unit, "other_place_name", other_name, "start_date",
                              mg->start_date ? mg->start_date : "", "submitted_date",
                              mg->submitted_date ? mg->submitted_date : "", "feedback_date", "", "urgent", urgent,
                              "awaiting", await == AWAIT_SUBMISSION ? "submission" : "feedback", "who_acts", who,
                              "deadline", ok ? dl : "");
        json_object_set_new(o, "days_left", ok ? json_integer(deadline - x->today) : json_null());
        json_object_set_new(o, "migrant",
                            mi.known ? json_pack("{s:s,s:s,s:s,s:s}", "name", mi.name, "sex", mi.sex, "birth_date",
                                                 mi.birth_date, "id_number_masked", mi.id_masked)
                                     : json_null());
        json_array_append_new(x->arr, o);
        return 0;
    }
    {
        char left[48], person[256];
        int32_t d = deadline - x->today;
        if (!ok)
            snprintf(left, sizeof(left), "?");
        else if (d >= 0)
            snprintf(left, sizeof(left), x->zh ? "剩 %d 天" : "%d days left", (int)d);
        else
            snprintf(left, sizeof(left), x->zh ? "超期 %d 天" : "OVERDUE %d days", (int)-d);
        if (mi.known)
            snprintf(person, sizeof(person), "%s %s %s %s", mi.name, mi.sex, mi.birth_date, mi.id_masked);
        else
            snprintf(person, sizeof(person), "%s", x->zh ? "（无人员信息）" : "(person not known here)");
        printf("%s  %s %s  %s %s  %s\n", id, x->zh ? (ours ? "本地登记" : "对方地") : (ours ? "ours" : "other place"),
               x->zh ? (!strcmp(dir, "inflow") ? "流入" : !strcmp(dir, "outflow") ? "流出" : "") : dir, other_unit,
               other_name, person);
        printf("    %s %s  %s %s  %s %s  %s: %s (%s%s) %s\n", x->zh ? "开始" : "start",
               mg->start_date ? mg->start_date : "", x->zh ? "通报" : "submitted",
               submitted ? mg->submitted_date : "-", x->zh ? "反馈" : "feedback", "-",
               x->zh ? (await == AWAIT_SUBMISSION ? "待通报，期限" : "待反馈，期限")
                     : (await == AWAIT_SUBMISSION ? "awaiting submission by" : "awaiting feedback by"),
               dl, urgent ? (x->zh ? "紧急" : "urgent") : (x->zh ? "一般" : "normal"),
               x->zh ? (strcmp(who, "this place") ? "，对方办理" : "，本地办理")
                     : (strcmp(who, "this place") ? ", the other place acts" : ", this place acts"),
               left);
    }
    return 0;
}

static int migrations_usage(FILE *f)
{
    fprintf(f, "usage: popsync migrations [--awaiting feedback|submission] [--json] [--lang zh|en]\n"
               "                          [--deadline-urgent DAYS] [--deadline-normal DAYS]\n"
               "  lists this place's open migration cases (offline): those it registered and those that\n"
               "  name it as the other place, with the migrant (name, sex, birth date, masked ID number),\n"
               "  the start, submitted and feedback dates, and the deadline: urgent 15 days, others 30,\n"
               "  counted from the start (submission) or from the submission (feedback).\n"
               "  example: popsync migrations --awaiting feedback --lang zh\n");
    return PS_EXIT_OK;
}

/* The cases as `migrations --json` lists them, from an open cache (the web
 * interface's migrations page; the CLI's --json goes the same way). */
static int cases_json(mig_ctx_t *x)
{
    uint32_t today;
    int rc;

    x->tree = ps_client_orgunits(x->c);
    cache_peer(x->c, &x->peer);
    today = ps_client_today(x->c);
    x->today = ps_days_from_civil((int)(today / 10000), (int)(today / 100 % 100), (int)(today % 100));
    rc = ps_cache_foreach_open_case(x->c, one_case, x); /* the open cases only */
    ps_orgunits_free(x->tree);
    x->tree = NULL;
    return rc;
}

int ps_migrations_json(ps_cache_t *c, int await, json_t **out)
{
    mig_ctx_t x;
    int rc;

    memset(&x, 0, sizeof(x));
    x.c = c;
    x.await = await == 1 ? AWAIT_SUBMISSION : await == 2 ? AWAIT_FEEDBACK : AWAIT_ANY;
    x.urgent_days = DEADLINE_URGENT;
    x.normal_days = DEADLINE_NORMAL;
    x.json = 1;
    if (!(x.arr = json_array()))
        return PS_ENOMEM;
    if ((rc = cases_json(&x)) != PS_OK) {
        json_decref(x.arr);
        return rc;
    }
    *out = x.arr;
    return PS_OK;
}

int ps_cmd_migrations(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"awaiting", required_argument, NULL, 'a'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"lang", required_argument, NULL, 'l'},
                                       {"deadline-urgent", required_argument, NULL, 'u'},
                                       {"deadline-normal", required_argument, NULL, 'n'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    mig_ctx_t x;
    const char *lang = NULL;
    char err[512];
    int opt, rc;

    memset(&x, 0, sizeof(x));
    x.urgent_days = DEADLINE_URGENT;
    x.normal_days = DEADLINE_NORMAL;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'a':
            if (!strcmp(optarg, "feedback"))
                x.await = AWAIT_FEEDBACK;
            else if (!strcmp(optarg, "submission"))
                x.await = AWAIT_SUBMISSION;
            else {
                ps_cli_err("migrations: --awaiting takes feedback or submission, not '%s'", optarg);
                return PS_EXIT_USAGE;
            }
            break;
        case 'j': x.json = 1; break;
        case 'l': lang = optarg; break;
        case 'u': x.urgent_days = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'n': x.normal_days = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'h': return migrations_usage(stdout);
        default: migrations_usage(stderr); return PS_EXIT_USAGE;
        }
    }
    if (optind != argc || x.urgent_days > 365 || x.normal_days > 365) {
        migrations_usage(stderr);
        return PS_EXIT_USAGE;
    }
    if ((x.zh = ps_report_lang_zh(lang)) < 0) {
        ps_cli_err("migrations: --lang takes zh or en");
        return PS_EXIT_USAGE;
    }
    if (ps_cache_open(&x.c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("migrations: %s", err);
        return PS_EXIT_FAIL;
    }
    if (x.json)
        x.arr = json_array();
    rc = cases_json(&x);
    if (rc) {
        ps_cli_err("migrations: %s", ps_strerror(rc));
        rc = PS_EXIT_FAIL;
    } else if (x.json) {
        json_dumpf(x.arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else if (x.n == 0) {
        printf("%s\n", x.zh ? "没有未结的流动人口事项" : "no open migration cases");
    }
    json_decref(x.arr);
    ps_cache_close(x.c);
    return rc;
}
