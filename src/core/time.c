/* core/time.c: clocks. */
#include <stdio.h>
#include <time.h>

#include "core/core.h"

int64_t fv_time_now_ms(void)
{
    struct timespec ts;
    FV_ASSERT(clock_gettime(CLOCK_REALTIME, &ts) == 0);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fv_time_mono_ns(void)
{
    struct timespec ts;
    FV_ASSERT(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void fv_time_format_iso(int64_t ms, char *out, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (cap == 0)
        return;
    if (!gmtime_r(&s, &tm)) {
        out[0] = '\0';
        return;
    }
    (void)snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}
