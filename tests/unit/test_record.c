/* Records described once (commands/record.c): a toy record's field table
 * drives its SELECT list, INSERT, reading, updates with history, edit
 * parameters and values; a record keyed by two columns (a team member's
 * room and user); and the experiment's and team member's tables match
 * their schemas. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cmdtest.h"
#include "tap.h"
#include "tlbot/ctx.h"

#include "../../commands/experiment.h"
#include "../../commands/record.h"
#include "../../commands/team.h"

/* A toy record: adding a field is one row here (and a column below). */
#define TOY_FIELDS(X)                                                                   \
	X(id, "id", "id", R_ID, 0, RE_FIXED, REC_EXPORTED, "id")                        \
	X(name, "name", "name", R_TEXT, 20, RE_EDIT, REC_REQUIRED | REC_SHOWN, "name")   \
	X(due, "due_date", "due", R_DATE, 0, RE_EDIT, REC_EXPORTED, "due date")          \
	X(score, "score", "score", R_REAL, 0, RE_EDIT, REC_EXPORTED, "score")            \
	X(parent, "parent_id", "parent", R_REF, 0, RE_EDIT, 0, "parent")                 \
	X(who, "who", "who", R_USER, 0, RE_FIXED, REC_INTERNAL, "who")                   \
	X(at, "at", "at", R_TIME, 0, RE_FIXED, REC_INTERNAL, "created")

struct toy {
	TOY_FIELDS(REC_X_MEMBER)
};

#define TOY_X_FIELD(...) REC_X_FIELD(struct toy, __VA_ARGS__)
static const struct rec_field toy_fields[] = { TOY_FIELDS(TOY_X_FIELD){ NULL, NULL, 0, 0, 0, NULL, 0 } };
static const struct rec_desc toy_desc = { "toys", "T", "P", "at", toy_fields };

#define REC_REF_PREFIX "P"
static const struct tlbot_param toy_params[] = { TOY_FIELDS(REC_X_EDIT_PARAM)TLBOT_PARAMS_END };

/* A record without a number: its key is (room, user), like a team member. */
#define PAIR_FIELDS(X)                                                          \
	X(room, "room_id", "room", R_TEXT, 0, RE_FIXED, REC_KEY | REC_INTERNAL, "room") \
	X(user, "user_id", "user", R_USER, 0, RE_FIXED, REC_KEY, "user")             \
	X(role, "role", "role", R_TEXT, 0, RE_EDIT, 0, "role")                       \
	X(score, "score", "score", R_REAL, 0, RE_EDIT, 0, "score")                   \
	X(at, "at", "at", R_TIME, 0, RE_FIXED, REC_INTERNAL, "changed")

struct pair {
	PAIR_FIELDS(REC_X_MEMBER)
};

#define PAIR_X_FIELD(...) REC_X_FIELD(struct pair, __VA_ARGS__)
static const struct rec_field pair_fields[] = { PAIR_FIELDS(PAIR_X_FIELD){ NULL, NULL, 0, 0, 0, NULL, 0 } };
static const struct rec_desc pair_desc = { "pairs", "S", NULL, "at", pair_fields };

static struct cmdtest t;
static struct tlbot_ctx ctx;

static void
setup(void)
{
	cmdtest_init(&t);
	sqlite3_exec(t.st.db, "CREATE TABLE toys (id INTEGER PRIMARY KEY, name TEXT, due_date TEXT,"
		     " score REAL, parent_id INTEGER, who TEXT, at INTEGER)", NULL, NULL, NULL);
	sqlite3_exec(t.st.db, "CREATE TABLE pairs (room_id TEXT NOT NULL, user_id TEXT NOT NULL,"
		     " role TEXT, score REAL, at INTEGER, PRIMARY KEY (room_id, user_id))", NULL, NULL,
		     NULL);
	tlbot_ctx_init(&ctx, &t.cfg, &t.st, "@tlbot:test");
	ctx.room_id = "!r:test";
	ctx.sender = "@alice:test";
	ctx.now = 1795000000;
}

static void
teardown(void)
{
	tlbot_ctx_release(&ctx);
	cmdtest_release(&t);
}

TEST(select_insert_read)
{
	struct tlbot_buf b;
	struct toy a = { 0 }, r;
	char v[64];

	setup();
	tlbot_buf_init(&b, 1024);
	CHECK_INT(rec_select(&toy_desc, "x", &b), ==, 0);
	CHECK_STR(tlbot_buf_str(&b), "SELECT x.id, x.name, x.due_date, x.score, x.parent_id, x.who,"
		  " x.at FROM toys x ");
	tlbot_buf_release(&b);
	a.id = 7;
	a.name = "Seven";
	a.due = "2026-12-01";
	a.score = (struct rec_num){ 1, 2.5 };
	a.parent = 3;
	a.who = NULL;
	a.at = 42;
	CHECK_INT(rec_insert(&ctx, &toy_desc, &a), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM toys WHERE id = 7 AND name = 'Seven' AND"
				" score = 2.5 AND parent_id = 3 AND who IS NULL AND at = 42", NULL), ==, 1);
	memset(&r, 0, sizeof(r));
	CHECK_INT(rec_load(&ctx, &toy_desc, 7, &r), ==, 0);
	CHECK_STR(r.name, "Seven");
	CHECK_STR(r.due, "2026-12-01");
	CHECK(r.score.has && r.score.v == 2.5);
	CHECK(r.who == NULL);
	rec_value(&toy_desc, rec_field_by_flag(&toy_desc, "parent"), &r, v, sizeof(v));
	CHECK_STR(v, "P-3");
	rec_value(&toy_desc, rec_field_by_flag(&toy_desc, "score"), &r, v, sizeof(v));
	CHECK_STR(v, "2.5");
	rec_release(&toy_desc, &r);
	CHECK(r.name == NULL && r.due == NULL);
	CHECK_INT(rec_load(&ctx, &toy_desc, 8, &r), ==, 1);
	teardown();
}

TEST(updates_write_history)
{
	struct toy a = { 0 }, r;

	setup();
	a.id = 1;
	a.name = "One";
	rec_insert(&ctx, &toy_desc, &a);
	memset(&r, 0, sizeof(r));
	CHECK_INT(rec_load(&ctx, &toy_desc, 1, &r), ==, 0);
	ctx.now += 60;
	CHECK_INT(rec_set_text(&ctx, &toy_desc, &r, rec_field_by_column(&toy_desc, "name"), "Uno",
			       "edited"), ==, 0);
	CHECK_INT(rec_set_text(&ctx, &toy_desc, &r, rec_field_by_column(&toy_desc, "name"), "Uno",
			       "edited"), ==, 0); /* unchanged: no row */
	CHECK_INT(rec_set_num(&ctx, &toy_desc, &r, rec_field_by_flag(&toy_desc, "score"),
			      (struct rec_num){ 1, 4 }, "edited"), ==, 0);
	CHECK_INT(rec_set_int(&ctx, &toy_desc, &r, rec_field_by_flag(&toy_desc, "parent"), 9,
			      "moved"), ==, 0);
	CHECK_STR(r.name, "Uno");
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM toys WHERE id = 1 AND name = 'Uno' AND"
				" score = 4 AND parent_id = 9 AND at = 1795000060", NULL), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE kind = 'T'", NULL), ==, 3);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE kind = 'T' AND record_id = 1"
				" AND field = 'name' AND old = 'One' AND new = 'Uno' AND actor = ?",
				"@alice:test"), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE field = 'score' AND old IS NULL"
				" AND new = '4'", NULL), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE field = 'parent_id' AND"
				" old = 'P-0' AND new = 'P-9' AND action = 'moved'", NULL), ==, 1);
	rec_release(&toy_desc, &r);
	teardown();
}

TEST(edit_params_and_flags_from_the_table)
{
	const struct rec_field *f;
	size_t n = 0;

	/* one typed parameter per RE_EDIT row, in table order */
	CHECK_STR(toy_params[0].name, "--name");
	CHECK_INT(toy_params[0].type, ==, TLBOT_P_TEXT);
	CHECK_STR(toy_params[1].name, "--due");
	CHECK_INT(toy_params[1].type, ==, TLBOT_P_DATE);
	CHECK(toy_params[1].mode & TLBOT_NONE_OK);
	CHECK_STR(toy_params[2].name, "--score");
	CHECK_INT(toy_params[2].type, ==, TLBOT_P_NUM);
	CHECK_STR(toy_params[3].name, "--parent");
	CHECK_STR(toy_params[3].choices, "P");
	CHECK(toy_params[4].name == NULL);
	CHECK_STR(toy_params[1].desc, "due date");
	for (f = toy_fields; f->column; f++)
		n += (f->flags & REC_EDITABLE) != 0;
	CHECK_INT((int)n, ==, 4);
	CHECK(rec_field_by_flag(&toy_desc, "name")->flags & REC_REQUIRED);
	CHECK_INT((int)rec_field_by_flag(&toy_desc, "name")->max, ==, 20);
	CHECK(rec_field_by_flag(&toy_desc, "nope") == NULL);
}

TEST(experiment_table_matches_its_schema)
{
	const struct rec_field *f;
	char sql[256];
	int n = 0;

	setup();
	CHECK_INT(tlbot_exp_desc.fields[0].type, ==, R_ID);
	for (f = tlbot_exp_desc.fields; f->column; f++, n++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM pragma_table_info('experiments')"
			 " WHERE name = ?");
		if (cmdtest_count(&t, sql, f->column) != 1)
			printf("# no column %s\n", f->column);
		CHECK_INT(cmdtest_count(&t, sql, f->column), ==, 1);
		CHECK(f->label && *f->label);
		CHECK(rec_field_by_flag(&tlbot_exp_desc, f->flag) == f); /* flags are unique */
	}
	/* every column of the table is a field: nothing is read or written
	 * past the table */
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM pragma_table_info('experiments')", NULL), ==,
		  n);
	CHECK(rec_field_by_flag(&tlbot_exp_desc, "until")->flags & REC_EDITABLE);
	CHECK(!(rec_field_by_flag(&tlbot_exp_desc, "status")->flags & REC_EDITABLE));
	teardown();
}

TEST(composite_key)
{
	struct pair a = { .room = "!a:test", .user = "@u:test", .role = "data", .at = 1 };
	struct pair b = { .room = "!b:test", .user = "@u:test", .role = "policy", .at = 2 };
	struct pair key = { .room = "!b:test", .user = "@u:test" }, r;
	struct tlbot_db_rows q;
	int n = 0;

	setup();
	CHECK(rec_is_key(rec_field_by_flag(&pair_desc, "room")));
	CHECK(rec_is_key(rec_field_by_flag(&pair_desc, "user")));
	CHECK(!rec_is_key(rec_field_by_flag(&pair_desc, "role")));
	CHECK(rec_is_key(rec_field_by_flag(&toy_desc, "id"))); /* R_ID is a key */
	CHECK_INT(rec_insert(&ctx, &pair_desc, &a), ==, 0);
	CHECK_INT(rec_insert(&ctx, &pair_desc, &b), ==, 0);
	/* found by both columns of its key */
	memset(&r, 0, sizeof(r));
	CHECK_INT(rec_load_key(&ctx, &pair_desc, &key, &r), ==, 0);
	CHECK_STR(r.room, "!b:test");
	CHECK_STR(r.role, "policy");
	CHECK_INT((int)r.at, ==, 2);
	/* an update touches that row only, and writes no history (no number) */
	ctx.now += 60;
	CHECK_INT(rec_set_text(&ctx, &pair_desc, &r, rec_field_by_flag(&pair_desc, "role"), "digital",
			       "edited"), ==, 0);
	CHECK_INT(rec_set_num(&ctx, &pair_desc, &r, rec_field_by_flag(&pair_desc, "score"),
			      (struct rec_num){ 1, 3 }, "edited"), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM pairs WHERE room_id = '!b:test' AND"
				" role = 'digital' AND score = 3 AND at = 1795000060", NULL), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM pairs WHERE room_id = '!a:test' AND"
				" role = 'data' AND score IS NULL AND at = 1", NULL), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE kind = 'S'", NULL), ==, 0);
	rec_release(&pair_desc, &r);
	/* the key may be the record itself; none leaves it as it was */
	r = (struct pair){ .room = "!a:test", .user = "@u:test" };
	CHECK_INT(rec_load_key(&ctx, &pair_desc, &r, &r), ==, 0);
	CHECK_STR(r.role, "data");
	rec_release(&pair_desc, &r);
	r = (struct pair){ .room = "!c:test", .user = "@u:test" };
	CHECK_INT(rec_load_key(&ctx, &pair_desc, &r, &r), ==, 1);
	CHECK_STR(r.room, "!c:test");
	CHECK(r.role == NULL);
	/* rows by the caller's WHERE */
	CHECK_INT(rec_query(&ctx, &pair_desc, &q, "WHERE x.user_id = ? ORDER BY x.room_id DESC",
			    "t", "@u:test"), ==, 0);
	while (tlbot_db_next(&q) > 0) {
		CHECK_INT(rec_read(&pair_desc, &q, &r), ==, 0);
		CHECK_STR(r.room, n == 0 ? "!b:test" : "!a:test");
		rec_release(&pair_desc, &r);
		n++;
	}
	tlbot_db_done(&q);
	CHECK_INT(n, ==, 2);
	/* deleted by its key: one row, then none */
	CHECK_INT(rec_delete(&ctx, &pair_desc, &key), ==, 1);
	CHECK_INT(rec_delete(&ctx, &pair_desc, &key), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM pairs", NULL), ==, 1);
	/* a key column is not changed in place: refused, ctx marked */
	memset(&r, 0, sizeof(r));
	r.room = "!a:test";
	r.user = "@u:test";
	CHECK_INT(rec_load_key(&ctx, &pair_desc, &r, &r), ==, 0);
	CHECK_INT(rec_set_text(&ctx, &pair_desc, &r, rec_field_by_flag(&pair_desc, "user"), "@v:test",
			       "edited"), ==, -1);
	CHECK(ctx.db_failed);
	CHECK_STR(r.user, "@u:test");
	rec_release(&pair_desc, &r);
	teardown();
}

/* tlbot_db_bind, which record.c binds a record's values with: a failed
 * bind marks the context like every other store call. */
TEST(bind_marks_the_context)
{
	struct tlbot_db_rows q;
	int64_t n = 0;

	setup();
	CHECK_INT(tlbot_db_query(&ctx, &q, "SELECT ?1 + ?2, ?3 IS NULL", "i", (int64_t)40), ==, 0);
	CHECK_INT(tlbot_db_bind(&q, 2, 'n', 1, 2.0), ==, 0);
	CHECK_INT(tlbot_db_bind(&q, 3, 't', (const char *)NULL), ==, 0);
	CHECK_INT(tlbot_db_next(&q), ==, 1);
	n = tlbot_db_col_int(&q, 0);
	CHECK_INT((int)n, ==, 42);
	CHECK_INT((int)tlbot_db_col_int(&q, 1), ==, 1);
	tlbot_db_done(&q);
	CHECK(!ctx.db_failed);
	CHECK_INT(tlbot_db_query(&ctx, &q, "SELECT ?1", ""), ==, 0);
	CHECK_INT(tlbot_db_bind(&q, 5, 'i', (int64_t)1), ==, -1); /* no parameter 5 */
	tlbot_db_done(&q);
	CHECK(ctx.db_failed);
	teardown();
}

TEST(team_member_table_matches_its_schema)
{
	const struct rec_field *f;
	int n = 0, keys = 0;

	setup();
	for (f = tlbot_team_member_desc.fields; f->column; f++, n++) {
		if (cmdtest_count(&t, "SELECT count(*) FROM pragma_table_info('team_members')"
				  " WHERE name = ?", f->column) != 1)
			printf("# no column %s\n", f->column);
		CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM pragma_table_info('team_members')"
					" WHERE name = ?", f->column), ==, 1);
		/* the table's key is the table's primary key */
		CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM pragma_table_info('team_members')"
					" WHERE name = ? AND pk > 0", f->column), ==,
			  rec_is_key(f) ? 1 : 0);
		keys += rec_is_key(f);
		CHECK(rec_field_by_flag(&tlbot_team_member_desc, f->flag) == f);
	}
	CHECK_INT(keys, ==, 2);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM pragma_table_info('team_members')", NULL),
		  ==, n);
	teardown();
}

TEST(day_in_words)
{
	char out[32];

	rec_day("2026-12-01", "2026-11-18", out, sizeof(out));
	CHECK_STR(out, "1 Dec");
	rec_day("2027-01-31", "2026-11-18", out, sizeof(out));
	CHECK_STR(out, "31 Jan 2027");
	rec_day("soon", "2026-11-18", out, sizeof(out));
	CHECK_STR(out, "soon");
}

static const struct tap_test tests[] = {
	TEST_ENTRY(select_insert_read),
	TEST_ENTRY(updates_write_history),
	TEST_ENTRY(edit_params_and_flags_from_the_table),
	TEST_ENTRY(experiment_table_matches_its_schema),
	TEST_ENTRY(composite_key),
	TEST_ENTRY(bind_marks_the_context),
	TEST_ENTRY(team_member_table_matches_its_schema),
	TEST_ENTRY(day_in_words),
	TEST_END,
};

TAP_MAIN(tests)
