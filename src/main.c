/*
 * main.c: the formvault command line. Dispatch only: each subcommand parses
 * its flags, loads the configuration and calls into the modules.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "api/api.h"
#include "cli.h"
#include "core/core.h"
#include "crypto/crypto.h"
#include "http/http.h"
#include "store/store.h"

static const char *config_path;
/* The KEK of the store opened by open_store (one per process). */
static struct fv_kek *store_kek;

static void usage_main(FILE *out)
{
    (void)fprintf(out, "usage: formvault [--config FILE] <command> [options]\n\n"
                       "commands:\n"
                       "  serve                     run the node (HTTPS API, redirect, operator)\n"
                       "  init                      create the data directory, catalog and TLS "
                       "certificate\n"
                       "  tenant create|list        manage tenants\n"
                       "  app import|export         install or print an app definition\n"
                       "  import <file.csv>         import records into a form\n"
                       "  token create              create an API token\n"
                       "  changelog                 print a tenant's change log (JSON lines)\n"
                       "  keys ...                  KEK, tenant keys, rotation, BYOK "
                       "(docs/keys.md)\n"
                       "  config docs|show          print the settings reference or the effective "
                       "settings\n"
                       "  version                   print the version\n\n"
                       "Run 'formvault <command> --help' for a command's options. Settings: "
                       "docs/configuration.md.\n");
}

int fv_cli_fail(const char *what, int rc, const struct fv_error *e)
{
    (void)fprintf(stderr, "formvault: %s: %s\n", what,
                  e && e->code != FV_OK && e->msg[0] ? e->msg : fv_err_describe(rc));
    return 1;
}

int fv_cli_load_config(struct fv_config *cfg)
{
    struct fv_error e;
    fv_error_init(&e);
    const char *path = config_path ? config_path : getenv("FORMVAULT_CONFIG");
    int rc = fv_config_load(path, cfg, &e);
    if (rc != FV_OK)
        return fv_cli_fail("configuration", rc, &e);
    if (strcmp(cfg->log_level, "debug") == 0)
        fv_log_set_level(FV_LOG_DEBUG);
    else if (strcmp(cfg->log_level, "warn") == 0)
        fv_log_set_level(FV_LOG_WARN);
    else if (strcmp(cfg->log_level, "error") == 0)
        fv_log_set_level(FV_LOG_ERROR);
    return 0;
}

int fv_cli_open_kek(const struct fv_config *cfg, struct fv_kek **ret)
{
    struct fv_error e;
    int rc;
    fv_error_init(&e);
    if (strcmp(cfg->kek_provider, "pkcs11") == 0) {
        char pin[256];
        if (!cfg->kek_pkcs11_module[0] || !cfg->kek_pkcs11_token[0] || !cfg->kek_pkcs11_pin_file[0])
            return fv_cli_fail("opening the KEK", FV_E_INVALID,
                               (fv_error_set(&e, FV_E_INVALID, SIZE_MAX,
                                             "kek_provider = pkcs11 needs kek_pkcs11_module, "
                                             "kek_pkcs11_token and kek_pkcs11_pin_file"),
                                &e));
        rc = fv_file_read_private_line(cfg->kek_pkcs11_pin_file, pin, sizeof(pin), &e);
        if (rc == FV_OK)
            rc = fv_crypto_kek_pkcs11_open(ret, cfg->kek_pkcs11_module, cfg->kek_pkcs11_token,
                                           cfg->kek_pkcs11_key, pin, &e);
        fv_wipe(pin, sizeof(pin));
    } else {
        if (!cfg->kek_file[0])
            return fv_cli_fail("opening the KEK", FV_E_KEY_UNAVAILABLE,
                               (fv_error_set(&e, FV_E_KEY_UNAVAILABLE, SIZE_MAX,
                                             "no KEK configured: create one with 'formvault keys "
                                             "init --kek-file PATH' (outside data_dir) and set "
                                             "kek_file (or FORMVAULT_KEK_FILE)"),
                                &e));
        rc = fv_crypto_kek_file_open(ret, cfg->kek_file, cfg->data_dir, &e);
    }
    if (rc != FV_OK)
        return fv_cli_fail("opening the KEK", rc, &e);
    return 0;
}

int fv_cli_open_store(const struct fv_config *cfg, struct fv_store **ret)
{
    struct fv_error e;
    fv_error_init(&e);
    if (!store_kek && fv_cli_open_kek(cfg, &store_kek) != 0)
        return 1;
    struct fv_store_options opt = {cfg->data_dir, cfg->tenant_cache_size, cfg->group_commit_max,
                                   false, store_kek};
    int rc = fv_store_open(&opt, ret, &e);
    if (rc != FV_OK)
        return fv_cli_fail("opening the data directory", rc, &e);
    return 0;
}

struct fv_kek *fv_cli_store_kek(void)
{
    return store_kek;
}

void fv_cli_close_store(struct fv_store *s)
{
    fv_store_close(s);
    fv_crypto_kek_free(store_kek);
    store_kek = NULL;
}

int fv_cli_server_running(const char *data_dir)
{
    char path[FV_CONFIG_PATH_MAX + 16];
    (void)snprintf(path, sizeof(path), "%s/serve.lock", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    int running = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    (void)close(fd);
    return running;
}

/* True when argv holds -h/--help; prints usage to stdout. */
bool fv_cli_want_help(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            (void)fputs(usage, stdout);
            return true;
        }
    }
    return false;
}

/* Parse --name value pairs into vals[] for the given names; positional args into pos[]. */
int fv_cli_parse_flags(int argc, char **argv, const char *const *names, const char **vals, size_t n,
                       const char **pos, size_t npos, const char *usage)
{
    size_t np = 0;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) {
            const char *name = argv[i] + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            size_t k = 0;
            while (k < n && !(strlen(names[k]) == len && strncmp(names[k], name, len) == 0))
                k++;
            if (k == n) {
                (void)fprintf(stderr, "formvault: unknown option '%s'\n%s", argv[i], usage);
                return -1;
            }
            if (eq) {
                vals[k] = eq + 1;
            } else if (i + 1 < argc) {
                vals[k] = argv[++i];
            } else {
                (void)fprintf(stderr, "formvault: option '--%s' needs a value\n", names[k]);
                return -1;
            }
        } else {
            if (np == npos) {
                (void)fprintf(stderr, "formvault: unexpected argument '%s'\n%s", argv[i], usage);
                return -1;
            }
            pos[np++] = argv[i];
        }
    }
    for (size_t k = np; k < npos; k++)
        pos[k] = NULL;
    return 0;
}

/* ----------------------------------------------------------------- serve */

/*
 * The key thread of a serving node: every key_check_interval_ms it picks up
 * key changes made by the CLI (revocation, rotation, shredding, BYOK),
 * checks that HSM-held KEKs are reachable, and runs rotation jobs.
 */
struct key_thread {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool started;
    struct fv_store *store;
    int interval_ms;
};

static void *key_thread_main(void *arg)
{
    struct key_thread *k = arg;
    char last_err[FV_ERROR_MSG_MAX] = "";
    (void)pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        (void)pthread_mutex_unlock(&k->mu);
        int rc = fv_store_keys_refresh(k->store, false);
        if (rc != FV_OK)
            fv_log(FV_LOG_WARN, "keys: refresh failed, retrying: %s", fv_strerror(rc));
        size_t pending = 0;
        struct fv_error e;
        fv_error_init(&e);
        bool progress = true;
        rc = fv_store_keys_jobs_run(k->store, 200, &pending, &progress, &e);
        if (rc != FV_OK && strcmp(last_err, e.msg) != 0) {
            fv_log(FV_LOG_WARN, "keys: rotation job step failed, retrying: %s",
                   e.msg[0] ? e.msg : fv_strerror(rc));
            (void)fv_strlcpy(last_err, e.msg, sizeof(last_err));
        }
        int wait_ms = pending > 0 && progress && rc == FV_OK ? 10 : k->interval_ms;
        struct timespec ts;
        (void)clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_mutex_lock(&k->mu);
        if (!k->stop)
            (void)pthread_cond_timedwait(&k->cv, &k->mu, &ts);
    }
    (void)pthread_mutex_unlock(&k->mu);
    return NULL;
}

static int key_thread_start(struct key_thread *k, struct fv_store *store, int interval_ms)
{
    memset(k, 0, sizeof(*k));
    k->store = store;
    k->interval_ms = interval_ms;
    if (pthread_mutex_init(&k->mu, NULL) != 0)
        return FV_E_NOMEM;
    if (pthread_cond_init(&k->cv, NULL) != 0) {
        (void)pthread_mutex_destroy(&k->mu);
        return FV_E_NOMEM;
    }
    if (pthread_create(&k->th, NULL, key_thread_main, k) != 0) {
        (void)pthread_cond_destroy(&k->cv);
        (void)pthread_mutex_destroy(&k->mu);
        return FV_E_NOMEM;
    }
    k->started = true;
    return FV_OK;
}

static void key_thread_stop(struct key_thread *k)
{
    if (!k->started)
        return;
    (void)pthread_mutex_lock(&k->mu);
    k->stop = true;
    (void)pthread_cond_signal(&k->cv);
    (void)pthread_mutex_unlock(&k->mu);
    (void)pthread_join(k->th, NULL);
    (void)pthread_cond_destroy(&k->cv);
    (void)pthread_mutex_destroy(&k->mu);
    k->started = false;
}

/* Hold data_dir/serve.lock (flock) while serving: the CLI's operations that
 * need the server stopped (KEK rotation) test it. Returns the fd or -1. */
static int serve_lock(const char *data_dir)
{
    char path[FV_CONFIG_PATH_MAX + 16];
    (void)snprintf(path, sizeof(path), "%s/serve.lock", data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        (void)close(fd);
        return -2;
    }
    return fd;
}

static int cmd_serve(int argc, char **argv)
{
    static const char usage[] =
        "usage: formvault serve\n\n"
        "Run the node in the foreground: the public HTTPS listener (Creator v2.1 API),\n"
        "the plain-HTTP redirect and the operator listener (/healthz, /readyz, /metrics).\n"
        "Stops cleanly on SIGINT or SIGTERM. Settings: docs/configuration.md.\n";
    struct fv_config cfg;
    struct fv_store *store = NULL;
    struct fv_api *api = NULL;
    struct fv_http_server *srv = NULL;
    struct fv_error e;
    struct key_thread keys;
    int lock_fd = -1;
    int ret = 1;
    memset(&keys, 0, sizeof(keys));
    if (fv_cli_want_help(argc, argv, usage))
        return 0;
    if (argc > 1) {
        (void)fprintf(stderr, "formvault: serve takes no arguments\n%s", usage);
        return 2;
    }
    if (fv_cli_load_config(&cfg) != 0)
        return 1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGPIPE);
    /* Block before any thread starts so that only sigwait() sees these signals. */
    (void)pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (fv_cli_open_store(&cfg, &store) != 0)
        goto out;
    lock_fd = serve_lock(cfg.data_dir);
    if (lock_fd < 0) {
        (void)fprintf(stderr, "formvault: %s\n",
                      lock_fd == -2 ? "another 'formvault serve' is using this data directory"
                                    : "cannot create serve.lock in the data directory");
        goto out;
    }
    if (key_thread_start(&keys, store, cfg.key_check_interval_ms) != FV_OK) {
        (void)fv_cli_fail("starting the key thread", FV_E_NOMEM, NULL);
        goto out;
    }
    if (fv_api_new(&cfg, store, &api) != FV_OK) {
        (void)fv_cli_fail("starting", FV_E_NOMEM, NULL);
        goto out;
    }
    fv_error_init(&e);
    int rc = fv_http_server_start(&cfg, api, &srv, &e);
    if (rc != FV_OK) {
        (void)fv_cli_fail("starting the listeners", rc, &e);
        goto out;
    }
    struct fv_http_server_info ports;
    fv_http_server_info(srv, &ports);
    const char *host =
        strcmp(cfg.bind, "0.0.0.0") == 0 || strcmp(cfg.bind, "::") == 0 ? "localhost" : cfg.bind;
    (void)printf("formvault %s serving region '%s' from %s\n", FV_VERSION, cfg.region,
                 cfg.data_dir);
    (void)printf("  API       https://%s:%d/creator/v2.1/\n", host, ports.https_port);
    if (ports.http_port)
        (void)printf("  redirect  http://%s:%d/ -> https\n", host, ports.http_port);
    (void)printf("  operator  https://%s:%d/healthz /readyz /metrics\n", cfg.operator_bind,
                 ports.operator_port);
    (void)printf("  TLS certificate SHA-256 %s\n", ports.cert_sha256);
    (void)fflush(stdout);
    fv_log_kv(FV_LOG_INFO, "serving", "data_dir", cfg.data_dir, "region", cfg.region, NULL);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            break;
        if (sig == SIGINT || sig == SIGTERM)
            break;
    }
    fv_log(FV_LOG_INFO, "stopping");
    ret = 0;
out:
    fv_http_server_stop(srv);
    key_thread_stop(&keys);
    fv_api_free(api);
    fv_cli_close_store(store);
    if (lock_fd >= 0)
        (void)close(lock_fd);
    return ret;
}

/* ------------------------------------------------------------------ init */

static int cmd_init(int argc, char **argv)
{
    static const char usage[] =
        "usage: formvault init\n\n"
        "Create the data directory, catalog.db and (unless tls_cert is set) a self-signed\n"
        "TLS certificate under data_dir/tls/. Safe to run again: existing files are kept.\n";
    struct fv_config cfg;
    struct fv_store *store = NULL;
    struct fv_error e;
    char *cert = NULL, *key = NULL;
    if (fv_cli_want_help(argc, argv, usage))
        return 0;
    if (argc > 1) {
        (void)fprintf(stderr, "formvault: init takes no arguments\n%s", usage);
        return 2;
    }
    if (fv_cli_load_config(&cfg) != 0 || fv_cli_open_store(&cfg, &store) != 0)
        return 1;
    fv_error_init(&e);
    int rc = fv_http_tls_ensure(cfg.data_dir, &cfg, &cert, &key, &e);
    fv_http_tls_key_free(key);
    fv_free(cert);
    fv_cli_close_store(store);
    if (rc != FV_OK)
        return fv_cli_fail("preparing the TLS certificate", rc, &e);
    (void)printf("initialised %s\n", cfg.data_dir);
    return 0;
}

/* ---------------------------------------------------------------- tenant */

static int cmd_tenant(int argc, char **argv)
{
    static const char usage[] =
        "usage: formvault tenant create <name> [--region REGION]\n"
        "       formvault tenant list\n"
        "       formvault tenant shred <name> --yes\n\n"
        "A tenant name is the {owner} in API URLs: letters, digits and '_', starting with a\n"
        "letter. shred destroys every wrapped root key of the tenant (crypto-shredding):\n"
        "its databases and files become unreadable. Irreversible. Rotate the KEK afterwards\n"
        "to make older copies of the whole data directory useless too (docs/keys.md).\n";
    static const char *const names[] = {"region", "yes"};
    const char *vals[2] = {NULL, NULL};
    const char *pos[2];
    struct fv_config cfg;
    struct fv_store *store = NULL;
    struct fv_error e;
    int ret = 1;
    if (fv_cli_want_help(argc, argv, usage))
        return 0;
    if (argc < 2) {
        (void)fputs(usage, stderr);
        return 2;
    }
    /* --yes takes no value: give it one for the flag parser. */
    char *args[64];
    int nargs = 0;
    for (int i = 1; i < argc && nargs < (int)FV_ARRAY_LEN(args); i++)
        args[nargs++] = strcmp(argv[i], "--yes") == 0 ? (char *)"--yes=1" : argv[i];
    if (fv_cli_parse_flags(nargs, args, names, vals, 2, pos, 2, usage) != 0)
        return 2;
    if (fv_cli_load_config(&cfg) != 0 || fv_cli_open_store(&cfg, &store) != 0)
        return 1;
    fv_error_init(&e);
    if (strcmp(argv[1], "shred") == 0) {
        struct fv_store_tenant_info info;
        if (!pos[0] || !vals[1]) {
            (void)fprintf(stderr,
                          "formvault: tenant shred needs a name and --yes (it is irreversible)\n%s",
                          usage);
            ret = 2;
            goto out;
        }
        int rc = fv_store_tenant_find(store, pos[0], &info);
        if (rc == FV_OK)
            rc = fv_store_tenant_shred(store, info.id, &e);
        if (rc != FV_OK) {
            ret = fv_cli_fail("shredding the tenant", rc, &e);
            goto out;
        }
        (void)printf("shredded tenant '%s' (id %lld): its root keys are destroyed and its data "
                     "is unreadable\n",
                     info.name, (long long)info.id);
        ret = 0;
    } else if (strcmp(argv[1], "create") == 0) {
        if (!pos[0]) {
            (void)fprintf(stderr, "formvault: tenant create needs a name\n%s", usage);
            ret = 2;
            goto out;
        }
        struct fv_store_tenant_info info;
        int rc = fv_store_tenant_create(store, pos[0], vals[0] ? vals[0] : cfg.region, &info, &e);
        if (rc != FV_OK) {
            ret = fv_cli_fail("creating the tenant", rc, &e);
            goto out;
        }
        (void)printf("created tenant '%s' (id %lld, region %s)\n", info.name, (long long)info.id,
                     info.region);
        ret = 0;
    } else if (strcmp(argv[1], "list") == 0) {
        struct fv_store_tenant_info *list = NULL;
        size_t n = 0;
        int rc = fv_store_tenant_list(store, &list, &n);
        if (rc != FV_OK) {
            ret = fv_cli_fail("listing tenants", rc, NULL);
            goto out;
        }
        (void)printf("%-6s %-24s %-8s %-24s %s\n", "ID", "NAME", "REGION", "CREATED", "STATE");
        for (size_t i = 0; i < n; i++) {
            char ts[32];
            fv_time_format_iso(list[i].created_ms, ts, sizeof(ts));
            (void)printf("%-6lld %-24s %-8s %-24s %s\n", (long long)list[i].id, list[i].name,
                         list[i].region, ts, list[i].state);
        }
        fv_free(list);
        ret = 0;
    } else {
        (void)fprintf(stderr, "formvault: unknown tenant command '%s'\n%s", argv[1], usage);
        ret = 2;
    }
out:
    fv_cli_close_store(store);
    return ret;
}

/* ------------------------------------------------------------------- app */

static int read_file(const char *path, char **ret, size_t *ret_len)
{
    FILE *f = fopen(path, "rbe");
    struct fv_buf b;
    char chunk[65536];
    fv_buf_init(&b, 16u << 20);
    if (!f)
        return FV_E_IO;
    for (;;) {
        size_t n = fread(chunk, 1, sizeof(chunk), f);
        if (n == 0)
            break;
        if (fv_buf_append(&b, chunk, n) != FV_OK) {
            (void)fclose(f);
            return FV_E_LIMIT;
        }
    }
    bool err = ferror(f) != 0;
    (void)fclose(f);
    if (err) {
        fv_buf_release(&b);
        return FV_E_IO;
    }
    if (!b.p && fv_buf_append(&b, "", 0) != FV_OK)
        return FV_E_NOMEM;
    *ret = fv_buf_detach(&b, ret_len);
    return FV_OK;
}

static int with_tenant(struct fv_store *store, const char *name, struct fv_tenant **ret)
{
    struct fv_store_tenant_info info;
    int rc = fv_store_tenant_find(store, name, &info);
    if (rc == FV_OK)
        rc = fv_store_tenant_acquire(store, info.id, ret);
    if (rc != FV_OK)
        (void)fprintf(stderr, "formvault: tenant '%s': %s\n", name, fv_err_describe(rc));
    return rc;
}

static int cmd_app(int argc, char **argv)
{
    static const char usage[] =
        "usage: formvault app import <app.json> --tenant NAME\n"
        "       formvault app export <app> --tenant NAME\n\n"
        "import validates and installs (or upgrades) an app definition (docs/app-format.md);\n"
        "export prints the installed definition as JSON.\n";
    static const char *const names[] = {"tenant"};
    const char *vals[1] = {NULL};
    const char *pos[2];
    struct fv_config cfg;
    struct fv_store *store = NULL;
    struct fv_tenant *t = NULL;
    char *text = NULL;
    size_t len = 0;
    int ret = 1;
    if (fv_cli_want_help(argc, argv, usage))
        return 0;
    if (argc < 2) {
        (void)fputs(usage, stderr);
        return 2;
    }
    if (fv_cli_parse_flags(argc - 1, argv + 1, names, vals, 1, pos, 1, usage) != 0)
        return 2;
    if (!vals[0] || !pos[0]) {
        (void)fprintf(stderr, "formvault: app %s needs a file or app and --tenant\n%s", argv[1],
                      usage);
        return 2;
    }
    bool import = strcmp(argv[1], "import") == 0;
    if (!import && strcmp(argv[1], "export") != 0) {
        (void)fprintf(stderr, "formvault: unknown app command '%s'\n%s", argv[1], usage);
        return 2;
    }
    if (fv_cli_load_config(&cfg) != 0 || fv_cli_open_store(&cfg, &store) != 0)
        return 1;
    if (with_tenant(store, vals[0], &t) != FV_OK)
        goto out;
    if (import) {
        int rc = read_file(pos[0], &text, &len);
        if (rc != FV_OK) {
            (void)fprintf(stderr, "formvault: cannot read '%s': %s\n", pos[0],
                          rc == FV_E_IO ? strerror(errno) : fv_err_describe(rc));
            goto out;
        }
        struct fv_error e;
        fv_error_init(&e);
        rc = fv_store_app_install(t, text, len, "cli", &e);
        if (rc != FV_OK) {
            ret = fv_cli_fail(pos[0], rc, &e);
            goto out;
        }
        (void)printf("installed app from %s into tenant '%s'\n", pos[0], vals[0]);
        ret = 0;
    } else {
        const struct fv_app *app;
        if (fv_store_app_get(t, pos[0], &app) != FV_OK) {
            (void)fprintf(stderr, "formvault: no app '%s' in tenant '%s'\n", pos[0], vals[0]);
            goto out;
        }
        json_t *doc = fv_model_app_to_json(app);
        if (!doc || json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
            json_decref(doc);
            (void)fv_cli_fail("export", FV_E_NOMEM, NULL);
            goto out;
        }
        json_decref(doc);
        (void)putchar('\n');
        ret = 0;
    }
out:
    fv_free(text);
    if (t)
        fv_store_tenant_release(t);
    fv_cli_close_store(store);
    return ret;
}

/* ---------------------------------------------------------------- import */

struct import_ui {
    bool tty;
    size_t errors_shown;
    int64_t start_ns;
};

static void import_error(void *arg, size_t row, const char *msg)
{
    struct import_ui *ui = arg;
    if (ui->tty)
        (void)fputs("\r\033[K", stderr);
    (void)fprintf(stderr, "row %zu: %s\n", row, msg);
    ui->errors_shown++;
}

static void import_progress(void *arg, uint64_t done, uint64_t total, size_t rows)
{
    struct import_ui *ui = arg;
    if (!ui->tty)
        return;
    double secs = (double)(fv_time_mono_ns() - ui->start_ns) / 1e9;
    (void)fprintf(stderr, "\r\033[K%zu rows  %.0f rows/s  %.0f%%", rows,
                  secs > 0 ? (double)rows / secs : 0.0,
                  total ? 100.0 * (double)done / (double)total : 100.0);
    (void)fflush(stderr);
}

static int cmd_import(int argc, char **argv)
{
    static const char usage[] =
        "usage: formvault import <file.csv> --tenant NAME --app APP --form FORM\n\n"
        "Import a CSV file (RFC 4180; quoted commas, doubled quotes and line breaks allowed).\n"
        "The header row names the fields (link name or display name). Rows that break a\n"
        "field's rules are reported as 'row N: ...' (the header is row 1) and skipped; valid\n"
        "rows are kept, each written whole. A progress line shows on a terminal.\n"
        "Exit status: 0 all rows imported, 3 some rows rejected, 1 the import failed\n"
        "(nothing of the failing batch written), 2 usage error.\n";
    static const char *const names[] = {"tenant", "app", "form"};
    const char *vals[3] = {NULL, NULL, NULL};
    const char *pos[1];
    struct fv_config cfg;
    struct fv_store *store = NULL;
    if (fv_cli_want_help(argc, argv, usage))
        return 0;
    if (fv_cli_parse_flags(argc, argv, names, vals, 3, pos, 1, usage) != 0)
        return 2;
    if (!pos[0] || !vals[0] || !vals[1] || !vals[2]) {
        (void)fprintf(stderr, "formvault: import needs a file, --tenant, --app and --form\n%s",
                      usage);
        return 2;
    }
    if (fv_cli_load_config(&cfg) != 0 || fv_cli_open_store(&cfg, &store) != 0)
        return 1;
    struct import_ui ui = {isatty(STDERR_FILENO) == 1, 0, fv_time_mono_ns()};
    struct fv_api_import_stats st = {0};
    struct fv_error e;
    fv_error_init(&e);
    int rc = fv_api_import_csv(store, vals[0], vals[1], vals[2], pos[0], import_error,
                               import_progress, &ui, &st, &e);
    fv_cli_close_store(store);
    if (ui.tty)
        (void)fputs("\r\033[K", stderr);
    if (rc != FV_OK)
        return fv_cli_fail(pos[0], rc, &e);
    double secs = (double)(fv_time_mono_ns() - ui.start_ns) / 1e9;
    (void)printf("imported %zu of %zu rows into %s.%s (%zu rejected) in %.1f s\n", st.imported,
                 st.rows, vals[1], vals[2], st.failed, secs);
    /* 3: the file was processed but some rows were rejected (scripts can tell). */
    return st.failed ? 3 : 0;
}

/* ----------------------------------------------------------------- token */

static int parse_duration(const char *s, int64_t *ret)
{
    if (strcmp(s, "never") == 0) {
        *ret = 0;
        return FV_OK;
    }
    size_t len = strlen(s);
    int64_t mult = 1;
    if (len > 1) {
        switch (s[len - 1]) {
        case 's':
            mult = 1;
            len--;
            break;
        case 'm':
            mult = 60;
            len--;
            break;
        case 'h':
            mult = 3600;
            len--;
            break;
        case 'd':
            mult = 86400;
            len--;
            break;
        default:
            break;
        }
    }
    int64_t v;
    if (fv_parse_i64(s, len, &v) != FV_OK || v <= 0 || v > INT64_MAX / 1000 / mult)
        return FV_E_INVALID;
    *ret = v * mult;
    return FV_OK;
}

static int cmd_token(int argc, char **argv)
{
    static const char usage[] =
        "usage: formvault token create --tenant NAME --scopes LIST [--expires DURATION] "
        "[--label TEXT]\n\n"
        "Create an API token bound to one tenant and print it (only once) on stdout.\n"
        "LIST is comma-separated Creator scopes, e.g.\n"
        "  ZohoCreator.form.CREATE,ZohoCreator.report.READ,ZohoCreator.report.UPDATE,\n"
        "  ZohoCreator.report.DELETE,ZohoCreator.meta.form.READ,\n"
        "  ZohoCreator.meta.application.READ,ZohoCreator.dashboard.READ\n"
        "or ZohoCreator.report.ALL for every report scope, or 'all'.\n"
        "DURATION: seconds, or a number with s/m/h/d, or 'never' (default 90d).\n"
        "Send it as 'Authorization: Zoho-oauthtoken <token>' or 'Bearer <token>'.\n";
    static const char *const names[] = {"tenant", "scopes", "expires", "label"};
    const char *vals[4] = {NULL, NULL, NULL, NULL};
    const char *pos[1];
    struct fv_config cfg;
    struct fv_store *store = NULL;
    char token[128];
    if (fv_cli_want_help(argc, argv, usage))
        return 0;
    if (argc < 2 || strcmp(argv[1], "create") != 0) {
        (void)fputs(usage, stderr);
        return 2;
    }
    if (fv_cli_parse_flags(argc - 1, argv + 1, names, vals, 4, pos, 0, usage) != 0)
        return 2;
    if (!vals[0] || !vals[1]) {
        (void)fprintf(stderr, "formvault: token create needs --tenant and --scopes\n%s", usage);
        return 2;
    }
    int64_t ttl = 90 * 86400;
    if (vals[2] && parse_duration(vals[2], &ttl) != FV_OK) {
        (void)fprintf(stderr,
                      "formvault: --expires '%s' is not a duration (e.g. 3600, 12h, 30d, "
                      "never)\n",
                      vals[2]);
        return 2;
    }
    if (fv_cli_load_config(&cfg) != 0 || fv_cli_open_store(&cfg, &store) != 0)
        return 1;
    struct fv_error e;
    fv_error_init(&e);
    int rc = fv_api_token_create(store, vals[0], vals[1], ttl, vals[3], token, sizeof(token), &e);
    fv_cli_close_store(store);
    if (rc != FV_OK)
        return fv_cli_fail("creating the token", rc, &e);
    (void)printf("%s\n", token);
    fv_wipe(token, sizeof(token));
    return 0;
}

/* ------------------------------------------------------------- changelog */

static int cmd_changelog(int argc, char **argv)
{
    static const char usage[] =
        "usage: formvault changelog --tenant NAME [--after SEQ] [--limit N]\n\n"
        "Print the tenant's change log as JSON lines: seq, time, actor, op (insert, update,\n"
        "delete, schema), form, record_id and the new row image.\n";
    static const char *const names[] = {"tenant", "after", "limit"};
    const char *vals[3] = {NULL, NULL, NULL};
    const char *pos[1];
    struct fv_config cfg;
    struct fv_store *store = NULL;
    struct fv_tenant *t = NULL;
    int ret = 1;
    if (fv_cli_want_help(argc, argv, usage))
        return 0;
    if (fv_cli_parse_flags(argc, argv, names, vals, 3, pos, 0, usage) != 0)
        return 2;
    int64_t after = 0, limit = 1000000;
    if (!vals[0] || (vals[1] && fv_parse_i64(vals[1], strlen(vals[1]), &after) != FV_OK) ||
        (vals[2] && (fv_parse_i64(vals[2], strlen(vals[2]), &limit) != FV_OK || limit < 1))) {
        (void)fprintf(stderr,
                      "formvault: changelog needs --tenant; --after and --limit take "
                      "numbers\n%s",
                      usage);
        return 2;
    }
    if (fv_cli_load_config(&cfg) != 0 || fv_cli_open_store(&cfg, &store) != 0)
        return 1;
    if (with_tenant(store, vals[0], &t) != FV_OK)
        goto out;
    for (;;) {
        json_t *rows = NULL;
        size_t chunk = limit > 1000 ? 1000 : (size_t)limit;
        int rc = fv_store_changelog_read(t, after, chunk, &rows);
        if (rc != FV_OK) {
            ret = fv_cli_fail("reading the change log", rc, NULL);
            goto out;
        }
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            char *line = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (line) {
                (void)puts(line);
                free(line);
            }
            after = json_integer_value(json_object_get(row, "seq"));
        }
        size_t got = json_array_size(rows);
        json_decref(rows);
        limit -= (int64_t)got;
        if (got < chunk || limit <= 0)
            break;
    }
    ret = 0;
out:
    if (t)
        fv_store_tenant_release(t);
    fv_cli_close_store(store);
    return ret;
}

/* ---------------------------------------------------------------- config */

static int cmd_config(int argc, char **argv)
{
    static const char usage[] =
        "usage: formvault config docs    print docs/configuration.md (from the settings table)\n"
        "       formvault config show    print the effective settings (file + environment)\n";
    struct fv_buf b;
    if (fv_cli_want_help(argc, argv, usage))
        return 0;
    if (argc != 2) {
        (void)fputs(usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "docs") == 0) {
        fv_buf_init(&b, 1u << 20);
        if (fv_config_docs(&b) != FV_OK)
            return fv_cli_fail("config docs", FV_E_NOMEM, NULL);
        (void)fwrite(b.p, 1, b.len, stdout);
        fv_buf_release(&b);
        return 0;
    }
    if (strcmp(argv[1], "show") == 0) {
        struct fv_config cfg;
        size_t n;
        if (fv_cli_load_config(&cfg) != 0)
            return 1;
        const struct fv_config_entry *t = fv_config_table(&n);
        for (size_t i = 0; i < n; i++) {
            const char *field = (const char *)&cfg + t[i].offset;
            if (t[i].type == FV_CONFIG_STRING)
                (void)printf("%s = %s\n", t[i].name, field);
            else if (t[i].size == sizeof(int64_t))
                (void)printf("%s = %lld\n", t[i].name,
                             (long long)*(const int64_t *)(const void *)field);
            else
                (void)printf("%s = %d\n", t[i].name, *(const int *)(const void *)field);
        }
        return 0;
    }
    (void)fputs(usage, stderr);
    return 2;
}

int main(int argc, char **argv)
{
    int i = 1;
    /* Every command may unwrap keys: no core dumps, no ptrace by other users. */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
            i++;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_main(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            (void)printf("formvault %s\n", FV_VERSION);
            return 0;
        } else {
            (void)fprintf(stderr, "formvault: unknown option '%s'\n", argv[i]);
            usage_main(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage_main(stderr);
        return 2;
    }
    const char *cmd = argv[i];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(sub_argc, sub_argv);
    if (strcmp(cmd, "init") == 0)
        return cmd_init(sub_argc, sub_argv);
    if (strcmp(cmd, "tenant") == 0)
        return cmd_tenant(sub_argc, sub_argv);
    if (strcmp(cmd, "app") == 0)
        return cmd_app(sub_argc, sub_argv);
    if (strcmp(cmd, "import") == 0)
        return cmd_import(sub_argc, sub_argv);
    if (strcmp(cmd, "token") == 0)
        return cmd_token(sub_argc, sub_argv);
    if (strcmp(cmd, "changelog") == 0)
        return cmd_changelog(sub_argc, sub_argv);
    if (strcmp(cmd, "config") == 0)
        return cmd_config(sub_argc, sub_argv);
    if (strcmp(cmd, "keys") == 0)
        return fv_cli_keys(sub_argc, sub_argv);
    if (strcmp(cmd, "version") == 0) {
        if (fv_cli_want_help(sub_argc, sub_argv, "usage: formvault version\n"))
            return 0;
        (void)printf("formvault %s\n", FV_VERSION);
        return 0;
    }
    (void)fprintf(stderr, "formvault: unknown command '%s'\n", cmd);
    usage_main(stderr);
    return 2;
}
