/* fetch.c - re-read records from the server by id (fetch.h). */
#include "fetch.h"
#include "err.h"
#include "msgtab.h"

#include <stdlib.h>
#include <string.h>

int ps_idlist_add(ps_idlist_t *l, const uint8_t *id)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        uint8_t *p = realloc(l->ids, ncap * 16);
        if (!p)
            return PS_ENOMEM;
        l->ids = p;
        l->cap = ncap;
    }
    memcpy(l->ids + l->n * 16, id, 16);
    l->n++;
    return PS_OK;
}

void ps_idlist_free(ps_idlist_t *l)
{
    free(l->ids);
    memset(l, 0, sizeof(*l));
}

typedef struct fetch {
    ps_link_t *l;
    ps_idlist_t ids;
    size_t pos;      /* next index of ids to ask for */
    size_t chunk;    /* ids of the request in flight: ids[pos - chunk, pos) */
    uint64_t got;
    ps_fetch_done_fn done;
    void *arg;
} fetch_t;

static void fetch_end(fetch_t *f, int status)
{
    ps_fetch_done_fn done = f->done;
    ps_link_t *l = f->l;
    void *arg = f->arg;
    uint64_t got = f->got, asked = f->ids.n;
    ps_idlist_free(&f->ids);
    free(f);
    done(l, status, got, asked, arg);
}

static int on_batch(ps_session_t *s, int status, ProtobufCMessage **m, void *arg);

/* Asks for the next chunk; 0 when everything was asked, else 1 (or an
 * error when the request cannot be made). */
static int ask_next(fetch_t *f)
{
    Popsync__FetchRequest fr = POPSYNC__FETCH_REQUEST__INIT;
    ProtobufCBinaryData *ids;
    size_t n = f->ids.n - f->pos < PS_FETCH_MAX ? f->ids.n - f->pos : PS_FETCH_MAX;
    int64_t id;
    if (n == 0)
        return 0;
    if (!(ids = calloc(n, sizeof(*ids))))
        return PS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        ids[i].data = f->ids.ids + (f->pos + i) * 16;
        ids[i].len = 16;
    }
    fr.n_ids = n;
    fr.ids = ids;
    id = ps_session_request(f->l->s, PS_MSG_FETCH_REQUEST, &fr.base, 0, on_batch, f);
    free(ids);
    if (id < 0)
        return (int)id;
    f->chunk = n;
    f->pos += n;
    return 1;
}

static int on_batch(ps_session_t *s, int status, ProtobufCMessage **m, void *arg)
{
    fetch_t *f = arg;
    Popsync__PullBatch *b;
    const uint8_t *body = NULL;
    size_t len = 0;
    int rc;
    if (status) {
        fetch_end(f, status);
        return status;
    }
    b = (Popsync__PullBatch *)*m;
    ps_session_body(s, &body, &len); /* none: every record is packed again */
    rc = ps_cache_apply_fetch_raw(f->l->cache, b, body, len, f->ids.ids + (f->pos - f->chunk) * 16, f->chunk);
    if (rc) {
        ps_session_fail(s, rc, "applying fetched records: %s", ps_strerror(rc));
        fetch_end(f, rc);
        return rc;
    }
    f->got += b->n_entries;
    rc = ask_next(f);
    if (rc < 0) {
        ps_session_fail(s, rc, "cannot send FetchRequest");
        fetch_end(f, rc);
        return rc;
    }
    if (rc == 0)
        fetch_end(f, PS_OK);
    return PS_OK;
}

int ps_fetch_start(ps_link_t *l, ps_idlist_t *ids, ps_fetch_done_fn done, void *arg)
{
    fetch_t *f = calloc(1, sizeof(*f));
    int rc;
    if (!f)
        return PS_ENOMEM;
    f->l = l;
    f->ids = *ids;
    memset(ids, 0, sizeof(*ids));
    f->done = done;
    f->arg = arg;
    rc = ask_next(f);
    if (rc < 0) {
        *ids = f->ids;
        free(f);
        return rc;
    }
    if (rc == 0)
        fetch_end(f, PS_OK);
    return PS_OK;
}
