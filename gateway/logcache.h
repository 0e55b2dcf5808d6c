/*
 * logcache.h - GET /logs bodies kept with the version of the log they show.
 *
 * A CRM polls GET /logs and mostly reads what it read before. The gateway
 * keeps the last body it served for each (user, limit) with the log's
 * version from store-svc ("<store epoch>.<newest row id>", opaque here) and
 * asks log.list {"ifChanged": version}: store-svc answers
 * {"unchanged":true} after one index probe while no row of that user was
 * appended, and the kept body is sent. It is never served without that
 * question: a body is only as old as the request that checked it. A body
 * is only ever shown to the user whose token fetched it: the key is the
 * verified user id, compared byte for byte.
 *
 * Bounded: GW_LOGCACHE_MAX entries and GW_LOGCACHE_BYTES of bodies,
 * striped; a full stripe drops its least recently used entries; a body
 * larger than a stripe's share is not kept. An idle gateway drops them all
 * (gw_logcache_clear from the idle trim): they are worth something only
 * while clients poll.
 *
 * Bodies are shared, immutable and counted: a reader keeps its reference
 * while it writes the body to its connection, even if the entry is
 * replaced or dropped meanwhile. Thread-safe: striped mutexes.
 */
#ifndef GW_LOGCACHE_H
#define GW_LOGCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "wa/err.h"

#define GW_LOGCACHE_MAX 4096
#define GW_LOGCACHE_BYTES (4u * 1024u * 1024u)
/* Longest version kept (store-svc's are 24 + 1 + up to 19 bytes). */
#define GW_LOGCACHE_VERSION_MAX 64

/* A GET /logs body and the version of the log it shows. Read-only once
 * made; the reference count is the cache's business. */
typedef struct gw_logbody {
    atomic_uint refs;
    size_t version_len;
    char version[GW_LOGCACHE_VERSION_MAX + 1]; /* NUL-terminated */
    size_t len;
    char body[]; /* {"logs":<rows>}, NUL-terminated */
} gw_logbody_t;

typedef struct gw_logcache_stats {
    uint64_t hits;    /* bodies sent again, the log unchanged */
    uint64_t misses;  /* bodies fetched (no body kept, or the log changed) */
    uint64_t entries; /* kept now */
    uint64_t bytes;   /* of bodies kept now */
} gw_logcache_stats_t;

typedef struct gw_logcache gw_logcache_t;

wa_err_t gw_logcache_new(gw_logcache_t **out);
void gw_logcache_free(gw_logcache_t *c);

/*
 * A body {"logs":<rows>} (rows: the JSON array's text, already checked)
 * for version (vlen bytes, 1..GW_LOGCACHE_VERSION_MAX, no NUL), with one
 * reference, the caller's. NULL when out of memory or the version is out
 * of bounds.
 */
gw_logbody_t *gw_logbody_new(const char *version, size_t vlen, const char *rows,
                             size_t rows_len);

/* Drop a reference; the last frees the body. NULL is a no-op. */
void gw_logbody_release(gw_logbody_t *b);

/* The body kept for (user, limit), with a reference for the caller, or
 * NULL. */
gw_logbody_t *gw_logcache_get(gw_logcache_t *c, const char *user, long limit);

/* Keep b for (user, limit), replacing what was kept (the cache takes a
 * reference of its own; the caller keeps its). Counts a miss. */
void gw_logcache_put(gw_logcache_t *c, const char *user, long limit,
                     gw_logbody_t *b);

/* Count a body sent again because the log was unchanged. */
void gw_logcache_hit(gw_logcache_t *c);

/* Drop every kept body (readers keep theirs until they release them). */
void gw_logcache_clear(gw_logcache_t *c);

void gw_logcache_stats(gw_logcache_t *c, gw_logcache_stats_t *out);

#endif /* GW_LOGCACHE_H */
