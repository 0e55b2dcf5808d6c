/*
 * cdp.h - a small Chrome DevTools protocol client over
 * --remote-debugging-pipe: NUL-framed JSON, the browser reads commands on
 * its fd 3 and writes replies and events on its fd 4.
 *
 * Every call gets an id, a timeout and a callback; replies are matched by
 * id; events (with the sessionId of a target attached with flatten:true, or
 * none for the browser itself) go to one event callback. Every incoming
 * frame is bounded (CDP_FRAME_MAX) and checked with cJSON before use; a
 * frame that is not a JSON object of the expected shape is dropped, an
 * oversized one ends the connection.
 *
 * Threading: a cdp_t belongs to the libuv loop it was made on; every
 * function and every callback runs on that loop's thread.
 */
#ifndef SS_CDP_H
#define SS_CDP_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "wa/err.h"

/* Largest frame accepted from the browser, and largest command sent. */
#define CDP_FRAME_MAX (16u * 1024u * 1024u)
/* Longest method name and session id looked at. */
#define CDP_METHOD_MAX 128
#define CDP_SESSION_MAX 64

typedef struct cdp cdp_t;

/*
 * The answer to one call, exactly once: err WA_OK with result (the reply's
 * "result" object, borrowed for the duration of the call), or WA_EBROWSER
 * with the protocol's error message in errmsg, WA_ETIMEDOUT, or WA_ECLOSED
 * (the connection is gone or cdp__close was called).
 */
typedef void (*cdp_reply_fn)(void *arg, wa_err_t err, const cJSON *result,
                             const char *errmsg);

/* An event. session is the flat sessionId or NULL (browser); params is
 * an object (empty when the frame had none), borrowed. */
typedef void (*cdp_event_fn)(void *arg, const char *session, const char *method,
                             const cJSON *params);

/*
 * The connection ended by itself: EOF, a read or write error (WA_ECLOSED),
 * or a frame over CDP_FRAME_MAX (WA_ETOOBIG). Called once, after every
 * pending call was failed with WA_ECLOSED; never called after cdp__close.
 */
typedef void (*cdp_closed_fn)(void *arg, wa_err_t why);

typedef struct cdp_handlers {
    cdp_event_fn on_event;
    cdp_closed_fn on_closed;
    void *arg;
} cdp_handlers_t;

/* Counters, for tests and diagnostics. */
typedef struct cdp_stats {
    uint64_t frames_in;
    uint64_t frames_bad; /* not JSON, or not of a known shape: dropped */
    uint64_t calls;
    uint64_t timeouts;
} cdp_stats_t;

/*
 * Make a client on loop with its two pipes initialised but not open. Either
 * hand cdp__cmd_pipe/cdp__evt_pipe to uv_spawn (UV_CREATE_PIPE) or open
 * existing fds with cdp__open_fds, then cdp__start. Release with
 * cdp__close (always, even if never started).
 */
wa_err_t cdp__new(uv_loop_t *loop, const cdp_handlers_t *h, cdp_t **out);

/* The pipe the browser reads commands from (its fd 3) and the one it writes
 * to (its fd 4), for uv_spawn's stdio containers. */
uv_pipe_t *cdp__cmd_pipe(cdp_t *c);
uv_pipe_t *cdp__evt_pipe(cdp_t *c);

/* Open existing descriptors (tests: socketpairs). Takes them over. */
wa_err_t cdp__open_fds(cdp_t *c, int cmd_fd, int evt_fd);

/* Start reading. */
wa_err_t cdp__start(cdp_t *c);

/*
 * Send {"id","method","params","sessionId"}. params (an object, or NULL for
 * {}) is consumed whatever the result; session may be NULL. fn is called
 * exactly once, never before cdp__call returns; on an immediate failure
 * (WA_ECLOSED, WA_ENOMEM, WA_ETOOBIG) the error is returned and fn is not
 * called. timeout_ms > 0.
 */
wa_err_t cdp__call(cdp_t *c, const char *session, const char *method,
                   cJSON *params, int timeout_ms, cdp_reply_fn fn, void *arg);

/* Fail (WA_ECLOSED) every pending call whose callback argument is arg:
 * for an owner going away before its calls come back. */
void cdp__cancel(cdp_t *c, void *arg);

/* Number of calls waiting for their reply. */
size_t cdp__pending(const cdp_t *c);

void cdp__stats(const cdp_t *c, cdp_stats_t *out);

/*
 * Close both pipes (the browser sees EOF on fd 3 and exits cleanly), fail
 * every pending call with WA_ECLOSED (their callbacks run before this
 * returns), and free the client once libuv has closed its handles. No
 * callback of any kind runs after this returns. NULL is a no-op. Safe to
 * call from inside a callback of c.
 */
void cdp__close(cdp_t *c);

#endif /* SS_CDP_H */
