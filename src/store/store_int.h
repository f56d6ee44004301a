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

#include "crypto/crypto.h"
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
    struct fv_store_fcache *fcache;  /* field AEAD contexts (field_crypt.c), or NULL */
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

/* ------------------------------------------------------ encrypting VFS */

/*
 * vfs.c: the encrypting SQLite VFS (DESIGN.md "Storage", notes/encrypting-vfs.md,
 * STYLE 27). Every page of a main database, its WAL and its rollback
 * journal is AES-256-GCM sealed under a per-file subkey derived from the
 * bound keyring's storage key; the page's reserved bytes hold
 * tag(16) || nonce(12) || key version(4, big-endian).
 */
#define FV_STORE_VFS_NAME "formvault"
#define FV_STORE_VFS_RESERVE 32

/*
 * Register the encrypting VFS as SQLite's default and unregister every
 * other VFS so that no plaintext VFS can be named (URI vfs=, VACUUM INTO,
 * ATTACH). Idempotent and thread-safe. FV_E_INTERNAL.
 */
FV_MUST_CHECK int fv_store_vfs_register(void);
/*
 * Bind the database at path (as later given to sqlite3_open_v2) to kr (a
 * reference is taken): opening that main database, its WAL or journal uses
 * kr; opening any main database without a binding fails (SQLITE_CANTOPEN,
 * "no key bound"). Rebinding replaces. FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_store_vfs_bind(const char *path, struct fv_keyring *kr);
/* Remove the binding of path if it is bound to kr (any keyring when kr is
 * NULL): a handle closing after its path was rebound by a newer handle of
 * the same database leaves the newer binding alone. Open connections keep
 * their reference. */
void fv_store_vfs_unbind(const char *path, struct fv_keyring *kr);
/* After sqlite3_open_v2 and before anything else: set the reserved bytes
 * (FV_STORE_VFS_RESERVE) and disable mmap. FV_E_IO. */
FV_MUST_CHECK int fv_store_vfs_conn_setup(sqlite3 *db);
/*
 * Key versions of the pages of a database file on disk, from the clear
 * version field of each page's reserved bytes (no key needed): lowest and
 * highest version and page count. FV_E_IO, FV_E_CORRUPT (not a formvault file).
 */
FV_MUST_CHECK int fv_store_vfs_scan(const char *path, uint32_t *ret_min, uint32_t *ret_max,
                                    uint64_t *ret_pages);
/*
 * Text of the last page-level failure on this thread ("page 7 of
 * '.../tenant.db' failed authentication", "no key version 2 for ..."), or
 * "" if none: the detail for logs behind SQLITE_IOERR_DATA / SQLITE_IOERR_AUTH.
 */
const char *fv_store_vfs_last_error(void);

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
    /* Root-key versions of this tenant (owner = decimal tenant ID); page
     * keys for the VFS, field and blind-index keys for records.c. Set before
     * the database is opened, never NULL while state is READY. */
    struct fv_keyring *keys;
    pthread_mutex_t keys_mu;   /* serialises key reloads; guards tenant_kek */
    struct fv_kek *tenant_kek; /* the tenant's own KEK (BYOK), or NULL: node KEK */
    bool bound;                /* db_path is bound to keys in the VFS */

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

    struct fv_kek *kek;           /* node KEK (borrowed from the options) */
    struct fv_keyring *node_keys; /* catalog.db page key */
    struct fv_secret *node_root;  /* the node key itself, for KEK rotation */
    int64_t keys_epoch_seen;      /* watcher only */
    atomic_bool kek_lost;         /* written by the watcher, read by /readyz */

    pthread_mutex_t mu; /* tenant cache */
    pthread_cond_t cv;
    struct fv_tenant *tenants; /* most recently used first */
    size_t n_tenants;
    bool sync_inited;
};

/* tenant_db.c */
/* Create tenants/<id>/tenant.db encrypted under kr (bound for the duration). */
FV_MUST_CHECK int fv_store_tenant_db_create(struct fv_store *s, int64_t id, struct fv_keyring *kr,
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

/* keys.c */
/*
 * Unwrap data_dir/node.key under kek (creating it when the data dir is new),
 * build s->node_keys and bind catalog.db to it. Errors name the KEK and the
 * file: FV_E_KEY_UNAVAILABLE (no KEK, wrong KEK, node.key missing while
 * catalog.db exists), FV_E_CORRUPT (node.key unreadable or not unwrapping).
 */
FV_MUST_CHECK int fv_store_keys_node_load(struct fv_store *s, struct fv_kek *kek,
                                          bool catalog_exists, struct fv_error *reterr);
/* New random root key version 1 for a new tenant, wrapped by s->kek and inserted
 * in tenant_keys inside the caller's catalog transaction; *ret = its keyring. */
FV_MUST_CHECK int fv_store_keys_tenant_init(struct fv_store *s, int64_t tenant_id,
                                            struct fv_keyring **ret);
/* Create or resync t->keys (and t->tenant_kek) from the catalog. On a key
 * failure the keyring is revoked and the error returned (reterr names it). */
FV_MUST_CHECK int fv_store_keys_tenant_load(struct fv_store *s, struct fv_tenant *t,
                                            struct fv_error *reterr);

/* PRAGMA wal_checkpoint(TRUNCATE) on the catalog so pages of deleted key
 * rows leave the WAL file (logs a warning on failure). Takes cat_mu. */
void fv_store_keys_catalog_truncate(struct fv_store *s);
/*
 * Key floor (rotation safety across processes): the rotation job stores the
 * new version as fv_meta 'min_key_version' in the tenant database before it
 * verifies and destroys older versions. Every writer calls
 * fv_store_keys_writer_check right after BEGIN IMMEDIATE on t->writer: if its
 * write version is below the floor it reloads the tenant's keys, and fails
 * with FV_E_KEY_UNAVAILABLE if that does not help. So no process can seal
 * anything under a version that is about to be destroyed.
 */
FV_MUST_CHECK int fv_store_keys_writer_check(struct fv_tenant *t);
/* Raise the floor to version (own write transaction; takes the writer). */
FV_MUST_CHECK int fv_store_keys_set_floor(struct fv_tenant *t, uint32_t version);
/*
 * Catalog write transaction for key state: fv_store_cat_begin takes cat_mu
 * and BEGIN IMMEDIATE (FV_E_READ_ONLY, FV_E_BUSY...; nothing held on error);
 * fv_store_cat_end commits when rc is FV_OK (bumping the key epoch if asked)
 * or rolls back, releases cat_mu and returns the final rc.
 */
FV_MUST_CHECK int fv_store_cat_begin(struct fv_store *s);
FV_MUST_CHECK int fv_store_cat_end(struct fv_store *s, int rc, bool bump_epoch);
/*
 * Inside a catalog write transaction that wraps keys: FV_E_KEY_UNAVAILABLE
 * (logged) if node_state 'kek_id' names another KEK than s->kek, i.e. a KEK
 * rotation by another process has retired the KEK this process holds.
 */
FV_MUST_CHECK int fv_store_keys_kek_guard(struct fv_store *s);
/*
 * Associated data of wrapped keys (keys.c header): label || tenant ID (8
 * bytes, big-endian), and for root keys "fv-tenant-root-v1" || tenant ID ||
 * version (4, big-endian). Returns the length written to ad (cap >= 64).
 */
size_t fv_store_keys_ad_tenant(uint8_t *ad, size_t cap, const char *label, int64_t tenant_id);
size_t fv_store_keys_ad_root(uint8_t *ad, size_t cap, int64_t tenant_id, uint32_t version);
/* Rewrite node.key with the node key wrapped under new_kek. */
FV_MUST_CHECK int fv_store_keys_node_rewrap(struct fv_store *s, struct fv_kek *new_kek);
/*
 * The KEK wrapping a tenant's root keys: s->kek (borrowed; *ret_owned = NULL)
 * or the tenant's own (imported or PKCS#11: *ret = *ret_owned, caller frees).
 * c: a catalog connection. FV_E_KEY_UNAVAILABLE (revoked, HSM unreachable),
 * FV_E_CORRUPT.
 */
FV_MUST_CHECK int fv_store_keys_tenant_kek(struct fv_store *s, struct fv_store_conn *c,
                                           int64_t tenant_id, struct fv_kek **ret,
                                           struct fv_kek **ret_owned, struct fv_error *reterr);
/* "imported:" + key check value of an imported KEK. */
FV_MUST_CHECK int fv_store_keys_imported_id(const struct fv_secret *k, char *out, size_t cap);

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

/* field_crypt.c */

/*
 * Field-level encryption (README.md "Field-level encryption"). A field with
 * `encrypt` is stored in two BLOB columns (model.h fv_model_field_column):
 * "c_<f>" holds the sealed value
 *   0x01 || key version (4, BE) || nonce (12) || ciphertext || tag (16),
 * AES-256-GCM under the keyring's field key of that version, plaintext =
 * fv_model_value_encode of the value columns, associated data =
 *   "fv-field-v1" || tenant ID (8, BE) || app || 0 || form || 0 || field || 0
 *   || record ID (8, BE),
 * so a sealed value copied to another record, field, form, app or tenant
 * fails to open (FV_E_CORRUPT). "c_<f>__bidx" holds the first 16 bytes of
 * HMAC-SHA256(blind-index key of the same version,
 * fv_model_field_bidx_message), or NULL for empty values and composite
 * types. Change-log images carry both as base64url text (no padding):
 * {"enc": "<sealed value>"} and "<blind index>" (changelog.c).
 */
#define FV_STORE_FIELD_FORMAT 0x01
#define FV_STORE_FIELD_HDR (1 + 4) /* format byte, key version */
/* a sealed value is FV_STORE_FIELD_OVERHEAD bytes longer than its plaintext */
#define FV_STORE_FIELD_OVERHEAD (FV_STORE_FIELD_HDR + FV_CRYPTO_AEAD_OVERHEAD)
/* blind index: the first 16 bytes of the MAC (128 bits); as base64url text plus NUL */
#define FV_STORE_BIDX_BYTES FV_MODEL_BIDX_BYTES
#define FV_STORE_BIDX_TEXT 23
/* the blind indexes of one value under every live key version, back to back */
#define FV_STORE_TOKENS_MAX (FV_MODEL_BIDX_SLOTS * FV_STORE_BIDX_BYTES)

/*
 * Field AEAD contexts, one per key version, made on first use and kept for
 * as long as the keyring they came from is unchanged (same keyring, same
 * fv_crypto_keyring_generation: any add, remove, set_write or revoke drops
 * them all), plus random nonces drawn FV_STORE_FCX_NONCES at a time (one
 * getrandom per batch). Each connection has one (fv_store_conn.fcache, made
 * on first use), so a request reuses the contexts of earlier requests on
 * that connection instead of deriving the key again. Not thread-safe: it
 * belongs to whoever holds the connection (fv_aead contexts are not).
 */
#define FV_STORE_FCX_NONCES 32
struct fv_store_fcache {
    struct fv_keyring *kr; /* referenced: its address cannot be reused while cached */
    uint64_t gen;
    uint32_t ver[FV_CRYPTO_KEYRING_MAX_VERSIONS];
    struct fv_aead *aead[FV_CRYPTO_KEYRING_MAX_VERSIONS];
    size_t n;
    uint8_t nonces[FV_STORE_FCX_NONCES * FV_CRYPTO_NONCE_BYTES];
    size_t nonces_left;
};
/* Free a connection's cache (contexts, keyring reference). Accepts NULL. */
void fv_store_fcache_free(struct fv_store_fcache *fc);

/*
 * The field-crypto context of one operation (a write, a query, a
 * re-encryption step): the tenant and the cache of the connection the
 * operation runs on (c may be NULL, or its cache may fail to allocate:
 * then the operation uses a cache of its own, freed by
 * fv_store_fcx_release). Same thread rules as the connection.
 */
struct fv_store_fcx {
    struct fv_tenant *t;
    struct fv_store_fcache *fc; /* c->fcache or &own */
    struct fv_store_fcache own;
};
void fv_store_fcx_init(struct fv_store_fcx *x, struct fv_tenant *t, struct fv_store_conn *c);
void fv_store_fcx_release(struct fv_store_fcx *x);

/*
 * Seal the encoded value m[0..mlen) of field `field` (form, app: link names)
 * of record id under key version (0 = the keyring's write version) into
 * out[0 .. mlen + FV_STORE_FIELD_OVERHEAD). FV_E_KEY_UNAVAILABLE (no
 * keyring, no write version, version absent), FV_E_LIMIT (mlen > INT32_MAX),
 * FV_E_NOMEM, FV_E_INTERNAL. On failure out holds nothing useful.
 */
FV_MUST_CHECK int fv_store_field_seal(struct fv_store_fcx *x, uint32_t version, const char *app,
                                      const char *form, const char *field, int64_t id,
                                      const uint8_t *m, size_t mlen, uint8_t *out);
/*
 * Open a sealed value (len bytes) into a new buffer (fv_malloc'd, one byte
 * longer and NUL-terminated; wipe with fv_wipe and free) and report its key
 * version. FV_E_CORRUPT (malformed, forged, moved to another
 * record/field/form/app/tenant), FV_E_KEY_UNAVAILABLE (its key version is
 * not in the keyring), FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_store_field_open(struct fv_store_fcx *x, const char *app, const char *form,
                                      const char *field, int64_t id, const uint8_t *sealed,
                                      size_t len, uint8_t **ret_m, size_t *ret_mlen,
                                      uint32_t *ret_version);
/* Same into buf[0..cap) (no allocation; the read path): FV_E_LIMIT if the
 * plaintext is longer than cap. On failure buf holds nothing. */
FV_MUST_CHECK int fv_store_field_open_buf(struct fv_store_fcx *x, const char *app, const char *form,
                                          const char *field, int64_t id, const uint8_t *sealed,
                                          size_t len, uint8_t *buf, size_t cap, size_t *ret_mlen,
                                          uint32_t *ret_version);
/* Key version of a sealed value without opening it. FV_E_CORRUPT if malformed. */
FV_MUST_CHECK int fv_store_field_version(const uint8_t *sealed, size_t len, uint32_t *ret_version);
/* Blind index of message msg under key version. FV_E_KEY_UNAVAILABLE. */
FV_MUST_CHECK int fv_store_field_bidx(struct fv_tenant *t, uint32_t version, const uint8_t *msg,
                                      size_t len, uint8_t out[FV_STORE_BIDX_BYTES]);
/*
 * The blind indexes of msg under every live key version, back to back, into
 * out (*ret_len bytes, a multiple of FV_STORE_BIDX_BYTES): the parameter of
 * fv_model_bidx_list_sql. FV_E_KEY_UNAVAILABLE (no keyring or no version).
 */
FV_MUST_CHECK int fv_store_field_tokens(struct fv_tenant *t, const uint8_t *msg, size_t len,
                                        uint8_t out[FV_STORE_TOKENS_MAX], size_t *ret_len);
/*
 * fv_store_bind_where, turning each FV_SQL_SECRET parameter (a blind-index
 * message from the criteria compiler) into the BLOB of its blind indexes
 * (fv_store_field_tokens). Every store path that binds a criteria fragment
 * uses this one.
 */
FV_MUST_CHECK int fv_store_field_bind_where(struct fv_tenant *t, sqlite3_stmt *st,
                                            const struct fv_sql_where *where);
/* base64url without padding (libsodium; change-log images, record cursors): length of n bytes
 * encoded */
size_t fv_store_b64u_len(size_t n);
/* Encode in[0..n) into out (fv_store_b64u_len(n) + 1 bytes), NUL-terminated. */
void fv_store_b64u_encode(const uint8_t *in, size_t n, char *out);
/* Decode in[0..n) into out[0..cap): *ret_n bytes. FV_E_CORRUPT if malformed or too long. */
FV_MUST_CHECK int fv_store_b64u_decode(const char *in, size_t n, uint8_t *out, size_t cap,
                                       size_t *ret_n);
/* True if form sf has a field with `encrypt`. */
bool fv_store_form_has_encrypted(const struct fv_store_form *sf);

/*
 * Row image JSON (changelog.c) of the current result row of st, a row of
 * form sf: like fv_store_row_image, but the sealed column of each encrypted
 * field appears as {"enc": "<base64url of the sealed value>"} so that no
 * reader of the change log takes it for a value, and other BLOB columns
 * (blind indexes) as base64url strings; never plaintext. sf may be NULL
 * (plain image).
 */
FV_MUST_CHECK int fv_store_row_image_form(sqlite3_stmt *st, const struct fv_store_form *sf,
                                          char **ret, size_t *ret_len);

/*
 * Position of a re-encryption (tenant key rotation) that the caller persists
 * between steps, e.g. in the catalog: plain integers, all zero to start.
 * phase 0 walks the form tables that hold encrypted fields (current app
 * versions, ordered by table name; form_index into that order, last_id the
 * last record done), phase 1 the change log (last_seq), phase 2 verifies.
 */
struct fv_store_reencrypt_cursor {
    uint32_t phase;
    uint32_t form_index;
    int64_t last_id;
    int64_t last_seq;
};

/*
 * One step of re-encrypting every sealed value and blind index that is not
 * under key version to_version (which must be in the keyring; normally its
 * write version): in one write transaction on the writer connection
 * (fv_store_writer_enter + BEGIN IMMEDIATE), visit up to max_rows rows of
 * form tables and change-log entries from *cur on, re-seal and re-index the
 * old values in place, and advance *cur. Modified_Time, row_version and the
 * change-log sequence stay as they are (no new entries; images are rewritten
 * in place). When the walk ends, the remaining old values are counted; if
 * any remain (e.g. a form appeared behind the cursor) the cursor restarts,
 * else *ret_finished is true. *ret_done = values re-sealed in this step.
 * The cursor is written only on success. Errors: FV_E_KEY_UNAVAILABLE
 * (to_version or an old version missing), FV_E_CORRUPT (a value does not
 * open: the log names form, field and record), FV_E_BUSY, FV_E_IO,
 * FV_E_NOMEM, FV_E_INVALID (max_rows 0).
 */
FV_MUST_CHECK int fv_store_field_reencrypt_step(struct fv_tenant *t, uint32_t to_version,
                                                struct fv_store_reencrypt_cursor *cur,
                                                size_t max_rows, size_t *ret_done,
                                                bool *ret_finished);
/*
 * Number of sealed values (form tables of the current app versions and
 * change-log images) whose key version is not `version` (reads the key
 * version in clear; needs no key). FV_E_CORRUPT (malformed value), FV_E_IO.
 */
FV_MUST_CHECK int fv_store_field_count_old(struct fv_tenant *t, uint32_t version, int64_t *ret_n);

#endif
