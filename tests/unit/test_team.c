/* Unit tests for commands/team.c through the real router: roster changes
 * and their refusals (which store nothing), the team's name, region and
 * lead, paging, and the end-of-tour flag to the lead. */
#include "cmdtest.h"
#include "tap.h"

#define ROOM "!team:test"
#define MOD  "@mod:test"
#define USER "@user:test"
#define ALI  "@ali:test"
#define SAM  "@sam:test"
#define LEAD "@lead:test"

/* t->now is 2026-11-18 11:06:40 UTC (Europe/London is UTC in winter) */
#define NOV19_0900 1795078800
#define NOV26_0900 1795683600

static struct cmdtest T;

static void
setup(void)
{
	cmdtest_init(&T);
	cmdtest_power(&T, ROOM, MOD, 50);
}

static long long
count(const char *sql)
{
	return cmdtest_count(&T, sql, NULL);
}

static int
run(const char *sender, const char *body)
{
	return cmdtest_run(&T, sender, ROOM, body);
}

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

static long long
pending_tours(void)
{
	return count("SELECT COUNT(*) FROM jobs WHERE kind = 'team.tour' AND state = 'pending'");
}

TEST(add_members)
{
	setup();
	CHECK_INT(run(MOD, "!team add @ali:test --role Data --from 2026-09-01 --until 2026-12-10"),
	          ==, 1);
	CHECK_STR(cmdtest_reply(&T, 0),
	          "Added @ali:test to the team as data, from 2026-09-01, until 2026-12-10.");
	CHECK_CONTAINS(T.out_content[0], "\"user_ids\":[]");
	CHECK_INT(count("SELECT COUNT(*) FROM team_members WHERE room_id = '!team:test' AND"
	                " user_id = '@ali:test' AND role = 'data' AND from_date = '2026-09-01' AND"
	                " until_date = '2026-12-10' AND added_by = '@mod:test'"),
	          ==, 1);
	/* flagged 14 days before the end, at 09:00 */
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'team.tour' AND state = 'pending'"
	                " AND due = 1795683600"),
	          ==, 1);
	/* several at once, free-text role, no dates */
	CHECK_INT(run(MOD, "!team add @sam:test @jo:test --role \"service design\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Added @sam:test to the team as service design.");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Added @jo:test to the team as service design.");
	CHECK_INT(count("SELECT COUNT(*) FROM team_members"), ==, 3);
	CHECK_INT(pending_tours(), ==, 1);
	/* again: an update that keeps the dates not given */
	CHECK_INT(run(MOD, "!team add @ali:test --role policy"), ==, 1);
	CHECK_STR(cmdtest_reply(&T, 0), "Updated @ali:test: policy.");
	CHECK_INT(count("SELECT COUNT(*) FROM team_members WHERE user_id = '@ali:test' AND"
	                " role = 'policy' AND until_date = '2026-12-10'"),
	          ==, 1);
	CHECK_INT(pending_tours(), ==, 1);
	/* a new end date moves the flag; none clears it */
	CHECK_INT(run(MOD, "!team add @ali:test --role policy --until 2027-01-31"), ==, 1);
	CHECK_INT(pending_tours(), ==, 1);
	CHECK_INT(count("SELECT COUNT(*) FROM jobs WHERE kind = 'team.tour' AND state = 'pending'"
	                " AND payload LIKE '%2027-01-31%'"),
	          ==, 1);
	CHECK_INT(run(MOD, "!team add @ali:test --role policy --until none"), ==, 1);
	CHECK_INT(pending_tours(), ==, 0);
	/* Element pill: display name in the body, a matrix.to link in the HTML
	 * and the id in m.mentions */
	CHECK_INT(cmdtest_event(&T, MOD, ROOM, "!team add Kim Lee --role frontline",
	                        "{\"m.mentions\":{\"user_ids\":[\"@kim:test\"]},"
	                        "\"format\":\"org.matrix.custom.html\",\"formatted_body\":"
	                        "\"!team add <a href=\\\"https://matrix.to/#/@kim:test\\\">Kim Lee</a> --role frontline\"}",
	                        NULL, 0),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Added @kim:test to the team as frontline.");
	cmdtest_release(&T);
}

TEST(add_refusals_store_nothing)
{
	setup();
	CHECK_INT(run(USER, "!team add @ali:test --role data"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "not allowed: !team add needs a power level of at least 50");
	CHECK_INT(run(MOD, "!team add @ali:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "missing --role: give data, digital, policy, frontline");
	CHECK_INT(run(MOD, "!team add --role data"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "missing user");
	CHECK_INT(run(MOD, "!team add ali --role data"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "'ali' is not a user");
	CHECK_INT(run(MOD, "!team add @ali:test --role data --until soon"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "bad date 'soon' for --until");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), tlbot_date_forms);
	CHECK_INT(run(MOD, "!team add @ali:test --role data --until 2026-01-01"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "is in the past");
	CHECK_INT(run(MOD, "!team add @ali:test --role data --from 2027-03-01 --until 2027-01-01"),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "--until 2027-01-01 is before --from 2027-03-01");
	CHECK_INT(run(MOD, "!team add @ali:test --role data --from"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "usage: !team add");
	CHECK_INT(run(MOD, "!team add @ali:test --role \"a very long role name that goes on and on "
	                   "and on\""),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "the role is too long");
	CHECK_INT(count("SELECT COUNT(*) FROM team_members"), ==, 0);
	CHECK_INT(count("SELECT COUNT(*) FROM jobs"), ==, 0);
	CHECK_INT(count("SELECT COUNT(*) FROM counters WHERE name = 'team.tour'"), ==, 0);
	cmdtest_release(&T);
}

TEST(remove_members)
{
	setup();
	run(MOD, "!team add @ali:test @sam:test --role data --until +30d");
	CHECK_INT(pending_tours(), ==, 2);
	CHECK_INT(run(USER, "!team remove @ali:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "not allowed");
	CHECK_INT(run(MOD, "!team remove @ali:test"), ==, 1);
	CHECK_STR(cmdtest_reply(&T, 0), "Removed @ali:test from the team.");
	CHECK_INT(count("SELECT COUNT(*) FROM team_members"), ==, 1);
	CHECK_INT(pending_tours(), ==, 1);
	CHECK_INT(run(MOD, "!team remove @ali:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "@ali:test is not on this team: !team list shows who is");
	CHECK_INT(run(MOD, "!team remove"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "missing @user");
	CHECK_INT(run(MOD, "!team remove @sam:test @nobody:test"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Removed @sam:test from the team. Not on the team:"
	                                     " @nobody:test.");
	CHECK_INT(count("SELECT COUNT(*) FROM team_members"), ==, 0);
	CHECK_INT(pending_tours(), ==, 0);
	cmdtest_release(&T);
}

TEST(list_and_set)
{
	char body[128];
	int i;

	setup();
	CHECK_INT(run(USER, "!team list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "This room's team · lead not set");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Nobody is on the team yet");
	CHECK_INT(run(MOD, "!team set --name \"Sheffield <TA> & co\" --region Sheffield --lead "
	                   "@lead:test"),
	          ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Team updated: name Sheffield <TA> & co; region"
	                                     " Sheffield; lead @lead:test;");
	CHECK_CONTAINS(T.out_content[0], "\"user_ids\":[\"@lead:test\"]");
	CHECK_NOT_CONTAINS(cmdtest_html(&T, 0), "<TA>");
	run(MOD, "!team add @ali:test --role data --until +10d");
	run(MOD, "!team add @sam:test --role policy --until 2027-06-30");
	CHECK_INT(run(USER, "!team list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "Sheffield <TA> & co · region Sheffield · lead @lead:test · 2 members");
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "• @ali:test — data, until 2026-11-28 (⚠ ends in 10 days)");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "• @sam:test — policy, until 2027-06-30");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "<table><thead><tr><th>Member</th>");
	CHECK_CONTAINS(cmdtest_html(&T, 0), "&lt;TA&gt; &amp; co");
	/* the team's region is the default for new challenges */
	CHECK_INT(run(MOD, "!challenge new \"Local one\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "region Sheffield");
	/* refusals */
	CHECK_INT(run(MOD, "!team set"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "nothing to set: give --name, --region or --lead");
	CHECK_INT(run(USER, "!team set --name Mine"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "not allowed");
	CHECK_INT(run(MOD, "!team set --lead nobody"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "--lead: cannot tell who 'nobody' is");
	CHECK_INT(count("SELECT COUNT(*) FROM teams WHERE name = 'Sheffield <TA> & co' AND"
	                " lead = '@lead:test'"),
	          ==, 1);
	CHECK_INT(run(MOD, "!team set --lead none --region none"), ==, 1);
	CHECK_INT(count("SELECT COUNT(*) FROM teams WHERE lead IS NULL AND region IS NULL"), ==, 1);
	/* paging */
	for (i = 0; i < 23; i++) {
		snprintf(body, sizeof(body), "!team add @m%02d:test --role data", i);
		run(MOD, body);
	}
	CHECK_INT(run(USER, "!team list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "25 members, page 1 of 2");
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "Next page: !team list --page 2");
	CHECK_INT(run(USER, "!team list --page 2"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "page 2 of 2");
	CHECK_INT(run(USER, "!team list --page 3"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "there is no page 3");
	cmdtest_release(&T);
}

TEST(tour_flag_to_lead_by_dm)
{
	setup();
	run(MOD, "!team set --name Essex --lead @lead:test");
	run(MOD, "!team add @ali:test --role data --until 2026-12-10");
	T.now = NOV26_0900 - 1;
	CHECK_INT(cmdtest_jobs(&T), ==, 0);
	T.now = NOV26_0900;
	CHECK_INT(cmdtest_jobs(&T), ==, 1);
	CHECK_STR(T.out_kind[0], "dm");
	CHECK_STR(T.out_target[0], LEAD);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "Heads-up: the tour of duty of @ali:test (data) with Essex"
	               " ends on 2026-12-10, in 14 days.");
	CHECK_INT(cmdtest_jobs(&T), ==, 0);
	cmdtest_release(&T);
}

TEST(tour_flag_in_room_when_dms_off_or_no_lead)
{
	setup();
	run(LEAD, "!notify off");
	run(MOD, "!team set --lead @lead:test");
	run(MOD, "!team add @ali:test --role data --until +10d");
	/* already within 14 days: flagged at the next 09:00 */
	T.now = NOV19_0900;
	CHECK_INT(cmdtest_jobs(&T), ==, 1);
	CHECK_STR(T.out_kind[0], "send");
	CHECK_STR(T.out_target[0], ROOM);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "ends on 2026-11-28, in 9 days");
	CHECK_CONTAINS(T.out_content[0], "\"user_ids\":[\"@lead:test\"]");
	cmdtest_release(&T);

	/* no lead set: the lead of the active challenge */
	setup();
	run(MOD, "!challenge new \"Alpha\" --lead @sam:test");
	run(MOD, "!challenge status C-1 active");
	run(MOD, "!team add @ali:test --role data --until +10d");
	CHECK_INT(run(USER, "!team list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&T, 0), "lead @sam:test (lead of the active challenge)");
	T.now = NOV19_0900;
	CHECK_INT(cmdtest_jobs(&T), ==, 1);
	CHECK_STR(T.out_kind[0], "dm");
	CHECK_STR(T.out_target[0], SAM);
	cmdtest_release(&T);

	/* no lead at all: the room is told, with how to set one */
	setup();
	run(MOD, "!team add @ali:test --role data --until +10d");
	T.now = NOV19_0900;
	CHECK_INT(cmdtest_jobs(&T), ==, 1);
	CHECK_STR(T.out_target[0], ROOM);
	CHECK_CONTAINS(cmdtest_reply(&T, 0),
	               "no lead to tell: set one with !team set --lead @name");
	cmdtest_release(&T);
}

TEST(tour_flag_dropped_when_removed_or_changed)
{
	setup();
	run(MOD, "!team set --lead @lead:test");
	run(MOD, "!team add @ali:test @sam:test --role data --until 2026-12-10");
	run(MOD, "!team remove @ali:test");
	/* sam's date changes; the stale row cannot fire either */
	run(MOD, "!team add @sam:test --role data --until 2027-05-01");
	T.now = NOV26_0900;
	CHECK_INT(cmdtest_jobs(&T), ==, 0);
	CHECK_INT(find_out("dm", LEAD), ==, -1);
	cmdtest_release(&T);
}

static const struct tap_test tests[] = {TEST_ENTRY(add_members),
                                        TEST_ENTRY(add_refusals_store_nothing),
                                        TEST_ENTRY(remove_members),
                                        TEST_ENTRY(list_and_set),
                                        TEST_ENTRY(tour_flag_to_lead_by_dm),
                                        TEST_ENTRY(tour_flag_in_room_when_dms_off_or_no_lead),
                                        TEST_ENTRY(tour_flag_dropped_when_removed_or_changed),
                                        TEST_END};

TAP_MAIN(tests)
