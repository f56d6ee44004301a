/*
 * Unit tests for crypto/kek_pkcs11.c against SoftHSM2. The group setup
 * writes a softhsm2.conf in a temporary directory, points SOFTHSM2_CONF at
 * it before the module is first loaded, and creates the token with
 * softhsm2-util. Without softhsm2-util (scripts/install-deps.sh installs it)
 * the setup fails: these tests never skip.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/crypto.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define TOKEN "fvtest"
#define PIN "5678"
#define SO_PIN "1234"

static char base[64];
static char conf[128];
static char tokens[128];
static char data_dir[128];

static const uint8_t ad1[] = "tenant-1/v1";
static const uint8_t ad2[] = "tenant-2/v1";

/* Run softhsm2-util with args (NULL-terminated) and return its exit status. */
static int softhsm_util(const char *const *args)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = "softhsm2-util";
    for (; args[n - 1] && n < FV_ARRAY_LEN(argv) - 1; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            (void)dup2(devnull, STDOUT_FILENO);
            (void)close(devnull);
        }
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run softhsm2-util: %s (install it: scripts/install-deps.sh)\n",
                strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* 0 on success; the group setup cannot use cmocka's assertions. */
static int init_token(void)
{
    const char *args[] = {"--init-token", "--free", "--label", TOKEN, "--so-pin",
                          SO_PIN,         "--pin",  PIN,       NULL};
    int rc = softhsm_util(args);
    if (rc != 0)
        fprintf(stderr, "softhsm2-util --init-token exited with %d\n", rc);
    return rc;
}

static void delete_token(void)
{
    const char *args[] = {"--delete-token", "--token", TOKEN, NULL};
    int rc = softhsm_util(args);
    if (rc != 0)
        fail_msg("softhsm2-util --delete-token exited with %d", rc);
}

static int group_setup(void **state)
{
    (void)state;
    (void)snprintf(base, sizeof(base), "/tmp/fv-kek-p11-XXXXXX");
    if (!mkdtemp(base))
        return -1;
    (void)snprintf(conf, sizeof(conf), "%s/softhsm2.conf", base);
    (void)snprintf(tokens, sizeof(tokens), "%s/tokens", base);
    (void)snprintf(data_dir, sizeof(data_dir), "%s/data", base);
    if (mkdir(tokens, 0700) != 0 || mkdir(data_dir, 0700) != 0)
        return -1;
    FILE *fp = fopen(conf, "w");
    if (!fp)
        return -1;
    fprintf(fp,
            "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
            "slots.removable = false\n",
            tokens);
    if (fclose(fp) != 0)
        return -1;
    /* Before the module's first C_Initialize in this process, which reads it. */
    if (setenv("SOFTHSM2_CONF", conf, 1) != 0)
        return -1;
    return init_token() == 0 ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void generate_ok(const char *label)
{
    struct fv_error e;
    fv_error_init(&e);
    int rc = fv_crypto_kek_pkcs11_generate(MODULE, TOKEN, label, PIN, &e);
    if (rc != FV_OK)
        fail_msg("generate '%s': %s: %s", label, fv_strerror(rc), e.msg);
}

static struct fv_kek *open_ok(const char *label)
{
    struct fv_kek *kek = NULL;
    struct fv_error e;
    fv_error_init(&e);
    int rc = fv_crypto_kek_pkcs11_open(&kek, MODULE, TOKEN, label, PIN, &e);
    if (rc != FV_OK)
        fail_msg("open '%s': %s: %s", label, fv_strerror(rc), e.msg);
    return kek;
}

static void expect_open_fails(const char *module, const char *token, const char *label,
                              const char *pin, int code, const char *want)
{
    struct fv_kek *kek = NULL;
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_pkcs11_open(&kek, module, token, label, pin, &e), code);
    assert_null(kek);
    if (!strstr(e.msg, want))
        fail_msg("message '%s' lacks '%s'", e.msg, want);
    assert_null(strstr(e.msg, pin[0] ? pin : "\x01")); /* never the PIN */
}

static struct fv_secret *random_root(void)
{
    struct fv_secret *s = NULL;
    assert_int_equal(fv_crypto_secret_random(&s, FV_CRYPTO_KEY_BYTES), FV_OK);
    return s;
}

static void assert_unwraps_to(struct fv_kek *kek, const uint8_t *blob, size_t len,
                              const uint8_t *ad, size_t adlen, const struct fv_secret *root)
{
    struct fv_secret *back = NULL;
    int rc = fv_crypto_kek_unwrap(&back, blob, len, ad, adlen, kek);
    if (rc != FV_OK)
        fail_msg("unwrap: %s", fv_strerror(rc));
    assert_int_equal(fv_crypto_secret_len(back), 32);
    assert_true(fv_ct_equal(fv_crypto_secret_bytes(back), fv_crypto_secret_bytes(root), 32));
    fv_crypto_secret_free(back);
}

/* ------------------------------------------------------------------ tests */

static void test_fv_crypto_kek_pkcs11_generate_open_round_trip(void **state)
{
    (void)state;
    generate_ok("kek-rt");
    struct fv_kek *kek = open_ok("kek-rt");
    assert_string_equal(fv_crypto_kek_id(kek), "pkcs11:" TOKEN "/kek-rt");
    assert_string_equal(kek->ops->name, "pkcs11");
    assert_int_equal(fv_crypto_kek_check(kek), FV_OK);

    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX], blob2[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0, len2 = 0;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek), FV_OK);
    assert_int_equal(len, 1 + 12 + 32 + 16);
    assert_int_equal(blob[0], 0x02);
    assert_int_equal(fv_crypto_kek_wrap(blob2, &len2, root, ad1, sizeof(ad1), kek), FV_OK);
    assert_false(fv_ct_equal(blob, blob2, len)); /* fresh IV each time */
    assert_unwraps_to(kek, blob, len, ad1, sizeof(ad1), root);
    assert_unwraps_to(kek, blob2, len2, ad1, sizeof(ad1), root);

    /* Another handle on the same key (a restart) unwraps it; the first keeps working. */
    struct fv_kek *again = open_ok("kek-rt");
    assert_unwraps_to(again, blob, len, ad1, sizeof(ad1), root);
    fv_crypto_kek_free(again);
    assert_unwraps_to(kek, blob2, len2, ad1, sizeof(ad1), root);

    /* Empty associated data. */
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, NULL, 0, kek), FV_OK);
    assert_unwraps_to(kek, blob, len, NULL, 0, root);

    fv_crypto_kek_free(kek);
    fv_crypto_secret_free(root);
}

static void test_fv_crypto_kek_pkcs11_generate_twice(void **state)
{
    (void)state;
    struct fv_error e;
    generate_ok("kek-twice");
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_pkcs11_generate(MODULE, TOKEN, "kek-twice", PIN, &e),
                     FV_E_CONFLICT);
    assert_non_null(strstr(e.msg, "'kek-twice' already exists on token 'fvtest'"));
    /* Still exactly one key: open accepts it. */
    struct fv_kek *kek = open_ok("kek-twice");
    fv_crypto_kek_free(kek);
}

static void test_fv_crypto_kek_unwrap_pkcs11_wrong_ad(void **state)
{
    (void)state;
    generate_ok("kek-ad");
    struct fv_kek *kek = open_ok("kek-ad");
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek), FV_OK);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad2, sizeof(ad2), kek), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, NULL, 0, kek), FV_E_CORRUPT);
    assert_null(back);
    /* The failures left the session usable. */
    assert_unwraps_to(kek, blob, len, ad1, sizeof(ad1), root);
    assert_int_equal(fv_crypto_kek_check(kek), FV_OK);
    fv_crypto_kek_free(kek);
    fv_crypto_secret_free(root);
}

static void test_fv_crypto_kek_unwrap_pkcs11_tampered(void **state)
{
    (void)state;
    generate_ok("kek-flip");
    struct fv_kek *kek = open_ok("kek-flip");
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek), FV_OK);
    for (size_t i = 0; i < len; i++) {
        blob[i] ^= 0x01;
        int rc = fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek);
        if (rc != FV_E_CORRUPT)
            fail_msg("byte %zu flipped: %s", i, fv_strerror(rc));
        blob[i] ^= 0x01;
    }
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len - 1, ad1, sizeof(ad1), kek),
                     FV_E_CORRUPT);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, 29, ad1, sizeof(ad1), kek), FV_E_CORRUPT);
    assert_null(back);
    assert_unwraps_to(kek, blob, len, ad1, sizeof(ad1), root);
    fv_crypto_kek_free(kek);
    fv_crypto_secret_free(root);
}

static void test_fv_crypto_kek_pkcs11_open_wrong_pin(void **state)
{
    (void)state;
    generate_ok("kek-pin");
    /* No other handle is logged in now (see README: a process logs in once per token). */
    expect_open_fails(MODULE, TOKEN, "kek-pin", "0000", FV_E_KEY_UNAVAILABLE,
                      "login to token 'fvtest' failed (wrong PIN?)");
    expect_open_fails(MODULE, TOKEN, "kek-pin", "", FV_E_KEY_UNAVAILABLE,
                      "login to token 'fvtest' failed");

    /*
     * While another handle holds the process's login, the token answers
     * CKR_USER_ALREADY_LOGGED_IN to any PIN; the wrong one is still refused.
     */
    struct fv_kek *held = open_ok("kek-pin");
    expect_open_fails(MODULE, TOKEN, "kek-pin", "0000", FV_E_KEY_UNAVAILABLE,
                      "login to token 'fvtest' failed (wrong PIN?)");
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_pkcs11_generate(MODULE, TOKEN, "kek-pin-2", "0000", &e),
                     FV_E_KEY_UNAVAILABLE);
    assert_non_null(strstr(e.msg, "wrong PIN?"));
    struct fv_kek *second = open_ok("kek-pin"); /* the right PIN is accepted */
    fv_crypto_kek_free(second);
    generate_ok("kek-pin-2");
    fv_crypto_kek_free(held);
}

static void test_fv_crypto_kek_pkcs11_open_missing_token(void **state)
{
    (void)state;
    expect_open_fails(MODULE, "nosuchtoken", "kek", PIN, FV_E_KEY_UNAVAILABLE,
                      "no token labelled 'nosuchtoken'");
    /* A label that is a prefix of the real one does not match it (blank padding). */
    expect_open_fails(MODULE, "fvtes", "kek", PIN, FV_E_KEY_UNAVAILABLE,
                      "no token labelled 'fvtes'");
    expect_open_fails(MODULE, "a-token-label-longer-than-32-bytes", "kek", PIN, FV_E_INVALID,
                      "must be 1 to 32 bytes");
}

static void test_fv_crypto_kek_pkcs11_open_missing_key(void **state)
{
    (void)state;
    expect_open_fails(MODULE, TOKEN, "nokey", PIN, FV_E_KEY_UNAVAILABLE,
                      "no key labelled 'nokey' on token 'fvtest'");
}

static void test_fv_crypto_kek_pkcs11_open_bad_module(void **state)
{
    (void)state;
    expect_open_fails("/nonexistent/libnothing.so", TOKEN, "kek", PIN, FV_E_KEY_UNAVAILABLE,
                      "pkcs11 module '/nonexistent/libnothing.so' is not loadable");
    /* A shared object that is not a PKCS#11 module. */
    expect_open_fails("libc.so.6", TOKEN, "kek", PIN, FV_E_KEY_UNAVAILABLE,
                      "pkcs11 module 'libc.so.6' is not loadable");
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(
        fv_crypto_kek_pkcs11_generate("/nonexistent/libnothing.so", TOKEN, "k", PIN, &e),
        FV_E_KEY_UNAVAILABLE);
    assert_non_null(strstr(e.msg, "is not loadable"));
}

/* Blobs of one provider never open under another, even by accident of format. */
static void test_fv_crypto_kek_unwrap_pkcs11_file_blob(void **state)
{
    (void)state;
    char path[256];
    struct fv_error e;
    (void)snprintf(path, sizeof(path), "%s/file.kek", base);
    fv_error_init(&e);
    assert_int_equal(fv_crypto_kek_file_create(path, data_dir, &e), FV_OK);
    struct fv_kek *fk = NULL;
    assert_int_equal(fv_crypto_kek_file_open(&fk, path, data_dir, &e), FV_OK);
    generate_ok("kek-cross");
    struct fv_kek *pk = open_ok("kek-cross");
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    struct fv_secret *back = NULL;

    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), fk), FV_OK);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), pk), FV_E_CORRUPT);
    blob[0] = 0x02; /* relabelled as a pkcs11 blob: the token's key still refuses it */
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), pk), FV_E_CORRUPT);

    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), pk), FV_OK);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), fk), FV_E_CORRUPT);
    blob[0] = 0x01;
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), fk), FV_E_CORRUPT);
    assert_null(back);

    fv_crypto_kek_free(pk);
    fv_crypto_kek_free(fk);
    fv_crypto_secret_free(root);
}

/* One KEK shared by threads: the session mutex serialises them. */
struct worker {
    struct fv_kek *kek;
    int failures;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 50; i++) {
        struct fv_secret *root = NULL;
        struct fv_secret *back = NULL;
        uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
        size_t len = 0;
        if (fv_crypto_secret_random(&root, 32) != FV_OK ||
            fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), w->kek) != FV_OK ||
            fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), w->kek) != FV_OK ||
            !fv_ct_equal(fv_crypto_secret_bytes(back), fv_crypto_secret_bytes(root), 32))
            w->failures++;
        fv_crypto_secret_free(back);
        fv_crypto_secret_free(root);
    }
    return NULL;
}

static void test_fv_crypto_kek_wrap_pkcs11_threads(void **state)
{
    (void)state;
    generate_ok("kek-threads");
    struct fv_kek *kek = open_ok("kek-threads");
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){kek, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    fv_crypto_kek_free(kek);
}

/* Open, wrap and unwrap with the n-th allocation failing, for every n (STYLE 34). */
static void test_fv_crypto_kek_pkcs11_open_alloc_failure(void **state)
{
    (void)state;
    generate_ok("kek-alloc");
    struct fv_secret *root = random_root();
    bool completed = false;
    for (long n = 1; n < 1000 && !completed; n++) {
        struct fv_kek *kek = NULL;
        struct fv_secret *back = NULL;
        uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
        size_t len = 0;
        struct fv_error e;
        fv_error_init(&e);
        fv_mem_fail_at(n, false);
        int rc = fv_crypto_kek_pkcs11_open(&kek, MODULE, TOKEN, "kek-alloc", PIN, &e);
        if (rc == FV_OK)
            rc = fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek);
        if (rc == FV_OK)
            rc = fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek);
        long used = fv_mem_count();
        fv_mem_fail_at(0, false);
        if (rc == FV_OK) {
            assert_true(
                fv_ct_equal(fv_crypto_secret_bytes(back), fv_crypto_secret_bytes(root), 32));
            completed = used < n;
        } else if (rc != FV_E_NOMEM) {
            fail_msg("allocation %ld failed: %s (%s)", n, fv_strerror(rc), e.msg);
        }
        fv_crypto_secret_free(back);
        fv_crypto_kek_free(kek);
    }
    assert_true(completed);
    fv_crypto_secret_free(root);
}

/*
 * The token disappears under an open KEK. SoftHSM2 2.6 notices at once: the
 * next C_EncryptInit/C_DecryptInit answers CKR_OBJECT_HANDLE_INVALID, a fresh
 * C_FindObjects finds nothing, and C_GetTokenInfo on the old slot fails, so
 * the reconnect finds no token. When a token with the label (and key) is
 * created again, the same handle reconnects to it without a restart.
 */
static void test_fv_crypto_kek_pkcs11_token_deleted(void **state)
{
    (void)state;
    generate_ok("kek-gone");
    struct fv_kek *kek = open_ok("kek-gone");
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX], out[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0, outlen = 0;
    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek), FV_OK);

    delete_token();
    memset(out, 0xAA, sizeof(out));
    assert_int_equal(fv_crypto_kek_wrap(out, &outlen, root, ad1, sizeof(ad1), kek),
                     FV_E_KEY_UNAVAILABLE);
    assert_int_equal(outlen, 0); /* nothing returned */
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek),
                     FV_E_KEY_UNAVAILABLE);
    assert_null(back);
    assert_int_equal(fv_crypto_kek_check(kek), FV_E_KEY_UNAVAILABLE);
    /* And again: a disconnected KEK stays an error, not a crash. */
    assert_int_equal(fv_crypto_kek_wrap(out, &outlen, root, ad1, sizeof(ad1), kek),
                     FV_E_KEY_UNAVAILABLE);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek),
                     FV_E_KEY_UNAVAILABLE);

    /* Opening afresh says what is missing. */
    expect_open_fails(MODULE, TOKEN, "kek-gone", PIN, FV_E_KEY_UNAVAILABLE,
                      "no token labelled 'fvtest'");

    /* The token comes back empty: still unavailable, now because the key is missing. */
    assert_int_equal(init_token(), 0);
    assert_int_equal(fv_crypto_kek_check(kek), FV_E_KEY_UNAVAILABLE);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek),
                     FV_E_KEY_UNAVAILABLE);

    /* A new key under the old label: the handle reconnects, old blobs do not open. */
    generate_ok("kek-gone");
    assert_int_equal(fv_crypto_kek_check(kek), FV_OK);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek), FV_E_CORRUPT);
    assert_null(back);
    assert_int_equal(fv_crypto_kek_wrap(out, &outlen, root, ad1, sizeof(ad1), kek), FV_OK);
    assert_unwraps_to(kek, out, outlen, ad1, sizeof(ad1), root);

    fv_crypto_kek_free(kek);
    fv_crypto_secret_free(root);
}

/* The token is deleted and re-created empty before the KEK next touches it. */
static void test_fv_crypto_kek_pkcs11_token_reinitialised(void **state)
{
    (void)state;
    generate_ok("kek-reinit");
    struct fv_kek *kek = open_ok("kek-reinit");
    struct fv_secret *root = random_root();
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek), FV_OK);

    /* Delete and re-create in one go, with no operation in between. */
    delete_token();
    assert_int_equal(init_token(), 0);
    assert_int_equal(fv_crypto_kek_unwrap(&back, blob, len, ad1, sizeof(ad1), kek),
                     FV_E_KEY_UNAVAILABLE);
    assert_int_equal(fv_crypto_kek_wrap(blob, &len, root, ad1, sizeof(ad1), kek),
                     FV_E_KEY_UNAVAILABLE);
    assert_int_equal(fv_crypto_kek_check(kek), FV_E_KEY_UNAVAILABLE);
    assert_null(back);
    fv_crypto_kek_free(kek);
    fv_crypto_secret_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_crypto_kek_pkcs11_generate_open_round_trip),
        cmocka_unit_test(test_fv_crypto_kek_pkcs11_generate_twice),
        cmocka_unit_test(test_fv_crypto_kek_unwrap_pkcs11_wrong_ad),
        cmocka_unit_test(test_fv_crypto_kek_unwrap_pkcs11_tampered),
        cmocka_unit_test(test_fv_crypto_kek_pkcs11_open_wrong_pin),
        cmocka_unit_test(test_fv_crypto_kek_pkcs11_open_missing_token),
        cmocka_unit_test(test_fv_crypto_kek_pkcs11_open_missing_key),
        cmocka_unit_test(test_fv_crypto_kek_pkcs11_open_bad_module),
        cmocka_unit_test(test_fv_crypto_kek_unwrap_pkcs11_file_blob),
        cmocka_unit_test(test_fv_crypto_kek_wrap_pkcs11_threads),
        cmocka_unit_test(test_fv_crypto_kek_pkcs11_open_alloc_failure),
        /* These two delete the token; they run last. */
        cmocka_unit_test(test_fv_crypto_kek_pkcs11_token_deleted),
        cmocka_unit_test(test_fv_crypto_kek_pkcs11_token_reinitialised),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
