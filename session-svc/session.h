/*
 * session.h - session-svc's private state and the interfaces its files
 * share (DESIGN §7).
 *
 *   main.c       process plumbing: configuration, sockets, loop, teardown
 *   cdp.c        the DevTools client (cdp.h)
 *   browser.c    one Chromium: argv, profile directory, SingletonLock,
 *                spawn on pipes, exit, process group, backoff
 *   adapter.c    waweb.js injected into the page; calls into it; the
 *                checking of everything the page sends back
 *   sessions.c   the per-user table: start, stop, crash relaunch
 *   spare.c      pre-warmed browsers a connect adopts (SPARE_BROWSERS)
 *   unlinker.c   the background logout of a profile /disconnect let go
 *                while it still held a login
 *   state.c      the status machine: the one transition function
 *   storeio.c    worker threads writing transitions to store-svc, in order
 *                per user, before each event is published
 *   qr.c         QR string -> PNG data URL
 *   ops.c        the bus operations (wa.*), the send rid cache
 *   registry.c   instance register/heartbeat, restore, placement checks
 *
 * Threading: everything in ss_t and ss_session_t belongs to the libuv loop
 * thread. Bus handlers (nng threads) only queue jobs for the loop; store
 * calls run on storeio's threads or libuv's pool and come back by
 * uv_queue_work's after-callback.
 */
#ifndef SS_SESSION_H
#define SS_SESSION_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cdp.h"
#include "wa/auth.h"
#include "wa/bus.h"

#define SS_SERVICE "session-svc"

/* Limits of what crosses the page and the bus. */
#define SS_QR_RAW_MAX 1024          /* bytes of a QR login string */
#define SS_PHONE_MAX 20             /* digits of an account's number */
#define SS_NAME_MAX 256             /* bytes of a display name */
#define SS_CHAT_ID_MAX 96           /* bytes of a chat or user id */
#define SS_MSG_ID_MAX 256           /* bytes of a message id */
#define SS_BODY_MAX (64 * 1024)     /* bytes of a message body (send, page) */
#define SS_TYPE_MAX 32              /* bytes of a message type */
#define SS_PAYLOAD_MAX (512 * 1024) /* bytes of one binding payload */
#define SS_ERRMSG_MAX 200           /* bytes of an error text from the page */
#define SS_CHATS_MAX 2000           /* chats in one wa.chats answer */
#define SS_LIMIT_MAX 500            /* wa.messages limit */
#define SS_LIMIT_DEFAULT 50
#define SS_PATH_MAX 3200

/* QR image: pixels per module and quiet zone in modules. */
#define SS_QR_SCALE 6
#define SS_QR_MARGIN 4

/* A pre-warmed browser's profile: $SESSIONS_DIR/.spare-XXXXXX (user
 * directory names never start with '.'), and the file in it its maker
 * holds flock()ed (spare.c). */
#define SS_SPARE_PREFIX ".spare-"
#define SS_SPARE_OWNER ".wa-spare-owner"

/* A profile let go with its login still in it, waiting for its logout:
 * $SESSIONS_DIR/.unlink-XXXXXX, and the file in it its worker holds
 * flock()ed (unlinker.c). */
#define SS_UNLINK_PREFIX ".unlink-"
#define SS_UNLINK_OWNER ".wa-unlink-owner"

/* The binding the page reports through. */
#define SS_BINDING "__waBridge"

typedef struct ss_config {
    char *sessions_dir;
    char *wa_web_url;
    char *chromium_path;
    char *puppeteer_path;
    long max_sessions;
    char *instance_id;
    char *store_url;
    char *events_url;
    char *session_url;
    char *advertise_url;
    long workers;
    int log_level;
    char *waweb_js;        /* WAWEB_JS: the adapter script */
    long qr_max;           /* QR_MAX_REFRESHES */
    char *browser_flags;   /* CHROMIUM_FLAGS_EXTRA: appended to argv */
    char *user_agent;      /* WA_USER_AGENT: overrides the derived one */
    long call_timeout_ms;  /* PAGE_CALL_TIMEOUT_MS: calls into the page */
    long stop_timeout_ms;  /* BROWSER_STOP_TIMEOUT_MS: then SIGKILL */
    long backoff_max_ms;   /* BROWSER_BACKOFF_MAX_MS */
    long store_timeout_ms; /* STORE_TIMEOUT_MS: one store-svc call */
    long spares;           /* SPARE_BROWSERS: pre-warmed browsers, 0 = off */
} ss_config_t;

typedef struct ss ss_t;
typedef struct ss_session ss_session_t;
typedef struct ss_browser ss_browser_t;
typedef struct storeio storeio_t;
typedef struct ridcache ridcache_t;
typedef struct ss_registry ss_registry_t;
typedef struct ss_opq ss_opq_t;

/* ------------------------------------------------------------- state.c */

typedef enum ss_status {
    SS_DISCONNECTED = 0,
    SS_INITIALIZING,
    SS_QR,
    SS_AUTHENTICATED,
    SS_READY,
    SS_ERROR,
    SS_STATUS_COUNT
} ss_status_t;

/* "disconnected", ... (the statuses of DESIGN §4), or NULL out of range. */
const char *state__name(ss_status_t s);

/* Is from -> to allowed? (qr -> qr is: a new QR code.) */
bool state__legal(ss_status_t from, ss_status_t to);

/* What a transition carries. Strings are copied; unused ones NULL. */
typedef struct ss_transition {
    ss_status_t to;
    const char *reason;  /* disconnected: why (logout, qr_timeout, ...) */
    const char *message; /* error: what went wrong */
    const char *qr;      /* qr: the raw login string */
    const char *phone;   /* ready: the account's number, digits */
    const char *name;    /* ready: its display name (may be NULL) */
    const char *rid;     /* request that caused it, for logs (may be NULL) */
    bool force;          /* write and publish even if the status is the same */
    bool clear_account;  /* disconnected: forget phone, name, connectedAt */
} ss_transition_t;

/*
 * The one transition function. Checks legality (WA_ECONFLICT if not, and
 * nothing changes), updates s in memory, and queues the store write
 * (session.upsert, then event.record) and the event publication on storeio
 * (see storeio.c for the order). For SS_QR renders the PNG data URL first
 * (WA_EINVAL for a bad QR string, nothing changes). Loop thread.
 */
wa_err_t state__set(ss_session_t *s, const ss_transition_t *t);

/* A new message from the page: recorded without its body, published with
 * it. msg is consumed. Loop thread. */
wa_err_t state__message(ss_session_t *s, cJSON *msg);

/*
 * Events about a session that are no transition of it: recorded and
 * published like any event, the session row left as it is (only the
 * instance that runs a session writes its status). Loop thread.
 *
 * state__lost: user's session ran on an instance that died (store-svc
 * named it in a heartbeat's "lost"); an error event with reason
 * "instance_lost", so the user's page says so at once instead of when
 * another instance takes the user over. A user running here is left out.
 *
 * state__resumed: this instance was counted dead and registered again,
 * keeping its sessions; each running one says its status again (reason
 * "resumed"), since its users may have been told it was lost.
 */
wa_err_t state__lost(ss_t *ss, const char *user);
wa_err_t state__resumed(ss_session_t *s);

/* ------------------------------------------------------------- qr.c */

typedef struct qr_matrix {
    int width;           /* modules a side */
    unsigned char *dark; /* width*width, row-major, 1 = dark */
} qr_matrix_t;

/* libqrencode's matrix for raw (8-bit mode, level L, 1..SS_QR_RAW_MAX
 * bytes). Free with qr__matrix_free. */
wa_err_t qr__matrix(const char *raw, qr_matrix_t *out);
void qr__matrix_free(qr_matrix_t *m);

/* raw as a 1-bit PNG in memory (*png malloc'd, caller frees); *px is the
 * image's side in pixels (may be NULL). */
wa_err_t qr__png(const char *raw, unsigned char **png, size_t *len, int *px);

/* "data:image/png;base64,..." for raw; *out malloc'd. */
wa_err_t qr__data_url(const char *raw, char **out);

/* Standard base64 with padding, malloc'd; NULL on OOM. */
char *qr__base64(const unsigned char *in, size_t len);

/* ----------------------------------------------------------- browser.c */

typedef struct ss_browser_opts {
    const char *exe;        /* the executable */
    const char *profile;    /* --user-data-dir */
    const char *user_agent; /* may be NULL */
    const char *extra;      /* space-separated extra flags, may be NULL */
    bool no_sandbox;        /* running as root */
} ss_browser_opts_t;

/*
 * The argv of a browser (argv[0] = exe), NULL-terminated and malloc'd:
 * free with wa_strv_free. Flags of DESIGN §7 plus the memory-saving set
 * measured in docs/architecture.md, then opts->extra split on blanks.
 */
wa_err_t browser__argv(const ss_browser_opts_t *o, char ***out);

/* $dir/<wa_user_dirname(user)> into out. */
wa_err_t browser__profile_path(const char *sessions_dir, const char *user,
                               char *out, size_t len);

/* mkdir -p with mode 0700 for the last component (and missing parents). */
wa_err_t browser__mkdirs(const char *path);

/*
 * Clear a stale SingletonLock (with SingletonSocket and SingletonCookie)
 * left in profile by a browser that is gone. The lock is a symlink
 * "<host>-<pid>": when host is ours and that pid is alive and is a browser
 * using this profile, the lock is live and WA_ECONFLICT is returned (the
 * caller retries later); otherwise the three are removed. *cleared tells
 * whether anything was removed (may be NULL).
 */
wa_err_t browser__clear_singleton(const char *profile, bool *cleared);

/* rm -rf path without following symlinks. WA_OK if it did not exist. */
wa_err_t browser__remove_tree(const char *path);

/*
 * Before launching on profile: if it is a link to an adopted spare's
 * directory (spare.c), swap the two atomically (renameat2 RENAME_EXCHANGE)
 * so profile is a plain directory again, and remove the spare's name; a
 * dangling link is removed. WA_ECONFLICT when a live browser still runs on
 * it; WA_OK (link kept, still valid) where the filesystem cannot exchange.
 */
wa_err_t browser__settle_profile(const char *profile);

/* Delete profile: the directory, or a link to an adopted spare's
 * directory together with that directory. */
wa_err_t browser__remove_profile(const char *profile);

/* Next relaunch delay: 1 s, doubling, capped at max_ms. */
uint64_t browser__backoff_next(uint64_t cur_ms, uint64_t max_ms);

/* Chromium's major version from `<exe> --version` ("Chromium 156.0..."),
 * or 0 when unknown. Blocking (at most ~5 s); call at start. */
int browser__major_version(const char *exe);

typedef struct ss_browser_cb {
    /* DevTools event / connection end, forwarded from cdp. */
    cdp_event_fn on_event;
    /* The process exited (after the pipe closed or not). Called once; the
     * browser frees itself after. */
    void (*on_exit)(void *arg, int64_t status, int term_signal);
    void *arg;
} ss_browser_cb_t;

/*
 * Spawn the browser on argv in its own session and process group, with
 * the DevTools pipes on fds 3 and 4, stdin/stdout/stderr on /dev/null.
 * On success *out is running and cdp reading.
 */
wa_err_t browser__launch(uv_loop_t *loop, char **argv,
                         const ss_browser_cb_t *cb, ss_browser_t **out);

cdp_t *browser__cdp(ss_browser_t *b);

/* Hand the browser to another owner: cb replaces the callbacks given at
 * launch (an adopted spare). browser__owner is the current cb->arg. */
void browser__rebind(ss_browser_t *b, const ss_browser_cb_t *cb);
void *browser__owner(const ss_browser_t *b);
int browser__pid(const ss_browser_t *b);

/*
 * Ask the browser to exit cleanly: close the DevTools pipe (Chromium exits
 * within ~0.1 s, flushing its stores; WAWEB.md §6). If it is still there
 * after grace_ms, SIGKILL its process group. on_exit follows.
 */
void browser__stop(ss_browser_t *b, uint64_t grace_ms);

/* SIGKILL the browser's process group now (last resort). */
void browser__kill(ss_browser_t *b);

/* --------------------------------------------------------- adapter.c */

typedef enum ss_page_kind {
    PAGE_HELLO = 0, /* the script started in the top frame */
    PAGE_LOADING,   /* Socket.state while starting (debug only) */
    PAGE_QR,        /* qr: login string */
    PAGE_AUTHENTICATED,
    PAGE_READY,   /* phone, name */
    PAGE_MESSAGE, /* msg */
    PAGE_LOGOUT,
    PAGE_ERROR, /* text */
} ss_page_kind_t;

/* One checked binding payload. Strings point into storage of the struct. */
typedef struct ss_page_event {
    ss_page_kind_t kind;
    char text[SS_QR_RAW_MAX + 1]; /* qr string, error text, state */
    char phone[SS_PHONE_MAX + 1];
    char name[SS_NAME_MAX + 1];
    cJSON *msg; /* PAGE_MESSAGE: a checked message object, owned */
} ss_page_event_t;

/*
 * Check a binding payload: a JSON object {"t": kind, ...} of at most
 * SS_PAYLOAD_MAX bytes of valid UTF-8, every field of the right type and
 * size. WA_OK with *ev filled (ss_page_event_clear after), or WA_EINVAL /
 * WA_ETOOBIG / WA_EUTF8 and *ev empty. Hostile input is refused, never
 * trusted.
 */
wa_err_t adapter__parse_payload(const char *payload, ss_page_event_t *ev);
void ss_page_event_clear(ss_page_event_t *ev);

/*
 * A message object from the page, rebuilt with only the fields of
 * /messages, each checked: {"id","chatId","from","to","body","timestamp",
 * "fromMe","type"}. NULL when anything is wrong.
 */
cJSON *adapter__message(const cJSON *in);

/* A chat object rebuilt: {"id","name","isGroup","unreadCount",
 * "timestamp","lastMessage"}. NULL when anything is wrong. */
cJSON *adapter__chat(const cJSON *in);

/*
 * Results of the page's functions, checked and rebuilt into the bus
 * answer: chats -> {"chats":[...]}, messages -> {"messages":[...]},
 * send -> {"id","timestamp"}, chat -> {"chat":{...}}. value is what the
 * page returned (its "data"). WA_EBROWSER for anything malformed.
 */
wa_err_t adapter__result(const char *fn, const cJSON *value, cJSON **out);

/* Is id a chat id we accept: <digits>@c.us or <digits>[-<digits>]@g.us? */
bool adapter__chat_id_valid(const char *id);

/* Is phone E.164 ("+" optional, 7..15 digits, not starting with 0)?
 * Digits only into out (SS_PHONE_MAX + 1). */
bool adapter__phone_normalize(const char *phone, char *out, size_t len);

/* Begin driving a freshly launched browser: attach to its page, inject the
 * script, navigate to WA_WEB_URL. Progress and failures come back as state
 * transitions. A spare stops before navigating. Loop thread. */
void adapter__start(ss_session_t *s);

/* An adopted spare's page: navigate now if its setup is done, else once
 * it is (the setup's replies find the new owner through the browser). */
void adapter__resume(ss_session_t *s);

/* A DevTools event from s's browser. */
void adapter__on_event(ss_session_t *s, const char *session, const char *method,
                       const cJSON *params);

/* The answer of a page call: err WA_OK with data (rebuilt by
 * adapter__result, owned by the callee), or an error and a message. */
typedef void (*adapter_done_fn)(void *arg, wa_err_t err, cJSON *data,
                                const char *message);

/*
 * Call fn (one of the names waweb.js exposes) in the page with args (an
 * object, consumed) by Runtime.callFunctionOn, arguments passed as CDP
 * values, result by value. done is called exactly once (possibly before
 * this returns, for a session with no page). Loop thread.
 */
void adapter__call(ss_session_t *s, const char *fn, cJSON *args, int timeout_ms,
                   adapter_done_fn done, void *arg);

/* --------------------------------------------------------- sessions.c */

/* Targets the browser attached us to before Target.createTarget named
 * ours (its attachedToTarget event comes before the reply). */
#define SS_PAGE_CANDIDATES 4

typedef struct ss_page_target {
    char target_id[CDP_SESSION_MAX + 1];
    char session_id[CDP_SESSION_MAX + 1];
} ss_page_target_t;

typedef struct ss_page {
    char session_id[CDP_SESSION_MAX + 1]; /* flat session of the page */
    char target_id[CDP_SESSION_MAX + 1];
    ss_page_target_t cand[SS_PAGE_CANDIDATES];
    int ncand;
    int64_t context_id; /* execution context of the script; 0 = none */
    int step;           /* attach sequence progress */
    int replies;        /* replies to the pipelined setup commands */
    uint64_t t0;        /* uv_hrtime() at launch, for the debug timings */
    bool navigated;
    bool attached;
} ss_page_t;

/* What adapter__page_attached made of a target the browser attached. */
typedef enum ss_attach {
    SS_ATTACH_OURS,    /* our page: page->session_id is set */
    SS_ATTACH_PENDING, /* kept until Target.createTarget answers */
    SS_ATTACH_FOREIGN, /* not ours: resume and detach it */
} ss_attach_t;

/*
 * Target.attachedToTarget (browser-level auto-attach) for target
 * with flat session sid. Ours once page->target_id names it; while
 * createTarget has not answered, kept as a candidate (at most
 * SS_PAGE_CANDIDATES, then foreign). Pure; for tests.
 */
ss_attach_t adapter__page_attached(ss_page_t *page, const char *target,
                                   const char *sid);

/*
 * Target.createTarget answered with target: page->target_id is set, and
 * the candidate with that id, if any, becomes the page's session (true).
 * Every other candidate's session id is copied to release[] (*nrelease of
 * them, at most SS_PAGE_CANDIDATES) to be detached; the
 * candidates are cleared. Pure; for tests.
 */
bool adapter__page_created(ss_page_t *page, const char *target,
                           char release[][CDP_SESSION_MAX + 1], int *nrelease);

typedef enum ss_stop_mode {
    STOP_KEEP,   /* close the browser, keep profile and status (shutdown) */
    STOP_LOST,   /* placement moved: close, keep the profile */
    STOP_END,    /* close, keep profile, status disconnected (qr_timeout) */
    STOP_DELETE, /* close, delete the profile, disconnected (logged out) */
    STOP_LOGOUT, /* log out on the page first, then as STOP_DELETE */
} ss_stop_mode_t;

typedef void (*ss_stopped_fn)(void *arg, ss_session_t *s);

/* fn(arg, ...) once s's browser is gone (sessions__run_waiters). false:
 * out of memory, nothing queued. */
bool sessions__add_waiter(ss_session_t *s, ss_stopped_fn fn, void *arg);

/* Call and free s's waiters, each with gone (s, or NULL for a record
 * about to be freed). */
void sessions__run_waiters(ss_session_t *s, ss_session_t *gone);

typedef struct ss_stop_waiter {
    struct ss_stop_waiter *next;
    ss_stopped_fn fn;
    void *arg;
} ss_stop_waiter_t;

struct ss_session {
    ss_t *ss;
    ss_session_t *next;
    char user[WA_USER_MAX + 1];
    char profile[SS_PATH_MAX];
    ss_status_t status;
    char phone[SS_PHONE_MAX + 1];
    char name[SS_NAME_MAX + 1];
    char *qr_raw; /* while status is qr */
    char *qr_url; /* its PNG data URL */
    int qr_count; /* QR codes shown since the last start */
    char connected_at[WA_TIMESTAMP_MAX + 1];
    char last_activity[WA_TIMESTAMP_MAX + 1];
    ss_browser_t *browser; /* NULL when no process */
    ss_page_t page;
    bool want;     /* a browser should run (connect, restore) */
    bool stopping; /* a stop is in progress */
    ss_stop_mode_t stop_mode;
    char stop_reason[32];
    ss_stop_waiter_t *waiters; /* run once the browser is gone */
    uv_timer_t relaunch;       /* backoff */
    uv_timer_t ready_timer;    /* gives up on a page that never loads */
    uint64_t backoff_ms;
    uint64_t launched_at; /* uv_now() of the last launch */
    uint64_t changed_at;  /* ms (uv_hrtime) of the last status change */
    int lost_checks;      /* consecutive placement checks without us */
    int busy;             /* page calls in flight */
    int closing;          /* timers still closing (sessions__release) */
    bool spare;           /* a pre-warmed browser, no user (spare.c) */
    int owner_fd;         /* spare: its SS_SPARE_OWNER, flock()ed; or -1 */
    /* Does the profile perhaps hold a login? Unknown counts as yes; no
     * once the page showed a QR code or logged out, or for a profile this
     * process made. A /disconnect that cannot log out on the page hands
     * such a profile to unlinker.c. */
    bool maybe_linked;
    bool unlinking;      /* a browser of unlinker.c, no user */
    bool unlink_calling; /* unlinker: the page's logout was called */
    bool unlink_done;    /* unlinker: no login left; delete the profile */
};

ss_session_t *sessions__find(ss_t *ss, const char *user);

/* Number of sessions with a browser wanted or running (capacity). */
long sessions__active(ss_t *ss);

/* Lists of browsers kept beside the users' table (spares, unlinkers):
 * linked through next. How many; take s out; SIGKILL every browser. */
long sessions__count(const ss_session_t *head);
void sessions__unlist(ss_session_t **head, ss_session_t *s);
void sessions__kill_list(ss_session_t *head);

/* Free a record of such a list whose browser may still run (a failed
 * shutdown): its exit must not reach the freed record. */
void sessions__abandon(ss_session_t *s);

/* Find or create (status disconnected, no browser). */
wa_err_t sessions__get(ss_t *ss, const char *user, ss_session_t **out);

/* A zeroed record with its timers, in no list; sessions__release closes
 * the timers and frees it (both loop thread). */
ss_session_t *sessions__alloc(ss_t *ss);
void sessions__release(ss_session_t *s);

/*
 * Start user's browser (connect or restore). Already wanted: nothing.
 * WA_EFULL when MAX_SESSIONS browsers run. rid for logs (may be NULL).
 */
wa_err_t sessions__start(ss_session_t *s, const char *rid);

/*
 * Spawn Chromium on s->profile with the service's flags (browser__argv),
 * cb receiving its events and exit; s->browser and s->launched_at are set.
 * The one launch of users' and spare browsers alike.
 */
wa_err_t sessions__spawn(ss_session_t *s, const ss_browser_cb_t *cb);

/* The on_event of every browser's callbacks: arg is its session record;
 * the event goes to adapter__on_event. */
void sessions__browser_event(void *arg, const char *session, const char *method,
                             const cJSON *params);

/*
 * Stop s's browser in mode; fn(arg, s) once it has exited (and the profile
 * is deleted, for STOP_DELETE/STOP_LOGOUT), at once if none runs. fn may
 * be NULL. reason goes into the disconnected event.
 */
void sessions__stop(ss_session_t *s, ss_stop_mode_t mode, const char *reason,
                    ss_stopped_fn fn, void *arg);

/* A wanted session waiting out its crash backoff relaunches at once
 * (status initializing); otherwise nothing happens. */
void sessions__relaunch_now(ss_session_t *s);

/* The page reports logout / crash / fatal error: end or relaunch. */
void sessions__page_logout(ss_session_t *s);
void sessions__page_failed(ss_session_t *s, const char *message);

/* The page reached ready: the launch counts as stable from now. */
void sessions__page_ready(ss_session_t *s);

/* Stop every browser (shutdown): STOP_KEEP for all, then call done once
 * all have exited or the deadline passed (stragglers SIGKILLed). */
void sessions__stop_all(ss_t *ss, void (*done)(ss_t *ss));

/* Free every session (after stop_all completed). */
void sessions__free_all(ss_t *ss);

/* -------------------------------------------------------------- spare.c */

/* Sweep spare directories nobody owns or links to, then start filling
 * (SPARE_BROWSERS). Loop thread, at start. */
void spare__init(ss_t *ss);

/*
 * Adopt a spare for a user whose profile does not exist yet: profile
 * becomes a relative symlink to the spare's directory, and its browser
 * and page setup go to the caller (*b, *page), who rebinds the browser.
 * WA_ENOTFOUND when no spare runs, WA_ECONFLICT when profile exists.
 */
wa_err_t spare__take(ss_t *ss, const char *profile, ss_browser_t **b,
                     ss_page_t *page);

/* Start spares up to SPARE_BROWSERS now (a session ended: capacity may
 * have come free), unless a start is already scheduled. */
void spare__fill(ss_t *ss);

/* A spare's page setup failed: close it (a new one follows, with backoff). */
void spare__failed(ss_session_t *sp, const char *why);

/* Shutdown: no more spares; close each, calling gone(arg) once per spare
 * when it has exited. Returns how many will call. free_all releases what
 * is left and the timer (sessions__kill_list SIGKILLs stragglers). */
long spare__stop_all(ss_t *ss, ss_stopped_fn gone, void *arg);
void spare__free_all(ss_t *ss);

/* ----------------------------------------------------------- unlinker.c */

/* Start working through the .unlink-* directories of SESSIONS_DIR (a few
 * seconds after start). Loop thread. */
void unlinker__init(ss_t *ss);

/*
 * user's profile (no browser runs on it) still holds a login that could
 * not be logged out on the page: move it aside, and log the device out
 * from there in the background, then delete it. WA_OK: the profile path
 * is gone. WA_ENOTFOUND: there is no profile. Any other error: nothing
 * moved; the caller deletes the profile itself.
 */
wa_err_t unlinker__defer(ss_t *ss, const char *profile, const char *user);

/*
 * The filesystem part of unlinker__defer: a link to a spare settled,
 * SS_UNLINK_OWNER made and flock()ed in profile (its fd into *owner_fd,
 * the caller's), then profile renamed to sessions_dir/.unlink-XXXXXX
 * (into out). For tests.
 */
wa_err_t unlinker__move_aside(const char *sessions_dir, const char *profile,
                              char *out, size_t len, int *owner_fd);

/* "<attempts> <not-before ms>" of an SS_UNLINK_OWNER file. For tests. */
bool unlinker__owner_parse(const char *text, int *attempts,
                           uint64_t *not_before);

/* What the page of an unlinker browser reports (adapter.c, sessions.c):
 * PAGE_QR, PAGE_READY, PAGE_LOGOUT; and that it failed. */
void unlinker__page(ss_session_t *u, ss_page_kind_t kind);
void unlinker__failed(ss_session_t *u, const char *why);

/* Shutdown, as spare__stop_all / spare__free_all. */
long unlinker__stop_all(ss_t *ss, ss_stopped_fn gone, void *arg);
void unlinker__free_all(ss_t *ss);

/* ------------------------------------------------------------ storeio.c */

typedef struct storeio_job {
    struct storeio_job *next;
    char user[WA_USER_MAX + 1];
    char rid[WA_RID_MAX + 1];
    cJSON *upsert; /* session.upsert args, or NULL */
    wa_event_type_t type;
    cJSON *record;  /* event.record data (no bodies), or NULL: no event */
    cJSON *publish; /* published data, or NULL: the same as record */
    /* Called once the job is done or dropped, on a store worker thread. */
    void (*done)(void *arg);
    void *done_arg;
} storeio_job_t;

/*
 * threads workers; a user's jobs always go to the same worker, so they are
 * written and published in the order submitted. For each job: upsert (if
 * any), then event.record (which returns the seq), then publish with that
 * seq. A store call failing in transport is retried with the same rid
 * (store-svc is idempotent by rid) for up to retry_ms; an event that could
 * not be recorded is not published.
 */
wa_err_t storeio__new(nng_socket store, nng_socket events, int threads,
                      int call_timeout_ms, int retry_ms, storeio_t **out);

/* Queue job (consumed, even on failure). WA_ECLOSED after stop began,
 * WA_EFULL when the queue is over its bound. Thread-safe. */
wa_err_t storeio__submit(storeio_t *io, storeio_job_t *job);

/*
 * Call done(arg) on a store worker thread once every job queued before for
 * user has been written (or dropped at shutdown): a write barrier, for
 * answers that must not run ahead of the database. done is called exactly
 * once, at once if the barrier cannot be queued. Thread-safe.
 */
void storeio__barrier(storeio_t *io, const char *user, void (*done)(void *arg),
                      void *arg);

/* Jobs queued or running (for tests). */
size_t storeio__backlog(storeio_t *io);

/* Finish queued jobs for at most drain_ms, drop the rest, join, free. */
void storeio__free(storeio_t *io, int drain_ms);

/* ---------------------------------------------------------------- ops.c */

typedef enum rc_state {
    RC_NEW,      /* reserved: the caller runs the send and finishes it */
    RC_DONE,     /* answered before: result copied out */
    RC_PENDING,  /* the first is in flight: the waiter was queued */
    RC_MISMATCH, /* the rid was used with other arguments */
} rc_state_t;

/* A completed answer: data (JSON text) or an error. */
typedef struct rc_result {
    wa_err_t err;
    char *data; /* JSON text on success, malloc'd */
    char message[WA_MESSAGE_MAX + 1];
} rc_result_t;

typedef void (*rc_waiter_fn)(void *waiter, const rc_result_t *res);

/* At most max entries, each kept ttl_ms after completion. Loop thread. */
wa_err_t ridcache__new(size_t max, uint64_t ttl_ms, ridcache_t **out);
void ridcache__free(ridcache_t *c);

/*
 * Look (user, rid) up. RC_DONE copies the result into *res (free data).
 * RC_PENDING queues waiter. RC_NEW reserves the key: ridcache__finish
 * must follow. fp fingerprints the arguments.
 */
wa_err_t ridcache__begin(ridcache_t *c, const char *user, const char *rid,
                         uint64_t fp, uint64_t now_ms, void *waiter,
                         rc_state_t *state, rc_result_t *res);

/* Complete a reservation: keep res (copied) when keep is set, else forget
 * the key so a retry runs again; then fn(waiter, res) for every waiter. */
void ridcache__finish(ridcache_t *c, const char *user, const char *rid,
                      const rc_result_t *res, bool keep, uint64_t now_ms,
                      rc_waiter_fn fn);

size_t ridcache__size(const ridcache_t *c);

/* The bus handler (nng threads): queue the job for the loop. */
void ops__handle(void *arg, wa_bus_job_t *job);

/* Set up / tear down the queue and its uv_async (loop thread). */
wa_err_t ops__init(ss_t *ss);
/* Refuse new jobs (answered closed), answer every queued one, close the
 * uv_async (loop thread). */
void ops__shutdown(ss_t *ss);
/* Free the queue and the rid cache: after wa_bus_server_stop. */
void ops__free(ss_t *ss);

/* ----------------------------------------------------------- registry.c */

/* Register, then restore the users placed here, then heartbeat every 2 s
 * (re-registering on not_found) and stop users placed elsewhere. */
wa_err_t registry__start(ss_t *ss);
void registry__stop(ss_t *ss);

/* ------------------------------------------------------------- main.c */

struct ss {
    ss_config_t cfg;
    char chromium[4096]; /* resolved browser executable */
    char instance[128];  /* INSTANCE_ID or hostname-pid */
    char advertise[600]; /* the URL registered (ss_advertise_url) */
    /* This process's send.claim nonce (ops.c): its own claims of a send's
     * rid match, an earlier process's (before a restart) do not. */
    char send_nonce[WA_RID_MAX + 1];
    char user_agent[256];
    char *script; /* waweb.js source */
    bool is_root;
    uv_loop_t *loop;
    uv_signal_t sigterm, sigint;
    nng_socket rep;    /* REP, listens on SESSION_URL */
    nng_socket store;  /* REQ, dials STORE_URL */
    nng_socket events; /* PUB, dials EVENTS_URL */
    wa_bus_server_t *server;
    storeio_t *io;
    ss_session_t *sessions;
    ss_session_t *spares;   /* pre-warmed browsers (spare.c) */
    uv_timer_t spare_timer; /* fills up the spares */
    uint64_t spare_backoff_ms;
    bool spare_timer_ready;
    ss_session_t *unlinks;   /* browsers logging out let-go profiles */
    uv_timer_t unlink_timer; /* looks for the next one due */
    bool unlink_timer_ready;
    ss_opq_t *opq;
    ridcache_t *rids;
    ss_registry_t *registry;
    uv_timer_t deadline; /* shutdown's last resort */
    bool stopping;
};

/*
 * Find the browser: CHROMIUM_PATH, else PUPPETEER_EXECUTABLE_PATH, else the
 * first of chromium, chromium-browser, google-chrome on PATH. The result is
 * an executable regular file. WA_OK and out filled, or WA_ENOTFOUND with a
 * one-line reason in err.
 */
wa_err_t ss_chromium_resolve(const char *configured, const char *puppeteer,
                             const char *path_env, char *out, size_t outlen,
                             char *err, size_t errlen);

/*
 * The URL to register (advertise.c): advertise if given (non-empty), else
 * listen, unless listen is a wildcard (tcp://0.0.0.0:<port> and the like):
 * then tcp://<this host's address>:<port>, *guessed set when no address
 * but loopback was found (127.0.0.1: other hosts cannot dial it).
 * WA_EINVAL for a wildcard without a numeric port, WA_ETOOBIG if out is
 * short.
 */
wa_err_t ss_advertise_url(const char *listen, const char *advertise, char *out,
                          size_t len, bool *guessed);

#endif /* SS_SESSION_H */
