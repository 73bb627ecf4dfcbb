/* Time zones and schedule arithmetic across the Europe/London DST changes
 * (bot/util/tz.c, bot/util/sched_time.c). 2026: clocks go forward on Sunday 29 March
 * at 01:00 GMT, back on Sunday 25 October at 02:00 BST. */
#include "tap.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

/* Epoch of a UTC wall time. */
static time_t
utc(int y, int mo, int d, int h, int mi)
{
	return (time_t)(tlbot_date_days(y, mo, d) * 86400L + h * 3600L + mi * 60L);
}

TEST(valid_zones)
{
	CHECK_INT(tlbot_tz_valid("Europe/London"), ==, 1);
	CHECK_INT(tlbot_tz_valid("UTC"), ==, 1);
	CHECK_INT(tlbot_tz_valid("Europe/Paris"), ==, 1);
	CHECK_INT(tlbot_tz_valid("Mars/Olympus"), ==, 0);
	CHECK_INT(tlbot_tz_valid("../etc/passwd"), ==, 0);
	CHECK_INT(tlbot_tz_valid("/etc/localtime"), ==, 0);
	CHECK_INT(tlbot_tz_valid(""), ==, 0);
}

TEST(mktime_march_gap)
{
	time_t t;

	/* 09:30 on the Friday before: GMT */
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2026, 3, 27, 9, 30, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 3, 27, 9, 30));
	/* 09:30 on the Monday after: BST, one hour earlier in UTC */
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2026, 3, 30, 9, 30, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 3, 30, 8, 30));
	/* 01:30 does not exist on 29 March: moves forward by the gap to 02:30 BST */
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2026, 3, 29, 1, 30, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 3, 29, 1, 30));
	/* 00:59 still GMT, 02:00 BST */
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2026, 3, 29, 0, 59, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 3, 29, 0, 59));
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2026, 3, 29, 2, 0, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 3, 29, 1, 0));
}

TEST(mktime_october_repeat)
{
	time_t t;
	struct tm tm;

	/* 01:30 happens twice on 25 October: the first (BST) is 00:30 UTC */
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2026, 10, 25, 1, 30, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 10, 25, 0, 30));
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2026, 10, 23, 9, 30, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 10, 23, 8, 30));
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2026, 10, 26, 9, 30, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 10, 26, 9, 30));
	/* and back: local time of an instant */
	CHECK_INT(tlbot_tz_local("Europe/London", utc(2026, 10, 25, 1, 30), &tm), ==, 0);
	CHECK_INT(tm.tm_hour, ==, 1);
	CHECK_INT(tm.tm_isdst, ==, 0);
	CHECK_INT(tlbot_tz_local("Europe/London", utc(2026, 10, 25, 0, 30), &tm), ==, 0);
	CHECK_INT(tm.tm_hour, ==, 1);
	CHECK_INT(tm.tm_isdst, >, 0);
}

TEST(mktime_other_zones)
{
	time_t t;
	char d[11];

	CHECK_INT(tlbot_tz_mktime("Europe/Paris", 2026, 11, 18, 9, 30, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 11, 18, 8, 30));
	CHECK_INT(tlbot_tz_mktime("America/New_York", 2026, 3, 8, 2, 30, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 3, 8, 7, 30)); /* gap: 03:30 EDT */
	CHECK_INT(tlbot_tz_date("Pacific/Auckland", utc(2026, 11, 18, 12, 0), d), ==, 0);
	CHECK_STR(d, "2026-11-19");
	CHECK_INT(tlbot_tz_mktime("Nowhere/City", 2026, 1, 1, 0, 0, &t), ==, -1);
	/* a 30-minute gap, a gap at midnight, and a whole skipped day */
	CHECK_INT(tlbot_tz_mktime("Australia/Lord_Howe", 2026, 10, 4, 2, 15, &t), ==, 0);
	CHECK_INT(tlbot_tz_date("Australia/Lord_Howe", t, d), ==, 0);
	CHECK_INT(t, ==, utc(2026, 10, 3, 15, 45)); /* 02:45 +11:00 */
	CHECK_INT(tlbot_tz_mktime("America/Santiago", 2026, 9, 6, 0, 0, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 9, 6, 4, 0)); /* 01:00 -03:00 */
	/* Samoa skipped 30 December 2011: 09:00 that day moves a day forward */
	CHECK_INT(tlbot_tz_mktime("Pacific/Apia", 2011, 12, 30, 9, 0, &t), ==, 0);
	CHECK_INT(t, ==, utc(2011, 12, 30, 19, 0)); /* 2011-12-31 09:00 +14:00 */
	CHECK_INT(tlbot_tz_date("Pacific/Apia", t, d), ==, 0);
	CHECK_STR(d, "2011-12-31");
	/* out-of-range fields normalise (32 November is 2 December) */
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2026, 11, 32, 9, 30, &t), ==, 0);
	CHECK_INT(t, ==, utc(2026, 12, 2, 9, 30));
}

TEST(dates)
{
	char out[11];
	int y, m, d;

	CHECK_INT(tlbot_date_weekday("2026-11-18"), ==, 2); /* Wednesday */
	CHECK_INT(tlbot_date_weekday("1970-01-01"), ==, 3);
	CHECK_INT(tlbot_date_weekday("2026-12-27"), ==, 6);
	CHECK_INT(tlbot_date_add("2026-12-31", 1, out), ==, 0);
	CHECK_STR(out, "2027-01-01");
	CHECK_INT(tlbot_date_add("2028-03-01", -1, out), ==, 0);
	CHECK_STR(out, "2028-02-29");
	CHECK_INT(tlbot_date_split("2026-02-29", &y, &m, &d), ==, -1);
	CHECK_INT(tlbot_date_split("2026-13-01", &y, &m, &d), ==, -1);
	CHECK_INT(tlbot_date_split("26-1-1", &y, &m, &d), ==, -1);
}

TEST(days_and_hhmm)
{
	char buf[64];

	CHECK_INT(tlbot_days_parse("mon-fri"), ==, 0x1f);
	CHECK_INT(tlbot_days_parse("Mon,Wed,Fri"), ==, 0x15);
	CHECK_INT(tlbot_days_parse("tue-thu,sat"), ==, 0x2e);
	CHECK_INT(tlbot_days_parse("fri-mon"), ==, 0x71);
	CHECK_INT(tlbot_days_parse("daily"), ==, 0x7f);
	CHECK_INT(tlbot_days_parse("weekdays"), ==, 0x1f);
	CHECK_INT(tlbot_days_parse("monday,thursday"), ==, 0x09);
	CHECK_INT(tlbot_days_parse("mon-"), ==, 0);
	CHECK_INT(tlbot_days_parse("mon,,tue"), ==, 0);
	CHECK_INT(tlbot_days_parse("funday"), ==, 0);
	CHECK_INT(tlbot_days_parse("mon-tue-wed"), ==, 0);
	CHECK_INT(tlbot_days_parse(""), ==, 0);
	tlbot_days_format(0x1f, buf, sizeof(buf));
	CHECK_STR(buf, "mon-fri");
	tlbot_days_format(0x15, buf, sizeof(buf));
	CHECK_STR(buf, "mon,wed,fri");
	tlbot_days_format(0x7f, buf, sizeof(buf));
	CHECK_STR(buf, "daily");
	tlbot_days_format(0x63, buf, sizeof(buf));
	CHECK_STR(buf, "mon,tue,sat,sun");
	CHECK_INT(tlbot_hhmm_parse("09:30"), ==, 570);
	CHECK_INT(tlbot_hhmm_parse("9:30"), ==, 570);
	CHECK_INT(tlbot_hhmm_parse("23:59"), ==, 1439);
	CHECK_INT(tlbot_hhmm_parse("24:00"), ==, -1);
	CHECK_INT(tlbot_hhmm_parse("09:60"), ==, -1);
	CHECK_INT(tlbot_hhmm_parse("0930"), ==, -1);
	CHECK_INT(tlbot_hhmm_parse("09:3"), ==, -1);
}

static int
skip_dec25(const char *date, void *arg)
{
	return strcmp(date, "2026-12-25") == 0;
}

TEST(next_across_march)
{
	char date[11];
	time_t t;

	/* after Friday 27 March's 09:30 GMT: next is Monday 30 March 09:30 BST */
	CHECK_INT(tlbot_sched_next("Europe/London", 570, 0x1f, utc(2026, 3, 27, 9, 30), NULL, NULL,
	                           &t, date),
	          ==, 0);
	CHECK_STR(date, "2026-03-30");
	CHECK_INT(t, ==, utc(2026, 3, 30, 8, 30));
	/* daily 01:30: on the change day it moves to 02:30 BST (01:30 UTC) */
	CHECK_INT(tlbot_sched_next("Europe/London", 90, 0x7f, utc(2026, 3, 28, 12, 0), NULL, NULL,
	                           &t, date),
	          ==, 0);
	CHECK_STR(date, "2026-03-29");
	CHECK_INT(t, ==, utc(2026, 3, 29, 1, 30));
}

TEST(next_across_october)
{
	char date[11];
	time_t t;

	CHECK_INT(tlbot_sched_next("Europe/London", 570, 0x1f, utc(2026, 10, 23, 8, 30), NULL, NULL,
	                           &t, date),
	          ==, 0);
	CHECK_STR(date, "2026-10-26");
	CHECK_INT(t, ==, utc(2026, 10, 26, 9, 30));
	/* daily 01:30 on the repeat day: once, the first occurrence */
	CHECK_INT(tlbot_sched_next("Europe/London", 90, 0x7f, utc(2026, 10, 24, 12, 0), NULL, NULL,
	                           &t, date),
	          ==, 0);
	CHECK_STR(date, "2026-10-25");
	CHECK_INT(t, ==, utc(2026, 10, 25, 0, 30));
	/* after the first 01:30, the next is the 26th, not the repeat */
	CHECK_INT(tlbot_sched_next("Europe/London", 90, 0x7f, t, NULL, NULL, &t, date), ==, 0);
	CHECK_STR(date, "2026-10-26");
	CHECK_INT(t, ==, utc(2026, 10, 26, 1, 30));
}

TEST(next_skips_and_zones)
{
	char date[11];
	time_t t;

	CHECK_INT(tlbot_sched_next("Europe/London", 570, 0x1f, utc(2026, 12, 24, 10, 0), skip_dec25,
	                           NULL, &t, date),
	          ==, 0);
	CHECK_STR(date, "2026-12-28");
	/* same minute, later in the day: strictly after */
	CHECK_INT(
	        tlbot_sched_next("UTC", 570, 0x7f, utc(2026, 11, 18, 9, 30), NULL, NULL, &t, date),
	        ==, 0);
	CHECK_STR(date, "2026-11-19");
	CHECK_INT(
	        tlbot_sched_next("UTC", 570, 0x7f, utc(2026, 11, 18, 9, 29), NULL, NULL, &t, date),
	        ==, 0);
	CHECK_STR(date, "2026-11-18");
	/* Auckland is ahead: 09:30 on its 19th is 20:30 UTC on the 18th */
	CHECK_INT(tlbot_sched_next("Pacific/Auckland", 570, 0x7f, utc(2026, 11, 18, 12, 0), NULL,
	                           NULL, &t, date),
	          ==, 0);
	CHECK_STR(date, "2026-11-19");
	CHECK_INT(t, ==, utc(2026, 11, 18, 20, 30));
	CHECK_INT(tlbot_sched_next("Bad/Zone", 570, 0x7f, 0, NULL, NULL, &t, date), ==, -1);
	CHECK_INT(tlbot_sched_next("UTC", 570, 0, 0, NULL, NULL, &t, date), ==, -1);
}

static const struct tap_test tests[] = {
        TEST_ENTRY(valid_zones),
        TEST_ENTRY(mktime_march_gap),
        TEST_ENTRY(mktime_october_repeat),
        TEST_ENTRY(mktime_other_zones),
        TEST_ENTRY(dates),
        TEST_ENTRY(days_and_hhmm),
        TEST_ENTRY(next_across_march),
        TEST_ENTRY(next_across_october),
        TEST_ENTRY(next_skips_and_zones),
        TEST_END,
};

TAP_MAIN(tests)
