/*
 * notifier_bench - fan-out throughput and latency of a running notifier-svc.
 *
 *   notifier_bench <ws-port> <events-url> <jwt-secret> <notifier-pid>
 *                  <users> <subs-per-user> <events-per-s> <seconds>
 *                  [stalled [publishers [readers]]]
 *
 * Opens users x subs-per-user WebSocket clients (one process, raw sockets,
 * `readers` epoll threads, default 2), plus `stalled` extra clients of the
 * first user that
 * never read. Those connect first and are sent ~5 MB of 16 KB events
 * (before the others connect, so only they get them): their socket buffers
 * fill and the notifier's writes to them block, as a stalled browser's
 * would, for the whole timed phase. Measures the notifier's RSS before and
 * after the idle clients connect (memory per connection), then publishes events
 * from `publishers` threads (default 2), each with its own PUB socket dialing
 * events-url and its own wa_publisher_t on it (as several session-svc
 * instances do: the production path, which sends the backlog that builds
 * up while it sends as one batch message) and its own share of the
 * users (user u belongs to publisher u % publishers), round-robin over them,
 * at events-per-s in all for seconds. Each event carries its publish time
 * (CLOCK_MONOTONIC, ns) in data.t. Reports the rate actually offered (a
 * publisher that falls behind says so), delivered frames/s and the share of
 * the expected frames that arrived, and publish-to-receive latency
 * p50/p99/p99.9 over every frame of the healthy clients.
 *
 * The client must not be the bottleneck it measures: readers stop reading a
 * socket at the first short read (an edge-triggered epoll reports data
 * arriving later), so a frame costs one read(), not two.
 *
 *   notifier_bench --bus <users> <events-per-s> <seconds> [publishers]
 *
 * The ceiling of the bus itself on this machine: the same publishers into a
 * SUB socket in this process that only receives and decodes both forms
 * (what the notifier's pump does before its own work), with no notifier and
 * no WebSocket. Reports events offered, received (the rest were dropped by
 * the SUB queue or the publishers' queues) in how many messages, and the
 * CPU that took.
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
#include "wa/pub.h"
#include "wa/service.h"

#define BUF_SIZE 65536
#define HIST_US 10000000 /* latency histogram: 1 us buckets up to 10 s */

typedef struct client {
    int fd;
    unsigned char buf[BUF_SIZE];
    size_t len;
} client_t;

/* One epoll thread and its own histogram (merged at the end). */
typedef struct reader {
    pthread_t thread;
    int ep;
    uint32_t *hist; /* hist[us]++, this reader only */
    uint64_t over;  /* latencies over HIST_US */
} reader_t;

/* One publisher thread: its PUB socket and its users' seqs. */
typedef struct publisher {
    pthread_t thread;
    nng_socket pub;
    wa_publisher_t *wp; /* on pub */
    long index, count;  /* users u with u % count == index */
    long users, rate;   /* all users; events/s of this publisher */
    int64_t start, end;
    int64_t *seqs; /* per user, shared array: disjoint users */
    uint64_t published, failed;
    int64_t finished;
} publisher_t;

static client_t *clients;
static size_t nclients;
static uint64_t frames;
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
static void consume(reader_t *r, client_t *c)
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
                    r->over++;
                else
                    r->hist[us]++;
                __atomic_add_fetch(&frames, 1, __ATOMIC_RELAXED);
            }
        }
        off += hl + n;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    struct epoll_event evs[256];

    while (!stop_reader) {
        int n = epoll_wait(r->ep, evs, 256, 100);

        for (int i = 0; i < n; i++) {
            client_t *c = evs[i].data.ptr;

            for (;;) {
                size_t room = BUF_SIZE - c->len;
                ssize_t got = read(c->fd, c->buf + c->len, room);

                if (got <= 0)
                    break;
                c->len += (size_t)got;
                consume(r, c);
                if ((size_t)got < room)
                    break; /* drained: new data raises a new edge */
            }
        }
    }
    return NULL;
}

static void sleep_ns(long ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000,
                          .tv_nsec = ns % 1000000000};
    nanosleep(&ts, NULL);
}

/* Publish this thread's share: each millisecond, catch up to where it
 * should be. */
static void *publisher_main(void *arg)
{
    publisher_t *p = arg;
    long mine = (p->users - p->index + p->count - 1) / p->count;
    char user[32];

    for (;;) {
        int64_t now = now_ns();
        uint64_t due;

        if (now >= p->end)
            break;
        due = (uint64_t)((double)(now - p->start) / 1e9 * (double)p->rate);
        while (p->published < due) {
            long u =
                p->index + (long)(p->published % (uint64_t)mine) * p->count;
            wa_event_t ev;

            snprintf(user, sizeof(user), "bench%ld", u);
            if (wa_event_init(&ev, user, WA_EV_MESSAGE) != WA_OK) {
                p->failed++;
                break;
            }
            ev.seq = ++p->seqs[u];
            if (cJSON_AddNumberToObject(ev.data, "t", (double)now_ns()) ==
                    NULL ||
                wa_publisher_publish(p->wp, &ev) != WA_OK)
                p->failed++;
            wa_event_clear(&ev);
            p->published++;
        }
        sleep_ns(1000 * 1000);
    }
    p->finished = now_ns();
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

static int64_t percentile(const uint32_t *hist, double q, uint64_t total)
{
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;

    for (int64_t us = 0; us < HIST_US; us++) {
        seen += hist[us];
        if (seen > want)
            return us;
    }
    return HIST_US;
}

/* Open a PUB socket dialing url, wait until it is connected, and start a
 * publisher on it. */
static int open_pub(const char *url, publisher_t *p)
{
    const wa_sock_opts_t popts = {0};
    nng_socket pub;

    if (wa_bus_open(WA_SOCK_PUB, WA_SOCK_DIAL, url, &popts, &pub) != WA_OK)
        return -1;
    if (nng_socket_set_int(pub, NNG_OPT_SENDBUF, 8192) != 0) {
        nng_close(pub);
        return -1;
    }
    while (pipes_of(pub) < 1)
        sleep_ns(10 * 1000 * 1000);
    if (wa_publisher_new(pub, NULL, &p->wp) != WA_OK) {
        nng_close(pub);
        return -1;
    }
    p->pub = pub;
    return 0;
}

/* Wait until a publisher has sent what it queued; add its send failures
 * to p->failed (its queue drops are there already) and its drops to
 * *dropped. */
static void drain_pub(publisher_t *p, uint64_t *dropped)
{
    wa_publisher_stats_t st;

    wa_publisher_flush(p->wp);
    wa_publisher_stats(p->wp, &st);
    p->failed += st.failed;
    *dropped += st.dropped;
}

/* Stop a publisher (flushing it) and close its socket. */
static void close_pub(publisher_t *p)
{
    wa_publisher_free(p->wp);
    nng_close(p->pub);
}

/* Fill the stalled clients' socket buffers: 5 MB of 16 KB events to user
 * bench0, before any healthy client of it connects. */
static int stall(wa_publisher_t *pub, int port, const char *secret,
                 long stalled, int64_t *seq0)
{
    static char pad[16001];
    char jwt[512];

    make_jwt(secret, "bench0", jwt, sizeof(jwt));
    for (long k = 0; k < stalled; k++)
        if (ws_open(port, jwt, 4096) < 0) /* never read */
            return -1;
    memset(pad, 'x', sizeof(pad) - 1);
    for (int i = 0; i < 320; i++) { /* 5 MB: more than the buffers */
        wa_event_t ev;

        if (wa_event_init(&ev, "bench0", WA_EV_MESSAGE) != WA_OK)
            return -1;
        ev.seq = ++*seq0;
        if (cJSON_AddStringToObject(ev.data, "p", pad) == NULL) {
            wa_event_clear(&ev);
            return -1;
        }
        (void)wa_publisher_publish(pub, &ev);
        wa_event_clear(&ev);
        if (i % 32 == 31)
            sleep_ns(5 * 1000 * 1000);
    }
    wa_publisher_flush(pub);
    sleep(1);
    return 0;
}

/* The bus alone: publishers -> SUB (receive + decode) in this process. */
static int bus_only(int argc, char **argv)
{
    const wa_sock_opts_t sopts = {.recv_timeout_ms = 100};
    long users, rate, secs, npub = 2;
    char url[96], ipc[64];
    nng_socket sub;
    nng_aio *aio;
    publisher_t *pubs;
    int64_t *seqs, start, end, last = 0;
    uint64_t published = 0, received = 0, bad = 0, msgs = 0, dropped = 0;
    double cpu0, cpu1;

    if (argc < 5 || argc > 6)
        return 2;
    users = atol(argv[2]);
    rate = atol(argv[3]);
    secs = atol(argv[4]);
    if (argc > 5)
        npub = atol(argv[5]);
    if (users < 1 || rate < 1 || secs < 1 || npub < 1 || npub > 64)
        return 2;
    if (npub > users)
        npub = users;
    /* wa_bus_open wants a fixed address: an ipc:// path of ours, then a
     * tcp:// listener on an ephemeral port (read back), which is the one
     * the publishers dial, as session-svc dials the notifier. */
    snprintf(ipc, sizeof(ipc), "/tmp/notifier_bench_bus_%ld", (long)getpid());
    snprintf(url, sizeof(url), "ipc://%s", ipc);
    if (wa_bus_open(WA_SOCK_SUB, WA_SOCK_LISTEN, url, &sopts, &sub) != WA_OK ||
        wa_bus_subscribe(sub, NULL) != WA_OK ||
        nng_socket_set_int(sub, NNG_OPT_RECVBUF, 8192) != 0 ||
        nng_aio_alloc(&aio, NULL, NULL) != 0)
        return 1;
    {
        nng_listener l;
        nng_sockaddr sa;

        snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
        if (nng_listen(sub, url, &l, 0) != 0 ||
            nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa) != 0)
            return 1;
        snprintf(url, sizeof(url), "tcp://127.0.0.1:%u",
                 (unsigned)ntohs(sa.s_in.sa_port));
    }
    seqs = calloc((size_t)users, sizeof(*seqs));
    pubs = calloc((size_t)npub, sizeof(*pubs));
    if (seqs == NULL || pubs == NULL)
        return 1;
    for (long i = 0; i < npub; i++) {
        if (open_pub(url, &pubs[i]) != 0)
            return 1;
        pubs[i].index = i;
        pubs[i].count = npub;
        pubs[i].users = users;
        pubs[i].seqs = seqs;
        pubs[i].rate = rate / npub + (i < rate % npub ? 1 : 0);
    }
    sleep_ns(100 * 1000 * 1000);
    cpu0 = cpu_s((long)getpid());
    start = now_ns();
    for (long i = 0; i < npub; i++) {
        pubs[i].start = start;
        pubs[i].end = start + (int64_t)secs * 1000000000;
        if (pthread_create(&pubs[i].thread, NULL, publisher_main, &pubs[i]) !=
            0)
            return 1;
    }
    /* Receive until the publishers are done and nothing came for 500 ms. */
    end = start + (int64_t)secs * 1000000000;
    for (;;) {
        wa_event_t ev;
        wa_pub_split_t split;

        nng_recv_aio(sub, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) == 0) {
            nng_msg *m = nng_aio_get_msg(aio);

            msgs++;
            if (wa_pub_split_begin(&split, nng_msg_body(m), nng_msg_len(m)) ==
                WA_OK) {
                while (wa_pub_split_next(&split, &ev) == WA_OK) {
                    received++;
                    wa_event_clear(&ev);
                }
                bad += split.bad;
            } else {
                bad++;
            }
            nng_msg_free(m);
            last = now_ns();
        } else if (now_ns() > end && now_ns() - last > 500000000) {
            break;
        }
    }
    cpu1 = cpu_s((long)getpid());
    for (long i = 0; i < npub; i++) {
        pthread_join(pubs[i].thread, NULL);
        published += pubs[i].published;
        drain_pub(&pubs[i], &dropped);
        close_pub(&pubs[i]);
    }
    printf("bus only (%ld publishers -> 1 SUB, tcp, receive + decode): "
           "offered %" PRIu64 " events in %ld s (%.0f/s of %ld/s asked), "
           "received %" PRIu64 " (%.2f%%) in %" PRIu64
           " messages, malformed %" PRIu64 ", publisher queue drops %" PRIu64
           "; cpu %.2f s in all, %.1f us per offered event, %ld CPUs\n",
           npub, published, secs, (double)published / (double)secs, rate,
           received, 100.0 * (double)received / (double)published, msgs, bad,
           dropped, cpu1 - cpu0, (cpu1 - cpu0) * 1e6 / (double)published,
           sysconf(_SC_NPROCESSORS_ONLN));
    nng_aio_free(aio);
    nng_close(sub);
    unlink(ipc);
    free(pubs);
    free(seqs);
    return 0;
}

int main(int argc, char **argv)
{
    long port, pid, users, per, rate, secs, stalled = 0, npub = 2, nrd = 2;
    long rss0, rss1;
    publisher_t *pubs;
    reader_t *rds;
    int64_t *seqs, t0, t_end, pub_start;
    uint64_t published = 0, failed = 0, dropped = 0, expect, got, over = 0;
    uint32_t *hist;
    struct rlimit rl;
    double cpu0, cpu1, self0, self1, wall, offered;
    char jwt[512], user[32];

    if (argc > 1 && strcmp(argv[1], "--bus") == 0) {
        int rv = bus_only(argc, argv);

        if (rv == 2)
            fprintf(stderr, "usage: notifier_bench --bus <users> "
                            "<events-per-s> <seconds> [publishers]\n");
        return rv;
    }
    if (argc < 9 || argc > 12) {
        fprintf(stderr, "usage: notifier_bench <ws-port> <events-url> <secret> "
                        "<pid> <users> <subs-per-user> <events-per-s> "
                        "<seconds> [stalled [publishers [readers]]]\n");
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
    if (argc > 10)
        npub = atol(argv[10]);
    if (argc > 11)
        nrd = atol(argv[11]);
    if (users < 1 || per < 1 || rate < 1 || secs < 1 || stalled < 0 ||
        npub < 1 || npub > 64 || nrd < 1 || nrd > 64) {
        fprintf(stderr, "notifier_bench: bad numbers\n");
        return 2;
    }
    if (npub > users)
        npub = users; /* a user's events come from one publisher */
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    nclients = (size_t)(users * per);
    clients = calloc(nclients, sizeof(*clients));
    seqs = calloc((size_t)users, sizeof(*seqs));
    pubs = calloc((size_t)npub, sizeof(*pubs));
    rds = calloc((size_t)nrd, sizeof(*rds));
    hist = calloc(HIST_US, sizeof(*hist));
    if (clients == NULL || seqs == NULL || pubs == NULL || rds == NULL ||
        hist == NULL)
        return 1;
    for (long i = 0; i < nrd; i++)
        if ((rds[i].ep = epoll_create1(0)) < 0 ||
            (rds[i].hist = calloc(HIST_US, sizeof(*rds[i].hist))) == NULL)
            return 1;
    for (long i = 0; i < npub; i++) {
        if (open_pub(argv[2], &pubs[i]) != 0) {
            fprintf(stderr, "notifier_bench: cannot publish on %s\n", argv[2]);
            return 1;
        }
        pubs[i].index = i;
        pubs[i].count = npub;
        pubs[i].users = users;
        pubs[i].seqs = seqs;
        /* Spread the rate so that the sum is exactly rate. */
        pubs[i].rate = rate / npub + (i < rate % npub ? 1 : 0);
    }
    sleep_ns(100 * 1000 * 1000);
    if (stalled > 0 &&
        stall(pubs[0].wp, (int)port, argv[3], stalled, &seqs[0]) != 0) {
        fprintf(stderr, "notifier_bench: stalled clients failed\n");
        return 1;
    }

    rss0 = rss_kib(pid);
    t0 = now_ns();
    for (long u = 0; u < users; u++) {
        snprintf(user, sizeof(user), "bench%ld", u);
        make_jwt(argv[3], user, jwt, sizeof(jwt));
        for (long k = 0; k < per; k++) {
            size_t i = (size_t)(u * per + k);
            client_t *c = &clients[i];
            struct epoll_event ev = {.events = EPOLLIN | EPOLLET,
                                     .data.ptr = c};

            if ((c->fd = ws_open((int)port, jwt, 0)) < 0) {
                fprintf(stderr, "notifier_bench: connect %zu failed\n", i);
                return 1;
            }
            if (epoll_ctl(rds[i % (size_t)nrd].ep, EPOLL_CTL_ADD, c->fd, &ev) !=
                0)
                return 1;
        }
    }
    sleep_ns(500 * 1000 * 1000); /* let writer threads settle */
    rss1 = rss_kib(pid);
    printf("connected %zu clients (+%ld stalled) in %.2f s; notifier RSS "
           "%ld -> %ld KiB: %.1f KiB per idle connection\n",
           nclients, stalled, (double)(now_ns() - t0) / 1e9, rss0, rss1,
           (double)(rss1 - rss0) / (double)nclients);

    for (long i = 0; i < nrd; i++)
        if (pthread_create(&rds[i].thread, NULL, reader_main, &rds[i]) != 0)
            return 1;

    cpu0 = cpu_s(pid);
    self0 = cpu_s((long)getpid());
    pub_start = now_ns();
    for (long i = 0; i < npub; i++) {
        pubs[i].start = pub_start;
        pubs[i].end = pub_start + (int64_t)secs * 1000000000;
        if (pthread_create(&pubs[i].thread, NULL, publisher_main, &pubs[i]) !=
            0)
            return 1;
    }
    t_end = pub_start;
    for (long i = 0; i < npub; i++) {
        pthread_join(pubs[i].thread, NULL);
        drain_pub(&pubs[i], &dropped);
        published += pubs[i].published;
        failed += pubs[i].failed;
        if (pubs[i].finished > t_end)
            t_end = pubs[i].finished;
    }

    /* Wait for the tail to arrive (at most 5 s). */
    expect = published * (uint64_t)per;
    while (__atomic_load_n(&frames, __ATOMIC_RELAXED) < expect &&
           now_ns() - t_end < 5000000000ll)
        sleep_ns(10 * 1000 * 1000);
    cpu1 = cpu_s(pid);
    self1 = cpu_s((long)getpid());
    stop_reader = 1;
    for (long i = 0; i < nrd; i++) {
        pthread_join(rds[i].thread, NULL);
        for (size_t us = 0; us < HIST_US; us++)
            hist[us] += rds[i].hist[us];
        over += rds[i].over;
    }
    got = frames;

    wall = (double)(t_end - pub_start) / 1e9;
    offered = (double)published / wall;
    printf("published %" PRIu64 " events in %.2f s (%.0f/s of %ld/s asked, "
           "%ld publishers%s) to %ld users x %ld sockets: %" PRIu64
           " of %" PRIu64 " frames delivered (%.2f%%), %.0f frames/s\n",
           published, wall, offered, rate, npub,
           offered < 0.98 * (double)rate ? ", PUBLISHERS FELL BEHIND" : "",
           users, per, got, expect, 100.0 * (double)got / (double)expect,
           (double)got / wall);
    if (failed > 0)
        printf("publish failures: %" PRIu64 " (publisher queue full: %" PRIu64
               ")\n",
               failed, dropped);
    printf("latency publish->receive: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f "
           "ms, over 10 s: %" PRIu64 "\n",
           (double)percentile(hist, 0.50, got - over) / 1000.0,
           (double)percentile(hist, 0.99, got - over) / 1000.0,
           (double)percentile(hist, 0.999, got - over) / 1000.0, over);

    printf("cpu: notifier %.2f s (%.1f us per frame), bench %.2f s, in "
           "%.2f s wall on %ld CPUs\n",
           cpu1 - cpu0, got > 0 ? (cpu1 - cpu0) * 1e6 / (double)got : 0.0,
           self1 - self0, (double)(now_ns() - pub_start) / 1e9,
           sysconf(_SC_NPROCESSORS_ONLN));
    for (long i = 0; i < npub; i++)
        close_pub(&pubs[i]);
    for (size_t i = 0; i < nclients; i++)
        close(clients[i].fd);
    for (long i = 0; i < nrd; i++) {
        close(rds[i].ep);
        free(rds[i].hist);
    }
    free(clients);
    free(seqs);
    free(pubs);
    free(rds);
    free(hist);
    return 0;
}
