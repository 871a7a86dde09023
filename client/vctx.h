/* vctx.h - the validation context of a client cache.
 *
 * Owns: building a ps_validate_ctx_t for records entered on this device:
 * the org-unit tree the cache holds, the certificate's scope (none for an
 * admin), and reference checks against the local cache plus ids accepted
 * earlier in the same batch (an import or a generator run).  Used by add,
 * edit, import (cmd_io.c), generate (gen.c) and the test drivers.
 */
#ifndef PS_VCTX_H
#define PS_VCTX_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "validate.h"

typedef struct ps_client_vctx {
    ps_validate_ctx_t ctx;   /**< pass &ctx to ps_validate_record */
    ps_cache_t *cache;       /**< borrowed */
    ps_orgunits_t *units;    /**< owned; NULL when the cache has no tree */
    ps_peer_t peer;          /**< the cache's identity, for the access policy */
    /* ids accepted in this batch with their kinds (byte 16): an
     * open-addressing hash set, cap a power of two, at most half full */
    uint8_t (*batch_ids)[17];
    unsigned char *used;
    size_t nbatch, capbatch;
} ps_client_vctx_t;

/** Builds the context for cache c (which must outlive it).  For an edit,
 *  set v->ctx.current to the version being edited afterwards. */
/** Today (YYYYMMDD) in the district's time zone as this cache knows it
 *  (Welcome.timezone; Asia/Shanghai before the first sync); 0 (the local
 *  date) when this device's tz database lacks the zone.  Reads the zone
 *  through TZ (tz.h): call it only while the process has one thread, as
 *  the CLI and the test tools do (ps_client_vctx_init calls it). */
uint32_t ps_client_today(ps_cache_t *c);
int ps_client_vctx_init(ps_client_vctx_t *v, ps_cache_t *c);
void ps_client_vctx_free(ps_client_vctx_t *v);
/** The org-unit tree cache c holds (caller frees it), or NULL when it has
 *  none or cannot parse it: the access policy's subtree rule then follows
 *  the codes (common/policy.h). */
ps_orgunits_t *ps_client_orgunits(ps_cache_t *c);
/** Remembers a record accepted in the current batch, so later ones may
 *  refer to it.  PS_OK or PS_ENOMEM. */
int ps_client_vctx_note(ps_client_vctx_t *v, const uint8_t id[16], int kind);
/** Forgets the ids noted so far: a new batch starts (the generator's
 *  household groups, whose records refer only to each other). */
void ps_client_vctx_forget(ps_client_vctx_t *v);
/** Whether id was noted in this batch (any kind): an import refuses an id
 *  that two of its rows carry. */
int ps_client_vctx_noted(const ps_client_vctx_t *v, const uint8_t id[16]);

#endif
