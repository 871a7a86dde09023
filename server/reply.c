/* reply.c - the server's protocol layer (reply.h). */
#include "reply.h"
#include "err.h"
#include "frame.h"
#include "msg.h"
#include "msgtab.h"

#include "wire.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ps_reply_msg(ps_buf_t *out, uint8_t type, uint32_t request_id, const ProtobufCMessage *msg)
{
    return ps_msg_pack_frame(out, type, request_id, msg);
}

int ps_reply_batch_begin(ps_reply_batch_t *b, ps_buf_t *out)
{
    int rc;
    b->out = out;
    b->start = ps_buf_size(out);
    if ((rc = ps_buf_reserve(out, PS_FRAME_HDR)))
        return rc;
    ps_buf_commit(out, PS_FRAME_HDR); /* the header is written at the end, when the length is known */
    return PS_OK;
}

int ps_reply_batch_entry(void *arg, const ps_pull_item_t *it)
{
    ps_reply_batch_t *b = arg;
    if (it->gone_id)
        return ps_msg_feed_gone_append(b->out, it->seq, it->gone_id);
    return ps_msg_feed_entry_append_migrant(b->out, it->seq, it->record, it->record_len, it->migrant,
                                            it->migrant_len);
}

int ps_reply_batch_end(ps_reply_batch_t *b, int rc, uint32_t request_id, const ps_pull_end_t *end)
{
    ps_buf_t *out = b->out;
    if (rc == PS_OK)
        rc = ps_msg_pull_batch_finish(out, end->cursor, end->more, end->head);
    if (rc) {
        out->len = out->off + b->start;
        return rc;
    }
    ps_frame_encode_header(out->data + out->off + b->start, PS_MSG_PULL_BATCH, 0, request_id,
                           ps_buf_size(out) - b->start - PS_FRAME_HDR);
    return PS_OK;
}

int ps_reply_query(ps_buf_t *out, uint32_t request_id, const ProtobufCMessage *query_result)
{
    const Popsync__QueryResult *all = (const Popsync__QueryResult *)query_result;
    size_t n = all->n_rows;
    int rc = PS_OK;

    if (all->n_records || !all->n_group_by)
        return ps_msg_pack_frame(out, PS_MSG_QUERY_RESULT, request_id, query_result);
    /* Group rows stream in frames; the last one says done (an empty answer
     * is one frame). */
    for (size_t start = 0; rc == PS_OK && (start < n || start == 0); start += PS_REPLY_QUERY_ROWS) {
        Popsync__QueryResult part = *all;
        size_t cnt = n - start < PS_REPLY_QUERY_ROWS ? n - start : PS_REPLY_QUERY_ROWS;
        part.n_rows = cnt;
        part.rows = cnt ? all->rows + start : NULL;
        part.done = start + cnt >= n;
        rc = ps_msg_pack_frame(out, PS_MSG_QUERY_RESULT, request_id, &part.base);
        if (n == 0)
            break;
    }
    return rc;
}

int ps_reply_verify_digests(ps_buf_t *out, uint32_t request_id, const ps_verify_digests_t *d)
{
    Popsync__VerifyDigests m = POPSYNC__VERIFY_DIGESTS__INIT;
    m.n_digests = PS_VERIFY_BUCKETS;
    m.digests = (uint64_t *)d->digests;
    m.n_counts = PS_VERIFY_BUCKETS;
    m.counts = (uint32_t *)d->counts;
    return ps_msg_pack_frame(out, PS_MSG_VERIFY_DIGESTS, request_id, &m.base);
}

int ps_reply_verify_items(ps_buf_t *out, uint32_t request_id, const ps_verify_item_t *items, size_t n)
{
    Popsync__VerifyBucketList list = POPSYNC__VERIFY_BUCKET_LIST__INIT;
    Popsync__VerifyItem *v = calloc(n ? n : 1, sizeof(*v));
    Popsync__VerifyItem **p = calloc(n ? n : 1, sizeof(*p));
    int rc = PS_ENOMEM;
    if (v && p) {
        for (size_t i = 0; i < n; i++) {
            popsync__verify_item__init(&v[i]);
            v[i].id.data = (uint8_t *)items[i].id;
            v[i].id.len = PS_ID_LEN;
            v[i].gen = items[i].gen;
            v[i].hlc = items[i].hlc;
            v[i].deleted = items[i].deleted != 0;
            p[i] = &v[i];
        }
        list.n_items = n;
        list.items = p;
        rc = ps_msg_pack_frame(out, PS_MSG_VERIFY_BUCKET_LIST, request_id, &list.base);
    }
    free(v);
    free(p);
    return rc;
}

int ps_reply_push(ps_push_job_t *job)
{
    Popsync__PushResult pr = POPSYNC__PUSH_RESULT__INIT;
    size_t n = job->nresults;
    Popsync__ChangeResult *res = calloc(n ? n : 1, sizeof(*res)), **resp = calloc(n ? n : 1, sizeof(*resp));
    Popsync__Rev *revs = calloc(n ? n : 1, sizeof(*revs));
    Popsync__FieldError *fe = calloc((n ? n : 1) * PS_CHANGE_ERRORS_MAX, sizeof(*fe));
    Popsync__FieldError **fep = calloc((n ? n : 1) * PS_CHANGE_ERRORS_MAX, sizeof(*fep));
    int rc = PS_ENOMEM;

    if (res && resp && revs && fe && fep) {
        for (size_t i = 0; i < n; i++) {
            ps_change_result_msg(&job->results[i], &res[i], &revs[i], fe + i * PS_CHANGE_ERRORS_MAX,
                                 fep + i * PS_CHANGE_ERRORS_MAX);
            resp[i] = &res[i];
        }
        pr.n_results = n;
        pr.results = resp;
        if (ps_push_clock_wrong(job))
            pr.clock_skew_ms = job->clock_skew_ms;
        ps_buf_reset(&job->reply);
        rc = ps_msg_pack_frame(&job->reply, PS_MSG_PUSH_RESULT, job->request_id, &pr.base);
    }
    free(res);
    free(resp);
    free(revs);
    free(fe);
    free(fep);
    return rc;
}

void ps_reply_push_error(ps_push_job_t *job, int err)
{
    Popsync__Error e = POPSYNC__ERROR__INIT;
    char msg[256];
    if (err == PS_EFULL)
        snprintf(msg, sizeof(msg), "push not committed: storage full on the server (map cap reached); "
                                   "nothing was applied, sync again once the district has raised the cap");
    else if (err == PS_ENOSPC)
        snprintf(msg, sizeof(msg), "push not committed: disk full on the server; nothing was applied, "
                                   "sync again once the district has freed disk space");
    else
        snprintf(msg, sizeof(msg), "push not committed: %s", ps_strerror(err));
    e.code = (uint32_t)-err;
    e.message = msg;
    ps_buf_reset(&job->reply);
    ps_msg_pack_frame(&job->reply, PS_MSG_ERROR, job->request_id, &e.base);
}
