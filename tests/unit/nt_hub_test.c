/*
 * nt_hub_test.c - notifier-svc's hub: events reach only their user's
 * connections; ?since= replays exactly what was missed, with a resync
 * first when the ring no longer reaches back; ring bounds (count, bytes,
 * order, duplicates); the LRU bound on users; connection limits; and no
 * gap or repeat when an attach races the fan-out.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "nt_capture.h"

static nt_writers_t *pool;

typedef struct sub {
    nt_sub_t s;
    capture_t cap;
} sub_t;

static nt_hub_t *hub_new(size_t replay, size_t replay_bytes, size_t users,
                         nt_metrics_t *m)
{
    const nt_hub_opts_t o = {.replay = replay,
                             .replay_bytes = replay_bytes,
                             .users_max = users,
                             .max_conn = 100,
                             .max_conn_per_user = 10};
    nt_hub_t *hub = NULL;

    assert_int_equal(nt_hub_new(&o, m, &hub), WA_OK);
    return hub;
}

/* Reserve, start a capturing writer, attach with since. */
static void sub_open(nt_hub_t *hub, sub_t *s, const char *user, int64_t since,
                     nt_replay_t *info)
{
    const nt_outq_opts_t qo = {
        .writers = pool, .max_frames = 100000, .max_bytes = 1 << 26};

    memset(s, 0, sizeof(*s));
    capture_init(&s->cap);
    snprintf(s->s.user, sizeof(s->s.user), "%s", user);
    assert_int_equal(nt_hub_reserve(hub, &s->s), WA_OK);
    assert_non_null(s->s.q = nt_outq_new(&qo));
    assert_int_equal(nt_outq_start(s->s.q, capture_sink, &s->cap), WA_OK);
    assert_int_equal(nt_hub_attach(hub, &s->s, since, info), WA_OK);
}

/* Detach, flush the writer, and collect (type, seq) of every text frame. */
static size_t sub_close(nt_hub_t *hub, sub_t *s, char types[][16],
                        int64_t *seqs, size_t max)
{
    frame_t fr = {0};
    size_t off = 0, n = 0;

    nt_hub_release(hub, &s->s);
    nt_outq_close(s->s.q, NT_CLOSE_NORMAL, "", false);
    assert_true(capture_wait_close(&s->cap)); /* all written, then close */
    nt_outq_stop(s->s.q);
    while (capture_next(&s->cap, &off, &fr)) {
        cJSON *j, *t, *q;

        if (fr.opcode != MG_WEBSOCKET_OPCODE_TEXT)
            continue;
        assert_non_null(
            j = cJSON_ParseWithLength((const char *)fr.payload, fr.len));
        t = cJSON_GetObjectItem(j, "type");
        q = cJSON_GetObjectItem(j, "seq");
        /* Exactly the four fields of DESIGN §5. */
        assert_int_equal(cJSON_GetArraySize(j), 4);
        assert_non_null(cJSON_GetObjectItem(j, "data"));
        assert_non_null(cJSON_GetObjectItem(j, "timestamp"));
        if (n < max) {
            snprintf(types[n], 16, "%s", t->valuestring);
            seqs[n] = (int64_t)q->valuedouble;
        }
        n++;
        cJSON_Delete(j);
    }
    nt_outq_free(s->s.q);
    capture_fini(&s->cap);
    return n;
}

static void publish(nt_hub_t *hub, const char *user, wa_event_type_t type,
                    int64_t seq)
{
    wa_event_t ev;

    assert_int_equal(wa_event_init(&ev, user, type), WA_OK);
    ev.seq = seq;
    cJSON_AddNumberToObject(ev.data, "n", (double)seq);
    assert_int_equal(nt_hub_publish(hub, &ev), WA_OK);
    wa_event_clear(&ev);
}

static void test_routing(void **state)
{
    nt_metrics_t m = {0};
    nt_hub_t *hub = hub_new(16, 1 << 20, 100, &m);
    sub_t a1, a2, b, ab;
    char types[8][16];
    int64_t seqs[8];

    (void)state;
    sub_open(hub, &a1, "abc", -1, NULL);
    sub_open(hub, &a2, "abc", -1, NULL);
    sub_open(hub, &b, "bob", -1, NULL);
    sub_open(hub, &ab, "ab", -1, NULL);
    publish(hub, "abc", WA_EV_STATUS, 1);
    publish(hub, "abc", WA_EV_QR, 2);
    publish(hub, "bob", WA_EV_READY, 1);
    publish(hub, "nobody", WA_EV_MESSAGE, 1);

    assert_int_equal(sub_close(hub, &a1, types, seqs, 8), 2);
    assert_string_equal(types[0], "status");
    assert_string_equal(types[1], "qr");
    assert_int_equal(seqs[1], 2);
    assert_int_equal(sub_close(hub, &a2, types, seqs, 8), 2);
    assert_int_equal(sub_close(hub, &b, types, seqs, 8), 1);
    assert_string_equal(types[0], "ready");
    assert_int_equal(sub_close(hub, &ab, types, seqs, 8), 0);
    assert_int_equal(nt_metrics_get(&m.frames_queued), 5);
    nt_hub_free(hub);
}

static void test_replay_since(void **state)
{
    nt_metrics_t m = {0};
    nt_hub_t *hub = hub_new(16, 1 << 20, 100, &m);
    nt_replay_t info;
    char types[16][16];
    int64_t seqs[16];
    sub_t s;

    (void)state;
    for (int i = 1; i <= 5; i++)
        publish(hub, "u1", WA_EV_STATUS, i);
    sub_open(hub, &s, "u1", 2, &info);
    assert_false(info.resync);
    assert_int_equal(info.frames, 3);
    publish(hub, "u1", WA_EV_MESSAGE, 6);
    assert_int_equal(sub_close(hub, &s, types, seqs, 16), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(seqs[i], 3 + i);
    assert_string_equal(types[3], "message");

    /* since = newest: nothing to replay; since = 0: everything. */
    sub_open(hub, &s, "u1", 6, &info);
    assert_int_equal(info.frames, 0);
    assert_int_equal(sub_close(hub, &s, types, seqs, 16), 0);
    sub_open(hub, &s, "u1", 0, &info);
    assert_int_equal(info.frames, 6);
    assert_false(info.resync);
    assert_int_equal(sub_close(hub, &s, types, seqs, 16), 6);
    /* No since: live only. */
    sub_open(hub, &s, "u1", -1, &info);
    assert_int_equal(info.frames, 0);
    assert_int_equal(sub_close(hub, &s, types, seqs, 16), 0);
    assert_int_equal(nt_metrics_get(&m.replays), 3);
    assert_int_equal(nt_metrics_get(&m.replayed_frames), 9);
    nt_hub_free(hub);
}

static void test_resync(void **state)
{
    nt_metrics_t m = {0};
    nt_hub_t *hub = hub_new(4, 1 << 20, 100, &m);
    nt_replay_t info;
    char types[16][16];
    int64_t seqs[16];
    sub_t s;

    (void)state;
    for (int i = 1; i <= 10; i++)
        publish(hub, "u1", WA_EV_STATUS, i);
    sub_open(hub, &s, "u1", 3, &info);
    assert_true(info.resync);
    assert_int_equal(info.oldest, 7);
    assert_int_equal(info.frames, 4);
    assert_int_equal(sub_close(hub, &s, types, seqs, 16), 5);
    assert_string_equal(types[0], "resync");
    assert_int_equal(seqs[0], 6); /* oldest - 1: the sequence goes on */
    for (int i = 1; i < 5; i++) {
        assert_string_equal(types[i], "status");
        assert_int_equal(seqs[i], 6 + i);
    }
    /* since = oldest - 1 is no gap. */
    sub_open(hub, &s, "u1", 6, &info);
    assert_false(info.resync);
    assert_int_equal(sub_close(hub, &s, types, seqs, 16), 4);
    assert_int_equal(nt_metrics_get(&m.resyncs), 1);
    nt_hub_free(hub);
}

static void test_resync_payload(void **state)
{
    nt_hub_t *hub = hub_new(2, 1 << 20, 100, NULL);
    sub_t s;
    frame_t fr = {0};
    size_t off = 0;
    cJSON *j, *d;

    (void)state;
    for (int i = 1; i <= 5; i++)
        publish(hub, "u1", WA_EV_STATUS, i);
    sub_open(hub, &s, "u1", 1, NULL);
    nt_hub_release(hub, &s.s);
    nt_outq_close(s.s.q, NT_CLOSE_NORMAL, "", false);
    assert_true(capture_wait_close(&s.cap));
    nt_outq_stop(s.s.q);
    assert_true(capture_next(&s.cap, &off, &fr));
    assert_non_null(
        j = cJSON_ParseWithLength((const char *)fr.payload, fr.len));
    assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "resync");
    d = cJSON_GetObjectItem(j, "data");
    assert_int_equal(cJSON_GetObjectItem(d, "since")->valuedouble, 1);
    assert_int_equal(cJSON_GetObjectItem(d, "oldest")->valuedouble, 4);
    cJSON_Delete(j);
    nt_outq_free(s.s.q);
    capture_fini(&s.cap);
    nt_hub_free(hub);
}

static void test_ring_bounds(void **state)
{
    nt_metrics_t m = {0};
    nt_hub_t *hub = hub_new(8, 1 << 20, 100, &m);
    int64_t seqs[64];
    size_t n;

    (void)state;
    for (int i = 1; i <= 100; i++)
        publish(hub, "u1", WA_EV_STATUS, i);
    n = nt_hub_ring_seqs(hub, "u1", seqs, 64);
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(seqs[i], 93 + (int64_t)i);

    /* Duplicates are dropped; a late seq is put in order. */
    publish(hub, "u1", WA_EV_STATUS, 99);
    assert_int_equal(nt_metrics_get(&m.events_duplicate), 1);
    publish(hub, "u2", WA_EV_STATUS, 1);
    publish(hub, "u2", WA_EV_STATUS, 3);
    publish(hub, "u2", WA_EV_STATUS, 2);
    publish(hub, "u2", WA_EV_STATUS, 2);
    n = nt_hub_ring_seqs(hub, "u2", seqs, 64);
    assert_int_equal(n, 3);
    assert_int_equal(seqs[0], 1);
    assert_int_equal(seqs[1], 2);
    assert_int_equal(seqs[2], 3);
    assert_int_equal(nt_metrics_get(&m.events_duplicate), 2);
    /* seq 0 (not recorded) is relayed but never buffered. */
    publish(hub, "u3", WA_EV_ERROR, 0);
    assert_int_equal(nt_hub_ring_seqs(hub, "u3", seqs, 64), 0);
    nt_hub_free(hub);

    /* The byte bound: each frame here is ~90 bytes; 300 keep 3. */
    hub = hub_new(100, 300, 100, NULL);
    for (int i = 1; i <= 20; i++)
        publish(hub, "u1", WA_EV_STATUS, i);
    n = nt_hub_ring_seqs(hub, "u1", seqs, 64);
    assert_true(n >= 2 && n <= 4);
    assert_int_equal(seqs[n - 1], 20);
    nt_gauges_t g;
    nt_hub_gauges(hub, &g);
    assert_true(g.ring_bytes <= 300);
    nt_hub_free(hub);
}

static void test_lru(void **state)
{
    nt_metrics_t m = {0};
    nt_hub_t *hub = hub_new(4, 1 << 20, 2, &m);
    int64_t seqs[4];
    char types[4][16];
    nt_gauges_t g;
    sub_t s;

    (void)state;
    /* A user with a connection is never evicted. */
    sub_open(hub, &s, "held", -1, NULL);
    publish(hub, "held", WA_EV_STATUS, 1);
    publish(hub, "a", WA_EV_STATUS, 1);
    publish(hub, "b", WA_EV_STATUS, 1);
    publish(hub, "a", WA_EV_STATUS, 2); /* a is now more recent than b */
    publish(hub, "c", WA_EV_STATUS, 1); /* evicts b */
    assert_int_equal(nt_hub_ring_seqs(hub, "b", seqs, 4), 0);
    assert_int_equal(nt_hub_ring_seqs(hub, "a", seqs, 4), 2);
    assert_int_equal(nt_hub_ring_seqs(hub, "c", seqs, 4), 1);
    assert_int_equal(nt_hub_ring_seqs(hub, "held", seqs, 4), 1);
    assert_int_equal(nt_metrics_get(&m.evicted_users), 1);
    nt_hub_gauges(hub, &g);
    assert_int_equal(g.users, 3);
    /* Once "held" disconnects it joins the LRU and the oldest (a) goes. */
    assert_int_equal(sub_close(hub, &s, types, seqs, 4), 1);
    assert_int_equal(nt_hub_ring_seqs(hub, "a", seqs, 4), 0);
    assert_int_equal(nt_hub_ring_seqs(hub, "held", seqs, 4), 1);
    nt_hub_gauges(hub, &g);
    assert_int_equal(g.users, 2);
    nt_hub_free(hub);
}

static void test_limits(void **state)
{
    const nt_hub_opts_t o = {.replay = 4,
                             .replay_bytes = 4096,
                             .users_max = 10,
                             .max_conn = 3,
                             .max_conn_per_user = 2};
    nt_sub_t s[5];
    nt_hub_t *hub = NULL;
    nt_gauges_t g;

    (void)state;
    assert_int_equal(nt_hub_new(&o, NULL, &hub), WA_OK);
    memset(s, 0, sizeof(s));
    for (int i = 0; i < 5; i++)
        snprintf(s[i].user, sizeof(s[i].user), "%s", i < 3 ? "u1" : "u2");
    assert_int_equal(nt_hub_reserve(hub, &s[0]), WA_OK);
    assert_int_equal(nt_hub_reserve(hub, &s[1]), WA_OK);
    assert_int_equal(nt_hub_reserve(hub, &s[2]), WA_ERATELIMIT);
    assert_int_equal(nt_hub_reserve(hub, &s[3]), WA_OK);
    assert_int_equal(nt_hub_reserve(hub, &s[4]), WA_EFULL);
    assert_int_equal(nt_hub_reserve(hub, &s[0]), WA_EINVAL);
    nt_hub_gauges(hub, &g);
    assert_int_equal(g.connections, 3);
    nt_hub_release(hub, &s[0]);
    nt_hub_release(hub, &s[0]); /* idempotent */
    assert_int_equal(nt_hub_reserve(hub, &s[4]), WA_OK);
    nt_hub_release(hub, &s[1]);
    nt_hub_release(hub, &s[3]);
    nt_hub_release(hub, &s[4]);
    nt_hub_gauges(hub, &g);
    assert_int_equal(g.connections, 0);
    assert_int_equal(g.users, 0); /* no ring, no connection: forgotten */
    nt_hub_free(hub);

    assert_int_equal(nt_hub_new(&(nt_hub_opts_t){.replay = 0}, NULL, &hub),
                     WA_EINVAL);
}

/* A publisher runs while a client attaches with since = 0: what it gets,
 * replay then live, is exactly 1..N, no gap and no repeat. */
#define RACE_N 3000

static void *race_publisher(void *arg)
{
    nt_hub_t *hub = arg;

    for (int i = 1; i <= RACE_N; i++)
        publish(hub, "u1", WA_EV_MESSAGE, i);
    return NULL;
}

static void test_attach_race(void **state)
{
    static char types[RACE_N + 8][16];
    static int64_t seqs[RACE_N + 8];

    (void)state;
    for (int round = 0; round < 20; round++) {
        nt_hub_t *hub = hub_new(RACE_N, 1 << 26, 10, NULL);
        pthread_t t;
        sub_t s;
        size_t n;

        assert_int_equal(pthread_create(&t, NULL, race_publisher, hub), 0);
        for (volatile int spin = 0; spin < round * 20000; spin++)
            ;
        sub_open(hub, &s, "u1", 0, NULL);
        pthread_join(t, NULL);
        n = sub_close(hub, &s, types, seqs, RACE_N + 8);
        assert_int_equal(n, RACE_N);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(seqs[i], (int64_t)i + 1);
        nt_hub_free(hub);
    }
}

/* A batch relays in order per user, drops a duplicate, counts a gap, and
 * reports each event's result. */
static void test_publish_many(void **state)
{
    nt_metrics_t m = {0};
    nt_hub_t *hub = hub_new(16, 1 << 20, 100, &m);
    const char *users[] = {"u1", "u2", "u1", "u2", "u1", "u1", "u2"};
    const int64_t evseq[] = {1, 1, 2, 2, 2, 5, 3};
    wa_event_t evs[7];
    wa_err_t rv[7];
    char types[8][16];
    int64_t seqs[8];
    sub_t a, b;

    (void)state;
    sub_open(hub, &a, "u1", -1, NULL);
    sub_open(hub, &b, "u2", -1, NULL);
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(wa_event_init(&evs[i], users[i], WA_EV_STATUS), WA_OK);
        evs[i].seq = evseq[i];
    }
    nt_hub_publish_many(hub, evs, 7, rv);
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(rv[i], WA_OK);
        wa_event_clear(&evs[i]);
    }
    /* u1: 1, 2, (2 again: dropped), 5 (3 and 4 never came). */
    assert_int_equal(sub_close(hub, &a, types, seqs, 8), 3);
    assert_int_equal(seqs[0], 1);
    assert_int_equal(seqs[1], 2);
    assert_int_equal(seqs[2], 5);
    assert_int_equal(sub_close(hub, &b, types, seqs, 8), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(seqs[i], i + 1);
    assert_int_equal(nt_metrics_get(&m.events_duplicate), 1);
    assert_int_equal(nt_metrics_get(&m.events_gap), 2);
    assert_int_equal(nt_metrics_get(&m.frames_queued), 6);
    nt_hub_free(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing),
        cmocka_unit_test(test_publish_many),
        cmocka_unit_test(test_replay_since),
        cmocka_unit_test(test_resync),
        cmocka_unit_test(test_resync_payload),
        cmocka_unit_test(test_ring_bounds),
        cmocka_unit_test(test_lru),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_attach_race),
    };

    int rv;

    if (nt_writers_new(2, NULL, &pool) != WA_OK)
        return 1;
    rv = cmocka_run_group_tests(tests, NULL, NULL);
    nt_writers_free(pool);
    return rv;
}
