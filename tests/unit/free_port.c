/*
 * free_port.c - test_free_port (free_port.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "free_port.h"

static int ephemeral_low(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int low = 32768;

    if (f != NULL) {
        if (fscanf(f, "%d", &low) != 1 || low < 2048 || low > 65535)
            low = 32768;
        fclose(f);
    }
    return low;
}

/* Bind port on addr (0 = the kernel's choice); the port bound, or -1. */
static int bind_on(in_addr_t addr, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), got = -1;

    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = addr;
    a.sin_port = htons((unsigned short)port);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        got = ntohs(a.sin_port);
    close(fd);
    return got;
}

int test_free_port(void)
{
    static bool seeded;
    int high = ephemeral_low() - 1, low, port;

    if (!seeded) {
        srand((unsigned)time(NULL) ^ (unsigned)getpid() << 16);
        seeded = true;
    }
    low = high - 12000 < 1024 ? 1024 : high - 12000;
    for (int i = 0; i < 200; i++) {
        port = low + rand() % (high - low + 1);
        if (bind_on(htonl(INADDR_LOOPBACK), port) == port &&
            bind_on(htonl(INADDR_ANY), port) == port)
            return port;
    }
    return bind_on(htonl(INADDR_LOOPBACK), 0);
}
