#!/usr/bin/env python3
"""Free TCP ports for the services a test starts.

The kernel's choice (bind to port 0) comes from the ephemeral range, the
same range every outgoing connection takes its local port from: between
the choice and the service's own bind, a connection of Chromium, nng or
wrk may take it, and the service cannot listen. So a port is drawn at
random from below that range (ip_local_port_range), where nothing is
handed out on its own, and checked free on loopback and on every
interface. A port this process gave out is not given again.

    ports.py [n]        prints n free ports (default 1), one per line
"""

import random
import socket
import sys

_given = set()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port):
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port():
    """A TCP port nothing listens on, outside the ephemeral range."""
    high = _ephemeral_low() - 1
    low = max(1024, high - 12000)
    for _ in range(200):
        port = random.randint(low, high)
        if port not in _given and _bindable(port):
            _given.add(port)
            return port
    with socket.socket() as s:  # everything busy there: the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
        print(free_port())
