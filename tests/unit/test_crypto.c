/* test_crypto.c - unit tests for common/crypto.c.
 *
 * Owns: checks of the primitives behind the cache's encryption at rest:
 * PBKDF2-HMAC-SHA256 against the RFC 7914 section 11 vectors, AES-256-GCM
 * against the GCM specification's test cases 13, 14 and 16 (McGrew and
 * Viega, as used by NIST's CAVP), seal/open round trips with one-shot calls
 * and a reused context, and that flipping any bit of the ciphertext, the
 * tag, the AAD or the nonce, or using another key, gives PS_ECRYPTO with
 * the output zeroed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "err.h"
#include "ids.h"

/* Parses hex into out (at most cap bytes); returns the length. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* ---- PBKDF2-HMAC-SHA256 ----------------------------------------------------- */

static void test_pbkdf2_rfc7914(void **state)
{
    uint8_t out[64], want[64];
    (void)state;
    unhex("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
          "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
          want, sizeof(want));
    assert_int_equal(ps_kdf_pbkdf2_sha256("passwd", 6, (const uint8_t *)"salt", 4, 1, out, sizeof(out)), PS_OK);
    assert_memory_equal(out, want, sizeof(want));

    unhex("4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
          "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
          want, sizeof(want));
    assert_int_equal(ps_kdf_pbkdf2_sha256("Password", 8, (const uint8_t *)"NaCl", 4, 80000, out, sizeof(out)),
                     PS_OK);
    assert_memory_equal(out, want, sizeof(want));
}

static void test_pbkdf2_key_length_and_args(void **state)
{
    uint8_t out[32], want[32];
    (void)state;
    /* 32 bytes, as the cache derives, 4096 rounds. */
    unhex("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a", want, sizeof(want));
    assert_int_equal(ps_kdf_pbkdf2_sha256("password", 8, (const uint8_t *)"salt", 4, 4096, out, sizeof(out)), PS_OK);
    assert_memory_equal(out, want, sizeof(want));
    /* A different salt or count gives a different key. */
    assert_int_equal(ps_kdf_pbkdf2_sha256("password", 8, (const uint8_t *)"SALT", 4, 4096, out, sizeof(out)), PS_OK);
    assert_memory_not_equal(out, want, sizeof(want));
    assert_int_equal(ps_kdf_pbkdf2_sha256("password", 8, (const uint8_t *)"salt", 4, 4095, out, sizeof(out)), PS_OK);
    assert_memory_not_equal(out, want, sizeof(want));
    assert_int_equal(ps_kdf_pbkdf2_sha256("password", 8, (const uint8_t *)"salt", 4, 0, out, sizeof(out)), PS_EINVAL);
    assert_int_equal(ps_kdf_pbkdf2_sha256("password", 8, (const uint8_t *)"salt", 4, 1, out, 0), PS_EINVAL);
    assert_int_equal(ps_kdf_pbkdf2_sha256("password", 8, (const uint8_t *)"salt", 4, 1, NULL, 32), PS_EINVAL);
}

/* ---- AES-256-GCM known answers ---------------------------------------------- */

typedef struct gcm_vec {
    const char *key, *iv, *aad, *pt, *ct, *tag;
} gcm_vec_t;

static const gcm_vec_t gcm_vecs[] = {
    /* Test case 13: empty plaintext, zero key and IV. */
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "",
     "530f8afbc74536b9a963b4f1c4cb738b"},
    /* Test case 14: one zero block. */
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "",
     "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    /* Test case 16: 60 bytes of plaintext, 20 of AAD. */
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void test_gcm_known_answers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(gcm_vecs) / sizeof(gcm_vecs[0]); i++) {
        const gcm_vec_t *t = &gcm_vecs[i];
        uint8_t key[32], iv[12], aad[64], pt[64], want[80], out[80], back[64];
        size_t aadlen, n;
        unhex(t->key, key, sizeof(key));
        unhex(t->iv, iv, sizeof(iv));
        aadlen = unhex(t->aad, aad, sizeof(aad));
        n = unhex(t->pt, pt, sizeof(pt));
        assert_int_equal(unhex(t->ct, want, sizeof(want)), n);
        unhex(t->tag, want + n, PS_AEAD_TAG_LEN);
        assert_int_equal(ps_aead_seal(key, iv, aad, aadlen, pt, n, out), PS_OK);
        assert_memory_equal(out, want, n + PS_AEAD_TAG_LEN);
        assert_int_equal(ps_aead_open(key, iv, aad, aadlen, out, n + PS_AEAD_TAG_LEN, back), PS_OK);
        if (n)
            assert_memory_equal(back, pt, n);
    }
}

/* ---- round trips and tampering -------------------------------------------------- */

static void test_round_trip_context(void **state)
{
    uint8_t key[32], nonce[12], plain[1000], sealed[1000 + PS_AEAD_TAG_LEN], back[1000];
    const char aad[] = "records0123456789abcdef";
    ps_aead_t *a = NULL;
    (void)state;
    assert_int_equal(ps_random(key, sizeof(key)), PS_OK);
    assert_int_equal(ps_aead_new(&a, key), PS_OK);
    for (size_t n = 0; n <= sizeof(plain); n += 37) {
        assert_int_equal(ps_random(nonce, sizeof(nonce)), PS_OK);
        assert_int_equal(ps_random(plain, sizeof(plain)), PS_OK);
        assert_int_equal(ps_aead_ctx_seal(a, nonce, aad, sizeof(aad) - 1, plain, n, sealed), PS_OK);
        if (n >= 16)
            assert_memory_not_equal(sealed, plain, n);
        /* The context and the one-shot calls agree. */
        assert_int_equal(ps_aead_open(key, nonce, aad, sizeof(aad) - 1, sealed, n + PS_AEAD_TAG_LEN, back), PS_OK);
        if (n)
            assert_memory_equal(back, plain, n);
        memset(back, 0, sizeof(back));
        assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad) - 1, sealed, n + PS_AEAD_TAG_LEN, back), PS_OK);
        if (n)
            assert_memory_equal(back, plain, n);
    }
    /* Too short to hold a tag. */
    assert_int_equal(ps_aead_ctx_open(a, nonce, aad, 0, sealed, PS_AEAD_TAG_LEN - 1, back), PS_EINVAL);
    ps_aead_free(a);
    ps_aead_free(NULL);
}

static void test_tamper(void **state)
{
    enum { N = 48 };
    uint8_t key[32], key2[32], nonce[12], plain[N], sealed[N + PS_AEAD_TAG_LEN], bad[N + PS_AEAD_TAG_LEN],
        back[N];
    uint8_t aad[] = "outbox\x00\x00\x00\x00\x00\x00\x00\x01";
    ps_aead_t *a = NULL, *b = NULL;
    (void)state;
    assert_int_equal(ps_random(key, sizeof(key)), PS_OK);
    memcpy(key2, key, sizeof(key));
    key2[31] ^= 1;
    assert_int_equal(ps_random(nonce, sizeof(nonce)), PS_OK);
    memcpy(plain, "name=Zhang San id_number=110105199003071239 ...", N);
    assert_int_equal(ps_aead_new(&a, key), PS_OK);
    assert_int_equal(ps_aead_new(&b, key2), PS_OK);
    assert_int_equal(ps_aead_ctx_seal(a, nonce, aad, sizeof(aad) - 1, plain, N, sealed), PS_OK);

    /* Every bit of the ciphertext and of the tag. */
    for (size_t bit = 0; bit < 8 * sizeof(sealed); bit++) {
        memcpy(bad, sealed, sizeof(sealed));
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        memset(back, 0xAA, sizeof(back));
        assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad) - 1, bad, sizeof(bad), back), PS_ECRYPTO);
        assert_true(all_zero(back, sizeof(back))); /* nothing of the plaintext comes out */
    }
    /* Every bit of the AAD: a value moved to another key or database. */
    for (size_t bit = 0; bit < 8 * (sizeof(aad) - 1); bit++) {
        aad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad) - 1, sealed, sizeof(sealed), back),
                         PS_ECRYPTO);
        aad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* A missing or shortened AAD. */
    assert_int_equal(ps_aead_ctx_open(a, nonce, NULL, 0, sealed, sizeof(sealed), back), PS_ECRYPTO);
    assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad) - 2, sealed, sizeof(sealed), back), PS_ECRYPTO);
    /* Every bit of the nonce. */
    for (size_t bit = 0; bit < 8 * sizeof(nonce); bit++) {
        nonce[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad) - 1, sealed, sizeof(sealed), back),
                         PS_ECRYPTO);
        nonce[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* Another key (a wrong passphrase), a truncated value. */
    assert_int_equal(ps_aead_ctx_open(b, nonce, aad, sizeof(aad) - 1, sealed, sizeof(sealed), back), PS_ECRYPTO);
    assert_int_equal(ps_aead_open(key2, nonce, aad, sizeof(aad) - 1, sealed, sizeof(sealed), back), PS_ECRYPTO);
    assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad) - 1, sealed, sizeof(sealed) - 1, back),
                     PS_ECRYPTO);
    /* And the untouched value still opens. */
    assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad) - 1, sealed, sizeof(sealed), back), PS_OK);
    assert_memory_equal(back, plain, N);
    ps_aead_free(a);
    ps_aead_free(b);
}

/* RFC 8439 section 2.8.2's AEAD_CHACHA20_POLY1305 example, then a round
 * trip and a flipped bit through the same context (the cache's new values). */
static void test_chachapoly_rfc8439(void **state)
{
    static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
                             "future, sunscreen would be it.";
    uint8_t key[32], nonce[12], aad[12], want[sizeof(pt) - 1 + PS_AEAD_TAG_LEN], out[sizeof(want)],
        back[sizeof(pt)];
    size_t n = sizeof(pt) - 1;
    ps_aead_t *a = NULL;
    (void)state;
    unhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f", key, sizeof(key));
    unhex("070000004041424344454647", nonce, sizeof(nonce));
    unhex("50515253c0c1c2c3c4c5c6c7", aad, sizeof(aad));
    unhex("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
          "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
          "3ff4def08e4b7a9de576d26586cec64b6116"
          "1ae10b594f09e26a7e902ecbd0600691",
          want, sizeof(want));
    assert_int_equal(ps_aead_new_alg(&a, PS_AEAD_CHACHA20_POLY1305, key), PS_OK);
    assert_int_equal(ps_aead_alg(a), PS_AEAD_CHACHA20_POLY1305);
    assert_int_equal(ps_aead_ctx_seal(a, nonce, aad, sizeof(aad), pt, n, out), PS_OK);
    assert_memory_equal(out, want, sizeof(want));
    assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad), out, sizeof(out), back), PS_OK);
    assert_memory_equal(back, pt, n);
    out[3] ^= 0x10;
    assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad), out, sizeof(out), back), PS_ECRYPTO);
    assert_true(all_zero(back, n));
    out[3] ^= 0x10;
    assert_int_equal(ps_aead_ctx_open(a, nonce, aad, sizeof(aad) - 1, out, sizeof(out), back), PS_ECRYPTO);
    ps_aead_free(a);
    assert_int_equal(ps_aead_new_alg(&a, (ps_aead_alg_t)7, key), PS_EINVAL);
    assert_null(a);
}

/* RFC 4231 test cases 1, 2 and 6 (a 131-byte key, hashed first): the
 * pre-keyed form equals the one-shot one and the RFC. */
static void test_hmac_key(void **state)
{
    static const struct {
        const char *key, *msg, *mac;
    } v[] = {
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    };
    uint8_t key[160], msg[160], want[32], out[32], out2[32];
    ps_hmac_key_t *k = NULL;
    size_t kl, ml;
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        kl = unhex(v[i].key, key, sizeof(key));
        ml = unhex(v[i].msg, msg, sizeof(msg));
        unhex(v[i].mac, want, sizeof(want));
        assert_int_equal(ps_hmac_key_new(&k, key, kl), PS_OK);
        assert_int_equal(ps_hmac_key_mac(k, msg, ml, out), PS_OK);
        assert_memory_equal(out, want, 32);
        assert_int_equal(ps_hmac_key_mac(k, msg, ml, out), PS_OK); /* the key is reusable */
        assert_memory_equal(out, want, 32);
        ps_hmac_key_free(k);
    }
    /* Case 6: a key longer than the block. */
    memset(key, 0xaa, 131);
    ml = strlen("Test Using Larger Than Block-Size Key - Hash Key First");
    memcpy(msg, "Test Using Larger Than Block-Size Key - Hash Key First", ml);
    unhex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", want, sizeof(want));
    assert_int_equal(ps_hmac_key_new(&k, key, 131), PS_OK);
    assert_int_equal(ps_hmac_key_mac(k, msg, ml, out), PS_OK);
    assert_memory_equal(out, want, 32);
    assert_int_equal(ps_hmac_sha256(key, 131, msg, ml, out2), PS_OK);
    assert_memory_equal(out2, want, 32);
    assert_int_equal(ps_hmac_key_mac(k, NULL, 0, out), PS_OK);
    assert_int_equal(ps_hmac_sha256(key, 131, NULL, 0, out2), PS_OK);
    assert_memory_equal(out, out2, 32);
    ps_hmac_key_free(k);
    ps_hmac_key_free(NULL);
}

/* The pre-keyed HMAC moved from mbedTLS's SHA-256 to OpenSSL's; the
 * person index of every existing cache holds its output, so it must not
 * change by a bit: a vector the mbedTLS implementation gave (the index key
 * derived from data key 00..1f, then the name term "N张三"), and the
 * one-shot ps_hmac_sha256 (still mbedTLS's md_hmac) for every message
 * length from 0 to 300 and keys of 0, 32, 64, 65 and 200 bytes. */
static void test_hmac_key_unchanged(void **state)
{
    static const char label[] = "popsync person index v1", term[] = "N\xe5\xbc\xa0\xe4\xb8\x89";
    static const size_t keylens[] = {0, 32, 64, 65, 200};
    uint8_t dek[32], pk[32], want[32], out[32], out2[32], key[200], msg[300];
    ps_hmac_key_t *k = NULL;
    (void)state;
    for (size_t i = 0; i < sizeof(dek); i++)
        dek[i] = (uint8_t)i;
    assert_int_equal(ps_hmac_sha256(dek, sizeof(dek), label, sizeof(label) - 1, pk), PS_OK);
    assert_int_equal(ps_hmac_key_new(&k, pk, sizeof(pk)), PS_OK);
    assert_int_equal(ps_hmac_key_mac(k, term, sizeof(term) - 1, out), PS_OK);
    unhex("09fb59c2779c5e6537e9336dff4c11b60199f76cc43e639e26677b14249c0735", want, sizeof(want));
    assert_memory_equal(out, want, 32);
    ps_hmac_key_free(k);
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 7 + 3);
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 13 + 1);
    for (size_t j = 0; j < sizeof(keylens) / sizeof(keylens[0]); j++) {
        assert_int_equal(ps_hmac_key_new(&k, key, keylens[j]), PS_OK);
        for (size_t n = 0; n <= sizeof(msg); n++) {
            assert_int_equal(ps_hmac_key_mac(k, msg, n, out), PS_OK);
            assert_int_equal(ps_hmac_sha256(key, keylens[j], msg, n, out2), PS_OK);
            assert_memory_equal(out, out2, 32);
        }
        ps_hmac_key_free(k);
    }
}

static void test_zeroize(void **state)
{
    uint8_t k[32];
    (void)state;
    memset(k, 0x5c, sizeof(k));
    ps_zeroize(k, sizeof(k));
    assert_true(all_zero(k, sizeof(k)));
    ps_zeroize(NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pbkdf2_rfc7914),  cmocka_unit_test(test_pbkdf2_key_length_and_args),
        cmocka_unit_test(test_gcm_known_answers), cmocka_unit_test(test_round_trip_context),
        cmocka_unit_test(test_tamper),          cmocka_unit_test(test_zeroize),
        cmocka_unit_test(test_chachapoly_rfc8439), cmocka_unit_test(test_hmac_key),
        cmocka_unit_test(test_hmac_key_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
