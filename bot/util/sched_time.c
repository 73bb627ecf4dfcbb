/* Schedule arithmetic: civil dates, weekday sets, HH:MM and the next
 * occurrence of a local wall time. See include/tlbot/sched_time.h. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tlbot/sched_time.h"
#include "tlbot/tz.h"

/* Howard Hinnant's days_from_civil / civil_from_days. */
long
tlbot_date_days(int y, int m, int d)
{
	long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void
tlbot_date_civil(long z, int *y, int *m, int *d)
{
	long era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int
month_days(int y, int m)
{
	static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return md[m - 1];
}

int
tlbot_date_split(const char *s, int *y, int *m, int *d)
{
	int i;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return -1;
	*y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	*m = (s[5] - '0') * 10 + (s[6] - '0');
	*d = (s[8] - '0') * 10 + (s[9] - '0');
	if (*y < 1970 || *m < 1 || *m > 12 || *d < 1 || *d > month_days(*y, *m))
		return -1;
	return 0;
}

int
tlbot_date_add(const char *date, long n, char out[11])
{
	int y, m, d;

	if (tlbot_date_split(date, &y, &m, &d) != 0)
		return -1;
	tlbot_date_civil(tlbot_date_days(y, m, d) + n, &y, &m, &d);
	if (y < 1970 || y > 9999)
		return -1;
	snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)m % 100u,
	         (unsigned)d % 100u);
	return 0;
}

int
tlbot_date_weekday(const char *date)
{
	int y, m, d;
	long days;

	if (tlbot_date_split(date, &y, &m, &d) != 0)
		return -1;
	days = tlbot_date_days(y, m, d);
	/* 1970-01-01 was a Thursday (index 3) */
	return (int)(((days % 7) + 7 + 3) % 7);
}

void
tlbot_date_long(const char *date, char *out, size_t outlen)
{
	static const char *const wd[] = { "Monday", "Tuesday", "Wednesday", "Thursday",
					  "Friday", "Saturday", "Sunday" };
	static const char *const mn[] = { "January", "February", "March",     "April",
					  "May",     "June",     "July",      "August",
					  "September", "October", "November", "December" };
	int y, m, d, w = tlbot_date_weekday(date);

	if (w < 0 || tlbot_date_split(date, &y, &m, &d) != 0) {
		snprintf(out, outlen, "%s", date ? date : "?");
		return;
	}
	snprintf(out, outlen, "%s %d %s %d", wd[w], d, mn[m - 1], y);
}

static const char *const day_names[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
static const char *const day_full[] = {"monday", "tuesday",  "wednesday", "thursday",
                                       "friday", "saturday", "sunday"};

/* Day index of the word s[0..n), or -1. */
static int
day_index(const char *s, size_t n)
{
	int i;

	for (i = 0; i < 7; i++) {
		if (n == 3 && strncasecmp(s, day_names[i], 3) == 0)
			return i;
		if (n == strlen(day_full[i]) && strncasecmp(s, day_full[i], n) == 0)
			return i;
		/* tues, thur, thurs, weds */
		if (n == 4 && (i == 1 || i == 3 || i == 2) && strncasecmp(s, day_full[i], 4) == 0)
			return i;
		if (n == 5 && i == 3 && strncasecmp(s, "thurs", 5) == 0)
			return i;
	}
	return -1;
}

unsigned
tlbot_days_parse(const char *s)
{
	unsigned mask = 0;
	const char *p = s;

	if (s == NULL || *s == '\0')
		return 0;
	if (strcasecmp(s, "daily") == 0 || strcasecmp(s, "every-day") == 0 ||
	    strcasecmp(s, "all") == 0)
		return TLBOT_DAYS_ALL;
	if (strcasecmp(s, "weekdays") == 0)
		return TLBOT_DAYS_WEEKDAYS;
	if (strcasecmp(s, "weekends") == 0)
		return 0x60u;
	while (*p) {
		const char *a = p, *b = NULL;
		size_t na, nb = 0;
		int ia, ib;

		while (*p && *p != ',' && *p != '-')
			p++;
		na = (size_t)(p - a);
		if (*p == '-') {
			b = ++p;
			while (*p && *p != ',' && *p != '-')
				p++;
			nb = (size_t)(p - b);
			if (*p == '-')
				return 0;
		}
		if (*p == ',') {
			p++;
			if (*p == '\0')
				return 0;
		}
		ia = day_index(a, na);
		if (ia < 0)
			return 0;
		if (b == NULL) {
			mask |= 1u << ia;
			continue;
		}
		ib = day_index(b, nb);
		if (ib < 0)
			return 0;
		for (;;) {
			mask |= 1u << ia;
			if (ia == ib)
				break;
			ia = (ia + 1) % 7;
		}
	}
	return mask;
}

void
tlbot_days_format(unsigned mask, char *out, size_t outlen)
{
	size_t len = 0;
	int i = 0;

	mask &= TLBOT_DAYS_ALL;
	if (outlen == 0)
		return;
	out[0] = '\0';
	if (mask == TLBOT_DAYS_ALL) {
		snprintf(out, outlen, "daily");
		return;
	}
	while (i < 7) {
		int j;

		if (!(mask & (1u << i))) {
			i++;
			continue;
		}
		for (j = i; j + 1 < 7 && (mask & (1u << (j + 1))); j++)
			;
		if (j - i >= 2)
			len += (size_t)snprintf(out + len, len < outlen ? outlen - len : 0,
			                        "%s%s-%s", len ? "," : "", day_names[i],
			                        day_names[j]);
		else
			for (; i <= j; i++)
				len += (size_t)snprintf(out + len, len < outlen ? outlen - len : 0,
				                        "%s%s", len ? "," : "", day_names[i]);
		i = j + 1;
		if (len >= outlen)
			return;
	}
}

int
tlbot_hhmm_parse(const char *s)
{
	int h = 0, m = 0, n = 0;

	if (s == NULL)
		return -1;
	while (isdigit((unsigned char)s[n]) && n < 2)
		h = h * 10 + (s[n++] - '0');
	if (n == 0 || s[n] != ':')
		return -1;
	s += n + 1;
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) || s[2] != '\0')
		return -1;
	m = (s[0] - '0') * 10 + (s[1] - '0');
	if (h > 23 || m > 59)
		return -1;
	return h * 60 + m;
}

int
tlbot_sched_at(const char *tz, const char *date, int minute_of_day, time_t *out)
{
	int y, m, d;

	if (minute_of_day < 0 || minute_of_day >= 1440 || tlbot_date_split(date, &y, &m, &d) != 0)
		return -1;
	return tlbot_tz_mktime(tz, y, m, d, minute_of_day / 60, minute_of_day % 60, out);
}

int
tlbot_sched_next(const char *tz, int minute_of_day, unsigned days, time_t after, tlbot_skip_fn skip,
                 void *arg, time_t *out, char date_out[11])
{
	char date[11], next[11];
	int i;

	if ((days & TLBOT_DAYS_ALL) == 0 || minute_of_day < 0 || minute_of_day >= 1440)
		return -1;
	/* start the day before: a wall time early today may still be ahead
	 * of `after` seen from a zone east of it only through that date */
	if (tlbot_tz_date(tz, after, date) != 0 || tlbot_date_add(date, -1, next) != 0)
		return -1;
	memcpy(date, next, sizeof(date));
	for (i = 0; i < 800; i++) {
		int wd = tlbot_date_weekday(date);
		time_t t;

		if (wd < 0)
			return -1;
		if (days & (1u << wd)) {
			if (tlbot_sched_at(tz, date, minute_of_day, &t) != 0)
				return -1;
			if (t > after) {
				int r = skip ? skip(date, arg) : 0;

				if (r < 0)
					return -1;
				if (r == 0) {
					*out = t;
					if (date_out)
						memcpy(date_out, date, 11);
					return 0;
				}
			}
		}
		if (tlbot_date_add(date, 1, next) != 0)
			return -1;
		memcpy(date, next, sizeof(date));
	}
	return 1;
}
