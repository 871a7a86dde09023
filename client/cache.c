/* cache.c - the client's local LMDB cache. */
#include "cache.h"
#include "err.h"
#include "log.h"
#include "buf.h"
#include "digest.h"

#include <lmdb.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ps_cache {
    MDB_env *env;
    MDB_dbi records, outbox, pending, rejected, meta;
    ps_cache_meta_t m;
    ps_hlc_t hlc;
    ps_buf_t scratch;
};

/* Sealed values start with a format byte so encrypted and plain caches can
 * be told apart and a future format can be added. */
#define SEAL_PLAIN 0x00

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
    if (mrc == MDB_NOTFOUND)
        return PS_ENOTFOUND;
    if (mrc == MDB_MAP_FULL)
        return PS_EFULL;
    return PS_EDB;
}

/* Packs msg and seals it into c->scratch; *v points at the result. */
static int seal_msg(ps_cache_t *c, const ProtobufCMessage *msg, MDB_val *v)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    int rc;
    ps_buf_reset(&c->scratch);
    if ((rc = ps_buf_reserve(&c->scratch, n + 1)))
        return rc;
    ps_buf_tail(&c->scratch)[0] = SEAL_PLAIN;
    protobuf_c_message_pack(msg, ps_buf_tail(&c->scratch) + 1);
    ps_buf_commit(&c->scratch, n + 1);
    v->mv_data = ps_buf_head(&c->scratch);
    v->mv_size = n + 1;
    return PS_OK;
}

/* Opens a sealed value and unpacks it with the default allocator: cache
 * contents are our own writing, so the records can be freed with
 * protobuf_c_message_free_unpacked(m, NULL) like any built by the CLI. */
static int open_msg(ps_cache_t *c, const MDB_val *v, const ProtobufCMessageDescriptor *d, ProtobufCMessage **out)
{
    const uint8_t *p = v->mv_data;
    (void)c;
    if (v->mv_size < 1 || p[0] != SEAL_PLAIN)
        return PS_ECRYPTO;
    *out = protobuf_c_message_unpack(d, NULL, v->mv_size - 1, p + 1);
    return *out ? PS_OK : PS_EPROTO;
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const void *val, size_t len)
{
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    int mrc = mdb_put(txn, dbi, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t x)
{
    uint8_t b[8];
    be64put(b, x);
    return meta_put(txn, dbi, key, b, 8);
}

static int meta_put_str(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *s)
{
    return meta_put(txn, dbi, key, s, strlen(s));
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

static uint64_t meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8)
        return be64get(v.mv_data);
    return 0;
}

static int env_open(ps_cache_t *c, const char *dir, char *err, size_t errlen)
{
    MDB_txn *txn = NULL;
    int mrc;
    if ((mrc = mdb_env_create(&c->env)) || (mrc = mdb_env_set_maxdbs(c->env, 8)) ||
        (mrc = mdb_env_set_mapsize(c->env, (size_t)4 << 30)))
        goto fail;
    if ((mrc = mdb_env_open(c->env, dir, MDB_NOTLS, 0600)))
        goto fail;
    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &txn)))
        goto fail;
    if ((mrc = mdb_dbi_open(txn, "records", MDB_CREATE, &c->records)) ||
        (mrc = mdb_dbi_open(txn, "outbox", MDB_CREATE, &c->outbox)) ||
        (mrc = mdb_dbi_open(txn, "pending", MDB_CREATE, &c->pending)) ||
        (mrc = mdb_dbi_open(txn, "rejected", MDB_CREATE, &c->rejected)) ||
        (mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &c->meta)))
        goto fail;
    if ((mrc = mdb_txn_commit(txn))) {
        txn = NULL;
        goto fail;
    }
    return PS_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    snprintf(err, errlen, "cache %s: %s", dir, mdb_strerror(mrc));
    return db_err(mrc);
}

static void cache_free(ps_cache_t *c)
{
    if (c->env)
        mdb_env_close(c->env);
    ps_buf_free(&c->scratch);
    free(c);
}

int ps_cache_create(const char *dir, const ps_cache_meta_t *meta, char *err, size_t errlen)
{
    ps_cache_t *c;
    MDB_txn *txn = NULL;
    char path[PATH_MAX + 16];
    struct stat sb;
    int rc, mrc;

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (stat(path, &sb) == 0) {
        snprintf(err, errlen, "%s already holds a cache", dir);
        return PS_EEXIST;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return PS_EIO;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return PS_ENOMEM;
    if ((rc = env_open(c, dir, err, errlen)))
        goto out;
    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &txn))) {
        rc = db_err(mrc);
        goto out;
    }
    if ((rc = meta_put(txn, c->meta, "node", meta->node, PS_ID_LEN)) ||
        (rc = meta_put_str(txn, c->meta, "server", meta->server)) ||
        (rc = meta_put_str(txn, c->meta, "server_name", meta->server_name)) ||
        (rc = meta_put_str(txn, c->meta, "ca", meta->ca)) || (rc = meta_put_str(txn, c->meta, "cert", meta->cert)) ||
        (rc = meta_put_str(txn, c->meta, "key", meta->key)) ||
        (rc = meta_put_str(txn, c->meta, "role", meta->role)) ||
        (rc = meta_put_str(txn, c->meta, "orgunit", meta->orgunit)) ||
        (rc = meta_put_str(txn, c->meta, "name", meta->name)) ||
        (rc = meta_put_u64(txn, c->meta, "cursor", 0)) || (rc = meta_put_u64(txn, c->meta, "next_lcn", 1)) ||
        (rc = meta_put_u64(txn, c->meta, "last_sync", 0)))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc) {
        rc = db_err(mrc);
        snprintf(err, errlen, "cache %s: %s", dir, mdb_strerror(mrc));
    }
out:
    if (txn)
        mdb_txn_abort(txn);
    cache_free(c);
    return rc;
}

int ps_cache_open(ps_cache_t **out, const char *dir, char *err, size_t errlen)
{
    ps_cache_t *c;
    MDB_txn *txn = NULL;
    MDB_val k = {4, "node"}, v;
    char path[PATH_MAX + 16];
    struct stat sb;
    int rc, mrc;

    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (stat(path, &sb) != 0) {
        snprintf(err, errlen, "no cache in %s (run 'popsync --data %s init' first)", dir, dir);
        return PS_ENOTFOUND;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return PS_ENOMEM;
    if ((rc = env_open(c, dir, err, errlen)))
        goto fail;
    if ((mrc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn))) {
        rc = db_err(mrc);
        goto fail;
    }
    if (mdb_get(txn, c->meta, &k, &v) != 0 || v.mv_size != PS_ID_LEN) {
        snprintf(err, errlen, "cache %s has no node id: not initialised", dir);
        rc = PS_EINVAL;
        goto fail;
    }
    memcpy(c->m.node, v.mv_data, PS_ID_LEN);
    meta_get_str(txn, c->meta, "server", c->m.server, sizeof(c->m.server));
    meta_get_str(txn, c->meta, "server_name", c->m.server_name, sizeof(c->m.server_name));
    meta_get_str(txn, c->meta, "ca", c->m.ca, sizeof(c->m.ca));
    meta_get_str(txn, c->meta, "cert", c->m.cert, sizeof(c->m.cert));
    meta_get_str(txn, c->meta, "key", c->m.key, sizeof(c->m.key));
    meta_get_str(txn, c->meta, "role", c->m.role, sizeof(c->m.role));
    meta_get_str(txn, c->meta, "orgunit", c->m.orgunit, sizeof(c->m.orgunit));
    meta_get_str(txn, c->meta, "name", c->m.name, sizeof(c->m.name));
    c->m.cursor = meta_get_u64(txn, c->meta, "cursor");
    c->m.next_lcn = meta_get_u64(txn, c->meta, "next_lcn");
    c->m.last_sync_ms = meta_get_u64(txn, c->meta, "last_sync");
    c->hlc.last = meta_get_u64(txn, c->meta, "hlc");
    mdb_txn_abort(txn);
    *out = c;
    return PS_OK;
fail:
    if (txn)
        mdb_txn_abort(txn);
    cache_free(c);
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

static int pending_add(ps_cache_t *c, MDB_txn *txn, const uint8_t *id, int delta)
{
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    uint64_t n = 0;
    uint8_t b[8];
    int mrc = mdb_get(txn, c->pending, &k, &v);
    if (mrc == 0 && v.mv_size == 8)
        n = be64get(v.mv_data);
    else if (mrc && mrc != MDB_NOTFOUND)
        return db_err(mrc);
    if (delta < 0 && n <= (uint64_t)-delta) {
        mrc = mdb_del(txn, c->pending, &k, NULL);
        return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
    }
    n = (uint64_t)((int64_t)n + delta);
    be64put(b, n);
    v.mv_size = 8;
    v.mv_data = b;
    mrc = mdb_put(txn, c->pending, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

static int pending_count(ps_cache_t *c, MDB_txn *txn, const uint8_t *id, uint64_t *n)
{
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    int mrc = mdb_get(txn, c->pending, &k, &v);
    *n = 0;
    if (mrc == 0 && v.mv_size == 8)
        *n = be64get(v.mv_data);
    else if (mrc && mrc != MDB_NOTFOUND)
        return db_err(mrc);
    return PS_OK;
}

/* Stores one local change inside txn; *lcn is the number to use and is
 * advanced.  r is restored before returning. */
static int put_local_txn(ps_cache_t *c, MDB_txn *txn, Popsync__Record *r, uint64_t *lcn, const uint8_t *resolves)
{
    MDB_val k, v;
    Popsync__Change ch = POPSYNC__CHANGE__INIT;
    Popsync__Rev base = POPSYNC__REV__INIT, *saved_rev = r->rev, newrev = POPSYNC__REV__INIT;
    ProtobufCBinaryData saved_by = r->changed_by;
    uint8_t lcnkey[8];
    int mrc, rc;

    if (r->id.len != PS_ID_LEN)
        return PS_EINVAL;
    /* The base is the revision of the version this edit started from. */
    if (saved_rev) {
        base.gen = saved_rev->gen;
        base.hlc = saved_rev->hlc;
        base.node = saved_rev->node;
    }
    newrev.gen = base.gen;
    newrev.hlc = ps_hlc_now(&c->hlc);
    newrev.node.data = c->m.node;
    newrev.node.len = PS_ID_LEN;
    r->rev = &newrev;
    r->updated_ms = (int64_t)ps_now_ms();
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
    be64put(lcnkey, *lcn);
    k.mv_size = 8;
    k.mv_data = lcnkey;
    if ((rc = seal_msg(c, &ch.base, &v)))
        goto out;
    if ((mrc = mdb_put(txn, c->outbox, &k, &v, MDB_APPEND))) {
        rc = db_err(mrc);
        goto out;
    }
    k.mv_size = PS_ID_LEN;
    k.mv_data = r->id.data;
    /* The local view keeps the base revision until the server answers, so a
     * second edit before a sync is based on the same server version. */
    r->rev = saved_rev;
    if ((rc = seal_msg(c, &r->base, &v)))
        goto out;
    if ((mrc = mdb_put(txn, c->records, &k, &v, 0))) {
        rc = db_err(mrc);
        goto out;
    }
    if ((rc = pending_add(c, txn, r->id.data, 1)))
        goto out;
    (*lcn)++;
out:
    r->rev = saved_rev;
    r->changed_by = saved_by;
    return rc;
}

static int put_local_many(ps_cache_t *c, Popsync__Record *const *recs, size_t n, const uint8_t *resolves)
{
    MDB_txn *txn = NULL;
    uint64_t lcn;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &txn)))
        return db_err(mrc);
    lcn = meta_get_u64(txn, c->meta, "next_lcn");
    if (lcn == 0)
        lcn = 1;
    for (size_t i = 0; i < n; i++)
        if ((rc = put_local_txn(c, txn, recs[i], &lcn, resolves)))
            goto out;
    if ((rc = meta_put_u64(txn, c->meta, "next_lcn", lcn)) || (rc = meta_put_u64(txn, c->meta, "hlc", c->hlc.last)))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? db_err(mrc) : PS_OK;
    if (!rc)
        c->m.next_lcn = lcn;
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

int ps_cache_put_local_many(ps_cache_t *c, Popsync__Record *const *recs, size_t n)
{
    return put_local_many(c, recs, n, NULL);
}

int ps_cache_put_local(ps_cache_t *c, Popsync__Record *r)
{
    return put_local_many(c, &r, 1, NULL);
}

int ps_cache_put_resolution(ps_cache_t *c, Popsync__Record *r, const uint8_t cid[16])
{
    return put_local_many(c, &r, 1, cid);
}

int ps_cache_get(ps_cache_t *c, const uint8_t id[PS_ID_LEN], Popsync__Record **out)
{
    MDB_txn *txn = NULL;
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    int mrc, rc;
    if ((mrc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)))
        return db_err(mrc);
    mrc = mdb_get(txn, c->records, &k, &v);
    if (mrc)
        rc = db_err(mrc);
    else
        rc = open_msg(c, &v, &popsync__record__descriptor, (ProtobufCMessage **)out);
    mdb_txn_abort(txn);
    return rc;
}

int ps_cache_foreach(ps_cache_t *c, int (*fn)(Popsync__Record *r, void *arg), void *arg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;
    if ((mrc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) || (mrc = mdb_cursor_open(txn, c->records, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Record *r = NULL;
        int stop;
        if ((rc = open_msg(c, &v, &popsync__record__descriptor, (ProtobufCMessage **)&r)))
            goto out;
        stop = fn(r, arg);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (stop)
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

void ps_cache_push_free(Popsync__Push *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_changes; i++)
        protobuf_c_message_free_unpacked(&p->changes[i]->base, NULL);
    free(p->changes);
    free(p);
}

int ps_cache_outbox_batch(ps_cache_t *c, size_t max, size_t max_bytes, Popsync__Push **out)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    Popsync__Push *p = calloc(1, sizeof(*p));
    size_t bytes = 0;
    int mrc, rc = PS_OK;

    if (!p)
        return PS_ENOMEM;
    popsync__push__init(p);
    p->changes = calloc(max ? max : 1, sizeof(*p->changes));
    if (!p->changes) {
        free(p);
        return PS_ENOMEM;
    }
    if ((mrc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) || (mrc = mdb_cursor_open(txn, c->outbox, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    while (p->n_changes < max && bytes < max_bytes && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        Popsync__Change *ch = NULL;
        if ((rc = open_msg(c, &v, &popsync__change__descriptor, (ProtobufCMessage **)&ch)))
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
 * local edit is still waiting (then that edit's base must stay). */
static int set_local_rev(ps_cache_t *c, MDB_txn *txn, const uint8_t *id, const Popsync__Rev *rev)
{
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    Popsync__Record *r = NULL;
    Popsync__Rev *saved;
    uint64_t pend;
    int rc, mrc;

    if ((rc = pending_count(c, txn, id, &pend)))
        return rc;
    if (pend > 0)
        return PS_OK;
    mrc = mdb_get(txn, c->records, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return PS_OK;
    if (mrc)
        return db_err(mrc);
    if ((rc = open_msg(c, &v, &popsync__record__descriptor, (ProtobufCMessage **)&r)))
        return rc;
    saved = r->rev;
    r->rev = (Popsync__Rev *)rev;
    rc = seal_msg(c, &r->base, &v);
    r->rev = saved;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (rc)
        return rc;
    mrc = mdb_put(txn, c->records, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_cache_outbox_ack(ps_cache_t *c, const Popsync__Push *sent, const Popsync__PushResult *res)
{
    MDB_txn *txn = NULL;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &txn)))
        return db_err(mrc);
    for (size_t i = 0; i < res->n_results; i++) {
        const Popsync__ChangeResult *r = res->results[i];
        const Popsync__Change *ch = NULL;
        uint8_t key[8];
        MDB_val k = {8, key}, v;
        for (size_t j = 0; j < sent->n_changes; j++)
            if (sent->changes[j]->lcn == r->lcn) {
                ch = sent->changes[j];
                break;
            }
        if (!ch || !ch->record)
            continue; /* not ours: ignore rather than guess */
        be64put(key, r->lcn);
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
            ps_buf_t b;
            keep.n_changes = 1;
            keep.changes = &cp;
            why.n_results = 1;
            why.results = &rp;
            n1 = protobuf_c_message_get_packed_size(&why.base);
            n2 = protobuf_c_message_get_packed_size(&keep.base);
            ps_buf_init(&b);
            if ((rc = ps_buf_reserve(&b, 17 + n1 + n2)))
                goto out;
            b.data[0] = SEAL_PLAIN;
            be64put(b.data + 1, n1);
            be64put(b.data + 9, n2);
            protobuf_c_message_pack(&why.base, b.data + 17);
            protobuf_c_message_pack(&keep.base, b.data + 17 + n1);
            v.mv_size = 17 + n1 + n2;
            v.mv_data = b.data;
            mrc = mdb_put(txn, c->rejected, &k, &v, 0);
            ps_buf_free(&b);
            if (mrc) {
                rc = db_err(mrc);
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
            rc = db_err(mrc);
            goto out;
        }
        if ((rc = pending_add(c, txn, ch->record->id.data, -1)))
            goto out;
        if (r->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED && r->rev)
            if ((rc = set_local_rev(c, txn, ch->record->id.data, r->rev)))
                goto out;
    }
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? db_err(mrc) : PS_OK;
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

int ps_cache_apply_pull(ps_cache_t *c, const Popsync__PullBatch *batch)
{
    MDB_txn *txn = NULL;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &txn)))
        return db_err(mrc);
    for (size_t i = 0; i < batch->n_entries; i++) {
        Popsync__Record *r = batch->entries[i]->record;
        MDB_val k, v;
        uint64_t pend;
        if (batch->entries[i]->gone) {
            /* Out of our scope now (moved to another unit): drop our copy.
             * A pending local edit stays in the outbox and becomes a
             * conflict on the server, so it is not lost. */
            if (batch->entries[i]->id.len == PS_ID_LEN) {
                k.mv_size = PS_ID_LEN;
                k.mv_data = batch->entries[i]->id.data;
                mrc = mdb_del(txn, c->records, &k, NULL);
                if (mrc && mrc != MDB_NOTFOUND) {
                    rc = db_err(mrc);
                    goto out;
                }
            }
            continue;
        }
        if (!r || r->id.len != PS_ID_LEN)
            continue;
        if ((rc = pending_count(c, txn, r->id.data, &pend)))
            goto out;
        /* A record with local edits still in the outbox keeps the local
         * version in view; the server's answer to the push settles it. */
        if (pend > 0)
            continue;
        k.mv_size = PS_ID_LEN;
        k.mv_data = r->id.data;
        if ((rc = seal_msg(c, &r->base, &v)))
            goto out;
        if ((mrc = mdb_put(txn, c->records, &k, &v, 0))) {
            rc = db_err(mrc);
            goto out;
        }
        if (r->rev)
            ps_hlc_observe(&c->hlc, r->rev->hlc);
    }
    if ((rc = meta_put_u64(txn, c->meta, "cursor", batch->cursor)) ||
        (rc = meta_put_u64(txn, c->meta, "hlc", c->hlc.last)))
        goto out;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? db_err(mrc) : PS_OK;
    if (!rc)
        c->m.cursor = batch->cursor;
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
}

int ps_cache_get_orgunits(ps_cache_t *c, uint8_t **csv, size_t *len, uint8_t digest[32])
{
    MDB_txn *txn = NULL;
    MDB_val k = {12, "orgunits_csv"}, v, dk = {15, "orgunits_digest"}, dv;
    int mrc, rc = PS_OK;
    *csv = NULL;
    *len = 0;
    if ((mrc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)))
        return db_err(mrc);
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
    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &txn)))
        return db_err(mrc);
    if ((rc = meta_put(txn, c->meta, "orgunits_csv", csv, len)) ||
        (rc = meta_put(txn, c->meta, "orgunits_digest", digest, 32))) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_cache_set_last_sync(ps_cache_t *c, uint64_t ms)
{
    MDB_txn *txn = NULL;
    int mrc, rc;
    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &txn)))
        return db_err(mrc);
    if ((rc = meta_put_u64(txn, c->meta, "last_sync", ms))) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    if (!mrc)
        c->m.last_sync_ms = ms;
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_cache_apply_fetch(ps_cache_t *c, const Popsync__PullBatch *batch, const uint8_t *ids, size_t nids)
{
    MDB_txn *txn = NULL;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &txn)))
        return db_err(mrc);
    for (size_t i = 0; i < nids; i++) {
        const uint8_t *id = ids + i * PS_ID_LEN;
        const Popsync__Record *r = NULL;
        MDB_val k = {PS_ID_LEN, (void *)id}, v;
        uint64_t pend;
        for (size_t j = 0; j < batch->n_entries; j++) {
            const Popsync__Record *e = batch->entries[j]->record;
            if (e && e->id.len == PS_ID_LEN && memcmp(e->id.data, id, PS_ID_LEN) == 0) {
                r = e;
                break;
            }
        }
        if ((rc = pending_count(c, txn, id, &pend)))
            goto out;
        if (pend > 0)
            continue;
        if (!r) {
            mrc = mdb_del(txn, c->records, &k, NULL);
            if (mrc && mrc != MDB_NOTFOUND) {
                rc = db_err(mrc);
                goto out;
            }
            continue;
        }
        if ((rc = seal_msg(c, &r->base, &v)))
            goto out;
        if ((mrc = mdb_put(txn, c->records, &k, &v, 0))) {
            rc = db_err(mrc);
            goto out;
        }
    }
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    rc = mrc ? db_err(mrc) : PS_OK;
out:
    if (txn)
        mdb_txn_abort(txn);
    return rc;
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
    if ((mrc = mdb_txn_begin(c->env, NULL, 0, &txn)))
        return db_err(mrc);
    if ((rc = meta_put_u64(txn, c->meta, "hlc", c->hlc.last))) {
        mdb_txn_abort(txn);
        return rc;
    }
    mrc = mdb_txn_commit(txn);
    return mrc ? db_err(mrc) : PS_OK;
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
    if ((mrc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)))
        return db_err(mrc);
    if (mdb_stat(txn, c->outbox, &s) == 0)
        out->outbox = s.ms_entries;
    if (mdb_stat(txn, c->rejected, &s) == 0)
        out->rejected = s.ms_entries;
    mdb_txn_abort(txn);
    return PS_OK;
}

int ps_cache_foreach_rejected(ps_cache_t *c,
                              int (*fn)(const Popsync__ChangeResult *res, const Popsync__Change *ch, void *arg),
                              void *arg)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc, rc = PS_OK;
    if ((mrc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) ||
        (mrc = mdb_cursor_open(txn, c->rejected, &cur))) {
        rc = db_err(mrc);
        goto out;
    }
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        const uint8_t *p = v.mv_data;
        Popsync__PushResult *why;
        Popsync__Push *keep;
        uint64_t n1, n2;
        int stop = 0;
        if (v.mv_size < 17 || p[0] != SEAL_PLAIN)
            continue;
        n1 = be64get(p + 1);
        n2 = be64get(p + 9);
        if (17 + n1 + n2 > v.mv_size)
            continue;
        why = popsync__push_result__unpack(NULL, n1, p + 17);
        keep = popsync__push__unpack(NULL, n2, p + 17 + n1);
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
