/* test_client_keys.c - unit tests for client/keys.c.
 *
 * Owns: checks of the passphrase rules (length in characters, weak ones),
 * the choice between passphrase and key file for a new cache, key-file
 * reading (raw and hex, malformed) and that a passphrase from the
 * environment derives the same KEK twice and refuses a short one only for
 * a new cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "keys.h"

static void test_passphrase_chars(void **state)
{
    (void)state;
    assert_int_equal(ps_keys_passphrase_chars(""), 0);
    assert_int_equal(ps_keys_passphrase_chars("abc"), 3);
    assert_int_equal(ps_keys_passphrase_chars("口令"), 2); /* 6 bytes, 2 characters */
    assert_int_equal(ps_keys_passphrase_chars("t1 口令 correct horse"), 19);
}

static void test_passphrase_weak(void **state)
{
    (void)state;
    assert_true(ps_keys_passphrase_weak("aaaaaaaaaaaaaaaaaaaa"));  /* one character */
    assert_true(ps_keys_passphrase_weak("abababababababab1212")); /* 4 different */
    assert_true(ps_keys_passphrase_weak("1234567890"));           /* short, digits only */
    assert_true(ps_keys_passphrase_weak("qwertyuiop"));           /* short, lower case only */
    assert_false(ps_keys_passphrase_weak("popsync-test-passphrase"));
    assert_false(ps_keys_passphrase_weak("qwertyuiopasdfghj"));   /* 17 letters: long enough */
    assert_false(ps_keys_passphrase_weak("Tr0ub4dor&3"));
}

static void test_new_params(void **state)
{
    ps_kek_params_t p;
    char err[256];
    (void)state;
    unsetenv("POPSYNC_KEY_FILE");
    assert_int_equal(ps_keys_new_params(&p, "", err, sizeof(err)), PS_OK);
    assert_string_equal(p.kind, PS_KEK_PASSPHRASE);
    assert_true(p.iterations >= PS_KDF_MIN_ITERATIONS);
    assert_int_equal(ps_keys_new_params(&p, "/nonexistent/dir/k.key", err, sizeof(err)), PS_OK);
    assert_string_equal(p.kind, PS_KEK_KEY_FILE);
    assert_string_equal(p.key_file, "/nonexistent/dir/k.key");
    setenv("POPSYNC_KEY_FILE", "/nonexistent/other.key", 1);
    assert_int_equal(ps_keys_new_params(&p, NULL, err, sizeof(err)), PS_OK);
    assert_string_equal(p.key_file, "/nonexistent/other.key");
    unsetenv("POPSYNC_KEY_FILE");
}

static void test_passphrase_kek(void **state)
{
    ps_kek_params_t p;
    uint8_t k1[PS_AEAD_KEY_LEN], k2[PS_AEAD_KEY_LEN];
    char err[256];
    int made;
    (void)state;
    unsetenv("POPSYNC_KEY_FILE");
    memset(&p, 0, sizeof(p));
    snprintf(p.kind, sizeof(p.kind), "%s", PS_KEK_PASSPHRASE);
    p.iterations = 1000;
    setenv("POPSYNC_PASSPHRASE", "popsync-test-passphrase", 1);
    assert_int_equal(ps_keys_get_kek("d", &p, 1, &made, k1, err, sizeof(err)), PS_OK);
    assert_int_equal(ps_keys_get_kek("d", &p, 0, &made, k2, err, sizeof(err)), PS_OK);
    assert_memory_equal(k1, k2, sizeof(k1));
    /* Nine characters: refused for a new cache, accepted for an old one. */
    setenv("POPSYNC_PASSPHRASE", "nine-char", 1);
    assert_int_equal(ps_keys_get_kek("d", &p, 1, &made, k1, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "at least 10 characters"));
    assert_int_equal(ps_keys_get_kek("d", &p, 0, &made, k2, err, sizeof(err)), PS_OK);
    setenv("POPSYNC_PASSPHRASE", "", 1);
    assert_int_equal(ps_keys_get_kek("d", &p, 0, &made, k2, err, sizeof(err)), PS_EINVAL);
    unsetenv("POPSYNC_PASSPHRASE");
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_key_file(void **state)
{
    char dir[] = "/tmp/ps-keys-XXXXXX", path[256], err[256];
    uint8_t raw[PS_AEAD_KEY_LEN], k[PS_AEAD_KEY_LEN], made_key[PS_AEAD_KEY_LEN];
    ps_kek_params_t p;
    int made;
    (void)state;
    unsetenv("POPSYNC_KEY_FILE");
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(i * 7 + 1);
    memset(&p, 0, sizeof(p));
    snprintf(p.kind, sizeof(p.kind), "%s", PS_KEK_KEY_FILE);
    /* 32 raw bytes are the key itself. */
    snprintf(path, sizeof(path), "%s/raw.key", dir);
    write_file(path, raw, sizeof(raw));
    snprintf(p.key_file, sizeof(p.key_file), "%s", path);
    assert_int_equal(ps_keys_get_kek("d", &p, 0, &made, k, err, sizeof(err)), PS_OK);
    assert_memory_equal(k, raw, sizeof(raw));
    /* 64 hex digits with a newline: the same key. */
    snprintf(path, sizeof(path), "%s/hex.key", dir);
    write_file(path, "01080f161d242b323940474e555c636a71787f868d949ba2a9b0b7bec5ccD3DA\n", 65);
    snprintf(p.key_file, sizeof(p.key_file), "%s", path);
    assert_int_equal(ps_keys_get_kek("d", &p, 0, &made, k, err, sizeof(err)), PS_OK);
    assert_memory_equal(k, raw, sizeof(raw));
    /* Not hex: refused. */
    write_file(path, "zz080f161d242b323940474e555c636a71787f868d949ba2a9b0b7bec5ccD3DA\n", 65);
    assert_int_equal(ps_keys_get_kek("d", &p, 0, &made, k, err, sizeof(err)), PS_EINVAL);
    assert_non_null(strstr(err, "64 hex digits"));
    /* create makes a missing key file and reads it back. */
    snprintf(path, sizeof(path), "%s/new.key", dir);
    snprintf(p.key_file, sizeof(p.key_file), "%s", path);
    assert_int_equal(ps_keys_get_kek("d", &p, 1, &made, made_key, err, sizeof(err)), PS_OK);
    assert_int_equal(made, 1);
    assert_int_equal(ps_keys_get_kek("d", &p, 0, &made, k, err, sizeof(err)), PS_OK);
    assert_memory_equal(k, made_key, sizeof(k));
    unlink(path);
    snprintf(path, sizeof(path), "%s/hex.key", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/raw.key", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passphrase_chars), cmocka_unit_test(test_passphrase_weak),
        cmocka_unit_test(test_new_params),       cmocka_unit_test(test_passphrase_kek),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
