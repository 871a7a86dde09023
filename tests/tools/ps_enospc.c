/* ps_enospc.c - an LD_PRELOAD shim that makes LMDB see a full disk.
 *
 * While the file named by $PS_ENOSPC_FLAG exists, every pwrite, write and
 * writev to a file whose name ends in "data.mdb" fails with ENOSPC; other
 * files (logs, sockets) are untouched.  Removing the flag file "frees the
 * disk".  Used by tests/integration/t_hostile_edges.sh: a real full file
 * system needs a mount, which a test may not make.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t write(int fd, const void *buf, size_t n);
ssize_t writev(int fd, const struct iovec *iov, int cnt);

/* Is the disk "full" for this descriptor? */
static int full(int fd)
{
    const char *flag = getenv("PS_ENOSPC_FLAG");
    char link[64], path[4096];
    struct stat st;
    ssize_t n;

    if (!flag || stat(flag, &st) != 0)
        return 0;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n < 8)
        return 0;
    path[n] = '\0';
    return strcmp(path + n - 8, "data.mdb") == 0;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "pwrite");
    if (full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "write");
    if (fd > 2 && full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    static ssize_t (*real)(int, const struct iovec *, int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "writev");
    if (full(fd)) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, iov, cnt);
}
