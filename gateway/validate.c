/*
 * validate.c - input checks for the REST routes (validate.h).
 */
#include <string.h>

#include "validate.h"
#include "wa/json.h"
#include "wa/envelope.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Count the digits at s (at most max + 1 are looked at). */
static size_t digits(const char *s, size_t max)
{
    size_t n = 0;

    while (n <= max && is_digit(s[n]))
        n++;
    return n;
}

bool gw_valid_chat_id(const char *s)
{
    size_t n, m;

    if (s == NULL)
        return false;
    n = digits(s, 20);
    if (n < 5 || n > 20)
        return false;
    s += n;
    if (strcmp(s, "@c.us") == 0 || strcmp(s, "@g.us") == 0)
        return true;
    if (*s != '-')
        return false;
    s++;
    m = digits(s, 20);
    return m >= 1 && m <= 20 && strcmp(s + m, "@g.us") == 0;
}

bool gw_valid_phone(const char *s)
{
    size_t n;

    if (s == NULL || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return false;
    n = digits(s + 2, 14);
    return n >= 6 && n <= 14 && s[2 + n] == '\0';
}

wa_err_t gw_parse_int(const char *s, long min, long max, long *out)
{
    long v = 0;
    size_t i;

    if (s == NULL || s[0] == '\0')
        return WA_EINVAL;
    for (i = 0; s[i] != '\0'; i++) {
        if (!is_digit(s[i]) || i >= 9)
            return WA_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return WA_EINVAL;
    *out = v;
    return WA_OK;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode src[0..len) into out; see gw_query_param for the results. */
static wa_err_t decode_value(const char *src, size_t len, char *out,
                             size_t outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];

        if (c == '%') {
            int hi, lo;

            if (i + 2 >= len || (hi = hex_value(src[i + 1])) < 0 ||
                (lo = hex_value(src[i + 2])) < 0)
                return WA_EINVAL;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return WA_EINVAL;
            i += 2;
        }
        if (o + 1 >= outlen)
            return WA_ETOOBIG;
        out[o++] = c;
    }
    out[o] = '\0';
    return WA_OK;
}

wa_err_t gw_query_param(const char *query, const char *name, char *out,
                        size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = query, *found = NULL;
    size_t flen = 0;

    if (outlen == 0)
        return WA_ETOOBIG;
    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        size_t plen = amp != NULL ? (size_t)(amp - p) : strlen(p);

        if (plen >= nlen && strncmp(p, name, nlen) == 0 &&
            (plen == nlen || p[nlen] == '=')) {
            if (found != NULL)
                return WA_EINVAL;
            found = plen == nlen ? p + nlen : p + nlen + 1;
            flen = plen == nlen ? 0 : plen - nlen - 1;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    if (found == NULL)
        return WA_ENOTFOUND;
    return decode_value(found, flen, out, outlen);
}

wa_err_t gw_path_decode(const char *raw, char *out, size_t outlen,
                        const char **why)
{
    size_t o = 0;

    for (size_t i = 0; raw[i] != '\0'; i++) {
        char c = raw[i];

        if (c == '%') {
            int hi, lo;

            /* raw is NUL-terminated: raw[i + 1] is readable, and raw[i + 2]
             * whenever raw[i + 1] is a hex digit. */
            if ((hi = hex_value(raw[i + 1])) < 0 ||
                (lo = hex_value(raw[i + 2])) < 0) {
                *why = "path: malformed percent-encoding";
                return WA_EINVAL;
            }
            if ((c = (char)(hi * 16 + lo)) == '\0') {
                *why = "path: must not contain %00";
                return WA_EINVAL;
            }
            i += 2;
        }
        if (o + 1 >= outlen)
            return WA_ETOOBIG;
        out[o++] = c;
    }
    if (outlen == 0)
        return WA_ETOOBIG;
    out[o] = '\0';
    return WA_OK;
}

wa_err_t gw_check_message(const char *s, size_t len, const char **why)
{
    if (s == NULL || len == 0) {
        *why = "message: must not be empty";
        return WA_EINVAL;
    }
    if (len > GW_MESSAGE_MAX) {
        *why = "message: longer than 65536 bytes";
        return WA_EINVAL;
    }
    if (!wa_utf8_valid(s, len)) {
        *why = "message: not valid UTF-8";
        return WA_EINVAL;
    }
    return WA_OK;
}

bool gw_json_has_nul_escape(const char *buf, size_t len)
{
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = buf[i] == '"';
            continue;
        }
        if (buf[i] == '"') {
            in_string = false;
        } else if (buf[i] == '\\' && i + 1 < len) {
            if (buf[i + 1] == 'u' && i + 5 < len && buf[i + 2] == '0' &&
                buf[i + 3] == '0' && buf[i + 4] == '0' && buf[i + 5] == '0')
                return true;
            i++; /* the escaped character, whatever it is */
        }
    }
    return false;
}

/*
 * Is this log row (an object being walked) exactly {id, eventType,
 * eventData, timestamp}, each once, id a number, eventType and timestamp
 * strings or null? eventData is any JSON (checked with the whole answer).
 */
static bool log_row_ok(wa_json_iter_t *row)
{
    static const char *const fields[] = {"id", "eventType", "eventData",
                                         "timestamp"};
    const size_t nf = sizeof(fields) / sizeof(fields[0]);
    unsigned seen = 0;
    wa_json_span_t key, val;

    while (wa_json_iter_next(row, &key, &val)) {
        size_t i;
        char k;

        for (i = 0; i < nf && !wa_json_key_is(key, fields[i]); i++)
            ;
        if (i == nf || (seen & (1u << i)) != 0)
            return false;
        seen |= 1u << i;
        k = wa_json_kind(val);
        if ((i == 0 && k != '0') ||
            ((i == 1 || i == 3) && k != '"' && k != 'n'))
            return false;
    }
    return seen == (1u << nf) - 1;
}

/* A version: a JSON string of 1..GW_LOGCACHE_VERSION_MAX printable
 * ASCII characters without escapes, so its text between the quotes is its
 * value. */
static bool version_ok(wa_json_span_t v)
{
    if (wa_json_kind(v) != '"' || v.n < 3 || v.n - 2 > GW_LOGCACHE_VERSION_MAX)
        return false;
    for (size_t i = 1; i + 1 < v.n; i++) {
        if (v.p[i] < 0x21 || v.p[i] > 0x7e || v.p[i] == '\\')
            return false;
    }
    return true;
}

/* One pass: the array and each row are entered, not skipped first. */
bool gw_logs_answer(const char *text, size_t len, gw_logs_answer_t *out)
{
    enum { F_LOGS = 1, F_VERSION = 2, F_UNCHANGED = 4 };
    wa_json_span_t key, val, row;
    wa_json_iter_t it, rows, cols;
    unsigned seen = 0, f;

    memset(out, 0, sizeof(*out));
    if (!wa_json_iter_init(&it, (wa_json_span_t){text, len}) || !it.object)
        return false;
    while (wa_json_iter_next_in(&it, &key, &val, &rows)) {
        if (wa_json_key_is(key, "logs"))
            f = F_LOGS;
        else if (wa_json_key_is(key, "version"))
            f = F_VERSION;
        else if (wa_json_key_is(key, "unchanged"))
            f = F_UNCHANGED;
        else
            return false;
        if (seen & f)
            return false;
        seen |= f;
        if (f == F_VERSION) {
            if (!version_ok(val))
                return false;
            out->version = val.p + 1;
            out->version_len = val.n - 2;
        } else if (f == F_UNCHANGED) {
            if (wa_json_kind(val) != 't')
                return false;
            out->unchanged = true;
        } else {
            if (wa_json_kind(val) != '[')
                return false;
            out->rows.p = val.p;
            while (wa_json_iter_next_in(&rows, &key, &row, &cols)) {
                if (wa_json_kind(row) != '{' || !log_row_ok(&cols))
                    return false;
            }
            /* Entered, so val.n is 0: the array ends at the bracket that
             * stopped the walk. */
            out->rows.n = (size_t)(rows.s + rows.i + 1 - val.p);
        }
    }
    return seen == (F_LOGS | F_VERSION) || seen == (F_UNCHANGED | F_VERSION);
}

/* Is status (a JSON string) one a live browser holds: initializing, qr,
 * authenticated or ready? */
static bool status_running(wa_json_span_t status)
{
    static const char *const running[] = {"initializing", "qr", "authenticated",
                                          "ready"};

    for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++) {
        if (wa_json_key_is(status, running[i]))
            return true;
    }
    return false;
}

wa_err_t gw_status_body(const char *text, size_t len, char **out,
                        size_t *outlen)
{
    enum {
        F_STATUS,
        F_PHONE,
        F_NAME,
        F_QR,
        F_CONNECTED,
        F_ACTIVITY,
        NF,
        F_ALIVE = NF
    };
    static const char *const fields[NF + 1] = {
        "status",      "phoneNumber",  "displayName",  "qrCode",
        "connectedAt", "lastActivity", "instanceAlive"};
    static const char error_status[] = "\"error\"";
    wa_json_span_t f[NF + 1];
    wa_json_buf_t b = {0};

    *out = NULL;
    if (wa_json_members((wa_json_span_t){text, len}, fields, NF + 1, f) !=
            WA_OK ||
        wa_json_kind(f[F_STATUS]) != '"')
        return WA_EPROTO;
    /* A session the store holds as running, whose instance is dead, runs
     * nowhere: the last status that instance wrote is no longer true, and
     * no other will be written until an instance takes the user over. An
     * answer without the flag (an older store-svc) is taken as it is. */
    if (wa_json_kind(f[F_ALIVE]) == 'f' && status_running(f[F_STATUS]))
        f[F_STATUS] = (wa_json_span_t){error_status, sizeof(error_status) - 1};
    /* The QR is only meaningful (and only shown) while scanning. */
    if (!wa_json_key_is(f[F_STATUS], "qr"))
        f[F_QR] = (wa_json_span_t){0};
    for (int i = 0; i < NF; i++) {
        wa_json_buf_lit(&b, i == 0 ? "{\"" : ",\"");
        wa_json_buf_lit(&b, fields[i]);
        wa_json_buf_lit(&b, "\":");
        if (wa_json_kind(f[i]) == '"')
            wa_json_buf_add(&b, f[i].p, f[i].n);
        else
            wa_json_buf_lit(&b, "null");
    }
    wa_json_buf_lit(&b, "}");
    return wa_json_buf_done(&b, out, outlen);
}
