/* orgunit.c - the district's org-unit tree, loaded from CSV.
 *
 * Owns: parsing the org-unit file (libcsv in strict mode), the checks that
 * make a tree out of it (unique 12-digit codes, exactly one root, every
 * parent known, no cycles, bounded depth), the code index used by every
 * lookup, and the file's raw bytes and SHA-256 digest, which the server
 * sends to clients so that both sides parse identical input.
 *
 * Line numbers in errors are physical lines of the file (1 = header), so a
 * clerk can open the file in an editor and go straight to the bad row, even
 * when a quoted field spans several lines.
 */
#include "orgunit.h"
#include "crypto.h"
#include "err.h"
#include "record_fmt.h"
#include "scope.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NFIELDS 4

/* Index entry: a copy of the code keeps the comparator free of context, so
 * plain qsort/bsearch work. */
typedef struct ou_ix {
    char code[13];
    size_t idx;
} ou_ix_t;

struct ps_orgunits {
    ps_orgunit_t *u; /* file order */
    size_t n, cap;
    size_t *line;    /* source line of each unit, for load-time errors */
    ou_ix_t *ix;     /* sorted by code */
    size_t root;
    uint8_t *raw;
    size_t rawlen;
    uint8_t digest[PS_SHA256_LEN];
};

static const char *const kinds[] = {"district", "subdistrict", "town", "enterprise", "community", "village"};

int ps_orgunit_kind_valid(const char *kind)
{
    size_t i;
    if (!kind)
        return 0;
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kind, kinds[i]) == 0)
            return 1;
    return 0;
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct field {
    char *s; /* NUL-terminated copy (may contain NULs; len is authoritative) */
    size_t len;
} field_t;

typedef struct parse_state {
    ps_orgunits_t *t;
    size_t line;      /* physical line being fed to libcsv */
    size_t row_line;  /* line the current row started on */
    size_t nfield;    /* fields seen in the current row (may exceed NFIELDS) */
    field_t f[NFIELDS];
    int header_done;
    int rc;           /* first failure; once set, callbacks do nothing */
    char *err;
    size_t errlen;
} parse_state_t;

static void fail(parse_state_t *st, int rc, size_t line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void fail(parse_state_t *st, int rc, size_t line, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (st->rc)
        return;
    st->rc = rc;
    if (!st->err || st->errlen == 0)
        return;
    k = snprintf(st->err, st->errlen, "line %zu: ", line);
    if (k < 0 || (size_t)k >= st->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(st->err + k, st->errlen - (size_t)k, fmt, ap);
    va_end(ap);
}

static void clear_fields(parse_state_t *st)
{
    size_t i;
    for (i = 0; i < NFIELDS; i++) {
        free(st->f[i].s);
        st->f[i].s = NULL;
        st->f[i].len = 0;
    }
    st->nfield = 0;
}

static void on_field(void *data, size_t len, void *arg)
{
    parse_state_t *st = arg;
    const char *p = data;
    size_t i, nl = 0;

    if (st->rc)
        return;
    if (st->nfield == 0) {
        /* libcsv reports a field when it ends; a quoted first field may
         * have started lines earlier. */
        for (i = 0; i < len; i++)
            nl += p[i] == '\n';
        st->row_line = st->line - nl;
    }
    if (st->nfield < NFIELDS) {
        char *s = malloc(len + 1);
        if (!s) {
            fail(st, PS_ENOMEM, st->line, "out of memory");
            return;
        }
        memcpy(s, p, len);
        s[len] = '\0';
        st->f[st->nfield].s = s;
        st->f[st->nfield].len = len;
    }
    st->nfield++;
}

static int field_is(const field_t *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->s, s, f->len) == 0;
}

static int has_control(const char *s, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return 1;
        /* C1 controls U+0080..U+009F are C2 80..C2 9F in UTF-8. */
        if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f)
            return 1;
    }
    return 0;
}

static void add_unit(parse_state_t *st)
{
    ps_orgunits_t *t = st->t;
    const field_t *code = &st->f[0], *parent = &st->f[1], *name = &st->f[2], *kind = &st->f[3];
    size_t ln = st->row_line;
    ps_orgunit_t *u;

    if (st->nfield != NFIELDS) {
        fail(st, PS_EINVAL, ln, "expected 4 fields (code,parent,name,kind), found %zu", st->nfield);
        return;
    }
    if (code->len != 12 || !ps_orgunit_valid(code->s)) {
        fail(st, PS_EINVAL, ln, "code must be 12 digits");
        return;
    }
    if (parent->len != 0 && (parent->len != 12 || !ps_orgunit_valid(parent->s))) {
        fail(st, PS_EINVAL, ln, "parent must be empty (the root) or 12 digits");
        return;
    }
    if (parent->len && strcmp(parent->s, code->s) == 0) {
        fail(st, PS_EINVAL, ln, "unit %s is its own parent", code->s);
        return;
    }
    if (name->len == 0) {
        fail(st, PS_EINVAL, ln, "name is empty");
        return;
    }
    if (!ps_utf8_valid(name->s, name->len)) {
        fail(st, PS_EINVAL, ln, "name is not valid UTF-8");
        return;
    }
    if (name->len > PS_ORGUNIT_NAME_MAX) {
        fail(st, PS_EINVAL, ln, "name is longer than %d bytes", PS_ORGUNIT_NAME_MAX);
        return;
    }
    if (has_control(name->s, name->len)) {
        fail(st, PS_EINVAL, ln, "name contains control characters");
        return;
    }
    if (kind->len >= sizeof(u->kind) || !ps_orgunit_kind_valid(kind->s)) {
        fail(st, PS_EINVAL, ln, "kind must be one of district, subdistrict, town, enterprise, community, village");
        return;
    }
    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        ps_orgunit_t *nu = realloc(t->u, ncap * sizeof(*nu));
        size_t *nl;
        if (!nu) {
            fail(st, PS_ENOMEM, ln, "out of memory");
            return;
        }
        t->u = nu;
        nl = realloc(t->line, ncap * sizeof(*nl));
        if (!nl) {
            fail(st, PS_ENOMEM, ln, "out of memory");
            return;
        }
        t->line = nl;
        t->cap = ncap;
    }
    u = &t->u[t->n];
    memset(u, 0, sizeof(*u));
    memcpy(u->code, code->s, 13);
    memcpy(u->parent, parent->s, parent->len + 1);
    memcpy(u->kind, kind->s, kind->len + 1);
    u->name = name->s;
    name->s = NULL; /* the tree owns it now */
    u->parent_idx = SIZE_MAX;
    t->line[t->n] = ln;
    t->n++;
}

static void on_row(int c, void *arg)
{
    parse_state_t *st = arg;
    (void)c;

    if (st->rc)
        return;
    if (!st->header_done) {
        if (st->nfield != NFIELDS || !field_is(&st->f[0], "code") || !field_is(&st->f[1], "parent") ||
            !field_is(&st->f[2], "name") || !field_is(&st->f[3], "kind"))
            fail(st, PS_EINVAL, st->row_line, "header must be exactly code,parent,name,kind");
        st->header_done = 1;
    } else {
        add_unit(st);
    }
    clear_fields(st);
}

static int ix_cmp(const void *a, const void *b)
{
    const ou_ix_t *x = a, *y = b;
    int c = strcmp(x->code, y->code);
    if (c)
        return c;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static size_t find_idx(const ps_orgunits_t *t, const char *code)
{
    ou_ix_t key, *hit;

    if (!t || !t->ix || !ps_orgunit_valid(code))
        return SIZE_MAX;
    memcpy(key.code, code, 13);
    key.idx = 0;
    /* Duplicates are refused at load, so comparing by code alone finds the one entry. */
    hit = bsearch(&key, t->ix, t->n, sizeof(*t->ix), ix_cmp_code_only);
    return hit ? hit->idx : SIZE_MAX;
}
