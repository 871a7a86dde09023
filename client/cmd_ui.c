/* cmd_ui.c - `popsync ui`: serves the local web interface (ui.h) from this
 * cache until interrupted. */
#include "cli.h"
#include "dupcheck.h"
#include "err.h"
#include "record_fmt.h"
#include "report.h"
#include "tls.h"
#include "tz.h"
#include "ui.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static int ui_usage(FILE *f)
{
    fprintf(f, "usage: popsync ui [--listen ADDR:PORT|[ADDR6]:PORT] [--lang zh|en]\n"
               "  serves this cache as a web application for the browser, offline like the CLI.\n"
               "  Listens on 127.0.0.1 (a free port unless --listen says) and prints the one\n"
               "  address to open: it carries a secret token, so keep it to yourself.\n"
               "  --listen on another address (IPv4, or IPv6 in brackets) serves over TLS\n"
               "  with this cache's certificate.\n"
               "  Stop with Ctrl-C.\n");
    return f == stdout ? PS_EXIT_OK : PS_EXIT_USAGE;
}

/* A browser accepts the cache's certificate only when it is for serverAuth
 * and names the address served on (docs/security.md §10): say so now, and
 * how to get one, rather than leave the clerk with the browser's error. */
static void warn_cert(ps_cache_t *c, const char *listen)
{
    char host[64] = "127.0.0.1", why[300];
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (colon && listen[0] == '[' && colon - listen >= 2 && colon[-1] == ']') /* [IPV6]:PORT */
        snprintf(host, sizeof(host), "%.*s", (int)(colon - listen - 2), listen + 1);
    else if (colon && (size_t)(colon - listen) < sizeof(host))
        snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    if (ps_pki_cert_serves(ps_cache_meta(c)->cert, host, why, sizeof(why)) == PS_OK)
        return;
    fprintf(stderr,
            "popsync: ui: WARNING: browsers will refuse this cache's certificate at %s: %s.  Ask the district "
            "for one issued with 'popsync pki issue ... --ui-address %s' (same name, role and unit) and set it "
            "with 'popsync config set cert FILE' and 'popsync config set key FILE'\n",
            host, why, host);
}

int ps_cmd_ui(ps_cli_t *cli, int argc, char **argv)
{
    static const struct option lo[] = {{"listen", required_argument, NULL, 'l'},
                                       {"lang", required_argument, NULL, 'L'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    ps_ui_opts_t o = {NULL, 1, NULL};
    const char *lang = NULL;
    ps_cache_t *c = NULL;
    ps_ui_t *ui = NULL;
    sigset_t set;
    char err[512];
    int opt, sig = 0;

    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'l': o.listen = optarg; break;
        case 'L': lang = optarg; break;
        case 'h': return ui_usage(stdout);
        default: return ui_usage(stderr);
        }
    }
    if (optind != argc)
        return ui_usage(stderr);
    /* Chinese unless --lang en (the CLI's $LANG default is for terminals). */
    if (lang && strcmp(lang, "en") != 0 && strcmp(lang, "zh") != 0) {
        ps_cli_err("ui: --lang must be zh or en");
        return PS_EXIT_USAGE;
    }
    o.zh = !(lang && strcmp(lang, "en") == 0);
    if (ps_cache_open(&c, cli->data_dir, err, sizeof(err))) {
        ps_cli_err("ui: %s", err);
        return PS_EXIT_FAIL;
    }
    ps_record_set_person_resolver(ps_dup_resolve, c);
    /* The pages judge today's date and print stamps in the district's zone
     * on libmicrohttpd's threads, and loading a zone sets TZ, which no
     * thread may do while others run: load it now, while this is the only
     * thread, and never again (tz.h; a zone changed by the district later
     * is taken at the next start). */
    {
        const char *zone = ps_cache_meta(c)->timezone[0] ? ps_cache_meta(c)->timezone : PS_TZ_DEFAULT;
        ps_tz_t tz;
        if (ps_tz_get(&tz, zone, err, sizeof(err)) != PS_OK)
            fprintf(stderr, "popsync: ui: %s; dates are judged in %s\n", err, PS_TZ_DEFAULT);
        (void)ps_tz_get(&tz, PS_TZ_DEFAULT, err, sizeof(err));
        ps_tz_freeze();
    }
    /* The server's threads inherit this mask: only sigwait below sees them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (ps_ui_start(&ui, c, cli->data_dir, &o, err, sizeof(err)) != PS_OK) {
        ps_cli_err("ui: %s", err);
        ps_cache_close(c);
        return PS_EXIT_FAIL;
    }
    if (strncmp(ps_ui_url(ui), "https:", 6) == 0) {
        fprintf(stderr, "popsync: ui: WARNING: serving beyond this computer (%s): anyone who can reach it and "
                        "has the address with its token can read and change this cache; the browser must "
                        "trust this cache's CA\n", o.listen ? o.listen : "TLS");
        warn_cert(c, o.listen);
    }
    printf("popsync ui: %s\n", ps_ui_url(ui));
    fflush(stdout);
    sigwait(&set, &sig);
    ps_ui_stop(ui);
    ps_cache_close(c);
    return PS_EXIT_OK;
}
