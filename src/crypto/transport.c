/*
 * crypto/transport.c: the RSA-3072 BYOK transport key. GnuTLS generates the
 * key pair and parses PKCS#8 and SubjectPublicKeyInfo; libgcrypt does the
 * RSAES-OAEP (RFC 8017 7.1) encryption and decryption with SHA-256 for both
 * the hash and MGF1 and an empty label, because GnuTLS 3.7 has no OAEP.
 *
 * Key hand-over between the libraries is by raw RSA parameters. GnuTLS
 * (like PKCS#1) stores the CRT coefficient as q^-1 mod p; libgcrypt wants
 * p < q and u = p^-1 mod q, so p and q are ordered and u is recomputed
 * with gcry_mpi_invm rather than copied. Private parameters are moved into
 * libgcrypt secure memory, and every GnuTLS export of them is wiped before
 * it is freed.
 *
 * libgcrypt is initialised once (pthread_once). If the process already
 * initialised it, that setup is kept. Secure memory auto-expands so a busy
 * moment cannot hit libgcrypt's out-of-secure-memory abort, and its "using
 * insecure memory" warning is silenced: a library writes nothing to stderr
 * (STYLE 29), and without mlock rights the pool is still wiped on free.
 */
#include <gcrypt.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <string.h>

#include "crypto/crypto.h"

#define TRANSPORT_BITS 3072
#define MIN_WRAP_BITS 2048
#define WRAP_KEY_BYTES 32
#define SECMEM_BYTES 65536

static pthread_once_t gcry_once = PTHREAD_ONCE_INIT;
static bool gcry_ready;

static void gcry_setup(void)
{
    if (!gcry_check_version(GCRYPT_VERSION))
        return;
    if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
        gcry_ready = true;
        return;
    }
    if (gcry_control(GCRYCTL_DISABLE_SECMEM_WARN, 0) != 0)
        return;
    if (gcry_control(GCRYCTL_AUTO_EXPAND_SECMEM, SECMEM_BYTES) != 0)
        return;
    if (gcry_control(GCRYCTL_INIT_SECMEM, SECMEM_BYTES, 0) != 0)
        return;
    if (gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0) != 0)
        return;
    gcry_ready = true;
}

static int gcry_init(void)
{
    if (pthread_once(&gcry_once, gcry_setup) != 0 || !gcry_ready)
        return FV_E_INTERNAL;
    return FV_OK;
}

static int gcry_rc(gcry_error_t err, int otherwise)
{
    return gcry_err_code(err) == GPG_ERR_ENOMEM ? FV_E_NOMEM : otherwise;
}

/* Free a GnuTLS datum that held private material. */
static void datum_wipe_free(gnutls_datum_t *d)
{
    if (d->data) {
        fv_wipe(d->data, d->size);
        gnutls_free(d->data);
    }
    d->data = NULL;
    d->size = 0;
}

/* ------------------------------------------------------------- key pair */

int fv_crypto_transport_new(struct fv_secret **ret_private, char **ret_public_pem)
{
    gnutls_x509_privkey_t xk = NULL;
    gnutls_privkey_t pk = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t der = {NULL, 0}, pem = {NULL, 0};
    struct fv_secret *priv = NULL;
    char *pemstr = NULL;
    int rc = FV_E_INTERNAL;

    FV_ASSERT(ret_private != NULL && ret_public_pem != NULL);
    if (gnutls_x509_privkey_init(&xk) < 0) {
        xk = NULL;
        goto out;
    }
    if (gnutls_x509_privkey_generate(xk, GNUTLS_PK_RSA, TRANSPORT_BITS, 0) < 0)
        goto out;
    if (gnutls_x509_privkey_export2_pkcs8(xk, GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN, &der) <
        0)
        goto out;
    /* pk borrows xk (flags 0): it is released first. */
    if (gnutls_privkey_init(&pk) < 0) {
        pk = NULL;
        goto out;
    }
    if (gnutls_privkey_import_x509(pk, xk, 0) < 0)
        goto out;
    if (gnutls_pubkey_init(&pub) < 0) {
        pub = NULL;
        goto out;
    }
    if (gnutls_pubkey_import_privkey(pub, pk, 0, 0) < 0)
        goto out;
    if (gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &pem) < 0)
        goto out;

    rc = fv_crypto_secret_copy(&priv, der.data, der.size);
    if (rc != FV_OK)
        goto out;
    pemstr = fv_strndup((const char *)pem.data, pem.size);
    if (!pemstr) {
        rc = FV_E_NOMEM;
        goto out;
    }
    *ret_private = priv;
    *ret_public_pem = pemstr;
    priv = NULL;
    pemstr = NULL;
    rc = FV_OK;
out:
    fv_free(pemstr);
    fv_crypto_secret_free(priv);
    gnutls_free(pem.data);
    datum_wipe_free(&der);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (pk)
        gnutls_privkey_deinit(pk);
    if (xk)
        gnutls_x509_privkey_deinit(xk); /* clears the key parameters */
    return rc;
}

/* ---------------------------------------------------------------- unwrap */

static size_t unsigned_len(const gnutls_datum_t *d)
{
    size_t i = 0;
    while (i < d->size && d->data[i] == 0)
        i++;
    return d->size - i;
}

static int scan(gcry_mpi_t *ret, const gnutls_datum_t *d, bool secret)
{
    gcry_mpi_t a = NULL;
    if (gcry_mpi_scan(&a, GCRYMPI_FMT_USG, d->data, d->size, NULL) != 0)
        return FV_E_INTERNAL;
    if (secret)
        gcry_mpi_set_flag(a, GCRYMPI_FLAG_SECURE); /* moves the limbs, wiping the old ones */
    *ret = a;
    return FV_OK;
}

/*
 * The gcrypt private key for a PKCS#8 DER RSA key, and its modulus size in
 * bytes. A key that does not parse is FV_E_INTERNAL: it is our own stored
 * key, not input from the importer.
 */
static int private_sexp(gcry_sexp_t *ret, size_t *ret_modlen, const struct fv_secret *der)
{
    gnutls_x509_privkey_t xk = NULL;
    gnutls_datum_t in = {(unsigned char *)fv_crypto_secret_bytes(der),
                         (unsigned)fv_crypto_secret_len(der)};
    gnutls_datum_t dn = {0}, de = {0}, dd = {0}, dp = {0}, dq = {0}, du = {0}, de1 = {0}, de2 = {0};
    gcry_mpi_t n = NULL, e = NULL, d = NULL, p = NULL, q = NULL, u = NULL;
    gcry_sexp_t key = NULL;
    gcry_error_t err;
    int rc = FV_E_INTERNAL;

    if (gnutls_x509_privkey_init(&xk) < 0) {
        xk = NULL;
        goto out;
    }
    if (gnutls_x509_privkey_import_pkcs8(xk, &in, GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN) < 0)
        goto out;
    if (gnutls_x509_privkey_get_pk_algorithm(xk) != GNUTLS_PK_RSA)
        goto out;
    if (gnutls_x509_privkey_export_rsa_raw2(xk, &dn, &de, &dd, &dp, &dq, &du, &de1, &de2) < 0)
        goto out;
    if ((rc = scan(&n, &dn, false)) != FV_OK || (rc = scan(&e, &de, false)) != FV_OK ||
        (rc = scan(&d, &dd, true)) != FV_OK || (rc = scan(&p, &dp, true)) != FV_OK ||
        (rc = scan(&q, &dq, true)) != FV_OK)
        goto out;
    rc = FV_E_INTERNAL;
    if (gcry_mpi_cmp(p, q) > 0) {
        gcry_mpi_swap(p, q);
    }
    u = gcry_mpi_snew(0);
    if (!gcry_mpi_invm(u, p, q))
        goto out;
    err = gcry_sexp_build(&key, NULL, "(private-key(rsa(n%m)(e%m)(d%m)(p%m)(q%m)(u%m)))", n, e, d,
                          p, q, u);
    if (err) {
        rc = gcry_rc(err, FV_E_INTERNAL);
        goto out;
    }
    if (gcry_pk_testkey(key) != 0)
        goto out;
    *ret_modlen = unsigned_len(&dn);
    *ret = key;
    key = NULL;
    rc = FV_OK;
out:
    gcry_sexp_release(key);
    gcry_mpi_release(u);
    gcry_mpi_release(q);
    gcry_mpi_release(p);
    gcry_mpi_release(d);
    gcry_mpi_release(e);
    gcry_mpi_release(n);
    gnutls_free(dn.data);
    gnutls_free(de.data);
    datum_wipe_free(&dd);
    datum_wipe_free(&dp);
    datum_wipe_free(&dq);
    datum_wipe_free(&du);
    datum_wipe_free(&de1);
    datum_wipe_free(&de2);
    if (xk)
        gnutls_x509_privkey_deinit(xk);
    return rc;
}

int fv_crypto_transport_unwrap(struct fv_secret **ret, const uint8_t *c, size_t clen,
                               const struct fv_secret *private_der)
{
    gcry_sexp_t key = NULL, enc = NULL, plain = NULL, value = NULL;
    const char *m;
    size_t modlen = 0, mlen = 0;
    gcry_error_t err;
    int rc;

    FV_ASSERT(ret != NULL && private_der != NULL);
    rc = gcry_init();
    if (rc != FV_OK)
        goto out;
    rc = private_sexp(&key, &modlen, private_der);
    if (rc != FV_OK)
        goto out;
    /* A ciphertext is exactly the modulus size (RFC 8017 7.1.2 step 1b). */
    if (!c || clen != modlen || clen > INT32_MAX) {
        rc = FV_E_CORRUPT;
        goto out;
    }
    err = gcry_sexp_build(&enc, NULL, "(enc-val(flags oaep)(hash-algo sha256)(rsa(a%b)))",
                          (int)clen, c);
    if (err) {
        rc = gcry_rc(err, FV_E_INTERNAL);
        goto out;
    }
    /* Every decoding failure is the one code, whatever libgcrypt says. */
    err = gcry_pk_decrypt(&plain, enc, key);
    if (err) {
        rc = gcry_rc(err, FV_E_CORRUPT);
        goto out;
    }
    value = gcry_sexp_find_token(plain, "value", 0);
    m = value ? gcry_sexp_nth_data(value, 1, &mlen) : NULL;
    if (!m || mlen != WRAP_KEY_BYTES) {
        rc = FV_E_CORRUPT;
        goto out;
    }
    rc = fv_crypto_secret_copy(ret, (const uint8_t *)m, mlen);
out:
    gcry_sexp_release(value);
    gcry_sexp_release(plain); /* in secure memory (the key is), so wiped on release */
    gcry_sexp_release(enc);
    gcry_sexp_release(key);
    return rc;
}

/* ------------------------------------------------------------------ wrap */

/*
 * Errors beyond the header's: FV_E_INVALID (public_pem is not an RSA
 * SubjectPublicKeyInfo of at least 2048 bits, or the key is too long for
 * OAEP), FV_E_LIMIT (outcap is less than the modulus size).
 */
int fv_crypto_transport_wrap(uint8_t *out, size_t outcap, size_t *ret_len,
                             const struct fv_secret *key, const char *public_pem)
{
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t in, dn = {NULL, 0}, de = {NULL, 0};
    gcry_sexp_t pkey = NULL, data = NULL, res = NULL, a = NULL;
    gcry_mpi_t am = NULL;
    uint8_t buf[1024];
    uint8_t *kcopy = NULL;
    size_t modlen, alen = 0, klen = 0;
    unsigned bits = 0;
    gcry_error_t err;
    int rc;

    FV_ASSERT(out != NULL && ret_len != NULL && key != NULL && public_pem != NULL);
    rc = gcry_init();
    if (rc != FV_OK)
        goto out;
    rc = FV_E_INVALID;
    in.data = (unsigned char *)public_pem;
    in.size = (unsigned)strlen(public_pem);
    if (gnutls_pubkey_init(&pub) < 0) {
        pub = NULL;
        rc = FV_E_NOMEM;
        goto out;
    }
    if (gnutls_pubkey_import(pub, &in, GNUTLS_X509_FMT_PEM) < 0)
        goto out;
    if (gnutls_pubkey_get_pk_algorithm(pub, &bits) != GNUTLS_PK_RSA || bits < MIN_WRAP_BITS ||
        bits > 8 * sizeof(buf))
        goto out;
    if (gnutls_pubkey_export_rsa_raw(pub, &dn, &de) < 0)
        goto out;
    modlen = unsigned_len(&dn);
    if (outcap < modlen) {
        rc = FV_E_LIMIT;
        goto out;
    }
    err = gcry_sexp_build(&pkey, NULL, "(public-key(rsa(n%b)(e%b)))", (int)dn.size, dn.data,
                          (int)de.size, de.data);
    if (err) {
        rc = gcry_rc(err, FV_E_INTERNAL);
        goto out;
    }
    /* From secure memory, so libgcrypt keeps (and wipes) its copy there too. */
    klen = fv_crypto_secret_len(key);
    kcopy = gcry_malloc_secure(klen);
    if (!kcopy) {
        rc = FV_E_NOMEM;
        goto out;
    }
    memcpy(kcopy, fv_crypto_secret_bytes(key), klen);
    err = gcry_sexp_build(&data, NULL, "(data(flags oaep)(hash-algo sha256)(value%b))", (int)klen,
                          kcopy);
    if (err) {
        rc = gcry_rc(err, FV_E_INTERNAL);
        goto out;
    }
    err = gcry_pk_encrypt(&res, data, pkey);
    if (err) {
        /* the message does not fit OAEP under this modulus */
        rc = gcry_rc(err, FV_E_INVALID);
        goto out;
    }
    rc = FV_E_INTERNAL;
    a = gcry_sexp_find_token(res, "a", 0);
    am = a ? gcry_sexp_nth_mpi(a, 1, GCRYMPI_FMT_USG) : NULL;
    if (!am || gcry_mpi_print(GCRYMPI_FMT_USG, buf, sizeof(buf), &alen, am) != 0 || alen > modlen)
        goto out;
    /* Left-pad to the modulus size: the integer may have leading zero bytes. */
    memset(out, 0, modlen - alen);
    memcpy(out + (modlen - alen), buf, alen);
    *ret_len = modlen;
    rc = FV_OK;
out:
    gcry_mpi_release(am);
    gcry_sexp_release(a);
    gcry_sexp_release(res);
    gcry_sexp_release(data); /* holds a copy of the key */
    if (kcopy) {
        fv_wipe(kcopy, klen);
        gcry_free(kcopy);
    }
    gcry_sexp_release(pkey);
    gnutls_free(dn.data);
    gnutls_free(de.data);
    if (pub)
        gnutls_pubkey_deinit(pub);
    return rc;
}
