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
 * This host's address: an IPv4 address of an interface that is up and
 * not loopback, the one the hostname resolves to if it is one of them (a
 * container's /etc/hosts maps its hostname to its address), else the
 * first; else 127.0.0.1 (one host only; *guessed tells the caller to say
 * so).
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

/* Is a one of this host's interface addresses, up and not loopback? The
 * first such address goes to *first (when first->s_addr is 0). */
static bool local_address(const struct ifaddrs *ifs, const struct in_addr *a,
                          struct in_addr *first)
{
    for (const struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;

        if (sin == NULL || sin->sin_family != AF_INET ||
            !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK) ||
            loopback(&sin->sin_addr))
            continue;
        if (first != NULL && first->s_addr == 0)
            *first = sin->sin_addr;
        if (a != NULL && sin->sin_addr.s_addr == a->s_addr)
            return true;
    }
    return false;
}

/* A non-loopback IPv4 address of one of this host's interfaces, as text:
 * the one its hostname resolves to if that is one of them (a name that
 * resolves elsewhere, a stale /etc/hosts line, is not trusted), else the
 * first. */
static bool host_address(char *out, size_t len)
{
    struct addrinfo hints = {0}, *res = NULL, *ai;
    struct ifaddrs *ifs = NULL;
    struct in_addr pick = {0};
    char host[256];

    if (getifaddrs(&ifs) != 0)
        return false;
    (void)local_address(ifs, NULL, &pick);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (gethostname(host, sizeof(host)) == 0) {
        host[sizeof(host) - 1] = '\0';
        if (getaddrinfo(host, NULL, &hints, &res) == 0) {
            for (ai = res; ai != NULL; ai = ai->ai_next) {
                const struct sockaddr_in *sin =
                    (const struct sockaddr_in *)ai->ai_addr;

                if (local_address(ifs, &sin->sin_addr, NULL)) {
                    pick = sin->sin_addr;
                    break;
                }
            }
            freeaddrinfo(res);
        }
    }
    freeifaddrs(ifs);
    return pick.s_addr != 0 &&
           inet_ntop(AF_INET, &pick, out, (socklen_t)len) != NULL;
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
