/*
 * Tests for http/server.c against real listeners on loopback: TLS versions
 * and ciphers refused, keep-alive (two requests on one TLS connection:
 * notes/libmicrohttpd.md pitfall 1), operator routes, the public listener
 * without an api (503), the plain-HTTP redirect and listen errors; with a
 * real api over an empty store: writes offloaded to the write threads
 * (keep-alive across suspend/resume, headers seen by the api) and a stop
 * while writes are in flight.
 * Black-box tests of the data API over HTTP are in tests/api (pytest).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <ftw.h>
#include <gnutls/gnutls.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/http.h"
#include "store/store.h"

struct fixture {
    char dir[64];
    struct fv_config cfg;
    struct fv_http_server *server;
    struct fv_http_server_info info;
};

/* A port that was free a moment ago (http_port 0 means "disabled"). */
static int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct fv_error err;

    assert_non_null(f);
    (void)snprintf(f->dir, sizeof(f->dir), "/tmp/fv_test_server_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    fv_config_defaults(&f->cfg);
    (void)fv_strlcpy(f->cfg.data_dir, f->dir, sizeof(f->cfg.data_dir));
    (void)fv_strlcpy(f->cfg.bind, "127.0.0.1", sizeof(f->cfg.bind));
    (void)fv_strlcpy(f->cfg.operator_bind, "127.0.0.1", sizeof(f->cfg.operator_bind));
    f->cfg.tls_cert[0] = '\0';
    f->cfg.tls_key[0] = '\0';
    f->cfg.public_url[0] = '\0';
    f->cfg.https_port = 0;
    f->cfg.operator_port = 0;
    f->cfg.http_port = free_port();
    f->cfg.threads = 2;
    fv_log_set_level(FV_LOG_ERROR);
    fv_error_init(&err);
    assert_int_equal(fv_http_server_start(&f->cfg, NULL, &f->server, &err), FV_OK);
    fv_http_server_info(f->server, &f->info);
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    fv_http_server_stop(f->server);
    (void)nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

struct tls_client {
    int fd;
    gnutls_session_t s;
    gnutls_certificate_credentials_t cred;
};

/* Handshake with the given priority; returns the GnuTLS result. */
static int tls_open(struct tls_client *c, int port, const char *prio)
{
    int rc;
    c->fd = tcp_connect(port);
    assert_int_equal(gnutls_certificate_allocate_credentials(&c->cred), 0);
    assert_int_equal(gnutls_init(&c->s, GNUTLS_CLIENT), 0);
    assert_int_equal(gnutls_priority_set_direct(c->s, prio, NULL), 0);
    assert_int_equal(gnutls_credentials_set(c->s, GNUTLS_CRD_CERTIFICATE, c->cred), 0);
    gnutls_transport_set_int(c->s, c->fd);
    gnutls_handshake_set_timeout(c->s, 5000);
    do {
        rc = gnutls_handshake(c->s);
    } while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
    return rc;
}

static void tls_close(struct tls_client *c)
{
    gnutls_deinit(c->s);
    gnutls_certificate_free_credentials(c->cred);
    close(c->fd);
}

/*
 * Send one request and read one response (headers + Content-Length body)
 * into out. Returns the status code, or -1 if the connection failed.
 */
static int tls_request(struct tls_client *c, const char *req, char *out, size_t cap)
{
    size_t len = 0;
    char *hdr_end = NULL;
    long body = -1;

    if (gnutls_record_send(c->s, req, strlen(req)) != (ssize_t)strlen(req))
        return -1;
    for (;;) {
        ssize_t n = gnutls_record_recv(c->s, out + len, cap - 1 - len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n <= 0)
            return -1;
        len += (size_t)n;
        out[len] = '\0';
        if (hdr_end == NULL && (hdr_end = strstr(out, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(out, "\r\nContent-Length: ");
            body = cl != NULL && cl < hdr_end ? strtol(cl + 18, NULL, 10) : 0;
        }
        if (hdr_end != NULL && (size_t)(hdr_end + 4 - out) + (size_t)body <= len)
            break;
        if (len + 1 >= cap)
            return -1;
    }
    return (int)strtol(out + 9, NULL, 10);
}

static void test_fv_http_server_start_reports_ports(void **state)
{
    struct fixture *f = *state;
    assert_true(f->info.https_port > 0);
    assert_true(f->info.operator_port > 0);
    assert_int_equal(f->info.http_port, f->cfg.http_port);
    assert_int_equal(strlen(f->info.cert_sha256), 95);
}

static void test_fv_http_server_operator_keepalive(void **state)
{
    struct fixture *f = *state;
    struct tls_client c;
    char buf[8192];

    assert_int_equal(tls_open(&c, f->info.operator_port, "NORMAL"), 0);
    assert_int_equal(gnutls_protocol_get_version(c.s), GNUTLS_TLS1_3);
    /* Two requests on the same connection: keep-alive must survive. */
    assert_int_equal(tls_request(&c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                     200);
    assert_non_null(strstr(buf, "{\"status\":\"ok\"}"));
    assert_null(strcasestr(buf, "Connection: close"));
    assert_non_null(strstr(buf, "Strict-Transport-Security: max-age=63072000; includeSubDomains"));
    assert_non_null(strstr(buf, "X-Content-Type-Options: nosniff"));
    assert_non_null(strstr(buf, "Cache-Control: no-store"));
    assert_non_null(strstr(buf, "X-Request-Id: "));
    assert_int_equal(tls_request(&c, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                     200);
    assert_int_equal(tls_request(&c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                     200);
    assert_non_null(strstr(buf, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(
        strstr(buf, "formvault_http_requests_total{route=\"ops.healthz\",status=\"200\"}"));
    assert_non_null(strstr(buf, "process_resident_memory_bytes "));
    assert_int_equal(tls_request(&c,
                                 "GET /creator/v2.1/data/a/b/report/c HTTP/1.1\r\nHost: x\r\n\r\n",
                                 buf, sizeof(buf)),
                     404);
    assert_int_equal(
        tls_request(&c, "DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)), 405);
    tls_close(&c);
}

static void test_fv_http_server_readyz_not_ready(void **state)
{
    struct fixture *f = *state;
    struct tls_client c;
    char buf[4096];

    fv_http_server_set_ready(f->server, false);
    assert_int_equal(tls_open(&c, f->info.operator_port, "NORMAL"), 0);
    assert_int_equal(tls_request(&c, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                     503);
    tls_close(&c);
    fv_http_server_set_ready(f->server, true);
}

static void test_fv_http_server_refuses_tls11(void **state)
{
    struct fixture *f = *state;
    struct tls_client c;

    assert_true(tls_open(&c, f->info.operator_port, "NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0") <
                0);
    tls_close(&c);
    assert_true(tls_open(&c, f->info.https_port, "NORMAL:-VERS-ALL:+VERS-TLS1.1") < 0);
    tls_close(&c);
}

static void test_fv_http_server_refuses_cbc(void **state)
{
    struct fixture *f = *state;
    struct tls_client c;

    assert_true(tls_open(&c, f->info.https_port,
                         "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC") <
                0);
    tls_close(&c);
    /* static RSA key exchange (no forward secrecy) is refused too */
    assert_true(tls_open(&c, f->info.https_port, "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA") < 0);
    tls_close(&c);
}

static void test_fv_http_server_accepts_tls12_aead(void **state)
{
    struct fixture *f = *state;
    struct tls_client c;
    char buf[4096];

    assert_int_equal(tls_open(&c, f->info.https_port, "NORMAL:-VERS-ALL:+VERS-TLS1.2"), 0);
    assert_int_equal(gnutls_protocol_get_version(c.s), GNUTLS_TLS1_2);
    gnutls_cipher_algorithm_t ca = gnutls_cipher_get(c.s);
    assert_true(ca == GNUTLS_CIPHER_AES_256_GCM || ca == GNUTLS_CIPHER_AES_128_GCM ||
                ca == GNUTLS_CIPHER_CHACHA20_POLY1305);
    /* No api: the public listener answers "busy" (503), twice on one connection. */
    int busy = 0, code = 0;
    fv_api_error_map(FV_E_BUSY, &busy, &code);
    assert_int_equal(
        tls_request(&c, "GET /api/v2.1/o/a/report/r HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
        busy);
    assert_non_null(strstr(buf, "Strict-Transport-Security: "));
    assert_int_equal(tls_request(&c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                     busy);
    assert_null(strstr(buf, "formvault_http_requests_total")); /* not operator content */
    tls_close(&c);
}

static void test_fv_http_server_redirects_plain_http(void **state)
{
    struct fixture *f = *state;
    char buf[4096], want[128];
    const char *req = "GET /creator/v2.1/data/o/a/report/r?criteria=x%3D1 HTTP/1.1\r\n"
                      "Host: forms.example.com:80\r\n\r\n";
    int fd = tcp_connect(f->cfg.http_port);
    ssize_t n;

    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 301 "));
    (void)snprintf(want, sizeof(want),
                   "Location: https://forms.example.com:%d/creator/v2.1/data/o/a/report/r"
                   "?criteria=x%%3D1\r\n",
                   f->info.https_port);
    assert_non_null(strstr(buf, want));
    close(fd);

    fd = tcp_connect(f->cfg.http_port);
    req = "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n";
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "HTTP/1.1 400 "));
    assert_null(strstr(buf, "Location:"));
    close(fd);
}

static void test_fv_http_server_start_address_in_use(void **state)
{
    struct fixture *f = *state;
    struct fv_config cfg = f->cfg;
    struct fv_http_server *s2 = NULL;
    struct fv_error err;
    char want[64];

    cfg.https_port = f->info.https_port;
    cfg.http_port = 0;
    fv_error_init(&err);
    assert_int_equal(fv_http_server_start(&cfg, NULL, &s2, &err), FV_E_IO);
    assert_null(s2);
    (void)snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d: address in use",
                   f->info.https_port);
    assert_string_equal(err.msg, want);
}

static void test_fv_http_server_start_bad_bind(void **state)
{
    struct fixture *f = *state;
    struct fv_config cfg = f->cfg;
    struct fv_http_server *s2 = NULL;
    struct fv_error err;

    (void)fv_strlcpy(cfg.bind, "example.com", sizeof(cfg.bind));
    cfg.http_port = 0;
    fv_error_init(&err);
    assert_int_equal(fv_http_server_start(&cfg, NULL, &s2, &err), FV_E_INVALID);
    assert_non_null(strstr(err.msg, "example.com"));
}

/* ------------------------------------------------ write offload (real api) */

/* A server with a real api over an empty store (no tenants: every data
 * request fails authentication, which still runs the whole api path). */
struct api_server {
    struct fv_config cfg;
    char data[300];
    struct fv_store *store;
    struct fv_api *api;
    struct fv_http_server *server;
    struct fv_http_server_info info;
    struct fv_kek *kek;
};

static void api_server_start(struct fixture *f, struct api_server *a, int write_threads)
{
    struct fv_store_options o = {0};
    struct fv_error err;

    a->cfg = f->cfg;
    a->cfg.http_port = 0;
    a->cfg.write_threads = write_threads;
    (void)snprintf(a->data, sizeof(a->data), "%s/store", f->dir);
    o.data_dir = a->data;
    o.tenant_cache_size = 4;
    o.group_commit_max = 64;
    fv_error_init(&err);
    char kek[320];
    (void)snprintf(kek, sizeof(kek), "%s/kek.key", f->dir);
    int krc = fv_crypto_kek_file_create(kek, a->data, &err); /* once per fixture dir */
    assert_true(krc == FV_OK || krc == FV_E_CONFLICT);
    fv_error_init(&err);
    assert_int_equal(fv_crypto_kek_file_open(&a->kek, kek, a->data, &err), FV_OK);
    o.kek = a->kek;
    assert_int_equal(fv_store_open(&o, &a->store, &err), FV_OK);
    assert_int_equal(fv_api_new(&a->cfg, a->store, &a->api), FV_OK);
    assert_int_equal(fv_http_server_start(&a->cfg, a->api, &a->server, &err), FV_OK);
    fv_http_server_info(a->server, &a->info);
}

static void api_server_stop(struct api_server *a)
{
    fv_http_server_stop(a->server);
    a->server = NULL;
    fv_api_free(a->api);
    fv_store_close(a->store);
    fv_crypto_kek_free(a->kek);
    a->kek = NULL;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void test_fv_http_server_write_offload_keepalive(void **state)
{
    struct fixture *f = *state;
    struct api_server a;
    struct tls_client c;
    char buf[8192], req[512];
    static const char *const methods[] = {"POST", "PATCH", "DELETE", "PUT", "GET", "POST"};
    int fds = open_fds();

    api_server_start(f, &a, 2);
    assert_int_equal(tls_open(&c, a.info.https_port, "NORMAL"), 0);
    /* Writes go through suspend/resume; all on one connection (keep-alive). */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        const char *body = "{\"data\":{\"Name\":\"x\"}}";
        (void)snprintf(req, sizeof(req),
                       "%s /creator/v2.1/data/acme/shop/form/Customer HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       methods[i], strlen(body), body);
        assert_int_equal(tls_request(&c, req, buf, sizeof(buf)), 401);
        assert_null(strcasestr(buf, "Connection: close"));
        assert_non_null(strstr(buf, "X-Request-Id: "));
        assert_non_null(strstr(buf, "missing or malformed authorization header"));
    }
    /* The api reads headers from the snapshot taken before the hand-off,
     * by case-insensitive name. */
    (void)snprintf(
        req, sizeof(req),
        "POST /creator/v2.1/data/acme/shop/form/Customer HTTP/1.1\r\nHost: x\r\n"
        "authorization: Zoho-oauthtoken 1000.nosuchtoken\r\nContent-Length: 2\r\n\r\n{}");
    assert_int_equal(tls_request(&c, req, buf, sizeof(buf)), 401);
    assert_null(strstr(buf, "missing or malformed authorization header"));
    /* A bad path is refused before the hand-off. */
    assert_int_equal(tls_request(&c, "DELETE /x%00y HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf)),
                     400);
    tls_close(&c);
    api_server_stop(&a);
    /* The quiesced listening socket is closed too: no descriptor leaks (earlier
     * tests' lingering descriptors may close meanwhile, so not an equality). */
    assert_true(open_fds() <= fds);
}

struct writer {
    int port;
    int answered;
    int ok; /* the connection opened */
};

static void *writer_run(void *arg)
{
    struct writer *w = arg;
    struct tls_client c;
    char buf[4096];
    const char *req = "POST /creator/v2.1/data/acme/shop/form/Customer HTTP/1.1\r\nHost: x\r\n"
                      "Content-Length: 2\r\n\r\n{}";

    if (tls_open(&c, w->port, "NORMAL") != 0) {
        tls_close(&c);
        return NULL;
    }
    w->ok = 1;
    gnutls_record_set_timeout(c.s, 10000);
    /* Until the server stops: then a 503 (stopping) or a closed connection. */
    for (;;) {
        int st = tls_request(&c, req, buf, sizeof(buf));
        if (st != 401)
            break;
        w->answered++;
    }
    tls_close(&c);
    return NULL;
}

static void test_fv_http_server_stop_with_writes_in_flight(void **state)
{
    struct fixture *f = *state;
    struct api_server a;
    struct writer w[12];
    pthread_t t[12];
    const struct timespec pause = {0, 300 * 1000 * 1000};
    int answered = 0;

    api_server_start(f, &a, 3);
    for (size_t i = 0; i < 12; i++) {
        w[i] = (struct writer){.port = a.info.https_port};
        assert_int_equal(pthread_create(&t[i], NULL, writer_run, &w[i]), 0);
    }
    (void)nanosleep(&pause, NULL);
    /* Must neither hang, crash nor leak (run under ASan/TSan) while every
     * client is in the middle of a write. */
    fv_http_server_stop(a.server);
    a.server = NULL;
    for (size_t i = 0; i < 12; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        answered += w[i].answered;
    }
    assert_true(answered > 0);
    fv_api_free(a.api);
    fv_store_close(a.store);
    fv_crypto_kek_free(a.kek);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fv_http_server_start_reports_ports),
        cmocka_unit_test(test_fv_http_server_operator_keepalive),
        cmocka_unit_test(test_fv_http_server_readyz_not_ready),
        cmocka_unit_test(test_fv_http_server_refuses_tls11),
        cmocka_unit_test(test_fv_http_server_refuses_cbc),
        cmocka_unit_test(test_fv_http_server_accepts_tls12_aead),
        cmocka_unit_test(test_fv_http_server_redirects_plain_http),
        cmocka_unit_test(test_fv_http_server_start_address_in_use),
        cmocka_unit_test(test_fv_http_server_start_bad_bind),
        cmocka_unit_test(test_fv_http_server_write_offload_keepalive),
        cmocka_unit_test(test_fv_http_server_stop_with_writes_in_flight),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
