/*
 * api/cursor.c: sealing of the `record_cursor` header. The store's keyset
 * cursor holds the last row's sort value, which may be a classified field's
 * value; clients and proxies must see neither it nor be able to forge one.
 * The cursor is therefore sealed with AES-256-GCM (GnuTLS; NIST SP 800-38D)
 * under a key made at start-up, with tenant, app and report as associated
 * data: a cursor works only for the report that issued it, and every cursor
 * expires when the server restarts (the client then restarts its scan).
 * Wire form: base64 (RFC 4648 section 4) of nonce (12) || ciphertext || tag (16).
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "api/api_int.h"

#define CURSOR_NONCE 12
#define CURSOR_TAG 16
#define CURSOR_PLAIN_MAX 160

int api_cursor_init(struct fv_api *api)
{
    uint8_t key[32];
    gnutls_datum_t k = {key, sizeof(key)};
    fv_random_bytes(key, sizeof(key));
    int g = gnutls_aead_cipher_init(&api->cursor_aead, GNUTLS_CIPHER_AES_256_GCM, &k);
    fv_wipe(key, sizeof(key));
    if (g < 0)
        return FV_E_INTERNAL;
    if (pthread_mutex_init(&api->cursor_lock, NULL) != 0) {
        gnutls_aead_cipher_deinit(api->cursor_aead);
        api->cursor_aead = NULL;
        return FV_E_NOMEM;
    }
    return FV_OK;
}

void api_cursor_release(struct fv_api *api)
{
    if (!api->cursor_aead)
        return;
    gnutls_aead_cipher_deinit(api->cursor_aead);
    api->cursor_aead = NULL;
    (void)pthread_mutex_destroy(&api->cursor_lock);
}

/* Associated data: tenant id (8 bytes, big-endian) || app || NUL || report. */
static size_t cursor_ad(int64_t tenant_id, const char *app, const char *report, uint8_t *ad,
                        size_t cap)
{
    size_t a = strlen(app), r = strlen(report);
    FV_ASSERT(8 + a + 1 + r <= cap);
    for (int i = 0; i < 8; i++)
        ad[i] = (uint8_t)((uint64_t)tenant_id >> (56 - 8 * i));
    memcpy(ad + 8, app, a);
    ad[8 + a] = 0;
    memcpy(ad + 9 + a, report, r);
    return 9 + a + r;
}

int api_cursor_seal(struct fv_api *api, int64_t tenant_id, const char *app, const char *report,
                    const char *plain, char *out, size_t cap)
{
    uint8_t ad[8 + 2 * (FV_MODEL_LINK_MAX + 1)];
    size_t adlen = cursor_ad(tenant_id, app, report, ad, sizeof(ad));
    uint8_t buf[CURSOR_NONCE + CURSOR_PLAIN_MAX + CURSOR_TAG];
    size_t plen = strlen(plain);
    size_t clen = plen + CURSOR_TAG;
    gnutls_datum_t raw, b64 = {NULL, 0};
    if (plen > CURSOR_PLAIN_MAX)
        return FV_E_LIMIT;
    fv_random_bytes(buf, CURSOR_NONCE);
    (void)pthread_mutex_lock(&api->cursor_lock);
    int g = gnutls_aead_cipher_encrypt(api->cursor_aead, buf, CURSOR_NONCE, ad, adlen, CURSOR_TAG,
                                       plain, plen, buf + CURSOR_NONCE, &clen);
    (void)pthread_mutex_unlock(&api->cursor_lock);
    if (g < 0)
        return FV_E_INTERNAL;
    raw.data = buf;
    raw.size = (unsigned)(CURSOR_NONCE + clen);
    if (gnutls_base64_encode2(&raw, &b64) < 0)
        return FV_E_NOMEM;
    int rc = b64.size < cap ? FV_OK : FV_E_LIMIT;
    if (rc == FV_OK) {
        memcpy(out, b64.data, b64.size);
        out[b64.size] = '\0';
    }
    gnutls_free(b64.data);
    return rc;
}

int api_cursor_open(struct fv_api *api, int64_t tenant_id, const char *app, const char *report,
                    const char *sealed, char *out, size_t cap)
{
    uint8_t ad[8 + 2 * (FV_MODEL_LINK_MAX + 1)];
    size_t adlen = cursor_ad(tenant_id, app, report, ad, sizeof(ad));
    gnutls_datum_t in = {(unsigned char *)(uintptr_t)sealed, (unsigned)strlen(sealed)};
    gnutls_datum_t raw = {NULL, 0};
    int rc = FV_E_CURSOR;
    if (in.size == 0 || in.size > 4 * (CURSOR_NONCE + CURSOR_PLAIN_MAX + CURSOR_TAG) / 3 + 4)
        return FV_E_CURSOR;
    if (gnutls_base64_decode2(&in, &raw) < 0)
        return FV_E_CURSOR;
    if (raw.size > CURSOR_NONCE + CURSOR_TAG && raw.size - CURSOR_NONCE - CURSOR_TAG < cap) {
        size_t plen = cap - 1;
        (void)pthread_mutex_lock(&api->cursor_lock);
        int g = gnutls_aead_cipher_decrypt(api->cursor_aead, raw.data, CURSOR_NONCE, ad, adlen,
                                           CURSOR_TAG, raw.data + CURSOR_NONCE,
                                           raw.size - CURSOR_NONCE, out, &plen);
        (void)pthread_mutex_unlock(&api->cursor_lock);
        if (g >= 0 && memchr(out, '\0', plen) == NULL) {
            out[plen] = '\0';
            rc = FV_OK;
        } else {
            fv_wipe(out, cap); /* GnuTLS wrote unauthenticated plaintext */
        }
    }
    gnutls_free(raw.data);
    return rc;
}
