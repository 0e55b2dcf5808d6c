/*
 * userdir.c - user id -> directory name (auth.h).
 *
 * The only way a user id becomes part of a path. Kept names use a charset
 * without '~' and hashed names start with '~', so the two ranges never
 * meet and the mapping is injective.
 */
#include <string.h>

#include <openssl/evp.h>

#include "wa/auth.h"

#define KEEP_MAX 64 /* longest id kept as-is, bytes */

static bool safe_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

static bool keep_as_is(const char *user, size_t len)
{
    /* A leading '.' would allow ".", ".." and hidden files. */
    if (len > KEEP_MAX || user[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!safe_char((unsigned char)user[i]))
            return false;
    return true;
}

wa_err_t wa_user_dirname(const char *user, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t len;

    if (user == NULL || user[0] == '\0' || out == NULL ||
        outlen < WA_USER_DIR_MAX + 1)
        return WA_EINVAL;
    len = strlen(user);
    if (keep_as_is(user, len)) {
        memcpy(out, user, len + 1);
        return WA_OK;
    }
    if (EVP_Digest(user, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen * 2 + 1 != WA_USER_DIR_MAX)
        return WA_EINTERNAL;
    out[0] = '~';
    for (unsigned int i = 0; i < mdlen; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 0xf];
    }
    out[WA_USER_DIR_MAX] = '\0';
    return WA_OK;
}
