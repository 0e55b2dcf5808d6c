/*
 * envelope.c - the bus contract (DESIGN §6): operation and event type names,
 * and the encoders/decoders of requests, replies, events and WebSocket
 * frames.
 *
 * Decoding order, the same for every kind: size (before touching the bytes),
 * UTF-8 (cJSON does not validate it), raw bytes JSON never allows (control
 * characters, NUL, the \u0000 escape cJSON would turn into a C-string
 * truncation), JSON syntax with nothing but whitespace after the value, then
 * "v" (so a future version is reported as WA_EVERSION, not as a shape
 * error), then every field for presence, type and length.
 *
 * Replies and events are read with json.h's checker and iterator instead
 * of cJSON (the same checks, in the same order): only their "data" becomes
 * a tree, and only when the caller reads it (reply_scan, event_decode).
 *
 * Error mapping of the decoders: a string field over its byte limit ->
 * WA_ETOOBIG; "v" a number other than 1 -> WA_EVERSION; an unknown "op" ->
 * WA_EUNKNOWNOP; invalid UTF-8 anywhere -> WA_EUTF8; anything else malformed
 * -> WA_EPROTO. A parse failure from cJSON is WA_EPROTO even when it was an
 * allocation failure: cJSON does not tell the two apart.
 *
 * Nesting depth: cJSON's parser stops at CJSON_NESTING_LIMIT (1000) levels,
 * so hostile input cannot exhaust the stack; cJSON_Delete() and the printer
 * recurse to the same depth. Encoders do not limit the depth of caller-built
 * trees; a tree deeper than 1000 levels encodes but will not decode.
 *
 * Thread safety: no state of ours is shared. cJSON_Parse* stores the last
 * error position in a global that nothing here reads (a benign race inside
 * cJSON, the only one).
 *
 * Encoded buffers come from cJSON's allocator, which is malloc() unless
 * someone calls cJSON_InitHooks(); nothing in wa-server does, so callers
 * free() them as envelope.h says.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wa/envelope.h"
#include "envelope_int.h"

/* Largest integer a double (and JavaScript) holds exactly with its
 * neighbours distinct: 2^53 - 1. 2^53 itself is refused because
 * "9007199254740993" parses to it too. */
#define SEQ_MAX INT64_C(9007199254740991)

/* ---------------------------------------------------------------- tables */

static const char *const op_names[WA_OP_COUNT] = {
    [WA_OP_PING] = "ping",
    [WA_OP_SESSION_GET] = "session.get",
    [WA_OP_SESSION_UPSERT] = "session.upsert",
    [WA_OP_SESSION_LIST] = "session.list",
    [WA_OP_LOG_APPEND] = "log.append",
    [WA_OP_LOG_LIST] = "log.list",
    [WA_OP_EVENT_RECORD] = "event.record",
    [WA_OP_INSTANCE_REGISTER] = "instance.register",
    [WA_OP_INSTANCE_HEARTBEAT] = "instance.heartbeat",
    [WA_OP_INSTANCE_LIST] = "instance.list",
    [WA_OP_PLACEMENT_RESOLVE] = "placement.resolve",
    [WA_OP_PLACEMENT_LIST] = "placement.list",
    [WA_OP_DIAG] = "diag",
    [WA_OP_SEND_CLAIM] = "send.claim",
    [WA_OP_WA_CONNECT] = "wa.connect",
    [WA_OP_WA_DISCONNECT] = "wa.disconnect",
    [WA_OP_WA_STATUS] = "wa.status",
    [WA_OP_WA_CHATS] = "wa.chats",
    [WA_OP_WA_MESSAGES] = "wa.messages",
    [WA_OP_WA_SEND] = "wa.send",
    [WA_OP_WA_CHAT_BY_PHONE] = "wa.chat_by_phone",
    [WA_OP_BUS_BATCH] = "bus.batch",
};

static const char *const event_type_names[WA_EV_COUNT] = {
    [WA_EV_STATUS] = "status",
    [WA_EV_QR] = "qr",
    [WA_EV_READY] = "ready",
    [WA_EV_MESSAGE] = "message",
    [WA_EV_DISCONNECTED] = "disconnected",
    [WA_EV_ERROR] = "error",
    [WA_EV_RESYNC] = "resync",
};

const char *wa_op_name(wa_op_t op)
{
    unsigned idx = (unsigned)op;
    return idx < (unsigned)WA_OP_COUNT ? op_names[idx] : NULL;
}

wa_err_t wa_op_from_name(const char *name, wa_op_t *out)
{
    if (name == NULL || out == NULL)
        return WA_EUNKNOWNOP;
    for (unsigned i = 0; i < (unsigned)WA_OP_COUNT; i++) {
        if (strcmp(op_names[i], name) == 0) {
            *out = (wa_op_t)i;
            return WA_OK;
        }
    }
    return WA_EUNKNOWNOP;
}

const char *wa_event_type_name(wa_event_type_t type)
{
    unsigned idx = (unsigned)type;
    return idx < (unsigned)WA_EV_COUNT ? event_type_names[idx] : NULL;
}

/* WA_OK and *out set, or WA_EINVAL for NULL or an unknown name. */
wa_err_t wa_event_type_from_name(const char *name, wa_event_type_t *out)
{
    if (name == NULL || out == NULL)
        return WA_EINVAL;
    for (unsigned i = 0; i < (unsigned)WA_EV_COUNT; i++) {
        if (strcmp(event_type_names[i], name) == 0) {
            *out = (wa_event_type_t)i;
            return WA_OK;
        }
    }
    return WA_EINVAL;
}

/* ------------------------------------------------------------- timestamp */

void wa_timestamp_ms(int64_t epoch_ms, char *buf, size_t len)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    int ms = (int)(epoch_ms % 1000);
    struct tm tm;
    char tmp[64];
    int n;

    if (buf == NULL || len == 0)
        return;
    buf[0] = '\0';
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    if (gmtime_r(&secs, &tm) == NULL)
        return;
    n = snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, ms);
    if (n > 0 && (size_t)n < len)
        memcpy(buf, tmp, (size_t)n + 1);
}

void wa_timestamp_now(char *buf, size_t len)
{
    struct timespec ts;

    if (buf == NULL || len == 0)
        return;
    buf[0] = '\0';
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return;
    wa_timestamp_ms((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, buf, len);
}

/* --------------------------------------------------------- field checks */

/* A timestamp is 1..WA_TIMESTAMP_MAX bytes of printable ASCII: ISO-8601
 * needs nothing else, and it is echoed to browsers. */
static wa_err_t check_timestamp(const char *ts)
{
    size_t len = strnlen(ts, WA_TIMESTAMP_MAX + 1);
    if (len > WA_TIMESTAMP_MAX)
        return WA_ETOOBIG;
    if (len == 0)
        return WA_EPROTO;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)ts[i];
        if (c < 0x21 || c > 0x7e)
            return WA_EPROTO;
    }
    return WA_OK;
}

/* Decoder view of a user id: over the limit is WA_ETOOBIG, anything else
 * wa_check_user() refuses is WA_EPROTO. */
static wa_err_t decode_user(const char *s)
{
    if (strnlen(s, WA_USER_MAX + 1) > WA_USER_MAX)
        return WA_ETOOBIG;
    return wa_check_user(s) == WA_OK ? WA_OK : WA_EPROTO;
}

static wa_err_t decode_rid(const char *s)
{
    if (strnlen(s, WA_RID_MAX + 1) > WA_RID_MAX)
        return WA_ETOOBIG;
    return wa_check_rid(s) == WA_OK ? WA_OK : WA_EPROTO;
}

/* Copy a string already checked to fit: strlen(src) < size. */
static void copy_checked(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* -------------------------------------------------------------- decoding */

/*
 * Parse exactly s[0..len), already known to be valid UTF-8, as one JSON
 * object. The text is checked first by json.h, the one grammar every
 * decoder (tree or text) applies: strict RFC 8259 (cJSON alone would also
 * take "01" or "1." as numbers), no raw control characters, which also
 * covers an embedded NUL, and no \u0000 escape, which cJSON would decode
 * into a C string that silently ends there ("alice\u0000x" -> "alice").
 * cJSON then parses exactly that text, without the copy to a NUL-terminated
 * buffer that require_null_terminated would need.
 */
static wa_err_t parse_json(const char *s, size_t len, cJSON **out)
{
    const char *end = NULL;
    cJSON *root;
    wa_err_t rv;

    if (len == 0)
        return WA_EPROTO;
    if ((rv = wa_json_check_object(s, len, NULL)) != WA_OK)
        return rv;
    root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
    if (root == NULL)
        return WA_EPROTO;
    if (end == NULL || end < s || end > s + len)
        goto fail; /* never expected from cJSON; do not trust it blindly */
    while (end < s + len &&
           (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end != s + len || !cJSON_IsObject(root))
        goto fail;
    *out = root;
    return WA_OK;

fail:
    cJSON_Delete(root);
    return WA_EPROTO;
}

/* The first checks of every decoder, in their order: size before anything
 * is read, then UTF-8; the JSON itself comes next. */
static wa_err_t check_message(const void *buf, size_t len)
{
    if (len > WA_ENVELOPE_MAX)
        return WA_ETOOBIG;
    if (buf == NULL)
        return len == 0 ? WA_EPROTO : WA_EINVAL;
    if (!wa_utf8_valid(buf, len))
        return WA_EUTF8;
    return WA_OK;
}

static wa_err_t parse_object(const void *buf, size_t len, cJSON **out)
{
    wa_err_t rv;

    *out = NULL;
    if ((rv = check_message(buf, len)) != WA_OK)
        return rv;
    return parse_json(buf, len, out);
}

/* Top-level members we know. Unknown members are ignored (forward
 * compatibility); a known member given twice is refused, since cJSON
 * would silently take the first and another reader might take the last. */
enum field {
    F_V,
    F_OP,
    F_USER,
    F_RID,
    F_ARGS,
    F_OK,
    F_DATA,
    F_CODE,
    F_MESSAGE,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    [F_V] = "v",       [F_OP] = "op",     [F_USER] = "user",
    [F_RID] = "rid",   [F_ARGS] = "args", [F_OK] = "ok",
    [F_DATA] = "data", [F_CODE] = "code", [F_MESSAGE] = "message",
};

#define BIT(f) (1u << (f))

/* Fill f[] with the members of root named in `wanted`; NULL if absent. */
static wa_err_t collect(const cJSON *root, unsigned wanted, cJSON *f[F_COUNT])
{
    for (int k = 0; k < F_COUNT; k++)
        f[k] = NULL;
    for (cJSON *c = root->child; c != NULL; c = c->next) {
        if (c->string == NULL)
            return WA_EPROTO;
        for (int k = 0; k < F_COUNT; k++) {
            if (!(wanted & BIT(k)) || strcmp(c->string, field_names[k]) != 0)
                continue;
            if (f[k] != NULL)
                return WA_EPROTO;
            f[k] = c;
            break;
        }
    }
    return WA_OK;
}

static wa_err_t check_version(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return WA_EPROTO;
    return v->valuedouble == WA_ENVELOPE_VERSION ? WA_OK : WA_EVERSION;
}

/* Fill req from a parsed request object; args is detached from root. On
 * failure req is zeroed and root keeps everything. */
static wa_err_t request_from(cJSON *root, wa_request_t *req)
{
    cJSON *f[F_COUNT];
    wa_err_t rv;

    memset(req, 0, sizeof(*req));
    if (!cJSON_IsObject(root))
        return WA_EPROTO;
    rv = collect(
        root, BIT(F_V) | BIT(F_OP) | BIT(F_USER) | BIT(F_RID) | BIT(F_ARGS), f);
    if (rv != WA_OK || (rv = check_version(f[F_V])) != WA_OK)
        goto fail;

    rv = WA_EPROTO;
    if (!cJSON_IsString(f[F_OP]) || !cJSON_IsString(f[F_USER]) ||
        !cJSON_IsString(f[F_RID]) || !cJSON_IsObject(f[F_ARGS]))
        goto fail;
    if ((rv = wa_op_from_name(f[F_OP]->valuestring, &req->op)) != WA_OK)
        goto fail;
    if (f[F_USER]->valuestring[0] != '\0' &&
        (rv = decode_user(f[F_USER]->valuestring)) != WA_OK)
        goto fail;
    if ((rv = decode_rid(f[F_RID]->valuestring)) != WA_OK)
        goto fail;

    copy_checked(req->user, sizeof(req->user), f[F_USER]->valuestring);
    copy_checked(req->rid, sizeof(req->rid), f[F_RID]->valuestring);
    req->args = cJSON_DetachItemViaPointer(root, f[F_ARGS]);
    return WA_OK;

fail:
    memset(req, 0, sizeof(*req));
    return rv;
}

wa_err_t wa_request_decode(const void *buf, size_t len, wa_request_t *req)
{
    cJSON *root = NULL;
    wa_err_t rv;

    if (req == NULL)
        return WA_EINVAL;
    memset(req, 0, sizeof(*req));
    if ((rv = parse_object(buf, len, &root)) != WA_OK)
        return rv;
    rv = request_from(root, req);
    cJSON_Delete(root);
    return rv;
}

wa_err_t wa_request_from_json(cJSON *obj, wa_request_t *req)
{
    if (req == NULL)
        return WA_EINVAL;
    return request_from(obj, req);
}

void wa_request_clear(wa_request_t *req)
{
    if (req == NULL)
        return;
    cJSON_Delete(req->args);
    memset(req, 0, sizeof(*req));
}

/* Fill rep from a parsed reply object; data is detached from root. On
 * failure rep is zeroed. */
static wa_err_t reply_from(cJSON *root, wa_reply_t *rep)
{
    cJSON *f[F_COUNT];
    wa_err_t rv;

    memset(rep, 0, sizeof(*rep));
    if (!cJSON_IsObject(root))
        return WA_EPROTO;
    rv = collect(
        root, BIT(F_V) | BIT(F_OK) | BIT(F_DATA) | BIT(F_CODE) | BIT(F_MESSAGE),
        f);
    if (rv != WA_OK || (rv = check_version(f[F_V])) != WA_OK)
        goto fail;
    rv = WA_EPROTO;
    if (!cJSON_IsBool(f[F_OK]))
        goto fail;

    if (cJSON_IsTrue(f[F_OK])) {
        /* "data" may be any JSON value; absent means null. */
        if (f[F_DATA] != NULL) {
            rep->data = cJSON_DetachItemViaPointer(root, f[F_DATA]);
        } else if ((rep->data = cJSON_CreateNull()) == NULL) {
            rv = WA_ENOMEM;
            goto fail;
        }
        rep->ok = 1;
        rep->err = WA_OK;
    } else {
        wa_err_t code;
        if (!cJSON_IsString(f[F_CODE]) || !cJSON_IsString(f[F_MESSAGE]))
            goto fail;
        /* An error reply must name a real error: "ok" is not one. */
        if (wa_err_from_code(f[F_CODE]->valuestring, &code) != WA_OK ||
            code == WA_OK)
            goto fail;
        if (strlen(f[F_MESSAGE]->valuestring) > WA_MESSAGE_MAX) {
            rv = WA_ETOOBIG;
            goto fail;
        }
        rep->ok = 0;
        rep->err = code;
        copy_checked(rep->message, sizeof(rep->message),
                     f[F_MESSAGE]->valuestring);
    }
    return WA_OK;

fail:
    memset(rep, 0, sizeof(*rep));
    return rv;
}

/* check_version() of a member found by the scanner: a number (else
 * WA_EPROTO) that is 1 (else WA_EVERSION). */
static wa_err_t span_version(wa_json_span_t v)
{
    double d;

    if (wa_json_kind(v) != '0')
        return WA_EPROTO;
    if (!wa_json_number(v, &d) || d != WA_ENVELOPE_VERSION)
        return WA_EVERSION;
    return WA_OK;
}

/*
 * A reply read by the scanner (json.h) rather than by cJSON: the envelope's
 * few members are found in the text, and only "data" becomes a tree, or
 * not even that when the caller relays it (raw). The checks and their
 * errors are reply_from's. s[0..n) is a checked JSON object.
 */
static wa_err_t reply_scan(wa_json_span_t obj, bool raw, wa_reply_t *rep)
{
    enum { M_V, M_OK, M_DATA, M_CODE, M_MESSAGE, M_COUNT };
    static const char *const names[M_COUNT] = {"v", "ok", "data", "code",
                                               "message"};
    wa_json_span_t m[M_COUNT];
    cJSON *code = NULL, *message = NULL;
    wa_err_t rv = WA_EPROTO, c;

    memset(rep, 0, sizeof(*rep));
    /* As collect(): a known member twice is refused. */
    if ((rv = wa_json_members(obj, names, M_COUNT, m)) != WA_OK ||
        (rv = span_version(m[M_V])) != WA_OK)
        return rv;
    rv = WA_EPROTO;
    if (wa_json_kind(m[M_OK]) == 't') {
        /* "data" may be any JSON value; absent means null. */
        wa_json_span_t d = m[M_DATA];
        if (d.p == NULL)
            d = (wa_json_span_t){"null", 4};
        if (raw) {
            if ((rep->raw = malloc(d.n + 1)) == NULL)
                goto nomem;
            memcpy(rep->raw, d.p, d.n);
            rep->raw[d.n] = '\0';
            rep->raw_len = d.n;
        } else if ((rep->data = cJSON_ParseWithLength(d.p, d.n)) == NULL) {
            goto nomem; /* checked text: only memory can fail */
        }
        rep->ok = 1;
        rep->err = WA_OK;
        return WA_OK;
    }
    if (wa_json_kind(m[M_OK]) != 'f' || wa_json_kind(m[M_CODE]) != '"' ||
        wa_json_kind(m[M_MESSAGE]) != '"')
        goto fail;
    /* The error path: strings decoded the way every reader would. */
    if ((code = cJSON_ParseWithLength(m[M_CODE].p, m[M_CODE].n)) == NULL ||
        (message = cJSON_ParseWithLength(m[M_MESSAGE].p, m[M_MESSAGE].n)) ==
            NULL)
        goto nomem;
    /* An error reply must name a real error: "ok" is not one. */
    if (wa_err_from_code(code->valuestring, &c) != WA_OK || c == WA_OK)
        goto fail;
    if (strlen(message->valuestring) > WA_MESSAGE_MAX) {
        rv = WA_ETOOBIG;
        goto fail;
    }
    rep->ok = 0;
    rep->err = c;
    copy_checked(rep->message, sizeof(rep->message), message->valuestring);
    cJSON_Delete(code);
    cJSON_Delete(message);
    return WA_OK;

nomem:
    rv = WA_ENOMEM;
fail:
    cJSON_Delete(code);
    cJSON_Delete(message);
    free(rep->raw);
    memset(rep, 0, sizeof(*rep));
    return rv;
}

static wa_err_t reply_decode(const void *buf, size_t len, bool raw,
                             wa_reply_t *rep)
{
    wa_json_span_t obj;
    wa_err_t rv;

    if (rep == NULL)
        return WA_EINVAL;
    memset(rep, 0, sizeof(*rep));
    if ((rv = check_message(buf, len)) != WA_OK)
        return rv;
    if (wa_json_check_object(buf, len, &obj) != WA_OK)
        return WA_EPROTO;
    return reply_scan(obj, raw, rep);
}

wa_err_t wa_reply_decode(const void *buf, size_t len, wa_reply_t *rep)
{
    return reply_decode(buf, len, false, rep);
}

wa_err_t wa_reply_decode_raw(const void *buf, size_t len, wa_reply_t *rep)
{
    return reply_decode(buf, len, true, rep);
}

wa_err_t wa__reply_decode_checked(wa_json_span_t obj, bool raw, wa_reply_t *rep)
{
    if (rep == NULL)
        return WA_EINVAL;
    if (wa_json_kind(obj) != '{') {
        memset(rep, 0, sizeof(*rep));
        return WA_EPROTO;
    }
    return reply_scan(obj, raw, rep);
}

wa_err_t wa_reply_from_json(cJSON *obj, wa_reply_t *rep)
{
    if (rep == NULL)
        return WA_EINVAL;
    return reply_from(obj, rep);
}

void wa_reply_clear(wa_reply_t *rep)
{
    if (rep == NULL)
        return;
    cJSON_Delete(rep->data);
    free(rep->raw);
    memset(rep, 0, sizeof(*rep));
}

/* An event message's topic: checks of the whole message, then the user
 * id before the first '\n' (a user id never contains one) into ev->user;
 * *json is what follows it. */
static wa_err_t event_topic(const void *buf, size_t len, wa_event_t *ev,
                            const char **json, size_t *jlen)
{
    const char *s = buf, *nl;
    size_t ulen;
    wa_err_t rv;

    /* UTF-8 once for topic and JSON. */
    if ((rv = check_message(buf, len)) != WA_OK)
        return rv;
    if ((nl = memchr(s, '\n', len)) == NULL)
        return WA_EPROTO;
    ulen = (size_t)(nl - s);
    if (ulen > WA_USER_MAX)
        return WA_ETOOBIG;
    if (ulen == 0 || memchr(s, '\0', ulen) != NULL)
        return WA_EPROTO;
    memcpy(ev->user, s, ulen);
    ev->user[ulen] = '\0';
    if (wa_check_user(ev->user) != WA_OK)
        return WA_EPROTO;
    *json = nl + 1;
    *jlen = len - ulen - 1;
    return WA_OK;
}

/* The text of a checked JSON string span as a C string into buf (size
 * bytes): the bytes between the quotes, or decoded when it has escapes.
 * WA_ETOOBIG past size - 1 bytes. */
static wa_err_t span_string(wa_json_span_t v, char *buf, size_t size)
{
    cJSON *str;
    size_t n;

    if (memchr(v.p, '\\', v.n) == NULL) {
        if ((n = v.n - 2) >= size)
            return WA_ETOOBIG;
        memcpy(buf, v.p + 1, n);
        buf[n] = '\0';
        return WA_OK;
    }
    if ((str = cJSON_ParseWithLength(v.p, v.n)) == NULL)
        return WA_ENOMEM;
    n = strlen(str->valuestring);
    if (n < size)
        memcpy(buf, str->valuestring, n + 1);
    cJSON_Delete(str);
    return n < size ? WA_OK : WA_ETOOBIG;
}

/*
 * Both event decoders, one set of checks: the topic, then the JSON read by
 * the scanner (json.h). "data" becomes a tree (ev->data) for a reader, or,
 * for a relay (frame), the WebSocket frame is written around its text as
 * wa_event_frame() would print it.
 */
static wa_err_t event_decode(const void *buf, size_t len, bool frame,
                             wa_event_t *ev)
{
    enum { E_V, E_TYPE, E_DATA, E_TIMESTAMP, E_SEQ, E_COUNT };
    static const char *const names[E_COUNT] = {"v", "type", "data", "timestamp",
                                               "seq"};
    wa_json_span_t m[E_COUNT], obj;
    wa_json_buf_t b = {0};
    const char *json;
    char ts[WA_TIMESTAMP_MAX + 2];
    size_t jlen;
    double d;
    wa_err_t rv;
    int t;

    if (ev == NULL)
        return WA_EINVAL;
    memset(ev, 0, sizeof(*ev));
    if ((rv = event_topic(buf, len, ev, &json, &jlen)) != WA_OK)
        goto fail;
    rv = WA_EPROTO;
    if (jlen == 0 || wa_json_check_object(json, jlen, &obj) != WA_OK)
        goto fail;
    /* A known member twice is refused; "v" first (WA_EVERSION). */
    if ((rv = wa_json_members(obj, names, E_COUNT, m)) != WA_OK ||
        (rv = span_version(m[E_V])) != WA_OK)
        goto fail;
    rv = WA_EPROTO;
    if (wa_json_kind(m[E_TYPE]) != '"' || wa_json_kind(m[E_DATA]) != '{' ||
        wa_json_kind(m[E_TIMESTAMP]) != '"')
        goto fail;
    for (t = 0; t < WA_EV_COUNT; t++) {
        if (wa_json_key_is(m[E_TYPE], wa_event_type_name((wa_event_type_t)t)))
            break;
    }
    if (t == WA_EV_COUNT)
        goto fail;
    ev->type = (wa_event_type_t)t;
    if ((rv = span_string(m[E_TIMESTAMP], ts, sizeof(ts))) != WA_OK ||
        (rv = check_timestamp(ts)) != WA_OK)
        goto fail;
    copy_checked(ev->timestamp, sizeof(ev->timestamp), ts);
    /* seq: an integer 0..SEQ_MAX, however it is written. The range test
     * comes first, so the cast cannot overflow; NaN fails it. */
    rv = WA_EPROTO;
    if (!wa_json_number(m[E_SEQ], &d) || !(d >= 0.0 && d <= (double)SEQ_MAX) ||
        floor(d) != d)
        goto fail;
    ev->seq = (int64_t)d;

    if (!frame) {
        /* Checked text: only memory can fail. */
        if ((ev->data = cJSON_ParseWithLength(m[E_DATA].p, m[E_DATA].n)) ==
            NULL) {
            rv = WA_ENOMEM;
            goto fail;
        }
        return WA_OK;
    }
    /* What wa_event_frame() prints, with data as the publisher wrote it. */
    wa_json_buf_reserve(&b, m[E_DATA].n + 96);
    wa_json_buf_lit(&b, "{\"type\":\"");
    wa_json_buf_lit(&b, wa_event_type_name(ev->type));
    wa_json_buf_lit(&b, "\",\"data\":");
    wa_json_buf_add(&b, m[E_DATA].p, m[E_DATA].n);
    wa_json_buf_lit(&b, ",\"timestamp\":");
    wa_json_buf_string(&b, ev->timestamp);
    wa_json_buf_lit(&b, ",\"seq\":");
    wa_json_buf_int(&b, ev->seq);
    wa_json_buf_lit(&b, "}");
    if ((rv = wa_json_buf_done(&b, &ev->frame, &ev->frame_len)) != WA_OK)
        goto fail;
    return WA_OK;

fail:
    memset(ev, 0, sizeof(*ev));
    return rv;
}

wa_err_t wa_event_decode(const void *buf, size_t len, wa_event_t *ev)
{
    return event_decode(buf, len, false, ev);
}

wa_err_t wa_event_decode_frame(const void *buf, size_t len, wa_event_t *ev)
{
    return event_decode(buf, len, true, ev);
}

/* -------------------------------------------------------------- encoding */

/*
 * Encoders build a throwaway tree whose keys are the constant strings above
 * (no strdup) and whose payload nodes are references to the caller's
 * tree: nothing of the caller's is copied, modified or freed.
 */

/* Add item under a constant key; on failure item is freed. */
static int add(cJSON *obj, const char *key, cJSON *item)
{
    if (item == NULL)
        return 0;
    if (!cJSON_AddItemToObjectCS(obj, key, item)) {
        cJSON_Delete(item);
        return 0;
    }
    return 1;
}

/* A node that prints as src without owning any of it: containers and
 * strings by reference, scalars by value. NULL on ENOMEM or a corrupt
 * item. */
static cJSON *ref_of(const cJSON *src)
{
    switch (src->type & 0xFF) {
    case cJSON_Object:
        return cJSON_CreateObjectReference(src->child);
    case cJSON_Array:
        return cJSON_CreateArrayReference(src->child);
    case cJSON_String:
        return cJSON_CreateStringReference(
            src->valuestring != NULL ? src->valuestring : "");
    case cJSON_Number:
        return cJSON_CreateNumber(src->valuedouble);
    case cJSON_True:
        return cJSON_CreateTrue();
    case cJSON_False:
        return cJSON_CreateFalse();
    case cJSON_NULL:
        return cJSON_CreateNull();
    case cJSON_Raw:
        return src->valuestring != NULL ? cJSON_CreateRaw(src->valuestring)
                                        : NULL;
    default:
        return NULL;
    }
}

/* Print root (consumed) into *out. The result is checked against what the
 * decoders accept, so an encoder never produces a message its own decoder
 * refuses for size or UTF-8 (a string in caller data may hold bad bytes). */
static wa_err_t print_root(cJSON *root, size_t prefix, char **out,
                           size_t *outlen)
{
    char *s = cJSON_PrintUnformatted(root);
    size_t n;

    cJSON_Delete(root);
    if (s == NULL)
        return WA_ENOMEM;
    n = strlen(s);
    if (n > WA_ENVELOPE_MAX - prefix) {
        free(s);
        return WA_ETOOBIG;
    }
    if (!wa_utf8_valid(s, n)) {
        free(s);
        return WA_EUTF8;
    }
    *out = s;
    if (outlen != NULL)
        *outlen = n;
    return WA_OK;
}

wa_err_t wa_request_encode(wa_op_t op, const char *user, const char *rid,
                           const cJSON *args, char **out, size_t *outlen)
{
    const char *name = wa_op_name(op);
    cJSON *root;

    if (out == NULL)
        return WA_EINVAL;
    *out = NULL;
    if (name == NULL || user == NULL ||
        (user[0] != '\0' && wa_check_user(user) != WA_OK) ||
        wa_check_rid(rid) != WA_OK || (args != NULL && !cJSON_IsObject(args)))
        return WA_EINVAL;

    if ((root = cJSON_CreateObject()) == NULL)
        return WA_ENOMEM;
    if (!add(root, "v", wa_json_int(WA_ENVELOPE_VERSION)) ||
        !add(root, "op", cJSON_CreateStringReference(name)) ||
        !add(root, "user", cJSON_CreateStringReference(user)) ||
        !add(root, "rid", cJSON_CreateStringReference(rid)) ||
        !add(root, "args",
             args != NULL ? cJSON_CreateObjectReference(args->child)
                          : cJSON_CreateObject())) {
        cJSON_Delete(root);
        return WA_ENOMEM;
    }
    return print_root(root, 0, out, outlen);
}

/* A success reply whose data is text already (a raw node: log.list's
 * answer): what cJSON would print, in one allocation and one copy instead
 * of a print buffer that doubles its way up to the size. */
static wa_err_t reply_raw_ok(const char *data, char **out, size_t *outlen)
{
    char head[48];
    size_t hl, n = strlen(data);
    char *buf;

    hl = (size_t)snprintf(head, sizeof(head), "{\"v\":%d,\"ok\":true,\"data\":",
                          WA_ENVELOPE_VERSION);
    if (n > WA_ENVELOPE_MAX - hl - 1)
        return WA_ETOOBIG;
    if (!wa_utf8_valid(data, n))
        return WA_EUTF8;
    if ((buf = malloc(hl + n + 2)) == NULL)
        return WA_ENOMEM;
    memcpy(buf, head, hl);
    memcpy(buf + hl, data, n);
    memcpy(buf + hl + n, "}", 2);
    *out = buf;
    if (outlen != NULL)
        *outlen = hl + n + 1;
    return WA_OK;
}

wa_err_t wa_reply_encode_ok(const cJSON *data, char **out, size_t *outlen)
{
    cJSON *root;

    if (out == NULL)
        return WA_EINVAL;
    *out = NULL;
    if (cJSON_IsRaw(data) && data->valuestring != NULL)
        return reply_raw_ok(data->valuestring, out, outlen);
    if ((root = cJSON_CreateObject()) == NULL)
        return WA_ENOMEM;
    if (!add(root, "v", wa_json_int(WA_ENVELOPE_VERSION)) ||
        !add(root, "ok", cJSON_CreateTrue()) ||
        !add(root, "data", data != NULL ? ref_of(data) : cJSON_CreateNull())) {
        cJSON_Delete(root);
        return WA_ENOMEM;
    }
    return print_root(root, 0, out, outlen);
}

wa_err_t wa_reply_encode_err(wa_err_t err, const char *message, char **out,
                             size_t *outlen)
{
    char msg[WA_MESSAGE_MAX + 1];
    size_t n;
    cJSON *root;

    if (out == NULL)
        return WA_EINVAL;
    *out = NULL;
    if (err == WA_OK || (unsigned)err >= (unsigned)WA_ERR_COUNT)
        return WA_EINVAL;

    /* An error must always be reportable: a message that is not valid
     * UTF-8 (say, bytes from a browser) is replaced by the generic text
     * rather than failing the reply. */
    if (message == NULL)
        message = wa_strerror(err);
    n = wa_utf8_prefix(message, WA_MESSAGE_MAX);
    if (!wa_utf8_valid(message, n)) {
        message = wa_strerror(err);
        n = strlen(message);
    }
    memcpy(msg, message, n);
    msg[n] = '\0';

    if ((root = cJSON_CreateObject()) == NULL)
        return WA_ENOMEM;
    if (!add(root, "v", wa_json_int(WA_ENVELOPE_VERSION)) ||
        !add(root, "ok", cJSON_CreateFalse()) ||
        !add(root, "code", cJSON_CreateStringReference(wa_err_code(err))) ||
        !add(root, "message", cJSON_CreateStringReference(msg))) {
        cJSON_Delete(root);
        return WA_ENOMEM;
    }
    return print_root(root, 0, out, outlen);
}

wa_err_t wa_event_init(wa_event_t *ev, const char *user, wa_event_type_t type)
{
    if (ev == NULL)
        return WA_EINVAL;
    memset(ev, 0, sizeof(*ev));
    if (wa_check_user(user) != WA_OK || wa_event_type_name(type) == NULL)
        return WA_EINVAL;
    if ((ev->data = cJSON_CreateObject()) == NULL)
        return WA_ENOMEM;
    copy_checked(ev->user, sizeof(ev->user), user);
    ev->type = type;
    ev->seq = 0;
    wa_timestamp_now(ev->timestamp, sizeof(ev->timestamp));
    return WA_OK;
}

/* The tree shared by the bus event and the WebSocket frame; the frame has
 * no "v" (browsers see one format, versioned by the server). */
static wa_err_t event_tree(const wa_event_t *ev, int with_version, cJSON **out)
{
    const char *type = wa_event_type_name(ev->type);
    char seq[24];
    cJSON *root;

    *out = NULL;
    if (type == NULL || ev->seq < 0 || ev->seq > SEQ_MAX ||
        check_timestamp(ev->timestamp) != WA_OK ||
        (ev->data != NULL && !cJSON_IsObject(ev->data)))
        return WA_EINVAL;
    /* Raw, so a seq above 10^15 still prints as plain digits. */
    snprintf(seq, sizeof(seq), "%" PRId64, ev->seq);

    if ((root = cJSON_CreateObject()) == NULL)
        return WA_ENOMEM;
    if ((with_version && !add(root, "v", wa_json_int(WA_ENVELOPE_VERSION))) ||
        !add(root, "type", cJSON_CreateStringReference(type)) ||
        !add(root, "data",
             ev->data != NULL ? cJSON_CreateObjectReference(ev->data->child)
                              : cJSON_CreateObject()) ||
        !add(root, "timestamp", cJSON_CreateStringReference(ev->timestamp)) ||
        !add(root, "seq", cJSON_CreateRaw(seq))) {
        cJSON_Delete(root);
        return WA_ENOMEM;
    }
    *out = root;
    return WA_OK;
}

/*
 * Join encoded parts as head part,part,... tail into one malloc'd buffer,
 * refusing more than WA_ENVELOPE_MAX bytes. The parts are our own encoder's
 * output (checked JSON objects), so the result is valid JSON.
 */
static wa_err_t join(const char *head, const char *tail, char *const *parts,
                     const size_t *lens, size_t n, char **out, size_t *outlen)
{
    size_t hl = strlen(head), tl = strlen(tail), total = hl + tl, at;
    char *buf;

    if (out == NULL || outlen == NULL || parts == NULL || lens == NULL ||
        n == 0)
        return WA_EINVAL;
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (parts[i] == NULL || lens[i] == 0)
            return WA_EINVAL;
        total += lens[i] + (i > 0);
        if (total > WA_ENVELOPE_MAX)
            return WA_ETOOBIG;
    }
    if ((buf = malloc(total + 1)) == NULL)
        return WA_ENOMEM;
    memcpy(buf, head, hl);
    at = hl;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf[at++] = ',';
        memcpy(buf + at, parts[i], lens[i]);
        at += lens[i];
    }
    memcpy(buf + at, tail, tl);
    at += tl;
    buf[at] = '\0';
    *out = buf;
    *outlen = at;
    return WA_OK;
}

cJSON *wa_json_int(int64_t v)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

wa_err_t wa_batch_request_encode(const char *rid, char *const *reqs,
                                 const size_t *lens, size_t n, char **out,
                                 size_t *outlen)
{
    char head[64 + WA_RID_MAX];

    if (out != NULL)
        *out = NULL;
    /* Written as is into the JSON below: no quote or backslash. */
    if (wa_check_rid(rid) != WA_OK || strpbrk(rid, "\"\\") != NULL)
        return WA_EINVAL;
    snprintf(head, sizeof(head),
             "{\"v\":%d,\"op\":\"%s\",\"user\":\"\",\"rid\":\"%s\","
             "\"args\":{\"calls\":[",
             WA_ENVELOPE_VERSION, wa_op_name(WA_OP_BUS_BATCH), rid);
    return join(head, "]}}", reqs, lens, n, out, outlen);
}

wa_err_t wa_batch_reply_encode(char *const *replies, const size_t *lens,
                               size_t n, char **out, size_t *outlen)
{
    char head[64];

    snprintf(head, sizeof(head),
             "{\"v\":%d,\"ok\":true,\"data\":{\"replies\":[",
             WA_ENVELOPE_VERSION);
    return join(head, "]}}", replies, lens, n, out, outlen);
}

wa_err_t wa_event_encode(const wa_event_t *ev, char **out, size_t *outlen)
{
    cJSON *root;
    char *json, *msg;
    size_t ulen, jlen;
    wa_err_t rv;

    if (out == NULL)
        return WA_EINVAL;
    *out = NULL;
    if (ev == NULL || wa_check_user(ev->user) != WA_OK)
        return WA_EINVAL;
    if ((rv = event_tree(ev, 1, &root)) != WA_OK)
        return rv;
    ulen = strlen(ev->user);
    if ((rv = print_root(root, ulen + 1, &json, &jlen)) != WA_OK)
        return rv;

    /* "<user>\n<json>": SUB filters on the "<user>\n" prefix. */
    if ((msg = malloc(ulen + 1 + jlen + 1)) == NULL) {
        free(json);
        return WA_ENOMEM;
    }
    memcpy(msg, ev->user, ulen);
    msg[ulen] = '\n';
    memcpy(msg + ulen + 1, json, jlen + 1);
    free(json);
    *out = msg;
    if (outlen != NULL)
        *outlen = ulen + 1 + jlen;
    return WA_OK;
}

wa_err_t wa_event_frame(const wa_event_t *ev, char **out, size_t *outlen)
{
    cJSON *root;
    wa_err_t rv;

    if (out == NULL)
        return WA_EINVAL;
    *out = NULL;
    if (ev == NULL)
        return WA_EINVAL;
    if ((rv = event_tree(ev, 0, &root)) != WA_OK)
        return rv;
    return print_root(root, 0, out, outlen);
}

void wa_event_clear(wa_event_t *ev)
{
    if (ev == NULL)
        return;
    cJSON_Delete(ev->data);
    free(ev->frame);
    memset(ev, 0, sizeof(*ev));
}
