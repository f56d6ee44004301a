/*
 * core: errors, memory, bounded buffers, string views, logging, time,
 * randomness and configuration. Every other module builds on this one; it
 * depends only on libc, libsodium (randomness, wiping) and jansson (log
 * lines). See src/core/README.md for invariants.
 */
#ifndef FV_CORE_H
#define FV_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FV_MUST_CHECK __attribute__((warn_unused_result))
#define FV_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define FV_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- errors */

/*
 * The one error type. FV_OK is 0; every failure is negative. The first block
 * are the generic causes named in STYLE.md; the second block are the causes
 * the Creator API distinguishes, so that api/error_map.c can map each to an
 * HTTP status and Creator `code` in one table. docs/errors.md gives cause and
 * remedy for each; fv_strerror() names it.
 */
enum fv_err {
    FV_OK = 0,
    FV_E_NOMEM = -1,           /* allocation failed */
    FV_E_IO = -2,              /* file or socket I/O failed */
    FV_E_CORRUPT = -3,         /* stored data failed a consistency check */
    FV_E_NOT_FOUND = -4,       /* generic: named object does not exist */
    FV_E_INVALID = -5,         /* generic: input breaks a rule */
    FV_E_DENIED = -6,          /* caller lacks a permission */
    FV_E_LIMIT = -7,           /* a configured limit was exceeded */
    FV_E_CONFLICT = -8,        /* unique constraint or concurrent change */
    FV_E_KEY_UNAVAILABLE = -9, /* a key needed to read the data is missing */
    FV_E_BUSY = -10,           /* resource temporarily busy; retry */
    FV_E_INTERNAL = -11,       /* unexpected library failure (logged) */

    FV_E_NO_ROUTE = -20,         /* URL matches no API route */
    FV_E_METHOD = -21,           /* HTTP method not valid for this URL */
    FV_E_AUTH = -22,             /* token missing, invalid or expired */
    FV_E_SCOPE = -23,            /* token lacks the endpoint's scope */
    FV_E_PARAM = -24,            /* mandatory parameter missing or bad */
    FV_E_UNKNOWN_PARAM = -25,    /* unsupported request parameter */
    FV_E_BODY = -26,             /* body missing, not JSON or wrong shape */
    FV_E_BODY_TOO_LARGE = -27,   /* body over max_body_bytes */
    FV_E_NO_OWNER = -28,         /* no such account owner (tenant) */
    FV_E_NO_APP = -29,           /* no application with that link name */
    FV_E_NO_FORM = -30,          /* no form with that link name */
    FV_E_NO_REPORT = -31,        /* no report with that link name */
    FV_E_NO_RECORD = -32,        /* no record with that ID */
    FV_E_NO_MATCH = -33,         /* criteria matched no record (update/delete) */
    FV_E_NO_FIELD = -34,         /* no field with that link name */
    FV_E_VALIDATION = -35,       /* a value breaks its field's rules */
    FV_E_TOO_MANY_RECORDS = -36, /* more than 200 records in one add */
    FV_E_TOO_MANY_MATCHES = -37, /* >200 matches without process_until_limit */
    FV_E_FETCH_LIMIT = -38,      /* limit/max_records over what one fetch allows */
    FV_E_CRITERIA = -39,         /* criteria expression does not parse/compile */
    FV_E_CURSOR = -40,           /* record_cursor invalid or stale */
    FV_E_TOO_MANY_DIGITS = -41,  /* number value has too many digits */
    FV_E_DECIMAL_FORMAT = -42,   /* value does not fit decimal/percent/currency */
    FV_E_READ_ONLY = -43,        /* node or field is read-only */
    FV_E_EMPTY_REPORT = -44,     /* report holds no records (GET) */
    FV_E_NO_FORMS = -45,         /* app has no forms */
    FV_E_NO_REPORTS = -46,       /* app has no reports */
    FV_E_NO_RESULT = -47,        /* GET criteria matched no record */
    FV_E_NO_PAGES = -48,         /* app has no pages */
};

/* Name of an fv_err ("FV_E_NOMEM"); never NULL, static storage. */
const char *fv_strerror(int rc);

/* Short lower-case description of an fv_err for clients; static storage. */
const char *fv_err_describe(int rc);

/*
 * Detailed error for parsers of user input (STYLE 12): code, byte position
 * in the input (SIZE_MAX when not positional) and a lower-case message that
 * may quote user-supplied names but never values of secret fields.
 */
#define FV_ERROR_MSG_MAX 256
struct fv_error {
    int code;
    size_t pos;
    char msg[FV_ERROR_MSG_MAX];
};

/* Reset to FV_OK, no message. */
void fv_error_init(struct fv_error *e);

/*
 * Record an error in *e (e may be NULL: then only the code is returned).
 * Returns code, so callers write `return fv_error_set(e, FV_E_INVALID, ...)`.
 * Keeps the first error: a later call does not overwrite a set error.
 */
int fv_error_set(struct fv_error *e, int code, size_t pos, const char *fmt, ...) FV_PRINTF(4, 5);

/* Aborts with file and line; stays on in release builds (STYLE 14). */
#define FV_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fv_assert_fail(#cond, __FILE__, __LINE__);                                             \
    } while (0)
_Noreturn void fv_assert_fail(const char *expr, const char *file, int line);

/* ---------------------------------------------------------------- memory */

/*
 * Allocation wrappers. All other modules allocate through these so the
 * allocation-failure hook can fail the Nth call (STYLE 15, 34). They return
 * NULL on failure and never abort. fv_free(NULL) is a no-op.
 */
void *fv_malloc(size_t n);
void *fv_calloc(size_t count, size_t size);
void *fv_realloc(void *p, size_t n);
char *fv_strdup(const char *s);
char *fv_strndup(const char *s, size_t n);
void fv_free(void *p);
#define FV_FREE(p)                                                                                 \
    do {                                                                                           \
        fv_free(p);                                                                                \
        (p) = NULL;                                                                                \
    } while (0)

/*
 * Test hook: make the n-th allocation from now fail (n >= 1), and every one
 * after it while `sticky`; n = 0 disables. Process-wide, not thread-safe:
 * unit tests only.
 */
void fv_mem_fail_at(long n, bool sticky);
/* Number of allocations made since the last fv_mem_fail_at() call. */
long fv_mem_count(void);

/* Wipe memory that held secret material (sodium_memzero). */
void fv_wipe(void *p, size_t n);

/*
 * First line (without its newline) of a small file that only its owner can
 * read: PIN files and similar secrets. out[cap] receives at most cap - 1
 * bytes; the caller wipes it. Refuses symlinks, non-regular files and modes
 * with group/other bits. Errors: FV_E_KEY_UNAVAILABLE (cannot open),
 * FV_E_INVALID (wrong kind or mode, empty); reterr names the path.
 */
FV_MUST_CHECK int fv_file_read_private_line(const char *path, char *out, size_t cap,
                                            struct fv_error *reterr);

/* Constant-time equality of two n-byte buffers (sodium_memcmp): true if equal. */
bool fv_ct_equal(const void *a, const void *b, size_t n);

/* Fill p with n cryptographically random bytes (libsodium). */
void fv_random_bytes(void *p, size_t n);

/* ----------------------------------------------------------- string views */

/* Borrowed view of bytes; owns nothing. Not NUL-terminated in general. */
struct fv_str {
    const char *p;
    size_t len;
};
#define FV_STR_LIT(s) ((struct fv_str){(s), sizeof(s) - 1})
struct fv_str fv_str_from_cstr(const char *s);
bool fv_str_eq_cstr(struct fv_str s, const char *c);

/*
 * Bounded copy of src into dst[cap], always NUL-terminated when cap > 0.
 * Returns FV_OK, or FV_E_LIMIT if src did not fit (dst then holds a
 * truncated copy).
 */
int fv_strlcpy(char *dst, const char *src, size_t cap);

/* Parse a decimal signed 64-bit integer, the whole string; FV_E_INVALID otherwise. */
FV_MUST_CHECK int fv_parse_i64(const char *s, size_t len, int64_t *ret);
/* Same for unsigned 64-bit (no sign allowed). */
FV_MUST_CHECK int fv_parse_u64(const char *s, size_t len, uint64_t *ret);

/* --------------------------------------------------------------- buffers */

/*
 * Growable byte buffer with a hard maximum (curl dynbuf, STYLE 22). Always
 * NUL-terminated after a successful append. When an append would exceed max
 * or allocation fails, the buffer frees its storage (len = 0) and the append
 * returns FV_E_LIMIT or FV_E_NOMEM.
 */
struct fv_buf {
    char *p;
    size_t len;
    size_t cap;
    size_t max;
};
void fv_buf_init(struct fv_buf *b, size_t max);
void fv_buf_release(struct fv_buf *b);
void fv_buf_reset(struct fv_buf *b); /* len = 0, keeps storage */
FV_MUST_CHECK int fv_buf_append(struct fv_buf *b, const void *p, size_t len);
FV_MUST_CHECK int fv_buf_append_cstr(struct fv_buf *b, const char *s);
FV_MUST_CHECK int fv_buf_appendf(struct fv_buf *b, const char *fmt, ...) FV_PRINTF(2, 3);
/* Give the storage to the caller (free with fv_free); buffer is re-inited. */
char *fv_buf_detach(struct fv_buf *b, size_t *ret_len);

/* ------------------------------------------------------------------ time */

/* Wall clock, milliseconds since the Unix epoch. */
int64_t fv_time_now_ms(void);
/* Monotonic clock, nanoseconds from an arbitrary origin. */
int64_t fv_time_mono_ns(void);
/* UTC "YYYY-MM-DDTHH:MM:SS.mmmZ" into out[cap >= 25]. */
void fv_time_format_iso(int64_t ms, char *out, size_t cap);

/* --------------------------------------------------------------- logging */

enum fv_log_level { FV_LOG_DEBUG, FV_LOG_INFO, FV_LOG_WARN, FV_LOG_ERROR };

/*
 * Logging goes to one sink (stderr by default) as JSON lines. Thread-safe:
 * each line is written with one write(2). Library modules log only at debug
 * level (STYLE 29). Never pass a secret or a field value.
 */
void fv_log_set_level(enum fv_log_level min);
/* Send lines to fd instead of stderr (fd is borrowed). */
void fv_log_set_fd(int fd);
/* {"time":..,"level":..,"msg":<formatted>} */
void fv_log(enum fv_log_level level, const char *fmt, ...) FV_PRINTF(2, 3);
/*
 * Log msg (a constant) with extra string fields given as NULL-terminated
 * key/value pairs: fv_log_kv(FV_LOG_INFO, "request", "route", r, NULL).
 */
void fv_log_kv(enum fv_log_level level, const char *msg, ...);
/* Log and return rc: `return fv_log_err(rc, "opening '%s'", name);` */
int fv_log_err(int rc, const char *fmt, ...) FV_PRINTF(2, 3);

/* One access-log line per request (fields per issue 2 item 9). */
struct fv_log_request {
    const char *request_id;
    const char *method;
    const char *route;  /* route template, never the raw URL with values */
    const char *tenant; /* may be NULL */
    int status;
    int creator_code; /* 0 if none */
    double duration_ms;
};
void fv_log_request(const struct fv_log_request *r);

/* --------------------------------------------------------- configuration */

/*
 * The validated, unchanging runtime configuration (STYLE 5, 31). Every key
 * is one row in the table in config.c: name, type, default, bounds, the
 * FORMVAULT_<NAME> environment override and help text. docs/configuration.md
 * is generated from the same table (`formvault config docs`) and a test fails
 * when it drifts.
 */
#define FV_CONFIG_PATH_MAX 1024
struct fv_config {
    char data_dir[FV_CONFIG_PATH_MAX];
    char bind[64];                                /* public listener address */
    int https_port;                               /* public HTTPS port */
    int http_port;                                /* plain-HTTP redirect port; 0 disables */
    char operator_bind[64];                       /* operator listener address */
    int operator_port;                            /* operator HTTPS port */
    char public_url[256];                         /* external base URL for redirects; "" = derive */
    char tls_cert[FV_CONFIG_PATH_MAX];            /* PEM cert; "" = self-signed in data dir */
    char tls_key[FV_CONFIG_PATH_MAX];             /* PEM key */
    int threads;                                  /* HTTP worker threads; 0 = number of cores */
    int write_threads;                            /* threads that run writes (group commit) */
    int max_connections;                          /* connection limit per listener */
    int connection_timeout_s;                     /* idle keep-alive timeout, seconds */
    int64_t max_body_bytes;                       /* largest accepted request body, bytes */
    int max_records_per_write;                    /* records per add request (Creator: 200) */
    int max_json_depth;                           /* nesting limit for request bodies */
    int tenant_cache_size;                        /* open tenant databases kept */
    int group_commit_max;                         /* writes folded into one commit at most */
    char region[16];                              /* this node's region, e.g. "us" */
    char log_level[16];                           /* debug, info, warn, error */
    char log_file[FV_CONFIG_PATH_MAX];            /* "" = stderr */
    char kek_provider[16];                        /* "file" or "pkcs11" */
    char kek_file[FV_CONFIG_PATH_MAX];            /* file provider: 32-byte key, outside data_dir */
    char kek_pkcs11_module[FV_CONFIG_PATH_MAX];   /* pkcs11: module .so */
    char kek_pkcs11_token[64];                    /* pkcs11: token label */
    char kek_pkcs11_key[64];                      /* pkcs11: AES key label */
    char kek_pkcs11_pin_file[FV_CONFIG_PATH_MAX]; /* pkcs11: file holding the user PIN */
    int key_check_interval_ms;                    /* how often key state is re-checked */
};

enum fv_config_type { FV_CONFIG_STRING, FV_CONFIG_INT };

/* One row of the settings table (exported for docs and --help). */
struct fv_config_entry {
    const char *name;
    enum fv_config_type type;
    const char *default_value;
    int64_t min, max; /* INT: bounds; STRING: max length is the field size */
    size_t offset;    /* into struct fv_config */
    size_t size;      /* field size in bytes */
    const char *help;
};
/* The table and its length; static storage. */
const struct fv_config_entry *fv_config_table(size_t *ret_n);

/* Fill cfg with the embedded defaults. */
void fv_config_defaults(struct fv_config *cfg);

/*
 * Load configuration: defaults, then the INI file at path (if path is not
 * NULL; a missing file named explicitly is an error), then FORMVAULT_<KEY>
 * environment variables, then validation. Keys may sit at top level or under
 * a [formvault] section. Unknown keys, values out of range and malformed
 * numbers are FV_E_INVALID with a message naming the key and its source.
 * Returns FV_OK, FV_E_INVALID, FV_E_IO (file unreadable) or FV_E_NOMEM.
 */
FV_MUST_CHECK int fv_config_load(const char *path, struct fv_config *ret_cfg,
                                 struct fv_error *reterr);

/* Set one key from a string (used by the loader and by CLI flags). */
FV_MUST_CHECK int fv_config_set(struct fv_config *cfg, const char *key, const char *value,
                                struct fv_error *reterr);

/* Write docs/configuration.md's content (Markdown) to buf. */
FV_MUST_CHECK int fv_config_docs(struct fv_buf *buf);

#endif
