/*
 * Unit tests for ops/metrics.c: counting per (route, status), histogram
 * buckets, Prometheus rendering and concurrent increments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ops/ops.h"

static int setup(void **state)
{
    (void)state;
    fv_ops_metrics_reset();
    return 0;
}

/* Render into a fresh buffer; the caller releases it. */
static void render(struct fv_buf *b)
{
    fv_buf_init(b, 1 << 22);
    assert_int_equal(fv_ops_metrics_render(b), FV_OK);
    assert_non_null(b->p);
}

/* True if the exposition has a line that is exactly `line`. */
static bool has_line(const struct fv_buf *b, const char *line)
{
    size_t n = strlen(line);
    const char *p = b->p;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == b->p || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
        p += n;
    }
    return false;
}

static void test_fv_ops_metrics_render_counts_route_and_status(void **state)
{
    struct fv_buf b;
    (void)state;

    fv_ops_metrics_observe("data.form.add", 200, 300000);          /* 0.3 ms */
    fv_ops_metrics_observe("data.form.add", 200, 2000000);         /* 2 ms */
    fv_ops_metrics_observe("data.form.add", 400, 20000000);        /* 20 ms */
    fv_ops_metrics_observe("data.report.get", 200, 20000000000LL); /* 20 s */
    render(&b);

    assert_true(has_line(&b, "# TYPE formvault_http_requests_total counter"));
    assert_true(has_line(&b, "# TYPE formvault_http_request_duration_seconds histogram"));
    assert_true(
        has_line(&b, "formvault_http_requests_total{route=\"data.form.add\",status=\"200\"} 2"));
    assert_true(
        has_line(&b, "formvault_http_requests_total{route=\"data.form.add\",status=\"400\"} 1"));
    assert_true(
        has_line(&b, "formvault_http_requests_total{route=\"data.report.get\",status=\"200\"} 1"));
    /* cumulative buckets */
    assert_true(has_line(
        &b,
        "formvault_http_request_duration_seconds_bucket{route=\"data.form.add\",le=\"0.0005\"} 1"));
    assert_true(has_line(
        &b,
        "formvault_http_request_duration_seconds_bucket{route=\"data.form.add\",le=\"0.001\"} 1"));
    assert_true(has_line(
        &b,
        "formvault_http_request_duration_seconds_bucket{route=\"data.form.add\",le=\"0.0025\"} 2"));
    assert_true(has_line(
        &b,
        "formvault_http_request_duration_seconds_bucket{route=\"data.form.add\",le=\"0.025\"} 3"));
    assert_true(has_line(
        &b,
        "formvault_http_request_duration_seconds_bucket{route=\"data.form.add\",le=\"+Inf\"} 3"));
    assert_true(has_line(
        &b, "formvault_http_request_duration_seconds_sum{route=\"data.form.add\"} 0.022300000"));
    assert_true(
        has_line(&b, "formvault_http_request_duration_seconds_count{route=\"data.form.add\"} 3"));
    assert_true(has_line(
        &b,
        "formvault_http_request_duration_seconds_bucket{route=\"data.report.get\",le=\"10\"} 0"));
    assert_true(has_line(
        &b,
        "formvault_http_request_duration_seconds_bucket{route=\"data.report.get\",le=\"+Inf\"} 1"));
    /* process metrics */
    assert_non_null(strstr(b.p, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(b.p, "\nformvault_uptime_seconds "));
    assert_non_null(strstr(b.p, "# TYPE process_start_time_seconds gauge\n"));
    /* unused overflow slot is not rendered */
    assert_null(strstr(b.p, "route=\"other\""));
    fv_buf_release(&b);
}

static void test_fv_ops_metrics_observe_same_text_other_pointer(void **state)
{
    struct fv_buf b;
    char dyn[32];
    (void)state;

    /* A different pointer to the same text is the same route. */
    fv_ops_metrics_observe("meta.forms", 200, 1);
    (void)snprintf(dyn, sizeof(dyn), "%s", "meta.forms");
    fv_ops_metrics_observe(dyn, 200, 1);
    render(&b);
    assert_true(
        has_line(&b, "formvault_http_requests_total{route=\"meta.forms\",status=\"200\"} 2"));
    fv_buf_release(&b);
}

static void test_fv_ops_metrics_observe_null_route_and_bad_status(void **state)
{
    struct fv_buf b;
    (void)state;

    fv_ops_metrics_observe(NULL, 200, -5);
    fv_ops_metrics_observe("x", 42, 1);
    fv_ops_metrics_observe("x", 1000, 1);
    render(&b);
    assert_true(has_line(&b, "formvault_http_requests_total{route=\"other\",status=\"200\"} 1"));
    assert_true(has_line(
        &b, "formvault_http_request_duration_seconds_bucket{route=\"other\",le=\"0.0005\"} 1"));
    assert_true(has_line(&b, "formvault_http_requests_total{route=\"x\",status=\"other\"} 2"));
    fv_buf_release(&b);
}

static void test_fv_ops_metrics_observe_route_table_full(void **state)
{
    static char names[FV_OPS_ROUTES_MAX + 5][16];
    struct fv_buf b;
    char line[128];
    (void)state;

    for (size_t i = 0; i < FV_ARRAY_LEN(names); i++) {
        (void)snprintf(names[i], sizeof(names[i]), "r%zu", i);
        fv_ops_metrics_observe(names[i], 200, 1);
    }
    render(&b);
    (void)snprintf(line, sizeof(line),
                   "formvault_http_requests_total{route=\"r%d\",status=\"200\"} 1",
                   FV_OPS_ROUTES_MAX - 1);
    assert_true(has_line(&b, line));
    assert_true(has_line(&b, "formvault_http_requests_total{route=\"other\",status=\"200\"} 5"));
    fv_buf_release(&b);
}

static void test_fv_ops_metrics_observe_status_slots_full(void **state)
{
    struct fv_buf b;
    (void)state;

    for (int s = 0; s < FV_OPS_STATUSES_MAX + 3; s++)
        fv_ops_metrics_observe("many", 200 + s, 1);
    render(&b);
    assert_true(has_line(&b, "formvault_http_requests_total{route=\"many\",status=\"200\"} 1"));
    assert_true(has_line(&b, "formvault_http_requests_total{route=\"many\",status=\"other\"} 3"));
    fv_buf_release(&b);
}

static void test_fv_ops_metrics_render_escapes_labels(void **state)
{
    struct fv_buf b;
    (void)state;

    fv_ops_metrics_observe("a\"b\\c\nd", 200, 1);
    render(&b);
    assert_true(
        has_line(&b, "formvault_http_requests_total{route=\"a\\\"b\\\\c\\nd\",status=\"200\"} 1"));
    fv_buf_release(&b);
}

static void test_fv_ops_metrics_render_buffer_limit(void **state)
{
    struct fv_buf b;
    (void)state;

    fv_ops_metrics_observe("data.form.add", 200, 1);
    fv_buf_init(&b, 64);
    assert_int_equal(fv_ops_metrics_render(&b), FV_E_LIMIT);
    fv_buf_release(&b);
}

static void test_fv_ops_metrics_render_nomem(void **state)
{
    (void)state;
    fv_ops_metrics_observe("data.form.add", 200, 1);
    for (long n = 1; n < 64; n++) {
        struct fv_buf b;
        int rc;
        fv_buf_init(&b, 1 << 20);
        fv_mem_fail_at(n, false);
        rc = fv_ops_metrics_render(&b);
        fv_mem_fail_at(0, false);
        assert_true(rc == FV_OK || rc == FV_E_NOMEM);
        fv_buf_release(&b);
        if (rc == FV_OK)
            break;
    }
}

#define THREADS 8
#define PER_THREAD 100000

static const char *const thread_routes[] = {"t.a", "t.b", "t.c", "t.d"};

static void *observe_thread(void *arg)
{
    size_t id = (size_t)(uintptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        /* Threads register routes in different orders, racing on first use. */
        const char *r = thread_routes[(id + (size_t)i) % FV_ARRAY_LEN(thread_routes)];
        fv_ops_metrics_observe(r, (i & 1) ? 200 : 404, 1000000);
    }
    return NULL;
}

static void test_fv_ops_metrics_observe_concurrent(void **state)
{
    pthread_t t[THREADS];
    struct fv_buf b;
    char line[160];
    (void)state;

    for (size_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, observe_thread, (void *)(uintptr_t)i), 0);
    for (size_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    render(&b);
    /* Each route gets THREADS * PER_THREAD / 4 observations, half per status. */
    for (size_t i = 0; i < FV_ARRAY_LEN(thread_routes); i++) {
        long per_route = (long)THREADS * PER_THREAD / 4;
        (void)snprintf(line, sizeof(line),
                       "formvault_http_requests_total{route=\"%s\",status=\"200\"} %ld",
                       thread_routes[i], per_route / 2);
        assert_true(has_line(&b, line));
        (void)snprintf(line, sizeof(line),
                       "formvault_http_requests_total{route=\"%s\",status=\"404\"} %ld",
                       thread_routes[i], per_route / 2);
        assert_true(has_line(&b, line));
        (void)snprintf(line, sizeof(line),
                       "formvault_http_request_duration_seconds_count{route=\"%s\"} %ld",
                       thread_routes[i], per_route);
        assert_true(has_line(&b, line));
    }
    /* exactly four routes registered: no duplicate slot from the race */
    size_t n = 0;
    for (const char *p = b.p; (p = strstr(p, "le=\"+Inf\"")) != NULL; p++)
        n++;
    assert_int_equal(n, 4);
    fv_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_fv_ops_metrics_render_counts_route_and_status, setup),
        cmocka_unit_test_setup(test_fv_ops_metrics_observe_same_text_other_pointer, setup),
        cmocka_unit_test_setup(test_fv_ops_metrics_observe_null_route_and_bad_status, setup),
        cmocka_unit_test_setup(test_fv_ops_metrics_observe_route_table_full, setup),
        cmocka_unit_test_setup(test_fv_ops_metrics_observe_status_slots_full, setup),
        cmocka_unit_test_setup(test_fv_ops_metrics_render_escapes_labels, setup),
        cmocka_unit_test_setup(test_fv_ops_metrics_render_buffer_limit, setup),
        cmocka_unit_test_setup(test_fv_ops_metrics_render_nomem, setup),
        cmocka_unit_test_setup(test_fv_ops_metrics_observe_concurrent, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
