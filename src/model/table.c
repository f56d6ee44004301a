/*
 * model/table.c: SQL table naming for forms and the storage layout of
 * fields (see the naming note in model.h): the columns a field is stored in,
 * which for a field with `encrypt` are a blind index and one sealed value
 * whatever its type, and the deterministic encoding of an encrypted field's
 * value columns that both the sealed plaintext and the blind index use.
 */
#include <stdio.h>
#include <string.h>

#include "model/model_int.h"

int fv_model_form_table(const struct fv_app *app, const struct fv_form *form, char *ret, size_t cap)
{
    int n = snprintf(ret, cap, "f_%s__%s", app->link_name, form->link_name);
    if (n < 0 || (size_t)n >= cap)
        return FV_E_LIMIT;
    return FV_OK;
}

/* ------------------------------------------------------ storage columns */

bool fv_model_type_can_encrypt(enum fv_field_type t)
{
    switch (t) {
    case FV_FIELD_SINGLE_LINE:
    case FV_FIELD_MULTI_LINE:
    case FV_FIELD_EMAIL:
    case FV_FIELD_RICH_TEXT:
    case FV_FIELD_NUMBER:
    case FV_FIELD_DECIMAL:
    case FV_FIELD_PERCENT:
    case FV_FIELD_CURRENCY:
    case FV_FIELD_DATE:
    case FV_FIELD_DATETIME:
    case FV_FIELD_TIME:
    case FV_FIELD_DROPDOWN:
    case FV_FIELD_RADIO:
    case FV_FIELD_PHONE:
    case FV_FIELD_URL:
    case FV_FIELD_NAME:
    case FV_FIELD_ADDRESS:
        return true;
    default:
        return false;
    }
}

bool fv_model_field_has_bidx(const struct fv_field *f)
{
    return f->encrypt && fv_model_field_value_ncols(f) == 1;
}

size_t fv_model_field_ncols(const struct fv_field *f)
{
    return f->encrypt ? 2 : fv_model_field_value_ncols(f);
}

int fv_model_field_column(const struct fv_field *f, size_t i, char *ret_name, size_t cap,
                          enum fv_sql_type *ret_type, const char **ret_part)
{
    int n;
    if (!f->encrypt)
        return fv_model_field_value_column(f, i, ret_name, cap, ret_type, ret_part);
    if (i == FV_MODEL_ENC_COL_BIDX)
        n = snprintf(ret_name, cap, "c_%s__bidx", f->link_name);
    else if (i == FV_MODEL_ENC_COL_DATA)
        n = snprintf(ret_name, cap, "c_%s", f->link_name);
    else
        return FV_E_INVALID;
    if (n < 0 || (size_t)n >= cap)
        return FV_E_LIMIT;
    /* raw bytes: the sealed value and the blind index (src/store/README.md) */
    if (ret_type != NULL)
        *ret_type = FV_SQL_BLOB;
    if (ret_part != NULL)
        *ret_part = NULL;
    return FV_OK;
}

int fv_model_bidx_list_sql(struct fv_buf *out, size_t param)
{
    int rc = fv_buf_append_cstr(out, "(");
    for (size_t i = 0; rc == FV_OK && i < FV_MODEL_BIDX_SLOTS; i++)
        rc = fv_buf_appendf(out, "%ssubstr(?%zu, %zu, %d)", i ? ", " : "", param,
                            i * FV_MODEL_BIDX_BYTES + 1, FV_MODEL_BIDX_BYTES);
    return rc == FV_OK ? fv_buf_append_cstr(out, ")") : rc;
}

/* ------------------------------------------------------------- encoding */

enum { TAG_NULL = 0, TAG_INT = 1, TAG_TEXT = 2, TAG_REAL = 3 };

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

int fv_model_value_encode(const struct fv_field *f, const struct fv_sqlval *cols, uint8_t **ret,
                          size_t *ret_len)
{
    size_t n = fv_model_field_value_ncols(f), len = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        switch (cols[i].type) {
        case FV_SQL_INT:
        case FV_SQL_REAL:
            len += 9;
            any = true;
            break;
        case FV_SQL_TEXT:
            if (cols[i].len > INT32_MAX)
                return FV_E_LIMIT;
            len += 5 + cols[i].len;
            any = true;
            break;
        default:
            len += 1;
            break;
        }
    }
    if (len > INT32_MAX)
        return FV_E_LIMIT;
    if (!any) {
        *ret = NULL;
        *ret_len = 0;
        return FV_OK;
    }
    uint8_t *p = fv_malloc(len + 1);
    if (p == NULL)
        return FV_E_NOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const struct fv_sqlval *v = &cols[i];
        uint64_t bits;
        switch (v->type) {
        case FV_SQL_INT:
            p[o++] = TAG_INT;
            put_be64(p + o, (uint64_t)v->i);
            o += 8;
            break;
        case FV_SQL_REAL:
            memcpy(&bits, &v->r, sizeof(bits));
            p[o++] = TAG_REAL;
            put_be64(p + o, bits);
            o += 8;
            break;
        case FV_SQL_TEXT:
            p[o++] = TAG_TEXT;
            p[o++] = (uint8_t)(v->len >> 24);
            p[o++] = (uint8_t)(v->len >> 16);
            p[o++] = (uint8_t)(v->len >> 8);
            p[o++] = (uint8_t)v->len;
            if (v->len > 0)
                memcpy(p + o, v->s, v->len);
            o += v->len;
            break;
        default:
            p[o++] = TAG_NULL;
            break;
        }
    }
    FV_ASSERT(o == len);
    p[len] = 0;
    *ret = p;
    *ret_len = len;
    return FV_OK;
}

int fv_model_value_decode(const struct fv_field *f, const uint8_t *p, size_t len,
                          struct fv_sqlval *out)
{
    size_t n = fv_model_field_value_ncols(f), o = 0, i;
    int rc = FV_OK;

    for (i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].type = FV_SQL_NULL;
    }
    for (i = 0; rc == FV_OK && i < n; i++) {
        if (o >= len) {
            rc = FV_E_CORRUPT;
            break;
        }
        uint8_t tag = p[o++];
        uint64_t bits;
        switch (tag) {
        case TAG_NULL:
            break;
        case TAG_INT:
        case TAG_REAL:
            if (len - o < 8) {
                rc = FV_E_CORRUPT;
                break;
            }
            bits = get_be64(p + o);
            o += 8;
            if (tag == TAG_INT) {
                out[i].type = FV_SQL_INT;
                out[i].i = (int64_t)bits;
            } else {
                out[i].type = FV_SQL_REAL;
                memcpy(&out[i].r, &bits, sizeof(bits));
            }
            break;
        case TAG_TEXT: {
            if (len - o < 4) {
                rc = FV_E_CORRUPT;
                break;
            }
            size_t tl = (size_t)p[o] << 24 | (size_t)p[o + 1] << 16 | (size_t)p[o + 2] << 8 |
                        (size_t)p[o + 3];
            o += 4;
            if (len - o < tl) {
                rc = FV_E_CORRUPT;
                break;
            }
            out[i].s = fv_malloc(tl + 1);
            if (out[i].s == NULL) {
                rc = FV_E_NOMEM;
                break;
            }
            if (tl > 0)
                memcpy(out[i].s, p + o, tl);
            out[i].s[tl] = '\0';
            out[i].len = tl;
            out[i].type = FV_SQL_TEXT;
            o += tl;
            break;
        }
        default:
            rc = FV_E_CORRUPT;
            break;
        }
    }
    if (rc == FV_OK && o != len)
        rc = FV_E_CORRUPT;
    if (rc != FV_OK)
        for (i = 0; i < n; i++)
            fv_model_sqlval_release(&out[i]);
    return rc;
}

#define BIDX_PREFIX "fv-bidx-v1"

int fv_model_field_bidx_message(const char *app, const char *form, const char *field,
                                const uint8_t *enc, size_t enc_len, uint8_t **ret, size_t *ret_len)
{
    size_t la = strlen(app), lf = strlen(form), ld = strlen(field);
    size_t pre = sizeof(BIDX_PREFIX) - 1;
    if (enc_len > INT32_MAX)
        return FV_E_LIMIT;
    size_t len = pre + la + 1 + lf + 1 + ld + 1 + enc_len;
    uint8_t *p = fv_malloc(len + 1);
    if (p == NULL)
        return FV_E_NOMEM;
    size_t o = 0;
    memcpy(p + o, BIDX_PREFIX, pre);
    o += pre;
    memcpy(p + o, app, la + 1); /* with the NUL separator */
    o += la + 1;
    memcpy(p + o, form, lf + 1);
    o += lf + 1;
    memcpy(p + o, field, ld + 1);
    o += ld + 1;
    if (enc_len > 0)
        memcpy(p + o, enc, enc_len);
    o += enc_len;
    p[o] = 0;
    *ret = p;
    *ret_len = len;
    return FV_OK;
}
