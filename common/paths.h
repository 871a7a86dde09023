/* paths.h - file paths the client and server remember.
 *
 * Owns: making a path absolute so it can be stored and used later from
 * another working directory.  Any module may call it.
 */
#ifndef PS_PATHS_H
#define PS_PATHS_H

#include <limits.h>
#include <stddef.h>

/**
 * path made absolute into out: resolved (symbolic links and "..") when it
 * exists, else joined to the working directory (a file about to be made).
 * PS_OK, or PS_EIO / PS_ETOOBIG with err set.
 */
int ps_abs_path(const char *path, char out[PATH_MAX], char *err, size_t errlen);

#endif
