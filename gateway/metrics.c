/*
 * metrics.c - atomic counters and their Prometheus text (metrics.h).
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "wa/json.h"

/* The methods labelled by name; any other is "other" (the last index). */
static const char *const methods[] = {"GET",   "POST",    "PUT",  "DELETE",
                                      "PATCH", "OPTIONS", "HEAD", "other"};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

/* Latency buckets, seconds (upper bounds); +Inf is implicit. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBOUNDS (sizeof(bounds) / sizeof(bounds[0]))

/*
 * The counters of one (route, method). Status slots are claimed in order,
 * each once, by compare-and-swap of its code from 0: a slot's code never
 * changes after that, so a reader that sees it sees the right label.
 */
typedef struct series {
    atomic_uint code[GW_METRICS_STATUSES]; /* 0 = free */
    atomic_ulong by_code[GW_METRICS_STATUSES];
    atomic_ulong other_status;
    atomic_ulong buckets[NBOUNDS + 1]; /* not cumulative; last is +Inf */
    atomic_ulong count;
    atomic_ullong usec_sum;
} series_t;

struct gw_metrics {
    const gw_metric_route_t *routes;
    size_t nroutes;
    series_t *series; /* (nroutes + 1) * NMETHODS, route-major */
    atomic_ulong bus_errors[WA_OP_COUNT][WA_ERR_COUNT];
    atomic_ulong rate_limited;
    atomic_long in_flight;
    wa_bus_batcher_t *store; /* set before the server starts */
    gw_logcache_t *logs;     /* likewise */
};

wa_err_t gw_metrics_new(const gw_metric_route_t *routes, size_t nroutes,
                        gw_metrics_t **out)
{
    gw_metrics_t *m;

    if ((m = calloc(1, sizeof(*m))) == NULL)
        return WA_ENOMEM;
    /* calloc'd atomics are valid zeroes on every platform we build for. */
    if ((m->series = calloc((nroutes + 1) * NMETHODS, sizeof(*m->series))) ==
        NULL) {
        free(m);
        return WA_ENOMEM;
    }
    m->routes = routes;
    m->nroutes = nroutes;
    *out = m;
    return WA_OK;
}

void gw_metrics_free(gw_metrics_t *m)
{
    if (m == NULL)
        return;
    free(m->series);
    free(m);
}

/* Index of method in methods[]; NULL and unknown methods are "other".
 * Methods are case-sensitive (RFC 9110 9.1). */
static size_t method_index(const char *method)
{
    for (size_t i = 0; method != NULL && i < NMETHODS - 1; i++) {
        if (strcmp(methods[i], method) == 0)
            return i;
    }
    return NMETHODS - 1;
}

/* The counter of status in s: its slot, claimed now if it has none. */
static atomic_ulong *status_counter(series_t *s, int status)
{
    if (status < 100 || status > 599)
        return &s->other_status;
    for (size_t i = 0; i < GW_METRICS_STATUSES; i++) {
        unsigned c = atomic_load_explicit(&s->code[i], memory_order_acquire);

        if (c == 0) {
            /* Free: claim it, or learn who did meanwhile. */
            if (atomic_compare_exchange_strong_explicit(
                    &s->code[i], &c, (unsigned)status, memory_order_acq_rel,
                    memory_order_acquire))
                return &s->by_code[i];
        }
        if (c == (unsigned)status)
            return &s->by_code[i];
    }
    return &s->other_status;
}

void gw_metrics_request(gw_metrics_t *m, size_t route, const char *method,
                        int status, int64_t usec)
{
    series_t *s;
    double secs;
    size_t b;

    if (route > m->nroutes)
        route = m->nroutes;
    if (usec < 0)
        usec = 0;
    s = &m->series[route * NMETHODS + method_index(method)];
    secs = (double)usec / 1e6;
    for (b = 0; b < NBOUNDS && secs > bounds[b]; b++)
        ;
    atomic_fetch_add_explicit(status_counter(s, status), 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->usec_sum, (unsigned long long)usec,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
}

void gw_metrics_bus_error(gw_metrics_t *m, wa_op_t op, wa_err_t err)
{
    if ((unsigned)op >= WA_OP_COUNT || (unsigned)err >= WA_ERR_COUNT)
        return;
    atomic_fetch_add_explicit(&m->bus_errors[op][err], 1, memory_order_relaxed);
}

void gw_metrics_rate_limited(gw_metrics_t *m)
{
    atomic_fetch_add_explicit(&m->rate_limited, 1, memory_order_relaxed);
}

void gw_metrics_in_flight(gw_metrics_t *m, int delta)
{
    atomic_fetch_add_explicit(&m->in_flight, delta, memory_order_relaxed);
}

long gw_metrics_in_flight_now(const gw_metrics_t *m)
{
    return atomic_load_explicit(&m->in_flight, memory_order_relaxed);
}

static const char *route_path(const gw_metrics_t *m, size_t r)
{
    return r < m->nroutes ? m->routes[r].path : "unmatched";
}

static unsigned long load(const atomic_ulong *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* One (route, method) series' statuses, ascending by code. */
static void render_statuses(const gw_metrics_t *m, size_t r, size_t k,
                            wa_json_buf_t *sb)
{
    const series_t *s = &m->series[r * NMETHODS + k];
    unsigned codes[GW_METRICS_STATUSES];
    unsigned long counts[GW_METRICS_STATUSES], other;
    size_t n = 0;

    for (size_t i = 0; i < GW_METRICS_STATUSES; i++) {
        unsigned c = atomic_load_explicit(&s->code[i], memory_order_acquire);
        unsigned long v = load(&s->by_code[i]);
        size_t j = n;

        if (c == 0)
            break; /* slots are claimed in order */
        if (v == 0)
            continue; /* claimed, not yet counted */
        for (; j > 0 && codes[j - 1] > c; j--) {
            codes[j] = codes[j - 1];
            counts[j] = counts[j - 1];
        }
        codes[j] = c;
        counts[j] = v;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        wa_json_buf_printf(sb,
                           "wa_gateway_http_requests_total{route=\"%s\","
                           "method=\"%s\",status=\"%u\"} %lu\n",
                           route_path(m, r), methods[k], codes[i], counts[i]);
    if ((other = load(&s->other_status)) != 0)
        wa_json_buf_printf(sb,
                           "wa_gateway_http_requests_total{route=\"%s\","
                           "method=\"%s\",status=\"other\"} %lu\n",
                           route_path(m, r), methods[k], other);
}

static void render_requests(const gw_metrics_t *m, wa_json_buf_t *sb)
{
    wa_json_buf_printf(sb,
                       "# HELP wa_gateway_http_requests_total HTTP requests "
                       "answered, by route template, method and status.\n"
                       "# TYPE wa_gateway_http_requests_total counter\n");
    for (size_t r = 0; r <= m->nroutes; r++) {
        for (size_t k = 0; k < NMETHODS; k++)
            render_statuses(m, r, k, sb);
    }
}

static void render_latency(const gw_metrics_t *m, wa_json_buf_t *sb)
{
    wa_json_buf_printf(sb,
                       "# HELP wa_gateway_http_request_duration_seconds Time "
                       "from the request's arrival to its answer, by route and "
                       "method.\n"
                       "# TYPE wa_gateway_http_request_duration_seconds "
                       "histogram\n");
    for (size_t r = 0; r <= m->nroutes; r++) {
        for (size_t k = 0; k < NMETHODS; k++) {
            const series_t *s = &m->series[r * NMETHODS + k];
            const char *path = route_path(m, r), *method = methods[k];
            unsigned long cum = 0;

            if (load(&s->count) == 0)
                continue;
            for (size_t b = 0; b <= NBOUNDS; b++) {
                cum += load(&s->buckets[b]);
                if (b < NBOUNDS)
                    wa_json_buf_printf(
                        sb,
                        "wa_gateway_http_request_duration_seconds_"
                        "bucket{route=\"%s\",method=\"%s\",le=\"%g\"}"
                        " %lu\n",
                        path, method, bounds[b], cum);
                else
                    wa_json_buf_printf(
                        sb,
                        "wa_gateway_http_request_duration_seconds_"
                        "bucket{route=\"%s\",method=\"%s\","
                        "le=\"+Inf\"} %lu\n",
                        path, method, cum);
            }
            wa_json_buf_printf(
                sb,
                "wa_gateway_http_request_duration_seconds_sum{route="
                "\"%s\",method=\"%s\"} %.6f\n"
                "wa_gateway_http_request_duration_seconds_count{route="
                "\"%s\",method=\"%s\"} %lu\n",
                path, method,
                (double)atomic_load_explicit(&s->usec_sum,
                                             memory_order_relaxed) /
                    1e6,
                path, method, cum);
        }
    }
}

unsigned long gw_metrics_requests_total(const gw_metrics_t *m)
{
    unsigned long n = 0;

    for (size_t i = 0; i < (m->nroutes + 1) * NMETHODS; i++)
        n += atomic_load_explicit(&m->series[i].count, memory_order_relaxed);
    return n;
}

void gw_metrics_watch_store(gw_metrics_t *m, wa_bus_batcher_t *store)
{
    m->store = store;
}

static void render_store(const gw_metrics_t *m, wa_json_buf_t *sb)
{
    wa_bus_batcher_stats_t st;

    if (m->store == NULL)
        return;
    wa_bus_batcher_stats(m->store, &st);
    wa_json_buf_printf(
        sb,
        "# HELP wa_gateway_store_calls_total Calls to store-svc.\n"
        "# TYPE wa_gateway_store_calls_total counter\n"
        "wa_gateway_store_calls_total %llu\n"
        "# HELP wa_gateway_store_batches_total Messages to store-svc "
        "that carried several concurrent calls (bus.batch).\n"
        "# TYPE wa_gateway_store_batches_total counter\n"
        "wa_gateway_store_batches_total %llu\n"
        "# HELP wa_gateway_store_batched_calls_total Calls that "
        "travelled in those batches.\n"
        "# TYPE wa_gateway_store_batched_calls_total counter\n"
        "wa_gateway_store_batched_calls_total %llu\n",
        (unsigned long long)st.calls, (unsigned long long)st.batches,
        (unsigned long long)st.batched);
}

void gw_metrics_watch_logcache(gw_metrics_t *m, gw_logcache_t *logs)
{
    m->logs = logs;
}

static void render_logcache(const gw_metrics_t *m, wa_json_buf_t *sb)
{
    gw_logcache_stats_t st;

    if (m->logs == NULL)
        return;
    gw_logcache_stats(m->logs, &st);
    wa_json_buf_printf(
        sb,
        "# HELP wa_gateway_logs_cache_hits_total GET /logs answered "
        "with the body kept from an earlier request, store-svc having "
        "found the user's log unchanged.\n"
        "# TYPE wa_gateway_logs_cache_hits_total counter\n"
        "wa_gateway_logs_cache_hits_total %llu\n"
        "# HELP wa_gateway_logs_cache_misses_total GET /logs answered "
        "with rows read from store-svc (nothing kept, or the log "
        "changed).\n"
        "# TYPE wa_gateway_logs_cache_misses_total counter\n"
        "wa_gateway_logs_cache_misses_total %llu\n"
        "# HELP wa_gateway_logs_cache_entries GET /logs bodies kept now "
        "(dropped when the gateway is idle).\n"
        "# TYPE wa_gateway_logs_cache_entries gauge\n"
        "wa_gateway_logs_cache_entries %llu\n"
        "# HELP wa_gateway_logs_cache_bytes Bytes of those bodies.\n"
        "# TYPE wa_gateway_logs_cache_bytes gauge\n"
        "wa_gateway_logs_cache_bytes %llu\n",
        (unsigned long long)st.hits, (unsigned long long)st.misses,
        (unsigned long long)st.entries, (unsigned long long)st.bytes);
}

static void render_bus(const gw_metrics_t *m, wa_json_buf_t *sb)
{
    wa_json_buf_printf(
        sb, "# HELP wa_gateway_bus_errors_total Failed bus calls, by "
            "operation and error code.\n"
            "# TYPE wa_gateway_bus_errors_total counter\n");
    for (unsigned op = 0; op < WA_OP_COUNT; op++) {
        for (unsigned e = 1; e < WA_ERR_COUNT; e++) {
            unsigned long v = load(&m->bus_errors[op][e]);

            if (v != 0)
                wa_json_buf_printf(sb,
                                   "wa_gateway_bus_errors_total{op=\"%s\","
                                   "code=\"%s\"} %lu\n",
                                   wa_op_name((wa_op_t)op),
                                   wa_err_code((wa_err_t)e), v);
        }
    }
}

wa_err_t gw_metrics_render(const gw_metrics_t *m, double uptime_s, char **out,
                           size_t *len)
{
    wa_json_buf_t sb = {0};

    wa_json_buf_reserve(&sb, 8192);
    render_requests(m, &sb);
    render_latency(m, &sb);
    render_bus(m, &sb);
    render_store(m, &sb);
    render_logcache(m, &sb);
    wa_json_buf_printf(
        &sb,
        "# HELP wa_gateway_rate_limited_total Requests refused with "
        "429 by the per-user rate limit.\n"
        "# TYPE wa_gateway_rate_limited_total counter\n"
        "wa_gateway_rate_limited_total %lu\n"
        "# HELP wa_gateway_http_requests_in_flight Requests being "
        "served now.\n"
        "# TYPE wa_gateway_http_requests_in_flight gauge\n"
        "wa_gateway_http_requests_in_flight %ld\n"
        "# HELP wa_gateway_uptime_seconds Seconds since the gateway "
        "started.\n"
        "# TYPE wa_gateway_uptime_seconds gauge\n"
        "wa_gateway_uptime_seconds %.3f\n"
        "# HELP wa_gateway_build_info The gateway's version.\n"
        "# TYPE wa_gateway_build_info gauge\n"
        "wa_gateway_build_info{version=\"%s\"} 1\n",
        load(&m->rate_limited), gw_metrics_in_flight_now(m), uptime_s,
        WA_VERSION);
    return wa_json_buf_done(&sb, out, len);
}
