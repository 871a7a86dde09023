/* publish.h - `popsync publish`: the district's public statistics site
 * (issue 18 point 4; docs/publish.md).
 *
 * Owns: turning the monthly reports (ReportResult, the same counts as
 * `popsync report monthly`) into the tables of the public site with
 * small-cell suppression (suppress.h), and writing the site: index.html,
 * site.css, site.js, data.js (the published numbers for the charts),
 * indicators.csv, trend.csv and chart.min.js copied from Debian's
 * libjs-chart.js.  Nothing record-level is ever read: only the report's
 * counts per township.
 *
 * ps_cmd_publish is the command (cli.h); what is here is the pure part,
 * kept apart so the unit test can build the tables without a server.
 */
#ifndef PS_PUBLISH_H
#define PS_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "suppress.h"

/* The fields of one published row, in the order of the CSV.  The *_NA
 * fields are the records whose sex, direction or service is not recorded
 * (old records): they are published (and protected) only when some row
 * has one. */
enum {
    PF_PERSONS, PF_NEW,
    PF_BOYS, PF_GIRLS, PF_BIRTHS_NA, PF_BIRTHS,
    PF_IN, PF_OUT, PF_MIG_NA, PF_MIG,
    PF_SUB, PF_NOSUB, PF_FB, PF_NOFB,
    PF_BEN,
    PF_V_PRE, PF_V_REPRO, PF_V_FOLLOW, PF_V_CONTRA, PF_V_CONSULT, PF_V_NA, PF_V_TOTAL,
    PF_COUNT
};

/** One row: a township, or the district total (code ""). */
typedef struct ps_pub_row {
    char code[16];
    char name[128];
    int64_t v[PF_COUNT];
    size_t cell[PF_COUNT];
    int64_t amount_fen; /**< shown when PF_BEN is */
    char close_state[16];
} ps_pub_row_t;

/** The tables of one month, suppressed. */
typedef struct ps_pub {
    char month[8];
    size_t nrows;          /**< townships, then the total row last */
    ps_pub_row_t *rows;
    int has_na[3];         /**< births, migrations, visits: a *_NA column is used */
    ps_sdc_t sdc;
} ps_pub_t;

typedef struct Popsync__ReportResult Popsync__ReportResult;

/**
 * Builds p from a monthly ReportResult (township rows then the total row)
 * and runs the suppression with threshold 5.  The total row is recomputed
 * as the sum of the townships.  PS_OK, PS_ENOMEM, PS_EINVAL (no rows).
 */
int ps_pub_build(ps_pub_t *p, const Popsync__ReportResult *res);
void ps_pub_free(ps_pub_t *p);
/** True when field f of row r is published (not suppressed). */
int ps_pub_shown(const ps_pub_t *p, size_t r, int f);
/** The text of a published cell: the number, "<5" (primary) or "x" (complementary). */
const char *ps_pub_cell_text(const ps_pub_t *p, size_t r, int f, char *buf, size_t len);

#endif
