/*
 * Unit tests for crypto/keyring.c: versions and the write version, purpose
 * keys that differ per purpose and per owner and match the documented
 * derivation (HKDF-SHA256, RFC 5869, info "formvault/" label 0x00 owner),
 * per-context subkeys, revocation and the generation counter, reference
 * counting, allocation failures, and a threaded smoke test for TSan.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/crypto.h"

static const char *const labels[FV_KEY_PURPOSES] = {"storage", "field", "blind-index", "file",
                                                    "audit-mac"};

static struct fv_secret *root_key(uint8_t fill)
{
    uint8_t raw[32];
    struct fv_secret *s = NULL;
    memset(raw, fill, sizeof(raw));
    assert_int_equal(fv_crypto_secret_copy(&s, raw, sizeof(raw)), FV_OK);
    return s;
}

/* Seal a fixed message with a fixed nonce so two contexts can be compared. */
static void fingerprint(uint8_t out[16], struct fv_aead *a)
{
    static const uint8_t nonce[12] = {0};
    uint8_t c[1];
    assert_int_equal(
        fv_crypto_aead_seal_detached(c, out, (const uint8_t *)"x", 1, NULL, 0, nonce, a), FV_OK);
}

static void fingerprint_raw(uint8_t out[16], const uint8_t key[32])
{
    struct fv_aead *a = NULL;
    assert_int_equal(fv_crypto_aead_new_raw(&a, key), FV_OK);
    fingerprint(out, a);
    fv_crypto_aead_free(a);
}

static void test_fv_crypto_keyring_add_versions(void **state)
{
    (void)state;
    struct fv_keyring *kr = NULL;
    struct fv_secret *r1 = root_key(1), *r2 = root_key(2);
    uint32_t v[FV_CRYPTO_KEYRING_MAX_VERSIONS + 1];

    assert_int_equal(fv_crypto_keyring_new(&kr, "tenant-a"), FV_OK);
    assert_int_equal(fv_crypto_keyring_write_version(kr), 0);
    assert_int_equal(fv_crypto_keyring_versions(kr, v, 8), 0);
    assert_int_equal(fv_crypto_keyring_add(kr, 7, r1), FV_OK);
    assert_int_equal(fv_crypto_keyring_write_version(kr), 7);
    assert_int_equal(fv_crypto_keyring_add(kr, 3, r2), FV_OK);
    /* the first version stays the write version */
    assert_int_equal(fv_crypto_keyring_write_version(kr), 7);
    assert_int_equal(fv_crypto_keyring_add(kr, 3, r1), FV_E_CONFLICT);
    assert_int_equal(fv_crypto_keyring_add(kr, 0, r1), FV_E_INVALID);
    assert_int_equal(fv_crypto_keyring_add(kr, UINT32_MAX, r1), FV_OK);
    assert_int_equal(fv_crypto_keyring_versions(kr, v, 8), 3);
    assert_int_equal(v[0], 3);
    assert_int_equal(v[1], 7);
    assert_int_equal(v[2], UINT32_MAX);
    /* a short output array still reports the count */
    assert_int_equal(fv_crypto_keyring_versions(kr, v, 1), 3);
    assert_int_equal(fv_crypto_keyring_set_write(kr, 3), FV_OK);
    assert_int_equal(fv_crypto_keyring_write_version(kr), 3);
    assert_int_equal(fv_crypto_keyring_set_write(kr, 4), FV_E_NOT_FOUND);
    assert_int_equal(fv_crypto_keyring_write_version(kr), 3);

    /* fill to the limit */
    for (uint32_t i = 10; i < 15; i++)
        assert_int_equal(fv_crypto_keyring_add(kr, i, r1), FV_OK);
    assert_int_equal(fv_crypto_keyring_versions(kr, v, FV_CRYPTO_KEYRING_MAX_VERSIONS),
                     FV_CRYPTO_KEYRING_MAX_VERSIONS);
    assert_int_equal(fv_crypto_keyring_add(kr, 99, r1), FV_E_LIMIT);

    /* remove: gone, absent is a no-op, removing the write version leaves none */
    fv_crypto_keyring_remove(kr, 10);
    fv_crypto_keyring_remove(kr, 10);
    assert_int_equal(fv_crypto_keyring_versions(kr, v, 8), 7);
    for (size_t i = 0; i < 7; i++)
        assert_int_not_equal(v[i], 10);
    fv_crypto_keyring_remove(kr, 3);
    assert_int_equal(fv_crypto_keyring_write_version(kr), 0);
    assert_int_equal(fv_crypto_keyring_add(kr, 20, r2), FV_OK);
    assert_int_equal(fv_crypto_keyring_write_version(kr), 20);

    fv_crypto_keyring_unref(kr);
    fv_crypto_secret_free(r1);
    fv_crypto_secret_free(r2);
}

static void test_fv_crypto_keyring_new_long_owner(void **state)
{
    (void)state;
    char owner[66];
    struct fv_keyring *kr = NULL;
    memset(owner, 'a', sizeof(owner));
    owner[65] = '\0';
    assert_int_equal(fv_crypto_keyring_new(&kr, owner), FV_E_INVALID);
    assert_null(kr);
    owner[64] = '\0';
    assert_int_equal(fv_crypto_keyring_new(&kr, owner), FV_OK);
    fv_crypto_keyring_unref(kr);
}

/* Purpose keys are kdf_derive(root, label, owner) and all differ. */
static void test_fv_crypto_keyring_secret_derivation(void **state)
{
    (void)state;
    struct fv_keyring *a = NULL, *b = NULL;
    struct fv_secret *root = root_key(9), *r2 = root_key(10);
    uint8_t keys[2 * FV_KEY_PURPOSES + 1][32];
    size_t nk = 0;

    assert_int_equal(fv_crypto_keyring_new(&a, "tenant-a"), FV_OK);
    assert_int_equal(fv_crypto_keyring_new(&b, "tenant-b"), FV_OK);
    assert_int_equal(fv_crypto_keyring_add(a, 1, root), FV_OK);
    assert_int_equal(fv_crypto_keyring_add(a, 2, r2), FV_OK);
    assert_int_equal(fv_crypto_keyring_add(b, 1, root), FV_OK);
    for (int p = 0; p < FV_KEY_PURPOSES; p++) {
        struct fv_secret *s = NULL, *t = NULL;
        uint8_t want[32];
        assert_int_equal(fv_crypto_keyring_secret(&s, a, 1, (enum fv_key_purpose)p), FV_OK);
        assert_int_equal(fv_crypto_secret_len(s), 32);
        assert_int_equal(
            fv_crypto_kdf_derive_raw(want, labels[p], (const uint8_t *)"tenant-a", 8, root), FV_OK);
        assert_memory_equal(fv_crypto_secret_bytes(s), want, 32);
        memcpy(keys[nk++], want, 32);
        /* same root, other owner */
        assert_int_equal(fv_crypto_keyring_secret(&t, b, 1, (enum fv_key_purpose)p), FV_OK);
        memcpy(keys[nk++], fv_crypto_secret_bytes(t), 32);
        fv_crypto_secret_free(t);
        fv_crypto_secret_free(s);
    }
    /* same owner, other version */
    struct fv_secret *s2 = NULL;
    assert_int_equal(fv_crypto_keyring_secret(&s2, a, 2, FV_KEY_STORAGE), FV_OK);
    memcpy(keys[nk++], fv_crypto_secret_bytes(s2), 32);
    fv_crypto_secret_free(s2);
    for (size_t i = 0; i < nk; i++)
        for (size_t j = i + 1; j < nk; j++)
            assert_false(fv_ct_equal(keys[i], keys[j], 32));

    /* the aead and mac paths use the same purpose keys */
    struct fv_aead *x = NULL;
    uint8_t t1[16], t2[16], mac[32], want_mac[32];
    struct fv_secret *field = NULL, *blind = NULL;
    assert_int_equal(fv_crypto_keyring_aead(&x, a, 1, FV_KEY_FIELD, NULL, 0), FV_OK);
    fingerprint(t1, x);
    fv_crypto_aead_free(x);
    assert_int_equal(fv_crypto_keyring_secret(&field, a, 1, FV_KEY_FIELD), FV_OK);
    fingerprint_raw(t2, fv_crypto_secret_bytes(field));
    assert_memory_equal(t1, t2, 16);
    assert_int_equal(fv_crypto_keyring_mac(mac, (const uint8_t *)"abc", 3, a, 1, FV_KEY_BLIND),
                     FV_OK);
    assert_int_equal(fv_crypto_keyring_secret(&blind, a, 1, FV_KEY_BLIND), FV_OK);
    assert_int_equal(fv_crypto_hmac_sha256(want_mac, (const uint8_t *)"abc", 3, blind), FV_OK);
    assert_memory_equal(mac, want_mac, 32);
    assert_int_equal(fv_crypto_keyring_mac(mac, (const uint8_t *)"abc", 3, a, 1, FV_KEY_AUDIT),
                     FV_OK);
    assert_false(fv_ct_equal(mac, want_mac, 32));
    fv_crypto_secret_free(field);
    fv_crypto_secret_free(blind);

    fv_crypto_keyring_unref(a);
    fv_crypto_keyring_unref(b);
    fv_crypto_secret_free(root);
    fv_crypto_secret_free(r2);
}

/* Subkeys: kdf_derive(purpose key, "sub", ctx); distinct per ctx. */
static void test_fv_crypto_keyring_aead_subkeys(void **state)
{
    (void)state;
    struct fv_keyring *kr = NULL;
    struct fv_secret *root = root_key(5), *storage = NULL;
    struct fv_aead *a = NULL;
    uint8_t t[4][16], sub[32], want[16];
    static uint8_t longctx[600];
    assert_int_equal(fv_crypto_keyring_new(&kr, "node"), FV_OK);
    assert_int_equal(fv_crypto_keyring_add(kr, 1, root), FV_OK);

    assert_int_equal(fv_crypto_keyring_aead(&a, kr, 1, FV_KEY_STORAGE, NULL, 0), FV_OK);
    fingerprint(t[0], a);
    fv_crypto_aead_free(a);
    assert_int_equal(
        fv_crypto_keyring_aead(&a, kr, 1, FV_KEY_STORAGE, (const uint8_t *)"main.db", 7), FV_OK);
    fingerprint(t[1], a);
    fv_crypto_aead_free(a);
    assert_int_equal(
        fv_crypto_keyring_aead(&a, kr, 1, FV_KEY_STORAGE, (const uint8_t *)"main.db-wal", 11),
        FV_OK);
    fingerprint(t[2], a);
    fv_crypto_aead_free(a);
    /* an empty but non-NULL ctx is a subkey too, not the purpose key */
    assert_int_equal(fv_crypto_keyring_aead(&a, kr, 1, FV_KEY_STORAGE, longctx, 0), FV_OK);
    fingerprint(t[3], a);
    fv_crypto_aead_free(a);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            assert_false(fv_ct_equal(t[i], t[j], 16));

    /* matches the documented derivation */
    assert_int_equal(fv_crypto_keyring_secret(&storage, kr, 1, FV_KEY_STORAGE), FV_OK);
    assert_int_equal(fv_crypto_kdf_derive_raw(sub, "sub", (const uint8_t *)"main.db", 7, storage),
                     FV_OK);
    fingerprint_raw(want, sub);
    assert_memory_equal(want, t[1], 16);
    /* a long ctx (heap path) agrees too */
    assert_int_equal(fv_crypto_keyring_aead(&a, kr, 1, FV_KEY_STORAGE, longctx, sizeof(longctx)),
                     FV_OK);
    fingerprint(t[0], a);
    fv_crypto_aead_free(a);
    assert_int_equal(fv_crypto_kdf_derive_raw(sub, "sub", longctx, sizeof(longctx), storage),
                     FV_OK);
    fingerprint_raw(want, sub);
    assert_memory_equal(want, t[0], 16);

    fv_crypto_secret_free(storage);
    fv_crypto_keyring_unref(kr);
    fv_crypto_secret_free(root);
}

static void test_fv_crypto_keyring_revoke(void **state)
{
    (void)state;
    struct fv_keyring *kr = NULL;
    struct fv_secret *root = root_key(3), *s = NULL;
    struct fv_aead *a = NULL;
    uint8_t mac[32];
    uint32_t v[8];
    uint64_t g0, g1, g2, g3, g4, g5;

    assert_int_equal(fv_crypto_keyring_new(&kr, "t"), FV_OK);
    g0 = fv_crypto_keyring_generation(kr);
    assert_int_equal(fv_crypto_keyring_add(kr, 1, root), FV_OK);
    g1 = fv_crypto_keyring_generation(kr);
    assert_int_equal(fv_crypto_keyring_add(kr, 2, root), FV_OK);
    assert_int_equal(fv_crypto_keyring_set_write(kr, 2), FV_OK);
    g2 = fv_crypto_keyring_generation(kr);
    fv_crypto_keyring_remove(kr, 1);
    g3 = fv_crypto_keyring_generation(kr);
    assert_true(g0 != g1 && g1 != g2 && g2 != g3);
    /* a removed version is unavailable */
    assert_int_equal(fv_crypto_keyring_aead(&a, kr, 1, FV_KEY_FIELD, NULL, 0),
                     FV_E_KEY_UNAVAILABLE);
    assert_int_equal(fv_crypto_keyring_aead(&a, kr, 2, FV_KEY_FIELD, NULL, 0), FV_OK);
    fv_crypto_aead_free(a);
    a = NULL;

    fv_crypto_keyring_revoke(kr);
    g4 = fv_crypto_keyring_generation(kr);
    assert_true(g4 != g3);
    assert_int_equal(fv_crypto_keyring_write_version(kr), 0);
    assert_int_equal(fv_crypto_keyring_versions(kr, v, 8), 0);
    assert_int_equal(fv_crypto_keyring_aead(&a, kr, 2, FV_KEY_FIELD, NULL, 0),
                     FV_E_KEY_UNAVAILABLE);
    assert_int_equal(fv_crypto_keyring_aead(&a, kr, 2, FV_KEY_STORAGE, (const uint8_t *)"f", 1),
                     FV_E_KEY_UNAVAILABLE);
    assert_null(a);
    assert_int_equal(fv_crypto_keyring_mac(mac, (const uint8_t *)"m", 1, kr, 2, FV_KEY_BLIND),
                     FV_E_KEY_UNAVAILABLE);
    assert_int_equal(fv_crypto_keyring_secret(&s, kr, 2, FV_KEY_FILE), FV_E_KEY_UNAVAILABLE);
    assert_null(s);
    assert_int_equal(fv_crypto_keyring_set_write(kr, 2), FV_E_NOT_FOUND);

    /* adding again clears the revocation */
    assert_int_equal(fv_crypto_keyring_add(kr, 2, root), FV_OK);
    g5 = fv_crypto_keyring_generation(kr);
    assert_true(g5 != g4);
    assert_int_equal(fv_crypto_keyring_write_version(kr), 2);
    assert_int_equal(fv_crypto_keyring_mac(mac, (const uint8_t *)"m", 1, kr, 2, FV_KEY_BLIND),
                     FV_OK);
    fv_crypto_keyring_unref(kr);
    fv_crypto_secret_free(root);
}

static void test_fv_crypto_keyring_ref_unref(void **state)
{
    (void)state;
    struct fv_keyring *kr = NULL;
    struct fv_secret *root = root_key(4);
    uint8_t mac[32];
    assert_int_equal(fv_crypto_keyring_new(&kr, "t"), FV_OK);
    assert_int_equal(fv_crypto_keyring_add(kr, 1, root), FV_OK);
    assert_ptr_equal(fv_crypto_keyring_ref(kr), kr);
    assert_ptr_equal(fv_crypto_keyring_ref(kr), kr);
    fv_crypto_keyring_unref(kr);
    fv_crypto_keyring_unref(kr);
    /* still alive on the last reference (ASan would flag a use after free) */
    assert_int_equal(fv_crypto_keyring_mac(mac, NULL, 0, kr, 1, FV_KEY_AUDIT), FV_OK);
    fv_crypto_keyring_unref(kr);
    fv_crypto_keyring_unref(NULL);
    fv_crypto_secret_free(root);
}

/* Every allocation in new and add fails cleanly with FV_E_NOMEM. */
static void test_fv_crypto_keyring_add_nomem(void **state)
{
    (void)state;
    struct fv_secret *root = root_key(6);
    long n;
    for (n = 1; n < 100; n++) {
        struct fv_keyring *kr = NULL;
        struct fv_aead *a = NULL;
        int rc;
        fv_mem_fail_at(n, false);
        rc = fv_crypto_keyring_new(&kr, "tenant");
        if (rc == FV_OK)
            rc = fv_crypto_keyring_add(kr, 1, root);
        if (rc == FV_OK)
            rc = fv_crypto_keyring_add(kr, 2, root);
        if (rc == FV_OK)
            rc = fv_crypto_keyring_aead(&a, kr, 1, FV_KEY_STORAGE, (const uint8_t *)"c", 1);
        fv_mem_fail_at(0, false);
        if (rc == FV_OK) {
            /* the ring is whole after a run that never failed */
            uint32_t v[8];
            assert_int_equal(fv_crypto_keyring_versions(kr, v, 8), 2);
        }
        fv_crypto_aead_free(a);
        fv_crypto_keyring_unref(kr);
        if (rc == FV_OK)
            break;
        assert_int_equal(rc, FV_E_NOMEM);
    }
    assert_true(n > 1 && n < 100);
    fv_crypto_secret_free(root);
}

/* Threaded smoke test: readers race adds, removes and revokes (run under TSan). */
struct race {
    struct fv_keyring *kr;
    atomic_bool stop;
    atomic_long ok, unavailable;
};

static void *reader(void *arg)
{
    struct race *r = arg;
    uint8_t mac[32], c[16 + FV_CRYPTO_AEAD_OVERHEAD], m[16] = {0};
    while (!atomic_load(&r->stop)) {
        struct fv_aead *a = NULL;
        uint32_t v = fv_crypto_keyring_write_version(r->kr);
        int rc = fv_crypto_keyring_aead(&a, r->kr, v, FV_KEY_FIELD, NULL, 0);
        if (rc == FV_OK) {
            assert_int_equal(fv_crypto_aead_seal(c, m, sizeof(m), NULL, 0, a), FV_OK);
            fv_crypto_aead_free(a);
        } else {
            assert_int_equal(rc, FV_E_KEY_UNAVAILABLE);
        }
        rc = fv_crypto_keyring_mac(mac, m, sizeof(m), r->kr, 1, FV_KEY_BLIND);
        assert_true(rc == FV_OK || rc == FV_E_KEY_UNAVAILABLE);
        atomic_fetch_add(rc == FV_OK ? &r->ok : &r->unavailable, 1);
        (void)fv_crypto_keyring_generation(r->kr);
    }
    return NULL;
}

static void test_fv_crypto_keyring_threads(void **state)
{
    (void)state;
    struct race r = {0};
    struct fv_secret *root = root_key(8);
    pthread_t t[2];
    assert_int_equal(fv_crypto_keyring_new(&r.kr, "tenant"), FV_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reader, &r), 0);
    for (int round = 0; round < 300; round++) {
        assert_int_equal(fv_crypto_keyring_add(r.kr, 1, root), FV_OK);
        assert_int_equal(fv_crypto_keyring_add(r.kr, 2, root), FV_OK);
        assert_int_equal(fv_crypto_keyring_set_write(r.kr, 2), FV_OK);
        fv_crypto_keyring_remove(r.kr, 2);
        fv_crypto_keyring_revoke(r.kr);
    }
    atomic_store(&r.stop, true);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_true(atomic_load(&r.ok) + atomic_load(&r.unavailable) > 0);
    fv_crypto_keyring_unref(r.kr);
    fv_crypto_secret_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_crypto_keyring_add_versions),
        cmocka_unit_test(test_fv_crypto_keyring_new_long_owner),
        cmocka_unit_test(test_fv_crypto_keyring_secret_derivation),
        cmocka_unit_test(test_fv_crypto_keyring_aead_subkeys),
        cmocka_unit_test(test_fv_crypto_keyring_revoke),
        cmocka_unit_test(test_fv_crypto_keyring_ref_unref),
        cmocka_unit_test(test_fv_crypto_keyring_add_nomem),
        cmocka_unit_test(test_fv_crypto_keyring_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
