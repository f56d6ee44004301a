/*
 * api/data.c: Creator v2.1 data API handlers (creator-api.md 5.1-5.7):
 * add records, get records of a report, get/update/delete by ID, update and
 * delete by criteria. Values are converted by model, stored by store; this
 * file shapes requests and responses only.
 */
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"

static const char *const system_fields[] = {"Added_Time", "Modified_Time", "Added_User",
                                            "Modified_User"};

static bool is_system_field(const char *name)
{
    if (strcmp(name, "ID") == 0)
        return true;
    for (size_t i = 0; i < FV_ARRAY_LEN(system_fields); i++)
        if (strcmp(name, system_fields[i]) == 0)
            return true;
    return false;
}

static int find_report(struct api_ctx *c, const char *name, const struct fv_report **ret)
{
    const struct fv_report *r = fv_model_app_report(c->app, name);
    if (!r)
        return fv_error_set(&c->err, FV_E_NO_REPORT, SIZE_MAX, "no report '%.64s'", name);
    *ret = r;
    return FV_OK;
}

static int parse_id(struct api_ctx *c, const char *text, uint64_t *ret)
{
    if (fv_parse_u64(text, strlen(text), ret) != FV_OK || *ret == 0 || *ret > INT64_MAX)
        return fv_error_set(&c->err, FV_E_NO_RECORD, SIZE_MAX, "no record with id '%.32s'", text);
    return FV_OK;
}

/* ------------------------------------------------------------ criteria */

static int where_add_criteria(struct api_ctx *c, const struct fv_form *form, const char *text,
                              struct fv_sql_where *w, const char *what)
{
    struct fv_criteria *tree = NULL;
    struct fv_error e;
    fv_error_init(&e);
    int rc = fv_model_criteria_parse(text, strlen(text), &tree, &e);
    if (rc == FV_OK) {
        bool first = w->sql.len == 0;
        rc = fv_buf_append_cstr(&w->sql, first ? "(" : " AND (");
        if (rc == FV_OK)
            rc = fv_model_criteria_compile(tree, c->app, form, w, &e);
        if (rc == FV_OK)
            rc = fv_buf_append(&w->sql, ")", 1);
    }
    fv_model_criteria_free(tree);
    if (rc == FV_E_CRITERIA || rc == FV_E_INVALID)
        return fv_error_set(&c->err, FV_E_CRITERIA, e.pos, "invalid %s: %s", what, e.msg);
    return rc;
}

static int where_add_id(struct fv_sql_where *w, uint64_t id)
{
    if (w->n_params == w->cap_params) {
        size_t cap = w->cap_params ? w->cap_params * 2 : 4;
        struct fv_sqlval *p = fv_realloc(w->params, cap * sizeof(*p));
        if (!p)
            return FV_E_NOMEM;
        w->params = p;
        w->cap_params = cap;
    }
    int rc = fv_buf_append_cstr(&w->sql, w->sql.len ? " AND (\"ID\" = ?)" : "(\"ID\" = ?)");
    if (rc != FV_OK)
        return rc;
    struct fv_sqlval *v = &w->params[w->n_params++];
    memset(v, 0, sizeof(*v));
    v->type = FV_SQL_INT;
    v->i = (int64_t)id;
    return FV_OK;
}

/* The report's own filter plus the request's criteria (text may be NULL). */
static int build_where(struct api_ctx *c, const struct fv_report *rep, const char *text,
                       struct fv_sql_where *w)
{
    int rc = FV_OK;
    if (rep->criteria && rep->criteria[0])
        rc = where_add_criteria(c, rep->form, rep->criteria, w, "report criteria");
    if (rc == FV_OK && text)
        rc = where_add_criteria(c, rep->form, text, w, "criteria");
    return rc;
}

/* ------------------------------------------------------------- columns */

struct columns {
    const char *list[512];
    size_t n;
    char buf[4096]; /* storage for a custom `fields` list */
};

static int columns_add(struct api_ctx *c, const struct fv_form *form, struct columns *cols,
                       const char *name)
{
    if (!is_system_field(name) && !fv_model_form_field(form, name))
        return fv_error_set(&c->err, FV_E_NO_FIELD, SIZE_MAX, "no field '%.64s' in form '%s'", name,
                            form->link_name);
    if (strcmp(name, "ID") == 0)
        return FV_OK; /* always included */
    if (cols->n == FV_ARRAY_LEN(cols->list))
        return fv_error_set(&c->err, FV_E_LIMIT, SIZE_MAX, "too many fields requested");
    cols->list[cols->n++] = name;
    return FV_OK;
}

static int columns_all(struct api_ctx *c, const struct fv_form *form, struct columns *cols,
                       bool with_system)
{
    int rc = FV_OK;
    for (size_t i = 0; rc == FV_OK && i < form->n_fields; i++)
        rc = columns_add(c, form, cols, form->fields[i].link_name);
    for (size_t i = 0; with_system && rc == FV_OK && i < FV_ARRAY_LEN(system_fields); i++)
        rc = columns_add(c, form, cols, system_fields[i]);
    return rc;
}

static int columns_list(struct api_ctx *c, const struct fv_form *form, struct columns *cols,
                        char *const *names, size_t n)
{
    if (n == 0)
        return columns_all(c, form, cols, false);
    int rc = FV_OK;
    for (size_t i = 0; rc == FV_OK && i < n; i++)
        rc = columns_add(c, form, cols, names[i]);
    return rc;
}

/* Comma-separated link names into cols (copied into cols->buf). */
static int columns_custom(struct api_ctx *c, const struct fv_form *form, struct columns *cols,
                          const char *fields)
{
    if (fv_strlcpy(cols->buf, fields, sizeof(cols->buf)) != FV_OK)
        return fv_error_set(&c->err, FV_E_LIMIT, SIZE_MAX, "'fields' is too long");
    char *s = cols->buf;
    int rc = FV_OK;
    while (rc == FV_OK && *s) {
        while (*s == ' ' || *s == ',')
            s++;
        if (!*s)
            break;
        char *name = s;
        size_t len = strcspn(s, ", ");
        s += len;
        if (*s)
            *s++ = '\0';
        rc = columns_add(c, form, cols, name);
    }
    if (rc == FV_OK && cols->n == 0 && strstr(fields, "ID") == NULL)
        return fv_error_set(&c->err, FV_E_PARAM, SIZE_MAX, "'fields' names no field");
    return rc;
}

static int columns_from_request(struct api_ctx *c, const struct fv_report *rep,
                                const char *default_config, struct columns *cols)
{
    const char *config = c->req->query(c->req->conn, "field_config");
    const char *fields = c->req->query(c->req->conn, "fields");
    cols->n = 0;
    if (!config)
        config = fields ? "custom" : default_config;
    if (strcmp(config, "quick_view") == 0)
        return columns_list(c, rep->form, cols, rep->quick_view, rep->n_quick_view);
    if (strcmp(config, "detail_view") == 0) {
        if (rep->n_detail_view)
            return columns_list(c, rep->form, cols, rep->detail_view, rep->n_detail_view);
        return columns_list(c, rep->form, cols, rep->quick_view, rep->n_quick_view);
    }
    if (strcmp(config, "all") == 0)
        return columns_all(c, rep->form, cols, true);
    if (strcmp(config, "custom") == 0) {
        if (!fields)
            return fv_error_set(&c->err, FV_E_PARAM, SIZE_MAX,
                                "mandatory parameter 'fields' is missing for "
                                "field_config=custom");
        return columns_custom(c, rep->form, cols, fields);
    }
    return fv_error_set(&c->err, FV_E_PARAM, SIZE_MAX,
                        "'field_config' must be quick_view, detail_view, all or custom");
}

/* ------------------------------------------------------- body helpers */

struct result_opts {
    const json_t *fields; /* array of link names to echo, or NULL */
    bool message;
    bool tasks;
};

/* Validate the keys shared by write bodies: result, skip_workflow. */
static int body_common(struct api_ctx *c, const struct fv_form *form, struct result_opts *o)
{
    o->fields = NULL;
    o->message = true;
    o->tasks = false;
    json_t *res = json_object_get(c->body, "result");
    if (res) {
        const char *k;
        json_t *v;
        if (!json_is_object(res))
            return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX, "'result' must be an object");
        json_object_foreach(res, k, v)
        {
            if (strcmp(k, "fields") == 0) {
                size_t i;
                json_t *f;
                if (!json_is_array(v))
                    return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                                        "'result.fields' must be an array of field names");
                json_array_foreach(v, i, f)
                {
                    if (!json_is_string(f))
                        return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                                            "'result.fields' must be an array of field names");
                    const char *name = json_string_value(f);
                    if (!is_system_field(name) && !fv_model_form_field(form, name))
                        return fv_error_set(&c->err, FV_E_NO_FIELD, SIZE_MAX,
                                            "no field '%.64s' in form '%s'", name, form->link_name);
                }
                o->fields = v;
            } else if (strcmp(k, "message") == 0 || strcmp(k, "tasks") == 0) {
                if (!json_is_boolean(v))
                    return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                                        "'result.%s' must be true or false", k);
                if (k[0] == 'm')
                    o->message = json_is_true(v);
                else
                    o->tasks = json_is_true(v);
            } else {
                return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                                    "unknown key 'result.%.32s' in request body", k);
            }
        }
    }
    json_t *skip = json_object_get(c->body, "skip_workflow");
    if (skip) {
        size_t i;
        json_t *s;
        if (!json_is_array(skip))
            return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX, "'skip_workflow' must be an array");
        json_array_foreach(skip, i, s)
        {
            const char *v = json_string_value(s);
            if (!v || (strcmp(v, "form_workflow") != 0 && strcmp(v, "schedules") != 0 &&
                       strcmp(v, "all") != 0))
                return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                                    "'skip_workflow' values must be form_workflow, schedules "
                                    "or all");
        }
    }
    return FV_OK;
}

static int body_only_keys(struct api_ctx *c, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(c->body, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok)
            return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX, "unknown key '%.32s' in request body",
                                k);
    }
    return FV_OK;
}

/* {"ID": "<id>", <echoed fields>} for one written record. */
static json_t *record_echo(struct api_ctx *c, const struct fv_form *form, uint64_t id,
                           const struct result_opts *o)
{
    char idbuf[24];
    (void)snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)id);
    if (o->fields && json_array_size(o->fields) > 0) {
        const char *names[256];
        size_t n = 0;
        size_t i;
        json_t *f;
        json_array_foreach(o->fields, i, f)
        {
            if (n < FV_ARRAY_LEN(names) && strcmp(json_string_value(f), "ID") != 0)
                names[n++] = json_string_value(f);
        }
        struct fv_store_query q = {0};
        q.form = form;
        q.columns = names;
        q.n_columns = n;
        q.id = id;
        q.limit = 1;
        json_t *rows = NULL;
        char cursor[128];
        if (fv_store_query(c->tenant, c->app, &q, &rows, cursor, sizeof(cursor)) == FV_OK &&
            json_array_size(rows) == 1) {
            json_t *row = json_incref(json_array_get(rows, 0));
            json_decref(rows);
            return row;
        }
        json_decref(rows);
    }
    return json_pack("{s:s}", "ID", idbuf);
}

static json_t *result_entry(struct api_ctx *c, const struct fv_form *form, int rc,
                            const struct fv_error *e, uint64_t id, const struct result_opts *o,
                            const char *ok_message)
{
    int code = fv_api_error_record_code(rc);
    if (rc == FV_OK) {
        json_t *entry = json_pack("{s:i,s:o}", "code", 3000, "data", record_echo(c, form, id, o));
        if (entry && o->message)
            (void)json_object_set_new(entry, "message", json_string(ok_message));
        if (entry && o->tasks)
            (void)json_object_set_new(entry, "tasks", json_object());
        return entry;
    }
    char idbuf[24];
    json_t *data = json_object();
    if (data && id) {
        (void)snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)id);
        (void)json_object_set_new(data, "ID", json_string(idbuf));
    }
    char msg[FV_ERROR_MSG_MAX];
    api_message_sanitize(e && e->code != FV_OK && e->msg[0] ? e->msg : fv_err_describe(rc), msg,
                         sizeof(msg));
    return json_pack("{s:i,s:o,s:[s]}", "code", code, "data", data, "error", msg);
}

/*
 * Reply to a multi-record write: {"code", "result" [, "more_records"]}. The
 * top-level code is 3000 only when every record succeeded, else 3002
 * (docs/api.md). results is borrowed; more_records may be NULL.
 */
static int reply_results(struct api_ctx *c, json_t *results, bool all_ok, const bool *more_records)
{
    int code = all_ok ? 3000 : 3002;
    json_t *doc = json_pack("{s:i,s:O}", "code", code, "result", results);
    if (doc && more_records &&
        json_object_set_new(doc, "more_records", json_boolean(*more_records)) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    int rc = api_reply_json(c, FV_OK, doc);
    if (rc == FV_OK)
        c->resp->creator_code = code;
    return rc;
}

/* ------------------------------------------------------------ handlers */

int api_data_add(struct api_ctx *c, const char *form_name)
{
    static const char *const no_params[] = {NULL};
    static const char *const keys[] = {"data", "result", "skip_workflow", NULL};
    struct fv_store_write *w = NULL;
    json_t *results = NULL;
    int rc;
    const struct fv_form *form = fv_model_app_form(c->app, form_name);
    if (!form)
        return fv_error_set(&c->err, FV_E_NO_FORM, SIZE_MAX, "no form '%.64s'", form_name);
    if ((rc = api_query_allow(c, no_params)) != FV_OK)
        return rc;
    if ((rc = api_body_parse(c, true)) != FV_OK)
        return rc;
    if ((rc = body_only_keys(c, keys)) != FV_OK)
        return rc;
    struct result_opts o;
    if ((rc = body_common(c, form, &o)) != FV_OK)
        return rc;

    json_t *data = json_object_get(c->body, "data");
    size_t n;
    if (json_is_object(data))
        n = 1;
    else if (json_is_array(data))
        n = json_array_size(data);
    else
        return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                            "'data' must be a record object or an array of records");
    if (n == 0)
        return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX, "'data' holds no record");
    if (n > (size_t)c->api->cfg->max_records_per_write)
        return fv_error_set(&c->err, FV_E_TOO_MANY_RECORDS, SIZE_MAX,
                            "%zu records in one request; at most %d are accepted", n,
                            c->api->cfg->max_records_per_write);

    w = fv_calloc(n, sizeof(*w));
    size_t *slot = fv_calloc(n, sizeof(*slot)); /* record index -> write index or SIZE_MAX */
    if (!w || !slot) {
        rc = FV_E_NOMEM;
        goto out;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *rec = json_is_object(data) ? data : json_array_get(data, i);
        if (!json_is_object(rec)) {
            slot[i] = SIZE_MAX;
            continue;
        }
        w[m].op = FV_STORE_INSERT;
        w[m].form = form;
        w[m].data = rec;
        slot[i] = m++;
    }
    if (m > 0) {
        rc = fv_store_write(c->tenant, c->app, w, m, c->caller.actor);
        if (rc != FV_OK)
            goto out;
    }
    results = json_array();
    if (!results) {
        rc = FV_E_NOMEM;
        goto out;
    }
    bool all_ok = true;
    for (size_t i = 0; i < n; i++) {
        json_t *entry;
        if (slot[i] == SIZE_MAX) {
            struct fv_error e;
            fv_error_init(&e);
            (void)fv_error_set(&e, FV_E_VALIDATION, SIZE_MAX, "record %zu is not a json object",
                               i + 1);
            entry = result_entry(c, form, FV_E_VALIDATION, &e, 0, &o, NULL);
            all_ok = false;
        } else {
            struct fv_store_write *x = &w[slot[i]];
            entry = result_entry(c, form, x->rc, &x->err, x->rc == FV_OK ? x->ret_id : 0, &o,
                                 "Data Added Successfully!");
            all_ok = all_ok && x->rc == FV_OK;
        }
        if (!entry || json_array_append_new(results, entry) != 0) {
            rc = FV_E_NOMEM;
            goto out;
        }
    }
    rc = reply_results(c, results, all_ok, NULL);
out:
    json_decref(results);
    fv_free(slot);
    if (w)
        for (size_t i = 0; i < n; i++)
            fv_free(w[i].results);
    fv_free(w);
    return rc;
}

static int parse_page_params(struct api_ctx *c, size_t *ret_offset, size_t *ret_limit)
{
    const char *mr = c->req->query(c->req->conn, "max_records");
    const char *from = c->req->query(c->req->conn, "from");
    const char *limit = c->req->query(c->req->conn, "limit");
    int64_t v;
    size_t page = 200;
    size_t offset = 0;
    if (mr) {
        if (fv_parse_i64(mr, strlen(mr), &v) != FV_OK || (v != 200 && v != 500 && v != 1000))
            return fv_error_set(&c->err, FV_E_FETCH_LIMIT, SIZE_MAX,
                                "'max_records' must be 200, 500 or 1000");
        page = (size_t)v;
    }
    if (limit) {
        if (fv_parse_i64(limit, strlen(limit), &v) != FV_OK || v < 1 || v > 200)
            return fv_error_set(&c->err, FV_E_FETCH_LIMIT, SIZE_MAX,
                                "'limit' must be between 1 and 200");
        page = (size_t)v;
    }
    if (from) {
        if (fv_parse_i64(from, strlen(from), &v) != FV_OK || v < 0 || v > INT32_MAX)
            return fv_error_set(&c->err, FV_E_PARAM, SIZE_MAX,
                                "'from' must be a record index starting at 1");
        offset = v > 0 ? (size_t)(v - 1) : 0;
    }
    *ret_offset = offset;
    *ret_limit = page;
    return FV_OK;
}

/*
 * Common start of both reads: the report, the allowed query parameters and
 * the output columns (field_config / fields, default_config when absent).
 * *ret_cols is fv_malloc'd (the caller fv_frees it, also on error).
 */
static int read_setup(struct api_ctx *c, const char *report, const char *const *params,
                      const char *default_config, const struct fv_report **ret_rep,
                      struct columns **ret_cols)
{
    int rc;
    if ((rc = find_report(c, report, ret_rep)) != FV_OK)
        return rc;
    if ((rc = api_query_allow(c, params)) != FV_OK)
        return rc;
    *ret_cols = fv_malloc(sizeof(**ret_cols));
    if (!*ret_cols)
        return FV_E_NOMEM;
    return columns_from_request(c, *ret_rep, default_config, *ret_cols);
}

int api_data_report_get(struct api_ctx *c, const char *report)
{
    static const char *const params[] = {"criteria", "field_config", "fields", "max_records",
                                         "from",     "limit",        NULL};
    const struct fv_report *rep = NULL;
    struct fv_sql_where w;
    struct columns *cols = NULL;
    json_t *rows = NULL;
    char cursor[160] = "";
    char plain_in[160];
    char sealed[320];
    int rc;
    fv_model_where_init(&w);
    if ((rc = read_setup(c, report, params, "quick_view", &rep, &cols)) != FV_OK)
        goto out;
    const char *criteria = c->req->query(c->req->conn, "criteria");
    if (criteria && !criteria[0])
        criteria = NULL;
    if ((rc = build_where(c, rep, criteria, &w)) != FV_OK)
        goto out;
    struct fv_store_query q = {0};
    q.form = rep->form;
    q.columns = cols->list;
    q.n_columns = cols->n;
    q.where = w.sql.len ? &w : NULL;
    q.sort_field = rep->sort_field;
    q.sort_desc = rep->sort_desc;
    if ((rc = parse_page_params(c, &q.offset, &q.limit)) != FV_OK)
        goto out;
    q.cursor = c->req->header(c->req->conn, "record_cursor");
    if (q.cursor && !q.cursor[0])
        q.cursor = NULL;
    if (q.cursor) {
        if (api_cursor_open(c->api, c->caller.tenant_id, c->app->link_name, rep->link_name,
                            q.cursor, plain_in, sizeof(plain_in)) != FV_OK) {
            rc = fv_error_set(&c->err, FV_E_CURSOR, SIZE_MAX,
                              "'record_cursor' is not valid for this report (or the server "
                              "restarted): restart the scan without it");
            goto out;
        }
        q.cursor = plain_in;
    }
    rc = fv_store_query(c->tenant, c->app, &q, &rows, cursor, sizeof(cursor));
    if (rc == FV_E_CURSOR) {
        rc = fv_error_set(&c->err, FV_E_CURSOR, SIZE_MAX,
                          "'record_cursor' is not valid for this report");
        goto out;
    }
    if (rc != FV_OK)
        goto out;
    if (json_array_size(rows) == 0 && !q.cursor) {
        rc = criteria
                 ? fv_error_set(&c->err, FV_E_NO_RESULT, SIZE_MAX, "no records match the criteria")
                 : fv_error_set(&c->err, FV_E_EMPTY_REPORT, SIZE_MAX, "no records in report '%s'",
                                rep->link_name);
        goto out;
    }
    if (cursor[0]) {
        if ((rc = api_cursor_seal(c->api, c->caller.tenant_id, c->app->link_name, rep->link_name,
                                  cursor, sealed, sizeof(sealed))) != FV_OK)
            goto out;
        api_reply_header(c, "record_cursor", sealed);
    }
    rc = api_reply_json(c, FV_OK, json_pack("{s:i,s:O}", "code", 3000, "data", rows));
out:
    json_decref(rows);
    fv_free(cols);
    fv_model_where_release(&w);
    return rc;
}

int api_data_record_get(struct api_ctx *c, const char *report, const char *idtext)
{
    static const char *const params[] = {"field_config", "fields", NULL};
    const struct fv_report *rep = NULL;
    struct fv_sql_where w;
    struct columns *cols = NULL;
    json_t *rows = NULL;
    uint64_t id;
    int rc;
    fv_model_where_init(&w);
    if ((rc = read_setup(c, report, params, "detail_view", &rep, &cols)) != FV_OK)
        goto out;
    if ((rc = parse_id(c, idtext, &id)) != FV_OK)
        goto out;
    if ((rc = build_where(c, rep, NULL, &w)) != FV_OK)
        goto out;
    struct fv_store_query q = {0};
    q.form = rep->form;
    q.columns = cols->list;
    q.n_columns = cols->n;
    q.where = w.sql.len ? &w : NULL;
    q.id = id;
    q.limit = 1;
    char cursor[160];
    if ((rc = fv_store_query(c->tenant, c->app, &q, &rows, cursor, sizeof(cursor))) != FV_OK)
        goto out;
    if (json_array_size(rows) == 0) {
        rc = fv_error_set(&c->err, FV_E_NO_RECORD, SIZE_MAX, "no record with id '%s' in '%s'",
                          idtext, rep->link_name);
        goto out;
    }
    rc = api_reply_json(c, FV_OK,
                        json_pack("{s:i,s:O}", "code", 3000, "data", json_array_get(rows, 0)));
out:
    json_decref(rows);
    fv_free(cols);
    fv_model_where_release(&w);
    return rc;
}

/* Update or delete one record by ID, honouring the report's own filter. */
static int record_write(struct api_ctx *c, const char *report, const char *idtext, bool update)
{
    static const char *const params[] = {NULL};
    static const char *const ukeys[] = {"data", "result", "skip_workflow", NULL};
    static const char *const dkeys[] = {"result", "skip_workflow", NULL};
    const struct fv_report *rep = NULL;
    struct fv_sql_where w;
    struct fv_store_write x = {0};
    uint64_t id;
    int rc;
    fv_model_where_init(&w);
    if ((rc = find_report(c, report, &rep)) != FV_OK)
        goto out;
    if ((rc = api_query_allow(c, params)) != FV_OK)
        goto out;
    if ((rc = parse_id(c, idtext, &id)) != FV_OK)
        goto out;
    if ((rc = api_body_parse(c, update)) != FV_OK)
        goto out;
    struct result_opts o = {NULL, true, false};
    if (c->body) {
        if ((rc = body_only_keys(c, update ? ukeys : dkeys)) != FV_OK)
            goto out;
        if ((rc = body_common(c, rep->form, &o)) != FV_OK)
            goto out;
    }
    x.form = rep->form;
    x.id = id;
    if (update) {
        x.data = json_object_get(c->body, "data");
        if (!json_is_object(x.data) || json_object_size(x.data) == 0) {
            rc = fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                              "'data' must be an object with at least one field");
            goto out;
        }
    }
    if (rep->criteria && rep->criteria[0]) {
        if ((rc = build_where(c, rep, NULL, &w)) != FV_OK)
            goto out;
        if ((rc = where_add_id(&w, id)) != FV_OK)
            goto out;
        x.op = update ? FV_STORE_UPDATE_WHERE : FV_STORE_DELETE_WHERE;
        x.where = &w;
        x.limit = 1;
    } else {
        x.op = update ? FV_STORE_UPDATE_ID : FV_STORE_DELETE_ID;
    }
    if ((rc = fv_store_write(c->tenant, c->app, &x, 1, c->caller.actor)) != FV_OK)
        goto out;
    rc = x.rc;
    if (rc == FV_OK && x.results && x.n_results == 1)
        rc = x.results[0].rc;
    if (rc == FV_E_NO_MATCH || rc == FV_E_NO_RECORD) {
        rc = fv_error_set(&c->err, FV_E_NO_RECORD, SIZE_MAX, "no record with id '%s' in '%s'",
                          idtext, rep->link_name);
        goto out;
    }
    if (rc != FV_OK) {
        const struct fv_error *e = x.results && x.n_results == 1 ? &x.results[0].err : &x.err;
        (void)fv_error_set(&c->err, rc, SIZE_MAX, "%s", e->msg[0] ? e->msg : fv_err_describe(rc));
        goto out;
    }
    json_t *doc =
        json_pack("{s:i,s:o}", "code", 3000, "data",
                  update ? record_echo(c, rep->form, id, &o) : json_pack("{s:s}", "ID", idtext));
    if (doc && o.message)
        (void)json_object_set_new(
            doc, "message",
            json_string(update ? "Data Updated Successfully!" : "Record Deleted Successfully!"));
    if (doc && o.tasks)
        (void)json_object_set_new(doc, "tasks", json_object());
    rc = api_reply_json(c, FV_OK, doc);
out:
    fv_free(x.results);
    fv_model_where_release(&w);
    return rc;
}

int api_data_record_update(struct api_ctx *c, const char *report, const char *id)
{
    return record_write(c, report, id, true);
}

int api_data_record_delete(struct api_ctx *c, const char *report, const char *id)
{
    return record_write(c, report, id, false);
}

static int flag_value(struct api_ctx *c, const json_t *v, const char *q, bool *ret)
{
    if (q) {
        if (strcmp(q, "true") == 0 || strcmp(q, "false") == 0) {
            *ret = q[0] == 't';
            return FV_OK;
        }
        return fv_error_set(&c->err, FV_E_PARAM, SIZE_MAX,
                            "'process_until_limit' must be true or false");
    }
    if (!v)
        return FV_OK;
    if (json_is_boolean(v)) {
        *ret = json_is_true(v);
        return FV_OK;
    }
    const char *s = json_string_value(v);
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
        *ret = s[0] == 't';
        return FV_OK;
    }
    return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                        "'process_until_limit' must be true or false");
}

/* Update or delete by criteria (creator-api.md 5.5, 5.7). */
static int report_write(struct api_ctx *c, const char *report, bool update)
{
    static const char *const params[] = {"process_until_limit", NULL};
    static const char *const ukeys[] = {
        "criteria", "data", "result", "skip_workflow", "process_until_limit", NULL};
    static const char *const dkeys[] = {"criteria", "result", "skip_workflow",
                                        "process_until_limit", NULL};
    const struct fv_report *rep = NULL;
    struct fv_sql_where w;
    struct fv_store_write x = {0};
    json_t *results = NULL;
    int rc;
    fv_model_where_init(&w);
    if ((rc = find_report(c, report, &rep)) != FV_OK)
        goto out;
    if ((rc = api_query_allow(c, params)) != FV_OK)
        goto out;
    if ((rc = api_body_parse(c, true)) != FV_OK)
        goto out;
    if ((rc = body_only_keys(c, update ? ukeys : dkeys)) != FV_OK)
        goto out;
    struct result_opts o;
    if ((rc = body_common(c, rep->form, &o)) != FV_OK)
        goto out;
    const char *criteria = json_string_value(json_object_get(c->body, "criteria"));
    if (!criteria || !criteria[0]) {
        rc = fv_error_set(&c->err, FV_E_PARAM, SIZE_MAX,
                          "mandatory parameter 'criteria' is "
                          "missing");
        goto out;
    }
    bool until = false;
    if ((rc = flag_value(c, json_object_get(c->body, "process_until_limit"),
                         c->req->query(c->req->conn, "process_until_limit"), &until)) != FV_OK)
        goto out;
    if (update) {
        x.data = json_object_get(c->body, "data");
        if (!json_is_object(x.data) || json_object_size(x.data) == 0) {
            rc = fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                              "'data' must be an object with at least one field");
            goto out;
        }
    }
    if ((rc = build_where(c, rep, criteria, &w)) != FV_OK)
        goto out;
    x.op = update ? FV_STORE_UPDATE_WHERE : FV_STORE_DELETE_WHERE;
    x.form = rep->form;
    x.where = &w;
    x.limit = (size_t)c->api->cfg->max_records_per_write;
    x.process_until_limit = until;
    if ((rc = fv_store_write(c->tenant, c->app, &x, 1, c->caller.actor)) != FV_OK)
        goto out;
    if (x.rc != FV_OK) {
        rc = x.rc;
        if (rc == FV_E_TOO_MANY_MATCHES)
            (void)fv_error_set(&c->err, rc, SIZE_MAX,
                               "more than %zu records match; send process_until_limit=true to "
                               "process the first %zu",
                               x.limit, x.limit);
        else if (rc == FV_E_NO_MATCH)
            (void)fv_error_set(&c->err, rc, SIZE_MAX, "no records match the criteria");
        else
            (void)fv_error_set(&c->err, rc, SIZE_MAX, "%s",
                               x.err.msg[0] ? x.err.msg : fv_err_describe(rc));
        goto out;
    }
    results = json_array();
    if (!results) {
        rc = FV_E_NOMEM;
        goto out;
    }
    bool all_ok = true;
    for (size_t i = 0; i < x.n_results; i++) {
        all_ok = all_ok && x.results[i].rc == FV_OK;
        json_t *e =
            result_entry(c, rep->form, x.results[i].rc, &x.results[i].err, x.results[i].id, &o,
                         update ? "Data Updated Successfully!" : "Record Deleted Successfully!");
        if (!update && e && x.results[i].rc == FV_OK) {
            char idbuf[24];
            (void)snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)x.results[i].id);
            (void)json_object_set_new(e, "data", json_pack("{s:s}", "ID", idbuf));
        }
        if (!e || json_array_append_new(results, e) != 0) {
            rc = FV_E_NOMEM;
            goto out;
        }
    }
    rc = reply_results(c, results, all_ok, &x.more_records);
out:
    json_decref(results);
    fv_free(x.results);
    fv_model_where_release(&w);
    return rc;
}

int api_data_report_update(struct api_ctx *c, const char *report)
{
    return report_write(c, report, true);
}

int api_data_report_delete(struct api_ctx *c, const char *report)
{
    return report_write(c, report, false);
}
