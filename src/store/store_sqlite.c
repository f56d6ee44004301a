/*
 * store/store_sqlite.c: the SQLite engine table, store open/close, the node
 * catalog (tenants, tokens) and the bounded cache of open tenant databases.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "store/store_int.h"

/* Catalog schema steps; index i takes user_version i to i + 1. Append only. */
static const char *const catalog_steps[] = {
    /* 1 */
    "CREATE TABLE tenants ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE,"
    " region TEXT NOT NULL,"
    " created INTEGER NOT NULL) STRICT;"
    "CREATE TABLE tokens ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    " hash BLOB NOT NULL UNIQUE,"
    " scopes TEXT NOT NULL,"
    " expires INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " label TEXT NOT NULL DEFAULT '') STRICT;"
    "CREATE INDEX tokens_tenant ON tokens(tenant_id);"
    "CREATE TABLE node_state (key TEXT PRIMARY KEY, value TEXT) STRICT;",
    /* 2: keys (keys.c, keys_admin.c, keys_job.c) */
    "ALTER TABLE tenants ADD COLUMN state TEXT NOT NULL DEFAULT 'active';"
    "CREATE TABLE tenant_keys ("
    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
    " version INTEGER NOT NULL,"
    " kek_id TEXT NOT NULL,"
    " wrapped BLOB,"
    " state TEXT NOT NULL,"
    " created INTEGER NOT NULL,"
    " destroyed INTEGER,"
    " PRIMARY KEY (tenant_id, version)) STRICT;"
    "CREATE TABLE tenant_kek ("
    " tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),"
    " kind TEXT NOT NULL,"
    " kek_id TEXT NOT NULL,"
    " material BLOB,"
    " module TEXT, token TEXT, key_label TEXT, pin_file TEXT,"
    " state TEXT NOT NULL,"
    " updated INTEGER NOT NULL) STRICT;"
    "CREATE TABLE key_jobs ("
    " tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),"
    " from_version INTEGER NOT NULL,"
    " to_version INTEGER NOT NULL,"
    " phase TEXT NOT NULL,"
    " cursor BLOB,"
    " done INTEGER NOT NULL DEFAULT 0,"
    " total INTEGER NOT NULL DEFAULT 0,"
    " started INTEGER NOT NULL,"
    " updated INTEGER NOT NULL,"
    " error TEXT,"
    " lease_owner INTEGER NOT NULL DEFAULT 0,"
    " lease_until INTEGER NOT NULL DEFAULT 0) STRICT;"
    "CREATE TABLE key_imports ("
    " tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),"
    " private_sealed BLOB NOT NULL,"
    " public_pem TEXT NOT NULL,"
    " expires INTEGER NOT NULL) STRICT;"
    "INSERT OR IGNORE INTO node_state(key, value) VALUES ('keys_epoch', '0');",
};

static const struct fv_store_engine sqlite_engine = {
    .version = FV_STORE_ENGINE_VERSION,
    .name = "sqlite",
    .open = fv_store_sqlite_open,
    .close = fv_store_sqlite_close,
    .tenant_create = fv_store_sqlite_tenant_create,
    .tenant_list = fv_store_sqlite_tenant_list,
    .tenant_find = fv_store_sqlite_tenant_find,
    .tenant_acquire = fv_store_sqlite_tenant_acquire,
    .tenant_release = fv_store_sqlite_tenant_release,
    .token_insert = fv_store_sqlite_token_insert,
    .token_lookup = fv_store_sqlite_token_lookup,
    .app_install = fv_store_sqlite_app_install,
    .app_get = fv_store_sqlite_app_get,
    .app_list = fv_store_sqlite_app_list,
    .write = fv_store_sqlite_write,
    .query = fv_store_sqlite_query,
    .count = fv_store_sqlite_count,
    .changelog_read = fv_store_sqlite_changelog_read,
};

const struct fv_store_engine *fv_store_engine_sqlite(void)
{
    return &sqlite_engine;
}

static char *path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = fv_malloc(la + 1 + lb + 1);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

void fv_store_sqlite_close(struct fv_store *s)
{
    if (!s)
        return;
    /* Callers must have released every handle; close what the cache holds. */
    while (s->tenants) {
        struct fv_tenant *t = s->tenants;
        s->tenants = t->next;
        if (t->refs != 0)
            fv_log(FV_LOG_DEBUG, "store: tenant %lld still referenced at close, closing anyway",
                   (long long)t->id);
        fv_store_tenant_close(t);
    }
    fv_store_pool_release(&s->cat_readers);
    fv_store_conn_close(s->cat_writer);
    if (s->node_keys)
        fv_store_vfs_unbind(s->catalog_path, s->node_keys);
    fv_crypto_keyring_unref(s->node_keys);
    fv_crypto_secret_free(s->node_root);
    if (s->sync_inited) {
        (void)pthread_mutex_destroy(&s->cat_mu);
        (void)pthread_mutex_destroy(&s->mu);
        (void)pthread_cond_destroy(&s->cv);
    }
    fv_free(s->catalog_path);
    fv_free(s->tenants_dir);
    fv_free(s->data_dir);
    fv_free(s);
}

/*
 * SQLite keeps allocation statistics under a global mutex by default; we
 * never read them, and the mutex showed in every write's profile. Must run
 * before SQLite initialises; if it already did, the call fails harmlessly.
 */
static void sqlite_configure_once(void)
{
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int fv_store_sqlite_open(const struct fv_store_options *opt, struct fv_store **ret,
                         struct fv_error *reterr)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, sqlite_configure_once);
    int rc = FV_OK;
    struct fv_store *s = NULL;

    if (!opt->data_dir || !opt->data_dir[0] || opt->tenant_cache_size < 1 ||
        opt->group_commit_max < 1)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "invalid store options");

    s = fv_calloc(1, sizeof(*s));
    if (!s)
        return FV_E_NOMEM;
    s->engine = &sqlite_engine;
    s->tenant_cache_size = opt->tenant_cache_size;
    s->group_commit_max = opt->group_commit_max;
    s->read_only = opt->read_only;
    if (pthread_mutex_init(&s->cat_mu, NULL) != 0) {
        fv_free(s);
        return FV_E_NOMEM;
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        (void)pthread_mutex_destroy(&s->cat_mu);
        fv_free(s);
        return FV_E_NOMEM;
    }
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        (void)pthread_mutex_destroy(&s->cat_mu);
        (void)pthread_mutex_destroy(&s->mu);
        fv_free(s);
        return FV_E_NOMEM;
    }
    s->sync_inited = true;

    s->data_dir = fv_strdup(opt->data_dir);
    s->tenants_dir = path_join(opt->data_dir, "tenants");
    s->catalog_path = path_join(opt->data_dir, "catalog.db");
    if (!s->data_dir || !s->tenants_dir || !s->catalog_path) {
        rc = FV_E_NOMEM;
        goto out;
    }
    if (!s->read_only) {
        if (fv_store_mkdir(s->data_dir) != FV_OK || fv_store_mkdir(s->tenants_dir) != FV_OK) {
            rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot create data directory '%s': %s",
                              s->data_dir, strerror(errno));
            goto out;
        }
    }
    rc = fv_store_vfs_register();
    if (rc != FV_OK) {
        rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot register the encrypting VFS");
        goto out;
    }
    s->kek = opt->kek;
    {
        struct stat sb;
        rc = fv_store_keys_node_load(s, opt->kek, stat(s->catalog_path, &sb) == 0, reterr);
        if (rc != FV_OK)
            goto out;
    }
    rc = fv_store_conn_open(s->catalog_path, s->read_only ? FV_STORE_CONN_RO : FV_STORE_CONN_CREATE,
                            &s->cat_writer, reterr);
    if (rc != FV_OK)
        goto out;
    /* Deleted key rows are overwritten in place (crypto-shredding). */
    if (!s->read_only)
        rc = fv_store_conn_exec(s->cat_writer, "PRAGMA secure_delete=ON");
    if (rc != FV_OK)
        goto out;
    rc = fv_store_migrate(s->cat_writer, FV_STORE_APPID_CATALOG, catalog_steps,
                          FV_ARRAY_LEN(catalog_steps), s->read_only, "catalog", reterr);
    if (rc != FV_OK)
        goto out;
    rc = fv_store_pool_init(&s->cat_readers, s->catalog_path,
                            s->read_only ? FV_STORE_CONN_RO : FV_STORE_CONN_RW);
    if (rc != FV_OK)
        goto out;
    *ret = s;
    s = NULL;
out:
    fv_store_sqlite_close(s);
    return rc;
}

/* --------------------------------------------------------------- tenants */

static bool region_valid(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n >= sizeof(((struct fv_store_tenant_info *)0)->region))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = r[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static void tenant_info_from_row(sqlite3_stmt *st, struct fv_store_tenant_info *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->id = sqlite3_column_int64(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    const char *region = (const char *)sqlite3_column_text(st, 2);
    (void)fv_strlcpy(ret->name, name ? name : "", sizeof(ret->name));
    (void)fv_strlcpy(ret->region, region ? region : "", sizeof(ret->region));
    ret->created_ms = sqlite3_column_int64(st, 3);
    const char *state = (const char *)sqlite3_column_text(st, 4);
    (void)fv_strlcpy(ret->state, state ? state : "active", sizeof(ret->state));
}

int fv_store_sqlite_tenant_create(struct fv_store *s, const char *name, const char *region,
                                  struct fv_store_tenant_info *ret, struct fv_error *reterr)
{
    static const char sql[] = "INSERT INTO tenants(name, region, created) VALUES (?1, ?2, ?3)";
    int rc = FV_OK;
    sqlite3_stmt *st = NULL;
    bool in_txn = false;
    struct fv_store_tenant_info info;
    struct fv_keyring *kr = NULL;

    if (!name || !fv_model_link_name_valid(name, strlen(name)))
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "invalid tenant name: use letters, digits and '_', starting with a "
                            "letter, at most 64 bytes");
    /* Path words of the Creator URL families: /api/v2.1/meta/... must stay the meta API. */
    static const char *const reserved[] = {"meta", "data", "bulk", "publish"};
    for (size_t i = 0; i < FV_ARRAY_LEN(reserved); i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                                "tenant name '%s' is reserved (it is a word of the API paths)",
                                name);
    if (!region || !region_valid(region))
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "invalid region");
    if (s->read_only)
        return fv_error_set(reterr, FV_E_READ_ONLY, SIZE_MAX, "store is read-only");

    memset(&info, 0, sizeof(info));
    (void)fv_strlcpy(info.name, name, sizeof(info.name));
    (void)fv_strlcpy(info.region, region, sizeof(info.region));
    (void)fv_strlcpy(info.state, "active", sizeof(info.state));
    info.created_ms = fv_time_now_ms();

    (void)pthread_mutex_lock(&s->cat_mu);
    rc = fv_store_conn_exec(s->cat_writer, "BEGIN IMMEDIATE");
    if (rc != FV_OK)
        goto out;
    in_txn = true;
    rc = fv_store_conn_prepare(s->cat_writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(st, 2, region, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(st, 3, info.created_ms);
    int src = sqlite3_step(st);
    if (src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
        if (rc == FV_E_CONFLICT)
            rc = fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX, "tenant '%s' already exists", name);
        goto out;
    }
    info.id = sqlite3_last_insert_rowid(s->cat_writer->db);
    fv_store_stmt_done(st);
    st = NULL;
    rc = fv_store_keys_kek_guard(s);
    if (rc == FV_OK)
        rc = fv_store_keys_tenant_init(s, info.id, &kr);
    if (rc != FV_OK) {
        rc =
            fv_error_set(reterr, rc, SIZE_MAX, "cannot create the tenant's root key under KEK '%s'",
                         fv_crypto_kek_id(s->kek));
        goto out;
    }
    /* The tenant database exists before the catalog row commits: a crash in
     * between leaves an orphan directory, which the next create of that id
     * moves aside (tenant_db.c). */
    rc = fv_store_tenant_db_create(s, info.id, kr, reterr);
    if (rc != FV_OK)
        goto out;
    rc = fv_store_conn_exec(s->cat_writer, "COMMIT");
    if (rc != FV_OK)
        goto out;
    in_txn = false;
    if (ret)
        *ret = info;
out:
    fv_store_stmt_done(st);
    if (in_txn)
        fv_store_conn_rollback(s->cat_writer);
    (void)pthread_mutex_unlock(&s->cat_mu);
    fv_crypto_keyring_unref(kr);
    if (rc != FV_OK && reterr && reterr->code == FV_OK)
        (void)fv_error_set(reterr, rc, SIZE_MAX, "cannot create tenant '%s'", name);
    return rc;
}

int fv_store_sqlite_tenant_list(struct fv_store *s, struct fv_store_tenant_info **ret,
                                size_t *ret_n)
{
    static const char sql[] = "SELECT id, name, region, created, state FROM tenants ORDER BY id";
    int rc = FV_OK;
    struct fv_store_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    struct fv_store_tenant_info *arr = NULL;
    size_t n = 0, cap = 0;

    rc = fv_store_pool_get(&s->cat_readers, &c);
    if (rc != FV_OK)
        goto out;
    rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        goto out;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct fv_store_tenant_info *na = fv_realloc(arr, ncap * sizeof(*arr));
            if (!na) {
                rc = FV_E_NOMEM;
                goto out;
            }
            arr = na;
            cap = ncap;
        }
        tenant_info_from_row(st, &arr[n++]);
    }
    if (src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
        goto out;
    }
    if (!arr) {
        arr = fv_malloc(sizeof(*arr));
        if (!arr) {
            rc = FV_E_NOMEM;
            goto out;
        }
    }
    *ret = arr;
    *ret_n = n;
    arr = NULL;
out:
    fv_store_stmt_done(st);
    fv_store_pool_put(&s->cat_readers, c);
    fv_free(arr);
    return rc;
}

static int tenant_by(struct fv_store *s, const char *name, int64_t id,
                     struct fv_store_tenant_info *ret)
{
    static const char by_name[] =
        "SELECT id, name, region, created, state FROM tenants WHERE name = ?1";
    static const char by_id[] =
        "SELECT id, name, region, created, state FROM tenants WHERE id = ?1";
    int rc = FV_OK;
    struct fv_store_conn *c = NULL;
    sqlite3_stmt *st = NULL;

    rc = fv_store_pool_get(&s->cat_readers, &c);
    if (rc != FV_OK)
        goto out;
    if (name)
        rc = fv_store_conn_prepare(c, by_name, sizeof(by_name) - 1, &st);
    else
        rc = fv_store_conn_prepare(c, by_id, sizeof(by_id) - 1, &st);
    if (rc != FV_OK)
        goto out;
    if (name)
        (void)sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    else
        (void)sqlite3_bind_int64(st, 1, id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        if (ret)
            tenant_info_from_row(st, ret);
    } else if (src == SQLITE_DONE) {
        rc = FV_E_NO_OWNER;
    } else {
        rc = fv_store_sqlite_err(src);
    }
out:
    fv_store_stmt_done(st);
    fv_store_pool_put(&s->cat_readers, c);
    return rc;
}

int fv_store_sqlite_tenant_find(struct fv_store *s, const char *name,
                                struct fv_store_tenant_info *ret)
{
    if (!name)
        return FV_E_NO_OWNER;
    return tenant_by(s, name, 0, ret);
}

/* ---------------------------------------------------------- tenant cache */

static struct fv_tenant *cache_find(struct fv_store *s, int64_t id)
{
    for (struct fv_tenant *t = s->tenants; t; t = t->next)
        if (t->id == id)
            return t;
    return NULL;
}

static void cache_unlink(struct fv_store *s, struct fv_tenant *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        s->tenants = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    s->n_tenants--;
}

static void cache_push_front(struct fv_store *s, struct fv_tenant *t)
{
    t->prev = NULL;
    t->next = s->tenants;
    if (s->tenants)
        s->tenants->prev = t;
    s->tenants = t;
    s->n_tenants++;
}

/*
 * Unlink idle entries beyond the cache size (least recently used first) and
 * failed entries nobody holds. Returns them chained by ->next; the caller
 * closes them after dropping s->mu (closing is I/O).
 */
static struct fv_tenant *cache_evict(struct fv_store *s)
{
    struct fv_tenant *victims = NULL;
    struct fv_tenant *t = s->tenants;
    while (t && t->next)
        t = t->next;
    while (t) {
        struct fv_tenant *prev = t->prev;
        bool idle = t->refs == 0 && t->state != FV_TENANT_OPENING;
        if (idle && (t->state == FV_TENANT_FAILED || s->n_tenants > (size_t)s->tenant_cache_size)) {
            cache_unlink(s, t);
            t->next = victims;
            victims = t;
        }
        t = prev;
    }
    return victims;
}

static void close_victims(struct fv_tenant *v)
{
    while (v) {
        struct fv_tenant *next = v->next;
        fv_store_tenant_close(v);
        v = next;
    }
}

int fv_store_sqlite_tenant_acquire(struct fv_store *s, int64_t tenant_id, struct fv_tenant **ret)
{
    int rc = FV_OK;
    struct fv_tenant *t = NULL, *victims = NULL;

    (void)pthread_mutex_lock(&s->mu);
    t = cache_find(s, tenant_id);
    if (!t) {
        /* Catalog check without the cache lock: it is I/O. */
        (void)pthread_mutex_unlock(&s->mu);
        struct fv_store_tenant_info info;
        rc = tenant_by(s, NULL, tenant_id, &info);
        if (rc != FV_OK)
            return rc;
        if (strcmp(info.state, "active") != 0)
            return FV_E_KEY_UNAVAILABLE; /* shredded: its keys are gone */
        (void)pthread_mutex_lock(&s->mu);
        t = cache_find(s, tenant_id);
    }
    if (t) {
        t->refs++;
        while (t->state == FV_TENANT_OPENING)
            (void)pthread_cond_wait(&s->cv, &s->mu);
        if (t->state == FV_TENANT_FAILED) {
            rc = t->open_rc;
            t->refs--;
            victims = cache_evict(s);
            (void)pthread_mutex_unlock(&s->mu);
            close_victims(victims);
            return rc;
        }
        if (t != s->tenants) {
            cache_unlink(s, t);
            cache_push_front(s, t);
        }
        (void)pthread_mutex_unlock(&s->mu);
        /* Revoked or shredded since it was opened: nothing may be served,
         * not even pages SQLite still caches. */
        if (fv_crypto_keyring_write_version(t->keys) == 0) {
            fv_store_sqlite_tenant_release(t);
            return FV_E_KEY_UNAVAILABLE;
        }
        *ret = t;
        return FV_OK;
    }

    t = fv_calloc(1, sizeof(*t));
    if (!t) {
        (void)pthread_mutex_unlock(&s->mu);
        return FV_E_NOMEM;
    }
    t->engine = s->engine;
    t->store = s;
    t->id = tenant_id;
    t->refs = 1;
    t->state = FV_TENANT_OPENING;
    cache_push_front(s, t);
    (void)pthread_mutex_unlock(&s->mu);

    rc = fv_store_tenant_open(s, t);

    (void)pthread_mutex_lock(&s->mu);
    t->state = rc == FV_OK ? FV_TENANT_READY : FV_TENANT_FAILED;
    t->open_rc = rc;
    if (rc != FV_OK)
        t->refs--;
    victims = cache_evict(s);
    (void)pthread_cond_broadcast(&s->cv);
    (void)pthread_mutex_unlock(&s->mu);
    close_victims(victims);
    if (rc != FV_OK)
        return rc;
    *ret = t;
    return FV_OK;
}

void fv_store_sqlite_tenant_release(struct fv_tenant *t)
{
    struct fv_store *s = t->store;
    struct fv_tenant *victims;

    (void)pthread_mutex_lock(&s->mu);
    FV_ASSERT(t->refs > 0);
    t->refs--;
    t->last_used_ns = fv_time_mono_ns();
    victims = cache_evict(s);
    (void)pthread_mutex_unlock(&s->mu);
    close_victims(victims);
}

/* ---------------------------------------------------------------- tokens */

int fv_store_sqlite_token_insert(struct fv_store *s, const struct fv_store_token *tok,
                                 const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES], int64_t *ret_id)
{
    /* A shredded tenant gets no new tokens: no row is inserted. */
    static const char sql[] = "INSERT INTO tokens(tenant_id, hash, scopes, expires, created, label)"
                              " SELECT ?1, ?2, ?3, ?4, ?5, ?6 FROM tenants WHERE id = ?1 AND"
                              " state = 'active'";
    int rc = FV_OK;
    sqlite3_stmt *st = NULL;

    if (s->read_only)
        return FV_E_READ_ONLY;
    if (!memchr(tok->scopes, '\0', sizeof(tok->scopes)) ||
        !memchr(tok->label, '\0', sizeof(tok->label)))
        return FV_E_INVALID;
    (void)pthread_mutex_lock(&s->cat_mu);
    rc = fv_store_conn_prepare(s->cat_writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_int64(st, 1, tok->tenant_id);
    (void)sqlite3_bind_blob(st, 2, hash, FV_STORE_TOKEN_HASH_BYTES, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(st, 3, tok->scopes, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(st, 4, tok->expires_ms);
    (void)sqlite3_bind_int64(st, 5, tok->created_ms ? tok->created_ms : fv_time_now_ms());
    (void)sqlite3_bind_text(st, 6, tok->label, -1, SQLITE_TRANSIENT);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE && sqlite3_changes(s->cat_writer->db) == 0) {
        rc = FV_E_KEY_UNAVAILABLE; /* no such tenant, or shredded (its keys are gone) */
    } else if (src == SQLITE_DONE) {
        if (ret_id)
            *ret_id = sqlite3_last_insert_rowid(s->cat_writer->db);
    } else if (src == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = FV_E_NOT_FOUND;
    } else {
        rc = fv_store_sqlite_err(src);
    }
out:
    fv_store_stmt_done(st);
    (void)pthread_mutex_unlock(&s->cat_mu);
    if (rc == FV_E_KEY_UNAVAILABLE && tenant_by(s, NULL, tok->tenant_id, NULL) == FV_E_NO_OWNER)
        rc = FV_E_NOT_FOUND;
    return rc;
}

int fv_store_sqlite_token_lookup(struct fv_store *s, const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES],
                                 struct fv_store_token *ret)
{
    static const char sql[] = "SELECT id, tenant_id, hash, scopes, expires, created, label"
                              " FROM tokens WHERE hash = ?1";
    int rc = FV_OK;
    struct fv_store_conn *c = NULL;
    sqlite3_stmt *st = NULL;

    rc = fv_store_pool_get(&s->cat_readers, &c);
    if (rc != FV_OK)
        goto out;
    rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_blob(st, 1, hash, FV_STORE_TOKEN_HASH_BYTES, SQLITE_TRANSIENT);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = FV_E_AUTH;
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = fv_store_sqlite_err(src);
        goto out;
    }
    /* The index found the row; confirm in constant time (STYLE 25). */
    const void *stored = sqlite3_column_blob(st, 2);
    if (!stored || sqlite3_column_bytes(st, 2) != FV_STORE_TOKEN_HASH_BYTES ||
        !fv_ct_equal(stored, hash, FV_STORE_TOKEN_HASH_BYTES)) {
        rc = FV_E_AUTH;
        goto out;
    }
    struct fv_store_token tok;
    memset(&tok, 0, sizeof(tok));
    tok.id = sqlite3_column_int64(st, 0);
    tok.tenant_id = sqlite3_column_int64(st, 1);
    const char *scopes = (const char *)sqlite3_column_text(st, 3);
    (void)fv_strlcpy(tok.scopes, scopes ? scopes : "", sizeof(tok.scopes));
    tok.expires_ms = sqlite3_column_int64(st, 4);
    tok.created_ms = sqlite3_column_int64(st, 5);
    const char *label = (const char *)sqlite3_column_text(st, 6);
    (void)fv_strlcpy(tok.label, label ? label : "", sizeof(tok.label));
    *ret = tok;
out:
    fv_store_stmt_done(st);
    fv_store_pool_put(&s->cat_readers, c);
    return rc;
}
