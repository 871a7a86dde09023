/* pullcache.c - PullBatch frames kept for the next reader (pullcache.h). */
#include "pullcache.h"
#include "err.h"
#include "frame.h"
#include "msg.h"
#include "reply.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PC_BUCKETS 1024

/* What decides a batch's bytes (zeroed before it is filled: compared whole). */
typedef struct pc_key {
    uint64_t cursor, head;
    uint32_t max_records, max_bytes;
    uint8_t role, compress;
    char unit[13];
} pc_key_t;

typedef struct pc_entry {
    struct pc_entry *next;
    pc_key_t key;
    ps_pull_end_t end;
    uint8_t flags;   /* the frame's flags: its body is zstd or plain */
    size_t len;
    uint8_t body[];  /* the frame's body */
} pc_entry_t;

struct ps_pullcache {
    pthread_mutex_t lock;
    size_t max;
    uint64_t head;   /* every entry was made at this head */
    ps_pullcache_stats_t stats;
    pc_entry_t *b[PC_BUCKETS];
};

int ps_pullcache_new(ps_pullcache_t **out, size_t max_bytes)
{
    ps_pullcache_t *pc;
    *out = NULL;
    if (max_bytes == 0)
        return PS_OK;
    if (!(pc = calloc(1, sizeof(*pc))))
        return PS_ENOMEM;
    pthread_mutex_init(&pc->lock, NULL);
    pc->max = max_bytes;
    *out = pc;
    return PS_OK;
}

static void clear(ps_pullcache_t *pc)
{
    for (size_t i = 0; i < PC_BUCKETS; i++)
        while (pc->b[i]) {
            pc_entry_t *e = pc->b[i];
            pc->b[i] = e->next;
            free(e);
        }
    __atomic_store_n(&pc->stats.bytes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pc->stats.entries, 0, __ATOMIC_RELAXED);
}

void ps_pullcache_free(ps_pullcache_t *pc)
{
    if (!pc)
        return;
    clear(pc);
    pthread_mutex_destroy(&pc->lock);
    free(pc);
}

/* Without the lock (the metrics page asks from the loop thread): each
 * figure is written under the lock and read as a relaxed atomic. */
void ps_pullcache_stats(ps_pullcache_t *pc, ps_pullcache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!pc)
        return;
    out->hits = __atomic_load_n(&pc->stats.hits, __ATOMIC_RELAXED);
    out->misses = __atomic_load_n(&pc->stats.misses, __ATOMIC_RELAXED);
    out->bytes = __atomic_load_n(&pc->stats.bytes, __ATOMIC_RELAXED);
    out->entries = __atomic_load_n(&pc->stats.entries, __ATOMIC_RELAXED);
}

static size_t bucket(const pc_key_t *k)
{
    uint64_t h = k->cursor * 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof(k->unit) && k->unit[i]; i++)
        h = (h ^ (uint8_t)k->unit[i]) * 0x100000001b3ull;
    h ^= (uint64_t)k->role << 8 ^ k->compress;
    return (size_t)(h >> 32) % PC_BUCKETS;
}

static pc_entry_t *find(ps_pullcache_t *pc, const pc_key_t *k)
{
    for (pc_entry_t *e = pc->b[bucket(k)]; e; e = e->next)
        if (memcmp(&e->key, k, sizeof(*k)) == 0)
            return e;
    return NULL;
}

/* The key of a Pull, or 0 when such a reader's batches are not kept (a
 * role that reads nothing: nobody else would ask for its batches). */
static int make_key(pc_key_t *k, const ps_peer_t *peer, uint64_t cursor, uint32_t max_records,
                    uint32_t max_bytes, int compress, uint64_t head)
{
    memset(k, 0, sizeof(*k));
    if (peer->role != PS_ROLE_ADMIN && peer->role != PS_ROLE_TOWNSHIP && peer->role != PS_ROLE_COLLECTOR)
        return 0;
    k->role = (uint8_t)peer->role;
    /* An admin reads everything whatever its unit. */
    if (peer->role != PS_ROLE_ADMIN)
        memcpy(k->unit, peer->orgunit, strnlen(peer->orgunit, 12));
    k->cursor = cursor;
    k->head = head;
    k->max_records = max_records;
    k->max_bytes = max_bytes;
    k->compress = compress != 0;
    return 1;
}

/* Appends the kept frame of k to out with this request id: 1 when there
 * was one. */
static int get(ps_pullcache_t *pc, const pc_key_t *k, uint32_t request_id, ps_buf_t *out, ps_pull_end_t *end,
               int *rc)
{
    pc_entry_t *e;
    int hit = 0;
    pthread_mutex_lock(&pc->lock);
    if (k->head == pc->head && (e = find(pc, k))) {
        if ((*rc = ps_buf_reserve(out, PS_FRAME_HDR + e->len)) == PS_OK) {
            uint8_t *f = ps_buf_tail(out);
            ps_frame_encode_header(f, PS_MSG_PULL_BATCH, e->flags, request_id, e->len);
            memcpy(f + PS_FRAME_HDR, e->body, e->len);
            ps_buf_commit(out, PS_FRAME_HDR + e->len);
            *end = e->end;
            __atomic_fetch_add(&pc->stats.hits, 1, __ATOMIC_RELAXED);
        }
        hit = 1;
    } else {
        __atomic_fetch_add(&pc->stats.misses, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&pc->lock);
    return hit;
}

/* Keeps the frame f (header and body) read for k.  A batch of an older
 * head is never kept; a newer head drops everything kept.  When full,
 * nothing more is kept until the head moves: a cold pull walks its range
 * in order, so the batches kept first are the ones the next cold pull
 * asks for first (evicting them for later ones would keep none useful). */
static void put(ps_pullcache_t *pc, pc_key_t *k, const uint8_t *f, size_t flen, const ps_pull_end_t *end)
{
    size_t len = flen - PS_FRAME_HDR;
    pc_entry_t *e;
    pthread_mutex_lock(&pc->lock);
    if (end->head > pc->head) {
        clear(pc);
        pc->head = end->head;
    }
    k->head = end->head;
    if (end->head == pc->head && !find(pc, k) && pc->stats.bytes + sizeof(*e) + len <= pc->max &&
        (e = malloc(sizeof(*e) + len))) {
        size_t bi = bucket(k);
        e->key = *k;
        e->end = *end;
        e->flags = f[5];
        e->len = len;
        memcpy(e->body, f + PS_FRAME_HDR, len);
        e->next = pc->b[bi];
        pc->b[bi] = e;
        __atomic_fetch_add(&pc->stats.bytes, sizeof(*e) + len, __ATOMIC_RELAXED);
        __atomic_fetch_add(&pc->stats.entries, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&pc->lock);
}

/* The batch's entries but the versions the reader holds (Pull.skip_own). */
typedef struct skip_filter {
    ps_reply_batch_t *b;
    const uint64_t *skip;
    size_t n, i;
} skip_filter_t;

static int entry_unless_held(void *arg, const ps_pull_item_t *it)
{
    skip_filter_t *f = arg;
    while (f->i < f->n && f->skip[f->i] < it->seq)
        f->i++; /* entries come in seq order */
    if (!it->gone_id && f->i < f->n && f->skip[f->i] == it->seq)
        return PS_OK;
    return ps_reply_batch_entry(f->b, it);
}

int ps_pull_cached(ps_pullcache_t *pc, ps_store_t *st, const ps_peer_t *peer, uint64_t cursor, uint32_t max_records,
                   uint32_t max_bytes, const uint64_t *skip, size_t nskip, int compress, uint32_t request_id,
                   ps_buf_t *out, ps_pull_end_t *end)
{
    ps_reply_batch_t b;
    skip_filter_t f = {&b, skip, nskip, 0};
    pc_key_t k;
    size_t start = ps_buf_size(out);
    int rc = PS_OK, keep;

    keep = pc && !nskip && make_key(&k, peer, cursor, max_records, max_bytes, compress, ps_store_head(st));
    if (keep && get(pc, &k, request_id, out, end, &rc))
        return rc;
    if ((rc = ps_reply_batch_begin(&b, out)))
        return rc;
    if (nskip)
        rc = ps_store_pull(st, peer, cursor, max_records, max_bytes, entry_unless_held, &f, end);
    else
        rc = ps_store_pull(st, peer, cursor, max_records, max_bytes, ps_reply_batch_entry, &b, end);
    if ((rc = ps_reply_batch_end(&b, rc, request_id, end)))
        return rc;
    /* Compressed here rather than after the handler (sync.c read_work, which
     * leaves a compressed frame alone) so the cache keeps the zstd body. */
    if (compress && (rc = ps_frame_compress(out, start)))
        return rc;
    if (keep)
        put(pc, &k, ps_buf_head(out) + start, ps_buf_size(out) - start, end);
    return PS_OK;
}
