/*
 * http/server.c: the three listeners (public HTTPS, plain-HTTP redirect,
 * operator HTTPS) on libmicrohttpd. See http.h for the contract and
 * README.md for invariants, the TLS settings and the measured pitfalls.
 *
 * Per request, MHD calls:
 *   1. uri_log_cb: first, with the raw request target; we allocate the
 *      request context there (it becomes *req_cls) and keep the raw target,
 *      which we decode strictly ourselves (url.c);
 *   2. access_cb, first call: marks the context started and returns. We
 *      never queue a response here for a normal request: with MHD 0.9.75
 *      that turns off keep-alive (notes/libmicrohttpd.md, pitfall 1);
 *   3. access_cb with upload data: appended to a buffer bounded by
 *      max_body_bytes;
 *   4. access_cb final call (*upload_data_size == 0): dispatch, queue;
 *      a write on the public listener is instead handed to a write thread
 *      and the connection suspended; the write thread runs the api, keeps
 *      the response in the context and resumes the connection, and MHD
 *      calls access_cb once more, which queues it (README "Write offload");
 *   5. completed_cb: metrics and the one access-log line, then free.
 */
#include "http/http_int.h"
#include "ops/ops.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if MHD_VERSION < 0x00097302
#error "libmicrohttpd >= 0.9.73 is required (MHD_create_response_from_buffer_with_free_callback)"
#endif

/* Operator and redirect listeners are small and rarely busy. */
#define OPERATOR_POOL_SIZE 2
#define SIDE_CONNECTION_LIMIT 256
/* Largest /metrics exposition we render. */
#define METRICS_MAX (4 * 1024 * 1024)
/*
 * After a body is known to be too large we keep reading (and dropping) at
 * most this much more before closing the connection, so a client that
 * streams forever cannot hold a worker's attention indefinitely.
 */
#define DISCARD_MAX (8ULL * 1024 * 1024)

enum listener_kind { LISTENER_PUBLIC, LISTENER_REDIRECT, LISTENER_OPERATOR };

struct listener {
    enum listener_kind kind;
    struct fv_http_server *server;
    struct MHD_Daemon *daemon;
    int port; /* actually bound */
};

struct req_ctx;

/*
 * Write offload: a bounded ring of suspended requests and the threads that
 * run them. mu guards ring, head, n and stopping; inflight (atomic) counts
 * offloaded requests whose context MHD has not freed yet.
 */
struct write_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a job was added, or stopping was set */
    bool sync_init;    /* mu and cv initialized */
    struct req_ctx **ring;
    size_t cap, head, n;
    bool stopping;
    pthread_t *threads;
    size_t n_threads; /* started, not yet joined */
    bool enabled;     /* all threads started; set before the listener starts,
                         never changed after: read without the lock */
    atomic_size_t inflight;
};

struct fv_http_server {
    const struct fv_config *cfg;
    struct fv_api *api;
    char *cert_pem;
    char *key_pem; /* wiped on stop */
    char cert_sha256[96];
    atomic_bool ready;
    struct listener pub;
    struct listener redirect;
    struct listener op;
    struct write_pool wp;
};

/* Offload state of a request (req_ctx.job). */
enum { JOB_NONE, JOB_QUEUED, JOB_DONE };

/* One request header as MHD holds it (strings in MHD's connection pool). */
struct hdr {
    const char *k;
    const char *v;
};

struct req_ctx {
    struct listener *l;
    struct MHD_Connection *conn;
    int64_t start_ns;
    char *raw_uri; /* as received: never logged (may hold query values) */
    bool started;
    bool too_large;
    bool queued;
    bool aborted; /* closed without a response; logged with status and route */
    uint64_t discarded;
    struct fv_buf body;
    struct fv_http_query query;
    char request_id[17];
    char client_ip[INET6_ADDRSTRLEN];
    /* for the access log and metrics, filled when the response is queued */
    const char *method; /* static */
    const char *route;  /* static */
    int status;
    int creator_code;
    char tenant[FV_MODEL_LINK_MAX + 1];
    /*
     * Write offload. path: decoded, fv_malloc'd. hdrs: every request header,
     * taken on the MHD thread before the hand-off so the write thread never
     * calls into MHD for the connection (MHD documents no thread-safety for
     * MHD_lookup_connection_value); the strings stay valid and untouched
     * while the connection is suspended. resp: filled by the write thread,
     * read by the MHD thread once job is JOB_DONE (release/acquire).
     */
    bool offloaded;
    atomic_int job;
    char *path;
    struct hdr *hdrs;
    size_t n_hdrs;
    bool hdrs_taken;
    struct fv_api_response resp;
};

/* --------------------------------------------------------------- helpers */

/* A method name safe for logs and metrics: known ones, else "OTHER". */
static const char *method_static(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < FV_ARRAY_LEN(known); i++) {
        if (strcmp(m, known[i]) == 0)
            return known[i];
    }
    return "OTHER";
}

static bool is_get_or_head(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

static void client_ip_fill(struct req_ctx *ctx)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ctx->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

    (void)fv_strlcpy(ctx->client_ip, "unknown", sizeof(ctx->client_ip));
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        (void)inet_ntop(AF_INET, &in->sin_addr, ctx->client_ip, sizeof(ctx->client_ip));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        (void)inet_ntop(AF_INET6, &in6->sin6_addr, ctx->client_ip, sizeof(ctx->client_ip));
    }
}

static void request_id_fill(char out[17])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[8];

    fv_random_bytes(r, sizeof(r));
    for (size_t i = 0; i < sizeof(r); i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 0x0f];
    }
    out[16] = '\0';
}

/* Append s as a JSON string body (without quotes). */
static int json_escape_append(struct fv_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = FV_OK;

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && rc == FV_OK; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            rc = fv_buf_append(b, e, 2);
        } else if (*p < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 0x0f]};
            rc = fv_buf_append(b, e, 6);
        } else {
            rc = fv_buf_append(b, p, 1);
        }
    }
    return rc;
}

/*
 * Create the MHD response for body (takes ownership: fv_malloc'd or NULL)
 * and add the headers every response carries. NULL on allocation failure
 * (body is freed then too).
 */
static struct MHD_Response *response_new(struct req_ctx *ctx, char *body, size_t len,
                                         const char *content_type)
{
    struct MHD_Response *r;
    bool ok = true;

    if (body != NULL) {
        r = MHD_create_response_from_buffer_with_free_callback(len, body, fv_free);
        if (r == NULL)
            fv_free(body);
    } else {
        r = MHD_create_response_from_buffer(0, (void *)(uintptr_t) "", MHD_RESPMEM_PERSISTENT);
    }
    if (r == NULL)
        return NULL;
    if (content_type != NULL)
        ok =
            ok && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES;
    if (ctx->l->kind != LISTENER_REDIRECT) {
        /* HSTS is meaningful (and honoured) only over TLS. */
        ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_STRICT_TRANSPORT_SECURITY,
                                           "max-age=63072000; includeSubDomains") == MHD_YES;
    }
    ok = ok && MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") == MHD_YES;
    ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_YES;
    ok = ok && MHD_add_response_header(r, "X-Request-Id", ctx->request_id) == MHD_YES;
    if (!ok) {
        MHD_destroy_response(r);
        return NULL;
    }
    return r;
}

static enum MHD_Result queue(struct req_ctx *ctx, struct MHD_Response *r, int status,
                             const char *route)
{
    enum MHD_Result ret;

    if (r == NULL)
        return MHD_NO; /* out of memory: MHD closes the connection */
    ret = MHD_queue_response(ctx->conn, (unsigned int)status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES) {
        ctx->queued = true;
        ctx->status = status;
        ctx->route = route;
    }
    return ret;
}

/*
 * Answer with the API error shape {"code":N,"message":"..."}; status and
 * Creator code come from the api's one table (STYLE 13).
 */
static enum MHD_Result queue_error(struct req_ctx *ctx, int rc, const char *route)
{
    struct fv_buf b;
    int status = 500, code = 0;
    char *body;
    size_t len;

    fv_api_error_map(rc, &status, &code);
    fv_buf_init(&b, 1024);
    if (fv_buf_appendf(&b, "{\"code\":%d,\"message\":\"", code) != FV_OK ||
        json_escape_append(&b, fv_err_describe(rc)) != FV_OK ||
        fv_buf_append_cstr(&b, "\"}") != FV_OK)
        return MHD_NO;
    body = fv_buf_detach(&b, &len);
    ctx->creator_code = code;
    return queue(ctx, response_new(ctx, body, len, "application/json;charset=UTF-8"), status,
                 route);
}

/* --------------------------------------------------- api request callbacks */

static const char *req_header(void *conn, const char *name)
{
    struct req_ctx *ctx = conn;

    if (!ctx->hdrs_taken)
        return MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND, name);
    /* Same answer as MHD's lookup: the first header of that name, any case. */
    for (size_t i = 0; i < ctx->n_hdrs; i++) {
        if (strcasecmp(ctx->hdrs[i].k, name) == 0)
            return ctx->hdrs[i].v;
    }
    return NULL;
}

static enum MHD_Result hdr_take_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct req_ctx *ctx = cls;

    (void)kind;
    if (key != NULL && value != NULL) {
        ctx->hdrs[ctx->n_hdrs].k = key;
        ctx->hdrs[ctx->n_hdrs].v = value;
        ctx->n_hdrs++;
    }
    return MHD_YES;
}

/* Take every request header into ctx->hdrs, in received order. FV_E_NOMEM. */
static int hdrs_take(struct req_ctx *ctx)
{
    int n = MHD_get_connection_values(ctx->conn, MHD_HEADER_KIND, NULL, NULL);

    if (n > 0) {
        ctx->hdrs = fv_calloc((size_t)n, sizeof(*ctx->hdrs));
        if (ctx->hdrs == NULL)
            return FV_E_NOMEM;
        ctx->n_hdrs = 0;
        /* The same list, so the same count: the callback cannot overflow. */
        (void)MHD_get_connection_values(ctx->conn, MHD_HEADER_KIND, hdr_take_one, ctx);
        FV_ASSERT(ctx->n_hdrs <= (size_t)n);
    }
    ctx->hdrs_taken = true;
    return FV_OK;
}

static const char *req_query(void *conn, const char *name)
{
    struct req_ctx *ctx = conn;
    return fv_http_query_get(&ctx->query, name);
}

static void req_query_each(void *conn, bool (*fn)(void *arg, const char *k, const char *v),
                           void *arg)
{
    struct req_ctx *ctx = conn;
    for (size_t i = 0; i < ctx->query.n; i++) {
        if (!fn(arg, ctx->query.params[i].k, ctx->query.params[i].v))
            return;
    }
}

/* ------------------------------------------------------------ listeners */

static bool is_write(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0 ||
           strcmp(m, "PUT") == 0;
}

/* Run the api for a request whose path and query are decoded (ctx->path). */
static void api_run(struct req_ctx *ctx, const char *method, struct fv_api_response *resp)
{
    struct fv_api_request req;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = ctx->path;
    req.body = ctx->too_large ? NULL : ctx->body.p;
    req.body_len = ctx->too_large ? 0 : ctx->body.len;
    req.body_too_large = ctx->too_large;
    req.request_id = ctx->request_id;
    req.client_ip = ctx->client_ip;
    req.conn = ctx;
    req.header = req_header;
    req.query = req_query;
    req.query_each = req_query_each;
    fv_api_handle(ctx->l->server->api, &req, resp);
}

/* Queue the api's answer (resp->body is taken; resp is released). */
static enum MHD_Result respond_api(struct req_ctx *ctx, struct fv_api_response *resp)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    ctx->creator_code = resp->creator_code;
    (void)fv_strlcpy(ctx->tenant, resp->tenant, sizeof(ctx->tenant));
    r = response_new(ctx, resp->body, resp->body_len, resp->content_type);
    resp->body = NULL; /* owned by r now, or freed by response_new */
    for (size_t i = 0; r != NULL && i < resp->n_headers && i < FV_API_MAX_HEADERS; i++) {
        const char *v = resp->headers[i].value;
        /* Never let a value split the header block. */
        if (resp->headers[i].name == NULL || strpbrk(v, "\r\n") != NULL)
            continue;
        if (MHD_add_response_header(r, resp->headers[i].name, v) != MHD_YES) {
            MHD_destroy_response(r);
            r = NULL;
        }
    }
    /* A status MHD would refuse means an api bug: answer 500, not a hang-up. */
    if (resp->status < 100 || resp->status > 599) {
        fv_log(FV_LOG_ERROR, "http: api returned invalid status %d, sending 500", resp->status);
        resp->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    ret = queue(ctx, r, resp->status, resp->route != NULL ? resp->route : "unknown");
    fv_api_response_release(resp);
    return ret;
}

/*
 * The write queue is full (or the server is stopping): 503 in the api's
 * error shape, status and Creator code from the one table (STYLE 13).
 */
static enum MHD_Result queue_busy(struct req_ctx *ctx)
{
    struct fv_buf b;
    struct MHD_Response *r;
    int status = 503, code = 0;
    char *body;
    size_t len;

    fv_api_error_map(FV_E_BUSY, &status, &code);
    fv_buf_init(&b, 256);
    if (fv_buf_appendf(&b, "{\"code\":%d,\"message\":\"" FV_HTTP_BUSY_MESSAGE "\"}", code) != FV_OK)
        return MHD_NO;
    body = fv_buf_detach(&b, &len);
    ctx->creator_code = code;
    r = response_new(ctx, body, len, "application/json;charset=UTF-8");
    if (r != NULL && MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1") != MHD_YES) {
        MHD_destroy_response(r);
        r = NULL;
    }
    return queue(ctx, r, status, "http.busy");
}

/*
 * Hand a write to the write threads: suspend the connection, then enqueue
 * (in that order, under wp->mu: a job resumed before it was suspended would
 * cancel the suspension in MHD 0.9.75 and leave the connection stalled).
 * A full queue or a stopping server answers 503 at once instead.
 */
static enum MHD_Result offload(struct req_ctx *ctx)
{
    struct write_pool *wp = &ctx->l->server->wp;

    if (hdrs_take(ctx) != FV_OK)
        return MHD_NO;
    (void)pthread_mutex_lock(&wp->mu);
    if (wp->stopping || wp->n == wp->cap) {
        (void)pthread_mutex_unlock(&wp->mu);
        return queue_busy(ctx);
    }
    ctx->offloaded = true;
    atomic_store_explicit(&ctx->job, JOB_QUEUED, memory_order_relaxed);
    atomic_fetch_add(&wp->inflight, 1);
    MHD_suspend_connection(ctx->conn);
    wp->ring[(wp->head + wp->n) % wp->cap] = ctx;
    wp->n++;
    (void)pthread_cond_signal(&wp->cv);
    (void)pthread_mutex_unlock(&wp->mu);
    return MHD_YES;
}

static enum MHD_Result handle_public(struct req_ctx *ctx, const char *method)
{
    struct fv_http_server *s = ctx->l->server;
    struct fv_api_response resp;
    const char *raw = ctx->raw_uri;
    const char *qmark = strchr(raw, '?');
    size_t path_len = qmark != NULL ? (size_t)(qmark - raw) : strlen(raw);
    size_t decoded_len;
    int rc;

    if (s->api == NULL)
        return queue_error(ctx, FV_E_BUSY, "http.unavailable");

    ctx->path = fv_malloc(path_len + 1);
    if (ctx->path == NULL)
        return MHD_NO;
    rc = fv_http_path_decode(raw, path_len, ctx->path, path_len + 1, &decoded_len);
    if (rc == FV_OK && qmark != NULL)
        rc = fv_http_query_parse(&ctx->query, qmark + 1, strlen(qmark + 1));
    if (rc == FV_E_NOMEM)
        return MHD_NO;
    if (rc != FV_OK) {
        /* FV_E_INVALID (bad escape) or FV_E_LIMIT (too many parameters) */
        return queue_error(ctx, rc, "http.bad_request");
    }

    /*
     * Writes wait for a durable commit: run them on the write threads so
     * that many can share one fsync (group commit). A refused body (413) is
     * answered without the store, so inline.
     */
    if (s->wp.enabled && !ctx->too_large && is_write(method))
        return offload(ctx);

    fv_api_response_init(&resp);
    api_run(ctx, method, &resp);
    return respond_api(ctx, &resp);
}

/* ---------------------------------------------------------- write threads */

static void *write_thread(void *arg)
{
    struct write_pool *wp = arg;

    for (;;) {
        struct req_ctx *ctx;
        struct MHD_Connection *conn;

        (void)pthread_mutex_lock(&wp->mu);
        while (wp->n == 0 && !wp->stopping)
            (void)pthread_cond_wait(&wp->cv, &wp->mu);
        if (wp->n == 0) { /* stopping, and the queue is drained */
            (void)pthread_mutex_unlock(&wp->mu);
            break;
        }
        ctx = wp->ring[wp->head];
        wp->head = (wp->head + 1) % wp->cap;
        wp->n--;
        (void)pthread_mutex_unlock(&wp->mu);

        /* ctx->method is the static name, and equal to the request's: writes
         * are only offloaded for known methods. */
        fv_api_response_init(&ctx->resp);
        api_run(ctx, ctx->method, &ctx->resp);
        /* For completed_cb, should the client be gone when MHD resumes. */
        ctx->status = ctx->resp.status;
        ctx->route = ctx->resp.route != NULL ? ctx->resp.route : "unknown";
        conn = ctx->conn;
        atomic_store_explicit(&ctx->job, JOB_DONE, memory_order_release);
        /*
         * From here on MHD may answer, complete and free ctx at any moment:
         * do not touch it. MHD_resume_connection only flags the connection
         * under the daemon's lock and wakes its thread.
         */
        MHD_resume_connection(conn);
    }
    return NULL;
}

/*
 * Start n write threads with a queue of at least FV_HTTP_WRITE_QUEUE_PER_THREAD * n
 * and at least min_cap entries (the connection limit: a connection has at most
 * one request in the queue, so clients within the limit never see "busy").
 * Errors: FV_E_NOMEM, FV_E_INTERNAL (thread creation).
 */
static int write_pool_start(struct write_pool *wp, size_t n, size_t min_cap,
                            struct fv_error *reterr)
{
    int rc = FV_OK;

    atomic_init(&wp->inflight, 0);
    if (pthread_mutex_init(&wp->mu, NULL) != 0)
        return fv_error_set(reterr, FV_E_INTERNAL, SIZE_MAX, "cannot create the write queue lock");
    if (pthread_cond_init(&wp->cv, NULL) != 0) {
        (void)pthread_mutex_destroy(&wp->mu);
        return fv_error_set(reterr, FV_E_INTERNAL, SIZE_MAX, "cannot create the write queue lock");
    }
    wp->sync_init = true;
    wp->cap = n * FV_HTTP_WRITE_QUEUE_PER_THREAD;
    if (wp->cap < min_cap)
        wp->cap = min_cap;
    wp->ring = fv_calloc(wp->cap, sizeof(*wp->ring));
    wp->threads = fv_calloc(n, sizeof(*wp->threads));
    if (wp->ring == NULL || wp->threads == NULL) {
        rc = FV_E_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int e = pthread_create(&wp->threads[i], NULL, write_thread, wp);
        if (e != 0) {
            rc = fv_error_set(reterr, e == EAGAIN ? FV_E_NOMEM : FV_E_INTERNAL, SIZE_MAX,
                              "cannot start write thread %zu of %zu: %s", i + 1, n, strerror(e));
            goto out;
        }
        wp->n_threads++;
    }
    wp->enabled = true;
out:
    return rc; /* on failure write_pool_stop releases what was started */
}

/*
 * Refuse new jobs, let the threads finish every queued one (each resumes
 * its connection) and join them. Accepts a pool that never started.
 */
static void write_pool_stop(struct write_pool *wp)
{
    if (!wp->sync_init)
        return;
    (void)pthread_mutex_lock(&wp->mu);
    wp->stopping = true;
    (void)pthread_cond_broadcast(&wp->cv);
    (void)pthread_mutex_unlock(&wp->mu);
    for (size_t i = 0; i < wp->n_threads; i++)
        (void)pthread_join(wp->threads[i], NULL);
    wp->n_threads = 0;
}

static void write_pool_release(struct write_pool *wp)
{
    if (!wp->sync_init)
        return;
    FV_ASSERT(wp->n_threads == 0 && wp->n == 0);
    (void)pthread_cond_destroy(&wp->cv);
    (void)pthread_mutex_destroy(&wp->mu);
    wp->sync_init = false;
    FV_FREE(wp->ring);
    FV_FREE(wp->threads);
}

/*
 * Wait up to ms for the offloaded requests to be answered and completed, so
 * that a stop does not throw away a write's acknowledgement.
 */
static void write_pool_drain(struct write_pool *wp, int ms)
{
    const struct timespec tick = {0, 5 * 1000 * 1000};

    if (!wp->sync_init)
        return;
    for (int waited = 0; waited < ms && atomic_load(&wp->inflight) > 0; waited += 5)
        (void)nanosleep(&tick, NULL);
}

static enum MHD_Result handle_redirect(struct req_ctx *ctx, const char *method)
{
    struct fv_http_server *s = ctx->l->server;
    struct fv_buf loc;
    struct MHD_Response *r;
    const char *host = MHD_lookup_connection_value(ctx->conn, MHD_HEADER_KIND, "Host");
    int status = is_get_or_head(method) ? MHD_HTTP_MOVED_PERMANENTLY : MHD_HTTP_PERMANENT_REDIRECT;
    int rc;

    fv_buf_init(&loc, 16 * 1024);
    rc = fv_http_redirect_url_build(s->cfg->public_url, host, s->pub.port, ctx->raw_uri, &loc);
    if (rc == FV_E_NOMEM)
        return MHD_NO;
    if (rc != FV_OK) {
        fv_buf_release(&loc);
        return queue(ctx, response_new(ctx, NULL, 0, NULL), MHD_HTTP_BAD_REQUEST, "http.redirect");
    }
    r = response_new(ctx, NULL, 0, NULL);
    if (r != NULL && MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, loc.p) != MHD_YES) {
        MHD_destroy_response(r);
        r = NULL;
    }
    fv_buf_release(&loc);
    return queue(ctx, r, status, "http.redirect");
}

static enum MHD_Result queue_json(struct req_ctx *ctx, int status, const char *json,
                                  const char *route)
{
    char *body = fv_strdup(json);
    if (body == NULL)
        return MHD_NO;
    return queue(ctx, response_new(ctx, body, strlen(body), "application/json"), status, route);
}

static enum MHD_Result handle_operator(struct req_ctx *ctx, const char *method)
{
    struct fv_http_server *s = ctx->l->server;
    const char *raw = ctx->raw_uri;
    size_t path_len = strcspn(raw, "?");
    const char *route;

    if (path_len == 8 && strncmp(raw, "/healthz", 8) == 0)
        route = "ops.healthz";
    else if (path_len == 7 && strncmp(raw, "/readyz", 7) == 0)
        route = "ops.readyz";
    else if (path_len == 8 && strncmp(raw, "/metrics", 8) == 0)
        route = "ops.metrics";
    else
        return queue_json(ctx, MHD_HTTP_NOT_FOUND, "{\"status\":\"not found\"}", "ops.unknown");

    if (!is_get_or_head(method)) {
        struct MHD_Response *r = response_new(ctx, NULL, 0, NULL);
        if (r != NULL &&
            MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES) {
            MHD_destroy_response(r);
            r = NULL;
        }
        return queue(ctx, r, MHD_HTTP_METHOD_NOT_ALLOWED, route);
    }
    if (strcmp(route, "ops.healthz") == 0)
        return queue_json(ctx, MHD_HTTP_OK, "{\"status\":\"ok\"}", route);
    if (strcmp(route, "ops.readyz") == 0) {
        if (atomic_load(&s->ready) && s->api && !fv_api_keys_ok(s->api))
            return queue_json(ctx, MHD_HTTP_SERVICE_UNAVAILABLE,
                              "{\"status\":\"not ready\",\"reason\":\"kek unavailable\"}", route);
        if (atomic_load(&s->ready))
            return queue_json(ctx, MHD_HTTP_OK, "{\"status\":\"ready\"}", route);
        return queue_json(ctx, MHD_HTTP_SERVICE_UNAVAILABLE, "{\"status\":\"not ready\"}", route);
    }

    struct fv_buf b;
    char *body;
    size_t len;
    fv_buf_init(&b, METRICS_MAX);
    if (fv_ops_metrics_render(&b) != FV_OK) {
        fv_buf_release(&b);
        return MHD_NO;
    }
    body = fv_buf_detach(&b, &len);
    return queue(ctx, response_new(ctx, body, len, "text/plain; version=0.0.4; charset=utf-8"),
                 MHD_HTTP_OK, route);
}

/* -------------------------------------------------------- MHD callbacks */

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct listener *l = cls;
    struct req_ctx *ctx = fv_calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->start_ns = fv_time_mono_ns();
    atomic_init(&ctx->job, JOB_NONE);
    ctx->l = l;
    ctx->conn = conn;
    ctx->raw_uri = fv_strdup(uri != NULL ? uri : "");
    if (ctx->raw_uri == NULL) {
        fv_free(ctx);
        return NULL;
    }
    fv_buf_init(&ctx->body, (size_t)l->server->cfg->max_body_bytes);
    return ctx;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    struct listener *l = cls;
    struct req_ctx *ctx = *req_cls;

    (void)url; /* MHD's decoded copy: we decode ctx->raw_uri strictly instead */
    (void)version;
    if (ctx == NULL)
        return MHD_NO; /* uri_log_cb ran out of memory: close the connection */

    if (!ctx->started) {
        const char *cl;
        uint64_t declared;

        ctx->started = true;
        ctx->method = method_static(method);
        request_id_fill(ctx->request_id);
        client_ip_fill(ctx);
        if (l->kind != LISTENER_PUBLIC)
            return MHD_YES;
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && fv_parse_u64(cl, strlen(cl), &declared) == FV_OK &&
            declared > (uint64_t)l->server->cfg->max_body_bytes) {
            /*
             * Declared too large: answer now without reading the body. An
             * early response makes MHD close the connection afterwards,
             * which is what we want for a body we refuse to read (and a
             * client that sent Expect: 100-continue never sends it).
             */
            ctx->too_large = true;
            return handle_public(ctx, method);
        }
        return MHD_YES;
    }

    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ctx->queued)
            return MHD_YES; /* early answer queued; MHD drops the rest */
        if (l->kind != LISTENER_PUBLIC || ctx->too_large) {
            ctx->discarded += n;
            if (ctx->discarded <= DISCARD_MAX)
                return MHD_YES;
            /*
             * Enough. MHD 0.9.75 refuses to queue a response while a body is
             * still arriving (measured), so close the connection; the access
             * log still gets a line.
             */
            ctx->aborted = true;
            ctx->status = MHD_HTTP_CONTENT_TOO_LARGE;
            ctx->route = "http.body_aborted";
            return MHD_NO;
        }
        int rc = fv_buf_append(&ctx->body, upload_data, n);
        if (rc == FV_E_LIMIT) {
            ctx->too_large = true; /* the buffer freed itself */
        } else if (rc != FV_OK) {
            return MHD_NO;
        }
        return MHD_YES;
    }

    if (ctx->offloaded) {
        /* Called again after the write thread resumed the connection. */
        if (atomic_load_explicit(&ctx->job, memory_order_acquire) != JOB_DONE || ctx->queued)
            return MHD_YES;
        return respond_api(ctx, &ctx->resp);
    }
    if (ctx->queued)
        return MHD_YES;
    switch (l->kind) {
    case LISTENER_PUBLIC:
        return handle_public(ctx, method);
    case LISTENER_REDIRECT:
        return handle_redirect(ctx, method);
    case LISTENER_OPERATOR:
        return handle_operator(ctx, method);
    }
    return MHD_NO;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req_ctx *ctx = *req_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (ctx == NULL)
        return;
    *req_cls = NULL;
    /*
     * MHD never completes a suspended connection (we never stop a daemon
     * with one), so a queued job here would be a use-after-free to come.
     */
    FV_ASSERT(atomic_load_explicit(&ctx->job, memory_order_acquire) != JOB_QUEUED);
    /* An offloaded write whose client left before the answer is still logged:
     * it was performed. */
    if (ctx->queued || ctx->aborted || (ctx->offloaded && ctx->route != NULL)) {
        int64_t dur = fv_time_mono_ns() - ctx->start_ns;
        struct fv_log_request lr = {
            .request_id = ctx->request_id,
            .method = ctx->method,
            .route = ctx->route,
            .tenant = ctx->tenant[0] != '\0' ? ctx->tenant : NULL,
            .status = ctx->status,
            .creator_code = ctx->creator_code,
            .duration_ms = (double)dur / 1e6,
        };
        fv_ops_metrics_observe(ctx->route, ctx->status, dur);
        fv_log_request(&lr);
    }
    if (ctx->offloaded) {
        fv_api_response_release(&ctx->resp); /* not queued: client gone */
        atomic_fetch_sub(&ctx->l->server->wp.inflight, 1);
    }
    fv_free(ctx->hdrs);
    fv_free(ctx->path);
    fv_http_query_release(&ctx->query);
    fv_buf_release(&ctx->body);
    fv_free(ctx->raw_uri);
    fv_free(ctx);
}

FV_PRINTF(2, 0)
static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    /* TLS handshake failures from scanners are routine: debug only. */
    fv_log(FV_LOG_DEBUG, "mhd: %s", msg);
}

/* --------------------------------------------------------------- sockets */

static const char *listen_errstr(int err)
{
    switch (err) {
    case EADDRINUSE:
        return "address in use";
    case EACCES:
        return "permission denied";
    case EADDRNOTAVAIL:
        return "address not available on this host";
    default:
        return strerror(err);
    }
}

/*
 * Bind and listen on addr:port (addr an IPv4 or IPv6 literal, IPv6 with or
 * without brackets). The unspecified IPv6 address "::" also accepts IPv4;
 * any other IPv6 address is IPv6 only. On success *ret_fd is a
 * non-blocking listening socket and *ret_port its bound port.
 */
static int listen_socket_open(const char *addr, int port, int *ret_fd, int *ret_port,
                              struct fv_error *reterr)
{
    int rc = FV_OK;
    int fd = -1;
    char host[64], port_s[16];
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof(ss);
    int one = 1;
    size_t alen = strlen(addr);
    bool v6;

    if (alen >= 2 && addr[0] == '[' && addr[alen - 1] == ']') {
        if (alen - 2 >= sizeof(host)) {
            rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "bind address '%s' too long", addr);
            goto out;
        }
        memcpy(host, addr + 1, alen - 2);
        host[alen - 2] = '\0';
    } else if (fv_strlcpy(host, addr[0] != '\0' ? addr : "0.0.0.0", sizeof(host)) != FV_OK) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "bind address '%s' too long", addr);
        goto out;
    }
    v6 = strchr(host, ':') != NULL;
    (void)snprintf(port_s, sizeof(port_s), "%d", port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    if (port < 0 || port > 65535 || getaddrinfo(host, port_s, &hints, &ai) != 0 || ai == NULL) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "cannot listen on %s%s%s:%d: not an IPv4 or IPv6 address literal",
                          v6 ? "[" : "", host, v6 ? "]" : "", port);
        goto out;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto fail;
    /* Restart while old connections sit in TIME_WAIT; not SO_REUSEPORT, so
     * a second server on the same port still fails with "address in use". */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        goto fail;
    if (ai->ai_family == AF_INET6) {
        int v6only = strcmp(host, "::") == 0 ? 0 : 1;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0)
            goto fail;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0)
        goto fail;
    if (getsockname(fd, (struct sockaddr *)&ss, &ss_len) != 0)
        goto fail;
    *ret_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    *ret_fd = fd;
    fd = -1;
    goto out;
fail:
    rc = fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot listen on %s%s%s:%d: %s", v6 ? "[" : "",
                      host, v6 ? "]" : "", port, listen_errstr(errno));
out:
    if (ai != NULL)
        freeaddrinfo(ai);
    if (fd >= 0)
        (void)close(fd);
    return rc;
}

static int listener_start(struct fv_http_server *s, struct listener *l, enum listener_kind kind,
                          const char *addr, int port, struct fv_error *reterr)
{
    int rc = FV_OK;
    int fd = -1;
    /*
     * poll, without MHD_USE_TURBO (README pitfall 8). In 0.9.75 with TLS,
     * TURBO leaves a connection that has not finished its TLS handshake
     * out of the idle-timeout and EOF handling: a silent or half-sent-
     * ClientHello client stayed in CLOSE-WAIT forever, holding a
     * connection slot until restart, while the pool threads spun. The
     * epoll loop (with or without TURBO) spins on a partial ClientHello
     * until the timeout. Poll costs nothing at tens of connections and
     * ~15 % with hundreds of idle ones (measured).
     */
    unsigned int flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    unsigned int pool, limit;
    const struct fv_config *cfg = s->cfg;

    l->kind = kind;
    l->server = s;
    rc = listen_socket_open(addr, port, &fd, &l->port, reterr);
    if (rc != FV_OK)
        goto out;

    if (kind == LISTENER_PUBLIC) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        pool =
            cfg->threads > 0 ? (unsigned int)cfg->threads : (cores > 0 ? (unsigned int)cores : 1);
        limit = (unsigned int)cfg->max_connections;
    } else {
        pool = kind == LISTENER_OPERATOR ? OPERATOR_POOL_SIZE : 1;
        limit = (unsigned int)cfg->max_connections < SIDE_CONNECTION_LIMIT
                    ? (unsigned int)cfg->max_connections
                    : SIDE_CONNECTION_LIMIT;
    }
    if (limit < pool)
        limit = pool;
    if (kind != LISTENER_REDIRECT)
        flags |= MHD_USE_TLS;
    /* Write offload suspends connections; this also gives every pool thread
     * an inter-thread channel, so a resume is seen at once and
     * MHD_quiesce_daemon works with the thread pool. */
    if (kind == LISTENER_PUBLIC)
        flags |= MHD_ALLOW_SUSPEND_RESUME;

    /*
     * Options as an array so optional ones need no second call site. The
     * logger goes first, outside the array: MHD 0.9.75 prints to stderr
     * whatever it logs before it has seen MHD_OPTION_EXTERNAL_LOGGER.
     * MHD takes the listening socket and closes it in MHD_stop_daemon.
     */
    struct MHD_OptionItem opts[16];
    size_t n = 0;
#define OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (void *)(p)})
    OPT(MHD_OPTION_LISTEN_SOCKET, fd, NULL);
    if (pool > 1)
        OPT(MHD_OPTION_THREAD_POOL_SIZE, pool, NULL);
    OPT(MHD_OPTION_CONNECTION_LIMIT, limit, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout_s, NULL);
    /* Reject requests with malformed header lines (smuggling defence). */
    OPT(MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL);
    OPT(MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, l);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, completed_cb, l);
    if (kind != LISTENER_REDIRECT) {
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert_pem);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, s->key_pem);
        OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, FV_HTTP_TLS_PRIORITIES);
    }
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    FV_ASSERT(n <= FV_ARRAY_LEN(opts));
    l->daemon = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, l, MHD_OPTION_EXTERNAL_LOGGER,
                                 mhd_log_cb, l, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (l->daemon == NULL) {
        rc = fv_error_set(reterr, FV_E_INTERNAL, SIZE_MAX,
                          "cannot start %s listener on port %d: libmicrohttpd refused the "
                          "configuration (see debug log)",
                          kind == LISTENER_PUBLIC     ? "public"
                          : kind == LISTENER_OPERATOR ? "operator"
                                                      : "redirect",
                          l->port);
        goto out;
    }
    fd = -1; /* owned by the daemon */
out:
    if (fd >= 0)
        (void)close(fd);
    return rc;
}

/* ---------------------------------------------------------------- public */

int fv_http_server_start(const struct fv_config *cfg, struct fv_api *api,
                         struct fv_http_server **ret, struct fv_error *reterr)
{
    int rc = FV_OK;
    struct fv_http_server *s = NULL;

    FV_ASSERT(cfg != NULL && ret != NULL);
    if (cfg->max_body_bytes <= 0 || cfg->max_connections <= 0 || cfg->connection_timeout_s < 0) {
        rc = fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                          "max_body_bytes, max_connections and connection_timeout_s must be "
                          "positive");
        goto out;
    }
    s = fv_calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = FV_E_NOMEM;
        goto out;
    }
    s->cfg = cfg;
    s->api = api;
    atomic_init(&s->ready, false);
    fv_ops_metrics_init();

    rc = fv_http_tls_ensure(cfg->data_dir, cfg, &s->cert_pem, &s->key_pem, reterr);
    if (rc != FV_OK)
        goto out;
    rc = fv_http_tls_fingerprint(s->cert_pem, s->cert_sha256, sizeof(s->cert_sha256));
    if (rc != FV_OK) {
        rc = fv_error_set(reterr, rc, SIZE_MAX, "cannot fingerprint the TLS certificate");
        goto out;
    }

    /* Before the public listener, which hands writes to it at once. */
    if (api != NULL && cfg->write_threads > 0) {
        /* The public listener admits max(max_connections, pool threads). */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        size_t pool = cfg->threads > 0 ? (size_t)cfg->threads : (cores > 0 ? (size_t)cores : 1);
        size_t limit = (size_t)cfg->max_connections > pool ? (size_t)cfg->max_connections : pool;
        rc = write_pool_start(&s->wp, (size_t)cfg->write_threads, limit, reterr);
        if (rc != FV_OK)
            goto out;
    }
    rc = listener_start(s, &s->pub, LISTENER_PUBLIC, cfg->bind, cfg->https_port, reterr);
    if (rc != FV_OK)
        goto out;
    if (cfg->http_port != 0) {
        rc = listener_start(s, &s->redirect, LISTENER_REDIRECT, cfg->bind, cfg->http_port, reterr);
        if (rc != FV_OK)
            goto out;
    }
    rc = listener_start(s, &s->op, LISTENER_OPERATOR, cfg->operator_bind, cfg->operator_port,
                        reterr);
    if (rc != FV_OK)
        goto out;

    atomic_store(&s->ready, true);
    *ret = s;
    s = NULL;
out:
    fv_http_server_stop(s);
    return rc;
}

void fv_http_server_stop(struct fv_http_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->ready, false);
    /*
     * Public first so no new API work starts while the others wind down:
     * stop accepting; finish the queued writes (their connections are
     * resumed: MHD must not be stopped with a suspended one) and join the
     * write threads; give the answers a moment to go out; then stop the
     * daemon. Keep-alive clients sending writes meanwhile get the 503.
     * A quiesced listening socket is ours to close, after the stop.
     */
    MHD_socket quiesced = MHD_INVALID_SOCKET;
    if (s->pub.daemon != NULL)
        quiesced = MHD_quiesce_daemon(s->pub.daemon);
    write_pool_stop(&s->wp);
    if (s->pub.daemon != NULL)
        write_pool_drain(&s->wp, FV_HTTP_DRAIN_WAIT_MS);
    if (s->pub.daemon != NULL)
        MHD_stop_daemon(s->pub.daemon);
    if (quiesced != MHD_INVALID_SOCKET)
        (void)close(quiesced);
    write_pool_release(&s->wp);
    if (s->redirect.daemon != NULL)
        MHD_stop_daemon(s->redirect.daemon);
    if (s->op.daemon != NULL)
        MHD_stop_daemon(s->op.daemon);
    fv_http_tls_key_free(s->key_pem);
    fv_free(s->cert_pem);
    fv_free(s);
}

void fv_http_server_set_ready(struct fv_http_server *s, bool ready)
{
    atomic_store(&s->ready, ready);
}

void fv_http_server_info(const struct fv_http_server *s, struct fv_http_server_info *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->https_port = s->pub.port;
    ret->http_port = s->redirect.daemon != NULL ? s->redirect.port : 0;
    ret->operator_port = s->op.port;
    (void)fv_strlcpy(ret->cert_sha256, s->cert_sha256, sizeof(ret->cert_sha256));
}
