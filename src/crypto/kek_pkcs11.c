/*
 * crypto/kek_pkcs11.c: the "pkcs11" KEK provider. The KEK is an AES-256
 * secret-key object on a PKCS#11 token (an HSM; SoftHSM2 in tests) that
 * never leaves it: wrap and unwrap are C_Encrypt and C_Decrypt with
 * CKM_AES_GCM (PKCS#11 v2.40 2.12) inside the token, a random 96-bit IV and
 * the caller's associated data. Blob: 0x02 || iv (12) || ciphertext || tag (16).
 *
 * The module is loaded through p11-kit in managed mode
 * (p11_kit_module_load with flags 0), so several handles on the same module
 * in one process (an open KEK, a `generate`, two tokens) each get their own
 * C_Initialize/C_Finalize and their own sessions without tearing down each
 * other's. Each handle holds one R/W session, logged in as CKU_USER, and the
 * key's object handle, all guarded by one mutex: PKCS#11 sessions are not to
 * be used by two threads at once.
 *
 * Losing the token. When an operation fails because the session, the login
 * or the object handle is gone (the token was removed, re-initialised or
 * deleted, the HSM restarted), the handle reconnects once: find the token by
 * label again, open a session, log in with the kept PIN, find the key by
 * label. If that fails the operation returns FV_E_KEY_UNAVAILABLE, and the
 * next operation tries again, so the KEK recovers when the token returns.
 * SoftHSM2 2.6 reports a failed GCM tag check as CKR_GENERAL_ERROR, not
 * CKR_ENCRYPTED_DATA_INVALID, so an unspecific failure is told apart by a
 * fresh look-up of the key: key still there = the blob is bad (FV_E_CORRUPT
 * on unwrap, FV_E_INTERNAL on wrap); key gone = reconnect. See the README.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "crypto/crypto.h"

#define KEK_P11_FORMAT 0x02
#define KEK_P11_IV_BYTES 12
#define KEK_P11_TAG_BYTES 16
#define KEK_P11_OVERHEAD (1 + KEK_P11_IV_BYTES + KEK_P11_TAG_BYTES)
#define KEK_P11_TOKEN_LABEL_MAX 32 /* CK_TOKEN_INFO.label: 32 bytes, space padded */
#define KEK_P11_KEY_LABEL_MAX 64   /* keeps "pkcs11:" token "/" key within the ID */
#define KEK_P11_PIN_MAX 256

/* PKCS#11 v3.0 code for a failed AEAD tag check; p11-kit 0.24's header predates it. */
#ifndef CKR_AEAD_DECRYPT_FAILED
#define CKR_AEAD_DECRYPT_FAILED 0x35UL
#endif

_Static_assert(KEK_P11_OVERHEAD + FV_CRYPTO_KEY_BYTES <= FV_CRYPTO_WRAPPED_MAX,
               "a wrapped root key fits the blob buffer");
_Static_assert(sizeof("pkcs11:") - 1 + KEK_P11_TOKEN_LABEL_MAX + 1 + KEK_P11_KEY_LABEL_MAX <
                   FV_CRYPTO_KEK_ID_MAX,
               "the key ID fits");

/* One loaded module and, once opened, one logged-in session on one token. */
struct p11 {
    CK_FUNCTION_LIST *mod;
    bool initialized;
    bool have_session;
    CK_SESSION_HANDLE session;
};

struct kek_pkcs11 {
    struct fv_kek base; /* first: fv_kek pointers are cast back to kek_pkcs11 */
    pthread_mutex_t lock;
    bool lock_init;
    /* guarded by lock: */
    struct p11 conn;
    CK_OBJECT_HANDLE key;
    bool ready; /* session open, logged in, key found */
    /* unchanging after open: */
    char *module;
    char *token_label;
    char *key_label;
    struct fv_secret *pin; /* NULL for an empty PIN */
};

/* ------------------------------------------------------------ messages */

static const char *rv_name(CK_RV rv)
{
    static const struct {
        CK_RV rv;
        const char *name;
    } names[] = {
        {CKR_OK, "CKR_OK"},
        {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
        {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
        {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
        {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
        {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
        {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
        {CKR_DATA_INVALID, "CKR_DATA_INVALID"},
        {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
        {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
        {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
        {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
        {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
        {CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE"},
        {CKR_AEAD_DECRYPT_FAILED, "CKR_AEAD_DECRYPT_FAILED"},
        {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
        {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
        {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
        {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
        {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
        {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
        {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
        {CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED"},
        {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
        {CKR_PIN_INVALID, "CKR_PIN_INVALID"},
        {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
        {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
        {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
        {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
        {CKR_SESSION_COUNT, "CKR_SESSION_COUNT"},
        {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
        {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"},
        {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
        {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
        {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
        {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
        {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED"},
        {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
        {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
        {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"},
        {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
        {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
    };
    for (size_t i = 0; i < FV_ARRAY_LEN(names); i++)
        if (names[i].rv == rv)
            return names[i].name;
    return "unknown PKCS#11 error";
}

/* --------------------------------------------------- module and session */

/*
 * The session, the login or the key handle is gone: worth one reconnect.
 * CKR_OPERATION_ACTIVE is here because a fresh session is the only sure way
 * out of an operation the token left half-done.
 */
static bool rv_lost(CK_RV rv)
{
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_ERROR:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_OPERATION_ACTIVE:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
        return true;
    default:
        return false;
    }
}

static int p11_load(struct p11 *c, const char *module, struct fv_error *reterr)
{
    c->mod = p11_kit_module_load(module, 0);
    if (!c->mod) {
        const char *why = p11_kit_message();
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                            "pkcs11 module '%s' is not loadable: %s", module,
                            why ? why : "unknown reason");
    }
    CK_RV rv = p11_kit_module_initialize(c->mod);
    if (rv != CKR_OK)
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                            "pkcs11 module '%s' failed to initialise: %s", module, rv_name(rv));
    c->initialized = true;
    return FV_OK;
}

static void p11_close_session(struct p11 *c)
{
    if (c->have_session)
        (void)c->mod->C_CloseSession(c->session); /* a lost session is already closed */
    c->have_session = false;
}

/* Accepts a half-loaded p11. */
static void p11_unload(struct p11 *c)
{
    p11_close_session(c);
    if (c->initialized)
        (void)p11_kit_module_finalize(c->mod); /* nothing to do if it fails */
    if (c->mod)
        p11_kit_module_release(c->mod);
    c->initialized = false;
    c->mod = NULL;
}

/*
 * The first slot with an initialised token labelled token_label (the label
 * is blank padded to 32 bytes in CK_TOKEN_INFO). Slots whose token info
 * cannot be read (SoftHSM2 keeps a deleted token's slot and answers
 * CKR_GENERAL_ERROR) are skipped. FV_E_KEY_UNAVAILABLE, FV_E_NOMEM.
 */
static int p11_find_slot(struct p11 *c, CK_SLOT_ID *ret, const char *token_label,
                         struct fv_error *reterr)
{
    uint8_t want[KEK_P11_TOKEN_LABEL_MAX];
    CK_SLOT_ID *slots = NULL;
    CK_ULONG nslots = 0;
    size_t len = strlen(token_label);
    int rc = FV_E_KEY_UNAVAILABLE;
    CK_RV rv = CKR_GENERAL_ERROR;

    FV_ASSERT(len <= sizeof(want));
    memset(want, ' ', sizeof(want));
    memcpy(want, token_label, len);
    /* The list may grow between the two calls (a token inserted): ask again a few times. */
    for (int tries = 0; tries < 4; tries++) {
        rv = c->mod->C_GetSlotList(CK_TRUE, NULL, &nslots);
        if (rv != CKR_OK)
            break;
        FV_FREE(slots);
        slots = fv_calloc(nslots ? nslots : 1, sizeof(*slots));
        if (!slots) {
            rc = fv_error_set(reterr, FV_E_NOMEM, SIZE_MAX, "cannot list pkcs11 slots");
            goto out;
        }
        rv = c->mod->C_GetSlotList(CK_TRUE, slots, &nslots);
        if (rv != CKR_BUFFER_TOO_SMALL)
            break;
    }
    if (rv != CKR_OK) {
        rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                          "cannot list the slots of the pkcs11 module: %s", rv_name(rv));
        goto out;
    }
    for (CK_ULONG i = 0; i < nslots; i++) {
        CK_TOKEN_INFO ti;
        if (c->mod->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        if (!(ti.flags & CKF_TOKEN_INITIALIZED))
            continue;
        if (fv_ct_equal(ti.label, want, sizeof(want))) {
            *ret = slots[i];
            rc = FV_OK;
            goto out;
        }
    }
    rc =
        fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX, "no token labelled '%s'", token_label);
out:
    fv_free(slots);
    return rc;
}

/*
 * Logins. PKCS#11 logs a process in to a token once, for all its sessions
 * (v2.40 5.6): while any handle here is logged in, C_Login from another
 * answers CKR_USER_ALREADY_LOGGED_IN without looking at the PIN. Taking that
 * as success would let a second KEK (or a tenant's BYOK entry naming the
 * same token) open with any PIN. So the process remembers, per module and
 * token, the PIN the token last accepted with CKR_OK, and an "already
 * logged in" is accepted only for that PIN (constant-time compare). Entries
 * live as long as the process: one per token ever logged in to.
 */
struct login {
    struct login *next;
    char *module;
    char *token;
    struct fv_secret *pin; /* NULL for an empty PIN */
};
static pthread_mutex_t logins_lock = PTHREAD_MUTEX_INITIALIZER;
static struct login *logins;

static bool pin_equal(const struct fv_secret *a, const struct fv_secret *b)
{
    if (!a || !b)
        return !a && !b;
    return fv_crypto_secret_len(a) == fv_crypto_secret_len(b) &&
           fv_ct_equal(fv_crypto_secret_bytes(a), fv_crypto_secret_bytes(b),
                       fv_crypto_secret_len(a));
}

static struct login *login_find(const char *module, const char *token)
{
    for (struct login *l = logins; l; l = l->next)
        if (strcmp(l->module, module) == 0 && strcmp(l->token, token) == 0)
            return l;
    return NULL;
}

/* The token accepted pin: remember it. FV_E_NOMEM. */
static int login_accepted(const char *module, const char *token, const struct fv_secret *pin)
{
    struct fv_secret *copy = NULL;
    struct login *l = NULL;
    int rc = FV_OK;

    if (pin) {
        rc = fv_crypto_secret_copy(&copy, fv_crypto_secret_bytes(pin), fv_crypto_secret_len(pin));
        if (rc != FV_OK)
            return rc;
    }
    FV_ASSERT(pthread_mutex_lock(&logins_lock) == 0);
    l = login_find(module, token);
    if (!l) {
        l = fv_calloc(1, sizeof(*l));
        if (l) {
            l->module = fv_strdup(module);
            l->token = fv_strdup(token);
        }
        if (!l || !l->module || !l->token) {
            if (l) {
                fv_free(l->module);
                fv_free(l->token);
                fv_free(l);
            }
            rc = FV_E_NOMEM;
            goto out;
        }
        l->next = logins;
        logins = l;
    }
    fv_crypto_secret_free(l->pin);
    l->pin = copy;
    copy = NULL;
out:
    FV_ASSERT(pthread_mutex_unlock(&logins_lock) == 0);
    fv_crypto_secret_free(copy);
    return rc;
}

/* The process is already logged in: was it with this PIN? */
static bool login_matches(const char *module, const char *token, const struct fv_secret *pin)
{
    FV_ASSERT(pthread_mutex_lock(&logins_lock) == 0);
    struct login *l = login_find(module, token);
    bool ok = l && pin_equal(l->pin, pin);
    FV_ASSERT(pthread_mutex_unlock(&logins_lock) == 0);
    return ok;
}

/*
 * Find the token, open an R/W session and log in as the user (see "Logins"
 * above for CKR_USER_ALREADY_LOGGED_IN). FV_E_KEY_UNAVAILABLE, FV_E_NOMEM.
 */
static int p11_open_session(struct p11 *c, const char *module, const char *token_label,
                            const struct fv_secret *pin, struct fv_error *reterr)
{
    CK_SLOT_ID slot = 0;
    CK_RV rv;

    p11_close_session(c);
    int rc = p11_find_slot(c, &slot, token_label, reterr);
    if (rc != FV_OK)
        return rc;
    rv = c->mod->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &c->session);
    if (rv != CKR_OK)
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                            "cannot open a session on token '%s': %s", token_label, rv_name(rv));
    c->have_session = true;
    /* C_Login only reads the PIN; PKCS#11 declares it non-const. */
    rv = c->mod->C_Login(c->session, CKU_USER,
                         pin ? (CK_UTF8CHAR_PTR)fv_crypto_secret_bytes(pin) : (CK_UTF8CHAR_PTR) "",
                         pin ? fv_crypto_secret_len(pin) : 0);
    if (rv == CKR_OK) {
        rc = login_accepted(module, token_label, pin);
        if (rc != FV_OK) {
            p11_close_session(c);
            return fv_error_set(reterr, rc, SIZE_MAX, "login to token '%s': out of memory",
                                token_label);
        }
        return FV_OK;
    }
    if (rv == CKR_USER_ALREADY_LOGGED_IN && login_matches(module, token_label, pin))
        return FV_OK;
    p11_close_session(c);
    if (rv == CKR_USER_ALREADY_LOGGED_IN)
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                            "login to token '%s' failed (wrong PIN?): this process is logged in "
                            "to it with another PIN",
                            token_label);
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE)
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                            "login to token '%s' failed (wrong PIN?): %s", token_label,
                            rv_name(rv));
    return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX, "login to token '%s' failed: %s",
                        token_label, rv_name(rv));
}

/*
 * Up to two objects labelled label (only AES secret keys if keys_only):
 * *ret_n = how many (0, 1 or 2 meaning "more than one"), *ret = the first.
 * Returns the token's answer.
 */
static CK_RV p11_find(struct p11 *c, CK_OBJECT_HANDLE *ret, CK_ULONG *ret_n, const char *label,
                      bool keys_only)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &type, sizeof(type)},
    };
    CK_OBJECT_HANDLE found[2] = {0, 0};
    CK_ULONG n = 0;

    CK_RV rv = c->mod->C_FindObjectsInit(c->session, tmpl, keys_only ? 3 : 1);
    if (rv != CKR_OK)
        return rv;
    rv = c->mod->C_FindObjects(c->session, found, 2, &n);
    CK_RV rv_final = c->mod->C_FindObjectsFinal(c->session);
    if (rv == CKR_OK)
        rv = rv_final;
    if (rv != CKR_OK)
        return rv;
    *ret = found[0];
    *ret_n = n;
    return CKR_OK;
}

/*
 * (Re)connect a KEK: session, login, and exactly one AES-256 key labelled
 * key_label. Called with k->lock held (or before k is shared).
 * FV_E_KEY_UNAVAILABLE, FV_E_INVALID (two keys, wrong key size), FV_E_NOMEM.
 */
static int kek_connect(struct kek_pkcs11 *k, struct fv_error *reterr)
{
    CK_OBJECT_HANDLE key = 0;
    CK_ULONG n = 0;
    CK_ULONG value_bytes = 0;
    CK_ATTRIBUTE attr = {CKA_VALUE_LEN, &value_bytes, sizeof(value_bytes)};

    k->ready = false;
    int rc = p11_open_session(&k->conn, k->module, k->token_label, k->pin, reterr);
    if (rc != FV_OK)
        return rc;
    CK_RV rv = p11_find(&k->conn, &key, &n, k->key_label, true);
    if (rv != CKR_OK)
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                            "cannot look up key '%s' on token '%s': %s", k->key_label,
                            k->token_label, rv_name(rv));
    if (n == 0)
        return fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                            "no key labelled '%s' on token '%s'", k->key_label, k->token_label);
    if (n > 1)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "more than one key labelled '%s' on token '%s'", k->key_label,
                            k->token_label);
    rv = k->conn.mod->C_GetAttributeValue(k->conn.session, key, &attr, 1);
    if (rv != CKR_OK || value_bytes != FV_CRYPTO_KEY_BYTES)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "key '%s' on token '%s' is not an AES-256 key", k->key_label,
                            k->token_label);
    k->key = key;
    k->ready = true;
    return FV_OK;
}

/*
 * Drop the module's state and initialise it again. SoftHSM2 (and many HSM
 * libraries) learn about tokens only in C_Initialize: a token created after
 * it, even under the old label, stays invisible until then. In managed mode
 * this reaches the module only when no other handle in the process has it
 * initialised; otherwise it just moves the reference count.
 */
static void p11_reload(struct p11 *c)
{
    p11_close_session(c);
    if (c->initialized)
        (void)p11_kit_module_finalize(c->mod); /* initialising again is what counts */
    c->initialized = p11_kit_module_initialize(c->mod) == CKR_OK;
}

/*
 * Reconnect after a loss: first a new session on the loaded module; if that
 * does not get the key, reload the module and try once more. Lock held.
 */
static int kek_reconnect(struct kek_pkcs11 *k)
{
    if (k->conn.initialized && kek_connect(k, NULL) == FV_OK)
        return FV_OK;
    p11_reload(&k->conn);
    if (!k->conn.initialized)
        return FV_E_KEY_UNAVAILABLE;
    return kek_connect(k, NULL) == FV_OK ? FV_OK : FV_E_KEY_UNAVAILABLE;
}

/* A fresh look-up still finds our key handle. Lock held. */
static bool kek_key_present(struct kek_pkcs11 *k)
{
    CK_OBJECT_HANDLE key = 0;
    CK_ULONG n = 0;
    CK_RV rv = p11_find(&k->conn, &key, &n, k->key_label, true);
    return rv == CKR_OK && n == 1 && key == k->key;
}

/* ------------------------------------------------------------ operations */

/* One AES-GCM encryption or decryption in the token. Lock held. */
static CK_RV p11_gcm(struct kek_pkcs11 *k, bool encrypt, uint8_t *out, CK_ULONG *io_outlen,
                     const uint8_t *in, size_t inlen, uint8_t iv[KEK_P11_IV_BYTES],
                     const uint8_t *ad, size_t adlen)
{
    CK_FUNCTION_LIST *m = k->conn.mod;
    /* The token only reads the input and the AAD; PKCS#11 declares them non-const. */
    CK_GCM_PARAMS gcm = {
        .pIv = iv,
        .ulIvLen = KEK_P11_IV_BYTES,
        .ulIvBits = KEK_P11_IV_BYTES * 8,
        .pAAD = (CK_BYTE_PTR)ad,
        .ulAADLen = adlen,
        .ulTagBits = KEK_P11_TAG_BYTES * 8,
    };
    CK_MECHANISM mech = {CKM_AES_GCM, &gcm, sizeof(gcm)};
    CK_RV rv;

    if (encrypt) {
        rv = m->C_EncryptInit(k->conn.session, &mech, k->key);
        if (rv == CKR_OK)
            rv = m->C_Encrypt(k->conn.session, (CK_BYTE_PTR)in, inlen, out, io_outlen);
    } else {
        rv = m->C_DecryptInit(k->conn.session, &mech, k->key);
        if (rv == CKR_OK)
            rv = m->C_Decrypt(k->conn.session, (CK_BYTE_PTR)in, inlen, out, io_outlen);
    }
    return rv;
}

/*
 * What a failed operation means. FV_E_CORRUPT: the blob did not
 * authenticate; FV_E_INTERNAL: the token refused for another reason while
 * the key is there; FV_E_KEY_UNAVAILABLE: the session or key is gone
 * (reconnect). Lock held.
 */
static int classify(struct kek_pkcs11 *k, bool encrypt, CK_RV rv)
{
    if (!encrypt && (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
                     rv == CKR_AEAD_DECRYPT_FAILED))
        return FV_E_CORRUPT;
    if (rv_lost(rv) || !kek_key_present(k))
        return FV_E_KEY_UNAVAILABLE;
    /* SoftHSM2 2.6 answers a bad GCM tag with CKR_GENERAL_ERROR; the key is there. */
    if (!encrypt && rv == CKR_GENERAL_ERROR)
        return FV_E_CORRUPT;
    return FV_E_INTERNAL;
}

/*
 * Run one GCM operation, reconnecting at most once (before it, if an earlier
 * call left the KEK disconnected, or after a failure that means the session
 * or key was lost). Lock held.
 */
static int kek_gcm_locked(struct kek_pkcs11 *k, bool encrypt, uint8_t *out, CK_ULONG *io_outlen,
                          const uint8_t *in, size_t inlen, uint8_t iv[KEK_P11_IV_BYTES],
                          const uint8_t *ad, size_t adlen)
{
    bool reconnected = false;
    CK_ULONG cap = *io_outlen;

    if (!k->ready) {
        if (kek_reconnect(k) != FV_OK)
            return FV_E_KEY_UNAVAILABLE;
        reconnected = true;
    }
    for (;;) {
        CK_ULONG len = cap;
        CK_RV rv = p11_gcm(k, encrypt, out, &len, in, inlen, iv, ad, adlen);
        if (rv == CKR_OK) {
            *io_outlen = len;
            return FV_OK;
        }
        int rc = classify(k, encrypt, rv);
        if (rc != FV_E_KEY_UNAVAILABLE)
            return rc;
        k->ready = false;
        if (reconnected || kek_reconnect(k) != FV_OK)
            return FV_E_KEY_UNAVAILABLE;
        reconnected = true;
    }
}

static int kek_pkcs11_wrap(struct fv_kek *kek, uint8_t *out, size_t *ret_len, const uint8_t *key,
                           size_t keylen, const uint8_t *ad, size_t adlen)
{
    struct kek_pkcs11 *k = (struct kek_pkcs11 *)kek;
    uint8_t iv[KEK_P11_IV_BYTES];
    CK_ULONG len = FV_CRYPTO_WRAPPED_MAX - 1 - KEK_P11_IV_BYTES;

    FV_ASSERT(keylen > 0 && keylen <= FV_CRYPTO_WRAPPED_MAX - KEK_P11_OVERHEAD);
    fv_random_bytes(iv, sizeof(iv));
    FV_ASSERT(pthread_mutex_lock(&k->lock) == 0);
    int rc = kek_gcm_locked(k, true, out + 1 + KEK_P11_IV_BYTES, &len, key, keylen, iv, ad, adlen);
    FV_ASSERT(pthread_mutex_unlock(&k->lock) == 0);
    if (rc != FV_OK)
        return rc;
    if (len != keylen + KEK_P11_TAG_BYTES)
        return FV_E_INTERNAL; /* not the GCM we asked for */
    out[0] = KEK_P11_FORMAT;
    memcpy(out + 1, iv, sizeof(iv));
    *ret_len = 1 + KEK_P11_IV_BYTES + len;
    return FV_OK;
}

static int kek_pkcs11_unwrap(struct fv_kek *kek, uint8_t *out, size_t *ret_len, const uint8_t *blob,
                             size_t bloblen, const uint8_t *ad, size_t adlen)
{
    struct kek_pkcs11 *k = (struct kek_pkcs11 *)kek;
    uint8_t iv[KEK_P11_IV_BYTES];
    /* SoftHSM2 wants room for ciphertext and tag even though only the plaintext comes out. */
    CK_ULONG len = FV_CRYPTO_WRAPPED_MAX;

    /* 1. too short to hold a key, 2. too long for any blob we make, 3. another provider's format */
    if (bloblen <= KEK_P11_OVERHEAD || bloblen > FV_CRYPTO_WRAPPED_MAX || blob[0] != KEK_P11_FORMAT)
        return FV_E_CORRUPT;
    memcpy(iv, blob + 1, sizeof(iv));
    FV_ASSERT(pthread_mutex_lock(&k->lock) == 0);
    int rc = kek_gcm_locked(k, false, out, &len, blob + 1 + KEK_P11_IV_BYTES,
                            bloblen - 1 - KEK_P11_IV_BYTES, iv, ad, adlen);
    FV_ASSERT(pthread_mutex_unlock(&k->lock) == 0);
    if (rc != FV_OK)
        return rc;
    if (len != bloblen - KEK_P11_OVERHEAD) {
        fv_wipe(out, len <= FV_CRYPTO_WRAPPED_MAX ? len : FV_CRYPTO_WRAPPED_MAX);
        return FV_E_INTERNAL;
    }
    *ret_len = len;
    return FV_OK;
}

/* A fresh look-up of the key; one reconnect if it is not found. */
static int kek_pkcs11_check(struct fv_kek *kek)
{
    struct kek_pkcs11 *k = (struct kek_pkcs11 *)kek;
    int rc = FV_OK;

    FV_ASSERT(pthread_mutex_lock(&k->lock) == 0);
    if (!k->ready || !kek_key_present(k))
        rc = kek_reconnect(k);
    FV_ASSERT(pthread_mutex_unlock(&k->lock) == 0);
    return rc;
}

static void kek_pkcs11_free(struct fv_kek *kek)
{
    struct kek_pkcs11 *k = (struct kek_pkcs11 *)kek;
    p11_unload(&k->conn);
    if (k->lock_init)
        (void)pthread_mutex_destroy(&k->lock);
    fv_crypto_secret_free(k->pin);
    fv_free(k->module);
    fv_free(k->token_label);
    fv_free(k->key_label);
    fv_free(k);
}

static const struct fv_kek_ops kek_pkcs11_ops = {
    .version = FV_CRYPTO_KEK_OPS_VERSION,
    .name = "pkcs11",
    .wrap = kek_pkcs11_wrap,
    .unwrap = kek_pkcs11_unwrap,
    .check = kek_pkcs11_check,
    .free = kek_pkcs11_free,
};

/* ------------------------------------------------------------ public API */

static int check_labels(const char *token_label, const char *key_label, const char *pin,
                        struct fv_error *reterr)
{
    size_t t = strlen(token_label);
    size_t k = strlen(key_label);
    if (t == 0 || t > KEK_P11_TOKEN_LABEL_MAX)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "token label '%s' must be 1 to %d bytes", token_label,
                            KEK_P11_TOKEN_LABEL_MAX);
    if (k == 0 || k > KEK_P11_KEY_LABEL_MAX)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "key label '%s' must be 1 to %d bytes",
                            key_label, KEK_P11_KEY_LABEL_MAX);
    if (strlen(pin) > KEK_P11_PIN_MAX)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "pin for token '%s' is too long",
                            token_label);
    return FV_OK;
}

int fv_crypto_kek_pkcs11_open(struct fv_kek **ret, const char *module, const char *token_label,
                              const char *key_label, const char *pin, struct fv_error *reterr)
{
    struct kek_pkcs11 *k = NULL;
    int rc = FV_OK;

    FV_ASSERT(ret != NULL && module != NULL && token_label != NULL && key_label != NULL &&
              pin != NULL);
    rc = check_labels(token_label, key_label, pin, reterr);
    if (rc != FV_OK)
        goto out;
    k = fv_calloc(1, sizeof(*k));
    if (!k) {
        rc = fv_error_set(reterr, FV_E_NOMEM, SIZE_MAX, "cannot open pkcs11 kek");
        goto out;
    }
    k->base.ops = &kek_pkcs11_ops;
    if (pthread_mutex_init(&k->lock, NULL) != 0) {
        rc = fv_error_set(reterr, FV_E_NOMEM, SIZE_MAX, "cannot open pkcs11 kek: mutex");
        goto out;
    }
    k->lock_init = true;
    k->module = fv_strdup(module);
    k->token_label = fv_strdup(token_label);
    k->key_label = fv_strdup(key_label);
    if (!k->module || !k->token_label || !k->key_label) {
        rc = fv_error_set(reterr, FV_E_NOMEM, SIZE_MAX, "cannot open pkcs11 kek");
        goto out;
    }
    if (pin[0] != '\0') {
        rc = fv_crypto_secret_copy(&k->pin, (const uint8_t *)pin, strlen(pin));
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot hold the pin for token '%s'",
                              token_label);
            goto out;
        }
    }
    {
        int n = snprintf(k->base.id, sizeof(k->base.id), "pkcs11:%s/%s", token_label, key_label);
        FV_ASSERT(n > 0 && (size_t)n < sizeof(k->base.id)); /* labels were bounded above */
    }
    rc = p11_load(&k->conn, module, reterr);
    if (rc != FV_OK)
        goto out;
    rc = kek_connect(k, reterr);
    if (rc != FV_OK)
        goto out;
    *ret = &k->base;
    k = NULL;
out:
    if (k)
        kek_pkcs11_free(&k->base);
    return rc;
}

int fv_crypto_kek_pkcs11_generate(const char *module, const char *token_label,
                                  const char *key_label, const char *pin, struct fv_error *reterr)
{
    struct p11 c = {0};
    struct fv_secret *pin_secret = NULL;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG bytes = FV_CRYPTO_KEY_BYTES;
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &type, sizeof(type)},
        {CKA_VALUE_LEN, &bytes, sizeof(bytes)},
        {CKA_LABEL, (void *)key_label, strlen(key_label)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_WRAP, &no, sizeof(no)},
        {CKA_UNWRAP, &no, sizeof(no)},
    };
    CK_MECHANISM mech = {CKM_AES_KEY_GEN, NULL, 0};
    CK_OBJECT_HANDLE key = 0;
    CK_ULONG n = 0;
    CK_RV rv;
    int rc = FV_OK;

    FV_ASSERT(module != NULL && token_label != NULL && key_label != NULL && pin != NULL);
    rc = check_labels(token_label, key_label, pin, reterr);
    if (rc != FV_OK)
        goto out;
    if (pin[0] != '\0') {
        rc = fv_crypto_secret_copy(&pin_secret, (const uint8_t *)pin, strlen(pin));
        if (rc != FV_OK) {
            rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot hold the pin for token '%s'",
                              token_label);
            goto out;
        }
    }
    rc = p11_load(&c, module, reterr);
    if (rc != FV_OK)
        goto out;
    rc = p11_open_session(&c, module, token_label, pin_secret, reterr);
    if (rc != FV_OK)
        goto out;
    /* Any object with the label, not only AES keys: a label must name one thing. */
    rv = p11_find(&c, &key, &n, key_label, false);
    if (rv != CKR_OK) {
        rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                          "cannot look up key '%s' on token '%s': %s", key_label, token_label,
                          rv_name(rv));
        goto out;
    }
    if (n > 0) {
        rc = fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX,
                          "an object labelled '%s' already exists on token '%s'", key_label,
                          token_label);
        goto out;
    }
    rv = c.mod->C_GenerateKey(c.session, &mech, tmpl, FV_ARRAY_LEN(tmpl), &key);
    if (rv != CKR_OK) {
        rc = fv_error_set(reterr, rv_lost(rv) ? FV_E_KEY_UNAVAILABLE : FV_E_INTERNAL, SIZE_MAX,
                          "cannot generate key '%s' on token '%s': %s", key_label, token_label,
                          rv_name(rv));
        goto out;
    }
out:
    /* No C_Logout: it would log out every session of this process on the token. */
    p11_unload(&c);
    fv_crypto_secret_free(pin_secret);
    return rc;
}
