/*
 * pub.c - the batch form of PUB messages, and the publisher that forms
 * batches from its own backlog (pub.h).
 *
 * The publisher's thread takes everything queued (up to a batch) at once
 * and sends it as one nng message. While it sends, new events queue up;
 * the next turn takes them all. So a batch is exactly the backlog: one
 * event at a low rate (the single form of DESIGN §6, unchanged), many
 * under load, and no event ever waits for a timer.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wa/bus.h"
#include "wa/pub.h"

#define QUEUE_MAX_DEFAULT 16384
#define QUEUE_BYTES_DEFAULT (64u * 1024u * 1024u)

/* ------------------------------------------------------------- the form */

bool wa_pub_is_batch(const void *buf, size_t len)
{
    return buf != NULL && len > 0 && *(const char *)buf == '\n';
}

/* Can an encoded single-form event "<user>\n<json>" be a batch record?
 * Only if its JSON holds no raw newline (the encoder escapes them in
 * strings; a raw cJSON node could still carry one). */
static bool batchable(const char *msg, size_t len)
{
    const char *nl = memchr(msg, '\n', len);

    return nl != NULL &&
           memchr(nl + 1, '\n', len - (size_t)(nl - msg) - 1) == NULL;
}

wa_err_t wa_pub_batch_encode(const wa_event_t *evs, size_t n, char **out,
                             size_t *outlen)
{
    char **parts = NULL, *msg = NULL, *d;
    size_t *lens = NULL, total = 0, done = 0;
    wa_err_t rv = WA_OK;

    if (out == NULL)
        return WA_EINVAL;
    *out = NULL;
    if (evs == NULL || n == 0 || n > WA_PUB_BATCH_MAX)
        return WA_EINVAL;
    if ((parts = calloc(n, sizeof(*parts))) == NULL ||
        (lens = calloc(n, sizeof(*lens))) == NULL) {
        rv = WA_ENOMEM;
        goto out;
    }
    for (; done < n; done++) {
        if ((rv = wa_event_encode(&evs[done], &parts[done], &lens[done])) !=
            WA_OK)
            goto out;
        if (!batchable(parts[done], lens[done])) {
            free(parts[done]);
            rv = WA_EINVAL;
            goto out;
        }
        total += lens[done] + 1; /* each record after its '\n' */
        if (total > WA_ENVELOPE_MAX) {
            done++;
            rv = WA_ETOOBIG;
            goto out;
        }
    }
    if ((msg = malloc(total + 1)) == NULL) {
        rv = WA_ENOMEM;
        goto out;
    }
    d = msg;
    for (size_t i = 0; i < n; i++) {
        *d++ = '\n';
        memcpy(d, parts[i], lens[i]);
        d += lens[i];
    }
    *d = '\0';
    *out = msg;
    if (outlen != NULL)
        *outlen = total;

out:
    for (size_t i = 0; parts != NULL && i < done; i++)
        free(parts[i]);
    free(parts);
    free(lens);
    return rv;
}

wa_err_t wa_pub_split_begin(wa_pub_split_t *s, const void *buf, size_t len)
{
    const char *p, *end;
    size_t nl = 0;

    if (s == NULL)
        return WA_EINVAL;
    memset(s, 0, sizeof(*s));
    if (len > WA_ENVELOPE_MAX)
        return WA_ETOOBIG;
    if (buf == NULL)
        return len == 0 ? WA_EPROTO : WA_EINVAL;
    if (len == 0)
        return WA_EPROTO;
    s->p = buf;
    s->end = s->p + len;
    if (!wa_pub_is_batch(buf, len)) {
        s->records = s->left = 1;
        return WA_OK;
    }
    /* "\n" r1 "\n" r2 ... "\n" rn, each record "<user>\n<json>": the body
     * after the first byte holds 2n - 1 newlines. Count them before
     * decoding anything, stopping as soon as the bound is passed. */
    if (len == 1)
        return WA_EPROTO;
    p = s->p + 1;
    end = s->end;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        p++;
        if (++nl >= 2 * (size_t)WA_PUB_BATCH_MAX) {
            memset(s, 0, sizeof(*s));
            return WA_ETOOBIG;
        }
    }
    /* nl + 1 segments pair into records; an odd last one is a record
     * without its JSON, refused by the decoder when it is reached. */
    s->records = s->left = (nl + 2) / 2;
    s->batch = true;
    s->p++;
    return WA_OK;
}

static wa_err_t split_next(wa_pub_split_t *s, wa_event_t *ev, bool frame)
{
    if (s == NULL || ev == NULL)
        return WA_EINVAL;
    memset(ev, 0, sizeof(*ev));
    while (s->left > 0) {
        const char *rec = s->p, *stop = s->end, *nl;
        wa_err_t rv;

        s->left--;
        if (s->batch &&
            (nl = memchr(rec, '\n', (size_t)(s->end - rec))) != NULL &&
            (nl = memchr(nl + 1, '\n', (size_t)(s->end - nl - 1))) != NULL)
            stop = nl; /* the separator before the next record */
        s->p = stop < s->end ? stop + 1 : s->end;
        s->len = (size_t)(stop - rec);
        rv = frame ? wa_event_decode_frame(rec, s->len, ev)
                   : wa_event_decode(rec, s->len, ev);
        if (rv == WA_OK)
            return WA_OK;
        s->bad++;
        s->err = rv;
    }
    s->len = 0;
    return WA_ENOTFOUND;
}

wa_err_t wa_pub_split_next(wa_pub_split_t *s, wa_event_t *ev)
{
    return split_next(s, ev, false);
}

wa_err_t wa_pub_split_next_frame(wa_pub_split_t *s, wa_event_t *ev)
{
    return split_next(s, ev, true);
}

/* ---------------------------------------------------------- the publisher */

/* A queued event, encoded in the single form. */
typedef struct ent {
    char *buf;
    size_t len;
    bool alone; /* never in a batch: raw newline in its JSON, or too big */
} ent_t;

struct wa_publisher {
    nng_socket sock;
    pthread_mutex_t mu;
    pthread_cond_t work; /* something queued, or closing */
    pthread_cond_t done; /* a turn finished (for flush) */
    pthread_t thread;
    size_t queue_max, queue_bytes, batch_max, batch_bytes;

    /* Under mu. */
    ent_t *q; /* ring of queue_max */
    size_t head, count, bytes;
    uint64_t in, out; /* events queued and finished with, ever */
    bool waiting;     /* the thread sleeps on work */
    bool closing;
    int flushers; /* threads in wa_publisher_flush() */
    wa_publisher_stats_t st;

    /* The thread's own. */
    ent_t *take; /* batch_max */
};

/* One nng message of ents[0..n): the single form for one event, the batch
 * form for several. */
static wa_err_t send_ents(wa_publisher_t *p, const ent_t *ents, size_t n)
{
    size_t total = n == 1 ? ents[0].len : 0;
    nng_msg *m;
    char *d;
    int rv;

    for (size_t i = 0; n > 1 && i < n; i++)
        total += ents[i].len + 1;
    if ((rv = nng_msg_alloc(&m, total)) != 0)
        return wa_bus_err(rv);
    d = nng_msg_body(m);
    if (n == 1) {
        memcpy(d, ents[0].buf, ents[0].len);
    } else {
        for (size_t i = 0; i < n; i++) {
            *d++ = '\n';
            memcpy(d, ents[i].buf, ents[i].len);
            d += ents[i].len;
        }
    }
    if ((rv = nng_sendmsg(p->sock, m, 0)) != 0) { /* PUB never blocks */
        nng_msg_free(m);
        return wa_bus_err(rv);
    }
    return WA_OK;
}

/* Move the next message's events from the queue into p->take. Under mu,
 * with count > 0. The first event is always taken; the rest while they fit
 * a batch. */
static size_t take_locked(wa_publisher_t *p)
{
    size_t n = 0, bytes = 0;

    while (p->count > 0 && n < p->batch_max) {
        ent_t *e = &p->q[p->head];

        if (n > 0 && (e->alone || p->take[0].alone ||
                      bytes + e->len + 1 > p->batch_bytes))
            break;
        bytes += e->len + 1;
        p->take[n++] = *e;
        p->bytes -= e->len;
        p->head = (p->head + 1) % p->queue_max;
        p->count--;
    }
    return n;
}

static void *publisher_main(void *arg)
{
    wa_publisher_t *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        size_t n;
        wa_err_t rv;

        while (p->count == 0 && !p->closing) {
            p->waiting = true;
            pthread_cond_wait(&p->work, &p->mu);
            p->waiting = false;
        }
        if (p->count == 0)
            break; /* closing, and everything was sent */
        n = take_locked(p);
        pthread_mutex_unlock(&p->mu);

        rv = send_ents(p, p->take, n);
        for (size_t i = 0; i < n; i++)
            free(p->take[i].buf);

        pthread_mutex_lock(&p->mu);
        if (rv == WA_OK) {
            p->st.sent += n;
            p->st.messages++;
            if (n > 1)
                p->st.batches++;
        } else {
            p->st.failed += n;
            p->st.last_err = rv;
        }
        p->out += n;
        if (p->flushers > 0)
            pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

wa_err_t wa_publisher_new(nng_socket pub, const wa_publisher_opts_t *opts,
                          wa_publisher_t **out)
{
    const wa_publisher_opts_t none = {0};
    wa_publisher_t *p = NULL;
    bool mu = false, work = false, done = false;
    wa_err_t rv = WA_ENOMEM;

    if (out == NULL)
        return WA_EINVAL;
    if (opts == NULL)
        opts = &none;
    if (opts->batch_max > WA_PUB_BATCH_MAX ||
        opts->batch_bytes > WA_ENVELOPE_MAX)
        return WA_EINVAL;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return WA_ENOMEM;
    p->sock = pub;
    p->queue_max = opts->queue_max ? opts->queue_max : QUEUE_MAX_DEFAULT;
    p->queue_bytes =
        opts->queue_bytes ? opts->queue_bytes : QUEUE_BYTES_DEFAULT;
    p->batch_max = opts->batch_max ? opts->batch_max : WA_PUB_BATCH_MAX;
    p->batch_bytes = opts->batch_bytes ? opts->batch_bytes : WA_PUB_BATCH_BYTES;
    if ((p->q = calloc(p->queue_max, sizeof(*p->q))) == NULL ||
        (p->take = calloc(p->batch_max, sizeof(*p->take))) == NULL)
        goto fail;
    rv = WA_EINTERNAL;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        goto fail;
    mu = true;
    if (pthread_cond_init(&p->work, NULL) != 0)
        goto fail;
    work = true;
    if (pthread_cond_init(&p->done, NULL) != 0)
        goto fail;
    done = true;
    if (pthread_create(&p->thread, NULL, publisher_main, p) != 0)
        goto fail;
    (void)pthread_setname_np(p->thread, "wa-pub");
    *out = p;
    return WA_OK;

fail:
    if (done)
        pthread_cond_destroy(&p->done);
    if (work)
        pthread_cond_destroy(&p->work);
    if (mu)
        pthread_mutex_destroy(&p->mu);
    free(p->take);
    free(p->q);
    free(p);
    return rv;
}

wa_err_t wa_publisher_publish(wa_publisher_t *p, const wa_event_t *ev)
{
    char *buf = NULL;
    size_t len;
    bool alone;
    wa_err_t rv;

    if (p == NULL || ev == NULL)
        return WA_EINVAL;
    /* Encoding is the caller's cost, outside the lock: the thread only
     * copies bytes into messages. */
    if ((rv = wa_event_encode(ev, &buf, &len)) != WA_OK)
        return rv;
    alone = !batchable(buf, len) || len + 1 > p->batch_bytes;

    pthread_mutex_lock(&p->mu);
    if (p->closing) {
        rv = WA_ECLOSED;
    } else if (p->count == p->queue_max || len > p->queue_bytes - p->bytes) {
        p->st.dropped++;
        rv = WA_EFULL;
    } else {
        ent_t *e = &p->q[(p->head + p->count) % p->queue_max];

        e->buf = buf;
        e->len = len;
        e->alone = alone;
        buf = NULL;
        p->count++;
        p->bytes += len;
        p->in++;
        p->st.queued++;
        /* Under load the thread is busy sending and takes this without
         * being woken: no system call per event. */
        if (p->waiting)
            pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->mu);
    free(buf);
    return rv;
}

void wa_publisher_flush(wa_publisher_t *p)
{
    uint64_t target;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    target = p->in;
    p->flushers++;
    while (p->out < target)
        pthread_cond_wait(&p->done, &p->mu);
    p->flushers--;
    pthread_mutex_unlock(&p->mu);
}

void wa_publisher_stats(wa_publisher_t *p, wa_publisher_stats_t *st)
{
    if (st == NULL)
        return;
    memset(st, 0, sizeof(*st));
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    *st = p->st;
    pthread_mutex_unlock(&p->mu);
}

void wa_publisher_free(wa_publisher_t *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    /* The thread sends everything queued before it returns. */
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p->take);
    free(p->q);
    free(p);
}
