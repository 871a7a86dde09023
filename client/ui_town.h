/* ui_town.h - shared by the township page modules (ui_town*.c) of
 * `popsync ui`; nobody else calls these.  All run with the cache lock held
 * (routes with cache = 1), except where said. */
#ifndef PS_UI_TOWN_H
#define PS_UI_TOWN_H

#include "ui.h"

#include "records.pb-c.h"

/** A record as JSON for the pages (fields, kind, labels: Chinese values
 *  and the names of the persons its references name). */
json_t *ps_ui_record_json(ps_ui_req_t *rq, const Popsync__Record *r);
/** {state: synced|pending|refused|conflict, reasons?, conflict_id?} of
 *  record id (r: its local version, or NULL). */
json_t *ps_ui_record_state(ps_ui_req_t *rq, const uint8_t *id, const Popsync__Record *r);

/** The changes from current to r that this cache, as the other place of
 *  a migration, may not make, each next to its field in errs ({field,
 *  reason, value}: the server's rule and wording); nothing when this cache
 *  is not the record's other place.  The form's save and the conflict
 *  page's resolution both check with it. */
void ps_ui_other_place_errors(ps_ui_req_t *rq, const Popsync__Record *r, const Popsync__Record *current, json_t *errs);

/* ui_town_links.c */
/** A person's linked records: {household, household_members, births,
 *  migrations, benefits, visits, households_headed}, or {} for other kinds. */
json_t *ps_ui_linked_json(ps_ui_req_t *rq, const Popsync__Record *r);

/* ui_town_sync.c */
/** 1 with the conflict's id in cid when record id has an open conflict
 *  in the list of the last sync. */
int ps_ui_sync_conflict_of(ps_ui_t *ui, const uint8_t *id, char cid[37]);
extern const ps_ui_module_t ps_ui_town_sync_module;
/* ui_town_io.c */
extern const ps_ui_module_t ps_ui_town_io_module;

#endif
