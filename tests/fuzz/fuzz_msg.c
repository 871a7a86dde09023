/* fuzz_msg.c - libFuzzer target: every message body the server decodes.
 *
 * The first byte picks the message type: its value modulo the number of
 * rows of the message table (common/msgtab.def), in type order: 0 -> Hello,
 * 1 -> Welcome, ...;
 * the rest is the frame body.  It is unpacked under the per-frame budget
 * exactly as the server does (ps_msg_unpack), packed again, unpacked again
 * and freed: the budget must hold (no allocation past PS_MSG_BUDGET), and a
 * message that unpacked once must pack and unpack to the same bytes.  A
 * PullBatch that unpacked must have its records found by ps_pull_record_spans
 * (common/pullspan.c, which the cache seals as received), each span decoding
 * to the record the decoder made.
 */
#include "err.h"
#include "frame.h"
#include "msg.h"
#include "msgtab.h"
#include "pullspan.h"
#include "wire.pb-c.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every row of the message table: the requests ps_sync_dispatch accepts and
 * the replies clients decode, so a type added later is fuzzed without
 * editing this file. */

/* Packs m into a new buffer (*n bytes); aborts when out of memory. */
static uint8_t *pack_new(const ProtobufCMessage *m, size_t *n)
{
    uint8_t *p;
    *n = protobuf_c_message_get_packed_size(m);
    if (!(p = malloc(*n ? *n : 1)) || protobuf_c_message_pack(m, p) != *n)
        abort();
    return p;
}

/* Every record span of a PullBatch decodes to the entry's record. */
static void check_spans(const Popsync__PullBatch *b, const uint8_t *body, size_t len)
{
    ps_span_t *sp = calloc(b->n_entries ? b->n_entries : 1, sizeof(*sp));
    if (!sp)
        abort();
    if (ps_pull_record_spans(body, len, b->n_entries, sp) != PS_OK)
        abort();
    for (size_t i = 0; i < b->n_entries; i++) {
        Popsync__Record *r;
        uint8_t *want, *got;
        size_t nw, ng;
        if (!sp[i].p)
            continue; /* no record, or one in pieces: the cache packs it */
        if (!b->entries[i]->record || !(r = popsync__record__unpack(NULL, sp[i].n, sp[i].p)))
            abort();
        want = pack_new(&b->entries[i]->record->base, &nw);
        got = pack_new(&r->base, &ng);
        if (nw != ng || memcmp(want, got, nw) != 0)
            abort();
        free(want);
        free(got);
        popsync__record__free_unpacked(r, NULL);
    }
    free(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ProtobufCMessage *m = NULL, *m2 = NULL;
    size_t ntypes;
    const ps_msg_info_t *table = ps_msg_table(&ntypes);
    uint8_t type;
    size_t n, n2;
    uint8_t *packed, *packed2;
    int rc;

    if (size < 1)
        return 0;
    type = table[data[0] % ntypes].type;
    data++;
    size--;
    if (ps_msg_unpack(type, data, size, &m) != PS_OK)
        return 0;
    if (type == PS_MSG_PULL_BATCH)
        check_spans((const Popsync__PullBatch *)m, data, size);
    n = protobuf_c_message_get_packed_size(m);
    packed = malloc(n ? n : 1);
    if (!packed)
        abort();
    if (protobuf_c_message_pack(m, packed) != n)
        abort();
    /* What we packed must read back.  Its budget may be smaller than the
     * input's (fields at their default values are not packed again), so
     * running out of budget is allowed; being malformed is not. */
    rc = ps_msg_unpack(type, packed, n, &m2);
    if (rc == PS_ENOMEM) {
        free(packed);
        ps_msg_free(m);
        return 0;
    }
    if (rc != PS_OK)
        abort();
    n2 = protobuf_c_message_get_packed_size(m2);
    packed2 = malloc(n2 ? n2 : 1);
    if (!packed2)
        abort();
    if (protobuf_c_message_pack(m2, packed2) != n2 || n2 != n || memcmp(packed, packed2, n) != 0)
        abort();
    free(packed2);
    free(packed);
    ps_msg_free(m2);
    ps_msg_free(m);
    return 0;
}
