/*
 * test_field_crypt.c: field-level encryption (store/field_crypt.c and its
 * use in records.c and changelog.c): round trip, associated-data binding,
 * tampering, blind-index criteria across two live key versions, refused
 * operators, change-log images without plaintext, unique checks, app
 * validation and upgrades, and re-encryption for a tenant key rotation.
 *
 * Each test runs on its own keyring (v1, later v2) swapped into t->keys, so
 * that removing a field-key version never touches the keys of the page
 * encryption (the VFS holds its own reference to the tenant's keyring).
 */
#include "store_fixture.h"

#include "store/store_int.h"

static const char vault_json[] =
    "{\"format\":1,\"link_name\":\"vault\",\"forms\":["
    "{\"link_name\":\"Person\",\"fields\":["
    "{\"link_name\":\"Name\",\"type\":\"single_line\"},"
    "{\"link_name\":\"SSN\",\"type\":\"single_line\",\"encrypt\":true,\"unique\":true},"
    "{\"link_name\":\"Salary\",\"type\":\"number\",\"encrypt\":true},"
    "{\"link_name\":\"Home\",\"type\":\"address\",\"encrypt\":true},"
    "{\"link_name\":\"Born\",\"type\":\"date\",\"encrypt\":true}]},"
    "{\"link_name\":\"Visit\",\"fields\":["
    "{\"link_name\":\"Who\",\"type\":\"lookup\","
    "\"lookup\":{\"form\":\"Person\",\"display_field\":\"SSN\"}},"
    "{\"link_name\":\"Many\",\"type\":\"lookup\","
    "\"lookup\":{\"form\":\"Person\",\"display_field\":\"SSN\",\"multi\":true}}]}],"
    "\"reports\":[{\"link_name\":\"All_People\",\"form\":\"Person\"}]}";

struct vx {
    struct fx fx;
    struct fv_keyring *mine;
    struct fv_keyring *orig;
    const struct fv_form *person;
    char table[32];
};

static void add_version(struct fv_keyring *kr, uint32_t v, bool write)
{
    struct fv_secret *root = NULL;
    assert_int_equal(fv_crypto_secret_random(&root, 32), FV_OK);
    assert_int_equal(fv_crypto_keyring_add(kr, v, root), FV_OK);
    fv_crypto_secret_free(root);
    if (write)
        assert_int_equal(fv_crypto_keyring_set_write(kr, v), FV_OK);
}

static void vx_lookup(struct vx *v)
{
    assert_int_equal(fv_store_app_get(v->fx.t, "vault", &v->fx.app), FV_OK);
    v->person = fv_model_app_form(v->fx.app, "Person");
    assert_non_null(v->person);
}

static int vx_setup(void **state)
{
    struct vx *v = calloc(1, sizeof(*v));
    struct fx *f = &v->fx;
    struct fv_store_tenant_info info;
    struct fv_error err;
    fx_mkdtemp(f);
    fx_open_store(f);
    fv_error_init(&err);
    assert_int_equal(fv_store_tenant_create(f->s, "acme", "us", &info, &err), FV_OK);
    f->tenant_id = info.id;
    assert_int_equal(fv_store_tenant_acquire(f->s, f->tenant_id, &f->t), FV_OK);
    int rc = fv_store_app_install(f->t, vault_json, sizeof(vault_json) - 1, "test", &err);
    if (rc != FV_OK)
        fail_msg("install: %s %s", fv_strerror(rc), err.msg);
    vx_lookup(v);
    (void)snprintf(v->table, sizeof(v->table), "f_vault__Person");
    assert_int_equal(fv_crypto_keyring_new(&v->mine, "test"), FV_OK);
    add_version(v->mine, 1, true);
    v->orig = f->t->keys;
    f->t->keys = v->mine;
    *state = v;
    return 0;
}

static int vx_teardown(void **state)
{
    struct vx *v = *state;
    if (v) {
        if (v->fx.t)
            v->fx.t->keys = v->orig;
        fv_crypto_keyring_unref(v->mine);
        fx_teardown((void **)&(struct fx *){&v->fx});
        /* fx_teardown freed &v->fx == v */
    }
    return 0;
}

static uint64_t vx_insert(struct vx *v, const char *json)
{
    uint64_t id = 0;
    struct fv_error err;
    int rc = fx_insert(&v->fx, v->person, json, &id, &err);
    if (rc != FV_OK)
        fail_msg("insert %s: %s %s", json, fv_strerror(rc), err.msg);
    return id;
}

/* Query one record by ID: the store's result code, *ret the record. */
static int vx_get(struct vx *v, uint64_t id, json_t **ret)
{
    json_t *rows = NULL;
    char cursor[128];
    struct fv_store_query q = {.form = v->person, .id = id, .limit = 1};
    int rc = fv_store_query(v->fx.t, v->fx.app, &q, &rows, cursor, sizeof(cursor));
    if (rc == FV_OK) {
        *ret = json_incref(json_array_get(rows, 0));
        json_decref(rows);
    }
    return rc;
}

static int64_t vx_count(struct vx *v, const char *criteria)
{
    struct fv_sql_where w;
    int64_t n = -1;
    fx_where(&v->fx, v->person, criteria, &w);
    assert_int_equal(fv_store_count(v->fx.t, v->person, &w, &n), FV_OK);
    fv_model_where_release(&w);
    return n;
}

/* Run SQL on the tenant's writer connection (as the writer). */
static void vx_sql(struct vx *v, const char *sql)
{
    fv_store_writer_enter(v->fx.t);
    char *msg = NULL;
    int src = sqlite3_exec(v->fx.t->writer->db, sql, NULL, NULL, &msg);
    fv_store_writer_leave(v->fx.t);
    if (src != SQLITE_OK)
        fail_msg("sql %s: %s", sql, msg ? msg : "?");
    sqlite3_free(msg);
}

/* First column of the first row of sql as a new string, or NULL. */
static char *vx_sql_text(struct vx *v, const char *sql)
{
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    fv_store_writer_enter(v->fx.t);
    assert_int_equal(sqlite3_prepare_v2(v->fx.t->writer->db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    fv_store_writer_leave(v->fx.t);
    return out;
}

static char *changelog_text(struct vx *v)
{
    json_t *arr = NULL;
    assert_int_equal(fv_store_changelog_read(v->fx.t, 0, 100000, &arr), FV_OK);
    char *s = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    assert_non_null(s);
    return s;
}

/* ------------------------------------------------------------------ tests */

static void test_fv_store_field_round_trip(void **state)
{
    struct vx *v = *state;
    uint64_t id = vx_insert(v, "{\"Name\":\"Ann\",\"SSN\":\"123-45-6789\",\"Salary\":52000,"
                               "\"Home\":{\"address_line_1\":\"1 Elm St\",\"district_city\":"
                               "\"Springfield\"},\"Born\":\"04-Jul-1980\"}");
    json_t *row = NULL;
    assert_int_equal(vx_get(v, id, &row), FV_OK);
    assert_string_equal(json_string_value(json_object_get(row, "SSN")), "123-45-6789");
    assert_string_equal(json_string_value(json_object_get(row, "Salary")), "52000");
    assert_string_equal(json_string_value(json_object_get(row, "Born")), "04-Jul-1980");
    json_t *home = json_object_get(row, "Home");
    assert_string_equal(json_string_value(json_object_get(home, "district_city")), "Springfield");
    assert_string_equal(json_string_value(json_object_get(row, "Name")), "Ann");
    json_decref(row);

    /* stored: sealed values and a blind index as raw bytes, never the value */
    char sql[512];
    (void)snprintf(sql, sizeof(sql),
                   "SELECT instr(c_SSN, CAST('123-45-6789' AS BLOB)) + instr(c_SSN, CAST('6789' AS "
                   "BLOB)) + instr(c_Home, CAST('Springfield' AS BLOB)) + instr(c_SSN__bidx, "
                   "CAST('6789' AS BLOB)) FROM %s WHERE ID = %llu",
                   v->table, (unsigned long long)id);
    char *raw = vx_sql_text(v, sql);
    assert_string_equal(raw, "0");
    free(raw);
    /* BLOBs: the sealed value is header + nonce + ciphertext + tag, the blind index 16 bytes */
    (void)snprintf(sql, sizeof(sql),
                   "SELECT typeof(c_SSN) || ' ' || typeof(c_SSN__bidx) || ' ' || length(c_SSN) || "
                   "' ' || length(c_SSN__bidx) || ' ' || hex(substr(c_SSN, 1, 5)) FROM %s WHERE "
                   "ID = %llu",
                   v->table, (unsigned long long)id);
    raw = vx_sql_text(v, sql);
    char want[128];
    /* "123-45-6789" encodes as one TEXT column: tag, 4-byte length, 11 bytes */
    (void)snprintf(want, sizeof(want), "blob blob %d 16 0100000001",
                   1 + 4 + 11 + FV_STORE_FIELD_OVERHEAD);
    assert_string_equal(raw, want);
    free(raw);
    /* composite: no blind index */
    (void)snprintf(sql, sizeof(sql), "SELECT coalesce(c_Home__bidx, 'none') FROM %s", v->table);
    raw = vx_sql_text(v, sql);
    assert_string_equal(raw, "none");
    free(raw);

    /* empty values stay NULL and read back empty */
    uint64_t id2 = vx_insert(v, "{\"Name\":\"Bob\"}");
    assert_int_equal(vx_get(v, id2, &row), FV_OK);
    assert_string_equal(json_string_value(json_object_get(row, "SSN")), "");
    json_decref(row);
    (void)snprintf(sql, sizeof(sql), "SELECT coalesce(c_SSN, 'null') FROM %s WHERE ID = %llu",
                   v->table, (unsigned long long)id2);
    raw = vx_sql_text(v, sql);
    assert_string_equal(raw, "null");
    free(raw);
}

static void test_fv_store_field_ad_binds_record(void **state)
{
    struct vx *v = *state;
    uint64_t a = vx_insert(v, "{\"SSN\":\"111-11-1111\",\"Salary\":1}");
    uint64_t b = vx_insert(v, "{\"SSN\":\"222-22-2222\",\"Salary\":2}");
    json_t *row = NULL;
    char sql[512];
    /* the sealed SSN of a copied into b: fails to open for b */
    (void)snprintf(sql, sizeof(sql),
                   "UPDATE %s SET c_SSN = (SELECT c_SSN FROM %s WHERE ID = %llu) WHERE ID = %llu",
                   v->table, v->table, (unsigned long long)a, (unsigned long long)b);
    vx_sql(v, sql);
    assert_int_equal(vx_get(v, b, &row), FV_E_CORRUPT);
    assert_int_equal(vx_get(v, a, &row), FV_OK);
    json_decref(row);
}

static void test_fv_store_field_ad_binds_field(void **state)
{
    struct vx *v = *state;
    uint64_t a = vx_insert(v, "{\"SSN\":\"111-11-1111\",\"Salary\":1}");
    json_t *row = NULL;
    char sql[512];
    /* the same record, another field: fails too */
    (void)snprintf(sql, sizeof(sql), "UPDATE %s SET c_Salary = c_SSN WHERE ID = %llu", v->table,
                   (unsigned long long)a);
    vx_sql(v, sql);
    assert_int_equal(vx_get(v, a, &row), FV_E_CORRUPT);
}

static void test_fv_store_field_tampered(void **state)
{
    struct vx *v = *state;
    uint64_t a = vx_insert(v, "{\"SSN\":\"111-11-1111\"}");
    char sql[512];
    json_t *row = NULL;
    /* one byte changed (1-based position) in the format byte, the key version,
     * the nonce, the ciphertext, the tag (the sealed value of "999-99-999i" is
     * 5 + 12 + 16 + 16 bytes) */
    static const struct {
        int pos;
        int rc;
    } at[] = {{1, FV_E_CORRUPT},
              {5, FV_E_KEY_UNAVAILABLE},
              {8, FV_E_CORRUPT},
              {24, FV_E_CORRUPT},
              {49, FV_E_CORRUPT}};
    for (size_t i = 0; i < FV_ARRAY_LEN(at); i++) {
        char json[64];
        (void)snprintf(json, sizeof(json), "{\"SSN\":\"999-99-999%zu\"}", i); /* unique */
        uint64_t id = vx_insert(v, json);
        int pos = at[i].pos;
        (void)snprintf(sql, sizeof(sql),
                       "UPDATE %s SET c_SSN = CAST(substr(c_SSN, 1, %d) || "
                       "CASE WHEN substr(c_SSN, %d, 1) = x'00' THEN x'01' ELSE x'00' END || "
                       "substr(c_SSN, %d) AS BLOB) WHERE ID = %llu",
                       v->table, pos - 1, pos, pos + 1, (unsigned long long)id);
        vx_sql(v, sql);
        (void)snprintf(sql, sizeof(sql), "SELECT length(c_SSN) FROM %s WHERE ID = %llu", v->table,
                       (unsigned long long)id);
        char *len = vx_sql_text(v, sql);
        assert_string_equal(len, "49");
        free(len);
        assert_int_equal(vx_get(v, id, &row), at[i].rc);
    }
    /* truncated, too short for the header, empty */
    (void)snprintf(sql, sizeof(sql), "UPDATE %s SET c_SSN = substr(c_SSN, 1, 20) WHERE ID = %llu",
                   v->table, (unsigned long long)a);
    vx_sql(v, sql);
    assert_int_equal(vx_get(v, a, &row), FV_E_CORRUPT);
    (void)snprintf(sql, sizeof(sql), "UPDATE %s SET c_SSN = x'01000000' WHERE ID = %llu", v->table,
                   (unsigned long long)a);
    vx_sql(v, sql);
    assert_int_equal(vx_get(v, a, &row), FV_E_CORRUPT);
    (void)snprintf(sql, sizeof(sql), "UPDATE %s SET c_SSN = x'' WHERE ID = %llu", v->table,
                   (unsigned long long)a);
    vx_sql(v, sql);
    assert_int_equal(vx_get(v, a, &row), FV_E_CORRUPT);
    /* the column takes raw bytes only (STRICT BLOB): text never lands in it */
    fv_store_writer_enter(v->fx.t);
    (void)snprintf(sql, sizeof(sql), "UPDATE %s SET c_SSN = 'text' WHERE ID = %llu", v->table,
                   (unsigned long long)a);
    assert_int_not_equal(sqlite3_exec(v->fx.t->writer->db, sql, NULL, NULL, NULL), SQLITE_OK);
    fv_store_writer_leave(v->fx.t);
}

static void test_fv_store_field_missing_version(void **state)
{
    struct vx *v = *state;
    uint64_t a = vx_insert(v, "{\"SSN\":\"111-11-1111\"}");
    json_t *row = NULL;
    add_version(v->mine, 2, true);
    fv_crypto_keyring_remove(v->mine, 1);
    assert_int_equal(vx_get(v, a, &row), FV_E_KEY_UNAVAILABLE);
}

static void test_fv_store_field_bidx_two_versions(void **state)
{
    struct vx *v = *state;
    uint64_t a = vx_insert(v, "{\"SSN\":\"111-11-1111\",\"Salary\":100}");
    add_version(v->mine, 2, true);
    uint64_t b = vx_insert(v, "{\"SSN\":\"222-22-2222\",\"Salary\":100}");
    (void)vx_insert(v, "{\"SSN\":\"333-33-3333\",\"Salary\":200}");
    (void)vx_insert(v, "{\"Name\":\"no salary\"}");
    assert_true(a && b);

    /* the two rows of value 100 carry different blind indexes */
    char sql[512];
    (void)snprintf(sql, sizeof(sql),
                   "SELECT count(DISTINCT c_Salary__bidx) FROM %s WHERE ID IN (%llu, %llu)",
                   v->table, (unsigned long long)a, (unsigned long long)b);
    char *n = vx_sql_text(v, sql);
    assert_string_equal(n, "2");
    free(n);

    assert_int_equal(vx_count(v, "Salary == 100"), 2);
    assert_int_equal(vx_count(v, "Salary == 200"), 1);
    assert_int_equal(vx_count(v, "Salary == 300"), 0);
    assert_int_equal(vx_count(v, "Salary != 100"), 2); /* 200 and the empty one */
    assert_int_equal(vx_count(v, "Salary == null"), 1);
    assert_int_equal(vx_count(v, "Salary != null"), 3);
    assert_int_equal(vx_count(v, "SSN == \"111-11-1111\""), 1);
    assert_int_equal(vx_count(v, "SSN == \"111-11-1111\" || SSN == \"333-33-3333\""), 2);
    assert_int_equal(vx_count(v, "!(SSN == \"111-11-1111\") && Salary == 100"), 1);
    assert_int_equal(vx_count(v, "SSN == \"111-11-111\""), 0);

    /* a query through the report path with the criteria */
    struct fv_sql_where w;
    json_t *rows = NULL;
    char cursor[128];
    fx_where(&v->fx, v->person, "Salary == 100", &w);
    struct fv_store_query q = {.form = v->person, .where = &w, .limit = 10};
    assert_int_equal(fv_store_query(v->fx.t, v->fx.app, &q, &rows, cursor, sizeof(cursor)), FV_OK);
    assert_int_equal(json_array_size(rows), 2);
    json_decref(rows);
    fv_model_where_release(&w);

    /* unique across versions: a's SSN (sealed under v1) is taken */
    struct fv_error err;
    assert_int_equal(fx_insert(&v->fx, v->person, "{\"SSN\":\"111-11-1111\"}", NULL, &err),
                     FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "'SSN'"));
    assert_null(strstr(err.msg, "111"));
}

static void test_fv_store_field_refused_operators(void **state)
{
    struct vx *v = *state;
    static const char *const bad[] = {"Salary > 5",          "Salary <= 5",
                                      "SSN.contains(\"1\")", "SSN.startsWith(\"1\")",
                                      "SSN.endsWith(\"1\")", "Home.district_city == \"x\"",
                                      "Home == \"x\"",       "Born >= '01-Jan-2000'"};
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++) {
        struct fv_criteria *c = NULL;
        struct fv_sql_where w;
        struct fv_error err;
        fv_error_init(&err);
        fv_model_where_init(&w);
        assert_int_equal(fv_model_criteria_parse(bad[i], strlen(bad[i]), &c, &err), FV_OK);
        int rc = fv_model_criteria_compile(c, v->fx.app, v->person, &w, &err);
        if (rc != FV_E_CRITERIA)
            fail_msg("'%s' compiled: %s", bad[i], fv_strerror(rc));
        assert_non_null(strstr(err.msg, "is encrypted"));
        assert_int_equal(w.sql.len, 0);
        fv_model_where_release(&w);
        fv_model_criteria_free(c);
    }
}

static void test_fv_store_field_update_delete_by_criteria(void **state)
{
    struct vx *v = *state;
    uint64_t a = vx_insert(v, "{\"Name\":\"A\",\"SSN\":\"111-11-1111\",\"Salary\":10}");
    (void)vx_insert(v, "{\"Name\":\"B\",\"SSN\":\"222-22-2222\",\"Salary\":20}");
    struct fv_sql_where w;
    fx_where(&v->fx, v->person, "SSN == \"111-11-1111\"", &w);
    json_t *d = json_loads("{\"Salary\":11,\"SSN\":\"111-11-1112\"}", 0, NULL);
    struct fv_store_write u = {
        .op = FV_STORE_UPDATE_WHERE, .form = v->person, .data = d, .where = &w, .limit = 200};
    assert_int_equal(fv_store_write(v->fx.t, v->fx.app, &u, 1, "t"), FV_OK);
    assert_int_equal(u.rc, FV_OK);
    assert_int_equal(u.n_results, 1);
    assert_int_equal(u.results[0].rc, FV_OK);
    assert_int_equal(u.results[0].id, a);
    fv_free(u.results);
    json_decref(d);
    fv_model_where_release(&w);
    json_t *row = NULL;
    assert_int_equal(vx_get(v, a, &row), FV_OK);
    assert_string_equal(json_string_value(json_object_get(row, "Salary")), "11");
    assert_string_equal(json_string_value(json_object_get(row, "SSN")), "111-11-1112");
    json_decref(row);
    assert_int_equal(vx_count(v, "SSN == \"111-11-1111\""), 0);
    assert_int_equal(vx_count(v, "SSN == \"111-11-1112\""), 1);

    /* updating a record to another's unique value */
    struct fv_error err;
    d = json_loads("{\"SSN\":\"222-22-2222\"}", 0, NULL);
    struct fv_store_write u2 = {.op = FV_STORE_UPDATE_ID, .form = v->person, .data = d, .id = a};
    assert_int_equal(fv_store_write(v->fx.t, v->fx.app, &u2, 1, "t"), FV_OK);
    assert_int_equal(u2.rc, FV_E_CONFLICT);
    json_decref(d);
    /* ... and to its own value is fine */
    d = json_loads("{\"SSN\":\"111-11-1112\",\"Name\":\"A2\"}", 0, NULL);
    struct fv_store_write u3 = {.op = FV_STORE_UPDATE_ID, .form = v->person, .data = d, .id = a};
    assert_int_equal(fv_store_write(v->fx.t, v->fx.app, &u3, 1, "t"), FV_OK);
    assert_int_equal(u3.rc, FV_OK);
    json_decref(d);
    (void)err;

    fx_where(&v->fx, v->person, "Salary == 20", &w);
    struct fv_store_write del = {
        .op = FV_STORE_DELETE_WHERE, .form = v->person, .where = &w, .limit = 200};
    assert_int_equal(fv_store_write(v->fx.t, v->fx.app, &del, 1, "t"), FV_OK);
    assert_int_equal(del.n_results, 1);
    assert_int_equal(del.results[0].rc, FV_OK);
    fv_free(del.results);
    fv_model_where_release(&w);
    assert_int_equal(fx_count(&v->fx, v->person), 1);
}

static void test_fv_store_field_changelog_no_plaintext(void **state)
{
    struct vx *v = *state;
    uint64_t a = vx_insert(v, "{\"Name\":\"visible\",\"SSN\":\"MARKER7731\",\"Salary\":987654321,"
                              "\"Home\":{\"district_city\":\"MARKERCITY\"}}");
    json_t *d = json_loads("{\"SSN\":\"MARKER7732\"}", 0, NULL);
    struct fv_store_write u = {.op = FV_STORE_UPDATE_ID, .form = v->person, .data = d, .id = a};
    assert_int_equal(fv_store_write(v->fx.t, v->fx.app, &u, 1, "t"), FV_OK);
    assert_int_equal(u.rc, FV_OK);
    json_decref(d);

    char *log = changelog_text(v);
    assert_non_null(strstr(log, "visible")); /* fields in clear stay readable */
    assert_null(strstr(log, "MARKER"));
    assert_null(strstr(log, "987654321"));
    free(log);

    json_t *arr = NULL;
    assert_int_equal(fv_store_changelog_read(v->fx.t, 0, 100, &arr), FV_OK);
    json_t *last = json_array_get(arr, json_array_size(arr) - 1);
    json_t *img = json_object_get(last, "row");
    assert_true(json_is_string(json_object_get(json_object_get(img, "c_SSN"), "enc")));
    assert_true(json_is_string(json_object_get(json_object_get(img, "c_Home"), "enc")));
    assert_true(json_is_string(json_object_get(img, "c_SSN__bidx")));
    json_decref(arr);
}

static void test_fv_store_field_reencrypt_steps(void **state)
{
    struct vx *v = *state;
    uint64_t ids[7];
    char json[160];
    for (size_t i = 0; i < 7; i++) {
        (void)snprintf(json, sizeof(json),
                       "{\"SSN\":\"000-00-000%zu\",\"Salary\":%zu,\"Home\":{\"district_city\":"
                       "\"C%zu\"}}",
                       i, 100 + i % 2, i);
        ids[i] = vx_insert(v, json);
    }
    /* an update: two change-log images for one record */
    json_t *d = json_loads("{\"Salary\":101}", 0, NULL);
    struct fv_store_write u = {
        .op = FV_STORE_UPDATE_ID, .form = v->person, .data = d, .id = ids[0]};
    assert_int_equal(fv_store_write(v->fx.t, v->fx.app, &u, 1, "t"), FV_OK);
    json_decref(d);

    json_t *before = NULL;
    const char *cols[] = {"Modified_Time", "Salary"};
    char cursor[128];
    struct fv_store_query q = {.form = v->person, .columns = cols, .n_columns = 2, .limit = 100};
    assert_int_equal(fv_store_query(v->fx.t, v->fx.app, &q, &before, cursor, sizeof(cursor)),
                     FV_OK);
    char rv_sql[256];
    (void)snprintf(rv_sql, sizeof(rv_sql), "SELECT group_concat(row_version) FROM %s", v->table);
    char *rv_before = vx_sql_text(v, rv_sql);
    size_t log_n = fx_changelog_n(&v->fx, NULL);

    add_version(v->mine, 2, true);
    int64_t old = -1;
    assert_int_equal(fv_store_field_count_old(v->fx.t, 2, &old), FV_OK);
    /* 7 records x 3 values (SSN, Salary, Home) in the table and 8 images */
    assert_int_equal(old, 21 + 21 + 3);

    struct fv_store_reencrypt_cursor cur;
    memset(&cur, 0, sizeof(cur));
    size_t total = 0, steps = 0;
    bool finished = false;
    while (!finished) {
        size_t done = 0;
        assert_int_equal(fv_store_field_reencrypt_step(v->fx.t, 2, &cur, 2, &done, &finished),
                         FV_OK);
        total += done;
        assert_true(++steps < 100);
    }
    assert_true(steps > 5); /* small batches, resumed from the cursor */
    assert_int_equal(total, 21 + 21 + 3);
    assert_int_equal(fv_store_field_count_old(v->fx.t, 2, &old), FV_OK);
    assert_int_equal(old, 0);
    /* idempotent once finished */
    memset(&cur, 0, sizeof(cur));
    finished = false;
    for (size_t guard = 0; !finished; guard++) {
        size_t done = 99;
        assert_int_equal(fv_store_field_reencrypt_step(v->fx.t, 2, &cur, 1000, &done, &finished),
                         FV_OK);
        assert_int_equal(done, 0);
        assert_true(guard < 10);
    }

    /* nothing user-visible changed */
    json_t *after = NULL;
    assert_int_equal(fv_store_query(v->fx.t, v->fx.app, &q, &after, cursor, sizeof(cursor)), FV_OK);
    assert_true(json_equal(before, after));
    json_decref(after);
    char *rv_after = vx_sql_text(v, rv_sql);
    assert_string_equal(rv_before, rv_after);
    free(rv_before);
    free(rv_after);
    assert_int_equal(fx_changelog_n(&v->fx, NULL), log_n);

    /* v1 gone: everything still reads, searches and shows no plaintext */
    fv_crypto_keyring_remove(v->mine, 1);
    after = NULL;
    assert_int_equal(fv_store_query(v->fx.t, v->fx.app, &q, &after, cursor, sizeof(cursor)), FV_OK);
    assert_true(json_equal(before, after));
    json_decref(after);
    json_t *row = NULL;
    assert_int_equal(vx_get(v, ids[3], &row), FV_OK);
    assert_string_equal(json_string_value(json_object_get(row, "SSN")), "000-00-0003");
    json_decref(row);
    assert_int_equal(vx_count(v, "Salary == 101"), 4);
    assert_int_equal(vx_count(v, "SSN == \"000-00-0005\""), 1);
    json_decref(before);

    /* the change-log images were re-sealed in place: they open under v2 */
    json_t *arr = NULL;
    size_t i;
    json_t *e;
    assert_int_equal(fv_store_changelog_read(v->fx.t, 0, 100, &arr), FV_OK);
    struct fv_store_fcx x;
    fv_store_fcx_init(&x, v->fx.t, NULL);
    json_array_foreach(arr, i, e)
    {
        json_t *enc = json_object_get(json_object_get(json_object_get(e, "row"), "c_SSN"), "enc");
        if (!enc)
            continue;
        uint8_t *m = NULL, sealed[256];
        size_t mlen = 0, slen = 0;
        uint32_t ver = 0;
        uint64_t rid = strtoull(json_string_value(json_object_get(e, "record_id")), NULL, 10);
        assert_int_equal(fv_store_b64u_decode(json_string_value(enc), json_string_length(enc),
                                              sealed, sizeof(sealed), &slen),
                         FV_OK);
        assert_int_equal(fv_store_field_open(&x, "vault", "Person", "SSN", (int64_t)rid, sealed,
                                             slen, &m, &mlen, &ver),
                         FV_OK);
        assert_int_equal(ver, 2);
        fv_free(m);
    }
    fv_store_fcx_release(&x);
    json_decref(arr);
}

static void test_fv_store_field_reencrypt_bad_args(void **state)
{
    struct vx *v = *state;
    struct fv_store_reencrypt_cursor cur;
    size_t done = 0;
    bool fin = false;
    memset(&cur, 0, sizeof(cur));
    assert_int_equal(fv_store_field_reencrypt_step(v->fx.t, 2, &cur, 0, &done, &fin), FV_E_INVALID);
    (void)vx_insert(v, "{\"SSN\":\"1\"}");
    /* version 7 is not in the keyring: nothing changes, the cursor stays */
    assert_int_equal(fv_store_field_reencrypt_step(v->fx.t, 7, &cur, 10, &done, &fin),
                     FV_E_KEY_UNAVAILABLE);
    assert_int_equal(cur.phase, 0);
    assert_int_equal(cur.last_id, 0);
}

static void test_fv_store_field_lookup_display(void **state)
{
    struct vx *v = *state;
    const struct fv_form *visit = fv_model_app_form(v->fx.app, "Visit");
    uint64_t a = vx_insert(v, "{\"SSN\":\"123-45-6789\"}");
    (void)vx_insert(v, "{\"SSN\":\"987-65-4321\"}");
    char json[160];
    (void)snprintf(json, sizeof(json), "{\"Who\":\"%llu\",\"Many\":[\"%llu\"]}",
                   (unsigned long long)a, (unsigned long long)a);
    uint64_t vid = 0;
    struct fv_error err;
    assert_int_equal(fx_insert(&v->fx, visit, json, &vid, &err), FV_OK);
    json_t *row = fx_get(&v->fx, visit, vid);
    assert_non_null(row);
    json_t *who = json_object_get(row, "Who");
    assert_string_equal(json_string_value(json_object_get(who, "zc_display_value")), "123-45-6789");
    json_t *many = json_array_get(json_object_get(row, "Many"), 0);
    assert_string_equal(json_string_value(json_object_get(many, "zc_display_value")),
                        "123-45-6789");
    json_decref(row);

    /* CSV: a lookup cell names the target by its encrypted display value */
    const struct fv_field *fields[1] = {fv_model_form_field(visit, "Who")};
    struct fv_str ok[1] = {FV_STR_LIT("987-65-4321")};
    struct fv_str bad[1] = {FV_STR_LIT("000-00-0000")};
    struct fv_store_write w[2];
    memset(w, 0, sizeof(w));
    w[0].op = w[1].op = FV_STORE_INSERT;
    w[0].form = w[1].form = visit;
    w[0].cell_fields = w[1].cell_fields = fields;
    w[0].cells = ok;
    w[1].cells = bad;
    w[0].n_cells = w[1].n_cells = 1;
    assert_int_equal(fv_store_write(v->fx.t, v->fx.app, w, 2, "csv"), FV_OK);
    assert_int_equal(w[0].rc, FV_OK);
    assert_int_equal(w[1].rc, FV_E_VALIDATION);
    row = fx_get(&v->fx, visit, w[0].ret_id);
    who = json_object_get(row, "Who");
    assert_string_equal(json_string_value(json_object_get(who, "zc_display_value")), "987-65-4321");
    json_decref(row);

    /* criteria through the lookup */
    struct fv_sql_where wh;
    int64_t n = -1;
    fx_where(&v->fx, visit, "Who.SSN == \"123-45-6789\"", &wh);
    assert_int_equal(fv_store_count(v->fx.t, visit, &wh, &n), FV_OK);
    assert_int_equal(n, 1);
    fv_model_where_release(&wh);
}

static void test_fv_store_field_app_rules(void **state)
{
    struct vx *v = *state;
    static const char *const bad[] = {
        /* lookup, autonumber, decision, multi select: no encrypt */
        "{\"format\":1,\"link_name\":\"b\",\"forms\":[{\"link_name\":\"F\",\"fields\":["
        "{\"link_name\":\"N\",\"type\":\"autonumber\",\"encrypt\":true}]}]}",
        "{\"format\":1,\"link_name\":\"b\",\"forms\":[{\"link_name\":\"F\",\"fields\":["
        "{\"link_name\":\"D\",\"type\":\"decision\",\"encrypt\":true}]}]}",
        "{\"format\":1,\"link_name\":\"b\",\"forms\":[{\"link_name\":\"F\",\"fields\":["
        "{\"link_name\":\"M\",\"type\":\"multi_select\",\"choices\":[\"a\"],\"encrypt\":true}]}]}",
        /* sort by an encrypted field */
        "{\"format\":1,\"link_name\":\"b\",\"forms\":[{\"link_name\":\"F\",\"fields\":["
        "{\"link_name\":\"S\",\"type\":\"single_line\",\"encrypt\":true}]}],"
        "\"reports\":[{\"link_name\":\"R\",\"form\":\"F\",\"sort\":{\"field\":\"S\"}}]}",
        /* encrypt on a lookup */
        "{\"format\":1,\"link_name\":\"b\",\"forms\":[{\"link_name\":\"F\",\"fields\":["
        "{\"link_name\":\"S\",\"type\":\"single_line\"}]},"
        "{\"link_name\":\"G\",\"fields\":[{\"link_name\":\"L\",\"type\":\"lookup\","
        "\"encrypt\":true,\"lookup\":{\"form\":\"F\",\"display_field\":\"S\"}}]}]}",
        /* report criteria with a range on an encrypted field */
        "{\"format\":1,\"link_name\":\"b\",\"forms\":[{\"link_name\":\"F\",\"fields\":["
        "{\"link_name\":\"S\",\"type\":\"number\",\"encrypt\":true}]}],"
        "\"reports\":[{\"link_name\":\"R\",\"form\":\"F\",\"criteria\":\"S > 3\"}]}",
        /* a field whose column is the blind-index column of another */
        "{\"format\":1,\"link_name\":\"b\",\"forms\":[{\"link_name\":\"F\",\"fields\":["
        "{\"link_name\":\"S\",\"type\":\"single_line\",\"encrypt\":true},"
        "{\"link_name\":\"S__bidx\",\"type\":\"single_line\"}]}]}",
    };
    (void)v;
    for (size_t i = 0; i < FV_ARRAY_LEN(bad); i++) {
        struct fv_app *app = NULL;
        struct fv_error err;
        fv_error_init(&err);
        int rc = fv_model_app_parse(bad[i], strlen(bad[i]), &app, &err);
        if (rc == FV_OK) {
            fv_model_app_free(app);
            fail_msg("accepted: %s", bad[i]);
        }
        assert_int_equal(rc, FV_E_INVALID);
    }
    /* a report with criteria == on an encrypted field is fine */
    static const char ok[] =
        "{\"format\":1,\"link_name\":\"b\",\"forms\":[{\"link_name\":\"F\",\"fields\":["
        "{\"link_name\":\"S\",\"type\":\"number\",\"encrypt\":true}]}],"
        "\"reports\":[{\"link_name\":\"R\",\"form\":\"F\",\"criteria\":\"S == 3\"}]}";
    struct fv_app *app = NULL;
    assert_int_equal(fv_model_app_parse(ok, sizeof(ok) - 1, &app, NULL), FV_OK);
    fv_model_app_free(app);
}

static void test_fv_store_field_upgrade_encrypt_refused(void **state)
{
    struct vx *v = *state;
    char *def = strdup(vault_json);
    /* SSN loses "encrypt" */
    char *p = strstr(def, "\"SSN\",\"type\":\"single_line\",\"encrypt\":true");
    assert_non_null(p);
    p = strstr(p, ",\"encrypt\":true");
    memmove(p, p + strlen(",\"encrypt\":true"), strlen(p + strlen(",\"encrypt\":true")) + 1);
    struct fv_error err;
    fv_error_init(&err);
    assert_int_equal(fv_store_app_install(v->fx.t, def, strlen(def), "t", &err), FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "'SSN'"));
    free(def);

    /* and Name gains it */
    def = strdup(vault_json);
    p = strstr(def, "\"Name\",\"type\":\"single_line\"");
    assert_non_null(p);
    char buf[2048];
    size_t off = (size_t)(p - def) + strlen("\"Name\",\"type\":\"single_line\"");
    (void)snprintf(buf, sizeof(buf), "%.*s,\"encrypt\":true%s", (int)off, def, def + off);
    fv_error_init(&err);
    assert_int_equal(fv_store_app_install(v->fx.t, buf, strlen(buf), "t", &err), FV_E_CONFLICT);
    assert_non_null(strstr(err.msg, "'Name'"));
    free(def);
}

static void test_fv_model_value_encode_round_trip(void **state)
{
    (void)state;
    struct fv_field f;
    memset(&f, 0, sizeof(f));
    (void)fv_strlcpy(f.link_name, "A", sizeof(f.link_name));
    f.type = FV_FIELD_NAME;
    f.encrypt = true;
    struct fv_sqlval in[4] = {{.type = FV_SQL_TEXT, .s = (char *)"Dr", .len = 2},
                              {.type = FV_SQL_NULL},
                              {.type = FV_SQL_TEXT, .s = (char *)"", .len = 0},
                              {.type = FV_SQL_INT, .i = -5}};
    uint8_t *enc = NULL;
    size_t len = 0;
    assert_int_equal(fv_model_value_encode(&f, in, &enc, &len), FV_OK);
    struct fv_sqlval out[4];
    assert_int_equal(fv_model_value_decode(&f, enc, len, out), FV_OK);
    assert_int_equal(out[0].type, FV_SQL_TEXT);
    assert_string_equal(out[0].s, "Dr");
    assert_int_equal(out[1].type, FV_SQL_NULL);
    assert_int_equal(out[2].len, 0);
    assert_int_equal(out[3].i, -5);
    for (size_t i = 0; i < 4; i++)
        fv_model_sqlval_release(&out[i]);
    /* every truncation and a trailing byte are refused */
    for (size_t n = 0; n < len; n++)
        assert_int_equal(fv_model_value_decode(&f, enc, n, out), FV_E_CORRUPT);
    uint8_t *longer = fv_malloc(len + 1);
    memcpy(longer, enc, len);
    longer[len] = 0;
    assert_int_equal(fv_model_value_decode(&f, longer, len + 1, out), FV_E_CORRUPT);
    fv_free(longer);
    fv_free(enc);
    /* all NULL: no value */
    struct fv_sqlval nul[4] = {{.type = FV_SQL_NULL}};
    assert_int_equal(fv_model_value_encode(&f, nul, &enc, &len), FV_OK);
    assert_null(enc);
    assert_int_equal(len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fv_store_field_round_trip, vx_setup, vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_ad_binds_record, vx_setup, vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_ad_binds_field, vx_setup, vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_tampered, vx_setup, vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_missing_version, vx_setup, vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_bidx_two_versions, vx_setup,
                                        vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_refused_operators, vx_setup,
                                        vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_update_delete_by_criteria, vx_setup,
                                        vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_changelog_no_plaintext, vx_setup,
                                        vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_reencrypt_steps, vx_setup, vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_reencrypt_bad_args, vx_setup,
                                        vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_lookup_display, vx_setup, vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_app_rules, vx_setup, vx_teardown),
        cmocka_unit_test_setup_teardown(test_fv_store_field_upgrade_encrypt_refused, vx_setup,
                                        vx_teardown),
        cmocka_unit_test(test_fv_model_value_encode_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
