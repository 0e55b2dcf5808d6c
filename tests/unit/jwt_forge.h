/*
 * jwt_forge.h - build arbitrary JWTs for attack tests.
 *
 * Nothing here validates anything: headers and payloads are encoded as
 * given (any bytes), signatures are whatever was asked for. Every returned
 * string is malloc'd and freed by the caller with free(); out of memory
 * aborts the test.
 */
#ifndef WA_TEST_JWT_FORGE_H
#define WA_TEST_JWT_FORGE_H

#include <stddef.h>

typedef enum forge_sig {
    FORGE_HS256,     /* HMAC-SHA256 with key */
    FORGE_HS384,     /* HMAC-SHA384 with key */
    FORGE_HS512,     /* HMAC-SHA512 with key */
    FORGE_SIG_EMPTY, /* "h.p." (how alg=none tokens look); key ignored */
    FORGE_SIG_OMIT,  /* "h.p", no third segment; key ignored */
} forge_sig_t;

/* Unpadded base64url of buf[0..len). */
char *forge_b64url(const void *buf, size_t len);

/* Sign the segments exactly as given (they need not be base64url):
 * "<hseg>.<pseg>.<sig>" per sig. */
char *forge_raw(const char *hseg, const char *pseg, forge_sig_t sig,
                const char *key);

/* base64url-encode header_json and payload_json, then forge_raw(). */
char *forge_jwt(const char *header_json, const char *payload_json,
                forge_sig_t sig, const char *key);

/* A well-formed token: {"alg":"HS256","typ":"JWT"}, payload, HS256 key. */
char *forge_hs256(const char *payload_json, const char *key);

/* printf into a malloc'd string (for building payloads). */
char *forge_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* WA_TEST_JWT_FORGE_H */
