/*
 * hash.c - 64-bit FNV-1a (hash.h).
 */
#include <string.h>

#include "wa/hash.h"

#define FNV1A_PRIME UINT64_C(0x100000001b3)

uint64_t wa_fnv1a(uint64_t h, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV1A_PRIME;
    }
    return h;
}

uint64_t wa_fnv1a_str(const char *s)
{
    return wa_fnv1a(WA_FNV1A_INIT, s, strlen(s));
}
