/*
 * http/tls.c: the TLS certificate and key of the listeners: read the
 * configured pair, or generate and reuse a self-signed development
 * certificate in <data_dir>/tls/. Key material is wiped before it is freed.
 */
#include "http/http.h"
#include "http/http_int.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PEM_MAX (1024 * 1024)               /* larger files are not a cert/key */
#define CERT_LIFETIME_S (365LL * 24 * 3600) /* one year */
#define CERT_RENEW_BEFORE_S (7LL * 24 * 3600)

/*
 * TLS 1.3 and 1.2 only; AEAD ciphers only (no CBC, no RC4, no 3DES);
 * forward secrecy only (ECDHE key exchange, no static RSA, no finite-field
 * DHE); server cipher preference. Checked with
 * `gnutls-cli --priority '<this>' -l` and by tests/unit/http/test_tls.c.
 */
const char FV_HTTP_TLS_PRIORITIES[] = "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"
                                      "-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-GCM:"
                                      "-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"
                                      "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:"
                                      "%SERVER_PRECEDENCE";

void fv_http_tls_key_free(char *key_pem)
{
    if (key_pem == NULL)
        return;
    fv_wipe(key_pem, strlen(key_pem));
    fv_free(key_pem);
}

/* Read a whole small file (NUL-terminated). nofollow: refuse symlinks. */
static int read_small_file(const char *path, bool nofollow, char **ret, struct fv_error *reterr)
{
    int rc = FV_OK;
    int fd = -1;
    char *data = NULL;
    struct stat st = {0};
    size_t done = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
    if (fd < 0) {
        rc = fv_error_set(reterr, errno == ENOENT ? FV_E_NOT_FOUND : FV_E_IO, SIZE_MAX,
                          "cannot open '%s': %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_MAX) {
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX,
                          "cannot read '%s': not a regular file "
                          "of at most %d bytes",
                          path, PEM_MAX);
        goto out;
    }
    data = fv_malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        rc = FV_E_NOMEM;
        goto out;
    }
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, data + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot read '%s': %s", path,
                              n == 0 ? "short read" : strerror(errno));
            goto out;
        }
        done += (size_t)n;
    }
    data[done] = '\0';
    *ret = data;
    data = NULL;
out:
    if (data != NULL) {
        fv_wipe(data, (size_t)st.st_size + 1);
        fv_free(data);
    }
    if (fd >= 0)
        (void)close(fd);
    return rc;
}

/* Write data to path atomically: temp file with mode, fsync, rename. */
static int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                             struct fv_error *reterr)
{
    int rc = FV_OK;
    int fd = -1;
    struct fv_buf tmp;
    size_t done = 0;

    fv_buf_init(&tmp, FV_CONFIG_PATH_MAX + 16);
    rc = fv_buf_appendf(&tmp, "%s.tmp", path);
    if (rc != FV_OK) {
        rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot write '%s': path too long", path);
        goto out;
    }
    (void)unlink(tmp.p);
    fd = open(tmp.p, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) != 0) {
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot create '%s': %s", tmp.p,
                          strerror(errno));
        goto out;
    }
    while (done < len) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot write '%s': %s", tmp.p,
                              strerror(errno));
            goto out;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot write '%s': %s", tmp.p,
                          strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp.p, path) != 0) {
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot rename '%s': %s", tmp.p,
                          strerror(errno));
        goto out;
    }
out:
    if (fd >= 0)
        (void)close(fd);
    if (rc != FV_OK && tmp.p != NULL)
        (void)unlink(tmp.p);
    fv_buf_release(&tmp);
    return rc;
}

/* Create dir with mode 0700 if missing; refuse a symlink; tighten its mode. */
static int ensure_private_dir(const char *dir, struct fv_error *reterr)
{
    struct stat st;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot create directory '%s': %s", dir,
                            strerror(errno));
    if (lstat(dir, &st) != 0)
        return fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot stat '%s': %s", dir,
                            strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fv_error_set(reterr, FV_E_IO, SIZE_MAX, "'%s' is not a directory", dir);
    if ((st.st_mode & 077) != 0 && chmod(dir, 0700) != 0)
        return fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot restrict mode of '%s': %s", dir,
                            strerror(errno));
    return FV_OK;
}

/*
 * Parse a PEM pair and check that the key belongs to the certificate.
 * On success, *ret_not_after is the certificate's expiration time.
 */
static int check_pair(const char *cert_pem, const char *key_pem, const char *cert_path,
                      const char *key_path, time_t *ret_not_after, struct fv_error *reterr)
{
    int rc = FV_OK;
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t key = NULL;
    gnutls_datum_t d;
    unsigned char crt_id[64], key_id[64];
    size_t crt_id_len = sizeof(crt_id), key_id_len = sizeof(key_id);

    if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_privkey_init(&key) < 0) {
        rc = FV_E_NOMEM;
        goto out;
    }
    d.data = (unsigned char *)(uintptr_t)cert_pem;
    d.size = (unsigned int)strlen(cert_pem);
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "certificate '%s' is not a PEM x509 certificate", cert_path);
        goto out;
    }
    d.data = (unsigned char *)(uintptr_t)key_pem;
    d.size = (unsigned int)strlen(key_pem);
    if (gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "key '%s' is not an unencrypted PEM private key", key_path);
        goto out;
    }
    /* Key IDs hash the public key: public data, so memcmp is fine. */
    if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, crt_id, &crt_id_len) < 0 ||
        gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, key_id, &key_id_len) < 0 ||
        crt_id_len != key_id_len || memcmp(crt_id, key_id, crt_id_len) != 0) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "key '%s' does not match certificate '%s'", key_path, cert_path);
        goto out;
    }
    *ret_not_after = gnutls_x509_crt_get_expiration_time(crt);
out:
    if (key != NULL)
        gnutls_x509_privkey_deinit(key);
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    return rc;
}

#define GNUTLS_TRY(expr)                                                                           \
    do {                                                                                           \
        int gtr_ = (expr);                                                                         \
        if (gtr_ < 0) {                                                                            \
            rc =                                                                                   \
                fv_error_set(reterr, FV_E_INTERNAL, SIZE_MAX,                                      \
                             "cannot generate certificate: %s: %s", #expr, gnutls_strerror(gtr_)); \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Generate a self-signed ECDSA P-256 certificate; PEM outputs via gnutls_free. */
static int generate_self_signed(gnutls_datum_t *ret_cert, gnutls_datum_t *ret_key,
                                struct fv_error *reterr)
{
    int rc = FV_OK;
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t cert_pem = {NULL, 0}, key_pem = {NULL, 0};
    unsigned char serial[16];
    unsigned char key_id[64];
    size_t key_id_len = sizeof(key_id);
    static const unsigned char ip4_loopback[4] = {127, 0, 0, 1};
    static const unsigned char ip6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    time_t now = time(NULL);

    GNUTLS_TRY(gnutls_x509_privkey_init(&key));
    GNUTLS_TRY(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                            GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
    GNUTLS_TRY(gnutls_x509_crt_init(&crt));
    GNUTLS_TRY(gnutls_x509_crt_set_version(crt, 3));
    /* Random positive 128-bit serial (RFC 5280 4.1.2.2: at most 20 octets). */
    fv_random_bytes(serial, sizeof(serial));
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    GNUTLS_TRY(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)));
    /* A minute of back-dating tolerates small clock skew on clients. */
    GNUTLS_TRY(gnutls_x509_crt_set_activation_time(crt, now - 60));
    GNUTLS_TRY(gnutls_x509_crt_set_expiration_time(crt, now + (time_t)CERT_LIFETIME_S));
    GNUTLS_TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost",
                                             (unsigned)strlen("localhost")));
    GNUTLS_TRY(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
                                             "formvault development",
                                             (unsigned)strlen("formvault development")));
    GNUTLS_TRY(gnutls_x509_crt_set_key(crt, key));
    GNUTLS_TRY(gnutls_x509_crt_set_subject_alt_name(
        crt, GNUTLS_SAN_DNSNAME, "localhost", (unsigned)strlen("localhost"), GNUTLS_FSAN_SET));
    GNUTLS_TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip4_loopback,
                                                    sizeof(ip4_loopback), GNUTLS_FSAN_APPEND));
    GNUTLS_TRY(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip6_loopback,
                                                    sizeof(ip6_loopback), GNUTLS_FSAN_APPEND));
    GNUTLS_TRY(gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
    GNUTLS_TRY(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
    GNUTLS_TRY(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
    GNUTLS_TRY(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, key_id, &key_id_len));
    GNUTLS_TRY(gnutls_x509_crt_set_subject_key_id(crt, key_id, key_id_len));
    GNUTLS_TRY(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0));
    GNUTLS_TRY(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cert_pem));
    GNUTLS_TRY(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                                 &key_pem));
    *ret_cert = cert_pem;
    *ret_key = key_pem;
    cert_pem.data = NULL;
    key_pem.data = NULL;
out:
    if (key_pem.data != NULL) {
        fv_wipe(key_pem.data, key_pem.size);
        gnutls_free(key_pem.data);
    }
    if (cert_pem.data != NULL)
        gnutls_free(cert_pem.data);
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    if (key != NULL)
        gnutls_x509_privkey_deinit(key); /* GnuTLS zeroizes key parameters */
    return rc;
}

static int copy_datum(const gnutls_datum_t *d, char **ret)
{
    char *p = fv_malloc((size_t)d->size + 1);
    if (p == NULL)
        return FV_E_NOMEM;
    memcpy(p, d->data, d->size);
    p[d->size] = '\0';
    *ret = p;
    return FV_OK;
}

static int ensure_generated(const char *data_dir, char **ret_cert, char **ret_key,
                            struct fv_error *reterr)
{
    int rc = FV_OK;
    struct fv_buf dir, cert_path, key_path;
    char *cert = NULL, *key = NULL;
    gnutls_datum_t gen_cert = {NULL, 0}, gen_key = {NULL, 0};
    time_t not_after = 0;
    struct fv_error ignored;
    int reuse_rc;

    fv_buf_init(&dir, FV_CONFIG_PATH_MAX);
    fv_buf_init(&cert_path, FV_CONFIG_PATH_MAX + 16);
    fv_buf_init(&key_path, FV_CONFIG_PATH_MAX + 16);
    rc = fv_buf_appendf(&dir, "%s/tls", data_dir);
    if (rc == FV_OK)
        rc = fv_buf_appendf(&cert_path, "%s/tls/cert.pem", data_dir);
    if (rc == FV_OK)
        rc = fv_buf_appendf(&key_path, "%s/tls/key.pem", data_dir);
    if (rc == FV_E_LIMIT)
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "data directory path too long");
    if (rc != FV_OK)
        goto out;
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot create directory '%s': %s", data_dir,
                          strerror(errno));
        goto out;
    }
    rc = ensure_private_dir(dir.p, reterr);
    if (rc != FV_OK)
        goto out;

    /* Reuse an existing, matching, not nearly expired pair. */
    fv_error_init(&ignored);
    reuse_rc = read_small_file(cert_path.p, true, &cert, &ignored);
    if (reuse_rc == FV_OK)
        reuse_rc = read_small_file(key_path.p, true, &key, &ignored);
    if (reuse_rc == FV_OK)
        reuse_rc = check_pair(cert, key, cert_path.p, key_path.p, &not_after, &ignored);
    if (reuse_rc == FV_E_NOMEM) {
        /* Never replace a possibly good pair because memory ran short. */
        rc = FV_E_NOMEM;
        goto out;
    }
    if (reuse_rc == FV_OK && not_after > time(NULL) + (time_t)CERT_RENEW_BEFORE_S) {
        struct stat st;
        /* The key may have been copied in with a loose mode: tighten it. */
        if (stat(key_path.p, &st) == 0 && (st.st_mode & 077) != 0 && chmod(key_path.p, 0600) != 0) {
            rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot restrict mode of '%s': %s",
                              key_path.p, strerror(errno));
            goto out;
        }
        goto done;
    }
    if (ignored.code != FV_OK && ignored.code != FV_E_NOT_FOUND)
        fv_log(FV_LOG_WARN, "tls: existing development certificate unusable (%s), regenerating",
               ignored.msg);
    FV_FREE(cert);
    fv_http_tls_key_free(key);
    key = NULL;

    rc = generate_self_signed(&gen_cert, &gen_key, reterr);
    if (rc != FV_OK)
        goto out;
    /* Key first: a crash in between leaves a mismatch, which regenerates. */
    rc = write_file_atomic(key_path.p, gen_key.data, gen_key.size, 0600, reterr);
    if (rc != FV_OK)
        goto out;
    rc = write_file_atomic(cert_path.p, gen_cert.data, gen_cert.size, 0644, reterr);
    if (rc != FV_OK)
        goto out;
    rc = copy_datum(&gen_cert, &cert);
    if (rc != FV_OK)
        goto out;
    rc = copy_datum(&gen_key, &key);
    if (rc != FV_OK)
        goto out;
done:
    *ret_cert = cert;
    *ret_key = key;
    cert = NULL;
    key = NULL;
out:
    if (gen_key.data != NULL) {
        fv_wipe(gen_key.data, gen_key.size);
        gnutls_free(gen_key.data);
    }
    if (gen_cert.data != NULL)
        gnutls_free(gen_cert.data);
    fv_free(cert);
    fv_http_tls_key_free(key);
    fv_buf_release(&key_path);
    fv_buf_release(&cert_path);
    fv_buf_release(&dir);
    return rc;
}

int fv_http_tls_ensure(const char *data_dir, const struct fv_config *cfg, char **ret_cert_pem,
                       char **ret_key_pem, struct fv_error *reterr)
{
    int rc = FV_OK;
    char *cert = NULL, *key = NULL;
    time_t not_after;

    if (cfg->tls_cert[0] == '\0')
        return ensure_generated(data_dir, ret_cert_pem, ret_key_pem, reterr);

    if (cfg->tls_key[0] == '\0') {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "tls_cert is set but tls_key is not");
        goto out;
    }
    /* Operator-provided paths may be symlinks (e.g. certbot's live/ dir). */
    rc = read_small_file(cfg->tls_cert, false, &cert, reterr);
    if (rc == FV_E_NOT_FOUND)
        rc = FV_E_IO;
    if (rc != FV_OK)
        goto out;
    rc = read_small_file(cfg->tls_key, false, &key, reterr);
    if (rc == FV_E_NOT_FOUND)
        rc = FV_E_IO;
    if (rc != FV_OK)
        goto out;
    rc = check_pair(cert, key, cfg->tls_cert, cfg->tls_key, &not_after, reterr);
    if (rc != FV_OK)
        goto out;
    if (not_after <= time(NULL))
        fv_log(FV_LOG_WARN, "tls: certificate '%s' has expired, serving it anyway", cfg->tls_cert);
    *ret_cert_pem = cert;
    *ret_key_pem = key;
    cert = NULL;
    key = NULL;
out:
    fv_free(cert);
    fv_http_tls_key_free(key);
    return rc;
}

int fv_http_tls_fingerprint(const char *cert_pem, char *out, size_t cap)
{
    int rc = FV_OK;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t d;
    unsigned char fp[32];
    size_t fp_len = sizeof(fp);
    static const char hex[] = "0123456789ABCDEF";

    if (cap < sizeof(fp) * 3) {
        rc = FV_E_LIMIT;
        goto out;
    }
    if (gnutls_x509_crt_init(&crt) < 0) {
        rc = FV_E_NOMEM;
        goto out;
    }
    d.data = (unsigned char *)(uintptr_t)cert_pem;
    d.size = (unsigned int)strlen(cert_pem);
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fp_len) < 0 ||
        fp_len != sizeof(fp)) {
        rc = FV_E_INVALID;
        goto out;
    }
    for (size_t i = 0; i < fp_len; i++) {
        out[i * 3] = hex[fp[i] >> 4];
        out[i * 3 + 1] = hex[fp[i] & 0x0f];
        out[i * 3 + 2] = i + 1 < fp_len ? ':' : '\0';
    }
out:
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    return rc;
}
