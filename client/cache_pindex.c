/* cache_pindex.c - the cache's person index (see cache_pindex.h). */
#include "cache_pindex.h"
#include "pinyin.h"

#include "crypto.h"
#include "db_err.h"
#include "err.h"
#include "fields.h"
#include "ids.h"
#include "record_fmt.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>

#define HASH_LEN 15
#define TERM_KEY PS_PINDEX_TERM_KEY   /* tag + hash */
#define ENTRY_KEY PS_PINDEX_ENTRY_KEY /* + record id */
#define MAX_TERMS 20 /* a person: 15 at most, and its household (R) */

int ps_pindex_open(ps_pindex_t *px, MDB_txn *txn)
{
    int mrc;

    if ((mrc = mdb_dbi_open(txn, "pindex", MDB_CREATE, &px->terms)) ||
        (mrc = mdb_dbi_open(txn, "pindex_by_id", MDB_CREATE, &px->by_id)))
        return ps_db_err(mrc);
    return PS_OK;
}

int ps_pindex_set_key(ps_pindex_t *px, const uint8_t dek[32])
{
    static const char label[] = "popsync person index v1";

    int rc;

    /* A key of its own, so index hashes never double as anything else. */
    if ((rc = ps_hmac_sha256(dek, 32, label, sizeof(label) - 1, px->key)))
        return rc;
    ps_hmac_key_free(px->hk);
    px->hk = NULL;
    return ps_hmac_key_new(&px->hk, px->key, sizeof(px->key));
}

void ps_pindex_close(ps_pindex_t *px)
{
    ps_zeroize(px->key, sizeof(px->key));
    ps_hmac_key_free(px->hk);
    px->hk = NULL;
}

/* tag + truncated HMAC of the term. */
static int term_key(const ps_pindex_t *px, char tag, const char *term, uint8_t out[TERM_KEY])
{
    uint8_t mac[PS_SHA256_LEN], buf[512];
    size_t n = strlen(term);
    int rc;

    if (n + 1 > sizeof(buf))
        n = sizeof(buf) - 1;
    buf[0] = (uint8_t)tag;
    memcpy(buf + 1, term, n);
    if ((rc = ps_hmac_key_mac(px->hk, buf, n + 1, mac)))
        return rc;
    out[0] = (uint8_t)tag;
    memcpy(out + 1, mac, HASH_LEN);
    return PS_OK;
}

/* Length in bytes of the first k UTF-8 characters of s; 0 when s has no
 * more than k characters (a prefix must be shorter than the name). */
static size_t prefix_bytes(const char *s, int k)
{
    size_t i = 0;

    for (int c = 0; c < k; c++) {
        if (!s[i])
            return 0;
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80)
            i++;
    }
    return s[i] ? i : 0;
}

/* The pinyin terms of a name: its initials (S) and their first 2 to 4
 * letters when longer (T), in the customary and the family-name reading
 * when they differ; at most 8 keys. */
static size_t initials_terms(const ps_pindex_t *px, const char *name, uint8_t keys[][TERM_KEY])
{
    char in[2][64], t[8];
    size_t n = 0;
    int len[2];

    len[0] = ps_pinyin_initials(name, 0, in[0], sizeof(in[0]));
    len[1] = ps_pinyin_initials(name, 1, in[1], sizeof(in[1]));
    for (int r = 0; r < 2; r++) {
        if (len[r] < 1 || (r == 1 && strcmp(in[0], in[1]) == 0))
            continue;
        if (term_key(px, 'S', in[r], keys[n]) == PS_OK)
            n++;
        for (int k = 2; k <= 4 && k < len[r]; k++) {
            snprintf(t, sizeof(t), "%.*s", k, in[r]);
            if (term_key(px, 'T', t, keys[n]) == PS_OK)
                n++;
        }
    }
    return n;
}

int ps_pindex_initials_match(const char *name, const char *term)
{
    char in[64];
    size_t n = strlen(term);

    for (int r = 0; r < 2; r++)
        if (ps_pinyin_initials(name, r, in, sizeof(in)) >= 0 && strncmp(in, term, n) == 0)
            return 1;
    return 0;
}

int ps_pindex_name(const char *name, char *out, size_t outlen)
{
    if (ps_field_text_fold(name, 1, out, outlen) != 0) {
        snprintf(out, outlen, "%s", name);
        return PS_EINVAL;
    }
    return PS_OK;
}

/* The terms of a live person, as term keys; returns how many. */
static size_t person_terms(const ps_pindex_t *px, const Popsync__Person *p, uint8_t keys[MAX_TERMS][TERM_KEY])
{
    char t[300], name[256];
    size_t n = 0, len;

    if (p->id_number && (len = strlen(p->id_number)) >= 6) {
        if (term_key(px, 'I', p->id_number, keys[n]) == PS_OK)
            n++;
        if (term_key(px, 'L', p->id_number + len - 4, keys[n]) == PS_OK)
            n++;
        if (term_key(px, 'L', p->id_number + len - 6, keys[n]) == PS_OK)
            n++;
    }
    /* The name as a clerk types it: a name stored with padding ("张　三",
     * by a version that kept it) is found as 张三. */
    if (p->name && *p->name && ps_pindex_name(p->name, name, sizeof(name)) == PS_OK && *name) {
        if (term_key(px, 'N', name, keys[n]) == PS_OK)
            n++;
        for (int k = 1; k <= 2; k++) {
            size_t b = prefix_bytes(name, k);
            if (!b || b >= sizeof(t))
                break;
            snprintf(t, sizeof(t), "%.*s", (int)b, name);
            if (term_key(px, 'P', t, keys[n]) == PS_OK)
                n++;
        }
        if (p->birth_date && *p->birth_date) {
            snprintf(t, sizeof(t), "%s|%s", name, p->birth_date);
            if (term_key(px, 'B', t, keys[n]) == PS_OK)
                n++;
        }
        n += initials_terms(px, name, keys + n);
    }
    return n;
}

void ps_pindex_payment_term(const ProtobufCBinaryData *person_id, const char *scheme, const char *period, char *term,
                            size_t termlen)
{
    size_t o = 0;

    for (size_t i = 0; i < person_id->len && i < 16 && o + 3 < termlen; i++)
        o += (size_t)snprintf(term + o, termlen - o, "%02x", person_id->data[i]);
    snprintf(term + o, termlen > o ? termlen - o : 0, "|%s|%s", scheme ? scheme : "", period ? period : "");
}

/* The terms of r, as term keys; returns how many. */
static size_t own_terms(const ps_pindex_t *px, const Popsync__Record *r, uint8_t keys[MAX_TERMS][TERM_KEY])
{
    char t[160];

    if (r->body_case == POPSYNC__RECORD__BODY_PERSON && r->person)
        return person_terms(px, r->person, keys);
    if (r->body_case == POPSYNC__RECORD__BODY_BENEFIT && r->benefit && r->benefit->person_id.len == 16) {
        ps_pindex_payment_term(&r->benefit->person_id, r->benefit->scheme, r->benefit->period, t, sizeof(t));
        return term_key(px, 'Y', t, keys[0]) == PS_OK;
    }
    return 0;
}

static size_t record_terms(const ps_pindex_t *px, const Popsync__Record *r, uint8_t keys[MAX_TERMS][TERM_KEY])
{
    ps_ref_t refs[PS_REFS_MAX];
    size_t n, nr;
    char hex[33];

    if (!r || r->deleted)
        return 0;
    n = own_terms(px, r, keys);
    /* K: its kind, for all but persons (a page of migration cases reads
     * the migrations only). */
    if (r->kind != POPSYNC__KIND__KIND_PERSON && ps_kind_name((int)r->kind) &&
        term_key(px, 'K', ps_kind_name((int)r->kind), keys[n]) == PS_OK)
        n++;
    /* O: an open migration case (no feedback date yet), so the migrations
     * page reads the open cases only, not every migration ever registered. */
    if (r->body_case == POPSYNC__RECORD__BODY_MIGRATION && r->migration &&
        !(r->migration->feedback_date && *r->migration->feedback_date) &&
        term_key(px, 'O', PS_PINDEX_OPEN_TERM, keys[n]) == PS_OK)
        n++;
    /* R: the records it refers to (a person's page lists what refers to it). */
    nr = ps_record_refs(r, refs);
    for (size_t i = 0; i < nr && n < MAX_TERMS; i++) {
        ps_hex(refs[i].id, 16, hex);
        if (term_key(px, 'R', hex, keys[n]) == PS_OK)
            n++;
    }
    return n;
}

/* Whether key (TERM_KEY bytes) is one of keys[0..n). */
static int has_key(const uint8_t *keys, size_t n, const uint8_t *key)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(keys + i * TERM_KEY, key, TERM_KEY) == 0)
            return 1;
    return 0;
}

/* Puts (del 0) or deletes (del 1) the entry of term key under id. */
static int entry_write(ps_pindex_t *px, MDB_txn *txn, const uint8_t *key, const uint8_t id[16], int del)
{
    uint8_t entry[ENTRY_KEY];
    MDB_val ek = {ENTRY_KEY, entry}, empty = {0, NULL};
    int mrc;

    memcpy(entry, key, TERM_KEY);
    memcpy(entry + TERM_KEY, id, 16);
    px->writes++;
    mrc = del ? mdb_del(txn, px->terms, &ek, NULL) : mdb_put(txn, px->terms, &ek, &empty, 0);
    return mrc && mrc != MDB_NOTFOUND ? ps_db_err(mrc) : PS_OK;
}

/* Files by difference: an edit of one field changes one or two of a
 * person's ~15 terms, and each write of this B-tree is a random page
 * (docs/performance.md section o), so only the terms that changed are
 * written, and nothing at all when none did.  entries 0: the by_id row
 * only (a bulk build writes the entries later, ps_pindex_build). */
static int file_terms(ps_pindex_t *px, MDB_txn *txn, const uint8_t id[16], const Popsync__Record *r, int entries)
{
    uint8_t keys[MAX_TERMS][TERM_KEY], old[MAX_TERMS * TERM_KEY];
    MDB_val k = {16, (void *)id}, v;
    size_t n = record_terms(px, r, keys), nold = 0;
    int rc, mrc = mdb_get(txn, px->by_id, &k, &v);

    if (mrc && mrc != MDB_NOTFOUND)
        return ps_db_err(mrc);
    if (mrc == MDB_NOTFOUND && n == 0)
        return PS_OK;
    if (mrc == 0) {
        /* v points into the map: copy before a write changes it. */
        nold = v.mv_size / TERM_KEY < MAX_TERMS ? v.mv_size / TERM_KEY : MAX_TERMS;
        memcpy(old, v.mv_data, nold * TERM_KEY);
        if (nold == n && memcmp(old, keys, n * TERM_KEY) == 0)
            return PS_OK;
    }
    for (size_t i = 0; entries && i < nold; i++)
        if (!has_key(keys[0], n, old + i * TERM_KEY) && (rc = entry_write(px, txn, old + i * TERM_KEY, id, 1)))
            return rc;
    for (size_t i = 0; entries && i < n; i++)
        if (!has_key(old, nold, keys[i]) && (rc = entry_write(px, txn, keys[i], id, 0)))
            return rc;
    px->writes++;
    if (n == 0) {
        mrc = mdb_del(txn, px->by_id, &k, NULL);
        return mrc && mrc != MDB_NOTFOUND ? ps_db_err(mrc) : PS_OK;
    }
    v.mv_size = n * TERM_KEY;
    v.mv_data = keys;
    mrc = mdb_put(txn, px->by_id, &k, &v, 0);
    return mrc ? ps_db_err(mrc) : PS_OK;
}

int ps_pindex_file(ps_pindex_t *px, MDB_txn *txn, const uint8_t id[16], const Popsync__Record *r)
{
    return file_terms(px, txn, id, r, 1);
}

int ps_pindex_file_deferred(ps_pindex_t *px, MDB_txn *txn, const uint8_t id[16], const Popsync__Record *r)
{
    return file_terms(px, txn, id, r, 0);
}

int ps_pindex_entries_empty(ps_pindex_t *px, MDB_txn *txn, int *empty)
{
    MDB_stat st;
    int mrc = mdb_stat(txn, px->terms, &st);

    if (mrc)
        return ps_db_err(mrc);
    *empty = st.ms_entries == 0;
    return PS_OK;
}

int ps_pindex_clear(ps_pindex_t *px, MDB_txn *txn)
{
    int mrc;

    if ((mrc = mdb_drop(txn, px->terms, 0)) || (mrc = mdb_drop(txn, px->by_id, 0)))
        return ps_db_err(mrc);
    return PS_OK;
}

/* Copies s without ASCII or ideographic spaces at its ends. */
static void trim(const char *s, char *out, size_t outlen)
{
    const char *e;

    while (*s == ' ' || *s == '\t' || strncmp(s, "\xE3\x80\x80", 3) == 0)
        s += *s == ' ' || *s == '\t' ? 1 : 3;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || (e - s >= 3 && strncmp(e - 3, "\xE3\x80\x80", 3) == 0)))
        e -= e[-1] == ' ' || e[-1] == '\t' ? 1 : 3;
    snprintf(out, outlen, "%.*s", (int)(e - s), s);
}

/* The dictionary's normal form of text for a person field; text itself
 * when it has none. */
static void normal(const char *field, const char *text, char *out, size_t outlen)
{
    const char *why;
    const ps_field_t *f = ps_field_find(POPSYNC__KIND__KIND_PERSON, field);

    if (!f || ps_field_normalize(f, text, out, outlen, &why) != 0)
        snprintf(out, outlen, "%s", text);
}

static int id_like(const char *s)
{
    size_t n = strlen(s), i;

    for (i = 0; i < n; i++)
        if (!(s[i] >= '0' && s[i] <= '9') && !(i + 1 == n && s[i] == 'X'))
            return 0;
    return n == 18 || n == 15 || n == 4 || n == 6;
}

/* 2 to 8 Latin letters: what a clerk types for pinyin initials. */
static int initials_like(const char *s)
{
    size_t n = strlen(s);

    for (size_t i = 0; i < n; i++)
        if (!((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z'))
            return 0;
    return n >= 2 && n <= 8;
}

ps_pindex_kind_t ps_pindex_parse(const char *text, char *term, size_t termlen)
{
    char t[300], idn[300], date[64];
    const char *sp;

    trim(text, t, sizeof(t));
    normal("id_number", t, idn, sizeof(idn));
    if (id_like(idn)) {
        snprintf(term, termlen, "%s", idn);
        return strlen(idn) >= 15 ? PS_PINDEX_ID_NUMBER : PS_PINDEX_TAIL;
    }
    /* "name date": the last space-separated word is a date. */
    sp = strrchr(t, ' ');
    if (sp && sp > t) {
        normal("birth_date", sp + 1, date, sizeof(date));
        if (strlen(date) == 10 && date[4] == '-' && date[7] == '-') {
            char name[300];
            snprintf(name, sizeof(name), "%.*s", (int)(sp - t), t);
            ps_pindex_name(name, idn, sizeof(idn));
            snprintf(term, termlen, "%s|%s", idn, date);
            return PS_PINDEX_NAME_DATE;
        }
    }
    if (initials_like(t)) {
        size_t i;
        for (i = 0; t[i] && i + 1 < termlen; i++)
            term[i] = (char)(t[i] | 0x20);
        term[i] = '\0';
        return PS_PINDEX_INITIALS;
    }
    ps_pindex_name(t, term, termlen);
    return PS_PINDEX_NAME;
}

/* Appends the ids filed under tag/term to ids (no repeats). */
static int collect(ps_pindex_t *px, MDB_txn *txn, char tag, const char *term, uint8_t (*ids)[16], size_t max,
                   size_t *n)
{
    uint8_t want[TERM_KEY];
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, mrc;

    if ((rc = term_key(px, tag, term, want)))
        return rc;
    if ((mrc = mdb_cursor_open(txn, px->terms, &cur)))
        return ps_db_err(mrc);
    k.mv_size = TERM_KEY;
    k.mv_data = want;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && *n < max;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *e = k.mv_data;
        size_t j;
        if (k.mv_size != ENTRY_KEY || memcmp(e, want, TERM_KEY) != 0)
            break;
        for (j = 0; j < *n && memcmp(ids[j], e + TERM_KEY, 16) != 0; j++)
            ;
        if (j == *n)
            memcpy(ids[(*n)++], e + TERM_KEY, 16);
    }
    mdb_cursor_close(cur);
    return mrc == 0 || mrc == MDB_NOTFOUND ? PS_OK : ps_db_err(mrc);
}

int ps_pindex_lookup(ps_pindex_t *px, MDB_txn *txn, ps_pindex_kind_t kind, const char *term, uint8_t (*ids)[16],
                     size_t max, size_t *n)
{
    int rc;

    *n = 0;
    if ((rc = collect(px, txn, (char)kind, term, ids, max, n)))
        return rc;
    if (kind == PS_PINDEX_NAME && prefix_bytes(term, 2) == 0)
        rc = collect(px, txn, 'P', term, ids, max, n);
    if (kind == PS_PINDEX_INITIALS && strlen(term) <= 4)
        rc = collect(px, txn, 'T', term, ids, max, n);
    return rc;
}

int ps_pindex_foreach(ps_pindex_t *px, MDB_txn *txn, ps_pindex_kind_t kind, const char *term,
                      int (*fn)(const uint8_t id[16], void *arg), void *arg)
{
    uint8_t want[TERM_KEY];
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, mrc, stop = 0;

    if ((rc = term_key(px, (char)kind, term, want)))
        return rc;
    if ((mrc = mdb_cursor_open(txn, px->terms, &cur)))
        return ps_db_err(mrc);
    k.mv_size = TERM_KEY;
    k.mv_data = want;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && !stop;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != ENTRY_KEY || memcmp(k.mv_data, want, TERM_KEY) != 0)
            break;
        stop = fn((const uint8_t *)k.mv_data + TERM_KEY, arg);
    }
    mdb_cursor_close(cur);
    if (stop < 0)
        return stop;
    return mrc == 0 || mrc == MDB_NOTFOUND ? PS_OK : ps_db_err(mrc);
}
