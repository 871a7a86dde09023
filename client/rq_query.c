/* rq_query.c - a query asked of the server (rq_query.h). */
#include "rq_query.h"
#include "err.h"
#include "msgtab.h"

#include <stdlib.h>
#include <string.h>

typedef struct query {
    Popsync__Query q;        /* shallow copy of the caller's: only after_id differs */
    uint8_t after[16];       /* list mode: the next page starts after this id */
    size_t after_len;
    size_t records;          /* records received so far */
    size_t max_records;
    ps_query_frame_fn fn;
    void *arg;
} query_t;

static int on_result(ps_session_t *s, int status, ProtobufCMessage **m, void *arg);

static int ask(ps_session_t *s, query_t *qr)
{
    int64_t id;
    qr->q.after_id.data = qr->after_len ? qr->after : NULL;
    qr->q.after_id.len = qr->after_len;
    id = ps_session_request(s, PS_MSG_QUERY, &qr->q.base, 0, on_result, qr);
    return id < 0 ? (int)id : PS_OK;
}

static int on_result(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    query_t *qr = arg;
    const Popsync__QueryResult *r;
    int rc;
    if (status) {
        free(qr);
        return status;
    }
    r = (const Popsync__QueryResult *)*m;
    qr->fn(r, qr->arg);
    qr->records += r->n_records;
    if (!r->done)
        return PS_SESSION_MORE; /* more frames of this answer follow */
    if (qr->q.list && r->next_after_id.len && (!qr->max_records || qr->records < qr->max_records)) {
        if (r->next_after_id.len > sizeof(qr->after) ||
            (r->next_after_id.len == qr->after_len && memcmp(r->next_after_id.data, qr->after, qr->after_len) == 0)) {
            ps_session_fail(s, PS_EPROTO, "server sent a bad next page position");
            free(qr);
            return PS_EPROTO;
        }
        memcpy(qr->after, r->next_after_id.data, r->next_after_id.len);
        qr->after_len = r->next_after_id.len;
        if ((rc = ask(s, qr)) == PS_OK)
            return PS_OK;
        ps_session_fail(s, rc, "cannot send Query");
    }
    free(qr);
    return PS_OK;
}

int ps_rq_query(ps_session_t *s, const Popsync__Query *q, size_t max_records, ps_query_frame_fn fn, void *arg)
{
    query_t *qr = calloc(1, sizeof(*qr));
    int rc;
    if (!qr)
        return PS_ENOMEM;
    qr->q = *q;
    qr->max_records = max_records;
    qr->fn = fn;
    qr->arg = arg;
    if ((rc = ask(s, qr)))
        free(qr);
    return rc;
}
