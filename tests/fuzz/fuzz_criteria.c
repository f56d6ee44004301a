/*
 * Fuzz target for the criteria language: parse any bytes; when they parse,
 * dump the tree and compile it against both forms of the model test app.
 * Invariants checked (abort on breach):
 *  1. compiled SQL never contains a single quote, a semicolon or a comment
 *     (values are only ever bound parameters);
 *  2. the placeholders, numbered as SQLite numbers them ('?' is one more than
 *     the largest so far, '?N' is N), are exactly 1..n for n parameters, and
 *     a numbered one (the blind-index list) names a blind-index parameter;
 *  3. a failed parse or compile always carries a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/model/model_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Error messages are non-empty printable ASCII (never raw input bytes). */
static void check_msg(const struct fv_error *err)
{
    if (err->msg[0] == '\0')
        abort();
    for (const char *p = err->msg; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e)
            abort();
}

static struct fv_app *fuzz_app;

static void check_where(const struct fv_sql_where *w)
{
    size_t max = 0;
    bool *seen = calloc(w->n_params + 1, sizeof(*seen));
    if (seen == NULL)
        abort();
    for (size_t i = 0; i < w->sql.len; i++) {
        char c = w->sql.p[i];
        if (c == '\'' || c == ';' || (c == '-' && i + 1 < w->sql.len && w->sql.p[i + 1] == '-'))
            abort();
        if (c != '?')
            continue;
        size_t n = 0;
        bool numbered = false;
        while (i + 1 < w->sql.len && w->sql.p[i + 1] >= '0' && w->sql.p[i + 1] <= '9') {
            n = n * 10 + (size_t)(w->sql.p[++i] - '0');
            numbered = true;
            if (n > w->n_params)
                abort();
        }
        if (!numbered)
            n = max + 1;
        if (n == 0 || n > w->n_params)
            abort();
        if (numbered && w->params[n - 1].type != FV_SQL_SECRET)
            abort();
        seen[n] = true;
        if (n > max)
            max = n;
    }
    for (size_t k = 1; k <= w->n_params; k++)
        if (!seen[k])
            abort();
    free(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_criteria *c = NULL;
    struct fv_error err;

    if (fuzz_app == NULL) {
        fuzz_app = fixture_parse(fixture_app, &err);
        if (fuzz_app == NULL)
            abort();
    }
    fv_error_init(&err);
    int rc = fv_model_criteria_parse((const char *)data, size, &c, &err);
    if (rc != FV_OK) {
        if (rc != FV_E_CRITERIA || err.pos > size)
            abort();
        check_msg(&err);
        return 0;
    }
    struct fv_buf dump;
    fv_buf_init(&dump, 1 << 20);
    if (fv_model_criteria_dump(c, &dump) != FV_OK)
        abort();
    fv_buf_release(&dump);

    for (size_t i = 0; i < fuzz_app->n_forms; i++) {
        struct fv_sql_where w;
        fv_model_where_init(&w);
        fv_error_init(&err);
        rc = fv_model_criteria_compile(c, fuzz_app, &fuzz_app->forms[i], &w, &err);
        if (rc == FV_OK)
            check_where(&w);
        else if (rc != FV_E_CRITERIA && rc != FV_E_LIMIT)
            abort();
        else
            check_msg(&err);
        fv_model_where_release(&w);
    }
    fv_model_criteria_free(c);
    return 0;
}
