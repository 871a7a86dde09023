/* validate.c - record validation shared by client and server. */
#include "validate.h"
#include "ids.h"
#include "scope.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ps_verrs_add(ps_verrs_t *v, const char *field, const char *fmt, ...)
{
    va_list ap;
    ps_field_error_t *e;
    if (v->n >= PS_VERR_MAX) {
        v->n++;
        return;
    }
    e = &v->e[v->n++];
    snprintf(e->field, sizeof(e->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
    va_end(ap);
}

static int body_matches_kind(const Popsync__Record *r)
{
    switch (r->kind) {
    case POPSYNC__KIND__KIND_PERSON: return r->body_case == POPSYNC__RECORD__BODY_PERSON;
    case POPSYNC__KIND__KIND_HOUSEHOLD: return r->body_case == POPSYNC__RECORD__BODY_HOUSEHOLD;
    case POPSYNC__KIND__KIND_BIRTH: return r->body_case == POPSYNC__RECORD__BODY_BIRTH;
    case POPSYNC__KIND__KIND_MIGRATION: return r->body_case == POPSYNC__RECORD__BODY_MIGRATION;
    case POPSYNC__KIND__KIND_BENEFIT: return r->body_case == POPSYNC__RECORD__BODY_BENEFIT;
    case POPSYNC__KIND__KIND_SERVICE_VISIT: return r->body_case == POPSYNC__RECORD__BODY_SERVICE_VISIT;
    default: return 0;
    }
}

size_t ps_validate_record(const Popsync__Record *r, const ps_validate_ctx_t *ctx, ps_verrs_t *v)
{
    (void)ctx;
    size_t before = v->n;
    if (r->id.len != PS_ID_LEN)
        ps_verrs_add(v, "id", "must be a 16-byte UUID");
    if (!body_matches_kind(r))
        ps_verrs_add(v, "kind", "kind is unknown or does not match the record body");
    if (!ps_orgunit_valid(r->orgunit))
        ps_verrs_add(v, "orgunit", "must be a 12-digit division code");
    return v->n - before;
}
