/* ui_town.h - shared by the township page modules (ui_town*.c) of
 * `popsync ui`; nobody else calls these. */
#ifndef PS_UI_TOWN_H
#define PS_UI_TOWN_H

#include "ui.h"

#include "records.pb-c.h"

/** A record as JSON for the pages (fields, kind, Chinese labels of values). */
json_t *ps_ui_record_json(ps_ui_req_t *rq, const Popsync__Record *r);

#endif
