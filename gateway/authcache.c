/*
 * authcache.c - remembered token verifications (authcache.h).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "authcache.h"
#include "stripes.h"
#include "wa/hash.h"

#define STRIPES 16
#define PER_STRIPE (GW_AUTHCACHE_MAX / STRIPES)

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    time_t until; /* remembered while now < until */
    time_t added;
    wa_principal_t who;
    size_t len;
    char header[];
} entry_t;

typedef struct stripe {
    pthread_mutex_t mu;
    entry_t *head;
    size_t count;
} stripe_t;

struct gw_authcache {
    stripe_t stripes[STRIPES];
};

wa_err_t gw_authcache_new(gw_authcache_t **out)
{
    gw_authcache_t *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return WA_ENOMEM;
    if (gw_stripes_init(&c->stripes[0].mu, STRIPES, sizeof(c->stripes[0])) !=
        WA_OK) {
        free(c);
        return WA_ENOMEM;
    }
    *out = c;
    return WA_OK;
}

static void entry_free(entry_t *e)
{
    explicit_bzero(e->header, e->len);
    free(e);
}

void gw_authcache_free(gw_authcache_t *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < STRIPES; i++) {
        entry_t *e = c->stripes[i].head, *next;

        for (; e != NULL; e = next) {
            next = e->next;
            entry_free(e);
        }
    }
    gw_stripes_destroy(&c->stripes[0].mu, STRIPES, sizeof(c->stripes[0]));
    free(c);
}

/*
 * Split "Bearer <jwt>" (the only form remembered: exactly one space, no
 * other whitespace) and return the payload's "exp" in *exp (0 = none).
 * False when the header is of another form.
 */
static bool bearer_exp(const char *header, size_t len, time_t *exp)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *tok, *d1, *d2;
    unsigned char *buf;
    size_t n = 0, plen;
    uint32_t acc = 0;
    int bits = 0;
    cJSON *claims, *e;

    if (len < 8 || len > WA_AUTH_TOKEN_MAX || strncasecmp(header, "Bearer ", 7))
        return false;
    tok = header + 7;
    if ((d1 = strchr(tok, '.')) == NULL || (d2 = strchr(d1 + 1, '.')) == NULL ||
        strchr(d2 + 1, '.') != NULL || strpbrk(tok, " \t") != NULL)
        return false;
    plen = (size_t)(d2 - d1 - 1);
    if ((buf = malloc(plen * 3 / 4 + 1)) == NULL)
        return false;
    for (size_t i = 0; i < plen; i++) {
        const char *p = memchr(b64, d1[1 + i], 64);

        if (p == NULL) {
            free(buf);
            return false;
        }
        acc = acc << 6 | (uint32_t)(p - b64);
        if ((bits += 6) >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
        }
    }
    claims = cJSON_ParseWithLength((const char *)buf, n);
    free(buf);
    if (claims == NULL)
        return false;
    e = cJSON_GetObjectItemCaseSensitive(claims, "exp");
    *exp = cJSON_IsNumber(e) && e->valuedouble > 0 ? (time_t)e->valuedouble : 0;
    cJSON_Delete(claims);
    return true;
}

bool gw_authcache_get(gw_authcache_t *c, const char *header, time_t now,
                      wa_principal_t *out)
{
    size_t len;
    uint64_t h;
    stripe_t *st;
    bool found = false;

    if (header == NULL)
        return false;
    len = strnlen(header, WA_AUTH_TOKEN_MAX + 1);
    if (len > WA_AUTH_TOKEN_MAX)
        return false;
    h = wa_fnv1a(WA_FNV1A_INIT, header, len);
    st = &c->stripes[h % STRIPES];
    pthread_mutex_lock(&st->mu);
    for (entry_t *e = st->head; e != NULL; e = e->next) {
        if (e->hash == h && e->len == len &&
            memcmp(e->header, header, len) == 0) {
            if (now < e->until) {
                *out = e->who;
                found = true;
            }
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
    return found;
}

/* Make room in a full stripe: drop expired entries, else the oldest.
 * Caller holds st->mu. */
static void evict(stripe_t *st, time_t now)
{
    entry_t **oldest = NULL;

    for (entry_t **pp = &st->head; *pp != NULL;) {
        entry_t *e = *pp;

        if (now >= e->until) {
            *pp = e->next;
            entry_free(e);
            st->count--;
            continue;
        }
        if (oldest == NULL || e->added < (*oldest)->added)
            oldest = pp;
        pp = &e->next;
    }
    if (st->count >= PER_STRIPE && oldest != NULL) {
        entry_t *e = *oldest;

        *oldest = e->next;
        entry_free(e);
        st->count--;
    }
}

void gw_authcache_put(gw_authcache_t *c, const char *header, time_t now,
                      const wa_principal_t *p)
{
    size_t len;
    time_t exp, until = now + GW_AUTHCACHE_TTL_S;
    uint64_t h;
    stripe_t *st;
    entry_t *e;

    if (header == NULL)
        return;
    len = strnlen(header, WA_AUTH_TOKEN_MAX + 1);
    if (!bearer_exp(header, len, &exp))
        return;
    if (exp != 0 && exp < until)
        until = exp;
    if (until <= now || (e = malloc(sizeof(*e) + len)) == NULL)
        return;
    h = wa_fnv1a(WA_FNV1A_INIT, header, len);
    e->hash = h;
    e->until = until;
    e->added = now;
    e->who = *p;
    e->len = len;
    memcpy(e->header, header, len);

    st = &c->stripes[h % STRIPES];
    pthread_mutex_lock(&st->mu);
    for (entry_t **pp = &st->head; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->hash == h && (*pp)->len == len &&
            memcmp((*pp)->header, header, len) == 0) {
            entry_t *old = *pp;

            *pp = old->next;
            entry_free(old);
            st->count--;
            break;
        }
    }
    if (st->count >= PER_STRIPE)
        evict(st, now);
    e->next = st->head;
    st->head = e;
    st->count++;
    pthread_mutex_unlock(&st->mu);
}
