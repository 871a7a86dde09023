/* apply.h - the apply path: one pushed change through named stages.
 *
 * Owns: the write transaction of a group commit (ps_apply_txn_t: the
 * feed sequence, the counter deltas, the nodes' high-water marks and the
 * audit chain's head gathered while it runs) and the stages every change
 * goes through, one job each:
 *
 *   ps_apply_dedupe     is this change new?  lcn 0 and a missing record are
 *                       refused; a resend (lcn at or below the node's
 *                       high-water mark) gets the answer it got then
 *   ps_apply_authorise  may this peer touch this record (common/policy.h,
 *                       the one access policy)?  Loads the stored version;
 *                       one the peer may not read and never could is judged
 *                       as absent; a record that left the peer's scope is
 *                       marked to be kept as a conflict
 *   ps_apply_validate   the record's fields and references (common/validate.h),
 *                       kind and base revision
 *   ps_apply_stamp      the edit's time on our clock (HLC): re-timed by the
 *                       cache's clock error, never later than our clock
 *   ps_apply_merge      fast-forward, field merge with the stored version,
 *                       or a conflict kept whole; an edit to what stands is
 *                       answered without a write
 *   ps_apply_persist    the district's ID-number index (a second live holder
 *                       of a number is refused), records, versions, feed,
 *                       counters (by difference), conflicts resolved, audit
 *                       entry
 *
 * Each stage returns a negative error (the whole transaction is aborted),
 * PS_APPLY_NEXT (go on) or PS_APPLY_SETTLED (the change's result is final).
 * ps_apply_change runs them in order and remembers the answer (accepted
 * answers for resends, refusals for ever) and the node's high-water mark.
 *
 * Callers: ps_store_apply (apply.c) on the group-commit worker, store.c
 * (ps_apply_audit_node_event, for a refused Hello or a rebind), and the
 * unit tests (tests/unit/test_server_apply*.c), which run each stage on a
 * temporary store.  Only the server's store files and those tests include
 * this header (it includes store_int.h, hence lmdb.h).
 */
#ifndef PS_APPLY_H
#define PS_APPLY_H

#include "store_int.h"
#include "audit_chain.h"
#include "merge.h"
#include "validate.h"

#define PS_APPLY_NEXT 0
#define PS_APPLY_SETTLED 1

/** A record's high-water mark within a transaction, read and written once
 *  however many of its node's changes the transaction holds. */
typedef struct ps_apply_mark {
    uint8_t node[PS_ID_LEN];
    uint64_t hw;
    int dirty;
} ps_apply_mark_t;

/** Counter deltas of a transaction, written once at its end. */
typedef struct ps_apply_ctab {
    struct ps_apply_centry *v;
    size_t cap, n;           /* cap is a power of two */
} ps_apply_ctab_t;

/** One write transaction (a group commit). */
typedef struct ps_apply_txn {
    ps_store_t *st;
    MDB_txn *txn;
    uint64_t seq;            /**< last feed sequence given in this transaction */
    uint64_t now_ms;         /**< our clock at its start: acceptance time of its changes */
    uint32_t today;          /**< the district's date at now_ms (ps_tz_date): what validation judges by */
    uint64_t conflicts;      /**< conflicts recorded in it */
    ps_apply_ctab_t ctab;
    ps_audit_batch_t audit;  /**< the audit entries it appends (audit_chain.h) */
    ps_apply_mark_t *marks;
    size_t nmarks, capmarks;
    ps_buf_t scratch;        /**< a record or entry being packed for storage */
    ps_buf_t dscratch;       /**< a change packed for its digest */
    struct evp_md_ctx_st *dmd; /**< ... and the hash's context (libcrypto's EVP_MD_CTX) */
    ps_buf_t ablock;         /**< the answers of the Push being applied (apply.c answer_put) */
    uint8_t ablock_node[PS_ID_LEN];
    uint64_t ablock_last;    /**< ... their highest lcn */
    ps_buf_t oldrec;         /**< the packed stored version of the change being applied (load_current),
                                  which becomes its superseded version without a second lookup */
} ps_apply_txn_t;

/** What becomes of a record that left the sender's scope. */
enum { PS_APPLY_WRITE = 0, PS_APPLY_MOVED_AWAY = 1 };

/** One change going through the stages. */
typedef struct ps_apply_change {
    ps_push_job_t *job;
    const Popsync__Change *ch;
    ps_change_result_t *res;     /**< the answer, filled as the stages go */
    int duplicate;               /**< dedupe: answered as a resend */
    Popsync__Record *cur;        /**< authorise: the stored version (NULL: new, or hidden from the sender) */
    uint8_t old_hdr[REC_HDR];    /**< ... and its stored header */
    int hidden;                  /**< authorise: a stored record the sender may not know of */
    int verdict;                 /**< authorise: PS_APPLY_WRITE or PS_APPLY_MOVED_AWAY */
    Popsync__Record *base;       /**< the version the change was based on, when older than cur */
    uint64_t base_gen;
    uint64_t hlc;                /**< stamp: the edit's time on our clock */
    Popsync__Rev mine_rev;       /**< the change's own revision (as kept in a conflict) */
    ps_merge_t m;                /**< merge: a field merge's outcome */
    int have_merge;
    Popsync__Record nv;          /**< merge: the version to store (shallow) */
    Popsync__Rev rev;            /**< ... its revision */
    ps_verrs_t verrs;            /**< refusals found by the stages */
} ps_apply_change_t;

/** Begins the write transaction (now_ms: our clock). */
int ps_apply_begin(ps_apply_txn_t *a, ps_store_t *st);
/** Writes the marks, counters and head and commits durably; the store's
 *  head moves only after the commit.  Always ends the transaction. */
int ps_apply_commit(ps_apply_txn_t *a);
/** Aborts (and frees) a transaction not committed. */
void ps_apply_abort(ps_apply_txn_t *a);

/** Before any change of a job: the node id must be the pusher's (bound now
 *  if new) and a change under an lcn already answered must be that same
 *  change (else a copied cache).  A refusal sets job->refused. */
int ps_apply_admit(ps_apply_txn_t *a, ps_push_job_t *job);

void ps_apply_change_init(ps_apply_change_t *x, ps_push_job_t *job, const Popsync__Change *ch,
                          ps_change_result_t *res);
void ps_apply_change_free(ps_apply_change_t *x);

int ps_apply_dedupe(ps_apply_txn_t *a, ps_apply_change_t *x);
int ps_apply_authorise(ps_apply_txn_t *a, ps_apply_change_t *x);
int ps_apply_validate(ps_apply_txn_t *a, ps_apply_change_t *x);
int ps_apply_stamp(ps_apply_txn_t *a, ps_apply_change_t *x);
int ps_apply_merge(ps_apply_txn_t *a, ps_apply_change_t *x);
int ps_apply_persist(ps_apply_txn_t *a, ps_apply_change_t *x);

/** Runs the stages on job's change i into job->results[i], then remembers
 *  the answer and moves the node's mark.  PS_OK or a database error. */
int ps_apply_change(ps_apply_txn_t *a, ps_push_job_t *job, size_t i);

/** An audit entry about a node id rather than a record (a refused Hello, a
 *  rebind), in txn (store.c). */
int ps_apply_audit_node_event(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const uint8_t *node,
                              const char *action);

#endif
