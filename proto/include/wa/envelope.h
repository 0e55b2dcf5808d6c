/*
 * envelope.h - the bus contract of DESIGN §6: operation names, and the
 * encoder/decoder of every message that crosses nng.
 *
 *   request  {"v":1,"op":"<op>","user":"<id>","rid":"<id>","args":{...}}
 *   reply    {"v":1,"ok":true,"data":<any>}
 *            {"v":1,"ok":false,"code":"<machine code>","message":"<text>"}
 *   event    <user-id>\n{"v":1,"type":"<type>","data":{...},
 *                        "timestamp":"<iso8601>","seq":<n>}
 *
 * Decoders check everything: size, UTF-8, JSON syntax, version, every field's
 * presence, type and length. They never crash on hostile bytes and return a
 * wa_err_t naming what was wrong. Encoders and decoders are thread-safe.
 * Buffers returned through `char **out` are malloc'd; the caller frees them
 * with free().
 */
#ifndef WA_ENVELOPE_H
#define WA_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "wa/err.h"

#define WA_ENVELOPE_VERSION 1

/* Largest message the bus carries; sockets set NNG_OPT_RECVMAXSZ to this. */
#define WA_ENVELOPE_MAX (4u * 1024u * 1024u)
/* Longest user id, request id, error message and timestamp, in bytes. */
#define WA_USER_MAX 128
#define WA_RID_MAX 64
#define WA_MESSAGE_MAX 256
#define WA_TIMESTAMP_MAX 32
#define WA_EVENT_TYPE_MAX 16

/* Every bus operation. The table in envelope.c maps each to its name. */
typedef enum wa_op {
    /* store-svc */
    WA_OP_PING = 0,           /* "ping": liveness, any service */
    WA_OP_SESSION_GET,        /* "session.get" */
    WA_OP_SESSION_UPSERT,     /* "session.upsert" */
    WA_OP_SESSION_LIST,       /* "session.list" */
    WA_OP_LOG_APPEND,         /* "log.append" */
    WA_OP_LOG_LIST,           /* "log.list" */
    WA_OP_EVENT_RECORD,       /* "event.record": log + assign the user's seq */
    WA_OP_INSTANCE_REGISTER,  /* "instance.register" */
    WA_OP_INSTANCE_HEARTBEAT, /* "instance.heartbeat" */
    WA_OP_INSTANCE_LIST,      /* "instance.list" */
    WA_OP_PLACEMENT_RESOLVE,  /* "placement.resolve" */
    WA_OP_PLACEMENT_LIST, /* "placement.list": users placed on an instance */
    WA_OP_DIAG,           /* "diag": counts and versions */
    WA_OP_SEND_CLAIM,     /* "send.claim": a wa.send's rid, once ever */
    /* session-svc */
    WA_OP_WA_CONNECT,       /* "wa.connect" */
    WA_OP_WA_DISCONNECT,    /* "wa.disconnect" */
    WA_OP_WA_STATUS,        /* "wa.status" */
    WA_OP_WA_CHATS,         /* "wa.chats" */
    WA_OP_WA_MESSAGES,      /* "wa.messages" */
    WA_OP_WA_SEND,          /* "wa.send" */
    WA_OP_WA_CHAT_BY_PHONE, /* "wa.chat_by_phone" */
    /* any bus server (proto answers it; handlers never see it) */
    WA_OP_BUS_BATCH, /* "bus.batch": several requests in one message */
    WA_OP_COUNT      /* not an operation */
} wa_op_t;

/* Name of op ("session.get"), or NULL if op is out of range. */
const char *wa_op_name(wa_op_t op);

/* Look a name up; WA_OK and *out set, or WA_EUNKNOWNOP. */
wa_err_t wa_op_from_name(const char *name, wa_op_t *out);

/* Event types of DESIGN §5. */
typedef enum wa_event_type {
    WA_EV_STATUS = 0,
    WA_EV_QR,
    WA_EV_READY,
    WA_EV_MESSAGE,
    WA_EV_DISCONNECTED,
    WA_EV_ERROR,
    WA_EV_RESYNC,
    WA_EV_COUNT
} wa_event_type_t;

/* Name of an event type ("qr"), or NULL if out of range. */
const char *wa_event_type_name(wa_event_type_t type);

/* Look a name up; WA_OK and *out set, or WA_EINVAL (NULL or unknown). */
wa_err_t wa_event_type_from_name(const char *name, wa_event_type_t *out);

/* A decoded request. args is always a JSON object, owned by the struct. */
typedef struct wa_request {
    wa_op_t op;
    char user[WA_USER_MAX + 1]; /* may be "" for operations without a user */
    char rid[WA_RID_MAX + 1];
    cJSON *args;
} wa_request_t;

/* A decoded reply. On ok, data is owned (may be a JSON null, never NULL),
 * or, from the *_raw decoders and calls, raw is instead: the text of
 * "data" as the peer sent it, checked to be JSON (json.h), NUL-terminated.
 * Otherwise err and message describe the failure and data and raw are
 * NULL. */
typedef struct wa_reply {
    int ok;
    wa_err_t err;
    char message[WA_MESSAGE_MAX + 1];
    cJSON *data;
    char *raw;
    size_t raw_len;
} wa_reply_t;

/* An event. data is a JSON object owned by the struct; from
 * wa_event_decode_frame, data is NULL and frame holds the event's WebSocket
 * frame instead (owned too). */
typedef struct wa_event {
    char user[WA_USER_MAX + 1];
    wa_event_type_t type;
    int64_t seq; /* >= 1 once store-svc recorded it; 0 = not yet assigned */
    char timestamp[WA_TIMESTAMP_MAX + 1];
    cJSON *data;
    char *frame; /* NUL-terminated */
    size_t frame_len;
} wa_event_t;

/*
 * Check that a user id or request id is acceptable on the bus: 1..max bytes
 * of valid UTF-8 without control characters (user) or of printable ASCII
 * (rid). Used by the decoders and by every producer.
 */
wa_err_t wa_check_user(const char *user);
wa_err_t wa_check_rid(const char *rid);

/* Is buf[0..len) valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF)? */
int wa_utf8_valid(const void *buf, size_t len);

/*
 * Length of the longest prefix of the string s, at most max bytes, that
 * does not cut a UTF-8 sequence (for text shown cut short: messages, close
 * reasons). Reads at most max + 1 bytes of s.
 */
size_t wa_utf8_prefix(const char *s, size_t max);

/*
 * Encode a request. user may be "" (operations that name no user); args may
 * be NULL (encoded as {}) and must otherwise be an object. The encoder does
 * not take ownership of args.
 */
wa_err_t wa_request_encode(wa_op_t op, const char *user, const char *rid,
                           const cJSON *args, char **out, size_t *outlen);

/* Decode buf into *req (zeroed first). On failure *req holds nothing to
 * free. On success release it with wa_request_clear(). */
wa_err_t wa_request_decode(const void *buf, size_t len, wa_request_t *req);
void wa_request_clear(wa_request_t *req);

/* As wa_request_decode, from an already parsed (and byte-checked) object:
 * the members of one "bus.batch". args is detached from obj; obj stays the
 * caller's. */
wa_err_t wa_request_from_json(cJSON *obj, wa_request_t *req);

/* Encode a success reply; data may be NULL (encoded as null). Not consumed. */
wa_err_t wa_reply_encode_ok(const cJSON *data, char **out, size_t *outlen);

/* Encode an error reply; message may be NULL (wa_strerror(err) is used) and
 * is truncated to WA_MESSAGE_MAX bytes on a UTF-8 boundary. err != WA_OK. */
wa_err_t wa_reply_encode_err(wa_err_t err, const char *message, char **out,
                             size_t *outlen);

/* Decode buf into *rep (zeroed first). The envelope is read without a tree
 * (json.h); only "data" is parsed, and by the _raw form not even that: it
 * is left as text for a caller that relays it. */
wa_err_t wa_reply_decode(const void *buf, size_t len, wa_reply_t *rep);
wa_err_t wa_reply_decode_raw(const void *buf, size_t len, wa_reply_t *rep);
void wa_reply_clear(wa_reply_t *rep);

/* As wa_reply_decode, from an already parsed object; data is detached from
 * obj, which stays the caller's. */
wa_err_t wa_reply_from_json(cJSON *obj, wa_reply_t *rep);

/*
 * A JSON integer for a tree that is only printed: cJSON 1.7.15 prints
 * every number through "%1.15g" and reads it back with sscanf, which
 * measured as a visible share of the store's and the gateway's CPU. This
 * node is raw text instead: readers of the tree see cJSON_IsRaw, not
 * cJSON_IsNumber. NULL on ENOMEM.
 */
cJSON *wa_json_int(int64_t v);

/*
 * "bus.batch": several encoded requests (wa_request_encode output) carried
 * as one request {"v":1,"op":"bus.batch","user":"","rid":R,
 * "args":{"calls":[<request>,...]}}, answered by one reply
 * {"v":1,"ok":true,"data":{"replies":[<reply>,...]}} in the same order.
 * rid must also be free of quotes and backslashes. WA_ETOOBIG past
 * WA_ENVELOPE_MAX.
 */
wa_err_t wa_batch_request_encode(const char *rid, char *const *reqs,
                                 const size_t *lens, size_t n, char **out,
                                 size_t *outlen);
wa_err_t wa_batch_reply_encode(char *const *replies, const size_t *lens,
                               size_t n, char **out, size_t *outlen);

/* Initialise an event (data = new empty object). Returns WA_ENOMEM. */
wa_err_t wa_event_init(wa_event_t *ev, const char *user, wa_event_type_t type);

/* Encode as "<user>\n<json>" for PUB. Not consumed. */
wa_err_t wa_event_encode(const wa_event_t *ev, char **out, size_t *outlen);
wa_err_t wa_event_decode(const void *buf, size_t len, wa_event_t *ev);

/*
 * As wa_event_decode, the same checks and errors, for a relay: no tree is
 * built; ev->frame is set to what wa_event_frame() would encode, with
 * "data" copied as the publisher wrote it (checked JSON, json.h), and
 * ev->data stays NULL. Release with wa_event_clear().
 */
wa_err_t wa_event_decode_frame(const void *buf, size_t len, wa_event_t *ev);

/* Encode the WebSocket frame {"type","data","timestamp","seq"}. */
wa_err_t wa_event_frame(const wa_event_t *ev, char **out, size_t *outlen);
void wa_event_clear(wa_event_t *ev);

/* Current UTC time as ISO-8601 with milliseconds: 2026-11-26T10:00:00.123Z.
 * buf must hold WA_TIMESTAMP_MAX + 1 bytes. */
void wa_timestamp_now(char *buf, size_t len);

/* epoch_ms (milliseconds since 1970, negative ones too) in the same form.
 * A buf too short for it gets "", never a cut timestamp. */
void wa_timestamp_ms(int64_t epoch_ms, char *buf, size_t len);

#endif /* WA_ENVELOPE_H */
