/* offline.c - reports and queries from the local cache (see offline.h).
 *
 * The rules are the server's (server/store_query.c): the same indicators
 * from the same counters (common/counters.c), the same scope
 * (common/policy.h), the same checks (common/validate.c), the same order of
 * rows and issues; only where the records come from differs.
 */
#include "offline.h"
#include "vec.h"

#include "counters.h"
#include "err.h"
#include "ids.h"
#include "orgunit.h"
#include "policy.h"
#include "query_rules.h"
#include "strtab.h"
#include "record_fmt.h"
#include "scope.h"
#include "tz.h"
#include "validate.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- what every answer needs: the tree and who is asking -------------------- */

typedef struct scope {
    ps_orgunits_t *tree; /* NULL when the cache has none yet */
    ps_peer_t me;
    int admin;
} scope_t;

static void scope_load(ps_cache_t *c, scope_t *s)
{
    const ps_cache_meta_t *m = ps_cache_meta(c);
    uint8_t *csv = NULL, digest[32];
    size_t len = 0;
    char err[256];

    memset(s, 0, sizeof(*s));
    if (ps_cache_get_orgunits(c, &csv, &len, digest) == PS_OK &&
        ps_orgunits_parse(csv, len, &s->tree, err, sizeof(err)) != PS_OK)
        s->tree = NULL;
    free(csv);
    ps_policy_peer(&s->me, m->role, m->orgunit);
    s->admin = strcmp(m->role, "admin") == 0;
}

/* Only a cache that receives the records of its scope can answer for it:
 * a viewer receives aggregates only (its cache holds no records), and a
 * collector has no reports or queries at all (common/policy.c). */
static int offline_allowed(ps_cache_t *c, char *err, size_t errlen)
{
    const ps_cache_meta_t *m = ps_cache_meta(c);
    if (!strcmp(m->role, "admin") || !strcmp(m->role, "township"))
        return PS_OK;
    if (!strcmp(m->role, "viewer"))
        snprintf(err, errlen, "a viewer's cache holds no records (a viewer receives aggregates only): "
                              "this needs the server");
    else
        snprintf(err, errlen, "role %s has no reports or queries", m->role[0] ? m->role : "(none)");
    return PS_EACCES;
}

static void township_of(const scope_t *s, const char *unit, char out[13])
{
    ps_orgunits_township_code(s->tree, unit, out);
}

static const char *other_place(const Popsync__Record *r)
{
    if (r->body_case == POPSYNC__RECORD__BODY_MIGRATION && r->migration->other_place_code &&
        ps_orgunit_valid(r->migration->other_place_code))
        return r->migration->other_place_code;
    return "";
}

/* Would the server count r for this cache's identity, under root? */
static int in_scope(const scope_t *s, const Popsync__Record *r, const char *root)
{
    const char *unit = r->orgunit ? r->orgunit : "";
    if (!ps_policy_may_count(s->tree, &s->me, unit, other_place(r)))
        return 0;
    return !root || ps_policy_within(s->tree, unit, root);
}

/* A heap copy of m that protobuf-c's free_unpacked frees, as the session
 * hands the online answer over. */
static ProtobufCMessage *copy_msg(const ProtobufCMessage *m)
{
    size_t sz = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(sz ? sz : 1);
    ProtobufCMessage *out;
    if (!buf)
        return NULL;
    protobuf_c_message_pack(m, buf);
    out = protobuf_c_message_unpack(m->descriptor, NULL, sz, buf);
    free(buf);
    return out;
}

/* Today in the district's zone (the cache keeps it from the last Welcome). */
static uint32_t district_today(ps_cache_t *c)
{
    const ps_cache_meta_t *m = ps_cache_meta(c);
    ps_tz_t tz;
    char err[128];
    int rc = ps_tz_get(&tz, m->timezone[0] ? m->timezone : PS_TZ_DEFAULT, err, sizeof(err));
    if (rc != PS_OK && rc != PS_ENOTFOUND) /* not found: the zone popsync ui started with */
        memset(&tz, 0, sizeof(tz));
    return ps_tz_date(&tz, ps_now_ms());
}

/* ---- monthly report: from the counters --------------------------------------- */


typedef struct mrow {
    char code[13];
    int64_t v[PS_INDICATORS];
} mrow_t;

typedef struct monthly {
    const scope_t *s;
    const char *want; /* --orgunit, or NULL */
    uint32_t dl_u, dl_n;
    mrow_t *rows;
    size_t n;
    int oom;
} monthly_t;

static int township_in_scope(const monthly_t *m, const char *town)
{
    if (m->want && strcmp(town, m->want) != 0)
        return 0;
    return ps_policy_report_township(m->s->tree, &m->s->me, town);
}

static mrow_t *row_for(monthly_t *m, const char *code)
{
    mrow_t *p;
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->rows[i].code, code))
            return &m->rows[i];
    if (!(p = realloc(m->rows, (m->n + 1) * sizeof(*p)))) {
        m->oom = 1;
        return NULL;
    }
    m->rows = p;
    memset(&p[m->n], 0, sizeof(*p));
    memcpy(p[m->n].code, code, 13);
    return &p[m->n++];
}

/* One kept counter into the row of its township, as the server adds it. */
static int add_counter(const char *unit, const char *metric, int64_t value, void *arg)
{
    monthly_t *m = arg;
    char town[13];
    mrow_t *row;
    int which, idx;

    township_of(m->s, unit, town);
    if (!township_in_scope(m, town) || !ps_policy_may_count(m->s->tree, &m->s->me, unit, NULL))
        return 0;
    if (!(row = row_for(m, town)))
        return PS_ENOMEM;
    which = ps_counters_on_time(metric, m->dl_u, m->dl_n);
    if (which >= 0) {
        if (which)
            row->v[ps_indicator_index(which == 1 ? "submitted_on_time" : "feedback_on_time")] += value;
        return 0;
    }
    if ((idx = ps_indicator_index(metric)) >= 0)
        row->v[idx] += value;
    return 0;
}

static int cmp_mrow(const void *a, const void *b)
{
    return strcmp(((const mrow_t *)a)->code, ((const mrow_t *)b)->code);
}

/* The rows (and the total) as a ReportResult, copied for the caller. */
static int monthly_result(const monthly_t *m, const Popsync__ReportRequest *req, Popsync__ReportResult **out)
{
    size_t nr = m->n + 1;
    Popsync__ReportResult res = POPSYNC__REPORT_RESULT__INIT;
    Popsync__ReportRow *rr = calloc(nr, sizeof(*rr));
    Popsync__ReportRow **rp = calloc(nr, sizeof(*rp));
    Popsync__ReportValue *vals = calloc(nr * PS_INDICATORS, sizeof(*vals));
    Popsync__ReportValue **vp = calloc(nr * PS_INDICATORS, sizeof(*vp));
    int64_t total[PS_INDICATORS];
    int rc = PS_ENOMEM;

    if (!rr || !rp || !vals || !vp)
        goto out;
    memset(total, 0, sizeof(total));
    for (size_t i = 0; i < m->n; i++)
        for (size_t j = 0; j < PS_INDICATORS; j++)
            total[j] += m->rows[i].v[j];
    for (size_t i = 0; i < nr; i++) {
        const ps_orgunit_t *u = i < m->n && m->s->tree ? ps_orgunits_find(m->s->tree, m->rows[i].code) : NULL;
        popsync__report_row__init(&rr[i]);
        rr[i].orgunit = i < m->n ? (char *)m->rows[i].code : "";
        rr[i].name = u ? u->name : "";
        rr[i].close_state = ""; /* the close is the server's: not known here */
        for (size_t j = 0; j < PS_INDICATORS; j++) {
            Popsync__ReportValue *v = &vals[i * PS_INDICATORS + j];
            popsync__report_value__init(v);
            v->name = (char *)ps_indicators[j];
            v->value = i < m->n ? m->rows[i].v[j] : total[j];
            vp[i * PS_INDICATORS + j] = v;
        }
        rr[i].n_values = PS_INDICATORS;
        rr[i].values = vp + i * PS_INDICATORS;
        rp[i] = &rr[i];
    }
    res.report = "monthly";
    res.month = req->month;
    res.n_rows = nr;
    res.rows = rp;
    res.generated_ms = ps_now_ms();
    res.deadline_urgent_days = m->dl_u;
    res.deadline_normal_days = m->dl_n;
    *out = (Popsync__ReportResult *)copy_msg(&res.base);
    rc = *out ? PS_OK : PS_ENOMEM;
out:
    free(rr);
    free(rp);
    free(vals);
    free(vp);
    return rc;
}

static int report_monthly(ps_cache_t *c, const scope_t *s, const Popsync__ReportRequest *req,
                          Popsync__ReportResult **out, char *err, size_t errlen)
{
    monthly_t m;
    uint32_t month = ps_month_of(req->month);
    int rc;

    if (!month || strlen(req->month) != 7) {
        snprintf(err, errlen, "month must be YYYY-MM");
        return PS_EINVAL;
    }
    memset(&m, 0, sizeof(m));
    m.s = s;
    m.want = req->orgunit && *req->orgunit ? req->orgunit : NULL;
    m.dl_u = req->deadline_urgent_days ? req->deadline_urgent_days : 15;
    m.dl_n = req->deadline_normal_days ? req->deadline_normal_days : 30;
    /* Every township in scope gets a row, even an empty one. */
    for (size_t i = 0; s->tree && i < ps_orgunits_count(s->tree); i++) {
        const ps_orgunit_t *u = ps_orgunits_at(s->tree, i);
        if (u->depth == 1 && township_in_scope(&m, u->code))
            row_for(&m, u->code);
    }
    if ((rc = ps_cache_counters_month(c, month, add_counter, &m)) == PS_OK)
        rc = ps_cache_counters_month(c, 0, add_counter, &m);
    if (rc == PS_OK && m.oom)
        rc = PS_ENOMEM;
    if (rc == PS_OK) {
        if (m.n)
            qsort(m.rows, m.n, sizeof(*m.rows), cmp_mrow);
        rc = monthly_result(&m, req, out);
    }
    free(m.rows);
    return rc;
}

/* ---- quality report: a scan --------------------------------------------------- */

typedef struct qissue {
    const char *check;
    uint8_t id[PS_ID_LEN];
    char unit[13];
    int kind;
    char detail[200];
} qissue_t;

typedef struct idrefs {
    size_t n;
    struct {
        uint8_t id[PS_ID_LEN];
        char unit[13];
        char town[13];
        char idn[19];
    } r[];
} idrefs_t;

typedef struct quality {
    ps_cache_t *c;
    const scope_t *s;
    const char *root;
    uint32_t dl_u, dl_n, today;
    char today_s[16];
    ps_strtab_t live;      /* pass 1: id (hex) of every record held -> kind + 1, 0 when deleted */
    ps_strtab_t idn, nb;   /* pass 2: ID numbers, name + birth date */
    qissue_t *v;
    size_t n, cap;
    int rc;
} quality_t;

static int issue_add(quality_t *q, const char *check, const uint8_t *id, const char *unit, int kind,
                     const char *detail)
{
    qissue_t *e;
    if (PS_VEC_ROOM(q->v, q->n, q->cap, 256))
        return PS_ENOMEM;
    e = &q->v[q->n++];
    e->check = check;
    memcpy(e->id, id, PS_ID_LEN);
    snprintf(e->unit, sizeof(e->unit), "%s", unit);
    e->kind = kind;
    /* The server's detail column holds 95 bytes. */
    snprintf(e->detail, 96, "%.95s", detail);
    return PS_OK;
}

static int note_live(Popsync__Record *r, void *arg)
{
    quality_t *q = arg;
    char hex[2 * PS_ID_LEN + 1];
    ps_strent_t *e;
    if (r->id.len != PS_ID_LEN)
        return 0;
    ps_hex(r->id.data, PS_ID_LEN, hex);
    if (!(e = ps_strtab_get(&q->live, hex))) {
        q->rc = PS_ENOMEM;
        return 1;
    }
    e->count = r->deleted ? 0 : (uint64_t)r->kind + 1;
    return 0;
}

/* The server sees every record of the district; a cache only its scope.
 * A reference to a record the cache does not hold is dangling for a
 * district (admin) cache, and unknown (not reported) for any other. */
static int dangling_refs(quality_t *q, const Popsync__Record *r, const char *unit)
{
    ps_ref_t refs[PS_REFS_MAX];
    size_t n = ps_record_refs(r, refs);
    int rc = PS_OK;

    for (size_t i = 0; rc == PS_OK && i < n; i++) {
        char hex[2 * PS_ID_LEN + 1], detail[96];
        const ps_strent_t *e;
        ps_hex(refs[i].id, PS_ID_LEN, hex);
        e = ps_strtab_find(&q->live, hex);
        if (e ? e->count == (uint64_t)refs[i].kind + 1 : !q->s->admin)
            continue;
        snprintf(detail, sizeof(detail), "%s: no live %s record", refs[i].field, ps_kind_name(refs[i].kind));
        rc = issue_add(q,
                       strcmp(refs[i].field, "mother_id") == 0 && r->kind == POPSYNC__KIND__KIND_BIRTH
                           ? "missing_mother"
                           : "dangling_reference",
                       r->id.data, unit, r->kind, detail);
    }
    return rc;
}

static int idrefs_add(quality_t *q, ps_strtab_t *t, const char *key, const Popsync__Record *r, const char *unit)
{
    ps_strent_t *e = ps_strtab_get(t, key);
    idrefs_t *ir;
    size_t n;
    if (!e)
        return PS_ENOMEM;
    n = e->aux ? ((idrefs_t *)e->aux)->n : 0;
    if (!(ir = realloc(e->aux, sizeof(idrefs_t) + (n + 1) * sizeof(ir->r[0]))))
        return PS_ENOMEM;
    ir->n = n + 1;
    memcpy(ir->r[n].id, r->id.data, PS_ID_LEN);
    memcpy(ir->r[n].unit, unit, 13);
    township_of(q->s, unit, ir->r[n].town);
    snprintf(ir->r[n].idn, sizeof(ir->r[n].idn), "%s", r->person->id_number ? r->person->id_number : "");
    e->aux = ir;
    return PS_OK;
}

static int overdue(quality_t *q, const Popsync__Record *r, const char *unit)
{
    const Popsync__Migration *g = r->migration;
    int32_t days;
    uint32_t dl = g->urgent ? q->dl_u : q->dl_n;
    char detail[96];
    if (!g->submitted_date || !*g->submitted_date || (g->feedback_date && *g->feedback_date))
        return PS_OK;
    days = ps_days_between(g->submitted_date, q->today_s);
    if (days == INT32_MIN || days <= (int32_t)dl)
        return PS_OK;
    snprintf(detail, sizeof(detail), "submitted %s, no feedback after %d days (deadline %u)", g->submitted_date,
             days, dl);
    return issue_add(q, "feedback_overdue", r->id.data, unit, r->kind, detail);
}

/* Pass 2: the checks of one record, in the server's order. */
static int check_record(Popsync__Record *r, void *arg)
{
    quality_t *q = arg;
    const char *unit = r->orgunit ? r->orgunit : "";
    ps_verrs_t ve;
    ps_validate_ctx_t vc;
    int rc = PS_OK;

    if (r->deleted || r->id.len != PS_ID_LEN || !in_scope(q->s, r, q->root))
        return 0;
    memset(&ve, 0, sizeof(ve));
    memset(&vc, 0, sizeof(vc));
    vc.today = q->today;
    ps_validate_record(r, &vc, &ve);
    for (size_t i = 0; rc == PS_OK && i < ve.n && i < PS_VERR_MAX; i++) {
        const char *f = ve.e[i].field;
        char detail[sizeof(ve.e[0].field) + 2 + sizeof(ve.e[0].reason)]; /* as the server's (store_query.c) */
        snprintf(detail, sizeof(detail), "%s: %s", f, ve.e[i].reason);
        if (!strcmp(f, "id_number"))
            rc = issue_add(q, "invalid_id_number", r->id.data, unit, r->kind, detail);
        else if (strstr(f, "date"))
            rc = issue_add(q, "impossible_date", r->id.data, unit, r->kind, detail);
    }
    if (rc == PS_OK && r->body_case == POPSYNC__RECORD__BODY_PERSON && r->person->id_number &&
        strlen(r->person->id_number) == 18)
        rc = idrefs_add(q, &q->idn, r->person->id_number, r, unit);
    if (rc == PS_OK && r->body_case == POPSYNC__RECORD__BODY_PERSON && r->person->name && *r->person->name &&
        r->person->birth_date && *r->person->birth_date) {
        char key[256];
        snprintf(key, sizeof(key), "%s|%s", r->person->name, r->person->birth_date);
        rc = idrefs_add(q, &q->nb, key, r, unit);
    }
    if (rc == PS_OK)
        rc = dangling_refs(q, r, unit);
    if (rc == PS_OK && r->body_case == POPSYNC__RECORD__BODY_MIGRATION)
        rc = overdue(q, r, unit);
    q->rc = rc;
    return rc != PS_OK;
}

/* The hash tables' order is the server's as well: the same table, the same
 * keys, the same insertion order. */
static int dup_numbers(quality_t *q)
{
    int rc = PS_OK;
    for (size_t i = 0; rc == PS_OK && i < q->idn.cap; i++) {
        const idrefs_t *ir = q->idn.v[i].aux;
        for (size_t j = 0; ir && ir->n > 1 && rc == PS_OK && j < ir->n; j++) {
            size_t same = 0;
            char detail[96];
            for (size_t o = 0; o < ir->n; o++)
                same += o != j && strcmp(ir->r[o].town, ir->r[j].town) == 0;
            snprintf(detail, sizeof(detail), "id_number also held by %zu record(s) in this township, %zu in others",
                     same, ir->n - 1 - same);
            rc = issue_add(q, "duplicate_id_number", ir->r[j].id, ir->r[j].unit, POPSYNC__KIND__KIND_PERSON, detail);
        }
    }
    return rc;
}

static int name_dates(quality_t *q)
{
    int rc = PS_OK;
    for (size_t i = 0; rc == PS_OK && i < q->nb.cap; i++) {
        const idrefs_t *ir = q->nb.v[i].aux;
        int differ = 0;
        if (!ir || ir->n < 2)
            continue;
        for (size_t o = 1; o < ir->n; o++)
            differ |= strcmp(ir->r[o].idn, ir->r[0].idn) != 0;
        for (size_t j = 0; differ && rc == PS_OK && j < ir->n; j++) {
            char detail[96];
            snprintf(detail, sizeof(detail), "same name and birth date as %zu other record(s)", ir->n - 1);
            rc = issue_add(q, "possible_duplicate", ir->r[j].id, ir->r[j].unit, POPSYNC__KIND__KIND_PERSON, detail);
        }
    }
    return rc;
}

static int quality_result(const quality_t *q, Popsync__ReportResult **out)
{
    Popsync__ReportResult res = POPSYNC__REPORT_RESULT__INIT;
    Popsync__QualityIssue *iv = calloc(q->n ? q->n : 1, sizeof(*iv));
    Popsync__QualityIssue **ip = calloc(q->n ? q->n : 1, sizeof(*ip));
    int rc = PS_ENOMEM;
    if (!iv || !ip)
        goto out;
    for (size_t i = 0; i < q->n; i++) {
        popsync__quality_issue__init(&iv[i]);
        iv[i].check = (char *)q->v[i].check;
        iv[i].record_id.data = (uint8_t *)q->v[i].id;
        iv[i].record_id.len = PS_ID_LEN;
        iv[i].orgunit = (char *)q->v[i].unit;
        iv[i].kind = q->v[i].kind;
        iv[i].detail = (char *)q->v[i].detail;
        ip[i] = &iv[i];
    }
    res.report = "quality";
    res.month = "";
    res.n_issues = q->n;
    res.issues = ip;
    res.generated_ms = ps_now_ms();
    res.deadline_urgent_days = q->dl_u;
    res.deadline_normal_days = q->dl_n;
    *out = (Popsync__ReportResult *)copy_msg(&res.base);
    rc = *out ? PS_OK : PS_ENOMEM;
out:
    free(iv);
    free(ip);
    return rc;
}

static int report_quality(ps_cache_t *c, const scope_t *s, const Popsync__ReportRequest *req,
                          Popsync__ReportResult **out, char *err, size_t errlen)
{
    quality_t q;
    int rc;

    memset(&q, 0, sizeof(q));
    q.c = c;
    q.s = s;
    q.root = req->orgunit && *req->orgunit ? req->orgunit : NULL;
    if (q.root && !ps_orgunit_valid(q.root)) {
        snprintf(err, errlen, "orgunit must be a 12-digit code");
        return PS_EINVAL;
    }
    q.dl_u = req->deadline_urgent_days ? req->deadline_urgent_days : 15;
    q.dl_n = req->deadline_normal_days ? req->deadline_normal_days : 30;
    q.today = district_today(c);
    snprintf(q.today_s, sizeof(q.today_s), "%04u-%02u-%02u", q.today / 10000, q.today / 100 % 100, q.today % 100);
    rc = ps_cache_foreach(c, note_live, &q);
    if (rc == PS_OK && !(rc = q.rc))
        rc = ps_cache_foreach(c, check_record, &q);
    if (rc == PS_OK && !(rc = q.rc) && !(rc = dup_numbers(&q)) && !(rc = name_dates(&q)))
        rc = quality_result(&q, out);
    ps_strtab_free(&q.live);
    ps_strtab_free(&q.idn);
    ps_strtab_free(&q.nb);
    free(q.v);
    return rc;
}

int ps_offline_report(ps_cache_t *c, const Popsync__ReportRequest *req, Popsync__ReportResult **out, char *err,
                      size_t errlen)
{
    scope_t s;
    int rc;

    *out = NULL;
    if ((rc = offline_allowed(c, err, errlen)))
        return rc;
    if (req->orgunit && *req->orgunit && !ps_orgunit_valid(req->orgunit)) {
        snprintf(err, errlen, "orgunit must be a 12-digit code");
        return PS_EINVAL;
    }
    scope_load(c, &s);
    if (!strcmp(req->report, "monthly"))
        rc = report_monthly(c, &s, req, out, err, errlen);
    else if (!strcmp(req->report, "quality"))
        rc = report_quality(c, &s, req, out, err, errlen);
    else {
        snprintf(err, errlen, "no report '%s' offline", req->report);
        rc = PS_EINVAL;
    }
    ps_orgunits_free(s.tree);
    return rc;
}

/* ---- query: a scan ------------------------------------------------------------- */

#define QUERY_MAX_GROUPS 200000

typedef struct qscan {
    const scope_t *s;
    const Popsync__Query *q;
    const char *root;
    size_t max_records;
    ps_strtab_t groups;
    uint64_t scanned, matched;
    void (*on_result)(const Popsync__QueryResult *res, void *arg);
    void *arg;
    int rc;
    char *err;
    size_t errlen;
} qscan_t;

static int query_one(Popsync__Record *r, void *arg)
{
    qscan_t *x = arg;
    const Popsync__Query *q = x->q;
    char keybuf[1024];
    size_t off = 0;
    ps_strent_t *g;

    if ((int)r->kind != (int)q->kind || (!q->include_deleted && r->deleted) || !in_scope(x->s, r, x->root))
        return 0;
    x->scanned++;
    if (!ps_query_match(q, r))
        return 0;
    x->matched++;
    if (q->list) {
        /* Handed over one at a time: report.c keeps what it prints. */
        Popsync__QueryResult res = POPSYNC__QUERY_RESULT__INIT;
        res.n_records = 1;
        res.records = &r;
        x->on_result(&res, x->arg);
        return x->max_records && x->matched >= x->max_records;
    }
    keybuf[0] = '\0';
    for (size_t i = 0; i < q->n_group_by; i++) {
        char part[512] = "";
        ps_query_group_part(x->s->tree, q, r, q->group_by[i], part, sizeof(part));
        /* \x1f separates parts: no text form contains it. */
        off += (size_t)snprintf(keybuf + off, sizeof(keybuf) - off, "%s%s", i ? "\x1f" : "", part);
        if (off >= sizeof(keybuf))
            off = sizeof(keybuf) - 1;
    }
    keybuf[off] = '\0';
    if (!(g = ps_strtab_get(&x->groups, keybuf)) || x->groups.n > QUERY_MAX_GROUPS) {
        snprintf(x->err, x->errlen, "more than %d groups: narrow the query", QUERY_MAX_GROUPS);
        x->rc = g ? PS_ETOOBIG : PS_ENOMEM;
        return 1;
    }
    g->count++;
    if (q->sum_field && *q->sum_field) {
        char num[64];
        if (ps_record_get_text(r, q->sum_field, num, sizeof(num)) == PS_OK)
            g->sum += strtoll(num, NULL, 10);
    }
    return 0;
}

static int cmp_groups(const void *a, const void *b)
{
    const ps_strent_t *x = *(const ps_strent_t *const *)a, *y = *(const ps_strent_t *const *)b;
    return strcmp(x->key, y->key);
}

/* The groups, sorted by key, in one QueryResult. */
static int query_groups(qscan_t *x)
{
    size_t n = x->groups.n, ng = x->q->n_group_by ? x->q->n_group_by : 1, k = 0;
    ps_strent_t **rows = calloc(n ? n : 1, sizeof(*rows));
    Popsync__QueryRow *qr = calloc(n ? n : 1, sizeof(*qr));
    Popsync__QueryRow **qp = calloc(n ? n : 1, sizeof(*qp));
    char **keys = calloc((n ? n : 1) * ng, sizeof(char *));
    char **copies = calloc(n ? n : 1, sizeof(char *));
    Popsync__QueryResult res = POPSYNC__QUERY_RESULT__INIT;
    int rc = PS_ENOMEM;

    if (!rows || !qr || !qp || !keys || !copies)
        goto out;
    for (size_t i = 0; i < x->groups.cap; i++)
        if (x->groups.v[i].key)
            rows[k++] = &x->groups.v[i];
    qsort(rows, n, sizeof(*rows), cmp_groups);
    for (size_t i = 0; i < n; i++) {
        char *part;
        popsync__query_row__init(&qr[i]);
        if (!(copies[i] = strdup(rows[i]->key)))
            goto out;
        qr[i].key = keys + i * ng;
        part = copies[i];
        for (size_t g = 0; g < x->q->n_group_by; g++) {
            char *sep = strchr(part, '\x1f');
            if (sep)
                *sep = '\0';
            qr[i].key[qr[i].n_key++] = part;
            part = sep ? sep + 1 : part + strlen(part);
        }
        qr[i].count = rows[i]->count;
        qr[i].sum = rows[i]->sum;
        qp[i] = &qr[i];
    }
    res.n_group_by = x->q->n_group_by;
    res.group_by = x->q->group_by;
    res.n_rows = n;
    res.rows = qp;
    res.done = 1;
    res.scanned = x->scanned;
    res.matched = x->matched;
    x->on_result(&res, x->arg);
    rc = PS_OK;
out:
    for (size_t i = 0; copies && i < n; i++)
        free(copies[i]);
    free(copies);
    free(keys);
    free(qp);
    free(qr);
    free(rows);
    return rc;
}

int ps_offline_query(ps_cache_t *c, const Popsync__Query *q, size_t max_records,
                     void (*on_result)(const Popsync__QueryResult *res, void *arg), void *arg, char *err,
                     size_t errlen)
{
    scope_t s;
    qscan_t x;
    int rc;

    if ((rc = offline_allowed(c, err, errlen)) || (rc = ps_query_check(q, err, errlen)))
        return rc;
    if (q->orgunit && *q->orgunit && !ps_orgunit_valid(q->orgunit)) {
        snprintf(err, errlen, "Query.orgunit must be a 12-digit code");
        return PS_EINVAL;
    }
    scope_load(c, &s);
    memset(&x, 0, sizeof(x));
    x.s = &s;
    x.q = q;
    x.root = q->orgunit && *q->orgunit ? q->orgunit : NULL;
    x.max_records = max_records;
    x.on_result = on_result;
    x.arg = arg;
    x.err = err;
    x.errlen = errlen;
    rc = ps_cache_foreach(c, query_one, &x);
    if (rc == PS_OK)
        rc = x.rc;
    if (rc == PS_OK && q->list) {
        Popsync__QueryResult res = POPSYNC__QUERY_RESULT__INIT;
        res.done = 1;
        res.scanned = x.scanned;
        res.matched = x.matched;
        on_result(&res, arg);
    } else if (rc == PS_OK) {
        rc = query_groups(&x);
    }
    ps_strtab_free(&x.groups);
    ps_orgunits_free(s.tree);
    return rc;
}

/* ---- the stamp ------------------------------------------------------------------- */

void ps_offline_stamp(ps_cache_t *c, int zh, char *buf, size_t len)
{
    const ps_cache_meta_t *m = ps_cache_meta(c);
    const char *zone = m->timezone[0] ? m->timezone : PS_TZ_DEFAULT;
    uint64_t pending = 0;
    char when[64] = "", extra[160] = "", scope[96] = "";
    ps_tz_t tz;
    char err[128];

    if (m->last_sync_ms) {
        time_t t;
        struct tm tm;
        int rc = ps_tz_get(&tz, zone, err, sizeof(err));
        if (rc == PS_ENOTFOUND) /* popsync ui: the zone it started with */
            zone = tz.name[0] ? tz.name : "UTC";
        else if (rc != PS_OK) {
            memset(&tz, 0, sizeof(tz));
            zone = "UTC";
        }
        t = (time_t)(m->last_sync_ms / 1000) + tz.offset_s;
        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
    }
    ps_cache_outbox_count(c, &pending);
    if (pending)
        snprintf(extra, sizeof(extra), zh ? "，含 %llu 项尚未上传的本地修改" : "; includes %llu local change(s) not yet sent",
                 (unsigned long long)pending);
    if (strcmp(m->role, "admin") != 0)
        snprintf(scope, sizeof(scope), zh ? "；范围：本缓存所辖 %s" : "; covers this cache's scope, %s", m->orgunit);
    if (!m->last_sync_ms)
        snprintf(buf, len, zh ? "本地缓存数据（尚未同步过）%s%s" : "from the local cache, which has never synced%s%s",
                 extra, scope);
    else
        snprintf(buf, len, zh ? "截至上次同步 %s（%s）的本地缓存数据%s%s" : "as of the last sync, %s %s%s%s", when, zone,
                 extra, scope);
}
