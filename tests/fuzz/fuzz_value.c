/*
 * Fuzz target for field values. The first input byte picks a field of the
 * model test app (Patient and Visit forms), the rest is the value: once as a
 * CSV cell (fv_model_value_parse_text) and once as JSON (fv_model_value_parse).
 * Invariants (abort on breach):
 *  1. an accepted value formats to "Out" JSON that is accepted again as
 *     "In" and gives the same columns (read-modify-write is lossless);
 *  2. errors carry a printable ASCII message and leave no columns behind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/model/model_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fv_app *fuzz_app;

static void check_err(int rc, const struct fv_error *err, const struct fv_sqlval *cols)
{
    if (rc != FV_E_VALIDATION && rc != FV_E_TOO_MANY_DIGITS && rc != FV_E_DECIMAL_FORMAT)
        abort();
    if (err->msg[0] == '\0')
        abort();
    for (const char *p = err->msg; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e)
            abort();
    for (size_t i = 0; i < FV_MODEL_MAX_COLS; i++)
        if (cols[i].type != FV_SQL_NULL || cols[i].s != NULL)
            abort();
}

static bool sqlval_eq(const struct fv_sqlval *a, const struct fv_sqlval *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == FV_SQL_INT)
        return a->i == b->i;
    if (a->type == FV_SQL_TEXT)
        return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
    return true;
}

static void round_trip(const struct fv_field *f, const struct fv_sqlval *cols)
{
    struct fv_sqlval again[FV_MODEL_MAX_COLS];
    struct fv_error err;
    size_t n = fv_model_field_value_ncols(f);
    bool all_null = true;

    for (size_t i = 0; i < n; i++)
        all_null = all_null && cols[i].type == FV_SQL_NULL;
    json_t *out = fv_model_value_format(fuzz_app, f, cols, NULL);
    if (out == NULL)
        abort();
    fv_error_init(&err);
    if (fv_model_value_parse(fuzz_app, f, out, again, &err) != FV_OK)
        abort();
    /* an unset decision reads back as false: the only lossy case */
    if (!(all_null && f->type == FV_FIELD_DECISION))
        for (size_t i = 0; i < n; i++)
            if (!sqlval_eq(&cols[i], &again[i]))
                abort();
    for (size_t i = 0; i < n; i++)
        fv_model_sqlval_release(&again[i]);
    json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_sqlval cols[FV_MODEL_MAX_COLS];
    struct fv_error err;

    if (fuzz_app == NULL) {
        fuzz_app = fixture_parse(fixture_app, &err);
        if (fuzz_app == NULL)
            abort();
    }
    if (size == 0)
        return 0;
    size_t total = fuzz_app->forms[0].n_fields + fuzz_app->forms[1].n_fields;
    size_t k = data[0] % total;
    const struct fv_field *f = k < fuzz_app->forms[0].n_fields
                                   ? &fuzz_app->forms[0].fields[k]
                                   : &fuzz_app->forms[1].fields[k - fuzz_app->forms[0].n_fields];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    memset(cols, 0, sizeof(cols));
    fv_error_init(&err);
    int rc = fv_model_value_parse_text(fuzz_app, f, text, len, cols, &err);
    if (rc == FV_OK) {
        round_trip(f, cols);
        for (size_t i = 0; i < FV_MODEL_MAX_COLS; i++)
            fv_model_sqlval_release(&cols[i]);
    } else {
        check_err(rc, &err, cols);
    }

    json_t *in = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (in != NULL) {
        memset(cols, 0, sizeof(cols));
        fv_error_init(&err);
        rc = fv_model_value_parse(fuzz_app, f, in, cols, &err);
        if (rc == FV_OK) {
            round_trip(f, cols);
            for (size_t i = 0; i < FV_MODEL_MAX_COLS; i++)
                fv_model_sqlval_release(&cols[i]);
        } else {
            check_err(rc, &err, cols);
        }
        json_decref(in);
    }
    return 0;
}
