/*
 * store: the node's storage. catalog.db (tenants, API tokens, node state)
 * and one tenant.db per tenant (app definitions, one table per form, the
 * change log), SQLite in WAL mode with synchronous=FULL, writes of a tenant
 * batched by group commit (DESIGN.md "Storage").
 *
 * Every public function dispatches through a versioned engine table
 * (struct fv_store_engine, STYLE 4); the SQLite engine is store_sqlite.c.
 * A PostgreSQL engine can be added later without touching callers.
 *
 * Thread-safety: all functions may be called from any thread. A tenant
 * handle (struct fv_tenant) is reference-counted; app definitions returned
 * from it stay valid until the handle is released.
 * Lock order: store cache lock -> tenant write-queue lock. Never held across
 * another tenant's I/O. See src/store/README.md for invariants.
 */
#ifndef FV_STORE_H
#define FV_STORE_H

#include <jansson.h>

#include "core/core.h"
#include "crypto/crypto.h"
#include "model/model.h"

struct fv_store;  /* one per node */
struct fv_tenant; /* an open tenant database (ref-counted handle) */

struct fv_store_options {
    const char *data_dir;  /* created if missing (mode 0700) */
    int tenant_cache_size; /* open tenant databases kept (>= 1) */
    int group_commit_max;  /* writes per commit at most (>= 1) */
    bool read_only;        /* open existing files only, refuse writes */
    struct fv_kek *kek;    /* node KEK (crypto.h), borrowed, required; outlives the store */
};

/*
 * Open (creating if needed) the data dir, catalog.db and run pending catalog
 * migrations. *ret is freed with fv_store_close. Errors: FV_E_IO (dir or file
 * not usable; reterr names the path), FV_E_CORRUPT (not a formvault
 * catalog, or schema version newer than this binary), FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_store_open(const struct fv_store_options *opt, struct fv_store **ret,
                                struct fv_error *reterr);
/* Close every tenant database and the catalog. Accepts NULL. */
void fv_store_close(struct fv_store *s);

/* ------------------------------------------------------------- tenants */

struct fv_store_tenant_info {
    int64_t id;
    char name[FV_MODEL_LINK_MAX + 1]; /* the Creator {owner}, link-name syntax */
    char region[16];
    int64_t created_ms;
    char state[16]; /* "active" or "shredded" */
};

/*
 * Create a tenant (catalog row + tenants/<id>/tenant.db with the system
 * schema). Errors: FV_E_INVALID (bad name), FV_E_CONFLICT (name taken),
 * FV_E_IO, FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_store_tenant_create(struct fv_store *s, const char *name, const char *region,
                                         struct fv_store_tenant_info *ret, struct fv_error *reterr);
/* All tenants, by id. *ret is an fv_malloc'd array (fv_free). */
FV_MUST_CHECK int fv_store_tenant_list(struct fv_store *s, struct fv_store_tenant_info **ret,
                                       size_t *ret_n);
/* By name. FV_E_NO_OWNER when absent. */
FV_MUST_CHECK int fv_store_tenant_find(struct fv_store *s, const char *name,
                                       struct fv_store_tenant_info *ret);

/*
 * Get a handle on an open tenant database (from the bounded cache, opening
 * it if needed). Release with fv_store_tenant_release. Errors: FV_E_NO_OWNER,
 * FV_E_IO, FV_E_CORRUPT, FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_store_tenant_acquire(struct fv_store *s, int64_t tenant_id,
                                          struct fv_tenant **ret);
void fv_store_tenant_release(struct fv_tenant *t);

/* -------------------------------------------------------------- tokens */

#define FV_STORE_TOKEN_HASH_BYTES 32

struct fv_store_token {
    int64_t id;
    int64_t tenant_id;
    char scopes[512];   /* comma-separated Creator scopes */
    int64_t expires_ms; /* ms since epoch; 0 = never */
    int64_t created_ms;
    char label[64];
};

/*
 * Store a token by its hash (the token itself is never stored). Errors:
 * FV_E_NOT_FOUND (no such tenant), FV_E_KEY_UNAVAILABLE (the tenant is
 * shredded), FV_E_CONFLICT (hash exists), FV_E_IO.
 */
FV_MUST_CHECK int fv_store_token_insert(struct fv_store *s, const struct fv_store_token *tok,
                                        const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES],
                                        int64_t *ret_id);
/*
 * Find a token by hash (compared in constant time after the index lookup).
 * FV_E_AUTH when absent. Expiry is the caller's check.
 */
FV_MUST_CHECK int fv_store_token_lookup(struct fv_store *s,
                                        const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES],
                                        struct fv_store_token *ret);

/* ---------------------------------------------------------------- apps */

/*
 * Install or upgrade an app from its definition JSON (docs/app-format.md):
 * validate (fv_model_app_parse), create each form's table with typed
 * columns, unique and lookup indexes, store the definition, append a
 * `schema` change-log entry, all in one transaction. Re-installing an app
 * adds new forms and fields (ALTER TABLE ADD COLUMN) and replaces reports;
 * removing a field or changing its type is FV_E_CONFLICT.
 * Errors: FV_E_INVALID (definition; reterr says where), FV_E_CONFLICT,
 * FV_E_IO, FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_store_app_install(struct fv_tenant *t, const char *json, size_t len,
                                       const char *actor, struct fv_error *reterr);

/* App by link name, borrowed until the handle is released. FV_E_NO_APP. */
FV_MUST_CHECK int fv_store_app_get(struct fv_tenant *t, const char *link,
                                   const struct fv_app **ret);

struct fv_store_app_entry {
    const struct fv_app *app; /* borrowed like fv_store_app_get */
    int64_t created_ms;
};
/* All apps of the tenant; *ret is fv_malloc'd (fv_free the array only). */
FV_MUST_CHECK int fv_store_app_list(struct fv_tenant *t, struct fv_store_app_entry **ret,
                                    size_t *ret_n);

/* ------------------------------------------------------------- records */

enum fv_store_op {
    FV_STORE_INSERT,       /* data: object of field values (or cells) */
    FV_STORE_UPDATE_ID,    /* id + data (partial update) */
    FV_STORE_DELETE_ID,    /* id */
    FV_STORE_UPDATE_WHERE, /* where + data */
    FV_STORE_DELETE_WHERE, /* where */
};

/* Per-record outcome of a *_WHERE write. */
struct fv_store_result {
    uint64_t id;
    int rc;
    struct fv_error err;
};

/*
 * One write. Inputs are borrowed for the duration of fv_store_write().
 * A write either applies whole or not at all (its own SAVEPOINT); one
 * write's failure never affects the others in the same batch or commit.
 */
struct fv_store_write {
    enum fv_store_op op;
    const struct fv_form *form;
    const json_t *data; /* INSERT/UPDATE_*: object field->value */
    /* INSERT from CSV instead of data: cells[i] is the text for fields[i]. */
    const struct fv_field *const *cell_fields;
    const struct fv_str *cells;
    size_t n_cells;
    uint64_t id;                      /* *_ID */
    const struct fv_sql_where *where; /* *_WHERE; NULL = all records */
    size_t limit;                     /* *_WHERE: max records touched (200) */
    bool process_until_limit;         /* *_WHERE: else >limit matches = error */

    /* outputs, set by fv_store_write */
    int rc;                          /* FV_OK or the failure */
    struct fv_error err;             /* message naming the field, never a value */
    uint64_t ret_id;                 /* INSERT: new record ID; *_ID: the ID */
    struct fv_store_result *results; /* *_WHERE: fv_malloc'd, caller fv_frees */
    size_t n_results;
    bool more_records; /* *_WHERE: matches beyond limit remain */
};

/*
 * Apply writes w[0..n) through the tenant's group-commit queue (DESIGN.md
 * "Write path"): values are parsed and checked (model rules, required,
 * unique, choices, lookup targets exist) in the caller's thread, then one
 * leader runs each write in its own SAVEPOINT inside one transaction with
 * the other queued writes of the tenant, appends one change-log entry per
 * changed record, commits once (one fsync) and wakes the waiters. Returns
 * FV_OK when the batch was processed (each w[i].rc tells its outcome), or
 * an error when nothing was committed (FV_E_IO, FV_E_BUSY, FV_E_NOMEM,
 * FV_E_READ_ONLY): then every w[i].rc is that error too.
 * Per-write codes: FV_E_VALIDATION, FV_E_TOO_MANY_DIGITS,
 * FV_E_DECIMAL_FORMAT, FV_E_CONFLICT (unique), FV_E_NO_RECORD (*_ID),
 * FV_E_NO_MATCH and FV_E_TOO_MANY_MATCHES (*_WHERE), FV_E_NO_FIELD
 * (unknown key in data).
 * actor: who writes ("token:12", "cli"), recorded in Added/Modified_User and
 * the change log.
 * Details: a form that is not one of app's is FV_E_NO_FORM for that write;
 * *_ID writes with a non-NULL where also require the record to match it
 * (else FV_E_NO_RECORD), so report criteria apply; an update without any
 * field is FV_E_BODY; limit 0 on *_WHERE is FV_E_PARAM. CSV cells
 * (INSERT only): a NULL cell_fields[i] skips that column; a lookup cell that
 * is not the ID of an existing target record is resolved through the
 * target's display field (exactly one match, else FV_E_VALIDATION).
 * *_WHERE writes report per-record outcomes in results (w.rc stays FV_OK);
 * each record has its own nested SAVEPOINT.
 */
FV_MUST_CHECK int fv_store_write(struct fv_tenant *t, const struct fv_app *app,
                                 struct fv_store_write *w, size_t n, const char *actor);

struct fv_store_query {
    const struct fv_form *form;
    /* output columns: field link names or system fields ("ID" is always
     * included first); composite fields give their object */
    const char *const *columns;
    size_t n_columns;
    const struct fv_sql_where *where; /* may be NULL */
    const char *sort_field;           /* NULL = by ID */
    bool sort_desc;
    uint64_t id;        /* != 0: only this record */
    size_t offset;      /* v2 `from` - 1 */
    size_t limit;       /* page size, >= 1 */
    const char *cursor; /* record_cursor from a previous page, or NULL */
};

/*
 * Run a read. *ret_rows is a new JSON array of record objects formatted per
 * creator-api.md section 9 (ID as a string). When more rows follow,
 * ret_cursor (cap >= 128) receives an opaque cursor for the next page
 * (keyset: sort value + ID), else "". Reads never wait for writes.
 * Errors: FV_E_CURSOR (malformed cursor), FV_E_NO_FIELD (unknown column),
 * FV_E_IO, FV_E_NOMEM.
 * Details: columns NULL = every field of the form (columns non-NULL with
 * n_columns 0 = ID only); a cursor bound to another
 * form or sort order is FV_E_CURSOR; with a cursor, offset is ignored;
 * limit 0 or over 100000 is FV_E_PARAM; a form not of app is FV_E_NO_FORM.
 * System fields: "Added_Time"/"Modified_Time" in the app date format plus
 * " HH:mm:ss", "Added_User"/"Modified_User" as text.
 */
FV_MUST_CHECK int fv_store_query(struct fv_tenant *t, const struct fv_app *app,
                                 const struct fv_store_query *q, json_t **ret_rows,
                                 char *ret_cursor, size_t cursor_cap);

/* Number of records in a form (for empty-report detection and import). */
FV_MUST_CHECK int fv_store_count(struct fv_tenant *t, const struct fv_form *form,
                                 const struct fv_sql_where *where, int64_t *ret_n);

/* ---------------------------------------------------------- change log */

/*
 * Change-log entries with seq > after_seq, at most limit, as a new JSON array
 * of {"seq","time","actor","op","form","record_id","row"} ("op" is insert,
 * update, delete or schema; "row" the new row image or null).
 * Also "app" (link name). "time" is ms since the epoch; "record_id" a string
 * (null for schema entries); "row" maps stored column names ("ID",
 * "c_<field>", ...) to stored values; for schema entries it is the app's
 * canonical definition.
 */
FV_MUST_CHECK int fv_store_changelog_read(struct fv_tenant *t, int64_t after_seq, size_t limit,
                                          json_t **ret);

/*
 * Detail of the last storage-level failure on this thread (a page that
 * failed authentication, a missing key version), naming the file and page:
 * for the log only, never for clients (STYLE 16). "" if none since the last
 * fv_store_last_error_clear() on this thread.
 */
const char *fv_store_last_error(void);
void fv_store_last_error_clear(void);

/* ----------------------------------------------------------------- keys */

/*
 * Key management (DESIGN.md "Keys", docs/keys.md). These operate on the
 * SQLite engine's catalog directly (they are not in the engine table: a
 * second engine brings its own key store). Every change bumps the catalog's
 * key epoch, which a running server picks up within key_check_interval_ms
 * (fv_store_keys_refresh). Messages in reterr are for the operator: they
 * name keys by ID and versions, never key material.
 */
struct fv_store_key_version {
    uint32_t version;
    char kek_id[FV_CRYPTO_KEK_ID_MAX];
    char state[16]; /* "active" or "destroyed" */
    int64_t created_ms;
};

struct fv_store_key_status {
    int64_t tenant_id;
    char name[FV_MODEL_LINK_MAX + 1];
    char tenant_state[16];             /* "active" or "shredded" */
    char kek_kind[16];                 /* "node", "imported" or "pkcs11" */
    char kek_id[FV_CRYPTO_KEK_ID_MAX]; /* the tenant's own KEK, or "" */
    char kek_state[16];                /* "active" or "revoked" ("" for node) */
    size_t n_versions;
    struct fv_store_key_version versions[FV_CRYPTO_KEYRING_MAX_VERSIONS];
    /* rotation job; phase "" when none */
    char job_phase[16]; /* "fields", "pages", "destroy", "done" */
    uint32_t job_from, job_to;
    int64_t job_done, job_total;
    char job_error[160];
};

/* Key state of every tenant; *ret is fv_malloc'd (fv_free). FV_E_IO, FV_E_NOMEM. */
FV_MUST_CHECK int fv_store_keys_status(struct fv_store *s, struct fv_store_key_status **ret,
                                       size_t *ret_n);
/*
 * KEK rotation: re-wrap every root key wrapped by the store's KEK, every
 * imported tenant KEK and node.key under new_kek, without touching data.
 * Resumable: rows already under new_kek are skipped. *ret_n = keys re-wrapped.
 * On success the store uses new_kek from then on (borrowed: keep it alive
 * until fv_store_close). Run with the server stopped (it holds the old KEK). FV_E_KEY_UNAVAILABLE
 * (a KEK unreachable), FV_E_CORRUPT, FV_E_IO.
 */
FV_MUST_CHECK int fv_store_keys_rotate_kek(struct fv_store *s, struct fv_kek *new_kek,
                                           size_t *ret_n, struct fv_error *reterr);
/*
 * Tenant key rotation: add root key version N+1 (new writes use it at once)
 * and queue the re-encryption job (fields and change log, then every page,
 * then destroy the old versions). *ret_version = N+1. FV_E_CONFLICT (a
 * rotation is already running), FV_E_LIMIT (too many live versions),
 * FV_E_KEY_UNAVAILABLE, FV_E_NO_OWNER.
 */
FV_MUST_CHECK int fv_store_keys_rotate_tenant(struct fv_store *s, int64_t tenant_id,
                                              uint32_t *ret_version, struct fv_error *reterr);
/*
 * Run queued rotation jobs for up to budget_ms (at least one step).
 * *ret_pending = jobs still unfinished; *ret_progress (may be NULL) = false
 * when every unfinished job is leased by another live process (wait before
 * calling again). Progress and errors are stored in the job row
 * (fv_store_keys_status). A job takes a lease (60 s, renewed every step; a
 * lease whose owner process is gone is taken over at once) so that two
 * processes never run the same job. FV_E_* of the step that failed (it is
 * retried).
 */
FV_MUST_CHECK int fv_store_keys_jobs_run(struct fv_store *s, int64_t budget_ms, size_t *ret_pending,
                                         bool *ret_progress, struct fv_error *reterr);
/*
 * BYOK: a new RSA-3072 transport key for importing the tenant's KEK, valid
 * 24 hours, replacing any earlier one. *ret_pem: its public key (fv_free).
 */
FV_MUST_CHECK int fv_store_keys_import_params(struct fv_store *s, int64_t tenant_id, char **ret_pem,
                                              int64_t *ret_expires_ms, struct fv_error *reterr);
/*
 * BYOK: import the tenant's 32-byte KEK, RSA-OAEP-SHA256-encrypted to the
 * transport key. The first import re-wraps the tenant's root keys under it;
 * after a revocation only the same key (same key ID) restores the tenant.
 * *ret_kek_id names it. FV_E_NOT_FOUND (no transport key: run import-params),
 * FV_E_INVALID (expired transport key, undecryptable or not 32 bytes, another
 * key than the revoked one), FV_E_KEY_UNAVAILABLE.
 */
FV_MUST_CHECK int fv_store_keys_import(struct fv_store *s, int64_t tenant_id,
                                       const uint8_t *wrapped, size_t len, char *ret_kek_id,
                                       size_t id_cap, struct fv_error *reterr);
/*
 * BYOK on the tenant's own PKCS#11 token: re-wrap its root keys under the
 * AES key key_label on token_label (module; PIN read from pin_file, which
 * must be mode 0400/0600). FV_E_KEY_UNAVAILABLE (token or key not found).
 */
FV_MUST_CHECK int fv_store_keys_use_pkcs11(struct fv_store *s, int64_t tenant_id,
                                           const char *module, const char *token_label,
                                           const char *key_label, const char *pin_file,
                                           struct fv_error *reterr);
/*
 * Revoke the tenant's own KEK: an imported KEK's material is destroyed; a
 * PKCS#11 KEK is marked revoked. The tenant's data is unreadable (requests
 * get "key unavailable") until restored. FV_E_INVALID (tenant uses the node
 * KEK).
 */
FV_MUST_CHECK int fv_store_keys_revoke(struct fv_store *s, int64_t tenant_id,
                                       struct fv_error *reterr);
/* Restore a revoked PKCS#11 tenant KEK (imported keys are restored by import). */
FV_MUST_CHECK int fv_store_keys_restore(struct fv_store *s, int64_t tenant_id,
                                        struct fv_error *reterr);
/*
 * Crypto-shredding: destroy every wrapped root key of the tenant (all
 * versions), its own KEK, transport keys, jobs and tokens, mark the tenant
 * shredded, and truncate the catalog WAL (secure_delete is on), so its
 * files and every copy of them are unreadable. Irreversible.
 */
FV_MUST_CHECK int fv_store_tenant_shred(struct fv_store *s, int64_t tenant_id,
                                        struct fv_error *reterr);
/*
 * Server watcher: when the key epoch changed (or force), resync the keys of
 * every open tenant; check that HSM KEKs are reachable and revoke the
 * keyring of a tenant whose KEK is gone. Logs transitions.
 */
FV_MUST_CHECK int fv_store_keys_refresh(struct fv_store *s, bool force);
/* False while the last refresh found the node KEK unreachable (/readyz). */
bool fv_store_keys_kek_ok(struct fv_store *s);

/* --------------------------------------------------------------- engine */

/* Versioned engine table (STYLE 4). Version 1 = the functions above. */
#define FV_STORE_ENGINE_VERSION 1
struct fv_store_engine {
    int version;
    const char *name; /* "sqlite" */
    int (*open)(const struct fv_store_options *opt, struct fv_store **ret, struct fv_error *reterr);
    void (*close)(struct fv_store *s);
    /* One pointer per public function above, same contract. */
    int (*tenant_create)(struct fv_store *s, const char *name, const char *region,
                         struct fv_store_tenant_info *ret, struct fv_error *reterr);
    int (*tenant_list)(struct fv_store *s, struct fv_store_tenant_info **ret, size_t *ret_n);
    int (*tenant_find)(struct fv_store *s, const char *name, struct fv_store_tenant_info *ret);
    int (*tenant_acquire)(struct fv_store *s, int64_t tenant_id, struct fv_tenant **ret);
    void (*tenant_release)(struct fv_tenant *t);
    int (*token_insert)(struct fv_store *s, const struct fv_store_token *tok,
                        const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES], int64_t *ret_id);
    int (*token_lookup)(struct fv_store *s, const uint8_t hash[FV_STORE_TOKEN_HASH_BYTES],
                        struct fv_store_token *ret);
    int (*app_install)(struct fv_tenant *t, const char *json, size_t len, const char *actor,
                       struct fv_error *reterr);
    int (*app_get)(struct fv_tenant *t, const char *link, const struct fv_app **ret);
    int (*app_list)(struct fv_tenant *t, struct fv_store_app_entry **ret, size_t *ret_n);
    int (*write)(struct fv_tenant *t, const struct fv_app *app, struct fv_store_write *w, size_t n,
                 const char *actor);
    int (*query)(struct fv_tenant *t, const struct fv_app *app, const struct fv_store_query *q,
                 json_t **ret_rows, char *ret_cursor, size_t cursor_cap);
    int (*count)(struct fv_tenant *t, const struct fv_form *form, const struct fv_sql_where *where,
                 int64_t *ret_n);
    int (*changelog_read)(struct fv_tenant *t, int64_t after_seq, size_t limit, json_t **ret);
};
/* The engine used for a data dir ("sqlite" is the only one today). */
const struct fv_store_engine *fv_store_engine_sqlite(void);

#endif
