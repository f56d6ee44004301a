/*
 * cli.h: helpers shared by the command-line files (main.c, main_keys.c).
 * Not a module: only the formvault executable includes it.
 */
#ifndef FV_CLI_H
#define FV_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "core/core.h"
#include "crypto/crypto.h"
#include "store/store.h"

/* Print "formvault: <what>: <message>" to stderr; returns 1 (exit status). */
int fv_cli_fail(const char *what, int rc, const struct fv_error *e);
/* Load --config / FORMVAULT_CONFIG / defaults and set the log level. 0 or 1. */
int fv_cli_load_config(struct fv_config *cfg);
/* Open the configured KEK (kek_provider). 0, or 1 after printing why. */
int fv_cli_open_kek(const struct fv_config *cfg, struct fv_kek **ret);
/* Open the store under the configured KEK. 0, or 1 after printing why. */
int fv_cli_open_store(const struct fv_config *cfg, struct fv_store **ret);
/* The KEK of the store fv_cli_open_store opened (borrowed), or NULL. */
struct fv_kek *fv_cli_store_kek(void);
/* Close the store and its KEK. Accepts NULL. */
void fv_cli_close_store(struct fv_store *s);
/* 1 when a 'formvault serve' holds data_dir/serve.lock. */
int fv_cli_server_running(const char *data_dir);
/* -h/--help in argv: print usage to stdout and return true. */
bool fv_cli_want_help(int argc, char **argv, const char *usage);
/* --name value pairs into vals[], positional arguments into pos[]; argv[0] skipped. 0 or -1. */
int fv_cli_parse_flags(int argc, char **argv, const char *const *names, const char **vals, size_t n,
                       const char **pos, size_t npos, const char *usage);
/* `formvault keys ...` (main_keys.c). Exit status. */
int fv_cli_keys(int argc, char **argv);

#endif
