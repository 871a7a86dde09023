/* config.c - popsyncd's config file (INI, parsed with inih) and --check-config.
 *
 * Owns: the table of sections and keys below, their parsing into
 * ps_server_opts_t, the flags of config.h, and the checks of
 * --check-config.  See config.h and packaging/popsyncd.conf.sample.
 */
#include "config.h"
#include "err.h"
#include "log.h"
#include "orgunit.h"
#include "tls.h"
#include "upstream.h"

#include <ini.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum ktype { K_STR, K_ADDR, K_U32, K_U32_POS, K_U64, K_SIZE, K_MIB, K_BOOL, K_LEVEL } ktype_t;

typedef struct ckey {
    const char *section, *name;
    ktype_t type;
    size_t off; /* into ps_server_opts_t (unused for K_LEVEL) */
} ckey_t;

#define O(f) offsetof(ps_server_opts_t, f)
static const ckey_t g_keys[] = {
    {"server", "listen", K_ADDR, O(listen)},
    {"server", "data", K_STR, O(data_dir)},
    {"server", "map_size_mb", K_MIB, O(map_size)},
    {"server", "map_size_max_mb", K_MIB, O(map_max)},
    {"server", "orgunits", K_STR, O(orgunits_file)},
    {"server", "timezone", K_STR, O(timezone)},
    {"server", "allow_synthetic", K_BOOL, O(allow_synthetic)},
    {"server", "log_level", K_LEVEL, 0},
    {"tls", "ca", K_STR, O(ca_file)},
    {"tls", "cert", K_STR, O(cert_file)},
    {"tls", "key", K_STR, O(key_file)},
    {"tls", "crl", K_STR, O(crl_file)},
    {"limits", "max_conns", K_U32_POS, O(max_conns)},
    {"limits", "max_conns_per_cert", K_U32, O(max_conns_per_cert)},
    {"limits", "max_frame", K_U32_POS, O(max_frame)},
    {"limits", "max_push", K_U32_POS, O(max_push_changes)},
    {"limits", "pull_batch", K_U32_POS, O(pull_max_records)},
    {"limits", "pull_cache_mb", K_MIB, O(pull_cache)},
    {"limits", "push_decode_mb", K_MIB, O(push_decode_budget)},
    {"limits", "commit_max_changes", K_U32_POS, O(commit_max_changes)},
    {"limits", "handshake_timeout_ms", K_U64, O(handshake_ms)},
    {"limits", "idle_timeout_ms", K_U64, O(idle_ms)},
    {"limits", "max_future_ms", K_U64, O(max_future_ms)},
    {"limits", "max_output", K_SIZE, O(max_output)},
    {"limits", "partial_budget_mb", K_MIB, O(partial_budget)},
    {"limits", "partial_budget_per_cert_mb", K_MIB, O(partial_budget_per_cert)},
    {"limits", "min_frame_rate", K_U32, O(min_frame_rate)},
    {"limits", "frame_grace_ms", K_U64, O(frame_grace_ms)},
    {"limits", "handshake_threads", K_U32, O(handshake_threads)},
    {"metrics", "listen", K_ADDR, O(metrics_listen)},
    {"metrics", "allow_remote", K_BOOL, O(metrics_allow_remote)},
    {"upstream", "urls", K_STR, O(upstream_urls)},
    {"upstream", "ca", K_STR, O(upstream_ca)},
    {"upstream", "cert", K_STR, O(upstream_cert)},
    {"upstream", "key", K_STR, O(upstream_key)},
    {"upstream", "district", K_STR, O(upstream_district)},
    {"upstream", "max_in_flight", K_U32_POS, O(upstream_max_in_flight)},
    {"upstream", "replicas", K_U32_POS, O(upstream_replicas)},
    {"upstream", "duplicate_window_s", K_U64, O(upstream_dup_window_s)},
    {"upstream", "province_orgunits", K_STR, O(upstream_province_orgunits)},
    {"upstream", "migrants", K_STR, O(upstream_migrants)},
    {"upstream", "inbox_prefix", K_STR, O(upstream_inbox_prefix)},
};
#undef O

/* Strings from the file, kept until exit (reachable, so not a leak). */
static char *g_owned[64];
static size_t g_nowned;

typedef struct parse_ctx {
    ps_config_t *cfg;
    ps_server_opts_t *opts;
    FILE *f;
    int line, lines_done;
} parse_ctx_t;

static void problem(ps_config_t *cfg, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void problem(ps_config_t *cfg, int line, const char *fmt, ...)
{
    va_list ap;
    if (line > 0)
        fprintf(stderr, "popsyncd: %s:%d: ", cfg->path, line);
    else
        fprintf(stderr, "popsyncd: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cfg->problems++;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!*s || s[0] == '-' || s[0] == '+')
        return PS_EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end || errno)
        return PS_EINVAL;
    *out = v;
    return PS_OK;
}

static int parse_bool(const char *s, int *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = 1;
            return PS_OK;
        }
        if (!strcasecmp(s, no[i])) {
            *out = 0;
            return PS_OK;
        }
    }
    return PS_EINVAL;
}

static const char *own(const char *s)
{
    char *p;
    if (g_nowned == sizeof(g_owned) / sizeof(g_owned[0]) || !(p = strdup(s)))
        return NULL;
    g_owned[g_nowned++] = p;
    return p;
}

/* Stores value for key k; describes a bad value in why. */
static int set_value(ps_server_opts_t *o, const ckey_t *k, const char *value, char *why, size_t whylen)
{
    uint8_t *base = (uint8_t *)o;
    uint64_t v = 0;
    int b;

    switch (k->type) {
    case K_ADDR: {
        struct sockaddr_storage ss;
        if (*value && ps_listen_addr_parse(value, &ss) != PS_OK) {
            snprintf(why, whylen, "'%s' is not an address HOST:PORT (IP address, or [IPv6]:PORT)", value);
            return PS_EINVAL;
        }
    }
        /* fall through */
    case K_STR: {
        const char *s = *value ? own(value) : NULL;
        if (*value && !s) {
            snprintf(why, whylen, "out of memory");
            return PS_ENOMEM;
        }
        memcpy(base + k->off, &s, sizeof(s));
        return PS_OK;
    }
    case K_BOOL:
        if (parse_bool(value, &b)) {
            snprintf(why, whylen, "'%s' is not true or false", value);
            return PS_EINVAL;
        }
        memcpy(base + k->off, &b, sizeof(b));
        return PS_OK;
    case K_LEVEL:
        if ((b = ps_log_level_from_name(value)) < 0) {
            snprintf(why, whylen, "'%s' is not a log level (debug, info, warn, error, off)", value);
            return PS_EINVAL;
        }
        ps_log_set_level((ps_log_level_t)b);
        return PS_OK;
    default: break;
    }
    if (parse_u64(value, &v)) {
        snprintf(why, whylen, "'%s' is not a non-negative whole number", value);
        return PS_EINVAL;
    }
    switch (k->type) {
    case K_U32:
    case K_U32_POS: {
        uint32_t u = (uint32_t)v;
        if (v > UINT32_MAX) {
            snprintf(why, whylen, "%s is larger than %u", value, UINT32_MAX);
            return PS_EINVAL;
        }
        if (k->type == K_U32_POS && v == 0) {
            snprintf(why, whylen, "must be at least 1");
            return PS_EINVAL;
        }
        memcpy(base + k->off, &u, sizeof(u));
        return PS_OK;
    }
    case K_U64: memcpy(base + k->off, &v, sizeof(v)); return PS_OK;
    case K_SIZE:
    case K_MIB: {
        size_t z;
        if (k->type == K_MIB && v > (SIZE_MAX >> 20)) {
            snprintf(why, whylen, "%s MiB is too large", value);
            return PS_EINVAL;
        }
        z = k->type == K_MIB ? (size_t)v << 20 : (size_t)v;
        memcpy(base + k->off, &z, sizeof(z));
        return PS_OK;
    }
    default: return PS_EINVAL;
    }
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx_t *x = user;
    char why[256], where[128] = "";
    size_t n = 0;

    for (size_t i = 0; i < sizeof(g_keys) / sizeof(g_keys[0]); i++) {
        const ckey_t *k = &g_keys[i];
        if (strcmp(k->name, name) != 0)
            continue;
        if (strcmp(k->section, section) != 0) {
            /* Remember where it would belong, for the message. */
            n += (size_t)snprintf(where + n, n < sizeof(where) ? sizeof(where) - n : 0, "%s[%s]", n ? " or " : "",
                                  k->section);
            if (n >= sizeof(where))
                n = sizeof(where) - 1;
            continue;
        }
        if (set_value(x->opts, k, value, why, sizeof(why)) != PS_OK)
            problem(x->cfg, x->line, "[%s] %s: %s", section, name, why);
        return 1;
    }
    if (!*section)
        problem(x->cfg, x->line, "key '%s' outside a section%s%s%s", name, n ? " (it belongs in " : "", where,
                n ? ")" : "");
    else if (n)
        problem(x->cfg, x->line, "unknown key '%s' in [%s] (it belongs in %s)", name, section, where);
    else
        problem(x->cfg, x->line, "unknown key '%s' in [%s]", name, section);
    return 1; /* go on: report every problem */
}

/* fgets for inih that counts lines, so problems can name theirs. */
static char *reader(char *str, int num, void *stream)
{
    parse_ctx_t *x = stream;
    char *r = fgets(str, num, x->f);
    size_t n;
    if (!r)
        return NULL;
    x->line = x->lines_done + 1;
    n = strlen(r);
    if (n && r[n - 1] == '\n')
        x->lines_done++;
    else if (!feof(x->f))
        problem(x->cfg, x->line, "line longer than %d characters", num - 2);
    return r;
}

static int load_file(ps_config_t *cfg, ps_server_opts_t *opts)
{
    parse_ctx_t x;
    int r;

    memset(&x, 0, sizeof(x));
    x.cfg = cfg;
    x.opts = opts;
    if (!(x.f = fopen(cfg->path, "r"))) {
        problem(cfg, 0, "cannot read config file %s: %s", cfg->path, strerror(errno));
        return PS_ENOTFOUND;
    }
    r = ini_parse_stream(reader, &x, on_key, &x);
    fclose(x.f);
    if (r > 0)
        problem(cfg, r, "syntax error (want [section] or key = value; comments start with # or ;)");
    return PS_OK;
}

int ps_config_prepare(ps_config_t *cfg, int argc, char **argv, ps_server_opts_t *opts)
{
    memset(cfg, 0, sizeof(*cfg));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--check-config"))
            cfg->check = 1;
        else if (!strcmp(argv[i], "--config") && i + 1 < argc)
            cfg->path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            cfg->path = argv[i] + 9;
    }
    if (!cfg->path)
        return PS_OK;
    load_file(cfg, opts);
    if (cfg->problems && !cfg->check) {
        fprintf(stderr, "popsyncd: %d problem%s in %s (popsyncd --check-config --config %s checks it)\n",
                cfg->problems, cfg->problems == 1 ? "" : "s", cfg->path, cfg->path);
        return PS_EINVAL;
    }
    return PS_OK;
}

int ps_config_is_flag(int opt)
{
    return opt >= PS_OPT_CONFIG && opt < PS_OPT_LAST;
}

int ps_config_flag(ps_config_t *cfg, ps_server_opts_t *opts, int opt, const char *arg)
{
    uint64_t v;
    (void)cfg;
    switch (opt) {
    case PS_OPT_CONFIG:
    case PS_OPT_CHECK_CONFIG: return 0; /* read by ps_config_prepare */
    case PS_OPT_METRICS: opts->metrics_listen = arg; return 0;
    case PS_OPT_METRICS_ALLOW_REMOTE: opts->metrics_allow_remote = 1; return 0;
    case PS_OPT_ALLOW_SYNTHETIC: opts->allow_synthetic = 1; return 0;
    default: break;
    }
    if (parse_u64(arg, &v)) {
        fprintf(stderr, "popsyncd: '%s' is not a non-negative number\n", arg);
        return 2;
    }
    if (opt == PS_OPT_MAX_OUTPUT)
        opts->max_output = (size_t)v;
    return 0;
}

/* A file that must exist and be readable. */
static int check_readable(ps_config_t *cfg, const char *what, const char *path)
{
    struct stat sb;
    errno = 0;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || access(path, R_OK) != 0) {
        problem(cfg, 0, "%s %s: %s", what, path, errno ? strerror(errno) : "not a readable file");
        return 0;
    }
    return 1;
}

static void check_data_dir(ps_config_t *cfg, const char *dir)
{
    struct stat sb;
    char parent[PATH_MAX];
    const char *slash;

    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            problem(cfg, 0, "data %s is not a directory", dir);
        else if (access(dir, R_OK | W_OK | X_OK) != 0)
            problem(cfg, 0, "data directory %s is not writable by this user", dir);
        return;
    }
    /* ps_store_open makes the last component; its parent must be there. */
    slash = strrchr(dir, '/');
    if (!slash)
        snprintf(parent, sizeof(parent), ".");
    else if (slash == dir)
        snprintf(parent, sizeof(parent), "/");
    else
        snprintf(parent, sizeof(parent), "%.*s", (int)(slash - dir), dir);
    if (access(parent, W_OK | X_OK) != 0)
        problem(cfg, 0, "data directory %s does not exist and %s is not writable: %s", dir, parent, strerror(errno));
}

int ps_config_check(const ps_config_t *in, const ps_server_opts_t *o)
{
    ps_config_t cfg = *in;
    struct sockaddr_storage ss;
    char err[512];
    int files_ok = 1;

    if (!o->listen)
        problem(&cfg, 0, "no listen address: set [server] listen or --listen");
    else if (ps_listen_addr_parse(o->listen, &ss) != PS_OK)
        problem(&cfg, 0, "listen address '%s' is not HOST:PORT", o->listen);
    if (!o->data_dir)
        problem(&cfg, 0, "no data directory: set [server] data or --data");
    else
        check_data_dir(&cfg, o->data_dir);
    if (!o->ca_file)
        problem(&cfg, 0, "no CA certificate: set [tls] ca or --ca");
    if (!o->cert_file)
        problem(&cfg, 0, "no server certificate: set [tls] cert or --cert");
    if (!o->key_file)
        problem(&cfg, 0, "no server key: set [tls] key or --key");
    errno = 0;
    if (o->ca_file && !check_readable(&cfg, "CA certificate", o->ca_file))
        files_ok = 0;
    if (o->cert_file && !check_readable(&cfg, "server certificate", o->cert_file))
        files_ok = 0;
    if (o->key_file && !check_readable(&cfg, "server key", o->key_file))
        files_ok = 0;
    if (o->crl_file && !check_readable(&cfg, "CRL", o->crl_file))
        files_ok = 0;
    if (files_ok && o->ca_file && o->cert_file && o->key_file) {
        ps_tls_conf_t *tls = NULL;
        if (ps_tls_conf_new(&tls, PS_TLS_SERVER, o->ca_file, o->cert_file, o->key_file, o->crl_file, err,
                            sizeof(err)) != PS_OK)
            problem(&cfg, 0, "TLS files do not load: %s", err);
        else if (ps_tls_conf_self(tls)->role != PS_ROLE_SERVER)
            problem(&cfg, 0, "certificate %s has role %s, not server", o->cert_file, ps_tls_conf_self(tls)->role_name);
        ps_tls_conf_free(tls);
    }
    if (o->orgunits_file && check_readable(&cfg, "org-unit file", o->orgunits_file)) {
        ps_orgunits_t *u = NULL;
        if (ps_orgunits_load(o->orgunits_file, &u, err, sizeof(err)) != PS_OK)
            problem(&cfg, 0, "org-unit file %s does not load: %s", o->orgunits_file, err);
        ps_orgunits_free(u);
    }
    if (o->timezone && ps_tz_valid(o->timezone, err, sizeof(err)) != PS_OK)
        problem(&cfg, 0, "timezone: %s", err);
    if (o->metrics_listen) {
        if (ps_listen_addr_parse(o->metrics_listen, &ss) != PS_OK)
            problem(&cfg, 0, "metrics address '%s' is not HOST:PORT", o->metrics_listen);
        else if (!ps_addr_is_loopback(&ss) && !o->metrics_allow_remote)
            problem(&cfg, 0, "metrics address %s is not loopback: set [metrics] allow_remote = true to allow it",
                    o->metrics_listen);
    }
    if (o->upstream_urls || o->upstream_district) {
        ps_upstream_opts_t uo;
        ps_config_upstream_opts(o, &uo);
        if (ps_upstream_check(&uo, err, sizeof(err)) != PS_OK)
            problem(&cfg, 0, "%s", err);
        if (uo.ca_file)
            check_readable(&cfg, "NATS CA certificate", uo.ca_file);
        if (uo.cert_file)
            check_readable(&cfg, "NATS client certificate", uo.cert_file);
        if (uo.key_file)
            check_readable(&cfg, "NATS client key", uo.key_file);
        if (o->upstream_province_orgunits &&
            check_readable(&cfg, "province org-unit file", o->upstream_province_orgunits)) {
            ps_orgunits_t *pu = NULL;
            if (ps_orgunits_load(o->upstream_province_orgunits, &pu, err, sizeof(err)) != PS_OK)
                problem(&cfg, 0, "province org-unit file %s does not load: %s", o->upstream_province_orgunits, err);
            ps_orgunits_free(pu);
        }
    }
    if (o->map_max && o->map_max < o->map_size)
        problem(&cfg, 0, "map_size_max_mb (%zu) is below map_size_mb (%zu)", o->map_max >> 20, o->map_size >> 20);
    if (o->max_frame < 65536)
        problem(&cfg, 0, "max_frame %u is too small (at least 65536)", o->max_frame);
    if (o->handshake_ms == 0 || o->idle_ms == 0)
        problem(&cfg, 0, "handshake_timeout_ms and idle_timeout_ms must be above 0");
    if (cfg.problems) {
        fprintf(stderr, "popsyncd: %d problem%s in the configuration\n", cfg.problems, cfg.problems == 1 ? "" : "s");
        return 1;
    }
    printf("config OK\n");
    return 0;
}

void ps_config_upstream_opts(const ps_server_opts_t *o, ps_upstream_opts_t *out)
{
    memset(out, 0, sizeof(*out));
    out->urls = o->upstream_urls;
    out->ca_file = o->upstream_ca;
    out->cert_file = o->upstream_cert;
    out->key_file = o->upstream_key;
    out->district = o->upstream_district;
    out->max_in_flight = o->upstream_max_in_flight;
    out->replicas = o->upstream_replicas;
    out->dup_window_s = o->upstream_dup_window_s;
    out->migrants = o->upstream_migrants;
    out->inbox_prefix = o->upstream_inbox_prefix;
}
