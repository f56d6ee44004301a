/* Unit tests for core/config.c: defaults, INI file, environment, errors, docs drift. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

static char *write_tmp(const char *text)
{
    static char path[64];
    (void)snprintf(path, sizeof(path), "/tmp/fv-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_fv_config_load_defaults(void **state)
{
    (void)state;
    struct fv_config cfg;
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(fv_config_load(NULL, &cfg, &e), FV_OK);
    assert_string_equal(cfg.data_dir, "./formvault-data");
    assert_int_equal(cfg.https_port, 8443);
    assert_int_equal(cfg.http_port, 8080);
    assert_int_equal(cfg.operator_port, 9443);
    assert_string_equal(cfg.bind, "127.0.0.1");
    assert_int_equal(cfg.max_records_per_write, 200);
}

static void test_fv_config_load_file_and_env(void **state)
{
    (void)state;
    char *p = write_tmp("; comment\n[formvault]\nhttps_port = 9000\ndata_dir = /tmp/x\n");
    struct fv_config cfg;
    struct fv_error e;
    fv_error_init(&e);
    setenv("FORMVAULT_HTTPS_PORT", "9100", 1);
    setenv("FORMVAULT_LOG_LEVEL", "debug", 1);
    assert_int_equal(fv_config_load(p, &cfg, &e), FV_OK);
    assert_int_equal(cfg.https_port, 9100); /* environment beats the file */
    assert_string_equal(cfg.data_dir, "/tmp/x");
    assert_string_equal(cfg.log_level, "debug");
    unsetenv("FORMVAULT_HTTPS_PORT");
    unsetenv("FORMVAULT_LOG_LEVEL");
    unlink(p);
}

static void test_fv_config_load_unknown_key(void **state)
{
    (void)state;
    char *p = write_tmp("https_prot = 9000\n");
    struct fv_config cfg;
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(fv_config_load(p, &cfg, &e), FV_E_INVALID);
    assert_non_null(strstr(e.msg, "unknown setting 'https_prot'"));
    unlink(p);
}

static void test_fv_config_load_out_of_range(void **state)
{
    (void)state;
    struct fv_config cfg;
    struct fv_error e;
    fv_error_init(&e);
    setenv("FORMVAULT_HTTPS_PORT", "70000", 1);
    assert_int_equal(fv_config_load(NULL, &cfg, &e), FV_E_INVALID);
    assert_non_null(strstr(e.msg, "FORMVAULT_HTTPS_PORT"));
    assert_non_null(strstr(e.msg, "between 0 and 65535"));
    unsetenv("FORMVAULT_HTTPS_PORT");
}

static void test_fv_config_load_not_a_number(void **state)
{
    (void)state;
    struct fv_config cfg;
    struct fv_error e;
    fv_error_init(&e);
    setenv("FORMVAULT_THREADS", "two", 1);
    assert_int_equal(fv_config_load(NULL, &cfg, &e), FV_E_INVALID);
    assert_non_null(strstr(e.msg, "'threads' must be an integer"));
    unsetenv("FORMVAULT_THREADS");
}

static void test_fv_config_load_missing_file(void **state)
{
    (void)state;
    struct fv_config cfg;
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(fv_config_load("/nonexistent/formvault.ini", &cfg, &e), FV_E_IO);
    assert_non_null(strstr(e.msg, "/nonexistent/formvault.ini"));
}

static void test_fv_config_load_syntax_error(void **state)
{
    (void)state;
    char *p = write_tmp("[formvault\nhttps_port 1\n");
    struct fv_config cfg;
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(fv_config_load(p, &cfg, &e), FV_E_INVALID);
    unlink(p);
}

static void test_fv_config_load_bad_combination(void **state)
{
    (void)state;
    struct fv_config cfg;
    struct fv_error e;
    fv_error_init(&e);
    setenv("FORMVAULT_TLS_CERT", "/etc/cert.pem", 1);
    assert_int_equal(fv_config_load(NULL, &cfg, &e), FV_E_INVALID);
    assert_non_null(strstr(e.msg, "'tls_cert' and 'tls_key' must be set together"));
    unsetenv("FORMVAULT_TLS_CERT");
    fv_error_init(&e);
    setenv("FORMVAULT_LOG_LEVEL", "loud", 1);
    assert_int_equal(fv_config_load(NULL, &cfg, &e), FV_E_INVALID);
    unsetenv("FORMVAULT_LOG_LEVEL");
}

static void test_fv_config_set_string_too_long(void **state)
{
    (void)state;
    struct fv_config cfg;
    struct fv_error e;
    char big[200];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    fv_config_defaults(&cfg);
    fv_error_init(&e);
    assert_int_equal(fv_config_set(&cfg, "bind", big, &e), FV_E_INVALID);
    assert_string_equal(cfg.bind, "127.0.0.1"); /* unchanged on error */
}

/* docs/configuration.md must be exactly what the settings table generates. */
static void test_fv_config_docs_match_repository(void **state)
{
    (void)state;
    const char *src = getenv("FV_SOURCE_DIR");
    if (!src)
        skip();
    char path[1024];
    (void)snprintf(path, sizeof(path), "%s/docs/configuration.md", src);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    struct fv_buf b;
    fv_buf_init(&b, 1 << 20);
    assert_int_equal(fv_config_docs(&b), FV_OK);
    if (strcmp(b.p, text) != 0)
        fail_msg("docs/configuration.md drifted: run 'build/formvault config docs > "
                 "docs/configuration.md'");
    fv_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_config_load_defaults),
        cmocka_unit_test(test_fv_config_load_file_and_env),
        cmocka_unit_test(test_fv_config_load_unknown_key),
        cmocka_unit_test(test_fv_config_load_out_of_range),
        cmocka_unit_test(test_fv_config_load_not_a_number),
        cmocka_unit_test(test_fv_config_load_missing_file),
        cmocka_unit_test(test_fv_config_load_syntax_error),
        cmocka_unit_test(test_fv_config_load_bad_combination),
        cmocka_unit_test(test_fv_config_set_string_too_long),
        cmocka_unit_test(test_fv_config_docs_match_repository),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
