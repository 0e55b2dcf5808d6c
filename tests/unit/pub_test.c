/*
 * pub_test.c - wa/pub.h: the batch form (encode, split as a strict
 * validator) and the publisher over real nng sockets.
 *
 * No test depends on timing. Batching is made certain with a PUSH socket
 * that has no peer yet: the publisher's thread takes what is queued and
 * blocks in its first send, so everything published meanwhile waits in
 * the queue, and comes out as one batch once a PULL peer connects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include "wa/bus.h"
#include "wa/pub.h"

static void make_event(wa_event_t *ev, const char *user, int64_t seq)
{
    assert_int_equal(wa_event_init(ev, user, WA_EV_STATUS), WA_OK);
    ev->seq = seq;
    assert_non_null(cJSON_AddNumberToObject(ev->data, "n", (double)seq));
    assert_non_null(cJSON_AddStringToObject(ev->data, "s", "a\nb\"c"));
}

/* Split buf[0..len) (copied to a buffer of exactly len bytes, so that ASan
 * sees any read past it) into evs; returns how many decoded. */
static size_t split_all(const char *buf, size_t len, wa_event_t *evs,
                        size_t cap, wa_pub_split_t *s)
{
    char *copy = malloc(len > 0 ? len : 1);
    size_t n = 0;
    wa_event_t ev;

    assert_non_null(copy);
    memcpy(copy, buf, len);
    assert_int_equal(wa_pub_split_begin(s, copy, len), WA_OK);
    while (wa_pub_split_next(s, &ev) == WA_OK) {
        assert_true(n < cap);
        evs[n++] = ev;
    }
    assert_null(ev.data);
    free(copy);
    return n;
}

static void clear_all(wa_event_t *evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        wa_event_clear(&evs[i]);
}

/* ---- the form ---- */

static void test_batch_round_trip(void **state)
{
    /* "b", e-acute, "b": split so the hex escape ends before the "b". */
    const char *users[3] = {"alice",
                            ("b\xc3\xa9"
                             "b"),
                            "alice"};
    wa_event_t in[3], out[4];
    wa_pub_split_t s;
    char *buf, *single;
    size_t len, slen, n;
    (void)state;

    for (int i = 0; i < 3; i++)
        make_event(&in[i], users[i], 10 + i);
    assert_int_equal(wa_pub_batch_encode(in, 3, &buf, &len), WA_OK);
    assert_true(wa_pub_is_batch(buf, len));
    assert_int_equal(buf[0], '\n');
    assert_int_equal(strlen(buf), len);

    n = split_all(buf, len, out, 4, &s);
    assert_int_equal(n, 3);
    assert_int_equal(s.records, 3);
    assert_int_equal(s.bad, 0);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(out[i].user, users[i]);
        assert_int_equal(out[i].seq, 10 + i);
        assert_int_equal(out[i].type, WA_EV_STATUS);
        assert_string_equal(out[i].timestamp, in[i].timestamp);
        assert_true(cJSON_Compare(out[i].data, in[i].data, 1));
    }
    clear_all(out, n);
    free(buf);

    /* A batch of one is valid too. */
    assert_int_equal(wa_pub_batch_encode(in, 1, &buf, &len), WA_OK);
    assert_int_equal(split_all(buf, len, out, 4, &s), 1);
    assert_string_equal(out[0].user, "alice");
    clear_all(out, 1);
    free(buf);

    /* The single form of DESIGN §6 reads as one record. */
    assert_int_equal(wa_event_encode(&in[1], &single, &slen), WA_OK);
    assert_false(wa_pub_is_batch(single, slen));
    assert_int_equal(split_all(single, slen, out, 4, &s), 1);
    assert_int_equal(s.records, 1);
    assert_int_equal(s.bad, 0);
    assert_string_equal(out[0].user, users[1]);
    assert_int_equal(out[0].seq, 11);
    clear_all(out, 1);
    free(single);

    clear_all(in, 3);
}

static void test_batch_encode_refuses(void **state)
{
    wa_event_t ev, evs[2];
    char *buf = (char *)1;
    size_t len;
    cJSON *raw;
    (void)state;

    make_event(&ev, "u", 1);
    assert_int_equal(wa_pub_batch_encode(&ev, 0, &buf, &len), WA_EINVAL);
    assert_null(buf);
    assert_int_equal(wa_pub_batch_encode(NULL, 1, &buf, &len), WA_EINVAL);
    assert_int_equal(wa_pub_batch_encode(&ev, WA_PUB_BATCH_MAX + 1, &buf, &len),
                     WA_EINVAL);
    assert_int_equal(wa_pub_batch_encode(&ev, 1, NULL, &len), WA_EINVAL);

    /* A raw JSON node can carry a newline the record framing would cut:
     * such an event cannot be batched (it can still go alone). */
    make_event(&evs[0], "u", 1);
    make_event(&evs[1], "u", 2);
    assert_non_null(raw = cJSON_CreateRaw("\n1"));
    assert_true(cJSON_AddItemToObject(evs[1].data, "r", raw));
    assert_int_equal(wa_pub_batch_encode(evs, 2, &buf, &len), WA_EINVAL);
    assert_null(buf);

    /* An invalid event: the encoder's error. */
    evs[0].seq = -1;
    assert_int_equal(wa_pub_batch_encode(evs, 1, &buf, &len), WA_EINVAL);

    clear_all(evs, 2);
    wa_event_clear(&ev);
}

/* A batch of n records, each a valid encoded event of user "u<i>", built
 * by hand (the encoder stops at WA_PUB_BATCH_MAX). */
static char *make_batch(size_t n, size_t *len)
{
    char *msg = malloc(n * 256 + 1), *one;
    size_t total = 0, olen;

    assert_non_null(msg);
    for (size_t i = 0; i < n; i++) {
        char user[32];
        wa_event_t ev;

        snprintf(user, sizeof(user), "u%zu", i);
        make_event(&ev, user, (int64_t)i + 1);
        assert_int_equal(wa_event_encode(&ev, &one, &olen), WA_OK);
        wa_event_clear(&ev);
        assert_true(olen < 255);
        msg[total++] = '\n';
        memcpy(msg + total, one, olen);
        total += olen;
        free(one);
    }
    msg[total] = '\0'; /* for strchr in the tests; not part of it */
    *len = total;
    return msg;
}

/* Split buf + tail and expect `good` events and `bad` refused records. */
static void expect_split(const char *buf, size_t len, const char *tail,
                         size_t tlen, size_t good, size_t bad, wa_err_t err)
{
    char *msg = malloc(len + tlen);
    wa_event_t out[8];
    wa_pub_split_t s;

    assert_non_null(msg);
    memcpy(msg, buf, len);
    memcpy(msg + len, tail, tlen);
    assert_int_equal(split_all(msg, len + tlen, out, 8, &s), good);
    assert_int_equal(s.bad, bad);
    if (bad > 0)
        assert_int_equal(s.err, err);
    assert_int_equal(s.records, good + bad);
    clear_all(out, good);
    free(msg);
}

static void test_split_malformed(void **state)
{
    wa_pub_split_t s;
    wa_event_t ev;
    size_t len, cut;
    char *b3 = make_batch(3, &len), *p;
    char bad[64];
    (void)state;

    /* Framing refused before any decoding. */
    assert_int_equal(wa_pub_split_begin(&s, "\n", 1), WA_EPROTO);
    assert_int_equal(wa_pub_split_begin(&s, "", 0), WA_EPROTO);
    assert_int_equal(wa_pub_split_begin(&s, NULL, 0), WA_EPROTO);
    assert_int_equal(wa_pub_split_begin(&s, NULL, 5), WA_EINVAL);
    assert_int_equal(wa_pub_split_begin(NULL, "\n", 1), WA_EINVAL);
    assert_int_equal(wa_pub_split_begin(&s, b3, (size_t)WA_ENVELOPE_MAX + 1),
                     WA_ETOOBIG);
    /* Nothing is left to read after a refusal. */
    assert_int_equal(wa_pub_split_next(&s, &ev), WA_ENOTFOUND);
    assert_null(ev.data);

    /* Well-formed, as the reference. */
    expect_split(b3, len, "", 0, 3, 0, WA_OK);

    /* Truncated inside the last record's JSON, and after its user. */
    p = strrchr(b3, '\n'); /* the last record's user/JSON separator */
    cut = (size_t)(p - b3);
    expect_split(b3, cut + 5, "", 0, 2, 1, WA_EPROTO);
    expect_split(b3, cut, "", 0, 2, 1, WA_EPROTO);
    expect_split(b3, cut + 1, "", 0, 2, 1, WA_EPROTO);

    /* Trailing garbage: after the JSON, as an extra record, an empty
     * record. */
    expect_split(b3, len, "x", 1, 2, 1, WA_EPROTO);
    expect_split(b3, len, "\ngarbage", 8, 3, 1, WA_EPROTO);
    expect_split(b3, len, "\n", 1, 3, 1, WA_EPROTO);
    expect_split(b3, len, "\n\n", 2, 3, 1, WA_EPROTO);

    /* Empty user, bad JSON, bad UTF-8, a NUL, a control in the user: that
     * record is refused, the others are delivered. */
    expect_split(b3, len, "\n\n{}", 4, 3, 1, WA_EPROTO);
    expect_split(b3, len, "\nu\n{\"v\":1,", 10, 3, 1, WA_EPROTO);
    expect_split(b3, len, "\nu\n{}", 5, 3, 1, WA_EPROTO);
    expect_split(b3, len, "\nu\xff\n{}", 6, 3, 1, WA_EUTF8);
    expect_split(b3, len, "\nu\0\n{}", 6, 3, 1, WA_EPROTO);
    expect_split(b3, len, "\nu\x01\n{}", 6, 3, 1, WA_EPROTO);
    snprintf(bad, sizeof(bad), "\nu\n{\"v\":2,\"type\":\"status\"}");
    expect_split(b3, len, bad, strlen(bad), 3, 1, WA_EVERSION);
    /* A bad record in the middle. */
    {
        size_t first = (size_t)(strchr(strchr(b3 + 1, '\n') + 1, '\n') - b3);
        char *mid = malloc(len + 8);

        assert_non_null(mid);
        memcpy(mid, b3, first);
        memcpy(mid + first, "\nzz\n{]", 6);
        memcpy(mid + first + 6, b3 + first, len - first);
        expect_split(mid, len + 6, "", 0, 3, 1, WA_EPROTO);
        free(mid);
    }
    free(b3);

    /* Bounded record count: WA_PUB_BATCH_MAX is read, one more is refused
     * whole. */
    b3 = make_batch(WA_PUB_BATCH_MAX, &len);
    assert_int_equal(wa_pub_split_begin(&s, b3, len), WA_OK);
    assert_int_equal(s.records, WA_PUB_BATCH_MAX);
    free(b3);
    b3 = make_batch(WA_PUB_BATCH_MAX + 1, &len);
    assert_int_equal(wa_pub_split_begin(&s, b3, len), WA_ETOOBIG);
    assert_int_equal(wa_pub_split_next(&s, &ev), WA_ENOTFOUND);
    free(b3);
    /* Newlines alone count as records. */
    {
        char nl[2 * WA_PUB_BATCH_MAX + 1];

        memset(nl, '\n', sizeof(nl));
        assert_int_equal(wa_pub_split_begin(&s, nl, sizeof(nl)), WA_ETOOBIG);
        assert_int_equal(wa_pub_split_begin(&s, nl, sizeof(nl) - 1), WA_OK);
        assert_int_equal(s.records, WA_PUB_BATCH_MAX);
        while (wa_pub_split_next(&s, &ev) == WA_OK)
            fail();
        assert_int_equal(s.bad, WA_PUB_BATCH_MAX);
    }

    /* A malformed single-form message is one refused record. */
    expect_split("u1\n{", 4, "", 0, 0, 1, WA_EPROTO);
    expect_split("u1", 2, "", 0, 0, 1, WA_EPROTO);
}

/* ---- the publisher ---- */

static void inproc_url(char *buf, size_t len)
{
    static int n;

    snprintf(buf, len, "inproc://pub_test_%d", n++);
}

typedef struct pubsub {
    nng_socket pub, sub;
} pubsub_t;

/* PUB dialing a SUB of everything, connected (a "sync" event seen). */
static void pubsub_open(pubsub_t *ps)
{
    char url[64];
    wa_event_t ev;
    wa_err_t rv;

    inproc_url(url, sizeof(url));
    assert_int_equal(
        wa_bus_open(WA_SOCK_SUB, WA_SOCK_LISTEN, url, NULL, &ps->sub), WA_OK);
    assert_int_equal(wa_bus_subscribe(ps->sub, NULL), WA_OK);
    assert_int_equal(nng_socket_set_int(ps->sub, NNG_OPT_RECVBUF, 8192), 0);
    assert_int_equal(
        wa_bus_open(WA_SOCK_PUB, WA_SOCK_DIAL, url, NULL, &ps->pub), WA_OK);
    assert_int_equal(nng_socket_set_int(ps->pub, NNG_OPT_SENDBUF, 8192), 0);
    assert_int_equal(nng_socket_set_ms(ps->sub, NNG_OPT_RECVTIMEO, 20), 0);
    for (int i = 0; i < 500; i++) {
        make_event(&ev, "sync", 1);
        assert_int_equal(wa_bus_publish(ps->pub, &ev), WA_OK);
        wa_event_clear(&ev);
        if ((rv = wa_bus_recv_event(ps->sub, &ev)) == WA_OK)
            break;
    }
    assert_int_equal(rv, WA_OK);
    wa_event_clear(&ev);
    /* Drain the other syncs. */
    while (wa_bus_recv_event(ps->sub, &ev) == WA_OK)
        wa_event_clear(&ev);
    assert_int_equal(nng_socket_set_ms(ps->sub, NNG_OPT_RECVTIMEO, 5000), 0);
}

static void pubsub_close(pubsub_t *ps)
{
    nng_close(ps->pub);
    nng_close(ps->sub);
}

/* Receive one raw message. */
static nng_msg *recv_raw(nng_socket s)
{
    nng_msg *m = NULL;

    assert_int_equal(nng_recvmsg(s, &m, 0), 0);
    return m;
}

static void test_single_form_at_low_rate(void **state)
{
    wa_publisher_t *p;
    wa_publisher_stats_t st;
    pubsub_t ps;
    (void)state;

    pubsub_open(&ps);
    assert_int_equal(wa_publisher_new(ps.pub, NULL, &p), WA_OK);
    for (int i = 1; i <= 3; i++) {
        wa_event_t ev;
        char *want;
        size_t wlen;
        nng_msg *m;

        make_event(&ev, "alice", i);
        assert_int_equal(wa_event_encode(&ev, &want, &wlen), WA_OK);
        assert_int_equal(wa_publisher_publish(p, &ev), WA_OK);
        wa_event_clear(&ev);
        /* Nothing else queued: it goes alone, exactly as DESIGN §6 says
         * and as wa_bus_publish() would send it. */
        wa_publisher_flush(p);
        m = recv_raw(ps.sub);
        assert_int_equal(nng_msg_len(m), wlen);
        assert_memory_equal(nng_msg_body(m), want, wlen);
        assert_int_equal(wa_bus_err(0), WA_OK);
        nng_msg_free(m);
        free(want);
    }
    wa_publisher_stats(p, &st);
    assert_int_equal(st.queued, 3);
    assert_int_equal(st.sent, 3);
    assert_int_equal(st.messages, 3);
    assert_int_equal(st.batches, 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.failed, 0);
    wa_publisher_free(p);
    pubsub_close(&ps);
}

/* Read messages from sock (either form) until n events came; check they
 * are users u0..u(k-1) round-robin with seq rising per user, in publish
 * order. Returns the number of messages. */
static size_t recv_in_order(nng_socket sock, size_t n, size_t *batches)
{
    size_t got = 0, msgs = 0;

    *batches = 0;
    while (got < n) {
        nng_msg *m = recv_raw(sock);
        wa_pub_split_t s;
        wa_event_t ev;

        msgs++;
        if (wa_pub_is_batch(nng_msg_body(m), nng_msg_len(m)))
            (*batches)++;
        assert_int_equal(
            wa_pub_split_begin(&s, nng_msg_body(m), nng_msg_len(m)), WA_OK);
        while (wa_pub_split_next(&s, &ev) == WA_OK) {
            char user[32];

            snprintf(user, sizeof(user), "u%zu", got % 5);
            assert_string_equal(ev.user, user);
            assert_int_equal(ev.seq, (int64_t)(got / 5) + 1);
            wa_event_clear(&ev);
            got++;
        }
        assert_int_equal(s.bad, 0);
        nng_msg_free(m);
    }
    assert_int_equal(got, n);
    return msgs;
}

static void publish_round_robin(wa_publisher_t *p, size_t from, size_t n)
{
    for (size_t i = from; i < from + n; i++) {
        char user[32];
        wa_event_t ev;

        snprintf(user, sizeof(user), "u%zu", i % 5);
        make_event(&ev, user, (int64_t)(i / 5) + 1);
        assert_int_equal(wa_publisher_publish(p, &ev), WA_OK);
        wa_event_clear(&ev);
    }
}

static void test_order_and_shutdown_flush(void **state)
{
    wa_publisher_t *p;
    wa_publisher_stats_t st;
    size_t batches, msgs;
    pubsub_t ps;
    (void)state;

    pubsub_open(&ps);
    assert_int_equal(wa_publisher_new(ps.pub, NULL, &p), WA_OK);
    publish_round_robin(p, 0, 3000);
    wa_publisher_stats(p, &st);
    assert_int_equal(st.queued, 3000);
    /* Freed at once: everything queued is still sent. */
    wa_publisher_free(p);
    msgs = recv_in_order(ps.sub, 3000, &batches);
    assert_true(msgs >= 1 && msgs <= 3000);
    pubsub_close(&ps);
}

/* A PUSH socket listening with no peer: a send blocks until one dials. */
static void push_open(nng_socket *push, char *url, size_t len)
{
    inproc_url(url, len);
    assert_int_equal(nng_push0_open(push), 0);
    assert_int_equal(nng_socket_set_ms(*push, NNG_OPT_SENDTIMEO, -1), 0);
    assert_int_equal(nng_listen(*push, url, NULL, 0), 0);
}

static void pull_open(nng_socket *pull, const char *url)
{
    assert_int_equal(nng_pull0_open(pull), 0);
    assert_int_equal(nng_socket_set_ms(*pull, NNG_OPT_RECVTIMEO, 5000), 0);
    assert_int_equal(nng_dial(*pull, url, NULL, 0), 0);
}

static void test_backlog_forms_batches(void **state)
{
    wa_publisher_t *p;
    wa_publisher_stats_t st;
    nng_socket push, pull;
    size_t batches, msgs;
    char url[64];
    (void)state;

    push_open(&push, url, sizeof(url));
    assert_int_equal(wa_publisher_new(push, NULL, &p), WA_OK);
    /* The thread takes what it finds and blocks sending it; the rest
     * waits in the queue. */
    publish_round_robin(p, 0, 100);
    pull_open(&pull, url);
    msgs = recv_in_order(pull, 100, &batches);
    wa_publisher_flush(p); /* its counters are updated after the send */
    /* At most one message before the thread blocked, then one batch of
     * everything that queued meanwhile. */
    assert_true(msgs <= 2);
    assert_true(batches >= 1);
    wa_publisher_stats(p, &st);
    assert_int_equal(st.sent, 100);
    assert_int_equal(st.messages, msgs);
    assert_int_equal(st.batches, batches);
    wa_publisher_free(p);
    nng_close(pull);
    nng_close(push);
}

static void test_batch_bounds_and_alone(void **state)
{
    const wa_publisher_opts_t o = {.batch_max = 7};
    wa_publisher_t *p;
    wa_publisher_stats_t st;
    nng_socket push, pull;
    char url[64];
    wa_event_t ev;
    size_t got = 0;
    cJSON *raw;
    (void)state;

    push_open(&push, url, sizeof(url));
    assert_int_equal(wa_publisher_new(push, &o, &p), WA_OK);
    /* 20 events, the 10th with a raw newline in its JSON: it must go alone,
     * in the single form, and no message may hold more than 7 events. */
    for (int i = 1; i <= 20; i++) {
        make_event(&ev, "u", i);
        if (i == 10) {
            assert_non_null(raw = cJSON_CreateRaw("\n1"));
            assert_true(cJSON_AddItemToObject(ev.data, "r", raw));
        }
        assert_int_equal(wa_publisher_publish(p, &ev), WA_OK);
        wa_event_clear(&ev);
    }
    pull_open(&pull, url);
    while (got < 20) {
        nng_msg *m = recv_raw(pull);
        wa_pub_split_t s;
        bool batch = wa_pub_is_batch(nng_msg_body(m), nng_msg_len(m));
        size_t inmsg = 0;
        bool has10 = false;

        assert_int_equal(
            wa_pub_split_begin(&s, nng_msg_body(m), nng_msg_len(m)), WA_OK);
        while (wa_pub_split_next(&s, &ev) == WA_OK) {
            assert_int_equal(ev.seq, (int64_t)++got);
            has10 |= ev.seq == 10;
            inmsg++;
            wa_event_clear(&ev);
        }
        assert_int_equal(s.bad, 0);
        assert_true(inmsg >= 1 && inmsg <= 7);
        assert_true(batch == (inmsg > 1));
        if (has10)
            assert_int_equal(inmsg, 1);
        nng_msg_free(m);
    }
    wa_publisher_flush(p); /* its counters are updated after the send */
    wa_publisher_stats(p, &st);
    assert_int_equal(st.sent, 20);
    wa_publisher_free(p);
    nng_close(pull);
    nng_close(push);

    /* Byte bound: events of ~1 KiB in batches of at most 4 KiB. */
    {
        const wa_publisher_opts_t ob = {.batch_bytes = 4096};
        char pad[1001];

        memset(pad, 'x', sizeof(pad) - 1);
        pad[sizeof(pad) - 1] = '\0';
        push_open(&push, url, sizeof(url));
        assert_int_equal(wa_publisher_new(push, &ob, &p), WA_OK);
        for (int i = 1; i <= 12; i++) {
            make_event(&ev, "u", i);
            assert_non_null(cJSON_AddStringToObject(ev.data, "p", pad));
            assert_int_equal(wa_publisher_publish(p, &ev), WA_OK);
            wa_event_clear(&ev);
        }
        pull_open(&pull, url);
        for (got = 0; got < 12;) {
            nng_msg *m = recv_raw(pull);
            wa_pub_split_t s;

            assert_true(nng_msg_len(m) <= 4096);
            assert_int_equal(
                wa_pub_split_begin(&s, nng_msg_body(m), nng_msg_len(m)), WA_OK);
            while (wa_pub_split_next(&s, &ev) == WA_OK) {
                assert_int_equal(ev.seq, (int64_t)++got);
                wa_event_clear(&ev);
            }
            nng_msg_free(m);
        }
        wa_publisher_free(p);
        nng_close(pull);
        nng_close(push);
    }
}

static void test_queue_full_drops_counted(void **state)
{
    const wa_publisher_opts_t o = {.queue_max = 4, .batch_max = 2};
    wa_publisher_t *p;
    wa_publisher_stats_t st;
    nng_socket push, pull;
    size_t full = 0, ok = 0, batches;
    char url[64];
    (void)state;

    push_open(&push, url, sizeof(url));
    assert_int_equal(wa_publisher_new(push, &o, &p), WA_OK);
    for (int i = 0; i < 20; i++) {
        char user[32];
        wa_event_t ev;
        wa_err_t rv;

        /* Published in order so that the accepted ones are a prefix. */
        snprintf(user, sizeof(user), "u%zu", ok % 5);
        make_event(&ev, user, (int64_t)(ok / 5) + 1);
        rv = wa_publisher_publish(p, &ev);
        wa_event_clear(&ev);
        if (rv == WA_EFULL)
            full++;
        else if (rv == WA_OK)
            ok++;
        else
            fail();
    }
    /* The queue holds 4; the thread took at most one message (2 events)
     * before it blocked in its send. */
    assert_true(ok >= 4 && ok <= 6);
    assert_int_equal(full, 20 - ok);
    wa_publisher_stats(p, &st);
    assert_int_equal(st.queued, ok);
    assert_int_equal(st.dropped, full);

    pull_open(&pull, url);
    (void)recv_in_order(pull, ok, &batches);
    wa_publisher_flush(p);
    wa_publisher_stats(p, &st);
    assert_int_equal(st.sent, ok);
    assert_int_equal(st.failed, 0);
    wa_publisher_free(p);
    nng_close(pull);
    nng_close(push);

    /* The byte bound drops too. */
    {
        const wa_publisher_opts_t ob = {.queue_bytes = 10};
        wa_event_t ev;

        push_open(&push, url, sizeof(url));
        assert_int_equal(wa_publisher_new(push, &ob, &p), WA_OK);
        make_event(&ev, "u", 1);
        assert_int_equal(wa_publisher_publish(p, &ev), WA_EFULL);
        wa_event_clear(&ev);
        wa_publisher_stats(p, &st);
        assert_int_equal(st.dropped, 1);
        assert_int_equal(st.queued, 0);
        wa_publisher_free(p);
        nng_close(push);
    }
}

static void test_send_failure_counted(void **state)
{
    wa_publisher_t *p;
    wa_publisher_stats_t st;
    wa_event_t ev;
    nng_socket push;
    char url[64];
    (void)state;

    /* Closing the socket fails the blocked send and every later one:
     * counted, and free still returns. */
    push_open(&push, url, sizeof(url));
    assert_int_equal(wa_publisher_new(push, NULL, &p), WA_OK);
    for (int i = 1; i <= 5; i++) {
        make_event(&ev, "u", i);
        assert_int_equal(wa_publisher_publish(p, &ev), WA_OK);
        wa_event_clear(&ev);
    }
    nng_close(push);
    wa_publisher_flush(p);
    wa_publisher_stats(p, &st);
    assert_int_equal(st.queued, 5);
    assert_int_equal(st.failed, 5);
    assert_int_equal(st.sent, 0);
    assert_int_equal(st.last_err, WA_ECLOSED);
    wa_publisher_free(p);
}

static void test_publisher_bad_args(void **state)
{
    const wa_publisher_opts_t big = {.batch_max = WA_PUB_BATCH_MAX + 1};
    wa_publisher_t *p = NULL;
    wa_publisher_stats_t st;
    wa_event_t ev;
    pubsub_t ps;
    (void)state;

    pubsub_open(&ps);
    assert_int_equal(wa_publisher_new(ps.pub, NULL, NULL), WA_EINVAL);
    assert_int_equal(wa_publisher_new(ps.pub, &big, &p), WA_EINVAL);
    assert_null(p);
    assert_int_equal(wa_publisher_new(ps.pub, NULL, &p), WA_OK);
    assert_int_equal(wa_publisher_publish(p, NULL), WA_EINVAL);
    assert_int_equal(wa_publisher_publish(NULL, NULL), WA_EINVAL);
    /* An invalid event is the encoder's error and is not queued. */
    make_event(&ev, "u", 1);
    ev.seq = -2;
    assert_int_equal(wa_publisher_publish(p, &ev), WA_EINVAL);
    wa_event_clear(&ev);
    wa_publisher_stats(p, &st);
    assert_int_equal(st.queued, 0);
    wa_publisher_stats(NULL, &st);
    assert_int_equal(st.queued, 0);
    wa_publisher_flush(NULL);
    wa_publisher_free(p);
    wa_publisher_free(NULL);
    pubsub_close(&ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_round_trip),
        cmocka_unit_test(test_batch_encode_refuses),
        cmocka_unit_test(test_split_malformed),
        cmocka_unit_test(test_single_form_at_low_rate),
        cmocka_unit_test(test_order_and_shutdown_flush),
        cmocka_unit_test(test_backlog_forms_batches),
        cmocka_unit_test(test_batch_bounds_and_alone),
        cmocka_unit_test(test_queue_full_drops_counted),
        cmocka_unit_test(test_send_failure_counted),
        cmocka_unit_test(test_publisher_bad_args),
    };

    return cmocka_run_group_tests(tests, 0, NULL);
}
