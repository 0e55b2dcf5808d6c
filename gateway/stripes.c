/*
 * stripes.c - the locks of the gateway's striped tables (stripes.h).
 */
#include "stripes.h"

static pthread_mutex_t *nth(pthread_mutex_t *first, size_t i, size_t stride)
{
    return (pthread_mutex_t *)(void *)((char *)first + i * stride);
}

wa_err_t gw_stripes_init(pthread_mutex_t *first, size_t n, size_t stride)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (pthread_mutex_init(nth(first, i, stride), NULL) != 0)
            break;
    }
    if (i == n)
        return WA_OK;
    gw_stripes_destroy(first, i, stride);
    return WA_ENOMEM;
}

void gw_stripes_destroy(pthread_mutex_t *first, size_t n, size_t stride)
{
    for (size_t i = 0; i < n; i++)
        pthread_mutex_destroy(nth(first, i, stride));
}
