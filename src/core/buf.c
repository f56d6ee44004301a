/* core/buf.c: growable buffer with a hard maximum (curl dynbuf). */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

void fv_buf_init(struct fv_buf *b, size_t max)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void fv_buf_release(struct fv_buf *b)
{
    fv_free(b->p);
    fv_buf_init(b, b->max);
}

void fv_buf_reset(struct fv_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

static int buf_grow(struct fv_buf *b, size_t extra)
{
    /* 1. overflow of len + extra + NUL; 2. over the hard maximum */
    if (extra > SIZE_MAX - b->len - 1 || b->len + extra > b->max) {
        fv_buf_release(b);
        return FV_E_LIMIT;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return FV_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = fv_realloc(b->p, cap);
    if (!p) {
        fv_buf_release(b);
        return FV_E_NOMEM;
    }
    b->p = p;
    b->cap = cap;
    return FV_OK;
}

int fv_buf_append(struct fv_buf *b, const void *p, size_t len)
{
    int rc = buf_grow(b, len);
    if (rc != FV_OK)
        return rc;
    if (len)
        memcpy(b->p + b->len, p, len);
    b->len += len;
    b->p[b->len] = '\0';
    return FV_OK;
}

int fv_buf_append_cstr(struct fv_buf *b, const char *s)
{
    return fv_buf_append(b, s, strlen(s));
}

int fv_buf_appendf(struct fv_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return FV_E_INVALID;
    if ((size_t)n < sizeof(small))
        return fv_buf_append(b, small, (size_t)n);
    int rc = buf_grow(b, (size_t)n);
    if (rc != FV_OK)
        return rc;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return FV_E_INVALID;
    b->len += (size_t)n;
    return FV_OK;
}

char *fv_buf_detach(struct fv_buf *b, size_t *ret_len)
{
    char *p = b->p;
    if (ret_len)
        *ret_len = b->len;
    fv_buf_init(b, b->max);
    return p;
}
