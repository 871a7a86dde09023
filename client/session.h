/* session.h - one connection of the client to popsyncd, and its requests.
 *
 * Owns: connect, TLS (through common/stream.c), Hello/Welcome, and
 * request/response by request id with several requests in flight: a table
 * of outstanding requests, each with the callback that receives its answer.
 * Every frame from the server is matched to its request by request id and
 * checked against the message table (common/msgtab.def: the reply type of
 * each request); the frames of a multi-frame answer (QueryResult pages) go
 * to the same request until its callback says the answer is complete.  A
 * frame for no outstanding request, a reply of the wrong type, an Error or a
 * malformed frame closes the session with an error, and a session that
 * fails (that, a cut connection, a timeout) fails every outstanding request
 * exactly once.
 *
 * It knows nothing of the cache: what a Welcome means for a cache, and the
 * TLS session kept for resumption, are client/link.c's; what each request
 * means is its request module's (sync.c, verify.c, rq_*.c).
 *
 * Callers: client/link.c (a session for a cache), the request modules, and
 * tests/unit/test_client_session.c, which drives a session through an
 * injected transport (ps_session_new) without TLS or a socket.  Everything
 * runs on the thread of the session's loop.
 */
#ifndef PS_SESSION_H
#define PS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "buf.h"
#include "wire.pb-c.h"

typedef struct ps_session ps_session_t;

/** The window a session asks for in its Hello (docs/protocol.md §7.1):
 *  requests in flight at once, and their frame bytes.  The test hook
 *  POPSYNC_TEST_WINDOW (test builds) replaces the count. */
#define PS_SESSION_WINDOW 8u
#define PS_SESSION_WINDOW_BYTES (4u << 20)

/** A reply callback's answer besides PS_OK (answer complete) and errors. */
#define PS_SESSION_MORE 1 /**< more frames of this answer follow */

/**
 * Receives the answer to one request.  status PS_OK: *m is one frame of the
 * answer (the request's reply type), valid during the call; the callback
 * may keep it by taking *m and setting it to NULL (free it with
 * ps_msg_free).  Return PS_OK when the answer is complete, PS_SESSION_MORE
 * when more frames of it follow, or an error, which fails the session
 * (call ps_session_fail first to say why).  status < 0: the session failed
 * before the answer came; m is NULL and the return value is ignored.  Either
 * way a request's callback is called until it completes or once on failure,
 * never after; a callback that fails the session (or returns an error) is
 * not called again for its request, so it cleans up before it returns.  A
 * callback may make new requests.
 */
typedef int (*ps_reply_fn)(ps_session_t *s, int status, ProtobufCMessage **m, void *arg);

/** Called once the session is ready (after Welcome), or with an error. */
typedef void (*ps_ready_fn)(ps_session_t *s, int status, void *arg);

/** What a session needs to say Hello and what it does with the Welcome. */
typedef struct ps_session_cfg {
    const char *server;       /**< HOST:PORT, also named in error texts */
    uint8_t node[16];         /**< Hello.node */
    uint64_t cursor;          /**< Hello.cursor */
    int no_compression;       /**< do not offer zstd (also: POPSYNC_NO_COMPRESSION=1) */
    uint64_t timeout_ms;      /**< give up when the server is silent this long (0: 60000) */
    uint32_t window;          /**< Hello.window: requests in flight we ask for (0: PS_SESSION_WINDOW) */
    uint32_t window_bytes;    /**< Hello.window_bytes (0: PS_SESSION_WINDOW_BYTES) */
    /** The Welcome, before any queued request is sent.  Return PS_OK (ready
     *  now), PS_SESSION_MORE (the caller calls ps_session_ready later, after
     *  requests sent with PS_REQ_EARLY), or an error after ps_session_fail.
     *  May be NULL. */
    int (*on_welcome)(ps_session_t *s, const Popsync__Welcome *w, void *arg);
    void *arg;
} ps_session_cfg_t;

/** The byte stream under a session (TLS for popsyncd; a fake in tests). */
typedef struct ps_session_io {
    /** Queue len bytes for the peer.  PS_OK or an error. */
    int (*write)(void *io, const uint8_t *p, size_t len);
    /** Everything is done: flush and close gracefully. */
    void (*shutdown)(void *io);
    /** Close now (after a failure). */
    void (*close)(void *io);
    /** A whole frame arrived: restart the idle deadline.  May be NULL. */
    void (*touch)(void *io);
} ps_session_io_t;

/* --- a session over TLS, on a libuv loop --- */

/** TLS material of ps_session_connect. */
typedef struct ps_session_tls {
    const char *server_name;  /**< the name the server's certificate must carry */
    const char *ca, *cert, *key; /**< PEM files */
    const uint8_t *resume;    /**< a saved TLS session to resume (NULL: none) */
    size_t resume_len;
    /** The session after the handshake, to save for the next connection. */
    void (*save)(const uint8_t *p, size_t len, void *arg);
    void *save_arg;
} ps_session_tls_t;

/**
 * Resolves cfg->server, connects and starts the TLS handshake on loop
 * (NULL: a private loop that ps_session_run turns).  Hello goes out once the
 * handshake is done.  Returns PS_OK with *out set, or an error with a reason
 * in err (nothing to free).  cfg and tls are copied (not the files' names:
 * they must outlive the handshake).
 */
int ps_session_connect(ps_session_t **out, uv_loop_t *loop, const ps_session_cfg_t *cfg,
                       const ps_session_tls_t *tls, char *err, size_t errlen);

/* --- a session over any transport (tests) --- */

/** A session over io (its pointer io_arg).  Nothing is sent until
 *  ps_session_start. */
int ps_session_new(ps_session_t **out, const ps_session_cfg_t *cfg, const ps_session_io_t *io, void *io_arg);
/** The transport is up: sends Hello. */
void ps_session_start(ps_session_t *s);
/** Parses every whole frame at the head of in and consumes it. */
void ps_session_input(ps_session_t *s, ps_buf_t *in);
/** The transport failed (PS_ECLOSED, PS_ETIMEDOUT, PS_EIO, ...): fails the
 *  session with text (unless it had finished). */
void ps_session_io_failed(ps_session_t *s, int err, const char *text);

/* --- requests --- */

#define PS_REQ_EARLY 0x1u /**< send before the session is ready (from on_welcome) */

/**
 * Sends a request of type with body m (copied into a frame at once); its
 * answer goes to cb.  Before the session is ready it waits in the table and
 * goes out, in order, after the Welcome.  Returns the request id (> 0), or
 * an error when the session has failed or m cannot be packed (cb is then
 * never called).
 */
int64_t ps_session_request(ps_session_t *s, uint8_t type, const ProtobufCMessage *m, unsigned flags,
                           ps_reply_fn cb, void *arg);
/** Asks type with body m and keeps its one-frame answer in *reply (freed by
 *  the caller with ps_msg_free; NULL until it came).  For requests whose
 *  answer is a single frame (reports, conflicts, node status, close). */
int ps_session_call(ps_session_t *s, uint8_t type, const ProtobufCMessage *m, ProtobufCMessage **reply);
/** Requests not yet completed (sent or waiting to be sent). */
size_t ps_session_outstanding(const ps_session_t *s);
/** Calls fn once the session is ready (at once when it is), or with the
 *  error when it fails first. */
int ps_session_when_ready(ps_session_t *s, ps_ready_fn fn, void *arg);
/** on_welcome returned PS_SESSION_MORE: the session is ready now. */
void ps_session_ready(ps_session_t *s);
/** Inside an answer's callback: the answer's plain body as received (the
 *  packed message), so the cache can keep records as sent.  PS_ENOTFOUND
 *  outside a callback. */
int ps_session_body(const ps_session_t *s, const uint8_t **body, size_t *len);
/** During an answer's callback: how many bytes already received follow its
 *  frame (the next answers, or part of them); 0 otherwise. */
size_t ps_session_input_waiting(const ps_session_t *s);

/** The server's Welcome (NULL before it came). */
const Popsync__Welcome *ps_session_welcome(const ps_session_t *s);
/** The window in force once welcomed: the requests the server takes in
 *  flight at once (1 from a server without Welcome.window, or before the
 *  Welcome), and in *bytes (may be NULL) their frame bytes at most. */
uint32_t ps_session_window(const ps_session_t *s, uint32_t *bytes);
/** Fails the session: the first failure's code and text are kept, the
 *  transport is closed and every outstanding request fails. */
void ps_session_fail(ps_session_t *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** PS_OK, or the session's failure. */
int ps_session_status(const ps_session_t *s);
/** The text of the session's failure ("" when none). */
const char *ps_session_error(const ps_session_t *s);
/** The server this session talks to (HOST:PORT). */
const char *ps_session_server(const ps_session_t *s);

/** Tests: drop the connection after this many frames received (by
 *  default the POPSYNC_TEST_CUT_AFTER_FRAMES hook of common/testhooks.h,
 *  read in test builds only). */
void ps_session_test_cut(ps_session_t *s, uint64_t frames);

/* --- running --- */

/**
 * The blocking convenience of the CLI: turns the loop until every request
 * is answered (and, first, the session is ready), or the session fails.
 * Returns PS_OK or the failure (text: ps_session_error).  A connection
 * that closes with requests outstanding fails with "closed before the sync
 * completed".
 */
int ps_session_run(ps_session_t *s);
/**
 * Ends the session: with PS_OK, a graceful shutdown (close_notify, FIN);
 * otherwise a close.  A private loop is turned until the connection is
 * closed; on a caller's loop the session frees itself once it is.  bytes
 * in and out (ciphertext; may be NULL) are filled first.  Requests still
 * outstanding fail with PS_ECLOSED.  Not from inside one of the session's
 * callbacks: the session is gone when it returns.
 */
void ps_session_close(ps_session_t *s, uint64_t *bytes_in, uint64_t *bytes_out);

#endif
