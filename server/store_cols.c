/* store_cols.c - the column projection and the counts it answers (see
 * store_cols.h).
 *
 * One LMDB database, "cols" (MDB_DUPSORT | MDB_DUPFIXED): key kind(1) |
 * unit(12), values id(16) | row, one per record (tombstones included), all
 * the rows of a kind the same size.  A row is
 *   flags(1: deleted, raw) | other place(12) | creation month(7, "YYYY-MM"
 *   UTC) | one column per projected field of the kind
 * where a projected field is every singular enum, bool and 32/64-bit
 * integer of the body (8 bytes, the value) and the date and code texts
 * (`*_date`, period and month: 10 bytes; scheme and service: 24), NUL
 * padded.  A record whose text does not fit its column, or whose unit is
 * not a 12-character code, is filed with the raw flag: a count reads that
 * one record itself, so the projection never changes an answer.
 *
 * Rows of one (kind, unit) lie together, so a count reads whole pages of
 * rows (MDB_GET_MULTIPLE), decides scope once per unit, and groups by the
 * columns' bytes; the text of a group (an enum's name, a township) is made
 * once per group at the end, by the same functions the scan uses.
 */
#include "store_cols.h"

#include "dates.h"
#include "ids.h"
#include "msg.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "tz.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define COLS_VERSION 1u
#define COLS_KINDS 8
#define COLS_MAX 24
#define ROW_FLAGS 0
#define ROW_OTHER 1
#define ROW_CMONTH 13
#define ROW_NBHASH 20 /* a person's name and birth date, hashed (quality report); 0: either is empty */
#define ROW_IDHASH 28 /* a person's 18-character ID number, hashed (quality report); 0: none */
#define ROW_FIXED 36
#define ROW_LIMIT 480 /* id + row stay below LMDB's 511-byte duplicate limit */
#define F_DELETED 0x01
#define F_RAW 0x02
#define F_RECHECK 0x04 /* the validator may find something (quality report) */
#define KEY_LEN 13
#define NUM_WIDTH 8
#define GROUPS_MAX 800000 /* binary groups; the text groups have the query's own limit */

enum { COL_NUM = 1, COL_TEXT = 2, COL_REF = 3 };

typedef struct col {
    const ProtobufCFieldDescriptor *fd;
    uint8_t type;     /* COL_NUM or COL_TEXT */
    uint8_t width;    /* bytes in the row */
    uint8_t summable; /* an integer, not an enum or bool: --sum reads it as the scan does */
    uint8_t ref_kind; /* COL_REF: the kind the referred record must have */
    uint16_t off;     /* in the row */
} col_t;

typedef struct layout {
    const ProtobufCFieldDescriptor *body; /* the Record's oneof field of the kind */
    size_t n, row;
    col_t c[COLS_MAX];
} layout_t;

uint64_t ps__cols_puts, ps__cols_validations;

static layout_t layouts[COLS_KINDS];
static uint32_t layouts_sig;
static pthread_once_t layouts_once = PTHREAD_ONCE_INIT;

/* ---- layout ---------------------------------------------------------------- */

static int text_width(const char *name)
{
    size_t n = strlen(name);
    if ((n > 5 && !strcmp(name + n - 5, "_date")) || !strcmp(name, "period") || !strcmp(name, "month"))
        return 10;
    if (!strcmp(name, "scheme") || !strcmp(name, "service"))
        return 24;
    return 0;
}

static int num_type(ProtobufCType t)
{
    return t == PROTOBUF_C_TYPE_ENUM || t == PROTOBUF_C_TYPE_BOOL || t == PROTOBUF_C_TYPE_INT32 ||
           t == PROTOBUF_C_TYPE_SINT32 || t == PROTOBUF_C_TYPE_SFIXED32 || t == PROTOBUF_C_TYPE_UINT32 ||
           t == PROTOBUF_C_TYPE_FIXED32 || t == PROTOBUF_C_TYPE_INT64 || t == PROTOBUF_C_TYPE_SINT64 ||
           t == PROTOBUF_C_TYPE_SFIXED64;
}

static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

/* The kind a reference field of the kind must point to (ps_record_refs,
 * the one list of references), or 0 when the field is no reference. */
static int ref_kind(const ProtobufCFieldDescriptor *body, int kind, const char *field)
{
    static const uint8_t dummy[PS_ID_LEN] = {1};
    Popsync__Record *probe = NULL;
    ps_ref_t refs[PS_REFS_MAX];
    const ProtobufCMessageDescriptor *bd = body->descriptor;
    size_t n;
    int k = 0;
    void *b;
    if (ps_record_new(&probe, kind) != PS_OK)
        return 0;
    b = *(void **)((char *)probe + body->offset);
    for (unsigned i = 0; i < bd->n_fields; i++)
        if (bd->fields[i].type == PROTOBUF_C_TYPE_BYTES && bd->fields[i].label == PROTOBUF_C_LABEL_NONE) {
            ProtobufCBinaryData *d = (ProtobufCBinaryData *)((char *)b + bd->fields[i].offset);
            d->data = (uint8_t *)dummy;
            d->len = PS_ID_LEN;
        }
    n = ps_record_refs(probe, refs);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(refs[i].field, field))
            k = refs[i].kind;
    for (unsigned i = 0; i < bd->n_fields; i++)
        if (bd->fields[i].type == PROTOBUF_C_TYPE_BYTES && bd->fields[i].label == PROTOBUF_C_LABEL_NONE)
            memset((char *)b + bd->fields[i].offset, 0, sizeof(ProtobufCBinaryData));
    ps_record_free(probe);
    return k;
}

static void layout_kind(int kind, layout_t *L)
{
    Popsync__Record *probe = NULL;
    const ProtobufCMessageDescriptor *bd;
    if (ps_record_new(&probe, kind) != PS_OK)
        return;
    L->body = protobuf_c_message_descriptor_get_field(&popsync__record__descriptor, (unsigned)probe->body_case);
    ps_record_free(probe);
    if (!L->body || !(bd = L->body->descriptor))
        return;
    L->row = ROW_FIXED;
    for (unsigned i = 0; i < bd->n_fields && L->n < COLS_MAX; i++) {
        const ProtobufCFieldDescriptor *fd = &bd->fields[i];
        col_t *c = &L->c[L->n];
        int w = 0;
        memset(c, 0, sizeof(*c));
        if (fd->label != PROTOBUF_C_LABEL_NONE)
            continue;
        if (num_type(fd->type)) {
            c->type = COL_NUM;
            w = NUM_WIDTH;
            c->summable = fd->type != PROTOBUF_C_TYPE_ENUM && fd->type != PROTOBUF_C_TYPE_BOOL;
        } else if (fd->type == PROTOBUF_C_TYPE_STRING && (w = text_width(fd->name)) > 0) {
            c->type = COL_TEXT;
        } else if (fd->type == PROTOBUF_C_TYPE_BYTES && (c->ref_kind = (uint8_t)ref_kind(L->body, kind, fd->name))) {
            c->type = COL_REF;
            w = PS_ID_LEN;
        }
        if (!w || L->row + (size_t)w > ROW_LIMIT)
            continue;
        c->fd = fd;
        c->width = (uint8_t)w;
        c->off = (uint16_t)L->row;
        L->row += (size_t)w;
        L->n++;
        layouts_sig = fnv(layouts_sig, fd->name, strlen(fd->name) + 1);
        layouts_sig = fnv(layouts_sig, &c->type, 1);
        layouts_sig = fnv(layouts_sig, &c->width, 1);
        layouts_sig = fnv(layouts_sig, &c->ref_kind, 1);
    }
}

static void layouts_init(void)
{
    uint32_t v = COLS_VERSION;
    layouts_sig = fnv(2166136261u, &v, sizeof(v));
    for (int k = 1; k < COLS_KINDS; k++) {
        layouts_sig = fnv(layouts_sig, &k, sizeof(k));
        layout_kind(k, &layouts[k]);
    }
}

static const layout_t *layout_of(int kind)
{
    pthread_once(&layouts_once, layouts_init);
    return kind > 0 && kind < COLS_KINDS && layouts[kind].body ? &layouts[kind] : NULL;
}

static const col_t *col_named(const layout_t *L, const char *name)
{
    for (size_t i = 0; name && i < L->n; i++)
        if (!strcmp(L->c[i].fd->name, name))
            return &L->c[i];
    return NULL;
}

/* A column a count may filter or group by (a number or a text; a
 * reference's text is a UUID, which only the scan makes). */
static const col_t *qcol_named(const layout_t *L, const char *name)
{
    const col_t *c = col_named(L, name);
    return c && c->type != COL_REF ? c : NULL;
}

/* ---- rows ------------------------------------------------------------------- */

static int64_t num_get(const col_t *c, const void *body)
{
    const char *p = (const char *)body + c->fd->offset;
    switch (c->fd->type) {
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean b;
        memcpy(&b, p, sizeof(b));
        return b;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t x;
        memcpy(&x, p, sizeof(x));
        return x;
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t u;
        memcpy(&u, p, sizeof(u));
        return u;
    }
    default: {
        int32_t i;
        memcpy(&i, p, sizeof(i));
        return i;
    }
    }
}

static void num_set(const col_t *c, void *body, int64_t x)
{
    char *p = (char *)body + c->fd->offset;
    switch (c->fd->type) {
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean b = x != 0;
        memcpy(p, &b, sizeof(b));
        break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        memcpy(p, &x, sizeof(x));
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t u = (uint32_t)x;
        memcpy(p, &u, sizeof(u));
        break;
    }
    default: {
        int32_t i = (int32_t)x;
        memcpy(p, &i, sizeof(i));
        break;
    }
    }
}

static void *body_of(const layout_t *L, const Popsync__Record *r)
{
    if (r->body_case != (Popsync__Record__BodyCase)L->body->id)
        return NULL;
    return *(void *const *)((const char *)r + L->body->offset);
}

/* "YYYY-MM" of the creation time, UTC (query_rules.c month_of without a
 * date field). */
/* "YYYY-MM" (UTC) of ms, as strftime's "%Y-%m" writes it: by arithmetic
 * up to year 9999 (gmtime_r and strftime were a percent of popsyncd's CPU
 * in ingest, one row per record), by strftime beyond. */
static void created_month(int64_t ms, uint8_t out[7])
{
    char d[32] = "";
    memset(out, 0, 7);
    if (ms > 0 && ms < INT64_C(253402300800000)) { /* 10000-01-01T00:00:00Z */
        int y, m, day;
        ps_civil_from_days((int32_t)(ms / 86400000), &y, &m, &day);
        out[0] = (uint8_t)('0' + y / 1000);
        out[1] = (uint8_t)('0' + y / 100 % 10);
        out[2] = (uint8_t)('0' + y / 10 % 10);
        out[3] = (uint8_t)('0' + y % 10);
        out[4] = '-';
        out[5] = (uint8_t)('0' + m / 10);
        out[6] = (uint8_t)('0' + m % 10);
        return;
    }
    if (ms > 0) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(d, sizeof(d), "%Y-%m", &tm);
    }
    memcpy(out, d, strnlen(d, 7));
}

static uint64_t text_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h ? h : 1;
}

/* The key the quality report groups possible duplicates by (name and
 * birth date, as its scan makes it), hashed; 0 when either is empty. */
static uint64_t nb_hash(const Popsync__Record *r)
{
    char key[256];
    if (r->body_case != POPSYNC__RECORD__BODY_PERSON || !r->person || !r->person->name || !*r->person->name ||
        !r->person->birth_date || !*r->person->birth_date)
        return 0;
    snprintf(key, sizeof(key), "%s|%s", r->person->name, r->person->birth_date);
    return text_hash(key);
}

/* A person's ID number as the quality report files duplicates (18
 * characters), hashed; 0 when it has none. */
static uint64_t idn_hash(const Popsync__Record *r)
{
    if (r->body_case != POPSYNC__RECORD__BODY_PERSON || !r->person || !r->person->id_number ||
        strlen(r->person->id_number) != 18)
        return 0;
    return text_hash(r->person->id_number);
}

/* Might the quality report's validator find something in live r, today or
 * later?  Validity only improves as days pass (a future date stops being
 * one), except a person with no ID number, who needs one after the first
 * year: such persons are always looked at. */
static int may_have_issues(const Popsync__Record *r, uint32_t today, int validated)
{
    ps_verrs_t ve;
    ps_validate_ctx_t vc;
    if (r->body_case == POPSYNC__RECORD__BODY_PERSON && r->person && (!r->person->id_number || !*r->person->id_number))
        return 1;
    if (validated)
        return 0; /* passed today's validation, of which the report's is a part */
    ps__cols_validations++;
    memset(&ve, 0, sizeof(ve));
    memset(&vc, 0, sizeof(vc));
    vc.today = today;
    return ps_validate_record(r, &vc, &ve) > 0 || ve.n > 0;
}

/* The references of r into their columns; 0 when one has none (or is all
 * zeros, which a column cannot tell from no reference). */
static int refs_put(const layout_t *L, const Popsync__Record *r, uint8_t *row)
{
    static const uint8_t zero[PS_ID_LEN];
    ps_ref_t refs[PS_REFS_MAX];
    size_t n = ps_record_refs(r, refs);
    for (size_t i = 0; i < n; i++) {
        const col_t *c = NULL;
        for (size_t j = 0; j < L->n && !c; j++)
            if (L->c[j].type == COL_REF && L->c[j].ref_kind == refs[i].kind && !strcmp(L->c[j].fd->name, refs[i].field))
                c = &L->c[j];
        if (!c || !memcmp(refs[i].id, zero, PS_ID_LEN))
            return 0;
        memcpy(row + c->off, refs[i].id, PS_ID_LEN);
    }
    return 1;
}

/* id | row of r under layout L; today judges F_RECHECK (validated: r has
 * passed the validate stage whole today). */
static void item_build(const layout_t *L, const Popsync__Record *r, uint32_t today, int validated, uint8_t *item)
{
    uint8_t *row = item + PS_ID_LEN;
    const void *body = body_of(L, r);
    const char *other = other_place(r);
    uint64_t nb = nb_hash(r), idh = idn_hash(r);
    memset(item, 0, PS_ID_LEN + L->row);
    memcpy(item, r->id.data, PS_ID_LEN);
    row[ROW_FLAGS] = r->deleted ? F_DELETED : 0;
    memcpy(row + ROW_OTHER, other, strnlen(other, 12));
    created_month(r->created_ms, row + ROW_CMONTH);
    memcpy(row + ROW_NBHASH, &nb, sizeof(nb));
    memcpy(row + ROW_IDHASH, &idh, sizeof(idh));
    if (!r->deleted && may_have_issues(r, today, validated))
        row[ROW_FLAGS] |= F_RECHECK;
    if (!body || !r->orgunit || strlen(r->orgunit) != 12 || !refs_put(L, r, row)) {
        row[ROW_FLAGS] |= F_RAW;
        return;
    }
    for (size_t i = 0; i < L->n; i++) {
        const col_t *c = &L->c[i];
        if (c->type == COL_REF) {
            continue; /* refs_put */
        } else if (c->type == COL_NUM) {
            int64_t x = num_get(c, body);
            memcpy(row + c->off, &x, sizeof(x));
        } else {
            const char *s = *(const char *const *)((const char *)body + c->fd->offset);
            size_t n = s ? strlen(s) : 0;
            if (n > c->width)
                row[ROW_FLAGS] |= F_RAW;
            else if (n)
                memcpy(row + c->off, s, n);
        }
    }
}

static void key_build(const Popsync__Record *r, uint8_t key[KEY_LEN])
{
    memset(key, 0, KEY_LEN);
    key[0] = (uint8_t)r->kind;
    if (r->orgunit)
        memcpy(key + 1, r->orgunit, strnlen(r->orgunit, 12));
}

/* Removes the row of id under key unless it is item already (*same set). */
static int row_del(ps_store_t *st, MDB_txn *txn, const uint8_t key[KEY_LEN], const uint8_t *id, size_t isz,
                   const uint8_t *item, int *same)
{
    uint8_t probe[PS_ID_LEN + ROW_LIMIT];
    MDB_cursor *cur = NULL;
    MDB_val k = {KEY_LEN, (void *)key}, v = {isz, probe};
    int mrc;
    *same = 0;
    memset(probe, 0, isz);
    memcpy(probe, id, PS_ID_LEN);
    if ((mrc = mdb_cursor_open(txn, st->cols, &cur)))
        return db_err(mrc);
    mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
    if (mrc == 0 && v.mv_size >= PS_ID_LEN && memcmp(v.mv_data, id, PS_ID_LEN) == 0) {
        if (item && v.mv_size == isz && !memcmp(v.mv_data, item, isz))
            *same = 1; /* nothing the projection holds changed */
        else
            mrc = mdb_cursor_del(cur, 0);
    }
    mdb_cursor_close(cur);
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
}

/* nv's row where cur's was (either may be NULL), judged on day today. */
static int cols_update_at(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, const Popsync__Record *cur,
                          uint32_t today, int validated)
{
    const layout_t *nl = nv && nv->id.len == PS_ID_LEN ? layout_of(nv->kind) : NULL;
    const layout_t *ol = cur && cur->id.len == PS_ID_LEN ? layout_of(cur->kind) : NULL;
    uint8_t nk[KEY_LEN], ok[KEY_LEN], ni[PS_ID_LEN + ROW_LIMIT];
    int rc, mrc, same = 0;

    if (nl) {
        key_build(nv, nk);
        item_build(nl, nv, today, validated, ni);
    }
    if (ol) {
        key_build(cur, ok);
        if ((rc = row_del(st, txn, ok, cur->id.data, PS_ID_LEN + ol->row,
                          nl == ol && !memcmp(ok, nk, KEY_LEN) ? ni : NULL, &same)))
            return rc;
    }
    if (nl && !same) {
        MDB_val k = {KEY_LEN, nk}, v = {PS_ID_LEN + nl->row, ni};
        ps__cols_puts++;
        if ((mrc = mdb_put(txn, st->cols, &k, &v, 0)))
            return db_err(mrc);
    }
    return PS_OK;
}

int ps_cols_update(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, const Popsync__Record *cur)
{
    return cols_update_at(st, txn, nv, cur, ps_tz_date(&st->opts.tz, ps_now_ms()), 0);
}

int ps_cols_update_new(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, uint32_t today)
{
    return cols_update_at(st, txn, nv, NULL, today, 1);
}

int ps_cols_update_validated(ps_store_t *st, MDB_txn *txn, const Popsync__Record *nv, const Popsync__Record *cur,
                             uint32_t today)
{
    return cols_update_at(st, txn, nv, cur, today, 1);
}

/* The store's head as the last popsyncd that kept the projection closed
 * it ("cols_at"), taken away while one runs: an older popsyncd, which
 * writes records without rows, moves the head past it. */
static int written_since(ps_store_t *st, MDB_txn *txn)
{
    MDB_val k = {7, "cols_at"}, v;
    int since = mdb_get(txn, st->meta, &k, &v) == 0 && (v.mv_size != 8 || be64get(v.mv_data) != st->head);
    int mrc = mdb_del(txn, st->meta, &k, NULL);
    if (mrc && mrc != MDB_NOTFOUND)
        return db_err(mrc);
    return since;
}

void ps_cols_close(ps_store_t *st)
{
    MDB_txn *txn = NULL;
    uint8_t at[8];
    MDB_val k = {7, "cols_at"}, v = {8, at};
    if (mdb_txn_begin(st->env, NULL, 0, &txn) != 0)
        return;
    pthread_mutex_lock(&st->head_lock);
    be64put(at, st->head);
    pthread_mutex_unlock(&st->head_lock);
    if (mdb_put(txn, st->meta, &k, &v, 0) != 0)
        mdb_txn_abort(txn);
    else
        mdb_txn_commit(txn);
}

int ps_cols_open(ps_store_t *st, MDB_txn *txn)
{
    MDB_val k = {6, "cols_v"}, v;
    MDB_cursor *cur = NULL;
    uint8_t sig[4];
    int mrc, rc = PS_OK, since;
    uint32_t today = ps_tz_date(&st->opts.tz, ps_now_ms());

    pthread_once(&layouts_once, layouts_init);
    sig[0] = (uint8_t)(layouts_sig >> 24);
    sig[1] = (uint8_t)(layouts_sig >> 16);
    sig[2] = (uint8_t)(layouts_sig >> 8);
    sig[3] = (uint8_t)layouts_sig;
    if ((mrc = mdb_dbi_open(txn, "cols", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &st->cols)))
        return db_err(mrc);
    if ((since = written_since(st, txn)) < 0)
        return since;
    if (!since && mdb_get(txn, st->meta, &k, &v) == 0 && v.mv_size == 4 && memcmp(v.mv_data, sig, 4) == 0)
        return PS_OK;
    if ((mrc = mdb_drop(txn, st->cols, 0)) || (mrc = mdb_cursor_open(txn, st->records, &cur)))
        return db_err(mrc);
    while (rc == PS_OK && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        const uint8_t *h = v.mv_data;
        Popsync__Record *r = NULL;
        if (v.mv_size < REC_HDR || k.mv_size != PS_ID_LEN)
            continue;
        if (ps_msg_unpack_desc(&popsync__record__descriptor, h + REC_HDR, v.mv_size - REC_HDR,
                               (ProtobufCMessage **)&r) != PS_OK)
            continue; /* unreadable records are the verify command's to report */
        rc = cols_update_at(st, txn, r, NULL, today, 0);
        ps_msg_free(&r->base);
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    if (mrc != MDB_NOTFOUND)
        return db_err(mrc);
    k.mv_data = "cols_v";
    k.mv_size = 6;
    v.mv_data = sig;
    v.mv_size = 4;
    mrc = mdb_put(txn, st->meta, &k, &v, 0);
    return mrc ? db_err(mrc) : PS_OK;
}

/* ---- counts ------------------------------------------------------------------ */

enum { G_UNIT, G_TOWNSHIP, G_KIND, G_MONTH_DATE, G_MONTH_CREATED, G_COL };

#define NUMCACHE 16

typedef struct filt {
    const col_t *c;   /* NULL: "orgunit", the owning unit exactly */
    const char *want;
    size_t wlen;
    size_t nc;        /* numbers already decided */
    int64_t ncv[NUMCACHE];
    uint8_t nok[NUMCACHE];
} filt_t;

typedef struct gpart {
    int what;
    const col_t *c;
    size_t len;       /* bytes in the binary group key */
} gpart_t;

typedef struct plan {
    const layout_t *L;
    int kind;
    const char *root;
    int deleted;                /* tombstones count too */
    const col_t *date;          /* the date field's column, or NULL */
    const char *from, *to;      /* NULL when open */
    size_t fromlen, tolen;
    filt_t *f;
    size_t nf;
    gpart_t *g;
    size_t ng, klen;
    const col_t *sum;
    Popsync__Record *probe;     /* a record of the kind, for the text of a number */
    void *pbody;
} plan_t;

int ps_cols_usable(const Popsync__Query *q)
{
    const layout_t *L = layout_of(q->kind);
    const col_t *c;
    if (!L || q->list)
        return 0;
    if (q->date_field && *q->date_field && (!(c = qcol_named(L, q->date_field)) || c->type != COL_TEXT))
        return 0;
    for (size_t i = 0; i < q->n_filters; i++)
        if (strcmp(q->filters[i]->field, "orgunit") != 0 && !qcol_named(L, q->filters[i]->field))
            return 0;
    for (size_t i = 0; i < q->n_group_by; i++) {
        const char *g = q->group_by[i];
        if (strcmp(g, "unit") && strcmp(g, "township") && strcmp(g, "kind") && strcmp(g, "month") &&
            !qcol_named(L, g))
            return 0;
    }
    if (q->sum_field && *q->sum_field && (!(c = qcol_named(L, q->sum_field)) || !c->summable))
        return 0;
    return 1;
}

static void plan_free(plan_t *p)
{
    free(p->f);
    free(p->g);
    ps_record_free(p->probe);
}

static void plan_group(plan_t *p, const Popsync__Query *q, size_t i)
{
    const char *name = q->group_by[i];
    gpart_t *g = &p->g[i];
    if (!strcmp(name, "unit") || !strcmp(name, "township")) {
        g->what = name[0] == 'u' ? G_UNIT : G_TOWNSHIP;
        g->len = 12;
    } else if (!strcmp(name, "kind")) {
        g->what = G_KIND;
    } else if (!strcmp(name, "month")) {
        g->what = p->date ? G_MONTH_DATE : G_MONTH_CREATED;
        g->len = 7;
    } else {
        g->what = G_COL;
        g->c = qcol_named(p->L, name);
        g->len = g->c->width;
    }
    p->klen += g->len;
}

static int plan_make(const Popsync__Query *q, plan_t *p)
{
    memset(p, 0, sizeof(*p));
    p->L = layout_of(q->kind);
    p->kind = q->kind;
    p->root = q->orgunit && *q->orgunit ? q->orgunit : NULL;
    p->deleted = q->include_deleted;
    if (q->date_field && *q->date_field)
        p->date = qcol_named(p->L, q->date_field);
    if (q->date_from && *q->date_from)
        p->fromlen = strlen(p->from = q->date_from);
    if (q->date_to && *q->date_to)
        p->tolen = strlen(p->to = q->date_to);
    if (q->sum_field && *q->sum_field)
        p->sum = qcol_named(p->L, q->sum_field);
    p->nf = q->n_filters;
    p->ng = q->n_group_by;
    if (!(p->f = calloc(p->nf ? p->nf : 1, sizeof(*p->f))) || !(p->g = calloc(p->ng ? p->ng : 1, sizeof(*p->g))) ||
        ps_record_new(&p->probe, q->kind) != PS_OK) {
        plan_free(p);
        return PS_ENOMEM;
    }
    p->pbody = body_of(p->L, p->probe);
    for (size_t i = 0; i < p->nf; i++) {
        const char *f = q->filters[i]->field;
        p->f[i].c = strcmp(f, "orgunit") ? qcol_named(p->L, f) : NULL;
        p->f[i].want = q->filters[i]->value ? q->filters[i]->value : "";
        p->f[i].wlen = strlen(p->f[i].want);
    }
    for (size_t i = 0; i < p->ng; i++)
        plan_group(p, q, i);
    return PS_OK;
}

/* strcmp of a column's text (n bytes) with t (tn bytes). */
static int textcmp(const uint8_t *s, size_t n, const char *t, size_t tn)
{
    int r = memcmp(s, t, n < tn ? n : tn);
    return r ? r : (n > tn) - (n < tn);
}

static size_t col_len(const uint8_t *s, size_t width)
{
    return strnlen((const char *)s, width);
}

/* The text form of number x in column c, as ps_record_get_text gives it
 * for a record holding x. */
static int num_text(plan_t *p, const col_t *c, int64_t x, char *out, size_t cap)
{
    num_set(c, p->pbody, x);
    return ps_record_get_text(p->probe, c->fd->name, out, cap);
}

static int num_match(plan_t *p, filt_t *f, int64_t x)
{
    char val[1024];
    int ok;
    for (size_t i = 0; i < f->nc; i++)
        if (f->ncv[i] == x)
            return f->nok[i];
    ok = num_text(p, f->c, x, val, sizeof(val)) == PS_OK && strcmp(val, f->want) == 0;
    if (f->nc < NUMCACHE) {
        f->ncv[f->nc] = x;
        f->nok[f->nc++] = (uint8_t)ok;
    }
    return ok;
}

/* ps_query_match on a row. */
static int row_match(plan_t *p, const char *unit, const uint8_t *row)
{
    if (p->date) {
        const uint8_t *d = row + p->date->off;
        size_t n = col_len(d, p->date->width);
        if (!n && (p->from || p->to))
            return 0;
        if (n && ((p->from && textcmp(d, n, p->from, p->fromlen) < 0) || (p->to && textcmp(d, n, p->to, p->tolen) > 0)))
            return 0;
    }
    for (size_t i = 0; i < p->nf; i++) {
        filt_t *f = &p->f[i];
        if (!f->c) {
            if (strcmp(unit, f->want) != 0)
                return 0;
        } else if (f->c->type == COL_TEXT) {
            const uint8_t *s = row + f->c->off;
            size_t n = col_len(s, f->c->width);
            if (n != f->wlen || memcmp(s, f->want, n) != 0)
                return 0;
        } else {
            int64_t x;
            memcpy(&x, row + f->c->off, sizeof(x));
            if (!num_match(p, f, x))
                return 0;
        }
    }
    return 1;
}

/* The binary group key of a row: each part's bytes, in order. */
static void key_make(const plan_t *p, const uint8_t *ukey, const uint8_t *row, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < p->ng; i++) {
        const gpart_t *g = &p->g[i];
        if (g->what == G_UNIT || g->what == G_TOWNSHIP)
            memcpy(out + o, ukey + 1, 12);
        else if (g->what == G_MONTH_DATE)
            memcpy(out + o, row + p->date->off, 7);
        else if (g->what == G_MONTH_CREATED)
            memcpy(out + o, row + ROW_CMONTH, 7);
        else if (g->what == G_COL)
            memcpy(out + o, row + g->c->off, g->len);
        o += g->len;
    }
}

/* Binary groups: open addressing, slots of count(8) | sum(8) | key. */
typedef struct gtab {
    uint8_t *s;
    size_t cap, n, esz, klen;
} gtab_t;

static uint64_t key_hash(const uint8_t *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ k[i]) * 1099511628211ull;
    return h;
}

static uint64_t slot_count(const uint8_t *s)
{
    uint64_t c;
    memcpy(&c, s, 8);
    return c;
}

static uint8_t *gtab_find(uint8_t *s, size_t cap, size_t esz, const uint8_t *key, size_t klen)
{
    size_t i = (size_t)key_hash(key, klen) & (cap - 1);
    for (;; i = (i + 1) & (cap - 1)) {
        uint8_t *e = s + i * esz;
        if (!slot_count(e) || !memcmp(e + 16, key, klen))
            return e;
    }
}

static int gtab_grow(gtab_t *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 64;
    uint8_t *ns = calloc(ncap, t->esz);
    if (!ns)
        return PS_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        uint8_t *e = t->s + i * t->esz;
        if (slot_count(e))
            memcpy(gtab_find(ns, ncap, t->esz, e + 16, t->klen), e, t->esz);
    }
    free(t->s);
    t->s = ns;
    t->cap = ncap;
    return PS_OK;
}

/* The slot of key, made when new (its count is still 0: the caller counts). */
static uint8_t *gtab_slot(gtab_t *t, const uint8_t *key)
{
    uint8_t *e;
    if ((t->n + 1) * 2 > t->cap && gtab_grow(t) != PS_OK)
        return NULL;
    e = gtab_find(t->s, t->cap, t->esz, key, t->klen);
    if (!slot_count(e)) {
        memcpy(e + 16, key, t->klen);
        t->n++;
    }
    return e;
}

static void slot_add(uint8_t *e, int64_t sum)
{
    uint64_t c = slot_count(e) + 1, s;
    memcpy(&s, e + 8, 8);
    s += (uint64_t)sum;
    memcpy(e, &c, 8);
    memcpy(e + 8, &s, 8);
}

typedef struct cctx {
    ps_store_t *st;
    MDB_txn *txn;
    const ps_peer_t *peer;
    plan_t *p;
    const ps_cols_sink_t *sink;
    gtab_t gt;
    uint8_t *last;           /* the slot of the last row counted */
    uint8_t *kb;             /* a row's group key */
    uint64_t scanned, matched;
    const uint8_t *ukey;     /* the key being read */
    char unit[13];           /* its unit */
    int unit_ok;             /* may count unit with no other place: -1 not asked yet */
    uint8_t other[12];       /* the last other place asked about */
    int other_ok;            /* -1 not asked yet */
} cctx_t;

/* May the peer count a row of c->unit with this other place? */
static int row_in_scope(cctx_t *c, const uint8_t *row)
{
    char other[13];
    if (!row[ROW_OTHER]) {
        if (c->unit_ok < 0)
            c->unit_ok = ps_policy_may_count(c->st->opts.units, c->peer, c->unit, "");
        return c->unit_ok;
    }
    if (c->other_ok >= 0 && !memcmp(c->other, row + ROW_OTHER, 12))
        return c->other_ok;
    memcpy(c->other, row + ROW_OTHER, 12);
    memcpy(other, row + ROW_OTHER, 12);
    other[12] = '\0';
    c->other_ok = ps_policy_may_count(c->st->opts.units, c->peer, c->unit, other);
    return c->other_ok;
}

/* A raw row: the record itself goes to the sink. */
static int raw_row(cctx_t *c, const uint8_t *id)
{
    MDB_val k = {PS_ID_LEN, (void *)id}, v;
    Popsync__Record *r = NULL;
    int rc;
    if (mdb_get(c->txn, c->st->records, &k, &v) != 0 || v.mv_size < REC_HDR)
        return PS_OK;
    if (ps_msg_unpack_desc(&popsync__record__descriptor, (const uint8_t *)v.mv_data + REC_HDR, v.mv_size - REC_HDR,
                           (ProtobufCMessage **)&r) != PS_OK)
        return PS_OK;
    rc = c->sink->raw(c->sink->arg, r);
    ps_msg_free(&r->base);
    return rc;
}

static int count_item(cctx_t *c, const uint8_t *ukey, const uint8_t *item)
{
    const uint8_t *row = item + PS_ID_LEN;
    plan_t *p = c->p;
    int64_t sum = 0;
    if (((row[ROW_FLAGS] & F_DELETED) && !p->deleted) || !row_in_scope(c, row))
        return PS_OK;
    c->scanned++;
    if (row[ROW_FLAGS] & F_RAW)
        return raw_row(c, item);
    if (!row_match(p, c->unit, row))
        return PS_OK;
    c->matched++;
    key_make(p, ukey, row, c->kb);
    if (!c->last || memcmp(c->last + 16, c->kb, p->klen) != 0) {
        if (c->gt.n >= GROUPS_MAX)
            return PS_ETOOBIG;
        if (!(c->last = gtab_slot(&c->gt, c->kb)))
            return PS_ENOMEM;
    }
    if (p->sum)
        memcpy(&sum, row + p->sum->off, sizeof(sum));
    slot_add(c->last, sum);
    return PS_OK;
}

/* The rows of the key under the cursor, a page at a time, to fn.  first is
 * the key's first row as the cursor found it: a key with one row has no
 * duplicate page, and MDB_GET_MULTIPLE there may hand back a page of the
 * key read before. */
static int key_rows(MDB_cursor *cur, MDB_val first, size_t isz, int (*fn)(void *arg, const uint8_t *item), void *arg)
{
    MDB_val k, v = first;
    size_t n = 0;
    int rc = PS_OK, mrc;
    if ((mrc = mdb_cursor_count(cur, &n)))
        return db_err(mrc);
    if (n == 1)
        return first.mv_size == isz ? fn(arg, first.mv_data) : PS_EDB;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE); mrc == 0 && rc == PS_OK;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE)) {
        if (v.mv_size % isz)
            return PS_EDB;
        for (size_t o = 0; rc == PS_OK && o < v.mv_size; o += isz)
            rc = fn(arg, (const uint8_t *)v.mv_data + o);
    }
    if (rc)
        return rc;
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
}

static int count_row(void *arg, const uint8_t *item)
{
    cctx_t *c = arg;
    return count_item(c, c->ukey, item);
}

/* Each binary group to the sink with its parts as text. */
static int groups_out(cctx_t *c)
{
    plan_t *p = c->p;
    char(*pt)[512] = calloc(p->ng ? p->ng : 1, sizeof(*pt));
    const char **pp = calloc(p->ng ? p->ng : 1, sizeof(*pp));
    int rc = pt && pp ? PS_OK : PS_ENOMEM;
    for (size_t i = 0; rc == PS_OK && i < c->gt.cap; i++) {
        const uint8_t *e = c->gt.s + i * c->gt.esz, *kp = e + 16;
        uint64_t cnt = slot_count(e);
        int64_t sum;
        if (!cnt)
            continue;
        memcpy(&sum, e + 8, 8);
        for (size_t g = 0; g < p->ng; kp += p->g[g].len, g++) {
            const gpart_t *gp = &p->g[g];
            char unit[13];
            int64_t x;
            pp[g] = pt[g];
            pt[g][0] = '\0';
            if (gp->what == G_KIND) {
                snprintf(pt[g], sizeof(pt[g]), "%s", ps_kind_name(p->kind) ? ps_kind_name(p->kind) : "");
            } else if (gp->what == G_TOWNSHIP) {
                memcpy(unit, kp, 12);
                unit[12] = '\0';
                ps_orgunits_township_code(c->st->opts.units, unit, pt[g]);
            } else if (gp->what == G_COL && gp->c->type == COL_NUM) {
                memcpy(&x, kp, sizeof(x));
                if (num_text(p, gp->c, x, pt[g], sizeof(pt[g])) != PS_OK)
                    pt[g][0] = '\0';
            } else {
                memcpy(pt[g], kp, gp->len);
                pt[g][gp->len] = '\0';
            }
        }
        rc = c->sink->group(c->sink->arg, pp, cnt, sum);
    }
    free(pt);
    free(pp);
    return rc;
}

static int count_all(cctx_t *c)
{
    MDB_cursor *cur = NULL;
    uint8_t kind = (uint8_t)c->p->kind, ukey[KEY_LEN];
    MDB_val k = {1, &kind}, v;
    int mrc, rc = PS_OK;

    if ((mrc = mdb_cursor_open(c->txn, c->st->cols, &cur)))
        return db_err(mrc);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && rc == PS_OK;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP)) {
        if (k.mv_size != KEY_LEN || *(const uint8_t *)k.mv_data != kind)
            break;
        memcpy(ukey, k.mv_data, KEY_LEN);
        memcpy(c->unit, ukey + 1, 12);
        c->unit[12] = '\0';
        if (c->p->root && !within(c->st, c->unit, c->p->root))
            continue;
        c->unit_ok = c->other_ok = -1;
        c->ukey = ukey;
        rc = key_rows(cur, v, PS_ID_LEN + c->p->L->row, count_row, c);
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
}

int ps_cols_count(ps_store_t *st, MDB_txn *txn, const ps_peer_t *peer, const Popsync__Query *q,
                  const ps_cols_sink_t *sink, uint64_t *scanned, uint64_t *matched, char *err, size_t errlen)
{
    plan_t p;
    cctx_t c;
    int rc;

    if (!ps_cols_usable(q))
        return PS_EINVAL;
    if ((rc = plan_make(q, &p)))
        return rc;
    memset(&c, 0, sizeof(c));
    c.st = st;
    c.txn = txn;
    c.peer = peer;
    c.p = &p;
    c.sink = sink;
    c.gt.klen = p.klen;
    c.gt.esz = (16 + p.klen + 7) & ~(size_t)7;
    if (!(c.kb = malloc(p.klen ? p.klen : 1)))
        rc = PS_ENOMEM;
    else if ((rc = count_all(&c)) == PS_OK)
        rc = groups_out(&c);
    if (rc == PS_ETOOBIG)
        snprintf(err, errlen, "more than %d groups: narrow the query", PS_QUERY_MAX_GROUPS);
    *scanned += c.scanned;
    *matched += c.matched;
    free(c.kb);
    free(c.gt.s);
    plan_free(&p);
    return rc;
}

/* ---- rows for the quality report ------------------------------------------------ */

static void item_view(const layout_t *L, int kind, const uint8_t *ukey, const uint8_t *item, ps_cols_item_t *it)
{
    const uint8_t *row = item + PS_ID_LEN;
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    memcpy(it->unit, ukey + 1, 12);
    memcpy(it->other, row + ROW_OTHER, 12);
    it->id = item;
    it->deleted = row[ROW_FLAGS] & F_DELETED;
    it->raw = !!(row[ROW_FLAGS] & F_RAW);
    it->recheck = !!(row[ROW_FLAGS] & F_RECHECK);
    memcpy(&it->nbhash, row + ROW_NBHASH, sizeof(it->nbhash));
    memcpy(&it->idhash, row + ROW_IDHASH, sizeof(it->idhash));
    it->layout = L;
    it->row = row;
    for (size_t i = 0; i < L->n && it->nrefs < PS_REFS_MAX; i++) {
        static const uint8_t zero[PS_ID_LEN];
        const col_t *c = &L->c[i];
        if (c->type != COL_REF || !memcmp(row + c->off, zero, PS_ID_LEN))
            continue;
        it->refs[it->nrefs].field = c->fd->name;
        it->refs[it->nrefs].kind = c->ref_kind;
        it->refs[it->nrefs++].id = row + c->off;
    }
}

typedef struct each {
    const layout_t *L;
    uint8_t ukey[KEY_LEN];
    int (*fn)(void *arg, const ps_cols_item_t *it);
    void *arg;
} each_t;

static int each_row(void *arg, const uint8_t *item)
{
    each_t *e = arg;
    ps_cols_item_t it;
    item_view(e->L, e->ukey[0], e->ukey, item, &it);
    return e->fn(e->arg, &it);
}

int ps_cols_each(ps_store_t *st, MDB_txn *txn, int (*fn)(void *arg, const ps_cols_item_t *it), void *arg)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    each_t e = {NULL, {0}, fn, arg};
    int mrc, rc = PS_OK;

    if ((mrc = mdb_cursor_open(txn, st->cols, &cur)))
        return db_err(mrc);
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0 && rc == PS_OK;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP)) {
        const layout_t *L;
        if (k.mv_size != KEY_LEN || !(L = layout_of(*(const uint8_t *)k.mv_data)))
            continue;
        memcpy(e.ukey, k.mv_data, KEY_LEN);
        e.L = L;
        rc = key_rows(cur, v, PS_ID_LEN + L->row, each_row, &e);
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    return mrc && mrc != MDB_NOTFOUND ? db_err(mrc) : PS_OK;
}

const char *ps_cols_text(const ps_cols_item_t *it, const char *name, char out[32])
{
    const col_t *c = col_named(it->layout, name);
    if (!c || c->type != COL_TEXT)
        return NULL;
    memcpy(out, it->row + c->off, c->width);
    out[c->width] = '\0';
    return out;
}

int ps_cols_num(const ps_cols_item_t *it, const char *name, int64_t *out)
{
    const col_t *c = col_named(it->layout, name);
    if (!c || c->type != COL_NUM)
        return PS_EINVAL;
    memcpy(out, it->row + c->off, sizeof(*out));
    return PS_OK;
}
