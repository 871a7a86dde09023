/* store_quality.c - the data-quality report (docs/queries.md §4).
 *
 * Owns: the report's checks (invalid ID numbers and impossible dates as the
 * validator judges them today, duplicate ID numbers, possible duplicates
 * by name and birth date, references to no live record, feedback overdue)
 * and its answer: every issue in the order unit, check, record, counted
 * per check, a page at a time.  The checks read the column projection
 * (store_cols.c): one pass over the rows gathers the live records, the
 * references, the migrations' dates and the persons' name keys; only the
 * few records a row cannot judge are read (one the validator may find
 * something in, a raw row, two persons whose ID numbers or name keys hash
 * alike).  The
 * scan of every record is kept as ps__store_quality_scan, the answer the
 * unit tests compare with.  Runs on worker threads.
 */
#include "store_int.h"
#include "store_cols.h"
#include "counters.h"
#include "ids.h"
#include "msg.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "strtab.h"
#include "tz.h"
#include "validate.h"
#include "vec.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

/* The township (depth-1 unit) of a unit: the tree decides, else the prefix. */
static void township_of(const ps_store_t *st, const char *unit, char out[13])
{
    ps_orgunits_township_code(st->opts.units, unit, out);
}

typedef struct qissues {
    Popsync__QualityIssue *v;
    uint8_t (*ids)[PS_ID_LEN];
    char (*units)[13];
    char (*details)[96];
    size_t n, cap;
} qissues_t;

static int issue_add(qissues_t *q, const char *check, const uint8_t *id, const char *unit, int kind,
                     const char *detail)
{
    if (q->n == q->cap) {
        size_t ncap = q->cap;
        if (PS_VEC_ROOM(q->v, q->n, ncap, 256) || PS_VEC_RESIZE(q->ids, ncap) || PS_VEC_RESIZE(q->units, ncap) ||
            PS_VEC_RESIZE(q->details, ncap))
            return PS_ENOMEM;
        q->cap = ncap;
    }
    popsync__quality_issue__init(&q->v[q->n]);
    q->v[q->n].check = (char *)check;
    memcpy(q->ids[q->n], id, PS_ID_LEN);
    snprintf(q->units[q->n], 13, "%s", unit);
    snprintf(q->details[q->n], 96, "%s", detail);
    q->v[q->n].kind = kind;
    q->n++;
    return PS_OK;
}

/* Every reference of r (ps_record_refs) that names no live record of the
 * right kind: deleted since (`delete --force`, or a delete pushed by a
 * cache that could not see the referring record), or never stored.  A
 * birth's mother keeps her own check, `missing_mother`; the others are
 * `dangling_reference`.  The detail names the field and the kind only. */
static int dangling_refs(MDB_txn *txn, ps_store_t *st, const Popsync__Record *r, const char *unit, qissues_t *qi)
{
    ps_ref_t refs[PS_REFS_MAX];
    size_t n = ps_record_refs(r, refs);
    int rc = PS_OK;

    for (size_t i = 0; rc == PS_OK && i < n; i++) {
        MDB_val k = {PS_ID_LEN, (void *)refs[i].id}, v;
        const uint8_t *h;
        char detail[96];
        if (mdb_get(txn, st->records, &k, &v) == 0 && v.mv_size >= REC_HDR && !((h = v.mv_data)[9] & REC_DELETED) &&
            h[8] == refs[i].kind)
            continue;
        snprintf(detail, sizeof(detail), "%s: no live %s record", refs[i].field, ps_kind_name(refs[i].kind));
        rc = issue_add(qi, strcmp(refs[i].field, "mother_id") == 0 && r->kind == POPSYNC__KIND__KIND_BIRTH
                               ? "missing_mother"
                               : "dangling_reference",
                       r->id.data, unit, r->kind, detail);
    }
    return rc;
}

/* Per ID number (or name + birth date): the records holding it, their
 * units, townships and ID numbers. */
typedef struct idrefs {
    size_t n;
    struct {
        uint8_t id[PS_ID_LEN];
        char unit[13];
        char town[13];
        char idn[19];
    } r[];
} idrefs_t;

/* Files person r (in unit) under key in t. */
static int idrefs_add(const ps_store_t *st, ps_strtab_t *t, const char *key, const Popsync__Record *r, const char *unit)
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
    township_of(st, unit, ir->r[n].town);
    snprintf(ir->r[n].idn, sizeof(ir->r[n].idn), "%s", r->person->id_number ? r->person->id_number : "");
    e->aux = ir;
    return PS_OK;
}

/* Every record of every ID number held by more than one live person: one
 * issue per record, saying how many others are in its township and how
 * many elsewhere.  Such pairs predate the server's ID-number index
 * (store_idnum.c), which refuses new ones; they stay until merged
 * (`popsync merge`). */
static int report_dup_numbers(const ps_strtab_t *idn, qissues_t *qi)
{
    int rc = PS_OK;

    for (size_t i = 0; rc == PS_OK && i < idn->cap; i++) {
        const idrefs_t *ir = idn->v[i].aux;
        for (size_t j = 0; ir && ir->n > 1 && rc == PS_OK && j < ir->n; j++) {
            size_t same = 0;
            char detail[96];
            for (size_t o = 0; o < ir->n; o++)
                same += o != j && strcmp(ir->r[o].town, ir->r[j].town) == 0;
            snprintf(detail, sizeof(detail), "id_number also held by %zu record(s) in this township, %zu in others",
                     same, ir->n - 1 - same);
            rc = issue_add(qi, "duplicate_id_number", ir->r[j].id, ir->r[j].unit, POPSYNC__KIND__KIND_PERSON, detail);
        }
    }
    return rc;
}

/* Live persons sharing name and birth date whose ID numbers are not all the
 * same (those are duplicate_id_number): possibly one person registered
 * twice, for a clerk to look at (`popsync duplicates`, `popsync merge`). */
static int report_name_date(const ps_strtab_t *nb, qissues_t *qi)
{
    int rc = PS_OK;

    for (size_t i = 0; rc == PS_OK && i < nb->cap; i++) {
        const idrefs_t *ir = nb->v[i].aux;
        int differ = 0;
        if (!ir || ir->n < 2)
            continue;
        for (size_t o = 1; o < ir->n; o++)
            differ |= strcmp(ir->r[o].idn, ir->r[0].idn) != 0;
        for (size_t j = 0; differ && rc == PS_OK && j < ir->n; j++) {
            char detail[96];
            snprintf(detail, sizeof(detail), "same name and birth date as %zu other record(s)", ir->n - 1);
            rc = issue_add(qi, "possible_duplicate", ir->r[j].id, ir->r[j].unit, POPSYNC__KIND__KIND_PERSON, detail);
        }
    }
    return rc;
}

/* Today in the district's time zone. */
static uint32_t today_yyyymmdd(const ps_store_t *st)
{
    return ps_tz_date(&st->opts.tz, ps_now_ms());
}

/* A quality ReportResult and what it points into (ps_store_msg_t.priv). */
typedef struct quality_out {
    Popsync__ReportResult res;
    qissues_t qi;
    Popsync__QualityIssue **ip;
    Popsync__ReportValue counts[16], *countp[16]; /* issues per check (QCHECKS) */
    size_t ncounts;
} quality_out_t;

static void quality_out_free(void *priv)
{
    quality_out_t *qo = priv;
    if (!qo)
        return;
    free(qo->ip);
    free(qo->qi.v);
    free(qo->qi.ids);
    free(qo->qi.units);
    free(qo->qi.details);
    free(qo);
}

/* What one scan of the quality report gathers besides the issues. */
typedef struct quality_scan {
    ps_strtab_t idn, nb;         /* persons by ID number, by name + birth date */
    uint32_t today;         /* YYYYMMDD in the district's zone */
    char today_text[16];
    uint32_t dl_u, dl_n;    /* feedback deadlines, days */
} quality_scan_t;

/* A migration submitted with no feedback past its deadline (urgent or
 * not), its dates as text. */
static int overdue_check(const quality_scan_t *qs, const char *submitted, const char *feedback, int urgent,
                         const uint8_t *id, const char *unit, qissues_t *qi)
{
    int32_t days;
    char detail[96];
    uint32_t dl = urgent ? qs->dl_u : qs->dl_n;
    if (!submitted || !*submitted || (feedback && *feedback))
        return PS_OK;
    days = ps_days_between(submitted, qs->today_text);
    if (days == INT32_MIN || days <= (int32_t)dl)
        return PS_OK;
    snprintf(detail, sizeof(detail), "submitted %s, no feedback after %d days (deadline %u)", submitted, days, dl);
    return issue_add(qi, "feedback_overdue", id, unit, POPSYNC__KIND__KIND_MIGRATION, detail);
}

static int quality_overdue(const quality_scan_t *qs, const Popsync__Record *r, const char *unit, qissues_t *qi)
{
    const Popsync__Migration *g = r->migration;
    return overdue_check(qs, g->submitted_date, g->feedback_date, g->urgent, r->id.data, unit, qi);
}

/* The validator's findings in one live record, as it judges them today
 * (records may predate a rule). */
static int quality_validate(const quality_scan_t *qs, const Popsync__Record *r, const char *unit, qissues_t *qi)
{
    ps_verrs_t ve;
    ps_validate_ctx_t vc;
    int rc = PS_OK;
    memset(&ve, 0, sizeof(ve));
    memset(&vc, 0, sizeof(vc));
    vc.today = qs->today;
    ps_validate_record(r, &vc, &ve);
    for (size_t i = 0; rc == PS_OK && i < ve.n && i < PS_VERR_MAX; i++) {
        const char *f = ve.e[i].field;
        char detail[sizeof(ve.e[0].field) + 2 + sizeof(ve.e[0].reason)];
        snprintf(detail, sizeof(detail), "%s: %s", f, ve.e[i].reason);
        if (!strcmp(f, "id_number"))
            rc = issue_add(qi, "invalid_id_number", r->id.data, unit, r->kind, detail);
        else if (strstr(f, "date"))
            rc = issue_add(qi, "impossible_date", r->id.data, unit, r->kind, detail);
    }
    return rc;
}

/* The key possible duplicates share: name and birth date. */
static int nb_key(const Popsync__Record *r, char key[256])
{
    if (r->body_case != POPSYNC__RECORD__BODY_PERSON || !r->person->name || !*r->person->name ||
        !r->person->birth_date || !*r->person->birth_date)
        return 0;
    snprintf(key, 256, "%s|%s", r->person->name, r->person->birth_date);
    return 1;
}

/* Every check of one live record in scope. */
static int quality_record(ps_store_t *st, MDB_txn *txn, quality_scan_t *qs, const Popsync__Record *r,
                          const char *unit, qissues_t *qi)
{
    char key[256];
    int rc = quality_validate(qs, r, unit, qi);
    if (rc == PS_OK && r->body_case == POPSYNC__RECORD__BODY_PERSON && r->person->id_number &&
        strlen(r->person->id_number) == 18)
        rc = idrefs_add(st, &qs->idn, r->person->id_number, r, unit);
    if (rc == PS_OK && nb_key(r, key))
        rc = idrefs_add(st, &qs->nb, key, r, unit);
    if (rc == PS_OK)
        rc = dangling_refs(txn, st, r, unit, qi);
    if (rc == PS_OK && r->body_case == POPSYNC__RECORD__BODY_MIGRATION)
        rc = quality_overdue(qs, r, unit, qi);
    return rc;
}

/* The scan over the live records the peer may count under root. */
static int quality_scan(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const char *root, quality_scan_t *qs,
                        qissues_t *qi)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_cursor_open(txn, st->records, &cur)))
        return db_err(mrc);
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        const uint8_t *h = v.mv_data;
        Popsync__Record *r = NULL;
        char unit[13];
        if (v.mv_size < REC_HDR || (h[9] & REC_DELETED) || !may_count_hdr(st, peer, h))
            continue;
        hdr_unit(h, HDR_UNIT, unit);
        if (root && !within(st, unit, root))
            continue;
        if (ps_msg_unpack_desc(&popsync__record__descriptor, h + REC_HDR, v.mv_size - REC_HDR,
                               (ProtobufCMessage **)&r) != PS_OK)
            continue;
        rc = quality_record(st, txn, qs, r, unit, qi);
        ps_msg_free(&r->base);
    }
    mdb_cursor_close(cur);
    if (rc == PS_OK)
        rc = report_dup_numbers(&qs->idn, qi);
    if (rc == PS_OK)
        rc = report_name_date(&qs->nb, qi);
    return rc;
}

/* ---- the same checks from the column projection ------------------------------------ */

/* Live records by id, with their kind: what a reference must find. */
typedef struct liveset {
    uint8_t (*id)[PS_ID_LEN];
    uint8_t *kind;           /* 0: empty slot */
    size_t cap;
} liveset_t;

static size_t live_slot(const liveset_t *l, const uint8_t *id)
{
    uint64_t h;
    size_t i;
    memcpy(&h, id + 8, 8); /* the random half of a UUIDv7 */
    h *= 0x9e3779b97f4a7c15ull;
    for (i = (size_t)(h >> 20) & (l->cap - 1); l->kind[i] && memcmp(l->id[i], id, PS_ID_LEN);
         i = (i + 1) & (l->cap - 1))
        ;
    return i;
}

static int live_kind(const liveset_t *l, const uint8_t *id)
{
    return l->kind[live_slot(l, id)];
}

/* What one pass over the projection gathers. */
typedef struct qcols {
    ps_store_t *st;
    MDB_txn *txn;
    const ps_peer_t *peer;
    const char *root;
    quality_scan_t *qs;
    qissues_t *qi;
    liveset_t live;
    struct qref {
        uint8_t id[PS_ID_LEN], target[PS_ID_LEN];
        char unit[13];
        uint8_t kind, want;
        const char *field;
    } *refs;
    size_t nrefs, crefs;
    struct qrec {
        uint8_t id[PS_ID_LEN];
        char unit[13];
        uint64_t nb, idh;    /* name and birth date, ID number, hashed (persons) */
        uint8_t raw, recheck;
        uint8_t twin_nb, twin_idh; /* another record's hash is the same */
    } *recs;                 /* to read: raw, to validate, or possible duplicates */
    size_t nrecs, crecs;
    char unit[13];           /* the unit last asked about, with no other place */
    int unit_ok;
} qcols_t;

/* May the peer see a row of this unit and other place under the root? */
static int qcols_in_scope(qcols_t *q, const ps_cols_item_t *it)
{
    if (it->other[0])
        return (!q->root || within(q->st, it->unit, q->root)) &&
               ps_policy_may_count(q->st->opts.units, q->peer, it->unit, it->other);
    if (strcmp(q->unit, it->unit) != 0) {
        memcpy(q->unit, it->unit, 13);
        q->unit_ok = (!q->root || within(q->st, it->unit, q->root)) &&
                     ps_policy_may_count(q->st->opts.units, q->peer, it->unit, "");
    }
    return q->unit_ok;
}

static int qcols_rec(qcols_t *q, const ps_cols_item_t *it)
{
    struct qrec *r;
    if (PS_VEC_ROOM(q->recs, q->nrecs, q->crecs, 1024))
        return PS_ENOMEM;
    r = &q->recs[q->nrecs++];
    memcpy(r->id, it->id, PS_ID_LEN);
    memcpy(r->unit, it->unit, 13);
    r->nb = it->nbhash;
    r->idh = it->idhash;
    r->twin_nb = r->twin_idh = 0;
    r->raw = (uint8_t)it->raw;
    r->recheck = (uint8_t)it->recheck;
    return PS_OK;
}

/* One row: live ones into the live set; those in scope checked or kept. */
static int qcols_row(void *arg, const ps_cols_item_t *it)
{
    qcols_t *q = arg;
    char sub[32], fb[32];
    int64_t urgent = 0;
    int rc = PS_OK;
    size_t s;
    if (it->deleted)
        return PS_OK;
    s = live_slot(&q->live, it->id);
    memcpy(q->live.id[s], it->id, PS_ID_LEN);
    q->live.kind[s] = (uint8_t)it->kind;
    if (!qcols_in_scope(q, it))
        return PS_OK;
    if (it->raw || it->recheck || it->nbhash || it->idhash)
        rc = qcols_rec(q, it);
    if (it->raw || rc)
        return rc; /* read whole later */
    for (size_t i = 0; rc == PS_OK && i < it->nrefs; i++) {
        struct qref *r;
        if (PS_VEC_ROOM(q->refs, q->nrefs, q->crefs, 1024))
            return PS_ENOMEM;
        r = &q->refs[q->nrefs++];
        memcpy(r->id, it->id, PS_ID_LEN);
        memcpy(r->target, it->refs[i].id, PS_ID_LEN);
        memcpy(r->unit, it->unit, 13);
        r->kind = (uint8_t)it->kind;
        r->want = (uint8_t)it->refs[i].kind;
        r->field = it->refs[i].field;
    }
    if (it->kind == POPSYNC__KIND__KIND_MIGRATION && ps_cols_text(it, "submitted_date", sub) &&
        ps_cols_text(it, "feedback_date", fb) && ps_cols_num(it, "urgent", &urgent) == PS_OK)
        rc = overdue_check(q->qs, sub, fb, urgent != 0, it->id, it->unit, q->qi);
    return rc;
}

/* References that find no live record of their kind. */
static int qcols_refs(qcols_t *q)
{
    int rc = PS_OK;
    for (size_t i = 0; rc == PS_OK && i < q->nrefs; i++) {
        const struct qref *r = &q->refs[i];
        char detail[96];
        if (live_kind(&q->live, r->target) == r->want)
            continue;
        snprintf(detail, sizeof(detail), "%s: no live %s record", r->field, ps_kind_name(r->want));
        rc = issue_add(q->qi,
                       strcmp(r->field, "mother_id") == 0 && r->kind == POPSYNC__KIND__KIND_BIRTH ? "missing_mother"
                                                                                            : "dangling_reference",
                       r->id, r->unit, r->kind, detail);
    }
    return rc;
}

/* Marks the records whose hash (idh, or nb) another record shares: a
 * count per hash in an open-addressed table (hashes are never 0). */
static int mark_twins(qcols_t *q, int by_idh)
{
    size_t cap = 64;
    uint64_t *key;
    uint8_t *seen;
    while (cap < 2 * q->nrecs + 2)
        cap *= 2;
    key = calloc(cap, sizeof(*key));
    seen = calloc(cap, 1);
    if (!key || !seen) {
        free(key);
        free(seen);
        return PS_ENOMEM;
    }
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < q->nrecs; i++) {
            struct qrec *e = &q->recs[i];
            uint64_t h = by_idh ? e->idh : e->nb;
            size_t s;
            if (!h)
                continue;
            for (s = (size_t)(h * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1); key[s] && key[s] != h; s = (s + 1) & (cap - 1))
                ;
            if (pass == 0) {
                key[s] = h;
                if (seen[s] < 2)
                    seen[s]++;
            } else if (seen[s] > 1) {
                if (by_idh)
                    e->twin_idh = 1;
                else
                    e->twin_nb = 1;
            }
        }
    free(key);
    free(seen);
    return PS_OK;
}

/* The records kept by the pass: raw ones checked whole, flagged ones
 * validated, persons whose ID number or name and birth date hash like
 * another's filed by the exact text (report_dup_numbers and
 * report_name_date decide, as after the scan). */
static int qcols_records(qcols_t *q)
{
    int rc = mark_twins(q, 1);
    if (rc == PS_OK)
        rc = mark_twins(q, 0);
    for (size_t i = 0; rc == PS_OK && i < q->nrecs; i++) {
        const struct qrec *e = &q->recs[i];
        MDB_val k = {PS_ID_LEN, (void *)e->id}, v;
        Popsync__Record *r = NULL;
        char key[256];
        if (!e->raw && !e->recheck && !e->twin_nb && !e->twin_idh)
            continue;
        if (mdb_get(q->txn, q->st->records, &k, &v) != 0 || v.mv_size < REC_HDR ||
            ps_msg_unpack_desc(&popsync__record__descriptor, (const uint8_t *)v.mv_data + REC_HDR,
                               v.mv_size - REC_HDR, (ProtobufCMessage **)&r) != PS_OK)
            continue;
        if (e->recheck)
            rc = quality_validate(q->qs, r, e->unit, q->qi);
        if (rc == PS_OK && e->raw)
            rc = dangling_refs(q->txn, q->st, r, e->unit, q->qi);
        if (rc == PS_OK && e->raw && r->body_case == POPSYNC__RECORD__BODY_MIGRATION)
            rc = quality_overdue(q->qs, r, e->unit, q->qi);
        if (rc == PS_OK && e->twin_idh && r->body_case == POPSYNC__RECORD__BODY_PERSON && r->person->id_number &&
            strlen(r->person->id_number) == 18)
            rc = idrefs_add(q->st, &q->qs->idn, r->person->id_number, r, e->unit);
        if (rc == PS_OK && e->twin_nb && nb_key(r, key))
            rc = idrefs_add(q->st, &q->qs->nb, key, r, e->unit);
        ps_msg_free(&r->base);
    }
    if (rc == PS_OK)
        rc = report_dup_numbers(&q->qs->idn, q->qi);
    if (rc == PS_OK)
        rc = report_name_date(&q->qs->nb, q->qi);
    return rc;
}

static int quality_cols(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const char *root, quality_scan_t *qs,
                        qissues_t *qi)
{
    qcols_t q;
    MDB_stat ms;
    int mrc, rc;

    memset(&q, 0, sizeof(q));
    q.st = st;
    q.txn = txn;
    q.peer = peer;
    q.root = root;
    q.qs = qs;
    q.qi = qi;
    if ((mrc = mdb_stat(txn, st->cols, &ms)))
        return db_err(mrc);
    for (q.live.cap = 1024; q.live.cap < 2 * ms.ms_entries + 2;)
        q.live.cap *= 2;
    if (!(q.live.id = malloc(q.live.cap * PS_ID_LEN)) || !(q.live.kind = calloc(q.live.cap, 1)))
        rc = PS_ENOMEM;
    else if ((rc = ps_cols_each(st, txn, qcols_row, &q)) == PS_OK && (rc = qcols_refs(&q)) == PS_OK)
        rc = qcols_records(&q);
    free(q.live.id);
    free(q.live.kind);
    free(q.refs);
    free(q.recs);
    return rc;
}

/* ---- the answer: sorted, counted per check, paged ------------------------------------- */

#define QCHECKS 16

static int cmp_issue(const void *a, const void *b)
{
    const Popsync__QualityIssue *x = *(const Popsync__QualityIssue *const *)a;
    const Popsync__QualityIssue *y = *(const Popsync__QualityIssue *const *)b;
    int c;
    if ((c = strcmp(x->orgunit, y->orgunit)) || (c = strcmp(x->check, y->check)) ||
        (c = memcmp(x->record_id.data, y->record_id.data, PS_ID_LEN)))
        return c;
    return strcmp(x->detail, y->detail);
}

/* The issues in the report's order (unit, check, record, detail), the
 * count of each check, then the page the request asks for. */
static int quality_page(const Popsync__ReportRequest *req, quality_out_t *qo)
{
    size_t n = 0, off;
    if (!(qo->ip = calloc(qo->qi.n ? qo->qi.n : 1, sizeof(*qo->ip))))
        return PS_ENOMEM;
    for (size_t i = 0; i < qo->qi.n; i++) {
        Popsync__QualityIssue *q = &qo->qi.v[i];
        size_t c;
        q->record_id.data = qo->qi.ids[i];
        q->record_id.len = PS_ID_LEN;
        q->orgunit = qo->qi.units[i];
        q->detail = qo->qi.details[i];
        qo->ip[i] = q;
        for (c = 0; c < qo->ncounts && strcmp(qo->counts[c].name, q->check); c++)
            ;
        if (c == qo->ncounts && c < QCHECKS) {
            popsync__report_value__init(&qo->counts[c]);
            qo->counts[c].name = q->check;
            qo->countp[qo->ncounts++] = &qo->counts[c];
        }
        if (c < QCHECKS)
            qo->counts[c].value++;
    }
    qsort(qo->ip, qo->qi.n, sizeof(*qo->ip), cmp_issue);
    for (size_t i = 0; i < qo->qi.n; i++)
        if (!req->check || !*req->check || !strcmp(qo->ip[i]->check, req->check))
            qo->ip[n++] = qo->ip[i];
    off = req->offset < n ? req->offset : n;
    qo->res.total_issues = n;
    qo->res.issues = qo->ip + off;
    qo->res.n_issues = req->limit && req->limit < n - off ? req->limit : n - off;
    qo->res.n_issue_counts = qo->ncounts;
    qo->res.issue_counts = qo->countp;
    return PS_OK;
}

static int quality_run(ps_store_t *st, const ps_peer_t *peer, const Popsync__ReportRequest *req, ps_store_msg_t *out,
                       int scan, char *err, size_t errlen)
{
    const char *root = req->orgunit && *req->orgunit ? req->orgunit : NULL;
    quality_scan_t qs;
    quality_out_t *qo;
    MDB_txn *txn = NULL;
    int mrc, rc;

    memset(out, 0, sizeof(*out));
    memset(&qs, 0, sizeof(qs));
    qs.dl_u = req->deadline_urgent_days ? req->deadline_urgent_days : 15;
    qs.dl_n = req->deadline_normal_days ? req->deadline_normal_days : 30;
    qs.today = today_yyyymmdd(st);
    snprintf(qs.today_text, sizeof(qs.today_text), "%04u-%02u-%02u", qs.today / 10000, qs.today / 100 % 100,
             qs.today % 100);
    if (root && !ps_orgunit_valid(root)) {
        snprintf(err, errlen, "orgunit must be a 12-digit code");
        return PS_EINVAL;
    }
    if (!(qo = calloc(1, sizeof(*qo))))
        return PS_ENOMEM;
    popsync__report_result__init(&qo->res);
    if ((mrc = ro_begin(st, &txn))) {
        rc = db_err(mrc);
    } else {
        rc = scan ? quality_scan(st, txn, peer, root, &qs, &qo->qi) : quality_cols(st, txn, peer, root, &qs, &qo->qi);
        ro_end(st, txn);
    }
    ps_strtab_free(&qs.idn);
    ps_strtab_free(&qs.nb);
    if (rc == PS_OK)
        rc = quality_page(req, qo);
    if (rc) {
        quality_out_free(qo);
        return rc;
    }
    qo->res.report = "quality";
    qo->res.month = "";
    qo->res.generated_ms = ps_now_ms();
    qo->res.deadline_urgent_days = qs.dl_u;
    qo->res.deadline_normal_days = qs.dl_n;
    out->msg = &qo->res.base;
    out->release = quality_out_free;
    out->priv = qo;
    return PS_OK;
}

int ps_store_report_quality(ps_store_t *st, const ps_peer_t *peer, const Popsync__ReportRequest *req,
                            ps_store_msg_t *out, char *err, size_t errlen)
{
    return quality_run(st, peer, req, out, 0, err, errlen);
}

int ps__store_quality_scan(ps_store_t *st, const ps_peer_t *peer, const Popsync__ReportRequest *req,
                           ps_store_msg_t *out, char *err, size_t errlen)
{
    return quality_run(st, peer, req, out, 1, err, errlen);
}
