/* !experiment through the real router: lifecycle, refusals that store
 * nothing, history after edits, export round trips, hostile text, record
 * references, reminders and digests on the test clock, and scale. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmdtest.h"
#include "tap.h"
#include "tlbot/export.h"
#include "tlbot/tz.h"

#define ROOM "!team:test"
#define ROOM2 "!other:test"
#define MOD "@mod:test"
#define ALICE "@alice:test"
#define BOB "@bob:test"

/* t->now is Wednesday 2026-11-18 11:06:40 UTC (Europe/London = UTC then). */
static time_t
at(const char *date, int hour, int min)
{
	time_t t = 0;
	int y, m, d;

	sscanf(date, "%d-%d-%d", &y, &m, &d);
	tlbot_tz_mktime("Europe/London", y, m, d, hour, min, &t);
	return t;
}

static void
setup(struct cmdtest *t)
{
	cmdtest_init(t);
	cmdtest_power(t, ROOM, MOD, 50);
	cmdtest_power(t, ROOM2, MOD, 50);
	cmdtest_run(t, MOD, ROOM, "!challenge new \"Temporary accommodation costs\"");
	cmdtest_run(t, MOD, ROOM2, "!challenge new \"Family hubs\"");
}

/* One text value from a query with one optional text parameter (new
 * string, caller frees; NULL when no row or NULL). */
static char *
q_text(struct cmdtest *t, const char *sql, const char *arg)
{
	sqlite3_stmt *s;
	char *v = NULL;

	if (sqlite3_prepare_v2(t->st.db, sql, -1, &s, NULL) != SQLITE_OK)
		return strdup("(prepare failed)");
	if (arg)
		sqlite3_bind_text(s, 1, arg, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		v = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return v;
}

/* Everything the experiment family stores, as one string. */
static char *
snapshot(struct cmdtest *t)
{
	return q_text(t,
		"SELECT (SELECT count(*) || ':' || ifnull(group_concat(id || status || ifnull(end_date,'')"
		"  || ifnull(decision,'') || ifnull(result_value,'') || title || ifnull(updated_at,''), ','), '')"
		"  FROM experiments) || '|' || (SELECT count(*) FROM history WHERE kind = 'E') || '|' ||"
		" (SELECT count(*) FROM experiment_notes) || '|' || (SELECT count(*) FROM"
		" experiment_learnings) || '|' || (SELECT count(*) || ifnull(group_concat(key || state),'')"
		" FROM jobs) || '|' || (SELECT count(*) FROM experiment_digests) || '|' ||"
		" (SELECT ifnull(max(value), 0) FROM counters WHERE name = 'experiment')", NULL);
}

static const char *
field(struct cmdtest *t, const char *col, int64_t id)
{
	static char *last;
	char sql[200];

	free(last);
	snprintf(sql, sizeof(sql), "SELECT %s FROM experiments WHERE id = %lld", col, (long long)id);
	last = q_text(t, sql, NULL);
	return last;
}

static const char new_cmd[] =
	"!exp new C-1 \"Text reminders\" --believe \"a text the day before\" --result-in"
	" \"fewer missed visits\" --know-when \"missed visits fall below 10%\" --metric"
	" \"missed visits\" --baseline 18 --target 10 --unit % --until 2026-11-20";

TEST(lifecycle)
{
	struct cmdtest t;

	setup(&t);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, new_cmd), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Recorded E-1");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "(proposed), owner @alice:test, until 2026-11-20");
	CHECK_STR(field(&t, "status", 1), "proposed");
	CHECK_STR(field(&t, "believe", 1), "a text the day before");
	CHECK_STR(field(&t, "know_when", 1), "missed visits fall below 10%");
	CHECK_STR(field(&t, "baseline", 1), "18.0");
	CHECK_STR(field(&t, "unit", 1), "%");
	CHECK_STR(field(&t, "challenge_id", 1), "1");
	CHECK_STR(field(&t, "room_id", 1), ROOM);
	CHECK_STR(field(&t, "created_event", 1), "$ev3:test");

	/* !exp is an alias of !experiment */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!experiment start E-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "is running since 2026-11-18 until 2026-11-20");
	CHECK_STR(field(&t, "status", 1), "running");
	CHECK_STR(field(&t, "start_date", 1), "2026-11-18");

	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp note E-1 \"Week one: 40 texts sent\""), ==, 1);
	CHECK_STR(cmdtest_reply(&t, 0), "Noted on E-1.");

	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp result E-1 --value 9 \"Missed visits fell to 9%\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-1 concluded: 9 % (baseline 18, target 10)");
	CHECK_STR(field(&t, "status", 1), "concluded");
	CHECK_STR(field(&t, "result_value", 1), "9.0");

	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp decide E-1 SCALE \"worked in both areas\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-1 decision: scale");
	CHECK_STR(field(&t, "decision", 1), "scale");
	CHECK_STR(field(&t, "decision_reason", 1), "worked in both areas");

	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp learn E-1 \"People answer texts, not letters\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Learning recorded on E-1");

	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp show E-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-1 Text reminders [concluded]");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "We believe a text the day before will result in fewer"
		       " missed visits. We will know when missed visits fall below 10%.");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "baseline 18 · target 10 · unit %");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Result: 9 % — Missed visits fell to 9%");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Decision: scale — worked in both areas");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "• People answer texts, not letters (2026-11-18, @bob:test)");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "• Week one: 40 texts sent");
	/* issue 13 item 11: history lines in words, not column names */
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "@alice:test started on 18 Nov");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "@alice:test result: 9 % (target 10: met) — Missed visits fell to 9%");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "@alice:test decided: scale — worked in both areas");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "status:");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "start_date");
	/* issue 13 item 16: a result against its target */
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Missed visits fell to 9% (target met)");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "<b>Decision:</b>");
	/* issue 13 item 19: no empty line opened after a list */
	CHECK_NOT_CONTAINS(cmdtest_html(&t, 0), "</ul><br/>");
	CHECK_NOT_CONTAINS(cmdtest_html(&t, 0), "</li><br/>");
	/* the show never notifies anyone */
	CHECK_CONTAINS(t.out_content[0], "\"m.mentions\":{\"user_ids\":[]}");

	/* the history a stand-up summary reads */
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE kind = 'E' AND room_id = '" ROOM
				"' AND action IN ('created','started','noted','result','decided','learned')",
				NULL), ==, 10);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE kind = 'E' AND actor = ?", ALICE),
		  ==, 8);

	/* list and the challenge's linked experiments */
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Experiments — 1 in all");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "• E-1 [concluded] Text reminders — C-1, @alice:test, decided: scale");

	/* abandon works from any state, once */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp abandon E-1 \"superseded by E-2\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-1 abandoned");
	CHECK_STR(field(&t, "status", 1), "abandoned");
	cmdtest_release(&t);
}

TEST(sentence_hypothesis)
{
	struct cmdtest t;

	setup(&t);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 \"Hub leaflets\" \"we BELIEVE leaflets"
			      " at the GP WILL RESULT IN more visits, we will KNOW WHEN visits rise"
			      " 20%.\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Recorded E-1");
	CHECK_STR(field(&t, "believe", 1), "leaflets at the GP");
	CHECK_STR(field(&t, "result_in", 1), "more visits");
	CHECK_STR(field(&t, "know_when", 1), "visits rise 20%");
	/* --hypothesis is the same sentence as a flag */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 T2 --hypothesis \"We believe A will"
			      " result in B. We will know when C.\""), ==, 1);
	CHECK_STR(field(&t, "believe", 2), "A");
	CHECK_STR(field(&t, "know_when", 2), "C");
	cmdtest_release(&t);
}

struct refusal {
	const char *who, *cmd, *want;
};

TEST(refusals_store_nothing)
{
	static const struct refusal cases[] = {
		{ ALICE, "!exp new C-99 \"x\" \"We believe a will result in b. We will know when c.\"",
		  "no challenge C-99 here" },
		{ ALICE, "!exp new X-1 \"x\" \"We believe a will result in b. We will know when c.\"",
		  "bad challenge id 'X-1'" },
		{ ALICE, "!exp new C-1 \"x\"", "missing hypothesis: write one sentence \"We believe" },
		{ ALICE, "!exp new C-1 \"x\" --believe a --result-in b", "missing --know-when" },
		{ ALICE, "!exp new C-1 \"x\" \"We think a will help\"", "hypothesis not in the standard form" },
		{ ALICE, "!exp new C-1 \"x\" \"We believe a will result in b. We will know when c.\" --believe a",
		  "the hypothesis is given twice" },
		{ ALICE, "!exp new C-1 x --believe a --result-in b --know-when c --metric m --baseline 12abc",
		  "bad number '12abc' for --baseline: write a plain number such as 12" },
		{ ALICE, "!exp new C-1 x --believe a --result-in b --know-when c --metric m --target nan",
		  "bad number 'nan' for --target" },
		{ ALICE, "!exp new C-1 x --believe a --result-in b --know-when c --metric m --target inf",
		  "bad number 'inf' for --target" },
		{ ALICE, "!exp new C-1 x --believe a --result-in b --know-when c --metric m --target 1e999",
		  "bad number '1e999' for --target" },
		{ ALICE, "!exp new C-1 x --believe a --result-in b --know-when c --metric m --target 0x10",
		  "bad number '0x10'" },
		{ ALICE, "!exp new C-1 x --believe a --result-in b --know-when c --baseline 3",
		  "missing --metric" },
		{ ALICE, "!exp new C-1 x --believe a --result-in b --know-when c --until 2026-13-01",
		  "bad date '2026-13-01' for --until: accepted dates: YYYY-MM-DD" },
		{ ALICE, "!exp new C-1 x --believe a --result-in b --know-when c --start 2026-12-01 --until 2026-11-30",
		  "the end date 2026-11-30 is before the start date 2026-12-01" },
		{ ALICE, "!exp new C-1 \"  \" --believe a --result-in b --know-when c", "empty title" },
		{ ALICE, "!exp new C-1", "missing title: usage: !experiment new C-12 \"title\"" },
		{ ALICE, "!exp new C-1 x --believe a --result-in b --know-when c --owner bob",
		  "bad owner 'bob'" },
		{ ALICE, "!exp show E-99", "no experiment E-99 here" },
		{ ALICE, "!exp show 34x", "bad experiment id '34x': write it as E-34" },
		{ ALICE, "!exp decide E-1 stop \"no\"", "E-1 has no result yet: record it first with !exp result E-1" },
		{ ALICE, "!exp result E-1 --value 3 \"x\"", "E-1 is proposed, not running: start it first" },
		{ ALICE, "!exp decide E-1 maybe \"x\"", "unknown decision 'maybe': use persevere, pivot, stop or scale" },
		{ ALICE, "!exp edit E-1", "nothing to change: give one or more of --title" },
		{ ALICE, "!exp edit E-1 --start 2026-12-10", "the end date 2026-11-30 would be before the start date 2026-12-10" },
		{ ALICE, "!exp edit E-1 --title \"\"", "empty --title" },
		{ ALICE, "!exp edit E-1 --baseline 5", "missing --metric: a baseline, target or unit needs" },
		{ ALICE, "!exp edit E-1 --challenge C-77", "no challenge C-77 here" },
		{ BOB, "!exp start E-1", "not allowed: only E-1's owner (@alice:test), its creator or a room moderator" },
		{ ALICE, "!exp list --status done", "unknown status 'done'" },
		{ ALICE, "!exp list --page 0", "bad page '0'" },
		{ ALICE, "!exp list --page 5", "bad page 5: there is 1 page" },
		{ ALICE, "!exp export --format xls", "unknown format 'xls': use --format md, csv or json" },
		{ ALICE, "!exp bogus", "unknown subcommand !experiment bogus: it takes one of new, start" },
		{ ALICE, "!exp digest fri 16:00", "not allowed: changing the digest needs a room moderator" },
		{ MOD, "!exp digest someday 16:00", "bad digest day 'someday'" },
		{ MOD, "!exp digest fri 25:00", "bad time '25:00'" },
		{ MOD, "!exp digest fri 16:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'" },
		{ MOD, "!exp start E-1 --until yesterday", "bad date 'yesterday' for --until" },
		{ ALICE, "!exp note E-1 \"\"", "empty note" },
		{ NULL, NULL, NULL },
	};
	static const struct refusal later[] = {
		{ ALICE, "!exp start E-1", "E-1 is concluded: only a proposed experiment can be started" },
		{ ALICE, "!exp result E-2 \"x\"", "missing --value: E-2 measures m" },
		{ ALICE, "!exp abandon E-3 \"again\"", "E-3 is already abandoned" },
		{ ALICE, "!exp result E-3 --value 1 \"x\"", "E-3 was abandoned: it takes no result" },
		{ ALICE, "!exp decide E-3 stop \"x\"", "E-3 was abandoned: there is nothing to decide" },
		{ ALICE, "!exp start E-2", "E-2 is already running (since 2026-11-18)" },
		{ ALICE, "!exp result E-2 --value 1,5 \"x\"", "bad number '1,5' for --value" },
		{ MOD, "!exp note E-4 \"from the wrong room\"", "no experiment E-4 here" },
		{ NULL, NULL, NULL },
	};
	struct cmdtest t;
	const struct refusal *c;
	char *before, *after;

	setup(&t);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 x --believe a --result-in b"
			      " --know-when c --until 2026-11-30"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Recorded E-1");
	for (c = cases; c->cmd; c++) {
		before = snapshot(&t);
		CHECK_INT(cmdtest_run(&t, c->who, ROOM, c->cmd), ==, 1);
		CHECK_CONTAINS(cmdtest_reply(&t, 0), c->want);
		CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "\n");
		after = snapshot(&t);
		CHECK_STR(after, before);
		free(before);
		free(after);
	}
	/* E-1 concluded, E-2 running with a metric, E-3 abandoned, E-4 elsewhere */
	cmdtest_run(&t, ALICE, ROOM, "!exp start E-1");
	cmdtest_run(&t, ALICE, ROOM, "!exp result E-1 \"done\"");
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 y --believe a --result-in b --know-when c --metric m");
	cmdtest_run(&t, ALICE, ROOM, "!exp start E-2");
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 z --believe a --result-in b --know-when c");
	cmdtest_run(&t, ALICE, ROOM, "!exp abandon E-3 \"not needed\"");
	cmdtest_run(&t, ALICE, ROOM2, "!exp new C-2 w --believe a --result-in b --know-when c");
	CHECK_STR(field(&t, "status", 4), "proposed");
	for (c = later; c->cmd; c++) {
		before = snapshot(&t);
		CHECK_INT(cmdtest_run(&t, c->who, ROOM, c->cmd), ==, 1);
		CHECK_CONTAINS(cmdtest_reply(&t, 0), c->want);
		after = snapshot(&t);
		CHECK_STR(after, before);
		free(before);
		free(after);
	}
	/* a moderator may change someone else's experiment */
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!exp result E-2 --value 4 \"moderator's entry\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-2 concluded: 4");
	cmdtest_release(&t);
}

TEST(history_after_edits)
{
	struct cmdtest t;

	setup(&t);
	cmdtest_run(&t, ALICE, ROOM, new_cmd);
	t.now += 3600;
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp edit E-1 --target 7.5 --until 2026-11-27"
			      " --title \"SMS reminders\" --method \"two areas, four weeks\""
			      " --owner @bob:test"), ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-1 updated (5 changes)");
	/* issue 13 item 16: the new owner is told by DM */
	CHECK_STR(t.out_kind[1], "dm");
	CHECK_STR(t.out_target[1], BOB);
	CHECK_CONTAINS(cmdtest_reply(&t, 1), "@alice:test made you the owner of E-1 “SMS reminders”");
	CHECK_STR(field(&t, "target", 1), "7.5");
	CHECK_STR(field(&t, "end_date", 1), "2026-11-27");
	CHECK_STR(field(&t, "title", 1), "SMS reminders");
	CHECK_STR(field(&t, "owner", 1), BOB);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE kind = 'E' AND action = 'edited'"
				" AND field = 'target' AND old = '10' AND new = '7.5' AND actor = ?", ALICE), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE kind = 'E' AND action = 'edited'"
				" AND field = 'end_date' AND old = '2026-11-20' AND new = '2026-11-27'", NULL), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE kind = 'E' AND action = 'edited'"
				" AND field = 'title' AND old = 'Text reminders' AND new = 'SMS reminders'", NULL), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM history WHERE kind = 'E' AND action = 'edited'"
				" AND field = 'method' AND old IS NULL", NULL), ==, 1);
	/* the new owner may now change it; the hypothesis edits as a sentence */
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp edit E-1 --hypothesis \"We believe an SMS will"
			      " result in fewer misses. We will know when misses halve.\""
			      " --baseline \"\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-1 updated (4 changes)");
	CHECK_STR(field(&t, "believe", 1), "an SMS");
	CHECK_STR(field(&t, "baseline", 1), NULL);
	/* the same values again change nothing */
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp edit E-1 --target 7.5"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-1 unchanged");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp show E-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "2026-11-18 12:06 @alice:test edited target: 10 → 7.5");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "@bob:test edited baseline: 18 → (none)");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "edited owner: @alice:test → @bob:test");
	/* issue 13 item 11: dates and labels as people write them */
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "@alice:test edited end date: 20 Nov → 27 Nov");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "end_date");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp history E-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "History of E-1 (page 1 of 1, 10 changes)");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "created: Text reminders");
	cmdtest_release(&t);
}

/* The blob of the newest file in the outbox (new string) and its meta. */
static char *
last_file(struct cmdtest *t, int *len, char **meta)
{
	sqlite3_stmt *s;
	char *out = NULL;

	*len = 0;
	if (sqlite3_prepare_v2(t->st.db, "SELECT blob, content FROM outbox WHERE kind = 'file'"
			       " ORDER BY id DESC LIMIT 1", -1, &s, NULL) != SQLITE_OK)
		return NULL;
	if (sqlite3_step(s) == SQLITE_ROW) {
		*len = sqlite3_column_bytes(s, 0);
		out = malloc((size_t)*len + 1);
		memcpy(out, sqlite3_column_blob(s, 0), (size_t)*len);
		out[*len] = '\0';
		if (meta)
			*meta = strdup((const char *)sqlite3_column_text(s, 1));
	}
	sqlite3_finalize(s);
	return out;
}

static const char *const hostile[] = {
	"Comma, \"quotes\" and\nline breaks",
	"<script>alert('x')</script> & <b>bold</b>",
	"=HYPERLINK(\"http://evil.example\",\"click\")",
	"Unicode: café, naïve, Łódź, 日本語, 🚀",
	"-2 leading minus; +3 plus; @at",
	"\ttab first, trailing space ",
};

/* Create experiments with hostile text in every field; returns how many. */
static int
make_hostile(struct cmdtest *t, int copies)
{
	char cmd[8192];
	int i, n = 0;
	size_t k;

	for (i = 0; i < copies; i++) {
		for (k = 0; k < sizeof(hostile) / sizeof(hostile[0]); k++) {
			const char *h = hostile[k];
			char q[1024];
			const char *p;
			size_t j = 0;

			/* quote for the command line: escape " and \ */
			for (p = h; *p && j < sizeof(q) - 3; p++) {
				if (*p == '"' || *p == '\\')
					q[j++] = '\\';
				q[j++] = *p;
			}
			q[j] = '\0';
			snprintf(cmd, sizeof(cmd), "!exp new C-1 \"%s\" --believe \"%s\" --result-in \"b %s\""
				 " --know-when \"c\" --metric \"%s\" --baseline %s --target 0.1 --unit \"£ per \\\"night\\\", net\"",
				 q, q, q, q, k % 2 ? "-3.25" : "1e6");
			if (cmdtest_run(t, ALICE, ROOM, cmd) == 1 && strstr(cmdtest_reply(t, 0), "Recorded"))
				n++;
			snprintf(cmd, sizeof(cmd), "!exp learn E-%d \"%s\"", n, q);
			cmdtest_run(t, ALICE, ROOM, cmd);
			snprintf(cmd, sizeof(cmd), "!exp learn E-%d \"second learning\"", n);
			cmdtest_run(t, ALICE, ROOM, cmd);
			snprintf(cmd, sizeof(cmd), "!exp note E-%d \"%s\"", n, q);
			cmdtest_run(t, ALICE, ROOM, cmd);
		}
	}
	cmdtest_run(t, ALICE, ROOM, "!exp start E-1");
	cmdtest_run(t, ALICE, ROOM, "!exp result E-1 --value 0.30000000000000004 \"a, b \\\"c\\\"\"");
	cmdtest_run(t, ALICE, ROOM, "!exp decide E-1 pivot \"=1+1\"");
	return n;
}

/* Text value of a column for E-id, "" for NULL; numbers as the export
 * writes them. */
static void
db_value(struct cmdtest *t, int64_t id, const char *col, char *out, size_t outlen)
{
	sqlite3_stmt *s;
	char sql[256];

	out[0] = '\0';
	if (strcmp(col, "learnings") == 0)
		snprintf(sql, sizeof(sql), "SELECT group_concat(text, char(10)) FROM (SELECT text FROM"
			 " experiment_learnings WHERE experiment_id = %lld ORDER BY id)", (long long)id);
	else if (strcmp(col, "notes") == 0)
		snprintf(sql, sizeof(sql), "SELECT group_concat(text, char(10)) FROM (SELECT text FROM"
			 " experiment_notes WHERE experiment_id = %lld ORDER BY id)", (long long)id);
	else if (strcmp(col, "id") == 0)
		snprintf(sql, sizeof(sql), "SELECT 'E-' || id FROM experiments WHERE id = %lld", (long long)id);
	else if (strcmp(col, "challenge") == 0)
		snprintf(sql, sizeof(sql), "SELECT 'C-' || challenge_id FROM experiments WHERE id = %lld",
			 (long long)id);
	else if (strcmp(col, "created_at") == 0 || strcmp(col, "updated_at") == 0)
		snprintf(sql, sizeof(sql), "SELECT strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', %s, 'unixepoch')"
			 " FROM experiments WHERE id = %lld", col, (long long)id);
	else
		snprintf(sql, sizeof(sql), "SELECT %s, typeof(%s) FROM experiments WHERE id = %lld", col,
			 col, (long long)id);
	if (sqlite3_prepare_v2(t->st.db, sql, -1, &s, NULL) != SQLITE_OK) {
		snprintf(out, outlen, "(bad column %s)", col);
		return;
	}
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		if (sqlite3_column_type(s, 0) == SQLITE_FLOAT)
			tlbot_fmt_double(sqlite3_column_double(s, 0), out, outlen);
		else
			snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
	}
	sqlite3_finalize(s);
}

TEST(export_csv_round_trip)
{
	struct cmdtest t;
	struct tlbot_csv_reader r;
	struct tlbot_buf f;
	char *data, *meta = NULL, *header[64], want[8192];
	int len, n, rc, ncols = 0, row = 0, col = 0, guarded = 0;

	setup(&t);
	n = make_hostile(&t, 2);
	CHECK_INT(n, ==, 12);
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export --format csv"), ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Exported 12 experiments as experiments-2026-11-18.csv");
	CHECK_STR(t.out_kind[1], "file");
	CHECK_STR(t.out_target[1], ROOM);
	data = last_file(&t, &len, &meta);
	CHECK_OR_RETURN(data != NULL);
	CHECK_CONTAINS(meta, "\"mimetype\":\"text/csv; charset=utf-8\"");
	CHECK_CONTAINS(meta, "\"filename\":\"experiments-2026-11-18.csv\"");
	CHECK(memcmp(data, TLBOT_CSV_BOM, 3) == 0);
	CHECK(strstr(data, "\r\n") != NULL);
	tlbot_buf_init(&f, 1 << 20);
	tlbot_csv_reader_init(&r, data, (size_t)len);
	while ((rc = tlbot_csv_read_field(&r, &f)) == 1) {
		if (row == 0) {
			header[ncols++] = strdup(tlbot_buf_str(&f));
		} else {
			const char *got = tlbot_buf_str(&f);

			CHECK_OR_RETURN(col < ncols);
			db_value(&t, row, header[col], want, sizeof(want));
			/* the formula guard: a leading ' before = + - @ in text cells */
			if (got[0] == '\'' && got[1] && strchr("=+-@\t", got[1]) && strcmp(got + 1, want) == 0) {
				guarded++;
				got++;
			}
			if (strcmp(got, want) != 0)
				printf("# row %d column %s\n", row, header[col]);
			CHECK_STR(got, want);
			col++;
		}
		if (r.row_end) {
			if (row > 0)
				CHECK_INT(col, ==, ncols);
			row++;
			col = 0;
		}
	}
	CHECK_INT(rc, ==, 0);
	CHECK_INT(row, ==, 13);
	CHECK_INT(ncols, ==, 25); /* issue 13 item 13: the notes are a column too (was 24) */
	CHECK(guarded > 0);
	/* numbers are never guarded */
	CHECK_CONTAINS(data, ",-3.25,");
	CHECK_CONTAINS(data, ",0.30000000000000004,");
	while (ncols > 0)
		free(header[--ncols]);
	tlbot_buf_release(&f);
	free(data);
	free(meta);
	cmdtest_release(&t);
}

static void
check_json_str(json_t *o, const char *key, const char *want)
{
	json_t *v = json_object_get(o, key);

	if (want[0] == '\0')
		CHECK(json_is_null(v) || (json_is_string(v) && json_string_value(v)[0] == '\0'));
	else
		CHECK_STR(json_string_value(v), want);
}

TEST(export_json_round_trip)
{
	static const char *const text_cols[] = { "id", "challenge", "title", "owner", "status", "believe",
						 "result_in", "know_when", "method", "metric", "unit",
						 "start_date", "end_date", "finding", "decision",
						 "decision_reason", "abandon_reason", "created_by",
						 "created_at", "updated_at", NULL };
	static const char *const num_cols[] = { "baseline", "target", "result_value", NULL };
	struct cmdtest t;
	json_error_t jerr;
	json_t *root, *arr;
	char *data, want[8192];
	int len;
	size_t i, k;

	setup(&t);
	make_hostile(&t, 2);
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export --format json"), ==, 2);
	data = last_file(&t, &len, NULL);
	CHECK_OR_RETURN(data != NULL);
	root = json_loadb(data, (size_t)len, 0, &jerr);
	if (root == NULL)
		printf("# json: %s at line %d\n", jerr.text, jerr.line);
	CHECK_OR_RETURN(root != NULL);
	arr = json_object_get(root, "experiments");
	CHECK_INT(json_array_size(arr), ==, 12);
	CHECK_INT(json_integer_value(json_object_get(root, "count")), ==, 12);
	CHECK_STR(json_string_value(json_object_get(root, "room_id")), ROOM);
	for (i = 0; i < json_array_size(arr); i++) {
		json_t *o = json_array_get(arr, i), *l;
		int64_t id = json_integer_value(json_object_get(o, "number"));
		struct tlbot_buf joined;

		CHECK_INT(id, ==, (int64_t)i + 1);
		for (k = 0; text_cols[k]; k++) {
			db_value(&t, id, text_cols[k], want, sizeof(want));
			check_json_str(o, text_cols[k], want);
		}
		for (k = 0; num_cols[k]; k++) {
			json_t *v = json_object_get(o, num_cols[k]);
			char got[40] = "";

			db_value(&t, id, num_cols[k], want, sizeof(want));
			if (json_is_number(v))
				tlbot_fmt_double(json_number_value(v), got, sizeof(got));
			else
				CHECK(json_is_null(v));
			CHECK_STR(got, want);
		}
		l = json_object_get(o, "learnings");
		tlbot_buf_init(&joined, 1 << 16);
		for (k = 0; k < json_array_size(l); k++) {
			if (k)
				tlbot_buf_addc(&joined, '\n');
			tlbot_buf_adds(&joined, json_string_value(json_array_get(l, k)));
		}
		db_value(&t, id, "learnings", want, sizeof(want));
		CHECK_STR(tlbot_buf_str(&joined), want);
		tlbot_buf_release(&joined);
		CHECK_INT(json_array_size(json_object_get(o, "notes")), ==, 1);
		CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(o, "notes"), 0), "by")),
			  ALICE);
	}
	CHECK(json_real_value(json_object_get(json_array_get(arr, 0), "result_value")) == 0.30000000000000004);
	json_decref(root);
	free(data);
	cmdtest_release(&t);
}

TEST(export_small_as_message)
{
	struct cmdtest t;

	setup(&t);
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 \"<i>Hub</i> | pipes\" --believe \"a*b*\" --result-in b"
		    " --know-when c");
	cmdtest_run(&t, ALICE, ROOM2, "!exp new C-2 elsewhere --believe a --result-in b --know-when c");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Experiment log — 1 experiment (Markdown)");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "| E | Challenge | Title |");
	/* issue 13 item 13: the plain body shows the text as written (was
	 * "\\<i\\>Hub\\</i\\> \\| pipes", Markdown's escapes) */
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "| E-1 | C-1 | <i>Hub</i> | pipes |");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "\\");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "elsewhere");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "<table><thead><tr><th>E</th>");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "<td>&lt;i&gt;Hub&lt;/i&gt; | pipes</td>");
	CHECK_NOT_CONTAINS(cmdtest_html(&t, 0), "<i>Hub");
	/* issue 13 item 13: a CSV is always an uploaded file, even a small one
	 * (was CSV text in a <pre> message) */
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export --format csv"), ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Exported 1 experiment as experiments-2026-11-18.csv");
	CHECK_STR(t.out_kind[1], "file");
	{
		char *data = NULL, *meta = NULL;
		int len = 0;

		data = last_file(&t, &len, &meta);
		CHECK_OR_RETURN(data != NULL);
		CHECK(strncmp(data, TLBOT_CSV_BOM "id,challenge,title,owner,status", 34) == 0);
		CHECK_CONTAINS(data, "<i>Hub</i> | pipes");
		free(data);
		free(meta);
	}
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export --format json --challenge C-1 --status proposed"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "\"title\": \"<i>Hub</i> | pipes\"");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export --status concluded"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Nothing to export");
	/* one-line refusals even when the echoed value has line breaks */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp edit E-1 --target \"12\nabc\""), ==, 1);
	CHECK_STR(cmdtest_reply(&t, 0), "bad number '12 abc' for --target: write a plain number such as"
		  " 12, 0.75, -3.5 or 1e6 (no units, commas or %; put the unit in --unit)");
	cmdtest_release(&t);
}

TEST(export_markdown_file)
{
	struct cmdtest t;
	char cmd[512], *data, *meta = NULL;
	int i, len;

	setup(&t);
	for (i = 0; i < 20; i++) {
		snprintf(cmd, sizeof(cmd), "!exp new C-1 \"Trial %d with a | pipe and *stars*\""
			 " --believe \"a fairly long change description number %d\" --result-in b"
			 " --know-when c", i, i);
		cmdtest_run(&t, ALICE, ROOM, cmd);
	}
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export --challenge C-1"), ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Exported 20 experiments as experiments-C-1-2026-11-18.md");
	data = last_file(&t, &len, &meta);
	CHECK_OR_RETURN(data != NULL);
	CHECK_CONTAINS(meta, "text/markdown");
	CHECK(strncmp(data, "| E | Challenge | Title |", 24) == 0);
	CHECK_CONTAINS(data, "\n|---|---|");
	CHECK_CONTAINS(data, "| E-20 | C-1 | Trial 19 with a \\| pipe and \\*stars\\* |");
	free(data);
	free(meta);
	cmdtest_release(&t);
}

TEST(export_status_filter)
{
	struct cmdtest t;

	setup(&t);
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 x --believe a --result-in b --know-when c");
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 y --believe a --result-in b --know-when c");
	cmdtest_run(&t, ALICE, ROOM, "!exp start E-2");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export --status abandoned"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Nothing to export: no experiments in this room match that.");
	/* issue 13 item 13: CSV as a file (the assertions read the file now) */
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export --status running --format csv"), ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Exported 1 experiment as");
	{
		char *data;
		int len;

		data = last_file(&t, &len, NULL);
		CHECK_OR_RETURN(data != NULL);
		CHECK_CONTAINS(data, "E-2,C-1,y,");
		CHECK_NOT_CONTAINS(data, "E-1,");
		free(data);
	}
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp export --status open --format csv"), ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Exported 2 experiments as");
	cmdtest_release(&t);
}

TEST(hostile_text_escaped)
{
	struct cmdtest t;

	setup(&t);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 \"<img src=x onerror=alert(1)> & café 🚀\""
			      " --believe \"a\nb\" --result-in \"<b>x</b>\" --know-when \"\\\"q\\\" 'q'\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "<img src=x onerror=alert(1)> & café 🚀");
	CHECK_NOT_CONTAINS(cmdtest_html(&t, 0), "<img");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "&lt;img src=x onerror=alert(1)&gt; &amp; café 🚀");
	CHECK_STR(field(&t, "believe", 1), "a\nb");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp note E-1 \"line one\nline <two>\""), ==, 1);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp show E-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "We believe a\nb will result in <b>x</b>");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "a<br/>b will result in &lt;b&gt;x&lt;/b&gt;");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "line one<br/>line &lt;two&gt;");
	CHECK_NOT_CONTAINS(cmdtest_html(&t, 0), "<b>x</b>");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "&quot;q&quot; &#39;q&#39;");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp list"), ==, 1);
	CHECK_NOT_CONTAINS(cmdtest_html(&t, 0), "<img");
	cmdtest_release(&t);
}

/* One error contract: a store failure in an experiment command or job is
 * rolled back and retried, never committed with a "database error" reply. */
TEST(store_failure_is_retried)
{
	struct cmdtest t;
	int i;

	setup(&t);
	cmdtest_run(&t, ALICE, ROOM, new_cmd);
	/* the store refuses every history row (as a full disk would) */
	sqlite3_exec(t.st.db, "CREATE TEMP TRIGGER fail_hist BEFORE INSERT ON history BEGIN"
		     " SELECT RAISE(ABORT, 'disk full (test)'); END", NULL, NULL, NULL);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp note E-1 \"spoke to the council\""), ==, -1);
	CHECK_INT((int)t.nout, ==, 0); /* no "database error" reply */
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM experiment_notes", NULL), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM outbox WHERE content LIKE '%database%'",
				NULL), ==, 0);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp start E-1"), ==, -1);
	CHECK_STR(field(&t, "status", 1), "proposed");
	/* the store recovers: the same command now runs, once */
	sqlite3_exec(t.st.db, "DROP TRIGGER fail_hist", NULL, NULL, NULL);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp note E-1 \"spoke to the council\""), ==, 1);
	CHECK_STR(cmdtest_reply(&t, 0), "Noted on E-1.");
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM experiment_notes", NULL), ==, 1);

	/* a job whose store calls fail is retried a bounded number of times */
	cmdtest_run(&t, ALICE, ROOM, "!exp start E-1");
	sqlite3_exec(t.st.db, "CREATE TEMP TRIGGER fail_out BEFORE INSERT ON outbox BEGIN"
		     " SELECT RAISE(ABORT, 'disk full (test)'); END", NULL, NULL, NULL);
	t.now += 2 * 86400 + 22 * 3600; /* 2026-11-21 09:06: the reminder is due */
	for (i = 0; i < 4; i++)
		CHECK_INT(cmdtest_jobs(&t), ==, -1);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM jobs WHERE kind = 'exp.remind' AND"
				" state = 'pending' AND attempts = 4", NULL), ==, 1);
	CHECK_INT(cmdtest_jobs(&t), >=, 0); /* the fifth failure: recorded, the others go on */
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM jobs WHERE kind = 'exp.remind' AND"
				" state = 'failed'", NULL), ==, 1);
	sqlite3_exec(t.st.db, "DROP TRIGGER fail_out", NULL, NULL, NULL);
	cmdtest_release(&t);
}

TEST(references_link)
{
	struct cmdtest t;

	setup(&t);
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 \"Text <reminders>\" --believe a --result-in b --know-when c");
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 Follow-up --believe \"what E-1 showed\" --result-in b --know-when c");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp show E-2"), ==, 1);
	/* E-1 in free text links to the message that created it, title on hover */
	CHECK_CONTAINS(cmdtest_html(&t, 0), "<a href=\"https://matrix.to/#/!team:test/$ev3:test\""
		       " title=\"Text &lt;reminders&gt;\">E-1</a> showed");
	/* and C-1 links to the challenge */
	CHECK_CONTAINS(cmdtest_html(&t, 0), "title=\"Temporary accommodation costs\">C-1</a>");
	/* other families' messages link E-n too (the challenge's own show) */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!challenge show C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-1");
	cmdtest_release(&t);
}

TEST(list_pages_and_filters)
{
	struct cmdtest t;
	char cmd[256];
	int i;

	setup(&t);
	for (i = 1; i <= 25; i++) {
		snprintf(cmd, sizeof(cmd), "!exp new C-1 \"exp %d\" --believe a --result-in b --know-when c%s",
			 i, i % 5 == 0 ? " --owner @bob:test" : "");
		cmdtest_run(&t, ALICE, ROOM, cmd);
	}
	cmdtest_run(&t, ALICE, ROOM, "!exp start E-3");
	cmdtest_run(&t, ALICE, ROOM, "!exp start E-4");
	cmdtest_run(&t, ALICE, ROOM, "!exp edit E-4 --start 2026-11-01 --until 2026-11-17");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Experiments — 25 in all, page 1 of 2");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "• E-25 [proposed] exp 25");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "E-5 ");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "More: !exp list --page 2");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp list --page 2"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "page 2 of 2");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "• E-1 [proposed]");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp list --status running"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Experiments running — 2 in all");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "E-4 [running] exp 4 — C-1, @alice:test, until 2026-11-17 (overdue)");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp list --status overdue"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "— 1 in all");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp list --mine"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "— 5 in all");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!exp list --owner @alice:test --challenge C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "— 20 in all");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM2, "!exp list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "No experiments in this room");
	cmdtest_release(&t);
}

/* Rows of the last run of a given kind to a target; the index or -1. */
static int
find_out(struct cmdtest *t, const char *kind, const char *target)
{
	size_t i;

	for (i = 0; i < t->nout; i++)
		if (strcmp(t->out_kind[i], kind) == 0 && strcmp(t->out_target[i], target) == 0)
			return (int)i;
	return -1;
}

TEST(overdue_reminders)
{
	struct cmdtest t;
	int i;

	setup(&t);
	cmdtest_run(&t, MOD, ROOM, "!exp digest off"); /* only reminders here */
	cmdtest_run(&t, ALICE, ROOM, new_cmd);
	cmdtest_run(&t, ALICE, ROOM, "!exp start E-1");
	/* nothing before the morning after the end date */
	t.now = at("2026-11-21", 8, 59);
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	t.now = at("2026-11-21", 9, 0) + 20;
	CHECK_INT(cmdtest_jobs(&t), ==, 2);
	i = find_out(&t, "send", ROOM);
	CHECK_OR_RETURN(i >= 0);
	CHECK_CONTAINS(t.out_body[i], "⏰ @alice:test: E-1 “Text reminders” ended on 2026-11-20 and has no result yet.");
	CHECK_CONTAINS(t.out_body[i], "!exp result E-1 --value N \"finding\"");
	CHECK_CONTAINS(t.out_content[i], "\"user_ids\":[\"@alice:test\"]");
	i = find_out(&t, "dm", ALICE);
	CHECK_OR_RETURN(i >= 0);
	CHECK_CONTAINS(t.out_body[i], "E-1 “Text reminders” ended on 2026-11-20");
	/* weekly after that */
	t.now = at("2026-11-27", 12, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	t.now = at("2026-11-28", 9, 0) + 5;
	CHECK_INT(cmdtest_jobs(&t), ==, 2);
	/* extending the end date moves the reminder */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp edit E-1 --until 2026-12-10"), ==, 1);
	t.now = at("2026-12-05", 9, 0) + 5;
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	t.now = at("2026-12-11", 9, 0) + 5;
	CHECK_INT(cmdtest_jobs(&t), ==, 2);
	/* someone who turned DMs off gets only the room mention */
	tlbot_store_set_dm_enabled(&t.st, ALICE, 0);
	t.now = at("2026-12-18", 9, 0) + 5;
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_STR(t.out_kind[0], "send");
	/* a result stops them */
	cmdtest_run(&t, ALICE, ROOM, "!exp result E-1 --value 9 \"done\"");
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM jobs WHERE kind = 'exp.remind' AND state = 'pending'",
				NULL), ==, 0);
	t.now = at("2026-12-25", 9, 0) + 5;
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	/* a bot down past the grace period does not post late, just moves on */
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 late --believe a --result-in b --know-when c --until 2026-12-26");
	t.now = at("2027-01-01", 9, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM jobs WHERE kind = 'exp.remind' AND state = 'pending'"
				" AND due > ?", "1798000000"), ==, 1);
	cmdtest_release(&t);
}

TEST(weekly_digest)
{
	struct cmdtest t;
	int i;

	setup(&t);
	cmdtest_run(&t, ALICE, ROOM, new_cmd);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp digest"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "posted here on Fridays at 16:00 (Europe/London)");
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 \"Second\" --believe a --result-in b --know-when c --until 2026-11-19");
	cmdtest_run(&t, ALICE, ROOM, "!exp start E-1");
	cmdtest_run(&t, ALICE, ROOM, "!exp result E-1 --value 9 \"fell to 9%\"");
	cmdtest_run(&t, ALICE, ROOM, "!exp decide E-1 scale \"worked\"");
	cmdtest_run(&t, BOB, ROOM, "!exp learn E-1 \"texts beat <letters>\"");
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 \"Third\" --believe a --result-in b --know-when c");
	cmdtest_run(&t, ALICE, ROOM, "!exp start E-3");
	t.now = at("2026-11-20", 15, 59);
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	t.now = at("2026-11-20", 16, 0) + 3;
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_STR(t.out_target[0], ROOM);
	CHECK_CONTAINS(t.out_body[0], "Weekly learning digest — 2026-11-13 to 2026-11-20");
	CHECK_CONTAINS(t.out_body[0], "• E-3 “Third” (C-1) — @alice:test");
	CHECK_CONTAINS(t.out_body[0], "Concluded\n• E-1 “Text reminders” (C-1) — result 9 % — decision: scale (worked) — learned: texts beat <letters>");
	CHECK_CONTAINS(t.out_body[0], "Overdue (ended without a result)\n• E-2 “Second” (C-1) — proposed, ended 2026-11-19");
	CHECK_CONTAINS(t.out_html[0], "texts beat &lt;letters&gt;");
	/* the digest mentions nobody */
	CHECK_CONTAINS(t.out_content[0], "\"user_ids\":[]");
	/* next week: only what happened since */
	cmdtest_run(&t, ALICE, ROOM, "!exp abandon E-2 \"no capacity\"");
	t.now = at("2026-11-25", 10, 0);
	cmdtest_run(&t, BOB, ROOM, "!exp learn E-1 \"second thought\"");
	t.now = at("2026-11-27", 16, 0) + 3;
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	i = find_out(&t, "send", ROOM);
	CHECK_OR_RETURN(i >= 0);
	CHECK_CONTAINS(t.out_body[i], "New learnings\n• E-1 “Text reminders” (C-1) — learned: second thought");
	CHECK_NOT_CONTAINS(t.out_body[i], "Started");
	CHECK_NOT_CONTAINS(t.out_body[i], "texts beat");
	/* a quiet week posts nothing */
	t.now = at("2026-12-04", 16, 0) + 3;
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	/* moved to Mondays 09:30, then off */
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!exp digest mon 09:30"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "on Mondays at 09:30 (Europe/London); the next one is due 2026-12-07 09:30");
	cmdtest_run(&t, BOB, ROOM, "!exp learn E-1 \"third thought\"");
	t.now = at("2026-12-07", 9, 30) + 3;
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_CONTAINS(t.out_body[0], "third thought");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!exp digest off"), ==, 1);
	cmdtest_run(&t, BOB, ROOM, "!exp learn E-1 \"fourth thought\"");
	t.now = at("2026-12-14", 9, 30) + 3;
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp digest"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "is off in this room");
	cmdtest_release(&t);
}

TEST(cross_team_digest)
{
	struct cmdtest t;
	int i;

	setup(&t);
	free(t.cfg.digest_room);
	t.cfg.digest_room = strdup("!digest:test");
	cmdtest_run(&t, MOD, ROOM, "!exp digest off");
	cmdtest_run(&t, MOD, ROOM2, "!exp digest off");
	cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 \"Texts\" --believe a --result-in b --know-when c");
	cmdtest_run(&t, BOB, ROOM2, "!exp new C-2 \"Hub hours\" --believe a --result-in b --know-when c");
	cmdtest_run(&t, ALICE, ROOM, "!exp learn E-1 \"texts work\"");
	cmdtest_run(&t, BOB, ROOM2, "!exp learn E-2 \"evenings are busiest\"");
	cmdtest_run(&t, BOB, ROOM2, "!exp start E-2");
	cmdtest_run(&t, BOB, ROOM2, "!exp result E-2 \"busy\"");
	cmdtest_run(&t, BOB, ROOM2, "!exp decide E-2 persevere \"keep evenings\"");
	t.now = at("2026-11-20", 16, 0) + 3;
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	i = find_out(&t, "send", "!digest:test");
	CHECK_OR_RETURN(i >= 0);
	CHECK_CONTAINS(t.out_body[i], "Cross-team learning digest — 2026-11-13 to 2026-11-20");
	CHECK_CONTAINS(t.out_body[i], "• E-1 “Texts” (C-1) — learned: texts work");
	CHECK_CONTAINS(t.out_body[i], "• E-2 “Hub hours” (C-2) — decision: persevere (keep evenings) — learned: evenings are busiest");
	CHECK_CONTAINS(t.out_html[i], "title=\"Family hubs\">C-2</a>");
	/* and weekly */
	CHECK_INT(cmdtest_count(&t, "SELECT count(*) FROM jobs WHERE kind = 'exp.digest' AND state = 'pending'",
				NULL), ==, 1);
	cmdtest_release(&t);
}

TEST(scale_100k)
{
	struct cmdtest t;
	sqlite3_stmt *s;
	struct timespec a, b;
	double ms;
	int i;
	static const char *const cmds[] = {
		"!exp list", "!exp list --status running --page 50", "!exp list --mine",
		"!exp list --challenge C-1 --page 4000", "!exp show E-99999", "!exp list --status overdue",
		NULL,
	};

	setup(&t);
	sqlite3_exec(t.st.db, "BEGIN", NULL, NULL, NULL);
	sqlite3_prepare_v2(t.st.db, "INSERT INTO experiments(id, challenge_id, room_id, title, owner,"
			   " believe, result_in, know_when, status, end_date, created_at, updated_at)"
			   " VALUES (?, 1, ?, 'bulk', ?, 'a', 'b', 'c', ?, '2026-11-01', 0, 0)", -1, &s, NULL);
	for (i = 1; i <= 100000; i++) {
		sqlite3_bind_int(s, 1, i);
		sqlite3_bind_text(s, 2, i % 10 ? ROOM : ROOM2, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, i % 7 ? BOB : ALICE, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 4, i % 3 ? "concluded" : "running", -1, SQLITE_STATIC);
		sqlite3_step(s);
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	sqlite3_exec(t.st.db, "INSERT INTO counters(name, value) VALUES ('experiment', 100000)"
		     " ON CONFLICT(name) DO UPDATE SET value = 100000; COMMIT; ANALYZE", NULL, NULL, NULL);
	for (i = 0; cmds[i]; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		CHECK_INT(cmdtest_run(&t, ALICE, ROOM, cmds[i]), ==, 1);
		clock_gettime(CLOCK_MONOTONIC, &b);
		ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
		printf("# %-45s %7.1f ms\n", cmds[i], ms);
		CHECK(ms < 2000); /* typically < 50 ms; generous for loaded CI machines */
		CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "database error");
	}
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!exp new C-1 new --believe a --result-in b --know-when c"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Recorded E-100001");
	cmdtest_release(&t);
}

static const struct tap_test tests[] = {
	TEST_ENTRY(lifecycle),
	TEST_ENTRY(sentence_hypothesis),
	TEST_ENTRY(refusals_store_nothing),
	TEST_ENTRY(history_after_edits),
	TEST_ENTRY(export_csv_round_trip),
	TEST_ENTRY(export_json_round_trip),
	TEST_ENTRY(export_small_as_message),
	TEST_ENTRY(export_markdown_file),
	TEST_ENTRY(export_status_filter),
	TEST_ENTRY(hostile_text_escaped),
	TEST_ENTRY(store_failure_is_retried),
	TEST_ENTRY(references_link),
	TEST_ENTRY(list_pages_and_filters),
	TEST_ENTRY(overdue_reminders),
	TEST_ENTRY(weekly_digest),
	TEST_ENTRY(cross_team_digest),
	TEST_ENTRY(scale_100k),
	TEST_END,
};

TAP_MAIN(tests)
