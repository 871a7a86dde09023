/* report.h - `popsync query` and `popsync report`: consolidated queries,
 * the district's statistical reports and the monthly close (issue 6).
 *
 * Owns: the client side of Query/QueryResult, ReportRequest/ReportResult
 * and CloseRequest/CloseResult (proto/wire.proto): building the requests
 * from the command line, and turning the answers into tables (Chinese or
 * English labels), CSV and JSON.  The server computes the raw counts; the
 * rates (sex ratio at birth, submission and feedback rates, on-time shares,
 * follow-up rate) and the amounts in yuan are computed here, from those
 * counts, with the definitions of docs/queries.md.
 *
 * The commands themselves (ps_cmd_query, ps_cmd_report) are declared in
 * cli.h with the other subcommands; what is here is the pure part, kept
 * apart so it can be tested without a server.
 */
#ifndef PS_REPORT_H
#define PS_REPORT_H

#include <stddef.h>
#include <stdint.h>

/** Output formats of query and report. */
#define PS_REPORT_TABLE 0
#define PS_REPORT_CSV 1
#define PS_REPORT_JSON 2
#define PS_REPORT_XLSX 3 /**< report monthly|quality only, with --out FILE.xlsx */

/** PS_REPORT_* from "table", "csv" or "json"; -1 when unknown. */
int ps_report_format_from_name(const char *name);

/**
 * Label language: 1 for Chinese, 0 for English.  lang is "zh" or "en"
 * (--lang); NULL takes it from the environment: Chinese when LC_ALL (or,
 * when that is unset or empty, LANG) starts with "zh".  -1 for any other
 * lang.
 */
int ps_report_lang_zh(const char *lang);

/**
 * num / den * scale into *out; returns 0 (and leaves *out alone) when den is
 * 0 or less: the rate is undefined and prints as "—".
 */
int ps_report_rate(int64_t num, int64_t den, double scale, double *out);

/** A rate as text: "87.5%" (pct) or "105.3", one decimal; "—" when den <= 0. */
const char *ps_report_rate_text(int64_t num, int64_t den, double scale, int pct, char *buf, size_t len);

/** An amount in fen as yuan with two decimals ("1234.50", "-0.05"). */
const char *ps_report_yuan_text(int64_t fen, char *buf, size_t len);

/** True when s is a month "YYYY-MM" (01..12). */
int ps_report_month_valid(const char *s);

typedef struct Popsync__ReportRow Popsync__ReportRow;
/**
 * The rate named key (sex_ratio_at_birth, submission_rate_pct,
 * feedback_rate_pct, submitted_on_time_pct, feedback_on_time_pct,
 * followup_rate_pct: docs/queries.md) of one report row, from its counts,
 * into *out.  0 when the rate is undefined (no denominator) or key unknown.
 */
int ps_report_row_rate(const Popsync__ReportRow *row, const char *key, double *out);

typedef struct Popsync__ReportResult Popsync__ReportResult;
typedef struct ps_orgunits ps_orgunits_t;
/**
 * Prints a monthly report (the rows, then the total row, as the server
 * sends them) in fmt: the table of two panels (Chinese labels when zh),
 * CSV or JSON on stdout, or a workbook at xlsx_path (PS_REPORT_XLSX).  tree
 * (may be NULL) names rows that carry no name.  The district's `popsync
 * report monthly` and the province's `popsync-warehouse report monthly`
 * both print through it, so the two look alike.  PS_OK, or PS_EIO/PS_ENOMEM
 * from the workbook.
 */
int ps_report_monthly_out(const Popsync__ReportResult *res, const ps_orgunits_t *tree, int fmt, int zh,
                          const char *xlsx_path);

#endif
