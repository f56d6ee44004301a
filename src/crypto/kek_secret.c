/*
 * crypto/kek_secret.c: the "imported" KEK provider, a KEK whose 32 bytes
 * formvault holds in a guarded secret (a tenant's BYOK key that arrived
 * through the transport key). The file provider (kek_file.c) reads its key
 * and then delegates to one of these, so the two share one wrap format:
 *
 *   0x01 || nonce (12) || AES-256-GCM ciphertext (keylen) || tag (16)
 *
 * with the caller's associated data. Each call builds its own fv_aead
 * context from the secret (an fv_aead is not thread-safe, a KEK must be),
 * which costs one AES key schedule per wrap or unwrap: these are rare.
 */
#include "crypto/crypto.h"

#define KEK_LOCAL_FORMAT 0x01
/* Format byte plus the AEAD's nonce and tag. */
#define KEK_LOCAL_OVERHEAD (1 + FV_CRYPTO_AEAD_OVERHEAD)

struct kek_secret {
    struct fv_kek base; /* first: fv_kek pointers are cast back to kek_secret */
    struct fv_secret *key;
};

static int kek_secret_wrap(struct fv_kek *kek, uint8_t *out, size_t *ret_len, const uint8_t *key,
                           size_t keylen, const uint8_t *ad, size_t adlen)
{
    struct kek_secret *k = (struct kek_secret *)kek;
    struct fv_aead *a = NULL;
    int rc = FV_OK;

    FV_ASSERT(keylen > 0 && keylen <= FV_CRYPTO_WRAPPED_MAX - KEK_LOCAL_OVERHEAD);
    rc = fv_crypto_aead_new(&a, k->key);
    if (rc != FV_OK)
        goto out;
    rc = fv_crypto_aead_seal(out + 1, key, keylen, ad, adlen, a);
    if (rc != FV_OK)
        goto out;
    out[0] = KEK_LOCAL_FORMAT;
    *ret_len = keylen + KEK_LOCAL_OVERHEAD;
out:
    fv_crypto_aead_free(a);
    return rc;
}

static int kek_secret_unwrap(struct fv_kek *kek, uint8_t *out, size_t *ret_len, const uint8_t *blob,
                             size_t bloblen, const uint8_t *ad, size_t adlen)
{
    struct kek_secret *k = (struct kek_secret *)kek;
    struct fv_aead *a = NULL;
    int rc = FV_OK;

    /* 1. too short to hold a key, 2. too long for any blob we make, 3. another provider's format */
    if (bloblen <= KEK_LOCAL_OVERHEAD || bloblen > FV_CRYPTO_WRAPPED_MAX ||
        blob[0] != KEK_LOCAL_FORMAT)
        return FV_E_CORRUPT;
    rc = fv_crypto_aead_new(&a, k->key);
    if (rc != FV_OK)
        goto out;
    rc = fv_crypto_aead_open(out, blob + 1, bloblen - 1, ad, adlen, a);
    if (rc != FV_OK)
        goto out;
    *ret_len = bloblen - KEK_LOCAL_OVERHEAD;
out:
    fv_crypto_aead_free(a);
    return rc;
}

/* The key is in memory for as long as the KEK exists. */
static int kek_secret_check(struct fv_kek *kek)
{
    (void)kek;
    return FV_OK;
}

static void kek_secret_free(struct fv_kek *kek)
{
    struct kek_secret *k = (struct kek_secret *)kek;
    fv_crypto_secret_free(k->key);
    fv_free(k);
}

static const struct fv_kek_ops kek_secret_ops = {
    .version = FV_CRYPTO_KEK_OPS_VERSION,
    .name = "imported",
    .wrap = kek_secret_wrap,
    .unwrap = kek_secret_unwrap,
    .check = kek_secret_check,
    .free = kek_secret_free,
};

int fv_crypto_kek_secret_new(struct fv_kek **ret, const char *id, const struct fv_secret *key)
{
    struct kek_secret *k = NULL;
    int rc = FV_OK;

    FV_ASSERT(ret != NULL && id != NULL && key != NULL);
    FV_ASSERT(fv_crypto_secret_len(key) == FV_CRYPTO_KEY_BYTES);
    /* The ID is stored next to every blob in the catalog: an empty or cut one is useless. */
    if (id[0] == '\0')
        return FV_E_INVALID;
    k = fv_calloc(1, sizeof(*k));
    if (!k)
        return FV_E_NOMEM;
    k->base.ops = &kek_secret_ops;
    if (fv_strlcpy(k->base.id, id, sizeof(k->base.id)) != FV_OK) {
        rc = FV_E_INVALID;
        goto out;
    }
    rc = fv_crypto_secret_copy(&k->key, fv_crypto_secret_bytes(key), FV_CRYPTO_KEY_BYTES);
    if (rc != FV_OK)
        goto out;
    *ret = &k->base;
    k = NULL;
out:
    if (k)
        kek_secret_free(&k->base);
    return rc;
}
