/* Store: migrations, kv, handled events, outbox, jobs, counters, and the
 * durability of one batch transaction across a reopen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "tlbot/command.h"
#include "tlbot/store.h"

static char dbpath[256];

static void
fresh(struct tlbot_store *st)
{
	snprintf(dbpath, sizeof(dbpath), "/tmp/tlbot-test-store-%d.db", (int)getpid());
	unlink(dbpath);
	CHECK(tlbot_store_open(st, dbpath, tlbot_command_schemas()) == 0);
}

static void
cleanup(struct tlbot_store *st)
{
	char p[300];

	tlbot_store_close(st);
	unlink(dbpath);
	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
}

static long long
one_int(struct tlbot_store *st, const char *sql)
{
	sqlite3_stmt *s;
	long long v = -1;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
		return -2;
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

TEST(migrations_wal_and_reopen)
{
	struct tlbot_store st;
	char *mode = NULL;

	fresh(&st);
	CHECK_INT(one_int(&st, "PRAGMA user_version"), >=, 1);
	CHECK_INT(one_int(&st, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'outbox'"), ==, 1);
	CHECK_INT(one_int(&st, "SELECT COUNT(*) FROM schema_version"), >=, 1);
	{
		sqlite3_stmt *s;

		sqlite3_prepare_v2(st.db, "PRAGMA journal_mode", -1, &s, NULL);
		if (sqlite3_step(s) == SQLITE_ROW)
			mode = strdup((const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
	}
	CHECK_STR(mode, "wal");
	free(mode);
	tlbot_store_close(&st);
	/* reopening applies nothing twice */
	CHECK(tlbot_store_open(&st, dbpath, tlbot_command_schemas()) == 0);
	CHECK_INT(one_int(&st, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'kv'"), ==, 1);
	cleanup(&st);
}

TEST(kv)
{
	struct tlbot_store st;
	char *v = NULL;

	fresh(&st);
	CHECK_INT(tlbot_store_kv_get(&st, "next_batch", &v), ==, 1);
	CHECK(v == NULL);
	CHECK_INT(tlbot_store_kv_set(&st, "next_batch", "s1"), ==, 0);
	CHECK_INT(tlbot_store_kv_set(&st, "next_batch", "s2"), ==, 0);
	CHECK_INT(tlbot_store_kv_get(&st, "next_batch", &v), ==, 0);
	CHECK_STR(v, "s2");
	free(v);
	CHECK_INT(tlbot_store_kv_del(&st, "next_batch"), ==, 0);
	CHECK_INT(tlbot_store_kv_get(&st, "next_batch", &v), ==, 1);
	cleanup(&st);
}

TEST(rolled_back_batch_leaves_nothing)
{
	struct tlbot_store st;
	char *v = NULL;

	fresh(&st);
	CHECK_INT(tlbot_store_begin(&st), ==, 0);
	tlbot_store_kv_set(&st, "next_batch", "s9");
	tlbot_store_event_mark(&st, "$a", "!r");
	tlbot_store_outbox_add(&st, "tlbot.e.$a.0", "send", "!r", NULL, "m.room.message", "{}", NULL, 0);
	tlbot_store_rollback(&st);
	CHECK_INT(tlbot_store_kv_get(&st, "next_batch", &v), ==, 1);
	CHECK_INT(tlbot_store_event_seen(&st, "$a"), ==, 0);
	CHECK_INT(tlbot_store_outbox_pending(&st), ==, 0);
	/* committed: survives a reopen (what a crash after commit sees) */
	CHECK_INT(tlbot_store_begin(&st), ==, 0);
	tlbot_store_kv_set(&st, "next_batch", "s9");
	tlbot_store_event_mark(&st, "$a", "!r");
	CHECK_INT(tlbot_store_commit(&st), ==, 0);
	tlbot_store_close(&st);
	CHECK(tlbot_store_open(&st, dbpath, tlbot_command_schemas()) == 0);
	CHECK_INT(tlbot_store_kv_get(&st, "next_batch", &v), ==, 0);
	CHECK_STR(v, "s9");
	free(v);
	CHECK_INT(tlbot_store_event_seen(&st, "$a"), ==, 1);
	cleanup(&st);
}

TEST(savepoint_undoes_one_command)
{
	struct tlbot_store st;

	fresh(&st);
	tlbot_store_begin(&st);
	tlbot_store_outbox_add(&st, "t1", "send", "!r", NULL, "m.room.message", "{}", NULL, 0);
	CHECK_INT(tlbot_store_savepoint(&st), ==, 0);
	tlbot_store_outbox_add(&st, "t2", "send", "!r", NULL, "m.room.message", "{}", NULL, 0);
	CHECK_INT(tlbot_store_next_id(&st, "challenge"), ==, 1);
	tlbot_store_rollback_to(&st);
	CHECK_INT(tlbot_store_commit(&st), ==, 0);
	CHECK_INT(tlbot_store_outbox_pending(&st), ==, 1);
	/* the counter went back with the refused command */
	CHECK_INT(tlbot_store_next_id(&st, "challenge"), ==, 1);
	CHECK_INT(tlbot_store_next_id(&st, "challenge"), ==, 2);
	cleanup(&st);
}

TEST(handled_events_bounded)
{
	struct tlbot_store st;
	char id[32];
	int i;

	fresh(&st);
	for (i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "$e%d", i);
		CHECK_INT(tlbot_store_event_mark(&st, id, "!r"), ==, 0);
	}
	CHECK_INT(tlbot_store_event_mark(&st, "$e3", "!r"), ==, 0); /* again: ignored */
	CHECK_INT(tlbot_store_events_trim(&st, 20), ==, 0);
	CHECK_INT(one_int(&st, "SELECT COUNT(*) FROM handled_events"), ==, 20);
	CHECK_INT(tlbot_store_event_seen(&st, "$e49"), ==, 1);
	CHECK_INT(tlbot_store_event_seen(&st, "$e30"), ==, 1);
	CHECK_INT(tlbot_store_event_seen(&st, "$e29"), ==, 0);
	cleanup(&st);
}

TEST(outbox_order_idempotent_and_states)
{
	struct tlbot_store st;
	struct tlbot_outbox_row row;
	char blob[] = "a,b\n1,2\n";

	fresh(&st);
	CHECK_INT(tlbot_store_outbox_add(&st, "t1", "send", "!r", NULL, "m.room.message", "{\"n\":1}", NULL, 0), ==, 0);
	CHECK_INT(tlbot_store_outbox_add(&st, "t2", "dm", NULL, "@u:x", "m.room.message", "{\"n\":2}", NULL, 0), ==, 0);
	CHECK_INT(tlbot_store_outbox_add(&st, "t1", "send", "!r", NULL, "m.room.message", "{\"n\":9}", NULL, 0), ==, 0);
	CHECK_INT(tlbot_store_outbox_add(&st, "t3", "file", "!r", NULL, "m.room.message", "{}", blob, (int)strlen(blob)), ==, 0);
	CHECK_INT(tlbot_store_outbox_pending(&st), ==, 3);
	CHECK_INT(tlbot_store_outbox_next(&st, &row), ==, 0);
	CHECK_STR(row.txn_id, "t1");
	CHECK_STR(row.content, "{\"n\":1}"); /* the duplicate enqueue changed nothing */
	CHECK_INT(tlbot_store_outbox_fail(&st, row.id, "HTTP 502", 0), ==, 0);
	tlbot_store_outbox_row_release(&row);
	CHECK_INT(tlbot_store_outbox_next(&st, &row), ==, 0);
	CHECK_STR(row.txn_id, "t1"); /* a retryable failure keeps it first */
	CHECK_INT(row.attempts, ==, 1);
	CHECK_INT(tlbot_store_outbox_done(&st, row.id, "$sent"), ==, 0);
	tlbot_store_outbox_row_release(&row);
	CHECK_INT(tlbot_store_outbox_next(&st, &row), ==, 0);
	CHECK_STR(row.kind, "dm");
	CHECK_STR(row.user_id, "@u:x");
	CHECK_INT(tlbot_store_outbox_resolve_dm(&st, row.id, "!dm"), ==, 0);
	tlbot_store_outbox_row_release(&row);
	CHECK_INT(tlbot_store_outbox_next(&st, &row), ==, 0);
	CHECK_STR(row.kind, "send");
	CHECK_STR(row.room_id, "!dm");
	CHECK_INT(tlbot_store_outbox_fail(&st, row.id, "M_FORBIDDEN", 1), ==, 0);
	tlbot_store_outbox_row_release(&row);
	CHECK_INT(tlbot_store_outbox_next(&st, &row), ==, 0);
	CHECK_STR(row.kind, "file");
	CHECK_INT(row.bloblen, ==, (int)strlen(blob));
	CHECK(row.blob && memcmp(row.blob, blob, strlen(blob)) == 0);
	tlbot_store_outbox_row_release(&row);
	cleanup(&st);
}

TEST(jobs_fire_once_and_keys_unique)
{
	struct tlbot_store st;
	struct tlbot_job_row row;
	int64_t id;

	fresh(&st);
	id = tlbot_store_job_schedule(&st, "k", "a.1", "!r", 100, "{\"x\":1}");
	CHECK_INT(id, >, 0);
	/* same key, not fired: moves it */
	CHECK_INT(tlbot_store_job_schedule(&st, "k", "a.1", "!r", 50, NULL), ==, id);
	CHECK_INT(tlbot_store_job_schedule(&st, "k", "a.2", "!r", 200, NULL), >, 0);
	CHECK_INT(tlbot_store_job_earliest(&st), ==, 50);
	CHECK_INT(tlbot_store_job_next_due(&st, 49, &row), ==, 1);
	CHECK_INT(tlbot_store_job_next_due(&st, 60, &row), ==, 0);
	CHECK_STR(row.key, "a.1");
	CHECK_STR(row.payload, "{}");
	CHECK_INT(tlbot_store_job_finish(&st, row.id, "done", 60), ==, 0);
	tlbot_store_job_row_release(&row);
	/* fired: scheduling it again is a no-op, never a second firing */
	CHECK_INT(tlbot_store_job_schedule(&st, "k", "a.1", "!r", 70, NULL), ==, 0);
	CHECK_INT(tlbot_store_job_next_due(&st, 150, &row), ==, 1);
	CHECK_INT(tlbot_store_job_cancel(&st, "a.*"), ==, 1);
	CHECK_INT(tlbot_store_job_next_due(&st, 1000, &row), ==, 1);
	CHECK_INT(tlbot_store_job_earliest(&st), ==, 0);
	CHECK_INT(tlbot_store_prune(&st, 10000), ==, 2);
	cleanup(&st);
}

TEST(state_rooms_dm_prefs)
{
	struct tlbot_store st;
	char *v = NULL;

	fresh(&st);
	CHECK_INT(tlbot_store_state_put(&st, "!r", "m.room.create", "", "@c:x", "{\"room_version\":\"12\"}"), ==, 0);
	CHECK_INT(tlbot_store_state_get(&st, "!r", "m.room.create", "", &v), ==, 0);
	CHECK_STR(v, "{\"room_version\":\"12\"}");
	free(v);
	CHECK_INT(tlbot_store_state_sender(&st, "!r", "m.room.create", "", &v), ==, 0);
	CHECK_STR(v, "@c:x");
	free(v);
	CHECK_INT(tlbot_store_room_set(&st, "!r", "invite", "@c:x"), ==, 0);
	CHECK_INT(tlbot_store_room_set(&st, "!r", "join", NULL), ==, 0);
	CHECK_INT(tlbot_store_room_membership(&st, "!r", &v), ==, 0);
	CHECK_STR(v, "join");
	free(v);
	CHECK_INT(tlbot_store_joined_count(&st), ==, 1);
	CHECK_INT(tlbot_store_dm_set(&st, "@u:x", "!dm"), ==, 0);
	CHECK_INT(tlbot_store_dm_user(&st, "!dm", &v), ==, 0);
	CHECK_STR(v, "@u:x");
	free(v);
	CHECK_INT(tlbot_store_dm_user(&st, "!r", &v), ==, 1);
	CHECK_INT(tlbot_store_dm_enabled(&st, "@u:x", 1), ==, 1);
	CHECK_INT(tlbot_store_set_dm_enabled(&st, "@u:x", 0), ==, 0);
	CHECK_INT(tlbot_store_dm_enabled(&st, "@u:x", 1), ==, 0);
	cleanup(&st);
}

TEST(sql_metacharacters_are_data)
{
	struct tlbot_store st;
	char *v = NULL;
	const char *evil = "x'); DROP TABLE kv; --";

	fresh(&st);
	CHECK_INT(tlbot_store_kv_set(&st, evil, evil), ==, 0);
	CHECK_INT(tlbot_store_kv_get(&st, evil, &v), ==, 0);
	CHECK_STR(v, evil);
	free(v);
	CHECK_INT(one_int(&st, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'kv'"), ==, 1);
	cleanup(&st);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(migrations_wal_and_reopen),
	TEST_ENTRY(kv),
	TEST_ENTRY(rolled_back_batch_leaves_nothing),
	TEST_ENTRY(savepoint_undoes_one_command),
	TEST_ENTRY(handled_events_bounded),
	TEST_ENTRY(outbox_order_idempotent_and_states),
	TEST_ENTRY(jobs_fire_once_and_keys_unique),
	TEST_ENTRY(state_rooms_dm_prefs),
	TEST_ENTRY(sql_metacharacters_are_data),
	TEST_END,
};

TAP_MAIN(tests)
