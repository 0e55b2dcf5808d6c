/*
 * buspub - publish events on the bus as a session-svc would (PUB dialing
 * EVENTS_URL), for tests and demos:
 *
 *   buspub <url> <user> <type> <data-json> <seq> [count] [interval-ms]
 *
 * Publishes count events (default 1) of type with data, seq, seq+1, ...
 * (seq 0 stays 0: "not recorded"), interval-ms apart (default 0). It waits
 * for the connection to the notifier first, since PUB drops what it sends
 * before a subscriber is attached. Exit status: 0 sent, 3 no subscriber
 * within 5 s or a send failed, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "wa/bus.h"
#include "wa/service.h"

#define CONNECT_TIMEOUT_MS 5000

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* Number of pipes (connected peers) of sock, from nng's statistics. */
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

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    const wa_sock_opts_t opts = {0};
    long seq, count = 1, interval = 0;
    wa_event_type_t type;
    long long deadline;
    nng_socket pub;
    cJSON *data;
    wa_err_t rv;
    int status = 0;

    if (argc < 6 || argc > 8 ||
        wa_event_type_from_name(argv[3], &type) != WA_OK ||
        parse_long(argv[5], 0, 9007199254740991l, &seq) != 0 ||
        (argc > 6 && parse_long(argv[6], 1, 100000000, &count) != 0) ||
        (argc > 7 && parse_long(argv[7], 0, 3600000, &interval) != 0)) {
        fprintf(stderr, "usage: buspub <url> <user> <type> <data-json> <seq> "
                        "[count] [interval-ms]\n");
        return 2;
    }
    if ((data = cJSON_Parse(argv[4])) == NULL || !cJSON_IsObject(data)) {
        fprintf(stderr, "buspub: data is not a JSON object\n");
        cJSON_Delete(data);
        return 2;
    }
    if ((rv = wa_bus_open(WA_SOCK_PUB, WA_SOCK_DIAL, argv[1], &opts, &pub)) !=
        WA_OK) {
        fprintf(stderr, "buspub: %s: %s\n", argv[1], wa_strerror(rv));
        cJSON_Delete(data);
        return 3;
    }
    /* A deep send queue: PUB drops rather than waits when it is full. */
    if ((rv = wa_bus_err(nng_socket_set_int(pub, NNG_OPT_SENDBUF, 8192))) !=
        WA_OK) {
        fprintf(stderr, "buspub: send buffer: %s\n", wa_strerror(rv));
        status = 3;
        goto out;
    }
    deadline = wa_now_ms() + CONNECT_TIMEOUT_MS;
    while (pipes_of(pub) < 1 && wa_now_ms() < deadline)
        sleep_ms(10);
    if (pipes_of(pub) < 1) {
        fprintf(stderr, "buspub: no subscriber at %s\n", argv[1]);
        status = 3;
        goto out;
    }
    sleep_ms(50); /* let the subscriber's side of the pipe settle */

    for (long i = 0; i < count; i++) {
        wa_event_t ev;

        if ((rv = wa_event_init(&ev, argv[2], type)) != WA_OK) {
            fprintf(stderr, "buspub: bad user: %s\n", wa_strerror(rv));
            status = 2;
            goto out;
        }
        cJSON_Delete(ev.data);
        ev.data = cJSON_Duplicate(data, 1);
        ev.seq = seq > 0 ? seq + i : 0;
        rv = ev.data != NULL ? wa_bus_publish(pub, &ev) : WA_ENOMEM;
        wa_event_clear(&ev);
        if (rv != WA_OK) {
            fprintf(stderr, "buspub: publish: %s\n", wa_strerror(rv));
            status = 3;
            goto out;
        }
        if (interval > 0 && i + 1 < count)
            sleep_ms(interval);
    }
    sleep_ms(200); /* nng_close does not linger: let the queue drain */
out:
    nng_close(pub);
    cJSON_Delete(data);
    return status;
}
