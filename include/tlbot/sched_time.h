/* Schedule arithmetic for recurring local wall times: calendar dates,
 * weekday sets, HH:MM, and "the next HH:MM on these weekdays in zone Z,
 * skipping some dates" (DST-correct through tlbot_tz_mktime). Pure
 * functions apart from the zone conversions; no I/O, no store. */
#ifndef TLBOT_SCHED_TIME_H
#define TLBOT_SCHED_TIME_H

#include <stddef.h>
#include <time.h>

/* Weekday bits: Monday = 1 << 0 ... Sunday = 1 << 6. */
#define TLBOT_DAYS_WEEKDAYS 0x1fu
#define TLBOT_DAYS_ALL      0x7fu

/* Days since 1970-01-01 of a civil date, and back. */
long tlbot_date_days(int y, int m, int d);
void tlbot_date_civil(long days, int *y, int *m, int *d);
/* Parse "YYYY-MM-DD" (a real calendar date) into y, m, d. 0 or -1. */
int tlbot_date_split(const char *s, int *y, int *m, int *d);
/* date (YYYY-MM-DD) plus n days into out (11 bytes). 0 or -1. */
int tlbot_date_add(const char *date, long n, char out[11]);
/* Weekday index of a date: 0 = Monday ... 6 = Sunday, or -1 if invalid. */
int tlbot_date_weekday(const char *date);
/* A date as people read it, "Wednesday 18 November 2026", into out; an
 * invalid date is copied as it is ("?" for NULL). */
void tlbot_date_long(const char *date, char *out, size_t outlen);

/* Parse a weekday set: "mon-fri", "mon,wed,fri", "tue-thu,sat", "daily",
 * "weekdays", "weekends", full names ("monday"); case-insensitive.
 * Ranges may wrap ("fri-mon"). Returns the bit mask (non-zero) or 0 when
 * the text is not a weekday set. */
unsigned tlbot_days_parse(const char *s);
/* Format a mask compactly ("mon-fri", "mon,wed,fri", "daily") into out. */
void tlbot_days_format(unsigned mask, char *out, size_t outlen);

/* Parse "HH:MM" (24 h; also "9:30"). Returns minutes after midnight
 * (0..1439) or -1. */
int tlbot_hhmm_parse(const char *s);

/* Decides whether a date (YYYY-MM-DD) is to be skipped: return 1 to skip,
 * 0 to keep, -1 on error (stops the search). */
typedef int (*tlbot_skip_fn)(const char *date, void *arg);

/* The first instant strictly after `after` that is the local wall time
 * minute_of_day (minutes after midnight) in zone tz on a date whose weekday
 * is in days and that skip (may be NULL) does not skip. Searches at most
 * 800 days ahead. Writes the instant to *out and the local date to date_out
 * (11 bytes, may be NULL). Returns 0, 1 if no date qualifies within the
 * horizon, -1 on error (bad zone, skip error). */
int tlbot_sched_next(const char *tz, int minute_of_day, unsigned days, time_t after,
                     tlbot_skip_fn skip, void *arg, time_t *out, char date_out[11]);

/* The instant of minute_of_day on date in tz (gaps move forward, repeats
 * take the first occurrence). 0 or -1. */
int tlbot_sched_at(const char *tz, const char *date, int minute_of_day, time_t *out);

#endif
