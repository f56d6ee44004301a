/*
 * core/mem.c: allocation wrappers with an allocation-failure hook for the
 * torture tests (STYLE 15, 34), secret wiping and constant-time compare.
 */
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* Torture hook: 0 = off. Unit tests are single-threaded; atomics keep TSan quiet. */
static atomic_long fail_at;
static atomic_long alloc_count;
static atomic_bool fail_sticky;

void fv_mem_fail_at(long n, bool sticky)
{
    atomic_store(&alloc_count, 0);
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_at, n);
}

long fv_mem_count(void)
{
    return atomic_load(&alloc_count);
}

static bool should_fail(void)
{
    long target = atomic_load(&fail_at);
    long n = atomic_fetch_add(&alloc_count, 1) + 1;
    if (target <= 0)
        return false;
    return n == target || (n > target && atomic_load(&fail_sticky));
}

void *fv_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *fv_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *fv_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

char *fv_strndup(const char *s, size_t n)
{
    char *d = fv_malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *fv_strdup(const char *s)
{
    return fv_strndup(s, strlen(s));
}

void fv_free(void *p)
{
    free(p);
}

void fv_wipe(void *p, size_t n)
{
    if (p && n)
        sodium_memzero(p, n);
}

bool fv_ct_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

void fv_random_bytes(void *p, size_t n)
{
    /* sodium_init() is idempotent and thread-safe; randombytes_buf cannot fail. */
    FV_ASSERT(sodium_init() >= 0);
    randombytes_buf(p, n);
}
