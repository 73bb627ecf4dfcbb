/* Dates, durations and times of day as people type them: one parser for
 * every DATE, DURATION and TIME argument and for !remind. Pure apart from
 * the zone conversions (tz.h); no I/O, no store.
 *
 * Dates (relative forms count from today in zone tz):
 *   2027-01-31, 2027-1-31, 31/01/2027, 31/1/2027 (day first, as in the UK),
 *   31 Jan, 31 January, Jan 31, 31st Jan, 31 Jan 2027,
 *   today, tomorrow, friday / fri / this friday (the coming one: 1 to 6
 *   days ahead; on a Friday "friday" is refused as ambiguous), next friday
 *   (the first Friday after today, 1 to 7 days ahead),
 *   +3d, +2w, +6m (months), +1y, 3 days, in 2 weeks, 6 months, 1 year.
 *   A day and month without a year is the next such date from today.
 * Durations: 2h, 2 hours, 90 minutes, 90m, 90 mins, 3 days, 1 week, 1w,
 *   1h30m, an hour, a day, half an hour. "m" is minutes here (in a date,
 *   +6m is six months). A bare number is refused: 2 what?
 * Times of day: 17:00, 9:30, 5pm, 5 pm, 5:30pm, noon, midnight; a bare
 *   hour ("5") is refused: morning or evening?
 *
 * Each returns 0, or -1 with a one-line reason in err that gives an example
 * of the right form. A form that could be read two ways is refused, never
 * guessed. */
#ifndef TLBOT_WHEN_H
#define TLBOT_WHEN_H

#include <stddef.h>
#include <time.h>

/* Longest date, duration or time people write, in words ("31 Jan 2027",
 * "half an hour"): the typed-argument checker joins up to this many tokens. */
#define TLBOT_WHEN_MAX_WORDS 3

/* A date into out as YYYY-MM-DD (11 bytes). */
int tlbot_when_date(const char *s, time_t now, const char *tz, char out[11], char *err,
		    size_t errlen);
/* A duration in seconds (1 s .. 5 years). */
int tlbot_when_duration(const char *s, long *secs, char *err, size_t errlen);
/* A time of day as minutes after midnight (0..1439). */
int tlbot_when_time(const char *s, int *minute, char *err, size_t errlen);

/* The hints the errors end with, for usage texts. */
extern const char tlbot_when_date_hint[];
extern const char tlbot_when_duration_hint[];
extern const char tlbot_when_time_hint[];

#endif
