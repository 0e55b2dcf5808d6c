/*
 * metrics.c - notifier-svc's counters as Prometheus text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifier.h"
#include "wa/json.h"

void nt_metrics_add(uint64_t *counter, uint64_t n)
{
    __atomic_add_fetch(counter, n, __ATOMIC_RELAXED);
}

uint64_t nt_metrics_get(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

static const char *const refusal_names[NT_REFUSED_COUNT] = {
    [NT_REFUSED_UNAUTHORIZED] = "unauthorized",
    [NT_REFUSED_ORIGIN] = "forbidden_origin",
    [NT_REFUSED_BAD_REQUEST] = "bad_request",
    [NT_REFUSED_USER_LIMIT] = "user_limit",
    [NT_REFUSED_SERVER_LIMIT] = "server_limit",
};

static const char *const drop_names[NT_DROP_COUNT] = {
    [NT_DROP_OVERFLOW] = "overflow",
    [NT_DROP_WRITE] = "write_failed",
    [NT_DROP_OVERSIZE] = "client_message_too_big",
};

static void family(wa_json_buf_t *b, const char *name, const char *type,
                   const char *help)
{
    wa_json_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                       type);
}

static void counter(wa_json_buf_t *b, const char *name, const char *help,
                    const uint64_t *c)
{
    family(b, name, "counter", help);
    wa_json_buf_printf(b, "%s %llu\n", name,
                       (unsigned long long)nt_metrics_get(c));
}

static void gauge(wa_json_buf_t *b, const char *name, const char *help,
                  uint64_t v)
{
    family(b, name, "gauge", help);
    wa_json_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

wa_err_t nt_metrics_render(const nt_metrics_t *m, const nt_gauges_t *g,
                           char **out, size_t *outlen)
{
    wa_json_buf_t b = {0};

    if (m == NULL || g == NULL || out == NULL)
        return WA_EINVAL;
    wa_json_buf_reserve(&b, 4096);

    gauge(&b, "notifier_connections", "Open WebSocket connections.",
          g->connections);
    gauge(&b, "notifier_users", "Users with a replay buffer or a connection.",
          g->users);
    gauge(&b, "notifier_replay_buffer_bytes",
          "Bytes held by the per-user replay buffers.", g->ring_bytes);
    family(&b, "notifier_uptime_seconds", "gauge", "Seconds since start.");
    wa_json_buf_printf(&b, "notifier_uptime_seconds %.3f\n", g->uptime_seconds);
    counter(&b, "notifier_connections_total", "WebSocket connections accepted.",
            &m->connections_total);
    counter(&b, "notifier_events_in_total", "Events received from the bus.",
            &m->events_in);
    counter(&b, "notifier_events_malformed_total",
            "Bus messages refused by the event decoder.", &m->events_malformed);
    counter(&b, "notifier_events_duplicate_total",
            "Events whose seq was already buffered (not relayed again).",
            &m->events_duplicate);
    counter(&b, "notifier_events_gap_total",
            "Seqs skipped between a user's consecutive events: lost before "
            "the notifier (a full bus queue drops silently).",
            &m->events_gap);
    counter(&b, "notifier_frames_queued_total", "Frames queued to connections.",
            &m->frames_queued);
    counter(&b, "notifier_frames_out_total", "Frames written to clients.",
            &m->frames_out);
    counter(&b, "notifier_bytes_out_total", "Bytes written to clients.",
            &m->bytes_out);
    counter(&b, "notifier_replays_total",
            "Connections that asked for a replay with ?since=.", &m->replays);
    counter(&b, "notifier_replayed_frames_total",
            "Frames replayed from the buffers.", &m->replayed_frames);
    counter(&b, "notifier_resyncs_total",
            "Resync frames sent (since older than the buffer).", &m->resyncs);
    counter(&b, "notifier_writers_replaced_total",
            "Writer threads replaced while stuck in one write.",
            &m->writers_replaced);
    counter(&b, "notifier_evicted_users_total",
            "Replay buffers dropped by the users bound (LRU).",
            &m->evicted_users);
    family(&b, "notifier_drops_total", "counter",
           "Connections dropped by the server, by reason.");
    for (int i = 0; i < NT_DROP_COUNT; i++)
        wa_json_buf_printf(&b, "notifier_drops_total{reason=\"%s\"} %llu\n",
                           drop_names[i],
                           (unsigned long long)nt_metrics_get(&m->drops[i]));
    family(&b, "notifier_refused_total", "counter",
           "Upgrades refused before the handshake, by reason.");
    for (int i = 0; i < NT_REFUSED_COUNT; i++)
        wa_json_buf_printf(&b, "notifier_refused_total{reason=\"%s\"} %llu\n",
                           refusal_names[i],
                           (unsigned long long)nt_metrics_get(&m->refused[i]));

    return wa_json_buf_done(&b, out, outlen);
}
