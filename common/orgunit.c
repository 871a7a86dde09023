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
#include "vec.h"

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
    size_t last_end;  /* line the last complete row ended on */
    size_t nfield;    /* fields seen in the current row (may exceed NFIELDS) */
    field_t f[NFIELDS];
    int header_done;
    int rc;           /* first failure; once set, callbacks do nothing */
    char *err;
    size_t errlen;
} parse_state_t;

static void fail(parse_state_t *st, int rc, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

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
        size_t ncap = t->cap;
        if (PS_VEC_ROOM(t->u, t->n, ncap, 64) || PS_VEC_RESIZE(t->line, ncap)) {
            fail(st, PS_ENOMEM, ln, "out of memory");
            return;
        }
        t->cap = ncap;
    }
    u = &t->u[t->n];
    memset(u, 0, sizeof(*u));
    memcpy(u->code, code->s, 13);
    memcpy(u->parent, parent->s, parent->len + 1);
    memcpy(u->kind, kind->s, kind->len + 1);
    u->name = name->s;
    st->f[2].s = NULL; /* the tree owns it now */
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
    st->last_end = st->line;
    clear_fields(st);
}

static int ix_cmp_code(const void *a, const void *b)
{
    const ou_ix_t *x = a, *y = b;
    return strcmp(x->code, y->code);
}

/* File order among equal codes, so a duplicate is reported at its later line. */
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
    hit = bsearch(&key, t->ix, t->n, sizeof(*t->ix), ix_cmp_code);
    return hit ? hit->idx : SIZE_MAX;
}

/* Builds the index and checks that the rows form one tree.  Kept whole
 * (about 95 lines): its checks run in order over the index it builds, and
 * each names the file line it refuses. */
static void build_tree(parse_state_t *st)
{
    ps_orgunits_t *t = st->t;
    size_t i, j = 0, k, nroots = 0, dup_line = SIZE_MAX;
    unsigned char *state = NULL; /* 0 unvisited, 1 on the current chain, 2 done */
    size_t *chain = NULL;

    if (t->n == 0) {
        fail(st, PS_EINVAL, 2, "the file has no org units");
        return;
    }
    t->ix = malloc(t->n * sizeof(*t->ix));
    state = calloc(t->n, 1);
    chain = malloc(t->n * sizeof(*chain));
    if (!t->ix || !state || !chain) {
        fail(st, PS_ENOMEM, 1, "out of memory");
        goto out;
    }
    for (i = 0; i < t->n; i++) {
        memcpy(t->ix[i].code, t->u[i].code, 13);
        t->ix[i].idx = i;
    }
    qsort(t->ix, t->n, sizeof(*t->ix), ix_cmp);
    for (i = 1; i < t->n; i++)
        if (strcmp(t->ix[i].code, t->ix[i - 1].code) == 0 && t->line[t->ix[i].idx] < dup_line) {
            dup_line = t->line[t->ix[i].idx];
            j = t->ix[i].idx;
        }
    if (dup_line != SIZE_MAX) {
        fail(st, PS_EINVAL, dup_line, "duplicate code %s", t->u[j].code);
        goto out;
    }

    for (i = 0; i < t->n; i++) {
        if (t->u[i].parent[0])
            continue;
        if (nroots++ == 0) {
            t->root = i;
        } else {
            fail(st, PS_EINVAL, t->line[i], "second root unit %s (only one unit may have an empty parent)",
                 t->u[i].code);
            goto out;
        }
    }
    if (nroots == 0) {
        fail(st, PS_EINVAL, t->line[0], "no root unit (exactly one unit must have an empty parent)");
        goto out;
    }
    for (i = 0; i < t->n; i++) {
        if (i == t->root)
            continue;
        t->u[i].parent_idx = find_idx(t, t->u[i].parent);
        if (t->u[i].parent_idx == SIZE_MAX) {
            fail(st, PS_EINVAL, t->line[i], "parent %s of unit %s does not exist", t->u[i].parent, t->u[i].code);
            goto out;
        }
    }

    /* Depths by walking each chain of unvisited ancestors once: linear in n.
     * Meeting a unit already on the current chain means a cycle. */
    for (i = 0; i < t->n; i++) {
        size_t top = 0;
        int d;

        if (state[i] == 2)
            continue;
        for (j = i; j != SIZE_MAX && state[j] == 0; j = t->u[j].parent_idx) {
            state[j] = 1;
            chain[top++] = j;
        }
        if (j != SIZE_MAX && state[j] == 1) {
            size_t min_line = t->line[j], at = j;
            for (k = t->u[j].parent_idx; k != j; k = t->u[k].parent_idx)
                if (t->line[k] < min_line) {
                    min_line = t->line[k];
                    at = k;
                }
            fail(st, PS_EINVAL, min_line, "unit %s is in a cycle of parents", t->u[at].code);
            goto out;
        }
        d = j == SIZE_MAX ? -1 : t->u[j].depth;
        while (top > 0) {
            k = chain[--top];
            t->u[k].depth = ++d;
            state[k] = 2;
        }
    }
    for (i = 0; i < t->n; i++)
        if (t->u[i].depth > PS_ORGUNIT_MAX_DEPTH) {
            fail(st, PS_EINVAL, t->line[i], "unit %s is more than %d levels below the root", t->u[i].code,
                 PS_ORGUNIT_MAX_DEPTH);
            goto out;
        }
out:
    free(state);
    free(chain);
}

int ps_orgunits_parse(const uint8_t *csv, size_t len, ps_orgunits_t **out, char *err, size_t errlen)
{
    struct csv_parser p;
    parse_state_t st;
    ps_orgunits_t *t = NULL;
    size_t off, bom = 0;
    int parser_ready = 0;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    memset(&st, 0, sizeof(st));
    st.err = err;
    st.errlen = errlen;
    st.line = 1;
    if (!csv && len > 0) {
        fail(&st, PS_EINVAL, 1, "no data");
        goto out;
    }
    t = calloc(1, sizeof(*t));
    if (!t) {
        fail(&st, PS_ENOMEM, 1, "out of memory");
        goto out;
    }
    st.t = t;
    t->rawlen = len;
    t->raw = malloc(len ? len : 1);
    if (!t->raw) {
        fail(&st, PS_ENOMEM, 1, "out of memory");
        goto out;
    }
    if (len)
        memcpy(t->raw, csv, len);
    if (ps_sha256(t->raw, len, t->digest) != PS_OK) {
        fail(&st, PS_ECRYPTO, 1, "cannot compute the file digest");
        goto out;
    }
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        fail(&st, PS_ENOMEM, 1, "out of memory");
        goto out;
    }
    parser_ready = 1;
    if (len >= 3 && csv[0] == 0xef && csv[1] == 0xbb && csv[2] == 0xbf)
        bom = 3;

    /* Fed one physical line at a time so callbacks know which line they are on. */
    for (off = bom; off < len && !st.rc; st.line++) {
        const uint8_t *nl = memchr(csv + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (csv + off)) + 1 : len - off;
        if (csv_parse(&p, csv + off, n, on_field, on_row, &st) != n) {
            int e = csv_error(&p);
            fail(&st, e == CSV_ENOMEM || e == CSV_ETOOBIG ? PS_ENOMEM : PS_EINVAL, st.line, "%s",
                 e == CSV_EPARSE ? "malformed CSV (a stray or unbalanced quote)" : csv_strerror(e));
        }
        off += n;
    }
    if (!st.rc) {
        /* The last line, if it had no newline, is the one csv_fini completes. */
        if (len > bom && csv[len - 1] != '\n')
            st.line--;
        if (csv_fini(&p, on_field, on_row, &st) != 0 || csv_error(&p) == CSV_EPARSE)
            fail(&st, PS_EINVAL, st.last_end + 1, "malformed CSV (a quoted field is never closed)");
    }
    if (!st.rc && !st.header_done)
        fail(&st, PS_EINVAL, 1, "missing the header row code,parent,name,kind");
    if (!st.rc)
        build_tree(&st);
out:
    if (parser_ready)
        csv_free(&p);
    clear_fields(&st);
    if (st.rc) {
        ps_orgunits_free(t);
        return st.rc;
    }
    *out = t;
    return PS_OK;
}

int ps_orgunits_load(const char *path, ps_orgunits_t **out, char *err, size_t errlen)
{
    FILE *f = NULL;
    struct stat sb;
    uint8_t *data = NULL;
    size_t n = 0;
    int rc = PS_OK;

    *out = NULL;
    f = fopen(path, "rb");
    if (!f) {
        rc = errno == ENOENT ? PS_ENOTFOUND : PS_EIO;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = PS_EIO;
        snprintf(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if ((uintmax_t)sb.st_size > PS_ORGUNIT_FILE_MAX) {
        rc = PS_ETOOBIG;
        snprintf(err, errlen, "%s: larger than %u bytes", path, PS_ORGUNIT_FILE_MAX);
        goto out;
    }
    data = malloc((size_t)sb.st_size + 1);
    if (!data) {
        rc = PS_ENOMEM;
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    /* Read one byte past the size seen, to notice a file growing underneath. */
    n = fread(data, 1, (size_t)sb.st_size + 1, f);
    if (ferror(f) || n != (size_t)sb.st_size) {
        rc = PS_EIO;
        snprintf(err, errlen, "%s: read failed or the file changed while reading", path);
        goto out;
    }
    rc = ps_orgunits_parse(data, n, out, err, errlen);
out:
    if (f)
        fclose(f);
    free(data);
    return rc;
}

void ps_orgunits_free(ps_orgunits_t *t)
{
    size_t i;
    if (!t)
        return;
    for (i = 0; i < t->n; i++)
        free(t->u[i].name);
    free(t->u);
    free(t->line);
    free(t->ix);
    free(t->raw);
    free(t);
}

/* ---- lookups ------------------------------------------------------------- */

const ps_orgunit_t *ps_orgunits_find(const ps_orgunits_t *t, const char *code)
{
    size_t i = find_idx(t, code);
    return i == SIZE_MAX ? NULL : &t->u[i];
}

size_t ps_orgunits_count(const ps_orgunits_t *t)
{
    return t ? t->n : 0;
}

const ps_orgunit_t *ps_orgunits_at(const ps_orgunits_t *t, size_t i)
{
    return t && i < t->n ? &t->u[i] : NULL;
}

const ps_orgunit_t *ps_orgunits_root(const ps_orgunits_t *t)
{
    return t && t->n ? &t->u[t->root] : NULL;
}

int ps_orgunits_within(const ps_orgunits_t *t, const char *unit, const char *root)
{
    size_t u = find_idx(t, unit), r = find_idx(t, root);

    if (u == SIZE_MAX || r == SIZE_MAX)
        return 0;
    /* Depth is bounded at load, so this loop runs at most PS_ORGUNIT_MAX_DEPTH times. */
    while (u != SIZE_MAX && t->u[u].depth > t->u[r].depth)
        u = t->u[u].parent_idx;
    return u == r;
}

const ps_orgunit_t *ps_orgunits_township(const ps_orgunits_t *t, const char *unit)
{
    size_t u = find_idx(t, unit);

    if (u == SIZE_MAX || t->u[u].depth < 1)
        return NULL;
    while (t->u[u].depth > 1)
        u = t->u[u].parent_idx;
    return &t->u[u];
}

void ps_orgunits_township_code(const ps_orgunits_t *t, const char *unit, char out[13])
{
    const ps_orgunit_t *town = t && unit ? ps_orgunits_township(t, unit) : NULL;

    if (town)
        memcpy(out, town->code, 13);
    else if (unit && ps_orgunit_valid(unit))
        ps_orgunit_township(unit, out);
    else
        snprintf(out, 13, "%s", unit ? unit : "");
}

const uint8_t *ps_orgunits_bytes(const ps_orgunits_t *t, size_t *len)
{
    if (!t) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = t->rawlen;
    return t->raw;
}

const uint8_t *ps_orgunits_digest(const ps_orgunits_t *t)
{
    return t ? t->digest : NULL;
}
