/* benefits.h - benefit entitlement: the scheme table and its one evaluator.
 *
 * Owns: the scheme table (a JSON file the district may change; the table
 * shipped with popsync is ps_schemes_default_json), reading it, and
 * computing from a cache's persons, households and births who is entitled
 * to what for which period, and what was paid against it.  A scheme's rule
 * is data: a list of conditions over named facts of a family ("age >= 60",
 * "rural = 1", "children <= 1") and tiers giving the amount of the first
 * one whose conditions hold.  No scheme has code of its own.
 * docs/benefits.md defines every fact, the periods and the shipped values.
 *
 * Used by cmd_benefits.c (due, arrears, batch, pay, the report panels).
 * Single-threaded; everything is computed from one scan of the cache.
 */
#ifndef PS_BENEFITS_H
#define PS_BENEFITS_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "orgunit.h"

typedef struct ps_schemes ps_schemes_t;

/** The table shipped with popsync (JSON text). */
extern const char ps_schemes_default_json[];

/** Reads the table at path (NULL: $POPSYNC_SCHEMES, else the shipped one);
 *  PS_EINVAL with a reason naming the scheme and what is wrong. */
int ps_schemes_load(const char *path, ps_schemes_t **out, char *err, size_t errlen);
void ps_schemes_free(ps_schemes_t *s);
/** The JSON text the table was read from. */
const char *ps_schemes_text(const ps_schemes_t *s);

/** One entitlement of one person for one scheme and period, with what was
 *  paid against it. */
typedef struct ps_entitlement {
    uint8_t person[16];
    uint8_t family[16]; /**< the mother's record id: the family */
    char scheme[32];
    char period[8];     /**< YYYY or YYYY-MM */
    char township[13];  /**< of the recipient */
    int64_t amount_fen; /**< entitled (0: a payment with no entitlement) */
    int64_t paid_fen;   /**< paid (status paid) for person, scheme and period */
    unsigned npaid;     /**< paid records for it (2 or more: a double payment) */
    uint32_t end;       /**< YYYYMMDD the period (or the one-off event) ends */
} ps_entitlement_t;

typedef struct ps_entitlements {
    ps_entitlement_t *v;
    size_t n, cap;
} ps_entitlements_t;

/**
 * Every entitlement of the periods that end from `from` to `to` (YYYYMMDD,
 * inclusive), for recipients under root (NULL: all), plus every paid
 * benefit of those periods that matches none (amount_fen 0).  A year
 * scheme's period ends on 31 December, a month scheme's on the month's
 * last day, a one-off's on the event's date.  PS_OK or PS_ENOMEM.
 */
int ps_benefits_compute(ps_cache_t *c, const ps_schemes_t *s, const ps_orgunits_t *tree, const char *root,
                        uint32_t from, uint32_t to, ps_entitlements_t *out);
void ps_entitlements_free(ps_entitlements_t *e);

/** The entitlement (amount; 0 when none) of person for scheme and period
 *  in e, or NULL. */
const ps_entitlement_t *ps_entitlement_find(const ps_entitlements_t *e, const uint8_t person[16], const char *scheme,
                                            const char *period);

/** First and last day (YYYYMMDD) of a period YYYY or YYYY-MM; -1 when bad. */
int ps_period_bounds(const char *period, uint32_t *first, uint32_t *last);

#endif
