/*
 * Unit tests for http/url.c: strict path and query decoding and the
 * plain-HTTP redirect URL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "http/http.h"
#include "http/http_int.h"

static int decode(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    int rc = fv_http_path_decode(in, strlen(in), out, cap, &n);
    if (rc == FV_OK)
        assert_int_equal(n, strlen(out));
    return rc;
}

static void test_fv_http_path_decode_plain(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(decode("/creator/v2.1/data/o/a/form/F", out, sizeof(out)), FV_OK);
    assert_string_equal(out, "/creator/v2.1/data/o/a/form/F");
}

static void test_fv_http_path_decode_escapes(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(decode("/a%20b/%C3%A9/%7E+%25", out, sizeof(out)), FV_OK);
    assert_string_equal(out, "/a b/\xc3\xa9/~+%"); /* '+' is literal in paths */
}

static void test_fv_http_path_decode_rejects_nul(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(decode("/a%00b", out, sizeof(out)), FV_E_INVALID);
}

static void test_fv_http_path_decode_rejects_encoded_slash(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(decode("/report/a%2Fb", out, sizeof(out)), FV_E_INVALID);
    assert_int_equal(decode("/report/a%2fb", out, sizeof(out)), FV_E_INVALID);
}

static void test_fv_http_path_decode_rejects_malformed(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(decode("/a%2", out, sizeof(out)), FV_E_INVALID);
    assert_int_equal(decode("/a%", out, sizeof(out)), FV_E_INVALID);
    assert_int_equal(decode("/a%zz", out, sizeof(out)), FV_E_INVALID);
    assert_int_equal(decode("/a%0g", out, sizeof(out)), FV_E_INVALID);
    assert_int_equal(decode("/a\x01", out, sizeof(out)), FV_E_INVALID);
    assert_int_equal(decode("/a%0a", out, sizeof(out)), FV_OK); /* decoded LF is data */
}

static void test_fv_http_path_decode_rejects_relative(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(decode("", out, sizeof(out)), FV_E_INVALID);
    assert_int_equal(decode("*", out, sizeof(out)), FV_E_INVALID);
    assert_int_equal(decode("http://x/a", out, sizeof(out)), FV_E_INVALID);
}

static void test_fv_http_path_decode_limit(void **state)
{
    char out[6];
    (void)state;
    assert_int_equal(decode("/abcdef", out, sizeof(out)), FV_E_LIMIT);
    assert_int_equal(decode("/a%20bc", out, sizeof(out)), FV_OK); /* decodes to 5 bytes */
    assert_string_equal(out, "/a bc");
}

static void test_fv_http_query_parse_basic(void **state)
{
    struct fv_http_query q;
    (void)state;
    assert_int_equal(
        fv_http_query_parse(&q, "criteria=(ID%20%3D%3D%201)&max_records=200&flag&&a+b=c+d&k=",
                            strlen("criteria=(ID%20%3D%3D%201)&max_records=200&flag&&a+b=c+d&k=")),
        FV_OK);
    assert_int_equal(q.n, 5);
    assert_string_equal(fv_http_query_get(&q, "criteria"), "(ID == 1)");
    assert_string_equal(fv_http_query_get(&q, "max_records"), "200");
    assert_string_equal(fv_http_query_get(&q, "flag"), "");
    assert_string_equal(fv_http_query_get(&q, "a b"), "c d");
    assert_string_equal(fv_http_query_get(&q, "k"), "");
    assert_null(fv_http_query_get(&q, "missing"));
    fv_http_query_release(&q);
}

static void test_fv_http_query_parse_duplicate_first_wins(void **state)
{
    struct fv_http_query q;
    (void)state;
    assert_int_equal(fv_http_query_parse(&q, "a=1&a=2", 7), FV_OK);
    assert_string_equal(fv_http_query_get(&q, "a"), "1");
    assert_int_equal(q.n, 2);
    fv_http_query_release(&q);
}

static void test_fv_http_query_parse_rejects_nul(void **state)
{
    struct fv_http_query q;
    (void)state;
    assert_int_equal(fv_http_query_parse(&q, "a=x%00y", 7), FV_E_INVALID);
    assert_int_equal(q.n, 0);
    assert_null(q.storage);
    assert_int_equal(fv_http_query_parse(&q, "a%=1", 4), FV_E_INVALID);
}

static void test_fv_http_query_parse_too_many(void **state)
{
    struct fv_http_query q;
    char raw[FV_HTTP_QUERY_MAX * 4 + 8];
    size_t o = 0;
    (void)state;
    for (int i = 0; i <= FV_HTTP_QUERY_MAX; i++) {
        raw[o++] = 'a';
        raw[o++] = '&';
    }
    assert_int_equal(fv_http_query_parse(&q, raw, o), FV_E_LIMIT);
    assert_int_equal(fv_http_query_parse(&q, raw, o - 2 * 2 + 1), FV_OK); /* 64 params */
    assert_int_equal(q.n, FV_HTTP_QUERY_MAX);
    fv_http_query_release(&q);
}

static void test_fv_http_query_parse_nomem(void **state)
{
    struct fv_http_query q;
    (void)state;
    fv_mem_fail_at(1, false);
    assert_int_equal(fv_http_query_parse(&q, "a=1", 3), FV_E_NOMEM);
    fv_mem_fail_at(0, false);
}

static void redirect_ok(const char *pub, const char *host, int port, const char *uri,
                        const char *want)
{
    struct fv_buf b;
    fv_buf_init(&b, 4096);
    assert_int_equal(fv_http_redirect_url_build(pub, host, port, uri, &b), FV_OK);
    assert_string_equal(b.p, want);
    fv_buf_release(&b);
}

static int redirect_rc(const char *pub, const char *host, int port, const char *uri)
{
    struct fv_buf b;
    int rc;
    fv_buf_init(&b, 4096);
    rc = fv_http_redirect_url_build(pub, host, port, uri, &b);
    fv_buf_release(&b);
    return rc;
}

static void test_fv_http_redirect_url_build_host(void **state)
{
    (void)state;
    redirect_ok("", "example.com:8080", 8443, "/a/b?x=1&y=%20",
                "https://example.com:8443/a/b?x=1&y=%20");
    redirect_ok("", "example.com", 443, "/", "https://example.com/");
    redirect_ok(NULL, "127.0.0.1:80", 443, "/x", "https://127.0.0.1/x");
    redirect_ok("", "[::1]:8080", 8443, "/x", "https://[::1]:8443/x");
    redirect_ok("", "[::1]", 443, "/x", "https://[::1]/x");
}

static void test_fv_http_redirect_url_build_public_url(void **state)
{
    (void)state;
    redirect_ok("https://forms.example.org", "evil.example", 8443, "/a?b",
                "https://forms.example.org/a?b");
    redirect_ok("https://forms.example.org:9443/base", NULL, 8443, "/a",
                "https://forms.example.org:9443/a");
    assert_int_equal(redirect_rc("http://forms.example.org", "h", 443, "/"), FV_E_INVALID);
}

static void test_fv_http_redirect_url_build_rejects_bad_host(void **state)
{
    (void)state;
    assert_int_equal(redirect_rc("", NULL, 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "", 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "a b", 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "evil.com/x", 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "evil.com\r\nSet-Cookie: a=b", 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "user@evil.com", 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "h:", 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "h:12ab", 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "[::1", 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "[zz]", 443, "/"), FV_E_INVALID);
    assert_int_equal(redirect_rc("", "[::1]x", 443, "/"), FV_E_INVALID);
}

static void test_fv_http_redirect_url_build_escapes_target(void **state)
{
    (void)state;
    redirect_ok("", "h", 443, "/a b\r\n\"<>\x80", "https://h/a%20b%0D%0A%22%3C%3E%80");
    redirect_ok("", "h", 443, "http://other/x", "https://h/"); /* absolute-form: not echoed */
    redirect_ok("", "h", 443, NULL, "https://h/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_http_path_decode_plain),
        cmocka_unit_test(test_fv_http_path_decode_escapes),
        cmocka_unit_test(test_fv_http_path_decode_rejects_nul),
        cmocka_unit_test(test_fv_http_path_decode_rejects_encoded_slash),
        cmocka_unit_test(test_fv_http_path_decode_rejects_malformed),
        cmocka_unit_test(test_fv_http_path_decode_rejects_relative),
        cmocka_unit_test(test_fv_http_path_decode_limit),
        cmocka_unit_test(test_fv_http_query_parse_basic),
        cmocka_unit_test(test_fv_http_query_parse_duplicate_first_wins),
        cmocka_unit_test(test_fv_http_query_parse_rejects_nul),
        cmocka_unit_test(test_fv_http_query_parse_too_many),
        cmocka_unit_test(test_fv_http_query_parse_nomem),
        cmocka_unit_test(test_fv_http_redirect_url_build_host),
        cmocka_unit_test(test_fv_http_redirect_url_build_public_url),
        cmocka_unit_test(test_fv_http_redirect_url_build_rejects_bad_host),
        cmocka_unit_test(test_fv_http_redirect_url_build_escapes_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
