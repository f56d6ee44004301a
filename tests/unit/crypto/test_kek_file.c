/*
 * Unit tests for crypto/kek_file.c, crypto/kek_secret.c and the dispatch in
 * crypto/kek.c: every refusal of a KEK file, create, wrap/unwrap round trips
 * and their failures, the key ID, check(), and allocation failures.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
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

#include "crypto/crypto.h"

/* A fresh temporary directory per test: <base>/data (the data dir) and <base>/keys. */
struct fixture {
    char base[64];
    char data[128];
    char keys[128];
};

static void path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    (void)snprintf(f->base, sizeof(f->base), "/tmp/fv-kek-file-XXXXXX");
    assert_non_null(mkdtemp(f->base));
    path_join(f->data, sizeof(f->data), f->base, "data");
    path_join(f->keys, sizeof(f->keys), f->base, "keys");
    assert_int_equal(mkdir(f->data, 0700), 0);
    assert_int_equal(mkdir(f->keys, 0700), 0);
    *state = f;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)chmod(path, 0700); /* a mode-0000 file or directory must still go */
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(nftw(f->base, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    free(f);
    return 0;
}

static void write_file(const char *path, const uint8_t *p, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    if (n > 0)
        assert_int_equal(write(fd, p, n), (ssize_t)n);
    assert_int_equal(close(fd), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void write_key(const char *path, uint8_t fill)
{
    uint8_t k[32];
    for (size_t i = 0; i < sizeof(k); i++)
        k[i] = (uint8_t)(fill + i);
    write_file(path, k, sizeof(k), 0400);
}

/* Open must fail with code and a message containing want. */
static void expect_open_fails(const char *path, const char *data_dir, int code, const char *want)
{
    struct fv_kek *kek = NULL;
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_open(&kek, path, data_dir, &e), code);
    assert_null(kek);
    assert_int_equal(e.code, code);
    if (!strstr(e.msg, want))
        fail_msg("message '%s' lacks '%s'", e.msg, want);
}

static struct fv_kek *open_ok(const char *path, const char *data_dir)
{
    struct fv_kek *kek = NULL;
    struct fv_error e;
    fv_error_init(&e);
    int rc = fv_crypto_kek_file_open(&kek, path, data_dir, &e);
    if (rc != FV_OK)
        fail_msg("open '%s': %s: %s", path, fv_strerror(rc), e.msg);
    assert_non_null(kek);
    return kek;
}

static struct fv_secret *random_root(void)
{
    struct fv_secret *s = NULL;
    assert_int_equal(fv_crypto_secret_random(&s, FV_CRYPTO_KEY_BYTES), FV_OK);
    return s;
}

static const uint8_t ad1[] = "tenant-1/v1";
static const uint8_t ad2[] = "tenant-2/v1";

/* ------------------------------------------------------------- create */

static void test_fv_crypto_kek_file_create_mode_and_size(void **state)
{
    struct fixture *f = *state;
    char p[256];
    struct stat st;
    struct fv_error e;
    fv_error_init(&e);
    path_join(p, sizeof(p), f->keys, "kek");
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_OK);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0400);
    assert_int_equal(st.st_size, 32);
    struct fv_kek *kek = open_ok(p, f->data);
    assert_int_equal(fv_crypto_kek_check(kek), FV_OK);
    fv_crypto_kek_free(kek);
}

static void test_fv_crypto_kek_file_create_conflict(void **state)
{
    struct fixture *f = *state;
    char p[256];
    uint8_t before[32], after[32];
    struct fv_error e;
    path_join(p, sizeof(p), f->keys, "kek");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_OK);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, before, 32), 32);
    close(fd);

    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_E_CONFLICT);
    assert_non_null(strstr(e.msg, "already exists"));
    /* The existing key is untouched, and so is a symlink's target. */
    fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, after, 32), 32);
    close(fd);
    assert_true(fv_ct_equal(before, after, 32));

    char link[256], target[256];
    path_join(link, sizeof(link), f->keys, "dangling");
    path_join(target, sizeof(target), f->keys, "nowhere");
    assert_int_equal(symlink(target, link), 0);
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(link, f->data, &e), FV_E_CONFLICT);
    assert_int_equal(access(target, F_OK), -1);
}

static void test_fv_crypto_kek_file_create_inside_data_dir(void **state)
{
    struct fixture *f = *state;
    char p[256], viadir[256], vialink[256];
    struct fv_error e;
    path_join(p, sizeof(p), f->data, "kek");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_E_INVALID);
    assert_non_null(strstr(e.msg, "inside the data directory"));
    assert_int_equal(access(p, F_OK), -1);

    /* Through a symlinked directory outside the data dir that points into it. */
    path_join(viadir, sizeof(viadir), f->keys, "into-data");
    assert_int_equal(symlink(f->data, viadir), 0);
    path_join(vialink, sizeof(vialink), viadir, "kek");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(vialink, f->data, &e), FV_E_INVALID);
    assert_int_equal(access(p, F_OK), -1);
}

static void test_fv_crypto_kek_file_create_missing_dir(void **state)
{
    struct fixture *f = *state;
    char p[256];
    struct fv_error e;
    path_join(p, sizeof(p), f->keys, "no/such/kek");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_E_IO);
    assert_non_null(strstr(e.msg, "cannot create kek file"));
}

/* --------------------------------------------------------------- open */

static void test_fv_crypto_kek_file_open_missing(void **state)
{
    struct fixture *f = *state;
    char p[256];
    path_join(p, sizeof(p), f->keys, "absent");
    expect_open_fails(p, f->data, FV_E_KEY_UNAVAILABLE, "not found");
    expect_open_fails(p, f->data, FV_E_KEY_UNAVAILABLE, "'");
}

static void test_fv_crypto_kek_file_open_unreadable(void **state)
{
    struct fixture *f = *state;
    char p[256];
    if (geteuid() == 0)
        skip(); /* root reads a mode 0000 file */
    path_join(p, sizeof(p), f->keys, "kek");
    write_key(p, 1);
    assert_int_equal(chmod(p, 0), 0);
    expect_open_fails(p, f->data, FV_E_KEY_UNAVAILABLE, "cannot read kek file");
}

static void test_fv_crypto_kek_file_open_inside_data_dir(void **state)
{
    struct fixture *f = *state;
    char p[256], sub[256];
    path_join(p, sizeof(p), f->data, "kek");
    write_key(p, 1);
    expect_open_fails(p, f->data, FV_E_INVALID, "is inside the data directory");
    expect_open_fails(p, f->data, FV_E_INVALID, "keep the master key apart from the data");

    /* Deeper inside, and the data dir given with a trailing slash. */
    path_join(sub, sizeof(sub), f->data, "tenants");
    assert_int_equal(mkdir(sub, 0700), 0);
    path_join(p, sizeof(p), sub, "kek");
    write_key(p, 1);
    char slashed[256];
    (void)snprintf(slashed, sizeof(slashed), "%s/", f->data);
    expect_open_fails(p, slashed, FV_E_INVALID, "is inside the data directory");
}

/* A hard link from inside the data directory is a second name: refused. */
static void test_fv_crypto_kek_file_open_hard_link(void **state)
{
    struct fixture *f = *state;
    char p[256], inside[256];
    path_join(p, sizeof(p), f->keys, "kek");
    write_key(p, 1);
    struct fv_kek *kek = open_ok(p, f->data);
    fv_crypto_kek_free(kek);
    path_join(inside, sizeof(inside), f->data, "kek-link");
    assert_int_equal(link(p, inside), 0);
    expect_open_fails(p, f->data, FV_E_INVALID, "hard links");
    assert_int_equal(unlink(inside), 0);
    kek = open_ok(p, f->data);
    fv_crypto_kek_free(kek);
}

static void test_fv_crypto_kek_file_open_inside_data_dir_via_symlink(void **state)
{
    struct fixture *f = *state;
    char real[256], link[256], datalink[256], outside[256];

    /* 1. the key path is a symlink outside that points into the data dir */
    path_join(real, sizeof(real), f->data, "kek");
    write_key(real, 1);
    path_join(link, sizeof(link), f->keys, "kek-link");
    assert_int_equal(symlink(real, link), 0);
    expect_open_fails(link, f->data, FV_E_INVALID, "is inside the data directory");

    /* 2. the data dir is named through a symlink and the key sits in its target */
    path_join(datalink, sizeof(datalink), f->base, "data-link");
    assert_int_equal(symlink(f->data, datalink), 0);
    expect_open_fails(real, datalink, FV_E_INVALID, "is inside the data directory");

    /* 3. a symlink inside the data dir to a key outside is fine: the key is not there */
    path_join(outside, sizeof(outside), f->keys, "kek");
    write_key(outside, 2);
    char inlink[256];
    path_join(inlink, sizeof(inlink), f->data, "kek-out");
    assert_int_equal(symlink(outside, inlink), 0);
    struct fv_kek *kek = open_ok(inlink, f->data);
    fv_crypto_kek_free(kek);

    /* 4. a sibling whose name merely starts with the data dir's is outside */
    char sibling[256], sp[256];
    (void)snprintf(sibling, sizeof(sibling), "%s-keys", f->data);
    assert_int_equal(mkdir(sibling, 0700), 0);
    path_join(sp, sizeof(sp), sibling, "kek");
    write_key(sp, 3);
    kek = open_ok(sp, f->data);
    fv_crypto_kek_free(kek);
}

static void test_fv_crypto_kek_file_open_data_dir_absent(void **state)
{
    struct fixture *f = *state;
    char p[256], nodata[256];
    path_join(p, sizeof(p), f->keys, "kek");
    write_key(p, 1);
    path_join(nodata, sizeof(nodata), f->base, "not-yet-created");
    struct fv_kek *kek = open_ok(p, nodata); /* first start: nothing is inside it */
    fv_crypto_kek_free(kek);
}

static void test_fv_crypto_kek_file_open_mode(void **state)
{
    struct fixture *f = *state;
    char p[256];
    path_join(p, sizeof(p), f->keys, "kek");
    write_key(p, 1);
    assert_int_equal(chmod(p, 0440), 0);
    expect_open_fails(p, f->data, FV_E_INVALID, "readable or writable by group or others");
    expect_open_fails(p, f->data, FV_E_INVALID, "(mode 0440); chmod 0400");
    assert_int_equal(chmod(p, 0644), 0);
    expect_open_fails(p, f->data, FV_E_INVALID, "(mode 0644); chmod 0400");
    assert_int_equal(chmod(p, 0402), 0);
    expect_open_fails(p, f->data, FV_E_INVALID, "(mode 0402)");
    assert_int_equal(chmod(p, 0600), 0); /* owner-only read-write is accepted */
    struct fv_kek *kek = open_ok(p, f->data);
    fv_crypto_kek_free(kek);
}

static void test_fv_crypto_kek_file_open_size(void **state)
{
    struct fixture *f = *state;
    char p[256];
    uint8_t buf[33] = {0};
    path_join(p, sizeof(p), f->keys, "kek");
    write_file(p, buf, 31, 0400);
    expect_open_fails(p, f->data, FV_E_INVALID, "holds 31 bytes, expected 32");
    assert_int_equal(unlink(p), 0);
    write_file(p, buf, 33, 0400);
    expect_open_fails(p, f->data, FV_E_INVALID, "holds 33 bytes, expected 32");
    assert_int_equal(unlink(p), 0);
    write_file(p, buf, 0, 0400);
    expect_open_fails(p, f->data, FV_E_INVALID, "holds 0 bytes, expected 32");
}

static void test_fv_crypto_kek_file_open_directory(void **state)
{
    struct fixture *f = *state;
    char p[256];
    path_join(p, sizeof(p), f->keys, "kekdir");
    assert_int_equal(mkdir(p, 0700), 0);
    expect_open_fails(p, f->data, FV_E_INVALID, "is not a regular file");
}

static void test_fv_crypto_kek_file_open_fifo(void **state)
{
    struct fixture *f = *state;
    char p[256];
    path_join(p, sizeof(p), f->keys, "kekfifo");
    assert_int_equal(mkfifo(p, 0600), 0);
    expect_open_fails(p, f->data, FV_E_INVALID, "is not a regular file"); /* and does not hang */
}

/* ------------------------------------------------------- wrap / unwrap */

static void test_fv_crypto_kek_unwrap_file_round_trip(void **state)
{
    struct fixture *f = *state;
    char p[256];
    struct fv_error e;
    path_join(p, sizeof(p), f->keys, "kek");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_OK);
    struct fv_kek *kek = open_ok(p, f->data);
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX], blob2[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0, len2 = 0;

    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek), FV_OK);
    assert_int_equal(len, 1 + 12 + 32 + 16);
    assert_int_equal(blob[0], 0x01);
    /* Random nonces: the same key wraps differently each time. */
    assert_int_equal(fv_crypto_kek_wrap(blob2, &len2, root, ad1, sizeof(ad1), kek), FV_OK);
    assert_int_equal(len2, len);
    assert_false(fv_ct_equal(blob, blob2, len));

    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek), FV_OK);
    assert_int_equal(fv_crypto_secret_len(back), 32);
    assert_true(fv_ct_equal(fv_crypto_secret_bytes(back), fv_crypto_secret_bytes(root), 32));
    fv_crypto_secret_free(back);

    /* A second open of the same file unwraps it too. */
    struct fv_kek *again = open_ok(p, f->data);
    back = NULL;
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob2, len2, ad1, sizeof(ad1), again), FV_OK);
    assert_true(fv_ct_equal(fv_crypto_secret_bytes(back), fv_crypto_secret_bytes(root), 32));
    fv_crypto_secret_free(back);

    /* Empty associated data works as well. */
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, NULL, 0, kek), FV_OK);
    back = NULL;
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, NULL, 0, kek), FV_OK);
    fv_crypto_secret_free(back);

    fv_crypto_kek_free(again);
    fv_crypto_kek_free(kek);
    fv_crypto_secret_free(root);
}

static void test_fv_crypto_kek_unwrap_file_wrong_key(void **state)
{
    struct fixture *f = *state;
    char p1[256], p2[256];
    struct fv_error e;
    path_join(p1, sizeof(p1), f->keys, "kek1");
    path_join(p2, sizeof(p2), f->keys, "kek2");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p1, f->data, &e), FV_OK);
    assert_int_equal(fv_crypto_kek_file_create(p2, f->data, &e), FV_OK);
    struct fv_kek *k1 = open_ok(p1, f->data);
    struct fv_kek *k2 = open_ok(p2, f->data);
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), k1), FV_OK);
    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), k2), FV_E_CORRUPT);
    assert_null(back);
    fv_crypto_kek_free(k1);
    fv_crypto_kek_free(k2);
    fv_crypto_secret_free(root);
}

static void test_fv_crypto_kek_unwrap_file_wrong_ad(void **state)
{
    struct fixture *f = *state;
    char p[256];
    struct fv_error e;
    path_join(p, sizeof(p), f->keys, "kek");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_OK);
    struct fv_kek *kek = open_ok(p, f->data);
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek), FV_OK);
    /* Moved to another tenant, to no ad, or with the ad cut short. */
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad2, sizeof(ad2), kek), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, NULL, 0, kek), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1) - 1, kek),
                     FV_E_CORRUPT);
    assert_null(back);
    fv_crypto_kek_free(kek);
    fv_crypto_secret_free(root);
}

static void test_fv_crypto_kek_unwrap_file_tampered(void **state)
{
    struct fixture *f = *state;
    char p[256];
    struct fv_error e;
    path_join(p, sizeof(p), f->keys, "kek");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_OK);
    struct fv_kek *kek = open_ok(p, f->data);
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek), FV_OK);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            blob[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek),
                             FV_E_CORRUPT);
            blob[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Truncated, extended, empty. */
    for (size_t l = 0; l < len; l++)
        assert_int_equal(fv_crypto_kek_unwrap(&back, blob, l, ad1, sizeof(ad1), kek), FV_E_CORRUPT);
    blob[len] = 0;
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len + 1, ad1, sizeof(ad1), kek),
                     FV_E_CORRUPT);
    assert_null(back);
    /* Untouched, it still opens. */
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek), FV_OK);
    fv_crypto_secret_free(back);
    fv_crypto_kek_free(kek);
    fv_crypto_secret_free(root);
}

/* --------------------------------------------------------------- key ID */

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        (void)snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void test_fv_crypto_kek_id_file(void **state)
{
    struct fixture *f = *state;
    char p1[256], p2[256];
    uint8_t k1[32];
    struct fv_error e;
    path_join(p1, sizeof(p1), f->keys, "kek1");
    path_join(p2, sizeof(p2), f->keys, "kek2");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p1, f->data, &e), FV_OK);
    assert_int_equal(fv_crypto_kek_file_create(p2, f->data, &e), FV_OK);
    int fd = open(p1, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, k1, 32), 32);
    close(fd);

    struct fv_kek *a = open_ok(p1, f->data);
    struct fv_kek *b = open_ok(p1, f->data);
    struct fv_kek *c = open_ok(p2, f->data);
    const char *id = fv_crypto_kek_id(a);
    assert_int_equal(strlen(id), 5 + 16);
    assert_int_equal(strncmp(id, "file:", 5), 0);
    assert_string_equal(id, fv_crypto_kek_id(b));     /* stable */
    assert_string_not_equal(id, fv_crypto_kek_id(c)); /* differs between keys */

    /* It is the documented HMAC, and no run of the key's bytes. */
    struct fv_secret *ks = NULL;
    uint8_t mac[32];
    char want[64], keyhex[65];
    assert_int_equal(fv_crypto_secret_copy(&ks, k1, 32), FV_OK);
    assert_int_equal(fv_crypto_hmac_sha256(mac, (const uint8_t *)"formvault key id", 16, ks),
                     FV_OK);
    (void)snprintf(want, sizeof(want), "file:");
    hex(want + 5, mac, 8);
    assert_string_equal(id, want);
    hex(keyhex, k1, 32);
    assert_null(strstr(keyhex, id + 5));
    for (size_t i = 0; i + 4 <= 32; i++) { /* no 4 key bytes in a row, hex or raw */
        char frag[9];
        hex(frag, k1 + i, 4);
        assert_null(strstr(id, frag));
    }
    fv_crypto_secret_free(ks);
    fv_crypto_kek_free(a);
    fv_crypto_kek_free(b);
    fv_crypto_kek_free(c);
}

/* ---------------------------------------------------------------- check */

static void test_fv_crypto_kek_check_file_removed_or_replaced(void **state)
{
    struct fixture *f = *state;
    char p[256], moved[256];
    struct fv_error e;
    path_join(p, sizeof(p), f->keys, "kek");
    path_join(moved, sizeof(moved), f->keys, "kek.moved");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_OK);
    struct fv_kek *kek = open_ok(p, f->data);
    assert_int_equal(fv_crypto_kek_check(kek), FV_OK);

    assert_int_equal(rename(p, moved), 0);
    assert_int_equal(fv_crypto_kek_check(kek), FV_E_KEY_UNAVAILABLE);
    write_key(p, 9); /* another key under the same name */
    assert_int_equal(fv_crypto_kek_check(kek), FV_E_KEY_UNAVAILABLE);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(rename(moved, p), 0);
    assert_int_equal(fv_crypto_kek_check(kek), FV_OK);
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(fv_crypto_kek_check(kek), FV_E_KEY_UNAVAILABLE);

    /* Wrapping keeps working from memory meanwhile. */
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek), FV_OK);
    fv_crypto_secret_free(root);
    fv_crypto_kek_free(kek);
}

/* ------------------------------------------------------------- imported */

static void test_fv_crypto_kek_secret_new_same_format_as_file(void **state)
{
    struct fixture *f = *state;
    char p[256];
    uint8_t raw[32];
    struct fv_error e;
    path_join(p, sizeof(p), f->keys, "kek");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_OK);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, raw, 32), 32);
    close(fd);

    struct fv_secret *kekkey = NULL;
    assert_int_equal(fv_crypto_secret_copy(&kekkey, raw, 32), FV_OK);
    fv_wipe(raw, sizeof(raw));
    struct fv_kek *imp = NULL;
    assert_int_equal(fv_crypto_kek_secret_new(&imp, "byok:tenant-1/1", kekkey), FV_OK);
    fv_crypto_secret_free(kekkey); /* the provider keeps its own copy */
    assert_string_equal(fv_crypto_kek_id(imp), "byok:tenant-1/1");
    assert_string_equal(imp->ops->name, "imported");
    assert_int_equal(fv_crypto_kek_check(imp), FV_OK);

    struct fv_kek *file = open_ok(p, f->data);
    assert_string_equal(file->ops->name, "file");
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), file), FV_OK);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), imp), FV_OK);
    assert_true(fv_ct_equal(fv_crypto_secret_bytes(back), fv_crypto_secret_bytes(root), 32));
    fv_crypto_secret_free(back);
    back = NULL;
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad2, sizeof(ad2), imp), FV_E_CORRUPT);

    fv_crypto_kek_free(file);
    fv_crypto_kek_free(imp);
    fv_crypto_secret_free(root);
}

static void test_fv_crypto_kek_secret_new_bad_id(void **state)
{
    (void)state;
    struct fv_secret *key = random_root();
    struct fv_kek *kek = NULL;
    char longid[FV_CRYPTO_KEK_ID_MAX + 1];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(fv_crypto_kek_secret_new(&kek, "", key), FV_E_INVALID);
    assert_int_equal(fv_crypto_kek_secret_new(&kek, longid, key), FV_E_INVALID);
    assert_null(kek);
    fv_crypto_secret_free(key);
    fv_crypto_kek_free(NULL); /* accepted */
}

/* ----------------------------------------------------- allocation failure */

/* Open, wrap and unwrap with the n-th allocation failing, for every n (STYLE 34). */
static void test_fv_crypto_kek_file_open_alloc_failure(void **state)
{
    struct fixture *f = *state;
    char p[256];
    struct fv_error e;
    path_join(p, sizeof(p), f->keys, "kek");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(p, f->data, &e), FV_OK);
    struct fv_secret *root = random_root();

    bool completed = false;
    for (long n = 1; n < 1000 && !completed; n++) {
        struct fv_kek *kek = NULL;
        struct fv_secret *back = NULL;
        uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
        size_t len = 0;
        fv_error_init(&e);
        fv_mem_fail_at(n, false);
        int rc = fv_crypto_kek_file_open(&kek, p, f->data, &e);
        if (rc == FV_OK)
            rc = fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek);
        if (rc == FV_OK)
            rc = fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek);
        long used = fv_mem_count();
        fv_mem_fail_at(0, false);
        if (rc == FV_OK) {
            assert_true(
                fv_ct_equal(fv_crypto_secret_bytes(back), fv_crypto_secret_bytes(root), 32));
            completed = used < n; /* the failing allocation was never reached */
        } else if (rc != FV_E_NOMEM && rc != FV_E_INTERNAL) {
            fail_msg("allocation %ld failed: %s (%s)", n, fv_strerror(rc), e.msg);
        }
        fv_crypto_secret_free(back);
        fv_crypto_kek_free(kek);
    }
    assert_true(completed);
    fv_crypto_secret_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_create_mode_and_size, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_create_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_create_inside_data_dir, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_create_missing_dir, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_inside_data_dir, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_inside_data_dir_via_symlink,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_hard_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_data_dir_absent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_fifo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_unwrap_file_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_unwrap_file_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_unwrap_file_wrong_ad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_unwrap_file_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_id_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_check_file_removed_or_replaced, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_secret_new_same_format_as_file, setup,
                                        teardown),
        cmocka_unit_test(test_fv_crypto_kek_secret_new_bad_id),
        cmocka_unit_test_setup_teardown(test_fv_crypto_kek_file_open_alloc_failure, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
