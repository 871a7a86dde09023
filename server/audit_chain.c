/* audit_chain.c - the audit log's hash chain (audit_chain.h).
 *
 * SHA-256 comes from OpenSSL's libcrypto here, not mbedTLS: on this
 * machine's CPUs it uses the SHA extensions, about four times mbedTLS
 * 2.28's speed per byte (docs/performance.md), and popsyncd loads
 * libcrypto anyway (libnats).  Only the hash is taken from it. */
#include "audit_chain.h"
#include "crypto.h"
#include "records.pb-c.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static const MDB_val HEAD_KEY = {10, (void *)"audit_head"};

static int load_head(ps_audit_batch_t *b, MDB_txn *txn, ps_store_t *st)
{
    MDB_val v;
    int mrc = mdb_get(txn, st->meta, (MDB_val *)&HEAD_KEY, &v);
    if (mrc == 0 && v.mv_size == 40) {
        b->n = be64get(v.mv_data);
        memcpy(b->head, (uint8_t *)v.mv_data + 8, 32);
    } else if (mrc && mrc != MDB_NOTFOUND) {
        return db_err(mrc);
    }
    b->loaded = 1;
    return PS_OK;
}

static void be32put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static const EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
    g_sha256 = md ? md : EVP_sha256(); /* kept for the process's life */
}

const EVP_MD *ps_audit_sha256(void)
{
    pthread_once(&g_sha256_once, sha256_fetch);
    return g_sha256;
}

/* Starts a batch's running hash (a new context, or the old one reset). */
static int batch_start(ps_audit_batch_t *b)
{
    if (!b->md && !(b->md = EVP_MD_CTX_new()))
        return PS_ENOMEM;
    return EVP_DigestInit_ex2(b->md, ps_audit_sha256(), NULL) == 1 ? PS_OK : PS_ECRYPTO;
}

int ps_audit_append(ps_audit_batch_t *b, MDB_txn *txn, ps_store_t *st, Popsync__AuditEntry *e, ps_buf_t *scratch)
{
    uint8_t key[8], *p;
    MDB_val k = {8, key}, v;
    size_t n;
    int rc, mrc;

    if (!b->loaded && (rc = load_head(b, txn, st)))
        return rc;
    if (b->count == 0 && (rc = batch_start(b)))
        return rc;
    e->n = b->n + 1;
    e->chain = PS_AUDIT_CHAIN_BATCH;
    /* Only a batch's first entry names what came before it; the others
     * are bound by the batch's hash. */
    e->prev_hash.data = b->count == 0 ? b->head : NULL;
    e->prev_hash.len = b->count == 0 ? 32 : 0;
    n = popsync__audit_entry__get_packed_size(e);
    if (n > UINT32_MAX)
        return PS_ETOOBIG;
    ps_buf_reset(scratch);
    if ((rc = ps_buf_reserve(scratch, 4 + n)))
        return rc;
    p = ps_buf_tail(scratch);
    be32put(p, (uint32_t)n);
    popsync__audit_entry__pack(e, p + 4);
    be64put(key, e->n);
    v.mv_size = n;
    v.mv_data = p + 4;
    if ((mrc = mdb_put(txn, st->audit, &k, &v, MDB_APPEND)))
        return db_err(mrc);
    /* The length goes in with the bytes, so no two sequences of entries
     * hash alike by moving bytes from one entry to the next. */
    if (EVP_DigestUpdate(b->md, p, 4 + n) != 1)
        return PS_ECRYPTO;
    b->n = e->n;
    b->count++;
    return PS_OK;
}

int ps_audit_seal(ps_audit_batch_t *b, MDB_txn *txn, ps_store_t *st)
{
    uint8_t head[40];
    MDB_val v = {sizeof(head), head};
    unsigned len = 0;
    int mrc;

    if (b->count == 0)
        return PS_OK;
    if (EVP_DigestFinal_ex(b->md, b->head, &len) != 1 || len != 32)
        return PS_ECRYPTO;
    b->count = 0;
    be64put(head, b->n);
    memcpy(head + 8, b->head, 32);
    mrc = mdb_put(txn, st->meta, (MDB_val *)&HEAD_KEY, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

void ps_audit_batch_free(ps_audit_batch_t *b)
{
    EVP_MD_CTX_free(b->md);
    b->md = NULL;
    b->count = 0;
}

/* ---- verify -------------------------------------------------------------------- */

/* Where the walk stands: the chain value after the last whole unit (a
 * chain-0 entry or a closed batch), and the batch being hashed, if any. */
typedef struct walk {
    uint8_t prev[32];
    uint64_t last;         /* the last entry read */
    uint64_t good;         /* entries known good: before the first broken unit */
    uint64_t batch_first;  /* first entry of the open batch (0: none open) */
    int in_batches;        /* a chain-2 entry was seen */
    EVP_MD_CTX *md;
    char *err;
    size_t errlen;
} walk_t;

static int broken(walk_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int broken(walk_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, w->errlen, fmt, ap);
    va_end(ap);
    return PS_EPROTO;
}

/* Closes the open batch: its hash becomes the chain value. */
static int batch_close(walk_t *w)
{
    unsigned len = 0;
    if (!w->batch_first)
        return PS_OK;
    if (EVP_DigestFinal_ex(w->md, w->prev, &len) != 1 || len != 32)
        return PS_ECRYPTO;
    return PS_OK;
}

/* Does entry n's prev_hash name the chain value before it?  Then every
 * entry before it is good, and n itself is linked. */
static int check_link(walk_t *w, uint64_t n, const ProtobufCBinaryData *ph)
{
    if (ph->len == 32 && memcmp(ph->data, w->prev, 32) == 0) {
        w->good = n;
        return PS_OK;
    }
    if (w->batch_first) {
        w->good = w->batch_first - 1;
        return broken(w,
                      "entries %llu to %llu (one write transaction) do not match the hash entry %llu carries: "
                      "one of them was altered or reordered",
                      (unsigned long long)w->batch_first, (unsigned long long)(n - 1), (unsigned long long)n);
    }
    return broken(w, "entry %llu does not follow from entry %llu: the log was altered", (unsigned long long)n,
                  (unsigned long long)(n - 1));
}

static int walk_old(walk_t *w, uint64_t n, const Popsync__AuditEntry *e, const MDB_val *v)
{
    int rc;
    if (w->in_batches)
        return broken(w, "entry %llu is chained the old way after entries chained the new way: the log was altered",
                      (unsigned long long)n);
    if ((rc = check_link(w, n, &e->prev_hash)))
        return rc;
    return ps_sha256(v->mv_data, v->mv_size, w->prev);
}

static int walk_batch(walk_t *w, uint64_t n, const Popsync__AuditEntry *e, const MDB_val *v)
{
    uint8_t len[4];
    int rc;
    if (e->prev_hash.len) {
        /* The first entry of a write transaction: the batch before it ends. */
        if ((rc = batch_close(w)) || (rc = check_link(w, n, &e->prev_hash)))
            return rc;
        if (!w->md && !(w->md = EVP_MD_CTX_new()))
            return PS_ENOMEM;
        if (EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1)
            return PS_ECRYPTO;
        w->batch_first = n;
    } else if (!w->batch_first) {
        return broken(w, "entry %llu continues a write transaction that has no first entry: the log was altered",
                      (unsigned long long)n);
    }
    w->in_batches = 1;
    be32put(len, (uint32_t)v->mv_size);
    if (EVP_DigestUpdate(w->md, len, 4) != 1 || EVP_DigestUpdate(w->md, v->mv_data, v->mv_size) != 1)
        return PS_ECRYPTO;
    return PS_OK;
}

/* One entry: its number, then its link by the rule it was written under. */
static int walk_entry(walk_t *w, const MDB_val *k, const MDB_val *v)
{
    uint64_t n = k->mv_size == 8 ? be64get(k->mv_data) : 0, expect = w->last + 1;
    Popsync__AuditEntry *e = popsync__audit_entry__unpack(NULL, v->mv_size, v->mv_data);
    int rc;
    if (!e)
        return broken(w, "entry %llu is not a valid audit entry", (unsigned long long)n);
    if (n != expect)
        rc = broken(w, "entry %llu missing (found entry %llu next)", (unsigned long long)expect,
                    (unsigned long long)n);
    else if (e->n != n)
        rc = broken(w, "entry %llu is stored in place of entry %llu: the log was reordered",
                    (unsigned long long)e->n, (unsigned long long)n);
    else if (e->chain == 0)
        rc = walk_old(w, n, e, v);
    else if (e->chain == PS_AUDIT_CHAIN_BATCH)
        rc = walk_batch(w, n, e, v);
    else
        rc = broken(w, "entry %llu names chaining rule %u, which this popsyncd does not know", (unsigned long long)n,
                    (unsigned)e->chain);
    popsync__audit_entry__free_unpacked(e, NULL);
    w->last = n;
    return rc;
}

/* The head names the last entry and the chain value after it: removing or
 * altering the newest entries is caught here. */
static int check_head(walk_t *w, MDB_txn *txn, ps_store_t *st)
{
    MDB_val v;
    uint64_t head_n;
    int mrc = mdb_get(txn, st->meta, (MDB_val *)&HEAD_KEY, &v);
    if (mrc == MDB_NOTFOUND || (mrc == 0 && v.mv_size != 40))
        return w->last ? broken(w, "the log has %llu entries but no head", (unsigned long long)w->last) : PS_OK;
    if (mrc)
        return broken(w, "cannot read the audit head: %s", mdb_strerror(mrc));
    head_n = be64get(v.mv_data);
    if (head_n != w->last)
        return broken(w, "the log ends at entry %llu but its head names entry %llu", (unsigned long long)w->last,
                      (unsigned long long)head_n);
    if (memcmp((uint8_t *)v.mv_data + 8, w->prev, 32) != 0) {
        w->good = w->batch_first ? w->batch_first - 1 : w->last - 1;
        if (w->batch_first)
            return broken(w,
                          "the log ends at entry %llu but its head names entry %llu with another hash: one of "
                          "entries %llu to %llu (the last write transaction) was altered or reordered",
                          (unsigned long long)w->last, (unsigned long long)head_n,
                          (unsigned long long)w->batch_first, (unsigned long long)w->last);
        return broken(w, "the log ends at entry %llu but its head names entry %llu with another hash: the last entry "
                         "was altered",
                      (unsigned long long)w->last, (unsigned long long)head_n);
    }
    w->good = w->last;
    return PS_OK;
}

int ps_audit_verify(MDB_txn *txn, ps_store_t *st, uint64_t *entries, char *err, size_t errlen)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    walk_t w;
    int mrc, rc = PS_OK;

    memset(&w, 0, sizeof(w));
    w.err = err;
    w.errlen = errlen;
    if ((mrc = mdb_cursor_open(txn, st->audit, &cur))) {
        snprintf(err, errlen, "cannot read the audit log: %s", mdb_strerror(mrc));
        return db_err(mrc);
    }
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        rc = walk_entry(&w, &k, &v);
    if (rc == PS_OK && mrc != MDB_NOTFOUND) {
        snprintf(err, errlen, "cannot read the audit log: %s", mdb_strerror(mrc));
        rc = db_err(mrc);
    }
    if (rc == PS_OK && (rc = batch_close(&w)) == PS_OK)
        rc = check_head(&w, txn, st);
    mdb_cursor_close(cur);
    EVP_MD_CTX_free(w.md);
    if (rc != PS_OK && w.batch_first && w.good >= w.batch_first)
        w.good = w.batch_first - 1; /* the open batch was never proved */
    *entries = w.good;
    return rc;
}
