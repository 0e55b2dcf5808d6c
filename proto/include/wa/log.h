/*
 * log.h - JSON-lines logging to stderr.
 *
 * One line per record:
 *   {"ts":"2026-11-26T10:00:00.123Z","level":"info","svc":"gateway",
 *    "rid":"5f0c...","msg":"store-svc answered","ms":"3"}
 *
 * The level is checked before anything is formatted. Redaction, so that a
 * token or a message body cannot reach a log by accident:
 *   - a field whose key names a secret or a body (token, authorization,
 *     secret, password, jwt, body, text, qr, cookie, and any
 *     key containing one of those) is written as "[redacted]";
 *   - in every value and in msg, anything shaped like a JWT (eyJ... with two
 *     dots) or following "Bearer " is replaced by "[redacted]".
 * Thread-safe: each record is written with one write(2).
 */
#ifndef WA_LOG_H
#define WA_LOG_H

#include "wa/config.h"

#include <stdarg.h>
#include <stddef.h>

typedef enum wa_log_level {
    WA_LOG_DEBUG = 0,
    WA_LOG_INFO,
    WA_LOG_WARN,
    WA_LOG_ERROR,
} wa_log_level_t;

/* "debug", "info", "warn", "error", NULL-terminated: for WA_CFG_ENUM_SPEC. */
extern const char *const wa_log_level_names[];

/* LOG_LEVEL as a config table entry; ptr is an int *. */
#define WA_LOG_LEVEL_SPEC(ptr)                                                 \
    WA_CFG_ENUM_SPEC("LOG_LEVEL", (ptr), "info", wa_log_level_names)

/* Set the service tag and the lowest level written. Call once in main(). */
void wa_log_init(const char *service, wa_log_level_t level);

/* Redirect records to fd (default 2). For tests. */
void wa_log_set_fd(int fd);

int wa_log_enabled(wa_log_level_t level);

/*
 * Write a record. rid may be NULL. fmt is printf-style. The trailing
 * arguments after the format's own are not allowed: use wa_log_kv for fields.
 */
void wa_log_emit(wa_log_level_t level, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Write a record with fields: key, value pairs of strings ending in NULL,
 * e.g. wa_log_kv(WA_LOG_INFO, rid, "request", "route", "/status", NULL).
 * A NULL value is written as JSON null.
 */
void wa_log_kv(wa_log_level_t level, const char *rid, const char *msg, ...)
    __attribute__((sentinel));

/*
 * Format one record into buf (len >= 1024, else 0 is returned) and return
 * its length: at most len - 1, NUL-terminated, valid JSON ending in "}\n"
 * (the message and fields are cut to fit). kv holds nkv key/value pairs.
 */
size_t wa_log_format(char *buf, size_t len, wa_log_level_t level,
                     const char *rid, const char *msg, const char *const *kv,
                     size_t nkv);

#define wa_log(level, rid, ...)                                                \
    do {                                                                       \
        if (wa_log_enabled(level))                                             \
            wa_log_emit((level), (rid), __VA_ARGS__);                          \
    } while (0)
#define wa_debug(rid, ...) wa_log(WA_LOG_DEBUG, rid, __VA_ARGS__)
#define wa_info(rid, ...) wa_log(WA_LOG_INFO, rid, __VA_ARGS__)
#define wa_warn(rid, ...) wa_log(WA_LOG_WARN, rid, __VA_ARGS__)
#define wa_error(rid, ...) wa_log(WA_LOG_ERROR, rid, __VA_ARGS__)

#endif /* WA_LOG_H */
