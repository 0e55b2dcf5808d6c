/*
 * channel.c - the server side of the page channel: each frame a page sends
 * (protocol in fakewa.h), checked field by field and answered. A refused
 * frame gets an "error" frame naming what was wrong (and its rid, if it had
 * one); the page stays open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_int.h"
#include "wa/envelope.h"
#include "wa/log.h"

#define WHY_MAX 160

typedef struct req {
    fw_state_t *st;
    page_t *p;
    const cJSON *f;
    char why[WHY_MAX];
} req_t;

static wa_err_t refuse(req_t *r, wa_err_t err, const char *why)
{
    snprintf(r->why, sizeof(r->why), "%s", why);
    return err;
}

static const char *str_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool key_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n != FW_KEY_LEN || s[n - 1] != '=')
        return false;
    for (size_t i = 0; i + 1 < n; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return false;
    }
    return true;
}

static bool token_valid(const char *s)
{
    if (s == NULL || strlen(s) != FW_TOKEN_LEN)
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    }
    return true;
}

static bool msgid_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n < 4 || n > FW_MSGID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* {"phone","token"[,"name"]} of a stored login. */
static wa_err_t login_fields(req_t *r, const cJSON *login, char *phone,
                             const char **token, const char **name)
{
    if (!cJSON_IsObject(login))
        return refuse(r, WA_EINVAL, "login: must be an object");
    if (fw_phone_normalize(str_field(login, "phone"), phone) != WA_OK)
        return refuse(r, WA_EINVAL, "login.phone: must be digits");
    *token = str_field(login, "token");
    if (!token_valid(*token))
        return refuse(r, WA_EINVAL, "login.token: must be 32 hex digits");
    *name = str_field(login, "name");
    if (*name != NULL &&
        fw_check_text(*name, strlen(*name), FW_NAME_MAX, false) != WA_OK)
        *name = NULL;
    return WA_OK;
}

static wa_err_t on_hello(req_t *r)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(r->f, "keys");
    const cJSON *login = cJSON_GetObjectItemCaseSensitive(r->f, "login");
    const char *platform = str_field(r->f, "platform");
    const char *token, *name;
    char phone[FW_PHONE_MAX + 1];
    page_t *p = r->p;
    account_t *a;
    device_t *d;
    wa_err_t rv;

    if (p->state != PS_OPENING)
        return refuse(r, WA_EINVAL, "hello: only once");
    if (platform == NULL || strlen(platform) < 2 || strlen(platform) > 16 ||
        strspn(platform, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(platform))
        return refuse(r, WA_EINVAL, "hello.platform: must be 2..16 A-Z");
    if (!cJSON_IsObject(keys) || !key_valid(str_field(keys, "noise")) ||
        !key_valid(str_field(keys, "identity")) ||
        !key_valid(str_field(keys, "adv")))
        return refuse(r, WA_EINVAL,
                      "hello.keys: noise, identity, adv: 32 bytes base64");
    state__copy(p->noise, sizeof(p->noise), str_field(keys, "noise"));
    state__copy(p->identity, sizeof(p->identity), str_field(keys, "identity"));
    state__copy(p->adv, sizeof(p->adv), str_field(keys, "adv"));
    state__copy(p->platform, sizeof(p->platform), platform);

    if (login == NULL || cJSON_IsNull(login)) {
        p->pair_at = state__now_ms(r->st);
        return state__page_new_ref(r->st, p, p->pair_at);
    }
    if ((rv = login_fields(r, login, phone, &token, &name)) != WA_OK)
        return rv;
    if ((a = state__account_find(r->st, phone)) == NULL) {
        /* fakewa restarted since this login was made: adopt it. */
        if ((rv = state__account_get(r->st, phone, name, &a)) != WA_OK ||
            (rv = state__device_add(r->st, a, token, &d)) != WA_OK)
            return refuse(r, rv, "hello: cannot restore this login");
    } else if ((d = state__device_find(a, token)) == NULL) {
        /* Unlinked while the browser was away. */
        state__page_logout(r->st, p, "unlinked");
        return WA_OK;
    }
    state__page_connect(r->st, p, a, d);
    return WA_OK;
}

static wa_err_t on_login(req_t *r)
{
    const cJSON *login = cJSON_GetObjectItemCaseSensitive(r->f, "login");
    char phone[FW_PHONE_MAX + 1];
    const char *token, *name;
    account_t *a;
    device_t *d;
    wa_err_t rv;

    if (r->p->state != PS_PAIRING)
        return refuse(r, WA_EINVAL, "login: not pairing");
    if ((rv = login_fields(r, login, phone, &token, &name)) != WA_OK)
        return rv;
    if (strcmp(phone, r->p->phone) != 0 || strcmp(token, r->p->token) != 0 ||
        (a = state__account_find(r->st, phone)) == NULL ||
        (d = state__device_find(a, token)) == NULL)
        return refuse(r, WA_EINVAL, "login: not the login this page was given");
    state__page_connect(r->st, r->p, a, d);
    return WA_OK;
}

static wa_err_t on_refresh(req_t *r)
{
    /* Like the real Cmd.refreshQR(): a no-op unless a QR is due. */
    if (r->p->state != PS_UNPAIRED && r->p->state != PS_IDLE)
        return WA_OK;
    r->p->pair_at = state__now_ms(r->st);
    return state__page_new_ref(r->st, r->p, r->p->pair_at);
}

/* The account of a connected page. */
static wa_err_t connected(req_t *r, account_t **a, device_t **d)
{
    if (r->p->state != PS_CONNECTED ||
        (*a = state__account_find(r->st, r->p->phone)) == NULL ||
        (*d = state__device_find(*a, r->p->token)) == NULL)
        return refuse(r, WA_ENOTREADY, "not logged in");
    return WA_OK;
}

static const char *rid_field(req_t *r)
{
    const char *rid = str_field(r->f, "rid");

    return rid != NULL && wa_check_rid(rid) == WA_OK ? rid : NULL;
}

static wa_err_t on_send(req_t *r)
{
    const char *rid = rid_field(r), *id = str_field(r->f, "id");
    const char *to = str_field(r->f, "to"), *body = str_field(r->f, "body");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->f, "t");
    char serial[FW_SERIAL_MAX + 1];
    account_t *a;
    device_t *d;
    sent_t *s = NULL;
    chat_t *c;
    msg_t m = {.from_me = true, .ack = 1};
    cJSON *f;
    wa_err_t rv;

    if ((rv = connected(r, &a, &d)) != WA_OK)
        return rv;
    if (rid == NULL)
        return refuse(r, WA_EINVAL, "send.rid: required");
    if (!msgid_valid(id))
        return refuse(r, WA_EINVAL, "send.id: 4..64 letters and digits");
    if (!fw_wid_valid(to))
        return refuse(r, WA_EINVAL, "send.to: not a chat id");
    if (body == NULL)
        return refuse(r, WA_EINVAL, "send.body: must be a string");
    if ((rv = fw_check_text(body, strlen(body), FW_BODY_MAX, false)) != WA_OK)
        return refuse(r, rv, "send.body: 1..65536 bytes of UTF-8");
    if (!cJSON_IsNumber(t) || t->valuedouble < 1e9 || t->valuedouble > 1e11 ||
        t->valuedouble != (double)(long long)t->valuedouble)
        return refuse(r, WA_EINVAL, "send.t: unix seconds");
    snprintf(serial, sizeof(serial), "true_%s_%s", to, id);

    for (size_t i = 0; i < a->nsent && s == NULL; i++) {
        if (strcmp(a->sent[i].id, serial) == 0)
            s = &a->sent[i];
    }
    if (s == NULL) {
        /* New: record it, file it in its chat, tell the other pages. */
        if ((c = state__chat_find(a, to)) == NULL) {
            if (strstr(to, "@g.us") != NULL)
                return refuse(r, WA_ENOTFOUND, "send.to: no such group");
            if ((rv = state__chat_add(a, to, state__contact_name(a, to), &c)) !=
                WA_OK)
                return refuse(r, rv, "send.to: cannot open a chat");
        }
        if (a->nsent == SENT_MAX) {
            free(a->sent[0].body);
            memmove(a->sent, a->sent + 1, (a->nsent - 1) * sizeof(*a->sent));
            a->nsent--;
        }
        if (!state__grow(&a->sent, &a->sent_cap, a->nsent, sizeof(*a->sent)) ||
            (m.body = strdup(body)) == NULL)
            return refuse(r, WA_ENOMEM, "out of memory");
        state__copy(m.id, sizeof(m.id), id);
        m.t = (long long)t->valuedouble;
        s = &a->sent[a->nsent];
        memset(s, 0, sizeof(*s));
        if ((s->body = strdup(body)) == NULL ||
            (rv = state__chat_append(a, c, &m)) != WA_OK) {
            free(s->body);
            free(m.body);
            return refuse(r, WA_ENOMEM, "out of memory");
        }
        state__copy(s->to, sizeof(s->to), to);
        state__copy(s->id, sizeof(s->id), serial);
        s->t = m.t;
        a->nsent++;
        for (size_t i = 0; i < r->st->npages; i++) {
            page_t *o = r->st->pages[i];

            if (o != r->p && o->state == PS_CONNECTED &&
                strcmp(o->phone, a->phone) == 0)
                state__emit(r->st, o,
                            state__msg_frame(a, c, &c->msgs[c->n - 1]));
        }
        wa_info(NULL, "page %llu: account %s sent a message",
                (unsigned long long)r->p->id, a->phone);
    }
    if ((f = state__frame_new("sendAck")) != NULL &&
        (!state__add_str(f, "rid", rid) || !state__add_str(f, "id", serial) ||
         !state__add_num(f, "t", (double)s->t))) {
        cJSON_Delete(f);
        f = NULL;
    }
    state__emit(r->st, r->p, f);
    /* Delivered to the recipient's phone: numbers on WhatsApp and groups. */
    if (fw_on_whatsapp(to) || strstr(to, "@g.us") != NULL) {
        if ((f = state__frame_new("ack")) != NULL &&
            (!state__add_str(f, "id", serial) ||
             !state__add_num(f, "ack", 2))) {
            cJSON_Delete(f);
            f = NULL;
        }
        state__emit(r->st, r->p, f);
    }
    return WA_OK;
}

static wa_err_t on_earlier(req_t *r)
{
    const char *rid = rid_field(r), *wid = str_field(r->f, "chat");
    const cJSON *before = cJSON_GetObjectItemCaseSensitive(r->f, "before");
    size_t end;
    account_t *a;
    device_t *d;
    chat_t *c;
    cJSON *f, *msgs;
    bool more;
    wa_err_t rv;

    if ((rv = connected(r, &a, &d)) != WA_OK)
        return rv;
    if (rid == NULL)
        return refuse(r, WA_EINVAL, "earlier.rid: required");
    if (!fw_wid_valid(wid))
        return refuse(r, WA_EINVAL, "earlier.chat: not a chat id");
    if (before != NULL && !cJSON_IsNull(before) &&
        !msgid_valid(cJSON_GetStringValue(before)))
        return refuse(r, WA_EINVAL, "earlier.before: a message id or null");
    c = state__chat_find(a, wid);
    end = c != NULL ? c->n : 0;
    if (c != NULL && cJSON_IsString(before)) {
        for (end = 0; end < c->n; end++) {
            if (strcmp(c->msgs[end].id, before->valuestring) == 0)
                break;
        }
        if (end == c->n)
            return refuse(r, WA_ENOTFOUND, "earlier.before: no such message");
    }
    if ((f = state__frame_new("earlier")) == NULL ||
        !state__add_str(f, "rid", rid) ||
        (msgs = cJSON_AddArrayToObject(f, "msgs")) == NULL ||
        (c != NULL && !state__msgs_page(a, c, d, end, msgs, &more)) ||
        !state__add_bool(f, "more", c != NULL && more)) {
        cJSON_Delete(f);
        return refuse(r, WA_ENOMEM, "out of memory");
    }
    state__emit(r->st, r->p, f);
    return WA_OK;
}

static wa_err_t on_exists(req_t *r)
{
    const char *rid = rid_field(r), *wid = str_field(r->f, "wid");
    account_t *a;
    device_t *d;
    cJSON *f;
    wa_err_t rv;

    if ((rv = connected(r, &a, &d)) != WA_OK)
        return rv;
    if (rid == NULL)
        return refuse(r, WA_EINVAL, "exists.rid: required");
    if (!fw_wid_valid(wid))
        return refuse(r, WA_EINVAL, "exists.wid: not a chat id");
    if ((f = state__frame_new("exists")) == NULL ||
        !state__add_str(f, "rid", rid) ||
        !state__add_bool(f, "exists",
                         fw_on_whatsapp(wid) ||
                             state__chat_find(a, wid) != NULL)) {
        cJSON_Delete(f);
        return refuse(r, WA_ENOMEM, "out of memory");
    }
    state__emit(r->st, r->p, f);
    return WA_OK;
}

static wa_err_t on_seen(req_t *r)
{
    const char *wid = str_field(r->f, "chat");
    account_t *a;
    device_t *d;
    chat_t *c;
    wa_err_t rv;

    if ((rv = connected(r, &a, &d)) != WA_OK)
        return rv;
    if (!fw_wid_valid(wid))
        return refuse(r, WA_EINVAL, "seen.chat: not a chat id");
    /* A chat only the page knows (findOrCreateLatestChat) has nothing
     * unread here. */
    if ((c = state__chat_find(a, wid)) != NULL)
        c->unread = 0;
    return WA_OK;
}

static wa_err_t on_chatstate(req_t *r)
{
    const char *to = str_field(r->f, "to"), *state = str_field(r->f, "state");
    account_t *a;
    device_t *d;
    wa_err_t rv;

    if ((rv = connected(r, &a, &d)) != WA_OK)
        return rv;
    if (!fw_wid_valid(to))
        return refuse(r, WA_EINVAL, "chatstate.to: not a chat id");
    if (state == NULL ||
        (strcmp(state, "composing") != 0 && strcmp(state, "recording") != 0 &&
         strcmp(state, "paused") != 0))
        return refuse(r, WA_EINVAL,
                      "chatstate.state: composing, recording or paused");
    wa_debug(NULL, "page %llu: chat state %s", (unsigned long long)r->p->id,
             state);
    return WA_OK;
}

static wa_err_t on_unlink(req_t *r)
{
    char token[FW_TOKEN_LEN + 1];
    account_t *a;
    device_t *d;
    wa_err_t rv;

    if ((rv = connected(r, &a, &d)) != WA_OK)
        return rv;
    state__copy(token, sizeof(token), d->token);
    state__device_unlink(r->st, a, token, "logout");
    wa_info(NULL, "page %llu: logged out from the web",
            (unsigned long long)r->p->id);
    return WA_OK;
}

static const struct {
    const char *type;
    wa_err_t (*fn)(req_t *r);
} handlers[] = {
    {"hello", on_hello}, {"login", on_login},         {"refresh", on_refresh},
    {"send", on_send},   {"earlier", on_earlier},     {"exists", on_exists},
    {"seen", on_seen},   {"chatstate", on_chatstate}, {"unlink", on_unlink},
};

wa_err_t fw_state_page_frame(fw_state_t *st, uint64_t id, const char *buf,
                             size_t len)
{
    req_t r = {.st = st};
    cJSON *json = NULL, *f;
    const char *type;
    wa_err_t rv = WA_EINVAL;

    pthread_mutex_lock(&st->mu);
    if ((r.p = state__page_find(st, id)) == NULL) {
        pthread_mutex_unlock(&st->mu);
        return WA_ENOTFOUND;
    }
    if (len > FW_FRAME_MAX) {
        rv = refuse(&r, WA_ETOOBIG, "frame: too large");
    } else if ((rv = fw_json_parse(buf, len, &json)) != WA_OK) {
        refuse(&r, rv, "frame: not one JSON value in UTF-8");
    } else if (!cJSON_IsObject(json) ||
               (type = str_field(json, "type")) == NULL) {
        r.f = json;
        rv = refuse(&r, WA_EINVAL, "frame: an object with a type");
    } else {
        r.f = json;
        rv = refuse(&r, WA_EINVAL, "frame: unknown type");
        for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
            if (strcmp(type, handlers[i].type) == 0) {
                rv = handlers[i].fn(&r);
                break;
            }
        }
    }
    if (rv != WA_OK) {
        const char *rid = r.f != NULL ? rid_field(&r) : NULL;

        wa_warn(NULL, "page %llu: refused a frame: %s", (unsigned long long)id,
                r.why);
        if ((f = state__frame_new("error")) != NULL &&
            ((rid != NULL && !state__add_str(f, "rid", rid)) ||
             !state__add_str(f, "code", wa_err_code(rv)) ||
             !state__add_str(f, "message", r.why))) {
            cJSON_Delete(f);
            f = NULL;
        }
        state__emit(st, r.p, f);
    }
    pthread_mutex_unlock(&st->mu);
    cJSON_Delete(json);
    return rv;
}
