/*
 * ss_unlinker_test.c - the filesystem side of unlinker.c: a profile moved
 * aside to .unlink-XXXXXX with its owner file locked, an adopted spare's
 * link settled first, a profile somebody else works on left alone, no
 * profile at all; and the owner file's "<attempts> <not-before>" text.
 * The background browser itself is exercised by the integration test
 * (test_session.py, DisconnectWhileRestoring).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"

#define SS_TMPDIR_TEMPLATE "/tmp/ss_unlinker_test.XXXXXX"
#include "ss_tmpdir.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

/* Is path's lock held by someone (an flock of our own is refused)? */
static bool locked(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    bool held;

    assert_true(fd >= 0);
    held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

static void moves_the_profile_aside_locked(void **state)
{
    char profile[512], file[SS_PATH_MAX + 64], aside[SS_PATH_MAX],
        owner[SS_PATH_MAX + 64];
    struct stat st;
    int fd = -1;

    (void)state;
    snprintf(profile, sizeof(profile), "%s/alice", tmp);
    assert_int_equal(browser__mkdirs(profile), WA_OK);
    snprintf(file, sizeof(file), "%s/Local State", profile);
    write_file(file, "{}");

    assert_int_equal(
        unlinker__move_aside(tmp, profile, aside, sizeof(aside), &fd), WA_OK);
    assert_true(fd >= 0);
    assert_false(exists(profile));
    assert_int_equal(strncmp(aside, tmp, strlen(tmp)), 0);
    assert_int_equal(strncmp(aside + strlen(tmp), "/" SS_UNLINK_PREFIX,
                             strlen("/" SS_UNLINK_PREFIX)),
                     0);
    assert_int_equal(strlen(aside),
                     strlen(tmp) + 1 + strlen(SS_UNLINK_PREFIX) + 6);
    assert_int_equal(lstat(aside, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    snprintf(file, sizeof(file), "%s/Local State", aside);
    assert_true(exists(file));
    snprintf(owner, sizeof(owner), "%s/%s", aside, SS_UNLINK_OWNER);
    assert_true(locked(owner));
    close(fd);
    assert_false(locked(owner));
}

static void two_moves_get_two_names(void **state)
{
    char p1[512], p2[512], a1[SS_PATH_MAX], a2[SS_PATH_MAX];
    int f1 = -1, f2 = -1;

    (void)state;
    snprintf(p1, sizeof(p1), "%s/bob", tmp);
    snprintf(p2, sizeof(p2), "%s/carol", tmp);
    assert_int_equal(browser__mkdirs(p1), WA_OK);
    assert_int_equal(browser__mkdirs(p2), WA_OK);
    assert_int_equal(unlinker__move_aside(tmp, p1, a1, sizeof(a1), &f1), WA_OK);
    assert_int_equal(unlinker__move_aside(tmp, p2, a2, sizeof(a2), &f2), WA_OK);
    assert_string_not_equal(a1, a2);
    assert_true(exists(a1));
    assert_true(exists(a2));
    close(f1);
    close(f2);
}

static void no_profile_is_not_found(void **state)
{
    char profile[512], aside[SS_PATH_MAX] = "";
    int fd = -1;

    (void)state;
    snprintf(profile, sizeof(profile), "%s/nobody", tmp);
    assert_int_equal(
        unlinker__move_aside(tmp, profile, aside, sizeof(aside), &fd),
        WA_ENOTFOUND);
    assert_int_equal(fd, -1);
}

static void a_locked_profile_stays(void **state)
{
    char profile[512], owner[600], aside[SS_PATH_MAX];
    int held, fd = -1;

    (void)state;
    snprintf(profile, sizeof(profile), "%s/dave", tmp);
    assert_int_equal(browser__mkdirs(profile), WA_OK);
    snprintf(owner, sizeof(owner), "%s/%s", profile, SS_UNLINK_OWNER);
    held = open(owner, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(held >= 0);
    assert_int_equal(flock(held, LOCK_EX | LOCK_NB), 0);

    assert_int_equal(
        unlinker__move_aside(tmp, profile, aside, sizeof(aside), &fd),
        WA_ECONFLICT);
    assert_int_equal(fd, -1);
    assert_true(exists(profile));
    assert_true(exists(owner)); /* the other mover's file stays */
    assert_true(locked(owner));
    close(held);
}

static void an_adopted_spare_is_settled_first(void **state)
{
    char spare[512], profile[512], file[SS_PATH_MAX + 64], aside[SS_PATH_MAX];
    struct stat st;
    int fd = -1;

    (void)state;
    snprintf(spare, sizeof(spare), "%s/%sabc123", tmp, SS_SPARE_PREFIX);
    snprintf(profile, sizeof(profile), "%s/erin", tmp);
    assert_int_equal(browser__mkdirs(spare), WA_OK);
    snprintf(file, sizeof(file), "%s/Local State", spare);
    write_file(file, "{}");
    assert_int_equal(symlink(SS_SPARE_PREFIX "abc123", profile), 0);

    assert_int_equal(
        unlinker__move_aside(tmp, profile, aside, sizeof(aside), &fd), WA_OK);
    assert_false(exists(profile));
    assert_false(exists(spare));
    assert_int_equal(lstat(aside, &st), 0);
    assert_true(S_ISDIR(st.st_mode)); /* the directory itself, not a link */
    snprintf(file, sizeof(file), "%s/Local State", aside);
    assert_true(exists(file));
    close(fd);
}

static void owner_text(void **state)
{
    int a = -1;
    uint64_t nb = 1;

    (void)state;
    assert_true(unlinker__owner_parse("0 0\n", &a, &nb));
    assert_int_equal(a, 0);
    assert_int_equal(nb, 0);
    assert_true(unlinker__owner_parse("3 1790000000123\n", &a, &nb));
    assert_int_equal(a, 3);
    assert_int_equal(nb, 1790000000123ull);
    assert_true(unlinker__owner_parse("4 17", &a, &nb));
    assert_int_equal(a, 4);
    assert_int_equal(nb, 17);

    a = 9;
    assert_false(unlinker__owner_parse("", &a, &nb));
    assert_false(unlinker__owner_parse("x 1", &a, &nb));
    assert_false(unlinker__owner_parse("3", &a, &nb));
    assert_false(unlinker__owner_parse("3 ", &a, &nb));
    assert_false(unlinker__owner_parse("-1 5", &a, &nb));
    assert_false(unlinker__owner_parse("3 -5", &a, &nb));
    assert_false(unlinker__owner_parse("3 5x", &a, &nb));
    assert_false(unlinker__owner_parse("99999999999 5", &a, &nb));
    assert_false(unlinker__owner_parse("3 99999999999999999999999", &a, &nb));
    assert_int_equal(a, 9); /* untouched on failure */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(moves_the_profile_aside_locked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(two_moves_get_two_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(no_profile_is_not_found, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_locked_profile_stays, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_adopted_spare_is_settled_first,
                                        setup, teardown),
        cmocka_unit_test(owner_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
