/* store.c - the server's LMDB store. */
#include "store.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "scope.h"
#include "validate.h"

#include <lmdb.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Every value in `records` starts with a fixed header so that pulls,
 * scope checks and reference checks never unpack a record:
 *   seq(8, BE) | kind(1) | flags(1: bit 0 deleted) | orgunit(12) | packed Record */
#define REC_HDR 22
#define REC_DELETED 0x01

struct ps_store {
    MDB_env *env;
    MDB_dbi records, feed, nodes, rejects, meta;
    uint8_t server_node[PS_ID_LEN];
    uint64_t head;           /* last committed seq; read under head_lock */
    pthread_mutex_t head_lock;
    ps_hlc_t hlc;            /* touched only by the single writer */
    ps_store_opts_t opts;
};

static void be64put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t be64get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int db_err(int mrc)
{
    if (mrc == MDB_MAP_FULL)
        return PS_EFULL;
    if (mrc == MDB_NOTFOUND)
        return PS_ENOTFOUND;
    if (mrc == ENOMEM)
        return PS_ENOMEM;
    return PS_EDB;
}

int ps_store_open(ps_store_t **out, const char *dir, const ps_store_opts_t *opts, char *err, size_t errlen)
{
    ps_store_t *st = calloc(1, sizeof(*st));
    MDB_txn *txn = NULL;
    MDB_val k, v;
    int mrc = 0, rc = PS_EDB;

    if (!st)
        return PS_ENOMEM;
    st->opts = *opts;
    pthread_mutex_init(&st->head_lock, NULL);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    if ((mrc = mdb_env_create(&st->env)) || (mrc = mdb_env_set_maxdbs(st->env, 16)) ||
        (mrc = mdb_env_set_mapsize(st->env, opts->map_size)) || (mrc = mdb_env_set_maxreaders(st->env, 256)))
        goto fail;
    /* MDB_NOTLS: read transactions are opened on libuv worker threads. */
    if ((mrc = mdb_env_open(st->env, dir, MDB_NOTLS, 0600)))
        goto fail;
    if ((mrc = mdb_txn_begin(st->env, NULL, 0, &txn)))
        goto fail;
    if ((mrc = mdb_dbi_open(txn, "records", MDB_CREATE, &st->records)) ||
        (mrc = mdb_dbi_open(txn, "feed", MDB_CREATE, &st->feed)) ||
        (mrc = mdb_dbi_open(txn, "nodes", MDB_CREATE, &st->nodes)) ||
        (mrc = mdb_dbi_open(txn, "rejects", MDB_CREATE, &st->rejects)) ||
        (mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta)))
        goto fail;
    k.mv_data = "server_node";
    k.mv_size = 11;
    mrc = mdb_get(txn, st->meta, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        if ((rc = ps_random(st->server_node, PS_ID_LEN)))
            goto out;
        v.mv_data = st->server_node;
        v.mv_size = PS_ID_LEN;
        if ((mrc = mdb_put(txn, st->meta, &k, &v, 0)))
            goto fail;
    } else if (mrc) {
        goto fail;
    } else if (v.mv_size == PS_ID_LEN) {
        memcpy(st->server_node, v.mv_data, PS_ID_LEN);
    }
    k.mv_data = "head";
    k.mv_size = 4;
    mrc = mdb_get(txn, st->meta, &k, &v);
    if (mrc == 0 && v.mv_size == 8)
        st->head = be64get(v.mv_data);
    else if (mrc != MDB_NOTFOUND)
        goto fail;
    if ((mrc = mdb_txn_commit(txn)))
        goto fail;
    txn = NULL;
    *out = st;
    return PS_OK;
fail:
    snprintf(err, errlen, "store %s: %s", dir, mdb_strerror(mrc));
    rc = db_err(mrc);
out:
    if (txn)
        mdb_txn_abort(txn);
    if (st->env)
        mdb_env_close(st->env);
    pthread_mutex_destroy(&st->head_lock);
    free(st);
    return rc;
}

void ps_store_close(ps_store_t *st)
{
    if (!st)
        return;
    mdb_env_close(st->env);
    pthread_mutex_destroy(&st->head_lock);
    free(st);
}

const uint8_t *ps_store_server_node(const ps_store_t *st)
{
    return st->server_node;
}

uint64_t ps_store_head(ps_store_t *st)
{
    uint64_t h;
    pthread_mutex_lock(&st->head_lock);
    h = st->head;
    pthread_mutex_unlock(&st->head_lock);
    return h;
}

/* May this identity write a record owned by unit?  Admin: everything;
 * township and collector: their subtree; viewer and server: nothing. */
static int may_write(const ps_peer_t *peer, const char *unit)
{
    switch (peer->role) {
    case PS_ROLE_ADMIN: return 1;
    case PS_ROLE_TOWNSHIP:
    case PS_ROLE_COLLECTOR: return ps_orgunit_within(unit, peer->orgunit);
    default: return 0;
    }
}

/* May this identity read records owned by unit? */
static int may_read(const ps_peer_t *peer, const char *unit)
{
    switch (peer->role) {
    case PS_ROLE_ADMIN: return 1;
    case PS_ROLE_TOWNSHIP:
    case PS_ROLE_COLLECTOR: return ps_orgunit_within(unit, peer->orgunit);
    default: return 0;
    }
}

/* may_read on a stored record's header. */
static int may_read_hdr(const ps_peer_t *peer, const void *hdr)
{
    char unit[13];
    memcpy(unit, (const uint8_t *)hdr + 10, 12);
    unit[12] = '\0';
    return may_read(peer, unit);
}

/* Per-transaction state of one node's marks, so a batch with many changes
 * from one node reads and writes its record once. */
typedef struct node_mark {
    uint8_t node[PS_ID_LEN];
    uint64_t hw;
    int dirty;
} node_mark_t;

typedef struct apply_ctx {
    ps_store_t *st;
    MDB_txn *txn;
    uint64_t seq;            /* last sequence given in this transaction */
    uint64_t now_ms;
    node_mark_t *marks;
    size_t nmarks, capmarks;
    ps_buf_t scratch;        /* packed record being stored */
} apply_ctx_t;

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

static void set_errors(Popsync__ChangeResult *res, const ps_verrs_t *v, Popsync__FieldError *fe,
                       Popsync__FieldError **fep)
{
    size_t n = v->n < PS_VERR_MAX ? v->n : PS_VERR_MAX;
    for (size_t i = 0; i < n; i++) {
        popsync__field_error__init(&fe[i]);
        fe[i].field = (char *)v->e[i].field;
        fe[i].reason = (char *)v->e[i].reason;
        fep[i] = &fe[i];
    }
    res->n_errors = n;
    res->errors = fep;
    res->status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_REJECTED;
}

static int store_reject(apply_ctx_t *c, const uint8_t *node, uint64_t lcn, const Popsync__ChangeResult *res)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v;
    size_t n = protobuf_c_message_get_packed_size(&res->base);
    int rc, mrc;
    memcpy(key, node, PS_ID_LEN);
    be64put(key + PS_ID_LEN, lcn);
    ps_buf_reset(&c->scratch);
    if ((rc = ps_buf_reserve(&c->scratch, n)))
        return rc;
    protobuf_c_message_pack(&res->base, ps_buf_tail(&c->scratch));
    v.mv_size = n;
    v.mv_data = ps_buf_tail(&c->scratch);
    if ((mrc = mdb_put(c->txn, c->st->rejects, &k, &v, 0)))
        return db_err(mrc);
    return PS_OK;
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
        if (!(h[9] & REC_DELETED) && (kind == 0 || h[8] == kind) && may_read_hdr(rc->peer, h))
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

/* Applies one change.  Fills res (status, seq, rev) and returns PS_OK for
 * accepted, duplicate and rejected alike: only a database failure is an
 * error, and it aborts the whole transaction. */
static int apply_one(apply_ctx_t *c, ps_push_job_t *job, Popsync__Change *ch, Popsync__ChangeResult *res,
                     Popsync__Rev *rev_out, ps_verrs_t *verrs)
{
    Popsync__Record *r = ch->record;
    node_mark_t *mark;
    MDB_val k, v;
    uint8_t seqkey[8];
    uint64_t old_seq = 0, old_gen = 0, hlc, limit;
    int rc, mrc, exists = 0;

    res->lcn = ch->lcn;
    if (r && r->id.len == PS_ID_LEN) {
        res->id.data = r->id.data;
        res->id.len = PS_ID_LEN;
    }
    if ((rc = mark_get(c, job->node, &mark)))
        return rc;
    if (ch->lcn <= mark->hw) {
        res->status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE;
        job->duplicate++;
        return PS_OK;
    }
    if (!r) {
        ps_verrs_add(verrs, "record", "missing");
    } else {
        ps_validate_ctx_t vctx;
        ref_ctx_t rctx = {c, job, &job->peer};
        memset(&vctx, 0, sizeof(vctx));
        vctx.units = c->st->opts.units;
        vctx.scope_root = job->peer.role == PS_ROLE_ADMIN ? NULL : job->peer.orgunit;
        vctx.ref_exists = ref_exists;
        vctx.ref_arg = &rctx;
        ps_validate_record(r, &vctx, verrs);
    }
    if (verrs->n > 0)
        return PS_OK; /* caller records the rejection */

    k.mv_size = PS_ID_LEN;
    k.mv_data = r->id.data;
    mrc = mdb_get(c->txn, c->st->records, &k, &v);
    if (mrc == 0 && v.mv_size >= REC_HDR) {
        Popsync__Record *old = NULL;
        exists = 1;
        old_seq = be64get(v.mv_data);
        rc = ps_msg_unpack_desc(&popsync__record__descriptor, (uint8_t *)v.mv_data + REC_HDR,
                                v.mv_size - REC_HDR, (ProtobufCMessage **)&old);
        if (rc == PS_OK) {
            if (old->rev)
                old_gen = old->rev->gen;
            /* A record may only move between units its writer can reach. */
            if (!may_write(&job->peer, old->orgunit))
                ps_verrs_add(verrs, "orgunit", "the stored record is outside the sender's scope");
            if (old->kind != r->kind)
                ps_verrs_add(verrs, "kind", "cannot change the kind of an existing record");
            ps_msg_free(&old->base);
        }
        if (verrs->n > 0)
            return PS_OK;
    } else if (mrc && mrc != MDB_NOTFOUND) {
        return db_err(mrc);
    }

    /* Revision: the change's own HLC (when it was made), bounded so a device
     * with a clock far in the future cannot win every later comparison. */
    hlc = r->rev ? r->rev->hlc : 0;
    limit = (c->now_ms + c->st->opts.max_future_ms) << 16;
    if (hlc > limit || hlc == 0)
        hlc = ps_hlc_now(&c->st->hlc);
    else
        ps_hlc_observe(&c->st->hlc, hlc);
    popsync__rev__init(rev_out);
    rev_out->gen = old_gen + 1;
    rev_out->hlc = hlc;
    rev_out->node.data = job->node;
    rev_out->node.len = PS_ID_LEN;
    if (!exists && r->created_ms == 0)
        r->created_ms = (int64_t)c->now_ms;

    c->seq++;
    be64put(seqkey, c->seq);
    {
        /* Pack with the server's revision and maker swapped in, then put the
         * decoded message's own pointers back: the message is freed by its
         * allocator, which must never see these borrowed ones. */
        Popsync__Rev *orig_rev = r->rev;
        ProtobufCBinaryData orig_by = r->changed_by;
        size_t n;
        r->rev = rev_out;
        r->changed_by.data = job->node;
        r->changed_by.len = PS_ID_LEN;
        n = protobuf_c_message_get_packed_size(&r->base);
        ps_buf_reset(&c->scratch);
        rc = ps_buf_reserve(&c->scratch, REC_HDR + n);
        if (rc == PS_OK) {
            uint8_t *h = ps_buf_tail(&c->scratch);
            be64put(h, c->seq);
            h[8] = (uint8_t)r->kind;
            h[9] = r->deleted ? REC_DELETED : 0;
            memcpy(h + 10, r->orgunit, 12);
            protobuf_c_message_pack(&r->base, h + REC_HDR);
        }
        r->rev = orig_rev;
        r->changed_by = orig_by;
        if (rc)
            return rc;
        v.mv_size = REC_HDR + n;
        v.mv_data = ps_buf_tail(&c->scratch);
    }
    if ((mrc = mdb_put(c->txn, c->st->records, &k, &v, 0)))
        return db_err(mrc);
    if (exists) {
        uint8_t oldkey[8];
        MDB_val ok = {8, oldkey};
        be64put(oldkey, old_seq);
        mrc = mdb_del(c->txn, c->st->feed, &ok, NULL);
        if (mrc && mrc != MDB_NOTFOUND)
            return db_err(mrc);
    }
    {
        MDB_val fk = {8, seqkey}, fv = {PS_ID_LEN, r->id.data};
        /* Sequences only grow, so the feed is always an append. */
        if ((mrc = mdb_put(c->txn, c->st->feed, &fk, &fv, MDB_APPEND)))
            return db_err(mrc);
    }
    mark->hw = ch->lcn;
    mark->dirty = 1;
    res->status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED;
    res->seq = c->seq;
    res->rev = rev_out;
    job->accepted++;
    return PS_OK;
}

/* Processes one job's changes inside the shared transaction and packs its
 * reply.  Result arrays live on the heap for the duration of the call only:
 * the packed frame is what outlives it. */
static int apply_job(apply_ctx_t *c, ps_push_job_t *job)
{
    size_t n = job->push ? job->push->n_changes : 0;
    Popsync__ChangeResult *res = calloc(n ? n : 1, sizeof(*res));
    Popsync__ChangeResult **resp = calloc(n ? n : 1, sizeof(*resp));
    Popsync__Rev *revs = calloc(n ? n : 1, sizeof(*revs));
    Popsync__FieldError *fe = calloc((n ? n : 1) * PS_VERR_MAX, sizeof(*fe));
    Popsync__FieldError **fep = calloc((n ? n : 1) * PS_VERR_MAX, sizeof(*fep));
    ps_verrs_t *verrs = calloc(n ? n : 1, sizeof(*verrs));
    ps_buf_t replays;
    Popsync__PushResult pr = POPSYNC__PUSH_RESULT__INIT;
    ProtobufCMessage **replayed = NULL;
    int rc = PS_OK;

    ps_buf_init(&replays);
    if (!res || !resp || !revs || !fe || !fep || !verrs) {
        rc = PS_ENOMEM;
        goto out;
    }
    replayed = calloc(n ? n : 1, sizeof(*replayed));
    if (!replayed) {
        rc = PS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        Popsync__Change *ch = job->push->changes[i];
        popsync__change_result__init(&res[i]);
        resp[i] = &res[i];
        if ((rc = apply_one(c, job, ch, &res[i], &revs[i], &verrs[i])))
            goto out;
        if (verrs[i].n > 0) {
            node_mark_t *mark;
            set_errors(&res[i], &verrs[i], fe + i * PS_VERR_MAX, fep + i * PS_VERR_MAX);
            job->rejected++;
            /* Remember the rejection so a resend gets the same answer. */
            if ((rc = store_reject(c, job->node, ch->lcn, &res[i])))
                goto out;
            if ((rc = mark_get(c, job->node, &mark)))
                goto out;
            mark->hw = ch->lcn;
            mark->dirty = 1;
        } else if (res[i].status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE) {
            ps_buf_reset(&replays);
            rc = replay_result(c, job->node, ch->lcn, &replays);
            if (rc == PS_OK) {
                ProtobufCMessage *m = NULL;
                if (ps_msg_unpack_desc(&popsync__change_result__descriptor, ps_buf_head(&replays),
                                       ps_buf_size(&replays), &m) == PS_OK) {
                    replayed[i] = m;
                    resp[i] = (Popsync__ChangeResult *)m;
                }
            } else if (rc != PS_ENOTFOUND) {
                goto out;
            }
            rc = PS_OK;
        }
    }
    pr.n_results = n;
    pr.results = resp;
    ps_buf_reset(&job->reply);
    rc = ps_msg_pack_frame(&job->reply, PS_MSG_PUSH_RESULT, job->request_id, &pr.base);
out:
    if (replayed)
        for (size_t i = 0; i < n; i++)
            ps_msg_free(replayed[i]);
    free(replayed);
    ps_buf_free(&replays);
    free(res);
    free(resp);
    free(revs);
    free(fe);
    free(fep);
    free(verrs);
    return rc;
}

static void error_reply(ps_push_job_t *job, int err)
{
    Popsync__Error e = POPSYNC__ERROR__INIT;
    char msg[128];
    snprintf(msg, sizeof(msg), "push not committed: %s", ps_strerror(err));
    e.code = (uint32_t)-err;
    e.message = msg;
    ps_buf_reset(&job->reply);
    ps_msg_pack_frame(&job->reply, PS_MSG_ERROR, job->request_id, &e.base);
}

int ps_store_apply(ps_store_t *st, ps_push_job_t *jobs)
{
    apply_ctx_t c;
    uint8_t headv[8];
    MDB_val k = {4, "head"}, v = {8, headv};
    int mrc, rc = PS_OK;

    memset(&c, 0, sizeof(c));
    c.st = st;
    c.now_ms = ps_now_ms();
    ps_buf_init(&c.scratch);
    pthread_mutex_lock(&st->head_lock);
    c.seq = st->head;
    pthread_mutex_unlock(&st->head_lock);
    for (ps_push_job_t *j = jobs; j; j = j->next)
        j->accepted = j->duplicate = j->rejected = 0;
    if ((mrc = mdb_txn_begin(st->env, NULL, 0, &c.txn))) {
        rc = db_err(mrc);
        goto out;
    }
    for (ps_push_job_t *j = jobs; j; j = j->next)
        if ((rc = apply_job(&c, j)))
            goto out;
    if ((rc = marks_flush(&c)))
        goto out;
    be64put(headv, c.seq);
    if ((mrc = mdb_put(c.txn, st->meta, &k, &v, 0))) {
        rc = db_err(mrc);
        goto out;
    }
    /* The durable commit: only after it returns may any job be acknowledged. */
    mrc = mdb_txn_commit(c.txn);
    c.txn = NULL;
    if (mrc) {
        rc = db_err(mrc);
        goto out;
    }
    pthread_mutex_lock(&st->head_lock);
    st->head = c.seq;
    pthread_mutex_unlock(&st->head_lock);
out:
    if (c.txn)
        mdb_txn_abort(c.txn);
    if (rc) {
        PS_ERROR("store", "push transaction failed: %s", ps_strerror(rc));
        for (ps_push_job_t *j = jobs; j; j = j->next) {
            j->status = rc;
            j->accepted = j->duplicate = j->rejected = 0;
            error_reply(j, rc);
        }
    } else {
        for (ps_push_job_t *j = jobs; j; j = j->next)
            j->status = PS_OK;
    }
    free(c.marks);
    ps_buf_free(&c.scratch);
    return rc;
}

int ps_store_pull(ps_store_t *st, const ps_peer_t *peer, uint64_t cursor, uint32_t max_records,
                  uint32_t max_bytes, uint32_t request_id, ps_buf_t *out)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t key[8];
    uint64_t head, last = cursor;
    size_t start, count = 0, bytes = 0;
    int mrc, rc = PS_OK, more = 0;

    head = ps_store_head(st);
    start = ps_buf_size(out);
    if ((rc = ps_buf_reserve(out, PS_FRAME_HDR)))
        return rc;
    ps_buf_commit(out, PS_FRAME_HDR);
    if ((mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) ||
        (mrc = mdb_cursor_open(txn, st->feed, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    be64put(key, cursor + 1);
    k.mv_size = 8;
    k.mv_data = key;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == 0) {
        uint64_t seq = be64get(k.mv_data);
        MDB_val rk = {PS_ID_LEN, v.mv_data}, rv;
        const uint8_t *packed;
        size_t plen;
        if (seq > head)
            break;
        if (count >= max_records || bytes >= max_bytes) {
            more = 1;
            break;
        }
        mrc = mdb_get(txn, st->records, &rk, &rv);
        if (mrc) {
            rc = db_err(mrc);
            goto out;
        }
        if (rv.mv_size < REC_HDR) {
            rc = PS_EDB;
            goto out;
        }
        packed = (const uint8_t *)rv.mv_data + REC_HDR;
        plen = rv.mv_size - REC_HDR;
        if (!may_read_hdr(peer, rv.mv_data)) {
            last = seq;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if ((rc = ps_msg_feed_entry_append(out, seq, packed, plen)))
            goto out;
        bytes += plen;
        count++;
        last = seq;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = db_err(mrc);
        goto out;
    }
    if (!more && last < head)
        last = head; /* nothing visible up to head: move past it */
    if ((rc = ps_msg_pull_batch_finish(out, last, more, head)))
        goto out;
    ps_frame_encode_header(out->data + out->off + start, PS_MSG_PULL_BATCH, 0, request_id,
                           ps_buf_size(out) - start - PS_FRAME_HDR);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    if (rc)
        out->len = out->off + start;
    return rc;
}

int ps_store_node_hello(ps_store_t *st, const uint8_t node[PS_ID_LEN], uint64_t cursor, uint64_t *hw)
{
    MDB_txn *txn = NULL;
    MDB_val k = {PS_ID_LEN, (void *)node}, v;
    uint8_t val[24] = {0};
    int mrc;

    *hw = 0;
    if ((mrc = mdb_txn_begin(st->env, NULL, 0, &txn)))
        return db_err(mrc);
    mrc = mdb_get(txn, st->nodes, &k, &v);
    if (mrc == 0 && v.mv_size >= 8) {
        memcpy(val, v.mv_data, v.mv_size < 24 ? v.mv_size : 24);
        *hw = be64get(val);
    } else if (mrc && mrc != MDB_NOTFOUND) {
        goto fail;
    }
    be64put(val + 8, ps_now_ms());
    be64put(val + 16, cursor);
    v.mv_size = sizeof(val);
    v.mv_data = val;
    if ((mrc = mdb_put(txn, st->nodes, &k, &v, 0)))
        goto fail;
    /* Not durable on purpose: last-seen bookkeeping may be lost in a crash,
     * acknowledged data never is (that goes through ps_store_apply). */
    if ((mrc = mdb_txn_commit(txn)))
        return db_err(mrc);
    return PS_OK;
fail:
    mdb_txn_abort(txn);
    return db_err(mrc);
}

int ps_store_count(ps_store_t *st, uint64_t *live, uint64_t *total)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;
    *live = *total = 0;
    if ((mrc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn)) ||
        (mrc = mdb_cursor_open(txn, st->records, &cur)))
        goto out;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        (*total)++;
        if (v.mv_size >= REC_HDR && !(((const uint8_t *)v.mv_data)[9] & REC_DELETED))
            (*live)++;
    }
    mrc = mrc == MDB_NOTFOUND ? 0 : mrc;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return mrc ? db_err(mrc) : PS_OK;
}
