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

void fv_log_request(const struct fv_log_request *r)
{
    if (FV_LOG_INFO < atomic_load(&log_min))
        return;
    json_t *o = line_new(FV_LOG_INFO, "request");
    if (!o)
        return;
    (void)json_object_set_new(o, "request_id", json_string(r->request_id ? r->request_id : ""));
    (void)json_object_set_new(o, "method", json_string(r->method ? r->method : ""));
    (void)json_object_set_new(o, "route", json_string(r->route ? r->route : "unknown"));
    (void)json_object_set_new(o, "status", json_integer(r->status));
    if (r->creator_code)
        (void)json_object_set_new(o, "code", json_integer(r->creator_code));
    (void)json_object_set_new(o, "duration_ms", json_real(r->duration_ms));
    (void)json_object_set_new(o, "tenant",
                              r->tenant && r->tenant[0] ? json_string(r->tenant) : json_null());
    emit(o);
    json_decref(o);
}
