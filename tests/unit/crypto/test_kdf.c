/*
 * Unit tests for crypto/kdf.c. HKDF-SHA256 vectors: RFC 5869 Appendix A,
 * test cases 1, 2 and 3. HMAC-SHA256 vectors: RFC 4231 section 4, test
 * cases 1, 2, 4 and 6.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/crypto.h"

static size_t unhex(uint8_t *out, size_t cap, const char *hex)
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

static void seq(uint8_t *p, size_t n, uint8_t start)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(start + i);
}

/* RFC 5869 A.1: basic case. */
static void test_fv_crypto_hkdf_sha256_rfc5869_case1(void **state)
{
    (void)state;
    uint8_t ikm[22], salt[13], info[10], okm[42], want[42];
    memset(ikm, 0x0b, sizeof(ikm));
    seq(salt, sizeof(salt), 0x00);
    seq(info, sizeof(info), 0xf0);
    unhex(want, sizeof(want),
          "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    assert_int_equal(fv_crypto_hkdf_sha256(okm, sizeof(okm), ikm, sizeof(ikm), salt, sizeof(salt),
                                           info, sizeof(info)),
                     FV_OK);
    assert_memory_equal(okm, want, sizeof(want));
}

/* RFC 5869 A.2: longer inputs and outputs. */
static void test_fv_crypto_hkdf_sha256_rfc5869_case2(void **state)
{
    (void)state;
    uint8_t ikm[80], salt[80], info[80], okm[82], want[82];
    seq(ikm, sizeof(ikm), 0x00);
    seq(salt, sizeof(salt), 0x60);
    seq(info, sizeof(info), 0xb0);
    unhex(want, sizeof(want),
          "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
          "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
          "cc30c58179ec3e87c14c01d5c1f3434f1d87");
    assert_int_equal(fv_crypto_hkdf_sha256(okm, sizeof(okm), ikm, sizeof(ikm), salt, sizeof(salt),
                                           info, sizeof(info)),
                     FV_OK);
    assert_memory_equal(okm, want, sizeof(want));
}

/* RFC 5869 A.3: zero-length salt and info. */
static void test_fv_crypto_hkdf_sha256_rfc5869_case3(void **state)
{
    (void)state;
    uint8_t ikm[22], okm[42], want[42];
    memset(ikm, 0x0b, sizeof(ikm));
    unhex(want, sizeof(want),
          "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
    assert_int_equal(fv_crypto_hkdf_sha256(okm, sizeof(okm), ikm, sizeof(ikm), NULL, 0, NULL, 0),
                     FV_OK);
    assert_memory_equal(okm, want, sizeof(want));
    /* an explicit empty salt is the same as none */
    memset(okm, 0, sizeof(okm));
    assert_int_equal(fv_crypto_hkdf_sha256(okm, sizeof(okm), ikm, sizeof(ikm), ikm, 0, ikm, 0),
                     FV_OK);
    assert_memory_equal(okm, want, sizeof(want));
}

static void test_fv_crypto_hkdf_sha256_bad_length(void **state)
{
    (void)state;
    static uint8_t big[255 * 32 + 1];
    uint8_t ikm[16] = {0};
    assert_int_equal(fv_crypto_hkdf_sha256(big, 0, ikm, sizeof(ikm), NULL, 0, NULL, 0),
                     FV_E_INVALID);
    assert_int_equal(fv_crypto_hkdf_sha256(big, sizeof(big), ikm, sizeof(ikm), NULL, 0, NULL, 0),
                     FV_E_INVALID);
    assert_int_equal(
        fv_crypto_hkdf_sha256(big, sizeof(big) - 1, ikm, sizeof(ikm), NULL, 0, NULL, 0), FV_OK);
}

struct hmac_kat {
    const char *name;
    uint8_t key[131];
    size_t keylen;
    uint8_t data[64];
    size_t datalen;
    const char *mac;
};

static void check_hmac(const uint8_t *key, size_t keylen, const void *data, size_t datalen,
                       const char *machex)
{
    struct fv_secret *k = NULL;
    uint8_t out[32], want[32];
    unhex(want, sizeof(want), machex);
    assert_int_equal(fv_crypto_secret_copy(&k, key, keylen), FV_OK);
    assert_int_equal(fv_crypto_hmac_sha256(out, data, datalen, k), FV_OK);
    assert_memory_equal(out, want, 32);
    fv_crypto_secret_free(k);
}

static void test_fv_crypto_hmac_sha256_rfc4231(void **state)
{
    (void)state;
    uint8_t key[131], data[50];
    const char *s;

    /* 4.2 test case 1 */
    memset(key, 0x0b, 20);
    s = "Hi There";
    check_hmac(key, 20, s, strlen(s),
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* 4.3 test case 2: key shorter than the output */
    s = "what do ya want for nothing?";
    check_hmac((const uint8_t *)"Jefe", 4, s, strlen(s),
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* 4.5 test case 4 */
    seq(key, 25, 0x01);
    memset(data, 0xcd, sizeof(data));
    check_hmac(key, 25, data, sizeof(data),
               "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    /* 4.7 test case 6: key larger than the block size */
    memset(key, 0xaa, 131);
    s = "Test Using Larger Than Block-Size Key - Hash Key First";
    check_hmac(key, 131, s, strlen(s),
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

/* kdf_derive is HKDF(root, no salt, "formvault/" label 0x00 ctx). */
static void test_fv_crypto_kdf_derive_matches_hkdf(void **state)
{
    (void)state;
    uint8_t root[32], a[32], b[32];
    struct fv_secret *r = NULL, *d = NULL;
    static const uint8_t info[] = "formvault/storage\0tenant-1";
    seq(root, sizeof(root), 0x42);
    assert_int_equal(fv_crypto_secret_copy(&r, root, sizeof(root)), FV_OK);
    assert_int_equal(fv_crypto_hkdf_sha256(a, 32, root, 32, NULL, 0, info, sizeof(info) - 1),
                     FV_OK);
    assert_int_equal(fv_crypto_kdf_derive_raw(b, "storage", (const uint8_t *)"tenant-1", 8, r),
                     FV_OK);
    assert_memory_equal(a, b, 32);
    assert_int_equal(fv_crypto_kdf_derive(&d, "storage", (const uint8_t *)"tenant-1", 8, r), FV_OK);
    assert_int_equal(fv_crypto_secret_len(d), 32);
    assert_memory_equal(fv_crypto_secret_bytes(d), a, 32);
    fv_crypto_secret_free(d);
    fv_crypto_secret_free(r);
}

static void test_fv_crypto_kdf_derive_distinct(void **state)
{
    (void)state;
    uint8_t k[4][32];
    static uint8_t longctx[1000];
    struct fv_secret *r = NULL;
    assert_int_equal(fv_crypto_secret_random(&r, 32), FV_OK);
    assert_int_equal(fv_crypto_kdf_derive_raw(k[0], "field", NULL, 0, r), FV_OK);
    assert_int_equal(fv_crypto_kdf_derive_raw(k[1], "file", NULL, 0, r), FV_OK);
    assert_int_equal(fv_crypto_kdf_derive_raw(k[2], "field", (const uint8_t *)"a", 1, r), FV_OK);
    /* the separator keeps ("field", "") apart from ("fiel", "d") */
    assert_int_equal(fv_crypto_kdf_derive_raw(k[3], "fiel", (const uint8_t *)"d", 1, r), FV_OK);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_false(fv_ct_equal(k[i], k[j], 32));
    /* a context longer than the stack buffer takes the heap path */
    assert_int_equal(fv_crypto_kdf_derive_raw(k[0], "sub", longctx, sizeof(longctx), r), FV_OK);
    fv_mem_fail_at(1, false);
    assert_int_equal(fv_crypto_kdf_derive_raw(k[0], "sub", longctx, sizeof(longctx), r),
                     FV_E_NOMEM);
    fv_mem_fail_at(0, false);
    fv_crypto_secret_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_crypto_hkdf_sha256_rfc5869_case1),
        cmocka_unit_test(test_fv_crypto_hkdf_sha256_rfc5869_case2),
        cmocka_unit_test(test_fv_crypto_hkdf_sha256_rfc5869_case3),
        cmocka_unit_test(test_fv_crypto_hkdf_sha256_bad_length),
        cmocka_unit_test(test_fv_crypto_hmac_sha256_rfc4231),
        cmocka_unit_test(test_fv_crypto_kdf_derive_matches_hkdf),
        cmocka_unit_test(test_fv_crypto_kdf_derive_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
