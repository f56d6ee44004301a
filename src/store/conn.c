/*
 * store/conn.c: SQLite connections with a prepared-statement cache,
 * connection pools, versioned schema migrations and small file helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store_int.h"

int fv_store_sqlite_err(int sqlite_rc)
{
    /* Extended codes of the encrypting VFS first (vfs.c): a page that fails
     * authentication, and a key version that is absent or revoked. */
    switch (sqlite_rc) {
    case SQLITE_IOERR_DATA:
        return FV_E_CORRUPT;
    case SQLITE_IOERR_AUTH:
        return FV_E_KEY_UNAVAILABLE;
    default:
        break;
    }
    switch (sqlite_rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return FV_OK;
    case SQLITE_NOMEM:
        return FV_E_NOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return FV_E_BUSY;
    case SQLITE_CONSTRAINT:
        return FV_E_CONFLICT;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
        return FV_E_CORRUPT;
    case SQLITE_READONLY:
        return FV_E_READ_ONLY;
    case SQLITE_TOOBIG:
        return FV_E_LIMIT;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
        return FV_E_IO;
    default:
        return FV_E_INTERNAL;
    }
}

/* FNV-1a of the SQL text: statement cache key. */
static uint32_t sql_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static void cache_flush(struct fv_store_conn *c)
{
    for (size_t b = 0; b < FV_STORE_STMT_BUCKETS; b++) {
        struct fv_store_stmt_ent *e = c->buckets[b];
        while (e) {
            struct fv_store_stmt_ent *next = e->next;
            sqlite3_finalize(e->st);
            fv_free(e->sql);
            fv_free(e);
            e = next;
        }
        c->buckets[b] = NULL;
    }
    c->n_stmts = 0;
}

void fv_store_conn_close(struct fv_store_conn *c)
{
    if (!c)
        return;
    cache_flush(c);
    fv_store_fcache_free(c->fcache);
    if (c->db)
        (void)sqlite3_close_v2(c->db);
    fv_free(c);
}

/* Create the file with mode 0600 so SQLite never creates it world-readable;
 * SQLite gives the -wal and -shm files the database file's mode. */
static int create_file_0600(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return FV_E_IO;
    (void)close(fd);
    return FV_OK;
}

/* WAL is required (readers never wait for the writer): verify the switch. */
static int set_wal(struct fv_store_conn *c)
{
    sqlite3_stmt *st = NULL;
    int rc = FV_OK;
    int src = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        if (!mode || sqlite3_stricmp(mode, "wal") != 0)
            rc = FV_E_IO;
    } else {
        rc = fv_store_sqlite_err(src);
        if (rc == FV_OK)
            rc = FV_E_IO;
    }
    sqlite3_finalize(st);
    return rc;
}

int fv_store_conn_open(const char *path, enum fv_store_conn_mode mode, struct fv_store_conn **ret,
                       struct fv_error *reterr)
{
    int rc = FV_OK;
    struct fv_store_conn *c = NULL;
    int flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE | SQLITE_OPEN_NOFOLLOW;

    if (mode == FV_STORE_CONN_CREATE) {
        rc = create_file_0600(path);
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot create database '%s': %s", path,
                              strerror(errno));
            goto out;
        }
    }
    flags |= mode == FV_STORE_CONN_RO ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;

    /* Every database goes through the encrypting VFS (idempotent); the
     * caller has bound path to its keyring (fv_store_vfs_bind). */
    rc = fv_store_vfs_register();
    if (rc != FV_OK) {
        rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot open database '%s': %s", path,
                          "the encrypting VFS is not registered");
        goto out;
    }
    c = fv_calloc(1, sizeof(*c));
    if (!c) {
        rc = FV_E_NOMEM;
        goto out;
    }
    int src = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (src != SQLITE_OK) {
        /* open returns the primary code; the VFS's cause is in the extended one
         * (page 1 is read here: wrong or revoked key) */
        rc = fv_store_sqlite_err(c->db ? sqlite3_extended_errcode(c->db) : src);
        if (rc == FV_E_INTERNAL)
            rc = FV_E_IO;
        rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot open database '%s': %s (%s)", path,
                          c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(src),
                          fv_store_vfs_last_error());
        goto out;
    }
    /* Before any statement: reserved bytes for new files, no mmap. */
    rc = fv_store_vfs_conn_setup(c->db);
    if (rc != FV_OK) {
        rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot set up encryption for database '%s'", path);
        goto out;
    }
    (void)sqlite3_extended_result_codes(c->db, 1);
    (void)sqlite3_busy_timeout(c->db, FV_STORE_BUSY_TIMEOUT_MS);
    /* Defensive settings: no double-quoted string literals, no writable schema. */
    (void)sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
    (void)sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
    (void)sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    (void)sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

    if (mode != FV_STORE_CONN_RO) {
        rc = set_wal(c);
        if (rc == FV_OK)
            rc = fv_store_conn_exec(c, "PRAGMA synchronous=FULL");
        /* Truncate the WAL back to 64 MiB after checkpoints. */
        if (rc == FV_OK)
            rc = fv_store_conn_exec(c, "PRAGMA journal_size_limit=67108864");
    }
    if (rc == FV_OK)
        rc = fv_store_conn_exec(c, "PRAGMA foreign_keys=ON");
    if (rc == FV_OK)
        rc = fv_store_conn_exec(c, "PRAGMA temp_store=MEMORY");
    if (rc == FV_OK)
        rc = fv_store_conn_exec(c, "PRAGMA cache_size=-4096");
    /* No mmap: mapped pages would be ciphertext (the VFS refuses xFetch). */
    if (rc == FV_OK)
        rc = fv_store_conn_exec(c, "PRAGMA mmap_size=0");
    if (rc != FV_OK) {
        rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot configure database '%s': %s (%s)", path,
                          sqlite3_errmsg(c->db), fv_store_vfs_last_error());
        goto out;
    }
    *ret = c;
    c = NULL;
out:
    fv_store_conn_close(c);
    return rc;
}

int fv_store_conn_exec(struct fv_store_conn *c, const char *sql)
{
    int src = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    return src == SQLITE_OK ? FV_OK : fv_store_sqlite_err(src);
}

int fv_store_conn_prepare(struct fv_store_conn *c, const char *sql, size_t len, sqlite3_stmt **ret)
{
    uint32_t h = sql_hash(sql, len);
    struct fv_store_stmt_ent **bucket = &c->buckets[h % FV_STORE_STMT_BUCKETS];
    for (struct fv_store_stmt_ent *e = *bucket; e; e = e->next) {
        if (e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) {
            *ret = e->st;
            return FV_OK;
        }
    }
    if (len > INT32_MAX)
        return FV_E_LIMIT;
    if (c->n_stmts >= FV_STORE_STMT_CACHE_MAX) {
        /* Statements are reset when handed back, so none is in use here. */
        cache_flush(c);
        bucket = &c->buckets[h % FV_STORE_STMT_BUCKETS];
    }
    struct fv_store_stmt_ent *e = fv_calloc(1, sizeof(*e));
    if (!e)
        return FV_E_NOMEM;
    e->sql = fv_strndup(sql, len);
    if (!e->sql) {
        fv_free(e);
        return FV_E_NOMEM;
    }
    int src = sqlite3_prepare_v3(c->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &e->st, NULL);
    if (src != SQLITE_OK || !e->st) {
        sqlite3_finalize(e->st);
        fv_free(e->sql);
        fv_free(e);
        int rc = fv_store_sqlite_err(src);
        if (rc == FV_OK || rc == FV_E_CONFLICT)
            rc = FV_E_INTERNAL;
        fv_log(FV_LOG_DEBUG, "store: prepare failed: %s", sqlite3_errmsg(c->db));
        return rc;
    }
    e->len = len;
    e->hash = h;
    e->next = *bucket;
    *bucket = e;
    c->n_stmts++;
    *ret = e->st;
    return FV_OK;
}

void fv_store_conn_rollback(struct fv_store_conn *c)
{
    if (c && c->db && !sqlite3_get_autocommit(c->db)) {
        int src = sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        if (src != SQLITE_OK)
            fv_log(FV_LOG_DEBUG, "store: rollback failed: %s", sqlite3_errmsg(c->db));
    }
}

void fv_store_stmt_done(sqlite3_stmt *st)
{
    if (!st)
        return;
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

int fv_store_bind_val(sqlite3_stmt *st, int i, const struct fv_sqlval *v)
{
    int src;
    switch (v->type) {
    case FV_SQL_INT:
        src = sqlite3_bind_int64(st, i, v->i);
        break;
    case FV_SQL_REAL:
        src = sqlite3_bind_double(st, i, v->r);
        break;
    case FV_SQL_TEXT:
        if (v->len > INT32_MAX)
            return FV_E_LIMIT;
        src = sqlite3_bind_text(st, i, v->s ? v->s : "", (int)v->len, SQLITE_TRANSIENT);
        break;
    case FV_SQL_NULL:
    default:
        src = sqlite3_bind_null(st, i);
        break;
    }
    return src == SQLITE_OK ? FV_OK : fv_store_sqlite_err(src);
}

int fv_store_bind_where(sqlite3_stmt *st, const struct fv_sql_where *where)
{
    if (!where)
        return FV_OK;
    for (size_t i = 0; i < where->n_params; i++) {
        int rc = fv_store_bind_val(st, (int)i + 1, &where->params[i]);
        if (rc != FV_OK)
            return rc;
    }
    return FV_OK;
}

/* ----------------------------------------------------------------- pools */

int fv_store_pool_init(struct fv_store_pool *p, const char *path, enum fv_store_conn_mode mode)
{
    memset(p, 0, sizeof(*p));
    p->path = fv_strdup(path);
    if (!p->path)
        return FV_E_NOMEM;
    p->mode = mode == FV_STORE_CONN_CREATE ? FV_STORE_CONN_RW : mode;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        FV_FREE(p->path);
        return FV_E_NOMEM;
    }
    return FV_OK;
}

void fv_store_pool_release(struct fv_store_pool *p)
{
    if (!p->path)
        return;
    while (p->free) {
        struct fv_store_conn *c = p->free;
        p->free = c->next_free;
        fv_store_conn_close(c);
    }
    (void)pthread_mutex_destroy(&p->mu);
    FV_FREE(p->path);
}

int fv_store_pool_get(struct fv_store_pool *p, struct fv_store_conn **ret)
{
    (void)pthread_mutex_lock(&p->mu);
    struct fv_store_conn *c = p->free;
    if (c) {
        p->free = c->next_free;
        p->n_idle--;
    }
    (void)pthread_mutex_unlock(&p->mu);
    if (c) {
        c->next_free = NULL;
        *ret = c;
        return FV_OK;
    }
    /* Open outside the lock: opening is I/O. Pool connections only read. */
    int rc = fv_store_conn_open(p->path, p->mode, &c, NULL);
    if (rc == FV_OK)
        rc = fv_store_conn_exec(c, "PRAGMA query_only=1");
    if (rc != FV_OK) {
        fv_store_conn_close(c);
        return rc;
    }
    *ret = c;
    return FV_OK;
}

void fv_store_pool_put(struct fv_store_pool *p, struct fv_store_conn *c)
{
    if (!c)
        return;
    /* A connection left inside a transaction (should not happen) is not reused. */
    if (!sqlite3_get_autocommit(c->db)) {
        fv_store_conn_close(c);
        return;
    }
    (void)pthread_mutex_lock(&p->mu);
    if (p->n_idle < FV_STORE_READERS_IDLE_MAX) {
        c->next_free = p->free;
        p->free = c;
        p->n_idle++;
        c = NULL;
    }
    (void)pthread_mutex_unlock(&p->mu);
    fv_store_conn_close(c);
}

/* ------------------------------------------------------------ migrations */

static int pragma_int(struct fv_store_conn *c, const char *sql, int64_t *ret)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *ret = sqlite3_column_int64(st, 0);
        src = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return src == SQLITE_OK ? FV_OK : fv_store_sqlite_err(src);
}

int fv_store_migrate(struct fv_store_conn *c, int32_t app_id, const char *const *steps, size_t n,
                     bool read_only, const char *what, struct fv_error *reterr)
{
    int64_t version = 0, have_id = 0, n_objects = 0;
    int rc = pragma_int(c, "PRAGMA user_version", &version);
    if (rc == FV_OK)
        rc = pragma_int(c, "PRAGMA application_id", &have_id);
    if (rc == FV_OK)
        rc = pragma_int(c, "SELECT count(*) FROM sqlite_schema", &n_objects);
    if (rc != FV_OK) {
        if (rc == FV_E_INTERNAL)
            rc = FV_E_CORRUPT;
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot read the %s schema: %s", what,
                            sqlite3_errmsg(c->db));
    }
    /* 1. a formvault file carries our application_id; 2. an empty file is new */
    if (have_id != app_id && !(have_id == 0 && version == 0 && n_objects == 0))
        return fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX, "not a formvault %s database", what);
    if (version > (int64_t)n)
        return fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX,
                            "%s schema version %lld is newer than this binary supports (%zu)", what,
                            (long long)version, n);
    if (version == (int64_t)n)
        return FV_OK;
    if (read_only)
        return fv_error_set(reterr, FV_E_READ_ONLY, SIZE_MAX,
                            "%s schema version %lld needs migration but the store is read-only",
                            what, (long long)version);
    for (size_t v = (size_t)version; v < n; v++) {
        char bump[96];
        rc = fv_store_conn_exec(c, "BEGIN IMMEDIATE");
        if (rc != FV_OK)
            goto fail;
        rc = fv_store_conn_exec(c, steps[v]);
        if (rc == FV_OK) {
            (void)snprintf(bump, sizeof(bump), "PRAGMA application_id=%ld; PRAGMA user_version=%zu",
                           (long)app_id, v + 1);
            rc = fv_store_conn_exec(c, bump);
        }
        if (rc == FV_OK)
            rc = fv_store_conn_exec(c, "COMMIT");
        if (rc != FV_OK) {
            fv_store_conn_rollback(c);
            goto fail;
        }
    }
    return FV_OK;
fail:
    return fv_error_set(reterr, rc, SIZE_MAX, "%s schema migration failed: %s", what,
                        sqlite3_errmsg(c->db));
}

/* ---------------------------------------------------------------- helpers */

void fv_store_time_text(int64_t ms, char *out, size_t cap)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        (void)fv_strlcpy(out, "1970-01-01 00:00:00", cap);
        return;
    }
    (void)snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int fv_store_mkdir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0700) == 0)
        return FV_OK;
    if (errno != EEXIST)
        return FV_E_IO;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return FV_E_IO;
    return FV_OK;
}

int fv_store_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return FV_E_IO;
    int r = fsync(fd);
    (void)close(fd);
    return r == 0 ? FV_OK : FV_E_IO;
}
