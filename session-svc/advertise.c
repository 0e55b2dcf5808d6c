/*
 * advertise.c - the URL an instance registers with store-svc, which the
 * gateway dials to reach it (DESIGN §6).
 *
 * SESSION_ADVERTISE_URL if set; else SESSION_URL as it is, unless that
 * listens on every interface (tcp://0.0.0.0:<port>, or the host * or
 * [::]), which no peer can dial: then this host's own
 * address with the same port. Replicas of one container image (compose's
 * --scale) thus each register an address of their own, where a shared
 * name (tcp://session-svc:5580) would reach any one of them.
 *
 * This host's address: what its hostname resolves to (a container's
 * /etc/hosts maps it to the container's address), else the first IPv4
 * address of an interface that is up and not loopback, else 127.0.0.1
 * (one host only; *guessed tells the caller to say so).
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session.h"

static bool loopback(const struct in_addr *a)
{
    return (ntohl(a->s_addr) >> 24) == 127;
}

/* A non-loopback IPv4 address of this host, as text. */
static bool host_address(char *out, size_t len)
{
    struct addrinfo hints = {0}, *res = NULL, *ai;
    struct ifaddrs *ifs = NULL, *i;
    char host[256];
    bool found = false;

    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (gethostname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = '\0';
        if (getaddrinfo(host, NULL, &hints, &res) == 0) {
            for (ai = res; ai != NULL && !found; ai = ai->ai_next) {
                const struct sockaddr_in *sin =
                    (const struct sockaddr_in *)ai->ai_addr;

                found = !loopback(&sin->sin_addr) &&
                        inet_ntop(AF_INET, &sin->sin_addr, out,
                                  (socklen_t)len) != NULL;
            }
            freeaddrinfo(res);
        }
    }
    if (found || getifaddrs(&ifs) != 0)
        return found;
    for (i = ifs; i != NULL && !found; i = i->ifa_next) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;

        if (sin == NULL || sin->sin_family != AF_INET ||
            !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK) ||
            loopback(&sin->sin_addr))
            continue;
        found = inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)len) != NULL;
    }
    freeifaddrs(ifs);
    return found;
}

wa_err_t ss_advertise_url(const char *listen, const char *advertise, char *out,
                          size_t len, bool *guessed)
{
    /* tcp://[::] listens on IPv4 too (Linux's default bindv6only=0);
     * tcp6:// may not, so it is left as it is. */
    static const char *const wildcards[] = {
        "tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:", "tcp4://0.0.0.0:"};
    const char *port = NULL;
    char addr[INET_ADDRSTRLEN];
    int n;

    *guessed = false;
    if (listen == NULL || out == NULL || len == 0)
        return WA_EINVAL;
    if (advertise != NULL && advertise[0] != '\0') {
        n = snprintf(out, len, "%s", advertise);
        return n >= 0 && (size_t)n < len ? WA_OK : WA_ETOOBIG;
    }
    for (size_t i = 0; i < sizeof(wildcards) / sizeof(wildcards[0]); i++) {
        size_t w = strlen(wildcards[i]);

        if (strncmp(listen, wildcards[i], w) == 0) {
            port = listen + w;
            break;
        }
    }
    if (port == NULL) {
        n = snprintf(out, len, "%s", listen);
        return n >= 0 && (size_t)n < len ? WA_OK : WA_ETOOBIG;
    }
    if (port[0] == '\0' || strspn(port, "0123456789") != strlen(port))
        return WA_EINVAL;
    if (!host_address(addr, sizeof(addr))) {
        snprintf(addr, sizeof(addr), "127.0.0.1");
        *guessed = true;
    }
    n = snprintf(out, len, "tcp://%s:%s", addr, port);
    return n >= 0 && (size_t)n < len ? WA_OK : WA_ETOOBIG;
}
