/*
 * request.c - what every route shares: answering (JSON, errors, raw),
 * authentication, the rate limit, request bodies, ?limit=, and bus calls
 * with their error answers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>

#include "gateway.h"
#include "wa/log.h"
#include "wa/service.h"

/* Room for the extra headers of an answer: CORS (at most
 * GW_CORS_HEADERS_MAX), a route's short extra, Connection: close. */
#define STACK_ANSWER_MAX 2048

/* What is sent when even an error body cannot be built. */
static const char oom_body[] =
    "{\"error\":\"out of memory\",\"code\":\"out_of_memory\"}";

/* Would draining the unread body cost more than a new connection: over
 * the body limit, or chunked (unbounded)? Small declared bodies are left to
 * CivetWeb, which discards them and keeps the connection. */
static bool costly_body(const gw_req_t *r)
{
    return r->ri->content_length > r->gw->cfg.max_body ||
           mg_get_header(r->conn, "Transfer-Encoding") != NULL;
}

/* Cache-Control of every answer but the static files': API answers are
 * per user and per moment. */
#define CACHE_API "no-store"

/* Cache-Control of the static files: a browser may keep them but asks again
 * each time (If-None-Match); a new build is seen at once. */
#define CACHE_STATIC "no-cache"

/* Send one answer: headers (with Cache-Control: cache, r->cors and extra)
 * and body[0..len). */
static void send_answer(gw_req_t *r, int status, const char *ctype,
                        const char *body, size_t len, const char *extra,
                        const char *cache)
{
    char headers[STACK_ANSWER_MAX];
    const char *conn_close = "";
    int n;

    /* CivetWeb would read all of an unread body to reach the next request,
     * however large it is: close instead. */
    if (!r->body_read && costly_body(r)) {
        mg_disable_connection_keep_alive(r->conn);
        conn_close = "Connection: close\r\n";
    }
    r->status = status;
    if (r->flight != NULL) {
        /* Leading a coalesced read: followers get the same answer. */
        gw_flight_publish(r->gw->flights, r->flight, status, ctype, body, len,
                          extra);
        r->flight = NULL;
    }
    n = snprintf(headers, sizeof(headers), "%s%s%s", r->cors,
                 extra != NULL ? extra : "", conn_close);
    if (n < 0 || (size_t)n >= sizeof(headers) ||
        wa_http_send(r->conn, status, r->rid, ctype, cache, headers, body,
                     len) == WA_ETOOBIG) {
        /* Our headers are bounded (CORS, short extras); if they ever were
         * not, the connection closes rather than carry a broken answer. */
        mg_disable_connection_keep_alive(r->conn);
        wa_error(r->rid, "answer headers too long");
    }
}

void gw_reply_answer(gw_req_t *r, const gw_answer_t *ans)
{
    send_answer(r, ans->status, ans->ctype, ans->body, ans->len, ans->extra,
                CACHE_API);
}

void gw_reply_raw(gw_req_t *r, int status, const char *ctype, const char *body,
                  size_t len)
{
    send_answer(r, status, ctype, body, len, NULL, CACHE_API);
}

/* Does an If-None-Match value name etag? Weak comparison (RFC 9110
 * 13.1.2): "*", or any listed tag equal to etag once "W/" is dropped. */
static bool etag_listed(const char *inm, const char *etag)
{
    const size_t elen = strlen(etag);
    const char *p = inm;

    while (*p != '\0') {
        size_t n;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        n = strcspn(p, ", \t");
        if (n == elen && memcmp(p, etag, elen) == 0)
            return true;
        p += n;
    }
    return false;
}

void gw_reply_static(gw_req_t *r, const char *ctype, const char *body,
                     size_t len, const char *etag, const char *extra)
{
    const char *inm = mg_get_header(r->conn, "If-None-Match");
    char hdrs[GW_STATIC_HEADERS_MAX];
    int n;

    n = snprintf(hdrs, sizeof(hdrs), "ETag: %s\r\n%s", etag,
                 extra != NULL ? extra : "");
    if (n < 0 || (size_t)n >= sizeof(hdrs)) {
        wa_error(r->rid, "static answer headers too long");
        gw_reply_error(r, WA_EINTERNAL, NULL);
        return;
    }
    /* A 304 repeats the headers a 200 would carry, body aside. */
    if (inm != NULL && etag_listed(inm, etag))
        send_answer(r, 304, ctype, "", 0, hdrs, CACHE_STATIC);
    else
        send_answer(r, 200, ctype, body, len, hdrs, CACHE_STATIC);
}

void gw_reply_json(gw_req_t *r, int status, const cJSON *body,
                   const char *extra)
{
    char *text;

    if (body == NULL) {
        send_answer(r, status, "application/json", "", 0, extra, CACHE_API);
        return;
    }
    if ((text = cJSON_PrintUnformatted(body)) == NULL) {
        wa_error(r->rid, "out of memory printing an answer");
        send_answer(r, 500, "application/json", oom_body, sizeof(oom_body) - 1,
                    NULL, CACHE_API);
        return;
    }
    send_answer(r, status, "application/json", text, strlen(text), extra,
                CACHE_API);
    free(text);
}

void gw_reply_error_status(gw_req_t *r, int status, wa_err_t err,
                           const char *msg, const char *extra)
{
    cJSON *body = cJSON_CreateObject();

    if (body == NULL ||
        cJSON_AddStringToObject(body, "error",
                                msg != NULL ? msg : wa_strerror(err)) == NULL ||
        cJSON_AddStringToObject(body, "code", wa_err_code(err)) == NULL) {
        cJSON_Delete(body);
        send_answer(r, 500, "application/json", oom_body, sizeof(oom_body) - 1,
                    NULL, CACHE_API);
        return;
    }
    gw_reply_json(r, status, body, extra);
    cJSON_Delete(body);
}

void gw_reply_error(gw_req_t *r, wa_err_t err, const char *msg)
{
    gw_reply_error_status(r, wa_err_http_status(err), err, msg, NULL);
}

bool gw_authenticate(gw_req_t *r)
{
    const char *header = mg_get_header(r->conn, "Authorization");
    const char *why = NULL;
    time_t now = time(NULL);
    wa_err_t rv;

    if (gw_authcache_get(r->gw->authcache, header, now, &r->who))
        return true;
    rv = wa_auth_header(r->gw->auth, header, now, &r->who, &why);
    if (rv == WA_OK) {
        gw_authcache_put(r->gw->authcache, header, now, &r->who);
        return true;
    }
    r->who.user[0] = '\0';
    if (rv == WA_EUNAUTH) {
        gw_reply_error_status(r, 401, WA_EUNAUTH,
                              why != NULL ? why : "unauthorized",
                              "WWW-Authenticate: Bearer\r\n");
        return false;
    }
    wa_error(r->rid, "token verification failed: %s", wa_strerror(rv));
    gw_reply_error(r, rv == WA_ENOMEM ? WA_ENOMEM : WA_EINTERNAL, NULL);
    return false;
}

bool gw_rate_limit(gw_req_t *r)
{
    char extra[48];
    long retry = 1;
    wa_err_t rv;

    rv = gw_ratelimit_take(r->gw->ratelimit, r->who.user, wa_now_ms(), &retry);
    if (rv == WA_OK)
        return true;
    if (rv == WA_ERATELIMIT) {
        gw_metrics_rate_limited(r->gw->metrics);
        snprintf(extra, sizeof(extra), "Retry-After: %ld\r\n", retry);
        gw_reply_error_status(r, 429, WA_ERATELIMIT, NULL, extra);
        return false;
    }
    wa_error(r->rid, "rate limit: %s", wa_strerror(rv));
    gw_reply_error(r, rv, NULL);
    return false;
}

/* Refuse a body: the rest of it is never read and the connection closes
 * (send_answer sees r->body_read is still false). */
static void refuse_body(gw_req_t *r, int status, wa_err_t err, const char *msg)
{
    gw_reply_error_status(r, status, err, msg, NULL);
}

/* Is buf[0..len) only JSON whitespace? */
static bool only_space(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r')
            return false;
    }
    return true;
}

cJSON *gw_read_json_object(gw_req_t *r)
{
    const long long cl = r->ri->content_length;
    const long long max = r->gw->cfg.max_body;
    const char *te = mg_get_header(r->conn, "Transfer-Encoding");
    const bool chunked = te != NULL && strcasecmp(te, "chunked") == 0;
    const char *end = NULL;
    char msg[64];
    cJSON *json = NULL;
    size_t want, got = 0;
    char *buf;
    int n;

    snprintf(msg, sizeof(msg), "body: larger than %lld bytes", max);
    if (cl > max) {
        refuse_body(r, 413, WA_ETOOBIG, msg);
        return NULL;
    }
    if (cl < 0 && !chunked) {
        /* CivetWeb reads no body here; answer and keep the connection. */
        r->body_read = true;
        refuse_body(r, 411, WA_EINVAL, "body: Content-Length required");
        return NULL;
    }
    /* Chunked: read one byte more than allowed to see if there is more. */
    want = cl >= 0 ? (size_t)cl : (size_t)max + 1;
    if ((buf = malloc(want + 1)) == NULL) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        return NULL;
    }
    while (got < want && (n = mg_read(r->conn, buf + got, want - got)) > 0)
        got += (size_t)n;
    if (cl >= 0 && got < (size_t)cl) {
        /* The peer stopped sending (timeout or close): nothing to keep. */
        mg_disable_connection_keep_alive(r->conn);
        refuse_body(r, 400, WA_EINVAL, "body: shorter than Content-Length");
        goto out;
    }
    if (chunked && got > (size_t)max) {
        refuse_body(r, 413, WA_ETOOBIG, msg);
        goto out;
    }
    r->body_read = true;
    if (got == 0 || only_space(buf, got)) {
        gw_reply_error(r, WA_EINVAL, "body: a JSON object is required");
        goto out;
    }
    if (!wa_utf8_valid(buf, got)) {
        gw_reply_error(r, WA_EINVAL, "body: not valid UTF-8");
        goto out;
    }
    if (gw_json_has_nul_escape(buf, got)) {
        gw_reply_error(r, WA_EINVAL, "body: strings must not contain \\u0000");
        goto out;
    }
    json = cJSON_ParseWithLengthOpts(buf, got, &end, 0);
    if (json == NULL || end == NULL || end < buf ||
        !only_space(end, got - (size_t)(end - buf))) {
        cJSON_Delete(json);
        json = NULL;
        gw_reply_error(r, WA_EINVAL, "body: malformed JSON");
        goto out;
    }
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        json = NULL;
        gw_reply_error(r, WA_EINVAL, "body: must be a JSON object");
        goto out;
    }
    /* cJSON keeps a repeated name and finds the first: which one a
     * client meant is not ours to guess. */
    for (const cJSON *a = json->child; a != NULL; a = a->next) {
        for (const cJSON *b = a->next; b != NULL; b = b->next) {
            if (strcmp(a->string, b->string) == 0) {
                cJSON_Delete(json);
                json = NULL;
                gw_reply_error(r, WA_EINVAL, "body: a field appears twice");
                goto out;
            }
        }
    }
out:
    free(buf);
    return json;
}

bool gw_query_limit(gw_req_t *r, long *out)
{
    char v[16];
    wa_err_t rv;

    rv = gw_query_param(r->ri->query_string, "limit", v, sizeof(v));
    if (rv == WA_ENOTFOUND) {
        *out = GW_LIMIT_DEFAULT;
        return true;
    }
    if (rv == WA_OK &&
        gw_parse_int(v, GW_LIMIT_MIN, GW_LIMIT_MAX, out) == WA_OK)
        return true;
    gw_reply_error(r, WA_EINVAL, "limit: must be an integer in 1..500");
    return false;
}

int gw_remaining_ms(const gw_req_t *r)
{
    long long left = r->deadline_ms - wa_now_ms();

    return left > 0 ? (int)left : 0;
}

/* A bus call through the batcher when one is given, else straight on s;
 * raw (data left as text) only through a batcher. */
static wa_err_t bus_call(gw_t *gw, nng_socket s, wa_bus_batcher_t *batch,
                         wa_op_t op, const char *user, const char *rid,
                         const cJSON *args, int timeout_ms, bool raw,
                         wa_reply_t *rep)
{
    wa_err_t rv;

    if (timeout_ms <= 0) {
        /* wa_bus_call() reads 0 as "the default": never ask for that. */
        memset(rep, 0, sizeof(*rep));
        rv = WA_ETIMEDOUT;
    } else if (raw) {
        rv = wa_bus_batcher_call_raw(batch, op, user, rid, args, timeout_ms,
                                     rep);
    } else if (batch != NULL) {
        rv = wa_bus_batcher_call(batch, op, user, rid, args, timeout_ms, rep);
    } else {
        rv = wa_bus_call(s, op, user, rid, args, timeout_ms, rep);
    }
    if (rv != WA_OK)
        gw_metrics_bus_error(gw->metrics, op, rv);
    return rv;
}

wa_err_t gw_bus_call(gw_t *gw, nng_socket s, wa_op_t op, const char *user,
                     const char *rid, const cJSON *args, int timeout_ms,
                     wa_reply_t *rep)
{
    return bus_call(gw, s, NULL, op, user, rid, args, timeout_ms, false, rep);
}

wa_err_t gw_store_call(gw_req_t *r, wa_op_t op, const char *user,
                       const cJSON *args, wa_reply_t *rep)
{
    return bus_call(r->gw, r->gw->store, r->gw->store_batch, op, user, r->rid,
                    args, gw_remaining_ms(r), false, rep);
}

wa_err_t gw_store_call_raw(gw_req_t *r, wa_op_t op, const char *user,
                           const cJSON *args, wa_reply_t *rep)
{
    return bus_call(r->gw, r->gw->store, r->gw->store_batch, op, user, r->rid,
                    args, gw_remaining_ms(r), true, rep);
}

void gw_reply_bus_error(gw_req_t *r, const char *peer, wa_op_t op, wa_err_t rv,
                        const wa_reply_t *rep)
{
    const bool remote = rep != NULL && rep->err != WA_OK;
    const char *msg;
    char text[128];
    wa_err_t code = rv;
    int status;

    if (remote) {
        status = wa_err_http_status(rv);
        msg = wa_err_detail_shown(rv) && rep->message[0] != '\0'
                  ? rep->message
                  : wa_strerror(rv);
        /* The peer refused our envelope or op: our fault or a version
         * mismatch, never the client's. */
        if (rv == WA_EPROTO || rv == WA_EVERSION || rv == WA_EUNKNOWNOP ||
            rv == WA_ECONFIG || rv == WA_EUNAUTH) {
            status = 502;
            snprintf(text, sizeof(text), "%s cannot serve this request", peer);
            msg = text;
        }
    } else {
        switch (rv) {
        case WA_ETIMEDOUT:
            status = 504;
            snprintf(text, sizeof(text), "%s did not answer in time", peer);
            break;
        case WA_EUNAVAIL:
        case WA_ECLOSED:
            status = 503;
            code = WA_EUNAVAIL;
            snprintf(text, sizeof(text), "%s is unavailable", peer);
            break;
        case WA_EPROTO:
        case WA_ETOOBIG:
        case WA_EUTF8:
            status = 502;
            code = WA_EPROTO;
            snprintf(text, sizeof(text), "%s sent an invalid answer", peer);
            break;
        case WA_ENOMEM:
            status = 500;
            snprintf(text, sizeof(text), "%s", wa_strerror(rv));
            break;
        default:
            status = 500;
            code = WA_EINTERNAL;
            snprintf(text, sizeof(text), "%s", wa_strerror(WA_EINTERNAL));
            break;
        }
        msg = text;
    }
    if (status >= 500)
        wa_warn(r->rid, "%s %s failed: %s (%s)", peer, wa_op_name(op),
                wa_err_code(rv), remote ? "its answer" : "transport");
    gw_reply_error_status(r, status, code, msg, NULL);
}

const char *gw_json_string(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}
