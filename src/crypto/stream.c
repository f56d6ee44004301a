/*
 * crypto/stream.c: streaming AEAD for files and backup archives, the STREAM
 * construction (Hoang, Reyhanitabar, Rogaway, Vizar, "Online
 * Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO
 * 2015) laid out like Tink's AES-GCM-HKDF streaming AEAD:
 *
 *   header  = 0x01 || salt(32) || nonce_prefix(7)
 *   key_seg = HKDF-SHA256(ikm = key, salt = salt, info = ad)
 *   segment i = AES-256-GCM(key_seg, nonce = prefix || BE32(i) || last, ad = "")
 *
 * A fresh random salt per stream gives each stream its own segment key, so
 * the 2^32-per-key nonce budget applies per stream. The segment index in the
 * nonce detects reordering and duplication; the last flag detects
 * truncation and extension (a final segment only authenticates as final).
 * The header itself is not MACed: changing salt or prefix changes the key or
 * the nonces and every segment then fails.
 *
 * Like every online AEAD, opening releases each segment as soon as it
 * verifies; a caller that must not act on a prefix of a forged stream writes
 * to a temporary file and renames it only after fv_crypto_stream_open_fd
 * returns FV_OK.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "crypto/crypto.h"

#define STREAM_VERSION 0x01
#define SALT_BYTES 32
#define PREFIX_BYTES 7
#define SEG FV_CRYPTO_STREAM_SEGMENT
#define CSEG (FV_CRYPTO_STREAM_SEGMENT + FV_CRYPTO_STREAM_SEGMENT_OVERHEAD)

_Static_assert(FV_CRYPTO_STREAM_HEADER_BYTES == 1 + SALT_BYTES + PREFIX_BYTES, "header layout");
_Static_assert(PREFIX_BYTES + 4 + 1 == FV_CRYPTO_NONCE_BYTES, "segment nonce layout");

struct fv_stream {
    struct fv_aead *aead; /* keyed with the segment key */
    uint8_t prefix[PREFIX_BYTES];
    uint64_t next; /* index of the next segment, <= UINT32_MAX while usable */
    bool done;     /* the final segment has been sealed or opened */
};

static int stream_new(struct fv_stream **ret, const uint8_t header[FV_CRYPTO_STREAM_HEADER_BYTES],
                      const uint8_t *ad, size_t adlen, const struct fv_secret *key)
{
    struct fv_stream *st = NULL;
    uint8_t k[FV_CRYPTO_KEY_BYTES];
    int rc = FV_OK;

    FV_ASSERT(key != NULL && fv_crypto_secret_len(key) == FV_CRYPTO_KEY_BYTES);
    FV_ASSERT(ad || adlen == 0);
    st = fv_calloc(1, sizeof(*st));
    if (!st) {
        rc = FV_E_NOMEM;
        goto out;
    }
    memcpy(st->prefix, header + 1 + SALT_BYTES, PREFIX_BYTES);
    rc = fv_crypto_hkdf_sha256(k, sizeof(k), fv_crypto_secret_bytes(key), fv_crypto_secret_len(key),
                               header + 1, SALT_BYTES, ad, adlen);
    if (rc != FV_OK)
        goto out;
    rc = fv_crypto_aead_new_raw(&st->aead, k);
    if (rc != FV_OK)
        goto out;
    *ret = st;
    st = NULL;
out:
    fv_wipe(k, sizeof(k));
    fv_crypto_stream_free(st);
    return rc;
}

static void segment_nonce(uint8_t nonce[FV_CRYPTO_NONCE_BYTES], const struct fv_stream *st,
                          bool last)
{
    uint32_t i = (uint32_t)st->next;
    memcpy(nonce, st->prefix, PREFIX_BYTES);
    nonce[PREFIX_BYTES + 0] = (uint8_t)(i >> 24);
    nonce[PREFIX_BYTES + 1] = (uint8_t)(i >> 16);
    nonce[PREFIX_BYTES + 2] = (uint8_t)(i >> 8);
    nonce[PREFIX_BYTES + 3] = (uint8_t)i;
    nonce[PREFIX_BYTES + 4] = last ? 1 : 0;
}

int fv_crypto_stream_seal_new(struct fv_stream **ret, uint8_t header[FV_CRYPTO_STREAM_HEADER_BYTES],
                              const uint8_t *ad, size_t adlen, const struct fv_secret *key)
{
    uint8_t h[FV_CRYPTO_STREAM_HEADER_BYTES];
    int rc;

    FV_ASSERT(header != NULL);
    h[0] = STREAM_VERSION;
    fv_random_bytes(h + 1, SALT_BYTES + PREFIX_BYTES);
    rc = stream_new(ret, h, ad, adlen, key);
    if (rc == FV_OK)
        memcpy(header, h, sizeof(h));
    return rc;
}

int fv_crypto_stream_seal_push(uint8_t *c, const uint8_t *m, size_t mlen, bool last,
                               struct fv_stream *st)
{
    uint8_t nonce[FV_CRYPTO_NONCE_BYTES];
    int rc;

    FV_ASSERT(st != NULL && c != NULL);
    FV_ASSERT(m || mlen == 0);
    if (st->done)
        return FV_E_INVALID;
    if (last ? mlen > SEG : mlen != SEG)
        return FV_E_INVALID;
    if (st->next > UINT32_MAX)
        return FV_E_LIMIT;
    segment_nonce(nonce, st, last);
    rc = fv_crypto_aead_seal_detached(c, c + mlen, m, mlen, NULL, 0, nonce, st->aead);
    if (rc != FV_OK)
        return rc;
    st->next++;
    st->done = last;
    return FV_OK;
}

int fv_crypto_stream_open_new(struct fv_stream **ret,
                              const uint8_t header[FV_CRYPTO_STREAM_HEADER_BYTES],
                              const uint8_t *ad, size_t adlen, const struct fv_secret *key)
{
    FV_ASSERT(header != NULL);
    if (header[0] != STREAM_VERSION)
        return FV_E_CORRUPT;
    return stream_new(ret, header, ad, adlen, key);
}

/*
 * An empty final segment is clen == 16 (the empty stream), so the lower
 * bound is 16 for a final segment; every other segment is exactly full.
 */
int fv_crypto_stream_open_pull(uint8_t *m, const uint8_t *c, size_t clen, bool last,
                               struct fv_stream *st)
{
    uint8_t nonce[FV_CRYPTO_NONCE_BYTES];
    size_t mlen;
    int rc;

    FV_ASSERT(st != NULL && m != NULL);
    if (st->done)
        return FV_E_INVALID;
    if (!c || clen < FV_CRYPTO_TAG_BYTES || clen > CSEG || (!last && clen != CSEG))
        return FV_E_CORRUPT;
    if (st->next > UINT32_MAX)
        return FV_E_CORRUPT;
    mlen = clen - FV_CRYPTO_TAG_BYTES;
    segment_nonce(nonce, st, last);
    rc = fv_crypto_aead_open_detached(m, c, mlen, c + mlen, NULL, 0, nonce, st->aead);
    if (rc != FV_OK)
        return FV_E_CORRUPT;
    st->next++;
    st->done = last;
    return FV_OK;
}

void fv_crypto_stream_free(struct fv_stream *st)
{
    if (!st)
        return;
    fv_crypto_aead_free(st->aead);
    fv_wipe(st, sizeof(*st));
    fv_free(st);
}

/* ------------------------------------------------------------ fd helpers */

/* Read up to n bytes, stopping early only at end of file. */
static int read_full(int fd, uint8_t *p, size_t n, size_t *ret_got)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return FV_E_IO;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *ret_got = got;
    return FV_OK;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return FV_E_IO;
        }
        p += w;
        n -= (size_t)w;
    }
    return FV_OK;
}

/*
 * Both helpers read one byte past a segment to learn whether it is the last
 * (a pipe has no size): buf holds the segment plus that look-ahead byte,
 * which is carried over to the front for the next round.
 */
int fv_crypto_stream_seal_fd(int out_fd, int in_fd, const uint8_t *ad, size_t adlen,
                             const struct fv_secret *key)
{
    struct fv_stream *st = NULL;
    uint8_t header[FV_CRYPTO_STREAM_HEADER_BYTES];
    uint8_t *in = NULL, *out = NULL;
    size_t have = 0, got;
    bool last = false;
    int rc;

    in = fv_malloc(SEG + 1);
    out = fv_malloc(CSEG);
    if (!in || !out) {
        rc = FV_E_NOMEM;
        goto out;
    }
    rc = fv_crypto_stream_seal_new(&st, header, ad, adlen, key);
    if (rc != FV_OK)
        goto out;
    rc = write_full(out_fd, header, sizeof(header));
    if (rc != FV_OK)
        goto out;
    while (!last) {
        size_t mlen;
        rc = read_full(in_fd, in + have, SEG + 1 - have, &got);
        if (rc != FV_OK)
            goto out;
        have += got;
        last = have <= SEG;
        mlen = last ? have : SEG;
        rc = fv_crypto_stream_seal_push(out, in, mlen, last, st);
        if (rc != FV_OK)
            goto out;
        rc = write_full(out_fd, out, mlen + FV_CRYPTO_TAG_BYTES);
        if (rc != FV_OK)
            goto out;
        if (!last) {
            in[0] = in[SEG];
            have = 1;
        }
    }
out:
    fv_crypto_stream_free(st);
    if (in)
        fv_wipe(in, SEG + 1);
    fv_free(in);
    fv_free(out);
    return rc;
}

int fv_crypto_stream_open_fd(int out_fd, int in_fd, const uint8_t *ad, size_t adlen,
                             const struct fv_secret *key)
{
    struct fv_stream *st = NULL;
    uint8_t header[FV_CRYPTO_STREAM_HEADER_BYTES];
    uint8_t *in = NULL, *out = NULL;
    size_t have = 0, got;
    bool last = false;
    int rc;

    in = fv_malloc(CSEG + 1);
    out = fv_malloc(SEG);
    if (!in || !out) {
        rc = FV_E_NOMEM;
        goto out;
    }
    rc = read_full(in_fd, header, sizeof(header), &got);
    if (rc != FV_OK)
        goto out;
    if (got != sizeof(header)) {
        rc = FV_E_CORRUPT;
        goto out;
    }
    rc = fv_crypto_stream_open_new(&st, header, ad, adlen, key);
    if (rc != FV_OK)
        goto out;
    while (!last) {
        size_t clen;
        rc = read_full(in_fd, in + have, CSEG + 1 - have, &got);
        if (rc != FV_OK)
            goto out;
        have += got;
        /* Anything short of a full segment plus one byte is at EOF: final. */
        last = have <= CSEG;
        clen = last ? have : CSEG;
        rc = fv_crypto_stream_open_pull(out, in, clen, last, st);
        if (rc != FV_OK)
            goto out;
        rc = write_full(out_fd, out, clen - FV_CRYPTO_TAG_BYTES);
        if (rc != FV_OK)
            goto out;
        if (!last) {
            in[0] = in[CSEG];
            have = 1;
        }
    }
out:
    fv_crypto_stream_free(st);
    if (out)
        fv_wipe(out, SEG);
    fv_free(in);
    fv_free(out);
    return rc;
}
