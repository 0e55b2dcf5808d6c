/*
 * nt_metrics_test.c - notifier-svc's /metrics text: every family has HELP
 * and TYPE, counters and gauges carry their values, labels are exact.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "notifier.h"

static void assert_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    const char *p = text;

    while ((p = strstr(p, line)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
        p += n;
    }
    fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void test_render(void **state)
{
    nt_metrics_t m = {0};
    nt_gauges_t g = {.connections = 3,
                     .users = 2,
                     .ring_bytes = 4096,
                     .uptime_seconds = 1.5};
    char *text = NULL;
    size_t len = 0;

    (void)state;
    nt_metrics_add(&m.events_in, 7);
    nt_metrics_add(&m.frames_out, 21);
    nt_metrics_add(&m.replays, 2);
    nt_metrics_add(&m.resyncs, 1);
    nt_metrics_add(&m.drops[NT_DROP_OVERFLOW], 4);
    nt_metrics_add(&m.refused[NT_REFUSED_UNAUTHORIZED], 5);
    nt_metrics_add(&m.refused[NT_REFUSED_SERVER_LIMIT], 6);
    assert_int_equal(nt_metrics_render(&m, &g, &text, &len), WA_OK);
    assert_int_equal(strlen(text), len);

    assert_line(text, "# TYPE notifier_connections gauge");
    assert_line(text, "notifier_connections 3");
    assert_line(text, "notifier_users 2");
    assert_line(text, "notifier_replay_buffer_bytes 4096");
    assert_line(text, "notifier_uptime_seconds 1.500");
    assert_line(text, "# TYPE notifier_events_in_total counter");
    assert_line(text, "notifier_events_in_total 7");
    assert_line(text, "notifier_frames_out_total 21");
    assert_line(text, "notifier_replays_total 2");
    assert_line(text, "notifier_resyncs_total 1");
    assert_line(text, "notifier_drops_total{reason=\"overflow\"} 4");
    assert_line(text, "notifier_drops_total{reason=\"write_failed\"} 0");
    assert_line(text, "notifier_refused_total{reason=\"unauthorized\"} 5");
    assert_line(text, "notifier_refused_total{reason=\"forbidden_origin\"} 0");
    assert_line(text, "notifier_refused_total{reason=\"bad_request\"} 0");
    assert_line(text, "notifier_refused_total{reason=\"user_limit\"} 0");
    assert_line(text, "notifier_refused_total{reason=\"server_limit\"} 6");

    /* Every sample line belongs to a family declared just before it, and
     * every line is either a comment or "name[{labels}] value". */
    for (char *line = strtok(text, "\n"); line != NULL;
         line = strtok(NULL, "\n")) {
        if (line[0] == '#') {
            assert_true(strncmp(line, "# HELP notifier_", 16) == 0 ||
                        strncmp(line, "# TYPE notifier_", 16) == 0);
            continue;
        }
        assert_true(strncmp(line, "notifier_", 9) == 0);
        assert_non_null(strchr(line, ' '));
    }
    free(text);
    assert_int_equal(nt_metrics_render(NULL, &g, &text, &len), WA_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
