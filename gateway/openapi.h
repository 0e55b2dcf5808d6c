/*
 * openapi.h - gateway/openapi.json, embedded at build time (embed.cmake):
 * the one description of every route, served at GET /openapi.json.
 */
#ifndef GW_OPENAPI_H
#define GW_OPENAPI_H

#include <stddef.h>

/* The document's bytes, NUL-terminated; gw_openapi_json_len excludes the
 * NUL. Immutable. */
extern const unsigned char gw_openapi_json[];
extern const size_t gw_openapi_json_len;

#endif /* GW_OPENAPI_H */
