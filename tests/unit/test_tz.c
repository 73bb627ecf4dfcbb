/* Time zones and schedule arithmetic across the Europe/London DST changes
 * (bot/util/tz.c, bot/util/sched_time.c). 2026: clocks go forward on Sunday 29 March
 * at 01:00 GMT, back on Sunday 25 October at 02:00 BST. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

TEST(date_long)
{
	char out[64];

	tlbot_date_long("2026-11-18", out, sizeof(out));
	CHECK_STR(out, "Wednesday 18 November 2026");
	tlbot_date_long("2027-01-03", out, sizeof(out));
	CHECK_STR(out, "Sunday 3 January 2027");
	tlbot_date_long("2026-13-01", out, sizeof(out));
	CHECK_STR(out, "2026-13-01");
	tlbot_date_long(NULL, out, sizeof(out));
	CHECK_STR(out, "?");
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

/* The TZif reader against the C library as an oracle: every zone of
 * zone1970.tab, an instant every 3 days and 7 hours from 1970 to 2060
 * (past the last transition, where the footer's POSIX rule takes over).
 * The oracle swaps TZ, which is fine here: this test is one thread. */
TEST(agrees_with_libc)
{
	FILE *f = fopen("/usr/share/zoneinfo/zone1970.tab", "r");
	char line[512];
	int zones = 0, bad = 0;
	long checks = 0;

	if (f == NULL) {
		printf("# no /usr/share/zoneinfo/zone1970.tab: nothing to compare\n");
		CHECK(0);
		return;
	}
	unsetenv("TZDIR");
	while (fgets(line, sizeof(line), f)) {
		char *name, *tab;
		time_t t;

		if (line[0] == '#' || (tab = strchr(line, '\t')) == NULL ||
		    (tab = strchr(tab + 1, '\t')) == NULL)
			continue;
		name = tab + 1;
		name[strcspn(name, "\t\n")] = '\0';
		if (!tlbot_tz_valid(name)) {
			printf("# %s not readable\n", name);
			bad++;
			continue;
		}
		setenv("TZ", name, 1);
		tzset();
		zones++;
		for (t = 0; t < (time_t)2840140800LL; t += 3 * 86400 + 7 * 3600) {
			struct tm a, b;

			if (localtime_r(&t, &a) == NULL || tlbot_tz_local(name, t, &b) != 0) {
				bad++;
				continue;
			}
			checks++;
			if (a.tm_gmtoff != b.tm_gmtoff || a.tm_hour != b.tm_hour ||
			    a.tm_mday != b.tm_mday || a.tm_isdst != b.tm_isdst ||
			    strcmp(a.tm_zone, b.tm_zone) != 0) {
				if (bad++ < 10)
					printf("# %s at %lld: libc %ld %s, ours %ld %s\n", name,
					       (long long)t, a.tm_gmtoff, a.tm_zone, b.tm_gmtoff,
					       b.tm_zone);
			}
		}
	}
	fclose(f);
	unsetenv("TZ");
	tzset();
	printf("# %d zones, %ld instants compared\n", zones, checks);
	CHECK(zones > 300);
	CHECK_INT(bad, ==, 0);
}

/* Footer rules of the forms tzcode writes: M, J and zero-based days,
 * negative and > 24 h transition times, permanent DST, no DST. */
TEST(posix_footers)
{
	struct tm tm;
	time_t t;

	/* Europe/London beyond its table, e.g. 2090: BST from the last
	 * Sunday of March */
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2090, 7, 1, 12, 0, &t), ==, 0);
	CHECK_INT(tlbot_tz_local("Europe/London", t, &tm), ==, 0);
	CHECK_INT(tm.tm_gmtoff, ==, 3600);
	CHECK_STR(tm.tm_zone, "BST");
	CHECK_INT(tlbot_tz_mktime("Europe/London", 2090, 12, 1, 12, 0, &t), ==, 0);
	CHECK_INT(tlbot_tz_local("Europe/London", t, &tm), ==, 0);
	CHECK_INT(tm.tm_gmtoff, ==, 0);
	CHECK_STR(tm.tm_zone, "GMT");
	/* the southern hemisphere wraps the year */
	CHECK_INT(tlbot_tz_mktime("Australia/Sydney", 2090, 1, 15, 12, 0, &t), ==, 0);
	CHECK_INT(tlbot_tz_local("Australia/Sydney", t, &tm), ==, 0);
	CHECK_INT(tm.tm_gmtoff, ==, 11 * 3600);
	CHECK_INT(tlbot_tz_mktime("Australia/Sydney", 2090, 7, 15, 12, 0, &t), ==, 0);
	CHECK_INT(tlbot_tz_local("Australia/Sydney", t, &tm), ==, 0);
	CHECK_INT(tm.tm_gmtoff, ==, 10 * 3600);
	/* not zones */
	CHECK_INT(tlbot_tz_valid("Europe"), ==, 0);
	CHECK_INT(tlbot_tz_valid("zone.tab"), ==, 0);
	CHECK_INT(tlbot_tz_valid("iso3166.tab"), ==, 0);
}

/* Many threads converting in different zones at once, while another
 * thread reads the environment as libcurl does: with the old
 * setenv/tzset swap this raced (run under ThreadSanitizer to see it). */
static const char *const thread_zones[] = { "Europe/London", "America/New_York",
					    "Australia/Lord_Howe", "Asia/Kolkata" };
static const long thread_offsets[] = { 0, -5 * 3600, 39600, 19800 }; /* on 1 Dec 2026 */
static int thread_bad;

static void *
convert_loop(void *arg)
{
	int k = (int)(long)arg, i;

	for (i = 0; i < 20000; i++) {
		struct tm tm;
		time_t t = (time_t)1796083200 + i; /* 2026-12-01 */

		if (tlbot_tz_local(thread_zones[k], t, &tm) != 0 ||
		    tm.tm_gmtoff != thread_offsets[k])
			__atomic_add_fetch(&thread_bad, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *
read_env_loop(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 20000; i++)
		if (getenv("NO_PROXY_TLBOT_TEST") != NULL)
			__atomic_add_fetch(&thread_bad, 1, __ATOMIC_RELAXED);
	return NULL;
}

TEST(threads)
{
	pthread_t th[5];
	int i;

	thread_bad = 0;
	for (i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&th[i], NULL, convert_loop, (void *)(long)i), ==, 0);
	CHECK_INT(pthread_create(&th[4], NULL, read_env_loop, NULL), ==, 0);
	for (i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	CHECK_INT(thread_bad, ==, 0);
	CHECK(getenv("TZ") == NULL);
}

static const struct tap_test tests[] = {
        TEST_ENTRY(valid_zones),
        TEST_ENTRY(mktime_march_gap),
        TEST_ENTRY(mktime_october_repeat),
        TEST_ENTRY(mktime_other_zones),
        TEST_ENTRY(dates), TEST_ENTRY(date_long),
        TEST_ENTRY(days_and_hhmm),
        TEST_ENTRY(next_across_march),
        TEST_ENTRY(next_across_october),
        TEST_ENTRY(next_skips_and_zones),
        TEST_ENTRY(agrees_with_libc),
        TEST_ENTRY(posix_footers),
        TEST_ENTRY(threads),
        TEST_END,
};

TAP_MAIN(tests)
