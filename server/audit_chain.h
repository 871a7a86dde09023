/* audit_chain.h - the audit log's hash chain: appending entries and
 * verifying the log.
 *
 * Owns: the layout of `audit` (n(8, BE) -> packed AuditEntry) and of the
 * meta key "audit_head" (n(8, BE) | chain value(32)), and the two chaining
 * rules (docs/security.md §5, docs/data-model.md §7.5):
 *
 *   chain 0 (logs written before session 4): every entry carries prev_hash,
 *     the SHA-256 of the previous entry's packed bytes; the chain value
 *     after an entry is the SHA-256 of its packed bytes.
 *   chain 2 (written now): the entries one write transaction appends form a
 *     batch.  Its first entry carries prev_hash = the chain value before the
 *     batch; the others carry none.  The chain value after the batch is
 *       SHA-256( len(e1) || e1 || len(e2) || e2 || ... )   len: 4 bytes, BE
 *     one running hash per transaction, no hash per entry, and audit_head
 *     written once, at the transaction's end (ps_audit_seal).
 *
 * A log may start in chain 0 and go on in chain 2 (an old data directory):
 * the first chain-2 entry carries the chain-0 hash of the last old one.
 * Nothing is rewritten on upgrade: old entries keep verifying by the rule
 * they were written under.
 *
 * Callers: apply.c (the write transaction: append, seal, free), store.c
 * (`popsyncd audit verify`) and the unit tests.  Store-private (lmdb.h).
 */
#ifndef PS_AUDIT_CHAIN_H
#define PS_AUDIT_CHAIN_H

#include "store_int.h"
#include "buf.h"

#define PS_AUDIT_CHAIN_BATCH 2 /**< AuditEntry.chain of entries written now */

/** The audit entries one write transaction appends. */
typedef struct ps_audit_batch {
    uint64_t n;            /**< last entry number (the head's until the first append) */
    uint8_t head[32];      /**< chain value before this batch */
    int loaded;            /**< n and head read from audit_head */
    uint32_t count;        /**< entries appended in this batch */
    void *md;              /**< the batch's running SHA-256 (OpenSSL EVP_MD_CTX) */
} ps_audit_batch_t;

/** libcrypto's SHA-256, fetched once per process (OpenSSL 3 fetches the
 *  algorithm on every EVP_sha256() digest otherwise): for the chain and
 *  the apply path's change digests.  Never NULL. */
const struct evp_md_st *ps_audit_sha256(void);

/** Appends e (everything but n, chain and prev_hash filled by the caller)
 *  as the next entry, packed in scratch.  PS_OK or an error. */
int ps_audit_append(ps_audit_batch_t *b, MDB_txn *txn, ps_store_t *st, Popsync__AuditEntry *e, ps_buf_t *scratch);

/** At the end of the write transaction: the batch's chain value into
 *  audit_head (nothing when nothing was appended).  PS_OK or an error. */
int ps_audit_seal(ps_audit_batch_t *b, MDB_txn *txn, ps_store_t *st);

/** Frees the batch's hash state (sealed or not). */
void ps_audit_batch_free(ps_audit_batch_t *b);

/** Walks the whole log in txn: numbering without gaps, each entry or batch
 *  following from the one before by its rule, the head naming the last.
 *  *entries: the entries found good.  PS_OK, or PS_EPROTO with where the
 *  chain breaks in err. */
int ps_audit_verify(MDB_txn *txn, ps_store_t *st, uint64_t *entries, char *err, size_t errlen);

#endif
