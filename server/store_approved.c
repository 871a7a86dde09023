/* store_approved.c - part of the store: the approved months a peer's
 * records count in.
 *
 * Owns: reading the closes database for Welcome.approved_months, so that a
 * cache can warn a clerk who adds or edits a record that falls into a month
 * the district has already approved (it will show as a correction of the
 * frozen report, docs/queries.md §5).  Read-only, on the read pool.
 */
#include "store.h"
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

/* Whether the peer's records may count in township town: the town is in
 * its scope (an administrator, a township) or it works inside the town (a
 * field worker). */
static int counts_in(const ps_store_t *st, const ps_peer_t *peer, const char *town)
{
    return within(st, town, peer->orgunit) || within(st, peer->orgunit, town);
}

static int push_month(char ***out, size_t *n, uint32_t month, const char *town)
{
    char **grown, *s;
    if (!(grown = realloc(*out, (*n + 1) * sizeof(**out))))
        return PS_ENOMEM;
    *out = grown;
    if (!(s = malloc(32)))
        return PS_ENOMEM;
    snprintf(s, 32, "%04u-%02u %.12s", month / 100 % 10000, month % 100, town);
    (*out)[(*n)++] = s;
    return PS_OK;
}

int ps_store_approved_months(ps_store_t *st, const ps_peer_t *peer, uint32_t since, char ***out, size_t *n)
{
    uint8_t from[4] = {(uint8_t)(since >> 24), (uint8_t)(since >> 16), (uint8_t)(since >> 8), (uint8_t)since};
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k = {sizeof(from), from}, v;
    int mrc, rc = PS_OK;
    MDB_cursor_op op = MDB_SET_RANGE;

    *out = NULL;
    *n = 0;
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->closes, &cur)))
        goto out;
    for (; rc == PS_OK && *n < PS_APPROVED_MONTHS_MAX && (mrc = mdb_cursor_get(cur, &k, &v, op)) == 0;
         op = MDB_NEXT) {
        const uint8_t *kb = k.mv_data;
        char town[13];
        Popsync__CloseResult *cr = NULL;
        if (k.mv_size != 16)
            continue;
        memcpy(town, kb + 4, 12);
        town[12] = '\0';
        if (!counts_in(st, peer, town) ||
            ps_msg_unpack_desc(&popsync__close_result__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cr))
            continue;
        if (cr->state && strcmp(cr->state, "approved") == 0)
            rc = push_month(out, n, (uint32_t)kb[0] << 24 | (uint32_t)kb[1] << 16 | (uint32_t)kb[2] << 8 | kb[3], town);
        ps_msg_free(&cr->base);
    }
    mrc = mrc == MDB_NOTFOUND ? 0 : mrc;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    if (!rc && mrc)
        rc = db_err(mrc);
    if (rc) {
        ps_store_approved_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

void ps_store_approved_free(char **months, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(months[i]);
    free(months);
}
