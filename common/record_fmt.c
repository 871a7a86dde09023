/* record_fmt.c - records <-> text, JSON and tables.
 *
 * Owns: the field text forms described in record_fmt.h.  No body field name
 * or type appears in this file: everything walks the protobuf-c descriptors,
 * and a kind maps to its body through the Record oneof member whose name is
 * the kind's text form (KIND_SERVICE_VISIT -> "service_visit").  Memory
 * follows protobuf-c's free_unpacked rules (strings and bytes equal to the
 * descriptor's default are never freed), so any record this file touches can
 * be freed with ps_record_free.
 */
#include "record_fmt.h"
#include "crypto.h"
#include "fields.h"
#include "err.h"
#include "ids.h"

#include <jansson.h>

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AT(m, off) ((void *)((char *)(m) + (off)))
#define CAT(m, off) ((const void *)((const char *)(m) + (off)))

/* The only envelope field a user edits; the rest are stamped by the
 * creator (id, kind, created_ms) or the server (rev, ...). */
#define SETTABLE_ENVELOPE "orgunit"

/* One parsed value, written over the field's storage with value_size bytes. */
typedef union value {
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    uint64_t u64;
    float f32;
    double f64;
    protobuf_c_boolean b;
    int e;
    char *s;
    ProtobufCBinaryData bd;
} value_t;

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- UTF-8 ----------------------------------------------------------------- */

/* Length of the strict UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    uint32_t c, min;
    size_t len;

    if (n == 0)
        return 0;
    c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) /* stray continuation byte, or a 2-byte overlong lead */
        return 0;
    if (c < 0xE0) {
        len = 2;
        c &= 0x1F;
        min = 0x80;
    } else if (c < 0xF0) {
        len = 3;
        c &= 0x0F;
        min = 0x800;
    } else if (c < 0xF5) {
        len = 4;
        c &= 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

int ps_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;

    while (i < len) {
        size_t k = utf8_decode(p + i, len - i, &cp);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

static unsigned cp_width(uint32_t c)
{
    /* East Asian Wide and Fullwidth blocks, plus the common emoji blocks that
     * terminals also draw two cells wide. */
    static const uint32_t wide[][2] = {
        {0x1100, 0x115F},   {0x2E80, 0xA4CF},   {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},
        {0xFE30, 0xFE4F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F},
        {0x1F900, 0x1F9FF}, {0x20000, 0x3FFFD},
    };
    if (c < 0x20 || (c >= 0x7F && c < 0xA0))
        return 0;
    for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++)
        if (c >= wide[i][0] && c <= wide[i][1])
            return 2;
    return 1;
}

size_t ps_utf8_width(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, w = 0;
    uint32_t cp;

    while (i < n) {
        size_t k = utf8_decode(p + i, n - i, &cp);
        if (k == 0) {
            /* a terminal shows one replacement glyph per bad byte */
            w++;
            i++;
            continue;
        }
        w += cp_width(cp);
        i += k;
    }
    return w;
}

/* Copy of s with each invalid byte replaced by U+FFFD, for JSON output of
 * strings that came off the wire unchecked.  Caller frees. */
static char *utf8_sanitize(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, o = 0;
    uint32_t cp;
    char *out = malloc(3 * n + 1);

    if (!out)
        return NULL;
    while (i < n) {
        size_t k = utf8_decode(p + i, n - i, &cp);
        if (k == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, p + i, k);
        o += k;
        i += k;
    }
    out[o] = '\0';
    return out;
}

/* ---- enums and kinds ------------------------------------------------------- */

/* Length of the enum's own prefix on a value name: short name "MaritalStatus"
 * gives "MARITAL_STATUS_" on "MARITAL_STATUS_MARRIED".  0 when the value does
 * not follow the convention, so its whole name becomes the text form. */
static size_t enum_prefix_len(const ProtobufCEnumDescriptor *ed, const char *vname)
{
    const char *t = ed->short_name;
    size_t j = 0;

    for (size_t i = 0; t[i]; i++) {
        unsigned char c = (unsigned char)t[i];
        if (i > 0 && isupper(c) && (islower((unsigned char)t[i - 1]) || isdigit((unsigned char)t[i - 1]))) {
            if (vname[j] != '_')
                return 0;
            j++;
        }
        if (vname[j] == '\0' || toupper(c) != (unsigned char)vname[j])
            return 0;
        j++;
    }
    if (vname[j] != '_' || vname[j + 1] == '\0')
        return 0;
    return j + 1;
}

/* Text of an enum number; 0 is proto3's "unset", so it reads as empty, and a
 * number this build does not know (a newer peer's) reads as itself. */
static char *enum_text(const ProtobufCEnumDescriptor *ed, int number)
{
    const ProtobufCEnumValue *v;
    char *s;

    if (number == 0)
        return strdup("");
    v = protobuf_c_enum_descriptor_get_value(ed, number);
    if (!v)
        return xprintf("%d", number);
    s = strdup(v->name + enum_prefix_len(ed, v->name));
    if (s)
        for (char *q = s; *q; q++)
            *q = (char)tolower((unsigned char)*q);
    return s;
}

static int enum_matches(const ProtobufCEnumDescriptor *ed, const ProtobufCEnumValue *v, const char *text)
{
    return strcasecmp(v->name + enum_prefix_len(ed, v->name), text) == 0 || strcasecmp(v->name, text) == 0;
}

/* The Record oneof member holding kind's body, or NULL. */
static const ProtobufCFieldDescriptor *kind_body_field(int kind)
{
    const ProtobufCEnumDescriptor *ed = &popsync__kind__descriptor;
    const ProtobufCMessageDescriptor *rd = &popsync__record__descriptor;
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(ed, kind);
    const char *name;

    if (!v)
        return NULL;
    name = v->name + enum_prefix_len(ed, v->name);
    for (unsigned i = 0; i < rd->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &rd->fields[i];
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && f->type == PROTOBUF_C_TYPE_MESSAGE &&
            strcasecmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

int ps_kind_from_name(const char *name)
{
    const ProtobufCEnumDescriptor *ed = &popsync__kind__descriptor;

    if (!name || !*name)
        return -1;
    for (unsigned i = 0; i < ed->n_values; i++) {
        const ProtobufCFieldDescriptor *bf = kind_body_field(ed->values[i].value);
        if (bf && strcasecmp(bf->name, name) == 0)
            return ed->values[i].value;
    }
    return -1;
}

const char *ps_kind_name(int kind)
{
    const ProtobufCFieldDescriptor *bf = kind_body_field(kind);
    return bf ? bf->name : NULL;
}

/* ---- field access ---------------------------------------------------------- */

static int text_supported(const ProtobufCFieldDescriptor *f)
{
    return f->label != PROTOBUF_C_LABEL_REPEATED && f->type != PROTOBUF_C_TYPE_MESSAGE;
}

/* Record ids are the only bytes people read and type; other bytes are hex. */
static int is_id_field(const ProtobufCFieldDescriptor *f)
{
    size_t n = strlen(f->name);
    return strcmp(f->name, "id") == 0 || (n > 3 && strcmp(f->name + n - 3, "_id") == 0);
}

/* proto3 "optional" scalars and bytes carry a has_ flag; strings and
 * messages use NULL for absence instead. */
static int has_flag(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_OPTIONAL && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
           f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE;
}

static size_t value_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* Storage of a singular field, or NULL when it reads as its default: no
 * message (a body that is absent) or a oneof member that is not chosen. */
static const void *field_ptr(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (!m)
        return NULL;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)CAT(m, f->quantifier_offset) != f->id)
        return NULL;
    return CAT(m, f->offset);
}

/* Releases a field's value the way free_unpacked would and leaves the
 * proto3 default in its place. */
static void free_value(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    void *p = AT(m, f->offset);

    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char **s = p;
        if (*s && *s != (const char *)f->default_value)
            free(*s);
        *s = (char *)f->default_value;
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data && (!def || def->data != b->data))
            free(b->data);
        if (def) {
            *b = *def;
        } else {
            b->len = 0;
            b->data = NULL;
        }
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **sm = p;
        if (*sm && *sm != f->default_value)
            protobuf_c_message_free_unpacked(*sm, NULL);
        *sm = NULL;
        break;
    }
    default:
        memset(p, 0, value_size(f->type));
        break;
    }
}

/* Frees the first n elements of a repeated field's array as free_unpacked
 * would: every string and bytes element is owned, even an empty one. */
static void free_elems(const ProtobufCFieldDescriptor *f, void *arr, size_t n)
{
    for (size_t i = 0; arr && i < n; i++) {
        switch (f->type) {
        case PROTOBUF_C_TYPE_STRING:
            free(((char **)arr)[i]);
            break;
        case PROTOBUF_C_TYPE_BYTES:
            free(((ProtobufCBinaryData *)arr)[i].data);
            break;
        case PROTOBUF_C_TYPE_MESSAGE:
            protobuf_c_message_free_unpacked(((ProtobufCMessage **)arr)[i], NULL);
            break;
        default:
            break;
        }
    }
}

static void clear_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t *n = AT(m, f->quantifier_offset);
        void **arr = AT(m, f->offset);
        free_elems(f, *arr, *n);
        free(*arr);
        *arr = NULL;
        *n = 0;
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        /* The chosen member may be a sibling with a different type. */
        uint32_t *qc = AT(m, f->quantifier_offset);
        const ProtobufCMessageDescriptor *d = m->descriptor;
        for (unsigned i = 0; i < d->n_fields; i++) {
            const ProtobufCFieldDescriptor *g = &d->fields[i];
            if ((g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && g->quantifier_offset == f->quantifier_offset &&
                g->id == *qc)
                free_value(m, g);
        }
        *qc = 0;
        return;
    }
    free_value(m, f);
    if (has_flag(f))
        *(protobuf_c_boolean *)AT(m, f->quantifier_offset) = 0;
}

static char *bytes_text(const ProtobufCFieldDescriptor *f, const ProtobufCBinaryData *b)
{
    char *s;

    if (!b || b->len == 0)
        return strdup("");
    if (is_id_field(f) && b->len == PS_ID_LEN) {
        s = malloc(PS_UUID_STR);
        if (s)
            ps_uuid_format(b->data, s);
        return s;
    }
    if (b->len > (SIZE_MAX - 1) / 2)
        return NULL;
    s = malloc(2 * b->len + 1);
    if (s)
        ps_hex(b->data, b->len, s);
    return s;
}

/* Text form of a text-supported field's storage p (NULL: the default).
 * Caller frees; NULL on ENOMEM. */
static char *value_text(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return xprintf("%" PRId32, p ? *(const int32_t *)p : 0);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return xprintf("%" PRIu32, p ? *(const uint32_t *)p : 0u);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return xprintf("%" PRId64, p ? *(const int64_t *)p : 0);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return xprintf("%" PRIu64, p ? *(const uint64_t *)p : 0u);
    case PROTOBUF_C_TYPE_FLOAT:
        return xprintf("%.9g", p ? (double)*(const float *)p : 0.0);
    case PROTOBUF_C_TYPE_DOUBLE:
        return xprintf("%.17g", p ? *(const double *)p : 0.0);
    case PROTOBUF_C_TYPE_BOOL:
        return strdup(p && *(const protobuf_c_boolean *)p ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM:
        return enum_text(f->descriptor, p ? *(const int *)p : 0);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = p ? *(char *const *)p : NULL;
        return strdup(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES:
        return bytes_text(f, p);
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    return NULL;
}

/* ---- parsing --------------------------------------------------------------- */

/* Strict decimal: no sign on unsigned types, no spaces, no trailing junk. */
static int parse_signed(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v;

    if (!(*s == '-' || isdigit((unsigned char)*s)))
        return PS_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end || errno == ERANGE || v < lo || v > hi)
        return PS_EINVAL;
    *out = v;
    return PS_OK;
}

static int parse_unsigned(const char *s, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!isdigit((unsigned char)*s)) /* strtoull would wrap "-1" */
        return PS_EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end || errno == ERANGE || v > hi)
        return PS_EINVAL;
    *out = v;
    return PS_OK;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    double v;

    if (!*s || isspace((unsigned char)*s))
        return PS_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v))
        return PS_EINVAL;
    *out = v;
    return PS_OK;
}

static int parse_hex(const char *s, ProtobufCBinaryData *out)
{
    size_t n = strlen(s);
    uint8_t *d;

    if (n % 2)
        return PS_EINVAL;
    d = malloc(n / 2);
    if (!d)
        return PS_ENOMEM;
    if (ps_unhex(s, n / 2, d)) {
        free(d);
        return PS_EINVAL;
    }
    out->data = d;
    out->len = n / 2;
    return PS_OK;
}

/* The value, when it is fit to echo back in a message. */
static const char *shown(const char *text)
{
    return ps_utf8_valid(text, strlen(text)) ? text : "(invalid UTF-8)";
}

static int parse_enum(const ProtobufCFieldDescriptor *f, const char *text, int *out, char *err, size_t errlen)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    int64_t n;
    size_t used;

    for (unsigned i = 0; i < ed->n_values; i++) {
        if (enum_matches(ed, &ed->values[i], text)) {
            *out = ed->values[i].value;
            return PS_OK;
        }
    }
    /* Numbers let a value this build does not name yet round-trip. */
    if (parse_signed(text, INT32_MIN, INT32_MAX, &n) == PS_OK) {
        *out = (int)n;
        return PS_OK;
    }
    errf(err, errlen, "field '%s': invalid value '%s' (expected one of:", f->name, shown(text));
    used = err ? strnlen(err, errlen) : 0;
    for (unsigned i = 0; err && i < ed->n_values && used + 1 < errlen; i++) {
        char *t;
        if (ed->values[i].value == 0)
            continue;
        t = enum_text(ed, ed->values[i].value);
        if (!t)
            break;
        errf(err + used, errlen - used, " %s", t);
        free(t);
        used = strnlen(err, errlen);
    }
    if (err && used + 1 < errlen)
        errf(err + used, errlen - used, ")");
    return PS_EINVAL;
}

/* The per-thread person resolver (ps_record_set_person_resolver). */
static _Thread_local struct {
    ps_person_resolver_fn fn;
    void *arg;
} resolver;

void ps_record_set_person_resolver(ps_person_resolver_fn fn, void *arg)
{
    resolver.fn = fn;
    resolver.arg = arg;
}

static int person_ref(const ProtobufCFieldDescriptor *f)
{
    return strcmp(f->name, "person_id") == 0 || strcmp(f->name, "mother_id") == 0 || strcmp(f->name, "head_id") == 0 ||
           strcmp(f->name, "child_id") == 0;
}

/* A person reference typed as an ID number: the record id of that person.
 * PS_OK, or PS_ENOTFOUND with err set. */
static int resolve_person(const ProtobufCFieldDescriptor *f, const char *text, uint8_t id[PS_ID_LEN], char *err,
                          size_t errlen)
{
    static const ps_field_t idf = {"id_number", "身份证号", PS_FT_IDNUM, 0, "", "", NULL};
    char idn[PS_FIELD_NORM_MAX];
    const char *why;
    int k = ps_field_normalize(&idf, text, idn, sizeof(idn), &why);

    if (k == 1)
        snprintf(idn, sizeof(idn), "%s", text);
    if (k >= 0 && strlen(idn) == 18 && resolver.fn(resolver.arg, idn, id) == PS_OK)
        return PS_OK;
    /* No value in the message: it may be an ID number. */
    errf(err, errlen,
         "field '%s': neither a record id nor the ID number of a person in this cache: add the person first, "
         "or give the record id",
         f->name);
    return PS_ENOTFOUND;
}

/* Parses text (non-empty) into v for field f.  On success v may own a
 * malloc'd string or bytes that the caller stores or frees.  One switch
 * over the protobuf field types (about 95 lines): each case is short and
 * they read best side by side. */
static int parse_value(const ProtobufCFieldDescriptor *f, const char *text, value_t *v, char *err, size_t errlen)
{
    int64_t i = 0;
    uint64_t u = 0;
    double d = 0;
    int rc = PS_OK;
    const char *what = NULL;

    memset(v, 0, sizeof(*v));
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        what = "32-bit integer";
        rc = parse_signed(text, INT32_MIN, INT32_MAX, &i);
        v->i32 = (int32_t)i;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        what = "unsigned 32-bit integer";
        rc = parse_unsigned(text, UINT32_MAX, &u);
        v->u32 = (uint32_t)u;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        what = "64-bit integer";
        rc = parse_signed(text, INT64_MIN, INT64_MAX, &i);
        v->i64 = i;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        what = "unsigned 64-bit integer";
        rc = parse_unsigned(text, UINT64_MAX, &u);
        v->u64 = u;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        what = "number";
        rc = parse_double(text, &d);
        if (rc == PS_OK && fabs(d) > FLT_MAX)
            rc = PS_EINVAL;
        v->f32 = (float)d;
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        what = "number";
        rc = parse_double(text, &v->f64);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        what = "boolean (true or false)";
        if (strcasecmp(text, "true") == 0)
            v->b = 1;
        else if (strcasecmp(text, "false") != 0)
            rc = PS_EINVAL;
        break;
    case PROTOBUF_C_TYPE_ENUM:
        return parse_enum(f, text, &v->e, err, errlen);
    case PROTOBUF_C_TYPE_STRING:
        if (!ps_utf8_valid(text, strlen(text))) {
            errf(err, errlen, "field '%s': value is not valid UTF-8", f->name);
            return PS_EINVAL;
        }
        v->s = strdup(text);
        return v->s ? PS_OK : PS_ENOMEM;
    case PROTOBUF_C_TYPE_BYTES:
        if (is_id_field(f)) {
            uint8_t id[PS_ID_LEN];
            what = "record id (UUID)";
            rc = ps_uuid_parse(text, id);
            if (rc != PS_OK && person_ref(f) && resolver.fn) {
                rc = resolve_person(f, text, id, err, errlen);
                if (rc == PS_ENOTFOUND)
                    return PS_EINVAL;
            }
            if (rc == PS_OK) {
                v->bd.data = malloc(PS_ID_LEN);
                if (!v->bd.data)
                    return PS_ENOMEM;
                memcpy(v->bd.data, id, PS_ID_LEN);
                v->bd.len = PS_ID_LEN;
            }
        } else {
            what = "hex string";
            rc = parse_hex(text, &v->bd);
        }
        break;
    case PROTOBUF_C_TYPE_MESSAGE:
        what = "value with a text form";
        rc = PS_EINVAL;
        break;
    }
    if (rc == PS_EINVAL)
        errf(err, errlen, "field '%s': '%s' is not a valid %s", f->name, shown(text), what);
    return rc;
}

static int set_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const char *text, char *err,
                     size_t errlen)
{
    value_t v;
    int rc;

    if (!*text) {
        clear_field(m, f);
        return PS_OK;
    }
    if (!text_supported(f)) {
        errf(err, errlen, "field '%s' has no text form", f->name);
        return PS_EINVAL;
    }
    /* Parse before clearing so a bad value leaves the old one in place. */
    rc = parse_value(f, text, &v, err, errlen);
    if (rc)
        return rc;
    clear_field(m, f);
    memcpy(AT(m, f->offset), &v, value_size(f->type));
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)AT(m, f->quantifier_offset) = f->id;
    else if (has_flag(f))
        *(protobuf_c_boolean *)AT(m, f->quantifier_offset) = 1;
    return PS_OK;
}

/* ---- records --------------------------------------------------------------- */

/* r's body when it matches r's kind, else NULL; *bf gets the kind's member. */
static ProtobufCMessage *record_body(const Popsync__Record *r, const ProtobufCFieldDescriptor **bf)
{
    const ProtobufCFieldDescriptor *f = kind_body_field((int)r->kind);

    *bf = f;
    if (!f || *(const uint32_t *)CAT(r, f->quantifier_offset) != f->id)
        return NULL;
    return *(ProtobufCMessage *const *)CAT(r, f->offset);
}

static const ProtobufCFieldDescriptor *envelope_field(const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(&popsync__record__descriptor, name);
    return f && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ? f : NULL;
}

static int new_message(const ProtobufCMessageDescriptor *d, ProtobufCMessage **out)
{
    ProtobufCMessage *m = malloc(d->sizeof_message);

    if (!m)
        return PS_ENOMEM;
    d->message_init(m);
    *out = m;
    return PS_OK;
}

int ps_record_new(Popsync__Record **out, int kind)
{
    const ProtobufCFieldDescriptor *bf = kind_body_field(kind);
    Popsync__Record *r = NULL;
    ProtobufCMessage *body = NULL;
    int rc;

    *out = NULL;
    if (!bf)
        return PS_EINVAL;
    r = malloc(sizeof(*r));
    if (!r) {
        rc = PS_ENOMEM;
        goto out;
    }
    popsync__record__init(r);
    r->kind = (Popsync__Kind)kind;
    rc = new_message(bf->descriptor, &body);
    if (rc)
        goto out;
    *(ProtobufCMessage **)AT(r, bf->offset) = body;
    *(uint32_t *)AT(r, bf->quantifier_offset) = bf->id;
    *out = r;
    r = NULL;
out:
    free(r);
    return rc;
}

void ps_record_free(Popsync__Record *r)
{
    if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* "unknown field 'x' for kind person; fields: orgunit, id_number, ..." */
static void unknown_field(const Popsync__Record *r, const char *name, const char *kind, char *err, size_t errlen)
{
    size_t n, used;
    const ps_field_t *fs = ps_fields_of((int)r->kind, &n);

    errf(err, errlen, "unknown field '%s' for kind %s; fields:", shown(name), kind);
    used = err ? strnlen(err, errlen) : 0;
    for (size_t i = 0; err && i < n && used + 1 < errlen; i++) {
        errf(err + used, errlen - used, "%s %s", i ? "," : "", fs[i].name);
        used = strnlen(err, errlen);
    }
    if (err && used + 1 < errlen)
        errf(err + used, errlen - used, " (or their Chinese labels: popsync fields %s)", kind);
}

/* Finds the settable field called name: the envelope's orgunit or a body
 * field of r's kind.  Gives r an empty body if it has none, so *m is where
 * the field lives. */
static int resolve_field(Popsync__Record *r, const char *name, ProtobufCMessage **m,
                         const ProtobufCFieldDescriptor **fp, char *err, size_t errlen)
{
    const ProtobufCFieldDescriptor *bf, *f;
    ProtobufCMessage *body;
    uint32_t *qc;
    int rc;

    f = envelope_field(name);
    if (f) {
        if (strcmp(name, SETTABLE_ENVELOPE) != 0) {
            errf(err, errlen, "field '%s' of the envelope cannot be set", name);
            return PS_EINVAL;
        }
        *m = &r->base;
        *fp = f;
        return PS_OK;
    }
    body = record_body(r, &bf);
    if (!bf) {
        errf(err, errlen, "record has no valid kind (%d)", (int)r->kind);
        return PS_EINVAL;
    }
    f = protobuf_c_message_descriptor_get_field_by_name(bf->descriptor, name);
    if (!f) {
        unknown_field(r, name, bf->name, err, errlen);
        return PS_EINVAL;
    }
    if (!body) {
        /* An envelope unpacked without a body gets an empty one; a body of
         * another kind is a corrupt record we must not paper over. */
        qc = AT(r, bf->quantifier_offset);
        if (*qc != 0) {
            errf(err, errlen, "record body does not match its kind %s", bf->name);
            return PS_EINVAL;
        }
        rc = new_message(bf->descriptor, &body);
        if (rc)
            return rc;
        *(ProtobufCMessage **)AT(r, bf->offset) = body;
        *qc = bf->id;
    }
    *m = body;
    *fp = f;
    return PS_OK;
}

/* The proto field a dictionary entry sets ("amount" sets amount_fen). */
static const char *stored_name(const ps_field_t *df, const char *name)
{
    return df ? (df->stored ? df->stored : df->name) : name;
}

/* set_field after the dictionary's normalisation of what was typed. */
static int set_typed(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const ps_field_t *df,
                     const char *text, char *err, size_t errlen)
{
    char norm[PS_FIELD_NORM_MAX];
    const char *why;
    int k;

    if (df && *text) {
        k = ps_field_normalize(df, text, norm, sizeof(norm), &why);
        if (k < 0) {
            errf(err, errlen, "field '%s': %s", df->name, why);
            return PS_EINVAL;
        }
        if (k == 0)
            text = norm;
    }
    return set_field(m, f, text, err, errlen);
}

int ps_record_set(Popsync__Record *r, const char *field, const char *value, char *err, size_t errlen)
{
    const ProtobufCFieldDescriptor *f;
    const ps_field_t *df;
    ProtobufCMessage *m;
    int rc;

    if (!r || !field || !value) {
        errf(err, errlen, "missing record, field or value");
        return PS_EINVAL;
    }
    df = ps_field_find((int)r->kind, field);
    rc = resolve_field(r, stored_name(df, field), &m, &f, err, errlen);
    if (rc)
        return rc;
    return set_typed(m, f, df, value, err, errlen);
}

int ps_record_set_kv(Popsync__Record *r, const char *kv, char *err, size_t errlen)
{
    const char *eq = kv ? strchr(kv, '=') : NULL;
    char *name;
    int rc;

    if (!eq || eq == kv) {
        errf(err, errlen, "expected field=value, got '%s'", kv ? shown(kv) : "(null)");
        return PS_EINVAL;
    }
    name = strndup(kv, (size_t)(eq - kv));
    if (!name)
        return PS_ENOMEM;
    rc = ps_record_set(r, name, eq + 1, err, errlen);
    free(name);
    return rc;
}

/* Text of an envelope or body field; caller frees.  NULL with *rc set on
 * an unknown field (PS_EINVAL) or ENOMEM. */
static char *record_field_text(const Popsync__Record *r, const char *name, int *rc)
{
    const ProtobufCFieldDescriptor *bf, *f = envelope_field(name);
    const ProtobufCMessage *body;
    char *s;

    *rc = PS_OK;
    if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->descriptor == &popsync__rev__descriptor) {
        const Popsync__Rev *rev = *(Popsync__Rev *const *)CAT(r, f->offset);
        s = rev ? xprintf("%" PRIu64 ".%" PRIu64, rev->gen, rev->hlc) : strdup("");
    } else if (f) {
        if (!text_supported(f)) {
            *rc = PS_EINVAL;
            return NULL;
        }
        s = value_text(f, field_ptr(&r->base, f));
    } else {
        body = record_body(r, &bf);
        f = bf ? protobuf_c_message_descriptor_get_field_by_name(bf->descriptor, name) : NULL;
        if (!f || !text_supported(f)) {
            *rc = PS_EINVAL;
            return NULL;
        }
        s = value_text(f, field_ptr(body, f));
    }
    if (!s)
        *rc = PS_ENOMEM;
    return s;
}

int ps_record_get_text(const Popsync__Record *r, const char *field, char *out, size_t outlen)
{
    int rc;
    char *s;
    size_t n;

    if (outlen > 0)
        out[0] = '\0';
    if (!r || !field)
        return PS_EINVAL;
    s = record_field_text(r, field, &rc);
    if (!s)
        return rc;
    n = strlen(s);
    if (outlen > 0) {
        size_t k = n < outlen ? n : outlen - 1;
        memcpy(out, s, k);
        out[k] = '\0';
    }
    free(s);
    return n < outlen ? PS_OK : PS_ETOOBIG;
}

size_t ps_record_field_names(int kind, const char **names, size_t max)
{
    const ProtobufCFieldDescriptor *bf = kind_body_field(kind);
    const ProtobufCMessageDescriptor *d;
    size_t n = 0;

    if (!bf)
        return 0;
    d = bf->descriptor;
    /* protoc-c emits fields sorted by number, which is the order we want. */
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (!text_supported(&d->fields[i]))
            continue;
        if (names && n < max)
            names[n] = d->fields[i].name;
        n++;
    }
    return n;
}

/* ---- JSON ------------------------------------------------------------------ */

/* r packed without rev, created_ms, updated_ms and changed_by; caller frees. */
static uint8_t *pack_content(const Popsync__Record *r, size_t *n)
{
    Popsync__Record c = *r;
    uint8_t *p;

    c.rev = NULL;
    c.created_ms = 0;
    c.updated_ms = 0;
    c.changed_by.data = NULL;
    c.changed_by.len = 0;
    *n = protobuf_c_message_get_packed_size(&c.base);
    p = malloc(*n ? *n : 1);
    if (p)
        protobuf_c_message_pack(&c.base, p);
    return p;
}

int ps_record_content_digest(const Popsync__Record *r, uint8_t out[32])
{
    Popsync__Record c = *r;
    size_t n;
    uint8_t *p;
    int rc;

    c.id.data = NULL;
    c.id.len = 0;
    if (!(p = pack_content(&c, &n)))
        return PS_ENOMEM;
    rc = ps_sha256(p, n, out);
    free(p);
    return rc;
}

int ps_record_same_content(const Popsync__Record *a, const Popsync__Record *b)
{
    size_t na, nb;
    uint8_t *pa, *pb;
    int same;

    if (!a || !b)
        return 0;
    /* protobuf-c packs fields in field-number order and leaves out proto3
     * defaults, so equal content packs to equal bytes. */
    pa = pack_content(a, &na);
    pb = pack_content(b, &nb);
    same = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return same;
}

static json_t *message_json(const ProtobufCMessage *m);

json_t *ps_json_u64(uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return json_string(buf);
}

json_t *ps_json_i64(int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return json_string(buf);
}

static json_t *text_json(char *s)
{
    json_t *j;
    char *clean;

    if (!s)
        return NULL;
    j = json_string(s);
    if (!j) {
        clean = utf8_sanitize(s);
        j = clean ? json_string(clean) : NULL;
        free(clean);
    }
    free(s);
    return j;
}

/* JSON of a field's storage p (NULL: the default).  New reference or NULL. */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(p ? *(const int32_t *)p : 0);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(p ? *(const uint32_t *)p : 0);
    /* 64-bit integers are strings (the protobuf JSON mapping): JSON readers
     * that hold numbers as doubles would round an hlc. */
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return ps_json_i64(p ? *(const int64_t *)p : 0);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return ps_json_u64(p ? *(const uint64_t *)p : 0);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(p ? (double)*(const float *)p : 0.0);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(p ? *(const double *)p : 0.0);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(p && *(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM:
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
        return text_json(value_text(f, p));
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sm = p ? *(ProtobufCMessage *const *)p : NULL;
        return sm ? message_json(sm) : json_null();
    }
    }
    return NULL;
}

/* JSON of field f of m: an array for a repeated field.  New reference or NULL. */
static json_t *field_json(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    json_t *a;
    const char *elems;
    size_t n, sz = value_size(f->type);

    if (f->label != PROTOBUF_C_LABEL_REPEATED)
        return value_json(f, field_ptr(m, f));
    a = json_array();
    if (!a || !m)
        return a;
    n = *(const size_t *)CAT(m, f->quantifier_offset);
    elems = *(const char *const *)CAT(m, f->offset);
    for (size_t i = 0; elems && i < n; i++) {
        if (json_array_append_new(a, value_json(f, elems + i * sz))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static int put(json_t *o, const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m)
{
    json_t *v = field_json(m, f);
    return v && json_object_set_new(o, f->name, v) == 0 ? PS_OK : PS_ENOMEM;
}

static json_t *message_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    json_t *o = json_object();

    if (!o)
        return NULL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !field_ptr(m, f)) || put(o, f, m) == PS_OK)
            continue;
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ps_record_to_json(const Popsync__Record *r)
{
    static const char *const head[] = {"id", "kind", SETTABLE_ENVELOPE};
    const ProtobufCMessageDescriptor *rd = &popsync__record__descriptor;
    const ProtobufCFieldDescriptor *bf, *f;
    const ProtobufCMessage *body;
    json_t *o = json_object();

    if (!o || !r)
        goto fail;
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        f = envelope_field(head[i]);
        if (f && put(o, f, &r->base))
            goto fail;
    }
    body = record_body(r, &bf);
    if (bf) {
        const ProtobufCMessageDescriptor *d = bf->descriptor;
        for (unsigned i = 0; i < d->n_fields; i++) {
            f = &d->fields[i];
            /* The envelope owns its names; a clashing body field would be
             * ambiguous to ps_record_set as well. */
            if (envelope_field(f->name) || ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !field_ptr(body, f)))
                continue;
            if (put(o, f, body))
                goto fail;
        }
    }
    for (unsigned i = 0; i < rd->n_fields; i++) {
        f = &rd->fields[i];
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || json_object_get(o, f->name))
            continue;
        if (put(o, f, &r->base))
            goto fail;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

/* The text form of a JSON value for ps_record_set; caller frees. */
static char *json_text(const char *key, const json_t *v, int *rc, char *err, size_t errlen)
{
    char *s = NULL;

    *rc = PS_OK;
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            errf(err, errlen, "field '%s': value contains a NUL character", key);
            *rc = PS_EINVAL;
            return NULL;
        }
        s = strdup(json_string_value(v));
        break;
    case JSON_INTEGER:
        s = xprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        s = xprintf("%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
        s = strdup("true");
        break;
    case JSON_FALSE:
        s = strdup("false");
        break;
    case JSON_NULL:
        s = strdup("");
        break;
    default:
        errf(err, errlen, "field '%s': expected a string, number, boolean or null", key);
        *rc = PS_EINVAL;
        return NULL;
    }
    if (!s)
        *rc = PS_ENOMEM;
    return s;
}

/* Replaces repeated field f of m with the elements of a JSON array, all or
 * nothing. */
static int set_repeated(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const json_t *arr, char *err,
                        size_t errlen)
{
    size_t sz = value_size(f->type), n, i = 0;
    char *items = NULL;
    int rc = PS_OK;

    if (f->type == PROTOBUF_C_TYPE_MESSAGE || !json_is_array(arr)) {
        errf(err, errlen, "field '%s': expected an array%s", f->name,
             f->type == PROTOBUF_C_TYPE_MESSAGE ? " (of messages: not supported)" : "");
        return PS_EINVAL;
    }
    n = json_array_size(arr);
    if (n > 0) {
        items = calloc(n, sz);
        if (!items)
            return PS_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        value_t v;
        char *text = json_text(f->name, json_array_get(arr, i), &rc, err, errlen);
        if (!text)
            goto fail;
        /* parse_value takes "" as an empty string, and refuses it for
         * every other type: an array has no holes to clear. */
        rc = parse_value(f, text, &v, err, errlen);
        free(text);
        if (rc)
            goto fail;
        memcpy(items + i * sz, &v, sz);
    }
    clear_field(m, f);
    *(size_t *)AT(m, f->quantifier_offset) = n;
    *(void **)AT(m, f->offset) = items;
    return PS_OK;
fail:
    free_elems(f, items, i);
    free(items);
    return rc;
}

int ps_record_from_json(Popsync__Record *r, const json_t *obj, char *err, size_t errlen)
{
    const ProtobufCFieldDescriptor *f;
    ProtobufCMessage *m;
    const char *key;
    json_t *v;
    int rc = PS_OK;

    if (!r || !json_is_object(obj)) {
        errf(err, errlen, "expected a JSON object");
        return PS_EINVAL;
    }
    json_object_foreach ((json_t *)obj, key, v) {
        const ps_field_t *df;
        char *text;
        if (envelope_field(key) && strcmp(key, SETTABLE_ENVELOPE) != 0)
            continue;
        df = ps_field_find((int)r->kind, key);
        rc = resolve_field(r, stored_name(df, key), &m, &f, err, errlen);
        if (rc)
            break;
        if (json_is_null(v)) {
            clear_field(m, f);
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            rc = set_repeated(m, f, v, err, errlen);
        } else {
            text = json_text(key, v, &rc, err, errlen);
            if (!text)
                break;
            rc = set_typed(m, f, df, text, err, errlen);
            free(text);
        }
        if (rc)
            break;
    }
    return rc;
}

/* ---- tables ---------------------------------------------------------------- */

/* Tabs and newlines inside a value would break the alignment. */
static void blank_controls(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            *s = ' ';
}

static void pad(FILE *out, size_t n)
{
    while (n--)
        fputc(' ', out);
}

void ps_record_print_table(FILE *out, Popsync__Record *const *recs, size_t n, const char *const *columns,
                           size_t ncols)
{
    static const char *const head[] = {"id", "kind", SETTABLE_ENVELOPE};
    const char **defcols = NULL;
    char **cells = NULL;
    size_t *widths = NULL;
    size_t nrows = n + 1;

    if (!columns || ncols == 0) {
        size_t nhead = sizeof(head) / sizeof(head[0]);
        int kind = n > 0 && recs[0] ? (int)recs[0]->kind : -1;
        size_t nbody = ps_record_field_names(kind, NULL, 0);
        defcols = malloc((nhead + nbody) * sizeof(*defcols));
        if (!defcols)
            goto out;
        memcpy(defcols, head, sizeof(head));
        ps_record_field_names(kind, defcols + nhead, nbody);
        columns = defcols;
        ncols = nhead + nbody;
    }
    cells = calloc(nrows * ncols, sizeof(*cells));
    widths = calloc(ncols, sizeof(*widths));
    if (!cells || !widths)
        goto out;
    for (size_t row = 0; row < nrows; row++) {
        for (size_t c = 0; c < ncols; c++) {
            char **cell = &cells[row * ncols + c];
            size_t w;
            int rc;
            if (row == 0)
                *cell = strdup(columns[c]);
            else if (recs[row - 1])
                *cell = record_field_text(recs[row - 1], columns[c], &rc);
            if (!*cell)
                *cell = strdup(""); /* a field this record's kind lacks */
            if (!*cell)
                goto out;
            blank_controls(*cell);
            w = ps_utf8_width(*cell);
            if (w > widths[c])
                widths[c] = w;
        }
    }
    for (size_t row = 0; row < nrows; row++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *cell = cells[row * ncols + c];
            fputs(cell, out);
            if (c + 1 < ncols)
                pad(out, widths[c] - ps_utf8_width(cell) + 2);
        }
        fputc('\n', out);
    }
out:
    if (cells)
        for (size_t i = 0; i < nrows * ncols; i++)
            free(cells[i]);
    free(cells);
    free(widths);
    free(defcols);
}
