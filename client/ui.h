/* ui.h - `popsync ui`: the local web interface served from a client cache.
 *
 * Owns: the HTTP server (libmicrohttpd), its security checks (the start
 * token exchanged for a cookie, the Host header, the CSRF token on every
 * POST, the security headers on every answer: docs/security.md §"Local web
 * interface"), the static files of web/, the cache lock, and the route
 * table through which page modules add their JSON endpoints:
 *   ui.c         the server core and the request API below;
 *   ui_routes.c  the list of modules (one line per module);
 *   ui_reach.c   whether the district server answered lately (ui_reach.h);
 *   ui_town*.c   township pages (search, person, forms, sync, conflicts...);
 *   ui_district*.c  the district's pages (webdist).
 * Handlers run on the server's one polling thread, one at a time, holding
 * the cache lock when their route asks for the cache; the sync worker
 * (ui_sync.c) holds the same lock while it runs, and a request for the
 * cache meanwhile is answered 503 "busy" (the page retries).
 */
#ifndef PS_UI_H
#define PS_UI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"

typedef struct ps_ui ps_ui_t;
typedef struct ps_ui_req ps_ui_req_t;

/** A handler answers with one of the ps_ui_reply_* calls and returns 0;
 *  returning without a reply gives a 500. */
typedef int (*ps_ui_handler_fn)(ps_ui_req_t *rq);

typedef struct ps_ui_route {
    const char *method; /**< "GET" or "POST" (POST needs the CSRF token) */
    const char *path;   /**< "/api/find"; with prefix, everything under it */
    int prefix;         /**< 1: path is a prefix ("/api/record/" + id) */
    int cache;          /**< 1: the handler uses the cache (lock taken) */
    ps_ui_handler_fn fn;
} ps_ui_route_t;

/** An entry of the navigation bar (the page shell asks /api/session). */
typedef struct ps_ui_nav {
    const char *href; /**< "/search.html" */
    const char *zh, *en;
    const char *roles; /**< "township,admin": who sees it; NULL: everyone */
} ps_ui_nav_t;

typedef struct ps_ui_module {
    const char *name;
    const ps_ui_route_t *routes;
    size_t nroutes;
    const ps_ui_nav_t *nav;
    size_t nnav;
} ps_ui_module_t;

/** ui_routes.c: every module, NULL-terminated. */
extern const ps_ui_module_t *const ps_ui_modules[];
extern const ps_ui_module_t ps_ui_core_module;
extern const ps_ui_module_t ps_ui_town_module;

/* --- the request (valid during the handler only) --- */
/** The path after the route's prefix ("" for an exact route). */
const char *ps_ui_rest(const ps_ui_req_t *rq);
/** A query-string argument (decoded), or NULL. */
const char *ps_ui_arg(const ps_ui_req_t *rq, const char *name);
/** The request body (POST), and its length; never NULL (may be empty). */
const uint8_t *ps_ui_body(const ps_ui_req_t *rq, size_t *len);
/** The body parsed as a JSON object (owned by the request), or NULL. */
json_t *ps_ui_body_json(ps_ui_req_t *rq);
/** 1 when the user reads Chinese (cookie popsync_lang, else --lang). */
int ps_ui_zh(const ps_ui_req_t *rq);
/** The cache (only for routes with cache = 1). */
ps_cache_t *ps_ui_cache(const ps_ui_req_t *rq);
ps_ui_t *ps_ui_server(const ps_ui_req_t *rq);
/** How long a page waits for the district server's answer, in ms (the
 *  cache's `popsync config set ui_timeout`, else PS_UI_TIMEOUT_DEFAULT_S):
 *  handlers run one at a time, so a silent server must not hold them. */
uint64_t ps_ui_server_wait_ms(const ps_ui_req_t *rq);
/** "The district server did not answer within N s" in the user's language,
 *  for a PS_ETIMEDOUT of ps_link_once_within. */
void ps_ui_server_late(const ps_ui_req_t *rq, char *out, size_t len);

/* --- answers --- */
/** Sends v (taking it) as application/json with status. */
int ps_ui_reply_json(ps_ui_req_t *rq, unsigned status, json_t *v);
/** Sends data as is. */
int ps_ui_reply_data(ps_ui_req_t *rq, unsigned status, const char *ctype, const void *data, size_t len);
/** Sends data as a download named filename (ASCII). */
int ps_ui_reply_download(ps_ui_req_t *rq, const char *ctype, const char *filename, const void *data, size_t len);
/** {"error": the message in the user's language} with status. */
int ps_ui_reply_error(ps_ui_req_t *rq, unsigned status, const char *en, const char *zh);

/* --- the server --- */
typedef struct ps_ui_opts {
    const char *listen; /**< "ADDR:PORT"; NULL: 127.0.0.1 on a free port */
    int zh;             /**< default language */
    const char *web_dir; /**< NULL: located (ps_ui_web_dir) */
} ps_ui_opts_t;

/** Starts serving cache c (borrowed, open for the server's life).  Prints
 *  nothing; ps_ui_url gives the line to print.  err gets why not. */
int ps_ui_start(ps_ui_t **out, ps_cache_t *c, const char *data_dir, const ps_ui_opts_t *o, char *err, size_t errlen);
/** The URL with the start token. */
const char *ps_ui_url(const ps_ui_t *ui);
void ps_ui_stop(ps_ui_t *ui);

/** Where the static files are: $POPSYNC_WEB_DIR, else web/ beside the
 *  binary (the build tree), else ../share/popsync/web from the binary's
 *  directory (installed).  0, or -1 when none has index.html. */
int ps_ui_web_dir(char *out, size_t outlen);

/** The cache lock: handlers with cache = 1 hold it; the sync worker takes
 *  it for a whole sync. */
void ps_ui_cache_lock(ps_ui_t *ui);
void ps_ui_cache_unlock(ps_ui_t *ui);
/** 0 when the lock was free and is now held, else -1 (a sync runs). */
int ps_ui_cache_trylock(ps_ui_t *ui);
ps_cache_t *ps_ui_cache_of(ps_ui_t *ui);
const char *ps_ui_data_dir(const ps_ui_t *ui);

/** Modules' state kept for the server's life, one slot each: made on
 *  first use (under the cache lock), freed by free_fn when the server
 *  stops (after its threads are gone). */
typedef enum ps_ui_slot {
    PS_UI_SLOT_SYNC,     /**< ui_town_sync.c: the sync worker */
    PS_UI_SLOT_DISTRICT, /**< the district's pages */
    PS_UI_SLOT_IMPORT,   /**< ui_town_io.c: the last import's rejected rows */
    PS_UI_NSLOTS
} ps_ui_slot_t;
void *ps_ui_state(ps_ui_t *ui, ps_ui_slot_t slot);
void ps_ui_set_state(ps_ui_t *ui, ps_ui_slot_t slot, void *state, void (*free_fn)(void *));

#endif
