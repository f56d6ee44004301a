/*
 * test_tenant_db.c: app install and upgrade (DDL, conflicts, change log),
 * app lookups, persistence of definitions across reopen.
 */
#include "store_fixture.h"

/* The test app plus one new field on Patient and a new form. */
static const char upgraded_json[] =
    "{\"format\":1,\"link_name\":\"clinic\",\"date_format\":\"dd-MMM-yyyy\","
    "\"forms\":["
    "{\"link_name\":\"Patient\",\"fields\":["
    "{\"link_name\":\"Patient_Number\",\"type\":\"single_line\",\"required\":true,"
    "\"unique\":true,\"max_length\":16},"
    "{\"link_name\":\"Full_Name\",\"type\":\"name\"},"
    "{\"link_name\":\"Age\",\"type\":\"number\"},"
    "{\"link_name\":\"Blood_Type\",\"type\":\"dropdown\",\"choices\":[\"A+\",\"B+\",\"O-\"],"
    "\"default\":\"O-\"},"
    "{\"link_name\":\"Seq\",\"type\":\"autonumber\",\"prefix\":\"P-\"},"
    "{\"link_name\":\"Email\",\"type\":\"email\",\"unique\":true}]},"
    "{\"link_name\":\"Visit\",\"fields\":["
    "{\"link_name\":\"Patient\",\"type\":\"lookup\","
    "\"lookup\":{\"form\":\"Patient\",\"display_field\":\"Patient_Number\"}},"
    "{\"link_name\":\"Fee\",\"type\":\"currency\"}]},"
    "{\"link_name\":\"Room\",\"fields\":[{\"link_name\":\"Label\",\"type\":\"single_line\"}]}]}";

static int install(struct fx *f, const char *json, struct fv_error *err)
{
    fv_error_init(err);
    return fv_store_app_install(f->t, json, strlen(json), "admin", err);
}

static void test_fv_store_app_install_ok(void **state)
{
    struct fx *f = *state;
    struct fv_store_app_entry *list = NULL;
    size_t n = 0;
    assert_string_equal(f->app->link_name, "clinic");
    assert_int_equal(f->app->n_forms, 2);
    assert_int_equal(fv_store_app_list(f->t, &list, &n), FV_OK);
    assert_int_equal(n, 1);
    assert_ptr_equal(list[0].app, f->app);
    assert_true(list[0].created_ms > 0);
    fv_free(list);
    assert_int_equal(fx_count(f, f->patient), 0);
    assert_int_equal(fx_changelog_n(f, "schema"), 1);
}

static void test_fv_store_app_install_invalid_definition(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    assert_int_equal(install(f, "{\"format\":1}", &err), FV_E_INVALID);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(install(f, "not json", &err), FV_E_INVALID);
    assert_int_equal(fx_changelog_n(f, "schema"), 1);
}

static void test_fv_store_app_install_upgrade_adds_field_and_form(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    uint64_t id = 0;
    const struct fv_app *old_app = f->app;
    fx_patient(f, "P1", 30, &id);
    assert_int_equal(install(f, upgraded_json, &err), FV_OK);
    /* the borrowed old definition stays valid for this handle */
    assert_string_equal(old_app->link_name, "clinic");
    assert_int_equal(fv_store_app_get(f->t, "clinic", &f->app), FV_OK);
    assert_ptr_not_equal(f->app, old_app);
    assert_int_equal(f->app->n_forms, 3);
    f->patient = fv_model_app_form(f->app, "Patient");
    json_t *row = fx_get(f, f->patient, id);
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "Email")), "");
    json_decref(row);
    uint64_t id2 = 0;
    assert_int_equal(
        fx_insert(f, f->patient, "{\"Patient_Number\":\"P2\",\"Email\":\"a@b.co\"}", &id2, NULL),
        FV_OK);
    /* the new unique index is in force */
    assert_int_equal(
        fx_insert(f, f->patient, "{\"Patient_Number\":\"P3\",\"Email\":\"a@b.co\"}", NULL, NULL),
        FV_E_CONFLICT);
    assert_int_equal(fx_changelog_n(f, "schema"), 2);
}

static void test_fv_store_app_install_remove_field_conflict(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    const char *json =
        "{\"format\":1,\"link_name\":\"clinic\",\"forms\":["
        "{\"link_name\":\"Patient\",\"fields\":["
        "{\"link_name\":\"Patient_Number\",\"type\":\"single_line\"}]},"
        "{\"link_name\":\"Visit\",\"fields\":[{\"link_name\":\"Patient\",\"type\":\"lookup\","
        "\"lookup\":{\"form\":\"Patient\",\"display_field\":\"Patient_Number\"}},"
        "{\"link_name\":\"Fee\",\"type\":\"currency\"}]}]}";
    assert_int_equal(install(f, json, &err), FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "cannot be removed"));
    const struct fv_app *app = NULL;
    assert_int_equal(fv_store_app_get(f->t, "clinic", &app), FV_OK);
    assert_ptr_equal(app, f->app);
    assert_int_equal(fx_changelog_n(f, "schema"), 1);
}

static void test_fv_store_app_install_change_type_conflict(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    char *json = strdup(test_app_json);
    char *p = strstr(json, "{\"link_name\":\"Age\",\"type\":\"number\"}");
    assert_non_null(p);
    memcpy(strstr(p, "number"), "email\" ", 7); /* same length: "number" -> "email" + space */
    assert_int_equal(install(f, json, &err), FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "'Age'"));
    free(json);
}

static void test_fv_store_app_install_remove_form_conflict(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    const char *json =
        "{\"format\":1,\"link_name\":\"clinic\",\"forms\":["
        "{\"link_name\":\"Patient\",\"fields\":["
        "{\"link_name\":\"Patient_Number\",\"type\":\"single_line\",\"required\":true,"
        "\"unique\":true,\"max_length\":16},"
        "{\"link_name\":\"Full_Name\",\"type\":\"name\"},"
        "{\"link_name\":\"Age\",\"type\":\"number\"},"
        "{\"link_name\":\"Blood_Type\",\"type\":\"dropdown\",\"choices\":[\"A+\",\"B+\",\"O-\"]},"
        "{\"link_name\":\"Seq\",\"type\":\"autonumber\",\"prefix\":\"P-\"}]}]}";
    assert_int_equal(install(f, json, &err), FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "'Visit'"));
}

static void test_fv_store_app_install_unique_on_duplicates_conflict(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    assert_int_equal(fx_insert(f, f->patient, "{\"Patient_Number\":\"A\",\"Age\":5}", NULL, NULL),
                     FV_OK);
    assert_int_equal(fx_insert(f, f->patient, "{\"Patient_Number\":\"B\",\"Age\":5}", NULL, NULL),
                     FV_OK);
    char *json = strdup(test_app_json);
    char *p = strstr(json, "{\"link_name\":\"Age\",\"type\":\"number\"}");
    assert_non_null(p);
    size_t need = strlen(json) + 32;
    char *out = malloc(need);
    (void)snprintf(out, need, "%.*s{\"link_name\":\"Age\",\"type\":\"number\",\"unique\":true}%s",
                   (int)(p - json), json,
                   p + strlen("{\"link_name\":\"Age\",\"type\":\"number\"}"));
    assert_int_equal(install(f, out, &err), FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "'Age'"));
    free(out);
    free(json);
    /* nothing changed: the old definition is still current and writable */
    assert_int_equal(fx_insert(f, f->patient, "{\"Patient_Number\":\"C\",\"Age\":5}", NULL, NULL),
                     FV_OK);
}

static void test_fv_store_app_install_two_apps_same_form(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    const char *other = "{\"format\":1,\"link_name\":\"crm\",\"forms\":["
                        "{\"link_name\":\"Patient\",\"fields\":["
                        "{\"link_name\":\"Nick\",\"type\":\"single_line\"}]}]}";
    assert_int_equal(install(f, other, &err), FV_OK);
    const struct fv_app *crm = NULL;
    assert_int_equal(fv_store_app_get(f->t, "crm", &crm), FV_OK);
    json_t *d = json_pack("{s:s}", "Nick", "x");
    struct fv_store_write w = {
        .op = FV_STORE_INSERT, .form = fv_model_app_form(crm, "Patient"), .data = d};
    assert_int_equal(fv_store_write(f->t, crm, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_OK);
    json_decref(d);
    assert_int_equal(fx_count(f, fv_model_app_form(crm, "Patient")), 1);
    assert_int_equal(fx_count(f, f->patient), 0);
    struct fv_store_app_entry *list = NULL;
    size_t n = 0;
    assert_int_equal(fv_store_app_list(f->t, &list, &n), FV_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].app->link_name, "clinic");
    assert_string_equal(list[1].app->link_name, "crm");
    fv_free(list);
}

static void test_fv_store_app_install_form_of_wrong_app_refused(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    const char *other = "{\"format\":1,\"link_name\":\"crm\",\"forms\":["
                        "{\"link_name\":\"Lead\",\"fields\":["
                        "{\"link_name\":\"Nick\",\"type\":\"single_line\"}]}]}";
    assert_int_equal(install(f, other, &err), FV_OK);
    const struct fv_app *crm = NULL;
    assert_int_equal(fv_store_app_get(f->t, "crm", &crm), FV_OK);
    json_t *d = json_pack("{s:s}", "Nick", "x");
    /* form of crm written through clinic */
    struct fv_store_write w = {
        .op = FV_STORE_INSERT, .form = fv_model_app_form(crm, "Lead"), .data = d};
    assert_int_equal(fv_store_write(f->t, f->app, &w, 1, "t"), FV_OK);
    assert_int_equal(w.rc, FV_E_NO_FORM);
    json_decref(d);
}

static void test_fv_store_app_get_missing(void **state)
{
    struct fx *f = *state;
    const struct fv_app *app = NULL;
    assert_int_equal(fv_store_app_get(f->t, "nope", &app), FV_E_NO_APP);
    assert_int_equal(fv_store_app_get(f->t, NULL, &app), FV_E_NO_APP);
    assert_null(app);
}

static void test_fv_store_app_install_persists_reopen(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    assert_int_equal(install(f, upgraded_json, &err), FV_OK);
    fx_reopen(f);
    assert_non_null(f->app);
    assert_int_equal(f->app->n_forms, 3);
    assert_non_null(fv_model_app_form(f->app, "Room"));
}

static void test_fv_store_app_install_read_only_tenant_db_version(void **state)
{
    struct fx *f = *state;
    char rel[64], p[512];
    sqlite3 *db = NULL;
    /* Edit while the tenant is open: its path is bound to its keys. */
    (void)snprintf(rel, sizeof(rel), "tenants/%lld/tenant.db", (long long)f->tenant_id);
    fx_path(f, rel, p, sizeof(p));
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=1000", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    fv_store_tenant_release(f->t);
    f->t = NULL;
    fv_store_close(f->s);
    f->s = NULL;
    fx_open_store(f);
    struct fv_tenant *t = NULL;
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_CORRUPT);
    assert_null(t);
    /* a failed open is not cached: the same error again, no crash */
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_CORRUPT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fv_store_app_install_ok),
        T(test_fv_store_app_install_invalid_definition),
        T(test_fv_store_app_install_upgrade_adds_field_and_form),
        T(test_fv_store_app_install_remove_field_conflict),
        T(test_fv_store_app_install_change_type_conflict),
        T(test_fv_store_app_install_remove_form_conflict),
        T(test_fv_store_app_install_unique_on_duplicates_conflict),
        T(test_fv_store_app_install_two_apps_same_form),
        T(test_fv_store_app_install_form_of_wrong_app_refused),
        T(test_fv_store_app_get_missing),
        T(test_fv_store_app_install_persists_reopen),
        T(test_fv_store_app_install_read_only_tenant_db_version),
    };
    (void)fx_setup_bare;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
