/*
 * fakewa.h - the fake WhatsApp Web (DESIGN §8, WAWEB.md): a test double of
 * web.whatsapp.com for the tests and the offline demo.
 *
 *   state.c    the fake WhatsApp *server*: accounts (history, linked
 *              devices, what they sent), the open pages and their QR codes,
 *              the control operations. No CivetWeb, so the unit test drives
 *              it directly.
 *   channel.c  the server side of the page channel below (with state.c,
 *              through the private state_int.h).
 *   check.c    input checks shared by the control API and the channel.
 *   seed.c     the chat history a new account starts with, deterministic
 *              from its phone number.
 *   push.c     the page channel: one WebSocket (/ws/chat) per open page.
 *   control.c  the control API (/_fake/...) and the page's files.
 *   www/       the page itself; embedded at build time (www_assets.c).
 *
 * The page channel carries one JSON object per text frame; every user text
 * travels as a JSON string, never spliced into HTML or JavaScript.
 *
 *   page -> server
 *     {"type":"hello","v":1,"platform","keys":{"noise","identity","adv"},
 *      "login":{"phone","token","name"?}|null}   first frame of every page
 *                                             (a stored login, or none)
 *     {"type":"login","login":{"phone","token"}}   after storing a new login
 *     {"type":"refresh"}                      Cmd.refreshQR()
 *     {"type":"send","rid","id","to","body","t"}
 *     {"type":"earlier","rid","chat","before":<msg id>|null}
 *     {"type":"exists","rid","wid"}
 *     {"type":"seen","chat"}
 *     {"type":"chatstate","to","state":"composing"|"recording"|"paused"}
 *     {"type":"unlink"}                       logout from the web side
 *   server -> page
 *     {"type":"ref","ref","ttlMs"}            UNPAIRED with a new QR ref
 *     {"type":"idle"}                         UNPAIRED_IDLE: QR expired
 *     {"type":"paired","login":{"phone","name","token","platform"}}
 *     {"type":"sync","me":{...},"contacts":[...],"chats":[{...,"msgs":[...],
 *      "more"}]}                              history after a login
 *     {"type":"msg","msg":{"id","fromMe","chat","from","to","author"?,
 *      "notifyName"?,"body","type":"chat","t","ack"}}   a new message
 *     {"type":"sendAck","rid","id","t"}  {"type":"ack","id","ack"}
 *     {"type":"earlier","rid","msgs":[...],"more"}
 *     {"type":"exists","rid","exists"}
 *     {"type":"logout","reason"}              the device was unlinked
 *     {"type":"error","rid"?,"code","message"}   a frame was refused
 */
#ifndef FAKEWA_H
#define FAKEWA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "wa/err.h"

#define FW_SERVICE "fakewa"

#define FW_PHONE_MAX 15 /* E.164: at most 15 digits */
#define FW_WID_MAX 64   /* "41791234567@c.us", "120363...@g.us" */
#define FW_MSGID_MAX 64 /* the <msgId> of a message key */
#define FW_SERIAL_MAX (8 + 2 * FW_WID_MAX + FW_MSGID_MAX) /* fromMe_chat_id */
#define FW_BODY_MAX 65536         /* bytes of a message body */
#define FW_NAME_MAX 100           /* bytes of a push name */
#define FW_TOKEN_LEN 32           /* hex digits of a device token */
#define FW_KEY_LEN 44             /* base64 of 32 bytes */
#define FW_REF_MAX 96             /* "2@" + base64 */
#define FW_QR_MAX 320             /* ref,key,key,secret,platform */
#define FW_PAGES_MAX 100          /* open pages (each holds a server thread) */
#define FW_FRAME_MAX (1u << 20)   /* largest page-channel frame */
#define FW_REQUEST_MAX (1u << 20) /* largest control API request body */
#define FW_PAGE_MSGS 20 /* messages per chat in a sync or an earlier page */

/* ---- state.c, channel.c: the fake WhatsApp server ------------------------ */

typedef struct fw_state fw_state_t;

/*
 * Deliver one page-channel frame (JSON text, len bytes) to a page's
 * connection, as given to fw_state_page_open. Called with the state lock
 * held, in the order the frames were produced; must not call back into
 * fw_state_*.
 */
typedef void (*fw_send_fn)(void *arg, void *conn, const char *json, size_t len);

typedef struct fw_state_opts {
    long ref_interval_ms; /* a new QR ref this often while UNPAIRED */
    long idle_after_ms;   /* UNPAIRED -> UNPAIRED_IDLE without a scan */
    fw_send_fn send;      /* may be NULL: frames are dropped */
    void *send_arg;
    long long (*mono_ms)(void); /* NULL: wa_now_ms */
    long long (*wall_s)(void);  /* NULL: the real clock (ms where wanted) */
} fw_state_opts_t;

/* A new, empty server. WA_EINVAL on bad opts, WA_ENOMEM. Free with
 * fw_state_free (pages must be closed first, or are dropped silently). */
wa_err_t fw_state_new(const fw_state_opts_t *opts, fw_state_t **out);
void fw_state_free(fw_state_t *st);

/*
 * A page connected: state OPENING until its hello. conn is opaque and
 * handed to the send callback. WA_EFULL beyond FW_PAGES_MAX pages.
 * Every fw_state_* function below is thread-safe.
 */
wa_err_t fw_state_page_open(fw_state_t *st, void *conn, uint64_t *id);

/* The page's connection closed: nothing is sent to conn after this. */
void fw_state_page_close(fw_state_t *st, uint64_t id);

/*
 * One frame from a page (buf[0..len), not NUL-terminated). A malformed or
 * out-of-place frame is answered with an "error" frame and its error code
 * returned; the page stays open. WA_ENOTFOUND if the page is not open.
 */
wa_err_t fw_state_page_frame(fw_state_t *st, uint64_t id, const char *buf,
                             size_t len);

/* Rotate due QR refs and idle expired ones. Call every ~100 ms. */
void fw_state_tick(fw_state_t *st);

/* Number of open pages. */
size_t fw_state_page_count(fw_state_t *st);

/*
 * The phone `phone` (normalized digits) with push name `name` (NULL: keep
 * the account's, or a default) scans the QR string `qr`. WA_ENOTFOUND if
 * no page shows it right now. Creates the account (seeded history) on its
 * first scan and links a new device. *page (may be NULL) names the page.
 */
wa_err_t fw_state_scan(fw_state_t *st, const char *qr, const char *phone,
                       const char *name, uint64_t *page);

/*
 * A message from `from` (a user wid, "<digits>@c.us") with `body` (valid
 * UTF-8, 1..FW_BODY_MAX bytes) to account `phone`. Delivered at once to its
 * connected pages, and to linked devices without one when they reconnect.
 * The serialized message id goes to id (FW_SERIAL_MAX + 1 bytes).
 * WA_ENOTFOUND: no such account.
 */
wa_err_t fw_state_incoming(fw_state_t *st, const char *phone, const char *from,
                           const char *body, char *id, size_t idlen);

/* What account `phone` sent, oldest first: a new JSON array of
 * {"to","body","id","timestamp"} (caller frees). WA_ENOTFOUND. */
wa_err_t fw_state_sent(fw_state_t *st, const char *phone, cJSON **out);

/*
 * The phone's "Linked devices" screen for account `phone` (normalized
 * digits), in link order, oldest first: a new JSON array (caller frees) of
 * {"linkedAt","online"}. linkedAt is ISO-8601 UTC with milliseconds
 * ("2026-11-26T10:00:00.123Z"; a login adopted after a restart counts as
 * linked when adopted); online: a page is logged in (CONNECTED) as that
 * device now. Never the device's token. [] for an account without a
 * device. WA_ENOTFOUND: no such account; WA_EINVAL, WA_ENOMEM, and
 * WA_EINTERNAL for a wall clock before 1970.
 */
wa_err_t fw_state_devices(fw_state_t *st, const char *phone, cJSON **out);

/* The phone unlinks every device of account `phone`; its open pages are
 * told (logout). *pages (may be NULL): how many. WA_ENOTFOUND. */
wa_err_t fw_state_logout(fw_state_t *st, const char *phone, int *pages);

/* Every open page: a new JSON array of {"id","state","ref","phone"}. */
wa_err_t fw_state_pages(fw_state_t *st, cJSON **out);

/* ---- check.c: input checks shared by the control API and the channel ---- */

/* "+41791234567" or "41791234567" -> "41791234567" (6..15 digits, no
 * leading 0). WA_EINVAL. out holds FW_PHONE_MAX + 1 bytes. */
wa_err_t fw_phone_normalize(const char *in, char *out);

/* A user: digits (optional +) or "<digits>@c.us" -> "<digits>@c.us".
 * out holds FW_WID_MAX + 1 bytes. WA_EINVAL. */
wa_err_t fw_user_wid(const char *in, char *out);

/* Is wid a chat id we accept: "<digits>@c.us" or "<digits>[-<digits>]@g.us"? */
bool fw_wid_valid(const char *wid);

/* Is this user wid on WhatsApp? Every valid user number is, except those
 * ending in "0000" (the documented "not on WhatsApp" numbers) that have
 * not written to the account (the caller checks its chats). */
bool fw_on_whatsapp(const char *wid);

/* Is s (len bytes) acceptable text: valid UTF-8, no NUL, 1..max bytes
 * (0 allowed if allow_empty)? WA_EUTF8, WA_EINVAL. */
wa_err_t fw_check_text(const char *s, size_t len, size_t max, bool allow_empty);

/*
 * Parse buf[0..len) as one JSON value: valid UTF-8 (WA_EUTF8), JSON with
 * nothing after it, and no "\u0000" escape (cJSON would cut the string
 * there, silently). WA_EINVAL otherwise. *out is the caller's.
 */
wa_err_t fw_json_parse(const char *buf, size_t len, cJSON **out);

/* ---- seed.c: the history a new account starts with ---------------------- */

#define FW_SEED_CONTACTS 4
#define FW_SEED_CHATS 3
#define FW_SEED_MSGS 48

typedef struct fw_seed_msg {
    char id[24]; /* the <msgId> part */
    bool from_me;
    int author;       /* group messages from others: contact index; else -1 */
    const char *body; /* static text */
    long long t;      /* unix seconds */
} fw_seed_msg_t;

typedef struct fw_seed_contact {
    char wid[FW_WID_MAX + 1];
    const char *name;
} fw_seed_contact_t;

typedef struct fw_seed_chat {
    char wid[FW_WID_MAX + 1];
    const char *name;
    bool is_group;
    long unread;
    size_t nmsgs;
    fw_seed_msg_t msgs[FW_SEED_MSGS]; /* oldest first */
} fw_seed_chat_t;

typedef struct fw_seed {
    size_t ncontacts;
    fw_seed_contact_t contacts[FW_SEED_CONTACTS];
    size_t nchats;
    fw_seed_chat_t chats[FW_SEED_CHATS];
} fw_seed_t;

/* Fill *out for account `phone` (normalized): the same phone always gives
 * the same contacts, chats, bodies and ids; times end shortly before now_s. */
void fw_seed(const char *phone, long long now_s, fw_seed_t *out);

/* ---- the HTTP side (main.c, control.c, push.c) --------------------------- */

struct mg_context;

typedef struct fw_asset {
    const char *path; /* "/index.html" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
} fw_asset_t;

/* www_assets.c (generated): the page's files, ending with a NULL path. */
extern const fw_asset_t fw_assets[];

/* Register the control API and the page's files on ctx (control.c). */
void fw_control_register(struct mg_context *ctx, fw_state_t *st);

/* Register the page channel at /ws/chat (push.c). */
void fw_push_register(struct mg_context *ctx, fw_state_t *st);

/* The fw_send_fn that writes to a CivetWeb WebSocket (push.c). */
void fw_push_send(void *arg, void *conn, const char *json, size_t len);

#endif /* FAKEWA_H */
