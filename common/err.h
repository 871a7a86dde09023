/* err.h - popsync error codes.
 *
 * Owns: the negative PS_E* codes every module returns, and their messages.
 * Functions return 0 (PS_OK) on success or a negative PS_E* code; "again"
 * (PS_EAGAIN) is a code of its own, never a failure.
 */
#ifndef PS_ERR_H
#define PS_ERR_H

#define PS_OK 0
#define PS_EAGAIN -1      /* not an error: more input or output needed */
#define PS_ENOMEM -2      /* allocation failed or budget exhausted */
#define PS_EINVAL -3      /* bad argument or value */
#define PS_EPROTO -4      /* malformed frame or message */
#define PS_ETOOBIG -5     /* over a size limit */
#define PS_EIO -6         /* file or socket error */
#define PS_ETLS -7        /* TLS failure (handshake, verify, record) */
#define PS_ENOTFOUND -8   /* no such record, key or file */
#define PS_EDB -9         /* LMDB error */
#define PS_EACCES -10     /* not allowed for this identity */
#define PS_ECLOSED -11    /* peer closed the connection */
#define PS_ETIMEDOUT -12  /* handshake, idle or request timeout */
#define PS_EEXIST -13     /* already exists */
#define PS_EREJECTED -14  /* the server refused (see its Error message) */
#define PS_EFULL -15      /* storage is full */
#define PS_ECRYPTO -16    /* key derivation, encryption or authentication failed */
#define PS_ENOSPC -17     /* the disk is full (ENOSPC, EDQUOT) */
#define PS_ESTALE -18     /* this cache is a copy or an old backup of another: make a new one */

/** Returns a static English message for a PS_E* code. */
const char *ps_strerror(int err);

#endif
