/* admin_cmd.c - popsyncd's offline subcommands: `popsyncd audit verify`,
 * `popsyncd counters check`.
 *
 * These open the store directly (LMDB allows it while the daemon runs) and
 * never touch the network.
 */
#include "server.h"
#include "err.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static int audit_verify(int argc, char **argv)
{
    static const struct option lo[] = {{"data", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    ps_store_opts_t so;
    ps_store_t *st = NULL;
    const char *dir = NULL;
    char err[512];
    uint64_t n = 0;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt != 'd')
            return 2;
        dir = optarg;
    }
    if (!dir || optind != argc) {
        fprintf(stderr, "usage: popsyncd audit verify --data DIR\n");
        return 2;
    }
    memset(&so, 0, sizeof(so));
    so.map_size = (size_t)8192 << 20;
    so.max_future_ms = 600000;
    if (ps_store_open(&st, dir, &so, err, sizeof(err))) {
        fprintf(stderr, "popsyncd: audit verify: %s\n", err);
        return 1;
    }
    rc = ps_store_audit_verify(st, &n, err, sizeof(err));
    ps_store_close(st);
    if (rc) {
        printf("audit log BROKEN after %llu good entries: %s\n", (unsigned long long)n, err);
        return 1;
    }
    printf("audit log intact: %llu entries, chain verified\n", (unsigned long long)n);
    return 0;
}

static int counters_check(int argc, char **argv)
{
    static const struct option lo[] = {{"data", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    ps_store_opts_t so;
    ps_store_t *st = NULL;
    const char *dir = NULL;
    char err[512] = "";
    uint64_t checked = 0, bad = 0;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt != 'd')
            return 2;
        dir = optarg;
    }
    if (!dir || optind != argc) {
        fprintf(stderr, "usage: popsyncd counters check --data DIR\n");
        return 2;
    }
    memset(&so, 0, sizeof(so));
    so.map_size = (size_t)8192 << 20;
    so.max_future_ms = 600000;
    if (ps_store_open(&st, dir, &so, err, sizeof(err))) {
        fprintf(stderr, "popsyncd: counters check: %s\n", err);
        return 1;
    }
    rc = ps_store_counters_check(st, &checked, &bad, err, sizeof(err));
    ps_store_close(st);
    if (rc) {
        fprintf(stderr, "popsyncd: counters check: %s\n", ps_strerror(rc));
        return 1;
    }
    if (bad) {
        printf("counters WRONG: %llu of %llu differ from a recount (first: %s)\n", (unsigned long long)bad,
               (unsigned long long)checked, err);
        return 1;
    }
    printf("counters match a full recount: %llu counters checked\n", (unsigned long long)checked);
    return 0;
}

int ps_server_subcommand(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[0], "counters") == 0 && strcmp(argv[1], "check") == 0)
        return counters_check(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[0], "audit") == 0 && strcmp(argv[1], "verify") == 0)
        return audit_verify(argc - 1, argv + 1);
    fprintf(stderr, "popsyncd: unknown subcommand '%s' (try: popsyncd audit verify --data DIR)\n", argv[0]);
    return 2;
}
