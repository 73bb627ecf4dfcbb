/* The SQLite store: one connection per thread, WAL, versioned migrations.
 * Core tables: kv, handled events, rooms and their state, outbox, jobs,
 * counters, user preferences; command families add their own through
 * struct tlbot_schema (schema.h), handed in by whoever opens the store. */
#ifndef TLBOT_STORE_H
#define TLBOT_STORE_H

#include <sqlite3.h>
#include <stdint.h>
#include <time.h>

#include "tlbot/schema.h"

struct tlbot_stmt_cache;

struct tlbot_store {
	sqlite3 *db;
	char *path;
	int in_tx;
	struct tlbot_stmt_cache *stmts; /* prepared statements (store.c) */
};

/* Open (creating) the database at path and, when components is not NULL,
 * apply the core migrations and then each component's (a NULL-terminated
 * list, e.g. tlbot_command_schemas()). Returns 0 or -1 (logged). */
int tlbot_store_open(struct tlbot_store *st, const char *path,
		     const struct tlbot_schema *const *components);
void tlbot_store_close(struct tlbot_store *st);

/* Transactions (BEGIN IMMEDIATE). Return 0 or -1 (logged). */
int tlbot_store_begin(struct tlbot_store *st);
int tlbot_store_commit(struct tlbot_store *st);
void tlbot_store_rollback(struct tlbot_store *st);
/* Savepoints for one command inside the batch transaction. */
int tlbot_store_savepoint(struct tlbot_store *st);
int tlbot_store_release(struct tlbot_store *st);
void tlbot_store_rollback_to(struct tlbot_store *st);

/* Run a constant SQL script (no user data). Returns 0 or -1 (logged). */
int tlbot_store_exec(struct tlbot_store *st, const char *sql);

/* kv: returns 0 and a new string in *out (caller frees), 1 when absent,
 * -1 on error. */
int tlbot_store_kv_get(struct tlbot_store *st, const char *key, char **out);
int tlbot_store_kv_set(struct tlbot_store *st, const char *key, const char *value);
int tlbot_store_kv_del(struct tlbot_store *st, const char *key);

/* Handled events: 1 if seen, 0 if not, -1 on error. */
int tlbot_store_event_seen(struct tlbot_store *st, const char *event_id);
int tlbot_store_event_mark(struct tlbot_store *st, const char *event_id, const char *room_id);
/* Keep only the newest max handled ids. */
int tlbot_store_events_trim(struct tlbot_store *st, int max);

/* Room membership of the bot and room state. */
int tlbot_store_room_set(struct tlbot_store *st, const char *room_id, const char *membership,
			 const char *inviter);
/* 0 and a new string (caller frees), 1 absent, -1 error. */
int tlbot_store_room_membership(struct tlbot_store *st, const char *room_id, char **out);
int tlbot_store_state_put(struct tlbot_store *st, const char *room_id, const char *type,
			  const char *state_key, const char *sender, const char *content_json);
/* Commands' outcomes by event id (ok 1: ran, 0: refused or unknown), for
 * edits of them by the same sender. get: 0 (filled), 1 unknown (or
 * another sender's), -1 error. noted: the "edits are not re-run" note was
 * sent. */
int tlbot_store_outcome_set(struct tlbot_store *st, const char *event_id, const char *room_id,
			    const char *sender, int ok);
int tlbot_store_outcome_get(struct tlbot_store *st, const char *event_id, const char *sender,
			    int *ok, int *noted);
int tlbot_store_outcome_noted(struct tlbot_store *st, const char *event_id);
/* What GET /profile said of a user: found 1 (displayname may be NULL) or
 * 0 (no such user). 0 or -1. */
int tlbot_store_profile_put(struct tlbot_store *st, const char *user_id, int found,
			    const char *displayname);
/* Pending outbox rows of kind with the same content as row id, other than
 * it: the count, or -1. */
int tlbot_store_outbox_pending_same(struct tlbot_store *st, int64_t id, const char *kind,
				    const char *content);
/* A member from /joined_members: stored unless the room's state already
 * has that member's event (what /sync said is newer). 0 or -1. */
int tlbot_store_member_fill(struct tlbot_store *st, const char *room_id, const char *user_id,
			    const char *content_json);
/* The sender of a stored state event: 0 and a new string, 1 absent, -1. */
int tlbot_store_state_sender(struct tlbot_store *st, const char *room_id, const char *type,
			     const char *state_key, char **sender);
int tlbot_store_state_get(struct tlbot_store *st, const char *room_id, const char *type,
			  const char *state_key, char **content_json);
int tlbot_store_joined_count(struct tlbot_store *st);

/* DM rooms: the room the bot uses for direct messages with user. */
int tlbot_store_dm_get(struct tlbot_store *st, const char *user_id, char **room_id);
int tlbot_store_dm_set(struct tlbot_store *st, const char *user_id, const char *room_id);
/* A room the bot created and is joined to, with user_id invited or joined,
 * that is no recorded DM room: one created just before a kill -9, before
 * it was recorded. 0 and a new string in *room_id (caller frees), 1 when
 * there is none, -1 on error. */
int tlbot_store_dm_orphan(struct tlbot_store *st, const char *bot_user, const char *user_id,
			  char **room_id);
/* The DM partner if room_id is one of the bot's DM rooms (0), else 1. */
int tlbot_store_dm_user(struct tlbot_store *st, const char *room_id, char **user_id);

/* Outbox. kind: "send" (room_id, event_type, content), "dm" (user_id,
 * event_type, content), "join"/"leave" (room_id), "file" (room_id,
 * content = JSON with filename, mimetype, caption; data in blob),
 * "members" (room_id: ask /joined_members), "profile" (user_id: ask
 * /profile, then run the command in content again), "state" (room_id,
 * event_type, content; user_id holds the state key).
 * txn_id must be unique and derived from the cause; enqueueing an existing
 * txn_id is a no-op (returns 0). */
int tlbot_store_outbox_add(struct tlbot_store *st, const char *txn_id, const char *kind,
			   const char *room_id, const char *user_id, const char *event_type,
			   const char *content, const void *blob, int bloblen);

struct tlbot_outbox_row {
	int64_t id;
	char *txn_id, *kind, *room_id, *user_id, *event_type, *content;
	void *blob;
	int bloblen;
	int attempts;
};
/* The oldest pending row: 0 (row filled; release it), 1 none, -1 error. */
int tlbot_store_outbox_next(struct tlbot_store *st, struct tlbot_outbox_row *row);
/* The row id if it is still pending: 0 (filled), 1 not pending, -1 error. */
int tlbot_store_outbox_get(struct tlbot_store *st, int64_t id, struct tlbot_outbox_row *row);
/* Pending rows with id > after_id, oldest first, at most limit: fn gets the
 * columns the worker orders by (dm_user: the DM partner when room_id is a
 * DM room, else NULL; strings valid during the call); fn returning non-0
 * stops with -1. Returns the number of rows, or -1. */
int tlbot_store_outbox_scan(struct tlbot_store *st, int64_t after_id, int limit,
			    int (*fn)(void *arg, int64_t id, const char *txn_id, const char *kind,
				      const char *room_id, const char *user_id, const char *dm_user),
			    void *arg);
void tlbot_store_outbox_row_release(struct tlbot_outbox_row *row);
int tlbot_store_outbox_done(struct tlbot_store *st, int64_t id, const char *event_id);
int tlbot_store_outbox_fail(struct tlbot_store *st, int64_t id, const char *error, int permanent);
int tlbot_store_outbox_pending(struct tlbot_store *st);
/* Rewrite a "dm" row into a "send" row to room_id once the DM room exists
 * (a "file" row without a room keeps its kind and gets the room). */
int tlbot_store_outbox_resolve_dm(struct tlbot_store *st, int64_t id, const char *room_id);

/* Counters: next value (1, 2, ...). -1 on error. */
int64_t tlbot_store_next_id(struct tlbot_store *st, const char *name);

/* Jobs. */
int64_t tlbot_store_job_schedule(struct tlbot_store *st, const char *kind, const char *key,
				 const char *room_id, time_t due, const char *payload);
int tlbot_store_job_cancel(struct tlbot_store *st, const char *key);
struct tlbot_job_row {
	int64_t id;
	char *kind, *key, *room_id, *payload;
	time_t due;
};
/* The earliest pending job due at or before now: 0 (filled), 1 none, -1. */
int tlbot_store_job_next_due(struct tlbot_store *st, time_t now, struct tlbot_job_row *row);
/* Earliest pending due time, or 0 when there is none (-1 on error). */
time_t tlbot_store_job_earliest(struct tlbot_store *st);
void tlbot_store_job_row_release(struct tlbot_job_row *row);
/* Count one more store failure of job id; returns the count, or -1. */
int64_t tlbot_store_job_attempt(struct tlbot_store *st, int64_t id);
int tlbot_store_job_finish(struct tlbot_store *st, int64_t id, const char *state, time_t at);

/* Housekeeping: delete sent/failed outbox rows and finished jobs older
 * than before (epoch s). Returns rows deleted, or -1. */
int tlbot_store_prune(struct tlbot_store *st, time_t before);

/* User preferences kept by the core. */
int tlbot_store_dm_enabled(struct tlbot_store *st, const char *user_id, int dflt);
int tlbot_store_set_dm_enabled(struct tlbot_store *st, const char *user_id, int on);

#endif
