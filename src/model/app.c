/*
 * model/app.c: app definitions (docs/app-format.md): parse and validate,
 * serialise back to canonical JSON, free, and look up by link name.
 *
 * Validation builds the app step by step; on any error the half-built app is
 * freed (every free function tolerates partly filled structs).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/model_int.h"

/* --------------------------------------------------------------- errors */

/*
 * jansson reports most allocation failures as json_error_out_of_memory, but
 * a failure in its lexer setup returns NULL with the error text left empty.
 */
static bool jansson_oom(const json_error_t *jerr)
{
    return json_error_code(jerr) == json_error_out_of_memory || jerr->text[0] == '\0';
}

static int perr(struct fv_error *e, const char *path, const char *fmt, ...) FV_PRINTF(3, 4);

/* "path: message" as FV_E_INVALID. */
static int perr(struct fv_error *e, const char *path, const char *fmt, ...)
{
    char msg[FV_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return fv_error_set(e, FV_E_INVALID, SIZE_MAX, "%s: %s", path, msg);
}

/*
 * True if s may be quoted in a message: short printable ASCII without quotes.
 * Messages stay ASCII, so truncation never splits a UTF-8 sequence.
 */
static bool ascii_word(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FV_MODEL_LINK_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '\'' || s[i] == '\\')
            return false;
    return true;
}

/* ----------------------------------------------------------------- free */

static void free_strv(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        fv_free(v[i]);
    fv_free(v);
}

static void field_release(struct fv_field *f)
{
    fv_free(f->display_name);
    free_strv(f->choices, f->n_choices);
    json_decref(f->default_value);
    fv_free(f->lookup_form);
    fv_free(f->lookup_display);
    fv_free(f->autonumber_prefix);
    memset(f, 0, sizeof(*f));
}

static void form_release(struct fv_form *form)
{
    if (form->fields != NULL)
        for (size_t i = 0; i < form->n_fields; i++)
            field_release(&form->fields[i]);
    fv_free(form->fields);
    fv_free(form->display_name);
    memset(form, 0, sizeof(*form));
}

static void report_release(struct fv_report *r)
{
    fv_free(r->display_name);
    free_strv(r->quick_view, r->n_quick_view);
    free_strv(r->detail_view, r->n_detail_view);
    fv_free(r->criteria);
    fv_free(r->sort_field);
    memset(r, 0, sizeof(*r));
}

void fv_model_app_free(struct fv_app *app)
{
    if (app == NULL)
        return;
    if (app->reports != NULL)
        for (size_t i = 0; i < app->n_reports; i++)
            report_release(&app->reports[i]);
    fv_free(app->reports);
    if (app->forms != NULL)
        for (size_t i = 0; i < app->n_forms; i++)
            form_release(&app->forms[i]);
    fv_free(app->forms);
    fv_free(app->display_name);
    fv_free(app->date_format);
    fv_free(app->time_zone);
    fv_free(app);
}

/* -------------------------------------------------------------- lookups */

const struct fv_form *fv_model_app_form(const struct fv_app *app, const char *link)
{
    if (app == NULL || link == NULL)
        return NULL;
    for (size_t i = 0; i < app->n_forms; i++)
        if (strcmp(app->forms[i].link_name, link) == 0)
            return &app->forms[i];
    return NULL;
}

const struct fv_report *fv_model_app_report(const struct fv_app *app, const char *link)
{
    if (app == NULL || link == NULL)
        return NULL;
    for (size_t i = 0; i < app->n_reports; i++)
        if (strcmp(app->reports[i].link_name, link) == 0)
            return &app->reports[i];
    return NULL;
}

const struct fv_field *fv_model_form_field(const struct fv_form *form, const char *link)
{
    if (form == NULL || link == NULL)
        return NULL;
    for (size_t i = 0; i < form->n_fields; i++)
        if (strcmp(form->fields[i].link_name, link) == 0)
            return &form->fields[i];
    return NULL;
}

const struct fv_field *fv_model_form_field_by_display(const struct fv_form *form,
                                                      const char *display)
{
    const struct fv_field *found = NULL;
    if (form == NULL || display == NULL)
        return NULL;
    for (size_t i = 0; i < form->n_fields; i++) {
        const char *d = form->fields[i].display_name;
        if (d != NULL && strcmp(d, display) == 0) {
            if (found != NULL)
                return NULL; /* ambiguous */
            found = &form->fields[i];
        }
    }
    return found;
}

/* ------------------------------------------------------- json accessors */

static int check_keys(const json_t *obj, const char *const *allowed, size_t n, const char *path,
                      struct fv_error *e)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok && fv_model_link_name_valid(key, strlen(key)))
            return perr(e, path, "unknown key '%s'", key);
        if (!ok) /* quoted only when it is a name: messages stay short ASCII */
            return perr(e, path, "unknown key");
    }
    return FV_OK;
}

/* Plain single-line text of at most max characters (names, choices). */
static bool plain_text_ok(const char *s, size_t len, size_t max)
{
    size_t chars;
    if (!fv_model_utf8_check(s, len, &chars, NULL) || chars > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/*
 * Optional string member: *ret is a new copy, or NULL if absent. Must be
 * 1..max characters of plain text.
 */
static int get_text(const json_t *obj, const char *key, const char *path, size_t max, char **ret,
                    struct fv_error *e)
{
    const json_t *v = json_object_get(obj, key);
    *ret = NULL;
    if (v == NULL)
        return FV_OK;
    if (!json_is_string(v))
        return perr(e, path, "'%s' must be a string", key);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 || !plain_text_ok(s, len, max))
        return perr(e, path, "'%s' must be 1 to %zu characters of text", key, max);
    *ret = fv_strndup(s, len);
    return *ret == NULL ? FV_E_NOMEM : FV_OK;
}

static int get_link(const json_t *obj, const char *key, const char *path, char *out,
                    struct fv_error *e)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return perr(e, path, "missing '%s'", key);
    if (!json_is_string(v) ||
        !fv_model_link_name_valid(json_string_value(v), json_string_length(v)))
        return perr(e, path, "'%s' must be a link name ([A-Za-z][A-Za-z0-9_]*, at most %d bytes)",
                    key, FV_MODEL_LINK_MAX);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return FV_OK;
}

static int get_bool(const json_t *obj, const char *key, const char *path, bool *ret,
                    struct fv_error *e)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return FV_OK;
    if (!json_is_boolean(v))
        return perr(e, path, "'%s' must be true or false", key);
    *ret = json_is_true(v);
    return FV_OK;
}

static int get_int(const json_t *obj, const char *key, const char *path, int64_t min, int64_t max,
                   int64_t *ret, struct fv_error *e)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return FV_OK;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return perr(e, path, "'%s' must be an integer from %lld to %lld", key, (long long)min,
                    (long long)max);
    *ret = (int64_t)json_integer_value(v);
    return FV_OK;
}

static bool json_depth_ok(const json_t *j, int depth)
{
    if (depth > FV_MODEL_APP_MAX_DEPTH)
        return false;
    if (json_is_object(j)) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)j, key, v)
        {
            if (!json_depth_ok(v, depth + 1))
                return false;
        }
    } else if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            if (!json_depth_ok(json_array_get(j, i), depth + 1))
                return false;
    }
    return true;
}

/* --------------------------------------------------------------- fields */

static bool type_allows_unique(const struct fv_field *f)
{
    switch (f->type) {
    case FV_FIELD_SINGLE_LINE:
    case FV_FIELD_EMAIL:
    case FV_FIELD_PHONE:
    case FV_FIELD_NUMBER:
    case FV_FIELD_DECIMAL:
    case FV_FIELD_PERCENT:
    case FV_FIELD_CURRENCY:
    case FV_FIELD_DATE:
    case FV_FIELD_DATETIME:
    case FV_FIELD_TIME:
    case FV_FIELD_DROPDOWN:
    case FV_FIELD_RADIO:
        return true;
    case FV_FIELD_LOOKUP:
        return !f->lookup_multi;
    default:
        return false;
    }
}

static int parse_choices(const json_t *v, struct fv_field *f, const char *path, struct fv_error *e)
{
    size_t n;
    if (!json_is_array(v) || (n = json_array_size(v)) == 0 || n > FV_MODEL_MAX_CHOICES)
        return perr(e, path, "'choices' must be a list of 1 to %d strings", FV_MODEL_MAX_CHOICES);
    f->choices = fv_calloc(n, sizeof(char *));
    if (f->choices == NULL)
        return FV_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(v, i);
        if (!json_is_string(c) || json_string_length(c) == 0 ||
            !plain_text_ok(json_string_value(c), json_string_length(c), FV_MODEL_NAME_MAX))
            return perr(e, path, "choices[%zu] must be 1 to %d characters of text", i,
                        FV_MODEL_NAME_MAX);
        for (size_t k = 0; k < i; k++)
            if (strcmp(f->choices[k], json_string_value(c)) == 0)
                return perr(e, path, "choices[%zu] repeats an earlier choice", i);
        f->choices[i] = fv_strndup(json_string_value(c), json_string_length(c));
        if (f->choices[i] == NULL)
            return FV_E_NOMEM;
        f->n_choices = i + 1;
    }
    return FV_OK;
}

static int parse_lookup(const json_t *v, struct fv_field *f, const char *path, struct fv_error *e)
{
    static const char *const keys[] = {"form", "display_field", "multi"};
    char link[FV_MODEL_LINK_MAX + 1];
    char sub[192];
    int rc;

    (void)snprintf(sub, sizeof(sub), "%s.lookup", path);
    if (!json_is_object(v))
        return perr(e, path, "'lookup' must be an object");
    rc = check_keys(v, keys, FV_ARRAY_LEN(keys), sub, e);
    if (rc == FV_OK)
        rc = get_link(v, "form", sub, link, e);
    if (rc == FV_OK && (f->lookup_form = fv_strdup(link)) == NULL)
        rc = FV_E_NOMEM;
    if (rc == FV_OK)
        rc = get_link(v, "display_field", sub, link, e);
    if (rc == FV_OK && (f->lookup_display = fv_strdup(link)) == NULL)
        rc = FV_E_NOMEM;
    if (rc == FV_OK)
        rc = get_bool(v, "multi", sub, &f->lookup_multi, e);
    return rc;
}

static int parse_field(const struct fv_app *app, const json_t *j, struct fv_field *f,
                       const char *path, struct fv_error *e)
{
    static const char *const keys[] = {"link_name", "display_name", "type",
                                       "required",  "unique",       "max_length",
                                       "choices",   "default",      "decimal_places",
                                       "lookup",    "prefix",       "start",
                                       "encrypt",   "pii",          "contains_health_info"};
    int rc;
    int64_t iv;
    const json_t *v;
    char sub[192];

    if (!json_is_object(j))
        return perr(e, path, "expected an object");
    rc = check_keys(j, keys, FV_ARRAY_LEN(keys), path, e);
    if (rc == FV_OK)
        rc = get_link(j, "link_name", path, f->link_name, e);
    if (rc != FV_OK)
        return rc;
    if (fv_model_name_reserved(f->link_name))
        return perr(e, path, "link name '%s' is reserved for a system field", f->link_name);
    rc = get_text(j, "display_name", path, FV_MODEL_NAME_MAX, &f->display_name, e);
    if (rc == FV_OK && f->display_name == NULL &&
        (f->display_name = fv_strdup(f->link_name)) == NULL)
        rc = FV_E_NOMEM;
    if (rc != FV_OK)
        return rc;

    v = json_object_get(j, "type");
    (void)snprintf(sub, sizeof(sub), "%s.type", path);
    if (v == NULL)
        return perr(e, path, "missing 'type'");
    if (!json_is_string(v))
        return perr(e, sub, "must be a string");
    f->type = fv_model_type_from_name(json_string_value(v));
    if (f->type == FV_FIELD__COUNT || strlen(json_string_value(v)) != json_string_length(v)) {
        if (fv_model_link_name_valid(json_string_value(v), json_string_length(v)))
            return perr(e, sub, "unknown type '%s'", json_string_value(v));
        return perr(e, sub, "unknown type");
    }
    const char *tn = fv_model_type_name(f->type);

    rc = get_bool(j, "required", path, &f->required, e);
    if (rc == FV_OK)
        rc = get_bool(j, "unique", path, &f->unique, e);
    if (rc == FV_OK)
        rc = get_bool(j, "encrypt", path, &f->encrypt, e);
    if (rc == FV_OK)
        rc = get_bool(j, "pii", path, &f->pii, e);
    if (rc == FV_OK)
        rc = get_bool(j, "contains_health_info", path, &f->contains_health_info, e);
    if (rc != FV_OK)
        return rc;

    if (json_object_get(j, "lookup") != NULL) {
        if (f->type != FV_FIELD_LOOKUP)
            return perr(e, path, "'lookup' is only for lookup fields, not %s", tn);
        rc = parse_lookup(json_object_get(j, "lookup"), f, path, e);
        if (rc != FV_OK)
            return rc;
    } else if (f->type == FV_FIELD_LOOKUP) {
        return perr(e, path, "lookup fields need 'lookup'");
    }

    if (f->encrypt && !fv_model_type_can_encrypt(f->type))
        return perr(e, path, "'encrypt' is not allowed for %s fields", tn);
    if (f->required && f->type == FV_FIELD_AUTONUMBER)
        return perr(e, path, "'required' is not allowed for autonumber fields");
    if (f->unique && !type_allows_unique(f))
        return perr(e, path, "'unique' is not allowed for %s%s fields",
                    f->type == FV_FIELD_LOOKUP ? "multi " : "", tn);

    if (json_object_get(j, "max_length") != NULL) {
        if (!fv_model_type_has_max_length(f->type))
            return perr(e, path, "'max_length' is not allowed for %s fields", tn);
        iv = 0;
        rc = get_int(j, "max_length", path, 1, fv_model_type_default_max_length(f->type), &iv, e);
        if (rc != FV_OK)
            return rc;
        f->max_length = (int)iv;
    }

    v = json_object_get(j, "choices");
    if (v != NULL && !fv_model_type_is_choice(f->type))
        return perr(e, path, "'choices' is not allowed for %s fields", tn);
    if (v == NULL && fv_model_type_is_choice(f->type))
        return perr(e, path, "%s fields need 'choices'", tn);
    if (v != NULL && (rc = parse_choices(v, f, path, e)) != FV_OK)
        return rc;

    if (fv_model_type_is_scaled(f->type)) {
        iv = 2;
        rc = get_int(j, "decimal_places", path, 0, 9, &iv, e);
        if (rc != FV_OK)
            return rc;
        f->decimal_places = (int)iv;
    } else if (json_object_get(j, "decimal_places") != NULL) {
        return perr(e, path, "'decimal_places' is not allowed for %s fields", tn);
    }

    if (f->type == FV_FIELD_AUTONUMBER) {
        v = json_object_get(j, "prefix");
        if (v != NULL &&
            (!json_is_string(v) || json_string_length(v) == 0 ||
             !plain_text_ok(json_string_value(v), json_string_length(v), FV_MODEL_PREFIX_MAX)))
            return perr(e, path, "'prefix' must be 1 to %d characters of text",
                        FV_MODEL_PREFIX_MAX);
        if (v != NULL && (f->autonumber_prefix =
                              fv_strndup(json_string_value(v), json_string_length(v))) == NULL)
            return FV_E_NOMEM;
        iv = 1;
        rc = get_int(j, "start", path, 0, FV_MODEL_AUTONUMBER_MAX, &iv, e);
        if (rc != FV_OK)
            return rc;
        f->autonumber_start = iv;
    } else if (json_object_get(j, "prefix") != NULL || json_object_get(j, "start") != NULL) {
        return perr(e, path, "'prefix' and 'start' are only for autonumber fields");
    }

    v = json_object_get(j, "default");
    if (v != NULL && !json_is_null(v)) {
        struct fv_sqlval cols[FV_MODEL_MAX_COLS];
        struct fv_error verr;
        if (f->type == FV_FIELD_AUTONUMBER)
            return perr(e, path, "'default' is not allowed for autonumber fields");
        fv_error_init(&verr);
        rc = fv_model_value_parse(app, f, v, cols, &verr);
        if (rc == FV_E_NOMEM)
            return rc;
        if (rc != FV_OK)
            return perr(e, path, "'default' is not a valid value (%s)", verr.msg);
        for (size_t i = 0; i < fv_model_field_value_ncols(f); i++)
            fv_model_sqlval_release(&cols[i]);
        f->default_value = json_deep_copy(v);
        if (f->default_value == NULL)
            return FV_E_NOMEM;
    }
    return FV_OK;
}

struct colname {
    char name[FV_MODEL_LINK_MAX * 2 + 8];
    size_t field;
};

static int colname_cmp(const void *a, const void *b)
{
    return strcasecmp(((const struct colname *)a)->name, ((const struct colname *)b)->name);
}

/*
 * Two fields may not map to the same SQL column: "c_A__first_name" of a name
 * field A equals the column of a field named "A__first_name". SQLite ignores
 * ASCII case in identifiers, so neither do we.
 */
static int check_columns(const struct fv_form *form, const char *path, struct fv_error *e)
{
    size_t total = 0, k = 0;
    struct colname *cols;
    int rc = FV_OK;

    for (size_t i = 0; i < form->n_fields; i++)
        total += fv_model_field_ncols(&form->fields[i]);
    cols = fv_calloc(total, sizeof(*cols));
    if (cols == NULL)
        return FV_E_NOMEM;
    for (size_t i = 0; i < form->n_fields; i++)
        for (size_t c = 0; c < fv_model_field_ncols(&form->fields[i]); c++, k++) {
            rc = fv_model_field_column(&form->fields[i], c, cols[k].name, sizeof(cols[k].name),
                                       NULL, NULL);
            FV_ASSERT(rc == FV_OK);
            cols[k].field = i;
        }
    qsort(cols, total, sizeof(*cols), colname_cmp);
    for (size_t i = 1; i < total; i++)
        if (strcasecmp(cols[i - 1].name, cols[i].name) == 0) {
            size_t a = cols[i - 1].field, b = cols[i].field;
            rc = perr(e, path, "fields '%s' and '%s' need the same column name '%s'",
                      form->fields[a < b ? a : b].link_name, form->fields[a < b ? b : a].link_name,
                      cols[i].name);
            break;
        }
    fv_free(cols);
    return rc;
}

static int parse_form(const struct fv_app *app, const json_t *j, struct fv_form *form,
                      const char *path, struct fv_error *e)
{
    static const char *const keys[] = {"link_name", "display_name", "fields"};
    char sub[160];
    const json_t *fields;
    size_t n;
    int rc;

    if (!json_is_object(j))
        return perr(e, path, "expected an object");
    rc = check_keys(j, keys, FV_ARRAY_LEN(keys), path, e);
    if (rc == FV_OK)
        rc = get_link(j, "link_name", path, form->link_name, e);
    if (rc == FV_OK)
        rc = get_text(j, "display_name", path, FV_MODEL_NAME_MAX, &form->display_name, e);
    if (rc == FV_OK && form->display_name == NULL &&
        (form->display_name = fv_strdup(form->link_name)) == NULL)
        rc = FV_E_NOMEM;
    if (rc != FV_OK)
        return rc;
    fields = json_object_get(j, "fields");
    if (fields == NULL)
        return perr(e, path, "missing 'fields'");
    if (!json_is_array(fields) || (n = json_array_size(fields)) == 0 || n > FV_MODEL_MAX_FIELDS)
        return perr(e, path, "'fields' must be a list of 1 to %d fields", FV_MODEL_MAX_FIELDS);
    form->fields = fv_calloc(n, sizeof(*form->fields));
    if (form->fields == NULL)
        return FV_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        (void)snprintf(sub, sizeof(sub), "%s.fields[%zu]", path, i);
        form->n_fields = i + 1;
        rc = parse_field(app, json_array_get(fields, i), &form->fields[i], sub, e);
        if (rc != FV_OK)
            return rc;
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(form->fields[k].link_name, form->fields[i].link_name) == 0)
                return perr(e, sub, "duplicate field link name '%s'", form->fields[i].link_name);
    }
    /* SQLite allows 2000 columns per table; 6 are system columns. */
    size_t ncols = 0;
    for (size_t i = 0; i < n; i++)
        ncols += fv_model_field_ncols(&form->fields[i]);
    if (ncols > FV_MODEL_MAX_COLUMNS)
        return perr(e, path,
                    "the fields need %zu columns; a form holds at most %d (name, url "
                    "and address fields use several)",
                    ncols, FV_MODEL_MAX_COLUMNS);
    return check_columns(form, path, e);
}

/* Lookup targets: the form exists and its display field shows as text. */
static int resolve_lookups(struct fv_app *app, struct fv_error *e)
{
    char path[160];
    for (size_t i = 0; i < app->n_forms; i++)
        for (size_t k = 0; k < app->forms[i].n_fields; k++) {
            struct fv_field *f = &app->forms[i].fields[k];
            if (f->type != FV_FIELD_LOOKUP)
                continue;
            (void)snprintf(path, sizeof(path), "forms[%zu].fields[%zu].lookup", i, k);
            const struct fv_form *t = fv_model_app_form(app, f->lookup_form);
            if (t == NULL)
                return perr(e, path, "no form '%s' in this app", f->lookup_form);
            const struct fv_field *d = fv_model_form_field(t, f->lookup_display);
            if (d == NULL)
                return perr(e, path, "form '%s' has no field '%s'", t->link_name,
                            f->lookup_display);
            /* an encrypted display field is shown decrypted (store/records.c) */
            if (fv_model_field_value_ncols(d) != 1 || fv_model_type_is_multi(d->type) ||
                d->type == FV_FIELD_LOOKUP)
                return perr(e, path, "field '%s' of type %s cannot be a display field",
                            d->link_name, fv_model_type_name(d->type));
            f->lookup_target = t;
        }
    return FV_OK;
}

/* ------------------------------------------------------------- reports */

/* A field of form or a system field usable in views and sort. */
static const struct fv_field *view_field(const struct fv_form *form, const char *s, bool *ret_sys)
{
    *ret_sys = fv_model_sysfield_from_name(s, strlen(s)) != FV_SYS_NONE;
    return fv_model_form_field(form, s);
}

static int parse_view(const json_t *v, const struct fv_form *form, const char *path,
                      const char *key, char ***ret, size_t *ret_n, struct fv_error *e)
{
    size_t n;
    char **list;
    if (!json_is_array(v) || (n = json_array_size(v)) == 0 || n > FV_MODEL_MAX_FIELDS + 5)
        return perr(e, path, "'%s' must be a non-empty list of field link names", key);
    list = fv_calloc(n, sizeof(char *));
    if (list == NULL)
        return FV_E_NOMEM;
    *ret = list;
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(v, i);
        bool sys;
        if (!json_is_string(s) ||
            !fv_model_link_name_valid(json_string_value(s), json_string_length(s)))
            return perr(e, path, "%s[%zu] must be a field link name", key, i);
        if (view_field(form, json_string_value(s), &sys) == NULL && !sys)
            return perr(e, path, "%s[%zu]: form '%s' has no field '%s'", key, i, form->link_name,
                        json_string_value(s));
        for (size_t k = 0; k < i; k++)
            if (strcmp(list[k], json_string_value(s)) == 0)
                return perr(e, path, "%s[%zu]: field '%s' appears twice", key, i,
                            json_string_value(s));
        list[i] = fv_strdup(json_string_value(s));
        if (list[i] == NULL)
            return FV_E_NOMEM;
        *ret_n = i + 1;
    }
    return FV_OK;
}

static int copy_view(char **src, size_t n, char ***ret, size_t *ret_n)
{
    char **list = fv_calloc(n, sizeof(char *));
    if (list == NULL)
        return FV_E_NOMEM;
    *ret = list;
    for (size_t i = 0; i < n; i++) {
        list[i] = fv_strdup(src[i]);
        if (list[i] == NULL)
            return FV_E_NOMEM;
        *ret_n = i + 1;
    }
    return FV_OK;
}

static int check_criteria(const struct fv_app *app, const struct fv_form *form, const char *text,
                          size_t len, const char *path, struct fv_error *e)
{
    struct fv_criteria *c = NULL;
    struct fv_sql_where w;
    struct fv_error cerr;
    int rc;

    fv_error_init(&cerr);
    fv_model_where_init(&w);
    rc = fv_model_criteria_parse(text, len, &c, &cerr);
    if (rc == FV_OK)
        rc = fv_model_criteria_compile(c, app, form, &w, &cerr);
    fv_model_where_release(&w);
    fv_model_criteria_free(c);
    if (rc == FV_E_NOMEM)
        return rc;
    if (rc != FV_OK)
        return perr(e, path, "%s", cerr.msg);
    return FV_OK;
}

static int parse_report(const struct fv_app *app, const json_t *j, struct fv_report *r,
                        const char *path, struct fv_error *e)
{
    static const char *const keys[] = {"link_name",  "display_name", "form",     "type",
                                       "quick_view", "detail_view",  "criteria", "sort"};
    char link[FV_MODEL_LINK_MAX + 1];
    char sub[160];
    const json_t *v;
    int rc;

    if (!json_is_object(j))
        return perr(e, path, "expected an object");
    rc = check_keys(j, keys, FV_ARRAY_LEN(keys), path, e);
    if (rc == FV_OK)
        rc = get_link(j, "link_name", path, r->link_name, e);
    if (rc == FV_OK)
        rc = get_text(j, "display_name", path, FV_MODEL_NAME_MAX, &r->display_name, e);
    if (rc == FV_OK && r->display_name == NULL &&
        (r->display_name = fv_strdup(r->link_name)) == NULL)
        rc = FV_E_NOMEM;
    if (rc == FV_OK)
        rc = get_link(j, "form", path, link, e);
    if (rc != FV_OK)
        return rc;
    r->form = fv_model_app_form(app, link);
    if (r->form == NULL)
        return perr(e, path, "no form '%s' in this app", link);

    r->type = FV_REPORT_LIST;
    v = json_object_get(j, "type");
    if (v != NULL) {
        if (json_is_string(v) && strcmp(json_string_value(v), "list") == 0)
            r->type = FV_REPORT_LIST;
        else if (json_is_string(v) && strcmp(json_string_value(v), "spreadsheet") == 0)
            r->type = FV_REPORT_SPREADSHEET;
        else
            return perr(e, path, "'type' must be \"list\" or \"spreadsheet\"");
    }

    v = json_object_get(j, "quick_view");
    if (v != NULL) {
        rc = parse_view(v, r->form, path, "quick_view", &r->quick_view, &r->n_quick_view, e);
    } else {
        /* default: every field of the form */
        r->quick_view = fv_calloc(r->form->n_fields, sizeof(char *));
        rc = r->quick_view == NULL ? FV_E_NOMEM : FV_OK;
        for (size_t i = 0; rc == FV_OK && i < r->form->n_fields; i++) {
            r->quick_view[i] = fv_strdup(r->form->fields[i].link_name);
            if (r->quick_view[i] == NULL)
                rc = FV_E_NOMEM;
            else
                r->n_quick_view = i + 1;
        }
    }
    if (rc != FV_OK)
        return rc;
    v = json_object_get(j, "detail_view");
    if (v != NULL)
        rc = parse_view(v, r->form, path, "detail_view", &r->detail_view, &r->n_detail_view, e);
    else
        rc = copy_view(r->quick_view, r->n_quick_view, &r->detail_view, &r->n_detail_view);
    if (rc != FV_OK)
        return rc;

    v = json_object_get(j, "criteria");
    if (v != NULL) {
        (void)snprintf(sub, sizeof(sub), "%s.criteria", path);
        if (!json_is_string(v) || json_string_length(v) == 0)
            return perr(e, sub, "must be a non-empty string");
        rc = check_criteria(app, r->form, json_string_value(v), json_string_length(v), sub, e);
        if (rc != FV_OK)
            return rc;
        r->criteria = fv_strndup(json_string_value(v), json_string_length(v));
        if (r->criteria == NULL)
            return FV_E_NOMEM;
    }

    v = json_object_get(j, "sort");
    if (v != NULL) {
        static const char *const skeys[] = {"field", "order"};
        bool sys;
        (void)snprintf(sub, sizeof(sub), "%s.sort", path);
        if (!json_is_object(v))
            return perr(e, sub, "must be an object");
        rc = check_keys(v, skeys, FV_ARRAY_LEN(skeys), sub, e);
        if (rc == FV_OK)
            rc = get_link(v, "field", sub, link, e);
        if (rc != FV_OK)
            return rc;
        const struct fv_field *f = view_field(r->form, link, &sys);
        if (f == NULL && !sys)
            return perr(e, sub, "form '%s' has no field '%s'", r->form->link_name, link);
        if (f != NULL && f->encrypt)
            return perr(e, sub,
                        "cannot sort by field '%s': it is encrypted (only == and != criteria "
                        "work on encrypted fields)",
                        link);
        if (f != NULL && (fv_model_field_ncols(f) != 1 || fv_model_type_is_multi(f->type) ||
                          (f->type == FV_FIELD_LOOKUP && f->lookup_multi)))
            return perr(e, sub, "cannot sort by field '%s' of type %s", link,
                        fv_model_type_name(f->type));
        const json_t *o = json_object_get(v, "order");
        if (o != NULL) {
            if (json_is_string(o) && strcmp(json_string_value(o), "asc") == 0)
                r->sort_desc = false;
            else if (json_is_string(o) && strcmp(json_string_value(o), "desc") == 0)
                r->sort_desc = true;
            else
                return perr(e, sub, "'order' must be \"asc\" or \"desc\"");
        }
        r->sort_field = fv_strdup(link);
        if (r->sort_field == NULL)
            return FV_E_NOMEM;
    }
    return FV_OK;
}

/* ------------------------------------------------------------------ app */

int fv_model_field_upgrade_check(const char *form_link, const struct fv_field *old,
                                 const struct fv_field *nf, struct fv_error *reterr)
{
    if (old->encrypt != nf->encrypt)
        return fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX,
                            "field '%s' of form '%s' cannot change 'encrypt' (stored values "
                            "would stay %s); add a new field instead",
                            nf->link_name, form_link, old->encrypt ? "encrypted" : "in clear");
    return FV_OK;
}

int fv_model_app_from_json(const json_t *root, struct fv_app **ret_app, struct fv_error *reterr)
{
    static const char *const keys[] = {"format",    "link_name", "display_name", "date_format",
                                       "time_zone", "forms",     "reports"};
    struct fv_app *app = NULL;
    const json_t *v;
    char path[64];
    size_t n;
    int rc = FV_OK;

    if (!json_is_object(root)) {
        rc = perr(reterr, "app", "expected a JSON object");
        goto out;
    }
    if (!json_depth_ok(root, 1)) {
        rc = perr(reterr, "app", "nested deeper than %d levels", FV_MODEL_APP_MAX_DEPTH);
        goto out;
    }
    app = fv_calloc(1, sizeof(*app));
    if (app == NULL) {
        rc = FV_E_NOMEM;
        goto out;
    }
    rc = check_keys(root, keys, FV_ARRAY_LEN(keys), "app", reterr);
    if (rc != FV_OK)
        goto out;
    v = json_object_get(root, "format");
    if (v == NULL || !json_is_integer(v) || json_integer_value(v) != 1) {
        rc = perr(reterr, "format", "%s", v == NULL ? "missing (must be 1)" : "must be 1");
        goto out;
    }
    rc = get_link(root, "link_name", "app", app->link_name, reterr);
    /*
     * Tables are "f_<app>__<form>": an app name without "__" that does not
     * end in "_" keeps that mapping one-to-one across the apps of a tenant
     * (app "a__b" + form "c" and app "a" + form "b__c" would share a table).
     */
    if (rc == FV_OK &&
        (strstr(app->link_name, "__") != NULL || app->link_name[strlen(app->link_name) - 1] == '_'))
        rc = perr(reterr, "app", "'link_name' must not contain '__' or end with '_'");
    if (rc == FV_OK)
        rc = get_text(root, "display_name", "app", FV_MODEL_NAME_MAX, &app->display_name, reterr);
    if (rc == FV_OK && app->display_name == NULL &&
        (app->display_name = fv_strdup(app->link_name)) == NULL)
        rc = FV_E_NOMEM;
    if (rc == FV_OK)
        rc = get_text(root, "date_format", "app", 16, &app->date_format, reterr);
    if (rc != FV_OK)
        goto out;
    if (app->date_format == NULL) {
        app->date_format = fv_strdup(FV_MODEL_DEFAULT_DATE_FORMAT);
        if (app->date_format == NULL) {
            rc = FV_E_NOMEM;
            goto out;
        }
    } else if (!fv_model_date_format_valid(app->date_format)) {
        if (ascii_word(app->date_format))
            rc = perr(reterr, "date_format", "unknown date format '%s'", app->date_format);
        else
            rc = perr(reterr, "date_format", "unknown date format");
        goto out;
    }
    rc = get_text(root, "time_zone", "app", 64, &app->time_zone, reterr);
    if (rc != FV_OK)
        goto out;
    if (app->time_zone == NULL && (app->time_zone = fv_strdup("UTC")) == NULL) {
        rc = FV_E_NOMEM;
        goto out;
    }

    v = json_object_get(root, "forms");
    if (v == NULL || !json_is_array(v) || (n = json_array_size(v)) == 0 || n > FV_MODEL_MAX_FORMS) {
        rc = perr(reterr, "forms", "must be a list of 1 to %d forms", FV_MODEL_MAX_FORMS);
        goto out;
    }
    app->forms = fv_calloc(n, sizeof(*app->forms));
    if (app->forms == NULL) {
        rc = FV_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        (void)snprintf(path, sizeof(path), "forms[%zu]", i);
        app->n_forms = i + 1;
        rc = parse_form(app, json_array_get(v, i), &app->forms[i], path, reterr);
        if (rc != FV_OK)
            goto out;
        for (size_t k = 0; k < i; k++)
            if (strcasecmp(app->forms[k].link_name, app->forms[i].link_name) == 0) {
                rc = perr(reterr, path, "duplicate form link name '%s'", app->forms[i].link_name);
                goto out;
            }
    }
    rc = resolve_lookups(app, reterr);
    if (rc != FV_OK)
        goto out;

    v = json_object_get(root, "reports");
    if (v != NULL) {
        if (!json_is_array(v) || (n = json_array_size(v)) > FV_MODEL_MAX_REPORTS) {
            rc = perr(reterr, "reports", "must be a list of at most %d reports",
                      FV_MODEL_MAX_REPORTS);
            goto out;
        }
        if (n > 0) {
            app->reports = fv_calloc(n, sizeof(*app->reports));
            if (app->reports == NULL) {
                rc = FV_E_NOMEM;
                goto out;
            }
        }
        for (size_t i = 0; i < n; i++) {
            (void)snprintf(path, sizeof(path), "reports[%zu]", i);
            app->n_reports = i + 1;
            rc = parse_report(app, json_array_get(v, i), &app->reports[i], path, reterr);
            if (rc != FV_OK)
                goto out;
            for (size_t k = 0; k < i; k++)
                if (strcasecmp(app->reports[k].link_name, app->reports[i].link_name) == 0) {
                    rc = perr(reterr, path, "duplicate report link name '%s'",
                              app->reports[i].link_name);
                    goto out;
                }
        }
    }
    *ret_app = app;
    app = NULL;
out:
    fv_model_app_free(app);
    return rc;
}

int fv_model_app_parse(const char *json, size_t len, struct fv_app **ret_app,
                       struct fv_error *reterr)
{
    json_error_t jerr;
    json_t *root;
    int rc;

    if (len > FV_MODEL_APP_MAX_BYTES)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "app definition is larger than %u bytes", FV_MODEL_APP_MAX_BYTES);
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (jansson_oom(&jerr))
            return FV_E_NOMEM;
        if (json_error_code(&jerr) == json_error_duplicate_key)
            return fv_error_set(reterr, FV_E_INVALID, (size_t)jerr.position,
                                "not valid JSON: duplicate key at line %d column %d", jerr.line,
                                jerr.column);
        /* jansson's text may quote the input; give the place only */
        return fv_error_set(reterr, FV_E_INVALID, (size_t)jerr.position,
                            "not valid JSON at line %d column %d", jerr.line, jerr.column);
    }
    rc = fv_model_app_from_json(root, ret_app, reterr);
    json_decref(root);
    return rc;
}

/* -------------------------------------------------------------- to_json */

static int set_new(json_t *o, const char *key, json_t *v)
{
    if (v == NULL)
        return FV_E_NOMEM;
    return json_object_set_new(o, key, v) == 0 ? FV_OK : FV_E_NOMEM;
}

static json_t *strv_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

static json_t *field_json(const struct fv_field *f)
{
    json_t *o = json_object();
    int rc = o == NULL ? FV_E_NOMEM : FV_OK;

    if (rc == FV_OK)
        rc = set_new(o, "link_name", json_string(f->link_name));
    if (rc == FV_OK)
        rc = set_new(o, "display_name", json_string(f->display_name));
    if (rc == FV_OK)
        rc = set_new(o, "type", json_string(fv_model_type_name(f->type)));
    if (rc == FV_OK && f->required)
        rc = set_new(o, "required", json_true());
    if (rc == FV_OK && f->unique)
        rc = set_new(o, "unique", json_true());
    if (rc == FV_OK && f->max_length > 0)
        rc = set_new(o, "max_length", json_integer(f->max_length));
    if (rc == FV_OK && f->choices != NULL)
        rc = set_new(o, "choices", strv_json(f->choices, f->n_choices));
    if (rc == FV_OK && fv_model_type_is_scaled(f->type))
        rc = set_new(o, "decimal_places", json_integer(f->decimal_places));
    if (rc == FV_OK && f->type == FV_FIELD_LOOKUP) {
        json_t *l = json_pack("{s:s, s:s, s:b}", "form", f->lookup_form, "display_field",
                              f->lookup_display, "multi", f->lookup_multi);
        rc = set_new(o, "lookup", l);
    }
    if (rc == FV_OK && f->type == FV_FIELD_AUTONUMBER) {
        if (f->autonumber_prefix != NULL)
            rc = set_new(o, "prefix", json_string(f->autonumber_prefix));
        if (rc == FV_OK)
            rc = set_new(o, "start", json_integer(f->autonumber_start));
    }
    if (rc == FV_OK && f->default_value != NULL)
        rc = set_new(o, "default", json_deep_copy(f->default_value));
    if (rc == FV_OK && f->encrypt)
        rc = set_new(o, "encrypt", json_true());
    if (rc == FV_OK && f->pii)
        rc = set_new(o, "pii", json_true());
    if (rc == FV_OK && f->contains_health_info)
        rc = set_new(o, "contains_health_info", json_true());
    if (rc != FV_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *form_json(const struct fv_form *form)
{
    json_t *o = json_object();
    json_t *fields = json_array();
    int rc = (o == NULL || fields == NULL) ? FV_E_NOMEM : FV_OK;

    for (size_t i = 0; rc == FV_OK && i < form->n_fields; i++) {
        json_t *f = field_json(&form->fields[i]);
        if (f == NULL || json_array_append_new(fields, f) != 0)
            rc = FV_E_NOMEM;
    }
    if (rc == FV_OK)
        rc = set_new(o, "link_name", json_string(form->link_name));
    if (rc == FV_OK)
        rc = set_new(o, "display_name", json_string(form->display_name));
    if (rc == FV_OK) {
        rc = set_new(o, "fields", fields);
        fields = NULL;
    }
    json_decref(fields);
    if (rc != FV_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *report_json(const struct fv_report *r)
{
    json_t *o = json_object();
    int rc = o == NULL ? FV_E_NOMEM : FV_OK;

    if (rc == FV_OK)
        rc = set_new(o, "link_name", json_string(r->link_name));
    if (rc == FV_OK)
        rc = set_new(o, "display_name", json_string(r->display_name));
    if (rc == FV_OK)
        rc = set_new(o, "form", json_string(r->form->link_name));
    if (rc == FV_OK)
        rc = set_new(o, "type",
                     json_string(r->type == FV_REPORT_SPREADSHEET ? "spreadsheet" : "list"));
    if (rc == FV_OK)
        rc = set_new(o, "quick_view", strv_json(r->quick_view, r->n_quick_view));
    if (rc == FV_OK)
        rc = set_new(o, "detail_view", strv_json(r->detail_view, r->n_detail_view));
    if (rc == FV_OK && r->criteria != NULL)
        rc = set_new(o, "criteria", json_string(r->criteria));
    if (rc == FV_OK && r->sort_field != NULL)
        rc = set_new(o, "sort",
                     json_pack("{s:s, s:s}", "field", r->sort_field, "order",
                               r->sort_desc ? "desc" : "asc"));
    if (rc != FV_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *fv_model_app_to_json(const struct fv_app *app)
{
    json_t *o = json_object();
    json_t *forms = json_array();
    json_t *reports = json_array();
    int rc = (o == NULL || forms == NULL || reports == NULL) ? FV_E_NOMEM : FV_OK;

    for (size_t i = 0; rc == FV_OK && i < app->n_forms; i++) {
        json_t *f = form_json(&app->forms[i]);
        if (f == NULL || json_array_append_new(forms, f) != 0)
            rc = FV_E_NOMEM;
    }
    for (size_t i = 0; rc == FV_OK && i < app->n_reports; i++) {
        json_t *r = report_json(&app->reports[i]);
        if (r == NULL || json_array_append_new(reports, r) != 0)
            rc = FV_E_NOMEM;
    }
    if (rc == FV_OK)
        rc = set_new(o, "format", json_integer(1));
    if (rc == FV_OK)
        rc = set_new(o, "link_name", json_string(app->link_name));
    if (rc == FV_OK)
        rc = set_new(o, "display_name", json_string(app->display_name));
    if (rc == FV_OK)
        rc = set_new(o, "date_format", json_string(app->date_format));
    if (rc == FV_OK)
        rc = set_new(o, "time_zone", json_string(app->time_zone));
    if (rc == FV_OK) {
        rc = set_new(o, "forms", forms);
        forms = NULL;
    }
    if (rc == FV_OK) {
        rc = set_new(o, "reports", reports);
        reports = NULL;
    }
    json_decref(forms);
    json_decref(reports);
    if (rc != FV_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ------------------------------------------------------------- equality */

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool strv_eq(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (!str_eq(a[i], b[i]))
            return false;
    return true;
}

static bool field_eq(const struct fv_field *a, const struct fv_field *b)
{
    return strcmp(a->link_name, b->link_name) == 0 && str_eq(a->display_name, b->display_name) &&
           a->type == b->type && a->required == b->required && a->unique == b->unique &&
           a->encrypt == b->encrypt && a->pii == b->pii &&
           a->contains_health_info == b->contains_health_info && a->max_length == b->max_length &&
           a->decimal_places == b->decimal_places &&
           strv_eq(a->choices, a->n_choices, b->choices, b->n_choices) &&
           ((a->default_value == NULL && b->default_value == NULL) ||
            (a->default_value != NULL && b->default_value != NULL &&
             json_equal(a->default_value, b->default_value))) &&
           str_eq(a->lookup_form, b->lookup_form) && str_eq(a->lookup_display, b->lookup_display) &&
           a->lookup_multi == b->lookup_multi &&
           str_eq(a->autonumber_prefix, b->autonumber_prefix) &&
           a->autonumber_start == b->autonumber_start &&
           ((a->lookup_target == NULL) == (b->lookup_target == NULL)) &&
           (a->lookup_target == NULL ||
            strcmp(a->lookup_target->link_name, b->lookup_target->link_name) == 0);
}

bool fv_model_app_equal(const struct fv_app *a, const struct fv_app *b)
{
    if (strcmp(a->link_name, b->link_name) != 0 || !str_eq(a->display_name, b->display_name) ||
        !str_eq(a->date_format, b->date_format) || !str_eq(a->time_zone, b->time_zone) ||
        a->n_forms != b->n_forms || a->n_reports != b->n_reports)
        return false;
    for (size_t i = 0; i < a->n_forms; i++) {
        const struct fv_form *fa = &a->forms[i], *fb = &b->forms[i];
        if (strcmp(fa->link_name, fb->link_name) != 0 ||
            !str_eq(fa->display_name, fb->display_name) || fa->n_fields != fb->n_fields)
            return false;
        for (size_t k = 0; k < fa->n_fields; k++)
            if (!field_eq(&fa->fields[k], &fb->fields[k]))
                return false;
    }
    for (size_t i = 0; i < a->n_reports; i++) {
        const struct fv_report *ra = &a->reports[i], *rb = &b->reports[i];
        if (strcmp(ra->link_name, rb->link_name) != 0 ||
            !str_eq(ra->display_name, rb->display_name) || ra->type != rb->type ||
            strcmp(ra->form->link_name, rb->form->link_name) != 0 ||
            !strv_eq(ra->quick_view, ra->n_quick_view, rb->quick_view, rb->n_quick_view) ||
            !strv_eq(ra->detail_view, ra->n_detail_view, rb->detail_view, rb->n_detail_view) ||
            !str_eq(ra->criteria, rb->criteria) || !str_eq(ra->sort_field, rb->sort_field) ||
            ra->sort_desc != rb->sort_desc)
            return false;
    }
    return true;
}
