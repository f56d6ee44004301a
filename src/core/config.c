/*
 * core/config.c: the settings table (STYLE 31). The INI loader (inih), the
 * FORMVAULT_* environment overrides, validation, `formvault --help` and
 * docs/configuration.md all come from config_rows[].
 */
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define ROW_S(n, def, help)                                                                        \
    {                                                                                              \
#n, FV_CONFIG_STRING, def, 0, 0, offsetof(struct fv_config, n),                            \
            sizeof(((struct fv_config *)0)->n), help                                               \
    }
#define ROW_I(n, def, lo, hi, help)                                                                \
    {                                                                                              \
#n, FV_CONFIG_INT, def, lo, hi, offsetof(struct fv_config, n),                             \
            sizeof(((struct fv_config *)0)->n), help                                               \
    }

static const struct fv_config_entry config_rows[] = {
    ROW_S(data_dir, "./formvault-data",
          "Directory holding catalog.db, tenants/, tls/ and backups/. Created on first use."),
    ROW_S(bind, "127.0.0.1",
          "Address of the public HTTPS and HTTP listeners. Use 0.0.0.0 or :: to serve other "
          "machines."),
    ROW_I(https_port, "8443", 0, 65535, "Public HTTPS port (data API). 0 picks a free port."),
    ROW_I(http_port, "8080", 0, 65535,
          "Plain-HTTP port that only redirects to HTTPS. 0 disables it."),
    ROW_S(operator_bind, "127.0.0.1",
          "Address of the operator listener (health, readiness, metrics). Keep it private."),
    ROW_I(operator_port, "9443", 0, 65535, "Operator HTTPS port. 0 picks a free port."),
    ROW_S(public_url, "",
          "External base URL (https://host:port) used in redirects; empty derives it from the "
          "request's Host header and https_port."),
    ROW_S(tls_cert, "",
          "PEM certificate chain for both listeners. Empty: a self-signed ECDSA P-256 "
          "certificate is generated under data_dir/tls/ on first start."),
    ROW_S(tls_key, "", "PEM private key matching tls_cert."),
    ROW_I(threads, "0", 0, 256, "HTTP worker threads per listener; 0 = number of cores."),
    ROW_I(write_threads, "32", 1, 1024,
          "Threads that run write requests (add, update, delete). Writes wait for their "
          "durable commit there, off the HTTP threads, so concurrent writes of a tenant share "
          "one commit (group commit)."),
    ROW_I(max_connections, "1000", 1, 100000, "Concurrent connections per listener."),
    ROW_I(connection_timeout_s, "30", 1, 3600,
          "Seconds an idle keep-alive connection is kept open."),
    ROW_I(max_body_bytes, "4194304", 1024, 1073741824,
          "Largest accepted request body, in bytes. Larger bodies get code 3020 (HTTP 413)."),
    ROW_I(max_records_per_write, "200", 1, 200,
          "Records accepted in one add request (Creator's limit is 200; more gives code 3950)."),
    ROW_I(max_json_depth, "16", 2, 64, "Nesting depth accepted in JSON request bodies."),
    ROW_I(tenant_cache_size, "64", 1, 100000, "Tenant databases kept open at once."),
    ROW_I(group_commit_max, "256", 1, 4096,
          "Writes of one tenant folded into one durable commit at most."),
    ROW_S(region, "us", "Region this node serves (us, eu, in, au, cn, jp, ca, sa, ae)."),
    ROW_S(log_level, "info", "Minimum log level: debug, info, warn or error."),
    ROW_S(log_file, "", "Append JSON-lines logs to this file; empty = standard error."),
    ROW_S(kek_provider, "file",
          "Where the master key (KEK) lives: 'file' (kek_file) or 'pkcs11' (an HSM token). "
          "The KEK wraps every tenant root key and the node key (docs/keys.md)."),
    ROW_S(kek_file, "",
          "file provider: path of the 32-byte KEK, outside data_dir, mode 0400 or 0600. "
          "Create one with 'formvault keys init --kek-file PATH'."),
    ROW_S(kek_pkcs11_module, "", "pkcs11 provider: path of the PKCS#11 module (.so)."),
    ROW_S(kek_pkcs11_token, "", "pkcs11 provider: label of the token holding the KEK."),
    ROW_S(kek_pkcs11_key, "formvault-kek", "pkcs11 provider: label of the AES-256 key object."),
    ROW_S(kek_pkcs11_pin_file, "",
          "pkcs11 provider: file holding the token's user PIN (mode 0400 or 0600)."),
    ROW_I(key_check_interval_ms, "1000", 100, 600000,
          "How often the server re-reads key state (revocations, rotations, shredding by the "
          "CLI) and checks that HSM keys are still reachable, in milliseconds."),
};

_Static_assert(sizeof(int) == sizeof(((struct fv_config *)0)->https_port), "int settings");

const struct fv_config_entry *fv_config_table(size_t *ret_n)
{
    *ret_n = FV_ARRAY_LEN(config_rows);
    return config_rows;
}

static const struct fv_config_entry *row_find(const char *key)
{
    for (size_t i = 0; i < FV_ARRAY_LEN(config_rows); i++)
        if (strcmp(config_rows[i].name, key) == 0)
            return &config_rows[i];
    return NULL;
}

static int row_set(struct fv_config *cfg, const struct fv_config_entry *row, const char *value,
                   const char *source, struct fv_error *reterr)
{
    char *field = (char *)cfg + row->offset;
    if (row->type == FV_CONFIG_STRING) {
        if (strnlen(value, row->size) >= row->size)
            return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                                "%s: value of '%s' is longer than %zu bytes", source, row->name,
                                row->size - 1);
        memcpy(field, value, strlen(value) + 1);
        return FV_OK;
    }
    int64_t v;
    if (fv_parse_i64(value, strlen(value), &v) != FV_OK)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "%s: '%s' must be an integer", source,
                            row->name);
    if (v < row->min || v > row->max)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "%s: '%s' must be between %lld and %lld", source, row->name,
                            (long long)row->min, (long long)row->max);
    if (row->size == sizeof(int64_t))
        *(int64_t *)(void *)field = v;
    else
        *(int *)(void *)field = (int)v;
    return FV_OK;
}

int fv_config_set(struct fv_config *cfg, const char *key, const char *value,
                  struct fv_error *reterr)
{
    const struct fv_config_entry *row = row_find(key);
    if (!row)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "unknown setting '%s'", key);
    return row_set(cfg, row, value, "setting", reterr);
}

void fv_config_defaults(struct fv_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < FV_ARRAY_LEN(config_rows); i++) {
        int rc = row_set(cfg, &config_rows[i], config_rows[i].default_value, "default", NULL);
        FV_ASSERT(rc == FV_OK);
    }
}

struct ini_ctx {
    struct fv_config *cfg;
    const char *path;
    struct fv_error *err;
    int rc;
};

static int config_ini_line(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *c = user;
    char source[FV_CONFIG_PATH_MAX + 32];
    if (c->rc != FV_OK)
        return 0;
    (void)snprintf(source, sizeof(source), "%s", c->path);
    if (section[0] && strcmp(section, "formvault") != 0) {
        c->rc = fv_error_set(c->err, FV_E_INVALID, SIZE_MAX, "%s: unknown section '%s'", source,
                             section);
        return 0;
    }
    const struct fv_config_entry *row = row_find(name);
    if (!row) {
        c->rc =
            fv_error_set(c->err, FV_E_INVALID, SIZE_MAX, "%s: unknown setting '%s'", source, name);
        return 0;
    }
    c->rc = row_set(c->cfg, row, value, source, c->err);
    return c->rc == FV_OK;
}

static int validate(const struct fv_config *cfg, struct fv_error *reterr)
{
    static const char *levels[] = {"debug", "info", "warn", "error"};
    bool ok = false;
    for (size_t i = 0; i < FV_ARRAY_LEN(levels); i++)
        ok = ok || strcmp(cfg->log_level, levels[i]) == 0;
    if (!ok)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "'log_level' must be debug, info, warn or error");
    if (strcmp(cfg->kek_provider, "file") != 0 && strcmp(cfg->kek_provider, "pkcs11") != 0)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "'kek_provider' must be file or pkcs11");
    if (cfg->data_dir[0] == '\0')
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "'data_dir' must not be empty");
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0'))
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "'tls_cert' and 'tls_key' must be set together");
    if (cfg->https_port != 0 &&
        (cfg->https_port == cfg->http_port || cfg->https_port == cfg->operator_port))
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "'https_port' must differ from 'http_port' and 'operator_port'");
    if (cfg->operator_port != 0 && cfg->operator_port == cfg->http_port)
        return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX,
                            "'operator_port' must differ from 'http_port'");
    return FV_OK;
}

int fv_config_load(const char *path, struct fv_config *ret_cfg, struct fv_error *reterr)
{
    struct fv_config cfg;
    fv_config_defaults(&cfg);
    if (path) {
        FILE *f = fopen(path, "re");
        if (!f)
            return fv_error_set(reterr, FV_E_IO, SIZE_MAX, "cannot read configuration '%s': %s",
                                path, strerror(errno));
        struct ini_ctx c = {&cfg, path, reterr, FV_OK};
        int line = ini_parse_file(f, config_ini_line, &c);
        (void)fclose(f);
        if (c.rc != FV_OK)
            return c.rc;
        if (line != 0)
            return fv_error_set(reterr, FV_E_INVALID, SIZE_MAX, "%s:%d: syntax error", path, line);
    }
    for (size_t i = 0; i < FV_ARRAY_LEN(config_rows); i++) {
        char var[96] = "FORMVAULT_";
        size_t n = strlen(var);
        for (const char *k = config_rows[i].name; *k && n + 1 < sizeof(var); k++)
            var[n++] = (*k >= 'a' && *k <= 'z') ? (char)(*k - 'a' + 'A') : *k;
        var[n] = '\0';
        const char *v = getenv(var);
        if (v) {
            int rc = row_set(&cfg, &config_rows[i], v, var, reterr);
            if (rc != FV_OK)
                return rc;
        }
    }
    int rc = validate(&cfg, reterr);
    if (rc != FV_OK)
        return rc;
    *ret_cfg = cfg;
    return FV_OK;
}

int fv_config_docs(struct fv_buf *b)
{
    int rc = fv_buf_append_cstr(
        b, "# Configuration\n\n"
           "formvault needs no configuration: with none it keeps its data in\n"
           "`./formvault-data`, serves HTTPS on 127.0.0.1:8443, redirects HTTP on 8080 and\n"
           "serves the operator endpoints on 127.0.0.1:9443.\n\n"
           "Settings come from, in increasing priority: the embedded default, the INI file\n"
           "given with `--config FILE` (or `FORMVAULT_CONFIG`), then the environment variable\n"
           "`FORMVAULT_<KEY>` (the key in upper case). Keys sit at the top of the file or\n"
           "under a `[formvault]` section. Unknown keys and out-of-range values stop the\n"
           "server with a message naming the key.\n\n"
           "This page is generated from the settings table in `src/core/config.c`\n"
           "(`formvault config docs`); a test fails when the two differ.\n\n"
           "| key | environment | type | default | range | meaning |\n"
           "|---|---|---|---|---|---|\n");
    for (size_t i = 0; rc == FV_OK && i < FV_ARRAY_LEN(config_rows); i++) {
        const struct fv_config_entry *r = &config_rows[i];
        char var[96] = "FORMVAULT_";
        size_t n = strlen(var);
        for (const char *k = r->name; *k && n + 1 < sizeof(var); k++)
            var[n++] = (*k >= 'a' && *k <= 'z') ? (char)(*k - 'a' + 'A') : *k;
        var[n] = '\0';
        char range[64] = "";
        if (r->type == FV_CONFIG_INT)
            (void)snprintf(range, sizeof(range), "%lld..%lld", (long long)r->min,
                           (long long)r->max);
        else
            (void)snprintf(range, sizeof(range), "at most %zu bytes", r->size - 1);
        rc = fv_buf_appendf(b, "| `%s` | `%s` | %s | `%s` | %s | %s |\n", r->name, var,
                            r->type == FV_CONFIG_INT ? "integer" : "string",
                            r->default_value[0] ? r->default_value : "\"\"", range, r->help);
    }
    return rc;
}
