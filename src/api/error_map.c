/*
 * api/error_map.c: the one table mapping enum fv_err to HTTP status and
 * Creator `code` (STYLE 13; creator-api.md section 7; docs/api.md lists the
 * choices made where Creator is unconfirmed). Handlers never choose a status.
 */
#include "api/api.h"
#include "api/api_int.h"

struct map_row {
    int rc;
    int status;
    int code;
};

static const struct map_row map_rows[] = {
    {FV_OK, 200, 3000},
    {FV_E_NO_ROUTE, 404, 1000},
    {FV_E_PARAM, 401, 1000},
    {FV_E_CURSOR, 400, 1000},
    {FV_E_METHOD, 405, 1020},
    {FV_E_AUTH, 401, 1030},
    {FV_E_NO_OWNER, 404, 1040},
    {FV_E_UNKNOWN_PARAM, 401, 1060},
    {FV_E_NO_APP, 404, 2892},
    {FV_E_NO_FORM, 404, 2893},
    {FV_E_NO_REPORT, 404, 2894},
    {FV_E_DENIED, 403, 2933},
    {FV_E_SCOPE, 401, 2945},
    {FV_E_BODY, 400, 3020},
    {FV_E_BODY_TOO_LARGE, 413, 3020},
    {FV_E_VALIDATION, 200, 3001},
    {FV_E_CONFLICT, 200, 3001},
    {FV_E_NO_FIELD, 400, 3710},
    {FV_E_NO_MATCH, 404, 3100},
    {FV_E_NO_RECORD, 200, 3190},
    {FV_E_CRITERIA, 400, 3330},
    {FV_E_NO_FORMS, 200, 3910},
    {FV_E_NO_PAGES, 200, 3920},
    {FV_E_NO_REPORTS, 200, 3930},
    {FV_E_TOO_MANY_RECORDS, 200, 3950},
    {FV_E_TOO_MANY_MATCHES, 200, 3960},
    {FV_E_FETCH_LIMIT, 200, 3970},
    {FV_E_TOO_MANY_DIGITS, 200, 8011},
    {FV_E_DECIMAL_FORMAT, 200, 8012},
    {FV_E_EMPTY_REPORT, 200, 9220},
    {FV_E_NO_RESULT, 200, 9280},
    {FV_E_INVALID, 400, 3020},
    {FV_E_LIMIT, 400, 3020},
    {FV_E_NOT_FOUND, 404, 1000},
    {FV_E_READ_ONLY, 503, 2930},
    {FV_E_BUSY, 503, 2930},
    {FV_E_KEY_UNAVAILABLE, 503, 2930},
};

void fv_api_error_map(int rc, int *ret_status, int *ret_creator_code)
{
    for (size_t i = 0; i < FV_ARRAY_LEN(map_rows); i++) {
        if (map_rows[i].rc == rc) {
            *ret_status = map_rows[i].status;
            *ret_creator_code = map_rows[i].code;
            return;
        }
    }
    /* FV_E_NOMEM, FV_E_IO, FV_E_CORRUPT, FV_E_INTERNAL and anything unmapped */
    *ret_status = 500;
    *ret_creator_code = 2930;
}

int fv_api_error_record_code(int rc)
{
    int status, code;
    fv_api_error_map(rc, &status, &code);
    /* Inside a per-record result only these codes exist (creator-api.md 5.1, 7). */
    if (code == 3000 || code == 8011 || code == 8012)
        return code;
    return 3001;
}
