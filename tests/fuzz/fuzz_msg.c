/* fuzz_msg.c - libFuzzer target: every message body the server decodes.
 *
 * The first byte picks the message type among those ps_sync_dispatch
 * accepts (plus the ones the client decodes, from byte values past them);
 * the rest is the frame body.  It is unpacked under the per-frame budget
 * exactly as the server does (ps_msg_unpack), packed again, unpacked again
 * and freed: the budget must hold (no allocation past PS_MSG_BUDGET), and a
 * message that unpacked once must pack and unpack to the same bytes.
 */
#include "err.h"
#include "frame.h"
#include "msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The server's types first (server/sync.c), then the replies clients decode. */
static const uint8_t types[] = {
    PS_MSG_HELLO,        PS_MSG_PUSH,          PS_MSG_PULL,
    PS_MSG_PING,         PS_MSG_ORGUNITS_REQUEST, PS_MSG_CONFLICT_LIST,
    PS_MSG_VERIFY_REQUEST, PS_MSG_VERIFY_BUCKET_REQUEST, PS_MSG_FETCH_REQUEST,
    PS_MSG_QUERY,        PS_MSG_REPORT_REQUEST, PS_MSG_CLOSE_REQUEST,
    PS_MSG_WELCOME,      PS_MSG_PUSH_RESULT,   PS_MSG_PULL_BATCH,
    PS_MSG_ERROR,        PS_MSG_PONG,          PS_MSG_ORGUNITS,
    PS_MSG_CONFLICT_LIST_RESULT, PS_MSG_VERIFY_DIGESTS, PS_MSG_VERIFY_BUCKET_LIST,
    PS_MSG_QUERY_RESULT, PS_MSG_REPORT_RESULT, PS_MSG_CLOSE_RESULT,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ProtobufCMessage *m = NULL, *m2 = NULL;
    uint8_t type;
    size_t n, n2;
    uint8_t *packed, *packed2;
    int rc;

    if (size < 1)
        return 0;
    type = types[data[0] % sizeof(types)];
    data++;
    size--;
    if (ps_msg_unpack(type, data, size, &m) != PS_OK)
        return 0;
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
