/*
 * validate.h - the checks the gateway applies to what clients send: chat
 * ids, phone numbers, integer query parameters, query-string decoding and
 * message text; and the shape of an answer relayed as it came (GET /logs).
 * Pure functions: no allocation, no I/O, thread-safe.
 */
#ifndef GW_VALIDATE_H
#define GW_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "logcache.h"
#include "wa/err.h"
#include "wa/json.h"

/* Longest message POST /send accepts, in bytes of UTF-8 (WhatsApp's own
 * limit is 65536 characters; bytes are stricter and cheaper to check). */
#define GW_MESSAGE_MAX 65536

/* Longest chat id: 20 digits, '-', 20 digits, "@g.us". */
#define GW_CHAT_ID_MAX 46

/*
 * Is s a WhatsApp chat id we route? One of
 *   ^[0-9]{5,20}@c\.us$                   a person (the phone number)
 *   ^[0-9]{5,20}(-[0-9]{1,20})?@g\.us$    a group (new style, or old style
 *                                         creator-timestamp)
 * NULL is not.
 */
bool gw_valid_chat_id(const char *s);

/* Is s an E.164 phone number, ^\+[1-9][0-9]{6,14}$ ? NULL is not. */
bool gw_valid_phone(const char *s);

/*
 * Parse a decimal integer parameter: only digits (no sign, no spaces, no
 * exponent), at most 9 of them, within [min, max]. WA_OK and *out set, or
 * WA_EINVAL (*out untouched).
 */
wa_err_t gw_parse_int(const char *s, long min, long max, long *out);

/*
 * Find name in a raw query string ("a=1&b=%2B41") and percent-decode its
 * value into out (outlen bytes with the NUL). '+' stays '+' (phone numbers
 * are written "+41..." in URLs; form decoding would make it a space).
 * Returns WA_OK, WA_ENOTFOUND when the name is absent (query may be NULL),
 * WA_EINVAL when the name occurs twice, an escape is malformed or decodes
 * to NUL, and WA_ETOOBIG when the value does not fit.
 */
wa_err_t gw_query_param(const char *query, const char *name, char *out,
                        size_t outlen);

/*
 * Percent-decode a request path as sent (the gateway starts CivetWeb with
 * wa_http_opts_t.raw_path) into out, outlen bytes with the NUL. Unlike
 * CivetWeb's own decoding, which silently ends the path at an encoded NUL
 * ("/status%00junk" would be served as "/status"), this refuses it:
 * WA_EINVAL with *why (a fixed phrase for the client) for "%00" or a
 * malformed escape, WA_ETOOBIG when it does not fit, else WA_OK. '+' stays
 * '+'.
 */
wa_err_t gw_path_decode(const char *raw, char *out, size_t outlen,
                        const char **why);

/*
 * Check the text of a message: 1..GW_MESSAGE_MAX bytes of valid UTF-8.
 * len is its length in bytes. NULL with *why for the client, or WA_OK.
 */
wa_err_t gw_check_message(const char *s, size_t len, const char **why);

/*
 * Does the JSON text buf[0..len) contain a string escape that decodes to
 * U+0000? cJSON stores strings NUL-terminated and would silently cut such a
 * string short, so bodies carrying one are refused before parsing.
 */
bool gw_json_has_nul_escape(const char *buf, size_t len);

/* store-svc's log.list answer to a request with "ifChanged", split. */
typedef struct gw_logs_answer {
    bool unchanged;      /* the log still has the version asked about */
    const char *version; /* the log's version: its text, not terminated */
    size_t version_len;
    wa_json_span_t rows; /* the "logs" array's text, when not unchanged */
} gw_logs_answer_t;

/*
 * Is text[0..len), JSON text already checked (json.h), exactly
 * {"logs":[row,...],"version":v} or {"unchanged":true,"version":v}, in any
 * order, each member once? Every row is {id, eventType, eventData,
 * timestamp}, each once and nothing else, id a number, eventType and
 * timestamp strings or null, eventData any value; v a string of 1..
 * GW_LOGCACHE_VERSION_MAX printable ASCII characters without escapes.
 * What store-svc's log.list answers, checked before its rows become a GET
 * /logs body, so a column added to the store cannot leak through. Fills
 * *out when it is.
 */
bool gw_logs_answer(const char *text, size_t len, gw_logs_answer_t *out);

/*
 * The GET /status body from store-svc's session.get data (JSON text
 * already checked): {"status", "phoneNumber", "displayName", "qrCode",
 * "connectedAt", "lastActivity"}, each the store's string or null, qrCode
 * only while status is "qr"; nothing else passes. WA_OK with *out
 * (malloc'd, NUL-terminated; free()) and *outlen; WA_EPROTO when status is
 * not a string or a field comes twice; WA_ENOMEM. Values are copied as
 * the store wrote them, never parsed and printed again.
 */
wa_err_t gw_status_body(const char *text, size_t len, char **out,
                        size_t *outlen);

#endif /* GW_VALIDATE_H */
