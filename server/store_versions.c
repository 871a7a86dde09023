/* store_versions.c - a record's versions: live in `records`, superseded in
 * `versions` (store_versions.h). */
#include "store_versions.h"

static void version_key(uint8_t key[PS_ID_LEN + 8], const uint8_t *id, uint64_t gen)
{
    memcpy(key, id, PS_ID_LEN);
    be64put(key + PS_ID_LEN, gen);
}

int ps__version_supersede(MDB_txn *txn, ps_store_t *st, const uint8_t *id, ps_buf_t *scratch)
{
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    uint8_t key[PS_ID_LEN + 8];
    int mrc, rc;

    mrc = mdb_get(txn, st->records, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return PS_OK;
    if (mrc)
        return db_err(mrc);
    if (v.mv_size < REC_HDR)
        return PS_EDB;
    version_key(key, id, be64get((const uint8_t *)v.mv_data + HDR_GEN));
    /* A put may spill dirty pages and move the value: copy it first. */
    ps_buf_reset(scratch);
    if ((rc = ps_buf_append(scratch, (const uint8_t *)v.mv_data + REC_HDR, v.mv_size - REC_HDR)))
        return rc;
    k.mv_size = sizeof(key);
    k.mv_data = key;
    v.mv_size = ps_buf_size(scratch);
    v.mv_data = ps_buf_head(scratch);
    mrc = mdb_put(txn, st->versions, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps__version_keep(MDB_txn *txn, ps_store_t *st, const uint8_t *id, uint64_t gen, const uint8_t *rec, size_t len)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v = {len, (void *)rec};
    int mrc;
    version_key(key, id, gen);
    mrc = mdb_put(txn, st->versions, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

/* The live version of id: its header and payload, or {0, NULL}. */
static int live_get(MDB_txn *txn, ps_store_t *st, const uint8_t *id, MDB_val *out)
{
    MDB_val k = {PS_ID_LEN, (void *)id};
    int mrc = mdb_get(txn, st->records, &k, out);
    if (mrc == MDB_NOTFOUND || (mrc == 0 && out->mv_size < REC_HDR)) {
        out->mv_size = 0;
        out->mv_data = NULL;
        return mrc ? PS_OK : PS_EDB;
    }
    return mrc ? db_err(mrc) : PS_OK;
}

int ps__version_get(MDB_txn *txn, ps_store_t *st, const uint8_t *id, uint64_t gen, MDB_val *out)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key};
    int mrc, rc;

    if ((rc = live_get(txn, st, id, out)))
        return rc;
    if (out->mv_data && be64get((const uint8_t *)out->mv_data + HDR_GEN) == gen) {
        out->mv_data = (uint8_t *)out->mv_data + REC_HDR;
        out->mv_size -= REC_HDR;
        return PS_OK;
    }
    version_key(key, id, gen);
    mrc = mdb_get(txn, st->versions, &k, out);
    if (mrc == MDB_NOTFOUND) {
        out->mv_size = 0;
        out->mv_data = NULL;
        return PS_OK;
    }
    return mrc ? db_err(mrc) : PS_OK;
}

int ps__versions_each(MDB_txn *txn, ps_store_t *st, const uint8_t *id, ps_version_fn fn, void *arg)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v, live;
    MDB_cursor *cur = NULL;
    uint64_t live_gen = 0;
    int mrc, rc;

    if ((rc = live_get(txn, st, id, &live)))
        return rc;
    if (live.mv_data)
        live_gen = be64get((const uint8_t *)live.mv_data + HDR_GEN);
    if ((mrc = mdb_cursor_open(txn, st->versions, &cur)))
        return db_err(mrc);
    version_key(key, id, 0);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t gen;
        if (k.mv_size != PS_ID_LEN + 8 || memcmp(k.mv_data, id, PS_ID_LEN) != 0)
            break;
        gen = be64get((const uint8_t *)k.mv_data + PS_ID_LEN);
        if (live.mv_data && gen >= live_gen)
            break; /* an old data directory's copy of the live version */
        if ((rc = fn(gen, v.mv_data, v.mv_size, 0, arg)))
            break;
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    if (mrc && mrc != MDB_NOTFOUND)
        return db_err(mrc);
    if (!live.mv_data)
        return PS_OK;
    /* Read the live one again: fn may have written (the value moves). */
    if ((rc = live_get(txn, st, id, &live)) || !live.mv_data)
        return rc;
    return fn(live_gen, (const uint8_t *)live.mv_data + REC_HDR, live.mv_size - REC_HDR, 1, arg);
}
