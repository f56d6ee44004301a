/*
 * store/field_crypt.c: field-level encryption (README.md "Field-level
 * encryption", store_int.h "field_crypt.c"). Sealing and opening the values
 * of fields with `encrypt` (AES-256-GCM, record identity as associated
 * data), their blind indexes (HMAC-SHA256) and the criteria parameters that
 * search them, the per-connection cache of field AEAD contexts, and the
 * re-encryption steps of a tenant key rotation.
 *
 * Keys come from the tenant's keyring (t->keys): the field key and the
 * blind-index key of each root-key version. Nothing here logs above debug
 * level, and no message carries a value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "store/store_int.h"

#define AD_PREFIX "fv-field-v1"
/* AD: prefix, tenant ID, three link names with NULs, record ID */
#define AD_MAX (sizeof(AD_PREFIX) - 1 + 8 + 3 * (FV_MODEL_LINK_MAX + 1) + 8)
_Static_assert(FV_STORE_BIDX_TEXT == (FV_STORE_BIDX_BYTES * 4 + 2) / 3 + 1,
               "blind-index text: base64url of FV_STORE_BIDX_BYTES plus NUL");
_Static_assert(FV_STORE_BIDX_BYTES <= FV_CRYPTO_MAC_BYTES, "blind index longer than the MAC");
_Static_assert(FV_CRYPTO_KEYRING_MAX_VERSIONS <= FV_MODEL_BIDX_SLOTS,
               "criteria SQL has a slot for the blind index of every live key version");
/* marker of a sealed value in a change-log image: {"enc":"..."} */
#define IMAGE_ENC_MARK "{\"enc\":"

/* --------------------------------------------------------------- base64url */

/* libsodium's constant-time codec, URL-safe alphabet without padding. */
#define B64U sodium_base64_VARIANT_URLSAFE_NO_PADDING

size_t fv_store_b64u_len(size_t n)
{
    return sodium_base64_encoded_len(n, B64U) - 1;
}

void fv_store_b64u_encode(const uint8_t *in, size_t n, char *out)
{
    (void)sodium_bin2base64(out, fv_store_b64u_len(n) + 1, in, n, B64U);
}

int fv_store_b64u_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *ret_n)
{
    const char *end = NULL;
    size_t got = 0;
    if (sodium_base642bin(out, cap, in, n, NULL, &got, &end, B64U) != 0 || end != in + n)
        return FV_E_CORRUPT;
    *ret_n = got;
    return FV_OK;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* ------------------------------------------------------------- contexts */

/* Drop every context and the keyring reference; keeps the unused nonces. */
static void fcache_clear(struct fv_store_fcache *fc)
{
    for (size_t i = 0; i < fc->n; i++) {
        fv_crypto_aead_free(fc->aead[i]);
        fc->aead[i] = NULL;
        fc->ver[i] = 0;
    }
    fc->n = 0;
    fv_crypto_keyring_unref(fc->kr);
    fc->kr = NULL;
    fc->gen = 0;
}

void fv_store_fcache_free(struct fv_store_fcache *fc)
{
    if (!fc)
        return;
    fcache_clear(fc);
    fv_free(fc);
}

void fv_store_fcx_init(struct fv_store_fcx *x, struct fv_tenant *t, struct fv_store_conn *c)
{
    memset(x, 0, sizeof(*x));
    x->t = t;
    x->fc = &x->own;
    if (c && !c->fcache)
        c->fcache = fv_calloc(1, sizeof(*c->fcache)); /* on failure: the own cache */
    if (c && c->fcache)
        x->fc = c->fcache;
}

void fv_store_fcx_release(struct fv_store_fcx *x)
{
    fcache_clear(&x->own);
    x->own.nonces_left = 0;
    x->fc = &x->own;
}

/* A fresh random nonce; one getrandom per FV_STORE_FCX_NONCES seals. */
static const uint8_t *fcx_nonce(struct fv_store_fcx *x)
{
    struct fv_store_fcache *fc = x->fc;
    if (fc->nonces_left == 0) {
        fv_random_bytes(fc->nonces, sizeof(fc->nonces));
        fc->nonces_left = FV_STORE_FCX_NONCES;
    }
    fc->nonces_left--;
    return fc->nonces + fc->nonces_left * FV_CRYPTO_NONCE_BYTES;
}

/*
 * The field AEAD context of key version `version`. The cache is checked
 * against the tenant's keyring and its generation on every call (an atomic
 * load), so a rotation or revocation is seen by the next value, never
 * later. The generation is read before a context is derived: a change in
 * between makes the next call rebuild, never keeps a stale context.
 */
static int fcx_aead(struct fv_store_fcx *x, uint32_t version, struct fv_aead **ret)
{
    struct fv_store_fcache *fc = x->fc;
    struct fv_keyring *kr = x->t ? x->t->keys : NULL;
    if (!kr)
        return FV_E_KEY_UNAVAILABLE;
    uint64_t gen = fv_crypto_keyring_generation(kr);
    if (fc->kr != kr || fc->gen != gen) {
        fcache_clear(fc);
        fc->kr = fv_crypto_keyring_ref(kr);
        fc->gen = gen;
    }
    for (size_t i = 0; i < fc->n; i++)
        if (fc->ver[i] == version) {
            *ret = fc->aead[i];
            return FV_OK;
        }
    if (fc->n == FV_ARRAY_LEN(fc->aead))
        return FV_E_KEY_UNAVAILABLE; /* more versions than a keyring holds */
    struct fv_aead *a = NULL;
    int rc = fv_crypto_keyring_aead(&a, kr, version, FV_KEY_FIELD, NULL, 0);
    if (rc != FV_OK)
        return rc;
    fc->ver[fc->n] = version;
    fc->aead[fc->n] = a;
    fc->n++;
    *ret = a;
    return FV_OK;
}

/* ------------------------------------------------------------ seal, open */

static size_t build_ad(uint8_t *ad, int64_t tenant, const char *app, const char *form,
                       const char *field, int64_t id)
{
    const char *names[3] = {app, form, field};
    size_t o = sizeof(AD_PREFIX) - 1;
    memcpy(ad, AD_PREFIX, o);
    put_be64(ad + o, (uint64_t)tenant);
    o += 8;
    for (size_t i = 0; i < 3; i++) {
        size_t n = strnlen(names[i], FV_MODEL_LINK_MAX);
        memcpy(ad + o, names[i], n);
        o += n;
        ad[o++] = 0;
    }
    put_be64(ad + o, (uint64_t)id);
    return o + 8;
}

int fv_store_field_seal(struct fv_store_fcx *x, uint32_t version, const char *app, const char *form,
                        const char *field, int64_t id, const uint8_t *m, size_t mlen, uint8_t *out)
{
    uint8_t ad[AD_MAX];
    struct fv_aead *a = NULL;
    int rc;

    if (!x->t || !x->t->keys)
        return FV_E_KEY_UNAVAILABLE;
    if (version == 0)
        version = fv_crypto_keyring_write_version(x->t->keys);
    if (version == 0)
        return FV_E_KEY_UNAVAILABLE;
    if (mlen > INT32_MAX)
        return FV_E_LIMIT;
    rc = fcx_aead(x, version, &a);
    if (rc != FV_OK)
        return rc;
    out[0] = FV_STORE_FIELD_FORMAT;
    put_be32(out + 1, version);
    uint8_t *nonce = out + FV_STORE_FIELD_HDR;
    uint8_t *c = nonce + FV_CRYPTO_NONCE_BYTES;
    memcpy(nonce, fcx_nonce(x), FV_CRYPTO_NONCE_BYTES);
    size_t adlen = build_ad(ad, x->t->id, app, form, field, id);
    return fv_crypto_aead_seal_detached(c, c + mlen, m, mlen, ad, adlen, nonce, a);
}

int fv_store_field_version(const uint8_t *sealed, size_t len, uint32_t *ret_version)
{
    if (!sealed || len < FV_STORE_FIELD_OVERHEAD || len > (size_t)INT32_MAX ||
        sealed[0] != FV_STORE_FIELD_FORMAT)
        return FV_E_CORRUPT;
    *ret_version = get_be32(sealed + 1);
    return FV_OK;
}

int fv_store_field_open_buf(struct fv_store_fcx *x, const char *app, const char *form,
                            const char *field, int64_t id, const uint8_t *sealed, size_t len,
                            uint8_t *buf, size_t cap, size_t *ret_mlen, uint32_t *ret_version)
{
    uint8_t ad[AD_MAX];
    struct fv_aead *a = NULL;
    uint32_t version = 0;
    int rc = fv_store_field_version(sealed, len, &version);
    if (rc != FV_OK)
        return rc;
    size_t mlen = len - FV_STORE_FIELD_OVERHEAD;
    if (mlen > cap)
        return FV_E_LIMIT;
    rc = fcx_aead(x, version, &a);
    if (rc != FV_OK)
        return rc;
    size_t adlen = build_ad(ad, x->t->id, app, form, field, id);
    rc = fv_crypto_aead_open(buf, sealed + FV_STORE_FIELD_HDR, len - FV_STORE_FIELD_HDR, ad, adlen,
                             a);
    if (rc != FV_OK) {
        fv_wipe(buf, mlen);
        return FV_E_CORRUPT; /* one code for every authentication failure */
    }
    *ret_mlen = mlen;
    if (ret_version)
        *ret_version = version;
    return FV_OK;
}

int fv_store_field_open(struct fv_store_fcx *x, const char *app, const char *form,
                        const char *field, int64_t id, const uint8_t *sealed, size_t len,
                        uint8_t **ret_m, size_t *ret_mlen, uint32_t *ret_version)
{
    size_t cap = len > FV_STORE_FIELD_OVERHEAD ? len - FV_STORE_FIELD_OVERHEAD : 0, mlen = 0;
    uint8_t *m = fv_malloc(cap + 1);
    if (!m)
        return FV_E_NOMEM;
    int rc =
        fv_store_field_open_buf(x, app, form, field, id, sealed, len, m, cap, &mlen, ret_version);
    if (rc != FV_OK) {
        fv_free(m);
        return rc;
    }
    m[mlen] = 0;
    *ret_m = m;
    *ret_mlen = mlen;
    return FV_OK;
}

/* ---------------------------------------------------------- blind index */

int fv_store_field_bidx(struct fv_tenant *t, uint32_t version, const uint8_t *msg, size_t len,
                        uint8_t out[FV_STORE_BIDX_BYTES])
{
    uint8_t mac[FV_CRYPTO_MAC_BYTES];
    if (!t->keys)
        return FV_E_KEY_UNAVAILABLE;
    int rc = fv_crypto_keyring_mac(mac, msg, len, t->keys, version, FV_KEY_BLIND);
    /* 128 bits keep equality exact in practice (a false match needs a
     * collision of truncated HMAC outputs, about 2^-128 per pair) and halve
     * the column and its index */
    if (rc == FV_OK)
        memcpy(out, mac, FV_STORE_BIDX_BYTES);
    fv_wipe(mac, sizeof(mac));
    return rc;
}

int fv_store_field_tokens(struct fv_tenant *t, const uint8_t *msg, size_t len,
                          uint8_t out[FV_STORE_TOKENS_MAX], size_t *ret_len)
{
    uint32_t vers[FV_CRYPTO_KEYRING_MAX_VERSIONS];
    size_t n;
    if (!t->keys)
        return FV_E_KEY_UNAVAILABLE;
    n = fv_crypto_keyring_versions(t->keys, vers, FV_ARRAY_LEN(vers));
    if (n > FV_ARRAY_LEN(vers))
        n = FV_ARRAY_LEN(vers);
    if (n == 0)
        return FV_E_KEY_UNAVAILABLE;
    for (size_t i = 0; i < n; i++) {
        int rc = fv_store_field_bidx(t, vers[i], msg, len, out + i * FV_STORE_BIDX_BYTES);
        if (rc != FV_OK) {
            fv_wipe(out, FV_STORE_TOKENS_MAX);
            return rc;
        }
    }
    *ret_len = n * FV_STORE_BIDX_BYTES;
    return FV_OK;
}

int fv_store_field_bind_where(struct fv_tenant *t, sqlite3_stmt *st,
                              const struct fv_sql_where *where)
{
    if (!where)
        return FV_OK;
    for (size_t i = 0; i < where->n_params; i++) {
        const struct fv_sqlval *v = &where->params[i];
        int rc;
        if (v->type == FV_SQL_SECRET) {
            uint8_t tokens[FV_STORE_TOKENS_MAX];
            size_t tl = 0;
            rc = fv_store_field_tokens(t, (const uint8_t *)v->s, v->len, tokens, &tl);
            if (rc != FV_OK)
                return rc;
            int src = sqlite3_bind_blob(st, (int)i + 1, tokens, (int)tl, SQLITE_TRANSIENT);
            fv_wipe(tokens, tl);
            rc = src == SQLITE_OK ? FV_OK : fv_store_sqlite_err(src);
        } else {
            rc = fv_store_bind_val(st, (int)i + 1, v);
        }
        if (rc != FV_OK)
            return rc;
    }
    return FV_OK;
}

bool fv_store_form_has_encrypted(const struct fv_store_form *sf)
{
    for (size_t i = 0; i < sf->form->n_fields; i++)
        if (sf->form->fields[i].encrypt)
            return true;
    return false;
}

/* ------------------------------------------------------------- rotation */

struct enc_form {
    const struct fv_store_form *sf;
    const struct fv_app *app;
};

static int enc_form_cmp(const void *a, const void *b)
{
    return strcmp(((const struct enc_form *)a)->sf->table, ((const struct enc_form *)b)->sf->table);
}

/*
 * Forms of the current app versions with encrypted fields, ordered by table
 * name. Entries stay valid until the tenant closes (app versions are never
 * freed before), so the list outlives apps_lock.
 */
static int enc_forms(struct fv_tenant *t, struct enc_form **ret, size_t *ret_n)
{
    size_t n = 0, k = 0;
    struct enc_form *v = NULL;
    (void)pthread_rwlock_rdlock(&t->apps_lock);
    for (struct fv_store_app *a = t->apps; a; a = a->next)
        for (size_t i = 0; a->current && i < a->app->n_forms; i++)
            n += fv_store_form_has_encrypted(&a->forms[i]);
    v = fv_calloc(n ? n : 1, sizeof(*v));
    for (struct fv_store_app *a = t->apps; v && a; a = a->next)
        for (size_t i = 0; a->current && i < a->app->n_forms; i++)
            if (fv_store_form_has_encrypted(&a->forms[i]) && k < n) {
                v[k].sf = &a->forms[i];
                v[k].app = a->app;
                k++;
            }
    (void)pthread_rwlock_unlock(&t->apps_lock);
    if (!v)
        return FV_E_NOMEM;
    qsort(v, k, sizeof(*v), enc_form_cmp);
    *ret = v;
    *ret_n = k;
    return FV_OK;
}

/* "SELECT "ID", "c_a", "c_b" FROM table" (data columns of the encrypted fields). */
static int select_enc_sql(const struct fv_store_form *sf, struct fv_buf *b, size_t **ret_fields,
                          size_t *ret_n)
{
    size_t n = 0;
    size_t *fi = fv_calloc(sf->form->n_fields ? sf->form->n_fields : 1, sizeof(*fi));
    if (!fi)
        return FV_E_NOMEM;
    int rc = fv_buf_append_cstr(b, "SELECT \"ID\"");
    for (size_t i = 0; rc == FV_OK && i < sf->form->n_fields; i++) {
        if (!sf->form->fields[i].encrypt)
            continue;
        fi[n++] = i;
        rc = fv_buf_appendf(b, ", \"%s\"", sf->col_names[sf->col_off[i] + FV_MODEL_ENC_COL_DATA]);
    }
    if (rc == FV_OK)
        rc = fv_buf_appendf(b, " FROM \"%s\"", sf->table);
    if (rc != FV_OK) {
        fv_free(fi);
        return rc;
    }
    *ret_fields = fi;
    *ret_n = n;
    return FV_OK;
}

/* Count sealed values of form sf not under version (on connection c). */
static int count_form_old(struct fv_store_conn *c, const struct fv_store_form *sf, uint32_t version,
                          int64_t *n)
{
    struct fv_buf b;
    sqlite3_stmt *st = NULL;
    size_t *fi = NULL, nf = 0;
    int rc, src;
    fv_buf_init(&b, FV_STORE_SQL_MAX);
    rc = select_enc_sql(sf, &b, &fi, &nf);
    if (rc == FV_OK)
        rc = fv_store_conn_prepare(c, b.p, b.len, &st);
    while (rc == FV_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        for (size_t k = 0; rc == FV_OK && k < nf; k++) {
            uint32_t v = 0;
            if (sqlite3_column_type(st, (int)k + 1) == SQLITE_NULL)
                continue;
            const uint8_t *sealed = sqlite3_column_blob(st, (int)k + 1);
            rc = fv_store_field_version(sealed, (size_t)sqlite3_column_bytes(st, (int)k + 1), &v);
            if (rc == FV_OK && v != version)
                (*n)++;
        }
    }
    if (rc == FV_OK && src != SQLITE_DONE)
        rc = fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    fv_free(fi);
    fv_buf_release(&b);
    return rc;
}

/* Key version of the sealed value of a change-log image (base64url text):
 * its first 8 digits hold the 5 header bytes. FV_E_CORRUPT if malformed. */
static int image_version(const char *text, size_t len, uint32_t *ret_version)
{
    uint8_t hdr[6];
    size_t n = 0;
    if (len < fv_store_b64u_len(FV_STORE_FIELD_OVERHEAD) ||
        fv_store_b64u_decode(text, 8, hdr, sizeof(hdr), &n) != FV_OK || n != 6 ||
        hdr[0] != FV_STORE_FIELD_FORMAT)
        return FV_E_CORRUPT;
    *ret_version = get_be32(hdr + 1);
    return FV_OK;
}

/* Count sealed values in change-log images not under version. */
static int count_log_old(struct fv_store_conn *c, uint32_t version, int64_t *n)
{
    static const char sql[] =
        "SELECT row FROM fv_changelog WHERE instr(row, '" IMAGE_ENC_MARK "') > 0";
    sqlite3_stmt *st = NULL;
    int src, rc = fv_store_conn_prepare(c, sql, sizeof(sql) - 1, &st);
    while (rc == FV_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *row = json_loadb((const char *)sqlite3_column_text(st, 0),
                                 (size_t)sqlite3_column_bytes(st, 0), 0, NULL);
        const char *key;
        json_t *val;
        if (!row) {
            rc = FV_E_CORRUPT;
            break;
        }
        json_object_foreach(row, key, val)
        {
            json_t *enc = json_object_get(val, "enc");
            uint32_t v = 0;
            if (!json_is_string(enc))
                continue;
            rc = image_version(json_string_value(enc), json_string_length(enc), &v);
            if (rc != FV_OK)
                break;
            if (v != version)
                (*n)++;
        }
        json_decref(row);
    }
    if (rc == FV_OK && src != SQLITE_DONE)
        rc = fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    return rc;
}

static int count_old_on(struct fv_store_conn *c, const struct enc_form *forms, size_t nforms,
                        uint32_t version, int64_t *ret_n)
{
    int64_t n = 0;
    int rc = FV_OK;
    for (size_t i = 0; rc == FV_OK && i < nforms; i++)
        rc = count_form_old(c, forms[i].sf, version, &n);
    if (rc == FV_OK)
        rc = count_log_old(c, version, &n);
    if (rc == FV_OK)
        *ret_n = n;
    return rc;
}

int fv_store_field_count_old(struct fv_tenant *t, uint32_t version, int64_t *ret_n)
{
    struct enc_form *forms = NULL;
    size_t nforms = 0;
    struct fv_store_conn *c = NULL;
    int rc = enc_forms(t, &forms, &nforms);
    if (rc == FV_OK)
        rc = fv_store_pool_get(&t->readers, &c);
    if (rc == FV_OK)
        rc = count_old_on(c, forms, nforms, version, ret_n);
    fv_store_pool_put(&t->readers, c);
    fv_free(forms);
    return rc;
}

/*
 * Re-seal one sealed value (old, len) of field `field` (link names
 * app/form) of record id under version `to`: the new sealed value
 * (fv_malloc'd, *ret_len bytes) and, if has_bidx, the new blind index in
 * bidx. *ret_new is NULL when the value is already under `to`.
 */
static int reseal(struct fv_store_fcx *x, uint32_t to, const char *app, const char *form,
                  const char *field, bool has_bidx, int64_t id, const uint8_t *old, size_t len,
                  uint8_t **ret_new, size_t *ret_len, uint8_t bidx[FV_STORE_BIDX_BYTES])
{
    uint8_t *m = NULL, *msg = NULL, *nw = NULL;
    size_t mlen = 0, msg_len = 0;
    uint32_t v = 0;
    int rc = fv_store_field_version(old, len, &v);
    *ret_new = NULL;
    if (rc != FV_OK || v == to)
        goto out;
    rc = fv_store_field_open(x, app, form, field, id, old, len, &m, &mlen, NULL);
    if (rc != FV_OK)
        goto out;
    nw = fv_malloc(mlen + FV_STORE_FIELD_OVERHEAD);
    rc = nw ? fv_store_field_seal(x, to, app, form, field, id, m, mlen, nw) : FV_E_NOMEM;
    if (rc == FV_OK && has_bidx) {
        rc = fv_model_field_bidx_message(app, form, field, m, mlen, &msg, &msg_len);
        if (rc == FV_OK)
            rc = fv_store_field_bidx(x->t, to, msg, msg_len, bidx);
    }
    if (rc == FV_OK) {
        *ret_new = nw;
        *ret_len = mlen + FV_STORE_FIELD_OVERHEAD;
        nw = NULL;
    }
out:
    if (rc != FV_OK && rc != FV_E_NOMEM)
        fv_log(FV_LOG_DEBUG,
               "store: tenant %lld: field '%s' of form '%s' record %lld does not open: %s",
               (long long)x->t->id, field, form, (long long)id, fv_strerror(rc));
    fv_free(nw);
    if (m) {
        fv_wipe(m, mlen);
        fv_free(m);
    }
    if (msg) {
        fv_wipe(msg, msg_len);
        fv_free(msg);
    }
    return rc;
}

/* One sealed value read from a form table. */
struct cell {
    uint8_t *p; /* NULL: SQL NULL */
    size_t len;
};

/* Phase 0: up to budget rows of form ef after *last_id. */
static int reencrypt_form(struct fv_store_fcx *x, const struct enc_form *ef, uint32_t to,
                          size_t budget, int64_t *last_id, size_t *visited, size_t *done,
                          bool *form_end)
{
    struct fv_tenant *t = x->t;
    const struct fv_store_form *sf = ef->sf;
    struct fv_buf b;
    sqlite3_stmt *st = NULL;
    size_t *fi = NULL, nf = 0, nrows = 0;
    int64_t *ids = NULL;
    struct cell *cells = NULL; /* [nrows * nf] */
    int rc, src = SQLITE_DONE;

    fv_buf_init(&b, FV_STORE_SQL_MAX);
    rc = select_enc_sql(sf, &b, &fi, &nf);
    if (rc == FV_OK)
        rc = fv_buf_append_cstr(&b, " WHERE \"ID\" > ?1 ORDER BY \"ID\" LIMIT ?2");
    if (rc != FV_OK)
        goto out;
    ids = fv_calloc(budget, sizeof(*ids));
    cells = fv_calloc(budget * (nf ? nf : 1), sizeof(*cells));
    if (!ids || !cells) {
        rc = FV_E_NOMEM;
        goto out;
    }
    /* read first, then update: never write a table while stepping over it */
    rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_int64(st, 1, *last_id);
    (void)sqlite3_bind_int64(st, 2, (int64_t)budget);
    while (rc == FV_OK && nrows < budget && (src = sqlite3_step(st)) == SQLITE_ROW) {
        ids[nrows] = sqlite3_column_int64(st, 0);
        for (size_t k = 0; rc == FV_OK && k < nf; k++) {
            struct cell *c = &cells[nrows * nf + k];
            if (sqlite3_column_type(st, (int)k + 1) == SQLITE_NULL)
                continue;
            const uint8_t *p = sqlite3_column_blob(st, (int)k + 1);
            c->len = (size_t)sqlite3_column_bytes(st, (int)k + 1);
            c->p = fv_malloc(c->len ? c->len : 1);
            if (!c->p)
                rc = FV_E_NOMEM;
            else if (c->len)
                memcpy(c->p, p, c->len);
        }
        nrows++;
    }
    if (rc == FV_OK && src != SQLITE_ROW && src != SQLITE_DONE)
        rc = fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    st = NULL;
    if (rc != FV_OK)
        goto out;

    for (size_t r = 0; rc == FV_OK && r < nrows; r++) {
        for (size_t k = 0; rc == FV_OK && k < nf; k++) {
            const struct fv_field *f = &sf->form->fields[fi[k]];
            const struct cell *old = &cells[r * nf + k];
            bool has_bidx = fv_model_field_has_bidx(f);
            uint8_t *nw = NULL;
            size_t nw_len = 0;
            uint8_t bidx[FV_STORE_BIDX_BYTES];
            if (!old->p)
                continue;
            rc = reseal(x, to, ef->app->link_name, sf->form->link_name, f->link_name, has_bidx,
                        ids[r], old->p, old->len, &nw, &nw_len, bidx);
            if (rc != FV_OK || !nw)
                continue;
            fv_buf_reset(&b);
            rc =
                fv_buf_appendf(&b, "UPDATE \"%s\" SET \"%s\" = ?1, \"%s\" = ?2 WHERE \"ID\" = ?3",
                               sf->table, sf->col_names[sf->col_off[fi[k]] + FV_MODEL_ENC_COL_DATA],
                               sf->col_names[sf->col_off[fi[k]] + FV_MODEL_ENC_COL_BIDX]);
            if (rc == FV_OK)
                rc = fv_store_conn_prepare(t->writer, b.p, b.len, &st);
            if (rc == FV_OK) {
                (void)sqlite3_bind_blob(st, 1, nw, (int)nw_len, SQLITE_TRANSIENT);
                if (has_bidx)
                    (void)sqlite3_bind_blob(st, 2, bidx, FV_STORE_BIDX_BYTES, SQLITE_TRANSIENT);
                (void)sqlite3_bind_int64(st, 3, ids[r]);
                src = sqlite3_step(st);
                if (src != SQLITE_DONE)
                    rc = fv_store_sqlite_err(src);
            }
            fv_store_stmt_done(st);
            st = NULL;
            fv_free(nw);
            if (rc == FV_OK)
                (*done)++;
        }
        if (rc == FV_OK) {
            *last_id = ids[r];
            (*visited)++;
        }
    }
    if (rc == FV_OK)
        *form_end = nrows < budget;
out:
    fv_store_stmt_done(st);
    for (size_t i = 0; cells && i < nrows * nf; i++)
        fv_free(cells[i].p);
    fv_free(cells);
    fv_free(ids);
    fv_free(fi);
    fv_buf_release(&b);
    return rc;
}

/*
 * Re-seal one image value: the sealed value as base64url text (enc) in, the
 * new one as text (*ret_text, fv_malloc'd) and the new blind index as text
 * (bidx, if has_bidx) out; *ret_text is NULL when already under `to`.
 */
static int reseal_text(struct fv_store_fcx *x, uint32_t to, const char *app, const char *form,
                       const char *field, bool has_bidx, int64_t id, const char *enc, size_t len,
                       char **ret_text, char bidx[FV_STORE_BIDX_TEXT])
{
    size_t cap = len / 4 * 3 + 3, blen = 0, nw_len = 0;
    uint8_t *blob = fv_malloc(cap), *nw = NULL;
    uint8_t raw[FV_STORE_BIDX_BYTES];
    char *text = NULL;
    int rc = blob ? fv_store_b64u_decode(enc, len, blob, cap, &blen) : FV_E_NOMEM;
    *ret_text = NULL;
    if (rc == FV_OK)
        rc = reseal(x, to, app, form, field, has_bidx, id, blob, blen, &nw, &nw_len, raw);
    if (rc == FV_OK && nw) {
        text = fv_malloc(fv_store_b64u_len(nw_len) + 1);
        if (!text) {
            rc = FV_E_NOMEM;
        } else {
            fv_store_b64u_encode(nw, nw_len, text);
            if (has_bidx)
                fv_store_b64u_encode(raw, sizeof(raw), bidx);
            *ret_text = text;
        }
    }
    fv_free(nw);
    fv_free(blob);
    return rc;
}

/* Re-seal the sealed values of one change-log image; *ret_changed if any. */
static int reencrypt_image(struct fv_store_fcx *x, uint32_t to, const char *app, const char *form,
                           int64_t id, json_t *row, size_t *done, bool *ret_changed)
{
    const char *key;
    json_t *val;
    int rc = FV_OK;
    json_object_foreach(row, key, val)
    {
        json_t *enc = json_object_get(val, "enc");
        char *nw = NULL;
        char bidx[FV_STORE_BIDX_TEXT];
        char bkey[FV_STORE_IDENT_MAX];
        if (!json_is_string(enc))
            continue;
        if (strncmp(key, "c_", 2) != 0 || strlen(key) > FV_MODEL_LINK_MAX + 2) {
            rc = FV_E_CORRUPT;
            break;
        }
        (void)snprintf(bkey, sizeof(bkey), "%s__bidx", key);
        bool has_bidx = json_is_string(json_object_get(row, bkey));
        rc = reseal_text(x, to, app, form, key + 2, has_bidx, id, json_string_value(enc),
                         json_string_length(enc), &nw, bidx);
        if (rc != FV_OK)
            break;
        if (!nw)
            continue;
        if (json_object_set_new(val, "enc", json_string(nw)) != 0 ||
            (has_bidx && json_object_set_new(row, bkey, json_string(bidx)) != 0))
            rc = FV_E_NOMEM;
        fv_free(nw);
        if (rc != FV_OK)
            break;
        (*done)++;
        *ret_changed = true;
    }
    return rc;
}

struct log_ent {
    int64_t seq;
    int64_t id;
    char *app;
    char *form;
    char *row;
    size_t row_len;
};

/* Phase 1: up to budget change-log entries after *last_seq. */
static int reencrypt_log(struct fv_store_fcx *x, uint32_t to, size_t budget, int64_t *last_seq,
                         size_t *visited, size_t *done, bool *log_end)
{
    static const char sel[] = "SELECT seq, app, form, record_id, row FROM fv_changelog"
                              " WHERE seq > ?1 AND instr(row, '" IMAGE_ENC_MARK "') > 0"
                              " ORDER BY seq LIMIT ?2";
    static const char upd[] = "UPDATE fv_changelog SET row = ?1 WHERE seq = ?2";
    struct fv_tenant *t = x->t;
    struct log_ent *ents = NULL;
    size_t n = 0;
    sqlite3_stmt *st = NULL;
    int rc, src = SQLITE_DONE;

    ents = fv_calloc(budget, sizeof(*ents));
    if (!ents)
        return FV_E_NOMEM;
    rc = fv_store_conn_prepare(t->writer, sel, sizeof(sel) - 1, &st);
    if (rc != FV_OK)
        goto out;
    (void)sqlite3_bind_int64(st, 1, *last_seq);
    (void)sqlite3_bind_int64(st, 2, (int64_t)budget);
    while (rc == FV_OK && n < budget && (src = sqlite3_step(st)) == SQLITE_ROW) {
        struct log_ent *e = &ents[n++];
        const char *app = (const char *)sqlite3_column_text(st, 1);
        const char *form = (const char *)sqlite3_column_text(st, 2);
        const char *row = (const char *)sqlite3_column_text(st, 4);
        e->seq = sqlite3_column_int64(st, 0);
        e->id = sqlite3_column_int64(st, 3);
        e->row_len = (size_t)sqlite3_column_bytes(st, 4);
        if (!app || !form || !row) {
            rc = FV_E_CORRUPT; /* a sealed value without its identity */
            break;
        }
        e->app = fv_strdup(app);
        e->form = fv_strdup(form);
        e->row = fv_strndup(row, e->row_len);
        if (!e->app || !e->form || !e->row)
            rc = FV_E_NOMEM;
    }
    if (rc == FV_OK && src != SQLITE_ROW && src != SQLITE_DONE)
        rc = fv_store_sqlite_err(src);
    fv_store_stmt_done(st);
    st = NULL;

    for (size_t i = 0; rc == FV_OK && i < n; i++) {
        struct log_ent *e = &ents[i];
        bool changed = false;
        char *text = NULL;
        size_t len = 0;
        json_t *row = json_loadb(e->row, e->row_len, 0, NULL);
        if (!row) {
            rc = FV_E_CORRUPT;
            break;
        }
        rc = reencrypt_image(x, to, e->app, e->form, e->id, row, done, &changed);
        if (rc == FV_OK && changed)
            rc = fv_store_json_dump(row, &text, &len);
        json_decref(row);
        if (rc == FV_OK && changed) {
            rc = fv_store_conn_prepare(t->writer, upd, sizeof(upd) - 1, &st);
            if (rc == FV_OK) {
                (void)sqlite3_bind_text(st, 1, text, (int)len, SQLITE_TRANSIENT);
                (void)sqlite3_bind_int64(st, 2, e->seq);
                src = sqlite3_step(st);
                if (src != SQLITE_DONE)
                    rc = fv_store_sqlite_err(src);
            }
            fv_store_stmt_done(st);
            st = NULL;
        }
        fv_free(text);
        if (rc == FV_OK) {
            *last_seq = e->seq;
            (*visited)++;
        }
    }
    if (rc == FV_OK)
        *log_end = n < budget;
out:
    fv_store_stmt_done(st);
    for (size_t i = 0; i < n; i++) {
        fv_free(ents[i].app);
        fv_free(ents[i].form);
        fv_free(ents[i].row);
    }
    fv_free(ents);
    return rc;
}

int fv_store_field_reencrypt_step(struct fv_tenant *t, uint32_t to_version,
                                  struct fv_store_reencrypt_cursor *cur, size_t max_rows,
                                  size_t *ret_done, bool *ret_finished)
{
    struct fv_store_reencrypt_cursor c = *cur;
    struct fv_store_fcx x;
    struct enc_form *forms = NULL;
    size_t nforms = 0, visited = 0, done = 0;
    bool finished = false, in_txn = false;
    int rc;

    if (max_rows == 0 || max_rows > 100000)
        return FV_E_INVALID;
    if (t->store->read_only)
        return FV_E_READ_ONLY;
    if (!t->keys || to_version == 0)
        return FV_E_KEY_UNAVAILABLE;
    fv_store_writer_enter(t);
    fv_store_fcx_init(&x, t, t->writer);
    rc = enc_forms(t, &forms, &nforms);
    if (rc == FV_OK)
        rc = fv_store_conn_exec(t->writer, "BEGIN IMMEDIATE");
    in_txn = rc == FV_OK;
    while (rc == FV_OK && visited < max_rows && !finished) {
        if (c.phase == 0) {
            bool end = false;
            if (c.form_index >= nforms) {
                c.phase = 1;
                c.last_seq = 0;
                continue;
            }
            rc = reencrypt_form(&x, &forms[c.form_index], to_version, max_rows - visited,
                                &c.last_id, &visited, &done, &end);
            if (rc == FV_OK && end) {
                c.form_index++;
                c.last_id = 0;
            }
        } else if (c.phase == 1) {
            bool end = false;
            rc = reencrypt_log(&x, to_version, max_rows - visited, &c.last_seq, &visited, &done,
                               &end);
            if (rc == FV_OK && end)
                c.phase = 2;
        } else {
            int64_t left = 0;
            rc = count_old_on(t->writer, forms, nforms, to_version, &left);
            if (rc == FV_OK && left > 0)
                memset(&c, 0, sizeof(c)); /* e.g. a form appeared behind the cursor */
            else if (rc == FV_OK)
                finished = true;
            if (rc == FV_OK && left > 0)
                break; /* the next step starts the new pass */
        }
    }
    if (rc == FV_OK)
        rc = fv_store_conn_exec(t->writer, "COMMIT");
    if (rc != FV_OK && in_txn && !sqlite3_get_autocommit(t->writer->db))
        fv_store_conn_rollback(t->writer);
    fv_store_fcx_release(&x);
    fv_store_writer_leave(t);
    fv_free(forms);
    if (rc != FV_OK)
        return rc;
    *cur = c;
    if (ret_done)
        *ret_done = done;
    if (ret_finished)
        *ret_finished = finished;
    return FV_OK;
}
