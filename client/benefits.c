/* benefits.c - the scheme table and its evaluator (see benefits.h). */
#include "benefits.h"

#include "err.h"
#include "ids.h"
#include "panels.h"
#include "policy.h"
#include "validate.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCHEMES 32
#define MAX_CONDS 8
#define MAX_TIERS 8

/* ---- the table ----------------------------------------------------------------- */

/* The facts a condition may name (docs/benefits.md §3). */
enum fact {
    F_AGE,
    F_MOTHER_AGE,
    F_FEMALE,
    F_RURAL,
    F_URBAN,
    F_CHILDREN,
    F_SONS,
    F_DAUGHTERS,
    F_LIVING_CHILDREN,
    F_DECEASED_CHILDREN,
    F_DISABLED_CHILDREN,
    F_YOUNGEST_CHILD_AGE,
    F_OLDEST_CHILD_AGE,
    F_GAVE_UP,
    F_COUNT
};

static const char *const FACTS[F_COUNT] = {"age",           "mother_age",        "female",
                                           "rural",         "urban",             "children",
                                           "sons",          "daughters",         "living_children",
                                           "deceased_children", "disabled_children", "youngest_child_age",
                                           "oldest_child_age",  "gave_up"};

enum op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE };
static const char *const OPS[] = {"=", "!=", "<", "<=", ">", ">="};

typedef struct cond {
    int fact, op;
    long value;
} cond_t;

typedef struct conds {
    cond_t c[MAX_CONDS];
    size_t n;
} conds_t;

typedef struct tier {
    conds_t when;
    int64_t amount_fen;
} tier_t;

enum period_kind { P_YEAR, P_MONTH, P_ONCE };
enum event { EV_NONE, EV_FIRST_BIRTH, EV_GAVE_UP };

typedef struct scheme {
    char code[32];
    int each_parent;
    int period, event;
    uint32_t start, end; /* YYYYMMDD: first day of start month, last day of end month (0: open) */
    conds_t when;
    tier_t tiers[MAX_TIERS];
    size_t ntiers;
} scheme_t;

struct ps_schemes {
    scheme_t s[MAX_SCHEMES];
    size_t n;
    char *text;
};

static int days_in(unsigned y, unsigned m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0) ? 29 : d[m - 1];
}

int ps_period_bounds(const char *p, uint32_t *first, uint32_t *last)
{
    unsigned y, m;
    char tail;

    if (!p)
        return -1;
    if (strlen(p) == 4 && sscanf(p, "%4u%c", &y, &tail) == 1 && y >= 1890 && y < 3000) {
        *first = y * 10000 + 101;
        *last = y * 10000 + 1231;
        return 0;
    }
    if (strlen(p) == 7 && p[4] == '-' && sscanf(p, "%4u-%2u%c", &y, &m, &tail) == 2 && y >= 1890 && y < 3000 &&
        m >= 1 && m <= 12) {
        *first = y * 10000 + m * 100 + 1;
        *last = y * 10000 + m * 100 + (unsigned)days_in(y, m);
        return 0;
    }
    return -1;
}

static int parse_conds(const json_t *arr, conds_t *out, const char *code, char *err, size_t errlen)
{
    size_t i;
    const json_t *c;

    out->n = 0;
    if (!json_is_array(arr) || json_array_size(arr) > MAX_CONDS) {
        snprintf(err, errlen, "scheme %s: \"when\" must be a list of at most %d conditions", code, MAX_CONDS);
        return PS_EINVAL;
    }
    json_array_foreach(arr, i, c)
    {
        const char *f = json_string_value(json_array_get(c, 0)), *o = json_string_value(json_array_get(c, 1));
        const json_t *v = json_array_get(c, 2);
        int fi, oi;
        for (fi = 0; fi < F_COUNT && (!f || strcmp(FACTS[fi], f) != 0); fi++)
            ;
        for (oi = 0; oi < 6 && (!o || strcmp(OPS[oi], o) != 0); oi++)
            ;
        if (json_array_size(c) != 3 || fi == F_COUNT || oi == 6 || !json_is_integer(v)) {
            snprintf(err, errlen,
                     "scheme %s: condition %zu must be [FACT, OP, WHOLE NUMBER] with FACT one of age, mother_age, "
                     "female, rural, urban, children, sons, daughters, living_children, deceased_children, "
                     "disabled_children, youngest_child_age, oldest_child_age, gave_up and OP one of = != < <= > >=",
                     code, i + 1);
            return PS_EINVAL;
        }
        out->c[out->n].fact = fi;
        out->c[out->n].op = oi;
        out->c[out->n].value = (long)json_integer_value(v);
        out->n++;
    }
    return PS_OK;
}

static int month_bound(const char *s, int last, uint32_t *out)
{
    uint32_t a, b;
    if (!s || !*s) {
        *out = 0;
        return 0;
    }
    if (strlen(s) != 7 || ps_period_bounds(s, &a, &b))
        return -1;
    *out = last ? b : a;
    return 0;
}

static int parse_scheme(const json_t *j, scheme_t *s, char *err, size_t errlen)
{
    const char *code = json_string_value(json_object_get(j, "code"));
    const char *rec = json_string_value(json_object_get(j, "recipient"));
    const char *per = json_string_value(json_object_get(j, "period"));
    const char *ev = json_string_value(json_object_get(j, "event"));
    const json_t *tiers = json_object_get(j, "tiers"), *t;
    size_t i;
    int rc;

    memset(s, 0, sizeof(*s));
    if (!code || !ps_scheme_label(code, 0)) {
        snprintf(err, errlen, "scheme %s: \"code\" must be one of the scheme codes popsync knows (popsync fields "
                              "benefit)", code ? code : "(no code)");
        return PS_EINVAL;
    }
    snprintf(s->code, sizeof(s->code), "%s", code);
    s->each_parent = rec && strcmp(rec, "each_parent") == 0;
    if (!rec || (!s->each_parent && strcmp(rec, "mother") != 0)) {
        snprintf(err, errlen, "scheme %s: \"recipient\" must be each_parent or mother", code);
        return PS_EINVAL;
    }
    s->period = per && !strcmp(per, "year") ? P_YEAR : per && !strcmp(per, "month") ? P_MONTH
                : per && !strcmp(per, "once") ? P_ONCE : -1;
    s->event = !ev ? EV_NONE : !strcmp(ev, "first_birth") ? EV_FIRST_BIRTH : !strcmp(ev, "gave_up_birth") ? EV_GAVE_UP : -1;
    if (s->period < 0 || s->event < 0 || (s->period == P_ONCE) != (s->event != EV_NONE)) {
        snprintf(err, errlen, "scheme %s: \"period\" must be year, month or once; a once scheme needs \"event\" "
                              "first_birth or gave_up_birth (and only it)", code);
        return PS_EINVAL;
    }
    if (month_bound(json_string_value(json_object_get(j, "start")), 0, &s->start) || !s->start ||
        month_bound(json_string_value(json_object_get(j, "end")), 1, &s->end)) {
        snprintf(err, errlen, "scheme %s: \"start\" (required) and \"end\" (\"\" for none) must be YYYY-MM", code);
        return PS_EINVAL;
    }
    if ((rc = parse_conds(json_object_get(j, "when"), &s->when, code, err, errlen)))
        return rc;
    if (!json_is_array(tiers) || json_array_size(tiers) == 0 || json_array_size(tiers) > MAX_TIERS) {
        snprintf(err, errlen, "scheme %s: \"tiers\" must list 1 to %d amounts", code, MAX_TIERS);
        return PS_EINVAL;
    }
    json_array_foreach(tiers, i, t)
    {
        const json_t *a = json_object_get(t, "amount_fen");
        if ((rc = parse_conds(json_object_get(t, "when"), &s->tiers[i].when, code, err, errlen)))
            return rc;
        if (!json_is_integer(a) || json_integer_value(a) <= 0 || json_integer_value(a) > 100000000) {
            snprintf(err, errlen, "scheme %s: tier %zu: \"amount_fen\" must be a positive whole number of fen", code,
                     i + 1);
            return PS_EINVAL;
        }
        s->tiers[i].amount_fen = (int64_t)json_integer_value(a);
    }
    s->ntiers = json_array_size(tiers);
    return PS_OK;
}

static int parse_table(const char *text, ps_schemes_t *s, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loads(text, 0, &je), *arr, *j;
    size_t i;
    int rc = PS_OK;

    if (!root) {
        snprintf(err, errlen, "not valid JSON: line %d: %s", je.line, je.text);
        return PS_EINVAL;
    }
    arr = json_object_get(root, "schemes");
    if (!json_is_array(arr) || json_array_size(arr) > MAX_SCHEMES) {
        snprintf(err, errlen, "\"schemes\" must be a list of at most %d schemes", MAX_SCHEMES);
        rc = PS_EINVAL;
    } else {
        json_array_foreach(arr, i, j)
        {
            if ((rc = parse_scheme(j, &s->s[i], err, errlen)))
                break;
            s->n++;
        }
    }
    json_decref(root);
    return rc;
}

int ps_schemes_load(const char *path, ps_schemes_t **out, char *err, size_t errlen)
{
    ps_schemes_t *s = calloc(1, sizeof(*s));
    const char *p = path ? path : getenv("POPSYNC_SCHEMES");
    int rc;

    *out = NULL;
    if (!s)
        return PS_ENOMEM;
    if (p && *p) {
        FILE *f = fopen(p, "rb");
        long n = -1;
        if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 20) && fseek(f, 0, SEEK_SET) == 0 &&
            (s->text = malloc((size_t)n + 1)) && fread(s->text, 1, (size_t)n, f) == (size_t)n)
            s->text[n] = '\0';
        else
            n = -1;
        if (f)
            fclose(f);
        if (n < 0) {
            snprintf(err, errlen, "cannot read the scheme table %s (at most 1 MiB)", p);
            ps_schemes_free(s);
            return PS_EINVAL;
        }
    } else if (!(s->text = strdup(ps_schemes_default_json))) {
        ps_schemes_free(s);
        return PS_ENOMEM;
    }
    if ((rc = parse_table(s->text, s, err, errlen))) {
        ps_schemes_free(s);
        return rc;
    }
    *out = s;
    return PS_OK;
}

void ps_schemes_free(ps_schemes_t *s)
{
    if (!s)
        return;
    free(s->text);
    free(s);
}

const char *ps_schemes_text(const ps_schemes_t *s)
{
    return s->text;
}

/* ---- the cache's families ------------------------------------------------------------ */

typedef struct bper {
    uint8_t id[16], household[16];
    char unit[13];
    int male, female, rural, urban, married, has_household;
    uint32_t born, died, gave_up;
    uint32_t disability;
} bper_t;

typedef struct bbirth {
    uint8_t mother[16], child[16];
    int has_child, male;
    uint32_t date, order;
} bbirth_t;

typedef struct bpay {
    uint8_t person[16];
    char scheme[32], period[8];
    int64_t amount;
} bpay_t;

typedef struct husband {
    uint8_t household[16];
    const bper_t *p;
} husband_t;

typedef struct world {
    bper_t *p;
    size_t np, capp;
    husband_t *h; /* married men by household, then record id */
    size_t nh;
    bbirth_t *b;
    size_t nb, capb;
    bpay_t *y;
    size_t ny, capy;
    int oom;
} world_t;

static uint32_t ymd(const char *s)
{
    unsigned y, m, d;
    return s && strlen(s) == 10 && sscanf(s, "%4u-%2u-%2u", &y, &m, &d) == 3 ? y * 10000 + m * 100 + d : 0;
}

static void *grow(void *v, size_t *cap, size_t n, size_t size, int *oom)
{
    void *nv;
    if (n < *cap)
        return v;
    nv = realloc(v, (*cap ? *cap * 2 : 256) * size);
    if (!nv) {
        *oom = 1;
        return NULL;
    }
    *cap = *cap ? *cap * 2 : 256;
    return nv;
}

static void add_person(world_t *w, const Popsync__Record *r)
{
    const Popsync__Person *p = r->person;
    bper_t *e;
    bper_t *nv = grow(w->p, &w->capp, w->np, sizeof(*w->p), &w->oom);
    if (!nv)
        return;
    w->p = nv;
    e = &w->p[w->np++];
    memset(e, 0, sizeof(*e));
    memcpy(e->id, r->id.data, 16);
    snprintf(e->unit, sizeof(e->unit), "%s", r->orgunit ? r->orgunit : "");
    e->male = p->sex == POPSYNC__SEX__SEX_MALE;
    e->female = p->sex == POPSYNC__SEX__SEX_FEMALE;
    e->rural = p->hukou_type == POPSYNC__HUKOU_TYPE__HUKOU_TYPE_RURAL;
    e->urban = p->hukou_type == POPSYNC__HUKOU_TYPE__HUKOU_TYPE_URBAN;
    e->married = p->marital_status == POPSYNC__MARITAL_STATUS__MARITAL_STATUS_MARRIED;
    if ((e->has_household = p->household_id.len == 16))
        memcpy(e->household, p->household_id.data, 16);
    e->born = ymd(p->birth_date);
    e->died = ymd(p->deceased_date);
    e->gave_up = ymd(p->gave_up_birth_date);
    e->disability = p->disability_grade;
}

static void add_birth(world_t *w, const Popsync__Birth *b)
{
    bbirth_t *e, *nv = grow(w->b, &w->capb, w->nb, sizeof(*w->b), &w->oom);
    if (!nv || b->mother_id.len != 16)
        return;
    w->b = nv;
    e = &w->b[w->nb++];
    memset(e, 0, sizeof(*e));
    memcpy(e->mother, b->mother_id.data, 16);
    if ((e->has_child = b->child_id.len == 16))
        memcpy(e->child, b->child_id.data, 16);
    e->male = b->child_sex == POPSYNC__SEX__SEX_MALE;
    e->date = ymd(b->birth_date);
    e->order = b->birth_order;
}

static void add_payment(world_t *w, const Popsync__Benefit *b)
{
    bpay_t *e, *nv;
    if (b->status != POPSYNC__BENEFIT_STATUS__BENEFIT_STATUS_PAID || b->person_id.len != 16 || !b->scheme ||
        !b->period || strlen(b->scheme) >= sizeof(e->scheme) || strlen(b->period) >= sizeof(e->period))
        return;
    if (!(nv = grow(w->y, &w->capy, w->ny, sizeof(*w->y), &w->oom)))
        return;
    w->y = nv;
    e = &w->y[w->ny++];
    memcpy(e->person, b->person_id.data, 16);
    snprintf(e->scheme, sizeof(e->scheme), "%s", b->scheme);
    snprintf(e->period, sizeof(e->period), "%s", b->period);
    e->amount = b->amount_fen;
}

static int scan(Popsync__Record *r, void *arg)
{
    world_t *w = arg;
    if (r->deleted || r->id.len != 16)
        return 0;
    if (r->body_case == POPSYNC__RECORD__BODY_PERSON && r->person)
        add_person(w, r);
    else if (r->body_case == POPSYNC__RECORD__BODY_BIRTH && r->birth)
        add_birth(w, r->birth);
    else if (r->body_case == POPSYNC__RECORD__BODY_BENEFIT && r->benefit)
        add_payment(w, r->benefit);
    return w->oom;
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static const bper_t *person(const world_t *w, const uint8_t id[16])
{
    return !w->np ? NULL : bsearch(id, w->p, w->np, sizeof(*w->p), cmp_id);
}

/* Whole years from date a to date b (YYYYMMDD); -1 when a is unknown. */
static long age_at(uint32_t born, uint32_t at)
{
    if (!born || at < born)
        return -1;
    return (long)((at - born) / 10000);
}

/* ---- the evaluator ----------------------------------------------------------------------- */

static void facts_of(const world_t *w, const bper_t *mother, const bper_t *rec, const bbirth_t *births, size_t nb,
                     uint32_t at, long *f)
{
    long youngest = -1, oldest = -1;

    memset(f, 0, F_COUNT * sizeof(*f));
    f[F_AGE] = age_at(rec->born, at);
    f[F_MOTHER_AGE] = age_at(mother->born, at);
    f[F_FEMALE] = rec->female;
    f[F_RURAL] = rec->rural;
    f[F_URBAN] = rec->urban;
    f[F_GAVE_UP] = mother->gave_up && mother->gave_up <= at;
    for (size_t i = 0; i < nb; i++) {
        const bbirth_t *b = &births[i];
        const bper_t *child = b->has_child ? person(w, b->child) : NULL;
        long a;
        if (!b->date || b->date > at)
            continue;
        f[F_CHILDREN]++;
        f[b->male ? F_SONS : F_DAUGHTERS]++;
        if (child && child->died && child->died <= at)
            f[F_DECEASED_CHILDREN]++;
        else
            f[F_LIVING_CHILDREN]++;
        if (child && child->disability >= 1 && child->disability <= 3)
            f[F_DISABLED_CHILDREN]++;
        a = age_at(b->date, at);
        if (youngest < 0 || a < youngest)
            youngest = a;
        if (a > oldest)
            oldest = a;
    }
    f[F_YOUNGEST_CHILD_AGE] = youngest;
    f[F_OLDEST_CHILD_AGE] = oldest;
}

static int holds(const conds_t *c, const long *f)
{
    for (size_t i = 0; i < c->n; i++) {
        long a = f[c->c[i].fact], b = c->c[i].value;
        int ok;
        switch (c->c[i].op) {
        case OP_EQ: ok = a == b; break;
        case OP_NE: ok = a != b; break;
        case OP_LT: ok = a < b; break;
        case OP_LE: ok = a <= b; break;
        case OP_GT: ok = a > b; break;
        default: ok = a >= b; break;
        }
        if (!ok)
            return 0;
    }
    return 1;
}

/* The amount of the first tier whose conditions hold, when the scheme's do. */
static int64_t amount_of(const scheme_t *s, const long *f)
{
    if (!holds(&s->when, f))
        return 0;
    for (size_t t = 0; t < s->ntiers; t++)
        if (holds(&s->tiers[t].when, f))
            return s->tiers[t].amount_fen;
    return 0;
}

typedef struct evalctx {
    const world_t *w;
    const ps_orgunits_t *tree;
    const char *root;
    ps_entitlements_t *out;
} evalctx_t;

static int push(evalctx_t *x, const bper_t *rec, const bper_t *mother, const char *scheme, const char *period,
                uint32_t end, int64_t amount)
{
    ps_entitlement_t *e, *nv;
    if (x->root && *x->root && !ps_policy_within(x->tree, rec->unit, x->root))
        return PS_OK;
    if (!(nv = grow(x->out->v, &x->out->cap, x->out->n, sizeof(*nv), &(int){0})))
        return PS_ENOMEM;
    x->out->v = nv;
    e = &x->out->v[x->out->n++];
    memset(e, 0, sizeof(*e));
    memcpy(e->person, rec->id, 16);
    memcpy(e->family, mother ? mother->id : rec->id, 16);
    snprintf(e->scheme, sizeof(e->scheme), "%s", scheme);
    snprintf(e->period, sizeof(e->period), "%s", period);
    ps_orgunits_township_code(x->tree, rec->unit, e->township);
    e->amount_fen = amount;
    e->end = end;
    return PS_OK;
}

static int cmp_husband(const void *a, const void *b)
{
    const husband_t *x = a, *y = b;
    int c = memcmp(x->household, y->household, 16);
    return c ? c : memcmp(x->p->id, y->p->id, 16);
}

/* The index of married men by household, once per computation (a scan per
 * mother would be quadratic in a district's persons). */
static int index_husbands(world_t *w)
{
    if (!(w->h = malloc((w->np + 1) * sizeof(*w->h))))
        return PS_ENOMEM;
    for (size_t i = 0; i < w->np; i++)
        if (w->p[i].male && w->p[i].married && w->p[i].has_household) {
            memcpy(w->h[w->nh].household, w->p[i].household, 16);
            w->h[w->nh++].p = &w->p[i];
        }
    if (w->nh)
        qsort(w->h, w->nh, sizeof(*w->h), cmp_husband);
    return PS_OK;
}

/* The husband of a mother: the married man of her household (the one with
 * the smallest record id, should there be two). */
static const bper_t *father_of(const world_t *w, const bper_t *m)
{
    size_t lo = 0, hi = w->nh;

    if (!m->has_household)
        return NULL;
    while (lo < hi) { /* the first entry of her household */
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(w->h[mid].household, m->household, 16) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->nh && memcmp(w->h[lo].household, m->household, 16) == 0 ? w->h[lo].p : NULL;
}

static int alive(const bper_t *p, uint32_t on)
{
    return !p->died || p->died > on;
}

/* One recurring period (first..last) of scheme s for the family of mother. */
static int eval_period(evalctx_t *x, const scheme_t *s, const bper_t *mother, const bbirth_t *b, size_t nb,
                       const char *period, uint32_t first, uint32_t last)
{
    const bper_t *rec[2] = {mother, s->each_parent ? father_of(x->w, mother) : NULL};
    long f[F_COUNT];
    int rc;

    if (last < s->start || (s->end && first > s->end))
        return PS_OK;
    for (int k = 0; k < 2; k++) {
        int64_t a;
        if (!rec[k] || !alive(rec[k], first))
            continue;
        facts_of(x->w, mother, rec[k], b, nb, last, f);
        if ((a = amount_of(s, f)) > 0 && (rc = push(x, rec[k], mother, s->code, period, last, a)))
            return rc;
    }
    return PS_OK;
}

/* The one-off events of scheme s in the family of mother, from..to. */
static int eval_once(evalctx_t *x, const scheme_t *s, const bper_t *mother, const bbirth_t *b, size_t nb,
                     uint32_t from, uint32_t to)
{
    uint32_t ev[64];
    size_t ne = 0;
    long f[F_COUNT];
    int rc;

    if (s->event == EV_GAVE_UP && mother->gave_up)
        ev[ne++] = mother->gave_up;
    for (size_t i = 0; s->event == EV_FIRST_BIRTH && i < nb && ne < 64; i++)
        if (b[i].order == 1 && b[i].date)
            ev[ne++] = b[i].date;
    for (size_t i = 0; i < ne; i++) {
        char period[8];
        int64_t a;
        if (ev[i] < from || ev[i] > to || ev[i] < s->start || (s->end && ev[i] > s->end) || !alive(mother, ev[i]))
            continue;
        snprintf(period, sizeof(period), "%04u-%02u", ev[i] / 10000 % 10000u, ev[i] / 100 % 100u);
        facts_of(x->w, mother, mother, b, nb, ev[i], f);
        if ((a = amount_of(s, f)) > 0 && (rc = push(x, mother, mother, s->code, period, ev[i], a)))
            return rc;
    }
    return PS_OK;
}

static int eval_family(evalctx_t *x, const ps_schemes_t *s, const bper_t *mother, const bbirth_t *b, size_t nb,
                       uint32_t from, uint32_t to)
{
    int rc = PS_OK;

    for (size_t k = 0; k < s->n && rc == PS_OK; k++) {
        const scheme_t *sc = &s->s[k];
        if (sc->period == P_ONCE) {
            rc = eval_once(x, sc, mother, b, nb, from, to);
            continue;
        }
        for (unsigned y = from / 10000; y <= to / 10000 && rc == PS_OK; y++) {
            char period[8];
            if (sc->period == P_YEAR) {
                if (y * 10000 + 1231 < from || y * 10000 + 1231 > to)
                    continue;
                snprintf(period, sizeof(period), "%04u", y % 10000u);
                rc = eval_period(x, sc, mother, b, nb, period, y * 10000 + 101, y * 10000 + 1231);
                continue;
            }
            for (unsigned m = 1; m <= 12 && rc == PS_OK; m++) {
                uint32_t last = y * 10000 + m * 100 + (unsigned)days_in(y, m);
                if (last < from || last > to)
                    continue;
                snprintf(period, sizeof(period), "%04u-%02u", y % 10000u, m % 100u);
                rc = eval_period(x, sc, mother, b, nb, period, y * 10000 + m * 100 + 1, last);
            }
        }
    }
    return rc;
}

static int cmp_birth_mother(const void *a, const void *b)
{
    const bbirth_t *x = a, *y = b;
    int c = memcmp(x->mother, y->mother, 16);
    return c ? c : (x->date > y->date) - (x->date < y->date);
}

/* Every mother: a woman with births or a declaration of giving up one. */
static int eval_all(evalctx_t *x, const ps_schemes_t *s, uint32_t from, uint32_t to)
{
    const world_t *w = x->w;
    size_t i = 0;
    int rc = PS_OK;

    for (size_t k = 0; k < w->np && rc == PS_OK; k++) {
        const bper_t *m = &w->p[k];
        size_t first, nb = 0;
        if (!m->female)
            continue;
        /* births sorted by mother: find hers */
        while (i < w->nb && memcmp(w->b[i].mother, m->id, 16) < 0)
            i++;
        first = i;
        while (i + nb < w->nb && memcmp(w->b[i + nb].mother, m->id, 16) == 0)
            nb++;
        if (nb == 0 && !m->gave_up)
            continue;
        rc = eval_family(x, s, m, w->b + first, nb, from, to);
    }
    return rc;
}

static int cmp_ent(const void *a, const void *b)
{
    const ps_entitlement_t *x = a, *y = b;
    int c = memcmp(x->person, y->person, 16);
    if (!c)
        c = strcmp(x->scheme, y->scheme);
    return c ? c : strcmp(x->period, y->period);
}

/* Payments against the entitlements; a payment of a period in from..to
 * that matches none becomes an entry with amount 0. */
static int match_payments(evalctx_t *x, uint32_t from, uint32_t to)
{
    ps_entitlements_t *e = x->out;
    size_t base = e->n;

    if (e->n)
        qsort(e->v, e->n, sizeof(*e->v), cmp_ent);
    for (size_t i = 0; i < x->w->ny; i++) {
        const bpay_t *y = &x->w->y[i];
        ps_entitlement_t key, *hit;
        uint32_t first, last;
        const bper_t *p;
        memset(&key, 0, sizeof(key));
        memcpy(key.person, y->person, 16);
        snprintf(key.scheme, sizeof(key.scheme), "%s", y->scheme);
        snprintf(key.period, sizeof(key.period), "%s", y->period);
        hit = !base ? NULL : bsearch(&key, e->v, base, sizeof(*e->v), cmp_ent);
        if (!hit) {
            /* one-off periods are months; a payment counts in from..to by its period's end */
            if (ps_period_bounds(y->period, &first, &last) || last < from || last > to ||
                !(p = person(x->w, y->person)))
                continue;
            for (size_t k = base; k < e->n && !hit; k++)
                if (cmp_ent(&e->v[k], &key) == 0)
                    hit = &e->v[k];
            if (!hit) {
                if (push(x, p, NULL, y->scheme, y->period, last, 0))
                    return PS_ENOMEM;
                hit = &e->v[e->n - 1];
            }
        }
        hit->paid_fen += y->amount;
        hit->npaid++;
    }
    if (e->n)
        qsort(e->v, e->n, sizeof(*e->v), cmp_ent);
    return PS_OK;
}

int ps_benefits_compute(ps_cache_t *c, const ps_schemes_t *s, const ps_orgunits_t *tree, const char *root,
                        uint32_t from, uint32_t to, ps_entitlements_t *out)
{
    world_t w;
    evalctx_t x = {&w, tree, root, out};
    int rc;

    memset(&w, 0, sizeof(w));
    memset(out, 0, sizeof(*out));
    if ((rc = ps_cache_foreach(c, scan, &w)) || w.oom) {
        rc = rc ? rc : PS_ENOMEM;
        goto out;
    }
    if (w.np)
        qsort(w.p, w.np, sizeof(*w.p), cmp_id);
    if (w.nb)
        qsort(w.b, w.nb, sizeof(*w.b), cmp_birth_mother);
    if ((rc = index_husbands(&w)) == PS_OK && (rc = eval_all(&x, s, from, to)) == PS_OK)
        rc = match_payments(&x, from, to);
out:
    free(w.h);
    free(w.p);
    free(w.b);
    free(w.y);
    if (rc)
        ps_entitlements_free(out);
    return rc;
}

void ps_entitlements_free(ps_entitlements_t *e)
{
    free(e->v);
    memset(e, 0, sizeof(*e));
}

const ps_entitlement_t *ps_entitlement_find(const ps_entitlements_t *e, const uint8_t person[16], const char *scheme,
                                            const char *period)
{
    ps_entitlement_t key;
    memset(&key, 0, sizeof(key));
    memcpy(key.person, person, 16);
    snprintf(key.scheme, sizeof(key.scheme), "%s", scheme);
    snprintf(key.period, sizeof(key.period), "%s", period);
    return !e->n ? NULL : bsearch(&key, e->v, e->n, sizeof(*e->v), cmp_ent);
}
