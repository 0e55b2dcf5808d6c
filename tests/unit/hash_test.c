/*
 * hash_test.c - FNV-1a against the published test vectors, and its
 * chaining.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wa/hash.h"

/* Vectors of the FNV reference (Fowler, Noll, Vo: "FNV-1a 64"). */
static void test_vectors(void **state)
{
    (void)state;
    assert_true(wa_fnv1a(WA_FNV1A_INIT, "", 0) == WA_FNV1A_INIT);
    assert_true(wa_fnv1a(WA_FNV1A_INIT, "a", 1) ==
                UINT64_C(0xaf63dc4c8601ec8c));
    assert_true(wa_fnv1a(WA_FNV1A_INIT, "foobar", 6) ==
                UINT64_C(0x85944171f73967e8));
    assert_true(wa_fnv1a_str("") == WA_FNV1A_INIT);
    assert_true(wa_fnv1a_str("foobar") == UINT64_C(0x85944171f73967e8));
}

/* Hashing in pieces is hashing the whole; a NUL is a byte like any. */
static void test_chaining(void **state)
{
    (void)state;
    assert_true(wa_fnv1a(wa_fnv1a(WA_FNV1A_INIT, "foo", 3), "bar", 3) ==
                wa_fnv1a_str("foobar"));
    assert_true(wa_fnv1a(WA_FNV1A_INIT, "a\0b", 3) !=
                wa_fnv1a(WA_FNV1A_INIT, "ab", 2));
    assert_true(wa_fnv1a_str("user-1") != wa_fnv1a_str("user-2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_chaining),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
