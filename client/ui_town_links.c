/* ui_town_links.c - who refers to whom (ui_town.h), for the person page:
 * a sorted array of (referred id, referring id, kind) pairs made by one
 * pass over the cache, plus the pairs of records saved since, unsorted.
 * A pair is a hint: the referring record is read and its references
 * checked again before it is shown, so a stale pair shows nothing. */
#include "ui_town.h"

#include "err.h"
#include "ids.h"
#include "record_fmt.h"
#include "validate.h"

#include <stdlib.h>
#include <string.h>

#define LINKED_MAX 100 /* records of one kind on a person's page */

typedef struct link {
    uint8_t to[PS_ID_LEN], from[PS_ID_LEN];
    int kind; /* the referring record's kind */
} link_t;

typedef struct links {
    link_t *v;
    size_t n, cap, sorted; /* v[0..sorted) is sorted by to */
    int built;
} links_t;

static int link_cmp(const void *a, const void *b)
{
    return memcmp(((const link_t *)a)->to, ((const link_t *)b)->to, PS_ID_LEN);
}

static void links_free(void *p)
{
    links_t *l = p;

    if (l)
        free(l->v);
    free(l);
}

static void add(links_t *l, const Popsync__Record *r)
{
    ps_ref_t refs[PS_REFS_MAX];
    size_t n = r->deleted ? 0 : ps_record_refs(r, refs);

    for (size_t i = 0; i < n; i++) {
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 1024;
            link_t *v = realloc(l->v, cap * sizeof(*v));
            if (!v)
                return;
            l->v = v;
            l->cap = cap;
        }
        memcpy(l->v[l->n].to, refs[i].id, PS_ID_LEN);
        memcpy(l->v[l->n].from, r->id.data, PS_ID_LEN);
        l->v[l->n].kind = (int)r->kind;
        l->n++;
    }
}

static int build_one(Popsync__Record *r, void *arg)
{
    add(arg, r);
    return 0;
}

static links_t *links_of(ps_ui_t *ui)
{
    links_t *l = ps_ui_state(ui, PS_UI_SLOT_LINKS);

    if (!l) {
        if (!(l = calloc(1, sizeof(*l))))
            return NULL;
        ps_ui_set_state(ui, PS_UI_SLOT_LINKS, l, links_free);
    }
    if (!l->built) {
        l->n = l->sorted = 0;
        if (ps_cache_foreach(ps_ui_cache_of(ui), build_one, l) != PS_OK)
            return l;
        qsort(l->v, l->n, sizeof(*l->v), link_cmp);
        l->sorted = l->n;
        l->built = 1;
    }
    return l;
}

void ps_ui_links_note(ps_ui_t *ui, const Popsync__Record *r)
{
    links_t *l = ps_ui_state(ui, PS_UI_SLOT_LINKS);

    if (l && l->built)
        add(l, r);
}

void ps_ui_links_stale(ps_ui_t *ui)
{
    links_t *l = ps_ui_state(ui, PS_UI_SLOT_LINKS);

    if (l)
        l->built = 0;
}

/* Does r (still) refer to id? */
static int refers(const Popsync__Record *r, const uint8_t *id)
{
    ps_ref_t refs[PS_REFS_MAX];
    size_t n = r->deleted ? 0 : ps_record_refs(r, refs);

    for (size_t i = 0; i < n; i++)
        if (memcmp(refs[i].id, id, PS_ID_LEN) == 0)
            return 1;
    return 0;
}

/* The live records of kind that refer to id, into arr (each once). */
static void referring(ps_ui_req_t *rq, links_t *l, const uint8_t *id, int kind, json_t *arr)
{
    link_t key;
    size_t lo = 0, hi = l->sorted;
    uint8_t seen[LINKED_MAX][PS_ID_LEN];
    size_t nseen = 0;

    memcpy(key.to, id, PS_ID_LEN);
    while (lo < hi) { /* the first pair with to >= id */
        size_t mid = lo + (hi - lo) / 2;
        if (link_cmp(&l->v[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < l->n && nseen < LINKED_MAX; i++) {
        Popsync__Record *r = NULL;
        int dup = 0;
        if (i < l->sorted && memcmp(l->v[i].to, id, PS_ID_LEN) != 0) {
            i = l->sorted - 1; /* on to the unsorted tail */
            continue;
        }
        if (memcmp(l->v[i].to, id, PS_ID_LEN) != 0 || l->v[i].kind != kind)
            continue;
        for (size_t k = 0; k < nseen && !dup; k++)
            dup = memcmp(seen[k], l->v[i].from, PS_ID_LEN) == 0;
        if (dup || ps_cache_get(ps_ui_cache(rq), l->v[i].from, &r) != PS_OK)
            continue;
        if (refers(r, id) && (int)r->kind == kind) {
            json_t *o = ps_ui_record_json(rq, r);
            json_object_set_new(o, "state", ps_ui_record_state(rq, r->id.data, r));
            json_array_append_new(arr, o);
            memcpy(seen[nseen++], r->id.data, PS_ID_LEN);
        }
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
}

json_t *ps_ui_linked_json(ps_ui_req_t *rq, const Popsync__Record *r)
{
    links_t *l;
    json_t *o = json_object(), *members = json_array();
    static const struct {
        const char *name;
        int kind;
    } kinds[] = {{"births", POPSYNC__KIND__KIND_BIRTH},
                 {"migrations", POPSYNC__KIND__KIND_MIGRATION},
                 {"benefits", POPSYNC__KIND__KIND_BENEFIT},
                 {"visits", POPSYNC__KIND__KIND_SERVICE_VISIT},
                 {"households_headed", POPSYNC__KIND__KIND_HOUSEHOLD}};

    if (r->body_case != POPSYNC__RECORD__BODY_PERSON || !(l = links_of(ps_ui_server(rq)))) {
        json_decref(members);
        return o;
    }
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        json_t *arr = json_array();
        referring(rq, l, r->id.data, kinds[k].kind, arr);
        json_object_set_new(o, kinds[k].name, arr);
    }
    if (r->person->household_id.len == PS_ID_LEN) {
        Popsync__Record *h = NULL;
        if (ps_cache_get(ps_ui_cache(rq), r->person->household_id.data, &h) == PS_OK) {
            json_object_set_new(o, "household", ps_ui_record_json(rq, h));
            ps_record_free(h);
        }
        referring(rq, l, r->person->household_id.data, POPSYNC__KIND__KIND_PERSON, members);
    }
    json_object_set_new(o, "household_members", members);
    return o;
}
