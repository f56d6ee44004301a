/*
 * crypto/kek_file.c: the "file" KEK provider, a 32-byte master key in a
 * file outside the data directory (DESIGN.md "Keys"). Opening checks the
 * file the way sshd checks a private key: it must exist, resolve (after
 * symlinks) to a place outside the data directory, be a regular file that
 * group and others can neither read nor write, and hold exactly 32 bytes.
 * Each refusal names the problem and the remedy in reterr, which goes to
 * the operator's terminal or log, so it may quote the paths.
 *
 * Once read, the key is handed to an imported provider (kek_secret.c),
 * which does the wrapping, so the file and imported providers share one
 * blob format (0x01 || nonce || ciphertext || tag). check() reads the file
 * again and compares key IDs: a KEK file deleted or replaced while the
 * server runs is reported now rather than at the next start, when every
 * tenant would become unreadable.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"

#define KEK_FILE_ID_PREFIX "file:"
#define KEK_FILE_ID_INFO "formvault key id"
#define KEK_FILE_ID_BYTES 8 /* of the HMAC, shown as 16 hex digits */

struct kek_file {
    struct fv_kek base;   /* first: fv_kek pointers are cast back to kek_file */
    struct fv_kek *inner; /* imported provider holding the key read from the file */
    char *path;           /* as configured, for check() */
    char *data_dir;
};

/*
 * Resolve data_dir into real[PATH_MAX]. A data directory that does not exist
 * yet (first start) holds nothing, so *ret_exists = false is not an error.
 */
static int resolve_data_dir(char *real, bool *ret_exists, const char *data_dir,
                            struct fv_error *reterr)
{
    if (realpath(data_dir, real)) {
        *ret_exists = true;
        return FV_OK;
    }
    if (errno == ENOENT) {
        *ret_exists = false;
        return FV_OK;
    }
    return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "cannot resolve data directory '%s': %s",
                        data_dir, strerror(errno));
}

/* Resolved path p is dir itself or below it (both resolved). */
static bool path_inside(const char *p, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return true;
    return strncmp(p, dir, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

static int refuse_inside(const char *path, const char *data_dir, struct fv_error *reterr)
{
    return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                        "kek file '%s' is inside the data directory '%s': keep the master key "
                        "apart from the data",
                        path, data_dir);
}

/* "file:" + hex of the first 8 bytes of HMAC-SHA256(key, "formvault key id"). */
static int key_id(char id[FV_CRYPTO_KEK_ID_MAX], const struct fv_secret *key)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t mac[FV_CRYPTO_MAC_BYTES];
    size_t n = sizeof(KEK_FILE_ID_PREFIX) - 1;

    int rc = fv_crypto_hmac_sha256(mac, (const uint8_t *)KEK_FILE_ID_INFO,
                                   sizeof(KEK_FILE_ID_INFO) - 1, key);
    if (rc != FV_OK)
        goto out;
    (void)fv_strlcpy(id, KEK_FILE_ID_PREFIX, FV_CRYPTO_KEK_ID_MAX);
    for (size_t i = 0; i < KEK_FILE_ID_BYTES; i++) {
        id[n++] = hex[mac[i] >> 4];
        id[n++] = hex[mac[i] & 0x0f];
    }
    id[n] = '\0';
out:
    fv_wipe(mac, sizeof(mac));
    return rc;
}

/*
 * Validate the file at path against data_dir and read its 32 bytes into a
 * new secret. The checks run on the descriptor (fstat) that is read, so a
 * file swapped between the checks and the read is not accepted.
 */
static int read_key(struct fv_secret **ret, const char *path, const char *data_dir,
                    struct fv_error *reterr)
{
    char real[PATH_MAX];
    char dreal[PATH_MAX];
    uint8_t buf[FV_CRYPTO_KEY_BYTES];
    bool dir_exists = false;
    struct stat st;
    size_t got = 0;
    int fd = -1;
    int rc = FV_OK;

    if (!realpath(path, real)) {
        if (errno == ENOENT || errno == ENOTDIR)
            rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX, "kek file '%s' not found",
                              path);
        else
            rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                              "cannot read kek file '%s': %s", path, strerror(errno));
        goto out;
    }
    rc = resolve_data_dir(dreal, &dir_exists, data_dir, reterr);
    if (rc != FV_OK)
        goto out;
    if (dir_exists && path_inside(real, dreal)) {
        rc = refuse_inside(path, data_dir, reterr);
        goto out;
    }
    /* O_NONBLOCK: a FIFO put in the key's place must not hang the start; fstat refuses it. */
    fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX, "kek file '%s' not found",
                              path);
        else
            rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                              "cannot read kek file '%s': %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX, "cannot read kek file '%s': %s",
                          path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "kek file '%s' is not a regular file",
                          path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "kek file '%s' is readable or writable by group or others (mode %04o); "
                          "chmod 0400",
                          path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    /* The file opened must be the one whose location was checked (no
     * directory swapped in between), have no second name (a hard link from
     * inside the data directory) and belong to this user. */
    struct stat named;
    if (stat(real, &named) != 0 || named.st_dev != st.st_dev || named.st_ino != st.st_ino) {
        rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                          "kek file '%s' changed while it was opened", path);
        goto out;
    }
    if (st.st_nlink != 1) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "kek file '%s' has %lu hard links: keep a single name, outside the data "
                          "directory",
                          path, (unsigned long)st.st_nlink);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "kek file '%s' belongs to uid %lu, not to the user running formvault "
                          "(uid %lu)",
                          path, (unsigned long)st.st_uid, (unsigned long)geteuid());
        goto out;
    }
    if (st.st_size != FV_CRYPTO_KEY_BYTES) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "kek file '%s' holds %lld bytes, expected %d", path,
                          (long long)st.st_size, FV_CRYPTO_KEY_BYTES);
        goto out;
    }
    while (got < sizeof(buf)) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = fv_error_set(reterr, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                              "cannot read kek file '%s': %s", path,
                              n == 0 ? "short read" : strerror(errno));
            goto out;
        }
        got += (size_t)n;
    }
    rc = fv_crypto_secret_copy(ret, buf, sizeof(buf));
    if (rc != FV_OK)
        rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot hold the key of kek file '%s'", path);
out:
    fv_wipe(buf, sizeof(buf));
    if (fd >= 0)
        (void)close(fd); /* read-only descriptor: nothing to lose */
    return rc;
}

static int kek_file_wrap(struct fv_kek *kek, uint8_t *out, size_t *ret_len, const uint8_t *key,
                         size_t keylen, const uint8_t *ad, size_t adlen)
{
    struct fv_kek *inner = ((struct kek_file *)kek)->inner;
    return inner->ops->wrap(inner, out, ret_len, key, keylen, ad, adlen);
}

static int kek_file_unwrap(struct fv_kek *kek, uint8_t *out, size_t *ret_len, const uint8_t *blob,
                           size_t bloblen, const uint8_t *ad, size_t adlen)
{
    struct fv_kek *inner = ((struct kek_file *)kek)->inner;
    return inner->ops->unwrap(inner, out, ret_len, blob, bloblen, ad, adlen);
}

/* The file still passes every check of open and still holds the same key. */
static int kek_file_check(struct fv_kek *kek)
{
    struct kek_file *k = (struct kek_file *)kek;
    struct fv_secret *key = NULL;
    char id[FV_CRYPTO_KEK_ID_MAX];

    int rc = read_key(&key, k->path, k->data_dir, NULL);
    if (rc != FV_OK)
        goto out;
    rc = key_id(id, key);
    if (rc != FV_OK)
        goto out;
    if (strlen(id) != strlen(k->base.id) || !fv_ct_equal(id, k->base.id, strlen(id)))
        rc = FV_E_KEY_UNAVAILABLE;
out:
    fv_crypto_secret_free(key);
    /* NOMEM is the only other outcome; the contract promises two codes. */
    return rc == FV_OK ? FV_OK : FV_E_KEY_UNAVAILABLE;
}

static void kek_file_free(struct fv_kek *kek)
{
    struct kek_file *k = (struct kek_file *)kek;
    fv_crypto_kek_free(k->inner);
    fv_free(k->path);
    fv_free(k->data_dir);
    fv_free(k);
}

static const struct fv_kek_ops kek_file_ops = {
    .version = FV_CRYPTO_KEK_OPS_VERSION,
    .name = "file",
    .wrap = kek_file_wrap,
    .unwrap = kek_file_unwrap,
    .check = kek_file_check,
    .free = kek_file_free,
};

int fv_crypto_kek_file_open(struct fv_kek **ret, const char *path, const char *data_dir,
                            struct fv_error *reterr)
{
    struct kek_file *k = NULL;
    struct fv_secret *key = NULL;
    int rc = FV_OK;

    FV_ASSERT(ret != NULL && path != NULL && data_dir != NULL);
    rc = read_key(&key, path, data_dir, reterr);
    if (rc != FV_OK)
        goto out;
    k = fv_calloc(1, sizeof(*k));
    if (!k) {
        rc = FV_E_NOMEM;
        goto out;
    }
    k->base.ops = &kek_file_ops;
    k->path = fv_strdup(path);
    k->data_dir = fv_strdup(data_dir);
    if (!k->path || !k->data_dir) {
        rc = FV_E_NOMEM;
        goto out;
    }
    rc = key_id(k->base.id, key);
    if (rc != FV_OK)
        goto out;
    rc = fv_crypto_kek_secret_new(&k->inner, k->base.id, key);
    if (rc != FV_OK)
        goto out;
    *ret = &k->base;
    k = NULL;
out:
    if (rc != FV_OK) /* no-op when read_key already named the problem */
        (void)fv_error_set(reterr, rc, SIZE_MAX, "cannot open kek file '%s': %s", path,
                           fv_err_describe(rc));
    fv_crypto_secret_free(key);
    if (k)
        kek_file_free(&k->base);
    return rc;
}

/* Split path into its directory ("." when none) and last component, both new strings. */
static int split_path(char **ret_dir, char **ret_base, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    char *base = NULL;

    if (!slash)
        dir = fv_strdup(".");
    else if (slash == path)
        dir = fv_strdup("/");
    else
        dir = fv_strndup(path, (size_t)(slash - path));
    base = fv_strdup(slash ? slash + 1 : path);
    if (!dir || !base) {
        fv_free(dir);
        fv_free(base);
        return FV_E_NOMEM;
    }
    *ret_dir = dir;
    *ret_base = base;
    return FV_OK;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return FV_E_IO;
        done += (size_t)n;
    }
    return FV_OK;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return FV_E_IO;
    int r = fsync(fd);
    int c = close(fd);
    return r == 0 && c == 0 ? FV_OK : FV_E_IO;
}

int fv_crypto_kek_file_create(const char *path, const char *data_dir, struct fv_error *reterr)
{
    char pdreal[PATH_MAX];
    char target[PATH_MAX];
    char dreal[PATH_MAX];
    uint8_t buf[FV_CRYPTO_KEY_BYTES];
    char *dir = NULL;
    char *base = NULL;
    bool dir_exists = false;
    bool created = false;
    int fd = -1;
    int rc = FV_OK;

    FV_ASSERT(path != NULL && data_dir != NULL);
    rc = split_path(&dir, &base, path);
    if (rc != FV_OK)
        goto out;
    /* 1. a directory, 2. nothing, 3. a name that cannot be created */
    if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "kek file '%s' must name a file", path);
        goto out;
    }
    if (!realpath(dir, pdreal)) {
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot create kek file '%s': directory: %s",
                          path, strerror(errno));
        goto out;
    }
    {
        int n =
            snprintf(target, sizeof(target), "%s/%s", strcmp(pdreal, "/") == 0 ? "" : pdreal, base);
        if (n < 0 || (size_t)n >= sizeof(target)) {
            rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "kek file path '%s' is too long",
                              path);
            goto out;
        }
    }
    rc = resolve_data_dir(dreal, &dir_exists, data_dir, reterr);
    if (rc != FV_OK)
        goto out;
    if (dir_exists && path_inside(target, dreal)) {
        rc = refuse_inside(path, data_dir, reterr);
        goto out;
    }
    fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0) {
        if (errno == EEXIST)
            rc =
                fv_error_set(reterr, FV_E_CONFLICT, SIZE_MAX, "kek file '%s' already exists", path);
        else
            rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot create kek file '%s': %s", path,
                              strerror(errno));
        goto out;
    }
    created = true;
    /* The umask can only take bits away; make the mode exact anyway. */
    if (fchmod(fd, 0400) != 0) {
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot set mode 0400 on kek file '%s': %s",
                          path, strerror(errno));
        goto out;
    }
    fv_random_bytes(buf, sizeof(buf));
    if (write_all(fd, buf, sizeof(buf)) != FV_OK || fsync(fd) != 0) {
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot write kek file '%s': %s", path,
                          strerror(errno));
        goto out;
    }
    {
        int c = close(fd);
        fd = -1;
        if (c != 0) {
            rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot write kek file '%s': %s", path,
                              strerror(errno));
            goto out;
        }
    }
    if (fsync_dir(pdreal) != FV_OK) {
        rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX,
                          "cannot sync the directory of kek file '%s': %s", path, strerror(errno));
        goto out;
    }
out:
    fv_wipe(buf, sizeof(buf));
    if (fd >= 0)
        (void)close(fd); /* failing path: the file is removed below */
    if (rc != FV_OK && created)
        (void)unlink(target); /* a half-written key must not block the retry with CONFLICT */
    fv_free(dir);
    fv_free(base);
    return rc;
}
