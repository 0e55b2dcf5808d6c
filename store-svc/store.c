/*
 * store.c - the store's parts opened and closed together.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "store.h"
#include "wa/log.h"
#include "wa/service.h"

/* The rid cache: enough for minutes of a busy clinic, bounded in memory
 * (session.upsert replies can carry a 64 KiB QR code). */
#define IDEM_ENTRIES 8192
#define IDEM_BYTES (32u * 1024u * 1024u)
#define IDEM_TTL_MS (5 * 60 * 1000)

static int64_t realtime_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

wa_err_t store__open(const store_opts_t *opts, store_t **out, char *err,
                     size_t errlen)
{
    store_t *st;
    wa_err_t rv;

    if ((st = calloc(1, sizeof(*st))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return WA_ENOMEM;
    }
    st->now_ms = opts->now_ms != NULL ? opts->now_ms : realtime_ms;
    st->started_ms = wa_now_ms();
    wa_rid_new(st->epoch, sizeof(st->epoch));
    if ((rv = db__open(opts->db_path, &st->db, err, errlen)) != WA_OK)
        goto fail;
    /* Pay for counting the existing log rows now, not in the first diag. */
    if ((rv = logs__count(&st->db->rd, &st->log_rows, &st->log_max_id)) !=
        WA_OK) {
        snprintf(err, errlen, "cannot count the log rows: %s", wa_strerror(rv));
        goto fail;
    }
    if ((rv = idem__new(IDEM_ENTRIES, IDEM_BYTES, IDEM_TTL_MS, &st->idem)) !=
        WA_OK) {
        snprintf(err, errlen, "cannot create the request cache: %s",
                 wa_strerror(rv));
        goto fail;
    }
    if ((rv = writer__start(st->db, &st->writer)) != WA_OK) {
        snprintf(err, errlen, "cannot start the writer: %s", wa_strerror(rv));
        goto fail;
    }
    *out = st;
    return WA_OK;
fail:
    store__close(st);
    return rv;
}

void store__quiesce(store_t *st)
{
    writer_stats_t ws;

    if (st == NULL || st->writer == NULL)
        return;
    writer__stop(st->writer);
    writer__stats(st->writer, &ws);
    wa_info(NULL,
            "writer stopped: %llu jobs in %llu transactions, largest %llu",
            (unsigned long long)ws.jobs, (unsigned long long)ws.batches,
            (unsigned long long)ws.max_batch);
}

void store__close(store_t *st)
{
    if (st == NULL)
        return;
    /* The writer first: its last jobs answer through the cache. */
    writer__free(st->writer);
    idem__free(st->idem);
    db__close(st->db);
    free(st);
}

void store__release_memory(void *arg)
{
    store_t *st = arg;

    db__release_memory(st->db);
    writer__release_memory(st->writer);
}
