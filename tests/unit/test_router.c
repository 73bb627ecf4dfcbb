/* The batch path without a network: first syncs, redelivery, own events,
 * notices, allow-lists, invites, limited timelines and the transaction. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cmdtest.h"
#include "tap.h"

static json_t *
msg(const char *id, const char *sender, const char *body, const char *msgtype)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:s}}", "event_id", id, "type",
			 "m.room.message", "sender", sender, "origin_server_ts",
			 (json_int_t)1795000000000LL, "content", "msgtype", msgtype, "body", body);
}

/* A batch with events in one joined room. Steals the events. */
static json_t *
batch(const char *next, const char *room, json_t *events, int limited)
{
	json_t *b = json_pack("{s:s, s:{s:{s:{s:{s:o, s:b, s:s}}}}}", "next_batch", next, "rooms",
			      "join", room, "timeline", "events", events, "limited", limited,
			      "prev_batch", "p0");
	return b;
}

static int
apply(struct cmdtest *t, json_t *b, const char *since)
{
	struct tlbot_router rt;
	int rc;

	tlbot_router_init(&rt, &t->cfg, t->cfg.user_id, &t->st);
	rc = tlbot_router_apply(&rt, b, since);
	json_decref(b);
	cmdtest_collect(t);
	return rc;
}

static void
setup(struct cmdtest *t)
{
	cmdtest_init(t);
	tlbot_config_release(&t->cfg);
	tlbot_config_init(&t->cfg);
	t->cfg.user_id = strdup("@tlbot:test");
	t->cfg.rate_limit_per_min = 0;
	tlbot_store_room_set(&t->st, "!r:test", "join", NULL);
}

TEST(first_sync_marks_history_handled)
{
	struct cmdtest t;
	char *v = NULL;

	setup(&t);
	CHECK_INT(apply(&t, batch("s1", "!r:test", json_pack("[o]", msg("$1", "@a:test", "!ping", "m.text")), 0), NULL), ==, 0);
	CHECK_INT((int)t.nout, ==, 0);
	CHECK_INT(tlbot_store_kv_get(&t.st, "next_batch", &v), ==, 0);
	CHECK_STR(v, "s1");
	free(v);
	/* redelivered later (a reconnect): still not answered */
	CHECK_INT(apply(&t, batch("s2", "!r:test", json_pack("[o]", msg("$1", "@a:test", "!ping", "m.text")), 0), "s1"), ==, 0);
	CHECK_INT((int)t.nout, ==, 0);
	cmdtest_release(&t);
}

TEST(answers_once_and_ignores_own_notice_outsider)
{
	struct cmdtest t;

	setup(&t);
	CHECK_INT(apply(&t, batch("s2", "!r:test", json_pack("[o,o,o,o,o]",
		msg("$1", "@a:test", "!ping", "m.text"),
		msg("$2", "@tlbot:test", "!ping", "m.text"),
		msg("$3", "@a:test", "!ping", "m.notice"),
		msg("$4", "@eve:elsewhere", "!ping", "m.text"),
		msg("$5", "@a:test", "hello", "m.text")), 0), "s1"), ==, 0);
	CHECK_INT((int)t.nout, ==, 1);
	CHECK_CONTAINS(t.out_content[0], "\"event_id\":\"$1\"");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "pong");
	/* the same event again (limited timeline overlap): nothing new */
	CHECK_INT(apply(&t, batch("s3", "!r:test", json_pack("[o]", msg("$1", "@a:test", "!ping", "m.text")), 0), "s2"), ==, 0);
	CHECK_INT((int)t.nout, ==, 0);
	cmdtest_release(&t);
}

TEST(malformed_events_skipped)
{
	struct cmdtest t;
	json_t *evs = json_pack("[{s:s}, {s:i, s:s}, {s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:{s:i}}, s, o]",
				"type", "m.room.message",
				"event_id", 5, "type", "m.room.message",
				"event_id", "$x", "type", "m.room.message", "sender", "@a:test", "content", "nope",
				"event_id", "$y", "type", "m.room.message", "sender", "@a:test", "content", "body", 3,
				"junk", msg("$ok", "@a:test", "!ping", "m.text"));

	setup(&t);
	CHECK_INT(apply(&t, batch("s2", "!r:test", evs, 0), "s1"), ==, 0);
	CHECK_INT((int)t.nout, ==, 1);
	cmdtest_release(&t);
}

TEST(invites_join_allowed_decline_others)
{
	struct cmdtest t;
	json_t *b = json_pack("{s:s, s:{s:{s:{s:{s:[{s:s, s:s, s:s, s:{s:s}}]}}, s:{s:{s:[{s:s, s:s, s:s, s:{s:s}}]}}}}}",
		"next_batch", "s2", "rooms", "invite",
		"!good:test", "invite_state", "events", "type", "m.room.member", "state_key", "@tlbot:test",
		"sender", "@a:test", "content", "membership", "invite",
		"!bad:test", "invite_state", "events", "type", "m.room.member", "state_key", "@tlbot:test",
		"sender", "@eve:elsewhere", "content", "membership", "invite");

	setup(&t);
	CHECK_INT(apply(&t, b, "s1"), ==, 0);
	CHECK_INT((int)t.nout, ==, 2);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox WHERE kind = 'join' AND room_id = '!good:test'", NULL), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM outbox WHERE kind = 'leave' AND room_id = '!bad:test'", NULL), ==, 1);
	cmdtest_release(&t);
}

static json_t *
gap_events(void *arg, const char *room_id, const char *prev_batch)
{
	int *calls = arg;

	(*calls)++;
	/* oldest first: an event already handled, then two missed commands */
	return json_pack("[o,o,o]", msg("$old", "@a:test", "!ping", "m.text"),
			 msg("$g1", "@a:test", "!ping", "m.text"), msg("$g2", "@a:test", "!ping", "m.text"));
}

static json_t *
gap_unreachable(void *arg, const char *room_id, const char *prev_batch)
{
	return NULL;
}

TEST(limited_timeline_fills_gap_or_retries)
{
	struct cmdtest t;
	struct tlbot_router rt;
	json_t *b;
	int calls = 0;
	char *v = NULL;

	setup(&t);
	tlbot_store_event_mark(&t.st, "$old", "!r:test");
	tlbot_router_init(&rt, &t.cfg, t.cfg.user_id, &t.st);
	rt.fill_gap = gap_unreachable;
	b = batch("s2", "!r:test", json_pack("[o]", msg("$new", "@a:test", "!ping", "m.text")), 1);
	CHECK_INT(tlbot_router_apply(&rt, b, "s1"), ==, -1); /* not committed: retried */
	CHECK_INT(tlbot_store_kv_get(&t.st, "next_batch", &v), ==, 1);
	CHECK_INT(tlbot_store_event_seen(&t.st, "$new"), ==, 0);
	rt.fill_gap = gap_events;
	rt.fill_arg = &calls;
	CHECK_INT(tlbot_router_apply(&rt, b, "s1"), ==, 0);
	json_decref(b);
	CHECK_INT(calls, ==, 1);
	cmdtest_collect(&t);
	CHECK_INT((int)t.nout, ==, 3); /* $g1, $g2, $new; $old not again */
	CHECK_CONTAINS(t.out_content[0], "$g1");
	CHECK_CONTAINS(t.out_content[2], "$new");
	cmdtest_release(&t);
}

TEST(rate_limit_warns_once)
{
	struct cmdtest t;
	json_t *evs = json_array();
	char id[16];
	int i;

	setup(&t);
	t.cfg.rate_limit_per_min = 5;
	for (i = 0; i < 12; i++) {
		snprintf(id, sizeof(id), "$f%d", i);
		json_array_append_new(evs, msg(id, "@a:test", "!ping", "m.text"));
	}
	CHECK_INT(apply(&t, batch("s2", "!r:test", evs, 0), "s1"), ==, 0);
	CHECK_INT((int)t.nout, ==, 6); /* 5 pongs and one warning */
	CHECK_CONTAINS(cmdtest_reply(&t, 5), "faster than I take them");
	cmdtest_release(&t);
}

TEST(edit_is_not_a_command)
{
	struct cmdtest t;
	json_t *edit = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:{s:s}, s:{s:s, s:s}}}",
		"event_id", "$e", "type", "m.room.message", "sender", "@a:test", "content",
		"msgtype", "m.text", "body", "* !ping", "m.new_content", "body", "!ping",
		"m.relates_to", "rel_type", "m.replace", "event_id", "$orig");

	setup(&t);
	CHECK_INT(apply(&t, batch("s2", "!r:test", json_pack("[o]", edit), 0), "s1"), ==, 0);
	CHECK_INT((int)t.nout, ==, 0);
	cmdtest_release(&t);
}

TEST(power_levels_and_creator_rule)
{
	struct cmdtest t;
	struct tlbot_ctx ctx;

	setup(&t);
	tlbot_ctx_init(&ctx, &t.cfg, &t.st, "@tlbot:test");
	ctx.room_id = "!r:test";
	/* no power levels: the creator has 100 */
	tlbot_store_state_put(&t.st, "!r:test", "m.room.create", "", "@c:test", "{\"room_version\":\"10\"}");
	CHECK_INT(tlbot_ctx_power(&ctx, "!r:test", "@c:test"), ==, 100);
	CHECK_INT(tlbot_ctx_power(&ctx, "!r:test", "@x:test"), ==, 0);
	tlbot_store_state_put(&t.st, "!r:test", "m.room.power_levels", "", "@c:test",
			      "{\"users\":{\"@m:test\":50},\"users_default\":10}");
	CHECK_INT(tlbot_ctx_power(&ctx, "!r:test", "@m:test"), ==, 50);
	CHECK_INT(tlbot_ctx_power(&ctx, "!r:test", "@x:test"), ==, 10);
	CHECK_INT(tlbot_ctx_power(&ctx, "!r:test", "@c:test"), ==, 10); /* not listed, v10 */
	CHECK(tlbot_ctx_allowed(&ctx, TLBOT_PERM_WRITE, "@m:test"));
	CHECK(!tlbot_ctx_allowed(&ctx, TLBOT_PERM_WRITE, "@x:test"));
	/* room v12: creators outrank everyone, listed or not */
	tlbot_store_state_put(&t.st, "!r:test", "m.room.create", "", "@c:test",
			      "{\"room_version\":\"12\",\"additional_creators\":[\"@c2:test\"]}");
	CHECK(tlbot_ctx_power(&ctx, "!r:test", "@c:test") > 1000000);
	CHECK(tlbot_ctx_power(&ctx, "!r:test", "@c2:test") > 1000000);
	CHECK(tlbot_ctx_allowed(&ctx, TLBOT_PERM_WRITE, "@c2:test"));
	tlbot_ctx_release(&ctx);
	cmdtest_release(&t);
}

TEST(poison_event_isolated_after_failures)
{
	struct cmdtest t;
	struct tlbot_router rt;
	json_t *b;

	setup(&t);
	/* a store that refuses one particular reply, as a latent bug would */
	tlbot_store_exec(&t.st, "CREATE TEMP TRIGGER poison BEFORE INSERT ON outbox"
			 " WHEN NEW.content LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
	b = batch("s2", "!r:test", json_pack("[o,o,o]", msg("$1", "@a:test", "!ping", "m.text"),
					      msg("$2", "@a:test", "!help poison", "m.text"),
					      msg("$3", "@a:test", "!ping", "m.text")), 0);
	tlbot_router_init(&rt, &t.cfg, t.cfg.user_id, &t.st);
	CHECK_INT(tlbot_router_apply(&rt, b, "s1"), ==, -1); /* all or nothing */
	cmdtest_collect(&t);
	CHECK_INT((int)t.nout, ==, 0);
	rt.isolate = 1;
	CHECK_INT(tlbot_router_apply(&rt, b, "s1"), ==, 0); /* the others go on */
	json_decref(b);
	cmdtest_collect(&t);
	CHECK_INT((int)t.nout, ==, 2);
	CHECK_INT(tlbot_store_event_seen(&t.st, "$2"), ==, 1);
	cmdtest_release(&t);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(poison_event_isolated_after_failures),
	TEST_ENTRY(first_sync_marks_history_handled),
	TEST_ENTRY(answers_once_and_ignores_own_notice_outsider),
	TEST_ENTRY(malformed_events_skipped),
	TEST_ENTRY(invites_join_allowed_decline_others),
	TEST_ENTRY(limited_timeline_fills_gap_or_retries),
	TEST_ENTRY(rate_limit_warns_once),
	TEST_ENTRY(edit_is_not_a_command),
	TEST_ENTRY(power_levels_and_creator_rule),
	TEST_END,
};

TAP_MAIN(tests)
