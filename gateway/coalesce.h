/*
 * coalesce.h - single-flight for identical reads.
 *
 * Requests with the same key (route, user, query) that arrive while one of
 * them is being answered share that answer instead of each making its own
 * bus call: the first becomes the leader and computes it, the others
 * (followers) wait for it and send its status and body with their own
 * request id. The flight leaves the table as soon as the leader publishes,
 * so an answer is never reused by a request that arrives after it was
 * ready: what a follower gets is at most one round trip older than its own
 * arrival, as if its read had overtaken it. No cache, no TTL.
 *
 * Thread-safe: one mutex for the table; followers wait on the flight's
 * condition variable.
 */
#ifndef GW_COALESCE_H
#define GW_COALESCE_H

#include <stdbool.h>
#include <stddef.h>

#include "wa/err.h"

typedef struct gw_flights gw_flights_t;
typedef struct gw_flight gw_flight_t;

/* The answer a leader publishes; strings owned by the flight. */
typedef struct gw_answer {
    int status;
    char *ctype;
    char *body;
    size_t len;
    char *extra; /* extra header lines, may be NULL */
} gw_answer_t;

wa_err_t gw_flights_new(gw_flights_t **out);
void gw_flights_free(gw_flights_t *f);

/*
 * Join the flight for key, or start one. Returns the flight (never NULL
 * unless out of memory) and sets *leader. Every caller ends with
 * gw_flight_leave(); a leader first calls gw_flight_publish() (or
 * gw_flight_publish_failed()).
 */
gw_flight_t *gw_flight_join(gw_flights_t *f, const char *key, bool *leader);

/* Leader: publish a copy of the answer and wake the followers. Removes the
 * flight from the table (later arrivals start a new one). */
void gw_flight_publish(gw_flights_t *f, gw_flight_t *fl, int status,
                       const char *ctype, const char *body, size_t len,
                       const char *extra);

/* Leader: there is no answer to share (out of memory, a handler bug);
 * followers give up and compute their own. */
void gw_flight_publish_failed(gw_flights_t *f, gw_flight_t *fl);

/*
 * Follower: wait until the answer is published or deadline_ms (wa_now_ms
 * clock) passes. WA_OK with *ans pointing into the flight (valid until
 * gw_flight_leave), WA_ETIMEDOUT, or WA_EINTERNAL when the leader failed.
 */
wa_err_t gw_flight_wait(gw_flights_t *f, gw_flight_t *fl, long long deadline_ms,
                        const gw_answer_t **ans);

/* Drop the caller's reference; the last one frees the flight. A leader
 * must have published first. */
void gw_flight_leave(gw_flights_t *f, gw_flight_t *fl);

/*
 * Take every flight whose key's second line is user out of the table, so
 * reads arriving after a write of that user's start afresh (read your
 * writes). Keys are "<route>\n<user>\n<query>". Their followers still get
 * their answer.
 */
void gw_flights_forget_user(gw_flights_t *f, const char *user);

/* Flights in the table now (for tests). */
size_t gw_flights_active(gw_flights_t *f);

#endif /* GW_COALESCE_H */
