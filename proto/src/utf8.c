/*
 * utf8.c - strict UTF-8 validation and the user id / request id checks of
 * the bus (envelope.h).
 *
 * Strict means RFC 3629 / Unicode Table 3-7: no overlong forms, no UTF-16
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated
 * sequence at the end of the buffer. U+0000 is valid UTF-8; callers that
 * need to refuse it (the envelope decoders) do so themselves.
 */
#include <stdint.h>
#include <string.h>

#include "wa/envelope.h"

/* 0x80 in every byte: a word with none of these bits set is pure ASCII. */
#define HIGH_BITS UINT64_C(0x8080808080808080)

int wa_utf8_valid(const void *buf, size_t len)
{
    const unsigned char *s = buf;
    size_t i = 0;

    if (s == NULL)
        return len == 0;

    while (i < len) {
        unsigned char c = s[i];

        /* Fast path: most bus traffic is ASCII, check 8 bytes at a time.
         * memcpy keeps the load alignment-safe; compilers emit one load. */
        if (c < 0x80) {
            while (i + 8 <= len) {
                uint64_t w;
                memcpy(&w, s + i, sizeof(w));
                if (w & HIGH_BITS)
                    break;
                i += 8;
            }
            while (i < len && s[i] < 0x80)
                i++;
            continue;
        }

        /* Multi-byte sequence: the lead byte fixes the length and the valid
         * range of the second byte; the others are plain 80..BF. */
        unsigned char lo = 0x80, hi = 0xBF;
        size_t n;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            if (c == 0xE0)
                lo = 0xA0; /* below: overlong */
            else if (c == 0xED)
                hi = 0x9F; /* above: surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            if (c == 0xF0)
                lo = 0x90; /* below: overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above: > U+10FFFF */
        } else {
            /* 80..BF stray continuation, C0/C1 overlong, F5..FF. */
            return 0;
        }
        if (len - i < n)
            return 0; /* truncated */
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        }
        i += n;
    }
    return 1;
}

size_t wa_utf8_prefix(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n <= max)
        return n;
    /* s[max] is the first byte left out: back up over continuation bytes
     * to the lead byte of the sequence it belongs to. */
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

wa_err_t wa_check_user(const char *user)
{
    size_t len;

    if (user == NULL)
        return WA_EINVAL;
    /* Bounded scan: never read past WA_USER_MAX + 1 bytes of a hostile,
     * unterminated buffer. */
    len = strnlen(user, WA_USER_MAX + 1);
    if (len == 0 || len > WA_USER_MAX)
        return WA_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)user[i];
        if (c < 0x20 || c == 0x7f)
            return WA_EINVAL;
    }
    if (!wa_utf8_valid(user, len))
        return WA_EUTF8;
    return WA_OK;
}

wa_err_t wa_check_rid(const char *rid)
{
    size_t len;

    if (rid == NULL)
        return WA_EINVAL;
    len = strnlen(rid, WA_RID_MAX + 1);
    if (len == 0 || len > WA_RID_MAX)
        return WA_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)rid[i];
        if (c < 0x21 || c > 0x7e)
            return WA_EINVAL;
    }
    return WA_OK;
}
