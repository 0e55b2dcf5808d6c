/*
 * ratelimit.c - per-user token buckets in striped hash tables
 * (ratelimit.h).
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "stripes.h"
#include "wa/hash.h"

/* Chains per stripe; a power of two. */
#define CHAINS 64

/* A stripe with spare room sweeps its idle buckets at most this often. */
#define SWEEP_EVERY_MS 60000

typedef struct bucket {
    struct bucket *next;
    uint64_t hash;
    double tokens;
    int64_t last_ms; /* when tokens was last brought up to date */
    char user[];
} bucket_t;

typedef struct stripe {
    pthread_mutex_t mu;
    bucket_t *chains[CHAINS];
    size_t count;
    int64_t swept_ms;
} stripe_t;

struct gw_ratelimit {
    double rps, burst;
    int64_t full_after_ms; /* an empty bucket is full again after this */
    size_t per_stripe;
    stripe_t stripes[GW_RL_STRIPES];
};

wa_err_t gw_ratelimit_new(double rps, double burst, size_t max_buckets,
                          gw_ratelimit_t **out)
{
    gw_ratelimit_t *rl;

    if (!(rps > 0) || !(burst > 0) || max_buckets < GW_RL_STRIPES)
        return WA_EINVAL;
    if ((rl = calloc(1, sizeof(*rl))) == NULL)
        return WA_ENOMEM;
    rl->rps = rps;
    rl->burst = burst;
    rl->full_after_ms = (int64_t)ceil(burst / rps * 1000.0);
    rl->per_stripe = max_buckets / GW_RL_STRIPES;
    if (gw_stripes_init(&rl->stripes[0].mu, GW_RL_STRIPES,
                        sizeof(rl->stripes[0])) != WA_OK) {
        free(rl);
        return WA_ENOMEM;
    }
    *out = rl;
    return WA_OK;
}

void gw_ratelimit_free(gw_ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < GW_RL_STRIPES; i++) {
        stripe_t *st = &rl->stripes[i];

        for (int c = 0; c < CHAINS; c++) {
            bucket_t *b = st->chains[c], *next;

            for (; b != NULL; b = next) {
                next = b->next;
                free(b);
            }
        }
    }
    gw_stripes_destroy(&rl->stripes[0].mu, GW_RL_STRIPES,
                       sizeof(rl->stripes[0]));
    free(rl);
}

/* Remove buckets idle long enough to be full; if none was and force is
 * set, remove the least recently used one. Caller holds st->mu. */
static void sweep(gw_ratelimit_t *rl, stripe_t *st, int64_t now_ms, bool force)
{
    bucket_t **lru = NULL;
    size_t before = st->count;

    st->swept_ms = now_ms;
    for (int c = 0; c < CHAINS; c++) {
        bucket_t **pp = &st->chains[c];

        while (*pp != NULL) {
            bucket_t *b = *pp;

            if (now_ms - b->last_ms >= rl->full_after_ms) {
                *pp = b->next;
                free(b);
                st->count--;
                continue;
            }
            if (lru == NULL || b->last_ms < (*lru)->last_ms)
                lru = pp;
            pp = &b->next;
        }
    }
    if (force && st->count == before && lru != NULL) {
        bucket_t *b = *lru;

        *lru = b->next;
        free(b);
        st->count--;
    }
}

wa_err_t gw_ratelimit_take(gw_ratelimit_t *rl, const char *user, int64_t now_ms,
                           long *retry_after_s)
{
    uint64_t h = wa_fnv1a_str(user); /* stripes and chains use its bits */
    stripe_t *st = &rl->stripes[h % GW_RL_STRIPES];
    bucket_t **chain = &st->chains[(h / GW_RL_STRIPES) % CHAINS];
    bucket_t *b;
    wa_err_t rv = WA_OK;
    size_t ulen;

    pthread_mutex_lock(&st->mu);
    for (b = *chain; b != NULL; b = b->next) {
        if (b->hash == h && strcmp(b->user, user) == 0)
            break;
    }
    if (b == NULL) {
        if (st->count >= rl->per_stripe)
            sweep(rl, st, now_ms, true);
        else if (now_ms - st->swept_ms >= SWEEP_EVERY_MS)
            sweep(rl, st, now_ms, false);
        ulen = strlen(user);
        if ((b = malloc(sizeof(*b) + ulen + 1)) == NULL) {
            rv = WA_ENOMEM;
            goto out;
        }
        b->hash = h;
        b->tokens = rl->burst;
        b->last_ms = now_ms;
        memcpy(b->user, user, ulen + 1);
        b->next = *chain;
        *chain = b;
        st->count++;
    } else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rl->rps / 1000.0;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
    } else {
        double wait_s = (1.0 - b->tokens) / rl->rps;
        long s = (long)ceil(wait_s);

        *retry_after_s = s < 1 ? 1 : s;
        rv = WA_ERATELIMIT;
    }
out:
    pthread_mutex_unlock(&st->mu);
    return rv;
}

size_t gw_ratelimit_count(gw_ratelimit_t *rl)
{
    size_t n = 0;

    for (int i = 0; i < GW_RL_STRIPES; i++) {
        pthread_mutex_lock(&rl->stripes[i].mu);
        n += rl->stripes[i].count;
        pthread_mutex_unlock(&rl->stripes[i].mu);
    }
    return n;
}
