/*
 * outq.c - refcounted WebSocket frames; each connection's bounded send
 * queue; and the writer pool that empties the queues.
 *
 * The pump pushes references and never touches a socket, so it never waits
 * for a client. Workers take a queue with work from a FIFO ready list,
 * write a batch of its frames (small ones coalesced into one write), and
 * put it back at the tail if more is queued, so every connection gets its
 * turn. A busy connection is written at most once per NT_WRITE_EPOCH_MS
 * of its own (see notifier.h): what comes in meanwhile waits on a timing
 * wheel of NT_WRITE_TICK_MS slots, keyed by when its epoch ends, which the
 * monitor empties into the ready list as each slot comes due. A write to a
 * client that stopped reading blocks inside CivetWeb
 * until its write timeout; the monitor sees a worker stuck that long
 * (NT_WRITER_STALL_MS), starts a replacement, and the stuck one retires
 * once its write returns. Meanwhile that client's queue overflows and it is
 * closed with 1008: it can delay no one.
 *
 * Locking: one mutex (the pool's) guards the ready list, the workers and
 * every queue's state. It is never held across a write.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notifier.h"

#define QUEUE_INITIAL_CAP 8
#define WRITER_BATCH 64       /* frames taken per turn */
#define WRITER_COALESCE 16384 /* small frames are copied into one write */
#define WRITER_STACK (256 * 1024)
/* The timing wheel: more slots than the ticks an epoch can span, so a slot
 * never holds two due times that are both still ahead. */
#define EPOCH_NS ((int64_t)NT_WRITE_EPOCH_MS * 1000000)
#define TICK_NS ((int64_t)NT_WRITE_TICK_MS * 1000000)
#define WHEEL_SLOTS 16
/* Queues released from the wheel per worker woken for them. */
#define RELEASE_PER_WAKE WRITER_BATCH

_Static_assert(NT_WRITE_EPOCH_MS / NT_WRITE_TICK_MS + 1 < WHEEL_SLOTS,
               "the wheel must span a write epoch");

typedef struct worker {
    nt_writers_t *pool;
    pthread_t thread;
    int64_t busy_since; /* CLOCK_MONOTONIC ns inside a write, 0 outside */
    bool stuck;         /* replaced; retires when its write returns */
    bool exited;        /* joinable */
    struct worker *next;
} worker_t;

struct nt_writers {
    pthread_mutex_t mu;
    pthread_cond_t work;    /* workers wait for the ready list */
    pthread_cond_t done;    /* nt_outq_stop waits for a worker to let go */
    nt_outq_t *head, *tail; /* ready list: queues with something to write */
    /* The wheel: slot t % WHEEL_SLOTS lists the queues whose epoch ends at
     * tick t; slots up to `released` have been moved to the ready list. */
    nt_outq_t *whead[WHEEL_SLOTS], *wtail[WHEEL_SLOTS];
    uint64_t released;
    int64_t start_ns; /* tick 0 */
    uint64_t tick;    /* atomic: NT_WRITE_TICK_MS ticks since start */
    size_t waiting;   /* atomic (written under mu): queues on the wheel */
    worker_t *workers;
    size_t want;    /* workers that should be unstuck */
    size_t active;  /* unstuck workers */
    size_t alive;   /* worker threads not yet joined */
    size_t idle;    /* workers waiting on `work` */
    size_t wakes;   /* signals sent to idle workers not yet awake */
    bool deferred;  /* the pump is mid-burst: wake workers at its end */
    bool stopping;  /* written under mu, atomically (the monitor reads) */
    bool attention; /* atomic: the monitor must look under the lock */
    pthread_t monitor;
    nt_metrics_t *metrics;
};

struct nt_outq {
    nt_writers_t *pool;
    nt_outq_t *rnext, *rprev; /* ready list or wheel slot links */
    nt_frame_t **ring;        /* circular, cap entries */
    size_t cap, head, count, bytes;
    size_t max_frames, max_bytes;
    bool closing;       /* no more frames accepted */
    bool close_pending; /* a close frame is still to be written */
    bool finished;      /* a close frame went out, or a write failed */
    bool ready;         /* on the ready list */
    bool waiting;       /* on the wheel, in slot due % WHEEL_SLOTS */
    uint64_t due;       /* the first tick an epoch after its last data
                           write (0 before any): it waits until then */
    bool running;       /* a worker is writing it */
    bool started, stopped;
    uint16_t close_code;
    char close_reason[NT_CLOSE_REASON_MAX + 1];
    nt_sink_fn sink;
    void *arg;
};

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The wheel tick of a CLOCK_MONOTONIC time. */
static uint64_t tick_of(const nt_writers_t *w, int64_t now)
{
    return (uint64_t)((now - w->start_ns) / TICK_NS);
}

/* ---- frames ---------------------------------------------------------------
 */

static size_t header_len(size_t payload)
{
    return payload < 126 ? 2 : payload <= 0xFFFF ? 4 : 10;
}

static void put_header(unsigned char *h, unsigned char opcode, size_t len)
{
    h[0] = (unsigned char)(0x80u | opcode); /* FIN, unmasked (server) */
    if (len < 126) {
        h[1] = (unsigned char)len;
    } else if (len <= 0xFFFF) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
}

wa_err_t nt_frame_new_text(const char *payload, size_t len, int64_t seq,
                           nt_frame_t **out)
{
    size_t hl = header_len(len);
    nt_frame_t *f;

    if (out == NULL || (payload == NULL && len > 0))
        return WA_EINVAL;
    if (len > SIZE_MAX - sizeof(*f) - hl)
        return WA_ETOOBIG;
    if ((f = malloc(sizeof(*f) + hl + len)) == NULL)
        return WA_ENOMEM;
    f->refs = 1;
    f->seq = seq;
    f->len = hl + len;
    f->payload_off = hl;
    put_header(f->data, MG_WEBSOCKET_OPCODE_TEXT, len);
    if (len > 0)
        memcpy(f->data + hl, payload, len);
    *out = f;
    return WA_OK;
}

nt_frame_t *nt_frame_ref(nt_frame_t *f)
{
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
    return f;
}

void nt_frame_unref(nt_frame_t *f)
{
    if (f != NULL && __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(f);
}

size_t nt_close_frame(uint16_t code, const char *reason, unsigned char *buf,
                      size_t buflen)
{
    size_t rlen =
        reason != NULL ? wa_utf8_prefix(reason, NT_CLOSE_REASON_MAX) : 0;

    if (buflen < 4 + rlen)
        return 0;
    put_header(buf, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, 2 + rlen);
    buf[2] = (unsigned char)(code >> 8);
    buf[3] = (unsigned char)code;
    if (rlen > 0)
        memcpy(buf + 4, reason, rlen);
    return 4 + rlen;
}

/* ---- queues (all under pool->mu) ----------------------------------------
 */

nt_outq_t *nt_outq_new(const nt_outq_opts_t *opts)
{
    nt_outq_t *q;

    if (opts == NULL || opts->writers == NULL || opts->max_frames == 0 ||
        opts->max_bytes == 0)
        return NULL;
    if ((q = calloc(1, sizeof(*q))) == NULL)
        return NULL;
    q->pool = opts->writers;
    q->max_frames = opts->max_frames;
    q->max_bytes = opts->max_bytes;
    return q;
}

/* Drop every queued frame. */
static void discard_locked(nt_outq_t *q)
{
    while (q->count > 0) {
        nt_frame_unref(q->ring[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    q->head = 0;
    q->bytes = 0;
}

/* Does q have something a worker should write? */
static bool has_work(const nt_outq_t *q)
{
    return q->started && !q->stopped && !q->finished &&
           (q->count > 0 || q->close_pending);
}

static void list_append(nt_outq_t **head, nt_outq_t **tail, nt_outq_t *q)
{
    q->rnext = NULL;
    q->rprev = *tail;
    if (*tail != NULL)
        (*tail)->rnext = q;
    else
        *head = q;
    *tail = q;
}

static void list_remove(nt_outq_t **head, nt_outq_t **tail, nt_outq_t *q)
{
    if (q->rprev != NULL)
        q->rprev->rnext = q->rnext;
    else
        *head = q->rnext;
    if (q->rnext != NULL)
        q->rnext->rprev = q->rprev;
    else
        *tail = q->rprev;
    q->rnext = q->rprev = NULL;
}

/* Take q off whichever list it is on (O(1)). */
static void unready_locked(nt_outq_t *q)
{
    nt_writers_t *w = q->pool;

    if (q->ready) {
        list_remove(&w->head, &w->tail, q);
    } else if (q->waiting) {
        size_t slot = q->due % WHEEL_SLOTS;

        list_remove(&w->whead[slot], &w->wtail[slot], q);
        __atomic_store_n(&w->waiting, w->waiting - 1, __ATOMIC_RELAXED);
    }
    q->ready = q->waiting = false;
}

/* Is what q holds less than one full write? Only then is it worth waiting
 * for more: a full write goes out at once, so coalescing never slows a
 * client that could take more. */
static bool below_one_write(const nt_outq_t *q)
{
    return q->count < WRITER_BATCH && q->bytes < WRITER_COALESCE;
}

/* Count a signal for one sleeping worker, if one sleeps unsignalled: one
 * signal per sleeping worker is enough, so a fan-out to a thousand queues
 * wakes the pool, not a thousand times. */
static bool wake_one_locked(nt_writers_t *w)
{
    if (w->idle <= w->wakes)
        return false;
    w->wakes++;
    return true;
}

/*
 * Put q on the ready list if it has work and is not listed or being
 * written. Write coalescing: a queue written less than an epoch ago waits
 * on the wheel until that epoch ends, so a busy connection gets one write
 * per epoch carrying everything queued meanwhile, while a quiet one is
 * written at once. Each queue's epoch runs from its own last write, so
 * busy connections fall due spread over time, not all at one instant. A
 * close, or a full write's worth of frames, goes at once. While the pump
 * defers wake-ups, only a queue holding a full write wakes a worker.
 * Returns whether a sleeping worker should be woken.
 */
static bool enqueue_locked(nt_outq_t *q, bool coalesce)
{
    nt_writers_t *w = q->pool;
    uint64_t now = __atomic_load_n(&w->tick, __ATOMIC_RELAXED);
    bool delay;

    if (q->ready || q->running || !has_work(q))
        return false;
    delay = coalesce && !q->close_pending && below_one_write(q) && q->due > now;
    if (q->waiting) {
        if (delay)
            return false;
        unready_locked(q); /* promoted: a close or a full write */
    }
    if (delay) {
        size_t slot;

        q->waiting = true;
        slot = q->due % WHEEL_SLOTS;
        list_append(&w->whead[slot], &w->wtail[slot], q);
        __atomic_store_n(&w->waiting, w->waiting + 1, __ATOMIC_RELAXED);
        return false;
    }
    q->ready = true;
    list_append(&w->head, &w->tail, q);
    return (!w->deferred || !below_one_write(q)) && wake_one_locked(w);
}

static bool schedule_locked(nt_outq_t *q)
{
    return enqueue_locked(q, true);
}

static void request_close_locked(nt_outq_t *q, uint16_t code,
                                 const char *reason)
{
    size_t n = wa_utf8_prefix(reason, NT_CLOSE_REASON_MAX);

    q->closing = true;
    q->close_pending = true;
    q->close_code = code;
    memcpy(q->close_reason, reason, n);
    q->close_reason[n] = '\0';
}

/* Make room for one more frame. */
static wa_err_t grow_locked(nt_outq_t *q)
{
    size_t cap = q->cap == 0 ? QUEUE_INITIAL_CAP : q->cap * 2;
    nt_frame_t **ring;

    if (cap > q->max_frames)
        cap = q->max_frames;
    if ((ring = malloc(cap * sizeof(*ring))) == NULL)
        return WA_ENOMEM;
    for (size_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    return WA_OK;
}

/* Queue f to q. Returns what nt_outq_push returns; *wake is set when a
 * sleeping worker should be signalled. */
static wa_err_t push_locked(nt_outq_t *q, nt_frame_t *f, bool *wake)
{
    wa_err_t rv = WA_OK;

    if (q->closing)
        return WA_ECLOSED;
    if (q->count + 1 > q->max_frames ||
        (q->count > 0 && f->len > q->max_bytes - q->bytes)) {
        /* A client that cannot keep up is dropped, never waited for. */
        discard_locked(q);
        request_close_locked(q, NT_CLOSE_POLICY,
                             "send queue overflow: client too slow");
        rv = WA_EFULL;
    } else if (q->count == q->cap && grow_locked(q) != WA_OK) {
        discard_locked(q);
        request_close_locked(q, NT_CLOSE_INTERNAL, "out of memory");
        rv = WA_EFULL;
    } else {
        q->ring[(q->head + q->count) % q->cap] = nt_frame_ref(f);
        q->count++;
        q->bytes += f->len;
    }
    if (schedule_locked(q))
        *wake = true;
    else if (q->ready && q->pool->deferred && !below_one_write(q) &&
             wake_one_locked(q->pool))
        *wake = true; /* a big burst is not held back by the deferral */
    return rv;
}

wa_err_t nt_outq_push(nt_outq_t *q, nt_frame_t *f)
{
    wa_err_t rv;

    nt_outq_push_each(&q, &f, 1, &rv);
    return rv;
}

void nt_outq_push_each(nt_outq_t *const *qs, nt_frame_t *const *fs, size_t n,
                       wa_err_t *results)
{
    nt_writers_t *w;
    size_t wakes = 0;

    if (n == 0)
        return;
    w = qs[0]->pool;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n; i++) {
        bool wake = false;

        results[i] = push_locked(qs[i], fs[i], &wake);
        wakes += wake;
    }
    pthread_mutex_unlock(&w->mu);
    /* Signalled after unlocking, so a worker does not wake only to wait
     * for the mutex. */
    while (wakes-- > 0)
        pthread_cond_signal(&w->work);
}

void nt_outq_close(nt_outq_t *q, uint16_t code, const char *reason,
                   bool discard)
{
    nt_writers_t *w = q->pool;
    bool wake = false;

    pthread_mutex_lock(&w->mu);
    if (!q->closing) {
        if (discard)
            discard_locked(q);
        request_close_locked(q, code, reason != NULL ? reason : "");
        wake = schedule_locked(q);
    }
    pthread_mutex_unlock(&w->mu);
    if (wake)
        pthread_cond_signal(&w->work);
}

bool nt_outq_closing(nt_outq_t *q)
{
    bool closing;

    pthread_mutex_lock(&q->pool->mu);
    closing = q->closing;
    pthread_mutex_unlock(&q->pool->mu);
    return closing;
}

size_t nt_outq_frames(nt_outq_t *q)
{
    size_t n;

    pthread_mutex_lock(&q->pool->mu);
    n = q->count;
    pthread_mutex_unlock(&q->pool->mu);
    return n;
}

size_t nt_outq_bytes(nt_outq_t *q)
{
    size_t n;

    pthread_mutex_lock(&q->pool->mu);
    n = q->bytes;
    pthread_mutex_unlock(&q->pool->mu);
    return n;
}

wa_err_t nt_outq_start(nt_outq_t *q, nt_sink_fn sink, void *arg)
{
    nt_writers_t *w;
    bool wake;

    if (q == NULL || sink == NULL)
        return WA_EINVAL;
    w = q->pool;
    pthread_mutex_lock(&w->mu);
    if (q->started) {
        pthread_mutex_unlock(&w->mu);
        return WA_EINVAL;
    }
    q->sink = sink;
    q->arg = arg;
    q->started = true;
    wake = schedule_locked(q);
    pthread_mutex_unlock(&w->mu);
    if (wake)
        pthread_cond_signal(&w->work);
    return WA_OK;
}

void nt_outq_stop(nt_outq_t *q)
{
    unsigned char frame[4 + NT_CLOSE_REASON_MAX];
    nt_writers_t *w;
    size_t len = 0;

    if (q == NULL)
        return;
    w = q->pool;
    pthread_mutex_lock(&w->mu);
    if (q->stopped || !q->started) {
        q->stopped = true;
        pthread_mutex_unlock(&w->mu);
        return;
    }
    q->stopped = true;
    unready_locked(q);
    while (q->running)
        pthread_cond_wait(&w->done, &w->mu);
    if (q->close_pending && !q->finished) {
        len = nt_close_frame(q->close_code, q->close_reason, frame,
                             sizeof(frame));
        q->close_pending = false;
        q->finished = true;
    }
    q->closing = true;
    discard_locked(q);
    pthread_mutex_unlock(&w->mu);
    /* No worker holds q any more: the last word is ours to write. */
    if (len > 0)
        (void)q->sink(q->arg, frame, len);
}

void nt_outq_free(nt_outq_t *q)
{
    if (q == NULL)
        return;
    nt_outq_stop(q);
    discard_locked(q); /* never started: nothing else holds it */
    free(q->ring);
    free(q);
}

/* ---- the pool -------------------------------------------------------------
 */

/* Write frames[0..n): small ones are gathered into one buffer so that a
 * burst costs one send(), large ones go out directly. 0 or -1. */
static int write_batch(nt_outq_t *q, nt_frame_t **frames, size_t n)
{
    unsigned char buf[WRITER_COALESCE];
    size_t used = 0;

    for (size_t i = 0; i < n; i++) {
        nt_frame_t *f = frames[i];

        if (f->len > sizeof(buf) - used && used > 0) {
            if (q->sink(q->arg, buf, used) != 0)
                return -1;
            used = 0;
        }
        if (f->len >= sizeof(buf)) {
            if (q->sink(q->arg, f->data, f->len) != 0)
                return -1;
            continue;
        }
        memcpy(buf + used, f->data, f->len);
        used += f->len;
    }
    if (used > 0 && q->sink(q->arg, buf, used) != 0)
        return -1;
    return 0;
}

/* One turn on q: a batch of frames, or the close frame when nothing else
 * is left. Called and returns with pool->mu held; drops it to write. */
static void run_turn(worker_t *me, nt_outq_t *q)
{
    nt_writers_t *w = me->pool;
    nt_frame_t *batch[WRITER_BATCH];
    unsigned char frame[4 + NT_CLOSE_REASON_MAX];
    size_t n = 0, bytes = 0, close_len = 0;
    int64_t now = mono_ns();
    int rv = 0;

    while (n < WRITER_BATCH && q->count > 0) {
        batch[n] = q->ring[q->head];
        bytes += batch[n]->len;
        q->head = (q->head + 1) % q->cap;
        q->count--;
        n++;
    }
    q->bytes -= bytes;
    if (n == 0 && q->close_pending) {
        close_len = nt_close_frame(q->close_code, q->close_reason, frame,
                                   sizeof(frame));
        q->close_pending = false;
        q->finished = true; /* nothing follows a close frame */
    }
    /* From the write's own time, not the monitor's last tick, which may
     * lag: the tick nearest to an epoch after this write, so writes are
     * an epoch apart on average, give or take half a tick. */
    if (n > 0)
        q->due = tick_of(w, now + EPOCH_NS + TICK_NS / 2);
    q->running = true;
    pthread_mutex_unlock(&w->mu);

    __atomic_store_n(&me->busy_since, now, __ATOMIC_RELAXED);
    if (n > 0)
        rv = write_batch(q, batch, n);
    else if (close_len > 0)
        (void)q->sink(q->arg, frame, close_len);
    __atomic_store_n(&me->busy_since, 0, __ATOMIC_RELAXED);
    for (size_t i = 0; i < n; i++)
        nt_frame_unref(batch[i]);
    if (w->metrics != NULL && n > 0 && rv == 0) {
        nt_metrics_add(&w->metrics->frames_out, n);
        nt_metrics_add(&w->metrics->bytes_out, bytes);
    }

    pthread_mutex_lock(&w->mu);
    if (rv != 0) {
        /* The socket is broken or timed out: nothing more can go out, not
         * even a close frame. */
        if (w->metrics != NULL && !q->closing)
            nt_metrics_add(&w->metrics->drops[NT_DROP_WRITE], 1);
        q->closing = true;
        q->close_pending = false;
        q->finished = true;
        discard_locked(q);
    }
    q->running = false;
    if (q->stopped)
        pthread_cond_broadcast(&w->done);
    else if (enqueue_locked(q, n < WRITER_BATCH))
        /* Back to the tail (others go first), at once if this turn left
         * a backlog, else coalescing what came in during the write. */
        pthread_cond_signal(&w->work);
}

static void *worker_main(void *arg)
{
    worker_t *me = arg;
    nt_writers_t *w = me->pool;

    (void)pthread_setname_np(pthread_self(), "nt-writer");
    pthread_mutex_lock(&w->mu);
    for (;;) {
        nt_outq_t *q;

        while (w->head == NULL && !w->stopping) {
            w->idle++;
            pthread_cond_wait(&w->work, &w->mu);
            w->idle--;
            if (w->wakes > 0)
                w->wakes--;
        }
        if (w->stopping)
            break;
        q = w->head;
        list_remove(&w->head, &w->tail, q);
        q->ready = false;
        run_turn(me, q);
        if (me->stuck) {
            /* Replaced while blocked: rejoin if there is room, else go. */
            if (w->active >= w->want)
                break;
            me->stuck = false;
            w->active++;
        }
    }
    if (!me->stuck)
        w->active--;
    me->exited = true;
    __atomic_store_n(&w->attention, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Start one worker. Caller holds the lock. */
static wa_err_t spawn_locked(nt_writers_t *w)
{
    pthread_attr_t attr;
    worker_t *me;
    int rv;

    if ((me = calloc(1, sizeof(*me))) == NULL)
        return WA_ENOMEM;
    me->pool = w;
    if (pthread_attr_init(&attr) != 0) {
        free(me);
        return WA_EINTERNAL;
    }
    rv = pthread_attr_setstacksize(&attr, WRITER_STACK);
    if (rv == 0)
        rv = pthread_create(&me->thread, &attr, worker_main, me);
    pthread_attr_destroy(&attr);
    if (rv != 0) {
        free(me);
        return WA_EINTERNAL;
    }
    me->next = w->workers;
    w->workers = me;
    w->active++;
    w->alive++;
    return WA_OK;
}

/* Join the workers that exited. Caller holds the lock; it is dropped
 * around each join (the worker has already released it for good). */
static void reap_locked(nt_writers_t *w)
{
    worker_t **p = &w->workers;

    while (*p != NULL) {
        worker_t *me = *p;

        if (!me->exited) {
            p = &me->next;
            continue;
        }
        *p = me->next;
        w->alive--;
        pthread_mutex_unlock(&w->mu);
        pthread_join(me->thread, NULL);
        free(me);
        pthread_mutex_lock(&w->mu);
        p = &w->workers; /* the list may have changed meanwhile */
    }
}

/*
 * Does the monitor have anything to do: a worker inside one write for
 * longer than stall, or a worker exited or missing? Read without the pool
 * lock, which the workers and the pump keep busy: busy_since and
 * attention are atomics, and the worker list is changed by the monitor
 * alone (and by nt_writers_new before it starts).
 */
static bool monitor_due(nt_writers_t *w, int64_t now, int64_t stall)
{
    if (__atomic_load_n(&w->attention, __ATOMIC_ACQUIRE))
        return true;
    for (worker_t *me = w->workers; me != NULL; me = me->next) {
        int64_t since = __atomic_load_n(&me->busy_since, __ATOMIC_RELAXED);

        if (since != 0 && now - since >= stall)
            return true;
    }
    return false;
}

/* Move wheel slot `slot` to the tail of the ready list; returns how many
 * queues it held. Caller holds the lock. */
static size_t release_slot_locked(nt_writers_t *w, size_t slot)
{
    nt_outq_t *first = w->whead[slot];
    size_t n = 0;

    if (first == NULL)
        return 0;
    for (nt_outq_t *q = first; q != NULL; q = q->rnext) {
        q->waiting = false;
        q->ready = true;
        n++;
    }
    first->rprev = w->tail;
    if (w->tail != NULL)
        w->tail->rnext = first;
    else
        w->head = first;
    w->tail = w->wtail[slot];
    w->whead[slot] = w->wtail[slot] = NULL;
    __atomic_store_n(&w->waiting, w->waiting - n, __ATOMIC_RELAXED);
    return n;
}

/* Release every wheel slot due by tick `now`, oldest first. Returns how
 * many sleeping workers to wake: enough for what was released, not every
 * one for a handful of writes. Caller holds the lock. */
static size_t release_due_locked(nt_writers_t *w, uint64_t now)
{
    size_t n = 0, wake = 0;
    uint64_t t = w->released;

    if (now <= t)
        return 0;
    /* A slot holds due times within an epoch of the tick it was filled
     * at, so after a long gap one pass over the wheel covers them all
     * (releasing a queue early costs only a write sooner). */
    if (now - t > WHEEL_SLOTS)
        t = now - WHEEL_SLOTS;
    while (t < now)
        n += release_slot_locked(w, (size_t)(++t % WHEEL_SLOTS));
    w->released = now;
    while (n > wake * RELEASE_PER_WAKE && wake_one_locked(w))
        wake++;
    return wake;
}

static void *monitor_main(void *arg)
{
    nt_writers_t *w = arg;
    const int64_t stall = (int64_t)NT_WRITER_STALL_MS * 1000000;
    const struct timespec tick = {.tv_nsec = NT_WRITE_TICK_MS * 1000000L};

    (void)pthread_setname_np(pthread_self(), "nt-monitor");
    while (!__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE)) {
        size_t wake = 0;
        uint64_t ticks;
        int64_t now;

        nanosleep(&tick, NULL);
        now = mono_ns();
        ticks = tick_of(w, now);
        __atomic_store_n(&w->tick, ticks, __ATOMIC_RELAXED);
        if (__atomic_load_n(&w->waiting, __ATOMIC_RELAXED) == 0 &&
            !monitor_due(w, now, stall))
            continue; /* nothing on the wheel: no need for the lock */
        pthread_mutex_lock(&w->mu);
        wake = release_due_locked(w, ticks);
        for (worker_t *me = w->workers; me != NULL; me = me->next) {
            int64_t since = __atomic_load_n(&me->busy_since, __ATOMIC_RELAXED);

            if (me->stuck || me->exited || since == 0 || now - since < stall)
                continue;
            me->stuck = true;
            w->active--;
            if (w->metrics != NULL)
                nt_metrics_add(&w->metrics->writers_replaced, 1);
        }
        while (w->active < w->want && spawn_locked(w) == WA_OK)
            ;
        reap_locked(w);
        /* Come back next tick while a stuck worker may still retire or
         * the pool is short. */
        __atomic_store_n(&w->attention,
                         w->active < w->want || w->alive > w->want,
                         __ATOMIC_RELEASE);
        pthread_mutex_unlock(&w->mu);
        while (wake-- > 0)
            pthread_cond_signal(&w->work);
    }
    return NULL;
}

wa_err_t nt_writers_new(size_t threads, nt_metrics_t *metrics,
                        nt_writers_t **out)
{
    nt_writers_t *w;
    wa_err_t rv = WA_OK;

    if (threads == 0 || out == NULL)
        return WA_EINVAL;
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return WA_ENOMEM;
    w->want = threads;
    w->metrics = metrics;
    w->start_ns = mono_ns();
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work, NULL);
    pthread_cond_init(&w->done, NULL);

    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < threads && rv == WA_OK; i++)
        rv = spawn_locked(w);
    pthread_mutex_unlock(&w->mu);
    if (rv == WA_OK && pthread_create(&w->monitor, NULL, monitor_main, w) != 0)
        rv = WA_EINTERNAL;
    if (rv != WA_OK) {
        pthread_mutex_lock(&w->mu);
        __atomic_store_n(&w->stopping, true, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&w->work);
        pthread_mutex_unlock(&w->mu);
        for (worker_t *me = w->workers, *next; me != NULL; me = next) {
            next = me->next;
            pthread_join(me->thread, NULL);
            free(me);
        }
        pthread_cond_destroy(&w->done);
        pthread_cond_destroy(&w->work);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return rv;
    }
    *out = w;
    return WA_OK;
}

void nt_writers_defer(nt_writers_t *w, bool defer)
{
    size_t wake = 0;

    pthread_mutex_lock(&w->mu);
    w->deferred = defer;
    if (!defer && w->head != NULL && w->idle > w->wakes) {
        wake = w->idle - w->wakes;
        w->wakes += wake;
    }
    pthread_mutex_unlock(&w->mu);
    while (wake-- > 0)
        pthread_cond_signal(&w->work);
}

size_t nt_writers_threads(nt_writers_t *w)
{
    size_t n;

    pthread_mutex_lock(&w->mu);
    n = w->alive;
    pthread_mutex_unlock(&w->mu);
    return n;
}

void nt_writers_free(nt_writers_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    __atomic_store_n(&w->stopping, true, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&w->work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->monitor, NULL);
    /* Every queue is stopped, so no worker is inside a write. */
    for (worker_t *me = w->workers, *next; me != NULL; me = next) {
        next = me->next;
        pthread_join(me->thread, NULL);
        free(me);
    }
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->work);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
