/*
 * store.h - store-svc's private interfaces, shared by its files.
 *
 *   db.c         the SQLite file: open, pragmas, migrations, statements
 *   sessions.c   user_sessions rows
 *   logs.c       session_logs rows and the per-user event sequence
 *   placement.c  instance registry, user placement, rendezvous hashing
 *   writer.c     the one writer thread: group commit of every mutation
 *   idem.c       rid -> first reply, so a repeated request writes nothing
 *   ops.c        the bus operations: argument checks and dispatch
 *   store.c      all of the above opened and closed together
 *
 * Threads: bus handlers run on nng's threads. Reads use the read connection
 * under its mutex (db__read_begin/end); every write runs on the writer
 * thread, on the write connection, inside a group-committed transaction.
 * Module functions taking a db_conn_t never lock: the caller owns the
 * connection for the duration of the call.
 */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "wa/bus.h"
#include "wa/envelope.h"
#include "wa/err.h"

#define STORE_SERVICE "store-svc"

/*
 * SQLite's "unix-excl" VFS for every connection store-svc opens: the
 * process takes one exclusive POSIX lock on the database at its first
 * transaction and holds it, and the WAL index lives in the heap instead of
 * a shared -shm file. Its connections still lock each other as usual (the
 * locks are kept in the process), but no transaction costs a system call
 * for locking any more. It also enforces DESIGN's rule that only store-svc
 * opens the file: another process gets SQLITE_BUSY.
 */
#define STORE_DB_VFS "unix-excl"

/* Argument limits of the bus operations (docs/architecture.md). */
#define STORE_PHONE_MAX 32
#define STORE_NAME_MAX 256
#define STORE_QR_MAX (64 * 1024)
#define STORE_EVENT_TYPE_MAX 64
#define STORE_EVENT_DATA_MAX (64 * 1024)
/* A time as the database keeps it: YYYY-MM-DDTHH:MM:SS.sssZ. */
#define STORE_TS_LEN 24
#define STORE_LIST_MAX 500
#define STORE_LOG_LIST_DEFAULT 50
/* A log version, "<epoch>.<newest id>" (logs__version): 24 + 1 + 19. */
#define STORE_VERSION_MAX 64
/* Rows one log.append may carry in "rows". */
#define STORE_LOG_BATCH_MAX 256
#define STORE_SESSION_LIST_DEFAULT 100
#define STORE_OFFSET_MAX 1000000000L
#define STORE_INSTANCE_MAX 100
#define STORE_URL_MAX 512
#define STORE_CAPACITY_MAX 10000
#define STORE_SESSIONS_MAX 1000000

/* Placement timing (DESIGN §6). */
#define STORE_HEARTBEAT_MS 2000
#define STORE_DEAD_AFTER_MS 10000

/* ------------------------------------------------------------------ db.c */

/* Schema version this binary migrates to (PRAGMA user_version). */
#define DB_SCHEMA_VERSION 5

/* Every statement, prepared once per connection at open. */
typedef enum db_stmt {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_SESSION_GET,
    ST_SESSION_UPSERT,
    ST_SESSION_LIST,
    ST_SESSION_COUNT,
    ST_LOG_INSERT,
    ST_LOG_LIST,
    ST_LOG_NEWEST,
    ST_LOG_COUNT,
    ST_SEQ_NEXT,
    ST_INSTANCE_UPSERT,
    ST_INSTANCE_HEARTBEAT,
    ST_INSTANCE_LIST,
    ST_INSTANCE_LIVE,
    ST_INSTANCE_COUNT,
    ST_PLACEMENT_GET,
    ST_PLACEMENT_PUT,
    ST_PLACEMENT_USERS,
    ST_PLACEMENT_ORPHANS,
    ST_INSTANCE_SUPERSEDE,
    ST_INSTANCE_LOST,
    ST_INSTANCE_LOST_MARK,
    ST_PLACEMENT_RUNNING,
    ST_RID_GET,
    ST_RID_PUT,
    ST_RID_PRUNE,
    ST_COUNT
} db_stmt_t;

/* One SQLite connection and its statements (NULL where not prepared). */
typedef struct db_conn {
    sqlite3 *h;
    sqlite3_stmt *st[ST_COUNT];
} db_conn_t;

/*
 * The database: a write connection (synchronous=FULL, used by one thread at
 * a time: the writer) and a read-only connection for the bus handlers,
 * serialised by rd_mu. WAL lets the reader run while the writer commits.
 */
typedef struct ckpt ckpt_t;

typedef struct db {
    db_conn_t wr;
    db_conn_t rd;
    pthread_mutex_t rd_mu;
    ckpt_t *ckpt; /* WAL checkpoints, off the writer thread */
    char *path;
} db_t;

/*
 * Open (creating it and its missing parent directories, mode 0700; the file
 * itself 0600) the database at path, set the pragmas, migrate it to
 * DB_SCHEMA_VERSION (each step in its own transaction) and prepare every
 * statement. On failure nothing is left open and err holds one line:
 * WA_ECONFIG when path cannot name a database file (a directory, empty)
 * or names one in a place that cannot be created or written, WA_ESTORAGE
 * otherwise (an I/O error, a corrupt file, a schema newer than ours).
 */
wa_err_t db__open(const char *path, db_t **out, char *err, size_t errlen);

/* Finalize every statement and close both connections. NULL is a no-op. */
void db__close(db_t *db);

/* Schema version of an open connection (for tests), or -1. */
int db__user_version(db_conn_t *c);

/* Lock / unlock the read connection; returns it. */
db_conn_t *db__read_begin(db_t *db);
void db__read_end(db_t *db);

/* Release the page caches of the read connection (under the read lock)
 * and of the checkpoint connection (unless a checkpoint runs). */
void db__release_memory(db_t *db);

/* ---------------------------------------------------------- checkpoint.c */

/*
 * Checkpoints of the WAL on a thread and connection of their own: the
 * write connection's automatic checkpoint is replaced by a commit hook
 * that asks for one past a threshold. err as db__open's.
 */
wa_err_t ckpt__start(const char *path, sqlite3 *writer, ckpt_t **out, char *err,
                     size_t errlen);
void ckpt__release_memory(ckpt_t *c);
/* Checkpoints completed since start (for tests). */
uint64_t ckpt__runs(ckpt_t *c);
/* Stop the thread and close; after the write connection is closed (or its
 * hook removed). NULL is a no-op. */
void ckpt__free(ckpt_t *c);

/* The statement id of c, reset and with its bindings cleared. */
sqlite3_stmt *db__stmt(db_conn_t *c, db_stmt_t id);

/* Step a statement that returns no rows (BEGIN, COMMIT...). Logs. */
wa_err_t db__exec(db_conn_t *c, db_stmt_t id);

/*
 * The translation boundary: log an SQLite failure (rc, what we did, the
 * connection's message) with the thread's current request id, and return
 * WA_ENOMEM for SQLITE_NOMEM, WA_ESTORAGE for everything else.
 */
wa_err_t db__fail(db_conn_t *c, int rc, const char *what);

/* Request id that db__fail logs with on this thread (NULL clears). The
 * pointer must stay valid until replaced. */
void db__set_rid(const char *rid);

/* Bind text, or NULL when s is NULL; SQLITE_STATIC: s must outlive the
 * statement's next reset. */
int db__bind_text(sqlite3_stmt *st, int idx, const char *s);

/* Column i as a JSON string, or JSON null for SQL NULL. NULL on OOM. */
cJSON *db__column_string(sqlite3_stmt *st, int i);

/* Add column i to obj under key, as db__column_string. false on OOM. */
bool db__add_column(cJSON *obj, const char *key, sqlite3_stmt *st, int i);

/* One array item from the statement's current row; NULL on OOM. */
typedef cJSON *(*db_row_fn)(sqlite3_stmt *st, void *arg);

/*
 * Step a bound statement to its end and set *out to {key: [row(st) for
 * each row]} (the caller's). what names the operation in a failure log.
 * The statement is reset either way.
 */
wa_err_t db__list(db_conn_t *c, sqlite3_stmt *st, const char *key,
                  db_row_fn row, void *arg, const char *what, cJSON **out);

/* ------------------------------------------------------------ sessions.c */

/* The statuses of DESIGN §4, NULL-terminated. */
extern const char *const sessions__statuses[];
bool sessions__status_valid(const char *s);

/* One field of an upsert: absent (set false), cleared (value NULL) or set. */
typedef struct session_field {
    bool set;
    const char *value;
} session_field_t;

typedef struct session_update {
    session_field_t status; /* never cleared: a status is always one of six */
    session_field_t phone;
    session_field_t name;
    session_field_t qr;
    session_field_t connected_at;
    session_field_t last_activity;
} session_update_t;

/* The row of user as a session.get object; a user never seen is
 * "disconnected" with nulls. Besides the row: "instanceAlive", whether the
 * user is placed on an instance alive at now_ms (its status is the last
 * one that instance wrote; a dead one writes no more). *out is the
 * caller's. */
wa_err_t sessions__get(db_conn_t *c, const char *user, int64_t now_ms,
                       cJSON **out);

/* Create or update user's row (fields not set are left alone), stamp
 * updated_at (and created_at on insert) with now, and return the row. */
wa_err_t sessions__upsert(db_conn_t *c, const char *user,
                          const session_update_t *u, const char *now,
                          cJSON **out);

/* {sessions:[row + instance + instanceAlive]} ordered by user id; alive as
 * in sessions__get. */
wa_err_t sessions__list(db_conn_t *c, long limit, long offset, int64_t now_ms,
                        cJSON **out);

/* {"disconnected":n, ..., "error":n}: every status, zero when absent. */
wa_err_t sessions__count_by_status(db_conn_t *c, cJSON **out);

/* ---------------------------------------------------------------- logs.c */

/* Append a session_logs row; data_json is JSON text. *id on success. */
wa_err_t logs__append(db_conn_t *c, const char *user, const char *type,
                      const char *data_json, const char *timestamp,
                      int64_t *id);

/* {logs:[{id, eventType, eventData, timestamp}]} newest first. Stored
 * eventData that is not JSON (rows of older writers) comes back as a
 * string. With epoch (not NULL) the answer also carries
 * "version":"<epoch>.<newest id>" (logs__version), read in the same
 * statement as the rows. */
wa_err_t logs__list(db_conn_t *c, const char *user, long limit,
                    const char *epoch, cJSON **out);

/* The id of user's newest row (0 when there is none): with the process's
 * epoch, the version of the user's log. Rows are only ever appended, with
 * rising ids, so the same newest id in the same process means the same
 * rows; a restart (the file may have been replaced) changes the epoch. */
wa_err_t logs__newest(db_conn_t *c, const char *user, int64_t *id);

/* "<epoch>.<id>" into buf; false if it does not fit. */
bool logs__version(const char *epoch, int64_t id, char *buf, size_t len);

/*
 * Number of session_logs rows, counted incrementally: *rows and *max_id
 * hold the previous answer (both 0 the first time) and only rows with a
 * larger id are counted, so a count over millions of rows is paid once.
 * Exact because rows are only ever appended.
 */
wa_err_t logs__count(db_conn_t *c, int64_t *rows, int64_t *max_id);

/* Advance and return user's event sequence (1 for the first event). */
wa_err_t logs__next_seq(db_conn_t *c, const char *user, int64_t *seq);

/* ----------------------------------------------------------- placement.c */

typedef struct placement {
    char instance[STORE_INSTANCE_MAX + 1];
    char url[STORE_URL_MAX + 1];
    char previous[STORE_INSTANCE_MAX + 1]; /* "" unless moved from it */
} placement_t;

/* Rendezvous score of (user, instance): stable across processes. */
uint64_t placement__score(const char *user, const char *instance);

/* The oldest last_seen_ms of an instance still alive at now_ms: the one
 * liveness rule (silent for at most STORE_DEAD_AFTER_MS). */
int64_t placement__alive_since(int64_t now_ms);

/* Register or re-register an instance; it is live as of now_ms. */
wa_err_t placement__register(db_conn_t *c, const char *instance,
                             const char *url, long capacity, int64_t now_ms);

/*
 * instance is live at its URL: any other instance registered at that URL
 * and silent for STORE_SUPERSEDED_MS is the process it replaced (a restart
 * under a new id: INSTANCE_ID's default, hostname-pid, changes with every
 * start; only one process listens on a URL). Such an instance is dead from
 * now on, so that placement__rescue moves its users at once; *superseded
 * counts them. Called at each register and heartbeat, so a restart faster
 * than STORE_SUPERSEDED_MS is caught at the newcomer's next heartbeat. An
 * instance that heartbeats (every STORE_HEARTBEAT_MS) is never taken for
 * gone, whatever its URL.
 */
#define STORE_SUPERSEDED_MS 3000
wa_err_t placement__supersede(db_conn_t *c, const char *instance,
                              int64_t now_ms, int *superseded);

/* Record a heartbeat. WA_ENOTFOUND if the instance is unknown or was
 * already dead (silent > STORE_DEAD_AFTER_MS): it must register again. */
wa_err_t placement__heartbeat(db_conn_t *c, const char *instance, long sessions,
                              int64_t now_ms);

/* {instances:[{instance, url, capacity, sessions, lastSeen, alive}]} */
wa_err_t placement__instances(db_conn_t *c, int64_t now_ms, cJSON **out);

/* {total, alive} instance counts for diag. */
wa_err_t placement__instance_counts(db_conn_t *c, int64_t now_ms, cJSON **out);

/* user's placement if its instance is live; WA_ENOTFOUND otherwise. */
wa_err_t placement__lookup(db_conn_t *c, const char *user, int64_t now_ms,
                           placement_t *out);

/*
 * The live instance that owns user, placing (or moving, away from a dead
 * owner) the user on the live instance with room that scores highest.
 * Writes: call inside a transaction. WA_ENOSESSIONSVC if none has room.
 */
wa_err_t placement__resolve(db_conn_t *c, const char *user, int64_t now_ms,
                            const char *now_iso, placement_t *out);

/* {users:[...]} placed on instance, ordered. */
wa_err_t placement__users(db_conn_t *c, const char *instance, cJSON **out);

/*
 * Users placed on an instance silent for STORE_RESCUE_AFTER_MS whose
 * session is not disconnected are placed anew (placement__resolve), at
 * most STORE_RESCUE_BATCH a call, while a live instance has room; *moved
 * counts them, each move logged with rid. The new owner finds them at its
 * next placement check and relaunches them: a dead instance's users come
 * back without waiting for a request of their own. The wait past
 * STORE_DEAD_AFTER_MS lets an instance that restarts slowly (a whole
 * stack brought up again) keep its users. Writes: inside a transaction.
 */
#define STORE_RESCUE_AFTER_MS 30000
#define STORE_RESCUE_BATCH 16
wa_err_t placement__rescue(db_conn_t *c, int64_t now_ms, const char *now_iso,
                           const char *rid, int *moved);

/*
 * Report dead instances to their users: every instance dead (silent past
 * STORE_DEAD_AFTER_MS, not superseded) that was not reported since it
 * last registered is marked reported, and the users placed on it whose
 * stored session was running there (initializing, qr, authenticated,
 * ready) are appended to users (a JSON array), at most
 * STORE_LOST_INSTANCES instances and STORE_LOST_USERS users a call. Each
 * death is reported once: the live instance whose heartbeat found it
 * tells those users (session-svc's registry.c). Writes: inside a
 * transaction.
 */
#define STORE_LOST_INSTANCES 4
#define STORE_LOST_USERS 1024
wa_err_t placement__lost(db_conn_t *c, int64_t now_ms, cJSON *users);

/* -------------------------------------------------------------- writer.c */

typedef struct writer writer_t;
typedef struct writer_job writer_job_t;

/*
 * A mutation for the writer thread. exec runs inside the batch's
 * transaction (in its own savepoint, so a failing job undoes only itself);
 * done runs once the batch is committed (err WA_OK) or failed, on the
 * writer's answering thread, and may free the job. A job is never touched
 * after done.
 */
struct writer_job {
    writer_job_t *next;
    wa_err_t (*exec)(writer_job_t *job, db_conn_t *c);
    void (*done)(writer_job_t *job, wa_err_t err);
    const char *rid; /* for logs; may be NULL */
    wa_err_t err;    /* the writer's: exec's result, then the commit's */
};

typedef struct writer_stats {
    uint64_t batches; /* committed transactions */
    uint64_t jobs;    /* jobs run */
    uint64_t max_batch;
} writer_stats_t;

/* Start the writer thread (and its answering thread) on db's write
 * connection. */
wa_err_t writer__start(db_t *db, writer_t **out);

/* Queue job. WA_ECLOSED once writer__stop has begun (job not taken).
 * Thread-safe. */
wa_err_t writer__submit(writer_t *w, writer_job_t *job);

/* Refuse new jobs (writer__submit says WA_ECLOSED), run every queued one
 * and join the thread. Idempotent; w stays valid until writer__free. */
void writer__stop(writer_t *w);

/* Stop if needed, then free. NULL is a no-op. */
void writer__free(writer_t *w);

void writer__stats(writer_t *w, writer_stats_t *out);

/* Have the writer thread release its connection's page cache
 * (sqlite3_db_release_memory), and wait until it did; at once if the
 * writer is stopped. NULL is a no-op. */
void writer__release_memory(writer_t *w);

/* ---------------------------------------------------------------- idem.c */

typedef struct idem idem_t;

typedef enum idem_state {
    IDEM_NEW,      /* reserved for the caller, who must idem__end it */
    IDEM_DONE,     /* answered before: *reply holds the data (JSON text) */
    IDEM_PENDING,  /* the first is still running: waiter will be called */
    IDEM_MISMATCH, /* the rid was used for a different request */
} idem_state_t;

/* Called by idem__end for each duplicate that waited, outside the lock. */
typedef void (*idem_waiter_fn)(void *waiter, void *arg);

/*
 * A cache of at most max_entries completed replies (and max_bytes of reply
 * text), each kept ttl_ms. Keys are (op, user, rid); fp fingerprints the
 * arguments. Thread-safe.
 */
wa_err_t idem__new(size_t max_entries, size_t max_bytes, int64_t ttl_ms,
                   idem_t **out);
void idem__free(idem_t *c);

/*
 * Look (op, user, rid) up at now_ms and reserve it if absent. DONE sets
 * *reply (malloc'd, the caller frees). PENDING attaches waiter (non-NULL)
 * to the running request. WA_ENOMEM leaves nothing reserved.
 */
wa_err_t idem__begin(idem_t *c, wa_op_t op, const char *user, const char *rid,
                     uint64_t fp, void *waiter, int64_t now_ms,
                     idem_state_t *state, char **reply);

/*
 * Finish a reservation: reply (JSON text, copied) is kept for later
 * duplicates, or with reply NULL (the request failed) the key is forgotten
 * so a retry runs again. Then fn(waiter, arg) for each waiter.
 */
void idem__end(idem_t *c, wa_op_t op, const char *user, const char *rid,
               const char *reply, int64_t now_ms, idem_waiter_fn fn, void *arg);

/* Completed entries held (for tests and diag). */
size_t idem__size(idem_t *c);

/* ---------------------------------------------------------------- rids.c */

/* How long the answer of a durable write is kept in the database: far
 * beyond any client's retry of one logical request. */
#define STORE_RID_KEEP_MS (24LL * 3600 * 1000)

/*
 * The durable side of idempotency, on the writer connection inside the
 * write's transaction: a write that must never run twice (a log row, an
 * event's seq) stores its answer with its (op, user, rid) in the same
 * commit, so a resend after a crash or restart of store-svc, which the
 * in-memory idem cache has forgotten, still gets the first answer.
 */

/* WA_OK with *reply (malloc'd JSON text) and *fp if (op, user, rid) was
 * answered before; WA_ENOTFOUND if not. */
wa_err_t rids__get(db_conn_t *c, wa_op_t op, const char *user, const char *rid,
                   uint64_t *fp, char **reply);

/* Record the answer (JSON text) of (op, user, rid) at now_ms. */
wa_err_t rids__put(db_conn_t *c, wa_op_t op, const char *user, const char *rid,
                   uint64_t fp, const char *reply, int64_t now_ms);

/* Forget answers recorded before before_ms; *deleted is how many. */
wa_err_t rids__prune(db_conn_t *c, int64_t before_ms, int *deleted);

/* --------------------------------------------------------------- store.c */

/* Wall clock in milliseconds since the epoch; injectable for tests. */
typedef int64_t (*store_clock_fn)(void);

typedef struct store_opts {
    const char *db_path;
    store_clock_fn now_ms; /* NULL = CLOCK_REALTIME */
} store_opts_t;

typedef struct store_stats {
    _Atomic uint64_t idem_hits;    /* duplicates answered from the cache */
    _Atomic uint64_t idem_waiters; /* duplicates that waited for the first */
} store_stats_t;

typedef struct store {
    db_t *db;
    writer_t *writer;
    idem_t *idem;
    store_clock_fn now_ms;
    long long started_ms;       /* monotonic */
    int64_t log_rows;           /* logs__count state, under the read lock */
    char epoch[WA_RID_MAX + 1]; /* this process's: versions of the logs */
    int64_t log_max_id;
    int64_t rids_pruned_ms; /* rids__prune's last run; writer thread only */
    store_stats_t stats;
} store_t;

/* Open the database, start the writer, make the rid cache. err as
 * db__open's. */
wa_err_t store__open(const store_opts_t *opts, store_t **out, char *err,
                     size_t errlen);

/* Finish every queued write and refuse further operations with
 * WA_ECLOSED; then no job is held and the bus server may be stopped. */
void store__quiesce(store_t *st);

/* Quiesce if needed, then free everything. NULL is a no-op. */
void store__close(store_t *st);

/* Give back the memory of SQLite's page caches (pages are read again from
 * the file, or the OS's cache of it, when next needed): for an idle store,
 * with wa_service_trim_when_idle. arg is the store_t. Thread-safe. */
void store__release_memory(void *arg);

/* ----------------------------------------------------------------- ops.c */

/* The wa_bus_handler_fn of store-svc; arg is the store_t. */
void ops__handle(void *arg, wa_bus_job_t *job);

#endif /* STORE_STORE_H */
