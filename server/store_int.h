/* store_int.h - private to the store's files (store.c, store_query.c).
 *
 * Owns: struct ps_store, the layout of stored record headers and feed
 * entries, and the wrappers that ask the access policy about them.  Only
 * store*.c and apply.c (and the apply stages' unit tests) include this
 * file (and lmdb.h).
 */
#ifndef PS_STORE_INT_H
#define PS_STORE_INT_H

#include "store.h"
#include "err.h"
#include "policy.h"
#include "scope.h"
#include "wire.pb-c.h"
#include "validate.h"

#include <lmdb.h>

#include "bytes.h"
#include "db_err.h"

/* The store's short names for the shared helpers (common/bytes.h,
 * common/db_err.h): one definition for the store and the client's cache. */
#define be64put ps_be64put
#define be64get ps_be64get
#define db_err ps_db_err

#include <errno.h>
#include <pthread.h>
#include <string.h>

/* Every value in `records` starts with a fixed header so that pulls,
 * scope checks and reference checks never unpack a record:
 *   seq(8, BE) | kind(1) | flags(1: bit 0 deleted) | orgunit(12) | other(12) | gen(8, BE) | hlc(8, BE)
 *   | packed Record
 * where other is a migration's other place (zeros when none): the two
 * units whose readers see the record, its "audience". */
#define REC_HDR 50
#define HDR_GEN 34
#define HDR_HLC 42
#define REC_DELETED 0x01
#define HDR_UNIT 10
#define HDR_OTHER 22
/* Feed values (store_feed.c writes and reads them):
 *   id(16) | 0x02 | kind(1) | flags(1) | unit(12) | other(12) | size(4, BE)
 *       a record's latest change: what a pull needs to decide whether the
 *       reader sees it (its audience) and to budget the batch (the packed
 *       record's size), without looking the record up
 *   id(16) | 0x01 | unit(12)
 *       a scope exit, telling readers of unit the record left them
 *   id(16)
 *       a record's latest change as written before the township index
 *       (read still; ps__feed_open rewrites them in the long form) */
#define FEED_EXIT_LEN 29
#define FEED_REC_LEN 47
#define FEED_OLD_LEN 16
#define FEED_TAG_EXIT 0x01
#define FEED_TAG_REC 0x02
/* nodes keys: node(16) is the mark (hw | last seen | cursor), node(16)|tag
 * the certificate last seen (store_admin.c) and the identity the node id is
 * bound to (store.c, issue 21). */
#define NODE_INFO_TAG 0x01
#define NODE_BIND_TAG 0x02

struct ps_store {
    MDB_env *env;
    MDB_dbi records, feed, nodes, rejects, meta, versions, conflicts, audit, counters, closes, answers;
    MDB_dbi idnum;           /* live persons by ID number (store_idnum.c) */
    MDB_dbi foreign;         /* migrants between districts (store_migrants.c) */
    char home[13];           /* this district's code once [upstream] named it (meta home_district), or "" */
    MDB_dbi feed_town;       /* the feed by township of the audience (store_feed.c) */
    MDB_dbi audit_rec;       /* record id | gen -> its audit entry's n (store_history.c) */
    MDB_dbi cols;            /* the column projection counts read (store_cols.c) */
    MDB_dbi conflict_lost;   /* open conflicts tallied, by losing node and in all (store_conflicts.c) */
    MDB_dbi conflict_open;   /* the open conflicts' ids and policy views (store_conflicts.c) */
    uint8_t server_node[PS_ID_LEN];
    uint64_t head;           /* last committed seq; read under head_lock */
    pthread_mutex_t head_lock;
    ps_hlc_t hlc;            /* touched only by the single writer */
    ps_store_opts_t opts;
    /* Growing the map needs every transaction in the process closed:
     * transactions hold this shared, a resize holds it exclusively. */
    pthread_rwlock_t resize;
    size_t map_size;         /* current map size */
};

/* Binds node n->node to the certificate identity in n unless it is bound
 * already (store.c; the node-table flush calls it, so a node id is bound
 * from its first Hello, not only from its first push). */
int ps__store_bind_if_new(MDB_txn *txn, ps_store_t *st, const ps_node_info_t *n);

/* The audit entries of a record's versions (store_history.c): the index
 * is opened (and built from the audit log when missing) in the open
 * transaction; the apply path files each record entry it appends. */
int ps__history_open(ps_store_t *st, MDB_txn *txn);
int ps__history_file(MDB_txn *txn, ps_store_t *st, const uint8_t *id, uint64_t gen, uint64_t n);

/* The open conflicts' tallies and set (store_conflicts.c).  Every write of
 * `conflicts` moves them in its own transaction: ps__conflicts_tally(+1)
 * for conflict cid stored open, (-1) for an open one resolved (a write that
 * changed an open conflict's lost_node or units would call -1 with the old
 * value, then +1 with the new).  ps__conflicts_open (in the open transaction,
 * after the head is loaded) builds them when missing or when an older
 * popsyncd wrote conflicts since ps__conflicts_close's mark;
 * ps__conflicts_lost_in and ps__conflicts_open_in read them in txn.
 * ps__conflicts_scan counts by reading every conflict (node may be NULL):
 * the answers the tallies must equal, for the unit test and the bench. */
int ps__conflicts_open(ps_store_t *st, MDB_txn *txn);
void ps__conflicts_close(ps_store_t *st);
int ps__conflicts_tally(MDB_txn *txn, ps_store_t *st, const uint8_t cid[PS_ID_LEN], const Popsync__Conflict *cf,
                        int delta);
int ps__conflicts_lost_in(MDB_txn *txn, ps_store_t *st, const uint8_t node[PS_ID_LEN], uint64_t *n);
int ps__conflicts_open_in(MDB_txn *txn, ps_store_t *st, uint64_t *n);
int ps__conflicts_scan(ps_store_t *st, const uint8_t node[PS_ID_LEN], uint64_t *lost, uint64_t *open_conflicts,
                       uint64_t *total);
/** Test counter: builds of the tallies (ps__conflicts_open). */
extern uint64_t ps__conflicts_builds;

/* Node ids bound to certificate identities (store.c; the apply path's
 * admission and the Hello read them). */
typedef struct Popsync__NodeStatus Popsync__NodeStatus;
int ps__same_identity(const Popsync__NodeStatus *b, const ps_peer_t *p);
int ps__bind_get(MDB_txn *txn, ps_store_t *st, const uint8_t *node, Popsync__NodeStatus **out);
int ps__bind_put(MDB_txn *txn, ps_store_t *st, const uint8_t *node, const ps_peer_t *p);
void ps__bind_refusal(char *out, size_t n, const uint8_t *node, const Popsync__NodeStatus *b, const ps_peer_t *p);

/* After a durable commit up to seq: the head moves on, never back (two
 * writers, the group commit and the migrant consumer, may finish their
 * commits in either order). */
static inline void ps_store_head_advance(ps_store_t *st, uint64_t seq)
{
    pthread_mutex_lock(&st->head_lock);
    if (seq > st->head)
        st->head = seq;
    pthread_mutex_unlock(&st->head_lock);
}

/* Begins a transaction under the resize lock (flags: 0 or MDB_RDONLY). */
static inline int txn_begin_locked(ps_store_t *st, unsigned flags, MDB_txn **txn)
{
    int mrc;
    pthread_rwlock_rdlock(&st->resize);
    mrc = mdb_txn_begin(st->env, NULL, flags, txn);
    if (mrc) {
        *txn = NULL;
        pthread_rwlock_unlock(&st->resize);
    }
    return mrc;
}

static inline int ro_begin(ps_store_t *st, MDB_txn **txn)
{
    return txn_begin_locked(st, MDB_RDONLY, txn);
}

/* Aborts a transaction begun with txn_begin_locked and drops the lock. */
static inline void ro_end(ps_store_t *st, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize);
}



/* The subtree rule and every access decision are common/policy.h's; these
 * wrappers only feed it the store's tree. */
static inline int within(const ps_store_t *st, const char *unit, const char *root)
{
    return ps_policy_within(st->opts.units, unit, root);
}

static inline int may_read(const ps_store_t *st, const ps_peer_t *peer, const char *unit, const char *other)
{
    return ps_policy_may_read(st->opts.units, peer, unit, other);
}

static inline void hdr_unit(const uint8_t *hdr, size_t off, char out[13])
{
    memcpy(out, hdr + off, 12);
    out[12] = '\0';
    if (out[0] == '\0')
        out[0] = '\0';
}

/* may_read on a stored record's header. */
static inline int may_read_hdr(const ps_store_t *st, const ps_peer_t *peer, const void *hdr)
{
    char unit[13], other[13];
    hdr_unit(hdr, HDR_UNIT, unit);
    hdr_unit(hdr, HDR_OTHER, other);
    return may_read(st, peer, unit, other);
}

/* May this identity count records with this header (queries, reports)? */
static inline int may_count_hdr(const ps_store_t *st, const ps_peer_t *peer, const void *hdr)
{
    char unit[13], other[13];
    hdr_unit(hdr, HDR_UNIT, unit);
    hdr_unit(hdr, HDR_OTHER, other);
    return ps_policy_may_count(st->opts.units, peer, unit, other);
}

/* The other place of a migration record, or "". */
static inline const char *other_place(const Popsync__Record *r)
{
    if (r->body_case == POPSYNC__RECORD__BODY_MIGRATION && r->migration->other_place_code &&
        ps_orgunit_valid(r->migration->other_place_code))
        return r->migration->other_place_code;
    return "";
}


/* Migrant summaries (store.c; docs/upstream.md §7).  ps__migrant_summary_build
 * packs the summary of migration mig (from its person, or the one its
 * district sent; unit_name: the name of its unit, for another district, or NULL); ps__foreign_summary (store_migrants.c) reads the one a
 * district sent with case id.  *sum_len 0: none. */
#define PS_MIGRANT_SUMMARY_MAX 1024
int ps__migrant_summary_build(const ps_store_t *st, MDB_txn *txn, const Popsync__Record *mig, const char *unit_name,
                              uint8_t *sum, size_t *sum_len);
void ps__foreign_summary(const ps_store_t *st, MDB_txn *txn, const uint8_t *id, uint8_t *sum, size_t *sum_len);
/* The revisions a stored record's current version contains (its own,
 * every earlier local version's, and the foreign versions merged into it),
 * as text "gen.hlc.node,..." (hex, newest first, at most len bytes) for the
 * Popsync-Lineage header (store_migrants.c). */
int ps__foreign_lineage(const ps_store_t *st, MDB_txn *txn, const uint8_t *id, char *out, size_t len);
/* The districts a migration's version is addressed to (docs/upstream.md §7
 * "Addressed copies"): those of its unit and its other place (r), then
 * those of the other places of its earlier versions (`versions`), each
 * once, at most max (store_migrants.c). */
int ps__foreign_addressees(const ps_store_t *st, MDB_txn *txn, const Popsync__Record *r, char (*to)[13],
                           size_t max, size_t *n);
/* The rebuild's first pass (store_upstream.c): the lineage the version it
 * writes of record id was published with ("" or NULL: none), kept in
 * `foreign` ('L' | id) until its second pass (store_migrants.h
 * ps_store_rebuild_foreign) has used it. */
int ps__foreign_rebuild_lineage(MDB_txn *txn, ps_store_t *st, const uint8_t *id, const char *lineage);

/* Does this record version count in this district's report counters?
 * Not another district's migration case held here as its other place
 * (docs/upstream.md §7): its owner district counts it, once.  Every
 * writer of the counters and the recount ask this. */
static inline int counts_here(const ps_store_t *st, const Popsync__Record *r)
{
    const char *other = other_place(r);
    if (!r->orgunit || !*other)
        return 1;
    /* The district's code, kept in the store, decides even offline
     * (`popsyncd counters check` has no tree); else the tree's rule. */
    if (st->home[0])
        return ps_policy_within(NULL, r->orgunit, st->home) || !ps_policy_within(NULL, other, st->home);
    return !ps_policy_foreign_case(st->opts.units, r->orgunit, other);
}

/* Reads meta home_district into st->home (store.c's open, store_migrants.c). */
int ps__home_load(MDB_txn *txn, ps_store_t *st);

/* Adds sign times a record version's report contributions to the
 * counters (none for counts_here() false), read-modify-write (store_upstream.c: the rebuild and the
 * foreign versions of store_migrants.c, which write few records). */
int ps__store_counters_add(MDB_txn *txn, ps_store_t *st, const Popsync__Record *r, int sign);

/* The district's ID-number index (store_idnum.c), kept in the transaction
 * that writes the records: one live person per ID number for every new
 * registration.  ps_idnum_open builds it when missing (in the open
 * transaction); ps_idnum_check adds an id_number error to verrs when nv
 * newly takes a number another live person holds; ps_idnum_update files nv
 * in place of cur (either may be NULL). */
int ps_idnum_open(ps_store_t *st, MDB_txn *txn);
int ps_idnum_check(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, const Popsync__Record *cur,
                   ps_verrs_t *verrs);
int ps_idnum_update(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, const Popsync__Record *cur);
/** Test counter: entries the index deleted or wrote (ps_idnum_update). */
extern uint64_t ps__idnum_writes;

/* The feed and its township index (store_feed.c).  Every write of a
 * feed entry goes through these, in the transaction that writes the
 * record, so that `feed_town` always holds, under the township of each
 * unit of an entry's audience (ps_orgunits_township_code), a copy of the
 * entry keyed township(12) | seq(8, BE):
 *   ps__feed_put_record  the latest change of the record whose stored
 *                        value (header | packed, REC_HDR + size bytes) is hdr
 *   ps__feed_put_exit    a scope exit at seq: readers of unit drop id
 *   ps__feed_drop        removes the entry the stored header old_hdr names
 *                        (the record's previous latest change)
 * ps__feed_open (after the open transaction) builds the index of a store
 * that has none, or one made with another org-unit tree, in transactions
 * of its own that resume where a stopped build left off. */
int ps__feed_put_record(MDB_txn *txn, ps_store_t *st, const uint8_t *hdr, const uint8_t *id, size_t size);
int ps__feed_put_exit(MDB_txn *txn, ps_store_t *st, uint64_t seq, const uint8_t *id, const char *unit);
int ps__feed_drop(MDB_txn *txn, ps_store_t *st, const uint8_t *old_hdr);
int ps__feed_open(ps_store_t *st, char *err, size_t errlen);

/* Gives fn one stored record (header | packed Record, rv) at seq, with the
 * migrant summary the peer is due (store.c; pulls and fetches). */
int ps__emit_record(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, uint64_t seq, const MDB_val *rv,
                    ps_pull_fn fn, void *arg);

/* For the unit tests: records looked up and feed entries read by pulls
 * since the process started (relaxed atomics; nothing else reads them). */
extern uint64_t ps__pull_lookups, ps__pull_examined;

#endif
