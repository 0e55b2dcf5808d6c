/*
 * http.c - starting CivetWeb with safe options, and JSON answers.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "wa/bus.h"
#include "wa/config.h"
#include "wa/http.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_library(void)
{
    mg_init_library(MG_FEATURES_DEFAULT | MG_FEATURES_WEBSOCKET);
}

/*
 * A worker thread's stack keeps every page its deepest request ever
 * touched (CivetWeb's and printf's buffers: about 40 KiB), for as long as
 * the server runs: 2.9 MiB of an idle gateway with 72 workers, measured.
 * When a connection closes, its worker gives back the pages of its own
 * stack below the current frame (less a margin for the calls still to
 * come): dead memory, which the next deep call faults in again as zeroes.
 * Only the thread itself may do this, and only below its own frame.
 */
#define STACK_KEEP 4096

static _Thread_local uintptr_t stack_lo; /* 0: not looked up yet */

static void release_stack(void)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), here, lo, top;
    volatile char mark = 0;

    if (stack_lo == 0) {
        pthread_attr_t a;
        void *addr = NULL;
        size_t size = 0;

        if (pthread_getattr_np(pthread_self(), &a) != 0)
            return;
        if (pthread_attr_getstack(&a, &addr, &size) != 0)
            addr = NULL;
        pthread_attr_destroy(&a);
        if (addr == NULL)
            return;
        stack_lo = (uintptr_t)addr;
    }
    here = (uintptr_t)&mark;
    /* Skip the lowest page (a guard page may sit there). */
    lo = (stack_lo + 2 * page - 1) & ~(page - 1);
    if (here < lo + STACK_KEEP)
        return;
    top = (here - STACK_KEEP) & ~(page - 1);
    if (top > lo)
        (void)madvise((void *)lo, top - lo, MADV_DONTNEED);
}

/* The service's own connection_close, called before release_stack(). One
 * server per process (gateway, notifier-svc). */
static void (*user_close)(const struct mg_connection *);

static void on_connection_close(const struct mg_connection *conn)
{
    if (user_close != NULL)
        user_close(conn);
    release_stack();
}

/* The service's own log_message, and, while wa_http_start() runs on this
 * thread, where CivetWeb's first complaint goes (why a port cannot be
 * bound: its mg_start2() error text only says "Failed to setup server
 * ports"). */
static int (*user_log)(const struct mg_connection *, const char *);
static _Thread_local char *start_why;
static _Thread_local size_t start_why_len;

static int on_log_message(const struct mg_connection *conn, const char *msg)
{
    if (start_why != NULL && start_why[0] == '\0' && msg != NULL)
        snprintf(start_why, start_why_len, "%s", msg);
    /* 0: CivetWeb logs it itself, which without error_log_file is not at
     * all. */
    return user_log != NULL ? user_log(conn, msg) : 0;
}

wa_err_t wa_http_start(const wa_http_opts_t *opts,
                       const struct mg_callbacks *callbacks, void *user_data,
                       struct mg_context **out, char *err, size_t errlen)
{
    struct mg_callbacks cbs = {0};
    char port[16], threads[16], timeout[24], maxreq[24];
    struct mg_init_data init = {0};
    struct mg_error_data error = {0};
    struct mg_context *ctx;
    char reason[256] = "", why[256] = "";
    unsigned code = 0;
    const char *options[] = {
        "listening_ports",
        port,
        "num_threads",
        threads,
        "request_timeout_ms",
        timeout,
        "max_request_size",
        maxreq,
        "enable_keep_alive",
        "yes",
        "keep_alive_timeout_ms",
        "15000",
        "tcp_nodelay",
        "1",
        "decode_url",
        opts->raw_path ? "no" : "yes",
        "enable_directory_listing",
        "no",
        "enable_websocket_ping_pong",
        opts->websocket_ping ? "yes" : "no",
        "websocket_timeout_ms",
        timeout,
        /* Our handlers answer CORS, and nothing writes an access log. */
        "access_control_allow_origin",
        "",
        "access_control_allow_methods",
        "",
        "access_control_allow_headers",
        "",
        NULL,
    };

    snprintf(port, sizeof(port), "%ld", opts->port);
    snprintf(threads, sizeof(threads), "%ld", opts->threads);
    snprintf(timeout, sizeof(timeout), "%ld", opts->request_timeout_ms);
    snprintf(maxreq, sizeof(maxreq), "%ld", opts->max_request_size);
    pthread_once(&init_once, init_library);

    if (callbacks != NULL)
        cbs = *callbacks;
    user_close = cbs.connection_close;
    cbs.connection_close = on_connection_close;
    user_log = cbs.log_message;
    cbs.log_message = on_log_message;
    init.callbacks = &cbs;
    init.user_data = user_data;
    init.configuration_options = options;
    error.code = &code;
    error.text = reason;
    error.text_buffer_size = sizeof(reason);
    start_why = why;
    start_why_len = sizeof(why);
    ctx = mg_start2(&init, &error);
    start_why = NULL;
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot listen on port %ld: %s", opts->port,
                 why[0] != '\0'      ? why
                 : reason[0] != '\0' ? reason
                                     : "unknown error");
        return WA_EUNAVAIL;
    }
    *out = ctx;
    return WA_OK;
}

void wa_http_request_id(const struct mg_connection *conn, char *out, size_t len)
{
    const char *h = mg_get_header(conn, "X-Request-Id");

    if (h != NULL && strlen(h) < len && wa_check_rid(h) == WA_OK) {
        memcpy(out, h, strlen(h) + 1);
        return;
    }
    wa_rid_new(out, len);
}

static const char *reason_phrase(int status)
{
    const char *r = mg_get_response_code_text(NULL, status);

    return r != NULL ? r : "";
}

wa_err_t wa_http_send(struct mg_connection *conn, int status, const char *rid,
                      const char *ctype, const char *cache,
                      const char *extra_headers, const void *body, size_t len)
{
    /* Headers, plus the body when it is small: one write either way. */
    char buf[4096];
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *x = extra_headers != NULL ? extra_headers : "";
    char *out = buf;
    size_t total;
    int n, w;

    if (cache == NULL)
        cache = "no-store";
    if (status == 204 || status == 304) {
        n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\n"
                     "Cache-Control: %s\r\n"
                     "X-Request-Id: %s\r\n"
                     "%s\r\n",
                     status, reason_phrase(status), cache,
                     rid != NULL ? rid : "", x);
        len = 0;
    } else {
        n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: %s\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "X-Request-Id: %s\r\n"
                     "%s\r\n",
                     status, reason_phrase(status),
                     ctype != NULL ? ctype : "application/json", len, cache,
                     rid != NULL ? rid : "", x);
    }
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        mg_disable_connection_keep_alive(conn);
        return WA_ETOOBIG;
    }
    /* The headers say what a GET would have sent. */
    if (ri != NULL && ri->request_method != NULL &&
        strcmp(ri->request_method, "HEAD") == 0)
        len = 0;
    total = (size_t)n + len;
    if (total > sizeof(buf) && (out = malloc(total)) != NULL)
        memcpy(out, buf, (size_t)n);
    if (out == NULL) {
        /* No memory for one buffer: two writes are still a valid answer. */
        if (mg_write(conn, buf, (size_t)n) != n)
            return WA_ECLOSED;
        w = len > 0 ? mg_write(conn, body, len) : 0;
        return w == (int)len ? WA_OK : WA_ECLOSED;
    }
    if (len > 0)
        memcpy(out + n, body, len);
    w = mg_write(conn, out, total);
    if (out != buf)
        free(out);
    return w == (int)total ? WA_OK : WA_ECLOSED;
}

void wa_http_reply_json(struct mg_connection *conn, int status, const char *rid,
                        const cJSON *body, const char *extra_headers)
{
    static const char oom[] =
        "{\"error\":\"out of memory\",\"code\":\"out_of_memory\"}";
    char *text = NULL;

    if (body != NULL && (text = cJSON_PrintUnformatted(body)) == NULL) {
        (void)wa_http_send(conn, 500, rid, "application/json", NULL, NULL, oom,
                           sizeof(oom) - 1);
        return;
    }
    (void)wa_http_send(conn, status, rid, "application/json", NULL,
                       extra_headers, text, text != NULL ? strlen(text) : 0);
    free(text);
}

void wa_http_reply_error(struct mg_connection *conn, wa_err_t err,
                         const char *message, const char *rid,
                         const char *extra_headers)
{
    cJSON *body = cJSON_CreateObject();

    if (body != NULL) {
        cJSON_AddStringToObject(body, "error",
                                message != NULL ? message : wa_strerror(err));
        cJSON_AddStringToObject(body, "code", wa_err_code(err));
    }
    wa_http_reply_json(conn, wa_err_http_status(err), rid, body, extra_headers);
    cJSON_Delete(body);
}

bool wa_http_method_is(struct mg_connection *conn, const char *rid,
                       const char *method)
{
    char allow[64];

    if (strcmp(mg_get_request_info(conn)->request_method, method) == 0)
        return true;
    snprintf(allow, sizeof(allow), "Allow: %s\r\n", method);
    wa_http_reply_error(conn, WA_EMETHOD, NULL, rid, allow);
    return false;
}

int wa_http_on_not_found(struct mg_connection *conn, void *arg)
{
    char rid[WA_RID_MAX + 1];

    (void)arg;
    wa_http_request_id(conn, rid, sizeof(rid));
    wa_http_reply_error(conn, WA_ENOTFOUND, "no such route", rid, NULL);
    return 404;
}

bool wa_http_origin_allowed(char *const *allowed, const char *origin)
{
    return origin != NULL && wa_strv_contains(allowed, origin);
}
