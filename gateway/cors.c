/*
 * cors.c - CORS headers and preflight answers (cors.h).
 */
#include <stdio.h>
#include <string.h>

#include "cors.h"
#include "wa/config.h"

bool gw_cors_allowed(char *const *allowed, const char *origin)
{
    if (origin == NULL || origin[0] == '\0' ||
        strnlen(origin, GW_ORIGIN_MAX + 1) > GW_ORIGIN_MAX || allowed == NULL)
        return false;
    return wa_strv_contains(allowed, origin);
}

bool gw_cors_headers(char *const *allowed, const char *origin, char *buf,
                     size_t len)
{
    int n;

    if (!gw_cors_allowed(allowed, origin)) {
        snprintf(buf, len, "Vary: Origin\r\n");
        return false;
    }
    n = snprintf(buf, len,
                 "Vary: Origin\r\n"
                 "Access-Control-Allow-Origin: %s\r\n"
                 "Access-Control-Expose-Headers: " GW_CORS_EXPOSE_HEADERS
                 "\r\n",
                 origin);
    return n > 0 && (size_t)n < len;
}

bool gw_cors_is_preflight(const char *method, const char *request_method)
{
    return method != NULL && strcmp(method, "OPTIONS") == 0 &&
           request_method != NULL;
}

bool gw_cors_preflight_headers(char *const *allowed, const char *origin,
                               const char *methods, char *buf, size_t len)
{
    size_t used;
    int n;

    if (!gw_cors_headers(allowed, origin, buf, len))
        return false;
    used = strlen(buf);
    n = snprintf(buf + used, len - used,
                 "Access-Control-Allow-Methods: %s\r\n"
                 "Access-Control-Allow-Headers: " GW_CORS_ALLOW_HEADERS "\r\n"
                 "Access-Control-Max-Age: %d\r\n",
                 methods, GW_CORS_MAX_AGE_S);
    return n > 0 && (size_t)n < len - used;
}
