/* vctx.c - the validation context of a client cache. */
#include "vctx.h"
#include "policy.h"
#include "err.h"
#include "ids.h"
#include "tz.h"

#include <stdlib.h>
#include <string.h>

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, 16);
}

static int ref_exists(void *arg, const uint8_t id[16], int kind)
{
    ps_client_vctx_t *v = arg;
    Popsync__Record *r = NULL;
    int found = 0;

    if (v->nbatch) {
        uint8_t (*hit)[17];
        if (!v->sorted) {
            qsort(v->batch_ids, v->nbatch, sizeof(*v->batch_ids), cmp_id);
            v->sorted = 1;
        }
        hit = bsearch(id, v->batch_ids, v->nbatch, sizeof(*v->batch_ids), cmp_id);
        if (hit && (kind == 0 || (*hit)[16] == kind))
            return 1;
    }
    if (ps_cache_get(v->cache, id, &r) == PS_OK) {
        found = !r->deleted && (kind == 0 || (int)r->kind == kind);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    return found;
}

uint32_t ps_client_today(ps_cache_t *c)
{
    /* The zone's offset is read once per process and zone: a long-running
     * caller (an import, the test tools) does not set TZ once per record. */
    static ps_tz_t tz;
    static int loaded;
    const char *name = *ps_cache_meta(c)->timezone ? ps_cache_meta(c)->timezone : PS_TZ_DEFAULT;
    char err[256];
    uint64_t now = ps_now_ms();
    if (loaded <= 0 || strcmp(tz.name, name) != 0)
        loaded = ps_tz_load(&tz, name, now, err, sizeof(err)) == PS_OK ? 1 : -1;
    return loaded > 0 ? ps_tz_date(&tz, now) : 0;
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
    memset(v, 0, sizeof(*v));
}

int ps_client_vctx_note(ps_client_vctx_t *v, const uint8_t id[16], int kind)
{
    if (v->nbatch == v->capbatch) {
        size_t ncap = v->capbatch ? v->capbatch * 2 : 1024;
        void *p = realloc(v->batch_ids, ncap * sizeof(*v->batch_ids));
        if (!p)
            return PS_ENOMEM;
        v->batch_ids = p;
        v->capbatch = ncap;
    }
    memcpy(v->batch_ids[v->nbatch], id, 16);
    v->batch_ids[v->nbatch][16] = (uint8_t)kind;
    v->nbatch++;
    v->sorted = 0;
    return PS_OK;
}
