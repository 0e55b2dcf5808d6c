/*
 * nt_pump_test.c - notifier-svc's pump over a real SUB socket: it accepts
 * both PUB forms (pub.h), relays every event of a batch larger than its own
 * array without dropping any, in order, and counts malformed records and
 * messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifier.h"
#include "wa/pub.h"

#define URL "inproc://nt_pump_test"
#define N_BATCH 600 /* more than NT_PUMP_BATCH */

static void make_event(wa_event_t *ev, const char *user, int64_t seq)
{
    assert_int_equal(wa_event_init(ev, user, WA_EV_STATUS), WA_OK);
    ev->seq = seq;
}

static void send_raw(nng_socket pub, const void *buf, size_t len)
{
    assert_int_equal(nng_send(pub, (void *)buf, len, 0), 0);
}

static void send_single(nng_socket pub, const char *user, int64_t seq)
{
    wa_event_t ev;

    make_event(&ev, user, seq);
    assert_int_equal(wa_bus_publish(pub, &ev), WA_OK);
    wa_event_clear(&ev);
}

static void test_pump_both_forms(void **state)
{
    const nt_hub_opts_t ho = {.replay = 2 * N_BATCH,
                              .replay_bytes = 1 << 26,
                              .users_max = 16,
                              .max_conn = 10,
                              .max_conn_per_user = 10};
    nt_metrics_t m = {0};
    nt_writers_t *w = NULL;
    nt_hub_t *hub = NULL;
    nt_pump_t *pump = NULL;
    nng_socket sub, pub;
    wa_event_t *evs;
    int64_t seqs[2 * N_BATCH];
    uint64_t base;
    size_t n, len, most = 0;
    char *buf, *bad;
    (void)state;

    assert_int_equal(nt_writers_new(1, &m, &w), WA_OK);
    assert_int_equal(nt_hub_new(&ho, &m, &hub), WA_OK);
    assert_int_equal(wa_bus_open(WA_SOCK_SUB, WA_SOCK_LISTEN, URL, NULL, &sub),
                     WA_OK);
    assert_int_equal(wa_bus_subscribe(sub, NULL), WA_OK);
    assert_int_equal(nng_socket_set_int(sub, NNG_OPT_RECVBUF, 8192), 0);
    assert_int_equal(wa_bus_open(WA_SOCK_PUB, WA_SOCK_DIAL, URL, NULL, &pub),
                     WA_OK);
    assert_int_equal(nt_pump_new(sub, 20, hub, w, &m, &pump), WA_OK);

    /* Connected once a "sync" event comes through. */
    for (int i = 0; i < 500 && nt_metrics_get(&m.events_in) == 0; i++) {
        send_single(pub, "sync", i + 1);
        (void)nt_pump_run_once(pump);
    }
    assert_true(nt_metrics_get(&m.events_in) > 0);
    while (nt_pump_run_once(pump) > 0)
        ;
    base = nt_metrics_get(&m.events_in);

    /* u: 1 single, 2..601 in one batch, 602..603 in a batch with a bad
     * record between them, a batch refused whole, 604 single. */
    send_single(pub, "u", 1);
    assert_non_null(evs = calloc(N_BATCH, sizeof(*evs)));
    for (int i = 0; i < N_BATCH; i++)
        make_event(&evs[i], "u", 2 + i);
    assert_int_equal(wa_pub_batch_encode(evs, N_BATCH, &buf, &len), WA_OK);
    send_raw(pub, buf, len);
    free(buf);
    evs[0].seq = 602;
    evs[1].seq = 603;
    assert_int_equal(wa_pub_batch_encode(evs, 2, &buf, &len), WA_OK);
    assert_non_null(bad = malloc(len + 16));
    memcpy(bad, buf, len);
    memcpy(bad + len, "\nu\n{\"v\":1}", 10);
    send_raw(pub, bad, len + 10);
    free(bad);
    free(buf);
    send_raw(pub, "\n", 1);
    send_single(pub, "u", 604);
    for (int i = 0; i < N_BATCH; i++)
        wa_event_clear(&evs[i]);
    free(evs);

    for (int i = 0; i < 1000 && nt_metrics_get(&m.events_in) - base < 604;
         i++) {
        n = nt_pump_run_once(pump);
        assert_true(n <= NT_PUMP_BATCH);
        if (n > most)
            most = n;
    }
    assert_int_equal(nt_metrics_get(&m.events_in) - base, 604);
    /* The big batch was relayed in several turns of the pump. */
    assert_true(most > 1);
    assert_int_equal(nt_metrics_get(&m.events_malformed), 2);
    assert_int_equal(nt_metrics_get(&m.events_gap), 0);
    assert_int_equal(nt_hub_ring_seqs(hub, "u", seqs, 2 * N_BATCH), 604);
    for (int i = 0; i < 604; i++)
        assert_int_equal(seqs[i], i + 1);

    nt_pump_free(pump);
    nng_close(pub);
    nng_close(sub);
    nt_hub_free(hub);
    nt_writers_free(w);
}

/* A held batch is released with the pump, not leaked. */
static void test_pump_free_with_held_batch(void **state)
{
    const nt_hub_opts_t ho = {.replay = 16,
                              .replay_bytes = 1 << 20,
                              .users_max = 16,
                              .max_conn = 10,
                              .max_conn_per_user = 10};
    nt_metrics_t m = {0};
    nt_writers_t *w = NULL;
    nt_hub_t *hub = NULL;
    nt_pump_t *pump = NULL;
    nng_socket sub, pub;
    wa_event_t *evs;
    size_t len;
    char *buf;
    (void)state;

    assert_int_equal(nt_writers_new(1, &m, &w), WA_OK);
    assert_int_equal(nt_hub_new(&ho, &m, &hub), WA_OK);
    assert_int_equal(
        wa_bus_open(WA_SOCK_SUB, WA_SOCK_LISTEN, URL "2", NULL, &sub), WA_OK);
    assert_int_equal(wa_bus_subscribe(sub, NULL), WA_OK);
    assert_int_equal(
        wa_bus_open(WA_SOCK_PUB, WA_SOCK_DIAL, URL "2", NULL, &pub), WA_OK);
    assert_int_equal(nt_pump_new(sub, 20, hub, w, &m, &pump), WA_OK);
    assert_non_null(evs = calloc(N_BATCH, sizeof(*evs)));
    for (int i = 0; i < N_BATCH; i++)
        make_event(&evs[i], "v", 1 + i);
    assert_int_equal(wa_pub_batch_encode(evs, N_BATCH, &buf, &len), WA_OK);
    for (int i = 0; i < N_BATCH; i++)
        wa_event_clear(&evs[i]);
    free(evs);
    /* Until the pump has taken part of one batch. */
    for (int i = 0; i < 500 && nt_metrics_get(&m.events_in) == 0; i++) {
        send_raw(pub, buf, len);
        (void)nt_pump_run_once(pump);
    }
    free(buf);
    assert_true(nt_metrics_get(&m.events_in) > 0);
    nt_pump_free(pump);
    nng_close(pub);
    nng_close(sub);
    nt_hub_free(hub);
    nt_writers_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pump_both_forms),
        cmocka_unit_test(test_pump_free_with_held_batch),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
