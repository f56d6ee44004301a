/*
 * Unit tests for crypto/transport.c: the RSA-3072 transport key with
 * RSAES-OAEP, SHA-256 and MGF1-SHA-256, empty label (RFC 8017 7.1). The
 * interop test encrypts with the OpenSSL CLI exactly as the header tells
 * importers to, so a mismatch in hash, MGF or CRT parameters between
 * GnuTLS and libgcrypt shows up here.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "crypto/crypto.h"

extern char **environ;

struct keys {
    struct fv_secret *priv, *priv2;
    char *pem, *pem2;
};

static int setup(void **state)
{
    struct keys *k = calloc(1, sizeof(*k));
    assert_non_null(k);
    assert_int_equal(fv_crypto_transport_new(&k->priv, &k->pem), FV_OK);
    assert_int_equal(fv_crypto_transport_new(&k->priv2, &k->pem2), FV_OK);
    *state = k;
    return 0;
}

static int teardown(void **state)
{
    struct keys *k = *state;
    fv_crypto_secret_free(k->priv);
    fv_crypto_secret_free(k->priv2);
    fv_free(k->pem);
    fv_free(k->pem2);
    free(k);
    return 0;
}

static struct fv_secret *kek(uint8_t fill, size_t len)
{
    uint8_t raw[64];
    struct fv_secret *s = NULL;
    memset(raw, fill, sizeof(raw));
    raw[0] = 0x00; /* a leading zero byte must survive the round trip */
    assert_int_equal(fv_crypto_secret_copy(&s, raw, len), FV_OK);
    return s;
}

static void test_fv_crypto_transport_new_shape(void **state)
{
    struct keys *k = *state;
    gnutls_pubkey_t pub;
    gnutls_datum_t d = {(unsigned char *)k->pem, (unsigned)strlen(k->pem)};
    unsigned bits = 0;
    assert_non_null(strstr(k->pem, "-----BEGIN PUBLIC KEY-----"));
    assert_non_null(strstr(k->pem, "-----END PUBLIC KEY-----"));
    assert_true(fv_crypto_secret_len(k->priv) > 1000);
    /* PKCS#8 DER: SEQUENCE */
    assert_int_equal(fv_crypto_secret_bytes(k->priv)[0], 0x30);
    assert_int_equal(gnutls_pubkey_init(&pub), 0);
    assert_int_equal(gnutls_pubkey_import(pub, &d, GNUTLS_X509_FMT_PEM), 0);
    assert_int_equal(gnutls_pubkey_get_pk_algorithm(pub, &bits), GNUTLS_PK_RSA);
    assert_int_equal(bits, 3072);
    gnutls_pubkey_deinit(pub);
    assert_string_not_equal(k->pem, k->pem2);
}

static void test_fv_crypto_transport_wrap_round_trip(void **state)
{
    struct keys *k = *state;
    struct fv_secret *key = kek(0xa5, 32), *back = NULL;
    uint8_t c[512], c2[512];
    size_t clen = 0, c2len = 0;
    assert_int_equal(fv_crypto_transport_wrap(c, sizeof(c), &clen, key, k->pem), FV_OK);
    assert_int_equal(clen, 384);
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, k->priv), FV_OK);
    assert_int_equal(fv_crypto_secret_len(back), 32);
    assert_memory_equal(fv_crypto_secret_bytes(back), fv_crypto_secret_bytes(key), 32);
    fv_crypto_secret_free(back);
    /* OAEP is randomised */
    assert_int_equal(fv_crypto_transport_wrap(c2, sizeof(c2), &c2len, key, k->pem), FV_OK);
    assert_false(fv_ct_equal(c, c2, 384));
    /* many round trips: catches a ciphertext with leading zero bytes */
    for (int i = 0; i < 40; i++) {
        back = NULL;
        assert_int_equal(fv_crypto_transport_wrap(c, sizeof(c), &clen, key, k->pem), FV_OK);
        assert_int_equal(clen, 384);
        assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, k->priv), FV_OK);
        assert_memory_equal(fv_crypto_secret_bytes(back), fv_crypto_secret_bytes(key), 32);
        fv_crypto_secret_free(back);
    }
    fv_crypto_secret_free(key);
}

static void test_fv_crypto_transport_unwrap_corrupt(void **state)
{
    struct keys *k = *state;
    struct fv_secret *key = kek(0x11, 32), *short_key = kek(0x22, 31), *long_key = kek(0x33, 33);
    struct fv_secret *back = NULL;
    uint8_t c[512];
    size_t clen = 0;

    assert_int_equal(fv_crypto_transport_wrap(c, sizeof(c), &clen, key, k->pem), FV_OK);
    /* flipped bits anywhere */
    for (size_t i = 0; i < clen; i += 97) {
        c[i] ^= 0x01;
        assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, k->priv), FV_E_CORRUPT);
        c[i] ^= 0x01;
    }
    /* wrong length */
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen - 1, k->priv), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen + 1, k->priv), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, 0, k->priv), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_transport_unwrap(&back, NULL, 0, k->priv), FV_E_CORRUPT);
    /* another transport key */
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, k->priv2), FV_E_CORRUPT);
    /* all zeros and all ones (larger than the modulus) */
    memset(c, 0, 384);
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, 384, k->priv), FV_E_CORRUPT);
    memset(c, 0xff, 384);
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, 384, k->priv), FV_E_CORRUPT);
    /* valid OAEP but a plaintext of 31 or 33 bytes */
    assert_int_equal(fv_crypto_transport_wrap(c, sizeof(c), &clen, short_key, k->pem), FV_OK);
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, k->priv), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_transport_wrap(c, sizeof(c), &clen, long_key, k->pem), FV_OK);
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, k->priv), FV_E_CORRUPT);
    assert_null(back);
    fv_crypto_secret_free(key);
    fv_crypto_secret_free(short_key);
    fv_crypto_secret_free(long_key);
}

static void test_fv_crypto_transport_wrap_bad_input(void **state)
{
    struct keys *k = *state;
    struct fv_secret *key = kek(0x44, 32), *junk = NULL;
    uint8_t c[512];
    size_t clen = 0;
    assert_int_equal(fv_crypto_transport_wrap(c, 383, &clen, key, k->pem), FV_E_LIMIT);
    assert_int_equal(fv_crypto_transport_wrap(c, sizeof(c), &clen, key, "not a pem"), FV_E_INVALID);
    assert_int_equal(clen, 0);
    /* a damaged private key is our fault, not the importer's */
    assert_int_equal(fv_crypto_secret_copy(&junk, (const uint8_t *)"\x30\x03\x02\x01\x00", 5),
                     FV_OK);
    assert_int_equal(fv_crypto_transport_wrap(c, sizeof(c), &clen, key, k->pem), FV_OK);
    struct fv_secret *back = NULL;
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, junk), FV_E_INTERNAL);
    fv_crypto_secret_free(junk);
    fv_crypto_secret_free(key);
}

/* Run argv (PATH lookup) with stdout and stderr discarded; its exit status or -1. */
static int run(char *const argv[])
{
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int status, rc;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0), 0);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    assert_int_equal(posix_spawn_file_actions_destroy(&fa), 0);
    if (rc != 0)
        return -1;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool have_openssl(void)
{
    char *argv[] = {"openssl", "version", NULL};
    return run(argv) == 0;
}

/* The importer's side as documented in crypto.h, with the OpenSSL CLI. */
static void test_fv_crypto_transport_unwrap_openssl_interop(void **state)
{
    struct keys *k = *state;
    char dir[] = "/tmp/fv-transport-XXXXXX", pub[64], in[64], out[64];
    uint8_t raw[32], c[1024];
    struct fv_secret *back = NULL;
    FILE *f;
    size_t clen;

    if (!have_openssl())
        skip();
    assert_non_null(mkdtemp(dir));
    snprintf(pub, sizeof(pub), "%s/pub.pem", dir);
    snprintf(in, sizeof(in), "%s/kek.bin", dir);
    snprintf(out, sizeof(out), "%s/kek.wrapped", dir);
    f = fopen(pub, "w");
    assert_non_null(f);
    assert_true(fputs(k->pem, f) >= 0);
    assert_int_equal(fclose(f), 0);
    for (int round = 0; round < 3; round++) {
        fv_random_bytes(raw, sizeof(raw));
        f = fopen(in, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(raw, 1, sizeof(raw), f), sizeof(raw));
        assert_int_equal(fclose(f), 0);
        char *argv[] = {"openssl",  "pkeyutl",
                        "-encrypt", "-pubin",
                        "-inkey",   pub,
                        "-pkeyopt", "rsa_padding_mode:oaep",
                        "-pkeyopt", "rsa_oaep_md:sha256",
                        "-pkeyopt", "rsa_mgf1_md:sha256",
                        "-in",      in,
                        "-out",     out,
                        NULL};
        assert_int_equal(run(argv), 0);
        f = fopen(out, "rb");
        assert_non_null(f);
        clen = fread(c, 1, sizeof(c), f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(clen, 384);
        assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, k->priv), FV_OK);
        assert_memory_equal(fv_crypto_secret_bytes(back), raw, 32);
        fv_crypto_secret_free(back);
        back = NULL;
        /* the other key cannot open it */
        assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, k->priv2), FV_E_CORRUPT);
    }
    /* SHA-1 OAEP (the OpenSSL default) must not be accepted as SHA-256 */
    {
        char *argv[] = {"openssl", "pkeyutl", "-encrypt", "-pubin",
                        "-inkey",  pub,       "-pkeyopt", "rsa_padding_mode:oaep",
                        "-in",     in,        "-out",     out,
                        NULL};
        assert_int_equal(run(argv), 0);
        f = fopen(out, "rb");
        assert_non_null(f);
        clen = fread(c, 1, sizeof(c), f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, k->priv), FV_E_CORRUPT);
    }
    assert_int_equal(unlink(pub), 0);
    assert_int_equal(unlink(in), 0);
    assert_int_equal(unlink(out), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* The private key also decrypts what OpenSSL's private-key tooling expects. */
static void test_fv_crypto_transport_new_openssl_reads_private(void **state)
{
    struct keys *k = *state;
    char dir[] = "/tmp/fv-transport-XXXXXX", der[64], pem[64];
    FILE *f;
    if (!have_openssl())
        skip();
    assert_non_null(mkdtemp(dir));
    snprintf(der, sizeof(der), "%s/priv.der", dir);
    snprintf(pem, sizeof(pem), "%s/pub.pem", dir);
    f = fopen(der, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(fv_crypto_secret_bytes(k->priv), 1, fv_crypto_secret_len(k->priv), f),
                     fv_crypto_secret_len(k->priv));
    assert_int_equal(fclose(f), 0);
    char *argv[] = {"openssl", "pkey", "-inform", "DER", "-in", der, "-pubout", "-out", pem, NULL};
    assert_int_equal(run(argv), 0);
    /* the public half openssl derives is the PEM we returned */
    char buf[2048] = {0};
    f = fopen(pem, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(n, strlen(k->pem));
    assert_string_equal(buf, k->pem);
    assert_int_equal(unlink(der), 0);
    assert_int_equal(unlink(pem), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static size_t read_file(const char *path, void *p, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(p, 1, cap, f);
    assert_int_equal(fclose(f), 0);
    return n;
}

/*
 * A key generated by OpenSSL (which orders p > q, unlike libgcrypt) and
 * unwrapped here: exercises the p/q swap and the recomputed coefficient.
 */
static void test_fv_crypto_transport_unwrap_openssl_key(void **state)
{
    (void)state;
    char dir[] = "/tmp/fv-transport-XXXXXX", der[64], pub[64], in[64], out[64];
    static uint8_t buf[4096];
    uint8_t raw[32], c[1024];
    struct fv_secret *priv = NULL, *back = NULL, *key = NULL;
    size_t n, clen = 0;

    if (!have_openssl())
        skip();
    assert_non_null(mkdtemp(dir));
    snprintf(der, sizeof(der), "%s/priv.der", dir);
    snprintf(pub, sizeof(pub), "%s/pub.pem", dir);
    snprintf(in, sizeof(in), "%s/kek.bin", dir);
    snprintf(out, sizeof(out), "%s/kek.wrapped", dir);
    char *gen[] = {"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                   "-out",    pub,       NULL};
    assert_int_equal(run(gen), 0);
    /* genpkey's DER is PKCS#1; the transport key is PKCS#8 */
    char *p8[] = {"openssl",  "pkcs8", "-topk8", "-nocrypt", "-in", pub,
                  "-outform", "DER",   "-out",   der,        NULL};
    assert_int_equal(run(p8), 0);
    char *pubout[] = {"openssl", "pkey",    "-inform", "DER", "-in",
                      der,       "-pubout", "-out",    pub,   NULL};
    assert_int_equal(run(pubout), 0);
    n = read_file(der, buf, sizeof(buf));
    assert_true(n > 0 && n < sizeof(buf));
    assert_int_equal(fv_crypto_secret_copy(&priv, buf, n), FV_OK);

    fv_random_bytes(raw, sizeof(raw));
    write_file(in, raw, sizeof(raw));
    char *enc[] = {"openssl",  "pkeyutl",
                   "-encrypt", "-pubin",
                   "-inkey",   pub,
                   "-pkeyopt", "rsa_padding_mode:oaep",
                   "-pkeyopt", "rsa_oaep_md:sha256",
                   "-pkeyopt", "rsa_mgf1_md:sha256",
                   "-in",      in,
                   "-out",     out,
                   NULL};
    assert_int_equal(run(enc), 0);
    clen = read_file(out, c, sizeof(c));
    assert_int_equal(clen, 256);
    assert_int_equal(fv_crypto_transport_unwrap(&back, c, clen, priv), FV_OK);
    assert_memory_equal(fv_crypto_secret_bytes(back), raw, 32);
    fv_crypto_secret_free(back);
    back = NULL;

    /* and our wrap against OpenSSL's public key, decrypted by OpenSSL */
    n = read_file(pub, buf, sizeof(buf) - 1);
    buf[n] = 0;
    assert_int_equal(fv_crypto_secret_copy(&key, raw, sizeof(raw)), FV_OK);
    assert_int_equal(fv_crypto_transport_wrap(c, sizeof(c), &clen, key, (const char *)buf), FV_OK);
    assert_int_equal(clen, 256);
    write_file(in, c, clen);
    char *dec[] = {"openssl",
                   "pkeyutl",
                   "-decrypt",
                   "-keyform",
                   "DER",
                   "-inkey",
                   der,
                   "-pkeyopt",
                   "rsa_padding_mode:oaep",
                   "-pkeyopt",
                   "rsa_oaep_md:sha256",
                   "-pkeyopt",
                   "rsa_mgf1_md:sha256",
                   "-in",
                   in,
                   "-out",
                   out,
                   NULL};
    assert_int_equal(run(dec), 0);
    assert_int_equal(read_file(out, buf, sizeof(buf)), 32);
    assert_memory_equal(buf, raw, 32);

    fv_crypto_secret_free(key);
    fv_crypto_secret_free(priv);
    assert_int_equal(unlink(der), 0);
    assert_int_equal(unlink(pub), 0);
    assert_int_equal(unlink(in), 0);
    assert_int_equal(unlink(out), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_crypto_transport_new_shape),
        cmocka_unit_test(test_fv_crypto_transport_wrap_round_trip),
        cmocka_unit_test(test_fv_crypto_transport_unwrap_corrupt),
        cmocka_unit_test(test_fv_crypto_transport_wrap_bad_input),
        cmocka_unit_test(test_fv_crypto_transport_unwrap_openssl_interop),
        cmocka_unit_test(test_fv_crypto_transport_new_openssl_reads_private),
        cmocka_unit_test(test_fv_crypto_transport_unwrap_openssl_key),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
