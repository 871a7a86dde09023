/* db_err.h - LMDB result codes as popsync error codes.
 *
 * Owns: the one mapping from an LMDB return code to a PS_E* code, for the
 * server's store and the client's cache (the only modules that include
 * lmdb.h; include this after it).
 */
#ifndef PS_DB_ERR_H
#define PS_DB_ERR_H

#include <errno.h>
#include <lmdb.h>

#include "err.h"

/** PS_ENOTFOUND, PS_EFULL (map full: the budget is spent), PS_ENOSPC (the disk is full), PS_ENOMEM or PS_EDB. */
static inline int ps_db_err(int mrc)
{
    if (mrc == MDB_NOTFOUND)
        return PS_ENOTFOUND;
    if (mrc == MDB_MAP_FULL)
        return PS_EFULL;
    /* LMDB passes write errors through: a full disk is the operator's to
     * fix, so name it rather than calling it a database error. */
    if (mrc == ENOSPC || mrc == EDQUOT)
        return PS_ENOSPC;
    if (mrc == ENOMEM)
        return PS_ENOMEM;
    return PS_EDB;
}

#endif
