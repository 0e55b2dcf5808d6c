/*
 * routes_session.c - the routes the user's session-svc instance answers:
 * POST /connect, POST /disconnect, GET /chats, GET /messages/{chatId},
 * POST /send, GET /chat-by-phone.
 *
 * Inputs are checked here (validate.h) before anything goes on the bus; the
 * user is always r->who.user. session-svc answers with the REST shapes of
 * DESIGN §4, which are relayed after a check of their top-level member (an
 * answer without it is the backend's fault: 502). Remote error codes pass
 * through with their HTTP status (not_ready -> 409, not_found -> 404).
 */
#include <string.h>

#include "gateway.h"

/* What a successful answer's data must hold. */
typedef enum shape {
    SHAPE_STATUS, /* "status": string */
    SHAPE_CHATS,  /* "chats": array */
    SHAPE_MSGS,   /* "messages": array */
    SHAPE_SENT,   /* "id": string */
    SHAPE_CHAT,   /* "chat": object (null = no such chat) */
} shape_t;

static bool has_shape(const cJSON *data, shape_t shape)
{
    const cJSON *v;

    if (!cJSON_IsObject(data))
        return false;
    switch (shape) {
    case SHAPE_STATUS:
        return gw_json_string(data, "status") != NULL;
    case SHAPE_CHATS:
        return cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(data, "chats"));
    case SHAPE_MSGS:
        return cJSON_IsArray(
            cJSON_GetObjectItemCaseSensitive(data, "messages"));
    case SHAPE_SENT:
        return gw_json_string(data, "id") != NULL;
    case SHAPE_CHAT:
        v = cJSON_GetObjectItemCaseSensitive(data, "chat");
        return cJSON_IsObject(v) || cJSON_IsNull(v);
    }
    return false;
}

/*
 * Call op on the user's instance and answer: the data with status 200 (or
 * what pick_status says), or the error. Returns nothing: r is answered.
 */
static void relay(gw_req_t *r, wa_op_t op, const cJSON *args, shape_t shape)
{
    wa_reply_t rep;
    bool from_store;
    int status = 200;
    wa_err_t rv;

    rv = gw_session_call(r, op, args, &rep, &from_store);
    /* After a write, and before its answer: this user's reads in flight
     * may predate it, later ones must not share their answers. */
    if (op == WA_OP_WA_CONNECT || op == WA_OP_WA_DISCONNECT ||
        op == WA_OP_WA_SEND)
        gw_flights_forget_user(r->gw->flights, r->who.user);
    if (rv != WA_OK) {
        gw_reply_bus_error(r, from_store ? "store-svc" : "session-svc",
                           from_store ? WA_OP_PLACEMENT_RESOLVE : op, rv, &rep);
        goto out;
    }
    if (!has_shape(rep.data, shape)) {
        gw_metrics_bus_error(r->gw->metrics, op, WA_EPROTO);
        gw_reply_bus_error(r, "session-svc", op, WA_EPROTO, NULL);
        goto out;
    }
    if (shape == SHAPE_STATUS && op == WA_OP_WA_CONNECT) {
        /* Already scanning or linked: 200 with that status; a start: 202. */
        const char *s = gw_json_string(rep.data, "status");

        status = strcmp(s, "qr") == 0 || strcmp(s, "authenticated") == 0 ||
                         strcmp(s, "ready") == 0
                     ? 200
                     : 202;
    }
    if (shape == SHAPE_CHAT &&
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(rep.data, "chat"))) {
        gw_reply_error(r, WA_ENOTFOUND, "no chat with that phone number");
        goto out;
    }
    gw_reply_json(r, status, rep.data, NULL);
out:
    wa_reply_clear(&rep);
}

void gw_route_connect(gw_req_t *r)
{
    relay(r, WA_OP_WA_CONNECT, NULL, SHAPE_STATUS);
}

void gw_route_disconnect(gw_req_t *r)
{
    relay(r, WA_OP_WA_DISCONNECT, NULL, SHAPE_STATUS);
}

void gw_route_chats(gw_req_t *r)
{
    relay(r, WA_OP_WA_CHATS, NULL, SHAPE_CHATS);
}

static const char chat_id_rule[] =
    "chatId: must be <5-20 digits>@c.us or <5-20 digits>[-<digits>]@g.us";

void gw_route_messages(gw_req_t *r)
{
    cJSON *args;
    long limit;

    if (!gw_valid_chat_id(r->param)) {
        gw_reply_error(r, WA_EINVAL, chat_id_rule);
        return;
    }
    if (!gw_query_limit(r, &limit))
        return;
    if ((args = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(args, "chatId", r->param) == NULL ||
        cJSON_AddNumberToObject(args, "limit", (double)limit) == NULL) {
        cJSON_Delete(args);
        gw_reply_error(r, WA_ENOMEM, NULL);
        return;
    }
    relay(r, WA_OP_WA_MESSAGES, args, SHAPE_MSGS);
    cJSON_Delete(args);
}

/* body[name] as a string, or answer 400 naming the field and NULL. */
static const char *required_string(gw_req_t *r, const cJSON *body,
                                   const char *name, const char *missing,
                                   const char *mistyped)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);

    if (v == NULL || cJSON_IsNull(v)) {
        gw_reply_error(r, WA_EINVAL, missing);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        gw_reply_error(r, WA_EINVAL, mistyped);
        return NULL;
    }
    return v->valuestring;
}

void gw_route_send(gw_req_t *r)
{
    cJSON *body, *args = NULL;
    const char *chat_id, *message, *why = NULL;

    if ((body = gw_read_json_object(r)) == NULL)
        return;
    chat_id = required_string(r, body, "chatId", "chatId: required",
                              "chatId: must be a string");
    if (chat_id == NULL)
        goto out;
    if (!gw_valid_chat_id(chat_id)) {
        gw_reply_error(r, WA_EINVAL, chat_id_rule);
        goto out;
    }
    message = required_string(r, body, "message", "message: required",
                              "message: must be a string");
    if (message == NULL)
        goto out;
    /* The body was checked for \u0000, so strlen is the whole string. */
    if (gw_check_message(message, strlen(message), &why) != WA_OK) {
        gw_reply_error(r, WA_EINVAL, why);
        goto out;
    }
    /* Only the two known fields travel on; unknown ones are ignored. */
    if ((args = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(args, "chatId", chat_id) == NULL ||
        cJSON_AddStringToObject(args, "message", message) == NULL) {
        gw_reply_error(r, WA_ENOMEM, NULL);
        goto out;
    }
    relay(r, WA_OP_WA_SEND, args, SHAPE_SENT);
out:
    cJSON_Delete(args);
    cJSON_Delete(body);
}

void gw_route_chat_by_phone(gw_req_t *r)
{
    char phone[32];
    cJSON *args;
    wa_err_t rv;

    rv = gw_query_param(r->ri->query_string, "phone", phone, sizeof(phone));
    if (rv == WA_ENOTFOUND) {
        gw_reply_error(r, WA_EINVAL, "phone: required");
        return;
    }
    if (rv != WA_OK || !gw_valid_phone(phone)) {
        gw_reply_error(r, WA_EINVAL,
                       "phone: must be E.164, e.g. +41791234567 (write + "
                       "as %2B or +)");
        return;
    }
    if ((args = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(args, "phone", phone) == NULL) {
        cJSON_Delete(args);
        gw_reply_error(r, WA_ENOMEM, NULL);
        return;
    }
    relay(r, WA_OP_WA_CHAT_BY_PHONE, args, SHAPE_CHAT);
    cJSON_Delete(args);
}
