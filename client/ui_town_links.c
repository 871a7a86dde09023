/* ui_town_links.c - the records linked to a person (ui_town.h): what
 * refers to it, from the cache's index (ps_cache_find_referring: the
 * person index's R terms), so a person's page reads only those records. */
#include "ui_town.h"

#include "err.h"
#include "ids.h"
#include "record_fmt.h"

#include <stdlib.h>
#include <string.h>

#define LINKED_MAX 100 /* records of one kind on a person's page */
#define REFERRING_MAX 1000

/* The live records of kind among recs, into a new array. */
static json_t *of_kind(ps_ui_req_t *rq, Popsync__Record **recs, size_t n, int kind)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < n && json_array_size(arr) < LINKED_MAX; i++) {
        json_t *o;
        if ((int)recs[i]->kind != kind)
            continue;
        o = ps_ui_record_json(rq, recs[i]);
        json_object_set_new(o, "state", ps_ui_record_state(rq, recs[i]->id.data, recs[i]));
        json_array_append_new(arr, o);
    }
    return arr;
}

static void free_recs(Popsync__Record **recs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        protobuf_c_message_free_unpacked(&recs[i]->base, NULL);
    free(recs);
}

json_t *ps_ui_linked_json(ps_ui_req_t *rq, const Popsync__Record *r)
{
    static const struct {
        const char *name;
        int kind;
    } kinds[] = {{"births", POPSYNC__KIND__KIND_BIRTH},
                 {"migrations", POPSYNC__KIND__KIND_MIGRATION},
                 {"benefits", POPSYNC__KIND__KIND_BENEFIT},
                 {"visits", POPSYNC__KIND__KIND_SERVICE_VISIT},
                 {"households_headed", POPSYNC__KIND__KIND_HOUSEHOLD}};
    ps_cache_t *c = ps_ui_cache(rq);
    json_t *o = json_object();
    Popsync__Record **recs = NULL, *h = NULL;
    size_t n = 0;

    if (r->body_case != POPSYNC__RECORD__BODY_PERSON)
        return o;
    if (ps_cache_find_referring(c, r->id.data, REFERRING_MAX, &recs, &n) == PS_OK) {
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            json_object_set_new(o, kinds[k].name, of_kind(rq, recs, n, kinds[k].kind));
        free_recs(recs, n);
    }
    recs = NULL;
    n = 0;
    if (r->person->household_id.len == PS_ID_LEN && ps_cache_get(c, r->person->household_id.data, &h) == PS_OK) {
        json_object_set_new(o, "household", ps_ui_record_json(rq, h));
        ps_record_free(h);
        if (ps_cache_find_referring(c, r->person->household_id.data, REFERRING_MAX, &recs, &n) == PS_OK) {
            json_object_set_new(o, "household_members", of_kind(rq, recs, n, POPSYNC__KIND__KIND_PERSON));
            free_recs(recs, n);
        }
    }
    if (!json_object_get(o, "household_members"))
        json_object_set_new(o, "household_members", json_array());
    return o;
}
