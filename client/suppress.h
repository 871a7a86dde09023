/* suppress.h - small-cell suppression of published tables (issue 18 point 4).
 *
 * Owns: deciding which cells of a set of additive tables may be published.
 * A table is given as cells (counts of people) and lines: a line says
 * "these parts add up to that total" (a township's row, a column over the
 * townships, a count and its complement).  A cell may sit in several lines,
 * so linked tables (the migrations of the direction table are the
 * denominator of the submission rate) share one cell and are protected
 * together.
 *
 * The rule (docs/publish.md §3):
 *  1. primary: every cell counting fewer than the threshold (5) people,
 *     zero included, is suppressed;
 *  2. complementary: while some line has exactly one suppressed cell, the
 *     smallest published cell of that line is suppressed too;
 *  3. exact check: a suppressed cell whose value still follows from the
 *     published cells by any combination of the lines' equations (linear
 *     algebra over the suppressed cells, not only one subtraction) gets the
 *     smallest published cell of one of its lines suppressed, and 2 runs
 *     again, until no suppressed cell can be recovered.
 *
 * Pure code, no I/O: `popsync publish` (publish.c) and the unit test
 * tests/unit/test_client_suppress.c call it.
 */
#ifndef PS_SUPPRESS_H
#define PS_SUPPRESS_H

#include <stddef.h>
#include <stdint.h>

#define PS_SDC_SHOWN 0     /**< published */
#define PS_SDC_PRIMARY 1   /**< fewer than the threshold: shown as "<5" */
#define PS_SDC_SECONDARY 2 /**< hidden so that a primary cell cannot be recovered */

typedef struct ps_sdc {
    size_t ncells, cap_cells;
    int64_t *value;
    uint8_t *state; /**< PS_SDC_* after ps_sdc_run */
    size_t nlines, cap_lines;
    size_t *line_off; /**< line i: members line_mem[line_off[i] .. line_off[i+1]); the first is the total */
    size_t nmem, cap_mem;
    size_t *line_mem;
} ps_sdc_t;

void ps_sdc_init(ps_sdc_t *t);
void ps_sdc_free(ps_sdc_t *t);
/** Adds a cell holding value; its index into *idx.  PS_OK or PS_ENOMEM. */
int ps_sdc_cell(ps_sdc_t *t, int64_t value, size_t *idx);
/**
 * Adds the line total = parts[0] + ... + parts[n-1] (cell indexes).
 * PS_EINVAL when an index is out of range or n is 0; PS_OK or PS_ENOMEM.
 */
int ps_sdc_line(ps_sdc_t *t, size_t total, const size_t *parts, size_t n);
/**
 * Decides every cell's state with the rule above for threshold (5).
 * PS_OK, PS_ENOMEM.
 */
int ps_sdc_run(ps_sdc_t *t, int64_t threshold);
/**
 * 1 when the value of suppressed cell idx follows exactly from the
 * published cells and the lines (what a reader could work out), 0 when it
 * does not, negative (PS_ENOMEM) on failure.  Used by ps_sdc_run and by
 * the tests as an independent audit.
 */
int ps_sdc_recoverable(const ps_sdc_t *t, size_t idx);
/** How many cells are suppressed (primary + secondary). */
size_t ps_sdc_count_suppressed(const ps_sdc_t *t);

#endif
