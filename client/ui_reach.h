/* ui_reach.h - whether the district server answered `popsync ui` lately.
 *
 * Owns: the memory of the server's silence (docs/ui.md §1, "When the
 * district server is slow or silent").  Once a page's question timed out
 * or could not connect, the pages that ask the server answer at once from
 * what the cache holds, without asking, until the cache's ui_retry_after
 * (default 60 s) has passed since the last failed question; each such
 * answer says since when the server has not answered.  Try again (POST
 * /api/server/retry, this module's route) ends it at once, and so does any
 * answer of the server: a page's, or a sync that reached it.  A server that
 * answered with a refusal has answered.
 *
 * Callers: ui.c (made and freed with the server; ps_ui_reach_of), the
 * pages that ask the server (ui_district.c, ui_district_close.c through
 * ps_ui_district_session, ui_town.c's versions), the sync worker
 * (ui_town_sync.c, from its own thread: every call takes the module's
 * mutex).
 */
#ifndef PS_UI_REACH_H
#define PS_UI_REACH_H

#include "ui.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ps_ui_reach ps_ui_reach_t;

/** Made by ps_ui_start, freed by ps_ui_stop (ui.c). */
ps_ui_reach_t *ps_ui_reach_new(void);
void ps_ui_reach_free(ps_ui_reach_t *r);
/** The server's one (ui.c). */
ps_ui_reach_t *ps_ui_reach_of(ps_ui_t *ui);

/** 1 when the page must not ask the server now (it did not answer less
 *  than ui_retry_after ago), else 0. */
int ps_ui_reach_held(const ps_ui_req_t *rq);
/** After a page asked: rc of ps_link_once_within (or ps_history_ask) and
 *  whether the server's Welcome came.  PS_ETIMEDOUT, or a failure before
 *  any Welcome, starts (or prolongs) the hold; any other outcome is an
 *  answer and ends it. */
void ps_ui_reach_outcome(const ps_ui_req_t *rq, int rc, int reached);
/** The server answered outside a page (a sync that completed): the hold
 *  and the memory of the silence end. */
void ps_ui_reach_answered(ps_ui_t *ui);
/** For a held page, in the user's language (times in the district's zone,
 *  as the "as of the last sync" stamps; the caller holds the cache lock):
 *  "The district server has not answered since HH:MM:SS; this page does not
 *  ask it again before HH:MM:SS" after a timeout, "The server cannot be
 *  reached (since HH:MM:SS); ..." after a failed connection. */
void ps_ui_reach_note(const ps_ui_req_t *rq, char *out, size_t len);
/** Adds to o (and returns it) what the page shows of the server's silence:
 *  held (1: not asked this time) and, while the server is remembered as
 *  silent, since_ms (when it first did not answer, ms since the epoch) and
 *  retry_ms (when the pages ask it again). */
json_t *ps_ui_reach_json(const ps_ui_req_t *rq, json_t *o, int held);

extern const ps_ui_module_t ps_ui_reach_module;

#endif
