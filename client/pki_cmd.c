/* pki_cmd.c - `popsync pki init-ca|issue|revoke|crl`.
 *
 * Owns: argument parsing and user-facing messages for the district CA tools.
 * What was written goes to stdout, reasons to stderr as "popsync: pki: ...".
 */
#include "pki_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "tls.h"

#define PS_PKI_DEFAULT_CA_NAME "popsync district CA"
#define PS_PKI_DEFAULT_DAYS 825 /* the CA/Browser limit; reissue before it lapses */
#define PS_PKI_CRL_DAYS 30      /* CRL nextUpdate; re-run `pki crl` before it passes */

enum { EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fprintf(f, "usage: popsync pki init-ca --dir PKI [--name NAME]\n"
               "       popsync pki issue --dir PKI --role server|admin|township|collector|viewer\n"
               "                         --orgunit CODE --name NAME [--days N] [--ui-address ADDR]...\n"
               "       popsync pki revoke --dir PKI (--name NAME | --serial HEX)\n"
               "                          [--reason keyCompromise|superseded|cessationOfOperation|unspecified]\n"
               "                          [--crl-days N]\n"
               "       popsync pki crl --dir PKI [--crl-days N]\n"
               "\n"
               "revoke adds the certificate to PKI/revoked.txt, writes a new PKI/ca.crl and\n"
               "moves NAME.crt and NAME.key to PKI/revoked/; crl re-issues PKI/ca.crl (run it\n"
               "before the CRL's next update, default every %d days).  Copy ca.crl to the\n"
               "server and send popsyncd SIGHUP.\n"
               "\n"
               "--ui-address (a cache's certificate, up to %d times): the IP address or host name\n"
               "at which `popsync ui --listen` serves browsers on other computers; the certificate\n"
               "is then for serverAuth too and names each address, so a browser that trusts\n"
               "PKI/ca.crt accepts it (docs/security.md section 10).\n",
            PS_PKI_CRL_DAYS, PS_PKI_UI_MAX_ADDRS);
}

static int usage_error(const char *msg, const char *arg)
{
    if (arg)
        fprintf(stderr, "popsync: pki: %s: %s\n", msg, arg);
    else
        fprintf(stderr, "popsync: pki: %s\n", msg);
    usage(stderr);
    return EXIT_USAGE;
}

/* Reports the option getopt_long rejected; opterr is off so the message
 * keeps our "popsync: pki:" prefix. */
static int bad_option(char **argv)
{
    const char *opt = optind > 0 ? argv[optind - 1] : "?";
    return usage_error("unknown option or missing value", opt);
}

static int cmd_init_ca(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *name = PS_PKI_DEFAULT_CA_NAME;
    char err[256] = "";
    int c, rc;

    while ((c = getopt_long(argc, argv, "+d:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'n': name = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return bad_option(argv);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument", argv[optind]);
    if (!dir)
        return usage_error("init-ca needs --dir", NULL);
    rc = ps_pki_init_ca(dir, name, err, sizeof(err));
    if (rc != PS_OK) {
        fprintf(stderr, "popsync: pki: %s\n", err[0] ? err : ps_strerror(rc));
        return rc == PS_EINVAL ? EXIT_USAGE : 1;
    }
    printf("wrote %s/ca.crt (CA certificate, CN=%s)\n", dir, name);
    printf("wrote %s/ca.key (CA private key, mode 0600: keep it offline)\n", dir);
    return 0;
}

/* Parses a whole decimal number in [lo, hi]. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int cmd_issue(int argc, char **argv)
{
    /* --not-before-days is for tests only (expired and not-yet-valid
     * certificates) and stays out of the usage text. */
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"role", required_argument, NULL, 'r'},
        {"orgunit", required_argument, NULL, 'o'},
        {"name", required_argument, NULL, 'n'},
        {"days", required_argument, NULL, 'D'},
        {"not-before-days", required_argument, NULL, 'S'},
        {"ui-address", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *role_s = NULL, *orgunit = NULL, *name = NULL, *ui[PS_PKI_UI_MAX_ADDRS];
    size_t nui = 0;
    int days = PS_PKI_DEFAULT_DAYS, shift = 0;
    char err[256] = "", *end;
    ps_role_t role;
    long v;
    int c, rc;

    while ((c = getopt_long(argc, argv, "+d:r:o:n:D:S:U:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'r': role_s = optarg; break;
        case 'o': orgunit = optarg; break;
        case 'n': name = optarg; break;
        case 'D':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1 || v > 3650)
                return usage_error("--days must be a number from 1 to 3650", optarg);
            days = (int)v;
            break;
        case 'S':
            if (parse_int(optarg, -3650, 3650, &shift) != 0)
                return usage_error("--not-before-days must be a number from -3650 to 3650", optarg);
            break;
        case 'U':
            if (nui == PS_PKI_UI_MAX_ADDRS)
                return usage_error("too many --ui-address", optarg);
            ui[nui++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: return bad_option(argv);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument", argv[optind]);
    if (!dir || !role_s || !orgunit || !name)
        return usage_error("issue needs --dir, --role, --orgunit and --name", NULL);
    role = ps_role_from_name(role_s);
    if (role == PS_ROLE_NONE)
        return usage_error("unknown role", role_s);
    rc = ps_pki_issue_ui(dir, role, orgunit, name, days, shift, ui, nui, err, sizeof(err));
    if (rc != PS_OK) {
        fprintf(stderr, "popsync: pki: %s\n", err[0] ? err : ps_strerror(rc));
        return rc == PS_EINVAL ? EXIT_USAGE : 1;
    }
    printf("wrote %s/%s.crt (role %s, org unit %s, valid %d days)\n", dir, name, ps_role_name(role), orgunit, days);
    printf("wrote %s/%s.key (private key, mode 0600)\n", dir, name);
    for (size_t i = 0; i < nui; i++)
        printf("  for `popsync ui --listen` at %s (serverAuth, subjectAltName)\n", ui[i]);
    return 0;
}

static int cmd_revoke(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},
        {"serial", required_argument, NULL, 's'},
        {"reason", required_argument, NULL, 'r'},
        {"crl-days", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *name = NULL, *serial = NULL;
    char err[512] = "", revoked[41] = "";
    int c, rc, reason = PS_CRL_UNSPECIFIED, days = PS_PKI_CRL_DAYS;

    while ((c = getopt_long(argc, argv, "+d:n:s:r:D:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'n': name = optarg; break;
        case 's': serial = optarg; break;
        case 'r':
            if ((reason = ps_crl_reason_from_name(optarg)) < 0)
                return usage_error("unknown reason", optarg);
            break;
        case 'D':
            if (parse_int(optarg, 1, 365, &days) != 0)
                return usage_error("--crl-days must be a number from 1 to 365", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: return bad_option(argv);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument", argv[optind]);
    if (!dir || (!name == !serial))
        return usage_error("revoke needs --dir and one of --name or --serial", NULL);
    rc = ps_pki_revoke(dir, name, serial, (ps_crl_reason_t)reason, days, revoked, err, sizeof(err));
    if (rc != PS_OK) {
        fprintf(stderr, "popsync: pki: %s\n", err[0] ? err : ps_strerror(rc));
        return rc == PS_EINVAL ? EXIT_USAGE : 1;
    }
    printf("revoked %s (serial %s, reason %s)\n", name ? name : "certificate", revoked, ps_crl_reason_name(reason));
    printf("wrote %s/ca.crl (next update in %d days); copy it to the server and send popsyncd SIGHUP\n", dir, days);
    return 0;
}

static int cmd_crl(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"crl-days", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    char err[512] = "";
    int c, rc, days = PS_PKI_CRL_DAYS;
    size_t n = 0;

    while ((c = getopt_long(argc, argv, "+d:D:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'D':
            if (parse_int(optarg, 1, 365, &days) != 0)
                return usage_error("--crl-days must be a number from 1 to 365", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: return bad_option(argv);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument", argv[optind]);
    if (!dir)
        return usage_error("crl needs --dir", NULL);
    rc = ps_pki_crl(dir, days, &n, err, sizeof(err));
    if (rc != PS_OK) {
        fprintf(stderr, "popsync: pki: %s\n", err[0] ? err : ps_strerror(rc));
        return rc == PS_EINVAL ? EXIT_USAGE : 1;
    }
    printf("wrote %s/ca.crl (%zu revoked, next update in %d days)\n", dir, n, days);
    return 0;
}

int ps_cli_pki(int argc, char **argv)
{
    const char *sub;

    if (argc < 2)
        return usage_error("missing subcommand", NULL);
    sub = argv[1];
    /* getopt keeps state across calls; 0 makes glibc reinitialise it, which
     * matters when main() already ran getopt over the global options. */
    optind = 0;
    opterr = 0;
    if (strcmp(sub, "init-ca") == 0)
        return cmd_init_ca(argc - 1, argv + 1);
    if (strcmp(sub, "issue") == 0)
        return cmd_issue(argc - 1, argv + 1);
    if (strcmp(sub, "revoke") == 0)
        return cmd_revoke(argc - 1, argv + 1);
    if (strcmp(sub, "crl") == 0)
        return cmd_crl(argc - 1, argv + 1);
    if (strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    return usage_error("unknown subcommand", sub);
}
