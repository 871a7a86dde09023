/* cache.h - the client's local LMDB cache.
 *
 * Owns: the cache directory and its named databases:
 *   records   id(16)      -> revision (35 bytes, plain) | sealed packed Record (the local view):
 *                            the record sealed as the server sent it (or as packed
 *                            after a local edit); an ack rewrites only the revision
 *   outbox    lcn(8, BE)  -> sealed packed Change, in the order made
 *   pending   id(16)      -> count(8, BE) of outbox changes for that record
 *   rejected  lcn(8, BE)  -> sealed n1(8) | n2(8) | packed PushResult (n1) | Push (n2):
 *                            a change the server refused or kept whole as a
 *                            conflict (status CONFLICT), whole, with why: the
 *                            "refused" state (`popsync refused`), left only by
 *                            discard or by an edit that goes back to the outbox
 *   counters  month(4, BE) -> sealed report counters of that month (cache_counters.h),
 *                            kept in the transaction of every records write
 *   meta      name        -> value (node id, cursor, next lcn, server, files, identity, key,
 *                            the district's time zone)
 *
 * Every local edit writes the record and its outbox entry in one
 * transaction; every pulled batch is applied together with the new cursor in
 * one transaction; so a crash anywhere leaves the cache consistent.
 * Only this file and cache.c include lmdb.h.
 *
 * Encryption at rest: every value of records, outbox and rejected, and the
 * meta value "name" (our certificate's CN, which may name a person), is
 * sealed: 0x02 | nonce(12, random) | ChaCha20-Poly1305 ciphertext | tag(16)
 * under the cache key HMAC-SHA256(DEK, "popsync cache key v2:
 * ChaCha20-Poly1305"), with AAD = database name then key bytes, so a value
 * moved to another key or database fails to open.  Values an older popsync
 * wrote, 0x01 | nonce | AES-256-GCM under the DEK (a records value then
 * holding its revision inside), are read as they are and rewritten in the
 * new form when next written (docs/data-model.md).  The data key (DEK, 32
 * random bytes made at creation) is kept in meta "dek" sealed with
 * AES-256-GCM as 0x01 (AAD "meta" "dek")
 * under a key-encryption key (KEK) that keys.c gets (see keys.h): from a
 * passphrase (meta "kek" = "pbkdf2-sha256", with "kdf_salt" and
 * "kdf_iterations") or a key file (meta "kek" = "key-file", its absolute
 * path in "key_file").  The cache keeps those parameters and only receives
 * the KEK; it never prompts nor reads a key file itself.
 * The DEK's GCM tag is the key check: a wrong passphrase or key file makes
 * ps_cache_open fail with PS_ECRYPTO and "wrong passphrase (or key file)
 * for this cache", never garbage.  Other meta values (node id, cursor, lcn,
 * hlc, server address, certificate paths, role, org unit, the org-unit
 * file) reveal no person and stay plain.  Keys are zeroed after use.
 */
#ifndef PS_CACHE_H
#define PS_CACHE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "ids.h"

#include "records.pb-c.h"

/* The wire messages the cache's functions take, declared rather than
 * included: a module that reads them includes wire.pb-c.h itself. */
typedef struct Popsync__Push Popsync__Push;
typedef struct Popsync__PushResult Popsync__PushResult;
typedef struct Popsync__PullBatch Popsync__PullBatch;
typedef struct Popsync__Change Popsync__Change;
typedef struct Popsync__ChangeResult Popsync__ChangeResult;
typedef struct Popsync__MigrantSummary Popsync__MigrantSummary;

typedef struct ps_cache ps_cache_t;

/** What `popsync init` fixes for a cache, plus the sync position. */
typedef struct ps_cache_meta {
    uint8_t node[PS_ID_LEN];  /**< random at init: which cache is speaking */
    char server[256];         /**< HOST:PORT */
    char server_name[64];     /**< name the server's certificate must carry */
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    char role[16];            /**< from our certificate */
    char orgunit[16];         /**< from our certificate */
    char name[64];            /**< our certificate's CN (stored sealed) */
    char key_file[PATH_MAX];  /**< key file protecting the cache (absolute path), or "" for a passphrase;
                                   at create: "" means POPSYNC_KEY_FILE if set, else a passphrase */
    uint64_t cursor;          /**< last feed sequence applied */
    uint64_t next_lcn;        /**< next local change number */
    uint64_t last_sync_ms;    /**< when a sync last completed (0: never) */
    uint64_t last_attempt_ms; /**< when a sync was last tried, completed or not (0: never) */
    char last_error[256];     /**< why that attempt failed ("": it completed) */
    uint64_t conflicts_open;  /**< open conflicts this identity may see, at the last count */
    int conflicts_known;      /**< conflicts_open was counted (by a sync or `conflicts list`) */
    char timezone[64];        /**< the district's zone, from the server's Welcome ("": not yet known) */
    int64_t clock_skew_ms;    /**< this device's clock minus the server's at the last sync, when beyond
                                   PS_CLOCK_TOLERANCE_MS (0: right, or never measured) */
    int64_t clock_offset_ms;  /**< added to the device's clock to time edits (the server's clock as
                                   learned at a sync; 0 while the device's clock is right) */
    int synthetic_policy;     /**< PS_SYNTHETIC_*: does the server take generated test data (last Welcome) */
    uint32_t ui_timeout_s;    /**< how long a `popsync ui` page waits for the server's answer
                                   (`popsync config set ui_timeout`; 0: PS_UI_TIMEOUT_DEFAULT_S) */
    uint32_t ui_retry_after_s; /**< how long `popsync ui` pages answer from the cache without asking
                                    after the server did not answer (`popsync config set
                                    ui_retry_after`; 0: PS_UI_RETRY_AFTER_DEFAULT_S) */
} ps_cache_meta_t;

/** A `popsync ui` page's wait for the server, unless the cache says otherwise
 *  (docs/ui.md §1), and the most `popsync config set ui_timeout` takes. */
#define PS_UI_TIMEOUT_DEFAULT_S 10u
#define PS_UI_TIMEOUT_MAX_S 300u
/** After the server did not answer a page, how long the pages answer from
 *  the cache without asking it again (docs/ui.md §1), and the most
 *  `popsync config set ui_retry_after` takes. */
#define PS_UI_RETRY_AFTER_DEFAULT_S 60u
#define PS_UI_RETRY_AFTER_MAX_S 3600u

#define PS_SYNTHETIC_UNKNOWN 0 /**< never synced */
#define PS_SYNTHETIC_REFUSED 1 /**< a real district's server */
#define PS_SYNTHETIC_ALLOWED 2 /**< a test server (popsyncd --allow-synthetic) */

/**
 * Creates a new cache in dir (refuses an existing one), encrypted under a
 * new data key protected by meta->key_file (made with mode 0600 if absent)
 * or POPSYNC_KEY_FILE, else the passphrase (POPSYNC_PASSPHRASE or the
 * terminal).  Without a passphrase or key file nothing is created.
 */
int ps_cache_create(const char *dir, const ps_cache_meta_t *meta, char *err, size_t errlen);
/**
 * Fills m for a cache syncing with server (HOST:PORT, certificate name
 * "popsyncd") under the identity NAME of a `popsync pki` directory
 * (pki_dir/ca.crt, pki_dir/NAME.crt, pki_dir/NAME.key) as role in unit,
 * with a new random node id: what the benchmark and the test drivers pass
 * to ps_cache_create.  PS_OK, PS_ETOOBIG (a path too long) or PS_EIO.
 */
int ps_cache_meta_for_pki(ps_cache_meta_t *m, const char *server, const char *pki_dir, const char *name,
                          const char *role, const char *unit);
/** ps_cache_create, leaving the new cache open in *out (no second key derivation). */
int ps_cache_create_open(ps_cache_t **out, const char *dir, const ps_cache_meta_t *meta, char *err, size_t errlen);
/**
 * Opens an existing cache, getting its key from the key file it names (or
 * POPSYNC_KEY_FILE) or the passphrase (POPSYNC_PASSPHRASE or the terminal).
 * PS_ECRYPTO with err "wrong passphrase (or key file) for this cache" when
 * the key does not fit.  Caller owns *out (ps_cache_close).
 */
int ps_cache_open(ps_cache_t **out, const char *dir, char *err, size_t errlen);
void ps_cache_close(ps_cache_t *c);
/** The cache's settings and sync position (copied). */
const ps_cache_meta_t *ps_cache_meta(const ps_cache_t *c);

/**
 * Records a local change: stores r as the local version and appends a
 * Change (with the next lcn and base = the revision the local copy had) to
 * the outbox, in one transaction.  r->rev.hlc is set to now.  A change
 * whose content equals the local version (ps_record_same_content) writes
 * nothing and returns PS_OK: no revision, no outbox entry.
 */
int ps_cache_put_local(ps_cache_t *c, Popsync__Record *r);
/** The same for n records in one transaction (imports, the generator). */
int ps_cache_put_local_many(ps_cache_t *c, Popsync__Record *const *recs, size_t n);
/** ps_cache_put_local_many that also says how many records it wrote (the
 *  others were equal to their local versions). */
int ps_cache_put_local_count(ps_cache_t *c, Popsync__Record *const *recs, size_t n, size_t *written);

/** Reads one record; caller frees *out with ps_record_free. PS_ENOTFOUND if absent. */
int ps_cache_get(ps_cache_t *c, const uint8_t id[PS_ID_LEN], Popsync__Record **out);

/** Calls fn for every record (in id order); stops early if fn returns non-zero. */
int ps_cache_foreach(ps_cache_t *c, int (*fn)(Popsync__Record *r, void *arg), void *arg);
/** Like ps_cache_foreach, from the record after id after (NULL: the first):
 *  the web interface's pages, each continuing where the last stopped. */
int ps_cache_foreach_after(ps_cache_t *c, const uint8_t *after, int (*fn)(Popsync__Record *r, void *arg), void *arg);
/** How many changes of record id wait in the outbox (0: none), cheaply. */
int ps_cache_pending_of(ps_cache_t *c, const uint8_t id[PS_ID_LEN], uint64_t *n);
/** Like ps_cache_foreach, only the records with changes still in the
 *  outbox (not yet accepted by the server), as the cache shows them. */
int ps_cache_foreach_pending(ps_cache_t *c, int (*fn)(Popsync__Record *r, void *arg), void *arg);

/**
 * Live persons matching what a clerk typed, from the person index (no scan):
 * a whole ID number, its last 4 or 6 characters, a whole name or its first
 * 1 or 2 characters, or "name date" (cache_pindex.h).  At most max, into a
 * new array *out of *n records; the caller frees each with
 * protobuf_c_message_free_unpacked and the array with free.  PS_OK (maybe
 * none), PS_ENOMEM or a cache error.
 */
int ps_cache_find(ps_cache_t *c, const char *text, size_t max, Popsync__Record ***out, size_t *n);

/** Calls fn for every live record of kind (from the index's K terms: no
 *  scan, but for persons, which are scanned), in no useful order; stops
 *  early when fn returns non-zero.  ps_cache_foreach's other rules hold. */
int ps_cache_foreach_kind(ps_cache_t *c, int kind, int (*fn)(Popsync__Record *r, void *arg), void *arg);
/** As ps_cache_foreach_kind, for the live migrations without a feedback
 *  date only (the open cases: the index's O term, no scan of the closed
 *  ones).  A hit is a candidate: fn still checks the feedback date. */
int ps_cache_foreach_open_case(ps_cache_t *c, int (*fn)(Popsync__Record *r, void *arg), void *arg);
/** As ps_cache_find, for the live records that refer to record id (a
 *  person's births, migrations, benefits, visits, households headed; a
 *  household's members), from the index: no scan. */
int ps_cache_find_referring(ps_cache_t *c, const uint8_t id[PS_ID_LEN], size_t max, Popsync__Record ***out, size_t *n);
/** As ps_cache_find, for the live benefits paid to person_id under scheme
 *  for period (the one-payment rule). */
int ps_cache_find_payments(ps_cache_t *c, const ProtobufCBinaryData *person_id, const char *scheme,
                           const char *period, size_t max, Popsync__Record ***out, size_t *n);

/**
 * Reads up to max changes (about max_bytes) from the head of the outbox
 * into *out, which the caller frees with ps_cache_push_free.
 */
int ps_cache_outbox_batch(ps_cache_t *c, size_t max, size_t max_bytes, Popsync__Push **out);
/** As ps_cache_outbox_batch, from the first change with an lcn above
 *  after: the batch after those already in flight (client/sync.c). */
int ps_cache_outbox_batch_after(ps_cache_t *c, uint64_t after, size_t max, size_t max_bytes, Popsync__Push **out);
void ps_cache_push_free(Popsync__Push *p);

/**
 * Applies the server's answer to a push in one transaction: accepted and
 * duplicate changes leave the outbox (accepted ones give the local record its
 * new revision), rejected ones move to the rejected list with their reasons.
 */
int ps_cache_outbox_ack(ps_cache_t *c, const Popsync__Push *sent, const Popsync__PushResult *res);

/**
 * Applies a pulled batch and moves the cursor to batch->cursor, in one
 * transaction.  Records that left our scope (gone entries) are dropped.
 * Records with local edits still in the outbox keep their local version.
 */
int ps_cache_apply_pull(ps_cache_t *c, const Popsync__PullBatch *batch);
/** ps_cache_apply_pull given also the batch as received (body[0..len), the
 *  frame's plain body): each record is sealed as those bytes hold it, not
 *  packed again (pullspan.h; packed again only when not found there). */
int ps_cache_apply_pull_raw(ps_cache_t *c, const Popsync__PullBatch *batch, const uint8_t *body, size_t len);
/**
 * ps_cache_apply_pull_raw that may leave its transaction open: with hold,
 * the batch (its records, counters, index rows and the cursor it moves
 * to) stays uncommitted so the next pulled batches join it, and one
 * commit (one fdatasync) covers them all.  It commits anyway once it holds
 * PS_PULL_HOLD_BATCHES batches, PS_PULL_HOLD_RECORDS records or
 * PS_PULL_HOLD_BYTES bytes of bodies, and whenever hold is 0.  Until the
 * commit nothing of them is durable nor visible, and the cursor stays
 * (ps_cache_meta): a crash loses them and the server sends them again.
 * Any other operation of the cache commits them first; on an error the
 * whole held transaction is dropped.  If that commit fails, the other
 * operation goes on and the next call here (or ps_cache_pull_commit)
 * returns the error, applying nothing: the pull stops before any later
 * cursor is stored.  docs/sync.md §"Pull durability".
 */
#define PS_PULL_HOLD_BATCHES 8u
#define PS_PULL_HOLD_RECORDS 16384u
#define PS_PULL_HOLD_BYTES (8u << 20)
int ps_cache_apply_pull_held(ps_cache_t *c, const Popsync__PullBatch *batch, const uint8_t *body, size_t len,
                             int hold);
/** Commits the pulled batches held open (none: PS_OK, nothing done, or
 *  the error of a held commit that failed inside another operation). */
int ps_cache_pull_commit(ps_cache_t *c);
/** Pulled batches applied and held uncommitted (0 when none). */
unsigned ps_cache_pull_held(const ps_cache_t *c);

/**
 * Applies records fetched by id (a FetchRequest's answer): each returned
 * record replaces the local copy; each requested id that did not come back
 * (the server has no such record in our scope) is dropped locally.  Records
 * with pending local edits are left alone.  The cursor does not move.
 */
int ps_cache_apply_fetch(ps_cache_t *c, const Popsync__PullBatch *batch, const uint8_t *ids, size_t nids);
/** ps_cache_apply_fetch with the batch as received, as ps_cache_apply_pull_raw. */
int ps_cache_apply_fetch_raw(ps_cache_t *c, const Popsync__PullBatch *batch, const uint8_t *body, size_t len,
                             const uint8_t *ids, size_t nids);

/** What this open cache has done to values since it was opened: AEAD
 *  seals and opens, and messages packed for sealing.  For tests and the
 *  benchmark: an ack adds none for the record it settles, a pulled record
 *  given as received is sealed without a pack. */
typedef struct ps_cache_ops {
    uint64_t seals, opens, packs;
    uint64_t pindex_writes; /* person index puts and deletes (both databases) */
    uint64_t pull_commits;  /* write transactions that committed pulled batches */
} ps_cache_ops_t;
void ps_cache_op_counts(const ps_cache_t *c, ps_cache_ops_t *out);

/**
 * Writes the person index's entries if a cold pull left them to a bulk
 * build (docs/data-model.md §7.9); nothing otherwise.  The sync calls it
 * when it ends; every lookup of the index calls it first, so an
 * interrupted build (a killed process) is done by the next reader.
 */
int ps_cache_pindex_finish(ps_cache_t *c);
/** Tests only: write values as the cache format 1 did (AES-256-GCM under
 *  the DEK, a record's revision inside its sealed value), to make an
 *  old-format cache; POPSYNC_TEST_CACHE_FORMAT=1 does it at open. */
void ps_cache_set_legacy_writes(ps_cache_t *c, int on);

/** Local equivalents of the server's verify digests (digest.h), over every record held. */
int ps_cache_verify_digests(ps_cache_t *c, uint64_t *digests, uint32_t *counts);
/** Calls fn for every record held whose bucket is set in want[256]. */
int ps_cache_verify_items(ps_cache_t *c, const uint8_t *want,
                          int (*fn)(const uint8_t *id, uint64_t gen, uint64_t hlc, int deleted, void *arg), void *arg);

/** Merges a clock value received from the server into the cache's HLC. */
int ps_cache_observe_hlc(ps_cache_t *c, uint64_t hlc);

/**
 * The clock edits are stamped with (ms since the epoch): the device's clock
 * plus meta clock_offset_ms.  Push.clock_ms carries it (docs/sync.md §2).
 */
uint64_t ps_cache_clock_ms(const ps_cache_t *c);
/** The device's own clock (ms since the epoch), as the cache reads it. */
uint64_t ps_cache_device_ms(const ps_cache_t *c);
/**
 * Records what a sync learned of the server's clock: skew_ms = the device's
 * clock minus the server's.  With adopt (only when the outbox is empty, so
 * every change waiting to be pushed was stamped with one clock), edits are
 * timed by the server's clock from now on when the device's is off by more
 * than PS_CLOCK_TOLERANCE_MS, and the HLC is brought back from a wrong
 * future to the corrected clock and server_hlc.
 */
int ps_cache_clock_seen(ps_cache_t *c, int64_t skew_ms, int adopt, uint64_t server_hlc);
/** Tests only: shifts this cache's reading of the device clock by ms
 *  (one process playing several devices; the whole-process knob is
 *  POPSYNC_CLOCK_OFFSET_MS). */
void ps_cache_set_clock_shift(ps_cache_t *c, int64_t ms);

/** Like ps_cache_put_local, for a change that settles conflict cid (16 bytes). */
int ps_cache_put_resolution(ps_cache_t *c, Popsync__Record *r, const uint8_t cid[16]);

/**
 * The org-unit file this cache holds (the server's, from the last sync, or
 * the one given at init): *csv is malloc'd (caller frees), digest 32 bytes.
 * PS_ENOTFOUND when the cache has none.
 */
int ps_cache_get_orgunits(ps_cache_t *c, uint8_t **csv, size_t *len, uint8_t digest[32]);
/** Replaces the cache's org-unit file. */
int ps_cache_set_orgunits(ps_cache_t *c, const uint8_t *csv, size_t len, const uint8_t digest[32]);

/** Keeps the TLS session of the last connection (sealed: it holds the
 *  master secret) so the next sync can resume it; len 0 forgets it. */
int ps_cache_set_tls_session(ps_cache_t *c, const uint8_t *sess, size_t len);
/** The kept TLS session into out; PS_ENOTFOUND when none. */
int ps_cache_get_tls_session(ps_cache_t *c, ps_buf_t *out);

/** Keeps the district's time zone (Welcome.timezone) for local date checks. */
int ps_cache_set_timezone(ps_cache_t *c, const char *name);

/** Keeps Welcome.approved_months ("YYYY-MM TOWNSHIP"), replacing the last list. */
int ps_cache_set_approved_months(ps_cache_t *c, char *const *months, size_t n);
/** Whether month (YYYYMM) of township was approved when the cache last synced. */
int ps_cache_month_approved(ps_cache_t *c, uint32_t month, const char *township);

/** Records a completed sync. */
int ps_cache_set_last_sync(ps_cache_t *c, uint64_t ms);
/** Changes how the cache reaches its server: key is "server", "server_name",
 *  "ca", "cert" or "key" (the caller has checked the value).  PS_OK,
 *  PS_EINVAL (another key), PS_ETOOBIG or a cache error. */
int ps_cache_set_connection(ps_cache_t *c, const char *key, const char *value);
/** Keeps what the last Welcome said of synthetic data (PS_SYNTHETIC_*). */
int ps_cache_set_synthetic_policy(ps_cache_t *c, int policy);
/** How long `popsync ui` pages wait for the server (seconds, 0: the default;
 *  the caller has checked the range). */
int ps_cache_set_ui_timeout(ps_cache_t *c, uint32_t seconds);
/** How long `popsync ui` pages leave a silent server alone (seconds, 0:
 *  the default; the caller has checked the range). */
int ps_cache_set_ui_retry_after(ps_cache_t *c, uint32_t seconds);

/** Records a sync attempt: error NULL or "" when it completed (then also
 *  the completed sync, as ps_cache_set_last_sync, in the same transaction:
 *  one durable write at the end of a sync), else why it failed (a
 *  connection or TLS message: it names no person). */
int ps_cache_set_sync_attempt(ps_cache_t *c, uint64_t ms, const char *error);
/** Records how many open conflicts the server listed for this identity. */
int ps_cache_set_conflicts_open(ps_cache_t *c, uint64_t n);
/** Changes waiting in the outbox by record kind: counts[kind] for kind <
 *  nkinds (opens every outbox entry; for `popsync status`). */
int ps_cache_outbox_kinds(ps_cache_t *c, uint64_t *counts, size_t nkinds);

/**
 * The migrant summary the server sent with migration id (FeedEntry.migrant:
 * this cache is the case's other place), stored sealed in meta.  *out is
 * NULL when none is kept; the caller frees it with
 * protobuf_c_message_free_unpacked.
 */
int ps_cache_get_migrant(ps_cache_t *c, const uint8_t id[PS_ID_LEN], Popsync__MigrantSummary **out);

/**
 * Calls fn for every report counter of month (YYYYMM; 0 for stocks) the
 * cache keeps: unit, metric (common/counters.h) and value, which always
 * equal a recount of the records the cache holds, local edits included.
 * Stops at fn's first non-zero return.  PS_OK or a cache error.
 */
int ps_cache_counters_month(ps_cache_t *c, uint32_t month,
                            int (*fn)(const char *unit, const char *metric, int64_t value, void *arg), void *arg);
/**
 * Recounts every report counter from the records and compares with the
 * kept ones: *checked counters kept, *mismatched that differ (err names
 * the first).  PS_OK (even with mismatches) or a cache error.
 */
int ps_cache_counters_check(ps_cache_t *c, uint64_t *checked, uint64_t *mismatched, char *err, size_t errlen);

typedef struct ps_cache_counts {
    uint64_t records, deleted, outbox, rejected, conflicted;
} ps_cache_counts_t;
/** Counts records (live and deleted: opens every record), outbox and rejected entries. */
int ps_cache_counts(ps_cache_t *c, ps_cache_counts_t *out);
/** The number of changes waiting in the outbox, without reading any record (cheap). */
int ps_cache_outbox_count(ps_cache_t *c, uint64_t *n);
/** The number of refused changes kept (ps_cache_foreach_rejected), cheaply. */
int ps_cache_refused_count(ps_cache_t *c, uint64_t *n);

/**
 * Calls fn for every refused change (the server answered REJECTED, or
 * CONFLICT: kept whole as a conflict), oldest first, with the server's
 * answer (status, field errors, conflict id) and the change as it was sent,
 * whole.  Refused changes stay in the cache until ps_cache_refused_discard
 * or ps_cache_refused_resubmit: nothing else removes them.
 */
int ps_cache_foreach_rejected(ps_cache_t *c, int (*fn)(const Popsync__ChangeResult *res,
                                                        const Popsync__Change *ch, void *arg), void *arg);

/** Deletes every refused change of record id (the clerk's deliberate
 *  `popsync refused discard`); *n gets how many.  PS_ENOTFOUND if none. */
int ps_cache_refused_discard(ps_cache_t *c, const uint8_t id[PS_ID_LEN], size_t *n);

/**
 * `popsync refused edit`: in one transaction, deletes every refused change
 * of r's record (*n gets how many; PS_ENOTFOUND if none) and records r as a
 * local change like ps_cache_put_local, based on r->rev (the refused
 * change's base: NULL for a new record), settling conflict resolves (16
 * bytes) when not NULL.  PS_EEXIST, and nothing written, while the record
 * has other changes waiting in the outbox.
 */
int ps_cache_refused_resubmit(ps_cache_t *c, Popsync__Record *r, const uint8_t *resolves, size_t *n);

#endif
