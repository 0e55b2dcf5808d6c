/*
 * pub.h - events on the PUB socket, one per nng message or several in one.
 *
 * DESIGN §6 gives the single form, which stays the contract every producer
 * may use and every consumer must accept:
 *
 *   single   <user>\n<json>
 *
 * A publisher under load may instead send a batch: a message whose topic
 * (the bytes before the first '\n') is empty, followed by records
 * separated by '\n', each a single-form event:
 *
 *   batch    \n<user>\n<json>\n<user>\n<json>...\n<user>\n<json>
 *
 * No user id can be empty (wa_check_user), so no user's topic is a prefix
 * of a batch, and a batch cannot be mistaken for a single event (whose
 * decoder refuses an empty user). The JSON of a record is compact: the
 * encoder escapes every newline inside strings, and a record whose JSON
 * holds a raw newline is never batched (it goes out in the single form).
 *
 * Consequence for subscribers: a SUB socket subscribed to one user
 * ("<user>\n") never receives that user's batched events. Only a
 * subscriber of everything (the notifier) sees batches; it must split them
 * with wa_pub_split_*. A consumer that needs one user's events subscribes
 * to everything and filters after splitting.
 *
 * One nng message per event costs a hand-off to nng's threads on both
 * sides; a batch costs one for all its events. wa_publisher_t forms
 * batches by itself from the backlog that builds up while it sends, with
 * no timer: at a low rate every event goes alone, in the single form.
 */
#ifndef WA_PUB_H
#define WA_PUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "wa/envelope.h"
#include "wa/err.h"

/* Most records one batch may hold; a longer batch is refused whole. */
#define WA_PUB_BATCH_MAX 1024
/* The publisher's bound on the bytes of a batch message: well under the
 * receive limit of the socket (WA_ENVELOPE_MAX). An event bigger than this
 * goes alone, in the single form. */
#define WA_PUB_BATCH_BYTES (256u * 1024u)

/* Is buf[0..len) in the batch form (empty topic)? Nothing more is checked. */
bool wa_pub_is_batch(const void *buf, size_t len);

/*
 * Encode evs[0..n) (1..WA_PUB_BATCH_MAX) as one batch message, in order.
 * Not consumed. WA_EINVAL for bad arguments or an event whose JSON would
 * hold a raw newline, the encoder's error for an invalid event, WA_ETOOBIG
 * over WA_ENVELOPE_MAX in all. *out (malloc'd, caller frees) on success.
 */
wa_err_t wa_pub_batch_encode(const wa_event_t *evs, size_t n, char **out,
                             size_t *outlen);

/*
 * Reading a PUB message of either form, one event at a time. The message
 * must stay valid and unchanged until the last wa_pub_split_next().
 *
 *   wa_pub_split_t s;
 *   if (wa_pub_split_begin(&s, buf, len) == WA_OK)
 *       while (wa_pub_split_next(&s, &ev) == WA_OK) { ...; wa_event_clear(&ev);
 * } malformed += s.bad;
 */
typedef struct wa_pub_split {
    size_t records; /* records in the message (1 for the single form) */
    size_t len;     /* bytes of the record last returned */
    size_t bad;     /* records refused so far */
    wa_err_t err;   /* why the last refused record was refused */
    /* private */
    const char *p, *end;
    size_t left;
    bool batch;
} wa_pub_split_t;

/*
 * Check the framing of buf[0..len) and count its records, before anything
 * is decoded. WA_ETOOBIG over WA_ENVELOPE_MAX or WA_PUB_BATCH_MAX records,
 * WA_EPROTO for a batch without records, WA_EINVAL for bad arguments; then
 * nothing is to be read. A single-form message is one record.
 */
wa_err_t wa_pub_split_begin(wa_pub_split_t *s, const void *buf, size_t len);

/*
 * The next well-formed event, in message order: WA_OK with *ev set
 * (wa_event_clear() it), or WA_ENOTFOUND when no record is left. Each
 * record is decoded by wa_event_decode(), with all its checks; one it
 * refuses (empty or bad user, bad JSON, a truncated or extra record) is
 * skipped and counted in s->bad, its error in s->err. Reads only within
 * the message.
 */
wa_err_t wa_pub_split_next(wa_pub_split_t *s, wa_event_t *ev);

/* The same with wa_event_decode_frame: ev->frame instead of ev->data, for
 * a relay that only passes events on. */
wa_err_t wa_pub_split_next_frame(wa_pub_split_t *s, wa_event_t *ev);

/* ---- the publisher ---------------------------------------------------- */

typedef struct wa_publisher wa_publisher_t;

typedef struct wa_publisher_opts {
    size_t queue_max;   /* events queued at most; 0 = 16384 */
    size_t queue_bytes; /* encoded bytes queued at most; 0 = 64 MiB */
    size_t batch_max;   /* events per message, 1..WA_PUB_BATCH_MAX; 0 = max */
    size_t batch_bytes; /* bytes per batch message; 0 = WA_PUB_BATCH_BYTES */
} wa_publisher_opts_t;

typedef struct wa_publisher_stats {
    uint64_t queued;   /* accepted by wa_publisher_publish() */
    uint64_t dropped;  /* refused because the queue was full */
    uint64_t sent;     /* events in messages nng accepted */
    uint64_t failed;   /* events in messages nng refused (or ENOMEM) */
    uint64_t messages; /* messages nng accepted */
    uint64_t batches;  /* of which in the batch form */
    wa_err_t last_err; /* the last send failure, WA_OK if none */
} wa_publisher_stats_t;

/*
 * A publisher on the PUB socket pub (which stays the caller's and must stay
 * open until wa_publisher_free() returns): a bounded FIFO queue and one
 * thread that sends what is queued, one event in the single form, several
 * in one batch (at most batch_max events and batch_bytes bytes). Events of
 * one wa_publisher_publish() caller go out in the order published. *out on
 * success; WA_EINVAL, WA_ENOMEM, WA_EINTERNAL (no thread).
 */
wa_err_t wa_publisher_new(nng_socket pub, const wa_publisher_opts_t *opts,
                          wa_publisher_t **out);

/*
 * Encode ev (not consumed) on the caller's thread and queue it. WA_OK;
 * WA_EFULL when the queue is full (the event is dropped and counted: PUB
 * drops under load anyway, and events carry seq); WA_ECLOSED once
 * wa_publisher_free() began; the encoder's error for an invalid event.
 * Never blocks on the network. Thread-safe, but every call must have
 * returned before wa_publisher_free() does.
 */
wa_err_t wa_publisher_publish(wa_publisher_t *p, const wa_event_t *ev);

/* Wait until every event queued before this call has been handed to nng
 * (or failed). Thread-safe; not from the publisher's own thread. */
void wa_publisher_flush(wa_publisher_t *p);

/* A snapshot of the counters. Thread-safe. */
void wa_publisher_stats(wa_publisher_t *p, wa_publisher_stats_t *st);

/* Refuse new events, send everything queued, stop the thread, free. No
 * other call on p may start after this one. NULL is a no-op. */
void wa_publisher_free(wa_publisher_t *p);

#endif /* WA_PUB_H */
