/* GOV.UK bank holidays (bot/util/holidays.c) against the shipped copy. */
#include <stdio.h>
#include <unistd.h>

#include "tap.h"
#include "tlbot/holidays.h"

TEST(shipped_copy_found)
{
	const char *p = tlbot_holidays_shipped_path();

	CHECK(p != NULL);
	CHECK_CONTAINS(p, "bank-holidays.json");
	CHECK(tlbot_holidays_source(NULL) != NULL);
}

TEST(england_and_wales)
{
	char title[80];

	CHECK_INT(
	        tlbot_holidays_check(NULL, "england-and-wales", "2026-12-25", title, sizeof(title)),
	        ==, 1);
	CHECK_STR(title, "Christmas Day");
	/* Boxing Day falls on a Saturday: the substitute is Monday 28th */
	CHECK_INT(
	        tlbot_holidays_check(NULL, "england-and-wales", "2026-12-28", title, sizeof(title)),
	        ==, 1);
	CHECK_STR(title, "Boxing Day");
	CHECK_INT(tlbot_holidays_check(NULL, "england-and-wales", "2026-12-26", NULL, 0), ==, 0);
	CHECK_INT(tlbot_holidays_check(NULL, "england-and-wales", "2026-11-18", NULL, 0), ==, 0);
	CHECK_INT(tlbot_holidays_check(NULL, "england-and-wales", "2026-01-02", NULL, 0), ==, 0);
}

TEST(scotland_and_ni)
{
	char title[80], date[11];

	CHECK_INT(tlbot_holidays_check(NULL, "scotland", "2026-01-02", title, sizeof(title)), ==,
	          1);
	CHECK_STR(title, "2nd January");
	/* 2 January 2027 is a Saturday: substitute Monday 4th */
	CHECK_INT(tlbot_holidays_check(NULL, "scotland", "2027-01-04", NULL, 0), ==, 1);
	CHECK_INT(tlbot_holidays_check(NULL, "england-and-wales", "2027-01-04", NULL, 0), ==, 0);
	CHECK_INT(tlbot_holidays_check(NULL, "scotland", "2026-11-30", title, sizeof(title)), ==,
	          1);
	CHECK_CONTAINS(title, "Andrew");
	CHECK_INT(
	        tlbot_holidays_check(NULL, "northern-ireland", "2026-03-17", title, sizeof(title)),
	        ==, 1);
	CHECK_CONTAINS(title, "Patrick");
	CHECK_INT(tlbot_holidays_next(NULL, "england-and-wales", "2026-11-18", date, title,
	                              sizeof(title)),
	          ==, 0);
	CHECK_STR(date, "2026-12-25");
	CHECK_INT(tlbot_holidays_next(NULL, "england-and-wales", "2099-01-01", date, NULL, 0), ==,
	          1);
}

TEST(bad_arguments)
{
	CHECK_INT(tlbot_holidays_division_valid("scotland"), ==, 1);
	CHECK_INT(tlbot_holidays_division_valid("wales"), ==, 0);
	CHECK_INT(tlbot_holidays_division_valid(NULL), ==, 0);
	CHECK_INT(tlbot_holidays_check(NULL, "wales", "2026-12-25", NULL, 0), ==, -1);
	CHECK_INT(tlbot_holidays_check(NULL, "scotland", "25/12/2026", NULL, 0), ==, -1);
}

TEST(validate_and_install)
{
	char path[128], tmpl[] = "/tmp/tlbot-hol-XXXXXX", title[80];
	const char *bad =
	        "{\"england-and-wales\":{\"division\":\"england-and-wales\",\"events\":[]}}";
	const char *one =
	        "{\"england-and-wales\":{\"events\":[{\"title\":\"Test "
	        "Day\",\"date\":\"2026-11-18\"}]},"
	        "\"scotland\":{\"events\":[{\"title\":\"S\",\"date\":\"2026-11-19\"}]},"
	        "\"northern-ireland\":{\"events\":[{\"title\":\"N\",\"date\":\"2026-11-20\"}]}}";
	FILE *f;

	CHECK_OR_RETURN(mkdtemp(tmpl) != NULL);
	snprintf(path, sizeof(path), "%s/bank-holidays.json", tmpl);
	CHECK_INT(tlbot_holidays_validate(bad, strlen(bad)), ==, -1);
	CHECK_INT(tlbot_holidays_validate("not json", 8), ==, -1);
	CHECK_INT(tlbot_holidays_install(path, bad, strlen(bad)), ==, -1);
	CHECK_INT(access(path, F_OK), ==, -1); /* nothing written */
	CHECK_INT(tlbot_holidays_install(path, one, strlen(one)), ==, 0);
	/* the cache wins over the shipped copy once set */
	tlbot_holidays_set_cache_path(path);
	CHECK_INT(
	        tlbot_holidays_check(NULL, "england-and-wales", "2026-11-18", title, sizeof(title)),
	        ==, 1);
	CHECK_STR(title, "Test Day");
	CHECK_INT(tlbot_holidays_check(NULL, "england-and-wales", "2026-12-25", NULL, 0), ==, 0);
	/* a broken cache falls back to the shipped copy */
	f = fopen(path, "w");
	if (f) {
		fputs("{ broken", f);
		fclose(f);
	}
	CHECK_INT(tlbot_holidays_check(NULL, "england-and-wales", "2026-12-25", NULL, 0), ==, 1);
	/* an explicit override wins */
	CHECK_INT(tlbot_holidays_install(path, one, strlen(one)), ==, 0);
	tlbot_holidays_set_cache_path(NULL);
	CHECK_INT(tlbot_holidays_check(path, "scotland", "2026-11-19", NULL, 0), ==, 1);
	CHECK_INT(tlbot_holidays_check(NULL, "scotland", "2026-11-19", NULL, 0), ==, 0);
	unlink(path);
	rmdir(tmpl);
}

static const struct tap_test tests[] = {
        TEST_ENTRY(shipped_copy_found),   TEST_ENTRY(england_and_wales),
        TEST_ENTRY(scotland_and_ni),      TEST_ENTRY(bad_arguments),
        TEST_ENTRY(validate_and_install), TEST_END,
};

TAP_MAIN(tests)
