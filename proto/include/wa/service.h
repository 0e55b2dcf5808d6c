/*
 * service.h - what every service's main() does the same way: load the
 * configuration or stop with exit status 2, and turn SIGTERM/SIGINT into a
 * stop request that the main loop waits for.
 */
#ifndef WA_SERVICE_H
#define WA_SERVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "wa/auth.h"
#include "wa/bus.h"
#include "wa/config.h"

/*
 * For main() of a service with a thread per connection (gateway,
 * notifier-svc), first thing: unless GLIBC_TUNABLES is set already, run
 * this program again (same pid, same arguments) with glibc's per-thread
 * malloc caches off. Each thread's cache keeps up to 7 freed blocks of
 * every small size, out of malloc_trim's reach until the thread exits: for
 * 72 CivetWeb workers, measured, 4 MiB of an idle gateway's 15 MiB. Turning
 * them off measured no loss of requests/s. Returns (carrying on as is)
 * only if the environment had the variable or the exec failed.
 */
void wa_service_tune_malloc(char **argv);

/* Exit status of a binary refused by its configuration (DESIGN §2). */
#define WA_EXIT_CONFIG 2

/*
 * Load specs[0..n); on failure print one line "<service>: <reason>" to
 * stderr and exit(WA_EXIT_CONFIG). Call from main() before any thread.
 */
void wa_service_load_config(const char *service, const wa_config_spec_t *specs,
                            size_t n);

/* Print "<service>: <reason>" (printf-style) and exit(WA_EXIT_CONFIG). */
void wa_service_config_fail(const char *service, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* The same line without the exit, for a main() that cleans up first and
 * then returns WA_EXIT_CONFIG itself (a port it cannot listen on). */
void wa_service_config_line(const char *service, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * For main(): the service's own listening bus socket (wa_bus_listen). On
 * failure the reason is reported once and the error returned: an address
 * that cannot be used is configuration, one line "<service>: cannot listen
 * on <url>: <reason>" on stderr and *status set to WA_EXIT_CONFIG; any
 * other failure is logged and *status left as it was.
 */
wa_err_t wa_service_listen(const char *service, wa_sock_kind_t kind,
                           const char *url, const wa_sock_opts_t *opts,
                           nng_socket *out, int *status);

/*
 * For main() of a service that authenticates (gateway, notifier-svc): build
 * the verifier from opts, or exit(WA_EXIT_CONFIG) with one line naming the
 * reason; warn loudly when dev mode is on. Call after wa_log_init().
 */
wa_auth_t *wa_service_auth(const char *service, const wa_auth_opts_t *opts);

/*
 * Install the SIGTERM/SIGINT handlers (they only record the request and
 * wake wa_service_wait) and ignore SIGPIPE. Returns WA_OK or WA_EINTERNAL.
 */
wa_err_t wa_service_signals(void);

/* Has a stop been requested? Async-signal-safe, thread-safe. */
bool wa_service_stopping(void);

/* Request a stop from inside the process (as a signal would). */
void wa_service_request_stop(void);

/*
 * Sleep until a stop is requested or timeout_ms passes (< 0: no timeout).
 * Returns wa_service_stopping().
 */
bool wa_service_wait(int timeout_ms);

/*
 * For a main loop that wakes every second or so: work_done is any counter
 * of work that only rises (requests served). When it stood still since the
 * last call after having moved, a burst of work is over: release(arg) runs
 * first, if given, for the service to drop caches of its own (store-svc:
 * SQLite's page cache), then the heap memory the service's threads freed
 * is given back to the system (malloc_trim): glibc keeps it in per-thread
 * arenas otherwise, so an idle service would hold what its busiest second
 * needed. Returns whether it trimmed. Not thread-safe: one caller.
 */
bool wa_service_trim_when_idle(uint64_t work_done, void (*release)(void *),
                               void *arg);

/* Milliseconds of CLOCK_MONOTONIC. */
long long wa_now_ms(void);

#endif /* WA_SERVICE_H */
