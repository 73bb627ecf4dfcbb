/* Unit tests for commands/challenge.c (and !notify) through the real router:
 * every subcommand's success and refusal, refusals store nothing, history,
 * permissions, paging, HTML escaping, due-date jobs and DMs. */
#include "cmdtest.h"
#include "tap.h"

#define ROOM  "!team:test"
#define ROOM2 "!other:test"
#define MOD   "@mod:test"
#define USER  "@user:test"
#define ALI   "@ali:test"
#define SAM   "@sam:test"

static struct cmdtest T;

static void
setup(void)
{
	cmdtest_init(&T);
	cmdtest_power(&T, ROOM, MOD, 50);
	cmdtest_power(&T, ROOM2, MOD, 50);
}

static long long
count(const char *sql)
{
	return cmdtest_count(&T, sql, NULL);
}

static long long
count1(const char *sql, const char *arg)
{
	return cmdtest_count(&T, sql, arg);
}

/* Index of the first outbox row of kind for target, or -1. */
static int
find_out(const char *kind, const char *target)
{
	size_t i;

	for (i = 0; i < T.nout; i++)
		if (T.out_kind[i] && strcmp(T.out_kind[i], kind) == 0 && T.out_target[i] &&
		    strcmp(T.out_target[i], target) == 0)
			return (int)i;
	return -1;
}

static int
run(const char *sender, const char *body)
{
	return cmdtest_run(&T, sender, ROOM, body);
}

/* The store holds nothing of any challenge. */
static void
check_empty(void)
{
	CHECK_INT(count("SELECT COUNT(*) FROM challenges"), ==, 0);
	CHECK_INT(count("SELECT COUNT(*) FROM history WHERE kind = 'C'"), ==, 0);
	CHECK_INT(count("SELECT COUNT(*) FROM challenge_assignees"), ==, 0);
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind LIKE 'challenge.%'"), ==, 0);
}

TEST(new_creates_and_schedules)
{
	setup();
	CHECK_INT(run(MOD, "!challenge new \"Cut the cost of temporary accommodation\" --region"
	                   " Sheffield --due 2026-12-10 --desc \"Pilot in two wards\""),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "Created C-1: Cut the cost of temporary accommodation");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "due 2026-12-10 (in 22 days)");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "region Sheffield");
	CHECK_CONTAINS(T.out_content[0], "\"m.in_reply_to\"");
	CHECK_CONTAINS(T.out_content[0], "\"msgtype\":\"m.notice\"");
	CHECK_INT(count("SELECT COUNT(*) FROM challenges WHERE id = 1 AND status = 'open' AND"
	                " due = '2026-12-10' AND region = 'Sheffield' AND created_by = '@mod:test'"
	                " AND created_event IS NOT NULL"),
	          ==, 1);
	CHECK_INT(count("SELECT COUNT(*) FROM history WHERE kind = 'C' AND action = 'created'"), ==, 1);
	/* 3 days before and on the day, at 09:00 London (UTC in winter) */
	CHECK_INT(
	        count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.due' AND state = 'pending'"
	              " AND due IN (1796634000, 1796893200)"),
	        ==, 2);
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.overdue' AND"
	                " state = 'pending'"),
	          ==, 1);
	/* unquoted words make the title too; ids count up */
	CHECK_INT(run(MOD, "!challenge new Family hubs for disadvantaged households"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "Created C-2: Family hubs for disadvantaged households");
	/* the alias */
	CHECK_INT(run(MOD, "!ch new third"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-3");
	cmdtest_release(&T);
}

TEST(new_refusals_store_nothing)
{
	setup();
	CHECK_INT(run(USER, "!challenge new \"No power\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "not allowed");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "power level of at least 50");
	check_empty();
	CHECK_INT(run(MOD, "!challenge new"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "missing title");
	CHECK_INT(run(MOD, "!challenge new \"x\" --due someday"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "bad date 'someday' for --due");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), tlbot_date_forms);
	CHECK_INT(run(MOD, "!challenge new \"x\" --due 2026-02-30"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "bad date '2026-02-30' for --due");
	CHECK_INT(run(MOD, "!challenge new \"x\" --due 2020-01-01"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "in the past");
	CHECK_INT(run(MOD, "!challenge new \"x\" --due"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "usage: !challenge new");
	CHECK_INT(run(MOD, "!challenge new \"x\" --colour red"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "colour");
	CHECK_INT(run(MOD, "!challenge new \"x\" --lead bob"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "cannot tell who 'bob' is");
	CHECK_INT(run(MOD, "!challenge new \"line one\nline two\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "one line");
	{
		char body[600];

		snprintf(body, sizeof(body), "!challenge new \"%0250d\"", 0);
		CHECK_INT(run(MOD, body), ==, 1);
		CHECK_CONTAINS(cmdtest_reply(&T, 0), "too long");
	}
	check_empty();
	/* the counter was rolled back with everything else */
	CHECK_INT(run(MOD, "!challenge new \"First real\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Created C-1:");
	cmdtest_release(&T);
}

TEST(html_escaping)
{
	const char *evil = "<script>alert(\\\"x\\\")</script> & 'q' <b>bold</b>";
	char body[256];

	setup();
	snprintf(body, sizeof(body),
	         "!challenge new \"%s\" --desc \"<img src=x onerror=alert(1)>\"", evil);
	CHECK_INT(run(MOD, body), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "<script>alert(\"x\")</script> & 'q'");
	CHECK_NOT_CONTAINS(cmdtest_html(&T, 0), "<script>");
	CHECK_NOT_CONTAINS(cmdtest_html(&T, 0), "<b>bold");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "&lt;script&gt;");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "&amp;");
	CHECK_INT(run(USER, "!challenge list"), ==, 1);
	CHECK_NOT_CONTAINS(cmdtest_html(&T, 0), "<script>");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "&lt;script&gt;");
	CHECK_INT(run(USER, "!challenge show C-1"), ==, 1);
	CHECK_NOT_CONTAINS(cmdtest_html(&T, 0), "<script>");
	CHECK_NOT_CONTAINS(cmdtest_html(&T, 0), "<img");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "&lt;img src=x");
	/* the title in the hover text of a C-1 link is escaped too */
	CHECK_INT(run(USER, "!challenge history C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_html(&T, 0), "title=\"&lt;script&gt;");
	cmdtest_release(&T);
}

TEST(show_ids_and_refusals)
{
	setup();
	run(MOD, "!challenge new \"Alpha\" --due +10d --sponsor \"Director of Housing\"");
	CHECK_INT(run(USER, "!challenge show C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-1 Alpha");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Status: open");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Due: 2026-11-28 (in 10 days)");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Sponsor: Director of Housing");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Assigned: nobody yet");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "created it");
	/* the id links to the event that created it, title on hover */
	CHECK_CONTAINS(cmdtest_html(&T, 0), "https://matrix.to/#/!team:test/$ev1:test");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "title=\"Alpha\"");
	CHECK_INT(run(USER, "!challenge show c-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-1 Alpha");
	CHECK_INT(run(USER, "!challenge show 1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-1 Alpha");
	CHECK_INT(run(USER, "!challenge show C-99999999999999999999"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "bad challenge id 'C-99999999999999999999'");
	CHECK_INT(run(USER, "!challenge show C-7"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "no challenge C-7");
	CHECK_INT(run(USER, "!challenge show banana"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "bad challenge id 'banana': write it as C-12");
	CHECK_INT(run(USER, "!challenge show"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "missing C-12");
	CHECK_INT(run(USER, "!challenge show C-1 C-2"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "unexpected argument 'C-2'");
	CHECK_INT(run(USER, "!challenge shwo C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "did you mean !challenge show");
	cmdtest_release(&T);
}

TEST(assign_mentions_and_dms)
{
	setup();
	run(MOD, "!challenge new \"Alpha\" --due +10d");
	/* ali turned DMs off */
	CHECK_INT(run(ALI, "!notify off"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Direct messages are off");
	CHECK_INT(run(MOD, "!challenge assign C-1 @sam:test @ali:test --lead @sam:test"), ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Assigned C-1 Alpha to @sam:test and @ali:test.");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Lead: @sam:test");
	CHECK_CONTAINS(T.out_content[0],
	               "\"m.mentions\":{\"user_ids\":[\"@sam:test\",\"@ali:test\"]}");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "<a href=\"https://matrix.to/#/@sam:test\">");
	/* the DM goes to sam only */
	CHECK_INT(find_out("dm", SAM), ==, 1);
	CHECK_INT(find_out("dm", ALI), ==, -1);
	CHECK_CONTAINS(cmdtest_reply(&T, 1), "@mod:test assigned you to C-1 Alpha");
	CHECK_CONTAINS(cmdtest_reply(&T, 1), "as its lead");
	CHECK_CONTAINS(cmdtest_reply(&T, 1), "Due 2026-11-28");
	CHECK_CONTAINS(cmdtest_reply(&T, 1), "!notify off");
	CHECK_INT(count("SELECT COUNT(*) FROM challenge_assignees WHERE challenge_id = 1"), ==, 2);
	CHECK_INT(count("SELECT COUNT(*) FROM challenges WHERE lead = '@sam:test'"), ==, 1);
	CHECK_INT(count("SELECT COUNT(*) FROM history WHERE kind = 'C' AND action = 'assigned'"), ==, 2);
	CHECK_INT(count("SELECT COUNT(*) FROM history WHERE kind = 'C' AND action = 'lead'"), ==, 1);
	/* again: nothing to change, refused */
	CHECK_INT(run(MOD, "!challenge assign C-1 @sam:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "nothing to change: @sam:test is already assigned");
	/* a pill: the body holds the display name, m.mentions the id */
	CHECK_INT(cmdtest_event(&T, MOD, ROOM, "!challenge assign C-1 Jo Bloggs",
	                        "{\"m.mentions\":{\"user_ids\":[\"@jo:test\"]},"
	                        "\"formatted_body\":\"!challenge assign C-1 <a "
	                        "href=\\\"https://matrix.to/#/@jo:test\\\">Jo Bloggs</a>\"}",
	                        NULL, 0),
	          ==, 2);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Assigned C-1 Alpha to @jo:test.");
	CHECK_INT(find_out("dm", "@jo:test"), ==, 1);
	/* self-assignment sends no DM */
	CHECK_INT(run(MOD, "!challenge assign C-1 @mod:test"), ==, 1);
	CHECK_INT(find_out("dm", MOD), ==, -1);
	cmdtest_release(&T);
}

TEST(assign_refusals)
{
	setup();
	run(MOD, "!challenge new \"Alpha\"");
	CHECK_INT(run(USER, "!challenge assign C-1 @sam:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "not allowed: !challenge assign needs");
	CHECK_INT(run(MOD, "!challenge assign C-1 sam"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "'sam' is not a user");
	CHECK_INT(run(MOD, "!challenge assign C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "missing people");
	CHECK_INT(run(MOD, "!challenge assign C-9 @sam:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "no challenge C-9");
	CHECK_INT(run(MOD, "!challenge assign C-1 --team"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "the team roster is empty");
	CHECK_INT(run(MOD, "!challenge assign"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "missing C-12");
	CHECK_INT(count("SELECT COUNT(*) FROM challenge_assignees"), ==, 0);
	CHECK_INT(count("SELECT COUNT(*) FROM history WHERE kind = 'C'"), ==, 1);
	CHECK_INT(count("SELECT COUNT(*) FROM outbox WHERE kind = 'dm'"), ==, 0);
	/* from another room, the challenge is not there (issue 13: rooms apart) */
	cmdtest_power(&T, ROOM2, "@mod2:test", 50);
	CHECK_INT(cmdtest_run(&T, "@mod2:test", ROOM2, "!challenge assign C-1 @sam:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "no challenge C-1 here");
	/* a closed challenge is reopened first */
	run(MOD, "!challenge status C-1 dropped");
	CHECK_INT(run(MOD, "!challenge assign C-1 @sam:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-1 is dropped: reopen it first");
	CHECK_INT(count("SELECT COUNT(*) FROM challenge_assignees"), ==, 0);
	/* not even a moderator of both rooms changes it from the other one */
	CHECK_INT(cmdtest_run(&T, MOD, ROOM2, "!challenge status C-1 active"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "no challenge C-1 here");
	CHECK_INT(run(MOD, "!challenge status C-1 active"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "is now active (was dropped)");
	cmdtest_release(&T);
}

TEST(assign_whole_team)
{
	setup();
	run(MOD, "!team add @ali:test @sam:test --role data");
	run(MOD, "!team add @old:test --role policy --until today");
	run(MOD, "!challenge new \"Alpha\"");
	T.now += 86400; /* old's tour has ended */
	CHECK_INT(run(MOD, "!challenge assign C-1 --team"), ==, 3);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "to @ali:test and @sam:test.");
	CHECK_INT(count("SELECT COUNT(*) FROM challenge_assignees WHERE challenge_id = 1"), ==, 2);
	CHECK_INT(find_out("dm", ALI), >, 0);
	CHECK_INT(find_out("dm", SAM), >, 0);
	cmdtest_release(&T);
}

/* --team takes everyone whose tour has not ended, started or not, by time
 * added then user id (not the stand-up's "on duty today" roster). */
TEST(assign_team_order)
{
	setup();
	run(MOD, "!team add @zed:test @bea:test --role data");
	T.now += 60;
	run(MOD, "!team add @amy:test --role policy --from 2027-01-04");
	run(MOD, "!challenge new \"Alpha\"");
	CHECK_INT(run(MOD, "!challenge assign C-1 --team"), ==, 4);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "to @bea:test, @zed:test and @amy:test.");
	CHECK_INT(count("SELECT COUNT(*) FROM challenge_assignees WHERE challenge_id = 1"), ==, 3);
	cmdtest_release(&T);
}

TEST(unassign)
{
	setup();
	run(MOD, "!challenge new \"Alpha\"");
	run(MOD, "!challenge assign C-1 @ali:test @sam:test --lead @ali:test");
	CHECK_INT(run(MOD, "!challenge unassign C-1 @ali:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Unassigned @ali:test from C-1.");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "It has no lead now");
	CHECK_CONTAINS(T.out_content[0], "\"user_ids\":[]"); /* no one is pinged */
	CHECK_INT(count("SELECT COUNT(*) FROM challenge_assignees"), ==, 1);
	CHECK_INT(count("SELECT COUNT(*) FROM challenges WHERE lead IS NULL"), ==, 1);
	CHECK_INT(run(MOD, "!challenge unassign C-1 @ali:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "nothing to change: @ali:test is not assigned to C-1");
	CHECK_INT(run(USER, "!challenge unassign C-1 @sam:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "not allowed");
	CHECK_INT(run(MOD, "!challenge unassign C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "missing @user");
	CHECK_INT(count("SELECT COUNT(*) FROM challenge_assignees"), ==, 1);
	cmdtest_release(&T);
}

TEST(status_changes)
{
	setup();
	run(MOD, "!challenge new \"Alpha\" --due +10d");
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.due' AND state = "
	                "'pending'"),
	          ==, 2);
	CHECK_INT(run(MOD, "!challenge status C-1 active"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-1 Alpha is now active (was open).");
	CHECK_INT(run(MOD, "!challenge status C-1 ACTIVE"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-1 is already active");
	CHECK_INT(run(MOD, "!challenge status C-1 finished"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "unknown status 'finished': use open, active, paused,"
	                                     " done or dropped");
	CHECK_INT(run(MOD, "!challenge status C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "missing open|active|paused|done|dropped");
	CHECK_INT(run(USER, "!challenge status C-1 done"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "not allowed");
	CHECK_INT(count("SELECT COUNT(*) FROM challenges WHERE status = 'active'"), ==, 1);
	CHECK_INT(run(MOD, "!challenge status C-1 done --note \"Saved 12% & more, see C-1\""), ==,
	          1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "is now done (was active). Outcome: Saved 12% & more");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "reminders are off");
	CHECK_INT(count("SELECT COUNT(*) FROM challenges WHERE outcome = 'Saved 12% & more, see "
	                "C-1'"),
	          ==, 1);
	/* closing cancels the reminders; reopening schedules them again */
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.due' AND state = "
	                "'pending'"),
	          ==, 0);
	CHECK_INT(run(MOD, "!challenge status C-1 open"), ==, 1);
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.due' AND state = "
	                "'pending'"),
	          ==, 2);
	CHECK_INT(count("SELECT COUNT(*) FROM history WHERE kind = 'C' AND action = 'status'"), ==, 4);
	cmdtest_release(&T);
}

TEST(edit_and_history)
{
	setup();
	run(MOD, "!challenge new \"Alpha\" --due 2026-12-10");
	T.now += 60;
	CHECK_INT(run(MOD, "!challenge edit C-1 --title \"Alpha two\" --due 2026-12-20"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Updated C-1 Alpha two (2 changes). Due 2026-12-20"
	                                     " (in 32 days), was 2026-12-10; reminders moved.");
	/* the reminders moved to the new date */
	CHECK_INT(
	        count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.due' AND state = 'pending'"
	              " AND payload LIKE '%2026-12-20%'"),
	        ==, 2);
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.due' AND state = "
	                "'pending'"),
	          ==, 2);
	T.now += 60;
	CHECK_INT(
	        run(MOD,
	            "!challenge edit C-1 --desc \"Why & how\" --region Essex --sponsor @dir:test"),
	        ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "(3 changes)");
	T.now += 60;
	CHECK_INT(run(MOD, "!challenge edit C-1 --due none --region none"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "No due date now; reminders cancelled.");
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.due' AND state = "
	                "'pending'"),
	          ==, 0);
	/* refusals */
	CHECK_INT(run(MOD, "!challenge edit C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "nothing to edit: give --title, --due, --desc, --region"
	               " or --sponsor");
	CHECK_INT(run(MOD, "!challenge edit C-1 --title \"Alpha two\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "nothing changed");
	CHECK_INT(run(MOD, "!challenge edit C-1 --due next-week"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), tlbot_date_forms);
	CHECK_INT(run(MOD, "!challenge edit C-1 --title \"\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "the title cannot be empty");
	CHECK_INT(run(USER, "!challenge edit C-1 --title Mine"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "not allowed");
	CHECK_INT(count("SELECT COUNT(*) FROM challenges WHERE title = 'Alpha two'"), ==, 1);
	/* history: created + 2 + 3 + 2 edits, in order, with who and what */
	CHECK_INT(count("SELECT COUNT(*) FROM history WHERE kind = 'C' AND record_id = 1"), ==, 8);
	CHECK_INT(count("SELECT COUNT(*) FROM history WHERE kind = 'C' AND action = 'edited' AND"
	                " field = 'due' AND old = '2026-12-10' AND new = '2026-12-20'"),
	          ==, 1);
	CHECK_INT(run(USER, "!challenge history C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "History of C-1 Alpha two: 8 changes, page 1 of 1");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "2026-11-18 11:06 @mod:test created it");
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "2026-11-18 11:07 @mod:test changed title from Alpha to"
	               " Alpha two");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "changed due from 2026-12-10 to 2026-12-20");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "set sponsor to @dir:test");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "changed the description");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "cleared region (was Essex)");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "<ul><li>");
	CHECK_INT(run(USER, "!challenge show C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Description: Why & how");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "History:");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "cleared due (was 2026-12-20)");
	cmdtest_release(&T);
}

TEST(history_paging)
{
	int i;

	setup();
	run(MOD, "!challenge new \"Alpha\"");
	for (i = 0; i < 12; i++) {
		run(MOD, "!challenge assign C-1 @a:test");
		run(MOD, "!challenge unassign C-1 @a:test");
	}
	CHECK_INT(count("SELECT COUNT(*) FROM history WHERE kind = 'C'"), ==, 25);
	CHECK_INT(run(USER, "!challenge show C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "(latest 10 of 25; !challenge history C-1 for all)");
	CHECK_INT(run(USER, "!challenge history C-1 --page 2"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "page 2 of 2");
	CHECK_INT(run(USER, "!challenge history C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Next page: !challenge history C-1 --page 2");
	CHECK_INT(run(USER, "!challenge history C-1 --page 3"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "there is no page 3: the list has 2 pages");
	cmdtest_release(&T);
}

TEST(list_paging_and_filters)
{
	char body[128];
	int i;

	setup();
	CHECK_INT(run(USER, "!challenge list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "No open/active/paused challenges in this room");
	for (i = 1; i <= 23; i++) {
		snprintf(body, sizeof(body), "!challenge new \"Challenge number %d\" --due +%dd%s",
		         i, i, i % 2 ? " --region Essex" : "");
		run(MOD, body);
	}
	CHECK_INT(run(USER, "!challenge list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "23 in all, page 1 of 3");
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "• C-1 Challenge number 1 — open, due 2026-11-19 (tomorrow)");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-10 ");
	CHECK_NOT_CONTAINS(cmdtest_reply(&T, 0), "C-11 ");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Next page: !challenge list --page 2");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "<table><thead><tr><th>ID</th>");
	CHECK_NOT_CONTAINS(cmdtest_html(&T, 0), "• ");
	CHECK_INT(run(USER, "!challenge list --page 3"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "page 3 of 3");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-23 ");
	CHECK_NOT_CONTAINS(cmdtest_reply(&T, 0), "C-20 ");
	CHECK_NOT_CONTAINS(cmdtest_reply(&T, 0), "Next page");
	CHECK_INT(run(USER, "!challenge list --page 4"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "there is no page 4: the list has 3 pages");
	CHECK_INT(run(USER, "!challenge list --page zero"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "bad page 'zero': write a whole number");
	CHECK_INT(run(USER, "!challenge list --region essex"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "12 in all, page 1 of 2");
	CHECK_INT(run(MOD, "!challenge status C-2 done"), ==, 1);
	CHECK_INT(run(USER, "!challenge list --status done"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "(done): 1 in all");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-2 ");
	CHECK_INT(run(USER, "!challenge list --status open,done"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "23 in all");
	CHECK_INT(run(USER, "!challenge list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "22 in all");
	CHECK_INT(run(USER, "!challenge list --status finished"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "is not a status");
	/* mine: across rooms */
	CHECK_INT(run(USER, "!challenge list --mine"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "You lead or are assigned no");
	cmdtest_run(&T, MOD, ROOM2, "!challenge new \"Elsewhere\"");
	cmdtest_run(&T, MOD, ROOM2, "!challenge assign C-24 @user:test");
	run(MOD, "!challenge assign C-5 @user:test");
	CHECK_INT(run(USER, "!challenge list --mine"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "Your challenges across rooms (open/active/paused): 2 in all");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-24 Elsewhere");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "room !other:test");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "<th>Team</th>");
	/* every team's challenges: only in the programme room (digest_room) */
	CHECK_INT(run(USER, "!challenge list --all-rooms --page 3"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "works in the programme room only");
	free(T.cfg.digest_room);
	T.cfg.digest_room = strdup(ROOM);
	CHECK_INT(run(USER, "!challenge list --all-rooms --page 3"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "in all rooms (open/active/paused): 23 in all, page 3 of 3");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-24 Elsewhere");
	CHECK_INT(run(USER, "!challenge list --bogus"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "bogus");
	cmdtest_release(&T);
}

TEST(due_reminders_fire)
{
	setup();
	/* now: Wed 2026-11-18 11:06 UTC; due Mon 2026-11-30 */
	run(MOD, "!challenge new \"Alpha\" --due 2026-11-30");
	run(MOD, "!challenge assign C-1 @ali:test @sam:test --lead @sam:test");
	run(SAM, "!notify off");
	T.now = 1795770000 - 1; /* 2026-11-27 08:59:59 */
	CHECK_INT(cmdtest_jobs(&T), ==, 0);
	T.now = 1795770000; /* 09:00 three days before */
	CHECK_INT(cmdtest_jobs(&T), ==, 2);
	CHECK_STR(T.out_kind[0], "send");
	CHECK_STR(T.out_target[0], ROOM);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Reminder: C-1 Alpha is due in 3 days (2026-11-30)");
	CHECK_CONTAINS(T.out_content[0], "\"user_ids\":[\"@sam:test\",\"@ali:test\"]");
	CHECK_NOT_CONTAINS(T.out_content[0], "m.in_reply_to");
	/* ali gets a DM, sam turned them off */
	CHECK_INT(find_out("dm", ALI), ==, 1);
	CHECK_INT(find_out("dm", SAM), ==, -1);
	CHECK_CONTAINS(cmdtest_reply(&T, 1), "is due in 3 days");
	/* fired once */
	CHECK_INT(cmdtest_jobs(&T), ==, 0);
	/* on the day */
	T.now = 1795770000 + 3 * 86400;
	CHECK_INT(cmdtest_jobs(&T), >=, 2);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "is due today (2026-11-30)");
	cmdtest_release(&T);
}

TEST(due_reminder_skipped_when_done_or_missed)
{
	setup();
	run(MOD, "!challenge new \"Alpha\" --due 2026-11-30");
	run(MOD, "!challenge assign C-1 @ali:test");
	run(MOD, "!challenge status C-1 done");
	T.now = 1795770000 + 3 * 86400 + 60;
	CHECK_INT(cmdtest_jobs(&T), ==, 0);
	/* reopened, then the bot was down past the grace period: nothing late */
	T.now = 1795000000;
	run(MOD, "!challenge status C-1 active");
	T.now = 1795770000 + 86400; /* a day after the 3-day reminder */
	CHECK_INT(cmdtest_jobs(&T), ==, 0);
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.due' AND state = "
	                "'missed'"),
	          ==, 1);
	cmdtest_release(&T);
}

TEST(overdue_weekly)
{
	setup();
	run(MOD, "!challenge new \"Late one\" --due tomorrow");
	run(MOD, "!challenge new \"On time\" --due +30d");
	/* Monday 2026-11-23 09:00 UTC: one is overdue */
	T.now = 1795424400;
	CHECK_INT(cmdtest_jobs(&T), >=, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, T.nout - 1), "Overdue challenges (weekly check)");
	CHECK_CONTAINS(cmdtest_reply(&T, T.nout - 1),
	               "C-1 Late one — open, due 2026-11-19 (4 days overdue)");
	CHECK_NOT_CONTAINS(cmdtest_reply(&T, T.nout - 1), "On time");
	/* and again next Monday */
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'challenge.overdue' AND state = "
	                "'pending'"
	                " AND due = 1796029200"),
	          ==, 1);
	cmdtest_release(&T);
}

TEST(linked_experiments)
{
	setup();
	run(MOD, "!challenge new \"Alpha\"");
	if (count("SELECT COUNT(*) FROM sqlite_master WHERE name = 'experiments'") == 0)
		tlbot_store_exec(&T.st,
		                 "CREATE TABLE experiments (id INTEGER PRIMARY KEY, challenge_id"
		                 " INTEGER, room_id TEXT, title TEXT, owner TEXT, status TEXT)");
	/* the columns the experiments family's table has and show reads */
	CHECK_INT(tlbot_store_exec(&T.st,
	                           "INSERT INTO experiments(id, challenge_id, room_id, title,"
	                           " owner, status) VALUES (41, 1, '!team:test', 'Text reminders',"
	                           " '@mod:test', 'running')"),
	          ==, 0);
	CHECK_INT(run(USER, "!challenge show C-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Experiments: E-41 Text reminders (running)");
	cmdtest_release(&T);
}

TEST(notify_command)
{
	setup();
	CHECK_INT(run(USER, "!notify"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Direct messages from me are on for you");
	CHECK_INT(run(USER, "!notify off"), ==, 1);
	CHECK_INT(count1("SELECT dm_enabled FROM user_prefs WHERE user_id = ?", USER), ==, 0);
	CHECK_INT(run(USER, "!notify"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "are off for you");
	CHECK_INT(run(USER, "!notify maybe"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "unknown state 'maybe': use on or off");
	CHECK_INT(count1("SELECT dm_enabled FROM user_prefs WHERE user_id = ?", USER), ==, 0);
	CHECK_INT(run(USER, "!notify on"), ==, 1);
	CHECK_INT(count1("SELECT dm_enabled FROM user_prefs WHERE user_id = ?", USER), ==, 1);
	cmdtest_release(&T);
}

TEST(help_lists_families)
{
	setup();
	CHECK_INT(run(USER, "!help challenge"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "!challenge assign C-12 [@user...] [--lead @user] [--team]");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "!notify off");
	CHECK_INT(run(USER, "!help"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "!team");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "!notify");
	cmdtest_release(&T);
}

/* issue 13 items 16 and 19: the lead edits their own challenge; a filter
 * that matches nothing says so; the table names the lead and the people */
TEST(lead_edits_and_list_cells)
{
	setup();
	CHECK_INT(run(MOD, "!challenge new \"Alpha\" --lead " ALI), >=, 1);
	CHECK_INT(run(MOD, "!challenge new \"Beta\""), ==, 1);
	run(MOD, "!challenge assign C-1 " SAM);
	/* ali leads C-1 without moderator power: may edit it, not C-2 */
	CHECK_INT(run(ALI, "!challenge edit C-1 --title \"Alpha two\""), ==, 1);
	CHECK_NOT_CONTAINS(cmdtest_reply(&T, 0), "not allowed");
	CHECK_INT(count("SELECT COUNT(*) FROM challenges WHERE title = 'Alpha two'"), ==, 1);
	CHECK_INT(run(ALI, "!challenge edit C-2 --title Mine"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "not allowed");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "C-2's lead");
	CHECK_INT(count("SELECT COUNT(*) FROM challenges WHERE title = 'Mine'"), ==, 0);
	/* the table: names in Assigned, a dash for no lead */
	CHECK_INT(run(USER, "!challenge list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "assigned @ali:test, @sam:test");
	CHECK_NOT_CONTAINS(cmdtest_reply(&T, 0), "1 assigned");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "<td>—</td>");
	/* a filter that matches nothing: no "create one" */
	CHECK_INT(run(USER, "!challenge list --status done"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "No done challenges in this room");
	CHECK_NOT_CONTAINS(cmdtest_reply(&T, 0), "Create one");
	cmdtest_release(&T);
}

static const struct tap_test tests[] = {TEST_ENTRY(new_creates_and_schedules),
                                        TEST_ENTRY(new_refusals_store_nothing),
                                        TEST_ENTRY(html_escaping),
                                        TEST_ENTRY(show_ids_and_refusals),
                                        TEST_ENTRY(assign_mentions_and_dms),
                                        TEST_ENTRY(assign_refusals),
                                        TEST_ENTRY(assign_whole_team),
                                        TEST_ENTRY(assign_team_order),
                                        TEST_ENTRY(unassign),
                                        TEST_ENTRY(status_changes),
                                        TEST_ENTRY(edit_and_history),
                                        TEST_ENTRY(history_paging),
                                        TEST_ENTRY(list_paging_and_filters),
                                        TEST_ENTRY(due_reminders_fire),
                                        TEST_ENTRY(due_reminder_skipped_when_done_or_missed),
                                        TEST_ENTRY(overdue_weekly),
                                        TEST_ENTRY(linked_experiments),
                                        TEST_ENTRY(notify_command),
                                        TEST_ENTRY(help_lists_families),
                                        TEST_ENTRY(lead_edits_and_list_cells),
                                        TEST_END};

TAP_MAIN(tests)
