/*
 * store/tenant_db.c: tenant databases: creation, schema migrations, opening
 * and closing, app definitions (load once per open, install/upgrade with
 * DDL) and the per-form SQL facts the write and read paths reuse.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/store_int.h"

/* Tenant schema steps; index i takes user_version i to i + 1. Append only. */
static const char *const tenant_steps[] = {
    /* 1 */
    "CREATE TABLE fv_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;"
    "INSERT INTO fv_meta(key, value) VALUES ('next_id', 4000000000000000001);"
    "CREATE TABLE fv_apps ("
    " link_name TEXT PRIMARY KEY,"
    " definition TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " modified INTEGER NOT NULL) STRICT;"
    "CREATE TABLE fv_tables ("
    " name TEXT PRIMARY KEY,"
    " app TEXT NOT NULL,"
    " form TEXT NOT NULL) STRICT;"
    "CREATE TABLE fv_changelog ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete', 'schema')),"
    " app TEXT,"
    " form TEXT,"
    " record_id INTEGER,"
    " row TEXT) STRICT;"
    "CREATE TABLE fv_autonumber ("
    " app TEXT NOT NULL,"
    " form TEXT NOT NULL,"
    " field TEXT NOT NULL,"
    " next INTEGER NOT NULL,"
    " PRIMARY KEY (app, form, field)) STRICT, WITHOUT ROWID;",
};

static const char *const sys_cols[] = {"ID",         "Added_Time",    "Modified_Time",
                                       "Added_User", "Modified_User", "row_version"};

/* Identifiers embedded in SQL text: [A-Za-z0-9_]+ only (defence in depth;
 * the model already validated every link name). */
static bool ident_ok(const char *s)
{
    if (!s[0])
        return false;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return false;
    }
    return true;
}

static const char *sql_type_name(enum fv_sql_type t)
{
    switch (t) {
    case FV_SQL_INT:
        return "INTEGER";
    case FV_SQL_REAL:
        return "REAL";
    case FV_SQL_BLOB:
        return "BLOB"; /* the sealed value and blind index of an encrypted field */
    case FV_SQL_TEXT:
    case FV_SQL_NULL:
    default:
        return "TEXT";
    }
}

/* ------------------------------------------------------------ form facts */

static void form_release(struct fv_store_form *f)
{
    FV_FREE(f->col_off);
    FV_FREE(f->col_n);
    FV_FREE(f->col_names);
    FV_FREE(f->col_types);
    FV_FREE(f->insert_sql);
}

static int form_build(const struct fv_app *app, const struct fv_form *form, struct fv_store_form *f)
{
    int rc = FV_OK;
    struct fv_buf b;
    fv_buf_init(&b, FV_STORE_SQL_MAX);

    memset(f, 0, sizeof(*f));
    f->form = form;
    rc = fv_model_form_table(app, form, f->table, sizeof(f->table));
    if (rc != FV_OK || !ident_ok(f->table)) {
        rc = FV_E_INVALID;
        goto out;
    }
    f->col_off = fv_calloc(form->n_fields ? form->n_fields : 1, sizeof(size_t));
    f->col_n = fv_calloc(form->n_fields ? form->n_fields : 1, sizeof(size_t));
    if (!f->col_off || !f->col_n) {
        rc = FV_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < form->n_fields; i++) {
        size_t n = fv_model_field_ncols(&form->fields[i]);
        if (n == 0 || n > FV_MODEL_MAX_COLS) {
            rc = FV_E_INVALID;
            goto out;
        }
        f->col_off[i] = f->n_cols;
        f->col_n[i] = n;
        f->n_cols += n;
    }
    f->col_names = fv_calloc(f->n_cols ? f->n_cols : 1, sizeof(*f->col_names));
    f->col_types = fv_calloc(f->n_cols ? f->n_cols : 1, sizeof(*f->col_types));
    if (!f->col_names || !f->col_types) {
        rc = FV_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < form->n_fields; i++) {
        for (size_t k = 0; k < f->col_n[i]; k++) {
            size_t c = f->col_off[i] + k;
            const char *part = NULL;
            rc = fv_model_field_column(&form->fields[i], k, f->col_names[c],
                                       sizeof(f->col_names[c]), &f->col_types[c], &part);
            if (rc != FV_OK)
                goto out;
            if (!ident_ok(f->col_names[c])) {
                rc = FV_E_INVALID;
                goto out;
            }
        }
    }

    /* INSERT of every column: one statement text per form, prepared once per
     * writer connection. */
    rc = fv_buf_appendf(&b, "INSERT INTO \"%s\" (", f->table);
    for (size_t i = 0; rc == FV_OK && i < FV_ARRAY_LEN(sys_cols); i++)
        rc = fv_buf_appendf(&b, "%s\"%s\"", i ? ", " : "", sys_cols[i]);
    for (size_t c = 0; rc == FV_OK && c < f->n_cols; c++)
        rc = fv_buf_appendf(&b, ", \"%s\"", f->col_names[c]);
    if (rc == FV_OK)
        rc = fv_buf_append_cstr(&b, ") VALUES (");
    for (size_t i = 0; rc == FV_OK && i < FV_ARRAY_LEN(sys_cols) + f->n_cols; i++)
        rc = fv_buf_appendf(&b, "%s?%zu", i ? ", " : "", i + 1);
    if (rc == FV_OK)
        rc = fv_buf_append_cstr(&b, ") RETURNING *");
    if (rc != FV_OK)
        goto out;
    f->insert_sql = fv_buf_detach(&b, &f->insert_len);
    if (!f->insert_sql)
        rc = FV_E_NOMEM;
out:
    fv_buf_release(&b);
    if (rc != FV_OK)
        form_release(f);
    return rc;
}

static void app_entry_free(struct fv_store_app *a)
{
    if (!a)
        return;
    if (a->forms && a->app) {
        for (size_t i = 0; i < a->app->n_forms; i++)
            form_release(&a->forms[i]);
    }
    fv_free(a->forms);
    fv_model_app_free(a->app);
    fv_free(a);
}

/* Takes ownership of app (freed on failure too). */
static int app_entry_new(struct fv_app *app, int64_t created_ms, struct fv_store_app **ret)
{
    int rc = FV_OK;
    struct fv_store_app *a = fv_calloc(1, sizeof(*a));
    if (!a) {
        fv_model_app_free(app);
        return FV_E_NOMEM;
    }
    a->app = app;
    a->created_ms = created_ms;
    a->current = true;
    a->forms = fv_calloc(app->n_forms ? app->n_forms : 1, sizeof(*a->forms));
    if (!a->forms) {
        rc = FV_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < app->n_forms; i++) {
        rc = form_build(app, &app->forms[i], &a->forms[i]);
        if (rc != FV_OK)
            goto out;
    }
    *ret = a;
    a = NULL;
out:
    if (a) {
        /* form_build released the failed entry; earlier ones are released here */
        app_entry_free(a);
    }
    return rc;
}

const struct fv_store_form *fv_store_form_find(struct fv_tenant *t, const struct fv_form *form,
                                               const struct fv_app **ret_app)
{
    const struct fv_store_form *found = NULL;
    if (!form)
        return NULL;
    (void)pthread_rwlock_rdlock(&t->apps_lock);
    for (struct fv_store_app *a = t->apps; a && !found; a = a->next) {
        const struct fv_app *app = a->app;
        if (app->n_forms && form >= app->forms && form < app->forms + app->n_forms) {
            found = &a->forms[form - app->forms];
            if (ret_app)
                *ret_app = app;
        }
    }
    (void)pthread_rwlock_unlock(&t->apps_lock);
    return found;
}

/* ---------------------------------------------------------- create/open */

static int tenant_paths(struct fv_store *s, int64_t id, char **ret_dir, char **ret_db)
{
    char name[32];
    (void)snprintf(name, sizeof(name), "%lld", (long long)id);
    size_t ld = strlen(s->tenants_dir), ln = strlen(name);
    char *dir = fv_malloc(ld + 1 + ln + 1);
    char *db = fv_malloc(ld + 1 + ln + sizeof("/tenant.db"));
    if (!dir || !db) {
        fv_free(dir);
        fv_free(db);
        return FV_E_NOMEM;
    }
    (void)snprintf(dir, ld + 1 + ln + 1, "%s/%s", s->tenants_dir, name);
    (void)snprintf(db, ld + 1 + ln + sizeof("/tenant.db"), "%s/%s/tenant.db", s->tenants_dir, name);
    *ret_dir = dir;
    *ret_db = db;
    return FV_OK;
}

int fv_store_tenant_db_create(struct fv_store *s, int64_t id, struct fv_keyring *kr,
                              struct fv_error *reterr)
{
    int rc = FV_OK;
    char *dir = NULL, *db = NULL;
    struct fv_store_conn *c = NULL;
    struct stat st;
    struct fv_error detail; /* names paths: debug log only (STYLE 16) */
    bool bound = false;

    fv_error_init(&detail);
    rc = tenant_paths(s, id, &dir, &db);
    if (rc != FV_OK)
        return rc;
    if (lstat(dir, &st) == 0) {
        /* Left by a create that crashed before its catalog row committed:
         * never acknowledged, but keep it aside rather than delete data. */
        char aside[FV_CONFIG_PATH_MAX + 64];
        (void)snprintf(aside, sizeof(aside), "%s.orphan-%lld", dir, (long long)fv_time_now_ms());
        if (rename(dir, aside) != 0) {
            rc = fv_error_set(&detail, FV_E_IO, SIZE_MAX, "cannot move orphan '%s' aside: %s", dir,
                              strerror(errno));
            goto out;
        }
        fv_log(FV_LOG_DEBUG, "store: moved orphan tenant directory aside");
    }
    if (mkdir(dir, 0700) != 0) {
        rc = fv_error_set(&detail, FV_E_IO, SIZE_MAX, "cannot create '%s': %s", dir,
                          strerror(errno));
        goto out;
    }
    rc = fv_store_vfs_bind(db, kr);
    if (rc != FV_OK)
        goto out;
    bound = true;
    rc = fv_store_conn_open(db, FV_STORE_CONN_CREATE, &c, &detail);
    if (rc != FV_OK)
        goto out;
    rc = fv_store_migrate(c, FV_STORE_APPID_TENANT, tenant_steps, FV_ARRAY_LEN(tenant_steps), false,
                          "tenant", &detail);
    if (rc != FV_OK)
        goto out;
    fv_store_conn_close(c);
    c = NULL;
    if (fv_store_fsync_dir(dir) != FV_OK || fv_store_fsync_dir(s->tenants_dir) != FV_OK)
        rc = fv_error_set(&detail, FV_E_IO, SIZE_MAX, "cannot sync '%s'", dir);
out:
    if (rc != FV_OK) {
        fv_log(FV_LOG_DEBUG, "store: creating tenant database %lld: %s", (long long)id, detail.msg);
        (void)fv_error_set(reterr, rc, SIZE_MAX, "cannot create the tenant database");
    }
    fv_store_conn_close(c);
    if (bound)
        fv_store_vfs_unbind(db, kr);
    fv_free(dir);
    fv_free(db);
    return rc;
}

static int load_apps(struct fv_tenant *t)
{
    static const char sql[] =
        "SELECT link_name, definition, created, modified FROM fv_apps ORDER BY link_name";
    int rc = FV_OK;
    sqlite3_stmt *st = NULL;
    int src;

    rc = fv_store_conn_prepare(t->writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        goto out;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *def = (const char *)sqlite3_column_text(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        struct fv_app *app = NULL;
        struct fv_store_app *a = NULL;
        struct fv_error err;
        fv_error_init(&err);
        rc = fv_model_app_parse(def ? def : "", def ? len : 0, &app, &err);
        if (rc != FV_OK) {
            fv_log(FV_LOG_DEBUG, "store: stored app definition does not parse: %s", err.msg);
            rc = rc == FV_E_NOMEM ? rc : FV_E_CORRUPT;
            goto out;
        }
        rc = app_entry_new(app, sqlite3_column_int64(st, 2), &a);
        if (rc != FV_OK) {
            rc = rc == FV_E_NOMEM ? rc : FV_E_CORRUPT;
            goto out;
        }
        a->modified_ms = sqlite3_column_int64(st, 3);
        a->next = t->apps;
        t->apps = a;
    }
    if (src != SQLITE_DONE)
        rc = fv_store_sqlite_err(src);
out:
    fv_store_stmt_done(st);
    return rc;
}

int fv_store_tenant_load_next_id(struct fv_tenant *t)
{
    static const char sql[] = "SELECT value FROM fv_meta WHERE key = 'next_id'";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(t->writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        t->next_id = sqlite3_column_int64(st, 0);
    else
        rc = src == SQLITE_DONE ? FV_E_CORRUPT : fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    if (rc == FV_OK && t->next_id < FV_STORE_ID_BASE)
        rc = FV_E_CORRUPT;
    return rc;
}

int fv_store_tenant_open(struct fv_store *s, struct fv_tenant *t)
{
    int rc = FV_OK;
    struct fv_error err;
    fv_error_init(&err);

    t->group_commit_max = s->group_commit_max;
    if (pthread_mutex_init(&t->wq_mu, NULL) != 0)
        return FV_E_NOMEM;
    if (pthread_cond_init(&t->wq_cv, NULL) != 0) {
        (void)pthread_mutex_destroy(&t->wq_mu);
        return FV_E_NOMEM;
    }
    /* Writer preference: an app install must not starve behind a steady
     * stream of readers (glibc prefers readers by default). The lock is
     * never taken recursively. */
    pthread_rwlockattr_t attr;
    int arc = pthread_rwlockattr_init(&attr);
    if (arc == 0)
        (void)pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (arc == 0)
        arc = pthread_rwlock_init(&t->apps_lock, &attr);
    if (arc == 0)
        (void)pthread_rwlockattr_destroy(&attr);
    if (arc != 0) {
        (void)pthread_cond_destroy(&t->wq_cv);
        (void)pthread_mutex_destroy(&t->wq_mu);
        return FV_E_NOMEM;
    }
    if (pthread_mutex_init(&t->keys_mu, NULL) != 0) {
        (void)pthread_rwlock_destroy(&t->apps_lock);
        (void)pthread_cond_destroy(&t->wq_cv);
        (void)pthread_mutex_destroy(&t->wq_mu);
        return FV_E_NOMEM;
    }
    t->sync_inited = true;

    rc = tenant_paths(s, t->id, &t->dir, &t->db_path);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_keys_tenant_load(s, t, &err);
    if (rc != FV_OK) {
        fv_log(FV_LOG_WARN, "store: tenant %lld keys unavailable: %s", (long long)t->id,
               err.msg[0] ? err.msg : fv_strerror(rc));
        return rc;
    }
    rc = fv_store_vfs_bind(t->db_path, t->keys);
    if (rc != FV_OK)
        return rc;
    t->bound = true;
    rc = fv_store_conn_open(t->db_path, s->read_only ? FV_STORE_CONN_RO : FV_STORE_CONN_RW,
                            &t->writer, &err);
    if (rc == FV_OK)
        rc = fv_store_migrate(t->writer, FV_STORE_APPID_TENANT, tenant_steps,
                              FV_ARRAY_LEN(tenant_steps), s->read_only, "tenant", &err);
    if (rc == FV_OK)
        rc = fv_store_tenant_load_next_id(t);
    if (rc == FV_OK)
        rc = load_apps(t);
    if (rc == FV_OK)
        rc = fv_store_pool_init(&t->readers, t->db_path,
                                s->read_only ? FV_STORE_CONN_RO : FV_STORE_CONN_RW);
    if (rc != FV_OK && err.code != FV_OK)
        fv_log(FV_LOG_DEBUG, "store: opening tenant %lld: %s", (long long)t->id, err.msg);
    /* On failure the cache closes t (fv_store_tenant_close handles half-built). */
    return rc;
}

void fv_store_tenant_close(struct fv_tenant *t)
{
    if (!t)
        return;
    while (t->apps) {
        struct fv_store_app *a = t->apps;
        t->apps = a->next;
        app_entry_free(a);
    }
    fv_store_pool_release(&t->readers);
    fv_store_conn_close(t->writer);
    if (t->bound)
        fv_store_vfs_unbind(t->db_path, t->keys);
    fv_crypto_keyring_unref(t->keys);
    fv_crypto_kek_free(t->tenant_kek);
    if (t->sync_inited) {
        (void)pthread_mutex_destroy(&t->keys_mu);
        (void)pthread_rwlock_destroy(&t->apps_lock);
        (void)pthread_cond_destroy(&t->wq_cv);
        (void)pthread_mutex_destroy(&t->wq_mu);
    }
    fv_free(t->dir);
    fv_free(t->db_path);
    fv_free(t);
}

void fv_store_writer_enter(struct fv_tenant *t)
{
    (void)pthread_mutex_lock(&t->wq_mu);
    while (t->leader)
        (void)pthread_cond_wait(&t->wq_cv, &t->wq_mu);
    t->leader = true;
    (void)pthread_mutex_unlock(&t->wq_mu);
}

void fv_store_writer_leave(struct fv_tenant *t)
{
    (void)pthread_mutex_lock(&t->wq_mu);
    t->leader = false;
    (void)pthread_cond_broadcast(&t->wq_cv);
    if (t->q_head) /* a queued write may now lead */
        (void)pthread_cond_signal(&t->q_head->cv);
    (void)pthread_mutex_unlock(&t->wq_mu);
}

/* ------------------------------------------------------------------ apps */

/* The writer's view of the current version of an app (writer only). */
static struct fv_store_app *current_app(struct fv_tenant *t, const char *link)
{
    for (struct fv_store_app *a = t->apps; a; a = a->next)
        if (a->current && strcmp(a->app->link_name, link) == 0)
            return a;
    return NULL;
}

/* PRAGMA data_version of the writer connection: it changes only when another
 * connection (another process: the CLI) committed to the database. */
static int writer_data_version(struct fv_tenant *t, int64_t *ret)
{
    static const char sql[] = "PRAGMA data_version";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(t->writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *ret = sqlite3_column_int64(st, 0);
    else
        rc = fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    return rc;
}

/*
 * Pick up app definitions another process installed or upgraded (`formvault
 * app import` while the server runs): apps whose fv_apps.modified differs
 * from the cached version are parsed again and published; old versions stay
 * readable for handles that borrowed them. Runs as the tenant's writer.
 */
static int apps_refresh(struct fv_tenant *t)
{
    static const char sql[] = "SELECT link_name, definition, created, modified FROM fv_apps";
    sqlite3_stmt *st = NULL;
    int64_t version = 0;
    int rc, src;
    fv_store_writer_enter(t);
    rc = writer_data_version(t, &version);
    if (rc != FV_OK || version == t->data_version)
        goto out;
    rc = fv_store_conn_prepare(t->writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        goto out;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *link = (const char *)sqlite3_column_text(st, 0);
        const char *def = (const char *)sqlite3_column_text(st, 1);
        int64_t modified = sqlite3_column_int64(st, 3);
        struct fv_store_app *cur = link ? current_app(t, link) : NULL;
        struct fv_app *app = NULL;
        struct fv_store_app *a = NULL;
        if (!link || !def || (cur && cur->modified_ms == modified))
            continue;
        if (fv_model_app_parse(def, (size_t)sqlite3_column_bytes(st, 1), &app, NULL) != FV_OK)
            continue; /* keep serving the version we have */
        if (app_entry_new(app, sqlite3_column_int64(st, 2), &a) != FV_OK)
            continue;
        a->modified_ms = modified;
        (void)pthread_rwlock_wrlock(&t->apps_lock);
        if (cur)
            cur->current = false;
        a->next = t->apps;
        t->apps = a;
        (void)pthread_rwlock_unlock(&t->apps_lock);
    }
    rc = src == SQLITE_DONE ? FV_OK : fv_store_sqlite_err(src);
    if (rc == FV_OK)
        t->data_version = version;
out:
    fv_store_stmt_done(st);
    fv_store_writer_leave(t);
    return rc;
}

int fv_store_sqlite_app_get(struct fv_tenant *t, const char *link, const struct fv_app **ret)
{
    int rc = FV_E_NO_APP;
    if (!link)
        return rc;
    /* At most once a second per tenant, one thread checks for outside installs. */
    int64_t now = fv_time_now_ms();
    long long last = atomic_load(&t->apps_checked_ms);
    if (now - last >= 1000 && atomic_compare_exchange_strong(&t->apps_checked_ms, &last, now))
        (void)apps_refresh(t); /* on failure the cached apps keep serving */
    (void)pthread_rwlock_rdlock(&t->apps_lock);
    for (struct fv_store_app *a = t->apps; a; a = a->next) {
        if (a->current && strcmp(a->app->link_name, link) == 0) {
            *ret = a->app;
            rc = FV_OK;
            break;
        }
    }
    (void)pthread_rwlock_unlock(&t->apps_lock);
    return rc;
}

int fv_store_sqlite_app_list(struct fv_tenant *t, struct fv_store_app_entry **ret, size_t *ret_n)
{
    size_t n = 0, i = 0;
    (void)pthread_rwlock_rdlock(&t->apps_lock);
    for (struct fv_store_app *a = t->apps; a; a = a->next)
        n += a->current;
    struct fv_store_app_entry *arr = fv_calloc(n ? n : 1, sizeof(*arr));
    if (!arr) {
        (void)pthread_rwlock_unlock(&t->apps_lock);
        return FV_E_NOMEM;
    }
    for (struct fv_store_app *a = t->apps; a; a = a->next) {
        if (!a->current)
            continue;
        arr[i].app = a->app;
        arr[i].created_ms = a->created_ms;
        i++;
    }
    (void)pthread_rwlock_unlock(&t->apps_lock);
    /* Stable order for callers: by link name (insertion sort, few apps). */
    for (size_t k = 1; k < n; k++) {
        struct fv_store_app_entry e = arr[k];
        size_t j = k;
        while (j > 0 && strcmp(arr[j - 1].app->link_name, e.app->link_name) > 0) {
            arr[j] = arr[j - 1];
            j--;
        }
        arr[j] = e;
    }
    *ret = arr;
    *ret_n = n;
    return FV_OK;
}

static int ddl(struct fv_tenant *t, struct fv_buf *b, struct fv_error *reterr, const char *what)
{
    int src = sqlite3_exec(t->writer->db, b->p, NULL, NULL, NULL);
    fv_buf_reset(b);
    if (src == SQLITE_OK)
        return FV_OK;
    int rc = fv_store_sqlite_err(src);
    fv_log(FV_LOG_DEBUG, "store: ddl failed: %s", sqlite3_errmsg(t->writer->db));
    if (rc == FV_E_CONFLICT)
        return rc; /* the caller names the field */
    return fv_error_set(reterr, rc, SIZE_MAX, "cannot apply %s", what);
}

/* Unique and lookup indexes of field i (idempotent). */
static int field_indexes(struct fv_tenant *t, const struct fv_store_form *sf, size_t i,
                         struct fv_buf *b, struct fv_error *reterr)
{
    const struct fv_field *fld = &sf->form->fields[i];
    int rc = FV_OK;
    bool want = fld->unique || (fld->type == FV_FIELD_LOOKUP && !fld->lookup_multi);
    if (fld->unique)
        rc = fv_buf_appendf(b, "CREATE UNIQUE INDEX IF NOT EXISTS \"u_%s__%s\" ON \"%s\" (",
                            sf->table, fld->link_name, sf->table);
    else if (want)
        rc = fv_buf_appendf(b, "CREATE INDEX IF NOT EXISTS \"l_%s__%s\" ON \"%s\" (", sf->table,
                            fld->link_name, sf->table);
    if (!want) {
        /* A field that lost its unique flag loses the unique index. */
        rc = fv_buf_appendf(b, "DROP INDEX IF EXISTS \"u_%s__%s\"", sf->table, fld->link_name);
        if (rc != FV_OK)
            return rc;
        return ddl(t, b, reterr, "index change");
    }
    for (size_t k = 0; rc == FV_OK && k < sf->col_n[i]; k++)
        rc = fv_buf_appendf(b, "%s\"%s\"", k ? ", " : "", sf->col_names[sf->col_off[i] + k]);
    if (rc == FV_OK)
        rc = fv_buf_append_cstr(b, ")");
    if (rc != FV_OK)
        return rc;
    rc = ddl(t, b, reterr, "index");
    if (rc == FV_E_CONFLICT)
        return fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX,
                            "cannot make field '%s' unique: existing records hold duplicates",
                            fld->link_name);
    if (rc == FV_OK && !fld->unique)
        rc = fv_buf_appendf(b, "DROP INDEX IF EXISTS \"u_%s__%s\"", sf->table, fld->link_name);
    if (rc == FV_OK && !fld->unique)
        rc = ddl(t, b, reterr, "index change");
    return rc;
}

static int create_form_table(struct fv_tenant *t, const char *app_link,
                             const struct fv_store_form *sf, struct fv_buf *b,
                             struct fv_error *reterr)
{
    static const char owner_sql[] = "SELECT app, form FROM fv_tables WHERE name = ?1";
    static const char claim_sql[] = "INSERT INTO fv_tables(name, app, form) VALUES (?1, ?2, ?3)";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(t->writer, owner_sql, sizeof(owner_sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_text(st, 1, sf->table, -1, SQLITE_TRANSIENT);
    int src = sqlite3_step(st);
    fv_store_stmt_done(st);
    if (src == SQLITE_ROW)
        return fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX,
                            "form '%s' clashes with a form of another app", sf->form->link_name);
    if (src != SQLITE_DONE)
        return fv_store_sqlite_err(src);

    rc = fv_buf_appendf(b,
                        "CREATE TABLE \"%s\" (\"ID\" INTEGER PRIMARY KEY, \"Added_Time\" TEXT NOT "
                        "NULL, \"Modified_Time\" TEXT NOT NULL, \"Added_User\" TEXT, "
                        "\"Modified_User\" TEXT, \"row_version\" INTEGER NOT NULL DEFAULT 1",
                        sf->table);
    for (size_t c = 0; rc == FV_OK && c < sf->n_cols; c++)
        rc = fv_buf_appendf(b, ", \"%s\" %s", sf->col_names[c], sql_type_name(sf->col_types[c]));
    if (rc == FV_OK)
        rc = fv_buf_append_cstr(b, ") STRICT");
    if (rc != FV_OK)
        return rc;
    rc = ddl(t, b, reterr, "table");
    if (rc != FV_OK)
        return rc;
    for (size_t i = 0; rc == FV_OK && i < sf->form->n_fields; i++)
        rc = field_indexes(t, sf, i, b, reterr);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_conn_prepare(t->writer, claim_sql, sizeof(claim_sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_text(st, 1, sf->table, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(st, 2, app_link, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(st, 3, sf->form->link_name, -1, SQLITE_TRANSIENT);
    src = sqlite3_step(st);
    fv_store_stmt_done(st);
    return src == SQLITE_DONE ? FV_OK : fv_store_sqlite_err(src);
}

/* Compare an existing form with its new version; add new columns. */
static int upgrade_form(struct fv_tenant *t, const struct fv_store_form *old_sf,
                        const struct fv_store_form *sf, struct fv_buf *b, struct fv_error *reterr)
{
    int rc = FV_OK;
    const struct fv_form *of = old_sf->form, *nf = sf->form;

    for (size_t i = 0; i < of->n_fields; i++) {
        const struct fv_field *ofl = &of->fields[i];
        const struct fv_field *nfl = fv_model_form_field(nf, ofl->link_name);
        if (!nfl)
            return fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX,
                                "field '%s' of form '%s' cannot be removed", ofl->link_name,
                                of->link_name);
        rc = fv_model_field_upgrade_check(of->link_name, ofl, nfl, reterr);
        if (rc != FV_OK)
            return rc;
        size_t ni = (size_t)(nfl - nf->fields);
        bool same = nfl->type == ofl->type && sf->col_n[ni] == old_sf->col_n[i] &&
                    nfl->lookup_multi == ofl->lookup_multi;
        if (same && nfl->type == FV_FIELD_LOOKUP)
            same = nfl->lookup_form && ofl->lookup_form &&
                   strcmp(nfl->lookup_form, ofl->lookup_form) == 0;
        for (size_t k = 0; same && k < sf->col_n[ni]; k++) {
            size_t oc = old_sf->col_off[i] + k, nc = sf->col_off[ni] + k;
            same = strcmp(old_sf->col_names[oc], sf->col_names[nc]) == 0 &&
                   old_sf->col_types[oc] == sf->col_types[nc];
        }
        if (!same)
            return fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX,
                                "field '%s' of form '%s' cannot change its type", ofl->link_name,
                                of->link_name);
    }
    for (size_t i = 0; i < nf->n_fields; i++) {
        const struct fv_field *nfl = &nf->fields[i];
        if (!fv_model_form_field(of, nfl->link_name)) {
            for (size_t k = 0; rc == FV_OK && k < sf->col_n[i]; k++) {
                size_t c = sf->col_off[i] + k;
                rc = fv_buf_appendf(b, "ALTER TABLE \"%s\" ADD COLUMN \"%s\" %s", sf->table,
                                    sf->col_names[c], sql_type_name(sf->col_types[c]));
                if (rc == FV_OK)
                    rc = ddl(t, b, reterr, "new column");
            }
        }
        if (rc == FV_OK)
            rc = field_indexes(t, sf, i, b, reterr);
        if (rc != FV_OK)
            return rc;
    }
    return FV_OK;
}

int fv_store_sqlite_app_install(struct fv_tenant *t, const char *json, size_t len,
                                const char *actor, struct fv_error *reterr)
{
    static const char upsert_sql[] =
        "INSERT INTO fv_apps(link_name, definition, created, modified) VALUES (?1, ?2, ?3, ?3)"
        " ON CONFLICT(link_name) DO UPDATE SET definition = excluded.definition,"
        " modified = excluded.modified";
    int rc = FV_OK;
    struct fv_app *app = NULL;
    struct fv_store_app *entry = NULL, *old = NULL;
    json_t *canon = NULL;
    char *def = NULL;
    sqlite3_stmt *st = NULL;
    bool writer = false, in_txn = false;
    struct fv_buf b;
    int64_t now = fv_time_now_ms();

    fv_buf_init(&b, FV_STORE_SQL_MAX);
    if (t->store->read_only)
        return fv_error_set(reterr, FV_E_READ_ONLY, SIZE_MAX, "store is read-only");
    if (!json)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "app definition missing");

    /* Parse and plan outside the writer: CPU only. */
    rc = fv_model_app_parse(json, len, &app, reterr);
    if (rc != FV_OK)
        goto out;
    canon = fv_model_app_to_json(app);
    if (!canon) {
        rc = FV_E_NOMEM;
        goto out;
    }
    rc = fv_store_json_dump(canon, &def, NULL);
    if (rc != FV_OK)
        goto out;
    rc = app_entry_new(app, now, &entry);
    app = NULL; /* owned by entry now (or freed) */
    if (rc != FV_OK) {
        if (rc != FV_E_NOMEM)
            rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "app definition not storable");
        goto out;
    }

    fv_store_writer_enter(t);
    writer = true;
    old = current_app(t, entry->app->link_name);
    if (old)
        entry->created_ms = old->created_ms;
    entry->modified_ms = now;
    rc = fv_store_conn_exec(t->writer, "BEGIN IMMEDIATE");
    if (rc != FV_OK)
        goto out;
    in_txn = true;
    rc = fv_store_keys_writer_check(t);
    if (rc != FV_OK)
        goto out;

    if (old) {
        for (size_t i = 0; i < old->app->n_forms; i++) {
            if (!fv_model_app_form(entry->app, old->app->forms[i].link_name)) {
                rc = fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX, "form '%s' cannot be removed",
                                  old->app->forms[i].link_name);
                goto out;
            }
        }
    }
    for (size_t i = 0; i < entry->app->n_forms; i++) {
        const struct fv_store_form *sf = &entry->forms[i];
        const struct fv_form *of = old ? fv_model_app_form(old->app, sf->form->link_name) : NULL;
        if (of)
            rc = upgrade_form(t, &old->forms[of - old->app->forms], sf, &b, reterr);
        else
            rc = create_form_table(t, entry->app->link_name, sf, &b, reterr);
        if (rc == FV_E_CONFLICT)
            rc = fv_error_set(reterr, rc, SIZE_MAX, "form '%s' conflicts with stored data",
                              sf->form->link_name);
        if (rc != FV_OK)
            goto out;
    }

    rc = fv_store_conn_prepare(t->writer, upsert_sql, sizeof(upsert_sql) - 1, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_text(st, 1, entry->app->link_name, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(st, 2, def, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(st, 3, now);
    int src = sqlite3_step(st);
    fv_store_stmt_done(st);
    st = NULL;
    if (src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
        goto out;
    }
    rc = fv_store_changelog_append(t->writer, now, actor ? actor : "", "schema",
                                   entry->app->link_name, NULL, 0, def, strlen(def));
    if (rc != FV_OK)
        goto out;
    rc = fv_store_conn_exec(t->writer, "COMMIT");
    if (rc != FV_OK)
        goto out;
    in_txn = false;

    /* Publish: the old version stays readable by handles that borrowed it. */
    (void)pthread_rwlock_wrlock(&t->apps_lock);
    if (old)
        old->current = false;
    entry->next = t->apps;
    t->apps = entry;
    entry = NULL;
    (void)pthread_rwlock_unlock(&t->apps_lock);
out:
    if (in_txn)
        fv_store_conn_rollback(t->writer);
    if (writer)
        fv_store_writer_leave(t);
    if (rc != FV_OK && reterr && reterr->code == FV_OK)
        (void)fv_error_set(reterr, rc, SIZE_MAX, "cannot install app");
    fv_buf_release(&b);
    app_entry_free(entry);
    fv_model_app_free(app);
    json_decref(canon);
    fv_free(def);
    return rc;
}
