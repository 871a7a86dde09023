/* store_cols.h - the column projection of the records (store_cols.c).
 *
 * Owns: the "cols" database, a compact fixed-size row per record holding
 * what filtered and grouped counts look at (kind, unit, other place,
 * deleted, creation month, and every enum, bool, integer, date and short
 * code field of the record's kind), kept in the transaction that writes
 * the record; and the count engine that answers a Query from those rows
 * with the meaning of common/query_rules.c, so a count never unpacks a
 * record.  Callers: store.c (open), apply.c persist stage and
 * store_upstream.c (every write of `records`), store_query.c (answers).
 * Include after store_int.h.
 */
#ifndef PS_STORE_COLS_H
#define PS_STORE_COLS_H

#include "store_int.h"

/** Opens the database and builds it from the records when it is missing
 *  or was made with another layout (an older data directory), in the open
 *  transaction. */
int ps_cols_open(ps_store_t *st, MDB_txn *txn);

/** Notes the head the projection is good for, at a clean close (an older
 *  popsyncd writing after it makes the next open rebuild it). */
void ps_cols_close(ps_store_t *st);

/** Files nv's row in place of cur's (cur NULL for a new record), in the
 *  transaction that stores nv. */
int ps_cols_update(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, const Popsync__Record *cur);

/** 1 when every name q uses (filters, date field, groups, sum) is in the
 *  projection of q's kind and q counts (not a listing). */
int ps_cols_usable(const Popsync__Query *q);

/** A count answers at most this many groups (the scan's limit too). */
#define PS_QUERY_MAX_GROUPS 200000

/** Where an answer from the projection goes. */
typedef struct ps_cols_sink {
    /* A row the projection could not hold exactly (a text longer than its
     * column): the record itself, already in scope; the callee matches and
     * groups it as the scan does. */
    int (*raw)(void *arg, const Popsync__Record *r);
    /* One group: its parts (q->n_group_by of them), how many records
     * matched and the sum of the sum field. */
    int (*group)(void *arg, const char *const *parts, uint64_t count, int64_t sum);
    void *arg;
} ps_cols_sink_t;

/** ps_cols_update for a new record that passed the validate stage on day
 *  today (ps_tz_date of the district, as the validate stage took it) with
 *  no current version (the quality report's validation is a part of that
 *  one, so the row needs no second pass). */
int ps_cols_update_new(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, uint32_t today);

/** ps_cols_update for an edit of cur whose new version nv is the change
 *  that passed the validate stage whole on day today (a fast-forward, not
 *  a merge): the validate stage's checks with the current version are a
 *  superset of the quality report's, so the row needs no second pass, and
 *  the day is the stage's (no clock read per edit). */
int ps_cols_update_validated(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, const Popsync__Record *cur,
                             uint32_t today);

/** Test and bench counters (not locked: read them in one thread): rows
 *  written, and records the quality flag had to validate a second time. */
extern uint64_t ps__cols_puts, ps__cols_validations;

/** Answers q (ps_cols_usable) for peer from the projection in txn: every
 *  group to sink, *scanned and *matched as the scan counts them.  PS_OK,
 *  PS_ETOOBIG (too many groups, reason in err), PS_ENOMEM or a db error. */
int ps_cols_count(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const Popsync__Query *q,
                  const ps_cols_sink_t *sink, uint64_t *scanned, uint64_t *matched, char *err, size_t errlen);

/** One record as the projection holds it (ps_cols_each); the pointers
 *  point into the read transaction's map. */
typedef struct ps_cols_item {
    int kind;
    char unit[13], other[13];  /* other: "" when none */
    const uint8_t *id;         /* 16 bytes */
    int deleted;
    int raw;                   /* the row does not hold everything: read the record */
    int recheck;               /* the validator may find something in it */
    uint64_t nbhash;           /* a person's name and birth date hashed; 0: either empty */
    uint64_t idhash;           /* a person's 18-character ID number hashed; 0: none */
    size_t nrefs;              /* its references (ps_record_refs), when not raw */
    struct {
        const char *field;
        int kind;
        const uint8_t *id;
    } refs[PS_REFS_MAX];
    const struct layout *layout;
    const uint8_t *row;
} ps_cols_item_t;

/** Every row, tombstones too, in (kind, unit) order, to fn until it
 *  returns non-zero (returned). */
int ps_cols_each(ps_store_t *st, MDB_txn *txn, int (*fn)(void *arg, const ps_cols_item_t *it), void *arg);
/** A date or code column of it as text ("" when empty) in out; NULL when
 *  its kind has no such column. */
const char *ps_cols_text(const ps_cols_item_t *it, const char *name, char out[32]);
/** An enum, bool or integer column of it; PS_EINVAL when none. */
int ps_cols_num(const ps_cols_item_t *it, const char *name, int64_t *out);

/** ps_store_query by a scan of the records, whatever the query: the
 *  answer the projection's must equal (the unit tests compare them). */
int ps__store_query_scan(ps_store_t *st, const ps_peer_t *peer, const Popsync__Query *q, ps_store_msg_t *out,
                         char *err, size_t errlen);

/** The quality report by a scan of every record (the indexed answer must
 *  equal it; store_quality.c). */
int ps__store_quality_scan(ps_store_t *st, const ps_peer_t *peer, const Popsync__ReportRequest *req,
                           ps_store_msg_t *out, char *err, size_t errlen);

#endif
