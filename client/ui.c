/* ui.c - the server core of `popsync ui` (see ui.h): libmicrohttpd, the
 * security checks every request passes, static files, dispatch. */
#include "ui.h"

#include "crypto.h"
#include "dupcheck.h"
#include "record_fmt.h"
#include "err.h"
#include "ids.h"
#include "testhooks.h"
#include "ui_reach.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define UI_SECRET_HEX 65        /* 32 random bytes as hex + NUL */
#define UI_BODY_MAX (16u << 20) /* the largest POST body (an import file) */
#define UI_FILE_MAX (8u << 20)  /* the largest static file served */
#define UI_BUSY_WAIT_MS 1500    /* how long a request waits for the cache */

struct ps_ui {
    struct MHD_Daemon *d;
    ps_cache_t *cache;
    char data_dir[PATH_MAX];
    pthread_mutex_t lock;
    char token[UI_SECRET_HEX], session[UI_SECRET_HEX], csrf[UI_SECRET_HEX];
    char host[300], host_alt[300]; /* the Host values taken */
    char cookie[48];               /* popsync_ui_PORT */
    char url[400];
    char web_dir[PATH_MAX];
    int zh, tls;
    char *tls_cert, *tls_key;
    void *state[PS_UI_NSLOTS];
    void (*state_free[PS_UI_NSLOTS])(void *);
    ps_ui_reach_t *reach; /* ui_reach.c: has the server answered lately */
};

struct ps_ui_req {
    ps_ui_t *ui;
    struct MHD_Connection *conn;
    const char *method, *url, *rest;
    uint8_t *body;
    size_t len, cap;
    json_t *json;
    int replied, zh, refused, too_big;
    struct timespec t0; /* when the body was complete: Server-Timing */
};

/* --- small helpers ------------------------------------------------------ */

static int secret(char out[UI_SECRET_HEX])
{
    uint8_t b[32];

    if (ps_random(b, sizeof(b)) != PS_OK)
        return PS_EIO;
    ps_hex(b, sizeof(b), out);
    ps_zeroize(b, sizeof(b));
    return PS_OK;
}

/* Constant-time comparison of a presented secret with ours. */
static int secret_eq(const char *given, const char *ours)
{
    size_t n = strlen(ours);
    unsigned char d = 0;

    if (!given || strlen(given) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(given[i] ^ ours[i]);
    return d == 0;
}

static void security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
                            "object-src 'none'");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "Cache-Control", "no-store");
}

static int send_raw(ps_ui_req_t *rq, unsigned status, const char *ctype, const void *data, size_t len,
                    const char *extra_name, const char *extra_value)
{
    struct MHD_Response *r;
    enum MHD_Result ok;

    if (rq->replied)
        return PS_EINVAL;
    r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)data, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return PS_ENOMEM;
    security_headers(r);
    if (rq->t0.tv_sec) { /* the time the server spent (docs/performance.md: the UI bench reads it) */
        struct timespec t1;
        char st[64];
        clock_gettime(CLOCK_MONOTONIC, &t1);
        snprintf(st, sizeof(st), "app;dur=%.3f",
                 (double)(t1.tv_sec - rq->t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - rq->t0.tv_nsec) / 1e6);
        MHD_add_response_header(r, "Server-Timing", st);
    }
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    if (extra_name)
        MHD_add_response_header(r, extra_name, extra_value);
    ok = MHD_queue_response(rq->conn, status, r);
    MHD_destroy_response(r);
    rq->replied = 1;
    return ok == MHD_YES ? PS_OK : PS_EIO;
}

int ps_ui_reply_data(ps_ui_req_t *rq, unsigned status, const char *ctype, const void *data, size_t len)
{
    return send_raw(rq, status, ctype, data, len, NULL, NULL);
}

int ps_ui_reply_download(ps_ui_req_t *rq, const char *ctype, const char *filename, const void *data, size_t len)
{
    char cd[200];

    snprintf(cd, sizeof(cd), "attachment; filename=\"%s\"", filename);
    return send_raw(rq, 200, ctype, data, len, "Content-Disposition", cd);
}

int ps_ui_reply_json(ps_ui_req_t *rq, unsigned status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    int rc;

    json_decref(v);
    if (!s)
        return ps_ui_reply_data(rq, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
    rc = ps_ui_reply_data(rq, status, "application/json; charset=utf-8", s, strlen(s));
    free(s);
    return rc;
}

int ps_ui_reply_error(ps_ui_req_t *rq, unsigned status, const char *en, const char *zh)
{
    return ps_ui_reply_json(rq, status, json_pack("{s:s}", "error", rq->zh && zh ? zh : en));
}

const char *ps_ui_rest(const ps_ui_req_t *rq) { return rq->rest ? rq->rest : ""; }
int ps_ui_zh(const ps_ui_req_t *rq) { return rq->zh; }
ps_cache_t *ps_ui_cache(const ps_ui_req_t *rq) { return rq->ui->cache; }
ps_ui_t *ps_ui_server(const ps_ui_req_t *rq) { return rq->ui; }
ps_cache_t *ps_ui_cache_of(ps_ui_t *ui) { return ui->cache; }
ps_ui_reach_t *ps_ui_reach_of(ps_ui_t *ui) { return ui->reach; }

uint64_t ps_ui_server_wait_ms(const ps_ui_req_t *rq)
{
    uint32_t s = ps_cache_meta(rq->ui->cache)->ui_timeout_s;
    return (uint64_t)(s ? s : PS_UI_TIMEOUT_DEFAULT_S) * 1000u;
}

void ps_ui_server_late(const ps_ui_req_t *rq, char *out, size_t len)
{
    unsigned s = (unsigned)(ps_ui_server_wait_ms(rq) / 1000u);
    if (rq->zh)
        snprintf(out, len, "区县服务器未在 %u 秒内答复", s);
    else
        snprintf(out, len, "The district server did not answer within %u s", s);
}
const char *ps_ui_data_dir(const ps_ui_t *ui) { return ui->data_dir; }
const char *ps_ui_url(const ps_ui_t *ui) { return ui->url; }
void *ps_ui_state(ps_ui_t *ui, ps_ui_slot_t slot) { return ui->state[slot]; }

void ps_ui_set_state(ps_ui_t *ui, ps_ui_slot_t slot, void *state, void (*free_fn)(void *))
{
    ui->state[slot] = state;
    ui->state_free[slot] = free_fn;
}
void ps_ui_cache_lock(ps_ui_t *ui) { pthread_mutex_lock(&ui->lock); }
void ps_ui_cache_unlock(ps_ui_t *ui) { pthread_mutex_unlock(&ui->lock); }
int ps_ui_cache_trylock(ps_ui_t *ui) { return pthread_mutex_trylock(&ui->lock) == 0 ? 0 : -1; }

const char *ps_ui_arg(const ps_ui_req_t *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const uint8_t *ps_ui_body(const ps_ui_req_t *rq, size_t *len)
{
    *len = rq->len;
    return rq->body ? rq->body : (const uint8_t *)"";
}

json_t *ps_ui_body_json(ps_ui_req_t *rq)
{
    json_error_t e;

    if (!rq->json && rq->len)
        rq->json = json_loadb((const char *)rq->body, rq->len, 0, &e);
    return json_is_object(rq->json) ? rq->json : NULL;
}

/* --- static files ------------------------------------------------------- */

static int dir_has_index(const char *dir)
{
    char p[PATH_MAX + 16];

    snprintf(p, sizeof(p), "%s/index.html", dir);
    return access(p, R_OK) == 0;
}

int ps_ui_web_dir(char *out, size_t outlen)
{
    const char *env = getenv("POPSYNC_WEB_DIR");
    char exe[PATH_MAX];
    ssize_t n;
    char *slash;

    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return dir_has_index(out) ? 0 : -1;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    if (!(slash = strrchr(exe, '/')))
        return -1;
    *slash = '\0';
    snprintf(out, outlen, "%s/web", exe); /* the build tree: CMake copies web/ there */
    if (dir_has_index(out))
        return 0;
    snprintf(out, outlen, "%s/../share/popsync/web", exe); /* installed */
    return dir_has_index(out) ? 0 : -1;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } t[] = {{".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
             {".css", "text/css; charset=utf-8"},   {".png", "image/png"},
             {".svg", "image/svg+xml"},             {".ico", "image/x-icon"},
             {".json", "application/json"}};
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot && i < sizeof(t) / sizeof(t[0]); i++)
        if (strcmp(dot, t[i].ext) == 0)
            return t[i].type;
    return NULL;
}

/* Only plain names below the root: letters, digits, '-', '_', '.', '/',
 * no "..", no hidden files, and a known extension. */
static int safe_path(const char *p)
{
    if (*p != '/' || strstr(p, "..") || strstr(p, "/.") || strlen(p) > 200)
        return 0;
    for (const char *s = p; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_' || *s == '.' || *s == '/'))
            return 0;
    return content_type(p) != NULL;
}

static int read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    int rc = PS_ENOTFOUND;

    if (!f)
        return rc;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= (off_t)UI_FILE_MAX &&
        (*data = malloc((size_t)st.st_size + 1))) {
        *len = fread(*data, 1, (size_t)st.st_size, f);
        (*data)[*len] = '\0';
        rc = PS_OK;
    }
    fclose(f);
    return rc;
}

/* The files of web/ (Chart.js, from Debian's libjs-chart.js, is served by
 * the district module: ui_district.c). */
static int serve_static(ps_ui_req_t *rq)
{
    char path[PATH_MAX + 256];
    const char *url = strcmp(rq->url, "/") == 0 ? "/index.html" : rq->url;
    char *data = NULL;
    size_t len = 0;

    if (!safe_path(url))
        return ps_ui_reply_error(rq, 404, "not found", "没有这个页面");
    snprintf(path, sizeof(path), "%s%s", rq->ui->web_dir, url);
    if (read_file(path, &data, &len) != PS_OK)
        return ps_ui_reply_error(rq, 404, "not found", "没有这个页面");
    ps_ui_reply_data(rq, 200, content_type(url), data, len);
    free(data);
    return PS_OK;
}

/* --- the checks every request passes ------------------------------------- */

static const char *cookie_of(ps_ui_req_t *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_COOKIE_KIND, name);
}

/* Host must name the address we listen on: a page of another site whose
 * name was made to resolve to 127.0.0.1 (DNS rebinding) sends its own. */
static int host_ok(ps_ui_req_t *rq)
{
    const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);

    return h && (strcmp(h, rq->ui->host) == 0 || (*rq->ui->host_alt && strcmp(h, rq->ui->host_alt) == 0));
}

static int refuse(ps_ui_req_t *rq, unsigned status, const char *en, const char *zh)
{
    rq->refused = 1;
    return ps_ui_reply_error(rq, status, en, zh);
}

/* The start token in the URL becomes the session cookie, and the browser
 * is sent to the same page without it (so it leaves no history). */
static int exchange_token(ps_ui_req_t *rq)
{
    char cookie[256], loc[300];
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok;

    if (!r)
        return PS_ENOMEM;
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict%s", rq->ui->cookie,
             rq->ui->session, rq->ui->tls ? "; Secure" : "");
    snprintf(loc, sizeof(loc), "%s", rq->url);
    security_headers(r);
    MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc);
    ok = MHD_queue_response(rq->conn, MHD_HTTP_SEE_OTHER, r);
    MHD_destroy_response(r);
    rq->replied = 1;
    return ok == MHD_YES ? PS_OK : PS_EIO;
}

/* 0: go on; else the request was answered (refused or redirected). */
static int check(ps_ui_req_t *rq)
{
    const char *tok;

    if (!host_ok(rq))
        return refuse(rq, 403, "wrong Host header: open the address popsync ui printed",
                      "Host 头不对：请打开 popsync ui 打印的地址"), 1;
    tok = ps_ui_arg(rq, "token");
    if (tok && strcmp(rq->method, "GET") == 0 && secret_eq(tok, rq->ui->token))
        return exchange_token(rq), 1;
    if (!secret_eq(cookie_of(rq, rq->ui->cookie), rq->ui->session))
        return refuse(rq, 403, "not signed in: open the address with the token that popsync ui printed",
                      "未登录：请打开 popsync ui 打印的带 token 的地址"), 1;
    if (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0)
        return 0;
    if (strcmp(rq->method, "POST") != 0)
        return refuse(rq, 405, "method not allowed", "不支持的请求方法"), 1;
    if (!secret_eq(MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-CSRF-Token"), rq->ui->csrf))
        return refuse(rq, 403, "missing or wrong CSRF token: reload the page", "缺少或错误的 CSRF 令牌：请刷新页面"),
               1;
    return 0;
}

/* --- dispatch ------------------------------------------------------------ */

static const ps_ui_route_t *find_route(const char *method, const char *url, const char **rest)
{
    for (size_t m = 0; ps_ui_modules[m]; m++) {
        const ps_ui_module_t *mod = ps_ui_modules[m];
        for (size_t i = 0; i < mod->nroutes; i++) {
            const ps_ui_route_t *r = &mod->routes[i];
            size_t n = strlen(r->path);
            if (strcmp(r->method, method) != 0)
                continue;
            if (r->prefix ? strncmp(url, r->path, n) == 0 : strcmp(url, r->path) == 0) {
                *rest = url + n;
                return r;
            }
        }
    }
    return NULL;
}

static int lock_cache(ps_ui_t *ui)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)UI_BUSY_WAIT_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return pthread_mutex_timedlock(&ui->lock, &ts) == 0 ? 0 : -1;
}

static void dispatch(ps_ui_req_t *rq)
{
    const char *m = strcmp(rq->method, "HEAD") == 0 ? "GET" : rq->method;
    const ps_ui_route_t *r = find_route(m, rq->url, &rq->rest);

    if (!r) {
        if (strcmp(m, "GET") == 0 && strncmp(rq->url, "/api/", 5) != 0)
            serve_static(rq);
        else
            ps_ui_reply_error(rq, 404, "no such request", "没有这个请求");
        return;
    }
    if (r->cache && lock_cache(rq->ui) != 0) {
        ps_ui_reply_error(rq, 503, "busy: a sync is running, try again in a moment", "正在同步，请稍候再试");
        return;
    }
    /* A person field may be typed as the person's ID number, as on the
     * command line; the resolver is per thread, and this is one of the
     * HTTP server's (a page's import unsets it when done). */
    if (r->cache)
        ps_record_set_person_resolver(ps_dup_resolve, ps_ui_cache(rq));
    r->fn(rq);
    if (r->cache)
        pthread_mutex_unlock(&rq->ui->lock);
    if (!rq->replied)
        ps_ui_reply_error(rq, 500, "internal error", "内部错误");
}

static int lang_zh(ps_ui_req_t *rq)
{
    const char *l = cookie_of(rq, "popsync_lang");

    if (l && strcmp(l, "en") == 0)
        return 0;
    if (l && strcmp(l, "zh") == 0)
        return 1;
    return rq->ui->zh;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    ps_ui_t *ui = cls;
    ps_ui_req_t *rq = *con_cls;

    (void)version;
    if (!rq) {
        if (!(rq = calloc(1, sizeof(*rq))))
            return MHD_NO;
        *con_cls = rq;
        rq->ui = ui;
        rq->conn = conn;
        rq->method = method;
        rq->url = url;
        rq->zh = lang_zh(rq);
        /* Refused (or redirected) before any body is read. */
        check(rq);
        return MHD_YES;
    }
    if (rq->replied)
        return (*upload_size = 0), MHD_YES;
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->too_big || rq->len + n > UI_BODY_MAX) {
            rq->too_big = 1;
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 4096;
            uint8_t *b;
            while (cap < rq->len + n + 1)
                cap *= 2;
            if (!(b = realloc(rq->body, cap)))
                return MHD_NO;
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload, n);
        rq->len += n;
        rq->body[rq->len] = 0;
        return MHD_YES;
    }
    clock_gettime(CLOCK_MONOTONIC, &rq->t0);
    if (rq->too_big)
        ps_ui_reply_error(rq, 413, "the file is too big (16 MB at most)", "文件太大（最多 16 MB）");
    else
        dispatch(rq);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode tc)
{
    ps_ui_req_t *rq = *con_cls;

    (void)cls, (void)conn, (void)tc;
    if (!rq)
        return;
    json_decref(rq->json);
    free(rq->body);
    free(rq);
    *con_cls = NULL;
}

/* --- start and stop -------------------------------------------------------- */

/* The address the pages are served on: 127.0.0.1 and a free port without
 * --listen; otherwise "IPV4:PORT" or "[IPV6]:PORT", one address (the Host
 * check needs it), never 0.0.0.0 or ::. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    char host[64];
    const char *h = listen, *colon = listen ? strrchr(listen, ':') : NULL;
    size_t hlen;
    char *end;
    long port;

    memset(ss, 0, sizeof(*ss));
    if (!listen) {
        v4->sin_family = AF_INET;
        v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return PS_OK;
    }
    if (colon && listen[0] == '[' && colon > listen && colon[-1] == ']')
        h = listen + 1; /* [IPV6]:PORT */
    hlen = colon ? (size_t)(colon - h) - (h != listen) : 0;
    if (!colon || hlen == 0 || hlen >= sizeof(host))
        goto bad;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || port < 0 || port > 65535)
        goto bad;
    if (h == listen && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        if (v4->sin_addr.s_addr == htonl(INADDR_ANY)) {
            snprintf(err, errlen, "--listen: give the one address to serve on, not 0.0.0.0 (the Host check needs it)");
            return PS_EINVAL;
        }
        return PS_OK;
    }
    if (h != listen && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr)) {
            snprintf(err, errlen, "--listen: give the one address to serve on, not [::] (the Host check needs it)");
            return PS_EINVAL;
        }
        return PS_OK;
    }
bad:
    snprintf(err, errlen, "--listen must be ADDR:PORT (an IPv4 address) or [ADDR]:PORT (an IPv6 address)");
    return PS_EINVAL;
}

/* Loopback: 127.0.0.0/8 or ::1, served as plain HTTP. */
static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
}

static int load_pem(const char *path, char **out, char *err, size_t errlen)
{
    size_t len;

    if (read_file(path, out, &len) != PS_OK) {
        snprintf(err, errlen, "cannot read %s for TLS", path);
        return PS_EIO;
    }
    return PS_OK;
}

static int start_daemon(ps_ui_t *ui, struct sockaddr_storage *ss, unsigned *port, char *err, size_t errlen)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;

    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;

    if (ui->tls)
        ui->d = MHD_start_daemon(flags | MHD_USE_TLS, 0, NULL, NULL, on_request, ui, MHD_OPTION_SOCK_ADDR, ss,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, ui, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                                 MHD_OPTION_HTTPS_MEM_KEY, ui->tls_key, MHD_OPTION_HTTPS_MEM_CERT, ui->tls_cert,
                                 MHD_OPTION_END);
    else
        ui->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, ui, MHD_OPTION_SOCK_ADDR, ss,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, ui, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
    if (!ui->d) {
        snprintf(err, errlen, "cannot listen there (%s)", strerror(errno));
        return PS_EIO;
    }
    info = MHD_get_daemon_info(ui->d, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || !info->port) {
        snprintf(err, errlen, "cannot learn the port listened on");
        return PS_EIO;
    }
    *port = info->port;
    return PS_OK;
}

int ps_ui_start(ps_ui_t **out, ps_cache_t *c, const char *data_dir, const ps_ui_opts_t *o, char *err, size_t errlen)
{
    ps_ui_t *ui = calloc(1, sizeof(*ui));
    struct sockaddr_storage ss;
    char addr[INET6_ADDRSTRLEN];
    unsigned port = 0;
    uint64_t force = 0;
    int rc;

    if (!ui)
        return PS_ENOMEM;
    pthread_mutex_init(&ui->lock, NULL);
    ui->cache = c;
    if (!(ui->reach = ps_ui_reach_new())) {
        rc = PS_ENOMEM;
        goto fail;
    }
    ui->zh = o->zh;
    snprintf(ui->data_dir, sizeof(ui->data_dir), "%s", data_dir);
    if (o->web_dir)
        snprintf(ui->web_dir, sizeof(ui->web_dir), "%s", o->web_dir);
    else if (ps_ui_web_dir(ui->web_dir, sizeof(ui->web_dir)) != 0) {
        snprintf(err, errlen, "cannot find the web pages (web/index.html beside the binary, "
                              "../share/popsync/web, or $POPSYNC_WEB_DIR)");
        rc = PS_ENOTFOUND;
        goto fail;
    }
    if ((rc = secret(ui->token)) || (rc = secret(ui->session)) || (rc = secret(ui->csrf)))
        goto fail;
    if ((rc = parse_listen(o->listen, &ss, err, errlen)))
        goto fail;
    /* Anything but loopback only over TLS, with the cache's own certificate
     * (a test build can ask for TLS on loopback: POPSYNC_UI_TLS=1). */
    ui->tls = !is_loopback(&ss) || (ps_test_hook_u64("POPSYNC_UI_TLS", &force) == 1 && force);
    if (ui->tls && ((rc = load_pem(ps_cache_meta(c)->cert, &ui->tls_cert, err, errlen)) ||
                    (rc = load_pem(ps_cache_meta(c)->key, &ui->tls_key, err, errlen))))
        goto fail;
    if ((rc = start_daemon(ui, &ss, &port, err, errlen)))
        goto fail;
    /* What a browser sends as Host for that address (RFC 3986: IPv6 in brackets). */
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
        snprintf(ui->host, sizeof(ui->host), "[%s]:%u", addr, port);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
        snprintf(ui->host, sizeof(ui->host), "%s:%u", addr, port);
    }
    if (!ui->tls)
        snprintf(ui->host_alt, sizeof(ui->host_alt), "localhost:%u", port);
    snprintf(ui->cookie, sizeof(ui->cookie), "popsync_ui_%u", port);
    snprintf(ui->url, sizeof(ui->url), "%s://%s/?token=%s", ui->tls ? "https" : "http", ui->host, ui->token);
    *out = ui;
    return PS_OK;
fail:
    ps_ui_stop(ui);
    return rc;
}

void ps_ui_stop(ps_ui_t *ui)
{
    if (!ui)
        return;
    if (ui->d)
        MHD_stop_daemon(ui->d);
    for (int i = 0; i < PS_UI_NSLOTS; i++)
        if (ui->state[i] && ui->state_free[i])
            ui->state_free[i](ui->state[i]);
    if (ui->tls_key)
        ps_zeroize(ui->tls_key, strlen(ui->tls_key));
    free(ui->tls_key);
    free(ui->tls_cert);
    ps_ui_reach_free(ui->reach);
    pthread_mutex_destroy(&ui->lock);
    ps_zeroize(ui, sizeof(*ui));
    free(ui);
}

/* --- the core module: what every page needs -------------------------------- */

static int h_session(ps_ui_req_t *rq)
{
    const ps_cache_meta_t *m = ps_cache_meta(ps_ui_cache(rq));
    json_t *nav = json_array();
    json_t *o;

    for (size_t k = 0; ps_ui_modules[k]; k++)
        for (size_t i = 0; i < ps_ui_modules[k]->nnav; i++) {
            const ps_ui_nav_t *n = &ps_ui_modules[k]->nav[i];
            if (n->roles && !strstr(n->roles, m->role))
                continue;
            json_array_append_new(nav, json_pack("{s:s,s:s}", "href", n->href, "label", rq->zh ? n->zh : n->en));
        }
    o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o}", "csrf", rq->ui->csrf, "lang", rq->zh ? "zh" : "en", "role", m->role,
                  "orgunit", m->orgunit, "name", m->name, "nav", nav);
    return ps_ui_reply_json(rq, 200, o);
}

static const ps_ui_route_t core_routes[] = {
    {"GET", "/api/session", 0, 1, h_session},
};

const ps_ui_module_t ps_ui_core_module = {"core", core_routes, sizeof(core_routes) / sizeof(core_routes[0]), NULL, 0};
