/* cache_pindex.h - part of the cache (cache.c only): the person index.
 *
 * Owns: two LMDB databases of a client cache that let `popsync find`, the
 * duplicate check and reference-by-ID-number find a person without opening
 * every record:
 *   "pindex"       key: tag (1) + term hash (15) + record id (16), no value
 *   "pindex_by_id" key: record id (16); value: the 16-byte tag + hash of
 *                  each term the record is filed under (to unfile it)
 * Terms of a live person: the whole ID number (tag I), its last 4 and last 6
 * characters (L), the whole name (N), its first 1 and 2 characters when the
 * name is longer (P), and name + birth date (B), the name's pinyin
 * initials (S: 张三 "zs", and with the family-name reading where it
 * differs: common/pinyin.h) and their first 2 to 4 letters when longer (T);
 * of a live benefit, its
 * person, scheme and period (Y: one payment per person, scheme and period);
 * of every live record, each record it refers to (R: the referred id in
 * hex; the web interface lists a person's births, migrations, benefits,
 * visits and household members from it); and of every live record but a
 * person, its kind (K: the kind's name, so one kind's records are read
 * without a scan); of a live migration without a feedback date, the open
 * case (O: the fixed term "open", so the migrations page and `popsync
 * migrations` read the open cases only; a feedback date or a delete
 * unfiles it in the same transaction).  A term's hash is
 * HMAC-SHA256 under a key derived from the cache's data key, truncated: the
 * index reveals nothing to someone who has the files but not the key (a
 * guess cannot be tested without it).  Truncation makes a hit a candidate
 * only: callers open the record and compare.
 *
 * cache.c calls ps_pindex_file in the same write transaction as every
 * write or delete of the records database, so the index is never behind.
 */
#ifndef PS_CACHE_PINDEX_H
#define PS_CACHE_PINDEX_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "records.pb-c.h"

#define PS_PINDEX_VERSION 7 /* 5: open migration cases (O); 6: names filed without padding spaces; 7: one middle dot */

#define PS_PINDEX_TERM_KEY 16  /**< tag + truncated hash */
#define PS_PINDEX_ENTRY_KEY 32 /**< a "pindex" key: term key + record id */

/** The one term of PS_PINDEX_OPEN_CASE. */
#define PS_PINDEX_OPEN_TERM "open"

typedef struct ps_pindex {
    MDB_dbi terms, by_id;
    uint8_t key[32]; /* HMAC key, derived from the data key */
    struct ps_hmac_key *hk; /* the same key, its pads hashed once (crypto.h) */
    uint64_t writes;        /* puts and deletes made (tests: ps_cache_op_counts) */
} ps_pindex_t;

/** What a query asks for (ps_pindex_parse). */
typedef enum ps_pindex_kind {
    PS_PINDEX_ID_NUMBER = 'I', /**< a whole ID number */
    PS_PINDEX_TAIL = 'L',      /**< the last 4 or 6 characters of one */
    PS_PINDEX_NAME = 'N',      /**< a whole name (prefixes too: tag P) */
    PS_PINDEX_NAME_DATE = 'B', /**< name and birth date */
    PS_PINDEX_PAYMENT = 'Y',   /**< a benefit: person id (hex) | scheme | period */
    PS_PINDEX_INITIALS = 'S',  /**< a name's pinyin initials, lower case (prefixes too: tag T) */
    PS_PINDEX_REF = 'R',       /**< records referring to a record: its id (hex) */
    PS_PINDEX_KIND = 'K',      /**< the records of a kind (not persons): its name */
    PS_PINDEX_OPEN_CASE = 'O', /**< open migration cases: PS_PINDEX_OPEN_TERM */
} ps_pindex_kind_t;

/** Opens (creating) the databases in a write transaction. */
int ps_pindex_open(ps_pindex_t *px, MDB_txn *txn);
/** Derives the index key from the cache's data key. */
int ps_pindex_set_key(ps_pindex_t *px, const uint8_t dek[32]);
/** Wipes the key. */
void ps_pindex_close(ps_pindex_t *px);

/** Files record id under r's terms, replacing what it was filed under; r
 *  NULL, deleted, or of a kind with no terms: unfiled.  Writes only the
 *  entries that change (none when r's terms are those filed).  PS_OK or a
 *  PS_E code. */
int ps_pindex_file(ps_pindex_t *px, MDB_txn *txn, const uint8_t id[16], const Popsync__Record *r);

/** As ps_pindex_file, writing the by_id row only: the "pindex" entries
 *  are left to ps_pindex_build (a cold pull's bulk build). */
int ps_pindex_file_deferred(ps_pindex_t *px, MDB_txn *txn, const uint8_t id[16], const Popsync__Record *r);

/** *empty gets whether "pindex" holds no entry. */
int ps_pindex_entries_empty(ps_pindex_t *px, MDB_txn *txn, int *empty);

/**
 * Rewrites "pindex" from "pindex_by_id" in one pass of ordered appends
 * (cache_pindex_build.c): every entry collected in memory up to a bound
 * (64 MB with its sort buffer), sorted, and when more than that, sorted
 * runs spilled to unnamed files in dir (O_TMPFILE, 0600: the same HMAC'd
 * keys the index holds) and merged.  In txn, which the caller commits.
 * PS_OK or a PS_E code.
 */
int ps_pindex_build(ps_pindex_t *px, MDB_txn *txn, const char *dir);

/** Empties the index (before a rebuild). */
int ps_pindex_clear(ps_pindex_t *px, MDB_txn *txn);

/**
 * Reads what a clerk typed: an ID number (full-width digits, spaces and a
 * lower-case x allowed), its last 4 or 6 characters, "name date" (any date
 * shape the field dictionary takes), 2 to 8 Latin letters (pinyin initials,
 * any case), or a name.  Writes the normalised term(s) into term (name, or
 * ID number, or "name|YYYY-MM-DD", or lower-case initials).  Returns the
 * kind.
 */
ps_pindex_kind_t ps_pindex_parse(const char *text, char *term, size_t termlen);

/**
 * The ids filed under term of kind (for PS_PINDEX_NAME: the whole name
 * first, then names it begins when it is 1 or 2 characters; for
 * PS_PINDEX_INITIALS: whole initials, then initials it begins), at most max
 * into ids; *n gets how many.  Candidates only (see above).
 */
int ps_pindex_lookup(ps_pindex_t *px, MDB_txn *txn, ps_pindex_kind_t kind, const char *term, uint8_t (*ids)[16],
                     size_t max, size_t *n);

/** Whether p's name has initials (either reading) that begin with the
 *  lower-case initials term. */
int ps_pindex_initials_match(const char *name, const char *term);

/** A person's name in the form the index files and looks up: without
 *  padding spaces (ps_field_text_fold).  PS_OK, or PS_EINVAL with name
 *  copied as it is (truncated) when out is too small. */
int ps_pindex_name(const char *name, char *out, size_t outlen);

/** Calls fn with every id filed under term of kind (candidates: a hash
 *  collision is possible), until fn returns non-zero (negative: returned). */
int ps_pindex_foreach(ps_pindex_t *px, MDB_txn *txn, ps_pindex_kind_t kind, const char *term,
                      int (*fn)(const uint8_t id[16], void *arg), void *arg);

/** The PS_PINDEX_PAYMENT term of a benefit into term. */
void ps_pindex_payment_term(const ProtobufCBinaryData *person_id, const char *scheme, const char *period, char *term,
                            size_t termlen);

#endif
