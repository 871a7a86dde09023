/* store_versions.h - a record's versions: the live one in `records`, the
 * superseded ones in `versions`.
 *
 * Owns: where each version of a record is kept.  A version is written once
 * where it is live (records, by the apply path or a rebuild); when a newer
 * version replaces it, ps__version_supersede moves its bytes to
 * versions id(16)|gen(8, BE) in the same write transaction.  So `versions`
 * holds only superseded versions (data directories written before session 4
 * also hold a copy of the live one: harmless, the two are the same bytes),
 * and every reader asks here rather than reading `versions` itself: merges
 * (apply.c), the scope check of an old base, and a record's history.
 *
 * Callers: apply.c, store_upstream.c (rebuild), the history request and the
 * unit tests.  Store-private (includes store_int.h, hence lmdb.h).  Bytes
 * handed out are valid only inside the transaction and until its next write.
 */
#ifndef PS_STORE_VERSIONS_H
#define PS_STORE_VERSIONS_H

#include "store_int.h"
#include "buf.h"

/** Before records[id] is overwritten: copies its version (if any) into
 *  `versions` under its generation.  scratch holds the copy (LMDB's value
 *  may move while versions is written).  PS_OK or a database error. */
int ps__version_supersede(MDB_txn *txn, ps_store_t *st, const uint8_t *id, ps_buf_t *scratch);

/** ps__version_supersede for a caller that has read the live version
 *  already: rec (len bytes, the packed Record after the header, held
 *  outside LMDB) of generation gen goes to `versions`, with no second
 *  lookup of records[id].  PS_OK or a database error. */
int ps__version_keep(MDB_txn *txn, ps_store_t *st, const uint8_t *id, uint64_t gen, const uint8_t *rec, size_t len);

/** The packed Record of version gen of id, wherever it is kept: *out is
 *  {0, NULL} when the store has no such version.  PS_OK or an error. */
int ps__version_get(MDB_txn *txn, ps_store_t *st, const uint8_t *id, uint64_t gen, MDB_val *out);

/** Called for each version, oldest first: its generation, its packed
 *  Record, and whether it is the live one.  Non-zero stops the walk and is
 *  returned. */
typedef int (*ps_version_fn)(uint64_t gen, const uint8_t *rec, size_t len, int live, void *arg);

/** Every version of id the store keeps, oldest first, the live one last
 *  (the superseded ones from `versions`, the live one from `records`; an
 *  old data directory's copy of the live version in `versions` is given
 *  once).  PS_OK, fn's non-zero, or a database error. */
int ps__versions_each(MDB_txn *txn, ps_store_t *st, const uint8_t *id, ps_version_fn fn, void *arg);

#endif
