/*
 * state.c - the fake WhatsApp server behind fakewa: accounts with their
 * history, linked devices and sent messages; the open pages with their QR
 * codes; and the operations of the control API. The frames pages send are
 * handled in channel.c (protocol in fakewa.h).
 *
 * One mutex guards everything. Frames for pages are produced and handed to
 * the send callback while it is held, so a page receives them in the order
 * they were produced, and a page closed by fw_state_page_close is never
 * written to again.
 *
 * Delivery follows the real service: each linked device remembers the last
 * message it was given (`delivered`); a message that arrives while a device
 * has no open page reaches it as a new message when it reconnects.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "state_int.h"
#include "wa/envelope.h"
#include "wa/log.h"
#include "wa/service.h"

static const char *const page_state_names[] = {
    "OPENING", "UNPAIRED", "UNPAIRED_IDLE", "PAIRING", "CONNECTED",
};

/* ---- small helpers ------------------------------------------------------- */

/* Make room for one more element in *v (n used, *cap allocated). */
bool state__grow(void *v, size_t *cap, size_t n, size_t elem)
{
    void **pv = v;
    size_t ncap;
    void *nv;

    if (n < *cap)
        return true;
    ncap = *cap == 0 ? 8 : *cap * 2;
    if ((nv = realloc(*pv, ncap * elem)) == NULL)
        return false;
    *pv = nv;
    *cap = ncap;
    return true;
}

static wa_err_t random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return WA_EINTERNAL;
        p += n;
        len -= (size_t)n;
    }
    return WA_OK;
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0, o = 0;

    for (; i + 2 < n; i += 3) {
        out[o++] = a[in[i] >> 2];
        out[o++] = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        out[o++] = a[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        out[o++] = a[in[i + 2] & 63];
    }
    if (i < n) {
        out[o++] = a[in[i] >> 2];
        if (i + 1 < n) {
            out[o++] = a[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
            out[o++] = a[(in[i + 1] & 15) << 2];
        } else {
            out[o++] = a[(in[i] & 3) << 4];
            out[o++] = '=';
        }
        out[o++] = '=';
    }
    out[o] = '\0';
}

/* len random bytes as upper- or lowercase hex into out (2 * len + 1). */
static wa_err_t random_hex(size_t len, bool upper, char *out)
{
    unsigned char b[32];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    wa_err_t rv;

    if (len > sizeof(b))
        return WA_EINVAL;
    if ((rv = random_bytes(b, len)) != WA_OK)
        return rv;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * len] = '\0';
    return WA_OK;
}

/* Copy src into dst[cap] if it fits. */
bool state__copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);

    if (n >= cap)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

long long state__now_ms(const fw_state_t *st)
{
    return st->o.mono_ms != NULL ? st->o.mono_ms() : wa_now_ms();
}

static long long now_s(const fw_state_t *st)
{
    return st->o.wall_s != NULL ? st->o.wall_s() : (long long)time(NULL);
}

/* The wall clock in milliseconds since the epoch; whole seconds when the
 * options give a wall_s. */
static long long now_wall_ms(const fw_state_t *st)
{
    struct timespec ts;

    if (st->o.wall_s != NULL || clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return now_s(st) * 1000;
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- accounts ------------------------------------------------------------ */

static void chat_free(chat_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->msgs[i].body);
    free(c->msgs);
    free(c->name);
    free(c);
}

static void account_free(account_t *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nchats; i++)
        chat_free(a->chats[i]);
    free(a->chats);
    for (size_t i = 0; i < a->ncontacts; i++)
        free(a->contacts[i].name);
    free(a->contacts);
    for (size_t i = 0; i < a->nsent; i++)
        free(a->sent[i].body);
    free(a->sent);
    free(a->name);
    free(a);
}

account_t *state__account_find(const fw_state_t *st, const char *phone)
{
    for (size_t i = 0; i < st->naccounts; i++) {
        if (strcmp(st->accounts[i]->phone, phone) == 0)
            return st->accounts[i];
    }
    return NULL;
}

chat_t *state__chat_find(const account_t *a, const char *wid)
{
    for (size_t i = 0; i < a->nchats; i++) {
        if (strcmp(a->chats[i]->wid, wid) == 0)
            return a->chats[i];
    }
    return NULL;
}

const char *state__contact_name(const account_t *a, const char *wid)
{
    for (size_t i = 0; i < a->ncontacts; i++) {
        if (strcmp(a->contacts[i].wid, wid) == 0)
            return a->contacts[i].name;
    }
    return NULL;
}

wa_err_t state__chat_add(account_t *a, const char *wid, const char *name,
                         chat_t **out)
{
    chat_t *c;

    if (a->nchats >= CHATS_MAX)
        return WA_EFULL;
    if (!state__grow(&a->chats, &a->chats_cap, a->nchats, sizeof(*a->chats)) ||
        (c = calloc(1, sizeof(*c))) == NULL)
        return WA_ENOMEM;
    if (name != NULL && (c->name = strdup(name)) == NULL) {
        free(c);
        return WA_ENOMEM;
    }
    state__copy(c->wid, sizeof(c->wid), wid);
    c->is_group = strstr(wid, "@g.us") != NULL;
    a->chats[a->nchats++] = c;
    *out = c;
    return WA_OK;
}

/* Append m (its body now owned by the chat) as the account's newest. */
wa_err_t state__chat_append(account_t *a, chat_t *c, msg_t *m)
{
    if (c->n == CHAT_MSGS_MAX) {
        free(c->msgs[0].body);
        memmove(c->msgs, c->msgs + 1, (c->n - 1) * sizeof(*c->msgs));
        c->n--;
    }
    if (!state__grow(&c->msgs, &c->cap, c->n, sizeof(*c->msgs)))
        return WA_ENOMEM;
    m->seq = ++a->seq;
    c->msgs[c->n++] = *m;
    if (m->t > c->t)
        c->t = m->t;
    return WA_OK;
}

static wa_err_t account_seed(account_t *a, long long t)
{
    fw_seed_t *s;
    wa_err_t rv = WA_ENOMEM;

    if ((s = malloc(sizeof(*s))) == NULL)
        return WA_ENOMEM;
    fw_seed(a->phone, t, s);
    if ((a->contacts = calloc(s->ncontacts, sizeof(*a->contacts))) == NULL)
        goto out;
    for (size_t i = 0; i < s->ncontacts; i++) {
        state__copy(a->contacts[i].wid, sizeof(a->contacts[i].wid),
                    s->contacts[i].wid);
        if ((a->contacts[i].name = strdup(s->contacts[i].name)) == NULL)
            goto out;
        a->ncontacts++;
    }
    for (size_t i = 0; i < s->nchats; i++) {
        const fw_seed_chat_t *sc = &s->chats[i];
        chat_t *c;

        if ((rv = state__chat_add(a, sc->wid, sc->name, &c)) != WA_OK)
            goto out;
        for (size_t j = 0; j < sc->nmsgs; j++) {
            const fw_seed_msg_t *sm = &sc->msgs[j];
            msg_t m = {.from_me = sm->from_me, .t = sm->t};

            m.ack = sm->from_me ? 3 : 1;
            state__copy(m.id, sizeof(m.id), sm->id);
            if (sm->author >= 0)
                state__copy(m.author, sizeof(m.author),
                            s->contacts[sm->author].wid);
            if ((m.body = strdup(sm->body)) == NULL)
                goto nomem;
            if ((rv = state__chat_append(a, c, &m)) != WA_OK) {
                free(m.body);
                goto out;
            }
        }
        c->unread = sc->unread;
    }
    rv = WA_OK;
    goto out;
nomem:
    rv = WA_ENOMEM;
out:
    free(s);
    return rv;
}

/* The account for phone, created (with its seeded history) if new. */
wa_err_t state__account_get(fw_state_t *st, const char *phone, const char *name,
                            account_t **out)
{
    char fallback[32];
    account_t *a;
    wa_err_t rv;

    if ((a = state__account_find(st, phone)) != NULL) {
        *out = a;
        return WA_OK;
    }
    if (st->naccounts >= ACCOUNTS_MAX)
        return WA_EFULL;
    if (!state__grow(&st->accounts, &st->accounts_cap, st->naccounts,
                     sizeof(*st->accounts)) ||
        (a = calloc(1, sizeof(*a))) == NULL)
        return WA_ENOMEM;
    state__copy(a->phone, sizeof(a->phone), phone);
    snprintf(a->wid, sizeof(a->wid), "%s@c.us", phone);
    if (name == NULL) {
        snprintf(fallback, sizeof(fallback), "Fake %s",
                 phone + strlen(phone) - 4);
        name = fallback;
    }
    if ((a->name = strdup(name)) == NULL) {
        account_free(a);
        return WA_ENOMEM;
    }
    if ((rv = account_seed(a, now_s(st))) != WA_OK) {
        account_free(a);
        return rv;
    }
    st->accounts[st->naccounts++] = a;
    wa_info(NULL, "account %s created", phone);
    *out = a;
    return WA_OK;
}

device_t *state__device_find(account_t *a, const char *token)
{
    for (size_t i = 0; i < a->ndevices; i++) {
        if (strcmp(a->devices[i].token, token) == 0)
            return &a->devices[i];
    }
    return NULL;
}

wa_err_t state__device_add(const fw_state_t *st, account_t *a,
                           const char *token, device_t **out)
{
    device_t *d;

    if (a->ndevices >= DEVICES_MAX)
        return WA_ECONFLICT;
    d = &a->devices[a->ndevices++];
    state__copy(d->token, sizeof(d->token), token);
    d->delivered = a->seq;
    d->linked_at = now_wall_ms(st);
    *out = d;
    return WA_OK;
}

/* Is a page logged in as device d of a right now? */
static bool device_online(const fw_state_t *st, const account_t *a,
                          const device_t *d)
{
    for (size_t i = 0; i < st->npages; i++) {
        const page_t *p = st->pages[i];

        if (p->state == PS_CONNECTED && strcmp(p->phone, a->phone) == 0 &&
            strcmp(p->token, d->token) == 0)
            return true;
    }
    return false;
}

/* Has device d still to be given m as a new message? */
bool state__pending(const device_t *d, const msg_t *m)
{
    return !m->from_me && m->seq > d->delivered;
}

/* ---- pages and frames ---------------------------------------------------- */

page_t *state__page_find(const fw_state_t *st, uint64_t id)
{
    for (size_t i = 0; i < st->npages; i++) {
        if (st->pages[i]->id == id)
            return st->pages[i];
    }
    return NULL;
}

static void send_text(const fw_state_t *st, const page_t *p, const char *text)
{
    if (p->conn != NULL && st->o.send != NULL)
        st->o.send(st->o.send_arg, p->conn, text, strlen(text));
}

/* Send frame to p and free it. A NULL frame (out of memory) is logged. */
void state__emit(const fw_state_t *st, const page_t *p, cJSON *frame)
{
    char *text = frame != NULL ? cJSON_PrintUnformatted(frame) : NULL;

    if (text == NULL)
        wa_warn(NULL, "page %llu: out of memory for a frame",
                (unsigned long long)p->id);
    else
        send_text(st, p, text);
    free(text);
    cJSON_Delete(frame);
}

cJSON *state__frame_new(const char *type)
{
    cJSON *f = cJSON_CreateObject();

    if (f != NULL && cJSON_AddStringToObject(f, "type", type) == NULL) {
        cJSON_Delete(f);
        return NULL;
    }
    return f;
}

/* Add s (NULL: JSON null) under key; false on out of memory. */
bool state__add_str(cJSON *o, const char *key, const char *s)
{
    return s != NULL ? cJSON_AddStringToObject(o, key, s) != NULL
                     : cJSON_AddNullToObject(o, key) != NULL;
}

bool state__add_num(cJSON *o, const char *key, double v)
{
    return cJSON_AddNumberToObject(o, key, v) != NULL;
}

bool state__add_bool(cJSON *o, const char *key, bool v)
{
    return cJSON_AddBoolToObject(o, key, v) != NULL;
}

static cJSON *msg_json(const account_t *a, const chat_t *c, const msg_t *m)
{
    cJSON *o = cJSON_CreateObject();
    const char *notify = NULL;
    bool ok;

    if (o == NULL)
        return NULL;
    if (!m->from_me)
        notify =
            state__contact_name(a, m->author[0] != '\0' ? m->author : c->wid);
    ok = state__add_str(o, "id", m->id) &&
         state__add_bool(o, "fromMe", m->from_me) &&
         state__add_str(o, "chat", c->wid) &&
         state__add_str(o, "from", m->from_me ? a->wid : c->wid) &&
         state__add_str(o, "to", m->from_me ? c->wid : a->wid) &&
         (m->author[0] == '\0' || state__add_str(o, "author", m->author)) &&
         (notify == NULL || state__add_str(o, "notifyName", notify)) &&
         state__add_str(o, "body", m->body) &&
         state__add_str(o, "type", "chat") &&
         state__add_num(o, "t", (double)m->t) &&
         state__add_num(o, "ack", m->ack);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *state__msg_frame(const account_t *a, const chat_t *c, const msg_t *m)
{
    cJSON *f = state__frame_new("msg"), *j = msg_json(a, c, m);

    if (f == NULL || j == NULL || !cJSON_AddItemToObject(f, "msg", j)) {
        cJSON_Delete(f);
        cJSON_Delete(j);
        return NULL;
    }
    return f;
}

/*
 * Up to FW_PAGE_MSGS messages of c before index `end` (exclusive) that d
 * already had, oldest first, into arr; *more: are there older ones.
 */
bool state__msgs_page(const account_t *a, const chat_t *c, const device_t *d,
                      size_t end, cJSON *arr, bool *more)
{
    size_t idx[FW_PAGE_MSGS], k = 0, i = end;

    while (i > 0 && k < FW_PAGE_MSGS) {
        i--;
        if (d == NULL || !state__pending(d, &c->msgs[i]))
            idx[k++] = i;
    }
    *more = false;
    while (i > 0 && !*more) {
        i--;
        *more = d == NULL || !state__pending(d, &c->msgs[i]);
    }
    while (k > 0) {
        cJSON *j = msg_json(a, c, &c->msgs[idx[--k]]);

        if (j == NULL || !cJSON_AddItemToArray(arr, j)) {
            cJSON_Delete(j);
            return false;
        }
    }
    return true;
}

static cJSON *sync_frame(const account_t *a, const device_t *d)
{
    cJSON *f = state__frame_new("sync"), *me, *contacts, *chats;

    if (f == NULL || (me = cJSON_AddObjectToObject(f, "me")) == NULL ||
        !state__add_str(me, "phone", a->phone) ||
        !state__add_str(me, "wid", a->wid) ||
        !state__add_str(me, "name", a->name) ||
        !state__add_str(me, "platform", PHONE_PLATFORM) ||
        (contacts = cJSON_AddArrayToObject(f, "contacts")) == NULL ||
        (chats = cJSON_AddArrayToObject(f, "chats")) == NULL)
        goto fail;
    for (size_t i = 0; i < a->ncontacts; i++) {
        cJSON *k = cJSON_CreateObject();

        if (k == NULL || !cJSON_AddItemToArray(contacts, k) ||
            !state__add_str(k, "id", a->contacts[i].wid) ||
            !state__add_str(k, "name", a->contacts[i].name))
            goto fail;
    }
    for (size_t i = 0; i < a->nchats; i++) {
        const chat_t *c = a->chats[i];
        cJSON *o = cJSON_CreateObject(), *msgs;
        bool more;

        if (o == NULL || !cJSON_AddItemToArray(chats, o) ||
            !state__add_str(o, "id", c->wid) ||
            !state__add_str(o, "name", c->name) ||
            !state__add_bool(o, "isGroup", c->is_group) ||
            !state__add_num(o, "unreadCount", (double)c->unread) ||
            !state__add_num(o, "t", (double)c->t) ||
            (msgs = cJSON_AddArrayToObject(o, "msgs")) == NULL ||
            !state__msgs_page(a, c, d, c->n, msgs, &more) ||
            !state__add_bool(o, "more", more))
            goto fail;
    }
    return f;
fail:
    cJSON_Delete(f);
    return NULL;
}

typedef struct missed {
    const chat_t *c;
    const msg_t *m;
} missed_t;

static int cmp_seq(const void *x, const void *y)
{
    const msg_t *a = ((const missed_t *)x)->m, *b = ((const missed_t *)y)->m;

    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* p logs in as device d of a: the history, then what d missed, as new. */
void state__page_connect(fw_state_t *st, page_t *p, account_t *a, device_t *d)
{
    missed_t *missed = NULL;
    size_t n = 0, k = 0;

    p->state = PS_CONNECTED;
    p->qr[0] = '\0';
    state__copy(p->phone, sizeof(p->phone), a->phone);
    state__copy(p->token, sizeof(p->token), d->token);
    state__emit(st, p, sync_frame(a, d));

    for (size_t i = 0; i < a->nchats; i++) {
        for (size_t j = 0; j < a->chats[i]->n; j++)
            n += state__pending(d, &a->chats[i]->msgs[j]);
    }
    if (n > 0 && (missed = calloc(n, sizeof(*missed))) == NULL)
        wa_warn(NULL, "page %llu: out of memory for missed messages",
                (unsigned long long)p->id);
    for (size_t i = 0; i < a->nchats && missed != NULL; i++) {
        for (size_t j = 0; j < a->chats[i]->n; j++) {
            if (state__pending(d, &a->chats[i]->msgs[j]))
                missed[k++] = (missed_t){a->chats[i], &a->chats[i]->msgs[j]};
        }
    }
    if (k > 1)
        qsort(missed, k, sizeof(*missed), cmp_seq);
    for (size_t i = 0; i < k; i++)
        state__emit(st, p, state__msg_frame(a, missed[i].c, missed[i].m));
    free(missed);
    d->delivered = a->seq;
    wa_info(NULL, "page %llu: logged in as %s", (unsigned long long)p->id,
            a->phone);
}

/* Issue p a new QR ref and show it (UNPAIRED). */
wa_err_t state__page_new_ref(fw_state_t *st, page_t *p, long long now)
{
    unsigned char raw[48];
    cJSON *f;
    wa_err_t rv;

    if ((rv = random_bytes(raw, sizeof(raw))) != WA_OK)
        return rv;
    memcpy(p->ref, "2@", 2);
    base64(raw, sizeof(raw), p->ref + 2);
    snprintf(p->qr, sizeof(p->qr), "%s,%s,%s,%s,%s", p->ref, p->noise,
             p->identity, p->adv, p->platform);
    p->state = PS_UNPAIRED;
    p->ref_at = now;
    if ((f = state__frame_new("ref")) != NULL &&
        (!state__add_str(f, "ref", p->ref) ||
         !state__add_num(f, "ttlMs", (double)st->o.ref_interval_ms))) {
        cJSON_Delete(f);
        f = NULL;
    }
    state__emit(st, p, f);
    return WA_OK;
}

void state__page_logout(fw_state_t *st, page_t *p, const char *reason)
{
    cJSON *f = state__frame_new("logout");

    if (f != NULL && !state__add_str(f, "reason", reason)) {
        cJSON_Delete(f);
        f = NULL;
    }
    state__emit(st, p, f);
    p->state = PS_OPENING;
    p->phone[0] = '\0';
    p->token[0] = '\0';
    p->qr[0] = '\0';
}

/* Remove device `token` of a, keeping the link order of the others, and
 * log its pages out. */
int state__device_unlink(fw_state_t *st, account_t *a, const char *token,
                         const char *reason)
{
    int pages = 0;

    for (size_t i = 0; i < a->ndevices; i++) {
        if (strcmp(a->devices[i].token, token) == 0) {
            memmove(a->devices + i, a->devices + i + 1,
                    (a->ndevices - i - 1) * sizeof(*a->devices));
            a->ndevices--;
            break;
        }
    }
    for (size_t i = 0; i < st->npages; i++) {
        page_t *p = st->pages[i];

        if ((p->state == PS_PAIRING || p->state == PS_CONNECTED) &&
            strcmp(p->phone, a->phone) == 0 && strcmp(p->token, token) == 0) {
            state__page_logout(st, p, reason);
            pages++;
        }
    }
    return pages;
}

/* ---- the public operations ----------------------------------------------- */

wa_err_t fw_state_new(const fw_state_opts_t *opts, fw_state_t **out)
{
    fw_state_t *st;

    if (opts == NULL || opts->ref_interval_ms <= 0 || opts->idle_after_ms <= 0)
        return WA_EINVAL;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return WA_ENOMEM;
    if (pthread_mutex_init(&st->mu, NULL) != 0) {
        free(st);
        return WA_EINTERNAL;
    }
    st->o = *opts;
    st->next_page = 1;
    *out = st;
    return WA_OK;
}

void fw_state_free(fw_state_t *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->npages; i++)
        free(st->pages[i]);
    for (size_t i = 0; i < st->naccounts; i++)
        account_free(st->accounts[i]);
    free(st->accounts);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

wa_err_t fw_state_page_open(fw_state_t *st, void *conn, uint64_t *id)
{
    page_t *p;
    wa_err_t rv = WA_OK;

    pthread_mutex_lock(&st->mu);
    if (st->npages >= FW_PAGES_MAX) {
        rv = WA_EFULL;
    } else if ((p = calloc(1, sizeof(*p))) == NULL) {
        rv = WA_ENOMEM;
    } else {
        p->id = st->next_page++;
        p->conn = conn;
        p->state = PS_OPENING;
        st->pages[st->npages++] = p;
        *id = p->id;
        wa_info(NULL, "page %llu opened", (unsigned long long)p->id);
    }
    pthread_mutex_unlock(&st->mu);
    return rv;
}

void fw_state_page_close(fw_state_t *st, uint64_t id)
{
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->npages; i++) {
        if (st->pages[i]->id == id) {
            free(st->pages[i]);
            memmove(st->pages + i, st->pages + i + 1,
                    (st->npages - i - 1) * sizeof(*st->pages));
            st->npages--;
            wa_info(NULL, "page %llu closed", (unsigned long long)id);
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
}

size_t fw_state_page_count(fw_state_t *st)
{
    size_t n;

    pthread_mutex_lock(&st->mu);
    n = st->npages;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void fw_state_tick(fw_state_t *st)
{
    long long now;

    pthread_mutex_lock(&st->mu);
    now = state__now_ms(st);
    for (size_t i = 0; i < st->npages; i++) {
        page_t *p = st->pages[i];

        if (p->state != PS_UNPAIRED)
            continue;
        if (now - p->pair_at >= st->o.idle_after_ms) {
            p->state = PS_IDLE;
            p->qr[0] = '\0';
            state__emit(st, p, state__frame_new("idle"));
        } else if (now - p->ref_at >= st->o.ref_interval_ms &&
                   state__page_new_ref(st, p, now) != WA_OK) {
            wa_warn(NULL, "page %llu: no randomness for a new ref",
                    (unsigned long long)p->id);
        }
    }
    pthread_mutex_unlock(&st->mu);
}

wa_err_t fw_state_scan(fw_state_t *st, const char *qr, const char *phone,
                       const char *name, uint64_t *page)
{
    char token[FW_TOKEN_LEN + 1], norm[FW_PHONE_MAX + 1];
    page_t *p = NULL;
    account_t *a;
    device_t *d;
    cJSON *f, *login;
    char *dup;
    wa_err_t rv;

    if (qr == NULL || qr[0] == '\0' ||
        fw_phone_normalize(phone, norm) != WA_OK || strcmp(norm, phone) != 0 ||
        (name != NULL &&
         fw_check_text(name, strlen(name), FW_NAME_MAX, false) != WA_OK))
        return WA_EINVAL;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < st->npages && p == NULL; i++) {
        if (st->pages[i]->state == PS_UNPAIRED &&
            strcmp(st->pages[i]->qr, qr) == 0)
            p = st->pages[i];
    }
    if (p == NULL) {
        rv = WA_ENOTFOUND;
        goto out;
    }
    if ((rv = state__account_get(st, phone, name, &a)) != WA_OK)
        goto out;
    if (a->ndevices >= DEVICES_MAX) {
        rv = WA_ECONFLICT;
        goto out;
    }
    if (name != NULL && strcmp(name, a->name) != 0) {
        if ((dup = strdup(name)) == NULL) {
            rv = WA_ENOMEM;
            goto out;
        }
        free(a->name);
        a->name = dup;
    }
    if ((rv = random_hex(FW_TOKEN_LEN / 2, false, token)) != WA_OK ||
        (rv = state__device_add(st, a, token, &d)) != WA_OK)
        goto out;
    p->state = PS_PAIRING;
    p->qr[0] = '\0';
    state__copy(p->phone, sizeof(p->phone), a->phone);
    state__copy(p->token, sizeof(p->token), token);
    if ((f = state__frame_new("paired")) != NULL &&
        ((login = cJSON_AddObjectToObject(f, "login")) == NULL ||
         !state__add_str(login, "phone", a->phone) ||
         !state__add_str(login, "name", a->name) ||
         !state__add_str(login, "token", token) ||
         !state__add_str(login, "platform", PHONE_PLATFORM))) {
        cJSON_Delete(f);
        f = NULL;
    }
    state__emit(st, p, f);
    if (page != NULL)
        *page = p->id;
    wa_info(NULL, "page %llu: scanned by %s", (unsigned long long)p->id,
            a->phone);
out:
    pthread_mutex_unlock(&st->mu);
    return rv;
}

wa_err_t fw_state_incoming(fw_state_t *st, const char *phone, const char *from,
                           const char *body, char *id, size_t idlen)
{
    msg_t m = {.from_me = false, .ack = 1};
    account_t *a;
    chat_t *c;
    char *text = NULL;
    cJSON *f;
    wa_err_t rv;

    if (phone == NULL || !fw_wid_valid(from) || body == NULL ||
        fw_check_text(body, strlen(body), FW_BODY_MAX, false) != WA_OK)
        return WA_EINVAL;
    pthread_mutex_lock(&st->mu);
    if ((a = state__account_find(st, phone)) == NULL) {
        rv = WA_ENOTFOUND;
        goto out;
    }
    if ((c = state__chat_find(a, from)) == NULL &&
        (rv = state__chat_add(a, from, state__contact_name(a, from), &c)) !=
            WA_OK)
        goto out;
    if ((rv = random_hex(8, true, m.id + 4)) != WA_OK)
        goto out;
    memcpy(m.id, "3EB0", 4);
    m.t = now_s(st);
    if ((m.body = strdup(body)) == NULL) {
        rv = WA_ENOMEM;
        goto out;
    }
    if ((rv = state__chat_append(a, c, &m)) != WA_OK) {
        free(m.body);
        goto out;
    }
    c->unread++;
    f = state__msg_frame(a, c, &c->msgs[c->n - 1]);
    if (f == NULL || (text = cJSON_PrintUnformatted(f)) == NULL)
        wa_warn(NULL, "account %s: out of memory delivering a message", phone);
    cJSON_Delete(f);
    for (size_t i = 0; i < st->npages && text != NULL; i++) {
        page_t *p = st->pages[i];
        device_t *d;

        if (p->state != PS_CONNECTED || strcmp(p->phone, a->phone) != 0)
            continue;
        send_text(st, p, text);
        if ((d = state__device_find(a, p->token)) != NULL)
            d->delivered = a->seq;
    }
    free(text);
    snprintf(id, idlen, "false_%s_%s", c->wid, m.id);
    wa_info(NULL, "account %s: incoming message", a->phone);
    rv = WA_OK;
out:
    pthread_mutex_unlock(&st->mu);
    return rv;
}

/* The sent messages of a, as fw_state_sent answers them. Under the lock. */
static wa_err_t sent_list(fw_state_t *st, const account_t *a, cJSON *arr)
{
    (void)st;
    for (size_t i = 0; i < a->nsent; i++) {
        const sent_t *s = &a->sent[i];
        cJSON *o = cJSON_CreateObject();

        if (o == NULL || !cJSON_AddItemToArray(arr, o) ||
            !state__add_str(o, "to", s->to) ||
            !state__add_str(o, "body", s->body) ||
            !state__add_str(o, "id", s->id) ||
            !state__add_num(o, "timestamp", (double)s->t))
            return WA_ENOMEM;
    }
    return WA_OK;
}

/* The linked devices of a, as fw_state_devices answers them. Under the
 * lock. */
static wa_err_t device_list(fw_state_t *st, const account_t *a, cJSON *arr)
{
    char linked_at[32];

    for (size_t i = 0; i < a->ndevices; i++) {
        const device_t *d = &a->devices[i];
        cJSON *o;

        wa_timestamp_ms(d->linked_at, linked_at, sizeof(linked_at));
        if (linked_at[0] == '\0')
            return WA_EINTERNAL;
        if ((o = cJSON_CreateObject()) == NULL ||
            !cJSON_AddItemToArray(arr, o) ||
            !state__add_str(o, "linkedAt", linked_at) ||
            !state__add_bool(o, "online", device_online(st, a, d)))
            return WA_ENOMEM;
    }
    return WA_OK;
}

/* A new array filled by fill for account phone, under the lock. */
static wa_err_t account_list(fw_state_t *st, const char *phone,
                             wa_err_t (*fill)(fw_state_t *, const account_t *,
                                              cJSON *),
                             cJSON **out)
{
    account_t *a;
    cJSON *arr = NULL;
    wa_err_t rv;

    if (phone == NULL)
        return WA_EINVAL;
    pthread_mutex_lock(&st->mu);
    if ((a = state__account_find(st, phone)) == NULL)
        rv = WA_ENOTFOUND;
    else if ((arr = cJSON_CreateArray()) == NULL)
        rv = WA_ENOMEM;
    else if ((rv = fill(st, a, arr)) == WA_OK)
        *out = arr;
    pthread_mutex_unlock(&st->mu);
    if (rv != WA_OK)
        cJSON_Delete(arr);
    return rv;
}

wa_err_t fw_state_sent(fw_state_t *st, const char *phone, cJSON **out)
{
    return account_list(st, phone, sent_list, out);
}

wa_err_t fw_state_devices(fw_state_t *st, const char *phone, cJSON **out)
{
    return account_list(st, phone, device_list, out);
}

wa_err_t fw_state_logout(fw_state_t *st, const char *phone, int *pages)
{
    account_t *a;
    int n = 0;
    wa_err_t rv = WA_OK;

    pthread_mutex_lock(&st->mu);
    if ((a = state__account_find(st, phone)) == NULL) {
        rv = WA_ENOTFOUND;
    } else {
        while (a->ndevices > 0) {
            char token[FW_TOKEN_LEN + 1];

            state__copy(token, sizeof(token), a->devices[0].token);
            n += state__device_unlink(st, a, token, "unlinked");
        }
        wa_info(NULL, "account %s: every device unlinked", phone);
    }
    pthread_mutex_unlock(&st->mu);
    if (rv == WA_OK && pages != NULL)
        *pages = n;
    return rv;
}

wa_err_t fw_state_pages(fw_state_t *st, cJSON **out)
{
    cJSON *arr;
    wa_err_t rv = WA_OK;

    pthread_mutex_lock(&st->mu);
    if ((arr = cJSON_CreateArray()) == NULL) {
        rv = WA_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < st->npages; i++) {
        const page_t *p = st->pages[i];
        cJSON *o = cJSON_CreateObject();

        if (o == NULL || !cJSON_AddItemToArray(arr, o) ||
            !state__add_num(o, "id", (double)p->id) ||
            !state__add_str(o, "state", page_state_names[p->state]) ||
            !state__add_str(o, "ref", p->state == PS_UNPAIRED ? p->qr : NULL) ||
            !state__add_str(o, "phone",
                            p->phone[0] != '\0' ? p->phone : NULL)) {
            cJSON_Delete(arr);
            rv = WA_ENOMEM;
            goto out;
        }
    }
    *out = arr;
out:
    pthread_mutex_unlock(&st->mu);
    return rv;
}
