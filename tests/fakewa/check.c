/*
 * check.c - the input checks that the control API and the page channel
 * share (fakewa.h): phone numbers, chat ids, message text, JSON.
 */
#include <stdio.h>
#include <string.h>

#include "fakewa.h"
#include "wa/envelope.h"

static bool all_digits(const char *s, size_t min, size_t max)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9')
            return false;
    }
    return n >= min && n <= max;
}

wa_err_t fw_phone_normalize(const char *in, char *out)
{
    if (in == NULL)
        return WA_EINVAL;
    if (in[0] == '+')
        in++;
    if (in[0] == '0' || !all_digits(in, 6, FW_PHONE_MAX))
        return WA_EINVAL;
    memmove(out, in, strlen(in) + 1); /* out may be in */
    return WA_OK;
}

wa_err_t fw_user_wid(const char *in, char *out)
{
    char digits[FW_PHONE_MAX + 2];
    const char *at;
    size_t n;

    if (in == NULL)
        return WA_EINVAL;
    if ((at = strchr(in, '@')) != NULL) {
        if (strcmp(at, "@c.us") != 0 || in[0] == '+')
            return WA_EINVAL;
        n = (size_t)(at - in);
    } else {
        n = strlen(in);
    }
    if (n >= sizeof(digits))
        return WA_EINVAL;
    memcpy(digits, in, n);
    digits[n] = '\0';
    if (fw_phone_normalize(digits, digits) != WA_OK)
        return WA_EINVAL;
    snprintf(out, FW_WID_MAX + 1, "%s@c.us", digits);
    return WA_OK;
}

bool fw_wid_valid(const char *wid)
{
    char user[FW_WID_MAX + 1], phone[FW_PHONE_MAX + 1];
    const char *at, *dash;
    size_t n;

    if (wid == NULL || (at = strchr(wid, '@')) == NULL ||
        (n = (size_t)(at - wid)) == 0 || n >= sizeof(user))
        return false;
    memcpy(user, wid, n);
    user[n] = '\0';
    if (strcmp(at, "@c.us") == 0)
        return user[0] != '+' && fw_phone_normalize(user, phone) == WA_OK;
    if (strcmp(at, "@g.us") != 0)
        return false;
    if ((dash = strchr(user, '-')) == NULL)
        return all_digits(user, 10, 25);
    user[dash - user] = '\0';
    return all_digits(user, 6, FW_PHONE_MAX) && all_digits(dash + 1, 1, 12);
}

bool fw_on_whatsapp(const char *wid)
{
    const char *at;

    if (!fw_wid_valid(wid) || (at = strchr(wid, '@')) == NULL ||
        strcmp(at, "@c.us") != 0)
        return false;
    return !(at - wid >= 4 && strncmp(at - 4, "0000", 4) == 0);
}

wa_err_t fw_check_text(const char *s, size_t len, size_t max, bool allow_empty)
{
    if (s == NULL || (len == 0 && !allow_empty) || len > max)
        return WA_EINVAL;
    if (memchr(s, '\0', len) != NULL)
        return WA_EINVAL;
    return wa_utf8_valid(s, len) ? WA_OK : WA_EUTF8;
}

/* Does the JSON text hold a \u0000 escape? Backslashes only occur inside
 * strings in valid JSON, so skipping each escape pair is enough. */
static bool has_nul_escape(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\\')
            continue;
        if (buf[i + 1] == 'u' && i + 5 < len &&
            memcmp(buf + i + 2, "0000", 4) == 0)
            return true;
        i++;
    }
    return false;
}

wa_err_t fw_json_parse(const char *buf, size_t len, cJSON **out)
{
    const char *end = NULL;
    cJSON *j;

    if (buf == NULL || len == 0)
        return WA_EINVAL;
    if (!wa_utf8_valid(buf, len))
        return WA_EUTF8;
    if (memchr(buf, '\0', len) != NULL || has_nul_escape(buf, len))
        return WA_EINVAL;
    if ((j = cJSON_ParseWithLengthOpts(buf, len, &end, false)) == NULL)
        return WA_EINVAL;
    for (; end != NULL && end < buf + len; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            cJSON_Delete(j);
            return WA_EINVAL;
        }
    }
    *out = j;
    return WA_OK;
}
