/*
 * control.c - the control API of DESIGN §8, through which tests play the
 * phone, and the page's own files.
 *
 *   POST /_fake/scan      {"ref","phone","name"?}   200 {"phone","page"}
 *   POST /_fake/incoming  {"phone","from","body"}   200 {"id"}
 *   GET  /_fake/sent?phone=                         200 [{"to","body","id",
 *                                                        "timestamp"}]
 *   POST /_fake/logout    {"phone"}                 200 {"phone","pages"}
 *   GET  /_fake/pages                               200 [{"id","state",
 *                                                        "ref","phone"}]
 *   GET  /_fake/devices?phone=                      200 [{"linkedAt",
 *                                                        "online"}]
 *
 * Every input is checked: a JSON object of exactly the documented keys
 * (no others, none twice), strings where strings are due, phone numbers as
 * digits with an optional +, bodies of 1..65536 bytes of UTF-8 without NUL.
 * Anything else is 400 in the {"error","code"} shape; an unknown account or
 * a QR no page shows is 404.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <civetweb.h>

#include "fakewa.h"
#include "wa/envelope.h"
#include "wa/http.h"
#include "wa/log.h"

typedef struct field {
    const char *key;
    bool required;
    const char *value; /* out: the string, or NULL if absent */
} field_t;

static void reply_error(struct mg_connection *conn, const char *rid,
                        wa_err_t err, const char *message)
{
    wa_http_reply_error(conn, err, message, rid, NULL);
}

/*
 * Read the request body (at most FW_REQUEST_MAX bytes) and parse it as a
 * JSON object. On failure the answer is sent and NULL returned.
 */
static cJSON *read_object(struct mg_connection *conn, const char *rid)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const long long cl = ri->content_length;
    size_t want, got = 0;
    cJSON *json = NULL;
    char *buf;
    int n;
    wa_err_t rv;

    if (cl > (long long)FW_REQUEST_MAX) {
        reply_error(conn, rid, WA_ETOOBIG, "body: larger than 1 MiB");
        return NULL;
    }
    want = cl >= 0 ? (size_t)cl : FW_REQUEST_MAX + 1;
    if ((buf = malloc(want + 1)) == NULL) {
        reply_error(conn, rid, WA_ENOMEM, NULL);
        return NULL;
    }
    while (got < want && (n = mg_read(conn, buf + got, want - got)) > 0)
        got += (size_t)n;
    if (got > FW_REQUEST_MAX) {
        reply_error(conn, rid, WA_ETOOBIG, "body: larger than 1 MiB");
    } else if (cl >= 0 && got < (size_t)cl) {
        reply_error(conn, rid, WA_EINVAL, "body: shorter than Content-Length");
    } else if ((rv = fw_json_parse(buf, got, &json)) != WA_OK) {
        reply_error(conn, rid, rv,
                    rv == WA_EUTF8 ? "body: not valid UTF-8"
                                   : "body: not valid JSON (or holds \\u0000)");
    } else if (!cJSON_IsObject(json)) {
        reply_error(conn, rid, WA_EINVAL, "body: must be a JSON object");
        cJSON_Delete(json);
        json = NULL;
    }
    free(buf);
    return json;
}

/*
 * Check that obj has only the keys of fields[0..n), each once, each a
 * string, and the required ones present. Sets each field's value. On
 * failure the answer is sent and false returned.
 */
static bool take_fields(struct mg_connection *conn, const char *rid,
                        const cJSON *obj, field_t *fields, size_t n)
{
    char msg[128];
    const cJSON *item;

    cJSON_ArrayForEach(item, obj)
    {
        size_t i = 0;

        while (i < n && strcmp(fields[i].key, item->string) != 0)
            i++;
        if (i == n) {
            snprintf(msg, sizeof(msg), "%.64s: unknown field", item->string);
            reply_error(conn, rid, WA_EINVAL, msg);
            return false;
        }
        if (fields[i].value != NULL) {
            snprintf(msg, sizeof(msg), "%s: given twice", fields[i].key);
            reply_error(conn, rid, WA_EINVAL, msg);
            return false;
        }
        if (!cJSON_IsString(item)) {
            snprintf(msg, sizeof(msg), "%s: must be a string", fields[i].key);
            reply_error(conn, rid, WA_EINVAL, msg);
            return false;
        }
        fields[i].value = item->valuestring;
    }
    for (size_t i = 0; i < n; i++) {
        if (fields[i].required && fields[i].value == NULL) {
            snprintf(msg, sizeof(msg), "%s: required", fields[i].key);
            reply_error(conn, rid, WA_EINVAL, msg);
            return false;
        }
    }
    return true;
}

static bool take_phone(struct mg_connection *conn, const char *rid,
                       const char *in, char *out)
{
    if (fw_phone_normalize(in, out) == WA_OK)
        return true;
    reply_error(conn, rid, WA_EINVAL,
                "phone: 6..15 digits with an optional leading +");
    return false;
}

static void reply_not_found(struct mg_connection *conn, const char *rid,
                            const char *what)
{
    reply_error(conn, rid, WA_ENOTFOUND, what);
}

static void reply_state_error(struct mg_connection *conn, const char *rid,
                              wa_err_t rv, const char *not_found)
{
    if (rv == WA_ENOTFOUND)
        reply_not_found(conn, rid, not_found);
    else
        reply_error(conn, rid, rv, NULL);
}

/* POST /_fake/scan {"ref","phone","name"?} */
static int on_scan(struct mg_connection *conn, void *arg)
{
    fw_state_t *st = arg;
    field_t f[] = {
        {"ref", true, NULL}, {"phone", true, NULL}, {"name", false, NULL}};
    char rid[WA_RID_MAX + 1], phone[FW_PHONE_MAX + 1];
    uint64_t page = 0;
    cJSON *json, *out = NULL;
    int status = 400;
    wa_err_t rv;

    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "POST"))
        return 405;
    if ((json = read_object(conn, rid)) == NULL)
        return 400;
    if (!take_fields(conn, rid, json, f, 3) ||
        !take_phone(conn, rid, f[1].value, phone))
        goto out;
    if (f[0].value[0] == '\0' || strlen(f[0].value) > FW_QR_MAX) {
        reply_error(conn, rid, WA_EINVAL, "ref: 1..320 bytes, the QR string");
        goto out;
    }
    if (f[2].value != NULL &&
        (rv = fw_check_text(f[2].value, strlen(f[2].value), FW_NAME_MAX,
                            false)) != WA_OK) {
        reply_error(conn, rid, rv, "name: 1..100 bytes of UTF-8");
        goto out;
    }
    rv = fw_state_scan(st, f[0].value, phone, f[2].value, &page);
    if (rv == WA_ECONFLICT) {
        reply_error(conn, rid, rv, "this phone already has 4 linked devices");
        status = 409;
        goto out;
    }
    if (rv != WA_OK) {
        reply_state_error(conn, rid, rv, "no open page shows this QR");
        status = wa_err_http_status(rv);
        goto out;
    }
    if ((out = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(out, "phone", phone) == NULL ||
        cJSON_AddNumberToObject(out, "page", (double)page) == NULL) {
        reply_error(conn, rid, WA_ENOMEM, NULL);
        status = 500;
        goto out;
    }
    wa_http_reply_json(conn, 200, rid, out, NULL);
    status = 200;
out:
    cJSON_Delete(out);
    cJSON_Delete(json);
    return status;
}

/* POST /_fake/incoming {"phone","from","body"} */
static int on_incoming(struct mg_connection *conn, void *arg)
{
    fw_state_t *st = arg;
    field_t f[] = {
        {"phone", true, NULL}, {"from", true, NULL}, {"body", true, NULL}};
    char rid[WA_RID_MAX + 1], phone[FW_PHONE_MAX + 1], from[FW_WID_MAX + 1];
    char id[FW_SERIAL_MAX + 1];
    cJSON *json, *out = NULL;
    int status = 400;
    wa_err_t rv;

    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "POST"))
        return 405;
    if ((json = read_object(conn, rid)) == NULL)
        return 400;
    if (!take_fields(conn, rid, json, f, 3) ||
        !take_phone(conn, rid, f[0].value, phone))
        goto out;
    if (fw_user_wid(f[1].value, from) != WA_OK) {
        reply_error(conn, rid, WA_EINVAL,
                    "from: digits (optional +) or <digits>@c.us");
        goto out;
    }
    if ((rv = fw_check_text(f[2].value, strlen(f[2].value), FW_BODY_MAX,
                            false)) != WA_OK) {
        reply_error(conn, rid, rv, "body: 1..65536 bytes of UTF-8");
        goto out;
    }
    if ((rv = fw_state_incoming(st, phone, from, f[2].value, id, sizeof(id))) !=
        WA_OK) {
        reply_state_error(conn, rid, rv,
                          "no such account: the phone never scanned a QR");
        status = wa_err_http_status(rv);
        goto out;
    }
    if ((out = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(out, "id", id) == NULL) {
        reply_error(conn, rid, WA_ENOMEM, NULL);
        status = 500;
        goto out;
    }
    wa_http_reply_json(conn, 200, rid, out, NULL);
    status = 200;
out:
    cJSON_Delete(out);
    cJSON_Delete(json);
    return status;
}

/*
 * The ?phone= of a GET, normalized into phone ("+" must be sent as %2B; a
 * decoded space in front stands for it, as form decoding turns "+" into
 * " "). On failure the 400 answer is sent and false returned.
 */
static bool query_phone(struct mg_connection *conn, const char *rid,
                        char *phone)
{
    const char *qs = mg_get_request_info(conn)->query_string;
    char raw[64];
    int n;

    n = qs != NULL ? mg_get_var(qs, strlen(qs), "phone", raw, sizeof(raw)) : -1;
    if (n < 0) {
        reply_error(conn, rid, WA_EINVAL, "phone: required (?phone=)");
        return false;
    }
    if (raw[0] == ' ')
        raw[0] = '+';
    return take_phone(conn, rid, raw, phone);
}

/* GET <route>?phone=: what read answers for that account. */
static int account_get(struct mg_connection *conn, fw_state_t *st,
                       wa_err_t (*read)(fw_state_t *, const char *, cJSON **))
{
    char rid[WA_RID_MAX + 1], phone[FW_PHONE_MAX + 1];
    cJSON *out = NULL;
    wa_err_t rv;

    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "GET"))
        return 405;
    if (!query_phone(conn, rid, phone))
        return 400;
    if ((rv = read(st, phone, &out)) != WA_OK) {
        reply_state_error(conn, rid, rv, "no such account");
        return wa_err_http_status(rv);
    }
    wa_http_reply_json(conn, 200, rid, out, NULL);
    cJSON_Delete(out);
    return 200;
}

/* GET /_fake/sent?phone= */
static int on_sent(struct mg_connection *conn, void *arg)
{
    return account_get(conn, arg, fw_state_sent);
}

/* POST /_fake/logout {"phone"} */
static int on_logout(struct mg_connection *conn, void *arg)
{
    fw_state_t *st = arg;
    field_t f[] = {{"phone", true, NULL}};
    char rid[WA_RID_MAX + 1], phone[FW_PHONE_MAX + 1];
    cJSON *json, *out = NULL;
    int pages = 0, status = 400;
    wa_err_t rv;

    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "POST"))
        return 405;
    if ((json = read_object(conn, rid)) == NULL)
        return 400;
    if (!take_fields(conn, rid, json, f, 1) ||
        !take_phone(conn, rid, f[0].value, phone))
        goto out;
    if ((rv = fw_state_logout(st, phone, &pages)) != WA_OK) {
        reply_state_error(conn, rid, rv, "no such account");
        status = wa_err_http_status(rv);
        goto out;
    }
    if ((out = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(out, "phone", phone) == NULL ||
        cJSON_AddNumberToObject(out, "pages", pages) == NULL) {
        reply_error(conn, rid, WA_ENOMEM, NULL);
        status = 500;
        goto out;
    }
    wa_http_reply_json(conn, 200, rid, out, NULL);
    status = 200;
out:
    cJSON_Delete(out);
    cJSON_Delete(json);
    return status;
}

/* GET /_fake/devices?phone=: the phone's "Linked devices" screen */
static int on_devices(struct mg_connection *conn, void *arg)
{
    return account_get(conn, arg, fw_state_devices);
}

/* GET /_fake/pages */
static int on_pages(struct mg_connection *conn, void *arg)
{
    fw_state_t *st = arg;
    char rid[WA_RID_MAX + 1];
    cJSON *out = NULL;
    wa_err_t rv;

    wa_http_request_id(conn, rid, sizeof(rid));
    if (!wa_http_method_is(conn, rid, "GET"))
        return 405;
    if ((rv = fw_state_pages(st, &out)) != WA_OK) {
        reply_error(conn, rid, rv, NULL);
        return 500;
    }
    wa_http_reply_json(conn, 200, rid, out, NULL);
    cJSON_Delete(out);
    return 200;
}

/*
 * The page's files, with a Content-Security-Policy like the real site's in
 * spirit: only our own scripts run, connections only to ourselves. (DevTools
 * evaluation and injected scripts are not subject to it, as on the real
 * page.)
 */
static int on_file(struct mg_connection *conn, void *arg)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *path = ri->local_uri != NULL ? ri->local_uri : "/";
    const bool head = strcmp(ri->request_method, "HEAD") == 0;
    char rid[WA_RID_MAX + 1];
    const fw_asset_t *a;

    (void)arg;
    wa_http_request_id(conn, rid, sizeof(rid));
    if (!head && !wa_http_method_is(conn, rid, "GET"))
        return 405;
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (a = fw_assets; a->path != NULL; a++) {
        if (strcmp(a->path, path) == 0)
            break;
    }
    if (a->path == NULL) {
        reply_not_found(conn, rid, "no such route");
        return 404;
    }
    /* HEAD gets the headers only: wa_http_send leaves the body out. */
    (void)wa_http_send(
        conn, 200, rid, a->type, NULL,
        "X-Frame-Options: DENY\r\n"
        "Referrer-Policy: no-referrer\r\n"
        "Content-Security-Policy: default-src 'self'; script-src 'self'; "
        "style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\n",
        a->data, a->len);
    return 200;
}

/* CivetWeb tries exact URIs, then "<uri>/..." prefixes, then patterns in
 * the order registered: the "$" patterns must come before "/", and no
 * plain prefix may shadow them. */
void fw_control_register(struct mg_context *ctx, fw_state_t *st)
{
    mg_set_request_handler(ctx, "/_fake/scan$", on_scan, st);
    mg_set_request_handler(ctx, "/_fake/incoming$", on_incoming, st);
    mg_set_request_handler(ctx, "/_fake/sent$", on_sent, st);
    mg_set_request_handler(ctx, "/_fake/logout$", on_logout, st);
    mg_set_request_handler(ctx, "/_fake/pages$", on_pages, st);
    mg_set_request_handler(ctx, "/_fake/devices$", on_devices, st);
    mg_set_request_handler(ctx, "/", on_file, st);
}
