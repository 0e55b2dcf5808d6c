/*
 * spare.c - pre-warmed browsers (SPARE_BROWSERS, default 0 = off).
 *
 * Starting Chromium and setting up its page on about:blank is most of a
 * connect's wait for the QR code (docs/architecture.md). A spare is a
 * browser started ahead on a profile of its own,
 * $SESSIONS_DIR/.spare-XXXXXX, attached and set up on about:blank (the
 * adapter stops it before navigating). A connect of a user who has no
 * profile yet adopts it: the user's profile path becomes a relative
 * symlink to the spare's directory, the browser and its page move to the
 * session, and the adapter navigates. A new spare follows.
 *
 * Why a link and not a rename: Chromium resolves --user-data-dir once, at
 * launch (a symlink is followed: chrome://version shows the target), and
 * uses that path from then on; a directory renamed under a running
 * browser would lose every file the browser creates afterwards (the
 * page's IndexedDB, for one). So the spare's directory stays where it is
 * while its browser runs, and the user's name points at it. The user's
 * next launch, with no browser on the profile, swaps the two atomically
 * (browser__settle_profile) and the profile is a plain directory again;
 * until then restarts and moves follow the link. /disconnect deletes link
 * and directory (browser__remove_profile).
 *
 * Instances may share SESSIONS_DIR. A spare's directory holds
 * SS_SPARE_OWNER, flock()ed by the session-svc that made it until the
 * spare is adopted or gone. The sweep at start deletes a .spare-*
 * directory only when it gets that lock and, checked after getting it, no
 * profile links there (an adoption links before it unlocks).
 *
 * Loop thread only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"
#include "wa/config.h"
#include "wa/log.h"

/* First fill after start (restored users launch first). The refill after
 * an adoption starts at once: the next connect may come within seconds,
 * and a spare takes seconds to start on a loaded machine
 * (docs/architecture.md). */
#define SPARE_START_MS 500
#define SPARE_REFILL_MS 0

/* The spare's directory goes, then its lock. */
static void drop_dir(ss_session_t *sp)
{
    if (sp->profile[0] != '\0' && browser__remove_tree(sp->profile) != WA_OK)
        wa_warn(NULL, "cannot delete the spare profile %s", sp->profile);
    sp->profile[0] = '\0';
    if (sp->owner_fd >= 0) {
        close(sp->owner_fd);
        sp->owner_fd = -1;
    }
}

static void on_fill(uv_timer_t *t);

static void schedule(ss_t *ss, uint64_t ms)
{
    if (ss->stopping || ss->cfg.spares <= 0 || !ss->spare_timer_ready)
        return;
    uv_timer_stop(&ss->spare_timer);
    uv_timer_start(&ss->spare_timer, on_fill, ms, 0);
}

static void on_spare_exit(void *arg, int64_t status, int sig)
{
    ss_session_t *sp = arg;
    ss_t *ss = sp->ss;

    sp->browser = NULL;
    drop_dir(sp);
    sessions__unlist(&ss->spares, sp);
    if (!sp->stopping) {
        ss->spare_backoff_ms = browser__backoff_next(
            ss->spare_backoff_ms, (uint64_t)ss->cfg.backoff_max_ms);
        wa_warn(NULL,
                "spare browser exited (status %lld, signal %d); another "
                "in %llu ms",
                (long long)status, sig,
                (unsigned long long)ss->spare_backoff_ms);
        schedule(ss, ss->spare_backoff_ms);
    }
    sessions__run_waiters(sp, NULL);
    sessions__release(sp);
}

/* Make the spare's directory and take its owner lock. */
static wa_err_t make_dir(ss_t *ss, ss_session_t *sp)
{
    char owner[SS_PATH_MAX + 64];
    int n;

    n = snprintf(sp->profile, sizeof(sp->profile), "%s/%sXXXXXX",
                 ss->cfg.sessions_dir, SS_SPARE_PREFIX);
    if (n < 0 || (size_t)n >= sizeof(sp->profile))
        return WA_ETOOBIG;
    if (mkdtemp(sp->profile) == NULL) {
        sp->profile[0] = '\0';
        return WA_EUNAVAIL;
    }
    snprintf(owner, sizeof(owner), "%s/%s", sp->profile, SS_SPARE_OWNER);
    sp->owner_fd =
        open(owner, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (sp->owner_fd < 0 || flock(sp->owner_fd, LOCK_EX | LOCK_NB) != 0)
        return WA_EUNAVAIL;
    return WA_OK;
}

static wa_err_t launch_one(ss_t *ss)
{
    ss_browser_cb_t cb = {0};
    ss_session_t *sp;
    wa_err_t err;

    if ((sp = sessions__alloc(ss)) == NULL)
        return WA_ENOMEM;
    sp->spare = true;
    sp->owner_fd = -1;
    snprintf(sp->user, sizeof(sp->user), "(spare)");
    if ((err = make_dir(ss, sp)) != WA_OK)
        goto fail;
    cb.on_event = sessions__browser_event;
    cb.on_exit = on_spare_exit;
    cb.arg = sp;
    if ((err = sessions__spawn(sp, &cb)) != WA_OK)
        goto fail;
    sp->next = ss->spares;
    ss->spares = sp;
    wa_debug(NULL, "spare browser pid %d on %s", browser__pid(sp->browser),
             sp->profile);
    adapter__start(sp);
    return WA_OK;
fail:
    drop_dir(sp);
    sessions__release(sp);
    return err;
}

/* Users waiting for their browser to come up (initializing). */
static long starting(const ss_t *ss)
{
    const ss_session_t *s;
    long n = 0;

    for (s = ss->sessions; s != NULL; s = s->next) {
        if (s->browser != NULL && s->status == SS_INITIALIZING)
            n++;
    }
    return n;
}

/*
 * Start spares up to SPARE_BROWSERS. Not while a user waits on a browser
 * start: a spare starting beside it competes for the CPU and makes that
 * user wait longer; the user's leaving initializing calls spare__fill.
 */
static void on_fill(uv_timer_t *t)
{
    ss_t *ss = t->data;
    wa_err_t err;

    if (starting(ss) > 0)
        return;
    while (!ss->stopping && sessions__count(ss->spares) < ss->cfg.spares &&
           sessions__active(ss) < ss->cfg.max_sessions) {
        if ((err = launch_one(ss)) != WA_OK) {
            ss->spare_backoff_ms = browser__backoff_next(
                ss->spare_backoff_ms, (uint64_t)ss->cfg.backoff_max_ms);
            wa_warn(NULL, "cannot start a spare browser: %s; again in %llu ms",
                    wa_strerror(err), (unsigned long long)ss->spare_backoff_ms);
            schedule(ss, ss->spare_backoff_ms);
            return;
        }
    }
}

/* Does an entry of dir link to name? (Cannot tell: yes, keep it.) */
static bool linked(const char *dir, const char *name)
{
    char buf[NAME_MAX + 1];
    struct dirent *e;
    bool found = false;
    ssize_t n;
    DIR *d;

    if ((d = opendir(dir)) == NULL)
        return true;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_type != DT_LNK && e->d_type != DT_UNKNOWN)
            continue;
        n = readlinkat(dirfd(d), e->d_name, buf, sizeof(buf) - 1);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        found = strcmp(buf, name) == 0;
    }
    closedir(d);
    return found;
}

/* One .spare-* entry of the sweep. */
static void sweep_one(const char *dir, const char *name)
{
    char path[SS_PATH_MAX + NAME_MAX + 2], owner[sizeof(path) + 32];
    struct stat st;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (lstat(path, &st) != 0)
        return;
    if (S_ISLNK(st.st_mode)) {
        /* A settle's leftover: the exchanged name. */
        (void)unlink(path);
        return;
    }
    if (!S_ISDIR(st.st_mode))
        return;
    snprintf(owner, sizeof(owner), "%s/%s", path, SS_SPARE_OWNER);
    if ((fd = open(owner, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return; /* being made, or not a spare of ours: left alone */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && !linked(dir, name)) {
        if (browser__remove_tree(path) == WA_OK)
            wa_info(NULL, "removed the orphaned spare profile %s", name);
        else
            wa_warn(NULL, "cannot delete the orphaned spare profile %s", name);
    }
    close(fd);
}

static void sweep(const char *dir)
{
    char(*names)[NAME_MAX + 1] = NULL, (*grown)[NAME_MAX + 1];
    size_t n = 0, cap = 0, i;
    struct dirent *e;
    DIR *d;

    /* Names first: the directory changes while we delete. */
    if ((d = opendir(dir)) == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, SS_SPARE_PREFIX, strlen(SS_SPARE_PREFIX)) != 0)
            continue;
        if (n == cap) {
            cap = cap == 0 ? 8 : cap * 2;
            if ((grown = realloc(names, cap * sizeof(*names))) == NULL)
                break;
            names = grown;
        }
        snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
    }
    closedir(d);
    for (i = 0; i < n; i++)
        sweep_one(dir, names[i]);
    free(names);
}

void spare__init(ss_t *ss)
{
    if (uv_timer_init(ss->loop, &ss->spare_timer) != 0)
        return;
    ss->spare_timer.data = ss;
    ss->spare_timer_ready = true;
    sweep(ss->cfg.sessions_dir);
    schedule(ss, SPARE_START_MS);
}

void spare__fill(ss_t *ss)
{
    if (ss->spare_timer_ready &&
        !uv_is_active((uv_handle_t *)&ss->spare_timer) &&
        sessions__count(ss->spares) < ss->cfg.spares)
        schedule(ss, 0);
}

wa_err_t spare__take(ss_t *ss, const char *profile, ss_browser_t **b,
                     ss_page_t *page)
{
    ss_session_t *sp = NULL, *it;
    struct stat st;
    const char *name;

    /* The one furthest along: parked on the site beats one still
     * starting; among equals, the oldest. */
    for (it = ss->spares; it != NULL; it = it->next) {
        if (it->stopping || browser__cdp(it->browser) == NULL)
            continue;
        if (sp == NULL || it->page.step > sp->page.step ||
            (it->page.step == sp->page.step &&
             it->launched_at < sp->launched_at))
            sp = it;
    }
    if (sp == NULL)
        return WA_ENOTFOUND;
    if (lstat(profile, &st) == 0 || errno != ENOENT)
        return WA_ECONFLICT;
    name = strrchr(sp->profile, '/') + 1;
    if (symlink(name, profile) != 0)
        return errno == EEXIST ? WA_ECONFLICT : WA_EUNAVAIL;
    /* Linked: from now on the link keeps the directory, not the lock. */
    sessions__unlist(&ss->spares, sp);
    close(sp->owner_fd);
    sp->owner_fd = -1;
    *b = sp->browser;
    *page = sp->page;
    sp->browser = NULL;
    sessions__release(sp);
    ss->spare_backoff_ms = 0;
    schedule(ss, SPARE_REFILL_MS);
    return WA_OK;
}

void spare__failed(ss_session_t *sp, const char *why)
{
    if (sp->browser == NULL || sp->stopping)
        return;
    wa_warn(NULL, "spare browser failed: %s", why);
    browser__stop(sp->browser, (uint64_t)sp->ss->cfg.stop_timeout_ms);
}

long spare__stop_all(ss_t *ss, ss_stopped_fn gone, void *arg)
{
    ss_session_t *sp;
    long n = 0;

    if (ss->spare_timer_ready)
        uv_timer_stop(&ss->spare_timer);
    for (sp = ss->spares; sp != NULL; sp = sp->next) {
        if (sp->stopping)
            continue;
        if (sessions__add_waiter(sp, gone, arg))
            n++;
        sp->stopping = true;
        browser__stop(sp->browser, (uint64_t)ss->cfg.stop_timeout_ms);
    }
    return n;
}

void spare__free_all(ss_t *ss)
{
    ss_session_t *sp, *next;

    for (sp = ss->spares; sp != NULL; sp = next) {
        next = sp->next;
        drop_dir(sp);
        sessions__abandon(sp);
    }
    ss->spares = NULL;
    if (ss->spare_timer_ready) {
        ss->spare_timer_ready = false;
        uv_close((uv_handle_t *)&ss->spare_timer, NULL);
    }
}
