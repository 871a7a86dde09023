/* ps_authmatrix.c - asks popsyncd every client message as one identity and
 * prints what the server allowed (tests/integration/t_auth_matrix.sh).
 *
 * usage: ps_authmatrix --server HOST:PORT --ca F --cert F --key F [--server-name N]
 *          --in-id UUID --in-idnum ID --in-unit CODE --in-town CODE
 *          --out-id UUID --out-idnum ID --out-unit CODE --out-town CODE
 *          --month YYYY-MM --close-month YYYY-MM
 *
 * "in" names a person record the identity should see (its id, ID number,
 * org unit and that unit's township), "out" one it should not.  Both must
 * already be on the server.  Reports ask for --month; the monthly close
 * acts on --close-month (a month of its own per identity, so that one
 * identity's submit or approve does not change what the next one may do).
 * The tool connects with mutual TLS, sends Hello, then one request at a
 * time (the cases below, then every other request type of the message
 * table with an empty body, "-"), and prints one line per case:
 *
 *   TYPE CASE RESULT
 *
 * RESULT is "refused" for an Error frame with the access code (PS_EACCES),
 * "error(CODE)" for any other Error, and otherwise, for cases that look for
 * a record ("in"/"out"), "allowed" when the record (or its count, or its
 * township's row) is in the reply and "no-data" when the reply leaves it
 * out; plain cases ("-") answered normally print "allowed".  Push cases
 * send a new person in the named unit: "allowed" when accepted, "refused"
 * when the change or the whole Push is refused.  The connection closing
 * before an answer prints "closed".  The tool fails when the server answers
 * anything but "refused" to a type the access policy does not let the
 * identity's role send (ps_msg_role_may_send, common/policy.c).
 */
#include "digest.h"
#include "err.h"
#include "frame.h"
#include "ids.h"
#include "msg.h"
#include "msgtab.h"
#include "stream.h"
#include "tls.h"
#include "validate.h"

#include "wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AM_REQ_BASE 100u
#define AM_MAX_PULLS 1000

typedef enum am_op {
    OP_PUSH, OP_PULL, OP_PING, OP_ORGUNITS, OP_CONFLICTS, OP_VERIFY, OP_VERIFY_BUCKET, OP_FETCH,
    OP_QUERY_GROUP, OP_QUERY_LIST, OP_REPORT_MONTHLY, OP_REPORT_QUALITY, OP_CLOSE_SUBMIT, OP_CLOSE_APPROVE,
    OP_CLOSE_STATUS, OP_HISTORY, OP_EMPTY
} am_op_t;

typedef struct am_case {
    uint8_t type;        /* the message sent (PS_MSG_*) */
    const char *variant; /* printed after the type's name: "Query/group"; NULL for none */
    const char *name;    /* "in", "out" or "-" */
    am_op_t op;
    int out;             /* 1: the out-of-scope target */
} am_case_t;

/* Cases written by hand: a message with a record in and out of scope. */
static const am_case_t g_hand_cases[] = {
    {PS_MSG_PUSH, NULL, "in", OP_PUSH, 0},
    {PS_MSG_PUSH, NULL, "out", OP_PUSH, 1},
    {PS_MSG_PULL, NULL, "in", OP_PULL, 0},
    {PS_MSG_PULL, NULL, "out", OP_PULL, 1},
    {PS_MSG_PING, NULL, "-", OP_PING, 0},
    {PS_MSG_ORGUNITS_REQUEST, NULL, "-", OP_ORGUNITS, 0},
    {PS_MSG_CONFLICT_LIST, NULL, "in", OP_CONFLICTS, 0},
    {PS_MSG_CONFLICT_LIST, NULL, "out", OP_CONFLICTS, 1},
    {PS_MSG_VERIFY_REQUEST, NULL, "-", OP_VERIFY, 0},
    {PS_MSG_VERIFY_BUCKET_REQUEST, NULL, "in", OP_VERIFY_BUCKET, 0},
    {PS_MSG_VERIFY_BUCKET_REQUEST, NULL, "out", OP_VERIFY_BUCKET, 1},
    {PS_MSG_FETCH_REQUEST, NULL, "in", OP_FETCH, 0},
    {PS_MSG_FETCH_REQUEST, NULL, "out", OP_FETCH, 1},
    {PS_MSG_QUERY, "group", "in", OP_QUERY_GROUP, 0},
    {PS_MSG_QUERY, "group", "out", OP_QUERY_GROUP, 1},
    {PS_MSG_QUERY, "list", "in", OP_QUERY_LIST, 0},
    {PS_MSG_QUERY, "list", "out", OP_QUERY_LIST, 1},
    {PS_MSG_REPORT_REQUEST, "monthly", "in", OP_REPORT_MONTHLY, 0},
    {PS_MSG_REPORT_REQUEST, "monthly", "out", OP_REPORT_MONTHLY, 1},
    {PS_MSG_REPORT_REQUEST, "quality", "in", OP_REPORT_QUALITY, 0},
    {PS_MSG_REPORT_REQUEST, "quality", "out", OP_REPORT_QUALITY, 1},
    {PS_MSG_CLOSE_REQUEST, "submit", "in", OP_CLOSE_SUBMIT, 0},
    {PS_MSG_CLOSE_REQUEST, "submit", "out", OP_CLOSE_SUBMIT, 1},
    {PS_MSG_CLOSE_REQUEST, "approve", "in", OP_CLOSE_APPROVE, 0},
    {PS_MSG_CLOSE_REQUEST, "status", "in", OP_CLOSE_STATUS, 0},
    {PS_MSG_HISTORY_REQUEST, NULL, "in", OP_HISTORY, 0},
    {PS_MSG_HISTORY_REQUEST, NULL, "out", OP_HISTORY, 1},
};
#define AM_NHAND (sizeof(g_hand_cases) / sizeof(g_hand_cases[0]))

/* The hand cases, then every other client -> server type of the message
 * table (common/msgtab.def) but Hello, sent with an empty body: a type
 * added to the table is asked without editing this tool, and its line
 * appears in the output until the test's expected matrix says what it
 * should be. */
static am_case_t g_cases[AM_NHAND + 256];
static size_t g_ncases;

static void build_cases(void)
{
    size_t n;
    const ps_msg_info_t *t = ps_msg_table(&n);
    memcpy(g_cases, g_hand_cases, sizeof(g_hand_cases));
    g_ncases = AM_NHAND;
    for (size_t i = 0; i < n; i++) {
        int covered = t[i].type == PS_MSG_HELLO || t[i].dir != PS_MSG_DIR_C2S;
        for (size_t k = 0; k < AM_NHAND && !covered; k++)
            covered = g_hand_cases[k].type == t[i].type;
        if (!covered)
            g_cases[g_ncases++] = (am_case_t){t[i].type, NULL, "-", OP_EMPTY, 0};
    }
}

/* "Query/group", "Ping". */
static const char *case_label(const am_case_t *c, char *buf, size_t cap)
{
    if (!c->variant)
        return ps_frame_type_name(c->type);
    snprintf(buf, cap, "%s/%s", ps_frame_type_name(c->type), c->variant);
    return buf;
}

/* One side of the matrix: a record and where it lives. */
typedef struct am_target {
    const char *id_str, *idnum, *unit, *town;
    uint8_t id[PS_ID_LEN];
} am_target_t;

typedef struct am {
    uv_loop_t loop;
    ps_stream_t s;
    am_target_t tgt[2];
    const char *month, *close_month;
    uint8_t node[PS_ID_LEN];
    size_t cur;          /* index of the case in flight */
    int welcomed;
    int role;            /* ps_role_t from Welcome.role */
    int found;           /* the case's target was seen in a reply so far */
    int pulls;           /* Pull requests sent for the current case */
    uint64_t lcn;
    int failed;
} am_t;

static uint32_t req_id(const am_t *a)
{
    return AM_REQ_BASE + (uint32_t)a->cur;
}

static void send_msg(am_t *a, uint8_t type, const ProtobufCMessage *m)
{
    ps_buf_t b;
    ps_buf_init(&b);
    if (ps_msg_pack_frame(&b, type, req_id(a), m) == PS_OK)
        ps_stream_write(&a->s, ps_buf_head(&b), ps_buf_size(&b));
    ps_buf_free(&b);
}

/* A valid 18-character ID number for someone born on date (YYYYMMDD) in
 * the region of unit (its first six digits), sequence seq. */
static void make_idnum(const char *unit, const char *date, unsigned seq, char out[19])
{
    snprintf(out, 19, "%.6s%.8s%03u", unit, date, seq % 1000);
    out[17] = ps_id_check_char(out);
    out[18] = '\0';
}

static void send_push(am_t *a, const am_target_t *t)
{
    Popsync__Push p = POPSYNC__PUSH__INIT;
    Popsync__Change ch = POPSYNC__CHANGE__INIT, *chp = &ch;
    Popsync__Record r = POPSYNC__RECORD__INIT;
    Popsync__Person per = POPSYNC__PERSON__INIT;
    uint8_t id[PS_ID_LEN];
    char idnum[19], date[9], birth[11];
    uint8_t rnd[4];

    ps_uuid7(id);
    ps_random(rnd, sizeof(rnd));
    /* A random birth day of 1990 and an odd sequence digit (male, GB
     * 11643): ~168,000 numbers, so the pushes of one run (all in region
     * 130203) do not draw a number taken earlier, which the server's
     * one-person-per-number rule would refuse (500 numbers did, about one
     * run in a hundred). */
    snprintf(date, sizeof(date), "1990%02u%02u", rnd[2] % 12u + 1, rnd[3] % 28u + 1);
    snprintf(birth, sizeof(birth), "1990-%.2s-%.2s", date + 4, date + 6);
    make_idnum(t->unit, date, (unsigned)((rnd[0] << 8 | rnd[1]) % 500) * 2 + 1, idnum);
    per.id_number = idnum;
    per.name = "授权测试";
    per.sex = POPSYNC__SEX__SEX_MALE;
    per.birth_date = birth;
    r.id.data = id;
    r.id.len = PS_ID_LEN;
    r.kind = POPSYNC__KIND__KIND_PERSON;
    r.orgunit = (char *)t->unit;
    r.created_ms = r.updated_ms = (int64_t)ps_now_ms();
    r.changed_by.data = a->node;
    r.changed_by.len = PS_ID_LEN;
    r.body_case = POPSYNC__RECORD__BODY_PERSON;
    r.person = &per;
    ch.lcn = ++a->lcn;
    ch.record = &r;
    p.n_changes = 1;
    p.changes = &chp;
    send_msg(a, PS_MSG_PUSH, &p.base);
}

static void send_pull(am_t *a, uint64_t cursor)
{
    Popsync__Pull p = POPSYNC__PULL__INIT;
    p.cursor = cursor;
    a->pulls++;
    send_msg(a, PS_MSG_PULL, &p.base);
}

static void send_query(am_t *a, const am_target_t *t, int list)
{
    Popsync__Query q = POPSYNC__QUERY__INIT;
    Popsync__QueryFilter f = POPSYNC__QUERY_FILTER__INIT, *fp = &f;
    char *group[1] = {"unit"};
    q.kind = POPSYNC__KIND__KIND_PERSON;
    f.field = "id_number";
    f.value = (char *)t->idnum;
    q.n_filters = 1;
    q.filters = &fp;
    if (list) {
        q.list = 1;
        q.limit = 10000;
    } else {
        q.n_group_by = 1;
        q.group_by = group;
    }
    send_msg(a, PS_MSG_QUERY, &q.base);
}

/* A message of the type with every field at its default. */
static void send_empty(am_t *a, uint8_t type)
{
    const ProtobufCMessageDescriptor *d = ps_msg_descriptor(type);
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    if (!m) {
        a->failed = 1;
        return;
    }
    protobuf_c_message_init(d, m);
    send_msg(a, type, m);
    free(m);
}

static void send_case(am_t *a)
{
    const am_case_t *c = &g_cases[a->cur];
    const am_target_t *t = &a->tgt[c->out];
    a->found = 0;
    a->pulls = 0;
    switch (c->op) {
    case OP_PUSH: send_push(a, t); break;
    case OP_PULL: send_pull(a, 0); break;
    case OP_PING: {
        Popsync__Ping p = POPSYNC__PING__INIT;
        p.nonce = 7;
        send_msg(a, PS_MSG_PING, &p.base);
        break;
    }
    case OP_ORGUNITS: {
        Popsync__OrgUnitsRequest o = POPSYNC__ORG_UNITS_REQUEST__INIT;
        send_msg(a, PS_MSG_ORGUNITS_REQUEST, &o.base);
        break;
    }
    case OP_CONFLICTS: {
        Popsync__ConflictList l = POPSYNC__CONFLICT_LIST__INIT;
        l.include_resolved = 1;
        send_msg(a, PS_MSG_CONFLICT_LIST, &l.base);
        break;
    }
    case OP_VERIFY: {
        Popsync__VerifyRequest v = POPSYNC__VERIFY_REQUEST__INIT;
        send_msg(a, PS_MSG_VERIFY_REQUEST, &v.base);
        break;
    }
    case OP_VERIFY_BUCKET: {
        Popsync__VerifyBucketRequest v = POPSYNC__VERIFY_BUCKET_REQUEST__INIT;
        uint32_t b = ps_verify_bucket(t->id);
        v.n_buckets = 1;
        v.buckets = &b;
        send_msg(a, PS_MSG_VERIFY_BUCKET_REQUEST, &v.base);
        break;
    }
    case OP_FETCH: {
        Popsync__FetchRequest f = POPSYNC__FETCH_REQUEST__INIT;
        ProtobufCBinaryData id;
        id.data = (uint8_t *)t->id;
        id.len = PS_ID_LEN;
        f.n_ids = 1;
        f.ids = &id;
        send_msg(a, PS_MSG_FETCH_REQUEST, &f.base);
        break;
    }
    case OP_HISTORY: {
        Popsync__HistoryRequest h = POPSYNC__HISTORY_REQUEST__INIT;
        h.id.data = (uint8_t *)t->id;
        h.id.len = PS_ID_LEN;
        send_msg(a, PS_MSG_HISTORY_REQUEST, &h.base);
        break;
    }
    case OP_QUERY_GROUP: send_query(a, t, 0); break;
    case OP_QUERY_LIST: send_query(a, t, 1); break;
    case OP_REPORT_MONTHLY:
    case OP_REPORT_QUALITY: {
        Popsync__ReportRequest r = POPSYNC__REPORT_REQUEST__INIT;
        r.report = c->op == OP_REPORT_MONTHLY ? "monthly" : "quality";
        r.month = (char *)a->month;
        r.orgunit = (char *)t->town;
        send_msg(a, PS_MSG_REPORT_REQUEST, &r.base);
        break;
    }
    case OP_EMPTY: send_empty(a, c->type); break;
    case OP_CLOSE_SUBMIT:
    case OP_CLOSE_APPROVE:
    case OP_CLOSE_STATUS: {
        Popsync__CloseRequest r = POPSYNC__CLOSE_REQUEST__INIT;
        r.month = (char *)a->close_month;
        r.orgunit = (char *)t->town;
        r.action = c->op == OP_CLOSE_SUBMIT ? "submit" : c->op == OP_CLOSE_APPROVE ? "approve" : "status";
        r.note = "";
        send_msg(a, PS_MSG_CLOSE_REQUEST, &r.base);
        break;
    }
    }
}

static void finish_case(am_t *a, const char *result)
{
    const am_case_t *c = &g_cases[a->cur];
    char label[64];
    printf("%s %s %s\n", case_label(c, label, sizeof(label)), c->name, result);
    /* What the policy says a role may send must hold on the wire too.  (A
     * role it allows may still be refused a case by scope: Query/list.) */
    if (!ps_msg_role_may_send(c->type, a->role) && strcmp(result, "refused") != 0) {
        fprintf(stderr, "ps_authmatrix: the policy says role %s may not send %s, but the server answered: %s\n",
                ps_role_name((ps_role_t)a->role), ps_frame_type_name(c->type), result);
        a->failed = 1;
    }
    fflush(stdout);
    a->cur++;
    if (a->cur < g_ncases)
        send_case(a);
    else
        ps_stream_shutdown(&a->s);
}

static int same_id(const ProtobufCBinaryData *d, const uint8_t id[PS_ID_LEN])
{
    return d->len == PS_ID_LEN && memcmp(d->data, id, PS_ID_LEN) == 0;
}

/* Judges a reply of the case in flight; returns 1 when the case is done. */
static int judge(am_t *a, const ps_frame_t *f, ProtobufCMessage *m, const char **result)
{
    const am_case_t *c = &g_cases[a->cur];
    const am_target_t *t = &a->tgt[c->out];
    *result = "allowed";
    switch (f->type) {
    case PS_MSG_PUSH_RESULT: {
        Popsync__PushResult *r = (Popsync__PushResult *)m;
        int ok = r->n_results == 1 && r->results[0]->status == POPSYNC__CHANGE_STATUS__CHANGE_STATUS_ACCEPTED;
        *result = ok ? "allowed" : "refused";
        return 1;
    }
    case PS_MSG_PULL_BATCH: {
        Popsync__PullBatch *b = (Popsync__PullBatch *)m;
        for (size_t i = 0; i < b->n_entries; i++) {
            const Popsync__FeedEntry *e = b->entries[i];
            if (e->record && same_id(&e->record->id, t->id))
                a->found = 1;
        }
        if (c->op == OP_PULL && b->more && a->pulls < AM_MAX_PULLS) {
            send_pull(a, b->cursor);
            return 0;
        }
        break;
    }
    case PS_MSG_CONFLICT_LIST_RESULT: {
        Popsync__ConflictListResult *r = (Popsync__ConflictListResult *)m;
        for (size_t i = 0; i < r->n_conflicts; i++)
            if (same_id(&r->conflicts[i]->record_id, t->id))
                a->found = 1;
        break;
    }
    case PS_MSG_VERIFY_BUCKET_LIST: {
        Popsync__VerifyBucketList *l = (Popsync__VerifyBucketList *)m;
        for (size_t i = 0; i < l->n_items; i++)
            if (same_id(&l->items[i]->id, t->id))
                a->found = 1;
        break;
    }
    case PS_MSG_QUERY_RESULT: {
        Popsync__QueryResult *q = (Popsync__QueryResult *)m;
        for (size_t i = 0; i < q->n_rows; i++)
            if (q->rows[i]->count > 0)
                a->found = 1;
        for (size_t i = 0; i < q->n_records; i++)
            if (same_id(&q->records[i]->id, t->id))
                a->found = 1;
        if (!q->done)
            return 0;
        break;
    }
    case PS_MSG_REPORT_RESULT: {
        Popsync__ReportResult *r = (Popsync__ReportResult *)m;
        for (size_t i = 0; i < r->n_rows; i++)
            if (r->rows[i]->orgunit && !strcmp(r->rows[i]->orgunit, t->town))
                a->found = 1;
        for (size_t i = 0; i < r->n_issues; i++)
            if (r->issues[i]->orgunit && !strcmp(r->issues[i]->orgunit, t->unit))
                a->found = 1;
        break;
    }
    case PS_MSG_HISTORY_RESULT: {
        Popsync__HistoryResult *r = (Popsync__HistoryResult *)m;
        for (size_t i = 0; i < r->n_versions; i++)
            if (r->versions[i]->record && same_id(&r->versions[i]->record->id, t->id))
                a->found = 1;
        break;
    }
    case PS_MSG_CLOSE_RESULT:
    case PS_MSG_PONG:
    case PS_MSG_ORGUNITS:
    case PS_MSG_VERIFY_DIGESTS: return 1;
    default:
        /* A type of the table asked with an empty body: its reply is enough. */
        if (c->op != OP_EMPTY || f->type != ps_msg_info(c->type)->reply)
            *result = "unexpected";
        return 1;
    }
    if (strcmp(c->name, "-") != 0)
        *result = a->found ? "allowed" : "no-data";
    return 1;
}

static void on_frame(am_t *a, const ps_frame_t *f)
{
    ProtobufCMessage *m = NULL;
    const char *result = NULL;
    char buf[64], label[64];

    if (ps_msg_unpack(f->type, f->body, f->body_len, &m) != PS_OK) {
        fprintf(stderr, "ps_authmatrix: cannot unpack a %s frame\n", ps_frame_type_name(f->type));
        a->failed = 1;
        return;
    }
    if (f->type == PS_MSG_WELCOME) {
        a->welcomed = 1;
        a->role = (int)ps_role_from_name(((Popsync__Welcome *)m)->role);
        send_case(a);
    } else if (!a->welcomed || a->cur >= g_ncases) {
        fprintf(stderr, "ps_authmatrix: unexpected %s before Welcome or after the last case\n",
                ps_frame_type_name(f->type));
        if (f->type == PS_MSG_ERROR)
            fprintf(stderr, "  error: %s\n", ((Popsync__Error *)m)->message);
        a->failed = 1;
    } else if (f->request_id != req_id(a)) {
        fprintf(stderr, "ps_authmatrix: reply to request %u while waiting for %u\n", f->request_id, req_id(a));
        a->failed = 1;
    } else if (f->type == PS_MSG_ERROR) {
        Popsync__Error *e = (Popsync__Error *)m;
        if (e->code == (uint32_t)-PS_EACCES) {
            result = "refused";
        } else {
            snprintf(buf, sizeof(buf), "error(%u)", e->code);
            result = buf;
        }
        /* The reason goes to stderr for the test's log, not the matrix. */
        fprintf(stderr, "%s %s: %s\n", case_label(&g_cases[a->cur], label, sizeof(label)), g_cases[a->cur].name,
                e->message);
    } else if (!judge(a, f, m, &result)) {
        result = NULL;
    }
    ps_msg_free(m);
    if (result)
        finish_case(a, result);
}

static void on_handshake(ps_stream_t *s, int status)
{
    am_t *a = s->data;
    Popsync__Hello h = POPSYNC__HELLO__INIT;
    ps_buf_t b;
    if (status) {
        fprintf(stderr, "ps_authmatrix: handshake failed: %s\n", ps_tls_last_error(s->tls));
        a->failed = 1;
        return;
    }
    ps_random(a->node, sizeof(a->node));
    h.protocol_version = PS_PROTOCOL_VERSION;
    h.node.data = a->node;
    h.node.len = PS_ID_LEN;
    h.software = "ps_authmatrix";
    ps_buf_init(&b);
    ps_msg_pack_frame(&b, PS_MSG_HELLO, 1, &h.base);
    ps_stream_write(s, ps_buf_head(&b), ps_buf_size(&b));
    ps_buf_free(&b);
}

static void on_read(ps_stream_t *s)
{
    am_t *a = s->data;
    ps_buf_t *in = &s->plain_in;
    for (;;) {
        ps_frame_t f;
        size_t used;
        if (ps_frame_decode(ps_buf_head(in), ps_buf_size(in), 64u << 20, &f, &used) != PS_OK)
            break;
        on_frame(a, &f);
        ps_buf_consume(in, used);
        if (a->failed) {
            ps_stream_close(s);
            return;
        }
    }
}

static void on_error(ps_stream_t *s, int err)
{
    am_t *a = s->data;
    char label[64];
    if (a->cur < g_ncases) {
        if (a->welcomed)
            printf("%s %s closed\n", case_label(&g_cases[a->cur], label, sizeof(label)), g_cases[a->cur].name);
        fprintf(stderr, "ps_authmatrix: connection ended (%s) before the last case\n", ps_strerror(err));
        a->failed = 1;
    }
    ps_stream_close(s);
}

static const ps_stream_cbs_t cbs = {on_handshake, on_read, on_error, NULL, NULL};

int main(int argc, char **argv)
{
    const char *server = NULL, *ca = NULL, *cert = NULL, *key = NULL, *sname = "popsyncd";
    static am_t a;
    ps_tls_conf_t *conf = NULL;
    ps_tls_t *tls = NULL;
    struct sockaddr_in addr;
    char err[512], host[64];
    int port;

    memset(&a, 0, sizeof(a));
    build_cases();
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--server")) server = v;
        else if (!strcmp(o, "--ca")) ca = v;
        else if (!strcmp(o, "--cert")) cert = v;
        else if (!strcmp(o, "--key")) key = v;
        else if (!strcmp(o, "--server-name")) sname = v;
        else if (!strcmp(o, "--in-id")) a.tgt[0].id_str = v;
        else if (!strcmp(o, "--in-idnum")) a.tgt[0].idnum = v;
        else if (!strcmp(o, "--in-unit")) a.tgt[0].unit = v;
        else if (!strcmp(o, "--in-town")) a.tgt[0].town = v;
        else if (!strcmp(o, "--out-id")) a.tgt[1].id_str = v;
        else if (!strcmp(o, "--out-idnum")) a.tgt[1].idnum = v;
        else if (!strcmp(o, "--out-unit")) a.tgt[1].unit = v;
        else if (!strcmp(o, "--out-town")) a.tgt[1].town = v;
        else if (!strcmp(o, "--month")) a.month = v;
        else if (!strcmp(o, "--close-month")) a.close_month = v;
        else {
            fprintf(stderr, "ps_authmatrix: unknown option %s\n", o);
            return 2;
        }
    }
    for (int i = 0; i < 2; i++)
        if (!a.tgt[i].id_str || !a.tgt[i].idnum || !a.tgt[i].unit || !a.tgt[i].town ||
            ps_uuid_parse(a.tgt[i].id_str, a.tgt[i].id) != PS_OK)
            server = NULL;
    if (!server || !ca || !cert || !key || !a.month || !a.close_month ||
        sscanf(server, "%63[^:]:%d", host, &port) != 2) {
        fprintf(stderr, "usage: ps_authmatrix --server HOST:PORT --ca F --cert F --key F\n"
                        "         --month YYYY-MM --close-month YYYY-MM\n"
                        "         --in-id UUID --in-idnum ID --in-unit CODE --in-town CODE\n"
                        "         --out-id UUID --out-idnum ID --out-unit CODE --out-town CODE\n");
        return 2;
    }
    if (ps_tls_conf_new(&conf, PS_TLS_CLIENT, ca, cert, key, NULL, err, sizeof(err))) {
        fprintf(stderr, "ps_authmatrix: tls: %s\n", err);
        return 1;
    }
    if (ps_tls_new(&tls, conf, sname) != PS_OK) {
        ps_tls_conf_free(conf);
        return 1;
    }
    uv_loop_init(&a.loop);
    ps_stream_init(&a.s, &a.loop, tls, &cbs, &a);
    ps_stream_set_timeouts(&a.s, 10000, 120000);
    uv_ip4_addr(host, port, &addr);
    ps_stream_connect(&a.s, (struct sockaddr *)&addr);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    ps_tls_conf_free(conf);
    return a.failed || a.cur < g_ncases ? 1 : 0;
}
