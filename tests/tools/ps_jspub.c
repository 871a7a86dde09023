/* ps_jspub - a test publisher of the upward stream (docs/upstream.md format):
 * records into the JetStream stream POPSYNC exactly as a district's popsyncd
 * publishes them (subject popsync.<district>.<kind>, Nats-Msg-Id
 * <district>:<seq>, headers Popsync-District/-Seq/-Kind/-Unit, payload a
 * serialized Popsync__Record).  The warehouse's tests and benchmark use it
 * where a real popsyncd is not the point: a chosen old revision replayed,
 * a malformed message, a backlog of a million records.
 *
 *   ps_jspub --nats URLS --create-stream [--replicas N]
 *   ps_jspub --nats URLS --district D --seq N --kind K --id UUID --gen G
 *            --hlc H [--orgunit U] [--deleted] [--raw TEXT | --payload-hex HEX]
 *            [--subject-kind K] [field=value ...]
 *   ps_jspub --nats URLS --generate N --districts D1[,D2...] [--start-seq S]
 *            [--month YYYY-MM] [--sync]
 * --sync publishes one message at a time, waiting for each ack (the tests:
 * libnats 3.4 sometimes still holds a few async messages at exit, which
 * LeakSanitizer reports); without it, up to 2,000 are in flight (the bench).
 * The generated records are synthetic: persons (random ID numbers), births,
 * migrations and service visits in the district's first township.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "err.h"
#include "ids.h"
#include "record_fmt.h"

typedef struct args {
    const char *nats, *district, *kind, *id, *orgunit, *raw, *districts, *month, *hex, *subject_kind;
    uint64_t seq, gen, hlc, generate, start_seq;
    int deleted, create, replicas;
} args_t;

static int g_failed;
static const char *g_subject_kind; /* --subject-kind: e.g. _nodes */
static int g_sync;                 /* one message: published synchronously */

static void on_pub_err(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)closure;
    fprintf(stderr, "ps_jspub: a publish failed: %s\n", pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
    g_failed++;
}

static void die(const char *what, natsStatus s)
{
    fprintf(stderr, "ps_jspub: %s: %s\n", what, natsStatus_GetText(s));
    exit(1);
}

static natsConnection *connect_nats(const char *urls)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    const char *u[8];
    char *copy = strdup(urls), *save = NULL, *t;
    int n = 0;
    natsStatus s;
    for (t = strtok_r(copy, ",", &save); t && n < 8; t = strtok_r(NULL, ",", &save))
        u[n++] = t;
    if ((s = natsOptions_Create(&o)) != NATS_OK || (s = natsOptions_SetServers(o, u, n)) != NATS_OK ||
        (s = natsConnection_Connect(&nc, o)) != NATS_OK)
        die("connect", s);
    natsOptions_Destroy(o);
    free(copy);
    return nc;
}

static void create_stream(jsCtx *js, int replicas)
{
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    const char *subj[1] = {"popsync.>"};
    natsStatus s;
    if (js_GetStreamInfo(&si, js, "POPSYNC", NULL, &jerr) == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return;
    }
    jsStreamConfig_Init(&sc);
    sc.Name = "POPSYNC";
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = replicas;
    if ((s = js_AddStream(&si, js, &sc, NULL, &jerr)) != NATS_OK)
        die("create stream", s);
    jsStreamInfo_Destroy(si);
}

/* Publishes one record asynchronously (the library bounds what is in flight). */
static void publish(jsCtx *js, const char *district, uint64_t seq, const Popsync__Record *r, const uint8_t *raw,
                    size_t rawlen)
{
    natsMsg *m = NULL;
    char subj[128], msgid[64], seqs[24], *buf = NULL;
    size_t len = raw ? rawlen : popsync__record__get_packed_size(r);
    const char *kind = g_subject_kind ? g_subject_kind : r ? ps_kind_name(r->kind) : "person";
    natsStatus s;

    if (!raw) {
        buf = malloc(len ? len : 1);
        popsync__record__pack(r, (uint8_t *)buf);
    }
    snprintf(subj, sizeof(subj), "popsync.%s.%s", district, kind);
    snprintf(msgid, sizeof(msgid), "%s:%llu", district, (unsigned long long)seq);
    snprintf(seqs, sizeof(seqs), "%llu", (unsigned long long)seq);
    if ((s = natsMsg_Create(&m, subj, NULL, raw ? (const char *)raw : buf, (int)len)) != NATS_OK)
        die("message", s);
    natsMsgHeader_Set(m, "Nats-Msg-Id", msgid);
    natsMsgHeader_Set(m, "Popsync-District", district);
    natsMsgHeader_Set(m, "Popsync-Seq", seqs);
    natsMsgHeader_Set(m, "Popsync-Kind", kind);
    if (r && r->orgunit && *r->orgunit)
        natsMsgHeader_Set(m, "Popsync-Unit", r->orgunit);
    if (g_sync) {
        /* One message: wait for its ack here (the async machinery's last
         * ack may still hold the message when the process exits). */
        jsPubAck *pa = NULL;
        jsErrCode jerr = 0;
        s = js_PublishMsg(&pa, js, m, NULL, &jerr);
        jsPubAck_Destroy(pa);
        natsMsg_Destroy(m);
        if (s != NATS_OK)
            die("publish", s);
    } else if ((s = js_PublishMsgAsync(js, &m, NULL)) != NATS_OK)
        die("publish", s);
    free(buf);
}

static void set(Popsync__Record *r, const char *field, const char *value)
{
    char err[256];
    if (ps_record_set(r, field, value, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "ps_jspub: %s=%s: %s\n", field, value, err);
        exit(2);
    }
}

static Popsync__Record *make(int kind, const char *unit, uint64_t gen, uint64_t hlc)
{
    static uint8_t node[16] = {0x7e, 0x57};
    Popsync__Record *r = NULL;
    uint8_t id[16];
    if (ps_record_new(&r, kind) != PS_OK)
        exit(1);
    ps_uuid7(id);
    r->id.data = malloc(16);
    memcpy(r->id.data, id, 16);
    r->id.len = 16;
    r->rev = malloc(sizeof(*r->rev));
    popsync__rev__init(r->rev);
    r->rev->gen = gen;
    r->rev->hlc = hlc;
    r->rev->node.data = malloc(16);
    memcpy(r->rev->node.data, node, 16);
    r->rev->node.len = 16;
    r->synthetic = 1;
    set(r, "orgunit", unit);
    return r;
}

/* A synthetic record of the i-th kind of the mix; person_id refers to a person. */
static Popsync__Record *generated(uint64_t i, const char *unit, const char *month, const char *person)
{
    char buf[64];
    Popsync__Record *r;
    uint64_t hlc = (1790000000000ULL + i) << 16;
    switch (i % 10) {
    case 6:
        r = make(POPSYNC__KIND__KIND_BIRTH, unit, 1, hlc);
        set(r, "mother_id", person);
        set(r, "child_sex", i % 20 < 10 ? "male" : "female");
        snprintf(buf, sizeof(buf), "%s-%02llu", month, (unsigned long long)(i % 28 + 1));
        set(r, "birth_date", buf);
        set(r, "birth_order", "1");
        return r;
    case 7:
        r = make(POPSYNC__KIND__KIND_MIGRATION, unit, 1, hlc);
        set(r, "person_id", person);
        set(r, "direction", i % 20 < 10 ? "inflow" : "outflow");
        snprintf(buf, sizeof(buf), "%s-01", month);
        set(r, "start_date", buf);
        set(r, "submitted_date", buf);
        return r;
    case 8:
    case 9:
        r = make(POPSYNC__KIND__KIND_SERVICE_VISIT, unit, 1, hlc);
        set(r, "person_id", person);
        set(r, "service", "followup");
        snprintf(buf, sizeof(buf), "%s-%02llu", month, (unsigned long long)(i % 28 + 1));
        set(r, "visit_date", buf);
        return r;
    default:
        r = make(POPSYNC__KIND__KIND_PERSON, unit, 1, hlc);
        /* Not a valid checksum: the warehouse takes what the district took. */
        snprintf(buf, sizeof(buf), "1101051990%08llu", (unsigned long long)(i % 100000000));
        r->person->id_number = strdup(buf);
        r->person->name = strdup("synthetic");
        r->person->sex = i % 2 ? POPSYNC__SEX__SEX_MALE : POPSYNC__SEX__SEX_FEMALE;
        r->person->birth_date = strdup("1990-01-01");
        return r;
    }
}

static void run_generate(jsCtx *js, const args_t *a)
{
    char *copy = strdup(a->districts), *save = NULL, *t, *ds[64], unit[13], person[40] = "";
    int nd = 0;
    for (t = strtok_r(copy, ",", &save); t && nd < 64; t = strtok_r(NULL, ",", &save))
        ds[nd++] = t;
    for (uint64_t i = 0; i < a->generate; i++) {
        const char *d = ds[i % (uint64_t)nd];
        Popsync__Record *r;
        snprintf(unit, sizeof(unit), "%.6s001000", d);
        if (!person[0] || i % 10 == 0) {
            uint8_t pid[16];
            ps_uuid7(pid);
            ps_uuid_format(pid, person);
        }
        r = generated(i, unit, a->month, person);
        publish(js, d, a->start_seq + i / (uint64_t)nd, r, NULL, 0);
        ps_record_free(r);
    }
    free(copy);
}

static void run_one(jsCtx *js, const args_t *a, int argc, char **argv)
{
    Popsync__Record *r;
    int kind = ps_kind_from_name(a->kind ? a->kind : "");
    if (a->raw) {
        publish(js, a->district, a->seq, NULL, (const uint8_t *)a->raw, strlen(a->raw));
        return;
    }
    if (a->hex) {
        /* A payload given whole (an old version of a real record, taken
         * from the warehouse's record column), published as it is. */
        size_t n = strlen(a->hex) / 2;
        uint8_t *b = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) {
            unsigned v;
            sscanf(a->hex + 2 * i, "%2x", &v);
            b[i] = (uint8_t)v;
        }
        publish(js, a->district, a->seq, NULL, b, n);
        free(b);
        return;
    }
    if (kind < 0 || !a->id) {
        fprintf(stderr, "ps_jspub: --kind and --id are required\n");
        exit(2);
    }
    r = make(kind, a->orgunit ? a->orgunit : "110105001000", a->gen, a->hlc);
    if (ps_uuid_parse(a->id, r->id.data) != PS_OK) {
        fprintf(stderr, "ps_jspub: --id is not a UUID\n");
        exit(2);
    }
    r->deleted = a->deleted;
    for (int i = optind; i < argc; i++) {
        char err[256];
        if (ps_record_set_kv(r, argv[i], err, sizeof(err)) != PS_OK) {
            fprintf(stderr, "ps_jspub: %s: %s\n", argv[i], err);
            exit(2);
        }
    }
    publish(js, a->district, a->seq, r, NULL, 0);
    ps_record_free(r);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"nats", 1, 0, 'n'},     {"create-stream", 0, 0, 'c'}, {"replicas", 1, 0, 'R'}, {"district", 1, 0, 'd'},
        {"seq", 1, 0, 's'},      {"kind", 1, 0, 'k'},          {"id", 1, 0, 'i'},       {"gen", 1, 0, 'g'},
        {"hlc", 1, 0, 'h'},      {"orgunit", 1, 0, 'o'},       {"deleted", 0, 0, 'x'},  {"raw", 1, 0, 'r'},
        {"generate", 1, 0, 'G'}, {"districts", 1, 0, 'D'},     {"start-seq", 1, 0, 'S'}, {"month", 1, 0, 'm'},
        {"payload-hex", 1, 0, 'H'}, {"subject-kind", 1, 0, 'u'},
        {"sync", 0, 0, 'y'},     {0, 0, 0, 0}};
    args_t a;
    natsConnection *nc;
    jsCtx *js = NULL;
    jsOptions jo;
    jsPubOptions po;
    int ch;
    natsStatus s;

    memset(&a, 0, sizeof(a));
    a.replicas = 1;
    a.gen = 1;
    a.start_seq = 1;
    a.month = "2026-10";
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'n': a.nats = optarg; break;
        case 'c': a.create = 1; break;
        case 'R': a.replicas = atoi(optarg); break;
        case 'd': a.district = optarg; break;
        case 's': a.seq = strtoull(optarg, NULL, 10); break;
        case 'k': a.kind = optarg; break;
        case 'i': a.id = optarg; break;
        case 'g': a.gen = strtoull(optarg, NULL, 10); break;
        case 'h': a.hlc = strtoull(optarg, NULL, 10); break;
        case 'o': a.orgunit = optarg; break;
        case 'x': a.deleted = 1; break;
        case 'r': a.raw = optarg; break;
        case 'H': a.hex = optarg; break;
        case 'u': a.subject_kind = optarg; break;
        case 'y': g_sync = 1; break;
        case 'G': a.generate = strtoull(optarg, NULL, 10); break;
        case 'D': a.districts = optarg; break;
        case 'S': a.start_seq = strtoull(optarg, NULL, 10); break;
        case 'm': a.month = optarg; break;
        default: return 2;
        }
    }
    if (!a.nats || (!a.create && !a.generate && !a.district) || (a.generate && !a.districts)) {
        fprintf(stderr, "ps_jspub: see the usage at the top of tests/tools/ps_jspub.c\n");
        return 2;
    }
    g_subject_kind = a.subject_kind;
    nc = connect_nats(a.nats);
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 2000;
    jo.PublishAsync.StallWait = 30000; /* a loaded test machine: wait, do not fail */
    jo.PublishAsync.ErrHandler = on_pub_err;
    if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
        die("jetstream", s);
    if (a.create)
        create_stream(js, a.replicas);
    if (a.generate)
        run_generate(js, &a);
    else if (a.district) {
        g_sync = 1;
        run_one(js, &a, argc, argv);
    }
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    if ((s = js_PublishAsyncComplete(js, &po)) != NATS_OK)
        die("waiting for the acknowledgements", s);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_CloseAndWait(0); /* every pending ack freed before the exit (LeakSanitizer) */
    return g_failed ? 1 : 0;
}
