/* SQLite store: open, migrations, transactions, core tables. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlbot/crypto.h"
#include "tlbot/log.h"
#include "tlbot/store.h"

/* Core schema, versioned by PRAGMA user_version. Append only. */
static const char *const core_migrations[] = {
	/* 1 */
	"CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE handled_events (event_id TEXT PRIMARY KEY, room_id TEXT,"
	"  seq INTEGER NOT NULL);"
	"CREATE INDEX handled_events_seq ON handled_events(seq);"
	"CREATE TABLE rooms (room_id TEXT PRIMARY KEY, membership TEXT NOT NULL,"
	"  inviter TEXT, updated_at INTEGER NOT NULL DEFAULT (strftime('%s','now')));"
	"CREATE TABLE room_state (room_id TEXT NOT NULL, type TEXT NOT NULL,"
	"  state_key TEXT NOT NULL, sender TEXT, content TEXT NOT NULL,"
	"  PRIMARY KEY (room_id, type, state_key));"
	"CREATE TABLE dm_rooms (user_id TEXT PRIMARY KEY, room_id TEXT NOT NULL);"
	"CREATE INDEX dm_rooms_room ON dm_rooms(room_id);"
	"CREATE TABLE outbox (id INTEGER PRIMARY KEY, txn_id TEXT NOT NULL UNIQUE,"
	"  kind TEXT NOT NULL, room_id TEXT, user_id TEXT, event_type TEXT,"
	"  content TEXT, blob BLOB, state TEXT NOT NULL DEFAULT 'pending',"
	"  attempts INTEGER NOT NULL DEFAULT 0, event_id TEXT, last_error TEXT,"
	"  created_at INTEGER NOT NULL DEFAULT (strftime('%s','now')),"
	"  done_at INTEGER);"
	"CREATE INDEX outbox_pending ON outbox(state, id);"
	"CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"CREATE TABLE jobs (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
	"  key TEXT NOT NULL UNIQUE, room_id TEXT, due INTEGER NOT NULL,"
	"  payload TEXT NOT NULL DEFAULT '{}', state TEXT NOT NULL DEFAULT 'pending',"
	"  fired_at INTEGER);"
	"CREATE INDEX jobs_due ON jobs(state, due);"
	"CREATE TABLE user_prefs (user_id TEXT PRIMARY KEY, dm_enabled INTEGER);"
	"CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL);",
	/* 2: what became of each command, so an edit of it knows whether to run */
	"CREATE TABLE command_outcomes (event_id TEXT PRIMARY KEY, room_id TEXT, sender TEXT,"
	"  ok INTEGER NOT NULL, edit_noted INTEGER NOT NULL DEFAULT 0, at INTEGER NOT NULL);",
	/* 3: users the homeserver was asked about (GET /profile) */
	"CREATE TABLE user_profiles (user_id TEXT PRIMARY KEY, found INTEGER NOT NULL,"
	"  displayname TEXT, checked_at INTEGER NOT NULL);",
	/* 4: one history of every family's records (tlbot_history_add), one
	 * row per changed field; kind is the record's letter ("E", "C");
	 * jobs count the store failures they were retried after */
	"CREATE TABLE history (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
	"  record_id INTEGER NOT NULL, room_id TEXT, at INTEGER NOT NULL, actor TEXT,"
	"  action TEXT NOT NULL, field TEXT, old TEXT, new TEXT);"
	"CREATE INDEX history_record ON history(kind, record_id, id);"
	"CREATE INDEX history_room_at ON history(room_id, at);"
	"CREATE INDEX history_action_at ON history(kind, action, at);"
	"ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;",
	NULL
};

static int
exec_sql(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		log_error("database: %s", err ? err : sqlite3_errmsg(db));
		sqlite3_free(err);
		return -1;
	}
	return 0;
}

int
tlbot_store_exec(struct tlbot_store *st, const char *sql)
{
	return exec_sql(st->db, sql);
}

/* Prepared statements are kept per connection, keyed by the address of the
 * SQL text (every caller passes a string literal), and reset instead of
 * finalized: preparing afresh on every call was about half of the batch
 * path's instructions (callgrind on bench/bench_batch). */
#define STMT_CACHE_MAX 64

struct tlbot_stmt_cache {
	int n;
	const char *sql[STMT_CACHE_MAX];
	sqlite3_stmt *stmt[STMT_CACHE_MAX];
};

static sqlite3_stmt *
prep(struct tlbot_store *st, const char *sql)
{
	struct tlbot_stmt_cache *c = st->stmts;
	sqlite3_stmt *s = NULL;
	int i, cached = 0;

	for (i = 0; c && i < c->n; i++) {
		if (c->sql[i] == sql) {
			if (!sqlite3_stmt_busy(c->stmt[i]))
				return c->stmt[i];
			cached = 1; /* in use further up the stack: use a fresh one */
			break;
		}
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		log_error("database: prepare failed: %s", sqlite3_errmsg(st->db));
		sqlite3_finalize(s);
		return NULL;
	}
	if (c && !cached && c->n < STMT_CACHE_MAX) {
		c->sql[c->n] = sql;
		c->stmt[c->n++] = s;
	}
	return s;
}

/* Done with a statement from prep(): reset a cached one, finalize others. */
static void
unprep(struct tlbot_store *st, sqlite3_stmt *s)
{
	struct tlbot_stmt_cache *c = st->stmts;
	int i;

	for (i = 0; c && i < c->n; i++) {
		if (c->stmt[i] == s) {
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			return;
		}
	}
	sqlite3_finalize(s);
}

/* Wait for another connection's write lock in short steps. SQLite's own
 * handler sleeps 1, 2, 5, 10, 15... ms, which at 100 commands/s put
 * milliseconds on a reply whenever the receive side and the worker wrote
 * at the same moment (bench/run: added p99, and strace counted ~2 sleeps
 * per command). Gives up after about 10 s, as before. */
static int
busy_wait(void *arg, int count)
{
	struct timespec ts = { 0, count < 20 ? 50000L : count < 100 ? 250000L : 1000000L };

	(void)arg;
	if (count >= 100 + 9980)
		return 0;
	nanosleep(&ts, NULL);
	return 1;
}

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

static char *
col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	return t ? strdup((const char *)t) : NULL;
}

/* The single integer a constant query (no parameters) answers, e.g. a
 * COUNT(*); -1 on error. */
static int
get_count(struct tlbot_store *st, const char *sql)
{
	sqlite3_stmt *s = prep(st, sql);
	int n = -1;

	if (s == NULL)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	unprep(st, s);
	return n;
}

/* The first column of the one row sql (a literal with nargs text
 * parameters) selects: 0 and a new string in *out (NULL for SQL NULL),
 * 1 when there is no row, -1 on error. */
static int
get_text(struct tlbot_store *st, char **out, const char *sql, int nargs, ...)
{
	sqlite3_stmt *s = prep(st, sql);
	va_list ap;
	int rc, i;

	*out = NULL;
	if (s == NULL)
		return -1;
	va_start(ap, nargs);
	for (i = 1; i <= nargs; i++)
		bind_text(s, i, va_arg(ap, const char *));
	va_end(ap);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = col_dup(s, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? 1 : -1;
	}
	unprep(st, s);
	return rc;
}

/* Step a statement that returns no rows; release it. 0 or -1. */
static int
step_done(struct tlbot_store *st, sqlite3_stmt *s)
{
	int rc;

	if (s == NULL)
		return -1;
	rc = sqlite3_step(s);
	unprep(st, s);
	if (rc != SQLITE_DONE) {
		log_error("database: %s", sqlite3_errmsg(st->db));
		return -1;
	}
	return 0;
}

/* Apply migrations for one component. Returns 0 or -1. */
static int
migrate_component(struct tlbot_store *st, const char *component, const char *const *migs)
{
	sqlite3_stmt *s;
	int have = 0, i, n;

	for (n = 0; migs[n]; n++)
		;
	s = prep(st, "SELECT version FROM schema_version WHERE component = ?");
	if (s == NULL)
		return -1;
	bind_text(s, 1, component);
	if (sqlite3_step(s) == SQLITE_ROW)
		have = sqlite3_column_int(s, 0);
	unprep(st, s);
	if (have > n) {
		log_error("database: schema '%s' is version %d, newer than this tlbot knows (%d)",
			  component, have, n);
		return -1;
	}
	for (i = have; i < n; i++) {
		if (exec_sql(st->db, "BEGIN IMMEDIATE") != 0)
			return -1;
		if (exec_sql(st->db, migs[i]) != 0)
			goto fail;
		s = prep(st, "INSERT OR REPLACE INTO schema_version(component, version) VALUES (?, ?)");
		if (s == NULL)
			goto fail;
		bind_text(s, 1, component);
		sqlite3_bind_int(s, 2, i + 1);
		if (step_done(st, s) != 0 || exec_sql(st->db, "COMMIT") != 0)
			goto fail;
		log_debug("database: migrated %s to version %d", component, i + 1);
	}
	return 0;
fail:
	exec_sql(st->db, "ROLLBACK");
	return -1;
}

static int
migrate(struct tlbot_store *st, const struct tlbot_schema *const *components)
{
	sqlite3_stmt *s;
	int have = 0, n, i;
	char pragma[64];

	for (n = 0; core_migrations[n]; n++)
		;
	s = prep(st, "PRAGMA user_version");
	if (s == NULL)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		have = sqlite3_column_int(s, 0);
	unprep(st, s);
	if (have > n) {
		log_error("database: core schema version %d is newer than this tlbot (%d)", have, n);
		return -1;
	}
	for (i = have; i < n; i++) {
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", i + 1);
		if (exec_sql(st->db, "BEGIN IMMEDIATE") != 0)
			return -1;
		if (exec_sql(st->db, core_migrations[i]) != 0 || exec_sql(st->db, pragma) != 0) {
			exec_sql(st->db, "ROLLBACK");
			return -1;
		}
		if (exec_sql(st->db, "COMMIT") != 0)
			return -1;
		log_debug("database: migrated core to version %d", i + 1);
	}
	for (i = 0; components[i]; i++)
		if (migrate_component(st, components[i]->component, components[i]->migrations) != 0)
			return -1;
	/* the encryption keys and sessions (bot/crypto/) */
	if (migrate_component(st, tlbot_crypto_schema.component, tlbot_crypto_schema.migrations) != 0)
		return -1;
	return 0;
}

int
tlbot_store_open(struct tlbot_store *st, const char *path,
		 const struct tlbot_schema *const *components)
{
	memset(st, 0, sizeof(*st));
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		log_error("database: cannot open '%s': %s", path,
			  st->db ? sqlite3_errmsg(st->db) : "out of memory");
		sqlite3_close(st->db);
		st->db = NULL;
		return -1;
	}
	st->path = strdup(path);
	st->stmts = calloc(1, sizeof(*st->stmts));
	if (st->stmts == NULL)
		goto fail;
	sqlite3_busy_handler(st->db, busy_wait, NULL);
	sqlite3_extended_result_codes(st->db, 1);
	if (exec_sql(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		     "PRAGMA foreign_keys=ON;") != 0)
		goto fail;
	if (components && migrate(st, components) != 0)
		goto fail;
	return 0;
fail:
	tlbot_store_close(st);
	return -1;
}

void
tlbot_store_close(struct tlbot_store *st)
{
	int i;

	for (i = 0; st->stmts && i < st->stmts->n; i++)
		sqlite3_finalize(st->stmts->stmt[i]);
	free(st->stmts);
	st->stmts = NULL;
	if (st->db)
		sqlite3_close_v2(st->db);
	st->db = NULL;
	free(st->path);
	st->path = NULL;
}

/* Run a one-statement constant SQL through the statement cache. 0 or -1. */
static int
exec_cached(struct tlbot_store *st, const char *sql)
{
	return step_done(st, prep(st, sql));
}

int
tlbot_store_begin(struct tlbot_store *st)
{
	if (exec_cached(st, "BEGIN IMMEDIATE") != 0)
		return -1;
	st->in_tx = 1;
	return 0;
}

int
tlbot_store_commit(struct tlbot_store *st)
{
	if (exec_cached(st, "COMMIT") != 0) {
		tlbot_store_rollback(st);
		return -1;
	}
	st->in_tx = 0;
	return 0;
}

void
tlbot_store_rollback(struct tlbot_store *st)
{
	if (sqlite3_get_autocommit(st->db) == 0)
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->in_tx = 0;
}

int
tlbot_store_savepoint(struct tlbot_store *st)
{
	return exec_cached(st, "SAVEPOINT cmd");
}

int
tlbot_store_release(struct tlbot_store *st)
{
	return exec_cached(st, "RELEASE cmd");
}

void
tlbot_store_rollback_to(struct tlbot_store *st)
{
	exec_sql(st->db, "ROLLBACK TO cmd; RELEASE cmd");
}

/* ---- kv ---- */

int
tlbot_store_kv_get(struct tlbot_store *st, const char *key, char **out)
{
	int rc = get_text(st, out, "SELECT value FROM kv WHERE key = ?", 1, key);

	return rc == 0 && *out == NULL ? -1 : rc; /* value is NOT NULL: out of memory */
}

int
tlbot_store_kv_set(struct tlbot_store *st, const char *key, const char *value)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO kv(key, value) VALUES (?, ?)"
			       " ON CONFLICT(key) DO UPDATE SET value = excluded.value");

	if (s == NULL)
		return -1;
	bind_text(s, 1, key);
	bind_text(s, 2, value);
	return step_done(st, s);
}

int
tlbot_store_kv_del(struct tlbot_store *st, const char *key)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM kv WHERE key = ?");

	if (s == NULL)
		return -1;
	bind_text(s, 1, key);
	return step_done(st, s);
}

/* ---- handled events ---- */

int
tlbot_store_event_seen(struct tlbot_store *st, const char *event_id)
{
	sqlite3_stmt *s = prep(st, "SELECT 1 FROM handled_events WHERE event_id = ?");
	int rc;

	if (s == NULL)
		return -1;
	bind_text(s, 1, event_id);
	rc = sqlite3_step(s);
	unprep(st, s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

int
tlbot_store_event_mark(struct tlbot_store *st, const char *event_id, const char *room_id)
{
	sqlite3_stmt *s = prep(st, "INSERT OR IGNORE INTO handled_events(event_id, room_id, seq)"
			       " VALUES (?, ?, (SELECT IFNULL(MAX(seq), 0) + 1 FROM handled_events))");

	if (s == NULL)
		return -1;
	bind_text(s, 1, event_id);
	bind_text(s, 2, room_id);
	return step_done(st, s);
}

int
tlbot_store_events_trim(struct tlbot_store *st, int max)
{
	sqlite3_stmt *s = prep(st, "DELETE FROM handled_events WHERE seq <="
			       " (SELECT IFNULL(MAX(seq), 0) FROM handled_events) - ?");

	if (s == NULL)
		return -1;
	sqlite3_bind_int(s, 1, max);
	return step_done(st, s);
}

/* ---- rooms and state ---- */

int
tlbot_store_room_set(struct tlbot_store *st, const char *room_id, const char *membership,
		     const char *inviter)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO rooms(room_id, membership, inviter) VALUES (?, ?, ?)"
			       " ON CONFLICT(room_id) DO UPDATE SET membership = excluded.membership,"
			       " inviter = IFNULL(excluded.inviter, rooms.inviter),"
			       " updated_at = strftime('%s','now')");

	if (s == NULL)
		return -1;
	bind_text(s, 1, room_id);
	bind_text(s, 2, membership);
	bind_text(s, 3, inviter);
	return step_done(st, s);
}

int
tlbot_store_room_membership(struct tlbot_store *st, const char *room_id, char **out)
{
	return get_text(st, out, "SELECT membership FROM rooms WHERE room_id = ?", 1, room_id);
}

int
tlbot_store_joined_count(struct tlbot_store *st)
{
	return get_count(st, "SELECT COUNT(*) FROM rooms WHERE membership = 'join'");
}

int
tlbot_store_state_put(struct tlbot_store *st, const char *room_id, const char *type,
		      const char *state_key, const char *sender, const char *content_json)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO room_state(room_id, type, state_key, sender, content)"
			       " VALUES (?, ?, ?, ?, ?) ON CONFLICT(room_id, type, state_key)"
			       " DO UPDATE SET content = excluded.content, sender = excluded.sender");

	if (s == NULL)
		return -1;
	bind_text(s, 1, room_id);
	bind_text(s, 2, type);
	bind_text(s, 3, state_key);
	bind_text(s, 4, sender);
	bind_text(s, 5, content_json);
	return step_done(st, s);
}

int
tlbot_store_outcome_set(struct tlbot_store *st, const char *event_id, const char *room_id,
			const char *sender, int ok)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO command_outcomes(event_id, room_id, sender, ok, at)"
			       " VALUES (?, ?, ?, ?, strftime('%s','now')) ON CONFLICT(event_id)"
			       " DO UPDATE SET ok = excluded.ok");

	if (s == NULL)
		return -1;
	bind_text(s, 1, event_id);
	bind_text(s, 2, room_id);
	bind_text(s, 3, sender);
	sqlite3_bind_int(s, 4, ok);
	return step_done(st, s);
}

int
tlbot_store_outcome_get(struct tlbot_store *st, const char *event_id, const char *sender, int *ok,
			int *noted)
{
	sqlite3_stmt *s = prep(st, "SELECT ok, edit_noted FROM command_outcomes WHERE event_id = ?"
			       " AND sender = ?");
	int rc;

	if (s == NULL)
		return -1;
	bind_text(s, 1, event_id);
	bind_text(s, 2, sender);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*ok = sqlite3_column_int(s, 0);
		*noted = sqlite3_column_int(s, 1);
	}
	unprep(st, s);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return 1;
	log_error("database: %s", sqlite3_errmsg(st->db));
	return -1;
}

int
tlbot_store_outcome_noted(struct tlbot_store *st, const char *event_id)
{
	sqlite3_stmt *s = prep(st, "UPDATE command_outcomes SET edit_noted = 1 WHERE event_id = ?");

	if (s == NULL)
		return -1;
	bind_text(s, 1, event_id);
	return step_done(st, s);
}

int
tlbot_store_profile_put(struct tlbot_store *st, const char *user_id, int found,
			const char *displayname)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO user_profiles(user_id, found, displayname,"
			       " checked_at) VALUES (?, ?, ?, strftime('%s','now'))"
			       " ON CONFLICT(user_id) DO UPDATE SET found = excluded.found,"
			       " displayname = excluded.displayname, checked_at = excluded.checked_at");

	if (s == NULL)
		return -1;
	bind_text(s, 1, user_id);
	sqlite3_bind_int(s, 2, found);
	bind_text(s, 3, displayname);
	return step_done(st, s);
}

int
tlbot_store_outbox_pending_same(struct tlbot_store *st, int64_t id, const char *kind,
				const char *content)
{
	sqlite3_stmt *s = prep(st, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
			       " AND kind = ? AND content = ? AND id <> ?");
	int n = -1;

	if (s == NULL)
		return -1;
	bind_text(s, 1, kind);
	bind_text(s, 2, content);
	sqlite3_bind_int64(s, 3, id);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int(s, 0);
	unprep(st, s);
	return n;
}

int
tlbot_store_member_fill(struct tlbot_store *st, const char *room_id, const char *user_id,
			const char *content_json)
{
	sqlite3_stmt *s = prep(st, "INSERT OR IGNORE INTO room_state(room_id, type, state_key,"
			       " sender, content) VALUES (?, 'm.room.member', ?, NULL, ?)");

	if (s == NULL)
		return -1;
	bind_text(s, 1, room_id);
	bind_text(s, 2, user_id);
	bind_text(s, 3, content_json);
	return step_done(st, s);
}

int
tlbot_store_state_sender(struct tlbot_store *st, const char *room_id, const char *type,
			 const char *state_key, char **sender)
{
	int rc = get_text(st, sender, "SELECT sender FROM room_state"
			  " WHERE room_id = ? AND type = ? AND state_key = ?", 3, room_id, type,
			  state_key);

	return rc == 0 && *sender == NULL ? 1 : rc;
}

int
tlbot_store_state_get(struct tlbot_store *st, const char *room_id, const char *type,
		      const char *state_key, char **content_json)
{
	return get_text(st, content_json, "SELECT content FROM room_state"
			" WHERE room_id = ? AND type = ? AND state_key = ?", 3, room_id, type,
			state_key);
}

/* ---- DM rooms ---- */

int
tlbot_store_dm_get(struct tlbot_store *st, const char *user_id, char **room_id)
{
	return get_text(st, room_id, "SELECT room_id FROM dm_rooms WHERE user_id = ?", 1, user_id);
}

int
tlbot_store_dm_orphan(struct tlbot_store *st, const char *bot_user, const char *user_id,
		      char **room_id)
{
	return get_text(st, room_id,
			"SELECT c.room_id FROM room_state c"
			" JOIN rooms r ON r.room_id = c.room_id AND r.membership = 'join'"
			" JOIN room_state m ON m.room_id = c.room_id AND m.type = 'm.room.member'"
			"  AND m.state_key = ?2"
			"  AND json_extract(m.content, '$.membership') IN ('invite', 'join')"
			" WHERE c.type = 'm.room.create' AND c.state_key = '' AND c.sender = ?1"
			"  AND c.room_id NOT IN (SELECT room_id FROM dm_rooms)"
			" ORDER BY c.rowid DESC LIMIT 1",
			2, bot_user, user_id);
}

int
tlbot_store_dm_user(struct tlbot_store *st, const char *room_id, char **user_id)
{
	return get_text(st, user_id, "SELECT user_id FROM dm_rooms WHERE room_id = ?", 1, room_id);
}

int
tlbot_store_dm_set(struct tlbot_store *st, const char *user_id, const char *room_id)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO dm_rooms(user_id, room_id) VALUES (?, ?)"
			       " ON CONFLICT(user_id) DO UPDATE SET room_id = excluded.room_id");

	if (s == NULL)
		return -1;
	bind_text(s, 1, user_id);
	bind_text(s, 2, room_id);
	return step_done(st, s);
}

/* ---- outbox ---- */

int
tlbot_store_outbox_add(struct tlbot_store *st, const char *txn_id, const char *kind,
		       const char *room_id, const char *user_id, const char *event_type,
		       const char *content, const void *blob, int bloblen)
{
	sqlite3_stmt *s = prep(st, "INSERT OR IGNORE INTO outbox(txn_id, kind, room_id, user_id,"
			       " event_type, content, blob) VALUES (?, ?, ?, ?, ?, ?, ?)");

	if (s == NULL)
		return -1;
	bind_text(s, 1, txn_id);
	bind_text(s, 2, kind);
	bind_text(s, 3, room_id);
	bind_text(s, 4, user_id);
	bind_text(s, 5, event_type);
	bind_text(s, 6, content);
	if (blob)
		sqlite3_bind_blob(s, 7, blob, bloblen, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, 7);
	return step_done(st, s);
}

/* Fill row from the current result of a SELECT of the outbox_next columns. */
static int
outbox_row_step(struct tlbot_store *st, sqlite3_stmt *s, struct tlbot_outbox_row *row)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW) {
		row->id = sqlite3_column_int64(s, 0);
		row->txn_id = col_dup(s, 1);
		row->kind = col_dup(s, 2);
		row->room_id = col_dup(s, 3);
		row->user_id = col_dup(s, 4);
		row->event_type = col_dup(s, 5);
		row->content = col_dup(s, 6);
		row->bloblen = sqlite3_column_bytes(s, 7);
		if (row->bloblen > 0) {
			row->blob = malloc((size_t)row->bloblen);
			if (row->blob)
				memcpy(row->blob, sqlite3_column_blob(s, 7), (size_t)row->bloblen);
		}
		row->attempts = sqlite3_column_int(s, 8);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? 1 : -1;
	}
	unprep(st, s);
	return rc;
}

int
tlbot_store_outbox_next(struct tlbot_store *st, struct tlbot_outbox_row *row)
{
	sqlite3_stmt *s = prep(st, "SELECT id, txn_id, kind, room_id, user_id, event_type, content,"
			       " blob, attempts FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1");

	memset(row, 0, sizeof(*row));
	if (s == NULL)
		return -1;
	return outbox_row_step(st, s, row);
}

int
tlbot_store_outbox_get(struct tlbot_store *st, int64_t id, struct tlbot_outbox_row *row)
{
	sqlite3_stmt *s = prep(st, "SELECT id, txn_id, kind, room_id, user_id, event_type, content,"
			       " blob, attempts FROM outbox WHERE id = ? AND state = 'pending'");

	memset(row, 0, sizeof(*row));
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	return outbox_row_step(st, s, row);
}

int
tlbot_store_outbox_scan(struct tlbot_store *st, int64_t after_id, int limit,
			int (*fn)(void *arg, int64_t id, const char *txn_id, const char *kind,
				  const char *room_id, const char *user_id, const char *dm_user),
			void *arg)
{
	sqlite3_stmt *s = prep(st, "SELECT o.id, o.txn_id, o.kind, o.room_id, o.user_id,"
			       " (SELECT d.user_id FROM dm_rooms d WHERE d.room_id = o.room_id LIMIT 1)"
			       " FROM outbox o WHERE o.state = 'pending' AND o.id > ? ORDER BY o.id LIMIT ?");
	int rc, n = 0;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, after_id);
	sqlite3_bind_int(s, 2, limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (fn(arg, sqlite3_column_int64(s, 0), (const char *)sqlite3_column_text(s, 1),
		       (const char *)sqlite3_column_text(s, 2), (const char *)sqlite3_column_text(s, 3),
		       (const char *)sqlite3_column_text(s, 4),
		       (const char *)sqlite3_column_text(s, 5)) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	unprep(st, s);
	return rc == SQLITE_DONE ? n : -1;
}

void
tlbot_store_outbox_row_release(struct tlbot_outbox_row *row)
{
	free(row->txn_id);
	free(row->kind);
	free(row->room_id);
	free(row->user_id);
	free(row->event_type);
	free(row->content);
	free(row->blob);
	memset(row, 0, sizeof(*row));
}

int
tlbot_store_outbox_done(struct tlbot_store *st, int64_t id, const char *event_id)
{
	sqlite3_stmt *s = prep(st, "UPDATE outbox SET state = 'sent', event_id = ?, blob = NULL,"
			       " attempts = attempts + 1, done_at = strftime('%s','now') WHERE id = ?");

	if (s == NULL)
		return -1;
	bind_text(s, 1, event_id);
	sqlite3_bind_int64(s, 2, id);
	return step_done(st, s);
}

int
tlbot_store_outbox_fail(struct tlbot_store *st, int64_t id, const char *error, int permanent)
{
	sqlite3_stmt *s = prep(st, "UPDATE outbox SET attempts = attempts + 1, last_error = ?,"
			       " state = CASE WHEN ? THEN 'failed' ELSE state END,"
			       " done_at = CASE WHEN ? THEN strftime('%s','now') ELSE done_at END"
			       " WHERE id = ?");

	if (s == NULL)
		return -1;
	bind_text(s, 1, error);
	sqlite3_bind_int(s, 2, permanent);
	sqlite3_bind_int(s, 3, permanent);
	sqlite3_bind_int64(s, 4, id);
	return step_done(st, s);
}

int
tlbot_store_outbox_pending(struct tlbot_store *st)
{
	return get_count(st, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'");
}

int
tlbot_store_outbox_resolve_dm(struct tlbot_store *st, int64_t id, const char *room_id)
{
	sqlite3_stmt *s = prep(st, "UPDATE outbox SET kind = CASE kind WHEN 'dm' THEN 'send' ELSE kind END,"
			       " room_id = ? WHERE id = ?");

	if (s == NULL)
		return -1;
	bind_text(s, 1, room_id);
	sqlite3_bind_int64(s, 2, id);
	return step_done(st, s);
}

/* ---- counters ---- */

int64_t
tlbot_store_next_id(struct tlbot_store *st, const char *name)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO counters(name, value) VALUES (?, 1)"
			       " ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value");
	int64_t v = -1;

	if (s == NULL)
		return -1;
	bind_text(s, 1, name);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else
		log_error("database: counter %s: %s", name, sqlite3_errmsg(st->db));
	unprep(st, s);
	return v;
}

/* ---- jobs ---- */

int64_t
tlbot_store_job_schedule(struct tlbot_store *st, const char *kind, const char *key,
			 const char *room_id, time_t due, const char *payload)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO jobs(kind, key, room_id, due, payload)"
			       " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET"
			       " due = excluded.due, payload = excluded.payload,"
			       " room_id = excluded.room_id, kind = excluded.kind, state = 'pending'"
			       " WHERE jobs.state IN ('pending', 'cancelled') RETURNING id");
	int64_t id = -1;
	int rc;

	if (s == NULL)
		return -1;
	bind_text(s, 1, kind);
	bind_text(s, 2, key);
	bind_text(s, 3, room_id);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)due);
	bind_text(s, 5, payload ? payload : "{}");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		id = 0; /* already fired: a no-op */
	else
		log_error("database: schedule %s: %s", key, sqlite3_errmsg(st->db));
	unprep(st, s);
	return id;
}

int
tlbot_store_job_cancel(struct tlbot_store *st, const char *key)
{
	size_t n = strlen(key);
	sqlite3_stmt *s;
	int rc;

	if (n > 0 && key[n - 1] == '*') {
		s = prep(st, "UPDATE jobs SET state = 'cancelled' WHERE state = 'pending'"
			 " AND substr(key, 1, ?) = ?");
		if (s == NULL)
			return -1;
		sqlite3_bind_int(s, 1, (int)n - 1);
		sqlite3_bind_text(s, 2, key, (int)n - 1, SQLITE_TRANSIENT);
	} else {
		s = prep(st, "UPDATE jobs SET state = 'cancelled' WHERE state = 'pending' AND key = ?");
		if (s == NULL)
			return -1;
		bind_text(s, 1, key);
	}
	rc = sqlite3_step(s);
	unprep(st, s);
	if (rc != SQLITE_DONE)
		return -1;
	return sqlite3_changes(st->db);
}

int
tlbot_store_job_next_due(struct tlbot_store *st, time_t now, struct tlbot_job_row *row)
{
	sqlite3_stmt *s = prep(st, "SELECT id, kind, key, room_id, payload, due FROM jobs"
			       " WHERE state = 'pending' AND due <= ? ORDER BY due, id LIMIT 1");
	int rc;

	memset(row, 0, sizeof(*row));
	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)now);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		row->id = sqlite3_column_int64(s, 0);
		row->kind = col_dup(s, 1);
		row->key = col_dup(s, 2);
		row->room_id = col_dup(s, 3);
		row->payload = col_dup(s, 4);
		row->due = (time_t)sqlite3_column_int64(s, 5);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? 1 : -1;
	}
	unprep(st, s);
	return rc;
}

time_t
tlbot_store_job_earliest(struct tlbot_store *st)
{
	sqlite3_stmt *s = prep(st, "SELECT MIN(due) FROM jobs WHERE state = 'pending'");
	time_t t = -1;

	if (s == NULL)
		return -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		t = sqlite3_column_type(s, 0) == SQLITE_NULL ? 0 : (time_t)sqlite3_column_int64(s, 0);
	unprep(st, s);
	return t;
}

void
tlbot_store_job_row_release(struct tlbot_job_row *row)
{
	free(row->kind);
	free(row->key);
	free(row->room_id);
	free(row->payload);
	memset(row, 0, sizeof(*row));
}

int64_t
tlbot_store_job_attempt(struct tlbot_store *st, int64_t id)
{
	sqlite3_stmt *s = prep(st, "UPDATE jobs SET attempts = attempts + 1 WHERE id = ?"
			       " RETURNING attempts");
	int64_t n = -1;

	if (s == NULL)
		return -1;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	unprep(st, s);
	return n;
}

int
tlbot_store_job_finish(struct tlbot_store *st, int64_t id, const char *state, time_t at)
{
	sqlite3_stmt *s = prep(st, "UPDATE jobs SET state = ?, fired_at = ? WHERE id = ?");

	if (s == NULL)
		return -1;
	bind_text(s, 1, state);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)at);
	sqlite3_bind_int64(s, 3, id);
	return step_done(st, s);
}

/* ---- user preferences ---- */

int
tlbot_store_dm_enabled(struct tlbot_store *st, const char *user_id, int dflt)
{
	sqlite3_stmt *s = prep(st, "SELECT dm_enabled FROM user_prefs WHERE user_id = ?");
	int v = dflt;

	if (s == NULL)
		return dflt;
	bind_text(s, 1, user_id);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		v = sqlite3_column_int(s, 0);
	unprep(st, s);
	return v;
}

int
tlbot_store_set_dm_enabled(struct tlbot_store *st, const char *user_id, int on)
{
	sqlite3_stmt *s = prep(st, "INSERT INTO user_prefs(user_id, dm_enabled) VALUES (?, ?)"
			       " ON CONFLICT(user_id) DO UPDATE SET dm_enabled = excluded.dm_enabled");

	if (s == NULL)
		return -1;
	bind_text(s, 1, user_id);
	sqlite3_bind_int(s, 2, on);
	return step_done(st, s);
}

int
tlbot_store_prune(struct tlbot_store *st, time_t before)
{
	static const char *const sql[] = {
		"DELETE FROM outbox WHERE state IN ('sent', 'failed') AND done_at < ?",
		"DELETE FROM jobs WHERE state <> 'pending' AND IFNULL(fired_at, due) < ?",
		"DELETE FROM command_outcomes WHERE at < ?",
	};
	int n = 0;
	size_t i;

	for (i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		sqlite3_stmt *s = prep(st, sql[i]);

		if (s == NULL)
			return -1;
		sqlite3_bind_int64(s, 1, (sqlite3_int64)before);
		if (step_done(st, s) != 0)
			return -1;
		n += sqlite3_changes(st->db);
	}
	return n;
}
