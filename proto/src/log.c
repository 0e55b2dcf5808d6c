/*
 * log.c - JSON lines on stderr, with redaction of secrets and bodies.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "wa/envelope.h"
#include "wa/log.h"

/*
 * Input limits: the message is cut at MSG_MAX bytes, keys at KEY_MAX, values
 * at VAL_MAX, and at most KV_MAX fields are written. An escaped byte takes at
 * most 6 output bytes, so a string of n input bytes needs 6n + 2; fields that
 * no longer fit whole are dropped, which keeps every line valid JSON.
 */
#define LOG_MSG_MAX 1024
#define LOG_KEY_MAX 64
#define LOG_VAL_MAX 256
#define LOG_KV_MAX 16
#define LOG_RECORD_MAX 16384

const char *const wa_log_level_names[] = {"debug", "info", "warn", "error",
                                          NULL};

/* Set once in main() before threads start; read-only afterwards. */
static wa_log_level_t log_level = WA_LOG_INFO;
static char log_service[32] = "wa";
static int log_fd = 2;

/* Field keys whose values are never written (substring, case-insensitive). */
static const char *const secret_keys[] = {
    "token", "authorization", "secret", "password", "jwt",
    "body",  "text",          "qr",     "cookie",
};

void wa_log_init(const char *service, wa_log_level_t level)
{
    snprintf(log_service, sizeof(log_service), "%s",
             service != NULL ? service : "wa");
    log_level = level;
}

void wa_log_set_fd(int fd)
{
    log_fd = fd;
}

int wa_log_enabled(wa_log_level_t level)
{
    return level >= log_level;
}

static int key_is_secret(const char *key)
{
    size_t i;

    for (i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++) {
        if (strcasestr(key, secret_keys[i]) != NULL)
            return 1;
    }
    return 0;
}

static int b64url_char(int c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '=';
}

/*
 * If s starts a JWT (eyJ<b64>.<b64>.<b64>, the signature may be empty),
 * return its length, else 0.
 */
static size_t jwt_span(const char *s)
{
    size_t i = 3;
    int dots = 0;

    if (strncmp(s, "eyJ", 3) != 0)
        return 0;
    for (;; i++) {
        if (b64url_char((unsigned char)s[i]))
            continue;
        if (s[i] == '.' && dots < 2) {
            dots++;
            continue;
        }
        break;
    }
    return dots == 2 ? i : 0;
}

/* Append c to out as JSON string content. Returns the new position, never
 * past lim (the caller keeps room for the closing bytes). */
static size_t put_escaped(char *out, size_t pos, size_t lim, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[7];
    size_t n;

    switch (c) {
    case '"':
        n = 2, tmp[0] = '\\', tmp[1] = '"';
        break;
    case '\\':
        n = 2, tmp[0] = '\\', tmp[1] = '\\';
        break;
    case '\n':
        n = 2, tmp[0] = '\\', tmp[1] = 'n';
        break;
    case '\r':
        n = 2, tmp[0] = '\\', tmp[1] = 'r';
        break;
    case '\t':
        n = 2, tmp[0] = '\\', tmp[1] = 't';
        break;
    default:
        if (c < 0x20 || c == 0x7f) {
            n = 6;
            memcpy(tmp, "\\u00", 4);
            tmp[4] = hex[c >> 4];
            tmp[5] = hex[c & 15];
        } else {
            n = 1, tmp[0] = (char)c;
        }
    }
    if (pos + n > lim)
        return pos;
    memcpy(out + pos, tmp, n);
    return pos + n;
}

/*
 * Append s as a quoted JSON string with JWTs and bearer credentials
 * replaced. Bytes that are not valid UTF-8 are written as '?', so the line
 * stays valid JSON whatever the input.
 */
static size_t put_string(char *out, size_t pos, size_t lim, const char *s,
                         size_t maxin)
{
    static const char red[] = "[redacted]";
    size_t i = 0, n;

    /* Room for the closing quote is kept back from the start. */
    lim--;
    if (pos < lim)
        out[pos++] = '"';
    while (s[i] != '\0' && i < maxin && pos < lim) {
        if ((n = jwt_span(s + i)) > 0) {
            if (pos + sizeof(red) - 1 > lim)
                break;
            memcpy(out + pos, red, sizeof(red) - 1);
            pos += sizeof(red) - 1;
            i += n;
            continue;
        }
        if (strncasecmp(s + i, "bearer ", 7) == 0) {
            for (n = 0; n < 7; n++)
                pos = put_escaped(out, pos, lim, (unsigned char)s[i + n]);
            i += 7;
            while (s[i] == ' ')
                i++;
            if (s[i] == '\0')
                continue;
            while (s[i] != '\0' && !isspace((unsigned char)s[i]) &&
                   s[i] != '"' && s[i] != ',')
                i++;
            if (pos + sizeof(red) - 1 > lim)
                break;
            memcpy(out + pos, red, sizeof(red) - 1);
            pos += sizeof(red) - 1;
            continue;
        }
        if ((unsigned char)s[i] >= 0x80) {
            /* Copy one whole valid UTF-8 sequence, or '?' for a bad byte. */
            unsigned char c = (unsigned char)s[i];
            size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            size_t k;

            for (k = 1; k < len && s[i + k] != '\0'; k++)
                ;
            if (k == len && wa_utf8_valid(s + i, len)) {
                if (pos + len > lim)
                    break;
                memcpy(out + pos, s + i, len);
                pos += len;
                i += len;
            } else {
                out[pos++] = '?';
                i++;
            }
            continue;
        }
        pos = put_escaped(out, pos, lim, (unsigned char)s[i]);
        i++;
    }
    out[pos++] = '"';
    return pos;
}

static size_t put_raw(char *out, size_t pos, size_t lim, const char *s)
{
    size_t n = strlen(s);

    if (pos + n > lim)
        n = lim - pos;
    memcpy(out + pos, s, n);
    return pos + n;
}

size_t wa_log_format(char *buf, size_t len, wa_log_level_t level,
                     const char *rid, const char *msg, const char *const *kv,
                     size_t nkv)
{
    char ts[WA_TIMESTAMP_MAX + 1];
    size_t pos = 0, lim, i;

    if (buf == NULL || len < 1024)
        return 0;
    /* Keep room for the closing "}\n" and the NUL whatever happens. */
    lim = len - 3;
    if ((unsigned)level > WA_LOG_ERROR)
        level = WA_LOG_ERROR;
    wa_timestamp_now(ts, sizeof(ts));

    pos = put_raw(buf, pos, lim, "{\"ts\":");
    pos = put_string(buf, pos, lim, ts, WA_TIMESTAMP_MAX);
    pos = put_raw(buf, pos, lim, ",\"level\":");
    pos = put_string(buf, pos, lim, wa_log_level_names[level], 8);
    pos = put_raw(buf, pos, lim, ",\"svc\":");
    pos = put_string(buf, pos, lim, log_service, sizeof(log_service));
    if (rid != NULL && rid[0] != '\0') {
        pos = put_raw(buf, pos, lim, ",\"rid\":");
        pos = put_string(buf, pos, lim, rid, WA_RID_MAX);
    }
    pos = put_raw(buf, pos, lim, ",\"msg\":");
    pos = put_string(buf, pos, lim, msg != NULL ? msg : "", LOG_MSG_MAX);
    for (i = 0; i < nkv && i < LOG_KV_MAX; i++) {
        const char *k = kv[2 * i], *v = kv[2 * i + 1];

        if (k == NULL)
            break;
        if (lim - pos < 6 * (LOG_KEY_MAX + LOG_VAL_MAX) + 16)
            break;
        pos = put_raw(buf, pos, lim, ",");
        pos = put_string(buf, pos, lim, k, LOG_KEY_MAX);
        pos = put_raw(buf, pos, lim, ":");
        if (v == NULL)
            pos = put_raw(buf, pos, lim, "null");
        else
            pos = put_string(buf, pos, lim, key_is_secret(k) ? "[redacted]" : v,
                             LOG_VAL_MAX);
    }
    buf[pos++] = '}';
    buf[pos++] = '\n';
    buf[pos] = '\0';
    return pos;
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(log_fd, buf, len);

        if (n <= 0)
            return; /* Nowhere left to report a failing stderr. */
        buf += n;
        len -= (size_t)n;
    }
}

void wa_log_emit(wa_log_level_t level, const char *rid, const char *fmt, ...)
{
    char msg[LOG_MSG_MAX + 1], line[LOG_RECORD_MAX];
    va_list ap;
    size_t n;

    if (!wa_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n = wa_log_format(line, sizeof(line), level, rid, msg, NULL, 0);
    write_all(line, n);
}

void wa_log_kv(wa_log_level_t level, const char *rid, const char *msg, ...)
{
    const char *kv[2 * LOG_KV_MAX];
    char line[LOG_RECORD_MAX];
    size_t nkv = 0, n;
    const char *k;
    va_list ap;

    if (!wa_log_enabled(level))
        return;
    va_start(ap, msg);
    while (nkv < LOG_KV_MAX && (k = va_arg(ap, const char *)) != NULL) {
        kv[2 * nkv] = k;
        kv[2 * nkv + 1] = va_arg(ap, const char *);
        nkv++;
    }
    va_end(ap);
    n = wa_log_format(line, sizeof(line), level, rid, msg, kv, nkv);
    write_all(line, n);
}
