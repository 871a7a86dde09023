/* store_history.c - a record's history: its versions and who made them.
 *
 * Owns: the "audit_rec" database, key record id (16) | gen (8, BE), value
 * the n (8, BE) of the audit entry of the change that gave the record that
 * gen; filed by the apply path in the change's own transaction
 * (ps__history_file, from audit_append), and built from the audit log when
 * a store written before it opens.  And ps_store_history (store.h), which
 * answers a HistoryRequest: the record's versions, superseded ones from
 * `versions` and the live one from `records` (so it does not matter
 * whether `versions` also holds the live one), each with its audit entry.
 * Without the index a record's entries could only be found by reading the
 * whole audit log.
 */
#include "store_int.h"

#include "msg.h"

#include <stdlib.h>

#define AUDIT_REC_VERSION 1
#define HISTORY_MAX 100 /* versions in one answer */

int ps__history_file(MDB_txn *txn, ps_store_t *st, const uint8_t *id, uint64_t gen, uint64_t n)
{
    uint8_t key[PS_ID_LEN + 8], val[8];
    MDB_val k = {sizeof(key), key}, v = {sizeof(val), val};
    int mrc;

    memcpy(key, id, PS_ID_LEN);
    be64put(key + PS_ID_LEN, gen);
    be64put(val, n);
    mrc = mdb_put(txn, st->audit_rec, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

/* Files every record entry of the audit log (a store written before the
 * index, or by an older index version). */
static int build(ps_store_t *st, MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_drop(txn, st->audit_rec, 0)) || (mrc = mdb_cursor_open(txn, st->audit, &cur)))
        return db_err(mrc);
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__AuditEntry *e = NULL;
        if (k.mv_size != 8 || ps_msg_unpack_desc(&popsync__audit_entry__descriptor, v.mv_data, v.mv_size,
                                                 (ProtobufCMessage **)&e) != PS_OK)
            continue; /* `popsyncd audit verify` reports it */
        if (e->record_id.len == PS_ID_LEN)
            rc = ps__history_file(txn, st, e->record_id.data, e->gen, be64get(k.mv_data));
        ps_msg_free(&e->base);
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    return mrc == MDB_NOTFOUND ? PS_OK : db_err(mrc);
}

int ps__history_open(ps_store_t *st, MDB_txn *txn)
{
    MDB_val k = {11, "audit_rec_v"}, v;
    uint8_t ver = AUDIT_REC_VERSION;
    int mrc, rc;

    if ((mrc = mdb_dbi_open(txn, "audit_rec", MDB_CREATE, &st->audit_rec)))
        return db_err(mrc);
    if (mdb_get(txn, st->meta, &k, &v) == 0 && v.mv_size == 1 && *(uint8_t *)v.mv_data == AUDIT_REC_VERSION)
        return PS_OK;
    if ((rc = build(st, txn)))
        return rc;
    v.mv_data = &ver;
    v.mv_size = 1;
    mrc = mdb_put(txn, st->meta, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

/* ---- ps_store_history ---------------------------------------------------------- */

/* The answer and everything it points into. */
typedef struct history {
    Popsync__HistoryResult res;
    Popsync__HistoryVersion *v;   /* n of them, res.versions points at them */
    Popsync__HistoryVersion **pv;
    Popsync__Record **rec;        /* the unpacked versions (owned) */
    Popsync__AuditEntry **audit;  /* their entries (owned; NULL: none) */
    size_t n;
} history_t;

static void history_free(void *p)
{
    history_t *h = p;
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        if (h->rec[i])
            ps_msg_free(&h->rec[i]->base);
        if (h->audit[i])
            ps_msg_free(&h->audit[i]->base);
    }
    free(h->v);
    free(h->pv);
    free(h->rec);
    free(h->audit);
    free(h);
}

static history_t *history_new(size_t cap)
{
    history_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    popsync__history_result__init(&h->res);
    h->v = calloc(cap, sizeof(*h->v));
    h->pv = calloc(cap, sizeof(*h->pv));
    h->rec = calloc(cap, sizeof(*h->rec));
    h->audit = calloc(cap, sizeof(*h->audit));
    if (!h->v || !h->pv || !h->rec || !h->audit) {
        history_free(h);
        return NULL;
    }
    return h;
}

/* The audit entry that gave record id its gen, or NULL (none filed: a
 * version written by no push, or an unreadable entry). */
static int audit_of(ps_store_t *st, MDB_txn *txn, const uint8_t *id, uint64_t gen, Popsync__AuditEntry **out)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v;
    int mrc;

    *out = NULL;
    memcpy(key, id, PS_ID_LEN);
    be64put(key + PS_ID_LEN, gen);
    mrc = mdb_get(txn, st->audit_rec, &k, &v);
    if (mrc == 0 && v.mv_size == 8) {
        k = v; /* the audit log's key: n, 8 bytes big-endian */
        mrc = mdb_get(txn, st->audit, &k, &v);
        if (mrc == 0 && ps_msg_unpack_desc(&popsync__audit_entry__descriptor, v.mv_data, v.mv_size,
                                           (ProtobufCMessage **)out) != PS_OK)
            *out = NULL;
    }
    if (mrc == MDB_NOTFOUND || mrc == 0)
        return PS_OK;
    return db_err(mrc);
}

/* Adds version gen of record id (its packed bytes p, n) to h, or counts it
 * in hidden when peer may not read it. */
static int add_version(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, history_t *h, const uint8_t *id,
                       uint64_t gen, const void *p, size_t n)
{
    Popsync__Record *r = NULL;
    Popsync__HistoryVersion *hv = &h->v[h->n];
    const Popsync__AuditEntry *e;
    int rc;

    if (ps_msg_unpack_desc(&popsync__record__descriptor, p, n, (ProtobufCMessage **)&r) != PS_OK)
        return PS_OK; /* `popsyncd verify`'s to report */
    if (!may_read(st, peer, r->orgunit, other_place(r))) {
        ps_msg_free(&r->base);
        h->res.hidden++;
        return PS_OK;
    }
    popsync__history_version__init(hv);
    h->rec[h->n] = r;
    h->pv[h->n] = hv;
    h->n++;
    hv->gen = r->rev ? r->rev->gen : gen;
    hv->hlc = r->rev ? r->rev->hlc : 0;
    if (r->rev)
        hv->node = r->rev->node;
    hv->deleted = r->deleted;
    hv->orgunit = r->orgunit;
    hv->record = r;
    if ((rc = audit_of(st, txn, id, gen, &h->audit[h->n - 1])) || !(e = h->audit[h->n - 1]))
        return rc;
    hv->audited = 1;
    hv->time_ms = e->time_ms;
    hv->action = e->action;
    hv->cert_name = e->cert_name;
    hv->cert_role = e->cert_role;
    hv->cert_orgunit = e->cert_orgunit;
    return PS_OK;
}

/* The versions first..live of the record whose stored value is rv. */
static int read_versions(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, history_t *h, const uint8_t *id,
                         const MDB_val *rv, uint64_t first, uint64_t live)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v;
    int mrc, rc = PS_OK;

    memcpy(key, id, PS_ID_LEN);
    for (uint64_t g = first; g < live && rc == PS_OK; g++) {
        be64put(key + PS_ID_LEN, g);
        mrc = mdb_get(txn, st->versions, &k, &v);
        if (mrc == MDB_NOTFOUND)
            continue;
        if (mrc)
            return db_err(mrc);
        rc = add_version(st, txn, peer, h, id, g, v.mv_data, v.mv_size);
    }
    if (rc == PS_OK)
        rc = add_version(st, txn, peer, h, id, live, (const uint8_t *)rv->mv_data + REC_HDR, rv->mv_size - REC_HDR);
    return rc;
}

int ps_store_history(ps_store_t *st, const ps_peer_t *peer, const ProtobufCBinaryData *id, uint32_t max,
                     ps_store_msg_t *out)
{
    MDB_txn *txn = NULL;
    MDB_val k = {PS_ID_LEN, id->data}, rv;
    history_t *h;
    uint64_t live, first;
    int mrc, rc = PS_OK;

    memset(out, 0, sizeof(*out));
    if (max == 0 || max > HISTORY_MAX)
        max = HISTORY_MAX;
    if (!(h = history_new(max)))
        return PS_ENOMEM;
    if ((mrc = ro_begin(st, &txn))) {
        history_free(h);
        return db_err(mrc);
    }
    /* A record the peer may not read now answers as one that does not
     * exist: no versions, no counts (docs/security.md §8.3). */
    if (id->len == PS_ID_LEN && (mrc = mdb_get(txn, st->records, &k, &rv)) == 0 && rv.mv_size >= REC_HDR &&
        may_read_hdr(st, peer, rv.mv_data)) {
        live = be64get((const uint8_t *)rv.mv_data + HDR_GEN);
        first = live > max ? live - max + 1 : 1;
        h->res.earlier = (uint32_t)(first - 1 > UINT32_MAX ? UINT32_MAX : first - 1);
        rc = read_versions(st, txn, peer, h, id->data, &rv, first, live);
    } else if (id->len == PS_ID_LEN && mrc && mrc != MDB_NOTFOUND) {
        rc = db_err(mrc);
    }
    ro_end(st, txn);
    if (rc) {
        history_free(h);
        return rc;
    }
    h->res.n_versions = h->n;
    h->res.versions = h->pv;
    out->msg = &h->res.base;
    out->release = history_free;
    out->priv = h;
    return PS_OK;
}
