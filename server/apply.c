/* apply.c - the apply path: a group commit's transaction and the stages
 * of one change (apply.h). */
#include "apply.h"
#include "audit_chain.h"
#include "counters.h"
#include "crypto.h"
#include "err.h"
#include "fields.h"
#include "log.h"
#include "msg.h"
#include "policy.h"
#include "record_fmt.h"
#include "scope.h"
#include "store_cols.h"
#include "store_versions.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(PS_CHANGE_ERRORS_MAX == PS_VERR_MAX, "a result keeps every field error validation finds");
_Static_assert(sizeof(((ps_change_result_t *)0)->errors[0].reason) == sizeof(((ps_field_error_t *)0)->reason) &&
                   sizeof(((ps_change_result_t *)0)->errors[0].field) == sizeof(((ps_field_error_t *)0)->field),
               "a result keeps a field error whole");

/* Counter deltas gathered during a transaction and written once at its
 * end: a batch of thousands of records touches a handful of counters. */
#define CKEY_MAX (4 + 12 + 32)
typedef struct ps_apply_centry {
    uint8_t key[CKEY_MAX];
    uint8_t klen;
    int64_t delta;
} centry_t;

typedef ps_apply_ctab_t ctab_t;

static uint64_t ckey_hash(const uint8_t *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return h;
}

static int ctab_add(ctab_t *t, const uint8_t *key, size_t klen, int64_t delta)
{
    size_t i;
    if (t->n * 2 >= t->cap) {
        ctab_t nt = {NULL, t->cap ? t->cap * 2 : 256, 0};
        nt.v = calloc(nt.cap, sizeof(*nt.v));
        if (!nt.v)
            return PS_ENOMEM;
        for (size_t j = 0; j < t->cap; j++)
            if (t->v[j].klen) {
                size_t h = ckey_hash(t->v[j].key, t->v[j].klen) & (nt.cap - 1);
                while (nt.v[h].klen)
                    h = (h + 1) & (nt.cap - 1);
                nt.v[h] = t->v[j];
                nt.n++;
            }
        free(t->v);
        *t = nt;
    }
    i = ckey_hash(key, klen) & (t->cap - 1);
    while (t->v[i].klen && (t->v[i].klen != klen || memcmp(t->v[i].key, key, klen) != 0))
        i = (i + 1) & (t->cap - 1);
    if (!t->v[i].klen) {
        memcpy(t->v[i].key, key, klen);
        t->v[i].klen = (uint8_t)klen;
        t->n++;
    }
    t->v[i].delta += delta;
    return PS_OK;
}

static size_t ckey_make(uint8_t *key, const ps_contrib_t *c)
{
    size_t ml = strlen(c->metric);
    key[0] = (uint8_t)(c->month >> 24);
    key[1] = (uint8_t)(c->month >> 16);
    key[2] = (uint8_t)(c->month >> 8);
    key[3] = (uint8_t)c->month;
    memcpy(key + 4, c->unit, 12);
    memcpy(key + 16, c->metric, ml);
    return 16 + ml;
}

/* Adds sign times a record version's contributions to the table. */
static int ctab_record(ctab_t *t, const Popsync__Record *r, int sign)
{
    ps_contrib_t cs[PS_CONTRIB_MAX];
    size_t n = ps_counters_contrib(r, cs, PS_CONTRIB_MAX);
    uint8_t key[CKEY_MAX];
    for (size_t i = 0; i < n; i++) {
        int rc = ctab_add(t, key, ckey_make(key, &cs[i]), sign * cs[i].value);
        if (rc)
            return rc;
    }
    return PS_OK;
}

static int64_t get_i64(const void *p)
{
    return (int64_t)be64get(p);
}

/* Writes the gathered deltas into the counters database. */
static int ctab_flush(ctab_t *t, MDB_txn *txn, MDB_dbi dbi)
{
    for (size_t i = 0; i < t->cap; i++) {
        centry_t *e = &t->v[i];
        MDB_val k = {e->klen, e->key}, v;
        int64_t cur = 0;
        uint8_t val[8];
        int mrc;
        if (!e->klen || e->delta == 0)
            continue;
        mrc = mdb_get(txn, dbi, &k, &v);
        if (mrc == 0 && v.mv_size == 8)
            cur = get_i64(v.mv_data);
        else if (mrc && mrc != MDB_NOTFOUND)
            return db_err(mrc);
        cur += e->delta;
        if (cur == 0) {
            mrc = mdb_del(txn, dbi, &k, NULL);
            if (mrc && mrc != MDB_NOTFOUND)
                return db_err(mrc);
            continue;
        }
        be64put(val, (uint64_t)cur);
        v.mv_size = 8;
        v.mv_data = val;
        if ((mrc = mdb_put(txn, dbi, &k, &v, 0)))
            return db_err(mrc);
    }
    return PS_OK;
}

typedef ps_apply_txn_t apply_ctx_t;
typedef ps_apply_mark_t node_mark_t;

static int mark_get(apply_ctx_t *c, const uint8_t *node, node_mark_t **out)
{
    MDB_val k = {PS_ID_LEN, (void *)node}, v;
    node_mark_t *m;
    int mrc;
    for (size_t i = 0; i < c->nmarks; i++)
        if (memcmp(c->marks[i].node, node, PS_ID_LEN) == 0) {
            *out = &c->marks[i];
            return PS_OK;
        }
    if (c->nmarks == c->capmarks) {
        size_t ncap = c->capmarks ? c->capmarks * 2 : 8;
        node_mark_t *p = realloc(c->marks, ncap * sizeof(*p));
        if (!p)
            return PS_ENOMEM;
        c->marks = p;
        c->capmarks = ncap;
    }
    m = &c->marks[c->nmarks++];
    memset(m, 0, sizeof(*m));
    memcpy(m->node, node, PS_ID_LEN);
    mrc = mdb_get(c->txn, c->st->nodes, &k, &v);
    if (mrc == 0 && v.mv_size >= 8)
        m->hw = be64get(v.mv_data);
    else if (mrc && mrc != MDB_NOTFOUND)
        return db_err(mrc);
    *out = m;
    return PS_OK;
}

static int marks_flush(apply_ctx_t *c)
{
    for (size_t i = 0; i < c->nmarks; i++) {
        node_mark_t *m = &c->marks[i];
        uint8_t val[24] = {0};
        MDB_val k = {PS_ID_LEN, m->node}, v;
        int mrc;
        if (!m->dirty)
            continue;
        /* Keep the cursor field written by Hello; only hw and time change here. */
        mrc = mdb_get(c->txn, c->st->nodes, &k, &v);
        if (mrc == 0 && v.mv_size >= 24)
            memcpy(val, v.mv_data, 24);
        be64put(val, m->hw);
        be64put(val + 8, c->now_ms);
        v.mv_size = sizeof(val);
        v.mv_data = val;
        if ((mrc = mdb_put(c->txn, c->st->nodes, &k, &v, 0)))
            return db_err(mrc);
    }
    return PS_OK;
}



/* SHA-256 of the change as sent, cut to 8 bytes: tells a resend (the same
 * bytes from the outbox) from another change under the same lcn (a copied
 * cache).  The hash is libcrypto's (the CPU's SHA extensions, as the audit
 * chain's): with mbedTLS 2.28 it was a tenth of popsyncd's CPU in ingest
 * (docs/performance.md §a1).  The same SHA-256, so answers stored by an
 * older popsyncd still compare. */
static int change_digest(apply_ctx_t *c, const Popsync__Change *ch, uint8_t out[8])
{
    size_t n = protobuf_c_message_get_packed_size(&ch->base);
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned hlen = 0;
    int rc;
    ps_buf_reset(&c->dscratch);
    if ((rc = ps_buf_reserve(&c->dscratch, n ? n : 1)))
        return rc;
    protobuf_c_message_pack(&ch->base, ps_buf_tail(&c->dscratch));
    /* One context per transaction, initialised from the SHA-256 the audit
     * chain fetched: OpenSSL 3's one-shot EVP_Digest fetches the algorithm
     * and takes its locks on every call. */
    if (!c->dmd && !(c->dmd = EVP_MD_CTX_new()))
        return PS_ENOMEM;
    if (EVP_DigestInit_ex2(c->dmd, ps_audit_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(c->dmd, ps_buf_tail(&c->dscratch), n) != 1 || EVP_DigestFinal_ex(c->dmd, h, &hlen) != 1 ||
        hlen != 32)
        return PS_ECRYPTO;
    memcpy(out, h, 8);
    return PS_OK;
}

static void answer_key(uint8_t key[PS_ID_LEN + 8], const uint8_t *node, uint64_t lcn)
{
    memcpy(key, node, PS_ID_LEN);
    be64put(key + PS_ID_LEN, lcn);
}

static int pack_scratch(apply_ctx_t *c, const ProtobufCMessage *msg, size_t hdr_len, uint8_t **p, size_t *n);

/* Remembered answers (`answers`, docs/architecture.md §5): a node's
 * acknowledgement floor under node | lcn 0, and the answers to its
 * accepted changes until its client has them.  Since issue 17 one entry
 * per Push: key node | last lcn | ABLOCK_TAG (25 bytes), value one
 * AENTRY_HDR-byte head (lcn(8) | digest(8) | length(2)) and the packed
 * ChangeResult per accepted change; one put and one delete per Push
 * instead of per change (ps_applybench: ~1.5 us of the apply's 8.5 per
 * change went to them).  A store written before holds one entry per change
 * under node | lcn (24 bytes): still read, and pruned alike. */
#define ABLOCK_TAG 'B'
#define ABLOCK_KEY (PS_ID_LEN + 9)
#define AENTRY_HDR 18
#define ABLOCK_SCAN 64 /* blocks of one node read for one lcn, at most (a window holds 8) */

static int answers_floor(apply_ctx_t *c, const uint8_t *node, uint64_t *ack_floor);

/* lcn among a block's entries: its digest, its packed result appended to
 * packed (may be NULL).  PS_ENOTFOUND when absent. */
static int block_find(const uint8_t *p, size_t n, uint64_t lcn, uint8_t digest[8], ps_buf_t *packed)
{
    while (n >= AENTRY_HDR) {
        size_t len = (size_t)p[16] << 8 | p[17];
        if (len > n - AENTRY_HDR)
            break; /* cut: what follows cannot be read */
        if (be64get(p) == lcn) {
            memcpy(digest, p + 8, 8);
            return packed ? ps_buf_append(packed, p + AENTRY_HDR, len) : PS_OK;
        }
        p += AENTRY_HDR + len;
        n -= AENTRY_HDR + len;
    }
    return PS_ENOTFOUND;
}

/* lcn in the stored blocks of node, at or above its floor. */
static int blocks_find(apply_ctx_t *c, const uint8_t *node, uint64_t lcn, uint8_t digest[8], ps_buf_t *packed)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v;
    MDB_cursor *cur;
    uint64_t floor;
    int mrc, rc = PS_ENOTFOUND;
    /* Below the floor the client has its answers: a block that straddles
     * the floor still holds some, which per-change entries did not. */
    if ((rc = answers_floor(c, node, &floor)))
        return rc;
    if (lcn < floor)
        return PS_ENOTFOUND;
    rc = PS_ENOTFOUND;
    answer_key(key, node, lcn);
    if ((mrc = mdb_cursor_open(c->txn, c->st->answers, &cur)))
        return db_err(mrc);
    /* Blocks sort by their last lcn: the first at or above lcn holds it,
     * unless a client sent its lcns out of order; a few more are read. */
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (int seen = 0; mrc == 0 && seen < ABLOCK_SCAN; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < PS_ID_LEN + 8 || memcmp(k.mv_data, node, PS_ID_LEN) != 0)
            break;
        if (k.mv_size != ABLOCK_KEY)
            continue;
        seen++;
        if ((rc = block_find(v.mv_data, v.mv_size, lcn, digest, packed)) != PS_ENOTFOUND)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != PS_ENOTFOUND)
        return rc;
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_ENOTFOUND;
}

/* The remembered answer to (node, lcn): PS_ENOTFOUND, or its digest and the
 * packed ChangeResult appended to packed (may be NULL): from the block this
 * transaction is filling, an entry of its own, or a stored block. */
static int answer_get(apply_ctx_t *c, const uint8_t *node, uint64_t lcn, uint8_t digest[8], ps_buf_t *packed)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v;
    int mrc, rc;
    if (ps_buf_size(&c->ablock) && memcmp(c->ablock_node, node, PS_ID_LEN) == 0 &&
        (rc = block_find(ps_buf_head(&c->ablock), ps_buf_size(&c->ablock), lcn, digest, packed)) != PS_ENOTFOUND)
        return rc;
    answer_key(key, node, lcn);
    mrc = mdb_get(c->txn, c->st->answers, &k, &v);
    if (mrc == 0 && v.mv_size >= 8) {
        memcpy(digest, v.mv_data, 8);
        return packed ? ps_buf_append(packed, (uint8_t *)v.mv_data + 8, v.mv_size - 8) : PS_OK;
    }
    if (mrc && mrc != MDB_NOTFOUND)
        return db_err(mrc);
    return blocks_find(c, node, lcn, digest, packed);
}

/* The node's acknowledgement floor, kept under lcn 0 (never a change number): the
 * first lcn of its latest Push.  Its client has every answer below it. */
static int answers_floor(apply_ctx_t *c, const uint8_t *node, uint64_t *ack_floor)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v;
    int mrc;
    answer_key(key, node, 0);
    *ack_floor = 0;
    mrc = mdb_get(c->txn, c->st->answers, &k, &v);
    if (mrc == 0 && v.mv_size == 8)
        *ack_floor = be64get(v.mv_data);
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
}

/* A Push starting at lcn `from` means the client has the answers to every
 * lower lcn (it sends its outbox in order): forget them, raise the floor. */
static int answers_prune(apply_ctx_t *c, const uint8_t *node, uint64_t from, uint64_t ack_floor)
{
    uint8_t key[PS_ID_LEN + 8], fv[8];
    MDB_val k = {sizeof(key), key}, v;
    MDB_cursor *cur;
    int mrc;
    if (from <= ack_floor)
        return PS_OK;
    answer_key(key, node, 1);
    if ((mrc = mdb_cursor_open(c->txn, c->st->answers, &cur)))
        return db_err(mrc);
    /* Entries of their own (24-byte keys) and blocks (25: under their last
     * lcn, so a block goes once all of it lies below from). */
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < PS_ID_LEN + 8 || k.mv_size > ABLOCK_KEY || memcmp(k.mv_data, node, PS_ID_LEN) != 0 ||
            be64get((uint8_t *)k.mv_data + PS_ID_LEN) >= from)
            break;
        if ((mrc = mdb_cursor_del(cur, 0)))
            break;
    }
    mdb_cursor_close(cur);
    if (mrc && mrc != MDB_NOTFOUND)
        return db_err(mrc);
    answer_key(key, node, 0);
    be64put(fv, from);
    k.mv_data = key;
    k.mv_size = sizeof(key);
    v.mv_data = fv;
    v.mv_size = sizeof(fv);
    return (mrc = mdb_put(c->txn, c->st->answers, &k, &v, 0)) ? db_err(mrc) : PS_OK;
}

/* Is a refusal remembered for (node, lcn)? */
static int reject_known(apply_ctx_t *c, const uint8_t *node, uint64_t lcn, int *known)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v;
    int mrc;
    answer_key(key, node, lcn);
    mrc = mdb_get(c->txn, c->st->rejects, &k, &v);
    *known = mrc == 0;
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
}

static void copied_refusal(ps_push_job_t *job, uint64_t lcn)
{
    job->refused = PS_ESTALE;
    snprintf(job->why, sizeof(job->why),
             "this cache's node id already sent a different change numbered %llu: the cache is a copy of "
             "another (or an old backup). Nothing of this push was applied. Save its unsent changes with "
             "'popsync export --pending', make a new cache with 'popsync init' and import them there",
             (unsigned long long)lcn);
}

/* Before any change of a job is applied: the node id must be the pusher's
 * (bound now if it is new), and a change under an lcn the server has
 * already answered must be that same change.  A refusal leaves the job
 * unapplied with job->refused set. */
int ps_apply_admit(ps_apply_txn_t *c, ps_push_job_t *job)
{
    Popsync__NodeStatus *b = NULL;
    node_mark_t *mark;
    size_t n = job->push ? job->push->n_changes : 0;
    uint64_t from = UINT64_MAX, ack_floor;
    int rc;

    if ((rc = ps__bind_get(c->txn, c->st, job->node, &b)))
        return rc;
    if (b && !ps__same_identity(b, &job->peer)) {
        job->refused = PS_EACCES;
        ps__bind_refusal(job->why, sizeof(job->why), job->node, b, &job->peer);
        ps_msg_free(&b->base);
        return PS_OK;
    }
    if (b)
        ps_msg_free(&b->base);
    else if ((rc = ps__bind_put(c->txn, c->st, job->node, &job->peer)))
        return rc;
    if ((rc = mark_get(c, job->node, &mark)) || (rc = answers_floor(c, job->node, &ack_floor)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        const Popsync__Change *ch = job->push->changes[i];
        uint8_t have[8], mine[8];
        int known;
        if (ch->lcn < from)
            from = ch->lcn;
        if (ch->lcn > mark->hw)
            continue;
        rc = answer_get(c, job->node, ch->lcn, have, NULL);
        if (rc == PS_ENOTFOUND) {
            /* Below the floor the client already had its answer: only a
             * refusal (remembered for ever) may be asked again. */
            if (ch->lcn >= ack_floor)
                continue;
            if ((rc = reject_known(c, job->node, ch->lcn, &known)))
                return rc;
            if (!known) {
                copied_refusal(job, ch->lcn);
                return PS_OK;
            }
            continue;
        }
        if (rc || (rc = change_digest(c, ch, mine)))
            return rc;
        if (memcmp(have, mine, 8) != 0) {
            copied_refusal(job, ch->lcn);
            return PS_OK;
        }
    }
    /* A pipelining client may not hold the answers of its earlier pushes
     * yet: it says from where it lacks them (Push.ack_floor). */
    if (from != UINT64_MAX && job->push->ack_floor && job->push->ack_floor < from)
        from = job->push->ack_floor;
    return from != UINT64_MAX ? answers_prune(c, job->node, from, ack_floor) : PS_OK;
}

/* A resend of a change we already processed: answer as we did then. */
static int replay_result(apply_ctx_t *c, const uint8_t *node, uint64_t lcn, ps_buf_t *packed_reject)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v;
    int mrc;
    memcpy(key, node, PS_ID_LEN);
    be64put(key + PS_ID_LEN, lcn);
    mrc = mdb_get(c->txn, c->st->rejects, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return PS_ENOTFOUND;
    if (mrc)
        return db_err(mrc);
    return ps_buf_append(packed_reject, v.mv_data, v.mv_size);
}

/* What a reference check may see: the store as of this transaction (which
 * includes changes applied earlier in it) and the rest of the same Push. */
typedef struct ref_ctx {
    apply_ctx_t *c;
    ps_push_job_t *job;
    const ps_peer_t *peer;
} ref_ctx_t;

static int ref_exists(void *arg, const uint8_t id[PS_ID_LEN], int kind)
{
    ref_ctx_t *rc = arg;
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    if (mdb_get(rc->c->txn, rc->c->st->records, &k, &v) == 0 && v.mv_size >= REC_HDR) {
        const uint8_t *h = v.mv_data;
        if (!(h[9] & REC_DELETED) && (kind == 0 || h[8] == kind) && may_read_hdr(rc->c->st, rc->peer, h))
            return 1;
    }
    for (size_t i = 0; rc->job->push && i < rc->job->push->n_changes; i++) {
        const Popsync__Record *r = rc->job->push->changes[i]->record;
        if (r && r->id.len == PS_ID_LEN && memcmp(r->id.data, id, PS_ID_LEN) == 0 && !r->deleted &&
            (kind == 0 || (int)r->kind == kind))
            return 1;
    }
    return 0;
}

/* Packs msg into c->scratch after hdr_len bytes of room; *p points at the packed bytes. */
static int pack_scratch(apply_ctx_t *c, const ProtobufCMessage *msg, size_t hdr_len, uint8_t **p, size_t *n)
{
    int rc;
    *n = protobuf_c_message_get_packed_size(msg);
    ps_buf_reset(&c->scratch);
    if ((rc = ps_buf_reserve(&c->scratch, hdr_len + *n)))
        return rc;
    *p = ps_buf_tail(&c->scratch);
    protobuf_c_message_pack(msg, *p + hdr_len);
    return PS_OK;
}

/* Makes nv (which carries its final rev) the record's current version:
 * records and the feed (the version it replaces moves to versions).  When
 * the record's audience shrinks, the units that lose it get an exit entry
 * first, so their readers drop it. */
static int put_version(apply_ctx_t *c, const Popsync__Record *nv, const uint8_t *old_hdr)
{
    MDB_val k = {PS_ID_LEN, nv->id.data}, v;
    uint8_t *p;
    size_t n;
    int rc, mrc;
    const char *other = other_place(nv);

    if (old_hdr) {
        char units[2][13];
        if ((rc = ps__feed_drop(c->txn, c->st, old_hdr)))
            return rc;
        hdr_unit(old_hdr, HDR_UNIT, units[0]);
        hdr_unit(old_hdr, HDR_OTHER, units[1]);
        for (int i = 0; i < 2; i++) {
            if (!units[i][0] || strcmp(units[i], nv->orgunit) == 0 || strcmp(units[i], other) == 0)
                continue;
            if ((rc = ps__feed_put_exit(c->txn, c->st, ++c->seq, nv->id.data, units[i])))
                return rc;
        }
    }
    /* Every version is kept (it may be the common base of a later merge):
     * the one this replaces moves to `versions`; the new one lives only in
     * `records` until it is replaced in turn (store_versions.h). */
    if (old_hdr && (rc = ps__version_keep(c->txn, c->st, nv->id.data, be64get(old_hdr + HDR_GEN),
                                          ps_buf_head(&c->oldrec), ps_buf_size(&c->oldrec))))
        return rc;
    if ((rc = pack_scratch(c, &nv->base, REC_HDR, &p, &n)))
        return rc;
    be64put(p, ++c->seq);
    p[8] = (uint8_t)nv->kind;
    p[9] = nv->deleted ? REC_DELETED : 0;
    memcpy(p + HDR_UNIT, nv->orgunit, 12);
    memset(p + HDR_OTHER, 0, 12);
    memcpy(p + HDR_OTHER, other, strlen(other));
    be64put(p + HDR_GEN, nv->rev->gen);
    be64put(p + HDR_HLC, nv->rev->hlc);
    v.mv_size = REC_HDR + n;
    v.mv_data = p;
    if ((mrc = mdb_put(c->txn, c->st->records, &k, &v, 0)))
        return db_err(mrc);
    if ((rc = ps__feed_put_record(c->txn, c->st, p, nv->id.data, n)))
        return rc;
    return PS_OK;
}

/* Keeps a conflict: what the record became and the version that lost. */
static int put_conflict(apply_ctx_t *c, const Popsync__Record *kept, const Popsync__Record *lost, const uint8_t *lost_node,
                        const uint8_t *kept_node, const char *const *fields, size_t nfields, const char *reason,
                        uint8_t cid[PS_ID_LEN])
{
    Popsync__Conflict cf = POPSYNC__CONFLICT__INIT;
    MDB_val k = {PS_ID_LEN, cid}, v;
    uint8_t *p;
    size_t n;
    int rc, mrc;

    if ((rc = ps_uuid7(cid)))
        return rc;
    cf.id.data = cid;
    cf.id.len = PS_ID_LEN;
    cf.record_id = kept->id;
    cf.kind = kept->kind;
    cf.orgunit = kept->orgunit;
    cf.n_fields = nfields;
    cf.fields = (char **)fields;
    cf.kept = (Popsync__Record *)kept;
    cf.lost = (Popsync__Record *)lost;
    cf.created_ms = c->now_ms;
    cf.reason = (char *)reason;
    cf.lost_node.data = (uint8_t *)lost_node;
    cf.lost_node.len = PS_ID_LEN;
    if (kept_node) {
        cf.kept_node.data = (uint8_t *)kept_node;
        cf.kept_node.len = PS_ID_LEN;
    }
    if ((rc = pack_scratch(c, &cf.base, 0, &p, &n)))
        return rc;
    v.mv_size = n;
    v.mv_data = p;
    if ((mrc = mdb_put(c->txn, c->st->conflicts, &k, &v, 0)))
        return db_err(mrc);
    /* Hello and the metrics read the open conflicts from tallies. */
    if ((rc = ps__conflicts_tally(c->txn, c->st, cid, &cf, +1)))
        return rc;
    c->conflicts++;
    return PS_OK;
}

/* A change that names a conflict it settles marks it resolved. */
static int resolve_conflict(apply_ctx_t *c, const ProtobufCBinaryData *cid, const ProtobufCBinaryData *record_id)
{
    MDB_val k = {PS_ID_LEN, cid->data}, v;
    Popsync__Conflict *cf = NULL;
    uint8_t *p;
    size_t n;
    int rc, mrc;

    if (cid->len != PS_ID_LEN)
        return PS_OK;
    mrc = mdb_get(c->txn, c->st->conflicts, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return PS_OK;
    if (mrc)
        return db_err(mrc);
    if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cf))
        return PS_OK;
    rc = PS_OK;
    if (!cf->resolved && cf->record_id.len == PS_ID_LEN && record_id->len == PS_ID_LEN &&
        memcmp(cf->record_id.data, record_id->data, PS_ID_LEN) == 0) {
        rc = ps__conflicts_tally(c->txn, c->st, cid->data, cf, -1);
        cf->resolved = 1;
        cf->resolved_ms = c->now_ms;
        if (rc == PS_OK)
            rc = pack_scratch(c, &cf->base, 0, &p, &n);
        if (rc == PS_OK) {
            v.mv_size = n;
            v.mv_data = p;
            if ((mrc = mdb_put(c->txn, c->st->conflicts, &k, &v, 0)))
                rc = db_err(mrc);
        }
    }
    ps_msg_free(&cf->base);
    return rc;
}

static int load_version(apply_ctx_t *c, const uint8_t *id, uint64_t gen, Popsync__Record **out)
{
    MDB_val v;
    int rc;
    *out = NULL;
    if ((rc = ps__version_get(c->txn, c->st, id, gen, &v)) || !v.mv_data)
        return rc;
    return ps_msg_unpack_desc(&popsync__record__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)out);
}

/* Answers about records outside the sender's scope must not depend on
 * whether they exist (docs/security.md §8.3).  A stored record the sender
 * may not read, and whose version the change is based on it could not read
 * either (it never held the record), is judged as if the server did not
 * have it.  A sender that did hold the base version (the record left its
 * scope since) knows the record exists; its edit is kept as a conflict.
 * Returns 1 to hide, 0 not to, or a negative error. */
static int hidden_from(apply_ctx_t *c, const ps_peer_t *peer, const Popsync__Record *cur, uint64_t base_gen)
{
    Popsync__Record *b = NULL;
    uint64_t cur_gen = cur->rev ? cur->rev->gen : 0;
    int rc, known;

    if (ps_policy_may_read(c->st->opts.units, peer, cur->orgunit, other_place(cur)))
        return 0;
    if (base_gen == 0 || base_gen > cur_gen)
        return 1;
    if ((rc = load_version(c, cur->id.data, base_gen, &b)))
        return rc;
    known = b && ps_policy_may_read(c->st->opts.units, peer, b->orgunit, other_place(b));
    if (b)
        ps_msg_free(&b->base);
    return !known;
}

/* Were all versions after base_gen up to cur_gen made by this node?
 * Returns 1 yes, 0 no, or a negative error.  A cache that edits one record
 * twice before it hears back bases both edits on the same version; the
 * second already holds the first, so it must not clash with it. */
static int own_versions_since(apply_ctx_t *c, const uint8_t *id, uint64_t base_gen, uint64_t cur_gen,
                              const uint8_t *node)
{
    if (cur_gen - base_gen > 32)
        return 0;
    for (uint64_t g = base_gen + 1; g <= cur_gen; g++) {
        Popsync__Record *v = NULL;
        int rc = load_version(c, id, g, &v), mine;
        if (rc)
            return rc;
        if (!v)
            return 0;
        mine = v->rev && v->rev->node.len == PS_ID_LEN && memcmp(v->rev->node.data, node, PS_ID_LEN) == 0;
        ps_msg_free(&v->base);
        if (!mine)
            return 0;
    }
    return 1;
}

/* Appends an audit entry for an accepted change to the transaction's
 * batch (audit_chain.h: chained and its head written at the commit).
 * It is written in the change's own transaction: no change without its
 * entry, no entry without its change. */
static int audit_append(apply_ctx_t *c, const ps_push_job_t *job, const Popsync__Record *nv, const char *action)
{
    Popsync__AuditEntry e = POPSYNC__AUDIT_ENTRY__INIT;
    int rc;
    e.time_ms = c->now_ms;
    e.cert_name = (char *)job->peer.name;
    e.cert_role = (char *)job->peer.role_name;
    e.cert_orgunit = (char *)job->peer.orgunit;
    e.cert_serial = (char *)job->peer.serial_hex;
    e.node.data = (uint8_t *)job->node;
    e.node.len = PS_ID_LEN;
    e.record_id = nv->id;
    e.kind = nv->kind;
    e.gen = nv->rev->gen;
    e.hlc = nv->rev->hlc;
    e.seq = c->seq;
    e.action = (char *)action;
    e.orgunit = nv->orgunit;
    if ((rc = ps_audit_append(&c->audit, c->txn, c->st, &e, &c->scratch)))
        return rc;
    /* A record's history finds the entry of each version (store_history.c). */
    if (nv->id.len == PS_ID_LEN && nv->rev && (rc = ps__history_file(c->txn, c->st, nv->id.data, e.gen, e.n)))
        return rc;
    return PS_OK;
}

/* The node that made a stored version, or NULL when it does not say. */
static const uint8_t *rev_node(const Popsync__Record *r)
{
    return r && r->rev && r->rev->node.len == PS_ID_LEN ? r->rev->node.data : NULL;
}

/* Compares revisions by (hlc, node): the later edit wins a field both
 * sides changed; the node breaks ties so every server decides alike. */
static int rev_later(uint64_t hlc_a, const uint8_t *node_a, const Popsync__Rev *b)
{
    int cmp;
    if (!b)
        return 1;
    if (hlc_a != b->hlc)
        return hlc_a > b->hlc;
    cmp = memcmp(node_a, b->node.data ? b->node.data : (const uint8_t *)"", b->node.len < PS_ID_LEN ? b->node.len : PS_ID_LEN);
    return cmp > 0;
}

/* When the change was made, on our clock (docs/sync.md §2): the stamp the
 * cache gave the edit when the clerk made it, moved back (or forward) by the
 * cache's clock error measured at this Push when that is beyond the
 * tolerance, and never later than our clock at acceptance (+ max_future,
 * default 0): an edit cannot have been made after we received it.  So a
 * wrong clock neither wins races it should lose nor drags our clock, and
 * through it other caches, ahead.  A stamp later than the cache's own clock
 * at the Push came from a clock it heard (ours, in a revision or Welcome),
 * not from its wall clock, and is in our time already. */
static uint64_t edit_time(apply_ctx_t *c, const ps_push_job_t *job, uint64_t hlc)
{
    uint64_t limit = (c->now_ms + c->st->opts.max_future_ms) << 16;
    if (hlc && ps_push_clock_wrong(job) && PS_HLC_MS(hlc) <= job->clock_ms) {
        int64_t ms = (int64_t)PS_HLC_MS(hlc) - job->clock_skew_ms;
        hlc = ms > 0 ? (uint64_t)ms << 16 | (hlc & 0xffff) : 0;
    }
    if (hlc > limit || hlc == 0)
        return ps_hlc_now(&c->st->hlc);
    ps_hlc_observe(&c->st->hlc, hlc);
    return hlc;
}

/* ---- results ------------------------------------------------------------ */

void ps_change_result_msg(const ps_change_result_t *r, Popsync__ChangeResult *m, Popsync__Rev *rev,
                          Popsync__FieldError *fe, Popsync__FieldError **fep)
{
    popsync__change_result__init(m);
    m->lcn = r->lcn;
    m->status = (Popsync__ChangeStatus)r->status;
    m->seq = r->seq;
    if (r->has_id) {
        m->id.data = (uint8_t *)r->id;
        m->id.len = PS_ID_LEN;
    }
    if (r->has_rev) {
        popsync__rev__init(rev);
        rev->gen = r->gen;
        rev->hlc = r->hlc;
        if (r->has_rev_node) {
            rev->node.data = (uint8_t *)r->rev_node;
            rev->node.len = PS_ID_LEN;
        }
        m->rev = rev;
    }
    if (r->has_conflict) {
        m->conflict_id.data = (uint8_t *)r->conflict_id;
        m->conflict_id.len = PS_ID_LEN;
    }
    for (size_t i = 0; i < r->nerrors && i < PS_CHANGE_ERRORS_MAX; i++) {
        popsync__field_error__init(&fe[i]);
        fe[i].field = (char *)r->errors[i].field;
        fe[i].reason = (char *)r->errors[i].reason;
        fep[i] = &fe[i];
    }
    m->n_errors = r->nerrors < PS_CHANGE_ERRORS_MAX ? r->nerrors : PS_CHANGE_ERRORS_MAX;
    m->errors = m->n_errors ? fep : NULL;
}

void ps_change_result_clear(ps_change_result_t *r)
{
    free(r->errors);
    r->errors = NULL;
    r->nerrors = 0;
}

/* Room for PS_CHANGE_ERRORS_MAX field errors in r, on first use. */
static int result_errors(ps_change_result_t *r)
{
    if (!r->errors && !(r->errors = calloc(PS_CHANGE_ERRORS_MAX, sizeof(*r->errors))))
        return PS_ENOMEM;
    return PS_OK;
}

/* A remembered answer (as stored) back into a result. */
static void result_from_msg(const Popsync__ChangeResult *m, ps_change_result_t *r)
{
    ps_change_result_clear(r);
    memset(r, 0, sizeof(*r));
    r->lcn = m->lcn;
    r->status = (ps_change_status_t)m->status;
    r->seq = m->seq;
    if ((r->has_id = m->id.len == PS_ID_LEN))
        memcpy(r->id, m->id.data, PS_ID_LEN);
    if ((r->has_rev = m->rev != NULL)) {
        r->gen = m->rev->gen;
        r->hlc = m->rev->hlc;
        if ((r->has_rev_node = m->rev->node.len == PS_ID_LEN))
            memcpy(r->rev_node, m->rev->node.data, PS_ID_LEN);
    }
    if ((r->has_conflict = m->conflict_id.len == PS_ID_LEN))
        memcpy(r->conflict_id, m->conflict_id.data, PS_ID_LEN);
    /* Without memory the answer goes without its field errors (the status
     * and revision are what a resend needs). */
    if (m->n_errors && result_errors(r) != PS_OK)
        return;
    for (size_t i = 0; i < m->n_errors && r->nerrors < PS_CHANGE_ERRORS_MAX; i++, r->nerrors++) {
        snprintf(r->errors[i].field, sizeof(r->errors[i].field), "%s", m->errors[i]->field ? m->errors[i]->field : "");
        snprintf(r->errors[i].reason, sizeof(r->errors[i].reason), "%s",
                 m->errors[i]->reason ? m->errors[i]->reason : "");
    }
}

/* Packs a result into c->scratch after hdr_len bytes of room. */
static int pack_result(apply_ctx_t *c, const ps_change_result_t *r, size_t hdr_len, uint8_t **p, size_t *n)
{
    Popsync__ChangeResult m;
    Popsync__Rev rev;
    Popsync__FieldError fe[PS_CHANGE_ERRORS_MAX], *fep[PS_CHANGE_ERRORS_MAX];
    ps_change_result_msg(r, &m, &rev, fe, fep);
    return pack_scratch(c, &m.base, hdr_len, p, n);
}

/* Writes the block of answers this transaction is filling, if any. */
static int answers_flush(apply_ctx_t *c)
{
    uint8_t key[ABLOCK_KEY];
    MDB_val k = {sizeof(key), key}, v = {ps_buf_size(&c->ablock), ps_buf_head(&c->ablock)};
    int mrc;
    if (!v.mv_size)
        return PS_OK;
    answer_key(key, c->ablock_node, c->ablock_last);
    key[PS_ID_LEN + 8] = ABLOCK_TAG;
    mrc = mdb_put(c->txn, c->st->answers, &k, &v, 0);
    ps_buf_reset(&c->ablock);
    c->ablock_last = 0;
    return mrc ? db_err(mrc) : PS_OK;
}

/* Remembers an ACCEPTED answer so that a resend (after a lost reply) is told
 * the seq and rev it got: into the block of node's Push, written at the
 * Push's end (answers_flush).  A result too long for a block entry (never
 * an accepted one in practice) gets an entry of its own. */
static int answer_put(apply_ctx_t *c, const uint8_t *node, const Popsync__Change *ch, const ps_change_result_t *res)
{
    uint8_t key[PS_ID_LEN + 8], *p, *e;
    MDB_val k = {sizeof(key), key}, v;
    size_t n;
    int rc, mrc;
    if ((rc = pack_result(c, res, 8, &p, &n)) || (rc = change_digest(c, ch, p)))
        return rc;
    if (n <= 0xffff) {
        if (ps_buf_size(&c->ablock) && memcmp(c->ablock_node, node, PS_ID_LEN) != 0 && (rc = answers_flush(c)))
            return rc;
        if ((rc = ps_buf_reserve(&c->ablock, AENTRY_HDR + n)))
            return rc;
        e = ps_buf_tail(&c->ablock);
        be64put(e, ch->lcn);
        memcpy(e + 8, p, 8);
        e[16] = (uint8_t)(n >> 8);
        e[17] = (uint8_t)n;
        memcpy(e + AENTRY_HDR, p + 8, n);
        ps_buf_commit(&c->ablock, AENTRY_HDR + n);
        memcpy(c->ablock_node, node, PS_ID_LEN);
        if (ch->lcn > c->ablock_last)
            c->ablock_last = ch->lcn;
        return PS_OK;
    }
    answer_key(key, node, ch->lcn);
    v.mv_size = 8 + n;
    v.mv_data = p;
    if ((mrc = mdb_put(c->txn, c->st->answers, &k, &v, 0)))
        return db_err(mrc);
    return PS_OK;
}

/* Remembers a refusal (REJECTED or CONFLICT) for ever: a resend gets it again. */
static int store_reject(apply_ctx_t *c, const uint8_t *node, uint64_t lcn, const ps_change_result_t *res)
{
    uint8_t key[PS_ID_LEN + 8], *p;
    MDB_val k = {sizeof(key), key}, v;
    size_t n;
    int rc, mrc;
    if ((rc = pack_result(c, res, 0, &p, &n)))
        return rc;
    answer_key(key, node, lcn);
    v.mv_size = n;
    v.mv_data = p;
    if ((mrc = mdb_put(c->txn, c->st->rejects, &k, &v, 0)))
        return db_err(mrc);
    return PS_OK;
}

/* The remembered answer to a resend: accepted before (answers: DUPLICATE
 * with the seq and rev it got then), refused before (rejects: the same
 * answer again), or neither (a bare DUPLICATE). */
static int replay(apply_ctx_t *c, ps_apply_change_t *x)
{
    const uint8_t *node = x->job->node;
    uint64_t lcn = x->ch->lcn;
    uint8_t digest[8];
    ps_buf_t packed;
    ProtobufCMessage *m = NULL;
    int rc, accepted_before;

    ps_buf_init(&packed);
    rc = answer_get(c, node, lcn, digest, &packed);
    accepted_before = rc == PS_OK;
    if (rc == PS_ENOTFOUND)
        rc = replay_result(c, node, lcn, &packed);
    if (rc == PS_OK && ps_msg_unpack_desc(&popsync__change_result__descriptor, ps_buf_head(&packed),
                                          ps_buf_size(&packed), &m) == PS_OK) {
        result_from_msg((Popsync__ChangeResult *)m, x->res);
        if (accepted_before)
            x->res->status = PS_CHANGE_DUPLICATE;
        ps_msg_free(m);
    }
    ps_buf_free(&packed);
    return rc == PS_ENOTFOUND ? PS_OK : rc;
}

/* Ends a change refused by a stage: its field errors into the result. */
static int refuse(ps_apply_change_t *x)
{
    ps_change_result_t *r = x->res;
    r->status = PS_CHANGE_REJECTED;
    if (x->verrs.n && result_errors(r) != PS_OK)
        return PS_ENOMEM;
    r->nerrors = x->verrs.n < PS_CHANGE_ERRORS_MAX ? x->verrs.n : PS_CHANGE_ERRORS_MAX;
    for (size_t i = 0; i < r->nerrors; i++) {
        snprintf(r->errors[i].field, sizeof(r->errors[i].field), "%s", x->verrs.e[i].field);
        snprintf(r->errors[i].reason, sizeof(r->errors[i].reason), "%s", x->verrs.e[i].reason);
    }
    return PS_APPLY_SETTLED;
}

/* Ends a change kept whole as a conflict (conflict_id already set). */
static int keep_conflict(apply_ctx_t *c, ps_apply_change_t *x, const char *const *fields, size_t nfields,
                         const char *reason)
{
    Popsync__Record lost = *x->ch->record;
    int rc;
    lost.rev = &x->mine_rev;
    if ((rc = put_conflict(c, x->cur, &lost, x->job->node, rev_node(x->cur), fields, nfields, reason,
                           x->res->conflict_id)))
        return rc;
    x->res->status = PS_CHANGE_CONFLICT;
    x->res->has_conflict = 1;
    return PS_APPLY_SETTLED;
}

/* ---- the stages ------------------------------------------------------------- */

void ps_apply_change_init(ps_apply_change_t *x, ps_push_job_t *job, const Popsync__Change *ch,
                          ps_change_result_t *res)
{
    memset(x, 0, sizeof(*x));
    memset(res, 0, sizeof(*res));
    x->job = job;
    x->ch = ch;
    x->res = res;
    res->lcn = ch->lcn;
    if (ch->record && ch->record->id.len == PS_ID_LEN) {
        res->has_id = 1;
        memcpy(res->id, ch->record->id.data, PS_ID_LEN);
    }
    x->base_gen = ch->base_rev ? ch->base_rev->gen : 0;
    popsync__rev__init(&x->mine_rev);
    popsync__rev__init(&x->rev);
}

void ps_apply_change_free(ps_apply_change_t *x)
{
    if (x->have_merge)
        ps_merge_free(&x->m);
    if (x->base)
        ps_msg_free(&x->base->base);
    if (x->cur)
        ps_msg_free(&x->cur->base);
    x->have_merge = 0;
    x->base = x->cur = NULL;
}

int ps_apply_dedupe(ps_apply_txn_t *c, ps_apply_change_t *x)
{
    node_mark_t *mark;
    int rc;
    if (x->ch->lcn == 0) {
        /* 0 is not a change number: taken for a resend, the change would be
         * answered DUPLICATE and lost. */
        ps_verrs_add(&x->verrs, "lcn", "must be 1 or more (number changes from 1)");
        return refuse(x);
    }
    if ((rc = mark_get(c, x->job->node, &mark)))
        return rc;
    if (x->ch->lcn <= mark->hw) {
        x->duplicate = 1;
        x->res->status = PS_CHANGE_DUPLICATE;
        return (rc = replay(c, x)) ? rc : PS_APPLY_SETTLED;
    }
    if (!x->ch->record) {
        ps_verrs_add(&x->verrs, "record", "missing");
        return refuse(x);
    }
    return PS_APPLY_NEXT;
}

/* The stored version of the change's record into x->cur (and its header),
 * unless the sender may not know of it (x->hidden). */
static int load_current(apply_ctx_t *c, ps_apply_change_t *x)
{
    const Popsync__Record *r = x->ch->record;
    MDB_val k = {PS_ID_LEN, r->id.data}, v;
    int mrc, rc;
    if (r->id.len != PS_ID_LEN)
        return PS_OK;
    mrc = mdb_get(c->txn, c->st->records, &k, &v);
    if (mrc == MDB_NOTFOUND || (mrc == 0 && v.mv_size < REC_HDR))
        return PS_OK;
    if (mrc)
        return db_err(mrc);
    memcpy(x->old_hdr, v.mv_data, REC_HDR);
    /* Kept: if the change is stored, these bytes become the superseded
     * version (put_version), and LMDB's pointer does not outlive the
     * writes in between. */
    ps_buf_reset(&c->oldrec);
    if ((rc = ps_buf_append(&c->oldrec, (const uint8_t *)v.mv_data + REC_HDR, v.mv_size - REC_HDR)))
        return rc;
    if ((rc = ps_msg_unpack_desc(&popsync__record__descriptor, ps_buf_head(&c->oldrec), ps_buf_size(&c->oldrec),
                                 (ProtobufCMessage **)&x->cur)))
        return rc == PS_ENOMEM ? PS_ENOMEM : PS_EDB;
    if ((x->hidden = hidden_from(c, &x->job->peer, x->cur, x->base_gen)) != 0) {
        ps_msg_free(&x->cur->base);
        x->cur = NULL;
        if (x->hidden < 0)
            return x->hidden;
    }
    return PS_OK;
}

/* The other place of a migrant's registration answers it: it may set the
 * submission and feedback dates, nothing else. */
static void other_place_check(ps_apply_change_t *x, const Popsync__Record *was)
{
    const Popsync__Record *r = x->ch->record;
    const char *changed[PS_MERGE_MAX_FIELDS];
    size_t nchanged = ps_merge_diff(was, r, changed, PS_MERGE_MAX_FIELDS);
    for (size_t i = 0; i < nchanged; i++)
        if (!ps_policy_other_place_may_set(changed[i]))
            ps_verrs_add(&x->verrs, changed[i], "the other place may set only submitted_date and feedback_date");
    /* A tombstone changes no field, so it needs its own check. */
    if (r->deleted != x->cur->deleted && !ps_policy_other_place_may_set("deleted"))
        ps_verrs_add(&x->verrs, "deleted", "the other place may not delete or restore the record");
}

int ps_apply_authorise(ps_apply_txn_t *c, ps_apply_change_t *x)
{
    const Popsync__Record *r = x->ch->record;
    uint64_t cur_gen;
    ps_write_t write;
    int rc;

    if ((rc = load_current(c, x)))
        return rc;
    if (!x->cur) {
        /* A new record must be created inside the sender's scope: the
         * validator asks the policy (ps_validate_ctx_t.peer) once the unit
         * is known to be a valid code. */
        return PS_APPLY_NEXT;
    }
    cur_gen = x->cur->rev ? x->cur->rev->gen : 0;
    if (x->base_gen < cur_gen && (rc = load_version(c, r->id.data, x->base_gen, &x->base)))
        return rc;
    write = ps_policy_may_write(c->st->opts.units, &x->job->peer, x->cur->orgunit, other_place(x->cur), r->orgunit);
    if (write == PS_WRITE_OWNER)
        return PS_APPLY_NEXT;
    if (write == PS_WRITE_OTHER_PLACE) {
        other_place_check(x, x->base ? x->base : x->cur);
        return x->verrs.n ? refuse(x) : PS_APPLY_NEXT;
    }
    /* The record left the sender's scope (moved to another unit) while
     * this edit waited: the edit is kept (ps_apply_merge), nothing applied. */
    x->verdict = PS_APPLY_MOVED_AWAY;
    return PS_APPLY_NEXT;
}

int ps_apply_validate(ps_apply_txn_t *c, ps_apply_change_t *x)
{
    const Popsync__Record *r = x->ch->record;
    uint64_t cur_gen = x->cur && x->cur->rev ? x->cur->rev->gen : 0;
    ps_validate_ctx_t vctx;
    ref_ctx_t rctx = {c, x->job, &x->job->peer};

    memset(&vctx, 0, sizeof(vctx));
    vctx.units = c->st->opts.units;
    vctx.peer = &x->job->peer;
    vctx.current = x->cur;
    vctx.today = c->today; /* the district's calendar */
    vctx.ref_exists = ref_exists;
    vctx.ref_arg = &rctx;
    vctx.refuse_synthetic = !c->st->opts.allow_synthetic;
    ps_validate_record(r, &vctx, &x->verrs);
    if (x->cur && x->cur->kind != r->kind)
        ps_verrs_add(&x->verrs, "kind", "cannot change the kind of an existing record");
    if (x->verrs.n)
        return refuse(x);
    if (x->cur && x->base_gen > cur_gen)
        ps_verrs_add(&x->verrs, "rev", "based on a revision the server does not have");
    else if (!x->cur && x->base_gen != 0)
        ps_verrs_add(&x->verrs, "rev", "based on a revision of a record the server does not have");
    else if (!x->cur && x->hidden)
        /* A new record whose id is taken by one the sender may not see: the
         * only answer that differs from an unknown id, and only to a sender
         * that already holds a random 128-bit id it was never sent. */
        ps_verrs_add(&x->verrs, "id", "is already used by another record; make a new record");
    return x->verrs.n ? refuse(x) : PS_APPLY_NEXT;
}

int ps_apply_stamp(ps_apply_txn_t *c, ps_apply_change_t *x)
{
    const Popsync__Record *r = x->ch->record;
    x->hlc = edit_time(c, x->job, r->rev ? r->rev->hlc : 0);
    x->mine_rev.hlc = x->hlc;
    x->mine_rev.node.data = x->job->node;
    x->mine_rev.node.len = PS_ID_LEN;
    x->mine_rev.gen = x->base_gen;
    return PS_APPLY_NEXT;
}

/* The answer to a change that leaves the record as it is (another cache
 * made the same edit first, or an edit back to the stored value): ACCEPTED
 * with the stored revision and its feed sequence, and nothing written: no
 * new revision, no feed or audit entry (docs/sync.md §4). */
static int unchanged_answer(ps_apply_change_t *x)
{
    ps_change_result_t *res = x->res;
    const Popsync__Rev *cr = x->cur->rev;
    res->status = PS_CHANGE_ACCEPTED;
    res->seq = be64get(x->old_hdr);
    res->has_rev = 1;
    if (cr) {
        res->gen = cr->gen;
        res->hlc = cr->hlc;
        if ((res->has_rev_node = cr->node.len == PS_ID_LEN))
            memcpy(res->rev_node, cr->node.data, PS_ID_LEN);
    }
    return PS_APPLY_SETTLED;
}

/* An edit of a stored record: fast-forward, field merge, or a conflict. */
static int merge_existing(apply_ctx_t *c, ps_apply_change_t *x)
{
    const Popsync__Record *r = x->ch->record;
    uint64_t cur_gen = x->cur->rev ? x->cur->rev->gen : 0;
    int rc = 0;

    if (x->verdict == PS_APPLY_MOVED_AWAY) {
        static const char *const whole[] = {"*"};
        return keep_conflict(c, x, whole, 1, "the record moved out of the sender's scope before this change arrived");
    }
    if (x->base_gen == cur_gen || (rc = own_versions_since(c, r->id.data, x->base_gen, cur_gen, x->job->node)) == 1) {
        /* Fast-forward: the change was made on the current version, or
         * every version since its base came from the same cache (its
         * earlier edits, which this one already contains). */
        x->nv = *r;
    } else if (rc < 0) {
        return rc;
    } else {
        if ((rc = ps_merge(x->base, x->cur, r, rev_later(x->hlc, x->job->node, x->cur->rev), &x->m)))
            return rc;
        x->have_merge = 1;
        if (x->m.outcome == PS_MERGE_KEEP_WHOLE)
            return keep_conflict(c, x, x->m.fields, x->m.nfields, x->m.reason);
        x->nv = x->m.merged;
    }
    if (!x->ch->resolves.len && !(x->have_merge && x->m.nfields > 0) && ps_record_same_content(x->cur, &x->nv))
        return unchanged_answer(x);
    x->nv.created_ms = x->cur->created_ms;
    x->rev.gen = cur_gen + 1;
    return PS_APPLY_NEXT;
}

int ps_apply_merge(ps_apply_txn_t *c, ps_apply_change_t *x)
{
    int rc;
    if (x->cur) {
        if ((rc = merge_existing(c, x)) != PS_APPLY_NEXT)
            return rc;
    } else {
        x->nv = *x->ch->record;
        /* A record is created, and counted (persons_new), when the district
         * receives it: never by the sending device's clock, which may be
         * wrong, and never in a month already closed. */
        x->nv.created_ms = (int64_t)c->now_ms;
        x->rev.gen = 1;
    }
    /* A version's HLC never goes back: after a merge in which the incoming
     * edit lost, the record still carries the later edit's time, so a third
     * edit is compared with the value that actually stands. */
    x->rev.hlc = x->cur && x->cur->rev && x->cur->rev->hlc > x->hlc ? x->cur->rev->hlc : x->hlc;
    x->rev.node.data = x->job->node;
    x->rev.node.len = PS_ID_LEN;
    x->nv.rev = &x->rev;
    x->nv.changed_by.data = x->job->node;
    x->nv.changed_by.len = PS_ID_LEN;
    x->nv.updated_ms = x->ch->record->updated_ms;
    return PS_APPLY_NEXT;
}

/* Both sides changed the same field: the winner is in the record, the
 * loser is kept whole so nothing a client sent is dropped. */
static int keep_field_conflict(apply_ctx_t *c, ps_apply_change_t *x)
{
    const ps_merge_t *m = &x->m;
    Popsync__Record lost = m->mine_won ? *x->cur : *x->ch->record;
    const uint8_t *lost_node = m->mine_won ? rev_node(x->cur) : x->job->node;
    const uint8_t *kept_node = m->mine_won ? x->job->node : rev_node(x->cur);
    int rc;
    if (!m->mine_won)
        lost.rev = &x->mine_rev;
    if ((rc = put_conflict(c, &x->nv, &lost, lost_node ? lost_node : x->job->node, kept_node, m->fields, m->nfields,
                           m->reason, x->res->conflict_id)))
        return rc;
    x->res->has_conflict = 1;
    return PS_OK;
}

static const char *audit_action(const ps_apply_change_t *x)
{
    const Popsync__Record *cur = x->cur, *nv = &x->nv;
    return x->ch->resolves.len            ? "resolve"
           : !cur                         ? "create"
           : nv->deleted && !cur->deleted ? "delete"
           : !nv->deleted && cur->deleted ? "restore"
           : x->have_merge                ? "merge"
                                          : "update";
}

/* Is the stored version exactly the sender's copy once it takes the
 * answer's rev (client/cache.c takes it for gen = base + 1): an edit of the
 * current version, not merged, created_ms and changed_by as sent.  Then a
 * Pull with skip_own on the sender's connection leaves it out (sync.c). */
static int own_copy(const ps_apply_change_t *x)
{
    const Popsync__Record *r = x->ch->record;
    return x->cur && !x->have_merge && x->rev.gen == x->base_gen + 1 && x->nv.created_ms == r->created_ms &&
           r->changed_by.len == PS_ID_LEN && memcmp(r->changed_by.data, x->job->node, PS_ID_LEN) == 0;
}

int ps_apply_persist(ps_apply_txn_t *c, ps_apply_change_t *x)
{
    ps_change_result_t *res = x->res;
    int rc;
    /* One live person per ID number in the district: a version that newly
     * takes a registered number is refused, naming the record that holds
     * it; the index moves with the records (store_idnum.c). */
    if ((rc = ps_idnum_check(c->st, c->txn, &x->nv, x->cur, &x->verrs)))
        return rc;
    if (x->verrs.n)
        return refuse(x);
    if ((rc = ps_idnum_update(c->st, c->txn, &x->nv, x->cur)))
        return rc;
    /* The column projection counts read (store_cols.c) moves with it. */
    /* An edit that is the change as sent (no merge) passed the validate
     * stage whole: the quality flag needs no second validation. */
    if ((rc = !x->cur           ? ps_cols_update_new(c->st, c->txn, &x->nv, c->today)
              : !x->have_merge ? ps_cols_update_validated(c->st, c->txn, &x->nv, x->cur, c->today)
                               : ps_cols_update(c->st, c->txn, &x->nv, x->cur)))
        return rc;
    /* Counters move by the difference between the old and new version, in
     * the same transaction, so they always equal a recount. */
    if ((x->cur && counts_here(c->st, x->cur) && (rc = ctab_record(&c->ctab, x->cur, -1))) ||
        (counts_here(c->st, &x->nv) && (rc = ctab_record(&c->ctab, &x->nv, +1))))
        return rc;
    if ((rc = put_version(c, &x->nv, x->cur ? x->old_hdr : NULL)))
        return rc;
    if (x->have_merge && x->m.nfields > 0 && (rc = keep_field_conflict(c, x)))
        return rc;
    if (x->ch->resolves.len && (rc = resolve_conflict(c, &x->ch->resolves, &x->ch->record->id)))
        return rc;
    if ((rc = audit_append(c, x->job, &x->nv, audit_action(x))))
        return rc;
    res->status = PS_CHANGE_ACCEPTED;
    res->seq = c->seq;
    res->has_rev = 1;
    res->gen = x->rev.gen;
    res->hlc = x->rev.hlc;
    res->has_rev_node = 1;
    memcpy(res->rev_node, x->job->node, PS_ID_LEN);
    res->own_copy = own_copy(x);
    return PS_APPLY_SETTLED;
}

/* ---- one change, one job, one transaction -------------------------------------- */

static int run_stages(ps_apply_txn_t *c, ps_apply_change_t *x)
{
    static int (*const stages[])(ps_apply_txn_t *, ps_apply_change_t *) = {
        ps_apply_dedupe, ps_apply_authorise, ps_apply_validate, ps_apply_stamp, ps_apply_merge, ps_apply_persist};
    int rc = PS_APPLY_NEXT;
    for (size_t i = 0; rc == PS_APPLY_NEXT && i < sizeof(stages) / sizeof(stages[0]); i++)
        rc = stages[i](c, x);
    return rc < 0 ? rc : PS_OK;
}

/* After the stages: the answer remembered (accepted: until the client
 * acknowledges it; refused: for ever), the node's mark moved, the job's
 * counts. */
static int settle(ps_apply_txn_t *c, ps_apply_change_t *x)
{
    ps_push_job_t *job = x->job;
    const ps_change_result_t *res = x->res;
    node_mark_t *mark;
    int rc;
    if (x->duplicate) {
        job->duplicate++;
        return PS_OK;
    }
    if (res->status == PS_CHANGE_REJECTED) {
        job->rejected++;
        if (x->ch->lcn == 0)
            return PS_OK; /* refused as such every time: nothing to remember */
        rc = store_reject(c, job->node, x->ch->lcn, res);
    } else if (res->status == PS_CHANGE_CONFLICT) {
        job->conflicted++;
        rc = store_reject(c, job->node, x->ch->lcn, res);
    } else {
        job->accepted++;
        rc = answer_put(c, job->node, x->ch, res);
    }
    if (rc || (rc = mark_get(c, job->node, &mark)))
        return rc;
    mark->hw = x->ch->lcn;
    mark->dirty = 1;
    return PS_OK;
}

int ps_apply_change(ps_apply_txn_t *c, ps_push_job_t *job, size_t i)
{
    ps_apply_change_t x;
    int rc;
    ps_apply_change_init(&x, job, job->push->changes[i], &job->results[i]);
    if ((rc = run_stages(c, &x)) == PS_OK)
        rc = settle(c, &x);
    ps_apply_change_free(&x);
    return rc;
}

void ps_push_job_results_free(ps_push_job_t *job)
{
    for (size_t i = 0; job->results && i < job->nresults; i++)
        ps_change_result_clear(&job->results[i]);
    free(job->results);
    job->results = NULL;
    job->nresults = 0;
}

/* Processes one job's changes inside the shared transaction. */
static int apply_job(apply_ctx_t *c, ps_push_job_t *job)
{
    size_t n = job->push ? job->push->n_changes : 0;
    int rc;
    ps_push_job_results_free(job);
    if ((rc = ps_apply_admit(c, job)) || job->refused)
        return rc; /* refused: nothing applied, commit.c sends the Error */
    if (!(job->results = calloc(n ? n : 1, sizeof(*job->results))))
        return PS_ENOMEM;
    job->nresults = n;
    for (size_t i = 0; i < n; i++)
        if ((rc = ps_apply_change(c, job, i)))
            return rc;
    return answers_flush(c);
}

/* The committed head as of this write transaction (meta "head"). */
static int apply_read_head(apply_ctx_t *c)
{
    MDB_val k = {4, "head"}, v;
    int mrc = mdb_get(c->txn, c->st->meta, &k, &v);
    c->seq = 0;
    if (mrc == 0 && v.mv_size == 8)
        c->seq = be64get(v.mv_data);
    else if (mrc && mrc != MDB_NOTFOUND)
        return db_err(mrc);
    return PS_OK;
}

int ps_apply_begin(ps_apply_txn_t *c, ps_store_t *st)
{
    int mrc;
    memset(c, 0, sizeof(*c));
    c->st = st;
    c->now_ms = ps_now_ms();
    c->today = ps_tz_date(&st->opts.tz, c->now_ms);
    ps_buf_init(&c->scratch);
    ps_buf_init(&c->dscratch);
    ps_buf_init(&c->ablock);
    ps_buf_init(&c->oldrec);
    if ((mrc = mdb_txn_begin(st->env, NULL, 0, &c->txn))) {
        c->txn = NULL;
        return db_err(mrc);
    }
    /* The head is read inside the write transaction: the group commit is
     * not the store's only writer (the migrant consumer, server/migrants.c,
     * writes foreign versions at new seqs too), and LMDB's writer lock is
     * what orders them. */
    int rc = apply_read_head(c);
    if (rc)
        ps_apply_abort(c);
    return rc;
}

void ps_apply_abort(ps_apply_txn_t *c)
{
    if (c->txn)
        mdb_txn_abort(c->txn);
    c->txn = NULL;
    free(c->marks);
    free(c->ctab.v);
    ps_audit_batch_free(&c->audit);
    ps_buf_free(&c->scratch);
    ps_buf_free(&c->dscratch);
    ps_buf_free(&c->ablock);
    ps_buf_free(&c->oldrec);
    EVP_MD_CTX_free(c->dmd);
    c->dmd = NULL;
    c->marks = NULL;
    c->ctab.v = NULL;
}

int ps_apply_commit(ps_apply_txn_t *c)
{
    uint8_t headv[8];
    MDB_val k = {4, "head"}, v = {8, headv};
    int mrc, rc;

    if ((rc = answers_flush(c)) || (rc = marks_flush(c)) || (rc = ctab_flush(&c->ctab, c->txn, c->st->counters)) ||
        (rc = ps_audit_seal(&c->audit, c->txn, c->st)))
        goto out;
    be64put(headv, c->seq);
    if ((mrc = mdb_put(c->txn, c->st->meta, &k, &v, 0))) {
        rc = db_err(mrc);
        goto out;
    }
    /* The durable commit: only after it returns may any job be acknowledged. */
    mrc = mdb_txn_commit(c->txn);
    c->txn = NULL;
    if (mrc) {
        rc = db_err(mrc);
        goto out;
    }
    ps_store_head_advance(c->st, c->seq);
out:
    ps_apply_abort(c);
    return rc;
}

static int apply_once(ps_store_t *st, ps_push_job_t *jobs)
{
    apply_ctx_t c;
    int rc;
    for (ps_push_job_t *j = jobs; j; j = j->next) {
        j->accepted = j->duplicate = j->rejected = j->conflicted = 0;
        j->refused = 0;
        j->why[0] = 0;
    }
    if ((rc = ps_apply_begin(&c, st)))
        return rc;
    for (ps_push_job_t *j = jobs; j; j = j->next)
        if ((rc = apply_job(&c, j))) {
            ps_apply_abort(&c);
            return rc;
        }
    return ps_apply_commit(&c);
}

/* Doubles the map, up to the cap.  Every other transaction of the process
 * is waited out first: LMDB requires none to be open during a resize. */
static int grow_map(ps_store_t *st)
{
    size_t cap = st->opts.map_max, want = st->map_size * 2;
    int mrc;
    if (cap && st->map_size >= cap)
        return PS_EFULL;
    if (cap && want > cap)
        want = cap;
    pthread_rwlock_wrlock(&st->resize);
    mrc = mdb_env_set_mapsize(st->env, want);
    if (mrc == 0)
        st->map_size = want;
    pthread_rwlock_unlock(&st->resize);
    if (mrc) {
        PS_ERROR("store", "cannot grow the map to %zu MiB: %s", want >> 20, mdb_strerror(mrc));
        return PS_EFULL;
    }
    PS_INFO("store", "map grown to %zu MiB", want >> 20);
    return PS_OK;
}

int ps_store_apply(ps_store_t *st, ps_push_job_t *jobs)
{
    int rc, tries = 0;
    /* A full map aborts the whole batch before anything was acknowledged;
     * grow it and run the batch again from the start. */
    while ((rc = apply_once(st, jobs)) == PS_EFULL && tries++ < 16 && grow_map(st) == PS_OK)
        ;
    if (rc) {
        if (rc == PS_EFULL)
            PS_ERROR("store", "push refused: the store is full (map %zu MiB, cap %zu MiB)", st->map_size >> 20,
                     st->opts.map_max >> 20);
        else if (rc == PS_ENOSPC)
            PS_ERROR("store", "push refused: disk full (the file system holding the store has no space left); "
                              "nothing was applied");
        else
            PS_ERROR("store", "push transaction failed: %s", ps_strerror(rc));
        for (ps_push_job_t *j = jobs; j; j = j->next) {
            j->status = rc;
            j->accepted = j->duplicate = j->rejected = j->conflicted = 0;
            ps_push_job_results_free(j);
        }
    } else {
        for (ps_push_job_t *j = jobs; j; j = j->next)
            j->status = PS_OK;
    }
    return rc;
}


/* An audit entry about a node id rather than a record (a refused Hello, a
 * rebind), in txn: the certificate, the node, the action; no record. */
int ps_apply_audit_node_event(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const uint8_t *node,
                              const char *action)
{
    apply_ctx_t c;
    ps_push_job_t job;
    Popsync__Record nv = POPSYNC__RECORD__INIT;
    Popsync__Rev rev = POPSYNC__REV__INIT;
    int rc;

    memset(&c, 0, sizeof(c));
    memset(&job, 0, sizeof(job));
    c.st = st;
    c.txn = txn;
    c.now_ms = ps_now_ms();
    ps_buf_init(&c.scratch);
    job.peer = *peer;
    memcpy(job.node, node, PS_ID_LEN);
    nv.rev = &rev;
    nv.orgunit = (char *)peer->orgunit;
    if ((rc = audit_append(&c, &job, &nv, action)) == PS_OK)
        rc = ps_audit_seal(&c.audit, txn, st);
    ps_audit_batch_free(&c.audit);
    ps_buf_free(&c.scratch);
    return rc;
}

