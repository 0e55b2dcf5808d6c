/*
 * session-svc - the WhatsApp Web clients (DESIGN §7): one headless Chromium
 * per user, driven over the DevTools protocol from a libuv loop.
 *
 * This file is process plumbing only: configuration, the adapter script,
 * the bus sockets, the loop, signals and teardown.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"
#include "wa/log.h"
#include "wa/service.h"

#define SCRIPT_MAX (1024 * 1024)
/* Shutdown: browsers get BROWSER_STOP_TIMEOUT_MS, then SIGKILL; this is
 * the bound on everything after that. */
#define SHUTDOWN_EXTRA_MS 5000
#define STOREIO_THREADS 4
#define STORE_RETRY_MS 20000
#define STORE_DRAIN_MS 3000

#ifndef SS_WAWEB_SOURCE
#define SS_WAWEB_SOURCE "session-svc/inject/waweb.js"
#endif

/* Read a whole file of at most SCRIPT_MAX bytes of UTF-8. */
static wa_err_t read_script(const char *path, char **out)
{
    struct stat st;
    char *buf;
    ssize_t r;
    size_t n = 0;
    int fd;

    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return WA_ENOTFOUND;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        st.st_size > SCRIPT_MAX ||
        (buf = malloc((size_t)st.st_size + 1)) == NULL) {
        close(fd);
        return WA_EINVAL;
    }
    while (n < (size_t)st.st_size &&
           (r = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    if (n != (size_t)st.st_size || !wa_utf8_valid(buf, n)) {
        free(buf);
        return WA_EINVAL;
    }
    *out = buf;
    return WA_OK;
}

/*
 * The adapter script: WAWEB_JS when set; otherwise next to the binary
 * (build/bin/waweb.js), then ../share/wa-server/waweb.js from it (an
 * installed image), then the source tree this binary was built from.
 */
static wa_err_t load_script(const char *configured, char **out, char *used,
                            size_t usedlen)
{
    char exe[SS_PATH_MAX], dir[SS_PATH_MAX], cand[3][SS_PATH_MAX + 64];
    ssize_t n;
    int i;

    if (configured != NULL) {
        snprintf(used, usedlen, "%s", configured);
        return read_script(configured, out);
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    snprintf(dir, sizeof(dir), "%s", n > 0 ? dirname(exe) : ".");
    snprintf(cand[0], sizeof(cand[0]), "%s/waweb.js", dir);
    snprintf(cand[1], sizeof(cand[1]), "%s/../share/wa-server/waweb.js", dir);
    snprintf(cand[2], sizeof(cand[2]), "%s", SS_WAWEB_SOURCE);
    for (i = 0; i < 3; i++) {
        if (read_script(cand[i], out) == WA_OK) {
            if (strlen(cand[i]) >= usedlen)
                used[0] = '\0';
            else
                memcpy(used, cand[i], strlen(cand[i]) + 1);
            return WA_OK;
        }
    }
    return WA_ENOTFOUND;
}

static void close_noop(uv_handle_t *h)
{
    (void)h;
}

static void all_stopped(ss_t *ss)
{
    wa_info(NULL, "every browser has exited");
    uv_timer_stop(&ss->deadline);
    uv_close((uv_handle_t *)&ss->deadline, close_noop);
    uv_close((uv_handle_t *)&ss->sigterm, close_noop);
    uv_close((uv_handle_t *)&ss->sigint, close_noop);
    sessions__free_all(ss);
    /* The loop ends once these handles are closed. */
}

static void on_deadline(uv_timer_t *t)
{
    ss_t *ss = t->data;

    wa_error(NULL, "browsers still running at the shutdown deadline: "
                   "killing them");
    sessions__kill_list(ss->sessions);
    sessions__kill_list(ss->spares);
    sessions__kill_list(ss->unlinks);
}

static void on_signal(uv_signal_t *h, int signum)
{
    ss_t *ss = h->data;

    if (ss->stopping)
        return;
    wa_info(NULL, "signal %d: stopping", signum);
    ss->stopping = true;
    ops__shutdown(ss);
    registry__stop(ss);
    uv_timer_start(&ss->deadline, on_deadline,
                   (uint64_t)ss->cfg.stop_timeout_ms + SHUTDOWN_EXTRA_MS, 0);
    sessions__stop_all(ss, all_stopped);
}

/* A desktop Chrome user agent of the browser's own major version. */
static void make_user_agent(ss_t *ss)
{
    int major;

    if (ss->cfg.user_agent != NULL) {
        snprintf(ss->user_agent, sizeof(ss->user_agent), "%s",
                 ss->cfg.user_agent);
        return;
    }
    major = browser__major_version(ss->chromium);
    snprintf(ss->user_agent, sizeof(ss->user_agent),
             "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
             "Gecko) Chrome/%d.0.0.0 Safari/537.36",
             major > 0 ? major : 130);
}

int main(void)
{
    static ss_t ss; /* large (paths); static keeps it off the stack */
    ss_config_t *cfg = &ss.cfg;
    char *path_env = NULL;
    const wa_config_spec_t specs[] = {
        WA_CFG_STR_SPEC("SESSIONS_DIR", &cfg->sessions_dir,
                        "./whatsapp-sessions", 1, 3000),
        WA_CFG_STR_SPEC("WA_WEB_URL", &cfg->wa_web_url,
                        "https://web.whatsapp.com", 8, 2048),
        WA_CFG_STR_SPEC("CHROMIUM_PATH", &cfg->chromium_path, NULL, 1, 4000),
        WA_CFG_STR_SPEC("PUPPETEER_EXECUTABLE_PATH", &cfg->puppeteer_path, NULL,
                        1, 4000),
        WA_CFG_INT_SPEC("MAX_SESSIONS", &cfg->max_sessions, "50", 1, 10000),
        WA_CFG_STR_SPEC("INSTANCE_ID", &cfg->instance_id, NULL, 1, 100),
        WA_CFG_URL_SPEC("STORE_URL", &cfg->store_url, "tcp://127.0.0.1:5560"),
        WA_CFG_URL_SPEC("EVENTS_URL", &cfg->events_url, "tcp://127.0.0.1:5570"),
        WA_CFG_URL_SPEC("SESSION_URL", &cfg->session_url,
                        "tcp://127.0.0.1:5580"),
        WA_CFG_URL_SPEC("SESSION_ADVERTISE_URL", &cfg->advertise_url, NULL),
        WA_CFG_INT_SPEC("SESSION_WORKERS", &cfg->workers, "16", 1, 256),
        WA_CFG_STR_SPEC("WAWEB_JS", &cfg->waweb_js, NULL, 1, 3000),
        WA_CFG_INT_SPEC("QR_MAX_REFRESHES", &cfg->qr_max, "6", 1, 100),
        WA_CFG_STR_SPEC("CHROMIUM_FLAGS_EXTRA", &cfg->browser_flags, NULL, 1,
                        4096),
        WA_CFG_STR_SPEC("WA_USER_AGENT", &cfg->user_agent, NULL, 10, 250),
        WA_CFG_INT_SPEC("PAGE_CALL_TIMEOUT_MS", &cfg->call_timeout_ms, "30000",
                        1000, 600000),
        WA_CFG_INT_SPEC("BROWSER_STOP_TIMEOUT_MS", &cfg->stop_timeout_ms,
                        "5000", 500, 60000),
        WA_CFG_INT_SPEC("BROWSER_BACKOFF_MAX_MS", &cfg->backoff_max_ms, "30000",
                        1000, 3600000),
        WA_CFG_INT_SPEC("STORE_TIMEOUT_MS", &cfg->store_timeout_ms, "3000", 100,
                        60000),
        WA_CFG_INT_SPEC("SPARE_BROWSERS", &cfg->spares, "0", 0, 16),
        WA_CFG_STR_SPEC("PATH", &path_env, "/usr/local/bin:/usr/bin:/bin", 0,
                        65536),
        WA_LOG_LEVEL_SPEC(&cfg->log_level),
    };
    const size_t nspecs = sizeof(specs) / sizeof(specs[0]);
    char err[512], host[64], script_path[SS_PATH_MAX + 64];
    bool loop_ready = false, guessed = false;
    int status = 1;
    wa_err_t rv;

    wa_service_load_config(SS_SERVICE, specs, nspecs);
    if (strncmp(cfg->wa_web_url, "https://", 8) != 0 &&
        strncmp(cfg->wa_web_url, "http://", 7) != 0)
        wa_service_config_fail(SS_SERVICE,
                               "configuration: WA_WEB_URL: must be an "
                               "http:// or https:// URL");
    if (ss_chromium_resolve(cfg->chromium_path, cfg->puppeteer_path, path_env,
                            ss.chromium, sizeof(ss.chromium), err,
                            sizeof(err)) != WA_OK)
        wa_service_config_fail(SS_SERVICE, "configuration: %s", err);
    if (load_script(cfg->waweb_js, &ss.script, script_path,
                    sizeof(script_path)) != WA_OK)
        wa_service_config_fail(SS_SERVICE,
                               "configuration: WAWEB_JS: cannot read the "
                               "adapter script (waweb.js)%s%s",
                               cfg->waweb_js != NULL ? " at " : "",
                               cfg->waweb_js != NULL ? cfg->waweb_js : "");
    if (browser__mkdirs(cfg->sessions_dir) != WA_OK ||
        access(cfg->sessions_dir, W_OK | X_OK) != 0)
        wa_service_config_fail(SS_SERVICE,
                               "configuration: SESSIONS_DIR: %s cannot be "
                               "created, or is not a writable directory",
                               cfg->sessions_dir);
    if (cfg->instance_id != NULL) {
        snprintf(ss.instance, sizeof(ss.instance), "%s", cfg->instance_id);
    } else {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        snprintf(ss.instance, sizeof(ss.instance), "%s-%ld", host,
                 (long)getpid());
    }
    if (ss_advertise_url(cfg->session_url, cfg->advertise_url, ss.advertise,
                         sizeof(ss.advertise), &guessed) != WA_OK)
        wa_service_config_fail(SS_SERVICE,
                               "configuration: SESSION_URL: a wildcard "
                               "address needs a numeric port, or set "
                               "SESSION_ADVERTISE_URL");
    wa_log_init(SS_SERVICE, (wa_log_level_t)cfg->log_level);
    if (guessed)
        wa_warn(NULL,
                "SESSION_URL listens on every interface and this host has no "
                "address but loopback: registering %s, which only this host "
                "can reach (set SESSION_ADVERTISE_URL)",
                ss.advertise);
    signal(SIGPIPE, SIG_IGN);
    /* Browser processes orphaned by their parent come to us to be reaped
     * (we are PID 1 in a container anyway). */
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    ss.is_root = geteuid() == 0;
    make_user_agent(&ss);

    ss.loop = uv_default_loop();
    ss.sigterm.data = ss.sigint.data = ss.deadline.data = &ss;
    if (uv_signal_init(ss.loop, &ss.sigterm) != 0 ||
        uv_signal_init(ss.loop, &ss.sigint) != 0 ||
        uv_timer_init(ss.loop, &ss.deadline) != 0 ||
        uv_signal_start(&ss.sigterm, on_signal, SIGTERM) != 0 ||
        uv_signal_start(&ss.sigint, on_signal, SIGINT) != 0) {
        wa_error(NULL, "cannot install signal handlers");
        goto out;
    }
    loop_ready = true;
    ss.sigterm.data = ss.sigint.data = ss.deadline.data = &ss;
    if ((rv = wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, cfg->store_url, NULL,
                          &ss.store)) != WA_OK ||
        (rv = wa_bus_open(WA_SOCK_PUB, WA_SOCK_DIAL, cfg->events_url, NULL,
                          &ss.events)) != WA_OK) {
        wa_error(NULL, "cannot dial the store or events URL: %s",
                 wa_strerror(rv));
        goto out;
    }
    if ((rv = storeio__new(ss.store, ss.events, STOREIO_THREADS,
                           (int)cfg->store_timeout_ms, STORE_RETRY_MS,
                           &ss.io)) != WA_OK ||
        (rv = ops__init(&ss)) != WA_OK) {
        wa_error(NULL, "cannot start: %s", wa_strerror(rv));
        goto out;
    }
    if (wa_service_listen(SS_SERVICE, WA_SOCK_REP, cfg->session_url, NULL,
                          &ss.rep, &status) != WA_OK)
        goto out;
    if ((rv = wa_bus_server_start(ss.rep, (int)cfg->workers, ops__handle, &ss,
                                  &ss.server)) != WA_OK ||
        (rv = registry__start(&ss)) != WA_OK) {
        wa_error(NULL, "cannot start the bus server: %s", wa_strerror(rv));
        goto out;
    }
    spare__init(&ss);
    unlinker__init(&ss);
    wa_info(NULL,
            "instance %s listening on %s, registered as %s (browser %s, "
            "adapter %s, at most %ld sessions)",
            ss.instance, cfg->session_url, ss.advertise, ss.chromium,
            script_path, cfg->max_sessions);

    uv_run(ss.loop, UV_RUN_DEFAULT);
    status = 0;
out:
    if (loop_ready && !ss.stopping) {
        /* Failed at start: nothing runs yet but handles may exist. */
        ss.stopping = true;
        ops__shutdown(&ss);
        registry__stop(&ss);
        spare__free_all(&ss);
        unlinker__free_all(&ss);
        uv_close((uv_handle_t *)&ss.deadline, close_noop);
        uv_close((uv_handle_t *)&ss.sigterm, close_noop);
        uv_close((uv_handle_t *)&ss.sigint, close_noop);
        uv_run(ss.loop, UV_RUN_DEFAULT);
    }
    /* Store writes first: a drained or dropped barrier answers its bus
     * job (wa.disconnect), which must happen before the server is gone. */
    storeio__free(ss.io, STORE_DRAIN_MS);
    if (ss.server != NULL)
        wa_bus_server_stop(ss.server);
    if (nng_socket_id(ss.rep) > 0)
        nng_close(ss.rep);
    if (nng_socket_id(ss.events) > 0)
        nng_close(ss.events);
    if (nng_socket_id(ss.store) > 0)
        nng_close(ss.store);
    ops__free(&ss);
    if (loop_ready)
        uv_loop_close(ss.loop);
    free(ss.script);
    wa_config_free(specs, nspecs);
    return status;
}
