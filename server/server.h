/* server.h - popsyncd's shared state and its internal modules.
 *
 * Owns: ps_server_t (the loop, listener, TLS config, store, limits, the
 * group-commit queue and the connection list) and ps_conn_t (one client).
 *
 * Threads: everything here runs on the loop thread except the work
 * functions handed to uv_queue_work, which touch only the store and the job
 * they were given.
 *
 * Modules: main.c (config, signals, startup, shutdown), listener.c (accept,
 * connection limit), conn.c (per-connection state machine, frame parsing,
 * back-pressure), sync.c (Hello, Push, Pull, Ping handlers), commit.c (group
 * commit), reply.c (the protocol layer: the store's typed answers as reply
 * frames), store.c (LMDB), apply.c (the apply path's stages); issue 9: config.c (config file, --check-config),
 * nodes.c (who synced: in-memory table, NodeStatus), metrics.c (Prometheus
 * endpoint), store_admin.c (backup, restore, map info); issue 19:
 * upstream.c (the publisher thread to NATS JetStream), store_upstream.c
 * (its store side), upstream_cmd.c (`popsyncd status`, `rebuild`).
 */
#ifndef PS_SERVER_H
#define PS_SERVER_H

#include <stdint.h>

#include <uv.h>

#include "frame.h"
#include "orgunit.h"
#include "stream.h"
#include "store.h"
#include "tls.h"
#include "tz.h"

typedef struct ps_server_opts {
    const char *listen;          /**< "HOST:PORT"; port 0 picks a free one */
    const char *port_file;       /**< where to write the bound port (tests, scripts) */
    const char *data_dir;
    const char *ca_file, *cert_file, *key_file, *crl_file;
    const char *orgunits_file;   /**< the authoritative org-unit CSV (optional) */
    size_t map_size;
    size_t map_max;              /**< cap on map growth (0: none) */
    uint32_t max_conns;          /**< open connections at most */
    uint32_t max_conns_per_cert; /**< open connections of one certificate (serial) at most */
    uint32_t max_frame;          /**< largest frame body accepted */
    uint32_t max_push_changes;   /**< changes in one Push */
    uint32_t pull_max_records;   /**< records in one PullBatch */
    uint32_t pull_max_bytes;     /**< about this many record bytes per PullBatch */
    size_t pull_cache;           /**< bytes of PullBatch frames kept for the next reader (pullcache.h; 0: none) */
    size_t max_output;           /**< per-connection queued output before we stop reading */
    uint64_t handshake_ms;       /**< TLS handshake + Hello deadline */
    uint64_t idle_ms;            /**< idle deadline once ready */
    uint64_t max_future_ms;      /**< how far an edit's time may stay ahead of our clock (0) */
    const char *timezone;        /**< the district's IANA time zone: dates are judged by its calendar */
    int allow_synthetic;         /**< take records of popsync generate (a test server) */
    uint32_t commit_max_changes; /**< edits in one group commit; a new record weighs 1/PS_COMMIT_EDIT_WEIGHT (commit.c) */
    size_t push_decode_budget;   /**< bytes of decoded Pushes held at once, whole server (commit.c; 0: none) */
    /* issue 15: input a hostile peer can make us hold (conn.c) */
    size_t partial_budget;          /**< bytes of unfinished frames, whole server (0: none) */
    size_t partial_budget_per_cert; /**< ... of one certificate's connections (0: none) */
    uint32_t min_frame_rate;        /**< bytes/s a frame in progress must keep up (0: none) */
    uint64_t frame_grace_ms;        /**< ... measured after this long */
    uint32_t handshake_threads;     /**< TLS handshake threads (0: on the loop) */
    /* issue 9: metrics (metrics.c) */
    const char *metrics_listen;  /**< "HOST:PORT" of the Prometheus endpoint, or NULL */
    int metrics_allow_remote;    /**< may metrics_listen be a non-loopback address */
    /* issue 19: the upward stream to NATS JetStream (upstream.c, docs/upstream.md) */
    const char *upstream_urls;       /**< [upstream] urls; NULL: no upstream */
    const char *upstream_ca, *upstream_cert, *upstream_key; /**< TLS to NATS (optional) */
    const char *upstream_district;   /**< this district's org-unit code */
    uint32_t upstream_max_in_flight; /**< unacknowledged publishes at most */
    uint32_t upstream_replicas;      /**< stream replicas when popsyncd creates it */
    uint64_t upstream_dup_window_s;  /**< stream duplicate window when popsyncd creates it */
    const char *upstream_province_orgunits; /**< the province's org units (migrants.c), or NULL */
    const char *upstream_migrants;   /**< "all" (NULL) or "addressed": what the migrant consumer reads */
    const char *upstream_inbox_prefix; /**< NATS reply subjects' prefix (default _INBOX), or NULL */
} ps_server_opts_t;

typedef struct ps_conn ps_conn_t;

/* Pipelining (sync.c; docs/protocol.md §7.1): the most requests one
 * connection may have in flight at once, and the most bytes of their
 * frames, whatever a Hello asks.  A Hello without a window gets 1. */
#define PS_WINDOW_MAX 8u
#define PS_WINDOW_BYTES_MAX (4u << 20)

/** Upper bounds (seconds) of the commit latency histogram, +Inf implied. */
#define PS_COMMIT_BUCKETS 12
#define PS_COMMIT_BUCKET_BOUNDS {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0}

typedef struct ps_server_stats {
    uint64_t accepted_conns, refused_conns, handshakes, handshake_failures;
    uint64_t commits, changes_accepted, changes_rejected, changes_duplicate;
    /* issue 9 (metrics.c reads these; commit.c fills them) */
    uint64_t pushes, changes_conflicts;
    /* issue 15: group commits that failed, by cause (storage full = map cap) */
    uint64_t commit_fail_map_cap, commit_fail_disk_full, commit_fail_other;
    uint64_t budget_closes, slow_closes; /**< connections closed by the partial-frame budget / rate */
    uint64_t max_in_flight;              /**< most requests one connection had in flight at once (sync.c) */
    /* issue 17: pushes decoded on a pool thread into an arena (commit.c), and the arenas' bytes */
    uint64_t push_decodes_pool, push_arena_bytes;
    uint64_t push_decodes_deferred;  /**< Pushes that waited for the decode budget before decoding */
    size_t decoded_bytes_max;        /**< most bytes of decoded Pushes held at once */
    uint64_t commit_start_ns;                      /**< uv_hrtime() when the running commit was queued */
    uint64_t commit_buckets[PS_COMMIT_BUCKETS + 1]; /**< per bucket (not cumulative); last is +Inf */
    uint64_t commit_count;
    double commit_seconds_sum;
} ps_server_stats_t;

typedef struct ps_metrics ps_metrics_t;
typedef struct ps_cert_acct ps_cert_acct_t;
typedef struct ps_hspool ps_hspool_t;
typedef struct ps_nodes ps_nodes_t;

typedef struct ps_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    ps_tls_conf_t *tls;
    ps_store_t *store;
    ps_orgunits_t *units;        /**< loaded from opts.orgunits_file, or NULL */
    ps_tz_t tz;                  /**< opts.timezone with its UTC offset, loaded at start (tz.h) */
    ps_server_opts_t opts;
    /* group commit: pushes waiting for the next transaction */
    ps_push_job_t *queue_head, *queue_tail;
    size_t queued_changes;
    int committing;
    uv_work_t commit_req;
    ps_push_job_t *commit_batch;
    /* decoded Pushes held, against opts.push_decode_budget (commit.c) */
    struct ps_push_frame *decode_wait_head, *decode_wait_tail; /**< frames not decoded yet, as they came */
    size_t decoded_bytes;        /**< arenas of decoded Pushes not freed yet */
    uint32_t decodes_running;
    int pumping, pump_again;     /**< commit.c's pump is running / must run once more */
    /* connections */
    ps_conn_t *conns;
    uint32_t nconns;
    uint64_t next_conn_id;
    int stopping;
    size_t partial_total;        /**< bytes held for unfinished frames (conn.c) */
    ps_cert_acct_t *certs;       /**< the same, per certificate with connections open */
    uv_timer_t sweep;            /**< once a second: the frame rate check */
    ps_hspool_t *hspool;         /**< hspool.c: handshake threads, or NULL (on the loop) */
    uv_signal_t sig_term, sig_int;
    ps_server_stats_t stats;
    ps_metrics_t *metrics;       /**< metrics.c, or NULL */
    ps_nodes_t *nodes;           /**< nodes.c: who synced, their cursors */
    struct ps_upstream *upstream; /**< upstream.c: the publisher thread, or NULL */
    struct ps_migrants *migrants; /**< migrants.c: cases from other districts, or NULL */
    ps_orgunits_t *province;      /**< [upstream] province_orgunits, or NULL */
    struct ps_pullcache *pullcache; /**< pullcache.c: batches kept for the next reader, or NULL */
} ps_server_t;

typedef enum ps_conn_state {
    PS_CONN_HANDSHAKE = 0,
    PS_CONN_HELLO,   /**< TLS up, waiting for Hello */
    PS_CONN_READY,
    PS_CONN_CLOSING
} ps_conn_state_t;

struct ps_conn {
    ps_stream_t stream;
    ps_server_t *srv;
    ps_conn_state_t state;
    uint64_t id;              /**< for logs */
    int refs;                 /**< 1 while open, +1 per job in flight */
    uint32_t busy;            /**< requests taken in and not answered yet (sync.c): one runs, the rest wait */
    /* pipelining (sync.c): requests run one at a time, in the order they came */
    struct ps_queued *q_head, *q_tail; /**< taken in, waiting for the one running */
    int running;              /**< a request is being served off the loop */
    size_t busy_bytes;        /**< frame bytes of the busy requests */
    size_t running_bytes;     /**< ... of the one running */
    uint32_t window;          /**< requests in flight at most, agreed in Welcome (0 before: 1) */
    uint32_t window_bytes;    /**< their frame bytes at most (0: no bound besides window) */
    uint32_t want_window, want_window_bytes; /**< what the Hello asked */
    uint64_t pull_next;       /**< where a Pull with follow starts: the previous Pull's cursor */
    int pull_next_ok;         /**< pull_next holds (a Pull of this connection succeeded last) */
    uint64_t *own;            /**< seqs of versions this connection's Pushes wrote as sent (own_copy),
                               *   ascending, not yet passed by a Pull: a Pull with skip_own leaves
                               *   them out (sync.c; at most PS_OWN_MAX) */
    size_t nown, capown;
    int push_failed;          /**< a Push was not committed: later ones of this connection are refused */
    int refuse;               /**< over max_conns: told so (Error) once the handshake is done */
    uint8_t node[PS_ID_LEN];  /**< from Hello */
    uint32_t features;        /**< agreed in Hello/Welcome (PS_FEATURE_*) */
    ps_buf_t zin;             /**< decompressed body of the frame being handled */
    ps_peer_t peer;           /**< from the certificate */
    ps_cert_acct_t *cert;     /**< budget account of peer's certificate (after the handshake) */
    size_t partial;           /**< input bytes held (charged to the budgets) */
    uint64_t frame_start_ms;  /**< when the unfinished frame's rate began to be measured (0: none) */
    size_t frame_base;        /**< bytes buffered at frame_start_ms */
    ps_conn_t *prev, *next;
};

/* hspool.c: TLS handshakes on threads of their own (loop thread calls). */
int ps_hspool_start(ps_server_t *srv, char *err, size_t errlen);
/** Makes s run its handshake steps on the pool (no-op without one). */
void ps_hspool_attach(ps_server_t *srv, ps_stream_t *s);
/** Handshake steps queued or running on the threads (metrics). */
uint64_t ps_hspool_pending(const ps_server_t *srv);
/** Around a CRL reload: no handshake step runs meanwhile. */
void ps_hspool_conf_lock(ps_server_t *srv);
void ps_hspool_conf_unlock(ps_server_t *srv);
/** Joins the threads (once every connection is closed) and frees the pool. */
void ps_hspool_stop(ps_server_t *srv);

/* listener.c */
int ps_listener_start(ps_server_t *srv, char *err, size_t errlen);
void ps_listener_stop(ps_server_t *srv);

/* conn.c */
/** Accepts one pending connection (or refuses it over the limit). */
void ps_conn_accept(ps_server_t *srv);
/** Queues a whole frame already in buf for sending. */
int ps_conn_send(ps_conn_t *c, const ps_buf_t *frame);
/** Sends an Error frame; fatal ones close the connection after it. */
void ps_conn_error(ps_conn_t *c, uint32_t request_id, int code, int fatal, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/** A job that held the connection finished: drop its reference, go on parsing. */
void ps_conn_job_done(ps_conn_t *c);
/** Begins closing (after queued output) every connection. */
void ps_conn_close_all(ps_server_t *srv);
/** Closes every connection whose peer certificate the CRL now revokes; returns how many. */
int ps_conn_close_revoked(ps_server_t *srv);
/** Starts / stops the once-a-second check of frames in progress (slowloris). */
void ps_conn_sweep_start(ps_server_t *srv);
void ps_conn_sweep_stop(ps_server_t *srv);

/* sync.c: the dispatcher and the request handlers (common/msgtab.def). */
/** Handles one frame from a client; PS_OK or a code after reporting it to the peer. */
int ps_sync_dispatch(ps_conn_t *c, const ps_frame_t *f);
/** Checks that every row of the message table has a handler of its kind
 *  (run at start-up); PS_EINVAL with a reason in err when one does not. */
int ps_sync_check_handlers(char *err, size_t errlen);
/** Is c's window full (no new request is parsed until one is answered)? */
int ps_sync_full(const ps_conn_t *c);
/** c's running request finished: starts the next one waiting (conn.c's
 *  ps_conn_job_done calls it before parsing on). */
void ps_sync_job_finished(ps_conn_t *c);
/** A committed Push of c wrote the versions seqs[0..n) exactly as sent
 *  (ascending): remembered for c's Pulls with skip_own, up to PS_OWN_MAX
 *  (beyond it they are simply sent). */
void ps_sync_own_add(ps_conn_t *c, const uint64_t *seqs, size_t n);
struct ps_push_frame;
/** A Push decoded off the loop (commit.c), before it joins a group commit:
 *  its size against the limit, and the cache's clock.  PS_OK, or a code
 *  after reporting it to the peer. */
int ps_sync_push_admit(ps_conn_t *c, struct ps_push_frame *pf);

/* admin_cmd.c: offline subcommands (argv[0] is the subcommand). */
int ps_server_subcommand(int argc, char **argv);
/** SUBCOMMAND --help from admin_help.c's table: 1 when it knew it (printed). */
int ps_server_subcommand_help(int argc, char **argv);

/* upstream_cmd.c (issue 19): `popsyncd status`, `popsyncd rebuild --from-upstream`. */
int ps_upstream_cmd_status(int argc, char **argv);
int ps_upstream_cmd_rebuild(int argc, char **argv);

/* commit.c */
/**
 * A Push on its way to the group commit: the store's job, and the frame it
 * comes from.  The body is copied as it arrived and decoded on a pool
 * thread into one arena (ps_msg_unpack_arena), freed in one call after the
 * commit: the loop thread neither decodes a Push nor frees its pieces.
 */
typedef struct ps_push_frame {
    ps_push_job_t job;         /**< first: commit.c turns a job back into its frame */
    uv_work_t req;             /**< the decode */
    ps_buf_t body;             /**< the frame's body as received (freed once decoded) */
    int zstd;                  /**< body is zstd-compressed */
    size_t max_body;           /**< the largest plain body accepted (opts.max_frame) */
    int decoded;               /**< the decode has returned to the loop */
    int decode_rc;             /**< its result: PS_OK, PS_EPROTO or PS_ENOMEM */
    int on_loop;               /**< decoded on the loop (the pool refused the work: never in practice) */
    size_t arena_used;         /**< bytes the message took from its arena */
    int queued;                /**< in the commit queue (ps_commit_enqueue) */
    int admitted;              /**< decoded and admitted (ps_sync_push_admit): a commit may take it */
    int orphan;                /**< released while its decode ran: decode_after frees it */
    int started;               /**< its decode was started (else it waits in srv's decode_wait list) */
    int waited;                /**< it waited for the decode budget */
    size_t charged;            /**< bytes charged to srv->decoded_bytes */
    struct ps_push_frame *wait_next; /**< in srv's decode_wait list */
    struct ps_server *srv;
    struct ps_msg_arena *arena; /**< job.push lies in it */
    uint64_t arrived_ms;       /**< when the frame arrived: the clock skew is measured from it */
} ps_push_frame_t;
/**
 * Hands f's body to be decoded on a pool thread: now if the decoded Pushes
 * held (opts.push_decode_budget) leave room, else when they do; a push
 * whose turn has come (ps_commit_enqueue) goes before those still waiting
 * behind another of their connection, and the head of the commit queue is
 * decoded whatever the budget, so the queue always moves.
 */
void ps_commit_decode(ps_server_t *srv, ps_push_frame_t *f);
/**
 * Queues a push for the next group commit (its turn on the connection has
 * come); takes ownership of f.  A group commit takes only decoded, admitted
 * pushes from the head of the queue, so each connection's pushes commit in
 * the order they came.  A push that does not decode, or that
 * ps_sync_push_admit refuses, is answered by an Error: when that is known
 * now, it is freed and the code returned; later, it leaves the queue and
 * the connection's job ends (ps_conn_job_done).
 */
int ps_commit_enqueue(ps_server_t *srv, ps_push_frame_t *f);
/** Frees a push that will not be queued (now, or when its decode returns). */
void ps_commit_release(ps_push_frame_t *f);
/** Writes the node table's changes when the writer is idle (at most every
 *  few seconds unless stopping).  Returns 1 while a write is running or
 *  changes wait, else 0 (shutdown waits for 0). */
int ps_commit_flush_nodes(ps_server_t *srv);

/* listener.c */
/** Parses "HOST:PORT" or "[V6]:PORT" into ss. */
int ps_listen_addr_parse(const char *s, struct sockaddr_storage *ss);

/* nodes.c: the in-memory table of nodes (loop thread only), persisted by
 * ps_commit_flush_nodes. */
int ps_nodes_start(ps_server_t *srv);
void ps_nodes_stop(ps_server_t *srv);
void ps_nodes_free(ps_server_t *srv);
/** A node said Hello or sent a Pull with this cursor. */
void ps_nodes_seen(ps_server_t *srv, const uint8_t node[PS_ID_LEN], const ps_peer_t *peer, uint64_t cursor);
/** A PullBatch with this cursor is going to the node (0: unknown, ignored). */
void ps_nodes_pulled(ps_server_t *srv, const uint8_t node[PS_ID_LEN], uint64_t cursor);
/** Changed entries to persist (copied into *out, caller frees); marks them clean. */
size_t ps_nodes_take_dirty(ps_server_t *srv, ps_node_info_t **out);
/** A write of taken entries failed: mark them dirty again. */
void ps_nodes_redirty(ps_server_t *srv, const ps_node_info_t *v, size_t n);
/** Calls fn for every node seen since start (metrics). */
void ps_nodes_foreach(ps_server_t *srv, void (*fn)(const ps_node_info_t *n, void *arg), void *arg);
/** A copy of the table for a worker (NodeStatusRequest); *out is the
 *  caller's to free (NULL when empty).  PS_OK or PS_ENOMEM. */
int ps_nodes_copy(ps_server_t *srv, ps_node_info_t **out, size_t *n);

/* metrics.c: the Prometheus endpoint (opts.metrics_listen). */
int ps_metrics_start(ps_server_t *srv, char *err, size_t errlen);
void ps_metrics_stop(ps_server_t *srv);
void ps_metrics_free(ps_server_t *srv);
/** Is this address loopback (127.0.0.0/8, ::1)? */
int ps_addr_is_loopback(const struct sockaddr_storage *ss);

#endif
