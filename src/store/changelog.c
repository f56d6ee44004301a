/*
 * store/changelog.c: the tenant change log. Every record mutation and schema
 * change appends one row inside the transaction that makes the change, so
 * the log and the data can never disagree (README.md "Invariants").
 */
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

int fv_store_json_dump(const json_t *j, char **ret, size_t *ret_len)
{
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0)
        return FV_E_INTERNAL;
    char *p = fv_malloc(n + 1);
    if (!p)
        return FV_E_NOMEM;
    size_t m = json_dumpb(j, p, n, JSON_COMPACT | JSON_ENCODE_ANY);
    if (m != n) {
        fv_free(p);
        return FV_E_INTERNAL;
    }
    p[n] = '\0';
    *ret = p;
    if (ret_len)
        *ret_len = n;
    return FV_OK;
}

/* Is column `name` the sealed column of an encrypted field of sf? */
static bool sealed_column(const struct fv_store_form *sf, const char *name)
{
    if (!sf || !name || strncmp(name, "c_", 2) != 0)
        return false;
    for (size_t i = 0; i < sf->form->n_fields; i++)
        if (sf->form->fields[i].encrypt &&
            strcmp(sf->col_names[sf->col_off[i] + FV_MODEL_ENC_COL_DATA], name) == 0)
            return true;
    return false;
}

int fv_store_row_image(sqlite3_stmt *st, char **ret, size_t *ret_len)
{
    return fv_store_row_image_form(st, NULL, ret, ret_len);
}

/* BLOB column i of st as base64url text (a new json string), or NULL (OOM). */
static json_t *blob_text(sqlite3_stmt *st, int i)
{
    const uint8_t *p = sqlite3_column_blob(st, i);
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    char small[256]; /* a blind index, a short sealed value: no allocation */
    size_t tl = fv_store_b64u_len(n);
    char *text = tl < sizeof(small) ? small : fv_malloc(tl + 1);
    json_t *v = NULL;
    if (!text)
        return NULL;
    if (p)
        fv_store_b64u_encode(p, n, text);
    else
        text[0] = '\0';
    v = json_stringn(text, p ? tl : 0);
    if (text != small)
        fv_free(text);
    return v;
}

int fv_store_row_image_form(sqlite3_stmt *st, const struct fv_store_form *sf, char **ret,
                            size_t *ret_len)
{
    int rc = FV_OK;
    json_t *o = json_object();
    if (!o)
        return FV_E_NOMEM;
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n && rc == FV_OK; i++) {
        const char *name = sqlite3_column_name(st, i);
        json_t *v = NULL;
        switch (sqlite3_column_type(st, i)) {
        case SQLITE_INTEGER:
            v = json_integer(sqlite3_column_int64(st, i));
            break;
        case SQLITE_FLOAT:
            v = json_real(sqlite3_column_double(st, i));
            break;
        case SQLITE_TEXT: {
            const char *s = (const char *)sqlite3_column_text(st, i);
            v = json_stringn(s ? s : "", (size_t)sqlite3_column_bytes(st, i));
            break;
        }
        case SQLITE_BLOB:
            /* raw bytes (encrypted fields) as base64url; the sealed value
             * marked so that it is never taken for a value */
            v = blob_text(st, i);
            if (v && sealed_column(sf, name)) {
                json_t *enc = json_object();
                /* json_object_set_new takes v, also when it fails */
                if (!enc)
                    json_decref(v);
                else if (json_object_set_new(enc, "enc", v) != 0) {
                    json_decref(enc);
                    enc = NULL;
                }
                v = enc;
            }
            break;
        case SQLITE_NULL:
        default:
            v = json_null();
            break;
        }
        if (!name || !v || json_object_set_new(o, name, v) != 0)
            rc = FV_E_NOMEM;
    }
    if (rc == FV_OK)
        rc = fv_store_json_dump(o, ret, ret_len);
    json_decref(o);
    return rc;
}

int fv_store_changelog_append(struct fv_store_conn *c, int64_t now_ms, const char *actor,
                              const char *op, const char *app, const char *form, int64_t record_id,
                              const char *row, size_t row_len)
{
    static const char sql[] = "INSERT INTO fv_changelog(time, actor, op, app, form, record_id, row)"
                              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, now_ms);
    (void)sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
    (void)sqlite3_bind_text(st, 3, op, -1, SQLITE_STATIC);
    if (app)
        (void)sqlite3_bind_text(st, 4, app, -1, SQLITE_STATIC);
    if (form)
        (void)sqlite3_bind_text(st, 5, form, -1, SQLITE_STATIC);
    if (record_id)
        (void)sqlite3_bind_int64(st, 6, record_id);
    if (row) {
        if (row_len > INT32_MAX) {
            fv_store_stmt_done(st);
            return FV_E_LIMIT;
        }
        (void)sqlite3_bind_text(st, 7, row, (int)row_len, SQLITE_STATIC);
    }
    /* SQLITE_STATIC is safe: every bound string outlives the step below,
     * and fv_store_stmt_done clears the bindings before returning. */
    int src = sqlite3_step(st);
    fv_store_stmt_done(st);
    return src == SQLITE_DONE ? FV_OK : fv_store_sqlite_err(src);
}

int fv_store_sqlite_changelog_read(struct fv_tenant *t, int64_t after_seq, size_t limit,
                                   json_t **ret)
{
    static const char sql[] = "SELECT seq, time, actor, op, app, form, record_id, row"
                              " FROM fv_changelog WHERE seq > ?1 ORDER BY seq LIMIT ?2";
    int rc = FV_OK;
    struct fv_store_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int src;

    if (!arr)
        return FV_E_NOMEM;
    rc = fv_store_pool_get(&t->readers, &c);
    if (rc != FV_OK)
        goto out;
    rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_int64(st, 1, after_seq);
    (void)sqlite3_bind_int64(st, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        char idbuf[24];
        json_t *e = json_object();
        json_t *row = NULL;
        if (!e) {
            rc = FV_E_NOMEM;
            goto out;
        }
        if (json_array_append_new(arr, e) != 0) {
            rc = FV_E_NOMEM;
            goto out;
        }
        if (sqlite3_column_type(st, 7) == SQLITE_TEXT) {
            row = json_loadb((const char *)sqlite3_column_text(st, 7),
                             (size_t)sqlite3_column_bytes(st, 7), JSON_DECODE_ANY, NULL);
            if (!row) {
                rc = FV_E_CORRUPT;
                goto out;
            }
        } else {
            row = json_null();
        }
        const char *actor = (const char *)sqlite3_column_text(st, 2);
        const char *op = (const char *)sqlite3_column_text(st, 3);
        const char *app = (const char *)sqlite3_column_text(st, 4);
        const char *form = (const char *)sqlite3_column_text(st, 5);
        json_t *rid = json_null();
        if (sqlite3_column_type(st, 6) == SQLITE_INTEGER) {
            json_decref(rid);
            (void)snprintf(idbuf, sizeof(idbuf), "%lld", (long long)sqlite3_column_int64(st, 6));
            rid = json_string(idbuf);
        }
        int bad = 0;
        bad |= json_object_set_new(e, "seq", json_integer(sqlite3_column_int64(st, 0)));
        bad |= json_object_set_new(e, "time", json_integer(sqlite3_column_int64(st, 1)));
        bad |= json_object_set_new(e, "actor", json_string(actor ? actor : ""));
        bad |= json_object_set_new(e, "op", json_string(op ? op : ""));
        bad |= json_object_set_new(e, "app", app ? json_string(app) : json_null());
        bad |= json_object_set_new(e, "form", form ? json_string(form) : json_null());
        bad |= json_object_set_new(e, "record_id", rid);
        bad |= json_object_set_new(e, "row", row);
        if (bad) {
            rc = FV_E_NOMEM;
            goto out;
        }
    }
    if (src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
        goto out;
    }
    *ret = arr;
    arr = NULL;
out:
    fv_store_stmt_done(st);
    fv_store_pool_put(&t->readers, c);
    json_decref(arr);
    return rc;
}
