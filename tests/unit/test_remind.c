/* !remind and !me tz: each time form, the requester's zone, list, cancel,
 * delivery by DM and in the room, a reminder missed past the grace period
 * (commands/remind.c, commands/me.c). */
#include "cmdtest.h"
#include "tap.h"
#include "tlbot/sched_time.h"

#define ROOM  "!team:test"
#define ALICE "@alice:test"
#define BOB   "@bob:test"
#define MOD   "@mod:test"

static time_t
utc(int y, int mo, int d, int h, int mi)
{
	return (time_t)(tlbot_date_days(y, mo, d) * 86400L + h * 3600L + mi * 60L);
}

static long long
due_of(struct cmdtest *t, const char *id)
{
	return cmdtest_count(t, "SELECT due FROM reminders WHERE id = ?", id);
}

TEST(time_forms)
{
	struct cmdtest t;

	cmdtest_init(&t);
	t.now = utc(2026, 11, 18, 10, 0); /* Wednesday, GMT */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me in 2h \"call the council\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "R-1: I will remind you on Wednesday 18 November 2026 "
	                                     "at 12:00 Europe/London by direct message");
	CHECK_INT(due_of(&t, "1"), ==, utc(2026, 11, 18, 12, 0));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me in 90 minutes stretch"), ==, 1);
	CHECK_INT(due_of(&t, "2"), ==, utc(2026, 11, 18, 11, 30));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind room at 16:00 \"retro in 5\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0),
	               "R-3: I will remind this room on Wednesday 18 November "
	               "2026 at 16:00");
	CHECK_INT(due_of(&t, "3"), ==, utc(2026, 11, 18, 16, 0));
	/* at a time already past today: tomorrow */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me at 09:00 standup notes"), ==, 1);
	CHECK_INT(due_of(&t, "4"), ==, utc(2026, 11, 19, 9, 0));
	CHECK_INT(
	        cmdtest_run(&t, ALICE, ROOM, "!remind " BOB " tomorrow 09:00 \"send the survey\""),
	        ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0),
	               "I will remind @bob:test on Thursday 19 November 2026");
	CHECK_INT(due_of(&t, "5"), ==, utc(2026, 11, 19, 9, 0));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me on 2026-12-01 at 10:30 \"review E-3\""),
	          ==, 1);
	CHECK_INT(due_of(&t, "6"), ==, utc(2026, 12, 1, 10, 30));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me on 2026-12-01 \"default time\""), ==, 1);
	CHECK_INT(due_of(&t, "7"), ==, utc(2026, 12, 1, 9, 0));
	/* summer time: 2027-04-01 10:30 BST is 09:30 UTC */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me on 2027-04-01 at 10:30 spring"), ==, 1);
	CHECK_INT(due_of(&t, "8"), ==, utc(2027, 4, 1, 9, 30));

	/* refused, storing nothing */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me in soon \"x\""), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "bad duration");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me at 25:00 x"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "bad time");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me on 2020-01-01 x"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "in the past");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me next week x"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "'next' is not one of");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me in 2h"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "what should I say");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind somebody in 2h x"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "remind whom");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM reminders", NULL), ==, 8);
	CHECK_INT(
	        cmdtest_count(&t, "SELECT COUNT(*) FROM jobs WHERE kind = 'remind.deliver'", NULL),
	        ==, 8);
	cmdtest_release(&t);
}

/* issue 13 item 2: what people write, read by the one parser (when.h) */
TEST(time_forms_as_people_write_them)
{
	struct cmdtest t;

	cmdtest_init(&t);
	t.now = utc(2026, 11, 18, 10, 0); /* Wednesday, GMT */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me in 2 hours call the council"), ==, 1);
	CHECK_INT(due_of(&t, "1"), ==, utc(2026, 11, 18, 12, 0));
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM reminders WHERE id = 1 AND text = ?",
	                        "call the council"), ==, 1);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me at 5pm tea"), ==, 1);
	CHECK_INT(due_of(&t, "2"), ==, utc(2026, 11, 18, 17, 0));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me friday at 10am retro"), ==, 1);
	CHECK_INT(due_of(&t, "3"), ==, utc(2026, 11, 20, 10, 0));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me on 31 Jan at 10:00 budget"), ==, 1);
	CHECK_INT(due_of(&t, "4"), ==, utc(2027, 1, 31, 10, 0));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me next monday 9:30 plan"), ==, 1);
	CHECK_INT(due_of(&t, "5"), ==, utc(2026, 11, 23, 9, 30));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me in half an hour stretch"), ==, 1);
	CHECK_INT(due_of(&t, "6"), ==, utc(2026, 11, 18, 10, 30));
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM reminders WHERE id = 6 AND text = ?",
	                        "stretch"), ==, 1);
	/* a bare number is not read as minutes */
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me in 2 call"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "'2' needs a unit");
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM reminders", NULL), ==, 6);
	cmdtest_release(&t);
}

TEST(requester_zone)
{
	struct cmdtest t;

	cmdtest_init(&t);
	t.now = utc(2026, 11, 18, 10, 0);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!me tz Europe/Paris"), ==, 1);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me at 16:00 x"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "16:00 Europe/Paris");
	CHECK_INT(due_of(&t, "1"), ==, utc(2026, 11, 18, 15, 0));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!me tz default"), ==, 1);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me at 16:00 x"), ==, 1);
	CHECK_INT(due_of(&t, "2"), ==, utc(2026, 11, 18, 16, 0));
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!me colour blue"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "unknown setting");
	cmdtest_release(&t);
}

TEST(list_cancel_deliver)
{
	struct cmdtest t;

	cmdtest_init(&t);
	cmdtest_power(&t, ROOM, MOD, 50);
	t.now = utc(2026, 11, 18, 10, 0);
	cmdtest_run(&t, ALICE, ROOM, "!remind me in 1h \"first\"");
	cmdtest_run(&t, ALICE, ROOM, "!remind " BOB " in 2h \"second C-4\"");
	cmdtest_run(&t, ALICE, ROOM, "!remind room in 3h \"third\"");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "R-1");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "R-2");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "in the room: third");
	CHECK_INT(cmdtest_run(&t, BOB, "!other:test", "!remind list"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "R-2");
	CHECK_NOT_CONTAINS(cmdtest_reply(&t, 0), "R-1");
	/* cancel: someone else's is refused, one's own works, twice is refused */
	CHECK_INT(cmdtest_run(&t, BOB, ROOM, "!remind cancel R-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "not allowed");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind cancel R-1"), ==, 1);
	CHECK_STR(cmdtest_reply(&t, 0), "Cancelled R-1.");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind cancel R-1"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "no pending reminder R-1");
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind cancel banana"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "which reminder");
	/* delivery */
	t.now = utc(2026, 11, 18, 11, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 0); /* R-1 was cancelled */
	t.now = utc(2026, 11, 18, 12, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_STR(t.out_kind[0], "dm");
	CHECK_STR(t.out_target[0], BOB);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Reminder from @alice:test: second C-4 (R-2)");
	t.now = utc(2026, 11, 18, 13, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_STR(t.out_kind[0], "send");
	CHECK_STR(t.out_target[0], ROOM);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "third");
	CHECK_INT(cmdtest_jobs(&t), ==, 0);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM reminders WHERE delivered = 1", NULL), ==,
	          2);
	cmdtest_release(&t);
}

TEST(dm_off_delivers_in_room)
{
	struct cmdtest t;

	cmdtest_init(&t);
	t.now = utc(2026, 11, 18, 10, 0);
	cmdtest_run(&t, ALICE, ROOM, "!remind " BOB " in 1h \"hello\"");
	sqlite3_exec(t.st.db, "INSERT INTO user_prefs(user_id, dm_enabled) VALUES ('" BOB "', 0)",
	             NULL, NULL, NULL);
	t.now = utc(2026, 11, 18, 11, 0);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_STR(t.out_kind[0], "send");
	CHECK_CONTAINS(t.out_content[0], "\"user_ids\":[\"@bob:test\"]");
	cmdtest_release(&t);
}

TEST(missed_past_grace)
{
	struct cmdtest t;

	cmdtest_init(&t);
	t.now = utc(2026, 11, 18, 10, 0);
	cmdtest_run(&t, ALICE, ROOM, "!remind me in 1h \"late\"");
	cmdtest_run(&t, ALICE, ROOM, "!remind me in 2h \"on time\"");
	/* down until 13:30: R-1 is 2.5 h late (missed), R-2 1.5 h (fires) */
	t.now = utc(2026, 11, 18, 13, 30);
	CHECK_INT(cmdtest_jobs(&t), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "on time");
	CHECK_INT(cmdtest_count(&t, "SELECT missed FROM reminders WHERE id = 1", NULL), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT delivered FROM reminders WHERE id = 2", NULL), ==, 1);
	CHECK_INT(cmdtest_count(&t, "SELECT COUNT(*) FROM jobs WHERE state = 'missed'", NULL), ==,
	          1);
	cmdtest_release(&t);
}

/* tlbot_user_tz asks the family that keeps the person's zone (me.c's
 * user_tz hook): their own when set, else the default given, else UTC. */
TEST(user_tz_through_the_hook)
{
	struct cmdtest t;
	struct tlbot_ctx ctx;
	char tz[64];

	cmdtest_init(&t);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!me tz Europe/Paris"), ==, 1);
	tlbot_ctx_init(&ctx, &t.cfg, &t.st, "@tlbot:test");
	CHECK_INT(tlbot_user_tz(&ctx, ALICE, "Europe/London", tz, sizeof(tz)), ==, 1);
	CHECK_STR(tz, "Europe/Paris");
	CHECK_INT(tlbot_user_tz(&ctx, BOB, "Europe/London", tz, sizeof(tz)), ==, 0);
	CHECK_STR(tz, "Europe/London");
	CHECK_INT(tlbot_user_tz(&ctx, BOB, NULL, tz, sizeof(tz)), ==, 0);
	CHECK_STR(tz, "UTC");
	CHECK_INT(tlbot_user_tz(&ctx, NULL, "Asia/Tokyo", tz, sizeof(tz)), ==, 0);
	CHECK_STR(tz, "Asia/Tokyo");
	/* a zone that is no longer installed reads as the default */
	sqlite3_exec(t.st.db, "UPDATE me_prefs SET tz = 'Atlantis/Capital'", NULL, NULL, NULL);
	CHECK_INT(tlbot_user_tz(&ctx, ALICE, "Europe/London", tz, sizeof(tz)), ==, 0);
	CHECK_STR(tz, "Europe/London");
	tlbot_ctx_release(&ctx);
	cmdtest_release(&t);
}

/* !me shows what the other families hold for the person through their
 * about_user hooks: the stand-up's away periods, the reminders they set. */
TEST(me_shows_other_families)
{
	struct cmdtest t;

	cmdtest_init(&t);
	t.now = utc(2026, 11, 18, 10, 0);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!me"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Time zone: Europe/London (the default)");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Pending reminders you set: 0");
	CHECK(strstr(cmdtest_reply(&t, 0), "Away from the stand-up") == NULL);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!remind me in 2 hours call"), ==, 1);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!standup away me --until 2026-11-20"), ==, 1);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!me"), ==, 1);
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Pending reminders you set: 1 (!remind list)");
	CHECK_CONTAINS(cmdtest_reply(&t, 0), "Away from the stand-up in " ROOM " until 2026-11-20");
	CHECK_CONTAINS(cmdtest_html(&t, 0), "<code>!me tz Europe/Paris</code>");
	t.now = utc(2026, 11, 21, 10, 0);
	CHECK_INT(cmdtest_run(&t, ALICE, ROOM, "!me"), ==, 1);
	CHECK(strstr(cmdtest_reply(&t, 0), "Away from the stand-up") == NULL);
	cmdtest_release(&t);
}

static const struct tap_test tests[] = {
        TEST_ENTRY(time_forms),          TEST_ENTRY(time_forms_as_people_write_them),
        TEST_ENTRY(requester_zone),
        TEST_ENTRY(list_cancel_deliver), TEST_ENTRY(dm_off_delivers_in_room),
        TEST_ENTRY(missed_past_grace),   TEST_ENTRY(user_tz_through_the_hook),
        TEST_ENTRY(me_shows_other_families), TEST_END,
};

TAP_MAIN(tests)
