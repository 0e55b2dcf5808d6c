/*
 * config.c - environment variables into typed values, through one table.
 * This is the only file in wa-server that reads the environment.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wa/config.h"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Quote v for an error line: printable ASCII only, at most 40 bytes. */
static void shown(const wa_config_spec_t *s, const char *v, char *buf,
                  size_t len)
{
    size_t i, j = 0;

    if (s->secret) {
        snprintf(buf, len, "(secret not shown)");
        return;
    }
    buf[j++] = '"';
    for (i = 0; v[i] != '\0' && j + 5 < len && i < 40; i++)
        buf[j++] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
    if (v[i] != '\0' && j + 5 < len) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j++] = '"';
    buf[j] = '\0';
}

static wa_err_t parse_int(const char *v, long *out)
{
    char *end;
    long n;

    if (!isdigit((unsigned char)v[0]) &&
        !(v[0] == '-' && isdigit((unsigned char)v[1])))
        return WA_EINVAL;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return WA_EINVAL;
    *out = n;
    return WA_OK;
}

static wa_err_t parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    size_t i;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return WA_OK;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return WA_OK;
        }
    }
    return WA_EINVAL;
}

/* tcp://host:port with a port in 1..65535 (or 0 for tests that let the
 * system pick), ipc://<path>, inproc://<name>. */
static wa_err_t check_url(const char *v)
{
    const char *p, *colon;
    long port;

    if (strncmp(v, "ipc://", 6) == 0)
        return v[6] != '\0' ? WA_OK : WA_EINVAL;
    if (strncmp(v, "inproc://", 9) == 0)
        return v[9] != '\0' ? WA_OK : WA_EINVAL;
    if (strncmp(v, "tcp://", 6) != 0)
        return WA_EINVAL;
    p = v + 6;
    colon = strrchr(p, ':');
    if (colon == NULL || colon == p)
        return WA_EINVAL;
    if (parse_int(colon + 1, &port) != WA_OK || port < 0 || port > 65535)
        return WA_EINVAL;
    for (; p < colon; p++) {
        if (!isalnum((unsigned char)*p) && strchr(".-_[]:*", *p) == NULL)
            return WA_EINVAL;
    }
    return WA_OK;
}

static wa_err_t load_one(const wa_config_spec_t *s, const char *v, char *err,
                         size_t errlen)
{
    char q[64];
    long n;
    bool b;
    size_t len, i;
    char *copy;

    switch (s->type) {
    case WA_CFG_INT:
        if (parse_int(v, &n) != WA_OK || n < s->min || n > s->max) {
            shown(s, v, q, sizeof(q));
            seterr(err, errlen, "%s: must be an integer in %ld..%ld, got %s",
                   s->name, s->min, s->max, q);
            return WA_ECONFIG;
        }
        *(long *)s->out = n;
        return WA_OK;
    case WA_CFG_BOOL:
        if (parse_bool(v, &b) != WA_OK) {
            shown(s, v, q, sizeof(q));
            seterr(err, errlen, "%s: must be 0 or 1 (or true/false), got %s",
                   s->name, q);
            return WA_ECONFIG;
        }
        *(bool *)s->out = b;
        return WA_OK;
    case WA_CFG_ENUM: {
        char list[128] = "";
        size_t used = 0;

        for (i = 0; s->choices[i] != NULL; i++) {
            if (strcasecmp(v, s->choices[i]) == 0) {
                *(int *)s->out = (int)i;
                return WA_OK;
            }
            if (used < sizeof(list))
                used += (size_t)snprintf(list + used, sizeof(list) - used,
                                         "%s%s", i ? ", " : "", s->choices[i]);
        }
        shown(s, v, q, sizeof(q));
        seterr(err, errlen, "%s: must be one of %s, got %s", s->name, list, q);
        return WA_ECONFIG;
    }
    case WA_CFG_STR:
    case WA_CFG_URL:
        len = strlen(v);
        if ((long)len < s->min || (long)len > s->max) {
            seterr(err, errlen, "%s: length must be %ld..%ld bytes, got %zu",
                   s->name, s->min, s->max, len);
            return WA_ECONFIG;
        }
        if (s->type == WA_CFG_URL && check_url(v) != WA_OK) {
            shown(s, v, q, sizeof(q));
            seterr(err, errlen,
                   "%s: must be tcp://host:port, ipc://path or "
                   "inproc://name, got %s",
                   s->name, q);
            return WA_ECONFIG;
        }
        if ((copy = strdup(v)) == NULL) {
            seterr(err, errlen, "%s: out of memory", s->name);
            return WA_ENOMEM;
        }
        free(*(char **)s->out);
        *(char **)s->out = copy;
        return WA_OK;
    }
    seterr(err, errlen, "%s: unknown configuration type", s->name);
    return WA_ECONFIG;
}

wa_err_t wa_config_load(const wa_config_spec_t *specs, size_t n, char *err,
                        size_t errlen)
{
    size_t i;
    wa_err_t rv;

    /* Strings start out NULL so that a failure can free exactly what this
     * call stored. */
    for (i = 0; i < n; i++) {
        if (specs[i].type == WA_CFG_STR || specs[i].type == WA_CFG_URL)
            *(char **)specs[i].out = NULL;
    }
    for (i = 0; i < n; i++) {
        const wa_config_spec_t *s = &specs[i];
        const char *v = getenv(s->name);

        if (v == NULL || v[0] == '\0')
            v = s->def;
        if (v == NULL)
            continue;
        if ((rv = load_one(s, v, err, errlen)) != WA_OK) {
            wa_config_free(specs, n);
            return rv == WA_ENOMEM ? WA_ENOMEM : WA_ECONFIG;
        }
    }
    return WA_OK;
}

void wa_config_free(const wa_config_spec_t *specs, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char **p;

        if (specs[i].type != WA_CFG_STR && specs[i].type != WA_CFG_URL)
            continue;
        p = specs[i].out;
        if (*p != NULL && specs[i].secret)
            explicit_bzero(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

char **wa_strv_split(const char *list)
{
    size_t cap = 1, n = 0;
    const char *p;
    char **v;

    if (list != NULL) {
        for (p = list; *p != '\0'; p++)
            cap += (*p == ',');
        cap++;
    }
    if ((v = calloc(cap, sizeof(*v))) == NULL)
        return NULL;
    for (p = list; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ','), *a, *b;

        if (end == NULL)
            end = p + strlen(p);
        for (a = p; a < end && isspace((unsigned char)*a); a++)
            ;
        for (b = end; b > a && isspace((unsigned char)b[-1]); b--)
            ;
        if (b > a) {
            if ((v[n] = strndup(a, (size_t)(b - a))) == NULL) {
                wa_strv_free(v);
                return NULL;
            }
            n++;
        }
        p = *end == ',' ? end + 1 : end;
    }
    return v;
}

void wa_strv_free(char **v)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

bool wa_strv_contains(char *const *v, const char *s)
{
    size_t i;

    if (v == NULL || s == NULL)
        return false;
    for (i = 0; v[i] != NULL; i++) {
        if (strcmp(v[i], s) == 0)
            return true;
    }
    return false;
}
