/* store_upstream.c - the store side of the upstream stream and of the
 * rebuild from it (store_upstream.h, docs/upstream.md).
 *
 * Owns: meta "upstream_published", the nodes dump format
 *   repeated { klen(2, BE) | key | vlen(4, BE) | value }
 * and the rebuild writes.  Reads only through its own transactions, so the
 * publisher never takes the group commit's path.
 */
#include "store_upstream.h"
#include "store_int.h"
#include "store_cols.h"
#include "store_versions.h"
#include "counters.h"
#include "msg.h"
#include "records.pb-c.h"

#include <stdlib.h>

#define MARK_KEY "upstream_published"

static int meta_get_u64(MDB_txn *txn, ps_store_t *st, const char *key, uint64_t *out)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int mrc = mdb_get(txn, st->meta, &k, &v);
    *out = 0;
    if (mrc == MDB_NOTFOUND)
        return PS_OK;
    if (mrc)
        return db_err(mrc);
    if (v.mv_size != 8)
        return PS_EDB;
    *out = be64get(v.mv_data);
    return PS_OK;
}

static int meta_put_u64(MDB_txn *txn, ps_store_t *st, const char *key, uint64_t val)
{
    uint8_t b[8];
    MDB_val k = {strlen(key), (void *)key}, v = {8, b};
    int mrc;
    be64put(b, val);
    mrc = mdb_put(txn, st->meta, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_store_upstream_mark(ps_store_t *st, uint64_t *seq)
{
    MDB_txn *txn;
    int mrc, rc;
    if ((mrc = ro_begin(st, &txn)))
        return db_err(mrc);
    rc = meta_get_u64(txn, st, MARK_KEY, seq);
    ro_end(st, txn);
    return rc;
}

int ps_store_upstream_set_mark(ps_store_t *st, uint64_t seq)
{
    MDB_txn *txn;
    int mrc, rc;
    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    rc = meta_put_u64(txn, st, MARK_KEY, seq);
    if (rc) {
        ro_end(st, txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    pthread_rwlock_unlock(&st->resize);
    return mrc ? db_err(mrc) : PS_OK;
}

/* Appends the whole `nodes` database to out in the dump format. */
static int nodes_dump(MDB_txn *txn, ps_store_t *st, ps_buf_t *out)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int mrc, rc = PS_OK;
    if ((mrc = mdb_cursor_open(txn, st->nodes, &cur)))
        return db_err(mrc);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint8_t h[6];
        if (k.mv_size > 0xffff || v.mv_size > 0xffffffffu)
            continue;
        h[0] = (uint8_t)(k.mv_size >> 8);
        h[1] = (uint8_t)k.mv_size;
        if ((rc = ps_buf_append(out, h, 2)) || (rc = ps_buf_append(out, k.mv_data, k.mv_size)))
            break;
        h[0] = (uint8_t)(v.mv_size >> 24);
        h[1] = (uint8_t)(v.mv_size >> 16);
        h[2] = (uint8_t)(v.mv_size >> 8);
        h[3] = (uint8_t)v.mv_size;
        if ((rc = ps_buf_append(out, h, 4)) || (rc = ps_buf_append(out, v.mv_data, v.mv_size)))
            break;
    }
    mdb_cursor_close(cur);
    if (!rc && mrc != MDB_NOTFOUND)
        rc = db_err(mrc);
    return rc;
}

/* What a migration shared with another district carries besides the
 * record (docs/upstream.md §7): its id, lineage and migrant summary. */
static int migration_extras(MDB_txn *txn, ps_store_t *st, ps_feed_item_t *it)
{
    Popsync__Record *r = NULL;
    int rc;
    if (ps_msg_unpack_desc(&popsync__record__descriptor, it->packed, it->len, (ProtobufCMessage **)&r))
        return PS_OK; /* published as it is; a consumer refuses what it cannot read */
    memcpy(it->id, r->id.data, r->id.len == 16 ? 16 : 0);
    rc = ps__foreign_lineage(st, txn, it->id, it->lineage, sizeof(it->lineage));
    if (rc == PS_OK && r->id.len == 16)
        rc = ps__foreign_addressees(st, txn, r, it->to, PS_FEED_MAX_TO, &it->nto);
    if (rc == PS_OK && !r->deleted) {
        /* The other place's tree lacks our units: their name goes with it. */
        const ps_orgunit_t *u = st->opts.units && r->orgunit ? ps_orgunits_find(st->opts.units, r->orgunit) : NULL;
        rc = ps__migrant_summary_build(st, txn, r, u ? u->name : NULL, it->migrant, &it->migrant_len);
    }
    ps_msg_free(&r->base);
    return rc;
}

/* Fills it from a feed entry (k, v) in txn. */
static int feed_item(MDB_txn *txn, ps_store_t *st, const MDB_val *k, const MDB_val *v, ps_feed_item_t *it)
{
    MDB_val rk = {PS_ID_LEN, v->mv_data}, rv;
    const uint8_t *h;
    int mrc;

    memset(it, 0, sizeof(*it));
    it->seq = be64get(k->mv_data);
    if (v->mv_size == FEED_EXIT_LEN) {
        it->exit = 1;
        memcpy(it->unit, (const uint8_t *)v->mv_data + 17, 12);
        it->packed = v->mv_data;
        it->len = v->mv_size;
    }
    if ((mrc = mdb_get(txn, st->records, &rk, &rv)))
        return db_err(mrc);
    if (rv.mv_size < REC_HDR)
        return PS_EDB;
    h = rv.mv_data;
    it->hlc_ms = be64get(h + HDR_HLC) >> 16;
    if (it->exit)
        return PS_OK;
    it->kind = h[8];
    it->deleted = (h[9] & REC_DELETED) != 0;
    hdr_unit(h, HDR_UNIT, it->unit);
    hdr_unit(h, HDR_OTHER, it->other);
    it->packed = h + REC_HDR;
    it->len = rv.mv_size - REC_HDR;
    if (it->kind == POPSYNC__KIND__KIND_MIGRATION && it->other[0])
        return migration_extras(txn, st, it);
    return PS_OK;
}

int ps_store_feed_read(ps_store_t *st, uint64_t after, size_t max, ps_feed_fn fn, void *arg, uint64_t *head,
                       ps_buf_t *nodes)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t key[8];
    MDB_val k = {8, key}, v;
    size_t n = 0;
    int mrc, rc = PS_OK;

    if ((mrc = ro_begin(st, &txn)))
        return db_err(mrc);
    if ((rc = meta_get_u64(txn, st, "head", head)))
        goto out;
    if (nodes && (rc = nodes_dump(txn, st, nodes)))
        goto out;
    if ((mrc = mdb_cursor_open(txn, st->feed, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    be64put(key, after + 1);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && n < max;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
        ps_feed_item_t it;
        if ((rc = feed_item(txn, st, &k, &v, &it)) || (rc = fn(&it, arg)))
            goto out;
    }
    if (mrc && mrc != MDB_NOTFOUND)
        rc = db_err(mrc);
out:
    if (cur)
        mdb_cursor_close(cur);
    ro_end(st, txn);
    return rc;
}

int ps_store_feed_behind(ps_store_t *st, uint64_t after, uint64_t *entries, uint64_t *oldest_ms)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t key[8];
    MDB_val k = {8, key}, v;
    int mrc, rc = PS_OK;

    *entries = *oldest_ms = 0;
    if ((mrc = ro_begin(st, &txn)))
        return db_err(mrc);
    if ((mrc = mdb_cursor_open(txn, st->feed, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    be64put(key, after + 1);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (*entries == 0) {
            ps_feed_item_t it;
            if ((rc = feed_item(txn, st, &k, &v, &it)))
                goto out;
            *oldest_ms = it.hlc_ms;
        }
        (*entries)++;
    }
    if (mrc != MDB_NOTFOUND)
        rc = db_err(mrc);
out:
    if (cur)
        mdb_cursor_close(cur);
    ro_end(st, txn);
    return rc;
}

/* --- rebuild ------------------------------------------------------------------- */

/* Adds sign times a record's report contributions to the counters, read-
 * modify-write (a rebuild is offline: no batching needed).  The key layout
 * is store.c's (store.h: month(4)|unit(12)|indicator). */
int ps__store_counters_add(MDB_txn *txn, ps_store_t *st, const Popsync__Record *r, int sign)
{
    ps_contrib_t cs[PS_CONTRIB_MAX];
    size_t n = counts_here(st, r) ? ps_counters_contrib(r, cs, PS_CONTRIB_MAX) : 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t key[4 + 12 + 32], val[8];
        size_t ml = strnlen(cs[i].metric, 32);
        MDB_val k = {16 + ml, key}, v;
        int64_t cur = 0;
        int mrc;
        key[0] = (uint8_t)(cs[i].month >> 24);
        key[1] = (uint8_t)(cs[i].month >> 16);
        key[2] = (uint8_t)(cs[i].month >> 8);
        key[3] = (uint8_t)cs[i].month;
        memcpy(key + 4, cs[i].unit, 12);
        memcpy(key + 16, cs[i].metric, ml);
        mrc = mdb_get(txn, st->counters, &k, &v);
        if (mrc == 0 && v.mv_size == 8)
            cur = (int64_t)be64get(v.mv_data);
        else if (mrc && mrc != MDB_NOTFOUND)
            return db_err(mrc);
        cur += sign * cs[i].value;
        if (cur == 0) {
            mrc = mdb_del(txn, st->counters, &k, NULL);
            if (mrc && mrc != MDB_NOTFOUND)
                return db_err(mrc);
            continue;
        }
        be64put(val, (uint64_t)cur);
        v.mv_size = 8;
        v.mv_data = val;
        if ((mrc = mdb_put(txn, st->counters, &k, &v, 0)))
            return db_err(mrc);
    }
    return PS_OK;
}

/* The stored version of r's id (its header and record), or *old = NULL. */
static int old_version(MDB_txn *txn, ps_store_t *st, const Popsync__Record *r, MDB_val *ov, Popsync__Record **old)
{
    MDB_val k = {PS_ID_LEN, r->id.data};
    int mrc = mdb_get(txn, st->records, &k, ov);
    *old = NULL;
    if (mrc == MDB_NOTFOUND)
        return PS_OK;
    if (mrc)
        return db_err(mrc);
    if (ov->mv_size < REC_HDR)
        return PS_EDB;
    *old = popsync__record__unpack(NULL, ov->mv_size - REC_HDR, (const uint8_t *)ov->mv_data + REC_HDR);
    return *old ? PS_OK : PS_EDB;
}

static int rebuild_record(MDB_txn *txn, ps_store_t *st, const ps_rebuild_item_t *it, size_t *bad)
{
    Popsync__Record *r, *old = NULL;
    MDB_val ov, k, v;
    uint8_t *val = NULL;
    const char *other;
    int mrc, rc = PS_OK;

    r = popsync__record__unpack(NULL, it->len, it->data);
    if (!r || r->id.len != PS_ID_LEN || !r->rev || !r->orgunit || strlen(r->orgunit) != 12) {
        (*bad)++;
        goto out;
    }
    if ((rc = old_version(txn, st, r, &ov, &old)))
        goto out;
    if (old && be64get(ov.mv_data) >= it->seq)
        goto out; /* a resend of an older change: the stored one is newer */
    if (old && ((rc = ps__feed_drop(txn, st, ov.mv_data)) || (rc = ps__store_counters_add(txn, st, old, -1))))
        goto out;
    if (old) {
        /* The stored version is superseded: it moves to versions, the new
         * one lives in records only (store_versions.h). */
        ps_buf_t copy;
        ps_buf_init(&copy);
        rc = ps__version_supersede(txn, st, r->id.data, &copy);
        ps_buf_free(&copy);
        if (rc)
            goto out;
    }
    if (!(val = malloc(REC_HDR + it->len))) {
        rc = PS_ENOMEM;
        goto out;
    }
    other = other_place(r);
    be64put(val, it->seq);
    val[8] = (uint8_t)r->kind;
    val[9] = r->deleted ? REC_DELETED : 0;
    memcpy(val + HDR_UNIT, r->orgunit, 12);
    memset(val + HDR_OTHER, 0, 12);
    memcpy(val + HDR_OTHER, other, strlen(other));
    be64put(val + HDR_GEN, r->rev->gen);
    be64put(val + HDR_HLC, r->rev->hlc);
    memcpy(val + REC_HDR, it->data, it->len);
    k.mv_size = PS_ID_LEN;
    k.mv_data = r->id.data;
    v.mv_size = REC_HDR + it->len;
    v.mv_data = val;
    if ((mrc = mdb_put(txn, st->records, &k, &v, 0)))
        goto dberr;
    if ((rc = ps__feed_put_record(txn, st, val, r->id.data, it->len)))
        goto out;
    /* Every index the apply path keeps is kept here too: the ID-number
     * index (a rebuilt district must still refuse a second registration)
     * and the projection counts read (store_cols.c). */
    if ((rc = ps__store_counters_add(txn, st, r, 1)) == PS_OK && (rc = ps_idnum_update(st, txn, r, old)) == PS_OK)
        rc = ps_cols_update(st, txn, r, old);
    /* A shared case's lineage says which other districts' versions it
     * contains: the rebuild's second pass restores `foreign` from it. */
    if (rc == PS_OK && r->kind == POPSYNC__KIND__KIND_MIGRATION)
        rc = ps__foreign_rebuild_lineage(txn, st, r->id.data, it->lineage);
    goto out;
dberr:
    if (!rc)
        rc = db_err(mrc);
out:
    free(val);
    if (old)
        popsync__record__free_unpacked(old, NULL);
    if (r)
        popsync__record__free_unpacked(r, NULL);
    return rc;
}

static int rebuild_exit(MDB_txn *txn, ps_store_t *st, const ps_rebuild_item_t *it, size_t *bad)
{
    char unit[13];
    if (it->len != FEED_EXIT_LEN || it->data[16] != FEED_TAG_EXIT) {
        (*bad)++;
        return PS_OK;
    }
    hdr_unit(it->data, 17, unit);
    return ps__feed_put_exit(txn, st, it->seq, it->data, unit);
}

int ps_store_rebuild_put(ps_store_t *st, const ps_rebuild_item_t *items, size_t n, size_t *bad)
{
    MDB_txn *txn;
    uint64_t head;
    int mrc, rc = PS_OK;

    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    if ((rc = meta_get_u64(txn, st, "head", &head)))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        rc = items[i].exit ? rebuild_exit(txn, st, &items[i], bad) : rebuild_record(txn, st, &items[i], bad);
        if (rc)
            goto fail;
        if (items[i].seq > head)
            head = items[i].seq;
    }
    if ((rc = meta_put_u64(txn, st, "head", head)) || (rc = meta_put_u64(txn, st, MARK_KEY, head)))
        goto fail;
    mrc = mdb_txn_commit(txn);
    pthread_rwlock_unlock(&st->resize);
    if (mrc)
        return db_err(mrc);
    pthread_mutex_lock(&st->head_lock);
    st->head = head;
    pthread_mutex_unlock(&st->head_lock);
    return PS_OK;
fail:
    ro_end(st, txn);
    return rc;
}

int ps_store_rebuild_nodes(ps_store_t *st, const uint8_t *dump, size_t len)
{
    MDB_txn *txn;
    size_t off = 0;
    int mrc, rc = PS_OK;

    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    if ((mrc = mdb_drop(txn, st->nodes, 0)))
        goto dberr;
    while (off < len) {
        MDB_val k, v;
        size_t kl, vl;
        if (len - off < 2)
            goto bad;
        kl = (size_t)dump[off] << 8 | dump[off + 1];
        off += 2;
        if (len - off < kl + 4)
            goto bad;
        k.mv_size = kl;
        k.mv_data = (void *)(dump + off);
        off += kl;
        vl = (size_t)dump[off] << 24 | (size_t)dump[off + 1] << 16 | (size_t)dump[off + 2] << 8 | dump[off + 3];
        off += 4;
        if (len - off < vl)
            goto bad;
        v.mv_size = vl;
        v.mv_data = (void *)(dump + off);
        off += vl;
        if ((mrc = mdb_put(txn, st->nodes, &k, &v, 0)))
            goto dberr;
    }
    mrc = mdb_txn_commit(txn);
    pthread_rwlock_unlock(&st->resize);
    return mrc ? db_err(mrc) : PS_OK;
bad:
    rc = PS_EPROTO;
    goto fail;
dberr:
    rc = db_err(mrc);
fail:
    ro_end(st, txn);
    return rc;
}

int ps_store_rebuild_advance(ps_store_t *st, uint64_t advance, uint64_t *head)
{
    MDB_txn *txn;
    int mrc, rc;

    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    if ((rc = meta_get_u64(txn, st, "head", head)))
        goto fail;
    *head += advance;
    if ((rc = meta_put_u64(txn, st, "head", *head)) || (rc = meta_put_u64(txn, st, MARK_KEY, *head)))
        goto fail;
    mrc = mdb_txn_commit(txn);
    pthread_rwlock_unlock(&st->resize);
    if (mrc)
        return db_err(mrc);
    pthread_mutex_lock(&st->head_lock);
    st->head = *head;
    pthread_mutex_unlock(&st->head_lock);
    return PS_OK;
fail:
    ro_end(st, txn);
    return rc;
}
