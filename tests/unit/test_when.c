/* The one date, duration and time-of-day parser (bot/util/when.c): a table
 * of what people type, read in a given IANA zone at a fixed instant. */
#include <string.h>

#include "tap.h"
#include "tlbot/when.h"

/* Tuesday 2026-12-01 12:00 UTC: 12:00 in London, already Wednesday 01:00 in
 * Auckland (NZDT, +13). */
#define NOW ((time_t)1796126400)

struct date_case {
	const char *zone, *in, *want; /* want NULL: refused */
};

static const struct date_case dates[] = {
	{ "Europe/London", "today", "2026-12-01" },
	{ "Pacific/Auckland", "today", "2026-12-02" },
	{ "Europe/London", "tomorrow", "2026-12-02" },
	{ "Europe/London", "Tomorrow", "2026-12-02" },
	{ "Europe/London", "friday", "2026-12-04" },
	{ "Europe/London", "Fri", "2026-12-04" },
	{ "Europe/London", "this friday", "2026-12-04" },
	{ "Europe/London", "next monday", "2026-12-07" },
	{ "Europe/London", "monday", "2026-12-07" },
	{ "Europe/London", "tuesday", NULL }, /* today or in a week? */
	{ "Europe/London", "next tuesday", "2026-12-08" },
	{ "Pacific/Auckland", "wednesday", NULL }, /* it is Wednesday there */
	{ "Pacific/Auckland", "friday", "2026-12-04" },
	{ "Europe/London", "31/01/2027", "2027-01-31" },
	{ "Europe/London", "31/1/2027", "2027-01-31" },
	{ "Europe/London", "31 Jan", "2027-01-31" },
	{ "Europe/London", "31 January", "2027-01-31" },
	{ "Europe/London", "31st Jan", "2027-01-31" },
	{ "Europe/London", "Jan 31", "2027-01-31" },
	{ "Europe/London", "31 Jan 2028", "2028-01-31" },
	{ "Europe/London", "1 Dec", "2026-12-01" },
	{ "Europe/London", "30 Nov", "2027-11-30" },
	{ "Europe/London", "2027-1-31", "2027-01-31" },
	{ "Europe/London", "2027-01-31", "2027-01-31" },
	{ "Europe/London", "2026-13-45", NULL },
	{ "Europe/London", "2026-02-30", NULL },
	{ "Europe/London", "2028-02-29", "2028-02-29" },
	{ "Europe/London", "2027-02-29", NULL },
	{ "Europe/London", "31/01/27", NULL }, /* which century? */
	{ "Europe/London", "32 Jan", NULL },
	{ "Europe/London", "+6m", "2027-06-01" },
	{ "Europe/London", "6 months", "2027-06-01" },
	{ "Europe/London", "+2w", "2026-12-15" },
	{ "Europe/London", "+3d", "2026-12-04" },
	{ "Europe/London", "3 days", "2026-12-04" },
	{ "Europe/London", "in 2 weeks", "2026-12-15" },
	{ "Europe/London", "1 week", "2026-12-08" },
	{ "Europe/London", "+1y", "2027-12-01" },
	{ "Europe/London", "6 m", NULL }, /* minutes or months? */
	{ "Europe/London", "+99999d", NULL },
	{ "Europe/London", "someday", NULL },
	{ "Europe/London", "yesterday", NULL },
	{ "Europe/London", "31", NULL },
	{ "Europe/London", "", NULL },
	{ NULL, NULL, NULL },
};

TEST(dates)
{
	const struct date_case *c;

	for (c = dates; c->in; c++) {
		char out[11] = "", err[300] = "";
		int rc = tlbot_when_date(c->in, NOW, c->zone, out, err, sizeof(err));

		if (c->want) {
			if (rc != 0 || strcmp(out, c->want) != 0)
				printf("#   '%s' in %s: got rc %d '%s' (%s), want %s\n", c->in, c->zone, rc,
				       out, err, c->want);
			CHECK(rc == 0 && strcmp(out, c->want) == 0);
		} else {
			if (rc == 0)
				printf("#   '%s' in %s: accepted as %s, want refused\n", c->in, c->zone, out);
			CHECK(rc == -1);
			/* a refusal shows the right form */
			CHECK(strstr(err, "2027-01-31") != NULL || strstr(err, "next") != NULL ||
			      strstr(err, "ten years") != NULL);
		}
	}
}

TEST(months_clamp_to_the_month_end)
{
	char out[11];

	/* Sunday 2027-01-31 12:00 UTC */
	CHECK_INT(tlbot_when_date("+1m", (time_t)1801396800, "Europe/London", out, NULL, 0), ==, 0);
	CHECK_STR(out, "2027-02-28");
}

struct dur_case {
	const char *in;
	long want; /* -1: refused */
};

static const struct dur_case durations[] = {
	{ "2h", 7200 },          { "2 hours", 7200 },     { "in 2 hours", 7200 },
	{ "90 minutes", 5400 },  { "90 mins", 5400 },     { "90m", 5400 },
	{ "3 days", 259200 },    { "1 week", 604800 },    { "1w", 604800 },
	{ "1h30m", 5400 },       { "1h 30m", 5400 },      { "an hour", 3600 },
	{ "half an hour", 1800 }, { "30 seconds", 30 },   { "+6m", 360 },
	{ "2", -1 },             { "6 months", -1 },      { "1 year", -1 },
	{ "soon", -1 },          { "2 parsecs", -1 },     { "0h", -1 },
	{ "99999 weeks", -1 },   { "", -1 },              { NULL, 0 },
};

TEST(durations)
{
	const struct dur_case *c;

	for (c = durations; c->in; c++) {
		long secs = -1;
		char err[300] = "";
		int rc = tlbot_when_duration(c->in, &secs, err, sizeof(err));

		if (c->want >= 0) {
			if (rc != 0 || secs != c->want)
				printf("#   '%s': got rc %d %ld (%s), want %ld\n", c->in, rc, secs, err,
				       c->want);
			CHECK(rc == 0 && secs == c->want);
		} else {
			if (rc == 0)
				printf("#   '%s': accepted as %ld s, want refused\n", c->in, secs);
			CHECK(rc == -1);
			CHECK(strstr(err, "2 hours") != NULL || strstr(err, "five years") != NULL);
		}
	}
}

struct time_case {
	const char *in;
	int want; /* -1: refused */
};

static const struct time_case times[] = {
	{ "17:00", 1020 }, { "9:30", 570 },   { "09:30", 570 }, { "5pm", 1020 },
	{ "5 pm", 1020 },  { "5PM", 1020 },   { "5:30pm", 1050 }, { "12am", 0 },
	{ "12pm", 720 },   { "noon", 720 },   { "midnight", 0 }, { "00:00", 0 },
	{ "23:59", 1439 }, { "25:00", -1 },   { "24:00", -1 },   { "5", -1 },
	{ "13pm", -1 },    { "17:5", -1 },    { "0pm", -1 },     { "later", -1 },
	{ "", -1 },        { NULL, 0 },
};

TEST(times_of_day)
{
	const struct time_case *c;

	for (c = times; c->in; c++) {
		int minute = -1;
		char err[300] = "";
		int rc = tlbot_when_time(c->in, &minute, err, sizeof(err));

		if (c->want >= 0) {
			if (rc != 0 || minute != c->want)
				printf("#   '%s': got rc %d %d (%s), want %d\n", c->in, rc, minute, err,
				       c->want);
			CHECK(rc == 0 && minute == c->want);
		} else {
			if (rc == 0)
				printf("#   '%s': accepted as %d, want refused\n", c->in, minute);
			CHECK(rc == -1);
			CHECK(strstr(err, "17:00") != NULL || strstr(err, "05:00") != NULL);
		}
	}
	/* a bare hour says which forms would be meant */
	{
		char err[300];
		int minute;

		CHECK_INT(tlbot_when_time("5", &minute, err, sizeof(err)), ==, -1);
		CHECK_STR(err, "'5' in the morning or the evening? write 05:00 or 5pm");
	}
}

static const struct tap_test tests[] = {
	TEST_ENTRY(dates),
	TEST_ENTRY(months_clamp_to_the_month_end),
	TEST_ENTRY(durations),
	TEST_ENTRY(times_of_day),
	TEST_END,
};

TAP_MAIN(tests)
