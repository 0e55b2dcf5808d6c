/*
 * stripes.h - the locks of the gateway's striped tables.
 *
 * The rate limiter, the auth cache and the kept /logs bodies each split
 * their table into stripes, an array of structs with a mutex member each.
 * These set up and tear down those mutexes in one go.
 */
#ifndef GW_STRIPES_H
#define GW_STRIPES_H

#include <pthread.h>
#include <stddef.h>

#include "wa/err.h"

/*
 * Initialise n mutexes: the first at first, each next one stride bytes
 * further (the same member of the next array element), as in
 * gw_stripes_init(&t->stripes[0].mu, N, sizeof(t->stripes[0])). All or
 * none: on failure those already made are destroyed and WA_ENOMEM is
 * returned.
 */
wa_err_t gw_stripes_init(pthread_mutex_t *first, size_t n, size_t stride);

/* Destroy what gw_stripes_init made. */
void gw_stripes_destroy(pthread_mutex_t *first, size_t n, size_t stride);

#endif /* GW_STRIPES_H */
