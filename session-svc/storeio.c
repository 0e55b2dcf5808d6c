/*
 * storeio.c - the threads that write session transitions to store-svc and
 * then publish their events, so that nothing a client sees on the event
 * stream is missing from the database.
 *
 * Each user hashes to one worker; a worker runs its queue in order, so a
 * user's transitions are written and published in the order they happened
 * while different users proceed in parallel. Store calls are blocking
 * (wa_bus_call), which is why they are here and never on the loop.
 *
 * Events go out through one wa_publisher_t (proto's pub.h): its single
 * thread and FIFO queue keep each user's events in the order the worker
 * published them, hence in seq order, and under load it sends many events
 * per nng message instead of one.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "session.h"
#include "wa/hash.h"
#include "wa/log.h"
#include "wa/pub.h"
#include "wa/service.h"

#define STOREIO_MAX_THREADS 16
#define STOREIO_BACKLOG_MAX 20000
/* Store calls (or batches of them) on the wire at once. */
#define STOREIO_INFLIGHT 2

typedef struct worker {
    pthread_t thread;
    storeio_t *io;
    storeio_job_t *head, *tail;
    bool started;
} worker_t;

struct storeio {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* work queued, or closing */
    pthread_cond_t idle; /* a job finished */
    nng_socket store;
    wa_bus_batcher_t *batch; /* every store call: a burst of transitions
                                shares bus.batch messages */
    wa_publisher_t *pub;     /* on the events PUB socket */
    int call_timeout_ms;
    int retry_ms;
    int nthreads;
    size_t backlog;       /* queued + running */
    bool closing;         /* no new jobs */
    bool abort;           /* drop queued jobs, stop retrying */
    atomic_bool dropping; /* the publisher refused the last event */
    worker_t w[STOREIO_MAX_THREADS];
};

static void job_free(storeio_job_t *j)
{
    if (j->done != NULL)
        j->done(j->done_arg);
    cJSON_Delete(j->upsert);
    cJSON_Delete(j->record);
    cJSON_Delete(j->publish);
    free(j);
}

static bool aborting(storeio_t *io)
{
    bool a;

    pthread_mutex_lock(&io->mu);
    a = io->abort;
    pthread_mutex_unlock(&io->mu);
    return a;
}

static bool transport_err(wa_err_t e)
{
    return e == WA_ETIMEDOUT || e == WA_ECLOSED || e == WA_EUNAVAIL;
}

/* One store call, retried with the same rid while the failure is in
 * transport and time is left. */
static wa_err_t call(storeio_t *io, wa_op_t op, const storeio_job_t *j,
                     const cJSON *args, wa_reply_t *rep)
{
    long long until = wa_now_ms() + io->retry_ms;
    int pause = 100;
    wa_err_t err;

    for (;;) {
        err = wa_bus_batcher_call(io->batch, op, j->user, j->rid, args,
                                  io->call_timeout_ms, rep);
        if (!transport_err(err) || wa_now_ms() + pause >= until || aborting(io))
            return err;
        struct timespec ts = {pause / 1000, (long)(pause % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (pause < 2000)
            pause *= 2;
    }
}

static void run(storeio_t *io, storeio_job_t *j)
{
    const char *type = wa_event_type_name(j->type);
    wa_reply_t rep;
    wa_event_t ev;
    const cJSON *seq, *ts;
    cJSON *args;
    wa_err_t err;

    if (j->upsert != NULL) {
        err = call(io, WA_OP_SESSION_UPSERT, j, j->upsert, &rep);
        if (err != WA_OK) {
            wa_error(j->rid, "user %s: session.upsert failed: %s%s%s", j->user,
                     wa_err_code(err), rep.message[0] ? ": " : "", rep.message);
            wa_reply_clear(&rep);
            return; /* not stored: not published either */
        }
        wa_reply_clear(&rep);
    }
    if (j->record == NULL)
        return;
    if ((args = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(args, "type", type) == NULL) {
        cJSON_Delete(args);
        return;
    }
    cJSON_AddItemReferenceToObject(args, "data", j->record);
    err = call(io, WA_OP_EVENT_RECORD, j, args, &rep);
    cJSON_Delete(args);
    if (err != WA_OK) {
        wa_error(j->rid, "user %s: event.record %s failed: %s%s%s", j->user,
                 type, wa_err_code(err), rep.message[0] ? ": " : "",
                 rep.message);
        wa_reply_clear(&rep);
        return;
    }
    seq = cJSON_GetObjectItemCaseSensitive(rep.data, "seq");
    ts = cJSON_GetObjectItemCaseSensitive(rep.data, "timestamp");
    if (!cJSON_IsNumber(seq) || seq->valuedouble < 1 ||
        wa_event_init(&ev, j->user, j->type) != WA_OK) {
        wa_error(j->rid, "user %s: event.record answered without a seq",
                 j->user);
        wa_reply_clear(&rep);
        return;
    }
    ev.seq = (int64_t)seq->valuedouble;
    if (cJSON_IsString(ts) && strlen(ts->valuestring) <= WA_TIMESTAMP_MAX)
        snprintf(ev.timestamp, sizeof(ev.timestamp), "%s", ts->valuestring);
    wa_reply_clear(&rep);
    cJSON_Delete(ev.data);
    if (j->publish != NULL) {
        ev.data = j->publish;
        j->publish = NULL;
    } else {
        ev.data = j->record;
        j->record = NULL;
    }
    err = wa_publisher_publish(io->pub, &ev);
    wa_event_clear(&ev);
    /* A full queue refuses every event until it drains: say so once per
     * episode, not once per event. */
    if (err != WA_OK) {
        if (!atomic_exchange(&io->dropping, true))
            wa_warn(j->rid,
                    "user %s: publish %s failed: %s (further failures are "
                    "not logged until one succeeds)",
                    j->user, type, wa_strerror(err));
    } else if (atomic_load_explicit(&io->dropping, memory_order_relaxed)) {
        atomic_store(&io->dropping, false);
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    storeio_t *io = w->io;
    storeio_job_t *j;

    pthread_mutex_lock(&io->mu);
    for (;;) {
        while (w->head == NULL && !io->closing)
            pthread_cond_wait(&io->cv, &io->mu);
        if (w->head == NULL || io->abort)
            break;
        j = w->head;
        w->head = j->next;
        if (w->head == NULL)
            w->tail = NULL;
        pthread_mutex_unlock(&io->mu);
        run(io, j);
        job_free(j);
        pthread_mutex_lock(&io->mu);
        io->backlog--;
        pthread_cond_broadcast(&io->idle);
    }
    /* Aborted: drop what is left. */
    while ((j = w->head) != NULL) {
        w->head = j->next;
        io->backlog--;
        job_free(j);
    }
    w->tail = NULL;
    pthread_cond_broadcast(&io->idle);
    pthread_mutex_unlock(&io->mu);
    return NULL;
}

wa_err_t storeio__new(nng_socket store, nng_socket events, int threads,
                      int call_timeout_ms, int retry_ms, storeio_t **out)
{
    storeio_t *io;
    wa_err_t rv;
    int i;

    if (out == NULL || threads < 1 || threads > STOREIO_MAX_THREADS ||
        call_timeout_ms <= 0 || retry_ms < 0)
        return WA_EINVAL;
    if ((io = calloc(1, sizeof(*io))) == NULL)
        return WA_ENOMEM;
    pthread_mutex_init(&io->mu, NULL);
    pthread_cond_init(&io->cv, NULL);
    pthread_cond_init(&io->idle, NULL);
    io->store = store;
    io->call_timeout_ms = call_timeout_ms;
    io->retry_ms = retry_ms;
    if ((rv = wa_bus_batcher_new(store, STOREIO_INFLIGHT, &io->batch)) !=
            WA_OK ||
        (rv = wa_publisher_new(events, NULL, &io->pub)) != WA_OK) {
        storeio__free(io, 0);
        return rv;
    }
    io->nthreads = threads;
    for (i = 0; i < threads; i++) {
        io->w[i].io = io;
        if (pthread_create(&io->w[i].thread, NULL, worker_main, &io->w[i]) !=
            0) {
            storeio__free(io, 0);
            return WA_EINTERNAL;
        }
        io->w[i].started = true;
    }
    *out = io;
    return WA_OK;
}

wa_err_t storeio__submit(storeio_t *io, storeio_job_t *job)
{
    worker_t *w;

    if (job == NULL)
        return WA_EINVAL;
    job->next = NULL;
    if (io == NULL) {
        job_free(job);
        return WA_EINVAL;
    }
    pthread_mutex_lock(&io->mu);
    if (io->closing || io->backlog >= STOREIO_BACKLOG_MAX) {
        wa_err_t err = io->closing ? WA_ECLOSED : WA_EFULL;

        pthread_mutex_unlock(&io->mu);
        job_free(job);
        return err;
    }
    w = &io->w[wa_fnv1a(WA_FNV1A_INIT, job->user, strlen(job->user)) %
               (uint64_t)io->nthreads];
    if (w->tail != NULL)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    io->backlog++;
    pthread_cond_broadcast(&io->cv);
    pthread_mutex_unlock(&io->mu);
    return WA_OK;
}

void storeio__barrier(storeio_t *io, const char *user, void (*done)(void *arg),
                      void *arg)
{
    storeio_job_t *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        done(arg);
        return;
    }
    snprintf(j->user, sizeof(j->user), "%s", user);
    j->done = done;
    j->done_arg = arg;
    /* No upsert and no record: run() does nothing, job_free() calls done. */
    (void)storeio__submit(io, j);
}

size_t storeio__backlog(storeio_t *io)
{
    size_t n;

    pthread_mutex_lock(&io->mu);
    n = io->backlog;
    pthread_mutex_unlock(&io->mu);
    return n;
}

void storeio__free(storeio_t *io, int drain_ms)
{
    struct timespec until;
    int i;

    if (io == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += drain_ms / 1000;
    until.tv_nsec += (long)(drain_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&io->mu);
    io->closing = true;
    pthread_cond_broadcast(&io->cv);
    while (io->backlog > 0 &&
           pthread_cond_timedwait(&io->idle, &io->mu, &until) == 0)
        ;
    if (io->backlog > 0)
        wa_warn(NULL, "%zu store writes dropped at shutdown", io->backlog);
    io->abort = true;
    pthread_cond_broadcast(&io->cv);
    pthread_mutex_unlock(&io->mu);
    for (i = 0; i < io->nthreads; i++) {
        if (io->w[i].started)
            pthread_join(io->w[i].thread, NULL);
    }
    /* After the workers: what they published is sent before this returns,
     * while the caller's PUB socket is still open. */
    wa_publisher_free(io->pub);
    wa_bus_batcher_free(io->batch);
    pthread_cond_destroy(&io->idle);
    pthread_cond_destroy(&io->cv);
    pthread_mutex_destroy(&io->mu);
    free(io);
}
