/*
 * envelope_fuzz.c - every bus decoder on arbitrary bytes. A message that
 * decodes must encode again and decode to the same thing. PUB messages are
 * also read with wa_pub_split_* (both forms); every event it yields must
 * survive a batch round trip. JSON text the scanner (json.h) accepts must
 * parse with cJSON, and a reply must decode the same with and without its
 * data left as text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wa/envelope.h"
#include "wa/json.h"
#include "wa/pub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every member and element of checked text is itself one checked value,
 * whether skipped (iter_next) or entered (iter_next_in), and keys are
 * strings. */
static void walk(wa_json_span_t v, int depth)
{
    wa_json_iter_t it, in;
    wa_json_span_t key, val;
    bool enter = depth % 2 == 1;

    if (depth > 64 || !wa_json_iter_init(&it, v))
        return;
    while (enter ? wa_json_iter_next_in(&it, &key, &val, &in)
                 : wa_json_iter_next(&it, &key, &val)) {
        if (it.object && (key.n < 2 || key.p[0] != '"' ||
                          wa_json_check(key.p, key.n, NULL) != WA_OK))
            abort();
        if (enter && val.n == 0) {
            /* Entered: walk the inner iterator to its end. */
            wa_json_span_t k2, v2;
            while (wa_json_iter_next(&in, &k2, &v2)) {
                if (wa_json_check(v2.p, v2.n, NULL) != WA_OK)
                    abort();
                walk(v2, depth + 2);
            }
            continue;
        }
        if (wa_json_check(val.p, val.n, NULL) != WA_OK)
            abort();
        walk(val, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wa_request_t req, req2;
    wa_reply_t rep;
    wa_event_t ev, ev2;
    wa_pub_split_t split;
    char *out = NULL;
    size_t len;

    if (wa_request_decode(data, size, &req) == WA_OK) {
        if (wa_request_encode(req.op, req.user, req.rid, req.args, &out,
                              &len) != WA_OK ||
            wa_request_decode(out, len, &req2) != WA_OK)
            abort();
        if (req2.op != req.op || strcmp(req2.user, req.user) != 0 ||
            strcmp(req2.rid, req.rid) != 0)
            abort();
        wa_request_clear(&req2);
        wa_request_clear(&req);
        free(out);
        out = NULL;
    }
    if (wa_utf8_valid(data, size) &&
        wa_json_check((const char *)data, size, NULL) == WA_OK) {
        cJSON *tree = cJSON_ParseWithLength((const char *)data, size);
        wa_json_span_t top;

        if (tree == NULL)
            abort();
        cJSON_Delete(tree);
        if (wa_json_check((const char *)data, size, &top) != WA_OK)
            abort();
        walk(top, 0);
    }
    if (wa_reply_decode(data, size, &rep) == WA_OK) {
        wa_reply_t raw;

        if (wa_reply_decode_raw(data, size, &raw) != WA_OK ||
            raw.ok != rep.ok || raw.err != rep.err)
            abort();
        if (rep.ok) {
            /* The same value: printed from the tree, parsed from the
             * text and printed again. */
            cJSON *back = cJSON_Parse(raw.raw);
            char *a = cJSON_PrintUnformatted(rep.data);
            char *b = back != NULL ? cJSON_PrintUnformatted(back) : NULL;

            if (a == NULL || b == NULL || strcmp(a, b) != 0)
                abort();
            free(a);
            free(b);
            cJSON_Delete(back);
        }
        wa_reply_clear(&raw);
        wa_reply_clear(&rep);
    } else if (wa_reply_decode_raw(data, size, &rep) == WA_OK) {
        abort();
    }
    {
        /* The relay's decoder agrees with the tree's, and its frame holds
         * the same value. */
        wa_event_t a, b;
        wa_err_t ra = wa_event_decode(data, size, &a);
        wa_err_t rb = wa_event_decode_frame(data, size, &b);

        if (ra != rb)
            abort();
        if (ra == WA_OK) {
            char *fa = NULL, *fb = NULL;
            size_t la;
            cJSON *back = cJSON_Parse(b.frame);

            if (wa_event_frame(&a, &fa, &la) != WA_OK || back == NULL ||
                (fb = cJSON_PrintUnformatted(back)) == NULL ||
                strcmp(fa, fb) != 0 || a.seq != b.seq || a.type != b.type ||
                strcmp(a.user, b.user) != 0 ||
                strcmp(a.timestamp, b.timestamp) != 0)
                abort();
            free(fa);
            free(fb);
            cJSON_Delete(back);
            wa_event_clear(&a);
            wa_event_clear(&b);
        }
    }
    if (wa_event_decode(data, size, &ev) == WA_OK) {
        if (wa_event_encode(&ev, &out, &len) != WA_OK ||
            wa_event_decode(out, len, &ev2) != WA_OK || ev2.seq != ev.seq ||
            strcmp(ev2.user, ev.user) != 0)
            abort();
        wa_event_clear(&ev2);
        wa_event_clear(&ev);
        free(out);
        out = NULL;
    }
    if (wa_pub_split_begin(&split, data, size) == WA_OK) {
        size_t n = 0;

        if (split.records < 1 || split.records > WA_PUB_BATCH_MAX)
            abort();
        while (wa_pub_split_next(&split, &ev) == WA_OK) {
            wa_pub_split_t again;

            n++;
            if (wa_pub_batch_encode(&ev, 1, &out, &len) == WA_OK) {
                if (wa_pub_split_begin(&again, out, len) != WA_OK ||
                    wa_pub_split_next(&again, &ev2) != WA_OK ||
                    ev2.seq != ev.seq || strcmp(ev2.user, ev.user) != 0)
                    abort();
                wa_event_clear(&ev2);
                free(out);
                out = NULL;
            }
            wa_event_clear(&ev);
        }
        if (n + split.bad != split.records)
            abort();
    }
    return 0;
}
