/* fuzz_validate.c - libFuzzer target: record validation.
 *
 * The input is a packed Record (as a Push carries it).  It is unpacked under
 * the frame budget as the server unpacks records, then validated the ways
 * the server and the client do: format only (no context), with the demo
 * org-unit tree and a township scope, as an edit of itself, and as an edit
 * of a fixed record; a record is also shown as JSON and as a table, as the
 * client does with what it holds.  Nothing may crash, leak or read out of
 * bounds, and the error count must match the list.
 */
#include "err.h"
#include "msg.h"
#include "orgunit.h"
#include "record_fmt.h"
#include "policy.h"
#include "validate.h"

#include "records.pb-c.h"

#include <jansson.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PS_DEMO_ORGUNITS
#error "PS_DEMO_ORGUNITS must name demo/orgunits.csv"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ps_orgunits_t *g_units;

/* References exist for ids whose first byte is even: both branches run. */
/* A township-role sender of unit (one at a time: a static peer). */
static const ps_peer_t *township(const char *unit)
{
    static ps_peer_t p;
    ps_policy_peer(&p, "township", unit);
    return &p;
}

static int ref_exists(void *arg, const uint8_t id[16], int kind)
{
    (void)arg;
    (void)kind;
    return (id[0] & 1) == 0;
}

static void check(const Popsync__Record *r, const ps_validate_ctx_t *ctx)
{
    ps_verrs_t v;
    size_t n;
    memset(&v, 0, sizeof(v));
    n = ps_validate_record(r, ctx, &v);
    if (n != v.n)
        abort();
    for (size_t i = 0; i < v.n && i < PS_VERR_MAX; i++)
        if (!memchr(v.e[i].field, 0, sizeof(v.e[i].field)) || !memchr(v.e[i].reason, 0, sizeof(v.e[i].reason)))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ProtobufCMessage *m = NULL;
    Popsync__Record *r;
    ps_validate_ctx_t ctx;
    const ps_orgunit_t *town;

    if (!g_units) {
        char err[256];
        if (ps_orgunits_load(PS_DEMO_ORGUNITS, &g_units, err, sizeof(err)) != PS_OK) {
            fprintf(stderr, "fuzz_validate: %s: %s\n", PS_DEMO_ORGUNITS, err);
            abort();
        }
    }
    if (ps_msg_unpack_desc(&popsync__record__descriptor, data, size, &m) != PS_OK)
        return 0;
    r = (Popsync__Record *)m;

    check(r, NULL);
    memset(&ctx, 0, sizeof(ctx));
    ctx.units = g_units;
    ctx.today = 20260115;
    ctx.ref_exists = ref_exists;
    check(r, &ctx);                     /* an admin's new record */
    town = ps_orgunits_count(g_units) > 1 ? ps_orgunits_at(g_units, 1) : NULL;
    ctx.peer = town ? township(town->code) : NULL;
    check(r, &ctx);                     /* a township's new record */
    ctx.current = r;
    check(r, &ctx);                     /* an edit that changes nothing */
    ctx.units = NULL;
    ctx.today = 0;
    check(r, &ctx);                     /* codes by format only, today's date */

    {
        json_t *j = ps_record_to_json(r);
        if (j) {
            char *s = json_dumps(j, JSON_COMPACT);
            free(s);
            json_decref(j);
        }
    }
    {
        FILE *devnull = fopen("/dev/null", "w");
        if (devnull) {
            Popsync__Record *const recs[1] = {r};
            ps_record_print_table(devnull, recs, 1, NULL, 0);
            fclose(devnull);
        }
    }
    ps_msg_free(m);
    return 0;
}
