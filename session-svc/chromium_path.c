/*
 * chromium_path.c - which browser executable session-svc launches.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"

static int is_executable(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           access(path, X_OK) == 0;
}

/* Search path_env (a PATH value) for name; WA_OK and out filled if found. */
static wa_err_t search_path(const char *path_env, const char *name, char *out,
                            size_t outlen)
{
    const char *p = path_env, *end;

    while (p != NULL && *p != '\0') {
        size_t dlen;
        int n;

        end = strchr(p, ':');
        dlen = end != NULL ? (size_t)(end - p) : strlen(p);
        if (dlen > 0) {
            n = snprintf(out, outlen, "%.*s/%s", (int)dlen, p, name);
            if (n > 0 && (size_t)n < outlen && is_executable(out))
                return WA_OK;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return WA_ENOTFOUND;
}

wa_err_t ss_chromium_resolve(const char *configured, const char *puppeteer,
                             const char *path_env, char *out, size_t outlen,
                             char *err, size_t errlen)
{
    static const char *const names[] = {"chromium", "chromium-browser",
                                        "google-chrome"};
    const char *explicit = configured != NULL ? configured : puppeteer;
    const char *var =
        configured != NULL ? "CHROMIUM_PATH" : "PUPPETEER_EXECUTABLE_PATH";
    size_t i;

    if (explicit != NULL) {
        if (strlen(explicit) >= outlen || !is_executable(explicit)) {
            snprintf(err, errlen, "%s: not an executable file", var);
            return WA_ENOTFOUND;
        }
        memcpy(out, explicit, strlen(explicit) + 1);
        return WA_OK;
    }
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (search_path(path_env, names[i], out, outlen) == WA_OK)
            return WA_OK;
    }
    snprintf(err, errlen,
             "no chromium, chromium-browser or google-chrome on PATH: "
             "install Chromium or set CHROMIUM_PATH");
    return WA_ENOTFOUND;
}
