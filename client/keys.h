/* keys.h - the key that protects a client cache.
 *
 * Owns: getting a cache's key-encryption key (KEK), and nothing else:
 *   - the passphrase: POPSYNC_PASSPHRASE, else asked on the terminal
 *     (/dev/tty, echo off; twice when creating).  A new cache needs at least
 *     PS_PASSPHRASE_MIN_CHARS characters; a weak one (see
 *     ps_keys_passphrase_weak) is accepted with a warning;
 *   - the derivation: PBKDF2-HMAC-SHA256 with a per-cache random salt and
 *     iteration count;
 *   - key files: exactly 32 bytes or 64 hex digits, made with mode 0600
 *     when a new cache names one that does not exist; POPSYNC_KEY_FILE
 *     chooses one for a new cache and overrides the remembered path on open.
 * The data key (DEK) that seals the values, and keeping ps_kek_params_t in
 * the cache's meta database, belong to cache.c: the cache only receives the
 * KEK from here.  Callers: cache.c, and unit tests.  Keys are zeroed by the
 * caller after use; this module zeroes what it held itself.
 */
#ifndef PS_KEYS_H
#define PS_KEYS_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

/** How a cache's KEK is got, as stored in its meta "kek". */
#define PS_KEK_PASSPHRASE "pbkdf2-sha256"
#define PS_KEK_KEY_FILE "key-file"
#define PS_KDF_SALT_LEN 16
/** The fewest characters (not bytes: UTF-8 counts once a character) a new
 *  cache's passphrase may have.  Caches made before this rule still open. */
#define PS_PASSPHRASE_MIN_CHARS 10
/** The most bytes a passphrase may have. */
#define PS_PASSPHRASE_MAX 1023

/** What a cache's KEK comes from (kept by the cache in its meta). */
typedef struct ps_kek_params {
    char kind[16];                 /**< PS_KEK_PASSPHRASE or PS_KEK_KEY_FILE */
    uint8_t salt[PS_KDF_SALT_LEN]; /**< passphrase only */
    uint32_t iterations;           /**< passphrase only */
    char key_file[PATH_MAX];       /**< key file only: absolute path */
} ps_kek_params_t;

/**
 * Chooses how a new cache is protected: the key file key_file (when not
 * empty), else POPSYNC_KEY_FILE, else a passphrase with a new random salt
 * and the default iteration count (a test build may lower it, see
 * docs/security.md).  Asks for nothing yet.
 */
int ps_keys_new_params(ps_kek_params_t *p, const char *key_file, char *err, size_t errlen);

/**
 * The KEK for cache dir (named in prompts) protected as p says.  create:
 * a new cache (the key file is made if absent and *made set; the
 * passphrase is asked twice and must be long enough).  On open,
 * POPSYNC_KEY_FILE overrides p->key_file, which is set to the file used.
 */
int ps_keys_get_kek(const char *dir, ps_kek_params_t *p, int create, int *made, uint8_t kek[PS_AEAD_KEY_LEN],
                    char *err, size_t errlen);

/** POPSYNC_KEY_FILE when set and not empty, else NULL. */
const char *ps_keys_env_key_file(void);

/** Characters (UTF-8 code points) in s. */
size_t ps_keys_passphrase_chars(const char *s);
/** Non-zero when a passphrase long enough is still easy to guess: fewer
 *  than 16 characters all of one kind (digits, or letters of one case), or
 *  fewer than 5 different characters. */
int ps_keys_passphrase_weak(const char *s);

#endif
