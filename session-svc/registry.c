/*
 * registry.c - this instance in store-svc's registry (DESIGN §6):
 * instance.register at start and whenever a heartbeat answers not_found,
 * instance.heartbeat every 2 s with the number of sessions, the restore of
 * the users placed here whose last status was authenticated or ready, and
 * the check that stops a browser whose user was placed elsewhere.
 *
 * Store calls block, so each round runs on libuv's thread pool
 * (uv_queue_work); its results are applied on the loop in the after
 * callback. One round at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "wa/log.h"

#define HEARTBEAT_MS 2000
/* Placement is checked every this many heartbeats; a user missing from
 * two checks in a row is stopped (a connect may race one check). */
#define PLACEMENT_EVERY 2
/* A user whose status changed this recently (or during the round) is
 * left to the next round: the store may not hold that change yet, and a
 * stale "ready" read back would relaunch a user just disconnected. */
#define SETTLE_MS 5000
#define LOST_AFTER 2

typedef enum round_kind {
    ROUND_REGISTER, /* register, then list and read the placed users */
    ROUND_BEAT,     /* heartbeat, sometimes with a placement check */
} round_kind_t;

struct ss_registry {
    ss_t *ss;
    uv_timer_t timer;
    uv_work_t work;
    bool busy;
    bool registered;
    bool restored;
    bool resume; /* registered again after being counted dead: at the next
                    placement check, say the kept sessions' status */
    bool stopping;
    unsigned tick;
    uint64_t tick_at; /* ms (uv_hrtime) when the round's snapshot was taken */
    /* One round's input and output. */
    round_kind_t kind;
    long sessions;
    bool check_placement;
    wa_err_t err;   /* of register / heartbeat */
    cJSON *placed;  /* {users:[...]} or NULL */
    cJSON *rows;    /* restore: [{user, status}] or NULL */
    cJSON *running; /* users with a browser here, as the round began */
    cJSON *lost;    /* heartbeat: users of dead instances to tell, or NULL */
};

static void rid(char *buf)
{
    wa_rid_new(buf, WA_RID_MAX + 1);
}

static wa_err_t do_register(ss_registry_t *r)
{
    ss_t *ss = r->ss;
    char id[WA_RID_MAX + 1];
    wa_reply_t rep;
    cJSON *a;
    wa_err_t err;
    const char *url = ss->advertise;

    if ((a = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(a, "instance", ss->instance) == NULL ||
        cJSON_AddStringToObject(a, "url", url) == NULL ||
        cJSON_AddNumberToObject(a, "capacity", (double)ss->cfg.max_sessions) ==
            NULL) {
        cJSON_Delete(a);
        return WA_ENOMEM;
    }
    rid(id);
    err = wa_bus_call(ss->store, WA_OP_INSTANCE_REGISTER, "", id, a,
                      (int)ss->cfg.store_timeout_ms, &rep);
    cJSON_Delete(a);
    wa_reply_clear(&rep);
    return err;
}

/* placement.list for this instance: {users:[...]} into *out. */
static wa_err_t do_placed(ss_registry_t *r, cJSON **out)
{
    ss_t *ss = r->ss;
    char id[WA_RID_MAX + 1];
    wa_reply_t rep;
    cJSON *a;
    wa_err_t err;

    *out = NULL;
    if ((a = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(a, "instance", ss->instance) == NULL) {
        cJSON_Delete(a);
        return WA_ENOMEM;
    }
    rid(id);
    err = wa_bus_call(ss->store, WA_OP_PLACEMENT_LIST, "", id, a,
                      (int)ss->cfg.store_timeout_ms, &rep);
    cJSON_Delete(a);
    if (err != WA_OK) {
        wa_reply_clear(&rep);
        return err;
    }
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(rep.data, "users"))) {
        wa_reply_clear(&rep);
        return WA_EPROTO;
    }
    *out = rep.data;
    rep.data = NULL;
    wa_reply_clear(&rep);
    return WA_OK;
}

static bool in_array(const cJSON *arr, const char *user);

/* session.get for each placed user not running here: [{user, status}]. */
static cJSON *read_rows(ss_registry_t *r, const cJSON *placed)
{
    ss_t *ss = r->ss;
    const cJSON *u, *st;
    char id[WA_RID_MAX + 1];
    wa_reply_t rep;
    cJSON *rows = cJSON_CreateArray(), *row;

    if (rows == NULL)
        return NULL;
    cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(placed, "users"))
    {
        if (!cJSON_IsString(u) || wa_check_user(u->valuestring) != WA_OK)
            continue;
        if (r->running != NULL && in_array(r->running, u->valuestring))
            continue;
        rid(id);
        if (wa_bus_call(ss->store, WA_OP_SESSION_GET, u->valuestring, id, NULL,
                        (int)ss->cfg.store_timeout_ms, &rep) != WA_OK) {
            wa_warn(id, "user %s: session.get failed; not restored",
                    u->valuestring);
            wa_reply_clear(&rep);
            continue;
        }
        st = cJSON_GetObjectItemCaseSensitive(rep.data, "status");
        if (cJSON_IsString(st) && (row = cJSON_CreateObject()) != NULL) {
            cJSON_AddStringToObject(row, "user", u->valuestring);
            cJSON_AddStringToObject(row, "status", st->valuestring);
            /* connectedAt is set at ready and cleared when the account is
             * unlinked: the profile holds a login. */
            cJSON_AddBoolToObject(
                row, "linked",
                cJSON_IsString(
                    cJSON_GetObjectItemCaseSensitive(rep.data, "connectedAt")));
            cJSON_AddItemToArray(rows, row);
        }
        wa_reply_clear(&rep);
    }
    return rows;
}

static void work(uv_work_t *w)
{
    ss_registry_t *r = w->data;
    ss_t *ss = r->ss;
    char id[WA_RID_MAX + 1];
    wa_reply_t rep;
    cJSON *a;

    r->placed = r->rows = r->lost = NULL;
    if (r->kind == ROUND_REGISTER) {
        if ((r->err = do_register(r)) != WA_OK || r->restored)
            return;
        if (do_placed(r, &r->placed) == WA_OK)
            r->rows = read_rows(r, r->placed);
        return;
    }
    if ((a = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(a, "instance", ss->instance) == NULL ||
        cJSON_AddNumberToObject(a, "sessions", (double)r->sessions) == NULL) {
        cJSON_Delete(a);
        r->err = WA_ENOMEM;
        return;
    }
    rid(id);
    r->err = wa_bus_call(ss->store, WA_OP_INSTANCE_HEARTBEAT, "", id, a,
                         (int)ss->cfg.store_timeout_ms, &rep);
    cJSON_Delete(a);
    /* Users of instances that died since the last report: ours to tell. */
    if (r->err == WA_OK &&
        cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(rep.data, "lost")))
        r->lost = cJSON_DetachItemFromObjectCaseSensitive(rep.data, "lost");
    wa_reply_clear(&rep);
    /* Users placed here that we do not run (moved to us from a dead
     * instance): read their status, to adopt those that were linked. */
    if (r->err == WA_OK && r->check_placement &&
        do_placed(r, &r->placed) == WA_OK)
        r->rows = read_rows(r, r->placed);
}

/*
 * Restore: relaunch users last authenticated/ready, and linked users whose
 * own relaunch (initializing, or error while waiting out a crash backoff)
 * was cut short by a stop of the instance: their profile still holds the
 * login, so they come back without a scan. A status no browser backs any
 * more (qr, or initializing/error of a user never linked) becomes
 * disconnected.
 */
static void restore(ss_registry_t *r)
{
    ss_t *ss = r->ss;
    const cJSON *row;
    ss_session_t *s;
    long n = 0;

    cJSON_ArrayForEach(row, r->rows)
    {
        const char *user =
            cJSON_GetObjectItemCaseSensitive(row, "user")->valuestring;
        const char *st =
            cJSON_GetObjectItemCaseSensitive(row, "status")->valuestring;
        bool linked =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "linked"));

        if (sessions__get(ss, user, &s) != WA_OK)
            continue;
        if (r->restored && s->changed_at + SETTLE_MS > r->tick_at)
            continue;
        if (strcmp(st, "authenticated") == 0 || strcmp(st, "ready") == 0 ||
            (linked &&
             (strcmp(st, "initializing") == 0 || strcmp(st, "error") == 0))) {
            if (s->want)
                continue;
            if (sessions__start(s, NULL) != WA_OK)
                wa_warn(NULL, "user %s: not restored (capacity)", user);
            else
                n++;
        } else if (strcmp(st, "disconnected") != 0 && !s->want) {
            ss_transition_t t = {0};

            t.to = SS_DISCONNECTED;
            t.reason = "restart";
            t.force = true;
            (void)state__set(s, &t);
        }
    }
    if (!r->restored || n > 0)
        wa_info(NULL, "%s %ld session(s) placed on %s",
                r->restored ? "adopted" : "restored", n, ss->instance);
    r->restored = true;
}

static bool in_array(const cJSON *arr, const char *user)
{
    const cJSON *u;

    cJSON_ArrayForEach(u, arr)
    {
        if (cJSON_IsString(u) && strcmp(u->valuestring, user) == 0)
            return true;
    }
    return false;
}

static bool user_listed(const cJSON *placed, const char *user)
{
    return in_array(cJSON_GetObjectItemCaseSensitive(placed, "users"), user);
}

/* Stop browsers whose users were placed on another instance. */
static void check_placement(ss_registry_t *r)
{
    ss_session_t *s;

    for (s = r->ss->sessions; s != NULL; s = s->next) {
        if (!s->want || s->stopping)
            continue;
        if (user_listed(r->placed, s->user)) {
            s->lost_checks = 0;
            continue;
        }
        if (++s->lost_checks >= LOST_AFTER) {
            wa_warn(NULL,
                    "user %s: placed on another instance; stopping "
                    "its browser here",
                    s->user);
            sessions__stop(s, STOP_LOST, "moved", NULL, NULL);
        }
    }
}

/* Tell the users of instances store-svc found dead (state__lost). */
static void tell_lost(ss_registry_t *r)
{
    const cJSON *u;

    cJSON_ArrayForEach(u, r->lost)
    {
        if (cJSON_IsString(u))
            (void)state__lost(r->ss, u->valuestring);
    }
}

/* Counted dead, registered again: the sessions still placed here say
 * their status again (state__resumed), as their users may have been told
 * this instance was lost. Those placed elsewhere meanwhile are stopped by
 * check_placement and said nothing. */
static void resume(ss_registry_t *r)
{
    ss_session_t *s;

    r->resume = false;
    for (s = r->ss->sessions; s != NULL; s = s->next) {
        if (s->want && !s->stopping && user_listed(r->placed, s->user))
            (void)state__resumed(s);
    }
}

static void after_work(uv_work_t *w, int status)
{
    ss_registry_t *r = w->data;

    r->busy = false;
    if (status != 0 || r->stopping) {
        cJSON_Delete(r->placed);
        cJSON_Delete(r->rows);
        cJSON_Delete(r->running);
        cJSON_Delete(r->lost);
        r->placed = r->rows = r->running = r->lost = NULL;
        if (r->stopping && r->timer.data == NULL)
            free(r); /* the timer closed while this round ran */
        return;
    }
    if (r->kind == ROUND_REGISTER) {
        if (r->err == WA_OK) {
            if (!r->registered)
                wa_info(NULL, "registered as %s with store-svc",
                        r->ss->instance);
            r->registered = true;
            if (r->rows != NULL)
                restore(r);
        } else if (r->tick % 5 == 0) {
            wa_warn(NULL, "instance.register failed: %s; retrying",
                    wa_err_code(r->err));
        }
    } else if (r->err == WA_ENOTFOUND) {
        wa_warn(NULL, "store-svc forgot this instance; registering again");
        r->registered = false;
        r->resume = true;
    } else if (r->err == WA_OK) {
        if (r->placed != NULL) {
            if (r->resume)
                resume(r);
            check_placement(r);
            if (r->rows != NULL)
                restore(r);
        }
        tell_lost(r);
    }
    cJSON_Delete(r->placed);
    cJSON_Delete(r->rows);
    cJSON_Delete(r->running);
    cJSON_Delete(r->lost);
    r->placed = r->rows = r->running = r->lost = NULL;
}

static void on_tick(uv_timer_t *t)
{
    ss_registry_t *r = t->data;

    if (r->busy || r->stopping)
        return;
    r->tick++;
    r->tick_at = uv_hrtime() / 1000000;
    r->kind = r->registered && r->restored ? ROUND_BEAT : ROUND_REGISTER;
    r->sessions = sessions__active(r->ss);
    r->check_placement = r->tick % PLACEMENT_EVERY == 0;
    /* A snapshot for the pool thread, which must not read the sessions. */
    if ((r->running = cJSON_CreateArray()) != NULL) {
        ss_session_t *s;

        for (s = r->ss->sessions; s != NULL; s = s->next) {
            if (s->want || s->browser != NULL || s->stopping)
                cJSON_AddItemToArray(r->running, cJSON_CreateString(s->user));
        }
    }
    r->work.data = r;
    if (uv_queue_work(r->ss->loop, &r->work, work, after_work) == 0)
        r->busy = true;
}

wa_err_t registry__start(ss_t *ss)
{
    ss_registry_t *r;

    if ((r = calloc(1, sizeof(*r))) == NULL)
        return WA_ENOMEM;
    r->ss = ss;
    if (uv_timer_init(ss->loop, &r->timer) != 0) {
        free(r);
        return WA_EINTERNAL;
    }
    r->timer.data = r;
    ss->registry = r;
    uv_timer_start(&r->timer, on_tick, 0, HEARTBEAT_MS);
    return WA_OK;
}

static void on_timer_closed(uv_handle_t *h)
{
    ss_registry_t *r = h->data;

    /* A round still on the pool finishes first: after_work frees then. */
    if (!r->busy)
        free(r);
    else
        r->timer.data = NULL;
}

void registry__stop(ss_t *ss)
{
    ss_registry_t *r = ss->registry;

    if (r == NULL)
        return;
    r->stopping = true;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    ss->registry = NULL;
}
