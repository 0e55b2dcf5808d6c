/*
 * ss_tmpdir.h - a fresh directory for each case of a session-svc unit
 * test, removed after it (browser__remove_tree: links are not followed).
 * Define SS_TMPDIR_TEMPLATE ("/tmp/<test>.XXXXXX") first; use setup and
 * teardown with cmocka_unit_test_setup_teardown, and tmp as the path.
 * Include after cmocka.h and session.h.
 */
#ifndef SS_TMPDIR_H
#define SS_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static char tmp[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "%s", SS_TMPDIR_TEMPLATE);
    assert_non_null(mkdtemp(tmp));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(browser__remove_tree(tmp), WA_OK);
    return 0;
}

#endif
