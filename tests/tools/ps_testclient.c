/* ps_testclient.c - a TLS client for protocol tests: sends chosen bytes.
 *
 * usage: ps_testclient --server HOST:PORT --ca F --cert F --key F [--server-name N]
 *                      [--hello] [--hex HEX]... [--flood N] [--no-read]
 *                      [--conns N] [--wait MS] [--dump]
 *
 * Connects with mutual TLS, optionally sends a valid Hello, then each --hex
 * argument as raw bytes, then --flood N pipelined Pull requests (cursor 0,
 * request ids 100..), and prints every frame the server sends back
 * ("frame TYPE req=N [error: MESSAGE]").  Ends with "closed" when the server
 * closes the connection or "open" when it is still open after --wait ms
 * (default 2000).  With --flood it also prints "received F frames B bytes".
 *
 * --dump adds each reply's body in hex to its line (" body HEX"), except
 * Welcome's (it carries the server's clock), so a test can compare two
 * answers byte for byte.
 *
 * --node HEX (32 hex digits) makes the Hello say that node id instead of a
 * random one.  A PushResult is printed with its results:
 * "frame PushResult req=N [lcn=L status=S seq=Q gen=G]...".
 *
 * --no-read stops reading from the socket once everything is sent: a client
 * that never reads its replies (the server must bound what it queues).
 *
 * --conns N opens N such connections from one process (started 50 at a time)
 * and prints, instead of the per-frame lines, one summary:
 *   "conns N handshake_ok H welcome W errors E closed C open O"
 * and "first error: MESSAGE" when any Error frame arrived.  The --wait
 * period starts once every connection has finished its handshake.
 *
 * --push-unknown BYTES (after --hello) sends one Push (request id 2) of
 * three new persons in the certificate's unit: lcn 1 carries an unknown
 * field number 100 of BYTES bytes, lcn 2 is plain, lcn 3 is a tombstone
 * whose name is 20,000 bytes; it prints one line per ChangeResult:
 *   "result lcn=L status=S [errors: FIELD: REASON; ...]"
 * and ends (as when --wait runs out) once the PushResult is in.
 *
 * --trickle HEX (one connection) sends HEX one byte every --trickle-ms MS
 * (default 200) after the rest: a slowloris frame.
 *
 * SIGUSR1 ends the wait early (the summary and "open" are printed as when
 * it runs out), so a test can hold connections for as long as it needs.
 *
 * Exit status 0 unless the client itself failed; the test script judges the
 * output.
 */
#include "dates.h"
#include "err.h"
#include "frame.h"
#include "ids.h"
#include "msg.h"
#include "stream.h"
#include "tls.h"
#include "validate.h"

#include "wire.pb-c.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TC_MAX_CONNS 4096
#define TC_START_BATCH 50
#define TC_MAX_FLOOD 100000

typedef struct tc tc_t;

/* One connection. */
typedef struct tconn {
    ps_stream_t s;
    tc_t *t;
    int handshake_failed;
    int settled;   /* handshake finished, well or not */
    int closed;    /* closed by the peer or failed */
    int finished;  /* ps_stream_close called */
} tconn_t;

struct tc {
    uv_loop_t loop;
    uv_timer_t wait, starter, trickle;
    const char *trickle_hex;   /* --trickle: bytes still to send, as hex */
    uint64_t trickle_ms;
    uv_signal_t usr1;
    ps_tls_conf_t *conf;
    const char *sname;
    struct sockaddr_in addr;
    int hello;
    const char *node_hex; /* --node: the Hello's node id */
    char **hex;
    int nhex;
    uint64_t wait_ms;
    long flood;
    long push_unknown; /* bytes of unknown field 100 in the first record; 0: no Push */
    int no_read;
    int dump;
    int nconns, started, settled, finished;
    tconn_t *conns;
    /* counters for the summary */
    int handshake_ok, welcomes, errors, closed;
    char first_error[256];
    uint64_t frames, bytes;
};

/* "rep:N:HEX" repeats HEX N times, so tests can send large inputs. */
static void send_hex(ps_stream_t *s, const char *h)
{
    ps_buf_t b;
    long rep = 1;
    ps_buf_init(&b);
    if (strncmp(h, "rep:", 4) == 0) {
        char *end;
        rep = strtol(h + 4, &end, 10);
        h = end + 1;
    }
    for (const char *p = h; p[0] && p[1]; p += 2) {
        uint8_t byte;
        if (ps_unhex(p, 1, &byte) == PS_OK)
            ps_buf_append(&b, &byte, 1);
    }
    /* Repeat the decoded bytes (cheap even for megabytes). */
    {
        size_t one = ps_buf_size(&b);
        /* Reserve first: appending from the buffer itself must not move it. */
        if (one && rep > 1 && ps_buf_reserve(&b, one * (size_t)(rep - 1)) == PS_OK)
            for (long r = 1; r < rep; r++)
                ps_buf_append(&b, ps_buf_head(&b), one);
    }
    ps_stream_write(s, ps_buf_head(&b), ps_buf_size(&b));
    ps_buf_free(&b);
}

/* A valid man's ID number not used before by this process nor, almost
 * surely, by another run against the same server (which keeps one live
 * person per number): the birth day comes from a random base plus a
 * counter.  Writes the number and its birth date into the next of a ring of
 * buffers that outlives the records of one request. */
static void fresh_id_number(char **idn, char **birth)
{
    static char ring[64][2][20];
    static uint32_t n, base;
    char(*slot)[20] = ring[n % 64];
    int y, m, d;
    if (n == 0) {
        uint8_t rnd[PS_ID_LEN];
        ps_uuid7(rnd);
        base = ((uint32_t)rnd[10] << 8 | rnd[11]) % 14000;
    }
    ps_civil_from_days(ps_days_from_civil(1950, 1, 1) + (int32_t)((base + n / 500) % 14000), &y, &m, &d);
    snprintf(slot[0], sizeof(slot[0]), "110105%04d%02d%02d%03u", y, m, d, (n % 500) * 2 + 1);
    slot[0][17] = ps_id_check_char(slot[0]);
    slot[0][18] = '\0';
    snprintf(slot[1], sizeof(slot[1]), "%04d-%02d-%02d", y, m, d);
    n++;
    *idn = slot[0];
    *birth = slot[1];
}

/* One person in unit: a valid man with a fresh ID number. */
static void make_person(Popsync__Record *r, Popsync__Person *p, uint8_t id[PS_ID_LEN], const char *unit)
{
    ps_uuid7(id);
    r->id.data = id;
    r->id.len = PS_ID_LEN;
    r->kind = POPSYNC__KIND__KIND_PERSON;
    r->orgunit = (char *)unit;
    r->created_ms = r->updated_ms = (int64_t)ps_now_ms();
    r->body_case = POPSYNC__RECORD__BODY_PERSON;
    r->person = p;
    fresh_id_number(&p->id_number, &p->birth_date);
    p->name = "Hostile Test";
    p->sex = POPSYNC__SEX__SEX_MALE;
}

/* The Push of --push-unknown (see the header). */
static void send_push_unknown(ps_stream_t *s, long unknown, const char *unit)
{
    Popsync__Record rec[3];
    Popsync__Person per[3];
    Popsync__Change ch[3], *chp[3];
    Popsync__Rev base = POPSYNC__REV__INIT;
    Popsync__Push push = POPSYNC__PUSH__INIT;
    ProtobufCMessageUnknownField uf;
    uint8_t ids[3][PS_ID_LEN];
    char *big_name = malloc(20001);
    ps_buf_t b;

    for (int i = 0; i < 3; i++) {
        popsync__record__init(&rec[i]);
        popsync__person__init(&per[i]);
        popsync__change__init(&ch[i]);
        make_person(&rec[i], &per[i], ids[i], unit);
        ch[i].lcn = (uint64_t)i + 1;
        ch[i].record = &rec[i];
        ch[i].base_rev = &base;
        chp[i] = &ch[i];
    }
    uf.tag = 100;
    uf.wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    /* An unknown length-delimited field keeps its length varint in data. */
    uf.data = calloc(1, (size_t)unknown + 10);
    uf.len = 0;
    if (uf.data) {
        uint64_t v = (uint64_t)unknown;
        do {
            uf.data[uf.len++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
            v >>= 7;
        } while (v);
        uf.len += (size_t)unknown;
    }
    per[0].base.n_unknown_fields = 1;
    per[0].base.unknown_fields = &uf;
    memset(big_name, 'a', 20000);
    big_name[20000] = '\0';
    rec[2].deleted = 1;
    per[2].name = big_name;
    push.n_changes = 3;
    push.changes = chp;
    ps_buf_init(&b);
    if (uf.data && ps_msg_pack_frame(&b, PS_MSG_PUSH, 2, &push.base) == PS_OK)
        ps_stream_write(s, ps_buf_head(&b), ps_buf_size(&b));
    else
        fprintf(stderr, "cannot pack the Push\n");
    ps_buf_free(&b);
    free(uf.data);
    free(big_name);
}

static void print_push_result(const ps_frame_t *f)
{
    ProtobufCMessage *m = NULL;
    if (ps_msg_unpack(f->type, f->body, f->body_len, &m) != PS_OK)
        return;
    Popsync__PushResult *pr = (Popsync__PushResult *)m;
    for (size_t i = 0; i < pr->n_results; i++) {
        Popsync__ChangeResult *cr = pr->results[i];
        printf("result lcn=%llu status=%d", (unsigned long long)cr->lcn, (int)cr->status);
        for (size_t k = 0; k < cr->n_errors; k++)
            printf("%s%s: %s", k ? "; " : " errors: ", cr->errors[k]->field, cr->errors[k]->reason);
        printf("\n");
    }
    ps_msg_free(m);
}

/* N Pull requests from cursor 0, all written at once (pipelined). */
static void send_flood(ps_stream_t *s, long n)
{
    Popsync__Pull p = POPSYNC__PULL__INIT;
    ps_buf_t b;
    ps_buf_init(&b);
    for (long i = 0; i < n && i < TC_MAX_FLOOD; i++) {
        ps_buf_t one;
        ps_buf_init(&one);
        if (ps_msg_pack_frame(&one, PS_MSG_PULL, (uint32_t)(100 + i), &p.base) == PS_OK)
            ps_buf_append(&b, ps_buf_head(&one), ps_buf_size(&one));
        ps_buf_free(&one);
    }
    ps_stream_write(s, ps_buf_head(&b), ps_buf_size(&b));
    ps_buf_free(&b);
}

static void conn_finish(tconn_t *k)
{
    if (k->finished)
        return;
    k->finished = 1;
    ps_stream_close(&k->s);
}

static void close_timers(tc_t *t)
{
    if (!uv_is_closing((uv_handle_t *)&t->trickle))
        uv_close((uv_handle_t *)&t->trickle, NULL);
    if (!uv_is_closing((uv_handle_t *)&t->wait))
        uv_close((uv_handle_t *)&t->wait, NULL);
    if (!uv_is_closing((uv_handle_t *)&t->starter))
        uv_close((uv_handle_t *)&t->starter, NULL);
    if (!uv_is_closing((uv_handle_t *)&t->usr1))
        uv_close((uv_handle_t *)&t->usr1, NULL);
}

static void print_summary(tc_t *t)
{
    if (t->nconns > 1) {
        int open = 0;
        for (int i = 0; i < t->nconns; i++)
            if (t->conns[i].settled && !t->conns[i].closed && !t->conns[i].handshake_failed)
                open++;
        printf("conns %d handshake_ok %d welcome %d errors %d closed %d open %d\n", t->nconns, t->handshake_ok,
               t->welcomes, t->errors, t->closed, open);
        if (t->first_error[0])
            printf("first error: %s\n", t->first_error);
    }
    if (t->flood)
        printf("received %llu frames %llu bytes\n", (unsigned long long)t->frames, (unsigned long long)t->bytes);
    fflush(stdout);
}

static void on_wait(uv_timer_t *w)
{
    tc_t *t = w->data;
    if (t->nconns == 1)
        printf("open\n");
    print_summary(t);
    for (int i = 0; i < t->nconns; i++)
        if (t->conns[i].settled || i < t->started)
            conn_finish(&t->conns[i]);
    close_timers(t);
}

/* SIGUSR1: end the wait now. */
static void on_usr1(uv_signal_t *sig, int signum)
{
    tc_t *t = sig->data;
    (void)signum;
    if (!uv_is_closing((uv_handle_t *)&t->wait)) {
        uv_timer_stop(&t->wait);
        on_wait(&t->wait);
    }
}

/* A connection settled (handshake done or failed): once all have, the wait begins. */
static void settle(tconn_t *k)
{
    tc_t *t = k->t;
    if (k->settled)
        return;
    k->settled = 1;
    t->settled++;
    if (t->settled == t->nconns && !uv_is_closing((uv_handle_t *)&t->wait))
        uv_timer_start(&t->wait, on_wait, t->wait_ms, 0);
}

static void on_trickle(uv_timer_t *tm);

static void on_handshake(ps_stream_t *s, int status)
{
    tconn_t *k = s->data;
    tc_t *t = k->t;
    if (status) {
        if (t->nconns == 1)
            printf("handshake failed: %s\n", ps_tls_last_error(s->tls));
        k->handshake_failed = 1;
        settle(k);
        return;
    }
    t->handshake_ok++;
    if (t->nconns == 1)
        printf("handshake ok\n");
    if (t->hello) {
        Popsync__Hello h = POPSYNC__HELLO__INIT;
        uint8_t node[PS_ID_LEN];
        ps_buf_t b;
        if (!t->node_hex || ps_uuid_parse(t->node_hex, node) != PS_OK)
            ps_random(node, sizeof(node));
        h.protocol_version = PS_PROTOCOL_VERSION;
        h.node.data = node;
        h.node.len = PS_ID_LEN;
        ps_buf_init(&b);
        ps_msg_pack_frame(&b, PS_MSG_HELLO, 1, &h.base);
        ps_stream_write(s, ps_buf_head(&b), ps_buf_size(&b));
        ps_buf_free(&b);
    }
    for (int i = 0; i < t->nhex; i++)
        send_hex(s, t->hex[i]);
    if (t->flood)
        send_flood(s, t->flood);
    if (t->push_unknown)
        send_push_unknown(s, t->push_unknown, ps_tls_conf_self(t->conf)->orgunit);
    if (t->trickle_hex && t->nconns == 1)
        uv_timer_start(&t->trickle, on_trickle, t->trickle_ms, t->trickle_ms);
    if (t->no_read)
        ps_stream_pause(s);
    settle(k);
}

/* --trickle: the next byte. */
static void on_trickle(uv_timer_t *tm)
{
    tc_t *t = tm->data;
    char two[3];
    if (!t->trickle_hex[0] || !t->trickle_hex[1] || t->conns[0].closed || t->conns[0].finished) {
        uv_timer_stop(tm);
        return;
    }
    memcpy(two, t->trickle_hex, 2);
    two[2] = '\0';
    t->trickle_hex += 2;
    send_hex(&t->conns[0].s, two);
}

static void on_read(ps_stream_t *s)
{
    tconn_t *k = s->data;
    tc_t *t = k->t;
    ps_buf_t *in = &s->plain_in;
    for (;;) {
        ps_frame_t f;
        size_t used;
        int rc = ps_frame_decode(ps_buf_head(in), ps_buf_size(in), 64u << 20, &f, &used);
        if (rc)
            break;
        t->frames++;
        t->bytes += used;
        if (f.type == PS_MSG_WELCOME)
            t->welcomes++;
        if (t->nconns == 1 && !t->flood) {
            printf("frame %s req=%u", ps_frame_type_name(f.type), f.request_id);
            if (t->dump && f.type != PS_MSG_WELCOME) {
                printf(" body ");
                for (size_t i = 0; i < f.body_len; i++)
                    printf("%02x", f.body[i]);
            }
        }
        if (f.type == PS_MSG_ERROR) {
            ProtobufCMessage *m = NULL;
            t->errors++;
            if (ps_msg_unpack(f.type, f.body, f.body_len, &m) == PS_OK) {
                Popsync__Error *e = (Popsync__Error *)m;
                if (!t->first_error[0])
                    snprintf(t->first_error, sizeof(t->first_error), "%s", e->message);
                if (t->nconns == 1 && t->flood)
                    printf("frame %s req=%u", ps_frame_type_name(f.type), f.request_id);
                if (t->nconns == 1)
                    printf(" error%s: %s", e->fatal ? " (fatal)" : "", e->message);
                ps_msg_free(m);
            }
            if (t->nconns == 1)
                printf("\n");
        } else if (t->nconns == 1 && !t->flood) {
            ProtobufCMessage *m = NULL;
            if (f.type == PS_MSG_PUSH_RESULT && !(f.flags & PS_FRAME_FLAG_ZSTD) &&
                ps_msg_unpack(f.type, f.body, f.body_len, &m) == PS_OK) {
                Popsync__PushResult *pr = (Popsync__PushResult *)m;
                for (size_t i = 0; i < pr->n_results; i++) {
                    const Popsync__ChangeResult *cr = pr->results[i];
                    printf(" [lcn=%llu status=%d seq=%llu gen=%llu]", (unsigned long long)cr->lcn, (int)cr->status,
                           (unsigned long long)cr->seq, (unsigned long long)(cr->rev ? cr->rev->gen : 0));
                }
                ps_msg_free(m);
            }
            printf("\n");
            if (f.type == PS_MSG_PUSH_RESULT && t->push_unknown) {
                /* The answer --push-unknown waited for: done. */
                print_push_result(&f);
                ps_buf_consume(in, used);
                if (!uv_is_closing((uv_handle_t *)&t->wait)) {
                    uv_timer_stop(&t->wait);
                    on_wait(&t->wait);
                }
                return;
            }
        }
        ps_buf_consume(in, used);
    }
    fflush(stdout);
}

static void on_error(ps_stream_t *s, int err)
{
    tconn_t *k = s->data;
    tc_t *t = k->t;
    if (t->nconns == 1) {
        if (err == PS_ETLS && !k->handshake_failed)
            printf("closed (tls: %s)\n", ps_tls_last_error(s->tls));
        else
            printf("closed\n");
        print_summary(t);
    }
    if (!k->closed) {
        k->closed = 1;
        t->closed++;
    }
    settle(k);
    conn_finish(k);
    if (t->nconns == 1)
        close_timers(t);
}

static void on_close(ps_stream_t *s)
{
    tconn_t *k = s->data;
    tc_t *t = k->t;
    t->finished++;
    if (t->finished == t->nconns) {
        if (t->nconns > 1 && !uv_is_closing((uv_handle_t *)&t->wait))
            print_summary(t);
        close_timers(t);
    }
}

static const ps_stream_cbs_t cbs = {on_handshake, on_read, on_error, NULL, on_close};

/* Starts the next batch of connections. */
static void on_starter(uv_timer_t *st)
{
    tc_t *t = st->data;
    for (int n = 0; n < TC_START_BATCH && t->started < t->nconns; n++) {
        tconn_t *k = &t->conns[t->started++];
        ps_tls_t *tls = NULL;
        k->t = t;
        if (ps_tls_new(&tls, t->conf, t->sname) != PS_OK) {
            fprintf(stderr, "tls: cannot make connection %d\n", t->started);
            exit(1);
        }
        ps_stream_init(&k->s, &t->loop, tls, &cbs, k);
        ps_stream_set_timeouts(&k->s, 30000, 0);
        if (ps_stream_connect(&k->s, (struct sockaddr *)&t->addr) != PS_OK) {
            k->closed = 1;
            t->closed++;
            settle(k);
            conn_finish(k);
        }
    }
    if (t->started >= t->nconns)
        uv_timer_stop(st);
}

int main(int argc, char **argv)
{
    const char *server = NULL, *ca = NULL, *cert = NULL, *key = NULL;
    char *hex[64];
    static tc_t t;
    char err[512], host[64];
    int port;

    memset(&t, 0, sizeof(t));
    t.hex = hex;
    t.wait_ms = 2000;
    t.trickle_ms = 200;
    t.nconns = 1;
    t.sname = "popsyncd";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--hello")) { t.hello = 1; continue; }
        if (!strcmp(a, "--no-read")) { t.no_read = 1; continue; }
        if (!strcmp(a, "--dump")) { t.dump = 1; continue; }
        if (!v) break;
        if (!strcmp(a, "--server")) server = v;
        else if (!strcmp(a, "--ca")) ca = v;
        else if (!strcmp(a, "--cert")) cert = v;
        else if (!strcmp(a, "--key")) key = v;
        else if (!strcmp(a, "--server-name")) t.sname = v;
        else if (!strcmp(a, "--node")) t.node_hex = v;
        else if (!strcmp(a, "--hex") && t.nhex < 64) hex[t.nhex++] = (char *)v;
        else if (!strcmp(a, "--wait")) t.wait_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--flood")) t.flood = strtol(v, NULL, 10);
        else if (!strcmp(a, "--push-unknown")) t.push_unknown = strtol(v, NULL, 10);
        else if (!strcmp(a, "--trickle")) t.trickle_hex = v;
        else if (!strcmp(a, "--trickle-ms")) t.trickle_ms = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--conns")) t.nconns = atoi(v);
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }
    if (!server || !ca || !cert || !key || sscanf(server, "%63[^:]:%d", host, &port) != 2 || t.nconns < 1 ||
        t.nconns > TC_MAX_CONNS || t.flood < 0 || t.flood > TC_MAX_FLOOD || t.push_unknown < 0 ||
        t.push_unknown > (64l << 20)) {
        fprintf(stderr, "usage: ps_testclient --server HOST:PORT --ca F --cert F --key F [--hello] [--hex HEX]...\n"
                        "       [--flood N] [--no-read] [--conns N] [--wait MS] [--dump]\n");
        return 2;
    }
    if (ps_tls_conf_new(&t.conf, PS_TLS_CLIENT, ca, cert, key, NULL, err, sizeof(err))) {
        fprintf(stderr, "tls: %s\n", err);
        return 1;
    }
    t.conns = calloc((size_t)t.nconns, sizeof(*t.conns));
    if (!t.conns) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    /* A server that closes while we still send (a refused connection)
     * must show up as "closed", not kill the tool. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&t.loop);
    uv_timer_init(&t.loop, &t.wait);
    t.wait.data = &t;
    uv_timer_init(&t.loop, &t.starter);
    t.starter.data = &t;
    uv_timer_init(&t.loop, &t.trickle);
    t.trickle.data = &t;
    uv_signal_init(&t.loop, &t.usr1);
    t.usr1.data = &t;
    uv_signal_start(&t.usr1, on_usr1, SIGUSR1);
    uv_ip4_addr(host, port, &t.addr);
    uv_timer_start(&t.starter, on_starter, 0, 20);
    uv_run(&t.loop, UV_RUN_DEFAULT);
    uv_loop_close(&t.loop);
    free(t.conns);
    ps_tls_conf_free(t.conf);
    return 0;
}
