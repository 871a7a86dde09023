/* validate.h - record validation shared by client and server.
 *
 * Owns: the rules a record must satisfy before it enters a client's outbox
 * or the server's store, and the per-field error list they produce.  One bad
 * record never stops the rest of a batch: callers validate each record and
 * carry its errors back with it.
 */
#ifndef PS_VALIDATE_H
#define PS_VALIDATE_H

#include <stddef.h>

#include "records.pb-c.h"

#define PS_VERR_MAX 8

typedef struct ps_field_error {
    char field[32];   /**< field name as in the CLI/CSV/JSON ("birth_date") */
    char reason[160]; /**< English reason, no personal data */
} ps_field_error_t;

typedef struct ps_verrs {
    ps_field_error_t e[PS_VERR_MAX];
    size_t n;         /**< errors recorded (at most PS_VERR_MAX kept) */
} ps_verrs_t;

/** Adds an error (formatted reason). */
void ps_verrs_add(ps_verrs_t *v, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * Checks a record's envelope and body.  Returns the number of errors found
 * (0 = valid), appended to v.
 */
size_t ps_validate_record(const Popsync__Record *r, ps_verrs_t *v);

#endif
