/*
 * json.h - JSON text checked, walked and written without building a tree.
 *
 * For answers that are passed on rather than read: the gateway's GET /logs
 * body is store-svc's log.list data, checked here and relayed, and a
 * bus.batch reply is split into its members' texts. cJSON would allocate a
 * node per value on the way in and print them all again on the way out.
 *
 * The grammar is RFC 8259's, strictly: no comments, no trailing commas, no
 * leading zeros, no raw control characters in strings. It also refuses
 * what cJSON (every reader of our JSON) would misread: the escape \u0000,
 * which would end a C string early, and unpaired UTF-16 surrogate escapes.
 * Containers nest at most WA_JSON_DEPTH_MAX deep, cJSON's own limit. The
 * bytes must already be valid UTF-8 (the bus decoders check that first).
 */
#ifndef WA_JSON_H
#define WA_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wa/err.h"

#define WA_JSON_DEPTH_MAX 1000

/* A span of JSON text inside someone else's buffer. */
typedef struct wa_json_span {
    const char *p;
    size_t n;
} wa_json_span_t;

/* Is s[0..n) exactly one JSON value, with optional whitespace around it?
 * WA_OK with *value (if not NULL) its span without the whitespace, or
 * WA_EPROTO. */
wa_err_t wa_json_check(const char *s, size_t n, wa_json_span_t *value);

/* The same, of a value that must be an object. */
wa_err_t wa_json_check_object(const char *s, size_t n, wa_json_span_t *value);

/*
 * The members of a checked object, or the elements of a checked array, in
 * order. For an array, key is {NULL, 0}; for an object it is the key's
 * text with its quotes (compare it with wa_json_key_is). Values are spans
 * of their whole text, without surrounding whitespace. Only for text that
 * wa_json_check accepted: nothing is checked again.
 */
typedef struct wa_json_iter {
    const char *s;
    size_t n, i;
    bool object, done;
    size_t open_at;             /* where the entered value starts */
    struct wa_json_iter *inner; /* walking that value (next_in) */
} wa_json_iter_t;

/* Start at a checked container (span begins with '{' or '['); false if it
 * is neither. */
bool wa_json_iter_init(wa_json_iter_t *it, wa_json_span_t container);
bool wa_json_iter_next(wa_json_iter_t *it, wa_json_span_t *key,
                       wa_json_span_t *val);

/*
 * As wa_json_iter_next, but a value that is a container is entered rather
 * than skipped: *inner is set to walk it, val->p points at it and val->n
 * is 0 (its end is not known yet). The next call on it goes on after that
 * value, without reading it again if inner was walked to its end. inner
 * must live until then. A scalar value comes back as from
 * wa_json_iter_next, with inner walking nothing. One pass over the text
 * instead of one per level.
 */
bool wa_json_iter_next_in(wa_json_iter_t *it, wa_json_span_t *key,
                          wa_json_span_t *val, wa_json_iter_t *inner);

/*
 * The values of the members named names[0..n) of a checked object, into
 * out[0..n) ({NULL, 0} for an absent one); other members are passed over.
 * WA_EPROTO if the span is not an object or a named member comes twice
 * (readers disagree on which of two to take).
 */
wa_err_t wa_json_members(wa_json_span_t obj, const char *const *names, size_t n,
                         wa_json_span_t *out);

/* The value of a checked number as a double (strtod of its text);
 * false for a span that is not a number or is over 63 bytes long. */
bool wa_json_number(wa_json_span_t v, double *out);

/* Is this checked key (with quotes, escapes allowed) equal to name? */
bool wa_json_key_is(wa_json_span_t key, const char *name);

/* The kind of a checked value, from its first byte: '{', '[', '"', 'n'
 * (null), 't', 'f', or '0' for a number; '\0' for no value (p NULL). */
char wa_json_kind(wa_json_span_t v);

/*
 * A growing buffer of JSON text. Appends after a failed allocation do
 * nothing; wa_json_buf_done() then reports WA_ENOMEM and frees. The text is
 * always NUL-terminated once anything was added.
 */
typedef struct wa_json_buf {
    char *p;
    size_t len, cap;
    bool failed;
} wa_json_buf_t;

/* Room for n more bytes at once, when the size is about known: saves the
 * copies of growing step by step. */
void wa_json_buf_reserve(wa_json_buf_t *b, size_t n);
void wa_json_buf_add(wa_json_buf_t *b, const char *s, size_t n);
void wa_json_buf_lit(wa_json_buf_t *b, const char *s); /* NUL-terminated */
void wa_json_buf_int(wa_json_buf_t *b, int64_t v);
/* s as a JSON string, escaped as cJSON does; NULL is written as null. */
void wa_json_buf_string(wa_json_buf_t *b, const char *s);
/* printf-formatted text, as it comes: numbers, or text the caller made
 * safe for where it goes (the services' Prometheus pages use the buffer
 * for plain text too). */
__attribute__((format(printf, 2, 3))) void
wa_json_buf_printf(wa_json_buf_t *b, const char *fmt, ...);
/* WA_OK with *out (malloc'd, NUL-terminated; free()) and *len; or WA_ENOMEM
 * with nothing to free. b is empty afterwards either way. */
wa_err_t wa_json_buf_done(wa_json_buf_t *b, char **out, size_t *len);

#endif /* WA_JSON_H */
