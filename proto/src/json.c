/*
 * json.c - JSON text checked, walked and written without a tree.
 *
 * The checker is a loop over an explicit stack of one bit per open
 * container (object or array), so a hostile nesting depth costs neither C
 * stack nor allocation. The iterator trusts checked text: it only has to
 * find where each value ends.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wa/json.h"

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

/*
 * Byte classes, so the hot loops test one table entry per byte: STR ends a
 * run of plain string bytes (quote, backslash, or a control character,
 * which JSON refuses raw); NEST is where a skip over a checked container
 * must look (quote, brackets, braces).
 */
enum { STR = 1, NEST = 2 };

#define CTL1(b) [b] = STR
#define CTL4(b) CTL1(b), CTL1(b + 1), CTL1(b + 2), CTL1(b + 3)
static const unsigned char cls[256] = {
    CTL4(0x00),   CTL4(0x04),   CTL4(0x08),   CTL4(0x0c),         CTL4(0x10),
    CTL4(0x14),   CTL4(0x18),   CTL4(0x1c),   ['"'] = STR | NEST, ['\\'] = STR,
    ['{'] = NEST, ['['] = NEST, ['}'] = NEST, [']'] = NEST,
};

/*
 * Eight bytes at a time (SWAR) over the plain runs of strings, which are
 * most of the bytes of our JSON (message text, timestamps, ids): the
 * index of the first byte at or after i (i < n) that needs a look, a quote,
 * a backslash or, with ctl, a control character; n if none.
 */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static uint64_t has_zero(uint64_t x)
{
    return (x - ONES) & ~x & HIGHS;
}

static size_t plain_run(const char *s, size_t n, size_t i, bool ctl)
{
    while (i < n && n - i >= 8) {
        uint64_t w, hit;

        memcpy(&w, s + i, 8);
        hit = has_zero(w ^ (ONES * '"')) | has_zero(w ^ (ONES * '\\'));
        if (ctl)
            hit |= (w - ONES * 0x20) & ~w & HIGHS; /* a byte < 0x20 */
        if (hit != 0)
            break;
        i += 8;
    }
    while (i < n && !(cls[(unsigned char)s[i]] & STR))
        i++;
    return i;
}

static int hex4(const char *s)
{
    int v = 0;

    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

/* A string starting at s[*i] == '"'; *i is left just past its end. */
static bool scan_string(const char *s, size_t n, size_t *i)
{
    size_t k = *i + 1;

    for (;;) {
        unsigned char c;

        k = plain_run(s, n, k, true);
        if (k >= n)
            return false;
        c = (unsigned char)s[k];
        if (c == '"')
            break;
        if (c < 0x20)
            return false;
        if (c != '\\') {
            k++;
            continue;
        }
        if (k + 1 >= n)
            return false;
        switch (s[k + 1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            k += 2;
            continue;
        case 'u':
            break;
        default:
            return false;
        }
        /* \uXXXX: not U+0000; a high surrogate only before a low one. */
        int u, lo;
        if (k + 6 > n || (u = hex4(s + k + 2)) <= 0)
            return false;
        k += 6;
        if (u >= 0xDC00 && u <= 0xDFFF)
            return false;
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (k + 6 > n || s[k] != '\\' || s[k + 1] != 'u' ||
                (lo = hex4(s + k + 2)) < 0xDC00 || lo > 0xDFFF)
                return false;
            k += 6;
        }
    }
    *i = k + 1;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool scan_number(const char *s, size_t n, size_t *i)
{
    size_t k = *i;

    if (k < n && s[k] == '-')
        k++;
    if (k >= n || !is_digit(s[k]))
        return false;
    if (s[k] == '0') {
        k++;
    } else {
        while (k < n && is_digit(s[k]))
            k++;
    }
    if (k < n && s[k] == '.') {
        k++;
        if (k >= n || !is_digit(s[k]))
            return false;
        while (k < n && is_digit(s[k]))
            k++;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k >= n || !is_digit(s[k]))
            return false;
        while (k < n && is_digit(s[k]))
            k++;
    }
    *i = k;
    return true;
}

static bool scan_literal(const char *s, size_t n, size_t *i, const char *lit)
{
    size_t len = strlen(lit);

    if (n - *i < len || memcmp(s + *i, lit, len) != 0)
        return false;
    *i += len;
    return true;
}

/* One value at s[*i] (no leading whitespace), containers included. */
static bool scan_value(const char *s, size_t n, size_t *i)
{
    unsigned char stack[(WA_JSON_DEPTH_MAX + 7) / 8]; /* 1 = object */
    size_t depth = 0, k = *i;
    bool object;

value:
    if (k >= n)
        return false;
    switch (s[k]) {
    case '{':
    case '[':
        object = s[k] == '{';
        if (depth == WA_JSON_DEPTH_MAX)
            return false;
        if (object)
            stack[depth / 8] |= (unsigned char)(1u << (depth % 8));
        else
            stack[depth / 8] &= (unsigned char)~(1u << (depth % 8));
        depth++;
        k = skip_ws(s, n, k + 1);
        if (k < n && s[k] == (object ? '}' : ']')) {
            depth--;
            k++;
            goto after;
        }
        if (object)
            goto member;
        goto value;
    case '"':
        if (!scan_string(s, n, &k))
            return false;
        break;
    case 't':
        if (!scan_literal(s, n, &k, "true"))
            return false;
        break;
    case 'f':
        if (!scan_literal(s, n, &k, "false"))
            return false;
        break;
    case 'n':
        if (!scan_literal(s, n, &k, "null"))
            return false;
        break;
    default:
        if (!scan_number(s, n, &k))
            return false;
        break;
    }

after:
    if (depth == 0) {
        *i = k;
        return true;
    }
    object = (stack[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1u;
    k = skip_ws(s, n, k);
    if (k >= n)
        return false;
    if (s[k] == ',') {
        k = skip_ws(s, n, k + 1);
        if (object)
            goto member;
        goto value;
    }
    if (s[k] != (object ? '}' : ']'))
        return false;
    depth--;
    k++;
    goto after;

member:
    if (k >= n || s[k] != '"' || !scan_string(s, n, &k))
        return false;
    k = skip_ws(s, n, k);
    if (k >= n || s[k] != ':')
        return false;
    k = skip_ws(s, n, k + 1);
    goto value;
}

static wa_err_t check(const char *s, size_t n, bool want_object,
                      wa_json_span_t *value)
{
    size_t i, start;

    if (s == NULL)
        return WA_EPROTO;
    start = i = skip_ws(s, n, 0);
    if (want_object && (i >= n || s[i] != '{'))
        return WA_EPROTO;
    if (!scan_value(s, n, &i) || skip_ws(s, n, i) != n)
        return WA_EPROTO;
    if (value != NULL) {
        value->p = s + start;
        value->n = i - start;
    }
    return WA_OK;
}

wa_err_t wa_json_check(const char *s, size_t n, wa_json_span_t *value)
{
    return check(s, n, false, value);
}

wa_err_t wa_json_check_object(const char *s, size_t n, wa_json_span_t *value)
{
    return check(s, n, true, value);
}

/* ---------------------------------------------------------- iteration */

/* Just past the checked string whose opening quote is s[i]. */
static size_t string_end(const char *s, size_t n, size_t i)
{
    i++;
    for (;;) {
        i = plain_run(s, n, i, false);
        if (i >= n || s[i] == '"')
            return i < n ? i + 1 : n;
        i += 2; /* an escape (checked: a control cannot be here) */
    }
}

/* The end of the checked value at s[i]. */
static size_t value_end(const char *s, size_t n, size_t i)
{
    size_t depth = 0;

    if (s[i] == '"')
        return string_end(s, n, i);
    if (s[i] != '{' && s[i] != '[') {
        /* A scalar: a literal or a number. */
        while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' &&
               !is_ws(s[i]))
            i++;
        return i;
    }
    while (i < n) {
        while (i < n && !(cls[(unsigned char)s[i]] & NEST))
            i++;
        if (i >= n)
            break;
        if (s[i] == '"') {
            i = string_end(s, n, i);
        } else if (s[i] == '{' || s[i] == '[') {
            depth++;
            i++;
        } else {
            i++;
            if (--depth == 0)
                break;
        }
    }
    return i;
}

bool wa_json_iter_init(wa_json_iter_t *it, wa_json_span_t c)
{
    memset(it, 0, sizeof(*it));
    if (c.p == NULL || c.n < 2 || (c.p[0] != '{' && c.p[0] != '['))
        return false;
    it->s = c.p;
    it->n = c.n;
    it->i = 1;
    it->object = c.p[0] == '{';
    return true;
}

/* Where it goes on: after the value it handed to an inner iterator, read
 * by that iterator to its end, or skipped now if it was left early. */
static size_t resume_at(wa_json_iter_t *it)
{
    wa_json_iter_t *in = it->inner;

    it->inner = NULL;
    if (in->done)
        return in->i + 1;
    return value_end(it->s, it->n, it->open_at);
}

static bool next(wa_json_iter_t *it, wa_json_span_t *key, wa_json_span_t *val,
                 wa_json_iter_t *inner)
{
    const char *s = it->s;
    size_t n = it->n, i, start;

    if (s == NULL || it->done)
        return false;
    i = it->inner != NULL ? resume_at(it) : it->i;
    i = skip_ws(s, n, i);
    if (i < n && s[i] == ',')
        i = skip_ws(s, n, i + 1);
    if (i >= n || s[i] == '}' || s[i] == ']') {
        it->i = i; /* the closing bracket: see resume_at */
        it->done = true;
        return false;
    }
    key->p = NULL;
    key->n = 0;
    if (it->object) {
        start = i;
        i = string_end(s, n, i);
        key->p = s + start;
        key->n = i - start;
        i = skip_ws(s, n, i);
        i = skip_ws(s, n, i + 1); /* the ':' */
    }
    if (i >= n) { /* only text that was not checked ends here */
        it->i = n;
        it->done = true;
        return false;
    }
    start = i;
    val->p = s + start;
    if (inner != NULL && (s[i] == '{' || s[i] == '[')) {
        /* Entered, not skipped: inner reads it, and it goes on from there.
         * inner sees the rest of the text too, and stops at the bracket
         * that closes its container. */
        val->n = 0;
        memset(inner, 0, sizeof(*inner));
        inner->s = s;
        inner->n = n;
        inner->i = i + 1;
        inner->object = s[i] == '{';
        it->inner = inner;
        it->open_at = i;
        return true;
    }
    if (inner != NULL)
        memset(inner, 0, sizeof(*inner));
    i = value_end(s, n, i);
    val->n = i - start;
    it->i = i;
    return true;
}

bool wa_json_iter_next(wa_json_iter_t *it, wa_json_span_t *key,
                       wa_json_span_t *val)
{
    return next(it, key, val, NULL);
}

bool wa_json_iter_next_in(wa_json_iter_t *it, wa_json_span_t *key,
                          wa_json_span_t *val, wa_json_iter_t *inner)
{
    return next(it, key, val, inner);
}

/* The UTF-8 bytes of code point u into out (4 bytes); their count. */
static size_t utf8_put(unsigned long u, unsigned char *out)
{
    if (u < 0x80) {
        out[0] = (unsigned char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (unsigned char)(0xC0 | (u >> 6));
        out[1] = (unsigned char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (u >> 12));
        out[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (u & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (u >> 18));
    out[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (u & 0x3F));
    return 4;
}

bool wa_json_key_is(wa_json_span_t key, const char *name)
{
    const unsigned char *k, *end, *nm = (const unsigned char *)name;
    size_t len = strlen(name);

    if (key.n < 2)
        return false;
    if (memchr(key.p, '\\', key.n) == NULL)
        return key.n - 2 == len && memcmp(key.p + 1, name, len) == 0;
    /* Escapes (checked text: each is well formed), decoded as compared. */
    k = (const unsigned char *)key.p + 1;
    end = (const unsigned char *)key.p + key.n - 1;
    while (k < end) {
        unsigned char one[4];
        unsigned long u;
        size_t n;

        if (*k != '\\') {
            if (*nm++ != *k++)
                return false;
            continue;
        }
        switch (k[1]) {
        case 'b':
            u = '\b';
            break;
        case 'f':
            u = '\f';
            break;
        case 'n':
            u = '\n';
            break;
        case 'r':
            u = '\r';
            break;
        case 't':
            u = '\t';
            break;
        case 'u':
            u = 0;
            break;
        default:
            u = k[1];
            break; /* " \\ / */
        }
        if (k[1] != 'u') {
            k += 2;
        } else {
            u = (unsigned long)hex4((const char *)k + 2);
            k += 6;
            if (u >= 0xD800 && u <= 0xDBFF) {
                u = 0x10000 + ((u - 0xD800) << 10) +
                    ((unsigned long)hex4((const char *)k + 2) - 0xDC00);
                k += 6;
            }
        }
        n = utf8_put(u, one);
        if (strncmp((const char *)nm, (const char *)one, n) != 0)
            return false;
        nm += n;
    }
    return *nm == '\0';
}

wa_err_t wa_json_members(wa_json_span_t obj, const char *const *names, size_t n,
                         wa_json_span_t *out)
{
    wa_json_span_t key, val;
    wa_json_iter_t it;

    for (size_t k = 0; k < n; k++)
        out[k] = (wa_json_span_t){0};
    if (!wa_json_iter_init(&it, obj) || !it.object)
        return WA_EPROTO;
    while (wa_json_iter_next(&it, &key, &val)) {
        for (size_t k = 0; k < n; k++) {
            if (!wa_json_key_is(key, names[k]))
                continue;
            if (out[k].p != NULL)
                return WA_EPROTO;
            out[k] = val;
            break;
        }
    }
    return WA_OK;
}

bool wa_json_number(wa_json_span_t v, double *out)
{
    char num[64];

    if (wa_json_kind(v) != '0' || v.n >= sizeof(num))
        return false;
    memcpy(num, v.p, v.n);
    num[v.n] = '\0';
    *out = strtod(num, NULL);
    return true;
}

char wa_json_kind(wa_json_span_t v)
{
    if (v.p == NULL)
        return '\0';
    switch (v.p[0]) {
    case '{':
    case '[':
    case '"':
    case 'n':
    case 't':
    case 'f':
        return v.p[0];
    default:
        return '0';
    }
}

/* ------------------------------------------------------------- writing */

static bool reserve(wa_json_buf_t *b, size_t more)
{
    size_t cap;
    char *p;

    if (b->failed)
        return false;
    if (b->cap - b->len > more)
        return true;
    cap = b->cap != 0 ? b->cap : 256;
    while (cap - b->len <= more) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    if ((p = realloc(b->p, cap)) == NULL) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void wa_json_buf_reserve(wa_json_buf_t *b, size_t n)
{
    (void)reserve(b, n);
}

void wa_json_buf_add(wa_json_buf_t *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void wa_json_buf_printf(wa_json_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!reserve(b, 64))
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n >= b->cap - b->len) { /* cut short: room, then again */
        if (!reserve(b, (size_t)n))
            return;
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= b->cap - b->len) {
            b->failed = true;
            return;
        }
    }
    b->len += (size_t)n;
}

void wa_json_buf_lit(wa_json_buf_t *b, const char *s)
{
    wa_json_buf_add(b, s, strlen(s));
}

void wa_json_buf_int(wa_json_buf_t *b, int64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    wa_json_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void wa_json_buf_string(wa_json_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *run;
    size_t len;

    if (s == NULL) {
        wa_json_buf_add(b, "null", 4);
        return;
    }
    len = strlen(s);
    /* At worst every byte becomes \u00XX. */
    if (len > (SIZE_MAX - 3) / 6 || !reserve(b, len * 6 + 2))
        return;
    b->p[b->len++] = '"';
    for (run = p; *p != '\0'; p++) {
        char esc;

        if (*p >= 0x20 && *p != '"' && *p != '\\')
            continue;
        memcpy(b->p + b->len, run, (size_t)(p - run));
        b->len += (size_t)(p - run);
        run = p + 1;
        switch (*p) {
        case '"':
            esc = '"';
            break;
        case '\\':
            esc = '\\';
            break;
        case '\b':
            esc = 'b';
            break;
        case '\f':
            esc = 'f';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        case '\t':
            esc = 't';
            break;
        default:
            esc = 'u';
            break;
        }
        b->p[b->len++] = '\\';
        b->p[b->len++] = esc;
        if (esc == 'u') {
            memcpy(b->p + b->len, "00", 2);
            b->p[b->len + 2] = hex[*p >> 4];
            b->p[b->len + 3] = hex[*p & 15];
            b->len += 4;
        }
    }
    memcpy(b->p + b->len, run, (size_t)(p - run));
    b->len += (size_t)(p - run);
    b->p[b->len++] = '"';
    b->p[b->len] = '\0';
}

wa_err_t wa_json_buf_done(wa_json_buf_t *b, char **out, size_t *len)
{
    wa_err_t rv = WA_OK;

    *out = NULL;
    if (len != NULL)
        *len = 0;
    if (b->failed || b->p == NULL) {
        rv = b->failed ? WA_ENOMEM : WA_OK;
        free(b->p);
        if (rv == WA_OK && (*out = calloc(1, 1)) == NULL)
            rv = WA_ENOMEM;
    } else {
        *out = b->p;
        if (len != NULL)
            *len = b->len;
    }
    memset(b, 0, sizeof(*b));
    return rv;
}
