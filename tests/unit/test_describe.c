/* MSC4391 command descriptions (bot/core/describe.c): state keys, the
 * content generated from the parameter tables, keeping rooms in step
 * within the bot's power, and structured invocations run as commands. */
#include <jansson.h>

#include "cmdtest.h"
#include "tap.h"
#include "tlbot/describe.h"
#include "tlbot/sha256.h"

#define ROOM "!team:test"
#define BOT "@tlbot:test"
#define MOD "@mod:test"

TEST(sha256_and_state_keys)
{
	uint8_t d[TLBOT_SHA256_LEN];
	char b64[TLBOT_SHA256_B64_LEN], key[TLBOT_SHA256_B64_LEN];

	tlbot_sha256("abc", 3, d);
	tlbot_base64(d, sizeof(d), b64);
	CHECK_STR(b64, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="); /* FIPS 180-2 B.1 */
	tlbot_sha256("", 0, d);
	tlbot_base64(d, sizeof(d), b64);
	CHECK_STR(b64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	/* the example in the MSC's text */
	tlbot_sha256_b64_2("ban", "@draupnir:draupnir.space", key);
	CHECK_STR(key, "JBDLR6YMe+72yqsEMi/MVdTmjN3ynPThMz+M7QLATZQ=");
	tlbot_base64((const uint8_t *)"ab", 2, b64);
	CHECK_STR(b64, "YWI=");
}

static const json_t *
param(const json_t *desc, const char *key)
{
	const json_t *list = json_object_get(desc, "parameters"), *p;
	size_t i;

	json_array_foreach(list, i, p)
		if (json_is_string(json_object_get(p, "key")) &&
		    strcmp(json_string_value(json_object_get(p, "key")), key) == 0)
			return p;
	return NULL;
}

static const char *
schema_type(const json_t *p)
{
	const json_t *s = json_object_get(p, "schema");

	if (strcmp(json_string_value(json_object_get(s, "schema_type")), "primitive") == 0)
		return json_string_value(json_object_get(s, "type"));
	return json_string_value(json_object_get(s, "schema_type"));
}

TEST(content_from_the_tables)
{
	const struct tlbot_cmd *c = tlbot_command_find("challenge");
	const struct tlbot_subcmd *s;
	json_t *d;
	size_t i;

	CHECK_OR_RETURN(c != NULL);
	for (s = c->subcmds; s->name && strcmp(s->name, "new") != 0; s++)
		;
	d = tlbot_describe_command(c, s);
	CHECK_OR_RETURN(d != NULL);
	CHECK_STR(json_string_value(json_object_get(d, "command")), "challenge new");
	CHECK_STR(json_string_value(json_object_get(
			  json_array_get(json_object_get(json_object_get(d, "description"), "m.text"), 0),
			  "body")),
		  "record a new challenge for this room's team");
	CHECK(param(d, "title") != NULL && json_object_get(param(d, "title"), "optional") == NULL);
	CHECK_STR(schema_type(param(d, "title")), "string");
	CHECK_STR(schema_type(param(d, "lead")), "user_id");
	CHECK_STR(schema_type(param(d, "due")), "string");
	CHECK(json_is_true(json_object_get(param(d, "due"), "optional")));
	CHECK_STR(json_string_value(json_object_get(d, "fi.mau.tail_parameter")), "title");
	json_decref(d);
	/* every command: keys unique (else clients hide it), enums as literal unions */
	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_cmd *f = tlbot_commands[i];

		s = f->subcmds;
		do {
			const json_t *list, *p, *q;
			size_t j, k;

			d = tlbot_describe_command(f, s);
			CHECK_OR_RETURN(d != NULL);
			list = json_object_get(d, "parameters");
			json_array_foreach(list, j, p) {
				for (k = j + 1; k < json_array_size(list); k++) {
					q = json_array_get(list, k);
					if (strcmp(json_string_value(json_object_get(p, "key")),
						   json_string_value(json_object_get(q, "key"))) == 0) {
						printf("#   %s: duplicate key %s\n",
						       json_string_value(json_object_get(d, "command")),
						       json_string_value(json_object_get(p, "key")));
						CHECK(0);
					}
				}
			}
			json_decref(d);
		} while (s && (++s)->name);
	}
	c = tlbot_command_find("experiment");
	for (s = c->subcmds; s->name && strcmp(s->name, "decide") != 0; s++)
		;
	d = tlbot_describe_command(c, s);
	CHECK_STR(schema_type(param(d, "decision")), "union");
	CHECK_INT(json_array_size(json_object_get(json_object_get(param(d, "decision"), "schema"),
						  "variants")), ==, 4);
	json_decref(d);
	/* a ROOM_ID parameter is MSC4391's room reference type */
	c = tlbot_command_find("admin");
	for (s = c->subcmds; s->name && strcmp(s->name, "leave") != 0; s++)
		;
	CHECK_OR_RETURN(s->name != NULL);
	d = tlbot_describe_command(c, s);
	CHECK_STR(schema_type(param(d, "room")), "room_id");
	json_decref(d);
}

static long long
state_rows(struct cmdtest *t, const char *type)
{
	return cmdtest_count(t, "SELECT COUNT(*) FROM outbox WHERE kind = 'state' AND event_type = ?",
			     type);
}

static size_t
ncommands(void)
{
	size_t i, n = 0;

	for (i = 0; tlbot_commands[i]; i++) {
		const struct tlbot_subcmd *s;

		if (tlbot_commands[i]->subcmds == NULL)
			n++;
		for (s = tlbot_commands[i]->subcmds; s && s->name; s++)
			n++;
	}
	return n;
}

TEST(rooms_kept_in_step_within_power)
{
	struct cmdtest t;
	sqlite3_stmt *s;

	cmdtest_init(&t);
	/* no power to send state: nothing, silently */
	cmdtest_power(&t, ROOM, MOD, 50);
	CHECK_INT(tlbot_describe_room(&t.cfg, &t.st, BOT, ROOM), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox", NULL), ==, 0);
	/* moderator: one event per command, of both types */
	cmdtest_power(&t, ROOM, BOT, 50);
	CHECK_INT(tlbot_describe_room(&t.cfg, &t.st, BOT, ROOM), ==, 0);
	CHECK_INT(state_rows(&t, TLBOT_MSC4391_TYPE), ==, (long long)ncommands());
	CHECK_INT(state_rows(&t, TLBOT_MSC4391_STABLE_TYPE), ==, (long long)ncommands());
	/* the same again: no new rows (same transaction ids) */
	CHECK_INT(tlbot_describe_room(&t.cfg, &t.st, BOT, ROOM), ==, 0);
	CHECK_INT(state_rows(&t, TLBOT_MSC4391_TYPE), ==, (long long)ncommands());
	/* the room's state echoes what was sent: nothing to do on the next start */
	sqlite3_prepare_v2(t.st.db, "SELECT user_id, event_type, content FROM outbox WHERE kind = 'state'",
			   -1, &s, NULL);
	while (sqlite3_step(s) == SQLITE_ROW)
		tlbot_store_state_put(&t.st, ROOM, (const char *)sqlite3_column_text(s, 1),
				      (const char *)sqlite3_column_text(s, 0), BOT,
				      (const char *)sqlite3_column_text(s, 2));
	sqlite3_finalize(s);
	sqlite3_exec(t.st.db, "DELETE FROM outbox", NULL, NULL, NULL);
	CHECK_INT(tlbot_describe_room(&t.cfg, &t.st, BOT, ROOM), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox", NULL), ==, 0);
	/* a description of a command that is gone is emptied */
	tlbot_store_state_put(&t.st, ROOM, TLBOT_MSC4391_TYPE, "gone-key", BOT,
			      "{\"command\":\"challenge frobnicate\",\"parameters\":[]}");
	CHECK_INT(tlbot_describe_room(&t.cfg, &t.st, BOT, ROOM), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox WHERE kind = 'state' AND user_id ="
			       " 'gone-key' AND content = '{}'", NULL), ==, 1);
	cmdtest_release(&t);
}

TEST(structured_invocations_run_as_commands)
{
	struct cmdtest t;

	cmdtest_init(&t);
	cmdtest_power(&t, ROOM, MOD, 50);
	CHECK_INT(cmdtest_event(&t, MOD, ROOM, "/challenge new Cut costs",
				"{\"m.mentions\":{\"user_ids\":[\"" BOT "\"]},"
				"\"org.matrix.msc4391.command\":{\"command\":\"challenge new\","
				"\"arguments\":{\"title\":\"Cut \\\"the\\\" cost\",\"due\":\"31 Jan\","
				"\"region\":\"Sheffield\"}}}", NULL, 0), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "C-1");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM challenges WHERE title = ? AND"
			       " due = '2027-01-31' AND region = 'Sheffield'", "Cut \"the\" cost"), ==, 1);
	/* the same checks as text */
	CHECK_INT(cmdtest_event(&t, MOD, ROOM, "x",
				"{\"m.bot.command\":{\"command\":\"challenge show\","
				"\"arguments\":{\"id\":\"C-99\"}}}", NULL, 0), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "no challenge C-99 here");
	CHECK_INT(cmdtest_event(&t, MOD, ROOM, "x",
				"{\"org.matrix.msc4391.command\":{\"command\":\"challenge list\","
				"\"arguments\":{\"page\":0}}}", NULL, 0), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "bad page '0'");
	/* a room reference is an object: its room_id (or id) is the argument,
	 * so the command gets as far as its permission check */
	CHECK_INT(cmdtest_event(&t, MOD, ROOM, "x",
				"{\"org.matrix.msc4391.command\":{\"command\":\"admin leave\","
				"\"arguments\":{\"room\":{\"room_id\":\"!other:test\","
				"\"via\":[\"test\"],\"type\":\"room_id\"}}}}", NULL, 0), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "not allowed");
	CHECK_INT(cmdtest_event(&t, MOD, ROOM, "x",
				"{\"org.matrix.msc4391.command\":{\"command\":\"admin leave\","
				"\"arguments\":{\"room\":{\"id\":\"!other:test\"}}}}", NULL, 0), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "not allowed");
	CHECK_INT(cmdtest_event(&t, MOD, ROOM, "x",
				"{\"org.matrix.msc4391.command\":{\"command\":\"admin leave\","
				"\"arguments\":{\"room\":{\"via\":[\"test\"]}}}}", NULL, 0), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "has a value of a type I do not take");
	/* addressed to another bot: not ours */
	CHECK_INT(cmdtest_event(&t, MOD, ROOM, "hello",
				"{\"m.mentions\":{\"user_ids\":[\"@other:test\"]},"
				"\"org.matrix.msc4391.command\":{\"command\":\"ping\",\"arguments\":{}}}",
				NULL, 0), ==, 0);
	CHECK_INT(cmdtest_event(&t, MOD, ROOM, "hello",
				"{\"org.matrix.msc4391.command\":{\"command\":\"nosuch\",\"arguments\":{}}}",
				NULL, 0), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unknown command !nosuch");
	cmdtest_release(&t);
}

/* Through the router as the daemon runs it: on the first batch every
 * joined team room is described, the bot's own (DM) rooms never. */
TEST(router_describes_team_rooms_on_start)
{
	struct cmdtest t;
	struct tlbot_router rt;
	json_t *batch;

	cmdtest_init(&t);
	/* a team room where the bot is a moderator, and a room the bot made */
	tlbot_store_room_set(&t.st, ROOM, "join", NULL);
	cmdtest_power(&t, ROOM, BOT, 50);
	tlbot_store_room_set(&t.st, "!dm:test", "join", NULL);
	tlbot_store_state_put(&t.st, "!dm:test", "m.room.create", "", BOT, "{\"room_version\":\"10\"}");
	cmdtest_power(&t, "!dm:test", BOT, 100);
	tlbot_router_init(&rt, &t.cfg, t.cfg.user_id, &t.st);
	rt.describe = 1;
	batch = json_pack("{s:s, s:{}}", "next_batch", "s1", "rooms");
	CHECK_INT(tlbot_router_apply(&rt, batch, NULL), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox WHERE kind = 'state' AND room_id = ?",
				ROOM), ==, 2 * (long long)ncommands());
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox WHERE room_id = '!dm:test'", NULL), ==, 0);
	CHECK_INT(rt.describe, ==, 2);
	/* later batches without a join describe nothing again */
	sqlite3_exec(t.st.db, "DELETE FROM outbox", NULL, NULL, NULL);
	json_object_set_new(batch, "next_batch", json_string("s2"));
	CHECK_INT(tlbot_router_apply(&rt, batch, "s1"), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox", NULL), ==, 0);
	json_decref(batch);
	cmdtest_release(&t);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(router_describes_team_rooms_on_start),
	TEST_ENTRY(sha256_and_state_keys),
	TEST_ENTRY(content_from_the_tables),
	TEST_ENTRY(rooms_kept_in_step_within_power),
	TEST_ENTRY(structured_invocations_run_as_commands),
	TEST_END,
};

TAP_MAIN(tests)
