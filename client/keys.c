/* keys.c - getting the key-encryption key of a client cache (see keys.h). */
#include "keys.h"
#include "err.h"
#include "ids.h"
#include "log.h"
#include "paths.h"
#include "testhooks.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define PASS_BUF (PS_PASSPHRASE_MAX + 1)

static volatile sig_atomic_t tty_signal;

static void on_tty_signal(int sig)
{
    tty_signal = sig;
}

/* Prompts on the terminal fd with echo off and reads one line into buf.
 * A signal (Ctrl-C) restores the terminal before it takes effect. */
static int tty_read(int fd, const char *prompt, char *buf, size_t cap, char *err, size_t errlen)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
    struct sigaction sa, old[sizeof(sigs) / sizeof(sigs[0])];
    struct termios t0, t1;
    size_t n = 0;
    int rc = PS_OK;

    if (tcgetattr(fd, &t0) != 0) {
        snprintf(err, errlen, "no passphrase: set POPSYNC_PASSPHRASE or run on a terminal");
        return PS_EINVAL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_tty_signal; /* no SA_RESTART: read() returns EINTR */
    sigemptyset(&sa.sa_mask);
    tty_signal = 0;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, &old[i]);
    t1 = t0;
    t1.c_lflag &= (tcflag_t) ~(ECHO | ECHOE | ECHOK);
    t1.c_lflag |= ECHONL;
    if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &t1) != 0) {
        snprintf(err, errlen, "cannot prompt on the terminal: %s", strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR && !tty_signal)
            continue;
        if (r < 0 && !tty_signal) {
            snprintf(err, errlen, "reading the terminal: %s", strerror(errno));
            rc = PS_EIO;
        }
        if (r <= 0 || ch == '\n' || ch == '\r')
            break;
        if (n + 1 >= cap) {
            snprintf(err, errlen, "passphrase too long (at most %zu bytes)", cap - 1);
            rc = PS_ETOOBIG;
            break;
        }
        buf[n++] = ch;
    }
    buf[n] = '\0';
    tcsetattr(fd, TCSAFLUSH, &t0);
    if (tty_signal && write(fd, "\n", 1) < 0) {
        /* the line break after ^C is cosmetic */
    }
out:
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &old[i], NULL);
    if (tty_signal) {
        ps_zeroize(buf, cap);
        raise(tty_signal);
        snprintf(err, errlen, "interrupted");
        return PS_EINVAL;
    }
    return rc;
}

/* The passphrase: POPSYNC_PASSPHRASE, else asked on the terminal (twice
 * when confirm: a new cache).  buf holds PASS_BUF bytes; the caller zeroes it. */
static int get_passphrase(const char *dir, int confirm, char *buf, size_t *len, char *err, size_t errlen)
{
    const char *env = getenv("POPSYNC_PASSPHRASE");
    char prompt[PATH_MAX + 64], again[PASS_BUF];
    int fd, rc = PS_OK;

    if (env) {
        if (strlen(env) >= PASS_BUF) {
            snprintf(err, errlen, "POPSYNC_PASSPHRASE is too long (at most %d bytes)", PASS_BUF - 1);
            return PS_ETOOBIG;
        }
        snprintf(buf, PASS_BUF, "%s", env);
    } else {
        fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "no passphrase: set POPSYNC_PASSPHRASE or run on a terminal");
            return PS_EINVAL;
        }
        snprintf(prompt, sizeof(prompt), "%s passphrase for cache %s: ", confirm ? "New" : "Enter", dir);
        rc = tty_read(fd, prompt, buf, PASS_BUF, err, errlen);
        if (rc == PS_OK && confirm && buf[0]) {
            rc = tty_read(fd, "Repeat the passphrase: ", again, sizeof(again), err, errlen);
            if (rc == PS_OK && strcmp(buf, again) != 0) {
                snprintf(err, errlen, "the passphrases do not match");
                rc = PS_EINVAL;
            }
            ps_zeroize(again, sizeof(again));
        }
        close(fd);
        if (rc)
            return rc;
    }
    *len = strlen(buf);
    if (*len == 0) {
        snprintf(err, errlen, "the passphrase is empty");
        return PS_EINVAL;
    }
    return PS_OK;
}

/* Reads a key file: exactly 32 bytes, or 64 hex digits (a final newline
 * allowed).  The key is used as the KEK directly: it is random already. */
static int key_file_load(const char *path, uint8_t key[PS_AEAD_KEY_LEN], char *err, size_t errlen)
{
    uint8_t raw[128];
    struct stat sb;
    ssize_t r;
    size_t n = 0;
    int fd, rc = PS_OK;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        return errno == ENOENT ? PS_ENOTFOUND : PS_EIO;
    }
    if (fstat(fd, &sb) == 0 && (sb.st_mode & 077))
        PS_WARN("cache", "key file %s can be read by other users (chmod 600 it)", path);
    while (n < sizeof(raw) && (r = read(fd, raw + n, sizeof(raw) - n)) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
            rc = PS_EIO;
            goto out;
        }
        n += (size_t)r;
    }
    if (n == PS_AEAD_KEY_LEN) {
        memcpy(key, raw, PS_AEAD_KEY_LEN);
        goto out;
    }
    while (n > 0 && (raw[n - 1] == '\n' || raw[n - 1] == '\r'))
        n--;
    rc = n == 2 * PS_AEAD_KEY_LEN ? ps_unhex((const char *)raw, PS_AEAD_KEY_LEN, key) : PS_EINVAL;
    if (rc) {
        ps_zeroize(key, PS_AEAD_KEY_LEN);
        snprintf(err, errlen, "key file %s must hold exactly 32 bytes or 64 hex digits", path);
    }
out:
    ps_zeroize(raw, sizeof(raw));
    close(fd);
    return rc;
}

/* Makes a key file of 64 random hex digits with mode 0600, unless one
 * exists (then it is read).  *made tells which. */
static int key_file_make(const char *path, uint8_t key[PS_AEAD_KEY_LEN], int *made, char *err, size_t errlen)
{
    char hex[2 * PS_AEAD_KEY_LEN + 2];
    int fd, rc = PS_OK;

    *made = 0;
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
        return key_file_load(path, key, err, errlen);
    if (fd < 0) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        return PS_EIO;
    }
    if ((rc = ps_random(key, PS_AEAD_KEY_LEN))) {
        snprintf(err, errlen, "no randomness available");
        goto out;
    }
    ps_hex(key, PS_AEAD_KEY_LEN, hex);
    hex[2 * PS_AEAD_KEY_LEN] = '\n';
    if (write(fd, hex, sizeof(hex) - 1) != (ssize_t)(sizeof(hex) - 1) || fsync(fd) != 0) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        rc = PS_EIO;
        goto out;
    }
    *made = 1;
out:
    ps_zeroize(hex, sizeof(hex));
    if (close(fd) != 0 && rc == PS_OK) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        rc = PS_EIO;
    }
    if (rc) {
        ps_zeroize(key, PS_AEAD_KEY_LEN);
        unlink(path);
    }
    return rc;
}

size_t ps_keys_passphrase_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80; /* continuation bytes do not start a character */
    return n;
}

int ps_keys_passphrase_weak(const char *s)
{
    int digit = 0, lower = 0, upper = 0, other = 0;
    unsigned char seen[256] = {0};
    size_t distinct = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        digit |= *p >= '0' && *p <= '9';
        lower |= *p >= 'a' && *p <= 'z';
        upper |= *p >= 'A' && *p <= 'Z';
        other |= !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'));
        distinct += !seen[*p];
        seen[*p] = 1;
    }
    if (distinct < 5)
        return 1;
    return ps_keys_passphrase_chars(s) < 16 && digit + lower + upper + other == 1;
}

/* A new cache's passphrase: long enough, and a warning when weak. */
static int check_new_passphrase(const char *pass, char *err, size_t errlen)
{
    if (ps_keys_passphrase_chars(pass) < PS_PASSPHRASE_MIN_CHARS) {
        snprintf(err, errlen, "the passphrase is too short: use at least %d characters (a few words are easy to remember)",
                 PS_PASSPHRASE_MIN_CHARS);
        return PS_EINVAL;
    }
    if (ps_keys_passphrase_weak(pass))
        PS_WARN("cache", "the passphrase is weak (few different characters, or short and of one kind): "
                         "a longer one of several words is safer");
    return PS_OK;
}

const char *ps_keys_env_key_file(void)
{
    const char *kf = getenv("POPSYNC_KEY_FILE");
    return kf && *kf ? kf : NULL;
}

int ps_keys_new_params(ps_kek_params_t *p, const char *key_file, char *err, size_t errlen)
{
    const char *kf = ps_keys_env_key_file();
    uint64_t it = 0;
    int rc;

    memset(p, 0, sizeof(*p));
    if ((key_file && key_file[0]) || kf) {
        snprintf(p->kind, sizeof(p->kind), "%s", PS_KEK_KEY_FILE);
        return ps_abs_path(key_file && key_file[0] ? key_file : kf, p->key_file, err, errlen);
    }
    snprintf(p->kind, sizeof(p->kind), "%s", PS_KEK_PASSPHRASE);
    p->iterations = PS_KDF_DEFAULT_ITERATIONS;
    /* Test builds only: the suite runs hundreds of commands, each deriving
     * the key once; never below PS_KDF_MIN_ITERATIONS. */
    if ((rc = ps_test_hook_u64("POPSYNC_KDF_ITERATIONS", &it)) < 0 ||
        (rc && (it < PS_KDF_MIN_ITERATIONS || it > PS_KDF_MAX_ITERATIONS))) {
        snprintf(err, errlen, "POPSYNC_KDF_ITERATIONS must be a number from %u to %u", PS_KDF_MIN_ITERATIONS,
                 PS_KDF_MAX_ITERATIONS);
        return PS_EINVAL;
    }
    if (rc)
        p->iterations = (uint32_t)it;
    if ((rc = ps_random(p->salt, sizeof(p->salt)))) {
        snprintf(err, errlen, "no randomness available");
        return rc;
    }
    return PS_OK;
}

int ps_keys_get_kek(const char *dir, ps_kek_params_t *p, int create, int *made, uint8_t kek[PS_AEAD_KEY_LEN],
                    char *err, size_t errlen)
{
    char pass[PASS_BUF];
    size_t passlen = 0;
    int rc;

    *made = 0;
    if (strcmp(p->kind, PS_KEK_KEY_FILE) == 0) {
        const char *env = ps_keys_env_key_file();
        char path[PATH_MAX];
        if (create)
            return key_file_make(p->key_file, kek, made, err, errlen);
        if ((rc = ps_abs_path(env ? env : p->key_file, path, err, errlen)))
            return rc;
        snprintf(p->key_file, sizeof(p->key_file), "%s", path);
        return key_file_load(path, kek, err, errlen);
    }
    if (strcmp(p->kind, PS_KEK_PASSPHRASE) != 0 || p->iterations < 1 || p->iterations > PS_KDF_MAX_ITERATIONS) {
        snprintf(err, errlen, "cache %s: unknown key protection '%s'", dir, p->kind);
        return PS_EINVAL;
    }
    rc = get_passphrase(dir, create, pass, &passlen, err, errlen);
    if (rc == PS_OK && create)
        rc = check_new_passphrase(pass, err, errlen);
    if (rc == PS_OK &&
        (rc = ps_kdf_pbkdf2_sha256(pass, passlen, p->salt, sizeof(p->salt), p->iterations, kek, PS_AEAD_KEY_LEN)))
        snprintf(err, errlen, "deriving the key: %s", ps_strerror(rc));
    ps_zeroize(pass, sizeof(pass));
    return rc;
}
