/*
 * http/url.c: pure functions over request targets: strict percent-decoding
 * of paths and query strings, and the HTTPS redirect URL. No I/O, no MHD;
 * unit-tested directly (tests/unit/http/test_url.c).
 *
 * We decode the raw target ourselves (captured by MHD's URI log callback)
 * instead of using MHD's decoded copy, because MHD turns %00 into a NUL that
 * silently truncates the value and accepts malformed escapes.
 */
#include "http/http_int.h"

#include <string.h>

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decode in[0..len) into out (which has room for len + 1 bytes, guaranteed
 * by callers). plus_is_space: query semantics. no_slash: refuse %2F, which
 * would change the path's segment structure after routing saw it (the
 * Apache AllowEncodedSlashes Off behaviour). Returns bytes written or -1.
 */
static long decode_component_ex(const char *in, size_t len, char *out, bool plus_is_space,
                                bool no_slash)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            int hi, lo;
            /* Refused: 1. fewer than two bytes left, 2. not hex, 3. %00. */
            if (i + 2 >= len)
                return -1;
            hi = hex_value(in[i + 1]);
            lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0) || (no_slash && hi == 2 && lo == 15))
                return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c < 0x20 || c == 0x7f) {
            return -1;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return (long)o;
}

static long decode_component(const char *in, size_t len, char *out, bool plus_is_space)
{
    return decode_component_ex(in, len, out, plus_is_space, false);
}

int fv_http_path_decode(const char *in, size_t len, char *out, size_t cap, size_t *ret_len)
{
    long n;

    if (len == 0 || in[0] != '/')
        return FV_E_INVALID;
    /* Decoding never grows the text, so len + 1 always suffices. */
    if (cap < len + 1) {
        char *tmp = fv_malloc(len + 1);
        if (tmp == NULL)
            return FV_E_NOMEM;
        n = decode_component_ex(in, len, tmp, false, true);
        if (n >= 0 && (size_t)n + 1 <= cap)
            memcpy(out, tmp, (size_t)n + 1);
        fv_free(tmp);
        if (n < 0)
            return FV_E_INVALID;
        if ((size_t)n + 1 > cap)
            return FV_E_LIMIT;
    } else {
        n = decode_component_ex(in, len, out, false, true);
        if (n < 0)
            return FV_E_INVALID;
    }
    *ret_len = (size_t)n;
    return FV_OK;
}

void fv_http_query_release(struct fv_http_query *q)
{
    FV_FREE(q->storage);
    q->n = 0;
}

const char *fv_http_query_get(const struct fv_http_query *q, const char *k)
{
    for (size_t i = 0; i < q->n; i++) {
        if (strcmp(q->params[i].k, k) == 0)
            return q->params[i].v;
    }
    return NULL;
}

int fv_http_query_parse(struct fv_http_query *q, const char *raw, size_t len)
{
    int rc = FV_OK;
    char *storage = NULL;
    size_t o = 0, n = 0;
    size_t i = 0;

    q->storage = NULL;
    q->n = 0;
    if (len == 0)
        return FV_OK;
    /* Each item decodes to at most its own length plus a NUL per k and v. */
    storage = fv_malloc(len + 2 * (len / 2 + 1) + 2);
    if (storage == NULL) {
        rc = FV_E_NOMEM;
        goto out;
    }
    while (i < len) {
        const char *item = raw + i;
        const char *amp = memchr(item, '&', len - i);
        size_t item_len = amp != NULL ? (size_t)(amp - item) : len - i;
        const char *eq = memchr(item, '=', item_len);
        size_t k_len = eq != NULL ? (size_t)(eq - item) : item_len;
        long dk, dv;

        i += item_len + 1;
        if (item_len == 0)
            continue;
        if (n == FV_HTTP_QUERY_MAX) {
            rc = FV_E_LIMIT;
            goto out;
        }
        dk = decode_component(item, k_len, storage + o, true);
        if (dk < 0) {
            rc = FV_E_INVALID;
            goto out;
        }
        q->params[n].k = storage + o;
        o += (size_t)dk + 1;
        if (eq != NULL)
            dv = decode_component(eq + 1, item_len - k_len - 1, storage + o, true);
        else
            dv = decode_component("", 0, storage + o, true);
        if (dv < 0) {
            rc = FV_E_INVALID;
            goto out;
        }
        q->params[n].v = storage + o;
        o += (size_t)dv + 1;
        n++;
    }
    q->storage = storage;
    q->n = n;
    storage = NULL;
out:
    fv_free(storage);
    if (rc != FV_OK)
        q->n = 0;
    return rc;
}

/* Host names we put into a Location header: DNS names and IPv4 literals. */
static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
}

/*
 * Split a Host header (or the authority of public_url) into host, without
 * port. Validates the host. *ret_host is a view of the host in h,
 * *ret_port of the explicit port (len 0 if none).
 */
static int split_authority(const char *h, size_t len, struct fv_str *ret_host,
                           struct fv_str *ret_port)
{
    struct fv_str host = {h, 0}, port = {NULL, 0};

    if (len == 0)
        return FV_E_INVALID;
    if (h[0] == '[') {
        const char *close = memchr(h, ']', len);
        if (close == NULL)
            return FV_E_INVALID;
        host.len = (size_t)(close - h) + 1;
        for (size_t i = 1; i + 1 < host.len; i++) {
            char c = h[i];
            if (!(hex_value(c) >= 0 || c == ':' || c == '.'))
                return FV_E_INVALID;
        }
        if (host.len < 4) /* "[::]" at least */
            return FV_E_INVALID;
    } else {
        while (host.len < len && h[host.len] != ':')
            host.len++;
        if (host.len == 0 || host.len > 253)
            return FV_E_INVALID;
        for (size_t i = 0; i < host.len; i++) {
            if (!host_char_ok(h[i]))
                return FV_E_INVALID;
        }
    }
    if (host.len < len) {
        if (h[host.len] != ':')
            return FV_E_INVALID;
        port.p = h + host.len + 1;
        port.len = len - host.len - 1;
        if (port.len == 0 || port.len > 5)
            return FV_E_INVALID;
        for (size_t i = 0; i < port.len; i++) {
            if (port.p[i] < '0' || port.p[i] > '9')
                return FV_E_INVALID;
        }
    }
    *ret_host = host;
    *ret_port = port;
    return FV_OK;
}

static int append_target(struct fv_buf *out, const char *raw_uri)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = FV_OK;

    if (raw_uri == NULL || raw_uri[0] != '/')
        return fv_buf_append(out, "/", 1);
    /* "//evil.example" as a path would still be under our authority, but be tidy. */
    for (const unsigned char *p = (const unsigned char *)raw_uri; *p != '\0' && rc == FV_OK; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '\\') {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 0x0f]};
            rc = fv_buf_append(out, esc, sizeof(esc));
        } else {
            rc = fv_buf_append(out, p, 1);
        }
    }
    return rc;
}

int fv_http_redirect_url_build(const char *public_url, const char *host_header, int https_port,
                               const char *raw_uri, struct fv_buf *out)
{
    int rc = FV_OK;
    struct fv_str host, port;

    if (public_url != NULL && public_url[0] != '\0') {
        static const char scheme[] = "https://";
        const char *auth = public_url + sizeof(scheme) - 1;
        size_t auth_len;

        if (strncmp(public_url, scheme, sizeof(scheme) - 1) != 0)
            return FV_E_INVALID;
        auth_len = strcspn(auth, "/?#");
        rc = split_authority(auth, auth_len, &host, &port);
        if (rc != FV_OK)
            return rc;
        rc = fv_buf_append_cstr(out, scheme);
        if (rc != FV_OK)
            return rc;
        rc = fv_buf_append(out, auth, auth_len);
        if (rc != FV_OK)
            return rc;
        return append_target(out, raw_uri);
    }

    if (host_header == NULL)
        return FV_E_INVALID;
    if (https_port <= 0 || https_port > 65535)
        return FV_E_INVALID;
    rc = split_authority(host_header, strlen(host_header), &host, &port);
    if (rc != FV_OK)
        return rc;
    rc = fv_buf_append_cstr(out, "https://");
    if (rc != FV_OK)
        return rc;
    rc = fv_buf_append(out, host.p, host.len);
    if (rc != FV_OK)
        return rc;
    if (https_port != 443) {
        rc = fv_buf_appendf(out, ":%d", https_port);
        if (rc != FV_OK)
            return rc;
    }
    return append_target(out, raw_uri);
}
