/*
 * unlinker.c - logging a linked device out after its profile was let go.
 *
 * /disconnect promises three things: the device is logged out on the page
 * (the phone's "Linked devices" loses it), the browser is closed and the
 * profile is gone. The logout needs a page that is logged in right now.
 * A user whose browser is still coming back (a restore after a restart, a
 * crash backoff, a move) has a profile that holds the login but no page
 * that could log out within the gateway's budget; deleting it alone would
 * leave the device linked on the phone for good, and WhatsApp allows four.
 *
 * So such a profile is moved aside, atomically, to
 * $SESSIONS_DIR/.unlink-XXXXXX (user directory names never start with a
 * '.'): the user's profile path is gone when /disconnect answers, as
 * always, and a new connect starts clean. In the background a browser is
 * then started on the moved profile, only to log out: a page that comes
 * back logged in (authenticated) is asked to (waweb.js `logout`), a page that
 * shows a QR code or says it was logged out holds no login any more. Either way
 * the directory is deleted after. A failed attempt (the site does not load, the
 * logout fails) is tried again later, at most UNLINK_ATTEMPTS times; then the
 * directory goes anyway.
 *
 * The directories on disk are the queue: one such browser runs at a time
 * per instance, beside MAX_SESSIONS (it is short-lived), and a session-svc
 * that starts works through what an earlier process or another instance
 * sharing SESSIONS_DIR left. Each directory holds SS_UNLINK_OWNER,
 * flock()ed by whoever works on it (from before the move), and holding the
 * attempts so far and the time before which no new attempt is due:
 * "<attempts> <not-before, ms since the epoch>\n".
 *
 * Loop thread only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "session.h"
#include "wa/log.h"

/* Attempts before the directory is deleted with the device still linked. */
#define UNLINK_ATTEMPTS 5
/* After a failed attempt: 30 s, then 60, 120, 240. */
#define UNLINK_RETRY_MS 30000
/* One attempt: launch, load, log in from the profile, log out. */
#define UNLINK_ATTEMPT_MS 60000
/* How long the page's logout call may take. */
#define UNLINK_LOGOUT_MS 10000
/* Then how long the page may take to report itself logged out (what it
 * had to send is sent) before the browser is closed anyway. */
#define UNLINK_SETTLE_MS 5000
/* A directory without its owner file this long is a cut-short deletion. */
#define UNLINK_ORPHAN_MS 600000
/* Another look at a directory somebody else works on. */
#define UNLINK_RECHECK_MS 60000
/* First look at the queue after start (restored users launch first). */
#define UNLINK_START_MS 3000

static void on_timer(uv_timer_t *t);

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void schedule(ss_t *ss, uint64_t ms)
{
    if (!ss->unlink_timer_ready || ss->stopping)
        return;
    uv_timer_stop(&ss->unlink_timer);
    uv_timer_start(&ss->unlink_timer, on_timer, ms, 0);
}

/* ---------------------------------------------------------- owner file */

bool unlinker__owner_parse(const char *text, int *attempts,
                           uint64_t *not_before)
{
    unsigned long long nb;
    char *end;
    long a;

    errno = 0;
    a = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != ' ' || a < 0 || a > INT_MAX)
        return false;
    text = end + 1;
    if (*text < '0' || *text > '9')
        return false;
    nb = strtoull(text, &end, 10);
    if (errno != 0 || (*end != '\n' && *end != '\0'))
        return false;
    *attempts = (int)a;
    *not_before = (uint64_t)nb;
    return true;
}

/* What fd says; an empty or unreadable file is a first attempt due now. */
static void owner_read(int fd, int *attempts, uint64_t *not_before)
{
    char buf[64];
    ssize_t n;

    *attempts = 0;
    *not_before = 0;
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return;
    buf[n] = '\0';
    if (!unlinker__owner_parse(buf, attempts, not_before)) {
        *attempts = 0;
        *not_before = 0;
    }
}

static void owner_write(int fd, int attempts, uint64_t not_before)
{
    char buf[64];
    int n;

    n = snprintf(buf, sizeof(buf), "%d %" PRIu64 "\n", attempts, not_before);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        wa_warn(NULL, "cannot record an unlink attempt: %s", strerror(errno));
}

/* --------------------------------------------------------- moving aside */

/* "$dir/.unlink-" and six random characters into out. */
static wa_err_t aside_name(const char *dir, char *out, size_t len)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[6];
    char suffix[7];
    int n;

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return WA_EUNAVAIL;
    for (size_t i = 0; i < sizeof(r); i++)
        suffix[i] = abc[r[i] % (sizeof(abc) - 1)];
    suffix[6] = '\0';
    n = snprintf(out, len, "%s/%s%s", dir, SS_UNLINK_PREFIX, suffix);
    return n > 0 && (size_t)n < len ? WA_OK : WA_ETOOBIG;
}

/* rename without replacing: renameat2's RENAME_NOREPLACE, else (a
 * filesystem without it) a rename after a check. */
static int rename_new(const char *from, const char *to)
{
    struct stat st;

    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (lstat(to, &st) == 0) {
        errno = EEXIST;
        return -1;
    }
    return rename(from, to);
}

wa_err_t unlinker__move_aside(const char *sessions_dir, const char *profile,
                              char *out, size_t len, int *owner_fd)
{
    char owner[SS_PATH_MAX + 64], aside[SS_PATH_MAX];
    struct stat st;
    wa_err_t err;
    int fd = -1, n, tries;

    if (lstat(profile, &st) != 0)
        return errno == ENOENT ? WA_ENOTFOUND : WA_EUNAVAIL;
    /* A link to an adopted spare becomes a plain directory first, so the
     * moved profile needs nothing outside itself. */
    if ((err = browser__settle_profile(profile)) != WA_OK)
        return err;
    n = snprintf(owner, sizeof(owner), "%s/%s", profile, SS_UNLINK_OWNER);
    if (n < 0 || (size_t)n >= sizeof(owner))
        return WA_ETOOBIG;
    fd = open(owner, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return errno == ENOENT ? WA_ENOTFOUND : WA_EUNAVAIL;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        /* Another session-svc is moving it: its file, left alone. */
        close(fd);
        return WA_ECONFLICT;
    }
    owner_write(fd, 0, 0);
    for (tries = 0; tries < 8; tries++) {
        if ((err = aside_name(sessions_dir, aside, sizeof(aside))) != WA_OK)
            goto fail;
        if (strlen(aside) >= len) {
            err = WA_ETOOBIG;
            goto fail;
        }
        if (rename_new(profile, aside) == 0)
            break;
        if (errno != EEXIST && errno != ENOTEMPTY) {
            err = WA_EUNAVAIL;
            goto fail;
        }
    }
    if (tries == 8) {
        err = WA_EUNAVAIL;
        goto fail;
    }
    memcpy(out, aside, strlen(aside) + 1);
    *owner_fd = fd;
    return WA_OK;
fail:
    (void)unlink(owner);
    close(fd);
    return err;
}

/* ------------------------------------------------------------ the worker */

static long running(const ss_t *ss)
{
    return sessions__count(ss->unlinks);
}

/* The browser is gone: delete the directory, or keep it for a retry. */
static void on_unlink_exit(void *arg, int64_t status, int sig)
{
    ss_session_t *u = arg;
    ss_t *ss = u->ss;
    const char *name = strrchr(u->profile, '/') + 1;
    int attempts;
    uint64_t not_before;

    (void)status;
    (void)sig;
    u->browser = NULL;
    uv_timer_stop(&u->ready_timer);
    owner_read(u->owner_fd, &attempts, &not_before);
    if (u->unlink_done) {
        if (browser__remove_profile(u->profile) != WA_OK)
            wa_error(NULL, "cannot delete %s", name);
    } else if (ss->stopping) {
        /* A shutdown's stop is no attempt: the next start goes on. */
    } else if (++attempts >= UNLINK_ATTEMPTS) {
        wa_warn(NULL,
                "%s: no logout after %d attempts; deleted, and the phone may "
                "still list the device",
                name, attempts);
        if (browser__remove_profile(u->profile) != WA_OK)
            wa_error(NULL, "cannot delete %s", name);
    } else {
        owner_write(u->owner_fd, attempts,
                    wall_ms() + ((uint64_t)UNLINK_RETRY_MS << (attempts - 1)));
        wa_warn(NULL, "%s: logout attempt %d failed; trying again later", name,
                attempts);
    }
    close(u->owner_fd);
    u->owner_fd = -1;
    sessions__unlist(&ss->unlinks, u);
    sessions__run_waiters(u, NULL);
    sessions__release(u);
    schedule(ss, 0);
}

static void on_attempt_timeout(uv_timer_t *t)
{
    unlinker__failed(t->data, "no logout in time");
}

/* Work on the locked directory path (owner_fd): a browser on it. */
static wa_err_t start(ss_t *ss, const char *path, int owner_fd)
{
    ss_browser_cb_t cb = {0};
    ss_session_t *u;
    wa_err_t err;

    if ((u = sessions__alloc(ss)) == NULL)
        return WA_ENOMEM;
    u->unlinking = true;
    snprintf(u->profile, sizeof(u->profile), "%s", path);
    snprintf(u->user, sizeof(u->user), "%s", strrchr(path, '/') + 1);
    if ((err = browser__clear_singleton(u->profile, NULL)) != WA_OK)
        goto fail; /* a browser still runs on it (another instance's) */
    cb.on_event = sessions__browser_event;
    cb.on_exit = on_unlink_exit;
    cb.arg = u;
    if ((err = sessions__spawn(u, &cb)) != WA_OK)
        goto fail;
    u->owner_fd = owner_fd;
    u->next = ss->unlinks;
    ss->unlinks = u;
    wa_info(NULL, "%s: browser pid %d started to log the device out", u->user,
            browser__pid(u->browser));
    uv_timer_start(&u->ready_timer, on_attempt_timeout, UNLINK_ATTEMPT_MS, 0);
    adapter__start(u);
    return WA_OK;
fail:
    sessions__release(u);
    return err;
}

/*
 * Try the directory name of dir: lock it, and start on it if an attempt is
 * due. Returns true when a browser started; *wait_ms is lowered to when
 * this one is due, if later.
 */
static bool try_one(ss_t *ss, const char *name, uint64_t *wait_ms)
{
    char path[SS_PATH_MAX], owner[SS_PATH_MAX + 64];
    uint64_t not_before, now = wall_ms();
    struct stat st;
    int fd, attempts, n;
    wa_err_t err;

    n = snprintf(path, sizeof(path), "%s/%s", ss->cfg.sessions_dir, name);
    if (n < 0 || (size_t)n >= sizeof(path) || lstat(path, &st) != 0 ||
        !S_ISDIR(st.st_mode))
        return false;
    snprintf(owner, sizeof(owner), "%s/%s", path, SS_UNLINK_OWNER);
    /* The owner file is made before the move, so a directory without one
     * is being deleted right now; or its deletion was cut short (a
     * crash) long ago, and it is taken over. */
    fd = open(owner, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT &&
        (uint64_t)st.st_mtime * 1000u + UNLINK_ORPHAN_MS < now)
        fd = open(owner, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (*wait_ms > UNLINK_RECHECK_MS)
            *wait_ms = UNLINK_RECHECK_MS;
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        /* Someone works on it; a look later, in case they die. */
        if (*wait_ms > UNLINK_RECHECK_MS)
            *wait_ms = UNLINK_RECHECK_MS;
        close(fd);
        return false;
    }
    if (lstat(path, &st) != 0) {
        close(fd); /* deleted before we locked it: the file is an orphan */
        return false;
    }
    owner_read(fd, &attempts, &not_before);
    if (not_before > now) {
        if (not_before - now < *wait_ms)
            *wait_ms = not_before - now;
        close(fd);
        return false;
    }
    if ((err = start(ss, path, fd)) != WA_OK) {
        wa_warn(NULL, "%s: cannot start a browser to log out: %s", name,
                wa_strerror(err));
        if (*wait_ms > UNLINK_RETRY_MS)
            *wait_ms = UNLINK_RETRY_MS;
        close(fd);
        return false;
    }
    return true;
}

/* Start on the next directory due, if no browser of ours runs. */
static void on_timer(uv_timer_t *t)
{
    ss_t *ss = t->data;
    uint64_t wait_ms = UINT64_MAX;
    struct dirent *e;
    char name[NAME_MAX + 1];
    bool started = false;
    DIR *d;

    if (ss->stopping || running(ss) > 0)
        return;
    if ((d = opendir(ss->cfg.sessions_dir)) == NULL)
        return;
    while (!started && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, SS_UNLINK_PREFIX, strlen(SS_UNLINK_PREFIX)) != 0)
            continue;
        snprintf(name, sizeof(name), "%s", e->d_name);
        started = try_one(ss, name, &wait_ms);
    }
    closedir(d);
    if (!started && wait_ms != UINT64_MAX)
        schedule(ss, wait_ms);
}

/* ------------------------------------------------------------------ API */

void unlinker__init(ss_t *ss)
{
    if (uv_timer_init(ss->loop, &ss->unlink_timer) != 0)
        return;
    ss->unlink_timer.data = ss;
    ss->unlink_timer_ready = true;
    schedule(ss, UNLINK_START_MS);
}

wa_err_t unlinker__defer(ss_t *ss, const char *profile, const char *user)
{
    char aside[SS_PATH_MAX];
    int fd = -1;
    wa_err_t err;

    err = unlinker__move_aside(ss->cfg.sessions_dir, profile, aside,
                               sizeof(aside), &fd);
    if (err != WA_OK)
        return err;
    wa_info(NULL,
            "user %s: the profile still holds a login; %s logs the device "
            "out in the background",
            user, strrchr(aside, '/') + 1);
    /* Ours already (locked since before the move): started now if no
     * other runs; else its turn comes when that one ends. */
    if (ss->stopping || running(ss) > 0) {
        close(fd);
    } else if ((err = start(ss, aside, fd)) != WA_OK) {
        wa_warn(NULL, "%s: cannot start a browser to log out: %s",
                strrchr(aside, '/') + 1, wa_strerror(err));
        close(fd);
        schedule(ss, UNLINK_RETRY_MS);
    }
    return WA_OK;
}

/* Close the browser: the pipe first, so Chromium exits cleanly. */
static void stop(ss_session_t *u)
{
    if (u->browser != NULL && !u->stopping) {
        u->stopping = true;
        uv_timer_stop(&u->ready_timer);
        browser__stop(u->browser, (uint64_t)u->ss->cfg.stop_timeout_ms);
    }
}

static void on_settled(uv_timer_t *t)
{
    stop(t->data);
}

static void logged_out(void *arg, wa_err_t err, cJSON *data,
                       const char *message)
{
    ss_session_t *u = arg;

    cJSON_Delete(data);
    if (err == WA_OK) {
        wa_info(NULL, "%s: the device is logged out", u->user);
        u->unlink_done = true;
        if (!u->stopping) {
            /* Closed when the page reports its logout (unlinker__page). */
            uv_timer_stop(&u->ready_timer);
            uv_timer_start(&u->ready_timer, on_settled, UNLINK_SETTLE_MS, 0);
            return;
        }
    } else if (!u->unlink_done) {
        wa_warn(NULL, "%s: logout failed (%s: %s)", u->user, wa_err_code(err),
                message != NULL ? message : "");
    }
    stop(u);
}

void unlinker__page(ss_session_t *u, ss_page_kind_t kind)
{
    if (u->stopping)
        return;
    switch (kind) {
    case PAGE_QR:
        if (u->unlink_calling)
            break;
        wa_info(NULL, "%s: the page shows a QR code: no login left", u->user);
        u->unlink_done = true;
        stop(u);
        break;
    case PAGE_AUTHENTICATED: /* logged in and synced: no need to wait */
    case PAGE_READY:
        if (u->unlink_calling)
            break;
        u->unlink_calling = true;
        adapter__call(u, "logout", NULL, UNLINK_LOGOUT_MS, logged_out, u);
        break;
    case PAGE_LOGOUT:
        /* Also how a logout we asked for may end: the page leaves before
         * the call answers. */
        wa_info(NULL, "%s: the page is logged out", u->user);
        u->unlink_done = true;
        stop(u);
        break;
    default:
        break;
    }
}

void unlinker__failed(ss_session_t *u, const char *why)
{
    if (u->stopping)
        return;
    wa_warn(NULL, "%s: %s", u->user, why);
    stop(u);
}

long unlinker__stop_all(ss_t *ss, ss_stopped_fn gone, void *arg)
{
    long n = 0;

    if (ss->unlink_timer_ready)
        uv_timer_stop(&ss->unlink_timer);
    for (ss_session_t *u = ss->unlinks; u != NULL; u = u->next) {
        if (sessions__add_waiter(u, gone, arg))
            n++;
        stop(u);
    }
    return n;
}

void unlinker__free_all(ss_t *ss)
{
    ss_session_t *u, *next;

    for (u = ss->unlinks; u != NULL; u = next) {
        next = u->next;
        if (u->owner_fd >= 0)
            close(u->owner_fd);
        sessions__abandon(u);
    }
    ss->unlinks = NULL;
    if (ss->unlink_timer_ready) {
        ss->unlink_timer_ready = false;
        uv_close((uv_handle_t *)&ss->unlink_timer, NULL);
    }
}
