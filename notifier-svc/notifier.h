/*
 * notifier.h - notifier-svc's private state and modules, shared by its files.
 *
 *   main.c     process plumbing: configuration, sockets, the event pump
 *   ws.c       CivetWeb WebSocket handlers: admission before the handshake,
 *              attach, ignore client data, close
 *   hub.c      users -> connections, fan-out, per-user replay rings (LRU)
 *   outq.c     refcounted frames; per-connection bounded queue + writer
 *   metrics.c  counters and their Prometheus text
 *   http.c     the CivetWeb server: /health, /metrics, routes
 *
 * Threads: the pump (main thread) receives events and fans them out under
 * the hub lock into per-connection queues, never touching a socket;
 * CivetWeb runs one worker thread per open WebSocket (its read loop); a
 * small writer pool (outq.c) writes the queues, and a monitor replaces any
 * writer stuck on a stalled client, so one slow client delays nobody else.
 */
#ifndef NT_NOTIFIER_H
#define NT_NOTIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <civetweb.h>

#include "wa/auth.h"
#include "wa/bus.h"
#include "wa/http.h"

#define NT_SERVICE "notifier-svc"

/* Largest client -> server message; a bigger one closes with 1009. */
#define NT_CLIENT_MSG_MAX 4096
/* Longest reason in a close frame (RFC 6455: 125 - 2 bytes of code). */
#define NT_CLOSE_REASON_MAX 123

/* WebSocket close codes we send. */
#define NT_CLOSE_NORMAL 1000
#define NT_CLOSE_GOING_AWAY 1001
#define NT_CLOSE_POLICY 1008
#define NT_CLOSE_TOO_BIG 1009
#define NT_CLOSE_INTERNAL 1011

/* ---- metrics.c ---------------------------------------------------------- */

/* Why an upgrade was refused before the handshake. */
typedef enum nt_refusal {
    NT_REFUSED_UNAUTHORIZED = 0, /* 401: missing, bad or expired token */
    NT_REFUSED_ORIGIN,           /* 403: Origin not in ALLOWED_ORIGINS */
    NT_REFUSED_BAD_REQUEST,      /* 400: bad since, not a WebSocket upgrade */
    NT_REFUSED_USER_LIMIT,       /* 429: NOTIFIER_MAX_CONN_PER_USER */
    NT_REFUSED_SERVER_LIMIT,     /* 503: NOTIFIER_MAX_CONN */
    NT_REFUSED_COUNT
} nt_refusal_t;

/* Why a connection was dropped by the server. */
typedef enum nt_drop {
    NT_DROP_OVERFLOW = 0, /* send queue over its bounds: a slow client */
    NT_DROP_WRITE,        /* a write failed or timed out */
    NT_DROP_OVERSIZE,     /* the client sent a message over the limit */
    NT_DROP_COUNT
} nt_drop_t;

/* Counters, all updated with relaxed atomics from any thread. */
typedef struct nt_metrics {
    uint64_t connections_total; /* accepted upgrades */
    uint64_t events_in;         /* well-formed events from the bus */
    uint64_t events_malformed;  /* refused by the decoder */
    uint64_t events_duplicate;  /* a seq already in the user's ring */
    uint64_t events_gap;        /* seqs skipped: lost before reaching us */
    uint64_t frames_queued;     /* frames handed to connection queues */
    uint64_t frames_out;        /* frames written to sockets */
    uint64_t bytes_out;         /* bytes written to sockets */
    uint64_t replays;           /* connections that asked for ?since= */
    uint64_t replayed_frames;   /* frames sent from a ring on attach */
    uint64_t resyncs;           /* resync frames sent */
    uint64_t evicted_users;     /* rings dropped by the LRU bound */
    uint64_t writers_replaced;  /* writers given up as stuck in a write */
    uint64_t refused[NT_REFUSED_COUNT];
    uint64_t drops[NT_DROP_COUNT];
} nt_metrics_t;

/* Gauges read at render time. */
typedef struct nt_gauges {
    uint64_t connections; /* open WebSocket connections */
    uint64_t users;       /* users with a ring or a connection */
    uint64_t ring_bytes;  /* bytes held by all rings */
    double uptime_seconds;
} nt_gauges_t;

void nt_metrics_add(uint64_t *counter, uint64_t n);
uint64_t nt_metrics_get(const uint64_t *counter);

/*
 * Render m and g as Prometheus text (version 0.0.4) into a malloc'd,
 * NUL-terminated buffer (*out, caller frees). WA_OK or WA_ENOMEM.
 */
wa_err_t nt_metrics_render(const nt_metrics_t *m, const nt_gauges_t *g,
                           char **out, size_t *outlen);

/* ---- outq.c: frames ------------------------------------------------------ */

/*
 * A complete server -> client WebSocket frame (header + payload), immutable
 * and shared by reference: encoded once per event, then queued to every
 * connection of the user and kept in the user's ring. Thread-safe refcount.
 */
typedef struct nt_frame {
    unsigned refs;        /* atomic */
    int64_t seq;          /* the event's seq; 0 for frames outside the ring */
    size_t len;           /* bytes in data */
    size_t payload_off;   /* where the payload starts in data */
    unsigned char data[]; /* header, then payload */
} nt_frame_t;

/*
 * Build a text frame around payload[0..len) (copied). One reference, owned
 * by the caller. WA_ENOMEM.
 */
wa_err_t nt_frame_new_text(const char *payload, size_t len, int64_t seq,
                           nt_frame_t **out);
nt_frame_t *nt_frame_ref(nt_frame_t *f);
void nt_frame_unref(nt_frame_t *f); /* NULL is a no-op */

/*
 * Build a close frame with code and reason (cut to NT_CLOSE_REASON_MAX bytes
 * on a UTF-8 boundary) into buf (>= 2 + 2 + NT_CLOSE_REASON_MAX bytes).
 * Returns the frame length.
 */
size_t nt_close_frame(uint16_t code, const char *reason, unsigned char *buf,
                      size_t buflen);

/* ---- outq.c: writer pool, per-connection queues ------------------------- */

/*
 * The writer pool: a few threads that write queued frames to whichever
 * connections have some. A write that blocks (a client that stopped
 * reading) holds up only the worker doing it: a monitor notices a worker
 * inside one write for longer than NT_WRITER_STALL_MS, lets it go, and
 * starts a replacement, so the others' frames keep flowing. The stuck
 * worker retires when its write returns (CivetWeb's write timeout).
 */
typedef struct nt_writers nt_writers_t;

#define NT_WRITER_STALL_MS 50

/*
 * Write coalescing: a connection is written at most once per epoch of
 * this many milliseconds, counted from its own last write, except that a
 * write after a quiet epoch goes at once. Frames queued to a connection
 * within an epoch of its last write go out together when that epoch ends
 * (at the monitor's next tick). So a client receiving fewer than
 * ~1000/NT_WRITE_EPOCH_MS frames/s sees no added latency, and a busy one
 * costs one send() (and one client wake-up) per epoch instead of one per
 * frame, at most NT_WRITE_EPOCH_MS (and half a tick) later. Epochs are per
 * connection, not a shared clock, so a thousand busy connections fall due
 * spread over the epoch instead of all at one boundary, where the last of them
 * would wait for the other writes too.
 */
#define NT_WRITE_EPOCH_MS 20
/* The monitor's period: epochs end on its ticks, so a busy connection's
 * writes are NT_WRITE_EPOCH_MS apart give or take half of this. */
#define NT_WRITE_TICK_MS 4

/* Start `threads` (>= 1) workers. WA_OK, WA_EINVAL, WA_EINTERNAL. */
wa_err_t nt_writers_new(size_t threads, nt_metrics_t *metrics,
                        nt_writers_t **out);

/* Stop and join every worker. Every queue must be stopped first. */
void nt_writers_free(nt_writers_t *w);

/*
 * While deferred, queued work does not wake sleeping workers; turning it
 * off wakes them for everything queued meanwhile. The pump defers while it
 * drains a burst of events, so a burst costs a few wake-ups, not one per
 * event. Workers already awake keep working. Thread-safe.
 */
void nt_writers_defer(nt_writers_t *w, bool defer);

/* Workers alive now (including stuck ones not yet retired), for tests. */
size_t nt_writers_threads(nt_writers_t *w);

typedef struct nt_outq nt_outq_t;

/*
 * Write len bytes to the connection. 0 when all were written; -1 when the
 * write failed or timed out (the connection is then given up).
 */
typedef int (*nt_sink_fn)(void *arg, const void *buf, size_t len);

typedef struct nt_outq_opts {
    nt_writers_t *writers; /* the pool that writes this queue */
    size_t max_frames;     /* queued frames before overflow, >= 1 */
    size_t max_bytes;      /* queued bytes before overflow (one frame may
                              always be queued, whatever its size) */
} nt_outq_opts_t;

/* A queue not yet writing. NULL on out-of-memory or bad opts. Free with
 * nt_outq_free() (which stops it first). */
nt_outq_t *nt_outq_new(const nt_outq_opts_t *opts);

/*
 * Queue a reference to f (the caller keeps its own). Never blocks on I/O.
 * WA_OK; WA_EFULL when this frame overflowed the bounds: the queue then
 * discards what it held and closes with 1008 (the caller counts the drop);
 * WA_ECLOSED when the queue is already closing (nothing queued).
 * Thread-safe.
 */
wa_err_t nt_outq_push(nt_outq_t *q, nt_frame_t *f);

/* nt_outq_push of fs[i] to qs[i] for each i in [0, n), in that order,
 * under one lock acquisition (the queues must share one pool): the fan-out
 * path. results[i] is push i's result. */
void nt_outq_push_each(nt_outq_t *const *qs, nt_frame_t *const *fs, size_t n,
                       wa_err_t *results);

/*
 * Ask for a close frame (code, reason) after which nothing is written.
 * The first request wins. With discard, queued frames are dropped first;
 * otherwise they are written before the close frame. Thread-safe.
 */
void nt_outq_close(nt_outq_t *q, uint16_t code, const char *reason,
                   bool discard);

/* Has the queue been closed (overflow, close request, failed write)? */
bool nt_outq_closing(nt_outq_t *q);

/* Frames and bytes queued now. */
size_t nt_outq_frames(nt_outq_t *q);
size_t nt_outq_bytes(nt_outq_t *q);

/*
 * Let the pool write this queue through sink(arg, ...). Small frames are
 * coalesced into one write; a failed write closes the queue (counted as
 * NT_DROP_WRITE). WA_OK, or WA_EINVAL if already started.
 */
wa_err_t nt_outq_start(nt_outq_t *q, nt_sink_fn sink, void *arg);

/*
 * Stop writing: waits until no worker touches the queue. A close frame
 * still pending (nt_outq_close) is then written by the caller's thread;
 * queued data frames are not. Idempotent; after it, sink is never called
 * again.
 */
void nt_outq_stop(nt_outq_t *q);
void nt_outq_free(nt_outq_t *q);

/* ---- hub.c --------------------------------------------------------------- */

typedef struct nt_hub nt_hub_t;
typedef struct nt_user nt_user_t;

/* A connection as the hub sees it; embedded in ws.c's connection. */
typedef struct nt_sub {
    char user[WA_USER_MAX + 1];
    nt_outq_t *q;
    /* Owned by the hub while attached. */
    nt_user_t *owner;
    struct nt_sub *prev, *next;
    bool reserved, attached;
} nt_sub_t;

typedef struct nt_hub_opts {
    size_t replay;       /* events kept per user (NOTIFIER_REPLAY) */
    size_t replay_bytes; /* bytes kept per user */
    size_t users_max;    /* users without connections kept (LRU) */
    size_t max_conn;     /* connections in total */
    size_t max_conn_per_user;
} nt_hub_opts_t;

/* WA_OK, WA_EINVAL (a bound is 0), WA_ENOMEM. Free with nt_hub_free. */
wa_err_t nt_hub_new(const nt_hub_opts_t *opts, nt_metrics_t *metrics,
                    nt_hub_t **out);

/* Free the hub, its users and rings. No sub may be attached or reserved. */
void nt_hub_free(nt_hub_t *hub);

/*
 * Count a connection of sub->user against the limits, before the
 * handshake. WA_OK; WA_ERATELIMIT over the per-user limit; WA_EFULL over
 * the total; WA_ENOMEM. Release with nt_hub_release().
 */
wa_err_t nt_hub_reserve(nt_hub_t *hub, nt_sub_t *sub);

/* Detach sub if attached, and give its reservation back. Idempotent. */
void nt_hub_release(nt_hub_t *hub, nt_sub_t *sub);

/* What an attach replayed. */
typedef struct nt_replay {
    size_t frames;  /* frames queued from the ring */
    bool resync;    /* a resync frame was queued first */
    int64_t oldest; /* oldest seq the ring held (resync only) */
} nt_replay_t;

/*
 * Attach a reserved sub (sub->q set) so it receives its user's events.
 * With since >= 0, first queue (in order) a resync frame if the ring no
 * longer holds since + 1, then every buffered event with seq > since.
 * Snapshot and registration happen under the one hub lock the fan-out
 * holds too, so no event is lost or repeated between replay and live.
 */
wa_err_t nt_hub_attach(nt_hub_t *hub, nt_sub_t *sub, int64_t since,
                       nt_replay_t *info);

/*
 * Fan an event out: encode its frame once, keep it in the user's ring
 * (when seq > 0), and queue it to every attached sub of that user only.
 * A seq already in the ring is a duplicate and is dropped. Called by the
 * pump. WA_OK, or the encoder's error, or WA_ENOMEM.
 */
wa_err_t nt_hub_publish(nt_hub_t *hub, const wa_event_t *ev);

/* nt_hub_publish of evs[0..n) in order, under one hub lock per
 * NT_PUMP_BATCH events and one writer-pool lock per chunk of pushes.
 * results[i] is event i's result. */
void nt_hub_publish_many(nt_hub_t *hub, const wa_event_t *evs, size_t n,
                         wa_err_t *results);

/* Ask every attached sub to close (code, reason), after what is queued. */
void nt_hub_close_all(nt_hub_t *hub, uint16_t code, const char *reason);

/* Connections reserved now, users held, bytes in rings. */
void nt_hub_gauges(nt_hub_t *hub, nt_gauges_t *g);

/* Seqs held in a user's ring, oldest first, for tests: up to max into out.
 * Returns how many. */
size_t nt_hub_ring_seqs(nt_hub_t *hub, const char *user, int64_t *out,
                        size_t max);

/* ---- pump.c ------------------------------------------------------------- */

/* Most events received and relayed as one batch, and about the most bytes:
 * big events make short batches, so the writers, woken at the end of each,
 * drain the queues before a burst of them can overflow a healthy one. */
#define NT_PUMP_BATCH 256
#define NT_PUMP_BATCH_BYTES 65536
/* How long the pump lets events gather after waking on an empty queue. */
#define NT_PUMP_LINGER_US 500

typedef struct nt_pump nt_pump_t;

/*
 * A pump for the SUB socket sub (which stays the caller's): it relays to
 * hub, deferring the writers' wake-ups to the end of each batch. wait_ms
 * (> 0) bounds the wait for a batch's first event. WA_OK, WA_EINVAL,
 * WA_ENOMEM. Used by one thread; free with nt_pump_free().
 */
wa_err_t nt_pump_new(nng_socket sub, int wait_ms, nt_hub_t *hub,
                     nt_writers_t *writers, nt_metrics_t *metrics,
                     nt_pump_t **out);
void nt_pump_free(nt_pump_t *p);

/*
 * Receive one batch (waiting at most wait_ms for its first event, never for
 * the rest) and relay it. Returns how many well-formed events it relayed;
 * 0 when none came in time or the socket is closed.
 */
size_t nt_pump_run_once(nt_pump_t *p);

/* ---- main.c / ws.c / http.c ---------------------------------------------- */

typedef struct nt_config {
    long port;
    wa_auth_opts_t auth;
    char *allowed_origins;
    char *events_url;
    long threads;       /* CivetWeb workers beyond the WebSocket ones */
    long replay;        /* NOTIFIER_REPLAY */
    long replay_bytes;  /* NOTIFIER_REPLAY_BYTES */
    long replay_users;  /* NOTIFIER_REPLAY_USERS */
    long max_conn;      /* NOTIFIER_MAX_CONN */
    long max_conn_user; /* NOTIFIER_MAX_CONN_PER_USER */
    long queue_frames;  /* NOTIFIER_QUEUE_FRAMES */
    long queue_bytes;   /* NOTIFIER_QUEUE_BYTES */
    long ws_timeout_ms; /* NOTIFIER_WS_TIMEOUT_MS: ping and write timeout */
    long writers;       /* NOTIFIER_WRITERS: writer pool threads */
    int log_level;
} nt_config_t;

typedef struct nt {
    nt_config_t cfg;
    wa_auth_t *auth;
    char **origins;
    nng_socket sub; /* SUB, listens on EVENTS_URL */
    struct mg_context *http;
    nt_hub_t *hub;
    nt_writers_t *writers;
    nt_metrics_t metrics;
    long long started_ms;
} nt_t;

/* Start CivetWeb with the WebSocket and HTTP handlers. */
wa_err_t nt_http_start(nt_t *nt, char *err, size_t errlen);
/* Stop CivetWeb: every connection's close handler has run when it returns. */
void nt_http_stop(nt_t *nt);

/* ws.c: register the WebSocket handlers on ctx for "/" and "/ws". */
void nt_ws_register(nt_t *nt, struct mg_context *ctx);
/* ws.c: answer a plain (non-upgrade) request to "/" or "/ws": 400. */
int nt_ws_on_plain(struct mg_connection *conn, void *arg);
/* ws.c: CivetWeb's connection_close callback (frees what never upgraded). */
void nt_ws_connection_close(const struct mg_connection *conn);

#endif /* NT_NOTIFIER_H */
