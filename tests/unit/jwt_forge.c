/*
 * jwt_forge.c - see jwt_forge.h. Uses OpenSSL directly, never libjwt, so
 * the tokens do not depend on what the code under test links against.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "jwt_forge.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n);

    if (p == NULL)
        abort();
    return p;
}

char *forge_b64url(const void *buf, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *in = buf;
    char *out = xmalloc(len / 3 * 4 + 4 + 1), *o = out;
    size_t i = 0;

    for (; i + 3 <= len; i += 3) {
        unsigned v =
            (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = tab[v >> 6 & 63];
        *o++ = tab[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
    } else if (len - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = tab[v >> 6 & 63];
    }
    *o = '\0';
    return out;
}

char *forge_fmt(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *forge_raw(const char *hseg, const char *pseg, forge_sig_t sig,
                const char *key)
{
    const EVP_MD *md = NULL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *input, *sigseg, *out;

    input = forge_fmt("%s.%s", hseg, pseg);
    switch (sig) {
    case FORGE_HS256:
        md = EVP_sha256();
        break;
    case FORGE_HS384:
        md = EVP_sha384();
        break;
    case FORGE_HS512:
        md = EVP_sha512();
        break;
    case FORGE_SIG_EMPTY:
        out = forge_fmt("%s.", input);
        free(input);
        return out;
    case FORGE_SIG_OMIT:
        return input;
    }
    if (md == NULL || key == NULL ||
        HMAC(md, key, (int)strlen(key), (const unsigned char *)input,
             strlen(input), mac, &maclen) == NULL)
        abort();
    sigseg = forge_b64url(mac, maclen);
    out = forge_fmt("%s.%s", input, sigseg);
    free(sigseg);
    free(input);
    return out;
}

char *forge_jwt(const char *header_json, const char *payload_json,
                forge_sig_t sig, const char *key)
{
    char *h = forge_b64url(header_json, strlen(header_json));
    char *p = forge_b64url(payload_json, strlen(payload_json));
    char *out = forge_raw(h, p, sig, key);

    free(h);
    free(p);
    return out;
}

char *forge_hs256(const char *payload_json, const char *key)
{
    return forge_jwt("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload_json,
                     FORGE_HS256, key);
}
