/* test_client_session.c - unit tests for client/session.c.
 *
 * Owns: the session's request matching, driven through an injected
 * transport (no TLS, no socket): the test is the server, reading the
 * frames the session writes and feeding it frames built with common/msg.c.
 * Hello first and requests held until the Welcome; several requests in
 * flight answered out of order; a multi-frame answer (QueryResult frames,
 * list pages through client/rq_query.c); an answer for no outstanding
 * request, a reply of the wrong type and an Error each closing the session;
 * a cut connection failing every outstanding request exactly once; the
 * window asked in Hello and agreed in Welcome.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "frame.h"
#include "msg.h"
#include "rq_query.h"
#include "session.h"

/* --- the fake transport: what the client wrote, and whether it closed --- */

typedef struct fake {
    ps_buf_t out;    /* bytes the session wrote */
    int closed, shut;
} fake_t;

static int f_write(void *io, const uint8_t *p, size_t len)
{
    fake_t *f = io;
    return ps_buf_append(&f->out, p, len);
}

static void f_shutdown(void *io)
{
    ((fake_t *)io)->shut++;
}

static void f_close(void *io)
{
    ((fake_t *)io)->closed++;
}

static const ps_session_io_t fake_io = {f_write, f_shutdown, f_close, NULL};

/* One frame the client sent: its type and request id (body decoded on
 * demand), taken off the head of the fake's output. */
typedef struct sent {
    uint8_t type;
    uint32_t id;
    ProtobufCMessage *m;
} sent_t;

static int next_sent(fake_t *f, sent_t *out)
{
    ps_frame_t fr;
    size_t used;
    if (ps_frame_decode(ps_buf_head(&f->out), ps_buf_size(&f->out), 1u << 20, &fr, &used) != PS_OK)
        return 0;
    out->type = fr.type;
    out->id = fr.request_id;
    assert_int_equal(fr.flags, 0); /* no compression agreed in these tests */
    assert_int_equal(ps_msg_unpack(fr.type, fr.body, fr.body_len, &out->m), PS_OK);
    ps_buf_consume(&f->out, used);
    return 1;
}

static void expect_sent(fake_t *f, uint8_t type, uint32_t *id)
{
    sent_t s;
    assert_true(next_sent(f, &s));
    assert_int_equal(s.type, type);
    if (id)
        *id = s.id;
    ps_msg_free(s.m);
}

/* The server's side: one frame into the session. */
static void feed(ps_session_t *s, uint8_t type, uint32_t id, const ProtobufCMessage *m)
{
    ps_buf_t in;
    ps_buf_init(&in);
    assert_int_equal(ps_msg_pack_frame(&in, type, id, m), PS_OK);
    ps_session_input(s, &in);
    ps_buf_free(&in);
}

/* --- a request's callback, recorded --- */

typedef struct rec {
    int answers;          /* frames received */
    int failures;         /* calls with an error */
    int status;           /* the last error */
    int more;             /* frames to answer PS_SESSION_MORE to */
    uint8_t last_type_ok; /* the reply's descriptor matched */
    const ProtobufCMessageDescriptor *want;
    int *order;           /* where to write our place in the order of completion */
    int *clock;
} rec_t;

static int on_reply(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    rec_t *r = arg;
    (void)s;
    if (status) {
        assert_null(m);
        r->failures++;
        r->status = status;
        return PS_OK;
    }
    r->answers++;
    r->last_type_ok = (*m)->descriptor == r->want;
    if (r->more > 0) {
        r->more--;
        return PS_SESSION_MORE;
    }
    if (r->order)
        *r->order = ++*r->clock;
    return PS_OK;
}

typedef struct fixture {
    fake_t f;
    ps_session_t *s;
    int welcomes;
    int welcome_rc;
} fixture_t;

static int on_welcome(ps_session_t *s, const Popsync__Welcome *w, void *arg)
{
    fixture_t *fx = arg;
    (void)s;
    (void)w;
    fx->welcomes++;
    return fx->welcome_rc;
}

static void open_session(fixture_t *fx)
{
    ps_session_cfg_t cfg;
    memset(fx, 0, sizeof(*fx));
    ps_buf_init(&fx->f.out);
    memset(&cfg, 0, sizeof(cfg));
    cfg.server = "fake:1";
    cfg.no_compression = 1;
    cfg.on_welcome = on_welcome;
    cfg.arg = fx;
    assert_int_equal(ps_session_new(&fx->s, &cfg, &fake_io, &fx->f), PS_OK);
}

/* Hello out, Welcome in: the session is ready. */
static void welcome(fixture_t *fx)
{
    Popsync__Welcome w = POPSYNC__WELCOME__INIT;
    uint32_t hello;
    w.protocol_version = PS_PROTOCOL_VERSION;
    expect_sent(&fx->f, PS_MSG_HELLO, &hello);
    feed(fx->s, PS_MSG_WELCOME, hello, &w.base);
}

static void close_session(fixture_t *fx)
{
    ps_session_close(fx->s, NULL, NULL);
    ps_buf_free(&fx->f.out);
}

static rec_t rec_for(const ProtobufCMessageDescriptor *d)
{
    rec_t r;
    memset(&r, 0, sizeof(r));
    r.want = d;
    return r;
}

/* Requests made before the Welcome wait; Hello goes first, then they go
 * out in the order made. */
static void test_held_until_welcome(void **state)
{
    fixture_t fx;
    Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__NodeStatusRequest nr = POPSYNC__NODE_STATUS_REQUEST__INIT;
    rec_t a = rec_for(&popsync__report_result__descriptor), b = rec_for(&popsync__node_status_result__descriptor);
    sent_t s;
    (void)state;
    open_session(&fx);
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, on_reply, &a) > 0);
    assert_true(ps_session_request(fx.s, PS_MSG_NODE_STATUS_REQUEST, &nr.base, 0, on_reply, &b) > 0);
    assert_int_equal(ps_buf_size(&fx.f.out), 0); /* transport not up yet */
    ps_session_start(fx.s);
    assert_true(next_sent(&fx.f, &s));
    assert_int_equal(s.type, PS_MSG_HELLO);
    assert_int_equal(s.id, 3); /* made last, numbered after the two */
    ps_msg_free(s.m);
    assert_false(next_sent(&fx.f, &s)); /* nothing before the Welcome */
    assert_int_equal(ps_session_outstanding(fx.s), 3);
    {
        Popsync__Welcome w = POPSYNC__WELCOME__INIT;
        w.protocol_version = PS_PROTOCOL_VERSION;
        feed(fx.s, PS_MSG_WELCOME, 3, &w.base);
    }
    assert_int_equal(fx.welcomes, 1);
    assert_non_null(ps_session_welcome(fx.s));
    expect_sent(&fx.f, PS_MSG_REPORT_REQUEST, NULL);
    expect_sent(&fx.f, PS_MSG_NODE_STATUS_REQUEST, NULL);
    assert_int_equal(ps_session_outstanding(fx.s), 2);
    close_session(&fx);
    assert_int_equal(a.failures, 1); /* closed before their answers: failed once */
    assert_int_equal(b.failures, 1);
}

/* Three requests in flight, answered in reverse order: each answer goes to
 * its own request. */
static void test_out_of_order(void **state)
{
    fixture_t fx;
    Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__NodeStatusRequest nr = POPSYNC__NODE_STATUS_REQUEST__INIT;
    Popsync__ConflictList cl = POPSYNC__CONFLICT_LIST__INIT;
    Popsync__ReportResult rr = POPSYNC__REPORT_RESULT__INIT;
    Popsync__NodeStatusResult ns = POPSYNC__NODE_STATUS_RESULT__INIT;
    Popsync__ConflictListResult cr = POPSYNC__CONFLICT_LIST_RESULT__INIT;
    rec_t a = rec_for(&popsync__report_result__descriptor), b = rec_for(&popsync__node_status_result__descriptor),
          c = rec_for(&popsync__conflict_list_result__descriptor);
    int oa = 0, ob = 0, oc = 0, clock = 0;
    uint32_t ia, ib, ic;
    (void)state;
    a.order = &oa, b.order = &ob, c.order = &oc;
    a.clock = b.clock = c.clock = &clock;
    open_session(&fx);
    ps_session_start(fx.s);
    welcome(&fx);
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, on_reply, &a) > 0);
    assert_true(ps_session_request(fx.s, PS_MSG_NODE_STATUS_REQUEST, &nr.base, 0, on_reply, &b) > 0);
    assert_true(ps_session_request(fx.s, PS_MSG_CONFLICT_LIST, &cl.base, 0, on_reply, &c) > 0);
    expect_sent(&fx.f, PS_MSG_REPORT_REQUEST, &ia);
    expect_sent(&fx.f, PS_MSG_NODE_STATUS_REQUEST, &ib);
    expect_sent(&fx.f, PS_MSG_CONFLICT_LIST, &ic);
    assert_true(ia != ib && ib != ic && ia != ic);
    assert_int_equal(ps_session_outstanding(fx.s), 3);
    feed(fx.s, PS_MSG_CONFLICT_LIST_RESULT, ic, &cr.base);
    feed(fx.s, PS_MSG_NODE_STATUS_RESULT, ib, &ns.base);
    assert_int_equal(ps_session_outstanding(fx.s), 1);
    feed(fx.s, PS_MSG_REPORT_RESULT, ia, &rr.base);
    assert_int_equal(ps_session_status(fx.s), PS_OK);
    assert_int_equal(ps_session_outstanding(fx.s), 0);
    assert_int_equal(a.answers, 1);
    assert_int_equal(b.answers, 1);
    assert_int_equal(c.answers, 1);
    assert_true(a.last_type_ok && b.last_type_ok && c.last_type_ok);
    assert_int_equal(oc, 1);
    assert_int_equal(ob, 2);
    assert_int_equal(oa, 3);
    close_session(&fx);
    assert_int_equal(a.failures + b.failures + c.failures, 0);
}

/* Several frames with one request id make one answer: they all go to the
 * request, interleaved with another request's answer. */
static void test_multi_frame(void **state)
{
    fixture_t fx;
    Popsync__Query q = POPSYNC__QUERY__INIT;
    Popsync__NodeStatusRequest nr = POPSYNC__NODE_STATUS_REQUEST__INIT;
    Popsync__QueryResult qr = POPSYNC__QUERY_RESULT__INIT;
    Popsync__NodeStatusResult ns = POPSYNC__NODE_STATUS_RESULT__INIT;
    rec_t a = rec_for(&popsync__query_result__descriptor), b = rec_for(&popsync__node_status_result__descriptor);
    uint32_t iq, in;
    (void)state;
    open_session(&fx);
    ps_session_start(fx.s);
    welcome(&fx);
    a.more = 2; /* two frames before the last */
    assert_true(ps_session_request(fx.s, PS_MSG_QUERY, &q.base, 0, on_reply, &a) > 0);
    assert_true(ps_session_request(fx.s, PS_MSG_NODE_STATUS_REQUEST, &nr.base, 0, on_reply, &b) > 0);
    expect_sent(&fx.f, PS_MSG_QUERY, &iq);
    expect_sent(&fx.f, PS_MSG_NODE_STATUS_REQUEST, &in);
    feed(fx.s, PS_MSG_QUERY_RESULT, iq, &qr.base);
    feed(fx.s, PS_MSG_NODE_STATUS_RESULT, in, &ns.base);
    feed(fx.s, PS_MSG_QUERY_RESULT, iq, &qr.base);
    assert_int_equal(ps_session_outstanding(fx.s), 1);
    qr.done = 1;
    feed(fx.s, PS_MSG_QUERY_RESULT, iq, &qr.base);
    assert_int_equal(a.answers, 3);
    assert_int_equal(b.answers, 1);
    assert_int_equal(ps_session_outstanding(fx.s), 0);
    /* A frame after the answer completed belongs to no request. */
    feed(fx.s, PS_MSG_QUERY_RESULT, iq, &qr.base);
    assert_int_equal(ps_session_status(fx.s), PS_EPROTO);
    assert_non_null(strstr(ps_session_error(fx.s), "not outstanding"));
    assert_int_equal(a.failures + b.failures, 0);
    close_session(&fx);
}

/* client/rq_query.c over the session: frames of a page until done, then
 * the next page asked from next_after_id, until a page without one. */
typedef struct qcount {
    int frames;
    size_t records;
} qcount_t;

static void count_frame(const Popsync__QueryResult *res, void *arg)
{
    qcount_t *c = arg;
    c->frames++;
    c->records += res->n_records;
}

static void test_query_pages(void **state)
{
    fixture_t fx;
    Popsync__Query q = POPSYNC__QUERY__INIT;
    Popsync__QueryResult qr = POPSYNC__QUERY_RESULT__INIT;
    qcount_t cnt = {0, 0};
    uint8_t after[16];
    sent_t s;
    uint32_t id1;
    (void)state;
    memset(after, 7, sizeof(after));
    open_session(&fx);
    ps_session_start(fx.s);
    welcome(&fx);
    q.list = 1;
    assert_int_equal(ps_rq_query(fx.s, &q, 0, count_frame, &cnt), PS_OK);
    expect_sent(&fx.f, PS_MSG_QUERY, &id1);
    feed(fx.s, PS_MSG_QUERY_RESULT, id1, &qr.base); /* page 1, frame 1 */
    qr.done = 1;
    qr.next_after_id.data = after;
    qr.next_after_id.len = sizeof(after);
    feed(fx.s, PS_MSG_QUERY_RESULT, id1, &qr.base); /* page 1 ends: ask from `after` */
    assert_true(next_sent(&fx.f, &s));
    assert_int_equal(s.type, PS_MSG_QUERY);
    assert_true(s.id != id1);
    assert_int_equal(((Popsync__Query *)s.m)->after_id.len, 16);
    assert_memory_equal(((Popsync__Query *)s.m)->after_id.data, after, 16);
    qr.next_after_id.len = 0;
    feed(fx.s, PS_MSG_QUERY_RESULT, s.id, &qr.base); /* the last page */
    ps_msg_free(s.m);
    assert_false(next_sent(&fx.f, &s));
    assert_int_equal(cnt.frames, 3);
    assert_int_equal(ps_session_outstanding(fx.s), 0);
    assert_int_equal(ps_session_status(fx.s), PS_OK);
    close_session(&fx);
}

/* An answer with a request id nobody asked: the session closes with an
 * error and every outstanding request fails once. */
static void test_unknown_id(void **state)
{
    fixture_t fx;
    Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__ReportResult rr = POPSYNC__REPORT_RESULT__INIT;
    rec_t a = rec_for(&popsync__report_result__descriptor), b = rec_for(&popsync__report_result__descriptor);
    uint32_t ia, ib;
    (void)state;
    open_session(&fx);
    ps_session_start(fx.s);
    welcome(&fx);
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, on_reply, &a) > 0);
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, on_reply, &b) > 0);
    expect_sent(&fx.f, PS_MSG_REPORT_REQUEST, &ia);
    expect_sent(&fx.f, PS_MSG_REPORT_REQUEST, &ib);
    feed(fx.s, PS_MSG_REPORT_RESULT, ia + ib + 100, &rr.base);
    assert_int_equal(ps_session_status(fx.s), PS_EPROTO);
    assert_non_null(strstr(ps_session_error(fx.s), "not outstanding"));
    assert_int_equal(fx.f.closed, 1);
    assert_int_equal(a.failures, 1);
    assert_int_equal(b.failures, 1);
    assert_int_equal(a.status, PS_EPROTO);
    assert_int_equal(ps_session_outstanding(fx.s), 0);
    /* Late answers to them change nothing; new requests are refused. */
    feed(fx.s, PS_MSG_REPORT_RESULT, ia, &rr.base);
    assert_int_equal(a.answers + b.answers, 0);
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, on_reply, &a) < 0);
    assert_int_equal(a.failures, 1);
    close_session(&fx);
    assert_int_equal(a.failures + b.failures, 2);
}

/* A reply of another type than the message table's for the request. */
static void test_wrong_reply_type(void **state)
{
    fixture_t fx;
    Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__NodeStatusResult ns = POPSYNC__NODE_STATUS_RESULT__INIT;
    rec_t a = rec_for(&popsync__report_result__descriptor);
    uint32_t ia;
    (void)state;
    open_session(&fx);
    ps_session_start(fx.s);
    welcome(&fx);
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, on_reply, &a) > 0);
    expect_sent(&fx.f, PS_MSG_REPORT_REQUEST, &ia);
    feed(fx.s, PS_MSG_NODE_STATUS_RESULT, ia, &ns.base);
    assert_int_equal(ps_session_status(fx.s), PS_EPROTO);
    assert_non_null(strstr(ps_session_error(fx.s), "waiting for the answer to ReportRequest"));
    assert_int_equal(a.answers, 0);
    assert_int_equal(a.failures, 1);
    close_session(&fx);
}

/* An Error from the server fails the session with its message. */
static void test_error_frame(void **state)
{
    fixture_t fx;
    Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__Error e = POPSYNC__ERROR__INIT;
    rec_t a = rec_for(&popsync__report_result__descriptor);
    uint32_t ia;
    (void)state;
    open_session(&fx);
    ps_session_start(fx.s);
    welcome(&fx);
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, on_reply, &a) > 0);
    expect_sent(&fx.f, PS_MSG_REPORT_REQUEST, &ia);
    e.message = "month already closed";
    feed(fx.s, PS_MSG_ERROR, ia, &e.base);
    assert_int_equal(ps_session_status(fx.s), PS_EREJECTED);
    assert_string_equal(ps_session_error(fx.s), "server: month already closed");
    assert_int_equal(a.failures, 1);
    assert_int_equal(a.status, PS_EREJECTED);
    close_session(&fx);
}

/* The connection is cut with requests sent, a multi-frame answer half
 * received and one request not yet sent (waiting for the Welcome of a
 * hook that holds the session): each fails exactly once, and so does a
 * ready waiter. */
static int ready_calls, ready_status;
static void on_ready(ps_session_t *s, int status, void *arg)
{
    (void)s;
    (void)arg;
    ready_calls++;
    ready_status = status;
}

static void test_cut_fails_each_once(void **state)
{
    fixture_t fx;
    Popsync__Query q = POPSYNC__QUERY__INIT;
    Popsync__QueryResult qr = POPSYNC__QUERY_RESULT__INIT;
    Popsync__OrgUnitsRequest orq = POPSYNC__ORG_UNITS_REQUEST__INIT;
    Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__Welcome w = POPSYNC__WELCOME__INIT;
    rec_t a = rec_for(&popsync__query_result__descriptor), b = rec_for(&popsync__org_units__descriptor),
          c = rec_for(&popsync__report_result__descriptor);
    uint32_t hello, iq;
    (void)state;
    open_session(&fx);
    fx.welcome_rc = PS_SESSION_MORE; /* the hook holds the session (as link.c while fetching the tree) */
    a.more = 5;
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, on_reply, &c) > 0);
    ready_calls = 0;
    assert_int_equal(ps_session_when_ready(fx.s, on_ready, NULL), PS_OK);
    ps_session_start(fx.s);
    expect_sent(&fx.f, PS_MSG_HELLO, &hello);
    w.protocol_version = PS_PROTOCOL_VERSION;
    feed(fx.s, PS_MSG_WELCOME, hello, &w.base);
    /* Held: an early request goes out, the queued one does not. */
    assert_true(ps_session_request(fx.s, PS_MSG_ORGUNITS_REQUEST, &orq.base, PS_REQ_EARLY, on_reply, &b) > 0);
    assert_true(ps_session_request(fx.s, PS_MSG_QUERY, &q.base, PS_REQ_EARLY, on_reply, &a) > 0);
    expect_sent(&fx.f, PS_MSG_ORGUNITS_REQUEST, NULL);
    expect_sent(&fx.f, PS_MSG_QUERY, &iq);
    assert_int_equal(ps_buf_size(&fx.f.out), 0);
    feed(fx.s, PS_MSG_QUERY_RESULT, iq, &qr.base); /* half an answer */
    assert_int_equal(a.answers, 1);
    assert_int_equal(ps_session_outstanding(fx.s), 3);
    ps_session_io_failed(fx.s, PS_ECLOSED, "connection to fake:1 lost: closed");
    assert_int_equal(ps_session_status(fx.s), PS_ECLOSED);
    assert_string_equal(ps_session_error(fx.s), "connection to fake:1 lost: closed");
    assert_int_equal(a.failures, 1);
    assert_int_equal(b.failures, 1);
    assert_int_equal(c.failures, 1);
    assert_int_equal(ready_calls, 1);
    assert_int_equal(ready_status, PS_ECLOSED);
    assert_int_equal(ps_session_outstanding(fx.s), 0);
    /* A second failure report, and the close, call nobody again. */
    ps_session_io_failed(fx.s, PS_ETIMEDOUT, "late");
    assert_string_equal(ps_session_error(fx.s), "connection to fake:1 lost: closed");
    close_session(&fx);
    assert_int_equal(a.failures + b.failures + c.failures, 3);
    assert_int_equal(ready_calls, 1);
}

/* A callback that fails the session is not called again for its request;
 * the others fail once. */
static int failing_reply(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    rec_t *r = arg;
    (void)m;
    if (status) {
        r->failures++;
        return PS_OK;
    }
    r->answers++;
    ps_session_fail(s, PS_EIO, "applying the answer failed");
    return PS_EIO;
}

static void test_callback_fails_session(void **state)
{
    fixture_t fx;
    Popsync__ReportRequest rq = POPSYNC__REPORT_REQUEST__INIT;
    Popsync__ReportResult rr = POPSYNC__REPORT_RESULT__INIT;
    rec_t a = rec_for(&popsync__report_result__descriptor), b = rec_for(&popsync__report_result__descriptor);
    uint32_t ia;
    (void)state;
    open_session(&fx);
    ps_session_start(fx.s);
    welcome(&fx);
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, failing_reply, &a) > 0);
    assert_true(ps_session_request(fx.s, PS_MSG_REPORT_REQUEST, &rq.base, 0, on_reply, &b) > 0);
    expect_sent(&fx.f, PS_MSG_REPORT_REQUEST, &ia);
    feed(fx.s, PS_MSG_REPORT_RESULT, ia, &rr.base);
    assert_int_equal(a.answers, 1);
    assert_int_equal(a.failures, 0);
    assert_int_equal(b.failures, 1);
    assert_string_equal(ps_session_error(fx.s), "applying the answer failed");
    close_session(&fx);
    assert_int_equal(a.failures, 0);
}

/* A Welcome of another protocol version fails the session. */
static void test_protocol_version(void **state)
{
    fixture_t fx;
    Popsync__Welcome w = POPSYNC__WELCOME__INIT;
    uint32_t hello;
    (void)state;
    open_session(&fx);
    ps_session_start(fx.s);
    expect_sent(&fx.f, PS_MSG_HELLO, &hello);
    w.protocol_version = PS_PROTOCOL_VERSION + 1;
    feed(fx.s, PS_MSG_WELCOME, hello, &w.base);
    assert_int_equal(ps_session_status(fx.s), PS_EPROTO);
    assert_non_null(strstr(ps_session_error(fx.s), "server speaks protocol"));
    assert_int_equal(fx.welcomes, 0);
    close_session(&fx);
}

/* The window (docs/protocol.md §7.1): the Hello asks for one; the window
 * in force is the smaller of it and the Welcome's, and a Welcome without
 * one (a server older than pipelining) means one request at a time. */
static void window_case(uint32_t cfg_window, uint32_t w_window, uint32_t w_bytes, uint32_t want, uint32_t want_bytes)
{
    fixture_t fx;
    ps_session_cfg_t cfg;
    Popsync__Welcome w = POPSYNC__WELCOME__INIT;
    sent_t hello;
    uint32_t bytes = 0;
    memset(&fx, 0, sizeof(fx));
    ps_buf_init(&fx.f.out);
    memset(&cfg, 0, sizeof(cfg));
    cfg.server = "fake:1";
    cfg.no_compression = 1;
    cfg.window = cfg_window;
    assert_int_equal(ps_session_new(&fx.s, &cfg, &fake_io, &fx.f), PS_OK);
    assert_int_equal(ps_session_window(fx.s, NULL), 1); /* before the Welcome */
    ps_session_start(fx.s);
    assert_true(next_sent(&fx.f, &hello));
    assert_int_equal(hello.type, PS_MSG_HELLO);
    assert_int_equal(((Popsync__Hello *)hello.m)->window, cfg_window ? cfg_window : PS_SESSION_WINDOW);
    assert_int_equal(((Popsync__Hello *)hello.m)->window_bytes, PS_SESSION_WINDOW_BYTES);
    w.protocol_version = PS_PROTOCOL_VERSION;
    w.window = w_window;
    w.window_bytes = w_bytes;
    feed(fx.s, PS_MSG_WELCOME, hello.id, &w.base);
    ps_msg_free(hello.m);
    assert_int_equal(ps_session_status(fx.s), PS_OK);
    assert_int_equal(ps_session_window(fx.s, &bytes), want);
    assert_int_equal(bytes, want_bytes);
    close_session(&fx);
}

static void test_window(void **state)
{
    (void)state;
    window_case(0, 0, 0, 1, PS_SESSION_WINDOW_BYTES);                   /* an older server */
    window_case(0, 4, 1u << 20, 4, 1u << 20);                           /* the server's is smaller */
    window_case(0, 64, 64u << 20, PS_SESSION_WINDOW, PS_SESSION_WINDOW_BYTES); /* ours is */
    window_case(1, 8, 1u << 20, 1, 1u << 20);                           /* we ask for one at a time */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_until_welcome),  cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_multi_frame),         cmocka_unit_test(test_query_pages),
        cmocka_unit_test(test_unknown_id),          cmocka_unit_test(test_wrong_reply_type),
        cmocka_unit_test(test_error_frame),         cmocka_unit_test(test_cut_fails_each_once),
        cmocka_unit_test(test_callback_fails_session), cmocka_unit_test(test_protocol_version),
        cmocka_unit_test(test_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
