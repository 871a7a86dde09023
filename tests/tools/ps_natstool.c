/* ps_natstool - reads the upstream stream for the integration tests
 * (issue 19): what JetStream holds, independent of popsyncd's own view.
 *
 *   ps_natstool URLS info           stream POPSYNC: "messages N replicas R duplicate_window_s W"
 *   ps_natstool URLS dump FILTER    one line per message matching FILTER, in stream order:
 *                                   stream_seq subject msg_id popsync_seq kind payload_bytes
 *   ps_natstool URLS consumer NAME FILTER
 *                                   creates durable pull consumer NAME on FILTER as a province
 *                                   would for a district (docs/upstream.md §7 "Permissions":
 *                                   explicit acks, ack wait 10 s, deliver all, 1000 pending)
 *   ps_natstool URLS publish SUBJECT [HEADER=VALUE ...]
 *                                   one message with payload "x" (a forged one, for the tests)
 *
 * Every wait is bounded (upstream.c's scan: 10 s per message).  TLS: set
 * PS_NATS_CA (and PS_NATS_CERT, PS_NATS_KEY for a client certificate).
 */
#include "upstream.h"
#include "natsconn.h"
#include "err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *hdr(natsMsg *m, const char *k)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, k, &v) == NATS_OK && v ? v : "-";
}

static int dump_one(natsMsg *m, uint64_t stream_seq, void *arg)
{
    (void)arg;
    printf("%llu %s %s %s %s %d\n", (unsigned long long)stream_seq, natsMsg_GetSubject(m), hdr(m, "Nats-Msg-Id"),
           hdr(m, "Popsync-Seq"), hdr(m, "Popsync-Kind"), natsMsg_GetDataLength(m));
    return 0;
}

static int add_consumer(jsCtx *js, const char *name, const char *filter)
{
    jsConsumerConfig cc;
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    jsConsumerConfig_Init(&cc);
    cc.Durable = name;
    cc.FilterSubject = filter;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = 10 * 1000000000LL;
    cc.DeliverPolicy = js_DeliverAll;
    cc.MaxAckPending = 1000;
    if ((s = js_AddConsumer(&ci, js, PS_UPSTREAM_STREAM, &cc, NULL, &jerr)) != NATS_OK) {
        fprintf(stderr, "ps_natstool: consumer %s: %s (%d)\n", name, natsStatus_GetText(s), (int)jerr);
        return 1;
    }
    jsConsumerInfo_Destroy(ci);
    return 0;
}

static int publish_one(jsCtx *js, const char *subject, char **hv, int n)
{
    natsMsg *m = NULL;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = natsMsg_Create(&m, subject, NULL, "x", 1);
    for (int i = 0; i < n && s == NATS_OK; i++) {
        char *eq = strchr(hv[i], '=');
        if (!eq) {
            s = NATS_INVALID_ARG;
            break;
        }
        *eq = '\0';
        s = natsMsgHeader_Set(m, hv[i], eq + 1);
    }
    if (s == NATS_OK)
        s = js_PublishMsg(&pa, js, m, NULL, &jerr);
    natsMsg_Destroy(m);
    jsPubAck_Destroy(pa);
    if (s != NATS_OK) {
        fprintf(stderr, "ps_natstool: publish %s: %s (%d)\n", subject, natsStatus_GetText(s), (int)jerr);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    ps_upstream_opts_t o;
    ps_natsconn_t conn = {0};
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    char err[512] = "";
    uint64_t n = 0;
    int rc = 1;

    if (argc < 3 || (strcmp(argv[2], "info") && (strcmp(argv[2], "dump") || argc < 4) &&
                     (strcmp(argv[2], "consumer") || argc < 5) && (strcmp(argv[2], "publish") || argc < 4))) {
        fprintf(stderr, "usage: ps_natstool URLS info | ps_natstool URLS dump FILTER | "
                        "ps_natstool URLS consumer NAME FILTER | ps_natstool URLS publish SUBJECT [H=V ...]\n");
        return 2;
    }
    memset(&o, 0, sizeof(o));
    o.urls = argv[1];
    o.ca_file = getenv("PS_NATS_CA");
    o.cert_file = getenv("PS_NATS_CERT");
    o.key_file = getenv("PS_NATS_KEY");
    ps_natsconn_init(&conn, "natstool", &o, NULL, 0);
    if (ps_natsconn_open(&conn, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "ps_natstool: %s\n", err);
        goto out;
    }
    js = conn.js;
    if (!strcmp(argv[2], "info")) {
        natsStatus s = js_GetStreamInfo(&si, js, PS_UPSTREAM_STREAM, NULL, &jerr);
        if (s != NATS_OK) {
            fprintf(stderr, "ps_natstool: stream info: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
            goto out;
        }
        printf("messages %llu replicas %lld duplicate_window_s %lld\n", (unsigned long long)si->State.Msgs,
               (long long)si->Config->Replicas, (long long)(si->Config->Duplicates / 1000000000LL));
        jsStreamInfo_Destroy(si);
        rc = 0;
    } else if (!strcmp(argv[2], "consumer")) {
        rc = add_consumer(js, argv[3], argv[4]);
    } else if (!strcmp(argv[2], "publish")) {
        rc = publish_one(js, argv[3], argv + 4, argc - 4);
    } else if (ps_upstream_scan(js, argv[3], dump_one, NULL, &n, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "ps_natstool: %s\n", err);
    } else {
        rc = 0;
    }
out:
    ps_natsconn_close(&conn);
    ps_natsconn_shutdown();
    return rc;
}
