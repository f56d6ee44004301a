/*
 * http_int.h: declarations shared by the files of src/http/ only. Other
 * modules include "http/http.h", never this file.
 */
#ifndef FV_HTTP_INT_H
#define FV_HTTP_INT_H

#include "http/http.h"

/*
 * Write offload (README "Write offload"): pending write jobs allowed per
 * write thread before the public listener answers 503 (STYLE 32), and how
 * long fv_http_server_stop waits for offloaded answers to reach their
 * clients before it closes the connections.
 */
#define FV_HTTP_WRITE_QUEUE_PER_THREAD 4
#define FV_HTTP_DRAIN_WAIT_MS 2000
/* Body of the 503 sent when the write queue is full (status and code from
 * fv_api_error_map(FV_E_BUSY): 503, 2930). */
#define FV_HTTP_BUSY_MESSAGE "server busy, retry"

/* Query parameters accepted per request; more is a 400 (STYLE 32). */
#define FV_HTTP_QUERY_MAX 64

/* One decoded query parameter; k and v point into the query's storage. */
struct fv_http_query_param {
    const char *k;
    const char *v;
};

/* Decoded query string of one request; release with fv_http_query_release. */
struct fv_http_query {
    char *storage; /* fv_malloc'd: all decoded keys and values, NUL-separated */
    struct fv_http_query_param params[FV_HTTP_QUERY_MAX];
    size_t n;
};

/*
 * Parse and percent-decode a raw query string (without '?') of len bytes:
 * '&'-separated "k=v" or "k" (v = ""), '+' decodes to ' ', empty items are
 * skipped. Refuses malformed escapes, %00 and control bytes (FV_E_INVALID)
 * and more than FV_HTTP_QUERY_MAX parameters (FV_E_LIMIT); FV_E_NOMEM.
 * On success q owns its storage; on failure q is left empty.
 */
FV_MUST_CHECK int fv_http_query_parse(struct fv_http_query *q, const char *raw, size_t len);
void fv_http_query_release(struct fv_http_query *q);
/* First value of key k, or NULL. */
const char *fv_http_query_get(const struct fv_http_query *q, const char *k);

#endif
