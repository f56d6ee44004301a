/* core/str.c: string views, bounded copies, integer parsing. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "core/core.h"

struct fv_str fv_str_from_cstr(const char *s)
{
    struct fv_str r = {s, s ? strlen(s) : 0};
    return r;
}

bool fv_str_eq_cstr(struct fv_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.p, c, n) == 0);
}

int fv_strlcpy(char *dst, const char *src, size_t cap)
{
    if (cap == 0)
        return FV_E_LIMIT;
    size_t n = strnlen(src, cap);
    if (n == cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return FV_E_LIMIT;
    }
    memcpy(dst, src, n + 1);
    return FV_OK;
}

int fv_parse_u64(const char *s, size_t len, uint64_t *ret)
{
    uint64_t v = 0;
    if (!s || len == 0 || len > 20)
        return FV_E_INVALID;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return FV_E_INVALID;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return FV_E_INVALID;
        v = v * 10 + d;
    }
    *ret = v;
    return FV_OK;
}

int fv_parse_i64(const char *s, size_t len, int64_t *ret)
{
    bool neg = false;
    uint64_t u;
    if (!s || len == 0)
        return FV_E_INVALID;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        s++;
        len--;
    }
    if (fv_parse_u64(s, len, &u) != FV_OK)
        return FV_E_INVALID;
    if (neg) {
        if (u > (uint64_t)INT64_MAX + 1)
            return FV_E_INVALID;
        *ret = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX)
            return FV_E_INVALID;
        *ret = (int64_t)u;
    }
    return FV_OK;
}
