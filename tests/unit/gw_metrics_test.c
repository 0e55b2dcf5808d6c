/* gw_metrics_test.c - Prometheus text: names, labels (the request's method
 * and status, bounded), histogram buckets (cumulative, +Inf, sum, count),
 * bus errors, gauges; concurrent updates. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static const gw_metric_route_t routes[] = {
    {"GET", "/status"},
    {"GET", "/messages/{chatId}"},
    {"POST", "/send"},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

static char *render(gw_metrics_t *m)
{
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(gw_metrics_render(m, 12.5, &text, &len), WA_OK);
    assert_int_equal(strlen(text), len);
    return text;
}

/* Does text contain line as a whole line? */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    }
    return false;
}

#define assert_line(text, line)                                                \
    do {                                                                       \
        if (!has_line((text), (line)))                                         \
            fail_msg("missing line: %s\n--- got:\n%s", (line), (text));        \
    } while (0)

static void test_empty(void **state)
{
    gw_metrics_t *m;
    char *text;

    (void)state;
    assert_int_equal(gw_metrics_new(routes, NROUTES, &m), WA_OK);
    text = render(m);
    assert_line(text, "# TYPE wa_gateway_http_requests_total counter");
    assert_line(text,
                "# TYPE wa_gateway_http_request_duration_seconds histogram");
    assert_line(text, "# TYPE wa_gateway_bus_errors_total counter");
    assert_line(text, "wa_gateway_rate_limited_total 0");
    assert_line(text, "wa_gateway_http_requests_in_flight 0");
    assert_line(text, "wa_gateway_uptime_seconds 12.500");
    assert_line(text, "wa_gateway_build_info{version=\"" WA_VERSION "\"} 1");
    /* No samples for routes never hit. */
    assert_null(strstr(text, "route=\"/status\""));
    free(text);
    gw_metrics_free(m);
}

static void test_requests_and_histogram(void **state)
{
    gw_metrics_t *m;
    char *text;

    (void)state;
    assert_int_equal(gw_metrics_new(routes, NROUTES, &m), WA_OK);
    gw_metrics_request(m, 0, "GET", 200, 300);      /* 0.3 ms */
    gw_metrics_request(m, 0, "GET", 200, 2000);     /* 2 ms */
    gw_metrics_request(m, 0, "GET", 503, 3000000);  /* 3 s */
    gw_metrics_request(m, 0, "GET", 418, 20000000); /* 20 s, a rare status */
    gw_metrics_request(m, 1, "GET", 400, 100);
    gw_metrics_request(m, NROUTES, "GET", 404, 50);     /* unmatched */
    gw_metrics_request(m, NROUTES + 7, "GET", 404, 50); /* clamped */
    text = render(m);
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"GET\",status=\"200\"} 2");
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"GET\",status=\"503\"} 1");
    /* Every status by its own code, not a fixed list. */
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"GET\",status=\"418\"} 1");
    assert_null(strstr(text, "status=\"other\""));
    assert_line(text, "wa_gateway_http_requests_total{route=\"/messages/"
                      "{chatId}\",method=\"GET\",status=\"400\"} 1");
    assert_line(text, "wa_gateway_http_requests_total{route=\"unmatched\","
                      "method=\"GET\",status=\"404\"} 2");
    /* Statuses of one series in ascending order. */
    assert_true(strstr(text, "status=\"200\"} 2") <
                strstr(text, "status=\"418\"} 1"));
    assert_true(strstr(text, "status=\"418\"} 1") <
                strstr(text, "status=\"503\"} 1"));
    /* Cumulative buckets. */
    assert_line(text, "wa_gateway_http_request_duration_seconds_bucket{"
                      "route=\"/status\",method=\"GET\",le=\"0.0005\"} 1");
    assert_line(text, "wa_gateway_http_request_duration_seconds_bucket{"
                      "route=\"/status\",method=\"GET\",le=\"0.001\"} 1");
    assert_line(text, "wa_gateway_http_request_duration_seconds_bucket{"
                      "route=\"/status\",method=\"GET\",le=\"0.0025\"} 2");
    assert_line(text, "wa_gateway_http_request_duration_seconds_bucket{"
                      "route=\"/status\",method=\"GET\",le=\"2.5\"} 2");
    assert_line(text, "wa_gateway_http_request_duration_seconds_bucket{"
                      "route=\"/status\",method=\"GET\",le=\"5\"} 3");
    assert_line(text, "wa_gateway_http_request_duration_seconds_bucket{"
                      "route=\"/status\",method=\"GET\",le=\"10\"} 3");
    assert_line(text, "wa_gateway_http_request_duration_seconds_bucket{"
                      "route=\"/status\",method=\"GET\",le=\"+Inf\"} 4");
    assert_line(text, "wa_gateway_http_request_duration_seconds_sum{"
                      "route=\"/status\",method=\"GET\"} 23.002300");
    assert_line(text, "wa_gateway_http_request_duration_seconds_count{"
                      "route=\"/status\",method=\"GET\"} 4");
    /* Every line is a comment or "name{labels} value" / "name value". */
    for (char *line = strtok(text, "\n"); line != NULL;
         line = strtok(NULL, "\n")) {
        if (line[0] == '#') {
            assert_true(strncmp(line, "# HELP ", 7) == 0 ||
                        strncmp(line, "# TYPE ", 7) == 0);
            continue;
        }
        assert_true(strncmp(line, "wa_gateway_", 11) == 0);
        assert_non_null(strchr(line, ' '));
    }
    free(text);
    gw_metrics_free(m);
}

/* The label is the request's method, whatever the route's is: a CORS
 * preflight and a DELETE on a GET route are not GETs. */
static void test_request_method(void **state)
{
    gw_metrics_t *m;
    char *text;

    (void)state;
    assert_int_equal(gw_metrics_new(routes, NROUTES, &m), WA_OK);
    gw_metrics_request(m, 0, "OPTIONS", 204, 100);
    gw_metrics_request(m, 0, "DELETE", 405, 100);
    gw_metrics_request(m, 0, "POST", 405, 100);
    gw_metrics_request(m, 0, "GET", 200, 100);
    gw_metrics_request(m, 0, "HEAD", 200, 100);
    gw_metrics_request(m, 2, "PUT", 405, 100);
    gw_metrics_request(m, 2, "PATCH", 405, 100);
    /* Anything else, and no method at all, is "other": bounded. */
    gw_metrics_request(m, NROUTES, "BREW", 400, 100);
    gw_metrics_request(m, NROUTES, "get", 404, 100);
    gw_metrics_request(m, NROUTES, NULL, 400, 100);
    text = render(m);
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"OPTIONS\",status=\"204\"} 1");
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"DELETE\",status=\"405\"} 1");
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"POST\",status=\"405\"} 1");
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"GET\",status=\"200\"} 1");
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"HEAD\",status=\"200\"} 1");
    assert_line(text, "wa_gateway_http_requests_total{route=\"/send\","
                      "method=\"PUT\",status=\"405\"} 1");
    assert_line(text, "wa_gateway_http_requests_total{route=\"/send\","
                      "method=\"PATCH\",status=\"405\"} 1");
    assert_line(text, "wa_gateway_http_requests_total{route=\"unmatched\","
                      "method=\"other\",status=\"400\"} 2");
    assert_line(text, "wa_gateway_http_requests_total{route=\"unmatched\","
                      "method=\"other\",status=\"404\"} 1");
    assert_null(strstr(text, "BREW"));
    assert_line(text, "wa_gateway_http_request_duration_seconds_count{"
                      "route=\"/status\",method=\"OPTIONS\"} 1");
    assert_line(text, "wa_gateway_http_request_duration_seconds_count{"
                      "route=\"/status\",method=\"GET\"} 1");
    assert_int_equal(gw_metrics_requests_total(m), 10);
    free(text);
    gw_metrics_free(m);
}

/* Cardinality stays bounded: past GW_METRICS_STATUSES distinct statuses on
 * one series, and for codes that are not 3 digits, "other". */
static void test_status_bound(void **state)
{
    gw_metrics_t *m;
    char *text, line[160];

    (void)state;
    assert_int_equal(gw_metrics_new(routes, NROUTES, &m), WA_OK);
    for (int i = 0; i < GW_METRICS_STATUSES + 4; i++)
        gw_metrics_request(m, 0, "GET", 500 + i, 100);
    gw_metrics_request(m, 0, "GET", 500, 100);
    gw_metrics_request(m, 1, "GET", 99, 100);
    gw_metrics_request(m, 1, "GET", 600, 100);
    gw_metrics_request(m, 1, "GET", -1, 100);
    gw_metrics_request(m, 1, "GET", 304, 100);
    text = render(m);
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"GET\",status=\"500\"} 2");
    snprintf(line, sizeof(line),
             "wa_gateway_http_requests_total{route=\"/status\","
             "method=\"GET\",status=\"%d\"} 1",
             500 + GW_METRICS_STATUSES - 1);
    assert_line(text, line);
    snprintf(line, sizeof(line), "status=\"%d\"", 500 + GW_METRICS_STATUSES);
    assert_null(strstr(text, line));
    assert_line(text, "wa_gateway_http_requests_total{route=\"/status\","
                      "method=\"GET\",status=\"other\"} 4");
    assert_line(text, "wa_gateway_http_requests_total{route=\"/messages/"
                      "{chatId}\",method=\"GET\",status=\"other\"} 3");
    assert_line(text, "wa_gateway_http_requests_total{route=\"/messages/"
                      "{chatId}\",method=\"GET\",status=\"304\"} 1");
    free(text);
    gw_metrics_free(m);
}

static void test_bus_errors_and_gauges(void **state)
{
    gw_metrics_t *m;
    char *text;

    (void)state;
    assert_int_equal(gw_metrics_new(routes, NROUTES, &m), WA_OK);
    gw_metrics_bus_error(m, WA_OP_SESSION_GET, WA_ETIMEDOUT);
    gw_metrics_bus_error(m, WA_OP_SESSION_GET, WA_ETIMEDOUT);
    gw_metrics_bus_error(m, WA_OP_PLACEMENT_RESOLVE, WA_ENOSESSIONSVC);
    gw_metrics_bus_error(m, WA_OP_COUNT, WA_ETIMEDOUT);          /* ignored */
    gw_metrics_bus_error(m, WA_OP_PING, (wa_err_t)WA_ERR_COUNT); /* ignored */
    gw_metrics_rate_limited(m);
    gw_metrics_rate_limited(m);
    gw_metrics_in_flight(m, 1);
    gw_metrics_in_flight(m, 1);
    gw_metrics_in_flight(m, -1);
    assert_int_equal(gw_metrics_in_flight_now(m), 1);
    text = render(m);
    assert_line(text, "wa_gateway_bus_errors_total{op=\"session.get\","
                      "code=\"timeout\"} 2");
    assert_line(text, "wa_gateway_bus_errors_total{op=\"placement.resolve\","
                      "code=\"no_session_service\"} 1");
    assert_line(text, "wa_gateway_rate_limited_total 2");
    assert_line(text, "wa_gateway_http_requests_in_flight 1");
    free(text);
    gw_metrics_free(m);
}

typedef struct hammer {
    gw_metrics_t *m;
} hammer_t;

static void *hammer(void *arg)
{
    hammer_t *h = arg;

    for (int i = 0; i < 100000; i++) {
        gw_metrics_in_flight(h->m, 1);
        gw_metrics_request(h->m, 2, (i & 1) ? "POST" : "GET", 200 + i % 3,
                           i % 5000);
        gw_metrics_in_flight(h->m, -1);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    pthread_t th[4];
    hammer_t h;
    gw_metrics_t *m;
    char *text;

    (void)state;
    assert_int_equal(gw_metrics_new(routes, NROUTES, &m), WA_OK);
    h.m = m;
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &h), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    text = render(m);
    /* 4 threads x 100000, half of them POST and half GET, the statuses
     * 200, 201 and 202 in turn: every slot claimed once, nothing lost. */
    {
        unsigned long sum = 0, v;
        const char *p = text;
        const char *pfx = "wa_gateway_http_requests_total{route=\"/send\",";

        while ((p = strstr(p, pfx)) != NULL) {
            p = strchr(p, '}');
            assert_int_equal(sscanf(p, "} %lu", &v), 1);
            sum += v;
        }
        assert_int_equal(sum, 400000);
    }
    assert_line(text, "wa_gateway_http_request_duration_seconds_count{"
                      "route=\"/send\",method=\"POST\"} 200000");
    assert_line(text, "wa_gateway_http_request_duration_seconds_count{"
                      "route=\"/send\",method=\"GET\"} 200000");
    assert_null(strstr(text, "status=\"other\""));
    assert_line(text, "wa_gateway_http_requests_in_flight 0");
    free(text);
    gw_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_requests_and_histogram),
        cmocka_unit_test(test_request_method),
        cmocka_unit_test(test_status_bound),
        cmocka_unit_test(test_bus_errors_and_gauges),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
