/*
 * fake-session - a stand-in for session-svc on the bus, for the gateway's
 * integration tests (no browser, no WhatsApp):
 *
 *   fake-session <store-url> <listen-url> <instance-id> [capacity]
 *
 * Registers with store-svc as <instance-id> at <listen-url>, heartbeats as
 * store-svc asks, and answers the wa.* operations with canned data that
 * echoes what it was asked (user, chatId, limit, phone), so a test can see
 * exactly what the gateway forwarded:
 *
 *   wa.connect        disconnected -> {"status":"initializing"} (and the
 *                     user becomes ready); otherwise {"status":<current>}
 *   wa.disconnect     {"status":"disconnected"}
 *   wa.status         {"status":<current>}
 *   wa.chats          not_ready unless ready; one chat named after the user
 *   wa.messages       not_ready unless ready; one message echoing the args
 *   wa.send           not_ready unless ready; {"id","timestamp"}, idempotent
 *                     by (user, rid); message "sleep" answers after 10 s
 *   wa.chat_by_phone  +41790000000 has no chat (not_found); otherwise a chat
 *                     whose unreadCount is how many messages the user sent
 *
 * Exit 0 on SIGTERM; 2 on bad usage.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wa/bus.h"
#include "wa/log.h"
#include "wa/service.h"

#define MAX_USERS 256
#define MAX_SENT 4096

typedef struct user {
    char id[WA_USER_MAX + 1];
    char status[16];
    int sent;
} user_t;

typedef struct sent {
    char user[WA_USER_MAX + 1];
    char rid[WA_RID_MAX + 1];
    int n;
} sent_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static user_t users[MAX_USERS];
static int nusers;
static sent_t sent[MAX_SENT];
static int nsent;
static const char *instance_id;

/* The user's record (created disconnected). Caller holds mu. */
static user_t *user_of(const char *id)
{
    for (int i = 0; i < nusers; i++) {
        if (strcmp(users[i].id, id) == 0)
            return &users[i];
    }
    if (nusers == MAX_USERS)
        return NULL;
    snprintf(users[nusers].id, sizeof(users[nusers].id), "%s", id);
    snprintf(users[nusers].status, sizeof(users[nusers].status),
             "disconnected");
    return &users[nusers++];
}

static const char *arg_string(const cJSON *args, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, name);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static cJSON *status_data(const char *status)
{
    cJSON *d = cJSON_CreateObject();

    cJSON_AddStringToObject(d, "status", status);
    return d;
}

static cJSON *chat(const char *id, const char *name, int unread)
{
    cJSON *c = cJSON_CreateObject();

    cJSON_AddStringToObject(c, "id", id);
    cJSON_AddStringToObject(c, "name", name);
    cJSON_AddBoolToObject(c, "isGroup", 0);
    cJSON_AddNumberToObject(c, "unreadCount", unread);
    cJSON_AddNumberToObject(c, "timestamp", 1700000000);
    cJSON_AddNullToObject(c, "lastMessage");
    return c;
}

/* Answer one request; returns data or sets *err. Caller holds mu. */
static cJSON *serve(const wa_request_t *req, wa_err_t *err, int *sleep_s)
{
    user_t *u = req->op == WA_OP_PING ? NULL : user_of(req->user);
    char buf[256];
    cJSON *d, *list;

    if (req->op != WA_OP_PING && u == NULL) {
        *err = WA_EFULL;
        return NULL;
    }
    switch (req->op) {
    case WA_OP_PING:
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "service", "fake-session");
        cJSON_AddStringToObject(d, "instance", instance_id);
        return d;
    case WA_OP_WA_CONNECT:
        if (strcmp(u->status, "disconnected") == 0) {
            snprintf(u->status, sizeof(u->status), "ready");
            return status_data("initializing");
        }
        return status_data(u->status);
    case WA_OP_WA_DISCONNECT:
        snprintf(u->status, sizeof(u->status), "disconnected");
        return status_data("disconnected");
    case WA_OP_WA_STATUS:
        return status_data(u->status);
    default:
        break;
    }
    if (strcmp(u->status, "ready") != 0) {
        *err = WA_ENOTREADY;
        return NULL;
    }
    switch (req->op) {
    case WA_OP_WA_CHATS:
        snprintf(buf, sizeof(buf), "chat of %s", u->id);
        d = cJSON_CreateObject();
        list = cJSON_AddArrayToObject(d, "chats");
        cJSON_AddItemToArray(list, chat("41791234567@c.us", buf, u->sent));
        return d;
    case WA_OP_WA_MESSAGES: {
        const cJSON *limit =
            cJSON_GetObjectItemCaseSensitive(req->args, "limit");
        const char *chat_id = arg_string(req->args, "chatId");
        cJSON *m;

        d = cJSON_CreateObject();
        list = cJSON_AddArrayToObject(d, "messages");
        m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", "m1");
        cJSON_AddStringToObject(m, "chatId", chat_id ? chat_id : "");
        cJSON_AddStringToObject(m, "from", chat_id ? chat_id : "");
        cJSON_AddStringToObject(m, "to", u->id);
        snprintf(buf, sizeof(buf), "user=%s limit=%d", u->id,
                 cJSON_IsNumber(limit) ? limit->valueint : -1);
        cJSON_AddStringToObject(m, "body", buf);
        cJSON_AddNumberToObject(m, "timestamp", 1700000000);
        cJSON_AddBoolToObject(m, "fromMe", 0);
        cJSON_AddStringToObject(m, "type", "chat");
        cJSON_AddItemToArray(list, m);
        return d;
    }
    case WA_OP_WA_SEND: {
        const char *msg = arg_string(req->args, "message");
        int n = -1;

        if (msg == NULL || arg_string(req->args, "chatId") == NULL) {
            *err = WA_EINVAL;
            return NULL;
        }
        if (strcmp(msg, "sleep") == 0)
            *sleep_s = 10;
        for (int i = 0; i < nsent; i++) {
            if (strcmp(sent[i].user, u->id) == 0 &&
                strcmp(sent[i].rid, req->rid) == 0)
                n = sent[i].n;
        }
        if (n < 0) {
            if (nsent == MAX_SENT) {
                *err = WA_EFULL;
                return NULL;
            }
            n = ++u->sent;
            snprintf(sent[nsent].user, sizeof(sent[nsent].user), "%s", u->id);
            snprintf(sent[nsent].rid, sizeof(sent[nsent].rid), "%s", req->rid);
            sent[nsent++].n = n;
        }
        snprintf(buf, sizeof(buf), "sent-%s-%d", u->id, n);
        d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "id", buf);
        cJSON_AddNumberToObject(d, "timestamp", 1700000000 + n);
        return d;
    }
    case WA_OP_WA_CHAT_BY_PHONE: {
        const char *phone = arg_string(req->args, "phone");

        if (phone == NULL || strcmp(phone, "+41790000000") == 0) {
            *err = WA_ENOTFOUND;
            return NULL;
        }
        snprintf(buf, sizeof(buf), "%s@c.us", phone + 1);
        d = cJSON_CreateObject();
        cJSON_AddItemToObject(d, "chat", chat(buf, phone, u->sent));
        return d;
    }
    default:
        *err = WA_EUNKNOWNOP;
        return NULL;
    }
}

static void handle(void *arg, wa_bus_job_t *job)
{
    wa_err_t err = WA_OK;
    int sleep_s = 0;
    cJSON *data;

    (void)arg;
    pthread_mutex_lock(&mu);
    data = serve(wa_bus_job_request(job), &err, &sleep_s);
    pthread_mutex_unlock(&mu);
    if (sleep_s > 0)
        sleep((unsigned)sleep_s); /* a slow browser, on nng's thread */
    if (data == NULL)
        wa_bus_reply_err(job, err == WA_OK ? WA_ENOMEM : err, NULL);
    else
        wa_bus_reply_ok(job, data);
}

/* instance.register; *beat_ms from the answer. */
static wa_err_t register_instance(nng_socket store, const char *url,
                                  long capacity, long *beat_ms)
{
    cJSON *args = cJSON_CreateObject();
    char rid[WA_RID_MAX + 1];
    wa_reply_t rep;
    wa_err_t rv;
    const cJSON *b;

    cJSON_AddStringToObject(args, "instance", instance_id);
    cJSON_AddStringToObject(args, "url", url);
    cJSON_AddNumberToObject(args, "capacity", (double)capacity);
    wa_rid_new(rid, sizeof(rid));
    rv = wa_bus_call(store, WA_OP_INSTANCE_REGISTER, "", rid, args, 2000, &rep);
    cJSON_Delete(args);
    if (rv == WA_OK) {
        b = cJSON_GetObjectItemCaseSensitive(rep.data, "heartbeatMs");
        if (cJSON_IsNumber(b) && b->valuedouble >= 100)
            *beat_ms = (long)b->valuedouble;
    }
    wa_reply_clear(&rep);
    return rv;
}

static wa_err_t heartbeat(nng_socket store)
{
    cJSON *args = cJSON_CreateObject();
    char rid[WA_RID_MAX + 1];
    wa_reply_t rep;
    wa_err_t rv;

    pthread_mutex_lock(&mu);
    cJSON_AddStringToObject(args, "instance", instance_id);
    cJSON_AddNumberToObject(args, "sessions", nusers);
    pthread_mutex_unlock(&mu);
    wa_rid_new(rid, sizeof(rid));
    rv =
        wa_bus_call(store, WA_OP_INSTANCE_HEARTBEAT, "", rid, args, 2000, &rep);
    cJSON_Delete(args);
    wa_reply_clear(&rep);
    return rv;
}

int main(int argc, char **argv)
{
    nng_socket store = NNG_SOCKET_INITIALIZER, rep = NNG_SOCKET_INITIALIZER;
    wa_bus_server_t *srv = NULL;
    long capacity = 50, beat_ms = 2000;
    bool registered = false;
    int status = 1;
    wa_err_t rv;

    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: fake-session <store-url> <listen-url> "
                        "<instance-id> [capacity]\n");
        return 2;
    }
    instance_id = argv[3];
    if (argc == 5)
        capacity = strtol(argv[4], NULL, 10);
    wa_log_init("fake-session", WA_LOG_INFO);
    if (wa_service_signals() != WA_OK ||
        wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, argv[1], NULL, &store) !=
            WA_OK ||
        wa_bus_open(WA_SOCK_REP, WA_SOCK_LISTEN, argv[2], NULL, &rep) !=
            WA_OK ||
        wa_bus_server_start(rep, 8, handle, NULL, &srv) != WA_OK) {
        wa_error(NULL, "cannot start on %s", argv[2]);
        goto out;
    }
    wa_info(NULL, "listening on %s as %s", argv[2], instance_id);
    while (!wa_service_stopping()) {
        if (!registered) {
            rv = register_instance(store, argv[2], capacity, &beat_ms);
            registered = rv == WA_OK;
            if (registered)
                wa_info(NULL, "registered with store-svc");
        } else if ((rv = heartbeat(store)) == WA_ENOTFOUND) {
            registered = false;
            continue;
        }
        wa_service_wait(registered ? (int)beat_ms / 2 : 200);
    }
    status = 0;
out:
    if (srv != NULL)
        wa_bus_server_stop(srv);
    if (nng_socket_id(rep) > 0)
        nng_close(rep);
    if (nng_socket_id(store) > 0)
        nng_close(store);
    return status;
}
