/* link.h - a session of this cache with its server.
 *
 * Owns: what connecting means for a cache: the server, certificates and
 * the TLS session to resume come from the cache's meta; the Welcome is
 * applied to it (a restored or copied cache refused, the server's clock,
 * time zone, synthetic-ID policy and org-unit tree taken, the tree fetched
 * with an OrgUnitsRequest before any other request goes out); and, when
 * the link closes after a session that went well, the cache's clock is
 * corrected by the server's.  The session itself (client/session.h) knows
 * nothing of caches.
 *
 * Callers: the CLI commands (cmd_*.c, report.c) through ps_link_once or
 * ps_link_open/run/close, `popsync ui`'s pages (ui_district*.c, history.c)
 * through ps_link_once_within, the request modules that need the cache (sync.c,
 * verify.c, fetch.c), the benchmark and test drivers.
 */
#ifndef PS_LINK_H
#define PS_LINK_H

#include <stdint.h>

#include "cache.h"
#include "session.h"

/** Knobs of the test suite only (tests/tools/ps_simsync.c). */
typedef struct ps_link_test {
    int legacy_clock; /**< act as a cache before issue 21: no Push.clock_ms, no clock correction */
    uint64_t cut_after_frames; /**< drop the connection after this many frames received (0: the
                                    POPSYNC_TEST_CUT_AFTER_FRAMES hook, else never) */
} ps_link_test_t;

typedef struct ps_link {
    ps_session_t *s;
    ps_cache_t *cache;
    int legacy_clock;        /**< from ps_link_test_t */
    uint64_t server_hlc;     /**< Welcome.server_hlc (0: none yet) */
    int64_t clock_skew_ms;   /**< our device's clock minus the server's, at Welcome */
} ps_link_t;

#define PS_LINK_NO_COMPRESSION 0x1u /**< do not offer zstd */

/**
 * Connects cache's session on loop (NULL: a private loop, for the blocking
 * calls).  timeout_ms: give up when the server is silent this long (0:
 * 60000).  test: NULL outside the test suite.  PS_OK with *out, or an
 * error with a reason in err.
 */
int ps_link_open(ps_link_t **out, uv_loop_t *loop, ps_cache_t *cache, uint64_t timeout_ms, unsigned flags,
                 const ps_link_test_t *test, char *err, size_t errlen);
/** ps_session_run on the link's session (blocking). */
int ps_link_run(ps_link_t *l);
/**
 * Ends the link: rc PS_OK (and the session well) corrects the cache's
 * clock and shuts the connection down gracefully.  Returns rc, or the
 * session's failure, with its text in err; bytes in and out may be NULL.
 */
int ps_link_close(ps_link_t *l, int rc, char *err, size_t errlen, uint64_t *bytes_in, uint64_t *bytes_out);

/** Asks the questions of a one-shot link: makes requests on s. */
typedef int (*ps_link_ask_fn)(ps_link_t *l, void *arg);
/**
 * The blocking one-shot of a CLI command: opens a link for cache, lets ask
 * make its requests, runs until they are answered and closes.  PS_OK or
 * an error with its reason in err.  *welcomed (may be NULL) tells whether
 * the server's Welcome came: a failure without it means the server was not
 * reached (report and query then answer from the cache).
 */
int ps_link_once(ps_cache_t *cache, ps_link_ask_fn ask, void *arg, int *welcomed, char *err, size_t errlen);
/**
 * ps_link_once within a deadline: connecting, the handshake, the Welcome
 * and every answer must be over deadline_ms after the call, else it fails
 * with PS_ETIMEDOUT ("server HOST:PORT did not answer within N s"), even
 * when the server's Welcome came (*welcomed 1).  For `popsync ui`, whose
 * pages must not wait a minute on a server that accepts and stays silent
 * (the CLI's one-shots keep the session's silence timeout).  0: as
 * ps_link_once.  The server's name is looked up by the system before the
 * deadline starts (an address needs no lookup).
 */
int ps_link_once_within(ps_cache_t *cache, uint64_t deadline_ms, ps_link_ask_fn ask, void *arg, int *welcomed,
                        char *err, size_t errlen);

#endif
