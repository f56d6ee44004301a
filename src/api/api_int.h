/* api/api_int.h: private declarations of the api module. */
#ifndef FV_API_INT_H
#define FV_API_INT_H

#include <jansson.h>
#include <gnutls/crypto.h>
#include <pthread.h>

#include "api/api.h"
#include "auth/auth.h"

#define API_MAX_SEGMENTS 12
#define API_TOKEN_CACHE 256 /* entries, power of two */
#define API_TOKEN_CACHE_TTL_MS 5000

struct token_cache_entry {
    uint8_t hash[FV_AUTH_TOKEN_HASH_BYTES];
    bool used;
    int64_t tenant_id;
    unsigned scopes;
    int64_t expires_ms;
    int64_t token_id;
    int64_t cached_ms;
    char tenant_name[FV_MODEL_LINK_MAX + 1]; /* "" until first resolved */
};

struct fv_api {
    const struct fv_config *cfg;
    struct fv_store *store;
    pthread_mutex_t token_lock;
    struct token_cache_entry tokens[API_TOKEN_CACHE];
    gnutls_aead_cipher_hd_t cursor_aead; /* seals record_cursor (cursor.c) */
    pthread_mutex_t cursor_lock;
};

/* The authenticated caller of one request. */
struct api_caller {
    int64_t tenant_id;
    int64_t token_id;
    unsigned scopes;
    char actor[40];                          /* "token:<id>" */
    size_t cache_slot;                       /* token cache slot of this token */
    uint8_t hash[FV_AUTH_TOKEN_HASH_BYTES];  /* token digest (not secret by itself) */
    char tenant_name[FV_MODEL_LINK_MAX + 1]; /* from the cache, may be "" */
};

/* Per-request state shared by the handlers. */
struct api_ctx {
    struct fv_api *api;
    const struct fv_api_request *req;
    struct fv_api_response *resp;
    struct api_caller caller;
    struct fv_tenant *tenant; /* acquired, released by the dispatcher */
    const struct fv_app *app; /* borrowed from tenant */
    struct fv_error err;      /* message for the client */
    json_t *body;             /* parsed request body or NULL */
};

/* Set the response to a JSON document (steals the reference). */
int api_reply_json(struct api_ctx *c, int rc, json_t *doc);
/* Set the response to the error body for rc, message from c->err if set. */
void api_reply_error(struct api_ctx *c, int rc);
/* Add a response header (name static). */
void api_reply_header(struct api_ctx *c, const char *name, const char *value);

/* Parse the request body as a JSON object into c->body (FV_E_BODY...). */
int api_body_parse(struct api_ctx *c, bool required);

/* Handlers (data.c, meta.c); each returns FV_OK after filling the reply. */
int api_data_add(struct api_ctx *c, const char *form);
int api_data_report_get(struct api_ctx *c, const char *report);
int api_data_record_get(struct api_ctx *c, const char *report, const char *id);
int api_data_record_update(struct api_ctx *c, const char *report, const char *id);
int api_data_record_delete(struct api_ctx *c, const char *report, const char *id);
int api_data_report_update(struct api_ctx *c, const char *report);
int api_data_report_delete(struct api_ctx *c, const char *report);

int api_meta_applications(struct api_ctx *c, const char *owner);
int api_meta_forms(struct api_ctx *c);
int api_meta_reports(struct api_ctx *c);
int api_meta_pages(struct api_ctx *c);
int api_meta_fields(struct api_ctx *c, const char *form);

/* Check that only the named query parameters are present (NULL-terminated). */
int api_query_allow(struct api_ctx *c, const char *const *allowed);

/*
 * record_cursor sealing (cursor.c): init makes a random AES-256-GCM key;
 * seal writes base64(nonce || ciphertext || tag) of plain into out[cap],
 * bound to the report name (FV_E_LIMIT if it does not fit); open reverses it
 * and returns FV_E_CURSOR for anything forged, truncated, from another report
 * or from before a restart.
 */
int api_cursor_init(struct fv_api *api);
void api_cursor_release(struct fv_api *api);
int api_cursor_seal(struct fv_api *api, int64_t tenant_id, const char *app, const char *report,
                    const char *plain, char *out, size_t cap);
int api_cursor_open(struct fv_api *api, int64_t tenant_id, const char *app, const char *report,
                    const char *sealed, char *out, size_t cap);

/* Copy a client message keeping printable ASCII, other bytes as '?'. */
void api_message_sanitize(const char *in, char *out, size_t cap);

/* Maximum nesting depth of a JSON value. */
int api_json_depth(const json_t *v);

#endif
