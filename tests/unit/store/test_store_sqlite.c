/*
 * test_store_sqlite.c: store open and migrations, the catalog (tenants,
 * tokens) and the tenant cache, against real SQLite files in a temp dir.
 */
#include <pthread.h>

#include "store_fixture.h"

static void test_fv_store_open_creates_layout(void **state)
{
    struct fx *f = *state;
    char p[512];
    struct stat st;
    fx_open_store(f);
    fx_path(f, "", p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    fx_path(f, "tenants", p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    fx_path(f, "catalog.db", p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_fv_store_open_bad_options(void **state)
{
    struct fx *f = *state;
    struct fv_store *s = NULL;
    struct fv_error err;
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    o.tenant_cache_size = 0;
    fv_error_init(&err);
    assert_int_equal(fv_store_open(&o, &s, &err), FV_E_INVALID);
    assert_null(s);
    o = fx_opts(f, data, sizeof(data));
    o.group_commit_max = 0;
    assert_int_equal(fv_store_open(&o, &s, NULL), FV_E_INVALID);
}

static void test_fv_store_open_newer_version_corrupt(void **state)
{
    struct fx *f = *state;
    char p[512];
    sqlite3 *db = NULL;
    struct fv_store *s = NULL;
    struct fv_error err;
    fx_open_store(f);
    /* While the store is open its catalog is bound to the node key, so a
     * plain connection in this process can edit it (through the VFS). */
    fx_path(f, "catalog.db", p, sizeof(p));
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    fv_store_close(f->s);
    f->s = NULL;
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    fv_error_init(&err);
    assert_int_equal(fv_store_open(&o, &s, &err), FV_E_CORRUPT);
    assert_non_null(strstr(err.msg, "newer"));
    assert_null(s);
}

static void test_fv_store_open_not_a_database(void **state)
{
    struct fx *f = *state;
    char p[512];
    struct fv_store *s = NULL;
    struct fv_error err;
    fx_open_store(f); /* node.key and catalog.db exist ... */
    fv_store_close(f->s);
    f->s = NULL;
    fx_path(f, "catalog.db", p, sizeof(p));
    FILE *fp = fopen(p, "w"); /* ... and catalog.db is garbage */
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not sqlite at all ", fp);
    fclose(fp);
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    fv_error_init(&err);
    assert_int_equal(fv_store_open(&o, &s, &err), FV_E_CORRUPT);
}

static void test_fv_store_open_foreign_sqlite_corrupt(void **state)
{
    struct fx *f = *state;
    char p[512];
    sqlite3 *db = NULL;
    struct fv_store *s = NULL;
    struct fv_error err;
    fx_open_store(f);
    fx_path(f, "catalog.db", p, sizeof(p));
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA application_id=7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    fv_store_close(f->s);
    f->s = NULL;
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    fv_error_init(&err);
    assert_int_equal(fv_store_open(&o, &s, &err), FV_E_CORRUPT);
    assert_non_null(strstr(err.msg, "not a formvault"));
}

static void test_fv_store_open_reopen_persists(void **state)
{
    struct fx *f = *state;
    struct fv_store_tenant_info info, found;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "eu", &info, NULL), FV_OK);
    fv_store_close(f->s);
    f->s = NULL;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_find(f->s, "acme", &found), FV_OK);
    assert_int_equal(found.id, info.id);
    assert_string_equal(found.region, "eu");
    assert_int_equal(found.created_ms, info.created_ms);
}

static void test_fv_store_tenant_create_layout(void **state)
{
    struct fx *f = *state;
    struct fv_store_tenant_info info;
    char rel[64], p[512];
    struct stat st;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "us", &info, NULL), FV_OK);
    assert_true(info.id > 0);
    (void)snprintf(rel, sizeof(rel), "tenants/%lld", (long long)info.id);
    fx_path(f, rel, p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    (void)snprintf(rel, sizeof(rel), "tenants/%lld/tenant.db", (long long)info.id);
    fx_path(f, rel, p, sizeof(p));
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_fv_store_tenant_create_dup_name(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "us", NULL, NULL), FV_OK);
    fv_error_init(&err);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "eu", NULL, &err), FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "'acme'"));
    struct fv_store_tenant_info *list = NULL;
    size_t n = 0;
    assert_int_equal(fv_store_tenant_list(f->s, &list, &n), FV_OK);
    assert_int_equal(n, 1);
    fv_free(list);
}

static void test_fv_store_tenant_create_bad_name(void **state)
{
    struct fx *f = *state;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_create(f->s, "1abc", "us", NULL, NULL), FV_E_INVALID);
    assert_int_equal(fv_store_tenant_create(f->s, "a b", "us", NULL, NULL), FV_E_INVALID);
    assert_int_equal(fv_store_tenant_create(f->s, "../x", "us", NULL, NULL), FV_E_INVALID);
    assert_int_equal(fv_store_tenant_create(f->s, "ok", "u s", NULL, NULL), FV_E_INVALID);
    assert_int_equal(fv_store_tenant_create(f->s, "ok", "", NULL, NULL), FV_E_INVALID);
}

static void test_fv_store_tenant_create_orphan_dir_moved_aside(void **state)
{
    struct fx *f = *state;
    char p[512];
    struct fv_store_tenant_info info;
    fx_open_store(f);
    /* the directory a crashed create would leave for id 1 */
    fx_path(f, "tenants/1", p, sizeof(p));
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "us", &info, NULL), FV_OK);
    assert_int_equal(info.id, 1);
    struct fv_tenant *t = NULL;
    assert_int_equal(fv_store_tenant_acquire(f->s, info.id, &t), FV_OK);
    fv_store_tenant_release(t);
}

static void test_fv_store_tenant_list_ordered(void **state)
{
    struct fx *f = *state;
    struct fv_store_tenant_info *list = NULL;
    size_t n = 99;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_list(f->s, &list, &n), FV_OK);
    assert_int_equal(n, 0);
    fv_free(list);
    assert_int_equal(fv_store_tenant_create(f->s, "zeta", "us", NULL, NULL), FV_OK);
    assert_int_equal(fv_store_tenant_create(f->s, "alpha", "us", NULL, NULL), FV_OK);
    assert_int_equal(fv_store_tenant_list(f->s, &list, &n), FV_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "zeta");
    assert_string_equal(list[1].name, "alpha");
    assert_true(list[0].id < list[1].id);
    fv_free(list);
}

static void test_fv_store_tenant_find_missing(void **state)
{
    struct fx *f = *state;
    struct fv_store_tenant_info info;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_find(f->s, "nobody", &info), FV_E_NO_OWNER);
    assert_int_equal(fv_store_tenant_find(f->s, NULL, &info), FV_E_NO_OWNER);
}

static void test_fv_store_tenant_acquire_unknown(void **state)
{
    struct fx *f = *state;
    struct fv_tenant *t = NULL;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_acquire(f->s, 42, &t), FV_E_NO_OWNER);
    assert_null(t);
}

static void test_fv_store_tenant_acquire_cache_evicts(void **state)
{
    struct fx *f = *state;
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    struct fv_store_tenant_info a, b;
    struct fv_tenant *ta = NULL, *tb = NULL, *ta2 = NULL;
    o.tenant_cache_size = 1;
    assert_int_equal(fv_store_open(&o, &f->s, NULL), FV_OK);
    assert_int_equal(fv_store_tenant_create(f->s, "a", "us", &a, NULL), FV_OK);
    assert_int_equal(fv_store_tenant_create(f->s, "b", "us", &b, NULL), FV_OK);
    assert_int_equal(fv_store_tenant_acquire(f->s, a.id, &ta), FV_OK);
    /* both held: the cache may exceed its size while handles are in use */
    assert_int_equal(fv_store_tenant_acquire(f->s, b.id, &tb), FV_OK);
    assert_ptr_not_equal(ta, tb);
    fv_store_tenant_release(ta);
    fv_store_tenant_release(tb);
    assert_int_equal(fv_store_tenant_acquire(f->s, a.id, &ta2), FV_OK);
    assert_int_equal(fv_store_app_install(ta2, test_app_json, sizeof(test_app_json) - 1, "t", NULL),
                     FV_OK);
    fv_store_tenant_release(ta2);
    /* same handle while held twice */
    assert_int_equal(fv_store_tenant_acquire(f->s, a.id, &ta), FV_OK);
    assert_int_equal(fv_store_tenant_acquire(f->s, a.id, &ta2), FV_OK);
    assert_ptr_equal(ta, ta2);
    fv_store_tenant_release(ta);
    fv_store_tenant_release(ta2);
}

static void test_fv_store_token_insert_lookup_ok(void **state)
{
    struct fx *f = *state;
    struct fv_store_tenant_info info;
    uint8_t hash[FV_STORE_TOKEN_HASH_BYTES];
    struct fv_store_token tok = {0}, got;
    int64_t id = 0;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "us", &info, NULL), FV_OK);
    memset(hash, 0xab, sizeof(hash));
    tok.tenant_id = info.id;
    (void)fv_strlcpy(tok.scopes, "ZohoCreator.report.READ,ZohoCreator.form.CREATE",
                     sizeof(tok.scopes));
    (void)fv_strlcpy(tok.label, "ci", sizeof(tok.label));
    tok.expires_ms = 1234;
    assert_int_equal(fv_store_token_insert(f->s, &tok, hash, &id), FV_OK);
    assert_true(id > 0);
    assert_int_equal(fv_store_token_lookup(f->s, hash, &got), FV_OK);
    assert_int_equal(got.id, id);
    assert_int_equal(got.tenant_id, info.id);
    assert_string_equal(got.scopes, tok.scopes);
    assert_string_equal(got.label, "ci");
    assert_int_equal(got.expires_ms, 1234);
    assert_true(got.created_ms > 0);
}

static void test_fv_store_token_insert_dup_hash(void **state)
{
    struct fx *f = *state;
    struct fv_store_tenant_info info;
    uint8_t hash[FV_STORE_TOKEN_HASH_BYTES];
    struct fv_store_token tok = {0};
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "us", &info, NULL), FV_OK);
    memset(hash, 1, sizeof(hash));
    tok.tenant_id = info.id;
    assert_int_equal(fv_store_token_insert(f->s, &tok, hash, NULL), FV_OK);
    assert_int_equal(fv_store_token_insert(f->s, &tok, hash, NULL), FV_E_CONFLICT);
}

static void test_fv_store_token_insert_no_tenant(void **state)
{
    struct fx *f = *state;
    uint8_t hash[FV_STORE_TOKEN_HASH_BYTES];
    struct fv_store_token tok = {0};
    fx_open_store(f);
    memset(hash, 2, sizeof(hash));
    tok.tenant_id = 77;
    assert_int_equal(fv_store_token_insert(f->s, &tok, hash, NULL), FV_E_NOT_FOUND);
}

static void test_fv_store_token_lookup_missing(void **state)
{
    struct fx *f = *state;
    uint8_t hash[FV_STORE_TOKEN_HASH_BYTES];
    struct fv_store_token got;
    fx_open_store(f);
    memset(hash, 3, sizeof(hash));
    assert_int_equal(fv_store_token_lookup(f->s, hash, &got), FV_E_AUTH);
}

static void test_fv_store_open_read_only_refuses_writes(void **state)
{
    struct fx *f = *state;
    char data[300];
    struct fv_store_tenant_info info;
    struct fv_tenant *t = NULL;
    const struct fv_app *app = NULL;
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "us", &info, NULL), FV_OK);
    assert_int_equal(fv_store_tenant_acquire(f->s, info.id, &t), FV_OK);
    assert_int_equal(fv_store_app_install(t, test_app_json, sizeof(test_app_json) - 1, "t", NULL),
                     FV_OK);
    fv_store_tenant_release(t);
    fv_store_close(f->s);
    f->s = NULL;

    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    o.read_only = true;
    assert_int_equal(fv_store_open(&o, &f->s, NULL), FV_OK);
    assert_int_equal(fv_store_tenant_create(f->s, "other", "us", NULL, NULL), FV_E_READ_ONLY);
    assert_int_equal(fv_store_tenant_acquire(f->s, info.id, &t), FV_OK);
    assert_int_equal(fv_store_app_get(t, "clinic", &app), FV_OK);
    json_t *data_json = json_pack("{s:s}", "Patient_Number", "X1");
    struct fv_store_write w = {
        .op = FV_STORE_INSERT, .form = fv_model_app_form(app, "Patient"), .data = data_json};
    assert_int_equal(fv_store_write(t, app, &w, 1, "t"), FV_E_READ_ONLY);
    assert_int_equal(w.rc, FV_E_READ_ONLY);
    json_decref(data_json);
    fv_store_tenant_release(t);
}

static void test_fv_store_engine_sqlite_table_complete(void **state)
{
    (void)state;
    const struct fv_store_engine *e = fv_store_engine_sqlite();
    assert_int_equal(e->version, FV_STORE_ENGINE_VERSION);
    assert_string_equal(e->name, "sqlite");
    const void *const ptrs[] = {(const void *)e->open,           (const void *)e->close,
                                (const void *)e->tenant_create,  (const void *)e->tenant_list,
                                (const void *)e->tenant_find,    (const void *)e->tenant_acquire,
                                (const void *)e->tenant_release, (const void *)e->token_insert,
                                (const void *)e->token_lookup,   (const void *)e->app_install,
                                (const void *)e->app_get,        (const void *)e->app_list,
                                (const void *)e->write,          (const void *)e->query,
                                (const void *)e->count,          (const void *)e->changelog_read};
    for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++)
        assert_non_null(ptrs[i]);
}

struct churn_arg {
    struct fv_store *s;
    int64_t ids[3];
    int seed;
    int failures;
};

static void *churn(void *p)
{
    struct churn_arg *a = p;
    unsigned r = (unsigned)a->seed;
    for (int i = 0; i < 60; i++) {
        struct fv_tenant *t = NULL;
        const struct fv_app *app = NULL;
        r = r * 1103515245u + 12345u;
        if (fv_store_tenant_acquire(a->s, a->ids[(r >> 8) % 3], &t) != FV_OK) {
            a->failures++;
            continue;
        }
        if (fv_store_app_get(t, "clinic", &app) != FV_OK) {
            a->failures++;
        } else {
            int64_t n = 0;
            if (fv_store_count(t, fv_model_app_form(app, "Patient"), NULL, &n) != FV_OK)
                a->failures++;
        }
        fv_store_tenant_release(t);
    }
    return NULL;
}

static void test_fv_store_tenant_acquire_concurrent_eviction(void **state)
{
    struct fx *f = *state;
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    struct churn_arg args[4];
    pthread_t th[4];
    int64_t ids[3];
    o.tenant_cache_size = 1;
    assert_int_equal(fv_store_open(&o, &f->s, NULL), FV_OK);
    for (int i = 0; i < 3; i++) {
        char name[8];
        struct fv_store_tenant_info info;
        struct fv_tenant *t = NULL;
        (void)snprintf(name, sizeof(name), "t%d", i);
        assert_int_equal(fv_store_tenant_create(f->s, name, "us", &info, NULL), FV_OK);
        ids[i] = info.id;
        assert_int_equal(fv_store_tenant_acquire(f->s, info.id, &t), FV_OK);
        assert_int_equal(
            fv_store_app_install(t, test_app_json, sizeof(test_app_json) - 1, "t", NULL), FV_OK);
        fv_store_tenant_release(t);
    }
    for (int i = 0; i < 4; i++) {
        args[i].s = f->s;
        memcpy(args[i].ids, ids, sizeof(ids));
        args[i].seed = i + 1;
        args[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, churn, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
}

/* One pass of open, tenant, install, insert, query, close; any step may fail. */
static int torture_pass(struct fx *f)
{
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    struct fv_store *s = NULL;
    struct fv_tenant *t = NULL;
    const struct fv_app *app = NULL;
    struct fv_store_tenant_info info;
    json_t *d = NULL, *rows = NULL;
    char cursor[128];
    int rc = fv_store_open(&o, &s, NULL);
    if (rc == FV_OK)
        rc = fv_store_tenant_create(s, "acme", "us", &info, NULL);
    if (rc == FV_OK)
        rc = fv_store_tenant_acquire(s, info.id, &t);
    if (rc == FV_OK)
        rc = fv_store_app_install(t, test_app_json, sizeof(test_app_json) - 1, "t", NULL);
    if (rc == FV_OK)
        rc = fv_store_app_get(t, "clinic", &app);
    if (rc == FV_OK) {
        d = json_pack("{s:s,s:i}", "Patient_Number", "A", "Age", 3);
        struct fv_store_write w = {
            .op = FV_STORE_INSERT, .form = fv_model_app_form(app, "Patient"), .data = d};
        rc = fv_store_write(t, app, &w, 1, "t");
        if (rc == FV_OK)
            rc = w.rc;
        fv_free(w.results);
    }
    if (rc == FV_OK) {
        struct fv_store_query q = {.form = fv_model_app_form(app, "Patient"), .limit = 1};
        rc = fv_store_query(t, app, &q, &rows, cursor, sizeof(cursor));
    }
    json_decref(rows);
    json_decref(d);
    if (t)
        fv_store_tenant_release(t);
    fv_store_close(s);
    return rc;
}

static void test_fv_store_alloc_failure_torture(void **state)
{
    struct fx *f = *state;
    char data[512];
    long n;
    for (n = 1; n < 5000; n++) {
        fv_mem_fail_at(n, false);
        int rc = torture_pass(f);
        long used = fv_mem_count();
        fv_mem_fail_at(0, false);
        /* every failure is reported, never a crash or a wrong success */
        assert_true(rc == FV_OK || rc < 0);
        /* a fresh data dir for the next pass; the KEK file stays */
        fx_path(f, "", data, sizeof(data));
        (void)nftw(data, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        if (used < n) {
            assert_int_equal(rc, FV_OK); /* no failure was injected */
            break;
        }
    }
    assert_true(n < 5000);
    print_message("allocation failure points checked: %ld\n", n - 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_bare, fx_teardown)

int main(void)
{
    (void)fx_setup;
    const struct CMUnitTest tests[] = {
        T(test_fv_store_open_creates_layout),
        T(test_fv_store_open_bad_options),
        T(test_fv_store_open_newer_version_corrupt),
        T(test_fv_store_open_not_a_database),
        T(test_fv_store_open_foreign_sqlite_corrupt),
        T(test_fv_store_open_reopen_persists),
        T(test_fv_store_open_read_only_refuses_writes),
        T(test_fv_store_tenant_create_layout),
        T(test_fv_store_tenant_create_dup_name),
        T(test_fv_store_tenant_create_bad_name),
        T(test_fv_store_tenant_create_orphan_dir_moved_aside),
        T(test_fv_store_tenant_list_ordered),
        T(test_fv_store_tenant_find_missing),
        T(test_fv_store_tenant_acquire_unknown),
        T(test_fv_store_tenant_acquire_cache_evicts),
        T(test_fv_store_tenant_acquire_concurrent_eviction),
        T(test_fv_store_token_insert_lookup_ok),
        T(test_fv_store_token_insert_dup_hash),
        T(test_fv_store_token_insert_no_tenant),
        T(test_fv_store_token_lookup_missing),
        T(test_fv_store_engine_sqlite_table_complete),
        T(test_fv_store_alloc_failure_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
