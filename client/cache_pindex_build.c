/* cache_pindex_build.c - the person index's bulk build (ps_pindex_build,
 * cache_pindex.h; docs/data-model.md §7.9, docs/performance.md §o).
 *
 * A cold pull files each record's by_id row only; this writes "pindex"
 * afterwards from those rows.  Its keys are HMACs, random: filed record by
 * record each is a put on a page of its own (59,000 durable puts/s here
 * against 0.99 M in key order).  Here they are collected, sorted and
 * appended in key order (MDB_APPEND), in bounded memory: when they do not
 * fit, sorted runs go to unnamed temporary files and are merged.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "cache_pindex.h"

#include "db_err.h"
#include "err.h"
#include "testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENT PS_PINDEX_ENTRY_KEY
#define TERM PS_PINDEX_TERM_KEY
#define RUN_ENTRIES ((size_t)1 << 20) /* 32 MB of entries + 32 MB to sort them: the 64 MB bound */
#define MIN_BLOCK ((size_t)1 << 17)  /* 4 MB */
#define NBUCKETS 65536                /* the first two bytes: tag and the hash's first byte */

typedef struct run {
    int fd;
    off_t off, end; /* bytes read so far, and the run's size */
    uint8_t *buf;
    size_t bufcap, have, pos; /* entries buf holds, holds now, the next one */
} run_t;

typedef struct build {
    uint8_t *a, *b;   /* entries collected; the sort's second buffer (a + cap: one block) */
    size_t n, cap;    /* entries in a; its room (a and b both) */
    size_t block;     /* entries a and b hold together (the merge's read buffers) */
    size_t *count;    /* NBUCKETS + 1 */
    run_t *runs;
    size_t nruns, runcap;
    const char *dir;
    uint64_t abort_after; /* tests: abort() once this many runs are written */
    MDB_cursor *out;
    uint8_t last[ENT]; /* the last entry appended: a repeat is skipped */
    int any;
} build_t;

/* memcmp order of two entries, as four big-endian words: inlined, as a
 * sort makes ~10 of these per entry (qsort's callback and memcmp were 11%
 * of a cold pull's client CPU). */
static int ent_cmp(const uint8_t *x, const uint8_t *y)
{
    for (int i = 0; i < ENT; i += 8) {
        uint64_t a, b;
        memcpy(&a, x + i, 8);
        memcpy(&b, y + i, 8);
        if (a != b)
            return __builtin_bswap64(a) < __builtin_bswap64(b) ? -1 : 1;
    }
    return 0;
}

static void ent_swap(uint8_t *x, uint8_t *y)
{
    uint8_t t[ENT];
    memcpy(t, x, ENT);
    memcpy(x, y, ENT);
    memcpy(y, t, ENT);
}

/* Sorts n entries at p: insertion sort when few (a bucket holds ~100 at
 * most of the time), else quicksort on the median of three, recursing into
 * the smaller side (depth at most log2 n). */
static void ent_sort(uint8_t *p, size_t n)
{
    while (n > 16) {
        uint8_t *mid = p + n / 2 * ENT, *last = p + (n - 1) * ENT;
        size_t i = 0, j = n - 1;
        if (ent_cmp(mid, p) < 0)
            ent_swap(mid, p);
        if (ent_cmp(last, mid) < 0) {
            ent_swap(last, mid);
            if (ent_cmp(mid, p) < 0)
                ent_swap(mid, p);
        }
        ent_swap(mid, p); /* the pivot at p[0] */
        for (;;) {
            do
                i++;
            while (i < n && ent_cmp(p + i * ENT, p) < 0);
            while (ent_cmp(p + j * ENT, p) > 0)
                j--;
            if (i >= j)
                break;
            ent_swap(p + i * ENT, p + j * ENT);
            j--;
        }
        ent_swap(p, p + j * ENT);
        if (j < n - j - 1) {
            ent_sort(p, j);
            p += (j + 1) * ENT;
            n -= j + 1;
        } else {
            ent_sort(p + (j + 1) * ENT, n - j - 1);
            n = j;
        }
    }
    for (size_t i = 1; i < n; i++) {
        uint8_t t[ENT];
        size_t j = i;
        if (ent_cmp(p + (i - 1) * ENT, p + i * ENT) <= 0)
            continue;
        memcpy(t, p + i * ENT, ENT);
        for (; j > 0 && ent_cmp(p + (j - 1) * ENT, t) > 0; j--)
            memcpy(p + j * ENT, p + (j - 1) * ENT, ENT);
        memcpy(p + j * ENT, t, ENT);
    }
}

static size_t bucket(const uint8_t *e)
{
    return (size_t)e[0] << 8 | e[1];
}

/* Sorts the n entries of a; returns the buffer (a or b) holding them.  A
 * stable counting sort on the first two bytes, then each bucket by
 * comparison unless it is in order already: the entries of one term (the
 * kind terms, K, hold a whole kind) arrive in id order, as by_id is read. */
static uint8_t *sort_entries(build_t *bd)
{
    size_t *count = bd->count, start = 0;

    memset(count, 0, (NBUCKETS + 1) * sizeof(*count));
    for (size_t i = 0; i < bd->n; i++)
        count[bucket(bd->a + i * ENT) + 1]++;
    for (size_t k = 0; k < NBUCKETS; k++)
        count[k + 1] += count[k];
    for (size_t i = 0; i < bd->n; i++)
        memcpy(bd->b + count[bucket(bd->a + i * ENT)]++ * ENT, bd->a + i * ENT, ENT);
    /* count[k] is now the end of bucket k. */
    for (size_t k = 0; k < NBUCKETS; k++) {
        size_t end = count[k], j;
        uint8_t *p = bd->b + start * ENT;
        for (j = start + 1; j < end && ent_cmp(p + (j - start - 1) * ENT, p + (j - start) * ENT) <= 0; j++)
            ;
        if (j < end)
            ent_sort(p, end - start);
        start = end;
    }
    return bd->b;
}

/* An unnamed file in dir (gone when closed, or when the process dies). */
static int tmpfile_in(const char *dir)
{
    char path[4096];
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    /* A file system without O_TMPFILE: a named file, unlinked at once. */
    snprintf(path, sizeof(path), "%s/pindex-run-XXXXXX", dir);
    if ((fd = mkostemp(path, O_CLOEXEC)) >= 0)
        unlink(path);
    return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return PS_EIO;
        p += w;
        n -= (size_t)w;
    }
    return PS_OK;
}

/* Sorts what is collected and writes it as a run. */
static int spill(build_t *bd)
{
    run_t *r;
    uint8_t *sorted = sort_entries(bd);
    int rc;

    if (bd->nruns == bd->runcap) {
        size_t cap = bd->runcap ? bd->runcap * 2 : 8;
        run_t *nr = realloc(bd->runs, cap * sizeof(*nr));
        if (!nr)
            return PS_ENOMEM;
        bd->runs = nr;
        bd->runcap = cap;
    }
    r = &bd->runs[bd->nruns];
    memset(r, 0, sizeof(*r));
    if ((r->fd = tmpfile_in(bd->dir)) < 0)
        return PS_EIO;
    bd->nruns++;
    if ((rc = write_all(r->fd, sorted, bd->n * ENT)))
        return rc;
    r->end = (off_t)(bd->n * ENT);
    bd->n = 0;
    if (bd->abort_after && bd->nruns >= bd->abort_after)
        abort(); /* tests: a crash in the middle of a build */
    return PS_OK;
}

/* Appends one entry in key order (a repeat of the last is skipped: a
 * record filed twice under one term, as a name's two readings can give). */
static int append(build_t *bd, const uint8_t *e)
{
    MDB_val k = {ENT, (void *)e}, v = {0, NULL};
    int mrc;

    if (bd->any && ent_cmp(bd->last, e) == 0)
        return PS_OK;
    memcpy(bd->last, e, ENT);
    bd->any = 1;
    mrc = mdb_cursor_put(bd->out, &k, &v, MDB_APPEND);
    return mrc ? ps_db_err(mrc) : PS_OK;
}

/* Collects every entry by_id lists, spilling runs when full. */
static int collect_all(build_t *bd, ps_pindex_t *px, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_cursor_open(txn, px->by_id, &cur)))
        return ps_db_err(mrc);
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size != 16)
            continue;
        for (size_t i = 0; rc == PS_OK && i < v.mv_size / TERM; i++) {
            if (bd->n == bd->cap && (rc = spill(bd)))
                break;
            memcpy(bd->a + bd->n * ENT, (const uint8_t *)v.mv_data + i * TERM, TERM);
            memcpy(bd->a + bd->n * ENT + TERM, k.mv_data, 16);
            bd->n++;
        }
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    return mrc == MDB_NOTFOUND ? PS_OK : ps_db_err(mrc);
}

/* The next entry of run r, or NULL at its end. */
static const uint8_t *run_peek(run_t *r)
{
    if (r->pos == r->have) {
        size_t want = r->bufcap * ENT;
        ssize_t got;
        if (r->off >= r->end)
            return NULL;
        if ((off_t)want > r->end - r->off)
            want = (size_t)(r->end - r->off);
        do
            got = pread(r->fd, r->buf, want, r->off);
        while (got < 0 && errno == EINTR);
        if (got <= 0 || (size_t)got % ENT)
            return NULL;
        r->off += got;
        r->have = (size_t)got / ENT;
        r->pos = 0;
    }
    return r->buf + r->pos * ENT;
}

/* Restores the heap (of run indices, by each run's next entry) below i. */
static void sift(build_t *bd, size_t *heap, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i, t;
        if (l < n && ent_cmp(run_peek(&bd->runs[heap[l]]), run_peek(&bd->runs[heap[m]])) < 0)
            m = l;
        if (l + 1 < n && ent_cmp(run_peek(&bd->runs[heap[l + 1]]), run_peek(&bd->runs[heap[m]])) < 0)
            m = l + 1;
        if (m == i)
            return;
        t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
}

/* Merges the runs into the index in key order. */
static int merge(build_t *bd)
{
    size_t *heap = calloc(bd->nruns, sizeof(*heap)), n = 0;
    int rc = PS_OK;

    if (!heap)
        return PS_ENOMEM;
    for (size_t i = 0; i < bd->nruns; i++) {
        /* The collect buffers are free now: each run reads through its
         * share of them (1/k of 64 MB). */
        bd->runs[i].bufcap = bd->block / bd->nruns;
        bd->runs[i].buf = bd->a + i * bd->runs[i].bufcap * ENT;
        if (!bd->runs[i].bufcap) {
            free(heap);
            return PS_ENOMEM;
        }
        if (run_peek(&bd->runs[i]))
            heap[n++] = i;
    }
    for (size_t i = n; i-- > 0;)
        sift(bd, heap, n, i);
    while (rc == PS_OK && n > 0) {
        run_t *r = &bd->runs[heap[0]];
        rc = append(bd, run_peek(r));
        r->pos++;
        if (!run_peek(r)) {
            if (r->off < r->end)
                rc = rc ? rc : PS_EIO; /* a short read */
            heap[0] = heap[--n];
        }
        sift(bd, heap, n, 0);
    }
    free(heap);
    return rc;
}

static void build_free(build_t *bd)
{
    for (size_t i = 0; i < bd->nruns; i++)
        close(bd->runs[i].fd);
    free(bd->runs);
    free(bd->a);
    free(bd->count);
}

int ps_pindex_build(ps_pindex_t *px, MDB_txn *txn, const char *dir)
{
    build_t bd;
    uint64_t hook;
    int mrc, rc;

    memset(&bd, 0, sizeof(bd));
    bd.dir = dir;
    bd.cap = RUN_ENTRIES;
    if (ps_test_hook_u64("POPSYNC_TEST_PINDEX_RUN_ENTRIES", &hook) == 1 && hook >= 16 && hook < RUN_ENTRIES)
        bd.cap = (size_t)hook;
    if (ps_test_hook_u64("POPSYNC_TEST_PINDEX_ABORT_AFTER_RUNS", &hook) == 1)
        bd.abort_after = hook;
    /* A test's small runs still get read buffers of some size. */
    bd.block = 2 * bd.cap > MIN_BLOCK ? 2 * bd.cap : MIN_BLOCK;
    bd.a = malloc(bd.block * ENT);
    bd.count = malloc((NBUCKETS + 1) * sizeof(*bd.count));
    if (!bd.a || !bd.count) {
        rc = PS_ENOMEM;
        goto out;
    }
    bd.b = bd.a + bd.cap * ENT;
    if ((mrc = mdb_drop(txn, px->terms, 0)) || (mrc = mdb_cursor_open(txn, px->terms, &bd.out))) {
        rc = ps_db_err(mrc);
        goto out;
    }
    if ((rc = collect_all(&bd, px, txn)))
        goto out;
    if (bd.nruns == 0) {
        /* It all fitted: appended from memory, no file. */
        uint8_t *sorted = sort_entries(&bd);
        for (size_t i = 0; rc == PS_OK && i < bd.n; i++)
            rc = append(&bd, sorted + i * ENT);
        goto out;
    }
    if ((bd.n > 0 && (rc = spill(&bd))))
        goto out;
    rc = merge(&bd);
out:
    if (bd.out)
        mdb_cursor_close(bd.out);
    build_free(&bd);
    return rc;
}
