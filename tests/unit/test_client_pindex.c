/* test_client_pindex.c - the cache's person index kept by difference and
 * built in bulk (client/cache_pindex.c, docs/data-model.md §7.9).
 *
 * Owns: checks on a temporary cache that the index, after pulled edits of
 * names, ID numbers and birth dates and deletes, holds exactly what a
 * rebuild from the records gives (both databases compared key by key) and
 * answers `find` accordingly; that filing a record whose terms did not
 * change writes nothing and an edit of one field writes only its entries
 * (the cache's operation counters).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache_fixture.h"
#include <lmdb.h>

#include "cache.h"
#include "crypto.h"
#include "err.h"
#include "ids.h"
#include "record_fmt.h"
#include "wire.pb-c.h"

#define UNIT "110105001001"
#define PINDEX_BULK_MIN_TEST 64 /* cache.c's PINDEX_BULK_MIN */

static char g_dir[256];

static ps_cache_t *make_cache(void)
{
    return ps_tcache_make(g_dir, sizeof(g_dir), "pindex");
}

static ps_cache_t *open_again(void)
{
    return ps_tcache_open(g_dir);
}

static void remove_cache(void)
{
    ps_tcache_remove(g_dir);
}

static void set_str(char **field, const char *s)
{
    if (*field != protobuf_c_empty_string)
        free(*field);
    *field = s ? strdup(s) : NULL;
}

/* A person record with a fresh id. */
static Popsync__Record *person(const char *name, const char *idn, const char *date)
{
    Popsync__Record *r = NULL;
    char err[256];
    assert_int_equal(ps_record_new(&r, POPSYNC__KIND__KIND_PERSON), PS_OK);
    r->id.data = malloc(PS_ID_LEN);
    r->id.len = PS_ID_LEN;
    assert_int_equal(ps_uuid7(r->id.data), PS_OK);
    assert_int_equal(ps_record_set(r, "orgunit", UNIT, err, sizeof(err)), PS_OK);
    set_str(&r->person->name, name);
    set_str(&r->person->id_number, idn);
    set_str(&r->person->birth_date, date);
    return r;
}

/* Applies recs as one pulled batch. */
static void pull(ps_cache_t *c, Popsync__Record **recs, size_t n)
{
    static uint64_t cursor;
    Popsync__PullBatch pb = POPSYNC__PULL_BATCH__INIT;
    Popsync__FeedEntry *fe = calloc(n, sizeof(*fe)), **fp = calloc(n, sizeof(*fp));
    assert_non_null(fe);
    assert_non_null(fp);
    for (size_t i = 0; i < n; i++) {
        popsync__feed_entry__init(&fe[i]);
        fe[i].seq = ++cursor;
        fe[i].record = recs[i];
        fp[i] = &fe[i];
    }
    pb.entries = fp;
    pb.n_entries = n;
    pb.cursor = cursor;
    assert_int_equal(ps_cache_apply_pull(c, &pb), PS_OK);
    free(fp);
    free(fe);
}

static size_t found(ps_cache_t *c, const char *text)
{
    Popsync__Record **out = NULL;
    size_t n = 0;
    assert_int_equal(ps_cache_find(c, text, 50, &out, &n), PS_OK);
    for (size_t i = 0; i < n; i++)
        protobuf_c_message_free_unpacked(&out[i]->base, NULL);
    free(out);
    return n;
}

static uint64_t index_writes(ps_cache_t *c)
{
    ps_cache_ops_t ops;
    ps_cache_op_counts(c, &ops);
    return ops.pindex_writes;
}

/* The cache closed: SHA-256 over every key and value of both index
 * databases, in order, and how many entries "pindex" holds. */
static void index_digest(uint8_t out[32], size_t *entries)
{
    static const char *dbs[] = {"pindex", "pindex_by_id"};
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t len = 0, cap = 1 << 16;
    uint8_t *all = malloc(cap);
    assert_non_null(all);
    *entries = 0;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, g_dir, MDB_RDONLY | MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    for (size_t d = 0; d < 2; d++) {
        assert_int_equal(mdb_dbi_open(txn, dbs[d], 0, &dbi), 0);
        assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
        while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
            while (len + k.mv_size + v.mv_size + 2 > cap)
                assert_non_null(all = realloc(all, cap *= 2));
            all[len++] = (uint8_t)k.mv_size;
            memcpy(all + len, k.mv_data, k.mv_size);
            len += k.mv_size;
            all[len++] = (uint8_t)v.mv_size;
            memcpy(all + len, v.mv_data, v.mv_size);
            len += v.mv_size;
            *entries += d == 0;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    assert_int_equal(ps_sha256(all, len, out), PS_OK);
    free(all);
}

/* Writes meta key (a big-endian u64) with LMDB directly, the cache closed. */
static void meta_set(const char *key, uint64_t x)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t b[8];
    MDB_val k = {strlen(key), (void *)key}, v = {8, b};
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(x >> (56 - 8 * i));
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, g_dir, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* The index as kept through edits equals the index rebuilt from the
 * records (a PS_PINDEX_VERSION change), key for key. */
static void assert_same_as_rebuild(void)
{
    uint8_t kept[32], rebuilt[32];
    size_t nk, nr;
    index_digest(kept, &nk);
    meta_set("pindex_v", 0);
    ps_cache_close(open_again()); /* rebuilds */
    index_digest(rebuilt, &nr);
    assert_int_equal(nk, nr);
    assert_memory_equal(kept, rebuilt, 32);
}

/* Names padded the way clerks line up two-character names ("张　三"), or
 * with spaces at their ends, or a minority name's middle dot typed as a
 * full stop, as an older version stored them and a pull brings them: found
 * by the name typed without them, by its initials and by name and birth
 * date; "John Smith" keeps its space. */
static void test_padded_names_found(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__Record *r[4];
    (void)state;

    r[0] = person("张\xE3\x80\x80三", "110105198503102017", "1985-03-10");
    r[1] = person(" 李 四 ", "110105199001013027", "1990-01-01");
    r[2] = person("John Smith", "110105197512311123", "1975-12-31");
    r[3] = person("阿依古丽.买买提", "110105198806061234", "1988-06-06");
    pull(c, r, 4);
    assert_int_equal(found(c, "阿依古丽·买买提"), 1);
    assert_int_equal(found(c, "阿依古丽•买买提"), 1);
    assert_int_equal(found(c, "张三"), 1);
    assert_int_equal(found(c, "张 三"), 1);
    assert_int_equal(found(c, "zs"), 1);
    assert_int_equal(found(c, "张三 1985/3/10"), 1);
    assert_int_equal(found(c, "李四"), 1);
    assert_int_equal(found(c, "李"), 1);
    assert_int_equal(found(c, "ls"), 1);
    assert_int_equal(found(c, "John Smith"), 1);
    assert_int_equal(found(c, "JohnSmith"), 0);
    for (size_t i = 0; i < 4; i++)
        protobuf_c_message_free_unpacked(&r[i]->base, NULL);
    ps_cache_close(c);
    assert_same_as_rebuild();
    remove_cache();
}

static void test_edits_match_rebuild(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__Record *p[6];
    (void)state;
    p[0] = person("张三", "11010519491231002X", "1949-12-31");
    p[1] = person("李四", "110105195001010011", "1950-01-01");
    p[2] = person("王五", "110105195102020022", "1951-02-02");
    p[3] = person("赵六", "110105195203030033", "1952-03-03");
    p[4] = person("孙七", "110105195304040044", "1953-04-04");
    p[5] = person("周八", "110105195405050055", "1954-05-05");
    pull(c, p, 6);
    assert_int_equal(found(c, "张三"), 1);
    assert_int_equal(found(c, "0044"), 1);

    set_str(&p[0]->person->name, "张三丰");                /* name: N, P, B, S, T change */
    set_str(&p[1]->person->id_number, "110105195001010099"); /* ID number: I, L */
    set_str(&p[2]->person->birth_date, "1951-03-03");        /* birth date: B only */
    p[3]->deleted = 1;                                       /* unfiled */
    set_str(&p[5]->person->id_number, NULL);                 /* its I and L terms go */
    pull(c, p, 6);                                           /* p[4] unchanged */

    assert_int_equal(found(c, "张三丰"), 1);
    assert_int_equal(found(c, "张三 1949-12-31"), 0);
    assert_int_equal(found(c, "张三丰 1949-12-31"), 1);
    assert_int_equal(found(c, "110105195001010011"), 0);
    assert_int_equal(found(c, "110105195001010099"), 1);
    assert_int_equal(found(c, "0099"), 1);
    assert_int_equal(found(c, "0011"), 0);
    assert_int_equal(found(c, "王五 1951-02-02"), 0);
    assert_int_equal(found(c, "王五 1951-03-03"), 1);
    assert_int_equal(found(c, "赵六"), 0);
    assert_int_equal(found(c, "孙七"), 1);
    assert_int_equal(found(c, "0055"), 0);
    assert_int_equal(found(c, "周八"), 1);
    ps_cache_close(c);
    assert_same_as_rebuild();
    for (size_t i = 0; i < 6; i++)
        protobuf_c_message_free_unpacked(&p[i]->base, NULL);
    remove_cache();
}

static void test_unchanged_writes_nothing(void **state)
{
    ps_cache_t *c = make_cache();
    Popsync__Record *p[3];
    uint64_t w0, w1, w2;
    (void)state;
    p[0] = person("张三", "11010519491231002X", "1949-12-31");
    p[1] = person("李四", "110105195001010011", "1950-01-01");
    p[2] = person("王五", "110105195102020022", "1951-02-02");
    pull(c, p, 3);
    w0 = index_writes(c);
    assert_true(w0 >= 24); /* 7 entries (I, L, L, N, P, B, S) and a by_id row each */
    pull(c, p, 3);        /* the same records again */
    w1 = index_writes(c);
    assert_int_equal(w1, w0);
    /* One field: the B entry out, the new one in, and the by_id row. */
    set_str(&p[2]->person->birth_date, "1951-03-03");
    pull(c, p, 3);
    w2 = index_writes(c);
    assert_int_equal(w2 - w1, 3);
    assert_int_equal(found(c, "王五 1951-03-03"), 1);
    ps_cache_close(c);
    assert_same_as_rebuild();
    for (size_t i = 0; i < 3; i++)
        protobuf_c_message_free_unpacked(&p[i]->base, NULL);
    remove_cache();
}

/* n persons with distinct names, ID numbers and dates (names of 3
 * characters: P prefixes and pinyin T prefixes too). */
static Popsync__Record **persons(size_t n)
{
    static const char *fam[] = {"张", "李", "王", "赵", "孙", "周", "吴", "郑"};
    static const char *given[] = {"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋"};
    Popsync__Record **p = calloc(n, sizeof(*p));
    char name[32], idn[32], date[16];
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "%s%s%s%s", fam[i % 8], given[(i / 8) % 10], given[(i / 80) % 10],
                 i < 800 ? "" : given[(i / 800) % 10]);
        snprintf(idn, sizeof(idn), "1101051960%08zu", i);
        snprintf(date, sizeof(date), "19%02zu-%02zu-%02zu", 50 + i % 50, 1 + i % 12, 1 + i % 28);
        p[i] = person(name, idn, date);
    }
    return p;
}

static void free_persons(Popsync__Record **p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        protobuf_c_message_free_unpacked(&p[i]->base, NULL);
    free(p);
}

static void pull_in_batches(ps_cache_t *c, Popsync__Record **p, size_t n, size_t per)
{
    for (size_t i = 0; i < n; i += per)
        pull(c, p + i, n - i < per ? n - i : per);
}

/* After a per-record filing, the index rebuilt in bulk from by_id (the
 * pending mark set by hand) is the same, key for key. */
static void assert_bulk_same_as_kept(void)
{
    uint8_t kept[32], built[32];
    size_t nk, nb;
    ps_cache_t *c;
    index_digest(kept, &nk);
    meta_set("pindex_pending", 1);
    c = open_again();
    assert_int_equal(found(c, "0000000000000007"), 0); /* a lookup builds it first */
    ps_cache_close(c);
    index_digest(built, &nb);
    assert_true(nk > 0);
    assert_int_equal(nk, nb);
    assert_memory_equal(kept, built, 32);
}

#define NP 400
#define NP_MANY 6000

/* Small batches (under the bulk threshold) file record by record; the bulk
 * build from the same by_id rows gives the same index, from memory and
 * through merged runs of 16 entries. */
static void test_bulk_build_equals_per_record(void **state)
{
    /* Enough entries that buckets of one tag and first hash byte hold more
     * than the 16 the build's insertion sort takes: its quicksort runs. */
    Popsync__Record **p = persons(NP_MANY);
    ps_cache_t *c = make_cache();
    (void)state;
    pull_in_batches(c, p, NP_MANY, 50);
    assert_int_equal(found(c, "110105196000000123"), 1);
    ps_cache_close(c);
    assert_bulk_same_as_kept();
    setenv("POPSYNC_TEST_PINDEX_RUN_ENTRIES", "16", 1);
    assert_bulk_same_as_kept();
    unsetenv("POPSYNC_TEST_PINDEX_RUN_ENTRIES");
    free_persons(p, NP_MANY);
    remove_cache();
}

/* A cold pull in batches of 100 writes by_id rows only (one write per
 * person), edits and deletes of the same pull included; the sync's end
 * (or the first lookup) builds the entries; the result equals a rebuild. */
static void test_cold_pull_builds_in_bulk(void **state)
{
    Popsync__Record **p = persons(NP);
    ps_cache_t *c = make_cache();
    (void)state;
    pull_in_batches(c, p, NP, 100);
    assert_int_equal(index_writes(c), NP);
    set_str(&p[5]->person->name, "欧阳修");
    p[6]->deleted = 1;
    pull(c, p + 5, 2 + PINDEX_BULK_MIN_TEST); /* still pending: by_id only */
    assert_int_equal(index_writes(c), NP + 2);
    assert_int_equal(ps_cache_pindex_finish(c), PS_OK);
    assert_int_equal(found(c, "欧阳修"), 1);
    assert_int_equal(found(c, "oyx"), 1);
    assert_int_equal(found(c, "110105196000000006"), 0);
    assert_int_equal(found(c, "110105196000000399"), 1);
    /* Built: a later batch files record by record again. */
    set_str(&p[7]->person->birth_date, "1999-09-09");
    pull(c, p + 7, 1);
    assert_int_equal(index_writes(c), NP + 2 + 3);
    ps_cache_close(c);
    assert_same_as_rebuild();
    free_persons(p, NP);
    remove_cache();
}

/* A process killed in the middle of a build (after its first run) leaves
 * the mark: the next lookup builds the index, and it is complete. */
static void test_killed_build_is_redone(void **state)
{
    Popsync__Record **p = persons(NP);
    ps_cache_t *c = make_cache();
    uint8_t want[32], got[32];
    size_t nw, ng;
    pid_t pid;
    int st = 0;
    (void)state;
    pull_in_batches(c, p, NP, 50); /* filed record by record: the reference */
    ps_cache_close(c);
    index_digest(want, &nw);
    meta_set("pindex_pending", 1);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("POPSYNC_TEST_PINDEX_RUN_ENTRIES", "16", 1);
        setenv("POPSYNC_TEST_PINDEX_ABORT_AFTER_RUNS", "1", 1);
        c = open_again();
        ps_cache_pindex_finish(c);
        _exit(0); /* not reached when the hook works */
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    c = open_again();
    assert_int_equal(found(c, "110105196000000123"), 1);
    assert_int_equal(found(c, "张伟伟"), 1);
    ps_cache_close(c);
    index_digest(got, &ng);
    assert_int_equal(nw, ng);
    assert_memory_equal(want, got, 32);
    free_persons(p, NP);
    remove_cache();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_padded_names_found),
        cmocka_unit_test(test_edits_match_rebuild),
        cmocka_unit_test(test_unchanged_writes_nothing),
        cmocka_unit_test(test_bulk_build_equals_per_record),
        cmocka_unit_test(test_cold_pull_builds_in_bulk),
        cmocka_unit_test(test_killed_build_is_redone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
