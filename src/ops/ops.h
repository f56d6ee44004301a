/*
 * ops: operational telemetry of a node. For now: request metrics (per
 * route and status counters, a latency histogram per route) and process
 * metrics (resident memory, uptime), rendered in the Prometheus text
 * exposition format 0.0.4 for the operator listener's /metrics.
 *
 * The metrics registry is process-wide: it is the one piece of shared
 * mutable state that request threads write (STYLE 33). Recording is
 * lock-free (<stdatomic.h>, relaxed increments); a short mutex is taken
 * only when a route is seen for the first time. See src/ops/README.md.
 */
#ifndef FV_OPS_H
#define FV_OPS_H

#include <stdint.h>

#include "core/core.h"

/* Distinct routes tracked; further routes are counted under "other". */
#define FV_OPS_ROUTES_MAX 64
/* Distinct statuses tracked per route; further ones are counted as "other". */
#define FV_OPS_STATUSES_MAX 16
/* Route label used when route is NULL or the table is full. */
#define FV_OPS_ROUTE_OTHER "other"

/*
 * Record the process start time for the uptime metric. Idempotent and
 * thread-safe: only the first call counts. Called by the HTTP server at
 * start; fv_ops_metrics_render() calls it too if nobody did.
 */
void fv_ops_metrics_init(void);

/*
 * Count one finished request: route is a route template such as
 * "data.form.add" (borrowed; it must be static storage, because the
 * registry keeps the pointer for the life of the process), status is the
 * HTTP status sent, duration_ns the time from first byte to response
 * completion. NULL route counts as "other". Lock-free after the first
 * observation of a route. Thread-safe.
 */
void fv_ops_metrics_observe(const char *route, int status, int64_t duration_ns);

/*
 * Append the Prometheus text exposition (format 0.0.4) of every metric to
 * out: formvault_http_requests_total{route,status},
 * formvault_http_request_duration_seconds{route} (histogram),
 * process_resident_memory_bytes, process_start_time_seconds and
 * formvault_uptime_seconds. Values are read with relaxed atomics, so a
 * scrape racing with requests sees each counter at some recent value; a
 * histogram's _count always equals its +Inf bucket.
 * Errors: FV_E_LIMIT or FV_E_NOMEM from the buffer (which then frees
 * itself, per fv_buf). Thread-safe.
 */
FV_MUST_CHECK int fv_ops_metrics_render(struct fv_buf *out);

/*
 * Unit tests only: forget every route and counter. Not thread-safe: no
 * other thread may observe or render at the same time.
 */
void fv_ops_metrics_reset(void);

#endif
