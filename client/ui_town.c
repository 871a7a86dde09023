/* ui_town.c - the township pages' requests (ui.h): search, persons,
 * records and their states.  Forms, sync, conflicts, refused changes,
 * migrations and imports are in ui_town_*.c; this file owns the module's
 * route table. */
#include "ui_town.h"

#include "err.h"
#include "fields.h"
#include "ids.h"
#include "record_fmt.h"

#include <stdlib.h>
#include <string.h>

#define FIND_MAX 200

/* GET /api/find?q=TEXT&limit=N: persons by the person index (as `popsync find`). */
static int h_find(ps_ui_req_t *rq)
{
    const char *q = ps_ui_arg(rq, "q"), *ls = ps_ui_arg(rq, "limit");
    long limit = ls ? strtol(ls, NULL, 10) : 50;
    Popsync__Record **recs = NULL;
    size_t n = 0;
    json_t *arr;
    int rc;

    if (!q || !*q)
        return ps_ui_reply_json(rq, 200, json_pack("{s:[]}", "results"));
    if (limit < 1 || limit > FIND_MAX)
        limit = 50;
    if ((rc = ps_cache_find(ps_ui_cache(rq), q, (size_t)limit, &recs, &n)) != PS_OK)
        return ps_ui_reply_error(rq, 500, ps_strerror(rc), NULL);
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, ps_ui_record_json(rq, recs[i]));
        protobuf_c_message_free_unpacked(&recs[i]->base, NULL);
    }
    free(recs);
    return ps_ui_reply_json(rq, 200, json_pack("{s:o}", "results", arr));
}

/* A record as the pages show it: its fields (record_fmt's JSON), its kind,
 * and the labels of enum values in the user's language. */
json_t *ps_ui_record_json(ps_ui_req_t *rq, const Popsync__Record *r)
{
    json_t *o = ps_record_to_json(r);
    json_t *labels = json_object();
    size_t nf;
    const ps_field_t *f = ps_fields_of((int)r->kind, &nf);

    if (!o)
        return json_null();
    for (size_t i = 0; rq && ps_ui_zh(rq) && i < nf; i++) {
        char v[PS_FIELD_NORM_MAX];
        const char *zh;
        if (ps_record_get_text(r, f[i].name, v, sizeof(v)) == PS_OK && *v && (zh = ps_field_value_zh(&f[i], v)))
            json_object_set_new(labels, f[i].name, json_string(zh));
    }
    json_object_set_new(o, "kind", json_string(ps_kind_name((int)r->kind)));
    json_object_set_new(o, "labels", labels);
    return o;
}

static const ps_ui_route_t town_routes[] = {
    {"GET", "/api/find", 0, 1, h_find},
};

static const ps_ui_nav_t town_nav[] = {
    {"/index.html", "查找", "Search", NULL},
};

const ps_ui_module_t ps_ui_town_module = {"town", town_routes, sizeof(town_routes) / sizeof(town_routes[0]),
                                          town_nav, sizeof(town_nav) / sizeof(town_nav[0])};
