/*
 * main_keys.c: `formvault keys ...`, the operator's key management
 * (docs/keys.md). Dispatch only: every operation is in store/keys*.c and
 * crypto/.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char keys_usage[] =
    "usage: formvault keys <command> [options]\n\n"
    "  init --kek-file PATH         create a file KEK (32 random bytes, mode 0400) outside\n"
    "                               data_dir; then set kek_file = PATH\n"
    "  init --pkcs11                generate the KEK on the configured PKCS#11 token\n"
    "                               (kek_pkcs11_module, _token, _key, _pin_file)\n"
    "  status                       KEK, node key and every tenant's keys and rotation job\n"
    "  rotate-kek --new-kek-file PATH | --new-pkcs11-key LABEL\n"
    "                               re-wrap every key under a new KEK (server stopped);\n"
    "                               then point the configuration at the new KEK\n"
    "  rotate-tenant <tenant>       new root key version for the tenant; its data is\n"
    "                               re-encrypted in the background and the old version\n"
    "                               destroyed (runs here to the end when no server runs)\n"
    "  resume                       run unfinished rotation jobs here (no server running)\n"
    "  import-params <tenant> [--out FILE]\n"
    "                               BYOK: a transport public key (RSA-3072, 24 h) to wrap\n"
    "                               the tenant's own KEK for import\n"
    "  import <tenant> --wrapped FILE\n"
    "                               BYOK: import the tenant KEK (RSA-OAEP-SHA256 ciphertext)\n"
    "  wrap-for-import --public PEM --key FILE --out FILE\n"
    "                               the importer's side: encrypt a 32-byte key file for the\n"
    "                               transport key (same as openssl pkeyutl, docs/keys.md)\n"
    "  use-pkcs11 <tenant> --module SO --token LABEL --key LABEL --pin-file FILE\n"
    "                               BYOK: wrap the tenant's keys on its own PKCS#11 token\n"
    "  revoke <tenant>              BYOK: revoke the tenant's KEK; its data is unreadable\n"
    "  restore <tenant>             BYOK (PKCS#11): undo a revocation\n";

static int tenant_id_of(struct fv_store *store, const char *name, int64_t *ret)
{
    struct fv_store_tenant_info info;
    int rc = fv_store_tenant_find(store, name, &info);
    if (rc != FV_OK) {
        (void)fprintf(stderr, "formvault: tenant '%s': %s\n", name, fv_err_describe(rc));
        return 1;
    }
    *ret = info.id;
    return 0;
}

static int read_small_file(const char *path, uint8_t *buf, size_t cap, size_t *ret_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FV_E_IO;
    size_t off = 0;
    for (;;) {
        ssize_t n = read(fd, buf + off, cap - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            (void)close(fd);
            return FV_E_IO;
        }
        if (n == 0)
            break;
        off += (size_t)n;
        if (off == cap) {
            (void)close(fd);
            return FV_E_LIMIT;
        }
    }
    (void)close(fd);
    *ret_len = off;
    return FV_OK;
}

static int write_new_file(const char *path, const void *p, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return FV_E_IO;
    const uint8_t *b = p;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, b + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            (void)close(fd);
            return FV_E_IO;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        (void)close(fd);
        return FV_E_IO;
    }
    return close(fd) == 0 ? FV_OK : FV_E_IO;
}

/* --------------------------------------------------------------- init */

static int keys_init(const struct fv_config *cfg, const char *kek_file, bool pkcs11)
{
    struct fv_error e;
    fv_error_init(&e);
    if (pkcs11) {
        char pin[256];
        int rc = fv_file_read_private_line(cfg->kek_pkcs11_pin_file, pin, sizeof(pin), &e);
        if (rc == FV_OK)
            rc = fv_crypto_kek_pkcs11_generate(cfg->kek_pkcs11_module, cfg->kek_pkcs11_token,
                                               cfg->kek_pkcs11_key, pin, &e);
        fv_wipe(pin, sizeof(pin));
        if (rc != FV_OK)
            return fv_cli_fail("generating the KEK on the token", rc, &e);
        (void)printf("generated KEK 'pkcs11:%s/%s' on the token; set kek_provider = pkcs11\n",
                     cfg->kek_pkcs11_token, cfg->kek_pkcs11_key);
        return 0;
    }
    int rc = fv_crypto_kek_file_create(kek_file, cfg->data_dir, &e);
    if (rc != FV_OK)
        return fv_cli_fail("creating the KEK file", rc, &e);
    (void)printf("created KEK file %s (mode 0400). Keep it apart from the data directory and "
                 "its backups, and set:\n  kek_file = %s\n",
                 kek_file, kek_file);
    return 0;
}

/* ------------------------------------------------------------- status */

static int keys_status(const struct fv_config *cfg, struct fv_store *store, struct fv_kek *kek)
{
    struct fv_store_key_status *st = NULL;
    size_t n = 0;
    int rc = fv_store_keys_status(store, &st, &n);
    if (rc != FV_OK)
        return fv_cli_fail("reading key state", rc, NULL);
    int check = fv_crypto_kek_check(kek);
    (void)printf("KEK        %s (%s) %s\n", fv_crypto_kek_id(kek), cfg->kek_provider,
                 check == FV_OK ? "reachable" : "UNREACHABLE");
    (void)printf("node key   %s/node.key, wrapped by the KEK; encrypts catalog.db\n",
                 cfg->data_dir);
    (void)printf("server     %s\n\n",
                 fv_cli_server_running(cfg->data_dir) ? "running" : "not running");
    (void)printf("%-6s %-20s %-9s %-28s %-12s %s\n", "ID", "TENANT", "STATE", "KEK", "VERSIONS",
                 "ROTATION");
    for (size_t i = 0; i < n; i++) {
        char kekdesc[FV_CRYPTO_KEK_ID_MAX + 32], versions[96] = "", job[256] = "-";
        if (strcmp(st[i].kek_kind, "node") == 0)
            (void)snprintf(kekdesc, sizeof(kekdesc), "node KEK");
        else
            (void)snprintf(kekdesc, sizeof(kekdesc), "%s%s", st[i].kek_id,
                           strcmp(st[i].kek_state, "revoked") == 0 ? " REVOKED" : "");
        size_t off = 0;
        for (size_t k = 0; k < st[i].n_versions; k++) {
            int w = snprintf(versions + off, sizeof(versions) - off, "%sv%u%s", k ? "," : "",
                             st[i].versions[k].version,
                             strcmp(st[i].versions[k].state, "active") == 0 ? "" : "(destroyed)");
            if (w < 0 || (size_t)w >= sizeof(versions) - off)
                break;
            off += (size_t)w;
        }
        if (!versions[0])
            (void)fv_strlcpy(versions, "none", sizeof(versions));
        if (st[i].job_phase[0]) {
            int pct = st[i].job_total > 0 ? (int)(100 * st[i].job_done / st[i].job_total) : 100;
            if (strcmp(st[i].job_phase, "fields") != 0)
                pct = 100;
            (void)snprintf(job, sizeof(job), "v%u->v%u %s %lld/%lld values (%d%%)%s%s",
                           st[i].job_from, st[i].job_to, st[i].job_phase, (long long)st[i].job_done,
                           (long long)st[i].job_total, pct,
                           st[i].job_error[0] ? " last error: " : "", st[i].job_error);
        }
        (void)printf("%-6lld %-20s %-9s %-28s %-12s %s\n", (long long)st[i].tenant_id, st[i].name,
                     st[i].tenant_state, kekdesc, versions, job);
    }
    fv_free(st);
    return 0;
}

/* Run rotation jobs here until none is left, printing progress. */
static int run_jobs(struct fv_store *store)
{
    int64_t last = 0;
    for (;;) {
        size_t pending = 0;
        struct fv_error e;
        fv_error_init(&e);
        bool progress = true;
        int rc = fv_store_keys_jobs_run(store, 1000, &pending, &progress, &e);
        if (rc != FV_OK)
            return fv_cli_fail("re-encrypting (run 'formvault keys resume' to continue)", rc, &e);
        if (pending == 0)
            break;
        if (!progress)
            (void)usleep(200 * 1000); /* another live process holds the job's lease */
        int64_t now = fv_time_now_ms();
        if (now - last > 1000) {
            struct fv_store_key_status *st = NULL;
            size_t n = 0;
            if (fv_store_keys_status(store, &st, &n) == FV_OK) {
                for (size_t i = 0; i < n; i++)
                    if (st[i].job_phase[0] && strcmp(st[i].job_phase, "done") != 0)
                        (void)fprintf(stderr, "tenant %s: v%u->v%u %s %lld/%lld\n", st[i].name,
                                      st[i].job_from, st[i].job_to, st[i].job_phase,
                                      (long long)st[i].job_done, (long long)st[i].job_total);
                fv_free(st);
            }
            last = now;
        }
    }
    return 0;
}

/* --------------------------------------------------------------- main */

int fv_cli_keys(int argc, char **argv)
{
    static const char *const names[] = {"kek-file", "pkcs11",  "new-kek-file", "new-pkcs11-key",
                                        "out",      "wrapped", "public",       "key",
                                        "module",   "token",   "pin-file"};
    enum {
        O_KEKFILE,
        O_PKCS11,
        O_NEWFILE,
        O_NEWP11,
        O_OUT,
        O_WRAPPED,
        O_PUBLIC,
        O_KEY,
        O_MODULE,
        O_TOKEN,
        O_PIN,
        O_N
    };
    const char *vals[O_N] = {NULL};
    const char *pos[1] = {NULL};
    struct fv_config cfg;
    struct fv_store *store = NULL;
    struct fv_kek *new_kek = NULL;
    struct fv_error e;
    int lock_fd = -1;
    int ret = 1;

    if (fv_cli_want_help(argc, argv, keys_usage))
        return 0;
    if (argc < 2) {
        (void)fputs(keys_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    /* --pkcs11 takes no value: give it one for the flag parser. */
    char *args[64];
    int nargs = 0;
    for (int i = 1; i < argc && nargs < (int)FV_ARRAY_LEN(args); i++)
        args[nargs++] = strcmp(argv[i], "--pkcs11") == 0 ? (char *)"--pkcs11=1" : argv[i];
    if (fv_cli_parse_flags(nargs, args, names, vals, O_N, pos, 1, keys_usage) != 0)
        return 2;
    if (fv_cli_load_config(&cfg) != 0)
        return 1;
    fv_error_init(&e);

    if (strcmp(sub, "init") == 0) {
        if (!vals[O_KEKFILE] == !vals[O_PKCS11]) {
            (void)fprintf(stderr, "formvault: keys init needs --kek-file PATH or --pkcs11\n");
            return 2;
        }
        return keys_init(&cfg, vals[O_KEKFILE], vals[O_PKCS11] != NULL);
    }
    if (strcmp(sub, "wrap-for-import") == 0) {
        uint8_t key[64], pem[16384], out[1024];
        size_t klen = 0, plen = 0, olen = 0;
        struct fv_secret *k = NULL;
        if (!vals[O_PUBLIC] || !vals[O_KEY] || !vals[O_OUT]) {
            (void)fprintf(stderr,
                          "formvault: wrap-for-import needs --public PEM --key FILE --out FILE\n");
            return 2;
        }
        int rc = read_small_file(vals[O_KEY], key, sizeof(key), &klen);
        if (rc == FV_OK && klen != FV_CRYPTO_KEY_BYTES)
            rc = fv_error_set(&e, FV_E_INVALID, SIZE_MAX, "'%s' holds %zu bytes, expected 32",
                              vals[O_KEY], klen);
        if (rc == FV_OK)
            rc = read_small_file(vals[O_PUBLIC], pem, sizeof(pem) - 1, &plen);
        if (rc == FV_OK) {
            pem[plen] = '\0';
            rc = fv_crypto_secret_copy(&k, key, klen);
        }
        fv_wipe(key, sizeof(key));
        if (rc == FV_OK)
            rc = fv_crypto_transport_wrap(out, sizeof(out), &olen, k, (const char *)pem);
        fv_crypto_secret_free(k);
        if (rc == FV_OK)
            rc = write_new_file(vals[O_OUT], out, olen, 0600);
        if (rc != FV_OK)
            return fv_cli_fail("wrapping the key for import", rc, &e);
        (void)printf("wrote %s (%zu bytes, RSA-OAEP-SHA256)\n", vals[O_OUT], olen);
        return 0;
    }

    if (fv_cli_open_store(&cfg, &store) != 0)
        return 1;
    int64_t tid = 0;
    bool needs_tenant = strcmp(sub, "rotate-tenant") == 0 || strcmp(sub, "import-params") == 0 ||
                        strcmp(sub, "import") == 0 || strcmp(sub, "use-pkcs11") == 0 ||
                        strcmp(sub, "revoke") == 0 || strcmp(sub, "restore") == 0;
    if (needs_tenant) {
        if (!pos[0]) {
            (void)fprintf(stderr, "formvault: keys %s needs a tenant name\n", sub);
            ret = 2;
            goto out;
        }
        if (tenant_id_of(store, pos[0], &tid) != 0)
            goto out;
    }

    if (strcmp(sub, "status") == 0) {
        ret = keys_status(&cfg, store, fv_cli_store_kek());
    } else if (strcmp(sub, "rotate-kek") == 0) {
        int rc;
        size_t n = 0;
        if (!vals[O_NEWFILE] == !vals[O_NEWP11]) {
            (void)fprintf(stderr, "formvault: rotate-kek needs --new-kek-file PATH or "
                                  "--new-pkcs11-key LABEL\n");
            ret = 2;
            goto out;
        }
        /* Hold serve.lock for the whole rotation: no server starts meanwhile. */
        char lock_path[FV_CONFIG_PATH_MAX + 16];
        (void)snprintf(lock_path, sizeof(lock_path), "%s/serve.lock", cfg.data_dir);
        lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
            (void)fprintf(stderr, "formvault: stop the server first: it holds the current KEK "
                                  "(KEK rotation rewrites node.key)\n");
            goto out;
        }
        if (vals[O_NEWFILE]) {
            rc = fv_crypto_kek_file_open(&new_kek, vals[O_NEWFILE], cfg.data_dir, &e);
        } else {
            char pin[256];
            rc = fv_file_read_private_line(cfg.kek_pkcs11_pin_file, pin, sizeof(pin), &e);
            if (rc == FV_OK)
                rc = fv_crypto_kek_pkcs11_open(&new_kek, cfg.kek_pkcs11_module,
                                               cfg.kek_pkcs11_token, vals[O_NEWP11], pin, &e);
            fv_wipe(pin, sizeof(pin));
        }
        if (rc == FV_OK)
            rc = fv_store_keys_rotate_kek(store, new_kek, &n, &e);
        if (rc != FV_OK) {
            ret = fv_cli_fail("rotating the KEK", rc, &e);
            goto out;
        }
        (void)printf("re-wrapped %zu keys under KEK '%s'. Now set %s and restart the server.\n", n,
                     fv_crypto_kek_id(new_kek),
                     vals[O_NEWFILE] ? "kek_file to the new file"
                                     : "kek_pkcs11_key to the new label");
        ret = 0;
    } else if (strcmp(sub, "rotate-tenant") == 0) {
        uint32_t v = 0;
        int rc = fv_store_keys_rotate_tenant(store, tid, &v, &e);
        if (rc != FV_OK) {
            ret = fv_cli_fail("rotating the tenant key", rc, &e);
            goto out;
        }
        (void)printf("tenant '%s': root key version %u is now used for new writes\n", pos[0], v);
        if (fv_cli_server_running(cfg.data_dir)) {
            (void)printf("the server re-encrypts the older data in the background; follow it "
                         "with 'formvault keys status'\n");
            ret = 0;
        } else {
            ret = run_jobs(store);
            if (ret == 0)
                (void)printf("re-encrypted; older versions destroyed\n");
        }
    } else if (strcmp(sub, "resume") == 0) {
        if (fv_cli_server_running(cfg.data_dir)) {
            (void)printf("the server is running: it resumes rotation jobs itself\n");
            ret = 0;
        } else {
            ret = run_jobs(store);
        }
    } else if (strcmp(sub, "import-params") == 0) {
        char *pem = NULL;
        int64_t expires = 0;
        int rc = fv_store_keys_import_params(store, tid, &pem, &expires, &e);
        if (rc != FV_OK) {
            ret = fv_cli_fail("creating the transport key", rc, &e);
            goto out;
        }
        char ts[32];
        fv_time_format_iso(expires, ts, sizeof(ts));
        if (vals[O_OUT]) {
            rc = write_new_file(vals[O_OUT], pem, strlen(pem), 0644);
            if (rc != FV_OK) {
                fv_free(pem);
                ret = fv_cli_fail("writing the transport key", rc, NULL);
                goto out;
            }
            (void)fprintf(stderr, "wrote %s; valid until %s\n", vals[O_OUT], ts);
        } else {
            (void)fputs(pem, stdout);
            (void)fprintf(stderr, "transport key valid until %s\n", ts);
        }
        fv_free(pem);
        ret = 0;
    } else if (strcmp(sub, "import") == 0) {
        uint8_t buf[1024];
        size_t len = 0;
        char kid[FV_CRYPTO_KEK_ID_MAX];
        if (!vals[O_WRAPPED]) {
            (void)fprintf(stderr, "formvault: keys import needs --wrapped FILE\n");
            ret = 2;
            goto out;
        }
        int rc = read_small_file(vals[O_WRAPPED], buf, sizeof(buf), &len);
        if (rc != FV_OK) {
            ret = fv_cli_fail("reading the wrapped key", rc, NULL);
            goto out;
        }
        rc = fv_store_keys_import(store, tid, buf, len, kid, sizeof(kid), &e);
        if (rc != FV_OK) {
            ret = fv_cli_fail("importing the tenant KEK", rc, &e);
            goto out;
        }
        (void)printf("tenant '%s' now uses its own KEK '%s'\n", pos[0], kid);
        ret = 0;
    } else if (strcmp(sub, "use-pkcs11") == 0) {
        if (!vals[O_MODULE] || !vals[O_TOKEN] || !vals[O_KEY] || !vals[O_PIN]) {
            (void)fprintf(stderr,
                          "formvault: use-pkcs11 needs --module --token --key --pin-file\n");
            ret = 2;
            goto out;
        }
        int rc = fv_store_keys_use_pkcs11(store, tid, vals[O_MODULE], vals[O_TOKEN], vals[O_KEY],
                                          vals[O_PIN], &e);
        if (rc != FV_OK) {
            ret = fv_cli_fail("moving the tenant to its PKCS#11 KEK", rc, &e);
            goto out;
        }
        (void)printf("tenant '%s' now uses KEK 'pkcs11:%s/%s'\n", pos[0], vals[O_TOKEN],
                     vals[O_KEY]);
        ret = 0;
    } else if (strcmp(sub, "revoke") == 0 || strcmp(sub, "restore") == 0) {
        bool revoke = strcmp(sub, "revoke") == 0;
        int rc =
            revoke ? fv_store_keys_revoke(store, tid, &e) : fv_store_keys_restore(store, tid, &e);
        if (rc != FV_OK) {
            ret = fv_cli_fail(revoke ? "revoking the tenant KEK" : "restoring the tenant KEK", rc,
                              &e);
            goto out;
        }
        (void)printf(revoke ? "tenant '%s': KEK revoked; its data is unreadable\n"
                            : "tenant '%s': KEK restored\n",
                     pos[0]);
        ret = 0;
    } else {
        (void)fprintf(stderr, "formvault: unknown keys command '%s'\n%s", sub, keys_usage);
        ret = 2;
    }
out:
    fv_cli_close_store(store); /* may use new_kek after a KEK rotation */
    fv_crypto_kek_free(new_kek);
    if (lock_fd >= 0)
        (void)close(lock_fd);
    return ret;
}
