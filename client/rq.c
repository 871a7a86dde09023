/* rq.c - the one-answer requests (rq.h). */
#include "rq.h"
#include "err.h"
#include "msgtab.h"

#include <stdlib.h>

/* The caller's function for one answer: which member is the request's. */
typedef struct answer {
    uint8_t type;
    union {
        ps_conflicts_fn conflicts;
        ps_report_fn report;
        ps_close_fn close;
        ps_nodes_fn nodes;
        ps_history_fn history;
    } fn;
    void *arg;
} answer_t;

/* The answer's type is the message table's reply of the request, checked
 * by the session before this runs. */
static int on_answer(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    answer_t *a = arg;
    (void)s;
    if (status == PS_OK) {
        switch (a->type) {
        case PS_MSG_CONFLICT_LIST: a->fn.conflicts((const Popsync__ConflictListResult *)*m, a->arg); break;
        case PS_MSG_REPORT_REQUEST: a->fn.report((const Popsync__ReportResult *)*m, a->arg); break;
        case PS_MSG_CLOSE_REQUEST: a->fn.close((const Popsync__CloseResult *)*m, a->arg); break;
        case PS_MSG_NODE_STATUS_REQUEST: a->fn.nodes((const Popsync__NodeStatusResult *)*m, a->arg); break;
        case PS_MSG_HISTORY_REQUEST: a->fn.history((const Popsync__HistoryResult *)*m, a->arg); break;
        default: break;
        }
    }
    free(a);
    return PS_OK;
}

static int ask(ps_session_t *s, answer_t *a, const ProtobufCMessage *m)
{
    answer_t *copy = malloc(sizeof(*copy));
    int64_t id;
    if (!copy)
        return PS_ENOMEM;
    *copy = *a;
    id = ps_session_request(s, a->type, m, 0, on_answer, copy);
    if (id < 0) {
        free(copy);
        return (int)id;
    }
    return PS_OK;
}

int ps_rq_conflicts(ps_session_t *s, int include_resolved, ps_conflicts_fn fn, void *arg)
{
    Popsync__ConflictList cl = POPSYNC__CONFLICT_LIST__INIT;
    answer_t a = {.type = PS_MSG_CONFLICT_LIST, .fn.conflicts = fn, .arg = arg};
    cl.include_resolved = include_resolved != 0;
    return ask(s, &a, &cl.base);
}

int ps_rq_report(ps_session_t *s, const Popsync__ReportRequest *rq, ps_report_fn fn, void *arg)
{
    answer_t a = {.type = PS_MSG_REPORT_REQUEST, .fn.report = fn, .arg = arg};
    return ask(s, &a, &rq->base);
}

int ps_rq_close(ps_session_t *s, const Popsync__CloseRequest *rq, ps_close_fn fn, void *arg)
{
    answer_t a = {.type = PS_MSG_CLOSE_REQUEST, .fn.close = fn, .arg = arg};
    return ask(s, &a, &rq->base);
}

int ps_rq_node_status(ps_session_t *s, ps_nodes_fn fn, void *arg)
{
    Popsync__NodeStatusRequest nr = POPSYNC__NODE_STATUS_REQUEST__INIT;
    answer_t a = {.type = PS_MSG_NODE_STATUS_REQUEST, .fn.nodes = fn, .arg = arg};
    return ask(s, &a, &nr.base);
}

int ps_rq_history(ps_session_t *s, const uint8_t *id, uint32_t max, ps_history_fn fn, void *arg)
{
    Popsync__HistoryRequest hr = POPSYNC__HISTORY_REQUEST__INIT;
    answer_t a = {.type = PS_MSG_HISTORY_REQUEST, .fn.history = fn, .arg = arg};
    hr.id.data = (uint8_t *)id;
    hr.id.len = 16;
    hr.max = max;
    return ask(s, &a, &hr.base);
}

/* ps_rq_close_each: where the chain is. */
typedef struct close_each {
    ps_session_t *s;
    Popsync__CloseRequest *const *reqs;
    size_t n, next;
    ps_close_fn fn;
    void *arg;
} close_each_t;

static int on_close_each(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    close_each_t *c = arg;
    int64_t id;
    if (status == PS_OK)
        c->fn((const Popsync__CloseResult *)*m, c->arg);
    if (status == PS_OK && c->next < c->n) {
        id = ps_session_request(s, PS_MSG_CLOSE_REQUEST, &c->reqs[c->next++]->base, 0, on_close_each, c);
        if (id > 0)
            return PS_OK;
        ps_session_fail(s, (int)id, "cannot send CloseRequest");
    }
    free(c);
    return PS_OK;
}

int ps_rq_close_each(ps_session_t *s, Popsync__CloseRequest *const *reqs, size_t n, ps_close_fn fn, void *arg)
{
    close_each_t *c;
    int64_t id;
    if (n == 0)
        return PS_OK;
    if (!(c = calloc(1, sizeof(*c))))
        return PS_ENOMEM;
    c->s = s;
    c->reqs = reqs;
    c->n = n;
    c->next = 1;
    c->fn = fn;
    c->arg = arg;
    id = ps_session_request(s, PS_MSG_CLOSE_REQUEST, &reqs[0]->base, 0, on_close_each, c);
    if (id < 0) {
        free(c);
        return (int)id;
    }
    return PS_OK;
}
