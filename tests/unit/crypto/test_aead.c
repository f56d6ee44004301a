/*
 * Unit tests for crypto/secret.c and crypto/aead.c: guarded secrets and
 * AES-256-GCM. Known answers are test cases 13-16 of McGrew & Viega, "The
 * Galois/Counter Mode of Operation (GCM)", revised 2005, Appendix B (the
 * 256-bit-key cases with a 96-bit IV; NIST CAVP gcmEncryptExtIV256 agrees).
 * Cases 17 and 18 use 64- and 480-bit IVs, which this API does not accept.
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

struct gcm_kat {
    const char *name, *key, *iv, *pt, *ad, *ct, *tag;
};

#define K15 "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"
#define P15                                                                                        \
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"                             \
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define C15                                                                                        \
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"                             \
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
static const struct gcm_kat kats[] = {
    {"case 13 (empty)", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"case 14 (16 bytes)", "0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"case 15 (64 bytes)", K15, "cafebabefacedbaddecaf888", P15 "1aafd255", "", C15 "898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"case 16 (60 bytes + ad)", K15, "cafebabefacedbaddecaf888", P15,
     "feedfacedeadbeeffeedfacedeadbeefabaddad2", C15, "76fc6ece0f4e1768cddf8853bb2d551b"},
};

struct kat_bytes {
    uint8_t key[32], iv[12], pt[64], ad[32], ct[64], tag[16];
    size_t ptlen, adlen;
};

static void load(struct kat_bytes *b, const struct gcm_kat *k)
{
    assert_int_equal(unhex(b->key, sizeof(b->key), k->key), 32);
    assert_int_equal(unhex(b->iv, sizeof(b->iv), k->iv), 12);
    b->ptlen = unhex(b->pt, sizeof(b->pt), k->pt);
    b->adlen = unhex(b->ad, sizeof(b->ad), k->ad);
    assert_int_equal(unhex(b->ct, sizeof(b->ct), k->ct), b->ptlen);
    assert_int_equal(unhex(b->tag, sizeof(b->tag), k->tag), 16);
}

static void test_fv_crypto_aead_seal_detached_known_answer(void **state)
{
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(kats); i++) {
        struct kat_bytes b;
        struct fv_aead *a = NULL;
        uint8_t c[64], tag[16], m[64];
        print_message("%s\n", kats[i].name);
        load(&b, &kats[i]);
        assert_int_equal(fv_crypto_aead_new_raw(&a, b.key), FV_OK);
        assert_int_equal(
            fv_crypto_aead_seal_detached(c, tag, b.pt, b.ptlen, b.ad, b.adlen, b.iv, a), FV_OK);
        assert_memory_equal(c, b.ct, b.ptlen);
        assert_memory_equal(tag, b.tag, 16);
        assert_int_equal(
            fv_crypto_aead_open_detached(m, b.ct, b.ptlen, b.tag, b.ad, b.adlen, b.iv, a), FV_OK);
        assert_memory_equal(m, b.pt, b.ptlen);
        /* in place, both directions */
        memcpy(m, b.pt, b.ptlen);
        assert_int_equal(fv_crypto_aead_seal_detached(m, tag, m, b.ptlen, b.ad, b.adlen, b.iv, a),
                         FV_OK);
        assert_memory_equal(m, b.ct, b.ptlen);
        assert_int_equal(fv_crypto_aead_open_detached(m, m, b.ptlen, tag, b.ad, b.adlen, b.iv, a),
                         FV_OK);
        assert_memory_equal(m, b.pt, b.ptlen);
        fv_crypto_aead_free(a);
    }
}

/* The same vectors through the combined format nonce || ciphertext || tag. */
static void test_fv_crypto_aead_open_known_answer(void **state)
{
    (void)state;
    for (size_t i = 0; i < FV_ARRAY_LEN(kats); i++) {
        struct kat_bytes b;
        struct fv_aead *a = NULL;
        struct fv_secret *key = NULL;
        uint8_t c[64 + FV_CRYPTO_AEAD_OVERHEAD], m[64];
        load(&b, &kats[i]);
        memcpy(c, b.iv, 12);
        memcpy(c + 12, b.ct, b.ptlen);
        memcpy(c + 12 + b.ptlen, b.tag, 16);
        assert_int_equal(fv_crypto_secret_copy(&key, b.key, 32), FV_OK);
        assert_int_equal(fv_crypto_aead_new(&a, key), FV_OK);
        assert_int_equal(
            fv_crypto_aead_open(m, c, b.ptlen + FV_CRYPTO_AEAD_OVERHEAD, b.ad, b.adlen, a), FV_OK);
        assert_memory_equal(m, b.pt, b.ptlen);
        fv_crypto_aead_free(a);
        fv_crypto_secret_free(key);
    }
}

static void test_fv_crypto_aead_seal_round_trip(void **state)
{
    (void)state;
    struct fv_secret *key = NULL;
    struct fv_aead *a = NULL;
    uint8_t m[100], c1[100 + FV_CRYPTO_AEAD_OVERHEAD], c2[sizeof(c1)], out[100];
    for (size_t i = 0; i < sizeof(m); i++)
        m[i] = (uint8_t)i;
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    assert_int_equal(fv_crypto_aead_new(&a, key), FV_OK);
    assert_int_equal(fv_crypto_aead_seal(c1, m, sizeof(m), (const uint8_t *)"ad", 2, a), FV_OK);
    assert_int_equal(fv_crypto_aead_seal(c2, m, sizeof(m), (const uint8_t *)"ad", 2, a), FV_OK);
    /* fresh random nonce each time */
    assert_false(fv_ct_equal(c1, c2, 12));
    assert_int_equal(fv_crypto_aead_open(out, c1, sizeof(c1), (const uint8_t *)"ad", 2, a), FV_OK);
    assert_memory_equal(out, m, sizeof(m));
    assert_int_equal(fv_crypto_aead_open(out, c2, sizeof(c2), (const uint8_t *)"ad", 2, a), FV_OK);
    assert_memory_equal(out, m, sizeof(m));
    /* empty message, no ad */
    assert_int_equal(fv_crypto_aead_seal(c1, NULL, 0, NULL, 0, a), FV_OK);
    assert_int_equal(fv_crypto_aead_open(out, c1, FV_CRYPTO_AEAD_OVERHEAD, NULL, 0, a), FV_OK);
    fv_crypto_aead_free(a);
    fv_crypto_secret_free(key);
}

/* Flip each kind of input in turn: every one must fail with the one code. */
static void test_fv_crypto_aead_open_detached_tampered(void **state)
{
    (void)state;
    struct kat_bytes b;
    struct fv_aead *a = NULL;
    uint8_t m[64], zero[64] = {0};
    load(&b, &kats[3]);
    assert_int_equal(fv_crypto_aead_new_raw(&a, b.key), FV_OK);
    for (int what = 0; what < 4; what++) {
        uint8_t *field = what == 0 ? b.ct : what == 1 ? b.tag : what == 2 ? b.ad : b.iv;
        for (int bit = 0; bit < 8; bit += 7) {
            field[5] ^= (uint8_t)(1u << bit);
            memset(m, 0xee, sizeof(m));
            assert_int_equal(
                fv_crypto_aead_open_detached(m, b.ct, b.ptlen, b.tag, b.ad, b.adlen, b.iv, a),
                FV_E_CORRUPT);
            /* no unauthenticated plaintext is released */
            assert_memory_equal(m, zero, b.ptlen);
            field[5] ^= (uint8_t)(1u << bit);
        }
    }
    /* dropping the ad or a byte of ciphertext also fails */
    assert_int_equal(fv_crypto_aead_open_detached(m, b.ct, b.ptlen, b.tag, NULL, 0, b.iv, a),
                     FV_E_CORRUPT);
    assert_int_equal(
        fv_crypto_aead_open_detached(m, b.ct, b.ptlen - 1, b.tag, b.ad, b.adlen, b.iv, a),
        FV_E_CORRUPT);
    /* untouched input still opens */
    assert_int_equal(fv_crypto_aead_open_detached(m, b.ct, b.ptlen, b.tag, b.ad, b.adlen, b.iv, a),
                     FV_OK);
    fv_crypto_aead_free(a);
}

static void test_fv_crypto_aead_open_tampered_and_short(void **state)
{
    (void)state;
    uint8_t key[32] = {7}, m[40], c[40 + FV_CRYPTO_AEAD_OVERHEAD], out[40];
    struct fv_aead *a = NULL, *other = NULL;
    memset(m, 'x', sizeof(m));
    assert_int_equal(fv_crypto_aead_new_raw(&a, key), FV_OK);
    key[31] ^= 1;
    assert_int_equal(fv_crypto_aead_new_raw(&other, key), FV_OK);
    assert_int_equal(fv_crypto_aead_seal(c, m, sizeof(m), NULL, 0, a), FV_OK);
    for (size_t i = 0; i < sizeof(c); i += 13) {
        c[i] ^= 0x10; /* nonce, ciphertext and tag positions */
        assert_int_equal(fv_crypto_aead_open(out, c, sizeof(c), NULL, 0, a), FV_E_CORRUPT);
        c[i] ^= 0x10;
    }
    assert_int_equal(fv_crypto_aead_open(out, c, sizeof(c), (const uint8_t *)"x", 1, a),
                     FV_E_CORRUPT);
    assert_int_equal(fv_crypto_aead_open(out, c, sizeof(c), NULL, 0, other), FV_E_CORRUPT);
    for (size_t n = 0; n < FV_CRYPTO_AEAD_OVERHEAD; n++)
        assert_int_equal(fv_crypto_aead_open(out, c, n, NULL, 0, a), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_aead_open(out, NULL, 0, NULL, 0, a), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_aead_open(out, c, sizeof(c), NULL, 0, a), FV_OK);
    assert_memory_equal(out, m, sizeof(m));
    fv_crypto_aead_free(a);
    fv_crypto_aead_free(other);
}

/* The VFS page path: 4 KiB in place, many times, stays correct. */
static void test_fv_crypto_aead_seal_detached_page_in_place(void **state)
{
    (void)state;
    static uint8_t page[4096], orig[4096];
    uint8_t key[32] = {1}, nonce[12] = {0}, tag[16];
    struct fv_aead *a = NULL;
    fv_random_bytes(orig, sizeof(orig));
    memcpy(page, orig, sizeof(page));
    assert_int_equal(fv_crypto_aead_new_raw(&a, key), FV_OK);
    for (uint32_t i = 0; i < 2000; i++) {
        memcpy(nonce, &i, sizeof(i));
        assert_int_equal(
            fv_crypto_aead_seal_detached(page, tag, page, sizeof(page), NULL, 0, nonce, a), FV_OK);
        assert_false(fv_ct_equal(page, orig, 64));
        assert_int_equal(
            fv_crypto_aead_open_detached(page, page, sizeof(page), tag, NULL, 0, nonce, a), FV_OK);
    }
    assert_memory_equal(page, orig, sizeof(page));
    fv_crypto_aead_free(a);
}

static void test_fv_crypto_secret_copy_and_random(void **state)
{
    (void)state;
    uint8_t raw[48];
    struct fv_secret *s = NULL, *r1 = NULL, *r2 = NULL;
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (uint8_t)(i * 3);
    assert_int_equal(fv_crypto_secret_copy(&s, raw, sizeof(raw)), FV_OK);
    assert_int_equal(fv_crypto_secret_len(s), sizeof(raw));
    assert_memory_equal(fv_crypto_secret_bytes(s), raw, sizeof(raw));
    assert_int_equal(fv_crypto_secret_random(&r1, 32), FV_OK);
    assert_int_equal(fv_crypto_secret_random(&r2, 32), FV_OK);
    assert_int_equal(fv_crypto_secret_len(r1), 32);
    assert_false(fv_ct_equal(fv_crypto_secret_bytes(r1), fv_crypto_secret_bytes(r2), 32));
    fv_crypto_secret_free(r2);
    assert_int_equal(fv_crypto_secret_random(&r2, 4096), FV_OK);
    assert_int_equal(fv_crypto_secret_len(r2), 4096);
    fv_crypto_secret_free(r2);
    fv_crypto_secret_free(r1);
    fv_crypto_secret_free(s);
    fv_crypto_secret_free(NULL);
    fv_crypto_aead_free(NULL);
}

/* Allocation failure: each allocation point returns FV_E_NOMEM and leaks nothing. */
static void test_fv_crypto_aead_new_nomem(void **state)
{
    (void)state;
    uint8_t raw[32] = {1};
    for (long n = 1;; n++) {
        struct fv_secret *s = NULL;
        struct fv_aead *a = NULL;
        int rc;
        fv_mem_fail_at(n, false);
        rc = fv_crypto_secret_copy(&s, raw, sizeof(raw));
        if (rc == FV_OK)
            rc = fv_crypto_aead_new(&a, s);
        fv_mem_fail_at(0, false);
        fv_crypto_aead_free(a);
        fv_crypto_secret_free(s);
        if (rc == FV_OK)
            break;
        assert_int_equal(rc, FV_E_NOMEM);
        assert_true(n < 10);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_crypto_aead_seal_detached_known_answer),
        cmocka_unit_test(test_fv_crypto_aead_open_known_answer),
        cmocka_unit_test(test_fv_crypto_aead_seal_round_trip),
        cmocka_unit_test(test_fv_crypto_aead_open_detached_tampered),
        cmocka_unit_test(test_fv_crypto_aead_open_tampered_and_short),
        cmocka_unit_test(test_fv_crypto_aead_seal_detached_page_in_place),
        cmocka_unit_test(test_fv_crypto_secret_copy_and_random),
        cmocka_unit_test(test_fv_crypto_aead_new_nomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
