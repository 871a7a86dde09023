/* store_migrants.c - migrants between districts, the store side
 * (store_migrants.h, docs/upstream.md §7).
 *
 * The `foreign` database:
 *   'S' | id(16)                                -> packed MigrantSummary sent with case id
 *   'V' | id(16) | gen(8) | hlc(8) | node(16)   -> a foreign version merged into ours
 * A record's lineage is the set of revisions its current version contains:
 * its own, those of its earlier versions (`versions`) and the foreign
 * versions merged into it ('V').  A received version whose revision is in
 * our lineage is old news; one whose lineage holds our current revision
 * descends from it and is stored as it came; otherwise both districts
 * edited the case since their latest common revision and each merges the
 * two the same way (the earlier revision as "theirs", the later as "mine",
 * mine winning a field both changed), reaching the same version with the
 * same revision: each then drops the other's copy as SAME.
 */
#include "store_migrants.h"
#include "store_int.h"
#include "audit_chain.h"
#include "buf.h"
#include "store_cols.h"
#include "store_versions.h"
#include "store_upstream.h"
#include "counters.h"
#include "ids.h"
#include "log.h"
#include "merge.h"
#include "msg.h"
#include "policy.h"
#include "tz.h"
#include "validate.h"
#include "records.pb-c.h"

#include <stdio.h>
#include <stdlib.h>

#define LINEAGE_MAX 64

typedef struct rev_ref {
    uint64_t gen, hlc;
    uint8_t node[PS_ID_LEN];
} rev_ref_t;

typedef struct lineage {
    rev_ref_t r[LINEAGE_MAX];
    size_t n;
} lineage_t;

_Static_assert(PS_MIGRANT_SUMMARY_BYTES == PS_MIGRANT_SUMMARY_MAX, "one size of a migrant summary");

#define HOME_KEY "home_district"

int ps__home_load(MDB_txn *txn, ps_store_t *st)
{
    MDB_val k = {sizeof(HOME_KEY) - 1, HOME_KEY}, v;
    int mrc = mdb_get(txn, st->meta, &k, &v);
    st->home[0] = '\0';
    if (mrc == 0 && v.mv_size == 12) {
        memcpy(st->home, v.mv_data, 12);
        st->home[12] = '\0';
    }
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

int ps_store_set_home(ps_store_t *st, const char *district)
{
    MDB_txn *txn;
    MDB_val k = {sizeof(HOME_KEY) - 1, HOME_KEY}, v = {12, (void *)district};
    int mrc;
    if (!ps_orgunit_valid(district))
        return PS_EINVAL;
    if (strcmp(st->home, district) == 0)
        return PS_OK;
    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    if ((mrc = mdb_put(txn, st->meta, &k, &v, 0))) {
        ro_end(st, txn);
        return db_err(mrc);
    }
    mrc = mdb_txn_commit(txn);
    pthread_rwlock_unlock(&st->resize);
    if (mrc)
        return db_err(mrc);
    /* Set before any consumer or commit runs (popsyncd's start). */
    memcpy(st->home, district, 13);
    return PS_OK;
}

int ps_store_has_record(ps_store_t *st, const uint8_t id[16])
{
    MDB_txn *txn;
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    int mrc;
    if ((mrc = ro_begin(st, &txn)))
        return db_err(mrc);
    mrc = mdb_get(txn, st->records, &k, &v);
    ro_end(st, txn);
    return mrc == 0 ? 1 : mrc == MDB_NOTFOUND ? 0 : db_err(mrc);
}

int ps_foreign_in_district(const char *code, const char *district)
{
    return ps_policy_within(NULL, code, district);
}

int ps_foreign_district_of(const char *code, char out[13])
{
    out[0] = '\0';
    if (!code || !ps_orgunit_valid(code))
        return 0;
    snprintf(out, 13, "%.6s000000", code);
    return 1;
}

static void rev_of(const Popsync__Rev *rv, rev_ref_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!rv)
        return;
    out->gen = rv->gen;
    out->hlc = rv->hlc;
    if (rv->node.len == PS_ID_LEN)
        memcpy(out->node, rv->node.data, PS_ID_LEN);
}

static int rev_eq(const rev_ref_t *a, const rev_ref_t *b)
{
    return a->gen == b->gen && a->hlc == b->hlc && memcmp(a->node, b->node, PS_ID_LEN) == 0;
}

/* Later by (hlc, node), as the apply path breaks ties: every district
 * orders two revisions alike. */
static int rev_later(const rev_ref_t *a, const rev_ref_t *b)
{
    if (a->hlc != b->hlc)
        return a->hlc > b->hlc;
    return memcmp(a->node, b->node, PS_ID_LEN) > 0;
}

static int lineage_has(const lineage_t *l, const rev_ref_t *r)
{
    for (size_t i = 0; i < l->n; i++)
        if (rev_eq(&l->r[i], r))
            return 1;
    return 0;
}

static void lineage_add(lineage_t *l, const rev_ref_t *r)
{
    if (l->n < LINEAGE_MAX && !lineage_has(l, r))
        l->r[l->n++] = *r;
}

/* "gen.hlc.node,..." (hex) into l. */
static void lineage_parse(const char *s, lineage_t *l)
{
    while (s && *s) {
        rev_ref_t r;
        char node[33];
        unsigned long long gen, hlc;
        const char *comma = strchr(s, ',');
        if (sscanf(s, "%llx.%llx.%32[0-9a-f]", &gen, &hlc, node) == 3 && strlen(node) == 32) {
            r.gen = gen;
            r.hlc = hlc;
            for (int i = 0; i < PS_ID_LEN; i++)
                r.node[i] = (uint8_t)(ps_hexval(node[2 * i]) << 4 | ps_hexval(node[2 * i + 1]));
            lineage_add(l, &r);
        }
        s = comma ? comma + 1 : NULL;
    }
}

static int unpack_rec(const void *p, size_t n, Popsync__Record **out)
{
    *out = NULL;
    return ps_msg_unpack_desc(&popsync__record__descriptor, p, n, (ProtobufCMessage **)out) ? PS_EDB : PS_OK;
}

/* Walks the keys of dbi that start with prefix (plen bytes); fn gets each. */
static int prefix_walk(MDB_txn *txn, MDB_dbi dbi, const uint8_t *prefix, size_t plen,
                       int (*fn)(const MDB_val *k, const MDB_val *v, void *arg), void *arg)
{
    MDB_cursor *cur;
    MDB_val k = {plen, (void *)prefix}, v;
    int mrc, rc = PS_OK;
    if ((mrc = mdb_cursor_open(txn, dbi, &cur)))
        return db_err(mrc);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && rc == PS_OK;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        rc = fn(&k, &v, arg);
    }
    mdb_cursor_close(cur);
    if (!rc && mrc && mrc != MDB_NOTFOUND)
        rc = db_err(mrc);
    return rc;
}

static int add_version_rev(const MDB_val *k, const MDB_val *v, void *arg)
{
    Popsync__Record *r = NULL;
    rev_ref_t rr;
    (void)k;
    if (unpack_rec(v->mv_data, v->mv_size, &r) == PS_OK && r->rev) {
        rev_of(r->rev, &rr);
        lineage_add(arg, &rr);
    }
    if (r)
        ps_msg_free(&r->base);
    return PS_OK;
}

static int add_foreign_rev(const MDB_val *k, const MDB_val *v, void *arg)
{
    const uint8_t *p = k->mv_data;
    rev_ref_t rr;
    (void)v;
    if (k->mv_size != 1 + PS_ID_LEN + 16 + PS_ID_LEN)
        return PS_OK;
    rr.gen = be64get(p + 17);
    rr.hlc = be64get(p + 25);
    memcpy(rr.node, p + 33, PS_ID_LEN);
    lineage_add(arg, &rr);
    return PS_OK;
}

/* The lineage of record id's current version (cur: its unpacked record). */
static int lineage_of(const ps_store_t *st, MDB_txn *txn, const uint8_t *id, const Popsync__Record *cur,
                      lineage_t *l)
{
    uint8_t fp[1 + PS_ID_LEN];
    rev_ref_t rr;
    int rc;
    l->n = 0;
    if (cur && cur->rev) {
        rev_of(cur->rev, &rr);
        lineage_add(l, &rr);
    }
    if ((rc = prefix_walk(txn, st->versions, id, PS_ID_LEN, add_version_rev, l)))
        return rc;
    fp[0] = 'V';
    memcpy(fp + 1, id, PS_ID_LEN);
    return prefix_walk(txn, st->foreign, fp, sizeof(fp), add_foreign_rev, l);
}

typedef struct addressees {
    char (*to)[13];
    size_t max, n;
} addressees_t;

static void address_add(addressees_t *a, const char *unit)
{
    char d[13];
    if (!ps_foreign_district_of(unit, d))
        return;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->to[i], d) == 0)
            return;
    if (a->n < a->max)
        memcpy(a->to[a->n++], d, 13);
}

static int add_version_other(const MDB_val *k, const MDB_val *v, void *arg)
{
    Popsync__Record *r = NULL;
    (void)k;
    if (unpack_rec(v->mv_data, v->mv_size, &r) == PS_OK)
        address_add(arg, other_place(r));
    if (r)
        ps_msg_free(&r->base);
    return PS_OK;
}

/* An earlier other place still holds the case: it hears of every later
 * version (the move away from it included), as it did when consumers read
 * every district's migrations. */
int ps__foreign_addressees(const ps_store_t *st, MDB_txn *txn, const Popsync__Record *r, char (*to)[13],
                           size_t max, size_t *n)
{
    addressees_t a = {to, max, 0};
    int rc;
    address_add(&a, r->orgunit);
    address_add(&a, other_place(r));
    rc = prefix_walk(txn, st->versions, r->id.data, PS_ID_LEN, add_version_other, &a);
    *n = a.n;
    return rc;
}

static int rev_cmp_desc(const void *a, const void *b)
{
    const rev_ref_t *x = a, *y = b;
    if (x->gen != y->gen)
        return x->gen < y->gen ? 1 : -1;
    return rev_later(x, y) ? -1 : rev_later(y, x) ? 1 : 0;
}

int ps__foreign_lineage(const ps_store_t *st, MDB_txn *txn, const uint8_t *id, char *out, size_t len)
{
    static _Thread_local lineage_t l;
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    Popsync__Record *cur = NULL;
    size_t off = 0;
    int rc;

    out[0] = '\0';
    if (mdb_get(txn, st->records, &k, &v) == 0 && v.mv_size > REC_HDR)
        unpack_rec((const uint8_t *)v.mv_data + REC_HDR, v.mv_size - REC_HDR, &cur);
    rc = lineage_of(st, txn, id, cur, &l);
    if (cur)
        ps_msg_free(&cur->base);
    if (rc)
        return rc;
    qsort(l.r, l.n, sizeof(l.r[0]), rev_cmp_desc);
    for (size_t i = 0; i < l.n; i++) {
        char node[33];
        int w;
        ps_hex(l.r[i].node, PS_ID_LEN, node);
        w = snprintf(out + off, len - off, "%s%llx.%llx.%s", i ? "," : "", (unsigned long long)l.r[i].gen,
                     (unsigned long long)l.r[i].hlc, node);
        if (w < 0 || (size_t)w >= len - off) {
            out[off] = '\0'; /* the newest that fit */
            break;
        }
        off += (size_t)w;
    }
    return PS_OK;
}

void ps__foreign_summary(const ps_store_t *st, MDB_txn *txn, const uint8_t *id, uint8_t *sum, size_t *sum_len)
{
    uint8_t key[1 + PS_ID_LEN];
    MDB_val k = {sizeof(key), key}, v;
    *sum_len = 0;
    key[0] = 'S';
    memcpy(key + 1, id, PS_ID_LEN);
    if (mdb_get(txn, st->foreign, &k, &v) == 0 && v.mv_size <= PS_MIGRANT_SUMMARY_MAX) {
        memcpy(sum, v.mv_data, v.mv_size);
        *sum_len = v.mv_size;
    }
}

/* ---- applying received versions ------------------------------------------------ */

typedef struct fctx {
    ps_store_t *st;
    MDB_txn *txn;
    const char *home;
    uint64_t seq;
    uint32_t today;
    uint64_t now_ms;
    ps_audit_batch_t audit; /* this transaction's audit entries (audit_chain.h) */
    ps_buf_t scratch;
} fctx_t;

/* One received version being applied. */
typedef struct fjob {
    ps_foreign_item_t *it;
    Popsync__Record *r;       /* as received */
    Popsync__Record *cur;     /* ours, or NULL */
    uint8_t cur_hdr[REC_HDR];
    Popsync__Record *base;    /* the latest common version (owned), or NULL */
    int base_is_cur;
    ps_merge_t m;
    int have_merge;
    Popsync__Record nv;       /* what we store (shallow) */
    Popsync__Rev nrev;
    int sender_owns;
} fjob_t;

static int refuse(fjob_t *j, const char *field, const char *reason)
{
    j->it->outcome = PS_FOREIGN_REFUSED;
    snprintf(j->it->why, sizeof(j->it->why), "%s%s%s", field, *field ? ": " : "", reason);
    return PS_OK;
}

static int in_home(const fctx_t *c, const char *code)
{
    if (!code || !*code)
        return 0;
    return c->st->opts.units ? ps_orgunits_find(c->st->opts.units, code) != NULL
                             : ps_foreign_in_district(code, c->home);
}

static int ref_exists(void *arg, const uint8_t id[PS_ID_LEN], int kind)
{
    fctx_t *c = arg;
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    if (mdb_get(c->txn, c->st->records, &k, &v) || v.mv_size < REC_HDR)
        return 0;
    return !(((const uint8_t *)v.mv_data)[9] & REC_DELETED) && (kind == 0 || ((const uint8_t *)v.mv_data)[8] == kind);
}

/* Scope exits for the units of the old header that the new version no
 * longer reaches (as the apply path does); the record's own feed entry is
 * written with it (store_feed.c keeps the township index). */
static int feed_entries(fctx_t *c, const Popsync__Record *nv, const uint8_t *old_hdr)
{
    const char *other = other_place(nv);
    int rc;
    if (old_hdr) {
        char units[2][13];
        if ((rc = ps__feed_drop(c->txn, c->st, old_hdr)))
            return rc;
        hdr_unit(old_hdr, HDR_UNIT, units[0]);
        hdr_unit(old_hdr, HDR_OTHER, units[1]);
        for (int i = 0; i < 2; i++) {
            if (!units[i][0] || strcmp(units[i], nv->orgunit) == 0 || strcmp(units[i], other) == 0)
                continue;
            if ((rc = ps__feed_put_exit(c->txn, c->st, ++c->seq, nv->id.data, units[i])))
                return rc;
        }
    }
    ++c->seq; /* the record's own entry */
    return PS_OK;
}

/* The version about to be replaced moves to `versions` (store_versions.h:
 * the live one is kept in `records` only). */
static int supersede(fctx_t *c, const uint8_t *id)
{
    ps_buf_t copy;
    int rc;
    ps_buf_init(&copy);
    rc = ps__version_supersede(c->txn, c->st, id, &copy);
    ps_buf_free(&copy);
    return rc;
}

/* The audit action of a foreign write: what it did to our record,
 * prefixed "foreign_" so no one reads it as one of our certificates'. */
static const char *foreign_action(const fjob_t *j, const Popsync__Record *nv)
{
    return !j->cur                             ? "foreign_create"
           : nv->deleted && !j->cur->deleted   ? "foreign_delete"
           : !nv->deleted && j->cur->deleted   ? "foreign_restore"
           : j->have_merge                     ? "foreign_merge"
                                               : "foreign_update";
}

/* Every change the store makes is in the audit chain, in its own write
 * transaction (docs/security.md §5).  A foreign version's author is the
 * sending district, not a certificate of ours: the entry names it in
 * cert_role "district" and cert_orgunit (its code), and the node is the
 * revision's (the other district's device; for a merge, the later one's). */
static int audit_foreign(fctx_t *c, const fjob_t *j, const Popsync__Record *nv)
{
    Popsync__AuditEntry e = POPSYNC__AUDIT_ENTRY__INIT;
    char who[32];
    int rc;
    snprintf(who, sizeof(who), "district %s", j->it->district);
    e.time_ms = c->now_ms;
    e.cert_name = who;
    e.cert_role = (char *)"district";
    e.cert_orgunit = j->it->district;
    e.cert_serial = (char *)"";
    e.node = nv->rev->node;
    e.record_id = nv->id;
    e.kind = nv->kind;
    e.gen = nv->rev->gen;
    e.hlc = nv->rev->hlc;
    e.seq = c->seq;
    e.action = (char *)foreign_action(j, nv);
    e.orgunit = nv->orgunit;
    if ((rc = ps_audit_append(&c->audit, c->txn, c->st, &e, &c->scratch)))
        return rc;
    /* A record's history finds each version's entry (store_history.c). */
    return ps__history_file(c->txn, c->st, nv->id.data, e.gen, e.n);
}

/* Makes nv (packed: bytes) the record's current version: feed, records
 * and counters, at a new seq of our feed; the one it replaces moves to
 * versions. */
static int write_version(fctx_t *c, const Popsync__Record *nv, const uint8_t *bytes, size_t n, const fjob_t *j)
{
    const char *other = other_place(nv);
    uint8_t *val;
    MDB_val k, v;
    int rc, mrc;

    if ((rc = feed_entries(c, nv, j->cur ? j->cur_hdr : NULL)))
        return rc;
    if (j->cur && (rc = supersede(c, nv->id.data)))
        return rc;
    if (!(val = malloc(REC_HDR + n)))
        return PS_ENOMEM;
    be64put(val, c->seq);
    val[8] = (uint8_t)nv->kind;
    val[9] = nv->deleted ? REC_DELETED : 0;
    memcpy(val + HDR_UNIT, nv->orgunit, 12);
    memset(val + HDR_OTHER, 0, 12);
    memcpy(val + HDR_OTHER, other, strlen(other));
    be64put(val + HDR_GEN, nv->rev->gen);
    be64put(val + HDR_HLC, nv->rev->hlc);
    memcpy(val + REC_HDR, bytes, n);
    k.mv_size = PS_ID_LEN;
    k.mv_data = nv->id.data;
    v.mv_size = REC_HDR + n;
    v.mv_data = val;
    mrc = mdb_put(c->txn, c->st->records, &k, &v, 0);
    rc = mrc ? db_err(mrc) : ps__feed_put_record(c->txn, c->st, val, nv->id.data, n);
    free(val);
    if (rc)
        return rc;
    if ((j->cur && (rc = ps__store_counters_add(c->txn, c->st, j->cur, -1))) ||
        (rc = ps__store_counters_add(c->txn, c->st, nv, 1)))
        return rc;
    /* The column projection counts read (store_cols.c) moves with it. */
    if ((rc = ps_cols_update(c->st, c->txn, nv, j->cur)))
        return rc;
    if ((rc = audit_foreign(c, j, nv)))
        return rc;
    j->it->seq = c->seq;
    return PS_OK;
}

static int put_summary(fctx_t *c, const fjob_t *j)
{
    uint8_t key[1 + PS_ID_LEN];
    MDB_val k = {sizeof(key), key}, v = {j->it->summary_len, (void *)j->it->summary};
    int mrc;
    if (!j->it->summary || !j->it->summary_len || j->it->summary_len > PS_MIGRANT_SUMMARY_MAX)
        return PS_OK;
    key[0] = 'S';
    memcpy(key + 1, j->r->id.data, PS_ID_LEN);
    mrc = mdb_put(c->txn, c->st->foreign, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

/* Keeps the received version r as a foreign version merged into ours. */
static int put_foreign_version(fctx_t *c, const fjob_t *j)
{
    uint8_t key[1 + PS_ID_LEN + 16 + PS_ID_LEN];
    MDB_val k = {sizeof(key), key}, v = {j->it->len, (void *)j->it->data};
    rev_ref_t rr;
    int mrc;
    rev_of(j->r->rev, &rr);
    key[0] = 'V';
    memcpy(key + 1, j->r->id.data, PS_ID_LEN);
    be64put(key + 17, rr.gen);
    be64put(key + 25, rr.hlc);
    memcpy(key + 33, rr.node, PS_ID_LEN);
    mrc = mdb_put(c->txn, c->st->foreign, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

/* The version of id with revision want: from `versions` or 'V'. */
static int load_rev(fctx_t *c, const uint8_t *id, const rev_ref_t *want, Popsync__Record **out)
{
    uint8_t fkey[1 + PS_ID_LEN + 16 + PS_ID_LEN];
    MDB_val k, v;
    rev_ref_t got;
    *out = NULL;
    /* Ours: the live version in records or a superseded one (store_versions.h). */
    if (ps__version_get(c->txn, c->st, id, want->gen, &v) == PS_OK && v.mv_data &&
        unpack_rec(v.mv_data, v.mv_size, out) == PS_OK) {
        rev_of((*out)->rev, &got);
        if (rev_eq(&got, want))
            return PS_OK;
        ps_msg_free(&(*out)->base);
        *out = NULL;
    }
    fkey[0] = 'V';
    memcpy(fkey + 1, id, PS_ID_LEN);
    be64put(fkey + 17, want->gen);
    be64put(fkey + 25, want->hlc);
    memcpy(fkey + 33, want->node, PS_ID_LEN);
    k.mv_size = sizeof(fkey);
    k.mv_data = fkey;
    if (mdb_get(c->txn, c->st->foreign, &k, &v) == 0)
        return unpack_rec(v.mv_data, v.mv_size, out);
    return PS_OK;
}

/* The newest revision both lineages hold (by gen, then time), loaded. */
static int common_base(fctx_t *c, fjob_t *j, const lineage_t *ours, const lineage_t *theirs)
{
    const rev_ref_t *best = NULL;
    for (size_t i = 0; i < theirs->n; i++)
        if (lineage_has(ours, &theirs->r[i]) &&
            (!best || theirs->r[i].gen > best->gen ||
             (theirs->r[i].gen == best->gen && rev_later(&theirs->r[i], best))))
            best = &theirs->r[i];
    return best ? load_rev(c, j->r->id.data, best, &j->base) : PS_OK;
}

/* Concurrent versions: each district merges them in the same order (the
 * earlier revision as theirs, the later as mine and winning), so both
 * reach the same body and the same new revision. */
static int merge_concurrent(fjob_t *j)
{
    rev_ref_t a, b;
    const Popsync__Record *earlier, *later;
    int rc;
    rev_of(j->cur->rev, &a);
    rev_of(j->r->rev, &b);
    later = rev_later(&b, &a) ? j->r : j->cur;
    earlier = later == j->r ? j->cur : j->r;
    if ((rc = ps_merge(j->base, earlier, later, 1, &j->m)))
        return rc;
    j->have_merge = 1;
    j->nv = j->m.outcome == PS_MERGE_KEEP_WHOLE ? *earlier : j->m.merged;
    popsync__rev__init(&j->nrev);
    j->nrev.gen = (a.gen > b.gen ? a.gen : b.gen) + 1;
    j->nrev.hlc = later->rev->hlc;
    j->nrev.node = later->rev->node;
    j->nv.rev = &j->nrev;
    j->nv.updated_ms = later->updated_ms;
    j->nv.changed_by = later->changed_by;
    return PS_OK;
}

/* What the sender changed against the base must be its to change
 * (common/policy.h ps_policy_district_may_set).  0: refused (why set). */
static int sender_may(fjob_t *j)
{
    const Popsync__Record *was = j->base;
    const char *changed[PS_MERGE_MAX_FIELDS];
    size_t n;
    if (!was) {
        if (j->sender_owns)
            return 1;
        refuse(j, "", "no common version with the sender: only the owner district may replace the case");
        return 0;
    }
    n = ps_merge_diff(was, j->r, changed, PS_MERGE_MAX_FIELDS);
    for (size_t i = 0; i < n; i++)
        if (!ps_policy_district_may_set(j->sender_owns, changed[i])) {
            refuse(j, changed[i], "the district of the other place may set only submitted_date and feedback_date");
            return 0;
        }
    if (was->deleted != j->r->deleted && !ps_policy_district_may_set(j->sender_owns, "deleted")) {
        refuse(j, "deleted", "the district of the other place may not delete or restore the case");
        return 0;
    }
    return 1;
}

static int validate(fctx_t *c, fjob_t *j, const Popsync__Record *nv)
{
    ps_validate_ctx_t vctx;
    ps_verrs_t verrs;
    /* A version that takes the case out of our district altogether is the
     * owner's to judge: we only learn that our townships lose it. */
    if (!in_home(c, nv->orgunit) && !in_home(c, other_place(nv)))
        return 1;
    memset(&vctx, 0, sizeof(vctx));
    memset(&verrs, 0, sizeof(verrs));
    vctx.units = c->st->opts.units;
    vctx.current = j->cur;
    vctx.today = c->today;
    vctx.ref_exists = ref_exists;
    vctx.ref_arg = c;
    vctx.from_upstream = 1;
    if (ps_validate_record(nv, &vctx, &verrs) == 0)
        return 1;
    refuse(j, verrs.e[0].field, verrs.e[0].reason);
    return 0;
}

/* Packs and writes j->nv (a merged or received version). */
static int store_nv(fctx_t *c, fjob_t *j)
{
    size_t n;
    uint8_t *p;
    int rc;
    if (!j->have_merge)
        return write_version(c, &j->nv, j->it->data, j->it->len, j);
    n = protobuf_c_message_get_packed_size(&j->nv.base);
    if (!(p = malloc(n ? n : 1)))
        return PS_ENOMEM;
    protobuf_c_message_pack(&j->nv.base, p);
    rc = write_version(c, &j->nv, p, n, j);
    free(p);
    if (rc == PS_OK)
        rc = put_foreign_version(c, j);
    return rc;
}

/* A case we do not hold: taken only when its owner district sends it to
 * one of our units. */
static int foreign_new(fctx_t *c, fjob_t *j)
{
    const Popsync__Record *r = j->r;
    int rc;
    if (r->deleted || !in_home(c, other_place(r)) || in_home(c, r->orgunit) || !j->sender_owns)
        return PS_OK; /* IGNORED */
    if (!validate(c, j, r))
        return PS_OK;
    j->nv = *r;
    j->it->outcome = PS_FOREIGN_STORED;
    return (rc = put_summary(c, j)) ? rc : store_nv(c, j);
}

static int foreign_known(fctx_t *c, fjob_t *j)
{
    static _Thread_local lineage_t ours, theirs;
    rev_ref_t cr, rr;
    int rc;

    /* Ours (we own it): the sender must be its other place's district;
     * another district's: the sender must own it. */
    if (in_home(c, j->cur->orgunit)) {
        if (!ps_foreign_in_district(other_place(j->cur), j->it->district))
            return PS_OK;
        j->sender_owns = 0;
    } else if (!ps_foreign_in_district(j->cur->orgunit, j->it->district)) {
        return PS_OK;
    }
    rev_of(j->cur->rev, &cr);
    rev_of(j->r->rev, &rr);
    if (rev_eq(&cr, &rr)) {
        j->it->outcome = PS_FOREIGN_SAME;
        return put_summary(c, j);
    }
    if ((rc = lineage_of(c->st, c->txn, j->r->id.data, j->cur, &ours)))
        return rc;
    if (lineage_has(&ours, &rr)) {
        j->it->outcome = PS_FOREIGN_OLDER;
        return PS_OK;
    }
    theirs.n = 0;
    lineage_add(&theirs, &rr);
    lineage_parse(j->it->lineage, &theirs);
    if (lineage_has(&theirs, &cr)) {
        j->base = j->cur;
        j->base_is_cur = 1;
        j->nv = *j->r;
        j->it->outcome = PS_FOREIGN_STORED;
    } else {
        if ((rc = common_base(c, j, &ours, &theirs)) || (rc = merge_concurrent(j)))
            return rc;
        j->it->outcome = PS_FOREIGN_MERGED;
    }
    if (!sender_may(j) || !validate(c, j, &j->nv))
        return PS_OK;
    if ((rc = put_summary(c, j)))
        return rc;
    return store_nv(c, j);
}

static int foreign_one(fctx_t *c, ps_foreign_item_t *it)
{
    fjob_t j;
    MDB_val k, v;
    int mrc, rc = PS_OK;

    memset(&j, 0, sizeof(j));
    j.it = it;
    it->outcome = PS_FOREIGN_IGNORED;
    it->why[0] = '\0';
    it->seq = 0;
    if (unpack_rec(it->data, it->len, &j.r) || j.r->id.len != PS_ID_LEN || !j.r->rev ||
        j.r->kind != POPSYNC__KIND__KIND_MIGRATION || !j.r->orgunit || !ps_orgunit_valid(j.r->orgunit) ||
        !ps_orgunit_valid(it->district)) {
        refuse(&j, "record", "not a migration record with an id, a revision and a unit");
        goto out;
    }
    j.sender_owns = ps_foreign_in_district(j.r->orgunit, it->district);
    k.mv_size = PS_ID_LEN;
    k.mv_data = j.r->id.data;
    mrc = mdb_get(c->txn, c->st->records, &k, &v);
    if (mrc == 0 && v.mv_size > REC_HDR) {
        memcpy(j.cur_hdr, v.mv_data, REC_HDR);
        if ((rc = unpack_rec((const uint8_t *)v.mv_data + REC_HDR, v.mv_size - REC_HDR, &j.cur)))
            goto out;
        if (j.cur->kind != POPSYNC__KIND__KIND_MIGRATION) {
            refuse(&j, "id", "is a record of another kind here");
            goto out;
        }
        rc = foreign_known(c, &j);
    } else if (mrc == 0 || mrc == MDB_NOTFOUND) {
        rc = foreign_new(c, &j);
    } else {
        rc = db_err(mrc);
    }
out:
    if (j.have_merge)
        ps_merge_free(&j.m);
    if (j.base && !j.base_is_cur)
        ps_msg_free(&j.base->base);
    if (j.cur)
        ps_msg_free(&j.cur->base);
    if (j.r)
        ps_msg_free(&j.r->base);
    return rc;
}

int ps_store_foreign_apply(ps_store_t *st, const char *home, ps_foreign_item_t *items, size_t n)
{
    fctx_t c;
    uint8_t headv[8];
    MDB_val hk = {4, "head"}, hv;
    int mrc, rc = PS_OK;

    memset(&c, 0, sizeof(c));
    c.st = st;
    c.home = home;
    c.now_ms = ps_now_ms();
    c.today = ps_tz_date(&st->opts.tz, c.now_ms);
    ps_buf_init(&c.scratch);
    if ((mrc = txn_begin_locked(st, 0, &c.txn)))
        return db_err(mrc);
    /* The head inside the write transaction: the group commit is the
     * other writer, and LMDB's writer lock orders us. */
    mrc = mdb_get(c.txn, st->meta, &hk, &hv);
    if (mrc == 0 && hv.mv_size == 8)
        c.seq = be64get(hv.mv_data);
    else if (mrc && mrc != MDB_NOTFOUND) {
        rc = db_err(mrc);
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = foreign_one(&c, &items[i])))
            goto fail;
    if ((rc = ps_audit_seal(&c.audit, c.txn, st)))
        goto fail;
    be64put(headv, c.seq);
    hv.mv_size = 8;
    hv.mv_data = headv;
    if ((mrc = mdb_put(c.txn, st->meta, &hk, &hv, 0))) {
        rc = db_err(mrc);
        goto fail;
    }
    mrc = mdb_txn_commit(c.txn);
    pthread_rwlock_unlock(&st->resize);
    ps_audit_batch_free(&c.audit);
    ps_buf_free(&c.scratch);
    if (mrc)
        return db_err(mrc);
    ps_store_head_advance(st, c.seq);
    return PS_OK;
fail:
    ro_end(st, c.txn);
    ps_audit_batch_free(&c.audit);
    ps_buf_free(&c.scratch);
    return rc;
}

/* ---- the rebuild (`popsyncd rebuild --from-upstream`, docs/upstream.md §6) ------- */

static void lineage_key(uint8_t *key, const uint8_t *id)
{
    key[0] = 'L';
    memcpy(key + 1, id, PS_ID_LEN);
}

int ps__foreign_rebuild_lineage(MDB_txn *txn, ps_store_t *st, const uint8_t *id, const char *lineage)
{
    uint8_t key[1 + PS_ID_LEN];
    MDB_val k = {sizeof(key), key}, v = {lineage ? strlen(lineage) : 0, (void *)lineage};
    int mrc;
    lineage_key(key, id);
    /* The newest version written wins: it is the one the store keeps. */
    mrc = v.mv_size ? mdb_put(txn, st->foreign, &k, &v, 0) : mdb_del(txn, st->foreign, &k, NULL);
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
}

/* Is revision rr the revision of our own version rr->gen of id? */
static int own_version(MDB_txn *txn, ps_store_t *st, const uint8_t *id, const rev_ref_t *rr)
{
    Popsync__Record *r = NULL;
    rev_ref_t got;
    MDB_val v;
    int same = 0;
    if (ps__version_get(txn, st, id, rr->gen, &v) == PS_OK && v.mv_data &&
        unpack_rec(v.mv_data, v.mv_size, &r) == PS_OK) {
        rev_of(r->rev, &got);
        same = rev_eq(&got, rr);
    }
    if (r)
        ps_msg_free(&r->base);
    return same;
}

/* One other district's message: restores what it left in `foreign`. */
static int rebuild_foreign_one(fctx_t *c, const ps_foreign_item_t *it, size_t *kept)
{
    static _Thread_local lineage_t published;
    static _Thread_local char text[PS_LINEAGE_TEXT_MAX + 1];
    uint8_t key[1 + PS_ID_LEN];
    MDB_val k = {sizeof(key), key}, v;
    fjob_t j;
    rev_ref_t rr;
    int mrc, rc = PS_OK;

    memset(&j, 0, sizeof(j));
    j.it = (ps_foreign_item_t *)it;
    if (unpack_rec(it->data, it->len, &j.r) || j.r->id.len != PS_ID_LEN || !j.r->rev ||
        j.r->kind != POPSYNC__KIND__KIND_MIGRATION)
        goto out;
    lineage_key(key, j.r->id.data);
    if ((mrc = mdb_get(c->txn, c->st->foreign, &k, &v)) || v.mv_size > PS_LINEAGE_TEXT_MAX) {
        rc = mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
        goto out;
    }
    memcpy(text, v.mv_data, v.mv_size);
    text[v.mv_size] = '\0';
    published.n = 0;
    lineage_parse(text, &published);
    rev_of(j.r->rev, &rr);
    if (!lineage_has(&published, &rr))
        goto out; /* a version our case never contained: refused, ignored or older */
    /* As the consumer did when it took the version: its summary ... */
    if ((rc = put_summary(c, &j)))
        goto out;
    /* ... and, when it was merged rather than stored as ours, the version. */
    if (!own_version(c->txn, c->st, j.r->id.data, &rr) && (rc = put_foreign_version(c, &j)))
        goto out;
    (*kept)++;
out:
    if (j.r)
        ps_msg_free(&j.r->base);
    return rc;
}

int ps_store_rebuild_foreign(ps_store_t *st, const ps_foreign_item_t *items, size_t n, size_t *kept)
{
    fctx_t c;
    int mrc, rc = PS_OK;

    memset(&c, 0, sizeof(c));
    c.st = st;
    if ((mrc = txn_begin_locked(st, 0, &c.txn)))
        return db_err(mrc);
    for (size_t i = 0; i < n && rc == PS_OK; i++)
        rc = rebuild_foreign_one(&c, &items[i], kept);
    if (rc) {
        ro_end(st, c.txn);
        return rc;
    }
    mrc = mdb_txn_commit(c.txn);
    pthread_rwlock_unlock(&st->resize);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_store_rebuild_foreign_end(ps_store_t *st)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;

    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    if ((mrc = mdb_cursor_open(txn, st->foreign, &cur)))
        goto fail;
    /* Every 'L' key, each time the first one left (a seek per key: the
     * loop ends when none is). */
    for (;;) {
        k.mv_size = 1;
        k.mv_data = "L";
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (mrc || !k.mv_size || *(const char *)k.mv_data != 'L')
            break;
        if ((mrc = mdb_cursor_del(cur, 0)))
            break;
    }
    mdb_cursor_close(cur);
    if (mrc && mrc != MDB_NOTFOUND)
        goto fail;
    mrc = mdb_txn_commit(txn);
    pthread_rwlock_unlock(&st->resize);
    return mrc ? db_err(mrc) : PS_OK;
fail:
    ro_end(st, txn);
    return db_err(mrc);
}
