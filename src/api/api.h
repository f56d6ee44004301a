/*
 * api: the Creator v2.1 data and meta API (creator-api.md) over the store,
 * independent of the HTTP library: the http module turns a connection into
 * a struct fv_api_request, calls fv_api_handle(), and writes the
 * struct fv_api_response back. Also the CSV import used by the CLI.
 *
 * Every failure is an enum fv_err mapped to HTTP status and Creator `code`
 * in one table (api/error_map.c, STYLE 13); handlers never pick statuses.
 * Thread-safety: fv_api_handle may run on many threads at once.
 */
#ifndef FV_API_H
#define FV_API_H

#include "core/core.h"
#include "store/store.h"

struct fv_api; /* shared, read-only after creation */

/* Callbacks into the HTTP layer for one request (borrowed strings). */
struct fv_api_request {
    const char *method;     /* "GET", "POST", "PATCH", "DELETE", ... */
    const char *path;       /* URL path, percent-decoded, no query string */
    const char *body;       /* request body, may be NULL */
    size_t body_len;        /* bytes */
    bool body_too_large;    /* body exceeded max_body_bytes and was dropped */
    const char *request_id; /* unique per request, for logs */
    const char *client_ip;
    void *conn; /* opaque for the callbacks */
    /* header by case-insensitive name, NULL if absent */
    const char *(*header)(void *conn, const char *name);
    /* query parameter by name (decoded), NULL if absent */
    const char *(*query)(void *conn, const char *name);
    /* calls fn for every query parameter; stops when fn returns false */
    void (*query_each)(void *conn, bool (*fn)(void *arg, const char *k, const char *v), void *arg);
};

#define FV_API_MAX_HEADERS 4
struct fv_api_response {
    int status; /* HTTP status */
    char *body; /* fv_malloc'd, owned by the response */
    size_t body_len;
    const char *content_type; /* static string */
    struct {
        const char *name; /* static string */
        char value[320];
    } headers[FV_API_MAX_HEADERS];
    size_t n_headers;
    /* for the access log and metrics */
    const char *route; /* static route template, e.g. "data.report.get" */
    char tenant[FV_MODEL_LINK_MAX + 1];
    int creator_code;
};

/* Fields of struct fv_api_response start zeroed; release frees body. */
void fv_api_response_init(struct fv_api_response *r);
void fv_api_response_release(struct fv_api_response *r);

/*
 * Create the API context over an open store (borrowed; must outlive it).
 * Errors: FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_api_new(const struct fv_config *cfg, struct fv_store *store,
                             struct fv_api **ret);
void fv_api_free(struct fv_api *api);

/*
 * Handle one public-listener request; always fills resp (a JSON error body
 * on failure). Never blocks on another tenant's writes.
 */
void fv_api_handle(struct fv_api *api, const struct fv_api_request *req,
                   struct fv_api_response *resp);

/* Map an fv_err to HTTP status and Creator code (the one table). */
void fv_api_error_map(int rc, int *ret_status, int *ret_creator_code);

/*
 * The Creator code of one record's outcome inside a multi-record `result`
 * (3000, 8011, 8012, else 3001), derived from the same table.
 */
int fv_api_error_record_code(int rc);

/* False while the node's KEK is unreachable (an HSM gone): /readyz says so. */
bool fv_api_keys_ok(struct fv_api *api);

/* ------------------------------------------------------------ API tokens */

/*
 * Create an API token for a tenant with comma-separated Creator scopes,
 * expiring after ttl_s seconds (0 = never). The token text (written to
 * ret_token, cap >= 64) is shown once; only its SHA-256 hash is stored.
 * Errors: FV_E_INVALID (unknown scope: reterr names it), FV_E_NO_OWNER,
 * FV_E_IO, FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_api_token_create(struct fv_store *s, const char *tenant, const char *scopes,
                                      int64_t ttl_s, const char *label, char *ret_token, size_t cap,
                                      struct fv_error *reterr);

/* ------------------------------------------------------------ CSV import */

struct fv_api_import_stats {
    size_t rows;     /* data rows read */
    size_t imported; /* rows written */
    size_t failed;   /* rows rejected (reported through the callback) */
};

/*
 * Import a CSV file (RFC 4180, libcsv) into tenant/app/form. The header row
 * maps to fields by link name, else by display name; an unknown column is
 * FV_E_INVALID before anything is written. Each row is validated with the
 * field rules; failing rows are reported through on_error (1-based data row
 * number with the header as row 1, as in a spreadsheet, and the message) and
 * skipped, valid rows are kept.
 * Rows are committed in batches; each row is whole or absent. progress (may
 * be NULL) is called about every 250 ms with bytes done and total.
 * Errors: FV_E_IO, FV_E_INVALID, FV_E_NO_OWNER, FV_E_NO_APP, FV_E_NO_FORM,
 * FV_E_NOMEM.
 */
FV_MUST_CHECK int
fv_api_import_csv(struct fv_store *s, const char *tenant, const char *app, const char *form,
                  const char *path, void (*on_error)(void *arg, size_t row, const char *msg),
                  void (*progress)(void *arg, uint64_t done, uint64_t total, size_t rows),
                  void *arg, struct fv_api_import_stats *ret_stats, struct fv_error *reterr);

#endif
