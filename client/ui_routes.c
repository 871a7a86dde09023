/* ui_routes.c - the modules of `popsync ui` (ui.h): each adds its routes
 * and navigation entries.  A new page module adds one line here. */
#include "ui.h"
#include "ui_district.h"
#include "ui_reach.h"
#include "ui_town.h"

#include <stddef.h>

const ps_ui_module_t *const ps_ui_modules[] = {
    &ps_ui_core_module,
    &ps_ui_reach_module,
    &ps_ui_town_module,
    &ps_ui_town_sync_module,
    &ps_ui_town_io_module,
    &ps_ui_district_module,
    NULL,
};
