/*
 * notifier_bench - fan-out throughput and latency of a running notifier-svc.
 *
 *   notifier_bench <ws-port> <events-url> <jwt-secret> <notifier-pid>
 *                  <users> <subs-per-user> <events-per-s> <seconds>
 *                  [stalled]
 *
 * Opens users x subs-per-user WebSocket clients (one process, raw sockets,
 * one epoll thread), plus `stalled` extra clients of the first user that
 * never read. Those connect first and are sent ~5 MB of 16 KB events
 * (before the others connect, so only they get them): their socket buffers
 * fill and the notifier's writes to them block, as a stalled browser's
 * would, for the whole timed phase. Measures the notifier's RSS before and
 * after the idle clients connect (memory per connection), then publishes events
 * on a PUB socket dialing events-url, round-robin over the users at
 * events-per-s for seconds, each carrying its publish time (CLOCK_MONOTONIC,
 * ns) in data.t. Reports delivered frames/s and publish-to-receive latency
 * p50/p99/max over every frame of the healthy clients.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wa/bus.h"
#include "wa/service.h"

#define BUF_SIZE 65536
#define HIST_US 10000000 /* latency histogram: 1 us buckets up to 10 s */

typedef struct client {
    int fd;
    unsigned char buf[BUF_SIZE];
    size_t len;
} client_t;

static client_t *clients;
static size_t nclients;
static uint32_t *hist; /* hist[us]++, written by the reader thread only */
static uint64_t frames, over;
static volatile int stop_reader;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v =
            (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = t[(v >> 6) & 63];
        out[o++] = t[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = t[v >> 18];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = t[(v >> 6) & 63];
    }
    out[o] = '\0';
}

/* An HS256 JWT for user, valid for an hour. */
static void make_jwt(const char *secret, const char *user, char *out,
                     size_t outlen)
{
    char head[64], body[256], claims[200], sig[64], signing[400];
    unsigned char mac[32];
    unsigned int maclen = 0;
    const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":%ld}", user,
             (long)time(NULL) + 3600);
    b64url((const unsigned char *)h, strlen(h), head);
    b64url((const unsigned char *)claims, strlen(claims), body);
    snprintf(signing, sizeof(signing), "%s.%s", head, body);
    HMAC(EVP_sha256(), secret, (int)strlen(secret),
         (const unsigned char *)signing, strlen(signing), mac, &maclen);
    b64url(mac, maclen, sig);
    snprintf(out, outlen, "%s.%s", signing, sig);
}

/* CPU seconds (user + system) a process has used. */
static double cpu_s(long pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the ")" of the command: state is 3rd, utime 14th. */
    if ((p = strrchr(buf, ')')) == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Blocking connect + upgrade; returns the fd (non-blocking after) or -1. */
static int ws_open(int port, const char *jwt, int rcvbuf)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[1024], resp[4096];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        goto fail;
    snprintf(req, sizeof(req),
             "GET /?token=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             jwt, port);
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
        goto fail;
    /* Read the response byte by byte up to the blank line, so no frame
     * byte is swallowed. */
    while (got + 1 < sizeof(resp)) {
        if (read(fd, resp + got, 1) != 1)
            goto fail;
        got++;
        if (got >= 4 && memcmp(resp + got - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    resp[got] = '\0';
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "upgrade refused: %.40s\n", resp);
        goto fail;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
fail:
    close(fd);
    return -1;
}

static void send_pong(int fd, const unsigned char *payload, size_t n)
{
    unsigned char f[2 + 4 + 125];

    if (n > 125)
        return;
    f[0] = 0x8A;
    f[1] = (unsigned char)(0x80 | n);
    memset(f + 2, 0, 4); /* a zero mask is a valid mask */
    memcpy(f + 6, payload, n);
    (void)!write(fd, f, 6 + n);
}

/* Parse every complete frame in c->buf. */
static void consume(client_t *c)
{
    size_t off = 0;

    for (;;) {
        unsigned char *b = c->buf + off;
        size_t left = c->len - off, hl = 2, n;

        if (left < 2)
            break;
        n = b[1] & 0x7f;
        if (n == 126) {
            if (left < 4)
                break;
            n = (size_t)b[2] << 8 | b[3];
            hl = 4;
        } else if (n == 127) {
            if (left < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | b[2 + i];
            hl = 10;
        }
        if (left < hl + n)
            break;
        if ((b[0] & 0x0f) == 0x9) {
            send_pong(c->fd, b + hl, n);
        } else if ((b[0] & 0x0f) == 0x1) {
            /* {"type":..,"data":{"t":<ns>},...}: the payload is not
             * NUL-terminated, so scan within it. */
            const char *p = memmem(b + hl, n, "\"t\":", 4);
            if (p != NULL) {
                int64_t t = strtoll(p + 4, NULL, 10);
                int64_t us = (now_ns() - t) / 1000;

                if (us < 0)
                    us = 0;
                if (us >= HIST_US)
                    over++;
                else
                    hist[us]++;
                __atomic_add_fetch(&frames, 1, __ATOMIC_RELAXED);
            }
        }
        off += hl + n;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

static void *reader(void *arg)
{
    int ep = *(int *)arg;
    struct epoll_event evs[256];

    while (!stop_reader) {
        int n = epoll_wait(ep, evs, 256, 100);

        for (int i = 0; i < n; i++) {
            client_t *c = evs[i].data.ptr;

            for (;;) {
                ssize_t r = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);

                if (r <= 0)
                    break;
                c->len += (size_t)r;
                consume(c);
            }
        }
    }
    return NULL;
}

static long pipes_of(nng_socket sock)
{
    nng_stat *all, *s, *p;
    long n = 0;

    if (nng_stats_get(&all) != 0)
        return -1;
    if ((s = nng_stat_find_socket(all, sock)) != NULL &&
        (p = nng_stat_find(s, "pipes")) != NULL)
        n = (long)nng_stat_value(p);
    nng_stats_free(all);
    return n;
}

static int64_t percentile(double q, uint64_t total)
{
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;

    for (int64_t us = 0; us < HIST_US; us++) {
        seen += hist[us];
        if (seen > want)
            return us;
    }
    return HIST_US;
}

int main(int argc, char **argv)
{
    const wa_sock_opts_t popts = {0};
    long port, pid, users, per, rate, secs, stalled = 0, rss0, rss1;
    int ep, rv;
    pthread_t rt;
    nng_socket pub;
    int64_t *seqs, t0, t_end, pub_start, pub_end;
    uint64_t published = 0, expect, got;
    struct rlimit rl;
    double cpu0, cpu1, self0, self1;
    char jwt[512], user[32];

    if (argc < 9 || argc > 10) {
        fprintf(stderr, "usage: notifier_bench <ws-port> <events-url> <secret> "
                        "<pid> <users> <subs-per-user> <events-per-s> "
                        "<seconds> [stalled]\n");
        return 2;
    }
    port = atol(argv[1]);
    pid = atol(argv[4]);
    users = atol(argv[5]);
    per = atol(argv[6]);
    rate = atol(argv[7]);
    secs = atol(argv[8]);
    if (argc > 9)
        stalled = atol(argv[9]);
    if (users < 1 || per < 1 || rate < 1 || secs < 1) {
        fprintf(stderr, "notifier_bench: bad numbers\n");
        return 2;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    nclients = (size_t)(users * per);
    clients = calloc(nclients, sizeof(*clients));
    hist = calloc(HIST_US, sizeof(*hist));
    seqs = calloc((size_t)users, sizeof(*seqs));
    if (clients == NULL || hist == NULL || seqs == NULL)
        return 1;
    if ((ep = epoll_create1(0)) < 0)
        return 1;

    if (wa_bus_open(WA_SOCK_PUB, WA_SOCK_DIAL, argv[2], &popts, &pub) != WA_OK)
        return 1;
    nng_socket_set_int(pub, NNG_OPT_SENDBUF, 8192);
    while (pipes_of(pub) < 1) {
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    {
        struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (stalled > 0) {
        static char pad[16001];

        make_jwt(argv[3], "bench0", jwt, sizeof(jwt));
        for (long k = 0; k < stalled; k++)
            if (ws_open((int)port, jwt, 4096) < 0) /* never read */
                return 1;
        memset(pad, 'x', sizeof(pad) - 1);
        for (int i = 0; i < 320; i++) { /* 5 MB: more than the buffers */
            wa_event_t ev;

            if (wa_event_init(&ev, "bench0", WA_EV_MESSAGE) != WA_OK)
                return 1;
            ev.seq = ++seqs[0];
            cJSON_AddStringToObject(ev.data, "p", pad);
            (void)wa_bus_publish(pub, &ev);
            wa_event_clear(&ev);
            if (i % 32 == 31) {
                struct timespec ts = {.tv_nsec = 5 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        sleep(1);
    }

    rss0 = rss_kib(pid);
    t0 = now_ns();
    for (long u = 0; u < users; u++) {
        snprintf(user, sizeof(user), "bench%ld", u);
        make_jwt(argv[3], user, jwt, sizeof(jwt));
        for (long k = 0; k < per; k++) {
            client_t *c = &clients[u * per + k];
            struct epoll_event ev = {.events = EPOLLIN | EPOLLET,
                                     .data.ptr = c};

            if ((c->fd = ws_open((int)port, jwt, 0)) < 0) {
                fprintf(stderr, "notifier_bench: connect %zu failed\n",
                        (size_t)(u * per + k));
                return 1;
            }
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        }
    }
    {
        struct timespec ts = {.tv_nsec = 500 * 1000 * 1000};
        nanosleep(&ts, NULL); /* let writer threads settle */
    }
    rss1 = rss_kib(pid);
    printf("connected %zu clients (+%ld stalled) in %.2f s; notifier RSS "
           "%ld -> %ld KiB: %.1f KiB per idle connection\n",
           nclients, stalled, (double)(now_ns() - t0) / 1e9, rss0, rss1,
           (double)(rss1 - rss0) / (double)nclients);

    if ((rv = pthread_create(&rt, NULL, reader, &ep)) != 0)
        return 1;

    /* Publish at `rate`: each millisecond, catch up to where we should be. */
    cpu0 = cpu_s(pid);
    self0 = cpu_s((long)getpid());
    pub_start = now_ns();
    pub_end = pub_start + (int64_t)secs * 1000000000;
    for (;;) {
        int64_t now = now_ns();
        uint64_t due;

        if (now >= pub_end)
            break;
        due = (uint64_t)((double)(now - pub_start) / 1e9 * (double)rate);
        while (published < due) {
            wa_event_t ev;
            long u = (long)(published % (uint64_t)users);

            snprintf(user, sizeof(user), "bench%ld", u);
            if (wa_event_init(&ev, user, WA_EV_MESSAGE) != WA_OK)
                return 1;
            ev.seq = ++seqs[u];
            cJSON_AddNumberToObject(ev.data, "t", (double)now_ns());
            if (wa_bus_publish(pub, &ev) != WA_OK)
                fprintf(stderr, "publish failed\n");
            wa_event_clear(&ev);
            published++;
        }
        struct timespec ts = {.tv_nsec = 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    t_end = now_ns();

    /* Wait for the tail to arrive (at most 5 s). */
    expect = published * (uint64_t)per;
    while (__atomic_load_n(&frames, __ATOMIC_RELAXED) < expect &&
           now_ns() - t_end < 5000000000ll) {
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cpu1 = cpu_s(pid);
    self1 = cpu_s((long)getpid());
    stop_reader = 1;
    pthread_join(rt, NULL);
    got = frames;

    printf("published %" PRIu64 " events in %.2f s (%.0f/s) to %ld users x "
           "%ld sockets: %" PRIu64 " of %" PRIu64 " frames delivered "
           "(%.2f%%), %.0f frames/s\n",
           published, (double)(t_end - pub_start) / 1e9,
           (double)published / ((double)(t_end - pub_start) / 1e9), users, per,
           got, expect, 100.0 * (double)got / (double)expect,
           (double)got / ((double)(t_end - pub_start) / 1e9));
    printf("latency publish->receive: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f "
           "ms, over 10 s: %" PRIu64 "\n",
           (double)percentile(0.50, got - over) / 1000.0,
           (double)percentile(0.99, got - over) / 1000.0,
           (double)percentile(0.999, got - over) / 1000.0, over);

    printf("cpu: notifier %.2f s (%.1f us per frame), bench %.2f s, in "
           "%.2f s wall on %ld CPUs\n",
           cpu1 - cpu0, got > 0 ? (cpu1 - cpu0) * 1e6 / (double)got : 0.0,
           self1 - self0, (double)(now_ns() - pub_start) / 1e9,
           sysconf(_SC_NPROCESSORS_ONLN));
    nng_close(pub);
    for (size_t i = 0; i < nclients; i++)
        close(clients[i].fd);
    free(clients);
    free(hist);
    free(seqs);
    return 0;
}
