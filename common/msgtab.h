/* msgtab.h - the message table: every message type and what is known of it.
 *
 * Owns: the PS_MSG_* type numbers and one row per type (name, protobuf-c
 * descriptor, reply type, direction, whether Hello
 * must come first, where the server runs it), all made from msgtab.def, the
 * only list of message types (as Redis keeps its command table).  Pure and
 * constant: any thread may call it.
 *
 * Readers: msg.c (descriptor for a frame type), the server's dispatcher
 * (server/sync.c: accepted types, Hello first, where it runs), the
 * client (client/session.c: the reply expected to a request), the fuzzers and
 * corpus generator, the auth-matrix tool, and tests/tools/ps_msgtab, which
 * prints the table of docs/protocol.md §5 (checked by the ctest docs.msgtab).
 *
 * This header includes no protobuf header: the descriptor is declared
 * opaque, and only msgtab.c and msg.c see wire.pb-c.h.
 */
#ifndef PS_MSGTAB_H
#define PS_MSGTAB_H

#include <stddef.h>
#include <stdint.h>

/** Message types.  Values are part of the wire format (msgtab.def). */
enum ps_msg_type {
    PS_MSG_NONE = 0, /**< no type: the reply of a reply */
#define PS_MSG(type, ID, name, desc, reply, dir, hello, run) PS_MSG_##ID = type,
#include "msgtab.def"
#undef PS_MSG
};

/** The highest type number in the table (types run 1..PS_MSG_MAX_KNOWN). */
enum {
    PS_MSG_MAX_KNOWN = 0
#define PS_MSG(type, ID, name, desc, reply, dir, hello, run) +1
#include "msgtab.def"
#undef PS_MSG
};

/** Who sends a message. */
typedef enum ps_msg_dir {
    PS_MSG_DIR_C2S = 1, /**< client -> server: a request the server accepts */
    PS_MSG_DIR_S2C = 2  /**< server -> client: a reply; the server refuses it */
} ps_msg_dir_t;

/** Where the server runs a request. */
typedef enum ps_msg_run {
    PS_MSG_RUN_NONE = 0,  /**< not run by the server (server -> client) */
    PS_MSG_RUN_LOOP,      /**< on the event loop thread, answered at once */
    PS_MSG_RUN_POOL,      /**< the read pool (libuv worker threads) */
    PS_MSG_RUN_COMMIT     /**< the group-commit writer (server/commit.c) */
} ps_msg_run_t;

struct ProtobufCMessageDescriptor;

/** One row of the table. */
typedef struct ps_msg_info {
    uint8_t type;       /**< PS_MSG_* */
    const char *name;   /**< "Hello" */
    const struct ProtobufCMessageDescriptor *desc; /**< the body's message */
    uint8_t reply;      /**< the answer to this request, PS_MSG_NONE for replies */
    ps_msg_dir_t dir;
    int needs_hello;    /**< 1: refused (fatally) before Hello */
    ps_msg_run_t run;
} ps_msg_info_t;

/** The row of a type, or NULL for a number the table does not know. */
const ps_msg_info_t *ps_msg_info(uint8_t type);
/** The whole table, in type order; *n is set to its length. */
const ps_msg_info_t *ps_msg_table(size_t *n);
/** Returns a static name for a message type ("Hello"), or "unknown". */
const char *ps_frame_type_name(uint8_t type);

/**
 * Whether a peer of this role (ps_role_t) may send this type at all, as the
 * access policy decides (common/policy.h, ps_policy_may_send).  Refuses
 * unknown types and server -> client types.
 * Which records or units a permitted message may touch is decided later,
 * by whoever runs it.
 */
int ps_msg_role_may_send(uint8_t type, int role);

/** The roles that may send a type (ps_msg_role_may_send), as text: "any",
 *  "admin, township", "nobody". */
void ps_msg_roles_text(uint8_t type, char *out, size_t cap);
/** "client → server" / "server → client" (UTF-8 arrow, as in the docs). */
const char *ps_msg_dir_text(ps_msg_dir_t dir);
/** "loop", "read pool", "commit", or "–" for NONE. */
const char *ps_msg_run_text(ps_msg_run_t run);

#endif
