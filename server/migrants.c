/* migrants.c - the consumer of migration cases from other districts
 * (migrants.h, docs/upstream.md §7).
 *
 * One round: fetch up to BATCH messages of popsync.*.migration, or of
 * popsync.*._to.<us> (waiting at most FETCH_MS), keep those of other
 * districts that concern us, write
 * them with ps_store_foreign_apply in one durable transaction, then ack
 * every message of the round.  A failed write acks nothing (the messages
 * come back after ACK_WAIT_S and are written again); a message applied
 * twice is found SAME or OLDER and changes nothing.
 */
#include "migrants.h"
#include "natsconn.h"
#include "store_migrants.h"
#include "err.h"
#include "ids.h"
#include "log.h"
#include "scope.h"
#include "testhooks.h"

#include <mbedtls/base64.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 64
#define FETCH_MS 1000
#define ACK_WAIT_S 10
#define BACKOFF_MAX_MS 5000
#define SUBJECT_ALL "popsync.*.migration"

struct ps_migrants {
    ps_store_t *st;
    ps_upstream_opts_t o;
    const ps_orgunits_t *province;
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ps_natsconn_t conn;   /* the connection and JetStream context (natsconn.h) */
    char subject[64];     /* every district's migrations, or the copies addressed to us */
    char durable[64];
    natsSubscription *sub;
    int batch;          /* messages per fetch (BATCH; a test hook lowers it) */
    uint64_t pause_ms;  /* test hook: a pause after each written batch */
    _Atomic uint64_t received, stored, merged, dropped, refused, failures;
    atomic_int connected;
};

/* One message's part of a round. */
typedef struct kept {
    uint8_t summary[PS_MIGRANT_SUMMARY_BYTES];
} kept_t;

static int nap(ps_migrants_t *m, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    if (!atomic_load(&m->stop))
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    pthread_mutex_unlock(&m->mu);
    return atomic_load(&m->stop);
}

static void drop_sub(ps_migrants_t *m)
{
    if (m->sub)
        natsSubscription_Destroy(m->sub);
    m->sub = NULL;
    ps_natsconn_drop_js(&m->conn);
    atomic_store(&m->connected, 0);
}

/* Connects and binds the durable consumer (created when missing). */
static int open_sub(ps_migrants_t *m)
{
    jsSubOptions so;
    jsErrCode jerr = 0;
    char err[512];
    natsStatus s;

    if (ps_natsconn_reconnected(&m->conn))
        drop_sub(m);
    if (m->sub)
        return PS_OK;
    if (ps_natsconn_open(&m->conn, err, sizeof(err)) != PS_OK) {
        if (*err)
            PS_WARN("migrants", "%s", err);
        return PS_EIO;
    }
    jsSubOptions_Init(&so);
    so.Stream = PS_UPSTREAM_STREAM;
    so.Config.Durable = m->durable;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = (int64_t)ACK_WAIT_S * 1000000000LL;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.MaxAckPending = 1000;
    if ((s = js_PullSubscribe(&m->sub, m->conn.js, m->subject, m->durable, NULL, &so, &jerr)) != NATS_OK) {
        /* The stream may not exist yet (the publisher creates it) or its
         * cluster may be electing a leader: asked again after a back-off. */
        PS_DEBUG("migrants", "consumer %s: %s (%d)", m->durable, natsStatus_GetText(s), (int)jerr);
        m->sub = NULL;
        return PS_EIO;
    }
    atomic_store(&m->connected, 1);
    PS_INFO("migrants", "consuming %s as %s", m->subject, m->durable);
    return PS_OK;
}

static const char *hdr(natsMsg *msg, const char *name)
{
    const char *v = NULL;
    return natsMsgHeader_Get(msg, name, &v) == NATS_OK && v ? v : "";
}

/* Does a message of another district concern us: a case for one of our
 * units, an answer on one of ours, or a case we hold? */
static int concerns_us(ps_migrants_t *m, natsMsg *msg)
{
    const char *unit = hdr(msg, "Popsync-Unit"), *other = hdr(msg, "Popsync-Other"), *id = hdr(msg, "Popsync-Id");
    uint8_t rid[16];
    if (ps_foreign_in_district(unit, m->o.district) || ps_foreign_in_district(other, m->o.district))
        return 1;
    if (strlen(id) != 32)
        return 0;
    for (int i = 0; i < 16; i++) {
        int hi = ps_hexval(id[2 * i]), lo = ps_hexval(id[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        rid[i] = (uint8_t)(hi << 4 | lo);
    }
    return ps_store_has_record(m->st, rid) == 1;
}

/* The province's file, when configured, must place the case's unit in its
 * sender's district (a district sends only its own cases). */
static int sender_placed(ps_migrants_t *m, const char *unit, const char *district)
{
    if (!m->province || !ps_orgunits_find(m->province, unit))
        return !m->province;
    return ps_orgunits_within(m->province, unit, district) || ps_foreign_in_district(unit, m->o.district);
}

/* Fills item i from msg; returns 0 when the message is not for us. */
static int take(ps_migrants_t *m, natsMsg *msg, ps_foreign_item_t *it, kept_t *k)
{
    const char *district = hdr(msg, "Popsync-District"), *sum = hdr(msg, "Popsync-Migrant");
    const char *lineage = hdr(msg, "Popsync-Lineage");
    size_t olen = 0;

    if (!ps_orgunit_valid(district) || strcmp(district, m->o.district) == 0)
        return 0; /* ours, or not a record of a district */
    atomic_fetch_add(&m->received, 1);
    if (!concerns_us(m, msg))
        return 0;
    /* NATS lets a district publish only under popsync.<its code>.>: a
     * Popsync-District other than the subject's is not believed. */
    if (!ps_upstream_sent_by(natsMsg_GetSubject(msg), district)) {
        PS_WARN("migrants", "a case from district %s on another district's subject: ignored", district);
        atomic_fetch_add(&m->refused, 1);
        return 0;
    }
    if (!sender_placed(m, hdr(msg, "Popsync-Unit"), district)) {
        PS_WARN("migrants", "a case of unit %s sent by district %s, which the province's org units do not place "
                "there: ignored", hdr(msg, "Popsync-Unit"), district);
        atomic_fetch_add(&m->refused, 1);
        return 0;
    }
    memset(it, 0, sizeof(*it));
    it->data = (const uint8_t *)natsMsg_GetData(msg);
    it->len = (size_t)natsMsg_GetDataLength(msg);
    snprintf(it->district, sizeof(it->district), "%s", district);
    it->lineage = *lineage ? lineage : NULL;
    if (*sum && mbedtls_base64_decode(k->summary, sizeof(k->summary), &olen, (const unsigned char *)sum,
                                      strlen(sum)) == 0 && olen) {
        it->summary = k->summary;
        it->summary_len = olen;
    }
    return 1;
}

static void count(ps_migrants_t *m, const ps_foreign_item_t *it)
{
    switch (it->outcome) {
    case PS_FOREIGN_MERGED:
        atomic_fetch_add(&m->merged, 1);
        /* fall through */
    case PS_FOREIGN_STORED:
        atomic_fetch_add(&m->stored, 1);
        PS_DEBUG("migrants", "case from district %s written at seq %llu", it->district,
                 (unsigned long long)it->seq);
        break;
    case PS_FOREIGN_SAME:
    case PS_FOREIGN_OLDER: atomic_fetch_add(&m->dropped, 1); break;
    case PS_FOREIGN_REFUSED:
        atomic_fetch_add(&m->refused, 1);
        PS_WARN("migrants", "a case version from district %s refused: %s", it->district, it->why);
        break;
    default: break;
    }
}

/* One fetch, write and ack; 1: messages handled, 0: none, <0: failure. */
static int round_once(ps_migrants_t *m)
{
    static ps_foreign_item_t items[BATCH];
    static kept_t kept[BATCH];
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    size_t n = 0;
    natsStatus s = natsSubscription_Fetch(&list, m->sub, m->batch, FETCH_MS, &jerr);
    int rc = PS_OK;

    if (s == NATS_TIMEOUT)
        return 0;
    if (s != NATS_OK) {
        PS_DEBUG("migrants", "fetch: %s (%d)", natsStatus_GetText(s), (int)jerr);
        return PS_EIO;
    }
    for (int i = 0; i < list.Count && n < BATCH; i++)
        if (take(m, list.Msgs[i], &items[n], &kept[n]))
            n++;
    if (n && (rc = ps_store_foreign_apply(m->st, m->o.district, items, n)) != PS_OK)
        PS_WARN("migrants", "cannot write %zu received case versions: %s (they come again)", n, ps_strerror(rc));
    for (size_t i = 0; rc == PS_OK && i < n; i++)
        count(m, &items[i]);
    /* Acknowledged only after the durable commit; on failure they come back. */
    for (int i = 0; i < list.Count; i++)
        if (rc == PS_OK)
            natsMsg_Ack(list.Msgs[i], NULL);
        else
            natsMsg_Nak(list.Msgs[i], NULL);
    natsMsgList_Destroy(&list);
    if (m->pause_ms && n)
        nap(m, m->pause_ms);
    return rc == PS_OK ? 1 : rc;
}

static void *thread_main(void *arg)
{
    ps_migrants_t *m = arg;
    uint64_t backoff = 0;
    while (!atomic_load(&m->stop)) {
        int rc = open_sub(m);
        if (rc == PS_OK)
            rc = round_once(m);
        if (rc >= 0) {
            backoff = 0;
            continue;
        }
        atomic_fetch_add(&m->failures, 1);
        if (m->sub && rc != PS_EFULL && rc != PS_ENOSPC)
            drop_sub(m); /* bind again: the consumer's leader may have moved */
        backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2) : 250;
        nap(m, backoff);
    }
    return NULL;
}

int ps_migrants_start(ps_migrants_t **out, ps_store_t *st, const ps_upstream_opts_t *o,
                      const ps_orgunits_t *province, char *err, size_t errlen)
{
    ps_migrants_t *m;
    uint64_t hook = 0;
    int rc;
    *out = NULL;
    if ((rc = ps_upstream_check(o, err, errlen)))
        return rc;
    if (!(m = calloc(1, sizeof(*m))))
        return PS_ENOMEM;
    m->st = st;
    m->o = *o;
    m->province = province;
    ps_natsconn_init(&m->conn, "migrants", &m->o, NULL, 1);
    /* Addressed: a consumer of its own (another name), since a durable
     * consumer keeps the filter it was made with (docs/upstream.md §7). */
    if (ps_upstream_addressed(o)) {
        snprintf(m->subject, sizeof(m->subject), "popsync.*._to.%s", o->district);
        snprintf(m->durable, sizeof(m->durable), "popsync-migrants-to-%s", o->district);
    } else {
        snprintf(m->subject, sizeof(m->subject), "%s", SUBJECT_ALL);
        snprintf(m->durable, sizeof(m->durable), "popsync-migrants-%s", o->district);
    }
    m->batch = BATCH;
    /* t_upstream_migrants kills popsyncd mid-consume: small, slow batches. */
    if (ps_test_hook_u64("POPSYNC_TEST_MIGRANTS_BATCH", &hook) == 1 && hook >= 1 && hook <= BATCH)
        m->batch = (int)hook;
    if (ps_test_hook_u64("POPSYNC_TEST_MIGRANTS_PAUSE_MS", &hook) == 1 && hook <= 10000)
        m->pause_ms = hook;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    if (pthread_create(&m->th, NULL, thread_main, m) != 0) {
        snprintf(err, errlen, "cannot start the migrant consumer thread");
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->cv);
        free(m);
        return PS_ENOMEM;
    }
    *out = m;
    return PS_OK;
}

void ps_migrants_request_stop(ps_migrants_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    atomic_store(&m->stop, 1);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

void ps_migrants_join(ps_migrants_t *m)
{
    if (!m)
        return;
    ps_migrants_request_stop(m);
    pthread_join(m->th, NULL);
    drop_sub(m);
    ps_natsconn_close(&m->conn);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}

void ps_migrants_stats(ps_migrants_t *m, ps_migrants_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!m)
        return;
    out->received = atomic_load(&m->received);
    out->stored = atomic_load(&m->stored);
    out->merged = atomic_load(&m->merged);
    out->dropped = atomic_load(&m->dropped);
    out->refused = atomic_load(&m->refused);
    out->failures = atomic_load(&m->failures);
    out->connected = atomic_load(&m->connected);
}
