/* store.c - the server's LMDB store. */
#include "store.h"
#include "err.h"
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
#include "vec.h"

#include "store_int.h"
#include "store_cols.h"
#include "apply.h"
#include "wire.pb-c.h"

#include <lmdb.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Opens (creating) every named database of the store (store.h). */
static int open_dbis(MDB_txn *txn, ps_store_t *st)
{
    int mrc;
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
        (mrc = mdb_dbi_open(txn, "foreign", MDB_CREATE, &st->foreign)) ||
        (mrc = mdb_dbi_open(txn, "feed_town", MDB_CREATE, &st->feed_town)))
        return mrc;
    return mdb_dbi_open(txn, "answers", MDB_CREATE, &st->answers);
}

/* Reads the server's node id (made from fresh on first open) and the head. */
static int load_meta(MDB_txn *txn, ps_store_t *st, const uint8_t fresh[PS_ID_LEN])
{
    MDB_val k = {11, "server_node"}, v;
    int mrc = mdb_get(txn, st->meta, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        memcpy(st->server_node, fresh, PS_ID_LEN);
        v.mv_data = st->server_node;
        v.mv_size = PS_ID_LEN;
        if ((mrc = mdb_put(txn, st->meta, &k, &v, 0)))
            return mrc;
    } else if (mrc) {
        return mrc;
    } else if (v.mv_size == PS_ID_LEN) {
        memcpy(st->server_node, v.mv_data, PS_ID_LEN);
    }
    k.mv_data = "head";
    k.mv_size = 4;
    mrc = mdb_get(txn, st->meta, &k, &v);
    if (mrc == 0 && v.mv_size == 8)
        st->head = be64get(v.mv_data);
    return mrc == MDB_NOTFOUND ? 0 : mrc;
}

int ps_store_open(ps_store_t **out, const char *dir, const ps_store_opts_t *opts, char *err, size_t errlen)
{
    ps_store_t *st = calloc(1, sizeof(*st));
    MDB_txn *txn = NULL;
    uint8_t fresh[PS_ID_LEN];
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
    if ((mrc = mdb_env_create(&st->env)) || (mrc = mdb_env_set_maxdbs(st->env, 32)) ||
        (mrc = mdb_env_set_mapsize(st->env, opts->map_size)) || (mrc = mdb_env_set_maxreaders(st->env, 256)))
        goto fail;
    /* MDB_NOTLS: read transactions are opened on libuv worker threads. */
    if ((mrc = mdb_env_open(st->env, dir, MDB_NOTLS, 0600)))
        goto fail;
    if ((mrc = mdb_txn_begin(st->env, NULL, 0, &txn)))
        goto fail;
    if ((mrc = open_dbis(txn, st)))
        goto fail;
    if ((rc = ps_idnum_open(st, txn))) {
        snprintf(err, errlen, "store %s: cannot build the ID-number index", dir);
        goto out;
    }
    if ((rc = ps__history_open(st, txn))) {
        snprintf(err, errlen, "store %s: cannot build the index of audit entries by record", dir);
        goto out;
    }
    if ((rc = ps_random(fresh, PS_ID_LEN)))
        goto out;
    if ((mrc = load_meta(txn, st, fresh)) || (mrc = ps__home_load(txn, st)))
        goto fail;
    /* After load_meta: the projection's check needs the head. */
    if ((rc = ps_cols_open(st, txn))) {
        snprintf(err, errlen, "store %s: cannot build the column projection", dir);
        goto out;
    }
    if ((rc = ps__conflicts_open(st, txn))) {
        snprintf(err, errlen, "store %s: cannot tally the open conflicts", dir);
        goto out;
    }
    if ((mrc = mdb_txn_commit(txn)))
        goto fail;
    txn = NULL;
    if ((rc = ps__feed_open(st, err, errlen)))
        goto out;
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
    ps_cols_close(st);
    ps__conflicts_close(st);
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

/* --- node ids bound to certificates, remembered answers (issue 21) ------ */

/* A node id belongs to the certificate identity that first pushed with it:
 * its CN, role and org unit, not its serial or key, so a certificate
 * re-issued to the same holder keeps the cache working. */
int ps__same_identity(const Popsync__NodeStatus *b, const ps_peer_t *p)
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
int ps__bind_get(MDB_txn *txn, ps_store_t *st, const uint8_t *node, Popsync__NodeStatus **out)
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

int ps__bind_put(MDB_txn *txn, ps_store_t *st, const uint8_t *node, const ps_peer_t *p)
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
void ps__bind_refusal(char *out, size_t n, const uint8_t *node, const Popsync__NodeStatus *b, const ps_peer_t *p)
{
    char hex[2 * PS_ID_LEN + 1];
    ps_hex(node, PS_ID_LEN, hex);
    snprintf(out, n,
             "node %s belongs to certificate '%s' (%s, %s), not to this certificate '%s' (%s, %s): "
             "make a new cache with 'popsync init', or have the district move the node with "
             "'popsyncd node rebind'",
             hex, b->name, b->role, b->orgunit, p->name, p->role_name, p->orgunit);
}

size_t ps_store_map_size(ps_store_t *st)
{
    return st->map_size;
}

/* The migrant summary of a migration (name, sex, birth date, masked ID
 * number, docs/security.md §8.3) packed into sum (at most
 * PS_MIGRANT_SUMMARY_MAX bytes; *sum_len 0 when the person is not there):
 * from its person record, or for another district's case the summary its
 * district sent with it (store_migrants.c).  Nothing else of the person. */
int ps__migrant_summary_build(const ps_store_t *st, MDB_txn *txn, const Popsync__Record *mig, const char *unit_name,
                              uint8_t *sum, size_t *sum_len)
{
    Popsync__MigrantSummary ms = POPSYNC__MIGRANT_SUMMARY__INIT;
    Popsync__Record *p = NULL;
    char idn[64], masked[32];
    MDB_val k, v;

    *sum_len = 0;
    if (mig->body_case != POPSYNC__RECORD__BODY_MIGRATION || mig->migration->person_id.len != PS_ID_LEN)
        return PS_OK;
    k.mv_size = PS_ID_LEN;
    k.mv_data = mig->migration->person_id.data;
    if (mdb_get(txn, st->records, &k, &v) == 0 && v.mv_size > REC_HDR &&
        ((const uint8_t *)v.mv_data)[8] == POPSYNC__KIND__KIND_PERSON &&
        !(((const uint8_t *)v.mv_data)[9] & REC_DELETED))
        ps_msg_unpack_desc(&popsync__record__descriptor, (const uint8_t *)v.mv_data + REC_HDR, v.mv_size - REC_HDR,
                           (ProtobufCMessage **)&p);
    if (p && p->body_case == POPSYNC__RECORD__BODY_PERSON) {
        masked[0] = '\0';
        if (ps_record_get_text(p, "id_number", idn, sizeof(idn)) == PS_OK && *idn)
            ps_field_shown(POPSYNC__KIND__KIND_PERSON, "id_number", idn, masked, sizeof(masked));
        ms.name = p->person->name ? p->person->name : (char *)"";
        ms.sex = p->person->sex;
        ms.birth_date = p->person->birth_date ? p->person->birth_date : (char *)"";
        ms.id_number_masked = masked;
        ms.unit_name = (char *)(unit_name ? unit_name : "");
        if (protobuf_c_message_get_packed_size(&ms.base) <= PS_MIGRANT_SUMMARY_MAX)
            *sum_len = protobuf_c_message_pack(&ms.base, sum);
    } else if (!p) {
        ps__foreign_summary(st, txn, mig->id.data, sum, sum_len);
    }
    if (p)
        ps_msg_free(&p->base);
    return PS_OK;
}

/* The migrant of a migration the peer reads only as its other place
 * (docs/security.md §8.3), packed into sum (*sum_len 0 when none is due). */
#define MIGRANT_MAX PS_MIGRANT_SUMMARY_MAX
static int migrant_summary(const ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const uint8_t *hdr,
                           const uint8_t *packed, size_t plen, uint8_t *sum, size_t *sum_len)
{
    Popsync__Record *mig = NULL;
    char unit[13], other[13];

    *sum_len = 0;
    if (hdr[8] != POPSYNC__KIND__KIND_MIGRATION || (hdr[9] & REC_DELETED))
        return PS_OK;
    hdr_unit(hdr, HDR_UNIT, unit);
    hdr_unit(hdr, HDR_OTHER, other);
    if (!ps_policy_sees_migrant(st->opts.units, peer, unit, other))
        return PS_OK;
    if (ps_msg_unpack_desc(&popsync__record__descriptor, packed, plen, (ProtobufCMessage **)&mig))
        return PS_OK; /* the record itself is sent; the summary is best effort */
    ps__migrant_summary_build(st, txn, mig, NULL, sum, sum_len);
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
int ps__emit_record(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, uint64_t seq, const MDB_val *rv,
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

/* Writes one audit entry about node in a durable transaction of its own. */
static int audit_node_event_commit(ps_store_t *st, const ps_peer_t *peer, const uint8_t *node, const char *action)
{
    MDB_txn *txn = NULL;
    int mrc, rc;
    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    rc = ps_apply_audit_node_event(st, txn, peer, node, action);
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
    rc = mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : ps__bind_get(txn, st, node, &b);
    ro_end(st, txn);
    if (rc || !b)
        return rc;
    if (ps__same_identity(b, peer)) {
        ps_msg_free(&b->base);
        return PS_OK;
    }
    ps__bind_refusal(err, errlen, node, b, peer);
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
    if ((rc = ps__bind_get(txn, st, node, &b)))
        goto out;
    if (b) {
        snprintf(old, oldlen, "'%s' (%s, %s)", b->name ? b->name : "", b->role ? b->role : "",
                 b->orgunit ? b->orgunit : "");
        ps_msg_free(&b->base);
    }
    if ((rc = ps__bind_put(txn, st, node, to)) || (rc = ps_apply_audit_node_event(st, txn, to, node, "node_rebind")))
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
        if (PS_VEC_ROOM(*items, *n, cap, 256)) {
            rc = PS_ENOMEM;
            goto out;
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
        if ((rc = ps__emit_record(st, txn, peer, be64get(v.mv_data), &v, fn, arg)))
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
    int mrc, rc;

    *entries = 0;
    if ((mrc = ro_begin(st, &txn))) {
        snprintf(err, errlen, "cannot read the audit log: %s", mdb_strerror(mrc));
        return db_err(mrc);
    }
    /* The chaining rules are audit_chain.h's. */
    rc = ps_audit_verify(txn, st, entries, err, errlen);
    ro_end(st, txn);
    return rc;
}
