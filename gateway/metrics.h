/*
 * metrics.h - the gateway's Prometheus metrics: requests by route template,
 * method and status, a latency histogram per route and method, bus errors
 * by operation and code, rate-limited requests, requests in flight.
 *
 * Labels are what the request was, and bounded: method is the request's
 * own (GET, POST, PUT, DELETE, PATCH, OPTIONS, HEAD, anything else
 * "other"), route the template it matched or "unmatched", status the 3-digit
 * code answered. Each (route, method) keeps its first GW_METRICS_STATUSES
 * distinct statuses; later ones, and codes outside 100..599, count as
 * "other" (no route answers with that many).
 *
 * Recording is lock-free (relaxed atomics) and thread-safe; rendering reads
 * the counters without stopping writers, so one scrape may see a request in
 * its count but not yet in its histogram: Prometheus tolerates that.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "logcache.h"
#include "wa/bus.h"
#include "wa/envelope.h"
#include "wa/err.h"

/* Distinct statuses counted apart per (route, method). */
#define GW_METRICS_STATUSES 16

/* A route as metrics label it. */
typedef struct gw_metric_route {
    const char *method; /* the route's own, "GET" (labels carry the
                           request's) */
    const char *path;   /* template, "/messages/{chatId}" */
} gw_metric_route_t;

typedef struct gw_metrics gw_metrics_t;

/*
 * Metrics for routes[0..nroutes) (copied by pointer: the strings must
 * outlive the metrics) plus one extra index, nroutes, for requests that
 * matched no route (labelled route="unmatched"). WA_ENOMEM or WA_OK.
 */
wa_err_t gw_metrics_new(const gw_metric_route_t *routes, size_t nroutes,
                        gw_metrics_t **out);
void gw_metrics_free(gw_metrics_t *m);

/* One request answered: route index (<= nroutes), the request's method
 * (NULL when CivetWeb could not read one: "other"), HTTP status, duration. */
void gw_metrics_request(gw_metrics_t *m, size_t route, const char *method,
                        int status, int64_t usec);

/* One failed bus call: op, and the error (remote code or transport). */
void gw_metrics_bus_error(gw_metrics_t *m, wa_op_t op, wa_err_t err);

void gw_metrics_rate_limited(gw_metrics_t *m);

/* Report the counters of the batcher every store call goes through (it must
 * outlive the metrics' rendering). */
void gw_metrics_watch_store(gw_metrics_t *m, wa_bus_batcher_t *store);

/* +1 when a request starts, -1 when it is answered. */
/* Render the kept /logs bodies' counters too (logcache.h). Call before the
 * server starts. */
void gw_metrics_watch_logcache(gw_metrics_t *m, gw_logcache_t *logs);

void gw_metrics_in_flight(gw_metrics_t *m, int delta);
long gw_metrics_in_flight_now(const gw_metrics_t *m);

/* Requests answered so far, all routes. */
unsigned long gw_metrics_requests_total(const gw_metrics_t *m);

/*
 * Render the text exposition format (version 0.0.4) into a malloc'd,
 * NUL-terminated buffer; *len without the NUL. uptime_s is reported as a
 * gauge. WA_ENOMEM or WA_OK.
 */
wa_err_t gw_metrics_render(const gw_metrics_t *m, double uptime_s, char **out,
                           size_t *len);

#endif /* GW_METRICS_H */
