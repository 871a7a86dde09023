/* gen_corpus.c - writes the fuzz targets' seed inputs (tests/fuzz/corpus).
 *
 * usage: gen_corpus OUTDIR KIND:FILE...
 *
 * FILE is a CSV or JSON export (`popsync export`) of records of KIND
 * (person, household, ...).  Writes, under OUTDIR:
 *   fuzz_frame/   real frames made with ps_msg_pack_frame, alone and pipelined
 *   fuzz_msg/     one body per message type, with the target's type byte
 *                 (types of the message table without one: their empty body)
 *   fuzz_validate/ each record of the files, packed
 *   fuzz_csv/, fuzz_json/  each file, with the target's kind byte
 * (fuzz_orgunits' seeds are org-unit files, copied by make_corpus.sh.)
 * Deterministic: node ids and nonces are fixed, so rerunning gives the same
 * files.  Built with the fuzz targets; not part of the test run.
 */
#include "err.h"
#include "frame.h"
#include "msg.h"
#include "msgtab.h"
#include "recio.h"
#include "record_fmt.h"

#include "wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *g_out;
static uint8_t g_seeded[256]; /* message types with a fuzz_msg seed */
static Popsync__Record *g_recs[64];
static size_t g_nrecs;

static void put_file(const char *target, const char *name, const uint8_t *p, size_t n)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s", g_out, target);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/%s", g_out, target, name);
    f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "gen_corpus: cannot write %s\n", path);
        exit(1);
    }
}

/* The fuzz_msg type byte for a frame type: its row in the message table
 * (see fuzz_msg.c). */
static uint8_t msg_index(uint8_t type)
{
    size_t n;
    const ps_msg_info_t *t = ps_msg_table(&n);
    for (size_t i = 0; i < n; i++)
        if (t[i].type == type)
            return (uint8_t)i;
    fprintf(stderr, "gen_corpus: type %u is not in the message table\n", type);
    exit(1);
}

/* A type of the message table with no seed of its own above (one added
 * later) gets its empty body, so fuzz_msg starts from every type. */
static void seed_the_rest(void)
{
    size_t n;
    const ps_msg_info_t *t = ps_msg_table(&n);
    for (size_t i = 0; i < n; i++) {
        char name[64];
        uint8_t ix = (uint8_t)i;
        if (g_seeded[t[i].type])
            continue;
        snprintf(name, sizeof(name), "empty-%s", t[i].name);
        put_file("fuzz_msg", name, &ix, 1);
    }
}

/* Writes msg as a fuzz_msg seed and appends its frame to frames. */
static void seed(const char *name, uint8_t type, const ProtobufCMessage *msg, ps_buf_t *frames)
{
    ps_buf_t b;
    uint8_t ix = msg_index(type);
    g_seeded[type] = 1;
    ps_buf_init(&b);
    if (ps_msg_pack_frame(&b, type, 7, msg) != PS_OK)
        exit(1);
    ps_buf_append(frames, ps_buf_head(&b), ps_buf_size(&b));
    {
        ps_buf_t s;
        ps_buf_init(&s);
        ps_buf_append(&s, &ix, 1);
        ps_buf_append(&s, ps_buf_head(&b) + PS_FRAME_HDR, ps_buf_size(&b) - PS_FRAME_HDR);
        put_file("fuzz_msg", name, ps_buf_head(&s), ps_buf_size(&s));
        ps_buf_free(&s);
    }
    {
        /* fuzz_frame: limit byte 6 (16 MiB), then the frame alone. */
        ps_buf_t s;
        uint8_t lim = 6;
        ps_buf_init(&s);
        ps_buf_append(&s, &lim, 1);
        ps_buf_append(&s, ps_buf_head(&b), ps_buf_size(&b));
        put_file("fuzz_frame", name, ps_buf_head(&s), ps_buf_size(&s));
        ps_buf_free(&s);
    }
    ps_buf_free(&b);
}

static int keep_row(ps_recio_row_t *row, void *arg)
{
    (void)arg;
    if (row->rec && g_nrecs < sizeof(g_recs) / sizeof(g_recs[0]))
        g_recs[g_nrecs++] = row->rec;
    else if (row->rec)
        ps_record_free(row->rec);
    return 0;
}

int main(int argc, char **argv)
{
    static uint8_t node[16] = {0x01, 0x9b, 0x76, 0xda, 0xa8, 0x00, 0x72, 0x47,
                               0x90, 0x7a, 0x2d, 0xd0, 0x8b, 0xba, 0x98, 0x92};
    ps_buf_t frames;

    if (argc < 2) {
        fprintf(stderr, "usage: gen_corpus OUTDIR KIND:FILE...\n");
        return 2;
    }
    g_out = argv[1];
    mkdir(g_out, 0755);
    for (int i = 2; i < argc; i++) {
        char kname[32], *colon = strchr(argv[i], ':');
        const char *path;
        char *data = NULL, name[64];
        size_t len = 0, before = g_nrecs;
        int kind, fmt;
        uint8_t kb;
        if (!colon || (size_t)(colon - argv[i]) >= sizeof(kname)) {
            fprintf(stderr, "gen_corpus: %s: want KIND:FILE\n", argv[i]);
            return 2;
        }
        memcpy(kname, argv[i], (size_t)(colon - argv[i]));
        kname[colon - argv[i]] = 0;
        path = colon + 1;
        kind = ps_kind_from_name(kname);
        fmt = ps_recio_format_from_path(path);
        if (kind <= 0 || fmt < 0 || ps_recio_load_file(path, &data, &len) != PS_OK) {
            fprintf(stderr, "gen_corpus: %s: unknown kind, format or file\n", argv[i]);
            return 1;
        }
        ps_recio_read(fmt, data, len, kind, keep_row, NULL);
        if (g_nrecs == before) {
            fprintf(stderr, "gen_corpus: %s: no records read\n", path);
            return 1;
        }
        {
            uint8_t *s = malloc(len + 1);
            kb = (uint8_t)kind;
            s[0] = kb;
            memcpy(s + 1, data, len);
            snprintf(name, sizeof(name), "%s.%s", kname, fmt == PS_RECIO_CSV ? "csv" : "json");
            put_file(fmt == PS_RECIO_CSV ? "fuzz_csv" : "fuzz_json", name, s, len + 1);
            free(s);
        }
        free(data);
    }

    /* fuzz_validate: each record, packed. */
    for (size_t i = 0; i < g_nrecs; i++) {
        size_t n = protobuf_c_message_get_packed_size(&g_recs[i]->base);
        uint8_t *p = malloc(n ? n : 1);
        char name[64];
        protobuf_c_message_pack(&g_recs[i]->base, p);
        snprintf(name, sizeof(name), "record-%02zu-%s", i, ps_kind_name(g_recs[i]->kind));
        put_file("fuzz_validate", name, p, n);
        free(p);
    }

    ps_buf_init(&frames);
    {
        Popsync__Hello m = POPSYNC__HELLO__INIT;
        m.protocol_version = 1;
        m.node.data = node;
        m.node.len = 16;
        m.cursor = 42;
        m.software = "popsync 0.1.0";
        seed("hello", PS_MSG_HELLO, &m.base, &frames);
    }
    {
        Popsync__Push m = POPSYNC__PUSH__INIT;
        Popsync__Change ch[4], *chp[4];
        Popsync__Rev base = POPSYNC__REV__INIT;
        size_t n = g_nrecs < 4 ? g_nrecs : 4;
        base.gen = 1;
        base.hlc = (uint64_t)1795925466367 << 16;
        base.node.data = node;
        base.node.len = 16;
        for (size_t i = 0; i < n; i++) {
            popsync__change__init(&ch[i]);
            ch[i].lcn = i + 1;
            ch[i].record = g_recs[i];
            if (i == 1)
                ch[i].base_rev = &base;
            chp[i] = &ch[i];
        }
        m.n_changes = n;
        m.changes = chp;
        seed("push", PS_MSG_PUSH, &m.base, &frames);
    }
    {
        Popsync__Pull m = POPSYNC__PULL__INIT;
        m.cursor = 1000;
        m.max_records = 500;
        m.max_bytes = 1u << 20;
        seed("pull", PS_MSG_PULL, &m.base, &frames);
    }
    {
        Popsync__Ping m = POPSYNC__PING__INIT;
        m.nonce = 0x1234567890abcdefull;
        seed("ping", PS_MSG_PING, &m.base, &frames);
    }
    {
        Popsync__OrgUnitsRequest m = POPSYNC__ORG_UNITS_REQUEST__INIT;
        seed("orgunits_request", PS_MSG_ORGUNITS_REQUEST, &m.base, &frames);
    }
    {
        Popsync__ConflictList m = POPSYNC__CONFLICT_LIST__INIT;
        m.include_resolved = 1;
        m.max = 10;
        seed("conflict_list", PS_MSG_CONFLICT_LIST, &m.base, &frames);
    }
    {
        Popsync__VerifyRequest m = POPSYNC__VERIFY_REQUEST__INIT;
        seed("verify_request", PS_MSG_VERIFY_REQUEST, &m.base, &frames);
    }
    {
        Popsync__VerifyBucketRequest m = POPSYNC__VERIFY_BUCKET_REQUEST__INIT;
        uint32_t b[3] = {0, 17, 255};
        m.buckets = b;
        m.n_buckets = 3;
        seed("verify_bucket_request", PS_MSG_VERIFY_BUCKET_REQUEST, &m.base, &frames);
    }
    {
        Popsync__FetchRequest m = POPSYNC__FETCH_REQUEST__INIT;
        ProtobufCBinaryData ids[2];
        ids[0].data = node;
        ids[0].len = 16;
        ids[1] = g_nrecs ? g_recs[0]->id : ids[0];
        m.ids = ids;
        m.n_ids = 2;
        seed("fetch_request", PS_MSG_FETCH_REQUEST, &m.base, &frames);
    }
    {
        Popsync__Query m = POPSYNC__QUERY__INIT;
        Popsync__QueryFilter f = POPSYNC__QUERY_FILTER__INIT, *fp = &f;
        char *gb[2] = {"township", "sex"};
        m.kind = POPSYNC__KIND__KIND_PERSON;
        m.orgunit = "130203001000";
        m.date_field = "birth_date";
        m.date_from = "1950-01-01";
        m.date_to = "2020-12-31";
        f.field = "registration";
        f.value = "local";
        m.filters = &fp;
        m.n_filters = 1;
        m.group_by = gb;
        m.n_group_by = 2;
        seed("query", PS_MSG_QUERY, &m.base, &frames);
        m.n_group_by = 0;
        m.list = 1;
        m.limit = 100;
        m.after_id.data = node;
        m.after_id.len = 16;
        seed("query_list", PS_MSG_QUERY, &m.base, &frames);
    }
    {
        Popsync__ReportRequest m = POPSYNC__REPORT_REQUEST__INIT;
        m.report = "monthly";
        m.month = "2026-01";
        m.orgunit = "130203001000";
        seed("report_request", PS_MSG_REPORT_REQUEST, &m.base, &frames);
    }
    {
        Popsync__CloseRequest m = POPSYNC__CLOSE_REQUEST__INIT;
        m.month = "2026-01";
        m.orgunit = "130203001000";
        m.action = "submit";
        m.note = "ok";
        seed("close_request", PS_MSG_CLOSE_REQUEST, &m.base, &frames);
    }
    {
        Popsync__Error m = POPSYNC__ERROR__INIT;
        m.code = 22;
        m.message = "malformed Push body";
        m.fatal = 1;
        seed("error", PS_MSG_ERROR, &m.base, &frames);
    }
    {
        Popsync__Welcome m = POPSYNC__WELCOME__INIT;
        m.protocol_version = 1;
        m.server_node.data = node;
        m.server_node.len = 16;
        m.head = 99;
        m.role = "township";
        m.orgunit = "130203001000";
        m.max_frame = 16u << 20;
        m.max_batch = 10000;
        seed("welcome", PS_MSG_WELCOME, &m.base, &frames);
    }
    {
        /* A PullBatch built the server's way (hand-encoded entries). */
        ps_buf_t b, s;
        uint8_t hdr[PS_FRAME_HDR], ix = msg_index(PS_MSG_PULL_BATCH), lim = 6;
        ps_buf_init(&b);
        for (size_t i = 0; i < g_nrecs && i < 3; i++) {
            size_t n = protobuf_c_message_get_packed_size(&g_recs[i]->base);
            uint8_t *p = malloc(n ? n : 1);
            protobuf_c_message_pack(&g_recs[i]->base, p);
            ps_msg_feed_entry_append(&b, i + 1, p, n);
            free(p);
        }
        ps_msg_feed_gone_append(&b, 4, node);
        ps_msg_pull_batch_finish(&b, 4, 1, 10);
        ps_buf_init(&s);
        ps_buf_append(&s, &ix, 1);
        ps_buf_append(&s, ps_buf_head(&b), ps_buf_size(&b));
        put_file("fuzz_msg", "pull_batch", ps_buf_head(&s), ps_buf_size(&s));
        g_seeded[PS_MSG_PULL_BATCH] = 1;
        ps_buf_reset(&s);
        ps_frame_encode_header(hdr, PS_MSG_PULL_BATCH, 0, 9, ps_buf_size(&b));
        ps_buf_append(&s, &lim, 1);
        ps_buf_append(&s, hdr, sizeof(hdr));
        ps_buf_append(&s, ps_buf_head(&b), ps_buf_size(&b));
        put_file("fuzz_frame", "pull_batch", ps_buf_head(&s), ps_buf_size(&s));
        ps_buf_free(&s);
        ps_buf_free(&b);
    }
    {
        /* Every frame above, pipelined in one stream, under two limits. */
        ps_buf_t s;
        uint8_t lim = 6;
        ps_buf_init(&s);
        ps_buf_append(&s, &lim, 1);
        ps_buf_append(&s, ps_buf_head(&frames), ps_buf_size(&frames));
        put_file("fuzz_frame", "pipelined", ps_buf_head(&s), ps_buf_size(&s));
        ps_buf_head(&s)[0] = 4; /* 1 KiB limit: the Push is refused */
        put_file("fuzz_frame", "pipelined-small-limit", ps_buf_head(&s), ps_buf_size(&s));
        ps_buf_free(&s);
    }
    ps_buf_free(&frames);
    seed_the_rest();
    for (size_t i = 0; i < g_nrecs; i++)
        ps_record_free(g_recs[i]);
    printf("gen_corpus: %zu records, seeds written under %s\n", g_nrecs, g_out);
    return 0;
}
