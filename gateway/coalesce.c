/*
 * coalesce.c - single-flight table (coalesce.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coalesce.h"
#include "wa/hash.h"

#define CHAINS 64

typedef enum flight_state {
    F_RUNNING,
    F_DONE,
    F_FAILED,
} flight_state_t;

struct gw_flight {
    gw_flight_t *next; /* in its chain while in the table */
    unsigned refs;     /* guarded by the table's mutex */
    bool in_table;
    flight_state_t state;
    pthread_cond_t cv;
    gw_answer_t ans;
    char key[];
};

struct gw_flights {
    pthread_mutex_t mu;
    gw_flight_t *chains[CHAINS];
    size_t active;
};

static unsigned chain_of(const char *key)
{
    return (unsigned)(wa_fnv1a_str(key) % CHAINS);
}

wa_err_t gw_flights_new(gw_flights_t **out)
{
    gw_flights_t *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return WA_ENOMEM;
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f);
        return WA_ENOMEM;
    }
    *out = f;
    return WA_OK;
}

void gw_flights_free(gw_flights_t *f)
{
    if (f == NULL)
        return;
    /* Every flight is left before the server stops: the table is empty. */
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static void flight_free(gw_flight_t *fl)
{
    pthread_cond_destroy(&fl->cv);
    free(fl->ans.ctype);
    free(fl->ans.body);
    free(fl->ans.extra);
    free(fl);
}

gw_flight_t *gw_flight_join(gw_flights_t *f, const char *key, bool *leader)
{
    unsigned c = chain_of(key);
    size_t klen = strlen(key);
    pthread_condattr_t attr;
    gw_flight_t *fl;

    pthread_mutex_lock(&f->mu);
    for (fl = f->chains[c]; fl != NULL; fl = fl->next) {
        if (strcmp(fl->key, key) == 0) {
            fl->refs++;
            pthread_mutex_unlock(&f->mu);
            *leader = false;
            return fl;
        }
    }
    pthread_mutex_unlock(&f->mu);

    if ((fl = calloc(1, sizeof(*fl) + klen + 1)) == NULL)
        return NULL;
    memcpy(fl->key, key, klen + 1);
    if (pthread_condattr_init(&attr) != 0) {
        free(fl);
        return NULL;
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_cond_init(&fl->cv, &attr) != 0) {
        pthread_condattr_destroy(&attr);
        free(fl);
        return NULL;
    }
    pthread_condattr_destroy(&attr);
    fl->refs = 1;
    fl->state = F_RUNNING;

    pthread_mutex_lock(&f->mu);
    /* Someone may have started the same flight while we allocated. */
    for (gw_flight_t *o = f->chains[c]; o != NULL; o = o->next) {
        if (strcmp(o->key, key) == 0) {
            o->refs++;
            pthread_mutex_unlock(&f->mu);
            flight_free(fl);
            *leader = false;
            return o;
        }
    }
    fl->next = f->chains[c];
    f->chains[c] = fl;
    fl->in_table = true;
    f->active++;
    pthread_mutex_unlock(&f->mu);
    *leader = true;
    return fl;
}

/* Take fl out of the table. Caller holds f->mu. */
static void unlink_flight(gw_flights_t *f, gw_flight_t *fl)
{
    if (!fl->in_table)
        return;
    for (gw_flight_t **pp = &f->chains[chain_of(fl->key)]; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == fl) {
            *pp = fl->next;
            break;
        }
    }
    fl->in_table = false;
    f->active--;
}

static char *dup_or_null(const char *s, bool *failed)
{
    char *d;

    if (s == NULL)
        return NULL;
    if ((d = strdup(s)) == NULL)
        *failed = true;
    return d;
}

void gw_flight_publish(gw_flights_t *f, gw_flight_t *fl, int status,
                       const char *ctype, const char *body, size_t len,
                       const char *extra)
{
    gw_answer_t a = {.status = status, .len = len};
    bool failed = false;

    /* Copies are made before taking the lock. */
    a.ctype = dup_or_null(ctype, &failed);
    a.extra = dup_or_null(extra, &failed);
    if ((a.body = malloc(len + 1)) == NULL) {
        failed = true;
    } else {
        if (len > 0)
            memcpy(a.body, body, len);
        a.body[len] = '\0';
    }
    pthread_mutex_lock(&f->mu);
    unlink_flight(f, fl);
    if (failed) {
        fl->state = F_FAILED;
    } else {
        fl->ans = a;
        fl->state = F_DONE;
    }
    pthread_mutex_unlock(&f->mu);
    /* After unlocking, so woken followers do not queue on the mutex we
     * hold; our own reference keeps fl alive. */
    pthread_cond_broadcast(&fl->cv);
    if (failed) {
        free(a.ctype);
        free(a.extra);
        free(a.body);
    }
}

void gw_flight_publish_failed(gw_flights_t *f, gw_flight_t *fl)
{
    pthread_mutex_lock(&f->mu);
    unlink_flight(f, fl);
    fl->state = F_FAILED;
    pthread_mutex_unlock(&f->mu);
    pthread_cond_broadcast(&fl->cv);
}

wa_err_t gw_flight_wait(gw_flights_t *f, gw_flight_t *fl, long long deadline_ms,
                        const gw_answer_t **ans)
{
    struct timespec until = {
        .tv_sec = (time_t)(deadline_ms / 1000),
        .tv_nsec = (long)(deadline_ms % 1000) * 1000000L,
    };
    wa_err_t rv = WA_OK;

    pthread_mutex_lock(&f->mu);
    while (fl->state == F_RUNNING) {
        if (pthread_cond_timedwait(&fl->cv, &f->mu, &until) == ETIMEDOUT &&
            fl->state == F_RUNNING) {
            rv = WA_ETIMEDOUT;
            break;
        }
    }
    if (rv == WA_OK && fl->state == F_FAILED)
        rv = WA_EINTERNAL;
    pthread_mutex_unlock(&f->mu);
    if (rv == WA_OK)
        *ans = &fl->ans;
    return rv;
}

void gw_flight_leave(gw_flights_t *f, gw_flight_t *fl)
{
    bool last;

    pthread_mutex_lock(&f->mu);
    last = --fl->refs == 0;
    pthread_mutex_unlock(&f->mu);
    if (last)
        flight_free(fl);
}

/* Is key's second line user? */
static bool key_has_user(const char *key, const char *user, size_t ulen)
{
    const char *nl = strchr(key, '\n');

    return nl != NULL && strncmp(nl + 1, user, ulen) == 0 &&
           nl[1 + ulen] == '\n';
}

void gw_flights_forget_user(gw_flights_t *f, const char *user)
{
    size_t ulen = strlen(user);

    pthread_mutex_lock(&f->mu);
    for (int c = 0; c < CHAINS && f->active > 0; c++) {
        gw_flight_t *fl = f->chains[c], *next;

        for (; fl != NULL; fl = next) {
            next = fl->next;
            if (key_has_user(fl->key, user, ulen))
                unlink_flight(f, fl);
        }
    }
    pthread_mutex_unlock(&f->mu);
}

size_t gw_flights_active(gw_flights_t *f)
{
    size_t n;

    pthread_mutex_lock(&f->mu);
    n = f->active;
    pthread_mutex_unlock(&f->mu);
    return n;
}
