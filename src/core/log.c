/*
 * core/log.c: JSON-lines logging. One line per call, written with a single
 * write(2) so lines from different threads never interleave. Messages are
 * built by callers from constants and names; never pass secrets or values.
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

static atomic_int log_min = FV_LOG_INFO;
static atomic_int log_fd = 2;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void fv_log_set_level(enum fv_log_level min)
{
    atomic_store(&log_min, (int)min);
}

void fv_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

static void emit(json_t *o)
{
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!line)
        return;
    size_t n = strlen(line);
    /* Append the newline in place: json_dumps allocated n + 1 bytes. */
    char *withnl = fv_malloc(n + 1);
    if (withnl) {
        memcpy(withnl, line, n);
        withnl[n] = '\n';
        ssize_t w = write(atomic_load(&log_fd), withnl, n + 1);
        (void)w; /* nowhere to report a failed log write */
        fv_free(withnl);
    }
    free(line); /* allocated by jansson with malloc */
}

static json_t *line_new(enum fv_log_level level, const char *msg)
{
    char ts[32];
    fv_time_format_iso(fv_time_now_ms(), ts, sizeof(ts));
    json_t *o = json_object();
    if (!o)
        return NULL;
    (void)json_object_set_new(o, "time", json_string(ts));
    (void)json_object_set_new(o, "level", json_string(level_names[level]));
    (void)json_object_set_new(o, "msg", json_string(msg));
    return o;
}

FV_PRINTF(2, 0) static void vlog(enum fv_log_level level, const char *fmt, va_list ap)
{
    char msg[1024];
    if ((int)level < atomic_load(&log_min))
        return;
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        return;
    json_t *o = line_new(level, msg);
    if (!o)
        return;
    emit(o);
    json_decref(o);
}

void fv_log(enum fv_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void fv_log_kv(enum fv_log_level level, const char *msg, ...)
{
    if ((int)level < atomic_load(&log_min))
        return;
    json_t *o = line_new(level, msg);
    if (!o)
        return;
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        (void)json_object_set_new(o, k, v ? json_string(v) : json_null());
    }
    va_end(ap);
    emit(o);
    json_decref(o);
}

int fv_log_err(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(FV_LOG_ERROR, fmt, ap);
    va_end(ap);
    return rc;
}

/* Append s to out[*n..cap) as a JSON string (quotes and escapes); truncates. */
static void line_str(char *out, size_t cap, size_t *n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    if (*n + 2 >= cap)
        return;
    out[(*n)++] = '"';
    for (; *s && *n + 8 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[(*n)++] = '\\';
            out[(*n)++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            /* Only ASCII reaches this log; anything else is shown escaped. */
            out[(*n)++] = '\\';
            out[(*n)++] = 'u';
            out[(*n)++] = '0';
            out[(*n)++] = '0';
            out[(*n)++] = hex[ch >> 4];
            out[(*n)++] = hex[ch & 15];
        } else {
            out[(*n)++] = (char)ch;
        }
    }
    out[(*n)++] = '"';
}

/* printf-style append to out[*n..cap); truncates. */
FV_PRINTF(4, 5) static void line_fmt(char *out, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    if (*n >= cap)
        return;
    va_start(ap, fmt);
    int k = vsnprintf(out + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (k > 0)
        *n += (size_t)k < cap - *n ? (size_t)k : cap - *n - 1;
}

/*
 * The access log is on the hot path of every request, so it is formatted
 * into one stack buffer (no allocation, no JSON tree) and written with one
 * write(2). Same fields and order as the other lines.
 */
void fv_log_request(const struct fv_log_request *r)
{
    char line[768];
    char ts[32];
    size_t n = 0;
    if (FV_LOG_INFO < atomic_load(&log_min))
        return;
    fv_time_format_iso(fv_time_now_ms(), ts, sizeof(ts));
    line_fmt(line, sizeof(line), &n, "{\"time\":\"%s\",\"level\":\"info\",\"msg\":\"request\"", ts);
    line_fmt(line, sizeof(line), &n, ",\"request_id\":");
    line_str(line, sizeof(line), &n, r->request_id ? r->request_id : "");
    line_fmt(line, sizeof(line), &n, ",\"method\":");
    line_str(line, sizeof(line), &n, r->method ? r->method : "");
    line_fmt(line, sizeof(line), &n, ",\"route\":");
    line_str(line, sizeof(line), &n, r->route ? r->route : "unknown");
    line_fmt(line, sizeof(line), &n, ",\"status\":%d", r->status);
    if (r->creator_code)
        line_fmt(line, sizeof(line), &n, ",\"code\":%d", r->creator_code);
    line_fmt(line, sizeof(line), &n, ",\"duration_ms\":%.3f,\"tenant\":", r->duration_ms);
    if (r->tenant && r->tenant[0])
        line_str(line, sizeof(line), &n, r->tenant);
    else
        line_fmt(line, sizeof(line), &n, "null");
    line_fmt(line, sizeof(line), &n, "}\n");
    if (n == 0 || line[n - 1] != '\n') {
        /* Cannot happen with bounded fields; if it does, log a short valid line
         * rather than cut JSON. */
        n = 0;
        line_fmt(line, sizeof(line), &n,
                 "{\"time\":\"%s\",\"level\":\"info\",\"msg\":\"request\",\"status\":%d,"
                 "\"truncated\":true}\n",
                 ts, r->status);
    }
    ssize_t w = write(atomic_load(&log_fd), line, n);
    (void)w; /* nowhere to report a failed log write */
}
