/* xrules.c - rules between records (see xrules.h). */
#include "xrules.h"

#include "err.h"
#include "ids.h"
#include "record_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOTHER_MIN_AGE 12
#define MOTHER_MAX_AGE 60

static int same_bytes(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

static int same_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The live person id names, or NULL (caller frees). */
static Popsync__Record *person(ps_cache_t *c, ProtobufCBinaryData id)
{
    Popsync__Record *p = NULL;

    if (id.len != PS_ID_LEN || ps_cache_get(c, id.data, &p) != PS_OK)
        return NULL;
    if (p->deleted || p->body_case != POPSYNC__RECORD__BODY_PERSON || !p->person) {
        ps_record_free(p);
        return NULL;
    }
    return p;
}

/* Whole years from YYYY-MM-DD a to YYYY-MM-DD b; -1000 when either is bad. */
static int years_between(const char *a, const char *b)
{
    int ya, ma, da, yb, mb, db;

    if (!a || !b || sscanf(a, "%4d-%2d-%2d", &ya, &ma, &da) != 3 || sscanf(b, "%4d-%2d-%2d", &yb, &mb, &db) != 3)
        return -1000;
    return yb - ya - (mb < ma || (mb == ma && db < da));
}

static size_t check_birth(ps_cache_t *c, const Popsync__Birth *b, const Popsync__Birth *cur, ps_verrs_t *v)
{
    Popsync__Record *m;
    size_t n = 0;
    int age;

    if (cur && same_bytes(b->mother_id, cur->mother_id) && same_str(b->birth_date, cur->birth_date))
        return 0;
    if (!(m = person(c, b->mother_id)))
        return 0;
    if (m->person->sex == POPSYNC__SEX__SEX_MALE) {
        ps_verrs_add(v, "mother_id", "is a man: a birth's mother must be a woman; check the person chosen");
        n++;
    }
    age = years_between(m->person->birth_date, b->birth_date);
    if (age != -1000 && (age < MOTHER_MIN_AGE || age > MOTHER_MAX_AGE)) {
        ps_verrs_add(v, "mother_id", "would be %d years old at this birth: check the mother chosen or the birth date",
                     age);
        n++;
    }
    ps_record_free(m);
    return n;
}

static size_t check_benefit(ps_cache_t *c, const Popsync__Record *r, const Popsync__Benefit *cur, ps_verrs_t *v)
{
    const Popsync__Benefit *b = r->benefit;
    Popsync__Record **recs = NULL, *p;
    size_t n = 0, got = 0;

    if (cur && same_bytes(b->person_id, cur->person_id) && same_str(b->scheme, cur->scheme) &&
        same_str(b->period, cur->period))
        return 0;
    if (ps_cache_find_payments(c, &b->person_id, b->scheme, b->period, 2, &recs, &got) == PS_OK) {
        for (size_t i = 0; i < got; i++) {
            if (n == 0 && !same_bytes(recs[i]->id, r->id)) {
                char id[PS_UUID_STR];
                ps_uuid_format(recs[i]->id.data, id);
                ps_verrs_add(v, "period", "this person already has a %s benefit for this period (record %s): edit that one",
                             b->scheme, id);
                n++;
            }
            ps_record_free(recs[i]);
        }
        free(recs);
    }
    if (b->scheme && strcmp(b->scheme, "first_birth_subsidy") == 0 && (p = person(c, b->person_id))) {
        if (p->person->sex == POPSYNC__SEX__SEX_MALE) {
            ps_verrs_add(v, "person_id", "is a man: the first-birth subsidy is paid to the mother");
            n++;
        }
        ps_record_free(p);
    }
    return n;
}

size_t ps_xrules_check(ps_cache_t *c, const Popsync__Record *r, const Popsync__Record *current, ps_verrs_t *v)
{
    if (!r || r->deleted)
        return 0;
    if (r->body_case == POPSYNC__RECORD__BODY_BIRTH && r->birth)
        return check_birth(c, r->birth, current && current->birth ? current->birth : NULL, v);
    if (r->body_case == POPSYNC__RECORD__BODY_BENEFIT && r->benefit)
        return check_benefit(c, r, current && current->benefit ? current->benefit : NULL, v);
    return 0;
}
