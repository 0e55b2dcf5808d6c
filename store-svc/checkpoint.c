/*
 * checkpoint.c - WAL checkpoints on a thread and a connection of their own.
 *
 * With SQLite's automatic checkpoint, the commit that takes the WAL past
 * 1000 pages copies them into the database file and syncs it, on the
 * writer thread, while every queued write waits. Here the write connection
 * only reports the WAL's size after each commit (sqlite3_wal_hook); past
 * CKPT_FRAMES a PASSIVE checkpoint runs here, concurrently with the next
 * transactions: it copies what no reader still needs and never blocks the
 * writer. A page that many commits rewrote (an index leaf) is copied once
 * per checkpoint, not once per 1000 pages of WAL. When everything was
 * copied, the writer's next commit starts the WAL over from its beginning,
 * and journal_size_limit (set by db.c) truncates the file.
 */
#include <stdio.h>
#include <stdlib.h>

#include "store.h"
#include "wa/log.h"

/* WAL pages (4 KiB each) that start a checkpoint. */
#define CKPT_FRAMES 4000

struct ckpt {
    sqlite3 *h;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool want;     /* the WAL passed CKPT_FRAMES since the last run */
    bool running;  /* a checkpoint is using h */
    bool stopping; /* under mu */
    bool started;
    uint64_t runs; /* completed checkpoints, under mu */
};

static void *ckpt_main(void *arg)
{
    ckpt_t *c = arg;
    int log = 0, done = 0, rc;

    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->want && !c->stopping)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->stopping)
            break;
        c->want = false;
        c->running = true;
        pthread_mutex_unlock(&c->mu);
        rc = sqlite3_wal_checkpoint_v2(c->h, "main", SQLITE_CHECKPOINT_PASSIVE,
                                       &log, &done);
        /* BUSY: another checkpoint runs (the last connection closing);
         * the next commit asks again. */
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            wa_warn(NULL, "WAL checkpoint: %s (%d of %d pages copied)",
                    sqlite3_errmsg(c->h), done, log);
        pthread_mutex_lock(&c->mu);
        c->running = false;
        c->runs++;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* The write connection's commit hook: frames is the WAL's size in pages. */
static int on_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    ckpt_t *c = arg;

    (void)db;
    (void)name;
    if (frames >= CKPT_FRAMES) {
        pthread_mutex_lock(&c->mu);
        if (!c->want) {
            c->want = true;
            pthread_cond_signal(&c->cv);
        }
        pthread_mutex_unlock(&c->mu);
    }
    return SQLITE_OK;
}

wa_err_t ckpt__start(const char *path, sqlite3 *writer, ckpt_t **out, char *err,
                     size_t errlen)
{
    ckpt_t *c;
    int rc;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return WA_ENOMEM;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return WA_ENOMEM;
    }
    if (pthread_cond_init(&c->cv, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        snprintf(err, errlen, "out of memory");
        return WA_ENOMEM;
    }
    rc = sqlite3_open_v2(path, &c->h,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                             SQLITE_OPEN_EXRESCODE,
                         STORE_DB_VFS);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(c->h, 1000);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "checkpoint connection: %s",
                 c->h != NULL ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
        ckpt__free(c);
        return WA_ESTORAGE;
    }
    if ((rc = pthread_create(&c->thread, NULL, ckpt_main, c)) != 0) {
        snprintf(err, errlen, "cannot start the checkpoint thread: error %d",
                 rc);
        ckpt__free(c);
        return WA_ENOMEM;
    }
    c->started = true;
    /* Replaces the automatic checkpoint (the same hook slot). */
    (void)sqlite3_wal_hook(writer, on_commit, c);
    *out = c;
    return WA_OK;
}

void ckpt__release_memory(ckpt_t *c)
{
    /* Its connection is free while no checkpoint runs; the lock keeps the
     * checkpoint thread from starting one meanwhile. */
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    if (!c->running)
        (void)sqlite3_db_release_memory(c->h);
    pthread_mutex_unlock(&c->mu);
}

uint64_t ckpt__runs(ckpt_t *c)
{
    uint64_t n;

    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->mu);
    n = c->runs;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void ckpt__free(ckpt_t *c)
{
    if (c == NULL)
        return;
    if (c->started) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    if (c->h != NULL)
        sqlite3_close_v2(c->h);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
