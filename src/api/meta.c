/*
 * api/meta.c: Creator v2.1 meta API (creator-api.md 5.10): applications,
 * forms, reports, pages and the fields of a form.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"

static const char *const no_params[] = {NULL};

/* "20-Apr-2020 16:23:50" from ms since epoch (UTC). */
static void creation_date(int64_t ms, char *out, size_t cap)
{
    static const char *mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        (void)fv_strlcpy(out, "", cap);
        return;
    }
    (void)snprintf(out, cap, "%02d-%s-%04d %02d:%02d:%02d", tm.tm_mday, mon[tm.tm_mon],
                   tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int api_meta_applications(struct api_ctx *c, const char *owner)
{
    struct fv_store_app_entry *apps = NULL;
    size_t n = 0;
    json_t *list = NULL;
    int rc;
    if ((rc = api_query_allow(c, no_params)) != FV_OK)
        return rc;
    if (owner) {
        struct fv_store_tenant_info info;
        rc = fv_store_tenant_find(c->api->store, owner, &info);
        if (rc == FV_E_NO_OWNER || (rc == FV_OK && info.id != c->caller.tenant_id))
            return fv_error_set(&c->err, FV_E_DENIED, SIZE_MAX,
                                "the token has no access to owner '%.64s'", owner);
        if (rc != FV_OK)
            return rc;
    }
    struct fv_store_tenant_info *all = NULL;
    size_t nt = 0;
    const char *owner_name = owner;
    if (!owner) {
        if ((rc = fv_store_tenant_list(c->api->store, &all, &nt)) != FV_OK)
            return rc;
        for (size_t i = 0; i < nt; i++)
            if (all[i].id == c->caller.tenant_id)
                owner_name = all[i].name;
        if (!owner_name) {
            rc = FV_E_AUTH;
            goto out;
        }
    }
    (void)fv_strlcpy(c->resp->tenant, owner_name, sizeof(c->resp->tenant));
    if ((rc = fv_store_tenant_acquire(c->api->store, c->caller.tenant_id, &c->tenant)) != FV_OK)
        goto out;
    if ((rc = fv_store_app_list(c->tenant, &apps, &n)) != FV_OK)
        goto out;
    list = json_array();
    if (!list) {
        rc = FV_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct fv_app *a = apps[i].app;
        char created[32];
        creation_date(apps[i].created_ms, created, sizeof(created));
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "application_name",
                              a->display_name ? a->display_name : a->link_name, "link_name",
                              a->link_name, "date_format", a->date_format, "time_zone",
                              a->time_zone, "creation_date", created, "category", 1, "created_by",
                              owner_name, "workspace_name", owner_name);
        if (!o || json_array_append_new(list, o) != 0) {
            rc = FV_E_NOMEM;
            goto out;
        }
    }
    rc = api_reply_json(c, FV_OK, json_pack("{s:i,s:O}", "code", 3000, "applications", list));
out:
    json_decref(list);
    fv_free(apps);
    fv_free(all);
    return rc;
}

int api_meta_forms(struct api_ctx *c)
{
    int rc = api_query_allow(c, no_params);
    if (rc != FV_OK)
        return rc;
    if (c->app->n_forms == 0)
        return fv_error_set(&c->err, FV_E_NO_FORMS, SIZE_MAX, "application '%s' has no forms",
                            c->app->link_name);
    json_t *list = json_array();
    for (size_t i = 0; list && i < c->app->n_forms; i++) {
        const struct fv_form *f = &c->app->forms[i];
        if (json_array_append_new(list, json_pack("{s:s,s:s,s:i}", "display_name",
                                                  f->display_name ? f->display_name : f->link_name,
                                                  "link_name", f->link_name, "type", 1)) != 0) {
            json_decref(list);
            return FV_E_NOMEM;
        }
    }
    if (!list)
        return FV_E_NOMEM;
    return api_reply_json(c, FV_OK, json_pack("{s:i,s:o}", "code", 3000, "forms", list));
}

int api_meta_reports(struct api_ctx *c)
{
    int rc = api_query_allow(c, no_params);
    if (rc != FV_OK)
        return rc;
    if (c->app->n_reports == 0)
        return fv_error_set(&c->err, FV_E_NO_REPORTS, SIZE_MAX, "application '%s' has no reports",
                            c->app->link_name);
    json_t *list = json_array();
    for (size_t i = 0; list && i < c->app->n_reports; i++) {
        const struct fv_report *r = &c->app->reports[i];
        if (json_array_append_new(list, json_pack("{s:s,s:s,s:i}", "display_name",
                                                  r->display_name ? r->display_name : r->link_name,
                                                  "link_name", r->link_name, "type",
                                                  (int)r->type)) != 0) {
            json_decref(list);
            return FV_E_NOMEM;
        }
    }
    if (!list)
        return FV_E_NOMEM;
    return api_reply_json(c, FV_OK, json_pack("{s:i,s:o}", "code", 3000, "reports", list));
}

int api_meta_pages(struct api_ctx *c)
{
    int rc = api_query_allow(c, no_params);
    if (rc != FV_OK)
        return rc;
    return fv_error_set(&c->err, FV_E_NO_PAGES, SIZE_MAX, "application '%s' has no pages",
                        c->app->link_name);
}

static json_t *field_json(const struct fv_field *f)
{
    int max_char = f->max_length;
    if (max_char == 0) {
        switch (f->type) {
        case FV_FIELD_SINGLE_LINE:
        case FV_FIELD_EMAIL:
        case FV_FIELD_PHONE:
        case FV_FIELD_URL:
            max_char = FV_MODEL_TEXT_MAX;
            break;
        case FV_FIELD_MULTI_LINE:
        case FV_FIELD_RICH_TEXT:
            max_char = FV_MODEL_MULTILINE_MAX;
            break;
        default:
            break;
        }
    }
    json_t *o =
        json_pack("{s:s,s:s,s:i,s:s,s:b,s:b,s:i}", "display_name",
                  f->display_name ? f->display_name : f->link_name, "link_name", f->link_name,
                  "type", fv_model_type_code(f), "field_type", fv_model_type_name(f->type),
                  "mandatory", f->required, "unique", f->unique, "max_char", max_char);
    if (!o)
        return NULL;
    if (f->n_choices) {
        json_t *ch = json_array();
        for (size_t i = 0; ch && i < f->n_choices; i++)
            (void)json_array_append_new(ch, json_string(f->choices[i]));
        (void)json_object_set_new(o, "choices", ch);
    }
    if (f->type == FV_FIELD_LOOKUP && f->lookup_form)
        (void)json_object_set_new(o, "lookup",
                                  json_pack("{s:s,s:s?,s:b}", "form", f->lookup_form,
                                            "display_field", f->lookup_display, "multi",
                                            f->lookup_multi));
    if (f->encrypt || f->pii || f->contains_health_info)
        (void)json_object_set_new(o, "classification",
                                  json_pack("{s:b,s:b,s:b}", "encrypt", f->encrypt, "pii", f->pii,
                                            "contains_health_info", f->contains_health_info));
    return o;
}

int api_meta_fields(struct api_ctx *c, const char *form_name)
{
    int rc = api_query_allow(c, no_params);
    if (rc != FV_OK)
        return rc;
    const struct fv_form *form = fv_model_app_form(c->app, form_name);
    if (!form)
        return fv_error_set(&c->err, FV_E_NO_FORM, SIZE_MAX, "no form '%.64s'", form_name);
    json_t *list = json_array();
    for (size_t i = 0; list && i < form->n_fields; i++) {
        if (json_array_append_new(list, field_json(&form->fields[i])) != 0) {
            json_decref(list);
            return FV_E_NOMEM;
        }
    }
    if (!list)
        return FV_E_NOMEM;
    return api_reply_json(c, FV_OK, json_pack("{s:i,s:o}", "code", 3000, "fields", list));
}
