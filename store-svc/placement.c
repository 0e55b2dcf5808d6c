/*
 * placement.c - the session-svc instance registry and user placement
 * (DESIGN §6).
 *
 * Liveness is a function of the clock, not a timer: an instance is live
 * while now - last_seen_ms <= STORE_DEAD_AFTER_MS. last_seen_ms is wall
 * time (the caller's clock), so it keeps its meaning across a restart of
 * store-svc and live instances stay live through one.
 *
 * A user is placed by rendezvous hashing: among the live instances with
 * fewer placed users than their capacity, the one with the highest
 * score(user, instance). Adding or losing an instance moves only the users
 * that must move. A placement on a live instance is never moved (that would
 * kill a running browser); one on a dead instance is reassigned.
 */
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "wa/hash.h"
#include "wa/log.h"

/* splitmix64's finaliser: spreads FNV's weak low-entropy bits. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t placement__score(const char *user, const char *instance)
{
    /* The NUL between the two keeps ("ab","c") apart from ("a","bc"). */
    uint64_t h = wa_fnv1a(WA_FNV1A_INIT, user, strlen(user) + 1);

    return mix(wa_fnv1a(h, instance, strlen(instance)));
}

int64_t placement__alive_since(int64_t now_ms)
{
    return now_ms - STORE_DEAD_AFTER_MS;
}

wa_err_t placement__register(db_conn_t *c, const char *instance,
                             const char *url, long capacity, int64_t now_ms)
{
    sqlite3_stmt *st = db__stmt(c, ST_INSTANCE_UPSERT);
    char now[WA_TIMESTAMP_MAX + 1];
    wa_err_t err = WA_OK;
    int rc;

    wa_timestamp_ms(now_ms, now, sizeof(now));
    if ((rc = db__bind_text(st, 1, instance)) != SQLITE_OK ||
        (rc = db__bind_text(st, 2, url)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 3, capacity)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 4, now_ms)) != SQLITE_OK ||
        (rc = db__bind_text(st, 5, now)) != SQLITE_OK) {
        err = db__fail(c, rc, "instance.register bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_DONE)
        err = db__fail(c, rc, "instance.register");
out:
    (void)sqlite3_reset(st);
    return err;
}

wa_err_t placement__supersede(db_conn_t *c, const char *instance,
                              int64_t now_ms, int *superseded)
{
    sqlite3_stmt *st = db__stmt(c, ST_INSTANCE_SUPERSEDE);
    wa_err_t err = WA_OK;
    int rc;

    *superseded = 0;
    if ((rc = db__bind_text(st, 1, instance)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 2, now_ms - STORE_SUPERSEDED_MS)) !=
            SQLITE_OK) {
        err = db__fail(c, rc, "instance supersede bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
        err = db__fail(c, rc, "instance supersede");
        goto out;
    }
    *superseded = sqlite3_changes(c->h);
out:
    (void)sqlite3_reset(st);
    return err;
}

wa_err_t placement__heartbeat(db_conn_t *c, const char *instance, long sessions,
                              int64_t now_ms)
{
    sqlite3_stmt *st = db__stmt(c, ST_INSTANCE_HEARTBEAT);
    wa_err_t err = WA_OK;
    int rc;

    if ((rc = db__bind_text(st, 1, instance)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 2, sessions)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 3, now_ms)) != SQLITE_OK ||
        (rc = sqlite3_bind_int64(st, 4, placement__alive_since(now_ms))) !=
            SQLITE_OK) {
        err = db__fail(c, rc, "instance.heartbeat bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) {
        err = db__fail(c, rc, "instance.heartbeat");
        goto out;
    }
    /* Unknown, or dead already: its users may have moved, so it must
     * register again and then re-read its placements. */
    if (sqlite3_changes(c->h) == 0)
        err = WA_ENOTFOUND;
out:
    (void)sqlite3_reset(st);
    return err;
}

/* {instance, url, capacity, sessions, lastSeen, alive} of an instance
 * row; arg points at now_ms. lastSeen is null for an instance another
 * one replaced at its URL (placement__register). */
static cJSON *instance_row(sqlite3_stmt *st, void *arg)
{
    const int64_t now_ms = *(const int64_t *)arg;
    const int64_t last = sqlite3_column_int64(st, 4);
    char seen[WA_TIMESTAMP_MAX + 1];
    cJSON *o = cJSON_CreateObject();

    wa_timestamp_ms(last, seen, sizeof(seen));
    if (o == NULL || !db__add_column(o, "instance", st, 0) ||
        !db__add_column(o, "url", st, 1) ||
        !cJSON_AddNumberToObject(o, "capacity",
                                 (double)sqlite3_column_int64(st, 2)) ||
        !cJSON_AddNumberToObject(o, "sessions",
                                 (double)sqlite3_column_int64(st, 3)) ||
        (last == 0 ? !cJSON_AddNullToObject(o, "lastSeen")
                   : !cJSON_AddStringToObject(o, "lastSeen", seen)) ||
        !cJSON_AddBoolToObject(o, "alive",
                               last >= placement__alive_since(now_ms))) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

wa_err_t placement__instances(db_conn_t *c, int64_t now_ms, cJSON **out)
{
    return db__list(c, db__stmt(c, ST_INSTANCE_LIST), "instances", instance_row,
                    &now_ms, "instance.list", out);
}

wa_err_t placement__instance_counts(db_conn_t *c, int64_t now_ms, cJSON **out)
{
    sqlite3_stmt *st = db__stmt(c, ST_INSTANCE_COUNT);
    wa_err_t err = WA_OK;
    cJSON *res = NULL;
    int rc;

    if ((rc = sqlite3_bind_int64(st, 1, placement__alive_since(now_ms))) !=
        SQLITE_OK) {
        err = db__fail(c, rc, "instance count bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        err = db__fail(c, rc, "instance count");
        goto out;
    }
    if ((res = cJSON_CreateObject()) == NULL ||
        !cJSON_AddNumberToObject(res, "total",
                                 (double)sqlite3_column_int64(st, 0)) ||
        !cJSON_AddNumberToObject(res, "alive",
                                 (double)sqlite3_column_int64(st, 1))) {
        err = WA_ENOMEM;
        goto out;
    }
    *out = res;
    res = NULL;
out:
    (void)sqlite3_reset(st);
    cJSON_Delete(res);
    return err;
}

/* Copy column i (TEXT, NOT NULL in the schema) into dst of size n. */
static void copy_column(sqlite3_stmt *st, int i, char *dst, size_t n)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    snprintf(dst, n, "%s", s != NULL ? (const char *)s : "");
}

/*
 * user's current placement: WA_OK with *out when its instance is live,
 * WA_ENOTFOUND otherwise; then prev (size > STORE_INSTANCE_MAX) names the
 * dead owner, or is "" when the user was never placed.
 */
static wa_err_t lookup(db_conn_t *c, const char *user, int64_t now_ms,
                       placement_t *out, char *prev)
{
    sqlite3_stmt *st = db__stmt(c, ST_PLACEMENT_GET);
    wa_err_t err = WA_OK;
    int rc;

    prev[0] = '\0';
    if ((rc = db__bind_text(st, 1, user)) != SQLITE_OK) {
        err = db__fail(c, rc, "placement bind");
        goto out;
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        err = WA_ENOTFOUND;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err = db__fail(c, rc, "placement");
        goto out;
    }
    /* A NULL url: the instance row is gone; dead like a silent one. */
    if (sqlite3_column_type(st, 1) == SQLITE_NULL ||
        sqlite3_column_int64(st, 2) < placement__alive_since(now_ms)) {
        copy_column(st, 0, prev, STORE_INSTANCE_MAX + 1);
        err = WA_ENOTFOUND;
        goto out;
    }
    memset(out, 0, sizeof(*out));
    copy_column(st, 0, out->instance, sizeof(out->instance));
    copy_column(st, 1, out->url, sizeof(out->url));
out:
    (void)sqlite3_reset(st);
    return err;
}

wa_err_t placement__lookup(db_conn_t *c, const char *user, int64_t now_ms,
                           placement_t *out)
{
    char prev[STORE_INSTANCE_MAX + 1];

    return lookup(c, user, now_ms, out, prev);
}

/* The best live instance with room for user, by rendezvous score:
 * WA_ENOSESSIONSVC if none is alive, WA_EFULL if every live one is full. */
static wa_err_t choose(db_conn_t *c, const char *user, int64_t now_ms,
                       placement_t *out)
{
    sqlite3_stmt *st = db__stmt(c, ST_INSTANCE_LIVE);
    const unsigned char *name;
    wa_err_t err = WA_ENOSESSIONSVC;
    uint64_t best = 0, score;
    int rc;

    if ((rc = sqlite3_bind_int64(st, 1, placement__alive_since(now_ms))) !=
        SQLITE_OK) {
        err = db__fail(c, rc, "placement choose bind");
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 3) >= sqlite3_column_int64(st, 2)) {
            if (err == WA_ENOSESSIONSVC)
                err = WA_EFULL; /* alive, but full */
            continue;
        }
        if ((name = sqlite3_column_text(st, 0)) == NULL) {
            err = WA_ENOMEM;
            goto out;
        }
        score = placement__score(user, (const char *)name);
        /* Ties (astronomically rare) go to the smaller name: still a pure
         * function of the candidates, whatever order SQLite returns. */
        if (err == WA_OK &&
            (score < best ||
             (score == best && strcmp((const char *)name, out->instance) > 0)))
            continue;
        best = score;
        err = WA_OK;
        copy_column(st, 0, out->instance, sizeof(out->instance));
        copy_column(st, 1, out->url, sizeof(out->url));
    }
    if (rc != SQLITE_DONE)
        err = db__fail(c, rc, "placement choose");
out:
    (void)sqlite3_reset(st);
    return err;
}

static wa_err_t put(db_conn_t *c, const char *user, const char *instance,
                    const char *now_iso)
{
    sqlite3_stmt *st = db__stmt(c, ST_PLACEMENT_PUT);
    wa_err_t err = WA_OK;
    int rc;

    if ((rc = db__bind_text(st, 1, user)) != SQLITE_OK ||
        (rc = db__bind_text(st, 2, instance)) != SQLITE_OK ||
        (rc = db__bind_text(st, 3, now_iso)) != SQLITE_OK) {
        err = db__fail(c, rc, "placement write bind");
        goto out;
    }
    if ((rc = sqlite3_step(st)) != SQLITE_DONE)
        err = db__fail(c, rc, "placement write");
out:
    (void)sqlite3_reset(st);
    return err;
}

wa_err_t placement__resolve(db_conn_t *c, const char *user, int64_t now_ms,
                            const char *now_iso, placement_t *out)
{
    char prev[STORE_INSTANCE_MAX + 1];
    placement_t p;
    wa_err_t err;

    err = lookup(c, user, now_ms, &p, prev);
    if (err == WA_OK) {
        *out = p;
        return WA_OK;
    }
    if (err != WA_ENOTFOUND)
        return err;
    memset(&p, 0, sizeof(p));
    if ((err = choose(c, user, now_ms, &p)) != WA_OK)
        return err;
    if ((err = put(c, user, p.instance, now_iso)) != WA_OK)
        return err;
    snprintf(p.previous, sizeof(p.previous), "%s", prev);
    *out = p;
    return WA_OK;
}

/*
 * The first column of at most max rows of statement id, run with ?1 = ms
 * and ?2 = max, into names (max strings of width bytes each); *n of them.
 * what names the query in an error.
 */
static wa_err_t first_names(db_conn_t *c, db_stmt_t id, int64_t ms, int max,
                            char *names, size_t width, int *n, const char *what)
{
    sqlite3_stmt *st = db__stmt(c, id);
    wa_err_t err = WA_OK;
    int rc;

    *n = 0;
    if ((rc = sqlite3_bind_int64(st, 1, ms)) != SQLITE_OK ||
        (rc = sqlite3_bind_int(st, 2, max)) != SQLITE_OK) {
        err = db__fail(c, rc, what);
        goto out;
    }
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
        copy_column(st, 0, names + (size_t)(*n)++ * width, width);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        err = db__fail(c, rc, what);
out:
    (void)sqlite3_reset(st);
    return err;
}

wa_err_t placement__rescue(db_conn_t *c, int64_t now_ms, const char *now_iso,
                           const char *rid, int *moved)
{
    char users[STORE_RESCUE_BATCH][WA_USER_MAX + 1];
    wa_err_t err = WA_OK;
    placement_t p;
    int n = 0;

    *moved = 0;
    /* Read them all first: placements change below. */
    err = first_names(c, ST_PLACEMENT_ORPHANS, now_ms - STORE_RESCUE_AFTER_MS,
                      STORE_RESCUE_BATCH, users[0], sizeof(users[0]), &n,
                      "placement rescue");
    for (int i = 0; i < n && err == WA_OK; i++) {
        err = placement__resolve(c, users[i], now_ms, now_iso, &p);
        if (err == WA_EFULL || err == WA_ENOSESSIONSVC)
            return WA_OK; /* no room now: a later heartbeat tries again */
        if (err != WA_OK)
            break;
        (*moved)++;
        wa_info(rid, "user %s moved from dead instance %s to %s", users[i],
                p.previous, p.instance);
    }
    return err;
}

/* The users placed on instance whose session was running, into users. */
static wa_err_t running_users(db_conn_t *c, const char *instance, cJSON *users)
{
    sqlite3_stmt *st = db__stmt(c, ST_PLACEMENT_RUNNING);
    wa_err_t err = WA_OK;
    int rc, room = STORE_LOST_USERS - cJSON_GetArraySize(users);

    if ((rc = db__bind_text(st, 1, instance)) != SQLITE_OK ||
        (rc = sqlite3_bind_int(st, 2, room)) != SQLITE_OK) {
        err = db__fail(c, rc, "lost users bind");
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *u = db__column_string(st, 0);

        if (u == NULL || !cJSON_AddItemToArray(users, u)) {
            cJSON_Delete(u);
            err = WA_ENOMEM;
            goto out;
        }
    }
    if (rc != SQLITE_DONE)
        err = db__fail(c, rc, "lost users");
out:
    (void)sqlite3_reset(st);
    return err;
}

wa_err_t placement__lost(db_conn_t *c, int64_t now_ms, cJSON *users)
{
    char dead[STORE_LOST_INSTANCES][STORE_INSTANCE_MAX + 1];
    wa_err_t err;
    int n = 0, rc;

    /* Read them all first: their rows change below. */
    err = first_names(c, ST_INSTANCE_LOST, placement__alive_since(now_ms),
                      STORE_LOST_INSTANCES, dead[0], sizeof(dead[0]), &n,
                      "lost instances");
    for (int i = 0; i < n && err == WA_OK; i++) {
        sqlite3_stmt *mark = db__stmt(c, ST_INSTANCE_LOST_MARK);

        if ((rc = db__bind_text(mark, 1, dead[i])) != SQLITE_OK ||
            (rc = sqlite3_step(mark)) != SQLITE_DONE)
            err = db__fail(c, rc, "lost instance mark");
        (void)sqlite3_reset(mark);
        if (err == WA_OK)
            err = running_users(c, dead[i], users);
    }
    return err;
}

static cJSON *user_row(sqlite3_stmt *st, void *arg)
{
    (void)arg;
    return db__column_string(st, 0);
}

wa_err_t placement__users(db_conn_t *c, const char *instance, cJSON **out)
{
    sqlite3_stmt *st = db__stmt(c, ST_PLACEMENT_USERS);
    int rc;

    if ((rc = db__bind_text(st, 1, instance)) != SQLITE_OK) {
        (void)sqlite3_reset(st);
        return db__fail(c, rc, "placement.list bind");
    }
    return db__list(c, st, "users", user_row, NULL, "placement.list", out);
}
