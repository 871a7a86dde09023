/* store_conflicts.c - the conflicts' readers and their tallies.
 *
 * Owns: the database `conflict_lost`, which tallies the open (unresolved)
 * conflicts of `conflicts` so that the two questions asked often are
 * lookups instead of a pass over every conflict:
 *   node(16)  -> count(8, BE)  open conflicts in which an edit of node lost
 *                              (no row: none)
 *   "open"    -> count(8, BE)  all open conflicts, with or without a lost node
 * (the total, open or not, is the entry count LMDB keeps for `conflicts`).
 * The apply path (apply.c, the only writer of `conflicts`) moves the
 * tallies with ps__conflicts_tally in the transaction that writes the
 * conflict.  ps__conflicts_open builds them from `conflicts` when a store
 * has none (written before them) or an older popsyncd wrote conflicts
 * since (the mark ps__conflicts_close leaves, meta "conflict_lost_at").
 * And the readers: ps_store_conflicts (the ConflictList answer),
 * ps_store_conflicts_lost (Hello's Welcome), ps_store_conflict_count
 * (metrics) and ps__conflicts_scan, the pass the tallies replace, kept as
 * the reference the unit test and the bench compare them with.
 */
#include "store_int.h"

#include "log.h"
#include "msg.h"

#include <stdlib.h>

#define TALLY_VERSION 1
#define MARK_LEN 16 /* head(8) | entries of `conflicts`(8) */

static const MDB_val k_version = {15, (void *)"conflict_lost_v"};
static const MDB_val k_mark = {16, (void *)"conflict_lost_at"};
static const MDB_val k_open = {4, (void *)"open"};

uint64_t ps__conflicts_builds;

/* The count under key (0 when no row). */
static int tally_get(MDB_txn *txn, ps_store_t *st, const MDB_val *key, uint64_t *n)
{
    MDB_val v;
    int mrc = mdb_get(txn, st->conflict_lost, (MDB_val *)key, &v);
    *n = 0;
    if (mrc == MDB_NOTFOUND)
        return PS_OK;
    if (mrc)
        return db_err(mrc);
    if (v.mv_size == 8)
        *n = be64get(v.mv_data);
    return PS_OK;
}

/* Moves the count under key by delta; a count of 0 is no row. */
static int tally_move(MDB_txn *txn, ps_store_t *st, const MDB_val *key, int delta)
{
    uint8_t buf[8];
    MDB_val v = {8, buf};
    uint64_t n;
    int rc, mrc;

    if ((rc = tally_get(txn, st, key, &n)))
        return rc;
    if (delta < 0 && n == 0) {
        /* Only a damaged tally gets here.  Resolving the conflict must not
         * fail for it: the tallies are built again at the next start. */
        PS_WARN("store", "an open-conflict tally was already 0: the tallies are rebuilt at the next start");
        mrc = mdb_del(txn, st->meta, (MDB_val *)&k_version, NULL);
        return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
    }
    n = delta < 0 ? n - 1 : n + 1;
    if (n == 0) {
        mrc = mdb_del(txn, st->conflict_lost, (MDB_val *)key, NULL);
        return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
    }
    be64put(buf, n);
    mrc = mdb_put(txn, st->conflict_lost, (MDB_val *)key, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps__conflicts_tally(MDB_txn *txn, ps_store_t *st, const Popsync__Conflict *cf, int delta)
{
    MDB_val node = {PS_ID_LEN, cf->lost_node.data};
    int rc;
    if ((rc = tally_move(txn, st, &k_open, delta)))
        return rc;
    return cf->lost_node.len == PS_ID_LEN ? tally_move(txn, st, &node, delta) : PS_OK;
}

/* ---- the build ------------------------------------------------------------------- */

/* Tallies every open conflict anew. */
static int build(ps_store_t *st, MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_drop(txn, st->conflict_lost, 0)) || (mrc = mdb_cursor_open(txn, st->conflicts, &cur)))
        return db_err(mrc);
    ps__conflicts_builds++;
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Conflict *cf = NULL;
        if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cf))
            continue; /* counted by nobody, as the pass before the tallies did */
        if (!cf->resolved)
            rc = ps__conflicts_tally(txn, st, cf, +1);
        ps_msg_free(&cf->base);
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    return mrc == MDB_NOTFOUND ? PS_OK : db_err(mrc);
}

static int entries(MDB_txn *txn, MDB_dbi dbi, uint64_t *n)
{
    MDB_stat s;
    int mrc = mdb_stat(txn, dbi, &s);
    *n = mrc ? 0 : (uint64_t)s.ms_entries;
    return mrc ? db_err(mrc) : PS_OK;
}

/* Did a popsyncd without the tallies write conflicts since the last one
 * with them closed the store?  The mark it left (head and the number of
 * conflicts) is taken away while one runs: an older popsyncd opens a
 * conflict (one more entry) or resolves one (by an accepted change: the
 * head moves).  1 yes, 0 no, or a negative error. */
static int written_since(ps_store_t *st, MDB_txn *txn)
{
    MDB_val v;
    uint64_t n;
    int rc, mrc, since = 0;

    if ((rc = entries(txn, st->conflicts, &n)))
        return rc;
    mrc = mdb_get(txn, st->meta, (MDB_val *)&k_mark, &v);
    if (mrc == MDB_NOTFOUND)
        return 0; /* first start with the tallies, or the last one was killed */
    if (mrc)
        return db_err(mrc);
    since = v.mv_size != MARK_LEN || be64get(v.mv_data) != st->head || be64get((uint8_t *)v.mv_data + 8) != n;
    mrc = mdb_del(txn, st->meta, (MDB_val *)&k_mark, NULL);
    return mrc ? db_err(mrc) : since;
}

int ps__conflicts_open(ps_store_t *st, MDB_txn *txn)
{
    MDB_val v;
    uint8_t ver = TALLY_VERSION;
    int mrc, rc, since;

    if ((mrc = mdb_dbi_open(txn, "conflict_lost", MDB_CREATE, &st->conflict_lost)))
        return db_err(mrc);
    if ((since = written_since(st, txn)) < 0)
        return since;
    if (!since && mdb_get(txn, st->meta, (MDB_val *)&k_version, &v) == 0 && v.mv_size == 1 &&
        *(uint8_t *)v.mv_data == TALLY_VERSION)
        return PS_OK;
    if ((rc = build(st, txn)))
        return rc;
    v.mv_data = &ver;
    v.mv_size = 1;
    mrc = mdb_put(txn, st->meta, (MDB_val *)&k_version, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

void ps__conflicts_close(ps_store_t *st)
{
    MDB_txn *txn = NULL;
    uint8_t mark[MARK_LEN];
    MDB_val v = {sizeof(mark), mark};
    uint64_t n;

    if (mdb_txn_begin(st->env, NULL, 0, &txn) != 0)
        return;
    if (entries(txn, st->conflicts, &n) != PS_OK) {
        mdb_txn_abort(txn);
        return;
    }
    be64put(mark, ps_store_head(st));
    be64put(mark + 8, n);
    if (mdb_put(txn, st->meta, (MDB_val *)&k_mark, &v, 0) != 0)
        mdb_txn_abort(txn);
    else
        mdb_txn_commit(txn);
}

/* ---- readers --------------------------------------------------------------------- */

int ps_store_conflicts_lost(ps_store_t *st, const uint8_t node[PS_ID_LEN], uint32_t *n)
{
    MDB_txn *txn = NULL;
    MDB_val k = {PS_ID_LEN, (void *)node};
    uint64_t c = 0;
    int mrc, rc;

    *n = 0;
    if ((mrc = ro_begin(st, &txn)))
        return db_err(mrc);
    rc = tally_get(txn, st, &k, &c);
    ro_end(st, txn);
    *n = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    return rc;
}

int ps__conflicts_lost_in(MDB_txn *txn, ps_store_t *st, const uint8_t node[PS_ID_LEN], uint64_t *n)
{
    MDB_val k = {PS_ID_LEN, (void *)node};
    return tally_get(txn, st, &k, n);
}

int ps__conflicts_open_in(MDB_txn *txn, ps_store_t *st, uint64_t *n)
{
    return tally_get(txn, st, &k_open, n);
}

int ps_store_conflict_count(ps_store_t *st, uint64_t *open_conflicts, uint64_t *total)
{
    MDB_txn *txn = NULL;
    int mrc, rc;

    *open_conflicts = *total = 0;
    if ((mrc = ro_begin(st, &txn)))
        return db_err(mrc);
    if ((rc = tally_get(txn, st, &k_open, open_conflicts)) == PS_OK)
        rc = entries(txn, st->conflicts, total);
    ro_end(st, txn);
    return rc;
}

int ps__conflicts_scan(ps_store_t *st, const uint8_t node[PS_ID_LEN], uint64_t *lost, uint64_t *open_conflicts,
                       uint64_t *total)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;

    *lost = *open_conflicts = *total = 0;
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->conflicts, &cur)))
        goto out;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Conflict *cf = NULL;
        (*total)++;
        if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cf))
            continue;
        if (!cf->resolved) {
            (*open_conflicts)++;
            if (node && cf->lost_node.len == PS_ID_LEN && memcmp(cf->lost_node.data, node, PS_ID_LEN) == 0)
                (*lost)++;
        }
        ps_msg_free(&cf->base);
    }
    mrc = mrc == MDB_NOTFOUND ? 0 : mrc;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    return mrc ? db_err(mrc) : PS_OK;
}

/* Asks the policy whether this peer, syncing as node, may list cf. */
static int may_see_conflict(const ps_store_t *st, const ps_peer_t *peer, const uint8_t *node,
                            const Popsync__Conflict *cf)
{
    ps_conflict_view_t cv;
    cv.unit = cf->orgunit;
    cv.kept_unit = cf->kept ? cf->kept->orgunit : NULL;
    cv.lost_unit = cf->lost ? cf->lost->orgunit : NULL;
    cv.lost_node = cf->lost_node.len == PS_ID_LEN ? cf->lost_node.data : NULL;
    cv.kept_node = cf->kept_node.len == PS_ID_LEN ? cf->kept_node.data : NULL;
    return ps_policy_may_see_conflict(st->opts.units, peer, node, &cv);
}

/* A ConflictListResult and the conflicts it lists (ps_store_msg_t.priv). */
typedef struct conflict_list {
    Popsync__ConflictListResult res;
    Popsync__Conflict **list;
    size_t n;
} conflict_list_t;

static void conflict_list_free(void *priv)
{
    conflict_list_t *cl = priv;
    for (size_t i = 0; i < cl->n; i++)
        ps_msg_free(&cl->list[i]->base);
    free(cl->list);
    free(cl);
}

int ps_store_conflicts(ps_store_t *st, const ps_peer_t *peer, const uint8_t node[PS_ID_LEN], int include_resolved,
                       uint32_t max, ps_store_msg_t *out)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    conflict_list_t *cl;
    int mrc, rc = PS_OK;

    memset(out, 0, sizeof(*out));
    if (max == 0 || max > 1000)
        max = 1000;
    if (!(cl = calloc(1, sizeof(*cl))) || !(cl->list = calloc(max, sizeof(*cl->list)))) {
        free(cl);
        return PS_ENOMEM;
    }
    popsync__conflict_list_result__init(&cl->res);
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->conflicts, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    while (cl->n < max && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Conflict *cf = NULL;
        if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cf))
            continue;
        if ((cf->resolved && !include_resolved) || !may_see_conflict(st, peer, node, cf)) {
            ps_msg_free(&cf->base);
            continue;
        }
        cl->list[cl->n++] = cf;
    }
    cl->res.n_conflicts = cl->n;
    cl->res.conflicts = cl->list;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    if (rc) {
        conflict_list_free(cl);
        return rc;
    }
    out->msg = &cl->res.base;
    out->release = conflict_list_free;
    out->priv = cl;
    return PS_OK;
}
