/*
 * www.h - the live page's files (gateway/www/), embedded at build time by
 * embed.cmake like openapi.json: GET / (index.html), /app.js, /app.css.
 */
#ifndef GW_WWW_H
#define GW_WWW_H

#include <stddef.h>

/* Each file's bytes (NUL-terminated; _len excludes the NUL) and its strong
 * entity tag, quotes included (a hash of the bytes). Immutable. */
extern const unsigned char gw_www_index_html[];
extern const size_t gw_www_index_html_len;
extern const char gw_www_index_html_etag[];

extern const unsigned char gw_www_app_js[];
extern const size_t gw_www_app_js_len;
extern const char gw_www_app_js_etag[];

extern const unsigned char gw_www_app_css[];
extern const size_t gw_www_app_css_len;
extern const char gw_www_app_css_etag[];

#endif /* GW_WWW_H */
