/*
 * err.c - the one table mapping each wa_err_t to its machine code, HTTP
 * status and human message (err.h). Nothing else in the tree maps codes.
 */
#include <string.h>

#include "wa/err.h"

typedef struct err_info {
    const char *code;    /* machine code: bus "code", HTTP body "code" */
    int status;          /* HTTP status the gateway answers with */
    const char *message; /* human text, safe to show a client */
} err_info_t;

/* Indexed by wa_err_t. Designated initializers keep each row next to its
 * enum name; err_test checks that no row is missing. */
static const err_info_t err_table[WA_ERR_COUNT] = {
    [WA_OK] = {"ok", 200, "success"},
    [WA_EINVAL] = {"bad_request", 400, "invalid argument"},
    [WA_ETOOBIG] = {"payload_too_large", 413, "payload too large"},
    [WA_EUTF8] = {"invalid_utf8", 400, "text is not valid UTF-8"},
    [WA_EPROTO] = {"bad_envelope", 400, "not a valid bus envelope"},
    [WA_EVERSION] = {"unsupported_version", 400,
                     "unsupported envelope version"},
    [WA_EUNKNOWNOP] = {"unknown_operation", 400, "unknown operation"},
    [WA_EUNAUTH] = {"unauthorized", 401, "missing or invalid credentials"},
    [WA_EFORBIDDEN] = {"forbidden", 403, "forbidden"},
    [WA_ENOTFOUND] = {"not_found", 404, "not found"},
    [WA_EMETHOD] = {"method_not_allowed", 405, "method not allowed"},
    [WA_ENOTREADY] = {"not_ready", 409, "session not ready"},
    [WA_ECONFLICT] = {"conflict", 409, "conflict"},
    [WA_ERATELIMIT] = {"rate_limited", 429, "rate limit exceeded"},
    [WA_ENOMEM] = {"out_of_memory", 500, "out of memory"},
    [WA_EINTERNAL] = {"internal_error", 500, "internal error"},
    [WA_ESTORAGE] = {"storage_error", 500, "storage error"},
    [WA_EUNAVAIL] = {"unavailable", 503, "service unavailable"},
    [WA_ENOSESSIONSVC] = {"no_session_service", 503,
                          "no session service available"},
    [WA_EFULL] = {"capacity_reached", 503, "capacity reached"},
    [WA_ETIMEDOUT] = {"timeout", 504, "backend timed out"},
    [WA_ECLOSED] = {"closed", 503, "connection closed"},
    [WA_EBROWSER] = {"browser_error", 502, "browser error"},
    [WA_ECONFIG] = {"bad_config", 500, "invalid configuration"},
};

/* What an out-of-range value reports: a bug somewhere, so a 500. */
static const err_info_t err_unknown = {"internal_error", 500, "unknown error"};

static const err_info_t *lookup(wa_err_t err)
{
    /* Through unsigned: negative values (a cast int) are out of range too. */
    unsigned idx = (unsigned)err;
    if (idx >= (unsigned)WA_ERR_COUNT || err_table[idx].code == NULL)
        return &err_unknown;
    return &err_table[idx];
}

const char *wa_strerror(wa_err_t err)
{
    return lookup(err)->message;
}

const char *wa_err_code(wa_err_t err)
{
    return lookup(err)->code;
}

int wa_err_http_status(wa_err_t err)
{
    return lookup(err)->status;
}

/* Server errors keep their peers' words to themselves, but for the one
 * that is the deployment's answer, not a fault: which limit was full. */
bool wa_err_detail_shown(wa_err_t err)
{
    return lookup(err)->status < 500 || err == WA_EFULL;
}

wa_err_t wa_err_from_code(const char *code, wa_err_t *out)
{
    if (code == NULL || out == NULL)
        return WA_EINVAL;
    for (unsigned i = 0; i < (unsigned)WA_ERR_COUNT; i++) {
        if (err_table[i].code != NULL && strcmp(err_table[i].code, code) == 0) {
            *out = (wa_err_t)i;
            return WA_OK;
        }
    }
    return WA_EINVAL;
}
