/* store_query.c - queries, reports and the monthly close, on the store.
 *
 * Owns: answering Query (a count over indexed names from the column
 * projection, store_cols.c; anything else a scan of the records in the
 * sender's scope with filters, grouping and paging), the monthly report
 * (read from the counters the write transaction keeps, so it costs the same
 * at any data size), the monthly close (submit, approve and freeze, return)
 * and the counters' recount check.  The quality report is
 * store_quality.c's.  Everything here runs on worker threads; only the
 * close takes the write lock, briefly.
 */
#include "store_int.h"
#include "store_cols.h"
#include "query_rules.h"
#include "strtab.h"
#include "vec.h"
#include "counters.h"
#include "ids.h"
#include "msg.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "validate.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The township (depth-1 unit) of a unit: the tree decides, else the prefix. */
static void township_of(const ps_store_t *st, const char *unit, char out[13])
{
    ps_orgunits_township_code(st->opts.units, unit, out);
}

/* ---- Query ----------------------------------------------------------------- */

#define QUERY_MAX_GROUPS PS_QUERY_MAX_GROUPS

static int cmp_rows(const void *a, const void *b)
{
    const ps_strent_t *x = *(const ps_strent_t *const *)a, *y = *(const ps_strent_t *const *)b;
    return strcmp(x->key, y->key);
}

/* A QueryResult and what it points into (ps_store_msg_t.priv). */
typedef struct query_out {
    Popsync__QueryResult res;
    Popsync__Record **page;    /* list mode: the records of the page */
    size_t npage;
    uint8_t next_id[PS_ID_LEN];
    Popsync__QueryRow *rows;   /* group mode: one per group, sorted by key */
    Popsync__QueryRow **rowp;
    char **keys;               /* n_group_by parts per row, pointing into copies */
    char **copies;             /* each row's joined key, split in place */
    size_t nrows;
} query_out_t;

static void query_out_free(void *priv)
{
    query_out_t *qo = priv;
    if (!qo)
        return;
    for (size_t i = 0; qo->page && i < qo->npage; i++)
        ps_msg_free(&qo->page[i]->base);
    for (size_t i = 0; qo->copies && i < qo->nrows; i++)
        free(qo->copies[i]);
    free(qo->page);
    free(qo->rows);
    free(qo->rowp);
    free(qo->keys);
    free(qo->copies);
    free(qo);
}

/* Adds count and sum to the group of the n parts. */
static int query_group_bump(ps_strtab_t *groups, const char *const *parts, size_t n, uint64_t count, int64_t sum,
                            char *err, size_t errlen)
{
    char keybuf[1024];
    size_t off = 0;
    ps_strent_t *g;
    for (size_t i = 0; i < n; i++) {
        /* \x1f separates parts: no text form contains it (control characters are refused). */
        off += (size_t)snprintf(keybuf + off, sizeof(keybuf) - off, "%s%s", i ? "\x1f" : "", parts[i]);
        if (off >= sizeof(keybuf))
            off = sizeof(keybuf) - 1;
    }
    keybuf[off] = '\0';
    g = ps_strtab_get(groups, keybuf);
    if (!g || groups->n > QUERY_MAX_GROUPS) {
        snprintf(err, errlen, "more than %d groups: narrow the query", QUERY_MAX_GROUPS);
        return g ? PS_ETOOBIG : PS_ENOMEM;
    }
    g->count += count;
    g->sum = (int64_t)((uint64_t)g->sum + (uint64_t)sum);
    return PS_OK;
}

/* Counts r in its group (and adds its sum field). */
static int query_group_add(const ps_store_t *st, const Popsync__Query *q, const Popsync__Record *r, ps_strtab_t *groups,
                           char *err, size_t errlen)
{
    char local[4][512], (*parts)[512] = local;
    const char *lp[4], **pp = lp;
    int64_t sum = 0;
    int rc;
    /* Few groups use the stack; more (any number may be asked) the heap. */
    if (q->n_group_by > 4 && (!(parts = calloc(q->n_group_by, sizeof(*parts))) ||
                              !(pp = calloc(q->n_group_by, sizeof(*pp))))) {
        free(parts);
        return PS_ENOMEM;
    }
    for (size_t i = 0; i < q->n_group_by; i++) {
        parts[i][0] = '\0';
        ps_query_group_part(st->opts.units, q, r, q->group_by[i], parts[i], sizeof(parts[i]));
        pp[i] = parts[i];
    }
    if (q->sum_field && *q->sum_field) {
        char num[64];
        if (ps_record_get_text(r, q->sum_field, num, sizeof(num)) == PS_OK)
            sum = strtoll(num, NULL, 10);
    }
    rc = query_group_bump(groups, pp, q->n_group_by, 1, sum, err, errlen);
    if (parts != local) {
        free(parts);
        free(pp);
    }
    return rc;
}

/* Positions cur at the first record of the scan: after after_id for a
 * listing's next page, else the first. */
static int query_first(const Popsync__Query *q, MDB_cursor *cur, MDB_val *k, MDB_val *v)
{
    int mrc;
    if (!(q->list && q->after_id.len == PS_ID_LEN))
        return mdb_cursor_get(cur, k, v, MDB_FIRST);
    k->mv_size = PS_ID_LEN;
    k->mv_data = q->after_id.data;
    mrc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (mrc == 0 && memcmp(k->mv_data, q->after_id.data, PS_ID_LEN) == 0)
        mrc = mdb_cursor_get(cur, k, v, MDB_NEXT);
    return mrc;
}

/* The record under a header, when the query looks at it at all (kind,
 * deleted, the peer's scope, the query's unit); counts it as scanned. */
static Popsync__Record *query_candidate(const ps_store_t *st, const ps_peer_t *peer, const Popsync__Query *q,
                                        const MDB_val *v, uint64_t *scanned)
{
    const uint8_t *h = v->mv_data;
    const char *root = q->orgunit && *q->orgunit ? q->orgunit : NULL;
    Popsync__Record *r = NULL;
    char unit[13];
    if (v->mv_size < REC_HDR || h[8] != (uint8_t)q->kind || (!q->include_deleted && (h[9] & REC_DELETED)) ||
        !may_count_hdr(st, peer, h))
        return NULL;
    hdr_unit(h, HDR_UNIT, unit);
    if (root && !within(st, unit, root))
        return NULL;
    (*scanned)++;
    if (ps_msg_unpack_desc(&popsync__record__descriptor, h + REC_HDR, v->mv_size - REC_HDR,
                           (ProtobufCMessage **)&r) != PS_OK)
        return NULL;
    return r;
}

/* The scan: every matching record is kept (list mode, up to limit: one
 * more sets next_id) or counted in its group. */
static int query_scan(ps_store_t *st, const ps_peer_t *peer, const Popsync__Query *q, MDB_txn *txn, uint32_t limit,
                      query_out_t *qo, ps_strtab_t *groups, char *err, size_t errlen)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_cursor_open(txn, st->records, &cur)))
        return db_err(mrc);
    for (mrc = query_first(q, cur, &k, &v); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Popsync__Record *r = query_candidate(st, peer, q, &v, &qo->res.scanned);
        if (!r)
            continue;
        if (!ps_query_match(q, r)) {
            ps_msg_free(&r->base);
            continue;
        }
        qo->res.matched++;
        if (!q->list) {
            rc = query_group_add(st, q, r, groups, err, errlen);
            ps_msg_free(&r->base);
            if (rc)
                break;
            continue;
        }
        if (qo->npage == limit) {
            /* One more match exists: the page ends at the last one kept. */
            qo->res.next_after_id.data = qo->next_id;
            qo->res.next_after_id.len = PS_ID_LEN;
            ps_msg_free(&r->base);
            break;
        }
        qo->page[qo->npage++] = r;
        memcpy(qo->next_id, k.mv_data, PS_ID_LEN);
    }
    mdb_cursor_close(cur);
    if (rc == PS_OK && mrc && mrc != MDB_NOTFOUND && mrc != 0)
        rc = db_err(mrc);
    return rc;
}

/* A count from the column projection (store_cols.c): what it cannot hold
 * exactly comes back as records, matched and grouped as the scan does. */
typedef struct cols_arg {
    const ps_store_t *st;
    const Popsync__Query *q;
    ps_strtab_t *groups;
    query_out_t *qo;
    char *err;
    size_t errlen;
} cols_arg_t;

static int cols_raw(void *arg, const Popsync__Record *r)
{
    cols_arg_t *a = arg;
    if (!ps_query_match(a->q, r))
        return PS_OK;
    a->qo->res.matched++;
    return query_group_add(a->st, a->q, r, a->groups, a->err, a->errlen);
}

static int cols_group(void *arg, const char *const *parts, uint64_t count, int64_t sum)
{
    cols_arg_t *a = arg;
    return query_group_bump(a->groups, parts, a->q->n_group_by, count, sum, a->err, a->errlen);
}

static int query_cols(ps_store_t *st, const ps_peer_t *peer, const Popsync__Query *q, MDB_txn *txn, query_out_t *qo,
                      ps_strtab_t *groups, char *err, size_t errlen)
{
    cols_arg_t a = {st, q, groups, qo, err, errlen};
    ps_cols_sink_t sink = {cols_raw, cols_group, &a};
    return ps_cols_count(st, txn, peer, q, &sink, &qo->res.scanned, &qo->res.matched, err, errlen);
}

/* The groups as QueryRows sorted by key, each key split back into its
 * parts (empty parts kept). */
static int query_rows(const Popsync__Query *q, const ps_strtab_t *groups, query_out_t *qo)
{
    size_t ng = q->n_group_by ? q->n_group_by : 1, n = 0;
    ps_strent_t **sorted = calloc(groups->n ? groups->n : 1, sizeof(*sorted));
    int rc = PS_OK;

    qo->rows = calloc(groups->n ? groups->n : 1, sizeof(*qo->rows));
    qo->rowp = calloc(groups->n ? groups->n : 1, sizeof(*qo->rowp));
    qo->keys = calloc((groups->n ? groups->n : 1) * ng, sizeof(*qo->keys));
    qo->copies = calloc(groups->n ? groups->n : 1, sizeof(*qo->copies));
    if (!sorted || !qo->rows || !qo->rowp || !qo->keys || !qo->copies) {
        free(sorted);
        return PS_ENOMEM;
    }
    for (size_t i = 0; i < groups->cap; i++)
        if (groups->v[i].key)
            sorted[n++] = &groups->v[i];
    qsort(sorted, n, sizeof(*sorted), cmp_rows);
    for (size_t i = 0; i < n; i++) {
        Popsync__QueryRow *row = &qo->rows[i];
        char *part;
        popsync__query_row__init(row);
        if (!(qo->copies[i] = strdup(sorted[i]->key))) {
            rc = PS_ENOMEM;
            break;
        }
        qo->nrows = i + 1;
        row->key = qo->keys + i * ng;
        part = qo->copies[i];
        for (size_t g = 0; g < q->n_group_by; g++) {
            char *sep = strchr(part, '\x1f');
            if (sep)
                *sep = '\0';
            row->key[row->n_key++] = part;
            part = sep ? sep + 1 : part + strlen(part);
        }
        row->count = sorted[i]->count;
        row->sum = sorted[i]->sum;
        qo->rowp[i] = row;
    }
    free(sorted);
    qo->res.n_group_by = q->n_group_by;
    qo->res.group_by = q->group_by;
    qo->res.n_rows = qo->nrows;
    qo->res.rows = qo->rowp;
    return rc;
}

/* A count whose every name is in the column projection reads it; anything
 * else (a listing, a filter on a name or an ID number) scans the records. */
static int query_run(ps_store_t *st, const ps_peer_t *peer, const Popsync__Query *q, ps_store_msg_t *out, int scan,
                     char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    ps_strtab_t groups;
    query_out_t *qo;
    uint32_t limit = q->limit ? (q->limit > 10000 ? 10000 : q->limit) : 1000;
    int mrc, rc;

    memset(out, 0, sizeof(*out));
    memset(&groups, 0, sizeof(groups));
    if ((rc = ps_query_check(q, err, errlen)))
        return rc;
    if (q->orgunit && *q->orgunit && !ps_orgunit_valid(q->orgunit)) {
        snprintf(err, errlen, "Query.orgunit must be a 12-digit code");
        return PS_EINVAL;
    }
    if (!(qo = calloc(1, sizeof(*qo))) || (q->list && !(qo->page = calloc(limit, sizeof(*qo->page))))) {
        free(qo);
        return PS_ENOMEM;
    }
    popsync__query_result__init(&qo->res);
    qo->res.done = 1;
    if ((mrc = ro_begin(st, &txn)))
        rc = db_err(mrc);
    else if (!scan && ps_cols_usable(q))
        rc = query_cols(st, peer, q, txn, qo, &groups, err, errlen);
    else
        rc = query_scan(st, peer, q, txn, limit, qo, &groups, err, errlen);
    if (txn)
        ro_end(st, txn);
    if (rc == PS_OK && q->list) {
        qo->res.n_records = qo->npage;
        qo->res.records = qo->page;
    } else if (rc == PS_OK) {
        rc = query_rows(q, &groups, qo);
    }
    ps_strtab_free(&groups);
    if (rc) {
        query_out_free(qo);
        return rc;
    }
    out->msg = &qo->res.base;
    out->release = query_out_free;
    out->priv = qo;
    return PS_OK;
}

int ps_store_query(ps_store_t *st, const ps_peer_t *peer, const Popsync__Query *q, ps_store_msg_t *out, char *err,
                   size_t errlen)
{
    return query_run(st, peer, q, out, 0, err, errlen);
}

int ps__store_query_scan(ps_store_t *st, const ps_peer_t *peer, const Popsync__Query *q, ps_store_msg_t *out,
                         char *err, size_t errlen)
{
    return query_run(st, peer, q, out, 1, err, errlen);
}

/* ---- Monthly report ---------------------------------------------------------- */


typedef struct mrow {
    char code[13];
    const char *name;
    int64_t v[PS_INDICATORS];
} mrow_t;

static int township_in_scope(const ps_store_t *st, const ps_peer_t *peer, const char *town, const char *want)
{
    if (want && *want && strcmp(town, want) != 0)
        return 0;
    return ps_policy_report_township(st->opts.units, peer, town);
}

static mrow_t *row_for(mrow_t **rows, size_t *n, const char *code)
{
    mrow_t *p;
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*rows)[i].code, code))
            return &(*rows)[i];
    p = realloc(*rows, (*n + 1) * sizeof(**rows));
    if (!p)
        return NULL;
    *rows = p;
    memset(&p[*n], 0, sizeof(**rows));
    memcpy(p[*n].code, code, 13);
    return &p[(*n)++];
}

/* Adds every counter of one month to the rows of the townships in scope.
 * For a township peer below township level (a collector has no reports),
 * only units within its own subtree count. */
static int add_month(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, uint32_t month, const char *want,
                     uint32_t dl_u, uint32_t dl_n, mrow_t **rows, size_t *nrows)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t prefix[4] = {(uint8_t)(month >> 24), (uint8_t)(month >> 16), (uint8_t)(month >> 8), (uint8_t)month};
    int mrc, rc = PS_OK;

    if ((mrc = mdb_cursor_open(txn, st->counters, &cur)))
        return db_err(mrc);
    k.mv_size = 4;
    k.mv_data = prefix;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *kp = k.mv_data;
        char unit[13], town[13], metric[40];
        size_t ml;
        int idx;
        int64_t val;
        mrow_t *row;
        if (k.mv_size < 16 || memcmp(kp, prefix, 4) != 0)
            break;
        memcpy(unit, kp + 4, 12);
        unit[12] = '\0';
        ml = k.mv_size - 16 < sizeof(metric) - 1 ? k.mv_size - 16 : sizeof(metric) - 1;
        memcpy(metric, kp + 16, ml);
        metric[ml] = '\0';
        val = v.mv_size == 8 ? (int64_t)be64get(v.mv_data) : 0;
        township_of(st, unit, town);
        if (!township_in_scope(st, peer, town, want))
            continue;
        if (!ps_policy_may_count(st->opts.units, peer, unit, NULL))
            continue;
        row = row_for(rows, nrows, town);
        if (!row) {
            rc = PS_ENOMEM;
            break;
        }
        if ((metric[0] == 's' || metric[0] == 'f') && (!strncmp(metric, "sub_", 4) || !strncmp(metric, "fb_", 3))) {
            const char *p = strchr(metric, '_') + 1;
            char urgent = p[0];
            long days = strtol(p + 2, NULL, 10);
            uint32_t dl = urgent == 'u' ? dl_u : dl_n;
            /* Bucket 61 means "later than 60 days": on time only for deadlines above 60. */
            if (days <= (long)dl && !(days == PS_DELAY_BUCKETS - 1 && dl < PS_DELAY_BUCKETS))
                row->v[ps_indicator_index(metric[0] == 's' ? "submitted_on_time" : "feedback_on_time")] += val;
            continue;
        }
        if ((idx = ps_indicator_index(metric)) >= 0)
            row->v[idx] += val;
    }
    mdb_cursor_close(cur);
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : rc;
}

static int compute_rows(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, uint32_t month, const char *want,
                        uint32_t dl_u, uint32_t dl_n, mrow_t **rows, size_t *nrows)
{
    int rc;
    *rows = NULL;
    *nrows = 0;
    /* Every township in scope gets a row, even an empty one. */
    if (st->opts.units) {
        for (size_t i = 0; i < ps_orgunits_count(st->opts.units); i++) {
            const ps_orgunit_t *u = ps_orgunits_at(st->opts.units, i);
            if (u->depth == 1 && township_in_scope(st, peer, u->code, want) && !row_for(rows, nrows, u->code))
                return PS_ENOMEM;
        }
    }
    if ((rc = add_month(st, txn, peer, month, want, dl_u, dl_n, rows, nrows)) ||
        (rc = add_month(st, txn, peer, 0, want, dl_u, dl_n, rows, nrows)))
        return rc;
    for (size_t i = 0; i < *nrows; i++) {
        const ps_orgunit_t *u = st->opts.units ? ps_orgunits_find(st->opts.units, (*rows)[i].code) : NULL;
        (*rows)[i].name = u ? u->name : "";
    }
    return PS_OK;
}

static int cmp_mrow(const void *a, const void *b)
{
    return strcmp(((const mrow_t *)a)->code, ((const mrow_t *)b)->code);
}

static void close_key(uint8_t key[16], uint32_t month, const char *town)
{
    key[0] = (uint8_t)(month >> 24);
    key[1] = (uint8_t)(month >> 16);
    key[2] = (uint8_t)(month >> 8);
    key[3] = (uint8_t)month;
    memcpy(key + 4, town, 12);
}

static Popsync__CloseResult *close_get(ps_store_t *st, MDB_txn *txn, uint32_t month, const char *town)
{
    uint8_t key[16];
    MDB_val k = {16, key}, v;
    close_key(key, month, town);
    if (mdb_get(txn, st->closes, &k, &v) != 0)
        return NULL;
    return popsync__close_result__unpack(NULL, v.mv_size, v.mv_data);
}

static int64_t frozen_value(const Popsync__CloseResult *c, const char *name)
{
    for (size_t i = 0; i < c->n_frozen; i++)
        if (!strcmp(c->frozen[i]->name, name))
            return c->frozen[i]->value;
    return 0;
}

/* A monthly ReportResult and what it points into (ps_store_msg_t.priv):
 * nrows township rows and the total, PS_INDICATORS values and up to PS_INDICATORS
 * corrections each. */
typedef struct monthly_out {
    Popsync__ReportResult res;
    mrow_t *rows, total;
    size_t nrows;
    Popsync__ReportRow *rr, **rp;
    Popsync__ReportValue *vals, **vp, *corr, **cp;
    Popsync__CloseResult **closes;
} monthly_out_t;

static void monthly_out_free(void *priv)
{
    monthly_out_t *mo = priv;
    if (!mo)
        return;
    if (mo->closes)
        for (size_t i = 0; i <= mo->nrows; i++)
            if (mo->closes[i])
                popsync__close_result__free_unpacked(mo->closes[i], NULL);
    free(mo->closes);
    free(mo->rr);
    free(mo->rp);
    free(mo->vals);
    free(mo->vp);
    free(mo->corr);
    free(mo->cp);
    free(mo->rows);
    free(mo);
}

static int monthly_alloc(monthly_out_t *mo)
{
    size_t n = mo->nrows + 1;
    mo->rr = calloc(n, sizeof(*mo->rr));
    mo->rp = calloc(n, sizeof(*mo->rp));
    mo->vals = calloc(n * PS_INDICATORS, sizeof(*mo->vals));
    mo->vp = calloc(n * PS_INDICATORS, sizeof(*mo->vp));
    mo->corr = calloc(n * PS_INDICATORS, sizeof(*mo->corr));
    mo->cp = calloc(n * PS_INDICATORS, sizeof(*mo->cp));
    mo->closes = calloc(n, sizeof(*mo->closes));
    return mo->rr && mo->rp && mo->vals && mo->vp && mo->corr && mo->cp && mo->closes ? PS_OK : PS_ENOMEM;
}

/* Appends a correction (name, value) to row i's list. */
static void monthly_correction(monthly_out_t *mo, size_t i, const char *name, int64_t value)
{
    Popsync__ReportRow *row = &mo->rr[i];
    Popsync__ReportValue *c = &mo->corr[i * PS_INDICATORS + row->n_corrections];
    popsync__report_value__init(c);
    c->name = (char *)name;
    c->value = value;
    mo->cp[i * PS_INDICATORS + row->n_corrections++] = c;
    row->corrections = mo->cp + i * PS_INDICATORS;
}

/* Row i (a township, or the total when i == nrows): its close state and
 * values.  An approved month shows what was handed in; later edits appear
 * as corrections, never as silent changes. */
static void monthly_row(ps_store_t *st, MDB_txn *txn, uint32_t month, monthly_out_t *mo, size_t i)
{
    mrow_t *m = i < mo->nrows ? &mo->rows[i] : &mo->total;
    Popsync__ReportRow *row = &mo->rr[i];
    popsync__report_row__init(row);
    row->orgunit = i < mo->nrows ? m->code : "";
    row->name = i < mo->nrows ? (char *)m->name : "";
    row->close_state = "";
    if (i < mo->nrows && (mo->closes[i] = close_get(st, txn, month, m->code)) != NULL) {
        row->close_state = mo->closes[i]->state;
        if (!strcmp(mo->closes[i]->state, "approved"))
            for (size_t j = 0; j < PS_INDICATORS; j++) {
                int64_t frozen = frozen_value(mo->closes[i], ps_indicators[j]);
                int64_t delta = m->v[j] - frozen;
                m->v[j] = frozen;
                if (delta)
                    monthly_correction(mo, i, ps_indicators[j], delta);
            }
    }
    for (size_t j = 0; j < PS_INDICATORS; j++) {
        Popsync__ReportValue *val = &mo->vals[i * PS_INDICATORS + j];
        popsync__report_value__init(val);
        val->name = (char *)ps_indicators[j];
        val->value = m->v[j];
        mo->vp[i * PS_INDICATORS + j] = val;
        if (i < mo->nrows)
            mo->total.v[j] += m->v[j];
    }
    row->n_values = PS_INDICATORS;
    row->values = mo->vp + i * PS_INDICATORS;
    mo->rp[i] = row;
}

/* The total's corrections are the sum of its rows'. */
static void monthly_total_corrections(monthly_out_t *mo)
{
    for (size_t j = 0; j < PS_INDICATORS; j++) {
        int64_t sum = 0;
        for (size_t i = 0; i < mo->nrows; i++)
            for (size_t c = 0; c < mo->rr[i].n_corrections; c++)
                if (!strcmp(mo->rr[i].corrections[c]->name, ps_indicators[j]))
                    sum += mo->rr[i].corrections[c]->value;
        if (sum)
            monthly_correction(mo, mo->nrows, ps_indicators[j], sum);
    }
}

int ps_store_report_monthly(ps_store_t *st, const ps_peer_t *peer, const Popsync__ReportRequest *req,
                            ps_store_msg_t *out, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    monthly_out_t *mo;
    uint32_t month = ps_month_of(req->month);
    uint32_t dl_u = req->deadline_urgent_days ? req->deadline_urgent_days : 15;
    uint32_t dl_n = req->deadline_normal_days ? req->deadline_normal_days : 30;
    int mrc, rc;

    memset(out, 0, sizeof(*out));
    if (!month || strlen(req->month) != 7) {
        snprintf(err, errlen, "month must be YYYY-MM");
        return PS_EINVAL;
    }
    if (req->orgunit && *req->orgunit && !ps_orgunit_valid(req->orgunit)) {
        snprintf(err, errlen, "orgunit must be a 12-digit code");
        return PS_EINVAL;
    }
    if (!(mo = calloc(1, sizeof(*mo))))
        return PS_ENOMEM;
    if ((mrc = ro_begin(st, &txn))) {
        free(mo);
        return db_err(mrc);
    }
    if ((rc = compute_rows(st, txn, peer, month, req->orgunit, dl_u, dl_n, &mo->rows, &mo->nrows)) == PS_OK &&
        (rc = monthly_alloc(mo)) == PS_OK) {
        if (mo->nrows)
            qsort(mo->rows, mo->nrows, sizeof(*mo->rows), cmp_mrow);
        for (size_t i = 0; i <= mo->nrows; i++)
            monthly_row(st, txn, month, mo, i);
        monthly_total_corrections(mo);
    }
    ro_end(st, txn);
    if (rc) {
        monthly_out_free(mo);
        return rc;
    }
    popsync__report_result__init(&mo->res);
    mo->res.report = "monthly";
    mo->res.month = req->month;
    mo->res.n_rows = mo->nrows + 1;
    mo->res.rows = mo->rp;
    mo->res.generated_ms = ps_now_ms();
    mo->res.deadline_urgent_days = dl_u;
    mo->res.deadline_normal_days = dl_n;
    out->msg = &mo->res.base;
    out->release = monthly_out_free;
    out->priv = mo;
    return PS_OK;
}

/* ---- Monthly close ------------------------------------------------------------ */

/* A CloseResult and what it points into (ps_store_msg_t.priv). */
typedef struct close_out {
    Popsync__CloseResult now;
    Popsync__CloseResult *old;   /* the stored state before this request */
    Popsync__ReportValue vals[PS_INDICATORS], *vp[PS_INDICATORS];
} close_out_t;

static void close_out_free(void *priv)
{
    close_out_t *co = priv;
    if (co && co->old)
        popsync__close_result__free_unpacked(co->old, NULL);
    free(co);
}

/* The request's month, township and action, and whether the peer may do
 * it (the policy's decision: a township submits its own month; the
 * district approves or returns; readers of the township may look). */
static int close_check(ps_store_t *st, const ps_peer_t *peer, const Popsync__CloseRequest *req, const char *town,
                       const char *act, char *err, size_t errlen)
{
    char t[13];
    if (!ps_month_of(req->month) || strlen(req->month) != 7) {
        snprintf(err, errlen, "month must be YYYY-MM");
        return PS_EINVAL;
    }
    if (!ps_orgunit_valid(town)) {
        snprintf(err, errlen, "orgunit must be a 12-digit township code");
        return PS_EINVAL;
    }
    township_of(st, town, t);
    if (strcmp(t, town) != 0) {
        snprintf(err, errlen, "%s is not a township: months are closed per township", town);
        return PS_EINVAL;
    }
    if (strcmp(act, "status") && strcmp(act, "submit") && strcmp(act, "approve") && strcmp(act, "return")) {
        snprintf(err, errlen, "action must be submit, approve, return or status");
        return PS_EINVAL;
    }
    if (!ps_policy_may_close(st->opts.units, peer,
                             !strcmp(act, "submit")    ? PS_ACT_CLOSE_SUBMIT
                             : !strcmp(act, "approve") ? PS_ACT_CLOSE_APPROVE
                             : !strcmp(act, "return")  ? PS_ACT_CLOSE_RETURN
                                                       : PS_ACT_CLOSE_STATUS,
                             town)) {
        snprintf(err, errlen, "role %s may not %s the month of %s", peer->role_name, act, town);
        return PS_EACCES;
    }
    return PS_OK;
}

/* Moves co->now (the stored state) by the action, freezing the township's
 * numbers as handed in (default deadlines) on approval. */
static int close_transition(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const Popsync__CloseRequest *req,
                            const char *act, close_out_t *co, char *err, size_t errlen)
{
    const char *state = co->now.state, *town = co->now.orgunit;
    if (!strcmp(act, "submit") && !strcmp(state, "approved")) {
        snprintf(err, errlen, "%s %s is already approved", town, req->month);
        return PS_EEXIST;
    }
    if (!strcmp(act, "approve") && strcmp(state, "submitted")) {
        snprintf(err, errlen, "%s %s has not been submitted", town, req->month);
        return PS_EINVAL;
    }
    if (!strcmp(act, "return") && strcmp(state, "submitted") && strcmp(state, "approved")) {
        snprintf(err, errlen, "%s %s is not submitted or approved", town, req->month);
        return PS_EINVAL;
    }
    co->now.state = !strcmp(act, "submit") ? "submitted" : !strcmp(act, "approve") ? "approved" : "returned";
    co->now.at_ms = ps_now_ms();
    co->now.by = (char *)peer->name;
    co->now.note = req->note ? req->note : "";
    co->now.n_frozen = 0;
    co->now.frozen = NULL;
    if (!strcmp(act, "approve")) {
        ps_peer_t district = *peer;
        mrow_t *rows = NULL;
        size_t nrows = 0;
        int rc;
        district.role = PS_ROLE_ADMIN;
        if ((rc = compute_rows(st, txn, &district, ps_month_of(req->month), town, 15, 30, &rows, &nrows)))
            return rc;
        for (size_t j = 0; j < PS_INDICATORS; j++) {
            popsync__report_value__init(&co->vals[j]);
            co->vals[j].name = (char *)ps_indicators[j];
            co->vals[j].value = nrows ? rows[0].v[j] : 0;
            co->vp[j] = &co->vals[j];
        }
        free(rows);
        co->now.n_frozen = PS_INDICATORS;
        co->now.frozen = co->vp;
    }
    return PS_OK;
}

/* Stores co->now as the township's month and commits txn (always ended). */
static int close_put(ps_store_t *st, MDB_txn *txn, const close_out_t *co)
{
    size_t n = protobuf_c_message_get_packed_size(&co->now.base);
    uint8_t key[16], *packed = malloc(n ? n : 1);
    MDB_val k = {16, key}, v = {n, packed};
    int mrc;
    if (!packed) {
        ro_end(st, txn);
        return PS_ENOMEM;
    }
    protobuf_c_message_pack(&co->now.base, packed);
    close_key(key, ps_month_of(co->now.month), co->now.orgunit);
    mrc = mdb_put(txn, st->closes, &k, &v, 0);
    if (mrc) {
        free(packed);
        ro_end(st, txn); /* aborts */
        return db_err(mrc);
    }
    mrc = mdb_txn_commit(txn);
    pthread_rwlock_unlock(&st->resize);
    free(packed);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_store_close_month(ps_store_t *st, const ps_peer_t *peer, const Popsync__CloseRequest *req,
                         ps_store_msg_t *out, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    close_out_t *co;
    const char *act = req->action ? req->action : "";
    const char *town = req->orgunit && *req->orgunit ? req->orgunit : peer->orgunit;
    int write = strcmp(act, "status") != 0, mrc, rc;

    memset(out, 0, sizeof(*out));
    if ((rc = close_check(st, peer, req, town, act, err, errlen)))
        return rc;
    if (!(co = calloc(1, sizeof(*co))))
        return PS_ENOMEM;
    if ((mrc = txn_begin_locked(st, write ? 0 : MDB_RDONLY, &txn))) {
        free(co);
        return db_err(mrc);
    }
    co->old = close_get(st, txn, ps_month_of(req->month), town);
    popsync__close_result__init(&co->now);
    co->now.month = req->month;
    co->now.orgunit = (char *)town;
    co->now.state = co->old ? co->old->state : "";
    co->now.at_ms = co->old ? co->old->at_ms : 0;
    co->now.by = co->old ? co->old->by : "";
    co->now.note = co->old ? co->old->note : "";
    if (co->old) {
        co->now.n_frozen = co->old->n_frozen;
        co->now.frozen = co->old->frozen;
    }
    if (!write)
        ro_end(st, txn);
    else if ((rc = close_transition(st, txn, peer, req, act, co, err, errlen)))
        ro_end(st, txn);
    else
        rc = close_put(st, txn, co);
    if (rc) {
        close_out_free(co);
        return rc;
    }
    out->msg = &co->now.base;
    out->release = close_out_free;
    out->priv = co;
    return PS_OK;
}

/* ---- Recount check ----------------------------------------------------------------- */

/* Recounts every counter from the records themselves into want
 * ("month|unit|metric" -> sum). */
static int counters_recount(ps_store_t *st, MDB_txn *txn, ps_strtab_t *want)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;
    if ((mrc = mdb_cursor_open(txn, st->records, &cur)))
        return db_err(mrc);
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Record *r = NULL;
        ps_contrib_t cs[PS_CONTRIB_MAX];
        size_t n;
        if (v.mv_size < REC_HDR || ps_msg_unpack_desc(&popsync__record__descriptor, (uint8_t *)v.mv_data + REC_HDR,
                                                      v.mv_size - REC_HDR, (ProtobufCMessage **)&r) != PS_OK)
            continue;
        n = counts_here(st, r) ? ps_counters_contrib(r, cs, PS_CONTRIB_MAX) : 0;
        for (size_t i = 0; rc == PS_OK && i < n; i++) {
            char key[64];
            ps_strent_t *e;
            snprintf(key, sizeof(key), "%06u|%s|%s", cs[i].month, cs[i].unit, cs[i].metric);
            if (!(e = ps_strtab_get(want, key)))
                rc = PS_ENOMEM;
            else
                e->sum += cs[i].value;
        }
        ps_msg_free(&r->base);
    }
    mdb_cursor_close(cur);
    return rc;
}

/* The "month|unit|metric" key of a stored counter key. */
static void counter_key_text(const MDB_val *k, char *key, size_t cap)
{
    const uint8_t *kp = k->mv_data;
    char unit[13], metric[40];
    uint32_t month = (uint32_t)kp[0] << 24 | (uint32_t)kp[1] << 16 | (uint32_t)kp[2] << 8 | kp[3];
    size_t ml = k->mv_size - 16 < sizeof(metric) - 1 ? k->mv_size - 16 : sizeof(metric) - 1;
    memcpy(unit, kp + 4, 12);
    unit[12] = '\0';
    memcpy(metric, kp + 16, ml);
    metric[ml] = '\0';
    snprintf(key, cap, "%06u|%s|%s", month, unit, metric);
}

/* Every stored counter must equal the recount, and the other way round. */
static int counters_compare(ps_store_t *st, MDB_txn *txn, ps_strtab_t *want, uint64_t *checked, uint64_t *mismatched,
                            char *err, size_t errlen)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;
    if ((mrc = mdb_cursor_open(txn, st->counters, &cur)))
        return db_err(mrc);
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        char key[64];
        ps_strent_t *e;
        int64_t stored = v.mv_size == 8 ? (int64_t)be64get(v.mv_data) : 0;
        if (k.mv_size < 16)
            continue;
        counter_key_text(&k, key, sizeof(key));
        (*checked)++;
        if (!(e = ps_strtab_get(want, key))) {
            mdb_cursor_close(cur);
            return PS_ENOMEM;
        }
        if (e->sum != stored) {
            if (*mismatched == 0)
                snprintf(err, errlen, "counter %s is %lld, a recount gives %lld", key, (long long)stored,
                         (long long)e->sum);
            (*mismatched)++;
        }
        e->count = 1; /* seen */
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < want->cap; i++)
        if (want->v[i].key && !want->v[i].count && want->v[i].sum != 0) {
            if (*mismatched == 0)
                snprintf(err, errlen, "counter %s is missing, a recount gives %lld", want->v[i].key,
                         (long long)want->v[i].sum);
            (*mismatched)++;
        }
    return PS_OK;
}

int ps_store_counters_check(ps_store_t *st, uint64_t *checked, uint64_t *mismatched, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    ps_strtab_t want;
    int mrc, rc;

    memset(&want, 0, sizeof(want));
    *checked = *mismatched = 0;
    if ((mrc = ro_begin(st, &txn)))
        return db_err(mrc);
    if ((rc = counters_recount(st, txn, &want)) == PS_OK)
        rc = counters_compare(st, txn, &want, checked, mismatched, err, errlen);
    ro_end(st, txn);
    ps_strtab_free(&want);
    return rc;
}
