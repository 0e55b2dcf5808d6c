/*
 * seed.c - the chat history a new account starts with.
 *
 * Everything but the timestamps follows from the phone number alone
 * (FNV-1a of the digits seeds a splitmix64 generator), so a test can rely
 * on an account looking the same every run, and an account fakewa forgot
 * on restart comes back with the same chats and message ids. The first
 * chat holds more than two pages of messages, so loadEarlierMsgs matters.
 */
#include <stdio.h>
#include <string.h>

#include "fakewa.h"
#include "wa/hash.h"

static const char *const names[] = {
    "Anna Keller",   "Marco Rossi", "Lea Meier",  "Jonas Weber",
    "Sofia Brunner", "Luca Frei",   "Nina Huber", "David Schmid",
    "Chloé Favre",   "Elif Yilmaz",
};

static const char *const groups[] = {
    "Praxis Team",
    "Empfang & Labor",
    "Notfalldienst",
};

/* Patients writing to their doctor, and the answers. */
static const char *const chat_lines[] = {
    "Guten Tag, ich hätte gerne einen Termin nächste Woche.",
    "Passt Ihnen Dienstag um 10:30?",
    "Ja, das passt. Vielen Dank!",
    "Bitte bringen Sie Ihre Versichertenkarte mit.",
    "Kann ich den Termin auf 14 Uhr verschieben?",
    "Die Laborwerte sind da, alles im Normbereich.",
    "Danke für die schnelle Antwort 🙏",
    "Ich bin etwas später, ca. 10 Minuten.",
    "Kein Problem, bis gleich.",
    "Gute Besserung!",
    "Hello, is the practice open on Saturday?",
    "Saturdays 8:00–12:00, yes.",
    "Muss ich nüchtern kommen?",
    "Ja, bitte ab Mitternacht nichts mehr essen.",
    "Das Rezept liegt an der Rezeption bereit.",
    "Merci, à demain !",
    "Ok 👍",
    "Die Tabletten vertrage ich leider nicht so gut.",
    "Dann schauen wir uns das am Donnerstag an.",
    "Brauche ich eine Überweisung?",
    "Nein, das ist nicht nötig.",
    "Können Sie mir den Befund per Mail schicken?",
    "Der Befund ist unterwegs.",
    "Wie lange dauert die Untersuchung?",
    "Etwa 20 Minuten.",
};

static const char *const group_lines[] = {
    "Wer übernimmt morgen den Frühdienst?",   "Ich kann.",
    "Die Kaffeemaschine ist wieder kaputt ☕", "Techniker kommt um 15 Uhr.",
    "Laborkurier verspätet sich heute.",      "Danke fürs Bescheid geben!",
    "Team-Meeting verschoben auf Freitag.",   "👍",
};

typedef struct rng {
    uint64_t s;
} rng_t;

static uint64_t next(rng_t *r)
{
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));

    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static unsigned below(rng_t *r, unsigned n)
{
    return (unsigned)(next(r) % n);
}

/* A message id as the web client makes them: "3EB0" + 16 hex digits. */
static void msg_id(rng_t *r, char *out, size_t len)
{
    snprintf(out, len, "3EB0%016llX", (unsigned long long)next(r));
}

/* A Swiss mobile number other than phone: 4179 + 7 digits. */
static void contact_number(rng_t *r, const char *phone, char *out, size_t len)
{
    do {
        snprintf(out, len, "417%u%07u@c.us", 5 + below(r, 5),
                 below(r, 10000000));
    } while (strncmp(out, phone, strlen(phone)) == 0);
}

static void fill_chat(rng_t *r, fw_seed_chat_t *c, size_t n, long long last_t,
                      bool group, size_t ncontacts)
{
    long long t = last_t;

    c->nmsgs = n;
    /* Newest first, going back a few minutes to a few hours each step. */
    for (size_t i = n; i-- > 0;) {
        fw_seed_msg_t *m = &c->msgs[i];

        msg_id(r, m->id, sizeof(m->id));
        m->t = t;
        m->from_me = below(r, 3) == 0;
        m->author = -1;
        if (group) {
            m->body = group_lines[below(r, sizeof(group_lines) /
                                               sizeof(group_lines[0]))];
            if (!m->from_me)
                m->author = (int)below(r, (unsigned)ncontacts);
        } else {
            m->body = chat_lines[below(r, sizeof(chat_lines) /
                                              sizeof(chat_lines[0]))];
        }
        t -= 60 + below(r, 3 * 3600);
    }
}

void fw_seed(const char *phone, long long now_s, fw_seed_t *out)
{
    static const size_t sizes[FW_SEED_CHATS] = {45, 14, 9};
    unsigned first;
    rng_t r;

    r.s = wa_fnv1a_str(phone);
    memset(out, 0, sizeof(*out));

    out->ncontacts = FW_SEED_CONTACTS;
    first = below(&r, sizeof(names) / sizeof(names[0]));
    for (size_t i = 0; i < out->ncontacts; i++) {
        fw_seed_contact_t *k = &out->contacts[i];

        contact_number(&r, phone, k->wid, sizeof(k->wid));
        k->name = names[(first + i) % (sizeof(names) / sizeof(names[0]))];
    }

    out->nchats = FW_SEED_CHATS;
    for (size_t i = 0; i < out->nchats; i++) {
        fw_seed_chat_t *c = &out->chats[i];
        const bool group = i == FW_SEED_CHATS - 1;

        if (group) {
            snprintf(c->wid, sizeof(c->wid), "1203630%011llu@g.us",
                     (unsigned long long)(next(&r) % UINT64_C(100000000000)));
            c->name = groups[below(&r, sizeof(groups) / sizeof(groups[0]))];
        } else {
            memcpy(c->wid, out->contacts[i].wid, sizeof(c->wid));
            c->name = out->contacts[i].name;
        }
        c->is_group = group;
        fill_chat(&r, c, sizes[i], now_s - 300 - (long long)i * 5400, group,
                  out->ncontacts);
        /* The second chat ends in a couple of unread messages. */
        for (size_t j = c->nmsgs; i == 1 && j > 0; j--) {
            if (c->msgs[j - 1].from_me)
                break;
            c->unread++;
        }
    }
}
