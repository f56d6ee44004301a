/*
 * crypto/aead.c: AES-256-GCM (NIST SP 800-38D) on GnuTLS's AEAD API.
 *
 * Detached operations run in place through gnutls_aead_cipher_encryptv2 /
 * decryptv2 with a single iovec: no copy and no allocation per call, which
 * matters because the encrypting SQLite VFS seals and opens every 4 KiB page
 * through here. decryptv2 decrypts before it compares the tag, so a failed
 * open wipes the output: unauthenticated plaintext never reaches a caller.
 * Every open failure is FV_E_CORRUPT (STYLE 26: no oracle).
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "crypto/crypto.h"

_Static_assert(FV_CRYPTO_KEY_BYTES == 32, "AES-256 key");
_Static_assert(FV_CRYPTO_NONCE_BYTES == 12, "GCM 96-bit nonce");
_Static_assert(FV_CRYPTO_TAG_BYTES == 16, "full-length GCM tag");

struct fv_aead {
    gnutls_aead_cipher_hd_t h; /* owns the expanded key; deinit zeroizes it */
};

int fv_crypto_aead_new_raw(struct fv_aead **ret, const uint8_t key[32])
{
    struct fv_aead *a = NULL;
    uint8_t k[FV_CRYPTO_KEY_BYTES];
    gnutls_datum_t d = {k, sizeof(k)};
    int rc = FV_OK, gr;

    FV_ASSERT(key != NULL);
    /* gnutls_datum_t is not const-qualified; hand it a private copy. */
    memcpy(k, key, sizeof(k));
    a = fv_calloc(1, sizeof(*a));
    if (!a) {
        rc = FV_E_NOMEM;
        goto out;
    }
    gr = gnutls_aead_cipher_init(&a->h, GNUTLS_CIPHER_AES_256_GCM, &d);
    if (gr < 0) {
        a->h = NULL;
        rc = gr == GNUTLS_E_MEMORY_ERROR ? FV_E_NOMEM : FV_E_INTERNAL;
        goto out;
    }
    *ret = a;
    a = NULL;
out:
    fv_wipe(k, sizeof(k));
    fv_crypto_aead_free(a);
    return rc;
}

int fv_crypto_aead_new(struct fv_aead **ret, const struct fv_secret *key)
{
    FV_ASSERT(key != NULL);
    FV_ASSERT(fv_crypto_secret_len(key) == FV_CRYPTO_KEY_BYTES);
    return fv_crypto_aead_new_raw(ret, fv_crypto_secret_bytes(key));
}

void fv_crypto_aead_free(struct fv_aead *a)
{
    if (!a)
        return;
    if (a->h)
        gnutls_aead_cipher_deinit(a->h);
    fv_free(a);
}

int fv_crypto_aead_seal_detached(uint8_t *c, uint8_t tag[FV_CRYPTO_TAG_BYTES], const uint8_t *m,
                                 size_t mlen, const uint8_t *ad, size_t adlen,
                                 const uint8_t nonce[FV_CRYPTO_NONCE_BYTES], struct fv_aead *key)
{
    giovec_t adv = {(void *)ad, adlen};
    giovec_t iov = {c, mlen};
    size_t taglen = FV_CRYPTO_TAG_BYTES;

    FV_ASSERT(key != NULL && nonce != NULL && tag != NULL);
    FV_ASSERT((c && m) || mlen == 0);
    FV_ASSERT(ad || adlen == 0);
    if (mlen && c != m)
        memmove(c, m, mlen);
    if (gnutls_aead_cipher_encryptv2(key->h, nonce, FV_CRYPTO_NONCE_BYTES, &adv, adlen ? 1 : 0,
                                     &iov, mlen ? 1 : 0, tag, &taglen) < 0 ||
        taglen != FV_CRYPTO_TAG_BYTES)
        return FV_E_INTERNAL;
    return FV_OK;
}

int fv_crypto_aead_open_detached(uint8_t *m, const uint8_t *c, size_t clen,
                                 const uint8_t tag[FV_CRYPTO_TAG_BYTES], const uint8_t *ad,
                                 size_t adlen, const uint8_t nonce[FV_CRYPTO_NONCE_BYTES],
                                 struct fv_aead *key)
{
    giovec_t adv = {(void *)ad, adlen};
    giovec_t iov = {m, clen};
    uint8_t t[FV_CRYPTO_TAG_BYTES];

    FV_ASSERT(key != NULL && nonce != NULL && tag != NULL);
    FV_ASSERT((c && m) || clen == 0);
    FV_ASSERT(ad || adlen == 0);
    /* decryptv2 takes a non-const tag; it only reads it. */
    memcpy(t, tag, sizeof(t));
    if (clen && m != c)
        memmove(m, c, clen);
    if (gnutls_aead_cipher_decryptv2(key->h, nonce, FV_CRYPTO_NONCE_BYTES, &adv, adlen ? 1 : 0,
                                     &iov, clen ? 1 : 0, t, sizeof(t)) < 0) {
        fv_wipe(m, clen);
        return FV_E_CORRUPT;
    }
    return FV_OK;
}

int fv_crypto_aead_seal(uint8_t *c, const uint8_t *m, size_t mlen, const uint8_t *ad, size_t adlen,
                        struct fv_aead *key)
{
    FV_ASSERT(c != NULL);
    fv_random_bytes(c, FV_CRYPTO_NONCE_BYTES);
    return fv_crypto_aead_seal_detached(c + FV_CRYPTO_NONCE_BYTES, c + FV_CRYPTO_NONCE_BYTES + mlen,
                                        m, mlen, ad, adlen, c, key);
}

int fv_crypto_aead_open(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
                        struct fv_aead *key)
{
    size_t mlen;

    if (!c || clen < FV_CRYPTO_AEAD_OVERHEAD)
        return FV_E_CORRUPT;
    mlen = clen - FV_CRYPTO_AEAD_OVERHEAD;
    return fv_crypto_aead_open_detached(m, c + FV_CRYPTO_NONCE_BYTES, mlen,
                                        c + FV_CRYPTO_NONCE_BYTES + mlen, ad, adlen, c, key);
}
