/*
 * authcache.h - verified bearer tokens, remembered for a short while.
 *
 * Verifying an HS256 JWT (base64, two JSON parses, HMAC) costs about as
 * much as the rest of a request; CRM clients send the same token many times
 * a second. A successful verification is remembered, keyed by the exact
 * Authorization header, until the earlier of GW_AUTHCACHE_TTL_S from now
 * and the token's own "exp" (no leeway): a cached answer is never one the
 * verifier would not give. Failures are never cached. Memory is bounded
 * (GW_AUTHCACHE_MAX entries, striped; a full stripe drops its expired
 * entries, then its oldest); token bytes are wiped when an entry goes.
 *
 * Thread-safe: striped mutexes.
 */
#ifndef GW_AUTHCACHE_H
#define GW_AUTHCACHE_H

#include <stdbool.h>
#include <time.h>

#include "wa/auth.h"

#define GW_AUTHCACHE_TTL_S 60
#define GW_AUTHCACHE_MAX 4096

typedef struct gw_authcache gw_authcache_t;

wa_err_t gw_authcache_new(gw_authcache_t **out);
void gw_authcache_free(gw_authcache_t *c);

/* The principal remembered for header at wall-clock time now, if any. */
bool gw_authcache_get(gw_authcache_t *c, const char *header, time_t now,
                      wa_principal_t *out);

/*
 * Remember that header verified as p at time now. The token's "exp" is read
 * from its payload (not verified again: the caller just did); a header that
 * is not "Bearer <jwt>" is not remembered. Out of memory only skips it.
 */
void gw_authcache_put(gw_authcache_t *c, const char *header, time_t now,
                      const wa_principal_t *p);

#endif /* GW_AUTHCACHE_H */
