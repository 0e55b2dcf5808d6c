/*
 * nt_capture.h - a recording sink for notifier-svc's queue writer, and a
 * parser of the server frames it recorded. Header-only, for the nt_ tests.
 */
#ifndef NT_CAPTURE_H
#define NT_CAPTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notifier.h"

typedef struct capture {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *buf;
    size_t len, cap;
    size_t writes;
    bool fail;    /* every write fails */
    bool blocked; /* writes wait until unblocked */
} capture_t;

static inline void capture_init(capture_t *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static inline void capture_fini(capture_t *c)
{
    free(c->buf);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static inline void capture_block(capture_t *c, bool blocked)
{
    pthread_mutex_lock(&c->mu);
    c->blocked = blocked;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static inline int capture_sink(void *arg, const void *buf, size_t len)
{
    capture_t *c = arg;
    int rv = 0;

    pthread_mutex_lock(&c->mu);
    while (c->blocked)
        pthread_cond_wait(&c->cv, &c->mu);
    if (c->fail) {
        rv = -1;
    } else {
        if (c->len + len > c->cap) {
            c->cap = (c->len + len) * 2;
            c->buf = realloc(c->buf, c->cap);
        }
        memcpy(c->buf + c->len, buf, len);
        c->len += len;
        c->writes++;
    }
    pthread_mutex_unlock(&c->mu);
    return rv;
}

/* One parsed server frame. */
typedef struct frame {
    int opcode;
    const unsigned char *payload;
    size_t len;
} frame_t;

/* Parse the next frame at *off of c->buf; false at the end or on a
 * malformed frame. */
static inline bool capture_next(const capture_t *c, size_t *off, frame_t *f)
{
    const unsigned char *b = c->buf + *off;
    size_t left = c->len - *off, hl = 2, n;

    if (left < 2 || (b[0] & 0x80) == 0 || (b[1] & 0x80) != 0)
        return false;
    n = b[1] & 0x7f;
    if (n == 126) {
        hl = 4;
        if (left < hl)
            return false;
        n = ((size_t)b[2] << 8) | b[3];
    } else if (n == 127) {
        hl = 10;
        if (left < hl)
            return false;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | b[2 + i];
    }
    if (left < hl + n)
        return false;
    f->opcode = b[0] & 0x0f;
    f->payload = b + hl;
    f->len = n;
    *off += hl + n;
    return true;
}

/* Wait (at most 5 s) until a close frame has been recorded. */
static inline bool capture_wait_close(capture_t *c)
{
    for (int i = 0; i < 5000; i++) {
        frame_t f = {0};
        size_t off = 0;
        bool closed = false;

        pthread_mutex_lock(&c->mu);
        while (capture_next(c, &off, &f))
            if (f.opcode == 0x8)
                closed = true;
        pthread_mutex_unlock(&c->mu);
        if (closed)
            return true;
        struct timespec ts = {.tv_nsec = 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

#endif /* NT_CAPTURE_H */
