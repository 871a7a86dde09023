/* config.h - popsyncd's config file and the flags issue 9 added.
 *
 * Owns: the INI file format (packaging/popsyncd.conf.sample lists every key),
 * reading it into ps_server_opts_t before the command-line flags (so flags
 * override the file), the flags --config, --check-config, --metrics,
 * --metrics-allow-remote and --max-output, and `popsyncd --check-config`, which reports every
 * problem (unknown keys with their line, bad numbers, files that do not
 * load) and exits non-zero, or prints "config OK".
 *
 * Strings read from the file live until the process exits.
 */
#ifndef PS_CONFIG_H
#define PS_CONFIG_H

#include <getopt.h>

#include "server.h"

/* getopt codes of the flags owned here: above any character. */
enum {
    PS_OPT_CONFIG = 0x400,
    PS_OPT_CHECK_CONFIG,
    PS_OPT_METRICS,
    PS_OPT_METRICS_ALLOW_REMOTE,
    PS_OPT_MAX_OUTPUT,
    PS_OPT_ALLOW_SYNTHETIC,
    PS_OPT_LAST
};

/** Entries for main's getopt_long table. */
#define PS_CONFIG_LONGOPTS                                                                                        \
    {"config", required_argument, NULL, PS_OPT_CONFIG}, {"check-config", no_argument, NULL, PS_OPT_CHECK_CONFIG}, \
        {"metrics", required_argument, NULL, PS_OPT_METRICS},                                                     \
        {"metrics-allow-remote", no_argument, NULL, PS_OPT_METRICS_ALLOW_REMOTE},                                 \
        {"max-output", required_argument, NULL, PS_OPT_MAX_OUTPUT},                                               \
        {"allow-synthetic", no_argument, NULL, PS_OPT_ALLOW_SYNTHETIC}

/** Usage lines for these flags. */
#define PS_CONFIG_USAGE                                                                                   \
    "  --config FILE           read settings from this INI file first (flags override it)\n"             \
    "  --check-config          check the settings (file and flags), load every file they name, exit\n"   \
    "  --metrics HOST:PORT     serve Prometheus metrics at http://HOST:PORT/metrics (loopback)\n"        \
    "  --metrics-allow-remote  allow a non-loopback --metrics address\n"                                  \
    "  --max-output BYTES      queued output per connection before reading stops (default 8388608)\n"     \
    "  --allow-synthetic       a test server: take the generated records of popsync generate\n"

typedef struct ps_config {
    const char *path;    /**< --config FILE, or NULL */
    int check;           /**< --check-config */
    int problems;        /**< problems found in the file */
} ps_config_t;

/**
 * Finds --config and --check-config in argv and reads the file into opts
 * (over the defaults already there).  Problems are printed to stderr; without
 * --check-config any problem returns PS_EINVAL, with it they are counted and
 * reported again by ps_config_check.
 */
int ps_config_prepare(ps_config_t *cfg, int argc, char **argv, ps_server_opts_t *opts);

/** Is opt one of the getopt codes above? */
int ps_config_is_flag(int opt);
/** Applies one of the flags above; 0, or 2 (usage) after printing why. */
int ps_config_flag(ps_config_t *cfg, ps_server_opts_t *opts, int opt, const char *arg);

/**
 * `--check-config`: checks the settings in force (file and flags): required
 * keys, addresses, limits, and that the CA, certificate, key, CRL and
 * org-unit files load.  Prints every problem, or "config OK"; returns the
 * exit status (0 or 1).
 */
int ps_config_check(const ps_config_t *cfg, const ps_server_opts_t *opts);

struct ps_upstream_opts;
/** The [upstream] settings as upstream.h's options (defaults left 0). */
void ps_config_upstream_opts(const ps_server_opts_t *o, struct ps_upstream_opts *out);

#endif
