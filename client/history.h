/* history.h - a record's history of versions, asked of the server.
 *
 * Owns: one HistoryRequest over a one-shot link (docs/protocol.md §6.18)
 * and its answer as JSON, the same for `popsync history --json` and the
 * record page of `popsync ui`:
 *   {"versions": [{"gen", "hlc_ms", "node", "this_device", "deleted",
 *                  "orgunit", "changed", "record", "audited", "time_ms",
 *                  "action", "cert_name", "cert_role", "cert_orgunit"}...],
 *    "earlier", "hidden"}
 * versions oldest first; "changed" the fields that differ from the version
 * before (null when that one was not sent); node the hex cache id and
 * this_device whether it is this cache's.  A cache holds only the latest
 * version of a record, so a history needs the server (docs/ui.md).
 *
 * Callers: cmd_history.c, ui_town.c.
 */
#ifndef PS_HISTORY_H
#define PS_HISTORY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"

/**
 * Asks the server for the versions of record id (16 bytes) into a new
 * *out.  PS_OK, or an error with its reason in err; *reached (may be NULL)
 * tells whether the server answered Hello (0: offline, not reached).  A
 * record the server does not have or this cache may not read gives no
 * versions.  deadline_ms: the whole question's (ps_link_once_within;
 * PS_ETIMEDOUT when over), 0 for the CLI's silence timeout.
 */
int ps_history_ask(ps_cache_t *c, const uint8_t *id, uint64_t deadline_ms, json_t **out, int *reached, char *err,
                   size_t errlen);

#endif
