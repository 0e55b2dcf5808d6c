/*
 * free_port.h - a TCP port for a unit test's server, as
 * tests/integration/ports.py chooses one: drawn at random from below the
 * ephemeral range (where the kernel hands out no port on its own, so no
 * outgoing connection takes it between the choice and the bind), checked
 * free on loopback and on every interface. Falls back to the kernel's
 * choice when it finds none.
 */
#ifndef TEST_FREE_PORT_H
#define TEST_FREE_PORT_H

/* A port nothing listens on now; -1 if not even the kernel gives one. */
int test_free_port(void);

#endif
