/*
 * ops/metrics.c: the process-wide metrics registry and its Prometheus text
 * rendering. See ops.h for the contract and README.md for the invariants.
 *
 * Layout: a fixed table of route slots. A slot is published by storing its
 * name and then incrementing n_routes with release order; readers load
 * n_routes with acquire order and only look at slots below it, so they
 * never see a half-initialised slot. Counters inside a slot are relaxed
 * atomics: they need atomicity, not ordering. Status slots inside a route
 * are claimed with a compare-and-swap from 0 (free) to the status code.
 */
#include "ops/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* Histogram upper bounds in nanoseconds and as rendered `le` labels. */
static const int64_t bucket_bounds_ns[] = {
    500000LL,    1000000LL,   2500000LL,   5000000LL,    10000000LL,   25000000LL,   50000000LL,
    100000000LL, 250000000LL, 500000000LL, 1000000000LL, 2500000000LL, 5000000000LL, 10000000000LL,
};
static const char *const bucket_labels[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10",
};
#define N_BOUNDS FV_ARRAY_LEN(bucket_bounds_ns)
_Static_assert(FV_ARRAY_LEN(bucket_bounds_ns) == FV_ARRAY_LEN(bucket_labels),
               "one label per bucket bound");

struct route_slot {
    _Atomic(const char *) name;
    /* Non-cumulative counts; index N_BOUNDS is the +Inf bucket. */
    atomic_uint_least64_t buckets[N_BOUNDS + 1];
    atomic_uint_least64_t sum_ns;
    atomic_int status_code[FV_OPS_STATUSES_MAX]; /* 0 = free slot */
    atomic_uint_least64_t status_count[FV_OPS_STATUSES_MAX];
    atomic_uint_least64_t status_other; /* statuses beyond the slots or invalid */
};

/* routes[FV_OPS_ROUTES_MAX] is the overflow slot "other", always present. */
static struct route_slot routes[FV_OPS_ROUTES_MAX + 1];
static atomic_size_t n_routes;
static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;

static atomic_int_least64_t start_mono_ns;
static atomic_int_least64_t start_wall_ms;

void fv_ops_metrics_init(void)
{
    int_least64_t zero = 0;

    /* Only the first caller wins; later calls leave the start time alone. */
    (void)atomic_compare_exchange_strong(&start_wall_ms, &zero, fv_time_now_ms());
    zero = 0;
    (void)atomic_compare_exchange_strong(&start_mono_ns, &zero, fv_time_mono_ns());
}

static struct route_slot *overflow_slot(void)
{
    return &routes[FV_OPS_ROUTES_MAX];
}

static struct route_slot *find_route(const char *name, size_t n)
{
    /* Pointer pass first: the api hands us the same static strings. */
    for (size_t i = 0; i < n; i++) {
        if (atomic_load_explicit(&routes[i].name, memory_order_relaxed) == name)
            return &routes[i];
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = atomic_load_explicit(&routes[i].name, memory_order_relaxed);
        if (strcmp(p, name) == 0)
            return &routes[i];
    }
    return NULL;
}

static struct route_slot *route_get(const char *name)
{
    struct route_slot *slot;
    size_t n;

    if (name == NULL || strcmp(name, FV_OPS_ROUTE_OTHER) == 0)
        return overflow_slot();

    n = atomic_load_explicit(&n_routes, memory_order_acquire);
    slot = find_route(name, n);
    if (slot != NULL)
        return slot;

    /* First sighting: register under the lock, re-checking for a racer. */
    pthread_mutex_lock(&register_lock);
    n = atomic_load_explicit(&n_routes, memory_order_relaxed);
    slot = find_route(name, n);
    if (slot == NULL) {
        if (n < FV_OPS_ROUTES_MAX) {
            slot = &routes[n];
            atomic_store_explicit(&slot->name, name, memory_order_relaxed);
            atomic_store_explicit(&n_routes, n + 1, memory_order_release);
        } else {
            slot = overflow_slot();
        }
    }
    pthread_mutex_unlock(&register_lock);
    return slot;
}

static void status_count(struct route_slot *slot, int status)
{
    if (status < 100 || status > 599)
        goto other;

    for (size_t i = 0; i < FV_OPS_STATUSES_MAX; i++) {
        int cur = atomic_load_explicit(&slot->status_code[i], memory_order_relaxed);
        if (cur == 0) {
            /* Claim the free slot; if a racer took it, cur holds its status. */
            int expected = 0;
            if (atomic_compare_exchange_strong(&slot->status_code[i], &expected, status))
                cur = status;
            else
                cur = expected;
        }
        if (cur == status) {
            atomic_fetch_add_explicit(&slot->status_count[i], 1, memory_order_relaxed);
            return;
        }
    }
other:
    atomic_fetch_add_explicit(&slot->status_other, 1, memory_order_relaxed);
}

void fv_ops_metrics_observe(const char *route, int status, int64_t duration_ns)
{
    struct route_slot *slot = route_get(route);
    size_t b = N_BOUNDS;

    if (duration_ns < 0)
        duration_ns = 0;
    for (size_t i = 0; i < N_BOUNDS; i++) {
        if (duration_ns <= bucket_bounds_ns[i]) {
            b = i;
            break;
        }
    }
    atomic_fetch_add_explicit(&slot->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&slot->sum_ns, (uint_least64_t)duration_ns, memory_order_relaxed);
    status_count(slot, status);
}

void fv_ops_metrics_reset(void)
{
    pthread_mutex_lock(&register_lock);
    memset(routes, 0, sizeof(routes));
    atomic_store(&n_routes, 0);
    atomic_store(&start_mono_ns, 0);
    atomic_store(&start_wall_ms, 0);
    pthread_mutex_unlock(&register_lock);
}

/* ------------------------------------------------------------ rendering */

/* Label values are escaped per the exposition format: \\, \" and \n. */
static int append_label_value(struct fv_buf *out, const char *v)
{
    int rc = FV_OK;

    for (const char *p = v; *p != '\0' && rc == FV_OK; p++) {
        switch (*p) {
        case '\\':
            rc = fv_buf_append(out, "\\\\", 2);
            break;
        case '"':
            rc = fv_buf_append(out, "\\\"", 2);
            break;
        case '\n':
            rc = fv_buf_append(out, "\\n", 2);
            break;
        default:
            rc = fv_buf_append(out, p, 1);
            break;
        }
    }
    return rc;
}

static int render_requests(struct fv_buf *out, const struct route_slot *slot, const char *name)
{
    int rc = FV_OK;

    for (size_t i = 0; i < FV_OPS_STATUSES_MAX; i++) {
        int code = atomic_load_explicit(&slot->status_code[i], memory_order_relaxed);
        if (code == 0)
            continue;
        rc = fv_buf_append_cstr(out, "formvault_http_requests_total{route=\"");
        if (rc != FV_OK)
            goto out;
        rc = append_label_value(out, name);
        if (rc != FV_OK)
            goto out;
        rc = fv_buf_appendf(
            out, "\",status=\"%d\"} %llu\n", code,
            (unsigned long long)atomic_load_explicit(&slot->status_count[i], memory_order_relaxed));
        if (rc != FV_OK)
            goto out;
    }
    uint_least64_t other = atomic_load_explicit(&slot->status_other, memory_order_relaxed);
    if (other != 0) {
        rc = fv_buf_append_cstr(out, "formvault_http_requests_total{route=\"");
        if (rc != FV_OK)
            goto out;
        rc = append_label_value(out, name);
        if (rc != FV_OK)
            goto out;
        rc = fv_buf_appendf(out, "\",status=\"other\"} %llu\n", (unsigned long long)other);
    }
out:
    return rc;
}

static int render_histogram(struct fv_buf *out, const struct route_slot *slot, const char *name)
{
    int rc = FV_OK;
    uint64_t cumulative = 0;

    for (size_t i = 0; i <= N_BOUNDS; i++) {
        cumulative += atomic_load_explicit(&slot->buckets[i], memory_order_relaxed);
        rc = fv_buf_append_cstr(out, "formvault_http_request_duration_seconds_bucket{route=\"");
        if (rc != FV_OK)
            goto out;
        rc = append_label_value(out, name);
        if (rc != FV_OK)
            goto out;
        rc = fv_buf_appendf(out, "\",le=\"%s\"} %llu\n", i < N_BOUNDS ? bucket_labels[i] : "+Inf",
                            (unsigned long long)cumulative);
        if (rc != FV_OK)
            goto out;
    }
    /* _count is the +Inf bucket so the two never disagree within a scrape. */
    uint64_t sum_ns = atomic_load_explicit(&slot->sum_ns, memory_order_relaxed);
    rc = fv_buf_append_cstr(out, "formvault_http_request_duration_seconds_sum{route=\"");
    if (rc != FV_OK)
        goto out;
    rc = append_label_value(out, name);
    if (rc != FV_OK)
        goto out;
    rc = fv_buf_appendf(out, "\"} %llu.%09llu\n", (unsigned long long)(sum_ns / 1000000000ULL),
                        (unsigned long long)(sum_ns % 1000000000ULL));
    if (rc != FV_OK)
        goto out;
    rc = fv_buf_append_cstr(out, "formvault_http_request_duration_seconds_count{route=\"");
    if (rc != FV_OK)
        goto out;
    rc = append_label_value(out, name);
    if (rc != FV_OK)
        goto out;
    rc = fv_buf_appendf(out, "\"} %llu\n", (unsigned long long)cumulative);
out:
    return rc;
}

static bool slot_used(const struct route_slot *slot)
{
    for (size_t i = 0; i <= N_BOUNDS; i++) {
        if (atomic_load_explicit(&slot->buckets[i], memory_order_relaxed) != 0)
            return true;
    }
    return false;
}

/* Resident set size in bytes from /proc/self/statm (second field, pages). */
static int resident_bytes(uint64_t *ret)
{
    char buf[128];
    ssize_t n;
    int fd;
    const char *p, *end;
    uint64_t pages;
    long page_size = sysconf(_SC_PAGESIZE);

    fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FV_E_IO;
    do {
        n = read(fd, buf, sizeof(buf) - 1);
    } while (n < 0 && errno == EINTR);
    (void)close(fd);
    if (n <= 0 || page_size <= 0)
        return FV_E_IO;
    buf[n] = '\0';

    p = strchr(buf, ' ');
    if (p == NULL)
        return FV_E_IO;
    p++;
    end = p;
    while (*end >= '0' && *end <= '9')
        end++;
    if (fv_parse_u64(p, (size_t)(end - p), &pages) != FV_OK)
        return FV_E_IO;
    *ret = pages * (uint64_t)page_size;
    return FV_OK;
}

static int render_process(struct fv_buf *out)
{
    int rc = FV_OK;
    uint64_t rss;
    int64_t wall_ms = atomic_load(&start_wall_ms);
    int64_t uptime_ns = fv_time_mono_ns() - atomic_load(&start_mono_ns);

    if (uptime_ns < 0)
        uptime_ns = 0;
    if (resident_bytes(&rss) == FV_OK) {
        rc = fv_buf_appendf(out,
                            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                            "# TYPE process_resident_memory_bytes gauge\n"
                            "process_resident_memory_bytes %llu\n",
                            (unsigned long long)rss);
        if (rc != FV_OK)
            goto out;
    }
    rc = fv_buf_appendf(out,
                        "# HELP process_start_time_seconds Start time of the process since unix "
                        "epoch in seconds.\n"
                        "# TYPE process_start_time_seconds gauge\n"
                        "process_start_time_seconds %lld.%03lld\n"
                        "# HELP formvault_uptime_seconds Seconds since the node started.\n"
                        "# TYPE formvault_uptime_seconds gauge\n"
                        "formvault_uptime_seconds %lld.%03lld\n",
                        (long long)(wall_ms / 1000), (long long)(wall_ms % 1000),
                        (long long)(uptime_ns / 1000000000LL),
                        (long long)((uptime_ns / 1000000LL) % 1000LL));
out:
    return rc;
}

int fv_ops_metrics_render(struct fv_buf *out)
{
    int rc = FV_OK;
    size_t n;

    fv_ops_metrics_init();
    n = atomic_load_explicit(&n_routes, memory_order_acquire);

    rc = fv_buf_append_cstr(out, "# HELP formvault_http_requests_total HTTP requests answered, by "
                                 "route template and status.\n"
                                 "# TYPE formvault_http_requests_total counter\n");
    if (rc != FV_OK)
        goto out;
    for (size_t i = 0; i <= n; i++) {
        const struct route_slot *slot = i < n ? &routes[i] : overflow_slot();
        const char *name =
            i < n ? atomic_load_explicit(&slot->name, memory_order_relaxed) : FV_OPS_ROUTE_OTHER;
        rc = render_requests(out, slot, name);
        if (rc != FV_OK)
            goto out;
    }

    rc = fv_buf_append_cstr(out, "# HELP formvault_http_request_duration_seconds Time from "
                                 "request start to response completion, by route template.\n"
                                 "# TYPE formvault_http_request_duration_seconds histogram\n");
    if (rc != FV_OK)
        goto out;
    for (size_t i = 0; i <= n; i++) {
        const struct route_slot *slot = i < n ? &routes[i] : overflow_slot();
        const char *name =
            i < n ? atomic_load_explicit(&slot->name, memory_order_relaxed) : FV_OPS_ROUTE_OTHER;
        /* A registered route always has an observation; "other" may not. */
        if (i == n && !slot_used(slot))
            continue;
        rc = render_histogram(out, slot, name);
        if (rc != FV_OK)
            goto out;
    }

    rc = render_process(out);
out:
    return rc;
}
