/*
 * browser.c - one Chromium process: its argv, its profile directory, the
 * SingletonLock a crashed one leaves behind, spawning it on DevTools pipes
 * in its own process group, stopping it cleanly, and reaping its whole
 * process tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "session.h"
#include "wa/config.h"

extern char **environ;

/* After the main process exited, how long its group may linger before the
 * stragglers are killed, and how often we look. */
#define REAP_GRACE_MS 2000
#define REAP_POLL_MS 50

/*
 * Flags beyond DESIGN §7's, each measured (docs/architecture.md, "Memory
 * per session" and "Connect -> QR latency"): a browser that runs one page
 * needs no GPU process, no spare renderer, no site-per-process split of
 * cross-site frames, no omnibox popup (a WebUI renderer started with the
 * browser), and no first tab: adapter.c creates its page itself (a
 * created page keeps its renderer for the site; the first tab's does not).
 * The network service runs in the browser process instead of a utility
 * process of its own, and no crashpad handler is started: Chromium starts
 * two even with crash reports off, outside the browser's process group
 * (so the group kill at shutdown cannot reach them), and nothing here
 * reads their dumps.
 */
static const char *const base_flags[] = {
    "--headless=new",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-startup-window",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-blink-features=AutomationControlled",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--mute-audio",
    "--password-store=basic",
    "--disable-gpu",
    "--renderer-process-limit=1",
    "--disable-site-isolation-trials",
    "--disable-features=Translate,MediaRouter,OptimizationHints,"
    "SpareRendererForSitePerProcess,BackForwardCache,"
    "AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,DialMediaRouteProvider,"
    "WebUIOmniboxPopup,WebUIOmniboxAimPopup",
    "--enable-features=NetworkServiceInProcess2",
    "--disable-crashpad-for-testing",
    "--js-flags=--max-old-space-size=512",
};

wa_err_t browser__argv(const ss_browser_opts_t *o, char ***out)
{
    size_t n = 0, cap, i;
    char **v = NULL, *extra = NULL, *tok, *save = NULL;
    int len;

    if (o == NULL || out == NULL || o->exe == NULL || o->profile == NULL)
        return WA_EINVAL;
    cap = 1 + sizeof(base_flags) / sizeof(base_flags[0]) + 4;
    if (o->extra != NULL)
        cap += strlen(o->extra) / 2 + 1;
    if ((v = calloc(cap + 1, sizeof(*v))) == NULL)
        return WA_ENOMEM;
    if ((v[n++] = strdup(o->exe)) == NULL)
        goto oom;
    for (i = 0; i < sizeof(base_flags) / sizeof(base_flags[0]); i++) {
        if ((v[n++] = strdup(base_flags[i])) == NULL)
            goto oom;
    }
    len = asprintf(&v[n], "--user-data-dir=%s", o->profile);
    if (len < 0) {
        v[n] = NULL;
        goto oom;
    }
    n++;
    if (o->user_agent != NULL && o->user_agent[0] != '\0') {
        if (asprintf(&v[n], "--user-agent=%s", o->user_agent) < 0) {
            v[n] = NULL;
            goto oom;
        }
        n++;
    }
    if (o->no_sandbox && (v[n++] = strdup("--no-sandbox")) == NULL)
        goto oom;
    if (o->extra != NULL) {
        if ((extra = strdup(o->extra)) == NULL)
            goto oom;
        for (tok = strtok_r(extra, " \t\n", &save); tok != NULL;
             tok = strtok_r(NULL, " \t\n", &save)) {
            if (n >= cap || (v[n++] = strdup(tok)) == NULL)
                goto oom;
        }
        free(extra);
    }
    v[n] = NULL;
    *out = v;
    return WA_OK;
oom:
    free(extra);
    wa_strv_free(v);
    return WA_ENOMEM;
}

wa_err_t browser__profile_path(const char *sessions_dir, const char *user,
                               char *out, size_t len)
{
    char dir[WA_USER_DIR_MAX + 1];
    wa_err_t err;
    int n;

    if (sessions_dir == NULL || out == NULL)
        return WA_EINVAL;
    if ((err = wa_user_dirname(user, dir, sizeof(dir))) != WA_OK)
        return err;
    n = snprintf(out, len, "%s/%s", sessions_dir, dir);
    if (n < 0 || (size_t)n >= len)
        return WA_ETOOBIG;
    return WA_OK;
}

wa_err_t browser__mkdirs(const char *path)
{
    char buf[SS_PATH_MAX];
    struct stat st;
    size_t len, i;

    if (path == NULL || (len = strlen(path)) == 0 || len >= sizeof(buf))
        return WA_EINVAL;
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return WA_EUNAVAIL;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return WA_EUNAVAIL;
        buf[i] = i < len ? '/' : '\0';
    }
    return WA_OK;
}

/* Does arg ("--user-data-dir=<dir>") name profile, as given or once both
 * are resolved? Chromium resolves its --user-data-dir (a symlink is
 * followed at launch), so an adopted spare (spare.c) runs on
 * .spare-XXXXXX while the user's profile is a link to it. */
static bool arg_names_profile(const char *arg, const char *want,
                              const char *real)
{
    char buf[PATH_MAX];

    if (strncmp(arg, "--user-data-dir=", 16) != 0)
        return false;
    if (strcmp(arg, want) == 0)
        return true;
    return real != NULL && realpath(arg + 16, buf) != NULL &&
           strcmp(buf, real) == 0;
}

/* Does pid run a browser on profile (its cmdline holds a --user-data-dir
 * argument naming it)? */
static bool pid_uses_profile(long pid, const char *profile)
{
    char path[64], want[SS_PATH_MAX + 32], real[PATH_MAX], *buf;
    size_t cap = 256 * 1024, n = 0, off;
    ssize_t r;
    bool found = false, have_real;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    snprintf(want, sizeof(want), "--user-data-dir=%s", profile);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    if ((buf = malloc(cap)) == NULL) {
        close(fd);
        return true; /* cannot tell: assume live, retry later */
    }
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    have_real = realpath(profile, real) != NULL;
    for (off = 0; off < n; off += strlen(buf + off) + 1) {
        if (arg_names_profile(buf + off, want, have_real ? real : NULL)) {
            found = true;
            break;
        }
    }
    free(buf);
    return found;
}

wa_err_t browser__clear_singleton(const char *profile, bool *cleared)
{
    static const char *const names[] = {"SingletonLock", "SingletonSocket",
                                        "SingletonCookie"};
    char path[SS_PATH_MAX + 32], target[512], host[256];
    const char *dash;
    bool any = false;
    ssize_t n;
    long pid;
    char *end;
    size_t i;

    if (cleared != NULL)
        *cleared = false;
    if (profile == NULL)
        return WA_EINVAL;
    snprintf(path, sizeof(path), "%s/SingletonLock", profile);
    n = readlink(path, target, sizeof(target) - 1);
    if (n > 0) {
        target[n] = '\0';
        dash = strrchr(target, '-');
        if (gethostname(host, sizeof(host)) != 0)
            host[0] = '\0';
        host[sizeof(host) - 1] = '\0';
        if (dash != NULL && (size_t)(dash - target) == strlen(host) &&
            strncmp(target, host, (size_t)(dash - target)) == 0) {
            errno = 0;
            pid = strtol(dash + 1, &end, 10);
            if (errno == 0 && *end == '\0' && pid > 0 &&
                (kill((pid_t)pid, 0) == 0 || errno == EPERM) &&
                pid_uses_profile(pid, profile))
                return WA_ECONFLICT; /* a live browser holds it */
        }
    }
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", profile, names[i]);
        if (unlink(path) == 0)
            any = true;
        else if (errno != ENOENT)
            return WA_EUNAVAIL;
    }
    if (cleared != NULL)
        *cleared = any;
    return WA_OK;
}

static int remove_one(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

wa_err_t browser__remove_tree(const char *path)
{
    struct stat st;

    if (path == NULL || path[0] == '\0' || strcmp(path, "/") == 0)
        return WA_EINVAL;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? WA_OK : WA_EUNAVAIL;
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return WA_EUNAVAIL;
    return WA_OK;
}

/*
 * Is profile a symlink to an adopted spare's directory (a sibling named
 * SS_SPARE_PREFIX..., spare.c)? If so, that sibling's path into target.
 */
static bool spare_link(const char *profile, char *target, size_t len)
{
    char name[NAME_MAX + 1];
    const char *slash;
    ssize_t n;
    int w;

    n = readlink(profile, name, sizeof(name) - 1);
    if (n <= 0 || (size_t)n >= sizeof(name) - 1)
        return false;
    name[n] = '\0';
    if (strchr(name, '/') != NULL ||
        strncmp(name, SS_SPARE_PREFIX, strlen(SS_SPARE_PREFIX)) != 0 ||
        (slash = strrchr(profile, '/')) == NULL)
        return false;
    w = snprintf(target, len, "%.*s/%s", (int)(slash - profile), profile, name);
    return w > 0 && (size_t)w < len;
}

wa_err_t browser__settle_profile(const char *profile)
{
    char target[SS_PATH_MAX + NAME_MAX + 2], owner[SS_PATH_MAX + 64];
    struct stat st;
    wa_err_t err;

    if (profile == NULL)
        return WA_EINVAL;
    if (lstat(profile, &st) != 0)
        return errno == ENOENT ? WA_OK : WA_EUNAVAIL;
    if (!S_ISLNK(st.st_mode))
        return WA_OK;
    if (stat(profile, &st) != 0) {
        /* Dangling: what it named is gone (a crash while deleting). */
        return unlink(profile) == 0 || errno == ENOENT ? WA_OK : WA_EUNAVAIL;
    }
    if (!spare_link(profile, target, sizeof(target)))
        return WA_OK; /* someone else's link: used as it is */
    if ((err = browser__clear_singleton(target, NULL)) != WA_OK)
        return err; /* a browser still runs on it */
    /* Atomic: at every moment profile names the login. Afterwards the
     * spare's name is the link, and goes. */
    if (renameat2(AT_FDCWD, target, AT_FDCWD, profile, RENAME_EXCHANGE) != 0)
        return WA_OK; /* no exchange here (filesystem): the link works */
    if (unlink(target) != 0 && errno != ENOENT)
        return WA_EUNAVAIL;
    snprintf(owner, sizeof(owner), "%s/%s", profile, SS_SPARE_OWNER);
    (void)unlink(owner);
    return WA_OK;
}

wa_err_t browser__remove_profile(const char *profile)
{
    char target[SS_PATH_MAX + NAME_MAX + 2];
    bool linked;

    if (profile == NULL)
        return WA_EINVAL;
    linked = spare_link(profile, target, sizeof(target));
    /* The link first: a crash between the two leaves an unreferenced
     * spare directory, which the next sweep deletes (spare.c). */
    if (browser__remove_tree(profile) != WA_OK)
        return WA_EUNAVAIL;
    return linked ? browser__remove_tree(target) : WA_OK;
}

uint64_t browser__backoff_next(uint64_t cur_ms, uint64_t max_ms)
{
    uint64_t next = cur_ms == 0 ? 1000 : cur_ms * 2;

    return next > max_ms ? max_ms : next;
}

int browser__major_version(const char *exe)
{
    char *argv[] = {(char *)exe, "--version", NULL};
    posix_spawn_file_actions_t fa;
    char buf[256];
    size_t n = 0;
    int fds[2], major = 0, status;
    pid_t pid;
    long long deadline = 0;
    struct pollfd p;
    const char *s;
    ssize_t r;

    if (exe == NULL || pipe2(fds, O_CLOEXEC) != 0)
        return 0;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid, exe, &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    deadline = 5000;
    p.fd = fds[0];
    p.events = POLLIN;
    while (n < sizeof(buf) - 1 && deadline > 0 && poll(&p, 1, 100) >= 0) {
        deadline -= 100;
        if (!(p.revents & (POLLIN | POLLHUP)))
            continue;
        if ((r = read(fds[0], buf + n, sizeof(buf) - 1 - n)) <= 0)
            break;
        n += (size_t)r;
    }
    close(fds[0]);
    buf[n] = '\0';
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    /* "Chromium 156.0.8078.108 ..." or "Google Chrome 156.0...". */
    for (s = buf; *s != '\0'; s++) {
        if (*s >= '1' && *s <= '9' && (s == buf || s[-1] == ' ')) {
            major = atoi(s);
            break;
        }
    }
    return major > 0 && major < 10000 ? major : 0;
}

/* ---- the process ---- */

struct ss_browser {
    uv_process_t proc;
    uv_timer_t timer; /* stop grace, then reaping the group */
    cdp_t *cdp;
    ss_browser_cb_t cb;
    int pid;
    int handles;
    int64_t exit_status;
    int term_signal;
    uint64_t reap_until;
    bool exited;
    bool stopping;
    bool reaping;
    bool notified;
};

static void on_handle_closed(uv_handle_t *h)
{
    ss_browser_t *b = h->data;

    if (--b->handles == 0)
        free(b);
}

static void finish(ss_browser_t *b)
{
    if (b->notified)
        return;
    b->notified = true;
    cdp__close(b->cdp);
    b->cdp = NULL;
    uv_timer_stop(&b->timer);
    uv_close((uv_handle_t *)&b->proc, on_handle_closed);
    uv_close((uv_handle_t *)&b->timer, on_handle_closed);
    if (b->cb.on_exit != NULL)
        b->cb.on_exit(b->cb.arg, b->exit_status, b->term_signal);
}

/* Reap what is left of the process group (children orphaned to us when
 * we are PID 1 or a subreaper) and tell whether the group is empty. */
static bool group_gone(ss_browser_t *b)
{
    int st;

    while (waitpid(-b->pid, &st, WNOHANG) > 0)
        ;
    return kill(-b->pid, 0) != 0 && errno == ESRCH;
}

static void on_timer(uv_timer_t *t)
{
    ss_browser_t *b = t->data;

    if (!b->exited) {
        /* The stop grace ran out: last resort. */
        browser__kill(b);
        return;
    }
    if (group_gone(b)) {
        finish(b);
        return;
    }
    if (uv_now(t->loop) >= b->reap_until) {
        kill(-b->pid, SIGKILL);
        (void)group_gone(b);
        finish(b);
        return;
    }
    uv_timer_start(&b->timer, on_timer, REAP_POLL_MS, 0);
}

static void on_proc_exit(uv_process_t *p, int64_t status, int sig)
{
    ss_browser_t *b = p->data;

    b->exited = true;
    b->exit_status = status;
    b->term_signal = sig;
    cdp__close(b->cdp); /* pending calls fail now */
    b->cdp = NULL;
    if (group_gone(b)) {
        finish(b);
        return;
    }
    b->reaping = true;
    b->reap_until = uv_now(p->loop) + REAP_GRACE_MS;
    uv_timer_stop(&b->timer);
    uv_timer_start(&b->timer, on_timer, REAP_POLL_MS, 0);
}

static void on_cdp_event(void *arg, const char *session, const char *method,
                         const cJSON *params)
{
    ss_browser_t *b = arg;

    if (b->cb.on_event != NULL)
        b->cb.on_event(b->cb.arg, session, method, params);
}

/* The pipe broke while the process runs: close our ends so the browser
 * exits, and kill it if it does not. */
static void on_cdp_closed(void *arg, wa_err_t why)
{
    ss_browser_t *b = arg;

    (void)why;
    if (!b->exited)
        browser__stop(b, 5000);
}

wa_err_t browser__launch(uv_loop_t *loop, char **argv,
                         const ss_browser_cb_t *cb, ss_browser_t **out)
{
    uv_process_options_t po;
    uv_stdio_container_t stdio[5];
    ss_browser_t *b;
    cdp_handlers_t h;
    int rv;

    if (loop == NULL || argv == NULL || argv[0] == NULL || cb == NULL ||
        out == NULL)
        return WA_EINVAL;
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return WA_ENOMEM;
    b->cb = *cb;
    h.on_event = on_cdp_event;
    h.on_closed = on_cdp_closed;
    h.arg = b;
    if (cdp__new(loop, &h, &b->cdp) != WA_OK) {
        free(b);
        return WA_ENOMEM;
    }
    if (uv_timer_init(loop, &b->timer) != 0) {
        cdp__close(b->cdp);
        free(b);
        return WA_EINTERNAL;
    }
    b->timer.data = b;
    b->handles = 1;

    memset(&po, 0, sizeof(po));
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_IGNORE;
    stdio[2].flags = UV_IGNORE;
    stdio[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[3].data.stream = (uv_stream_t *)cdp__cmd_pipe(b->cdp);
    stdio[4].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[4].data.stream = (uv_stream_t *)cdp__evt_pipe(b->cdp);
    po.file = argv[0];
    po.args = argv;
    po.exit_cb = on_proc_exit;
    po.stdio = stdio;
    po.stdio_count = 5;
    /* setsid(): its own session and process group, so the whole tree can
     * be signalled and reaped as one. */
    po.flags = UV_PROCESS_DETACHED;
    b->proc.data = b;
    rv = uv_spawn(loop, &b->proc, &po);
    b->handles++; /* initialised even when uv_spawn fails */
    if (rv != 0) {
        b->notified = true;
        cdp__close(b->cdp);
        uv_close((uv_handle_t *)&b->proc, on_handle_closed);
        uv_close((uv_handle_t *)&b->timer, on_handle_closed);
        return WA_EBROWSER;
    }
    b->pid = b->proc.pid;
    if (cdp__start(b->cdp) != WA_OK) {
        browser__kill(b);
        *out = b; /* on_exit follows */
        return WA_OK;
    }
    *out = b;
    return WA_OK;
}

void browser__rebind(ss_browser_t *b, const ss_browser_cb_t *cb)
{
    if (b != NULL && cb != NULL)
        b->cb = *cb;
}

void *browser__owner(const ss_browser_t *b)
{
    return b == NULL ? NULL : b->cb.arg;
}

cdp_t *browser__cdp(ss_browser_t *b)
{
    return b == NULL || b->exited ? NULL : b->cdp;
}

int browser__pid(const ss_browser_t *b)
{
    return b == NULL ? 0 : b->pid;
}

void browser__stop(ss_browser_t *b, uint64_t grace_ms)
{
    if (b == NULL || b->exited || b->stopping)
        return;
    b->stopping = true;
    cdp__close(b->cdp);
    b->cdp = NULL;
    uv_timer_stop(&b->timer);
    uv_timer_start(&b->timer, on_timer, grace_ms, 0);
}

void browser__kill(ss_browser_t *b)
{
    if (b == NULL || b->pid <= 0)
        return;
    if (kill(-b->pid, SIGKILL) != 0 && !b->exited)
        kill(b->pid, SIGKILL);
}
