/* verify.c - compare the cache with the server and repair what differs. */
#include "verify.h"
#include "digest.h"
#include "err.h"
#include "fetch.h"
#include "msgtab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct verify {
    ps_link_t *l;
    ps_verify_stats_t *st;
    uint8_t want[PS_VERIFY_BUCKETS]; /* buckets that differed and were listed */
    ps_idlist_t fix;                 /* ids to fetch or drop */
    ps_verify_done_fn done;
    void *arg;
} verify_t;

static void verify_end(verify_t *v, int status)
{
    ps_verify_done_fn done = v->done;
    ps_link_t *l = v->l;
    void *arg = v->arg;
    ps_idlist_free(&v->fix);
    free(v);
    if (done)
        done(l, status, arg);
}

/* A step failed: the session fails with what (its first failure's text
 * is kept) and so does the verify. */
static int verify_fail(verify_t *v, int rc, const char *what)
{
    ps_session_fail(v->l->s, rc, "%s", what);
    verify_end(v, ps_session_status(v->l->s));
    return rc;
}

static int on_buckets(ps_session_t *s, int status, ProtobufCMessage **m, void *arg);

static int on_digests(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    verify_t *v = arg;
    Popsync__VerifyDigests *d;
    uint64_t mine[PS_VERIFY_BUCKETS];
    uint32_t counts[PS_VERIFY_BUCKETS], diff[PS_VERIFY_BUCKETS];
    Popsync__VerifyBucketRequest req = POPSYNC__VERIFY_BUCKET_REQUEST__INIT;
    size_t nd = 0;
    int64_t id;
    int rc;

    if (status) {
        verify_end(v, status);
        return status;
    }
    d = (Popsync__VerifyDigests *)*m;
    if (d->n_digests != PS_VERIFY_BUCKETS || d->n_counts != PS_VERIFY_BUCKETS) {
        ps_session_fail(s, PS_EPROTO, "server sent %zu verify buckets, expected %u", d->n_digests,
                        PS_VERIFY_BUCKETS);
        verify_end(v, PS_EPROTO);
        return PS_EPROTO;
    }
    if ((rc = ps_cache_verify_digests(v->l->cache, mine, counts))) {
        char what[128];
        snprintf(what, sizeof(what), "reading the cache: %s", ps_strerror(rc));
        return verify_fail(v, rc, what);
    }
    memset(v->want, 0, sizeof(v->want));
    for (uint32_t b = 0; b < PS_VERIFY_BUCKETS; b++)
        if (mine[b] != d->digests[b] || counts[b] != d->counts[b]) {
            diff[nd++] = b;
            v->want[b] = 1;
        }
    v->st->buckets_differed = nd;
    if (nd == 0) {
        verify_end(v, PS_OK);
        return PS_OK;
    }
    req.n_buckets = nd;
    req.buckets = diff;
    id = ps_session_request(s, PS_MSG_VERIFY_BUCKET_REQUEST, &req.base, 0, on_buckets, v);
    return id < 0 ? verify_fail(v, (int)id, "cannot send VerifyBucketRequest") : PS_OK;
}

typedef struct vcmp {
    Popsync__VerifyBucketList *server;
    uint8_t *seen;       /* per server item: the local cache holds it, same revision */
    verify_t *v;
    int rc;
} vcmp_t;

static int cmp_item(const void *a, const void *b)
{
    const Popsync__VerifyItem *x = *(Popsync__VerifyItem *const *)a, *y = *(Popsync__VerifyItem *const *)b;
    return memcmp(x->id.data, y->id.data, 16);
}

static int local_item(const uint8_t *id, uint64_t gen, uint64_t hlc, int deleted, void *arg)
{
    vcmp_t *c = arg;
    Popsync__VerifyItem key, *kp = &key, **hit;
    key.id.data = (uint8_t *)id;
    key.id.len = 16;
    hit = bsearch(&kp, c->server->items, c->server->n_items, sizeof(*c->server->items), cmp_item);
    if (!hit) {
        /* We hold a record the server does not show us: drop it. */
        c->rc = ps_idlist_add(&c->v->fix, id);
        return c->rc;
    }
    if ((*hit)->gen == gen && (*hit)->hlc == hlc && (*hit)->deleted == (deleted != 0))
        c->seen[hit - c->server->items] = 1;
    return 0;
}

/* The list holds 16-byte ids of the buckets we asked for only. */
static const char *bad_list(const verify_t *v, const Popsync__VerifyBucketList *l)
{
    for (size_t i = 0; i < l->n_items; i++)
        if (l->items[i]->id.len != 16)
            return "malformed VerifyBucketList";
    for (size_t i = 0; i < l->n_items; i++)
        if (!v->want[ps_verify_bucket(l->items[i]->id.data)])
            return "VerifyBucketList holds a record of a bucket we did not ask for";
    return NULL;
}

static void fix_done(ps_link_t *l, int status, uint64_t got, uint64_t asked, void *arg)
{
    verify_t *v = arg;
    (void)l;
    v->st->repaired += got;
    v->st->dropped += asked - got;
    verify_end(v, status);
}

static int on_buckets(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    verify_t *v = arg;
    Popsync__VerifyBucketList *l;
    const char *bad;
    vcmp_t c;
    int rc;

    if (status) {
        verify_end(v, status);
        return status;
    }
    l = (Popsync__VerifyBucketList *)*m;
    if ((bad = bad_list(v, l)))
        return verify_fail(v, PS_EPROTO, bad);
    qsort(l->items, l->n_items, sizeof(*l->items), cmp_item);
    memset(&c, 0, sizeof(c));
    c.server = l;
    c.v = v;
    if (!(c.seen = calloc(l->n_items ? l->n_items : 1, 1)))
        return verify_fail(v, PS_ENOMEM, "out of memory");
    rc = ps_cache_verify_items(v->l->cache, v->want, local_item, &c);
    for (size_t i = 0; rc == PS_OK && c.rc == PS_OK && i < l->n_items; i++)
        if (!c.seen[i])
            c.rc = ps_idlist_add(&v->fix, l->items[i]->id.data);
    free(c.seen);
    (void)s;
    if (rc || c.rc) {
        char what[128];
        snprintf(what, sizeof(what), "comparing with the server: %s", ps_strerror(rc ? rc : c.rc));
        return verify_fail(v, rc ? rc : c.rc, what);
    }
    if ((rc = ps_fetch_start(v->l, &v->fix, fix_done, v)))
        return verify_fail(v, rc, "cannot send FetchRequest");
    return PS_OK;
}

static void begin(ps_session_t *s, int status, void *arg)
{
    verify_t *v = arg;
    Popsync__VerifyRequest vr = POPSYNC__VERIFY_REQUEST__INIT;
    int64_t id;
    if (status) {
        verify_end(v, status);
        return;
    }
    id = ps_session_request(s, PS_MSG_VERIFY_REQUEST, &vr.base, 0, on_digests, v);
    if (id < 0)
        verify_fail(v, (int)id, "cannot send VerifyRequest");
}

int ps_verify_start(ps_link_t *l, ps_verify_stats_t *stats, ps_verify_done_fn done, void *arg)
{
    verify_t *v = calloc(1, sizeof(*v));
    int rc;
    memset(stats, 0, sizeof(*stats));
    if (!v)
        return PS_ENOMEM;
    v->l = l;
    v->st = stats;
    v->done = done;
    v->arg = arg;
    if ((rc = ps_session_when_ready(l->s, begin, v)))
        free(v);
    return rc;
}
