/*
 * push.c - the page channel: each open page holds one WebSocket to
 * /ws/chat (the real app's socket is wss://web.whatsapp.com/ws/chat).
 * Frames are JSON text; what they mean is state.c's business, this file
 * only moves them.
 *
 * Lifetime: a page exists in state.c from the ready handler to the close
 * handler. state.c writes to a connection only under its lock and forgets
 * it in fw_state_page_close, which the close handler calls while CivetWeb
 * still holds the connection, so no write ever reaches a freed connection.
 */
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "fakewa.h"
#include "wa/log.h"

/* Per-connection data: the page id and a fragmented message being
 * reassembled (browsers rarely fragment, but the protocol allows it). */
typedef struct link {
    uint64_t page;
    char *frag;
    size_t frag_len;
    bool frag_text;
} link_t;

void fw_push_send(void *arg, void *conn, const char *json, size_t len)
{
    (void)arg;
    if (mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_TEXT, json, len) <= 0)
        wa_debug(NULL, "a page did not take a frame (closing?)");
}

/* Browsers send Origin; a page of another site must not drive ours. */
static int on_connect(const struct mg_connection *conn, void *arg)
{
    fw_state_t *st = arg;
    const char *origin = mg_get_header(conn, "Origin");
    const char *host = mg_get_header(conn, "Host");

    if (origin != NULL && (host == NULL || strncmp(origin, "http://", 7) != 0 ||
                           strcmp(origin + 7, host) != 0)) {
        wa_warn(NULL, "refused a page channel from another origin");
        return 1;
    }
    if (fw_state_page_count(st) >= FW_PAGES_MAX) {
        wa_warn(NULL, "refused a page channel: %d pages open", FW_PAGES_MAX);
        return 1;
    }
    return 0;
}

static void on_ready(struct mg_connection *conn, void *arg)
{
    fw_state_t *st = arg;
    link_t *l = calloc(1, sizeof(*l));
    wa_err_t rv = WA_ENOMEM;

    if (l == NULL || (rv = fw_state_page_open(st, conn, &l->page)) != WA_OK) {
        wa_warn(NULL, "cannot open a page: %s", wa_strerror(rv));
        free(l);
        mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "", 0);
        return;
    }
    mg_set_user_connection_data(conn, l);
}

/* Collect a fragmented message; true with *msg and *msg_len once it is whole.
 */
static bool reassemble(link_t *l, int op, bool fin, char *data, size_t len,
                       char **msg, size_t *msg_len, bool *bad)
{
    char *n;

    *bad = false;
    if (op != MG_WEBSOCKET_OPCODE_CONTINUATION && l->frag != NULL) {
        *bad = true; /* a new message inside a fragmented one */
        return false;
    }
    if (op == MG_WEBSOCKET_OPCODE_CONTINUATION && l->frag == NULL) {
        *bad = true;
        return false;
    }
    if (op != MG_WEBSOCKET_OPCODE_CONTINUATION) {
        if (fin) {
            *msg = data;
            *msg_len = len;
            return true;
        }
        l->frag_text = op == MG_WEBSOCKET_OPCODE_TEXT;
    }
    if (l->frag_len + len > FW_FRAME_MAX ||
        (n = realloc(l->frag, l->frag_len + len + 1)) == NULL) {
        *bad = true;
        return false;
    }
    memcpy(n + l->frag_len, data, len);
    l->frag = n;
    l->frag_len += len;
    if (!fin)
        return false;
    *msg = l->frag;
    *msg_len = l->frag_len;
    return true;
}

static int on_data(struct mg_connection *conn, int bits, char *data, size_t len,
                   void *arg)
{
    fw_state_t *st = arg;
    link_t *l = mg_get_user_connection_data(conn);
    const int op = bits & 0x0f;
    const bool fin = (bits & 0x80) != 0;
    char *msg = NULL;
    size_t msg_len = 0;
    bool bad, text;

    if (l == NULL)
        return 0;
    if (op == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
        return 0;
    if (op == MG_WEBSOCKET_OPCODE_PING || op == MG_WEBSOCKET_OPCODE_PONG)
        return 1;
    text = op == MG_WEBSOCKET_OPCODE_TEXT ||
           (op == MG_WEBSOCKET_OPCODE_CONTINUATION && l->frag_text);
    if (!reassemble(l, op, fin, data, len, &msg, &msg_len, &bad)) {
        if (bad)
            wa_warn(NULL, "page %llu: bad fragment or oversized message",
                    (unsigned long long)l->page);
        return bad ? 0 : 1;
    }
    if (text)
        fw_state_page_frame(st, l->page, msg, msg_len);
    else
        wa_warn(NULL, "page %llu: ignored a binary message",
                (unsigned long long)l->page);
    free(l->frag);
    l->frag = NULL;
    l->frag_len = 0;
    return 1;
}

static void on_close(const struct mg_connection *conn, void *arg)
{
    fw_state_t *st = arg;
    link_t *l = mg_get_user_connection_data(conn);

    if (l == NULL)
        return;
    fw_state_page_close(st, l->page);
    mg_set_user_connection_data(conn, NULL);
    free(l->frag);
    free(l);
}

void fw_push_register(struct mg_context *ctx, fw_state_t *st)
{
    mg_set_websocket_handler(ctx, "/ws/chat$", on_connect, on_ready, on_data,
                             on_close, st);
}
