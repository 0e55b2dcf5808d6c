/*
 * batch.c - the batching client (wa_bus_batcher_*, bus.h).
 *
 * Leaders and followers, as in a group commit. At most `inflight` calls are
 * on the wire at a time; a caller finding a free place sends its request
 * alone, exactly as wa_bus_call would. A caller finding none queues. When a
 * leader's answer arrives it hands the queue, up to WA_BUS_BATCH_MAX calls,
 * to the first caller in it, which sends them as one "bus.batch" request,
 * splits the reply and wakes the others with their answers. Under load this
 * trades a message, a server hand-off and the wake-ups of nng's threads per
 * call for one per batch; unloaded, nothing changes.
 *
 * A peer that does not know bus.batch (WA_EUNKNOWNOP), or that cannot take
 * this batch whole (WA_EINVAL, WA_ETOOBIG: too many calls, replies too
 * large), gets each of its calls again alone, from the caller's own thread.
 * So does a batch that timed out: it waits only as long as its most urgent
 * member may, and the others still have time of their own. Members are
 * idempotent by rid like any request, so nng resending a batch after a lost
 * peer, or a member going again alone, is as safe as resending one request.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bus_int.h"
#include "envelope_int.h"

#include <nng/supplemental/util/platform.h>

/* Room for the batch's own envelope around its members. */
#define BATCH_OVERHEAD 256

enum call_state {
    C_QUEUED,
    C_LEAD,   /* handed a batch to send */
    C_SINGLE, /* to send alone: the batch was refused whole */
    C_DONE,
};

typedef struct call {
    struct call *next; /* in the queue, then in its batch */
    char *buf;         /* encoded request */
    size_t len;
    nng_time deadline;
    atomic_int state;   /* enum call_state; see state_set() */
    bool live;          /* sent in its batch (not expired first) */
    bool again;         /* to be sent alone after its batch: see send_batch */
    bool raw;           /* the caller wants the reply's data as text */
    struct call *batch; /* C_LEAD: the calls to send, this one first */
    wa_err_t err;
    wa_reply_t *rep;
} call_t;

struct wa_bus_batcher {
    nng_socket req;
    pthread_mutex_t mu;
    call_t *head, *tail;
    int inflight, max_inflight;
    wa_bus_batcher_stats_t stats;
    atomic_bool unsupported; /* the peer answered bus.batch: unknown_op */
};

wa_err_t wa_bus_batcher_new(nng_socket req, int inflight,
                            wa_bus_batcher_t **out)
{
    wa_bus_batcher_t *b;

    if (out == NULL || inflight < 1 || inflight > 256)
        return WA_EINVAL;
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return WA_ENOMEM;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        return WA_ENOMEM;
    }
    b->req = req;
    b->max_inflight = inflight;
    *out = b;
    return WA_OK;
}

void wa_bus_batcher_free(wa_bus_batcher_t *b)
{
    if (b == NULL)
        return;
    /* No call may be running: nothing is queued. */
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void wa_bus_batcher_stats(wa_bus_batcher_t *b, wa_bus_batcher_stats_t *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->stats;
    pthread_mutex_unlock(&b->mu);
}

/*
 * A call waits for its state to leave C_QUEUED on a futex of its own, and
 * whoever changes it wakes it after releasing every lock. With a condition
 * variable on the batcher's mutex, each woken caller would first have to
 * take that mutex back, from a leader still holding it to wake the next
 * one: measured on the gateway, a third of its context switches. The wake
 * may reach a call that already saw its new state and returned: a futex
 * wake on a stale address is harmless (waiters re-check their word).
 */
static void state_wait(atomic_int *state)
{
    while (atomic_load_explicit(state, memory_order_acquire) == C_QUEUED)
        (void)syscall(SYS_futex, state, FUTEX_WAIT_PRIVATE, C_QUEUED, NULL,
                      NULL, 0);
}

static void state_set(atomic_int *state, int to)
{
    atomic_store_explicit(state, to, memory_order_release);
    (void)syscall(SYS_futex, state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Take up to WA_BUS_BATCH_MAX queued calls that fit one message, in order;
 * at least one. Called locked with a non-empty queue. */
static call_t *take_batch(wa_bus_batcher_t *b)
{
    call_t *first = b->head, *last = first;
    size_t n = 1, bytes = BATCH_OVERHEAD + first->len;

    while (last->next != NULL && n < WA_BUS_BATCH_MAX &&
           bytes + last->next->len + 1 <= WA_ENVELOPE_MAX) {
        last = last->next;
        bytes += last->len + 1;
        n++;
    }
    b->head = last->next;
    if (b->head == NULL)
        b->tail = NULL;
    last->next = NULL;
    return first;
}

/* Set the result of every live call of list. */
static void set_all(call_t *list, wa_err_t err, const wa_reply_t *rep)
{
    for (call_t *c = list; c != NULL; c = c->next) {
        if (!c->live)
            continue;
        c->err = err;
        memset(c->rep, 0, sizeof(*c->rep));
        if (rep != NULL && !rep->ok && rep->err != WA_OK) {
            c->rep->err = rep->err;
            memcpy(c->rep->message, rep->message, sizeof(c->rep->message));
        }
    }
}

/*
 * Give each live call of list its member of the batch reply data, the text
 * {"replies":[<reply>,...]} (checked whole by the decoder). Members are
 * decoded from their spans of it: one pass over the bytes for the batch,
 * and a tree only for the members whose callers want one.
 */
static void split(call_t *list, size_t n, const char *data, size_t len)
{
    wa_json_span_t key, val, spans[WA_BUS_BATCH_MAX];
    wa_json_iter_t it, replies;
    size_t count = 0;
    bool seen = false;

    if (n > WA_BUS_BATCH_MAX ||
        !wa_json_iter_init(&it, (wa_json_span_t){data, len}) || !it.object)
        goto bad;
    /* One pass: the members' spans, as many as there were calls. */
    while (wa_json_iter_next_in(&it, &key, &val, &replies)) {
        if (!wa_json_key_is(key, "replies"))
            continue;
        if (seen || wa_json_kind(val) != '[')
            goto bad;
        seen = true;
        while (wa_json_iter_next(&replies, &key, &val)) {
            if (count == n)
                goto bad;
            spans[count++] = val;
        }
    }
    if (!seen || count != n)
        goto bad;
    count = 0;
    for (call_t *c = list; c != NULL; c = c->next) {
        if (!c->live)
            continue;
        c->err = wa__bus_result(
            wa__reply_decode_checked(spans[count++], c->raw, c->rep), c->rep);
    }
    return;
bad:
    set_all(list, WA_EPROTO, NULL);
}

/* Mark the live calls of list to go alone (again): the peer refused the
 * batch whole, or it timed out on its most urgent member while others
 * still have time. Those whose deadline has passed time out. */
static void go_alone(call_t *list)
{
    nng_time now = nng_clock();

    for (call_t *c = list; c != NULL; c = c->next) {
        if (!c->live)
            continue;
        memset(c->rep, 0, sizeof(*c->rep));
        c->again = c->deadline > now;
        c->err = WA_ETIMEDOUT;
    }
}

/*
 * Send the calls of list (out of the lock) and fill in their results, or
 * mark them to go alone (c->again). Calls whose deadline has passed fail
 * with WA_ETIMEDOUT unsent; the batch waits as long as its most urgent
 * member would.
 */
static void send_batch(wa_bus_batcher_t *b, call_t *list, size_t *batched)
{
    nng_time now = nng_clock(), deadline = 0;
    call_t *one = NULL, *c;
    char **bufs = NULL, rid[WA_RID_MAX + 1], *msg = NULL;
    size_t *lens = NULL, n = 0, i, len = 0;
    wa_reply_t rep;
    wa_err_t err;

    memset(&rep, 0, sizeof(rep));
    for (c = list; c != NULL; c = c->next) {
        c->again = false;
        c->live = c->deadline > now;
        if (!c->live) {
            memset(c->rep, 0, sizeof(*c->rep));
            c->err = WA_ETIMEDOUT;
            continue;
        }
        if (n == 0 || c->deadline < deadline)
            deadline = c->deadline;
        one = c;
        n++;
    }
    *batched = 0;
    if (n == 0)
        return;
    if (n == 1) {
        one->err =
            wa__bus_call_encoded(b->req, one->buf, one->len,
                                 (int)(deadline - now), one->raw, one->rep);
        return;
    }
    if ((bufs = malloc(n * sizeof(*bufs))) == NULL ||
        (lens = malloc(n * sizeof(*lens))) == NULL) {
        set_all(list, WA_ENOMEM, NULL);
        goto out;
    }
    for (i = 0, c = list; c != NULL; c = c->next) {
        if (!c->live)
            continue;
        bufs[i] = c->buf;
        lens[i++] = c->len;
    }
    wa_rid_new(rid, sizeof(rid));
    /* Cannot be WA_ETOOBIG: take_batch kept it under the limit. */
    if ((err = wa_batch_request_encode(rid, bufs, lens, n, &msg, &len)) !=
        WA_OK) {
        set_all(list, err, NULL);
        goto out;
    }
    *batched = n;
    err = wa__bus_call_encoded(b->req, msg, len, (int)(deadline - now), true,
                               &rep);
    if (err == WA_OK) {
        split(list, n, rep.raw, rep.raw_len);
    } else if (err == WA_EUNKNOWNOP || err == WA_EINVAL || err == WA_ETOOBIG ||
               err == WA_ETIMEDOUT) {
        go_alone(list);
        if (err == WA_EUNKNOWNOP)
            atomic_store(&b->unsupported, true);
    } else {
        set_all(list, err, &rep);
    }
    wa_reply_clear(&rep);
out:
    free(msg);
    free(bufs);
    free(lens);
}

/*
 * Lead: send list (me among it), then hand the rest of the queue to the
 * next leader, and each call its result (or the order to go alone).
 */
static void lead(wa_bus_batcher_t *b, call_t *me, call_t *list)
{
    size_t batched;
    send_batch(b, list, &batched);
    call_t *next_lead = NULL, *c, *next;

    pthread_mutex_lock(&b->mu);
    if (batched > 0) {
        b->stats.batches++;
        b->stats.batched += batched;
    }
    if (b->head != NULL) {
        next_lead = take_batch(b);
        next_lead->batch = next_lead;
    } else {
        b->inflight--;
    }
    pthread_mutex_unlock(&b->mu);

    if (next_lead != NULL)
        state_set(&next_lead->state, C_LEAD);
    for (c = list; c != NULL; c = next) {
        int to = c->again ? C_SINGLE : C_DONE;

        next = c->next; /* a woken call is gone */
        if (c == me)
            atomic_store(&me->state, to);
        else
            state_set(&c->state, to);
    }
}

static wa_err_t batcher_call(wa_bus_batcher_t *b, wa_op_t op, const char *user,
                             const char *rid, const cJSON *args, int timeout_ms,
                             bool raw, wa_reply_t *rep)
{
    call_t me;
    bool queue;

    if (rep == NULL)
        return WA_EINVAL;
    memset(rep, 0, sizeof(*rep));
    if (b == NULL || timeout_ms < 0)
        return WA_EINVAL;
    if (timeout_ms == 0)
        timeout_ms = WA_BUS_DEFAULT_TIMEOUT_MS;

    memset(&me, 0, sizeof(me));
    if ((me.err = wa_request_encode(op, user, rid, args, &me.buf, &me.len)) !=
        WA_OK)
        return me.err;
    me.deadline = nng_clock() + (nng_time)timeout_ms;
    me.rep = rep;
    me.raw = raw;
    atomic_init(&me.state, C_QUEUED);

    /* A peer without bus.batch gets every call alone. */
    queue = !atomic_load(&b->unsupported);
    pthread_mutex_lock(&b->mu);
    b->stats.calls++;
    if (!queue) {
        atomic_store(&me.state, C_SINGLE);
    } else {
        if (b->tail != NULL)
            b->tail->next = &me;
        else
            b->head = &me;
        b->tail = &me;
        if (b->inflight < b->max_inflight) {
            b->inflight++;
            me.batch = take_batch(b); /* the queue was empty: just me */
            atomic_store(&me.state, C_LEAD);
        }
    }
    pthread_mutex_unlock(&b->mu);
    state_wait(&me.state);

    if (atomic_load(&me.state) == C_LEAD)
        lead(b, &me, me.batch); /* sets me.state again */
    if (atomic_load(&me.state) == C_SINGLE) {
        nng_time now = nng_clock();

        me.err = me.deadline > now
                     ? wa__bus_call_encoded(b->req, me.buf, me.len,
                                            (int)(me.deadline - now), raw, rep)
                     : WA_ETIMEDOUT;
    }
    free(me.buf);
    return me.err;
}

wa_err_t wa_bus_batcher_call(wa_bus_batcher_t *b, wa_op_t op, const char *user,
                             const char *rid, const cJSON *args, int timeout_ms,
                             wa_reply_t *rep)
{
    return batcher_call(b, op, user, rid, args, timeout_ms, false, rep);
}

wa_err_t wa_bus_batcher_call_raw(wa_bus_batcher_t *b, wa_op_t op,
                                 const char *user, const char *rid,
                                 const cJSON *args, int timeout_ms,
                                 wa_reply_t *rep)
{
    return batcher_call(b, op, user, rid, args, timeout_ms, true, rep);
}
