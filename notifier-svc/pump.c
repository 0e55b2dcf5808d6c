/*
 * pump.c - the event pump: drains the SUB socket in batches and hands each
 * batch to the hub.
 *
 * Why not wa_bus_recv_event() per event: nng_recvmsg() allocates, arms and
 * frees an aio on every call (in nng 1.5 that is a getrandom() system call,
 * a calloc and a timer-list insertion per message), and the writers would
 * be woken once per event. Here one aio lives as long as the pump; only
 * the first receive of a batch waits (the socket's receive timeout), the
 * rest take what nng already holds without waiting; the whole batch is
 * decoded first and then relayed under one hub lock and one writer-pool
 * lock, with the writers' wake-ups deferred to its end.
 *
 * A message is either one event (DESIGN §6) or a batch of them from a
 * wa_publisher_t (pub.h); both are read with proto's wa_pub_split_*, which
 * decodes every record with wa_event_decode_frame: the checks of
 * wa_event_decode, and the WebSocket frame written from the record's text
 * (its data copied, never parsed into a tree and printed again: those two
 * were a fifth of the notifier's CPU). A batch may hold more events
 * than fit this pump's array: the rest stay in the held message and start
 * the next run, so nothing is dropped and NT_PUMP_BATCH still bounds a
 * relay.
 */
#include <stdlib.h>
#include <time.h>

#include "notifier.h"
#include "wa/log.h"
#include "wa/pub.h"

struct nt_pump {
    nng_socket sub;
    nng_aio *aio;
    nng_duration wait_ms; /* for the first event of a batch */
    nt_hub_t *hub;
    nt_writers_t *writers;
    nt_metrics_t *m;
    nng_msg *msg;         /* the message being split, or NULL */
    wa_pub_split_t split; /* its reader */
    wa_event_t evs[NT_PUMP_BATCH];
    wa_err_t res[NT_PUMP_BATCH];
};

wa_err_t nt_pump_new(nng_socket sub, int wait_ms, nt_hub_t *hub,
                     nt_writers_t *writers, nt_metrics_t *metrics,
                     nt_pump_t **out)
{
    nt_pump_t *p;
    int rv;

    if (hub == NULL || writers == NULL || metrics == NULL || out == NULL ||
        wait_ms <= 0)
        return WA_EINVAL;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return WA_ENOMEM;
    if ((rv = nng_aio_alloc(&p->aio, NULL, NULL)) != 0) {
        free(p);
        return wa_bus_err(rv);
    }
    p->sub = sub;
    p->wait_ms = wait_ms;
    p->hub = hub;
    p->writers = writers;
    p->m = metrics;
    *out = p;
    return WA_OK;
}

void nt_pump_free(nt_pump_t *p)
{
    if (p == NULL)
        return;
    if (p->msg != NULL)
        nng_msg_free(p->msg);
    nng_aio_free(p->aio);
    free(p);
}

/* One receive on the pump's aio, waiting at most timeout. 0 with *out set
 * (caller frees), or nng's error: NNG_ETIMEDOUT when nothing came. */
static int recv_msg(nt_pump_t *p, nng_duration timeout, nng_msg **out)
{
    int rv;

    nng_aio_set_timeout(p->aio, timeout);
    nng_recv_aio(p->sub, p->aio);
    nng_aio_wait(p->aio);
    if ((rv = nng_aio_result(p->aio)) != 0)
        return rv;
    *out = nng_aio_get_msg(p->aio);
    nng_aio_set_msg(p->aio, NULL);
    return 0;
}

/*
 * After waking for an event that found the queue empty, let the next ones
 * gather for NT_PUMP_LINGER_US before relaying. Without it, a moderate
 * stream (each event arriving after the last was relayed) costs a wake-up
 * of the pump and of a writer per event, the most expensive thing here;
 * with it, one of each per linger. Under load the queue is never empty and
 * the pump never lingers.
 */
static void linger(void)
{
    const struct timespec ts = {.tv_nsec = NT_PUMP_LINGER_US * 1000L};

    nanosleep(&ts, NULL);
}

/* Done with the held message: count what it held that was malformed. */
static void release_msg(nt_pump_t *p)
{
    if (p->split.bad > 0) {
        nt_metrics_add(&p->m->events_malformed, p->split.bad);
        wa_warn(NULL, "dropped %zu malformed event(s) of %zu: %s", p->split.bad,
                p->split.records, wa_strerror(p->split.err));
    }
    nng_msg_free(p->msg);
    p->msg = NULL;
}

/* Take events from the held message into p->evs[*n..] while the batch has
 * room; releases the message once it is read to the end. */
static void split_msg(nt_pump_t *p, size_t *n, size_t *bytes)
{
    while (*n < NT_PUMP_BATCH && *bytes < NT_PUMP_BATCH_BYTES) {
        if (wa_pub_split_next_frame(&p->split, &p->evs[*n]) != WA_OK) {
            release_msg(p);
            return;
        }
        *bytes += p->split.len;
        (*n)++;
    }
}

/*
 * Receive up to NT_PUMP_BATCH well-formed events (and about
 * NT_PUMP_BATCH_BYTES) into p->evs: first what is left of a held batch
 * message, then new messages, the first waiting up to wait_ms if none is
 * queued and nothing was held, the rest only if nng holds them already. (A
 * receive with a timeout goes on nng's timer list and wakes its expiry
 * thread, so under load, when something is always queued, the pump never
 * arms one.) Malformed events are counted and skipped. Returns how many
 * were decoded.
 */
static size_t recv_batch(nt_pump_t *p)
{
    size_t n = 0, bytes = 0;

    if (p->msg != NULL)
        split_msg(p, &n, &bytes);
    for (size_t tries = 0; tries < NT_PUMP_BATCH && n < NT_PUMP_BATCH &&
                           bytes < NT_PUMP_BATCH_BYTES;
         tries++) {
        nng_msg *msg;
        wa_err_t rv;
        int nrv = recv_msg(p, NNG_DURATION_ZERO, &msg);

        if (nrv == NNG_ETIMEDOUT && tries == 0 && n == 0 &&
            (nrv = recv_msg(p, p->wait_ms, &msg)) == 0)
            linger();
        if (nrv != 0)
            break; /* nothing (more) queued, or the socket closed */
        rv = wa_pub_split_begin(&p->split, nng_msg_body(msg), nng_msg_len(msg));
        if (rv != WA_OK) {
            nng_msg_free(msg);
            nt_metrics_add(&p->m->events_malformed, 1);
            wa_warn(NULL, "dropped a malformed event message: %s",
                    wa_strerror(rv));
            continue;
        }
        p->msg = msg;
        split_msg(p, &n, &bytes);
    }
    return n;
}

size_t nt_pump_run_once(nt_pump_t *p)
{
    size_t n = recv_batch(p);

    if (n == 0)
        return 0;
    nt_metrics_add(&p->m->events_in, n);
    nt_writers_defer(p->writers, true);
    nt_hub_publish_many(p->hub, p->evs, n, p->res);
    nt_writers_defer(p->writers, false);
    for (size_t i = 0; i < n; i++) {
        if (p->res[i] != WA_OK)
            wa_warn(NULL, "could not relay a %s event of user %s: %s",
                    wa_event_type_name(p->evs[i].type), p->evs[i].user,
                    wa_strerror(p->res[i]));
        wa_event_clear(&p->evs[i]);
    }
    return n;
}
