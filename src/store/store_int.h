/*
 * store_int.h: private declarations of the store module (SQLite engine).
 * Never included outside src/store/ and its unit tests. See README.md for
 * invariants, the on-disk schema and the lock order.
 */
#ifndef FV_STORE_INT_H
#define FV_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>

#include "store/store.h"

/* First record ID of a tenant: 19 digits like Creator's IDs. */
#define FV_STORE_ID_BASE INT64_C(4000000000000000001)
/* Prepared statements cached per connection before the cache is flushed. */
#define FV_STORE_STMT_CACHE_MAX 256
#define FV_STORE_STMT_BUCKETS 64
/* Idle reader connections kept per database. */
#define FV_STORE_READERS_IDLE_MAX 8
/* busy_timeout for every connection, ms (only other processes contend). */
#define FV_STORE_BUSY_TIMEOUT_MS 10000
/* SQL identifier buffers: "f_" + app + "__" + form, "c_" + field + "__" + part. */
#define FV_STORE_IDENT_MAX (2 * FV_MODEL_LINK_MAX + 32)
/* Largest SQL text the store builds (queries with many columns). */
#define FV_STORE_SQL_MAX (256 * 1024)

/* PRAGMA application_id values: "FVCA", "FVTN". */
#define FV_STORE_APPID_CATALOG 0x46564341
#define FV_STORE_APPID_TENANT 0x4656544e

/* ------------------------------------------------------------ connections */

struct fv_store_stmt_ent {
    char *sql;
    size_t len;
    uint32_t hash;
    sqlite3_stmt *st;
    struct fv_store_stmt_ent *next;
};

/* One SQLite connection plus its prepared-statement cache. One thread at a time. */
struct fv_store_conn {
    sqlite3 *db;
    struct fv_store_stmt_ent *buckets[FV_STORE_STMT_BUCKETS];
    size_t n_stmts;
    struct fv_store_conn *next_free; /* pool free list */
};

enum fv_store_conn_mode {
    FV_STORE_CONN_CREATE, /* read-write, create the file (mode 0600) if missing */
    FV_STORE_CONN_RW,     /* read-write, file must exist */
    FV_STORE_CONN_RO,     /* read-only */
};

/* Open path with the standard pragmas; reterr names the path (log-only detail). */
FV_MUST_CHECK int fv_store_conn_open(const char *path, enum fv_store_conn_mode mode,
                                     struct fv_store_conn **ret, struct fv_error *reterr);
/* Finalize cached statements and close. Accepts NULL. */
void fv_store_conn_close(struct fv_store_conn *c);
/*
 * Prepared statement for sql (NUL-terminated, len bytes) from c's cache,
 * preparing it (SQLITE_PREPARE_PERSISTENT) on a miss. The statement is reset
 * and has no bindings; it stays owned by the cache: the caller resets it
 * when done (fv_store_stmt_done) and never finalizes it.
 * Rule: finish with one cached statement (fv_store_stmt_done) before
 * preparing another on the same connection; a cache miss on a full cache
 * finalizes every cached statement.
 */
FV_MUST_CHECK int fv_store_conn_prepare(struct fv_store_conn *c, const char *sql, size_t len,
                                        sqlite3_stmt **ret);
/* Run constant SQL without results (DDL, PRAGMA, BEGIN...). */
FV_MUST_CHECK int fv_store_conn_exec(struct fv_store_conn *c, const char *sql);
/* Roll back the open transaction, if any (best effort: SQLite rolls back
 * on close anyway). */
void fv_store_conn_rollback(struct fv_store_conn *c);
/* Reset and clear a cached statement. Accepts NULL. */
void fv_store_stmt_done(sqlite3_stmt *st);
/* Map an SQLite result code to fv_err. */
int fv_store_sqlite_err(int sqlite_rc);

/*
 * Pool of connections to one database file, used for reads (WAL readers
 * never wait for the writer). Thread-safe.
 */
struct fv_store_pool {
    pthread_mutex_t mu;
    char *path;
    enum fv_store_conn_mode mode;
    struct fv_store_conn *free;
    size_t n_idle;
};
FV_MUST_CHECK int fv_store_pool_init(struct fv_store_pool *p, const char *path,
                                     enum fv_store_conn_mode mode);
void fv_store_pool_release(struct fv_store_pool *p);
FV_MUST_CHECK int fv_store_pool_get(struct fv_store_pool *p, struct fv_store_conn **ret);
/* Return c (its statements must be reset); closes it beyond the idle limit. */
void fv_store_pool_put(struct fv_store_pool *p, struct fv_store_conn *c);

/*
 * Versioned schema migration: PRAGMA user_version is the number of steps
 * applied; steps[i] (SQL text) takes the schema from version i to i + 1.
 * Each step runs in its own transaction with the version bump. A file with
 * another application_id, or a version newer than n, is FV_E_CORRUPT.
 */
FV_MUST_CHECK int fv_store_migrate(struct fv_store_conn *c, int32_t app_id,
                                   const char *const *steps, size_t n, bool read_only,
                                   const char *what, struct fv_error *reterr);

/* UTC "YYYY-MM-DD HH:MM:SS" of ms into out[cap >= 20]. */
void fv_store_time_text(int64_t ms, char *out, size_t cap);
/* mkdir with 0700 if missing; FV_E_IO if it exists but is not a directory. */
FV_MUST_CHECK int fv_store_mkdir(const char *path);
/* fsync a directory so that a created entry is durable. */
FV_MUST_CHECK int fv_store_fsync_dir(const char *path);
/* Bind one fv_sqlval at index i (TEXT with SQLITE_TRANSIENT). */
FV_MUST_CHECK int fv_store_bind_val(sqlite3_stmt *st, int i, const struct fv_sqlval *v);
/* Bind where->params at 1..n. */
FV_MUST_CHECK int fv_store_bind_where(sqlite3_stmt *st, const struct fv_sql_where *where);

/* ----------------------------------------------------------- apps, forms */

/* Precomputed SQL facts of one form, built once per app load. */
struct fv_store_form {
    const struct fv_form *form;
    char table[FV_STORE_IDENT_MAX];
    size_t n_cols;                         /* field columns (system columns excluded) */
    size_t *col_off;                       /* [n_fields]: first column of field i */
    size_t *col_n;                         /* [n_fields]: columns of field i */
    char (*col_names)[FV_STORE_IDENT_MAX]; /* [n_cols] */
    enum fv_sql_type *col_types;           /* [n_cols] */
    char *insert_sql;                      /* INSERT of every column ... RETURNING * */
    size_t insert_len;
};

/* One loaded version of an app. Retired versions stay until the tenant closes. */
struct fv_store_app {
    struct fv_app *app;
    int64_t created_ms;
    int64_t modified_ms; /* fv_apps.modified of this version */
    bool current;
    struct fv_store_form *forms; /* [app->n_forms] */
    struct fv_store_app *next;
};

/* ------------------------------------------------------------ write queue */

/* A write after caller-thread preparation. */
struct fv_store_prep {
    struct fv_store_write *w;
    const struct fv_store_form *sf;
    struct fv_sqlval *vals; /* [sf->n_cols] */
    bool *present;          /* [n_fields]: updates: field given */
    char **lookup_text;     /* [n_fields]: CSV lookup text to resolve, or NULL */
    bool ready;             /* preparation succeeded: execute */
};

/* One fv_store_write() call waiting in the tenant's queue. */
struct fv_store_job {
    struct fv_store_prep *preps;
    size_t n;
    const struct fv_app *app;
    const char *actor;
    bool done;
    int rc;            /* batch-level result */
    pthread_cond_t cv; /* signalled when done, or when this job must lead */
    struct fv_store_job *next;
};

/* ---------------------------------------------------------------- tenant */

enum fv_tenant_state { FV_TENANT_OPENING, FV_TENANT_READY, FV_TENANT_FAILED };

struct fv_tenant {
    const struct fv_store_engine *engine;
    struct fv_store *store;
    int64_t id;

    /* under store->mu */
    int refs;
    enum fv_tenant_state state;
    int open_rc;
    int64_t last_used_ns;
    struct fv_tenant *prev, *next; /* store's list, most recently used first */

    char *dir;
    char *db_path;
    struct fv_store_pool readers;

    /* write side: wq_mu guards leader and the queue */
    pthread_mutex_t wq_mu;
    pthread_cond_t wq_cv;
    bool leader;
    struct fv_store_job *q_head, *q_tail;
    struct fv_store_conn *writer; /* used only by the current leader */
    int64_t next_id;              /* leader only */
    int group_commit_max;

    /* app definitions: apps_lock guards the list */
    pthread_rwlock_t apps_lock;
    struct fv_store_app *apps;
    /* another process's app installs are picked up at most this often */
    atomic_llong apps_checked_ms;
    int64_t data_version; /* PRAGMA data_version of the writer; writer only */
    bool sync_inited;
};

/* ----------------------------------------------------------------- store */

struct fv_store {
    const struct fv_store_engine *engine;
    char *data_dir;
    char *tenants_dir;
    char *catalog_path;
    int tenant_cache_size;
    int group_commit_max;
    bool read_only;

    pthread_mutex_t cat_mu; /* guards cat_writer */
    struct fv_store_conn *cat_writer;
    struct fv_store_pool cat_readers;

    pthread_mutex_t mu; /* tenant cache */
    pthread_cond_t cv;
    struct fv_tenant *tenants; /* most recently used first */
    size_t n_tenants;
    bool sync_inited;
};

/* tenant_db.c */
FV_MUST_CHECK int fv_store_tenant_db_create(struct fv_store *s, int64_t id,
                                            struct fv_error *reterr);
FV_MUST_CHECK int fv_store_tenant_open(struct fv_store *s, struct fv_tenant *t);
void fv_store_tenant_close(struct fv_tenant *t);
/* Form info for a form pointer of any loaded app version; NULL if unknown. */
const struct fv_store_form *fv_store_form_find(struct fv_tenant *t, const struct fv_form *form,
                                               const struct fv_app **ret_app);
/* Become the tenant's single writer (waits for a running leader), and back. */
void fv_store_writer_enter(struct fv_tenant *t);
void fv_store_writer_leave(struct fv_tenant *t);

/* records.c */
void fv_store_prep_release(struct fv_store_prep *p);
FV_MUST_CHECK int fv_store_prep_init(struct fv_store_prep *p, const struct fv_app *app,
                                     const struct fv_store_form *sf, struct fv_store_write *w);
/* Run one prepared write inside the leader's transaction (own SAVEPOINT). */
FV_MUST_CHECK int fv_store_prep_exec(struct fv_tenant *t, const struct fv_app *app,
                                     struct fv_store_prep *p, const char *actor, int64_t now_ms);

/* changelog.c */
FV_MUST_CHECK int fv_store_changelog_append(struct fv_store_conn *c, int64_t now_ms,
                                            const char *actor, const char *op, const char *app,
                                            const char *form, int64_t record_id, const char *row,
                                            size_t row_len);
/* Compact JSON text of j into a new fv_malloc'd string (fv_free). */
FV_MUST_CHECK int fv_store_json_dump(const json_t *j, char **ret, size_t *ret_len);
/* Row image JSON of the current result row of st (column name -> value). */
FV_MUST_CHECK int fv_store_row_image(sqlite3_stmt *st, char **ret, size_t *ret_len);

/* Engine entry points (store_sqlite.c and the files above). */
int fv_store_sqlite_open(const struct fv_store_options *opt, struct fv_store **ret,
                         struct fv_error *reterr);
void fv_store_sqlite_close(struct fv_store *s);
int fv_store_sqlite_tenant_create(struct fv_store *s, const char *name, const char *region,
                                  struct fv_store_tenant_info *ret, struct fv_error *reterr);
int fv_store_sqlite_tenant_list(struct fv_store *s, struct fv_store_tenant_info **ret,
                                size_t *ret_n);
int fv_store_sqlite_tenant_find(struct fv_store *s, const char *name,
                                struct fv_store_tenant_info *ret);
int fv_store_sqlite_tenant_acquire(struct fv_store *s, int64_t tenant_id, struct fv_tenant **ret);
void fv_store_sqlite_tenant_release(struct fv_tenant *t);
int fv_store_sqlite_token_insert(struct fv_store *s, const struct fv_store_token *tok,
                                 const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES], int64_t *ret_id);
int fv_store_sqlite_token_lookup(struct fv_store *s, const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES],
                                 struct fv_store_token *ret);
int fv_store_sqlite_app_install(struct fv_tenant *t, const char *json, size_t len,
                                const char *actor, struct fv_error *reterr);
int fv_store_sqlite_app_get(struct fv_tenant *t, const char *link, const struct fv_app **ret);
int fv_store_sqlite_app_list(struct fv_tenant *t, struct fv_store_app_entry **ret, size_t *ret_n);
int fv_store_sqlite_write(struct fv_tenant *t, const struct fv_app *app, struct fv_store_write *w,
                          size_t n, const char *actor);
int fv_store_sqlite_query(struct fv_tenant *t, const struct fv_app *app,
                          const struct fv_store_query *q, json_t **ret_rows, char *ret_cursor,
                          size_t cursor_cap);
int fv_store_sqlite_count(struct fv_tenant *t, const struct fv_form *form,
                          const struct fv_sql_where *where, int64_t *ret_n);
int fv_store_sqlite_changelog_read(struct fv_tenant *t, int64_t after_seq, size_t limit,
                                   json_t **ret);

/*
 * Read the tenant's next record ID from fv_meta into t->next_id (writer
 * connection). The leader calls it inside BEGIN IMMEDIATE, so IDs stay unique
 * even when another process (the CLI's import) wrote to the same database.
 */
int fv_store_tenant_load_next_id(struct fv_tenant *t);

#endif
