/* natsconn.h - popsyncd's connections to NATS (docs/upstream.md §1).
 *
 * Owns: how popsyncd connects to the province's NATS servers, in one place
 * for every part that talks to them: the connection options (the
 * [upstream] URLs, the TLS files, the inbox prefix, the client name
 * "popsyncd", a 2 s connect timeout, reconnecting forever every 0.5 s), the connect and reconnect
 * callbacks, the JetStream context on the connection, and the library's
 * process-wide shutdown.  What is done over the connection (the stream
 * definition, the publisher's rounds, the migrant consumer) stays with
 * upstream.c and migrants.c.
 *
 * Callers: the publisher thread (upstream.c) and the migrant consumer
 * thread (migrants.c) each own one ps_natsconn_t and use it only on their
 * thread (retry = 1: the first connect goes on in the background, so
 * neither thread nor shutdown blocks until a server answers); the offline
 * subcommands (`popsyncd rebuild --from-upstream`) and test tools use one
 * with retry = 0 (fail at once when no server answers).
 * ps_natsconn_shutdown once, from main, after every user has closed its.
 */
#ifndef PS_NATSCONN_H
#define PS_NATSCONN_H

#include <stdatomic.h>
#include <stddef.h>

#include "upstream.h"

#include <nats/nats.h>

typedef struct ps_natsconn {
    ps_upstream_opts_t o;       /**< URLs and TLS files (the strings outlive it) */
    const char *who;            /**< the owner, named in its log lines */
    int retry;                  /**< keep connecting in the background */
    int has_jo;
    jsOptions jo;               /**< the JetStream context's options (has_jo) */
    natsConnection *nc;         /**< NULL until the first ps_natsconn_open */
    jsCtx *js;                  /**< NULL until opened, or after ps_natsconn_drop_js */
    atomic_int reconnected;     /**< set by NATS's callbacks on each (re)connection */
} ps_natsconn_t;

/** Prepares c (no I/O).  jo: the JetStream options, or NULL for the defaults. */
void ps_natsconn_init(ps_natsconn_t *c, const char *who, const ps_upstream_opts_t *o, const jsOptions *jo,
                      int retry);
/** Connects when not yet connected and makes the JetStream context when
 *  missing; PS_OK once the connection is up.  PS_EINVAL/PS_EIO with the
 *  reason in err; PS_EIO with err empty while a retrying connection is not
 *  up yet (or is reconnecting). */
int ps_natsconn_open(ps_natsconn_t *c, char *err, size_t errlen);
/** 1 once after each connection or reconnection (the caller looks its
 *  stream or consumer up again: the cluster may have moved its leaders). */
int ps_natsconn_reconnected(ps_natsconn_t *c);
/** The connection is up now. */
int ps_natsconn_up(ps_natsconn_t *c);
/** Drops the JetStream context (the next open makes a new one, with no
 *  state left from the failed work); the connection stays. */
void ps_natsconn_drop_js(ps_natsconn_t *c);
/** Closes the context and the connection (c may be opened again). */
void ps_natsconn_close(ps_natsconn_t *c);
/** Releases the NATS library's threads and memory (once, at exit). */
void ps_natsconn_shutdown(void);

#endif
