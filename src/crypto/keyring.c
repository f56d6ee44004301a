/*
 * crypto/keyring.c: one owner's live root-key versions, each held only as
 * its derived purpose keys (the root itself is never kept).
 *
 * Storage: all FV_KEY_PURPOSES keys of a version sit in one guarded secret
 * (purpose p at offset 32 * p) rather than one secret each. A sodium_malloc
 * allocation costs three or four pages and several mappings; with many
 * tenants cached, one allocation per version instead of five keeps the
 * process well inside vm.max_map_count and RLIMIT_MEMLOCK.
 *
 * Locking: a rwlock guards the version table; readers (aead, mac, secret)
 * hold it shared only while deriving from a purpose key, writers (add,
 * remove, set_write, revoke) exclusively. Root-key derivation in add runs
 * before the lock is taken. The generation counter is atomic so consumers
 * can poll it without the lock. The reference count is atomic; the last
 * unref wipes everything.
 */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "crypto/crypto.h"

#define OWNER_MAX 64
#define PKEY FV_CRYPTO_KEY_BYTES
#define VERSION_BYTES (FV_KEY_PURPOSES * PKEY)
#define SUB_LABEL "formvault/sub"
#define INFO_STACK 256

/* DESIGN.md "Keys": HKDF labels, indexed by enum fv_key_purpose. */
static const char *const purpose_label[FV_KEY_PURPOSES] = {
    [FV_KEY_STORAGE] = "storage", [FV_KEY_FIELD] = "field",     [FV_KEY_BLIND] = "blind-index",
    [FV_KEY_FILE] = "file",       [FV_KEY_AUDIT] = "audit-mac",
};

struct slot {
    uint32_t version;
    struct fv_secret *keys; /* VERSION_BYTES: purpose keys back to back */
};

struct fv_keyring {
    atomic_long refs;
    _Atomic uint64_t generation;
    pthread_rwlock_t lock;
    /* Under lock: */
    struct slot slots[FV_CRYPTO_KEYRING_MAX_VERSIONS]; /* ascending version */
    size_t n;
    uint32_t write_version;
    /* Immutable: */
    size_t ownerlen;
    char owner[OWNER_MAX + 1];
};

int fv_crypto_keyring_new(struct fv_keyring **ret, const char *owner)
{
    struct fv_keyring *kr;
    size_t len;

    FV_ASSERT(owner != NULL);
    len = strlen(owner);
    if (len > OWNER_MAX)
        return FV_E_INVALID;
    kr = fv_calloc(1, sizeof(*kr));
    if (!kr)
        return FV_E_NOMEM;
    if (pthread_rwlock_init(&kr->lock, NULL) != 0) {
        fv_free(kr);
        return FV_E_NOMEM;
    }
    atomic_init(&kr->refs, 1);
    atomic_init(&kr->generation, 1);
    memcpy(kr->owner, owner, len + 1);
    kr->ownerlen = len;
    *ret = kr;
    return FV_OK;
}

struct fv_keyring *fv_crypto_keyring_ref(struct fv_keyring *kr)
{
    FV_ASSERT(kr != NULL);
    long before = atomic_fetch_add(&kr->refs, 1);
    FV_ASSERT(before > 0);
    return kr;
}

/* Caller holds the write lock (or the last reference). */
static void clear_slots(struct fv_keyring *kr)
{
    for (size_t i = 0; i < kr->n; i++) {
        fv_crypto_secret_free(kr->slots[i].keys);
        kr->slots[i].keys = NULL;
        kr->slots[i].version = 0;
    }
    kr->n = 0;
    kr->write_version = 0;
}

void fv_crypto_keyring_unref(struct fv_keyring *kr)
{
    if (!kr)
        return;
    long before = atomic_fetch_sub(&kr->refs, 1);
    FV_ASSERT(before > 0);
    if (before != 1)
        return;
    clear_slots(kr);
    (void)pthread_rwlock_destroy(&kr->lock);
    fv_free(kr);
}

static void bump(struct fv_keyring *kr)
{
    atomic_fetch_add(&kr->generation, 1);
}

/* Index of version, or -1. Caller holds the lock. */
static long find(const struct fv_keyring *kr, uint32_t version)
{
    for (size_t i = 0; i < kr->n; i++)
        if (kr->slots[i].version == version)
            return (long)i;
    return -1;
}

int fv_crypto_keyring_add(struct fv_keyring *kr, uint32_t version, const struct fv_secret *root)
{
    uint8_t keys[VERSION_BYTES];
    struct fv_secret *s = NULL;
    size_t at;
    int rc = FV_OK;

    FV_ASSERT(kr != NULL && root != NULL);
    if (version == 0)
        return FV_E_INVALID;
    for (int p = 0; p < FV_KEY_PURPOSES; p++) {
        rc = fv_crypto_kdf_derive_raw(keys + p * PKEY, purpose_label[p], (const uint8_t *)kr->owner,
                                      kr->ownerlen, root);
        if (rc != FV_OK)
            goto out;
    }
    rc = fv_crypto_secret_copy(&s, keys, sizeof(keys));
    if (rc != FV_OK)
        goto out;

    FV_ASSERT(pthread_rwlock_wrlock(&kr->lock) == 0);
    if (find(kr, version) >= 0) {
        rc = FV_E_CONFLICT;
    } else if (kr->n == FV_CRYPTO_KEYRING_MAX_VERSIONS) {
        rc = FV_E_LIMIT;
    } else {
        for (at = kr->n; at > 0 && kr->slots[at - 1].version > version; at--)
            kr->slots[at] = kr->slots[at - 1];
        kr->slots[at].version = version;
        kr->slots[at].keys = s;
        kr->n++;
        s = NULL;
        if (kr->write_version == 0)
            kr->write_version = version;
        bump(kr);
    }
    FV_ASSERT(pthread_rwlock_unlock(&kr->lock) == 0);
out:
    fv_crypto_secret_free(s);
    fv_wipe(keys, sizeof(keys));
    return rc;
}

int fv_crypto_keyring_set_write(struct fv_keyring *kr, uint32_t version)
{
    int rc = FV_OK;
    FV_ASSERT(kr != NULL);
    FV_ASSERT(pthread_rwlock_wrlock(&kr->lock) == 0);
    if (version == 0 || find(kr, version) < 0) {
        rc = FV_E_NOT_FOUND;
    } else {
        kr->write_version = version;
        bump(kr);
    }
    FV_ASSERT(pthread_rwlock_unlock(&kr->lock) == 0);
    return rc;
}

uint32_t fv_crypto_keyring_write_version(struct fv_keyring *kr)
{
    uint32_t v;
    FV_ASSERT(kr != NULL);
    FV_ASSERT(pthread_rwlock_rdlock(&kr->lock) == 0);
    v = kr->write_version;
    FV_ASSERT(pthread_rwlock_unlock(&kr->lock) == 0);
    return v;
}

/* Removing the write version leaves none (0) until set_write or the next add. */
void fv_crypto_keyring_remove(struct fv_keyring *kr, uint32_t version)
{
    long i;
    FV_ASSERT(kr != NULL);
    FV_ASSERT(pthread_rwlock_wrlock(&kr->lock) == 0);
    i = find(kr, version);
    if (i >= 0) {
        fv_crypto_secret_free(kr->slots[i].keys);
        for (size_t j = (size_t)i; j + 1 < kr->n; j++)
            kr->slots[j] = kr->slots[j + 1];
        kr->n--;
        kr->slots[kr->n].keys = NULL;
        kr->slots[kr->n].version = 0;
        if (kr->write_version == version)
            kr->write_version = 0;
    }
    bump(kr);
    FV_ASSERT(pthread_rwlock_unlock(&kr->lock) == 0);
}

void fv_crypto_keyring_revoke(struct fv_keyring *kr)
{
    FV_ASSERT(kr != NULL);
    FV_ASSERT(pthread_rwlock_wrlock(&kr->lock) == 0);
    clear_slots(kr);
    bump(kr);
    FV_ASSERT(pthread_rwlock_unlock(&kr->lock) == 0);
}

uint64_t fv_crypto_keyring_generation(struct fv_keyring *kr)
{
    FV_ASSERT(kr != NULL);
    return atomic_load(&kr->generation);
}

size_t fv_crypto_keyring_versions(struct fv_keyring *kr, uint32_t *out, size_t max)
{
    size_t n;
    FV_ASSERT(kr != NULL);
    FV_ASSERT(out || max == 0);
    FV_ASSERT(pthread_rwlock_rdlock(&kr->lock) == 0);
    n = kr->n;
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = kr->slots[i].version;
    FV_ASSERT(pthread_rwlock_unlock(&kr->lock) == 0);
    return n;
}

/* Purpose key bytes of version, or NULL. Caller holds the lock. */
static const uint8_t *purpose_key(const struct fv_keyring *kr, uint32_t version,
                                  enum fv_key_purpose purpose)
{
    long i;
    FV_ASSERT((int)purpose >= 0 && purpose < FV_KEY_PURPOSES);
    i = find(kr, version);
    if (i < 0)
        return NULL;
    return fv_crypto_secret_bytes(kr->slots[i].keys) + (size_t)purpose * PKEY;
}

/*
 * The subkey is exactly fv_crypto_kdf_derive_raw(label "sub", ctx, purpose
 * key); it is spelled out here because the purpose key is a slice of a
 * larger secret, not a struct fv_secret of its own. test_keyring checks
 * the two agree.
 */
static int derive_sub(uint8_t out[PKEY], const uint8_t *pkey, const uint8_t *ctx, size_t ctxlen)
{
    uint8_t stackinfo[INFO_STACK];
    uint8_t *info = stackinfo;
    size_t hlen = sizeof(SUB_LABEL); /* label and its 0x00 separator */
    int rc;

    if (ctxlen > SIZE_MAX - hlen)
        return FV_E_INVALID;
    if (hlen + ctxlen > sizeof(stackinfo)) {
        info = fv_malloc(hlen + ctxlen);
        if (!info)
            return FV_E_NOMEM;
    }
    memcpy(info, SUB_LABEL, hlen);
    if (ctxlen)
        memcpy(info + hlen, ctx, ctxlen);
    rc = fv_crypto_hkdf_sha256(out, PKEY, pkey, PKEY, NULL, 0, info, hlen + ctxlen);
    if (info != stackinfo)
        fv_free(info);
    return rc;
}

int fv_crypto_keyring_aead(struct fv_aead **ret, struct fv_keyring *kr, uint32_t version,
                           enum fv_key_purpose purpose, const uint8_t *ctx, size_t ctxlen)
{
    uint8_t sub[PKEY];
    const uint8_t *k;
    int rc;

    FV_ASSERT(kr != NULL && ret != NULL);
    FV_ASSERT(ctx || ctxlen == 0);
    FV_ASSERT(pthread_rwlock_rdlock(&kr->lock) == 0);
    k = purpose_key(kr, version, purpose);
    if (!k) {
        rc = FV_E_KEY_UNAVAILABLE;
        goto out;
    }
    if (ctx) {
        rc = derive_sub(sub, k, ctx, ctxlen);
        if (rc != FV_OK)
            goto out;
        k = sub;
    }
    rc = fv_crypto_aead_new_raw(ret, k);
out:
    FV_ASSERT(pthread_rwlock_unlock(&kr->lock) == 0);
    fv_wipe(sub, sizeof(sub));
    return rc;
}

int fv_crypto_keyring_mac(uint8_t out[FV_CRYPTO_MAC_BYTES], const uint8_t *m, size_t mlen,
                          struct fv_keyring *kr, uint32_t version, enum fv_key_purpose purpose)
{
    static const uint8_t empty;
    const uint8_t *k;
    int rc = FV_OK;

    FV_ASSERT(kr != NULL && out != NULL);
    FV_ASSERT(m || mlen == 0);
    FV_ASSERT(pthread_rwlock_rdlock(&kr->lock) == 0);
    k = purpose_key(kr, version, purpose);
    if (!k)
        rc = FV_E_KEY_UNAVAILABLE;
    else if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, k, PKEY, m ? (const void *)m : &empty, mlen, out) <
             0)
        rc = FV_E_INTERNAL;
    FV_ASSERT(pthread_rwlock_unlock(&kr->lock) == 0);
    return rc;
}

int fv_crypto_keyring_secret(struct fv_secret **ret, struct fv_keyring *kr, uint32_t version,
                             enum fv_key_purpose purpose)
{
    const uint8_t *k;
    int rc;

    FV_ASSERT(kr != NULL && ret != NULL);
    FV_ASSERT(pthread_rwlock_rdlock(&kr->lock) == 0);
    k = purpose_key(kr, version, purpose);
    rc = k ? fv_crypto_secret_copy(ret, k, PKEY) : FV_E_KEY_UNAVAILABLE;
    FV_ASSERT(pthread_rwlock_unlock(&kr->lock) == 0);
    return rc;
}
