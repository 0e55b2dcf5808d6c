/*
 * err.h - the one error enum of wa-server.
 *
 * Every function in proto and in the services returns a wa_err_t (0 on
 * success). Each code has one machine code (the "code" of a bus error reply
 * and of an HTTP error body), one HTTP status the gateway answers with, and
 * one human message. The table lives in err.c; nothing else maps codes.
 */
#ifndef WA_ERR_H
#define WA_ERR_H

#include <stdbool.h>

typedef enum wa_err {
    WA_OK = 0,
    WA_EINVAL,        /* bad_request        400: malformed or invalid input */
    WA_ETOOBIG,       /* payload_too_large  413: over a size limit */
    WA_EUTF8,         /* invalid_utf8       400: text is not valid UTF-8 */
    WA_EPROTO,        /* bad_envelope       400: not a valid bus envelope */
    WA_EVERSION,      /* unsupported_version 400: envelope "v" unknown */
    WA_EUNKNOWNOP,    /* unknown_operation  400: op not in the table */
    WA_EUNAUTH,       /* unauthorized       401: missing or bad credentials */
    WA_EFORBIDDEN,    /* forbidden          403 */
    WA_ENOTFOUND,     /* not_found          404 */
    WA_EMETHOD,       /* method_not_allowed 405 */
    WA_ENOTREADY,     /* not_ready          409: session not ready */
    WA_ECONFLICT,     /* conflict           409 */
    WA_ERATELIMIT,    /* rate_limited       429 */
    WA_ENOMEM,        /* out_of_memory      500 */
    WA_EINTERNAL,     /* internal_error     500 */
    WA_ESTORAGE,      /* storage_error      500: the database failed */
    WA_EUNAVAIL,      /* unavailable        503: a backend is not there */
    WA_ENOSESSIONSVC, /* no_session_service 503: no session-svc answers */
    WA_EFULL,         /* capacity_reached   503: MAX_SESSIONS and the like */
    WA_ETIMEDOUT,     /* timeout            504: a backend did not answer */
    WA_ECLOSED,       /* closed             503: the socket or service closed */
    WA_EBROWSER,      /* browser_error      502: Chromium or the page failed */
    WA_ECONFIG,       /* bad_config         500: configuration is invalid */
    WA_ERR_COUNT      /* not an error: the number of codes */
} wa_err_t;

/* Human message for err ("invalid argument"). Never NULL. Thread-safe. */
const char *wa_strerror(wa_err_t err);

/* Machine code for err ("bad_request"). Never NULL. Thread-safe. */
const char *wa_err_code(wa_err_t err);

/* HTTP status the gateway answers err with (WA_OK -> 200). Thread-safe. */
int wa_err_http_status(wa_err_t err);

/*
 * May a client see the message a peer sent with err, or only
 * wa_strerror(err)? Yes for every 4xx code and for capacity_reached (which
 * limit was full); a server error says no more than its code.
 */
bool wa_err_detail_shown(wa_err_t err);

/*
 * Parse a machine code back into its enum. Returns WA_OK and sets *out, or
 * WA_EINVAL if code is NULL or not in the table (*out untouched).
 */
wa_err_t wa_err_from_code(const char *code, wa_err_t *out);

#endif /* WA_ERR_H */
