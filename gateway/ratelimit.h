/*
 * ratelimit.h - a token bucket per user (RATE_LIMIT_RPS refill,
 * RATE_LIMIT_BURST capacity).
 *
 * Thread-safe: buckets live in striped hash tables, one mutex per stripe, so
 * requests of different users rarely wait for each other. Memory is bounded:
 * each stripe holds at most max_buckets / GW_RL_STRIPES buckets. A bucket
 * that has been idle long enough to be full again is equivalent to no bucket
 * and is evicted first; if a stripe is full of active buckets, its least
 * recently used one goes (that user gets a fresh burst: lenient, never
 * wrong the other way).
 */
#ifndef GW_RATELIMIT_H
#define GW_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "wa/err.h"

#define GW_RL_STRIPES 64
#define GW_RL_MAX_BUCKETS_DEFAULT 65536

typedef struct gw_ratelimit gw_ratelimit_t;

/*
 * A limiter refilling rps tokens per second up to burst (both > 0), holding
 * at most max_buckets buckets (>= GW_RL_STRIPES). *out on success; free
 * with gw_ratelimit_free(). WA_EINVAL or WA_ENOMEM.
 */
wa_err_t gw_ratelimit_new(double rps, double burst, size_t max_buckets,
                          gw_ratelimit_t **out);
void gw_ratelimit_free(gw_ratelimit_t *rl);

/*
 * Take one token from user's bucket at time now_ms (a monotonic clock in
 * milliseconds; callers pass wa_now_ms()). WA_OK, or WA_ERATELIMIT with
 * *retry_after_s set to the whole seconds (>= 1) until a token is there
 * again, or WA_ENOMEM (a new bucket could not be allocated).
 */
wa_err_t gw_ratelimit_take(gw_ratelimit_t *rl, const char *user, int64_t now_ms,
                           long *retry_after_s);

/* Buckets currently held (for tests and metrics). */
size_t gw_ratelimit_count(gw_ratelimit_t *rl);

#endif /* GW_RATELIMIT_H */
