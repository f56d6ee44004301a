/*
 * crypto/kdf.c: HKDF-SHA256 (RFC 5869) and HMAC-SHA256 (RFC 2104) on
 * GnuTLS, and the labelled key derivation every purpose key goes through:
 * info = "formvault/" label || 0x00 || ctx. The 0x00 separator keeps
 * (label, ctx) pairs unambiguous because labels never contain a NUL.
 * Intermediate keys (the PRK, derived bytes) are wiped on every path.
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "crypto/crypto.h"

#define HASH_BYTES 32
#define KDF_PREFIX "formvault/"
#define INFO_STACK 256

_Static_assert(FV_CRYPTO_MAC_BYTES == HASH_BYTES, "HMAC-SHA256 output");

/* gnutls_datum_t wants a non-NULL pointer even for zero-length input. */
static uint8_t empty_byte;

int fv_crypto_hkdf_sha256(uint8_t *out, size_t outlen, const uint8_t *ikm, size_t ikmlen,
                          const uint8_t *salt, size_t saltlen, const uint8_t *info, size_t infolen)
{
    uint8_t prk[HASH_BYTES];
    gnutls_datum_t k = {(void *)(ikm ? ikm : &empty_byte), (unsigned)ikmlen};
    gnutls_datum_t s = {(void *)(salt ? salt : &empty_byte), (unsigned)(salt ? saltlen : 0)};
    gnutls_datum_t p = {prk, sizeof(prk)};
    gnutls_datum_t i = {(void *)(info ? info : &empty_byte), (unsigned)(info ? infolen : 0)};
    int rc = FV_OK;

    FV_ASSERT(out != NULL);
    FV_ASSERT(ikm || ikmlen == 0);
    if (outlen == 0 || outlen > 255 * HASH_BYTES)
        return FV_E_INVALID;
    if (ikmlen > UINT32_MAX || saltlen > UINT32_MAX || infolen > UINT32_MAX)
        return FV_E_INVALID;
    if (gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &k, &s, prk) < 0) {
        rc = FV_E_INTERNAL;
        goto out;
    }
    if (gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &p, &i, out, outlen) < 0) {
        fv_wipe(out, outlen);
        rc = FV_E_INTERNAL;
        goto out;
    }
out:
    fv_wipe(prk, sizeof(prk));
    return rc;
}

int fv_crypto_kdf_derive_raw(uint8_t out[FV_CRYPTO_KEY_BYTES], const char *label,
                             const uint8_t *ctx, size_t ctxlen, const struct fv_secret *root)
{
    uint8_t stackinfo[INFO_STACK];
    uint8_t *info = stackinfo;
    size_t plen = sizeof(KDF_PREFIX) - 1;
    size_t llen, infolen;
    int rc;

    FV_ASSERT(out != NULL && label != NULL && root != NULL);
    FV_ASSERT(ctx || ctxlen == 0);
    llen = strlen(label);
    FV_ASSERT(llen > 0 && llen <= 64);
    if (ctxlen > SIZE_MAX / 2)
        return FV_E_INVALID;
    infolen = plen + llen + 1 + ctxlen;
    if (infolen > sizeof(stackinfo)) {
        info = fv_malloc(infolen);
        if (!info)
            return FV_E_NOMEM;
    }
    memcpy(info, KDF_PREFIX, plen);
    memcpy(info + plen, label, llen);
    info[plen + llen] = 0x00;
    if (ctxlen)
        memcpy(info + plen + llen + 1, ctx, ctxlen);
    rc = fv_crypto_hkdf_sha256(out, FV_CRYPTO_KEY_BYTES, fv_crypto_secret_bytes(root),
                               fv_crypto_secret_len(root), NULL, 0, info, infolen);
    if (info != stackinfo)
        fv_free(info);
    return rc;
}

int fv_crypto_kdf_derive(struct fv_secret **ret, const char *label, const uint8_t *ctx,
                         size_t ctxlen, const struct fv_secret *root)
{
    uint8_t k[FV_CRYPTO_KEY_BYTES];
    int rc = fv_crypto_kdf_derive_raw(k, label, ctx, ctxlen, root);
    if (rc != FV_OK)
        goto out;
    rc = fv_crypto_secret_copy(ret, k, sizeof(k));
out:
    fv_wipe(k, sizeof(k));
    return rc;
}

int fv_crypto_hmac_sha256(uint8_t out[FV_CRYPTO_MAC_BYTES], const uint8_t *m, size_t mlen,
                          const struct fv_secret *key)
{
    FV_ASSERT(out != NULL && key != NULL);
    FV_ASSERT(m || mlen == 0);
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, fv_crypto_secret_bytes(key), fv_crypto_secret_len(key),
                         m ? (const void *)m : &empty_byte, mlen, out) < 0)
        return FV_E_INTERNAL;
    return FV_OK;
}
