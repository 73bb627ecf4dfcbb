/* Dates, durations and times of day as people type them. See
 * include/tlbot/when.h for the accepted forms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tlbot/buf.h"
#include "tlbot/sched_time.h"
#include "tlbot/tz.h"
#include "tlbot/when.h"

#define MAX_WORDS 6
#define WORD_MAX 24
#define MAX_DAYS_AHEAD (10L * 366) /* relative dates up to ten years */
#define MAX_DURATION (5L * 366 * 86400)

const char tlbot_when_date_hint[] =
	"accepted dates: YYYY-MM-DD (2027-01-31), 31/01/2027, 31 Jan, friday, next monday,"
	" today, tomorrow, +3d, +2w, +6m (months), 6 months";
const char tlbot_when_duration_hint[] =
	"write a duration such as 2h, 2 hours, 90 minutes, 3 days or 1 week";
const char tlbot_when_time_hint[] = "write a time such as 17:00, 9:30 or 5pm";

static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun",
				      "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const month_full[] = { "january", "february", "march",     "april",
					  "may",     "june",     "july",      "august",
					  "september", "october", "november", "december" };
static const char *const wdays[] = { "monday", "tuesday",  "wednesday", "thursday",
				     "friday", "saturday", "sunday" };

struct words {
	size_t n;
	char w[MAX_WORDS][WORD_MAX];
};

/* Split s on spaces into lower-cased words. -1 when there are too many
 * or a word is too long. */
static int
split(const char *s, struct words *out)
{
	out->n = 0;
	while (*s) {
		size_t len = 0;

		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		if (out->n == MAX_WORDS)
			return -1;
		while (*s && *s != ' ' && *s != '\t') {
			char c = *s++;

			if (len + 1 >= WORD_MAX)
				return -1;
			out->w[out->n][len++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		out->w[out->n][len] = '\0';
		out->n++;
	}
	return 0;
}

/* A whole string of decimal digits (at most 9) as a number, or -1. */
static long
digits(const char *s, size_t len)
{
	long n = 0;
	size_t i;

	if (len == 0 || len > 9)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (s[i] - '0');
	}
	return n;
}

static long
number(const char *s)
{
	return digits(s, strlen(s));
}

static int
days_in_month(int y, int m)
{
	static const int d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return d[m - 1];
}

static int
valid_date(long y, long m, long d)
{
	return y >= 1970 && y <= 2999 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month((int)y, (int)m);
}

/* Month from "jan", "january", "sept"; 1..12 or 0. */
static int
month_of(const char *w)
{
	size_t i, n = strlen(w);

	if (n >= 1 && w[n - 1] == '.')
		n--;
	for (i = 0; i < 12; i++) {
		if (n == 3 && strncmp(w, months[i], 3) == 0)
			return (int)i + 1;
		if (n == strlen(month_full[i]) && strncmp(w, month_full[i], n) == 0)
			return (int)i + 1;
	}
	if (n == 4 && strncmp(w, "sept", 4) == 0)
		return 9;
	return 0;
}

/* Weekday from "mon", "monday", "tues", "thurs"; 0 = Monday .. 6, or -1. */
static int
weekday_of(const char *w)
{
	size_t i, n = strlen(w);

	for (i = 0; i < 7; i++) {
		if (strcmp(w, wdays[i]) == 0 || (n == 3 && strncmp(w, wdays[i], 3) == 0))
			return (int)i;
	}
	if (strcmp(w, "tues") == 0)
		return 1;
	if (strcmp(w, "weds") == 0)
		return 2;
	if (strcmp(w, "thur") == 0 || strcmp(w, "thurs") == 0)
		return 3;
	return -1;
}

/* Day of month from "31", "31st", "2nd", "3rd", "4th"; or -1. */
static long
mday_of(const char *w)
{
	size_t n = strlen(w);

	if (n > 2 && (strcmp(w + n - 2, "st") == 0 || strcmp(w + n - 2, "nd") == 0 ||
		      strcmp(w + n - 2, "rd") == 0 || strcmp(w + n - 2, "th") == 0))
		n -= 2;
	if (n == 0 || n > 2)
		return -1;
	return digits(w, n);
}

/* The unit of a relative date or a duration word, or 0: 'd' days, 'w'
 * weeks, 'M' months, 'y' years, 'h' hours, 'm' minutes, 's' seconds. */
static char
unit_word(const char *w)
{
	static const struct {
		const char *word;
		char unit;
	} units[] = {
		{ "d", 'd' },      { "day", 'd' },     { "days", 'd' },     { "w", 'w' },
		{ "wk", 'w' },     { "wks", 'w' },     { "week", 'w' },     { "weeks", 'w' },
		{ "month", 'M' },  { "months", 'M' },  { "mo", 'M' },       { "mon", 'M' },
		{ "y", 'y' },      { "yr", 'y' },      { "yrs", 'y' },      { "year", 'y' },
		{ "years", 'y' },  { "h", 'h' },       { "hr", 'h' },       { "hrs", 'h' },
		{ "hour", 'h' },   { "hours", 'h' },   { "m", 'm' },        { "min", 'm' },
		{ "mins", 'm' },   { "minute", 'm' },  { "minutes", 'm' },  { "s", 's' },
		{ "sec", 's' },    { "secs", 's' },    { "second", 's' },   { "seconds", 's' },
	};
	size_t i;

	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(w, units[i].word) == 0)
			return units[i].unit;
	return 0;
}

/* Split "12w" / "90mins" into number and unit word. -1 if not that shape. */
static int
num_unit(const char *w, long *n, const char **unit)
{
	size_t i = 0;

	while (w[i] >= '0' && w[i] <= '9')
		i++;
	if (i == 0 || w[i] == '\0')
		return -1;
	*n = digits(w, i);
	*unit = w + i;
	return *n < 0 ? -1 : 0;
}

/* Today's date in tz as days since the epoch. */
static int
today(time_t now, const char *tz, long *days)
{
	struct tm tm;

	if (tz == NULL || tlbot_tz_local(tz, now, &tm) != 0)
		return -1;
	*days = tlbot_date_days(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
	return 0;
}

static void
write_date(long days, char out[11])
{
	int y, m, d;

	tlbot_date_civil(days, &y, &m, &d);
	snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
}

/* Add n of unit to the date days. Months clamp to the month's end
 * (31 Jan + 1 month = 28 Feb). -1 when out of range. */
static int
add_unit(long days, long n, char unit, long *out)
{
	int y, m, d;
	long months_total;

	if (n < 0 || n > MAX_DAYS_AHEAD)
		return -1;
	switch (unit) {
	case 'd':
		*out = days + n;
		break;
	case 'w':
		*out = days + 7 * n;
		break;
	case 'M':
	case 'y':
		tlbot_date_civil(days, &y, &m, &d);
		months_total = (long)(m - 1) + (unit == 'y' ? 12 * n : n);
		y += (int)(months_total / 12);
		m = (int)(months_total % 12) + 1;
		if (y > 2999)
			return -1;
		if (d > days_in_month(y, m))
			d = days_in_month(y, m);
		*out = tlbot_date_days(y, m, d);
		break;
	default:
		return -1;
	}
	return *out - days <= MAX_DAYS_AHEAD ? 0 : -1;
}

/* y-m-d or d/m/y in one word. 1 parsed, 0 not this form, -1 invalid. */
static int
numeric_date(const char *w, long *y, long *m, long *d)
{
	const char *a = w, *b, *c;
	char sep;

	b = strpbrk(a, "-/.");
	if (b == NULL || b == a)
		return 0;
	sep = *b;
	c = strchr(b + 1, sep);
	if (c == NULL) {
		/* "31/01": a day and month without a year */
		long x = digits(a, (size_t)(b - a)), z = number(b + 1);

		if (sep != '/' || x < 0 || z < 0)
			return 0;
		*y = 0;
		*d = x;
		*m = z;
		return 1;
	}
	if (strchr(c + 1, sep) != NULL)
		return 0;
	if (sep == '-' && b - a == 4) {
		*y = digits(a, 4);
		*m = digits(b + 1, (size_t)(c - b - 1));
		*d = number(c + 1);
	} else if (sep == '/' || sep == '.') {
		*d = digits(a, (size_t)(b - a));
		*m = digits(b + 1, (size_t)(c - b - 1));
		*y = number(c + 1);
		if (*y >= 0 && *y < 100 && strlen(c + 1) != 4)
			return -1; /* 31/01/27: which century? */
	} else {
		return 0;
	}
	if (*y < 0 || *m < 0 || *d < 0)
		return -1;
	return 1;
}

/* Complete a day and month without a year: the next such date from today. */
static int
next_dm(long now_days, long m, long d, long *out)
{
	int y, mm, dd;

	tlbot_date_civil(now_days, &y, &mm, &dd);
	if (m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	if (valid_date(y, m, d) && tlbot_date_days(y, (int)m, (int)d) >= now_days) {
		*out = tlbot_date_days(y, (int)m, (int)d);
		return 0;
	}
	if (valid_date(y + 1, m, d)) {
		*out = tlbot_date_days(y + 1, (int)m, (int)d);
		return 0;
	}
	if (valid_date(y + 4 - (y % 4), m, d)) { /* 29 Feb */
		*out = tlbot_date_days(y + 4 - (y % 4), (int)m, (int)d);
		return 0;
	}
	return -1;
}

/* What a reader of one form of date found. */
enum date_r {
	DATE_NO = 0, /* not this form: try the next */
	DATE_OK,     /* *res is the day */
	DATE_BAD,    /* not a date: the hint */
	DATE_FAR,    /* past ten years */
	DATE_ERR,    /* refused, err written */
};

/* today, tomorrow; weekdays: friday, this friday, next friday. */
static enum date_r
named_day(const struct words *w, const char *s, long now_days, long *res, char *err,
	  size_t errlen)
{
	int next, this, wd, tw;
	long ahead;

	if (w->n == 1 && strcmp(w->w[0], "today") == 0) {
		*res = now_days;
		return DATE_OK;
	}
	if (w->n == 1 && strcmp(w->w[0], "tomorrow") == 0) {
		*res = now_days + 1;
		return DATE_OK;
	}
	if (w->n > 2)
		return DATE_NO;
	next = w->n == 2 && strcmp(w->w[0], "next") == 0;
	this = w->n == 2 && strcmp(w->w[0], "this") == 0;
	if (!(w->n == 1 || next || this) || (wd = weekday_of(w->w[w->n - 1])) < 0)
		return DATE_NO;
	tw = (int)((now_days + 3) % 7); /* 1970-01-01 was a Thursday */
	ahead = (wd - tw + 7) % 7;
	if (ahead == 0 && !next) {
		tlbot_errf(err, errlen, "'%s' is today: write today, or next %s for the one in a week", s,
			wdays[wd]);
		return DATE_ERR;
	}
	*res = now_days + (ahead == 0 ? 7 : ahead);
	return DATE_OK;
}

/* n units u (d, w, M, y) from today. */
static enum date_r
ahead_by(long now_days, long n, char u, long *res)
{
	return add_unit(now_days, n, u, res) != 0 ? DATE_FAR : DATE_OK;
}

/* Relative: +3d, +6m, 3 days, in 2 weeks, 6 months, in 3d. */
static enum date_r
relative_date(const struct words *w, long now_days, long *res)
{
	size_t i = strcmp(w->w[0], "in") == 0 ? 1 : 0;
	const char *unit;
	long n;
	char u;

	if (w->n - i == 1 && w->w[i][0] == '+' && num_unit(w->w[i] + 1, &n, &unit) == 0) {
		u = strcmp(unit, "m") == 0 ? 'M' : unit_word(unit);
		if (u == 'd' || u == 'w' || u == 'M' || u == 'y')
			return ahead_by(now_days, n, u, res);
		return DATE_BAD;
	}
	if (w->n - i == 2 && (n = number(w->w[i])) >= 0) {
		u = unit_word(w->w[i + 1]);
		if (strcmp(w->w[i + 1], "m") == 0 || strcmp(w->w[i + 1], "mon") == 0)
			return DATE_BAD; /* minutes or months? */
		if (u == 'd' || u == 'w' || u == 'M' || u == 'y')
			return ahead_by(now_days, n, u, res);
	}
	if (w->n - i == 1 && i == 1 && num_unit(w->w[1], &n, &unit) == 0) {
		u = unit_word(unit);
		if (u == 'd' || u == 'w' || u == 'y')
			return ahead_by(now_days, n, u, res);
	}
	return i == 1 ? DATE_BAD : DATE_NO;
}

/* One word: 2027-01-31, 2027-1-31, 31/01/2027, 31/01. */
static enum date_r
numeric_word_date(const char *word, long now_days, long *res)
{
	long y = 0, m = 0, d = 0;
	int r = numeric_date(word, &y, &m, &d);

	if (r <= 0)
		return DATE_BAD;
	if (y == 0)
		return next_dm(now_days, m, d, res) == 0 ? DATE_OK : DATE_BAD;
	if (!valid_date(y, m, d))
		return DATE_BAD;
	*res = tlbot_date_days((int)y, (int)m, (int)d);
	return DATE_OK;
}

/* Words: 31 Jan, 31st January 2027, Jan 31, Jan 31 2027. */
static enum date_r
words_date(const struct words *w, long now_days, long *res)
{
	long y, m, d;
	size_t yl;

	if (w->n != 2 && w->n != 3)
		return DATE_BAD;
	if ((d = mday_of(w->w[0])) >= 0 && (m = month_of(w->w[1])) > 0) {
	} else if ((m = month_of(w->w[0])) > 0 && (d = mday_of(w->w[1])) >= 0) {
	} else {
		return DATE_BAD;
	}
	if (w->n == 2)
		return next_dm(now_days, m, d, res) == 0 ? DATE_OK : DATE_BAD;
	yl = strlen(w->w[2]);
	if (yl == 0 || w->w[2][yl - 1] == ',')
		return DATE_BAD;
	y = number(w->w[2]);
	if (yl != 4 || !valid_date(y, m, d))
		return DATE_BAD;
	*res = tlbot_date_days((int)y, (int)m, (int)d);
	return DATE_OK;
}

int
tlbot_when_date(const char *s, time_t now, const char *tz, char out[11], char *err,
		size_t errlen)
{
	struct words w;
	long now_days, res = 0;
	enum date_r r;

	if (s == NULL || split(s, &w) != 0 || w.n == 0) {
		tlbot_errf(err, errlen, "%s", tlbot_when_date_hint);
		return -1;
	}
	if (today(now, tz, &now_days) != 0) {
		tlbot_errf(err, errlen, "cannot read the date in time zone %s", tz ? tz : "(none)");
		return -1;
	}
	r = named_day(&w, s, now_days, &res, err, errlen);
	if (r == DATE_NO)
		r = relative_date(&w, now_days, &res);
	if (r == DATE_NO)
		r = w.n == 1 ? numeric_word_date(w.w[0], now_days, &res)
			     : words_date(&w, now_days, &res);
	switch (r) {
	case DATE_OK:
		write_date(res, out);
		return 0;
	case DATE_ERR:
		return -1;
	case DATE_FAR:
		tlbot_errf(err, errlen, "too far ahead: dates go up to ten years from today");
		return -1;
	default:
		tlbot_errf(err, errlen, "%s", tlbot_when_date_hint);
		return -1;
	}
}

/* Seconds in one unit, or 0. */
static long
unit_secs(char u)
{
	switch (u) {
	case 'w': return 7 * 86400L;
	case 'd': return 86400L;
	case 'h': return 3600L;
	case 'm': return 60L;
	case 's': return 1L;
	default: return 0;
	}
}

/* What reading part of a duration found. */
enum dur_r { DUR_OK = 0, DUR_BAD, DUR_MONTHS, DUR_FAR };

/* One word of number-unit runs ("2h", "1h30m", "90mins"), added to *total. */
static enum dur_r
compact_duration(const char *p, long *total)
{
	while (*p) {
		const char *unit;
		char ub[WORD_MAX], u;
		size_t k = 0;
		long n;

		if (num_unit(p, &n, &unit) != 0)
			return DUR_BAD;
		while (unit[k] && !(unit[k] >= '0' && unit[k] <= '9') && k + 1 < sizeof(ub)) {
			ub[k] = unit[k];
			k++;
		}
		ub[k] = '\0';
		u = unit_word(ub);
		if (u == 'M' || u == 'y')
			return DUR_MONTHS;
		if (unit_secs(u) == 0 || n > MAX_DURATION)
			return DUR_BAD;
		*total += n * unit_secs(u);
		if (*total > MAX_DURATION)
			return DUR_FAR;
		p = unit + k;
	}
	return DUR_OK;
}

int
tlbot_when_duration(const char *s, long *secs, char *err, size_t errlen)
{
	struct words w;
	long total = 0;
	size_t i = 0;

	if (s == NULL || split(s, &w) != 0 || w.n == 0)
		goto bad;
	if (strcmp(w.w[0], "in") == 0 || strcmp(w.w[0], "for") == 0)
		i = 1;
	if (w.n - i == 3 && strcmp(w.w[i], "half") == 0 && strcmp(w.w[i + 1], "an") == 0 &&
	    strcmp(w.w[i + 2], "hour") == 0) {
		*secs = 1800;
		return 0;
	}
	if (i >= w.n)
		goto bad;
	while (i < w.n) {
		const char *p = w.w[i];
		long n;
		char u;

		if (*p == '+' && i == 0)
			p++;
		if (strcmp(p, "a") == 0 || strcmp(p, "an") == 0) {
			if (i + 1 >= w.n || (u = unit_word(w.w[i + 1])) == 0 || unit_secs(u) == 0)
				goto bad;
			total += unit_secs(u);
			i += 2;
			continue;
		}
		if ((n = number(p)) >= 0) {
			/* "2 hours": the unit is the next word; a bare number is refused */
			if (i + 1 >= w.n) {
				tlbot_errf(err, errlen, "'%s' needs a unit: %s", s, tlbot_when_duration_hint);
				return -1;
			}
			u = unit_word(w.w[i + 1]);
			if (u == 'M' || u == 'y')
				goto months;
			if (unit_secs(u) == 0)
				goto bad;
			i += 2;
		} else {
			enum dur_r r = compact_duration(p, &total);

			if (r == DUR_MONTHS)
				goto months;
			if (r == DUR_FAR)
				goto far;
			if (r != DUR_OK)
				goto bad;
			i++;
			continue;
		}
		if (n > MAX_DURATION)
			goto far;
		total += n * unit_secs(u);
		if (total > MAX_DURATION)
			goto far;
	}
	if (total <= 0)
		goto bad;
	*secs = total;
	return 0;
months:
	tlbot_errf(err, errlen, "months and years vary in length: give a date (+6m, 31/01/2027) or %s",
		tlbot_when_duration_hint);
	return -1;
far:
	tlbot_errf(err, errlen, "too long: durations go up to five years");
	return -1;
bad:
	tlbot_errf(err, errlen, "%s", tlbot_when_duration_hint);
	return -1;
}

int
tlbot_when_time(const char *s, int *minute, char *err, size_t errlen)
{
	struct words w;
	char word[2 * WORD_MAX];
	const char *colon;
	long h, mi = 0;
	size_t len;
	int pm = -1; /* -1 none, 0 am, 1 pm */

	if (s == NULL || split(s, &w) != 0 || w.n == 0 || w.n > 2)
		goto bad;
	if (w.n == 1 && (strcmp(w.w[0], "noon") == 0 || strcmp(w.w[0], "midday") == 0)) {
		*minute = 12 * 60;
		return 0;
	}
	if (w.n == 1 && strcmp(w.w[0], "midnight") == 0) {
		*minute = 0;
		return 0;
	}
	snprintf(word, sizeof(word), "%s%s", w.w[0], w.n == 2 ? w.w[1] : "");
	len = strlen(word);
	if (len > 2 && (strcmp(word + len - 2, "am") == 0 || strcmp(word + len - 2, "pm") == 0)) {
		pm = word[len - 2] == 'p';
		len -= 2;
		word[len] = '\0';
	} else if (w.n == 2) {
		goto bad;
	}
	colon = strchr(word, ':');
	if (colon == NULL)
		colon = pm >= 0 ? strchr(word, '.') : NULL;
	if (colon) {
		h = digits(word, (size_t)(colon - word));
		if (strlen(colon + 1) != 2)
			goto bad;
		mi = number(colon + 1);
	} else {
		h = number(word);
		if (pm < 0) {
			if (h >= 0 && h <= 24)
				goto ampm;
			goto bad;
		}
	}
	if (h < 0 || mi < 0 || mi > 59)
		goto bad;
	if (pm >= 0) {
		if (h < 1 || h > 12)
			goto bad;
		h = h % 12 + (pm ? 12 : 0);
	} else if (h > 23 || (colon - word) > 2) {
		goto bad;
	}
	*minute = (int)(h * 60 + mi);
	return 0;
ampm:
	tlbot_errf(err, errlen, "'%s' in the morning or the evening? write %02ld:00 or %ldpm", s,
		h % 24, h % 12 ? h % 12 : 12);
	return -1;
bad:
	tlbot_errf(err, errlen, "%s", tlbot_when_time_hint);
	return -1;
}
