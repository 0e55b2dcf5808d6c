/*
 * bus.c - nng sockets, the synchronous client call, the REP worker pool and
 * PUB/SUB events (DESIGN §6).
 *
 * The bus never logs: every failure is returned as a wa_err_t and logged by
 * the caller that handles it.
 */
#include "wa/bus.h"

#include <stdatomic.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "bus_int.h"

/* Dialers retry quickly at first (a peer starting at the same time as us),
 * then back off, but not far: a call on a REQ socket without a connection
 * waits PEER_GRACE_MS for one, which must span a whole retry interval for
 * a peer that is back to be found. nng waits a random part of the interval
 * (0 to 100, 200, ... RECONNECT_MAX_MS), one connect at a time, so a peer
 * that is down for long costs a refused connect every 125 ms on average. */
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 250

/* A worker whose receive failed for a reason other than shutdown waits this
 * long before receiving again, so a persistent error cannot spin a CPU. */
#define RECV_ERROR_PAUSE_MS 10

/* Room SUB sockets add to recv_max for the "<user>\n" topic prefix. */
#define TOPIC_ROOM (WA_USER_MAX + 1)

/*
 * A REQ socket we dial whose peer is down (killed, restarting, not started)
 * has no pipe, and nng holds a request until one appears: the caller would
 * wait out its whole timeout. So a call finding no pipe gives the dialer
 * this long to reconnect (twice its longest pause between attempts: a peer
 * that is back is found), then fails with WA_EUNAVAIL; and until a pipe
 * comes, later calls on the socket fail at once (see peer_t).
 */
#define PEER_GRACE_MS (2 * RECONNECT_MAX_MS)

/*
 * REQ resend time. nng resends a pending request in two cases: at once when
 * the pipe it went out on closes (the peer was lost: restart, crash), and
 * when the resend timer expires with no reply. We never want the second:
 * handlers such as wa.send may legitimately take seconds, and a timer resend
 * would run the same request twice at the same time (idempotency by rid is a
 * safety net, not a reason to double the load). The first is wanted, but
 * from a REQ socket without a pipe nng would resend only when one comes
 * back, after the caller's whole timeout if none does. So our call contexts
 * turn resending off (NNG_DURATION_INFINITE): a request lost with its pipe
 * then fails at once with NNG_ECONNRESET, and slot_call() sends it again
 * itself, to the next pipe, or gives up after PEER_GRACE_MS without one. The
 * socket's own default, for anyone using it without a context, stays a
 * resend time beyond send + receive timeout.
 */
static nng_duration resend_after(int64_t wait_ms)
{
    int64_t ms = wait_ms + 1000;
    return ms > INT32_MAX ? INT32_MAX : (nng_duration)ms;
}

wa_err_t wa_bus_err(int nng_rv)
{
    switch (nng_rv) {
    case 0:
        return WA_OK;
    case NNG_ETIMEDOUT:
    case NNG_EAGAIN: /* a non-blocking operation found nothing ready */
        return WA_ETIMEDOUT;
    case NNG_ECLOSED:
    case NNG_ECANCELED: /* our aio was stopped: the bus is shutting down */
        return WA_ECLOSED;
    case NNG_ENOMEM:
        return WA_ENOMEM;
    case NNG_EMSGSIZE:
        return WA_ETOOBIG;
    case NNG_ECONNREFUSED:
    case NNG_EUNREACHABLE:
    case NNG_ECONNRESET:
    case NNG_ECONNABORTED:
    case NNG_ECONNSHUT:
    case NNG_EADDRINUSE:
    case NNG_EPERM:
    case NNG_EPEERAUTH:
        return WA_EUNAVAIL;
    case NNG_EINVAL:
    case NNG_EADDRINVAL:
    case NNG_ENOTSUP: /* e.g. a context on a PUB socket: caller's misuse */
    case NNG_ESTATE:
    case NNG_EBADTYPE:
        return WA_EINVAL;
    case NNG_EPROTO:
        return WA_EPROTO;
    default:
        return WA_EINTERNAL;
    }
}

/* Errors of nng_listen/nng_dial: the url is bad, or it cannot be used. */
static wa_err_t endpoint_err(int rv)
{
    switch (rv) {
    case NNG_EINVAL:
    case NNG_EADDRINVAL:
    case NNG_ENOTSUP: /* no transport for this scheme */
        return WA_EINVAL;
    case NNG_EADDRINUSE:
    case NNG_EPERM:
    case NNG_ENOENT: /* ipc:// in a missing directory */
        return WA_EUNAVAIL;
    default:
        return wa_bus_err(rv);
    }
}

/* Is s an open socket of protocol proto (NNG_REQ0_SELF, ...)? */
static bool is_proto(nng_socket s, int proto)
{
    int p;

    return nng_socket_get_int(s, NNG_OPT_PROTO, &p) == 0 && p == proto;
}

/* Copy len bytes into a new message. */
static wa_err_t msg_from(const void *buf, size_t len, nng_msg **out)
{
    nng_msg *msg;
    int rv;

    /* Empty, then appended: nng_msg_alloc(len) would zero the body first
     * (a measured 4% of store-svc's CPU with 7 KiB log.list answers). */
    if ((rv = nng_msg_alloc(&msg, 0)) != 0)
        return wa_bus_err(rv);
    if (len > 0 && (rv = nng_msg_append(msg, buf, len)) != 0) {
        nng_msg_free(msg);
        return wa_bus_err(rv);
    }
    *out = msg;
    return WA_OK;
}

/*
 * nng accepts some tcp:// urls we never want: a dialer with a bad port
 * ("tcp://h:x1") resolves in the background and retries for ever, a listener
 * without a port binds a random one nobody can find. Require a port
 * 1..65535 (and a host to dial) so a typo in the configuration fails at
 * start. Other schemes are left to nng.
 */
static wa_err_t check_url(const char *url, wa_sock_mode_t mode)
{
    nng_url *u;
    wa_err_t err = WA_OK;
    const char *p;
    long port = 0;

    if (nng_url_parse(&u, url) != 0)
        return WA_EINVAL;
    if (strncmp(u->u_scheme, "tcp", 3) == 0) {
        for (p = u->u_port; *p >= '0' && *p <= '9' && port <= 65535; p++)
            port = port * 10 + (*p - '0');
        if (u->u_port[0] == '\0' || *p != '\0' || port < 1 || port > 65535 ||
            (mode == WA_SOCK_DIAL && u->u_hostname[0] == '\0'))
            err = WA_EINVAL;
    }
    nng_url_free(u);
    return err;
}

/*
 * The peer of a REQ socket that wa_bus_open() dialed: its pipes, counted by
 * nng's pipe callbacks (on nng's threads, so only atomics there), and
 * whether calls found it down. Calls find it by socket id (peer_hold) and
 * keep it in their slot.
 *
 * Pipes are counted from NNG_PIPE_EV_ADD_PRE to NNG_PIPE_EV_REM_POST: nng
 * sends REM_POST after ADD_PRE even for a pipe it then refuses (a peer of
 * the wrong protocol), which never sees ADD_POST, so only those two pair.
 * A pipe between them is being attached; a request sent then waits the
 * microseconds that takes.
 *
 * Each pipe event bumps epoch. A call that waited PEER_GRACE_MS without a
 * pipe marks the epoch it saw as down (down = epoch + 1): the peer is
 * taken for down, and every call fails at once, until the next pipe event.
 * A mark made stale by an event meanwhile matches no epoch and is inert.
 * The grace counts from each call's own start, not from the loss: a call
 * made after a quiet outage (no call saw it) waits for the dialer to find
 * the peer again, as a caller that restarts its server expects.
 *
 * Lifetime: the callbacks hold p as their argument and slots hold
 * references. nng_close() removes every pipe, REM_POST callbacks done,
 * before nng_socket_get() reports the socket closed (nng 1.5 socket.c), and
 * a closed socket's id is not reused; so a peer whose socket reports closed
 * and that no slot holds can go. The sweep in wa_bus_open and in each
 * release finds them (callers close sockets with nng_close, which we do not
 * see). All under peers_mu, taken by callers only, never by callbacks.
 */
typedef struct peer {
    struct peer *next; /* in peers */
    uint32_t sock;     /* nng socket id */
    int refs;          /* slots holding it */
    atomic_int pipes;  /* pipes added and not removed */
    atomic_uint epoch; /* pipe events */
    atomic_uint down;  /* epoch + 1 when a call found it down */
    /* Waiters sleep on cv while epoch is what they read (peer_wait). */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC */
} peer_t;

static pthread_mutex_t peers_mu = PTHREAD_MUTEX_INITIALIZER;
static peer_t *peers; /* under peers_mu */

/* Wake every call waiting on p (after changing epoch or down). */
static void epoch_wake(peer_t *p)
{
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void peer_free(peer_t *p)
{
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void peer_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    peer_t *p = arg;

    (void)pipe;
    /* The count before the epoch: see peer_wait. */
    if (ev == NNG_PIPE_EV_ADD_PRE)
        atomic_fetch_add(&p->pipes, 1);
    else if (ev == NNG_PIPE_EV_REM_POST)
        atomic_fetch_sub(&p->pipes, 1);
    else
        return;
    atomic_fetch_add(&p->epoch, 1);
    epoch_wake(p);
}

/* A peer for s, counting its pipes from now on; not yet findable. On
 * failure the callbacks may be registered: close s before freeing *out. */
static wa_err_t peer_new(nng_socket s, peer_t **out)
{
    peer_t *p;
    int rv;

    pthread_condattr_t ca;

    if ((p = calloc(1, sizeof(*p))) == NULL)
        return WA_ENOMEM;
    if (pthread_condattr_init(&ca) != 0) {
        free(p);
        return WA_ENOMEM;
    }
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&p->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        free(p);
        return WA_ENOMEM;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        pthread_cond_destroy(&p->cv);
        free(p);
        return WA_ENOMEM;
    }
    p->sock = (uint32_t)nng_socket_id(s);
    atomic_init(&p->pipes, 0);
    atomic_init(&p->epoch, 0);
    atomic_init(&p->down, 0);
    *out = p;
    if ((rv = nng_pipe_notify(s, NNG_PIPE_EV_ADD_PRE, peer_pipe_cb, p)) != 0 ||
        (rv = nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, peer_pipe_cb, p)) != 0)
        return wa_bus_err(rv);
    return WA_OK;
}

/* Free the peers of closed sockets that no slot holds. Caller holds
 * peers_mu. */
static void peers_sweep(void)
{
    peer_t **pp = &peers;

    while (*pp != NULL) {
        peer_t *p = *pp;
        nng_socket s = {.id = p->sock};
        int proto;

        if (p->refs == 0 &&
            nng_socket_get_int(s, NNG_OPT_PROTO, &proto) == NNG_ECLOSED) {
            *pp = p->next;
            peer_free(p);
        } else {
            pp = &p->next;
        }
    }
}

/* Make p findable by its socket's id. */
static void peer_add(peer_t *p)
{
    pthread_mutex_lock(&peers_mu);
    peers_sweep();
    p->next = peers;
    peers = p;
    pthread_mutex_unlock(&peers_mu);
}

/* The peer of socket id with a reference taken, or NULL if it has none
 * (a socket not dialed by wa_bus_open: calls wait for a pipe as nng does). */
static peer_t *peer_hold(uint32_t id)
{
    peer_t *p;

    pthread_mutex_lock(&peers_mu);
    for (p = peers; p != NULL && p->sock != id; p = p->next)
        ;
    if (p != NULL)
        p->refs++;
    pthread_mutex_unlock(&peers_mu);
    return p;
}

static void peer_release(peer_t *p)
{
    pthread_mutex_lock(&peers_mu);
    p->refs--;
    peers_sweep();
    pthread_mutex_unlock(&peers_mu);
}

/*
 * Wait until p's socket has a pipe, for a call waiting since `since`.
 * WA_OK at once with a pipe, or with no peer to watch (p NULL);
 * WA_ETIMEDOUT at the deadline; WA_ECLOSED if the socket was closed (it
 * has no pipe either); WA_EUNAVAIL when the peer is marked down, or
 * PEER_GRACE_MS after since (which marks it). The epoch is read before the
 * count, and the callbacks change the count first: a call sleeps only
 * while no pipe event has happened since the count was read as 0.
 */
static wa_err_t peer_wait(peer_t *p, nng_time since, nng_time deadline)
{
    for (;;) {
        nng_time now = nng_clock(), until;
        nng_socket s;
        struct timespec ts;
        unsigned epoch;
        int proto;

        if (now >= deadline)
            return WA_ETIMEDOUT;
        if (p == NULL)
            return WA_OK;
        epoch = atomic_load(&p->epoch);
        if (atomic_load(&p->pipes) > 0)
            return WA_OK;
        s.id = p->sock;
        if (nng_socket_get_int(s, NNG_OPT_PROTO, &proto) == NNG_ECLOSED)
            return WA_ECLOSED;
        if (atomic_load(&p->down) == epoch + 1)
            return WA_EUNAVAIL;
        if (now >= since + PEER_GRACE_MS) {
            atomic_store(&p->down, epoch + 1);
            epoch_wake(p); /* the others waiting give up too */
            return WA_EUNAVAIL;
        }
        until =
            since + PEER_GRACE_MS < deadline ? since + PEER_GRACE_MS : deadline;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)((until - now) / 1000);
        ts.tv_nsec += (long)((until - now) % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        /* Sleep only while nothing happened since the reads above: a pipe
         * event changes epoch, a down mark down, each then wakes cv. */
        pthread_mutex_lock(&p->mu);
        if (atomic_load(&p->epoch) == epoch &&
            atomic_load(&p->down) != epoch + 1)
            (void)pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        pthread_mutex_unlock(&p->mu);
    }
}

/* wa_bus_open; *endpoint_rv (if not NULL) gets nng's error when the
 * address could not be used (the listen or dial failed, or check_url
 * refused the URL: NNG_EADDRINVAL), and stays as it was otherwise. */
static wa_err_t bus_open(wa_sock_kind_t kind, wa_sock_mode_t mode,
                         const char *url, const wa_sock_opts_t *opts,
                         nng_socket *out, int *endpoint_rv)
{
    size_t recv_max = WA_ENVELOPE_MAX;
    int send_ms = WA_BUS_DEFAULT_TIMEOUT_MS;
    int recv_ms = WA_BUS_DEFAULT_TIMEOUT_MS;
    peer_t *peer = NULL;
    nng_socket s;
    wa_err_t err;
    int rv;

    if (url == NULL || out == NULL ||
        (mode != WA_SOCK_DIAL && mode != WA_SOCK_LISTEN))
        return WA_EINVAL;
    if (opts != NULL) {
        /* Negative timeouts would be nng's "infinite" or "default". */
        if (opts->send_timeout_ms < 0 || opts->recv_timeout_ms < 0)
            return WA_EINVAL;
        if (opts->recv_max != 0)
            recv_max = opts->recv_max;
        if (opts->send_timeout_ms != 0)
            send_ms = opts->send_timeout_ms;
        if (opts->recv_timeout_ms != 0)
            recv_ms = opts->recv_timeout_ms;
    }
    if ((err = check_url(url, mode)) != WA_OK) {
        if (endpoint_rv != NULL)
            *endpoint_rv = NNG_EADDRINVAL; /* as nng would say */
        return err;
    }

    switch (kind) {
    case WA_SOCK_REQ:
        rv = nng_req0_open(&s);
        break;
    case WA_SOCK_REP:
        rv = nng_rep0_open(&s);
        break;
    case WA_SOCK_PUB:
        rv = nng_pub0_open(&s);
        break;
    case WA_SOCK_SUB:
        if (recv_max > SIZE_MAX - TOPIC_ROOM)
            return WA_EINVAL;
        recv_max += TOPIC_ROOM;
        rv = nng_sub0_open(&s);
        break;
    default:
        return WA_EINVAL;
    }
    if (rv != 0)
        return wa_bus_err(rv);

    /* Socket options are inherited by the endpoints created after them, so
     * all are set before listening or dialing. */
    if ((rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, recv_max)) != 0 ||
        (rv = nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, send_ms)) != 0 ||
        (rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, recv_ms)) != 0)
        goto fail_nng;
    if (kind == WA_SOCK_REQ &&
        (rv = nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME,
                                resend_after((int64_t)send_ms + recv_ms))) != 0)
        goto fail_nng;

    if (mode == WA_SOCK_DIAL) {
        if ((rv = nng_socket_set_ms(s, NNG_OPT_RECONNMINT, RECONNECT_MIN_MS)) !=
                0 ||
            (rv = nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, RECONNECT_MAX_MS)) !=
                0)
            goto fail_nng;
        /* Calls on a REQ socket we dial fail fast while its peer is down. */
        if (kind == WA_SOCK_REQ && (err = peer_new(s, &peer)) != WA_OK)
            goto fail;
        /* Non-blocking: the peer may start after us; nng keeps retrying. */
        rv = nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK);
    } else {
        rv = nng_listen(s, url, NULL, 0);
    }
    if (rv != 0) {
        if (endpoint_rv != NULL)
            *endpoint_rv = rv;
        err = endpoint_err(rv);
        goto fail;
    }
    if (peer != NULL)
        peer_add(peer);
    *out = s;
    return WA_OK;

fail_nng:
    err = wa_bus_err(rv);
fail:
    nng_close(s);
    if (peer != NULL)
        peer_free(peer); /* after the close: no pipe callback of s runs */
    return err;
}

wa_err_t wa_bus_open(wa_sock_kind_t kind, wa_sock_mode_t mode, const char *url,
                     const wa_sock_opts_t *opts, nng_socket *out)
{
    return bus_open(kind, mode, url, opts, out, NULL);
}

wa_err_t wa_bus_listen(wa_sock_kind_t kind, const char *url,
                       const wa_sock_opts_t *opts, nng_socket *out, char *why,
                       size_t whylen)
{
    int rv = 0;
    wa_err_t err = bus_open(kind, WA_SOCK_LISTEN, url, opts, out, &rv);

    if (err == WA_OK)
        return WA_OK;
    /* The address itself: taken, not permitted, not on this host, a
     * missing ipc:// directory, or a URL check_url refused. */
    if (rv != 0)
        err = WA_ECONFIG;
    if (why != NULL && whylen > 0)
        snprintf(why, whylen, "cannot listen on %s: %s",
                 url != NULL ? url : "(no url)",
                 rv != 0 ? nng_strerror(rv) : wa_strerror(err));
    return err;
}

/* ---- client ---- */

wa_err_t wa__bus_result(wa_err_t decode_err, wa_reply_t *rep)
{
    if (decode_err != WA_OK) {
        wa_reply_clear(rep);
        return decode_err == WA_ENOMEM ? WA_ENOMEM : WA_EPROTO;
    }
    if (rep->ok)
        return WA_OK;
    if (rep->err == WA_OK) {
        /* Defensive: an error reply must carry an error. */
        wa_reply_clear(rep);
        return WA_EPROTO;
    }
    return rep->err;
}

/* Decode a reply into rep. A reply we cannot decode is the peer's fault
 * (WA_EPROTO), never to be confused with a remote error code. */
static wa_err_t decode_reply(nng_msg *msg, bool raw, wa_reply_t *rep)
{
    return wa__bus_result(
        raw ? wa_reply_decode_raw(nng_msg_body(msg), nng_msg_len(msg), rep)
            : wa_reply_decode(nng_msg_body(msg), nng_msg_len(msg), rep),
        rep);
}

/*
 * Each thread keeps, per REQ socket it calls on, one context and one aio
 * between calls: opening and closing a context takes the socket's lock,
 * which 64 gateway threads would otherwise fight over twice per request.
 * A context is kept only after a call that left nothing pending on it (it
 * got its reply, or gave up before its request was out); any other failure
 * closes it, which abandons a request still in flight. A socket closed
 * meanwhile makes the next call fail with WA_ECLOSED and drops the slot.
 * Slots are freed when the thread exits.
 */
#define CALL_SLOTS 4

typedef struct call_slot {
    uint32_t sock; /* nng_socket id; 0: empty */
    nng_ctx ctx;
    nng_aio *aio;
    peer_t *peer; /* held; NULL: the socket has none */
} call_slot_t;

typedef struct call_cache {
    call_slot_t slot[CALL_SLOTS];
    unsigned victim; /* next slot to reuse when all are taken */
} call_cache_t;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static bool cache_ok;

static void slot_drop(call_slot_t *sl)
{
    if (sl->sock != 0) {
        nng_ctx_close(sl->ctx);
        nng_aio_free(sl->aio);
        if (sl->peer != NULL)
            peer_release(sl->peer);
    }
    memset(sl, 0, sizeof(*sl));
}

static void cache_free(void *arg)
{
    call_cache_t *cc = arg;

    for (int i = 0; i < CALL_SLOTS; i++)
        slot_drop(&cc->slot[i]);
    free(cc);
}

static void cache_init(void)
{
    cache_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

/* This thread's cache, or NULL (calls then use a one-off slot). */
static call_cache_t *cache_get(void)
{
    call_cache_t *cc;

    if (pthread_once(&cache_once, cache_init) != 0 || !cache_ok)
        return NULL;
    if ((cc = pthread_getspecific(cache_key)) != NULL)
        return cc;
    if ((cc = calloc(1, sizeof(*cc))) == NULL)
        return NULL;
    if (pthread_setspecific(cache_key, cc) != 0) {
        free(cc);
        return NULL;
    }
    return cc;
}

/* Open a context and aio on req into sl (checking req is a REQ socket),
 * with nng's resending off (see resend_after) and req's peer held. */
static wa_err_t slot_open(call_slot_t *sl, nng_socket req)
{
    int rv;

    memset(sl, 0, sizeof(*sl));
    if (!is_proto(req, NNG_REQ0_SELF))
        return WA_EINVAL;
    if ((rv = nng_aio_alloc(&sl->aio, NULL, NULL)) != 0)
        return wa_bus_err(rv);
    if ((rv = nng_ctx_open(&sl->ctx, req)) != 0) {
        nng_aio_free(sl->aio);
        sl->aio = NULL;
        return wa_bus_err(rv);
    }
    if ((rv = nng_ctx_set_ms(sl->ctx, NNG_OPT_REQ_RESENDTIME,
                             NNG_DURATION_INFINITE)) != 0) {
        nng_ctx_close(sl->ctx);
        nng_aio_free(sl->aio);
        sl->aio = NULL;
        return wa_bus_err(rv);
    }
    sl->sock = nng_socket_id(req);
    sl->peer = peer_hold(sl->sock);
    return WA_OK;
}

/* The slot for req: this thread's cached one, or a new one. */
static wa_err_t slot_take(call_cache_t *cc, nng_socket req, call_slot_t *tmp,
                          call_slot_t **out)
{
    uint32_t id = nng_socket_id(req);
    call_slot_t *sl = NULL;

    if (id == 0 || id == (uint32_t)-1)
        return WA_EINVAL;
    if (cc == NULL) {
        *out = tmp;
        return slot_open(tmp, req);
    }
    for (int i = 0; i < CALL_SLOTS; i++) {
        if (cc->slot[i].sock == id) {
            *out = &cc->slot[i];
            return WA_OK;
        }
        if (sl == NULL && cc->slot[i].sock == 0)
            sl = &cc->slot[i];
    }
    if (sl == NULL) {
        sl = &cc->slot[cc->victim++ % CALL_SLOTS];
        slot_drop(sl);
    }
    *out = sl;
    return slot_open(sl, req);
}

/*
 * One request-reply of buf[0..len) on the slot's context by the deadline.
 * The request is sent again, from a fresh copy, when its pipe is lost
 * before the reply (nng's resending is off: NNG_ECONNRESET). With a peer
 * to watch, no request goes out while the socket has no pipe (peer_wait,
 * its grace counted from the call's start or the loss of its request), and
 * one that has not left within PEER_GRACE_MS is taken back to look again:
 * its pipe may have gone just before. *idle tells whether the context has
 * nothing pending (reply received, or nothing out); otherwise a request
 * may be.
 */
static wa_err_t slot_call(call_slot_t *sl, const char *buf, size_t len,
                          nng_time deadline, bool raw, wa_reply_t *rep,
                          bool *idle)
{
    nng_time since = nng_clock(), now;
    nng_duration wait;
    nng_msg *msg = NULL;
    wa_err_t err;
    int rv;

    for (;;) {
        /* Nothing is pending here: a send taken back or a lost pipe reset
         * the context. It is kept unless its socket is closed. */
        if ((err = peer_wait(sl->peer, since, deadline)) != WA_OK ||
            (err = msg_from(buf, len, &msg)) != WA_OK) {
            *idle = err != WA_ECLOSED;
            return err;
        }
        now = nng_clock();
        wait = (nng_duration)(deadline > now ? deadline - now : 1);
        if (sl->peer != NULL && wait > PEER_GRACE_MS)
            wait = PEER_GRACE_MS;

        /* REQ's send waits for a connected peer, so it too is bounded. */
        nng_aio_set_msg(sl->aio, msg);
        nng_aio_set_timeout(sl->aio, wait);
        nng_ctx_send(sl->ctx, sl->aio);
        nng_aio_wait(sl->aio);
        if ((rv = nng_aio_result(sl->aio)) != 0) {
            /* A message that was not sent is still ours. */
            if ((msg = nng_aio_get_msg(sl->aio)) != NULL)
                nng_msg_free(msg);
            nng_aio_set_msg(sl->aio, NULL);
            if (rv == NNG_ETIMEDOUT && sl->peer != NULL)
                continue; /* peer_wait judges: no pipe, or the deadline */
            return wa_bus_err(rv);
        }

        now = nng_clock();
        if (now >= deadline)
            return WA_ETIMEDOUT;
        nng_aio_set_timeout(sl->aio, (nng_duration)(deadline - now));
        nng_ctx_recv(sl->ctx, sl->aio);
        nng_aio_wait(sl->aio);
        if ((rv = nng_aio_result(sl->aio)) == NNG_ECONNRESET) {
            since = nng_clock(); /* lost with its pipe: again, same rid */
            continue;
        }
        if (rv != 0)
            return wa_bus_err(rv);
        msg = nng_aio_get_msg(sl->aio);
        nng_aio_set_msg(sl->aio, NULL);
        *idle = true;
        err = decode_reply(msg, raw, rep);
        nng_msg_free(msg);
        return err;
    }
}

wa_err_t wa__bus_call_encoded(nng_socket req, const char *buf, size_t len,
                              int timeout_ms, bool raw, wa_reply_t *rep)
{
    nng_time deadline = nng_clock() + (nng_time)timeout_ms;
    call_cache_t *cc;
    call_slot_t tmp, *sl;
    bool idle = false;
    wa_err_t err;

    memset(rep, 0, sizeof(*rep));
    cc = cache_get();
    if ((err = slot_take(cc, req, &tmp, &sl)) != WA_OK)
        return err;
    err = slot_call(sl, buf, len, deadline, raw, rep, &idle);
    /* A request may still be pending: closing the context abandons it. */
    if (cc == NULL || !idle)
        slot_drop(sl);
    return err;
}

wa_err_t wa_bus_call(nng_socket req, wa_op_t op, const char *user,
                     const char *rid, const cJSON *args, int timeout_ms,
                     wa_reply_t *rep)
{
    char *buf = NULL;
    size_t len = 0;
    wa_err_t err;

    if (rep == NULL)
        return WA_EINVAL;
    memset(rep, 0, sizeof(*rep));
    if (timeout_ms < 0)
        return WA_EINVAL;
    if (timeout_ms == 0)
        timeout_ms = WA_BUS_DEFAULT_TIMEOUT_MS;

    /* The encoder refuses more than WA_ENVELOPE_MAX (WA_ETOOBIG), which a
     * peer with the default limit would drop along with its connection. */
    if ((err = wa_request_encode(op, user, rid, args, &buf, &len)) != WA_OK)
        return err;
    err = wa__bus_call_encoded(req, buf, len, timeout_ms, false, rep);
    free(buf);
    return err;
}

/* ---- server ---- */

typedef struct batch batch_t;

struct wa_bus_job {
    wa_request_t req;
    batch_t *batch; /* NULL: the worker's own job; else a bus.batch member */
    size_t index;   /* in batch */
};

/*
 * Each worker owns one REP context and one aio and cycles
 *   RECV -> (HANDLER -> reply) -> SEND -> RECV ...
 * The aio callback runs on nng's threads. Whoever submits the next
 * operation on the aio (the callback, or wa_bus_reply_* on the handler's
 * thread) must not touch the worker afterwards: the completion may already
 * be running elsewhere and reusing it.
 */
typedef enum worker_state {
    W_IDLE,
    W_RECV,
    W_HANDLER, /* the job is with the handler */
    W_SEND,
    W_PAUSE, /* sleeping after a receive error */
} worker_state_t;

typedef struct worker {
    wa_bus_job_t job;
    wa_bus_server_t *srv;
    nng_ctx ctx;
    nng_aio *aio;
    worker_state_t state;
    bool ctx_open;
} worker_t;

struct wa_bus_server {
    atomic_ullong requests; /* well-formed requests received */
    wa_bus_handler_fn handler;
    void *arg;
    nng_duration send_timeout;
    int nworkers;
    worker_t workers[];
};

static worker_t *job_worker(wa_bus_job_t *job)
{
    return (worker_t *)(void *)((char *)job - offsetof(worker_t, job));
}

const wa_request_t *wa_bus_job_request(const wa_bus_job_t *job)
{
    return job == NULL ? NULL : &job->req;
}

static void start_recv(worker_t *w)
{
    w->state = W_RECV;
    /* Wait for requests for ever; only stop cancels this. */
    nng_aio_set_timeout(w->aio, NNG_DURATION_INFINITE);
    nng_ctx_recv(w->ctx, w->aio);
}

/* Send buf (freed here) as the answer to w's current request. */
static void send_answer(worker_t *w, char *buf, size_t len)
{
    nng_msg *msg = NULL;
    wa_err_t err;

    err = msg_from(buf, len, &msg);
    free(buf);
    if (err != WA_OK) {
        /* Cannot answer: the client times out; serve the next one. */
        start_recv(w);
        return;
    }
    w->state = W_SEND;
    nng_aio_set_msg(w->aio, msg);
    nng_aio_set_timeout(w->aio, w->srv->send_timeout);
    nng_ctx_send(w->ctx, w->aio);
}

static void answer_err(worker_t *w, wa_err_t err, const char *message)
{
    char *buf;
    size_t len;

    if (err == WA_OK)
        err = WA_EINTERNAL; /* an error reply needs an error */
    if (wa_reply_encode_err(err, message, &buf, &len) != WA_OK) {
        start_recv(w);
        return;
    }
    send_answer(w, buf, len);
}

/*
 * A "bus.batch" request: its members become jobs of their own, handed to the
 * handler one by one like any request, each answered (on any thread, in any
 * order) with wa_bus_reply_*. Each answer is encoded at once into its slot;
 * the last one joins them into the batch's reply, sent on the worker that
 * received the batch. `pending` counts unanswered members plus one held by
 * batch_start while it is still handing members out, so that an answer given
 * during the hand-out cannot finish the batch under it.
 */
struct batch {
    worker_t *w;
    atomic_size_t pending;
    size_t n;
    char **ans; /* encoded replies, in request order */
    size_t *lens;
    wa_bus_job_t jobs[];
};

static void batch_free(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->ans[i]);
    free(b->ans);
    free(b->lens);
    free(b);
}

static void batch_release(batch_t *b)
{
    worker_t *w = b->w;
    char *buf = NULL;
    size_t len = 0;
    wa_err_t err = WA_OK;

    if (atomic_fetch_sub(&b->pending, 1) != 1)
        return;
    for (size_t i = 0; i < b->n; i++) {
        if (b->ans[i] == NULL)
            err = WA_ENOMEM; /* a member's answer could not be encoded */
    }
    if (err == WA_OK)
        err = wa_batch_reply_encode(b->ans, b->lens, b->n, &buf, &len);
    batch_free(b);
    if (err != WA_OK)
        answer_err(w, err,
                   err == WA_ETOOBIG ? "bus.batch: replies too large" : NULL);
    else
        send_answer(w, buf, len);
}

/* Record a member's encoded answer (NULL: it could not be encoded). */
static void batch_answer(wa_bus_job_t *job, char *buf, size_t len)
{
    batch_t *b = job->batch;

    b->ans[job->index] = buf;
    b->lens[job->index] = len;
    batch_release(b);
}

/* Answer a member with an error before any handler saw it. */
static void batch_refuse(wa_bus_job_t *job, wa_err_t err, const char *message)
{
    char *buf = NULL;
    size_t len = 0;

    if (wa_reply_encode_err(err, message, &buf, &len) != WA_OK)
        buf = NULL;
    batch_answer(job, buf, len);
}

static void batch_start(worker_t *w)
{
    wa_bus_server_t *srv = w->srv;
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(w->job.req.args, "calls");
    int count = cJSON_IsArray(calls) ? cJSON_GetArraySize(calls) : 0;
    size_t n = count > 0 ? (size_t)count : 0, i;
    wa_err_t *bad = NULL;
    batch_t *b = NULL;
    cJSON *c;

    if (n == 0 || n > WA_BUS_BATCH_MAX) {
        wa_request_clear(&w->job.req);
        answer_err(w, WA_EINVAL,
                   "bus.batch: args.calls must be an array of 1..64 requests");
        return;
    }
    if ((b = calloc(1, sizeof(*b) + n * sizeof(b->jobs[0]))) == NULL ||
        (b->ans = calloc(n, sizeof(*b->ans))) == NULL ||
        (b->lens = calloc(n, sizeof(*b->lens))) == NULL ||
        (bad = calloc(n, sizeof(*bad))) == NULL) {
        if (b != NULL) {
            free(b->ans);
            free(b->lens);
            free(b);
        }
        wa_request_clear(&w->job.req);
        answer_err(w, WA_ENOMEM, NULL);
        return;
    }
    b->w = w;
    b->n = n;
    atomic_init(&b->pending, n + 1);
    /* Decode every member first: their args are detached from the batch's,
     * which can then go. */
    for (i = 0, c = calls->child; c != NULL && i < n; c = c->next, i++) {
        wa_bus_job_t *job = &b->jobs[i];

        job->batch = b;
        job->index = i;
        bad[i] = wa_request_from_json(c, &job->req);
        if (bad[i] == WA_OK && job->req.op == WA_OP_BUS_BATCH) {
            wa_request_clear(&job->req);
            bad[i] = WA_EINVAL; /* no batch within a batch */
        }
    }
    wa_request_clear(&w->job.req);
    for (i = 0; i < n; i++) {
        if (bad[i] != WA_OK)
            batch_refuse(&b->jobs[i], bad[i],
                         bad[i] == WA_EINVAL ? "bus.batch: nested batch"
                                             : NULL);
        else
            srv->handler(srv->arg, &b->jobs[i]);
    }
    free(bad);
    batch_release(b); /* may send the reply: touch neither b nor w after */
}

static void on_request(worker_t *w)
{
    wa_bus_server_t *srv = w->srv;
    nng_msg *msg;
    wa_err_t err;

    msg = nng_aio_get_msg(w->aio);
    nng_aio_set_msg(w->aio, NULL);
    err = wa_request_decode(nng_msg_body(msg), nng_msg_len(msg), &w->job.req);
    nng_msg_free(msg);
    if (err != WA_OK) {
        /* Malformed: answered here, the handler never sees it. */
        answer_err(w, err, NULL);
        return;
    }
    w->state = W_HANDLER;
    atomic_fetch_add_explicit(&srv->requests, 1, memory_order_relaxed);
    if (w->job.req.op == WA_OP_BUS_BATCH) {
        batch_start(w);
        return;
    }
    srv->handler(srv->arg, &w->job);
    /* The job may be answered and w reused already: touch nothing. */
}

static void worker_cb(void *arg)
{
    worker_t *w = arg;
    int rv = nng_aio_result(w->aio);

    switch (w->state) {
    case W_RECV:
        if (rv == 0) {
            on_request(w);
        } else if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
            w->state = W_IDLE; /* stopping, or the socket was closed */
        } else {
            w->state = W_PAUSE;
            nng_sleep_aio(RECV_ERROR_PAUSE_MS, w->aio);
        }
        break;
    case W_SEND:
        if (rv != 0) {
            /* Peer gone or not reading: the answer is dropped. */
            nng_msg *msg = nng_aio_get_msg(w->aio);

            if (msg != NULL)
                nng_msg_free(msg);
            nng_aio_set_msg(w->aio, NULL);
            if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
                w->state = W_IDLE;
                break;
            }
        }
        start_recv(w);
        break;
    case W_PAUSE:
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
            w->state = W_IDLE;
        else
            start_recv(w);
        break;
    default:
        break; /* W_IDLE, W_HANDLER: no operation was pending */
    }
}

void wa_bus_reply_ok(wa_bus_job_t *job, cJSON *data)
{
    worker_t *w;
    char *buf;
    size_t len;
    wa_err_t err;

    if (job == NULL) {
        cJSON_Delete(data);
        return;
    }
    err = wa_reply_encode_ok(data, &buf, &len); /* WA_ETOOBIG over the max */
    cJSON_Delete(data);
    if (job->batch != NULL) {
        wa_request_clear(&job->req);
        if (err != WA_OK)
            batch_refuse(job, err,
                         err == WA_ETOOBIG ? "reply too large" : NULL);
        else
            batch_answer(job, buf, len);
        return;
    }
    w = job_worker(job);
    wa_request_clear(&w->job.req);
    if (err != WA_OK)
        answer_err(w, err, err == WA_ETOOBIG ? "reply too large" : NULL);
    else
        send_answer(w, buf, len);
}

void wa_bus_reply_err(wa_bus_job_t *job, wa_err_t err, const char *message)
{
    worker_t *w;
    char *buf;
    size_t len;

    if (job == NULL)
        return;
    if (err == WA_OK)
        err = WA_EINTERNAL;
    if (job->batch != NULL) {
        /* Encode before clearing: message may point into the request. */
        if (wa_reply_encode_err(err, message, &buf, &len) != WA_OK)
            buf = NULL;
        wa_request_clear(&job->req);
        batch_answer(job, buf, len);
        return;
    }
    w = job_worker(job);
    /* Encode before clearing: message may point into the request. */
    if (wa_reply_encode_err(err, message, &buf, &len) != WA_OK) {
        wa_request_clear(&w->job.req);
        start_recv(w);
        return;
    }
    wa_request_clear(&w->job.req);
    send_answer(w, buf, len);
}

wa_err_t wa_bus_server_start(nng_socket rep, int workers,
                             wa_bus_handler_fn handler, void *arg,
                             wa_bus_server_t **out)
{
    wa_bus_server_t *srv;
    nng_duration send_timeout;
    wa_err_t err = WA_OK;
    int rv;
    int i;

    if (workers < 1 || workers > 256 || handler == NULL || out == NULL)
        return WA_EINVAL;
    if (!is_proto(rep, NNG_REP0_SELF))
        return WA_EINVAL;
    if (nng_socket_get_ms(rep, NNG_OPT_SENDTIMEO, &send_timeout) != 0 ||
        send_timeout <= 0)
        send_timeout = WA_BUS_DEFAULT_TIMEOUT_MS;

    srv = calloc(1, sizeof(*srv) + (size_t)workers * sizeof(worker_t));
    if (srv == NULL)
        return WA_ENOMEM;
    srv->handler = handler;
    srv->arg = arg;
    srv->send_timeout = send_timeout;
    srv->nworkers = workers;
    for (i = 0; i < workers; i++) {
        worker_t *w = &srv->workers[i];

        w->srv = srv;
        if ((rv = nng_aio_alloc(&w->aio, worker_cb, w)) != 0 ||
            (rv = nng_ctx_open(&w->ctx, rep)) != 0) {
            err = wa_bus_err(rv);
            break;
        }
        w->ctx_open = true;
    }
    if (err != WA_OK) {
        wa_bus_server_stop(srv); /* nothing started: frees what exists */
        return err;
    }
    for (i = 0; i < workers; i++)
        start_recv(&srv->workers[i]);
    *out = srv;
    return WA_OK;
}

uint64_t wa_bus_server_requests(const wa_bus_server_t *srv)
{
    return srv == NULL
               ? 0
               : atomic_load_explicit(&srv->requests, memory_order_relaxed);
}

void wa_bus_server_stop(wa_bus_server_t *srv)
{
    int i;

    if (srv == NULL)
        return;
    /* After nng_aio_stop no operation can start on the aio again, so a
     * callback still running cannot re-arm its worker. */
    for (i = 0; i < srv->nworkers; i++) {
        if (srv->workers[i].aio != NULL)
            nng_aio_stop(srv->workers[i].aio);
    }
    for (i = 0; i < srv->nworkers; i++) {
        worker_t *w = &srv->workers[i];

        if (w->ctx_open)
            nng_ctx_close(w->ctx);
        if (w->aio != NULL) {
            /* An answer submitted after the stop was refused and left on
             * the aio. */
            nng_msg *msg = nng_aio_get_msg(w->aio);

            if (msg != NULL)
                nng_msg_free(msg);
            nng_aio_free(w->aio);
        }
        if (w->state == W_HANDLER)
            wa_request_clear(&w->job.req); /* unanswered: caller's bug */
    }
    free(srv);
}

/* ---- events ---- */

wa_err_t wa_bus_publish(nng_socket pub, const wa_event_t *ev)
{
    char *buf;
    size_t len;
    wa_err_t err;
    int rv;

    if (ev == NULL)
        return WA_EINVAL;
    if ((err = wa_event_encode(ev, &buf, &len)) != WA_OK)
        return err;
    rv = nng_send(pub, buf, len, 0); /* copies; PUB never blocks */
    free(buf);
    return wa_bus_err(rv);
}

wa_err_t wa_bus_subscribe(nng_socket sub, const char *user)
{
    char topic[WA_USER_MAX + 2];
    size_t len = 0;
    wa_err_t err;

    if (user != NULL && user[0] != '\0') {
        /* The newline ends the topic: "ab" must not match user "abc". */
        if ((err = wa_check_user(user)) != WA_OK)
            return err;
        len = strlen(user);
        memcpy(topic, user, len);
        topic[len++] = '\n';
    }
    return wa_bus_err(nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, topic, len));
}

/* Receive and decode one event; flags as for nng_recvmsg. */
static wa_err_t recv_event(nng_socket sub, wa_event_t *ev, int flags)
{
    nng_msg *msg;
    wa_err_t err;
    int rv;

    if (ev == NULL)
        return WA_EINVAL;
    memset(ev, 0, sizeof(*ev));
    if ((rv = nng_recvmsg(sub, &msg, flags)) != 0)
        return rv == NNG_EAGAIN ? WA_ETIMEDOUT : wa_bus_err(rv);
    err = wa_event_decode(nng_msg_body(msg), nng_msg_len(msg), ev);
    nng_msg_free(msg);
    return err;
}

wa_err_t wa_bus_recv_event(nng_socket sub, wa_event_t *ev)
{
    return recv_event(sub, ev, 0);
}

wa_err_t wa_bus_try_recv_event(nng_socket sub, wa_event_t *ev)
{
    return recv_event(sub, ev, NNG_FLAG_NONBLOCK);
}

/* One step of splitmix64. */
static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void wa_rid_new(char *buf, size_t len)
{
    /* 11 hex digits of the wall clock's milliseconds, then 13 of a
     * per-thread splitmix64 stream seeded once from nng_random() (a
     * CSPRNG): unique ids without a system call per request, which the
     * gateway makes one of for every request that brings none. Ids need to
     * be unique, not secret: idempotency is keyed by (op, user, rid). They
     * sort by creation time, so store-svc's table of them (keyed by rid
     * first) grows at one end: a commit of many writes dirties a leaf or
     * two of it, not one per write. */
    static _Thread_local uint64_t state;
    struct timespec ts;
    uint64_t ms;

    if (buf == NULL || len == 0)
        return;
    if (state == 0)
        state = (uint64_t)nng_random() << 32 | nng_random() | 1;
    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    snprintf(buf, len, "%011llx%013llx",
             (unsigned long long)(ms & 0xfffffffffffull),
             (unsigned long long)(splitmix64(&state) >> 12));
}
