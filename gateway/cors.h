/*
 * cors.h - the gateway's own CORS answers (CivetWeb's are switched off).
 *
 * An Origin is allowed only when it equals, byte for byte, one entry of
 * ALLOWED_ORIGINS; then, and only then, responses carry
 * Access-Control-Allow-Origin with that origin. Every response carries
 * "Vary: Origin" so caches never mix the two. Pure functions, thread-safe.
 */
#ifndef GW_CORS_H
#define GW_CORS_H

#include <stdbool.h>
#include <stddef.h>

/* Longest Origin we echo; a longer one is treated as not allowed. */
#define GW_ORIGIN_MAX 512

/* Room a caller needs for the headers of either function below. */
#define GW_CORS_HEADERS_MAX (GW_ORIGIN_MAX + 512)

/* Headers a browser may send and read, and how long a preflight is cached. */
#define GW_CORS_ALLOW_HEADERS "Authorization, Content-Type, X-Request-Id"
#define GW_CORS_EXPOSE_HEADERS "X-Request-Id, Retry-After"
#define GW_CORS_MAX_AGE_S 600

/* Is origin (may be NULL) in allowed (NULL-terminated, may be empty)? */
bool gw_cors_allowed(char *const *allowed, const char *origin);

/*
 * Write the CORS headers of an ordinary response into buf (len >=
 * GW_CORS_HEADERS_MAX), each "Name: value\r\n": always Vary: Origin; for an
 * allowed origin also Access-Control-Allow-Origin and -Expose-Headers.
 * Returns whether the origin is allowed.
 */
bool gw_cors_headers(char *const *allowed, const char *origin, char *buf,
                     size_t len);

/*
 * Is this request a CORS preflight: OPTIONS with an
 * Access-Control-Request-Method header (request_method may be NULL)?
 */
bool gw_cors_is_preflight(const char *method, const char *request_method);

/*
 * Write the headers of a successful preflight answer (204) for an allowed
 * origin into buf (len >= GW_CORS_HEADERS_MAX): the headers of
 * gw_cors_headers plus Allow-Methods (methods, e.g. "GET, OPTIONS"),
 * Allow-Headers and Max-Age. Returns false, writing only Vary: Origin, when
 * the origin is not allowed (the caller answers 403).
 */
bool gw_cors_preflight_headers(char *const *allowed, const char *origin,
                               const char *methods, char *buf, size_t len);

#endif /* GW_CORS_H */
