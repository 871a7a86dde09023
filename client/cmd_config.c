/* cmd_config.c - `popsync config show|set`: how this cache reaches its
 * server (and how long `popsync ui`'s pages wait for it), changeable
 * without making a new cache (and so without losing the changes it has
 * not sent yet). */
#include "cache.h"
#include "cli.h"
#include "err.h"
#include "ids.h"
#include "paths.h"
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int config_usage(FILE *f)
{
    fprintf(f, "usage: popsync config show\n"
               "       popsync config set server HOST:PORT | server_name NAME | ca FILE | cert FILE | key FILE\n"
               "       popsync config set ui_timeout SECONDS | ui_retry_after SECONDS\n"
               "  shows or changes how this cache reaches its server; nothing else in the cache changes.\n"
               "  ui_timeout: how long a page of 'popsync ui' waits for the server before it shows\n"
               "  what the cache holds (1-300 s; 0: the default, 10 s).  The CLI commands wait as before.\n"
               "  ui_retry_after: once the server did not answer, how long those pages show what the cache\n"
               "  holds at once without asking it again (1-3600 s; 0: the default, 60 s).\n"
               "  A new certificate (cert, with its key) must be of this cache's role and unit:\n"
               "  a certificate for another unit needs a new cache.\n"
               "  example: popsync config set server_name popsyncd-2\n");
    return f == stdout ? PS_EXIT_OK : PS_EXIT_USAGE;
}

static void show(const ps_cache_meta_t *m)
{
    char node[PS_UUID_STR];

    ps_uuid_format(m->node, node);
    printf("server       %s\nserver_name  %s\nca           %s\ncert         %s\nkey          %s\n", m->server,
           m->server_name, m->ca, m->cert, m->key);
    printf("role         %s\norgunit      %s\nnode         %s\nprotection   %s\n", m->role, m->orgunit, node,
           m->key_file[0] ? m->key_file : "passphrase");
    printf("timezone     %s\n", m->timezone[0] ? m->timezone : "(not yet known)");
    printf("ui_timeout   %u s%s\n", m->ui_timeout_s ? m->ui_timeout_s : PS_UI_TIMEOUT_DEFAULT_S,
           m->ui_timeout_s ? "" : " (default)");
    printf("ui_retry_after %u s%s\n", m->ui_retry_after_s ? m->ui_retry_after_s : PS_UI_RETRY_AFTER_DEFAULT_S,
           m->ui_retry_after_s ? "" : " (default)");
}

/* The pages' seconds: the wait for the server (ui_timeout), long enough
 * for a slow link and short enough that a clerk is not left staring at a
 * page; the time they leave a silent server alone (ui_retry_after). */
typedef struct ui_secs {
    const char *key;
    uint32_t dflt, max;
    int (*store)(ps_cache_t *c, uint32_t seconds);
} ui_secs_t;

static const ui_secs_t UI_SECS[] = {
    {"ui_timeout", PS_UI_TIMEOUT_DEFAULT_S, PS_UI_TIMEOUT_MAX_S, ps_cache_set_ui_timeout},
    {"ui_retry_after", PS_UI_RETRY_AFTER_DEFAULT_S, PS_UI_RETRY_AFTER_MAX_S, ps_cache_set_ui_retry_after},
};

static int set_ui_secs(ps_cache_t *c, const ui_secs_t *k, const char *value)
{
    char *end = NULL;
    unsigned long s = strtoul(value, &end, 10);
    int rc;

    if (!*value || *end || value[0] == '-' || s > k->max) {
        ps_cli_err("config: %s must be a whole number of seconds from 1 to %u (0: the default, %u), not '%s'",
                   k->key, k->max, k->dflt, value);
        return PS_EXIT_INVALID;
    }
    if ((rc = k->store(c, (uint32_t)s))) {
        ps_cli_err("config: %s", ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    printf("%s set to %u s%s\n", k->key, s ? (unsigned)s : k->dflt, s ? "" : " (default)");
    return PS_EXIT_OK;
}

/* A certificate and key of the same identity as the cache's. */
static int check_cert(const ps_cache_meta_t *m, const char *ca, const char *cert, const char *key)
{
    ps_tls_conf_t *conf = NULL;
    char err[256];
    int rc = ps_tls_conf_new(&conf, PS_TLS_CLIENT, ca, cert, key, NULL, err, sizeof(err));

    if (rc) {
        ps_cli_err("config: %s", err);
        return PS_EXIT_INVALID;
    }
    if (strcmp(ps_tls_conf_self(conf)->role_name, m->role) != 0 ||
        strcmp(ps_tls_conf_self(conf)->orgunit, m->orgunit) != 0) {
        ps_cli_err("config: that certificate is for %s %s, this cache is %s %s: a certificate for another unit or "
                   "role needs a new cache (popsync init)",
                   ps_tls_conf_self(conf)->role_name, ps_tls_conf_self(conf)->orgunit, m->role, m->orgunit);
        rc = PS_EXIT_INVALID;
    }
    ps_tls_conf_free(conf);
    return rc;
}

static int set(ps_cache_t *c, const char *key, const char *value)
{
    const ps_cache_meta_t *m = ps_cache_meta(c);
    char path[PATH_MAX], err[256];
    int file = strcmp(key, "ca") == 0 || strcmp(key, "cert") == 0 || strcmp(key, "key") == 0, rc;

    for (size_t i = 0; i < sizeof(UI_SECS) / sizeof(UI_SECS[0]); i++)
        if (strcmp(key, UI_SECS[i].key) == 0)
            return set_ui_secs(c, &UI_SECS[i], value);
    if (!file && strcmp(key, "server") != 0 && strcmp(key, "server_name") != 0)
        return config_usage(stderr);
    if (file && ps_abs_path(value, path, err, sizeof(err)) != PS_OK) {
        ps_cli_err("config: %s", err);
        return PS_EXIT_INVALID;
    }
    if (strcmp(key, "server") == 0 && !strchr(value, ':')) {
        ps_cli_err("config: server must be HOST:PORT");
        return PS_EXIT_INVALID;
    }
    if (file && (rc = check_cert(m, strcmp(key, "ca") == 0 ? path : m->ca, strcmp(key, "cert") == 0 ? path : m->cert,
                                 strcmp(key, "key") == 0 ? path : m->key)))
        return rc;
    if ((rc = ps_cache_set_connection(c, key, file ? path : value))) {
        ps_cli_err("config: %s", ps_strerror(rc));
        return PS_EXIT_FAIL;
    }
    printf("%s set to %s\n", key, file ? path : value);
    return PS_EXIT_OK;
}

int ps_cmd_config(ps_cli_t *cli, int argc, char **argv)
{
    ps_cache_t *c = NULL;
    char err[512];
    int rc;

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0))
        return config_usage(stdout);
    if (!((argc == 2 && strcmp(argv[1], "show") == 0) || (argc == 4 && strcmp(argv[1], "set") == 0)))
        return config_usage(stderr);
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("config: %s", err);
        return PS_EXIT_FAIL;
    }
    if (argc == 2) {
        show(ps_cache_meta(c));
        rc = PS_EXIT_OK;
    } else {
        rc = set(c, argv[2], argv[3]);
    }
    ps_cache_close(c);
    return rc;
}
