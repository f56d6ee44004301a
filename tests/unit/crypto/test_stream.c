/*
 * Unit tests for crypto/stream.c: the STREAM construction (Hoang,
 * Reyhanitabar, Rogaway, Vizar 2015) as laid out in the header. Round trips
 * at the segment boundaries through the fd helpers (temporary files and a
 * pipe), then every tampering the construction must catch: truncation,
 * reordering, duplication, bit flips, trailing data, wrong ad, wrong key.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/crypto.h"

#define SEG FV_CRYPTO_STREAM_SEGMENT
#define CSEG (SEG + FV_CRYPTO_TAG_BYTES)
#define HDR FV_CRYPTO_STREAM_HEADER_BYTES

static const uint8_t AD[] = "tenant-1/file-42";

struct bytes {
    uint8_t *p;
    size_t len;
};

static int tmpfd(void)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int fd = dup(fileno(f));
    assert_true(fd >= 0);
    fclose(f);
    return fd;
}

static int fd_with(const uint8_t *p, size_t n)
{
    int fd = tmpfd();
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    return fd;
}

static struct bytes fd_all(int fd)
{
    struct bytes b;
    off_t end = lseek(fd, 0, SEEK_END);
    assert_true(end >= 0);
    b.len = (size_t)end;
    b.p = malloc(b.len ? b.len : 1);
    assert_non_null(b.p);
    assert_int_equal(pread(fd, b.p, b.len, 0), (ssize_t)b.len);
    return b;
}

static struct bytes seal_bytes(const uint8_t *m, size_t n, const struct fv_secret *key)
{
    int in = fd_with(m, n), out = tmpfd();
    assert_int_equal(fv_crypto_stream_seal_fd(out, in, AD, sizeof(AD), key), FV_OK);
    struct bytes c = fd_all(out);
    close(in);
    close(out);
    return c;
}

/* Open c with the fd helper; on success *ret holds the plaintext. */
static int open_bytes(const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
                      const struct fv_secret *key, struct bytes *ret)
{
    int in = fd_with(c, clen), out = tmpfd();
    int rc = fv_crypto_stream_open_fd(out, in, ad, adlen, key);
    if (rc == FV_OK && ret)
        *ret = fd_all(out);
    close(in);
    close(out);
    return rc;
}

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + (i >> 16));
    return p;
}

static size_t sealed_len(size_t n)
{
    size_t segs = n / SEG + 1; /* a full last segment is still the final one */
    if (n && n % SEG == 0)
        segs = n / SEG;
    return HDR + n + segs * FV_CRYPTO_TAG_BYTES;
}

static void test_fv_crypto_stream_fd_round_trip(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG};
    struct fv_secret *key = NULL;
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    for (size_t i = 0; i < FV_ARRAY_LEN(sizes); i++) {
        size_t n = sizes[i];
        uint8_t *m = pattern(n);
        struct bytes c = seal_bytes(m, n, key), back = {0};
        print_message("size %zu\n", n);
        assert_int_equal(c.len, sealed_len(n));
        assert_int_equal(c.p[0], 0x01);
        assert_int_equal(open_bytes(c.p, c.len, AD, sizeof(AD), key, &back), FV_OK);
        assert_int_equal(back.len, n);
        if (n)
            assert_memory_equal(back.p, m, n);
        free(back.p);
        free(c.p);
        free(m);
    }
    fv_crypto_secret_free(key);
}

struct writer {
    int fd;
    const uint8_t *p;
    size_t n;
};

static void *write_all(void *arg)
{
    struct writer *w = arg;
    size_t off = 0;
    while (off < w->n) {
        ssize_t r = write(w->fd, w->p + off, w->n - off > 1000 ? 1000 : w->n - off);
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    close(w->fd);
    return NULL;
}

/* A pipe delivers short reads and has no size: the helpers must not care. */
static void test_fv_crypto_stream_fd_pipe(void **state)
{
    (void)state;
    size_t n = 3 * SEG + 5;
    uint8_t *m = pattern(n);
    struct fv_secret *key = NULL;
    int p[2], out = tmpfd();
    pthread_t t;
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);

    assert_int_equal(pipe(p), 0);
    struct writer w = {p[1], m, n};
    assert_int_equal(pthread_create(&t, NULL, write_all, &w), 0);
    assert_int_equal(fv_crypto_stream_seal_fd(out, p[0], AD, sizeof(AD), key), FV_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    close(p[0]);
    struct bytes c = fd_all(out);
    close(out);
    assert_int_equal(c.len, sealed_len(n));

    assert_int_equal(pipe(p), 0);
    out = tmpfd();
    struct writer w2 = {p[1], c.p, c.len};
    assert_int_equal(pthread_create(&t, NULL, write_all, &w2), 0);
    assert_int_equal(fv_crypto_stream_open_fd(out, p[0], AD, sizeof(AD), key), FV_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    close(p[0]);
    struct bytes back = fd_all(out);
    close(out);
    assert_int_equal(back.len, n);
    assert_memory_equal(back.p, m, n);
    free(back.p);
    free(c.p);
    free(m);
    fv_crypto_secret_free(key);
}

/* A stream of 3 full segments and a 100-byte final one. */
struct fixture {
    struct fv_secret *key;
    uint8_t *m;
    size_t n;
    struct bytes c;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(fv_crypto_secret_random(&f->key, 32), FV_OK);
    f->n = 3 * SEG + 100;
    f->m = pattern(f->n);
    f->c = seal_bytes(f->m, f->n, f->key);
    assert_int_equal(f->c.len, HDR + 3 * CSEG + 116);
    assert_int_equal(open_bytes(f->c.p, f->c.len, AD, sizeof(AD), f->key, NULL), FV_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fv_crypto_secret_free(f->key);
    free(f->m);
    free(f->c.p);
    free(f);
    return 0;
}

static uint8_t *seg_at(struct fixture *f, size_t i)
{
    return f->c.p + HDR + i * CSEG;
}

static int open_f(struct fixture *f, const uint8_t *c, size_t clen)
{
    return open_bytes(c, clen, AD, sizeof(AD), f->key, NULL);
}

static void test_fv_crypto_stream_open_fd_truncated(void **state)
{
    struct fixture *f = *state;
    /* drop the final segment: the last full one is not marked final */
    assert_int_equal(open_f(f, f->c.p, HDR + 3 * CSEG), FV_E_CORRUPT);
    /* drop the last two */
    assert_int_equal(open_f(f, f->c.p, HDR + 2 * CSEG), FV_E_CORRUPT);
    /* cut inside the final segment, inside a full one, and at each end */
    assert_int_equal(open_f(f, f->c.p, f->c.len - 1), FV_E_CORRUPT);
    assert_int_equal(open_f(f, f->c.p, HDR + CSEG + 17), FV_E_CORRUPT);
    assert_int_equal(open_f(f, f->c.p, HDR + 15), FV_E_CORRUPT);
    assert_int_equal(open_f(f, f->c.p, HDR), FV_E_CORRUPT);
    assert_int_equal(open_f(f, f->c.p, HDR - 1), FV_E_CORRUPT);
    assert_int_equal(open_f(f, f->c.p, 0), FV_E_CORRUPT);
}

static void test_fv_crypto_stream_open_fd_reordered(void **state)
{
    struct fixture *f = *state;
    uint8_t *c = malloc(f->c.len);
    assert_non_null(c);
    memcpy(c, f->c.p, f->c.len);
    memcpy(c + HDR, seg_at(f, 1), CSEG);
    memcpy(c + HDR + CSEG, seg_at(f, 0), CSEG);
    assert_int_equal(open_f(f, c, f->c.len), FV_E_CORRUPT);
    free(c);
}

static void test_fv_crypto_stream_open_fd_duplicated(void **state)
{
    struct fixture *f = *state;
    size_t len = f->c.len + CSEG;
    uint8_t *c = malloc(len);
    assert_non_null(c);
    /* header, 0, 1, 1, 2, final */
    memcpy(c, f->c.p, HDR + 2 * CSEG);
    memcpy(c + HDR + 2 * CSEG, seg_at(f, 1), f->c.len - HDR - CSEG);
    assert_int_equal(open_f(f, c, len), FV_E_CORRUPT);
    /* a duplicated segment in place of another: 0, 0, 2, final */
    memcpy(c, f->c.p, f->c.len);
    memcpy(c + HDR + CSEG, seg_at(f, 0), CSEG);
    assert_int_equal(open_f(f, c, f->c.len), FV_E_CORRUPT);
    free(c);
}

static void test_fv_crypto_stream_open_fd_bit_flip(void **state)
{
    struct fixture *f = *state;
    /* version, salt, prefix, first segment body and tag, final segment */
    static const size_t at[] = {0, 1, 32, 33, 39, HDR, HDR + CSEG - 1, HDR + 3 * CSEG + 50};
    for (size_t i = 0; i < FV_ARRAY_LEN(at); i++) {
        f->c.p[at[i]] ^= 0x04;
        assert_int_equal(open_f(f, f->c.p, f->c.len), FV_E_CORRUPT);
        f->c.p[at[i]] ^= 0x04;
    }
    f->c.p[f->c.len - 1] ^= 0x80;
    assert_int_equal(open_f(f, f->c.p, f->c.len), FV_E_CORRUPT);
    f->c.p[f->c.len - 1] ^= 0x80;
    assert_int_equal(open_f(f, f->c.p, f->c.len), FV_OK);
}

static void test_fv_crypto_stream_open_fd_trailing_data(void **state)
{
    struct fixture *f = *state;
    uint8_t *c = malloc(f->c.len + CSEG + 1);
    assert_non_null(c);
    memcpy(c, f->c.p, f->c.len);
    memset(c + f->c.len, 0, CSEG + 1);
    assert_int_equal(open_f(f, c, f->c.len + 1), FV_E_CORRUPT);
    assert_int_equal(open_f(f, c, f->c.len + 16), FV_E_CORRUPT);
    assert_int_equal(open_f(f, c, f->c.len + CSEG + 1), FV_E_CORRUPT);
    free(c);

    /* a stream whose final segment is full, followed by one more byte */
    struct bytes s = seal_bytes(f->m, SEG, f->key);
    uint8_t *d = malloc(s.len + 1);
    assert_non_null(d);
    memcpy(d, s.p, s.len);
    d[s.len] = 0;
    assert_int_equal(open_f(f, d, s.len), FV_OK);
    assert_int_equal(open_f(f, d, s.len + 1), FV_E_CORRUPT);
    /* a second stream appended to the first */
    free(d);
    d = malloc(2 * s.len);
    assert_non_null(d);
    memcpy(d, s.p, s.len);
    memcpy(d + s.len, s.p, s.len);
    assert_int_equal(open_f(f, d, 2 * s.len), FV_E_CORRUPT);
    free(d);
    free(s.p);
}

static void test_fv_crypto_stream_open_fd_wrong_ad_or_key(void **state)
{
    struct fixture *f = *state;
    struct fv_secret *other = NULL;
    assert_int_equal(open_bytes(f->c.p, f->c.len, AD, sizeof(AD) - 1, f->key, NULL), FV_E_CORRUPT);
    assert_int_equal(open_bytes(f->c.p, f->c.len, NULL, 0, f->key, NULL), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_secret_random(&other, 32), FV_OK);
    assert_int_equal(open_bytes(f->c.p, f->c.len, AD, sizeof(AD), other, NULL), FV_E_CORRUPT);
    fv_crypto_secret_free(other);
}

/* The push/pull API: sizes, the final flag, and use after the end. */
static void test_fv_crypto_stream_push_pull_rules(void **state)
{
    (void)state;
    struct fv_secret *key = NULL;
    struct fv_stream *s = NULL, *o = NULL;
    uint8_t hdr[HDR];
    uint8_t *m = pattern(SEG), *c = malloc(2 * CSEG), *back = malloc(SEG);
    assert_non_null(c);
    assert_non_null(back);
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    assert_int_equal(fv_crypto_stream_seal_new(&s, hdr, NULL, 0, key), FV_OK);
    /* a non-final segment must be full */
    assert_int_equal(fv_crypto_stream_seal_push(c, m, SEG - 1, false, s), FV_E_INVALID);
    assert_int_equal(fv_crypto_stream_seal_push(c, m, SEG + 1, true, s), FV_E_INVALID);
    assert_int_equal(fv_crypto_stream_seal_push(c, m, SEG, false, s), FV_OK);
    assert_int_equal(fv_crypto_stream_seal_push(c + CSEG, m, 10, true, s), FV_OK);
    assert_int_equal(fv_crypto_stream_seal_push(c + CSEG, m, 10, true, s), FV_E_INVALID);

    assert_int_equal(fv_crypto_stream_open_new(&o, hdr, NULL, 0, key), FV_OK);
    /* the first segment presented as final fails; state does not advance */
    assert_int_equal(fv_crypto_stream_open_pull(back, c, CSEG, true, o), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_stream_open_pull(back, c, CSEG - 1, false, o), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_stream_open_pull(back, c, CSEG, false, o), FV_OK);
    assert_memory_equal(back, m, SEG);
    /* the final segment presented as non-final fails */
    assert_int_equal(fv_crypto_stream_open_pull(back, c + CSEG, 26, false, o), FV_E_CORRUPT);
    assert_int_equal(fv_crypto_stream_open_pull(back, c + CSEG, 26, true, o), FV_OK);
    assert_memory_equal(back, m, 10);
    assert_int_equal(fv_crypto_stream_open_pull(back, c + CSEG, 26, true, o), FV_E_INVALID);
    fv_crypto_stream_free(o);
    o = NULL;

    /* unknown header version */
    hdr[0] = 2;
    assert_int_equal(fv_crypto_stream_open_new(&o, hdr, NULL, 0, key), FV_E_CORRUPT);
    assert_null(o);
    fv_crypto_stream_free(s);
    fv_crypto_stream_free(NULL);
    fv_crypto_secret_free(key);
    free(m);
    free(c);
    free(back);
}

/* Two streams under one key get different salts, so different ciphertext. */
static void test_fv_crypto_stream_seal_fd_fresh_salt(void **state)
{
    (void)state;
    struct fv_secret *key = NULL;
    uint8_t m[10] = {0};
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    struct bytes a = seal_bytes(m, sizeof(m), key), b = seal_bytes(m, sizeof(m), key);
    assert_int_equal(a.len, b.len);
    assert_false(fv_ct_equal(a.p + 1, b.p + 1, 32));
    assert_false(fv_ct_equal(a.p + HDR, b.p + HDR, a.len - HDR));
    free(a.p);
    free(b.p);
    fv_crypto_secret_free(key);
}

static void test_fv_crypto_stream_fd_nomem(void **state)
{
    (void)state;
    struct fv_secret *key = NULL;
    uint8_t m[100] = {1};
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    for (long n = 1; n < 20; n++) {
        int in = fd_with(m, sizeof(m)), out = tmpfd();
        fv_mem_fail_at(n, false);
        int rc = fv_crypto_stream_seal_fd(out, in, NULL, 0, key);
        fv_mem_fail_at(0, false);
        close(in);
        close(out);
        if (rc == FV_OK)
            break;
        assert_int_equal(rc, FV_E_NOMEM);
    }
    fv_crypto_secret_free(key);
}

static void test_fv_crypto_stream_fd_io_error(void **state)
{
    (void)state;
    struct fv_secret *key = NULL;
    int out = tmpfd();
    assert_int_equal(fv_crypto_secret_random(&key, 32), FV_OK);
    assert_int_equal(fv_crypto_stream_seal_fd(out, -1, NULL, 0, key), FV_E_IO);
    assert_int_equal(fv_crypto_stream_open_fd(out, -1, NULL, 0, key), FV_E_IO);
    close(out);
    fv_crypto_secret_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_crypto_stream_fd_round_trip),
        cmocka_unit_test(test_fv_crypto_stream_fd_pipe),
        cmocka_unit_test_setup_teardown(test_fv_crypto_stream_open_fd_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_stream_open_fd_reordered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_stream_open_fd_duplicated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_stream_open_fd_bit_flip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_stream_open_fd_trailing_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fv_crypto_stream_open_fd_wrong_ad_or_key, setup,
                                        teardown),
        cmocka_unit_test(test_fv_crypto_stream_push_pull_rules),
        cmocka_unit_test(test_fv_crypto_stream_seal_fd_fresh_salt),
        cmocka_unit_test(test_fv_crypto_stream_fd_nomem),
        cmocka_unit_test(test_fv_crypto_stream_fd_io_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
