/* auth/token.c: API token generation, hashing and header parsing. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <strings.h>

#include "auth/auth.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding (RFC 4648 section 5) of in[n] into out. */
static size_t b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
    }
    return o;
}

int fv_auth_token_hash(const char *token, size_t len, uint8_t ret_hash[FV_AUTH_TOKEN_HASH_BYTES])
{
    const size_t plen = sizeof(FV_AUTH_TOKEN_PREFIX) - 1;
    if (len != FV_AUTH_TOKEN_CHARS || strncmp(token, FV_AUTH_TOKEN_PREFIX, plen) != 0)
        return FV_E_AUTH;
    for (size_t i = plen; i < len; i++)
        if (!memchr(b64url, token[i], sizeof(b64url) - 1))
            return FV_E_AUTH;
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, token, len, ret_hash) != 0)
        return FV_E_INTERNAL;
    return FV_OK;
}

int fv_auth_token_generate(char *ret_token, size_t cap, uint8_t ret_hash[FV_AUTH_TOKEN_HASH_BYTES])
{
    uint8_t raw[FV_AUTH_TOKEN_RANDOM_BYTES];
    char tok[FV_AUTH_TOKEN_CHARS + 1];
    int rc = FV_OK;
    if (cap < sizeof(tok))
        return FV_E_LIMIT;
    fv_random_bytes(raw, sizeof(raw));
    memcpy(tok, FV_AUTH_TOKEN_PREFIX, 4);
    size_t n = b64url_encode(raw, sizeof(raw), tok + 4);
    FV_ASSERT(n + 4 == FV_AUTH_TOKEN_CHARS);
    tok[FV_AUTH_TOKEN_CHARS] = '\0';
    rc = fv_auth_token_hash(tok, FV_AUTH_TOKEN_CHARS, ret_hash);
    if (rc == FV_OK)
        memcpy(ret_token, tok, sizeof(tok));
    fv_wipe(raw, sizeof(raw));
    fv_wipe(tok, sizeof(tok));
    return rc;
}

int fv_auth_header_token(const char *header, struct fv_str *ret)
{
    static const char *schemes[] = {"Zoho-oauthtoken", "Bearer"};
    if (!header)
        return FV_E_AUTH;
    for (size_t i = 0; i < FV_ARRAY_LEN(schemes); i++) {
        size_t n = strlen(schemes[i]);
        if (strncasecmp(header, schemes[i], n) != 0 || header[n] != ' ')
            continue;
        const char *p = header + n;
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " \t");
        if (len == 0 || p[len] != '\0')
            return FV_E_AUTH;
        ret->p = p;
        ret->len = len;
        return FV_OK;
    }
    return FV_E_AUTH;
}

struct scope_row {
    const char *name;
    unsigned bit;
};

static const struct scope_row scope_rows[] = {
    {"ZohoCreator.form.CREATE", FV_SCOPE_FORM_CREATE},
    {"ZohoCreator.report.READ", FV_SCOPE_REPORT_READ},
    {"ZohoCreator.report.UPDATE", FV_SCOPE_REPORT_UPDATE},
    {"ZohoCreator.report.DELETE", FV_SCOPE_REPORT_DELETE},
    {"ZohoCreator.report.CREATE", FV_SCOPE_REPORT_CREATE},
    {"ZohoCreator.meta.form.READ", FV_SCOPE_META_FORM_READ},
    {"ZohoCreator.meta.application.READ", FV_SCOPE_META_APP_READ},
    {"ZohoCreator.dashboard.READ", FV_SCOPE_DASHBOARD_READ},
    {"ZohoCreator.bulk.CREATE", FV_SCOPE_BULK_CREATE},
    {"ZohoCreator.bulk.READ", FV_SCOPE_BULK_READ},
};

const char *fv_auth_scope_name(unsigned bit)
{
    for (size_t i = 0; i < FV_ARRAY_LEN(scope_rows); i++)
        if (scope_rows[i].bit == bit)
            return scope_rows[i].name;
    return NULL;
}

/* "ZohoCreator.report.ALL" -> every scope whose name starts "ZohoCreator.report." */
static unsigned scope_wildcard(const char *s, size_t len)
{
    unsigned set = 0;
    if (len < 4 || strncmp(s + len - 4, ".ALL", 4) != 0)
        return 0;
    size_t stem = len - 3; /* keep the dot */
    for (size_t i = 0; i < FV_ARRAY_LEN(scope_rows); i++) {
        const char *n = scope_rows[i].name;
        const char *last = strrchr(n, '.');
        if ((size_t)(last - n + 1) == stem && strncmp(n, s, stem) == 0)
            set |= scope_rows[i].bit;
    }
    return set;
}

int fv_auth_scopes_parse(const char *list, unsigned *ret_scopes, struct fv_error *reterr)
{
    unsigned set = 0;
    const char *p = list;
    if (!list)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "no scopes given");
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", ");
        unsigned bit = 0;
        if (len == 3 && strncmp(p, "all", 3) == 0)
            bit = FV_SCOPE_ALL;
        for (size_t i = 0; !bit && i < FV_ARRAY_LEN(scope_rows); i++)
            if (strlen(scope_rows[i].name) == len && strncmp(scope_rows[i].name, p, len) == 0)
                bit = scope_rows[i].bit;
        if (!bit)
            bit = scope_wildcard(p, len);
        if (!bit)
            return fv_error_set(reterr, FV_E_INVALID, (size_t)(p - list), "unknown scope '%.*s'",
                                (int)(len > 80 ? 80 : len), p);
        set |= bit;
        p += len;
    }
    if (!set)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "no scopes given");
    *ret_scopes = set;
    return FV_OK;
}

int fv_auth_scopes_format(unsigned set, struct fv_buf *buf)
{
    int rc = FV_OK;
    bool first = true;
    for (size_t i = 0; rc == FV_OK && i < FV_ARRAY_LEN(scope_rows); i++) {
        if (!(set & scope_rows[i].bit))
            continue;
        if (!first)
            rc = fv_buf_append(buf, ",", 1);
        if (rc == FV_OK)
            rc = fv_buf_append_cstr(buf, scope_rows[i].name);
        first = false;
    }
    if (rc == FV_OK && first)
        rc = fv_buf_append(buf, "", 0);
    return rc;
}
