/*
 * sessions.c - the per-user table and each session's browser life cycle:
 * start, stop (with or without logging out and deleting the profile),
 * crash and relaunch with exponential backoff.
 *
 * A session record, once made, lives until shutdown (it is small); what
 * comes and goes is its browser. Loop thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "session.h"
#include "wa/log.h"

/* A launch that runs this long without a crash resets the backoff. */
#define STABLE_MS 60000
/* A page that shows neither a QR code nor a login this long after launch
 * has failed (waweb.js gives up after 30 s on its own). */
#define PAGE_LOAD_MS 45000
/* How long logging out on the page may take before we close anyway. */
#define LOGOUT_MS 2000
/* After the page's logout call answered: how long the page may take to
 * report itself logged out (the server's answer, then its landing page)
 * before the browser is killed anyway. Killed at once, it could lose what
 * the page still had to send. */
#define LOGOUT_SETTLE_MS 1000

ss_session_t *sessions__find(ss_t *ss, const char *user)
{
    ss_session_t *s;

    for (s = ss->sessions; s != NULL; s = s->next) {
        if (strcmp(s->user, user) == 0)
            return s;
    }
    return NULL;
}

long sessions__active(ss_t *ss)
{
    ss_session_t *s;
    long n = 0;

    for (s = ss->sessions; s != NULL; s = s->next) {
        if (s->want || s->browser != NULL)
            n++;
    }
    return n;
}

long sessions__count(const ss_session_t *head)
{
    long n = 0;

    for (; head != NULL; head = head->next)
        n++;
    return n;
}

void sessions__unlist(ss_session_t **head, ss_session_t *s)
{
    for (ss_session_t **pp = head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            s->next = NULL;
            return;
        }
    }
}

void sessions__kill_list(ss_session_t *head)
{
    for (; head != NULL; head = head->next)
        browser__kill(head->browser);
}

bool sessions__add_waiter(ss_session_t *s, ss_stopped_fn fn, void *arg)
{
    ss_stop_waiter_t *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return false;
    w->fn = fn;
    w->arg = arg;
    w->next = s->waiters;
    s->waiters = w;
    return true;
}

void sessions__run_waiters(ss_session_t *s, ss_session_t *gone)
{
    ss_stop_waiter_t *w = s->waiters, *next;

    s->waiters = NULL;
    for (; w != NULL; w = next) {
        next = w->next;
        w->fn(w->arg, gone);
        free(w);
    }
}

void sessions__abandon(ss_session_t *s)
{
    if (s->browser != NULL) {
        ss_browser_cb_t none = {0};

        browser__rebind(s->browser, &none);
    }
    sessions__release(s);
}

ss_session_t *sessions__alloc(ss_t *ss)
{
    ss_session_t *s;

    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->ss = ss;
    s->owner_fd = -1;
    uv_timer_init(ss->loop, &s->relaunch);
    uv_timer_init(ss->loop, &s->ready_timer);
    s->relaunch.data = s;
    s->ready_timer.data = s;
    s->status = SS_DISCONNECTED;
    return s;
}

static void on_session_closed(uv_handle_t *h);

void sessions__release(ss_session_t *s)
{
    s->closing = 2;
    uv_close((uv_handle_t *)&s->relaunch, on_session_closed);
    uv_close((uv_handle_t *)&s->ready_timer, on_session_closed);
}

wa_err_t sessions__get(ss_t *ss, const char *user, ss_session_t **out)
{
    ss_session_t *s;
    wa_err_t err;

    if ((s = sessions__find(ss, user)) != NULL) {
        *out = s;
        return WA_OK;
    }
    if (wa_check_user(user) != WA_OK)
        return WA_EINVAL;
    if ((s = sessions__alloc(ss)) == NULL)
        return WA_ENOMEM;
    snprintf(s->user, sizeof(s->user), "%s", user);
    s->maybe_linked = true; /* a profile may be there from before */
    if ((err = browser__profile_path(ss->cfg.sessions_dir, user, s->profile,
                                     sizeof(s->profile))) != WA_OK) {
        sessions__release(s);
        return err;
    }
    s->next = ss->sessions;
    ss->sessions = s;
    *out = s;
    return WA_OK;
}

static void set_status(ss_session_t *s, ss_status_t to, const char *reason,
                       const char *message)
{
    ss_transition_t t = {0};

    t.to = to;
    t.reason = reason;
    t.message = message;
    (void)state__set(s, &t);
}

static void schedule_relaunch(ss_session_t *s);

void sessions__browser_event(void *arg, const char *session, const char *method,
                             const cJSON *params)
{
    adapter__on_event(arg, session, method, params);
}

static void finish_stop(ss_session_t *s);

static void on_browser_exit(void *arg, int64_t status, int sig)
{
    ss_session_t *s = arg;

    s->browser = NULL;
    memset(&s->page, 0, sizeof(s->page));
    uv_timer_stop(&s->ready_timer);
    if (s->stopping) {
        wa_debug(NULL, "user %s: browser exited (status %lld, signal %d)",
                 s->user, (long long)status, sig);
        finish_stop(s);
        return;
    }
    if (!s->want)
        return;
    wa_warn(NULL,
            "user %s: browser exited unexpectedly (status %lld, "
            "signal %d)",
            s->user, (long long)status, sig);
    if (s->status != SS_ERROR)
        set_status(s, SS_ERROR, NULL, "the browser exited");
    schedule_relaunch(s);
}

static void on_ready_timer(uv_timer_t *t)
{
    ss_session_t *s = t->data;

    if (s->status == SS_INITIALIZING && s->browser != NULL)
        sessions__page_failed(s, "WhatsApp Web did not load in time");
}

/* A user with no profile yet takes a spare browser (spare.c): already
 * started and set up, it only has to navigate. */
static bool adopt(ss_session_t *s)
{
    ss_t *ss = s->ss;
    ss_browser_cb_t cb = {0};
    wa_err_t err;

    if ((err = spare__take(ss, s->profile, &s->browser, &s->page)) != WA_OK) {
        if (err == WA_EUNAVAIL)
            wa_warn(NULL, "user %s: cannot link the profile to a spare",
                    s->user);
        return false;
    }
    cb.on_event = sessions__browser_event;
    cb.on_exit = on_browser_exit;
    cb.arg = s;
    browser__rebind(s->browser, &cb);
    s->launched_at = uv_now(ss->loop);
    s->maybe_linked = false; /* a new profile */
    wa_debug(NULL, "user %s: adopted the spare browser pid %d (setup step %d)",
             s->user, browser__pid(s->browser), s->page.step);
    uv_timer_start(&s->ready_timer, on_ready_timer, PAGE_LOAD_MS, 0);
    adapter__resume(s);
    return true;
}

wa_err_t sessions__spawn(ss_session_t *s, const ss_browser_cb_t *cb)
{
    ss_t *ss = s->ss;
    ss_browser_opts_t o = {0};
    char **argv = NULL;
    wa_err_t err;

    o.exe = ss->chromium;
    o.profile = s->profile;
    o.user_agent = ss->user_agent;
    o.extra = ss->cfg.browser_flags;
    o.no_sandbox = ss->is_root;
    if ((err = browser__argv(&o, &argv)) != WA_OK)
        return err;
    err = browser__launch(ss->loop, argv, cb, &s->browser);
    wa_strv_free(argv);
    if (err == WA_OK)
        s->launched_at = uv_now(ss->loop);
    return err;
}

/* Launch the browser for a wanted session; failures go to the backoff. */
static void launch(ss_session_t *s)
{
    ss_t *ss = s->ss;
    ss_browser_cb_t cb = {0};
    bool cleared = false;
    struct stat st;
    wa_err_t err;

    if (s->browser != NULL || !s->want || s->stopping || ss->stopping)
        return;
    if (adopt(s))
        return;
    if (lstat(s->profile, &st) != 0 && errno == ENOENT)
        s->maybe_linked = false; /* made below: no login in it yet */
    if ((err = browser__settle_profile(s->profile)) != WA_OK) {
        wa_warn(NULL, "user %s: cannot settle the profile directory: %s",
                s->user, wa_strerror(err));
        goto fail;
    }
    if ((err = browser__mkdirs(s->profile)) != WA_OK) {
        wa_error(NULL, "user %s: cannot create the profile directory", s->user);
        goto fail;
    }
    if ((err = browser__clear_singleton(s->profile, &cleared)) != WA_OK) {
        wa_warn(NULL, "user %s: profile still held by a running browser",
                s->user);
        goto fail;
    }
    if (cleared)
        wa_info(NULL, "user %s: stale SingletonLock cleared", s->user);
    cb.on_event = sessions__browser_event;
    cb.on_exit = on_browser_exit;
    cb.arg = s;
    if ((err = sessions__spawn(s, &cb)) != WA_OK) {
        wa_error(NULL, "user %s: cannot start the browser: %s", s->user,
                 wa_strerror(err));
        goto fail;
    }
    wa_debug(NULL, "user %s: browser pid %d", s->user,
             browser__pid(s->browser));
    uv_timer_start(&s->ready_timer, on_ready_timer, PAGE_LOAD_MS, 0);
    adapter__start(s);
    return;
fail:
    set_status(s, SS_ERROR, NULL, "the browser could not be started");
    schedule_relaunch(s);
}

static void on_relaunch(uv_timer_t *t)
{
    ss_session_t *s = t->data;

    if (!s->want || s->stopping || s->browser != NULL || s->ss->stopping)
        return;
    s->qr_count = 0;
    set_status(s, SS_INITIALIZING, NULL, NULL);
    launch(s);
}

void sessions__relaunch_now(ss_session_t *s)
{
    if (!uv_is_active((uv_handle_t *)&s->relaunch))
        return; /* not waiting out a backoff */
    uv_timer_stop(&s->relaunch);
    on_relaunch(&s->relaunch);
}

static void schedule_relaunch(ss_session_t *s)
{
    ss_t *ss = s->ss;

    if (!s->want || s->stopping || ss->stopping)
        return;
    if (s->launched_at != 0 && uv_now(ss->loop) - s->launched_at >= STABLE_MS)
        s->backoff_ms = 0;
    s->backoff_ms =
        browser__backoff_next(s->backoff_ms, (uint64_t)ss->cfg.backoff_max_ms);
    wa_info(NULL, "user %s: relaunching in %llu ms", s->user,
            (unsigned long long)s->backoff_ms);
    uv_timer_start(&s->relaunch, on_relaunch, s->backoff_ms, 0);
}

wa_err_t sessions__start(ss_session_t *s, const char *rid)
{
    ss_t *ss = s->ss;
    ss_transition_t t = {0};
    wa_err_t err;

    if (s->stopping)
        return WA_ECONFLICT;
    if (s->want)
        return WA_OK;
    if (sessions__active(ss) >= ss->cfg.max_sessions)
        return WA_EFULL;
    s->want = true;
    s->backoff_ms = 0;
    s->launched_at = 0;
    s->qr_count = 0;
    s->lost_checks = 0;
    t.to = SS_INITIALIZING;
    t.rid = rid;
    if (s->status != SS_DISCONNECTED && s->status != SS_ERROR) {
        /* A status left over (restore): start from disconnected. */
        s->status = SS_DISCONNECTED;
    }
    if ((err = state__set(s, &t)) != WA_OK) {
        s->want = false;
        return err;
    }
    launch(s);
    return WA_OK;
}

/*
 * A /disconnect whose page did not log out while the profile may hold a
 * login: the profile is moved aside and logged out in the background
 * (unlinker.c). true when the profile path is gone that way (or was not
 * there); false: the caller deletes it.
 */
static bool handed_to_unlinker(ss_session_t *s)
{
    wa_err_t err;

    if (s->stop_mode != STOP_LOGOUT || !s->maybe_linked)
        return false;
    err = unlinker__defer(s->ss, s->profile, s->user);
    if (err == WA_OK || err == WA_ENOTFOUND)
        return true;
    wa_warn(NULL,
            "user %s: cannot keep the profile for a logout (%s); deleted, "
            "and the phone may still list the device",
            s->user, wa_strerror(err));
    return false;
}

static void finish_stop(ss_session_t *s)
{
    ss_transition_t t = {0};
    ss_stop_mode_t mode = s->stop_mode;

    if (mode == STOP_DELETE || mode == STOP_LOGOUT) {
        if (!handed_to_unlinker(s) &&
            browser__remove_profile(s->profile) != WA_OK)
            wa_error(NULL, "user %s: cannot delete the profile directory",
                     s->user);
        s->maybe_linked = false;
    }
    if (mode == STOP_END || mode == STOP_DELETE || mode == STOP_LOGOUT) {
        t.to = SS_DISCONNECTED;
        t.reason = s->stop_reason;
        t.force = true;
        t.clear_account = mode != STOP_END;
        (void)state__set(s, &t);
    } else if (mode == STOP_LOST) {
        /* Another instance owns the user now and writes its status. */
        s->status = SS_DISCONNECTED;
        free(s->qr_raw);
        free(s->qr_url);
        s->qr_raw = s->qr_url = NULL;
    }
    s->stopping = false;
    spare__fill(s->ss);
    sessions__run_waiters(s, s);
}

/*
 * How long a closing browser may take before it is killed. A stop that
 * deletes the profile has nothing to save, so it kills at once: a browser
 * still starting may otherwise not notice its closed pipe for seconds,
 * and /disconnect would outlive the gateway's budget.
 */
static uint64_t stop_grace_ms(const ss_session_t *s)
{
    if (s->stop_mode == STOP_DELETE || s->stop_mode == STOP_LOGOUT)
        return 0;
    return (uint64_t)s->ss->cfg.stop_timeout_ms;
}

static void on_logout_settled(uv_timer_t *t)
{
    ss_session_t *s = t->data;

    if (s->browser != NULL)
        browser__stop(s->browser, stop_grace_ms(s));
}

static void logout_done(void *arg, wa_err_t err, cJSON *data,
                        const char *message)
{
    ss_session_t *s = arg;

    (void)message;
    cJSON_Delete(data);
    if (err == WA_OK) {
        /* Asked: closed once the page says it is logged out
         * (sessions__page_logout), or after LOGOUT_SETTLE_MS. */
        s->maybe_linked = false;
        if (s->browser != NULL) {
            uv_timer_start(&s->ready_timer, on_logout_settled, LOGOUT_SETTLE_MS,
                           0);
            return;
        }
    } else {
        wa_warn(NULL,
                "user %s: logout on the page failed (%s); it is done in "
                "the background",
                s->user, wa_err_code(err));
    }
    if (s->browser != NULL)
        browser__stop(s->browser, stop_grace_ms(s));
}

/* How destructive a mode is: a stop in progress is upgraded, never
 * downgraded. */
static int severity(ss_stop_mode_t m)
{
    switch (m) {
    case STOP_KEEP:
        return 0;
    case STOP_LOST:
        return 1;
    case STOP_END:
        return 2;
    case STOP_DELETE:
        return 3;
    default:
        return 4;
    }
}

void sessions__stop(ss_session_t *s, ss_stop_mode_t mode, const char *reason,
                    ss_stopped_fn fn, void *arg)
{
    if (fn != NULL && !sessions__add_waiter(s, fn, arg))
        fn(arg, s); /* cannot wait: answer now */
    if (s->stopping) {
        if (severity(mode) > severity(s->stop_mode)) {
            s->stop_mode = mode;
            snprintf(s->stop_reason, sizeof(s->stop_reason), "%s",
                     reason != NULL ? reason : "");
        }
        return;
    }
    s->want = false;
    s->stopping = true;
    s->stop_mode = mode;
    snprintf(s->stop_reason, sizeof(s->stop_reason), "%s",
             reason != NULL ? reason : "");
    uv_timer_stop(&s->relaunch);
    uv_timer_stop(&s->ready_timer);
    if (s->browser == NULL) {
        finish_stop(s);
        return;
    }
    if (mode == STOP_LOGOUT &&
        (s->status == SS_READY || s->status == SS_AUTHENTICATED)) {
        adapter__call(s, "logout", NULL, LOGOUT_MS, logout_done, s);
        return;
    }
    browser__stop(s->browser, stop_grace_ms(s));
}

void sessions__page_logout(ss_session_t *s)
{
    if (s->unlinking) {
        unlinker__page(s, PAGE_LOGOUT);
        return;
    }
    s->maybe_linked = false;
    if (s->stopping && s->stop_mode == STOP_LOGOUT &&
        uv_is_active((uv_handle_t *)&s->ready_timer)) {
        /* The logout we asked for is through: close now. */
        uv_timer_stop(&s->ready_timer);
        on_logout_settled(&s->ready_timer);
        return;
    }
    if (s->stopping || !s->want)
        return;
    wa_info(NULL, "user %s: logged out from the phone", s->user);
    sessions__stop(s, STOP_DELETE, "logout", NULL, NULL);
}

void sessions__page_failed(ss_session_t *s, const char *message)
{
    if (s->spare) {
        spare__failed(s, message);
        return;
    }
    if (s->unlinking) {
        unlinker__failed(s, message);
        return;
    }
    if (s->stopping || !s->want || s->browser == NULL)
        return;
    wa_warn(NULL, "user %s: page failed: %s", s->user, message);
    set_status(s, SS_ERROR, NULL, message);
    /* Its exit brings the relaunch (on_browser_exit). */
    browser__stop(s->browser, (uint64_t)s->ss->cfg.stop_timeout_ms);
}

void sessions__page_ready(ss_session_t *s)
{
    uv_timer_stop(&s->ready_timer);
}

/* ---- shutdown ---- */

typedef struct stop_all {
    ss_t *ss;
    long left;
    void (*done)(ss_t *ss);
} stop_all_t;

static void one_stopped(void *arg, ss_session_t *s)
{
    stop_all_t *sa = arg;

    (void)s;
    if (--sa->left == 0) {
        void (*done)(ss_t *) = sa->done;
        ss_t *ss = sa->ss;

        free(sa);
        done(ss);
    }
}

void sessions__stop_all(ss_t *ss, void (*done)(ss_t *ss))
{
    ss_session_t *s;
    stop_all_t *sa;

    if ((sa = calloc(1, sizeof(*sa))) == NULL) {
        sessions__kill_list(ss->sessions);
        sessions__kill_list(ss->spares);
        sessions__kill_list(ss->unlinks);
        done(ss);
        return;
    }
    sa->ss = ss;
    sa->done = done;
    sa->left = 1; /* ours, dropped below */
    sa->left += spare__stop_all(ss, one_stopped, sa);
    sa->left += unlinker__stop_all(ss, one_stopped, sa);
    for (s = ss->sessions; s != NULL; s = s->next) {
        uv_timer_stop(&s->relaunch);
        uv_timer_stop(&s->ready_timer);
        s->want = false;
        if (s->browser == NULL && !s->stopping)
            continue;
        sa->left++;
        sessions__stop(s, STOP_KEEP, "shutdown", one_stopped, sa);
    }
    one_stopped(sa, NULL);
}

static void on_session_closed(uv_handle_t *h)
{
    ss_session_t *s = h->data;

    /* Two timers: whichever closes last frees (libuv runs close
     * callbacks in no promised order; it is LIFO today). */
    if (--s->closing == 0) {
        free(s->qr_raw);
        free(s->qr_url);
        free(s);
    }
}

void sessions__free_all(ss_t *ss)
{
    ss_session_t *s, *next;

    for (s = ss->sessions; s != NULL; s = next) {
        next = s->next;
        sessions__release(s);
    }
    ss->sessions = NULL;
    spare__free_all(ss);
    unlinker__free_all(ss);
}
