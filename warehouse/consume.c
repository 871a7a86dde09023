/* consume.c - the durable JetStream consumer that feeds PostgreSQL.
 *
 * Order of things, and why nothing is lost or doubled:
 *   fetch a batch -> apply it in one PostgreSQL transaction -> COMMIT -> ack.
 * A message is acknowledged only once its effect is committed, so a crash
 * anywhere leaves it unacknowledged and JetStream redelivers it (after the
 * consumer's AckWait); applying it again changes nothing (apply.c).  A batch
 * PostgreSQL refuses is applied again, the same batch, until it commits or
 * the warehouse is stopped: a later batch never overtakes it.
 * The durable consumer keeps the delivery state on the NATS cluster; the
 * highest stream sequence applied is also kept in PostgreSQL (wh_stream), and
 * a consumer that is missing, or that claims more than PostgreSQL holds (a
 * database restored from an older backup), is made again from there.
 */
#include "wh_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "err.h"
#include "log.h"
#include "policy.h"
#include "scope.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- PostgreSQL ------------------------------------------------------------------ */

typedef struct pgside {
    PGconn *pg;
    wh_apply_t *apply;
} pgside_t;

static void pg_close(pgside_t *p)
{
    wh_apply_close(p->apply);
    p->apply = NULL;
    if (p->pg)
        PQfinish(p->pg);
    p->pg = NULL;
}

/* Connects, takes the one-warehouse-per-database lock, makes the schema and
 * prepares the statements.  PS_OK, PS_EEXIST (another warehouse runs) or
 * PS_EDB. */
static int pg_open(pgside_t *p, const wh_conf_t *c, char *err, size_t errlen)
{
    PGresult *r;
    int rc, locked;
    p->pg = PQconnectdb(c->pg);
    if (PQstatus(p->pg) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(p->pg));
        rc = PS_EDB;
        goto fail;
    }
    /* "relation already exists, skipping" of every CREATE ... IF NOT EXISTS
     * is no news. */
    PQclear(PQexec(p->pg, "SET client_min_messages = warning"));
    r = PQexec(p->pg, "SELECT pg_try_advisory_lock(7091220)");
    locked = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!locked) {
        snprintf(err, errlen, "another popsync-warehouse is consuming into this database");
        rc = PS_EEXIST;
        goto fail;
    }
    if ((rc = wh_schema_ensure(p->pg, err, errlen)) || (rc = wh_apply_open(&p->apply, p->pg, c->stream, err, errlen)))
        goto fail;
    return PS_OK;
fail:
    pg_close(p);
    return rc;
}

static uint64_t pg_stream_seq(PGconn *pg, const char *stream)
{
    const char *pv[1] = {stream};
    PGresult *r = PQexecParams(pg, "SELECT last_stream_seq FROM wh_stream WHERE stream = $1", 1, NULL, pv, NULL,
                               NULL, 0);
    uint64_t v = 0;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* ---- NATS ---------------------------------------------------------------------------- */

typedef struct natsside {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
} natsside_t;

static void nats_close(natsside_t *n)
{
    if (n->sub)
        natsSubscription_Destroy(n->sub);
    if (n->js)
        jsCtx_Destroy(n->js);
    if (n->nc)
        natsConnection_Destroy(n->nc);
    memset(n, 0, sizeof(*n));
}

static int nats_open(natsside_t *n, const wh_conf_t *c, char *err, size_t errlen)
{
    natsOptions *o = NULL;
    const char *urls[16];
    char *copy = strdup(c->nats), *save = NULL, *tok;
    int nurls = 0;
    natsStatus s;

    if (!copy)
        return PS_ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok && nurls < 16; tok = strtok_r(NULL, ",", &save))
        urls[nurls++] = tok;
    s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, urls, nurls);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 500);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(o, 2000);
    if (s == NATS_OK && c->nats_ca)
        s = natsOptions_LoadCATrustedCertificates(o, c->nats_ca);
    if (s == NATS_OK && c->nats_cert && c->nats_key)
        s = natsOptions_LoadCertificatesChain(o, c->nats_cert, c->nats_key);
    if (s == NATS_OK && c->nats_ca)
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK)
        s = natsConnection_Connect(&n->nc, o);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&n->js, n->nc, NULL);
    natsOptions_Destroy(o);
    free(copy);
    if (s != NATS_OK) {
        snprintf(err, errlen, "NATS: %s", natsStatus_GetText(s));
        nats_close(n);
        return PS_EIO;
    }
    return PS_OK;
}

static int create_consumer(natsside_t *n, const wh_conf_t *c, uint64_t from, char *err, size_t errlen)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    jsConsumerConfig_Init(&cc);
    cc.Durable = c->durable;
    cc.DeliverPolicy = from > 1 ? js_DeliverByStartSequence : js_DeliverAll;
    cc.OptStartSeq = from > 1 ? from : 0;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = (int64_t)c->ack_wait_s * 1000000000LL;
    cc.MaxAckPending = (int64_t)c->batch * 4;
    cc.FilterSubject = "popsync.>";
    s = js_AddConsumer(&ci, n->js, c->stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) {
        snprintf(err, errlen, "cannot create consumer %s: %s (%d)", c->durable, natsStatus_GetText(s), (int)jerr);
        return PS_EIO;
    }
    PS_INFO("warehouse", "consumer %s created on stream %s from stream sequence %llu", c->durable, c->stream,
            (unsigned long long)(from ? from : 1));
    return PS_OK;
}

/* Makes sure the durable consumer exists and claims no more than PostgreSQL
 * holds, then binds a pull subscription to it. */
static int bind_consumer(natsside_t *n, const wh_conf_t *c, uint64_t pg_seq, char *err, size_t errlen)
{
    jsConsumerInfo *ci = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus s;
    int rc = PS_OK;

    s = js_GetConsumerInfo(&ci, n->js, c->stream, c->durable, NULL, &jerr);
    if (s == NATS_OK && ci->AckFloor.Stream > pg_seq) {
        PS_WARN("warehouse", "consumer %s has acknowledged up to %llu but PostgreSQL holds up to %llu: made again",
                c->durable, (unsigned long long)ci->AckFloor.Stream, (unsigned long long)pg_seq);
        js_DeleteConsumer(n->js, c->stream, c->durable, NULL, NULL);
        s = NATS_NOT_FOUND;
        jerr = JSConsumerNotFoundErr;
    }
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK && jerr == JSConsumerNotFoundErr)
        rc = create_consumer(n, c, pg_seq + 1, err, errlen);
    else if (s != NATS_OK) {
        snprintf(err, errlen, "stream %s: %s (%d)", c->stream, natsStatus_GetText(s), (int)jerr);
        rc = PS_EIO;
    }
    if (rc)
        return rc;
    jsSubOptions_Init(&so);
    so.Stream = c->stream;
    so.Consumer = c->durable;
    s = js_PullSubscribe(&n->sub, n->js, "popsync.>", c->durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        snprintf(err, errlen, "cannot subscribe to consumer %s: %s (%d)", c->durable, natsStatus_GetText(s),
                 (int)jerr);
        return PS_EIO;
    }
    return PS_OK;
}

/* 1 when the consumer has nothing left to deliver or to be acknowledged. */
static int caught_up(natsside_t *n, const wh_conf_t *c)
{
    jsConsumerInfo *ci = NULL;
    int done = js_GetConsumerInfo(&ci, n->js, c->stream, c->durable, NULL, NULL) == NATS_OK && ci->NumPending == 0 &&
               ci->NumAckPending == 0;
    jsConsumerInfo_Destroy(ci);
    return done;
}

/* ---- messages -> wh_msg_t --------------------------------------------------------- */

static void msg_fields(natsMsg *m, wh_msg_t *w)
{
    jsMsgMetaData *meta = NULL;
    const char *v = NULL, *subj = natsMsg_GetSubject(m);

    memset(w, 0, sizeof(*w));
    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
        w->stream_seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
    }
    if (natsMsgHeader_Get(m, "Popsync-District", &v) == NATS_OK && v)
        snprintf(w->district, sizeof(w->district), "%s", v);
    else if (subj && !strncmp(subj, "popsync.", 8)) {
        const char *e = strchr(subj + 8, '.');
        size_t l = e ? (size_t)(e - subj - 8) : strlen(subj + 8);
        if (l < sizeof(w->district)) {
            memcpy(w->district, subj + 8, l);
            w->district[l] = '\0';
        }
    }
    /* popsync.<district>._nodes and ._exit carry the district's node marks
     * and scope exits for its own rebuild (docs/upstream.md): the warehouse
     * takes records only. */
    if (subj && !strncmp(subj, "popsync.", 8)) {
        const char *k = strchr(subj + 8, '.');
        w->other = k && k[1] == '_';
    }
    /* Another district's migration case, republished by the district of its
     * other place (docs/upstream.md §7): its owner district publishes it
     * too, answers included, and only the owner's copy counts, once. */
    if (natsMsgHeader_Get(m, "Popsync-Unit", &v) == NATS_OK && v && ps_orgunit_valid(v) &&
        ps_orgunit_valid(w->district) && !ps_policy_within(NULL, v, w->district))
        w->other = 1;
    if (natsMsgHeader_Get(m, "Popsync-Seq", &v) == NATS_OK && v)
        w->seq = strtoull(v, NULL, 10);
    w->data = (const uint8_t *)natsMsg_GetData(m);
    w->len = (size_t)natsMsg_GetDataLength(m);
}

/* Applies one fetched batch until it commits; 0 when committed, -1 when
 * stopped first (nothing acknowledged: JetStream will deliver it again). */
static int apply_until_committed(pgside_t *p, const wh_conf_t *c, const wh_msg_t *w, size_t n,
                                 wh_batch_stats_t *st)
{
    char err[512];
    int rc;
    for (int attempt = 0; !g_stop; attempt++) {
        if (!p->pg && pg_open(p, c, err, sizeof(err)) != PS_OK) {
            if (attempt % 30 == 0)
                PS_WARN("warehouse", "PostgreSQL: %s (retrying)", err);
            sleep_ms(1000);
            continue;
        }
        if ((rc = wh_apply_batch(p->apply, w, n, st, err, sizeof(err))) == PS_OK)
            return 0;
        if (attempt % 30 == 0)
            PS_WARN("warehouse", "batch of %zu not applied: %s (retrying)", n, err);
        if (PQstatus(p->pg) != CONNECTION_OK)
            pg_close(p);
        sleep_ms(1000);
    }
    return -1;
}

static void ack_all(natsMsgList *list)
{
    for (int i = 0; i < list->Count; i++)
        natsMsg_Ack(list->Msgs[i], NULL); /* a lost ack is a redelivery, which changes nothing */
}

/* ---- the loop -------------------------------------------------------------------------- */

typedef struct totals {
    uint64_t applied, stale, rejected, other, batches;
    int64_t last_log;
} totals_t;

static void log_progress(totals_t *t, int force)
{
    if (!force && now_ms() - t->last_log < 10000)
        return;
    t->last_log = now_ms();
    PS_INFO("warehouse",
            "%llu batches: %llu rows changed, %llu already applied or older, %llu rejected, %llu node marks or exits",
            (unsigned long long)t->batches, (unsigned long long)t->applied, (unsigned long long)t->stale,
            (unsigned long long)t->rejected, (unsigned long long)t->other);
}

static int consume_loop(pgside_t *p, natsside_t *n, const wh_conf_t *c)
{
    wh_msg_t *w = calloc((size_t)c->batch, sizeof(*w));
    totals_t t = {0, 0, 0, 0, 0, now_ms()};
    int rc = PS_OK;

    if (!w)
        return PS_ENOMEM;
    while (!g_stop) {
        natsMsgList list = {NULL, 0};
        wh_batch_stats_t st;
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, n->sub, c->batch, 1000, &jerr);
        if (s != NATS_OK || list.Count == 0) {
            natsMsgList_Destroy(&list);
            if (s != NATS_OK && s != NATS_TIMEOUT)
                sleep_ms(500); /* NATS unreachable: the client reconnects by itself */
            if (c->drain && caught_up(n, c))
                break;
            log_progress(&t, 0);
            continue;
        }
        for (int i = 0; i < list.Count; i++)
            msg_fields(list.Msgs[i], &w[i]);
        if (apply_until_committed(p, c, w, (size_t)list.Count, &st) != 0) {
            natsMsgList_Destroy(&list);
            break;
        }
        ack_all(&list);
        natsMsgList_Destroy(&list);
        t.applied += st.applied;
        t.stale += st.stale;
        t.rejected += st.rejected;
        t.other += st.other;
        t.batches++;
        log_progress(&t, 0);
    }
    log_progress(&t, 1);
    free(w);
    return rc;
}

int wh_consume_run(const wh_conf_t *c)
{
    pgside_t p = {NULL, NULL};
    natsside_t n;
    struct sigaction sa;
    char err[512];
    int rc;

    memset(&n, 0, sizeof(n));
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if ((rc = pg_open(&p, c, err, sizeof(err)))) {
        PS_ERROR("warehouse", "PostgreSQL: %s", err);
        return rc;
    }
    if ((rc = nats_open(&n, c, err, sizeof(err))))
        goto out;
    /* The stream may not exist yet (no district has published): wait for it. */
    for (int attempt = 0; !g_stop; attempt++) {
        if ((rc = bind_consumer(&n, c, pg_stream_seq(p.pg, c->stream), err, sizeof(err))) == PS_OK)
            break;
        if (attempt % 30 == 0)
            PS_WARN("warehouse", "%s (retrying)", err);
        if (n.sub) {
            natsSubscription_Destroy(n.sub);
            n.sub = NULL;
        }
        sleep_ms(1000);
    }
    if (!g_stop && rc == PS_OK) {
        PS_INFO("warehouse", "consuming stream %s with durable consumer %s", c->stream, c->durable);
        rc = consume_loop(&p, &n, c);
    }
out:
    if (rc)
        PS_ERROR("warehouse", "%s", err);
    nats_close(&n);
    pg_close(&p);
    nats_CloseAndWait(5000);
    return rc;
}
