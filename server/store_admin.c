/* store_admin.c - the store's operations side: hot backup, restore, map
 * size and use, and the node table (`popsync status --all`).
 *
 * Owns: the backup file format (a compacted LMDB data file, as written by
 * mdb_env_copyfd2 with MDB_CP_COMPACT), the `nodes` entries keyed
 * node(16)|0x01 (a packed NodeStatus holding the certificate's name, role
 * and org unit), and the read-modify-write of last-seen and cursor in the
 * node(16) entries (whose high-water mark store.c owns).
 *
 * Threads: like store.c, synchronous and meant for worker threads or for
 * offline subcommands; nothing here touches the loop.
 */
#include "store_int.h"
#include "log.h"
#include "msg.h"
#include "wire.pb-c.h"
#include "vec.h"

#include <lmdb.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- node table ------------------------------------------------------------ */

static int info_put(MDB_txn *txn, MDB_dbi dbi, const ps_node_info_t *n)
{
    Popsync__NodeStatus ns = POPSYNC__NODE_STATUS__INIT;
    uint8_t key[PS_ID_LEN + 1], buf[256];
    MDB_val k = {sizeof(key), key}, v;
    size_t len;
    int mrc;

    memcpy(key, n->node, PS_ID_LEN);
    key[PS_ID_LEN] = NODE_INFO_TAG;
    ns.name = (char *)n->name;
    ns.role = (char *)n->role;
    ns.orgunit = (char *)n->orgunit;
    len = protobuf_c_message_get_packed_size(&ns.base);
    if (len > sizeof(buf))
        return PS_ETOOBIG;
    protobuf_c_message_pack(&ns.base, buf);
    v.mv_size = len;
    v.mv_data = buf;
    mrc = mdb_put(txn, dbi, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

int ps_store_nodes_put(ps_store_t *st, const ps_node_info_t *v, size_t n)
{
    MDB_txn *txn = NULL;
    int mrc = 0, rc = PS_OK;

    if (n == 0)
        return PS_OK;
    if ((mrc = txn_begin_locked(st, 0, &txn)))
        return db_err(mrc);
    for (size_t i = 0; i < n; i++) {
        uint8_t val[24] = {0};
        MDB_val k = {PS_ID_LEN, (void *)v[i].node}, old;
        uint64_t seen = v[i].last_seen_ms;

        /* The high-water mark (bytes 0..8) belongs to the push path: keep it. */
        mrc = mdb_get(txn, st->nodes, &k, &old);
        if (mrc == 0 && old.mv_size >= 24) {
            memcpy(val, old.mv_data, 24);
            if (be64get(val + 8) > seen)
                seen = be64get(val + 8);
        } else if (mrc == 0 && old.mv_size >= 8) {
            memcpy(val, old.mv_data, 8);
        } else if (mrc && mrc != MDB_NOTFOUND) {
            goto out;
        }
        be64put(val + 8, seen);
        be64put(val + 16, v[i].cursor);
        old.mv_size = sizeof(val);
        old.mv_data = val;
        if ((mrc = mdb_put(txn, st->nodes, &k, &old, 0)))
            goto out;
        if ((rc = info_put(txn, st->nodes, &v[i])) || (rc = ps__store_bind_if_new(txn, st, &v[i])))
            goto out;
    }
    mrc = mdb_txn_commit(txn);
    txn = NULL;
out:
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&st->resize);
    if (mrc)
        rc = db_err(mrc);
    return rc;
}

/* One row of the status answer while it is gathered. */
typedef struct status_row {
    Popsync__NodeStatus ns;
    uint8_t node[PS_ID_LEN];
    char name[64], role[16], orgunit[16];
} status_row_t;

typedef struct status_tab {
    status_row_t *v;
    size_t n, cap;
} status_tab_t;

static status_row_t *row_get(status_tab_t *t, const uint8_t *node)
{
    status_row_t *r;
    for (size_t i = 0; i < t->n; i++)
        if (memcmp(t->v[i].node, node, PS_ID_LEN) == 0)
            return &t->v[i];
    if (PS_VEC_ROOM(t->v, t->n, t->cap, 32))
        return NULL;
    r = &t->v[t->n++];
    memset(r, 0, sizeof(*r));
    popsync__node_status__init(&r->ns);
    memcpy(r->node, node, PS_ID_LEN);
    return r;
}

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static int by_last_seen(const void *a, const void *b)
{
    const status_row_t *x = a, *y = b;
    if (x->ns.last_seen_ms != y->ns.last_seen_ms)
        return x->ns.last_seen_ms < y->ns.last_seen_ms ? 1 : -1;
    return memcmp(x->node, y->node, PS_ID_LEN);
}

/* A NodeStatusResult and what it points into (ps_store_msg_t.priv). */
typedef struct node_status_out {
    Popsync__NodeStatusResult res;
    Popsync__NodeStatus **rows;
    status_row_t *tab;
} node_status_out_t;

static void node_status_out_free(void *priv)
{
    node_status_out_t *so = priv;
    if (!so)
        return;
    free(so->rows);
    free(so->tab);
    free(so);
}

/* Every node of the `nodes` database: its mark and the certificate last seen. */
static int status_read_nodes(ps_store_t *st, MDB_txn *txn, status_tab_t *t)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int mrc;
    if ((mrc = mdb_cursor_open(txn, st->nodes, &cur)))
        return db_err(mrc);
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        status_row_t *r;
        Popsync__NodeStatus *ns = NULL;
        if (k.mv_size != PS_ID_LEN && !(k.mv_size == PS_ID_LEN + 1 && ((uint8_t *)k.mv_data)[PS_ID_LEN] == NODE_INFO_TAG))
            continue;
        if (!(r = row_get(t, k.mv_data))) {
            mdb_cursor_close(cur);
            return PS_ENOMEM;
        }
        if (k.mv_size == PS_ID_LEN) {
            if (v.mv_size >= 8)
                r->ns.high_water = be64get(v.mv_data);
            if (v.mv_size >= 24) {
                r->ns.last_seen_ms = be64get((uint8_t *)v.mv_data + 8);
                r->ns.cursor = be64get((uint8_t *)v.mv_data + 16);
            }
        } else if (ps_msg_unpack_desc(&popsync__node_status__descriptor, v.mv_data, v.mv_size,
                                      (ProtobufCMessage **)&ns) == PS_OK) {
            copy_str(r->name, sizeof(r->name), ns->name);
            copy_str(r->role, sizeof(r->role), ns->role);
            copy_str(r->orgunit, sizeof(r->orgunit), ns->orgunit);
            ps_msg_free(&ns->base);
        }
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? PS_OK : db_err(mrc);
}

/* Newer knowledge from the loop's table (not yet written, or newer). */
static int status_overlay(status_tab_t *t, const ps_node_info_t *live, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        status_row_t *r = row_get(t, live[i].node);
        if (!r)
            return PS_ENOMEM;
        r->ns.connected = 1;
        if (live[i].last_seen_ms >= r->ns.last_seen_ms) {
            r->ns.last_seen_ms = live[i].last_seen_ms;
            r->ns.cursor = live[i].cursor;
        }
        copy_str(r->name, sizeof(r->name), live[i].name);
        copy_str(r->role, sizeof(r->role), live[i].role);
        copy_str(r->orgunit, sizeof(r->orgunit), live[i].orgunit);
    }
    return PS_OK;
}

/* Open conflicts, in all and per node whose change lost (the tallies of
 * store_conflicts.c: a lookup per node, not a pass over the conflicts). */
static int status_conflicts(ps_store_t *st, MDB_txn *txn, status_tab_t *t, uint64_t *open_total)
{
    int rc = ps__conflicts_open_in(txn, st, open_total);
    for (size_t i = 0; rc == PS_OK && i < t->n; i++)
        rc = ps__conflicts_lost_in(txn, st, t->v[i].node, &t->v[i].ns.conflicts_open);
    return rc;
}

int ps_store_node_status(ps_store_t *st, const ps_node_info_t *live, size_t n, ps_store_msg_t *out)
{
    node_status_out_t *so = calloc(1, sizeof(*so));
    status_tab_t t = {NULL, 0, 0};
    MDB_txn *txn = NULL;
    uint64_t head = ps_store_head(st), open_total = 0;
    int mrc, rc;

    memset(out, 0, sizeof(*out));
    if (!so)
        return PS_ENOMEM;
    popsync__node_status_result__init(&so->res);
    if ((mrc = ro_begin(st, &txn))) {
        free(so);
        return db_err(mrc);
    }
    if ((rc = status_read_nodes(st, txn, &t)) == PS_OK && (rc = status_overlay(&t, live, n)) == PS_OK)
        rc = status_conflicts(st, txn, &t, &open_total);
    ro_end(st, txn);
    so->tab = t.v;
    if (rc == PS_OK && !(so->rows = calloc(t.n ? t.n : 1, sizeof(*so->rows))))
        rc = PS_ENOMEM;
    if (rc) {
        node_status_out_free(so);
        return rc;
    }
    qsort(t.v, t.n, sizeof(*t.v), by_last_seen);
    for (size_t i = 0; i < t.n; i++) {
        status_row_t *r = &t.v[i];
        r->ns.node.data = r->node;
        r->ns.node.len = PS_ID_LEN;
        r->ns.name = r->name;
        r->ns.role = r->role;
        r->ns.orgunit = r->orgunit;
        r->ns.behind = head > r->ns.cursor ? head - r->ns.cursor : 0;
        so->rows[i] = &r->ns;
    }
    so->res.n_nodes = t.n;
    so->res.nodes = so->rows;
    so->res.head = head;
    so->res.conflicts_open = open_total;
    so->res.generated_ms = ps_now_ms();
    out->msg = &so->res.base;
    out->release = node_status_out_free;
    out->priv = so;
    return PS_OK;
}

/* --- map size ------------------------------------------------------------------ */

int ps_store_env_info(ps_store_t *st, uint64_t *map_bytes, uint64_t *used_bytes)
{
    MDB_envinfo info;
    MDB_stat stat;
    int mrc;
    /* Shared with transactions: a map resize must not run meanwhile. */
    pthread_rwlock_rdlock(&st->resize);
    if (!(mrc = mdb_env_info(st->env, &info)))
        mrc = mdb_env_stat(st->env, &stat);
    pthread_rwlock_unlock(&st->resize);
    if (mrc)
        return db_err(mrc);
    *map_bytes = info.me_mapsize;
    *used_bytes = ((uint64_t)info.me_last_pgno + 1) * stat.ms_psize;
    return PS_OK;
}

/* --- backup and restore ----------------------------------------------------- */

/* fsyncs the directory holding path, so a rename into it is durable. */
static int sync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int fd, rc = PS_OK;
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return PS_EIO;
    if (fsync(fd) != 0)
        rc = PS_EIO;
    close(fd);
    return rc;
}

int ps_store_backup(const char *dir, const char *to, uint64_t *bytes, char *err, size_t errlen)
{
    MDB_env *env = NULL;
    char tmp[4096], data[4096];
    struct stat sb;
    int fd = -1, mrc, rc = PS_OK;

    *bytes = 0;
    snprintf(data, sizeof(data), "%s/data.mdb", dir);
    if (stat(data, &sb) != 0) {
        snprintf(err, errlen, "no store in %s: %s", dir, strerror(errno));
        return PS_ENOTFOUND;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", to) >= sizeof(tmp)) {
        snprintf(err, errlen, "path too long");
        return PS_EINVAL;
    }
    /* A separate environment in this process: LMDB shares the lock file
     * with the running server, and the copy reads from one read-only
     * transaction, so it is a consistent snapshot while pushes go on. */
    if ((mrc = mdb_env_create(&env)) || (mrc = mdb_env_set_maxdbs(env, 16)) ||
        (mrc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600))) {
        snprintf(err, errlen, "store %s: %s", dir, mdb_strerror(mrc));
        rc = db_err(mrc);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    /* The server may have grown the map since we opened: adopt its size. */
    for (int tries = 0; (mrc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT)) == MDB_MAP_RESIZED && tries < 8; tries++) {
        if (mdb_env_set_mapsize(env, 0) || ftruncate(fd, 0) || lseek(fd, 0, SEEK_SET) != 0)
            break;
    }
    if (mrc) {
        snprintf(err, errlen, "copying %s: %s", dir, mdb_strerror(mrc));
        rc = db_err(mrc);
        goto out;
    }
    if (fsync(fd) != 0 || fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    *bytes = (uint64_t)sb.st_size;
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, errlen, "writing %s: %s", tmp, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    fd = -1;
    if (rename(tmp, to) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, to, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    if (sync_parent(to) != PS_OK) {
        snprintf(err, errlen, "cannot sync the directory of %s", to);
        rc = PS_EIO;
    }
out:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    if (env)
        mdb_env_close(env);
    return rc;
}

/* Is dir missing (then made) or an empty directory? */
static int prepare_empty_dir(const char *dir, char *err, size_t errlen)
{
    DIR *d;
    struct dirent *e;
    int empty = 1;

    if (mkdir(dir, 0700) == 0)
        return PS_OK;
    if (errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return PS_EIO;
    }
    if (!(d = opendir(dir))) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return PS_EIO;
    }
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    closedir(d);
    if (!empty) {
        snprintf(err, errlen, "refusing to restore into %s: it is not empty", dir);
        return PS_EEXIST;
    }
    return PS_OK;
}

static int copy_file(const char *from, const char *to, char *err, size_t errlen)
{
    char buf[1 << 16];
    int in = -1, out = -1, rc = PS_OK;
    ssize_t n;

    if ((in = open(from, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot open %s: %s", from, strerror(errno));
        return PS_ENOTFOUND;
    }
    if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", to, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                snprintf(err, errlen, "writing %s: %s", to, strerror(errno));
                rc = PS_EIO;
                goto out;
            }
            off += w;
        }
    }
    if (n < 0) {
        snprintf(err, errlen, "reading %s: %s", from, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    if (fsync(out) != 0) {
        snprintf(err, errlen, "writing %s: %s", to, strerror(errno));
        rc = PS_EIO;
    }
out:
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0 && rc == PS_OK) {
        snprintf(err, errlen, "writing %s: %s", to, strerror(errno));
        rc = PS_EIO;
    }
    return rc;
}

int ps_store_restore(const char *from, const char *dir, uint64_t advance_head, uint64_t *head, char *err,
                     size_t errlen)
{
    char data[4096], tmp[4096], lock[4096];
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    MDB_val k, v;
    uint8_t hv[8];
    int mrc = 0, rc, copied = 0;

    *head = 0;
    snprintf(data, sizeof(data), "%s/data.mdb", dir);
    snprintf(tmp, sizeof(tmp), "%s/data.mdb.tmp", dir);
    snprintf(lock, sizeof(lock), "%s/lock.mdb", dir);
    if ((rc = prepare_empty_dir(dir, err, errlen)))
        return rc;
    if ((rc = copy_file(from, tmp, err, errlen)))
        goto out;
    if (rename(tmp, data) != 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    copied = 1;
    /* Open it as a store: proves the file is an LMDB environment holding a
     * popsync store, and advances the head in one durable transaction. */
    if ((mrc = mdb_env_create(&env)) || (mrc = mdb_env_set_maxdbs(env, 16)) ||
        (mrc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) || (mrc = mdb_txn_begin(env, NULL, 0, &txn)))
        goto fail;
    if ((mrc = mdb_dbi_open(txn, "meta", 0, &meta)))
        goto fail;
    k.mv_data = "server_node";
    k.mv_size = 11;
    if ((mrc = mdb_get(txn, meta, &k, &v)))
        goto fail;
    k.mv_data = "head";
    k.mv_size = 4;
    mrc = mdb_get(txn, meta, &k, &v);
    if (mrc == 0 && v.mv_size == 8)
        *head = be64get(v.mv_data);
    else if (mrc != MDB_NOTFOUND)
        goto fail;
    *head += advance_head;
    be64put(hv, *head);
    v.mv_size = 8;
    v.mv_data = hv;
    if ((mrc = mdb_put(txn, meta, &k, &v, 0)))
        goto fail;
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc)
        goto fail;
    rc = sync_parent(data);
    if (rc)
        snprintf(err, errlen, "cannot sync %s", dir);
    goto out;
fail:
    snprintf(err, errlen, "%s is not a popsync store backup: %s", from, mdb_strerror(mrc));
    rc = db_err(mrc);
out:
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    if (rc) {
        /* Leave the directory as it was found: empty. */
        unlink(tmp);
        if (copied) {
            unlink(data);
            unlink(lock);
        }
    }
    return rc;
}
