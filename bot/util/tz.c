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

/* Does t show the wall time y-m-d h:m in the current zone? Lock held. */
static int
shows(time_t t, int year, int mon, int mday, int hour, int min)
{
	struct tm tm;

	return localtime_r(&t, &tm) && tm.tm_year == year - 1900 && tm.tm_mon == mon - 1 &&
	       tm.tm_mday == mday && tm.tm_hour == hour && tm.tm_min == min;
}

/* UTC offset (seconds east) in force at t in the current zone. Lock held. */
static long
offset_at(time_t t)
{
	struct tm tm;

	return localtime_r(&t, &tm) ? tm.tm_gmtoff : 0;
}

/* Without mktime, whose result in gaps depends on its own hidden state
 * (glibc keeps a guess of the last offset between calls): the candidate
 * instants are the wall time read with each offset in force within a day
 * of it; those that show the wall time are its occurrences (the first
 * wins); when none does, it is in a gap and is read with the offset from
 * before the gap, which moves it forward by the gap. */
int
tlbot_tz_mktime(const char *tz, int year, int mon, int mday, int hour, int min, time_t *out)
{
	struct tm w;
	time_t wall, best = (time_t)-1;
	long offs[3];
	int i, found = 0;

	if (!tlbot_tz_valid(tz))
		return -1;
	memset(&w, 0, sizeof(w));
	w.tm_year = year - 1900;
	w.tm_mon = mon - 1;
	w.tm_mday = mday;
	w.tm_hour = hour;
	w.tm_min = min;
	wall = timegm(&w); /* the wall time as if it were UTC */
	if (wall == (time_t)-1)
		return -1;
	/* out-of-range fields normalise, as they did with mktime */
	year = w.tm_year + 1900;
	mon = w.tm_mon + 1;
	mday = w.tm_mday;
	hour = w.tm_hour;
	min = w.tm_min;
	pthread_mutex_lock(&tz_lock);
	use_zone(tz);
	offs[0] = offset_at(wall - 86400);
	offs[1] = offset_at(wall);
	offs[2] = offset_at(wall + 86400);
	for (i = 0; i < 3; i++) {
		time_t t = wall - offs[i];

		if (shows(t, year, mon, mday, hour, min) && (!found || t < best)) {
			best = t;
			found = 1;
		}
	}
	if (!found)
		best = wall - offs[0];
	pthread_mutex_unlock(&tz_lock);
	*out = best;
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
