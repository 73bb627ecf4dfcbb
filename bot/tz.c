/* Time zone conversions. The C library keeps one current zone (TZ), so
 * every conversion swaps it under a lock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlbot/tz.h"

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

int
tlbot_tz_valid(const char *tz)
{
	char path[512];

	if (tz == NULL || *tz == '\0' || strlen(tz) > 128 || strstr(tz, "..") || tz[0] == '/')
		return 0;
	if (strcmp(tz, "UTC") == 0)
		return 1;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	return access(path, R_OK) == 0;
}

/* Call with tz_lock held. */
static void
use_zone(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

int
tlbot_tz_local(const char *tz, time_t t, struct tm *out)
{
	int rc;

	if (!tlbot_tz_valid(tz))
		return -1;
	pthread_mutex_lock(&tz_lock);
	use_zone(tz);
	rc = localtime_r(&t, out) ? 0 : -1;
	pthread_mutex_unlock(&tz_lock);
	return rc;
}

int
tlbot_tz_mktime(const char *tz, int year, int mon, int mday, int hour, int min, time_t *out)
{
	struct tm a, b;
	time_t ta, tb;

	if (!tlbot_tz_valid(tz))
		return -1;
	memset(&a, 0, sizeof(a));
	a.tm_year = year - 1900;
	a.tm_mon = mon - 1;
	a.tm_mday = mday;
	a.tm_hour = hour;
	a.tm_min = min;
	b = a;
	a.tm_isdst = 1; /* summer reading: first occurrence of an ambiguous time */
	b.tm_isdst = 0;
	pthread_mutex_lock(&tz_lock);
	use_zone(tz);
	ta = mktime(&a);
	tb = mktime(&b);
	pthread_mutex_unlock(&tz_lock);
	if (ta == (time_t)-1 && tb == (time_t)-1)
		return -1;
	/* Both readings land on the asked wall time when it is ambiguous: take
	 * the earlier instant. In a gap neither lands on it: mktime moved it
	 * forward; take the later normalised instant (the time after the gap). */
	if (a.tm_hour == hour && a.tm_min == min && b.tm_hour == hour && b.tm_min == min)
		*out = ta < tb ? ta : tb;
	else if (a.tm_hour == hour && a.tm_min == min && a.tm_isdst > 0)
		*out = ta;
	else if (b.tm_hour == hour && b.tm_min == min && b.tm_isdst == 0)
		*out = tb;
	else
		*out = ta > tb ? ta : tb;
	return 0;
}

int
tlbot_tz_date(const char *tz, time_t t, char out[11])
{
	struct tm tm;

	if (tlbot_tz_local(tz, t, &tm) != 0)
		return -1;
	if (tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
		return -1;
	snprintf(out, 11, "%04u-%02u-%02u", (unsigned)(tm.tm_year + 1900) % 10000u,
		 (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u);
	return 0;
}
