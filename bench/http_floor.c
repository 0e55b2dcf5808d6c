/*
 * http_floor - the ceiling the HTTP layer alone leaves the gateway on this
 * machine: CivetWeb started exactly as the gateway starts it (proto's
 * wa_http_start: same threads, limits and timeouts), answering every
 * request at once with a fixed JSON body of the given size, through the
 * same single-write wa_http_send. No auth, no bus, no store. What wrk
 * measures against it is what no gateway built on CivetWeb can beat here.
 *
 *   http_floor <port> <body-bytes> [threads]     (threads default 72)
 *
 * Runs until SIGINT/SIGTERM. bench/http_floor.sh drives it with wrk.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <civetweb.h>

#include "wa/envelope.h"
#include "wa/http.h"

static volatile sig_atomic_t stop;
static char *body;
static size_t body_len;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int on_request(struct mg_connection *conn, void *arg)
{
    char rid[WA_RID_MAX + 1];

    (void)arg;
    wa_http_request_id(conn, rid, sizeof(rid));
    (void)wa_http_send(conn, 200, rid, "application/json", NULL, NULL, body,
                       body_len);
    return 200;
}

/* {"logs":[{"pad":"xxx..."}]} of exactly len bytes (len >= 24). */
static char *make_body(size_t len)
{
    static const char head[] = "{\"logs\":[{\"pad\":\"", tail[] = "\"}]}";
    size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
    char *b;

    if (len < fixed || (b = malloc(len + 1)) == NULL)
        return NULL;
    memcpy(b, head, sizeof(head) - 1);
    memset(b + sizeof(head) - 1, 'x', len - fixed);
    memcpy(b + len - (sizeof(tail) - 1), tail, sizeof(tail));
    return b;
}

int main(int argc, char **argv)
{
    wa_http_opts_t opts = {
        .threads = 72,
        .request_timeout_ms = 10000,
        .max_request_size = 16384,
        .raw_path = true,
    };
    struct mg_context *ctx = NULL;
    char err[256];

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: http_floor <port> <body-bytes> [threads]\n");
        return 2;
    }
    opts.port = strtol(argv[1], NULL, 10);
    body_len = (size_t)strtoul(argv[2], NULL, 10);
    if (argc == 4)
        opts.threads = strtol(argv[3], NULL, 10);
    if (opts.port < 1 || opts.port > 65535 || opts.threads < 1 ||
        body_len > 1024 * 1024 || (body = make_body(body_len)) == NULL) {
        fprintf(stderr, "http_floor: bad port, body size (24..1048576) or "
                        "thread count\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (wa_http_start(&opts, NULL, NULL, &ctx, err, sizeof(err)) != WA_OK) {
        fprintf(stderr, "http_floor: %s\n", err);
        free(body);
        return 1;
    }
    mg_set_request_handler(ctx, "/", on_request, NULL);
    while (!stop)
        pause();
    mg_stop(ctx);
    free(body);
    return 0;
}
