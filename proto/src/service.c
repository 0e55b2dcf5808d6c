/*
 * service.c - configuration failure and signal handling for main().
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "wa/log.h"
#include "wa/service.h"

static volatile sig_atomic_t stop_requested;
/* Self-pipe: the handler writes a byte so wa_service_wait wakes at once. */
static int wake_pipe[2] = {-1, -1};

static void config_line(const char *service, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", service);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void wa_service_config_line(const char *service, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_line(service, fmt, ap);
    va_end(ap);
}

wa_err_t wa_service_listen(const char *service, wa_sock_kind_t kind,
                           const char *url, const wa_sock_opts_t *opts,
                           nng_socket *out, int *status)
{
    char why[512];
    wa_err_t err = wa_bus_listen(kind, url, opts, out, why, sizeof(why));

    if (err == WA_ECONFIG) {
        wa_service_config_line(service, "%s", why);
        if (status != NULL)
            *status = WA_EXIT_CONFIG;
    } else if (err != WA_OK) {
        wa_error(NULL, "%s", why);
    }
    return err;
}

void wa_service_config_fail(const char *service, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    config_line(service, fmt, ap);
    va_end(ap);
    exit(WA_EXIT_CONFIG);
}

void wa_service_load_config(const char *service, const wa_config_spec_t *specs,
                            size_t n)
{
    char err[512];

    if (wa_config_load(specs, n, err, sizeof(err)) != WA_OK)
        wa_service_config_fail(service, "configuration: %s", err);
}

static void on_signal(int sig)
{
    int saved = errno;

    (void)sig;
    stop_requested = 1;
    if (wake_pipe[1] >= 0)
        (void)!write(wake_pipe[1], "x", 1);
    errno = saved;
}

wa_err_t wa_service_signals(void)
{
    struct sigaction sa = {0};

    if (wake_pipe[0] < 0 && pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return WA_EINTERNAL;
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return WA_EINTERNAL;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        return WA_EINTERNAL;
    return WA_OK;
}

bool wa_service_stopping(void)
{
    return stop_requested != 0;
}

void wa_service_request_stop(void)
{
    on_signal(0);
}

bool wa_service_wait(int timeout_ms)
{
    struct pollfd pfd = {.fd = wake_pipe[0], .events = POLLIN};
    long long deadline = timeout_ms < 0 ? -1 : wa_now_ms() + timeout_ms;

    while (!stop_requested) {
        int left = -1;

        if (deadline >= 0) {
            long long d = deadline - wa_now_ms();

            if (d <= 0)
                break;
            left = (int)d;
        }
        if (pfd.fd < 0) {
            /* Signals not installed: sleep in short steps. */
            struct timespec ts = {0, 50 * 1000 * 1000};

            nanosleep(&ts, NULL);
            continue;
        }
        (void)poll(&pfd, 1, left);
    }
    return stop_requested != 0;
}

void wa_service_tune_malloc(char **argv)
{
    if (argv == NULL || getenv("GLIBC_TUNABLES") != NULL)
        return;
    if (setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1) != 0)
        return;
    (void)execv("/proc/self/exe", argv);
    (void)unsetenv("GLIBC_TUNABLES"); /* not run again: carry on as is */
}

bool wa_service_trim_when_idle(uint64_t work_done, void (*release)(void *),
                               void *arg)
{
    static uint64_t last;
    static bool busy;
    bool trim = false;

    if (work_done != last) {
        busy = true;
    } else if (busy) {
        busy = false;
        trim = true;
        if (release != NULL)
            release(arg);
        (void)malloc_trim(0);
    }
    last = work_done;
    return trim;
}

long long wa_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
