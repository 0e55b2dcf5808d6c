/*
 * www.c - the live page: GET / (index.html), GET /app.js, GET /app.css,
 * built in (www.h). No authentication: the page holds no data; it asks for
 * a token and sends it with its own REST and WebSocket calls.
 *
 * The document is served with a Content-Security-Policy that lets only
 * these files run and style it (no inline script or style anywhere),
 * images only from here or data: URLs (the QR code), connections only to
 * this origin and to WebSocket URLs (the notifier is on another port).
 * Referrer-Policy: no-referrer, since the page may be opened with
 * ?token= in its URL (it removes it at once, but its own subresource
 * requests start before that).
 */
#include "gateway.h"
#include "www.h"

#define CSP                                                                    \
    "Content-Security-Policy: default-src 'self'; "                            \
    "connect-src 'self' ws: wss:; img-src 'self' data:; "                      \
    "script-src 'self'; style-src 'self'; frame-ancestors 'none'; "            \
    "base-uri 'none'; form-action 'none'\r\n"

#define NO_REFERRER "Referrer-Policy: no-referrer\r\n"

void gw_route_page(gw_req_t *r)
{
    gw_reply_static(r, "text/html; charset=utf-8",
                    (const char *)gw_www_index_html, gw_www_index_html_len,
                    gw_www_index_html_etag,
                    CSP NO_REFERRER "X-Frame-Options: DENY\r\n");
}

void gw_route_page_js(gw_req_t *r)
{
    gw_reply_static(r, "text/javascript; charset=utf-8",
                    (const char *)gw_www_app_js, gw_www_app_js_len,
                    gw_www_app_js_etag, NO_REFERRER);
}

void gw_route_page_css(gw_req_t *r)
{
    gw_reply_static(r, "text/css; charset=utf-8", (const char *)gw_www_app_css,
                    gw_www_app_css_len, gw_www_app_css_etag, NO_REFERRER);
}
