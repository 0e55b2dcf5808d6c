/*
 * state_int.h - what state.c (the model and the control operations) and
 * channel.c (frames from pages) share inside the fake WhatsApp server.
 * Private to those two files; everyone else uses fakewa.h.
 *
 * Every state__ function expects the state lock (fw_state_t.mu) to be held
 * by its caller, which is how all of them are reached: through a public
 * fw_state_* function.
 */
#ifndef FAKEWA_STATE_INT_H
#define FAKEWA_STATE_INT_H

#include <pthread.h>

#include "fakewa.h"

#define ACCOUNTS_MAX 1000
#define CHATS_MAX 1000     /* per account */
#define CHAT_MSGS_MAX 5000 /* per chat; the oldest go first */
#define SENT_MAX 10000     /* per account; the oldest go first */
#define DEVICES_MAX 4      /* companion devices per phone, as WhatsApp */
#define PHONE_PLATFORM "android"

typedef enum page_state {
    PS_OPENING,   /* connected, no hello yet (or logged out, leaving) */
    PS_UNPAIRED,  /* showing a QR */
    PS_IDLE,      /* QR expired: UNPAIRED_IDLE */
    PS_PAIRING,   /* scanned; storing its login */
    PS_CONNECTED, /* logged in */
} page_state_t;

typedef struct msg {
    char id[FW_MSGID_MAX + 1];
    bool from_me;
    char author[FW_WID_MAX + 1]; /* group message from someone else */
    char *body;
    long long t;
    int ack;
    uint64_t seq; /* arrival order within the account */
} msg_t;

typedef struct chat {
    char wid[FW_WID_MAX + 1];
    char *name; /* NULL: a number without a contact name */
    bool is_group;
    long unread;
    long long t;
    msg_t *msgs; /* oldest first */
    size_t n, cap;
} chat_t;

typedef struct contact {
    char wid[FW_WID_MAX + 1];
    char *name;
} contact_t;

typedef struct sent {
    char to[FW_WID_MAX + 1];
    char id[FW_SERIAL_MAX + 1];
    char *body;
    long long t;
} sent_t;

typedef struct device {
    char token[FW_TOKEN_LEN + 1];
    uint64_t delivered;
    long long linked_at; /* wall clock, ms since the epoch */
} device_t;

typedef struct account {
    char phone[FW_PHONE_MAX + 1];
    char wid[FW_WID_MAX + 1];
    char *name;
    chat_t **chats;
    size_t nchats, chats_cap;
    contact_t *contacts;
    size_t ncontacts;
    sent_t *sent; /* oldest first */
    size_t nsent, sent_cap;
    device_t devices[DEVICES_MAX]; /* in link order, oldest first */
    size_t ndevices;
    uint64_t seq;
} account_t;

typedef struct page {
    uint64_t id;
    void *conn;
    page_state_t state;
    char noise[FW_KEY_LEN + 1], identity[FW_KEY_LEN + 1], adv[FW_KEY_LEN + 1];
    char platform[17];
    char ref[FW_REF_MAX + 1];
    char qr[FW_QR_MAX + 1]; /* "" unless UNPAIRED */
    long long ref_at, pair_at;
    char phone[FW_PHONE_MAX + 1]; /* PAIRING, CONNECTED */
    char token[FW_TOKEN_LEN + 1];
} page_t;

struct fw_state {
    pthread_mutex_t mu;
    fw_state_opts_t o;
    account_t **accounts;
    size_t naccounts, accounts_cap;
    page_t *pages[FW_PAGES_MAX];
    size_t npages;
    uint64_t next_page;
};

/* ---- helpers ------------------------------------------------------------- */

/* Make room for one more element in *v (n used, *cap allocated). */
bool state__grow(void *v, size_t *cap, size_t n, size_t elem);

/* Copy src into dst[cap] if it fits; false (dst untouched) otherwise. */
bool state__copy(char *dst, size_t cap, const char *src);

/* The state's monotonic clock, in milliseconds. */
long long state__now_ms(const fw_state_t *st);

/* ---- accounts ------------------------------------------------------------ */

account_t *state__account_find(const fw_state_t *st, const char *phone);

/* The account for phone, created with its seeded history if new (name NULL:
 * a default push name). WA_EFULL, WA_ENOMEM. */
wa_err_t state__account_get(fw_state_t *st, const char *phone, const char *name,
                            account_t **out);

chat_t *state__chat_find(const account_t *a, const char *wid);

/* A new, empty chat (group if wid is @g.us). WA_EFULL, WA_ENOMEM. */
wa_err_t state__chat_add(account_t *a, const char *wid, const char *name,
                         chat_t **out);

/* Append m as the account's newest message: the chat takes m->body and
 * m->seq is assigned. WA_ENOMEM leaves m->body with the caller. */
wa_err_t state__chat_append(account_t *a, chat_t *c, msg_t *m);

/* The contact name of wid in a's address book, or NULL. */
const char *state__contact_name(const account_t *a, const char *wid);

device_t *state__device_find(account_t *a, const char *token);

/* Link a device, linked now (the state's wall clock); it has seen
 * everything so far. WA_ECONFLICT when the account has DEVICES_MAX already. */
wa_err_t state__device_add(const fw_state_t *st, account_t *a,
                           const char *token, device_t **out);

/* Remove device `token` (the others keep their link order) and log its
 * pages out; how many pages were told. */
int state__device_unlink(fw_state_t *st, account_t *a, const char *token,
                         const char *reason);

/* Has device d still to be given m as a new message? */
bool state__pending(const device_t *d, const msg_t *m);

/* ---- pages and frames ---------------------------------------------------- */

page_t *state__page_find(const fw_state_t *st, uint64_t id);

/* Send frame to p and free it. A NULL frame (out of memory) is logged. */
void state__emit(const fw_state_t *st, const page_t *p, cJSON *frame);

/* {"type": type}, or NULL on out of memory. */
cJSON *state__frame_new(const char *type);

/* Add a member; false on out of memory. add_str: NULL s adds a JSON null. */
bool state__add_str(cJSON *o, const char *key, const char *s);
bool state__add_num(cJSON *o, const char *key, double v);
bool state__add_bool(cJSON *o, const char *key, bool v);

/* {"type":"msg","msg":{...}} for message m of chat c, or NULL. */
cJSON *state__msg_frame(const account_t *a, const chat_t *c, const msg_t *m);

/*
 * Up to FW_PAGE_MSGS messages of c before index `end` (exclusive) that d
 * (may be NULL) already had, oldest first, appended to arr; *more: are
 * there older ones. false on out of memory.
 */
bool state__msgs_page(const account_t *a, const chat_t *c, const device_t *d,
                      size_t end, cJSON *arr, bool *more);

/* p logs in as device d of a: the history, then what d missed, as new. */
void state__page_connect(fw_state_t *st, page_t *p, account_t *a, device_t *d);

/* Issue p a new QR ref and show it (UNPAIRED). */
wa_err_t state__page_new_ref(fw_state_t *st, page_t *p, long long now);

/* Tell p it is logged out and forget its login (state OPENING). */
void state__page_logout(fw_state_t *st, page_t *p, const char *reason);

#endif /* FAKEWA_STATE_INT_H */
