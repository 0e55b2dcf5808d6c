/*
 * gateway.h - the gateway's private state, shared by its files.
 *
 * One gw_t per process, built by main() before the HTTP server starts and
 * immutable while it runs (its members are thread-safe objects). Each HTTP
 * request gets a gw_req_t on its CivetWeb worker thread's stack; the route
 * table maps (method, path template) to a handler.
 */
#ifndef GW_GATEWAY_H
#define GW_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>

#include <civetweb.h>

#include "authcache.h"
#include "coalesce.h"
#include "cors.h"
#include "logcache.h"
#include "metrics.h"
#include "ratelimit.h"
#include "validate.h"
#include "wa/auth.h"
#include "wa/bus.h"
#include "wa/http.h"

#define GW_SERVICE "gateway"

/* ?limit= of /messages and /logs. */
#define GW_LIMIT_MIN 1
#define GW_LIMIT_MAX 500
#define GW_LIMIT_DEFAULT 50

/* How long a placement.resolve answer is reused for a user. */
#define GW_PLACEMENT_TTL_MS 5000

/* Store calls (or batches of them) on the wire at once; the others queue
 * and go as one bus.batch (wa_bus_batcher_*). */
#define GW_STORE_INFLIGHT 2

/* Longest decoded path parameter we look at (a chat id is far shorter). */
#define GW_PARAM_MAX 128

typedef struct gw_config {
    long port;
    wa_auth_opts_t auth;
    char *allowed_origins;
    long rate_rps;
    long rate_burst;
    char *store_url;
    long threads;
    long bus_timeout_ms;
    long max_body;
    int log_level;
} gw_config_t;

typedef struct gw_placement gw_placement_t;

typedef struct gw {
    gw_config_t cfg;
    wa_auth_t *auth;
    gw_authcache_t *authcache;
    char **origins;                /* ALLOWED_ORIGINS, split */
    nng_socket store;              /* REQ, dials STORE_URL */
    wa_bus_batcher_t *store_batch; /* every store call goes through it */
    gw_ratelimit_t *ratelimit;
    gw_metrics_t *metrics;
    gw_placement_t *placement;
    gw_flights_t *flights;
    gw_logcache_t *logcache; /* GET /logs bodies and their versions */
    struct mg_context *http;
    long long started_ms;
} gw_t;

/* One HTTP request being served; lives on the worker's stack. */
typedef struct gw_req {
    gw_t *gw;
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    size_t route;                   /* index in gw_routes, or gw_nroutes */
    char rid[WA_RID_MAX + 1];       /* X-Request-Id, also the bus rid */
    char cors[GW_CORS_HEADERS_MAX]; /* header lines every answer carries */
    char param[GW_PARAM_MAX + 1];   /* the decoded path parameter, if any */
    wa_principal_t who;             /* set once authenticated */
    int64_t t0_us;                  /* arrival, monotonic */
    long long deadline_ms;          /* for all bus calls, wa_now_ms() clock */
    int status;                     /* answered status; 0 = not yet */
    bool body_read;                 /* the whole request body was read */
    gw_flight_t *flight;            /* set while leading a shared answer */
} gw_req_t;

typedef void (*gw_handler_fn)(gw_req_t *r);

/* A route: method and OpenAPI path template ("{name}" matches one path
 * segment, decoded, into gw_req_t.param). */
typedef struct gw_route {
    const char *method;
    const char *path;
    bool auth;     /* bearer token, then the rate limit */
    bool user;     /* serves the token's user: a token naming none (an admin
                      service key, auth.h) is refused with 403 */
    bool coalesce; /* identical reads in flight share one answer */
    gw_handler_fn handler;
} gw_route_t;

/* Every route the server answers, in http.c; tests compare it with
 * openapi.json. */
extern const gw_route_t gw_routes[];
extern const size_t gw_nroutes;

/* The routes as metrics label them (parallel to gw_routes). */
extern const gw_metric_route_t gw_metric_routes[];

/* ---- http.c ---- */

/* Start / stop the HTTP server; every request goes through the table. */
wa_err_t gw_http_start(gw_t *gw, char *err, size_t errlen);
void gw_http_stop(gw_t *gw);

/*
 * Match path against template; on a match copy the "{param}" segment (if
 * any, at most GW_PARAM_MAX bytes) into param. Exposed for tests.
 */
bool gw_route_match(const char *tmpl, const char *path, char *param,
                    size_t paramlen);

/* ---- request.c: answering, auth, bodies, bus calls ---- */

/* Send status with body as JSON plus r->cors and extra (header lines, may be
 * NULL). Records the status in r. */
void gw_reply_json(gw_req_t *r, int status, const cJSON *body,
                   const char *extra);

/* {"error": msg or wa_strerror(err), "code": wa_err_code(err)} with the
 * status of err, or with an explicit status. */
void gw_reply_error(gw_req_t *r, wa_err_t err, const char *msg);
void gw_reply_error_status(gw_req_t *r, int status, wa_err_t err,
                           const char *msg, const char *extra);

/* Send an answer another request computed (coalesce.h), with r's own
 * request id and CORS headers. */
void gw_reply_answer(gw_req_t *r, const gw_answer_t *ans);

/* Send a non-JSON body (len bytes) with content type ctype. */
void gw_reply_raw(gw_req_t *r, int status, const char *ctype, const char *body,
                  size_t len);

/* Room for a static answer's own header lines (ETag + extra). */
#define GW_STATIC_HEADERS_MAX 1024

/*
 * Send a built-in file: 200 with body, or 304 without it when the client's
 * If-None-Match names etag (a quoted entity tag). Both carry the ETag,
 * Cache-Control: no-cache (keep it, but ask again before each use) and
 * extra (header lines, may be NULL).
 */
void gw_reply_static(gw_req_t *r, const char *ctype, const char *body,
                     size_t len, const char *etag, const char *extra);

/* Verify the bearer token into r->who. On failure answer 401 (or 500) and
 * return false. */
bool gw_authenticate(gw_req_t *r);

/* Take a token from r->who's bucket. On refusal answer 429 with
 * Retry-After and return false. */
bool gw_rate_limit(gw_req_t *r);

/*
 * Read the request body (at most gw->cfg.max_body bytes) and parse it as a
 * JSON object, returned to the caller (who deletes it). On failure the
 * answer (400, 411, 413) has been sent and NULL is returned.
 */
cJSON *gw_read_json_object(gw_req_t *r);

/* ?limit= as an integer in [GW_LIMIT_MIN, GW_LIMIT_MAX], GW_LIMIT_DEFAULT
 * when absent. On a bad value answer 400 and return false. */
bool gw_query_limit(gw_req_t *r, long *out);

/* Milliseconds left before r's deadline (>= 0). */
int gw_remaining_ms(const gw_req_t *r);

/*
 * A bus call counted in the metrics: wa_bus_call() with the same results.
 * Failures are counted by op and code, not logged (the caller logs).
 */
wa_err_t gw_bus_call(gw_t *gw, nng_socket s, wa_op_t op, const char *user,
                     const char *rid, const cJSON *args, int timeout_ms,
                     wa_reply_t *rep);

/* A call to store-svc for r (user may be "" or r->who.user) within r's
 * deadline. WA_ETIMEDOUT at once if none is left. */
wa_err_t gw_store_call(gw_req_t *r, wa_op_t op, const char *user,
                       const cJSON *args, wa_reply_t *rep);
/* The same, with the answer's data left as checked JSON text in rep->raw,
 * for a route that relays it. */
wa_err_t gw_store_call_raw(gw_req_t *r, wa_op_t op, const char *user,
                           const cJSON *args, wa_reply_t *rep);

/*
 * Answer a failed bus call to peer ("store-svc", "session-svc"): a remote
 * error keeps its code (its message only when it is a 4xx; 5xx answers get
 * the generic text), a transport failure becomes 503 unavailable, 504
 * timeout or 502 for an unreadable answer. Logs 5xx once, with the rid.
 */
void gw_reply_bus_error(gw_req_t *r, const char *peer, wa_op_t op, wa_err_t rv,
                        const wa_reply_t *rep);

/* A JSON object member, or NULL when absent or of another type. */
const char *gw_json_string(const cJSON *obj, const char *name);

/* ---- placement.c: which session-svc serves a user ---- */

wa_err_t gw_placement_new(gw_t *gw, gw_placement_t **out);
void gw_placement_free(gw_placement_t *p);

/*
 * Call op with args on the session-svc instance placed for r->who.user,
 * within r's deadline. The instance comes from a per-user cache (for
 * GW_PLACEMENT_TTL_MS) or from store-svc's placement.resolve; one REQ socket
 * per instance url is dialed on first use and kept. When the call fails in
 * transport (timeout, closed, unavailable) and time is left, the cache entry
 * is dropped, the user re-resolved once, and the call retried with the same
 * rid (session-svc is idempotent by rid). Results as wa_bus_call(); a
 * resolve failure (no_session_service, ...) is returned as is, with
 * *from_store set so the caller can name the right peer.
 */
wa_err_t gw_session_call(gw_req_t *r, wa_op_t op, const cJSON *args,
                         wa_reply_t *rep, bool *from_store);

/* Ping the session-svc at url (dialing it if new); *rtt_us on success. */
wa_err_t gw_instance_ping(gw_t *gw, const char *url, const char *rid,
                          int timeout_ms, int64_t *rtt_us);

/* One instance of gw_instances_ping(). */
typedef struct gw_ping {
    const char *url; /* in: its bus url (the caller's string) */
    wa_err_t rv;     /* out: WA_OK when it answered ping in time */
    int64_t rtt_us;  /* out: the round trip, when it answered */
} gw_ping_t;

/* Instances gw_instances_ping() asks at once, at most: half the sockets
 * placement.c keeps, so a ping never evicts the others. */
#define GW_PING_MAX 32

/*
 * Ping n (<= GW_PING_MAX) session-svc instances at once, each on its kept
 * socket (dialed now if new), and wait for all of them at most timeout_ms
 * (> 0) in all: one dead instance costs no more than the timeout, however
 * many there are. Sets each pings[i].rv (and rtt_us). WA_EINVAL for bad
 * arguments, WA_ENOMEM if the request cannot be built (no ping was sent),
 * else WA_OK. Failed pings are counted in the metrics as bus errors.
 * Thread-safe.
 */
wa_err_t gw_instances_ping(gw_t *gw, gw_ping_t *pings, size_t n,
                           const char *rid, int timeout_ms);

/* Forget a user's cached placement. */
void gw_placement_forget(gw_placement_t *p, const char *user);

/* ---- route handlers ---- */

void gw_route_health(gw_req_t *r);         /* routes_ops.c */
void gw_route_metrics(gw_req_t *r);        /* routes_ops.c */
void gw_route_openapi(gw_req_t *r);        /* openapi.c */
void gw_route_page(gw_req_t *r);           /* www.c */
void gw_route_page_js(gw_req_t *r);        /* www.c */
void gw_route_page_css(gw_req_t *r);       /* www.c */
void gw_route_status(gw_req_t *r);         /* routes_store.c */
void gw_route_logs(gw_req_t *r);           /* routes_store.c */
void gw_route_connect(gw_req_t *r);        /* routes_session.c */
void gw_route_disconnect(gw_req_t *r);     /* routes_session.c */
void gw_route_chats(gw_req_t *r);          /* routes_session.c */
void gw_route_messages(gw_req_t *r);       /* routes_session.c */
void gw_route_send(gw_req_t *r);           /* routes_session.c */
void gw_route_chat_by_phone(gw_req_t *r);  /* routes_session.c */
void gw_route_diagnostics(gw_req_t *r);    /* routes_admin.c */
void gw_route_admin_sessions(gw_req_t *r); /* routes_admin.c */

/* Microseconds of CLOCK_MONOTONIC. */
int64_t gw_now_us(void);

#endif /* GW_GATEWAY_H */
