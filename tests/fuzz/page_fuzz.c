/*
 * page_fuzz.c - what the WhatsApp Web page hands session-svc, on arbitrary
 * bytes. The page is not trusted (WAWEB.md: its modules change under us,
 * and a hostile page can call the binding with anything), so every reader
 * of its output must refuse what it cannot check and pass on only what it
 * checked:
 *   - adapter__parse_payload (the binding): an accepted event has a kind,
 *     NUL-terminated valid UTF-8 text within its buffer, a phone of digits
 *     only, a message object only for "message"; a QR string renders to a
 *     PNG data URL;
 *   - adapter__result (the answers of chats, messages, send, chatByPhone,
 *     logout): an accepted answer prints as JSON that proto's checker
 *     accepts, with valid UTF-8 strings;
 *   - adapter__chat_id_valid and adapter__phone_normalize (ids the page
 *     and the REST side both use) on the raw text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "session.h"
#include "wa/envelope.h"
#include "wa/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* NUL-terminated, valid UTF-8, shorter than cap. */
static void check_text(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    if (n == cap || !wa_utf8_valid(s, n))
        abort();
}

static void check_digits(const char *s)
{
    if (strspn(s, "0123456789") != strlen(s))
        abort();
}

/* Every string in v (keys too) is valid UTF-8; the printed text is JSON. */
static void check_json(const cJSON *v)
{
    const cJSON *it;
    char *text;

    if (v->string != NULL && !wa_utf8_valid(v->string, strlen(v->string)))
        abort();
    if (cJSON_IsString(v) &&
        !wa_utf8_valid(v->valuestring, strlen(v->valuestring)))
        abort();
    cJSON_ArrayForEach(it, v) check_json(it);
    if (v->string != NULL)
        return; /* the root prints the whole */
    if ((text = cJSON_PrintUnformatted(v)) == NULL)
        return; /* out of memory */
    if (wa_json_check(text, strlen(text), NULL) != WA_OK)
        abort();
    cJSON_free(text);
}

static void payload(const char *s)
{
    ss_page_event_t ev;
    char *url = NULL;

    if (adapter__parse_payload(s, &ev) != WA_OK) {
        if (ev.kind != PAGE_HELLO || ev.msg != NULL || ev.text[0] != '\0')
            abort(); /* refused means empty */
        return;
    }
    if (ev.kind > PAGE_ERROR || (ev.msg != NULL) != (ev.kind == PAGE_MESSAGE))
        abort();
    check_text(ev.text, sizeof(ev.text));
    check_text(ev.phone, sizeof(ev.phone));
    check_text(ev.name, sizeof(ev.name));
    check_digits(ev.phone);
    if (ev.msg != NULL)
        check_json(ev.msg);
    if (ev.kind == PAGE_QR) {
        if (qr__data_url(ev.text, &url) == WA_OK &&
            strncmp(url, "data:image/png;base64,", 22) != 0)
            abort();
        free(url);
    }
    ss_page_event_clear(&ev);
}

static void results(const char *s, size_t n)
{
    static const char *const fns[] = {"chats", "messages", "send",
                                      "chatByPhone", "logout"};
    cJSON *value = cJSON_ParseWithLength(s, n), *out;
    wa_err_t err;

    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        err = adapter__result(fns[i], value, &out);
        if ((err == WA_OK) != (out != NULL))
            abort();
        if (out != NULL) {
            check_json(out);
            cJSON_Delete(out);
        }
    }
    cJSON_Delete(value);
}

static void ids(const char *s)
{
    char phone[SS_PHONE_MAX + 1];

    if (adapter__chat_id_valid(s) &&
        (strlen(s) > SS_CHAT_ID_MAX || strchr(s, '@') == NULL ||
         strspn(s, "0123456789-") != (size_t)(strchr(s, '@') - s)))
        abort();
    if (adapter__phone_normalize(s, phone, sizeof(phone))) {
        check_digits(phone);
        if (strlen(phone) < 7 || strlen(phone) > 15 || phone[0] == '0')
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size > SS_PAYLOAD_MAX + 16)
        return 0;
    if ((s = malloc(size + 1)) == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0'; /* the binding's payload is a C string */
    payload(s);
    results(s, size);
    ids(s);
    free(s);
    return 0;
}
