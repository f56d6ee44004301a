/*
 * store/keys_admin.c: operator key management on the catalog: status, KEK
 * rotation, tenant key rotation (queueing; keys_job.c runs it), BYOK
 * import / PKCS#11 / revoke / restore, and crypto-shredding. Each operation
 * is one catalog transaction that also bumps the key epoch (keys.c).
 */
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

#define IMPORT_TTL_MS (24 * 3600 * INT64_C(1000))

/* BEGIN IMMEDIATE on the catalog; unless kek_rotation, refuse when another
 * process rotated the KEK away from the one this process holds. */
static int cat_begin_ex(struct fv_store *s, bool kek_rotation)
{
    int rc = fv_store_cat_begin(s);
    if (rc == FV_OK && !kek_rotation) {
        rc = fv_store_keys_kek_guard(s);
        if (rc != FV_OK)
            rc = fv_store_cat_end(s, rc, false); /* rolls back, keeps rc */
    }
    return rc;
}

static int cat_begin(struct fv_store *s)
{
    return cat_begin_ex(s, false);
}

/* Commit (bumping the key epoch) or roll back. */
static int cat_end(struct fv_store *s, int rc)
{
    return fv_store_cat_end(s, rc, true);
}

/* Run one statement with up to 3 bound values (int64 / text / blob) in the open txn. */
struct bindv {
    char kind; /* 'i', 't', 'b', 'n' (null), 0 = end */
    int64_t i;
    const char *t;
    const void *b;
    size_t blen;
};

static int exec_bound(struct fv_store_conn *c, const char *sql, const struct bindv *v,
                      int *ret_changes)
{
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(c, sql, strlen(sql), &st);
    if (rc != FV_OK)
        return rc;
    for (int k = 0; v && v[k].kind; k++) {
        switch (v[k].kind) {
        case 'i':
            (void)sqlite3_bind_int64(st, k + 1, v[k].i);
            break;
        case 't':
            (void)sqlite3_bind_text(st, k + 1, v[k].t, -1, SQLITE_TRANSIENT);
            break;
        case 'b':
            (void)sqlite3_bind_blob(st, k + 1, v[k].b, (int)v[k].blen, SQLITE_TRANSIENT);
            break;
        default:
            (void)sqlite3_bind_null(st, k + 1);
        }
    }
    int src = sqlite3_step(st);
    rc = src == SQLITE_DONE || src == SQLITE_ROW ? FV_OK : fv_store_sqlite_err(src);
    if (ret_changes)
        *ret_changes = sqlite3_changes(c->db);
    fv_store_stmt_done(st);
    return rc;
}

static int tenant_state(struct fv_store_conn *c, int64_t tenant_id, char *out, size_t cap)
{
    static const char sql[] = "SELECT state FROM tenants WHERE id = ?1";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, tenant_id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        (void)fv_strlcpy(out, t ? t : "", cap);
    } else {
        rc = src == SQLITE_DONE ? FV_E_NO_OWNER : fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    return rc;
}

static int require_active(struct fv_store *s, int64_t tenant_id, struct fv_error *reterr)
{
    char state[16];
    int rc = tenant_state(s->cat_writer, tenant_id, state, sizeof(state));
    if (rc == FV_E_NO_OWNER)
        return fv_error_set(reterr, rc, SIZE_MAX, "no tenant with ID %lld", (long long)tenant_id);
    if (rc == FV_OK && strcmp(state, "active") != 0)
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                            "tenant %lld is shredded: its keys are destroyed",
                            (long long)tenant_id);
    return rc;
}

/* ------------------------------------------------------------- status */

static int status_versions(struct fv_store_conn *c, struct fv_store_key_status *k)
{
    static const char sql[] = "SELECT version, kek_id, state, created FROM tenant_keys WHERE "
                              "tenant_id = ?1 ORDER BY version DESC";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, k->tenant_id);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && k->n_versions < FV_ARRAY_LEN(k->versions)) {
        struct fv_store_key_version *v = &k->versions[k->n_versions++];
        v->version = (uint32_t)sqlite3_column_int64(st, 0);
        const char *t = (const char *)sqlite3_column_text(st, 1);
        (void)fv_strlcpy(v->kek_id, t ? t : "", sizeof(v->kek_id));
        t = (const char *)sqlite3_column_text(st, 2);
        (void)fv_strlcpy(v->state, t ? t : "", sizeof(v->state));
        v->created_ms = sqlite3_column_int64(st, 3);
    }
    if (src != SQLITE_DONE && src != SQLITE_ROW)
        rc = fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    return rc;
}

static int status_kek_job(struct fv_store_conn *c, struct fv_store_key_status *k)
{
    static const char kek_sql[] = "SELECT kind, kek_id, state FROM tenant_kek WHERE tenant_id = ?1";
    static const char job_sql[] = "SELECT phase, from_version, to_version, done, total, "
                                  "coalesce(error, '') FROM key_jobs WHERE tenant_id = ?1";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(c, kek_sql, sizeof(kek_sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, k->tenant_id);
    int src = sqlite3_step(st);
    (void)fv_strlcpy(k->kek_kind, "node", sizeof(k->kek_kind));
    if (src == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        (void)fv_strlcpy(k->kek_kind, t ? t : "", sizeof(k->kek_kind));
        t = (const char *)sqlite3_column_text(st, 1);
        (void)fv_strlcpy(k->kek_id, t ? t : "", sizeof(k->kek_id));
        t = (const char *)sqlite3_column_text(st, 2);
        (void)fv_strlcpy(k->kek_state, t ? t : "", sizeof(k->kek_state));
    } else if (src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_conn_prepare(c, job_sql, sizeof(job_sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, k->tenant_id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        (void)fv_strlcpy(k->job_phase, t ? t : "", sizeof(k->job_phase));
        k->job_from = (uint32_t)sqlite3_column_int64(st, 1);
        k->job_to = (uint32_t)sqlite3_column_int64(st, 2);
        k->job_done = sqlite3_column_int64(st, 3);
        k->job_total = sqlite3_column_int64(st, 4);
        t = (const char *)sqlite3_column_text(st, 5);
        (void)fv_strlcpy(k->job_error, t ? t : "", sizeof(k->job_error));
    } else if (src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    return rc;
}

int fv_store_keys_status(struct fv_store *s, struct fv_store_key_status **ret, size_t *ret_n)
{
    static const char sql[] = "SELECT id, name, state FROM tenants ORDER BY id";
    struct fv_store_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    struct fv_store_key_status *arr = NULL;
    size_t n = 0, cap = 0;
    int rc = fv_store_pool_get(&s->cat_readers, &c);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    int src = SQLITE_DONE;
    while (rc == FV_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            struct fv_store_key_status *na = fv_realloc(arr, ncap * sizeof(*arr));
            if (!na) {
                rc = FV_E_NOMEM;
                break;
            }
            arr = na;
            cap = ncap;
        }
        struct fv_store_key_status *k = &arr[n++];
        memset(k, 0, sizeof(*k));
        k->tenant_id = sqlite3_column_int64(st, 0);
        const char *t = (const char *)sqlite3_column_text(st, 1);
        (void)fv_strlcpy(k->name, t ? t : "", sizeof(k->name));
        t = (const char *)sqlite3_column_text(st, 2);
        (void)fv_strlcpy(k->tenant_state, t ? t : "", sizeof(k->tenant_state));
    }
    if (rc == FV_OK && src != SQLITE_DONE)
        rc = fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    for (size_t i = 0; rc == FV_OK && i < n; i++) {
        rc = status_versions(c, &arr[i]);
        if (rc == FV_OK)
            rc = status_kek_job(c, &arr[i]);
    }
    fv_store_pool_put(&s->cat_readers, c);
    if (rc == FV_OK && !arr) {
        arr = fv_calloc(1, sizeof(*arr));
        if (!arr)
            rc = FV_E_NOMEM;
    }
    if (rc != FV_OK) {
        fv_free(arr);
        return rc;
    }
    *ret = arr;
    *ret_n = n;
    return FV_OK;
}

/* -------------------------------------------------------- KEK rotation */

static int rewrap_blob(uint8_t *out, size_t *ret_len, const uint8_t *blob, size_t blen,
                       const uint8_t *ad, size_t adlen, struct fv_kek *from, struct fv_kek *to)
{
    struct fv_secret *k = NULL;
    int rc = fv_crypto_kek_unwrap(&k, blob, blen, ad, adlen, from);
    if (rc == FV_OK)
        rc = fv_crypto_kek_wrap(out, ret_len, k, ad, adlen, to);
    fv_crypto_secret_free(k);
    return rc;
}

int fv_store_keys_rotate_kek(struct fv_store *s, struct fv_kek *new_kek, size_t *ret_n,
                             struct fv_error *reterr)
{
    static const char roots_sql[] = "SELECT tenant_id, version, wrapped FROM tenant_keys WHERE "
                                    "state = 'active' AND kek_id = ?1";
    static const char kek_sql[] = "SELECT tenant_id, material FROM tenant_kek WHERE kind = "
                                  "'imported' AND material IS NOT NULL";
    const char *old_id = fv_crypto_kek_id(s->kek);
    const char *new_id = fv_crypto_kek_id(new_kek);
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    int rc;

    if (strcmp(old_id, new_id) == 0)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "the new KEK '%s' is the KEK in use: nothing to rotate", new_id);
    rc = fv_crypto_kek_check(new_kek);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "the new KEK '%s' is unavailable", new_id);
    rc = cat_begin_ex(s, true);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot lock the catalog");

    /* Collect first, update after: one statement at a time per connection. */
    struct item {
        int64_t tenant;
        uint32_t version;
        uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
        size_t blen;
    } *items = NULL;
    size_t n_items = 0, cap = 0;
    for (int pass = 0; pass < 2 && rc == FV_OK; pass++) {
        const char *sql = pass == 0 ? roots_sql : kek_sql;
        rc = fv_store_conn_prepare(s->cat_writer, sql, strlen(sql), &st);
        if (rc != FV_OK)
            break;
        if (pass == 0)
            (void)sqlite3_bind_text(st, 1, old_id, -1, SQLITE_TRANSIENT);
        int src;
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            if (n_items == cap) {
                size_t ncap = cap ? 2 * cap : 16;
                struct item *ni = fv_realloc(items, ncap * sizeof(*items));
                if (!ni) {
                    rc = FV_E_NOMEM;
                    break;
                }
                items = ni;
                cap = ncap;
            }
            struct item *it = &items[n_items];
            it->tenant = sqlite3_column_int64(st, 0);
            it->version = pass == 0 ? (uint32_t)sqlite3_column_int64(st, 1) : 0;
            int col = pass == 0 ? 2 : 1;
            int bl = sqlite3_column_bytes(st, col);
            const void *b = sqlite3_column_blob(st, col);
            if (!b || bl <= 0 || (size_t)bl > sizeof(it->blob)) {
                rc = fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX,
                                  "tenant %lld: wrapped key is missing or oversized",
                                  (long long)it->tenant);
                break;
            }
            memcpy(it->blob, b, (size_t)bl);
            it->blen = (size_t)bl;
            n_items++;
        }
        if (rc == FV_OK && src != SQLITE_DONE)
            rc = fv_store_sqlite_err(src);
        fv_store_stmt_done(st);
        st = NULL;
        /* items from pass 1 have version 0: imported KEK material */
    }
    for (size_t i = 0; rc == FV_OK && i < n_items; i++) {
        struct item *it = &items[i];
        uint8_t ad[64], out[FV_CRYPTO_WRAPPED_MAX];
        size_t adlen =
            it->version ? fv_store_keys_ad_root(ad, sizeof(ad), it->tenant, it->version)
                        : fv_store_keys_ad_tenant(ad, sizeof(ad), "fv-tenant-kek-v1", it->tenant);
        size_t olen = 0;
        if (!it->version) {
            /* Imported KEK material is not labelled with its wrapping KEK:
             * material a previous, interrupted run already re-wrapped opens
             * under the new KEK and is left alone. */
            struct fv_secret *probe = NULL;
            int prc = fv_crypto_kek_unwrap(&probe, it->blob, it->blen, ad, adlen, new_kek);
            fv_crypto_secret_free(probe);
            if (prc == FV_OK)
                continue;
        }
        rc = rewrap_blob(out, &olen, it->blob, it->blen, ad, adlen, s->kek, new_kek);
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc, SIZE_MAX,
                              "tenant %lld: cannot re-wrap %s under the new KEK (%s)",
                              (long long)it->tenant,
                              it->version ? "a root key" : "the imported KEK", fv_strerror(rc));
            break;
        }
        if (it->version) {
            struct bindv b[] = {{'b', 0, NULL, out, olen},
                                {'t', 0, new_id, NULL, 0},
                                {'i', it->tenant, NULL, NULL, 0},
                                {'i', it->version, NULL, NULL, 0},
                                {0, 0, NULL, NULL, 0}};
            rc = exec_bound(s->cat_writer,
                            "UPDATE tenant_keys SET wrapped = ?1, kek_id = ?2 WHERE tenant_id = "
                            "?3 AND version = ?4",
                            b, NULL);
        } else {
            struct bindv b[] = {
                {'b', 0, NULL, out, olen}, {'i', it->tenant, NULL, NULL, 0}, {0, 0, NULL, NULL, 0}};
            rc = exec_bound(s->cat_writer,
                            "UPDATE tenant_kek SET material = ?1 WHERE tenant_id = ?2", b, NULL);
        }
        n++;
    }
    if (items)
        fv_wipe(items, cap * sizeof(*items));
    fv_free(items);
    if (rc == FV_OK) {
        /* Processes still holding the old KEK now refuse to wrap keys. */
        struct bindv b[] = {{'t', 0, new_id, NULL, 0}, {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer,
                        "INSERT INTO node_state(key, value) VALUES ('kek_id', ?1) ON "
                        "CONFLICT(key) DO UPDATE SET value = excluded.value",
                        b, NULL);
    }
    rc = cat_end(s, rc);
    if (rc != FV_OK) {
        if (reterr && reterr->code == FV_OK)
            (void)fv_error_set(reterr, rc, SIZE_MAX, "KEK rotation failed; nothing changed");
        return rc;
    }
    /* The node key last: a crash before this leaves node.key under the old
     * KEK, and a rerun finds no root key left to re-wrap. */
    rc = fv_store_keys_node_rewrap(s, new_kek);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX,
                            "tenant keys re-wrapped, but node.key could not be rewritten under the "
                            "new KEK; run the rotation again");
    fv_store_keys_catalog_truncate(s);
    /* From now on this handle wraps under the new KEK (borrowed like the
     * options' one: the caller keeps new_kek alive until fv_store_close). */
    s->kek = new_kek;
    *ret_n = n + 1;
    return FV_OK;
}

/* ------------------------------------------------- tenant key rotation */

int fv_store_keys_rotate_tenant(struct fv_store *s, int64_t tenant_id, uint32_t *ret_version,
                                struct fv_error *reterr)
{
    struct fv_secret *root = NULL;
    struct fv_kek *kek = NULL, *owned = NULL;
    uint32_t next = 0;
    int64_t now = fv_time_now_ms();
    int rc = cat_begin(s);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot lock the catalog");
    rc = require_active(s, tenant_id, reterr);
    if (rc != FV_OK)
        goto out;
    {
        static const char sql[] = "SELECT phase FROM key_jobs WHERE tenant_id = ?1 AND phase != "
                                  "'done'";
        sqlite3_stmt *st = NULL;
        rc = fv_store_conn_prepare(s->cat_writer, sql, sizeof(sql) - 1, &st);
        if (rc != FV_OK)
            goto out;
        (void)sqlite3_bind_int64(st, 1, tenant_id);
        int src = sqlite3_step(st);
        fv_store_stmt_done(st);
        if (src == SQLITE_ROW) {
            rc = fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX,
                              "a key rotation of tenant %lld is still running (see 'formvault "
                              "keys status')",
                              (long long)tenant_id);
            goto out;
        }
    }
    {
        static const char sql[] = "SELECT coalesce(max(version), 0), count(*) FROM tenant_keys "
                                  "WHERE tenant_id = ?1";
        sqlite3_stmt *st = NULL;
        rc = fv_store_conn_prepare(s->cat_writer, sql, sizeof(sql) - 1, &st);
        if (rc != FV_OK)
            goto out;
        (void)sqlite3_bind_int64(st, 1, tenant_id);
        if (sqlite3_step(st) == SQLITE_ROW)
            next = (uint32_t)sqlite3_column_int64(st, 0) + 1;
        fv_store_stmt_done(st);
        if (next < 2) {
            rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX, "tenant %lld has no root key",
                              (long long)tenant_id);
            goto out;
        }
    }
    rc = fv_store_keys_tenant_kek(s, s->cat_writer, tenant_id, &kek, &owned, reterr);
    if (rc != FV_OK)
        goto out;
    rc = fv_crypto_secret_random(&root, FV_CRYPTO_KEY_BYTES);
    if (rc != FV_OK)
        goto out;
    {
        uint8_t ad[64], blob[FV_CRYPTO_WRAPPED_MAX];
        size_t adlen = fv_store_keys_ad_root(ad, sizeof(ad), tenant_id, next), blen = 0;
        rc = fv_crypto_kek_wrap(blob, &blen, root, ad, adlen, kek);
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot wrap the new root key under KEK '%s'",
                              fv_crypto_kek_id(kek));
            goto out;
        }
        struct bindv b[] = {{'i', tenant_id, NULL, NULL, 0},
                            {'i', next, NULL, NULL, 0},
                            {'t', 0, fv_crypto_kek_id(kek), NULL, 0},
                            {'b', 0, NULL, blob, blen},
                            {'i', now, NULL, NULL, 0},
                            {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer,
                        "INSERT INTO tenant_keys(tenant_id, version, kek_id, wrapped, state, "
                        "created) VALUES (?1, ?2, ?3, ?4, 'active', ?5)",
                        b, NULL);
    }
    if (rc == FV_OK) {
        struct bindv b[] = {{'i', tenant_id, NULL, NULL, 0},
                            {'i', next - 1, NULL, NULL, 0},
                            {'i', next, NULL, NULL, 0},
                            {'i', now, NULL, NULL, 0},
                            {0, 0, NULL, NULL, 0}};
        rc =
            exec_bound(s->cat_writer,
                       "INSERT OR REPLACE INTO key_jobs(tenant_id, from_version, to_version, "
                       "phase, cursor, done, total, started, updated, error, lease_owner, "
                       "lease_until) VALUES (?1, ?2, ?3, 'fields', NULL, 0, 0, ?4, ?4, NULL, 0, 0)",
                       b, NULL);
    }
out:
    fv_crypto_secret_free(root);
    fv_crypto_kek_free(owned);
    rc = cat_end(s, rc);
    if (rc == FV_OK)
        *ret_version = next;
    return rc;
}

/* ----------------------------------------------------------------- BYOK */

int fv_store_keys_import_params(struct fv_store *s, int64_t tenant_id, char **ret_pem,
                                int64_t *ret_expires_ms, struct fv_error *reterr)
{
    struct fv_secret *priv = NULL;
    char *pem = NULL;
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX * 16];
    int64_t expires = fv_time_now_ms() + IMPORT_TTL_MS;
    int rc = fv_crypto_transport_new(&priv, &pem);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot generate a transport key");
    /* The private key (PKCS#8, ~1.8 KiB) is sealed under the node key's
     * keyring, not the KEK: KEK wraps are sized for 32-byte keys. */
    struct fv_aead *a = NULL;
    size_t plen = fv_crypto_secret_len(priv);
    uint8_t ad[64];
    size_t adlen = fv_store_keys_ad_tenant(ad, sizeof(ad), "fv-transport-v1", tenant_id);
    if (plen + FV_CRYPTO_AEAD_OVERHEAD > sizeof(blob)) {
        rc = FV_E_LIMIT;
        goto out;
    }
    rc = fv_crypto_keyring_aead(&a, s->node_keys, 1, FV_KEY_STORAGE, ad, adlen);
    if (rc == FV_OK)
        rc = fv_crypto_aead_seal(blob, fv_crypto_secret_bytes(priv), plen, ad, adlen, a);
    fv_crypto_aead_free(a);
    if (rc != FV_OK)
        goto out;
    rc = cat_begin(s);
    if (rc != FV_OK)
        goto out;
    rc = require_active(s, tenant_id, reterr);
    if (rc == FV_OK) {
        /* Expired transport keys of any tenant are of no use: drop them. */
        struct bindv b[] = {{'i', fv_time_now_ms(), NULL, NULL, 0}, {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer, "DELETE FROM key_imports WHERE expires < ?1", b, NULL);
    }
    if (rc == FV_OK) {
        struct bindv b[] = {{'i', tenant_id, NULL, NULL, 0},
                            {'b', 0, NULL, blob, plen + FV_CRYPTO_AEAD_OVERHEAD},
                            {'t', 0, pem, NULL, 0},
                            {'i', expires, NULL, NULL, 0},
                            {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer,
                        "INSERT OR REPLACE INTO key_imports(tenant_id, private_sealed, "
                        "public_pem, expires) VALUES (?1, ?2, ?3, ?4)",
                        b, NULL);
    }
    rc = cat_end(s, rc);
    if (rc == FV_OK) {
        *ret_pem = pem;
        pem = NULL;
        *ret_expires_ms = expires;
    }
out:
    fv_wipe(blob, sizeof(blob));
    fv_crypto_secret_free(priv);
    fv_free(pem);
    if (rc != FV_OK && reterr && reterr->code == FV_OK)
        (void)fv_error_set(reterr, rc, SIZE_MAX, "cannot store the transport key");
    return rc;
}

/* Load and unseal the tenant's transport private key (caller's txn). */
static int transport_load(struct fv_store *s, int64_t tenant_id, struct fv_secret **ret,
                          struct fv_error *reterr)
{
    static const char sql[] =
        "SELECT private_sealed, expires FROM key_imports WHERE tenant_id = ?1";
    sqlite3_stmt *st = NULL;
    uint8_t *plain = NULL;
    struct fv_aead *a = NULL;
    int rc = fv_store_conn_prepare(s->cat_writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, tenant_id);
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = src == SQLITE_DONE
                 ? fv_error_set(reterr, FV_E_NOT_FOUND, SIZE_MAX,
                                "no transport key for this tenant: run 'formvault keys "
                                "import-params' first")
                 : fv_store_sqlite_err(src);
        goto out;
    }
    if (sqlite3_column_int64(st, 1) < fv_time_now_ms()) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "the transport key expired: run 'formvault keys import-params' again "
                          "and wrap the key for the new one");
        goto out;
    }
    const uint8_t *b = sqlite3_column_blob(st, 0);
    int bl = sqlite3_column_bytes(st, 0);
    if (!b || bl <= FV_CRYPTO_AEAD_OVERHEAD) {
        rc = FV_E_CORRUPT;
        goto out;
    }
    size_t plen = (size_t)bl - FV_CRYPTO_AEAD_OVERHEAD;
    plain = fv_malloc(plen);
    if (!plain) {
        rc = FV_E_NOMEM;
        goto out;
    }
    uint8_t ad[64];
    size_t adlen = fv_store_keys_ad_tenant(ad, sizeof(ad), "fv-transport-v1", tenant_id);
    rc = fv_crypto_keyring_aead(&a, s->node_keys, 1, FV_KEY_STORAGE, ad, adlen);
    if (rc == FV_OK)
        rc = fv_crypto_aead_open(plain, b, (size_t)bl, ad, adlen, a);
    if (rc == FV_OK)
        rc = fv_crypto_secret_copy(ret, plain, plen);
    fv_wipe(plain, plen);
out:
    fv_crypto_aead_free(a);
    fv_free(plain);
    fv_store_stmt_done(st);
    return rc;
}

/*
 * Re-wrap every active root key of the tenant from `from` to `to` (caller's
 * txn). Rows already under `to` are skipped.
 */
static int rewrap_roots(struct fv_store *s, int64_t tenant_id, struct fv_kek *from,
                        struct fv_kek *to, struct fv_error *reterr)
{
    static const char sql[] = "SELECT version, kek_id, wrapped FROM tenant_keys WHERE "
                              "tenant_id = ?1 AND state = 'active'";
    struct row {
        uint32_t v;
        uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
        size_t blen;
    } rows[FV_CRYPTO_KEYRING_MAX_VERSIONS];
    size_t n = 0;
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(s->cat_writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, tenant_id);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && n < FV_ARRAY_LEN(rows)) {
        const char *kid = (const char *)sqlite3_column_text(st, 1);
        if (kid && strcmp(kid, fv_crypto_kek_id(to)) == 0)
            continue;
        const void *b = sqlite3_column_blob(st, 2);
        int bl = sqlite3_column_bytes(st, 2);
        if (!b || bl <= 0 || (size_t)bl > sizeof(rows[n].blob))
            continue;
        rows[n].v = (uint32_t)sqlite3_column_int64(st, 0);
        memcpy(rows[n].blob, b, (size_t)bl);
        rows[n].blen = (size_t)bl;
        n++;
    }
    fv_store_stmt_done(st);
    for (size_t i = 0; rc == FV_OK && i < n; i++) {
        uint8_t ad[64], out[FV_CRYPTO_WRAPPED_MAX];
        size_t adlen = fv_store_keys_ad_root(ad, sizeof(ad), tenant_id, rows[i].v), olen = 0;
        rc = rewrap_blob(out, &olen, rows[i].blob, rows[i].blen, ad, adlen, from, to);
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc, SIZE_MAX,
                              "cannot re-wrap root key version %u from KEK '%s' to '%s' (%s)",
                              rows[i].v, fv_crypto_kek_id(from), fv_crypto_kek_id(to),
                              fv_strerror(rc));
            break;
        }
        struct bindv b[] = {{'b', 0, NULL, out, olen},
                            {'t', 0, fv_crypto_kek_id(to), NULL, 0},
                            {'i', tenant_id, NULL, NULL, 0},
                            {'i', rows[i].v, NULL, NULL, 0},
                            {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer,
                        "UPDATE tenant_keys SET wrapped = ?1, kek_id = ?2 WHERE tenant_id = ?3 "
                        "AND version = ?4",
                        b, NULL);
    }
    fv_wipe(rows, sizeof(rows));
    return rc;
}

int fv_store_keys_import(struct fv_store *s, int64_t tenant_id, const uint8_t *wrapped, size_t len,
                         char *ret_kek_id, size_t id_cap, struct fv_error *reterr)
{
    struct fv_secret *priv = NULL, *kek_key = NULL;
    struct fv_kek *imported = NULL, *cur = NULL, *owned = NULL;
    char kek_id[FV_CRYPTO_KEK_ID_MAX];
    int rc = cat_begin(s);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot lock the catalog");
    rc = require_active(s, tenant_id, reterr);
    if (rc == FV_OK)
        rc = transport_load(s, tenant_id, &priv, reterr);
    if (rc != FV_OK)
        goto out;
    rc = fv_crypto_transport_unwrap(&kek_key, wrapped, len, priv);
    if (rc != FV_OK) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "the wrapped key does not decrypt under the transport key, or is not "
                          "32 bytes (use RSA-OAEP with SHA-256 and MGF1-SHA-256)");
        goto out;
    }
    rc = fv_store_keys_imported_id(kek_key, kek_id, sizeof(kek_id));
    if (rc == FV_OK)
        rc = fv_crypto_kek_secret_new(&imported, kek_id, kek_key);
    if (rc != FV_OK)
        goto out;

    struct fv_store_key_status k;
    memset(&k, 0, sizeof(k));
    k.tenant_id = tenant_id;
    rc = status_kek_job(s->cat_writer, &k);
    if (rc != FV_OK)
        goto out;
    if (strcmp(k.kek_kind, "node") != 0 && strcmp(k.kek_id, kek_id) != 0 &&
        strcmp(k.kek_state, "revoked") == 0) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "this key ('%s') is not the revoked tenant KEK '%s': only the same key "
                          "restores the tenant's data",
                          kek_id, k.kek_id);
        goto out;
    }
    if (strcmp(k.kek_kind, "node") == 0 || strcmp(k.kek_state, "active") == 0) {
        /* First import, or a switch from another active KEK: re-wrap roots. */
        rc = fv_store_keys_tenant_kek(s, s->cat_writer, tenant_id, &cur, &owned, reterr);
        if (rc == FV_OK)
            rc = rewrap_roots(s, tenant_id, cur, imported, reterr);
        if (rc != FV_OK)
            goto out;
    }
    {
        uint8_t ad[64], blob[FV_CRYPTO_WRAPPED_MAX];
        size_t adlen = fv_store_keys_ad_tenant(ad, sizeof(ad), "fv-tenant-kek-v1", tenant_id),
               blen = 0;
        rc = fv_crypto_kek_wrap(blob, &blen, kek_key, ad, adlen, s->kek);
        if (rc != FV_OK)
            goto out;
        struct bindv b[] = {{'i', tenant_id, NULL, NULL, 0},
                            {'t', 0, kek_id, NULL, 0},
                            {'b', 0, NULL, blob, blen},
                            {'i', fv_time_now_ms(), NULL, NULL, 0},
                            {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer,
                        "INSERT OR REPLACE INTO tenant_kek(tenant_id, kind, kek_id, material, "
                        "state, updated) VALUES (?1, 'imported', ?2, ?3, 'active', ?4)",
                        b, NULL);
    }
    if (rc == FV_OK) {
        struct bindv b[] = {{'i', tenant_id, NULL, NULL, 0}, {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer, "DELETE FROM key_imports WHERE tenant_id = ?1", b, NULL);
    }
out:
    fv_crypto_secret_free(priv);
    fv_crypto_secret_free(kek_key);
    fv_crypto_kek_free(imported);
    fv_crypto_kek_free(owned);
    rc = cat_end(s, rc);
    if (rc == FV_OK)
        fv_store_keys_catalog_truncate(s); /* the used transport key leaves the WAL */
    if (rc == FV_OK && ret_kek_id)
        (void)fv_strlcpy(ret_kek_id, kek_id, id_cap);
    return rc;
}

int fv_store_keys_use_pkcs11(struct fv_store *s, int64_t tenant_id, const char *module,
                             const char *token_label, const char *key_label, const char *pin_file,
                             struct fv_error *reterr)
{
    struct fv_kek *hsm = NULL, *cur = NULL, *owned = NULL;
    char pin[256];
    int rc = fv_file_read_private_line(pin_file, pin, sizeof(pin), reterr);
    if (rc == FV_OK)
        rc = fv_crypto_kek_pkcs11_open(&hsm, module, token_label, key_label, pin, reterr);
    fv_wipe(pin, sizeof(pin));
    if (rc != FV_OK)
        return rc;
    rc = cat_begin(s);
    if (rc != FV_OK) {
        fv_crypto_kek_free(hsm);
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot lock the catalog");
    }
    rc = require_active(s, tenant_id, reterr);
    if (rc == FV_OK)
        rc = fv_store_keys_tenant_kek(s, s->cat_writer, tenant_id, &cur, &owned, reterr);
    if (rc == FV_OK)
        rc = rewrap_roots(s, tenant_id, cur, hsm, reterr);
    if (rc == FV_OK) {
        struct bindv b[] = {{'i', tenant_id, NULL, NULL, 0},
                            {'t', 0, fv_crypto_kek_id(hsm), NULL, 0},
                            {'t', 0, module, NULL, 0},
                            {'t', 0, token_label, NULL, 0},
                            {'t', 0, key_label, NULL, 0},
                            {'t', 0, pin_file, NULL, 0},
                            {'i', fv_time_now_ms(), NULL, NULL, 0},
                            {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer,
                        "INSERT OR REPLACE INTO tenant_kek(tenant_id, kind, kek_id, material, "
                        "module, token, key_label, pin_file, state, updated) VALUES (?1, "
                        "'pkcs11', ?2, NULL, ?3, ?4, ?5, ?6, 'active', ?7)",
                        b, NULL);
    }
    fv_crypto_kek_free(owned);
    fv_crypto_kek_free(hsm);
    return cat_end(s, rc);
}

static int set_tenant_kek_state(struct fv_store *s, int64_t tenant_id, bool revoke,
                                struct fv_error *reterr)
{
    struct fv_store_key_status k;
    int rc = cat_begin(s);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot lock the catalog");
    rc = require_active(s, tenant_id, reterr);
    memset(&k, 0, sizeof(k));
    k.tenant_id = tenant_id;
    if (rc == FV_OK)
        rc = status_kek_job(s->cat_writer, &k);
    if (rc == FV_OK && strcmp(k.kek_kind, "node") == 0)
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "the tenant uses the node KEK: only a tenant's own KEK (BYOK) can be "
                          "revoked; 'formvault tenant shred' destroys a tenant's keys");
    if (rc == FV_OK && !revoke && strcmp(k.kek_kind, "imported") == 0)
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "an imported KEK is restored by importing it again ('formvault keys "
                          "import-params', then 'formvault keys import')");
    if (rc == FV_OK) {
        struct bindv b[] = {{'i', tenant_id, NULL, NULL, 0},
                            {'i', fv_time_now_ms(), NULL, NULL, 0},
                            {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer,
                        revoke ? "UPDATE tenant_kek SET state = 'revoked', material = NULL, "
                                 "updated = ?2 WHERE tenant_id = ?1"
                               : "UPDATE tenant_kek SET state = 'active', updated = ?2 WHERE "
                                 "tenant_id = ?1",
                        b, NULL);
    }
    rc = cat_end(s, rc);
    if (rc == FV_OK && revoke)
        fv_store_keys_catalog_truncate(s);
    return rc;
}

int fv_store_keys_revoke(struct fv_store *s, int64_t tenant_id, struct fv_error *reterr)
{
    return set_tenant_kek_state(s, tenant_id, true, reterr);
}

int fv_store_keys_restore(struct fv_store *s, int64_t tenant_id, struct fv_error *reterr)
{
    return set_tenant_kek_state(s, tenant_id, false, reterr);
}

/* ------------------------------------------------------------ shredding */

int fv_store_tenant_shred(struct fv_store *s, int64_t tenant_id, struct fv_error *reterr)
{
    static const char *const sqls[] = {
        "DELETE FROM tenant_keys WHERE tenant_id = ?1",
        "DELETE FROM tenant_kek WHERE tenant_id = ?1",
        "DELETE FROM key_jobs WHERE tenant_id = ?1",
        "DELETE FROM key_imports WHERE tenant_id = ?1",
        "DELETE FROM tokens WHERE tenant_id = ?1",
        "UPDATE tenants SET state = 'shredded' WHERE id = ?1",
    };
    char state[16];
    int rc = cat_begin(s);
    if (rc != FV_OK)
        return fv_error_set(reterr, rc, SIZE_MAX, "cannot lock the catalog");
    rc = tenant_state(s->cat_writer, tenant_id, state, sizeof(state));
    if (rc == FV_E_NO_OWNER)
        rc = fv_error_set(reterr, rc, SIZE_MAX, "no tenant with ID %lld", (long long)tenant_id);
    else if (rc == FV_OK && strcmp(state, "shredded") == 0)
        rc = fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX, "tenant %lld is already shredded",
                          (long long)tenant_id);
    for (size_t i = 0; rc == FV_OK && i < FV_ARRAY_LEN(sqls); i++) {
        struct bindv b[] = {{'i', tenant_id, NULL, NULL, 0}, {0, 0, NULL, NULL, 0}};
        rc = exec_bound(s->cat_writer, sqls[i], b, NULL);
    }
    rc = cat_end(s, rc);
    if (rc != FV_OK)
        return rc;
    /* secure_delete overwrote the rows' bytes in the pages; the truncation
     * drops the WAL frames that still held them. */
    fv_store_keys_catalog_truncate(s);
    return FV_OK;
}
