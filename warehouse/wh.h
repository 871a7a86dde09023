/* wh.h - popsync-warehouse: the province's copy of every district's records
 * in PostgreSQL, fed from the JetStream stream POPSYNC (docs/warehouse.md).
 *
 * Owns: the warehouse's modules and what they share.
 *   schema.c   the SQL schema (tables per kind, LIST-partitioned by
 *              district; counters; positions) and its creation
 *   apply.c    one batch of stream messages applied in one PostgreSQL
 *              transaction: rows upserted by (district, id) only when the
 *              revision is newer, counters moved by the old and new version,
 *              positions advanced
 *   consume.c  the durable JetStream consumer: fetch, apply, commit, ack
 *   query.c    report monthly, quality, status and verify over PostgreSQL
 * Only main.c (the CLI) calls into these; one thread does everything.
 */
#ifndef PS_WH_H
#define PS_WH_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "records.pb-c.h"

/** Room for a district code (an org-unit code, or any [0-9A-Za-z_] name). */
#define WH_DISTRICT_MAX 24

typedef struct wh_conf {
    const char *pg;        /**< libpq connection string */
    const char *nats;      /**< comma-separated nats:// URLs */
    const char *stream;    /**< "POPSYNC" */
    const char *durable;   /**< durable consumer name, "popsync-warehouse" */
    const char *nats_ca, *nats_cert, *nats_key; /**< TLS to NATS, all optional */
    const char *orgunits;  /**< province org-unit file (names of districts), optional */
    int batch;             /**< messages per fetch and per transaction */
    int ack_wait_s;        /**< JetStream redelivers an unacked message after this */
    int drain;             /**< run: exit 0 once the consumer has nothing pending */
    int idle_exit_s;       /**< with drain: how long "nothing pending" must last */
} wh_conf_t;

/* ---- schema.c ---- */

/** Creates what is missing of the schema (idempotent).  PS_OK or PS_EDB. */
int wh_schema_ensure(PGconn *pg, char *err, size_t errlen);
/** Creates the partitions of every kind table for district, if missing. */
int wh_schema_district(PGconn *pg, const char *district, char *err, size_t errlen);
/** 1 when s may name a district (and so a partition): 1..20 of [0-9A-Za-z_]. */
int wh_district_valid(const char *s);
/** The table of a kind ("person", ..., "service_visit"), NULL for none. */
const char *wh_kind_table(int kind);

/* ---- apply.c ---- */

/** One message of the stream, as apply needs it. */
typedef struct wh_msg {
    uint64_t stream_seq;              /**< JetStream's sequence of the message */
    char district[WH_DISTRICT_MAX];   /**< Popsync-District (or the subject's 2nd token) */
    uint64_t seq;                     /**< Popsync-Seq: the district's feed seq */
    const uint8_t *data;              /**< serialized Popsync__Record */
    size_t len;
    int other;                        /**< not a record: the district's node marks or scope exits
                                           (subject popsync.<district>._nodes / ._exit), skipped */
} wh_msg_t;

typedef struct wh_batch_stats {
    size_t applied;   /**< rows that changed */
    size_t stale;     /**< an older or equal revision: nothing changed */
    size_t rejected;  /**< not a record: kept in wh_rejected */
    size_t other;     /**< node marks and scope exits: not the warehouse's */
} wh_batch_stats_t;

typedef struct wh_apply wh_apply_t;

int wh_apply_open(wh_apply_t **out, PGconn *pg, const char *stream, char *err, size_t errlen);
void wh_apply_close(wh_apply_t *a);
/**
 * Applies msgs in one transaction (BEGIN ... COMMIT).  On any PostgreSQL
 * error the transaction is rolled back, nothing of the batch is kept and
 * PS_EDB returned: the caller applies the same batch again.  Applying a
 * message twice changes nothing the second time.
 */
int wh_apply_batch(wh_apply_t *a, const wh_msg_t *msgs, size_t n, wh_batch_stats_t *st, char *err, size_t errlen);

/* ---- consume.c ---- */

/** Runs the consumer until SIGTERM/SIGINT (or, with drain, until caught up). */
int wh_consume_run(const wh_conf_t *c);

/* ---- query.c ---- */

int wh_report_monthly(PGconn *pg, const wh_conf_t *c, const char *month, int fmt, int zh, uint32_t dl_u,
                      uint32_t dl_n, const char *out);
int wh_report_quality(PGconn *pg, int fmt, int zh, int details);
int wh_status(PGconn *pg, int json);
/** Recounts every counter from the stored records; 0 when all agree. */
int wh_verify(PGconn *pg);

/* ---- shared helpers (schema.c) ---- */

/** Runs sql with no parameters; PS_OK or PS_EDB with the server's message in err. */
int wh_exec(PGconn *pg, const char *sql, char *err, size_t errlen);

#endif
