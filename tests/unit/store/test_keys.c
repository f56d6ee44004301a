/*
 * test_keys.c: the key hierarchy of the SQLite engine (store/keys.c,
 * keys_admin.c, keys_job.c): node.key and the wrong / missing / corrupted
 * cases, tenant root keys bound to their tenant and version, tenant key
 * rotation through the job, KEK rotation, BYOK import / revoke / re-import,
 * crypto-shredding (down to the catalog's bytes) and an allocation-failure
 * loop over the whole life cycle.
 *
 * The catalog is edited behind the store's back with a plain sqlite3_open()
 * while the store is open: the encrypting VFS has catalog.db bound to the
 * node key then, so the connection reads and writes through it.
 */
#include "store_fixture.h"

#include "store/store_int.h"

/* One form with an encrypted field, so that the rotation's "fields" phase
 * has values to re-seal. */
static const char vault_json[] =
    "{\"format\":1,\"link_name\":\"vault\",\"forms\":["
    "{\"link_name\":\"Person\",\"fields\":["
    "{\"link_name\":\"Name\",\"type\":\"single_line\"},"
    "{\"link_name\":\"SSN\",\"type\":\"single_line\",\"encrypt\":true}]}],"
    "\"reports\":[{\"link_name\":\"All_People\",\"form\":\"Person\"}]}";

/* ------------------------------------------------------------- helpers */

static int open_with(struct fx *f, struct fv_kek *kek, struct fv_store **ret, struct fv_error *err)
{
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    o.kek = kek;
    fv_error_init(err);
    *ret = NULL;
    return fv_store_open(&o, ret, err);
}

/* Release the handle and close the store (the tenant cache goes with it). */
static void close_store(struct fx *f)
{
    if (f->t)
        fv_store_tenant_release(f->t);
    f->t = NULL;
    fv_store_close(f->s);
    f->s = NULL;
}

/* A second file KEK at dir/name (outside the data dir). */
static struct fv_kek *second_kek(struct fx *f, const char *name)
{
    char p[300], data[300];
    struct fv_kek *k = NULL;
    struct fv_error err;
    fv_error_init(&err);
    (void)snprintf(p, sizeof(p), "%s/%s", f->dir, name);
    (void)snprintf(data, sizeof(data), "%s/data", f->dir);
    if (fv_crypto_kek_file_create(p, data, &err) != FV_OK ||
        fv_crypto_kek_file_open(&k, p, data, &err) != FV_OK)
        fail_msg("kek %s: %s", name, err.msg);
    assert_string_not_equal(fv_crypto_kek_id(k), fv_crypto_kek_id(f->kek));
    return k;
}

static int64_t new_tenant(struct fx *f, const char *name)
{
    struct fv_store_tenant_info info;
    struct fv_error err;
    fv_error_init(&err);
    int rc = fv_store_tenant_create(f->s, name, "us", &info, &err);
    if (rc != FV_OK)
        fail_msg("tenant %s: %s %s", name, fv_strerror(rc), err.msg);
    return info.id;
}

/* The catalog through the VFS (the store must be open). */
static sqlite3 *cat_open(struct fx *f)
{
    char p[512];
    sqlite3 *db = NULL;
    fx_path(f, "catalog.db", p, sizeof(p));
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
    return db;
}

/* count(*) of sql with ?1 = tenant. */
static int64_t cat_count(struct fx *f, const char *sql, int64_t tenant)
{
    sqlite3 *db = cat_open(f);
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    (void)sqlite3_bind_int64(st, 1, tenant);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* tenant_keys.wrapped of (tenant, version) into out; returns its length (0 = NULL). */
static size_t cat_wrapped(struct fx *f, int64_t tenant, uint32_t version, uint8_t *out, size_t cap)
{
    sqlite3 *db = cat_open(f);
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT wrapped FROM tenant_keys WHERE tenant_id = ?1 "
                                        "AND version = ?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    (void)sqlite3_bind_int64(st, 1, tenant);
    (void)sqlite3_bind_int64(st, 2, version);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    if (sqlite3_column_type(st, 0) == SQLITE_BLOB) {
        n = (size_t)sqlite3_column_bytes(st, 0);
        assert_true(n > 0 && n <= cap);
        memcpy(out, sqlite3_column_blob(st, 0), n);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void cat_set_wrapped(struct fx *f, int64_t tenant, uint32_t version, const uint8_t *blob,
                            size_t len)
{
    sqlite3 *db = cat_open(f);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "UPDATE tenant_keys SET wrapped = ?3 WHERE tenant_id = ?1 "
                                        "AND version = ?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    (void)sqlite3_bind_int64(st, 1, tenant);
    (void)sqlite3_bind_int64(st, 2, version);
    (void)sqlite3_bind_blob(st, 3, blob, (int)len, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    assert_int_equal(sqlite3_changes(db), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/*
 * fv_store_keys_tenant_load on a scratch handle: the error code and the
 * message that fv_store_tenant_acquire only logs.
 */
static int tenant_load(struct fx *f, int64_t tenant, struct fv_error *err)
{
    struct fv_tenant t;
    memset(&t, 0, sizeof(t));
    t.id = tenant;
    fv_error_init(err);
    int rc = fv_store_keys_tenant_load(f->s, &t, err);
    fv_crypto_keyring_unref(t.keys);
    fv_crypto_kek_free(t.tenant_kek);
    return rc;
}

/* Key status of one tenant (copied out of the array). */
static struct fv_store_key_status status_of(struct fx *f, int64_t tenant)
{
    struct fv_store_key_status *arr = NULL, k;
    size_t n = 0;
    bool found = false;
    assert_int_equal(fv_store_keys_status(f->s, &arr, &n), FV_OK);
    for (size_t i = 0; i < n; i++) {
        if (arr[i].tenant_id == tenant) {
            k = arr[i];
            found = true;
        }
    }
    fv_free(arr);
    if (!found)
        fail_msg("no key status for tenant %lld", (long long)tenant);
    return k;
}

/*
 * Run rotation jobs one step per call (budget 0) until none is pending
 * (bounded); after every call, pending is 0 exactly when the tenant's job
 * is done. Returns the phases seen, in order, as "fields,pages,...".
 */
static void jobs_finish(struct fx *f, int64_t tenant, char *phases, size_t cap)
{
    size_t pending = 1;
    struct fv_error err;
    char last[16] = "";
    phases[0] = '\0';
    for (int i = 0; i < 50 && pending > 0; i++) {
        bool progress = false;
        fv_error_init(&err);
        int rc = fv_store_keys_jobs_run(f->s, 0, &pending, &progress, &err);
        if (rc != FV_OK)
            fail_msg("jobs_run: %s %s", fv_strerror(rc), err.msg);
        struct fv_store_key_status k = status_of(f, tenant);
        assert_string_equal(k.job_error, "");
        assert_int_equal(pending == 0, strcmp(k.job_phase, "done") == 0);
        if (strcmp(last, k.job_phase) != 0) {
            size_t len = strlen(phases);
            (void)snprintf(phases + len, cap - len, "%s%s", len ? "," : "", k.job_phase);
            (void)fv_strlcpy(last, k.job_phase, sizeof(last));
        }
    }
    assert_int_equal(pending, 0);
}

/* Install the vault app in the fixture's tenant; *ret_person its form. */
static const struct fv_form *vault_install(struct fx *f, const struct fv_app **ret_app)
{
    struct fv_error err;
    fv_error_init(&err);
    int rc = fv_store_app_install(f->t, vault_json, sizeof(vault_json) - 1, "test", &err);
    if (rc != FV_OK)
        fail_msg("install vault: %s %s", fv_strerror(rc), err.msg);
    assert_int_equal(fv_store_app_get(f->t, "vault", ret_app), FV_OK);
    const struct fv_form *person = fv_model_app_form(*ret_app, "Person");
    assert_non_null(person);
    return person;
}

static uint64_t vault_insert(struct fx *f, const struct fv_app *vault, const struct fv_form *person,
                             const char *json)
{
    json_t *data = json_loads(json, 0, NULL);
    assert_non_null(data);
    struct fv_store_write w = {.op = FV_STORE_INSERT, .form = person, .data = data};
    assert_int_equal(fv_store_write(f->t, vault, &w, 1, "tester"), FV_OK);
    json_decref(data);
    fv_free(w.results);
    if (w.rc != FV_OK)
        fail_msg("insert %s: %s %s", json, fv_strerror(w.rc), w.err.msg);
    return w.ret_id;
}

static void assert_patient(struct fx *f, uint64_t id, const char *number)
{
    json_t *r = fx_get(f, f->patient, id);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "Patient_Number")), number);
    json_decref(r);
}

/* Whole file into a new buffer (free). NULL with *ret_len 0 when absent. */
static uint8_t *slurp(const char *path, size_t *ret_len)
{
    FILE *fp = fopen(path, "rb");
    *ret_len = 0;
    if (!fp)
        return NULL;
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *ret_len = (size_t)n;
    return b;
}

/* True if any 16-byte window of needle occurs in hay. */
static bool contains_window(const uint8_t *hay, size_t hlen, const uint8_t *needle, size_t nlen)
{
    for (size_t w = 0; w + 16 <= nlen; w++)
        if (hay && memmem(hay, hlen, needle + w, 16))
            return true;
    return false;
}

/*
 * The plaintext of every page of the main database at path, read through
 * the encrypting VFS (the path must be bound, i.e. the store open). Page
 * bodies on disk are ciphertext, so only this view can show whether
 * deleted rows left their bytes behind.
 */
static uint8_t *vfs_plain_pages(const char *path, size_t *ret_len)
{
    sqlite3_vfs *v = sqlite3_vfs_find(FV_STORE_VFS_NAME);
    assert_non_null(v);
    sqlite3_filename fn = sqlite3_create_filename(path, "", "", 0, NULL);
    assert_non_null(fn);
    sqlite3_file *fp = calloc(1, (size_t)v->szOsFile);
    assert_non_null(fp);
    int oflags = 0;
    assert_int_equal(v->xOpen(v, fn, fp, SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_READONLY, &oflags),
                     SQLITE_OK);
    sqlite3_int64 size = 0;
    assert_int_equal(fp->pMethods->xFileSize(fp, &size), SQLITE_OK);
    uint8_t hdr[100];
    assert_int_equal(fp->pMethods->xRead(fp, hdr, sizeof(hdr), 0), SQLITE_OK);
    uint32_t pgsz = ((uint32_t)hdr[16] << 8) | hdr[17];
    if (pgsz == 1)
        pgsz = 65536;
    assert_true(pgsz >= 512 && size > 0 && size % pgsz == 0);
    uint8_t *out = malloc((size_t)size);
    assert_non_null(out);
    for (sqlite3_int64 off = 0; off < size; off += pgsz)
        assert_int_equal(fp->pMethods->xRead(fp, out + off, (int)pgsz, off), SQLITE_OK);
    assert_int_equal(fp->pMethods->xClose(fp), SQLITE_OK);
    free(fp);
    sqlite3_free_filename(fn);
    *ret_len = (size_t)size;
    return out;
}

/* BYOK: fresh transport key for tenant, key wrapped for it, imported. */
static int byok_import(struct fx *f, int64_t tenant, const struct fv_secret *key, char *ret_id,
                       size_t id_cap, struct fv_error *err)
{
    char *pem = NULL;
    int64_t expires = 0;
    uint8_t wrapped[1024];
    size_t wlen = 0;
    fv_error_init(err);
    int rc = fv_store_keys_import_params(f->s, tenant, &pem, &expires, err);
    if (rc != FV_OK)
        fail_msg("import_params: %s %s", fv_strerror(rc), err->msg);
    assert_int_equal(fv_crypto_transport_wrap(wrapped, sizeof(wrapped), &wlen, key, pem), FV_OK);
    fv_free(pem);
    fv_error_init(err);
    return fv_store_keys_import(f->s, tenant, wrapped, wlen, ret_id, id_cap, err);
}

/* ------------------------------------------------------------ node key */

static void test_fv_store_keys_node_load_creates_node_key(void **state)
{
    struct fx *f = *state;
    char p[512];
    struct stat sb;
    fx_path(f, "node.key", p, sizeof(p));
    assert_int_not_equal(stat(p, &sb), 0); /* a new data dir has none */
    fx_open_store(f);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    json_error_t jerr;
    json_t *j = json_load_file(p, 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "format")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "kek_id")), fv_crypto_kek_id(f->kek));
    const char *hex = json_string_value(json_object_get(j, "wrapped"));
    assert_non_null(hex);
    assert_true(strlen(hex) > 2 * FV_CRYPTO_KEY_BYTES); /* key + nonce + tag, in hex */
    json_decref(j);
    /* and the catalog is under it: a reopen reads the same catalog */
    (void)new_tenant(f, "acme");
    close_store(f);
    fx_open_store(f);
    struct fv_store_tenant_info info;
    assert_int_equal(fv_store_tenant_find(f->s, "acme", &info), FV_OK);
}

static void test_fv_store_keys_node_load_same_kek_reopens(void **state)
{
    struct fx *f = *state;
    uint64_t id = 0;
    fx_patient(f, "N-1", 40, &id);
    fx_reopen(f);
    assert_patient(f, id, "N-1");
}

static void test_fv_store_keys_node_load_wrong_kek(void **state)
{
    struct fx *f = *state;
    struct fv_store *s = NULL;
    struct fv_error err;
    struct fv_kek *other = second_kek(f, "other.key");
    close_store(f);
    assert_int_equal(open_with(f, other, &s, &err), FV_E_KEY_UNAVAILABLE);
    assert_null(s);
    assert_non_null(strstr(err.msg, "wrong KEK"));
    /* names both KEKs, by ID */
    assert_non_null(strstr(err.msg, fv_crypto_kek_id(f->kek)));
    assert_non_null(strstr(err.msg, fv_crypto_kek_id(other)));
    fv_crypto_kek_free(other);
    /* nothing was changed: the right KEK still opens it */
    fx_open_store(f);
    fx_acquire(f);
}

/* Rewrite the "wrapped" member of node.key with edit() applied to its text. */
static void node_key_edit(struct fx *f, void (*edit)(char *hex))
{
    char p[512];
    fx_path(f, "node.key", p, sizeof(p));
    json_t *j = json_load_file(p, 0, NULL);
    assert_non_null(j);
    char hex[2 * FV_CRYPTO_WRAPPED_MAX + 1];
    assert_int_equal(fv_strlcpy(hex, json_string_value(json_object_get(j, "wrapped")), sizeof(hex)),
                     FV_OK);
    edit(hex);
    assert_int_equal(json_object_set_new(j, "wrapped", json_string(hex)), 0);
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(json_dump_file(j, p, 0), 0);
    json_decref(j);
}

static void flip_middle_hex(char *hex)
{
    static const char digits[] = "0123456789abcdef";
    size_t i = strlen(hex) / 2; /* inside the ciphertext, not the format byte */
    const char *d = strchr(digits, hex[i]);
    assert_non_null(d);
    hex[i] = digits[(d - digits) ^ 1]; /* its own inverse */
}

static void make_not_hex(char *hex)
{
    hex[4] = 'z';
}

static void test_fv_store_keys_node_load_corrupt_wrapped(void **state)
{
    struct fx *f = *state;
    struct fv_store *s = NULL;
    struct fv_error err;
    close_store(f);
    node_key_edit(f, flip_middle_hex);
    assert_int_equal(open_with(f, f->kek, &s, &err), FV_E_CORRUPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "does not unwrap"));
    assert_non_null(strstr(err.msg, "node key"));
    /* flipping it back restores the store: the failure was the flipped bit */
    node_key_edit(f, flip_middle_hex);
    fx_open_store(f);
    fx_acquire(f);
}

static void test_fv_store_keys_node_load_not_hex_or_json(void **state)
{
    struct fx *f = *state;
    struct fv_store *s = NULL;
    struct fv_error err;
    char p[512];
    close_store(f);
    node_key_edit(f, make_not_hex);
    assert_int_equal(open_with(f, f->kek, &s, &err), FV_E_CORRUPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "not hex"));
    fx_path(f, "node.key", p, sizeof(p));
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    fputs("{\"format\":1,", fp);
    fclose(fp);
    assert_int_equal(open_with(f, f->kek, &s, &err), FV_E_CORRUPT);
    assert_null(s);
    assert_non_null(strstr(err.msg, "not valid JSON"));
}

static void test_fv_store_keys_node_load_missing_with_catalog(void **state)
{
    struct fx *f = *state;
    struct fv_store *s = NULL;
    struct fv_error err;
    char p[512];
    struct stat sb;
    close_store(f);
    fx_path(f, "node.key", p, sizeof(p));
    assert_int_equal(unlink(p), 0);
    assert_int_equal(open_with(f, f->kek, &s, &err), FV_E_KEY_UNAVAILABLE);
    assert_null(s);
    assert_non_null(strstr(err.msg, "node key"));
    assert_non_null(strstr(err.msg, "missing"));
    /* no new node key was made up over the existing catalog */
    assert_int_not_equal(stat(p, &sb), 0);
}

static void test_fv_store_keys_node_load_no_kek(void **state)
{
    struct fx *f = *state;
    struct fv_store *s = NULL;
    struct fv_error err;
    char p[512];
    struct stat sb;
    assert_int_equal(open_with(f, NULL, &s, &err), FV_E_KEY_UNAVAILABLE);
    assert_null(s);
    assert_non_null(strstr(err.msg, "no KEK"));
    fx_path(f, "node.key", p, sizeof(p));
    assert_int_not_equal(stat(p, &sb), 0);
    fx_path(f, "catalog.db", p, sizeof(p));
    assert_int_not_equal(stat(p, &sb), 0);
}

/* ----------------------------------------------------- tenant root keys */

/*
 * A flipped byte in the wrapped root key: the tenant does not open
 * (FV_E_CORRUPT: the blob does not authenticate, as opposed to
 * FV_E_KEY_UNAVAILABLE for a missing or revoked KEK), other tenants do.
 */
static void test_fv_store_keys_tenant_load_corrupt_root(void **state)
{
    struct fx *f = *state;
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX], orig[FV_CRYPTO_WRAPPED_MAX];
    struct fv_error err;
    struct fv_tenant *t = NULL;
    int64_t beta = new_tenant(f, "beta");
    size_t n = cat_wrapped(f, f->tenant_id, 1, blob, sizeof(blob));
    assert_true(n > 16);
    memcpy(orig, blob, n);
    blob[n / 2] ^= 0x01;
    cat_set_wrapped(f, f->tenant_id, 1, blob, n);

    close_store(f);
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_CORRUPT);
    assert_int_equal(tenant_load(f, f->tenant_id, &err), FV_E_CORRUPT);
    assert_non_null(strstr(err.msg, "root key version 1 does not unwrap"));
    assert_non_null(strstr(err.msg, fv_crypto_kek_id(f->kek)));
    /* a failed open is not cached as a success, nor does it poison others */
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_CORRUPT);
    assert_int_equal(fv_store_tenant_acquire(f->s, beta, &t), FV_OK);
    fv_store_tenant_release(t);

    /* the original blob opens it again (the failed open was not kept) */
    cat_set_wrapped(f, f->tenant_id, 1, orig, n);
    fx_acquire(f);
    assert_non_null(f->patient);
}

/* Tenant B's wrapped root key in tenant A's row: AD binds the tenant. */
static void test_fv_store_keys_tenant_load_root_of_other_tenant(void **state)
{
    struct fx *f = *state;
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    struct fv_error err;
    struct fv_tenant *t = NULL;
    int64_t beta = new_tenant(f, "beta");
    size_t n = cat_wrapped(f, beta, 1, blob, sizeof(blob));
    assert_true(n > 0);
    cat_set_wrapped(f, f->tenant_id, 1, blob, n);
    close_store(f);
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_CORRUPT);
    assert_int_equal(tenant_load(f, f->tenant_id, &err), FV_E_CORRUPT);
    assert_non_null(strstr(err.msg, "does not unwrap"));
    assert_int_equal(fv_store_tenant_acquire(f->s, beta, &t), FV_OK);
    fv_store_tenant_release(t);
}

/* Version 1's wrapped key in the version 2 row: AD binds the version. */
static void test_fv_store_keys_tenant_load_root_of_other_version(void **state)
{
    struct fx *f = *state;
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    struct fv_error err;
    struct fv_tenant *t = NULL;
    uint32_t v = 0;
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_tenant(f->s, f->tenant_id, &v, &err), FV_OK);
    assert_int_equal(v, 2);
    size_t n = cat_wrapped(f, f->tenant_id, 1, blob, sizeof(blob));
    cat_set_wrapped(f, f->tenant_id, 2, blob, n);
    close_store(f);
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_CORRUPT);
    assert_int_equal(tenant_load(f, f->tenant_id, &err), FV_E_CORRUPT);
    assert_non_null(strstr(err.msg, "root key version 2 does not unwrap"));
}

/* --------------------------------------------------- tenant key rotation */

static void test_fv_store_keys_rotate_tenant_ok(void **state)
{
    struct fx *f = *state;
    const struct fv_app *vault = NULL;
    const struct fv_form *person = vault_install(f, &vault);
    uint64_t pid[3], vid[3];
    char num[16], json[128];
    struct fv_error err;
    uint32_t lo = 0, hi = 0, v = 0;
    uint64_t pages = 0;

    for (int i = 0; i < 3; i++) {
        (void)snprintf(num, sizeof(num), "R-%d", i);
        fx_patient(f, num, 20 + i, &pid[i]);
        (void)snprintf(json, sizeof(json), "{\"Name\":\"n%d\",\"SSN\":\"123-45-%04d\"}", i, i);
        vid[i] = vault_insert(f, vault, person, json);
    }
    assert_int_equal(fv_store_vfs_scan(f->t->db_path, &lo, &hi, &pages), FV_OK);
    assert_int_equal(lo, 1);
    assert_int_equal(hi, 1);

    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_tenant(f->s, f->tenant_id, &v, &err), FV_OK);
    assert_int_equal(v, 2);
    struct fv_store_key_status k = status_of(f, f->tenant_id);
    assert_string_equal(k.job_phase, "fields");
    assert_int_equal(k.job_from, 1);
    assert_int_equal(k.job_to, 2);
    assert_int_equal(k.n_versions, 2);

    /* a second rotation while the job runs */
    fv_error_init(&err);
    v = 0;
    assert_int_equal(fv_store_keys_rotate_tenant(f->s, f->tenant_id, &v, &err), FV_E_CONFLICT);
    assert_int_equal(v, 0); /* ret_* untouched on failure */
    assert_non_null(strstr(err.msg, "still running"));

    char phases[64];
    jobs_finish(f, f->tenant_id, phases, sizeof(phases));
    /* one step per call: the fields batch, VACUUM, the destruction */
    assert_string_equal(phases, "pages,destroy,done");
    k = status_of(f, f->tenant_id);
    assert_string_equal(k.tenant_state, "active");
    assert_string_equal(k.kek_kind, "node");
    assert_int_equal(k.n_versions, 2);
    assert_int_equal(k.versions[0].version, 2);
    assert_string_equal(k.versions[0].state, "active");
    assert_string_equal(k.versions[0].kek_id, fv_crypto_kek_id(f->kek));
    assert_int_equal(k.versions[1].version, 1);
    assert_string_equal(k.versions[1].state, "destroyed");
    assert_string_equal(k.job_phase, "done");
    assert_string_equal(k.job_error, "");
    /* 3 field values and their 3 change-log images were re-sealed */
    assert_true(k.job_done >= 3);
    assert_int_equal(k.job_done, k.job_total);
    /* the old wrapped key is gone from the catalog, not just marked */
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    assert_int_equal(cat_wrapped(f, f->tenant_id, 1, blob, sizeof(blob)), 0);

    /* every page is under version 2 and every sealed value too */
    assert_int_equal(fv_store_vfs_scan(f->t->db_path, &lo, &hi, &pages), FV_OK);
    assert_int_equal(lo, 2);
    assert_int_equal(hi, 2);
    assert_true(pages > 0);
    int64_t old = -1;
    assert_int_equal(fv_store_field_count_old(f->t, 2, &old), FV_OK);
    assert_int_equal(old, 0);

    for (int i = 0; i < 3; i++) {
        (void)snprintf(num, sizeof(num), "R-%d", i);
        assert_patient(f, pid[i], num);
    }
    /* a write after the rotation, and a reopen with version 1 destroyed */
    uint64_t late = 0;
    fx_patient(f, "R-late", 50, &late);
    fx_reopen(f);
    assert_patient(f, late, "R-late");
    assert_int_equal(fv_store_app_get(f->t, "vault", &vault), FV_OK);
    person = fv_model_app_form(vault, "Person");
    for (int i = 0; i < 3; i++) {
        json_t *rows = NULL;
        char cursor[128], ssn[16];
        struct fv_store_query q = {.form = person, .id = vid[i], .limit = 1};
        assert_int_equal(fv_store_query(f->t, vault, &q, &rows, cursor, sizeof(cursor)), FV_OK);
        (void)snprintf(ssn, sizeof(ssn), "123-45-%04d", i);
        assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "SSN")),
                            ssn);
        json_decref(rows);
    }
    uint32_t kv[FV_CRYPTO_KEYRING_MAX_VERSIONS];
    assert_int_equal(fv_crypto_keyring_versions(f->t->keys, kv, FV_ARRAY_LEN(kv)), 1);
    assert_int_equal(kv[0], 2);

    /* the job is done: the next rotation may start */
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_tenant(f->s, f->tenant_id, &v, &err), FV_OK);
    assert_int_equal(v, 3);
    jobs_finish(f, f->tenant_id, phases, sizeof(phases));
    assert_patient(f, late, "R-late");
}

static void test_fv_store_keys_rotate_tenant_shredded_or_unknown(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    uint32_t v = 0;
    fv_error_init(&err);
    assert_int_equal(fv_store_tenant_shred(f->s, f->tenant_id, &err), FV_OK);
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_tenant(f->s, f->tenant_id, &v, &err),
                     FV_E_KEY_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "shredded"));
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_tenant(f->s, 9999, &v, &err), FV_E_NO_OWNER);
    assert_non_null(strstr(err.msg, "no tenant with ID 9999"));
    assert_int_equal(v, 0);
}

/* ------------------------------------------------------------ KEK rotation */

static void test_fv_store_keys_rotate_kek_ok(void **state)
{
    struct fx *f = *state;
    struct fv_store *s = NULL;
    struct fv_error err;
    uint64_t id = 0;
    size_t n = 0;
    int64_t beta = new_tenant(f, "beta");
    fx_patient(f, "K-1", 33, &id);
    struct fv_kek *kek2 = second_kek(f, "kek2.key");

    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_kek(f->s, kek2, &n, &err), FV_OK);
    assert_int_equal(n, 3); /* acme v1, beta v1 and node.key */
    struct fv_store_key_status k = status_of(f, beta);
    assert_string_equal(k.versions[0].kek_id, fv_crypto_kek_id(kek2));
    close_store(f);

    /* the old KEK no longer opens the data dir */
    assert_int_equal(open_with(f, f->kek, &s, &err), FV_E_KEY_UNAVAILABLE);
    assert_null(s);
    assert_non_null(strstr(err.msg, "wrong KEK"));

    assert_int_equal(open_with(f, kek2, &f->s, &err), FV_OK);
    fx_acquire(f);
    assert_patient(f, id, "K-1");
    k = status_of(f, f->tenant_id);
    assert_string_equal(k.versions[0].kek_id, fv_crypto_kek_id(kek2));

    /* rotating to the KEK in use */
    fv_error_init(&err);
    n = 42;
    assert_int_equal(fv_store_keys_rotate_kek(f->s, kek2, &n, &err), FV_E_INVALID);
    assert_int_equal(n, 42);
    assert_non_null(strstr(err.msg, "is the KEK in use"));
    close_store(f); /* before kek2, which the store borrows */
    fv_crypto_kek_free(kek2);
}

/* ----------------------------------------------------------------- BYOK */

static void test_fv_store_keys_import_ok(void **state)
{
    struct fx *f = *state;
    struct fv_secret *key = NULL;
    struct fv_error err;
    char kid[FV_CRYPTO_KEK_ID_MAX], want[FV_CRYPTO_KEK_ID_MAX];
    char *pem = NULL;
    int64_t expires = 0;
    uint64_t id = 0;
    fx_patient(f, "B-1", 30, &id);

    fv_error_init(&err);
    int64_t before = fv_time_now_ms();
    assert_int_equal(fv_store_keys_import_params(f->s, f->tenant_id, &pem, &expires, &err), FV_OK);
    assert_non_null(strstr(pem, "-----BEGIN PUBLIC KEY-----"));
    assert_true(expires >= before + 23 * 3600 * INT64_C(1000));
    assert_true(expires <= fv_time_now_ms() + 24 * 3600 * INT64_C(1000));
    fv_free(pem);

    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    assert_int_equal(byok_import(f, f->tenant_id, key, kid, sizeof(kid), &err), FV_OK);
    assert_int_equal(strncmp(kid, "imported:", 9), 0);
    assert_int_equal(fv_store_keys_imported_id(key, want, sizeof(want)), FV_OK);
    assert_string_equal(kid, want);

    struct fv_store_key_status k = status_of(f, f->tenant_id);
    assert_string_equal(k.kek_kind, "imported");
    assert_string_equal(k.kek_id, kid);
    assert_string_equal(k.kek_state, "active");
    assert_string_equal(k.versions[0].kek_id, kid);
    /* the transport key is used up */
    assert_int_equal(
        cat_count(f, "SELECT count(*) FROM key_imports WHERE tenant_id = ?1", f->tenant_id), 0);

    fx_reopen(f); /* root keys now unwrap through the imported KEK */
    assert_patient(f, id, "B-1");
    assert_non_null(f->t->tenant_kek);
    assert_string_equal(fv_crypto_kek_id(f->t->tenant_kek), kid);
    fv_crypto_secret_free(key);
}

static void test_fv_store_keys_revoke_and_reimport(void **state)
{
    struct fx *f = *state;
    struct fv_secret *key = NULL, *other = NULL;
    struct fv_error err;
    struct fv_tenant *t = NULL;
    char kid[FV_CRYPTO_KEK_ID_MAX], kid2[FV_CRYPTO_KEK_ID_MAX];
    uint64_t id = 0;
    fx_patient(f, "V-1", 31, &id);
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    assert_int_equal(fv_crypto_secret_random(&other, 32), FV_OK);
    assert_int_equal(byok_import(f, f->tenant_id, key, kid, sizeof(kid), &err), FV_OK);

    fv_error_init(&err);
    assert_int_equal(fv_store_keys_revoke(f->s, f->tenant_id, &err), FV_OK);
    fv_store_tenant_release(f->t);
    f->t = NULL;
    /* the open tenant: unavailable once the watcher has run */
    assert_int_equal(fv_store_keys_refresh(f->s, true), FV_OK);
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_KEY_UNAVAILABLE);
    assert_int_equal(tenant_load(f, f->tenant_id, &err), FV_E_KEY_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "revoked"));
    struct fv_store_key_status k = status_of(f, f->tenant_id);
    assert_string_equal(k.kek_state, "revoked");
    /* the material is destroyed, not just flagged */
    assert_int_equal(cat_count(f,
                               "SELECT count(*) FROM tenant_kek WHERE tenant_id = ?1 AND "
                               "material IS NULL",
                               f->tenant_id),
                     1);
    /* and a fresh store does not open it either */
    close_store(f);
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_KEY_UNAVAILABLE);

    /* another key does not restore it */
    assert_int_equal(byok_import(f, f->tenant_id, other, kid2, sizeof(kid2), &err), FV_E_INVALID);
    assert_non_null(strstr(err.msg, "not the revoked tenant KEK"));
    assert_non_null(strstr(err.msg, kid));
    k = status_of(f, f->tenant_id);
    assert_string_equal(k.kek_state, "revoked");
    assert_string_equal(k.kek_id, kid);

    /* the same key does (with new import params) */
    assert_int_equal(byok_import(f, f->tenant_id, key, kid2, sizeof(kid2), &err), FV_OK);
    assert_string_equal(kid2, kid);
    assert_int_equal(fv_store_keys_refresh(f->s, true), FV_OK);
    fx_acquire(f);
    assert_patient(f, id, "V-1");
    k = status_of(f, f->tenant_id);
    assert_string_equal(k.kek_state, "active");

    /* the open-tenant path: revoke, refresh, re-import, refresh */
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_revoke(f->s, f->tenant_id, &err), FV_OK);
    assert_int_equal(fv_store_keys_refresh(f->s, false), FV_OK); /* the epoch changed */
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_KEY_UNAVAILABLE);
    assert_int_equal(byok_import(f, f->tenant_id, key, kid2, sizeof(kid2), &err), FV_OK);
    assert_int_equal(fv_store_keys_refresh(f->s, false), FV_OK);
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_OK);
    fv_store_tenant_release(t);
    assert_patient(f, id, "V-1");

    fv_crypto_secret_free(key);
    fv_crypto_secret_free(other);
}

static void test_fv_store_keys_import_errors(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    char kid[FV_CRYPTO_KEK_ID_MAX] = "untouched";
    uint8_t garbage[384];
    char *pem = NULL;
    int64_t expires = 0;
    memset(garbage, 0x5a, sizeof(garbage));

    /* no transport key */
    fv_error_init(&err);
    assert_int_equal(
        fv_store_keys_import(f->s, f->tenant_id, garbage, sizeof(garbage), kid, sizeof(kid), &err),
        FV_E_NOT_FOUND);
    assert_non_null(strstr(err.msg, "import-params"));

    /* garbage for a transport key, and a 16-byte key */
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_import_params(f->s, f->tenant_id, &pem, &expires, &err), FV_OK);
    fv_error_init(&err);
    assert_int_equal(
        fv_store_keys_import(f->s, f->tenant_id, garbage, sizeof(garbage), kid, sizeof(kid), &err),
        FV_E_INVALID);
    assert_non_null(strstr(err.msg, "does not decrypt"));
    struct fv_secret *short_key = NULL;
    uint8_t wrapped[1024];
    size_t wlen = 0;
    assert_int_equal(fv_crypto_secret_copy(&short_key, garbage, 16), FV_OK);
    assert_int_equal(fv_crypto_transport_wrap(wrapped, sizeof(wrapped), &wlen, short_key, pem),
                     FV_OK);
    fv_crypto_secret_free(short_key);
    fv_error_init(&err);
    assert_int_equal(
        fv_store_keys_import(f->s, f->tenant_id, wrapped, wlen, kid, sizeof(kid), &err),
        FV_E_INVALID);
    assert_non_null(strstr(err.msg, "32 bytes"));
    fv_free(pem);
    assert_string_equal(kid, "untouched");

    /* an expired transport key */
    struct fv_secret *key = NULL;
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_import_params(f->s, f->tenant_id, &pem, &expires, &err), FV_OK);
    assert_int_equal(fv_crypto_transport_wrap(wrapped, sizeof(wrapped), &wlen, key, pem), FV_OK);
    fv_free(pem);
    sqlite3 *db = cat_open(f);
    assert_int_equal(sqlite3_exec(db, "UPDATE key_imports SET expires = 1", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    fv_error_init(&err);
    assert_int_equal(
        fv_store_keys_import(f->s, f->tenant_id, wrapped, wlen, kid, sizeof(kid), &err),
        FV_E_INVALID);
    assert_non_null(strstr(err.msg, "expired"));
    fv_crypto_secret_free(key);
    /* nothing changed: still under the node KEK */
    struct fv_store_key_status k = status_of(f, f->tenant_id);
    assert_string_equal(k.kek_kind, "node");

    /* revoke / restore refused where they make no sense */
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_revoke(f->s, f->tenant_id, &err), FV_E_INVALID);
    assert_non_null(strstr(err.msg, "node KEK"));
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_restore(f->s, f->tenant_id, &err), FV_E_INVALID);
    assert_non_null(strstr(err.msg, "node KEK"));
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_import_params(f->s, 9999, &pem, &expires, &err), FV_E_NO_OWNER);
    assert_non_null(strstr(err.msg, "no tenant with ID 9999"));
}

static void test_fv_store_keys_restore_imported_refused(void **state)
{
    struct fx *f = *state;
    struct fv_secret *key = NULL;
    struct fv_error err;
    char kid[FV_CRYPTO_KEK_ID_MAX];
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    assert_int_equal(byok_import(f, f->tenant_id, key, kid, sizeof(kid), &err), FV_OK);
    fv_crypto_secret_free(key);
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_revoke(f->s, f->tenant_id, &err), FV_OK);
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_restore(f->s, f->tenant_id, &err), FV_E_INVALID);
    assert_non_null(strstr(err.msg, "importing it again"));
    struct fv_store_key_status k = status_of(f, f->tenant_id);
    assert_string_equal(k.kek_state, "revoked");
}

/*
 * A BYOK tenant: its new root key version is wrapped by its own KEK, the
 * job runs as for any tenant, a KEK rotation re-wraps the imported KEK (not
 * the root keys, which it wraps) and a revoked tenant cannot rotate.
 */
static void test_fv_store_keys_rotate_imported_tenant(void **state)
{
    struct fx *f = *state;
    struct fv_secret *key = NULL;
    struct fv_error err;
    char kid[FV_CRYPTO_KEK_ID_MAX], phases[64];
    uint32_t v = 0;
    uint64_t id = 0;
    size_t n = 0;
    fx_patient(f, "I-1", 35, &id);
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    assert_int_equal(byok_import(f, f->tenant_id, key, kid, sizeof(kid), &err), FV_OK);
    fv_crypto_secret_free(key);

    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_tenant(f->s, f->tenant_id, &v, &err), FV_OK);
    assert_int_equal(v, 2);
    jobs_finish(f, f->tenant_id, phases, sizeof(phases));
    struct fv_store_key_status k = status_of(f, f->tenant_id);
    assert_int_equal(k.versions[0].version, 2);
    assert_string_equal(k.versions[0].kek_id, kid);
    assert_string_equal(k.versions[1].state, "destroyed");
    assert_patient(f, id, "I-1");

    struct fv_kek *kek2 = second_kek(f, "kek2.key");
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_kek(f->s, kek2, &n, &err), FV_OK);
    assert_int_equal(n, 2); /* the imported KEK and node.key */
    close_store(f);
    assert_int_equal(open_with(f, kek2, &f->s, &err), FV_OK);
    fx_acquire(f);
    assert_patient(f, id, "I-1");
    k = status_of(f, f->tenant_id);
    assert_string_equal(k.versions[0].kek_id, kid); /* still the tenant's own */

    fv_error_init(&err);
    assert_int_equal(fv_store_keys_revoke(f->s, f->tenant_id, &err), FV_OK);
    fv_error_init(&err);
    v = 0;
    assert_int_equal(fv_store_keys_rotate_tenant(f->s, f->tenant_id, &v, &err),
                     FV_E_KEY_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "revoked"));
    assert_int_equal(v, 0);
    close_store(f);
    fv_crypto_kek_free(kek2);
}

static void copy_file(const char *from, const char *to)
{
    size_t len = 0;
    uint8_t *b = slurp(from, &len);
    assert_non_null(b);
    FILE *fp = fopen(to, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    free(b);
}

/*
 * An interrupted KEK rotation is finished by running it again, also with a
 * BYOK tenant: when the process stops after the catalog commit and before
 * node.key is rewritten, the rerun (opened with the old KEK, which node.key
 * still needs) must leave the imported KEK's material, already re-wrapped
 * under the new KEK, alone.
 */
static void test_fv_store_keys_rotate_kek_rerun_with_imported_tenant(void **state)
{
    struct fx *f = *state;
    struct fv_secret *key = NULL;
    struct fv_error err;
    char kid[FV_CRYPTO_KEK_ID_MAX], nk[512], saved[600];
    size_t n = 0;
    uint64_t id = 0;
    fx_patient(f, "C-1", 36, &id);
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    assert_int_equal(byok_import(f, f->tenant_id, key, kid, sizeof(kid), &err), FV_OK);
    fv_crypto_secret_free(key);
    struct fv_kek *kek2 = second_kek(f, "kek2.key");
    fx_path(f, "node.key", nk, sizeof(nk));
    (void)snprintf(saved, sizeof(saved), "%s/node.key.before", f->dir);
    copy_file(nk, saved);
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_kek(f->s, kek2, &n, &err), FV_OK);
    close_store(f);
    copy_file(saved, nk); /* as if stopped before node.key was rewritten */

    fx_open_store(f);
    fv_error_init(&err);
    int rc = fv_store_keys_rotate_kek(f->s, kek2, &n, &err);
    close_store(f);
    if (rc != FV_OK) {
        fv_crypto_kek_free(kek2);
        fail_msg("rerun: %s %s", fv_strerror(rc), err.msg);
    }
    assert_int_equal(open_with(f, kek2, &f->s, &err), FV_OK);
    fx_acquire(f);
    assert_patient(f, id, "C-1");
    close_store(f);
    fv_crypto_kek_free(kek2);
}

/* ------------------------------------------------------------- shredding */

static void test_fv_store_tenant_shred_ok(void **state)
{
    struct fx *f = *state;
    struct fv_error err;
    struct fv_tenant *t = NULL;
    struct fv_store_tenant_info info;
    uint8_t hash[FV_STORE_TOKEN_HASH_BYTES], hash2[FV_STORE_TOKEN_HASH_BYTES];
    struct fv_store_token tok = {.tenant_id = f->tenant_id, .scopes = "ZohoCreator.report.READ"};
    struct fv_store_token found;
    int64_t tok_id = 0;
    uint32_t v = 0;
    char *pem = NULL;
    int64_t expires = 0;

    /* something in every per-tenant key table: a token, a running
     * rotation job, a transport key */
    memset(hash, 0x11, sizeof(hash));
    memset(hash2, 0x22, sizeof(hash2));
    assert_int_equal(fv_store_token_insert(f->s, &tok, hash, &tok_id), FV_OK);
    int64_t beta = new_tenant(f, "beta");
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_rotate_tenant(f->s, f->tenant_id, &v, &err), FV_OK);
    assert_int_equal(fv_store_keys_import_params(f->s, f->tenant_id, &pem, &expires, &err), FV_OK);
    fv_free(pem);
    const char *const per_tenant[] = {
        "SELECT count(*) FROM tenant_keys WHERE tenant_id = ?1",
        "SELECT count(*) FROM key_jobs WHERE tenant_id = ?1",
        "SELECT count(*) FROM key_imports WHERE tenant_id = ?1",
        "SELECT count(*) FROM tokens WHERE tenant_id = ?1",
    };
    for (size_t i = 0; i < FV_ARRAY_LEN(per_tenant); i++)
        assert_true(cat_count(f, per_tenant[i], f->tenant_id) > 0);

    fv_error_init(&err);
    assert_int_equal(fv_store_tenant_shred(f->s, f->tenant_id, &err), FV_OK);
    for (size_t i = 0; i < FV_ARRAY_LEN(per_tenant); i++)
        assert_int_equal(cat_count(f, per_tenant[i], f->tenant_id), 0);
    assert_int_equal(
        cat_count(f, "SELECT count(*) FROM tenant_kek WHERE tenant_id = ?1", f->tenant_id), 0);
    /* beta keeps its key */
    assert_int_equal(cat_count(f, per_tenant[0], beta), 1);

    /* the open tenant: unavailable once the watcher has seen the epoch */
    fv_store_tenant_release(f->t);
    f->t = NULL;
    assert_int_equal(fv_store_keys_refresh(f->s, false), FV_OK);
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_KEY_UNAVAILABLE);
    assert_int_equal(tenant_load(f, f->tenant_id, &err), FV_E_KEY_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "shredded"));
    assert_int_equal(fv_store_tenant_acquire(f->s, beta, &t), FV_OK);
    fv_store_tenant_release(t);

    /* the rotation job went with it */
    size_t pending = 9;
    fv_error_init(&err);
    assert_int_equal(fv_store_keys_jobs_run(f->s, 100, &pending, NULL, &err), FV_OK);
    assert_int_equal(pending, 0);

    assert_int_equal(fv_store_tenant_find(f->s, "acme", &info), FV_OK);
    assert_string_equal(info.state, "shredded");
    struct fv_store_key_status k = status_of(f, f->tenant_id);
    assert_string_equal(k.tenant_state, "shredded");
    assert_int_equal(k.n_versions, 0);
    assert_string_equal(k.job_phase, "");

    /* twice, unknown, tokens */
    fv_error_init(&err);
    assert_int_equal(fv_store_tenant_shred(f->s, f->tenant_id, &err), FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "already shredded"));
    fv_error_init(&err);
    assert_int_equal(fv_store_tenant_shred(f->s, 9999, &err), FV_E_NO_OWNER);
    assert_non_null(strstr(err.msg, "no tenant with ID 9999"));
    assert_int_equal(fv_store_token_insert(f->s, &tok, hash2, &tok_id), FV_E_KEY_UNAVAILABLE);
    assert_int_equal(fv_store_token_lookup(f->s, hash, &found), FV_E_AUTH);

    /* a fresh store */
    close_store(f);
    fx_open_store(f);
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &t), FV_E_KEY_UNAVAILABLE);
    assert_int_equal(fv_store_tenant_acquire(f->s, beta, &t), FV_OK);
    fv_store_tenant_release(t);
}

/*
 * After shredding and the catalog truncation, neither the files' bytes nor
 * the catalog's decrypted pages hold the tenant's wrapped root key. The
 * decrypted view is the one that can fail (page bodies on disk are
 * ciphertext whatever happens), so it is first shown to find the blob.
 */
static void test_fv_store_tenant_shred_catalog_bytes(void **state)
{
    struct fx *f = *state;
    uint8_t blob[FV_CRYPTO_WRAPPED_MAX];
    char db_path[512], wal_path[512];
    struct fv_error err;
    size_t len = 0;
    struct stat sb;
    fx_path(f, "catalog.db", db_path, sizeof(db_path));
    fx_path(f, "catalog.db-wal", wal_path, sizeof(wal_path));
    size_t n = cat_wrapped(f, f->tenant_id, 1, blob, sizeof(blob));
    assert_true(n >= 32);

    fv_store_keys_catalog_truncate(f->s); /* move it into catalog.db */
    uint8_t *plain = vfs_plain_pages(db_path, &len);
    assert_true(contains_window(plain, len, blob, n)); /* control */
    free(plain);

    fv_error_init(&err);
    assert_int_equal(fv_store_tenant_shred(f->s, f->tenant_id, &err), FV_OK);
    /* the shred truncated the WAL itself (store.h) */
    assert_true(stat(wal_path, &sb) != 0 || sb.st_size == 0);
    fv_store_keys_catalog_truncate(f->s);

    plain = vfs_plain_pages(db_path, &len);
    assert_false(contains_window(plain, len, blob, n));
    free(plain);
    uint8_t *raw = slurp(db_path, &len);
    assert_non_null(raw);
    assert_false(contains_window(raw, len, blob, n));
    free(raw);
    raw = slurp(wal_path, &len);
    assert_false(contains_window(raw, len, blob, n));
    free(raw);
    /* the truncating checkpoint left no frames behind */
    assert_true(stat(wal_path, &sb) != 0 || sb.st_size == 0);
}

/* ------------------------------------------------- allocation failures */

/*
 * Under the allocation hook: open a new data dir, create a tenant, rotate
 * its key, run the job to the end and read the status; *ret_used =
 * allocations made. The first error is returned. Then, without the hook, a
 * job that an injected failure stopped must finish when run again (a
 * failed step is retried) and leave version 2 alone, pages included.
 */
static int torture_pass(struct fx *f, long *ret_used)
{
    char data[300];
    struct fv_store_options o = fx_opts(f, data, sizeof(data));
    struct fv_store *s = NULL;
    struct fv_store_tenant_info info;
    struct fv_store_key_status *st = NULL;
    struct fv_tenant *t = NULL;
    struct fv_error err;
    size_t n = 0, pending = 1;
    uint32_t v = 0;
    fv_error_init(&err);
    int rc = fv_store_open(&o, &s, &err);
    if (rc == FV_OK)
        rc = fv_store_tenant_create(s, "acme", "us", &info, &err);
    if (rc == FV_OK)
        rc = fv_store_tenant_acquire(s, info.id, &t);
    if (rc == FV_OK)
        rc = fv_store_keys_rotate_tenant(s, info.id, &v, &err);
    bool queued = rc == FV_OK;
    for (int i = 0; rc == FV_OK && pending > 0 && i < 20; i++)
        rc = fv_store_keys_jobs_run(s, 1000, &pending, NULL, &err);
    if (rc == FV_OK && pending > 0)
        rc = FV_E_BUSY;
    if (rc == FV_OK)
        rc = fv_store_keys_status(s, &st, &n);
    fv_free(st);
    st = NULL;
    *ret_used = fv_mem_count();
    fv_mem_fail_at(0, false);
    assert_true(rc == FV_OK || rc < 0);

    if (queued) {
        pending = 1;
        for (int i = 0; pending > 0 && i < 20; i++) {
            fv_error_init(&err);
            int jrc = fv_store_keys_jobs_run(s, 1000, &pending, NULL, &err);
            if (jrc != FV_OK)
                fail_msg("job after an injected failure: %s %s", fv_strerror(jrc), err.msg);
        }
        assert_int_equal(pending, 0);
        assert_int_equal(fv_store_keys_status(s, &st, &n), FV_OK);
        assert_int_equal(n, 1);
        assert_int_equal(st[0].n_versions, 2);
        assert_string_equal(st[0].versions[0].state, "active");
        assert_string_equal(st[0].versions[1].state, "destroyed");
        assert_string_equal(st[0].job_phase, "done");
        assert_string_equal(st[0].job_error, "");
        fv_free(st);
        uint32_t lo = 0, hi = 0;
        uint64_t pages = 0;
        assert_int_equal(fv_store_vfs_scan(t->db_path, &lo, &hi, &pages), FV_OK);
        assert_int_equal(lo, 2);
        assert_int_equal(hi, 2);
        assert_int_equal(fv_crypto_keyring_write_version(t->keys), 2);
    }
    if (t)
        fv_store_tenant_release(t);
    fv_store_close(s);
    return rc;
}

static void test_fv_store_keys_alloc_failure_torture(void **state)
{
    struct fx *f = *state;
    /* The loop tests allocation failures, not durability: on tmpfs, when
     * there is one, its ~130 passes of fsync'd commits take a second
     * instead of ten. The KEK stays the fixture's. */
    struct fx g = *f;
    char shm[] = "/dev/shm/fv-keys-XXXXXX";
    bool on_shm = mkdtemp(shm) != NULL;
    if (on_shm)
        (void)fv_strlcpy(g.dir, shm, sizeof(g.dir));
    char data[512];
    long n, used = 0;
    int rc = FV_OK;
    for (n = 1; n < 5000; n++) {
        fv_mem_fail_at(n, false);
        rc = torture_pass(&g, &used);
        /* a fresh data dir for the next pass */
        fx_path(&g, "", data, sizeof(data));
        (void)nftw(data, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        if (used < n)
            break; /* no failure was injected */
    }
    if (on_shm)
        (void)nftw(shm, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    assert_true(n < 5000);
    assert_int_equal(rc, FV_OK); /* the last pass, without a failure, succeeds */
    print_message("allocation failure points checked: %ld\n", n - 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
#define TB(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_bare, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TB(test_fv_store_keys_node_load_creates_node_key),
        T(test_fv_store_keys_node_load_same_kek_reopens),
        T(test_fv_store_keys_node_load_wrong_kek),
        T(test_fv_store_keys_node_load_corrupt_wrapped),
        T(test_fv_store_keys_node_load_not_hex_or_json),
        T(test_fv_store_keys_node_load_missing_with_catalog),
        TB(test_fv_store_keys_node_load_no_kek),
        T(test_fv_store_keys_tenant_load_corrupt_root),
        T(test_fv_store_keys_tenant_load_root_of_other_tenant),
        T(test_fv_store_keys_tenant_load_root_of_other_version),
        T(test_fv_store_keys_rotate_tenant_ok),
        T(test_fv_store_keys_rotate_tenant_shredded_or_unknown),
        T(test_fv_store_keys_rotate_kek_ok),
        T(test_fv_store_keys_import_ok),
        T(test_fv_store_keys_revoke_and_reimport),
        T(test_fv_store_keys_import_errors),
        T(test_fv_store_keys_restore_imported_refused),
        T(test_fv_store_keys_rotate_imported_tenant),
        T(test_fv_store_keys_rotate_kek_rerun_with_imported_tenant),
        T(test_fv_store_tenant_shred_ok),
        T(test_fv_store_tenant_shred_catalog_bytes),
        TB(test_fv_store_keys_alloc_failure_torture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
