/*
 * store_bench.c - throughput of a running store-svc through the bus.
 *
 * Usage: STORE_URL=tcp://127.0.0.1:5560 store_bench [--only=<op>]
 *            [--socket-per-thread] [--rows=N] [--batcher=N] [--users=N]
 *            [--pace=N] [seconds] [threads...]
 *        defaults: log.append, session.get and ping; 3 seconds per figure;
 *        1 16 64 client threads.
 *
 * Starts nothing: it dials STORE_URL. For each operation and thread count K
 * it runs K client threads calling wa_bus_call() back to back, each call
 * with a fresh rid, for the given time:
 *
 *   log.append   every row committed before its answer (group commit);
 *                --rows=N (2..256) sends N rows per call in "rows", as a
 *                producer with a backlog does; rows/s counts rows;
 *   session.get  the read path;
 *   log.list     (only with --only=log.list) 50 rows of a user, newest
 *                first, as GET /logs asks; 50 rows per user are appended
 *                first, and the answer is kept as text as the gateway
 *                keeps it (wa_bus_batcher_call_raw with --batcher);
 *   ping         no database at all: the ceiling of the bus itself on this
 *                machine, to read the other two against.
 *
 * The users are bench-user-1 .. bench-user-N (--users, default 100), as
 * bench/gateway_bench.sh names them. --pace=N makes each thread call at
 * most N times a second, evenly spaced (a steady producer, for instance
 * events arriving while gateway_bench polls GET /logs), instead of back
 * to back.
 *
 * The threads share one REQ socket, as the gateway's do, unless
 * --socket-per-thread gives each its own (as separate session-svc
 * processes would have). --batcher=N sends the shared socket's calls
 * through a wa_bus_batcher with N on the wire, as the gateway and
 * session-svc do: concurrent calls then share bus.batch messages. One line
 * per figure:
 *
 *   log.append   threads=16  rows/s=...  p50_ms=... p99_ms=... errors=0
 *
 * bench/store_bench.sh starts a store-svc on a temporary database and runs
 * this against it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wa/bus.h"
#include "wa/config.h"

#define MAX_THREADS 256
#define USERS_DEFAULT 100
#define CALL_TIMEOUT_MS 10000
#define LAT_SLOTS 4096 /* latency histogram: 0.1 ms buckets up to 409.6 */
#define LIST_ROWS 50   /* log.list: rows per user, seeded and asked for */

typedef struct bench {
    const char *url;
    nng_socket shared; /* or per thread */
    bool per_thread;
    wa_bus_batcher_t *batcher; /* --batcher: calls on shared go through it */
    int rows;  /* log.append rows per call; 1: the single-row form */
    int users; /* bench-user-1 .. bench-user-<users> */
    int pace;  /* calls per second per thread; 0: back to back */
    wa_op_t op;
    double until; /* monotonic seconds */
    atomic_ullong ok;
    atomic_ullong errors;
    atomic_ullong lat[LAT_SLOTS]; /* answered calls by latency bucket */
} bench_t;

typedef struct client {
    bench_t *b;
    int id;
    nng_socket sock;
} client_t;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static wa_err_t open_req(const char *url, nng_socket *out)
{
    wa_sock_opts_t opts = {0};

    opts.send_timeout_ms = CALL_TIMEOUT_MS;
    opts.recv_timeout_ms = CALL_TIMEOUT_MS;
    return wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, url, &opts, out);
}

/* One log row: a small message-like event, into obj. */
static bool add_row(cJSON *obj, int id)
{
    cJSON *data;

    return cJSON_AddStringToObject(obj, "eventType", "bench.append") &&
           (data = cJSON_AddObjectToObject(obj, "eventData")) != NULL &&
           cJSON_AddStringToObject(data, "chatId", "41791234567@c.us") &&
           cJSON_AddNumberToObject(data, "client", id);
}

/* A log.append's arguments: one row, or {"rows":[...]} of rows rows. */
static cJSON *append_args(int id, int rows)
{
    cJSON *args = cJSON_CreateObject(), *arr, *row;

    if (args == NULL)
        return NULL;
    if (rows == 1) {
        if (add_row(args, id))
            return args;
        goto fail;
    }
    if ((arr = cJSON_AddArrayToObject(args, "rows")) == NULL)
        goto fail;
    for (int i = 0; i < rows; i++) {
        if ((row = cJSON_CreateObject()) == NULL ||
            !cJSON_AddItemToArray(arr, row) || !add_row(row, id))
            goto fail;
    }
    return args;
fail:
    cJSON_Delete(args);
    return NULL;
}

static void *client_main(void *arg)
{
    client_t *cl = arg;
    bench_t *b = cl->b;
    char rid[WA_RID_MAX + 1], user[32];
    cJSON *args = NULL;
    unsigned long n = 0;
    wa_reply_t rep;
    double t0, ms;
    size_t slot;

    if (b->op == WA_OP_LOG_APPEND &&
        (args = append_args(cl->id, b->rows)) == NULL) {
        atomic_fetch_add(&b->errors, 1);
        return NULL;
    }
    if (b->op == WA_OP_LOG_LIST &&
        ((args = cJSON_CreateObject()) == NULL ||
         cJSON_AddNumberToObject(args, "limit", LIST_ROWS) == NULL)) {
        atomic_fetch_add(&b->errors, 1);
        cJSON_Delete(args);
        return NULL;
    }
    double next = now_s();

    while ((t0 = now_s()) < b->until) {
        if (b->pace > 0) {
            if (t0 < next) {
                struct timespec ts = {0, (long)((next - t0) * 1e9)};

                nanosleep(&ts, NULL);
                continue;
            }
            next += 1.0 / b->pace;
            t0 = now_s();
        }
        snprintf(
            user, sizeof(user), "bench-user-%lu",
            ((unsigned long)cl->id * 7919 + n++) % (unsigned long)b->users + 1);
        wa_rid_new(rid, sizeof(rid));
        if ((b->batcher != NULL && b->op == WA_OP_LOG_LIST
                 ? wa_bus_batcher_call_raw(b->batcher, b->op, user, rid, args,
                                           CALL_TIMEOUT_MS, &rep)
             : b->batcher != NULL
                 ? wa_bus_batcher_call(b->batcher, b->op,
                                       b->op == WA_OP_PING ? "" : user, rid,
                                       args, CALL_TIMEOUT_MS, &rep)
                 : wa_bus_call(cl->sock, b->op, b->op == WA_OP_PING ? "" : user,
                               rid, args, CALL_TIMEOUT_MS, &rep)) != WA_OK) {
            atomic_fetch_add(&b->errors, 1);
            continue;
        }
        wa_reply_clear(&rep);
        ms = (now_s() - t0) * 1000.0;
        slot = (size_t)(ms * 10.0);
        atomic_fetch_add(&b->lat[slot < LAT_SLOTS ? slot : LAT_SLOTS - 1], 1);
        atomic_fetch_add(&b->ok, 1);
    }
    cJSON_Delete(args);
    return NULL;
}

/* Latency (ms) below which fraction q of the answered calls fell. */
static double quantile(bench_t *b, unsigned long long total, double q)
{
    unsigned long long seen = 0;

    for (size_t i = 0; i < LAT_SLOTS; i++) {
        seen += atomic_load(&b->lat[i]);
        if ((double)seen >= q * (double)total)
            return (double)(i + 1) / 10.0;
    }
    return (double)LAT_SLOTS / 10.0;
}

/* One figure: threads clients calling op for seconds. */
static int run(bench_t *b, wa_op_t op, int threads, double seconds)
{
    static client_t clients[MAX_THREADS];
    static pthread_t tids[MAX_THREADS];
    unsigned long long ok;
    double start, elapsed, per;
    int started = 0, opened = 0, rv = 0;

    b->op = op;
    atomic_store(&b->ok, 0);
    atomic_store(&b->errors, 0);
    for (size_t i = 0; i < LAT_SLOTS; i++)
        atomic_store(&b->lat[i], 0);
    for (int i = 0; i < threads; i++, opened++) {
        clients[i].b = b;
        clients[i].id = i;
        clients[i].sock = b->shared;
        if (b->per_thread && open_req(b->url, &clients[i].sock) != WA_OK) {
            rv = -1;
            goto out;
        }
    }
    start = now_s();
    b->until = start + seconds;
    for (int i = 0; i < threads; i++, started++) {
        if (pthread_create(&tids[i], NULL, client_main, &clients[i]) != 0) {
            rv = -1;
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    elapsed = now_s() - start;
    ok = atomic_load(&b->ok);
    per = op == WA_OP_LOG_APPEND ? (double)b->rows : 1.0;
    printf("%-12s threads=%-3d %s=%-8.0f p50_ms=%-6.1f p99_ms=%-6.1f "
           "errors=%llu",
           wa_op_name(op), started,
           op == WA_OP_LOG_APPEND ? "rows/s" : "reqs/s",
           (double)ok * per / elapsed, quantile(b, ok, 0.50),
           quantile(b, ok, 0.99), atomic_load(&b->errors));
    if (op == WA_OP_LOG_APPEND)
        printf(" rows_per_call=%d", b->rows);
    printf("\n");
    fflush(stdout);
out:
    for (int i = 0; b->per_thread && i < opened; i++)
        nng_close(clients[i].sock);
    return rv;
}

/* log.list's data: LIST_ROWS rows for each user, one call each. */
static int seed_logs(bench_t *b)
{
    char rid[WA_RID_MAX + 1], user[32];
    cJSON *args = append_args(0, LIST_ROWS);
    wa_reply_t rep;
    wa_err_t rv = args != NULL ? WA_OK : WA_ENOMEM;

    for (int u = 1; u <= b->users && rv == WA_OK; u++) {
        snprintf(user, sizeof(user), "bench-user-%d", u);
        wa_rid_new(rid, sizeof(rid));
        rv = wa_bus_call(b->shared, WA_OP_LOG_APPEND, user, rid, args,
                         CALL_TIMEOUT_MS, &rep);
        wa_reply_clear(&rep);
    }
    cJSON_Delete(args);
    if (rv != WA_OK)
        fprintf(stderr, "store_bench: seeding log rows: %s\n", wa_strerror(rv));
    return rv == WA_OK ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr, "usage: store_bench "
                    "[--only=log.append|session.get|ping|log.list] "
                    "[--socket-per-thread] [--rows=2..256] [--batcher=1..256] "
                    "[--users=1..100000] [--pace=1..100000] [seconds] "
                    "[threads...]\n");
}

int main(int argc, char **argv)
{
    char *url = NULL;
    const wa_config_spec_t specs[] = {
        WA_CFG_URL_SPEC("STORE_URL", &url, "tcp://127.0.0.1:5560"),
    };
    wa_op_t ops[] = {WA_OP_LOG_APPEND, WA_OP_SESSION_GET, WA_OP_PING};
    int counts[MAX_THREADS] = {1, 16, 64}, ncounts = 3, nops = 3;
    bench_t *b = NULL;
    double seconds = 3.0;
    char err[256], rid[WA_RID_MAX + 1];
    wa_reply_t rep;
    wa_err_t rv;
    int status = 0, i = 1, rows = 1, inflight = 0, users = USERS_DEFAULT;
    int pace = 0;

    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strncmp(argv[i], "--only=", 7) == 0 &&
            wa_op_from_name(argv[i] + 7, &ops[0]) == WA_OK &&
            (ops[0] == WA_OP_LOG_APPEND || ops[0] == WA_OP_SESSION_GET ||
             ops[0] == WA_OP_PING || ops[0] == WA_OP_LOG_LIST)) {
            nops = 1;
        } else if (strncmp(argv[i], "--rows=", 7) == 0) {
            rows = atoi(argv[i] + 7);
            if (rows < 2 || rows > 256) {
                usage();
                return 2;
            }
        } else if (strncmp(argv[i], "--batcher=", 10) == 0) {
            inflight = atoi(argv[i] + 10);
            if (inflight < 1 || inflight > 256) {
                usage();
                return 2;
            }
        } else if (strncmp(argv[i], "--users=", 8) == 0) {
            users = atoi(argv[i] + 8);
            if (users < 1 || users > 100000) {
                usage();
                return 2;
            }
        } else if (strncmp(argv[i], "--pace=", 7) == 0) {
            pace = atoi(argv[i] + 7);
            if (pace < 1 || pace > 100000) {
                usage();
                return 2;
            }
        } else if (strcmp(argv[i], "--socket-per-thread") != 0) {
            usage();
            return 2;
        }
    }
    if (i < argc &&
        ((seconds = strtod(argv[i++], NULL)) <= 0 || seconds > 600)) {
        usage();
        return 2;
    }
    if (i < argc)
        ncounts = 0;
    for (; i < argc && ncounts < MAX_THREADS; i++) {
        counts[ncounts] = atoi(argv[i]);
        if (counts[ncounts] < 1 || counts[ncounts] > MAX_THREADS) {
            fprintf(stderr, "store_bench: threads must be 1..%d\n",
                    MAX_THREADS);
            return 2;
        }
        ncounts++;
    }
    if (wa_config_load(specs, 1, err, sizeof(err)) != WA_OK) {
        fprintf(stderr, "store_bench: %s\n", err);
        return 2;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL) {
        status = 1;
        goto out;
    }
    b->url = url;
    b->rows = rows;
    b->users = users;
    b->pace = pace;
    for (int k = 1; k < argc; k++)
        b->per_thread |= strcmp(argv[k], "--socket-per-thread") == 0;
    if ((rv = open_req(url, &b->shared)) != WA_OK) {
        fprintf(stderr, "store_bench: %s: %s\n", url, wa_strerror(rv));
        status = 1;
        goto out;
    }
    wa_rid_new(rid, sizeof(rid));
    if ((rv = wa_bus_call(b->shared, WA_OP_PING, "", rid, NULL, 5000, &rep)) !=
        WA_OK) {
        fprintf(stderr, "store_bench: no store-svc at %s: %s\n", url,
                wa_strerror(rv));
        status = 1;
        goto out;
    }
    wa_reply_clear(&rep);
    if (inflight > 0 && !b->per_thread &&
        (rv = wa_bus_batcher_new(b->shared, inflight, &b->batcher)) != WA_OK) {
        fprintf(stderr, "store_bench: %s\n", wa_strerror(rv));
        status = 1;
        goto out;
    }
    printf("store_bench: %s, %.1f s per figure, %s%s\n", url, seconds,
           b->per_thread ? "one socket per thread" : "one shared socket",
           b->batcher != NULL ? ", through a batcher" : "");
    if (ops[0] == WA_OP_LOG_LIST && seed_logs(b) != 0)
        status = 1;
    for (int o = 0; o < nops && status == 0; o++) {
        for (int k = 0; k < ncounts && status == 0; k++)
            status = run(b, ops[o], counts[k], seconds) ? 1 : 0;
    }
out:
    if (b != NULL)
        wa_bus_batcher_free(b->batcher);
    if (b != NULL && nng_socket_id(b->shared) > 0)
        nng_close(b->shared);
    free(b);
    wa_config_free(specs, 1);
    return status;
}
