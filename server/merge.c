/* merge.c - three-way merge of record versions, field by field. */
#include "merge.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

/* The body message of a record and its descriptor. */
static const ProtobufCMessage *body_of(const Popsync__Record *r)
{
    switch (r->body_case) {
    case POPSYNC__RECORD__BODY_PERSON: return &r->person->base;
    case POPSYNC__RECORD__BODY_HOUSEHOLD: return &r->household->base;
    case POPSYNC__RECORD__BODY_BIRTH: return &r->birth->base;
    case POPSYNC__RECORD__BODY_MIGRATION: return &r->migration->base;
    case POPSYNC__RECORD__BODY_BENEFIT: return &r->benefit->base;
    case POPSYNC__RECORD__BODY_SERVICE_VISIT: return &r->service_visit->base;
    case POPSYNC__RECORD__BODY_SPOTCHECK: return &r->spotcheck->base;
    default: return NULL;
    }
}

static void set_body(Popsync__Record *r, void *body)
{
    switch (r->body_case) {
    case POPSYNC__RECORD__BODY_PERSON: r->person = body; break;
    case POPSYNC__RECORD__BODY_HOUSEHOLD: r->household = body; break;
    case POPSYNC__RECORD__BODY_BIRTH: r->birth = body; break;
    case POPSYNC__RECORD__BODY_MIGRATION: r->migration = body; break;
    case POPSYNC__RECORD__BODY_BENEFIT: r->benefit = body; break;
    case POPSYNC__RECORD__BODY_SERVICE_VISIT: r->service_visit = body; break;
    case POPSYNC__RECORD__BODY_SPOTCHECK: r->spotcheck = body; break;
    default: break;
    }
}

static size_t field_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    default: return 4;
    }
}

/* Equality of one singular field; a missing message (NULL) counts as the
 * empty default so "unset" and "set to empty" never look like an edit. */
static int field_eq(const ProtobufCFieldDescriptor *f, const void *a, const void *b)
{
    const uint8_t *pa = a ? (const uint8_t *)a + f->offset : NULL;
    const uint8_t *pb = b ? (const uint8_t *)b + f->offset : NULL;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return 1; /* no repeated fields in record bodies; see merge.h */
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *sa = pa ? *(char *const *)pa : NULL, *sb = pb ? *(char *const *)pb : NULL;
        return strcmp(sa ? sa : "", sb ? sb : "") == 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData ba = {0, NULL}, bb = {0, NULL};
        if (pa)
            memcpy(&ba, pa, sizeof(ba));
        if (pb)
            memcpy(&bb, pb, sizeof(bb));
        return ba.len == bb.len && (ba.len == 0 || memcmp(ba.data, bb.data, ba.len) == 0);
    }
    case PROTOBUF_C_TYPE_MESSAGE: return 1;
    default: {
        uint8_t za[8] = {0}, zb[8] = {0};
        size_t n = field_size(f);
        if (pa)
            memcpy(za, pa, n);
        if (pb)
            memcpy(zb, pb, n);
        return memcmp(za, zb, n) == 0;
    }
    }
}

static void field_copy(const ProtobufCFieldDescriptor *f, void *dst, const void *src)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_MESSAGE)
        return;
    if (src)
        memcpy((uint8_t *)dst + f->offset, (const uint8_t *)src + f->offset, field_size(f));
    else
        memset((uint8_t *)dst + f->offset, 0, field_size(f));
}

static int envelope_str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

size_t ps_merge_diff(const Popsync__Record *a, const Popsync__Record *b, const char **names, size_t max)
{
    const ProtobufCMessage *ba = a ? body_of(a) : NULL, *bb = b ? body_of(b) : NULL;
    const ProtobufCMessageDescriptor *d = ba ? ba->descriptor : bb ? bb->descriptor : NULL;
    size_t n = 0;
    if (!envelope_str_eq(a ? a->orgunit : NULL, b ? b->orgunit : NULL) && n < max)
        names[n++] = "orgunit";
    if (!d)
        return n;
    for (unsigned i = 0; i < d->n_fields && n < max; i++)
        if (!field_eq(&d->fields[i], ba, bb))
            names[n++] = d->fields[i].name;
    return n;
}

void ps_merge_free(ps_merge_t *m)
{
    free(m->_body);
    m->_body = NULL;
}

static void add_field(ps_merge_t *m, const char *name)
{
    if (m->nfields < PS_MERGE_MAX_FIELDS)
        m->fields[m->nfields++] = name;
}

int ps_merge(const Popsync__Record *base, const Popsync__Record *theirs, const Popsync__Record *mine, int mine_wins,
             ps_merge_t *out)
{
    const ProtobufCMessage *bb = base ? body_of(base) : NULL, *tb = body_of(theirs), *mb = body_of(mine);
    const ProtobufCMessageDescriptor *d = tb ? tb->descriptor : mb ? mb->descriptor : NULL;
    int b_del = base ? base->deleted : 0, t_del = theirs->deleted, m_del = mine->deleted;
    const char *b_unit = base ? base->orgunit : NULL;
    size_t theirs_changed = 0;

    memset(out, 0, sizeof(*out));
    out->merged = *theirs;
    out->mine_won = mine_wins;
    if (!d)
        return PS_OK;
    out->_body = malloc(d->sizeof_message);
    if (!out->_body)
        return PS_ENOMEM;
    if (tb)
        memcpy(out->_body, tb, d->sizeof_message);
    else
        d->message_init(out->_body);
    set_body(&out->merged, out->_body);

    /* What each side changed against the base. */
    out->mine_changed = ps_merge_diff(base, mine, out->changed, PS_MERGE_MAX_FIELDS);
    {
        const char *tmp[PS_MERGE_MAX_FIELDS];
        theirs_changed = ps_merge_diff(base, theirs, tmp, PS_MERGE_MAX_FIELDS);
    }

    /* Deletion races first: they decide whether the fields matter at all. */
    if (m_del != t_del) {
        if (t_del != b_del && m_del == b_del) {
            if (t_del && out->mine_changed > 0) {
                /* An edit to a record someone deleted: never resurrect it
                 * silently, never drop the edit silently. */
                out->outcome = PS_MERGE_KEEP_WHOLE;
                add_field(out, "deleted");
                out->reason = "edited a record that was deleted meanwhile";
                out->mine_won = 0;
                return PS_OK;
            }
        } else if (m_del != b_del && t_del == b_del) {
            out->merged.deleted = m_del;
            if (m_del) {
                if (theirs_changed > 0) {
                    /* The delete stands; the concurrent edit is kept. */
                    add_field(out, "deleted");
                    out->reason = "deleted a record that was edited meanwhile";
                    out->mine_won = 1;
                }
                return PS_OK;
            }
        }
    }

    /* The envelope's unit, then every body field. */
    if (!envelope_str_eq(mine->orgunit, b_unit) && !envelope_str_eq(theirs->orgunit, b_unit) &&
        !envelope_str_eq(mine->orgunit, theirs->orgunit)) {
        add_field(out, "orgunit");
        if (mine_wins)
            out->merged.orgunit = mine->orgunit;
    } else if (!envelope_str_eq(mine->orgunit, b_unit)) {
        out->merged.orgunit = mine->orgunit;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        int m_eq_b = field_eq(f, mb, bb), t_eq_b = field_eq(f, tb, bb);
        if (m_eq_b)
            continue; /* mine did not touch it: theirs stands */
        if (t_eq_b || field_eq(f, mb, tb)) {
            field_copy(f, out->_body, mb);
            continue;
        }
        add_field(out, f->name);
        if (mine_wins)
            field_copy(f, out->_body, mb);
    }
    if (out->nfields > 0)
        out->reason = "the same field was changed on both sides";
    return PS_OK;
}
