/*
 * config.h - configuration from environment variables (DESIGN §2).
 *
 * Each binary reads its environment once, in main(), through one table of
 * wa_config_spec_t: name, type, default, bounds and where to store the value.
 * wa_config_load() is the only code in wa-server that calls getenv().
 * On failure it writes one line naming the variable into err (never the value
 * of a secret), and main() exits with status 2.
 *
 * Not thread-safe (the environment is not): call before starting threads.
 */
#ifndef WA_CONFIG_H
#define WA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "wa/err.h"

typedef enum wa_cfg_type {
    WA_CFG_INT,  /* long, within [min, max]; decimal only */
    WA_CFG_BOOL, /* bool: 1/0, true/false, yes/no, on/off */
    WA_CFG_STR, /* char * (malloc'd, freed by wa_config_free), len in [min, max]
                 */
    WA_CFG_URL, /* like STR, but must be tcp://host:port, ipc://path or
                   inproc://name */
    WA_CFG_ENUM, /* int: index of the value in choices (NULL-terminated) */
} wa_cfg_type_t;

typedef struct wa_config_spec {
    const char *name; /* environment variable */
    wa_cfg_type_t type;
    const char
        *def;      /* default as text; NULL = no default (unset stays unset) */
    long min, max; /* INT: value bounds; STR/URL: length bounds */
    bool secret;   /* never echoed in errors */
    const char *const *choices; /* ENUM only */
    void *out;                  /* long *, bool *, char **, int * by type */
} wa_config_spec_t;

#define WA_CFG_INT_SPEC(n, ptr, d, lo, hi)                                     \
    {                                                                          \
        .name = (n), .type = WA_CFG_INT, .def = (d), .min = (lo), .max = (hi), \
        .out = (ptr)                                                           \
    }
#define WA_CFG_BOOL_SPEC(n, ptr, d)                                            \
    {                                                                          \
        .name = (n), .type = WA_CFG_BOOL, .def = (d), .out = (ptr)             \
    }
#define WA_CFG_STR_SPEC(n, ptr, d, lo, hi)                                     \
    {                                                                          \
        .name = (n), .type = WA_CFG_STR, .def = (d), .min = (lo), .max = (hi), \
        .out = (ptr)                                                           \
    }
#define WA_CFG_SECRET_SPEC(n, ptr, lo, hi)                                     \
    {                                                                          \
        .name = (n), .type = WA_CFG_STR, .def = NULL, .min = (lo),             \
        .max = (hi), .secret = true, .out = (ptr)                              \
    }
#define WA_CFG_URL_SPEC(n, ptr, d)                                             \
    {                                                                          \
        .name = (n), .type = WA_CFG_URL, .def = (d), .min = 1, .max = 512,     \
        .out = (ptr)                                                           \
    }
#define WA_CFG_ENUM_SPEC(n, ptr, d, ch)                                        \
    {                                                                          \
        .name = (n), .type = WA_CFG_ENUM, .def = (d), .choices = (ch),         \
        .out = (ptr)                                                           \
    }

/*
 * Read every variable of specs[0..n) into its out pointer. An empty value
 * counts as unset. Unset with a default: the default is parsed like a value.
 * Unset without one: INT/BOOL/ENUM keep what *out held, STR/URL become NULL.
 * Returns WA_OK, or WA_ECONFIG with a message in err (e.g.
 * "PORT: must be an integer in 1..65535, got \"abc\""). On failure strings
 * already stored are freed again.
 */
wa_err_t wa_config_load(const wa_config_spec_t *specs, size_t n, char *err,
                        size_t errlen);

/* Free the strings wa_config_load stored for specs[0..n) and NULL them. */
void wa_config_free(const wa_config_spec_t *specs, size_t n);

/*
 * Split a comma-separated list ("a, b,c") into a NULL-terminated array of
 * trimmed, non-empty, malloc'd strings. list may be NULL (empty array).
 * Free with wa_strv_free(). NULL on out-of-memory.
 */
char **wa_strv_split(const char *list);
void wa_strv_free(char **v);
bool wa_strv_contains(char *const *v, const char *s);

#endif /* WA_CONFIG_H */
