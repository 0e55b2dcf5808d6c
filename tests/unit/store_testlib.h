/*
 * store_testlib.h - helpers shared by the store-svc unit tests: a temporary
 * directory per test, and small database shortcuts.
 */
#ifndef STORE_TESTLIB_H
#define STORE_TESTLIB_H

#include <stddef.h>

#include "store.h"

/* A fresh directory under $TMPDIR (mkdtemp); *dir is malloc'd. */
char *tl_tmpdir(void);

/* rm -rf dir and free the string. */
void tl_rmrf(char *dir);

/* dir + "/" + name, malloc'd. */
char *tl_path(const char *dir, const char *name);

/* Open a database, failing the test with err on failure. */
db_t *tl_open(const char *path);

/* Run constant SQL on a raw connection to path (outside the store). */
void tl_sql(const char *path, const char *sql);

/* The first column of the first row of sql on c, as an integer. */
long long tl_scalar(db_conn_t *c, const char *sql);

/* A result as the bus carries it: printed (raw nodes as their text) and
 * parsed back; res is consumed. Fails the test if either step fails. */
cJSON *tl_as_sent(cJSON *res);

/* Keep log records below this level quiet (default: error only). */
void tl_quiet(void);

#endif
