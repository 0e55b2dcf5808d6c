/* http_test.c - libwahttp: CivetWeb's options, JSON answers, request ids. */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "free_port.h"
#include "wa/config.h"
#include "wa/http.h"

static struct mg_context *ctx;
static long port;

static long free_port(void)
{
    int p = test_free_port();

    assert_true(p > 0);
    return p;
}

/* Send a raw request, return the whole response (malloc'd). */
static char *roundtrip(const char *req)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t r;

    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (n + 1 < cap && (r = read(fd, buf + n, cap - n - 1)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    close(fd);
    return buf;
}

static int on_echo(struct mg_connection *conn, void *arg)
{
    char rid[WA_RID_MAX + 1];
    cJSON *body;

    (void)arg;
    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "GET"))
        return 405;
    body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "rid", rid);
    cJSON_AddStringToObject(body, "quote", "a\"b");
    wa_http_reply_json(conn, 200, rid, body, "X-Extra: 1\r\n");
    cJSON_Delete(body);
    return 200;
}

static int on_fail(struct mg_connection *conn, void *arg)
{
    (void)arg;
    wa_http_reply_error(conn, WA_ENOTREADY, NULL, "r-1", NULL);
    return 409;
}

static int setup(void **state)
{
    const wa_http_opts_t opts = {
        .threads = 4, .request_timeout_ms = 2000, .max_request_size = 4096};
    wa_http_opts_t o = opts;
    char err[256];

    (void)state;
    port = free_port();
    o.port = port;
    assert_int_equal(wa_http_start(&o, NULL, NULL, &ctx, err, sizeof(err)),
                     WA_OK);
    mg_set_request_handler(ctx, "/echo$", on_echo, NULL);
    mg_set_request_handler(ctx, "/fail$", on_fail, NULL);
    mg_set_request_handler(ctx, "/", wa_http_on_not_found, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mg_stop(ctx);
    return 0;
}

static void test_json_reply(void **state)
{
    char *r;

    (void)state;
    r = roundtrip("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "X-Request-Id: abc-123\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(r, "X-Request-Id: abc-123\r\n"));
    assert_non_null(strstr(r, "Cache-Control: no-store\r\n"));
    assert_non_null(strstr(r, "X-Extra: 1\r\n"));
    assert_non_null(strstr(r, "{\"rid\":\"abc-123\",\"quote\":\"a\\\"b\"}"));
    free(r);
}

static void test_bad_request_id_replaced(void **state)
{
    char *r, *h;

    (void)state;
    r = roundtrip("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "X-Request-Id: has space\r\n\r\n");
    h = strstr(r, "X-Request-Id: ");
    assert_non_null(h);
    assert_null(strstr(r, "has space"));
    assert_int_equal(strcspn(h + 14, "\r"), 24);
    free(r);
}

static void test_error_shape(void **state)
{
    char *r;

    (void)state;
    r = roundtrip("GET /fail HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 409 Conflict\r\n"));
    assert_non_null(strstr(r, "\"code\":\"not_ready\""));
    assert_non_null(strstr(r, "\"error\":"));
    free(r);
}

static void test_method_not_allowed(void **state)
{
    char *r;

    (void)state;
    r = roundtrip("DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 405 "));
    assert_non_null(strstr(r, "Allow: GET\r\n"));
    assert_non_null(strstr(r, "\"code\":\"method_not_allowed\""));
    free(r);
}

static void test_not_found(void **state)
{
    char *r;

    (void)state;
    r = roundtrip("GET /nope/../x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 "));
    assert_non_null(strstr(r, "\"code\":\"not_found\""));
    free(r);
}

/* CivetWeb's own CORS (Access-Control-Allow-Origin: * on everything,
 * preflights answered by itself) must be off: only our handlers answer. */
static void test_no_builtin_cors(void **state)
{
    char *r;

    (void)state;
    r = roundtrip("OPTIONS /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "Origin: https://evil.example\r\n"
                  "Access-Control-Request-Method: GET\r\n\r\n");
    assert_null(strstr(r, "Access-Control-Allow-Origin"));
    assert_non_null(strstr(r, "HTTP/1.1 405 "));
    free(r);
    r = roundtrip("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  "Origin: https://evil.example\r\n\r\n");
    assert_null(strstr(r, "Access-Control-Allow-Origin"));
    free(r);
}

static void test_oversized_headers_refused(void **state)
{
    char *req = malloc(8192), *r;

    (void)state;
    snprintf(req, 8192,
             "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: %06000d\r\n"
             "Connection: close\r\n\r\n",
             0);
    r = roundtrip(req);
    assert_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    free(req);
}

static void test_port_in_use(void **state)
{
    wa_http_opts_t o = {.port = port,
                        .threads = 2,
                        .request_timeout_ms = 1000,
                        .max_request_size = 4096};
    struct mg_context *other = NULL;
    char err[256] = "";

    (void)state;
    assert_int_equal(wa_http_start(&o, NULL, NULL, &other, err, sizeof(err)),
                     WA_EUNAVAIL);
    assert_null(other);
    assert_non_null(strstr(err, "cannot listen on port"));
}

static void test_origin_allowed(void **state)
{
    char **v = wa_strv_split("https://crm.example, http://localhost:5173");

    (void)state;
    assert_true(wa_http_origin_allowed(v, "https://crm.example"));
    assert_true(wa_http_origin_allowed(v, "http://localhost:5173"));
    assert_false(wa_http_origin_allowed(v, "https://crm.example/"));
    assert_false(wa_http_origin_allowed(v, "https://CRM.example"));
    assert_false(wa_http_origin_allowed(v, "null"));
    assert_false(wa_http_origin_allowed(v, NULL));
    wa_strv_free(v);
}

static atomic_int closed;

static void count_close(const struct mg_connection *conn)
{
    (void)conn;
    atomic_fetch_add(&closed, 1);
}

/* The service's connection_close still runs (wa_http_start wraps it to give
 * the worker's dead stack pages back), and a worker that gave them back
 * serves the next connection as before. */
static void test_connection_close_kept(void **state)
{
    const struct mg_callbacks cbs = {.connection_close = count_close};
    wa_http_opts_t o = {
        .threads = 2, .request_timeout_ms = 2000, .max_request_size = 4096};
    struct mg_context *c2;
    long saved = port;
    char err[256], *resp;

    (void)state;
    o.port = port = free_port();
    assert_int_equal(wa_http_start(&o, &cbs, NULL, &c2, err, sizeof(err)),
                     WA_OK);
    mg_set_request_handler(c2, "/echo$", on_echo, NULL);
    for (int i = 0; i < 6; i++) {
        resp = roundtrip("GET /echo HTTP/1.1\r\nHost: x\r\n"
                         "Connection: close\r\n\r\n");
        assert_non_null(strstr(resp, "HTTP/1.1 200"));
        assert_non_null(strstr(resp, "a\\\"b"));
        free(resp);
    }
    mg_stop(c2); /* waits for the workers: every close has run */
    assert_int_equal(atomic_load(&closed), 6);
    port = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_close_kept),
        cmocka_unit_test(test_json_reply),
        cmocka_unit_test(test_bad_request_id_replaced),
        cmocka_unit_test(test_error_shape),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_no_builtin_cors),
        cmocka_unit_test(test_oversized_headers_refused),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_origin_allowed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
