/* dupcheck.c - one live person per ID number (see dupcheck.h). */
#include "dupcheck.h"

#include "err.h"
#include "ids.h"
#include "record_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ps_dup_person(ps_cache_t *c, const Popsync__Record *r, Popsync__Record **found)
{
    Popsync__Record **recs = NULL;
    size_t n = 0;
    int rc;

    *found = NULL;
    if (r->body_case != POPSYNC__RECORD__BODY_PERSON || !r->person || !r->person->id_number ||
        strlen(r->person->id_number) != 18 || r->deleted)
        return PS_OK;
    /* Two: r itself may already be filed under its number (an edit). */
    if ((rc = ps_cache_find(c, r->person->id_number, 2, &recs, &n)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        int self = r->id.len == PS_ID_LEN && recs[i]->id.len == PS_ID_LEN &&
                   memcmp(recs[i]->id.data, r->id.data, PS_ID_LEN) == 0;
        if (!self && !*found)
            *found = recs[i];
        else
            ps_record_free(recs[i]);
    }
    free(recs);
    return PS_OK;
}

const char *ps_dup_describe(const Popsync__Record *found, int zh, char *buf, size_t buflen)
{
    char id[PS_UUID_STR];

    ps_uuid_format(found->id.data, id);
    snprintf(buf, buflen,
             zh ? "该身份证号已登记：记录 %s（单位 %s）；要修改那条记录请加 --update 或用 popsync edit %s"
                : "is already registered: record %s in unit %s; to change that record give --update, or "
                  "popsync edit %s",
             id, found->orgunit, id);
    return buf;
}

int ps_dup_resolve(void *cache, const char *id_number, uint8_t id[16])
{
    Popsync__Record **recs = NULL;
    size_t n = 0;
    int rc = PS_ENOTFOUND;

    if (ps_cache_find(cache, id_number, 2, &recs, &n) != PS_OK)
        return PS_ENOTFOUND;
    for (size_t i = 0; i < n; i++) {
        if (rc != PS_OK && strcmp(recs[i]->person->id_number, id_number) == 0) {
            memcpy(id, recs[i]->id.data, 16);
            rc = PS_OK;
        }
        ps_record_free(recs[i]);
    }
    free(recs);
    return rc;
}
