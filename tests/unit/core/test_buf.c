/* Unit tests for core buffers, strings, integer parsing, errors and the allocation hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

static void test_fv_buf_append_grows(void **state)
{
    (void)state;
    struct fv_buf b;
    fv_buf_init(&b, 1 << 20);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(fv_buf_appendf(&b, "%04d", i), FV_OK);
    assert_int_equal(b.len, 4000);
    assert_memory_equal(b.p + 3996, "0999", 4);
    assert_int_equal(b.p[b.len], '\0');
    fv_buf_release(&b);
}

static void test_fv_buf_append_over_max(void **state)
{
    (void)state;
    struct fv_buf b;
    fv_buf_init(&b, 8);
    assert_int_equal(fv_buf_append_cstr(&b, "12345678"), FV_OK);
    assert_int_equal(fv_buf_append_cstr(&b, "9"), FV_E_LIMIT);
    assert_int_equal(b.len, 0); /* the buffer freed itself */
    assert_null(b.p);
}

static void test_fv_buf_appendf_long(void **state)
{
    (void)state;
    struct fv_buf b;
    char big[1000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    fv_buf_init(&b, 4096);
    assert_int_equal(fv_buf_appendf(&b, "<%s>", big), FV_OK);
    assert_int_equal(b.len, 1001);
    fv_buf_release(&b);
}

static void test_fv_buf_append_nomem(void **state)
{
    (void)state;
    struct fv_buf b;
    fv_buf_init(&b, 1024);
    fv_mem_fail_at(1, false);
    assert_int_equal(fv_buf_append_cstr(&b, "abc"), FV_E_NOMEM);
    fv_mem_fail_at(0, false);
    assert_null(b.p);
    assert_int_equal(fv_buf_append_cstr(&b, "abc"), FV_OK);
    size_t len;
    char *p = fv_buf_detach(&b, &len);
    assert_int_equal(len, 3);
    assert_string_equal(p, "abc");
    assert_null(b.p);
    fv_free(p);
}

static void test_fv_strlcpy_truncates(void **state)
{
    (void)state;
    char d[4];
    assert_int_equal(fv_strlcpy(d, "abc", sizeof(d)), FV_OK);
    assert_string_equal(d, "abc");
    assert_int_equal(fv_strlcpy(d, "abcd", sizeof(d)), FV_E_LIMIT);
    assert_string_equal(d, "abc");
}

static void test_fv_parse_i64_bounds(void **state)
{
    (void)state;
    int64_t v;
    uint64_t u;
    assert_int_equal(fv_parse_i64("9223372036854775807", 19, &v), FV_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(fv_parse_i64("-9223372036854775808", 20, &v), FV_OK);
    assert_true(v == INT64_MIN);
    assert_int_equal(fv_parse_i64("9223372036854775808", 19, &v), FV_E_INVALID);
    assert_int_equal(fv_parse_i64("12a", 3, &v), FV_E_INVALID);
    assert_int_equal(fv_parse_i64("", 0, &v), FV_E_INVALID);
    assert_int_equal(fv_parse_i64("-", 1, &v), FV_E_INVALID);
    assert_int_equal(fv_parse_u64("18446744073709551615", 20, &u), FV_OK);
    assert_true(u == UINT64_MAX);
    assert_int_equal(fv_parse_u64("18446744073709551616", 20, &u), FV_E_INVALID);
    assert_int_equal(fv_parse_u64("-1", 2, &u), FV_E_INVALID);
}

static void test_fv_error_set_keeps_first(void **state)
{
    (void)state;
    struct fv_error e;
    fv_error_init(&e);
    assert_int_equal(fv_error_set(&e, FV_E_INVALID, 3, "first '%s'", "x"), FV_E_INVALID);
    assert_int_equal(fv_error_set(&e, FV_E_LIMIT, 9, "second"), FV_E_LIMIT);
    assert_int_equal(e.code, FV_E_INVALID);
    assert_int_equal(e.pos, 3);
    assert_string_equal(e.msg, "first 'x'");
    assert_int_equal(fv_error_set(NULL, FV_E_IO, 0, "ignored"), FV_E_IO);
}

/* Every error code has a name, and docs/errors.md documents each name. */
static void test_fv_strerror_all_documented(void **state)
{
    (void)state;
    const char *src = getenv("FV_SOURCE_DIR");
    static char text[1 << 16];
    size_t n = 0;
    if (src) {
        char path[1024];
        (void)snprintf(path, sizeof(path), "%s/docs/errors.md", src);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    for (int rc = 0; rc >= -48; rc--) {
        const char *name = fv_strerror(rc);
        if (strcmp(name, "FV_E_UNKNOWN") == 0)
            continue; /* gap in the numbering */
        assert_non_null(fv_err_describe(rc));
        if (src && !strstr(text, name))
            fail_msg("docs/errors.md does not document %s", name);
    }
    assert_string_equal(fv_strerror(-1000), "FV_E_UNKNOWN");
}

static void test_fv_ct_equal(void **state)
{
    (void)state;
    assert_true(fv_ct_equal("abcd", "abcd", 4));
    assert_false(fv_ct_equal("abcd", "abce", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_buf_append_grows),
        cmocka_unit_test(test_fv_buf_append_over_max),
        cmocka_unit_test(test_fv_buf_appendf_long),
        cmocka_unit_test(test_fv_buf_append_nomem),
        cmocka_unit_test(test_fv_strlcpy_truncates),
        cmocka_unit_test(test_fv_parse_i64_bounds),
        cmocka_unit_test(test_fv_error_set_keeps_first),
        cmocka_unit_test(test_fv_strerror_all_documented),
        cmocka_unit_test(test_fv_ct_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
