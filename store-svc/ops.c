/*
 * ops.c - the bus operations of store-svc (docs/architecture.md, "Bus
 * operations"): argument checks, then a read on the read connection or a
 * write through the writer thread.
 *
 * Every argument is checked here, before anything touches the database:
 * types, lengths, charsets, ranges; unknown or repeated fields are refused.
 * A failed check answers WA_EINVAL with a message naming the field (never
 * echoing its value). Writes are idempotent by (op, user, rid) (idem.c) and
 * answered only after their transaction committed (writer.c).
 *
 * Logging: the request id always; field names and error codes; never
 * bodies, QR codes or event data.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "wa/hash.h"
#include "wa/log.h"
#include "wa/service.h"

typedef struct call call_t;

typedef struct op_desc {
    wa_op_t op;
    bool needs_user;
    const char *const *fields; /* allowed args, NULL-terminated; NULL: none */
    wa_err_t (*parse)(call_t *c);
    /* A read, on the read connection. For a write, an optional fast path:
     * WA_ENOTFOUND from it sends the request on to exec. */
    wa_err_t (*read)(call_t *c, db_conn_t *conn);
    /* A write, on the writer thread inside its transaction. */
    wa_err_t (*exec)(call_t *c, db_conn_t *conn);
    /* A write that must never run twice: its answer is kept in the
     * database with its rid (rids.c), not only in the idem cache. */
    bool durable;
} op_desc_t;

/* One request being served; on the heap while it waits for the writer. */
struct call {
    writer_job_t wj; /* first member: the writer's handle */
    store_t *st;
    wa_bus_job_t *job;
    const wa_request_t *req; /* valid until the job is answered */
    const op_desc_t *desc;
    union {
        session_update_t upsert;
        struct {
            const char *type;
        } log;
        struct {
            const char *instance;
            const char *url;
            long capacity;
        } reg;
        struct {
            const char *instance;
            long sessions;
        } inst; /* instance.heartbeat, placement.list */
        struct {
            long limit;
            long offset;
            const char *if_changed; /* log.list: a version, or NULL */
        } list;
    } a;
    char ts[2][STORE_TS_LEN + 1]; /* session.upsert: its two times, kept
                                     in the database's one form (the
                                     update points at the request's) */
    char *data_json; /* log.append, event.record: the data as JSON text */
    /* log.append with "rows": each row's type (in args) and data as JSON */
    struct {
        const char **type;
        char **data;
        int n;
    } rows;
    cJSON *result;
    uint64_t fp;      /* fingerprint of args (writes) */
    char *reply_text; /* result as JSON text, once printed */
    wa_err_t err;
    char msg[WA_MESSAGE_MAX + 1];
};

static wa_err_t invalid(call_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static wa_err_t invalid(call_t *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
    va_end(ap);
    return WA_EINVAL;
}

/* ---- argument checks ---- */

/* Bytes of s to show in a message: at most max, cut on a UTF-8 boundary
 * (the reply must stay valid UTF-8). */
static int shown(const char *s, size_t max)
{
    return (int)wa_utf8_prefix(s, max);
}

/* Only fields from allowed, each at most once. */
static wa_err_t check_fields(call_t *c)
{
    const char *const *allowed = c->desc->fields;
    unsigned seen = 0;
    int i;

    for (const cJSON *m = c->req->args->child; m != NULL; m = m->next) {
        for (i = 0; allowed != NULL && allowed[i] != NULL; i++) {
            if (strcmp(m->string, allowed[i]) == 0)
                break;
        }
        if (allowed == NULL || allowed[i] == NULL)
            return invalid(c, "unknown field \"%.*s\" for %s",
                           shown(m->string, 64), m->string,
                           wa_op_name(c->req->op));
        if (seen & (1u << i))
            return invalid(c, "%s: given more than once", allowed[i]);
        seen |= 1u << i;
    }
    return WA_OK;
}

static const cJSON *arg(const call_t *c, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(c->req->args, name);
}

/* An integer field: absent gives def (or fails when required). */
static wa_err_t int_arg(call_t *c, const char *name, bool required, long def,
                        long lo, long hi, long *out)
{
    const cJSON *v = arg(c, name);
    double d;

    if (v == NULL) {
        if (required)
            return invalid(c, "%s: required", name);
        *out = def;
        return WA_OK;
    }
    d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return invalid(c, "%s: must be an integer in %ld..%ld", name, lo, hi);
    *out = (long)d;
    return WA_OK;
}

/* Are all bytes of s in [lo, hi]? */
static bool bytes_in(const char *s, unsigned char lo, unsigned char hi)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < lo || (unsigned char)*s > hi)
            return false;
    }
    return true;
}

/* No C0 controls and no DEL; UTF-8 validity was checked by the decoder. */
static bool no_controls(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

/* "+41791234567" or "41791234567": E.164 digits, an optional '+'. */
static bool phone_valid(const char *s)
{
    size_t len = strlen(s), i = s[0] == '+';

    if (len > STORE_PHONE_MAX || len == i)
        return false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

static bool digits(const char *s, int n)
{
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/*
 * An ISO-8601 UTC time, YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z with every field in
 * range (a real calendar day, no leap second), written to out in the one
 * form the database keeps: YYYY-MM-DDTHH:MM:SS.sssZ (the fraction cut or
 * padded to milliseconds).
 */
static bool timestamp_normalize(const char *s, char out[STORE_TS_LEN + 1])
{
    size_t len = strlen(s), i = 19, f;
    int y, mo;

    if (len < 20 || len > WA_TIMESTAMP_MAX || !digits(s, 4) || s[4] != '-' ||
        !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) || s[10] != 'T' ||
        !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) ||
        s[16] != ':' || !digits(s + 17, 2))
        return false;
    if (s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            ;
        if (i == 20 || i > 29)
            return false;
    }
    if (i != len - 1 || s[i] != 'Z')
        return false;
    y = atoi(s);
    mo = atoi(s + 5);
    if (mo < 1 || mo > 12 || atoi(s + 8) < 1 ||
        atoi(s + 8) > days_in_month(y, mo) || atoi(s + 11) > 23 ||
        atoi(s + 14) > 59 || atoi(s + 17) > 59)
        return false;
    memcpy(out, s, 19);
    out[19] = '.';
    for (f = 0; f < 3; f++)
        out[20 + f] = 20 + f < i ? s[20 + f] : '0';
    out[23] = 'Z';
    out[24] = '\0';
    return true;
}

static bool event_type_valid(const char *s)
{
    size_t len = strlen(s);

    if (len < 1 || len > STORE_EVENT_TYPE_MAX)
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || *s == '_' || *s == '.'))
            return false;
    }
    return true;
}

static bool instance_valid(const char *s)
{
    size_t len = strlen(s);

    return len >= 1 && len <= STORE_INSTANCE_MAX && bytes_in(s, 0x20, 0x7e);
}

static bool url_valid(const char *s)
{
    static const char *const schemes[] = {"tcp://", "ipc://", "inproc://"};
    size_t len = strlen(s);

    if (len > STORE_URL_MAX || !bytes_in(s, 0x21, 0x7e))
        return false;
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        size_t n = strlen(schemes[i]);

        if (len > n && strncmp(s, schemes[i], n) == 0)
            return true;
    }
    return false;
}

/* A string field that must be present. */
static wa_err_t string_arg(call_t *c, const char *name, const char **out)
{
    const cJSON *v = arg(c, name);

    if (v == NULL)
        return invalid(c, "%s: required", name);
    if (!cJSON_IsString(v))
        return invalid(c, "%s: must be a string", name);
    *out = v->valuestring;
    return WA_OK;
}

/* An optional upsert field: absent, null (clears) or a string. */
static wa_err_t field_arg(call_t *c, const char *name, bool nullable,
                          session_field_t *f)
{
    const cJSON *v = arg(c, name);

    f->set = v != NULL;
    f->value = NULL;
    if (v == NULL || (nullable && cJSON_IsNull(v)))
        return WA_OK;
    if (!cJSON_IsString(v))
        return invalid(c,
                       nullable ? "%s: must be a string or null"
                                : "%s: must be a string",
                       name);
    f->value = v->valuestring;
    return WA_OK;
}

/* args.name as JSON text of at most max bytes into c->data_json. */
/* v as JSON text of at most max bytes into *out (the caller frees it, also
 * on failure); name is the field, for the message. */
static wa_err_t json_text(call_t *c, const char *name, const cJSON *v,
                          size_t max, char **out)
{
    if ((*out = cJSON_PrintUnformatted(v)) == NULL)
        return WA_ENOMEM;
    if (strlen(*out) > max)
        return invalid(c, "%s: must be at most %zu bytes of JSON", name, max);
    return WA_OK;
}

static wa_err_t json_arg(call_t *c, const char *name, bool object, size_t max)
{
    const cJSON *v = arg(c, name);

    if (v == NULL)
        return invalid(c, "%s: required", name);
    if (object && !cJSON_IsObject(v))
        return invalid(c, "%s: must be an object", name);
    return json_text(c, name, v, max, &c->data_json);
}

/* ---- parse: check and convert each operation's args ---- */

static const char *const f_upsert[] = {
    "status",      "phoneNumber",  "displayName", "qrCode",
    "connectedAt", "lastActivity", NULL,
};
static const char *const f_page[] = {"limit", "offset", NULL};
static const char *const f_log_list[] = {"limit", "ifChanged", NULL};
static const char *const f_log[] = {"eventType", "eventData", "rows", NULL};
static const char *const f_event[] = {"type", "data", NULL};
static const char *const f_register[] = {"instance", "url", "capacity", NULL};
static const char *const f_beat[] = {"instance", "sessions", NULL};
static const char *const f_instance[] = {"instance", NULL};
static const char *const f_claim[] = {"nonce", NULL};

static wa_err_t parse_upsert(call_t *c)
{
    session_update_t *u = &c->a.upsert;
    wa_err_t e;

    if ((e = field_arg(c, "status", false, &u->status)) != WA_OK ||
        (e = field_arg(c, "phoneNumber", true, &u->phone)) != WA_OK ||
        (e = field_arg(c, "displayName", true, &u->name)) != WA_OK ||
        (e = field_arg(c, "qrCode", true, &u->qr)) != WA_OK ||
        (e = field_arg(c, "connectedAt", true, &u->connected_at)) != WA_OK ||
        (e = field_arg(c, "lastActivity", true, &u->last_activity)) != WA_OK)
        return e;
    if (u->status.set && !sessions__status_valid(u->status.value))
        return invalid(c, "status: must be one of disconnected, "
                          "initializing, qr, authenticated, ready, error");
    if (u->phone.value != NULL && !phone_valid(u->phone.value))
        return invalid(c,
                       "phoneNumber: must be an optional '+' and 1..%d "
                       "digits",
                       STORE_PHONE_MAX - 1);
    if (u->name.value != NULL &&
        (strlen(u->name.value) > STORE_NAME_MAX || !no_controls(u->name.value)))
        return invalid(c,
                       "displayName: must be at most %d bytes without "
                       "control characters",
                       STORE_NAME_MAX);
    if (u->qr.value != NULL &&
        (u->qr.value[0] == '\0' || strlen(u->qr.value) > STORE_QR_MAX ||
         !bytes_in(u->qr.value, 0x20, 0x7e)))
        return invalid(c, "qrCode: must be 1..%d bytes of printable ASCII",
                       STORE_QR_MAX);
    /* The normalized times go to ts; exec_upsert writes them. */
    if (u->connected_at.value != NULL &&
        !timestamp_normalize(u->connected_at.value, c->ts[0]))
        return invalid(c, "connectedAt: must be an ISO-8601 UTC time "
                          "(YYYY-MM-DDTHH:MM:SS.sssZ)");
    if (u->last_activity.value != NULL &&
        !timestamp_normalize(u->last_activity.value, c->ts[1]))
        return invalid(c, "lastActivity: must be an ISO-8601 UTC time "
                          "(YYYY-MM-DDTHH:MM:SS.sssZ)");
    return WA_OK;
}

static wa_err_t parse_session_list(call_t *c)
{
    wa_err_t e;

    if ((e = int_arg(c, "limit", false, STORE_SESSION_LIST_DEFAULT, 1,
                     STORE_LIST_MAX, &c->a.list.limit)) != WA_OK)
        return e;
    return int_arg(c, "offset", false, 0, 0, STORE_OFFSET_MAX,
                   &c->a.list.offset);
}

/* ifChanged: "" (the caller holds no answer yet) or a version from an
 * earlier answer, which is printable ASCII; only compared, never parsed. */
static wa_err_t parse_log_list(call_t *c)
{
    const char *v = NULL;
    wa_err_t e;

    if ((e = int_arg(c, "limit", false, STORE_LOG_LIST_DEFAULT, 1,
                     STORE_LIST_MAX, &c->a.list.limit)) != WA_OK)
        return e;
    c->a.list.if_changed = NULL;
    if (arg(c, "ifChanged") == NULL)
        return WA_OK;
    if ((e = string_arg(c, "ifChanged", &v)) != WA_OK)
        return e;
    if (strlen(v) > STORE_VERSION_MAX || !bytes_in(v, 0x21, 0x7e))
        return invalid(c, "ifChanged: must be a version from an earlier "
                          "log.list answer");
    c->a.list.if_changed = v;
    return WA_OK;
}

static wa_err_t check_event_type(call_t *c, const char *name, const char *type)
{
    if (!event_type_valid(type))
        return invalid(c, "%s: must be 1..%d characters of a-z, '_' and '.'",
                       name, STORE_EVENT_TYPE_MAX);
    return WA_OK;
}

/* One row of "rows": {"eventType","eventData"}, nothing else. */
static wa_err_t parse_log_row(call_t *c, const cJSON *row, int i)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(row, "eventType");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(row, "eventData");
    char name[48];
    wa_err_t e;

    if (!cJSON_IsObject(row) || cJSON_GetArraySize(row) != 2 ||
        !cJSON_IsString(type) || data == NULL)
        return invalid(c,
                       "rows[%d]: must be an object of exactly eventType "
                       "(a string) and eventData",
                       i);
    snprintf(name, sizeof(name), "rows[%d].eventType", i);
    if ((e = check_event_type(c, name, type->valuestring)) != WA_OK)
        return e;
    c->rows.type[i] = type->valuestring;
    snprintf(name, sizeof(name), "rows[%d].eventData", i);
    return json_text(c, name, data, STORE_EVENT_DATA_MAX, &c->rows.data[i]);
}

/* "rows": 1..STORE_LOG_BATCH_MAX rows, appended in one transaction. */
static wa_err_t parse_log_rows(call_t *c, const cJSON *rows)
{
    int n = cJSON_GetArraySize(rows), i = 0;
    wa_err_t e;

    if (arg(c, "eventType") != NULL || arg(c, "eventData") != NULL)
        return invalid(c, "rows: give either rows or eventType and "
                          "eventData, not both");
    if (!cJSON_IsArray(rows) || n < 1 || n > STORE_LOG_BATCH_MAX)
        return invalid(c, "rows: must be an array of 1..%d rows",
                       STORE_LOG_BATCH_MAX);
    c->rows.type = calloc((size_t)n, sizeof(*c->rows.type));
    c->rows.data = calloc((size_t)n, sizeof(*c->rows.data));
    if (c->rows.type == NULL || c->rows.data == NULL)
        return WA_ENOMEM;
    c->rows.n = n;
    for (const cJSON *row = rows->child; row != NULL; row = row->next, i++) {
        if ((e = parse_log_row(c, row, i)) != WA_OK)
            return e;
    }
    return WA_OK;
}

static wa_err_t parse_log_append(call_t *c)
{
    const cJSON *rows = arg(c, "rows");
    wa_err_t e;

    if (rows != NULL)
        return parse_log_rows(c, rows);
    if ((e = string_arg(c, "eventType", &c->a.log.type)) != WA_OK ||
        (e = check_event_type(c, "eventType", c->a.log.type)) != WA_OK)
        return e;
    return json_arg(c, "eventData", false, STORE_EVENT_DATA_MAX);
}

static wa_err_t parse_event_record(call_t *c)
{
    wa_event_type_t type;
    wa_err_t e;

    if ((e = string_arg(c, "type", &c->a.log.type)) != WA_OK)
        return e;
    /* resync is the notifier's own frame: never recorded. */
    if (wa_event_type_from_name(c->a.log.type, &type) != WA_OK ||
        type == WA_EV_RESYNC)
        return invalid(c, "type: must be one of status, qr, ready, message, "
                          "disconnected, error");
    return json_arg(c, "data", true, STORE_EVENT_DATA_MAX);
}

static wa_err_t parse_instance(call_t *c, const char **out)
{
    wa_err_t e;

    if ((e = string_arg(c, "instance", out)) != WA_OK)
        return e;
    if (!instance_valid(*out))
        return invalid(c,
                       "instance: must be 1..%d printable ASCII "
                       "characters",
                       STORE_INSTANCE_MAX);
    return WA_OK;
}

static wa_err_t parse_register(call_t *c)
{
    wa_err_t e;

    if ((e = parse_instance(c, &c->a.reg.instance)) != WA_OK ||
        (e = string_arg(c, "url", &c->a.reg.url)) != WA_OK)
        return e;
    if (!url_valid(c->a.reg.url))
        return invalid(c,
                       "url: must be a tcp://, ipc:// or inproc:// "
                       "address of at most %d characters",
                       STORE_URL_MAX);
    return int_arg(c, "capacity", true, 0, 1, STORE_CAPACITY_MAX,
                   &c->a.reg.capacity);
}

static wa_err_t parse_heartbeat(call_t *c)
{
    wa_err_t e;

    if ((e = parse_instance(c, &c->a.inst.instance)) != WA_OK)
        return e;
    return int_arg(c, "sessions", true, 0, 0, STORE_SESSIONS_MAX,
                   &c->a.inst.sessions);
}

static wa_err_t parse_placement_list(call_t *c)
{
    return parse_instance(c, &c->a.inst.instance);
}

/* send.claim: the caller's attempt, told apart from any earlier one by a
 * nonce of its own; its rid is the send's. */
static wa_err_t parse_send_claim(call_t *c)
{
    const char *nonce = NULL;
    wa_err_t e;

    if ((e = string_arg(c, "nonce", &nonce)) != WA_OK)
        return e;
    if (!instance_valid(nonce))
        return invalid(c, "nonce: must be 1..%d printable ASCII characters",
                       STORE_INSTANCE_MAX);
    return WA_OK;
}

/* ---- reads ---- */

static wa_err_t read_ping(call_t *c, db_conn_t *conn)
{
    (void)conn;
    if ((c->result = cJSON_CreateObject()) == NULL ||
        !cJSON_AddStringToObject(c->result, "service", STORE_SERVICE) ||
        !cJSON_AddStringToObject(c->result, "version", WA_VERSION))
        return WA_ENOMEM;
    return WA_OK;
}

static wa_err_t read_session_get(call_t *c, db_conn_t *conn)
{
    return sessions__get(conn, c->req->user, c->st->now_ms(), &c->result);
}

static wa_err_t read_session_list(call_t *c, db_conn_t *conn)
{
    return sessions__list(conn, c->a.list.limit, c->a.list.offset,
                          c->st->now_ms(), &c->result);
}

/*
 * With ifChanged, the answer carries the log's version, and is only
 * {"unchanged":true,"version":v} when the caller's version is still the
 * log's: one index probe instead of the rows (a client that polls GET /logs
 * mostly reads what it read before; the gateway keeps the answer).
 */
static wa_err_t read_log_list(call_t *c, db_conn_t *conn)
{
    const char *known = c->a.list.if_changed;
    char version[STORE_VERSION_MAX + 1];
    int64_t newest;
    wa_err_t e;

    if (known == NULL)
        return logs__list(conn, c->req->user, c->a.list.limit, NULL,
                          &c->result);
    if ((e = logs__newest(conn, c->req->user, &newest)) != WA_OK)
        return e;
    if (!logs__version(c->st->epoch, newest, version, sizeof(version)))
        return WA_EINVAL;
    if (strcmp(known, version) != 0)
        return logs__list(conn, c->req->user, c->a.list.limit, c->st->epoch,
                          &c->result);
    if ((c->result = cJSON_CreateObject()) == NULL ||
        !cJSON_AddBoolToObject(c->result, "unchanged", true) ||
        !cJSON_AddStringToObject(c->result, "version", version))
        return WA_ENOMEM;
    return WA_OK;
}

static wa_err_t read_instance_list(call_t *c, db_conn_t *conn)
{
    return placement__instances(conn, c->st->now_ms(), &c->result);
}

static wa_err_t placement_result(call_t *c, const placement_t *p)
{
    if ((c->result = cJSON_CreateObject()) == NULL ||
        !cJSON_AddStringToObject(c->result, "instance", p->instance) ||
        !cJSON_AddStringToObject(c->result, "url", p->url))
        return WA_ENOMEM;
    return WA_OK;
}

/* The common case: the user is placed on a live instance, no write. */
static wa_err_t read_placement_resolve(call_t *c, db_conn_t *conn)
{
    placement_t p;
    wa_err_t e;

    if ((e = placement__lookup(conn, c->req->user, c->st->now_ms(), &p)) !=
        WA_OK)
        return e;
    return placement_result(c, &p);
}

static wa_err_t read_placement_list(call_t *c, db_conn_t *conn)
{
    return placement__users(conn, c->a.inst.instance, &c->result);
}

/* Bytes of the database file and its WAL. */
static double db_bytes(const char *path)
{
    char wal[4200];
    struct stat sb;
    double n = 0;

    if (stat(path, &sb) == 0)
        n += (double)sb.st_size;
    snprintf(wal, sizeof(wal), "%s-wal", path);
    if (stat(wal, &sb) == 0)
        n += (double)sb.st_size;
    return n;
}

static wa_err_t read_diag(call_t *c, db_conn_t *conn)
{
    cJSON *by_status = NULL, *instances = NULL;
    wa_err_t e;

    /* The read lock is held: the count state is ours. */
    if ((e = sessions__count_by_status(conn, &by_status)) != WA_OK ||
        (e = logs__count(conn, &c->st->log_rows, &c->st->log_max_id)) !=
            WA_OK ||
        (e = placement__instance_counts(conn, c->st->now_ms(), &instances)) !=
            WA_OK)
        goto fail;
    e = WA_ENOMEM;
    if ((c->result = cJSON_CreateObject()) == NULL ||
        !cJSON_AddStringToObject(c->result, "version", WA_VERSION) ||
        !cJSON_AddNumberToObject(c->result, "uptimeMs",
                                 (double)(wa_now_ms() - c->st->started_ms)))
        goto fail;
    if (!cJSON_AddItemToObject(c->result, "sessionsByStatus", by_status))
        goto fail;
    by_status = NULL;
    if (!cJSON_AddNumberToObject(c->result, "logRows",
                                 (double)c->st->log_rows) ||
        !cJSON_AddItemToObject(c->result, "instances", instances))
        goto fail;
    instances = NULL;
    if (!cJSON_AddNumberToObject(c->result, "dbBytes",
                                 db_bytes(c->st->db->path)))
        goto fail;
    return WA_OK;
fail:
    cJSON_Delete(by_status);
    cJSON_Delete(instances);
    return e;
}

/* ---- writes (on the writer thread) ---- */

/*
 * The times as parse_upsert normalized them, from this call's own ts:
 * parse ran on ops__handle's stack copy of the call, so a pointer it had
 * kept to that copy's ts would read a frame long gone here, on the writer
 * thread (it did: intermittent invalid_utf8 answers and wrong times under
 * concurrent upserts, until 2026-11-26).
 */
static wa_err_t exec_upsert(call_t *c, db_conn_t *conn)
{
    session_update_t u = c->a.upsert;
    char now[WA_TIMESTAMP_MAX + 1];

    if (u.connected_at.value != NULL)
        u.connected_at.value = c->ts[0];
    if (u.last_activity.value != NULL)
        u.last_activity.value = c->ts[1];
    wa_timestamp_now(now, sizeof(now));
    return sessions__upsert(conn, c->req->user, &u, now, &c->result);
}

/* "rows": every row in this transaction; {"ids":[...],"timestamp"}. */
static wa_err_t exec_log_rows(call_t *c, db_conn_t *conn, const char *now)
{
    cJSON *ids;
    int64_t id;
    wa_err_t e;

    if ((c->result = cJSON_CreateObject()) == NULL ||
        (ids = cJSON_AddArrayToObject(c->result, "ids")) == NULL ||
        !cJSON_AddStringToObject(c->result, "timestamp", now))
        return WA_ENOMEM;
    for (int i = 0; i < c->rows.n; i++) {
        if ((e = logs__append(conn, c->req->user, c->rows.type[i],
                              c->rows.data[i], now, &id)) != WA_OK)
            return e;
        if (!cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)id)))
            return WA_ENOMEM;
    }
    return WA_OK;
}

static wa_err_t exec_log_append(call_t *c, db_conn_t *conn)
{
    char now[WA_TIMESTAMP_MAX + 1];
    int64_t id;
    wa_err_t e;

    wa_timestamp_now(now, sizeof(now));
    if (c->rows.n > 0)
        return exec_log_rows(c, conn, now);
    if ((e = logs__append(conn, c->req->user, c->a.log.type, c->data_json, now,
                          &id)) != WA_OK)
        return e;
    if ((c->result = cJSON_CreateObject()) == NULL ||
        !cJSON_AddNumberToObject(c->result, "id", (double)id) ||
        !cJSON_AddStringToObject(c->result, "timestamp", now))
        return WA_ENOMEM;
    return WA_OK;
}

static wa_err_t exec_event_record(call_t *c, db_conn_t *conn)
{
    char now[WA_TIMESTAMP_MAX + 1];
    int64_t seq, id;
    wa_err_t e;

    wa_timestamp_now(now, sizeof(now));
    if ((e = logs__next_seq(conn, c->req->user, &seq)) != WA_OK ||
        (e = logs__append(conn, c->req->user, c->a.log.type, c->data_json, now,
                          &id)) != WA_OK)
        return e;
    if ((c->result = cJSON_CreateObject()) == NULL ||
        !cJSON_AddNumberToObject(c->result, "seq", (double)seq) ||
        !cJSON_AddNumberToObject(c->result, "id", (double)id) ||
        !cJSON_AddStringToObject(c->result, "timestamp", now))
        return WA_ENOMEM;
    return WA_OK;
}

/* After a register or heartbeat of c's instance: instances it replaced at
 * its URL are dead from now on (placement__supersede), and a few users of
 * long dead ones are placed anew (placement__rescue). A failure in either
 * is logged, and the register or heartbeat stands. */
static void move_dead_ones_users(call_t *c, db_conn_t *conn,
                                 const char *instance)
{
    char now[WA_TIMESTAMP_MAX + 1];
    int n = 0;

    if (placement__supersede(conn, instance, c->st->now_ms(), &n) == WA_OK &&
        n > 0)
        wa_info(c->req->rid,
                "instance %s replaces %d silent instance(s) at its URL: "
                "their users move now",
                instance, n);
    wa_timestamp_now(now, sizeof(now));
    (void)placement__rescue(conn, c->st->now_ms(), now, c->req->rid, &n);
}

static wa_err_t exec_register(call_t *c, db_conn_t *conn)
{
    wa_err_t e;

    if ((e = placement__register(conn, c->a.reg.instance, c->a.reg.url,
                                 c->a.reg.capacity, c->st->now_ms())) != WA_OK)
        return e;
    wa_info(c->req->rid, "instance %s registered at %s, capacity %ld",
            c->a.reg.instance, c->a.reg.url, c->a.reg.capacity);
    /* If it replaced the one that was there, that one's users move now,
     * and its placement.list, the next call, already has its share. */
    move_dead_ones_users(c, conn, c->a.reg.instance);
    if ((c->result = cJSON_CreateObject()) == NULL ||
        !cJSON_AddNumberToObject(c->result, "heartbeatMs",
                                 STORE_HEARTBEAT_MS) ||
        !cJSON_AddNumberToObject(c->result, "deadAfterMs", STORE_DEAD_AFTER_MS))
        return WA_ENOMEM;
    return WA_OK;
}

static wa_err_t exec_heartbeat(call_t *c, db_conn_t *conn)
{
    cJSON *lost;
    wa_err_t e;

    e = placement__heartbeat(conn, c->a.inst.instance, c->a.inst.sessions,
                             c->st->now_ms());
    if (e == WA_ENOTFOUND) {
        snprintf(c->msg, sizeof(c->msg),
                 "instance is not registered or was declared dead: "
                 "register again");
        return e;
    }
    if (e != WA_OK)
        return e;
    /* Every live instance's heartbeat also moves on a few users of long
     * dead ones. */
    move_dead_ones_users(c, conn, c->a.inst.instance);
    if ((c->result = cJSON_CreateObject()) == NULL ||
        (lost = cJSON_AddArrayToObject(c->result, "lost")) == NULL)
        return WA_ENOMEM;
    /* And tells the users of one newly dead that it is gone (once). A
     * failure is logged; the heartbeat stands. */
    if ((e = placement__lost(conn, c->st->now_ms(), lost)) != WA_OK)
        wa_warn(c->req->rid, "reporting dead instances failed: %s",
                wa_err_code(e));
    else if (cJSON_GetArraySize(lost) > 0)
        wa_info(c->req->rid, "%d user(s) of dead instances told by %s",
                cJSON_GetArraySize(lost), c->a.inst.instance);
    return WA_OK;
}

static wa_err_t exec_placement_resolve(call_t *c, db_conn_t *conn)
{
    char now[WA_TIMESTAMP_MAX + 1];
    placement_t p;
    wa_err_t e;

    wa_timestamp_now(now, sizeof(now));
    e = placement__resolve(conn, c->req->user, c->st->now_ms(), now, &p);
    if (e == WA_ENOSESSIONSVC) {
        snprintf(c->msg, sizeof(c->msg), "no live session-svc instance");
        wa_warn(c->req->rid, "placement: no live instance");
        return e;
    }
    if (e == WA_EFULL) {
        snprintf(c->msg, sizeof(c->msg),
                 "every live session-svc instance runs its maximum of "
                 "sessions (MAX_SESSIONS)");
        wa_warn(c->req->rid, "placement: every live instance is full");
        return e;
    }
    if (e != WA_OK)
        return e;
    if (p.previous[0] != '\0')
        wa_info(c->req->rid, "user moved from dead instance %s to %s",
                p.previous, p.instance);
    return placement_result(c, &p);
}

/* Nothing to write but the claim itself, which wj_exec records with the
 * rid (a durable op): the same attempt asking again (an nng resend) gets
 * this answer again, any other attempt with that rid a conflict. */
static wa_err_t exec_send_claim(call_t *c, db_conn_t *conn)
{
    (void)conn;
    if ((c->result = cJSON_CreateObject()) == NULL ||
        !cJSON_AddBoolToObject(c->result, "claimed", true))
        return WA_ENOMEM;
    return WA_OK;
}

/* ---- the table ---- */

static const op_desc_t ops[] = {
    {WA_OP_PING, false, NULL, NULL, read_ping, NULL, false},
    {WA_OP_SESSION_GET, true, NULL, NULL, read_session_get, NULL, false},
    {WA_OP_SESSION_UPSERT, true, f_upsert, parse_upsert, NULL, exec_upsert,
     true},
    {WA_OP_SESSION_LIST, false, f_page, parse_session_list, read_session_list,
     NULL, false},
    {WA_OP_LOG_APPEND, true, f_log, parse_log_append, NULL, exec_log_append,
     true},
    {WA_OP_LOG_LIST, true, f_log_list, parse_log_list, read_log_list, NULL,
     false},
    {WA_OP_EVENT_RECORD, true, f_event, parse_event_record, NULL,
     exec_event_record, true},
    {WA_OP_INSTANCE_REGISTER, false, f_register, parse_register, NULL,
     exec_register, false},
    {WA_OP_INSTANCE_HEARTBEAT, false, f_beat, parse_heartbeat, NULL,
     exec_heartbeat, false},
    {WA_OP_INSTANCE_LIST, false, NULL, NULL, read_instance_list, NULL, false},
    {WA_OP_PLACEMENT_RESOLVE, true, NULL, NULL, read_placement_resolve,
     exec_placement_resolve, false},
    {WA_OP_PLACEMENT_LIST, false, f_instance, parse_placement_list,
     read_placement_list, NULL, false},
    {WA_OP_DIAG, false, NULL, NULL, read_diag, NULL, false},
    {WA_OP_SEND_CLAIM, true, f_claim, parse_send_claim, NULL, exec_send_claim,
     true},
};

static const op_desc_t *find_op(wa_op_t op)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (ops[i].op == op)
            return &ops[i];
    }
    return NULL;
}

/* ---- answering ---- */

/* Answer c's job with its result or error (consuming the result). */
static void answer(call_t *c)
{
    const char *rid = c->req->rid;
    wa_bus_job_t *job = c->job;

    if (c->err == WA_OK) {
        wa_debug(rid, "%s ok", wa_op_name(c->req->op));
        wa_bus_reply_ok(job, c->result);
    } else {
        wa_debug(rid, "%s failed: %s%s%s", wa_op_name(c->req->op),
                 wa_err_code(c->err), c->msg[0] != '\0' ? ": " : "", c->msg);
        cJSON_Delete(c->result);
        wa_bus_reply_err(job, c->err, c->msg[0] != '\0' ? c->msg : NULL);
    }
    c->result = NULL;
}

/* idem_waiter_fn: a duplicate gets what the first got. */
static void answer_waiter(void *waiter, void *arg)
{
    const call_t *c = arg;
    cJSON *copy;

    if (c->err != WA_OK) {
        wa_bus_reply_err(waiter, c->err, c->msg[0] != '\0' ? c->msg : NULL);
    } else if ((copy = cJSON_Duplicate(c->result, 1)) == NULL) {
        wa_bus_reply_err(waiter, WA_ENOMEM, NULL);
    } else {
        wa_bus_reply_ok(waiter, copy);
    }
}

/* Free what parse allocated. */
static void call_free_args(call_t *c)
{
    for (int i = 0; i < c->rows.n; i++)
        free(c->rows.data[i]);
    free(c->rows.data);
    free(c->rows.type);
    free(c->data_json);
    free(c->reply_text);
}

/* A write is over (err final): record it, answer duplicates that waited,
 * answer it, free it. */
static void finish_write(call_t *c, wa_err_t err)
{
    char *text = NULL;

    if (err != WA_OK && c->err == WA_OK)
        c->msg[0] = '\0'; /* the commit failed, not the operation */
    c->err = err;
    if (err == WA_OK && c->reply_text == NULL)
        text = cJSON_PrintUnformatted(c->result); /* NULL: not recorded */
    idem__end(c->st->idem, c->req->op, c->req->user, c->req->rid,
              err == WA_OK ? (c->reply_text != NULL ? c->reply_text : text)
                           : NULL,
              wa_now_ms(), answer_waiter, c);
    free(text);
    answer(c);
    call_free_args(c);
    free(c);
}

/* How often the writer forgets durable answers older than
 * STORE_RID_KEEP_MS. */
#define RID_PRUNE_EVERY_MS (60 * 1000)

static void prune_rids(call_t *c, db_conn_t *conn)
{
    int64_t now = c->st->now_ms();
    int n;

    if (now - c->st->rids_pruned_ms < RID_PRUNE_EVERY_MS)
        return;
    c->st->rids_pruned_ms = now;
    /* A failure is logged by db__fail and retried at the next interval;
     * it must not fail the write that happened to run it. */
    if (rids__prune(conn, now - STORE_RID_KEEP_MS, &n) == WA_OK && n > 0)
        wa_info(c->req->rid, "forgot %d write answers older than %lld h", n,
                STORE_RID_KEEP_MS / 3600000);
}

/* A durable write answered before, maybe before a restart: *found, and
 * its first answer in c->result (or a conflict if the args differ). */
static wa_err_t replay_durable(call_t *c, db_conn_t *conn, bool *found)
{
    uint64_t fp;
    char *reply;
    wa_err_t e;

    *found = false;
    e = rids__get(conn, c->req->op, c->req->user, c->req->rid, &fp, &reply);
    if (e == WA_ENOTFOUND)
        return WA_OK;
    if (e != WA_OK)
        return e;
    *found = true;
    if (fp != c->fp) {
        free(reply);
        snprintf(c->msg, sizeof(c->msg),
                 "rid was already used for a different request");
        return WA_ECONFLICT;
    }
    c->reply_text = reply;
    if ((c->result = cJSON_Parse(reply)) == NULL)
        return WA_ENOMEM;
    atomic_fetch_add(&c->st->stats.idem_hits, 1);
    wa_debug(c->req->rid,
             "%s: repeated request (recorded), first answer sent "
             "again",
             wa_op_name(c->req->op));
    return WA_OK;
}

/* writer_job_t callbacks. */
static wa_err_t wj_exec(writer_job_t *j, db_conn_t *conn)
{
    call_t *c = (call_t *)j;
    const wa_request_t *req = c->req;
    bool found = false;
    wa_err_t e;

    if (c->desc->durable) {
        prune_rids(c, conn);
        if ((e = replay_durable(c, conn, &found)) != WA_OK || found)
            goto out;
    }
    e = c->desc->exec(c, conn);
    if (e == WA_OK && c->desc->durable) {
        if ((c->reply_text = cJSON_PrintUnformatted(c->result)) == NULL)
            e = WA_ENOMEM;
        else
            e = rids__put(conn, req->op, req->user, req->rid, c->fp,
                          c->reply_text, c->st->now_ms());
    }
out:
    if (e != WA_OK) {
        /* The savepoint is rolled back: forget a half-built result. */
        cJSON_Delete(c->result);
        c->result = NULL;
        free(c->reply_text);
        c->reply_text = NULL;
        c->err = e;
    }
    return e;
}

static void wj_done(writer_job_t *j, wa_err_t err)
{
    finish_write((call_t *)j, err);
}

/* Fingerprint of a request's arguments, for the rid cache. */
static wa_err_t fingerprint(const wa_request_t *req, uint64_t *fp)
{
    char *text = cJSON_PrintUnformatted(req->args);

    if (text == NULL)
        return WA_ENOMEM;
    *fp = wa_fnv1a(WA_FNV1A_INIT, text, strlen(text));
    free(text);
    return WA_OK;
}

/* Free a call that never reached the writer. */
static void drop_call(call_t *c)
{
    call_free_args(c);
    free(c);
}

/* Start a write: answer duplicates from the cache, else queue it. Takes
 * over the stack call s (its job is answered now or later), copied as it
 * is: nothing in a call points into the call itself. */
static void start_write(call_t *s)
{
    store_t *st = s->st;
    idem_state_t state;
    char *reply = NULL;
    call_t *c;
    wa_err_t e;

    if ((c = malloc(sizeof(*c))) == NULL) {
        wa_bus_reply_err(s->job, WA_ENOMEM, NULL);
        call_free_args(s);
        return;
    }
    *c = *s;
    if ((e = fingerprint(c->req, &c->fp)) != WA_OK ||
        (e = idem__begin(st->idem, c->req->op, c->req->user, c->req->rid, c->fp,
                         c->job, wa_now_ms(), &state, &reply)) != WA_OK) {
        c->err = e;
        goto answer;
    }
    switch (state) {
    case IDEM_DONE:
        atomic_fetch_add(&st->stats.idem_hits, 1);
        wa_debug(c->req->rid, "%s: repeated request, first answer sent again",
                 wa_op_name(c->req->op));
        if ((c->result = cJSON_Parse(reply)) == NULL)
            c->err = WA_ENOMEM;
        free(reply);
        goto answer;
    case IDEM_PENDING:
        /* The first one's finish_write answers this job. */
        atomic_fetch_add(&st->stats.idem_waiters, 1);
        wa_debug(c->req->rid, "%s: repeated request waits for the first",
                 wa_op_name(c->req->op));
        drop_call(c);
        return;
    case IDEM_MISMATCH:
        c->err = WA_ECONFLICT;
        snprintf(c->msg, sizeof(c->msg),
                 "rid was already used for a different request");
        goto answer;
    case IDEM_NEW:
        break;
    }

    c->wj.exec = wj_exec;
    c->wj.done = wj_done;
    c->wj.rid = c->req->rid;
    if ((e = writer__submit(st->writer, &c->wj)) != WA_OK) {
        snprintf(c->msg, sizeof(c->msg), "%s is stopping", STORE_SERVICE);
        c->err = e;
        finish_write(c, e);
    }
    return;
answer:
    answer(c);
    drop_call(c);
}

void ops__handle(void *arg, wa_bus_job_t *job)
{
    call_t c = {0};
    db_conn_t *conn;
    wa_err_t e;

    c.st = arg;
    c.job = job;
    c.req = wa_bus_job_request(job);
    if ((c.desc = find_op(c.req->op)) == NULL) {
        c.err = WA_EUNKNOWNOP;
        snprintf(c.msg, sizeof(c.msg), "%s is not served by %s",
                 wa_op_name(c.req->op), STORE_SERVICE);
        goto answer;
    }
    if (c.desc->needs_user && c.req->user[0] == '\0') {
        c.err = invalid(&c, "user: required for %s", wa_op_name(c.req->op));
        goto answer;
    }
    if ((c.err = check_fields(&c)) != WA_OK)
        goto answer;
    if (c.desc->parse != NULL && (c.err = c.desc->parse(&c)) != WA_OK)
        goto answer;

    if (c.desc->read != NULL) {
        conn = db__read_begin(c.st->db);
        db__set_rid(c.req->rid);
        e = c.desc->read(&c, conn);
        db__set_rid(NULL);
        db__read_end(c.st->db);
        if (e != WA_ENOTFOUND || c.desc->exec == NULL) {
            c.err = e;
            goto answer;
        }
    }
    start_write(&c);
    return;
answer:
    answer(&c);
    call_free_args(&c);
}
