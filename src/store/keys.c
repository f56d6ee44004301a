/*
 * store/keys.c: the key hierarchy of DESIGN.md "Keys" as stored by the
 * SQLite engine.
 *
 *   KEK (s->kek, or a tenant's own: imported or PKCS#11)
 *    +- wraps: node key           data_dir/node.key  (encrypts catalog.db pages)
 *    +- wraps: tenant root keys   catalog tenant_keys, one row per version
 *                                 (storage, field, blind-index, file and audit
 *                                 keys are derived with HKDF: crypto/keyring.c)
 *
 * Associated data binds every wrapped blob to its place, so a blob copied to
 * another tenant or version does not unwrap:
 *   node key          "fv-node-key-v1"
 *   tenant root key   "fv-tenant-root-v1" || tenant id (8 BE) || version (4 BE)
 *   imported KEK      "fv-tenant-kek-v1" || tenant id (8 BE)
 *   transport key     "fv-transport-v1" || tenant id (8 BE)
 *
 * Every change of key state bumps node_state 'keys_epoch' in the same
 * transaction; a running server re-reads key state when it changes
 * (fv_store_keys_refresh), which is how CLI revocations, rotations and
 * shredding reach it. Rows of destroyed keys are overwritten (secure_delete)
 * and the catalog WAL is truncated afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "store/store_int.h"

#define NODE_KEY_FILE "node.key"
#define NODE_KEY_AD "fv-node-key-v1"

/* ------------------------------------------------------------- helpers */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

size_t fv_store_keys_ad_tenant(uint8_t *ad, size_t cap, const char *label, int64_t tenant_id)
{
    size_t n = strlen(label);
    FV_ASSERT(n + 8 <= cap);
    memcpy(ad, label, n);
    put_be64(ad + n, (uint64_t)tenant_id);
    return n + 8;
}

size_t fv_store_keys_ad_root(uint8_t *ad, size_t cap, int64_t tenant_id, uint32_t version)
{
    size_t n = fv_store_keys_ad_tenant(ad, cap, "fv-tenant-root-v1", tenant_id);
    FV_ASSERT(n + 4 <= cap);
    put_be32(ad + n, version);
    return n + 4;
}

static const char *kek_kind(const struct fv_kek *k)
{
    return k && k->ops && k->ops->name ? k->ops->name : "?";
}

/* Key check value ID of an imported KEK: "imported:" + hex(HMAC(k, label)[0..8)). */
int fv_store_keys_imported_id(const struct fv_secret *k, char *out, size_t cap)
{
    static const char label[] = "formvault key id";
    uint8_t mac[FV_CRYPTO_MAC_BYTES];
    char hex[17];
    int rc = fv_crypto_hmac_sha256(mac, (const uint8_t *)label, sizeof(label) - 1, k);
    if (rc == FV_OK) {
        (void)sodium_bin2hex(hex, sizeof(hex), mac, 8);
        (void)snprintf(out, cap, "imported:%s", hex);
    }
    fv_wipe(mac, sizeof(mac));
    return rc;
}

void fv_store_keys_catalog_truncate(struct fv_store *s)
{
    /* The pragma returns SQLITE_OK even when readers block it; its first
     * column says whether it completed. Readers hold snapshots for
     * milliseconds: retry for up to about 2 s. */
    int busy = 1, rc = FV_OK;
    for (int attempt = 0; attempt < 40 && busy; attempt++) {
        if (attempt > 0)
            (void)usleep(50 * 1000);
        sqlite3_stmt *st = NULL;
        (void)pthread_mutex_lock(&s->cat_mu);
        int src =
            sqlite3_prepare_v2(s->cat_writer->db, "PRAGMA wal_checkpoint(TRUNCATE)", -1, &st, NULL);
        if (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
            busy = sqlite3_column_int(st, 0);
        else
            rc = fv_store_sqlite_err(src);
        sqlite3_finalize(st);
        (void)pthread_mutex_unlock(&s->cat_mu);
        if (rc != FV_OK)
            break;
    }
    if (rc != FV_OK || busy)
        fv_log(FV_LOG_WARN,
               "keys: the catalog WAL could not be truncated (%s): pages of deleted key rows stay "
               "in it until the next checkpoint, ignoring",
               rc != FV_OK ? fv_strerror(rc) : "busy readers");
}

int fv_store_cat_begin(struct fv_store *s)
{
    if (s->read_only)
        return FV_E_READ_ONLY;
    (void)pthread_mutex_lock(&s->cat_mu);
    int rc = fv_store_conn_exec(s->cat_writer, "BEGIN IMMEDIATE");
    if (rc != FV_OK)
        (void)pthread_mutex_unlock(&s->cat_mu);
    return rc;
}

int fv_store_cat_end(struct fv_store *s, int rc, bool bump_epoch)
{
    if (rc == FV_OK && bump_epoch)
        rc = fv_store_conn_exec(s->cat_writer,
                                "INSERT INTO node_state(key, value) VALUES ('keys_epoch', '1') "
                                "ON CONFLICT(key) DO UPDATE SET value = "
                                "CAST(CAST(value AS INTEGER) + 1 AS TEXT)");
    if (rc == FV_OK)
        rc = fv_store_conn_exec(s->cat_writer, "COMMIT");
    if (rc != FV_OK)
        fv_store_conn_rollback(s->cat_writer);
    (void)pthread_mutex_unlock(&s->cat_mu);
    return rc;
}

int fv_store_keys_kek_guard(struct fv_store *s)
{
    static const char sql[] = "SELECT value FROM node_state WHERE key = 'kek_id'";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(s->cat_writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if (!id || strcmp(id, fv_crypto_kek_id(s->kek)) != 0) {
            fv_log(FV_LOG_ERROR,
                   "keys: the KEK was rotated to '%s' by another process; this process still "
                   "holds '%s': restart it with the new KEK",
                   id ? id : "", fv_crypto_kek_id(s->kek));
            rc = FV_E_KEY_UNAVAILABLE;
        }
    } else if (src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    return rc;
}

/* ------------------------------------------------------------ node key */

static int write_file_atomic(const char *dir, const char *name, const char *text)
{
    char path[FV_CONFIG_PATH_MAX + 32], tmp[FV_CONFIG_PATH_MAX + 48];
    int rc = FV_OK, fd = -1;
    size_t len = strlen(text);

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path) ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= sizeof(tmp))
        return FV_E_LIMIT;
    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return FV_E_IO;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = FV_E_IO;
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        rc = FV_E_IO;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = FV_E_IO;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = FV_E_IO;
        goto out;
    }
    rc = fv_store_fsync_dir(dir);
out:
    if (fd >= 0)
        (void)close(fd);
    if (rc != FV_OK)
        (void)unlink(tmp);
    return rc;
}

static int node_key_write(const char *data_dir, const struct fv_secret *node_key,
                          struct fv_kek *kek)
{
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t blen = 0;
    char hex[2 * FV_CRYPTO_WRAPPED_MAX + 1];
    json_t *j = NULL;
    char text[2048];
    int rc = fv_crypto_kek_wrap(blob, &blen, node_key, (const uint8_t *)NODE_KEY_AD,
                                sizeof(NODE_KEY_AD) - 1, kek);
    if (rc != FV_OK)
        return rc;
    (void)sodium_bin2hex(hex, sizeof(hex), blob, blen);
    j = json_pack("{s:i, s:s, s:s, s:s}", "format", 1, "kek_provider", kek_kind(kek), "kek_id",
                  fv_crypto_kek_id(kek), "wrapped", hex);
    if (!j)
        return FV_E_NOMEM;
    size_t n = json_dumpb(j, text, sizeof(text) - 2, JSON_INDENT(2));
    json_decref(j);
    if (n == 0 || n > sizeof(text) - 2)
        return FV_E_LIMIT;
    text[n] = '\n';
    text[n + 1] = '\0';
    rc = write_file_atomic(data_dir, NODE_KEY_FILE, text);
    return rc;
}

/* Parsed node.key. */
struct node_key_file {
    char kek_id[FV_CRYPTO_KEK_ID_MAX];
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    size_t blen;
};

static int node_key_read(const char *path, struct node_key_file *ret, struct fv_error *reterr)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    const char *id = NULL, *hex = NULL;
    int format = 0;
    int rc = FV_OK;
    if (!j)
        return fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX,
                            "node key file '%s' is not valid JSON: %s", path, jerr.text);
    if (json_unpack(j, "{s:i, s:s, s:s}", "format", &format, "kek_id", &id, "wrapped", &hex) != 0 ||
        format != 1 || strlen(id) >= sizeof(ret->kek_id)) {
        rc = fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX,
                          "node key file '%s' lacks format 1, kek_id or wrapped", path);
        goto out;
    }
    memset(ret, 0, sizeof(*ret));
    (void)fv_strlcpy(ret->kek_id, id, sizeof(ret->kek_id));
    if (sodium_hex2bin(ret->blob, sizeof(ret->blob), hex, strlen(hex), NULL, &ret->blen, NULL) !=
            0 ||
        ret->blen == 0) {
        rc = fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX,
                          "node key file '%s': 'wrapped' is not hex", path);
        goto out;
    }
out:
    json_decref(j);
    return rc;
}

int fv_store_keys_node_rewrap(struct fv_store *s, struct fv_kek *new_kek)
{
    if (!s->node_root)
        return FV_E_KEY_UNAVAILABLE;
    return node_key_write(s->data_dir, s->node_root, new_kek);
}

int fv_store_keys_node_load(struct fv_store *s, struct fv_kek *kek, bool catalog_exists,
                            struct fv_error *reterr)
{
    char path[FV_CONFIG_PATH_MAX + 32];
    struct fv_secret *node_key = NULL;
    struct node_key_file nk;
    int rc = FV_OK;

    if (!kek)
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                            "no KEK configured: set kek_file (create one with 'formvault keys "
                            "init --kek-file PATH') or kek_provider = pkcs11");
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", s->data_dir, NODE_KEY_FILE) >= sizeof(path))
        return fv_error_set(reterr, FV_E_LIMIT, SIZE_MAX, "data_dir path too long");

    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno != ENOENT)
            return fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot stat '%s': %s", path,
                                strerror(errno));
        if (catalog_exists)
            return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                                "node key file '%s' is missing but catalog.db exists: the "
                                "catalog cannot be decrypted (restore node.key from a backup)",
                                path);
        if (s->read_only)
            return fv_error_set(reterr, FV_E_NOT_FOUND, SIZE_MAX,
                                "data directory '%s' is not initialised", s->data_dir);
        rc = fv_crypto_secret_random(&node_key, FV_CRYPTO_KEY_BYTES);
        if (rc == FV_OK)
            rc = node_key_write(s->data_dir, node_key, kek);
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot create node key '%s' under KEK '%s'",
                              path, fv_crypto_kek_id(kek));
            goto out;
        }
    } else {
        rc = node_key_read(path, &nk, reterr);
        if (rc != FV_OK)
            goto out;
        if (strcmp(nk.kek_id, fv_crypto_kek_id(kek)) != 0) {
            rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                              "wrong KEK: the data directory's keys are wrapped by KEK '%s' but "
                              "the configured KEK is '%s'",
                              nk.kek_id, fv_crypto_kek_id(kek));
            goto out;
        }
        rc = fv_crypto_kek_unwrap(&node_key, nk.blob, nk.blen, (const uint8_t *)NODE_KEY_AD,
                                  sizeof(NODE_KEY_AD) - 1, kek);
        if (rc == FV_E_CORRUPT) {
            rc = fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX,
                              "node key '%s' does not unwrap under KEK '%s': the wrapped key is "
                              "corrupted or the KEK is wrong",
                              path, fv_crypto_kek_id(kek));
            goto out;
        }
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc, SIZE_MAX,
                              "cannot unwrap node key '%s': KEK '%s' is unavailable", path,
                              fv_crypto_kek_id(kek));
            goto out;
        }
    }
    rc = fv_crypto_keyring_new(&s->node_keys, "node");
    if (rc == FV_OK)
        rc = fv_crypto_keyring_add(s->node_keys, 1, node_key);
    if (rc == FV_OK)
        rc = fv_store_vfs_bind(s->catalog_path, s->node_keys);
    if (rc == FV_OK) {
        s->node_root = node_key; /* kept (guarded memory) for KEK rotation */
        node_key = NULL;
    }
out:
    fv_crypto_secret_free(node_key);
    return rc;
}

/* ----------------------------------------------------- tenant root keys */

/* Wrap `root` as version v of tenant under kek and insert the row (caller's txn). */
static int root_insert(struct fv_store_conn *c, int64_t tenant_id, uint32_t v,
                       const struct fv_secret *root, struct fv_kek *kek, int64_t now)
{
    static const char sql[] = "INSERT INTO tenant_keys(tenant_id, version, kek_id, wrapped, "
                              "state, created) VALUES (?1, ?2, ?3, ?4, 'active', ?5)";
    uint8_t ad[64], blob[FV_CRYPTO_WRAPPED_MAX];
    size_t adlen = fv_store_keys_ad_root(ad, sizeof(ad), tenant_id, v);
    size_t blen = 0;
    sqlite3_stmt *st = NULL;
    int rc = fv_crypto_kek_wrap(blob, &blen, root, ad, adlen, kek);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, tenant_id);
    (void)sqlite3_bind_int64(st, 2, v);
    (void)sqlite3_bind_text(st, 3, fv_crypto_kek_id(kek), -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_blob(st, 4, blob, (int)blen, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(st, 5, now);
    int src = sqlite3_step(st);
    rc = src == SQLITE_DONE ? FV_OK : fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    return rc;
}

int fv_store_keys_tenant_init(struct fv_store *s, int64_t tenant_id, struct fv_keyring **ret)
{
    struct fv_secret *root = NULL;
    struct fv_keyring *kr = NULL;
    char owner[32];
    int rc;

    (void)snprintf(owner, sizeof(owner), "%lld", (long long)tenant_id);
    rc = fv_crypto_secret_random(&root, FV_CRYPTO_KEY_BYTES);
    if (rc == FV_OK)
        rc = root_insert(s->cat_writer, tenant_id, 1, root, s->kek, fv_time_now_ms());
    if (rc == FV_OK)
        rc = fv_crypto_keyring_new(&kr, owner);
    if (rc == FV_OK)
        rc = fv_crypto_keyring_add(kr, 1, root);
    fv_crypto_secret_free(root);
    if (rc != FV_OK) {
        fv_crypto_keyring_unref(kr);
        return rc;
    }
    *ret = kr;
    return FV_OK;
}

/* The tenant's own KEK, if it has one: kind "imported" or "pkcs11". */
struct tenant_kek_row {
    bool present;
    char kind[16];
    char kek_id[FV_CRYPTO_KEK_ID_MAX];
    char state[16];
    uint8_t material[FV_CRYPTO_WRAPPED_MAX];
    size_t material_len;
    char module[FV_CONFIG_PATH_MAX];
    char token[64];
    char key_label[64];
    char pin_file[FV_CONFIG_PATH_MAX];
};

static void col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    (void)fv_strlcpy(out, t ? t : "", cap);
}

static int tenant_kek_read(struct fv_store_conn *c, int64_t tenant_id, struct tenant_kek_row *r)
{
    static const char sql[] = "SELECT kind, kek_id, state, material, module, token, key_label, "
                              "pin_file FROM tenant_kek WHERE tenant_id = ?1";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    memset(r, 0, sizeof(*r));
    (void)sqlite3_bind_int64(st, 1, tenant_id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        r->present = true;
        col_text(st, 0, r->kind, sizeof(r->kind));
        col_text(st, 1, r->kek_id, sizeof(r->kek_id));
        col_text(st, 2, r->state, sizeof(r->state));
        int n = sqlite3_column_bytes(st, 3);
        const void *p = sqlite3_column_blob(st, 3);
        if (p && n > 0 && (size_t)n <= sizeof(r->material)) {
            memcpy(r->material, p, (size_t)n);
            r->material_len = (size_t)n;
        }
        col_text(st, 4, r->module, sizeof(r->module));
        col_text(st, 5, r->token, sizeof(r->token));
        col_text(st, 6, r->key_label, sizeof(r->key_label));
        col_text(st, 7, r->pin_file, sizeof(r->pin_file));
    } else if (src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    return rc;
}

/*
 * The KEK that wraps this tenant's root keys: s->kek (borrowed, *ret_owned
 * NULL) or the tenant's own (new, *ret_owned = it, caller frees).
 */
int fv_store_keys_tenant_kek(struct fv_store *s, struct fv_store_conn *c, int64_t tenant_id,
                             struct fv_kek **ret, struct fv_kek **ret_owned,
                             struct fv_error *reterr)
{
    struct tenant_kek_row *r = fv_calloc(1, sizeof(*r));
    struct fv_secret *material = NULL;
    char pin[256];
    int rc;

    *ret_owned = NULL;
    if (!r)
        return FV_E_NOMEM;
    rc = tenant_kek_read(c, tenant_id, r);
    if (rc != FV_OK)
        goto out;
    if (!r->present) {
        *ret = s->kek;
        goto out;
    }
    if (strcmp(r->state, "active") != 0) {
        rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                          "the tenant's own KEK '%s' is revoked", r->kek_id);
        goto out;
    }
    if (strcmp(r->kind, "imported") == 0) {
        uint8_t ad[64];
        size_t adlen = fv_store_keys_ad_tenant(ad, sizeof(ad), "fv-tenant-kek-v1", tenant_id);
        rc = fv_crypto_kek_unwrap(&material, r->material, r->material_len, ad, adlen, s->kek);
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc == FV_E_CORRUPT ? FV_E_CORRUPT : FV_E_KEY_UNAVAILABLE,
                              SIZE_MAX, "cannot unwrap the tenant's imported KEK '%s' (%s)",
                              r->kek_id, fv_strerror(rc));
            goto out;
        }
        rc = fv_crypto_kek_secret_new(ret_owned, r->kek_id, material);
    } else if (strcmp(r->kind, "pkcs11") == 0) {
        rc = fv_file_read_private_line(r->pin_file, pin, sizeof(pin), reterr);
        if (rc == FV_OK)
            rc = fv_crypto_kek_pkcs11_open(ret_owned, r->module, r->token, r->key_label, pin,
                                           reterr);
        fv_wipe(pin, sizeof(pin));
        if (rc != FV_OK && rc != FV_E_NOMEM)
            rc = FV_E_KEY_UNAVAILABLE;
    } else {
        rc = fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX, "unknown tenant KEK kind '%s'", r->kind);
    }
    if (rc == FV_OK)
        *ret = *ret_owned;
out:
    fv_crypto_secret_free(material);
    fv_wipe(r, sizeof(*r));
    fv_free(r);
    return rc;
}

/*
 * Bring kr in line with the catalog: add active versions it lacks
 * (unwrapping them under the tenant's KEK), drop versions no longer active,
 * and make the newest the write version. On FV_E_KEY_UNAVAILABLE or
 * FV_E_CORRUPT the keyring is revoked. c is a catalog connection.
 */
static int tenant_keys_sync(struct fv_store *s, struct fv_store_conn *c, int64_t tenant_id,
                            struct fv_keyring *kr, struct fv_kek **io_tenant_kek,
                            struct fv_error *reterr)
{
    /* Newest first: the first version added to an empty (or revoked) ring
     * becomes its write version, and it must never be an old one. */
    static const char sql[] = "SELECT version, kek_id, wrapped FROM tenant_keys WHERE "
                              "tenant_id = ?1 AND state = 'active' ORDER BY version DESC";
    uint32_t have[FV_CRYPTO_KEYRING_MAX_VERSIONS], want[FV_CRYPTO_KEYRING_MAX_VERSIONS];
    size_t n_have, n_want = 0;
    struct fv_kek *kek = NULL, *owned = NULL;
    sqlite3_stmt *st = NULL;
    struct fv_secret *root = NULL;
    int rc;
    bool revoked = fv_crypto_keyring_write_version(kr) == 0;

    rc = fv_store_keys_tenant_kek(s, c, tenant_id, &kek, &owned, reterr);
    if (rc != FV_OK)
        goto out;
    n_have = fv_crypto_keyring_versions(kr, have, FV_ARRAY_LEN(have));
    rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_int64(st, 1, tenant_id);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        uint32_t v = (uint32_t)sqlite3_column_int64(st, 0);
        const char *kid = (const char *)sqlite3_column_text(st, 1);
        if (n_want < FV_ARRAY_LEN(want))
            want[n_want++] = v;
        bool present = false;
        for (size_t i = 0; i < n_have && !revoked; i++)
            present = present || have[i] == v;
        if (present)
            continue;
        if (!kid || strcmp(kid, fv_crypto_kek_id(kek)) != 0) {
            rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                              "root key version %u is wrapped by KEK '%s' but the KEK in use is "
                              "'%s'",
                              v, kid ? kid : "", fv_crypto_kek_id(kek));
            goto out;
        }
        uint8_t ad[64];
        size_t adlen = fv_store_keys_ad_root(ad, sizeof(ad), tenant_id, v);
        const uint8_t *blob = sqlite3_column_blob(st, 2);
        int blen = sqlite3_column_bytes(st, 2);
        rc = blob && blen > 0 ? fv_crypto_kek_unwrap(&root, blob, (size_t)blen, ad, adlen, kek)
                              : FV_E_CORRUPT;
        if (rc == FV_E_CORRUPT) {
            rc = fv_error_set(reterr, FV_E_CORRUPT, SIZE_MAX,
                              "wrapped root key version %u does not unwrap under KEK '%s': it is "
                              "corrupted or the KEK is wrong",
                              v, fv_crypto_kek_id(kek));
            goto out;
        }
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc, SIZE_MAX,
                              rc == FV_E_KEY_UNAVAILABLE
                                  ? "cannot unwrap root key version %u: KEK '%s' is unavailable"
                                  : "cannot unwrap root key version %u under KEK '%s'",
                              v, fv_crypto_kek_id(kek));
            goto out;
        }
        if (revoked) {
            /* Re-adding after a revocation: start from an empty ring. */
            for (size_t i = 0; i < n_have; i++)
                fv_crypto_keyring_remove(kr, have[i]);
            n_have = 0;
            revoked = false;
        }
        rc = fv_crypto_keyring_add(kr, v, root);
        fv_crypto_secret_free(root);
        root = NULL;
        if (rc != FV_OK)
            goto out;
    }
    if (src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
        goto out;
    }
    if (n_want == 0) {
        rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                          "the tenant has no root key: its keys were destroyed (shredded)");
        goto out;
    }
    n_have = fv_crypto_keyring_versions(kr, have, FV_ARRAY_LEN(have));
    for (size_t i = 0; i < n_have; i++) {
        bool keep = false;
        for (size_t k = 0; k < n_want; k++)
            keep = keep || want[k] == have[i];
        if (!keep)
            fv_crypto_keyring_remove(kr, have[i]);
    }
    rc = fv_crypto_keyring_set_write(kr, want[0]); /* the newest */
out:
    fv_store_stmt_done(st);
    fv_crypto_secret_free(root);
    if (rc == FV_E_KEY_UNAVAILABLE || rc == FV_E_CORRUPT)
        fv_crypto_keyring_revoke(kr);
    if (io_tenant_kek && (rc == FV_OK || rc == FV_E_KEY_UNAVAILABLE || rc == FV_E_CORRUPT)) {
        /* Success: the current tenant KEK; failure: none is kept in memory
         * (a revoked or shredded tenant's KEK must not linger). */
        fv_crypto_kek_free(*io_tenant_kek);
        *io_tenant_kek = rc == FV_OK ? owned : NULL;
        if (rc == FV_OK)
            owned = NULL;
    }
    fv_crypto_kek_free(owned);
    return rc;
}

int fv_store_keys_tenant_load(struct fv_store *s, struct fv_tenant *t, struct fv_error *reterr)
{
    struct fv_store_conn *c = NULL;
    char owner[32];
    int rc;

    (void)snprintf(owner, sizeof(owner), "%lld", (long long)t->id);
    if (!t->keys) {
        rc = fv_crypto_keyring_new(&t->keys, owner);
        if (rc != FV_OK)
            return rc;
    }
    rc = fv_store_pool_get(&s->cat_readers, &c);
    if (rc != FV_OK)
        return rc;
    (void)pthread_mutex_lock(&t->keys_mu);
    rc = tenant_keys_sync(s, c, t->id, t->keys, &t->tenant_kek, reterr);
    (void)pthread_mutex_unlock(&t->keys_mu);
    fv_store_pool_put(&s->cat_readers, c);
    return rc;
}

/* fv_meta 'min_key_version' of the tenant database (0 when unset). */
static int key_floor_read(struct fv_tenant *t, int64_t *ret)
{
    static const char sql[] = "SELECT value FROM fv_meta WHERE key = 'min_key_version'";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(t->writer, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    int src = sqlite3_step(st);
    *ret = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    return rc;
}

int fv_store_keys_writer_check(struct fv_tenant *t)
{
    int64_t floor = 0;
    int rc = key_floor_read(t, &floor);
    if (rc != FV_OK || floor <= (int64_t)fv_crypto_keyring_write_version(t->keys))
        return rc;
    /* A rotation in another process moved the floor: load the new version. */
    struct fv_error err;
    fv_error_init(&err);
    rc = fv_store_keys_tenant_load(t->store, t, &err);
    if (rc == FV_OK && (int64_t)fv_crypto_keyring_write_version(t->keys) < floor)
        rc = FV_E_KEY_UNAVAILABLE;
    if (rc != FV_OK)
        fv_log(FV_LOG_DEBUG, "store: tenant %lld: cannot write under key version %lld: %s",
               (long long)t->id, (long long)floor, err.msg[0] ? err.msg : fv_strerror(rc));
    return rc;
}

int fv_store_keys_set_floor(struct fv_tenant *t, uint32_t version)
{
    static const char sql[] = "INSERT INTO fv_meta(key, value) VALUES ('min_key_version', ?1) "
                              "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)";
    sqlite3_stmt *st = NULL;
    fv_store_writer_enter(t);
    int rc = fv_store_conn_exec(t->writer, "BEGIN IMMEDIATE");
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(t->writer, sql, sizeof(sql) - 1, &st);
    if (rc == FV_OK) {
        (void)sqlite3_bind_int64(st, 1, version);
        int src = sqlite3_step(st);
        if (src != SQLITE_DONE)
            rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    if (rc == FV_OK)
        rc = fv_store_conn_exec(t->writer, "COMMIT");
    if (rc != FV_OK && !sqlite3_get_autocommit(t->writer->db))
        fv_store_conn_rollback(t->writer);
    fv_store_writer_leave(t);
    return rc;
}

/* ------------------------------------------------------- watcher (serve) */

static int read_epoch(struct fv_store *s, int64_t *ret)
{
    static const char sql[] = "SELECT value FROM node_state WHERE key = 'keys_epoch'";
    struct fv_store_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc = fv_store_pool_get(&s->cat_readers, &c);
    if (rc != FV_OK)
        return rc;
    rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc == FV_OK) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            *ret = sqlite3_column_int64(st, 0);
        else if (src == SQLITE_DONE)
            *ret = 0;
        else
            rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    fv_store_pool_put(&s->cat_readers, c);
    return rc;
}

int fv_store_keys_refresh(struct fv_store *s, bool force)
{
    int64_t epoch = 0;
    int rc = read_epoch(s, &epoch);
    if (rc != FV_OK)
        return rc;
    bool changed = force || epoch != s->keys_epoch_seen;
    s->keys_epoch_seen = epoch;

    /* Take references on the open tenants, then work without the cache lock. */
    struct fv_tenant **open = NULL;
    size_t n = 0;
    (void)pthread_mutex_lock(&s->mu);
    open = fv_calloc(s->n_tenants ? s->n_tenants : 1, sizeof(*open));
    if (open) {
        for (struct fv_tenant *t = s->tenants; t; t = t->next)
            if (t->state == FV_TENANT_READY && n < s->n_tenants) {
                t->refs++;
                open[n++] = t;
            }
    }
    (void)pthread_mutex_unlock(&s->mu);
    if (!open)
        return FV_E_NOMEM;

    for (size_t i = 0; i < n; i++) {
        struct fv_tenant *t = open[i];
        bool was_ok = fv_crypto_keyring_write_version(t->keys) != 0;
        (void)pthread_mutex_lock(&t->keys_mu);
        bool hsm_lost = t->tenant_kek && fv_crypto_kek_check(t->tenant_kek) != FV_OK;
        (void)pthread_mutex_unlock(&t->keys_mu);
        if (hsm_lost) {
            if (was_ok)
                fv_log(FV_LOG_ERROR,
                       "keys: tenant %lld: its KEK '%s' is unreachable, tenant unavailable",
                       (long long)t->id, fv_crypto_kek_id(t->tenant_kek));
            fv_crypto_keyring_revoke(t->keys);
            continue;
        }
        if (!changed && was_ok)
            continue;
        struct fv_error err;
        fv_error_init(&err);
        int trc = fv_store_keys_tenant_load(s, t, &err);
        if (trc != FV_OK && was_ok)
            fv_log(FV_LOG_WARN, "keys: tenant %lld keys unavailable: %s", (long long)t->id,
                   err.msg[0] ? err.msg : fv_strerror(trc));
        else if (trc == FV_OK && !was_ok)
            fv_log(FV_LOG_INFO, "keys: tenant %lld keys available again", (long long)t->id);
    }
    for (size_t i = 0; i < n; i++)
        fv_store_sqlite_tenant_release(open[i]);
    fv_free(open);

    if (s->kek && fv_crypto_kek_check(s->kek) != FV_OK) {
        if (!atomic_load(&s->kek_lost))
            fv_log(FV_LOG_ERROR,
                   "keys: the node KEK '%s' is unreachable: tenants not yet open cannot be "
                   "opened",
                   fv_crypto_kek_id(s->kek));
        atomic_store(&s->kek_lost, true);
    } else if (atomic_load(&s->kek_lost)) {
        fv_log(FV_LOG_INFO, "keys: the node KEK '%s' is reachable again", fv_crypto_kek_id(s->kek));
        atomic_store(&s->kek_lost, false);
    }
    return FV_OK;
}

bool fv_store_keys_kek_ok(struct fv_store *s)
{
    return !atomic_load(&s->kek_lost);
}
