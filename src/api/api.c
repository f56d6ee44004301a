/*
 * api/api.c: request dispatch for the Creator v2.1 API: path routing for both
 * path families, token authentication and scope checks, tenant and app
 * resolution, error replies through the one error table.
 */
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"

void fv_api_response_init(struct fv_api_response *r)
{
    memset(r, 0, sizeof(*r));
    r->route = "unknown";
    r->content_type = "application/json;charset=UTF-8";
}

void fv_api_response_release(struct fv_api_response *r)
{
    FV_FREE(r->body);
}

int fv_api_new(const struct fv_config *cfg, struct fv_store *store, struct fv_api **ret)
{
    struct fv_api *api = fv_calloc(1, sizeof(*api));
    if (!api)
        return FV_E_NOMEM;
    api->cfg = cfg;
    api->store = store;
    if (pthread_mutex_init(&api->token_lock, NULL) != 0) {
        fv_free(api);
        return FV_E_NOMEM;
    }
    int rc = api_cursor_init(api);
    if (rc != FV_OK) {
        (void)pthread_mutex_destroy(&api->token_lock);
        fv_free(api);
        return rc;
    }
    *ret = api;
    return FV_OK;
}

void fv_api_free(struct fv_api *api)
{
    if (!api)
        return;
    fv_wipe(api->tokens, sizeof(api->tokens));
    api_cursor_release(api);
    (void)pthread_mutex_destroy(&api->token_lock);
    fv_free(api);
}

/* ------------------------------------------------------------- replies */

/*
 * Serialise straight into the response buffer with json_dumpb, sized from
 * this thread's last reply: no growing string buffer and no copy of the
 * body (json_dumps did both; they were a tenth of a 200-record report).
 */
int api_reply_json(struct api_ctx *c, int rc, json_t *doc)
{
    static _Thread_local size_t size_hint = 4096;
    const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
    int status, code;
    fv_api_error_map(rc, &status, &code);
    if (!doc)
        return FV_E_NOMEM;
    size_t cap = size_hint;
    char *body = fv_malloc(cap);
    size_t n = body ? json_dumpb(doc, body, cap, flags) : 0;
    if (body && n > cap) { /* too small: n is the exact size needed */
        fv_free(body);
        cap = n;
        body = fv_malloc(cap);
        n = body ? json_dumpb(doc, body, cap, flags) : 0;
    }
    json_decref(doc);
    if (!body || n == 0 || n > cap) {
        fv_free(body);
        return FV_E_NOMEM;
    }
    /* Remember a generous size for the next reply on this thread (bounded). */
    size_hint = n + n / 4 < 4096 ? 4096 : (n + n / 4 > (1u << 20) ? (1u << 20) : n + n / 4);
    FV_FREE(c->resp->body);
    c->resp->body = body;
    c->resp->body_len = n;
    c->resp->status = status;
    c->resp->creator_code = code;
    return FV_OK;
}

/*
 * Messages quote names from the URL or body, which may hold any bytes: keep
 * printable ASCII and show everything else as '?', so the body is always
 * valid UTF-8 JSON (jansson refuses invalid UTF-8).
 */
void api_message_sanitize(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++) {
        unsigned char ch = (unsigned char)*in;
        out[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    out[n] = '\0';
}

void api_reply_error(struct api_ctx *c, int rc)
{
    int status, code;
    char msg[FV_ERROR_MSG_MAX];
    fv_api_error_map(rc, &status, &code);
    api_message_sanitize(c->err.code != FV_OK && c->err.msg[0] ? c->err.msg : fv_err_describe(rc),
                         msg, sizeof(msg));
    json_t *doc = json_pack("{s:i,s:s}", "code", code, "message", msg);
    if (doc && api_reply_json(c, rc, doc) == FV_OK) {
        c->resp->creator_code = code;
        return;
    }
    /* Out of memory: a static body still tells the client what happened. */
    static const char oom[] = "{\"code\":2930,\"message\":\"out of memory\"}";
    FV_FREE(c->resp->body);
    c->resp->body = fv_strndup(oom, sizeof(oom) - 1);
    c->resp->body_len = c->resp->body ? sizeof(oom) - 1 : 0;
    c->resp->status = 500;
    c->resp->creator_code = 2930;
}

void api_reply_header(struct api_ctx *c, const char *name, const char *value)
{
    struct fv_api_response *r = c->resp;
    FV_ASSERT(r->n_headers < FV_API_MAX_HEADERS);
    r->headers[r->n_headers].name = name;
    (void)fv_strlcpy(r->headers[r->n_headers].value, value, sizeof(r->headers[0].value));
    r->n_headers++;
}

/* ---------------------------------------------------------------- body */

int api_json_depth(const json_t *v)
{
    int max = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            int d = api_json_depth(x);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            int d = api_json_depth(x);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    return 0;
}

static const char *json_reason(enum json_error_code code)
{
    switch (code) {
    case json_error_out_of_memory:
        return "out of memory";
    case json_error_stack_overflow:
        return "nested too deeply";
    case json_error_invalid_utf8:
        return "invalid utf-8";
    case json_error_premature_end_of_input:
        return "unexpected end of input";
    case json_error_end_of_input_expected:
        return "extra data after the json value";
    case json_error_invalid_syntax:
        return "invalid syntax";
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "\\u0000 is not allowed";
    case json_error_duplicate_key:
        return "duplicate key";
    case json_error_numeric_overflow:
        return "number out of range";
    default:
        return "invalid json";
    }
}

int api_body_parse(struct api_ctx *c, bool required)
{
    const struct fv_api_request *r = c->req;
    json_error_t je;
    if (r->body_too_large)
        return fv_error_set(&c->err, FV_E_BODY_TOO_LARGE, SIZE_MAX,
                            "request body is larger than %lld bytes",
                            (long long)c->api->cfg->max_body_bytes);
    if (!r->body || r->body_len == 0) {
        if (!required)
            return FV_OK;
        return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX, "request body is missing");
    }
    json_t *doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        /* jansson's text may quote the input ("... near 'value'", "invalid
         * Unicode '\\uD800'"): say the reason in our own fixed words. */
        return fv_error_set(&c->err, FV_E_BODY, (size_t)je.position,
                            "request body is not valid json: %s at line %d column %d",
                            json_reason(json_error_code(&je)), je.line, je.column);
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return fv_error_set(&c->err, FV_E_BODY, 0, "request body must be a json object");
    }
    if (api_json_depth(doc) > c->api->cfg->max_json_depth) {
        json_decref(doc);
        return fv_error_set(&c->err, FV_E_BODY, SIZE_MAX,
                            "request body is nested deeper than %d levels",
                            c->api->cfg->max_json_depth);
    }
    c->body = doc;
    return FV_OK;
}

/* ------------------------------------------------------------- queries */

struct allow_ctx {
    const char *const *allowed;
    const char *bad;
};

static bool allow_one(void *arg, const char *k, const char *v)
{
    struct allow_ctx *a = arg;
    (void)v;
    for (const char *const *p = a->allowed; *p; p++)
        if (strcmp(*p, k) == 0)
            return true;
    a->bad = k;
    return false;
}

int api_query_allow(struct api_ctx *c, const char *const *allowed)
{
    struct allow_ctx a = {allowed, NULL};
    if (c->req->query_each)
        c->req->query_each(c->req->conn, allow_one, &a);
    if (a.bad)
        return fv_error_set(&c->err, FV_E_UNKNOWN_PARAM, SIZE_MAX,
                            "unsupported query parameter '%.64s'", a.bad);
    return FV_OK;
}

/* ---------------------------------------------------------------- auth */

static int authenticate(struct api_ctx *c)
{
    struct fv_api *api = c->api;
    struct fv_str tok;
    uint8_t hash[FV_AUTH_TOKEN_HASH_BYTES];
    int64_t now = fv_time_now_ms();
    int rc = fv_auth_header_token(c->req->header(c->req->conn, "Authorization"), &tok);
    if (rc != FV_OK)
        return fv_error_set(&c->err, FV_E_AUTH, SIZE_MAX,
                            "missing or malformed authorization header");
    rc = fv_auth_token_hash(tok.p, tok.len, hash);
    if (rc != FV_OK)
        return fv_error_set(&c->err, FV_E_AUTH, SIZE_MAX, "invalid oauth token");

    /* Small cache so that a busy client does not cost a catalog query per request. */
    size_t slot = ((size_t)hash[0] | (size_t)hash[1] << 8) & (API_TOKEN_CACHE - 1);
    struct token_cache_entry e = {0};
    bool hit = false;
    (void)pthread_mutex_lock(&api->token_lock);
    struct token_cache_entry *ce = &api->tokens[slot];
    if (ce->used && now - ce->cached_ms < API_TOKEN_CACHE_TTL_MS &&
        fv_ct_equal(ce->hash, hash, sizeof(hash))) {
        e = *ce;
        hit = true;
    }
    (void)pthread_mutex_unlock(&api->token_lock);

    if (!hit) {
        struct fv_store_token t;
        rc = fv_store_token_lookup(api->store, hash, &t);
        if (rc == FV_E_AUTH || rc == FV_E_NOT_FOUND)
            return fv_error_set(&c->err, FV_E_AUTH, SIZE_MAX, "invalid oauth token");
        if (rc != FV_OK)
            return rc;
        unsigned scopes = 0;
        if (fv_auth_scopes_parse(t.scopes, &scopes, NULL) != FV_OK)
            scopes = 0; /* a token with no valid scope can do nothing */
        memcpy(e.hash, hash, sizeof(hash));
        e.used = true;
        e.tenant_id = t.tenant_id;
        e.scopes = scopes;
        e.expires_ms = t.expires_ms;
        e.token_id = t.id;
        e.cached_ms = now;
        (void)pthread_mutex_lock(&api->token_lock);
        api->tokens[slot] = e;
        (void)pthread_mutex_unlock(&api->token_lock);
    }
    if (e.expires_ms != 0 && e.expires_ms <= now) {
        fv_wipe(hash, sizeof(hash));
        return fv_error_set(&c->err, FV_E_AUTH, SIZE_MAX, "oauth token has expired");
    }
    c->caller.tenant_id = e.tenant_id;
    c->caller.token_id = e.token_id;
    c->caller.scopes = e.scopes;
    c->caller.cache_slot = slot;
    memcpy(c->caller.hash, hash, sizeof(hash));
    memcpy(c->caller.tenant_name, e.tenant_name, sizeof(e.tenant_name));
    fv_wipe(hash, sizeof(hash));
    (void)snprintf(c->caller.actor, sizeof(c->caller.actor), "token:%lld", (long long)e.token_id);
    return FV_OK;
}

static int require_scope(struct api_ctx *c, unsigned scope)
{
    if (c->caller.scopes & scope)
        return FV_OK;
    return fv_error_set(&c->err, FV_E_SCOPE, SIZE_MAX, "token lacks the scope '%s'",
                        fv_auth_scope_name(scope));
}

/*
 * Resolve {owner} to the caller's tenant. Any owner other than the token's
 * own tenant is refused the same way whether it exists or not, so tokens
 * cannot probe for other tenants.
 */
static int open_owner(struct api_ctx *c, const char *owner)
{
    struct fv_store_tenant_info info;
    /* The token cache remembers its tenant's name: no catalog query per request. */
    if (c->caller.tenant_name[0] && strcmp(owner, c->caller.tenant_name) == 0) {
        (void)fv_strlcpy(c->resp->tenant, owner, sizeof(c->resp->tenant));
        return fv_store_tenant_acquire(c->api->store, c->caller.tenant_id, &c->tenant);
    }
    int rc = fv_store_tenant_find(c->api->store, owner, &info);
    if (rc == FV_E_NO_OWNER || (rc == FV_OK && info.id != c->caller.tenant_id))
        return fv_error_set(&c->err, FV_E_DENIED, SIZE_MAX,
                            "the token has no access to owner '%.64s'", owner);
    if (rc != FV_OK)
        return rc;
    (void)pthread_mutex_lock(&c->api->token_lock);
    struct token_cache_entry *ce = &c->api->tokens[c->caller.cache_slot];
    if (ce->used && fv_ct_equal(ce->hash, c->caller.hash, sizeof(ce->hash)))
        (void)fv_strlcpy(ce->tenant_name, info.name, sizeof(ce->tenant_name));
    (void)pthread_mutex_unlock(&c->api->token_lock);
    (void)fv_strlcpy(c->resp->tenant, info.name, sizeof(c->resp->tenant));
    return fv_store_tenant_acquire(c->api->store, info.id, &c->tenant);
}

static int open_app(struct api_ctx *c, const char *owner, const char *app)
{
    int rc = open_owner(c, owner);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_app_get(c->tenant, app, &c->app);
    if (rc == FV_E_NO_APP)
        return fv_error_set(&c->err, FV_E_NO_APP, SIZE_MAX, "no application '%.64s'", app);
    return rc;
}

/* -------------------------------------------------------------- routing */

struct route_path {
    char *seg[API_MAX_SEGMENTS];
    size_t n;
    char buf[1024];
};

static int split_path(const char *path, struct route_path *p)
{
    p->n = 0;
    if (fv_strlcpy(p->buf, path, sizeof(p->buf)) != FV_OK)
        return FV_E_NO_ROUTE;
    char *s = p->buf;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        if (p->n == API_MAX_SEGMENTS)
            return FV_E_NO_ROUTE;
        p->seg[p->n++] = s;
        char *slash = strchr(s, '/');
        if (!slash)
            break;
        *slash = '\0';
        s = slash + 1;
    }
    return FV_OK;
}

static bool method_is(const struct api_ctx *c, const char *m)
{
    return strcmp(c->req->method, m) == 0;
}

/* data routes: seg[0..n) after {owner}/{app} */
static int route_data(struct api_ctx *c, const char *owner, const char *app, char **seg, size_t n)
{
    struct fv_api_response *r = c->resp;
    int rc;
    if (n == 2 && strcmp(seg[0], "form") == 0) {
        r->route = "data.form.add";
        if (!method_is(c, "POST"))
            return FV_E_METHOD;
        if ((rc = require_scope(c, FV_SCOPE_FORM_CREATE)) != FV_OK)
            return rc;
        if ((rc = open_app(c, owner, app)) != FV_OK)
            return rc;
        return api_data_add(c, seg[1]);
    }
    if ((n == 2 || n == 3) && strcmp(seg[0], "report") == 0) {
        bool by_id = n == 3;
        unsigned scope;
        if (method_is(c, "GET")) {
            r->route = by_id ? "data.record.get" : "data.report.get";
            scope = FV_SCOPE_REPORT_READ;
        } else if (method_is(c, "PATCH")) {
            r->route = by_id ? "data.record.update" : "data.report.update";
            scope = FV_SCOPE_REPORT_UPDATE;
        } else if (method_is(c, "DELETE")) {
            r->route = by_id ? "data.record.delete" : "data.report.delete";
            scope = FV_SCOPE_REPORT_DELETE;
        } else {
            r->route = by_id ? "data.record" : "data.report";
            return FV_E_METHOD;
        }
        if ((rc = require_scope(c, scope)) != FV_OK)
            return rc;
        if ((rc = open_app(c, owner, app)) != FV_OK)
            return rc;
        if (method_is(c, "GET"))
            return by_id ? api_data_record_get(c, seg[1], seg[2]) : api_data_report_get(c, seg[1]);
        if (method_is(c, "PATCH"))
            return by_id ? api_data_record_update(c, seg[1], seg[2])
                         : api_data_report_update(c, seg[1]);
        return by_id ? api_data_record_delete(c, seg[1], seg[2])
                     : api_data_report_delete(c, seg[1]);
    }
    return FV_E_NO_ROUTE;
}

/* meta routes: seg[0..n) after .../meta/ */
static int route_meta(struct api_ctx *c, char **seg, size_t n)
{
    struct fv_api_response *r = c->resp;
    int rc;
    if ((n == 1 && strcmp(seg[0], "applications") == 0) ||
        (n == 2 && strcmp(seg[1], "applications") == 0)) {
        r->route = "meta.applications";
        if (!method_is(c, "GET"))
            return FV_E_METHOD;
        if ((rc = require_scope(c, FV_SCOPE_DASHBOARD_READ)) != FV_OK)
            return rc;
        return api_meta_applications(c, n == 2 ? seg[0] : NULL);
    }
    if (n == 3 && (strcmp(seg[2], "forms") == 0 || strcmp(seg[2], "reports") == 0 ||
                   strcmp(seg[2], "pages") == 0)) {
        r->route = seg[2][0] == 'f'   ? "meta.forms"
                   : seg[2][0] == 'r' ? "meta.reports"
                                      : "meta.pages";
        if (!method_is(c, "GET"))
            return FV_E_METHOD;
        if ((rc = require_scope(c, FV_SCOPE_META_APP_READ)) != FV_OK)
            return rc;
        if ((rc = open_app(c, seg[0], seg[1])) != FV_OK)
            return rc;
        return seg[2][0] == 'f'   ? api_meta_forms(c)
               : seg[2][0] == 'r' ? api_meta_reports(c)
                                  : api_meta_pages(c);
    }
    if (n == 5 && strcmp(seg[2], "form") == 0 && strcmp(seg[4], "fields") == 0) {
        r->route = "meta.fields";
        if (!method_is(c, "GET"))
            return FV_E_METHOD;
        if ((rc = require_scope(c, FV_SCOPE_META_FORM_READ)) != FV_OK)
            return rc;
        if ((rc = open_app(c, seg[0], seg[1])) != FV_OK)
            return rc;
        return api_meta_fields(c, seg[3]);
    }
    return FV_E_NO_ROUTE;
}

static int dispatch(struct api_ctx *c)
{
    struct route_path p;
    int rc = split_path(c->req->path, &p);
    if (rc != FV_OK)
        return rc;
    /* 1. /creator/v2.1/{data|meta}/...  2. /api/v2.1/meta/...  3. /api/v2.1/{owner}/{app}/... */
    bool creator = p.n >= 3 && strcmp(p.seg[0], "creator") == 0 && strcmp(p.seg[1], "v2.1") == 0;
    bool legacy = p.n >= 3 && strcmp(p.seg[0], "api") == 0 && strcmp(p.seg[1], "v2.1") == 0;
    if (!creator && !legacy)
        return FV_E_NO_ROUTE;
    bool meta = strcmp(p.seg[2], "meta") == 0;
    bool data = creator ? strcmp(p.seg[2], "data") == 0 : !meta;
    if (!meta && !data)
        return FV_E_NO_ROUTE;
    /* Authenticate before revealing whether a route exists below the prefix. */
    if ((rc = authenticate(c)) != FV_OK)
        return rc;
    if (meta)
        return route_meta(c, p.seg + 3, p.n - 3);
    size_t base = creator ? 3 : 2; /* index of {owner} */
    if (p.n < base + 3)
        return FV_E_NO_ROUTE;
    return route_data(c, p.seg[base], p.seg[base + 1], p.seg + base + 2, p.n - base - 2);
}

void fv_api_handle(struct fv_api *api, const struct fv_api_request *req,
                   struct fv_api_response *resp)
{
    struct api_ctx c = {0};
    c.api = api;
    c.req = req;
    c.resp = resp;
    fv_error_init(&c.err);
    fv_store_last_error_clear();
    int rc = dispatch(&c);
    if (rc != FV_OK) {
        if (rc == FV_E_NO_ROUTE && c.err.code == FV_OK)
            (void)fv_error_set(&c.err, rc, SIZE_MAX, "no api matches '%.200s'", req->path);
        if (rc == FV_E_METHOD && c.err.code == FV_OK)
            (void)fv_error_set(&c.err, rc, SIZE_MAX, "method %.16s is not allowed for this url",
                               req->method);
        int status, code;
        fv_api_error_map(rc, &status, &code);
        if (status >= 500)
            fv_log_kv(FV_LOG_ERROR, "request failed", "request_id", req->request_id, "route",
                      resp->route, "error", fv_strerror(rc), "detail",
                      c.err.msg[0] ? c.err.msg : fv_store_last_error(), NULL);
        api_reply_error(&c, rc);
    }
    if (c.body)
        json_decref(c.body);
    if (c.tenant)
        fv_store_tenant_release(c.tenant);
}

bool fv_api_keys_ok(struct fv_api *api)
{
    return fv_store_keys_kek_ok(api->store);
}
