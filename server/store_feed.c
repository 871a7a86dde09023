/* store_feed.c - the change feed, its township index and the pull.
 *
 * Owns: the feed's values (store_int.h), the database `feed_town` (the feed
 * by township of each entry's audience, written in the transaction that
 * writes the feed), its build for a store that has none (ps__feed_open),
 * and ps_store_pull, which reads a township's entries from that index and
 * decides from the entry alone whether the reader sees it: only records it
 * sends are looked up in `records` (and the record of a scope exit, rare,
 * to check it has not come back into the reader's scope).
 *
 * Callers: the apply path (apply.c put_version) and the upstream rebuild
 * (store_upstream.c) write entries only through ps__feed_*; store.c opens.
 */
#include "store_int.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t ps__pull_lookups, ps__pull_examined;

#define TOWN_KEY 20          /* township(12) | seq(8, BE) */
#define INDEX_VERSION 2      /* meta "feed_index": INDEX_VERSION | tree digest(32) */
#define INDEX_MARK_LEN 33
#define BUILD_CHUNK 20000    /* entries per transaction of a build */

static const MDB_val k_mark = {10, "feed_index"};
static const MDB_val k_at = {13, "feed_index_at"};

/* --- writing ------------------------------------------------------------------ */

/* The township the index files unit under ("" for no unit). */
static void town_of(const ps_store_t *st, const char *unit, char out[13])
{
    out[0] = '\0';
    if (unit && *unit)
        ps_orgunits_township_code(st->opts.units, unit, out);
}

static int index_op(MDB_txn *txn, ps_store_t *st, const char *town, uint64_t seq, const MDB_val *val)
{
    uint8_t key[TOWN_KEY];
    MDB_val k = {sizeof(key), key};
    int mrc;
    if (strlen(town) != 12)
        return PS_OK;
    memcpy(key, town, 12);
    be64put(key + 12, seq);
    if (val) {
        MDB_val v = *val;
        mrc = mdb_put(txn, st->feed_town, &k, &v, 0);
    } else {
        mrc = mdb_del(txn, st->feed_town, &k, NULL);
        if (mrc == MDB_NOTFOUND)
            mrc = 0;
    }
    return mrc ? db_err(mrc) : PS_OK;
}

/* Files (val) or removes (NULL) seq under the townships of unit and other. */
static int index_both(MDB_txn *txn, ps_store_t *st, const char *unit, const char *other, uint64_t seq,
                      const MDB_val *val)
{
    char t1[13], t2[13];
    int rc;
    town_of(st, unit, t1);
    town_of(st, other, t2);
    if ((rc = index_op(txn, st, t1, seq, val)))
        return rc;
    return strcmp(t1, t2) ? index_op(txn, st, t2, seq, val) : PS_OK;
}

static int feed_write(MDB_txn *txn, ps_store_t *st, uint64_t seq, const uint8_t *val, size_t len)
{
    uint8_t key[8];
    MDB_val k = {8, key}, v = {len, (void *)val};
    int mrc;
    be64put(key, seq);
    /* Sequences only grow: an append, unless a rebuild or build rewrites. */
    mrc = mdb_put(txn, st->feed, &k, &v, MDB_APPEND);
    if (mrc == MDB_KEYEXIST) {
        v.mv_size = len;
        v.mv_data = (void *)val;
        mrc = mdb_put(txn, st->feed, &k, &v, 0);
    }
    return mrc ? db_err(mrc) : PS_OK;
}

/* The long feed value of a stored record (header hdr, size packed bytes). */
static void rec_value(uint8_t val[FEED_REC_LEN], const uint8_t *hdr, const uint8_t *id, size_t size)
{
    uint32_t sz = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
    memcpy(val, id, PS_ID_LEN);
    val[16] = FEED_TAG_REC;
    val[17] = hdr[8];
    val[18] = hdr[9];
    memcpy(val + 19, hdr + HDR_UNIT, 12);
    memcpy(val + 31, hdr + HDR_OTHER, 12);
    val[43] = (uint8_t)(sz >> 24);
    val[44] = (uint8_t)(sz >> 16);
    val[45] = (uint8_t)(sz >> 8);
    val[46] = (uint8_t)sz;
}

int ps__feed_put_record(MDB_txn *txn, ps_store_t *st, const uint8_t *hdr, const uint8_t *id, size_t size)
{
    uint8_t val[FEED_REC_LEN];
    MDB_val v = {sizeof(val), val};
    uint64_t seq = be64get(hdr);
    char unit[13], other[13];
    int rc;
    rec_value(val, hdr, id, size);
    if ((rc = feed_write(txn, st, seq, val, sizeof(val))))
        return rc;
    hdr_unit(hdr, HDR_UNIT, unit);
    hdr_unit(hdr, HDR_OTHER, other);
    return index_both(txn, st, unit, other, seq, &v);
}

int ps__feed_put_exit(MDB_txn *txn, ps_store_t *st, uint64_t seq, const uint8_t *id, const char *unit)
{
    uint8_t val[FEED_EXIT_LEN];
    MDB_val v = {sizeof(val), val};
    char u[13];
    int rc;
    memcpy(val, id, PS_ID_LEN);
    val[16] = FEED_TAG_EXIT;
    memset(val + 17, 0, 12);
    memcpy(val + 17, unit, strnlen(unit, 12));
    if ((rc = feed_write(txn, st, seq, val, sizeof(val))))
        return rc;
    hdr_unit(val, 17, u);
    return index_both(txn, st, u, NULL, seq, &v);
}

int ps__feed_drop(MDB_txn *txn, ps_store_t *st, const uint8_t *old_hdr)
{
    uint8_t key[8];
    MDB_val k = {8, key};
    char unit[13], other[13];
    int mrc;
    memcpy(key, old_hdr, 8);
    mrc = mdb_del(txn, st->feed, &k, NULL);
    if (mrc && mrc != MDB_NOTFOUND)
        return db_err(mrc);
    hdr_unit(old_hdr, HDR_UNIT, unit);
    hdr_unit(old_hdr, HDR_OTHER, other);
    return index_both(txn, st, unit, other, be64get(old_hdr), NULL);
}

/* --- reading: the pull ---------------------------------------------------------- */

/* The township whose index holds every entry peer may read (1), or 0 when
 * the peer reads the whole feed: an admin, a district-level certificate, a
 * role that reads nothing.  Every unit inside a township-or-lower root has
 * that township (with the tree: its depth-1 ancestor; without: the first
 * nine digits), which is where the index files it. */
static int reader_town(const ps_store_t *st, const ps_peer_t *peer, char town[13])
{
    town[0] = '\0';
    if ((peer->role != PS_ROLE_TOWNSHIP && peer->role != PS_ROLE_COLLECTOR) || !ps_orgunit_valid(peer->orgunit))
        return 0;
    if (st->opts.units) {
        const ps_orgunit_t *t = ps_orgunits_township(st->opts.units, peer->orgunit);
        if (!t)
            return 0;
        memcpy(town, t->code, 13);
        return 1;
    }
    if (strcmp(peer->orgunit + 6, "000000") == 0)
        return 0;
    ps_orgunit_township(peer->orgunit, town);
    return 1;
}

/* What one pull has read so far. */
typedef struct pull_state {
    ps_store_t *st;
    MDB_txn *txn;
    const ps_peer_t *peer;
    ps_pull_fn fn;
    void *arg;
    size_t bytes, count;
    uint64_t lookups, examined;
} pull_state_t;

static int lookup(pull_state_t *ps, const uint8_t *id, MDB_val *rv)
{
    MDB_val rk = {PS_ID_LEN, (void *)id};
    int mrc = mdb_get(ps->txn, ps->st->records, &rk, rv);
    ps->lookups++;
    if (mrc)
        return db_err(mrc);
    return rv->mv_size < REC_HDR ? PS_EDB : PS_OK;
}

/* A scope exit: tell readers of the unit it left, unless the record is
 * (again) visible to them, in which case its latest entry carries it. */
static int pull_exit(pull_state_t *ps, uint64_t seq, const MDB_val *fv)
{
    char unit[13];
    ps_pull_item_t it;
    MDB_val rv;
    int rc;
    hdr_unit(fv->mv_data, 17, unit);
    if (!may_read(ps->st, ps->peer, unit, NULL))
        return PS_OK;
    if ((rc = lookup(ps, fv->mv_data, &rv)))
        return rc;
    if (may_read_hdr(ps->st, ps->peer, rv.mv_data))
        return PS_OK;
    memset(&it, 0, sizeof(it));
    it.seq = seq;
    it.gone_id = fv->mv_data;
    ps->count++;
    return ps->fn(ps->arg, &it);
}

/* A record's latest change: skipped on the entry's audience alone when the
 * reader does not see it; otherwise the record is read and sent.  The
 * stored header decides in the end (it names the seq of the latest change:
 * an index entry a store written by an older popsyncd left behind is
 * skipped). */
static int pull_record(pull_state_t *ps, uint64_t seq, const MDB_val *fv)
{
    const uint8_t *e = fv->mv_data;
    MDB_val rv;
    int rc;
    if (fv->mv_size == FEED_REC_LEN) {
        char unit[13], other[13];
        hdr_unit(e, 19, unit);
        hdr_unit(e, 31, other);
        if (!may_read(ps->st, ps->peer, unit, other))
            return PS_OK;
    }
    if ((rc = lookup(ps, e, &rv)))
        return rc;
    if (be64get(rv.mv_data) != seq || !may_read_hdr(ps->st, ps->peer, rv.mv_data))
        return PS_OK;
    ps->bytes += rv.mv_size - REC_HDR;
    ps->count++;
    return ps__emit_record(ps->st, ps->txn, ps->peer, seq, &rv, ps->fn, ps->arg);
}

static int pull_entry(pull_state_t *ps, uint64_t seq, const MDB_val *fv)
{
    ps->examined++;
    if (fv->mv_size == FEED_EXIT_LEN)
        return pull_exit(ps, seq, fv);
    if (fv->mv_size == FEED_REC_LEN || fv->mv_size == FEED_OLD_LEN)
        return pull_record(ps, seq, fv);
    return PS_EDB;
}

/* The head as of txn (meta "head"): the batch is a function of the
 * snapshot, which server/pullcache.c relies on. */
static uint64_t txn_head(ps_store_t *st, MDB_txn *txn)
{
    MDB_val k = {4, "head"}, v;
    if (mdb_get(txn, st->meta, &k, &v) == 0 && v.mv_size == 8)
        return be64get(v.mv_data);
    return 0;
}

int ps_store_pull(ps_store_t *st, const ps_peer_t *peer, uint64_t cursor, uint32_t max_records,
                  uint32_t max_bytes, ps_pull_fn fn, void *arg, ps_pull_end_t *end)
{
    pull_state_t ps;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t key[TOWN_KEY];
    char town[13];
    uint64_t head, last = cursor;
    int mrc, rc = PS_OK, more = 0, by_town;
    size_t koff;

    memset(end, 0, sizeof(*end));
    memset(&ps, 0, sizeof(ps));
    /* sync.c refuses a cursor beyond head; never let cursor + 1 wrap to 0
     * (the whole scope) whoever calls. */
    if (cursor == UINT64_MAX)
        return PS_EINVAL;
    ps.st = st;
    ps.peer = peer;
    ps.fn = fn;
    ps.arg = arg;
    by_town = reader_town(st, peer, town);
    koff = by_town ? 12 : 0;
    if ((mrc = ro_begin(st, &ps.txn)) || (mrc = mdb_cursor_open(ps.txn, by_town ? st->feed_town : st->feed, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    head = txn_head(st, ps.txn);
    memcpy(key, town, koff);
    be64put(key + koff, cursor + 1);
    k.mv_size = koff + 8;
    k.mv_data = key;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t seq;
        if (k.mv_size != koff + 8 || memcmp(k.mv_data, town, koff) != 0)
            break; /* the next township's entries */
        seq = be64get((const uint8_t *)k.mv_data + koff);
        if (seq > head)
            break;
        if (ps.count >= max_records || ps.bytes >= max_bytes) {
            more = 1;
            break;
        }
        if ((rc = pull_entry(&ps, seq, &v)))
            goto out;
        last = seq;
    }
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = db_err(mrc);
        goto out;
    }
    if (!more && last < head)
        last = head; /* nothing visible up to head: move past it */
    end->cursor = last;
    end->more = more;
    end->head = head;
out:
    __atomic_fetch_add(&ps__pull_lookups, ps.lookups, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ps__pull_examined, ps.examined, __ATOMIC_RELAXED);
    if (cur)
        mdb_cursor_close(cur);
    if (ps.txn)
        ro_end(st, ps.txn);
    return rc;
}

/* --- building the index of an existing store ------------------------------------ */

/* The mark an index made with this store's tree carries. */
static void index_mark(const ps_store_t *st, uint8_t mark[INDEX_MARK_LEN])
{
    const uint8_t *d = ps_orgunits_digest(st->opts.units);
    mark[0] = INDEX_VERSION;
    if (d)
        memcpy(mark + 1, d, 32);
    else
        memset(mark + 1, 0, 32);
}

/* Is the index built, for this tree, and did nothing write the feed without
 * it since (an older popsyncd appends short entries)? */
static int index_current(ps_store_t *st, MDB_txn *txn)
{
    uint8_t mark[INDEX_MARK_LEN];
    MDB_val v, k;
    MDB_cursor *cur;
    int ok;
    index_mark(st, mark);
    if (mdb_get(txn, st->meta, (MDB_val *)&k_mark, &v) || v.mv_size != sizeof(mark) ||
        memcmp(v.mv_data, mark, sizeof(mark)))
        return 0;
    if (mdb_cursor_open(txn, st->feed, &cur))
        return 0;
    ok = mdb_cursor_get(cur, &k, &v, MDB_LAST) != 0 || v.mv_size != FEED_OLD_LEN;
    mdb_cursor_close(cur);
    return ok;
}

/* One feed entry (a copy) during a build. */
typedef struct build_entry {
    uint64_t seq;
    uint8_t val[FEED_REC_LEN];
    size_t len;
} build_entry_t;

/* Rewrites a short entry in the long form and files e in the index. */
static int build_one(ps_store_t *st, MDB_txn *txn, build_entry_t *e)
{
    MDB_val v = {e->len, e->val};
    char unit[13], other[13];
    if (e->len == FEED_OLD_LEN) {
        MDB_val rk = {PS_ID_LEN, e->val}, rv;
        int mrc = mdb_get(txn, st->records, &rk, &rv), rc;
        if (mrc == MDB_NOTFOUND || (mrc == 0 && rv.mv_size < REC_HDR))
            return PS_OK; /* an entry without its record: nobody is sent it */
        if (mrc)
            return db_err(mrc);
        rec_value(e->val, rv.mv_data, e->val, rv.mv_size - REC_HDR);
        e->len = v.mv_size = FEED_REC_LEN;
        if ((rc = feed_write(txn, st, e->seq, e->val, e->len)))
            return rc;
    }
    if (e->len == FEED_EXIT_LEN) {
        hdr_unit(e->val, 17, unit);
        return index_both(txn, st, unit, NULL, e->seq, &v);
    }
    if (e->len != FEED_REC_LEN)
        return PS_OK; /* not a feed value: audit verify's business, not a pull's */
    hdr_unit(e->val, 19, unit);
    hdr_unit(e->val, 31, other);
    return index_both(txn, st, unit, other, e->seq, &v);
}

/* One transaction of a build: up to BUILD_CHUNK entries after *at; *done
 * when the feed has no more. */
static int build_chunk(ps_store_t *st, build_entry_t *buf, uint64_t *at, int *done)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t key[8], atv[8];
    MDB_val k = {8, key}, v;
    size_t n = 0;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_txn_begin(st->env, NULL, 0, &txn)) || (mrc = mdb_cursor_open(txn, st->feed, &cur)))
        goto dberr;
    be64put(key, *at + 1);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && n < BUILD_CHUNK;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        buf[n].seq = be64get(k.mv_data);
        buf[n].len = v.mv_size <= FEED_REC_LEN ? v.mv_size : 0;
        memcpy(buf[n].val, v.mv_data, buf[n].len);
        n++;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (mrc && mrc != MDB_NOTFOUND)
        goto dberr;
    for (size_t i = 0; i < n && rc == PS_OK; i++)
        rc = build_one(st, txn, &buf[i]);
    if (rc)
        goto out;
    be64put(atv, n ? buf[n - 1].seq : *at);
    v.mv_size = 8;
    v.mv_data = atv;
    if ((mrc = mdb_put(txn, st->meta, (MDB_val *)&k_at, &v, 0)))
        goto dberr;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc)
        goto dberr;
    /* Only a committed chunk moves the build on (a full map retries it). */
    *at = be64get(atv);
    *done = n < BUILD_CHUNK;
    return PS_OK;
dberr:
    rc = db_err(mrc);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* Starts a build (an empty index, from seq 0) unless one was stopped
 * midway: *at gets where to go on.  *current: nothing to do. */
static int build_begin(ps_store_t *st, uint64_t *at, int *current)
{
    MDB_txn *txn = NULL;
    MDB_val v;
    uint8_t zero[8] = {0};
    int mrc;
    *at = 0;
    if ((mrc = mdb_txn_begin(st->env, NULL, 0, &txn)))
        return db_err(mrc);
    *current = index_current(st, txn);
    if (!*current && mdb_get(txn, st->meta, (MDB_val *)&k_at, &v) == 0 && v.mv_size == 8) {
        *at = be64get(v.mv_data);
        *current = -1; /* a stopped build: go on from *at */
    }
    if (*current) {
        mdb_txn_abort(txn);
        *current = *current > 0;
        return PS_OK;
    }
    v.mv_size = 8;
    v.mv_data = zero;
    mrc = mdb_drop(txn, st->feed_town, 0);
    if (mrc == 0 && (mrc = mdb_del(txn, st->meta, (MDB_val *)&k_mark, NULL)) == MDB_NOTFOUND)
        mrc = 0;
    if (mrc == 0)
        mrc = mdb_put(txn, st->meta, (MDB_val *)&k_at, &v, 0);
    if (mrc) {
        mdb_txn_abort(txn);
        return db_err(mrc);
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? db_err(mrc) : PS_OK;
}

static int build_end(ps_store_t *st)
{
    MDB_txn *txn = NULL;
    uint8_t mark[INDEX_MARK_LEN];
    MDB_val v = {sizeof(mark), mark};
    int mrc;
    index_mark(st, mark);
    if ((mrc = mdb_txn_begin(st->env, NULL, 0, &txn)))
        return db_err(mrc);
    if ((mrc = mdb_put(txn, st->meta, (MDB_val *)&k_mark, &v, 0)) ||
        ((mrc = mdb_del(txn, st->meta, (MDB_val *)&k_at, NULL)) && mrc != MDB_NOTFOUND)) {
        mdb_txn_abort(txn);
        return db_err(mrc);
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? db_err(mrc) : PS_OK;
}

/* Doubles the map (no transaction is open while the store opens). */
static int build_grow(ps_store_t *st)
{
    MDB_envinfo info;
    size_t want;
    if (mdb_env_info(st->env, &info))
        return PS_EFULL;
    want = info.me_mapsize * 2;
    if (st->opts.map_max && info.me_mapsize >= st->opts.map_max)
        return PS_EFULL;
    if (st->opts.map_max && want > st->opts.map_max)
        want = st->opts.map_max;
    return mdb_env_set_mapsize(st->env, want) ? PS_EFULL : PS_OK;
}

int ps__feed_open(ps_store_t *st, char *err, size_t errlen)
{
    build_entry_t *buf;
    uint64_t at;
    int current, done = 0, rc, chunks = 0;

    if ((rc = build_begin(st, &at, &current)))
        goto fail;
    if (current)
        return PS_OK;
    if (ps_store_head(st) > 0)
        PS_INFO("store", "building the feed's township index (from seq %llu of %llu)", (unsigned long long)at,
                (unsigned long long)ps_store_head(st));
    if (!(buf = malloc(BUILD_CHUNK * sizeof(*buf)))) {
        rc = PS_ENOMEM;
        goto fail;
    }
    while (!done && rc == PS_OK) {
        rc = build_chunk(st, buf, &at, &done);
        if (rc == PS_EFULL && (rc = build_grow(st)) == PS_OK)
            continue;
        chunks++;
    }
    free(buf);
    if (rc || (rc = build_end(st)))
        goto fail;
    if (ps_store_head(st) > 0)
        PS_INFO("store", "feed's township index built (%d transaction%s)", chunks, chunks == 1 ? "" : "s");
    return PS_OK;
fail:
    snprintf(err, errlen, "cannot build the feed's township index: %s (it resumes at the next start)",
             ps_strerror(rc));
    return rc;
}
