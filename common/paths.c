/* paths.c - see paths.h. */
#include "paths.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ps_abs_path(const char *path, char out[PATH_MAX], char *err, size_t errlen)
{
    char cwd[PATH_MAX];
    int n;
    if (realpath(path, out))
        return PS_OK;
    if (path[0] == '/') {
        n = snprintf(out, PATH_MAX, "%s", path);
    } else {
        if (!getcwd(cwd, sizeof(cwd))) {
            snprintf(err, errlen, "cannot resolve %s: %s", path, strerror(errno));
            return PS_EIO;
        }
        n = snprintf(out, PATH_MAX, "%s/%s", cwd, path);
    }
    if (n < 0 || n >= PATH_MAX) {
        snprintf(err, errlen, "path too long: %s", path);
        return PS_ETOOBIG;
    }
    return PS_OK;
}
