/* admin_help.c - what each of popsyncd's offline subcommands says on
 * --help: one table, read by ps_server_subcommand (admin_cmd.c). */
#include "server.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name, *synopsis, *detail, *example;
} helps[] = {
    {"audit verify", "--data DIR",
     "Checks the hash chain of the audit log: every accepted change is there, in order, unaltered.\n"
     "Exit 0 when whole; 1 with the first broken entry.  Safe while popsyncd runs.",
     "popsyncd audit verify --data /var/lib/popsync"},
    {"counters check", "--data DIR",
     "Recounts every report counter from the records and compares with the kept counters.\n"
     "Exit 0 when they agree; 1 with the differences.  Safe while popsyncd runs.",
     "popsyncd counters check --data /var/lib/popsync"},
    {"backup", "--data DIR --to FILE",
     "Copies the store to FILE (via FILE.tmp, fsynced, renamed), compacted; one consistent snapshot,\n"
     "safe while popsyncd runs.",
     "popsyncd backup --data /var/lib/popsync --to /backup/popsync-$(date +%F).mdb"},
    {"restore", "--from FILE --data DIR [--advance-head N]",
     "Makes store DIR (new, or an empty directory) from backup FILE; the change-feed head moves on by N\n"
     "(default 1000000000) so that caches which synced after the backup still receive every change.",
     "popsyncd restore --from /backup/popsync-2026-12-01.mdb --data /var/lib/popsync.new"},
    {"node rebind", "NODE --cert FILE --data DIR",
     "Binds node id NODE (32 hex digits, dashes allowed) to the identity (name, role, org unit) of the\n"
     "certificate in FILE, so a cache moved to a new certificate of another identity is served again;\n"
     "audited as node_rebind.",
     "popsyncd node rebind 88ced6b941b6b7aa0ef30b619a14d392 --cert pki/town1-new.crt --data /var/lib/popsync"},
    {"status", "--data DIR",
     "Prints the feed head, the record count and the upward stream's position and lag (records not yet\n"
     "acknowledged by JetStream, age of the oldest).  Safe while popsyncd runs.",
     "popsyncd status --data /var/lib/popsync"},
    {"rebuild", "--from-upstream --data DIR (--config FILE | --urls URLS --district CODE) [--advance-head N]",
     "Makes store DIR (new, or an empty directory) from this district's messages in the JetStream stream\n"
     "POPSYNC: the latest revision of every record, tombstones, scope exits and the last published node\n"
     "marks; the feed head then moves on by N (default 1000000000).  docs/upstream.md, \"Rebuild\".",
     "popsyncd rebuild --from-upstream --config /etc/popsync/popsyncd.conf --data /var/lib/popsync.new"},
};

int ps_server_subcommand_help(int argc, char **argv)
{
    char two[64];

    snprintf(two, sizeof(two), "%s %s", argv[0], argc > 1 ? argv[1] : "");
    for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
        if (strcmp(helps[i].name, argv[0]) != 0 && strcmp(helps[i].name, two) != 0)
            continue;
        printf("usage: popsyncd %s %s\n\n%s\n\nexample:\n  %s\n", helps[i].name, helps[i].synopsis, helps[i].detail,
               helps[i].example);
        return 1;
    }
    return 0;
}
