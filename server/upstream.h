/* upstream.h - popsyncd's upward change stream to NATS JetStream (issue 19).
 *
 * Owns: the publisher thread (reads the store's feed in order with its own
 * read transactions, publishes each entry with js_PublishMsgAsync, at most
 * max_in_flight unacknowledged, and advances the store's "published up to"
 * mark only over a contiguous run of acknowledged entries), the JetStream
 * stream definition (POPSYNC, subjects popsync.>, replicas, duplicate
 * window), the message format (docs/upstream.md), the copies of a shared
 * migration addressed to the districts it concerns (§7) and the [upstream]
 * options (ps_upstream_opts_t, checked by ps_upstream_check).  The NATS
 * connection itself (options, TLS, reconnection, JetStream context) is
 * natsconn.h's, shared with the migrant consumer and the rebuild.
 *
 * Threads: ps_upstream_start/ps_upstream_request_stop/ps_upstream_join and
 * ps_upstream_stats are called from the loop thread (stats only reads
 * atomics; join only after the loop has ended); everything else runs on
 * the publisher thread or in offline subcommands.
 */
#ifndef PS_UPSTREAM_H
#define PS_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#include <nats/nats.h>

#define PS_UPSTREAM_STREAM "POPSYNC"
#define PS_UPSTREAM_MIGRANTS_ALL "all"
#define PS_UPSTREAM_MIGRANTS_ADDRESSED "addressed"

typedef struct ps_upstream_opts {
    const char *urls;          /**< comma-separated nats:// or tls:// URLs; NULL: no upstream */
    const char *ca_file;       /**< CA of the NATS servers' certificates (TLS when set) */
    const char *cert_file;     /**< client certificate and key for NATS (optional, with ca) */
    const char *key_file;
    const char *district;      /**< this district's 12-digit org-unit code */
    uint32_t max_in_flight;    /**< unacknowledged publishes at most (default 1000) */
    uint32_t replicas;         /**< replicas of the stream when we create it (default 3) */
    uint64_t dup_window_s;     /**< JetStream duplicate window when we create it (default 86400) */
    const char *migrants;      /**< the migrant consumer reads "all" (NULL) districts' migrations, or
                                    only the copies "addressed" to us (docs/upstream.md §7) */
    const char *inbox_prefix;  /**< prefix of our NATS reply subjects, NULL: _INBOX (docs/upstream.md §5) */
} ps_upstream_opts_t;

/** The migrant consumer reads only the copies addressed to its district. */
int ps_upstream_addressed(const ps_upstream_opts_t *o);
/** An addressed copy (popsync.<district>._to.<to>), which repeats a
 *  migration message of its sender: readers of every message skip it. */
int ps_upstream_is_copy(const char *subject);
/** subject is under popsync.<district>. (the sender's own subjects). */
int ps_upstream_sent_by(const char *subject, const char *district);

typedef struct ps_upstream_stats {
    uint64_t published_seq;    /**< mark: feed entries up to here are in the stream */
    uint64_t behind;           /**< feed entries after the mark (records waiting) */
    uint64_t oldest_ms;        /**< accept time of the oldest of them (0: none) */
    uint64_t published_total; /**< entries acknowledged since start */
    uint64_t failures;         /**< publish rounds that did not get every ack */
    int connected;             /**< the NATS connection is up */
} ps_upstream_stats_t;

typedef struct ps_upstream ps_upstream_t;

/** Checks opts (district code, URLs); PS_EINVAL with the reason in err. */
int ps_upstream_check(const ps_upstream_opts_t *o, char *err, size_t errlen);

/** Starts the publisher thread; *out is the caller's (ps_upstream_join frees it). */
int ps_upstream_start(ps_upstream_t **out, ps_store_t *st, const ps_upstream_opts_t *o, char *err, size_t errlen);
/** Asks the thread to finish (returns at once: the loop never waits). */
void ps_upstream_request_stop(ps_upstream_t *u);
/** Waits for the thread (at most the NATS timeouts, a few seconds) and frees u. */
void ps_upstream_join(ps_upstream_t *u);
/** A snapshot of the counters (any thread). */
void ps_upstream_stats(ps_upstream_t *u, ps_upstream_stats_t *out);

/** Called for each message of a scan with its stream sequence; non-zero stops. */
typedef int (*ps_upstream_msg_fn)(natsMsg *m, uint64_t stream_seq, void *arg);

/** Reads every message of stream POPSYNC matching filter (e.g.
 *  "popsync.110105000000.>") in stream order with an ordered consumer; every
 *  wait bounded (10 s per message).  *count gets the messages read. */
int ps_upstream_scan(jsCtx *js, const char *filter, ps_upstream_msg_fn fn, void *arg, uint64_t *count, char *err,
                     size_t errlen);

#endif
