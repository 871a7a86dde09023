/* admin_cmd.c - popsyncd's offline subcommands: `popsyncd audit verify`,
 * `popsyncd counters check`, `popsyncd backup`, `popsyncd restore`,
 * `popsyncd node rebind`.
 *
 * These open the store directly (LMDB allows it while the daemon runs) and
 * never touch the network.
 */
#include "server.h"
#include "err.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses `--data DIR` (the only option of the checking subcommands) and
 * opens that store.  Returns 0 with *out open, or the exit status to use. */
static int open_data_store(int argc, char **argv, const char *what, ps_store_t **out)
{
    static const struct option lo[] = {{"data", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    ps_store_opts_t so;
    const char *dir = NULL;
    char err[512];
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt != 'd')
            return 2;
        dir = optarg;
    }
    if (!dir || optind != argc) {
        fprintf(stderr, "usage: popsyncd %s --data DIR\n", what);
        return 2;
    }
    memset(&so, 0, sizeof(so));
    so.map_size = (size_t)8192 << 20;
    so.max_future_ms = 0;
    if (ps_store_open(out, dir, &so, err, sizeof(err))) {
        fprintf(stderr, "popsyncd: %s: %s\n", what, err);
        return 1;
    }
    return 0;
}

static int audit_verify(int argc, char **argv)
{
    ps_store_t *st = NULL;
    char err[512];
    uint64_t n = 0;
    int rc;

    if ((rc = open_data_store(argc, argv, "audit verify", &st)))
        return rc;
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
    ps_store_t *st = NULL;
    char err[512] = "";
    uint64_t checked = 0, bad = 0;
    int rc;

    if ((rc = open_data_store(argc, argv, "counters check", &st)))
        return rc;
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

/* popsyncd backup --data DIR --to FILE: a hot, compacted, consistent copy. */
static int backup(int argc, char **argv)
{
    static const struct option lo[] = {{"data", required_argument, NULL, 'd'},
                                       {"to", required_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *dir = NULL, *to = NULL;
    char err[512] = "";
    uint64_t bytes = 0, t0;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt == 'd')
            dir = optarg;
        else if (opt == 't')
            to = optarg;
        else {
            dir = to = NULL;
            break;
        }
    }
    if (!dir || !to || optind != argc) {
        fprintf(stderr, "usage: popsyncd backup --data DIR --to FILE\n"
                        "  copies the store in DIR to FILE (via FILE.tmp, fsynced, renamed), compacted;\n"
                        "  safe while popsyncd runs: the copy is one consistent snapshot\n");
        return 2;
    }
    t0 = ps_now_ms();
    if (ps_store_backup(dir, to, &bytes, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsyncd: backup: %s\n", err);
        return 1;
    }
    printf("backup of %s written to %s: %llu bytes in %.1f s\n", dir, to, (unsigned long long)bytes,
           (double)(ps_now_ms() - t0) / 1000.0);
    return 0;
}

/* popsyncd restore --from FILE --data DIR: a store from a backup. */
static int restore(int argc, char **argv)
{
    static const struct option lo[] = {{"data", required_argument, NULL, 'd'},
                                       {"from", required_argument, NULL, 'f'},
                                       {"advance-head", required_argument, NULL, 'a'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *dir = NULL, *from = NULL;
    char err[512] = "", *end;
    uint64_t head = 0, advance = 1000000000ull;
    int opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt == 'd')
            dir = optarg;
        else if (opt == 'f')
            from = optarg;
        else if (opt == 'a' && optarg[0] != '-') {
            advance = strtoull(optarg, &end, 10);
            if (*end || !*optarg)
                from = NULL;
        } else {
            dir = from = NULL;
            break;
        }
    }
    if (!dir || !from || optind != argc) {
        fprintf(stderr, "usage: popsyncd restore --from FILE --data DIR [--advance-head N]\n"
                        "  makes store DIR (new, or an empty directory) from backup FILE; the change-feed\n"
                        "  head moves on by N (default 1000000000) so that caches which synced after the\n"
                        "  backup still receive every change made from now on\n");
        return 2;
    }
    if (ps_store_restore(from, dir, advance, &head, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsyncd: restore: %s\n", err);
        return 1;
    }
    printf("restored %s into %s: feed head now %llu; check it with popsyncd audit verify --data %s\n", from, dir,
           (unsigned long long)head, dir);
    return 0;
}

/* popsyncd node rebind NODE --cert FILE --data DIR: gives a node id to the
 * certificate identity of FILE (a cache moved deliberately to a new holder
 * or a renamed certificate).  Audited as node_rebind. */
static int node_rebind(int argc, char **argv)
{
    static const struct option lo[] = {{"data", required_argument, NULL, 'd'},
                                       {"cert", required_argument, NULL, 'c'},
                                       {NULL, 0, NULL, 0}};
    const char *dir = NULL, *cert = NULL, *hex = NULL;
    uint8_t node[PS_ID_LEN];
    char err[512] = "", old[160];
    ps_peer_t to;
    ps_store_opts_t so;
    ps_store_t *st = NULL;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (opt == 'd')
            dir = optarg;
        else if (opt == 'c')
            cert = optarg;
        else
            return 2;
    }
    if (optind == argc - 1)
        hex = argv[optind];
    if (!dir || !cert || !hex || ps_uuid_parse(hex, node) != PS_OK) {
        fprintf(stderr, "usage: popsyncd node rebind NODE --cert FILE --data DIR\n"
                        "  binds node id NODE (32 hex digits, dashes allowed) to the identity\n"
                        "  (name, role, org unit) of the certificate in FILE; audited as node_rebind\n");
        return 2;
    }
    if (ps_pki_cert_identity(cert, &to, err, sizeof(err)) != PS_OK) {
        fprintf(stderr, "popsyncd: node rebind: %s\n", err);
        return 1;
    }
    memset(&so, 0, sizeof(so));
    /* No map size of our own: LMDB then takes the store's, so this small
     * write never changes the map size a running popsyncd works with. */
    so.map_size = 0;
    so.max_future_ms = 600000;
    if (ps_store_open(&st, dir, &so, err, sizeof(err))) {
        fprintf(stderr, "popsyncd: node rebind: %s\n", err);
        return 1;
    }
    rc = ps_store_node_rebind(st, node, &to, old, sizeof(old));
    ps_store_close(st);
    if (rc) {
        fprintf(stderr, "popsyncd: node rebind: %s\n", ps_strerror(rc));
        return 1;
    }
    printf("node %s now belongs to certificate '%s' (%s, %s)%s%s\n", hex, to.name, to.role_name, to.orgunit,
           old[0] ? "; it belonged to " : "; it was not bound before", old);
    return 0;
}

int ps_server_subcommand(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if ((strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) && ps_server_subcommand_help(argc, argv))
            return 0;
    if (argc >= 2 && strcmp(argv[0], "node") == 0 && strcmp(argv[1], "rebind") == 0)
        return node_rebind(argc - 1, argv + 1);
    if (strcmp(argv[0], "status") == 0)
        return ps_upstream_cmd_status(argc, argv);
    if (strcmp(argv[0], "rebuild") == 0)
        return ps_upstream_cmd_rebuild(argc, argv);
    if (strcmp(argv[0], "backup") == 0)
        return backup(argc, argv);
    if (strcmp(argv[0], "restore") == 0)
        return restore(argc, argv);
    if (argc >= 2 && strcmp(argv[0], "counters") == 0 && strcmp(argv[1], "check") == 0)
        return counters_check(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[0], "audit") == 0 && strcmp(argv[1], "verify") == 0)
        return audit_verify(argc - 1, argv + 1);
    fprintf(stderr, "popsyncd: unknown subcommand '%s' (try: audit verify, counters check, backup, restore, node rebind, status, rebuild)\n", argv[0]);
    return 2;
}
