/* history.c - a record's history of versions, asked of the server (history.h). */
#include "history.h"

#include "err.h"
#include "ids.h"
#include "link.h"
#include "record_fmt.h"
#include "rq.h"

#include <stdio.h>
#include <string.h>

typedef struct ask {
    const uint8_t *id;
    const uint8_t *me; /* this cache's node id */
    json_t *out;
} ask_t;

/* The fields whose values differ between two versions as JSON; what every
 * change moves (its revision, time and maker) is left out. */
static json_t *changed_fields(json_t *before, json_t *after)
{
    static const char *const skip[] = {"rev", "updated_ms", "changed_by", "created_ms"};
    json_t *arr = json_array(), *v;
    const char *k;

    json_object_foreach(after, k, v) {
        int skipped = 0;
        for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
            skipped |= strcmp(k, skip[i]) == 0;
        if (!skipped && !json_equal(v, json_object_get(before, k)))
            json_array_append_new(arr, json_string(k));
    }
    json_object_foreach(before, k, v) {
        if (!json_object_get(after, k))
            json_array_append_new(arr, json_string(k));
    }
    return arr;
}

static json_t *version_json(const Popsync__HistoryVersion *hv, const uint8_t *me, json_t *rec, json_t *changed)
{
    char node[33] = "";
    int mine = hv->node.len == PS_ID_LEN && memcmp(hv->node.data, me, PS_ID_LEN) == 0;
    json_t *o;

    if (hv->node.len == PS_ID_LEN)
        ps_hex(hv->node.data, PS_ID_LEN, node);
    /* Integers: a gen and times in ms stay far below 2^53 (JavaScript). */
    o = json_pack("{s:I,s:I,s:s,s:b,s:b,s:s,s:o,s:o,s:b}", "gen", (json_int_t)hv->gen, "hlc_ms",
                  (json_int_t)(hv->hlc >> 16), "node", node, "this_device", mine, "deleted", hv->deleted, "orgunit",
                  hv->orgunit ? hv->orgunit : "", "changed", changed ? changed : json_null(), "record",
                  rec ? json_incref(rec) : json_null(), "audited", hv->audited);
    if (o && hv->audited)
        json_object_update_new(o, json_pack("{s:I,s:s,s:s,s:s,s:s}", "time_ms", (json_int_t)hv->time_ms, "action",
                                        hv->action ? hv->action : "", "cert_name", hv->cert_name ? hv->cert_name : "",
                                        "cert_role", hv->cert_role ? hv->cert_role : "", "cert_orgunit",
                                        hv->cert_orgunit ? hv->cert_orgunit : ""));
    return o;
}

static void on_history(const Popsync__HistoryResult *res, void *arg)
{
    ask_t *a = arg;
    json_t *arr = json_array(), *prev = NULL;
    uint64_t prev_gen = 0;

    for (size_t i = 0; i < res->n_versions; i++) {
        const Popsync__HistoryVersion *hv = res->versions[i];
        json_t *rec = hv->record ? ps_record_to_json(hv->record) : NULL;
        json_t *changed = prev && rec && hv->gen == prev_gen + 1 ? changed_fields(prev, rec) : NULL;
        json_array_append_new(arr, version_json(hv, a->me, rec, changed));
        json_decref(prev);
        prev = rec;
        prev_gen = hv->gen;
    }
    json_decref(prev);
    json_decref(a->out);
    a->out = json_pack("{s:o,s:I,s:I}", "versions", arr, "earlier", (json_int_t)res->earlier, "hidden",
                       (json_int_t)res->hidden);
}

static int ask_history(ps_link_t *l, void *arg)
{
    ask_t *a = arg;
    return ps_rq_history(l->s, a->id, 0, on_history, a);
}

int ps_history_ask(ps_cache_t *c, const uint8_t *id, uint64_t deadline_ms, json_t **out, int *reached, char *err,
                   size_t errlen)
{
    ask_t a = {id, ps_cache_meta(c)->node, NULL};
    int welcomed = 0, rc = ps_link_once_within(c, deadline_ms, ask_history, &a, &welcomed, err, errlen);

    if (reached)
        *reached = welcomed;
    if (rc == PS_OK && !a.out) {
        snprintf(err, errlen, "the server sent no history");
        rc = PS_EPROTO;
    }
    if (rc) {
        json_decref(a.out);
        return rc;
    }
    *out = a.out;
    return PS_OK;
}
