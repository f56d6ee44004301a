/* Unit tests for api/error_map.c: the one fv_err -> HTTP status + Creator code table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "api/api.h"

struct expect {
    int rc;
    int status;
    int code;
};

/* Pairs pinned by creator-api.md section 7 and docs/api.md. */
static const struct expect expected[] = {
    {FV_OK, 200, 3000},
    {FV_E_NO_ROUTE, 404, 1000},
    {FV_E_METHOD, 405, 1020},
    {FV_E_AUTH, 401, 1030},
    {FV_E_SCOPE, 401, 2945},
    {FV_E_DENIED, 403, 2933},
    {FV_E_NO_APP, 404, 2892},
    {FV_E_NO_FORM, 404, 2893},
    {FV_E_NO_REPORT, 404, 2894},
    {FV_E_NO_RECORD, 200, 3190},
    {FV_E_NO_MATCH, 404, 3100},
    {FV_E_BODY, 400, 3020},
    {FV_E_BODY_TOO_LARGE, 413, 3020},
    {FV_E_TOO_MANY_RECORDS, 200, 3950},
    {FV_E_TOO_MANY_MATCHES, 200, 3960},
    {FV_E_FETCH_LIMIT, 200, 3970},
    {FV_E_TOO_MANY_DIGITS, 200, 8011},
    {FV_E_DECIMAL_FORMAT, 200, 8012},
    {FV_E_EMPTY_REPORT, 200, 9220},
    {FV_E_NO_RESULT, 200, 9280},
    {FV_E_UNKNOWN_PARAM, 401, 1060},
    {FV_E_NOMEM, 500, 2930},
    {FV_E_IO, 500, 2930},
};

static void test_fv_api_error_map_pinned(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        int status = 0, code = 0;
        fv_api_error_map(expected[i].rc, &status, &code);
        if (status != expected[i].status || code != expected[i].code)
            fail_msg("%s maps to %d/%d, want %d/%d", fv_strerror(expected[i].rc), status, code,
                     expected[i].status, expected[i].code);
    }
}

/* Every error code maps to a real HTTP status, and only success maps to 3000. */
static void test_fv_api_error_map_total(void **state)
{
    (void)state;
    for (int rc = -100; rc <= 0; rc++) {
        int status = 0, code = 0;
        fv_api_error_map(rc, &status, &code);
        assert_true(status >= 200 && status <= 599);
        if (rc != FV_OK)
            assert_int_not_equal(code, 3000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_api_error_map_pinned),
        cmocka_unit_test(test_fv_api_error_map_total),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
