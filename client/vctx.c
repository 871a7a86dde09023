/* vctx.c - the validation context of a client cache. */
#include "vctx.h"
#include "policy.h"
#include "err.h"
#include "ids.h"
#include "tz.h"

#include <stdlib.h>
#include <string.h>

/* The slot of id in the batch set, or -1. */
static long batch_find(const ps_client_vctx_t *v, const uint8_t id[16])
{
    if (v->capbatch == 0)
        return -1;
    for (size_t i = ps_id_hash(id) & (v->capbatch - 1);; i = (i + 1) & (v->capbatch - 1)) {
        if (!v->used[i])
            return -1;
        if (memcmp(v->batch_ids[i], id, 16) == 0)
            return (long)i;
    }
}

static void batch_insert(uint8_t (*ids)[17], unsigned char *used, size_t cap, const uint8_t entry[17])
{
    size_t i = ps_id_hash(entry) & (cap - 1);
    while (used[i])
        i = (i + 1) & (cap - 1);
    memcpy(ids[i], entry, 17);
    used[i] = 1;
}

static int ref_exists(void *arg, const uint8_t id[16], int kind)
{
    ps_client_vctx_t *v = arg;
    Popsync__Record *r = NULL;
    long hit = batch_find(v, id);
    int found = 0;

    if (hit >= 0 && (kind == 0 || v->batch_ids[hit][16] == kind))
        return 1;
    if (ps_cache_get(v->cache, id, &r) == PS_OK) {
        found = !r->deleted && (kind == 0 || (int)r->kind == kind);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    return found;
}

uint32_t ps_client_today(ps_cache_t *c)
{
    /* The zone's offset is read once per process and zone (ps_tz_get): a
     * long-running caller (an import, the test tools) does not set TZ once
     * per record, and popsync ui's threads never do. */
    const char *name = *ps_cache_meta(c)->timezone ? ps_cache_meta(c)->timezone : PS_TZ_DEFAULT;
    char err[256];
    ps_tz_t tz;
    int rc = ps_tz_get(&tz, name, err, sizeof(err));
    return rc == PS_OK || rc == PS_ENOTFOUND ? ps_tz_date(&tz, ps_now_ms()) : 0;
}

int ps_client_vctx_init(ps_client_vctx_t *v, ps_cache_t *c)
{
    const ps_cache_meta_t *m = ps_cache_meta(c);

    memset(v, 0, sizeof(*v));
    v->cache = c;
    /* A cache without a tree (or with one it cannot parse) validates codes
     * by format and the prefix rule; the server checks against its tree. */
    v->units = ps_client_orgunits(c);
    v->ctx.units = v->units;
    ps_policy_peer(&v->peer, m->role, m->orgunit);
    v->ctx.peer = &v->peer;
    v->ctx.ref_exists = ref_exists;
    v->ctx.ref_arg = v;
    v->ctx.today = ps_client_today(c);
    return PS_OK;
}

ps_orgunits_t *ps_client_orgunits(ps_cache_t *c)
{
    ps_orgunits_t *t = NULL;
    uint8_t *csv = NULL, digest[32];
    size_t len = 0;
    char err[256];

    if (ps_cache_get_orgunits(c, &csv, &len, digest) == PS_OK) {
        if (ps_orgunits_parse(csv, len, &t, err, sizeof(err)) != PS_OK)
            t = NULL;
        free(csv);
    }
    return t;
}

void ps_client_vctx_free(ps_client_vctx_t *v)
{
    ps_orgunits_free(v->units);
    free(v->batch_ids);
    free(v->used);
    memset(v, 0, sizeof(*v));
}

void ps_client_vctx_forget(ps_client_vctx_t *v)
{
    if (v->used)
        memset(v->used, 0, v->capbatch);
    v->nbatch = 0;
}

int ps_client_vctx_noted(const ps_client_vctx_t *v, const uint8_t id[16])
{
    return batch_find(v, id) >= 0;
}

int ps_client_vctx_note(ps_client_vctx_t *v, const uint8_t id[16], int kind)
{
    uint8_t entry[17];
    long hit = batch_find(v, id);
    if (hit >= 0) {
        v->batch_ids[hit][16] = (uint8_t)kind;
        return PS_OK;
    }
    if (2 * (v->nbatch + 1) > v->capbatch) {
        size_t cap = v->capbatch ? v->capbatch * 2 : 1024;
        uint8_t (*ids)[17] = malloc(cap * sizeof(*ids));
        unsigned char *used = calloc(cap, 1);
        if (!ids || !used) {
            free(ids);
            free(used);
            return PS_ENOMEM;
        }
        for (size_t i = 0; i < v->capbatch; i++)
            if (v->used[i])
                batch_insert(ids, used, cap, v->batch_ids[i]);
        free(v->batch_ids);
        free(v->used);
        v->batch_ids = ids;
        v->used = used;
        v->capbatch = cap;
    }
    memcpy(entry, id, 16);
    entry[16] = (uint8_t)kind;
    batch_insert(v->batch_ids, v->used, v->capbatch, entry);
    v->nbatch++;
    return PS_OK;
}
