/* ui_district.h - the district's pages of `popsync ui` (issue 18 point 3):
 * dashboard, printable monthly report, quality report, monthly close and
 * node status.  ui_routes.c lists the module; nobody else calls these.
 *
 *   ui_district.c       the module's route table, the dashboard and the
 *                       monthly report data, and Chart.js from the system;
 *   ui_district_close.c the monthly close, the quality report and the
 *                       node status (the server's answers, online).
 * The pages are web/district*.html with web/district.js and district.css.
 */
#ifndef PS_UI_DISTRICT_H
#define PS_UI_DISTRICT_H

#include "link.h"
#include "rq.h"
#include "ui.h"

extern const ps_ui_module_t ps_ui_district_module;

/* ui_district_close.c */
int ps_ui_district_close_get(ps_ui_req_t *rq);
int ps_ui_district_close_post(ps_ui_req_t *rq);
int ps_ui_district_quality(ps_ui_req_t *rq);
int ps_ui_district_nodes(ps_ui_req_t *rq);

/* ui_district.c, shared with ui_district_close.c */
/** One link with the server (no push, no pull) carrying what ask asks;
 *  replies 502 with the reason, 409 with the server's refusal, 504 when it
 *  did not answer in time or is held as silent (ui_reach.h: not asked), and
 *  returns nonzero, when there is no answer. */
int ps_ui_district_session(ps_ui_req_t *rq, ps_link_ask_fn ask, void *arg);
/** The township codes of the cache's tree (depth 1), into a new array. */
size_t ps_ui_district_townships(ps_ui_req_t *rq, char (**codes)[16]);
/** The township (depth-1 ancestor, or the unit itself) of unit, or "". */
void ps_ui_district_township_of(ps_ui_req_t *rq, const char *unit, char out[16]);
/** The name of unit code from the cache's tree ("" when unknown). */
void ps_ui_district_unit_name(ps_ui_req_t *rq, const char *code, char *out, size_t len);

#endif
