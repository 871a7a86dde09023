/* stream.h - a TLS connection over a libuv TCP handle.
 *
 * Owns: ps_stream_t, the only glue between libuv and the TLS engine.  It
 * reads ciphertext straight into the engine's input buffer, drives the
 * handshake, decrypts into plain_in for the owner's frame parser, and keeps
 * at most one uv_write of ciphertext in flight (double-buffered: while one
 * buffer is being written the next fills).  Handshake and idle deadlines are
 * a timer embedded here.
 *
 * Lifetime: the owner embeds or allocates the stream, calls ps_stream_init,
 * then accept or connect.  After ps_stream_close the owner must not touch the
 * stream until on_close runs; on_close is the place to free it.  Callbacks
 * are never called after on_close.
 */
#ifndef PS_STREAM_H
#define PS_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "buf.h"
#include "tls.h"

typedef struct ps_stream ps_stream_t;

/** Runs one handshake step elsewhere (the server's handshake threads): it
 *  must call ps_tls_handshake(s->tls) on its thread and then, on the loop
 *  thread, ps_stream_handshake_done(s, rc).  Until then the stream does
 *  not touch the engine.  Returns PS_OK once queued, else an error (the
 *  step then runs on the loop). */
typedef int (*ps_stream_offload_fn)(ps_stream_t *s, void *arg);

/** Callbacks the owner provides.  All run on the loop thread. */
typedef struct ps_stream_cbs {
    /** Handshake finished: status PS_OK (peer verified) or an error. */
    void (*on_handshake)(ps_stream_t *s, int status);
    /** New plaintext was appended to s->plain_in. */
    void (*on_read)(ps_stream_t *s);
    /** The connection failed or the peer closed (PS_ECLOSED, PS_ETIMEDOUT,
     *  PS_ETLS, PS_EIO).  The owner should call ps_stream_close. */
    void (*on_error)(ps_stream_t *s, int err);
    /** Pending output dropped to zero (back-pressure release). May be NULL. */
    void (*on_drain)(ps_stream_t *s);
    /** Both handles are closed: the owner may free the stream now. */
    void (*on_close)(ps_stream_t *s);
} ps_stream_cbs_t;

struct ps_stream {
    uv_tcp_t tcp;          /**< the socket; tcp.data points to the stream */
    ps_tls_t *tls;         /**< engine (owned) */
    ps_buf_t plain_in;     /**< decrypted bytes not yet consumed by the owner */
    void *data;            /**< owner's pointer */
    const ps_stream_cbs_t *cbs;
    uint64_t bytes_in;     /**< ciphertext bytes received */
    uint64_t bytes_out;    /**< ciphertext bytes sent */
    /* private */
    uv_timer_t _timer;
    uv_write_t _wreq;
    uv_connect_t _creq;
    uv_shutdown_t _sreq;
    ps_buf_t _inflight;    /**< ciphertext being written by uv_write */
    uint64_t _handshake_ms;
    uint64_t _idle_ms;
    ps_stream_offload_fn _offload;
    void *_offload_arg;
    uint64_t _quiet_mark;  /**< bytes_in + bytes_out at the last ps_stream_trim_quiet */
    int _handles;          /**< handles still open (tcp, timer) */
    unsigned _established : 1;
    unsigned _reading : 1;
    unsigned _paused : 1;
    unsigned _closing : 1;
    unsigned _close_after_write : 1;
    unsigned _failed : 1;
    unsigned _lingering : 1;
    unsigned _hs_busy : 1;  /* a handshake step runs off the loop: hands off the engine */
    unsigned _trimmed : 1;  /* trimmed since the last byte moved */
};

/**
 * Prepares a stream on loop: initialises the TCP handle and timer.  tls is a
 * fresh engine whose ownership passes to the stream (freed at close).
 */
int ps_stream_init(ps_stream_t *s, uv_loop_t *loop, ps_tls_t *tls, const ps_stream_cbs_t *cbs, void *data);
/** Sets the handshake deadline and the idle deadline (ms; 0 = none). */
void ps_stream_set_timeouts(ps_stream_t *s, uint64_t handshake_ms, uint64_t idle_ms);
/** Handshake steps go to fn (call before accept; NULL: on the loop). */
void ps_stream_set_offload(ps_stream_t *s, ps_stream_offload_fn fn, void *arg);
/** An offloaded handshake step returned rc (loop thread). */
void ps_stream_handshake_done(ps_stream_t *s, int rc);
/** Accepts a pending connection from server and starts the handshake. */
int ps_stream_accept(ps_stream_t *s, uv_stream_t *server);
/** Connects to addr and starts the handshake. */
int ps_stream_connect(ps_stream_t *s, const struct sockaddr *addr);
/** Encrypts and queues len bytes of plaintext.  PS_OK or an error. */
int ps_stream_write(ps_stream_t *s, const uint8_t *p, size_t len);
/** Ciphertext queued but not yet handed to the kernel. */
size_t ps_stream_pending(const ps_stream_t *s);
/** Stops reading from the socket (back-pressure). */
void ps_stream_pause(ps_stream_t *s);
/** Resumes reading. */
void ps_stream_resume(ps_stream_t *s);
/** True while reading is paused (ps_stream_pause). */
int ps_stream_paused(const ps_stream_t *s);
/** An idle connection gives back what it can: its empty buffers (input read
 *  straight into the engine takes 64 KB per read, plaintext 16 KB, output
 *  as large as the last reply) and the pages of the engine's record buffers
 *  (ps_tls_trim).  They come back as needed.  For connections quiet for a
 *  while (the server's once-a-second sweep), not per request. */
void ps_stream_trim(ps_stream_t *s);
/** What ps_stream_trim_quiet found. */
enum { PS_STREAM_MOVING = 0, PS_STREAM_TRIMMED_NOW = 1, PS_STREAM_TRIMMED = 2 };
/** Called periodically (the server: once a second): trims the stream once
 *  no byte has moved either way since the previous call.  PS_STREAM_MOVING
 *  while bytes move (or the stream cannot be trimmed yet),
 *  PS_STREAM_TRIMMED_NOW from the call that trimmed it, PS_STREAM_TRIMMED
 *  while it stays quiet and trimmed. */
int ps_stream_trim_quiet(ps_stream_t *s);
/** Restarts the idle deadline (call on every complete request). */
void ps_stream_touch(ps_stream_t *s);
/** Sends close_notify, flushes what is queued, then half-closes (FIN) and
 *  reads and drops input until the peer closes or PS_STREAM_LINGER_MS pass:
 *  closing with unread input would make the kernel send a reset, and the
 *  peer could lose the last frames (an Error) before reading them. */
#define PS_STREAM_LINGER_MS 2000
void ps_stream_shutdown(ps_stream_t *s);
/** Closes now; on_close follows.  Safe to call more than once. */
void ps_stream_close(ps_stream_t *s);

#endif
