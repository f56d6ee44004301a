/*
 * store/records.c: records. Preparation of writes in the caller's thread
 * (value parsing, defaults, required), their execution inside the leader's
 * transaction (IDs, autonumbers, lookup checks, unique conflicts, change-log
 * entries), and the read path (queries with keyset cursors, counts).
 */
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

/* ------------------------------------------------------------ preparation */

void fv_store_prep_release(struct fv_store_prep *p)
{
    if (p->vals && p->sf) {
        for (size_t c = 0; c < p->sf->n_cols; c++) {
            if (p->vals[c].type == FV_SQL_SECRET && p->vals[c].s)
                fv_wipe(p->vals[c].s, p->vals[c].len);
            fv_model_sqlval_release(&p->vals[c]);
        }
    }
    if (p->lookup_text && p->sf) {
        for (size_t i = 0; i < p->sf->form->n_fields; i++)
            fv_free(p->lookup_text[i]);
    }
    FV_FREE(p->vals);
    FV_FREE(p->present);
    FV_FREE(p->lookup_text);
    p->ready = false;
}

static bool cols_null(const struct fv_store_prep *p, size_t fi)
{
    const struct fv_store_form *sf = p->sf;
    for (size_t k = 0; k < sf->col_n[fi]; k++)
        if (p->vals[sf->col_off[fi] + k].type != FV_SQL_NULL)
            return false;
    return true;
}

/*
 * Parse a value of field fi (JSON `in`, or CSV text when in is NULL) into
 * the prepared columns. A field in clear gets its columns; an encrypted field
 * gets its encoded plaintext as FV_SQL_SECRET in its data slot and NULL in
 * its blind-index slot: both are computed when the record ID is known
 * (bind_field), and a SECRET is never bound as it is.
 */
static int prep_value(struct fv_store_prep *p, const struct fv_app *app, size_t fi,
                      const json_t *in, const char *text, size_t len, struct fv_error *err)
{
    const struct fv_field *f = &p->sf->form->fields[fi];
    struct fv_sqlval *out = &p->vals[p->sf->col_off[fi]];
    struct fv_sqlval tmp[FV_MODEL_MAX_COLS];
    size_t n = fv_model_field_value_ncols(f);
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    int rc;

    if (!f->encrypt)
        return in ? fv_model_value_parse(app, f, in, out, err)
                  : fv_model_value_parse_text(app, f, text, len, out, err);
    rc = in ? fv_model_value_parse(app, f, in, tmp, err)
            : fv_model_value_parse_text(app, f, text, len, tmp, err);
    if (rc != FV_OK)
        return rc;
    rc = fv_model_value_encode(f, tmp, &enc, &enc_len);
    for (size_t i = 0; i < n; i++) {
        if (tmp[i].type == FV_SQL_TEXT && tmp[i].s)
            fv_wipe(tmp[i].s, tmp[i].len);
        fv_model_sqlval_release(&tmp[i]);
    }
    if (rc != FV_OK)
        return rc;
    fv_model_sqlval_release(&out[FV_MODEL_ENC_COL_BIDX]);
    fv_model_sqlval_release(&out[FV_MODEL_ENC_COL_DATA]);
    if (enc) {
        out[FV_MODEL_ENC_COL_DATA].type = FV_SQL_SECRET;
        out[FV_MODEL_ENC_COL_DATA].s = (char *)enc;
        out[FV_MODEL_ENC_COL_DATA].len = enc_len;
    }
    return FV_OK;
}

static int prep_cells(struct fv_store_prep *p, const struct fv_app *app, struct fv_store_write *w)
{
    const struct fv_form *form = p->sf->form;
    for (size_t i = 0; i < w->n_cells; i++) {
        const struct fv_field *f = w->cell_fields[i];
        if (!f)
            continue; /* column the caller chose to ignore */
        if (f < form->fields || f >= form->fields + form->n_fields)
            return fv_error_set(&w->err, FV_E_NO_FIELD, SIZE_MAX, "no such field");
        size_t fi = (size_t)(f - form->fields);
        if (p->present[fi])
            return fv_error_set(&w->err, FV_E_VALIDATION, SIZE_MAX,
                                "field '%s' given more than once", f->link_name);
        p->present[fi] = true;
        const struct fv_str *cell = &w->cells[i];
        if (f->type == FV_FIELD_LOOKUP && !f->lookup_multi && cell->len > 0) {
            /* An ID or the target's display value: resolved in the transaction. */
            p->lookup_text[fi] = fv_strndup(cell->p, cell->len);
            if (!p->lookup_text[fi])
                return FV_E_NOMEM;
            continue;
        }
        int rc = prep_value(p, app, fi, NULL, cell->p ? cell->p : "", cell->len, &w->err);
        if (rc != FV_OK)
            return rc;
    }
    return FV_OK;
}

static int prep_json(struct fv_store_prep *p, const struct fv_app *app, struct fv_store_write *w)
{
    const char *key;
    json_t *val;
    const struct fv_form *form = p->sf->form;
    if (!json_is_object(w->data))
        return fv_error_set(&w->err, FV_E_BODY, SIZE_MAX, "record data must be a JSON object");
    json_object_foreach((json_t *)w->data, key, val)
    {
        const struct fv_field *f = fv_model_form_field(form, key);
        if (!f)
            return fv_error_set(&w->err, FV_E_NO_FIELD, SIZE_MAX, "no field '%.64s' in form '%s'",
                                key, form->link_name);
        size_t fi = (size_t)(f - form->fields);
        p->present[fi] = true;
        int rc = prep_value(p, app, fi, val, NULL, 0, &w->err);
        if (rc != FV_OK)
            return rc;
    }
    return FV_OK;
}

int fv_store_prep_init(struct fv_store_prep *p, const struct fv_app *app,
                       const struct fv_store_form *sf, struct fv_store_write *w)
{
    int rc = FV_OK;
    const struct fv_form *form = sf->form;
    size_t nf = form->n_fields ? form->n_fields : 1;

    p->w = w;
    p->sf = sf;
    p->ready = false;
    switch (w->op) {
    case FV_STORE_DELETE_ID:
    case FV_STORE_UPDATE_ID:
        if (w->id == 0 || w->id > (uint64_t)INT64_MAX) {
            rc = fv_error_set(&w->err, FV_E_NO_RECORD, SIZE_MAX, "no record with that ID");
            goto out;
        }
        break;
    case FV_STORE_UPDATE_WHERE:
    case FV_STORE_DELETE_WHERE:
        if (w->limit == 0) {
            rc = fv_error_set(&w->err, FV_E_PARAM, SIZE_MAX, "limit must be at least 1");
            goto out;
        }
        break;
    case FV_STORE_INSERT:
        break;
    default:
        rc = fv_error_set(&w->err, FV_E_INVALID, SIZE_MAX, "unknown write operation");
        goto out;
    }
    if (w->op == FV_STORE_DELETE_ID || w->op == FV_STORE_DELETE_WHERE) {
        p->ready = true;
        return FV_OK;
    }

    p->vals = fv_calloc(sf->n_cols ? sf->n_cols : 1, sizeof(*p->vals));
    p->present = fv_calloc(nf, sizeof(*p->present));
    p->lookup_text = fv_calloc(nf, sizeof(*p->lookup_text));
    if (!p->vals || !p->present || !p->lookup_text) {
        rc = FV_E_NOMEM;
        goto out;
    }
    if (w->cells && w->op == FV_STORE_INSERT)
        rc = prep_cells(p, app, w);
    else
        rc = prep_json(p, app, w);
    if (rc != FV_OK)
        goto out;

    if (w->op == FV_STORE_INSERT) {
        for (size_t i = 0; i < form->n_fields; i++) {
            const struct fv_field *f = &form->fields[i];
            if (p->present[i] || !f->default_value || f->type == FV_FIELD_AUTONUMBER)
                continue;
            rc = prep_value(p, app, i, f->default_value, NULL, 0, &w->err);
            if (rc != FV_OK)
                goto out;
        }
    } else {
        bool any = false;
        for (size_t i = 0; i < form->n_fields; i++)
            any = any || p->present[i];
        if (!any) {
            rc = fv_error_set(&w->err, FV_E_BODY, SIZE_MAX, "no field values to update");
            goto out;
        }
    }
    for (size_t i = 0; i < form->n_fields; i++) {
        const struct fv_field *f = &form->fields[i];
        bool check = w->op == FV_STORE_INSERT || p->present[i];
        if (check && f->required && f->type != FV_FIELD_AUTONUMBER && cols_null(p, i) &&
            !p->lookup_text[i]) {
            rc = fv_error_set(&w->err, FV_E_VALIDATION, SIZE_MAX, "field '%s' is required",
                              f->link_name);
            goto out;
        }
    }
    p->ready = true;
out:
    if (rc != FV_OK) {
        if (w->err.code == FV_OK)
            (void)fv_error_set(&w->err, rc, SIZE_MAX, "the record could not be prepared");
        w->rc = rc;
        fv_store_prep_release(p);
    }
    return rc;
}

/* ------------------------------------------------------------- execution */

/* Map a failed step of a write on form sf to an fv_err and message. */
static int step_error(struct fv_tenant *t, const struct fv_store_form *sf, int src,
                      struct fv_error *err)
{
    if (src == SQLITE_CONSTRAINT_UNIQUE || src == SQLITE_CONSTRAINT_PRIMARYKEY) {
        /* SQLite names the columns: "UNIQUE constraint failed: tbl.col, ..." */
        const char *msg = sqlite3_errmsg(t->writer->db);
        for (size_t i = 0; msg && i < sf->form->n_fields; i++) {
            const char *col = sf->col_names[sf->col_off[i]];
            size_t cl = strlen(col);
            for (const char *m = strstr(msg, col); m; m = strstr(m + 1, col)) {
                if (m > msg && m[-1] == '.' && (m[cl] == '\0' || m[cl] == ',')) {
                    return fv_error_set(err, FV_E_CONFLICT, SIZE_MAX,
                                        "duplicate value for unique field '%s'",
                                        sf->form->fields[i].link_name);
                }
            }
        }
        return fv_error_set(err, FV_E_CONFLICT, SIZE_MAX, "duplicate value for a unique field");
    }
    if ((src & 0xff) == SQLITE_CONSTRAINT)
        return fv_error_set(err, FV_E_VALIDATION, SIZE_MAX, "a value breaks a constraint");
    int rc = fv_store_sqlite_err(src);
    fv_log(FV_LOG_DEBUG, "store: write failed: %s", sqlite3_errmsg(t->writer->db));
    return fv_error_set(err, rc == FV_OK ? FV_E_INTERNAL : rc, SIZE_MAX,
                        "the record could not be written");
}

/*
 * SQL of the display text of field df of target tsf; for an encrypted
 * display field its sealed value, which the reader opens (format_row): the
 * BLOB, or its hex text when in_json (JSON cannot hold a BLOB).
 */
static void message_free(uint8_t *msg, size_t len);

static int display_expr(const struct fv_store_form *tsf, const struct fv_field *df,
                        const char *alias, bool in_json, struct fv_buf *b)
{
    size_t fi = (size_t)(df - tsf->form->fields);
    size_t n = tsf->col_n[fi];
    if (df->encrypt)
        return fv_buf_appendf(b, in_json ? "hex(%s.\"%s\")" : "%s.\"%s\"", alias,
                              tsf->col_names[tsf->col_off[fi] + FV_MODEL_ENC_COL_DATA]);
    if (n == 1)
        return fv_buf_appendf(b, "%s.\"%s\"", alias, tsf->col_names[tsf->col_off[fi]]);
    int rc = fv_buf_append_cstr(b, "trim(");
    for (size_t k = 0; rc == FV_OK && k < n; k++)
        rc = fv_buf_appendf(b, "%scoalesce(%s.\"%s\", '')", k ? " || ' ' || " : "", alias,
                            tsf->col_names[tsf->col_off[fi] + k]);
    if (rc == FV_OK)
        rc = fv_buf_append_cstr(b, ")");
    return rc;
}

/*
 * Records of target tsf whose encrypted display field df equals the CSV
 * text txt, through the blind index (the text converted with df's rules, as
 * == would): *ret_id the last match, *ret_hits their number (0..2).
 */
static int match_sealed_display(struct fv_tenant *t, const struct fv_store_form *tsf,
                                const struct fv_field *df, const char *txt, int64_t *ret_id,
                                size_t *ret_hits)
{
    const struct fv_app *owner = NULL;
    struct fv_sqlval cols[FV_MODEL_MAX_COLS];
    uint8_t *enc = NULL, *msg = NULL;
    size_t enc_len = 0, msg_len = 0, tok_len = 0;
    uint8_t tokens[FV_STORE_TOKENS_MAX];
    sqlite3_stmt *st = NULL;
    struct fv_buf b;
    int rc, src;

    *ret_hits = 0;
    if (!fv_model_field_has_bidx(df) || !fv_store_form_find(t, tsf->form, &owner) || !owner)
        return FV_OK;
    if (fv_model_value_parse_text(owner, df, txt, strlen(txt), cols, NULL) != FV_OK)
        return FV_OK; /* not a value of the display field: no match */
    rc = fv_model_value_encode(df, cols, &enc, &enc_len);
    fv_model_sqlval_release(&cols[0]);
    if (rc != FV_OK || !enc)
        return rc;
    rc = fv_model_field_bidx_message(owner->link_name, tsf->form->link_name, df->link_name, enc,
                                     enc_len, &msg, &msg_len);
    fv_free(enc);
    if (rc == FV_OK)
        rc = fv_store_field_tokens(t, msg, msg_len, tokens, &tok_len);
    message_free(msg, msg_len);
    size_t fi = (size_t)(df - tsf->form->fields);
    fv_buf_init(&b, FV_STORE_SQL_MAX);
    if (rc == FV_OK)
        rc = fv_buf_appendf(&b, "SELECT \"ID\" FROM \"%s\" WHERE \"%s\" IN ", tsf->table,
                            tsf->col_names[tsf->col_off[fi] + FV_MODEL_ENC_COL_BIDX]);
    if (rc == FV_OK)
        rc = fv_model_bidx_list_sql(&b, 1);
    if (rc == FV_OK)
        rc = fv_buf_append_cstr(&b, " LIMIT 2");
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
    if (rc == FV_OK) {
        (void)sqlite3_bind_blob(st, 1, tokens, (int)tok_len, SQLITE_TRANSIENT);
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            *ret_id = sqlite3_column_int64(st, 0);
            (*ret_hits)++;
        }
        if (src != SQLITE_DONE)
            rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    fv_buf_release(&b);
    fv_wipe(tokens, sizeof(tokens));
    return rc;
}

/* Resolve CSV lookup texts and check that every lookup value names an
 * existing record of its target form. */
static int check_lookups(struct fv_tenant *t, struct fv_store_prep *p)
{
    const struct fv_store_form *sf = p->sf;
    struct fv_store_write *w = p->w;
    int rc = FV_OK;
    struct fv_buf b;
    fv_buf_init(&b, FV_STORE_SQL_MAX);

    for (size_t i = 0; rc == FV_OK && i < sf->form->n_fields; i++) {
        const struct fv_field *f = &sf->form->fields[i];
        if (f->type != FV_FIELD_LOOKUP || !p->present[i])
            continue;
        const struct fv_store_form *tsf = fv_store_form_find(t, f->lookup_target, NULL);
        struct fv_sqlval *v = &p->vals[sf->col_off[i]];
        sqlite3_stmt *st = NULL;
        int src;
        if (!tsf) {
            rc = fv_error_set(&w->err, FV_E_INTERNAL, SIZE_MAX, "lookup target unknown");
            break;
        }
        if (p->lookup_text[i]) {
            /* 1. an existing ID; 2. else the target's display value */
            const char *txt = p->lookup_text[i];
            uint64_t id = 0;
            int64_t found = 0;
            size_t hits = 0;
            fv_buf_reset(&b);
            if (fv_parse_u64(txt, strlen(txt), &id) == FV_OK && id <= (uint64_t)INT64_MAX) {
                rc = fv_buf_appendf(&b, "SELECT \"ID\" FROM \"%s\" WHERE \"ID\" = ?1", tsf->table);
                if (rc == FV_OK)
                    rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
                if (rc != FV_OK)
                    break;
                (void)sqlite3_bind_int64(st, 1, (int64_t)id);
                if ((src = sqlite3_step(st)) == SQLITE_ROW) {
                    found = (int64_t)id;
                    hits = 1;
                }
                fv_store_stmt_done(st);
                st = NULL;
            }
            const struct fv_field *df =
                f->lookup_display ? fv_model_form_field(tsf->form, f->lookup_display) : NULL;
            if (hits == 0 && df && df->encrypt) {
                rc = match_sealed_display(t, tsf, df, txt, &found, &hits);
                if (rc != FV_OK) {
                    (void)fv_error_set(&w->err, rc, SIZE_MAX, "field '%s': lookup failed",
                                       f->link_name);
                    break;
                }
            } else if (hits == 0 && df) {
                fv_buf_reset(&b);
                rc = fv_buf_append_cstr(&b, "SELECT d.\"ID\" FROM \"");
                if (rc == FV_OK)
                    rc = fv_buf_appendf(&b, "%s\" AS d WHERE ", tsf->table);
                if (rc == FV_OK)
                    rc = display_expr(tsf, df, "d", false, &b);
                if (rc == FV_OK)
                    rc = fv_buf_append_cstr(&b, " = ?1 LIMIT 2");
                if (rc == FV_OK)
                    rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
                if (rc != FV_OK)
                    break;
                (void)sqlite3_bind_text(st, 1, txt, -1, SQLITE_TRANSIENT);
                while ((src = sqlite3_step(st)) == SQLITE_ROW) {
                    found = sqlite3_column_int64(st, 0);
                    hits++;
                }
                fv_store_stmt_done(st);
                st = NULL;
                if (src != SQLITE_DONE) {
                    rc = step_error(t, sf, src, &w->err);
                    break;
                }
            }
            if (hits != 1) {
                rc = fv_error_set(&w->err, FV_E_VALIDATION, SIZE_MAX,
                                  hits == 0 ? "field '%s': no matching '%s' record"
                                            : "field '%s': more than one matching '%s' record",
                                  f->link_name, tsf->form->link_name);
                break;
            }
            fv_model_sqlval_release(v);
            v->type = FV_SQL_INT;
            v->i = found;
            continue;
        }
        if (v->type == FV_SQL_NULL)
            continue;
        fv_buf_reset(&b);
        if (f->lookup_multi)
            rc = fv_buf_appendf(&b,
                                "SELECT CASE WHEN json_valid(?1) AND json_type(?1) = 'array'"
                                " THEN (SELECT count(*) FROM json_each(?1) AS j WHERE NOT EXISTS"
                                " (SELECT 1 FROM \"%s\" AS d WHERE d.\"ID\" = j.value))"
                                " ELSE -1 END",
                                tsf->table);
        else
            rc = fv_buf_appendf(&b,
                                "SELECT CASE WHEN EXISTS (SELECT 1 FROM \"%s\" WHERE \"ID\" = ?1)"
                                " THEN 0 ELSE 1 END",
                                tsf->table);
        if (rc == FV_OK)
            rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
        if (rc == FV_OK)
            rc = fv_store_bind_val(st, 1, v);
        if (rc != FV_OK) {
            fv_store_stmt_done(st);
            break;
        }
        src = sqlite3_step(st);
        int64_t missing = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        fv_store_stmt_done(st);
        if (src != SQLITE_ROW) {
            rc = step_error(t, sf, src, &w->err);
            break;
        }
        if (missing != 0)
            rc = fv_error_set(&w->err, FV_E_VALIDATION, SIZE_MAX, "field '%s': no such '%s' record",
                              f->link_name, tsf->form->link_name);
    }
    fv_buf_release(&b);
    if (rc != FV_OK && w->err.code == FV_OK)
        (void)fv_error_set(&w->err, rc, SIZE_MAX, "lookup check failed");
    return rc;
}

static int next_autonumber(struct fv_tenant *t, const struct fv_app *app,
                           const struct fv_form *form, const struct fv_field *f, int64_t *ret)
{
    static const char upd[] = "UPDATE fv_autonumber SET next = next + 1"
                              " WHERE app = ?1 AND form = ?2 AND field = ?3 RETURNING next - 1";
    static const char ins[] = "INSERT INTO fv_autonumber(app, form, field, next)"
                              " VALUES (?1, ?2, ?3, ?4)";
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(t->writer, upd, sizeof(upd) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_text(st, 1, app->link_name, -1, SQLITE_STATIC);
    (void)sqlite3_bind_text(st, 2, form->link_name, -1, SQLITE_STATIC);
    (void)sqlite3_bind_text(st, 3, f->link_name, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *ret = sqlite3_column_int64(st, 0);
        src = sqlite3_step(st);
    }
    bool had = sqlite3_changes(t->writer->db) > 0 && src == SQLITE_DONE;
    fv_store_stmt_done(st);
    if (src != SQLITE_DONE)
        return fv_store_sqlite_err(src);
    if (had)
        return FV_OK;
    int64_t start = f->autonumber_start > 0 ? f->autonumber_start : 1;
    rc = fv_store_conn_prepare(t->writer, ins, sizeof(ins) - 1, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_text(st, 1, app->link_name, -1, SQLITE_STATIC);
    (void)sqlite3_bind_text(st, 2, form->link_name, -1, SQLITE_STATIC);
    (void)sqlite3_bind_text(st, 3, f->link_name, -1, SQLITE_STATIC);
    (void)sqlite3_bind_int64(st, 4, start + 1);
    src = sqlite3_step(st);
    fv_store_stmt_done(st);
    if (src != SQLITE_DONE)
        return fv_store_sqlite_err(src);
    *ret = start;
    return FV_OK;
}

/* ------------------------------------------------------ encrypted fields */

/* The blind-index message of the prepared value of encrypted field fi. */
static int sealed_message(const struct fv_app *app, const struct fv_store_prep *p, size_t fi,
                          uint8_t **ret, size_t *ret_len)
{
    const struct fv_field *f = &p->sf->form->fields[fi];
    const struct fv_sqlval *m = &p->vals[p->sf->col_off[fi] + FV_MODEL_ENC_COL_DATA];
    return fv_model_field_bidx_message(app->link_name, p->sf->form->link_name, f->link_name,
                                       (const uint8_t *)m->s, m->len, ret, ret_len);
}

static void message_free(uint8_t *msg, size_t len)
{
    if (msg) {
        fv_wipe(msg, len);
        fv_free(msg);
    }
}

/*
 * Bind the columns of field fi of record id from index idx on: a field in
 * clear as prepared; an encrypted field sealed for this record ID and
 * blind-indexed, both under the keyring's write version.
 */
static int bind_field(struct fv_store_fcx *x, const struct fv_app *app,
                      const struct fv_store_prep *p, size_t fi, int64_t id, sqlite3_stmt *st,
                      int idx, struct fv_error *err)
{
    const struct fv_store_form *sf = p->sf;
    const struct fv_field *f = &sf->form->fields[fi];
    const struct fv_sqlval *v = &p->vals[sf->col_off[fi]];
    const struct fv_sqlval *m = &v[FV_MODEL_ENC_COL_DATA];
    uint8_t small[512]; /* the sealed values of typical fields: no allocation */
    uint8_t *sealed = NULL;
    uint8_t *msg = NULL;
    size_t msg_len = 0, sealed_len = 0;
    uint8_t bidx[FV_STORE_BIDX_BYTES];
    uint32_t version;
    int rc = FV_OK;

    if (!f->encrypt) {
        for (size_t k = 0; rc == FV_OK && k < sf->col_n[fi]; k++)
            rc = fv_store_bind_val(st, idx + (int)k, &v[k]);
        return rc;
    }
    if (m->type != FV_SQL_SECRET) {
        (void)sqlite3_bind_null(st, idx + FV_MODEL_ENC_COL_BIDX);
        (void)sqlite3_bind_null(st, idx + FV_MODEL_ENC_COL_DATA);
        return FV_OK;
    }
    version = x->t->keys ? fv_crypto_keyring_write_version(x->t->keys) : 0;
    rc = version ? FV_OK : FV_E_KEY_UNAVAILABLE;
    if (rc == FV_OK && m->len > (size_t)INT32_MAX - FV_STORE_FIELD_OVERHEAD)
        rc = FV_E_LIMIT;
    if (rc == FV_OK) {
        sealed_len = m->len + FV_STORE_FIELD_OVERHEAD;
        sealed = sealed_len <= sizeof(small) ? small : fv_malloc(sealed_len);
        rc = sealed ? FV_OK : FV_E_NOMEM;
    }
    if (rc == FV_OK)
        rc = fv_store_field_seal(x, version, app->link_name, sf->form->link_name, f->link_name, id,
                                 (const uint8_t *)m->s, m->len, sealed);
    if (rc == FV_OK && fv_model_field_has_bidx(f)) {
        rc = sealed_message(app, p, fi, &msg, &msg_len);
        if (rc == FV_OK)
            rc = fv_store_field_bidx(x->t, version, msg, msg_len, bidx);
    }
    if (rc == FV_OK) {
        (void)sqlite3_bind_blob(st, idx + FV_MODEL_ENC_COL_DATA, sealed, (int)sealed_len,
                                SQLITE_TRANSIENT);
        if (fv_model_field_has_bidx(f))
            (void)sqlite3_bind_blob(st, idx + FV_MODEL_ENC_COL_BIDX, bidx, sizeof(bidx),
                                    SQLITE_TRANSIENT);
        else
            (void)sqlite3_bind_null(st, idx + FV_MODEL_ENC_COL_BIDX);
    }
    if (sealed != small)
        fv_free(sealed);
    message_free(msg, msg_len);
    if (rc != FV_OK && rc != FV_E_NOMEM)
        return fv_error_set(err, rc, SIZE_MAX, "field '%s' could not be encrypted", f->link_name);
    return rc;
}

/*
 * Unique encrypted fields: a unique index cannot see through random nonces,
 * and during a key rotation one value has two blind indexes, so look for
 * the value's blind index under every live key version (the writer is the
 * tenant's only one, so the check and the write cannot interleave).
 */
static int check_unique_sealed(struct fv_tenant *t, const struct fv_app *app,
                               const struct fv_store_prep *p, int64_t id, bool update,
                               struct fv_error *err)
{
    const struct fv_store_form *sf = p->sf;
    int rc = FV_OK;
    for (size_t i = 0; rc == FV_OK && i < sf->form->n_fields; i++) {
        const struct fv_field *f = &sf->form->fields[i];
        const struct fv_sqlval *m = &p->vals[sf->col_off[i] + FV_MODEL_ENC_COL_DATA];
        uint8_t *msg = NULL;
        uint8_t tokens[FV_STORE_TOKENS_MAX];
        size_t msg_len = 0, tok_len = 0;
        sqlite3_stmt *st = NULL;
        struct fv_buf b;
        if (!f->encrypt || !f->unique || !fv_model_field_has_bidx(f) || m->type != FV_SQL_SECRET ||
            (update && !p->present[i]))
            continue;
        fv_buf_init(&b, FV_STORE_SQL_MAX);
        rc = fv_buf_appendf(&b, "SELECT 1 FROM \"%s\" WHERE \"%s\" IN ", sf->table,
                            sf->col_names[sf->col_off[i] + FV_MODEL_ENC_COL_BIDX]);
        if (rc == FV_OK)
            rc = fv_model_bidx_list_sql(&b, 1);
        if (rc == FV_OK)
            rc = fv_buf_append_cstr(&b, " AND \"ID\" <> ?2 LIMIT 1");
        if (rc == FV_OK)
            rc = sealed_message(app, p, i, &msg, &msg_len);
        if (rc == FV_OK)
            rc = fv_store_field_tokens(t, msg, msg_len, tokens, &tok_len);
        message_free(msg, msg_len);
        if (rc == FV_OK)
            rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
        if (rc == FV_OK) {
            (void)sqlite3_bind_blob(st, 1, tokens, (int)tok_len, SQLITE_TRANSIENT);
            (void)sqlite3_bind_int64(st, 2, id);
            int src = sqlite3_step(st);
            if (src == SQLITE_ROW)
                rc = fv_error_set(err, FV_E_CONFLICT, SIZE_MAX,
                                  "duplicate value for unique field '%s'", f->link_name);
            else if (src != SQLITE_DONE)
                rc = fv_store_sqlite_err(src);
        }
        fv_store_stmt_done(st);
        fv_buf_release(&b);
        fv_wipe(tokens, sizeof(tokens));
        if (rc != FV_OK && rc != FV_E_CONFLICT && rc != FV_E_NOMEM)
            rc = fv_error_set(err, rc, SIZE_MAX, "field '%s' could not be checked", f->link_name);
    }
    return rc;
}

static int do_insert(struct fv_tenant *t, struct fv_store_fcx *x, const struct fv_app *app,
                     struct fv_store_prep *p, const char *actor, const char *now_text,
                     int64_t now_ms)
{
    const struct fv_store_form *sf = p->sf;
    struct fv_store_write *w = p->w;
    sqlite3_stmt *st = NULL;
    char *row = NULL;
    size_t row_len = 0;
    int rc = FV_OK;

    if (t->next_id == INT64_MAX)
        return fv_error_set(&w->err, FV_E_LIMIT, SIZE_MAX, "record IDs exhausted");
    int64_t id = t->next_id++;

    for (size_t i = 0; i < sf->form->n_fields; i++) {
        const struct fv_field *f = &sf->form->fields[i];
        if (f->type != FV_FIELD_AUTONUMBER)
            continue;
        int64_t num = 0;
        rc = next_autonumber(t, app, sf->form, f, &num);
        if (rc != FV_OK)
            return fv_error_set(&w->err, rc, SIZE_MAX, "autonumber for '%s' failed", f->link_name);
        struct fv_sqlval *v = &p->vals[sf->col_off[i]];
        fv_model_sqlval_release(v);
        if (sf->col_types[sf->col_off[i]] == FV_SQL_TEXT) {
            char tmp[128];
            int len = snprintf(tmp, sizeof(tmp), "%s%lld",
                               f->autonumber_prefix ? f->autonumber_prefix : "", (long long)num);
            if (len < 0 || (size_t)len >= sizeof(tmp))
                return fv_error_set(&w->err, FV_E_LIMIT, SIZE_MAX, "autonumber too long");
            v->s = fv_strndup(tmp, (size_t)len);
            if (!v->s)
                return FV_E_NOMEM;
            v->type = FV_SQL_TEXT;
            v->len = (size_t)len;
        } else {
            v->type = FV_SQL_INT;
            v->i = num;
        }
    }
    rc = check_lookups(t, p);
    if (rc == FV_OK)
        rc = check_unique_sealed(t, app, p, id, false, &w->err);
    if (rc != FV_OK)
        return rc;

    rc = fv_store_conn_prepare(t->writer, sf->insert_sql, sf->insert_len, &st);
    if (rc != FV_OK)
        return rc;
    (void)sqlite3_bind_int64(st, 1, id);
    (void)sqlite3_bind_text(st, 2, now_text, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(st, 3, now_text, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(st, 4, actor, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(st, 5, actor, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(st, 6, 1);
    for (size_t i = 0; rc == FV_OK && i < sf->form->n_fields; i++)
        rc = bind_field(x, app, p, i, id, st, (int)sf->col_off[i] + 7, &w->err);
    if (rc != FV_OK)
        goto out;
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = step_error(t, sf, src, &w->err);
        goto out;
    }
    rc = fv_store_row_image_form(st, sf, &row, &row_len);
    if (rc != FV_OK)
        goto out;
    src = sqlite3_step(st);
    if (src != SQLITE_DONE) {
        rc = step_error(t, sf, src, &w->err);
        goto out;
    }
    fv_store_stmt_done(st);
    st = NULL;
    rc = fv_store_changelog_append(t->writer, now_ms, actor, "insert", app->link_name,
                                   sf->form->link_name, id, row, row_len);
    if (rc != FV_OK)
        goto out;
    w->ret_id = (uint64_t)id;
out:
    fv_store_stmt_done(st);
    fv_free(row);
    return rc;
}

/* Does record id match where (NULL = yes)? FV_OK, FV_E_NO_RECORD or error. */
static int record_matches(struct fv_tenant *t, const struct fv_store_form *sf, int64_t id,
                          const struct fv_sql_where *where)
{
    struct fv_buf b;
    sqlite3_stmt *st = NULL;
    int rc;
    fv_buf_init(&b, FV_STORE_SQL_MAX);
    /* The fragment comes first so its parameters are ?1..?n. */
    if (where && where->sql.len)
        rc = fv_buf_appendf(&b, "SELECT 1 FROM \"%s\" WHERE (%s) AND \"ID\" = ?%zu", sf->table,
                            where->sql.p, where->n_params + 1);
    else
        rc = fv_buf_appendf(&b, "SELECT 1 FROM \"%s\" WHERE \"ID\" = ?1", sf->table);
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
    if (rc == FV_OK && where && where->sql.len)
        rc = fv_store_field_bind_where(t, st, where);
    if (rc == FV_OK) {
        (void)sqlite3_bind_int64(st, where && where->sql.len ? (int)where->n_params + 1 : 1, id);
        int src = sqlite3_step(st);
        rc = src == SQLITE_ROW    ? FV_OK
             : src == SQLITE_DONE ? FV_E_NO_RECORD
                                  : fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    fv_buf_release(&b);
    return rc;
}

static int do_update_one(struct fv_tenant *t, struct fv_store_fcx *x, const struct fv_app *app,
                         struct fv_store_prep *p, int64_t id, const char *actor,
                         const char *now_text, int64_t now_ms, struct fv_error *err)
{
    const struct fv_store_form *sf = p->sf;
    struct fv_buf b;
    sqlite3_stmt *st = NULL;
    char *row = NULL;
    size_t row_len = 0;
    int rc = FV_OK;
    int n = 0;

    fv_buf_init(&b, FV_STORE_SQL_MAX);
    rc = check_unique_sealed(t, app, p, id, true, err);
    if (rc == FV_OK)
        rc = fv_buf_appendf(&b, "UPDATE \"%s\" SET ", sf->table);
    for (size_t i = 0; rc == FV_OK && i < sf->form->n_fields; i++) {
        if (!p->present[i])
            continue;
        for (size_t k = 0; rc == FV_OK && k < sf->col_n[i]; k++) {
            n++;
            rc = fv_buf_appendf(&b, "\"%s\" = ?%d, ", sf->col_names[sf->col_off[i] + k], n);
        }
    }
    if (rc == FV_OK)
        rc = fv_buf_appendf(&b,
                            "\"Modified_Time\" = ?%d, \"Modified_User\" = ?%d, \"row_version\" = "
                            "\"row_version\" + 1 WHERE \"ID\" = ?%d RETURNING *",
                            n + 1, n + 2, n + 3);
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
    if (rc != FV_OK)
        goto out;
    n = 0;
    for (size_t i = 0; rc == FV_OK && i < sf->form->n_fields; i++) {
        if (!p->present[i])
            continue;
        rc = bind_field(x, app, p, i, id, st, n + 1, err);
        n += (int)sf->col_n[i];
    }
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_text(st, n + 1, now_text, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_text(st, n + 2, actor, -1, SQLITE_TRANSIENT);
    (void)sqlite3_bind_int64(st, n + 3, id);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = fv_error_set(err, FV_E_NO_RECORD, SIZE_MAX, "no record with that ID");
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = step_error(t, sf, src, err);
        goto out;
    }
    rc = fv_store_row_image_form(st, sf, &row, &row_len);
    if (rc != FV_OK)
        goto out;
    src = sqlite3_step(st);
    if (src != SQLITE_DONE) {
        rc = step_error(t, sf, src, err);
        goto out;
    }
    fv_store_stmt_done(st);
    st = NULL;
    rc = fv_store_changelog_append(t->writer, now_ms, actor, "update", app->link_name,
                                   sf->form->link_name, id, row, row_len);
out:
    fv_store_stmt_done(st);
    fv_buf_release(&b);
    fv_free(row);
    return rc;
}

static int do_delete_one(struct fv_tenant *t, const struct fv_app *app,
                         const struct fv_store_form *sf, int64_t id, const char *actor,
                         int64_t now_ms, struct fv_error *err)
{
    struct fv_buf b;
    sqlite3_stmt *st = NULL;
    int rc;
    fv_buf_init(&b, FV_STORE_SQL_MAX);
    rc = fv_buf_appendf(&b, "DELETE FROM \"%s\" WHERE \"ID\" = ?1", sf->table);
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_int64(st, 1, id);
    int src = sqlite3_step(st);
    if (src != SQLITE_DONE) {
        rc = step_error(t, sf, src, err);
        goto out;
    }
    if (sqlite3_changes(t->writer->db) == 0) {
        rc = fv_error_set(err, FV_E_NO_RECORD, SIZE_MAX, "no record with that ID");
        goto out;
    }
    fv_store_stmt_done(st);
    st = NULL;
    rc = fv_store_changelog_append(t->writer, now_ms, actor, "delete", app->link_name,
                                   sf->form->link_name, id, NULL, 0);
out:
    fv_store_stmt_done(st);
    fv_buf_release(&b);
    return rc;
}

/* Savepoint helpers; a failure to roll back to a savepoint is fatal for the batch. */
static int sp_exec(struct fv_tenant *t, const char *sql, size_t len)
{
    sqlite3_stmt *st = NULL;
    int rc = fv_store_conn_prepare(t->writer, sql, len, &st);
    if (rc != FV_OK)
        return rc;
    int src = sqlite3_step(st);
    fv_store_stmt_done(st);
    return src == SQLITE_DONE ? FV_OK : fv_store_sqlite_err(src);
}
#define SP(t, lit) sp_exec((t), (lit), sizeof(lit) - 1)

/* Undo a failed unit: ROLLBACK TO + RELEASE. Returns a batch-fatal error
 * when the enclosing transaction is gone. */
static int sp_undo(struct fv_tenant *t, bool record)
{
    int rc = record ? SP(t, "ROLLBACK TO r") : SP(t, "ROLLBACK TO w");
    if (rc == FV_OK)
        rc = record ? SP(t, "RELEASE r") : SP(t, "RELEASE w");
    if (rc == FV_OK && sqlite3_get_autocommit(t->writer->db))
        rc = FV_E_IO;
    return rc;
}

static int do_where(struct fv_tenant *t, struct fv_store_fcx *x, const struct fv_app *app,
                    struct fv_store_prep *p, const char *actor, const char *now_text,
                    int64_t now_ms, int *ret_fatal)
{
    const struct fv_store_form *sf = p->sf;
    struct fv_store_write *w = p->w;
    const struct fv_sql_where *where = w->where;
    bool has_where = where && where->sql.len;
    struct fv_buf b;
    sqlite3_stmt *st = NULL;
    int64_t *ids = NULL;
    size_t n = 0;
    int rc;
    size_t want = w->limit + 1;

    fv_buf_init(&b, FV_STORE_SQL_MAX);
    if (w->limit > 100000) {
        rc = fv_error_set(&w->err, FV_E_LIMIT, SIZE_MAX, "limit too large");
        goto out;
    }
    ids = fv_calloc(want, sizeof(*ids));
    if (!ids) {
        rc = FV_E_NOMEM;
        goto out;
    }
    if (has_where)
        rc = fv_buf_appendf(&b, "SELECT \"ID\" FROM \"%s\" WHERE (%s) ORDER BY \"ID\" LIMIT ?%zu",
                            sf->table, where->sql.p, where->n_params + 1);
    else
        rc = fv_buf_appendf(&b, "SELECT \"ID\" FROM \"%s\" ORDER BY \"ID\" LIMIT ?1", sf->table);
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
    if (rc == FV_OK && has_where)
        rc = fv_store_field_bind_where(t, st, where);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_int64(st, has_where ? (int)where->n_params + 1 : 1, (int64_t)want);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && n < want)
        ids[n++] = sqlite3_column_int64(st, 0);
    fv_store_stmt_done(st);
    st = NULL;
    if (src != SQLITE_DONE && src != SQLITE_ROW) {
        rc = step_error(t, sf, src, &w->err);
        goto out;
    }
    if (n == 0) {
        rc = fv_error_set(&w->err, FV_E_NO_MATCH, SIZE_MAX, "no records match the criteria");
        goto out;
    }
    if (n > w->limit && !w->process_until_limit) {
        rc = fv_error_set(&w->err, FV_E_TOO_MANY_MATCHES, SIZE_MAX,
                          "more than %zu records match the criteria", w->limit);
        goto out;
    }
    w->more_records = n > w->limit;
    if (n > w->limit)
        n = w->limit;
    if (w->op == FV_STORE_UPDATE_WHERE) {
        rc = check_lookups(t, p);
        if (rc != FV_OK)
            goto out;
    }
    w->results = fv_calloc(n, sizeof(*w->results));
    if (!w->results) {
        rc = FV_E_NOMEM;
        goto out;
    }
    w->n_results = n;
    for (size_t i = 0; i < n; i++) {
        struct fv_store_result *r = &w->results[i];
        r->id = (uint64_t)ids[i];
        fv_error_init(&r->err);
        rc = SP(t, "SAVEPOINT r");
        if (rc != FV_OK) {
            *ret_fatal = rc;
            goto out;
        }
        if (w->op == FV_STORE_UPDATE_WHERE)
            r->rc = do_update_one(t, x, app, p, ids[i], actor, now_text, now_ms, &r->err);
        else
            r->rc = do_delete_one(t, app, sf, ids[i], actor, now_ms, &r->err);
        rc = r->rc == FV_OK ? SP(t, "RELEASE r") : sp_undo(t, true);
        if (rc != FV_OK) {
            *ret_fatal = rc;
            goto out;
        }
    }
    rc = FV_OK;
out:
    fv_store_stmt_done(st);
    fv_buf_release(&b);
    fv_free(ids);
    return rc;
}

static int prep_exec(struct fv_tenant *t, struct fv_store_fcx *x, const struct fv_app *app,
                     struct fv_store_prep *p, const char *actor, int64_t now_ms)
{
    struct fv_store_write *w = p->w;
    char now_text[32];
    int rc, fatal = FV_OK;

    bool has_where = w->where && w->where->sql.len;
    if (!p->ready)
        return FV_OK;
    fv_store_time_text(now_ms, now_text, sizeof(now_text));
    rc = SP(t, "SAVEPOINT w");
    if (rc != FV_OK)
        return rc;
    switch (w->op) {
    case FV_STORE_INSERT:
        rc = do_insert(t, x, app, p, actor, now_text, now_ms);
        break;
    case FV_STORE_UPDATE_ID:
        /* without criteria the UPDATE itself reports a missing record */
        rc = has_where ? record_matches(t, p->sf, (int64_t)w->id, w->where) : FV_OK;
        if (rc == FV_OK)
            rc = check_lookups(t, p);
        if (rc == FV_OK)
            rc = do_update_one(t, x, app, p, (int64_t)w->id, actor, now_text, now_ms, &w->err);
        break;
    case FV_STORE_DELETE_ID:
        rc = has_where ? record_matches(t, p->sf, (int64_t)w->id, w->where) : FV_OK;
        if (rc == FV_OK)
            rc = do_delete_one(t, app, p->sf, (int64_t)w->id, actor, now_ms, &w->err);
        break;
    case FV_STORE_UPDATE_WHERE:
    case FV_STORE_DELETE_WHERE:
        rc = do_where(t, x, app, p, actor, now_text, now_ms, &fatal);
        if (fatal != FV_OK)
            return fatal;
        break;
    default:
        rc = FV_E_INVALID;
        break;
    }
    if (rc == FV_OK) {
        if (w->op == FV_STORE_UPDATE_ID || w->op == FV_STORE_DELETE_ID)
            w->ret_id = w->id;
        return SP(t, "RELEASE w");
    }
    if (rc == FV_E_NO_RECORD && w->err.code == FV_OK)
        (void)fv_error_set(&w->err, rc, SIZE_MAX, "no record with that ID");
    if (w->err.code == FV_OK)
        (void)fv_error_set(&w->err, rc, SIZE_MAX, "the write failed");
    w->rc = rc;
    FV_FREE(w->results);
    w->n_results = 0;
    w->more_records = false;
    w->ret_id = 0;
    return sp_undo(t, false);
}

int fv_store_prep_exec(struct fv_tenant *t, const struct fv_app *app, struct fv_store_prep *p,
                       const char *actor, int64_t now_ms)
{
    /* the writer connection's field AEAD contexts (the caller holds the writer) */
    struct fv_store_fcx x;
    fv_store_fcx_init(&x, t, t->writer);
    int rc = prep_exec(t, &x, app, p, actor, now_ms);
    fv_store_fcx_release(&x);
    return rc;
}

/* ------------------------------------------------------------------ reads */

enum col_kind { COL_FIELD, COL_TIME, COL_TEXT };

struct col_plan {
    enum col_kind kind;
    const char *name; /* JSON key */
    const struct fv_field *field;
    size_t first; /* first result column */
    size_t ncols;
    int display; /* result column of the lookup display, or -1 */
    bool sealed; /* an encrypted field: one result column, the sealed text */
    /* lookups whose display field is encrypted: the display column holds its
     * sealed text (a map ID -> sealed text for multi lookups) */
    const struct fv_field *display_sealed;
    const char *display_form;
};

static const char *const sys_time_cols[] = {"Added_Time", "Modified_Time"};
static const char *const sys_text_cols[] = {"Added_User", "Modified_User"};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* Sort column for sort_field: SQL column name (no quotes) or NULL for ID. */
static int sort_column(const struct fv_store_form *sf, const char *sort_field, const char **ret)
{
    if (!sort_field || !sort_field[0] || strcmp(sort_field, "ID") == 0) {
        *ret = NULL;
        return FV_OK;
    }
    if (in_list(sort_field, sys_time_cols, 2) || in_list(sort_field, sys_text_cols, 2)) {
        *ret = sort_field;
        return FV_OK;
    }
    const struct fv_field *f = fv_model_form_field(sf->form, sort_field);
    if (!f)
        return FV_E_NO_FIELD;
    if (f->encrypt)
        return FV_E_INVALID; /* app validation refuses such a sort; ciphertext has no order */
    *ret = sf->col_names[sf->col_off[f - sf->form->fields]];
    return FV_OK;
}

/* ---- cursor: base64url (no padding) of
 *   [0] version 1, [1] mode, [2] flags (bit 0 desc), [3..6] shape hash (BE),
 *   [7..14] last ID (BE), [15..] value (int/real: 8 bytes BE; text: bytes) */
#define CUR_HDR 15
#define CUR_MAX_RAW 512

enum {
    CUR_ID = 'I',
    CUR_NULL = 'N',
    CUR_INT = 'i',
    CUR_REAL = 'r',
    CUR_TEXT = 't',
    CUR_LOOK = 'L'
};

struct cursor {
    int mode;
    bool desc;
    uint32_t shape;
    int64_t last_id;
    int64_t i;
    double r;
    const uint8_t *text;
    size_t text_len;
    uint8_t raw[CUR_MAX_RAW];
};

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t shape_hash(const char *table, const char *sort_col, bool desc)
{
    uint32_t h = 2166136261u;
    const char *parts[2] = {table, sort_col ? sort_col : "ID"};
    for (size_t k = 0; k < 2; k++) {
        for (const char *p = parts[k]; *p; p++) {
            h ^= (unsigned char)*p;
            h *= 16777619u;
        }
        h ^= 0xff;
        h *= 16777619u;
    }
    return h ^ (desc ? 1u : 0u);
}

static int cursor_decode(const char *s, uint32_t shape, bool by_id, struct cursor *c)
{
    size_t n = 0, len = strlen(s);
    if (len > (CUR_MAX_RAW / 3) * 4)
        return FV_E_CURSOR;
    if (fv_store_b64u_decode(s, len, c->raw, sizeof(c->raw), &n) != FV_OK || n < CUR_HDR)
        return FV_E_CURSOR;
    if (c->raw[0] != 1)
        return FV_E_CURSOR;
    c->mode = c->raw[1];
    c->desc = c->raw[2] & 1;
    c->shape = (uint32_t)c->raw[3] << 24 | (uint32_t)c->raw[4] << 16 | (uint32_t)c->raw[5] << 8 |
               c->raw[6];
    uint64_t id = get_be64(c->raw + 7);
    if (c->shape != shape || id == 0 || id > (uint64_t)INT64_MAX)
        return FV_E_CURSOR;
    c->last_id = (int64_t)id;
    size_t vlen = n - CUR_HDR;
    const uint8_t *v = c->raw + CUR_HDR;
    switch (c->mode) {
    case CUR_ID:
        return by_id && vlen == 0 ? FV_OK : FV_E_CURSOR;
    case CUR_NULL:
    case CUR_LOOK:
        return !by_id && vlen == 0 ? FV_OK : FV_E_CURSOR;
    case CUR_INT:
        if (by_id || vlen != 8)
            return FV_E_CURSOR;
        c->i = (int64_t)get_be64(v);
        return FV_OK;
    case CUR_REAL: {
        if (by_id || vlen != 8)
            return FV_E_CURSOR;
        uint64_t bits = get_be64(v);
        memcpy(&c->r, &bits, sizeof(bits));
        return c->r == c->r ? FV_OK : FV_E_CURSOR; /* NaN never stored */
    }
    case CUR_TEXT:
        if (by_id)
            return FV_E_CURSOR;
        c->text = v;
        c->text_len = vlen;
        return FV_OK;
    default:
        return FV_E_CURSOR;
    }
}

/* Encode a cursor after the row st currently holds (sort value at column kcol). */
static int cursor_encode(sqlite3_stmt *st, int kcol, int64_t last_id, bool by_id, bool desc,
                         uint32_t shape, char *out, size_t cap)
{
    uint8_t raw[CUR_MAX_RAW];
    size_t n = CUR_HDR;
    raw[0] = 1;
    raw[2] = desc ? 1 : 0;
    raw[3] = (uint8_t)(shape >> 24);
    raw[4] = (uint8_t)(shape >> 16);
    raw[5] = (uint8_t)(shape >> 8);
    raw[6] = (uint8_t)shape;
    put_be64(raw + 7, (uint64_t)last_id);
    if (by_id) {
        raw[1] = CUR_ID;
    } else {
        switch (sqlite3_column_type(st, kcol)) {
        case SQLITE_NULL:
            raw[1] = CUR_NULL;
            break;
        case SQLITE_INTEGER:
            raw[1] = CUR_INT;
            put_be64(raw + n, (uint64_t)sqlite3_column_int64(st, kcol));
            n += 8;
            break;
        case SQLITE_FLOAT: {
            double d = sqlite3_column_double(st, kcol);
            uint64_t bits;
            memcpy(&bits, &d, sizeof(bits));
            raw[1] = CUR_REAL;
            put_be64(raw + n, bits);
            n += 8;
            break;
        }
        default: {
            const void *p = sqlite3_column_blob(st, kcol);
            size_t len = (size_t)sqlite3_column_bytes(st, kcol);
            /* Embed the value when the cursor stays within cap; else the next
             * page re-reads the sort value of last_id (CUR_LOOK). */
            size_t room = cap > 0 ? ((cap - 1) / 4) * 3 : 0;
            if (n + len <= room && n + len <= sizeof(raw)) {
                raw[1] = CUR_TEXT;
                if (len)
                    memcpy(raw + n, p, len);
                n += len;
            } else {
                raw[1] = CUR_LOOK;
            }
            break;
        }
        }
    }
    if (fv_store_b64u_len(n) + 1 > cap)
        return FV_E_LIMIT;
    fv_store_b64u_encode(raw, n, out);
    return FV_OK;
}

/* Bind the cursor's sort value at index i. */
static void bind_cursor_value(sqlite3_stmt *st, int i, const struct cursor *c)
{
    switch (c->mode) {
    case CUR_INT:
        (void)sqlite3_bind_int64(st, i, c->i);
        break;
    case CUR_REAL:
        (void)sqlite3_bind_double(st, i, c->r);
        break;
    case CUR_TEXT:
        (void)sqlite3_bind_text(st, i, (const char *)c->text, (int)c->text_len, SQLITE_TRANSIENT);
        break;
    default:
        (void)sqlite3_bind_null(st, i);
        break;
    }
}

/* CUR_LOOK: re-read the sort value of the cursor's last record. */
static int cursor_lookup(struct fv_store_conn *c, const struct fv_store_form *sf,
                         const char *sort_col, struct cursor *cur)
{
    struct fv_buf b;
    sqlite3_stmt *st = NULL;
    int rc;
    fv_buf_init(&b, FV_STORE_SQL_MAX);
    rc = fv_buf_appendf(&b, "SELECT \"%s\" FROM \"%s\" WHERE \"ID\" = ?1", sort_col, sf->table);
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(c, b.p, b.len, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_int64(st, 1, cur->last_id);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        rc = FV_E_CURSOR; /* the record was deleted: the cursor is stale */
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = fv_store_sqlite_err(src);
        goto out;
    }
    switch (sqlite3_column_type(st, 0)) {
    case SQLITE_NULL:
        cur->mode = CUR_NULL;
        break;
    case SQLITE_INTEGER:
        cur->mode = CUR_INT;
        cur->i = sqlite3_column_int64(st, 0);
        break;
    case SQLITE_FLOAT:
        cur->mode = CUR_REAL;
        cur->r = sqlite3_column_double(st, 0);
        break;
    default: {
        size_t len = (size_t)sqlite3_column_bytes(st, 0);
        if (len > sizeof(cur->raw)) {
            rc = FV_E_LIMIT;
            goto out;
        }
        memcpy(cur->raw, sqlite3_column_blob(st, 0), len);
        cur->mode = CUR_TEXT;
        cur->text = cur->raw;
        cur->text_len = len;
        break;
    }
    }
out:
    fv_store_stmt_done(st);
    fv_buf_release(&b);
    return rc;
}

static int add_output_field(const struct fv_store_form *sf, const struct fv_field *f,
                            struct fv_tenant *t, struct fv_buf *b, struct col_plan *plan,
                            size_t *ncol)
{
    size_t fi = (size_t)(f - sf->form->fields);
    int rc = FV_OK;
    plan->kind = COL_FIELD;
    plan->name = f->link_name;
    plan->field = f;
    plan->first = *ncol;
    plan->ncols = sf->col_n[fi];
    plan->display = -1;
    if (f->encrypt) {
        plan->sealed = true;
        plan->ncols = 1;
        *ncol += 1;
        return fv_buf_appendf(b, ", \"%s\".\"%s\"", sf->table,
                              sf->col_names[sf->col_off[fi] + FV_MODEL_ENC_COL_DATA]);
    }
    for (size_t k = 0; rc == FV_OK && k < sf->col_n[fi]; k++)
        rc = fv_buf_appendf(b, ", \"%s\".\"%s\"", sf->table, sf->col_names[sf->col_off[fi] + k]);
    *ncol += sf->col_n[fi];
    if (rc != FV_OK || f->type != FV_FIELD_LOOKUP)
        return rc;
    const struct fv_store_form *tsf = fv_store_form_find(t, f->lookup_target, NULL);
    const struct fv_field *df =
        tsf && f->lookup_display ? fv_model_form_field(tsf->form, f->lookup_display) : NULL;
    if (!df)
        return FV_OK;
    const char *col = sf->col_names[sf->col_off[fi]];
    if (f->lookup_multi) {
        rc = fv_buf_appendf(b,
                            ", (SELECT CASE WHEN json_valid(\"%s\".\"%s\") THEN (SELECT "
                            "json_group_object(CAST(j.value AS TEXT), ",
                            sf->table, col);
        if (rc == FV_OK)
            rc = display_expr(tsf, df, "d", true, b);
        if (rc == FV_OK)
            rc = fv_buf_appendf(b,
                                ") FROM json_each(\"%s\".\"%s\") AS j JOIN \"%s\" AS d ON "
                                "d.\"ID\" = j.value) END)",
                                sf->table, col, tsf->table);
    } else {
        rc = fv_buf_append_cstr(b, ", (SELECT ");
        if (rc == FV_OK)
            rc = display_expr(tsf, df, "d", false, b);
        if (rc == FV_OK)
            rc = fv_buf_appendf(b, " FROM \"%s\" AS d WHERE d.\"ID\" = \"%s\".\"%s\")", tsf->table,
                                sf->table, col);
    }
    plan->display = (int)*ncol;
    if (df->encrypt) {
        plan->display_sealed = df;
        plan->display_form = tsf->form->link_name;
    }
    *ncol += 1;
    return rc;
}

static const char *col_text(sqlite3_stmt *st, size_t i)
{
    return (const char *)sqlite3_column_text(st, (int)i);
}

/* Multi lookups: put each element's zc_display_value from the id->text map. */
static void patch_multi_display(json_t *arr, const char *map_text, size_t len)
{
    json_t *map = json_loadb(map_text, len, 0, NULL);
    size_t i;
    json_t *e;
    if (!map)
        return;
    json_array_foreach(arr, i, e)
    {
        json_t *id = json_object_get(e, "ID");
        char buf[32];
        const char *key = NULL;
        if (json_is_string(id)) {
            key = json_string_value(id);
        } else if (json_is_integer(id)) {
            (void)snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(id));
            key = buf;
        }
        const char *disp = key ? json_string_value(json_object_get(map, key)) : NULL;
        if (disp)
            (void)json_object_set_new(e, "zc_display_value", json_string(disp));
    }
    json_decref(map);
}

/* The output value of encrypted field cp->field of the record st holds. */
static int format_sealed(struct fv_store_fcx *x, const struct fv_app *app,
                         const struct fv_form *form, sqlite3_stmt *st, const struct col_plan *cp,
                         json_t **ret)
{
    const struct fv_field *f = cp->field;
    struct fv_sqlval cols[FV_MODEL_MAX_COLS];
    size_t n = fv_model_field_value_ncols(f);
    uint8_t small[512];
    uint8_t *m = NULL;
    size_t mlen = 0;
    int64_t id = sqlite3_column_int64(st, 0);
    int rc;

    memset(cols, 0, sizeof(cols));
    if (sqlite3_column_type(st, (int)cp->first) != SQLITE_NULL) {
        /* most values fit the stack buffer: no allocation per value */
        const uint8_t *sealed = sqlite3_column_blob(st, (int)cp->first);
        size_t len = (size_t)sqlite3_column_bytes(st, (int)cp->first);
        rc = fv_store_field_open_buf(x, app->link_name, form->link_name, f->link_name, id, sealed,
                                     len, small, sizeof(small), &mlen, NULL);
        if (rc == FV_E_LIMIT)
            rc = fv_store_field_open(x, app->link_name, form->link_name, f->link_name, id, sealed,
                                     len, &m, &mlen, NULL);
        if (rc == FV_OK)
            rc = fv_model_value_decode(f, m ? m : small, mlen, cols);
        fv_wipe(m ? m : small, mlen);
        fv_free(m);
        if (rc != FV_OK) {
            /* the request fails: never garbage, never a silent empty value */
            fv_log(FV_LOG_DEBUG,
                   "store: tenant %lld: field '%s' of form '%s' record %lld does not open: %s",
                   (long long)x->t->id, f->link_name, form->link_name, (long long)id,
                   fv_strerror(rc));
            return rc;
        }
    }
    *ret = fv_model_value_format(app, f, cols, NULL);
    for (size_t k = 0; k < n; k++) {
        if (cols[k].type == FV_SQL_TEXT && cols[k].s)
            fv_wipe(cols[k].s, cols[k].len);
        fv_model_sqlval_release(&cols[k]);
    }
    return *ret ? FV_OK : FV_E_NOMEM;
}

/*
 * Display text of target record id from the sealed value of its encrypted
 * display field (new string, or NULL when empty). Failure fails the read.
 */
static int open_display(struct fv_store_fcx *x, const struct fv_app *app, const struct col_plan *cp,
                        int64_t id, const uint8_t *sealed, size_t len, char **ret)
{
    const struct fv_field *df = cp->display_sealed;
    struct fv_sqlval col[FV_MODEL_MAX_COLS];
    uint8_t *m = NULL;
    size_t mlen = 0;
    char buf[40];
    int rc = fv_store_field_open(x, app->link_name, cp->display_form, df->link_name, id, sealed,
                                 len, &m, &mlen, NULL);
    if (rc == FV_OK)
        rc = fv_model_value_decode(df, m, mlen, col);
    if (m) {
        fv_wipe(m, mlen);
        fv_free(m);
    }
    if (rc != FV_OK) {
        fv_log(FV_LOG_DEBUG,
               "store: tenant %lld: display field '%s' of form '%s' record %lld does not open: %s",
               (long long)x->t->id, df->link_name, cp->display_form, (long long)id,
               fv_strerror(rc));
        return rc;
    }
    *ret = NULL;
    switch (col[0].type) {
    case FV_SQL_TEXT:
        *ret = col[0].s; /* takes the decoded text */
        col[0].s = NULL;
        break;
    case FV_SQL_INT:
        (void)snprintf(buf, sizeof(buf), "%lld", (long long)col[0].i);
        *ret = fv_strdup(buf);
        break;
    case FV_SQL_REAL:
        (void)snprintf(buf, sizeof(buf), "%.15g", col[0].r);
        *ret = fv_strdup(buf);
        break;
    default:
        break;
    }
    bool oom = col[0].type != FV_SQL_NULL && !*ret;
    fv_model_sqlval_release(&col[0]);
    return oom ? FV_E_NOMEM : FV_OK;
}

/* Decode hex text (SQLite hex(), upper case) into a new buffer. FV_E_CORRUPT. */
static int hex_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len)
{
    if (n % 2 != 0)
        return FV_E_CORRUPT;
    uint8_t *p = fv_malloc(n / 2 + 1);
    if (!p)
        return FV_E_NOMEM;
    for (size_t i = 0; i < n; i += 2) {
        int v = 0;
        for (size_t k = 0; k < 2; k++) {
            char c = s[i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) {
                fv_free(p);
                return FV_E_CORRUPT;
            }
            v = v << 4 | d;
        }
        p[i / 2] = (uint8_t)v;
    }
    *ret = p;
    *ret_len = n / 2;
    return FV_OK;
}

/* Multi lookups: the map ID -> sealed value (hex) as a new map ID -> display text. */
static int open_display_map(struct fv_store_fcx *x, const struct fv_app *app,
                            const struct col_plan *cp, const char *map_text, size_t len, char **ret,
                            size_t *ret_len)
{
    json_t *map = json_loadb(map_text, len, 0, NULL);
    json_t *out = json_object();
    const char *key;
    json_t *val;
    int rc = FV_OK;
    if (!map || !out) {
        json_decref(map);
        json_decref(out);
        return map ? FV_E_NOMEM : FV_E_CORRUPT;
    }
    json_object_foreach(map, key, val)
    {
        int64_t id = 0;
        char *disp = NULL;
        uint8_t *sealed = NULL;
        size_t sealed_len = 0;
        if (!json_is_string(val) || json_string_length(val) == 0)
            continue; /* hex(NULL) is '': no value */
        if (fv_parse_i64(key, strlen(key), &id) != FV_OK) {
            rc = FV_E_CORRUPT;
            break;
        }
        rc = hex_decode(json_string_value(val), json_string_length(val), &sealed, &sealed_len);
        if (rc == FV_OK)
            rc = open_display(x, app, cp, id, sealed, sealed_len, &disp);
        fv_free(sealed);
        if (rc == FV_OK && disp && json_object_set_new(out, key, json_string(disp)) != 0)
            rc = FV_E_NOMEM;
        fv_free(disp);
        if (rc != FV_OK)
            break;
    }
    if (rc == FV_OK)
        rc = fv_store_json_dump(out, ret, ret_len);
    json_decref(map);
    json_decref(out);
    return rc;
}

static int format_row(struct fv_store_fcx *x, const struct fv_app *app, const struct fv_form *form,
                      sqlite3_stmt *st, const struct col_plan *plan, size_t nplan, json_t **ret)
{
    char idbuf[24];
    json_t *o = json_object();
    if (!o)
        return FV_E_NOMEM;
    (void)snprintf(idbuf, sizeof(idbuf), "%lld", (long long)sqlite3_column_int64(st, 0));
    if (json_object_set_new(o, "ID", json_string(idbuf)) != 0)
        goto nomem;
    for (size_t p = 0; p < nplan; p++) {
        const struct col_plan *cp = &plan[p];
        json_t *v = NULL;
        if (cp->kind == COL_TIME) {
            char out[64];
            const char *iso = col_text(st, cp->first);
            if (!iso)
                v = json_string("");
            else if (fv_model_datetime_format(app, iso, out, sizeof(out)) == FV_OK)
                v = json_string(out);
            else
                v = json_string(iso);
        } else if (cp->kind == COL_TEXT) {
            const char *s = col_text(st, cp->first);
            v = json_string(s ? s : "");
        } else if (cp->sealed) {
            int rc = format_sealed(x, app, form, st, cp, &v);
            if (rc != FV_OK) {
                json_decref(o);
                return rc;
            }
        } else {
            struct fv_sqlval cols[FV_MODEL_MAX_COLS];
            memset(cols, 0, sizeof(cols));
            for (size_t k = 0; k < cp->ncols; k++) {
                int ci = (int)(cp->first + k);
                switch (sqlite3_column_type(st, ci)) {
                case SQLITE_INTEGER:
                    cols[k].type = FV_SQL_INT;
                    cols[k].i = sqlite3_column_int64(st, ci);
                    break;
                case SQLITE_FLOAT:
                    cols[k].type = FV_SQL_REAL;
                    cols[k].r = sqlite3_column_double(st, ci);
                    break;
                case SQLITE_NULL:
                    cols[k].type = FV_SQL_NULL;
                    break;
                default:
                    /* Borrowed from SQLite until the next step; never released. */
                    cols[k].type = FV_SQL_TEXT;
                    cols[k].s = (char *)sqlite3_column_text(st, ci);
                    cols[k].len = (size_t)sqlite3_column_bytes(st, ci);
                    if (!cols[k].s)
                        goto nomem;
                    break;
                }
            }
            const char *disp = NULL;
            char *opened = NULL;
            size_t opened_len = 0;
            int orc = FV_OK;
            if (cp->display >= 0 && !cp->field->lookup_multi && cp->display_sealed) {
                /* the target's sealed display value (a BLOB) */
                if (cols[0].type == FV_SQL_INT &&
                    sqlite3_column_type(st, cp->display) != SQLITE_NULL)
                    orc = open_display(x, app, cp, cols[0].i, sqlite3_column_blob(st, cp->display),
                                       (size_t)sqlite3_column_bytes(st, cp->display), &opened);
                disp = opened;
            } else if (cp->display >= 0 && !cp->field->lookup_multi) {
                disp = col_text(st, (size_t)cp->display);
            }
            if (orc == FV_OK && cp->display >= 0 && cp->field->lookup_multi && cp->display_sealed &&
                sqlite3_column_type(st, cp->display) == SQLITE_TEXT)
                orc = open_display_map(x, app, cp, col_text(st, (size_t)cp->display),
                                       (size_t)sqlite3_column_bytes(st, cp->display), &opened,
                                       &opened_len);
            if (orc != FV_OK) {
                fv_free(opened);
                json_decref(o);
                return orc;
            }
            v = fv_model_value_format(app, cp->field, cols, disp);
            if (v && cp->display >= 0 && cp->field->lookup_multi && json_is_array(v) &&
                cp->display_sealed && opened)
                patch_multi_display(v, opened, opened_len);
            else if (v && cp->display >= 0 && cp->field->lookup_multi && json_is_array(v) &&
                     !cp->display_sealed && sqlite3_column_type(st, cp->display) == SQLITE_TEXT)
                patch_multi_display(v, col_text(st, (size_t)cp->display),
                                    (size_t)sqlite3_column_bytes(st, cp->display));
            if (opened) {
                fv_wipe(opened, strlen(opened));
                fv_free(opened);
            }
        }
        if (!v || json_object_set_new(o, cp->name, v) != 0)
            goto nomem;
    }
    *ret = o;
    return FV_OK;
nomem:
    json_decref(o);
    return FV_E_NOMEM;
}

int fv_store_sqlite_query(struct fv_tenant *t, const struct fv_app *app,
                          const struct fv_store_query *q, json_t **ret_rows, char *ret_cursor,
                          size_t cursor_cap)
{
    int rc = FV_OK;
    const struct fv_app *owner = NULL;
    const struct fv_store_form *sf = fv_store_form_find(t, q->form, &owner);
    struct fv_buf b;
    struct fv_store_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    struct col_plan *plan = NULL;
    size_t nplan = 0, ncol = 1;
    json_t *rows = NULL;
    const char *sort_col = NULL;
    struct cursor cur;
    bool have_cursor = q->cursor && q->cursor[0];
    bool has_where = q->where && q->where->sql.len;
    int kcol = -1;
    struct fv_store_fcx x;

    fv_store_fcx_init(&x, t, NULL); /* the reader's cache once it is taken */
    fv_buf_init(&b, FV_STORE_SQL_MAX);
    if (ret_cursor && cursor_cap)
        ret_cursor[0] = '\0';
    if (!sf || owner != app)
        return FV_E_NO_FORM;
    if (q->limit == 0 || q->limit > 100000 || q->offset > (size_t)INT64_MAX)
        return FV_E_PARAM;
    rc = sort_column(sf, q->sort_field, &sort_col);
    if (rc != FV_OK)
        return rc;
    uint32_t shape = shape_hash(sf->table, sort_col, q->sort_desc);
    memset(&cur, 0, sizeof(cur));
    if (have_cursor) {
        rc = cursor_decode(q->cursor, shape, sort_col == NULL, &cur);
        if (rc != FV_OK)
            return rc;
    }

    /* columns NULL: every field; columns given with n_columns 0: ID only */
    bool all_fields = q->columns == NULL;
    size_t ncols_req = all_fields ? sf->form->n_fields : q->n_columns;
    plan = fv_calloc(ncols_req ? ncols_req : 1, sizeof(*plan));
    if (!plan)
        return FV_E_NOMEM;
    rc = fv_buf_appendf(&b, "SELECT \"%s\".\"ID\"", sf->table);
    for (size_t i = 0; rc == FV_OK && i < ncols_req; i++) {
        if (all_fields) {
            rc = add_output_field(sf, &sf->form->fields[i], t, &b, &plan[nplan++], &ncol);
            continue;
        }
        const char *name = q->columns[i];
        if (!name) {
            rc = FV_E_NO_FIELD;
            break;
        }
        if (strcmp(name, "ID") == 0)
            continue;
        bool dup = false;
        for (size_t k = 0; k < nplan; k++)
            dup = dup || strcmp(plan[k].name, name) == 0;
        if (dup)
            continue;
        bool is_time = in_list(name, sys_time_cols, 2), is_text = in_list(name, sys_text_cols, 2);
        if (is_time || is_text) {
            struct col_plan *cp = &plan[nplan++];
            cp->kind = is_time ? COL_TIME : COL_TEXT;
            cp->name = is_time ? (strcmp(name, "Added_Time") == 0 ? "Added_Time" : "Modified_Time")
                               : (strcmp(name, "Added_User") == 0 ? "Added_User" : "Modified_User");
            cp->first = ncol++;
            cp->ncols = 1;
            cp->display = -1;
            rc = fv_buf_appendf(&b, ", \"%s\".\"%s\"", sf->table, cp->name);
            continue;
        }
        const struct fv_field *f = fv_model_form_field(sf->form, name);
        if (!f) {
            rc = FV_E_NO_FIELD;
            break;
        }
        rc = add_output_field(sf, f, t, &b, &plan[nplan++], &ncol);
    }
    if (rc == FV_OK && sort_col) {
        kcol = (int)ncol;
        rc = fv_buf_appendf(&b, ", \"%s\".\"%s\"", sf->table, sort_col);
    }
    if (rc == FV_OK)
        rc = fv_buf_appendf(&b, " FROM \"%s\" WHERE ", sf->table);
    /* The criteria fragment comes first so that its parameters are ?1..?n;
     * ours are numbered after it. */
    size_t np = has_where ? q->where->n_params : 0;
    size_t p_id = np + 1, p_val = np + 2, p_last = np + 3, p_lim = np + 4, p_off = np + 5;
    if (rc == FV_OK)
        rc = has_where ? fv_buf_appendf(&b, "(%s)", q->where->sql.p) : fv_buf_append_cstr(&b, "1");
    if (rc == FV_OK && q->id)
        rc = fv_buf_appendf(&b, " AND \"%s\".\"ID\" = ?%zu", sf->table, p_id);

    c = NULL;
    if (rc == FV_OK)
        rc = fv_store_pool_get(&t->readers, &c);
    if (rc == FV_OK)
        fv_store_fcx_init(&x, t, c); /* nothing sealed or opened yet */
    if (rc == FV_OK && have_cursor && cur.mode == CUR_LOOK)
        rc = cursor_lookup(c, sf, sort_col, &cur);
    if (rc == FV_OK && have_cursor) {
        const char *tb = sf->table;
        if (!sort_col)
            rc = fv_buf_appendf(&b, " AND \"%s\".\"ID\" %s ?%zu", tb, q->sort_desc ? "<" : ">",
                                p_last);
        else if (cur.mode == CUR_NULL && !q->sort_desc)
            rc = fv_buf_appendf(&b,
                                " AND ((\"%s\".\"%s\" IS NULL AND \"%s\".\"ID\" > ?%zu) OR "
                                "\"%s\".\"%s\" IS NOT NULL)",
                                tb, sort_col, tb, p_last, tb, sort_col);
        else if (cur.mode == CUR_NULL)
            rc = fv_buf_appendf(&b, " AND (\"%s\".\"%s\" IS NULL AND \"%s\".\"ID\" > ?%zu)", tb,
                                sort_col, tb, p_last);
        else
            rc = fv_buf_appendf(&b,
                                " AND (\"%s\".\"%s\" %s ?%zu OR (\"%s\".\"%s\" = ?%zu AND "
                                "\"%s\".\"ID\" > ?%zu)%s",
                                tb, sort_col, q->sort_desc ? "<" : ">", p_val, tb, sort_col, p_val,
                                tb, p_last, q->sort_desc ? "" : ")");
        /* descending: NULLs sort last, so they all follow a non-NULL value */
        if (rc == FV_OK && sort_col && cur.mode != CUR_NULL && q->sort_desc)
            rc = fv_buf_appendf(&b, " OR \"%s\".\"%s\" IS NULL)", tb, sort_col);
    }
    if (rc == FV_OK) {
        if (sort_col)
            rc = fv_buf_appendf(&b, " ORDER BY \"%s\".\"%s\" %s, \"%s\".\"ID\" ASC", sf->table,
                                sort_col, q->sort_desc ? "DESC" : "ASC", sf->table);
        else
            rc = fv_buf_appendf(&b, " ORDER BY \"%s\".\"ID\" %s", sf->table,
                                q->sort_desc ? "DESC" : "ASC");
    }
    if (rc == FV_OK)
        rc = fv_buf_appendf(&b, " LIMIT ?%zu OFFSET ?%zu", p_lim, p_off);
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(c, b.p, b.len, &st);
    if (rc == FV_OK && has_where)
        rc = fv_store_field_bind_where(t, st, q->where);
    if (rc != FV_OK)
        goto out;
    if (q->id)
        (void)sqlite3_bind_int64(st, (int)p_id, q->id > (uint64_t)INT64_MAX ? -1 : (int64_t)q->id);
    if (have_cursor) {
        bind_cursor_value(st, (int)p_val, &cur);
        (void)sqlite3_bind_int64(st, (int)p_last, cur.last_id);
    }
    (void)sqlite3_bind_int64(st, (int)p_lim, (int64_t)q->limit + 1);
    (void)sqlite3_bind_int64(st, (int)p_off, have_cursor ? 0 : (int64_t)q->offset);

    rows = json_array();
    if (!rows) {
        rc = FV_E_NOMEM;
        goto out;
    }
    size_t n = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == q->limit) {
            /* one more row exists: the cursor continues after the last returned */
            break;
        }
        json_t *row = NULL;
        rc = format_row(&x, app, sf->form, st, plan, nplan, &row);
        if (rc == FV_OK && json_array_append_new(rows, row) != 0)
            rc = FV_E_NOMEM;
        if (rc != FV_OK)
            goto out;
        n++;
        if (n == q->limit && ret_cursor && cursor_cap) {
            /* Remember the position now: the row is gone after the next step. */
            int64_t last = sqlite3_column_int64(st, 0);
            rc = cursor_encode(st, kcol, last, sort_col == NULL, q->sort_desc, shape, ret_cursor,
                               cursor_cap);
            if (rc != FV_OK)
                goto out;
        }
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE) {
        rc = fv_store_sqlite_err(src);
        goto out;
    }
    if (src == SQLITE_DONE && ret_cursor && cursor_cap)
        ret_cursor[0] = '\0'; /* no more rows */
    *ret_rows = rows;
    rows = NULL;
out:
    if (rc != FV_OK && ret_cursor && cursor_cap)
        ret_cursor[0] = '\0';
    fv_store_stmt_done(st);
    fv_store_fcx_release(&x);
    fv_store_pool_put(&t->readers, c);
    json_decref(rows);
    fv_free(plan);
    fv_buf_release(&b);
    return rc;
}

int fv_store_sqlite_count(struct fv_tenant *t, const struct fv_form *form,
                          const struct fv_sql_where *where, int64_t *ret_n)
{
    const struct fv_store_form *sf = fv_store_form_find(t, form, NULL);
    struct fv_buf b;
    struct fv_store_conn *c = NULL;
    sqlite3_stmt *st = NULL;
    int rc;
    bool has_where = where && where->sql.len;

    if (!sf)
        return FV_E_NO_FORM;
    fv_buf_init(&b, FV_STORE_SQL_MAX);
    if (has_where)
        rc = fv_buf_appendf(&b, "SELECT count(*) FROM \"%s\" WHERE (%s)", sf->table, where->sql.p);
    else
        rc = fv_buf_appendf(&b, "SELECT count(*) FROM \"%s\"", sf->table);
    if (rc == FV_OK)
        rc = fv_store_pool_get(&t->readers, &c);
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(c, b.p, b.len, &st);
    if (rc == FV_OK && has_where)
        rc = fv_store_field_bind_where(t, st, where);
    if (rc == FV_OK) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            *ret_n = sqlite3_column_int64(st, 0);
        else
            rc = fv_store_sqlite_err(src);
    }
    fv_store_stmt_done(st);
    fv_store_pool_put(&t->readers, c);
    fv_buf_release(&b);
    return rc;
}
