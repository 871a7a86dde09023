/* err.c - messages for PS_E* codes. */
#include "err.h"

const char *ps_strerror(int err)
{
    switch (err) {
    case PS_OK: return "success";
    case PS_EAGAIN: return "try again";
    case PS_ENOMEM: return "out of memory";
    case PS_EINVAL: return "invalid argument";
    case PS_EPROTO: return "protocol error";
    case PS_ETOOBIG: return "too large";
    case PS_EIO: return "input/output error";
    case PS_ETLS: return "TLS error";
    case PS_ENOTFOUND: return "not found";
    case PS_EDB: return "database error";
    case PS_EACCES: return "access denied";
    case PS_ECLOSED: return "connection closed";
    case PS_ETIMEDOUT: return "timed out";
    case PS_EEXIST: return "already exists";
    case PS_EREJECTED: return "refused by server";
    case PS_EFULL: return "storage full";
    case PS_ECRYPTO: return "cryptographic failure";
    case PS_ENOSPC: return "disk full";
    case PS_ESTALE: return "cache copied or restored: make a new one";
    default: return "unknown error";
    }
}
