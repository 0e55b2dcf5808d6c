/*
 * state.c - the session status machine (DESIGN §4 statuses):
 *
 *   disconnected -> initializing -> qr -> authenticated -> ready
 *                         \          \          \            \
 *                          +----------+----------+-> error -> initializing
 *   and every state but disconnected -> disconnected.
 *
 * state__set is the one transition function: it checks the move against
 * the table, updates the session in memory, and hands the store write and
 * the event to storeio, which records before it publishes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"
#include "wa/log.h"

static const char *const names[SS_STATUS_COUNT] = {
    "disconnected", "initializing", "qr", "authenticated", "ready", "error",
};

/* legal[from][to] */
static const bool legal[SS_STATUS_COUNT][SS_STATUS_COUNT] = {
    /*                 D      I      Q      A      R      E   */
    [SS_DISCONNECTED] = {false, true, false, false, false, false},
    [SS_INITIALIZING] = {true, false, true, true, false, true},
    [SS_QR] = {true, false, true, true, false, true},
    [SS_AUTHENTICATED] = {true, false, false, false, true, true},
    /* ready -> authenticated: the page reloaded and synced again */
    [SS_READY] = {true, false, false, true, false, true},
    [SS_ERROR] = {true, true, false, false, false, false},
};

const char *state__name(ss_status_t s)
{
    return (unsigned)s < SS_STATUS_COUNT ? names[s] : NULL;
}

bool state__legal(ss_status_t from, ss_status_t to)
{
    if ((unsigned)from >= SS_STATUS_COUNT || (unsigned)to >= SS_STATUS_COUNT)
        return false;
    return legal[from][to];
}

static cJSON *str_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? cJSON_CreateString(s)
                                     : cJSON_CreateNull();
}

/* Add name: s (or null) to o; false on OOM. */
static bool add(cJSON *o, const char *name, const char *s)
{
    cJSON *v = str_or_null(s);

    if (v == NULL)
        return false;
    cJSON_AddItemToObject(o, name, v);
    return true;
}

static void job_free(storeio_job_t *j)
{
    if (j != NULL) {
        cJSON_Delete(j->upsert);
        cJSON_Delete(j->record);
        cJSON_Delete(j->publish);
        free(j);
    }
}

/* A job for user's event of type, its record empty; with a row update
 * (upsert, empty) when row is set. */
static storeio_job_t *job_new(const char *user, wa_event_type_t type, bool row)
{
    storeio_job_t *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return NULL;
    snprintf(j->user, sizeof(j->user), "%s", user);
    wa_rid_new(j->rid, sizeof(j->rid));
    j->type = type;
    if ((row && (j->upsert = cJSON_CreateObject()) == NULL) ||
        (j->record = cJSON_CreateObject()) == NULL) {
        job_free(j);
        return NULL;
    }
    return j;
}

wa_err_t state__set(ss_session_t *s, const ss_transition_t *t)
{
    const ss_status_t from = s->status, to = t->to;
    const char *st = state__name(to);
    storeio_job_t *j = NULL;
    wa_event_type_t type = WA_EV_STATUS;
    char *url = NULL, *raw = NULL, now[WA_TIMESTAMP_MAX + 1];
    bool ok;

    if (st == NULL)
        return WA_EINVAL;
    if (from == to && to != SS_QR && !t->force)
        return WA_OK; /* nothing changes */
    if (from != to && !state__legal(from, to)) {
        wa_debug(t->rid, "user %s: %s -> %s refused", s->user,
                 state__name(from), st);
        return WA_ECONFLICT;
    }
    if (to == SS_QR) {
        if (t->qr == NULL || qr__data_url(t->qr, &url) != WA_OK)
            return WA_EINVAL;
        if ((raw = strdup(t->qr)) == NULL) {
            free(url);
            return WA_ENOMEM;
        }
        type = WA_EV_QR;
    } else if (to == SS_READY) {
        type = WA_EV_READY;
    } else if (to == SS_DISCONNECTED) {
        type = WA_EV_DISCONNECTED;
    } else if (to == SS_ERROR) {
        type = WA_EV_ERROR;
    }
    wa_timestamp_now(now, sizeof(now));
    if ((j = job_new(s->user, type, true)) == NULL) {
        free(url);
        free(raw);
        return WA_ENOMEM;
    }

    /* The row. A QR code is kept only while the status is qr. */
    ok = add(j->upsert, "status", st) &&
         add(j->upsert, "qrCode", to == SS_QR ? url : NULL);
    if (ok && to == SS_READY)
        ok = add(j->upsert, "phoneNumber", t->phone) &&
             add(j->upsert, "displayName", t->name) &&
             add(j->upsert, "connectedAt", now) &&
             add(j->upsert, "lastActivity", now);
    if (ok && to == SS_DISCONNECTED && t->clear_account)
        ok = add(j->upsert, "phoneNumber", NULL) &&
             add(j->upsert, "displayName", NULL) &&
             add(j->upsert, "connectedAt", NULL);

    /* The event: recorded as is, except that the QR string and its image
     * are published but never stored in the log. */
    ok = ok && add(j->record, "status", st);
    if (ok && to == SS_READY)
        ok = add(j->record, "phoneNumber", t->phone) &&
             add(j->record, "displayName", t->name);
    if (ok && to == SS_DISCONNECTED)
        ok = add(j->record, "reason", t->reason);
    if (ok && to == SS_ERROR)
        ok = add(j->record, "message",
                 t->message != NULL ? t->message : "error");
    if (ok && to == SS_QR) {
        ok = cJSON_AddNumberToObject(j->record, "count", s->qr_count) != NULL &&
             (j->publish = cJSON_Duplicate(j->record, 1)) != NULL &&
             add(j->publish, "qr", raw) && add(j->publish, "qrDataUrl", url);
    }
    if (!ok) {
        job_free(j);
        free(url);
        free(raw);
        return WA_ENOMEM;
    }

    /* Memory first (the loop answers wa.status from it), then the store. */
    free(s->qr_raw);
    free(s->qr_url);
    s->qr_raw = raw;
    s->qr_url = url;
    s->status = to;
    s->changed_at = uv_hrtime() / 1000000;
    if (from == SS_INITIALIZING && to != SS_INITIALIZING)
        spare__fill(s->ss); /* spares start when no user waits on a start */
    if (to == SS_READY) {
        snprintf(s->phone, sizeof(s->phone), "%s",
                 t->phone != NULL ? t->phone : "");
        snprintf(s->name, sizeof(s->name), "%s",
                 t->name != NULL ? t->name : "");
        memcpy(s->connected_at, now, sizeof(now));
        memcpy(s->last_activity, now, sizeof(now));
    } else if (to == SS_DISCONNECTED && t->clear_account) {
        s->phone[0] = s->name[0] = s->connected_at[0] = '\0';
    }
    if (from != to)
        wa_info(t->rid, "user %s: %s -> %s%s%s", s->user, state__name(from), st,
                t->reason != NULL ? " reason " : "",
                t->reason != NULL ? t->reason : "");
    if (storeio__submit(s->ss->io, j) != WA_OK)
        wa_error(t->rid,
                 "user %s: status %s not written: store queue "
                 "refused it",
                 s->user, st);
    return WA_OK;
}

wa_err_t state__message(ss_session_t *s, cJSON *msg)
{
    storeio_job_t *j;
    char now[WA_TIMESTAMP_MAX + 1];

    if (msg == NULL)
        return WA_EINVAL;
    wa_timestamp_now(now, sizeof(now));
    if ((j = job_new(s->user, WA_EV_MESSAGE, true)) == NULL) {
        cJSON_Delete(msg);
        return WA_ENOMEM;
    }
    cJSON_Delete(j->record);
    /* Stored without its body; published with it. */
    j->publish = msg;
    if ((j->record = cJSON_Duplicate(msg, 1)) == NULL ||
        !add(j->upsert, "lastActivity", now)) {
        job_free(j);
        return WA_ENOMEM;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(j->record, "body");
    memcpy(s->last_activity, now, sizeof(now));
    if (storeio__submit(s->ss->io, j) != WA_OK)
        wa_error(NULL,
                 "user %s: message event not written: store queue "
                 "refused it",
                 s->user);
    return WA_OK;
}

/* Queue j, an event without a row to write (consumed). */
static wa_err_t announce(ss_t *ss, storeio_job_t *j)
{
    char user[WA_USER_MAX + 1];

    snprintf(user, sizeof(user), "%s", j->user);
    if (storeio__submit(ss->io, j) != WA_OK) {
        wa_error(NULL, "user %s: event not written: store queue refused it",
                 user);
        return WA_EFULL;
    }
    return WA_OK;
}

wa_err_t state__lost(ss_t *ss, const char *user)
{
    ss_session_t *s;
    storeio_job_t *j;

    if (wa_check_user(user) != WA_OK)
        return WA_EINVAL;
    if ((s = sessions__find(ss, user)) != NULL &&
        (s->want || s->browser != NULL))
        return WA_OK; /* it runs here: not lost */
    if ((j = job_new(user, WA_EV_ERROR, false)) == NULL ||
        !add(j->record, "status", "error") ||
        !add(j->record, "reason", "instance_lost") ||
        !add(j->record, "message",
             "the session service running this session stopped answering; "
             "another instance takes it over")) {
        job_free(j);
        return WA_ENOMEM;
    }
    wa_info(NULL, "user %s: its instance died; told", user);
    return announce(ss, j);
}

wa_err_t state__resumed(ss_session_t *s)
{
    const bool ready = s->status == SS_READY;
    storeio_job_t *j;

    if (s->status == SS_DISCONNECTED || s->status == SS_ERROR)
        return WA_OK; /* not a running session: never reported lost */
    if ((j = job_new(s->user, ready ? WA_EV_READY : WA_EV_STATUS, false)) ==
            NULL ||
        !add(j->record, "status", state__name(s->status)) ||
        (ready && (!add(j->record, "phoneNumber", s->phone) ||
                   !add(j->record, "displayName", s->name))) ||
        !add(j->record, "reason", "resumed")) {
        job_free(j);
        return WA_ENOMEM;
    }
    return announce(s->ss, j);
}
