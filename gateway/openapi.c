/*
 * openapi.c - GET /openapi.json: the checked-in document, as built in.
 */
#include "gateway.h"
#include "openapi.h"

void gw_route_openapi(gw_req_t *r)
{
    gw_reply_raw(r, 200, "application/json", (const char *)gw_openapi_json,
                 gw_openapi_json_len);
}
