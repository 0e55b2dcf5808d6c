/*
 * adapter.c - session-svc's side of waweb.js: attach to the browser's page,
 * inject the script before the page's own, navigate, turn what the page
 * reports through the binding into state transitions, and call the
 * script's functions for the bus operations.
 *
 * Everything from the page is hostile until checked: binding payloads and
 * call results are parsed with size, type and UTF-8 checks and rebuilt
 * field by field; nothing the page sends is passed on as it came. Nothing
 * from a user is ever pasted into JavaScript source: calls pass their
 * arguments as DevTools values.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "wa/log.h"

#define SS_BODY_PAGE_MAX (256 * 1024) /* bytes of a body the page reports */
#define STEP_TIMEOUT_MS 15000
/* Setup steps, in order (spare.c prefers the spare furthest along). */
#define STEP_CREATE 0 /* auto-attach on, and the page created */
#define STEP_SETUP 3  /* 3..6: enables, binding, script */
#define STEP_WARM 7   /* spares only: a small document of the site */
#define STEP_NAVIGATE 8
#define STEP_LAST 8
#define REFERRER "https://whatsapp.com/"
/* What a spare loads while it waits. Chromium gives a cross-site
 * navigation a new renderer process; the spare's about:blank renderer
 * would be thrown away on the real navigation and a new one started on
 * the connect's critical path (measured: docs/architecture.md). A
 * document of the same site keeps the renderer for it. Every site has
 * this path; a 404 does as well. */
#define WARM_PATH "/robots.txt"

/* The one function declaration ever sent: it forwards to the script. */
static const char call_fn[] =
    "function (fn, args) { return window.__waCall(fn, args); }";

/* ---------------------------------------------------------- checks */

/* String member name of o, valid UTF-8 without NUL, min..max bytes. */
static const char *str_field(const cJSON *o, const char *name, size_t min,
                             size_t max)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    size_t len;

    if (!cJSON_IsString(m) || m->valuestring == NULL)
        return NULL;
    len = strlen(m->valuestring);
    if (len < min || len > max || !wa_utf8_valid(m->valuestring, len))
        return NULL;
    return m->valuestring;
}

/* Printable ASCII only (ids and QR strings are). */
static bool printable_ascii(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    }
    return true;
}

static bool int_field(const cJSON *o, const char *name, double min, double max,
                      double *out)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsNumber(m) || !isfinite(m->valuedouble) ||
        m->valuedouble < min || m->valuedouble > max ||
        m->valuedouble != floor(m->valuedouble))
        return false;
    *out = m->valuedouble;
    return true;
}

static bool bool_field(const cJSON *o, const char *name, bool *out)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsBool(m))
        return false;
    *out = cJSON_IsTrue(m);
    return true;
}

/* Copy s into out (len bytes), cut on a UTF-8 boundary. */
static void copy_utf8(char *out, size_t len, const char *s)
{
    size_t n = wa_utf8_prefix(s, len - 1);

    memcpy(out, s, n);
    out[n] = '\0';
}

bool adapter__chat_id_valid(const char *id)
{
    const char *p = id, *at;
    size_t digits = 0, total = 0;
    bool group, dash = false;

    if (id == NULL || strlen(id) > SS_CHAT_ID_MAX ||
        (at = strchr(id, '@')) == NULL)
        return false;
    if (strcmp(at, "@c.us") == 0)
        group = false;
    else if (strcmp(at, "@g.us") == 0)
        group = true;
    else
        return false;
    for (; p < at; p++) {
        if (*p >= '0' && *p <= '9') {
            digits++;
            total++;
        } else if (*p == '-' && group && !dash && digits > 0) {
            dash = true;
            digits = 0;
        } else {
            return false;
        }
    }
    if (digits == 0 || total < 5)
        return false;
    return group ? total <= 40 : total <= SS_PHONE_MAX;
}

bool adapter__phone_normalize(const char *phone, char *out, size_t len)
{
    const char *p = phone;
    size_t n = 0;

    if (phone == NULL || out == NULL || len < 16)
        return false;
    if (*p == '+')
        p++;
    if (*p < '1' || *p > '9')
        return false;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || n >= 15)
            return false;
        out[n++] = *p;
    }
    if (n < 7)
        return false;
    out[n] = '\0';
    return true;
}

cJSON *adapter__message(const cJSON *in)
{
    const char *id, *chat, *from, *to, *body, *type;
    double ts;
    bool from_me;
    cJSON *o;

    if (!cJSON_IsObject(in) ||
        (id = str_field(in, "id", 1, SS_MSG_ID_MAX)) == NULL ||
        (chat = str_field(in, "chatId", 1, SS_CHAT_ID_MAX)) == NULL ||
        (from = str_field(in, "from", 0, SS_CHAT_ID_MAX)) == NULL ||
        (to = str_field(in, "to", 0, SS_CHAT_ID_MAX)) == NULL ||
        (body = str_field(in, "body", 0, SS_BODY_PAGE_MAX)) == NULL ||
        (type = str_field(in, "type", 1, SS_TYPE_MAX)) == NULL ||
        !int_field(in, "timestamp", 0, 1e11, &ts) ||
        !bool_field(in, "fromMe", &from_me) || !printable_ascii(id) ||
        !printable_ascii(chat) || !printable_ascii(from) ||
        !printable_ascii(to) || !printable_ascii(type))
        return NULL;
    if ((o = cJSON_CreateObject()) == NULL)
        return NULL;
    if (cJSON_AddStringToObject(o, "id", id) == NULL ||
        cJSON_AddStringToObject(o, "chatId", chat) == NULL ||
        cJSON_AddStringToObject(o, "from", from) == NULL ||
        cJSON_AddStringToObject(o, "to", to) == NULL ||
        cJSON_AddStringToObject(o, "body", body) == NULL ||
        cJSON_AddNumberToObject(o, "timestamp", ts) == NULL ||
        cJSON_AddBoolToObject(o, "fromMe", from_me) == NULL ||
        cJSON_AddStringToObject(o, "type", type) == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *adapter__chat(const cJSON *in)
{
    const char *id, *name;
    const cJSON *lm;
    cJSON *o, *last = NULL;
    double unread, ts;
    bool group;

    if (!cJSON_IsObject(in) ||
        (id = str_field(in, "id", 1, SS_CHAT_ID_MAX)) == NULL ||
        (name = str_field(in, "name", 0, SS_NAME_MAX)) == NULL ||
        !bool_field(in, "isGroup", &group) ||
        !int_field(in, "unreadCount", 0, 1e9, &unread) ||
        !int_field(in, "timestamp", 0, 1e11, &ts) || !printable_ascii(id))
        return NULL;
    lm = cJSON_GetObjectItemCaseSensitive(in, "lastMessage");
    if (lm != NULL && !cJSON_IsNull(lm) &&
        (last = adapter__message(lm)) == NULL)
        return NULL;
    if ((o = cJSON_CreateObject()) == NULL) {
        cJSON_Delete(last);
        return NULL;
    }
    if (cJSON_AddStringToObject(o, "id", id) == NULL ||
        cJSON_AddStringToObject(o, "name", name) == NULL ||
        cJSON_AddBoolToObject(o, "isGroup", group) == NULL ||
        cJSON_AddNumberToObject(o, "unreadCount", unread) == NULL ||
        cJSON_AddNumberToObject(o, "timestamp", ts) == NULL) {
        cJSON_Delete(last);
        cJSON_Delete(o);
        return NULL;
    }
    if (last != NULL)
        cJSON_AddItemToObject(o, "lastMessage", last);
    else if (cJSON_AddNullToObject(o, "lastMessage") == NULL) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Rebuild an array of page objects with fn, at most max, skipping bad
 * entries. */
static wa_err_t rebuild_list(const cJSON *value, int max,
                             cJSON *(*fn)(const cJSON *), const char *key,
                             cJSON **out)
{
    const cJSON *it;
    cJSON *o, *arr, *e;
    int n = 0;

    if (!cJSON_IsArray(value) || cJSON_GetArraySize(value) > max)
        return WA_EBROWSER;
    if ((o = cJSON_CreateObject()) == NULL ||
        (arr = cJSON_AddArrayToObject(o, key)) == NULL) {
        cJSON_Delete(o);
        return WA_ENOMEM;
    }
    cJSON_ArrayForEach(it, value)
    {
        if ((e = fn(it)) == NULL)
            continue; /* a malformed entry is dropped, not passed on */
        cJSON_AddItemToArray(arr, e);
        n++;
    }
    (void)n;
    *out = o;
    return WA_OK;
}

wa_err_t adapter__result(const char *fn, const cJSON *value, cJSON **out)
{
    const char *id;
    const cJSON *chat;
    cJSON *o, *c;
    double ts;

    if (fn == NULL || out == NULL)
        return WA_EINVAL;
    *out = NULL;
    if (strcmp(fn, "chats") == 0)
        return rebuild_list(value, SS_CHATS_MAX, adapter__chat, "chats", out);
    if (strcmp(fn, "messages") == 0)
        return rebuild_list(value, SS_LIMIT_MAX, adapter__message, "messages",
                            out);
    if (strcmp(fn, "send") == 0) {
        if (!cJSON_IsObject(value) ||
            (id = str_field(value, "id", 1, SS_MSG_ID_MAX)) == NULL ||
            !printable_ascii(id) ||
            !int_field(value, "timestamp", 0, 1e11, &ts))
            return WA_EBROWSER;
        if ((o = cJSON_CreateObject()) == NULL ||
            cJSON_AddStringToObject(o, "id", id) == NULL ||
            cJSON_AddNumberToObject(o, "timestamp", ts) == NULL) {
            cJSON_Delete(o);
            return WA_ENOMEM;
        }
        *out = o;
        return WA_OK;
    }
    if (strcmp(fn, "chatByPhone") == 0) {
        if (!cJSON_IsObject(value) ||
            (chat = cJSON_GetObjectItemCaseSensitive(value, "chat")) == NULL)
            return WA_EBROWSER;
        if (cJSON_IsNull(chat))
            return WA_ENOTFOUND;
        if ((c = adapter__chat(chat)) == NULL)
            return WA_EBROWSER;
        if ((o = cJSON_CreateObject()) == NULL) {
            cJSON_Delete(c);
            return WA_ENOMEM;
        }
        cJSON_AddItemToObject(o, "chat", c);
        *out = o;
        return WA_OK;
    }
    if (strcmp(fn, "logout") == 0)
        return (*out = cJSON_CreateObject()) != NULL ? WA_OK : WA_ENOMEM;
    return WA_EINVAL;
}

void ss_page_event_clear(ss_page_event_t *ev)
{
    if (ev != NULL) {
        cJSON_Delete(ev->msg);
        memset(ev, 0, sizeof(*ev));
    }
}

/* Does JSON text hold the escape \u0000 inside a string? cJSON would
 * decode it into a NUL and C strings would silently end there. */
static bool has_nul_escape(const char *s, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '\\')
            continue;
        if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
            return true;
        i++; /* skip the escaped character */
    }
    return false;
}

wa_err_t adapter__parse_payload(const char *payload, ss_page_event_t *ev)
{
    const char *end = NULL, *t, *s;
    const cJSON *m;
    cJSON *root;
    size_t len;
    wa_err_t err = WA_EINVAL;

    if (ev == NULL)
        return WA_EINVAL;
    memset(ev, 0, sizeof(*ev));
    if (payload == NULL)
        return WA_EINVAL;
    len = strlen(payload);
    if (len > SS_PAYLOAD_MAX)
        return WA_ETOOBIG;
    if (!wa_utf8_valid(payload, len))
        return WA_EUTF8;
    if (has_nul_escape(payload, len))
        return WA_EINVAL;
    root = cJSON_ParseWithLengthOpts(payload, len, &end, 0);
    if (root == NULL || !cJSON_IsObject(root) || end != payload + len ||
        (t = str_field(root, "t", 1, 16)) == NULL)
        goto out;
    if (strcmp(t, "hello") == 0) {
        ev->kind = PAGE_HELLO;
        m = cJSON_GetObjectItemCaseSensitive(root, "version");
        if (m != NULL && !cJSON_IsNull(m)) {
            if ((s = str_field(root, "version", 1, 64)) == NULL ||
                !printable_ascii(s))
                goto out;
            copy_utf8(ev->text, sizeof(ev->text), s);
        }
    } else if (strcmp(t, "loading") == 0) {
        ev->kind = PAGE_LOADING;
        if ((s = str_field(root, "state", 1, 32)) == NULL ||
            !printable_ascii(s))
            goto out;
        copy_utf8(ev->text, sizeof(ev->text), s);
    } else if (strcmp(t, "qr") == 0) {
        ev->kind = PAGE_QR;
        if ((s = str_field(root, "qr", 1, SS_QR_RAW_MAX)) == NULL ||
            !printable_ascii(s))
            goto out;
        copy_utf8(ev->text, sizeof(ev->text), s);
    } else if (strcmp(t, "authenticated") == 0) {
        ev->kind = PAGE_AUTHENTICATED;
    } else if (strcmp(t, "ready") == 0) {
        ev->kind = PAGE_READY;
        if ((s = str_field(root, "phone", 5, SS_PHONE_MAX)) == NULL ||
            strspn(s, "0123456789") != strlen(s))
            goto out;
        copy_utf8(ev->phone, sizeof(ev->phone), s);
        m = cJSON_GetObjectItemCaseSensitive(root, "name");
        if (m != NULL && !cJSON_IsNull(m)) {
            if ((s = str_field(root, "name", 0, SS_NAME_MAX)) == NULL)
                goto out;
            copy_utf8(ev->name, sizeof(ev->name), s);
        }
    } else if (strcmp(t, "message") == 0) {
        ev->kind = PAGE_MESSAGE;
        if ((ev->msg = adapter__message(
                 cJSON_GetObjectItemCaseSensitive(root, "msg"))) == NULL)
            goto out;
    } else if (strcmp(t, "logout") == 0) {
        ev->kind = PAGE_LOGOUT;
    } else if (strcmp(t, "error") == 0) {
        ev->kind = PAGE_ERROR;
        if ((s = str_field(root, "message", 1, 4096)) == NULL)
            goto out;
        copy_utf8(ev->text, SS_ERRMSG_MAX + 1, s);
    } else {
        goto out;
    }
    err = WA_OK;
out:
    cJSON_Delete(root);
    if (err != WA_OK)
        ss_page_event_clear(ev);
    return err;
}

/* ---------------------------------------------------------- the page */

static void step(ss_session_t *s);

/* Debug: one phase of a page's start, in ms since the browser's launch or
 * the spare's adoption (docs/architecture.md, "Connect -> QR latency"). */
static void timing(const ss_session_t *s, const char *what)
{
    if (!wa_log_enabled(WA_LOG_DEBUG) || s->page.t0 == 0)
        return;
    wa_debug(NULL, "user %s: %s after %llu ms", s->user, what,
             (unsigned long long)((uv_hrtime() - s->page.t0) / 1000000));
}

static cdp_t *page_cdp(ss_session_t *s)
{
    return browser__cdp(s->browser);
}

/* A target that is not our page (the first tab of a browser that ignores
 * --no-startup-window, a popup): auto-attached, so leave it (and let it
 * run, should anything have held it for us). */
static void ignore_done(void *arg, wa_err_t err, const cJSON *result,
                        const char *errmsg)
{
    (void)arg;
    (void)err;
    (void)result;
    (void)errmsg;
}

static void release(cdp_t *c, const char *sid)
{
    cJSON *p;

    if (c == NULL)
        return;
    (void)cdp__call(c, sid, "Runtime.runIfWaitingForDebugger", NULL,
                    STEP_TIMEOUT_MS, ignore_done, NULL);
    if ((p = cJSON_CreateObject()) == NULL)
        return;
    if (cJSON_AddStringToObject(p, "sessionId", sid) == NULL) {
        cJSON_Delete(p);
        return;
    }
    (void)cdp__call(c, NULL, "Target.detachFromTarget", p, STEP_TIMEOUT_MS,
                    ignore_done, NULL);
}

ss_attach_t adapter__page_attached(ss_page_t *page, const char *target,
                                   const char *sid)
{
    ss_page_target_t *t;

    if (page == NULL || target == NULL || sid == NULL || page->attached ||
        target[0] == '\0' || sid[0] == '\0' ||
        strlen(target) > CDP_SESSION_MAX || strlen(sid) > CDP_SESSION_MAX)
        return SS_ATTACH_FOREIGN;
    if (page->target_id[0] != '\0') {
        if (strcmp(target, page->target_id) != 0)
            return SS_ATTACH_FOREIGN;
        snprintf(page->session_id, sizeof(page->session_id), "%s", sid);
        page->attached = true;
        return SS_ATTACH_OURS;
    }
    if (page->ncand >= SS_PAGE_CANDIDATES)
        return SS_ATTACH_FOREIGN;
    t = &page->cand[page->ncand++];
    snprintf(t->target_id, sizeof(t->target_id), "%s", target);
    snprintf(t->session_id, sizeof(t->session_id), "%s", sid);
    return SS_ATTACH_PENDING;
}

bool adapter__page_created(ss_page_t *page, const char *target,
                           char release[][CDP_SESSION_MAX + 1], int *nrelease)
{
    bool ours = false;
    int i;

    *nrelease = 0;
    if (page == NULL || target == NULL || strlen(target) > CDP_SESSION_MAX)
        return false;
    snprintf(page->target_id, sizeof(page->target_id), "%s", target);
    for (i = 0; i < page->ncand && i < SS_PAGE_CANDIDATES; i++) {
        if (!ours && !page->attached &&
            strcmp(page->cand[i].target_id, target) == 0) {
            snprintf(page->session_id, sizeof(page->session_id), "%s",
                     page->cand[i].session_id);
            page->attached = ours = true;
        } else {
            snprintf(release[(*nrelease)++], CDP_SESSION_MAX + 1, "%s",
                     page->cand[i].session_id);
        }
    }
    memset(page->cand, 0, sizeof(page->cand));
    page->ncand = 0;
    return ours;
}

/* Our page is attached, still on about:blank: set it up. */
static void page_attached(ss_session_t *s)
{
    timing(s, "attached");
    s->page.step = STEP_SETUP;
    step(s);
}

/* The answer to a setup command that moves nothing along (auto-attach):
 * only a failure matters. arg is the browser (see step_done). */
static void aux_done(void *arg, wa_err_t err, const cJSON *result,
                     const char *errmsg)
{
    ss_session_t *s;
    char why[160];

    (void)result;
    if (err == WA_OK || err == WA_ECLOSED ||
        (s = browser__owner(arg)) == NULL || s->page.step > STEP_LAST)
        return;
    snprintf(why, sizeof(why), "devtools setup failed: %s",
             errmsg != NULL ? errmsg : wa_strerror(err));
    s->page.step = STEP_LAST + 1; /* no further step */
    sessions__page_failed(s, why);
}

/* A setup reply. arg is the browser, not the session: a spare adopted
 * while its setup runs changes owner (browser__rebind), and the rest of
 * the setup belongs to the new one. Replies come only while the browser
 * lives (cdp fails what is pending when it closes, before the browser is
 * freed). */
static void step_done(void *arg, wa_err_t err, const cJSON *result,
                      const char *errmsg)
{
    char rel[SS_PAGE_CANDIDATES][CDP_SESSION_MAX + 1];
    ss_session_t *s;
    const char *v;
    char why[160];
    int i, nrel;
    bool ours;

    if (err == WA_ECLOSED)
        return; /* the browser went away; its exit is handled there */
    if ((s = browser__owner(arg)) == NULL)
        return;
    if (err != WA_OK) {
        snprintf(why, sizeof(why), "devtools setup step %d failed: %s",
                 s->page.step, errmsg != NULL ? errmsg : wa_strerror(err));
        s->page.step = STEP_LAST + 1; /* no further step */
        sessions__page_failed(s, why);
        return;
    }
    switch (s->page.step) {
    case STEP_CREATE: /* Target.createTarget */
        if ((v = str_field(result, "targetId", 1, CDP_SESSION_MAX)) == NULL)
            goto bad;
        timing(s, "page created");
        ours = adapter__page_created(&s->page, v, rel, &nrel);
        for (i = 0; i < nrel; i++)
            release(page_cdp(s), rel[i]);
        if (!ours)
            return; /* its Target.attachedToTarget is still to come */
        page_attached(s);
        return;
    case STEP_NAVIGATE: /* WhatsApp's document is on its way */
        timing(s, "navigate answered");
        return;
    case STEP_WARM: /* a failed load (errorText) only costs the warmth */
        s->page.step = STEP_NAVIGATE;
        break;
    default:
        /* STEP_SETUP's four went out together; go on once all are done. */
        if (++s->page.replies == STEP_WARM - STEP_SETUP) {
            timing(s, "page set up");
            s->page.step = s->spare ? STEP_WARM : STEP_NAVIGATE;
            break;
        }
        return;
    }
    step(s);
    return;
bad:
    sessions__page_failed(s, "devtools setup: malformed reply");
}

/* WA_WEB_URL's scheme and host, then WARM_PATH. */
static bool warm_url(const char *base, char *out, size_t len)
{
    const char *host = strstr(base, "://"), *end;
    int n;

    if (host == NULL)
        return false;
    host += 3;
    end = host + strcspn(host, "/?#");
    n = snprintf(out, len, "%.*s%s", (int)(end - base), base, WARM_PATH);
    return n > 0 && (size_t)n < len;
}

/* Build one setup command; NULL params means {}. false on OOM. */
static bool command(ss_session_t *s, int n, const char **method,
                    const char **sid, cJSON **p)
{
    char warm[2048 + sizeof(WARM_PATH)];
    cJSON *f, *e;
    ss_t *ss = s->ss;

    *p = NULL;
    *sid = s->page.session_id;
    switch (n) {
    case STEP_CREATE:
        /* Every new page comes attached to us: no attach round trip. */
        *method = "Target.setAutoAttach";
        *sid = NULL;
        return (*p = cJSON_CreateObject()) != NULL &&
               cJSON_AddBoolToObject(*p, "autoAttach", 1) != NULL &&
               cJSON_AddBoolToObject(*p, "waitForDebuggerOnStart", 0) != NULL &&
               cJSON_AddBoolToObject(*p, "flatten", 1) != NULL &&
               (f = cJSON_AddArrayToObject(*p, "filter")) != NULL &&
               (e = cJSON_CreateObject()) != NULL &&
               cJSON_AddItemToArray(f, e) &&
               cJSON_AddStringToObject(e, "type", "page") != NULL;
    case STEP_CREATE + 1:
        /* A new page on about:blank keeps its renderer for the first
         * site it navigates to (the browser's own first tab does not: it
         * got a second renderer on the way to the site, measured), and
         * loads nothing before Page.navigate, which waits for the script. */
        *method = "Target.createTarget";
        *sid = NULL;
        return (*p = cJSON_CreateObject()) != NULL &&
               cJSON_AddStringToObject(*p, "url", "about:blank") != NULL;
    case STEP_SETUP:
        *method = "Page.enable";
        return true;
    case STEP_SETUP + 1:
        *method = "Runtime.enable";
        return true;
    case STEP_SETUP + 2:
        *method = "Runtime.addBinding";
        return (*p = cJSON_CreateObject()) != NULL &&
               cJSON_AddStringToObject(*p, "name", SS_BINDING) != NULL;
    case STEP_SETUP + 3:
        *method = "Page.addScriptToEvaluateOnNewDocument";
        return (*p = cJSON_CreateObject()) != NULL &&
               cJSON_AddStringToObject(*p, "source", ss->script) != NULL;
    case STEP_WARM:
        *method = "Page.navigate";
        return warm_url(ss->cfg.wa_web_url, warm, sizeof(warm)) &&
               (*p = cJSON_CreateObject()) != NULL &&
               cJSON_AddStringToObject(*p, "url", warm) != NULL;
    case STEP_NAVIGATE:
        *method = "Page.navigate";
        return (*p = cJSON_CreateObject()) != NULL &&
               cJSON_AddStringToObject(*p, "url", ss->cfg.wa_web_url) != NULL &&
               cJSON_AddStringToObject(*p, "referrer", REFERRER) != NULL;
    default:
        return false;
    }
}

/*
 * Issue the current setup step. STEP_CREATE turns auto-attach on and
 * creates the page on about:blank, together; its Target.attachedToTarget
 * (or createTarget's answer, whichever comes last) brings STEP_SETUP:
 * enables, binding and script go out at once, so a starved machine pays
 * one round trip instead of four. Navigate waits for all of them: it is
 * handled in the browser process and could otherwise overtake the
 * script's registration in the renderer. A spare loads WARM_PATH of the
 * site instead and then waits for its user.
 */
static void step(ss_session_t *s)
{
    const char *method = NULL, *sid = NULL;
    int n, first, last;
    cJSON *p;
    cdp_t *c = page_cdp(s);
    cdp_reply_fn fn;
    wa_err_t err;

    if (c == NULL || s->page.step > STEP_LAST ||
        (s->page.step == STEP_NAVIGATE && (s->page.navigated || s->spare)))
        return; /* a spare waits, parked on the site, for its user */
    if (s->page.step == STEP_NAVIGATE) {
        s->page.navigated = true;
        /* Until WhatsApp's document has its context, nothing speaks for
         * the page (a spare's warm-up document no longer does). */
        s->page.context_id = 0;
    }
    first = last = s->page.step;
    if (first == STEP_CREATE)
        last = STEP_CREATE + 1;
    else if (first == STEP_SETUP)
        last = STEP_WARM - 1;
    for (n = first; n <= last; n++) {
        if (!command(s, n, &method, &sid, &p)) {
            cJSON_Delete(p);
            sessions__page_failed(s, "out of memory");
            return;
        }
        fn = n == STEP_CREATE ? aux_done : step_done;
        wa_debug(NULL, "user %s: devtools %s", s->user, method);
        err = cdp__call(c, sid, method, p, STEP_TIMEOUT_MS, fn, s->browser);
        if (err != WA_OK) {
            char why[128];

            snprintf(why, sizeof(why), "devtools: %s: %s", method,
                     wa_strerror(err));
            sessions__page_failed(s, why);
            return;
        }
    }
}

void adapter__start(ss_session_t *s)
{
    memset(&s->page, 0, sizeof(s->page));
    s->page.t0 = uv_hrtime();
    step(s);
}

void adapter__resume(ss_session_t *s)
{
    s->page.t0 = uv_hrtime();
    if (s->page.step == STEP_NAVIGATE)
        step(s);
}

static void on_binding(ss_session_t *s, const cJSON *params)
{
    const cJSON *ctx =
        cJSON_GetObjectItemCaseSensitive(params, "executionContextId");
    const char *name = str_field(params, "name", 1, 64);
    const char *payload = str_field(params, "payload", 0, SS_PAYLOAD_MAX);
    ss_page_event_t ev;
    ss_transition_t t = {0};
    wa_err_t err;

    if (name == NULL || strcmp(name, SS_BINDING) != 0 || s->spare)
        return;
    /* Only the top frame's main world speaks for the page. */
    if (!cJSON_IsNumber(ctx) || s->page.context_id == 0 ||
        (int64_t)ctx->valuedouble != s->page.context_id) {
        wa_warn(NULL, "user %s: binding call from another context ignored",
                s->user);
        return;
    }
    if (payload == NULL ||
        (err = adapter__parse_payload(payload, &ev)) != WA_OK) {
        wa_warn(NULL, "user %s: malformed page report rejected", s->user);
        return;
    }
    if (ev.kind == PAGE_QR)
        s->maybe_linked = false; /* the profile holds no login */
    else if (ev.kind == PAGE_AUTHENTICATED || ev.kind == PAGE_READY)
        s->maybe_linked = true;
    if (s->unlinking) {
        /* Not a user's page: it only has to be logged out. */
        unlinker__page(s, ev.kind);
        ss_page_event_clear(&ev);
        return;
    }
    switch (ev.kind) {
    case PAGE_HELLO:
        timing(s, ev.text[0] != '\0' ? "Debug.VERSION" : "script started");
        if (ev.text[0] != '\0')
            wa_info(NULL, "user %s: WhatsApp Web %s", s->user, ev.text);
        break;
    case PAGE_LOADING:
        wa_debug(NULL, "user %s: page state %s", s->user, ev.text);
        break;
    case PAGE_QR:
        if (s->status != SS_INITIALIZING && s->status != SS_QR)
            break;
        if (s->qr_count >= s->ss->cfg.qr_max) {
            sessions__stop(s, STOP_END, "qr_timeout", NULL, NULL);
            break;
        }
        if (s->qr_count == 0)
            timing(s, "first QR");
        s->qr_count++;
        t.to = SS_QR;
        t.qr = ev.text;
        if (state__set(s, &t) != WA_OK)
            wa_warn(NULL, "user %s: QR code refused", s->user);
        break;
    case PAGE_AUTHENTICATED:
        t.to = SS_AUTHENTICATED;
        (void)state__set(s, &t);
        break;
    case PAGE_READY:
        t.to = SS_READY;
        t.phone = ev.phone;
        t.name = ev.name;
        if (state__set(s, &t) == WA_OK)
            sessions__page_ready(s);
        break;
    case PAGE_MESSAGE:
        if (s->status == SS_READY) {
            (void)state__message(s, ev.msg);
            ev.msg = NULL;
        }
        break;
    case PAGE_LOGOUT:
        sessions__page_logout(s);
        break;
    case PAGE_ERROR:
        sessions__page_failed(s, ev.text);
        break;
    }
    ss_page_event_clear(&ev);
}

void adapter__on_event(ss_session_t *s, const char *session, const char *method,
                       const cJSON *params)
{
    const cJSON *ctx, *aux, *frame, *id;
    const char *v, *url, *target;

    if (strcmp(method, "Target.attachedToTarget") == 0) {
        if (session != NULL)
            return; /* only the browser's own auto-attach is on */
        v = str_field(params, "sessionId", 1, CDP_SESSION_MAX);
        target =
            str_field(cJSON_GetObjectItemCaseSensitive(params, "targetInfo"),
                      "targetId", 1, CDP_SESSION_MAX);
        if (v == NULL)
            return;
        switch (adapter__page_attached(&s->page, target, v)) {
        case SS_ATTACH_OURS:
            if (s->page.step == STEP_CREATE)
                page_attached(s);
            break;
        case SS_ATTACH_PENDING:
            break;
        case SS_ATTACH_FOREIGN:
            release(page_cdp(s), v);
            break;
        }
        return;
    }
    if (strcmp(method, "Target.detachedFromTarget") == 0) {
        v = str_field(params, "sessionId", 1, CDP_SESSION_MAX);
        if (v != NULL && strcmp(v, s->page.session_id) == 0)
            sessions__page_failed(s, "the page was closed");
        return;
    }
    if (session == NULL || !s->page.attached ||
        strcmp(session, s->page.session_id) != 0)
        return;
    if (strcmp(method, "Runtime.bindingCalled") == 0) {
        on_binding(s, params);
    } else if (strcmp(method, "Runtime.executionContextCreated") == 0) {
        ctx = cJSON_GetObjectItemCaseSensitive(params, "context");
        aux = cJSON_GetObjectItemCaseSensitive(ctx, "auxData");
        id = cJSON_GetObjectItemCaseSensitive(ctx, "id");
        v = str_field(aux, "frameId", 1, CDP_SESSION_MAX);
        if (cJSON_IsNumber(id) && v != NULL &&
            strcmp(v, s->page.target_id) == 0 &&
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(aux, "isDefault")))
            s->page.context_id = (int64_t)id->valuedouble;
    } else if (strcmp(method, "Runtime.executionContextsCleared") == 0) {
        s->page.context_id = 0;
    } else if (strcmp(method, "Runtime.executionContextDestroyed") == 0) {
        id = cJSON_GetObjectItemCaseSensitive(params, "executionContextId");
        if (cJSON_IsNumber(id) &&
            (int64_t)id->valuedouble == s->page.context_id)
            s->page.context_id = 0;
    } else if (strcmp(method, "Page.frameNavigated") == 0) {
        frame = cJSON_GetObjectItemCaseSensitive(params, "frame");
        url = str_field(frame, "url", 1, 64 * 1024);
        if (cJSON_GetObjectItemCaseSensitive(frame, "parentId") == NULL &&
            url != NULL && strstr(url, "post_logout=1") != NULL)
            sessions__page_logout(s);
    } else if (strcmp(method, "Inspector.targetCrashed") == 0) {
        sessions__page_failed(s, "the page crashed");
    }
}

/* ---------------------------------------------------------- calls */

typedef struct call_ctx {
    ss_session_t *s;
    adapter_done_fn done;
    void *arg;
    char fn[16];
} call_ctx_t;

static wa_err_t page_code(const char *code)
{
    wa_err_t err;

    if (code != NULL && wa_err_from_code(code, &err) == WA_OK &&
        (err == WA_ENOTFOUND || err == WA_ENOTREADY || err == WA_EINVAL))
        return err;
    return WA_EBROWSER;
}

static void call_done(void *arg, wa_err_t err, const cJSON *result,
                      const char *errmsg)
{
    call_ctx_t *cc = arg;
    const cJSON *r, *v, *ok;
    const char *code, *msg;
    cJSON *data = NULL;
    char text[SS_ERRMSG_MAX + 1];

    cc->s->busy--;
    (void)errmsg; /* DevTools' own text may quote the page: not passed on */
    if (err != WA_OK) {
        cc->done(cc->arg, err == WA_ECLOSED ? WA_ENOTREADY : err, NULL,
                 err == WA_ETIMEDOUT ? "the page did not answer in time"
                 : err == WA_ECLOSED ? "the browser closed"
                                     : "the browser refused the call");
        free(cc);
        return;
    }
    r = cJSON_GetObjectItemCaseSensitive(result, "result");
    v = cJSON_GetObjectItemCaseSensitive(r, "value");
    if (cJSON_GetObjectItemCaseSensitive(result, "exceptionDetails") != NULL ||
        !cJSON_IsObject(v) ||
        !cJSON_IsBool(ok = cJSON_GetObjectItemCaseSensitive(v, "ok"))) {
        cc->done(cc->arg, WA_EBROWSER, NULL, "the page call failed");
        free(cc);
        return;
    }
    if (!cJSON_IsTrue(ok)) {
        code = str_field(v, "code", 1, 32);
        msg = str_field(v, "message", 1, 4096);
        copy_utf8(text, sizeof(text), msg != NULL ? msg : "page error");
        cc->done(cc->arg, page_code(code), NULL, text);
        free(cc);
        return;
    }
    err = adapter__result(cc->fn, cJSON_GetObjectItemCaseSensitive(v, "data"),
                          &data);
    cc->done(cc->arg, err, data,
             err == WA_ENOTFOUND  ? "not found"
             : err == WA_EBROWSER ? "the page answered malformed data"
                                  : NULL);
    free(cc);
}

void adapter__call(ss_session_t *s, const char *fn, cJSON *args, int timeout_ms,
                   adapter_done_fn done, void *arg)
{
    cJSON *p = NULL, *av, *a;
    call_ctx_t *cc = NULL;
    cdp_t *c = page_cdp(s);
    wa_err_t err;

    if (c == NULL || !s->page.attached || s->page.context_id == 0) {
        cJSON_Delete(args);
        done(arg, WA_ENOTREADY, NULL, "the session has no page");
        return;
    }
    if (args == NULL)
        args = cJSON_CreateObject();
    if (args == NULL || (cc = calloc(1, sizeof(*cc))) == NULL ||
        (p = cJSON_CreateObject()) == NULL)
        goto oom;
    cc->s = s;
    cc->done = done;
    cc->arg = arg;
    snprintf(cc->fn, sizeof(cc->fn), "%s", fn);
    if (cJSON_AddStringToObject(p, "functionDeclaration", call_fn) == NULL ||
        cJSON_AddNumberToObject(p, "executionContextId",
                                (double)s->page.context_id) == NULL ||
        cJSON_AddBoolToObject(p, "returnByValue", 1) == NULL ||
        cJSON_AddBoolToObject(p, "awaitPromise", 1) == NULL ||
        (av = cJSON_AddArrayToObject(p, "arguments")) == NULL)
        goto oom;
    if ((a = cJSON_CreateObject()) == NULL)
        goto oom;
    cJSON_AddItemToArray(av, a);
    if (cJSON_AddStringToObject(a, "value", fn) == NULL ||
        (a = cJSON_CreateObject()) == NULL)
        goto oom;
    cJSON_AddItemToArray(av, a);
    cJSON_AddItemToObject(a, "value", args); /* user data: a value only */
    args = NULL;
    s->busy++;
    err = cdp__call(c, s->page.session_id, "Runtime.callFunctionOn", p,
                    timeout_ms, call_done, cc);
    if (err != WA_OK) {
        s->busy--;
        free(cc);
        done(arg, err == WA_ETOOBIG ? WA_ETOOBIG : WA_ENOTREADY, NULL,
             "the browser is not reachable");
    }
    return;
oom:
    cJSON_Delete(args);
    cJSON_Delete(p);
    free(cc);
    done(arg, WA_ENOMEM, NULL, NULL);
}
