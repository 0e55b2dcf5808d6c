/*
 * http.h - CivetWeb as gateway and notifier-svc run it (library wahttp).
 *
 * One place decides how a CivetWeb server is started: our own CORS (its
 * built-in answer of "*" to every preflight is switched off), no access log
 * (it would record ?token=), no file serving, bounded request size, timeouts
 * and threads. And one way to answer JSON and errors (DESIGN §4 shape).
 */
#ifndef WA_HTTP_H
#define WA_HTTP_H

#include <stdbool.h>

#include <civetweb.h>
#include <cjson/cJSON.h>

#include "wa/envelope.h"
#include "wa/err.h"

typedef struct wa_http_opts {
    long port;               /* 1..65535 */
    long threads;            /* worker threads */
    long request_timeout_ms; /* per request read/write */
    long max_request_size;   /* bytes of request line + headers */
    bool websocket_ping;     /* CivetWeb's WebSocket ping/pong */
    bool raw_path;           /* leave mg_request_info.local_uri percent-encoded
                                (CivetWeb's decode_url off): a handler that
                                must see what was sent (an encoded NUL cuts
                                CivetWeb's decoded copy short) decodes it */
} wa_http_opts_t;

/*
 * Initialise CivetWeb (once per process) and start a server on opts->port
 * on every interface. callbacks/user_data as for mg_start (may be NULL).
 * WA_EUNAVAIL when the port cannot be bound, with one line in err naming
 * the port and CivetWeb's reason ("cannot listen on port 3001: cannot bind
 * to 3001: 98 (Address already in use)"). A service treats that as bad
 * configuration (DESIGN §2): it prints "<service>: <err>" and exits with
 * WA_EXIT_CONFIG (service.h). Stop with mg_stop().
 */
wa_err_t wa_http_start(const wa_http_opts_t *opts,
                       const struct mg_callbacks *callbacks, void *user_data,
                       struct mg_context **out, char *err, size_t errlen);

/*
 * The request id of a request: the client's X-Request-Id when it is a valid
 * rid (wa_check_rid), else a new one. out holds WA_RID_MAX + 1 bytes.
 */
void wa_http_request_id(const struct mg_connection *conn, char *out,
                        size_t len);

/*
 * Send one complete answer in a single write: status line, Content-Type and
 * Content-Length (not for 204/304), Cache-Control (cache; NULL = no-store),
 * X-Content-Type-Options: nosniff, X-Request-Id, extra_headers verbatim
 * (each "Name: value\r\n", may be NULL), then body[0..len) (not for HEAD,
 * 204 or 304). WA_ETOOBIG if the headers exceed 4 KiB (nothing is sent and
 * the connection will close), WA_ECLOSED if the write failed. Thread-safe
 * per connection as CivetWeb is.
 */
wa_err_t wa_http_send(struct mg_connection *conn, int status, const char *rid,
                      const char *ctype, const char *cache,
                      const char *extra_headers, const void *body, size_t len);

/*
 * Send status with body as JSON (NULL = no body), with X-Request-Id, no-store
 * caching, and extra_headers (each "Name: value\r\n", may be NULL) verbatim.
 */
void wa_http_reply_json(struct mg_connection *conn, int status, const char *rid,
                        const cJSON *body, const char *extra_headers);

/* Send {"error": message or wa_strerror(err), "code": wa_err_code(err)} with
 * wa_err_http_status(err). */
void wa_http_reply_error(struct mg_connection *conn, wa_err_t err,
                         const char *message, const char *rid,
                         const char *extra_headers);

/*
 * Is the request's method `method`? If not, answer 405 method_not_allowed
 * with "Allow: <method>" and return false.
 */
bool wa_http_method_is(struct mg_connection *conn, const char *rid,
                       const char *method);

/* A CivetWeb request handler answering 404 not_found in the error shape;
 * register it last, on "/". */
int wa_http_on_not_found(struct mg_connection *conn, void *arg);

/* Is origin one of allowed (exact, byte for byte)? NULL origin: false. */
bool wa_http_origin_allowed(char *const *allowed, const char *origin);

#endif /* WA_HTTP_H */
