/* ps_lmdbpoke.c - damages an LMDB store on purpose, for tamper tests.
 *
 * usage: ps_lmdbpoke DIR DB list
 *        ps_lmdbpoke DIR DB delete KEYHEX
 *        ps_lmdbpoke DIR DB flip KEYHEX OFFSET     (inverts one byte of the value)
 *        ps_lmdbpoke DIR DB drop                   (empties the database)
 *        ps_lmdbpoke DIR DB swap KEYHEX KEYHEX     (exchanges two values: a reordering)
 */
#include <lmdb.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unhex(const char *s, unsigned char *out, size_t cap, size_t *n)
{
    size_t len = strlen(s);
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    *n = len / 2;
    return 0;
}

int main(int argc, char **argv)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k, v;
    unsigned char key[256];
    size_t klen = 0;
    int rc;

    if (argc < 4) {
        fprintf(stderr, "usage: ps_lmdbpoke DIR DB list|delete KEYHEX|flip KEYHEX OFFSET\n");
        return 2;
    }
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16) || mdb_env_set_mapsize(env, (size_t)8 << 30) ||
        (rc = mdb_env_open(env, argv[1], 0, 0600))) {
        fprintf(stderr, "cannot open %s\n", argv[1]);
        return 1;
    }
    if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_dbi_open(txn, argv[2], 0, &dbi)) {
        fprintf(stderr, "no database %s\n", argv[2]);
        return 1;
    }
    if (!strcmp(argv[3], "list")) {
        MDB_cursor *cur;
        mdb_cursor_open(txn, dbi, &cur);
        while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
            for (size_t i = 0; i < k.mv_size; i++)
                printf("%02x", ((unsigned char *)k.mv_data)[i]);
            printf(" %zu\n", v.mv_size);
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return 0;
    }
    if (!strcmp(argv[3], "drop")) {
        rc = mdb_drop(txn, dbi, 0) || mdb_txn_commit(txn);
        mdb_env_close(env);
        return rc ? 1 : 0;
    }
    if (argc < 5 || unhex(argv[4], key, sizeof(key), &klen)) {
        fprintf(stderr, "bad key\n");
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return 2;
    }
    k.mv_size = klen;
    k.mv_data = key;
    if (!strcmp(argv[3], "delete")) {
        rc = mdb_del(txn, dbi, &k, NULL);
    } else if (!strcmp(argv[3], "flip") && argc == 6) {
        size_t off = strtoul(argv[5], NULL, 10);
        unsigned char *copy;
        rc = mdb_get(txn, dbi, &k, &v);
        if (rc == 0 && off < v.mv_size) {
            copy = malloc(v.mv_size);
            memcpy(copy, v.mv_data, v.mv_size);
            copy[off] ^= 0xff;
            v.mv_data = copy;
            rc = mdb_put(txn, dbi, &k, &v, 0);
            free(copy);
        } else if (rc == 0) {
            rc = -1;
        }
    } else if (!strcmp(argv[3], "swap") && argc == 6) {
        unsigned char key2[256], *copy;
        size_t klen2 = 0;
        MDB_val k2, v2;
        if (unhex(argv[5], key2, sizeof(key2), &klen2)) {
            fprintf(stderr, "bad key\n");
            mdb_txn_abort(txn);
            mdb_env_close(env);
            return 2;
        }
        k2.mv_size = klen2;
        k2.mv_data = key2;
        rc = mdb_get(txn, dbi, &k, &v);
        if (rc == 0)
            rc = mdb_get(txn, dbi, &k2, &v2);
        if (rc == 0 && (copy = malloc(v.mv_size + 1))) {
            memcpy(copy, v.mv_data, v.mv_size);
            v.mv_data = copy;
            if ((rc = mdb_put(txn, dbi, &k, &v2, 0)) == 0)
                rc = mdb_put(txn, dbi, &k2, &v, 0);
            free(copy);
        }
    } else {
        fprintf(stderr, "unknown action\n");
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return 2;
    }
    if (rc) {
        fprintf(stderr, "failed: %s\n", rc > 0 || rc < -1 ? mdb_strerror(rc) : "offset past the value");
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return 1;
    }
    mdb_txn_commit(txn);
    mdb_env_close(env);
    return 0;
}
