/* store.c - the server's LMDB store. */
#include "store.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "msg.h"
#include "scope.h"
#include "validate.h"
#include "merge.h"
#include "digest.h"
#include "crypto.h"
#include "counters.h"
#include "record_fmt.h"
#include "fields.h"
#include "policy.h"

#include "store_int.h"
#include "wire.pb-c.h"

#include <lmdb.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    pthread_rwlock_init(&st->resize, NULL);
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
        (mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &st->meta)) ||
        (mrc = mdb_dbi_open(txn, "versions", MDB_CREATE, &st->versions)) ||
        (mrc = mdb_dbi_open(txn, "conflicts", MDB_CREATE, &st->conflicts)) ||
        (mrc = mdb_dbi_open(txn, "audit", MDB_CREATE, &st->audit)) ||
        (mrc = mdb_dbi_open(txn, "counters", MDB_CREATE, &st->counters)) ||
        (mrc = mdb_dbi_open(txn, "closes", MDB_CREATE, &st->closes)) ||
        (mrc = mdb_dbi_open(txn, "answers", MDB_CREATE, &st->answers)))
        goto fail;
    if ((rc = ps_idnum_open(st, txn))) {
        snprintf(err, errlen, "store %s: cannot build the ID-number index", dir);
        goto out;
    }
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
    {
        /* A store that grew in an earlier run keeps its larger map. */
        MDB_envinfo info;
        if (mdb_env_info(st->env, &info) == 0)
            st->map_size = info.me_mapsize;
    }
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
    pthread_rwlock_destroy(&st->resize);
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

/* Counter deltas gathered during a transaction and written once at its
 * end: a batch of thousands of records touches a handful of counters. */
#define CKEY_MAX (4 + 12 + 32)
typedef struct centry {
    uint8_t key[CKEY_MAX];
    uint8_t klen;
    int64_t delta;
} centry_t;

typedef struct ctab {
    centry_t *v;
    size_t cap, n;           /* cap is a power of two */
} ctab_t;

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
    uint64_t conflicts;      /* conflicts recorded in this transaction */
    ctab_t ctab;             /* counter deltas of this transaction */
    uint64_t audit_n;        /* last audit entry number */
    uint8_t audit_hash[32];  /* hash of that entry */
    int audit_loaded;
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


/* --- node ids bound to certificates, remembered answers (issue 21) ------ */

/* A node id belongs to the certificate identity that first pushed with it:
 * its CN, role and org unit, not its serial or key, so a certificate
 * re-issued to the same holder keeps the cache working. */
static int same_identity(const Popsync__NodeStatus *b, const ps_peer_t *p)
{
    return b->name && b->role && b->orgunit && !strcmp(b->name, p->name) && !strcmp(b->role, p->role_name) &&
           !strcmp(b->orgunit, p->orgunit);
}

static void bind_key(uint8_t key[PS_ID_LEN + 1], const uint8_t *node)
{
    memcpy(key, node, PS_ID_LEN);
    key[PS_ID_LEN] = NODE_BIND_TAG;
}

/* The identity node is bound to, or *out = NULL when it is not bound. */
static int bind_get(MDB_txn *txn, ps_store_t *st, const uint8_t *node, Popsync__NodeStatus **out)
{
    uint8_t key[PS_ID_LEN + 1];
    MDB_val k = {sizeof(key), key}, v;
    int mrc;
    *out = NULL;
    bind_key(key, node);
    mrc = mdb_get(txn, st->nodes, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return PS_OK;
    if (mrc)
        return db_err(mrc);
    return ps_msg_unpack_desc(&popsync__node_status__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)out)
               ? PS_EDB
               : PS_OK;
}

static int bind_put_id(MDB_txn *txn, ps_store_t *st, const uint8_t *node, const char *name, const char *role,
                       const char *orgunit)
{
    Popsync__NodeStatus ns = POPSYNC__NODE_STATUS__INIT;
    uint8_t key[PS_ID_LEN + 1], buf[256];
    MDB_val k = {sizeof(key), key}, v;
    int mrc;
    bind_key(key, node);
    ns.name = (char *)name;
    ns.role = (char *)role;
    ns.orgunit = (char *)orgunit;
    v.mv_size = protobuf_c_message_get_packed_size(&ns.base);
    if (v.mv_size > sizeof(buf))
        return PS_ETOOBIG;
    protobuf_c_message_pack(&ns.base, buf);
    v.mv_data = buf;
    mrc = mdb_put(txn, st->nodes, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

static int bind_put(MDB_txn *txn, ps_store_t *st, const uint8_t *node, const ps_peer_t *p)
{
    return bind_put_id(txn, st, node, p->name, p->role_name, p->orgunit);
}

int ps__store_bind_if_new(MDB_txn *txn, ps_store_t *st, const ps_node_info_t *n)
{
    uint8_t key[PS_ID_LEN + 1];
    MDB_val k = {sizeof(key), key}, v;
    int mrc;
    bind_key(key, n->node);
    mrc = mdb_get(txn, st->nodes, &k, &v);
    if (mrc != MDB_NOTFOUND)
        return mrc ? db_err(mrc) : PS_OK;
    if (!n->name[0] || !n->role[0] || !n->orgunit[0])
        return PS_OK;
    return bind_put_id(txn, st, n->node, n->name, n->role, n->orgunit);
}

/* The refusal both the Hello and a push give: both identities (certificate
 * names are account names chosen by the district, no personal data). */
static void bind_refusal(char *out, size_t n, const uint8_t *node, const Popsync__NodeStatus *b, const ps_peer_t *p)
{
    char hex[2 * PS_ID_LEN + 1];
    ps_hex(node, PS_ID_LEN, hex);
    snprintf(out, n,
             "node %s belongs to certificate '%s' (%s, %s), not to this certificate '%s' (%s, %s): "
             "make a new cache with 'popsync init', or have the district move the node with "
             "'popsyncd node rebind'",
             hex, b->name, b->role, b->orgunit, p->name, p->role_name, p->orgunit);
}

/* SHA-256 of the change as sent, cut to 8 bytes: tells a resend (the same
 * bytes from the outbox) from another change under the same lcn (a copied
 * cache). */
static int change_digest(const Popsync__Change *ch, uint8_t out[8])
{
    size_t n = protobuf_c_message_get_packed_size(&ch->base);
    uint8_t *p = malloc(n ? n : 1), h[32];
    int rc;
    if (!p)
        return PS_ENOMEM;
    protobuf_c_message_pack(&ch->base, p);
    rc = ps_sha256(p, n, h);
    free(p);
    memcpy(out, h, 8);
    return rc;
}

static void answer_key(uint8_t key[PS_ID_LEN + 8], const uint8_t *node, uint64_t lcn)
{
    memcpy(key, node, PS_ID_LEN);
    be64put(key + PS_ID_LEN, lcn);
}

/* Remembers an ACCEPTED answer so that a resend (after a lost reply) is told
 * the seq and rev it got. */
static int pack_scratch(apply_ctx_t *c, const ProtobufCMessage *msg, size_t hdr_len, uint8_t **p, size_t *n);

static int answer_put(apply_ctx_t *c, const uint8_t *node, const Popsync__Change *ch, const Popsync__ChangeResult *res)
{
    uint8_t key[PS_ID_LEN + 8], *p;
    MDB_val k = {sizeof(key), key}, v;
    size_t n;
    int rc, mrc;
    if ((rc = pack_scratch(c, &res->base, 8, &p, &n)) || (rc = change_digest(ch, p)))
        return rc;
    answer_key(key, node, ch->lcn);
    v.mv_size = 8 + n;
    v.mv_data = p;
    if ((mrc = mdb_put(c->txn, c->st->answers, &k, &v, 0)))
        return db_err(mrc);
    return PS_OK;
}

/* The remembered answer to (node, lcn): PS_ENOTFOUND, or its digest and the
 * packed ChangeResult appended to packed. */
static int answer_get(apply_ctx_t *c, const uint8_t *node, uint64_t lcn, uint8_t digest[8], ps_buf_t *packed)
{
    uint8_t key[PS_ID_LEN + 8];
    MDB_val k = {sizeof(key), key}, v;
    int mrc;
    answer_key(key, node, lcn);
    mrc = mdb_get(c->txn, c->st->answers, &k, &v);
    if (mrc == MDB_NOTFOUND || (mrc == 0 && v.mv_size < 8))
        return PS_ENOTFOUND;
    if (mrc)
        return db_err(mrc);
    memcpy(digest, v.mv_data, 8);
    return packed ? ps_buf_append(packed, (uint8_t *)v.mv_data + 8, v.mv_size - 8) : PS_OK;
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
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != PS_ID_LEN + 8 || memcmp(k.mv_data, node, PS_ID_LEN) != 0 ||
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
static int job_admit(apply_ctx_t *c, ps_push_job_t *job)
{
    Popsync__NodeStatus *b = NULL;
    node_mark_t *mark;
    size_t n = job->push ? job->push->n_changes : 0;
    uint64_t from = UINT64_MAX, ack_floor;
    int rc;

    if ((rc = bind_get(c->txn, c->st, job->node, &b)))
        return rc;
    if (b && !same_identity(b, &job->peer)) {
        job->refused = PS_EACCES;
        bind_refusal(job->why, sizeof(job->why), job->node, b, &job->peer);
        ps_msg_free(&b->base);
        return PS_OK;
    }
    if (b)
        ps_msg_free(&b->base);
    else if ((rc = bind_put(c->txn, c->st, job->node, &job->peer)))
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
        if (rc || (rc = change_digest(ch, mine)))
            return rc;
        if (memcmp(have, mine, 8) != 0) {
            copied_refusal(job, ch->lcn);
            return PS_OK;
        }
    }
    return from != UINT64_MAX ? answers_prune(c, job->node, from, ack_floor) : PS_OK;
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

static int feed_put(apply_ctx_t *c, const uint8_t *val, size_t len)
{
    uint8_t key[8];
    MDB_val k = {8, key}, v = {len, (void *)val};
    int mrc;
    c->seq++;
    be64put(key, c->seq);
    /* Sequences only grow, so the feed is always an append. */
    mrc = mdb_put(c->txn, c->st->feed, &k, &v, MDB_APPEND);
    return mrc ? db_err(mrc) : PS_OK;
}

/* Makes nv (which carries its final rev) the record's current version:
 * records, versions and the feed.  When the record's audience shrinks, the
 * units that lose it get an exit entry first, so their readers drop it. */
static int put_version(apply_ctx_t *c, const Popsync__Record *nv, const uint8_t *old_hdr)
{
    MDB_val k = {PS_ID_LEN, nv->id.data}, v;
    uint8_t vkey[PS_ID_LEN + 8], *p;
    size_t n;
    int rc, mrc;
    const char *other = other_place(nv);

    if (old_hdr) {
        uint8_t oldkey[8];
        MDB_val ok = {8, oldkey};
        char units[2][13];
        memcpy(oldkey, old_hdr, 8);
        mrc = mdb_del(c->txn, c->st->feed, &ok, NULL);
        if (mrc && mrc != MDB_NOTFOUND)
            return db_err(mrc);
        hdr_unit(old_hdr, HDR_UNIT, units[0]);
        hdr_unit(old_hdr, HDR_OTHER, units[1]);
        for (int i = 0; i < 2; i++) {
            uint8_t ev[FEED_EXIT_LEN];
            if (!units[i][0] || strcmp(units[i], nv->orgunit) == 0 || strcmp(units[i], other) == 0)
                continue;
            memcpy(ev, nv->id.data, PS_ID_LEN);
            ev[16] = 0x01;
            memcpy(ev + 17, units[i], 12);
            if ((rc = feed_put(c, ev, sizeof(ev))))
                return rc;
        }
    }
    if ((rc = feed_put(c, nv->id.data, PS_ID_LEN)))
        return rc;
    if ((rc = pack_scratch(c, &nv->base, REC_HDR, &p, &n)))
        return rc;
    be64put(p, c->seq);
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
    /* Every version is kept: it may be the common base of a later merge. */
    memcpy(vkey, nv->id.data, PS_ID_LEN);
    be64put(vkey + PS_ID_LEN, nv->rev->gen);
    k.mv_size = sizeof(vkey);
    k.mv_data = vkey;
    v.mv_size = n;
    v.mv_data = p + REC_HDR;
    if ((mrc = mdb_put(c->txn, c->st->versions, &k, &v, 0)))
        return db_err(mrc);
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
        cf->resolved = 1;
        cf->resolved_ms = c->now_ms;
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
    uint8_t vkey[PS_ID_LEN + 8];
    MDB_val k = {sizeof(vkey), vkey}, v;
    int mrc;
    *out = NULL;
    memcpy(vkey, id, PS_ID_LEN);
    be64put(vkey + PS_ID_LEN, gen);
    mrc = mdb_get(c->txn, c->st->versions, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return PS_OK;
    if (mrc)
        return db_err(mrc);
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

/* Appends an audit entry for an accepted change, chained to the last one.
 * It is written in the change's own transaction: no change without its
 * entry, no entry without its change. */
static int audit_append(apply_ctx_t *c, const ps_push_job_t *job, const Popsync__Record *nv, const char *action)
{
    Popsync__AuditEntry e = POPSYNC__AUDIT_ENTRY__INIT;
    uint8_t key[8], head[40], *p;
    MDB_val k = {8, key}, v, hk = {10, "audit_head"};
    size_t n;
    int rc, mrc;

    if (!c->audit_loaded) {
        mrc = mdb_get(c->txn, c->st->meta, &hk, &v);
        if (mrc == 0 && v.mv_size == 40) {
            c->audit_n = be64get(v.mv_data);
            memcpy(c->audit_hash, (uint8_t *)v.mv_data + 8, 32);
        } else if (mrc && mrc != MDB_NOTFOUND) {
            return db_err(mrc);
        }
        c->audit_loaded = 1;
    }
    e.n = c->audit_n + 1;
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
    e.prev_hash.data = c->audit_hash;
    e.prev_hash.len = 32;
    e.orgunit = nv->orgunit;
    if ((rc = pack_scratch(c, &e.base, 0, &p, &n)))
        return rc;
    be64put(key, e.n);
    v.mv_size = n;
    v.mv_data = p;
    if ((mrc = mdb_put(c->txn, c->st->audit, &k, &v, MDB_APPEND)))
        return db_err(mrc);
    if ((rc = ps_sha256(p, n, c->audit_hash)))
        return rc;
    c->audit_n = e.n;
    be64put(head, c->audit_n);
    memcpy(head + 8, c->audit_hash, 32);
    v.mv_size = sizeof(head);
    v.mv_data = head;
    if ((mrc = mdb_put(c->txn, c->st->meta, &hk, &v, 0)))
        return db_err(mrc);
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

/* Whether the cache's clock is off by more than the protocol's tolerance. */
static int clock_wrong(const ps_push_job_t *job)
{
    return job->clock_ms &&
           (job->clock_skew_ms > PS_CLOCK_TOLERANCE_MS || job->clock_skew_ms < -PS_CLOCK_TOLERANCE_MS);
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
    if (hlc && clock_wrong(job) && PS_HLC_MS(hlc) <= job->clock_ms) {
        int64_t ms = (int64_t)PS_HLC_MS(hlc) - job->clock_skew_ms;
        hlc = ms > 0 ? (uint64_t)ms << 16 | (hlc & 0xffff) : 0;
    }
    if (hlc > limit || hlc == 0)
        return ps_hlc_now(&c->st->hlc);
    ps_hlc_observe(&c->st->hlc, hlc);
    return hlc;
}

/* Applies one change.  Fills res and returns PS_OK whether the change is
 * accepted, a duplicate, kept as a conflict or rejected (rejections go to
 * verrs): only a database failure is an error, and it aborts the whole
 * transaction. */
/* The answer to a change that leaves the record as it is (another cache
 * made the same edit first, or an edit back to the stored value): ACCEPTED
 * with the stored revision and its feed sequence, and nothing written: no
 * new revision, no feed or audit entry (docs/sync.md §4).  The stored
 * revision's node is copied into node_buf (16 bytes owned by the caller,
 * unused otherwise because the change is no conflict): cur is freed before
 * the reply is packed. */
static void unchanged_answer(const Popsync__Record *cur, const uint8_t *hdr, Popsync__ChangeResult *res,
                             Popsync__Rev *rev_out, uint8_t *node_buf)
{
    popsync__rev__init(rev_out);
    if (cur->rev) {
        rev_out->gen = cur->rev->gen;
        rev_out->hlc = cur->rev->hlc;
        if (cur->rev->node.len == PS_ID_LEN) {
            memcpy(node_buf, cur->rev->node.data, PS_ID_LEN);
            rev_out->node.data = node_buf;
            rev_out->node.len = PS_ID_LEN;
        }
    }
    res->status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED;
    res->seq = be64get(hdr);
    res->rev = rev_out;
}

static int apply_one(apply_ctx_t *c, ps_push_job_t *job, Popsync__Change *ch, Popsync__ChangeResult *res,
                     Popsync__Rev *rev_out, ps_verrs_t *verrs, uint8_t *conflict_id)
{
    static const char *const whole[] = {"*"};
    Popsync__Record *r = ch->record, *cur = NULL, *base = NULL, nv;
    Popsync__Rev mine_rev = POPSYNC__REV__INIT;
    const ps_peer_t *peer = &job->peer;
    node_mark_t *mark;
    MDB_val k, v;
    uint8_t old_hdr[REC_HDR];
    uint64_t hlc, base_gen;
    ps_merge_t m;
    int rc = PS_OK, mrc, have_merge = 0, other_place_edit = 0, hidden = 0;
    ps_write_t write;

    memset(&m, 0, sizeof(m));
    res->lcn = ch->lcn;
    if (r && r->id.len == PS_ID_LEN) {
        res->id.data = r->id.data;
        res->id.len = PS_ID_LEN;
    }
    if ((rc = mark_get(c, job->node, &mark)))
        return rc;
    if (ch->lcn == 0) {
        /* 0 is not a change number: taken for a resend, the change would be
         * answered DUPLICATE and lost. */
        ps_verrs_add(verrs, "lcn", "must be 1 or more (number changes from 1)");
        return PS_OK;
    }
    if (ch->lcn <= mark->hw) {
        res->status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE;
        job->duplicate++;
        return PS_OK;
    }
    if (!r) {
        ps_verrs_add(verrs, "record", "missing");
        return PS_OK;
    }
    if (r->id.len == PS_ID_LEN) {
        k.mv_size = PS_ID_LEN;
        k.mv_data = r->id.data;
        mrc = mdb_get(c->txn, c->st->records, &k, &v);
        if (mrc == 0 && v.mv_size >= REC_HDR) {
            memcpy(old_hdr, v.mv_data, REC_HDR);
            if ((rc = ps_msg_unpack_desc(&popsync__record__descriptor, (uint8_t *)v.mv_data + REC_HDR,
                                         v.mv_size - REC_HDR, (ProtobufCMessage **)&cur)))
                return rc == PS_ENOMEM ? PS_ENOMEM : PS_EDB;
        } else if (mrc && mrc != MDB_NOTFOUND) {
            return db_err(mrc);
        }
    }
    if (cur && (hidden = hidden_from(c, peer, cur, ch->base_rev ? ch->base_rev->gen : 0)) != 0) {
        ps_msg_free(&cur->base);
        cur = NULL;
        if (hidden < 0)
            return hidden;
    }
    {
        /* New records must be created inside the sender's scope; an existing
         * record's ownership is checked against its current owner below. */
        ps_validate_ctx_t vctx;
        ref_ctx_t rctx = {c, job, peer};
        memset(&vctx, 0, sizeof(vctx));
        vctx.units = c->st->opts.units;
        vctx.peer = peer;
        vctx.current = cur;
        vctx.today = ps_tz_date(&c->st->opts.tz, c->now_ms); /* the district's calendar */
        vctx.ref_exists = ref_exists;
        vctx.ref_arg = &rctx;
        vctx.refuse_synthetic = !c->st->opts.allow_synthetic;
        ps_validate_record(r, &vctx, verrs);
    }
    if (cur && cur->kind != r->kind)
        ps_verrs_add(verrs, "kind", "cannot change the kind of an existing record");
    if (verrs->n > 0)
        goto out;

    hlc = edit_time(c, job, r->rev ? r->rev->hlc : 0);
    mine_rev.hlc = hlc;
    mine_rev.node.data = job->node;
    mine_rev.node.len = PS_ID_LEN;
    base_gen = ch->base_rev ? ch->base_rev->gen : 0;
    mine_rev.gen = base_gen;

    if (cur) {
        const Popsync__Rev *cr = cur->rev;
        uint64_t cur_gen = cr ? cr->gen : 0;
        const char *changed[PS_MERGE_MAX_FIELDS];
        size_t nchanged;
        if (base_gen > cur_gen) {
            ps_verrs_add(verrs, "rev", "based on a revision the server does not have");
            goto out;
        }
        if (base_gen < cur_gen && (rc = load_version(c, r->id.data, base_gen, &base)))
            goto out;
        nchanged = ps_merge_diff(base_gen == cur_gen ? cur : base, r, changed, PS_MERGE_MAX_FIELDS);
        write = ps_policy_may_write(c->st->opts.units, peer, cur->orgunit, other_place(cur), r->orgunit);
        if (write != PS_WRITE_OWNER) {
            if (write == PS_WRITE_OTHER_PLACE) {
                /* The other place of a migrant's registration answers it:
                 * it may set the submission and feedback dates, nothing else. */
                for (size_t i = 0; i < nchanged; i++)
                    if (!ps_policy_other_place_may_set(changed[i]))
                        ps_verrs_add(verrs, changed[i], "the other place may set only submitted_date and feedback_date");
                /* A tombstone changes no field, so it needs its own check. */
                if (r->deleted != cur->deleted && !ps_policy_other_place_may_set("deleted"))
                    ps_verrs_add(verrs, "deleted", "the other place may not delete or restore the record");
                if (verrs->n > 0)
                    goto out;
                other_place_edit = 1;
            } else {
                /* The record left the sender's scope (moved to another unit)
                 * while this edit waited: keep the edit, apply nothing. */
                Popsync__Record lost = *r;
                lost.rev = &mine_rev;
                if ((rc = put_conflict(c, cur, &lost, job->node, rev_node(cur), whole, 1,
                                       "the record moved out of the sender's scope before this change arrived",
                                       conflict_id)))
                    goto out;
                res->status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT;
                res->conflict_id.data = conflict_id;
                res->conflict_id.len = PS_ID_LEN;
                goto settled;
            }
        }
        if (base_gen == cur_gen || (rc = own_versions_since(c, r->id.data, base_gen, cur_gen, job->node)) == 1) {
            /* Fast-forward: the change was made on the current version, or
             * every version since its base came from the same cache (its
             * earlier edits, which this one already contains). */
            rc = PS_OK;
            nv = *r;
        } else if (rc < 0) {
            goto out;
        } else {
            if ((rc = ps_merge(base, cur, r, rev_later(hlc, job->node, cr), &m)))
                goto out;
            have_merge = 1;
            if (m.outcome == PS_MERGE_KEEP_WHOLE) {
                Popsync__Record lost = *r;
                lost.rev = &mine_rev;
                if ((rc = put_conflict(c, cur, &lost, job->node, rev_node(cur), m.fields, m.nfields, m.reason,
                                       conflict_id)))
                    goto out;
                res->status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT;
                res->conflict_id.data = conflict_id;
                res->conflict_id.len = PS_ID_LEN;
                goto settled;
            }
            nv = m.merged;
        }
        (void)other_place_edit;
        if (!ch->resolves.len && !(have_merge && m.nfields > 0) && ps_record_same_content(cur, &nv)) {
            unchanged_answer(cur, old_hdr, res, rev_out, conflict_id);
            /* Its resend is a DUPLICATE with the same answer, like any other. */
            if ((rc = answer_put(c, job->node, ch, res)))
                goto out;
            job->accepted++;
            goto settled;
        }
        nv.created_ms = cur->created_ms;
        popsync__rev__init(rev_out);
        rev_out->gen = cur_gen + 1;
    } else {
        if (base_gen != 0) {
            ps_verrs_add(verrs, "rev", "based on a revision of a record the server does not have");
            goto out;
        }
        if (hidden) {
            /* A new record whose id is taken by one the sender may not see:
             * the only answer that differs from an unknown id, and only to a
             * sender that already holds a random 128-bit id it was never sent. */
            ps_verrs_add(verrs, "id", "is already used by another record; make a new record");
            goto out;
        }
        nv = *r;
        /* A record is created, and counted (persons_new), when the district
         * receives it: never by the sending device's clock, which may be
         * wrong, and never in a month already closed. */
        nv.created_ms = (int64_t)c->now_ms;
        popsync__rev__init(rev_out);
        rev_out->gen = 1;
    }
    /* A version's HLC never goes back: after a merge in which the incoming
     * edit lost, the record still carries the later edit's time, so a third
     * edit is compared with the value that actually stands. */
    rev_out->hlc = cur && cur->rev && cur->rev->hlc > hlc ? cur->rev->hlc : hlc;
    rev_out->node.data = job->node;
    rev_out->node.len = PS_ID_LEN;
    nv.rev = rev_out;
    nv.changed_by.data = job->node;
    nv.changed_by.len = PS_ID_LEN;
    nv.updated_ms = r->updated_ms;
    /* One live person per ID number in the district: a new registration of
     * a registered number is refused, naming the record that holds it. */
    if ((rc = ps_idnum_check(c->st, c->txn, &nv, cur, verrs)) || verrs->n > 0 ||
        (rc = ps_idnum_update(c->st, c->txn, &nv, cur)))
        goto out;
    /* Counters move by the difference between the old and new version, in
     * the same transaction, so they always equal a recount. */
    if ((cur && (rc = ctab_record(&c->ctab, cur, -1))) || (rc = ctab_record(&c->ctab, &nv, +1)))
        goto out;
    if ((rc = put_version(c, &nv, cur ? old_hdr : NULL)))
        goto out;
    if (have_merge && m.nfields > 0) {
        /* Both sides changed the same field: the winner is in the record,
         * the loser is kept whole so nothing a client sent is dropped. */
        Popsync__Record lost = m.mine_won ? *cur : *r;
        const uint8_t *lost_node = m.mine_won ? rev_node(cur) : job->node;
        const uint8_t *kept_node = m.mine_won ? job->node : rev_node(cur);
        if (!m.mine_won)
            lost.rev = &mine_rev;
        if ((rc = put_conflict(c, &nv, &lost, lost_node ? lost_node : job->node, kept_node, m.fields, m.nfields,
                               m.reason, conflict_id)))
            goto out;
        res->conflict_id.data = conflict_id;
        res->conflict_id.len = PS_ID_LEN;
    }
    if (ch->resolves.len && (rc = resolve_conflict(c, &ch->resolves, &r->id)))
        goto out;
    if ((rc = audit_append(c, job, &nv,
                           ch->resolves.len  ? "resolve"
                           : !cur            ? "create"
                           : nv.deleted && !cur->deleted ? "delete"
                           : !nv.deleted && cur->deleted ? "restore"
                           : have_merge      ? "merge"
                                             : "update")))
        goto out;
    res->status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED;
    res->seq = c->seq;
    res->rev = rev_out;
    if ((rc = answer_put(c, job->node, ch, res)))
        goto out;
    job->accepted++;
settled:
    mark->hw = ch->lcn;
    mark->dirty = 1;
out:
    if (have_merge)
        ps_merge_free(&m);
    if (base)
        ps_msg_free(&base->base);
    if (cur)
        ps_msg_free(&cur->base);
    return rc;
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
    uint8_t *cids = calloc(n ? n : 1, PS_ID_LEN);
    ps_buf_t replays;
    Popsync__PushResult pr = POPSYNC__PUSH_RESULT__INIT;
    ProtobufCMessage **replayed = NULL;
    int rc = PS_OK;

    ps_buf_init(&replays);
    if (!res || !resp || !revs || !fe || !fep || !verrs || !cids) {
        rc = PS_ENOMEM;
        goto out;
    }
    replayed = calloc(n ? n : 1, sizeof(*replayed));
    if (!replayed) {
        rc = PS_ENOMEM;
        goto out;
    }
    if ((rc = job_admit(c, job)) || job->refused)
        goto out; /* refused: nothing applied, commit.c sends the Error */
    for (size_t i = 0; i < n; i++) {
        Popsync__Change *ch = job->push->changes[i];
        popsync__change_result__init(&res[i]);
        resp[i] = &res[i];
        if ((rc = apply_one(c, job, ch, &res[i], &revs[i], &verrs[i], cids + i * PS_ID_LEN)))
            goto out;
        if (verrs[i].n > 0) {
            node_mark_t *mark;
            set_errors(&res[i], &verrs[i], fe + i * PS_VERR_MAX, fep + i * PS_VERR_MAX);
            job->rejected++;
            if (ch->lcn == 0)
                continue; /* refused as such every time: nothing to remember */
            /* Remember the rejection so a resend gets the same answer. */
            if ((rc = store_reject(c, job->node, ch->lcn, &res[i])))
                goto out;
            if ((rc = mark_get(c, job->node, &mark)))
                goto out;
            mark->hw = ch->lcn;
            mark->dirty = 1;
        } else if (res[i].status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_CONFLICT) {
            job->conflicted++;
            if ((rc = store_reject(c, job->node, ch->lcn, &res[i])))
                goto out;
        } else if (res[i].status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE) {
            uint8_t digest[8];
            int accepted_before;
            ps_buf_reset(&replays);
            /* Accepted before: DUPLICATE with the seq and rev it got then;
             * refused before: the same answer again. */
            rc = answer_get(c, job->node, ch->lcn, digest, &replays);
            accepted_before = rc == PS_OK;
            if (rc == PS_ENOTFOUND)
                rc = replay_result(c, job->node, ch->lcn, &replays);
            if (rc == PS_OK) {
                ProtobufCMessage *m = NULL;
                if (ps_msg_unpack_desc(&popsync__change_result__descriptor, ps_buf_head(&replays),
                                       ps_buf_size(&replays), &m) == PS_OK) {
                    replayed[i] = m;
                    resp[i] = (Popsync__ChangeResult *)m;
                    if (accepted_before)
                        resp[i]->status = POPSYNC__CHANGE_STATUS__CHANGE_STATUS_DUPLICATE;
                }
            } else if (rc != PS_ENOTFOUND) {
                goto out;
            }
            rc = PS_OK;
        }
    }
    pr.n_results = n;
    pr.results = resp;
    if (clock_wrong(job))
        pr.clock_skew_ms = job->clock_skew_ms;
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
    free(cids);
    return rc;
}

static void error_reply(ps_push_job_t *job, int err)
{
    Popsync__Error e = POPSYNC__ERROR__INIT;
    char msg[256];
    if (err == PS_EFULL)
        snprintf(msg, sizeof(msg), "push not committed: storage full on the server (map cap reached); "
                                   "nothing was applied, sync again once the district has raised the cap");
    else if (err == PS_ENOSPC)
        snprintf(msg, sizeof(msg), "push not committed: disk full on the server; nothing was applied, "
                                   "sync again once the district has freed disk space");
    else
        snprintf(msg, sizeof(msg), "push not committed: %s", ps_strerror(err));
    e.code = (uint32_t)-err;
    e.message = msg;
    ps_buf_reset(&job->reply);
    ps_msg_pack_frame(&job->reply, PS_MSG_ERROR, job->request_id, &e.base);
}

static int apply_once(ps_store_t *st, ps_push_job_t *jobs)
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
    for (ps_push_job_t *j = jobs; j; j = j->next) {
        j->accepted = j->duplicate = j->rejected = j->conflicted = 0;
        j->refused = 0;
        j->why[0] = 0;
    }
    if ((mrc = mdb_txn_begin(st->env, NULL, 0, &c.txn))) {
        rc = db_err(mrc);
        goto out;
    }
    for (ps_push_job_t *j = jobs; j; j = j->next)
        if ((rc = apply_job(&c, j)))
            goto out;
    if ((rc = marks_flush(&c)) || (rc = ctab_flush(&c.ctab, c.txn, st->counters)))
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
    free(c.marks);
    free(c.ctab.v);
    ps_buf_free(&c.scratch);
    return rc;
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
            error_reply(j, rc);
        }
    } else {
        for (ps_push_job_t *j = jobs; j; j = j->next)
            j->status = PS_OK;
    }
    return rc;
}

size_t ps_store_map_size(ps_store_t *st)
{
    return st->map_size;
}

/* The migrant of a migration the peer reads only as its other place
 * (docs/security.md §8.3): its person's name, sex, birth date and masked ID
 * number, packed into sum (*sum_len 0 when none is due or the person is not
 * there).  Nothing else of the person leaves the store this way. */
#define MIGRANT_MAX 1024
static int migrant_summary(const ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const uint8_t *hdr,
                           const uint8_t *packed, size_t plen, uint8_t *sum, size_t *sum_len)
{
    Popsync__MigrantSummary ms = POPSYNC__MIGRANT_SUMMARY__INIT;
    Popsync__Record *mig = NULL, *p = NULL;
    char unit[13], other[13], idn[64], masked[32];
    MDB_val k, v;

    *sum_len = 0;
    if (hdr[8] != POPSYNC__KIND__KIND_MIGRATION || (hdr[9] & REC_DELETED))
        return PS_OK;
    hdr_unit(hdr, HDR_UNIT, unit);
    hdr_unit(hdr, HDR_OTHER, other);
    if (!ps_policy_sees_migrant(st->opts.units, peer, unit, other))
        return PS_OK;
    if (ps_msg_unpack_desc(&popsync__record__descriptor, packed, plen, (ProtobufCMessage **)&mig))
        return PS_OK; /* the record itself is sent; the summary is best effort */
    if (mig->body_case == POPSYNC__RECORD__BODY_MIGRATION && mig->migration->person_id.len == PS_ID_LEN) {
        k.mv_size = PS_ID_LEN;
        k.mv_data = mig->migration->person_id.data;
        if (mdb_get(txn, st->records, &k, &v) == 0 && v.mv_size > REC_HDR &&
            ((const uint8_t *)v.mv_data)[8] == POPSYNC__KIND__KIND_PERSON &&
            !(((const uint8_t *)v.mv_data)[9] & REC_DELETED))
            ps_msg_unpack_desc(&popsync__record__descriptor, (const uint8_t *)v.mv_data + REC_HDR,
                               v.mv_size - REC_HDR, (ProtobufCMessage **)&p);
    }
    if (p && p->body_case == POPSYNC__RECORD__BODY_PERSON) {
        masked[0] = '\0';
        if (ps_record_get_text(p, "id_number", idn, sizeof(idn)) == PS_OK && *idn)
            ps_field_shown(POPSYNC__KIND__KIND_PERSON, "id_number", idn, masked, sizeof(masked));
        ms.name = p->person->name ? p->person->name : (char *)"";
        ms.sex = p->person->sex;
        ms.birth_date = p->person->birth_date ? p->person->birth_date : (char *)"";
        ms.id_number_masked = masked;
        if (protobuf_c_message_get_packed_size(&ms.base) <= MIGRANT_MAX)
            *sum_len = protobuf_c_message_pack(&ms.base, sum);
    }
    if (p)
        ps_msg_free(&p->base);
    ps_msg_free(&mig->base);
    return PS_OK;
}

void ps_store_msg_free(ps_store_msg_t *m)
{
    if (m && m->release)
        m->release(m->priv);
    if (m)
        memset(m, 0, sizeof(*m));
}

/* Gives fn one stored record (header + packed Record), with the migrant
 * summary the peer is due, straight from the map. */
static int emit_record(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, uint64_t seq, const MDB_val *rv,
                       ps_pull_fn fn, void *arg)
{
    uint8_t sum[MIGRANT_MAX];
    ps_pull_item_t it;
    memset(&it, 0, sizeof(it));
    it.seq = seq;
    it.record = (const uint8_t *)rv->mv_data + REC_HDR;
    it.record_len = rv->mv_size - REC_HDR;
    migrant_summary(st, txn, peer, rv->mv_data, it.record, it.record_len, sum, &it.migrant_len);
    it.migrant = it.migrant_len ? sum : NULL;
    return fn(arg, &it);
}

/* One feed entry (key seq, value fv) for peer: its record, its scope exit,
 * or nothing when the peer may not see it.  *sent: bytes of record given
 * (0 for none), or 1 for an exit. */
static int pull_entry(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, uint64_t seq, const MDB_val *fv,
                      ps_pull_fn fn, void *arg, size_t *sent, int *counted)
{
    MDB_val rk = {PS_ID_LEN, fv->mv_data}, rv;
    int mrc = mdb_get(txn, st->records, &rk, &rv);
    *sent = 0;
    *counted = 0;
    if (mrc)
        return db_err(mrc);
    if (rv.mv_size < REC_HDR)
        return PS_EDB;
    if (fv->mv_size == FEED_EXIT_LEN) {
        /* A scope exit: tell readers of the unit it left, unless the record
         * is (again) visible to them, in which case its latest entry
         * carries it. */
        char unit[13];
        ps_pull_item_t it;
        memcpy(unit, (const uint8_t *)fv->mv_data + 17, 12);
        unit[12] = '\0';
        if (!may_read(st, peer, unit, NULL) || may_read_hdr(st, peer, rv.mv_data))
            return PS_OK;
        memset(&it, 0, sizeof(it));
        it.seq = seq;
        it.gone_id = fv->mv_data;
        *counted = 1;
        return fn(arg, &it);
    }
    if (!may_read_hdr(st, peer, rv.mv_data))
        return PS_OK;
    *sent = rv.mv_size - REC_HDR;
    *counted = 1;
    return emit_record(st, txn, peer, seq, &rv, fn, arg);
}

int ps_store_pull(ps_store_t *st, const ps_peer_t *peer, uint64_t cursor, uint32_t max_records,
                  uint32_t max_bytes, ps_pull_fn fn, void *arg, ps_pull_end_t *end)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t key[8];
    uint64_t head, last = cursor;
    size_t count = 0, bytes = 0;
    int mrc, rc = PS_OK, more = 0;

    memset(end, 0, sizeof(*end));
    head = ps_store_head(st);
    /* sync.c refuses a cursor beyond head; never let cursor + 1 wrap to 0
     * (the whole scope) whoever calls. */
    if (cursor == UINT64_MAX)
        return PS_EINVAL;
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->feed, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    be64put(key, cursor + 1);
    k.mv_size = 8;
    k.mv_data = key;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t seq = be64get(k.mv_data);
        size_t sent;
        int counted;
        if (seq > head)
            break;
        if (count >= max_records || bytes >= max_bytes) {
            more = 1;
            break;
        }
        if ((rc = pull_entry(st, txn, peer, seq, &v, fn, arg, &sent, &counted)))
            goto out;
        bytes += sent;
        count += (size_t)counted;
        last = seq;
    }
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = db_err(mrc);
        goto out;
    }
    if (!more && last < head)
        last = head; /* nothing visible up to head: move past it */
    end->cursor = last;
    end->more = more;
    end->head = head;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    return rc;
}

/* An audit entry about a node id rather than a record (a refused Hello, a
 * rebind), in txn: the certificate, the node, the action; no record. */
static int audit_node_event(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const uint8_t *node,
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
    rc = audit_append(&c, &job, &nv, action);
    ps_buf_free(&c.scratch);
    return rc;
}

/* Writes one audit entry about node in a durable transaction of its own. */
static int audit_node_event_commit(ps_store_t *st, const ps_peer_t *peer, const uint8_t *node, const char *action)
{
    MDB_txn *txn = NULL;
    int mrc, rc;
    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    rc = audit_node_event(st, txn, peer, node, action);
    if (rc == PS_OK) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;
        rc = mrc ? db_err(mrc) : PS_OK;
    }
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize);
    return rc;
}

int ps_store_node_hello(ps_store_t *st, const uint8_t node[PS_ID_LEN], const ps_peer_t *peer, uint64_t *hw,
                        char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    MDB_val k = {PS_ID_LEN, (void *)node}, v;
    Popsync__NodeStatus *b = NULL;
    int mrc, rc;

    /* Read-only on purpose: a Hello must not take the single write lock
     * (and an fsync) away from group commits.  Last-seen bookkeeping rides
     * on the node's next push.  Only a refused Hello writes (its audit
     * entry). */
    *hw = 0;
    if ((mrc = ro_begin(st, &txn)))
        return db_err(mrc);
    mrc = mdb_get(txn, st->nodes, &k, &v);
    if (mrc == 0 && v.mv_size >= 8)
        *hw = be64get(v.mv_data);
    rc = mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : bind_get(txn, st, node, &b);
    ro_end(st, txn);
    if (rc || !b)
        return rc;
    if (same_identity(b, peer)) {
        ps_msg_free(&b->base);
        return PS_OK;
    }
    bind_refusal(err, errlen, node, b, peer);
    ps_msg_free(&b->base);
    *hw = 0;
    if ((rc = audit_node_event_commit(st, peer, node, "node_refused")))
        PS_WARN("store", "cannot write the audit entry of a refused Hello: %s", ps_strerror(rc));
    return PS_EACCES;
}

int ps_store_node_rebind(ps_store_t *st, const uint8_t node[PS_ID_LEN], const ps_peer_t *to, char *old,
                         size_t oldlen)
{
    MDB_txn *txn = NULL;
    Popsync__NodeStatus *b = NULL;
    int mrc, rc;

    old[0] = 0;
    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    if ((rc = bind_get(txn, st, node, &b)))
        goto out;
    if (b) {
        snprintf(old, oldlen, "'%s' (%s, %s)", b->name ? b->name : "", b->role ? b->role : "",
                 b->orgunit ? b->orgunit : "");
        ps_msg_free(&b->base);
    }
    if ((rc = bind_put(txn, st, node, to)) || (rc = audit_node_event(st, txn, to, node, "node_rebind")))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? db_err(mrc) : PS_OK;
out:
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize);
    return rc;
}

int ps_store_count(ps_store_t *st, uint64_t *live, uint64_t *total)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;
    *live = *total = 0;
    if ((mrc = ro_begin(st, &txn)) ||
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
        ro_end(st, txn);
    return mrc ? db_err(mrc) : PS_OK;
}

/* Asks the policy whether this peer, syncing as node, may list cf. */
static int may_see_conflict(const ps_store_t *st, const ps_peer_t *peer, const uint8_t *node,
                            const Popsync__Conflict *cf)
{
    ps_conflict_view_t cv;
    cv.unit = cf->orgunit;
    cv.kept_unit = cf->kept ? cf->kept->orgunit : NULL;
    cv.lost_unit = cf->lost ? cf->lost->orgunit : NULL;
    cv.lost_node = cf->lost_node.len == PS_ID_LEN ? cf->lost_node.data : NULL;
    cv.kept_node = cf->kept_node.len == PS_ID_LEN ? cf->kept_node.data : NULL;
    return ps_policy_may_see_conflict(st->opts.units, peer, node, &cv);
}

/* A ConflictListResult and the conflicts it lists (ps_store_msg_t.priv). */
typedef struct conflict_list {
    Popsync__ConflictListResult res;
    Popsync__Conflict **list;
    size_t n;
} conflict_list_t;

static void conflict_list_free(void *priv)
{
    conflict_list_t *cl = priv;
    for (size_t i = 0; i < cl->n; i++)
        ps_msg_free(&cl->list[i]->base);
    free(cl->list);
    free(cl);
}

int ps_store_conflicts(ps_store_t *st, const ps_peer_t *peer, const uint8_t node[PS_ID_LEN], int include_resolved,
                       uint32_t max, ps_store_msg_t *out)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    conflict_list_t *cl;
    int mrc, rc = PS_OK;

    memset(out, 0, sizeof(*out));
    if (max == 0 || max > 1000)
        max = 1000;
    if (!(cl = calloc(1, sizeof(*cl))) || !(cl->list = calloc(max, sizeof(*cl->list)))) {
        free(cl);
        return PS_ENOMEM;
    }
    popsync__conflict_list_result__init(&cl->res);
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->conflicts, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    while (cl->n < max && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Conflict *cf = NULL;
        if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cf))
            continue;
        if ((cf->resolved && !include_resolved) || !may_see_conflict(st, peer, node, cf)) {
            ps_msg_free(&cf->base);
            continue;
        }
        cl->list[cl->n++] = cf;
    }
    cl->res.n_conflicts = cl->n;
    cl->res.conflicts = cl->list;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    if (rc) {
        conflict_list_free(cl);
        return rc;
    }
    out->msg = &cl->res.base;
    out->release = conflict_list_free;
    out->priv = cl;
    return PS_OK;
}

int ps_store_conflicts_lost(ps_store_t *st, const uint8_t node[PS_ID_LEN], uint32_t *n)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;
    *n = 0;
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->conflicts, &cur)))
        goto out;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Conflict *cf = NULL;
        if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cf))
            continue;
        if (!cf->resolved && cf->lost_node.len == PS_ID_LEN && memcmp(cf->lost_node.data, node, PS_ID_LEN) == 0 &&
            *n < UINT32_MAX)
            (*n)++;
        ps_msg_free(&cf->base);
    }
    mrc = mrc == MDB_NOTFOUND ? 0 : mrc;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_store_conflict_count(ps_store_t *st, uint64_t *open_conflicts, uint64_t *total)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;
    *open_conflicts = *total = 0;
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->conflicts, &cur)))
        goto out;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Conflict *cf = NULL;
        (*total)++;
        if (ps_msg_unpack_desc(&popsync__conflict__descriptor, v.mv_data, v.mv_size, (ProtobufCMessage **)&cf) == 0) {
            if (!cf->resolved)
                (*open_conflicts)++;
            ps_msg_free(&cf->base);
        }
    }
    mrc = mrc == MDB_NOTFOUND ? 0 : mrc;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_store_verify_digests(ps_store_t *st, const ps_peer_t *peer, ps_verify_digests_t *out)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;

    memset(out, 0, sizeof(*out));
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->records, &cur)))
        goto out;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        const uint8_t *h = v.mv_data;
        uint32_t b;
        if (k.mv_size != PS_ID_LEN || v.mv_size < REC_HDR || !may_read_hdr(st, peer, h))
            continue;
        b = ps_verify_bucket(k.mv_data);
        out->digests[b] +=
            ps_verify_item_hash(k.mv_data, be64get(h + HDR_GEN), be64get(h + HDR_HLC), h[9] & REC_DELETED);
        out->counts[b]++;
    }
    mrc = mrc == MDB_NOTFOUND ? 0 : mrc;
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_store_verify_buckets(ps_store_t *st, const ps_peer_t *peer, const uint32_t *buckets, size_t nb,
                            ps_verify_item_t **items, size_t *n)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t want[PS_VERIFY_BUCKETS];
    size_t cap = 0;
    int mrc, rc = PS_OK;

    *items = NULL;
    *n = 0;
    memset(want, 0, sizeof(want));
    for (size_t i = 0; i < nb; i++)
        if (buckets[i] < PS_VERIFY_BUCKETS)
            want[buckets[i]] = 1;
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->records, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        const uint8_t *h = v.mv_data;
        ps_verify_item_t *it;
        if (k.mv_size != PS_ID_LEN || v.mv_size < REC_HDR || !want[ps_verify_bucket(k.mv_data)] ||
            !may_read_hdr(st, peer, h))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            void *a = realloc(*items, ncap * sizeof(**items));
            if (!a) {
                rc = PS_ENOMEM;
                goto out;
            }
            *items = a;
            cap = ncap;
        }
        it = &(*items)[(*n)++];
        memcpy(it->id, k.mv_data, PS_ID_LEN);
        it->gen = be64get(h + HDR_GEN);
        it->hlc = be64get(h + HDR_HLC);
        it->deleted = (h[9] & REC_DELETED) != 0;
    }
    if (mrc != MDB_NOTFOUND)
        rc = db_err(mrc);
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    if (rc) {
        free(*items);
        *items = NULL;
        *n = 0;
    }
    return rc;
}

int ps_store_fetch(ps_store_t *st, const ps_peer_t *peer, const ProtobufCBinaryData *ids, size_t n,
                   ps_pull_fn fn, void *arg, ps_pull_end_t *end)
{
    MDB_txn *txn = NULL;
    int mrc, rc = PS_OK;

    memset(end, 0, sizeof(*end));
    if ((mrc = ro_begin(st, &txn)))
        return db_err(mrc);
    for (size_t i = 0; i < n; i++) {
        MDB_val k = {PS_ID_LEN, ids[i].data}, v;
        if (ids[i].len != PS_ID_LEN)
            continue;
        mrc = mdb_get(txn, st->records, &k, &v);
        if (mrc == MDB_NOTFOUND)
            continue;
        if (mrc) {
            rc = db_err(mrc);
            goto out;
        }
        if (v.mv_size < REC_HDR || !may_read_hdr(st, peer, v.mv_data))
            continue;
        if ((rc = emit_record(st, txn, peer, be64get(v.mv_data), &v, fn, arg)))
            goto out;
    }
    /* cursor 0: a fetch never moves the reader's feed position. */
    end->head = ps_store_head(st);
out:
    ro_end(st, txn);
    return rc;
}

int ps_store_audit_verify(ps_store_t *st, uint64_t *entries, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v, hk = {10, "audit_head"};
    uint8_t prev[32] = {0}, h[32];
    uint64_t expect = 1, head_n = 0;
    int mrc, rc = PS_OK;

    *entries = 0;
    if ((mrc = ro_begin(st, &txn)) || (mrc = mdb_cursor_open(txn, st->audit, &cur))) {
        snprintf(err, errlen, "cannot read the audit log: %s", mdb_strerror(mrc));
        rc = db_err(mrc);
        goto out;
    }
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__AuditEntry *e = popsync__audit_entry__unpack(NULL, v.mv_size, v.mv_data);
        uint64_t n = k.mv_size == 8 ? be64get(k.mv_data) : 0;
        if (!e) {
            snprintf(err, errlen, "entry %llu is not a valid audit entry", (unsigned long long)n);
            rc = PS_EPROTO;
            goto out;
        }
        if (n != expect || e->n != n) {
            snprintf(err, errlen, "entry %llu missing (found entry %llu next)", (unsigned long long)expect,
                     (unsigned long long)n);
            popsync__audit_entry__free_unpacked(e, NULL);
            rc = PS_EPROTO;
            goto out;
        }
        if (e->prev_hash.len != 32 || memcmp(e->prev_hash.data, prev, 32) != 0) {
            snprintf(err, errlen, "entry %llu does not follow from entry %llu: the log was altered",
                     (unsigned long long)n, (unsigned long long)(n - 1));
            popsync__audit_entry__free_unpacked(e, NULL);
            rc = PS_EPROTO;
            goto out;
        }
        popsync__audit_entry__free_unpacked(e, NULL);
        ps_sha256(v.mv_data, v.mv_size, h);
        memcpy(prev, h, 32);
        expect++;
        (*entries)++;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = db_err(mrc);
        goto out;
    }
    /* The head names the last entry and its hash: removing or altering the
     * newest entries is caught here. */
    mrc = mdb_get(txn, st->meta, &hk, &v);
    if (mrc == 0 && v.mv_size == 40) {
        head_n = be64get(v.mv_data);
        if (head_n != *entries || memcmp((uint8_t *)v.mv_data + 8, prev, 32) != 0) {
            snprintf(err, errlen, "the log ends at entry %llu but its head names entry %llu%s",
                     (unsigned long long)*entries, (unsigned long long)head_n,
                     head_n == *entries ? " with another hash: the last entry was altered" : "");
            rc = PS_EPROTO;
        }
    } else if (*entries > 0) {
        snprintf(err, errlen, "the log has %llu entries but no head", (unsigned long long)*entries);
        rc = PS_EPROTO;
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        ro_end(st, txn);
    return rc;
}
