/* apply.c - one batch of stream messages into PostgreSQL, in one transaction.
 *
 * Why it is safe to apply a message twice (JetStream redelivers what was not
 * acknowledged, and the warehouse acknowledges only after COMMIT): a row is
 * replaced only by a strictly newer revision (gen, hlc, node: the order of
 * docs/sync.md), and the counters move only when the row does, by the old
 * version's contributions negatively and the new one's positively
 * (common/counters.c, the district's own rule).  A message already applied
 * therefore finds its own revision in the row and changes nothing; an older
 * version replayed later finds a newer one and changes nothing either.
 */
#include "wh_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counters.h"
#include "err.h"
#include "ids.h"
#include "log.h"
#include "record_fmt.h"
#include "testhooks.h"

#define NENV 13 /* envelope parameters of the upsert */

/* ---- counter deltas of a batch ------------------------------------------------ */

typedef struct delta {
    char district[WH_DISTRICT_MAX];
    uint32_t month;
    char unit[13];
    char metric[32];
    int64_t value;
    int used;
} delta_t;

typedef struct pos {
    char district[WH_DISTRICT_MAX];
    uint64_t last_seq, last_stream_seq;
    int64_t applied;
} pos_t;

static void have_reset(wh_apply_t *a);

struct wh_apply {
    PGconn *pg;
    char stream[64];
    delta_t *d;          /* open addressing, cap a power of two */
    size_t cap, used;
    pos_t *pos;
    size_t npos;
    char (*seen)[WH_DISTRICT_MAX]; /* districts whose partitions exist */
    size_t nseen;
    struct have *have;   /* rows of the batch's records: open addressing */
    size_t hcap;
    size_t nsent;        /* statements queued in the pipeline */
};

static uint64_t fnv(const char *s, uint64_t h)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static int delta_grow(wh_apply_t *a)
{
    size_t ncap = a->cap ? a->cap * 2 : 4096;
    delta_t *nd = calloc(ncap, sizeof(*nd)), *old = a->d;
    size_t ocap = a->cap;
    if (!nd)
        return PS_ENOMEM;
    a->d = nd;
    a->cap = ncap;
    a->used = 0;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].used)
            continue;
        uint64_t h = fnv(old[i].metric, fnv(old[i].unit, fnv(old[i].district, 1469598103934665603ULL) + old[i].month));
        size_t j = (size_t)h & (ncap - 1);
        while (nd[j].used)
            j = (j + 1) & (ncap - 1);
        nd[j] = old[i];
        a->used++;
    }
    free(old);
    return PS_OK;
}

static int delta_add(wh_apply_t *a, const char *district, const ps_contrib_t *c, int64_t sign)
{
    uint64_t h;
    size_t j;
    if ((a->used + 1) * 2 > a->cap && delta_grow(a))
        return PS_ENOMEM;
    h = fnv(c->metric, fnv(c->unit, fnv(district, 1469598103934665603ULL) + c->month));
    for (j = (size_t)h & (a->cap - 1); a->d[j].used; j = (j + 1) & (a->cap - 1)) {
        delta_t *d = &a->d[j];
        if (d->month == c->month && !strcmp(d->district, district) && !strcmp(d->unit, c->unit) &&
            !strcmp(d->metric, c->metric)) {
            d->value += sign * c->value;
            return PS_OK;
        }
    }
    a->d[j].used = 1;
    snprintf(a->d[j].district, sizeof(a->d[j].district), "%s", district);
    a->d[j].month = c->month;
    memcpy(a->d[j].unit, c->unit, sizeof(c->unit));
    memcpy(a->d[j].metric, c->metric, sizeof(c->metric));
    a->d[j].value = sign * c->value;
    a->used++;
    return PS_OK;
}

static int contrib_add(wh_apply_t *a, const char *district, const Popsync__Record *r, int64_t sign)
{
    ps_contrib_t cs[PS_CONTRIB_MAX];
    size_t n = ps_counters_contrib(r, cs, PS_CONTRIB_MAX);
    for (size_t i = 0; i < n; i++)
        if (delta_add(a, district, &cs[i], sign))
            return PS_ENOMEM;
    return PS_OK;
}

static pos_t *pos_for(wh_apply_t *a, const char *district)
{
    pos_t *p;
    for (size_t i = 0; i < a->npos; i++)
        if (!strcmp(a->pos[i].district, district))
            return &a->pos[i];
    p = realloc(a->pos, (a->npos + 1) * sizeof(*p));
    if (!p)
        return NULL;
    a->pos = p;
    p = &a->pos[a->npos++];
    memset(p, 0, sizeof(*p));
    snprintf(p->district, sizeof(p->district), "%s", district);
    return p;
}

/* ---- statements ------------------------------------------------------------------- */

static int prepare(PGconn *pg, const char *name, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQprepare(pg, name, sql, 0, NULL);
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    PQclear(r);
    return ok ? PS_OK : PS_EDB;
}

static int append(char *s, size_t len, size_t *off, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int append(char *s, size_t len, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int w;
    va_start(ap, fmt);
    w = vsnprintf(s + *off, len - *off, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= len - *off)
        return PS_ETOOBIG;
    *off += (size_t)w;
    return PS_OK;
}

static int upsert_sql(int kind, char *s, size_t len)
{
    const ps_field_t *cols[WH_MAX_COLS];
    const char *t = wh_kind_table(kind);
    size_t n = wh_columns(kind, cols, WH_MAX_COLS), off = 0;
    int rc = append(s, len, &off,
                    "INSERT INTO %s (district, id, orgunit, deleted, gen, hlc, node, created_at, updated_at,"
                    " synthetic, feed_seq, stream_seq, record",
                    t);
    for (size_t i = 0; i < n && !rc; i++)
        rc = append(s, len, &off, ", %s", cols[i]->name);
    rc = rc ? rc
            : append(s, len, &off,
                     ") VALUES ($1, $2::uuid, $3, $4::boolean, $5::bigint, $6::bigint, $7::bytea,"
                     " CASE WHEN $8::bigint > 0 THEN to_timestamp($8::bigint / 1000.0) END,"
                     " CASE WHEN $9::bigint > 0 THEN to_timestamp($9::bigint / 1000.0) END,"
                     " $10::boolean, $11::bigint, $12::bigint, $13::bytea");
    for (size_t i = 0; i < n && !rc; i++)
        rc = append(s, len, &off, ", $%zu::%s", NENV + 1 + i, wh_sql_type((int)cols[i]->type));
    rc = rc ? rc
            : append(s, len, &off,
                     ") ON CONFLICT (district, id) DO UPDATE SET orgunit = EXCLUDED.orgunit,"
                     " deleted = EXCLUDED.deleted, gen = EXCLUDED.gen, hlc = EXCLUDED.hlc, node = EXCLUDED.node,"
                     " created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,"
                     " synthetic = EXCLUDED.synthetic, feed_seq = EXCLUDED.feed_seq,"
                     " stream_seq = EXCLUDED.stream_seq, record = EXCLUDED.record");
    for (size_t i = 0; i < n && !rc; i++)
        rc = append(s, len, &off, ", %s = EXCLUDED.%s", cols[i]->name, cols[i]->name);
    /* The guard of last resort: whatever the caller decided, a row never
     * goes back to an older revision. */
    return rc ? rc
              : append(s, len, &off,
                       " WHERE (EXCLUDED.gen, EXCLUDED.hlc, EXCLUDED.node) > (%s.gen, %s.hlc, %s.node)", t, t, t);
}

static int prepare_all(PGconn *pg, char *err, size_t errlen)
{
    char sql[8192], name[64];
    int rc;
    for (size_t i = 0; i < WH_NKINDS; i++) {
        int kind = wh_kind_at(i);
        const char *t = wh_kind_table(kind);
        snprintf(sql, sizeof(sql),
                 "SELECT district, id, gen, hlc, node, record FROM %s WHERE (district, id) IN"
                 " (SELECT * FROM unnest($1::text[], $2::uuid[])) FOR UPDATE",
                 t);
        snprintf(name, sizeof(name), "sel_%s", t);
        if ((rc = prepare(pg, name, sql, err, errlen)))
            return rc;
        if (upsert_sql(kind, sql, sizeof(sql))) {
            snprintf(err, errlen, "upsert statement too long");
            return PS_ETOOBIG;
        }
        snprintf(name, sizeof(name), "up_%s", t);
        if ((rc = prepare(pg, name, sql, err, errlen)))
            return rc;
    }
    if ((rc = prepare(pg, "ctr",
                      "INSERT INTO wh_counter VALUES ($1, $2::integer, $3, $4, $5::bigint)"
                      " ON CONFLICT (district, month, unit, metric)"
                      " DO UPDATE SET value = wh_counter.value + EXCLUDED.value",
                      err, errlen)) ||
        (rc = prepare(pg, "pos",
                      "INSERT INTO wh_position VALUES ($1, $2::bigint, $3::bigint, $4::bigint, now())"
                      " ON CONFLICT (district) DO UPDATE SET"
                      " last_seq = GREATEST(wh_position.last_seq, EXCLUDED.last_seq),"
                      " messages = wh_position.messages + EXCLUDED.messages,"
                      " last_stream_seq = GREATEST(wh_position.last_stream_seq, EXCLUDED.last_stream_seq),"
                      " updated_at = now()",
                      err, errlen)) ||
        (rc = prepare(pg, "stream",
                      "INSERT INTO wh_stream VALUES ($1, $2::bigint, now()) ON CONFLICT (stream) DO UPDATE SET"
                      " last_stream_seq = GREATEST(wh_stream.last_stream_seq, EXCLUDED.last_stream_seq),"
                      " updated_at = now()",
                      err, errlen)) ||
        (rc = prepare(pg, "rej",
                      "INSERT INTO wh_rejected (stream_seq, district, seq, reason, payload)"
                      " VALUES ($1::bigint, $2, $3::bigint, $4, $5::bytea) ON CONFLICT DO NOTHING",
                      err, errlen)))
        return rc;
    return PS_OK;
}

int wh_apply_open(wh_apply_t **out, PGconn *pg, const char *stream, char *err, size_t errlen)
{
    wh_apply_t *a = calloc(1, sizeof(*a));
    int rc;
    if (!a)
        return PS_ENOMEM;
    a->pg = pg;
    snprintf(a->stream, sizeof(a->stream), "%s", stream);
    if ((rc = prepare_all(pg, err, errlen))) {
        free(a);
        return rc;
    }
    *out = a;
    return PS_OK;
}

void wh_apply_close(wh_apply_t *a)
{
    if (!a)
        return;
    free(a->d);
    free(a->pos);
    free(a->seen);
    have_reset(a);
    free(a->have);
    free(a);
}

/* ---- one message ------------------------------------------------------------------ */

static int pg_ok(PGresult *r, ExecStatusType want, PGconn *pg, char *err, size_t errlen)
{
    if (r && PQresultStatus(r) == want)
        return PS_OK;
    snprintf(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    return PS_EDB;
}

static uint64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (uint8_t)p[i];
    return v;
}

/* -1, 0 or 1 as revision a sorts before, equal to or after b (docs/sync.md). */
static int rev_cmp(uint64_t ag, uint64_t ah, const uint8_t *an, size_t anl, uint64_t bg, uint64_t bh,
                   const uint8_t *bn, size_t bnl)
{
    size_t m = anl < bnl ? anl : bnl;
    int c;
    if (ag != bg)
        return ag < bg ? -1 : 1;
    if (ah != bh)
        return ah < bh ? -1 : 1;
    if ((c = m ? memcmp(an, bn, m) : 0) != 0)
        return c < 0 ? -1 : 1;
    return anl == bnl ? 0 : (anl < bnl ? -1 : 1);
}

/* A date column takes only a real calendar date; anything else is NULL
 * (the whole record stays in the record column). */
static int date_ok(const char *s)
{
    int y, m, d;
    char tail;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1)
        return 0;
    return ps_days_between(s, s) == 0 &&
           d <= (m == 2 ? ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28)
                        : (m == 4 || m == 6 || m == 9 || m == 11 ? 30 : 31));
}

typedef struct params {
    const char *v[NENV + WH_MAX_COLS];
    int len[NENV + WH_MAX_COLS], fmt[NENV + WH_MAX_COLS];
    char buf[NENV + WH_MAX_COLS][PS_FIELD_NORM_MAX];
} params_t;

static void p_text(params_t *p, int i, const char *s)
{
    snprintf(p->buf[i], sizeof(p->buf[i]), "%s", s);
    p->v[i] = p->buf[i];
}

static void p_u64(params_t *p, int i, uint64_t v)
{
    snprintf(p->buf[i], sizeof(p->buf[i]), "%llu", (unsigned long long)v);
    p->v[i] = p->buf[i];
}

static void p_bin(params_t *p, int i, const void *data, size_t len)
{
    p->v[i] = data;
    p->len[i] = (int)len;
    p->fmt[i] = 1;
}

/* ---- the batch's statements, sent in one pipeline ----------------------------------- */

/* Queues one prepared statement in the pipeline (libpq copies the values). */
static int send(wh_apply_t *a, const char *name, int n, const params_t *p, char *err, size_t errlen)
{
    if (PQsendQueryPrepared(a->pg, name, n, p->v, p->len, p->fmt, 0))
        return a->nsent++, PS_OK;
    snprintf(err, errlen, "%s", PQerrorMessage(a->pg));
    return PS_EDB;
}

static int send_upsert(wh_apply_t *a, params_t *p, const wh_msg_t *m, const Popsync__Record *r, char *err,
                       size_t errlen)
{
    const ps_field_t *cols[WH_MAX_COLS];
    size_t n = wh_columns(r->kind, cols, WH_MAX_COLS);
    char name[64], uuid[PS_UUID_STR];

    memset(p, 0, sizeof(*p));
    ps_uuid_format(r->id.data, uuid);
    p_text(p, 0, m->district);
    p_text(p, 1, uuid);
    p_text(p, 2, r->orgunit ? r->orgunit : "");
    p_text(p, 3, r->deleted ? "true" : "false");
    p_u64(p, 4, r->rev->gen);
    p_u64(p, 5, r->rev->hlc);
    p_bin(p, 6, r->rev->node.data ? (const void *)r->rev->node.data : "", r->rev->node.len);
    p_u64(p, 7, r->created_ms > 0 ? (uint64_t)r->created_ms : 0);
    p_u64(p, 8, r->updated_ms > 0 ? (uint64_t)r->updated_ms : 0);
    p_text(p, 9, r->synthetic ? "true" : "false");
    p_u64(p, 10, m->seq);
    p_u64(p, 11, m->stream_seq);
    p_bin(p, 12, m->data, m->len);
    for (size_t i = 0; i < n && i < WH_MAX_COLS; i++) {
        int k = NENV + (int)i;
        if (ps_record_get_text(r, cols[i]->name, p->buf[k], sizeof(p->buf[k])) != PS_OK || !p->buf[k][0] ||
            (cols[i]->type == PS_FT_DATE && !date_ok(p->buf[k])))
            continue; /* NULL */
        p->v[k] = p->buf[k];
    }
    snprintf(name, sizeof(name), "up_%s", wh_kind_table(r->kind));
    return send(a, name, NENV + (int)n, p, err, errlen);
}

static int send_reject(wh_apply_t *a, params_t *p, const wh_msg_t *m, const char *why, char *err, size_t errlen)
{
    PS_WARN("warehouse", "stream message %llu (district %s, seq %llu) kept in wh_rejected: %s",
            (unsigned long long)m->stream_seq, m->district, (unsigned long long)m->seq, why);
    memset(p, 0, sizeof(*p));
    p_u64(p, 0, m->stream_seq);
    p_text(p, 1, m->district);
    p_u64(p, 2, m->seq);
    p_text(p, 3, why);
    p_bin(p, 4, m->data ? (const void *)m->data : "", m->len);
    return send(a, "rej", 5, p, err, errlen);
}

static int send_flush(wh_apply_t *a, params_t *p, uint64_t max_stream_seq, char *err, size_t errlen)
{
    int rc = PS_OK;
    for (size_t i = 0; i < a->cap && !rc; i++) {
        const delta_t *d = &a->d[i];
        if (!d->used || !d->value)
            continue;
        memset(p, 0, sizeof(*p));
        p_text(p, 0, d->district);
        p_u64(p, 1, d->month);
        p_text(p, 2, d->unit);
        p_text(p, 3, d->metric);
        snprintf(p->buf[4], sizeof(p->buf[4]), "%lld", (long long)d->value);
        p->v[4] = p->buf[4];
        rc = send(a, "ctr", 5, p, err, errlen);
    }
    for (size_t i = 0; i < a->npos && !rc; i++) {
        memset(p, 0, sizeof(*p));
        p_text(p, 0, a->pos[i].district);
        p_u64(p, 1, a->pos[i].last_seq);
        snprintf(p->buf[2], sizeof(p->buf[2]), "%lld", (long long)a->pos[i].applied);
        p->v[2] = p->buf[2];
        p_u64(p, 3, a->pos[i].last_stream_seq);
        rc = send(a, "pos", 4, p, err, errlen);
    }
    if (!rc && max_stream_seq) {
        memset(p, 0, sizeof(*p));
        p_text(p, 0, a->stream);
        p_u64(p, 1, max_stream_seq);
        rc = send(a, "stream", 2, p, err, errlen);
    }
    return rc;
}

/* Reads the result of every queued statement and the pipeline's sync; the
 * first error, if any, into err. */
static int pipeline_results(wh_apply_t *a, char *err, size_t errlen)
{
    int rc = PS_OK;
    PGresult *r;
    if (!PQpipelineSync(a->pg)) {
        snprintf(err, errlen, "%s", PQerrorMessage(a->pg));
        return PS_EDB;
    }
    for (size_t i = 0; i < a->nsent; i++) {
        if (!(r = PQgetResult(a->pg))) {
            snprintf(err, errlen, "%s", PQerrorMessage(a->pg));
            return PS_EDB; /* the connection is gone */
        }
        if (!rc && PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(err, errlen, "%s", PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r) : "statement aborted");
            rc = PS_EDB;
        }
        PQclear(r);
        while ((r = PQgetResult(a->pg)) != NULL) /* the NULL that ends each statement's results */
            PQclear(r);
    }
    while ((r = PQgetResult(a->pg)) != NULL) {
        int sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync)
            break;
    }
    return rc;
}

/* ---- what is already there: one query per kind for the whole batch --------------------- */

typedef struct have {
    char district[WH_DISTRICT_MAX];
    uint8_t id[16];
    int used, exists;
    uint64_t gen, hlc;
    uint8_t node[16];
    size_t nodelen;
    Popsync__Record *cur; /* the version in the row now (owned when from PostgreSQL) */
    int owned;
} have_t;

static have_t *have_find(wh_apply_t *a, const char *district, const uint8_t id[16])
{
    uint64_t h = 1469598103934665603ULL;
    size_t j;
    for (int i = 0; i < 16; i++)
        h = (h ^ id[i]) * 1099511628211ULL;
    h = fnv(district, h);
    for (j = (size_t)h & (a->hcap - 1); a->have[j].used; j = (j + 1) & (a->hcap - 1))
        if (!memcmp(a->have[j].id, id, 16) && !strcmp(a->have[j].district, district))
            return &a->have[j];
    a->have[j].used = 1;
    snprintf(a->have[j].district, sizeof(a->have[j].district), "%s", district);
    memcpy(a->have[j].id, id, 16);
    return &a->have[j];
}

static void have_reset(wh_apply_t *a)
{
    for (size_t i = 0; i < a->hcap; i++)
        if (a->have[i].owned && a->have[i].cur)
            popsync__record__free_unpacked(a->have[i].cur, NULL);
    if (a->have)
        memset(a->have, 0, a->hcap * sizeof(*a->have));
}

static int have_size(wh_apply_t *a, size_t n)
{
    size_t cap = 64;
    while (cap < n * 2)
        cap *= 2;
    if (cap <= a->hcap)
        return PS_OK;
    have_reset(a);
    free(a->have);
    if (!(a->have = calloc(cap, sizeof(*a->have)))) {
        a->hcap = 0;
        return PS_ENOMEM;
    }
    a->hcap = cap;
    return PS_OK;
}

/* Appends s to a PostgreSQL array literal ({a,b,...}); the values here are
 * district codes and UUIDs, which need no quoting. */
static int arr_add(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t need = *len + strlen(s) + 3;
    if (need > *cap) {
        char *nb = realloc(*buf, need * 2);
        if (!nb)
            return PS_ENOMEM;
        *buf = nb;
        *cap = need * 2;
    }
    *len += (size_t)sprintf(*buf + *len, "%s%s", *len ? "," : "{", s);
    return PS_OK;
}

static int prefetch_kind(wh_apply_t *a, int kind, const wh_msg_t *msgs, Popsync__Record **recs, size_t n, char *err,
                         size_t errlen)
{
    char *ds = NULL, *ids = NULL, uuid[PS_UUID_STR], name[64];
    size_t dl = 0, dc = 0, il = 0, ic = 0;
    const char *pv[2];
    PGresult *r = NULL;
    int rc = PS_OK;

    for (size_t i = 0; i < n && !rc; i++) {
        if (!recs[i] || (int)recs[i]->kind != kind)
            continue;
        ps_uuid_format(recs[i]->id.data, uuid);
        rc = arr_add(&ds, &dl, &dc, msgs[i].district);
        rc = rc ? rc : arr_add(&ids, &il, &ic, uuid);
    }
    if (rc || !ds)
        goto out;
    strcat(ds, "}");
    strcat(ids, "}");
    pv[0] = ds;
    pv[1] = ids;
    snprintf(name, sizeof(name), "sel_%s", wh_kind_table(kind));
    r = PQexecPrepared(a->pg, name, 2, pv, NULL, NULL, 1);
    if ((rc = pg_ok(r, PGRES_TUPLES_OK, a->pg, err, errlen)))
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        char district[WH_DISTRICT_MAX];
        have_t *h;
        snprintf(district, sizeof(district), "%.*s", PQgetlength(r, i, 0), PQgetvalue(r, i, 0));
        if (PQgetlength(r, i, 1) != 16)
            continue;
        h = have_find(a, district, (const uint8_t *)PQgetvalue(r, i, 1));
        h->exists = 1;
        h->gen = be64(PQgetvalue(r, i, 2));
        h->hlc = be64(PQgetvalue(r, i, 3));
        h->nodelen = (size_t)PQgetlength(r, i, 4) < 16 ? (size_t)PQgetlength(r, i, 4) : 16;
        memcpy(h->node, PQgetvalue(r, i, 4), h->nodelen);
        h->cur = popsync__record__unpack(NULL, (size_t)PQgetlength(r, i, 5), (const uint8_t *)PQgetvalue(r, i, 5));
        h->owned = 1;
    }
out:
    PQclear(r);
    free(ds);
    free(ids);
    return rc;
}

static const char *check_record(const Popsync__Record *r)
{
    if (!r)
        return "not a record";
    if (r->id.len != 16)
        return "record id is not 16 bytes";
    if (!wh_kind_table(r->kind) || (int)r->body_case != (int)r->kind + 15)
        return "unknown kind or a body of another kind";
    if (!r->rev || !r->rev->gen)
        return "no revision";
    if (r->rev->gen > INT64_MAX || r->rev->hlc > INT64_MAX)
        return "revision out of range";
    return NULL;
}

static int ensure_district(wh_apply_t *a, const char *district, char *err, size_t errlen)
{
    void *p;
    int rc;
    for (size_t i = 0; i < a->nseen; i++)
        if (!strcmp(a->seen[i], district))
            return PS_OK;
    if ((rc = wh_schema_district(a->pg, district, err, errlen)))
        return rc;
    if (!(p = realloc(a->seen, (a->nseen + 1) * sizeof(*a->seen))))
        return PS_ENOMEM;
    a->seen = p;
    snprintf(a->seen[a->nseen++], WH_DISTRICT_MAX, "%s", district);
    return PS_OK;
}

/* Decodes the batch, makes the partitions of new districts and reads what
 * the rows hold now.  recs[i] is NULL and why[i] set for a message that is
 * not a record. */
static int prepare_batch(wh_apply_t *a, const wh_msg_t *msgs, size_t n, Popsync__Record **recs, const char **why,
                         char *err, size_t errlen)
{
    int rc;
    if ((rc = have_size(a, n)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].other)
            continue;
        if (!wh_district_valid(msgs[i].district)) {
            why[i] = "no valid Popsync-District";
            continue;
        }
        recs[i] = popsync__record__unpack(NULL, msgs[i].len, msgs[i].data);
        if ((why[i] = check_record(recs[i])) != NULL) {
            if (recs[i])
                popsync__record__free_unpacked(recs[i], NULL);
            recs[i] = NULL;
            continue;
        }
        if ((rc = ensure_district(a, msgs[i].district, err, errlen)))
            return rc;
    }
    for (size_t k = 0; k < WH_NKINDS; k++)
        if ((rc = prefetch_kind(a, wh_kind_at(k), msgs, recs, n, err, errlen)))
            return rc;
    return PS_OK;
}

/* Decides and queues one record: 1 when its row changes, 0 when the row
 * already holds this revision or a newer one. */
static int apply_one(wh_apply_t *a, params_t *p, const wh_msg_t *m, Popsync__Record *r, char *err, size_t errlen)
{
    have_t *h = have_find(a, m->district, r->id.data);
    int rc;
    if (h->exists &&
        rev_cmp(r->rev->gen, r->rev->hlc, r->rev->node.data, r->rev->node.len, h->gen, h->hlc, h->node, h->nodelen) <= 0)
        return 0;
    if ((h->cur && (rc = contrib_add(a, m->district, h->cur, -1))) || (rc = contrib_add(a, m->district, r, 1)) ||
        (rc = send_upsert(a, p, m, r, err, errlen)))
        return rc;
    /* Later messages of this batch compare with this version. */
    if (h->owned && h->cur)
        popsync__record__free_unpacked(h->cur, NULL);
    h->exists = 1;
    h->gen = r->rev->gen;
    h->hlc = r->rev->hlc;
    h->nodelen = r->rev->node.len < 16 ? r->rev->node.len : 16;
    memcpy(h->node, r->rev->node.data, h->nodelen);
    h->cur = r;
    h->owned = 0;
    return 1;
}

static void batch_reset(wh_apply_t *a)
{
    if (a->d)
        memset(a->d, 0, a->cap * sizeof(*a->d));
    a->used = 0;
    a->npos = 0;
    a->nsent = 0;
}

/* A test build may sleep here, between the batch's rows and its COMMIT, so
 * a test can kill the warehouse mid-batch (t_warehouse_stream.sh). */
static void test_pause(void)
{
    uint64_t ms = 0;
    if (ps_test_hook_u64("POPSYNC_WH_TEST_PAUSE_MS", &ms) == 1 && ms) {
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Queues every statement of the batch; the caller is in pipeline mode. */
static int queue_batch(wh_apply_t *a, const wh_msg_t *msgs, Popsync__Record **recs, const char **why, size_t n,
                       wh_batch_stats_t *st, char *err, size_t errlen)
{
    params_t *p = calloc(1, sizeof(*p));
    uint64_t max_ss = 0;
    int rc = PS_OK, changed;

    if (!p)
        return PS_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        pos_t *ps;
        if (msgs[i].stream_seq > max_ss)
            max_ss = msgs[i].stream_seq;
        if (msgs[i].other) {
            st->other++;
            continue;
        }
        if (!recs[i]) {
            st->rejected++;
            changed = 0;
            if ((rc = send_reject(a, p, &msgs[i], why[i], err, errlen)) || !wh_district_valid(msgs[i].district))
                continue;
        } else if ((changed = apply_one(a, p, &msgs[i], recs[i], err, errlen)) < 0) {
            rc = changed;
            break;
        } else if (changed)
            st->applied++;
        else
            st->stale++;
        if (!(ps = pos_for(a, msgs[i].district))) {
            rc = PS_ENOMEM;
            break;
        }
        if (msgs[i].seq > ps->last_seq)
            ps->last_seq = msgs[i].seq;
        if (msgs[i].stream_seq > ps->last_stream_seq)
            ps->last_stream_seq = msgs[i].stream_seq;
        ps->applied += changed;
    }
    if (!rc)
        rc = send_flush(a, p, max_ss, err, errlen);
    free(p);
    return rc;
}

int wh_apply_batch(wh_apply_t *a, const wh_msg_t *msgs, size_t n, wh_batch_stats_t *st, char *err, size_t errlen)
{
    Popsync__Record **recs = calloc(n ? n : 1, sizeof(*recs));
    const char **why = calloc(n ? n : 1, sizeof(*why));
    int rc, piped = 0;

    memset(st, 0, sizeof(*st));
    batch_reset(a);
    if (!recs || !why) {
        rc = PS_ENOMEM;
        goto fail;
    }
    if ((rc = wh_exec(a->pg, "BEGIN", err, errlen)) || (rc = prepare_batch(a, msgs, n, recs, why, err, errlen)))
        goto fail;
    if (!PQenterPipelineMode(a->pg)) {
        snprintf(err, errlen, "cannot enter pipeline mode: %s", PQerrorMessage(a->pg));
        rc = PS_EDB;
        goto fail;
    }
    piped = 1;
    rc = queue_batch(a, msgs, recs, why, n, st, err, errlen);
    if (a->nsent) {
        char err2[512];
        int rc2 = pipeline_results(a, err2, sizeof(err2));
        if (!rc && rc2) {
            rc = rc2;
            snprintf(err, errlen, "%s", err2);
        }
    }
    PQexitPipelineMode(a->pg);
    piped = 0;
    if (rc)
        goto fail;
    test_pause();
    if ((rc = wh_exec(a->pg, "COMMIT", err, errlen)))
        goto fail;
    goto out;
fail:
    if (piped)
        PQexitPipelineMode(a->pg);
    PQclear(PQexec(a->pg, "ROLLBACK"));
    /* Partitions made in the rolled-back transaction are gone too. */
    a->nseen = 0;
out:
    have_reset(a);
    for (size_t i = 0; recs && i < n; i++)
        if (recs[i])
            popsync__record__free_unpacked(recs[i], NULL);
    free(recs);
    free(why);
    return rc;
}

/* ---- verify: every counter recounted from the stored records ---------------------- */

static int recount_kind(wh_apply_t *a, int kind)
{
    char sql[256];
    PGresult *r;
    int rc = PS_OK, n;

    snprintf(sql, sizeof(sql), "DECLARE wh_v CURSOR FOR SELECT district, record FROM %s WHERE NOT deleted",
             wh_kind_table(kind));
    PQclear(PQexec(a->pg, sql));
    do {
        r = PQexecParams(a->pg, "FETCH 10000 FROM wh_v", 0, NULL, NULL, NULL, NULL, 1);
        if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
            PQclear(r);
            return PS_EDB;
        }
        n = PQntuples(r);
        for (int i = 0; i < n && !rc; i++) {
            char district[WH_DISTRICT_MAX];
            Popsync__Record *rec = popsync__record__unpack(NULL, (size_t)PQgetlength(r, i, 1),
                                                           (const uint8_t *)PQgetvalue(r, i, 1));
            snprintf(district, sizeof(district), "%.*s", PQgetlength(r, i, 0), PQgetvalue(r, i, 0));
            if (rec) {
                rc = contrib_add(a, district, rec, 1);
                popsync__record__free_unpacked(rec, NULL);
            }
        }
        PQclear(r);
    } while (n > 0 && !rc);
    PQclear(PQexec(a->pg, "CLOSE wh_v"));
    return rc;
}

int wh_verify(PGconn *pg)
{
    wh_apply_t a;
    PGresult *r = NULL;
    size_t bad = 0, checked = 0;
    int rc = PS_OK;

    memset(&a, 0, sizeof(a));
    a.pg = pg;
    PQclear(PQexec(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    for (size_t i = 0; i < WH_NKINDS && !rc; i++)
        rc = recount_kind(&a, wh_kind_at(i));
    /* Subtract what the counters hold: every recount then nets to zero. */
    if (!rc) {
        r = PQexec(pg, "SELECT district, month, unit, metric, value FROM wh_counter WHERE value <> 0");
        if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
            rc = PS_EDB;
    }
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        ps_contrib_t c;
        memset(&c, 0, sizeof(c));
        c.month = (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10);
        snprintf(c.unit, sizeof(c.unit), "%s", PQgetvalue(r, i, 2));
        snprintf(c.metric, sizeof(c.metric), "%s", PQgetvalue(r, i, 3));
        c.value = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        rc = delta_add(&a, PQgetvalue(r, i, 0), &c, -1);
    }
    PQclear(r);
    PQclear(PQexec(pg, "COMMIT"));
    for (size_t i = 0; !rc && i < a.cap; i++) {
        if (!a.d[i].used)
            continue;
        checked++;
        if (a.d[i].value) {
            if (bad++ < 20)
                fprintf(stderr, "counter %s %u %s %s: records give %+lld more than the counter\n", a.d[i].district,
                        a.d[i].month, a.d[i].unit, a.d[i].metric, (long long)a.d[i].value);
        }
    }
    free(a.d);
    if (rc) {
        fprintf(stderr, "popsync-warehouse verify: %s", PQerrorMessage(pg));
        return rc;
    }
    printf("%zu counters checked against the stored records: %zu differ\n", checked, bad);
    return bad ? PS_EINVAL : PS_OK;
}
