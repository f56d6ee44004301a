/*
 * http: the node's listeners on libmicrohttpd + GnuTLS (DESIGN.md "Process
 * model"). Three listeners, each a separate MHD daemon:
 *   - public HTTPS (cfg->bind:cfg->https_port): the data API only, through
 *     fv_api_handle();
 *   - plain HTTP (cfg->bind:cfg->http_port, 0 = off): answers every request
 *     with 301 (GET/HEAD) or 308 (other methods) to the HTTPS URL, nothing
 *     else;
 *   - operator HTTPS (cfg->operator_bind:cfg->operator_port): /healthz,
 *     /readyz, /metrics only.
 * TLS is 1.2/1.3 with AEAD ciphers only; without a configured certificate a
 * self-signed ECDSA P-256 one is generated once in <data_dir>/tls/.
 *
 * Signals are not handled here: main() calls fv_http_server_start(), waits
 * for SIGINT/SIGTERM itself (sigwait) and calls fv_http_server_stop().
 * See src/http/README.md for invariants, TLS settings and measured pitfalls.
 */
#ifndef FV_HTTP_H
#define FV_HTTP_H

#include "api/api.h"
#include "core/core.h"

struct fv_http_server;

/* GnuTLS priority string of every TLS listener (TLS 1.2/1.3, AEAD, ECDHE). */
extern const char FV_HTTP_TLS_PRIORITIES[];

/*
 * Start all listeners. cfg and api are borrowed and must outlive the server;
 * api may be NULL (tests, or a node still starting), in which case the
 * public listener answers every request with 503. Listening sockets are
 * bound before return, so a connection attempt after success is accepted.
 * The server reports ready on /readyz once started.
 * Errors: FV_E_IO (cannot listen: reterr names address and port and the
 * cause, e.g. "cannot listen on 127.0.0.1:8443: address in use"; or the
 * certificate cannot be read/created), FV_E_INVALID (bad bind address,
 * certificate or key does not parse), FV_E_NOMEM, FV_E_INTERNAL (MHD
 * refused to start). *ret is freed with fv_http_server_stop().
 */
FV_MUST_CHECK int fv_http_server_start(const struct fv_config *cfg, struct fv_api *api,
                                       struct fv_http_server **ret, struct fv_error *reterr);

/*
 * Stop accepting, finish or close connections, join the pool threads and
 * free the server. Accepts NULL. Must not be called from a handler thread.
 */
void fv_http_server_stop(struct fv_http_server *s);

/* Change what /readyz answers (true: 200, false: 503). Thread-safe. */
void fv_http_server_set_ready(struct fv_http_server *s, bool ready);

/* Facts about a started server, for the startup banner and tests. */
struct fv_http_server_info {
    int https_port; /* actual bound port (useful when 0 was configured) */
    int http_port;  /* 0 when the redirect listener is disabled */
    int operator_port;
    char cert_sha256[96]; /* "AB:CD:..." SHA-256 of the certificate (DER) */
};
void fv_http_server_info(const struct fv_http_server *s, struct fv_http_server_info *ret);

/*
 * Certificate and key for the TLS listeners, as PEM text. If cfg->tls_cert
 * is set, read cfg->tls_cert and cfg->tls_key. Otherwise use
 * <data_dir>/tls/cert.pem and key.pem, generating them if missing, unusable
 * or expiring within 7 days: ECDSA P-256, self-signed, SAN DNS:localhost,
 * IP:127.0.0.1 and IP:::1, valid one year, random serial; directory 0700,
 * key 0600, cert 0644, each written to a temporary file and renamed.
 * On success *ret_cert_pem and *ret_key_pem are NUL-terminated, owned by the
 * caller: free the cert with fv_free and the key with fv_http_tls_key_free
 * (it wipes). Errors: FV_E_IO, FV_E_INVALID (a file does not parse, or the
 * key does not match the certificate), FV_E_NOMEM, FV_E_INTERNAL (GnuTLS);
 * reterr says which file.
 */
FV_MUST_CHECK int fv_http_tls_ensure(const char *data_dir, const struct fv_config *cfg,
                                     char **ret_cert_pem, char **ret_key_pem,
                                     struct fv_error *reterr);

/* Wipe and free a key returned by fv_http_tls_ensure. Accepts NULL. */
void fv_http_tls_key_free(char *key_pem);

/*
 * SHA-256 fingerprint of the first certificate in cert_pem as upper-case
 * hex pairs joined by ':' into out[cap >= 96]. Errors: FV_E_INVALID.
 */
FV_MUST_CHECK int fv_http_tls_fingerprint(const char *cert_pem, char *out, size_t cap);

/* ------------------------------------------------ pure helpers (tested) */

/*
 * Percent-decode a URL path (the part before '?') into out[cap]: %XX with
 * two hex digits becomes that byte; '+' stays '+'. Refuses (FV_E_INVALID)
 * malformed escapes, %00, %2F (an encoded '/' would change the segments),
 * raw control bytes, and a path not starting with '/'. FV_E_LIMIT if the result plus NUL does not
 * fit. On success out is NUL-terminated and *ret_len is its length.
 */
FV_MUST_CHECK int fv_http_path_decode(const char *in, size_t len, char *out, size_t cap,
                                      size_t *ret_len);

/*
 * Build the Location of the plain-HTTP redirect into out (appending):
 * "https://" + host + (":" https_port unless 443) + raw_uri. host comes
 * from public_url when that is non-empty ("https://example.com[:port]", its
 * scheme, host and port are used as is), else from the Host header with any
 * port removed. The host must be a DNS name or IPv4 literal of
 * [A-Za-z0-9.-] or a bracketed IPv6 literal, else FV_E_INVALID (the caller
 * answers 400). raw_uri is the request target as received; it must start
 * with '/' (else "/" is used) and any byte outside printable ASCII is
 * percent-encoded so the header cannot be split. Errors: FV_E_INVALID,
 * FV_E_LIMIT, FV_E_NOMEM (from out).
 */
FV_MUST_CHECK int fv_http_redirect_url_build(const char *public_url, const char *host_header,
                                             int https_port, const char *raw_uri,
                                             struct fv_buf *out);

#endif
