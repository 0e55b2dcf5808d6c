/* gw_openapi_test.c - the embedded OpenAPI document: valid JSON, version
 * 3.1.0, every route the server serves described (and nothing else), the
 * security of each route as the table says, every $ref resolvable. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway.h"
#include "openapi.h"

static cJSON *doc;

static int setup(void **state)
{
    (void)state;
    doc = cJSON_ParseWithLength((const char *)gw_openapi_json,
                                gw_openapi_json_len);
    return doc == NULL;
}

static int teardown(void **state)
{
    (void)state;
    cJSON_Delete(doc);
    return 0;
}

static void lower(const char *in, char *out, size_t len)
{
    size_t i;

    for (i = 0; in[i] != '\0' && i + 1 < len; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

static void test_parses_as_31(void **state)
{
    (void)state;
    assert_non_null(doc);
    assert_int_equal(strlen((const char *)gw_openapi_json),
                     gw_openapi_json_len);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(doc, "openapi")->valuestring, "3.1.0");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(doc, "info"), "title"));
}

static void test_every_route_described(void **state)
{
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    char m[16];

    (void)state;
    assert_true(cJSON_IsObject(paths));
    for (size_t i = 0; i < gw_nroutes; i++) {
        const cJSON *p =
            cJSON_GetObjectItemCaseSensitive(paths, gw_routes[i].path);
        const cJSON *op, *sec;

        lower(gw_routes[i].method, m, sizeof(m));
        op = cJSON_GetObjectItemCaseSensitive(p, m);
        if (!cJSON_IsObject(op))
            fail_msg("openapi.json lacks %s %s", gw_routes[i].method,
                     gw_routes[i].path);
        assert_non_null(cJSON_GetObjectItemCaseSensitive(op, "responses"));
        assert_non_null(cJSON_GetObjectItemCaseSensitive(op, "operationId"));
        /* Public routes say so with an empty security list; the others
         * inherit the document's bearerAuth. */
        sec = cJSON_GetObjectItemCaseSensitive(op, "security");
        if (gw_routes[i].auth) {
            assert_true(sec == NULL || cJSON_GetArraySize(sec) > 0);
            assert_non_null(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(op, "responses"), "401"));
            assert_non_null(cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(op, "responses"), "429"));
        } else {
            assert_true(cJSON_IsArray(sec) && cJSON_GetArraySize(sec) == 0);
        }
    }
}

static void test_nothing_else_described(void **state)
{
    const cJSON *paths = cJSON_GetObjectItemCaseSensitive(doc, "paths");
    const cJSON *p, *op;
    char m[16];

    (void)state;
    cJSON_ArrayForEach(p, paths)
    {
        cJSON_ArrayForEach(op, p)
        {
            bool found = false;

            if (strcmp(op->string, "parameters") == 0)
                continue;
            for (size_t i = 0; i < gw_nroutes && !found; i++) {
                lower(gw_routes[i].method, m, sizeof(m));
                found = strcmp(gw_routes[i].path, p->string) == 0 &&
                        strcmp(m, op->string) == 0;
            }
            if (!found)
                fail_msg("openapi.json describes %s %s, which is not served",
                         op->string, p->string);
        }
    }
}

static void test_security_and_error_shape(void **state)
{
    const cJSON *comp = cJSON_GetObjectItemCaseSensitive(doc, "components");
    const cJSON *bearer = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(comp, "securitySchemes"),
        "bearerAuth");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(comp, "schemas"), "Error");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(err, "required");
    const cJSON *codes = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(err, "properties"), "code"),
        "enum");

    (void)state;
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(bearer, "type")->valuestring, "http");
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(bearer, "scheme")->valuestring,
        "bearer");
    assert_int_equal(cJSON_GetArraySize(req), 2);
    /* Every machine code of err.h is listed. */
    assert_int_equal(cJSON_GetArraySize(codes), WA_ERR_COUNT - 1);
    for (int e = 1; e < WA_ERR_COUNT; e++) {
        const cJSON *c;
        bool found = false;

        cJSON_ArrayForEach(c, codes)
        {
            found =
                found || strcmp(c->valuestring, wa_err_code((wa_err_t)e)) == 0;
        }
        if (!found)
            fail_msg("Error.code lacks %s", wa_err_code((wa_err_t)e));
    }
}

/* Resolve "#/a/b/c" in doc. */
static const cJSON *resolve(const char *ref)
{
    char buf[256], *save = NULL;
    const cJSON *at = doc;

    if (strncmp(ref, "#/", 2) != 0 || strlen(ref) >= sizeof(buf))
        return NULL;
    snprintf(buf, sizeof(buf), "%s", ref + 2);
    for (char *part = strtok_r(buf, "/", &save); part != NULL && at != NULL;
         part = strtok_r(NULL, "/", &save))
        at = cJSON_GetObjectItemCaseSensitive(at, part);
    return at;
}

static int check_refs(const cJSON *node)
{
    const cJSON *child;
    int n = 0;

    if (node->string != NULL && strcmp(node->string, "$ref") == 0) {
        if (!cJSON_IsString(node) || resolve(node->valuestring) == NULL)
            fail_msg("unresolvable $ref %s",
                     cJSON_IsString(node) ? node->valuestring : "?");
        return 1;
    }
    cJSON_ArrayForEach(child, node)
    {
        n += check_refs(child);
    }
    return n;
}

static void test_refs_resolve(void **state)
{
    (void)state;
    assert_true(check_refs(doc) > 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_as_31),
        cmocka_unit_test(test_every_route_described),
        cmocka_unit_test(test_nothing_else_described),
        cmocka_unit_test(test_security_and_error_shape),
        cmocka_unit_test(test_refs_resolve),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
