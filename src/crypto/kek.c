/*
 * crypto/kek.c: the KEK provider interface (STYLE 4). Each provider fills a
 * struct fv_kek_ops table; these functions check the table's version and the
 * sizes on both sides of it, so a provider never sees a key of the wrong
 * length and a caller never receives a blob larger than FV_CRYPTO_WRAPPED_MAX
 * or an unwrapped key that is not 32 bytes. Unwrapped key bytes pass through
 * one stack buffer, wiped on every path, on their way into a guarded secret.
 */
#include "crypto/crypto.h"

static void check_ops(const struct fv_kek *kek)
{
    FV_ASSERT(kek != NULL);
    FV_ASSERT(kek->ops != NULL);
    FV_ASSERT(kek->ops->version == FV_CRYPTO_KEK_OPS_VERSION);
}

int fv_crypto_kek_wrap(uint8_t out[FV_CRYPTO_WRAPPED_MAX], size_t *ret_len,
                       const struct fv_secret *key, const uint8_t *ad, size_t adlen,
                       struct fv_kek *kek)
{
    check_ops(kek);
    FV_ASSERT(out != NULL && ret_len != NULL && key != NULL);
    FV_ASSERT(fv_crypto_secret_len(key) == FV_CRYPTO_KEY_BYTES);
    FV_ASSERT(ad != NULL || adlen == 0);

    size_t len = 0;
    int rc =
        kek->ops->wrap(kek, out, &len, fv_crypto_secret_bytes(key), FV_CRYPTO_KEY_BYTES, ad, adlen);
    if (rc != FV_OK)
        return rc;
    /* A provider that overran the buffer has already corrupted memory: abort. */
    FV_ASSERT(len > 0 && len <= FV_CRYPTO_WRAPPED_MAX);
    *ret_len = len;
    return FV_OK;
}

int fv_crypto_kek_unwrap(struct fv_secret **ret, const uint8_t *blob, size_t bloblen,
                         const uint8_t *ad, size_t adlen, struct fv_kek *kek)
{
    check_ops(kek);
    FV_ASSERT(ret != NULL);
    FV_ASSERT(blob != NULL || bloblen == 0);
    FV_ASSERT(ad != NULL || adlen == 0);

    uint8_t buf[FV_CRYPTO_WRAPPED_MAX];
    size_t len = 0;
    struct fv_secret *s = NULL;
    int rc = FV_OK;

    if (bloblen == 0 || bloblen > FV_CRYPTO_WRAPPED_MAX) {
        rc = FV_E_CORRUPT;
        goto out;
    }
    rc = kek->ops->unwrap(kek, buf, &len, blob, bloblen, ad, adlen);
    if (rc != FV_OK)
        goto out;
    FV_ASSERT(len <= sizeof(buf));
    /* Authenticated, but not a root key: the blob was made for something else. */
    if (len != FV_CRYPTO_KEY_BYTES) {
        rc = FV_E_CORRUPT;
        goto out;
    }
    rc = fv_crypto_secret_copy(&s, buf, len);
    if (rc != FV_OK)
        goto out;
    *ret = s;
out:
    fv_wipe(buf, sizeof(buf));
    return rc;
}

int fv_crypto_kek_check(struct fv_kek *kek)
{
    check_ops(kek);
    return kek->ops->check(kek);
}

const char *fv_crypto_kek_id(const struct fv_kek *kek)
{
    check_ops(kek);
    return kek->id;
}

void fv_crypto_kek_free(struct fv_kek *kek)
{
    if (!kek)
        return;
    check_ops(kek);
    /* Parenthesised call: the field is named free, and this is not free(3). */
    (*kek->ops->free)(kek);
}
