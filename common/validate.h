/* validate.h - record validation shared by client and server.
 *
 * Owns: the rules a record must satisfy before it enters a client's outbox
 * or the server's store (docs/data-model.md lists them per field), and the
 * per-field error list they produce.  One bad record never stops the rest
 * of a batch: callers validate each record and carry its errors with it.
 */
#ifndef PS_VALIDATE_H
#define PS_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "orgunit.h"
#include "tls.h"
#include "records.pb-c.h"

#define PS_VERR_MAX 8

/** Bytes of protobuf fields this build does not know that one record may
 *  carry (envelope and body together): kept for forward compatibility,
 *  bounded so nobody can store and replicate megabytes nobody sees. */
#define PS_RECORD_MAX_UNKNOWN 4096u

/** The largest packed record of a kind (unknown fields included); 0 when
 *  the kind is unknown.  docs/data-model.md §2 lists them. */
size_t ps_record_max_bytes(int kind);

typedef struct ps_field_error {
    char field[32];   /**< field name as in the CLI/CSV/JSON ("birth_date") */
    char reason[256]; /**< English reason; never contains the field's value */
} ps_field_error_t;

typedef struct ps_verrs {
    ps_field_error_t e[PS_VERR_MAX];
    size_t n;         /**< errors found (only the first PS_VERR_MAX are kept) */
} ps_verrs_t;

/** What validation may consult besides the record itself. */
typedef struct ps_validate_ctx {
    /** The org-unit tree; NULL: codes are checked for format only and
     *  subtrees follow the code prefix rule of scope.h. */
    const ps_orgunits_t *units;
    /** The sender (role and org unit): a new record must be one it may
     *  create (common/policy.h).  NULL: no scope check. */
    const ps_peer_t *peer;
    /** Today as YYYYMMDD where records are judged: the district's date
     *  (tz.h); 0: the clock's local date.  A date is "in the future" only
     *  when it is after today plus one day of grace. */
    uint32_t today;
    /** Does a live record with this id exist in the sender's view (or in
     *  the same batch)?  kind is the expected kind.  NULL: references are
     *  checked for form only. */
    int (*ref_exists)(void *arg, const uint8_t id[16], int kind);
    void *ref_arg;
    /** The stored version this change replaces (NULL: a new record).  An
     *  edit is not re-judged on what it leaves as it was: unchanged
     *  references are not looked up again (the other place of a migration
     *  may not see the person), and the unit is not checked against
     *  the sender's scope (an owner may hand a record over to another unit; who may
     *  edit the current owner's record is the server's check). */
    const Popsync__Record *current;
    /** Refuse records marked synthetic (a server without --allow-synthetic). */
    int refuse_synthetic;
    /** The record arrives from another district over the upward stream
     *  (server/migrants.c), not from a peer: see ps_validate_foreign_case. */
    int from_upstream;
} ps_validate_ctx_t;

/**
 * The foreign-case rule (docs/upstream.md §7): a migration of another
 * district held here as its other place (common/policy.h
 * ps_policy_foreign_case) -- arriving from the stream (ctx->from_upstream),
 * or edited here without moving it (its unit that of ctx->current).  Its
 * unit is the owner district's, not in our tree, and its person_id names
 * a person record of the owner district that we do not have: both are
 * taken as they are (the owner district checked them).  Everything else of
 * it is checked as usual.
 */
int ps_validate_foreign_case(const Popsync__Record *r, const ps_validate_ctx_t *ctx);

/** Adds an error (formatted reason). */
void ps_verrs_add(ps_verrs_t *v, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * Checks a record's envelope and body.  Returns the number of errors found
 * (0 = valid), appended to v.  Tombstones (deleted) are checked for their
 * envelope only.  ctx may be NULL (format checks only).
 */
size_t ps_validate_record(const Popsync__Record *r, const ps_validate_ctx_t *ctx, ps_verrs_t *v);

/** One reference a record makes to another record. */
typedef struct ps_ref {
    const char *field; /**< the referring field ("mother_id"), a static string */
    const uint8_t *id; /**< the 16-byte id referred to (points into the record) */
    int kind;          /**< the kind the referred record must have */
} ps_ref_t;
#define PS_REFS_MAX 4

/**
 * The references r makes (a person's household, a household's head, a
 * birth's mother and child, the person of a migration, benefit or visit): the
 * non-empty 16-byte ones, at most PS_REFS_MAX, into refs.  Returns how many.
 * The one list of reference fields: delete's dependents (client) and the
 * quality report's dangling references (server) both read it.
 */
size_t ps_record_refs(const Popsync__Record *r, ps_ref_t refs[PS_REFS_MAX]);

/** GB 11643 check: 18 characters, MOD 11-2 check digit, real birth date.
 *  Returns NULL when valid, else a static reason. */
const char *ps_validate_id_number(const char *idn);
/** As ps_validate_id_number, with "today" given as YYYYMMDD (0: the clock's
 *  local date) for the not-in-the-future check of the birth date (one day
 *  of grace, as for every date). */
const char *ps_validate_id_number_at(const char *idn, uint32_t today);
/** The GB 11643 check character ('0'..'9' or 'X') for the first 17 digits of
 *  an ID number; 0 when those are not 17 digits. */
char ps_id_check_char(const char *first17);
/** YYYY-MM-DD that exists, year 1890 or later; returns NULL when valid, else
 *  a static reason.  (Whether it is in the future is the caller's check.) */
const char *ps_validate_date(const char *s);

/** Benefit schemes: the label of a scheme code ("rural_reward"), in Chinese
 *  when zh, else English; NULL for an unknown code.  ps_scheme_at lists the
 *  codes (NULL past the end). */
const char *ps_scheme_label(const char *scheme, int zh);
const char *ps_scheme_at(size_t i);
/** Service kinds of a service visit ("prepregnancy_check", ...), as above. */
const char *ps_service_label(const char *service, int zh);
const char *ps_service_at(size_t i);

#endif
