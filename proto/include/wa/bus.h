/*
 * bus.h - nng plumbing shared by every service.
 *
 * Sockets are always opened through wa_bus_open(), which sets
 * NNG_OPT_RECVMAXSZ and send/receive timeouts before the socket listens or
 * dials: nng's defaults (unlimited size, infinite wait) are never in force.
 *
 * Threading: a socket may be shared by many threads. wa_bus_call() uses one
 * nng context per calling thread (kept between calls, closed when the thread
 * exits), so concurrent calls on one REQ socket do not wait for each other.
 * A wa_bus_server_t runs its handler on nng's callback threads.
 */
#ifndef WA_BUS_H
#define WA_BUS_H

#include <stddef.h>

#include <nng/nng.h>

#include "wa/envelope.h"
#include "wa/err.h"

typedef enum wa_sock_kind {
    WA_SOCK_REQ,
    WA_SOCK_REP,
    WA_SOCK_PUB,
    WA_SOCK_SUB,
} wa_sock_kind_t;

typedef enum wa_sock_mode {
    WA_SOCK_DIAL,   /* connect; retried in the background until it succeeds */
    WA_SOCK_LISTEN, /* bind; fails at once if the address is taken */
} wa_sock_mode_t;

typedef struct wa_sock_opts {
    size_t recv_max;     /* bytes; 0 = WA_ENVELOPE_MAX */
    int send_timeout_ms; /* 0 = WA_BUS_DEFAULT_TIMEOUT_MS; < 0 is WA_EINVAL */
    int recv_timeout_ms; /* 0 = WA_BUS_DEFAULT_TIMEOUT_MS; < 0 is WA_EINVAL */
} wa_sock_opts_t;

#define WA_BUS_DEFAULT_TIMEOUT_MS 5000

/*
 * Open a socket of kind on url (tcp://, ipc://, inproc://), listening or
 * dialing, with opts (NULL = defaults). A tcp:// URL needs a port in
 * 1..65535 (and a host to dial). On success *out is set and the caller
 * closes it with nng_close(). On failure nothing is left open: WA_EINVAL for
 * a bad url, WA_EUNAVAIL if the address cannot be bound.
 *
 * A REQ socket opened to dial also watches its connection. A call finding
 * none gives the dialer half a second to reconnect (it retries at least
 * every 250 ms), then fails with WA_EUNAVAIL rather than wait out its
 * timeout; after that, calls fail at once until the connection is back.
 */
wa_err_t wa_bus_open(wa_sock_kind_t kind, wa_sock_mode_t mode, const char *url,
                     const wa_sock_opts_t *opts, nng_socket *out);

/*
 * A service's own listening socket (STORE_URL, EVENTS_URL, SESSION_URL):
 * wa_bus_open(kind, WA_SOCK_LISTEN, ...), except that an address that
 * cannot be listened on (another process holds it, no permission, not an
 * address of this host, an ipc:// directory that does not exist, a bad
 * URL) is WA_ECONFIG: DESIGN §2 counts it as configuration, exit status 2.
 * On any failure why (if not NULL) gets one line, "cannot listen on <url>:
 * <reason>", the reason nng's own ("Address in use").
 */
wa_err_t wa_bus_listen(wa_sock_kind_t kind, const char *url,
                       const wa_sock_opts_t *opts, nng_socket *out, char *why,
                       size_t whylen);

/* Translate an nng error into ours (NNG_ETIMEDOUT -> WA_ETIMEDOUT, ...). */
wa_err_t wa_bus_err(int nng_rv);

/*
 * Synchronous request on a REQ socket, for a worker thread: one context,
 * encode, send, wait at most timeout_ms in all, decode. rid must be unique
 * per logical operation (retries keep it: servers are idempotent by rid).
 * timeout_ms 0 means WA_BUS_DEFAULT_TIMEOUT_MS; negative is WA_EINVAL. The
 * request is sent again only when the peer holding it is lost (to the next
 * connection, same bytes and rid), never on a timer within the deadline,
 * so a slow handler does not run twice.
 *
 * Returns WA_OK with rep->data set (owned by rep: wa_reply_clear()), the
 * remote error code with rep->message set, or a transport error
 * (WA_ETIMEDOUT, WA_EUNAVAIL: no connection to the peer, see wa_bus_open;
 * WA_ECLOSED, WA_EPROTO) with rep zeroed. Thread-safe.
 */
wa_err_t wa_bus_call(nng_socket req, wa_op_t op, const char *user,
                     const char *rid, const cJSON *args, int timeout_ms,
                     wa_reply_t *rep);

/* Requests one "bus.batch" carries at most (wa_bus_server_* refuses more). */
#define WA_BUS_BATCH_MAX 64

/*
 * A batcher: calls on one REQ socket that concurrent threads make share
 * messages. At most `inflight` requests or batches are on the wire at once;
 * a call made while they all are waits, and then travels with every call
 * that queued meanwhile (up to WA_BUS_BATCH_MAX) as one "bus.batch". An
 * unloaded caller's call goes alone at once, as with wa_bus_call. Servers
 * started with wa_bus_server_start() take batches apart and hand each
 * member to their handler like any request; a peer that does not know
 * bus.batch gets the calls one by one. The socket stays the caller's and
 * must outlive the batcher; free it when no call is running.
 */
typedef struct wa_bus_batcher wa_bus_batcher_t;

wa_err_t wa_bus_batcher_new(nng_socket req, int inflight,
                            wa_bus_batcher_t **out);
void wa_bus_batcher_free(wa_bus_batcher_t *b);

/* Counters since wa_bus_batcher_new: calls made, bus.batch requests sent
 * and the calls they carried. */
typedef struct wa_bus_batcher_stats {
    uint64_t calls, batches, batched;
} wa_bus_batcher_stats_t;

void wa_bus_batcher_stats(wa_bus_batcher_t *b, wa_bus_batcher_stats_t *out);

/* As wa_bus_call(), through the batcher. Thread-safe. */
wa_err_t wa_bus_batcher_call(wa_bus_batcher_t *b, wa_op_t op, const char *user,
                             const char *rid, const cJSON *args, int timeout_ms,
                             wa_reply_t *rep);

/* The same, for a caller that relays the answer rather than reading it: on
 * WA_OK the data is left as checked JSON text in rep->raw (rep->data is
 * NULL), so no tree is built for it. */
wa_err_t wa_bus_batcher_call_raw(wa_bus_batcher_t *b, wa_op_t op,
                                 const char *user, const char *rid,
                                 const cJSON *args, int timeout_ms,
                                 wa_reply_t *rep);

/* A request being served. Valid from the handler call until it is answered. */
typedef struct wa_bus_job wa_bus_job_t;

/* The request of a job; valid until the job is answered. */
const wa_request_t *wa_bus_job_request(const wa_bus_job_t *job);

/*
 * Called once for each well-formed request. The handler (or whoever it hands
 * the job to, on any thread) must answer it exactly once with
 * wa_bus_reply_ok() or wa_bus_reply_err(). Malformed requests never reach the
 * handler: the server answers them with the decoder's error itself.
 */
typedef void (*wa_bus_handler_fn)(void *arg, wa_bus_job_t *job);

/* Answer a job with data (consumed; NULL = null). The job is gone after. */
void wa_bus_reply_ok(wa_bus_job_t *job, cJSON *data);

/* Answer a job with an error; message may be NULL. The job is gone after. */
void wa_bus_reply_err(wa_bus_job_t *job, wa_err_t err, const char *message);

typedef struct wa_bus_server wa_bus_server_t;

/*
 * Serve requests on an open REP socket with `workers` concurrent contexts
 * (1..256), each receiving, calling handler, and sending the answer.
 * The socket stays owned by the caller. *out on success.
 */
wa_err_t wa_bus_server_start(nng_socket rep, int workers,
                             wa_bus_handler_fn handler, void *arg,
                             wa_bus_server_t **out);

/* Well-formed requests (a bus.batch counts once) received so far. */
uint64_t wa_bus_server_requests(const wa_bus_server_t *srv);

/*
 * Stop receiving and free the server. Jobs still held by the handler must be
 * answered before this is called (their answers are then dropped if the
 * socket is gone); in-flight receives and sends are cancelled.
 */
void wa_bus_server_stop(wa_bus_server_t *srv);

/* Publish ev on a PUB socket (best effort, as nng PUB is). */
wa_err_t wa_bus_publish(nng_socket pub, const wa_event_t *ev);

/* Subscribe a SUB socket to one user's events, or all with user == NULL. */
wa_err_t wa_bus_subscribe(nng_socket sub, const char *user);

/*
 * Receive one event from a SUB socket, waiting at most the socket's receive
 * timeout. WA_ETIMEDOUT when none came; a malformed message returns the
 * decoder's error (and is consumed). On success wa_event_clear(ev) later.
 */
wa_err_t wa_bus_recv_event(nng_socket sub, wa_event_t *ev);

/* As wa_bus_recv_event, without waiting: WA_ETIMEDOUT when no event is
 * already queued. For draining a burst. */
wa_err_t wa_bus_try_recv_event(nng_socket sub, wa_event_t *ev);

/* Make a fresh request id (24 hex chars) into buf (>= WA_RID_MAX + 1): the
 * wall clock's milliseconds (11 digits), then 52 random bits, so ids sort
 * by creation time. Unique, not secret. */
void wa_rid_new(char *buf, size_t len);

#endif /* WA_BUS_H */
