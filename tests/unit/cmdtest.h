/* A harness for command handlers without a homeserver: an in-memory store
 * with every migration, a default configuration, and a way to run one
 * message as a user in a room and read back what the bot would send.
 *
 *	struct cmdtest t;
 *	cmdtest_init(&t);
 *	cmdtest_power(&t, "!r:test", "@mod:test", 50);
 *	CHECK_INT(cmdtest_run(&t, "@mod:test", "!r:test", "!ping"), ==, 1);
 *	CHECK_STR(cmdtest_reply(&t, 0), "pong");
 *	cmdtest_release(&t);
 *
 * Header-only on purpose: each test binary includes it once.
 */
#ifndef TLBOT_CMDTEST_H
#define TLBOT_CMDTEST_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "tlbot/clock.h"
#include "tlbot/config.h"
#include "tlbot/ctx.h"
#include "tlbot/router.h"
#include "tlbot/store.h"

#define CMDTEST_MAX_OUT 64

struct cmdtest {
	struct tlbot_config cfg;
	struct tlbot_store st;
	int64_t last_outbox;          /* outbox rows up to this id are "old" */
	int nevents;
	time_t now;                   /* the clock the commands see */
	size_t nout;                  /* rows the last run/jobs produced */
	char *out_body[CMDTEST_MAX_OUT];    /* plain body */
	char *out_html[CMDTEST_MAX_OUT];    /* formatted_body */
	char *out_content[CMDTEST_MAX_OUT]; /* whole content JSON */
	char *out_kind[CMDTEST_MAX_OUT];    /* send, dm, file ... */
	char *out_target[CMDTEST_MAX_OUT];  /* room id, or user id for dm */
};

static inline void
cmdtest_clear_out(struct cmdtest *t)
{
	size_t i;

	for (i = 0; i < t->nout; i++) {
		free(t->out_body[i]);
		free(t->out_html[i]);
		free(t->out_content[i]);
		free(t->out_kind[i]);
		free(t->out_target[i]);
	}
	t->nout = 0;
}

static inline char *
cmdtest_dup(const unsigned char *s)
{
	return s ? strdup((const char *)s) : NULL;
}

/* Collect outbox rows newer than last_outbox. */
static inline void
cmdtest_collect(struct cmdtest *t)
{
	sqlite3_stmt *s;

	cmdtest_clear_out(t);
	if (sqlite3_prepare_v2(t->st.db, "SELECT id, kind, IFNULL(room_id, user_id), content"
			       " FROM outbox WHERE id > ? ORDER BY id", -1, &s, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(s, 1, t->last_outbox);
	while (sqlite3_step(s) == SQLITE_ROW && t->nout < CMDTEST_MAX_OUT) {
		const char *content = (const char *)sqlite3_column_text(s, 3);
		json_error_t jerr;
		json_t *c = content ? json_loads(content, 0, &jerr) : NULL;
		size_t i = t->nout++;

		t->last_outbox = sqlite3_column_int64(s, 0);
		t->out_kind[i] = cmdtest_dup(sqlite3_column_text(s, 1));
		t->out_target[i] = cmdtest_dup(sqlite3_column_text(s, 2));
		t->out_content[i] = content ? strdup(content) : NULL;
		t->out_body[i] = cmdtest_dup((const unsigned char *)json_string_value(json_object_get(c, "body")));
		t->out_html[i] = cmdtest_dup((const unsigned char *)json_string_value(json_object_get(c, "formatted_body")));
		json_decref(c);
	}
	sqlite3_finalize(s);
}

static inline int
cmdtest_init(struct cmdtest *t)
{
	memset(t, 0, sizeof(*t));
	tlbot_config_init(&t->cfg);
	t->cfg.user_id = strdup("@tlbot:test");
	t->cfg.rate_limit_per_min = 0; /* no rate limit in unit tests */
	t->now = 1795000000; /* 2026-11-18T11:06:40Z, a Wednesday */
	return tlbot_store_open(&t->st, ":memory:", tlbot_command_schemas());
}

static inline void
cmdtest_release(struct cmdtest *t)
{
	cmdtest_clear_out(t);
	tlbot_store_close(&t->st);
	tlbot_config_release(&t->cfg);
}

/* Give user a power level in room (writes m.room.power_levels). */
static inline void
cmdtest_power(struct cmdtest *t, const char *room, const char *user, int level)
{
	char *old = NULL, *text;
	json_error_t jerr;
	json_t *pl = NULL;

	if (tlbot_store_state_get(&t->st, room, "m.room.power_levels", "", &old) == 0)
		pl = json_loads(old, 0, &jerr);
	if (pl == NULL)
		pl = json_pack("{s:{}, s:i}", "users", "users_default", 0);
	json_object_set_new(json_object_get(pl, "users"), user, json_integer(level));
	text = json_dumps(pl, JSON_COMPACT);
	tlbot_store_state_put(&t->st, room, "m.room.power_levels", "", "@creator:test", text);
	free(text);
	free(old);
	json_decref(pl);
}

/* Mark room as a DM room between the bot and user. */
static inline void
cmdtest_dm_room(struct cmdtest *t, const char *room, const char *user)
{
	tlbot_store_dm_set(&t->st, user, room);
}

/* Run one message event through the real router path (one batch with one
 * event, in one transaction). content_extra: JSON object text merged into
 * the content (m.relates_to, m.mentions...), or NULL. Returns the number
 * of outbox rows it produced, -1 if the batch failed. */
static inline int
cmdtest_event(struct cmdtest *t, const char *sender, const char *room, const char *body,
	      const char *content_extra, char *event_id_out, size_t idlen)
{
	struct tlbot_router rt;
	char event_id[64], next[32], since[32];
	json_t *batch, *content;
	json_error_t jerr;
	int rc;

	snprintf(event_id, sizeof(event_id), "$ev%d:test", ++t->nevents);
	snprintf(next, sizeof(next), "s%d", t->nevents);
	snprintf(since, sizeof(since), "s%d", t->nevents - 1);
	if (event_id_out)
		snprintf(event_id_out, idlen, "%s", event_id);
	content = json_pack("{s:s, s:s}", "msgtype", "m.text", "body", body);
	if (content_extra) {
		json_t *extra = json_loads(content_extra, 0, &jerr);

		if (extra)
			json_object_update(content, extra);
		json_decref(extra);
	}
	tlbot_store_room_set(&t->st, room, "join", NULL);
	batch = json_pack("{s:s, s:{s:{s:{s:{s:[{s:s, s:s, s:s, s:I, s:o}]}}}}}",
			  "next_batch", next, "rooms", "join", room, "timeline", "events",
			  "event_id", event_id, "type", "m.room.message", "sender", sender,
			  "origin_server_ts", (json_int_t)t->now * 1000, "content", content);
	tlbot_router_init(&rt, &t->cfg, t->cfg.user_id, &t->st);
	{
		/* the handlers read the wall clock through the test override */
		static char path[64];
		FILE *f;

		snprintf(path, sizeof(path), "/tmp/tlbot-cmdtest-clock-%d", (int)getpid());
		f = fopen(path, "w");
		if (f) {
			fprintf(f, "%lld\n", (long long)t->now);
			fclose(f);
			tlbot_clock_set_override(path);
		}
	}
	rc = tlbot_router_apply(&rt, batch, since);
	json_decref(batch);
	cmdtest_collect(t);
	return rc == 0 ? (int)t->nout : -1;
}

static inline int
cmdtest_run(struct cmdtest *t, const char *sender, const char *room, const char *body)
{
	return cmdtest_event(t, sender, room, body, NULL, NULL, 0);
}

/* Fire the jobs due at t->now; returns the number of outbox rows made. */
static inline int
cmdtest_jobs(struct cmdtest *t)
{
	struct tlbot_router rt;

	tlbot_router_init(&rt, &t->cfg, t->cfg.user_id, &t->st);
	if (tlbot_router_run_jobs(&rt, t->now) < 0)
		return -1;
	cmdtest_collect(t);
	return (int)t->nout;
}

static inline const char *
cmdtest_reply(const struct cmdtest *t, size_t i)
{
	return i < t->nout ? t->out_body[i] : NULL;
}

static inline const char *
cmdtest_html(const struct cmdtest *t, size_t i)
{
	return i < t->nout ? t->out_html[i] : NULL;
}

/* One integer from a query with one optional text parameter. */
static inline long long
cmdtest_count(struct cmdtest *t, const char *sql, const char *arg)
{
	sqlite3_stmt *s;
	long long v = -1;

	if (sqlite3_prepare_v2(t->st.db, sql, -1, &s, NULL) != SQLITE_OK)
		return -2;
	if (arg)
		sqlite3_bind_text(s, 1, arg, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

#endif
