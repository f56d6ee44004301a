/*
 * store/store.c: the public store API. Every call dispatches through the
 * engine table of the store or tenant handle (STYLE 4), so a second engine
 * (PostgreSQL) can be added without touching callers.
 */
#include "store/store_int.h"

int fv_store_open(const struct fv_store_options *opt, struct fv_store **ret,
                  struct fv_error *reterr)
{
    const struct fv_store_engine *e = fv_store_engine_sqlite();
    FV_ASSERT(e->version == FV_STORE_ENGINE_VERSION);
    if (!opt || !ret)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "store options missing");
    return e->open(opt, ret, reterr);
}

void fv_store_close(struct fv_store *s)
{
    if (s)
        s->engine->close(s);
}

int fv_store_tenant_create(struct fv_store *s, const char *name, const char *region,
                           struct fv_store_tenant_info *ret, struct fv_error *reterr)
{
    return s->engine->tenant_create(s, name, region, ret, reterr);
}

int fv_store_tenant_list(struct fv_store *s, struct fv_store_tenant_info **ret, size_t *ret_n)
{
    return s->engine->tenant_list(s, ret, ret_n);
}

int fv_store_tenant_find(struct fv_store *s, const char *name, struct fv_store_tenant_info *ret)
{
    return s->engine->tenant_find(s, name, ret);
}

int fv_store_tenant_acquire(struct fv_store *s, int64_t tenant_id, struct fv_tenant **ret)
{
    return s->engine->tenant_acquire(s, tenant_id, ret);
}

void fv_store_tenant_release(struct fv_tenant *t)
{
    if (t)
        t->engine->tenant_release(t);
}

int fv_store_token_insert(struct fv_store *s, const struct fv_store_token *tok,
                          const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES], int64_t *ret_id)
{
    return s->engine->token_insert(s, tok, hash, ret_id);
}

int fv_store_token_lookup(struct fv_store *s, const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES],
                          struct fv_store_token *ret)
{
    return s->engine->token_lookup(s, hash, ret);
}

int fv_store_app_install(struct fv_tenant *t, const char *json, size_t len, const char *actor,
                         struct fv_error *reterr)
{
    return t->engine->app_install(t, json, len, actor, reterr);
}

int fv_store_app_get(struct fv_tenant *t, const char *link, const struct fv_app **ret)
{
    return t->engine->app_get(t, link, ret);
}

int fv_store_app_list(struct fv_tenant *t, struct fv_store_app_entry **ret, size_t *ret_n)
{
    return t->engine->app_list(t, ret, ret_n);
}

int fv_store_write(struct fv_tenant *t, const struct fv_app *app, struct fv_store_write *w,
                   size_t n, const char *actor)
{
    return t->engine->write(t, app, w, n, actor);
}

int fv_store_query(struct fv_tenant *t, const struct fv_app *app, const struct fv_store_query *q,
                   json_t **ret_rows, char *ret_cursor, size_t cursor_cap)
{
    return t->engine->query(t, app, q, ret_rows, ret_cursor, cursor_cap);
}

int fv_store_count(struct fv_tenant *t, const struct fv_form *form,
                   const struct fv_sql_where *where, int64_t *ret_n)
{
    return t->engine->count(t, form, where, ret_n);
}

int fv_store_changelog_read(struct fv_tenant *t, int64_t after_seq, size_t limit, json_t **ret)
{
    return t->engine->changelog_read(t, after_seq, limit, ret);
}
