/* store_conflicts.c - the conflicts' readers and their tallies.
 *
 * Owns: the database `conflict_lost`, which tallies the open (unresolved)
 * conflicts of `conflicts` so that the two questions asked often are
 * lookups instead of a pass over every conflict:
 *   node(16)  -> count(8, BE)  open conflicts in which an edit of node lost
 *                              (no row: none)
 *   "open"    -> count(8, BE)  all open conflicts, with or without a lost node
 * (the total, open or not, is the entry count LMDB keeps for `conflicts`),
 * and the database `conflict_open`, the open conflicts themselves:
 *   cid(16)   -> what the access policy asks of a conflict (its view):
 *                flags(1) | lost_node(16) | kept_node(16) | unit NUL
 *                | kept unit NUL | lost unit NUL
 * so that a ConflictList of open conflicts (every `popsync sync` asks one)
 * walks the open ones and unpacks only those the peer may see, not every
 * conflict ever kept.  The apply path (apply.c, the only writer of
 * `conflicts`) moves both with ps__conflicts_tally in the transaction that
 * writes the conflict.  ps__conflicts_open builds them from `conflicts` when a store
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

#define TALLY_VERSION 2 /* 1: the tallies without conflict_open */
#define MARK_LEN 16 /* head(8) | entries of `conflicts`(8) */
#define VIEW_LOST 0x01  /* view flags: lost_node, kept_node, kept, lost present */
#define VIEW_KEPT 0x02
#define VIEW_KEPT_REC 0x04
#define VIEW_LOST_REC 0x08
#define VIEW_FIXED 33   /* flags | lost_node | kept_node */
#define VIEW_MAX 512

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

static size_t view_str(uint8_t *p, size_t at, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (at + n + 1 > VIEW_MAX)
        return 0;
    memcpy(p + at, s ? s : "", n);
    p[at + n] = 0;
    return at + n + 1;
}

/* cf's view into p (VIEW_MAX bytes): its length, or 0 when it does not fit
 * (a unit code of hundreds of bytes; such a conflict is unpacked instead). */
static size_t view_encode(const Popsync__Conflict *cf, uint8_t *p)
{
    size_t at = VIEW_FIXED;
    memset(p, 0, VIEW_FIXED);
    if (cf->lost_node.len == PS_ID_LEN) {
        p[0] |= VIEW_LOST;
        memcpy(p + 1, cf->lost_node.data, PS_ID_LEN);
    }
    if (cf->kept_node.len == PS_ID_LEN) {
        p[0] |= VIEW_KEPT;
        memcpy(p + 1 + PS_ID_LEN, cf->kept_node.data, PS_ID_LEN);
    }
    p[0] |= (uint8_t)((cf->kept ? VIEW_KEPT_REC : 0) | (cf->lost ? VIEW_LOST_REC : 0));
    if (!(at = view_str(p, at, cf->orgunit)) || !(at = view_str(p, at, cf->kept ? cf->kept->orgunit : NULL)) ||
        !(at = view_str(p, at, cf->lost ? cf->lost->orgunit : NULL)))
        return 0;
    return at;
}

/* The next NUL-terminated string of v from *at, or NULL past its end. */
static const char *view_next(const MDB_val *v, size_t *at)
{
    const char *s = (const char *)v->mv_data + *at;
    const void *nul = *at < v->mv_size ? memchr(s, 0, v->mv_size - *at) : NULL;
    if (!nul)
        return NULL;
    *at += (size_t)((const char *)nul - s) + 1;
    return s;
}

/* The view stored in v (pointing into it), or -1 when v holds none. */
static int view_decode(const MDB_val *v, ps_conflict_view_t *cv)
{
    const uint8_t *p = v->mv_data;
    size_t at = VIEW_FIXED;
    if (v->mv_size < VIEW_FIXED + 3)
        return -1;
    cv->lost_node = p[0] & VIEW_LOST ? p + 1 : NULL;
    cv->kept_node = p[0] & VIEW_KEPT ? p + 1 + PS_ID_LEN : NULL;
    if (!(cv->unit = view_next(v, &at)) || !(cv->kept_unit = view_next(v, &at)) ||
        !(cv->lost_unit = view_next(v, &at)))
        return -1;
    if (!(p[0] & VIEW_KEPT_REC))
        cv->kept_unit = NULL;
    if (!(p[0] & VIEW_LOST_REC))
        cv->lost_unit = NULL;
    return 0;
}

/* Files open conflict cid in conflict_open (delta > 0) or takes it out. */
static int open_set_move(MDB_txn *txn, ps_store_t *st, const uint8_t *cid, const Popsync__Conflict *cf, int delta)
{
    uint8_t view[VIEW_MAX];
    MDB_val k = {PS_ID_LEN, (void *)cid}, v = {0, view};
    int mrc;
    if (delta < 0) {
        mrc = mdb_del(txn, st->conflict_open, &k, NULL);
        return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
    }
    v.mv_size = view_encode(cf, view); /* 0 bytes: no view, the lister unpacks it */
    mrc = mdb_put(txn, st->conflict_open, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps__conflicts_tally(MDB_txn *txn, ps_store_t *st, const uint8_t cid[PS_ID_LEN], const Popsync__Conflict *cf,
                        int delta)
{
    MDB_val node = {PS_ID_LEN, cf->lost_node.data};
    int rc;
    if ((rc = tally_move(txn, st, &k_open, delta)) || (rc = open_set_move(txn, st, cid, cf, delta)))
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

    if ((mrc = mdb_drop(txn, st->conflict_lost, 0)) || (mrc = mdb_drop(txn, st->conflict_open, 0)) ||
        (mrc = mdb_cursor_open(txn, st->conflicts, &cur)))
        return db_err(mrc);
    ps__conflicts_builds++;
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Conflict *cf = NULL;
        if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cf))
            continue; /* counted by nobody, as the pass before the tallies did */
        if (!cf->resolved && k.mv_size == PS_ID_LEN)
            rc = ps__conflicts_tally(txn, st, k.mv_data, cf, +1);
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

    if ((mrc = mdb_dbi_open(txn, "conflict_lost", MDB_CREATE, &st->conflict_lost)) ||
        (mrc = mdb_dbi_open(txn, "conflict_open", MDB_CREATE, &st->conflict_open)))
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

/* Adds the conflict stored as v to cl when it is listed (open unless
 * include_resolved, and the peer may see it). */
static void list_add(ps_store_t *st, const ps_peer_t *peer, const uint8_t *node, int include_resolved,
                     const MDB_val *v, conflict_list_t *cl)
{
    Popsync__Conflict *cf = NULL;
    if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v->mv_data, v->mv_size, (ProtobufCMessage **)&cf))
        return;
    if ((cf->resolved && !include_resolved) || !may_see_conflict(st, peer, node, cf)) {
        ps_msg_free(&cf->base);
        return;
    }
    cl->list[cl->n++] = cf;
}

/* The open conflicts the peer may see, from conflict_open: only those its
 * view lets through are looked up and unpacked. */
static int list_open(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const uint8_t *node, uint32_t max,
                     conflict_list_t *cl)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v, c;
    int mrc;

    if ((mrc = mdb_cursor_open(txn, st->conflict_open, &cur)))
        return db_err(mrc);
    while (cl->n < max && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        ps_conflict_view_t cv;
        if (view_decode(&v, &cv) == 0 && !ps_policy_may_see_conflict(st->opts.units, peer, node, &cv))
            continue;
        if ((mrc = mdb_get(txn, st->conflicts, &k, &c)) == MDB_NOTFOUND)
            continue;
        if (mrc)
            break;
        list_add(st, peer, node, 0, &c, cl);
    }
    mdb_cursor_close(cur);
    return mrc == 0 || mrc == MDB_NOTFOUND ? PS_OK : db_err(mrc);
}

/* Every conflict the peer may see, resolved ones too: a pass over all. */
static int list_all(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const uint8_t *node, uint32_t max,
                    conflict_list_t *cl)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;

    if ((mrc = mdb_cursor_open(txn, st->conflicts, &cur)))
        return db_err(mrc);
    while (cl->n < max && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        list_add(st, peer, node, 1, &v, cl);
    mdb_cursor_close(cur);
    return mrc == 0 || mrc == MDB_NOTFOUND ? PS_OK : db_err(mrc);
}

int ps_store_conflicts(ps_store_t *st, const ps_peer_t *peer, const uint8_t node[PS_ID_LEN], int include_resolved,
                       uint32_t max, ps_store_msg_t *out)
{
    MDB_txn *txn = NULL;
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
    if ((mrc = ro_begin(st, &txn))) {
        rc = db_err(mrc);
    } else {
        rc = include_resolved ? list_all(st, txn, peer, node, max, cl) : list_open(st, txn, peer, node, max, cl);
        ro_end(st, txn);
    }
    cl->res.n_conflicts = cl->n;
    cl->res.conflicts = cl->list;
    if (rc) {
        conflict_list_free(cl);
        return rc;
    }
    out->msg = &cl->res.base;
    out->release = conflict_list_free;
    out->priv = cl;
    return PS_OK;
}
