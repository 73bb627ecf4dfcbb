/* !standup: schedule parsing, planning across DST, skip dates and bank
 * holidays, away people, prompts, answers by command, DM reply and edit,
 * the reminder, the summary and the recurring jobs (commands/standup*.c). */
#include "cmdtest.h"
#include "tap.h"
#include "tlbot/sched_time.h"
#include "../../commands/standup.h"

#define ROOM  "!team:test"
#define MOD   "@mod:test"
#define ALICE "@alice:test"
#define BOB   "@bob:test"
#define CAROL "@carol:test"
#define LEAD  "@lead:test"

static time_t
utc(int y, int mo, int d, int h, int mi)
{
	return (time_t)(tlbot_date_days(y, mo, d) * 86400L + h * 3600L + mi * 60L);
}

static void
sql(struct cmdtest *t, const char *q)
{
	char *err = NULL;

	if (sqlite3_exec(t->st.db, q, NULL, NULL, &err) != SQLITE_OK) {
		printf("# sql failed: %s: %s\n", q, err ? err : "?");
		sqlite3_free(err);
	}
}

static void
setup(struct cmdtest *t, time_t now)
{
	cmdtest_init(t);
	t->now = now;
	cmdtest_power(t, ROOM, MOD, 50);
}

/* The due time of the pending job of kind whose key contains part. */
static long long
job_due(struct cmdtest *t, const char *kind, const char *part)
{
	sqlite3_stmt *s;
	long long v = -1;

	if (sqlite3_prepare_v2(t->st.db,
	                       "SELECT due FROM jobs WHERE state = 'pending' AND kind = ?"
	                       " AND instr(key, ?) > 0 ORDER BY due LIMIT 1",
	                       -1, &s, NULL) != SQLITE_OK)
		return -2;
	sqlite3_bind_text(s, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, part ? part : "", -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* Index of the first output row of kind to target, or -1. */
static int
out_to(struct cmdtest *t, const char *kind, const char *target)
{
	size_t i;

	for (i = 0; i < t->nout; i++)
		if (strcmp(t->out_kind[i], kind) == 0 && strcmp(t->out_target[i], target) == 0)
			return (int)i;
	return -1;
}

static void
roster(struct cmdtest *t)
{
	sql(t, "INSERT INTO team_members(room_id, user_id, role) VALUES"
	       " ('" ROOM "', '" ALICE "', 'data'), ('" ROOM "', '" BOB "', 'policy'),"
	       " ('" ROOM "', '" CAROL "', 'digital')");
}

TEST(schedule_parsing)
{
	struct cmdtest t;

	setup(&t, utc(2026, 11, 18, 8, 26));
	/* bad input is refused and stores nothing */
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup schedule 25:00"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "bad time '25:00'");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Mars/Olympus"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unknown time zone 'Mars/Olympus'");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London funday"), ==,
	          1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "neither a time zone");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 mon-"), ==, 1);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup schedule 09:30"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "not allowed");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup summary-at 10:15"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "no stand-up here yet");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_rooms", NULL), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM jobs", NULL), ==, 0);

	/* a good one; zone and days in either order */
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 mon,wed,fri Europe/Paris"),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "09:30 Europe/Paris, mon,wed,fri");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Next stand-up: Wednesday 18 November 2026");
	CHECK_INT(cmdtest_count(&t, "SELECT days FROM standup_rooms", NULL), ==, 0x15);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri"), ==,
	          1);
	CHECK_INT(cmdtest_count(&t, "SELECT days FROM standup_rooms", NULL), ==, 0x1f);
	/* prompt 09:30 GMT, summary 45 minutes later, reminder 15 before that */
	CHECK_INT(job_due(&t, "standup.prompt", "2026-11-18"), ==, utc(2026, 11, 18, 9, 30));
	CHECK_INT(job_due(&t, "standup.summary", "2026-11-18"), ==, utc(2026, 11, 18, 10, 15));
	CHECK_INT(job_due(&t, "standup.remind", "2026-11-18"), ==, utc(2026, 11, 18, 10, 0));
	/* only the current plan is pending after a change */
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM jobs WHERE state = 'pending'", NULL), ==,
	          3);

	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup summary-at 09:00"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "must come after the prompts");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup summary-at 11:00"), ==, 1);
	CHECK_INT(job_due(&t, "standup.summary", "2026-11-18"), ==, utc(2026, 11, 18, 11, 0));
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup reminder 30m"), ==, 1);
	CHECK_INT(job_due(&t, "standup.remind", "2026-11-18"), ==, utc(2026, 11, 18, 10, 30));
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup reminder soon"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "bad lead time");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup questions \"Done?\" \"Doing?\" \"Stuck?\""),
	          ==, 1);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup questions \"Done?\" \"Doing?\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "missing");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup mode carrier-pigeon"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unknown mode 'carrier-pigeon': use dm or room");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup holidays wales"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unknown division 'wales'");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup show"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0),
	               "Prompts at 09:30 Europe/London, mon-fri; summary at 11:00");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Questions: 1. Done? 2. Doing? 3. Stuck?");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "team add @user --role R");
	/* off cancels everything, on plans again */
	/* a lost plan (a failed summary job plans nothing) is repaired by show */
	sql(&t, "UPDATE jobs SET state = 'failed'");
	sql(&t, "UPDATE standup_rooms SET next_date = '2026-11-17'");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup show"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Next stand-up: Wednesday 18 November 2026");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM jobs WHERE state = 'pending'", NULL), ==,
	          3);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup off"), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM jobs WHERE state = 'pending'", NULL), ==,
	          0);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup on"), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM jobs WHERE state = 'pending'", NULL), ==,
	          3);
	cmdtest_release(&t);
}

TEST(next_across_dst)
{
	struct cmdtest t;

	/* Friday 27 March 2026 after the summary: next is Monday 30th, BST */
	setup(&t, utc(2026, 3, 27, 12, 0));
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	CHECK_INT(job_due(&t, "standup.prompt", ""), ==, utc(2026, 3, 30, 8, 30));
	CHECK_INT(job_due(&t, "standup.summary", ""), ==, utc(2026, 3, 30, 9, 15));
	/* the chain: the summary fires and plans Tuesday */
	t.now = utc(2026, 3, 30, 9, 15);
	CHECK_INT(cmdtest_jobs(&t), >=, 1);
	CHECK_INT(job_due(&t, "standup.prompt", "2026-03-31"), ==, utc(2026, 3, 31, 8, 30));
	cmdtest_release(&t);

	/* October: Friday 23rd in BST, Monday 26th in GMT */
	setup(&t, utc(2026, 10, 23, 7, 0));
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	CHECK_INT(job_due(&t, "standup.prompt", "2026-10-23"), ==, utc(2026, 10, 23, 8, 30));
	t.now = utc(2026, 10, 23, 9, 15);
	cmdtest_jobs(&t);
	CHECK_INT(job_due(&t, "standup.prompt", "2026-10-26"), ==, utc(2026, 10, 26, 9, 30));
	CHECK_INT(job_due(&t, "standup.summary", "2026-10-26"), ==, utc(2026, 10, 26, 10, 15));
	cmdtest_release(&t);
}

TEST(skip_dates_and_bank_holidays)
{
	struct cmdtest t;

	setup(&t, utc(2026, 12, 24, 12, 0));
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	CHECK_INT(job_due(&t, "standup.prompt", ""), ==, utc(2026, 12, 25, 9, 30));
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup holidays england-and-wales"), ==, 1);
	/* 25th Christmas, 28th the Boxing Day substitute */
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Next stand-up: Tuesday 29 December 2026");
	CHECK_INT(job_due(&t, "standup.prompt", ""), ==, utc(2026, 12, 29, 9, 30));
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup skip 2026-12-29..2026-12-31"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "No stand-ups from 2026-12-29 to 2026-12-31");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Next stand-up: Monday 4 January 2027");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_skips", NULL), ==, 3);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup unskip 2026-12-31"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Next stand-up: Thursday 31 December 2026");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup skip 2026-12-31 2026-12-01"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "ends (2026-12-01) before it starts");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup skip 31/13/2026"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "bad date");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_skips", NULL), ==, 2);
	cmdtest_release(&t);

	/* Scotland keeps 2 January; England and Wales does not */
	setup(&t, utc(2025, 12, 31, 12, 0));
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	cmdtest_run(&t, MOD, ROOM, "!standup holidays england-and-wales");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Next stand-up: Friday 2 January 2026");
	cmdtest_run(&t, MOD, ROOM, "!standup holidays scotland");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Next stand-up: Monday 5 January 2026");
	cmdtest_run(&t, MOD, ROOM, "!standup holidays none");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Next stand-up: Thursday 1 January 2026");
	cmdtest_release(&t);
}

/* A day: prompts, answers three ways, reminder, summary. */
TEST(full_day)
{
	struct cmdtest t;
	char ev[64], extra[256];
	int i;

	setup(&t, utc(2026, 11, 18, 8, 0));
	roster(&t);
	sql(&t, "INSERT INTO challenges(id, room_id, title, lead, status) VALUES"
	        " (1, '" ROOM "', 'Temporary accommodation costs', '" LEAD "', 'active')");
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	CHECK_INT(cmdtest_run(&t, CAROL, ROOM, "!standup away me --until 2026-11-20"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "is away from 2026-11-18 until 2026-11-20");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup away " BOB " --until 2026-11-20"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "not allowed");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup away " CAROL), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "--until");

	/* since-last-stand-up activity */
	{
		char q[512];

		snprintf(q, sizeof(q),
		         "INSERT INTO history(kind, record_id, room_id, at, actor,"
		         " action, field, old, new) VALUES ('C', 1, '" ROOM "', %lld, '" MOD
		         "', 'status',"
		         " 'status', 'open', 'active'), ('C', 1, '" ROOM "', %lld, '" MOD "', 'status',"
		         " 'outcome', NULL, 'x')",
		         (long long)utc(2026, 11, 18, 9, 0), (long long)utc(2026, 11, 18, 9, 0));
		sql(&t, q);
		snprintf(q, sizeof(q),
		         "INSERT INTO experiments(id, challenge_id, room_id, title, owner,"
		         " status, end_date) VALUES (9, 1, '" ROOM
		         "', 'Text message nudges', '" ALICE "',"
		         " 'running', '2026-11-10')");
		sql(&t, q);
		snprintf(q, sizeof(q),
		         "INSERT INTO history(kind, record_id, room_id, at, actor,"
		         " action, field, old, new) VALUES ('E', 9, '" ROOM "', %lld, '" ALICE
		         "', 'started',"
		         " 'status', 'proposed', 'running'), ('E', 9, '" ROOM "', %lld, '" ALICE
		         "', 'started',"
		         " 'start_date', NULL, '2026-11-01')",
		         (long long)utc(2026, 11, 18, 8, 0), (long long)utc(2026, 11, 18, 8, 0));
		sql(&t, q);
	}

	/* 09:30: alice and bob are asked by DM, carol (away) is not */
	t.now = utc(2026, 11, 18, 9, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 2);
	CHECK_INT(out_to(&t, "dm", ALICE), >=, 0);
	CHECK_INT(out_to(&t, "dm", BOB), >=, 0);
	CHECK_INT(out_to(&t, "dm", CAROL), ==, -1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Yesterday?");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "https://matrix.to/#/" ROOM);
	CHECK_INT(cmdtest_jobs(&t), ==, 0); /* never twice */

	/* alice replies to the prompt in her DM room */
	cmdtest_dm_room(&t, "!dm-alice:test", ALICE);
	t.now += 60;
	CHECK_INT(cmdtest_event(
	                  &t, ALICE, "!dm-alice:test",
	                  "y: interviews for C-1\nt: write up\nb: none",
	                  "{\"m.relates_to\":{\"m.in_reply_to\":{\"event_id\":\"$prompt:test\"}}}",
	                  NULL, 0),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "your stand-up answer is recorded");
	CHECK_INT(
	        cmdtest_count(&t, "SELECT COUNT(*) FROM standup_answers WHERE user_id = ?", ALICE),
	        ==, 1);
	/* a chatty message afterwards does not replace it */
	CHECK_INT(cmdtest_run(&t, ALICE, "!dm-alice:test", "thanks!"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "already have your stand-up answer");
	CHECK_INT(
	        cmdtest_count(&t, "SELECT COUNT(*) FROM standup_answers WHERE user_id = ?", ALICE),
	        ==, 1);

	/* bob answers by command in the room, then edits it */
	CHECK_INT(cmdtest_event(&t, BOB, ROOM,
	                        "!standup y: survey t: analysis b: waiting for the data", NULL, ev,
	                        sizeof(ev)),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "recorded for Wednesday 18 November 2026");
	snprintf(extra, sizeof(extra),
	         "{\"m.new_content\":{\"msgtype\":\"m.text\",\"body\":"
	         "\"!standup y: survey t: analysis of E-9 b: waiting for the data sharing "
	         "agreement\"},"
	         "\"m.relates_to\":{\"rel_type\":\"m.replace\",\"event_id\":\"%s\"}}",
	         ev);
	CHECK_INT(cmdtest_event(&t, BOB, ROOM, "* edited", extra, NULL, 0), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_answers WHERE user_id = ?", BOB),
	          ==, 2);
	CHECK_INT(cmdtest_count(&t,
	                        "SELECT COUNT(*) FROM standup_answers WHERE user_id = ?"
	                        " AND replaced_by IS NULL AND blockers LIKE '%sharing%'",
	                        BOB),
	          ==, 1);
	/* someone else's edit of bob's answer changes nothing */
	CHECK_INT(cmdtest_event(&t, ALICE, ROOM, "* x", extra, NULL, 0), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_answers WHERE user_id = ?", BOB),
	          ==, 2);

	/* 10:00 reminder: everyone present answered: nobody reminded */
	t.now = utc(2026, 11, 18, 10, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 0);

	/* 10:15 the summary */
	t.now = utc(2026, 11, 18, 10, 15);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_STR(t.out_kind[0], "send");
	CHECK_STR(t.out_target[0], ROOM);
	{
		const char *b = cmdtest_reply(&t, 0);
		const char *pb = strstr(b, "Blockers"), *pa = strstr(b, "Answers");
		const char *pw = strstr(b, "Away:"), *ps = strstr(b, "Since the last stand-up");

		CHECK(pb && pa && pw && ps && pb < pa && pa < pw && pw < ps);
		CHECK_CONTAINS(b, "@bob:test: waiting for the data sharing agreement — @lead:test "
		                  "(lead of C-1)");
		CHECK_CONTAINS(b, "Today: analysis of E-9");
		CHECK_CONTAINS(b, "Yesterday: interviews for C-1");
		CHECK_CONTAINS(b, "@carol:test (until 2026-11-20)");
		CHECK_NOT_CONTAINS(b, "Not answered");
		CHECK_CONTAINS(b, "status open → active");
		CHECK_CONTAINS(t.out_content[0], "\"user_ids\":[\"@lead:test\"]");
		/* issue 13 item 12: one line per record, title once, changes in
		 * time order (was two lines "E-9 ...: started" and "E-9 ...:
		 * overdue (end date 2026-11-10)") */
		CHECK_CONTAINS(b, "E-9 Text message nudges: started; overdue (end date 2026-11-10)");
		CHECK(strstr(b, "Text message nudges") != NULL &&
		      strstr(strstr(b, "Text message nudges") + 1, "Text message nudges") == NULL);
		/* one valid list: no <br/> between items or after a list */
		CHECK_NOT_CONTAINS(cmdtest_html(&t, 0), "</li><br/>");
		CHECK_NOT_CONTAINS(cmdtest_html(&t, 0), "</ul><br/>");
		CHECK_NOT_CONTAINS(b, "outcome");
	}
	CHECK_INT(cmdtest_count(&t,
	                        "SELECT COUNT(*) FROM standup_summaries WHERE kind = 'scheduled'",
	                        NULL),
	          ==, 1);
	/* and tomorrow is planned */
	CHECK_INT(job_due(&t, "standup.summary", "2026-11-19"), ==, utc(2026, 11, 19, 10, 15));
	/* history */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup history --days 3"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Wednesday 18 November 2026");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "waiting for the data sharing agreement");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup history --days many"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "bad days 'many': write a whole number from 1 to 366");

	/* the next day: bob did not answer, gets the reminder; since-section
	 * only counts what happened after yesterday's summary */
	t.now = utc(2026, 11, 19, 9, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 2);
	cmdtest_run(&t, ALICE, ROOM, "!standup t: more interviews");
	t.now = utc(2026, 11, 19, 10, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_INT(out_to(&t, "dm", BOB), ==, 0);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "no answer from you yet");
	/* a settings change re-plans the day: nobody is asked or reminded twice */
	t.now = utc(2026, 11, 19, 10, 5);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup summary-at 10:20"), ==, 1);
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	t.now = utc(2026, 11, 19, 10, 15);
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	t.now = utc(2026, 11, 19, 10, 20);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Not answered: @bob:test");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "status open");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "started");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "overdue");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "Blockers");
	for (i = 0; i < 2; i++)
		CHECK_INT(cmdtest_jobs(&t), ==, 0);
	cmdtest_release(&t);
}

TEST(missed_past_grace)
{
	struct cmdtest t;

	setup(&t, utc(2026, 11, 18, 8, 0));
	roster(&t);
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	/* the bot was down from 09:00 to 13:00: past the 2 h grace for all three */
	t.now = utc(2026, 11, 18, 13, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM jobs WHERE state = 'missed'", NULL), ==,
	          3);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_summaries WHERE kind = 'missed'",
	                        NULL),
	          ==, 1);
	CHECK_INT(job_due(&t, "standup.summary", "2026-11-19"), ==, utc(2026, 11, 19, 10, 15));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup history"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Not posted");
	cmdtest_release(&t);

	/* within the grace period: fires once, late */
	setup(&t, utc(2026, 11, 18, 8, 0));
	roster(&t);
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	t.now = utc(2026, 11, 18, 10, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 7); /* 3 prompts, 3 reminders, the summary */
	cmdtest_release(&t);
}

TEST(room_mode_and_fallback_roster)
{
	struct cmdtest t;

	setup(&t, utc(2026, 11, 18, 8, 0));
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	/* no roster, nobody answered before: one message in the room */
	t.now = utc(2026, 11, 18, 9, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_STR(t.out_target[0], ROOM);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "team add @user --role R");
	cmdtest_run(&t, ALICE, ROOM, "!standup y: a t: b b: c");
	t.now = utc(2026, 11, 18, 10, 15);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "@alice:test: c");
	/* room mode: one mention of each member, answers by reply */
	cmdtest_run(&t, MOD, ROOM, "!standup mode room");
	t.now = utc(2026, 11, 19, 9, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_CONTAINS(t.out_content[0], "\"user_ids\":[\"@alice:test\"]");
	CHECK_INT(cmdtest_event(&t, ALICE, ROOM, "y: x\nt: y\nb: none",
	                        "{\"m.relates_to\":{\"m.in_reply_to\":{\"event_id\":\"$p:test\"}}}",
	                        NULL, 0),
	          ==, 1);
	CHECK_INT(cmdtest_count(&t,
	                        "SELECT COUNT(*) FROM standup_answers WHERE date = '2026-11-19'",
	                        NULL),
	          ==, 1);
	/* a reply from someone not asked is left alone */
	CHECK_INT(cmdtest_event(&t, BOB, ROOM, "t: hello",
	                        "{\"m.relates_to\":{\"m.in_reply_to\":{\"event_id\":\"$p:test\"}}}",
	                        NULL, 0),
	          ==, 0);
	cmdtest_release(&t);
}

TEST(own_zone_prompt)
{
	struct cmdtest t;

	setup(&t, utc(2026, 11, 18, 6, 0));
	roster(&t);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!me tz Europe/Paris"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Europe/Paris");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!me tz Atlantis/Capital"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unknown time zone");
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	/* 09:30 in Paris is 08:30 UTC in November */
	CHECK_INT(job_due(&t, "standup.prompt", ALICE), ==, utc(2026, 11, 18, 8, 30));
	t.now = utc(2026, 11, 18, 8, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_INT(out_to(&t, "dm", ALICE), ==, 0);
	t.now = utc(2026, 11, 18, 9, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 2); /* bob and carol only */
	CHECK_INT(out_to(&t, "dm", ALICE), ==, -1);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!me"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Time zone: Europe/Paris");
	cmdtest_release(&t);
}

TEST(answer_parsing)
{
	char *y, *tt, *b;
	char *q[3] = {"What did you do yesterday?", "What will you do today?",
	              "Anything blocking?"};

	CHECK_INT(su_parse_answer("y: a\nt: b\nb: c", NULL, &y, &tt, &b), ==, 3);
	CHECK_STR(y, "a");
	CHECK_STR(tt, "b");
	CHECK_STR(b, "c");
	free(y), free(tt), free(b);
	CHECK_INT(su_parse_answer("Y: fixed the key: value bug T: more b: none", NULL, &y, &tt, &b),
	          ==, 3);
	CHECK_STR(y, "fixed the key: value bug");
	CHECK_STR(tt, "more");
	CHECK_STR(b, "none");
	CHECK_INT(su_no_blocker(b), ==, 1);
	free(y), free(tt), free(b);
	CHECK_INT(su_parse_answer("What did you do yesterday? met the council\n"
	                          "What will you do today? survey\nAnything blocking? no",
	                          q, &y, &tt, &b),
	          ==, 3);
	CHECK_STR(y, "met the council");
	CHECK_STR(tt, "survey");
	CHECK_STR(b, "no");
	free(y), free(tt), free(b);
	CHECK_INT(su_parse_answer("Yesterday? x\nToday? y", NULL, &y, &tt, &b), ==, 2);
	CHECK_STR(y, "x");
	CHECK_STR(b, NULL);
	free(y), free(tt), free(b);
	/* no markers: lines in order; one line alone is today */
	CHECK_INT(su_parse_answer("did a\ndoing b\nblocked by c\nand d", NULL, &y, &tt, &b), ==, 3);
	CHECK_STR(y, "did a");
	CHECK_STR(tt, "doing b");
	CHECK_STR(b, "blocked by c\nand d");
	CHECK_INT(su_no_blocker(b), ==, 0);
	free(y), free(tt), free(b);
	CHECK_INT(su_parse_answer("just writing up", NULL, &y, &tt, &b), ==, 1);
	CHECK_STR(tt, "just writing up");
	CHECK_STR(y, NULL);
	free(y), free(tt), free(b);
	CHECK_INT(su_parse_answer("   ", NULL, &y, &tt, &b), ==, 0);
	CHECK_INT(su_has_marker("today: x", NULL), ==, 1);
	CHECK_INT(su_has_marker("thanks!", NULL), ==, 0);
	CHECK_INT(su_has_marker("a key:value", NULL), ==, 0);
}

/* cmdtest sends only m.room.message events, so the redaction itself is
 * covered by tests/integration/test_standup.py; here: a withdrawn answer is
 * left out of the summary. */
TEST(withdrawn_answer_hidden)
{
	struct cmdtest t;

	setup(&t, utc(2026, 11, 18, 9, 40));
	cmdtest_run(&t, BOB, ROOM, "!standup y: a t: b b: stuck");
	CHECK_INT(
	        cmdtest_count(&t, "SELECT COUNT(*) FROM standup_answers WHERE withdrawn = 0", NULL),
	        ==, 1);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup summary"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "stuck");
	sql(&t, "UPDATE standup_answers SET withdrawn = 1 WHERE user_id = '" BOB "'");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup summary"), ==, 1);
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "stuck");
	cmdtest_release(&t);
}

TEST(dm_answer_without_prompt)
{
	struct cmdtest t;

	setup(&t, utc(2026, 11, 18, 9, 40));
	cmdtest_dm_room(&t, "!dm-bob:test", BOB);
	/* not asked: a DM is not ours */
	CHECK_INT(cmdtest_run(&t, BOB, "!dm-bob:test", "y: a t: b"), ==, 0);
	CHECK_INT(cmdtest_run(&t, BOB, "!dm-bob:test", "!standup y: a t: b"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "I have not asked you");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_answers", NULL), ==, 0);
	cmdtest_release(&t);
}

TEST(dm_off_asked_in_room)
{
	struct cmdtest t;

	setup(&t, utc(2026, 11, 18, 8, 0));
	roster(&t);
	sql(&t, "INSERT INTO user_prefs(user_id, dm_enabled) VALUES ('" BOB "', 0)");
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	t.now = utc(2026, 11, 18, 9, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 3);
	CHECK_INT(out_to(&t, "dm", ALICE), >=, 0);
	CHECK_INT(out_to(&t, "dm", CAROL), >=, 0);
	CHECK_INT(out_to(&t, "dm", BOB), ==, -1);
	CHECK_INT(out_to(&t, "send", ROOM), >=, 0);
	CHECK_CONTAINS(t.out_content[out_to(&t, "send", ROOM)], "\"user_ids\":[\"@bob:test\"]");
	cmdtest_release(&t);
}

TEST(long_answers_fit)
{
	struct cmdtest t;
	char q[512];
	int i;

	setup(&t, utc(2026, 11, 18, 9, 40));
	/* one long answer is clipped */
	sql(&t, "INSERT INTO standup_answers(room_id, user_id, date, today, blockers, source, at)"
	        " VALUES ('" ROOM "', '" ALICE "', '2026-11-18', printf('%.2000c', 'x'), 'none',"
	        " 'command', 0)");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup summary"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "xxx…");
	CHECK_INT(strlen(cmdtest_reply(&t, 0)), <, 1500);
	/* forty long answers: the answers are left out, the rest still posted */
	for (i = 0; i < 40; i++) {
		snprintf(q, sizeof(q),
		         "INSERT INTO standup_answers(room_id, user_id, date, yesterday,"
		         " today, blockers, source, at) VALUES ('" ROOM
		         "', '@u%d:test', '2026-11-18',"
		         " printf('%%.900c', 'y'), printf('%%.900c', 't'), 'none', 'command', 0)",
		         i);
		sql(&t, q);
	}
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup summary"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Answered: @alice:test, @u0:test");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "answers are left out");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Since the last stand-up");
	cmdtest_release(&t);
}

TEST(early_answer_not_asked)
{
	struct cmdtest t;

	setup(&t, utc(2026, 11, 18, 8, 0));
	roster(&t);
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	cmdtest_run(&t, ALICE, ROOM, "!standup y: early t: bird b: none");
	t.now = utc(2026, 11, 18, 9, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 2);
	CHECK_INT(out_to(&t, "dm", ALICE), ==, -1);
	t.now = utc(2026, 11, 18, 10, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 2); /* bob and carol reminded, not alice */
	CHECK_INT(out_to(&t, "dm", ALICE), ==, -1);
	cmdtest_release(&t);
}

TEST(dayone_parts_blockers_later_time)
{
	struct cmdtest t;

	/* "none now - signed..." and the like are no blocker; "no access" is */
	CHECK_INT(su_no_blocker("none now \xe2\x80\x93 signed this morning \xe2\x9c\x85"), ==, 1);
	CHECK_INT(su_no_blocker("No."), ==, 1);
	CHECK_INT(su_no_blocker("no - all fine"), ==, 1);
	CHECK_INT(su_no_blocker("n/a"), ==, 1);
	CHECK_INT(su_no_blocker("-"), ==, 1);
	CHECK_INT(su_no_blocker("\xe2\x80\x94"), ==, 1);
	CHECK_INT(su_no_blocker("Nothing, thanks"), ==, 1);
	CHECK_INT(su_no_blocker("no access to the data"), ==, 0);
	CHECK_INT(su_no_blocker("nonexistent API key"), ==, 0);
	CHECK_INT(su_no_blocker("-5 budget"), ==, 0);
	CHECK_INT(su_no_blocker("waiting on legal"), ==, 0);

	setup(&t, utc(2026, 11, 18, 8, 0));
	roster(&t);
	cmdtest_run(&t, MOD, ROOM, "!standup schedule 09:30 Europe/London mon-fri");
	/* a part replaces only that part, and the reply says the whole answer */
	cmdtest_run(&t, ALICE, ROOM, "!standup y: counted t: call council b: contract unsigned");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup b: none now"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "updated");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "counted");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "call council");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "<li><b>Blockers</b>: none now</li>");
	CHECK_INT(cmdtest_count(&t,
	                        "SELECT COUNT(*) FROM standup_answers WHERE replaced_by IS NULL"
	                        " AND yesterday = 'counted' AND today = 'call council'"
	                        " AND blockers = 'none now'",
	                        NULL),
	          ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_answers", NULL), ==, 2);
	/* after the day's summary, a later time starts with tomorrow */
	t.now = utc(2026, 11, 18, 10, 15);
	cmdtest_jobs(&t);
	t.now = utc(2026, 11, 18, 10, 30);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup schedule 14:00"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Next stand-up: Thursday 19 November 2026");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "already run");
	cmdtest_release(&t);
}

/* Arguments the table types (TIME, ENUM, DATE, extra positionals) are
 * checked once in dispatch; the handlers take the normalised values. */
TEST(typed_arguments_checked_in_dispatch)
{
	struct cmdtest t;

	setup(&t, utc(2026, 11, 18, 6, 0)); /* Wednesday */
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup schedule 25:00"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "25:00");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_rooms", NULL), ==, 0);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup schedule 9:30am Europe/London"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Stand-up set for 09:30 Europe/London");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup summary-at 5pm"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Summary at 17:00");
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup mode ROOM"), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_rooms WHERE mode = 'room'",
	                        NULL),
	          ==, 1);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup mode chat"), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_rooms WHERE mode = 'room'",
	                        NULL),
	          ==, 1);
	CHECK_INT(cmdtest_run(&t, MOD, ROOM, "!standup skip 2026-12-24 2026-12-25 2026-12-26"),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unexpected argument");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup away me --from friday --until 2026-11-23"),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "is away from 2026-11-20 until 2026-11-23");
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!standup away me --until 2026-02-30"), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_away WHERE user_id = '" BOB "'",
	                        NULL),
	          ==, 0);
	cmdtest_release(&t);
}

/* The answer record through its field table (commands/standup.h): a new
 * answer of the same (room, user, date) replaces the current one, the
 * earlier row stays as history; the day's list is in answering order. */
TEST(answer_record_table)
{
	struct cmdtest t;
	struct tlbot_ctx ctx;
	struct su_answer a = {.room_id = ROOM, .user_id = ALICE, .date = "2026-11-18",
	                      .today = "interviews", .blockers = "none", .source = "command"};
	struct su_answer *v;
	size_t n;
	int64_t first, second;

	setup(&t, utc(2026, 11, 18, 9, 0));
	tlbot_ctx_init(&ctx, &t.cfg, &t.st, "@tlbot:test");
	ctx.now = utc(2026, 11, 18, 9, 0);
	CHECK_INT(su_answer_current(&ctx, ROOM, ALICE, "2026-11-18", &a), ==, 1);
	CHECK(a.room_id == NULL && a.today == NULL);
	a = (struct su_answer){.room_id = ROOM, .user_id = ALICE, .date = "2026-11-18",
	                       .today = "interviews", .blockers = "none", .source = "command"};
	first = su_answer_record(&ctx, &a);
	CHECK(first > 0);
	CHECK_INT(a.at, ==, utc(2026, 11, 18, 9, 0));
	a.user_id = BOB;
	a.today = "policy paper";
	a.event_id = "$b:test";
	CHECK(su_answer_record(&ctx, &a) > first);
	a.user_id = ALICE;
	a.today = "analysis";
	a.event_id = NULL;
	second = su_answer_record(&ctx, &a);
	CHECK(second > first);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM standup_answers WHERE replaced_by IS NOT"
	                        " NULL",
	                        NULL),
	          ==, 1);
	CHECK_INT(su_answer_current(&ctx, ROOM, ALICE, "2026-11-18", &a), ==, 0);
	CHECK_STR(a.today, "analysis");
	CHECK_STR(a.blockers, "none");
	CHECK(a.yesterday == NULL);
	CHECK_STR(a.source, "command");
	rec_release(&su_answer_desc, &a);
	CHECK_INT(su_answers_of_day(&ctx, ROOM, "2026-11-18", &v, &n), ==, 0);
	CHECK_INT(n, ==, 2);
	if (n == 2) {
		CHECK_STR(v[0].user_id, BOB);
		CHECK_STR(v[0].event_id, "$b:test");
		CHECK_STR(v[1].user_id, ALICE);
		CHECK_STR(v[1].today, "analysis");
	}
	su_answers_free(v, n);
	CHECK_INT(su_answers_of_day(&ctx, ROOM, "2026-11-19", &v, &n), ==, 0);
	CHECK_INT(n, ==, 0);
	su_answers_free(v, n);
	tlbot_ctx_release(&ctx);
	cmdtest_release(&t);
}

static const struct tap_test tests[] = {
        TEST_ENTRY(answer_record_table),
        TEST_ENTRY(typed_arguments_checked_in_dispatch),
        TEST_ENTRY(dayone_parts_blockers_later_time),
        TEST_ENTRY(early_answer_not_asked),
        TEST_ENTRY(long_answers_fit),
        TEST_ENTRY(dm_off_asked_in_room),
        TEST_ENTRY(schedule_parsing),
        TEST_ENTRY(next_across_dst),
        TEST_ENTRY(skip_dates_and_bank_holidays),
        TEST_ENTRY(full_day),
        TEST_ENTRY(missed_past_grace),
        TEST_ENTRY(room_mode_and_fallback_roster),
        TEST_ENTRY(own_zone_prompt),
        TEST_ENTRY(answer_parsing),
        TEST_ENTRY(withdrawn_answer_hidden),
        TEST_ENTRY(dm_answer_without_prompt),
        TEST_END,
};

TAP_MAIN(tests)
