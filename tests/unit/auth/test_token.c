/* Unit tests for auth/token.c: token shape and hashing, header parsing, scopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"

static void test_fv_auth_token_generate_shape(void **state)
{
    (void)state;
    char a[64], b[64];
    uint8_t ha[32], hb[32], again[32];
    assert_int_equal(fv_auth_token_generate(a, sizeof(a), ha), FV_OK);
    assert_int_equal(fv_auth_token_generate(b, sizeof(b), hb), FV_OK);
    assert_int_equal(strlen(a), FV_AUTH_TOKEN_CHARS);
    assert_memory_equal(a, "fvt_", 4);
    assert_string_not_equal(a, b);
    assert_false(fv_ct_equal(ha, hb, 32));
    /* the stored hash is reproducible from the token text */
    assert_int_equal(fv_auth_token_hash(a, strlen(a), again), FV_OK);
    assert_true(fv_ct_equal(ha, again, 32));
}

static void test_fv_auth_token_generate_small_buffer(void **state)
{
    (void)state;
    char small[10];
    uint8_t h[32];
    assert_int_equal(fv_auth_token_generate(small, sizeof(small), h), FV_E_LIMIT);
}

/* SHA-256 known answer (FIPS 180-4) through the token path. */
static void test_fv_auth_token_hash_known_answer(void **state)
{
    (void)state;
    const char *tok = "fvt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    uint8_t h[32];
    assert_int_equal(strlen(tok), FV_AUTH_TOKEN_CHARS);
    assert_int_equal(fv_auth_token_hash(tok, strlen(tok), h), FV_OK);
    /* echo -n fvt_AAA...A | sha256sum */
    static const uint8_t want[32] = {
#include "token_kat.inc"
    };
    assert_memory_equal(h, want, 32);
}

static void test_fv_auth_token_hash_rejects_garbage(void **state)
{
    (void)state;
    uint8_t h[32];
    assert_int_equal(fv_auth_token_hash("garbage", 7, h), FV_E_AUTH);
    assert_int_equal(fv_auth_token_hash("fvt_short", 9, h), FV_E_AUTH);
    const char *bad = "fvt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!";
    assert_int_equal(fv_auth_token_hash(bad, strlen(bad), h), FV_E_AUTH);
    const char *prefix = "xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_int_equal(fv_auth_token_hash(prefix, strlen(prefix), h), FV_E_AUTH);
}

static void test_fv_auth_header_token_schemes(void **state)
{
    (void)state;
    struct fv_str t;
    assert_int_equal(fv_auth_header_token("Zoho-oauthtoken abc", &t), FV_OK);
    assert_true(fv_str_eq_cstr(t, "abc"));
    assert_int_equal(fv_auth_header_token("Bearer   xyz", &t), FV_OK);
    assert_true(fv_str_eq_cstr(t, "xyz"));
    assert_int_equal(fv_auth_header_token("bearer xyz", &t), FV_OK);
}

static void test_fv_auth_header_token_malformed(void **state)
{
    (void)state;
    struct fv_str t;
    assert_int_equal(fv_auth_header_token(NULL, &t), FV_E_AUTH);
    assert_int_equal(fv_auth_header_token("", &t), FV_E_AUTH);
    assert_int_equal(fv_auth_header_token("Basic abc", &t), FV_E_AUTH);
    assert_int_equal(fv_auth_header_token("Bearer", &t), FV_E_AUTH);
    assert_int_equal(fv_auth_header_token("Bearer ", &t), FV_E_AUTH);
    assert_int_equal(fv_auth_header_token("Bearer a b", &t), FV_E_AUTH);
    assert_int_equal(fv_auth_header_token("Bearerabc", &t), FV_E_AUTH);
}

static void test_fv_auth_scopes_parse_list(void **state)
{
    (void)state;
    unsigned s = 0;
    assert_int_equal(
        fv_auth_scopes_parse("ZohoCreator.form.CREATE, ZohoCreator.report.READ", &s, NULL), FV_OK);
    assert_int_equal(s, FV_SCOPE_FORM_CREATE | FV_SCOPE_REPORT_READ);
    assert_int_equal(fv_auth_scopes_parse("ZohoCreator.report.ALL", &s, NULL), FV_OK);
    assert_int_equal(s, FV_SCOPE_REPORT_READ | FV_SCOPE_REPORT_UPDATE | FV_SCOPE_REPORT_DELETE |
                            FV_SCOPE_REPORT_CREATE);
    assert_int_equal(fv_auth_scopes_parse("ZohoCreator.meta.ALL", &s, NULL), FV_E_INVALID);
    assert_int_equal(fv_auth_scopes_parse("all", &s, NULL), FV_OK);
    assert_int_equal(s, FV_SCOPE_ALL);
}

static void test_fv_auth_scopes_parse_unknown(void **state)
{
    (void)state;
    unsigned s = 77;
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(
        fv_auth_scopes_parse("ZohoCreator.report.READ,zohocreator.form.CREATE", &s, &e),
        FV_E_INVALID);
    assert_string_equal(e.msg, "unknown scope 'zohocreator.form.CREATE'");
    assert_int_equal(s, 77); /* untouched on failure */
    fv_error_init(&e);
    assert_int_equal(fv_auth_scopes_parse(" , ", &s, &e), FV_E_INVALID);
    assert_int_equal(fv_auth_scopes_parse(NULL, &s, NULL), FV_E_INVALID);
}

static void test_fv_auth_scopes_format_roundtrip(void **state)
{
    (void)state;
    struct fv_buf b;
    unsigned s = 0, back = 0;
    fv_buf_init(&b, 1024);
    assert_int_equal(
        fv_auth_scopes_parse("ZohoCreator.dashboard.READ,ZohoCreator.form.CREATE", &s, NULL),
        FV_OK);
    assert_int_equal(fv_auth_scopes_format(s, &b), FV_OK);
    assert_string_equal(b.p, "ZohoCreator.form.CREATE,ZohoCreator.dashboard.READ");
    assert_int_equal(fv_auth_scopes_parse(b.p, &back, NULL), FV_OK);
    assert_int_equal(back, s);
    fv_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_auth_token_generate_shape),
        cmocka_unit_test(test_fv_auth_token_generate_small_buffer),
        cmocka_unit_test(test_fv_auth_token_hash_known_answer),
        cmocka_unit_test(test_fv_auth_token_hash_rejects_garbage),
        cmocka_unit_test(test_fv_auth_header_token_schemes),
        cmocka_unit_test(test_fv_auth_header_token_malformed),
        cmocka_unit_test(test_fv_auth_scopes_parse_list),
        cmocka_unit_test(test_fv_auth_scopes_parse_unknown),
        cmocka_unit_test(test_fv_auth_scopes_format_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
