/*
 * Unit tests for http/tls.c: generation and reuse of the self-signed
 * development certificate (file modes, SAN, validity, key match), the
 * configured-pair path and the priority string.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"

struct fixture {
    char dir[64];
    struct fv_config cfg;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    (void)snprintf(f->dir, sizeof(f->dir), "/tmp/fv_test_tls_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    fv_config_defaults(&f->cfg);
    f->cfg.tls_cert[0] = '\0';
    f->cfg.tls_key[0] = '\0';
    *state = f;
    return 0;
}

static void path_of(const struct fixture *f, const char *name, char *out, size_t cap)
{
    (void)snprintf(out, cap, "%s/tls/%s", f->dir, name);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char p[256];
    path_of(f, "cert.pem", p, sizeof(p));
    (void)unlink(p);
    path_of(f, "key.pem", p, sizeof(p));
    (void)unlink(p);
    path_of(f, "", p, sizeof(p));
    (void)rmdir(p);
    (void)rmdir(f->dir);
    free(f);
    return 0;
}

static void import_cert(const char *pem, gnutls_x509_crt_t *ret)
{
    gnutls_datum_t d = {(unsigned char *)(uintptr_t)pem, (unsigned int)strlen(pem)};
    assert_int_equal(gnutls_x509_crt_init(ret), 0);
    assert_int_equal(gnutls_x509_crt_import(*ret, &d, GNUTLS_X509_FMT_PEM), 0);
}

static void test_fv_http_tls_ensure_generates(void **state)
{
    struct fixture *f = *state;
    struct fv_error err;
    char *cert = NULL, *key = NULL;
    char p[256];
    struct stat st;
    gnutls_x509_crt_t crt;
    unsigned int critical = 0;
    char san[64];
    size_t san_len;
    bool dns = false, ip4 = false, ip6 = false;

    fv_error_init(&err);
    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &cert, &key, &err), FV_OK);
    assert_non_null(cert);
    assert_non_null(key);
    assert_non_null(strstr(cert, "-----BEGIN CERTIFICATE-----"));
    assert_non_null(strstr(key, "PRIVATE KEY-----"));

    path_of(f, "", p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    path_of(f, "key.pem", p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    path_of(f, "cert.pem", p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    import_cert(cert, &crt);
    assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, NULL), GNUTLS_PK_ECDSA);
    gnutls_ecc_curve_t curve;
    gnutls_datum_t x, y;
    assert_int_equal(gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, &x, &y), 0);
    assert_int_equal(curve, GNUTLS_ECC_CURVE_SECP256R1);
    gnutls_free(x.data);
    gnutls_free(y.data);
    for (unsigned int i = 0;; i++) {
        san_len = sizeof(san);
        int t = gnutls_x509_crt_get_subject_alt_name(crt, i, san, &san_len, &critical);
        if (t < 0)
            break;
        if (t == GNUTLS_SAN_DNSNAME && san_len == 9 && memcmp(san, "localhost", 9) == 0)
            dns = true;
        if (t == GNUTLS_SAN_IPADDRESS && san_len == 4 && memcmp(san, "\x7f\0\0\x01", 4) == 0)
            ip4 = true;
        if (t == GNUTLS_SAN_IPADDRESS && san_len == 16 &&
            memcmp(san, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16) == 0)
            ip6 = true;
    }
    assert_true(dns && ip4 && ip6);
    assert_true(gnutls_x509_crt_check_hostname(crt, "localhost"));
    assert_true(gnutls_x509_crt_check_hostname(crt, "127.0.0.1"));
    time_t now = time(NULL);
    time_t exp = gnutls_x509_crt_get_expiration_time(crt);
    assert_true(exp > now + 364L * 86400 && exp <= now + 366L * 86400);
    assert_true(gnutls_x509_crt_get_activation_time(crt) <= now);
    /* self-signed and the signature verifies */
    unsigned int verify = 0;
    assert_int_equal(gnutls_x509_crt_verify(crt, &crt, 1, 0, &verify), 0);
    assert_int_equal(verify, 0);
    gnutls_x509_crt_deinit(crt);

    fv_free(cert);
    fv_http_tls_key_free(key);
}

static void test_fv_http_tls_ensure_reuses(void **state)
{
    struct fixture *f = *state;
    char *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL;
    char fp1[96], fp2[96];

    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c1, &k1, NULL), FV_OK);
    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c2, &k2, NULL), FV_OK);
    assert_string_equal(c1, c2);
    assert_string_equal(k1, k2);
    assert_int_equal(fv_http_tls_fingerprint(c1, fp1, sizeof(fp1)), FV_OK);
    assert_int_equal(fv_http_tls_fingerprint(c2, fp2, sizeof(fp2)), FV_OK);
    assert_string_equal(fp1, fp2);
    assert_int_equal(strlen(fp1), 95);
    assert_int_equal(fp1[2], ':');
    fv_free(c1);
    fv_free(c2);
    fv_http_tls_key_free(k1);
    fv_http_tls_key_free(k2);
}

static void test_fv_http_tls_ensure_tightens_loose_key_mode(void **state)
{
    struct fixture *f = *state;
    char *c = NULL, *k = NULL;
    char p[256];
    struct stat st;

    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c, &k, NULL), FV_OK);
    fv_free(c);
    fv_http_tls_key_free(k);
    path_of(f, "key.pem", p, sizeof(p));
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c, &k, NULL), FV_OK);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    fv_free(c);
    fv_http_tls_key_free(k);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void test_fv_http_tls_ensure_regenerates_garbage(void **state)
{
    struct fixture *f = *state;
    char *c1 = NULL, *k1 = NULL, *c2 = NULL, *k2 = NULL;
    char p[256];

    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c1, &k1, NULL), FV_OK);
    path_of(f, "cert.pem", p, sizeof(p));
    write_text(p, "not a certificate\n");
    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c2, &k2, NULL), FV_OK);
    assert_string_not_equal(c1, c2);
    assert_string_not_equal(k1, k2);
    fv_free(c1);
    fv_free(c2);
    fv_http_tls_key_free(k1);
    fv_http_tls_key_free(k2);
}

static void test_fv_http_tls_ensure_refuses_symlinked_key(void **state)
{
    struct fixture *f = *state;
    char *c = NULL, *k = NULL;
    char p[256], kp[256];

    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c, &k, NULL), FV_OK);
    fv_free(c);
    fv_http_tls_key_free(k);
    /* A symlinked key is not followed: the pair is regenerated in place. */
    path_of(f, "key.pem", kp, sizeof(kp));
    (void)snprintf(p, sizeof(p), "%s/elsewhere.pem", f->dir);
    assert_int_equal(rename(kp, p), 0);
    assert_int_equal(symlink(p, kp), 0);
    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c, &k, NULL), FV_OK);
    struct stat st;
    assert_int_equal(lstat(kp, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    fv_free(c);
    fv_http_tls_key_free(k);
    (void)unlink(p);
}

static void test_fv_http_tls_ensure_configured_pair(void **state)
{
    struct fixture *f = *state;
    char *c = NULL, *k = NULL, *c2 = NULL, *k2 = NULL;
    struct fv_error err;

    /* Generate one pair, then point the config at it. */
    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c, &k, NULL), FV_OK);
    path_of(f, "cert.pem", f->cfg.tls_cert, sizeof(f->cfg.tls_cert));
    path_of(f, "key.pem", f->cfg.tls_key, sizeof(f->cfg.tls_key));
    assert_int_equal(fv_http_tls_ensure("/nonexistent", &f->cfg, &c2, &k2, NULL), FV_OK);
    assert_string_equal(c, c2);
    assert_string_equal(k, k2);
    fv_free(c2);
    fv_http_tls_key_free(k2);

    /* missing key setting */
    f->cfg.tls_key[0] = '\0';
    fv_error_init(&err);
    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c2, &k2, &err), FV_E_INVALID);
    assert_non_null(strstr(err.msg, "tls_key"));

    /* missing file */
    (void)snprintf(f->cfg.tls_key, sizeof(f->cfg.tls_key), "%s/missing.pem", f->dir);
    fv_error_init(&err);
    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c2, &k2, &err), FV_E_IO);
    assert_non_null(strstr(err.msg, "missing.pem"));

    /* key of another pair does not match */
    char other_dir[128], other_key[256];
    (void)snprintf(other_dir, sizeof(other_dir), "%s/other", f->dir);
    struct fv_config cfg2;
    fv_config_defaults(&cfg2);
    cfg2.tls_cert[0] = '\0';
    char *c3 = NULL, *k3 = NULL;
    assert_int_equal(fv_http_tls_ensure(other_dir, &cfg2, &c3, &k3, NULL), FV_OK);
    (void)snprintf(other_key, sizeof(other_key), "%s/tls/key.pem", other_dir);
    (void)fv_strlcpy(f->cfg.tls_key, other_key, sizeof(f->cfg.tls_key));
    fv_error_init(&err);
    assert_int_equal(fv_http_tls_ensure(f->dir, &f->cfg, &c2, &k2, &err), FV_E_INVALID);
    assert_non_null(strstr(err.msg, "does not match"));

    char p[300];
    (void)unlink(other_key);
    (void)snprintf(p, sizeof(p), "%s/tls/cert.pem", other_dir);
    (void)unlink(p);
    (void)snprintf(p, sizeof(p), "%s/tls", other_dir);
    (void)rmdir(p);
    (void)rmdir(other_dir);
    fv_free(c3);
    fv_http_tls_key_free(k3);
    fv_free(c);
    fv_http_tls_key_free(k);
}

/* Every allocation failure is reported as FV_E_NOMEM and leaks nothing (ASan). */
static void test_fv_http_tls_ensure_nomem(void **state)
{
    struct fixture *f = *state;
    int rc = FV_E_NOMEM;

    for (long n = 1; rc != FV_OK && n < 200; n++) {
        char *c = NULL, *k = NULL;
        fv_mem_fail_at(n, false);
        rc = fv_http_tls_ensure(f->dir, &f->cfg, &c, &k, NULL);
        fv_mem_fail_at(0, false);
        assert_true(rc == FV_OK || rc == FV_E_NOMEM);
        if (rc == FV_OK) {
            assert_non_null(c);
            assert_non_null(k);
        }
        fv_free(c);
        fv_http_tls_key_free(k);
    }
    assert_int_equal(rc, FV_OK);
}

static void test_fv_http_tls_fingerprint_rejects_garbage(void **state)
{
    char fp[96];
    (void)state;
    assert_int_equal(fv_http_tls_fingerprint("garbage", fp, sizeof(fp)), FV_E_INVALID);
    assert_int_equal(fv_http_tls_fingerprint("garbage", fp, 10), FV_E_LIMIT);
}

/* The priority string must parse and allow only TLS 1.2/1.3 with AEAD ciphers. */
static void test_fv_http_tls_priorities_only_modern(void **state)
{
    gnutls_priority_t prio;
    const char *err_pos = NULL;
    const unsigned int *list;
    int n;
    (void)state;

    assert_int_equal(gnutls_priority_init(&prio, FV_HTTP_TLS_PRIORITIES, &err_pos), 0);
    n = gnutls_priority_protocol_list(prio, &list);
    assert_true(n > 0);
    for (int i = 0; i < n; i++)
        assert_true(list[i] == GNUTLS_TLS1_3 || list[i] == GNUTLS_TLS1_2);
    n = gnutls_priority_cipher_list(prio, &list);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        assert_true(list[i] == GNUTLS_CIPHER_AES_256_GCM || list[i] == GNUTLS_CIPHER_AES_128_GCM ||
                    list[i] == GNUTLS_CIPHER_CHACHA20_POLY1305);
    }
    n = gnutls_priority_kx_list(prio, &list);
    for (int i = 0; i < n; i++)
        assert_true(list[i] == GNUTLS_KX_ECDHE_ECDSA || list[i] == GNUTLS_KX_ECDHE_RSA);
    gnutls_priority_deinit(prio);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fv_http_tls_ensure_generates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_http_tls_ensure_reuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_http_tls_ensure_tightens_loose_key_mode, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_http_tls_ensure_regenerates_garbage, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_http_tls_ensure_refuses_symlinked_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_http_tls_ensure_configured_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_http_tls_ensure_nomem, setup, teardown),
        cmocka_unit_test(test_fv_http_tls_fingerprint_rejects_garbage),
        cmocka_unit_test(test_fv_http_tls_priorities_only_modern),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
