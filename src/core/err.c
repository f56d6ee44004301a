/* core/err.c: error names, descriptions, fv_error and assertions. */
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

struct err_row {
    int code;
    const char *name;
    const char *describe;
};

/* Keep in sync with enum fv_err and docs/errors.md (a unit test checks both). */
static const struct err_row err_rows[] = {
    {FV_OK, "FV_OK", "success"},
    {FV_E_NOMEM, "FV_E_NOMEM", "out of memory"},
    {FV_E_IO, "FV_E_IO", "input/output error"},
    {FV_E_CORRUPT, "FV_E_CORRUPT", "stored data is corrupt"},
    {FV_E_NOT_FOUND, "FV_E_NOT_FOUND", "not found"},
    {FV_E_INVALID, "FV_E_INVALID", "invalid input"},
    {FV_E_DENIED, "FV_E_DENIED", "permission denied"},
    {FV_E_LIMIT, "FV_E_LIMIT", "limit exceeded"},
    {FV_E_CONFLICT, "FV_E_CONFLICT", "conflict with existing data"},
    {FV_E_KEY_UNAVAILABLE, "FV_E_KEY_UNAVAILABLE", "key unavailable"},
    {FV_E_BUSY, "FV_E_BUSY", "resource busy, retry later"},
    {FV_E_INTERNAL, "FV_E_INTERNAL", "internal error"},
    {FV_E_NO_ROUTE, "FV_E_NO_ROUTE", "no api matches the url"},
    {FV_E_METHOD, "FV_E_METHOD", "http method not allowed for this url"},
    {FV_E_AUTH, "FV_E_AUTH", "invalid or expired oauth token"},
    {FV_E_SCOPE, "FV_E_SCOPE", "token lacks the scope this api needs"},
    {FV_E_PARAM, "FV_E_PARAM", "mandatory parameter missing or invalid"},
    {FV_E_UNKNOWN_PARAM, "FV_E_UNKNOWN_PARAM", "unsupported request parameter"},
    {FV_E_BODY, "FV_E_BODY", "request body missing or malformed"},
    {FV_E_BODY_TOO_LARGE, "FV_E_BODY_TOO_LARGE", "request body too large"},
    {FV_E_NO_OWNER, "FV_E_NO_OWNER", "no such account owner"},
    {FV_E_NO_APP, "FV_E_NO_APP", "no such application"},
    {FV_E_NO_FORM, "FV_E_NO_FORM", "no such form"},
    {FV_E_NO_REPORT, "FV_E_NO_REPORT", "no such report"},
    {FV_E_NO_RECORD, "FV_E_NO_RECORD", "no record with the given id"},
    {FV_E_NO_MATCH, "FV_E_NO_MATCH", "no records match the criteria"},
    {FV_E_NO_FIELD, "FV_E_NO_FIELD", "no such field"},
    {FV_E_VALIDATION, "FV_E_VALIDATION", "data validation failed"},
    {FV_E_TOO_MANY_RECORDS, "FV_E_TOO_MANY_RECORDS", "more than 200 records in one request"},
    {FV_E_TOO_MANY_MATCHES, "FV_E_TOO_MANY_MATCHES",
     "more than 200 records match; use process_until_limit"},
    {FV_E_FETCH_LIMIT, "FV_E_FETCH_LIMIT", "more records requested than one fetch allows"},
    {FV_E_CRITERIA, "FV_E_CRITERIA", "invalid criteria"},
    {FV_E_CURSOR, "FV_E_CURSOR", "invalid record_cursor"},
    {FV_E_TOO_MANY_DIGITS, "FV_E_TOO_MANY_DIGITS", "number has too many digits"},
    {FV_E_DECIMAL_FORMAT, "FV_E_DECIMAL_FORMAT", "value does not fit the decimal format"},
    {FV_E_READ_ONLY, "FV_E_READ_ONLY", "read-only"},
    {FV_E_EMPTY_REPORT, "FV_E_EMPTY_REPORT", "no records in the report"},
    {FV_E_NO_FORMS, "FV_E_NO_FORMS", "the application has no forms"},
    {FV_E_NO_REPORTS, "FV_E_NO_REPORTS", "the application has no reports"},
    {FV_E_NO_RESULT, "FV_E_NO_RESULT", "no records match the criteria"},
    {FV_E_NO_PAGES, "FV_E_NO_PAGES", "the application has no pages"},
};

static const struct err_row *err_find(int rc)
{
    for (size_t i = 0; i < FV_ARRAY_LEN(err_rows); i++)
        if (err_rows[i].code == rc)
            return &err_rows[i];
    return NULL;
}

const char *fv_strerror(int rc)
{
    const struct err_row *r = err_find(rc);
    return r ? r->name : "FV_E_UNKNOWN";
}

const char *fv_err_describe(int rc)
{
    const struct err_row *r = err_find(rc);
    return r ? r->describe : "unknown error";
}

void fv_error_init(struct fv_error *e)
{
    if (!e)
        return;
    e->code = FV_OK;
    e->pos = SIZE_MAX;
    e->msg[0] = '\0';
}

int fv_error_set(struct fv_error *e, int code, size_t pos, const char *fmt, ...)
{
    if (!e || e->code != FV_OK)
        return code;
    e->code = code;
    e->pos = pos;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        if (n < 0)
            e->msg[0] = '\0';
    } else {
        (void)fv_strlcpy(e->msg, fv_err_describe(code), sizeof(e->msg));
    }
    return code;
}

_Noreturn void fv_assert_fail(const char *expr, const char *file, int line)
{
    (void)fprintf(stderr, "formvault: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
