/*
 * ws.c - the WebSocket endpoint (DESIGN §5) on CivetWeb 1.15.
 *
 * Admission happens in CivetWeb's authorization handler, which runs for an
 * upgrade request before the WebSocket connect handler and before any
 * handshake byte is sent, and which may answer the request itself: Origin
 * (403), token (401), since (400), then the connection limits (429/503).
 * Whatever it refuses gets a plain HTTP answer and never an upgrade; what
 * it admits carries a reserved nt_conn_t as CivetWeb's connection data. The
 * connect handler refuses any upgrade that does not carry one.
 *
 * Lifetime of an nt_conn_t: created and reserved in the auth handler; the
 * ready handler starts its queue and attaches it to the hub (replaying
 * ?since=); the close handler detaches it, stops its queue (no pool worker
 * touches it after) and frees it. If the handshake never completes,
 * CivetWeb's connection_close callback frees it instead. The URI is never
 * logged: its query holds the token.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "notifier.h"
#include "wa/log.h"

/* Largest seq a JSON number carries exactly (2^53 - 1). */
#define SINCE_MAX 9007199254740991ll

typedef struct nt_conn {
    nt_sub_t sub; /* hub view: user, queue, reservation */
    nt_t *nt;
    struct mg_connection *mg; /* set once the handshake is done */
    int64_t since;            /* -1 without ?since= */
    char rid[WA_RID_MAX + 1];
} nt_conn_t;

/* Give everything back: hub reservation, queue, memory. */
static void conn_free(nt_conn_t *c)
{
    nt_hub_release(c->nt->hub, &c->sub);
    nt_outq_stop(c->sub.q);
    nt_outq_free(c->sub.q);
    free(c);
}

/* ---- admission -----------------------------------------------------------
 */

static bool header_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);

    /* Comma-separated tokens, case-insensitive ("keep-alive, Upgrade"). */
    for (const char *p = value; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncasecmp(p, token, n) == 0 &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
            return true;
        p = strchr(p, ',');
    }
    return false;
}

static bool is_upgrade(const struct mg_connection *conn)
{
    return header_has_token(mg_get_header(conn, "Upgrade"), "websocket") &&
           header_has_token(mg_get_header(conn, "Connection"), "upgrade");
}

/* Strict decimal 0..SINCE_MAX: no sign, no spaces, no leading junk. */
static bool parse_since(const char *s, int64_t *out)
{
    int64_t v = 0;

    if (*s == '\0' || strlen(s) > 16)
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
    }
    if (v > SINCE_MAX)
        return false;
    *out = v;
    return true;
}

static int refuse(struct mg_connection *conn, nt_t *nt, nt_refusal_t why,
                  wa_err_t err, const char *message, const char *rid,
                  const char *extra)
{
    static const char *const reasons[NT_REFUSED_COUNT] = {
        "unauthorized", "forbidden origin", "bad request",
        "per-user connection limit", "connection limit"};

    nt_metrics_add(&nt->metrics.refused[why], 1);
    wa_log_kv(WA_LOG_INFO, rid, "websocket upgrade refused", "reason",
              reasons[why], "detail", message, NULL);
    wa_http_reply_error(conn, err, message, rid, extra);
    return 0;
}

/*
 * The user of a request: ?token=<jwt>, else an Authorization header (for
 * clients that can send one). WA_OK with *p set, or WA_EUNAUTH with a
 * fixed phrase in *why, or WA_ENOMEM.
 */
static wa_err_t authenticate(const struct mg_connection *conn, nt_t *nt,
                             wa_principal_t *p, const char **why)
{
    const char *qs = mg_get_request_info(conn)->query_string;
    const char *header = mg_get_header(conn, "Authorization");
    char token[WA_AUTH_TOKEN_MAX + 2];
    wa_err_t rv;
    int n = -1;

    if (qs != NULL)
        n = mg_get_var(qs, strlen(qs), "token", token, sizeof(token));
    if (n == -2) {
        *why = "token too large";
        return WA_EUNAUTH;
    }
    if (n > 0) {
        rv = wa_auth_token(nt->auth, token, time(NULL), p, why);
    } else if (header != NULL) {
        rv = wa_auth_header(nt->auth, header, time(NULL), p, why);
    } else {
        *why = "missing token";
        rv = WA_EUNAUTH;
    }
    explicit_bzero(token, sizeof(token));
    return rv;
}

/* CivetWeb's authorization handler for "/" and "/ws": 1 admits, 0 means we
 * answered. Runs before the handshake. */
static int on_auth(struct mg_connection *conn, void *arg)
{
    nt_t *nt = arg;
    const char *origin = mg_get_header(conn, "Origin");
    const char *qs = mg_get_request_info(conn)->query_string;
    const char *version = mg_get_header(conn, "Sec-WebSocket-Version");
    const char *why = NULL;
    char rid[WA_RID_MAX + 1], since_text[32];
    int64_t since = -1;
    wa_principal_t p;
    nt_conn_t *c;
    wa_err_t rv;

    if (!is_upgrade(conn))
        return 1; /* a plain request: the request handler answers it */
    wa_http_request_id(conn, rid, sizeof(rid));

    /* A refused attempt earlier on this keep-alive connection. */
    if ((c = mg_get_user_connection_data(conn)) != NULL) {
        mg_set_user_connection_data(conn, NULL);
        conn_free(c);
    }
    /* Absent Origin: not a browser, nothing to check. */
    if (origin != NULL && !wa_http_origin_allowed(nt->origins, origin))
        return refuse(conn, nt, NT_REFUSED_ORIGIN, WA_EFORBIDDEN,
                      "origin not allowed", rid, NULL);
    if ((rv = authenticate(conn, nt, &p, &why)) != WA_OK) {
        if (rv != WA_EUNAUTH) {
            wa_http_reply_error(conn, rv, NULL, rid, NULL);
            return 0;
        }
        return refuse(conn, nt, NT_REFUSED_UNAUTHORIZED, WA_EUNAUTH, why, rid,
                      "WWW-Authenticate: Bearer\r\n");
    }
    /* An admin service key names no user (auth.h): there are no events of
     * its own to follow, and it may not follow anyone else's. */
    if (p.user[0] == '\0')
        return refuse(conn, nt, NT_REFUSED_UNAUTHORIZED, WA_EFORBIDDEN,
                      "token names no user", rid, NULL);
    if (qs != NULL &&
        mg_get_var(qs, strlen(qs), "since", since_text, sizeof(since_text)) !=
            -1 &&
        !parse_since(since_text, &since))
        return refuse(conn, nt, NT_REFUSED_BAD_REQUEST, WA_EINVAL,
                      "since must be an integer seq >= 0", rid, NULL);
    if (mg_get_header(conn, "Sec-WebSocket-Key") == NULL)
        return refuse(conn, nt, NT_REFUSED_BAD_REQUEST, WA_EINVAL,
                      "missing Sec-WebSocket-Key", rid, NULL);
    if (version == NULL || strcmp(version, "13") != 0)
        return refuse(conn, nt, NT_REFUSED_BAD_REQUEST, WA_EINVAL,
                      "unsupported WebSocket version", rid,
                      "Sec-WebSocket-Version: 13\r\n");

    if ((c = calloc(1, sizeof(*c))) == NULL) {
        wa_http_reply_error(conn, WA_ENOMEM, NULL, rid, NULL);
        return 0;
    }
    c->nt = nt;
    c->since = since;
    memcpy(c->rid, rid, sizeof(rid));
    memcpy(c->sub.user, p.user, sizeof(p.user));
    rv = nt_hub_reserve(nt->hub, &c->sub);
    if (rv != WA_OK) {
        free(c);
        if (rv == WA_ERATELIMIT)
            return refuse(conn, nt, NT_REFUSED_USER_LIMIT, WA_ERATELIMIT,
                          "too many connections for this user", rid,
                          "Retry-After: 5\r\n");
        if (rv == WA_EFULL)
            return refuse(conn, nt, NT_REFUSED_SERVER_LIMIT, WA_EFULL,
                          "too many connections", rid, "Retry-After: 5\r\n");
        wa_http_reply_error(conn, rv, NULL, rid, NULL);
        return 0;
    }
    mg_set_user_connection_data(conn, c);
    return 1;
}

int nt_ws_on_plain(struct mg_connection *conn, void *arg)
{
    nt_t *nt = arg;
    char rid[WA_RID_MAX + 1];

    wa_http_request_id(conn, rid, sizeof(rid));
    nt_metrics_add(&nt->metrics.refused[NT_REFUSED_BAD_REQUEST], 1);
    wa_http_reply_error(conn, WA_EINVAL, "WebSocket upgrade required", rid,
                        "Upgrade: websocket\r\n");
    return 400;
}

/* ---- the WebSocket -------------------------------------------------------
 */

/* Only upgrades admitted by on_auth proceed to the handshake. */
static int on_connect(const struct mg_connection *conn, void *arg)
{
    (void)arg;
    return mg_get_user_connection_data(conn) != NULL ? 0 : 1;
}

/* The pool's sink: one raw write of complete frames, under the
 * connection lock that CivetWeb's own writes (pings, pongs) take too. */
static int sink(void *arg, const void *buf, size_t len)
{
    nt_conn_t *c = arg;
    int n;

    mg_lock_connection(c->mg);
    n = mg_write(c->mg, buf, len);
    mg_unlock_connection(c->mg);
    return n == (int)len ? 0 : -1;
}

static void on_ready(struct mg_connection *conn, void *arg)
{
    nt_t *nt = arg;
    nt_conn_t *c = mg_get_user_connection_data(conn);
    const nt_outq_opts_t qopts = {
        .max_frames = (size_t)nt->cfg.queue_frames,
        .max_bytes = (size_t)nt->cfg.queue_bytes,
        .writers = nt->writers,
    };
    unsigned char frame[4 + NT_CLOSE_REASON_MAX];
    nt_replay_t info;
    wa_err_t rv;

    if (c == NULL)
        return; /* on_connect refused it */
    c->mg = conn;
    if ((c->sub.q = nt_outq_new(&qopts)) == NULL) {
        rv = WA_ENOMEM;
        goto fail;
    }
    if ((rv = nt_outq_start(c->sub.q, sink, c)) != WA_OK)
        goto fail;
    nt_metrics_add(&nt->metrics.connections_total, 1);
    if ((rv = nt_hub_attach(nt->hub, &c->sub, c->since, &info)) != WA_OK) {
        wa_error(c->rid, "cannot replay to a WebSocket: %s", wa_strerror(rv));
        nt_outq_close(c->sub.q, NT_CLOSE_INTERNAL, "internal error", true);
        return;
    }
    if (info.resync)
        wa_debug(c->rid, "resync for user %s: since %lld, oldest %lld",
                 c->sub.user, (long long)c->since, (long long)info.oldest);
    wa_debug(c->rid, "websocket open for user %s, %zu frames replayed",
             c->sub.user, info.frames);
    return;

fail:
    /* No queue: say so ourselves; any client frame then ends the loop. */
    wa_error(c->rid, "cannot start a WebSocket queue: %s", wa_strerror(rv));
    mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE,
                       (const char *)frame + 2,
                       nt_close_frame(NT_CLOSE_INTERNAL, "internal error",
                                      frame, sizeof(frame)) -
                           2);
    mg_set_user_connection_data(conn, NULL);
    conn_free(c);
}

/*
 * Client -> server messages mean nothing here and are ignored, bounded: one
 * over NT_CLIENT_MSG_MAX closes with 1009. A close is echoed. Returns 0 to
 * end CivetWeb's read loop.
 */
static int on_data(struct mg_connection *conn, int bits, char *data, size_t len,
                   void *arg)
{
    nt_t *nt = arg;
    nt_conn_t *c = mg_get_user_connection_data(conn);
    int op = bits & 0x0f;

    if (c == NULL || c->sub.q == NULL)
        return 0;
    if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
        uint16_t code = NT_CLOSE_NORMAL;

        if (len >= 2)
            code = (uint16_t)(((unsigned char)data[0] << 8) |
                              (unsigned char)data[1]);
        nt_outq_close(c->sub.q, code, "", true);
        return 0;
    }
    if (len > NT_CLIENT_MSG_MAX) {
        nt_metrics_add(&nt->metrics.drops[NT_DROP_OVERSIZE], 1);
        wa_info(c->rid,
                "closing a WebSocket of user %s: client message of "
                "%zu bytes over the limit",
                c->sub.user, len);
        nt_outq_close(c->sub.q, NT_CLOSE_TOO_BIG, "message too big", true);
        return 0;
    }
    /* A connection the server gave up on ends at the client's next word. */
    return nt_outq_closing(c->sub.q) ? 0 : 1;
}

static void on_close(const struct mg_connection *conn, void *arg)
{
    nt_conn_t *c = mg_get_user_connection_data(conn);

    (void)arg;
    if (c == NULL)
        return;
    wa_debug(c->rid, "websocket closed for user %s", c->sub.user);
    mg_set_user_connection_data(conn, NULL);
    conn_free(c);
}

void nt_ws_connection_close(const struct mg_connection *conn)
{
    nt_conn_t *c = mg_get_user_connection_data(conn);

    /* Admitted, but the handshake never completed: no queue, not
     * attached, only the reservation to give back. */
    if (c != NULL) {
        mg_set_user_connection_data(conn, NULL);
        conn_free(c);
    }
}

void nt_ws_register(nt_t *nt, struct mg_context *ctx)
{
    static const char *const uris[] = {"/$", "/ws$"};

    for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        mg_set_auth_handler(ctx, uris[i], on_auth, nt);
        mg_set_websocket_handler(ctx, uris[i], on_connect, on_ready, on_data,
                                 on_close, nt);
    }
    /* CivetWeb tries exact URIs before patterns, so "/" itself is answered
     * by http.c's catch-all, which calls nt_ws_on_plain for it. */
    mg_set_request_handler(ctx, "/ws$", nt_ws_on_plain, nt);
}
