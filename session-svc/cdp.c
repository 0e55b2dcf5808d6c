/*
 * cdp.c - the DevTools protocol client (see cdp.h).
 *
 * Incoming bytes are appended to one growing buffer; each NUL ends a frame.
 * A frame is parsed with cJSON, checked for shape, and dispatched: a reply
 * to the pending call with its id, an event to the event callback. Pending
 * calls sit in a list; one timer fires at the earliest deadline.
 */
#include "cdp.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Room asked of the buffer before each read. */
#define READ_CHUNK (64u * 1024u)

typedef struct pending {
    struct pending *prev, *next;
    int64_t id;
    uint64_t deadline; /* uv_now() milliseconds */
    cdp_reply_fn fn;
    void *arg;
} pending_t;

typedef struct write_req {
    uv_write_t req;
    cdp_t *c;
    size_t len;
    char data[];
} write_req_t;

struct cdp {
    uv_loop_t *loop;
    uv_pipe_t cmd; /* we write: the browser's fd 3 */
    uv_pipe_t evt; /* we read: the browser's fd 4 */
    uv_timer_t timer;
    cdp_handlers_t h;
    char *buf;      /* received bytes not yet consumed */
    size_t len;     /* bytes in buf */
    size_t cap;     /* allocated */
    size_t scanned; /* buf[0..scanned) holds no NUL */
    pending_t *head, *tail;
    size_t npending;
    int64_t next_id;
    uint64_t timer_due; /* 0: not armed */
    int handles;        /* open libuv handles; freed at 0 */
    bool reading;
    bool closing; /* cdp__close was called */
    bool dead;    /* the connection ended by itself */
    cdp_stats_t stats;
};

static void unlink_pending(cdp_t *c, pending_t *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        c->head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        c->tail = p->prev;
    p->prev = p->next = NULL;
    c->npending--;
}

/* Fail every pending call with err; callbacks may add or cancel calls. */
static void fail_all(cdp_t *c, wa_err_t err)
{
    pending_t *p;

    while ((p = c->head) != NULL) {
        unlink_pending(c, p);
        p->fn(p->arg, err, NULL, NULL);
        free(p);
    }
}

/* The connection ended by itself (EOF, error, oversized frame). */
static void connection_end(cdp_t *c, wa_err_t why)
{
    if (c->closing || c->dead)
        return;
    c->dead = true;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->evt);
        c->reading = false;
    }
    fail_all(c, WA_ECLOSED);
    if (c->h.on_closed != NULL && !c->closing)
        c->h.on_closed(c->h.arg, why);
}

static void on_handle_closed(uv_handle_t *h)
{
    cdp_t *c = h->data;

    if (--c->handles == 0) {
        free(c->buf);
        free(c);
    }
}

/* ---- timeouts ---- */

static void arm_timer(cdp_t *c);

static void on_timer(uv_timer_t *t)
{
    cdp_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    pending_t *p;

    c->timer_due = 0;
    for (;;) {
        if (c->closing || c->dead)
            return;
        for (p = c->head; p != NULL && p->deadline > now; p = p->next)
            ;
        if (p == NULL)
            break;
        unlink_pending(c, p);
        c->stats.timeouts++;
        p->fn(p->arg, WA_ETIMEDOUT, NULL, NULL);
        free(p);
    }
    arm_timer(c);
}

/* Arm the timer for the earliest deadline, if it is not already due then. */
static void arm_timer(cdp_t *c)
{
    uint64_t due = 0, now;
    pending_t *p;

    for (p = c->head; p != NULL; p = p->next) {
        if (due == 0 || p->deadline < due)
            due = p->deadline;
    }
    if (due == 0) {
        if (c->timer_due != 0)
            uv_timer_stop(&c->timer);
        c->timer_due = 0;
        return;
    }
    if (c->timer_due != 0 && c->timer_due <= due)
        return;
    now = uv_now(c->loop);
    c->timer_due = due;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ---- incoming frames ---- */

static const cJSON *object_member(const cJSON *o, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsObject(m) ? m : NULL;
}

/* A bounded, NUL-free string member, or NULL. */
static const char *string_member(const cJSON *o, const char *name, size_t max)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsString(m) || m->valuestring == NULL ||
        strlen(m->valuestring) > max || m->valuestring[0] == '\0')
        return NULL;
    return m->valuestring;
}

static void dispatch_reply(cdp_t *c, const cJSON *root, const cJSON *idj)
{
    const cJSON *result, *error;
    const char *msg;
    pending_t *p;
    double d = idj->valuedouble;

    if (!cJSON_IsNumber(idj) || !isfinite(d) || d < 1 || d > 9e15 ||
        d != floor(d)) {
        c->stats.frames_bad++;
        return;
    }
    for (p = c->head; p != NULL && p->id != (int64_t)d; p = p->next)
        ;
    if (p == NULL)
        return; /* timed out or cancelled already */
    unlink_pending(c, p);
    if ((result = object_member(root, "result")) != NULL) {
        p->fn(p->arg, WA_OK, result, NULL);
    } else if ((error = object_member(root, "error")) != NULL) {
        msg = string_member(error, "message", 1024);
        p->fn(p->arg, WA_EBROWSER, NULL,
              msg != NULL ? msg : "protocol error without a message");
    } else {
        c->stats.frames_bad++;
        p->fn(p->arg, WA_EBROWSER, NULL, "reply without result or error");
    }
    free(p);
}

static void dispatch(cdp_t *c, const char *frame, size_t len)
{
    const char *end = NULL, *method, *session = NULL;
    const cJSON *idj, *params, *sj;
    cJSON *root, *empty = NULL;

    c->stats.frames_in++;
    root = cJSON_ParseWithLengthOpts(frame, len, &end, 0);
    if (root == NULL || !cJSON_IsObject(root) || end != frame + len) {
        c->stats.frames_bad++;
        cJSON_Delete(root);
        return;
    }
    if ((idj = cJSON_GetObjectItemCaseSensitive(root, "id")) != NULL) {
        dispatch_reply(c, root, idj);
        cJSON_Delete(root);
        return;
    }
    method = string_member(root, "method", CDP_METHOD_MAX);
    sj = cJSON_GetObjectItemCaseSensitive(root, "sessionId");
    if (sj != NULL &&
        (session = string_member(root, "sessionId", CDP_SESSION_MAX)) == NULL)
        method = NULL; /* a sessionId that is not a proper string */
    params = cJSON_GetObjectItemCaseSensitive(root, "params");
    if (method == NULL || (params != NULL && !cJSON_IsObject(params))) {
        c->stats.frames_bad++;
        cJSON_Delete(root);
        return;
    }
    if (params == NULL && (params = empty = cJSON_CreateObject()) == NULL) {
        cJSON_Delete(root);
        return;
    }
    if (c->h.on_event != NULL)
        c->h.on_event(c->h.arg, session, method, params);
    cJSON_Delete(empty);
    cJSON_Delete(root);
}

/* Dispatch every complete frame in the buffer. */
static void consume(cdp_t *c)
{
    size_t start = 0;
    char *nul;

    while (!c->closing && !c->dead) {
        nul = memchr(c->buf + c->scanned, '\0', c->len - c->scanned);
        if (nul == NULL) {
            c->scanned = c->len;
            break;
        }
        if ((size_t)(nul - (c->buf + start)) > CDP_FRAME_MAX) {
            connection_end(c, WA_ETOOBIG);
            return;
        }
        dispatch(c, c->buf + start, (size_t)(nul - (c->buf + start)));
        start = (size_t)(nul - c->buf) + 1;
        c->scanned = start;
    }
    if (c->closing || c->dead)
        return;
    if (start > 0) {
        memmove(c->buf, c->buf + start, c->len - start);
        c->len -= start;
        c->scanned -= start;
    }
    if (c->len > CDP_FRAME_MAX)
        connection_end(c, WA_ETOOBIG);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    cdp_t *c = h->data;
    size_t want;
    char *nb;

    (void)hint;
    if (c->cap - c->len < READ_CHUNK) {
        want = c->len + READ_CHUNK;
        if (want < c->cap * 2)
            want = c->cap * 2;
        if (want > CDP_FRAME_MAX + 2 * READ_CHUNK)
            want = CDP_FRAME_MAX + 2 * READ_CHUNK;
        if (want <= c->len || (nb = realloc(c->buf, want)) == NULL) {
            *b = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        c->buf = nb;
        c->cap = want;
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    cdp_t *c = s->data;

    (void)b;
    if (c->closing || c->dead)
        return;
    if (n < 0) {
        connection_end(c, n == UV_ENOBUFS ? WA_ETOOBIG : WA_ECLOSED);
        return;
    }
    c->len += (size_t)n;
    consume(c);
}

/* ---- outgoing ---- */

static void on_written(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    cdp_t *c = w->c;

    free(w);
    if (status < 0)
        connection_end(c, WA_ECLOSED);
}

wa_err_t cdp__call(cdp_t *c, const char *session, const char *method,
                   cJSON *params, int timeout_ms, cdp_reply_fn fn, void *arg)
{
    cJSON *root = NULL;
    pending_t *p = NULL;
    write_req_t *w = NULL;
    char *text = NULL;
    size_t len;
    uv_buf_t b;
    wa_err_t err = WA_ENOMEM;

    if (c == NULL || method == NULL || fn == NULL || timeout_ms <= 0 ||
        (params != NULL && !cJSON_IsObject(params))) {
        cJSON_Delete(params);
        return WA_EINVAL;
    }
    if (c->closing || c->dead) {
        cJSON_Delete(params);
        return WA_ECLOSED;
    }
    if (params == NULL && (params = cJSON_CreateObject()) == NULL)
        return WA_ENOMEM;
    if ((root = cJSON_CreateObject()) == NULL) {
        cJSON_Delete(params);
        return WA_ENOMEM;
    }
    if (cJSON_AddNumberToObject(root, "id", (double)(c->next_id + 1)) == NULL ||
        cJSON_AddStringToObject(root, "method", method) == NULL) {
        cJSON_Delete(params);
        goto fail;
    }
    cJSON_AddItemToObject(root, "params", params);
    if (session != NULL &&
        cJSON_AddStringToObject(root, "sessionId", session) == NULL)
        goto fail;
    if ((text = cJSON_PrintUnformatted(root)) == NULL)
        goto fail;
    len = strlen(text);
    if (len > CDP_FRAME_MAX) {
        err = WA_ETOOBIG;
        goto fail;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL ||
        (w = malloc(sizeof(*w) + len + 1)) == NULL)
        goto fail;
    w->c = c;
    w->len = len + 1;
    memcpy(w->data, text, len + 1); /* the NUL ends the frame */
    b = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->cmd, &b, 1, on_written) != 0) {
        err = WA_ECLOSED;
        goto fail;
    }
    c->next_id++;
    p->id = c->next_id;
    p->deadline = uv_now(c->loop) + (uint64_t)timeout_ms;
    p->fn = fn;
    p->arg = arg;
    p->prev = c->tail;
    if (c->tail != NULL)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    c->npending++;
    c->stats.calls++;
    arm_timer(c);
    cJSON_free(text);
    cJSON_Delete(root);
    return WA_OK;

fail:
    free(w);
    free(p);
    cJSON_free(text);
    cJSON_Delete(root);
    return err;
}

void cdp__cancel(cdp_t *c, void *arg)
{
    pending_t *p;

    if (c == NULL)
        return;
    for (;;) {
        for (p = c->head; p != NULL && p->arg != arg; p = p->next)
            ;
        if (p == NULL)
            return;
        unlink_pending(c, p);
        p->fn(p->arg, WA_ECLOSED, NULL, NULL);
        free(p);
    }
}

size_t cdp__pending(const cdp_t *c)
{
    return c == NULL ? 0 : c->npending;
}

void cdp__stats(const cdp_t *c, cdp_stats_t *out)
{
    if (c != NULL && out != NULL)
        *out = c->stats;
}

/* ---- life cycle ---- */

wa_err_t cdp__new(uv_loop_t *loop, const cdp_handlers_t *h, cdp_t **out)
{
    cdp_t *c;

    if (loop == NULL || out == NULL)
        return WA_EINVAL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return WA_ENOMEM;
    c->loop = loop;
    if (h != NULL)
        c->h = *h;
    if (uv_pipe_init(loop, &c->cmd, 0) != 0) {
        free(c);
        return WA_EINTERNAL;
    }
    c->handles = 1;
    c->cmd.data = c;
    /* From here on the handles exist: failures go through close. */
    if (uv_pipe_init(loop, &c->evt, 0) != 0) {
        uv_close((uv_handle_t *)&c->cmd, on_handle_closed);
        return WA_EINTERNAL;
    }
    c->handles++;
    c->evt.data = c;
    if (uv_timer_init(loop, &c->timer) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->cmd, on_handle_closed);
        uv_close((uv_handle_t *)&c->evt, on_handle_closed);
        return WA_EINTERNAL;
    }
    c->handles++;
    c->timer.data = c;
    *out = c;
    return WA_OK;
}

uv_pipe_t *cdp__cmd_pipe(cdp_t *c)
{
    return &c->cmd;
}

uv_pipe_t *cdp__evt_pipe(cdp_t *c)
{
    return &c->evt;
}

wa_err_t cdp__open_fds(cdp_t *c, int cmd_fd, int evt_fd)
{
    if (c == NULL || cmd_fd < 0 || evt_fd < 0)
        return WA_EINVAL;
    if (uv_pipe_open(&c->cmd, cmd_fd) != 0 ||
        uv_pipe_open(&c->evt, evt_fd) != 0)
        return WA_EINTERNAL;
    return WA_OK;
}

wa_err_t cdp__start(cdp_t *c)
{
    if (c == NULL || c->closing || c->dead)
        return WA_EINVAL;
    if (c->reading)
        return WA_OK;
    if (uv_read_start((uv_stream_t *)&c->evt, on_alloc, on_read) != 0)
        return WA_ECLOSED;
    c->reading = true;
    return WA_OK;
}

void cdp__close(cdp_t *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->evt);
        c->reading = false;
    }
    fail_all(c, WA_ECLOSED);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->cmd, on_handle_closed);
    uv_close((uv_handle_t *)&c->evt, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}
