/* store.h - the server's LMDB store: records, change feed, node marks.
 *
 * Owns: the LMDB environment and its named databases (docs/architecture.md,
 * "Store"):
 *   records  id(16)            -> header(50) | packed Record   (header: store.c)
 *   versions id(16)|gen(8, BE) -> packed Record                each superseded version (store_versions.h)
 *   conflicts cid(16)          -> packed Conflict
 *   conflict_lost node(16)     -> count(8, BE) open conflicts an edit of node lost; "open" -> all open
 *   conflict_open cid(16)      -> the open conflict's nodes and units (what the policy asks), a list's walk
 *                                 (both store_conflicts.c, moved in the transaction that writes the conflict)
 *   audit    n(8, BE)          -> packed AuditEntry (chained per write transaction, audit_chain.h; head in meta "audit_head")
 *   counters month(4)|unit(12)|indicator -> int64 (BE), kept in the write transaction
 *   closes   month(4)|township(12) -> packed CloseResult (state, frozen values)
 *   feed     seq(8, BE)        -> id(16)|2|kind|flags|unit(12)|other(12)|size(4)
 *                                                    one entry per record: its latest change
 *                                 id(16)|1|unit(12) a scope exit: readers of unit must drop it
 *   feed_town township(12)|seq(8) -> the feed entry, under each township of its audience
 *                                 (store_feed.c: a township's pull reads only its own)
 *   nodes    node(16)          -> hw(8) | last_seen_ms(8) | cursor(8)   (all BE)
 *            node(16)|0x01     -> packed NodeStatus: the certificate last seen (store_admin.c)
 *            node(16)|0x02     -> packed NodeStatus: the identity the node id is bound to
 *   rejects  node(16)|lcn(8)   -> packed ChangeResult of a rejected change
 *   answers  node(16)|lcn(8)   -> digest(8) | packed ChangeResult of an accepted change,
 *                                 until the node pushes above that lcn (DUPLICATE replays it)
 *   meta     "server_node"     -> 16 random bytes; "head" -> seq(8, BE)
 *
 * Synchronous API meant for worker threads (uv_queue_work): nothing here
 * touches the loop.  One writer at a time (the caller serialises
 * ps_store_apply); any number of concurrent readers (MDB_NOTLS).
 *
 * Speaks records, not frames: it takes decoded requests and returns typed
 * values (per-change results, feed entries through a callback, C structs,
 * or a reply message it built but never packs); server/reply.h makes the
 * frames.  The apply path's stages are server/apply.h.
 *
 * Caveats: values read from LMDB are valid only inside their transaction,
 * so everything returned is copied or decoded, and a pull callback's bytes
 * are valid only during the call.
 */
#ifndef PS_STORE_H
#define PS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "digest.h"
#include "ids.h"
#include "orgunit.h"
#include "tls.h"
#include "tz.h"

#include <protobuf-c/protobuf-c.h>

/* The wire messages the store's functions take, declared rather than
 * included: a module that reads them includes wire.pb-c.h itself. */
typedef struct Popsync__Push Popsync__Push;
typedef struct Popsync__Query Popsync__Query;
typedef struct Popsync__ReportRequest Popsync__ReportRequest;
typedef struct Popsync__CloseRequest Popsync__CloseRequest;
typedef struct Popsync__ChangeResult Popsync__ChangeResult;
typedef struct Popsync__Rev Popsync__Rev;
typedef struct Popsync__FieldError Popsync__FieldError;

typedef struct ps_store ps_store_t;

typedef struct ps_store_opts {
    size_t map_size;         /**< initial LMDB map size in bytes (grows when full) */
    size_t map_max;          /**< the map never grows past this (0: no cap) */
    uint64_t max_future_ms;  /**< how far ahead of our clock at acceptance an edit's time may stay (default 0) */
    const ps_orgunits_t *units; /**< org-unit tree for validation (may be NULL) */
    ps_tz_t tz;              /**< the district's zone: "today" for date checks and reports (tz.h) */
    int allow_synthetic;     /**< take records marked synthetic (popsync generate): a test server only */
} ps_store_opts_t;

/** What became of one change of a push (docs/sync.md §4).  The values are
 *  those of ChangeStatus in proto/wire.proto. */
typedef enum ps_change_status {
    PS_CHANGE_ACCEPTED = 1,  /**< applied now (or left the record as it stood) */
    PS_CHANGE_DUPLICATE = 2, /**< applied by an earlier push: the answer it got then */
    PS_CHANGE_REJECTED = 3,  /**< not applied: see errors */
    PS_CHANGE_CONFLICT = 4   /**< not applied: kept whole as conflict conflict_id */
} ps_change_status_t;

#define PS_CHANGE_ERRORS_MAX 8 /**< field errors kept per change (PS_VERR_MAX) */

/** The answer to one change, in the order of the Push. */
typedef struct ps_change_result {
    uint64_t lcn;
    ps_change_status_t status;
    int has_id;
    uint8_t id[PS_ID_LEN];             /**< the record's id */
    uint64_t seq;                      /**< the feed sequence the change got (ACCEPTED, DUPLICATE) */
    int has_rev;                       /**< the revision the record now has (ACCEPTED, DUPLICATE) */
    uint64_t gen, hlc;
    int has_rev_node;
    uint8_t rev_node[PS_ID_LEN];
    int own_copy;                      /**< ACCEPTED and stored exactly as sent, on the current version:
                                        *   the sender's copy with this rev is the stored version, so a
                                        *   Pull with skip_own of its connection leaves it out */
    int has_conflict;                  /**< the change raised conflict conflict_id */
    uint8_t conflict_id[PS_ID_LEN];
    size_t nerrors;                    /**< REJECTED: why, field by field */
    /** nerrors of them, allocated (PS_CHANGE_ERRORS_MAX room) for a REJECTED
     *  change only and freed by ps_change_result_clear: inline, the 2.3 KB
     *  of room made every result of a group commit 2.4 KB, ~96 MB of
     *  RssAnon for 40,000 changes (issue 17). */
    struct ps_change_field_error {
        char field[32];                /**< as ps_field_error_t (common/validate.h) */
        char reason[256];
    } *errors;
} ps_change_result_t;

/** Frees r's field errors (r stays valid, with none). */
void ps_change_result_clear(ps_change_result_t *r);

/**
 * One Push from one connection, applied by ps_store_apply together with the
 * other waiting pushes.  The caller fills the inputs and owns the job.
 */
typedef struct ps_push_job {
    /* inputs */
    uint8_t node[PS_ID_LEN];   /**< the pushing cache's node id (from Hello) */
    ps_peer_t peer;            /**< the certificate's identity */
    Popsync__Push *push;       /**< decoded Push (owned by the job's creator) */
    uint64_t clock_ms;         /**< Push.clock_ms: the cache's clock when it sent the Push (0: not sent) */
    int64_t clock_skew_ms;     /**< clock_ms minus our clock when the Push arrived (0 without clock_ms) */
    /* outputs */
    ps_change_result_t *results; /**< one per change (push->n_changes), freed by ps_push_job_results_free */
    size_t nresults;
    int status;                /**< PS_OK, or the error that failed the whole transaction (no results) */
    size_t accepted, duplicate, rejected, conflicted;
    int refused;               /**< PS_EACCES (node bound to another certificate) or PS_ESTALE
                                *   (copied cache): nothing of the job was applied, no results */
    char why[384];             /**< the refusal, for the Error sent to the client */
    /* the caller's, never read by the store */
    uint32_t request_id;
    int compress;              /**< compress the reply (agreed with the client) */
    ps_buf_t reply;            /**< the reply frame (server/reply.c builds it from the results) */
    uint64_t *own_seqs;        /**< the seqs of its own_copy results, ascending (commit.c; malloc'd) */
    size_t nown;
    struct ps_push_job *next;
    void *owner;
} ps_push_job_t;

/** Whether the cache's clock is off by more than the protocol's tolerance
 *  (its changes are re-timed, and the PushResult says by how much). */
static inline int ps_push_clock_wrong(const ps_push_job_t *job)
{
    return job->clock_ms &&
           (job->clock_skew_ms > PS_CLOCK_TOLERANCE_MS || job->clock_skew_ms < -PS_CLOCK_TOLERANCE_MS);
}

/** A result as a ChangeResult message over the caller's rev and
 *  field-error storage (PS_CHANGE_ERRORS_MAX of each): the form the store remembers answers in, and the
 *  one the protocol layer sends in a PushResult. */
void ps_change_result_msg(const ps_change_result_t *r, Popsync__ChangeResult *m, Popsync__Rev *rev,
                          Popsync__FieldError *fe, Popsync__FieldError **fep);

/** Frees a job's results (safe to call twice). */
void ps_push_job_results_free(ps_push_job_t *job);

/** Opens (creating if needed) the store in dir.  Caller owns *out. */
int ps_store_open(ps_store_t **out, const char *dir, const ps_store_opts_t *opts, char *err, size_t errlen);
void ps_store_close(ps_store_t *st);

/** The store's own 16-byte id. */
const uint8_t *ps_store_server_node(const ps_store_t *st);
/** The current map size in bytes. */
size_t ps_store_map_size(ps_store_t *st);
/** Highest sequence committed so far. */
uint64_t ps_store_head(ps_store_t *st);

/**
 * Applies every job in the list in one durable transaction (the stages of
 * server/apply.h).  Each change is validated and checked against the
 * peer's scope on its own; a bad change is rejected with its field errors
 * and the rest land.  On return each job holds one result per change.
 * Returns PS_OK, or an error when the transaction could not be committed
 * (then every job's status says so and has no results; nothing was
 * applied).
 */
int ps_store_apply(ps_store_t *st, ps_push_job_t *jobs);

/* --- what the read side gives back (the protocol layer, server/reply.h,
 * turns these into reply frames; nothing here knows frames) --- */

/** One entry of the change feed that a pull or fetch sends.  The bytes are
 *  the store's own (valid only during the callback): no copy is made. */
typedef struct ps_pull_item {
    uint64_t seq;               /**< the entry's feed sequence */
    const uint8_t *gone_id;     /**< not NULL: the record with this id left the reader's scope (no record) */
    const uint8_t *record;      /**< the packed Record exactly as stored */
    size_t record_len;
    const uint8_t *migrant;     /**< a packed MigrantSummary (docs/security.md §8.3), or NULL */
    size_t migrant_len;
} ps_pull_item_t;

/** Receives each entry in sequence order; a non-zero return stops the read
 *  and is returned by it. */
typedef int (*ps_pull_fn)(void *arg, const ps_pull_item_t *it);

/** How a pull or fetch ended: the reader's cursor after it (0 for a fetch,
 *  which never moves it), whether more entries wait, and the head. */
typedef struct ps_pull_end {
    uint64_t cursor;
    int more;
    uint64_t head;
} ps_pull_end_t;

/** Per bucket of record id (common/digest.h): the digest and count of the
 *  records a peer may read. */
typedef struct ps_verify_digests {
    uint64_t digests[PS_VERIFY_BUCKETS];
    uint32_t counts[PS_VERIFY_BUCKETS];
} ps_verify_digests_t;

/** One record of a verify bucket: its id and revision. */
typedef struct ps_verify_item {
    uint8_t id[PS_ID_LEN];
    uint64_t gen, hlc;
    int deleted;
} ps_verify_item_t;

/**
 * A reply message the store built (a protobuf-c message struct, never
 * packed here) and the memory it points into.  The protocol layer packs
 * msg, then calls ps_store_msg_free.
 */
typedef struct ps_store_msg {
    ProtobufCMessage *msg;
    void (*release)(void *priv); /**< frees priv and all msg points into */
    void *priv;
} ps_store_msg_t;

/** Frees what a ps_store_* function put in m (safe on a zeroed m). */
void ps_store_msg_free(ps_store_msg_t *m);

/**
 * Gives fn the feed entries with seq > cursor visible to peer, in sequence
 * order, at most max_records / about max_bytes of records, and fills *end.
 */
int ps_store_pull(ps_store_t *st, const ps_peer_t *peer, uint64_t cursor, uint32_t max_records,
                  uint32_t max_bytes, ps_pull_fn fn, void *arg, ps_pull_end_t *end);

/** Reads a node's high-water mark (0 when unknown).  Read-only, unless the
 *  node id is bound to another certificate identity: then PS_EACCES with
 *  the refusal in err, and the refusal is written to the audit log. */
int ps_store_node_hello(ps_store_t *st, const uint8_t node[PS_ID_LEN], const ps_peer_t *peer, uint64_t *hw,
                        char *err, size_t errlen);
/** Binds node to the identity of the certificate in cert_file (offline
 *  admin: `popsyncd node rebind`), with an audit entry.  *old gets the
 *  identity it was bound to ("" when none). */
int ps_store_node_rebind(ps_store_t *st, const uint8_t node[PS_ID_LEN], const ps_peer_t *to, char *old,
                         size_t oldlen);

/** A ConflictListResult in *out: conflicts this peer, syncing as node, may
 *  see (common/policy.h: its scope, or its own edits), at most max (1000). */
int ps_store_conflicts(ps_store_t *st, const ps_peer_t *peer, const uint8_t node[PS_ID_LEN], int include_resolved,
                       uint32_t max, ps_store_msg_t *out);
/** A record's versions, oldest first, each with the audit entry of the
 *  change that made it (who and when): a HistoryResult in *out.  Nothing
 *  (no versions, no counts) when the record does not exist or peer may not
 *  read it, alike; versions peer may not read are only counted (hidden);
 *  at most max (0 or over 100: 100) of the latest.  store_history.c. */
int ps_store_history(ps_store_t *st, const ps_peer_t *peer, const ProtobufCBinaryData *id, uint32_t max,
                     ps_store_msg_t *out);
/** Open conflicts in which an edit of node lost (told in Welcome, so the
 *  cache whose edit lost learns of it at its next sync).  Read-only, one
 *  lookup (store_conflicts.c). */
int ps_store_conflicts_lost(ps_store_t *st, const uint8_t node[PS_ID_LEN], uint32_t *n);
/** At most this many approved months go into one Welcome. */
#define PS_APPROVED_MONTHS_MAX 2000
/** The approved months, from month since (YYYYMM) on, of the townships the
 *  peer's records count in, as "YYYY-MM TOWNSHIP" strings (Welcome field
 *  14: the cache warns of a late entry).  Caller frees with
 *  ps_store_approved_free.  Read-only (store_approved.c). */
int ps_store_approved_months(ps_store_t *st, const ps_peer_t *peer, uint32_t since, char ***out, size_t *n);
void ps_store_approved_free(char **months, size_t n);
/** Open and total conflicts (metrics, status): a lookup and LMDB's entry count. */
int ps_store_conflict_count(ps_store_t *st, uint64_t *open_conflicts, uint64_t *total);
/** The bucket digests of the peer's scope. */
int ps_store_verify_digests(ps_store_t *st, const ps_peer_t *peer, ps_verify_digests_t *out);
/** (id, revision) of the peer's records in these buckets, in id order:
 *  *items (caller frees) and *n. */
int ps_store_verify_buckets(ps_store_t *st, const ps_peer_t *peer, const uint32_t *buckets, size_t nb,
                            ps_verify_item_t **items, size_t *n);
/** Gives fn the records of these ids that the peer may read (as a pull
 *  does); *end gets cursor 0 and the head. */
int ps_store_fetch(ps_store_t *st, const ps_peer_t *peer, const ProtobufCBinaryData *ids, size_t n,
                   ps_pull_fn fn, void *arg, ps_pull_end_t *end);

/**
 * Checks the audit chain: numbering without gaps, each entry (old rule) or
 * write transaction's batch (new rule) following from the one before
 * (audit_chain.h), and the head (in meta) naming the last.  PS_OK with the
 * entry count, or PS_EPROTO with the first break described in err.
 */
int ps_store_audit_verify(ps_store_t *st, uint64_t *entries, char *err, size_t errlen);

/** Answers a Query: one QueryResult in *out holding every group row (the
 *  protocol layer cuts it into frames) or the page of records.
 *  PS_EINVAL/PS_ETOOBIG with a reason in err for a query that cannot run. */
int ps_store_query(ps_store_t *st, const ps_peer_t *peer, const Popsync__Query *q, ps_store_msg_t *out, char *err,
                   size_t errlen);
/** The monthly report (from the counters): a ReportResult in *out. */
int ps_store_report_monthly(ps_store_t *st, const ps_peer_t *peer, const Popsync__ReportRequest *req,
                            ps_store_msg_t *out, char *err, size_t errlen);
/** The data-quality report (a scan): a ReportResult in *out. */
int ps_store_report_quality(ps_store_t *st, const ps_peer_t *peer, const Popsync__ReportRequest *req,
                            ps_store_msg_t *out, char *err, size_t errlen);
/** Submits, approves, returns or reads a township's month: the month's
 *  state as a CloseResult in *out. */
int ps_store_close_month(ps_store_t *st, const ps_peer_t *peer, const Popsync__CloseRequest *req,
                         ps_store_msg_t *out, char *err, size_t errlen);
/** Recounts every counter from the records and compares: mismatches (0 = all equal). */
int ps_store_counters_check(ps_store_t *st, uint64_t *checked, uint64_t *mismatched, char *err, size_t errlen);

/** Counts live (not deleted) records and all records; for tests and status. */
int ps_store_count(ps_store_t *st, uint64_t *live, uint64_t *total);

/* --- issue 9: operations (store_admin.c) --- */

/** What the server knows of a node besides its high-water mark. */
typedef struct ps_node_info {
    uint8_t node[PS_ID_LEN];
    uint64_t last_seen_ms;   /**< last Hello, Pull or Push */
    uint64_t cursor;         /**< the node's cursor as last known */
    char name[64], role[16], orgunit[16]; /**< from its certificate */
} ps_node_info_t;

/** Persists node entries in `nodes` in one durable transaction: last seen
 *  and cursor in node(16) (keeping its high-water mark), the certificate
 *  identity in node(16)|0x01.  last_seen never goes backwards. */
int ps_store_nodes_put(ps_store_t *st, const ps_node_info_t *v, size_t n);
/** A NodeStatusResult in *out: every node in `nodes`, overlaid with the
 *  newer in-memory entries live[0..n) (marked connected). */
int ps_store_node_status(ps_store_t *st, const ps_node_info_t *live, size_t n, ps_store_msg_t *out);
/** The map size and the bytes in use (last page + 1, times the page size). */
int ps_store_env_info(ps_store_t *st, uint64_t *map_bytes, uint64_t *used_bytes);
/** Hot backup: a compacted copy of the store in dir, from one read
 *  transaction, written to to.tmp, fsynced and renamed to to.  Safe while
 *  popsyncd serves.  *bytes gets the copy's size. */
int ps_store_backup(const char *dir, const char *to, uint64_t *bytes, char *err, size_t errlen);
/** Makes store dir (created, or existing and empty) from a backup file.
 *  The change-feed head is advanced by advance_head so that caches whose
 *  cursors passed the backup's head still see every new change. */
int ps_store_restore(const char *from, const char *dir, uint64_t advance_head, uint64_t *head, char *err,
                     size_t errlen);

#endif
