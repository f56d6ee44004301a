/*
 * crypto/secret.c: long-lived key material in libsodium guarded memory
 * (STYLE 24). The bytes live in a sodium_malloc allocation (guard pages,
 * canary, mlock + MADV_DONTDUMP) that is made read-only once filled; the
 * small handle that records the length is an ordinary fv_malloc block, so
 * the allocation-failure tests reach this path too.
 */
#include <sodium.h>
#include <string.h>

#include "crypto/crypto.h"

#define SECRET_MAX 4096

struct fv_secret {
    size_t len;
    uint8_t *p; /* sodium_malloc, read-only after creation */
};

/* Allocate a handle with writable guarded storage of len bytes. */
static int secret_alloc(struct fv_secret **ret, size_t len)
{
    struct fv_secret *s = NULL;

    FV_ASSERT(len >= 1 && len <= SECRET_MAX);
    if (sodium_init() < 0)
        return FV_E_INTERNAL;
    s = fv_calloc(1, sizeof(*s));
    if (!s)
        return FV_E_NOMEM;
    s->p = sodium_malloc(len);
    if (!s->p) {
        fv_free(s);
        return FV_E_NOMEM;
    }
    s->len = len;
    *ret = s;
    return FV_OK;
}

/* Seal the storage read-only; a failure leaves it writable but still guarded. */
static int secret_seal(struct fv_secret *s)
{
    if (sodium_mprotect_readonly(s->p) != 0)
        return FV_E_INTERNAL;
    return FV_OK;
}

int fv_crypto_secret_random(struct fv_secret **ret, size_t len)
{
    struct fv_secret *s = NULL;
    int rc = secret_alloc(&s, len);
    if (rc != FV_OK)
        goto out;
    fv_random_bytes(s->p, len);
    rc = secret_seal(s);
    if (rc != FV_OK)
        goto out;
    *ret = s;
    s = NULL;
out:
    fv_crypto_secret_free(s);
    return rc;
}

int fv_crypto_secret_copy(struct fv_secret **ret, const uint8_t *p, size_t len)
{
    struct fv_secret *s = NULL;
    int rc;

    FV_ASSERT(p != NULL);
    rc = secret_alloc(&s, len);
    if (rc != FV_OK)
        goto out;
    memcpy(s->p, p, len);
    rc = secret_seal(s);
    if (rc != FV_OK)
        goto out;
    *ret = s;
    s = NULL;
out:
    fv_crypto_secret_free(s);
    return rc;
}

const uint8_t *fv_crypto_secret_bytes(const struct fv_secret *s)
{
    FV_ASSERT(s != NULL);
    return s->p;
}

size_t fv_crypto_secret_len(const struct fv_secret *s)
{
    FV_ASSERT(s != NULL);
    return s->len;
}

void fv_crypto_secret_free(struct fv_secret *s)
{
    if (!s)
        return;
    if (s->p) {
        /* sodium_free wipes, so the pages must be writable again first. */
        (void)sodium_mprotect_readwrite(s->p);
        sodium_free(s->p);
    }
    fv_free(s);
}
