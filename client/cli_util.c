/* cli_util.c - helpers shared by the subcommands (in the client library,
 * so the benchmark and test drivers can run subcommands in-process). */
#include "cli.h"

#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

void ps_cli_err(const char *fmt, ...)
{
    va_list ap;
    fputs("popsync: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* One sync of a cache at a time: a second `popsync sync` (a double click, a
 * timer beside a clerk) waits for the first.  Two at once would send the
 * same outbox twice in parallel, which the server cannot tell from a copied
 * cache.  The lock is the open file; it goes with the process. */
int ps_cli_sync_lock(const char *dir, const char *cmd)
{
    char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/sync.lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        ps_cli_err("%s: cannot open %s: %s", cmd, path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd;
    if (errno == EWOULDBLOCK) {
        fprintf(stderr, "popsync: %s: another sync of this cache is running; waiting for it to end\n", cmd);
        if (flock(fd, LOCK_EX) == 0)
            return fd;
    }
    ps_cli_err("%s: cannot lock %s: %s", cmd, path, strerror(errno));
    close(fd);
    return -1;
}
