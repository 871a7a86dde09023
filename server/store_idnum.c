/* store_idnum.c - the district's ID-number index (see store_int.h).
 *
 * One LMDB database, "idnum": key id_number (18) | record id (16), value
 * the record's unit (12), one entry per live person with an 18-character
 * ID number.  The key holds the record id so that two records with one
 * number (stored before the rule, or by an older server) both stay filed:
 * the index never hides a record, the quality report lists the pair, and
 * only a new registration is refused.
 */
#include "store_int.h"

#include "ids.h"
#include "msg.h"
#include "validate.h"

#include <stdio.h>

#define IDN_LEN 18
#define IDNUM_VERSION 1

uint64_t ps__idnum_writes;

/* The ID number r is filed under, or NULL: live persons with a whole one. */
static const char *filed_number(const Popsync__Record *r)
{
    if (!r || r->deleted || r->body_case != POPSYNC__RECORD__BODY_PERSON || !r->person || !r->person->id_number ||
        strlen(r->person->id_number) != IDN_LEN)
        return NULL;
    return r->person->id_number;
}

static void idnum_key(uint8_t key[IDN_LEN + PS_ID_LEN], const char *number, const uint8_t *id)
{
    memcpy(key, number, IDN_LEN);
    memcpy(key + IDN_LEN, id, PS_ID_LEN);
}

static int idnum_put(ps_store_t *st, MDB_txn *txn, const char *number, const uint8_t *id, const char *unit)
{
    uint8_t key[IDN_LEN + PS_ID_LEN], val[12];
    MDB_val k = {sizeof(key), key}, v = {sizeof(val), val};
    size_t ul = strlen(unit);
    int mrc;

    idnum_key(key, number, id);
    memset(val, 0, sizeof(val));
    memcpy(val, unit, ul < sizeof(val) ? ul : sizeof(val));
    mrc = mdb_put(txn, st->idnum, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

/* Fills the index from the records when it is missing or older, in the
 * open transaction: a store written before the index (duplicates and all)
 * opens and serves. */
int ps_idnum_open(ps_store_t *st, MDB_txn *txn)
{
    MDB_val k = {7, "idnum_v"}, v;
    MDB_cursor *cur = NULL;
    uint8_t ver = IDNUM_VERSION;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_dbi_open(txn, "idnum", MDB_CREATE, &st->idnum)))
        return db_err(mrc);
    if (mdb_get(txn, st->meta, &k, &v) == 0 && v.mv_size == 1 && *(uint8_t *)v.mv_data == IDNUM_VERSION)
        return PS_OK;
    if ((mrc = mdb_drop(txn, st->idnum, 0)) || (mrc = mdb_cursor_open(txn, st->records, &cur)))
        return db_err(mrc);
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        const uint8_t *h = v.mv_data;
        Popsync__Record *r = NULL;
        const char *number;
        char unit[13];
        if (v.mv_size < REC_HDR || (h[9] & REC_DELETED) || h[8] != POPSYNC__KIND__KIND_PERSON || k.mv_size != PS_ID_LEN)
            continue;
        if (ps_msg_unpack_desc(&popsync__record__descriptor, h + REC_HDR, v.mv_size - REC_HDR,
                               (ProtobufCMessage **)&r) != PS_OK)
            continue; /* unreadable records are the verify command's to report */
        hdr_unit(h, HDR_UNIT, unit);
        if ((number = filed_number(r)))
            rc = idnum_put(st, txn, number, k.mv_data, unit);
        ps_msg_free(&r->base);
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    if (mrc != MDB_NOTFOUND)
        return db_err(mrc);
    k.mv_data = "idnum_v";
    k.mv_size = 7;
    v.mv_data = &ver;
    v.mv_size = 1;
    mrc = mdb_put(txn, st->meta, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

/* Another live person filed under nv's number, when nv newly takes it
 * (created, restored, or its number changed): a per-record error on
 * id_number naming that record's id and unit, nothing else of it. */
int ps_idnum_check(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, const Popsync__Record *cur,
                   ps_verrs_t *verrs)
{
    const char *number = filed_number(nv), *old = filed_number(cur);
    uint8_t key[IDN_LEN + PS_ID_LEN];
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int mrc;

    if (!number || (old && strcmp(old, number) == 0))
        return PS_OK;
    if ((mrc = mdb_cursor_open(txn, st->idnum, &c)))
        return db_err(mrc);
    memset(key, 0, sizeof(key));
    memcpy(key, number, IDN_LEN);
    k.mv_size = sizeof(key);
    k.mv_data = key;
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        char id[PS_UUID_STR], unit[13];
        if (k.mv_size != sizeof(key) || memcmp(k.mv_data, number, IDN_LEN) != 0)
            break;
        if (memcmp((uint8_t *)k.mv_data + IDN_LEN, nv->id.data, PS_ID_LEN) == 0)
            continue;
        ps_uuid_format((uint8_t *)k.mv_data + IDN_LEN, id);
        memset(unit, 0, sizeof(unit));
        memcpy(unit, v.mv_data, v.mv_size < 12 ? v.mv_size : 12);
        ps_verrs_add(verrs, "id_number",
                     "is already registered: record %s in unit %s; a person is registered once in the district: "
                     "merge the two with popsync merge, or correct the ID number",
                     id, unit);
        break;
    }
    mdb_cursor_close(c);
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
}

/* Moves the record's entry from what cur was filed under to nv's, in the
 * transaction that stores nv. */
int ps_idnum_update(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, const Popsync__Record *cur)
{
    const char *number = filed_number(nv), *old = filed_number(cur);
    uint8_t key[IDN_LEN + PS_ID_LEN];
    int mrc;

    if (old && (!number || strcmp(old, number) != 0 || strcmp(cur->orgunit, nv->orgunit) != 0)) {
        MDB_val k = {sizeof(key), key};
        ps__idnum_writes++;
        idnum_key(key, old, cur->id.data);
        mrc = mdb_del(txn, st->idnum, &k, NULL);
        if (mrc && mrc != MDB_NOTFOUND)
            return db_err(mrc);
    }
    /* An edit that keeps the number and the unit leaves the entry as it is. */
    if (number && (!old || strcmp(old, number) != 0 || strcmp(cur->orgunit, nv->orgunit) != 0)) {
        ps__idnum_writes++;
        return idnum_put(st, txn, number, nv->id.data, nv->orgunit ? nv->orgunit : "");
    }
    return PS_OK;
}
