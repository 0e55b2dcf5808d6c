/*
 * fakewa_state_test.c - the fake WhatsApp server (tests/fakewa/state.c,
 * seed.c): input checks, the seeded history, and the page protocol driven
 * frame by frame with a fake clock and a recording send callback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakewa.h"
#include "wa/log.h"

/* ---- a fake clock and a recording send callback -------------------------- */

static long long clock_ms = 1000000;
static long long clock_s = 1790000000;

static long long fake_ms(void)
{
    return clock_ms;
}

static long long fake_s(void)
{
    return clock_s;
}

#define SENT_MAX 4096

static struct {
    void *conn;
    char *json;
} sent[SENT_MAX];
static size_t nsent;

static void record(void *arg, void *conn, const char *json, size_t len)
{
    (void)arg;
    assert_true(nsent < SENT_MAX);
    assert_int_equal(strlen(json), len);
    sent[nsent].conn = conn;
    sent[nsent].json = strdup(json);
    nsent++;
}

static void forget_frames(void)
{
    for (size_t i = 0; i < nsent; i++)
        free(sent[i].json);
    nsent = 0;
}

/* How many frames of `type` went to conn. */
static int count(void *conn, const char *type)
{
    char needle[64];
    int n = 0;

    snprintf(needle, sizeof(needle), "{\"type\":\"%s\"", type);
    for (size_t i = 0; i < nsent; i++) {
        if (sent[i].conn == conn &&
            strncmp(sent[i].json, needle, strlen(needle)) == 0)
            n++;
    }
    return n;
}

/* The last frame of `type` sent to conn, parsed (caller frees), or NULL. */
static cJSON *last(void *conn, const char *type)
{
    for (size_t i = nsent; i-- > 0;) {
        cJSON *j;

        if (sent[i].conn != conn)
            continue;
        j = cJSON_Parse(sent[i].json);
        assert_non_null(j);
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "type")),
                   type) == 0)
            return j;
        cJSON_Delete(j);
    }
    return NULL;
}

static const char *str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static fw_state_t *new_state(void)
{
    const fw_state_opts_t o = {
        .ref_interval_ms = 20000,
        .idle_after_ms = 60000,
        .send = record,
        .mono_ms = fake_ms,
        .wall_s = fake_s,
    };
    fw_state_t *st = NULL;

    assert_int_equal(fw_state_new(&o, &st), WA_OK);
    return st;
}

static wa_err_t frame(fw_state_t *st, uint64_t page, const char *json)
{
    return fw_state_page_frame(st, page, json, strlen(json));
}

#define KEY_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define KEY_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
#define KEY_C "CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCA="
#define HELLO                                                                  \
    "{\"type\":\"hello\",\"v\":1,\"platform\":\"WEB\",\"keys\":{\"noise\":"    \
    "\"" KEY_A "\",\"identity\":\"" KEY_B "\",\"adv\":\"" KEY_C "\"}"

/* Open a page on conn and say hello without a login: returns its id. */
static uint64_t open_unpaired(fw_state_t *st, void *conn)
{
    uint64_t id = 0;

    assert_int_equal(fw_state_page_open(st, conn, &id), WA_OK);
    assert_int_equal(frame(st, id, HELLO ",\"login\":null}"), WA_OK);
    return id;
}

/* The full QR string the page on conn shows now. */
static char *shown_qr(void *conn)
{
    cJSON *f = last(conn, "ref");
    char *qr;

    assert_non_null(f);
    assert_true(asprintf(&qr, "%s,%s,%s,%s,WEB", str(f, "ref"), KEY_A, KEY_B,
                         KEY_C) > 0);
    cJSON_Delete(f);
    return qr;
}

/* Scan the page on conn as phone; log it in; returns the login token. */
static char *pair(fw_state_t *st, uint64_t id, void *conn, const char *phone)
{
    char *qr = shown_qr(conn), *token, json[256];
    cJSON *f, *login;

    assert_int_equal(fw_state_scan(st, qr, phone, "Dr. Test", NULL), WA_OK);
    free(qr);
    assert_non_null(f = last(conn, "paired"));
    login = cJSON_GetObjectItem(f, "login");
    assert_string_equal(str(login, "phone"), phone);
    token = strdup(str(login, "token"));
    cJSON_Delete(f);
    snprintf(json, sizeof(json),
             "{\"type\":\"login\",\"login\":{\"phone\":\"%s\",\"token\":"
             "\"%s\"}}",
             phone, token);
    assert_int_equal(frame(st, id, json), WA_OK);
    assert_int_equal(count(conn, "sync"), 1);
    return token;
}

static cJSON *pages(fw_state_t *st)
{
    cJSON *p = NULL;

    assert_int_equal(fw_state_pages(st, &p), WA_OK);
    return p;
}

static int teardown(void **s)
{
    (void)s;
    forget_frames();
    return 0;
}

/* ---- input checks -------------------------------------------------------- */

static void test_phone(void **s)
{
    char out[FW_PHONE_MAX + 1];

    (void)s;
    assert_int_equal(fw_phone_normalize("+41791234567", out), WA_OK);
    assert_string_equal(out, "41791234567");
    assert_int_equal(fw_phone_normalize("41791234567", out), WA_OK);
    assert_int_equal(fw_phone_normalize("123456", out), WA_OK);
    assert_int_equal(fw_phone_normalize("123456789012345", out), WA_OK);
    assert_int_equal(fw_phone_normalize("1234567890123456", out), WA_EINVAL);
    assert_int_equal(fw_phone_normalize("12345", out), WA_EINVAL);
    assert_int_equal(fw_phone_normalize("041791234567", out), WA_EINVAL);
    assert_int_equal(fw_phone_normalize("++41791234567", out), WA_EINVAL);
    assert_int_equal(fw_phone_normalize("4179 123 45 67", out), WA_EINVAL);
    assert_int_equal(fw_phone_normalize("4179123456a", out), WA_EINVAL);
    assert_int_equal(fw_phone_normalize("", out), WA_EINVAL);
    assert_int_equal(fw_phone_normalize(NULL, out), WA_EINVAL);
}

static void test_wids(void **s)
{
    char out[FW_WID_MAX + 1];

    (void)s;
    assert_int_equal(fw_user_wid("41791234567", out), WA_OK);
    assert_string_equal(out, "41791234567@c.us");
    assert_int_equal(fw_user_wid("+41791234567", out), WA_OK);
    assert_string_equal(out, "41791234567@c.us");
    assert_int_equal(fw_user_wid("41791234567@c.us", out), WA_OK);
    assert_string_equal(out, "41791234567@c.us");
    assert_int_equal(fw_user_wid("+41791234567@c.us", out), WA_EINVAL);
    assert_int_equal(fw_user_wid("41791234567@g.us", out), WA_EINVAL);
    assert_int_equal(fw_user_wid("41791234567@c.us.evil", out), WA_EINVAL);
    assert_int_equal(fw_user_wid("@c.us", out), WA_EINVAL);
    assert_int_equal(fw_user_wid("abc", out), WA_EINVAL);

    assert_true(fw_wid_valid("41791234567@c.us"));
    assert_true(fw_wid_valid("120363012345678901@g.us"));
    assert_true(fw_wid_valid("41791234567-1600000000@g.us"));
    assert_false(fw_wid_valid("41791234567"));
    assert_false(fw_wid_valid("41791234567@s.whatsapp.net"));
    assert_false(fw_wid_valid("4179@c.us"));
    assert_false(fw_wid_valid("12@g.us"));
    assert_false(fw_wid_valid("41791234567-@g.us"));
    assert_false(fw_wid_valid(NULL));

    assert_true(fw_on_whatsapp("41791234567@c.us"));
    assert_false(fw_on_whatsapp("41791230000@c.us"));
    assert_false(fw_on_whatsapp("120363012345678901@g.us"));
}

static void test_text(void **s)
{
    char *big = malloc(FW_BODY_MAX + 2);

    (void)s;
    assert_int_equal(fw_check_text("hi", 2, 10, false), WA_OK);
    assert_int_equal(fw_check_text("", 0, 10, false), WA_EINVAL);
    assert_int_equal(fw_check_text("", 0, 10, true), WA_OK);
    assert_int_equal(fw_check_text("a\0b", 3, 10, false), WA_EINVAL);
    assert_int_equal(fw_check_text("\xc3\x28", 2, 10, false), WA_EUTF8);
    assert_int_equal(fw_check_text("\xed\xa0\x80", 3, 10, false), WA_EUTF8);
    assert_int_equal(fw_check_text("\xf0\x9f\x98\x80", 4, 10, false), WA_OK);
    memset(big, 'x', FW_BODY_MAX + 1);
    assert_int_equal(fw_check_text(big, FW_BODY_MAX, FW_BODY_MAX, false),
                     WA_OK);
    assert_int_equal(fw_check_text(big, FW_BODY_MAX + 1, FW_BODY_MAX, false),
                     WA_EINVAL);
    free(big);
}

static void test_json(void **s)
{
    const char *ok[] = {
        "{}",
        " {\"a\":\"x\\\"y\"} \n",
        "{\"a\":\"\\\\u0000\"}", /* backslash, then the text u0000 */
        "[1,2]",
    };
    const char *bad[] = {
        "",
        "{",
        "{} x",
        "{}{}",
        "{\"a\":\"\\u0000\"}",
        "nope",
        "{\"a\":}",
        "{'a':1}",
        "{\"a\":\"\\ud800\"}",
    };
    cJSON *j = NULL;

    (void)s;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(fw_json_parse(ok[i], strlen(ok[i]), &j), WA_OK);
        cJSON_Delete(j);
    }
    assert_int_equal(fw_json_parse(ok[2], strlen(ok[2]), &j), WA_OK);
    assert_string_equal(str(j, "a"), "\\u0000");
    cJSON_Delete(j);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(fw_json_parse(bad[i], strlen(bad[i]), &j), WA_OK);
    assert_int_equal(fw_json_parse("{\"a\":\"\xff\"}", 8, &j), WA_EUTF8);
    assert_int_equal(fw_json_parse("{\"a\":1}\0", 8, &j), WA_EINVAL);
}

/* ---- the seeded history -------------------------------------------------- */

static void test_seed(void **s)
{
    fw_seed_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)),
              *c = malloc(sizeof(*c));

    (void)s;
    fw_seed("41791234567", 1790000000, a);
    fw_seed("41791234567", 1790000000, b);
    fw_seed("41797654321", 1790000000, c);
    assert_memory_equal(a, b, sizeof(*a));
    assert_string_not_equal(a->chats[0].msgs[0].id, c->chats[0].msgs[0].id);

    assert_int_equal(a->nchats, 3);
    assert_true(a->chats[0].nmsgs > 2 * FW_PAGE_MSGS);
    assert_true(a->chats[2].is_group);
    for (size_t i = 0; i < a->nchats; i++) {
        const fw_seed_chat_t *ch = &a->chats[i];

        assert_true(fw_wid_valid(ch->wid));
        assert_non_null(ch->name);
        for (size_t j = 0; j < ch->nmsgs; j++) {
            assert_int_equal(strlen(ch->msgs[j].id), 20);
            assert_true(ch->msgs[j].t < 1790000000);
            if (j > 0)
                assert_true(ch->msgs[j - 1].t < ch->msgs[j].t);
            assert_true(ch->msgs[j].author < (int)a->ncontacts);
            if (!ch->is_group)
                assert_int_equal(ch->msgs[j].author, -1);
        }
    }
    for (size_t i = 0; i < a->ncontacts; i++) {
        assert_true(fw_on_whatsapp(a->contacts[i].wid));
        assert_string_not_equal(a->contacts[i].wid, "41791234567@c.us");
    }
    free(a);
    free(b);
    free(c);
}

/* ---- pages and QR codes -------------------------------------------------- */

static void test_qr_rotation_and_idle(void **s)
{
    void *conn = (void *)1;
    fw_state_t *st = new_state();
    cJSON *p, *f;
    char *qr1, *qr2, *qr3;
    uint64_t id;

    (void)s;
    id = open_unpaired(st, conn);
    qr1 = shown_qr(conn);
    /* ref,noise,identity,adv,platform with a 2@ ref. */
    assert_int_equal(strncmp(qr1, "2@", 2), 0);
    assert_non_null(strstr(qr1, "," KEY_A "," KEY_B "," KEY_C ",WEB"));
    p = pages(st);
    assert_int_equal(cJSON_GetArraySize(p), 1);
    assert_string_equal(str(cJSON_GetArrayItem(p, 0), "state"), "UNPAIRED");
    assert_string_equal(str(cJSON_GetArrayItem(p, 0), "ref"), qr1);
    assert_true(
        cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(p, 0), "phone")));
    cJSON_Delete(p);

    /* Not yet due; then due. */
    clock_ms += 19999;
    fw_state_tick(st);
    assert_int_equal(count(conn, "ref"), 1);
    clock_ms += 1;
    fw_state_tick(st);
    assert_int_equal(count(conn, "ref"), 2);
    qr2 = shown_qr(conn);
    assert_string_not_equal(qr1, qr2);
    f = last(conn, "ref");
    assert_int_equal(cJSON_GetObjectItem(f, "ttlMs")->valueint, 20000);
    cJSON_Delete(f);
    /* The old QR no longer scans. */
    assert_int_equal(fw_state_scan(st, qr1, "41791234567", NULL, NULL),
                     WA_ENOTFOUND);

    /* No scan for idle_after_ms: UNPAIRED_IDLE, QR gone. */
    clock_ms += 40000;
    fw_state_tick(st);
    assert_int_equal(count(conn, "idle"), 1);
    p = pages(st);
    assert_string_equal(str(cJSON_GetArrayItem(p, 0), "state"),
                        "UNPAIRED_IDLE");
    assert_true(
        cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(p, 0), "ref")));
    cJSON_Delete(p);
    assert_int_equal(fw_state_scan(st, qr2, "41791234567", NULL, NULL),
                     WA_ENOTFOUND);
    clock_ms += 100000;
    fw_state_tick(st);
    assert_int_equal(count(conn, "idle"), 1);

    /* Cmd.refreshQR(): a new QR, and the idle clock starts again. */
    assert_int_equal(frame(st, id, "{\"type\":\"refresh\"}"), WA_OK);
    qr3 = shown_qr(conn);
    assert_string_not_equal(qr2, qr3);
    clock_ms += 59999;
    fw_state_tick(st);
    assert_int_equal(count(conn, "idle"), 1);

    fw_state_page_close(st, id);
    assert_int_equal(fw_state_page_count(st), 0);
    assert_int_equal(fw_state_scan(st, qr3, "41791234567", NULL, NULL),
                     WA_ENOTFOUND);
    free(qr1);
    free(qr2);
    free(qr3);
    fw_state_free(st);
}

static void test_bad_frames(void **s)
{
    void *conn = (void *)1;
    fw_state_t *st = new_state();
    const char *bad[] = {
        "not json",
        "[]",
        "{\"type\":42}",
        "{\"type\":\"nope\"}",
        "{\"type\":\"hello\",\"v\":1,\"platform\":\"web\",\"keys\":{}}",
        "{\"type\":\"hello\",\"v\":1,\"platform\":\"WEB\",\"keys\":{"
        "\"noise\":\"short=\",\"identity\":\"" KEY_B "\",\"adv\":\"" KEY_C
        "\"}}",
        HELLO ",\"login\":{\"phone\":\"abc\",\"token\":\"x\"}}",
        "{\"type\":\"send\",\"rid\":\"s1\",\"id\":\"3EB0AA\",\"to\":"
        "\"41791234567@c.us\",\"body\":\"hi\",\"t\":1790000000}",
        "{\"type\":\"login\",\"login\":{\"phone\":\"41791234567\",\"token\":"
        "\"0123456789abcdef0123456789abcdef\"}}",
    };
    uint64_t id;
    cJSON *f;

    (void)s;
    assert_int_equal(fw_state_page_open(st, conn, &id), WA_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(frame(st, id, bad[i]), WA_OK);
    assert_int_equal(count(conn, "error"), (int)(sizeof(bad) / sizeof(bad[0])));
    f = last(conn, "error"); /* the login while not pairing */
    assert_string_equal(str(f, "code"), "bad_request");
    assert_non_null(str(f, "message"));
    assert_null(str(f, "rid"));
    cJSON_Delete(f);
    assert_int_equal(fw_state_page_frame(st, id, "{\"type\":\"\xff\"}", 12),
                     WA_EUTF8);
    /* The page is still there and can say hello properly. */
    assert_int_equal(frame(st, id, HELLO ",\"login\":null}"), WA_OK);
    assert_int_equal(count(conn, "ref"), 1);
    assert_int_not_equal(frame(st, id, HELLO ",\"login\":null}"), WA_OK);
    assert_int_equal(frame(st, 999, "{}"), WA_ENOTFOUND);
    fw_state_page_close(st, id);
    fw_state_free(st);
}

/* A request before login is not_ready, and the answer names its rid. */
static void test_not_ready(void **s)
{
    void *conn = (void *)1;
    fw_state_t *st = new_state();
    uint64_t id = open_unpaired(st, conn);
    cJSON *f;

    (void)s;
    assert_int_equal(frame(st, id,
                           "{\"type\":\"exists\",\"rid\":\"q1\",\"wid\":"
                           "\"41791234567@c.us\"}"),
                     WA_ENOTREADY);
    f = last(conn, "error");
    assert_string_equal(str(f, "code"), "not_ready");
    assert_string_equal(str(f, "rid"), "q1");
    cJSON_Delete(f);
    fw_state_free(st);
}

/* ---- logging in, history, messages --------------------------------------- */

static void test_scan_sync_and_earlier(void **s)
{
    void *conn = (void *)1;
    fw_state_t *st = new_state();
    uint64_t id = open_unpaired(st, conn), scanned = 0;
    char *qr = shown_qr(conn), *token, json[256], chat[FW_WID_MAX + 1];
    cJSON *f, *f2, *chats, *first, *msgs, *p;
    int total;

    (void)s;
    assert_int_equal(
        fw_state_scan(st, "2@nope,a,b,c,WEB", "41791234567", NULL, NULL),
        WA_ENOTFOUND);
    assert_int_equal(fw_state_scan(st, qr, "+41791234567", NULL, NULL),
                     WA_EINVAL); /* callers normalize */
    assert_int_equal(fw_state_scan(st, qr, "41791234567", "Dr. Test", &scanned),
                     WA_OK);
    assert_int_equal(scanned, id);
    /* Scanned once: the QR is gone. */
    assert_int_equal(fw_state_scan(st, qr, "41791234567", NULL, NULL),
                     WA_ENOTFOUND);
    p = pages(st);
    assert_string_equal(str(cJSON_GetArrayItem(p, 0), "state"), "PAIRING");
    assert_string_equal(str(cJSON_GetArrayItem(p, 0), "phone"), "41791234567");
    cJSON_Delete(p);

    f = last(conn, "paired");
    token = strdup(str(cJSON_GetObjectItem(f, "login"), "token"));
    assert_string_equal(str(cJSON_GetObjectItem(f, "login"), "name"),
                        "Dr. Test");
    assert_string_equal(str(cJSON_GetObjectItem(f, "login"), "platform"),
                        "android");
    cJSON_Delete(f);
    /* A login that is not the one given is refused. */
    assert_int_not_equal(
        frame(st, id,
              "{\"type\":\"login\",\"login\":{\"phone\":\"41791234567\","
              "\"token\":\"0123456789abcdef0123456789abcdef\"}}"),
        WA_OK);
    snprintf(json, sizeof(json),
             "{\"type\":\"login\",\"login\":{\"phone\":\"41791234567\","
             "\"token\":\"%s\"}}",
             token);
    assert_int_equal(frame(st, id, json), WA_OK);
    p = pages(st);
    assert_string_equal(str(cJSON_GetArrayItem(p, 0), "state"), "CONNECTED");
    cJSON_Delete(p);

    f = last(conn, "sync");
    assert_non_null(f);
    assert_string_equal(str(cJSON_GetObjectItem(f, "me"), "wid"),
                        "41791234567@c.us");
    assert_string_equal(str(cJSON_GetObjectItem(f, "me"), "name"), "Dr. Test");
    chats = cJSON_GetObjectItem(f, "chats");
    assert_int_equal(cJSON_GetArraySize(chats), 3);
    first = cJSON_GetArrayItem(chats, 0);
    msgs = cJSON_GetObjectItem(first, "msgs");
    assert_int_equal(cJSON_GetArraySize(msgs), FW_PAGE_MSGS);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(first, "more")));
    assert_true(cJSON_IsFalse(
        cJSON_GetObjectItem(cJSON_GetArrayItem(chats, 2), "more")));
    total = FW_PAGE_MSGS;
    snprintf(chat, sizeof(chat), "%s", str(first, "id"));

    /* Page back until the beginning. */
    for (int round = 0; round < 10; round++) {
        cJSON *e, *em;
        const char *before = str(cJSON_GetArrayItem(msgs, 0), "id");
        bool more;

        snprintf(json, sizeof(json),
                 "{\"type\":\"earlier\",\"rid\":\"q%d\",\"chat\":\"%s\","
                 "\"before\":\"%s\"}",
                 round, chat, before);
        assert_int_equal(frame(st, id, json), WA_OK);
        e = last(conn, "earlier");
        em = cJSON_GetObjectItem(e, "msgs");
        more = cJSON_IsTrue(cJSON_GetObjectItem(e, "more"));
        total += cJSON_GetArraySize(em);
        if (cJSON_GetArraySize(em) > 0)
            assert_true(
                cJSON_GetObjectItem(
                    cJSON_GetArrayItem(em, -1 + cJSON_GetArraySize(em)), "t")
                    ->valuedouble <
                cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "t")
                    ->valuedouble);
        cJSON_Delete(f);
        f = e;
        msgs = em;
        if (!more)
            break;
    }
    assert_int_equal(total, 45);
    assert_int_equal(cJSON_GetArraySize(msgs), 45 - 2 * FW_PAGE_MSGS);
    snprintf(json, sizeof(json),
             "{\"type\":\"earlier\",\"rid\":\"x\",\"chat\":\"%s\","
             "\"before\":\"3EB0NOPE\"}",
             chat);
    assert_int_equal(frame(st, id, json), WA_ENOTFOUND);
    /* A chat only the page knows has nothing earlier. */
    assert_int_equal(frame(st, id,
                           "{\"type\":\"earlier\",\"rid\":\"y\",\"chat\":"
                           "\"41791112233@c.us\",\"before\":null}"),
                     WA_OK);
    f2 = last(conn, "earlier");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(f2, "msgs")), 0);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(f2, "more")));
    cJSON_Delete(f2);
    cJSON_Delete(f);
    free(token);
    free(qr);
    fw_state_free(st);
}

static void test_incoming_send_exists(void **s)
{
    void *conn = (void *)1, *other = (void *)2;
    fw_state_t *st = new_state();
    uint64_t id = open_unpaired(st, conn), id2;
    const char *body =
        "quote \" backslash \\ </script> \n emoji \xf0\x9f\x98\x80";
    char *token = pair(st, id, conn, "41791234567"), *token2;
    char msgid[FW_SERIAL_MAX + 1], json[512];
    cJSON *f, *m, *arr;

    (void)s;
    assert_int_equal(fw_state_incoming(st, "41790000000", "41765550123@c.us",
                                       "hi", msgid, sizeof(msgid)),
                     WA_ENOTFOUND);
    assert_int_equal(fw_state_incoming(st, "41791234567", "abc@c.us", "hi",
                                       msgid, sizeof(msgid)),
                     WA_EINVAL);
    assert_int_equal(fw_state_incoming(st, "41791234567", "41765550123@c.us",
                                       body, msgid, sizeof(msgid)),
                     WA_OK);
    assert_int_equal(strncmp(msgid, "false_41765550123@c.us_3EB0", 27), 0);
    assert_int_equal(strlen(msgid), strlen("false_41765550123@c.us_") + 20);
    f = last(conn, "msg");
    m = cJSON_GetObjectItem(f, "msg");
    assert_string_equal(str(m, "body"), body);
    assert_string_equal(str(m, "from"), "41765550123@c.us");
    assert_string_equal(str(m, "to"), "41791234567@c.us");
    assert_string_equal(str(m, "chat"), "41765550123@c.us");
    assert_string_equal(str(m, "type"), "chat");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(m, "fromMe")));
    assert_int_equal(cJSON_GetObjectItem(m, "t")->valuedouble, clock_s);
    assert_int_equal(
        strcmp(msgid + strlen("false_41765550123@c.us_"), str(m, "id")), 0);
    cJSON_Delete(f);

    /* A second page of the same account (another device). */
    id2 = open_unpaired(st, other);
    token2 = pair(st, id2, other, "41791234567");
    assert_string_not_equal(token, token2);

    /* Send from the first page: acked, recorded once, seen by the other. */
    snprintf(json, sizeof(json),
             "{\"type\":\"send\",\"rid\":\"s1\",\"id\":\"3EB0ABCDEF012345\","
             "\"to\":\"41765550123@c.us\",\"body\":\"%s\",\"t\":1790000100}",
             "r\\u00e9ponse \\\"ok\\\"");
    assert_int_equal(frame(st, id, json), WA_OK);
    assert_int_equal(frame(st, id, json), WA_OK); /* a resend */
    assert_int_equal(count(conn, "sendAck"), 2);
    assert_int_equal(count(conn, "ack"), 2);
    assert_int_equal(count(other, "msg"), 1);
    f = last(conn, "sendAck");
    assert_string_equal(str(f, "rid"), "s1");
    assert_string_equal(str(f, "id"), "true_41765550123@c.us_3EB0ABCDEF012345");
    cJSON_Delete(f);
    assert_int_equal(fw_state_sent(st, "41791234567", &arr), WA_OK);
    assert_int_equal(cJSON_GetArraySize(arr), 1);
    m = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(str(m, "to"), "41765550123@c.us");
    assert_string_equal(str(m, "body"), "r\xc3\xa9ponse \"ok\"");
    assert_string_equal(str(m, "id"), "true_41765550123@c.us_3EB0ABCDEF012345");
    assert_int_equal(cJSON_GetObjectItem(m, "timestamp")->valuedouble,
                     1790000100);
    cJSON_Delete(arr);
    assert_int_equal(fw_state_sent(st, "41790000000", &arr), WA_ENOTFOUND);

    /* To a number not on WhatsApp: recorded, but never delivered (ack 2). */
    assert_int_equal(
        frame(st, id,
              "{\"type\":\"send\",\"rid\":\"s2\",\"id\":\"3EB0ABCDEF012346\","
              "\"to\":\"41765550000@c.us\",\"body\":\"x\",\"t\":1790000101}"),
        WA_OK);
    assert_int_equal(count(conn, "sendAck"), 3);
    assert_int_equal(count(conn, "ack"), 2);
    /* Bad sends. */
    assert_int_not_equal(
        frame(st, id,
              "{\"type\":\"send\",\"rid\":\"s3\",\"id\":\"3EB0ABCDEF012347\","
              "\"to\":\"41765550123@c.us\",\"body\":\"\",\"t\":1790000101}"),
        WA_OK);
    assert_int_not_equal(
        frame(st, id,
              "{\"type\":\"send\",\"rid\":\"s3\",\"id\":\"bad id\","
              "\"to\":\"41765550123@c.us\",\"body\":\"x\",\"t\":1790000101}"),
        WA_OK);
    assert_int_not_equal(
        frame(st, id,
              "{\"type\":\"send\",\"rid\":\"s3\",\"id\":\"3EB0ABCDEF012347\","
              "\"to\":\"120363000000000000@g.us\",\"body\":\"x\",\"t\":"
              "1790000101}"),
        WA_OK);
    assert_int_not_equal(
        frame(st, id,
              "{\"type\":\"send\",\"rid\":\"s3\",\"id\":\"3EB0ABCDEF012347\","
              "\"to\":\"41765550123@c.us\",\"body\":\"x\",\"t\":1.5}"),
        WA_OK);

    /* Is it on WhatsApp? */
    assert_int_equal(frame(st, id,
                           "{\"type\":\"exists\",\"rid\":\"q1\",\"wid\":"
                           "\"41791112233@c.us\"}"),
                     WA_OK);
    f = last(conn, "exists");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(f, "exists")));
    cJSON_Delete(f);
    assert_int_equal(frame(st, id,
                           "{\"type\":\"exists\",\"rid\":\"q2\",\"wid\":"
                           "\"41791110000@c.us\"}"),
                     WA_OK);
    f = last(conn, "exists");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(f, "exists")));
    assert_string_equal(str(f, "rid"), "q2");
    cJSON_Delete(f);
    /* Unless it wrote to the account: then it is. */
    assert_int_equal(fw_state_incoming(st, "41791234567", "41791110000@c.us",
                                       "hi", msgid, sizeof(msgid)),
                     WA_OK);
    assert_int_equal(frame(st, id,
                           "{\"type\":\"exists\",\"rid\":\"q3\",\"wid\":"
                           "\"41791110000@c.us\"}"),
                     WA_OK);
    f = last(conn, "exists");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(f, "exists")));
    cJSON_Delete(f);

    assert_int_equal(
        frame(st, id, "{\"type\":\"seen\",\"chat\":\"41765550123@c.us\"}"),
        WA_OK);
    assert_int_equal(
        frame(st, id,
              "{\"type\":\"chatstate\",\"to\":\"41765550123@c.us\","
              "\"state\":\"composing\"}"),
        WA_OK);
    assert_int_not_equal(frame(st, id,
                               "{\"type\":\"chatstate\",\"to\":"
                               "\"41765550123@c.us\",\"state\":\"typing\"}"),
                         WA_OK);
    free(token);
    free(token2);
    fw_state_free(st);
}

/* A message that arrives while the browser is away reaches it as new when
 * it comes back; the history sync does not carry it. */
static void test_offline_delivery_and_relaunch(void **s)
{
    void *conn = (void *)1, *again = (void *)3;
    fw_state_t *st = new_state();
    uint64_t id = open_unpaired(st, conn), id2;
    char *token = pair(st, id, conn, "41791234567");
    char msgid[FW_SERIAL_MAX + 1], json[512];
    cJSON *f;

    (void)s;
    fw_state_page_close(st, id);
    assert_int_equal(fw_state_incoming(st, "41791234567", "41765550123",
                                       "while away", msgid, sizeof(msgid)),
                     WA_EINVAL); /* callers pass a wid */
    assert_int_equal(fw_state_incoming(st, "41791234567", "41765550123@c.us",
                                       "while away", msgid, sizeof(msgid)),
                     WA_OK);
    assert_int_equal(count(conn, "msg"), 0);

    assert_int_equal(fw_state_page_open(st, again, &id2), WA_OK);
    snprintf(json, sizeof(json),
             HELLO ",\"login\":{\"phone\":\"41791234567\",\"token\":\"%s\"}}",
             token);
    assert_int_equal(frame(st, id2, json), WA_OK);
    assert_int_equal(count(again, "sync"), 1);
    assert_null(strstr(sent[nsent - 2].json, "while away"));
    f = last(again, "msg");
    assert_non_null(f);
    assert_string_equal(str(cJSON_GetObjectItem(f, "msg"), "body"),
                        "while away");
    cJSON_Delete(f);
    assert_int_equal(count(again, "msg"), 1);

    /* Once delivered, a later relaunch does not see it as new again. */
    fw_state_page_close(st, id2);
    assert_int_equal(fw_state_page_open(st, again, &id2), WA_OK);
    assert_int_equal(frame(st, id2, json), WA_OK);
    assert_int_equal(count(again, "msg"), 1);
    assert_int_equal(count(again, "sync"), 2);
    free(token);
    fw_state_free(st);
}

static void test_logout(void **s)
{
    void *conn = (void *)1, *later = (void *)2;
    fw_state_t *st = new_state();
    uint64_t id = open_unpaired(st, conn), id2;
    char *token = pair(st, id, conn, "41791234567");
    char json[512];
    cJSON *f, *p;
    int n = -1;

    (void)s;
    assert_int_equal(fw_state_logout(st, "41790000000", &n), WA_ENOTFOUND);
    assert_int_equal(fw_state_logout(st, "41791234567", &n), WA_OK);
    assert_int_equal(n, 1);
    f = last(conn, "logout");
    assert_string_equal(str(f, "reason"), "unlinked");
    cJSON_Delete(f);
    p = pages(st);
    assert_true(
        cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(p, 0), "phone")));
    cJSON_Delete(p);
    /* The page is logged out: it may not send any more. */
    assert_int_equal(frame(st, id,
                           "{\"type\":\"exists\",\"rid\":\"q\",\"wid\":"
                           "\"41791112233@c.us\"}"),
                     WA_ENOTREADY);
    fw_state_page_close(st, id);

    /* The browser comes back with the old login: told it is unlinked. */
    assert_int_equal(fw_state_page_open(st, later, &id2), WA_OK);
    snprintf(json, sizeof(json),
             HELLO ",\"login\":{\"phone\":\"41791234567\",\"token\":\"%s\"}}",
             token);
    assert_int_equal(frame(st, id2, json), WA_OK);
    assert_int_equal(count(later, "logout"), 1);
    assert_int_equal(count(later, "sync"), 0);
    free(token);
    fw_state_free(st);
}

/* A logout from the web side unlinks only that device. */
static void test_unlink_from_web(void **s)
{
    void *a = (void *)1, *b = (void *)2;
    fw_state_t *st = new_state();
    uint64_t ia = open_unpaired(st, a), ib = open_unpaired(st, b);
    char *ta = pair(st, ia, a, "41791234567");
    char *tb = pair(st, ib, b, "41791234567");
    char msgid[FW_SERIAL_MAX + 1];

    (void)s;
    assert_int_equal(frame(st, ia, "{\"type\":\"unlink\"}"), WA_OK);
    assert_int_equal(count(a, "logout"), 1);
    assert_int_equal(count(b, "logout"), 0);
    assert_int_equal(fw_state_incoming(st, "41791234567", "41765550123@c.us",
                                       "still here", msgid, sizeof(msgid)),
                     WA_OK);
    assert_int_equal(count(b, "msg"), 1);
    assert_int_equal(count(a, "msg"), 0);
    free(ta);
    free(tb);
    fw_state_free(st);
}

static cJSON *devices(fw_state_t *st, const char *phone)
{
    cJSON *d = NULL;

    assert_int_equal(fw_state_devices(st, phone, &d), WA_OK);
    assert_true(cJSON_IsArray(d));
    return d;
}

/* Device i of list d: {"linkedAt","online"} and nothing else (no token). */
static bool online(const cJSON *d, int i, const char *linked_at)
{
    const cJSON *o = cJSON_GetArrayItem(d, i);
    const cJSON *on = cJSON_GetObjectItemCaseSensitive(o, "online");

    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(o), 2);
    assert_string_equal(str(o, "linkedAt"), linked_at);
    assert_true(cJSON_IsBool(on));
    return cJSON_IsTrue(on);
}

/* The phone's "Linked devices" screen: link order, online, unlinks. */
static void test_devices(void **s)
{
    void *a = (void *)1, *b = (void *)2, *c = (void *)3;
    const long long t0 = clock_s;
    fw_state_t *st = new_state();
    uint64_t ia, ib, ic;
    char *ta, *tc, *qr, *text, json[512];
    cJSON *d;

    (void)s;
    assert_int_equal(fw_state_devices(st, "41791234567", &d), WA_ENOTFOUND);
    assert_int_equal(fw_state_devices(st, NULL, &d), WA_EINVAL);

    /* Linked and logged in: online. */
    ia = open_unpaired(st, a);
    ta = pair(st, ia, a, "41791234567");
    d = devices(st, "41791234567");
    assert_int_equal(cJSON_GetArraySize(d), 1);
    assert_true(online(d, 0, "2026-09-21T14:13:20.000Z"));
    text = cJSON_PrintUnformatted(d);
    assert_null(strstr(text, ta));
    free(text);
    cJSON_Delete(d);

    /* Scanned but its login not stored yet (PAIRING): not online. */
    clock_s += 61;
    ib = open_unpaired(st, b);
    qr = shown_qr(b);
    assert_int_equal(fw_state_scan(st, qr, "41791234567", NULL, NULL), WA_OK);
    free(qr);
    d = devices(st, "41791234567");
    assert_int_equal(cJSON_GetArraySize(d), 2);
    assert_true(online(d, 0, "2026-09-21T14:13:20.000Z"));
    assert_false(online(d, 1, "2026-09-21T14:14:21.000Z"));
    cJSON_Delete(d);
    fw_state_page_close(st, ib);
    clock_s += 3600;
    ic = open_unpaired(st, c);
    tc = pair(st, ic, c, "41791234567");

    /* The browser closes: still linked, not online. */
    fw_state_page_close(st, ia);
    d = devices(st, "41791234567");
    assert_int_equal(cJSON_GetArraySize(d), 3);
    assert_false(online(d, 0, "2026-09-21T14:13:20.000Z"));
    assert_false(online(d, 1, "2026-09-21T14:14:21.000Z"));
    assert_true(online(d, 2, "2026-09-21T15:14:21.000Z"));
    cJSON_Delete(d);

    /* The oldest comes back and logs out from the web: gone, the others
     * keep their order. */
    assert_int_equal(fw_state_page_open(st, a, &ia), WA_OK);
    snprintf(json, sizeof(json),
             HELLO ",\"login\":{\"phone\":\"41791234567\",\"token\":\"%s\"}}",
             ta);
    assert_int_equal(frame(st, ia, json), WA_OK);
    d = devices(st, "41791234567");
    assert_true(online(d, 0, "2026-09-21T14:13:20.000Z"));
    cJSON_Delete(d);
    assert_int_equal(frame(st, ia, "{\"type\":\"unlink\"}"), WA_OK);
    d = devices(st, "41791234567");
    assert_int_equal(cJSON_GetArraySize(d), 2);
    assert_false(online(d, 0, "2026-09-21T14:14:21.000Z"));
    assert_true(online(d, 1, "2026-09-21T15:14:21.000Z"));
    cJSON_Delete(d);

    /* The phone unlinks everything: the account stays, with no device. */
    assert_int_equal(fw_state_logout(st, "41791234567", NULL), WA_OK);
    d = devices(st, "41791234567");
    assert_int_equal(cJSON_GetArraySize(d), 0);
    cJSON_Delete(d);
    free(ta);
    free(tc);
    clock_s = t0;
    fw_state_free(st);
}

/* fakewa forgot (restarted): a stored login is adopted, same history. */
static void test_adopt_login(void **s)
{
    void *conn = (void *)1;
    fw_state_t *st = new_state();
    uint64_t id;
    cJSON *f, *m;
    fw_seed_t *seed = malloc(sizeof(*seed));

    (void)s;
    assert_int_equal(fw_state_page_open(st, conn, &id), WA_OK);
    assert_int_equal(frame(st, id,
                           HELLO ",\"login\":{\"phone\":\"41791234567\","
                                 "\"token\":"
                                 "\"0123456789abcdef0123456789abcdef\","
                                 "\"name\":\"Dr. Stored\"}}"),
                     WA_OK);
    f = last(conn, "sync");
    assert_non_null(f);
    m = cJSON_GetObjectItem(f, "me");
    assert_string_equal(str(m, "name"), "Dr. Stored");
    fw_seed("41791234567", clock_s, seed);
    m = cJSON_GetArrayItem(
        cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(f, "chats"), 0), "msgs"),
        -1 + FW_PAGE_MSGS);
    assert_string_equal(str(m, "id"),
                        seed->chats[0].msgs[seed->chats[0].nmsgs - 1].id);
    cJSON_Delete(f);
    free(seed);
    fw_state_free(st);
}

static void test_limits(void **s)
{
    fw_state_t *st = new_state();
    uint64_t ids[FW_PAGES_MAX + 1];
    char *tokens[4] = {0}, *qr;

    (void)s;
    /* WhatsApp links at most 4 companion devices. */
    for (int i = 0; i < 4; i++) {
        ids[i] = open_unpaired(st, (void *)(uintptr_t)(10 + i));
        tokens[i] =
            pair(st, ids[i], (void *)(uintptr_t)(10 + i), "41791234567");
    }
    ids[4] = open_unpaired(st, (void *)(uintptr_t)14);
    qr = shown_qr((void *)(uintptr_t)14);
    assert_int_equal(fw_state_scan(st, qr, "41791234567", NULL, NULL),
                     WA_ECONFLICT);
    free(qr);
    for (size_t i = 5; i < FW_PAGES_MAX; i++)
        assert_int_equal(fw_state_page_open(st, NULL, &ids[i]), WA_OK);
    assert_int_equal(fw_state_page_count(st), FW_PAGES_MAX);
    assert_int_equal(fw_state_page_open(st, NULL, &ids[FW_PAGES_MAX]),
                     WA_EFULL);
    for (int i = 0; i < 4; i++)
        free(tokens[i]);
    fw_state_free(st); /* with pages still open */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_phone, teardown),
        cmocka_unit_test_teardown(test_wids, teardown),
        cmocka_unit_test_teardown(test_text, teardown),
        cmocka_unit_test_teardown(test_json, teardown),
        cmocka_unit_test_teardown(test_seed, teardown),
        cmocka_unit_test_teardown(test_qr_rotation_and_idle, teardown),
        cmocka_unit_test_teardown(test_bad_frames, teardown),
        cmocka_unit_test_teardown(test_not_ready, teardown),
        cmocka_unit_test_teardown(test_scan_sync_and_earlier, teardown),
        cmocka_unit_test_teardown(test_incoming_send_exists, teardown),
        cmocka_unit_test_teardown(test_offline_delivery_and_relaunch, teardown),
        cmocka_unit_test_teardown(test_logout, teardown),
        cmocka_unit_test_teardown(test_unlink_from_web, teardown),
        cmocka_unit_test_teardown(test_devices, teardown),
        cmocka_unit_test_teardown(test_adopt_login, teardown),
        cmocka_unit_test_teardown(test_limits, teardown),
    };

    wa_log_init("fakewa_state_test", WA_LOG_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
