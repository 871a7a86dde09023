/* cache.c - the client's local LMDB cache, encrypted at rest.
 *
 * Owns: the LMDB environment, the seal/open pair every record-bearing value
 * passes through, and the data key wrapped under the key-encryption key
 * that keys.c gets (passphrase or key file).  See cache.h for the format.
 */
#include "cache.h"
#include "err.h"
#include "log.h"
#include "buf.h"
#include "crypto.h"
#include "digest.h"
#include "keys.h"
#include "cache_pindex.h"
#include "pullspan.h"
#include "validate.h"
#include "cache_counters.h"
#include "record_fmt.h"
#include "testhooks.h"
#include "wire.pb-c.h"

#include <lmdb.h>

#include "bytes.h"
#include "db_err.h"

/* The older short names of the shared helpers (bytes.h, db_err.h), as the
 * store uses them: one definition for the store and the cache. */
#define db_err ps_db_err
#define be64put ps_be64put
#define be64get ps_be64get

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct ps_cache {
    MDB_env *env;
    MDB_dbi records, outbox, pending, rejected, meta, counters;
    ps_cache_meta_t m;
    ps_hlc_t hlc;
    int64_t clock_shift; /* tests: ps_cache_set_clock_shift */
    ps_aead_t *aead;  /* ChaCha20-Poly1305 under the cache key derived from the DEK: every new value */
    ps_aead_t *gcm;   /* AES-256-GCM under the DEK itself: values of format 1, read (and written by tests) */
    int legacy;       /* tests: write format 1 (POPSYNC_TEST_CACHE_FORMAT=1, ps_cache_set_legacy_writes) */
    ps_cache_ops_t ops;   /* seals, opens and packs of values (ps_cache_op_counts) */
    ps_buf_t scratch; /* sealed values on their way into LMDB */
    ps_buf_t plain;   /* packed messages before sealing, or after opening */
    uint8_t nonces[PS_AEAD_NONCE_LEN * 64]; /* random bytes drawn ahead for nonces */
    size_t nonce_off;
    ps_pindex_t px;   /* the person index: filed with every records write */
    ps_ctab_t cdelta; /* report counter changes of the open write transaction (rec_store) */
    /* Pulled batches applied and not yet committed (ps_cache_apply_pull_held):
     * their transaction, what it holds, and the cursor its commit moves to. */
    MDB_txn *ptxn;
    unsigned ptxn_batches;
    size_t ptxn_records, ptxn_bytes;
    uint64_t ptxn_cursor;
    int ptxn_deferred, ptxn_no_pending; /* read once per transaction */
    /* The error of a held commit that failed inside another operation
     * (txn_begin), where nobody could be told: the next pulled batch is
     * refused with it.  Were it applied, its commit would move the cursor
     * past the batches that were lost, and they would never come again. */
    int ptxn_err;
};

/* Every other transaction of the cache begins after the pulled batches
 * held open are committed (LMDB has one writer; a reader must see them).
 * Should that commit fail, those batches are not stored and the cursor
 * did not move with them; the operation goes on, and the pull that held
 * them is told at its next batch (ptxn_err), so it stops there and the
 * next sync asks for them again. */
static int txn_begin(ps_cache_t *c, unsigned flags, MDB_txn **txn)
{
    int rc;
    if (c->ptxn && (rc = ps_cache_pull_commit(c)))
        c->ptxn_err = rc;
    return mdb_txn_begin(c->env, NULL, flags, txn);
}

/* Sealed values start with a format byte so a future format can be added.
 * 0x00 (plain) was written before encryption at rest and is refused now;
 * 0x01 (AES-256-GCM under the DEK) is still read, and written only for the
 * DEK wrapped under the KEK; 0x02 (ChaCha20-Poly1305 under the cache key)
 * is written for every other value (docs/security.md). */
#define SEAL_PLAIN 0x00
#define SEAL_AEAD 0x01
#define SEAL_CHACHA 0x02
#define SEAL_HDR (1 + PS_AEAD_NONCE_LEN)
#define SEAL_OVERHEAD (SEAL_HDR + PS_AEAD_TAG_LEN)

/* A records value of format 2: REC_V2 | flags | gen(8) | hlc(8) |
 * nodelen(1) | node(16) | sealed packed Record (SEAL_CHACHA).  With
 * REC_REV set the revision beside the sealed record is the record's own
 * (it overrides whatever rev the sealed bytes hold), so a push's answer
 * rewrites these 35 bytes and never opens nor seals the record.  Without
 * it the record's rev is the one inside (none, for a record never synced,
 * or one whose node id is not 16 bytes long).  A value starting SEAL_AEAD
 * is format 1: the packed Record, its rev inside, under AES-256-GCM. */
#define REC_V2 0x10
#define REC_REV 0x01
#define RECMETA_LEN (1 + 1 + 8 + 8 + 1 + PS_ID_LEN)

/* The label that derives the cache key from the DEK: HMAC-SHA256(DEK, label). */
static const char CACHE_KEY_LABEL[] = "popsync cache key v2: ChaCha20-Poly1305";

/* Names of the databases, also the first part of each value's AAD. */
static const char DB_RECORDS[] = "records", DB_OUTBOX[] = "outbox", DB_REJECTED[] = "rejected", DB_META[] = "meta",
                  DB_COUNTERS[] = "counters";

#define WRONG_KEY_MSG "wrong passphrase (or key file) for this cache"

/* ---- sealing -------------------------------------------------------------- */

/* AAD = database name then key bytes: a sealed value copied under another
 * key or into another database fails to open. */
static int make_aad(const char *db, const MDB_val *k, uint8_t aad[64], size_t *len)
{
    size_t dl = strlen(db);
    if (dl + k->mv_size > 64)
        return PS_EINVAL;
    memcpy(aad, db, dl);
    memcpy(aad + dl, k->mv_data, k->mv_size);
    *len = dl + k->mv_size;
    return PS_OK;
}

/* A fresh random nonce.  Random bytes are drawn 64 nonces at a time: a
 * getrandom call per record would cost more than the AES-GCM itself. */
static int next_nonce(ps_cache_t *c, uint8_t nonce[PS_AEAD_NONCE_LEN])
{
    int rc;
    if (c->nonce_off == 0 || c->nonce_off >= sizeof(c->nonces)) {
        if ((rc = ps_random(c->nonces, sizeof(c->nonces))))
            return rc;
        c->nonce_off = 0;
    }
    memcpy(nonce, c->nonces + c->nonce_off, PS_AEAD_NONCE_LEN);
    c->nonce_off += PS_AEAD_NONCE_LEN;
    return PS_OK;
}

/* Seals plain[0..n) stored under (db, k) with key a into out (reset
 * first) after hdr bytes left for the caller: format | nonce(12) |
 * ciphertext(n) | tag(16), the format byte saying which AEAD a is.  *v
 * points at the result, header included.  plain must not lie in out. */
static int seal_into(ps_cache_t *c, ps_aead_t *a, ps_buf_t *out, size_t hdr, const char *db, const MDB_val *k,
                     const void *plain, size_t n, MDB_val *v)
{
    uint8_t aad[64], *p;
    size_t aadlen;
    int rc;
    if ((rc = make_aad(db, k, aad, &aadlen)))
        return rc;
    ps_buf_reset(out);
    if ((rc = ps_buf_reserve(out, hdr + n + SEAL_OVERHEAD)))
        return rc;
    p = ps_buf_tail(out);
    p[hdr] = ps_aead_alg(a) == PS_AEAD_CHACHA20_POLY1305 ? SEAL_CHACHA : SEAL_AEAD;
    if ((rc = next_nonce(c, p + hdr + 1)) ||
        (rc = ps_aead_ctx_seal(a, p + hdr + 1, aad, aadlen, plain, n, p + hdr + SEAL_HDR)))
        return rc;
    c->ops.seals++;
    ps_buf_commit(out, hdr + n + SEAL_OVERHEAD);
    v->mv_data = p;
    v->mv_size = hdr + n + SEAL_OVERHEAD;
    return PS_OK;
}

static int seal_with(ps_cache_t *c, ps_aead_t *a, ps_buf_t *out, const char *db, const MDB_val *k,
                     const void *plain, size_t n, MDB_val *v)
{
    return seal_into(c, a, out, 0, db, k, plain, n, v);
}

/* The key new values are sealed with: the cache key (ChaCha20-Poly1305),
 * or for tests making a format-1 cache the DEK's AES-256-GCM. */
static ps_aead_t *data_key(ps_cache_t *c)
{
    return c->legacy ? c->gcm : c->aead;
}

/* Opens a value sealed under (db, k) into out (reset first) with gcm
 * (format 1) or chacha (format 2; NULL: refused); *p and *n give the
 * plaintext.  PS_ECRYPTO if it is not ours or was altered. */
static int open_keys(ps_aead_t *gcm, ps_aead_t *chacha, ps_buf_t *out, const char *db, const MDB_val *k,
                     const MDB_val *v, const uint8_t **p, size_t *n)
{
    const uint8_t *s = v->mv_data;
    ps_aead_t *a;
    uint8_t aad[64];
    size_t aadlen, len;
    int rc;
    if (v->mv_size < SEAL_OVERHEAD)
        return PS_ECRYPTO;
    a = s[0] == SEAL_AEAD ? gcm : s[0] == SEAL_CHACHA ? chacha : NULL;
    if (!a)
        return PS_ECRYPTO;
    if ((rc = make_aad(db, k, aad, &aadlen)))
        return rc;
    len = v->mv_size - SEAL_OVERHEAD;
    ps_buf_reset(out);
    if ((rc = ps_buf_reserve(out, len + 1)))
        return rc;
    if ((rc = ps_aead_ctx_open(a, s + 1, aad, aadlen, s + SEAL_HDR, v->mv_size - SEAL_HDR, ps_buf_tail(out))))
        return rc;
    ps_buf_commit(out, len);
    *p = ps_buf_head(out);
    *n = len;
    return PS_OK;
}

/* open_keys with the cache's two data keys, counted. */
static int open_val(ps_cache_t *c, ps_buf_t *out, const char *db, const MDB_val *k, const MDB_val *v,
                    const uint8_t **p, size_t *n)
{
    c->ops.opens++;
    return open_keys(c->gcm, c->aead, out, db, k, v, p, n);
}

/* Packs msg and seals it, for storage under (db, k), into c->scratch; *v
 * points at the result.  One AES-GCM per value with the key set up at open. */
static int seal_msg(ps_cache_t *c, const char *db, const MDB_val *k, const ProtobufCMessage *msg, MDB_val *v)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    int rc;
    ps_buf_reset(&c->plain);
    if ((rc = ps_buf_reserve(&c->plain, n + 1)))
        return rc;
    protobuf_c_message_pack(msg, ps_buf_tail(&c->plain));
    c->ops.packs++;
    return seal_with(c, data_key(c), &c->scratch, db, k, ps_buf_tail(&c->plain), n, v);
}

/* Opens a sealed value and unpacks it with the default allocator: cache
 * contents are our own writing, so the records can be freed with
 * protobuf_c_message_free_unpacked(m, NULL) like any built by the CLI. */
/* As open_msg, unpacked with allocator al (NULL: malloc). */
static int open_msg_al(ps_cache_t *c, const char *db, const MDB_val *k, const MDB_val *v,
                       const ProtobufCMessageDescriptor *d, ProtobufCAllocator *al, ProtobufCMessage **out)
{
    const uint8_t *p;
    size_t n;
    int rc = open_val(c, &c->plain, db, k, v, &p, &n);
    if (rc)
        return rc;
    *out = protobuf_c_message_unpack(d, al, n, p);
    return *out ? PS_OK : PS_EPROTO;
}

static int open_msg(ps_cache_t *c, const char *db, const MDB_val *k, const MDB_val *v,
                    const ProtobufCMessageDescriptor *d, ProtobufCMessage **out)
{
    return open_msg_al(c, db, k, v, d, NULL, out);
}

/* ---- records values (format 2: the revision beside the sealed record) ----- */

/* Writes the 35-byte head of a format-2 records value for rev (NULL: none). */
static void rec_head_put(uint8_t *h, const Popsync__Rev *rev)
{
    memset(h, 0, RECMETA_LEN);
    h[0] = REC_V2;
    if (!rev || rev->node.len > PS_ID_LEN)
        return; /* the rev, if any, stays inside the sealed record */
    h[1] = REC_REV;
    ps_be64put(h + 2, rev->gen);
    ps_be64put(h + 10, rev->hlc);
    h[18] = (uint8_t)rev->node.len;
    if (rev->node.len)
        memcpy(h + 19, rev->node.data, rev->node.len);
}

/* Gives r the revision of head h (malloc'd like the unpacked message's own
 * parts, so protobuf_c_message_free_unpacked(m, NULL) frees it). */
static int rec_head_rev(Popsync__Record *r, const uint8_t *h)
{
    size_t nlen = h[18];
    if (!(h[1] & REC_REV))
        return PS_OK;
    if (nlen > PS_ID_LEN)
        return PS_EPROTO;
    if (!r->rev) {
        if (!(r->rev = malloc(sizeof(*r->rev))))
            return PS_ENOMEM;
        popsync__rev__init(r->rev);
    }
    r->rev->gen = ps_be64get(h + 2);
    r->rev->hlc = ps_be64get(h + 10);
    if (r->rev->node.len != nlen) {
        free(r->rev->node.data);
        r->rev->node.data = NULL;
        r->rev->node.len = 0;
        if (nlen && !(r->rev->node.data = malloc(nlen)))
            return PS_ENOMEM;
        r->rev->node.len = nlen;
    }
    if (nlen)
        memcpy(r->rev->node.data, h + 19, nlen);
    return PS_OK;
}

/* Opens a records value of either format into *out (the caller frees it
 * with protobuf_c_message_free_unpacked(m, NULL)). */
static int rec_open(ps_cache_t *c, const MDB_val *k, const MDB_val *v, Popsync__Record **out)
{
    const uint8_t *h = v->mv_data;
    MDB_val sealed;
    int rc;
    *out = NULL;
    if (v->mv_size < 1 || h[0] != REC_V2)
        return open_msg(c, DB_RECORDS, k, v, &popsync__record__descriptor, (ProtobufCMessage **)out);
    if (v->mv_size < RECMETA_LEN)
        return PS_ECRYPTO;
    sealed.mv_data = (uint8_t *)v->mv_data + RECMETA_LEN;
    sealed.mv_size = v->mv_size - RECMETA_LEN;
    if ((rc = open_msg(c, DB_RECORDS, k, &sealed, &popsync__record__descriptor, (ProtobufCMessage **)out)))
        return rc;
    if ((rc = rec_head_rev(*out, h))) {
        protobuf_c_message_free_unpacked(&(*out)->base, NULL);
        *out = NULL;
    }
    return rc;
}

/* Seals record r for storage under k into c->scratch (*v points at it):
 * raw[0..rawlen), when given, is r packed as the server sent it, sealed as
 * it is; else r is packed here.  Format 2, or 1 for a test's old cache. */
static int rec_seal(ps_cache_t *c, const MDB_val *k, const Popsync__Record *r, const uint8_t *raw, size_t rawlen,
                    MDB_val *v)
{
    int rc;
    if (c->legacy)
        return seal_msg(c, DB_RECORDS, k, &r->base, v);
    if (!raw) {
        rawlen = protobuf_c_message_get_packed_size(&r->base);
        ps_buf_reset(&c->plain);
        if ((rc = ps_buf_reserve(&c->plain, rawlen + 1)))
            return rc;
        protobuf_c_message_pack(&r->base, ps_buf_tail(&c->plain));
        c->ops.packs++;
        raw = ps_buf_tail(&c->plain);
    }
    if ((rc = seal_into(c, c->aead, &c->scratch, RECMETA_LEN, DB_RECORDS, k, raw, rawlen, v)))
        return rc;
    rec_head_put(v->mv_data, r->rev);
    return PS_OK;
}

/* Frees a buffer that held keys or personal data, zeroing it first. */
static void buf_wipe(ps_buf_t *b)
{
    ps_zeroize(b->data, b->cap);
    ps_buf_free(b);
}

/* ---- meta ----------------------------------------------------------------- */

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const void *val, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    int mrc = mdb_put(txn, dbi, &k, &v, 0);
    return mrc ? ps_db_err(mrc) : PS_OK;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t x)
{
    uint8_t b[8];
    ps_be64put(b, x);
    return meta_put(txn, dbi, key, b, 8);
}

static int meta_put_str(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *s)
{
    return meta_put(txn, dbi, key, s, strlen(s));
}

/* Stores a meta value sealed with the data key (one that may name a person). */
static int meta_put_sealed(ps_cache_t *c, MDB_txn *txn, const char *key, const void *val, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = seal_with(c, data_key(c), &c->scratch, DB_META, &k, val, len, &v);
    return rc ? rc : meta_put(txn, c->meta, key, v.mv_data, v.mv_size);
}

static void meta_get_str(MDB_txn *txn, MDB_dbi dbi, const char *key, char *out, size_t cap)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    out[0] = '\0';
    if (mdb_get(txn, dbi, &k, &v) == 0) {
        size_t n = v.mv_size < cap - 1 ? v.mv_size : cap - 1;
        memcpy(out, v.mv_data, n);
        out[n] = '\0';
    }
}

/* Copies a meta value of at most cap bytes; its length, or 0 when absent or longer. */
static size_t meta_get_bytes(MDB_txn *txn, MDB_dbi dbi, const char *key, uint8_t *out, size_t cap)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    if (mdb_get(txn, dbi, &k, &v) != 0 || v.mv_size > cap)
        return 0;
    memcpy(out, v.mv_data, v.mv_size);
    return v.mv_size;
}

static uint64_t meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8)
        return ps_be64get(v.mv_data);
    return 0;
}

/* A failed commit as a popsync code.  LMDB reports a write cut short by a
 * full disk as EIO ("short write"): when the cache's file system has no
 * room left, that is PS_ENOSPC, so the clerk is told the disk is full and
 * not of a database error. */
static int commit_err(ps_cache_t *c, int mrc)
{
    struct statvfs vs;
    int fd;

    if (mrc == EIO && mdb_env_get_fd(c->env, &fd) == 0 && fstatvfs(fd, &vs) == 0 &&
        (uint64_t)vs.f_bavail * vs.f_frsize < ((uint64_t)1 << 20))
        return PS_ENOSPC;
    return ps_db_err(mrc);
}

static int env_open(ps_cache_t *c, const char *dir, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    uint64_t map = (uint64_t)4 << 30;
    int mrc;

    /* Tests: a cache that fills up (a full disk, without one). */
    if (ps_test_hook_u64("POPSYNC_TEST_CACHE_MAP_BYTES", &map) != 1 || map < ((uint64_t)1 << 16))
        map = (uint64_t)4 << 30;
    if ((mrc = mdb_env_create(&c->env)) || (mrc = mdb_env_set_maxdbs(c->env, 16)) ||
        (mrc = mdb_env_set_mapsize(c->env, (size_t)map)))
        goto fail;
    if ((mrc = mdb_env_open(c->env, dir, MDB_NOTLS, 0600)))
        goto fail;
    if ((mrc = txn_begin(c, 0, &txn)))
        goto fail;
    if ((mrc = mdb_dbi_open(txn, DB_RECORDS, MDB_CREATE, &c->records)) ||
        (mrc = mdb_dbi_open(txn, DB_OUTBOX, MDB_CREATE, &c->outbox)) ||
        (mrc = mdb_dbi_open(txn, "pending", MDB_CREATE, &c->pending)) ||
        (mrc = mdb_dbi_open(txn, DB_REJECTED, MDB_CREATE, &c->rejected)) ||
        (mrc = mdb_dbi_open(txn, DB_META, MDB_CREATE, &c->meta)) ||
        (mrc = mdb_dbi_open(txn, DB_COUNTERS, MDB_CREATE, &c->counters)))
        goto fail;
    if (ps_pindex_open(&c->px, txn) != PS_OK) {
        mrc = MDB_PANIC;
        goto fail;
    }
    if ((mrc = mdb_txn_commit(txn))) {
        txn = NULL;
        goto fail;
    }
    return PS_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    snprintf(err, errlen, "cache %s: %s", dir, mdb_strerror(mrc));
    return ps_db_err(mrc);
}

static void cache_free(ps_cache_t *c)
{
    ps_cache_pull_commit(c);
    if (c->env)
        mdb_env_close(c->env);
    ps_aead_free(c->aead);
    ps_aead_free(c->gcm);
    ps_pindex_close(&c->px);
    ps_ctab_free(&c->cdelta);
    buf_wipe(&c->scratch);
    buf_wipe(&c->plain);
    free(c);
}

/* The keys made from the data key: its own AES-256-GCM (format-1 values),
 * the cache key HMAC-SHA256(DEK, CACHE_KEY_LABEL) for ChaCha20-Poly1305
 * (format 2: one key per algorithm), and the person index's. */
static int data_keys(ps_cache_t *c, const uint8_t dek[PS_AEAD_KEY_LEN])
{
    uint8_t ck[PS_SHA256_LEN];
    uint64_t fmt = 0;
    int rc;
    if ((rc = ps_hmac_sha256(dek, PS_AEAD_KEY_LEN, CACHE_KEY_LABEL, sizeof(CACHE_KEY_LABEL) - 1, ck)) == PS_OK &&
        (rc = ps_aead_new_alg(&c->aead, PS_AEAD_CHACHA20_POLY1305, ck)) == PS_OK &&
        (rc = ps_aead_new(&c->gcm, dek)) == PS_OK)
        rc = ps_pindex_set_key(&c->px, dek);
    ps_zeroize(ck, sizeof(ck));
    c->legacy = ps_test_hook_u64("POPSYNC_TEST_CACHE_FORMAT", &fmt) == 1 && fmt == 1;
    return rc;
}

/* A fresh random data key, set up for the records and the person index;
 * *kek_aead gets the KEK's cipher, to seal it with. */
static int new_data_key(ps_cache_t *c, const uint8_t kek[PS_AEAD_KEY_LEN], uint8_t dek[PS_AEAD_KEY_LEN],
                        ps_aead_t **kek_aead, char *err, size_t errlen)
{
    int rc;
    if ((rc = ps_random(dek, PS_AEAD_KEY_LEN))) {
        snprintf(err, errlen, "no randomness available");
        return rc;
    }
    if ((rc = ps_aead_new(kek_aead, kek)) || (rc = data_keys(c, dek)))
        snprintf(err, errlen, "setting up the key: %s", ps_strerror(rc));
    return rc;
}

/* The data key wrapped under the KEK (its GCM tag is the key check) and
 * how to get the KEK again: the key file, or the KDF's salt and rounds. */
static int put_key_meta(ps_cache_t *c, MDB_txn *txn, ps_aead_t *kek_aead, ps_buf_t *wrapped,
                        const uint8_t dek[PS_AEAD_KEY_LEN], const ps_kek_params_t *kp)
{
    static const MDB_val dek_key = {3, "dek"};
    MDB_val v;
    int rc;
    if ((rc = seal_with(c, kek_aead, wrapped, DB_META, &dek_key, dek, PS_AEAD_KEY_LEN, &v)) ||
        (rc = meta_put(txn, c->meta, "dek", v.mv_data, v.mv_size)) ||
        (rc = meta_put_str(txn, c->meta, "kek", kp->kind)))
        return rc;
    if (strcmp(kp->kind, PS_KEK_KEY_FILE) == 0)
        return meta_put_str(txn, c->meta, "key_file", kp->key_file);
    if ((rc = meta_put(txn, c->meta, "kdf_salt", kp->salt, sizeof(kp->salt))))
        return rc;
    return meta_put_u64(txn, c->meta, "kdf_iterations", kp->iterations);
}

/* A new cache's identity, connection and starting positions. */
static int put_new_meta(ps_cache_t *c, MDB_txn *txn, const ps_cache_meta_t *meta)
{
    int rc;
    if ((rc = meta_put(txn, c->meta, "node", meta->node, PS_ID_LEN)) ||
        (rc = meta_put_str(txn, c->meta, "server", meta->server)) ||
        (rc = meta_put_str(txn, c->meta, "server_name", meta->server_name)) ||
        (rc = meta_put_str(txn, c->meta, "ca", meta->ca)) || (rc = meta_put_str(txn, c->meta, "cert", meta->cert)) ||
        (rc = meta_put_str(txn, c->meta, "key", meta->key)) ||
        (rc = meta_put_str(txn, c->meta, "role", meta->role)) ||
        (rc = meta_put_str(txn, c->meta, "orgunit", meta->orgunit)) ||
        (rc = meta_put_sealed(c, txn, "name", meta->name, strlen(meta->name))) ||
        (rc = meta_put_u64(txn, c->meta, "cursor", 0)) || (rc = meta_put_u64(txn, c->meta, "next_lcn", 1)) ||
        (rc = meta_put_u64(txn, c->meta, "last_sync", 0)) ||
        (rc = meta_put_u64(txn, c->meta, "pindex_v", PS_PINDEX_VERSION)))
        return rc;
    return meta_put_u64(txn, c->meta, "counters_v", PS_COUNTERS_VERSION);
}

/* Makes a cache (see ps_cache_create); *out, when given, gets it open. */
static int cache_create(ps_cache_t **out, const char *dir, const ps_cache_meta_t *meta, char *err, size_t errlen)
{
    ps_cache_t *c;
    ps_aead_t *kek_aead = NULL;
    ps_buf_t wrapped;
    ps_kek_params_t kp;
    uint8_t kek[PS_AEAD_KEY_LEN], dek[PS_AEAD_KEY_LEN];
    MDB_txn *txn = NULL;
    char path[PATH_MAX + 16];
    struct stat sb;
    int rc, mrc, made_key = 0, made_env = 0;

    if (errlen)
        err[0] = '\0';
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (stat(path, &sb) == 0) {
        snprintf(err, errlen, "%s already holds a cache", dir);
        return PS_EEXIST;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return PS_ENOMEM;
    ps_buf_init(&wrapped);
    /* The key first, so a missing passphrase or key file leaves nothing behind. */
    if ((rc = ps_keys_new_params(&kp, meta->key_file, err, errlen)) ||
        (rc = ps_keys_get_kek(dir, &kp, 1, &made_key, kek, err, errlen)) ||
        (rc = new_data_key(c, kek, dek, &kek_aead, err, errlen)))
        goto out;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    made_env = 1;
    if ((rc = env_open(c, dir, err, errlen)))
        goto out;
    if ((mrc = txn_begin(c, 0, &txn))) {
        rc = ps_db_err(mrc);
        goto out;
    }
    if ((rc = put_key_meta(c, txn, kek_aead, &wrapped, dek, &kp)) || (rc = put_new_meta(c, txn, meta)))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc) {
        rc = ps_db_err(mrc);
        snprintf(err, errlen, "cache %s: %s", dir, mdb_strerror(mrc));
        goto out;
    }
    c->m = *meta;
    snprintf(c->m.key_file, sizeof(c->m.key_file), "%s", strcmp(kp.kind, PS_KEK_KEY_FILE) == 0 ? kp.key_file : "");
    c->m.cursor = 0;
    c->m.next_lcn = 1;
    c->m.last_sync_ms = 0;
    if (out) {
        *out = c;
        c = NULL;
    }
out:
    if (txn)
        mdb_txn_abort(txn);
    if (rc && rc != PS_EEXIST && !err[0])
        snprintf(err, errlen, "cache %s: %s", dir, ps_strerror(rc));
    if (c)
        cache_free(c);
    if (rc && made_env) {
        /* data.mdb did not exist before: remove the half-made cache. */
        unlink(path);
        snprintf(path, sizeof(path), "%s/lock.mdb", dir);
        unlink(path);
    }
    if (rc && made_key)
        unlink(kp.key_file);
    ps_aead_free(kek_aead);
    buf_wipe(&wrapped);
    ps_zeroize(kek, sizeof(kek));
    ps_zeroize(dek, sizeof(dek));
    return rc;
}

int ps_cache_create(const char *dir, const ps_cache_meta_t *meta, char *err, size_t errlen)
{
    return cache_create(NULL, dir, meta, err, errlen);
}

int ps_cache_create_open(ps_cache_t **out, const char *dir, const ps_cache_meta_t *meta, char *err, size_t errlen)
{
    return cache_create(out, dir, meta, err, errlen);
}

/* The meta key of a person index whose "pindex" entries are not written
 * yet (a cold pull's bulk build, docs/data-model.md §7.9): set in the
 * transaction of the pull batch that starts it, cleared in the one that
 * builds them.  by_id is complete meanwhile. */
#define PINDEX_PENDING "pindex_pending"
/* A pull batch into an empty index of at least this many records files
 * by_id rows only and leaves the entries to one build at the end. */
#define PINDEX_BULK_MIN 64

/* Whether txn (a write transaction) files by_id rows only.  Read for
 * each record (a get in the small meta database): a value kept across
 * transactions could outlive an aborted one, or miss another process's. */
static int pindex_deferred(ps_cache_t *c, MDB_txn *txn)
{
    return meta_get_u64(txn, c->meta, PINDEX_PENDING) != 0;
}

/* Writes the index's entries from its by_id rows and clears the pending
 * mark, in txn. */
static int pindex_build(ps_cache_t *c, MDB_txn *txn)
{
    const char *dir = NULL;
    MDB_val k = {sizeof(PINDEX_PENDING) - 1, PINDEX_PENDING};
    int mrc, rc;

    if ((mrc = mdb_env_get_path(c->env, &dir)))
        return ps_db_err(mrc);
    if ((rc = ps_pindex_build(&c->px, txn, dir)))
        return rc;
    mrc = mdb_del(txn, c->meta, &k, NULL);
    return mrc && mrc != MDB_NOTFOUND ? ps_db_err(mrc) : PS_OK;
}

int ps_cache_pindex_finish(ps_cache_t *c)
{
    MDB_txn *txn = NULL;
    int mrc, rc;

    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    rc = meta_get_u64(txn, c->meta, PINDEX_PENDING) != 0;
    mdb_txn_abort(txn);
    if (!rc)
        return PS_OK;
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    /* Another process may have built it meanwhile. */
    if (meta_get_u64(txn, c->meta, PINDEX_PENDING) && (rc = pindex_build(c, txn))) {
        mdb_txn_abort(txn);
        return rc;
    }
    return (mrc = mdb_txn_commit(txn)) ? ps_db_err(mrc) : PS_OK;
}

/* A cache made before the person index (or with an older one) gets it
 * built once, from every record, in one transaction: by_id rows in key
 * order, then the entries in bulk. */
static int pindex_upgrade(ps_cache_t *c)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc;

    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    rc = meta_get_u64(txn, c->meta, "pindex_v") == PS_PINDEX_VERSION;
    mdb_txn_abort(txn);
    if (rc)
        return PS_OK;
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    if ((rc = ps_pindex_clear(&c->px, txn)))
        goto out;
    if ((mrc = mdb_cursor_open(txn, c->records, &cur))) {
        rc = ps_db_err(mrc);
        goto out;
    }
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Record *r = NULL;
        if ((rc = rec_open(c, &k, &v, &r)))
            goto out;
        rc = ps_pindex_file_deferred(&c->px, txn, k.mv_data, r);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (rc)
            goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = pindex_build(c, txn)) || (rc = meta_put_u64(txn, c->meta, "pindex_v", PS_PINDEX_VERSION)))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? commit_err(c, mrc) : PS_OK;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* ---- report counters (cache_counters.h) ------------------------------------ */

/* Counts the records value v stored under k out of the transaction's
 * counter changes (its old version, about to be replaced or deleted). */
static int rec_count_out(ps_cache_t *c, const MDB_val *k, const MDB_val *v)
{
    Popsync__Record *old = NULL;
    int rc = rec_open(c, k, v, &old);
    if (rc)
        return rc;
    rc = ps_ctab_record(&c->cdelta, old, -1);
    protobuf_c_message_free_unpacked(&old->base, NULL);
    return rc;
}

/* Writes r as record id inside txn (r NULL: deletes it), filing it in the
 * person index and adding its old version negatively and r positively to
 * the counter changes the transaction commits (counters_flush).  raw, when
 * not NULL, is r's packed form as received: sealed as it is (rec_seal).
 * deferred: whether the index's filing is deferred in txn
 * (pindex_deferred) when the caller knows it for a whole batch, -1 to
 * look it up here. */
static int rec_store_raw(ps_cache_t *c, MDB_txn *txn, const uint8_t *id, const Popsync__Record *r, const uint8_t *raw,
                         size_t rawlen, int deferred)
{
    MDB_val k = {PS_ID_LEN, (void *)id}, v, nv;
    int mrc, rc;

    if (deferred < 0)
        deferred = pindex_deferred(c, txn);
    if (r) {
        /* Put first without overwriting: a new record (each one of a cold
         * pull) costs one B-tree search instead of a get and a put; an
         * existing one comes back in v, is counted out, then replaced.
         * The sealed value stays in c->scratch: rec_open uses c->plain. */
        if ((rc = rec_seal(c, &k, r, raw, rawlen, &nv)))
            return rc;
        v = nv;
        mrc = mdb_put(txn, c->records, &k, &v, MDB_NOOVERWRITE);
        if (mrc == MDB_KEYEXIST) {
            if ((rc = rec_count_out(c, &k, &v)))
                return rc;
            mrc = mdb_put(txn, c->records, &k, &nv, 0);
        }
    } else {
        mrc = mdb_get(txn, c->records, &k, &v);
        if (mrc == 0 && (rc = rec_count_out(c, &k, &v)))
            return rc;
        if (mrc == 0)
            mrc = mdb_del(txn, c->records, &k, NULL);
    }
    if (mrc && mrc != MDB_NOTFOUND)
        return ps_db_err(mrc);
    rc = deferred ? ps_pindex_file_deferred(&c->px, txn, id, r) : ps_pindex_file(&c->px, txn, id, r);
    if (rc)
        return rc;
    return ps_ctab_record(&c->cdelta, r, 1);
}

static int rec_store(ps_cache_t *c, MDB_txn *txn, const uint8_t *id, const Popsync__Record *r)
{
    return rec_store_raw(c, txn, id, r, NULL, 0, -1);
}

static void month_key(uint8_t key[4], uint32_t month)
{
    key[0] = (uint8_t)(month >> 24);
    key[1] = (uint8_t)(month >> 16);
    key[2] = (uint8_t)(month >> 8);
    key[3] = (uint8_t)month;
}

static uint32_t month_of_key(const void *key)
{
    const uint8_t *p = key;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One stored month, opened into c->plain (*p, *n; *n 0 when none). */
static int month_get(ps_cache_t *c, MDB_txn *txn, uint32_t month, const uint8_t **p, size_t *n)
{
    uint8_t key[4];
    MDB_val k = {4, key}, v;
    int mrc;
    month_key(key, month);
    *p = NULL;
    *n = 0;
    mrc = mdb_get(txn, c->counters, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return PS_OK;
    if (mrc)
        return ps_db_err(mrc);
    return open_val(c, &c->plain, DB_COUNTERS, &k, &v, p, n);
}

/* Merges the transaction's counter changes into the stored months. */
static int counters_flush(ps_cache_t *c, MDB_txn *txn)
{
    ps_ctab_t *t = &c->cdelta;
    ps_buf_t merged;
    int rc = PS_OK;

    ps_buf_init(&merged);
    ps_ctab_compact(t);
    for (size_t i = 0, j; rc == PS_OK && i < t->n; i = j) {
        uint8_t key[4];
        MDB_val k = {4, key}, v;
        const uint8_t *p;
        size_t n;
        int mrc;
        for (j = i; j < t->n && t->v[j].month == t->v[i].month; j++)
            ;
        if ((rc = month_get(c, txn, t->v[i].month, &p, &n)) ||
            (rc = ps_cblob_merge(p, n, t->v + i, j - i, &merged)))
            break;
        month_key(key, t->v[i].month);
        if (ps_buf_size(&merged) == 0) {
            mrc = mdb_del(txn, c->counters, &k, NULL);
            rc = mrc && mrc != MDB_NOTFOUND ? ps_db_err(mrc) : PS_OK;
            continue;
        }
        if ((rc = seal_with(c, data_key(c), &c->scratch, DB_COUNTERS, &k, ps_buf_head(&merged), ps_buf_size(&merged),
                            &v)))
            break;
        if ((mrc = mdb_put(txn, c->counters, &k, &v, 0)))
            rc = ps_db_err(mrc);
    }
    ps_ctab_clear(t);
    buf_wipe(&merged);
    return rc;
}

/* A cache made before it kept report counters gets them built once, from
 * every record, in one transaction (the one scan; docs/queries.md). */
static int counters_upgrade(ps_cache_t *c)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_stat st;
    MDB_val k, v;
    int mrc, rc;

    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    rc = meta_get_u64(txn, c->meta, "counters_v") == PS_COUNTERS_VERSION;
    mdb_txn_abort(txn);
    if (rc)
        return PS_OK;
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    if (mdb_stat(txn, c->records, &st) == 0 && st.ms_entries > 0)
        fprintf(stderr, "popsync: this cache keeps no report counters yet: building them once from its %zu records\n",
                (size_t)st.ms_entries);
    ps_ctab_clear(&c->cdelta);
    if ((mrc = mdb_drop(txn, c->counters, 0)) || (mrc = mdb_cursor_open(txn, c->records, &cur))) {
        rc = ps_db_err(mrc);
        goto out;
    }
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Record *r = NULL;
        if ((rc = rec_open(c, &k, &v, &r)))
            goto out;
        rc = ps_ctab_record(&c->cdelta, r, 1);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (rc)
            goto out;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if ((rc = counters_flush(c, txn)) || (rc = meta_put_u64(txn, c->meta, "counters_v", PS_COUNTERS_VERSION)))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? commit_err(c, mrc) : PS_OK;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    ps_ctab_clear(&c->cdelta);
    return rc;
}

int ps_cache_counters_month(ps_cache_t *c, uint32_t month,
                            int (*fn)(const char *unit, const char *metric, int64_t value, void *arg), void *arg)
{
    MDB_txn *txn = NULL;
    const uint8_t *p;
    size_t n;
    int mrc, rc;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    if ((rc = month_get(c, txn, month, &p, &n)) == PS_OK && n)
        rc = ps_cblob_foreach(p, n, fn, arg);
    mdb_txn_abort(txn);
    return rc;
}

/* What counters_check gathers: the recount minus what is stored. */
typedef struct ccheck {
    ps_ctab_t *t;
    uint32_t month;
    uint64_t stored;
} ccheck_t;

static int ccheck_stored(const char *unit, const char *metric, int64_t value, void *arg)
{
    ccheck_t *cc = arg;
    cc->stored++;
    return ps_ctab_add(cc->t, cc->month, unit, metric, -value);
}

int ps_cache_counters_check(ps_cache_t *c, uint64_t *checked, uint64_t *mismatched, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    ps_ctab_t t = {0};
    ccheck_t cc = {&t, 0, 0};
    int mrc, rc = PS_OK;

    *checked = *mismatched = 0;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)) || (mrc = mdb_cursor_open(txn, c->records, &cur))) {
        rc = ps_db_err(mrc);
        goto out;
    }
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Record *r = NULL;
        if ((rc = rec_open(c, &k, &v, &r)))
            break;
        rc = ps_ctab_record(&t, r, 1);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc || (mrc = mdb_cursor_open(txn, c->counters, &cur))) {
        rc = rc ? rc : ps_db_err(mrc);
        goto out;
    }
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        const uint8_t *p;
        size_t n;
        if (k.mv_size != 4) {
            rc = PS_EINVAL;
            break;
        }
        cc.month = month_of_key(k.mv_data);
        if ((rc = open_val(c, &c->plain, DB_COUNTERS, &k, &v, &p, &n)) == PS_OK)
            rc = ps_cblob_foreach(p, n, ccheck_stored, &cc);
    }
    if (rc)
        goto out;
    /* What is left after the compaction differs between the two. */
    ps_ctab_compact(&t);
    *checked = cc.stored;
    *mismatched = t.n;
    if (t.n)
        snprintf(err, errlen, "counter %06u|%s|%s differs from a recount by %lld", t.v[0].month, t.v[0].unit,
                 t.v[0].metric, (long long)-t.v[0].value);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    ps_ctab_free(&t);
    return rc;
}

/* What ps_cache_open reads before it can ask for the key. */
typedef struct cache_secrets {
    ps_kek_params_t kp;
    size_t salt_len;
    uint8_t wrapped[SEAL_OVERHEAD + PS_AEAD_KEY_LEN]; /* the data key, sealed with the KEK */
    size_t wrapped_len;
    uint8_t sname[SEAL_OVERHEAD + 256];               /* the identity name, sealed with the data key */
    size_t sname_len;
} cache_secrets_t;

/* The meta values into c->m and sec, in one read transaction that ends
 * before any key is asked for (it would pin a snapshot meanwhile). */
static int read_meta(ps_cache_t *c, const char *dir, cache_secrets_t *sec, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    MDB_val k = {4, "node"}, v, ck = {strlen("conflicts_open"), (void *)"conflicts_open"};
    int mrc;

    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    if (mdb_get(txn, c->meta, &k, &v) != 0 || v.mv_size != PS_ID_LEN) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "cache %s has no node id: not initialised", dir);
        return PS_EINVAL;
    }
    memcpy(c->m.node, v.mv_data, PS_ID_LEN);
    meta_get_str(txn, c->meta, "server", c->m.server, sizeof(c->m.server));
    meta_get_str(txn, c->meta, "server_name", c->m.server_name, sizeof(c->m.server_name));
    meta_get_str(txn, c->meta, "ca", c->m.ca, sizeof(c->m.ca));
    meta_get_str(txn, c->meta, "cert", c->m.cert, sizeof(c->m.cert));
    meta_get_str(txn, c->meta, "key", c->m.key, sizeof(c->m.key));
    meta_get_str(txn, c->meta, "role", c->m.role, sizeof(c->m.role));
    meta_get_str(txn, c->meta, "orgunit", c->m.orgunit, sizeof(c->m.orgunit));
    c->m.cursor = meta_get_u64(txn, c->meta, "cursor");
    c->m.next_lcn = meta_get_u64(txn, c->meta, "next_lcn");
    c->m.last_sync_ms = meta_get_u64(txn, c->meta, "last_sync");
    c->m.last_attempt_ms = meta_get_u64(txn, c->meta, "last_attempt");
    meta_get_str(txn, c->meta, "last_error", c->m.last_error, sizeof(c->m.last_error));
    c->m.conflicts_known = mdb_get(txn, c->meta, &ck, &v) == 0;
    c->m.conflicts_open = meta_get_u64(txn, c->meta, "conflicts_open");
    meta_get_str(txn, c->meta, "timezone", c->m.timezone, sizeof(c->m.timezone));
    c->m.synthetic_policy = (int)meta_get_u64(txn, c->meta, "synthetic");
    c->m.ui_timeout_s = (uint32_t)meta_get_u64(txn, c->meta, "ui_timeout");
    c->m.ui_retry_after_s = (uint32_t)meta_get_u64(txn, c->meta, "ui_retry_after");
    c->hlc.last = meta_get_u64(txn, c->meta, "hlc");
    c->m.clock_skew_ms = (int64_t)meta_get_u64(txn, c->meta, "clock_skew");
    c->m.clock_offset_ms = (int64_t)meta_get_u64(txn, c->meta, "clock_offset");
    meta_get_str(txn, c->meta, "kek", sec->kp.kind, sizeof(sec->kp.kind));
    meta_get_str(txn, c->meta, "key_file", sec->kp.key_file, sizeof(sec->kp.key_file));
    sec->kp.iterations = (uint32_t)meta_get_u64(txn, c->meta, "kdf_iterations");
    sec->salt_len = meta_get_bytes(txn, c->meta, "kdf_salt", sec->kp.salt, sizeof(sec->kp.salt));
    sec->wrapped_len = meta_get_bytes(txn, c->meta, "dek", sec->wrapped, sizeof(sec->wrapped));
    sec->sname_len = meta_get_bytes(txn, c->meta, "name", sec->sname, sizeof(sec->sname));
    mdb_txn_abort(txn);
    return PS_OK;
}

/* The data key: the KEK (passphrase or key file, client/keys.c) opens the
 * sealed data key, which then keys the records, the person index and the
 * identity name.  dek holds the plain data key for the caller to wipe. */
static int unlock(ps_cache_t *c, const char *dir, cache_secrets_t *sec, ps_buf_t *dek, char *err, size_t errlen)
{
    static const MDB_val dek_key = {3, "dek"}, name_key = {4, "name"};
    uint8_t kek[PS_AEAD_KEY_LEN];
    ps_aead_t *kek_aead = NULL;
    MDB_val v = {sec->wrapped_len, sec->wrapped};
    const uint8_t *p;
    size_t n;
    int rc, made;

    if (!sec->kp.kind[0]) {
        snprintf(err, errlen, "cache %s is not encrypted (made by an older popsync): make a new one with 'popsync init'",
                 dir);
        return PS_EINVAL;
    }
    if (sec->wrapped_len != sizeof(sec->wrapped) ||
        (strcmp(sec->kp.kind, PS_KEK_PASSPHRASE) == 0 && sec->salt_len != sizeof(sec->kp.salt))) {
        snprintf(err, errlen, "cache %s: its key is missing or damaged", dir);
        return PS_ECRYPTO;
    }
    if ((rc = ps_keys_get_kek(dir, &sec->kp, 0, &made, kek, err, errlen)))
        goto out;
    if ((rc = ps_aead_new(&kek_aead, kek))) {
        snprintf(err, errlen, "setting up the key: %s", ps_strerror(rc));
        goto out;
    }
    rc = open_keys(kek_aead, NULL, dek, DB_META, &dek_key, &v, &p, &n);
    if (rc == PS_OK && n != PS_AEAD_KEY_LEN)
        rc = PS_ECRYPTO;
    if (rc) {
        snprintf(err, errlen, "%s", WRONG_KEY_MSG);
        goto out;
    }
    if ((rc = data_keys(c, p))) {
        snprintf(err, errlen, "setting up the key: %s", ps_strerror(rc));
        goto out;
    }
    v.mv_data = sec->sname;
    v.mv_size = sec->sname_len;
    if (sec->sname_len && (rc = open_val(c, &c->plain, DB_META, &name_key, &v, &p, &n)) == PS_OK)
        snprintf(c->m.name, sizeof(c->m.name), "%.*s", (int)n, (const char *)p);
    if (rc)
        snprintf(err, errlen, "cache %s: its identity name is damaged", dir);
    else if (strcmp(sec->kp.kind, PS_KEK_KEY_FILE) == 0)
        snprintf(c->m.key_file, sizeof(c->m.key_file), "%s", sec->kp.key_file);
out:
    ps_aead_free(kek_aead);
    ps_zeroize(kek, sizeof(kek));
    return rc;
}

int ps_cache_open(ps_cache_t **out, const char *dir, char *err, size_t errlen)
{
    ps_cache_t *c;
    cache_secrets_t sec;
    ps_buf_t dek;
    char path[PATH_MAX + 16];
    struct stat sb;
    int rc;

    if (errlen)
        err[0] = '\0';
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (stat(path, &sb) != 0) {
        snprintf(err, errlen, "no cache in %s (run 'popsync --data %s init' first)", dir, dir);
        return PS_ENOTFOUND;
    }
    if (!(c = calloc(1, sizeof(*c))))
        return PS_ENOMEM;
    ps_buf_init(&dek);
    memset(&sec, 0, sizeof(sec));
    if ((rc = env_open(c, dir, err, errlen)) || (rc = read_meta(c, dir, &sec, err, errlen)) ||
        (rc = unlock(c, dir, &sec, &dek, err, errlen)))
        goto fail;
    if ((rc = pindex_upgrade(c))) {
        snprintf(err, errlen, "cache %s: building the person index: %s", dir, ps_strerror(rc));
        goto fail;
    }
    if ((rc = counters_upgrade(c))) {
        snprintf(err, errlen, "cache %s: building the report counters: %s", dir, ps_strerror(rc));
        goto fail;
    }
    *out = c;
    c = NULL;
fail:
    if (c)
        cache_free(c);
    buf_wipe(&dek);
    ps_zeroize(&sec, sizeof(sec));
    return rc;
}

void ps_cache_close(ps_cache_t *c)
{
    if (c)
        cache_free(c);
}

const ps_cache_meta_t *ps_cache_meta(const ps_cache_t *c)
{
    return &c->m;
}

/* Moves record id's count of outbox changes by delta; *left (may be NULL)
 * gets the new count. */
static int pending_move(ps_cache_t *c, MDB_txn *txn, const uint8_t *id, int delta, uint64_t *left)
{
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    uint64_t n = 0;
    uint8_t b[8];
    int mrc = mdb_get(txn, c->pending, &k, &v);
    if (left)
        *left = 0;
    if (mrc == 0 && v.mv_size == 8)
        n = ps_be64get(v.mv_data);
    else if (mrc && mrc != MDB_NOTFOUND)
        return ps_db_err(mrc);
    if (delta < 0 && n <= (uint64_t)-delta) {
        mrc = mdb_del(txn, c->pending, &k, NULL);
        return mrc && mrc != MDB_NOTFOUND ? ps_db_err(mrc) : PS_OK;
    }
    n = (uint64_t)((int64_t)n + delta);
    if (left)
        *left = n;
    ps_be64put(b, n);
    v.mv_size = 8;
    v.mv_data = b;
    mrc = mdb_put(txn, c->pending, &k, &v, 0);
    return mrc ? ps_db_err(mrc) : PS_OK;
}

static int pending_add(ps_cache_t *c, MDB_txn *txn, const uint8_t *id, int delta)
{
    return pending_move(c, txn, id, delta, NULL);
}

static int pending_count(ps_cache_t *c, MDB_txn *txn, const uint8_t *id, uint64_t *n)
{
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    int mrc = mdb_get(txn, c->pending, &k, &v);
    *n = 0;
    if (mrc == 0 && v.mv_size == 8)
        *n = ps_be64get(v.mv_data);
    else if (mrc && mrc != MDB_NOTFOUND)
        return ps_db_err(mrc);
    return PS_OK;
}

/* *none is 1 when no record has pending local edits in txn: a pull then
 * looks none up (a cold pull's cache has none; a pull changes none). */
static int pending_none(ps_cache_t *c, MDB_txn *txn, int *none)
{
    MDB_stat st;
    int mrc = mdb_stat(txn, c->pending, &st);
    if (mrc)
        return ps_db_err(mrc);
    *none = st.ms_entries == 0;
    return PS_OK;
}

/* 1 when the cache's local version of r (read in txn) has r's content: an
 * edit that changes nothing, which writes nothing.  0 when it differs or
 * is absent; a negative PS_E code on error. */
static int same_as_local(ps_cache_t *c, MDB_txn *txn, const Popsync__Record *r)
{
    MDB_val k = {PS_ID_LEN, r->id.data}, v;
    Popsync__Record *cur = NULL;
    int mrc = mdb_get(txn, c->records, &k, &v), rc, same;

    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc)
        return ps_db_err(mrc);
    if ((rc = rec_open(c, &k, &v, &cur)))
        return rc;
    same = ps_record_same_content(cur, r);
    protobuf_c_message_free_unpacked(&cur->base, NULL);
    return same;
}

/* Stores one local change inside txn; *lcn is the number to use and is
 * advanced.  r is restored before returning.  A change equal in content to
 * the local version is not stored (*written = 0): no revision, no outbox
 * entry, nothing to push.  Always stored: a conflict resolution (keeping
 * the current value is how it settles the conflict) and a change given
 * written == NULL (a refused change sent again: the local view already
 * holds it, yet the server has never accepted it). */
static int put_local_txn(ps_cache_t *c, MDB_txn *txn, Popsync__Record *r, uint64_t *lcn, const uint8_t *resolves,
                         int *written)
{
    MDB_val k, v;
    Popsync__Change ch = POPSYNC__CHANGE__INIT;
    Popsync__Rev base = POPSYNC__REV__INIT, *saved_rev = r->rev, newrev = POPSYNC__REV__INIT;
    ProtobufCBinaryData saved_by = r->changed_by;
    uint8_t lcnkey[8];
    int mrc, rc;

    if (written)
        *written = 0;
    if (r->id.len != PS_ID_LEN)
        return PS_EINVAL;
    if (written && !resolves && (rc = same_as_local(c, txn, r)) != 0)
        return rc < 0 ? rc : PS_OK;
    /* The base is the revision of the version this edit started from. */
    if (saved_rev) {
        base.gen = saved_rev->gen;
        base.hlc = saved_rev->hlc;
        base.node = saved_rev->node;
    }
    newrev.gen = base.gen;
    /* The edit's time, stamped now (when the clerk made it) and carried in
     * the change: the server orders clashing edits by it. */
    newrev.hlc = ps_hlc_at(&c->hlc, ps_cache_clock_ms(c));
    newrev.node.data = c->m.node;
    newrev.node.len = PS_ID_LEN;
    r->rev = &newrev;
    r->updated_ms = (int64_t)ps_cache_clock_ms(c);
    if (r->created_ms == 0)
        r->created_ms = r->updated_ms;
    r->changed_by.data = c->m.node;
    r->changed_by.len = PS_ID_LEN;

    ch.lcn = *lcn;
    ch.record = r;
    ch.base_rev = &base;
    if (resolves) {
        ch.resolves.data = (uint8_t *)resolves;
        ch.resolves.len = 16;
    }
    ps_be64put(lcnkey, *lcn);
    k.mv_size = 8;
    k.mv_data = lcnkey;
    if ((rc = seal_msg(c, DB_OUTBOX, &k, &ch.base, &v)))
        goto out;
    if ((mrc = mdb_put(txn, c->outbox, &k, &v, MDB_APPEND))) {
        rc = ps_db_err(mrc);
        goto out;
    }
    k.mv_size = PS_ID_LEN;
    k.mv_data = r->id.data;
    /* The local view keeps the base revision until the server answers, so a
     * second edit before a sync is based on the same server version. */
    r->rev = saved_rev;
    if ((rc = rec_store(c, txn, r->id.data, r)))
        goto out;
    if ((rc = pending_add(c, txn, r->id.data, 1)))
        goto out;
    (*lcn)++;
    if (written)
        *written = 1;
out:
    r->rev = saved_rev;
    r->changed_by = saved_by;
    return rc;
}

static int put_local_many(ps_cache_t *c, Popsync__Record *const *recs, size_t n, const uint8_t *resolves,
                          size_t *nwritten)
{
    MDB_txn *txn = NULL;
    uint64_t lcn;
    size_t written = 0;
    int mrc, rc = PS_OK, w;

    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    ps_ctab_clear(&c->cdelta);
    lcn = meta_get_u64(txn, c->meta, "next_lcn");
    if (lcn == 0)
        lcn = 1;
    for (size_t i = 0; i < n; i++) {
        if ((rc = put_local_txn(c, txn, recs[i], &lcn, resolves, &w)))
            goto out;
        written += (size_t)w;
    }
    if ((rc = meta_put_u64(txn, c->meta, "next_lcn", lcn)) || (rc = meta_put_u64(txn, c->meta, "hlc", c->hlc.last)) ||
        (rc = counters_flush(c, txn)))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? commit_err(c, mrc) : PS_OK;
    if (!rc) {
        c->m.next_lcn = lcn;
        if (nwritten)
            *nwritten = written;
    }
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

int ps_cache_put_local_many(ps_cache_t *c, Popsync__Record *const *recs, size_t n)
{
    return put_local_many(c, recs, n, NULL, NULL);
}

int ps_cache_put_local_count(ps_cache_t *c, Popsync__Record *const *recs, size_t n, size_t *written)
{
    return put_local_many(c, recs, n, NULL, written);
}

int ps_cache_put_local(ps_cache_t *c, Popsync__Record *r)
{
    return put_local_many(c, &r, 1, NULL, NULL);
}

int ps_cache_put_resolution(ps_cache_t *c, Popsync__Record *r, const uint8_t cid[16])
{
    return put_local_many(c, &r, 1, cid, NULL);
}

int ps_cache_get(ps_cache_t *c, const uint8_t id[PS_ID_LEN], Popsync__Record **out)
{
    MDB_txn *txn = NULL;
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    int mrc, rc;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    mrc = mdb_get(txn, c->records, &k, &v);
    if (mrc)
        rc = ps_db_err(mrc);
    else
        rc = rec_open(c, &k, &v, out);
    mdb_txn_abort(txn);
    return rc;
}

/* Does r really match what the index filed it under?  (Index hashes are
 * truncated, and a name query also finds names it begins.) */
static int person_matches(const Popsync__Record *r, ps_pindex_kind_t kind, const char *term)
{
    const Popsync__Person *p = r->body_case == POPSYNC__RECORD__BODY_PERSON ? r->person : NULL;
    size_t n = strlen(term), m;
    const char *bar;
    char name[256];

    /* A newborn may have no ID number yet: found by name, not by number. */
    if (!p || r->deleted || !p->name || (!p->id_number && (kind == PS_PINDEX_ID_NUMBER || kind == PS_PINDEX_TAIL)))
        return 0;
    ps_pindex_name(p->name, name, sizeof(name));
    switch (kind) {
    case PS_PINDEX_ID_NUMBER: return strcmp(p->id_number, term) == 0;
    case PS_PINDEX_TAIL:
        m = strlen(p->id_number);
        return m >= n && strcmp(p->id_number + m - n, term) == 0;
    case PS_PINDEX_NAME: return strncmp(name, term, n) == 0;
    case PS_PINDEX_INITIALS: return ps_pindex_initials_match(name, term);
    case PS_PINDEX_NAME_DATE:
        bar = strchr(term, '|');
        return bar && strncmp(name, term, (size_t)(bar - term)) == 0 && !name[bar - term] && p->birth_date &&
               strcmp(p->birth_date, bar + 1) == 0;
    case PS_PINDEX_PAYMENT: return 0;
    case PS_PINDEX_REF: return 0;
    case PS_PINDEX_OPEN_CASE: return 0;
    case PS_PINDEX_KIND: return 0;
    }
    return 0;
}

static int find_term(ps_cache_t *c, ps_pindex_kind_t kind, const char *term, size_t max, Popsync__Record ***out,
                     size_t *n);

static int record_matches(const Popsync__Record *r, ps_pindex_kind_t kind, const char *term)
{
    char t[160];

    if (kind == PS_PINDEX_REF) {
        ps_ref_t refs[PS_REFS_MAX];
        size_t nr = r->deleted ? 0 : ps_record_refs(r, refs);
        for (size_t i = 0; i < nr; i++) {
            ps_hex(refs[i].id, 16, t);
            if (strcmp(t, term) == 0)
                return 1;
        }
        return 0;
    }
    if (kind != PS_PINDEX_PAYMENT)
        return person_matches(r, kind, term);
    if (r->deleted || r->body_case != POPSYNC__RECORD__BODY_BENEFIT || !r->benefit)
        return 0;
    ps_pindex_payment_term(&r->benefit->person_id, r->benefit->scheme, r->benefit->period, t, sizeof(t));
    return strcmp(t, term) == 0;
}

int ps_cache_find(ps_cache_t *c, const char *text, size_t max, Popsync__Record ***out, size_t *n)
{
    char term[512];
    ps_pindex_kind_t kind = ps_pindex_parse(text, term, sizeof(term));

    return find_term(c, kind, term, max, out, n);
}

int ps_cache_find_payments(ps_cache_t *c, const ProtobufCBinaryData *person_id, const char *scheme,
                           const char *period, size_t max, Popsync__Record ***out, size_t *n)
{
    char term[160];

    ps_pindex_payment_term(person_id, scheme, period, term, sizeof(term));
    return find_term(c, PS_PINDEX_PAYMENT, term, max, out, n);
}

typedef struct kind_walk {
    ps_cache_t *c;
    MDB_txn *txn;
    int kind, rc;
    int (*fn)(Popsync__Record *r, void *arg);
    void *arg;
} kind_walk_t;

static int kind_one(const uint8_t id[16], void *arg)
{
    kind_walk_t *w = arg;
    MDB_val k = {PS_ID_LEN, (void *)(uintptr_t)id}, v;
    Popsync__Record *r = NULL;
    int stop = 0;

    if (mdb_get(w->txn, w->c->records, &k, &v) != 0)
        return 0;
    if ((w->rc = rec_open(w->c, &k, &v, &r)))
        return -1;
    if ((int)r->kind == w->kind && !r->deleted)
        stop = w->fn(r, w->arg);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return stop;
}

/* Calls fn for the live records of kind filed under tag/term. */
static int foreach_term(ps_cache_t *c, int kind, ps_pindex_kind_t tag, const char *term,
                        int (*fn)(Popsync__Record *r, void *arg), void *arg)
{
    kind_walk_t w = {c, NULL, kind, PS_OK, fn, arg};
    int mrc, rc;

    if ((rc = ps_cache_pindex_finish(c)))
        return rc;
    if ((mrc = txn_begin(c, MDB_RDONLY, &w.txn)))
        return ps_db_err(mrc);
    rc = ps_pindex_foreach(&c->px, w.txn, tag, term, kind_one, &w);
    mdb_txn_abort(w.txn);
    return w.rc ? w.rc : rc < 0 ? rc : PS_OK;
}

int ps_cache_foreach_kind(ps_cache_t *c, int kind, int (*fn)(Popsync__Record *r, void *arg), void *arg)
{
    const char *name = ps_kind_name(kind);

    if (kind == POPSYNC__KIND__KIND_PERSON || !name)
        return ps_cache_foreach(c, fn, arg); /* persons are most records: a scan is as good */
    return foreach_term(c, kind, PS_PINDEX_KIND, name, fn, arg);
}

int ps_cache_foreach_open_case(ps_cache_t *c, int (*fn)(Popsync__Record *r, void *arg), void *arg)
{
    return foreach_term(c, POPSYNC__KIND__KIND_MIGRATION, PS_PINDEX_OPEN_CASE, PS_PINDEX_OPEN_TERM, fn, arg);
}

int ps_cache_find_referring(ps_cache_t *c, const uint8_t id[PS_ID_LEN], size_t max, Popsync__Record ***out, size_t *n)
{
    char term[33];

    ps_hex(id, PS_ID_LEN, term);
    return find_term(c, PS_PINDEX_REF, term, max, out, n);
}

/* The live records filed under term that really match it. */
static int find_term(ps_cache_t *c, ps_pindex_kind_t kind, const char *term, size_t max, Popsync__Record ***out,
                     size_t *n)
{
    uint8_t(*ids)[16] = NULL;
    Popsync__Record **recs = NULL;
    MDB_txn *txn = NULL;
    size_t nids = 0, got = 0, cap = max * 4 + 16;
    int mrc, rc;

    *out = NULL;
    *n = 0;
    /* Candidates beyond max: some may be hash collisions or prefixes. */
    ids = malloc(cap * sizeof(*ids));
    recs = calloc(max ? max : 1, sizeof(*recs));
    if (!ids || !recs) {
        rc = PS_ENOMEM;
        goto out;
    }
    if ((rc = ps_cache_pindex_finish(c)))
        goto out;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn))) {
        rc = ps_db_err(mrc);
        goto out;
    }
    if ((rc = ps_pindex_lookup(&c->px, txn, kind, term, ids, cap, &nids)))
        goto out;
    for (size_t i = 0; i < nids && got < max; i++) {
        MDB_val k = {PS_ID_LEN, ids[i]}, v;
        Popsync__Record *r = NULL;
        if (mdb_get(txn, c->records, &k, &v) != 0)
            continue;
        if ((rc = rec_open(c, &k, &v, &r)))
            goto out;
        if (record_matches(r, kind, term))
            recs[got++] = r;
        else
            protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    *out = recs;
    *n = got;
    recs = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    for (size_t i = 0; recs && i < got; i++)
        protobuf_c_message_free_unpacked(&recs[i]->base, NULL);
    free(recs);
    free(ids);
    return rc;
}

/* Opens one stored record and hands it to fn (the caller's foreach
 * callback), freeing it after; *stop gets what fn returned. */
static int visit(ps_cache_t *c, const MDB_val *k, const MDB_val *v, int (*fn)(Popsync__Record *r, void *arg),
                 void *arg, int *stop)
{
    Popsync__Record *r = NULL;
    int rc = rec_open(c, k, v, &r);
    if (rc)
        return rc;
    *stop = fn(r, arg);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return PS_OK;
}

int ps_cache_foreach(ps_cache_t *c, int (*fn)(Popsync__Record *r, void *arg), void *arg)
{
    return ps_cache_foreach_after(c, NULL, fn, arg);
}

int ps_cache_foreach_pending(ps_cache_t *c, int (*fn)(Popsync__Record *r, void *arg), void *arg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v, rv;
    int mrc, rc = PS_OK;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)) || (mrc = mdb_cursor_open(txn, c->pending, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        int stop;
        if (v.mv_size != 8 || be64get(v.mv_data) == 0)
            continue;
        if ((mrc = mdb_get(txn, c->records, &k, &rv)) == MDB_NOTFOUND)
            continue;
        if (mrc) {
            rc = db_err(mrc);
            goto out;
        }
        if ((rc = visit(c, &k, &rv, fn, arg, &stop)) || stop)
            goto out;
    }
    if (mrc != MDB_NOTFOUND)
        rc = db_err(mrc);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* A Push read from the outbox and what its changes were unpacked into:
 * blocks of at least PUSH_BLOCK bytes, bump-allocated, freed together by
 * ps_cache_push_free.  Unpacked piece by piece (a malloc per string and
 * sub-message, each freed on the answer), a batch of 5,000 changes cost
 * the client a tenth of its CPU per pushed record in malloc and free
 * (docs/performance.md §a1). */
#define PUSH_BLOCK (64 * 1024) /* under glibc's mmap threshold: reused, no page faults */

typedef struct push_block {
    struct push_block *next;
    size_t cap, used;
} push_block_t;

typedef struct push_box {
    Popsync__Push p; /* first: ps_cache_push_free turns the Push back into its box */
    push_block_t *blocks;
} push_box_t;

#define PUSH_BLOCK_HDR ((sizeof(push_block_t) + 15) & ~(size_t)15)

static void *push_alloc(void *data, size_t size)
{
    push_box_t *b = data;
    push_block_t *blk = b->blocks;
    size_t n = (size + 15) & ~(size_t)15; /* max_align_t alignment for every piece */
    void *p;
    if (n < size)
        return NULL;
    if (!blk || n > blk->cap - blk->used) {
        size_t cap = n > PUSH_BLOCK - PUSH_BLOCK_HDR ? n : PUSH_BLOCK - PUSH_BLOCK_HDR;
        if (cap > SIZE_MAX - PUSH_BLOCK_HDR || !(blk = malloc(PUSH_BLOCK_HDR + cap)))
            return NULL;
        blk->cap = cap;
        blk->used = 0;
        blk->next = b->blocks;
        b->blocks = blk;
    }
    p = (uint8_t *)blk + PUSH_BLOCK_HDR + blk->used;
    blk->used += n;
    return p;
}

static void push_nofree(void *data, void *ptr)
{
    (void)data;
    (void)ptr;
}

void ps_cache_push_free(Popsync__Push *p)
{
    push_box_t *b = (push_box_t *)p;
    if (!p)
        return;
    while (b->blocks) {
        push_block_t *next = b->blocks->next;
        free(b->blocks);
        b->blocks = next;
    }
    free(p->changes);
    free(b);
}

int ps_cache_outbox_batch(ps_cache_t *c, size_t max, size_t max_bytes, Popsync__Push **out)
{
    return ps_cache_outbox_batch_after(c, 0, max, max_bytes, out);
}

int ps_cache_outbox_batch_after(ps_cache_t *c, uint64_t after, size_t max, size_t max_bytes, Popsync__Push **out)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    push_box_t *box = calloc(1, sizeof(*box));
    Popsync__Push *p = &box->p;
    ProtobufCAllocator al = {push_alloc, push_nofree, box};
    size_t bytes = 0;
    uint8_t from[8];
    MDB_cursor_op op = MDB_SET_RANGE;
    int mrc, rc = PS_OK;

    if (!box)
        return PS_ENOMEM;
    popsync__push__init(p);
    p->changes = calloc(max ? max : 1, sizeof(*p->changes));
    if (!p->changes) {
        free(box);
        return PS_ENOMEM;
    }
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)) || (mrc = mdb_cursor_open(txn, c->outbox, &cur))) {
        rc = ps_db_err(mrc);
        goto out;
    }
    be64put(from, after + 1); /* lcns are 1 and above, never UINT64_MAX */
    k.mv_size = sizeof(from);
    k.mv_data = from;
    while (p->n_changes < max && bytes < max_bytes && (mrc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        Popsync__Change *ch = NULL;
        if ((rc = open_msg_al(c, DB_OUTBOX, &k, &v, &popsync__change__descriptor, &al, (ProtobufCMessage **)&ch)))
            goto out;
        p->changes[p->n_changes++] = ch;
        bytes += v.mv_size;
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    if (rc) {
        ps_cache_push_free(p);
        return rc;
    }
    *out = p;
    return PS_OK;
}

/* Gives the local copy the revision the server assigned, unless a newer
 * local edit is still waiting (pend, the record's changes left in the
 * outbox: then that edit's base must stay).  *cur is a cursor on records
 * (opened here on first use, closed by the caller): the value is read and
 * rewritten where it lies, one search instead of two.  A
 * format-2 value only has the revision beside its sealed record rewritten:
 * no open, no seal.  A format-1 value (an older cache) is rebuilt from the
 * record just sent, which is what was stored but for its revision, and so
 * becomes format 2. */
static int set_local_rev(ps_cache_t *c, MDB_txn *txn, MDB_cursor **cur, const Popsync__Record *sent,
                         const Popsync__Rev *rev, uint64_t pend)
{
    MDB_val k = {PS_ID_LEN, sent->id.data}, v;
    Popsync__Record copy = *sent;
    int rc, mrc;

    if (pend > 0)
        return PS_OK;
    if (!*cur && (mrc = mdb_cursor_open(txn, c->records, cur))) {
        *cur = NULL;
        return ps_db_err(mrc);
    }
    mrc = mdb_cursor_get(*cur, &k, &v, MDB_SET_KEY);
    if (mrc == MDB_NOTFOUND)
        return PS_OK; /* dropped meanwhile (it left our scope) */
    if (mrc)
        return ps_db_err(mrc);
    k.mv_data = sent->id.data; /* not the map's copy, which the put may move */
    if (v.mv_size > RECMETA_LEN && ((const uint8_t *)v.mv_data)[0] == REC_V2 && rev->node.len <= PS_ID_LEN &&
        !c->legacy) {
        /* Copied first: the value lies in the map, which the put may change. */
        ps_buf_reset(&c->scratch);
        if ((rc = ps_buf_append(&c->scratch, v.mv_data, v.mv_size)))
            return rc;
        rec_head_put(ps_buf_head(&c->scratch), rev);
        v.mv_data = ps_buf_head(&c->scratch);
    } else {
        copy.rev = (Popsync__Rev *)rev;
        if ((rc = rec_seal(c, &k, &copy, NULL, 0, &v)))
            return rc;
    }
    mrc = mdb_cursor_put(*cur, &k, &v, MDB_CURRENT);
    return mrc ? ps_db_err(mrc) : PS_OK;
}

/* Kept in one function (about 90 lines): every answer of one push is
 * applied in one write transaction, and its cleanup path is one. */
int ps_cache_outbox_ack(ps_cache_t *c, const Popsync__Push *sent, const Popsync__PushResult *res)
{
    MDB_txn *txn = NULL;
    MDB_cursor *rcur = NULL;
    int mrc, rc = PS_OK;

    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    for (size_t i = 0; i < res->n_results; i++) {
        const Popsync__ChangeResult *r = res->results[i];
        const Popsync__Change *ch = NULL;
        uint8_t key[8];
        uint64_t left; /* the record's changes still in the outbox */
        MDB_val k = {8, key}, v;
        /* The server answers in the order sent: look there first. */
        if (i < sent->n_changes && sent->changes[i]->lcn == r->lcn)
            ch = sent->changes[i];
        for (size_t j = 0; !ch && j < sent->n_changes; j++)
            if (sent->changes[j]->lcn == r->lcn) {
                ch = sent->changes[j];
                break;
            }
        if (!ch || !ch->record)
            continue; /* not ours: ignore rather than guess */
        ps_be64put(key, r->lcn);
        switch (r->status) {
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED:
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE:
            break;
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT:
        case POPSYNC__CHANGE_STATUS__CHANGE_STATUS_REJECTED: {
            /* Keep what was refused, with why, for `popsync status`. */
            Popsync__Push keep = POPSYNC__PUSH__INIT;
            Popsync__PushResult why = POPSYNC__PUSH_RESULT__INIT;
            Popsync__ChangeResult *rp = (Popsync__ChangeResult *)r;
            Popsync__Change *cp = (Popsync__Change *)ch;
            size_t n1, n2;
            uint8_t *p;
            keep.n_changes = 1;
            keep.changes = &cp;
            why.n_results = 1;
            why.results = &rp;
            n1 = protobuf_c_message_get_packed_size(&why.base);
            n2 = protobuf_c_message_get_packed_size(&keep.base);
            ps_buf_reset(&c->plain);
            if ((rc = ps_buf_reserve(&c->plain, 16 + n1 + n2)))
                goto out;
            p = ps_buf_tail(&c->plain);
            ps_be64put(p, n1);
            ps_be64put(p + 8, n2);
            protobuf_c_message_pack(&why.base, p + 16);
            protobuf_c_message_pack(&keep.base, p + 16 + n1);
            if ((rc = seal_with(c, data_key(c), &c->scratch, DB_REJECTED, &k, p, 16 + n1 + n2, &v)))
                goto out;
            if ((mrc = mdb_put(txn, c->rejected, &k, &v, 0))) {
                rc = ps_db_err(mrc);
                goto out;
            }
            break;
        }
        default:
            continue; /* unknown status: leave it in the outbox */
        }
        mrc = mdb_del(txn, c->outbox, &k, NULL);
        if (mrc == MDB_NOTFOUND)
            continue; /* acknowledged before */
        if (mrc) {
            rc = ps_db_err(mrc);
            goto out;
        }
        if ((rc = pending_move(c, txn, ch->record->id.data, -1, &left)))
            goto out;
        /* Only a change applied exactly on its base (gen = base + 1) left
         * the server holding our content: then our copy takes the new
         * revision (a DUPLICATE carries the rev of its first acceptance).  A merged result holds edits we have not seen, so our
         * copy keeps its base until the merged version is fetched. */
        if ((r->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED ||
             r->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE) &&
            r->rev && r->rev->gen == (ch->base_rev ? ch->base_rev->gen : 0) + 1)
            if ((rc = set_local_rev(c, txn, &rcur, ch->record, r->rev, left)))
                goto out;
    }
    mdb_cursor_close(rcur);
    rcur = NULL;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? commit_err(c, mrc) : PS_OK;
out:
    if (rcur)
        mdb_cursor_close(rcur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

static int keep_migrant(ps_cache_t *c, MDB_txn *txn, const Popsync__FeedEntry *e);

/* Where each entry's record lies in the packed batch body[0..len) (NULL:
 * not given), in a new array *spans (NULL when not found: every record
 * is packed again then). */
static int batch_spans(const Popsync__PullBatch *batch, const uint8_t *body, size_t len, ps_span_t **spans)
{
    *spans = NULL;
    if (!body || batch->n_entries == 0)
        return PS_OK;
    if (!(*spans = calloc(batch->n_entries, sizeof(**spans))))
        return PS_ENOMEM;
    if (ps_pull_record_spans(body, len, batch->n_entries, *spans) != PS_OK) {
        free(*spans);
        *spans = NULL;
    }
    return PS_OK;
}

/* Stores pulled entry i's record r, sealing its bytes as received when
 * spans knows them. */
static int store_pulled(ps_cache_t *c, MDB_txn *txn, const Popsync__Record *r, const ps_span_t *spans, size_t i,
                        int deferred)
{
    const ps_span_t *sp = spans && spans[i].p ? &spans[i] : NULL;
    return rec_store_raw(c, txn, r->id.data, r, sp ? sp->p : NULL, sp ? sp->n : 0, deferred);
}

/* A batch of n into an empty index starts a bulk build: the pull files
 * by_id rows only until ps_cache_pindex_finish (docs/performance.md §o). */
static int pull_maybe_bulk(ps_cache_t *c, MDB_txn *txn, size_t n)
{
    int empty = 0, rc;

    if (n < PINDEX_BULK_MIN || pindex_deferred(c, txn))
        return PS_OK;
    if ((rc = ps_pindex_entries_empty(&c->px, txn, &empty)) || !empty)
        return rc;
    return meta_put_u64(txn, c->meta, PINDEX_PENDING, 1);
}

int ps_cache_apply_pull(ps_cache_t *c, const Popsync__PullBatch *batch)
{
    return ps_cache_apply_pull_raw(c, batch, NULL, 0);
}

int ps_cache_apply_pull_raw(ps_cache_t *c, const Popsync__PullBatch *batch, const uint8_t *body, size_t len)
{
    return ps_cache_apply_pull_held(c, batch, body, len, 0);
}

/* The transaction pulled batches go into: the one held open, or a new
 * one, with what a pull reads once per transaction. */
static int pull_txn(ps_cache_t *c, size_t n)
{
    int mrc, rc, no_pending = 0;
    if (c->ptxn)
        return PS_OK;
    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &c->ptxn))) {
        c->ptxn = NULL;
        return ps_db_err(mrc);
    }
    ps_ctab_clear(&c->cdelta);
    c->ptxn_batches = 0;
    c->ptxn_records = c->ptxn_bytes = 0;
    c->ptxn_cursor = c->m.cursor;
    if ((rc = pull_maybe_bulk(c, c->ptxn, n)) || (rc = pending_none(c, c->ptxn, &no_pending))) {
        mdb_txn_abort(c->ptxn);
        c->ptxn = NULL;
        return rc;
    }
    c->ptxn_no_pending = no_pending;
    c->ptxn_deferred = pindex_deferred(c, c->ptxn);
    return PS_OK;
}

/* Pulled entry i of batch into txn. */
static int pull_entry(ps_cache_t *c, MDB_txn *txn, const Popsync__PullBatch *batch, const ps_span_t *spans, size_t i)
{
    Popsync__Record *r = batch->entries[i]->record;
    uint64_t pend = 0;
    int rc;
    if (batch->entries[i]->gone) {
        /* Out of our scope now (moved to another unit): drop our copy.
         * A pending local edit stays in the outbox and becomes a
         * conflict on the server, so it is not lost. */
        if (batch->entries[i]->id.len == PS_ID_LEN) {
            if ((rc = rec_store(c, txn, batch->entries[i]->id.data, NULL)) ||
                (rc = keep_migrant(c, txn, batch->entries[i])))
                return rc;
        }
        return PS_OK;
    }
    if (!r || r->id.len != PS_ID_LEN)
        return PS_OK;
    if ((rc = keep_migrant(c, txn, batch->entries[i])))
        return rc;
    if (!c->ptxn_no_pending && (rc = pending_count(c, txn, r->id.data, &pend)))
        return rc;
    /* A record with local edits still in the outbox keeps the local
     * version in view; the server's answer to the push settles it. */
    if (pend > 0)
        return PS_OK;
    if ((rc = store_pulled(c, txn, r, spans, i, c->ptxn_deferred)))
        return rc;
    if (r->rev)
        ps_hlc_observe(&c->hlc, r->rev->hlc);
    return PS_OK;
}

/* Whether the held transaction is as big as one may grow. */
static int pull_txn_full(const ps_cache_t *c)
{
    return c->ptxn_batches >= PS_PULL_HOLD_BATCHES || c->ptxn_records >= PS_PULL_HOLD_RECORDS ||
           c->ptxn_bytes >= PS_PULL_HOLD_BYTES;
}

int ps_cache_apply_pull_held(ps_cache_t *c, const Popsync__PullBatch *batch, const uint8_t *body, size_t len,
                             int hold)
{
    ps_span_t *spans = NULL;
    int rc;

    if (c->ptxn_err) {
        rc = c->ptxn_err;
        c->ptxn_err = 0;
        return rc;
    }
    if ((rc = batch_spans(batch, body, len, &spans)))
        return rc;
    if ((rc = pull_txn(c, batch->n_entries)))
        goto out;
    for (size_t i = 0; i < batch->n_entries; i++)
        if ((rc = pull_entry(c, c->ptxn, batch, spans, i)))
            goto out;
    /* The cursor moves in the transaction that holds its records. */
    if ((rc = meta_put_u64(c->ptxn, c->meta, "cursor", batch->cursor)) ||
        (rc = meta_put_u64(c->ptxn, c->meta, "hlc", c->hlc.last)))
        goto out;
    c->ptxn_cursor = batch->cursor;
    c->ptxn_batches++;
    c->ptxn_records += batch->n_entries;
    c->ptxn_bytes += len;
    if (!hold || pull_txn_full(c))
        rc = ps_cache_pull_commit(c);
out:
    if (rc && c->ptxn) {
        mdb_txn_abort(c->ptxn);
        c->ptxn = NULL;
    }
    free(spans);
    return rc;
}

int ps_cache_pull_commit(ps_cache_t *c)
{
    MDB_txn *txn = c->ptxn;
    uint64_t fail = 0;
    int mrc, rc;
    if (!txn) {
        rc = c->ptxn_err; /* a held group lost inside another operation */
        c->ptxn_err = 0;
        return rc;
    }
    c->ptxn = NULL;
    /* Test builds: a commit that fails as on a disk error. */
    if (ps_test_hook_u64("POPSYNC_TEST_PULL_COMMIT_FAIL", &fail) == 1 && fail) {
        mdb_txn_abort(txn);
        return PS_EIO;
    }
    if ((rc = counters_flush(c, txn))) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((mrc = mdb_txn_commit(txn)))
        return commit_err(c, mrc);
    c->ops.pull_commits++;
    c->m.cursor = c->ptxn_cursor;
    return PS_OK;
}

unsigned ps_cache_pull_held(const ps_cache_t *c)
{
    return c->ptxn ? c->ptxn_batches : 0;
}

int ps_cache_get_orgunits(ps_cache_t *c, uint8_t **csv, size_t *len, uint8_t digest[32])
{
    MDB_txn *txn = NULL;
    MDB_val k = {12, "orgunits_csv"}, v, dk = {15, "orgunits_digest"}, dv;
    int mrc, rc = PS_OK;
    *csv = NULL;
    *len = 0;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    if (mdb_get(txn, c->meta, &k, &v) != 0 || mdb_get(txn, c->meta, &dk, &dv) != 0 || dv.mv_size != 32) {
        rc = PS_ENOTFOUND;
        goto out;
    }
    *csv = malloc(v.mv_size ? v.mv_size : 1);
    if (!*csv) {
        rc = PS_ENOMEM;
        goto out;
    }
    memcpy(*csv, v.mv_data, v.mv_size);
    *len = v.mv_size;
    memcpy(digest, dv.mv_data, 32);
out:
    mdb_txn_abort(txn);
    return rc;
}

int ps_cache_set_orgunits(ps_cache_t *c, const uint8_t *csv, size_t len, const uint8_t digest[32])
{
    MDB_txn *txn = NULL;
    int mrc, rc;
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    if ((rc = meta_put(txn, c->meta, "orgunits_csv", csv, len)) ||
        (rc = meta_put(txn, c->meta, "orgunits_digest", digest, 32))) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? commit_err(c, mrc) : PS_OK;
}

int ps_cache_set_tls_session(ps_cache_t *c, const uint8_t *sess, size_t len)
{
    MDB_txn *txn = NULL;
    int mrc, rc;
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    /* The session holds the TLS master secret: sealed like a record. */
    if (len == 0) {
        MDB_val k = {11, "tls_session"};
        mrc = mdb_del(txn, c->meta, &k, NULL);
        rc = mrc && mrc != MDB_NOTFOUND ? ps_db_err(mrc) : PS_OK;
    } else {
        rc = meta_put_sealed(c, txn, "tls_session", sess, len);
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? commit_err(c, mrc) : PS_OK;
}

int ps_cache_get_tls_session(ps_cache_t *c, ps_buf_t *out)
{
    MDB_txn *txn = NULL;
    MDB_val k = {11, "tls_session"}, v;
    ps_buf_t plain;
    const uint8_t *p;
    size_t n;
    int mrc, rc;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    mrc = mdb_get(txn, c->meta, &k, &v);
    if (mrc) {
        mdb_txn_abort(txn);
        return mrc == MDB_NOTFOUND ? PS_ENOTFOUND : ps_db_err(mrc);
    }
    ps_buf_init(&plain);
    rc = open_val(c, &plain, DB_META, &k, &v, &p, &n);
    if (rc == PS_OK) {
        ps_buf_reset(out);
        rc = ps_buf_append(out, p, n);
    }
    if (ps_buf_size(&plain))
        ps_zeroize(ps_buf_head(&plain), ps_buf_size(&plain));
    ps_buf_free(&plain);
    mdb_txn_abort(txn);
    return rc;
}

int ps_cache_set_timezone(ps_cache_t *c, const char *name)
{
    MDB_txn *txn = NULL;
    int mrc, rc;
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    if ((rc = meta_put_str(txn, c->meta, "timezone", name))) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    if (!mrc)
        snprintf(c->m.timezone, sizeof(c->m.timezone), "%s", name);
    return mrc ? ps_db_err(mrc) : PS_OK;
}

/* One meta value written in a transaction of its own. */
static int meta_commit_u64(ps_cache_t *c, const char *key, uint64_t v)
{
    MDB_txn *txn = NULL;
    int mrc, rc;

    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    if ((rc = meta_put_u64(txn, c->meta, key, v))) {
        mdb_txn_abort(txn);
        return rc;
    }
    return (mrc = mdb_txn_commit(txn)) ? ps_db_err(mrc) : PS_OK;
}

int ps_cache_set_synthetic_policy(ps_cache_t *c, int policy)
{
    int rc = meta_commit_u64(c, "synthetic", (uint64_t)policy);

    if (rc == PS_OK)
        c->m.synthetic_policy = policy;
    return rc;
}

int ps_cache_set_ui_timeout(ps_cache_t *c, uint32_t seconds)
{
    int rc = meta_commit_u64(c, "ui_timeout", seconds);

    if (rc == PS_OK)
        c->m.ui_timeout_s = seconds;
    return rc;
}

int ps_cache_set_ui_retry_after(ps_cache_t *c, uint32_t seconds)
{
    int rc = meta_commit_u64(c, "ui_retry_after", seconds);

    if (rc == PS_OK)
        c->m.ui_retry_after_s = seconds;
    return rc;
}

int ps_cache_set_connection(ps_cache_t *c, const char *key, const char *value)
{
    static const char *const keys[] = {"server", "server_name", "ca", "cert", "key"};
    char *fields[] = {c->m.server, c->m.server_name, c->m.ca, c->m.cert, c->m.key};
    size_t sizes[] = {sizeof(c->m.server), sizeof(c->m.server_name), sizeof(c->m.ca), sizeof(c->m.cert),
                      sizeof(c->m.key)};
    MDB_txn *txn = NULL;
    int mrc, rc;

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(key, keys[i]) != 0)
            continue;
        if (strlen(value) >= sizes[i])
            return PS_ETOOBIG;
        if ((mrc = txn_begin(c, 0, &txn)))
            return ps_db_err(mrc);
        if ((rc = meta_put_str(txn, c->meta, key, value))) {
            mdb_txn_abort(txn);
            return rc;
        }
        if ((mrc = mdb_txn_commit(txn)))
            return ps_db_err(mrc);
        snprintf(fields[i], sizes[i], "%s", value);
        return PS_OK;
    }
    return PS_EINVAL;
}

int ps_cache_set_approved_months(ps_cache_t *c, char *const *months, size_t n)
{
    MDB_txn *txn = NULL;
    ps_buf_t b;
    int mrc, rc = PS_OK;

    ps_buf_init(&b);
    for (size_t i = 0; i < n && rc == PS_OK; i++)
        if (strlen(months[i]) == 20) /* "YYYY-MM " + 12 digits: nothing else is kept */
            rc = ps_buf_append(&b, (const uint8_t *)months[i], 20);
    if (rc == PS_OK && (mrc = txn_begin(c, 0, &txn)))
        rc = ps_db_err(mrc);
    if (rc == PS_OK && (rc = meta_put(txn, c->meta, "approved_months", ps_buf_size(&b) ? ps_buf_head(&b) : (void *)"",
                                      ps_buf_size(&b))) == PS_OK) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;
        rc = mrc ? ps_db_err(mrc) : PS_OK;
    }
    if (txn)
        mdb_txn_abort(txn);
    ps_buf_free(&b);
    return rc;
}

int ps_cache_month_approved(ps_cache_t *c, uint32_t month, const char *township)
{
    MDB_txn *txn = NULL;
    MDB_val k = {15, "approved_months"}, v;
    char want[21];
    int found = 0;

    snprintf(want, sizeof(want), "%04u-%02u %.12s", month / 100 % 10000, month % 100, township);
    if (txn_begin(c, MDB_RDONLY, &txn))
        return 0;
    if (mdb_get(txn, c->meta, &k, &v) == 0)
        for (size_t off = 0; !found && off + 20 <= v.mv_size; off += 20)
            found = memcmp((const char *)v.mv_data + off, want, 20) == 0;
    mdb_txn_abort(txn);
    return found;
}

int ps_cache_set_last_sync(ps_cache_t *c, uint64_t ms)
{
    int rc = meta_commit_u64(c, "last_sync", ms);

    if (rc == PS_OK)
        c->m.last_sync_ms = ms;
    return rc;
}

/* meta key of migration id's migrant summary: "mig:" then the 16-byte id. */
static void migrant_key(const uint8_t *id, uint8_t key[4 + PS_ID_LEN])
{
    memcpy(key, "mig:", 4);
    memcpy(key + 4, id, PS_ID_LEN);
}

/* Keeps (or, when the entry carries none, forgets) the migrant summary of a
 * pulled migration record: sealed, since it names a person. */
static int keep_migrant(ps_cache_t *c, MDB_txn *txn, const Popsync__FeedEntry *e)
{
    uint8_t key[4 + PS_ID_LEN];
    MDB_val k = {sizeof(key), key}, v;
    const uint8_t *id = e->record ? e->record->id.data : e->id.data;
    size_t idlen = e->record ? e->record->id.len : e->id.len;
    int mrc, rc;
    if (idlen != PS_ID_LEN || (e->record && e->record->body_case != POPSYNC__RECORD__BODY_MIGRATION))
        return PS_OK;
    migrant_key(id, key);
    if (e->migrant && e->record) {
        size_t sz = protobuf_c_message_get_packed_size(&e->migrant->base);
        uint8_t *buf = malloc(sz ? sz : 1);
        if (!buf)
            return PS_ENOMEM;
        protobuf_c_message_pack(&e->migrant->base, buf);
        rc = seal_with(c, data_key(c), &c->scratch, DB_META, &k, buf, sz, &v);
        ps_zeroize(buf, sz);
        free(buf);
        if (rc)
            return rc;
        mrc = mdb_put(txn, c->meta, &k, &v, 0);
        return mrc ? ps_db_err(mrc) : PS_OK;
    }
    mrc = mdb_del(txn, c->meta, &k, NULL);
    return mrc && mrc != MDB_NOTFOUND ? ps_db_err(mrc) : PS_OK;
}

int ps_cache_get_migrant(ps_cache_t *c, const uint8_t id[PS_ID_LEN], Popsync__MigrantSummary **out)
{
    uint8_t key[4 + PS_ID_LEN];
    MDB_val k = {sizeof(key), key}, v;
    MDB_txn *txn = NULL;
    int mrc, rc = PS_OK;
    *out = NULL;
    migrant_key(id, key);
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    if (mdb_get(txn, c->meta, &k, &v) == 0)
        rc = open_msg(c, DB_META, &k, &v, &popsync__migrant_summary__descriptor, (ProtobufCMessage **)out);
    mdb_txn_abort(txn);
    return rc;
}

int ps_cache_set_sync_attempt(ps_cache_t *c, uint64_t ms, const char *error)
{
    MDB_txn *txn = NULL;
    int done = !error || !*error, mrc, rc;
    if ((mrc = txn_begin(c, 0, &txn)))
        return db_err(mrc);
    if ((done && (rc = meta_put_u64(txn, c->meta, "last_sync", ms))) ||
        (rc = meta_put_u64(txn, c->meta, "last_attempt", ms)) ||
        (rc = meta_put_str(txn, c->meta, "last_error", error ? error : ""))) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    if (!mrc) {
        if (done)
            c->m.last_sync_ms = ms;
        c->m.last_attempt_ms = ms;
        snprintf(c->m.last_error, sizeof(c->m.last_error), "%s", error ? error : "");
    }
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_cache_set_conflicts_open(ps_cache_t *c, uint64_t n)
{
    int rc = meta_commit_u64(c, "conflicts_open", n);

    if (rc == PS_OK) {
        c->m.conflicts_open = n;
        c->m.conflicts_known = 1;
    }
    return rc;
}

int ps_cache_outbox_kinds(ps_cache_t *c, uint64_t *counts, size_t nkinds)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;
    memset(counts, 0, nkinds * sizeof(*counts));
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)) || (mrc = mdb_cursor_open(txn, c->outbox, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Change *ch = NULL;
        if ((rc = open_msg(c, DB_OUTBOX, &k, &v, &popsync__change__descriptor, (ProtobufCMessage **)&ch)))
            goto out;
        if (ch->record && (size_t)ch->record->kind < nkinds)
            counts[ch->record->kind]++;
        protobuf_c_message_free_unpacked(&ch->base, NULL);
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

int ps_cache_apply_fetch(ps_cache_t *c, const Popsync__PullBatch *batch, const uint8_t *ids, size_t nids)
{
    return ps_cache_apply_fetch_raw(c, batch, NULL, 0, ids, nids);
}

int ps_cache_apply_fetch_raw(ps_cache_t *c, const Popsync__PullBatch *batch, const uint8_t *body, size_t len,
                             const uint8_t *ids, size_t nids)
{
    MDB_txn *txn = NULL;
    ps_span_t *spans = NULL;
    int mrc, rc;

    if ((rc = batch_spans(batch, body, len, &spans)))
        return rc;
    if ((mrc = txn_begin(c, 0, &txn))) {
        free(spans);
        return ps_db_err(mrc);
    }
    ps_ctab_clear(&c->cdelta);
    for (size_t i = 0; i < nids; i++) {
        const uint8_t *id = ids + i * PS_ID_LEN;
        const Popsync__Record *r = NULL;
        const Popsync__FeedEntry *fe = NULL;
        const ps_span_t *sp = NULL;
        uint64_t pend;
        for (size_t j = 0; j < batch->n_entries; j++) {
            const Popsync__Record *e = batch->entries[j]->record;
            if (e && e->id.len == PS_ID_LEN && memcmp(e->id.data, id, PS_ID_LEN) == 0) {
                r = e;
                fe = batch->entries[j];
                sp = spans && spans[j].p ? &spans[j] : NULL;
                break;
            }
        }
        if ((rc = pending_count(c, txn, id, &pend)))
            goto out;
        if (pend > 0)
            continue;
        if ((rc = rec_store_raw(c, txn, id, r, sp ? sp->p : NULL, sp ? sp->n : 0, -1)) ||
            (r && fe && (rc = keep_migrant(c, txn, fe))))
            goto out;
    }
    if ((rc = counters_flush(c, txn)))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? commit_err(c, mrc) : PS_OK;
out:
    if (txn)
        mdb_txn_abort(txn);
    free(spans);
    return rc;
}

void ps_cache_op_counts(const ps_cache_t *c, ps_cache_ops_t *out)
{
    *out = c->ops;
    out->pindex_writes = c->px.writes;
}

void ps_cache_set_legacy_writes(ps_cache_t *c, int on)
{
    c->legacy = on != 0;
}

typedef struct digest_ctx {
    uint64_t *digests;
    uint32_t *counts;
    const uint8_t *want;
    int (*fn)(const uint8_t *id, uint64_t gen, uint64_t hlc, int deleted, void *arg);
    void *arg;
} digest_ctx_t;

static int digest_one(Popsync__Record *r, void *arg)
{
    digest_ctx_t *d = arg;
    uint64_t gen = r->rev ? r->rev->gen : 0, hlc = r->rev ? r->rev->hlc : 0;
    uint32_t b;
    if (r->id.len != PS_ID_LEN)
        return 0;
    b = ps_verify_bucket(r->id.data);
    if (d->want) {
        if (d->want[b])
            return d->fn(r->id.data, gen, hlc, r->deleted, d->arg);
        return 0;
    }
    d->digests[b] += ps_verify_item_hash(r->id.data, gen, hlc, r->deleted);
    d->counts[b]++;
    return 0;
}

int ps_cache_verify_digests(ps_cache_t *c, uint64_t *digests, uint32_t *counts)
{
    digest_ctx_t d = {digests, counts, NULL, NULL, NULL};
    memset(digests, 0, PS_VERIFY_BUCKETS * sizeof(*digests));
    memset(counts, 0, PS_VERIFY_BUCKETS * sizeof(*counts));
    return ps_cache_foreach(c, digest_one, &d);
}

int ps_cache_verify_items(ps_cache_t *c, const uint8_t *want,
                          int (*fn)(const uint8_t *id, uint64_t gen, uint64_t hlc, int deleted, void *arg), void *arg)
{
    digest_ctx_t d = {NULL, NULL, want, fn, arg};
    return ps_cache_foreach(c, digest_one, &d);
}

int ps_cache_observe_hlc(ps_cache_t *c, uint64_t hlc)
{
    MDB_txn *txn = NULL;
    int mrc, rc;
    if (hlc <= c->hlc.last)
        return PS_OK;
    ps_hlc_observe(&c->hlc, hlc);
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    if ((rc = meta_put_u64(txn, c->meta, "hlc", c->hlc.last))) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? commit_err(c, mrc) : PS_OK;
}

uint64_t ps_cache_device_ms(const ps_cache_t *c)
{
    int64_t ms = (int64_t)ps_now_ms() + c->clock_shift;
    return ms > 0 ? (uint64_t)ms : 0;
}

uint64_t ps_cache_clock_ms(const ps_cache_t *c)
{
    int64_t ms = (int64_t)ps_cache_device_ms(c) + c->m.clock_offset_ms;
    return ms > 0 ? (uint64_t)ms : 0;
}

void ps_cache_set_clock_shift(ps_cache_t *c, int64_t ms)
{
    c->clock_shift = ms;
}

static int wrong_clock(int64_t skew_ms)
{
    return skew_ms > PS_CLOCK_TOLERANCE_MS || skew_ms < -PS_CLOCK_TOLERANCE_MS;
}

int ps_cache_clock_seen(ps_cache_t *c, int64_t skew_ms, int adopt, uint64_t server_hlc)
{
    MDB_txn *txn = NULL;
    int64_t skew = wrong_clock(skew_ms) ? skew_ms : 0, off = c->m.clock_offset_ms;
    uint64_t last = c->hlc.last;
    int mrc, rc;

    /* Noise (the time the Welcome took to arrive) does not move a clock
     * that is right, nor one already corrected. */
    if (adopt && wrong_clock(-skew - off)) {
        uint64_t now;
        off = -skew;
        /* Stamps made on the wrong clock may lie in the future of the
         * corrected one: start again from the corrected clock and from what
         * the server has told us, so the next edit is neither a year ahead
         * nor before what this cache has seen. */
        now = (uint64_t)((int64_t)ps_cache_device_ms(c) + off) << 16;
        if (last > now)
            last = now;
        if (server_hlc > last)
            last = server_hlc;
    }
    /* A write only when something the clerk or the clock would notice
     * changed: most syncs of a right clock (or one already corrected) write
     * nothing. */
    if (off == c->m.clock_offset_ms && last == c->hlc.last && (skew == 0) == (c->m.clock_skew_ms == 0) &&
        skew - c->m.clock_skew_ms <= 1000 && c->m.clock_skew_ms - skew <= 1000)
        return PS_OK;
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    if ((rc = meta_put_u64(txn, c->meta, "clock_skew", (uint64_t)skew)) ||
        (rc = meta_put_u64(txn, c->meta, "clock_offset", (uint64_t)off)) ||
        (rc = meta_put_u64(txn, c->meta, "hlc", last))) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((mrc = mdb_txn_commit(txn)))
        return commit_err(c, mrc);
    c->m.clock_skew_ms = skew;
    c->m.clock_offset_ms = off;
    c->hlc.last = last;
    return PS_OK;
}

static int count_record(Popsync__Record *r, void *arg)
{
    ps_cache_counts_t *n = arg;
    if (r->deleted)
        n->deleted++;
    else
        n->records++;
    return 0;
}

int ps_cache_counts(ps_cache_t *c, ps_cache_counts_t *out)
{
    MDB_txn *txn = NULL;
    MDB_stat s;
    int mrc, rc;
    memset(out, 0, sizeof(*out));
    if ((rc = ps_cache_foreach(c, count_record, out)))
        return rc;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    if (mdb_stat(txn, c->outbox, &s) == 0)
        out->outbox = s.ms_entries;
    if (mdb_stat(txn, c->rejected, &s) == 0)
        out->rejected = s.ms_entries;
    mdb_txn_abort(txn);
    return PS_OK;
}

/* Entries of one database, from its B-tree header: no record is opened. */
static int db_entries(ps_cache_t *c, MDB_dbi dbi, uint64_t *n)
{
    MDB_txn *txn = NULL;
    MDB_stat s;
    int mrc;
    *n = 0;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return ps_db_err(mrc);
    mrc = mdb_stat(txn, dbi, &s);
    mdb_txn_abort(txn);
    if (mrc)
        return ps_db_err(mrc);
    *n = s.ms_entries;
    return PS_OK;
}

int ps_cache_outbox_count(ps_cache_t *c, uint64_t *n)
{
    return db_entries(c, c->outbox, n);
}

int ps_cache_foreach_rejected(ps_cache_t *c,
                              int (*fn)(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg),
                              void *arg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)) ||
        (mrc = mdb_cursor_open(txn, c->rejected, &cur))) {
        rc = ps_db_err(mrc);
        goto out;
    }
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        const uint8_t *p;
        Popsync__PushResult *why;
        Popsync__Push *keep;
        uint64_t n1, n2;
        size_t n;
        int stop = 0;
        if ((rc = open_val(c, &c->plain, DB_REJECTED, &k, &v, &p, &n)))
            goto out;
        if (n < 16)
            continue;
        n1 = ps_be64get(p);
        n2 = ps_be64get(p + 8);
        if (n1 > n - 16 || n2 > n - 16 - n1)
            continue;
        why = popsync__push_result__unpack(NULL, n1, p + 16);
        keep = popsync__push__unpack(NULL, n2, p + 16 + n1);
        if (why && keep && why->n_results == 1 && keep->n_changes == 1)
            stop = fn(why->results[0], keep->changes[0], arg);
        if (why)
            popsync__push_result__free_unpacked(why, NULL);
        if (keep)
            popsync__push__free_unpacked(keep, NULL);
        if (stop)
            break;
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

/* The record id of a sealed refused entry (k, v) into id; 0 when it has one. */
static int refused_entry_id(ps_cache_t *c, const MDB_val *k, const MDB_val *v, uint8_t id[PS_ID_LEN])
{
    const uint8_t *p;
    Popsync__Push *keep;
    uint64_t n1, n2;
    size_t n;
    int rc = PS_ENOTFOUND;
    if (open_val(c, &c->plain, DB_REJECTED, k, v, &p, &n))
        return PS_ECRYPTO;
    if (n < 16)
        return PS_ENOTFOUND;
    n1 = ps_be64get(p);
    n2 = ps_be64get(p + 8);
    if (n1 > n - 16 || n2 > n - 16 - n1)
        return PS_ENOTFOUND;
    keep = popsync__push__unpack(NULL, n2, p + 16 + n1);
    if (keep && keep->n_changes == 1 && keep->changes[0]->record && keep->changes[0]->record->id.len == PS_ID_LEN) {
        memcpy(id, keep->changes[0]->record->id.data, PS_ID_LEN);
        rc = PS_OK;
    }
    if (keep)
        popsync__push__free_unpacked(keep, NULL);
    return rc;
}

/* Deletes, inside txn, every refused entry of record id; *n gets how many. */
static int refused_delete_txn(ps_cache_t *c, MDB_txn *txn, const uint8_t *id, size_t *n)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;
    *n = 0;
    if ((mrc = mdb_cursor_open(txn, c->rejected, &cur)))
        return ps_db_err(mrc);
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        uint8_t eid[PS_ID_LEN];
        if (refused_entry_id(c, &k, &v, eid) != PS_OK || memcmp(eid, id, PS_ID_LEN) != 0)
            continue;
        if ((mrc = mdb_cursor_del(cur, 0))) {
            rc = ps_db_err(mrc);
            break;
        }
        (*n)++;
    }
    if (rc == PS_OK && mrc && mrc != MDB_NOTFOUND)
        rc = ps_db_err(mrc);
    mdb_cursor_close(cur);
    return rc;
}

int ps_cache_refused_discard(ps_cache_t *c, const uint8_t id[PS_ID_LEN], size_t *n)
{
    MDB_txn *txn = NULL;
    int mrc, rc;
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    if ((rc = refused_delete_txn(c, txn, id, n)) == PS_OK && *n == 0)
        rc = PS_ENOTFOUND;
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? commit_err(c, mrc) : PS_OK;
}

int ps_cache_refused_resubmit(ps_cache_t *c, Popsync__Record *r, const uint8_t *resolves, size_t *n)
{
    MDB_txn *txn = NULL;
    uint64_t lcn, pend;
    int mrc, rc;

    if (r->id.len != PS_ID_LEN)
        return PS_EINVAL;
    if ((mrc = txn_begin(c, 0, &txn)))
        return ps_db_err(mrc);
    ps_ctab_clear(&c->cdelta);
    /* A newer local edit of the record waits in the outbox: the corrected
     * version would hide it from view.  The caller says to sync first. */
    if ((rc = pending_count(c, txn, r->id.data, &pend)) || (pend > 0 && (rc = PS_EEXIST)))
        goto out;
    if ((rc = refused_delete_txn(c, txn, r->id.data, n)))
        goto out;
    if (*n == 0) {
        rc = PS_ENOTFOUND;
        goto out;
    }
    lcn = meta_get_u64(txn, c->meta, "next_lcn");
    if (lcn == 0)
        lcn = 1;
    if ((rc = put_local_txn(c, txn, r, &lcn, resolves, NULL)) || (rc = meta_put_u64(txn, c->meta, "next_lcn", lcn)) ||
        (rc = meta_put_u64(txn, c->meta, "hlc", c->hlc.last)) || (rc = counters_flush(c, txn)))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? commit_err(c, mrc) : PS_OK;
    if (!rc)
        c->m.next_lcn = lcn;
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

int ps_cache_refused_count(ps_cache_t *c, uint64_t *n)
{
    return db_entries(c, c->rejected, n);
}

int ps_cache_meta_for_pki(ps_cache_meta_t *m, const char *server, const char *pki_dir, const char *name,
                          const char *role, const char *unit)
{
    int n = 0;
    memset(m, 0, sizeof(*m));
    snprintf(m->server, sizeof(m->server), "%s", server);
    snprintf(m->server_name, sizeof(m->server_name), "popsyncd");
    n |= snprintf(m->ca, sizeof(m->ca), "%s/ca.crt", pki_dir) >= (int)sizeof(m->ca);
    n |= snprintf(m->cert, sizeof(m->cert), "%s/%s.crt", pki_dir, name) >= (int)sizeof(m->cert);
    n |= snprintf(m->key, sizeof(m->key), "%s/%s.key", pki_dir, name) >= (int)sizeof(m->key);
    snprintf(m->role, sizeof(m->role), "%s", role);
    snprintf(m->orgunit, sizeof(m->orgunit), "%s", unit);
    snprintf(m->name, sizeof(m->name), "%s", name);
    if (n)
        return PS_ETOOBIG;
    return ps_random(m->node, sizeof(m->node)) ? PS_EIO : PS_OK;
}

/* The web interface's pages (ui_town.c): a page of records from a cursor,
 * and one record's waiting changes, without a scan. */
int ps_cache_foreach_after(ps_cache_t *c, const uint8_t *after, int (*fn)(Popsync__Record *r, void *arg), void *arg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k = {PS_ID_LEN, (void *)(uintptr_t)after}, v;
    MDB_cursor_op op = after ? MDB_SET_RANGE : MDB_FIRST;
    int mrc, rc = PS_OK;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)) || (mrc = mdb_cursor_open(txn, c->records, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    for (; (mrc = mdb_cursor_get(cur, &k, &v, op)) == 0; op = MDB_NEXT) {
        int stop;
        if (after && op == MDB_SET_RANGE && k.mv_size == PS_ID_LEN && memcmp(k.mv_data, after, PS_ID_LEN) == 0)
            continue;
        if ((rc = visit(c, &k, &v, fn, arg, &stop)) || stop)
            goto out;
    }
    if (mrc != MDB_NOTFOUND)
        rc = db_err(mrc);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

int ps_cache_pending_of(ps_cache_t *c, const uint8_t id[PS_ID_LEN], uint64_t *n)
{
    MDB_txn *txn = NULL;
    MDB_val k = {PS_ID_LEN, (void *)(uintptr_t)id}, v;
    int mrc;
    *n = 0;
    if ((mrc = txn_begin(c, MDB_RDONLY, &txn)))
        return db_err(mrc);
    mrc = mdb_get(txn, c->pending, &k, &v);
    if (mrc == 0 && v.mv_size == 8)
        *n = be64get(v.mv_data);
    mdb_txn_abort(txn);
    return mrc == 0 || mrc == MDB_NOTFOUND ? PS_OK : db_err(mrc);
}
