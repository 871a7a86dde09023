/* upstream.c - the publisher thread of the upward stream (upstream.h,
 * docs/upstream.md).
 *
 * One round: read up to max_in_flight feed entries after the mark in one
 * read transaction (copied into NATS messages), publish them all
 * asynchronously, wait for their acks (bounded), then move the mark over
 * the longest run of acknowledged entries from the start of the round and
 * write it durably.  Anything after a missing ack is read and sent again
 * next round under the same message id, which JetStream's duplicate window
 * drops if the first copy did land.  When idle the thread looks at the
 * store's head every POLL_MS (no hook in the commit path).
 */
#include "upstream.h"
#include "natsconn.h"
#include "store_upstream.h"
#include "err.h"
#include "ids.h"
#include "log.h"
#include "orgunit.h"
#include "scope.h"
#include "records.pb-c.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record_fmt.h"
#include "store_migrants.h"

#include <mbedtls/base64.h>

#define POLL_MS 100
#define ACK_WAIT_MS 10000
#define BEHIND_EVERY_MS 2000
#define BACKOFF_MAX_MS 5000
/* A feed entry's messages at most: its own and its addressed copies. */
#define MSGS_PER_ENTRY (1 + PS_FEED_MAX_TO)

struct ps_upstream {
    ps_store_t *st;
    ps_upstream_opts_t o;
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu; /* guards cv (stop waits) and the acks of the round */
    pthread_cond_t cv;
    ps_natsconn_t conn;   /* the connection and JetStream context (natsconn.h) */
    int stream_ok;
    /* the round in flight: n feed entries, nm messages (each entry's own,
     * then its addressed copies, docs/upstream.md §7) */
    natsMsg **msgs;
    size_t nm;
    uint64_t *seqs;       /* per entry */
    uint8_t *need, *got;  /* per entry: its messages, and how many are acknowledged */
    uint8_t *refused;     /* per entry: JetStream refused one of them */
    size_t n;
    /* node marks (docs/upstream.md "Node marks") */
    ps_buf_t snap;
    uint64_t snap_head, snap_taken_head;
    int snap_pending;
    uint64_t through;     /* every feed entry up to here is in the stream */
    /* stats (read by any thread) */
    _Atomic uint64_t mark, behind, oldest_ms, published_total, failures;
    atomic_int connected;
};

/* One subject token (NATS appends ".<unique id>"): no dots, no wildcards. */
static int inbox_prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
              p[i] == '_' || p[i] == '-'))
            return 0;
    return 1;
}

int ps_upstream_check(const ps_upstream_opts_t *o, char *err, size_t errlen)
{
    if (!o->urls || !*o->urls) {
        snprintf(err, errlen, "[upstream] urls is empty");
        return PS_EINVAL;
    }
    if (!o->district || !ps_orgunit_valid(o->district)) {
        snprintf(err, errlen, "[upstream] district must be this district's 12-digit org-unit code");
        return PS_EINVAL;
    }
    if ((o->cert_file && !o->key_file) || (!o->cert_file && o->key_file)) {
        snprintf(err, errlen, "[upstream] cert and key go together");
        return PS_EINVAL;
    }
    if (o->cert_file && !o->ca_file) {
        snprintf(err, errlen, "[upstream] a client certificate needs ca (TLS)");
        return PS_EINVAL;
    }
    if (o->migrants && strcmp(o->migrants, PS_UPSTREAM_MIGRANTS_ALL) != 0 && !ps_upstream_addressed(o)) {
        snprintf(err, errlen, "[upstream] migrants must be all or addressed (docs/upstream.md §7)");
        return PS_EINVAL;
    }
    if (o->inbox_prefix && !inbox_prefix_ok(o->inbox_prefix)) {
        snprintf(err, errlen, "[upstream] inbox_prefix must be 1-64 letters, digits, '_' or '-'");
        return PS_EINVAL;
    }
    /* Copies are addressed to PPPPPP000000, the district of a unit by its code. */
    if (ps_upstream_addressed(o) && strcmp(o->district + 6, "000000") != 0) {
        snprintf(err, errlen, "[upstream] migrants = addressed needs a district code ending in 000000");
        return PS_EINVAL;
    }
    return PS_OK;
}

int ps_upstream_addressed(const ps_upstream_opts_t *o)
{
    return o->migrants && strcmp(o->migrants, PS_UPSTREAM_MIGRANTS_ADDRESSED) == 0;
}

int ps_upstream_sent_by(const char *subject, const char *district)
{
    size_t l = district ? strlen(district) : 0;
    return subject && l && strncmp(subject, "popsync.", 8) == 0 && strncmp(subject + 8, district, l) == 0 &&
           subject[8 + l] == '.';
}

int ps_upstream_is_copy(const char *subject)
{
    const char *d = subject && strncmp(subject, "popsync.", 8) == 0 ? strchr(subject + 8, '.') : NULL;
    return d && strncmp(d, "._to.", 5) == 0;
}

/* Waits ms or until stop is asked; returns 1 when stopping. */
static int nap(ps_upstream_t *u, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&u->mu);
    if (!atomic_load(&u->stop))
        pthread_cond_timedwait(&u->cv, &u->mu, &ts);
    pthread_mutex_unlock(&u->mu);
    return atomic_load(&u->stop);
}

/* An ack (or a refusal) of one message of the round, on a NATS thread. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    ps_upstream_t *u = closure;
    const char *v = NULL;
    (void)js;
    if (natsMsgHeader_Get(msg, "Popsync-Seq", &v) == NATS_OK && v) {
        uint64_t seq = strtoull(v, NULL, 10);
        size_t lo = 0, hi;
        pthread_mutex_lock(&u->mu);
        hi = u->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (u->seqs[mid] < seq)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < u->n && u->seqs[lo] == seq) {
            if (pa)
                u->got[lo]++;
            else
                u->refused[lo] = 1;
        }
        pthread_mutex_unlock(&u->mu);
    }
    if (pae)
        PS_DEBUG("upstream", "publish refused: %s (%d)", natsStatus_GetText(pae->Err), (int)pae->ErrCode);
    natsMsg_Destroy(msg);
}

static const char *kind_subject(int kind)
{
    const char *k = ps_kind_name(kind);
    return k ? k : "unknown";
}

/* A migration shared with another district (docs/upstream.md §7): its id
 * and lineage, and, sent to another district's unit, the migrant summary
 * that district's other place sees (it does not have the person). */
static natsStatus migration_headers(ps_upstream_t *u, const ps_feed_item_t *it, natsMsg *m)
{
    char idhex[33], b64[1400];
    size_t olen = 0;
    natsStatus s;
    ps_hex(it->id, 16, idhex);
    s = natsMsgHeader_Set(m, "Popsync-Id", idhex);
    if (s == NATS_OK && it->lineage[0])
        s = natsMsgHeader_Set(m, "Popsync-Lineage", it->lineage);
    if (s == NATS_OK && it->migrant_len && !ps_foreign_in_district(it->other, u->o.district) &&
        mbedtls_base64_encode((unsigned char *)b64, sizeof(b64), &olen, it->migrant, it->migrant_len) == 0)
        s = natsMsgHeader_Set(m, "Popsync-Migrant", b64);
    return s;
}

/* Builds the message of one feed entry (docs/upstream.md "Messages"), or,
 * with to, its copy addressed to district to (§7 "Addressed copies"): the
 * same message on popsync.<us>._to.<to> with its own message id. */
static int make_msg(ps_upstream_t *u, const ps_feed_item_t *it, const char *to, natsMsg **out)
{
    char subj[96], id[64], seq[24];
    natsStatus s;
    const char *kind = it->exit ? "_exit" : kind_subject(it->kind);

    if (to) {
        snprintf(subj, sizeof(subj), "popsync.%s._to.%s", u->o.district, to);
        snprintf(id, sizeof(id), "%s:%llu:%s", u->o.district, (unsigned long long)it->seq, to);
    } else {
        snprintf(subj, sizeof(subj), "popsync.%s.%s", u->o.district, kind);
        snprintf(id, sizeof(id), "%s:%llu", u->o.district, (unsigned long long)it->seq);
    }
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)it->seq);
    s = natsMsg_Create(out, subj, NULL, (const char *)it->packed, (int)it->len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(*out, "Nats-Msg-Id", id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(*out, "Popsync-District", u->o.district);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(*out, "Popsync-Seq", seq);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(*out, "Popsync-Kind", kind);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(*out, "Popsync-Unit", it->unit);
    if (s == NATS_OK && it->other[0])
        s = natsMsgHeader_Set(*out, "Popsync-Other", it->other);
    if (s == NATS_OK && it->deleted)
        s = natsMsgHeader_Set(*out, "Popsync-Deleted", "1");
    if (s == NATS_OK && !it->exit && it->kind == POPSYNC__KIND__KIND_MIGRATION && it->other[0])
        s = migration_headers(u, it, *out);
    if (s != NATS_OK) {
        natsMsg_Destroy(*out);
        *out = NULL;
        return PS_ENOMEM;
    }
    return PS_OK;
}

/* Adds an entry's message and its copies for the other districts it is
 * addressed to (a shared case: its unit's and its other places' districts). */
static int collect(const ps_feed_item_t *it, void *arg)
{
    ps_upstream_t *u = arg;
    size_t first = u->nm;
    int rc = make_msg(u, it, NULL, &u->msgs[u->nm]);

    if (rc)
        return rc;
    u->nm++;
    for (size_t i = 0; i < it->nto && i < PS_FEED_MAX_TO; i++) {
        if (strcmp(it->to[i], u->o.district) == 0)
            continue;
        if ((rc = make_msg(u, it, it->to[i], &u->msgs[u->nm])))
            return rc; /* round_clear frees the round's messages */
        u->nm++;
    }
    u->seqs[u->n] = it->seq;
    u->need[u->n] = (uint8_t)(u->nm - first);
    u->got[u->n] = 0;
    u->refused[u->n] = 0;
    u->n++;
    return PS_OK;
}

static void round_clear(ps_upstream_t *u)
{
    for (size_t i = 0; i < u->nm; i++)
        natsMsg_Destroy(u->msgs[i]);
    pthread_mutex_lock(&u->mu);
    u->n = 0;
    u->nm = 0;
    pthread_mutex_unlock(&u->mu);
}

/* Creates the stream, or checks the one there (docs/upstream.md "Stream"). */
static int ensure_stream(ps_upstream_t *u)
{
    jsStreamInfo *si = NULL;
    jsStreamConfig cfg;
    jsErrCode jerr = 0;
    const char *subjects[] = {"popsync.>"};
    natsStatus s = js_GetStreamInfo(&si, u->conn.js, PS_UPSTREAM_STREAM, NULL, &jerr);

    if (s == NATS_OK) {
        if (si->Config->Replicas != (int64_t)u->o.replicas)
            PS_WARN("upstream", "stream %s has %lld replicas, configured %u", PS_UPSTREAM_STREAM,
                    (long long)si->Config->Replicas, u->o.replicas);
        if (si->Config->Duplicates < (int64_t)u->o.dup_window_s * 1000000000LL)
            PS_WARN("upstream", "stream %s keeps message ids %lld s, less than the %llu s configured: a resend "
                    "after a longer outage may be stored twice (docs/upstream.md)",
                    PS_UPSTREAM_STREAM, (long long)(si->Config->Duplicates / 1000000000LL),
                    (unsigned long long)u->o.dup_window_s);
        jsStreamInfo_Destroy(si);
        return PS_OK;
    }
    if (s != NATS_NOT_FOUND) {
        PS_WARN("upstream", "stream %s: %s (%d)", PS_UPSTREAM_STREAM, natsStatus_GetText(s), (int)jerr);
        return PS_EIO;
    }
    jsStreamConfig_Init(&cfg);
    cfg.Name = PS_UPSTREAM_STREAM;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = (int64_t)u->o.replicas;
    cfg.Duplicates = (int64_t)u->o.dup_window_s * 1000000000LL;
    s = js_AddStream(&si, u->conn.js, &cfg, NULL, &jerr);
    if (s != NATS_OK) {
        PS_WARN("upstream", "cannot create stream %s (%u replicas): %s (%d)", PS_UPSTREAM_STREAM, u->o.replicas,
                natsStatus_GetText(s), (int)jerr);
        return PS_EIO;
    }
    jsStreamInfo_Destroy(si);
    PS_INFO("upstream", "created stream %s: %u replicas, duplicate window %llu s", PS_UPSTREAM_STREAM,
            u->o.replicas, (unsigned long long)u->o.dup_window_s);
    return PS_OK;
}

static int js_open(ps_upstream_t *u)
{
    char err[512];
    int rc = ps_natsconn_open(&u->conn, err, sizeof(err));

    if (rc != PS_OK && *err)
        PS_WARN("upstream", "%s", err);
    atomic_store(&u->connected, rc == PS_OK);
    if (rc != PS_OK)
        return PS_EIO;
    /* After a (re)connection the cluster may still be electing its leaders:
     * ask for the stream first (bounded by jo.Wait) rather than send a round
     * that would only be answered "no responders". */
    if (ps_natsconn_reconnected(&u->conn))
        u->stream_ok = 0;
    if (!u->stream_ok && ensure_stream(u) == PS_OK)
        u->stream_ok = 1;
    return u->stream_ok ? PS_OK : PS_EIO;
}

/* Publishes the node marks taken at snap_head once the stream holds every
 * entry up to it (docs/upstream.md "Node marks"). */
static void publish_snapshot(ps_upstream_t *u)
{
    char subj[64], id[64], head[24];
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    if (!u->snap_pending || u->through < u->snap_head)
        return;
    snprintf(subj, sizeof(subj), "popsync.%s._nodes", u->o.district);
    snprintf(id, sizeof(id), "%s:nodes:%llu", u->o.district, (unsigned long long)u->snap_head);
    snprintf(head, sizeof(head), "%llu", (unsigned long long)u->snap_head);
    s = natsMsg_Create(&m, subj, NULL, (const char *)ps_buf_head(&u->snap), (int)ps_buf_size(&u->snap));
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Popsync-District", u->o.district);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Popsync-Seq", head);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Popsync-Kind", "_nodes");
    if (s == NATS_OK)
        s = js_PublishMsg(&pa, u->conn.js, m, NULL, &jerr);
    natsMsg_Destroy(m);
    jsPubAck_Destroy(pa);
    if (s != NATS_OK) {
        PS_DEBUG("upstream", "node marks not published yet: %s", natsStatus_GetText(s));
        return;
    }
    u->snap_pending = 0;
    ps_buf_reset(&u->snap);
}

/* Sends the round's messages and waits for their acks; returns how many
 * from the start were acknowledged. */
static size_t send_round(ps_upstream_t *u)
{
    jsPubOptions po;
    natsMsgList pending;
    size_t k;
    natsStatus s = NATS_OK;

    for (size_t i = 0; i < u->nm && s == NATS_OK; i++)
        s = js_PublishMsgAsync(u->conn.js, &u->msgs[i], NULL); /* takes the message on success */
    if (s != NATS_OK)
        PS_DEBUG("upstream", "publish: %s", natsStatus_GetText(s));
    jsPubOptions_Init(&po);
    po.MaxWait = ACK_WAIT_MS;
    if (js_PublishAsyncComplete(u->conn.js, &po) != NATS_OK &&
        js_PublishAsyncGetPendingList(&pending, u->conn.js) == NATS_OK)
        natsMsgList_Destroy(&pending); /* read again and resent next round */
    pthread_mutex_lock(&u->mu);
    for (k = 0; k < u->n && u->got[k] == u->need[k] && !u->refused[k]; k++)
        ;
    pthread_mutex_unlock(&u->mu);
    return k;
}

/* One round; returns 1 when it published something, 0 when idle, <0 on failure. */
static int publish_round(ps_upstream_t *u)
{
    uint64_t mark = atomic_load(&u->mark), head = 0, newmark;
    ps_buf_t *nodes = NULL;
    size_t k, n;
    int rc;

    if (ps_store_head(u->st) <= mark && !u->snap_pending)
        return 0;
    /* Node marks of a later state than the last taken: the same snapshot
     * as the entries read. */
    if (!u->snap_pending && ps_store_head(u->st) > u->snap_taken_head) {
        ps_buf_reset(&u->snap);
        nodes = &u->snap;
    }
    rc = ps_store_feed_read(u->st, mark, u->o.max_in_flight, collect, u, &head, nodes);
    if (rc) {
        round_clear(u);
        PS_WARN("upstream", "reading the feed after %llu: %s", (unsigned long long)mark, ps_strerror(rc));
        return rc;
    }
    if (nodes) {
        u->snap_pending = 1;
        u->snap_head = u->snap_taken_head = head;
    }
    if (u->n == 0) {
        if (head > u->through)
            u->through = head;
        publish_snapshot(u);
        return 0;
    }
    k = send_round(u);
    n = u->n; /* round_clear below empties the round */
    newmark = k ? u->seqs[k - 1] : mark;
    if (k == n && n < u->o.max_in_flight && head > newmark)
        newmark = head; /* the round held every entry up to the snapshot's head */
    if (k == n && n < u->o.max_in_flight)
        u->through = head;
    else if (newmark > u->through)
        u->through = newmark;
    round_clear(u);
    if (newmark > mark) {
        if ((rc = ps_store_upstream_set_mark(u->st, newmark))) {
            PS_WARN("upstream", "cannot store the published mark %llu: %s", (unsigned long long)newmark,
                    ps_strerror(rc));
            return rc;
        }
        atomic_store(&u->mark, newmark);
        atomic_fetch_add(&u->published_total, k);
    }
    publish_snapshot(u);
    if (k < n) {
        /* Start the next attempt afresh: a new JetStream context (no async
         * state left from this round) and the stream looked up again, so a
         * cluster still electing its leaders is asked once per back-off, not
         * sent a round that it answers "no responders". */
        atomic_fetch_add(&u->failures, 1);
        ps_natsconn_drop_js(&u->conn);
        u->stream_ok = 0;
        return PS_EIO;
    }
    return 1;
}

static void update_behind(ps_upstream_t *u)
{
    uint64_t mark = atomic_load(&u->mark), n = 0, oldest = 0;
    if (ps_store_head(u->st) > mark && ps_store_feed_behind(u->st, mark, &n, &oldest) != PS_OK)
        return;
    atomic_store(&u->behind, n);
    atomic_store(&u->oldest_ms, oldest);
}

static void *thread_main(void *arg)
{
    ps_upstream_t *u = arg;
    uint64_t backoff = 0, last_behind = 0;

    while (!atomic_load(&u->stop)) {
        int rc = js_open(u);
        uint64_t now = ps_now_ms();
        if (now - last_behind >= BEHIND_EVERY_MS) {
            update_behind(u);
            last_behind = now;
        }
        if (rc == PS_OK)
            rc = publish_round(u);
        else
            atomic_fetch_add(&u->failures, 1);
        if (rc > 0) {
            backoff = 0;
            continue;
        }
        if (rc == 0) {
            backoff = 0;
            if (ps_store_head(u->st) <= atomic_load(&u->mark)) {
                atomic_store(&u->behind, 0);
                atomic_store(&u->oldest_ms, 0);
            }
            nap(u, POLL_MS);
            continue;
        }
        backoff = backoff ? (backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2) : 250;
        nap(u, backoff);
    }
    return NULL;
}

int ps_upstream_start(ps_upstream_t **out, ps_store_t *st, const ps_upstream_opts_t *o, char *err, size_t errlen)
{
    ps_upstream_t *u;
    jsOptions jo;
    uint64_t mark = 0;
    int rc;

    *out = NULL;
    if ((rc = ps_upstream_check(o, err, errlen)))
        return rc;
    if ((rc = ps_store_upstream_mark(st, &mark))) {
        snprintf(err, errlen, "upstream mark: %s", ps_strerror(rc));
        return rc;
    }
    if (!(u = calloc(1, sizeof(*u))))
        return PS_ENOMEM;
    u->st = st;
    u->o = *o;
    if (!u->o.max_in_flight)
        u->o.max_in_flight = 1000;
    if (!u->o.replicas)
        u->o.replicas = 3;
    if (!u->o.dup_window_s)
        u->o.dup_window_s = 86400;
    /* Publishes wait their acks in on_ack (closure u), at most max_in_flight. */
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    jo.PublishAsync.MaxPending = (int64_t)u->o.max_in_flight * MSGS_PER_ENTRY;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = u;
    ps_natsconn_init(&u->conn, "upstream", &u->o, &jo, 1);
    atomic_store(&u->mark, mark);
    u->through = mark;
    ps_buf_init(&u->snap);
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    u->msgs = calloc((size_t)u->o.max_in_flight * MSGS_PER_ENTRY, sizeof(*u->msgs));
    u->seqs = calloc(u->o.max_in_flight, sizeof(*u->seqs));
    u->need = calloc(u->o.max_in_flight, 3);
    u->got = u->need ? u->need + u->o.max_in_flight : NULL;
    u->refused = u->need ? u->got + u->o.max_in_flight : NULL;
    if (!u->msgs || !u->seqs || !u->need || pthread_create(&u->th, NULL, thread_main, u) != 0) {
        snprintf(err, errlen, "cannot start the upstream thread");
        free(u->msgs);
        free(u->seqs);
        free(u->need);
        pthread_mutex_destroy(&u->mu);
        pthread_cond_destroy(&u->cv);
        free(u);
        return PS_ENOMEM;
    }
    PS_INFO("upstream", "publishing to %s as district %s from seq %llu (at most %u in flight)", o->urls,
            o->district, (unsigned long long)mark, u->o.max_in_flight);
    *out = u;
    return PS_OK;
}

void ps_upstream_request_stop(ps_upstream_t *u)
{
    if (!u)
        return;
    pthread_mutex_lock(&u->mu);
    atomic_store(&u->stop, 1);
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

void ps_upstream_join(ps_upstream_t *u)
{
    if (!u)
        return;
    ps_upstream_request_stop(u);
    pthread_join(u->th, NULL);
    ps_natsconn_close(&u->conn);
    PS_INFO("upstream", "stopped at seq %llu", (unsigned long long)atomic_load(&u->mark));
    ps_buf_free(&u->snap);
    free(u->msgs);
    free(u->seqs);
    free(u->need);
    pthread_mutex_destroy(&u->mu);
    pthread_cond_destroy(&u->cv);
    free(u);
}

void ps_upstream_stats(ps_upstream_t *u, ps_upstream_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!u)
        return;
    out->published_seq = atomic_load(&u->mark);
    out->behind = atomic_load(&u->behind);
    out->oldest_ms = atomic_load(&u->oldest_ms);
    out->published_total = atomic_load(&u->published_total);
    out->failures = atomic_load(&u->failures);
    out->connected = atomic_load(&u->connected);
}

/* --- reading the stream back (rebuild, tests) ----------------------------------- */

int ps_upstream_scan(jsCtx *js, const char *filter, ps_upstream_msg_fn fn, void *arg, uint64_t *count, char *err,
                     size_t errlen)
{
    natsSubscription *sub = NULL;
    jsStreamInfo *si = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    uint64_t last, seen = 0;
    natsStatus s;
    int rc = PS_OK;

    *count = 0;
    /* The stream's last sequence now: the scan ends there (or when the
     * consumer says nothing matching is pending). */
    if ((s = js_GetStreamInfo(&si, js, PS_UPSTREAM_STREAM, NULL, &jerr)) != NATS_OK) {
        snprintf(err, errlen, "stream %s: %s (%d)", PS_UPSTREAM_STREAM, natsStatus_GetText(s), (int)jerr);
        return PS_EIO;
    }
    last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    if (last == 0)
        return PS_OK;
    jsSubOptions_Init(&so);
    so.Stream = PS_UPSTREAM_STREAM;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    if ((s = js_SubscribeSync(&sub, js, filter, NULL, &so, &jerr)) != NATS_OK) {
        snprintf(err, errlen, "cannot read stream %s (%s): %s (%d)", PS_UPSTREAM_STREAM, filter, natsStatus_GetText(s),
                 (int)jerr);
        return PS_EIO;
    }
    for (;;) {
        natsMsg *m = NULL;
        jsMsgMetaData *md = NULL;
        int done;
        /* Each message within 10 s: a stalled cluster ends the scan with an
         * error, never a hang.  Nothing at all matching the filter ends the
         * same way, without error. */
        if ((s = natsSubscription_NextMsg(&m, sub, 10000)) != NATS_OK) {
            if (s == NATS_TIMEOUT && seen == 0)
                break;
            snprintf(err, errlen, "reading message %llu: %s", (unsigned long long)seen + 1, natsStatus_GetText(s));
            rc = PS_EIO;
            break;
        }
        if (natsMsg_GetMetaData(&md, m) != NATS_OK) {
            natsMsg_Destroy(m);
            continue; /* not a stream message */
        }
        rc = fn(m, md->Sequence.Stream, arg);
        seen++;
        done = md->NumPending == 0 || md->Sequence.Stream >= last;
        jsMsgMetaData_Destroy(md);
        natsMsg_Destroy(m);
        if (rc || done)
            break;
    }
    *count = seen;
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return rc;
}
