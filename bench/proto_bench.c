/*
 * proto_bench.c - throughput of the hot paths of libwaproto: the envelope
 * codec (every bus message) and bearer-token verification (every HTTP
 * request and WebSocket handshake).
 *
 * Usage: proto_bench [seconds-per-figure]   (default 1.0, max 60)
 *
 * Each figure runs its operation in batches until the time is up and prints
 * one line "name  ops/s". Single-threaded; the messages are small, realistic
 * ones (a wa.send request, a status reply, a message event), so the figures
 * are per-message overheads, not bandwidth.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jwt.h>

#include "wa/auth.h"
#include "wa/envelope.h"
#include "wa/json.h"

#define BATCH 256

/* The benchmark's own secret: 32+ bytes, as wa_auth_new() requires. */
static const char bench_secret[] = "proto-bench-secret-0123456789abcdef";

/* Keeps results alive so the compiler cannot drop the work. */
static volatile size_t sink;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Noreturn void die(const char *what, wa_err_t rv)
{
    fprintf(stderr, "proto_bench: %s: %s\n", what, wa_strerror(rv));
    exit(1);
}

/* One operation; returns WA_OK or the error that stops the benchmark. */
typedef wa_err_t (*bench_fn)(void *ctx);

static void run(const char *name, bench_fn fn, void *ctx, double seconds)
{
    double start, elapsed;
    unsigned long long ops = 0;
    wa_err_t rv;

    /* Warm caches and the allocator before timing. */
    for (int i = 0; i < BATCH; i++) {
        if ((rv = fn(ctx)) != WA_OK)
            die(name, rv);
    }
    start = now_s();
    do {
        for (int i = 0; i < BATCH; i++) {
            if ((rv = fn(ctx)) != WA_OK)
                die(name, rv);
        }
        ops += BATCH;
        elapsed = now_s() - start;
    } while (elapsed < seconds);
    printf("%-16s %10.0f ops/s\n", name, (double)ops / elapsed);
    fflush(stdout);
}

/* ------------------------------------------------------------ envelope */

typedef struct codec_ctx {
    cJSON *args;   /* a wa.send request's arguments */
    cJSON *data;   /* a wa.status reply's data */
    wa_event_t ev; /* a message event */
    char *req;     /* encoded request */
    size_t req_len;
    char *evmsg; /* encoded event */
    size_t evmsg_len;
    char *logs; /* a log.list reply of 50 rows, as GET /logs gets it */
    size_t logs_len;
} codec_ctx_t;

static wa_err_t request_encode(void *p)
{
    codec_ctx_t *c = p;
    char *out;
    size_t len;
    wa_err_t rv =
        wa_request_encode(WA_OP_WA_SEND, "8f14e45f-ceea-467f-a0e4-4c8a6e5c6b1d",
                          "01J9ZQ4X8R2M7K5V3N6P0T1W2Y", c->args, &out, &len);
    if (rv == WA_OK) {
        sink += len;
        free(out);
    }
    return rv;
}

static wa_err_t request_decode(void *p)
{
    codec_ctx_t *c = p;
    wa_request_t r;
    wa_err_t rv = wa_request_decode(c->req, c->req_len, &r);
    if (rv == WA_OK) {
        sink += (size_t)r.op;
        wa_request_clear(&r);
    }
    return rv;
}

static wa_err_t reply_round_trip(void *p)
{
    codec_ctx_t *c = p;
    wa_reply_t r;
    char *out;
    size_t len;
    wa_err_t rv;

    if ((rv = wa_reply_encode_ok(c->data, &out, &len)) != WA_OK)
        return rv;
    rv = wa_reply_decode(out, len, &r);
    free(out);
    if (rv == WA_OK) {
        sink += (size_t)r.ok;
        wa_reply_clear(&r);
    }
    return rv;
}

/* The log.list reply read into a tree (what the gateway did before it
 * relayed the text). */
static wa_err_t logs_decode_tree(void *p)
{
    codec_ctx_t *c = p;
    wa_reply_t r;
    wa_err_t rv = wa_reply_decode(c->logs, c->logs_len, &r);

    if (rv == WA_OK) {
        sink += (size_t)cJSON_GetArraySize(
            cJSON_GetObjectItemCaseSensitive(r.data, "logs"));
        wa_reply_clear(&r);
    }
    return rv;
}

/* The same reply with its data kept as text, then every row and member
 * walked (json.h), as the gateway's shape check of GET /logs does. */
static wa_err_t logs_decode_raw(void *p)
{
    codec_ctx_t *c = p;
    wa_json_span_t key, val, row, k2, v2;
    wa_json_iter_t top, rows, cols;
    wa_reply_t r;
    wa_err_t rv = wa_reply_decode_raw(c->logs, c->logs_len, &r);

    if (rv != WA_OK)
        return rv;
    wa_json_iter_init(&top, (wa_json_span_t){r.raw, r.raw_len});
    while (wa_json_iter_next_in(&top, &key, &val, &rows)) {
        while (wa_json_iter_next_in(&rows, &key, &row, &cols)) {
            while (wa_json_iter_next(&cols, &k2, &v2))
                sink += v2.n;
        }
    }
    wa_reply_clear(&r);
    return WA_OK;
}

static wa_err_t event_encode(void *p)
{
    codec_ctx_t *c = p;
    char *out;
    size_t len;
    wa_err_t rv = wa_event_encode(&c->ev, &out, &len);
    if (rv == WA_OK) {
        sink += len;
        free(out);
    }
    return rv;
}

static wa_err_t event_decode(void *p)
{
    codec_ctx_t *c = p;
    wa_event_t e;
    wa_err_t rv = wa_event_decode(c->evmsg, c->evmsg_len, &e);
    if (rv == WA_OK) {
        sink += (size_t)e.seq;
        wa_event_clear(&e);
    }
    return rv;
}

static wa_err_t event_frame(void *p)
{
    codec_ctx_t *c = p;
    char *out;
    size_t len;
    wa_err_t rv = wa_event_frame(&c->ev, &out, &len);
    if (rv == WA_OK) {
        sink += len;
        free(out);
    }
    return rv;
}

static void codec_setup(codec_ctx_t *c)
{
    cJSON *msg;
    wa_err_t rv;

    memset(c, 0, sizeof(*c));
    c->args = cJSON_CreateObject();
    cJSON_AddStringToObject(c->args, "chatId", "41791234567@c.us");
    cJSON_AddStringToObject(c->args, "message",
                            "Guten Tag, Ihr Termin ist am Donnerstag um "
                            "10:30. Bitte bringen Sie Ihre Versicherungskarte "
                            "mit. \xF0\x9F\x99\x82");

    c->data = cJSON_CreateObject();
    cJSON_AddStringToObject(c->data, "status", "ready");
    cJSON_AddStringToObject(c->data, "phoneNumber", "+41791234567");
    cJSON_AddStringToObject(c->data, "displayName",
                            "Dr. Zo\xC3\xAB M\xC3\xBCller");
    cJSON_AddNullToObject(c->data, "qrCode");
    cJSON_AddStringToObject(c->data, "connectedAt", "2026-11-26T10:00:00.123Z");
    cJSON_AddStringToObject(c->data, "lastActivity",
                            "2026-11-26T10:05:00.456Z");

    rv = wa_event_init(&c->ev, "8f14e45f-ceea-467f-a0e4-4c8a6e5c6b1d",
                       WA_EV_MESSAGE);
    if (rv != WA_OK)
        die("event init", rv);
    msg = c->ev.data;
    cJSON_AddStringToObject(msg, "id", "false_41790000000@c.us_3EB0C767D82B");
    cJSON_AddStringToObject(msg, "chatId", "41790000000@c.us");
    cJSON_AddStringToObject(msg, "from", "41790000000@c.us");
    cJSON_AddStringToObject(msg, "to", "41791234567@c.us");
    cJSON_AddStringToObject(msg, "body", "Danke, bis Donnerstag!");
    cJSON_AddNumberToObject(msg, "timestamp", 1795687200);
    cJSON_AddBoolToObject(msg, "fromMe", 0);
    cJSON_AddStringToObject(msg, "type", "chat");
    c->ev.seq = 123456;

    rv = wa_request_encode(
        WA_OP_WA_SEND, "8f14e45f-ceea-467f-a0e4-4c8a6e5c6b1d",
        "01J9ZQ4X8R2M7K5V3N6P0T1W2Y", c->args, &c->req, &c->req_len);
    if (rv != WA_OK)
        die("request encode", rv);
    if ((rv = wa_event_encode(&c->ev, &c->evmsg, &c->evmsg_len)) != WA_OK)
        die("event encode", rv);

    /* 50 rows shaped as bench/gateway_bench.sh seeds them. */
    {
        wa_json_buf_t b = {0};
        cJSON *raw;

        wa_json_buf_lit(&b, "{\"logs\":[");
        for (int i = 0; i < 50; i++) {
            wa_json_buf_lit(&b, i > 0 ? ",{\"id\":" : "{\"id\":");
            wa_json_buf_int(&b, 1000000 - i);
            wa_json_buf_lit(&b, ",\"eventType\":\"message\",\"eventData\":"
                                "{\"n\":1,\"body\":\"00000000000000000000"
                                "000000000000000000000\"},\"timestamp\":"
                                "\"2026-11-26T10:00:00.123Z\"}");
        }
        wa_json_buf_lit(&b, "]}");
        if ((rv = wa_json_buf_done(&b, &c->logs, NULL)) != WA_OK ||
            (raw = cJSON_CreateRaw(c->logs)) == NULL)
            die("logs", WA_ENOMEM);
        free(c->logs);
        rv = wa_reply_encode_ok(raw, &c->logs, &c->logs_len);
        cJSON_Delete(raw);
        if (rv != WA_OK)
            die("logs reply", rv);
    }
}

static void codec_teardown(codec_ctx_t *c)
{
    free(c->req);
    free(c->evmsg);
    free(c->logs);
    wa_event_clear(&c->ev);
    cJSON_Delete(c->args);
    cJSON_Delete(c->data);
}

/* ----------------------------------------------------------------- JWT */

typedef struct jwt_ctx {
    wa_auth_t *auth;
    char *token;
    time_t now;
} jwt_ctx_t;

static wa_err_t jwt_verify(void *p)
{
    jwt_ctx_t *j = p;
    wa_principal_t who;
    const char *why = NULL;
    wa_err_t rv = wa_auth_token(j->auth, j->token, j->now, &who, &why);
    if (rv == WA_OK)
        sink += (size_t)who.user[0];
    else
        fprintf(stderr, "proto_bench: token refused: %s\n",
                why != NULL ? why : "?");
    return rv;
}

/* A valid HS256 token for "bench-user", made with libjwt directly so the
 * benchmark does not depend on test helpers. NULL on failure. */
static char *make_token(time_t now)
{
    jwt_t *jwt = NULL;
    char *tok = NULL;

    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)bench_secret,
                    (int)strlen(bench_secret)) == 0 &&
        jwt_add_grant(jwt, "sub", "bench-user") == 0 &&
        jwt_add_grant(jwt, "role", "authenticated") == 0 &&
        jwt_add_grant_int(jwt, "iat", (long)now) == 0 &&
        jwt_add_grant_int(jwt, "exp", (long)now + 3600) == 0)
        tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    return tok;
}

static void bench_jwt(double seconds)
{
    wa_auth_opts_t opts;
    jwt_ctx_t j;
    char err[256] = "";
    wa_err_t rv;

    memset(&opts, 0, sizeof(opts));
    memset(&j, 0, sizeof(j));
    opts.jwt_secret = (char *)bench_secret;
    opts.require_exp = true;
    if ((rv = wa_auth_new(&opts, &j.auth, err, sizeof(err))) != WA_OK) {
        fprintf(stderr, "proto_bench: wa_auth_new: %s\n", err);
        exit(1);
    }
    j.now = time(NULL);
    if ((j.token = make_token(j.now)) == NULL) {
        fprintf(stderr, "proto_bench: libjwt could not make a token\n");
        exit(1);
    }
    run("jwt_verify", jwt_verify, &j, seconds);
    free(j.token); /* libjwt 1.10 allocates with malloc() */
    wa_auth_free(j.auth);
}

int main(int argc, char **argv)
{
    double seconds = 1.0;
    codec_ctx_t c;

    if (argc > 1) {
        char *end;
        errno = 0;
        seconds = strtod(argv[1], &end);
        if (errno != 0 || end == argv[1] || *end != '\0' || !(seconds > 0) ||
            seconds > 60) {
            fprintf(stderr, "usage: %s [seconds-per-figure (0..60]]\n",
                    argv[0]);
            return 2;
        }
    }

    codec_setup(&c);
    printf("# request %zu bytes, event %zu bytes, log.list reply %zu bytes, "
           "%.2f s per figure\n",
           c.req_len, c.evmsg_len, c.logs_len, seconds);
    run("request_encode", request_encode, &c, seconds);
    run("request_decode", request_decode, &c, seconds);
    run("reply_roundtrip", reply_round_trip, &c, seconds);
    run("event_encode", event_encode, &c, seconds);
    run("event_decode", event_decode, &c, seconds);
    run("event_frame", event_frame, &c, seconds);
    run("logs_tree", logs_decode_tree, &c, seconds);
    run("logs_raw", logs_decode_raw, &c, seconds);
    codec_teardown(&c);

    bench_jwt(seconds);
    return 0;
}
