/*
 * Fuzz target for app definitions: parse any bytes as an app; when they
 * parse, serialise, parse the result again and require an equal app
 * (round trip), and a second serialisation equal to the first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_int.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fv_app *a = NULL, *b = NULL;
    struct fv_error err;
    json_t *j1 = NULL, *j2 = NULL;
    char *text = NULL;

    fv_error_init(&err);
    int rc = fv_model_app_parse((const char *)data, size, &a, &err);
    if (rc != FV_OK) {
        if (rc != FV_E_INVALID)
            abort();
        check_msg(&err);
        return 0;
    }
    j1 = fv_model_app_to_json(a);
    if (j1 == NULL)
        abort();
    text = json_dumps(j1, JSON_COMPACT);
    if (text == NULL)
        abort();
    fv_error_init(&err);
    if (fv_model_app_parse(text, strlen(text), &b, &err) != FV_OK)
        abort();
    if (!fv_model_app_equal(a, b))
        abort();
    j2 = fv_model_app_to_json(b);
    if (j2 == NULL || !json_equal(j1, j2))
        abort();
    json_decref(j1);
    json_decref(j2);
    free(text); /* json_dumps uses jansson's default allocator here */
    fv_model_app_free(a);
    fv_model_app_free(b);
    return 0;
}
