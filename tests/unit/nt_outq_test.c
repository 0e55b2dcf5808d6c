/*
 * nt_outq_test.c - notifier-svc's frames, per-connection queues and writer
 * pool: frame encoding, the count and byte bounds, overflow closing with
 * 1008, batching and the close frame, a failing sink, and a stalled client
 * that never delays another one (the pool replaces the stuck worker).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <time.h>

#include "nt_capture.h"
#include "wa/service.h"

static nt_writers_t *pool;

static nt_frame_t *text(const char *s, int64_t seq)
{
    nt_frame_t *f = NULL;

    assert_int_equal(nt_frame_new_text(s, strlen(s), seq, &f), WA_OK);
    return f;
}

static void test_frame_headers(void **state)
{
    static char big[70000];
    const size_t sizes[] = {0, 125, 126, 65535, 65536, sizeof(big)};

    (void)state;
    memset(big, 'x', sizeof(big));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        nt_frame_t *f = NULL;
        capture_t c = {0};
        frame_t fr = {0};
        size_t off = 0;

        assert_int_equal(nt_frame_new_text(big, sizes[i], 7, &f), WA_OK);
        assert_int_equal(f->seq, 7);
        assert_int_equal(f->len - f->payload_off, sizes[i]);
        c.buf = f->data;
        c.len = f->len;
        assert_true(capture_next(&c, &off, &fr));
        assert_int_equal(fr.opcode, MG_WEBSOCKET_OPCODE_TEXT);
        assert_int_equal(fr.len, sizes[i]);
        assert_int_equal(off, f->len);
        nt_frame_unref(f);
    }
}

static void test_close_frame(void **state)
{
    unsigned char buf[4 + NT_CLOSE_REASON_MAX];
    char reason[200];
    size_t n;

    (void)state;
    n = nt_close_frame(1008, "slow", buf, sizeof(buf));
    assert_int_equal(n, 8);
    assert_int_equal(buf[0], 0x88);
    assert_int_equal(buf[1], 6);
    assert_int_equal((buf[2] << 8) | buf[3], 1008);
    assert_memory_equal(buf + 4, "slow", 4);

    /* A long reason is cut on a UTF-8 boundary within 123 bytes. */
    memset(reason, 0, sizeof(reason));
    for (size_t i = 0; i + 2 < sizeof(reason) - 1; i += 2)
        memcpy(reason + i, "\xc3\xa9", 2);
    n = nt_close_frame(1001, reason, buf, sizeof(buf));
    assert_true(n <= 4 + NT_CLOSE_REASON_MAX);
    assert_int_equal((n - 4) % 2, 0);
    assert_int_equal(nt_close_frame(1000, "abc", buf, 5), 0);
}

static void test_count_bound(void **state)
{
    const nt_outq_opts_t o = {
        .writers = pool, .max_frames = 3, .max_bytes = 1 << 20};
    nt_outq_t *q = nt_outq_new(&o);
    nt_frame_t *f = text("{}", 1);

    (void)state;
    assert_non_null(q);
    for (int i = 0; i < 3; i++)
        assert_int_equal(nt_outq_push(q, f), WA_OK);
    assert_int_equal(nt_outq_frames(q), 3);
    assert_int_equal(nt_outq_bytes(q), 3 * f->len);
    assert_false(nt_outq_closing(q));
    /* The fourth overflows: everything is dropped, the queue closes. */
    assert_int_equal(nt_outq_push(q, f), WA_EFULL);
    assert_true(nt_outq_closing(q));
    assert_int_equal(nt_outq_frames(q), 0);
    assert_int_equal(nt_outq_bytes(q), 0);
    assert_int_equal(nt_outq_push(q, f), WA_ECLOSED);
    assert_int_equal(f->refs, 1); /* the queue let go of its references */
    nt_frame_unref(f);
    nt_outq_free(q);
}

static void test_byte_bound(void **state)
{
    const nt_outq_opts_t o = {
        .writers = pool, .max_frames = 100, .max_bytes = 100};
    char big[300];
    nt_outq_t *q = nt_outq_new(&o);
    nt_frame_t *small, *huge;

    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    small = text("0123456789012345678901234567890123456789", 1); /* 42 B */
    huge = text(big, 2);
    /* One frame always fits an empty queue, whatever its size. */
    assert_int_equal(nt_outq_push(q, huge), WA_OK);
    nt_outq_free(q);

    q = nt_outq_new(&o);
    assert_int_equal(nt_outq_push(q, small), WA_OK);
    assert_int_equal(nt_outq_push(q, small), WA_OK);
    assert_int_equal(nt_outq_push(q, small), WA_EFULL); /* 126 > 100 */
    assert_true(nt_outq_closing(q));
    nt_outq_free(q);
    nt_frame_unref(small);
    nt_frame_unref(huge);
}

/* Every frame in order, batched, then the close frame. */
static void test_writer_order_and_close(void **state)
{
    nt_metrics_t m = {0};
    nt_writers_t *w = NULL;
    nt_outq_opts_t o = {.max_frames = 1000, .max_bytes = 1 << 20};
    nt_outq_t *q;
    capture_t c;
    frame_t fr = {0};
    size_t off = 0;
    int i;

    (void)state;
    assert_int_equal(nt_writers_new(1, &m, &w), WA_OK);
    o.writers = w;
    q = nt_outq_new(&o);
    capture_init(&c);
    /* Pile frames up before the writer may start: they must coalesce. */
    for (i = 0; i < 500; i++) {
        char s[32];
        nt_frame_t *f;

        snprintf(s, sizeof(s), "{\"n\":%d}", i);
        f = text(s, i + 1);
        assert_int_equal(nt_outq_push(q, f), WA_OK);
        nt_frame_unref(f);
    }
    nt_outq_close(q, NT_CLOSE_GOING_AWAY, "bye", false);
    assert_int_equal(nt_outq_start(q, capture_sink, &c), WA_OK);
    assert_true(capture_wait_close(&c));
    nt_outq_stop(q);

    for (i = 0; i < 500; i++) {
        char s[32];

        snprintf(s, sizeof(s), "{\"n\":%d}", i);
        assert_true(capture_next(&c, &off, &fr));
        assert_int_equal(fr.opcode, MG_WEBSOCKET_OPCODE_TEXT);
        assert_int_equal(fr.len, strlen(s));
        assert_memory_equal(fr.payload, s, fr.len);
    }
    assert_true(capture_next(&c, &off, &fr));
    assert_int_equal(fr.opcode, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE);
    assert_int_equal((fr.payload[0] << 8) | fr.payload[1], 1001);
    assert_memory_equal(fr.payload + 2, "bye", 3);
    assert_int_equal(off, c.len);
    assert_true(c.writes < 100); /* 500 frames in far fewer writes */
    assert_int_equal(nt_metrics_get(&m.frames_out), 500);
    nt_outq_free(q);
    capture_fini(&c);
    nt_writers_free(w);
}

static void test_close_discard(void **state)
{
    const nt_outq_opts_t o = {
        .writers = pool, .max_frames = 10, .max_bytes = 1 << 20};
    nt_outq_t *q = nt_outq_new(&o);
    nt_frame_t *f = text("{}", 1);
    capture_t c;
    frame_t fr = {0};
    size_t off = 0;

    (void)state;
    capture_init(&c);
    assert_int_equal(nt_outq_push(q, f), WA_OK);
    assert_int_equal(nt_outq_push(q, f), WA_OK);
    nt_outq_close(q, NT_CLOSE_TOO_BIG, "message too big", true);
    nt_outq_close(q, NT_CLOSE_NORMAL, "second request loses", true);
    assert_int_equal(nt_outq_frames(q), 0);
    assert_int_equal(nt_outq_start(q, capture_sink, &c), WA_OK);
    nt_outq_stop(q); /* writes the close frame itself if no worker did */
    assert_true(capture_next(&c, &off, &fr));
    assert_int_equal(fr.opcode, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE);
    assert_int_equal((fr.payload[0] << 8) | fr.payload[1], 1009);
    assert_false(capture_next(&c, &off, &fr));
    nt_frame_unref(f);
    nt_outq_free(q);
    capture_fini(&c);
}

/*
 * One worker, two clients: one stops reading (its sink blocks). The other
 * still gets its frames at once, because the monitor replaces the stuck
 * worker; the stalled one overflows without the pusher ever waiting, and
 * is closed with 1008 once its write returns. The stuck worker retires.
 */
static void test_stalled_client_delays_nobody(void **state)
{
    nt_metrics_t m = {0};
    nt_writers_t *w = NULL;
    nt_outq_opts_t o = {.max_frames = 16, .max_bytes = 1 << 20};
    nt_outq_t *slow, *fast;
    nt_frame_t *f = text("{\"x\":1}", 1);
    capture_t cs, cf;
    frame_t fr = {0};
    size_t off = 0, got = 0;
    long long t0;
    wa_err_t rv = WA_OK;
    int i;

    (void)state;
    assert_int_equal(nt_writers_new(1, &m, &w), WA_OK);
    o.writers = w;
    slow = nt_outq_new(&o);
    fast = nt_outq_new(&o);
    capture_init(&cs);
    capture_init(&cf);
    capture_block(&cs, true);
    assert_int_equal(nt_outq_start(slow, capture_sink, &cs), WA_OK);
    assert_int_equal(nt_outq_start(fast, capture_sink, &cf), WA_OK);
    assert_int_equal(nt_outq_push(slow, f), WA_OK); /* the worker blocks */
    while (nt_outq_frames(slow) != 0)
        ;
    t0 = wa_now_ms();
    for (i = 0; i < 10; i++)
        assert_int_equal(nt_outq_push(fast, f), WA_OK);
    while (got < 10 && wa_now_ms() - t0 < 2000) {
        struct timespec ts = {.tv_nsec = 1000000};

        nanosleep(&ts, NULL);
        pthread_mutex_lock(&cf.mu);
        got = cf.len / f->len;
        pthread_mutex_unlock(&cf.mu);
    }
    assert_int_equal(got, 10);
    /* Within the stall threshold plus a monitor tick or two. */
    assert_true(wa_now_ms() - t0 < 5 * NT_WRITER_STALL_MS);
    assert_int_equal(nt_writers_threads(w), 2);

    t0 = wa_now_ms();
    for (i = 0; i < 1000 && rv == WA_OK; i++)
        rv = nt_outq_push(slow, f);
    assert_int_equal(rv, WA_EFULL);
    assert_true(wa_now_ms() - t0 < 500);
    assert_true(nt_outq_closing(slow));

    capture_block(&cs, false);
    assert_true(capture_wait_close(&cs));
    while (capture_next(&cs, &off, &fr) &&
           fr.opcode == MG_WEBSOCKET_OPCODE_TEXT)
        ;
    assert_int_equal(fr.opcode, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE);
    assert_int_equal((fr.payload[0] << 8) | fr.payload[1], 1008);
    t0 = wa_now_ms();
    while (nt_writers_threads(w) != 1 && wa_now_ms() - t0 < 2000)
        ;
    assert_int_equal(nt_writers_threads(w), 1);
    nt_outq_free(slow);
    nt_outq_free(fast);
    nt_frame_unref(f);
    capture_fini(&cs);
    capture_fini(&cf);
    nt_writers_free(w);
}

/* While deferred, sleeping workers are not woken; ending it wakes them. */
static void test_defer(void **state)
{
    nt_writers_t *w = NULL;
    nt_outq_opts_t o = {.max_frames = 16, .max_bytes = 1 << 20};
    nt_outq_t *q;
    nt_frame_t *f = text("{}", 1);
    capture_t c;
    struct timespec ts = {.tv_nsec = 100 * 1000 * 1000};

    (void)state;
    assert_int_equal(nt_writers_new(1, NULL, &w), WA_OK);
    o.writers = w;
    q = nt_outq_new(&o);
    capture_init(&c);
    assert_int_equal(nt_outq_start(q, capture_sink, &c), WA_OK);
    nanosleep(&ts, NULL); /* the worker is asleep now */
    nt_writers_defer(w, true);
    assert_int_equal(nt_outq_push(q, f), WA_OK);
    assert_int_equal(nt_outq_push(q, f), WA_OK);
    nanosleep(&ts, NULL);
    assert_int_equal(nt_outq_frames(q), 2); /* nobody woke */
    nt_writers_defer(w, false);
    nt_outq_close(q, NT_CLOSE_NORMAL, "", false);
    assert_true(capture_wait_close(&c));
    assert_int_equal(c.writes, 2); /* one coalesced write, then close */
    nt_outq_free(q);
    nt_frame_unref(f);
    capture_fini(&c);
    nt_writers_free(w);
}

/* While deferred, a queue holding a full write's worth wakes a worker all
 * the same: a burst is never held back until it overflows. */
static void test_defer_full_write(void **state)
{
    static char blob[6000];
    nt_writers_t *w = NULL;
    nt_outq_opts_t o = {.max_frames = 64, .max_bytes = 1 << 20};
    nt_outq_t *q;
    nt_frame_t *f;
    capture_t c;
    long long deadline;

    (void)state;
    memset(blob, 'x', sizeof(blob) - 1);
    f = text(blob, 1);
    assert_int_equal(nt_writers_new(1, NULL, &w), WA_OK);
    o.writers = w;
    q = nt_outq_new(&o);
    capture_init(&c);
    assert_int_equal(nt_outq_start(q, capture_sink, &c), WA_OK);
    nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    nt_writers_defer(w, true);  /* the worker is asleep now */
    for (int i = 0; i < 4; i++) /* 24 KB: more than one write */
        assert_int_equal(nt_outq_push(q, f), WA_OK);
    deadline = wa_now_ms() + 5000;
    while (nt_outq_frames(q) > 0 && wa_now_ms() < deadline) {
        struct timespec ts = {.tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(nt_outq_frames(q), 0); /* written, still deferred */
    nt_writers_defer(w, false);
    nt_outq_close(q, NT_CLOSE_NORMAL, "", false);
    assert_true(capture_wait_close(&c));
    nt_outq_free(q);
    nt_frame_unref(f);
    capture_fini(&c);
    nt_writers_free(w);
}

/* Frames pushed one by one, as a live stream is, arrive complete and in
 * order whatever the write coalescing makes of them. */
static void test_coalesced_stream_order(void **state)
{
    nt_writers_t *w = NULL;
    nt_outq_opts_t o = {.max_frames = 1000, .max_bytes = 1 << 20};
    nt_outq_t *q;
    capture_t c;
    frame_t fr = {0};
    size_t off = 0;
    int n = 0;

    (void)state;
    assert_int_equal(nt_writers_new(2, NULL, &w), WA_OK);
    o.writers = w;
    q = nt_outq_new(&o);
    capture_init(&c);
    assert_int_equal(nt_outq_start(q, capture_sink, &c), WA_OK);
    for (int i = 0; i < 300; i++) {
        char s[32];
        nt_frame_t *f;

        snprintf(s, sizeof(s), "{\"n\":%d}", i);
        f = text(s, i + 1);
        assert_int_equal(nt_outq_push(q, f), WA_OK);
        nt_frame_unref(f);
        if (i % 50 == 49) {
            struct timespec ts = {.tv_nsec = 5 * 1000 * 1000};
            nanosleep(&ts, NULL); /* let some go out on their own */
        }
    }
    nt_outq_close(q, NT_CLOSE_NORMAL, "", false);
    assert_true(capture_wait_close(&c));
    nt_outq_stop(q);
    while (capture_next(&c, &off, &fr)) {
        char want[32];

        if (fr.opcode != MG_WEBSOCKET_OPCODE_TEXT)
            continue;
        snprintf(want, sizeof(want), "{\"n\":%d}", n++);
        assert_int_equal(fr.len, strlen(want));
        assert_memory_equal(fr.payload, want, fr.len);
    }
    assert_int_equal(n, 300);
    nt_outq_free(q);
    capture_fini(&c);
    nt_writers_free(w);
}

/* A sink that records when each write began. */
typedef struct timed {
    pthread_mutex_t mu;
    long long at[16]; /* wa_now_ms() */
    size_t n;
} timed_t;

static int timed_sink(void *arg, const void *buf, size_t len)
{
    timed_t *t = arg;

    (void)buf;
    (void)len;
    pthread_mutex_lock(&t->mu);
    if (t->n < sizeof(t->at) / sizeof(t->at[0]))
        t->at[t->n++] = wa_now_ms();
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static size_t timed_writes(timed_t *t)
{
    size_t n;

    pthread_mutex_lock(&t->mu);
    n = t->n;
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* Wait (at most 2 s) until t has seen n writes. */
static bool timed_wait(timed_t *t, size_t n)
{
    long long deadline = wa_now_ms() + 2000;

    while (timed_writes(t) < n && wa_now_ms() < deadline) {
        struct timespec ts = {.tv_nsec = 500 * 1000};
        nanosleep(&ts, NULL);
    }
    return timed_writes(t) >= n;
}

/*
 * Write coalescing keeps an epoch per connection: a frame queued to a
 * quiet connection goes at once, and the next one waits until an epoch
 * after that connection's own write, not for a boundary it shares with a
 * connection written earlier. (The lower bounds hold however slow the
 * machine is: they come from the write times themselves.)
 */
static void test_epoch_per_connection(void **state)
{
    nt_writers_t *w = NULL;
    nt_outq_opts_t o = {.max_frames = 128, .max_bytes = 1 << 20};
    nt_frame_t *f = text("{}", 1);
    timed_t t[2];
    nt_outq_t *q[2];

    (void)state;
    assert_int_equal(nt_writers_new(2, NULL, &w), WA_OK);
    o.writers = w;
    for (int i = 0; i < 2; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        pthread_mutex_init(&t[i].mu, NULL);
        q[i] = nt_outq_new(&o);
        assert_int_equal(nt_outq_start(q[i], timed_sink, &t[i]), WA_OK);
    }
    /* q0 written now, q1 half an epoch later. */
    assert_int_equal(nt_outq_push(q[0], f), WA_OK);
    assert_true(timed_wait(&t[0], 1));
    {
        struct timespec ts = {.tv_nsec = NT_WRITE_EPOCH_MS / 2 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(nt_outq_push(q[1], f), WA_OK);
    assert_true(timed_wait(&t[1], 1));
    /* A second frame to each, right after their writes. */
    for (int i = 0; i < 2; i++)
        assert_int_equal(nt_outq_push(q[i], f), WA_OK);
    for (int i = 0; i < 2; i++) {
        assert_true(timed_wait(&t[i], 2));
        /* No sooner than an epoch after its own first write, to within
         * half a tick (and 1 ms for the rounding of wa_now_ms). */
        assert_true(t[i].at[1] - t[i].at[0] >=
                    NT_WRITE_EPOCH_MS - NT_WRITE_TICK_MS / 2 - 1);
    }
    /* A full write's worth is never held back: q0 was written an instant
     * ago, yet 64 frames go out at once. */
    for (int i = 0; i < 64; i++)
        assert_int_equal(nt_outq_push(q[0], f), WA_OK);
    assert_true(timed_wait(&t[0], 3));
    for (int i = 0; i < 2; i++) {
        nt_outq_free(q[i]);
        pthread_mutex_destroy(&t[i].mu);
    }
    nt_frame_unref(f);
    nt_writers_free(w);
}

static void test_failing_sink(void **state)
{
    nt_metrics_t m = {0};
    nt_writers_t *w = NULL;
    nt_outq_opts_t o = {.max_frames = 16, .max_bytes = 1 << 20};
    nt_outq_t *q;
    nt_frame_t *f = text("{}", 1);
    capture_t c;
    long long deadline;

    (void)state;
    assert_int_equal(nt_writers_new(2, &m, &w), WA_OK);
    o.writers = w;
    q = nt_outq_new(&o);
    capture_init(&c);
    c.fail = true;
    assert_int_equal(nt_outq_start(q, capture_sink, &c), WA_OK);
    assert_int_equal(nt_outq_push(q, f), WA_OK);
    deadline = wa_now_ms() + 5000;
    while (!nt_outq_closing(q) && wa_now_ms() < deadline) {
        struct timespec ts = {.tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(nt_outq_closing(q));
    assert_int_equal(nt_outq_push(q, f), WA_ECLOSED);
    nt_outq_stop(q);
    assert_int_equal(nt_metrics_get(&m.drops[NT_DROP_WRITE]), 1);
    assert_int_equal(nt_metrics_get(&m.frames_out), 0);
    nt_frame_unref(f);
    nt_outq_free(q);
    capture_fini(&c);
    nt_writers_free(w);
}

static void test_stop_without_close(void **state)
{
    const nt_outq_opts_t o = {
        .writers = pool, .max_frames = 4, .max_bytes = 1024};
    nt_outq_t *q = nt_outq_new(&o);
    capture_t c;

    (void)state;
    capture_init(&c);
    assert_null(nt_outq_new(&(nt_outq_opts_t){.max_frames = 1}));
    assert_int_equal(nt_outq_start(q, capture_sink, &c), WA_OK);
    assert_int_equal(nt_outq_start(q, capture_sink, &c), WA_EINVAL);
    nt_outq_stop(q);
    nt_outq_stop(q); /* idempotent */
    assert_int_equal(c.len, 0);
    nt_outq_free(q);
    nt_outq_free(NULL);
    capture_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_headers),
        cmocka_unit_test(test_close_frame),
        cmocka_unit_test(test_count_bound),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_writer_order_and_close),
        cmocka_unit_test(test_close_discard),
        cmocka_unit_test(test_stalled_client_delays_nobody),
        cmocka_unit_test(test_defer),
        cmocka_unit_test(test_defer_full_write),
        cmocka_unit_test(test_coalesced_stream_order),
        cmocka_unit_test(test_epoch_per_connection),
        cmocka_unit_test(test_failing_sink),
        cmocka_unit_test(test_stop_without_close),
    };

    int rv;

    if (nt_writers_new(2, NULL, &pool) != WA_OK)
        return 1;
    rv = cmocka_run_group_tests(tests, NULL, NULL);
    nt_writers_free(pool);
    return rv;
}
