/*
 * ss_cdp_test.c - the DevTools client over socketpairs standing in for the
 * browser's fd 3 and fd 4: commands are NUL-framed JSON with rising ids;
 * replies split across reads, several in one read, bad JSON, unknown ids,
 * events with and without sessionId, timeouts, oversized frames, EOF and
 * close all behave.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cdp.h"

typedef struct rec {
    int replies;
    wa_err_t last_err;
    char last_result[256];
    char last_errmsg[128];
    int events;
    char last_method[64];
    char last_session[64];
    int closed;
    wa_err_t closed_why;
} rec_t;

typedef struct fixture {
    uv_loop_t loop;
    cdp_t *c;
    int browser_in;  /* what the client wrote: read here */
    int browser_out; /* the browser's replies: written here */
    rec_t r;
} fixture_t;

static void on_event(void *arg, const char *session, const char *method,
                     const cJSON *params)
{
    rec_t *r = arg;

    assert_true(cJSON_IsObject(params));
    r->events++;
    snprintf(r->last_method, sizeof(r->last_method), "%s", method);
    snprintf(r->last_session, sizeof(r->last_session), "%s",
             session != NULL ? session : "(none)");
}

static void on_closed(void *arg, wa_err_t why)
{
    rec_t *r = arg;

    r->closed++;
    r->closed_why = why;
}

static void on_reply(void *arg, wa_err_t err, const cJSON *result,
                     const char *errmsg)
{
    rec_t *r = arg;
    char *s = result != NULL ? cJSON_PrintUnformatted(result) : NULL;

    r->replies++;
    r->last_err = err;
    snprintf(r->last_result, sizeof(r->last_result), "%s", s ? s : "");
    snprintf(r->last_errmsg, sizeof(r->last_errmsg), "%s",
             errmsg ? errmsg : "");
    free(s);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    cdp_handlers_t h = {on_event, on_closed, NULL};
    int a[2], b[2];

    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    h.arg = &f->r;
    assert_int_equal(cdp__new(&f->loop, &h, &f->c), WA_OK);
    assert_int_equal(cdp__open_fds(f->c, a[0], b[0]), WA_OK);
    assert_int_equal(cdp__start(f->c), WA_OK);
    f->browser_in = a[1];
    f->browser_out = b[1];
    fcntl(f->browser_in, F_SETFL, O_NONBLOCK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    cdp__close(f->c);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->browser_in >= 0)
        close(f->browser_in);
    if (f->browser_out >= 0)
        close(f->browser_out);
    free(f);
    return 0;
}

static void spin(fixture_t *f, int n)
{
    for (int i = 0; i < n; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void put(fixture_t *f, const void *buf, size_t len)
{
    assert_int_equal(write(f->browser_out, buf, len), (ssize_t)len);
    spin(f, 3);
}

/* Read what the client sent so far (frames separated by NUL). */
static size_t sent(fixture_t *f, char *buf, size_t cap)
{
    ssize_t n;
    size_t total = 0;

    spin(f, 3);
    while ((n = read(f->browser_in, buf + total, cap - 1 - total)) > 0)
        total += (size_t)n;
    buf[total] = '\0';
    return total;
}

static void commands_are_framed_with_ids(void **state)
{
    fixture_t *f = *state;
    char buf[4096];
    cJSON *p = cJSON_CreateObject(), *j;
    size_t n;

    cJSON_AddStringToObject(p, "url", "http://x/?\"a\"");
    assert_int_equal(
        cdp__call(f->c, NULL, "Page.navigate", p, 1000, on_reply, &f->r),
        WA_OK);
    assert_int_equal(
        cdp__call(f->c, "S1", "Runtime.enable", NULL, 1000, on_reply, &f->r),
        WA_OK);
    n = sent(f, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(buf[n - 1], '\0');
    j = cJSON_Parse(buf);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "id")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(j, "method")->valuestring,
                        "Page.navigate");
    assert_null(cJSON_GetObjectItem(j, "sessionId"));
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(j, "params"), "url")
            ->valuestring,
        "http://x/?\"a\"");
    cJSON_Delete(j);
    j = cJSON_Parse(buf + strlen(buf) + 1);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "id")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(j, "sessionId")->valuestring, "S1");
    cJSON_Delete(j);
    assert_int_equal(cdp__pending(f->c), 2);
}

static void split_and_coalesced_replies(void **state)
{
    fixture_t *f = *state;
    const char a[] = "{\"id\":1,\"result\":{\"v\":\"first\"}}";
    const char b[] =
        "{\"id\":2,\"error\":{\"code\":-32000,\"message\":\"nope\"}}"
        "\0{\"method\":\"Page.loadEventFired\",\"params\":{},"
        "\"sessionId\":\"S1\"}";

    assert_int_equal(cdp__call(f->c, NULL, "A.a", NULL, 1000, on_reply, &f->r),
                     WA_OK);
    assert_int_equal(cdp__call(f->c, NULL, "B.b", NULL, 1000, on_reply, &f->r),
                     WA_OK);
    /* The first reply in three pieces. */
    put(f, a, 5);
    assert_int_equal(f->r.replies, 0);
    put(f, a + 5, sizeof(a) - 1 - 5);
    assert_int_equal(f->r.replies, 0);
    put(f, "\0", 1);
    assert_int_equal(f->r.replies, 1);
    assert_int_equal(f->r.last_err, WA_OK);
    assert_string_equal(f->r.last_result, "{\"v\":\"first\"}");
    /* A reply and an event in one write. */
    put(f, b, sizeof(b)); /* includes the final NUL */
    assert_int_equal(f->r.replies, 2);
    assert_int_equal(f->r.last_err, WA_EBROWSER);
    assert_string_equal(f->r.last_errmsg, "nope");
    assert_int_equal(f->r.events, 1);
    assert_string_equal(f->r.last_method, "Page.loadEventFired");
    assert_string_equal(f->r.last_session, "S1");
    assert_int_equal(cdp__pending(f->c), 0);
}

static void hostile_frames_are_dropped(void **state)
{
    fixture_t *f = *state;
    static const char *const bad[] = {
        "not json",
        "[1,2,3]",
        "{\"id\":\"1\",\"result\":{}}",
        "{\"id\":1.5,\"result\":{}}",
        "{\"id\":-1,\"result\":{}}",
        "{\"id\":99,\"result\":{}}", /* unknown id */
        "{\"method\":7}",
        "{\"method\":\"X.y\",\"params\":[1]}",
        "{\"method\":\"X.y\",\"sessionId\":5}",
        "{\"method\":\"X.y\"} trailing",
        "",
    };
    cdp_stats_t st;

    assert_int_equal(cdp__call(f->c, NULL, "A.a", NULL, 1000, on_reply, &f->r),
                     WA_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        put(f, bad[i], strlen(bad[i]) + 1);
    assert_int_equal(f->r.replies, 0);
    assert_int_equal(f->r.events, 0);
    assert_int_equal(f->r.closed, 0);
    cdp__stats(f->c, &st);
    assert_true(st.frames_bad >= 9);
    /* Still works afterwards; params absent becomes {}. */
    put(f, "{\"method\":\"X.y\"}", 17);
    assert_int_equal(f->r.events, 1);
    put(f, "{\"id\":1,\"result\":{}}", 21);
    assert_int_equal(f->r.replies, 1);
    assert_int_equal(f->r.last_err, WA_OK);
    /* A reply with neither result nor error is an error for the caller. */
    assert_int_equal(cdp__call(f->c, NULL, "A.a", NULL, 1000, on_reply, &f->r),
                     WA_OK);
    put(f, "{\"id\":2}", 9);
    assert_int_equal(f->r.replies, 2);
    assert_int_equal(f->r.last_err, WA_EBROWSER);
}

static void calls_time_out(void **state)
{
    fixture_t *f = *state;
    uint64_t t0 = uv_now(&f->loop);

    assert_int_equal(
        cdp__call(f->c, NULL, "Slow.one", NULL, 50, on_reply, &f->r), WA_OK);
    assert_int_equal(
        cdp__call(f->c, NULL, "Slow.two", NULL, 5000, on_reply, &f->r), WA_OK);
    while (f->r.replies == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->r.last_err, WA_ETIMEDOUT);
    assert_true(uv_now(&f->loop) - t0 >= 50);
    assert_true(uv_now(&f->loop) - t0 < 2000);
    assert_int_equal(cdp__pending(f->c), 1);
    /* A late reply to the timed-out call is ignored. */
    put(f, "{\"id\":1,\"result\":{}}", 21);
    assert_int_equal(f->r.replies, 1);
}

static void oversized_frame_ends_connection(void **state)
{
    fixture_t *f = *state;
    size_t chunk = 1 << 20, total = 0;
    char *junk = malloc(chunk);

    memset(junk, 'x', chunk);
    assert_int_equal(cdp__call(f->c, NULL, "A.a", NULL, 10000, on_reply, &f->r),
                     WA_OK);
    fcntl(f->browser_out, F_SETFL, O_NONBLOCK);
    while (f->r.closed == 0 && total < 2u * CDP_FRAME_MAX) {
        ssize_t n = write(f->browser_out, junk, chunk);

        if (n > 0)
            total += (size_t)n;
        spin(f, 2);
    }
    free(junk);
    assert_int_equal(f->r.closed, 1);
    assert_int_equal(f->r.closed_why, WA_ETOOBIG);
    assert_int_equal(f->r.replies, 1); /* the pending call failed */
    assert_int_equal(f->r.last_err, WA_ECLOSED);
    assert_int_equal(cdp__call(f->c, NULL, "A.a", NULL, 1000, on_reply, &f->r),
                     WA_ECLOSED);
}

static void eof_fails_pending_and_reports(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(cdp__call(f->c, NULL, "A.a", NULL, 10000, on_reply, &f->r),
                     WA_OK);
    close(f->browser_out);
    f->browser_out = -1;
    spin(f, 5);
    assert_int_equal(f->r.closed, 1);
    assert_int_equal(f->r.closed_why, WA_ECLOSED);
    assert_int_equal(f->r.replies, 1);
    assert_int_equal(f->r.last_err, WA_ECLOSED);
}

static void close_fails_pending_and_browser_sees_eof(void **state)
{
    fixture_t *f = *state;
    char buf[256];
    ssize_t n;

    assert_int_equal(cdp__call(f->c, NULL, "A.a", NULL, 10000, on_reply, &f->r),
                     WA_OK);
    cdp__close(f->c);
    assert_int_equal(f->r.replies, 1);
    assert_int_equal(f->r.last_err, WA_ECLOSED);
    assert_int_equal(f->r.closed, 0); /* on_closed is not for our close */
    f->c = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    fcntl(f->browser_in, F_SETFL, 0);
    while ((n = read(f->browser_in, buf, sizeof(buf))) > 0)
        ;
    assert_int_equal(n, 0); /* EOF: Chromium would exit now */
}

static void cancel_by_owner(void **state)
{
    fixture_t *f = *state;
    rec_t other = {0};

    assert_int_equal(cdp__call(f->c, NULL, "A.a", NULL, 10000, on_reply, &f->r),
                     WA_OK);
    assert_int_equal(
        cdp__call(f->c, NULL, "B.b", NULL, 10000, on_reply, &other), WA_OK);
    cdp__cancel(f->c, &other);
    assert_int_equal(other.replies, 1);
    assert_int_equal(other.last_err, WA_ECLOSED);
    assert_int_equal(f->r.replies, 0);
    assert_int_equal(cdp__pending(f->c), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(commands_are_framed_with_ids, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(split_and_coalesced_replies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hostile_frames_are_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(calls_time_out, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_frame_ends_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(eof_fails_pending_and_reports, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            close_fails_pending_and_browser_sees_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(cancel_by_owner, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
