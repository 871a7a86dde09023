/* hspool.c - TLS handshakes off the event loop (issue 15).
 *
 * Owns: the handshake threads, their queue and the async handle that brings
 * finished steps back to the loop.  A full mutual-TLS handshake costs the
 * server a few milliseconds of public-key work (ECDHE, its signature, the
 * client's chain and CertificateVerify); on the loop thread 1,000 of them
 * stalled every established connection for seconds.  Here the loop hands a
 * stream's step to a thread (ps_stream_set_offload), the thread runs
 * ps_tls_handshake on the stream's engine, and the loop resumes the stream
 * with the result.  The stream does not touch its engine meanwhile.
 *
 * The threads run under SCHED_BATCH: they get their fair share of the CPU,
 * but a loop thread that wakes up (a request, a reply to write) preempts
 * them rather than waiting out their time slice.  A CRL reload
 * swaps the list the threads verify against, so it takes the write side of
 * conf_lock and every step the read side.
 *
 * Threads: ps_hspool_* are called on the loop thread only.
 */
#define _GNU_SOURCE /* SCHED_BATCH */
#include "server.h"
#include "err.h"
#include "log.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#define HS_MAX_THREADS 16

typedef struct hs_item {
    ps_stream_t *s;
    int rc;
    struct hs_item *next;
} hs_item_t;

struct ps_hspool {
    pthread_t th[HS_MAX_THREADS];
    int nth;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_rwlock_t conf_lock;
    hs_item_t *q_head, *q_tail; /* waiting steps */
    hs_item_t *done;            /* finished steps (LIFO; the loop reverses) */
    int stop;
    uv_async_t async;
    uint64_t queued;            /* loop side: steps in flight */
};

static void *worker(void *arg)
{
    ps_hspool_t *p = arg;
    struct sched_param sp = {0};
    /* Best effort: without it the threads are ordinary ones. */
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        hs_item_t *it;
        while (!p->q_head && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop)
            break;
        it = p->q_head;
        p->q_head = it->next;
        if (!p->q_head)
            p->q_tail = NULL;
        pthread_mutex_unlock(&p->mu);
        pthread_rwlock_rdlock(&p->conf_lock);
        it->rc = ps_tls_handshake(it->s->tls);
        pthread_rwlock_unlock(&p->conf_lock);
        pthread_mutex_lock(&p->mu);
        it->next = p->done;
        p->done = it;
        uv_async_send(&p->async);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Loop thread: resume every stream whose step finished, oldest first. */
static void on_async(uv_async_t *a)
{
    ps_hspool_t *p = a->data;
    hs_item_t *list, *rev = NULL;

    pthread_mutex_lock(&p->mu);
    list = p->done;
    p->done = NULL;
    pthread_mutex_unlock(&p->mu);
    while (list) {
        hs_item_t *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        hs_item_t *n = rev->next;
        p->queued--;
        ps_stream_handshake_done(rev->s, rev->rc);
        free(rev);
        rev = n;
    }
}

static int submit(ps_stream_t *s, void *arg)
{
    ps_hspool_t *p = arg;
    hs_item_t *it = calloc(1, sizeof(*it));
    if (!it)
        return PS_ENOMEM;
    it->s = s;
    pthread_mutex_lock(&p->mu);
    if (p->q_tail)
        p->q_tail->next = it;
    else
        p->q_head = it;
    p->q_tail = it;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    p->queued++;
    return PS_OK;
}

int ps_hspool_start(ps_server_t *srv, char *err, size_t errlen)
{
    ps_hspool_t *p;
    int n = (int)srv->opts.handshake_threads;

    if (n <= 0)
        return PS_OK; /* handshakes on the loop (benchmarks compare) */
    if (n > HS_MAX_THREADS)
        n = HS_MAX_THREADS;
    p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "handshake threads: out of memory");
        return PS_ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_rwlock_init(&p->conf_lock, NULL);
    uv_async_init(srv->loop, &p->async, on_async);
    p->async.data = p;
    uv_unref((uv_handle_t *)&p->async); /* connections keep the loop alive, not this */
    for (; p->nth < n; p->nth++)
        if (pthread_create(&p->th[p->nth], NULL, worker, p) != 0)
            break;
    if (p->nth == 0) {
        snprintf(err, errlen, "cannot start handshake threads");
        uv_close((uv_handle_t *)&p->async, (uv_close_cb)free);
        return PS_EIO;
    }
    srv->hspool = p;
    PS_INFO("main", "%d handshake thread%s", p->nth, p->nth == 1 ? "" : "s");
    return PS_OK;
}

void ps_hspool_attach(ps_server_t *srv, ps_stream_t *s)
{
    if (srv->hspool)
        ps_stream_set_offload(s, submit, srv->hspool);
}

uint64_t ps_hspool_pending(const ps_server_t *srv)
{
    return srv->hspool ? srv->hspool->queued : 0;
}

void ps_hspool_conf_lock(ps_server_t *srv)
{
    if (srv->hspool)
        pthread_rwlock_wrlock(&srv->hspool->conf_lock);
}

void ps_hspool_conf_unlock(ps_server_t *srv)
{
    if (srv->hspool)
        pthread_rwlock_unlock(&srv->hspool->conf_lock);
}

static void on_async_closed(uv_handle_t *h)
{
    ps_hspool_t *p = h->data;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_rwlock_destroy(&p->conf_lock);
    free(p);
}

void ps_hspool_stop(ps_server_t *srv)
{
    ps_hspool_t *p = srv->hspool;
    hs_item_t *it;

    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    /* Steps never run or never collected belong to streams already closed
     * (shutdown waits for every connection); free the items only. */
    while ((it = p->q_head)) {
        p->q_head = it->next;
        free(it);
    }
    while ((it = p->done)) {
        p->done = it->next;
        free(it);
    }
    srv->hspool = NULL;
    uv_close((uv_handle_t *)&p->async, on_async_closed);
}
