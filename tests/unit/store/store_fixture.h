/*
 * store_fixture.h: shared helpers of the store unit tests: a temporary data
 * directory removed after each test, a store with one tenant and the test
 * app installed, and small record helpers. Included by test_*.c only.
 */
#ifndef FV_TEST_STORE_FIXTURE_H
#define FV_TEST_STORE_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ftw.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

/* Two forms; Visit looks up Patient by Patient_Number. */
static const char test_app_json[] =
    "{\"format\":1,\"link_name\":\"clinic\",\"date_format\":\"dd-MMM-yyyy\","
    "\"forms\":["
    "{\"link_name\":\"Patient\",\"fields\":["
    "{\"link_name\":\"Patient_Number\",\"type\":\"single_line\",\"required\":true,"
    "\"unique\":true,\"max_length\":16},"
    "{\"link_name\":\"Full_Name\",\"type\":\"name\"},"
    "{\"link_name\":\"Age\",\"type\":\"number\"},"
    "{\"link_name\":\"Blood_Type\",\"type\":\"dropdown\",\"choices\":[\"A+\",\"B+\",\"O-\"],"
    "\"default\":\"O-\"},"
    "{\"link_name\":\"Seq\",\"type\":\"autonumber\",\"prefix\":\"P-\"}]},"
    "{\"link_name\":\"Visit\",\"fields\":["
    "{\"link_name\":\"Patient\",\"type\":\"lookup\","
    "\"lookup\":{\"form\":\"Patient\",\"display_field\":\"Patient_Number\"}},"
    "{\"link_name\":\"Fee\",\"type\":\"currency\"}]}],"
    "\"reports\":[{\"link_name\":\"All_Patients\",\"form\":\"Patient\"}]}";

struct fx {
    char dir[256];
    struct fv_store *s;
    struct fv_tenant *t;
    int64_t tenant_id;
    const struct fv_app *app;
    const struct fv_form *patient;
    const struct fv_form *visit;
    struct fv_kek *kek; /* file KEK in dir/kek.key, outside the data dir */
};

static inline int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void fx_mkdtemp(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    const char *base = getenv("TMPDIR");
    (void)snprintf(f->dir, sizeof(f->dir), "%s/fv-store-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    char kek[300], data[300];
    struct fv_error err;
    fv_error_init(&err);
    (void)snprintf(kek, sizeof(kek), "%s/kek.key", f->dir);
    (void)snprintf(data, sizeof(data), "%s/data", f->dir);
    if (fv_crypto_kek_file_create(kek, data, &err) != FV_OK ||
        fv_crypto_kek_file_open(&f->kek, kek, data, &err) != FV_OK)
        fail_msg("kek: %s", err.msg);
}

static inline void fx_rmdir(struct fx *f)
{
    fv_crypto_kek_free(f->kek);
    f->kek = NULL;
    if (f->dir[0])
        (void)nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline struct fv_store_options fx_opts(struct fx *f, char *data, size_t cap)
{
    (void)snprintf(data, cap, "%s/data", f->dir);
    struct fv_store_options o = {.data_dir = data, .tenant_cache_size = 4,
                                 .group_commit_max = 64, .read_only = false, .kek = f->kek};
    return o;
}

static inline void fx_open_store(struct fx *f)
{
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    struct fv_error err;
    fv_error_init(&err);
    int rc = fv_store_open(&o, &f->s, &err);
    if (rc != FV_OK)
        fail_msg("fv_store_open: %s %s", fv_strerror(rc), err.msg);
}

/* Acquire tenant "acme" and look up the app and its forms. */
static inline void fx_acquire(struct fx *f)
{
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &f->t), FV_OK);
    if (fv_store_app_get(f->t, "clinic", &f->app) == FV_OK) {
        f->patient = fv_model_app_form(f->app, "Patient");
        f->visit = fv_model_app_form(f->app, "Visit");
    }
}

/* Full fixture: store, tenant "acme", app installed, handle acquired. */
static inline int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct fv_store_tenant_info info;
    struct fv_error err;
    fx_mkdtemp(f);
    fx_open_store(f);
    fv_error_init(&err);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "us", &info, &err), FV_OK);
    f->tenant_id = info.id;
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &f->t), FV_OK);
    int rc = fv_store_app_install(f->t, test_app_json, sizeof(test_app_json) - 1, "test", &err);
    if (rc != FV_OK)
        fail_msg("install: %s %s", fv_strerror(rc), err.msg);
    fv_store_tenant_release(f->t);
    fx_acquire(f);
    assert_non_null(f->patient);
    assert_non_null(f->visit);
    *state = f;
    return 0;
}

/* Store only (no tenant). */
static inline int fx_setup_bare(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    fx_mkdtemp(f);
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    struct fx *f = *state;
    if (f) {
        fv_store_tenant_release(f->t);
        fv_store_close(f->s);
        fx_rmdir(f);
        free(f);
    }
    return 0;
}

/* Close and reopen the store (persistence checks). */
static inline void fx_reopen(struct fx *f)
{
    fv_store_tenant_release(f->t);
    f->t = NULL;
    fv_store_close(f->s);
    f->s = NULL;
    fx_open_store(f);
    fx_acquire(f);
}

/* Insert one record from JSON text; returns w.rc, *ret_id the new ID. */
static inline int fx_insert(struct fx *f, const struct fv_form *form, const char *json, uint64_t *ret_id,
                     struct fv_error *ret_err)
{
    json_t *data = json_loads(json, 0, NULL);
    assert_non_null(data);
    struct fv_store_write w = {.op = FV_STORE_INSERT, .form = form, .data = data};
    int rc = fv_store_write(f->t, f->app, &w, 1, "tester");
    json_decref(data);
    assert_int_equal(rc, FV_OK);
    if (ret_id)
        *ret_id = w.ret_id;
    if (ret_err)
        *ret_err = w.err;
    fv_free(w.results);
    return w.rc;
}

static inline void fx_patient(struct fx *f, const char *number, int age, uint64_t *ret_id)
{
    char json[256];
    (void)snprintf(json, sizeof(json), "{\"Patient_Number\":\"%s\",\"Age\":%d}", number, age);
    struct fv_error err;
    int rc = fx_insert(f, f->patient, json, ret_id, &err);
    if (rc != FV_OK)
        fail_msg("insert %s: %s %s", number, fv_strerror(rc), err.msg);
}

/* One record by ID as a new JSON object, or NULL. */
static inline json_t *fx_get(struct fx *f, const struct fv_form *form, uint64_t id)
{
    json_t *rows = NULL;
    char cursor[128];
    struct fv_store_query q = {.form = form, .id = id, .limit = 1};
    assert_int_equal(fv_store_query(f->t, f->app, &q, &rows, cursor, sizeof(cursor)), FV_OK);
    json_t *r = json_array_get(rows, 0);
    if (r)
        json_incref(r);
    json_decref(rows);
    return r;
}

/* Compile criteria text against form into w (must succeed). */
static inline void fx_where(struct fx *f, const struct fv_form *form, const char *text,
                     struct fv_sql_where *w)
{
    struct fv_criteria *c = NULL;
    struct fv_error err;
    fv_error_init(&err);
    fv_model_where_init(w);
    int rc = fv_model_criteria_parse(text, strlen(text), &c, &err);
    if (rc == FV_OK)
        rc = fv_model_criteria_compile(c, f->app, form, w, &err);
    fv_model_criteria_free(c);
    if (rc != FV_OK)
        fail_msg("criteria '%s': %s %s", text, fv_strerror(rc), err.msg);
}

static inline int64_t fx_count(struct fx *f, const struct fv_form *form)
{
    int64_t n = -1;
    assert_int_equal(fv_store_count(f->t, form, NULL, &n), FV_OK);
    return n;
}

/* Number of change-log entries after seq 0 (reads up to 100000). */
static inline size_t fx_changelog_n(struct fx *f, const char *op)
{
    json_t *arr = NULL;
    size_t i, n = 0;
    json_t *e;
    assert_int_equal(fv_store_changelog_read(f->t, 0, 100000, &arr), FV_OK);
    json_array_foreach(arr, i, e) {
        if (!op || strcmp(json_string_value(json_object_get(e, "op")), op) == 0)
            n++;
    }
    json_decref(arr);
    return n;
}

/* Path of a file under the fixture data dir. */
static inline void fx_path(struct fx *f, const char *rel, char *out, size_t cap)
{
    (void)snprintf(out, cap, "%s/data/%s", f->dir, rel);
}

#endif
