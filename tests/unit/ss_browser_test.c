/*
 * ss_browser_test.c - browser.c without a browser: argv building, profile
 * paths from hostile user ids, directory creation, SingletonLock clean-up
 * (stale, foreign host, live), profile removal without following
 * symlinks, an adopted spare's link (settled into a plain directory, kept
 * while a browser runs on it, removed with its directory), and the
 * relaunch backoff.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "session.h"

#define SS_TMPDIR_TEMPLATE "/tmp/ss_browser_test.XXXXXX"
#include "ss_tmpdir.h"

static int has(char **v, const char *s)
{
    int n = 0;

    for (; *v != NULL; v++)
        n += strcmp(*v, s) == 0;
    return n;
}

static void argv_has_the_flags(void **state)
{
    ss_browser_opts_t o = {"/usr/bin/chromium", "/s/u1", "UA/1 (x)",
                           " --foo=1  --bar\t", false};
    char **v = NULL;

    (void)state;
    assert_int_equal(browser__argv(&o, &v), WA_OK);
    assert_string_equal(v[0], "/usr/bin/chromium");
    assert_int_equal(has(v, "--headless=new"), 1);
    assert_int_equal(has(v, "--remote-debugging-pipe"), 1);
    assert_int_equal(has(v, "--user-data-dir=/s/u1"), 1);
    assert_int_equal(has(v, "--no-first-run"), 1);
    assert_int_equal(has(v, "--disable-background-networking"), 1);
    assert_int_equal(has(v, "--disable-component-update"), 1);
    assert_int_equal(has(v, "--disable-sync"), 1);
    assert_int_equal(has(v, "--disable-dev-shm-usage"), 1);
    assert_int_equal(has(v, "--disable-blink-features=AutomationControlled"),
                     1);
    assert_int_equal(has(v, "--user-agent=UA/1 (x)"), 1); /* one argument */
    assert_int_equal(has(v, "--no-sandbox"), 0);
    assert_int_equal(has(v, "--foo=1"), 1);
    assert_int_equal(has(v, "--bar"), 1);
    wa_strv_free(v);
    o.no_sandbox = true;
    o.extra = NULL;
    o.user_agent = NULL;
    assert_int_equal(browser__argv(&o, &v), WA_OK);
    assert_int_equal(has(v, "--no-sandbox"), 1);
    for (char **p = v; *p != NULL; p++)
        assert_true(strncmp(*p, "--user-agent", 12) != 0);
    wa_strv_free(v);
    assert_int_equal(browser__argv(NULL, &v), WA_EINVAL);
}

static void profile_paths_stay_inside(void **state)
{
    char p[SS_PATH_MAX];

    (void)state;
    assert_int_equal(browser__profile_path("/s", "doctor-1", p, sizeof(p)),
                     WA_OK);
    assert_string_equal(p, "/s/doctor-1");
    assert_int_equal(browser__profile_path("/s", "../../etc", p, sizeof(p)),
                     WA_OK);
    assert_int_equal(strncmp(p, "/s/~", 4), 0);
    assert_null(strchr(p + 3, '/'));
    assert_int_equal(browser__profile_path("/s", "a/b", p, sizeof(p)), WA_OK);
    assert_null(strchr(p + 3, '/'));
    assert_int_equal(browser__profile_path("/s", "", p, sizeof(p)), WA_EINVAL);
    assert_int_equal(browser__profile_path("/s", "u", p, 4), WA_ETOOBIG);
}

static void mkdirs_makes_private_dirs(void **state)
{
    char p[1024];
    struct stat st;

    (void)state;
    snprintf(p, sizeof(p), "%s/a/b/c", tmp);
    assert_int_equal(browser__mkdirs(p), WA_OK);
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 077, 0);
    assert_int_equal(browser__mkdirs(p), WA_OK); /* again: fine */
    snprintf(p, sizeof(p), "%s/file", tmp);
    fclose(fopen(p, "w"));
    assert_int_equal(browser__mkdirs(p), WA_EUNAVAIL);
}

static void lock(const char *dir, const char *target)
{
    char p[1024];

    snprintf(p, sizeof(p), "%s/SingletonLock", dir);
    unlink(p);
    assert_int_equal(symlink(target, p), 0);
    snprintf(p, sizeof(p), "%s/SingletonSocket", dir);
    unlink(p);
    assert_int_equal(symlink("/tmp/nonexistent/SingletonSocket", p), 0);
    snprintf(p, sizeof(p), "%s/SingletonCookie", dir);
    unlink(p);
    assert_int_equal(symlink("12345", p), 0);
}

static int exists(const char *dir, const char *name)
{
    char p[1024];
    struct stat st;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return lstat(p, &st) == 0;
}

static void singleton_lock_cleanup(void **state)
{
    char host[256], target[512], prof[512];
    bool cleared = false;

    (void)state;
    snprintf(prof, sizeof(prof), "%s/prof", tmp);
    assert_int_equal(browser__mkdirs(prof), WA_OK);
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    /* Nothing there: fine, nothing cleared. */
    assert_int_equal(browser__clear_singleton(prof, &cleared), WA_OK);
    assert_false(cleared);
    /* Our host, a pid that does not exist: stale. */
    snprintf(target, sizeof(target), "%s-%d", host, 999999);
    lock(prof, target);
    assert_int_equal(browser__clear_singleton(prof, &cleared), WA_OK);
    assert_true(cleared);
    assert_false(exists(prof, "SingletonLock"));
    assert_false(exists(prof, "SingletonSocket"));
    assert_false(exists(prof, "SingletonCookie"));
    /* Our host, a live pid that is not a browser on this profile (us). */
    snprintf(target, sizeof(target), "%s-%d", host, (int)getpid());
    lock(prof, target);
    assert_int_equal(browser__clear_singleton(prof, &cleared), WA_OK);
    assert_true(cleared);
    /* Another host (the previous owner on a shared volume): cleared. */
    lock(prof, "other-host-1");
    assert_int_equal(browser__clear_singleton(prof, &cleared), WA_OK);
    assert_true(cleared);
    /* Garbage in the link: cleared. */
    lock(prof, "garbage");
    assert_int_equal(browser__clear_singleton(prof, &cleared), WA_OK);
    assert_true(cleared);
}

/* A live process of ours whose argv carries --user-data-dir=<profile>
 * holds the lock: it is not cleared. */
static void singleton_lock_live_is_kept(void **state)
{
    char host[256], target[512], prof[512], arg[1024];
    bool cleared = true;
    pid_t pid;

    (void)state;
    snprintf(prof, sizeof(prof), "%s/live", tmp);
    assert_int_equal(browser__mkdirs(prof), WA_OK);
    snprintf(arg, sizeof(arg), "--user-data-dir=%s", prof);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "sleep 30; :", "sh", arg, (char *)NULL);
        _exit(127);
    }
    usleep(100 * 1000);
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    snprintf(target, sizeof(target), "%s-%d", host, (int)pid);
    lock(prof, target);
    assert_int_equal(browser__clear_singleton(prof, &cleared), WA_ECONFLICT);
    assert_true(exists(prof, "SingletonLock"));
    kill(pid, 9);
    waitpid(pid, NULL, 0);
    assert_int_equal(browser__clear_singleton(prof, &cleared), WA_OK);
    assert_true(cleared);
}

static void remove_tree_does_not_follow_links(void **state)
{
    char prof[512], outside[512], p[1024];

    (void)state;
    snprintf(prof, sizeof(prof), "%s/victim/Default/IndexedDB", tmp);
    snprintf(outside, sizeof(outside), "%s/outside", tmp);
    assert_int_equal(browser__mkdirs(prof), WA_OK);
    assert_int_equal(browser__mkdirs(outside), WA_OK);
    snprintf(p, sizeof(p), "%s/keep", outside);
    fclose(fopen(p, "w"));
    snprintf(p, sizeof(p), "%s/victim/link", tmp);
    assert_int_equal(symlink(outside, p), 0);
    snprintf(p, sizeof(p), "%s/victim", tmp);
    assert_int_equal(browser__remove_tree(p), WA_OK);
    assert_false(exists(tmp, "victim"));
    assert_true(exists(outside, "keep"));
    assert_int_equal(browser__remove_tree(p), WA_OK); /* gone: fine */
    assert_int_equal(browser__remove_tree("/"), WA_EINVAL);
    assert_int_equal(browser__remove_tree(""), WA_EINVAL);
}

/* An adopted spare: the user's profile is a relative link to a sibling
 * .spare-XXXXXX directory that a browser runs on. */
static void adopted(char *user, char *spare, size_t len)
{
    char p[1024];

    snprintf(spare, len, "%s/%sabc123", tmp, SS_SPARE_PREFIX);
    snprintf(user, len, "%s/doctor-1", tmp);
    assert_int_equal(browser__remove_tree(user), WA_OK); /* earlier tests */
    assert_int_equal(browser__remove_tree(spare), WA_OK);
    assert_int_equal(browser__mkdirs(spare), WA_OK);
    snprintf(p, sizeof(p), "%s/Default", spare);
    assert_int_equal(browser__mkdirs(p), WA_OK);
    snprintf(p, sizeof(p), "%s/Default/login", spare);
    fclose(fopen(p, "w"));
    snprintf(p, sizeof(p), "%s/%s", spare, SS_SPARE_OWNER);
    fclose(fopen(p, "w"));
    assert_int_equal(symlink(SS_SPARE_PREFIX "abc123", user), 0);
}

static void settle_makes_a_plain_directory(void **state)
{
    char user[512], spare[512], p[1024];
    struct stat st;

    (void)state;
    adopted(user, spare, sizeof(user));
    assert_int_equal(browser__settle_profile(user), WA_OK);
    assert_int_equal(lstat(user, &st), 0);
    assert_true(S_ISDIR(st.st_mode)); /* no longer a link */
    assert_true(exists(user, "Default/login"));
    assert_false(exists(user, SS_SPARE_OWNER));
    assert_int_equal(lstat(spare, &st), -1); /* the spare's name is gone */
    /* Again, and on a missing profile: nothing to do. */
    assert_int_equal(browser__settle_profile(user), WA_OK);
    snprintf(p, sizeof(p), "%s/nobody", tmp);
    assert_int_equal(browser__settle_profile(p), WA_OK);
    /* A dangling link goes. */
    snprintf(p, sizeof(p), "%s/dangling", tmp);
    assert_int_equal(symlink(SS_SPARE_PREFIX "gone", p), 0);
    assert_int_equal(browser__settle_profile(p), WA_OK);
    assert_int_equal(lstat(p, &st), -1);
    /* Someone else's link (not to a spare) is used as it is. */
    snprintf(p, sizeof(p), "%s/foreign", tmp);
    assert_int_equal(symlink(user, p), 0);
    assert_int_equal(browser__settle_profile(p), WA_OK);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_true(exists(user, "Default/login"));
}

/* A live browser on the spare's path holds the user's profile: neither
 * the lock is cleared nor the directories swapped. */
static void settle_waits_for_a_live_browser(void **state)
{
    char host[256], target[512], user[512], spare[512], arg[1024];
    struct stat st;
    pid_t pid;

    (void)state;
    adopted(user, spare, sizeof(user));
    snprintf(arg, sizeof(arg), "--user-data-dir=%s", spare);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "sleep 30; :", "sh", arg, (char *)NULL);
        _exit(127);
    }
    usleep(100 * 1000);
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    snprintf(target, sizeof(target), "%s-%d", host, (int)pid);
    lock(spare, target);
    /* Seen through the user's link, the lock is live too. */
    assert_int_equal(browser__clear_singleton(user, NULL), WA_ECONFLICT);
    assert_int_equal(browser__settle_profile(user), WA_ECONFLICT);
    assert_int_equal(lstat(user, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    kill(pid, 9);
    waitpid(pid, NULL, 0);
    assert_int_equal(browser__settle_profile(user), WA_OK);
    assert_int_equal(lstat(user, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

static void remove_profile_takes_the_spare_along(void **state)
{
    char user[512], spare[512], other[512], p[1024];
    struct stat st;

    (void)state;
    adopted(user, spare, sizeof(user));
    assert_int_equal(browser__remove_profile(user), WA_OK);
    assert_int_equal(lstat(user, &st), -1);
    assert_int_equal(lstat(spare, &st), -1);
    /* A plain profile. */
    assert_int_equal(browser__mkdirs(user), WA_OK);
    assert_int_equal(browser__remove_profile(user), WA_OK);
    assert_int_equal(lstat(user, &st), -1);
    /* A link elsewhere: only the link goes. */
    snprintf(other, sizeof(other), "%s/elsewhere", tmp);
    assert_int_equal(browser__mkdirs(other), WA_OK);
    assert_int_equal(symlink(other, user), 0);
    assert_int_equal(browser__remove_profile(user), WA_OK);
    assert_int_equal(lstat(user, &st), -1);
    assert_int_equal(stat(other, &st), 0);
    snprintf(p, sizeof(p), "%s/nobody", tmp);
    assert_int_equal(browser__remove_profile(p), WA_OK);
}

static void backoff_doubles_to_the_cap(void **state)
{
    uint64_t b = 0;
    static const uint64_t want[] = {1000,  2000,  4000, 8000,
                                    16000, 30000, 30000};

    (void)state;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        b = browser__backoff_next(b, 30000);
        assert_int_equal(b, want[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(argv_has_the_flags),
        cmocka_unit_test(profile_paths_stay_inside),
        cmocka_unit_test(mkdirs_makes_private_dirs),
        cmocka_unit_test(singleton_lock_cleanup),
        cmocka_unit_test(singleton_lock_live_is_kept),
        cmocka_unit_test(remove_tree_does_not_follow_links),
        cmocka_unit_test(settle_makes_a_plain_directory),
        cmocka_unit_test(settle_waits_for_a_live_browser),
        cmocka_unit_test(remove_profile_takes_the_spare_along),
        cmocka_unit_test(backoff_doubles_to_the_cap),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
